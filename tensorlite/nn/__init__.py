"""Neural-network building blocks, as ``torch.nn``. ``tl.nn.functional`` holds the functional forms."""

from tensorlite.nn import functional, init, utils
from tensorlite.nn.activation import GELU, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from tensorlite.nn.containers import ModuleDict, ModuleList, Sequential
from tensorlite.nn.dropout import Dropout
from tensorlite.nn.embedding import Embedding
from tensorlite.nn.flatten import Flatten
from tensorlite.nn.linear import Identity, Linear
from tensorlite.nn.loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss
from tensorlite.nn.module import Module
from tensorlite.nn.normalization import BatchNorm1d, LayerNorm
from tensorlite.nn.parameter import Parameter

__all__ = ["functional", "utils", "Module", "ModuleDict", "ModuleList", "Parameter", "Sequential"]
__all__ += ["init", "BatchNorm1d", "Dropout", "Embedding", "Flatten", "GELU", "Identity", "LayerNorm", "LeakyReLU",
            "Linear", "ReLU", "Sigmoid", "Softmax", "Tanh"]
__all__ += ["BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "L1Loss", "MSELoss", "NLLLoss"]
