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
from tensorlite.ops.dropout import dropout
from tensorlite.ops.embedding import embedding
from tensorlite.ops.linear import linear
from tensorlite.ops.loss import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    l1_loss,
    mse_loss,
    nll_loss,
)
from tensorlite.ops.normalization import batch_norm, layer_norm

__all__ = ["gelu", "leaky_relu", "log_softmax", "one_hot", "relu", "sigmoid", "softmax", "softplus", "tanh"]
__all__ += ["batch_norm", "dropout", "embedding", "layer_norm", "linear"]
__all__ += ["binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy", "l1_loss", "mse_loss",
            "nll_loss"]
