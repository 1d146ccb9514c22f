"""Neural-network building blocks. ``tl.nn.functional`` holds the functional forms."""

from tensorlite.nn import functional

__all__ = ["functional"]
