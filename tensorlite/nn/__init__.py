"""Neural-network building blocks, as ``torch.nn``. ``tl.nn.functional`` holds the functional forms."""

from tensorlite.nn import functional
from tensorlite.nn.containers import ModuleDict, ModuleList, Sequential
from tensorlite.nn.module import Module
from tensorlite.nn.parameter import Parameter

__all__ = ["functional", "Module", "ModuleDict", "ModuleList", "Parameter", "Sequential"]
