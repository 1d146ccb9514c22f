"""tensorlite: a readable deep-learning array library on NumPy (CPU) or CuPy (CUDA).

    import tensorlite as tl
    x = tl.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * x).sum().backward()
    x.grad  # tensor([2., 4., 6.])
"""

__version__ = "0.1.0"

from tensorlite import autograd  # noqa: I001  (autograd before tensor: they import each other)
from tensorlite.autograd import (
    enable_grad, inference_mode, is_grad_enabled, is_inference_mode_enabled, no_grad, set_grad_enabled,
)
from tensorlite.device import Device, default_device, device, set_default_device
from tensorlite.dtypes import (
    bfloat16, bool_, double, float, float16, float32, float64, get_default_dtype, half, int32, int64, long,
    set_default_dtype, uint8,
)
from tensorlite.tensor import Tensor
from tensorlite.ops import *  # noqa: F403  (the tl.* functions: exp, matmul, cat, where, ...)
from tensorlite.ops import __all__ as _ops_all
from tensorlite.creation import (
    arange, as_tensor, empty, empty_like, eye, from_dlpack, from_numpy, full, full_like, linspace, manual_seed,
    ones, ones_like, rand, rand_like, randint, randn, randn_like, randperm, tensor, zeros, zeros_like,
)
from tensorlite.gradcheck import GradcheckError, gradcheck
from tensorlite.device_checks import set_mode as set_device_checks
from tensorlite.backends import set_fused_kernels
from tensorlite import amp, cuda, nn  # noqa: E402
from tensorlite import distributed  # noqa: E402  (mpi4py is imported by init_process_group only)
from tensorlite.amp import autocast
from tensorlite import optim  # noqa: E402
from tensorlite import utils  # noqa: E402
from tensorlite.serialization import CheckpointError, load, load_metadata, save
from tensorlite.scope import compile  # noqa: E402

bool = bool_  # tl.bool, as torch.bool

__all__ = [
    "__version__", "amp", "autocast", "autograd", "cuda", "Tensor", "Device", "device", "default_device",
    "set_default_device",
    "no_grad", "enable_grad", "is_grad_enabled", "inference_mode", "is_inference_mode_enabled", "set_grad_enabled",
    "gradcheck", "GradcheckError", "nn", "optim", "distributed", "set_device_checks", "set_fused_kernels",
    "utils", "save", "load", "load_metadata", "CheckpointError", "compile",
    "bfloat16", "bool", "bool_", "double", "float", "float16", "float32", "float64", "half", "int32", "int64", "long",
    "uint8",
    "get_default_dtype", "set_default_dtype",
    "arange", "as_tensor", "empty", "empty_like", "eye", "from_dlpack", "from_numpy", "full", "full_like",
    "linspace", "manual_seed", "ones", "ones_like", "rand", "rand_like", "randint", "randn", "randn_like",
    "randperm", "tensor", "zeros", "zeros_like", *_ops_all,
]
