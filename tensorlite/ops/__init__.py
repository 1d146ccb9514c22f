"""All tensor ops, grouped by kind. ``tl.exp(x)`` and ``x.exp()`` both land here."""

from tensorlite.ops.compare import (
    allclose,
    eq,
    equal,
    ge,
    gt,
    isfinite,
    le,
    logical_and,
    logical_not,
    logical_or,
    lt,
    ne,
)
from tensorlite.ops.elementwise import (
    abs,
    add,
    astype,
    clamp,
    clip,
    clone,
    cos,
    div,
    exp,
    gelu,
    leaky_relu,
    log,
    maximum,
    minimum,
    mul,
    neg,
    pow,
    relu,
    sigmoid,
    sin,
    softplus,
    sqrt,
    sub,
    tanh,
    to_device,
    where,
)
from tensorlite.ops.indexing import diag, gather, getitem, masked_fill, one_hot, setitem_, tril, triu
from tensorlite.ops.linalg import matmul
from tensorlite.ops.reduction import (
    ValuesIndices,
    argmax,
    argmin,
    log_softmax,
    logsumexp,
    max,
    mean,
    min,
    softmax,
    std,
    sum,
    var,
)
from tensorlite.ops.sampling import multinomial
from tensorlite.ops.shape import (
    cat,
    chunk,
    concat,
    concatenate,
    expand,
    expand_as,
    flatten,
    permute,
    reshape,
    roll,
    split,
    squeeze,
    stack,
    t,
    transpose,
    unsqueeze,
    view,
)
from tensorlite.ops.sorting import topk

# Ops that are also ``Tensor`` methods (``x.exp()``), as in PyTorch.
TENSOR_METHODS = (
    "abs", "add", "clamp", "clip", "cos", "div", "exp", "log", "maximum", "minimum", "mul", "neg", "pow", "relu",
    "sigmoid", "sin", "softplus", "sqrt", "sub", "tanh",
    "eq", "ne", "lt", "le", "gt", "ge", "logical_not", "logical_and", "logical_or", "isfinite", "equal", "allclose",
    "gather", "masked_fill", "tril", "triu", "diag",
    "matmul",
    "sum", "mean", "var", "std", "max", "min", "argmax", "argmin", "logsumexp", "softmax", "log_softmax",
    "reshape", "view", "flatten", "permute", "transpose", "t", "expand", "expand_as", "squeeze", "unsqueeze",
    "split", "chunk", "roll",
    "topk", "multinomial",
)

__all__ = [
    "ValuesIndices", "TENSOR_METHODS",
    "abs", "add", "allclose", "argmax", "argmin", "astype", "cat", "chunk", "clamp", "clip", "clone", "concat",
    "concatenate", "cos", "diag", "div", "eq", "equal", "exp", "expand", "expand_as", "flatten", "gather", "ge", "gelu",
    "getitem", "gt", "isfinite", "le", "leaky_relu", "log", "log_softmax", "logical_and", "logical_not", "logical_or",
    "logsumexp", "lt", "masked_fill", "matmul", "max", "maximum", "mean", "min", "minimum", "mul", "multinomial",
    "ne", "neg", "one_hot", "permute", "pow", "relu", "reshape", "roll", "setitem_", "sigmoid", "sin", "softmax",
    "softplus", "split", "sqrt", "squeeze", "stack", "std", "sub", "sum", "t", "tanh", "to_device", "topk",
    "transpose", "tril", "triu", "unsqueeze", "var", "view", "where",
]
