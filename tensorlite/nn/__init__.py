"""Neural-network building blocks, as ``torch.nn``. ``tl.nn.functional`` holds the functional forms."""

from tensorlite.nn import functional, init, parallel, utils
from tensorlite.nn.activation import GELU, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from tensorlite.nn.attention import MultiheadAttention
from tensorlite.nn.containers import ModuleDict, ModuleList, Sequential
from tensorlite.nn.conv import Conv1d, Conv2d
from tensorlite.nn.dropout import Dropout, Dropout2d
from tensorlite.nn.embedding import Embedding
from tensorlite.nn.flatten import Flatten
from tensorlite.nn.linear import Identity, Linear
from tensorlite.nn.loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss
from tensorlite.nn.module import Module
from tensorlite.nn.normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from tensorlite.nn.parameter import Parameter
from tensorlite.nn.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from tensorlite.nn.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell, RNNCellBase
from tensorlite.nn.transformer import (
    Transformer,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
)

__all__ = ["functional", "parallel", "utils", "Module", "ModuleDict", "ModuleList", "Parameter", "Sequential"]
__all__ += ["init", "BatchNorm1d", "Dropout", "Embedding", "Flatten", "GELU", "Identity", "LayerNorm", "LeakyReLU",
            "Linear", "MultiheadAttention", "ReLU", "Sigmoid", "Softmax", "Tanh"]
__all__ += ["BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "L1Loss", "MSELoss", "NLLLoss"]
__all__ += ["GRU", "GRUCell", "LSTM", "LSTMCell", "RNN", "RNNBase", "RNNCell", "RNNCellBase"]
__all__ += ["AdaptiveAvgPool2d", "AvgPool2d", "BatchNorm2d", "Conv1d", "Conv2d", "Dropout2d", "MaxPool2d"]
__all__ += ["Transformer", "TransformerDecoder", "TransformerDecoderLayer", "TransformerEncoder",
            "TransformerEncoderLayer"]
