"""Neural-network functions (``import tensorlite.nn.functional as F``), as in ``torch.nn.functional``."""

from tensorlite.ops import (
    gelu,
    leaky_relu,
    log_softmax,
    one_hot,
    relu,
    sigmoid,
    softmax,
    softplus,
    tanh,
)

__all__ = ["gelu", "leaky_relu", "log_softmax", "one_hot", "relu", "sigmoid", "softmax", "softplus", "tanh"]
