"""Utilities, as ``torch.utils``: ``tl.utils.data`` holds datasets and the ``DataLoader``."""

from tensorlite.utils import data

__all__ = ["data"]
