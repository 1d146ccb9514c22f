"""Automatic mixed precision, as ``torch.amp``: ``autocast`` (ops in float16 or float32 by PyTorch's lists) and
``GradScaler`` (loss scaling, so that float16 gradients neither underflow nor, unnoticed, overflow)."""

from tensorlite.amp.autocast_mode import autocast, get_autocast_dtype, is_autocast_enabled
from tensorlite.amp.grad_scaler import GradScaler

__all__ = ["GradScaler", "autocast", "get_autocast_dtype", "is_autocast_enabled"]
