"""Multi-layer perceptrons from a list of layer sizes, as in the tutorials (``[2, 3, 1]`` sigmoid)."""

from __future__ import annotations

from dataclasses import dataclass, field

from tensorlite.models.config import ModelConfig, check_dropout

from tensorlite import nn

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "leaky_relu": nn.LeakyReLU}


@dataclass
class MLPConfig(ModelConfig):
    """Layer sizes from input to output; the activation between layers (and optionally after the last)."""

    sizes: list[int] = field(default_factory=lambda: [2, 3, 1])
    activation: str = "sigmoid"
    output_activation: str | None = None  # e.g. "sigmoid" for the tutorials' MSE-trained gates
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if len(self.sizes) < 2 or any(not isinstance(n, int) or n <= 0 for n in self.sizes):
            raise ValueError(f"MLP: layer sizes must be two or more positive integers, got {self.sizes}")
        for name in (self.activation, self.output_activation):
            if name is not None and name not in ACTIVATIONS:
                raise ValueError(f"MLP: unknown activation {name!r}: expected one of {', '.join(ACTIVATIONS)}")
        check_dropout("MLP", self.dropout)


    def state_dict_numel(self) -> int:
        return linear_numel(self.sizes)


def linear_numel(sizes: list[int]) -> int:
    """Weights and biases of Linear layers from ``sizes[0]`` through ``sizes[-1]``."""
    return sum(n_in * n_out + n_out for n_in, n_out in zip(sizes, sizes[1:]))


class MLP(nn.Sequential):
    """Linear layers of ``config.sizes`` with ``config.activation`` between them.

    ``MLP(MLPConfig([4, 32, 3], "relu"))`` maps (N, 4) to (N, 3) logits. With a single pair of
    sizes and no hidden layer it is a single-layer perceptron.
    """

    def __init__(self, config: MLPConfig) -> None:
        layers: list[nn.Module] = []
        pairs = list(zip(config.sizes, config.sizes[1:]))
        for i, (n_in, n_out) in enumerate(pairs):
            layers.append(nn.Linear(n_in, n_out))
            if i < len(pairs) - 1:
                layers.append(ACTIVATIONS[config.activation]())
                if config.dropout:
                    layers.append(nn.Dropout(config.dropout))
        if config.output_activation:
            layers.append(ACTIVATIONS[config.output_activation]())
        super().__init__(*layers)
        self.config = config


def perceptron(n_inputs: int = 2, n_outputs: int = 1, output_activation: str | None = "sigmoid") -> MLP:
    """A single-layer perceptron: one Linear layer (and an output activation). It cannot learn XOR."""
    return MLP(MLPConfig([n_inputs, n_outputs], output_activation=output_activation))
