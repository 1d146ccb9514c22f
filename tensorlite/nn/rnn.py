"""Recurrent layers, as ``torch.nn``: ``RNN``, ``LSTM``, ``GRU`` (stacked layers over a sequence) and
the single-step cells ``RNNCell``, ``LSTMCell``, ``GRUCell``.

Parameters have PyTorch's names, shapes, gate order and initialisation U(-1/sqrt(H), 1/sqrt(H)),
so state dicts move between the two. A cell is a layer run for one time step.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from tensorlite.creation import empty
from tensorlite.nn import functional as F
from tensorlite.nn import init
from tensorlite.nn.module import Module
from tensorlite.nn.parameter import Parameter
from tensorlite.ops.recurrent import GATES, rnn_layer
from tensorlite.ops.shape import stack
from tensorlite.tensor import Tensor

_NONLINEARITIES = {"tanh": "RNN_TANH", "relu": "RNN_RELU"}


def _rnn_mode(layer: str, nonlinearity: str) -> str:
    if nonlinearity not in _NONLINEARITIES:
        raise ValueError(f"{layer}: unknown nonlinearity {nonlinearity!r}: expected 'tanh' or 'relu'")
    return _NONLINEARITIES[nonlinearity]


def _reset_uniform(module: Module) -> None:
    """Every weight and bias from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as PyTorch."""
    bound = 1.0 / math.sqrt(module.hidden_size) if module.hidden_size > 0 else 0.0
    for weight in module.parameters():
        init.uniform_(weight, -bound, bound)


class RNNBase(Module):
    """``num_layers`` recurrent layers of ``mode`` ("RNN_TANH", "RNN_RELU", "LSTM", "GRU"), each feeding the next.

    Layer k has weight_ih_l{k} (G * hidden_size, in), weight_hh_l{k} (G * hidden_size, hidden_size)
    and, with ``bias``, bias_ih_l{k} and bias_hh_l{k} (G * hidden_size,), for G gate blocks.
    ``dropout`` applies to every layer's output except the last while training.
    """

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        name = type(self).__name__
        if bidirectional:
            raise NotImplementedError(f"{name}: bidirectional=True is not implemented; run a second {name} on the "
                                      "time-reversed input and concatenate the outputs")
        if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0 <= dropout <= 1:
            raise ValueError(f"{name}: dropout must be a number in [0, 1] (the probability of zeroing an element), "
                             f"got {dropout!r}")
        for arg, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name}: {arg} must be a positive integer, got {value!r}")
        if dropout > 0 and num_layers == 1:
            warnings.warn(f"{name}: dropout={dropout} has no effect with num_layers=1: it applies between layers",
                          stacklevel=3)
        self.mode, self.input_size, self.hidden_size, self.num_layers = mode, input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout, self.bidirectional = bias, batch_first, float(dropout), False
        self.proj_size = 0
        gate_size = GATES[mode] * hidden_size
        for k in range(num_layers):
            layer_input = input_size if k == 0 else hidden_size
            shapes = {f"weight_ih_l{k}": (gate_size, layer_input), f"weight_hh_l{k}": (gate_size, hidden_size)}
            if bias:
                shapes.update({f"bias_ih_l{k}": (gate_size,), f"bias_hh_l{k}": (gate_size,)})
            for param_name, shape in shapes.items():
                self.register_parameter(param_name, Parameter(empty(*shape, device=device, dtype=dtype)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _reset_uniform(self)

    def _layer_weights(self, k: int) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        """(weight_ih, weight_hh, bias_ih, bias_hh) of layer k; the biases are None without ``bias``."""
        biases = (getattr(self, f"bias_ih_l{k}"), getattr(self, f"bias_hh_l{k}")) if self.bias else (None, None)
        return getattr(self, f"weight_ih_l{k}"), getattr(self, f"weight_hh_l{k}"), *biases

    def _initial_state(self, name: str, state: Tensor | None, batch: int, batched: bool) -> Tensor | None:
        """A given initial state as (num_layers, B, H); None stays None (zeros)."""
        if state is None:
            return None
        expected = (self.num_layers, batch, self.hidden_size) if batched else (self.num_layers, self.hidden_size)
        if not isinstance(state, Tensor) or tuple(state.shape) != expected:
            got = tuple(state.shape) if isinstance(state, Tensor) else type(state).__name__
            raise ValueError(f"{type(self).__name__}: expected {name} of shape {expected} (num_layers, "
                             f"{'batch, ' if batched else ''}hidden_size), got {got}")
        return state if batched else state.unsqueeze(1)

    def forward(self, input: Tensor, hx: Tensor | tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Any]:
        """input (T, B, input_size), (B, T, input_size) if batch_first, or unbatched (T, input_size) ->
        (output (T, B, H) / (B, T, H) / (T, H), h_n (num_layers, B, H)); the LSTM gives (h_n, c_n) and takes
        hx = (h_0, c_0). Missing initial states are zeros."""
        name, lstm = type(self).__name__, self.mode == "LSTM"
        if input.ndim not in (2, 3):
            raise ValueError(f"{name}: expected input of 2 (T, input_size) or 3 dimensions ("
                             f"{'B, T' if self.batch_first else 'T, B'}, input_size), got shape {tuple(input.shape)}")
        if input.shape[-1] != self.input_size:
            raise ValueError(f"{name}: input has {input.shape[-1]} features in its last dimension, expected "
                             f"input_size={self.input_size} (input shape {tuple(input.shape)})")
        batched = input.ndim == 3
        batch_first = self.batch_first and batched
        if not batched:
            input = input.unsqueeze(1)  # (T, 1, input_size)
        if lstm and hx is not None and not (isinstance(hx, tuple) and len(hx) == 2):
            raise TypeError(f"{name}: hx must be a tuple (h_0, c_0), got {type(hx).__name__}")
        h0, c0 = hx if lstm and hx is not None else (hx, None)
        batch = input.shape[0 if batch_first else 1]
        h0 = self._initial_state("h_0" if lstm else "hx", h0, batch, batched)
        c0 = self._initial_state("c_0", c0, batch, batched)
        x, h_n, c_n = input, [], []
        for k in range(self.num_layers):
            if k > 0:
                x = F.dropout(x, self.dropout, self.training)
            x, h, c = rnn_layer(self.mode, x, None if h0 is None else h0[k], None if c0 is None else c0[k],
                                *self._layer_weights(k), batch_first=batch_first)
            h_n.append(h)
            c_n.append(c)
        h_n = stack(h_n)  # (num_layers, B, H)
        c_n = stack(c_n) if lstm else None
        if not batched:
            x, h_n, c_n = x.squeeze(1), h_n.squeeze(1), None if c_n is None else c_n.squeeze(1)
        return x, ((h_n, c_n) if lstm else h_n)

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if self.bias is not True:
            text += f", bias={self.bias}"
        if self.batch_first is not False:
            text += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            text += f", dropout={self.dropout}"
        return text


class RNN(RNNBase):
    """Elman RNN: h_t = nonlinearity(x_t W_ih.T + b_ih + h_{t-1} W_hh.T + b_hh), nonlinearity 'tanh' or 'relu'."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__(_rnn_mode("RNN", nonlinearity), input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device, dtype)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Long short-term memory, gates (i, f, g, o) stacked in that order in each weight's rows.

    ``proj_size`` is accepted for PyTorch's signature; only 0 (no projection) is implemented.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device: Any = None, dtype: Any = None) -> None:
        if proj_size != 0:
            raise NotImplementedError(f"LSTM: proj_size={proj_size} is not implemented; use proj_size=0")
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device, dtype)


class GRU(RNNBase):
    """Gated recurrent unit, gates (r, z, n) stacked in that order in each weight's rows."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device, dtype)


class RNNCellBase(Module):
    """One time step of ``mode``: weight_ih (G * hidden_size, input_size), weight_hh (G * hidden_size,
    hidden_size), bias_ih and bias_hh (G * hidden_size,) or None without ``bias``."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, bias: bool, device: Any, dtype: Any) -> None:
        super().__init__()
        self.mode, self.input_size, self.hidden_size, self.bias = mode, input_size, hidden_size, bias
        gate_size = GATES[mode] * hidden_size
        self.weight_ih = Parameter(empty(gate_size, input_size, device=device, dtype=dtype))
        self.weight_hh = Parameter(empty(gate_size, hidden_size, device=device, dtype=dtype))
        for param_name in ("bias_ih", "bias_hh"):
            param = Parameter(empty(gate_size, device=device, dtype=dtype)) if bias else None
            self.register_parameter(param_name, param)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _reset_uniform(self)

    def _state(self, name: str, state: Tensor | None, batch: int | None) -> Tensor | None:
        expected = (self.hidden_size,) if batch is None else (batch, self.hidden_size)
        if state is not None and (not isinstance(state, Tensor) or tuple(state.shape) != expected):
            got = tuple(state.shape) if isinstance(state, Tensor) else type(state).__name__
            raise ValueError(f"{type(self).__name__}: expected {name} of shape {expected}, got {got}")
        return state

    def forward(self, input: Tensor, hx: Tensor | tuple[Tensor, Tensor] | None = None) -> Any:
        """input (B, input_size) or (input_size,) -> h' (B, H) or (H,); the LSTMCell takes and gives (h, c)."""
        name, lstm = type(self).__name__, self.mode == "LSTM"
        if input.ndim not in (1, 2) or input.shape[-1] != self.input_size:
            raise ValueError(f"{name}: expected input of shape (batch, {self.input_size}) or ({self.input_size},), "
                             f"got {tuple(input.shape)}")
        if lstm and hx is not None and not (isinstance(hx, tuple) and len(hx) == 2):
            raise TypeError(f"{name}: hx must be a tuple (h, c), got {type(hx).__name__}")
        h, c = hx if lstm and hx is not None else (hx, None)
        batch = input.shape[0] if input.ndim == 2 else None
        h, c = self._state("h" if lstm else "hx", h, batch), self._state("c", c, batch)
        if batch is None:  # unbatched: a batch of one
            input, h, c = (None if t is None else t.unsqueeze(0) for t in (input, h, c))
        _, h, c = rnn_layer(self.mode, input.unsqueeze(0), h, c, self.weight_ih, self.weight_hh, self.bias_ih,
                            self.bias_hh)
        if batch is None:
            h, c = h.squeeze(0), None if c is None else c.squeeze(0)
        return (h, c) if lstm else h

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            text += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            text += f", nonlinearity={self.nonlinearity}"
        return text


class RNNCell(RNNCellBase):
    """h' = nonlinearity(x W_ih.T + b_ih + h W_hh.T + b_hh), nonlinearity 'tanh' or 'relu'."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__(_rnn_mode("RNNCell", nonlinearity), input_size, hidden_size, bias, device, dtype)
        self.nonlinearity = nonlinearity


class LSTMCell(RNNCellBase):
    """One LSTM step: (h, c) -> (h', c'), gates (i, f, g, o)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__("LSTM", input_size, hidden_size, bias, device, dtype)


class GRUCell(RNNCellBase):
    """One GRU step: h -> h', gates (r, z, n)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__("GRU", input_size, hidden_size, bias, device, dtype)
