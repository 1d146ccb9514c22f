"""Ready-made models, each with a dataclass config."""

from tensorlite.models.mlp import MLP, MLPConfig, perceptron

__all__ = ["MLP", "MLPConfig", "perceptron"]
