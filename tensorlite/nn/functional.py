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
from tensorlite.ops.attention import kv_cache_attention, scaled_dot_product_attention
from tensorlite.ops.conv import conv1d, conv2d
from tensorlite.ops.dropout import dropout, dropout2d
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
from tensorlite.ops.pooling import adaptive_avg_pool2d, avg_pool2d, max_pool2d
from tensorlite.ops.rotary import rotary_embedding

__all__ = ["gelu", "leaky_relu", "log_softmax", "one_hot", "relu", "sigmoid", "softmax", "softplus", "tanh"]
__all__ += ["batch_norm", "dropout", "embedding", "kv_cache_attention", "layer_norm", "linear", "rotary_embedding",
            "scaled_dot_product_attention"]
__all__ += ["binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy", "l1_loss", "mse_loss",
            "nll_loss"]
__all__ += ["adaptive_avg_pool2d", "avg_pool2d", "conv1d", "conv2d", "dropout2d", "max_pool2d"]
