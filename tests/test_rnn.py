"""Recurrent layers (``nn.RNN``/``LSTM``/``GRU`` and their cells) and the CharLSTM model.

Layers and cells get PyTorch's weights through ``load_state_dict`` (the keys must be PyTorch's) and
must then compute PyTorch's outputs, final states and gradients with respect to the input, the
initial states and every parameter, on every backend. The fused per-layer op gets a float64
gradcheck on tiny sizes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from oracle import check_grad, torch
from tensorlite.models import CharLSTM, CharLSTMConfig

import tensorlite as tl
from tensorlite import nn
from tensorlite.ops.recurrent import rnn_layer

# (tensorlite class, torch class name, extra constructor arguments) of every recurrent family.
LAYERS = {
    "rnn_tanh": (nn.RNN, "RNN", {}),
    "rnn_relu": (nn.RNN, "RNN", {"nonlinearity": "relu"}),
    "lstm": (nn.LSTM, "LSTM", {}),
    "gru": (nn.GRU, "GRU", {}),
}
CELLS = {
    "rnn_tanh": (nn.RNNCell, "RNNCell", {}),
    "rnn_relu": (nn.RNNCell, "RNNCell", {"nonlinearity": "relu"}),
    "lstm": (nn.LSTMCell, "LSTMCell", {}),
    "gru": (nn.GRUCell, "GRUCell", {}),
}
MODES = {"rnn_tanh": "RNN_TANH", "rnn_relu": "RNN_RELU", "lstm": "LSTM", "gru": "GRU"}
rng = np.random.default_rng(0)


def randn(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def _pair(ours_cls, torch_name: str, kwargs: dict, device: str, *args):
    """A torch module and ours with the torch module's weights; their state-dict keys must agree."""
    theirs = getattr(torch.nn, torch_name)(*args, **kwargs)
    ours = ours_cls(*args, **kwargs, device=device)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: tl.tensor(v.detach().numpy(), device=device) for k, v in theirs.state_dict().items()})
    return ours, theirs


def _leaves(arrays: list[np.ndarray | None], device: str) -> tuple[list, list]:
    """Each host array as a tensorlite and a torch leaf that require grad (None stays None)."""
    ours = [None if a is None else tl.tensor(a, device=device, requires_grad=True) for a in arrays]
    theirs = [None if a is None else torch.tensor(a, requires_grad=True) for a in arrays]
    return ours, theirs


def _flatten(out) -> list:
    """The tensors in a (nested) tuple of results, in order."""
    if isinstance(out, (tuple, list)):
        return [t for item in out for t in _flatten(item)]
    return [out]


def _compare(ours_module, theirs_module, out_ours, out_theirs, leaves_ours, leaves_theirs, device: str,
             rtol: float = 1e-4, atol: float = 1e-5) -> None:
    """Same results, then the same gradients (input, states, parameters) of a random weighting of all results."""
    outs_ours, outs_theirs = _flatten(out_ours), _flatten(out_theirs)
    assert len(outs_ours) == len(outs_theirs)
    loss_ours = loss_theirs = 0
    for a, b in zip(outs_ours, outs_theirs):
        assert tuple(a.shape) == tuple(b.shape)
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=rtol, atol=atol, err_msg="forward")
        w = randn(*b.shape)
        loss_ours = loss_ours + (a * tl.tensor(w, device=device)).sum()
        loss_theirs = loss_theirs + (b * torch.from_numpy(w)).sum()
    loss_ours.backward()
    loss_theirs.backward()
    for i, (a, b) in enumerate(zip(leaves_ours, leaves_theirs)):
        if b is not None:
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=rtol, atol=atol,
                                       err_msg=f"gradient of input/state {i}")
    theirs_params = dict(theirs_module.named_parameters())
    for name, param in ours_module.named_parameters():
        np.testing.assert_allclose(param.grad.numpy(), theirs_params[name].grad.numpy(), rtol=rtol, atol=atol,
                                   err_msg=f"gradient of {name}")


# -- layers ------------------------------------------------------------------------------------------
@pytest.mark.parity
@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_layer_matches_torch(device, kind, num_layers, batch_first, with_state, bias):
    cls, torch_name, extra = LAYERS[kind]
    T, B, n_in, H = 5, 3, 4, 6
    ours, theirs = _pair(cls, torch_name, dict(extra, num_layers=num_layers, batch_first=batch_first, bias=bias),
                         device, n_in, H)
    x = randn(B, T, n_in) if batch_first else randn(T, B, n_in)
    states = [randn(num_layers, B, H), randn(num_layers, B, H) if kind == "lstm" else None] if with_state else []
    leaves_ours, leaves_theirs = _leaves([x, *states], device)
    if not with_state:
        hx_ours = hx_theirs = None
    elif kind == "lstm":
        hx_ours, hx_theirs = tuple(leaves_ours[1:]), tuple(leaves_theirs[1:])
    else:
        hx_ours, hx_theirs = leaves_ours[1], leaves_theirs[1]
    _compare(ours, theirs, ours(leaves_ours[0], hx_ours), theirs(leaves_theirs[0], hx_theirs), leaves_ours,
             leaves_theirs, device)


@pytest.mark.parity
@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("with_state", [False, True])
def test_layer_unbatched_input_matches_torch(device, kind, with_state):
    cls, torch_name, extra = LAYERS[kind]
    ours, theirs = _pair(cls, torch_name, dict(extra, num_layers=2, batch_first=True), device, 3, 4)
    arrays = [randn(5, 3)] + ([randn(2, 4)] + ([randn(2, 4)] if kind == "lstm" else []) if with_state else [])
    leaves_ours, leaves_theirs = _leaves(arrays, device)
    hx_ours = (tuple(leaves_ours[1:]) if kind == "lstm" else leaves_ours[1]) if with_state else None
    hx_theirs = (tuple(leaves_theirs[1:]) if kind == "lstm" else leaves_theirs[1]) if with_state else None
    out_ours = ours(leaves_ours[0], hx_ours)
    assert out_ours[0].shape == (5, 4)
    _compare(ours, theirs, out_ours, theirs(leaves_theirs[0], hx_theirs), leaves_ours, leaves_theirs, device)


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("batch_first", [False, True])
def test_layer_op_gradcheck(device, kind, batch_first):
    """float64 finite differences of the fused op: input, both initial states, both weights, both biases."""
    mode, G = MODES[kind], {"lstm": 4, "gru": 3}.get(kind, 1)
    T, B, n_in, H = 3, 2, 3, 2

    def layer(x, h0, w_ih, w_hh, b_ih, b_hh, c0=None):
        outs = rnn_layer(mode, x, h0, c0, w_ih, w_hh, b_ih, b_hh, batch_first=batch_first)
        return tuple(t for t in outs if t is not None)

    x = randn(B, T, n_in) if batch_first else randn(T, B, n_in)
    arrays = [x, randn(B, H), randn(G * H, n_in), randn(G * H, H), randn(G * H), randn(G * H)]
    check_grad(layer, arrays + ([randn(B, H)] if kind == "lstm" else []), device)


def test_backward_twice_with_retain_graph(device):
    lstm = nn.LSTM(3, 4, num_layers=2, device=device)
    x = tl.randn(5, 2, 3, device=device, requires_grad=True)
    out, (h_n, c_n) = lstm(x)
    loss = out.sum() + h_n.sum() + c_n.sum()
    loss.backward(retain_graph=True)
    first = [x.grad.numpy().copy()] + [p.grad.numpy().copy() for p in lstm.parameters()]
    x.grad = None
    lstm.zero_grad()
    loss.backward()
    second = [x.grad.numpy()] + [p.grad.numpy() for p in lstm.parameters()]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


# -- cells -------------------------------------------------------------------------------------------
@pytest.mark.parity
@pytest.mark.parametrize("kind", CELLS)
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batched", [True, False])
def test_cell_matches_torch(device, kind, with_state, bias, batched):
    cls, torch_name, extra = CELLS[kind]
    ours, theirs = _pair(cls, torch_name, dict(extra, bias=bias), device, 3, 5)
    lead = (4,) if batched else ()
    states = [randn(*lead, 5)] + ([randn(*lead, 5)] if kind == "lstm" else []) if with_state else []
    leaves_ours, leaves_theirs = _leaves([randn(*lead, 3), *states], device)
    hx_ours = (tuple(leaves_ours[1:]) if kind == "lstm" else leaves_ours[1]) if with_state else None
    hx_theirs = (tuple(leaves_theirs[1:]) if kind == "lstm" else leaves_theirs[1]) if with_state else None
    _compare(ours, theirs, ours(leaves_ours[0], hx_ours), theirs(leaves_theirs[0], hx_theirs), leaves_ours,
             leaves_theirs, device)


def test_cells_chained_over_time_equal_the_layer(device):
    """An LSTMCell stepped by hand computes what the one-layer LSTM computes with the same weights."""
    layer = nn.LSTM(3, 4, device=device)
    cell = nn.LSTMCell(3, 4, device=device)
    cell.load_state_dict({name[:-3]: value for name, value in layer.state_dict().items()})  # weight_ih_l0 -> weight_ih
    x = tl.randn(6, 2, 3, device=device)
    out, (h_n, c_n) = layer(x)
    h = c = tl.zeros(2, 4, device=device)
    for t in range(6):
        h, c = cell(x[t], (h, c))
        np.testing.assert_allclose(h.numpy(), out[t].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c.numpy(), c_n[0].numpy(), rtol=1e-5, atol=1e-6)


# -- construction, initialisation, errors ------------------------------------------------------------
@pytest.mark.parity
@pytest.mark.parametrize("kind", LAYERS)
def test_parameters_shapes_init_and_repr_match_torch(kind):
    cls, torch_name, extra = LAYERS[kind]
    for args, kwargs in [((10, 20), {}), ((10, 20, 2), {"batch_first": True, "bias": False, "dropout": 0.5})]:
        ours, theirs = cls(*args, **extra, **kwargs), getattr(torch.nn, torch_name)(*args, **extra, **kwargs)
        assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == \
            {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
        assert repr(ours) == repr(theirs)
    bound = 1 / math.sqrt(20)
    values = np.concatenate([np.abs(p.numpy()).ravel() for p in cls(10, 20, 2, **extra).parameters()])
    assert values.max() <= bound and values.max() > 0.99 * bound and values.mean() > 0.45 * bound  # U(-bound, bound)
    cell_cls, cell_name, cell_extra = CELLS[kind]
    assert repr(cell_cls(3, 4, bias=False, **cell_extra)) == repr(getattr(torch.nn, cell_name)(3, 4, False,
                                                                                               **cell_extra))


def test_dropout_between_layers_only_while_training(device):
    lstm = nn.LSTM(3, 8, num_layers=2, dropout=0.5, device=device)
    x = tl.randn(4, 2, 3, device=device)
    lstm.eval()
    a, b = lstm(x)[0].numpy(), lstm(x)[0].numpy()
    np.testing.assert_array_equal(a, b)
    lstm.train()
    assert not np.allclose(lstm(x)[0].numpy(), a)
    no_dropout = nn.LSTM(3, 8, num_layers=2, device=device)
    no_dropout.load_state_dict(lstm.state_dict())
    np.testing.assert_allclose(no_dropout(x)[0].numpy(), a, rtol=1e-6)  # in training mode too: p=0
    with pytest.warns(UserWarning, match="dropout=0.5 has no effect with num_layers=1"):
        nn.GRU(3, 4, dropout=0.5)


def test_layer_errors_name_the_problem(device):
    lstm = nn.LSTM(3, 4, num_layers=2, device=device)
    with pytest.raises(ValueError, match=r"LSTM: input has 5 features .* expected input_size=3"):
        lstm(tl.randn(2, 2, 5, device=device))
    with pytest.raises(ValueError, match="LSTM: expected input of 2 .* or 3 dimensions"):
        lstm(tl.randn(2, device=device))
    with pytest.raises(ValueError, match=r"LSTM: expected c_0 of shape \(2, 2, 4\)"):
        lstm(tl.randn(6, 2, 3, device=device), (tl.zeros(2, 2, 4, device=device), tl.zeros(1, 2, 4, device=device)))
    with pytest.raises(TypeError, match=r"LSTM: hx must be a tuple \(h_0, c_0\)"):
        lstm(tl.randn(6, 2, 3, device=device), tl.zeros(2, 2, 4, device=device))
    with pytest.raises(ValueError, match=r"GRU: expected hx of shape \(1, 2, 4\)"):
        nn.GRU(3, 4, device=device)(tl.randn(6, 2, 3, device=device), tl.zeros(1, 3, 4, device=device))
    with pytest.raises(ValueError, match=r"GRUCell: expected input of shape \(batch, 3\)"):
        nn.GRUCell(3, 4, device=device)(tl.randn(2, 4, device=device))
    with pytest.raises(TypeError, match="rnn_layer: LSTM input is float64 but weight_hh is float32"):
        lstm(tl.randn(6, 2, 3, device=device, dtype=tl.float64))
    w_ih, w_hh = tl.randn(8, 3, device=device), tl.randn(8, 2, device=device)
    with pytest.raises(ValueError, match=r"rnn_layer: GRU weight_hh has shape \(8, 2\), expected \(6, 2\)"):
        rnn_layer("GRU", tl.randn(4, 2, 3, device=device), None, None, w_ih, w_hh)
    with pytest.raises(ValueError, match=r"rnn_layer: LSTM h0 has shape \(4, 2\), expected \(2, 2\)"):
        rnn_layer("LSTM", tl.randn(4, 2, 3, device=device), tl.zeros(4, 2, device=device), None, w_ih, w_hh)
    with pytest.raises(NotImplementedError, match="LSTM: bidirectional=True is not implemented"):
        nn.LSTM(3, 4, bidirectional=True)
    with pytest.raises(ValueError, match="RNN: unknown nonlinearity 'sigmoid'"):
        nn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match=r"GRU: dropout must be a number in \[0, 1\]"):
        nn.GRU(3, 4, 2, dropout=1.5)


# -- CharLSTM ----------------------------------------------------------------------------------------
def _torch_char_lstm(config: CharLSTMConfig):
    class TorchCharLSTM(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = torch.nn.Embedding(config.vocab_size, config.n_embd)
            self.lstm = torch.nn.LSTM(config.n_embd, config.hidden_size, config.num_layers, batch_first=True)
            self.lm_head = torch.nn.Linear(config.hidden_size, config.vocab_size)

        def forward(self, idx, targets):
            logits = self.lm_head(self.lstm(self.embedding(idx))[0])
            return logits, torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())

    return TorchCharLSTM()


@pytest.mark.parity
def test_char_lstm_loss_and_gradients_match_torch(device):
    config = CharLSTMConfig(vocab_size=11, n_embd=6, hidden_size=8, num_layers=2, block_size=7)
    theirs = _torch_char_lstm(config)
    ours = CharLSTM(config).to(device)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: tl.tensor(v.detach().numpy(), device=device) for k, v in theirs.state_dict().items()})
    idx, targets = rng.integers(0, 11, (3, 7)), rng.integers(0, 11, (3, 7))
    logits, loss = ours(tl.tensor(idx, device=device), tl.tensor(targets, device=device))
    t_logits, t_loss = theirs(torch.from_numpy(idx), torch.from_numpy(targets))
    assert logits.shape == (3, 7, 11)
    np.testing.assert_allclose(logits.numpy(), t_logits.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loss.item(), t_loss.item(), rtol=1e-6)
    loss.backward()
    t_loss.backward()
    theirs_params = dict(theirs.named_parameters())
    for name, param in ours.named_parameters():
        np.testing.assert_allclose(param.grad.numpy(), theirs_params[name].grad.numpy(), rtol=1e-4, atol=1e-6,
                                   err_msg=name)
    assert ours(tl.tensor(idx, device=device))[1] is None


def test_char_lstm_generation(device):
    model = CharLSTM(CharLSTMConfig(vocab_size=13, n_embd=4, hidden_size=8, num_layers=2)).to(device).eval()
    prompt = tl.tensor([[1, 2, 3]], device=device)

    def sample(**kwargs):
        tl.manual_seed(7)
        return model.generate(prompt, 12, **kwargs).numpy()

    first = sample(temperature=0.9, top_k=5)
    assert first.shape == (1, 15) and (first[:, :3] == [[1, 2, 3]]).all() and first.dtype == np.int64
    np.testing.assert_array_equal(sample(temperature=0.9, top_k=5), first)  # the seed decides
    np.testing.assert_array_equal(sample(temperature=0.9, top_k=5, use_cache=False), first)  # state carried = re-read
    tl.manual_seed(7)
    streamed = list(model.generate_tokens(prompt, 12, temperature=0.9, top_k=5))
    assert streamed == first[0, 3:].tolist()
    batch = model.generate(tl.tensor([[1, 2], [3, 4]], device=device), 5)
    assert batch.shape == (2, 7)
    with pytest.raises(ValueError, match=r"generate_tokens: expected one sequence idx of shape \(1, T\)"):
        next(model.generate_tokens(tl.tensor([[1], [2]], device=device), 3))


def test_char_lstm_state_carries_over(device):
    """Reading a sequence in two halves, carrying (h, c), gives the logits of reading it at once."""
    model = CharLSTM(CharLSTMConfig(vocab_size=9, n_embd=4, hidden_size=6, num_layers=2)).to(device)
    idx = tl.tensor(rng.integers(0, 9, (2, 8)), device=device)
    whole, _ = model(idx)
    first, state = model.logits_and_state(idx[:, :5])
    second, _ = model.logits_and_state(idx[:, 5:], state)
    np.testing.assert_allclose(tl.cat([first, second], dim=1).numpy(), whole.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match=r"CharLSTM: expected token ids as an integer tensor \(B, T\)"):
        model(tl.randn(2, 3, device=device))
