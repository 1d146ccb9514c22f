"""Digit classifiers for MNIST's (N, 1, 28, 28) images: a 784-128-64-10 MLP and a two-layer CNN.

Both are ``nn.Sequential``s, so their state-dict keys (``"1.weight"``, ...) are those of the same
layers in a ``torch.nn.Sequential``; the outputs are (N, 10) logits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tensorlite.models.config import ModelConfig, check_dropout
from tensorlite.models.mlp import linear_numel

from tensorlite import nn


def _dropout(p: float) -> list[nn.Module]:
    """A Dropout layer, or none when ``p`` is 0."""
    return [nn.Dropout(p)] if p else []


@dataclass
class MNISTMLPConfig(ModelConfig):
    """Hidden layer sizes between the 784 pixels and the 10 classes; dropout after each hidden ReLU."""

    hidden: list[int] = field(default_factory=lambda: [128, 64])
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if not self.hidden or any(not isinstance(n, int) or n <= 0 for n in self.hidden):
            raise ValueError(f"MNISTMLP: hidden sizes must be one or more positive integers, got {self.hidden}")
        check_dropout("MNISTMLP", self.dropout)


    def state_dict_numel(self) -> int:
        return linear_numel([28 * 28, *self.hidden, 10])


class MNISTMLP(nn.Sequential):
    """Flatten (N, 1, 28, 28) -> (N, 784), then Linear-ReLU per hidden size, then Linear to (N, 10) logits."""

    def __init__(self, config: MNISTMLPConfig | None = None) -> None:
        config = config or MNISTMLPConfig()
        layers: list[nn.Module] = [nn.Flatten()]
        sizes = [28 * 28, *config.hidden]
        for n_in, n_out in zip(sizes, sizes[1:]):
            layers += [nn.Linear(n_in, n_out), nn.ReLU(), *_dropout(config.dropout)]
        super().__init__(*layers, nn.Linear(sizes[-1], 10))
        self.config = config


@dataclass
class MNISTCNNConfig(ModelConfig):
    """Channels of the two 3x3 convolutions, the hidden Linear size, dropout before each Linear."""

    channels: list[int] = field(default_factory=lambda: [32, 64])
    hidden: int = 128
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if len(self.channels) != 2 or any(not isinstance(c, int) or c <= 0 for c in self.channels):
            raise ValueError(f"MNISTCNN: channels must be two positive integers, got {self.channels}")
        if not isinstance(self.hidden, int) or self.hidden <= 0:
            raise ValueError(f"MNISTCNN: hidden must be a positive integer, got {self.hidden}")
        check_dropout("MNISTCNN", self.dropout)


    def state_dict_numel(self) -> int:
        c1, c2 = self.channels
        return 9 * c1 + c1 + 9 * c1 * c2 + c2 + linear_numel([c2 * 5 * 5, self.hidden, 10])


class MNISTCNN(nn.Sequential):
    """Conv(1, 32, 3)-ReLU-MaxPool(2)-Conv(32, 64, 3)-ReLU-MaxPool(2)-Flatten-Linear(1600, 128)-ReLU-Linear(128, 10).

    Shapes: (N, 1, 28, 28) -> (N, 32, 13, 13) -> (N, 64, 5, 5) -> (N, 1600) -> (N, 128) -> (N, 10).
    """

    def __init__(self, config: MNISTCNNConfig | None = None) -> None:
        config = config or MNISTCNNConfig()
        c1, c2 = config.channels
        super().__init__(
            nn.Conv2d(1, c1, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), *_dropout(config.dropout),
            nn.Linear(c2 * 5 * 5, config.hidden), nn.ReLU(), *_dropout(config.dropout),
            nn.Linear(config.hidden, 10),
        )
        self.config = config
