"""Recurrent layers (Elman RNN, LSTM, GRU) over a whole sequence, one fused op per layer.

A layer's input enters its gates through ``W_ih x_t + b_ih``, which does not depend on the state,
so ``rnn_layer`` computes it for every time step at once with ``linear`` (one matrix product over
(T * B, in)). What is left is the recurrence, one ``Function`` per layer that loops over time only:

    forward   for t = 0 .. T-1:   gates_t = xg_t + h_{t-1} @ W_hh.T + b_hh  ->  new state (h_t, c_t)
    backward  for t = T-1 .. 0:   state gradient -> gate gradient dgates_t;  dh_{t-1} = dgates_t @ W_hh
              then dW_hh = sum_t dgates_t.T @ h_{t-1} as ONE product over the stacked steps

Forward saves the gate activations; every step costs one matrix product each way. The op returns
all states stacked, (S, T, B, H) (S = 2 for the LSTM's h and c, else 1; (S, B, T, H) when
batch-first), and PyTorch's ``output``, ``h_n`` and ``c_n`` are views of it.

Gate order and formulas are PyTorch's: LSTM (i, f, g, o); GRU (r, z, n) with
``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))`` and ``h' = (1 - z) * n + z * h``.
"""

from __future__ import annotations

from typing import Any

from tensorlite.autograd import Function
from tensorlite.ops.linear import linear
from tensorlite.tensor import Tensor


def _sigmoid_(xp: Any, x: Any) -> None:
    """sigmoid(x) = (1 + tanh(x / 2)) / 2, in place (never overflows, unlike 1 / (1 + exp(-x)))."""
    x *= 0.5
    xp.tanh(x, out=x)
    x *= 0.5
    x += 0.5


def _contiguous_steps(xp: Any, xg: Any, bias: Any) -> Any:
    """xg (T, B, G) plus ``bias`` (or None) in a new time-major array: every step's rows are contiguous."""
    out = xp.empty(xg.shape, dtype=xg.dtype)
    if bias is None:
        out[...] = xg
    else:
        xp.add(xg, bias, out=out)
    return out


class _Recurrence(Function):
    """One layer's state update over all time steps. Subclasses define ``run`` and ``run_backward``.

    forward(xg (T, B, G) input projections incl. b_ih, h0 (B, H) or None for zeros, c0 (LSTM
    only), w_hh (G, H), b_hh (G,) or None, batch_first) -> states (S, T, B, H); with
    ``batch_first``, xg is (B, T, G) and the states (S, B, T, H).
    """

    num_states = 1

    def forward(self, xg, h0, c0, w_hh, b_hh, batch_first):
        xp = self.xp
        self.batch_first, self.w_hh = batch_first, w_hh
        steps = xg.swapaxes(0, 1) if batch_first else xg  # (T, B, G) whatever the layout
        hidden = w_hh.shape[1]
        out = xp.empty((self.num_states, *xg.shape[:2], hidden), dtype=xg.dtype)
        self.states = out.swapaxes(1, 2) if batch_first else out  # (S, T, B, H) view
        self.h0 = xp.zeros((steps.shape[1], hidden), dtype=xg.dtype) if h0 is None else h0
        self.run(steps, c0, b_hh)
        return out

    def backward(self, g):
        g = g.swapaxes(1, 2) if self.batch_first else g  # (S, T, B, H)
        dxg, dgh, dh0, dc0 = self.run_backward(g)  # dxg, dgh: (T, B, G) gradients of xg and of h @ W_hh.T + b_hh
        dw_hh = db_hh = None
        if self.needs_grad(3):  # sum over t of dgh_t.T @ h_{t-1}: h0 first, then every output but the last
            hs, size = self.states[0], dgh.shape[-1]
            dw_hh = dgh[0].T @ self.h0 + dgh[1:].reshape(-1, size).T @ hs[:-1].reshape(-1, hs.shape[-1])
        if self.needs_grad(4):
            db_hh = dgh.sum(axis=(0, 1))
        if self.batch_first:
            dxg = dxg.swapaxes(0, 1)
        return dxg, dh0, dc0, dw_hh, db_hh, None

    def run(self, xg: Any, c0: Any, b_hh: Any) -> None:
        """Fill ``self.states`` from the time-major projections xg (T, B, G); save what backward needs."""
        raise NotImplementedError

    def run_backward(self, g: Any) -> tuple[Any, Any, Any, Any]:
        """From the states' gradient g (S, T, B, H): (dxg, dgh, dh0, dc0), the first two (T, B, G)."""
        raise NotImplementedError


class RNNTanhLayer(_Recurrence):
    """Elman RNN: h_t = tanh(xg_t + h_{t-1} @ W_hh.T + b_hh)."""

    relu = False

    def run(self, xg, c0, b_hh):
        xp, w_hh, (hs,) = self.xp, self.w_hh, self.states
        pre = _contiguous_steps(xp, xg, b_hh)
        h = self.h0
        for t in range(len(xg)):
            hs[t] = pre[t] + h @ w_hh.T
            if self.relu:
                xp.maximum(hs[t], 0, out=hs[t])
            else:
                xp.tanh(hs[t], out=hs[t])
            h = hs[t]

    def run_backward(self, g):
        xp, (hs,) = self.xp, self.states
        slope = (hs > 0).astype(hs.dtype) if self.relu else 1 - hs * hs  # the activation's derivative, all steps
        dpre = xp.empty(hs.shape, dtype=hs.dtype)  # (T, B, H)
        dh = xp.zeros_like(self.h0)  # the gradient reaching h_t from step t + 1
        for t in reversed(range(len(hs))):
            xp.multiply(g[0, t] + dh, slope[t], out=dpre[t])
            dh = dpre[t] @ self.w_hh
        return dpre, dpre, dh, None


class RNNReluLayer(RNNTanhLayer):
    """Elman RNN: h_t = relu(xg_t + h_{t-1} @ W_hh.T + b_hh)."""

    relu = True


class LSTMLayer(_Recurrence):
    """LSTM: gates i, f, g, o; c_t = f * c_{t-1} + i * g; h_t = o * tanh(c_t)."""

    num_states = 2

    def run(self, xg, c0, b_hh):
        xp, w_hh, (hs, cs) = self.xp, self.w_hh, self.states
        H = w_hh.shape[1]
        self.c0 = xp.zeros_like(self.h0) if c0 is None else c0
        self.gates = gates = _contiguous_steps(xp, xg, b_hh)  # (T, B, 4H), activated in place
        self.tanh_c = xp.empty(hs.shape, dtype=hs.dtype)
        h, c = self.h0, self.c0
        for t in range(len(xg)):
            z = gates[t]
            z += h @ w_hh.T
            _sigmoid_(xp, z[:, :2 * H])
            xp.tanh(z[:, 2 * H:3 * H], out=z[:, 2 * H:3 * H])
            _sigmoid_(xp, z[:, 3 * H:])
            i, f, g, o = z[:, :H], z[:, H:2 * H], z[:, 2 * H:3 * H], z[:, 3 * H:]
            xp.multiply(f, c, out=cs[t])
            cs[t] += i * g
            xp.tanh(cs[t], out=self.tanh_c[t])
            xp.multiply(o, self.tanh_c[t], out=hs[t])
            h, c = hs[t], cs[t]

    def run_backward(self, g):
        xp, (hs, cs), gates, tanh_c = self.xp, self.states, self.gates, self.tanh_c
        H = hs.shape[-1]
        dgates = xp.empty(gates.shape, dtype=gates.dtype)  # (T, B, 4H)
        dh, dc = xp.zeros_like(self.h0), xp.zeros_like(self.c0)  # what reaches h_t, c_t from step t + 1
        for t in reversed(range(len(hs))):
            i, f, gg, o = gates[t, :, :H], gates[t, :, H:2 * H], gates[t, :, 2 * H:3 * H], gates[t, :, 3 * H:]
            c_prev = cs[t - 1] if t else self.c0
            dh = dh + g[0, t]
            dc = dc + g[1, t] + dh * o * (1 - tanh_c[t] * tanh_c[t])
            d = dgates[t]
            xp.multiply(dc * gg, i * (1 - i), out=d[:, :H])
            xp.multiply(dc * c_prev, f * (1 - f), out=d[:, H:2 * H])
            xp.multiply(dc * i, 1 - gg * gg, out=d[:, 2 * H:3 * H])
            xp.multiply(dh * tanh_c[t], o * (1 - o), out=d[:, 3 * H:])
            dh = d @ self.w_hh
            dc = dc * f
        return dgates, dgates, dh, dc


class GRULayer(_Recurrence):
    """GRU: gates r, z, n; n = tanh(xg_n + r * (W_hn h + b_hn)); h_t = n + z * (h_{t-1} - n)."""

    def run(self, xg, c0, b_hh):
        xp, w_hh, (hs,) = self.xp, self.w_hh, self.states
        H = w_hh.shape[1]
        self.gates = gates = _contiguous_steps(xp, xg, None)  # (T, B, 3H): r, z, n after activation
        self.hn = xp.empty(hs.shape, dtype=hs.dtype)  # W_hn h_{t-1} + b_hn, which r scales
        h = self.h0
        for t in range(len(xg)):
            gh = h @ w_hh.T
            if b_hh is not None:
                gh += b_hh
            rz, n = gates[t, :, :2 * H], gates[t, :, 2 * H:]
            rz += gh[:, :2 * H]
            _sigmoid_(xp, rz)
            self.hn[t] = gh[:, 2 * H:]
            n += rz[:, :H] * self.hn[t]
            xp.tanh(n, out=n)
            xp.subtract(h, n, out=hs[t])
            hs[t] *= rz[:, H:]
            hs[t] += n
            h = hs[t]

    def run_backward(self, g):
        xp, (hs,), gates = self.xp, self.states, self.gates
        H = hs.shape[-1]
        dxg = xp.empty(gates.shape, dtype=gates.dtype)  # (T, B, 3H)
        dgh = xp.empty(gates.shape, dtype=gates.dtype)  # differs from dxg in the n block: times r
        dh = xp.zeros_like(self.h0)
        for t in reversed(range(len(hs))):
            r, z, n = gates[t, :, :H], gates[t, :, H:2 * H], gates[t, :, 2 * H:]
            h_prev = hs[t - 1] if t else self.h0
            dh = dh + g[0, t]
            dn = dh * (1 - z) * (1 - n * n)  # through tanh: the gradient of n's pre-activation
            xp.multiply(dn * self.hn[t], r * (1 - r), out=dxg[t, :, :H])
            xp.multiply(dh * (h_prev - n), z * (1 - z), out=dxg[t, :, H:2 * H])
            dxg[t, :, 2 * H:] = dn
            dgh[t, :, :2 * H] = dxg[t, :, :2 * H]
            xp.multiply(dn, r, out=dgh[t, :, 2 * H:])
            dh = dh * z + dgh[t] @ self.w_hh
        return dxg, dgh, dh, None


LAYERS = {"RNN_TANH": RNNTanhLayer, "RNN_RELU": RNNReluLayer, "LSTM": LSTMLayer, "GRU": GRULayer}
GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}  # blocks of hidden_size rows in W_ih and W_hh


def _check_layer_args(mode: str, input: Tensor, h0: Tensor | None, c0: Tensor | None, weight_hh: Tensor,
                      bias_hh: Tensor | None, batch_first: bool) -> None:
    """Shapes and dtypes that ``linear`` does not check already (it checks weight_ih and bias_ih)."""
    if mode not in LAYERS:
        raise ValueError(f"rnn_layer: unknown mode {mode!r}: expected one of {', '.join(LAYERS)}")
    if input.ndim != 3:
        layout = "(B, T, input_size)" if batch_first else "(T, B, input_size)"
        raise ValueError(f"rnn_layer: {mode} expected input of shape {layout}, got {tuple(input.shape)}")
    hidden, batch = weight_hh.shape[-1], input.shape[0 if batch_first else 1]
    expected = {"weight_hh": (GATES[mode] * hidden, hidden), "bias_hh": (GATES[mode] * hidden,),
                "h0": (batch, hidden), "c0": (batch, hidden)}
    for name, value in (("weight_hh", weight_hh), ("bias_hh", bias_hh), ("h0", h0), ("c0", c0)):
        if value is None:
            continue
        if tuple(value.shape) != expected[name]:
            raise ValueError(f"rnn_layer: {mode} {name} has shape {tuple(value.shape)}, expected {expected[name]} "
                             f"(input of shape {tuple(input.shape)}, hidden_size={hidden})")
        if value.dtype != input.dtype:
            raise TypeError(f"rnn_layer: {mode} input is {input.dtype} but {name} is {value.dtype}; cast one of them")


def rnn_layer(mode: str, input: Tensor, h0: Tensor | None, c0: Tensor | None, weight_ih: Tensor, weight_hh: Tensor,
              bias_ih: Tensor | None = None, bias_hh: Tensor | None = None,
              batch_first: bool = False) -> tuple[Tensor, Tensor, Tensor | None]:
    """One recurrent layer (``mode``: "RNN_TANH", "RNN_RELU", "LSTM" or "GRU") over a sequence.

    input (T, B, in) ((B, T, in) if ``batch_first``), h0 and c0 (B, H) or None for zeros (c0: LSTM
    only), weight_ih (G * H, in), weight_hh (G * H, H), biases (G * H,) with G gate blocks.
    Returns (output (T, B, H) or (B, T, H), h_n (B, H), c_n (B, H) for the LSTM else None).
    """
    _check_layer_args(mode, input, h0, c0, weight_hh, bias_hh, batch_first)
    xg = linear(input, weight_ih, bias_ih)  # every step's input projection in one matrix product
    states = LAYERS[mode].apply(xg, h0, c0, weight_hh, bias_hh, batch_first)
    last = (slice(None), -1) if batch_first else (-1,)  # the last time step of (B, T, H) or (T, B, H)
    c_n = states[(1, *last)] if mode == "LSTM" else None
    return states[0], states[(0, *last)], c_n
