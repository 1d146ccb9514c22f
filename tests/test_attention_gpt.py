"""Attention and the GPT model: ``F.scaled_dot_product_attention``, ``nn.MultiheadAttention``, and
``tensorlite.models.GPT`` against nanoGPT's ``model.py`` written in PyTorch.

The op gets float64 gradchecks and float32 PyTorch parity (masks, causal, L != S, scale); the layer
and the model load PyTorch's weights through ``load_state_dict`` and must then compute PyTorch's
outputs, losses and every parameter gradient. Generation with the key/value cache must sample
exactly the tokens that generation without it samples while the context fits in block_size, and
past it follow the context window that each mode documents.
"""

from __future__ import annotations

import math
import re
from types import SimpleNamespace

import numpy as np
import pytest
from oracle import TF, check_grad, check_parity, torch

import tensorlite as tl
from tensorlite import models, nn
from tensorlite.ops.attention import causal_mask

F = tl.nn.functional
rng = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _fresh_rng() -> None:
    """Each test draws the same data however the tests before it ran (selection, order, -k)."""
    global rng
    rng = np.random.default_rng(0)
SMALL = dict(n_layer=2, n_head=2, n_embd=16, block_size=8, vocab_size=11)


def randn(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape)


def host(t) -> np.ndarray:
    return t.detach().numpy() if hasattr(t, "detach") else np.asarray(t)


# -- scaled_dot_product_attention ---------------------------------------------------------------------
SDPA_CASES = {  # name: (q shape, k shape, v shape, keyword arguments)
    "plain": ((2, 3, 4), (2, 5, 4), (2, 5, 3), {}),
    "causal square": ((1, 2, 4, 3), (1, 2, 4, 3), (1, 2, 4, 2), {"is_causal": True}),
    "causal L > S": ((5, 3), (3, 3), (3, 2), {"is_causal": True}),
    "causal L < S": ((3, 3), (5, 3), (5, 2), {"is_causal": True}),
    "scale": ((2, 3, 4), (2, 5, 4), (2, 5, 3), {"scale": 0.3}),
    "broadcast batch": ((2, 3, 4), (1, 5, 4), (5, 3), {}),
}


@pytest.mark.parametrize("case", SDPA_CASES)
def test_sdpa_gradcheck_and_parity(check, device, case):
    q_shape, k_shape, v_shape, kwargs = SDPA_CASES[case]
    arrays = [randn(*q_shape), randn(*k_shape), randn(*v_shape)]
    check.grad(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, **kwargs), arrays, device)
    check.parity(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, **kwargs),
                 torch and (lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(q, k, v, **kwargs)),
                 arrays, device)


def test_sdpa_bool_mask_gradcheck_and_parity(check, device):
    arrays = [randn(2, 3, 4), randn(2, 5, 4), randn(2, 5, 3)]
    allowed = rng.random((3, 5)) < 0.6
    allowed[:, 0] = True  # every query sees at least one key
    ours = lambda q, k, v: F.scaled_dot_product_attention(q, k, v, tl.tensor(allowed, device=device))  # noqa: E731
    check.grad(ours, arrays, device)
    check.parity(ours, torch and (lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(
        q, k, v, torch.from_numpy(allowed))), arrays, device)


@pytest.mark.parametrize("mask_shape", [(3, 5), (2, 3, 5)], ids=["broadcast", "the scores' shape"])
def test_sdpa_float_mask_gets_a_gradient(check, device, mask_shape):
    """A mask that broadcasts over the batch, and one of the scores' own shape (its gradient once came back
    multiplied by the scale: it was the very array that backward then scaled for the queries and keys)."""
    arrays = [randn(2, 3, 4), randn(2, 5, 4), randn(2, 5, 3), randn(*mask_shape)]
    check.grad(F.scaled_dot_product_attention, arrays, device)
    check.parity(F.scaled_dot_product_attention, lambda *a: TF.scaled_dot_product_attention(*a), arrays, device)


def test_sdpa_of_views_in_any_memory_order(device):
    """Queries whose axes lie in memory in an order that is not its own inverse (a new axis in front: stride 0
    outermost), or transposed three ways: the output's layout follows them and the values are attention's."""
    x = tl.tensor(randn(4, 3, 5), device=device)
    for q in (x[0][None], x.permute(1, 2, 0).permute(2, 0, 1), x.permute(2, 0, 1).permute(1, 2, 0)):
        out = F.scaled_dot_product_attention(q, q, q)
        weights = (q @ q.transpose(-1, -2) / np.sqrt(q.shape[-1])).softmax(dim=-1)
        np.testing.assert_allclose(host(out), host(weights @ q), rtol=1e-5, atol=1e-6)


@pytest.mark.parity
def test_sdpa_fully_masked_row_gives_zeros_not_nan(device):
    """As PyTorch: a query that may attend to nothing gets a zero output and zero gradients."""
    arrays = [randn(3, 4), randn(5, 4), randn(5, 2)]
    allowed = np.ones((3, 5), dtype=bool)
    allowed[1] = False
    check_parity(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, tl.tensor(allowed, device=device)),
                 torch and (lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(
                     q, k, v, torch.from_numpy(allowed))), arrays, device)
    q, k, v = (tl.tensor(a.astype(np.float32), device=device, requires_grad=True) for a in arrays)
    out = F.scaled_dot_product_attention(q, k, v, tl.tensor(allowed, device=device))
    out.sum().backward()
    assert np.all(host(out)[1] == 0) and np.isfinite(host(out)).all()
    assert np.all(host(q.grad)[1] == 0) and np.isfinite(host(k.grad)).all()


def test_sdpa_causal_mask_is_built_once_per_shape(device):
    q = tl.randn(2, 5, 4, device=device)
    F.scaled_dot_product_attention(q, q, q, is_causal=True)
    mask = causal_mask(q.device, 5, 5, q.dtype)
    F.scaled_dot_product_attention(q, q, q, is_causal=True)
    assert causal_mask(q.device, 5, 5, q.dtype) is mask
    assert causal_mask(q.device, 5, 3, q.dtype) is not mask
    np.testing.assert_array_equal(np.isfinite(mask.get() if hasattr(mask, "get") else mask), np.tri(5, dtype=bool))


def test_sdpa_output_of_transposed_heads_merges_without_copy():
    """Heads are views (B, nh, T, hs) of (B, T, nh * hs); the output comes back laid out the same way."""
    B, T, nh, hs = 2, 5, 3, 4
    qkv = tl.randn(B, T, 3 * nh * hs)
    q, k, v = (t.view(B, T, nh, hs).transpose(1, 2) for t in qkv.split(nh * hs, dim=2))
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    merged = y.transpose(1, 2).reshape(B, T, nh * hs)
    assert np.shares_memory(merged.numpy(), y.numpy())


def test_kv_cache_attention_equals_causal_attention_over_the_whole_sequence(device):
    """Prefill 3 positions, add 1, then 2 at once: each output equals causal SDPA's for those positions,
    and the cache holds every key and value written so far (positions past them stay untouched)."""
    B, T, nh, hs = 2, 6, 3, 4
    qkv = tl.randn(B, T, 3 * nh * hs, device=device)
    q, k, v = (t.view(B, T, nh, hs).transpose(1, 2) for t in qkv.split(nh * hs, dim=2))
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, nh * hs)
    cache = tl.zeros(2, B, nh, 8, hs, device=device)
    steps = [F.kv_cache_attention(qkv[:, a:b], cache, a, nh) for a, b in ((0, 3), (3, 4), (4, 6))]
    np.testing.assert_allclose(host(tl.cat(steps, dim=1)), host(expected), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(host(cache)[:, :, :, :T], np.stack([host(k), host(v)]))
    assert not host(cache)[:, :, :, T:].any()
    assert not steps[0].requires_grad


def test_kv_cache_attention_errors_name_the_op_and_the_expected_shapes(device):
    cache = tl.zeros(2, 1, 2, 4, 3, device=device)
    with pytest.raises(ValueError, match=r"kv_cache_attention: expected qkv \(B, T, 3 \* C\)"):
        F.kv_cache_attention(tl.zeros(1, 2, 17, device=device), cache, 0, 2)
    with pytest.raises(ValueError, match=r"kv_cache_attention: expected a float32 cache \(2, 1, 2, max_len, 3\)"):
        F.kv_cache_attention(tl.zeros(1, 2, 18, device=device), tl.zeros(2, 1, 2, 4, 2, device=device), 0, 2)
    with pytest.raises(ValueError, match="positions 3..4 do not fit in a cache of 4 positions"):
        F.kv_cache_attention(tl.zeros(1, 2, 18, device=device), cache, 3, 2)


def test_sdpa_dropout_statistics_and_seed(device):
    """Dropout zeroes weights with probability p and scales the others by 1 / (1 - p): with v = 1 every output
    is a sum of kept weights / (1 - p), whose mean is 1. The same seed drops the same weights."""
    q, k = tl.randn(200, 6, 4, device=device), tl.randn(200, 6, 4, device=device)
    v = tl.ones(200, 6, 1, device=device)
    tl.manual_seed(3)
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    assert out.shape == (200, 6, 1) and np.isfinite(host(out)).all()
    assert abs(host(out).mean() - 1.0) < 0.05
    assert (host(out) != 1.0).mean() > 0.9  # the plain output would be exactly 1
    tl.manual_seed(3)
    np.testing.assert_array_equal(host(F.scaled_dot_product_attention(q, k, v, dropout_p=0.5)), host(out))
    assert np.all(host(F.scaled_dot_product_attention(q, k, v, dropout_p=1.0)) == 0)


def test_sdpa_dropout_gradient_matches_the_dropped_weights(device):
    """With dropout the gradient is that of the dropped-out weights: check it by finite differences with a
    fixed seed (each evaluation re-draws the same mask)."""
    arrays = [randn(2, 3), randn(4, 3), randn(4, 2)]

    def fn(q, k, v):
        tl.manual_seed(5)
        return F.scaled_dot_product_attention(q, k, v, dropout_p=0.4)

    check_grad(fn, arrays, device)


def test_sdpa_errors_name_the_problem(device):
    q = tl.randn(2, 3, 4, device=device)
    with pytest.raises(ValueError, match="attn_mask or is_causal"):
        F.scaled_dot_product_attention(q, q, q, tl.ones(3, 3, dtype=tl.bool, device=device), is_causal=True)
    with pytest.raises(ValueError, match=r"key \(..., S, E\)"):
        F.scaled_dot_product_attention(q, tl.randn(2, 3, 5, device=device), q)
    with pytest.raises(ValueError, match=r"attn_mask of shape \(4, 3\) does not broadcast"):
        F.scaled_dot_product_attention(q, q, q, tl.ones(4, 3, dtype=tl.bool, device=device))
    with pytest.raises(TypeError, match="attn_mask must be bool or float32"):
        F.scaled_dot_product_attention(q, q, q, tl.ones(3, 3, dtype=tl.int64, device=device))
    with pytest.raises(ValueError, match="dropout_p"):
        F.scaled_dot_product_attention(q, q, q, dropout_p=1.5)


# -- nn.MultiheadAttention --------------------------------------------------------------------------
def mha_pair(device, embed_dim=8, num_heads=2, **kwargs):
    """A tensorlite and a PyTorch MultiheadAttention with the same (PyTorch's) weights."""
    torch.manual_seed(0)
    theirs = torch.nn.MultiheadAttention(embed_dim, num_heads, **kwargs)
    with torch.no_grad():  # non-zero biases, so that they are tested too
        for p in theirs.parameters():
            p.add_(0.1 * torch.randn_like(p))
    ours = nn.MultiheadAttention(embed_dim, num_heads, device=device, **kwargs)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def compare_mha(ours, theirs, device, arrays, masks=(None, None), call=None, rtol=1e-5, atol=1e-6):
    """Same inputs (and masks) through both layers: outputs, weights, input and parameter gradients."""
    call = call or {}
    ins = [tl.tensor(a.astype(np.float32), device=device, requires_grad=True) for a in arrays]
    tins = [torch.tensor(a.astype(np.float32), requires_grad=True) for a in arrays]
    if len(arrays) == 1:  # self-attention: one tensor as query, key and value
        ins, tins = ins * 3, tins * 3
    kpm, am = masks
    out, w = ours(*ins, key_padding_mask=None if kpm is None else tl.tensor(kpm, device=device),
                  attn_mask=None if am is None else tl.tensor(am, device=device), **call)
    tout, tw = theirs(*tins, key_padding_mask=None if kpm is None else torch.from_numpy(kpm),
                      attn_mask=None if am is None else torch.from_numpy(am), **call)
    np.testing.assert_allclose(host(out), host(tout), rtol=rtol, atol=atol)
    assert (w is None) == (tw is None)
    if w is not None:
        np.testing.assert_allclose(host(w), host(tw), rtol=rtol, atol=atol)
    g = rng.standard_normal(tuple(tout.shape)).astype(np.float32)
    (out * tl.tensor(g, device=device)).sum().backward()
    (tout * torch.from_numpy(g)).sum().backward()
    for a, b in zip(ins[:len(arrays)], tins[:len(arrays)]):
        np.testing.assert_allclose(host(a.grad), host(b.grad), rtol=rtol, atol=atol)
    theirs_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(host(p.grad), host(theirs_params[name].grad), rtol=rtol, atol=atol, err_msg=name)


@pytest.mark.parity
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("need_weights", [True, False])
def test_mha_self_attention_parity(device, batch_first, need_weights):
    ours, theirs = mha_pair(device, batch_first=batch_first)
    x = randn(3, 4, 8)
    compare_mha(ours, theirs, device, [x], call={"need_weights": need_weights})


@pytest.mark.parity
@pytest.mark.parametrize("batch_first", [False, True])
def test_mha_cross_attention_with_masks_parity(device, batch_first):
    """L != S; key padding (bool, True = ignore) together with a float or a bool attn_mask."""
    ours, theirs = mha_pair(device, batch_first=batch_first)
    N, L, S = 2, 3, 5
    q_shape, kv_shape = ((N, L, 8), (N, S, 8)) if batch_first else ((L, N, 8), (S, N, 8))
    arrays = [randn(*q_shape), randn(*kv_shape), randn(*kv_shape)]
    padding = np.zeros((N, S), dtype=bool)
    padding[0, 3:] = True
    padding_float = np.where(padding, -np.inf, 0.0).astype(np.float32)  # PyTorch wants both masks of one kind
    compare_mha(ours, theirs, device, arrays, masks=(padding_float, randn(L, S).astype(np.float32)))
    compare_mha(ours, theirs, device, arrays, masks=(padding, rng.random((L, S)) < 0.3))
    for p in ours.parameters():
        p.grad = None


@pytest.mark.parity
def test_mha_per_head_mask_and_unaveraged_weights(device):
    ours, theirs = mha_pair(device, batch_first=True)
    N, L, S = 2, 3, 4
    arrays = [randn(N, L, 8), randn(N, S, 8), randn(N, S, 8)]
    compare_mha(ours, theirs, device, arrays, masks=(None, randn(N * 2, L, S).astype(np.float32)),
                call={"average_attn_weights": False})


@pytest.mark.parity
def test_mha_unbatched_and_without_bias(device):
    ours, theirs = mha_pair(device, bias=False)
    assert ours.in_proj_bias is None and ours.out_proj.bias is None
    compare_mha(ours, theirs, device, [randn(3, 8), randn(5, 8), randn(5, 8)], masks=(rng.random(5) < 0.3, None))


@pytest.mark.parity
def test_mha_layout_matches_pytorch(device):
    ours, theirs = mha_pair(device, embed_dim=12, num_heads=3)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == {
        k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    fresh = nn.MultiheadAttention(12, 3, device=device)
    assert np.all(fresh.in_proj_bias.numpy() == 0) and np.all(fresh.out_proj.bias.numpy() == 0)
    bound = math.sqrt(6 / (12 + 36))  # xavier_uniform_ on (3E, E)
    assert 0.8 * bound < np.abs(fresh.in_proj_weight.numpy()).max() <= bound


def test_mha_errors(device):
    layer = nn.MultiheadAttention(8, 2, device=device)
    x = tl.randn(3, 2, 8, device=device)
    with pytest.raises(ValueError, match="embed_dim=8"):
        layer(tl.randn(3, 2, 6, device=device), x, x)
    with pytest.raises(ValueError, match=r"key_padding_mask must have shape \(N, S\) = \(2, 3\)"):
        layer(x, x, x, key_padding_mask=tl.ones(3, 2, dtype=tl.bool, device=device))
    with pytest.raises(ValueError, match="is_causal"):
        layer(x, x, x, is_causal=True)
    with pytest.raises(ValueError, match="multiple of num_heads"):
        nn.MultiheadAttention(10, 3)


# -- rotary_embedding -----------------------------------------------------------------------------------
ROTARY_CASES = {  # name: (x shape, tables shape)
    "heads (B, T, nh, hs)": ((2, 5, 3, 8), (5, 1, 4)),
    "one table for all": ((4, 6), (4, 3)),
    "offset positions": ((1, 3, 2, 4), (3, 1, 2)),
}


def rotary_reference(x, cos, sin):
    """The rotation written out with torch ops, as Hugging Face's LLaMA: x * cos + rotate_half(x) * sin."""
    half = x.shape[-1] // 2
    cos, sin = torch.cat([cos, cos], dim=-1), torch.cat([sin, sin], dim=-1)
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin


@pytest.mark.parametrize("case", ROTARY_CASES)
def test_rotary_embedding_gradcheck_and_parity(check, device, case):
    x_shape, table_shape = ROTARY_CASES[case]
    angles = rng.uniform(-4, 4, table_shape)
    arrays = [randn(*x_shape), np.cos(angles), np.sin(angles)]
    check.grad(F.rotary_embedding, arrays, device, grad=[True, False, False])
    check.parity(F.rotary_embedding, rotary_reference, arrays, device, grad=[True, False, False])


def test_rotary_tables_rotate_by_position_times_frequency(device):
    from tensorlite.ops.rotary import rotary_tables

    cos, sin = rotary_tables(6, 4, device=device)
    assert cos.shape == sin.shape == (6, 2) and cos.dtype == tl.float32 and cos.device == tl.device(device)
    angles = np.arange(6)[:, None] * np.array([1.0, 10000.0 ** -0.5])[None, :]
    np.testing.assert_allclose(host(cos), np.cos(angles), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(host(sin), np.sin(angles), rtol=1e-6, atol=1e-7)
    # The dot product of a rotated query and key depends only on their distance.
    q, k = tl.tensor(randn(4).astype(np.float32), device=device), tl.tensor(randn(4).astype(np.float32), device=device)
    rotated = lambda t, i: F.rotary_embedding(t, cos[i], sin[i])  # noqa: E731
    dots = [float((rotated(q, i + 2) * rotated(k, i)).sum()) for i in range(4)]
    np.testing.assert_allclose(dots, dots[0], rtol=1e-5)
    with pytest.raises(ValueError, match="rotary_tables: dim must be a positive even number"):
        rotary_tables(6, 5)


def test_rotary_embedding_errors(device):
    x = tl.zeros(2, 3, 4, device=device)
    cos = sin = tl.zeros(3, 2, device=device)
    with pytest.raises(ValueError, match=r"whose last dimension is even, got shape \(2, 3, 3\)"):
        F.rotary_embedding(tl.zeros(2, 3, 3, device=device), cos, sin)
    with pytest.raises(ValueError, match=r"cos must be a float32 tensor that broadcasts to \(2, 3, 2\).*\(4, 2\)"):
        F.rotary_embedding(x, tl.zeros(4, 2, device=device), sin)
    with pytest.raises(ValueError, match="sin must be a float32 tensor.*float64"):
        F.rotary_embedding(x, cos, tl.zeros(3, 2, dtype=tl.float64, device=device))
    with pytest.raises(ValueError, match="cos is a fixed table and gets no gradient"):
        F.rotary_embedding(x, tl.zeros(3, 2, device=device, requires_grad=True), sin)
    with pytest.raises(TypeError, match="sin must be a tensor"):
        F.rotary_embedding(x, cos, np.zeros((3, 2)))


# -- the nanoGPT reference in PyTorch ----------------------------------------------------------------
def torch_rotate(x, start: int = 0):
    """Rotary embedding of x (B, nh, T, hs) at positions start.., as Hugging Face's LLaMA writes it:
    ``x * cos + rotate_half(x) * sin`` with the angles repeated over both halves."""
    hs, T = x.shape[-1], x.shape[-2]
    inverse_frequency = 1.0 / (10000.0 ** (torch.arange(0, hs, 2, dtype=torch.float64) / hs))
    angles = torch.outer(torch.arange(start, start + T, dtype=torch.float64), inverse_frequency)
    angles = torch.cat([angles, angles], dim=-1).to(x.dtype)  # (T, hs)
    x1, x2 = x[..., :hs // 2], x[..., hs // 2:]
    return x * angles.cos() + torch.cat([-x2, x1], dim=-1) * angles.sin()


def torch_nanogpt():
    """nanoGPT's model.py (Block and GPT), in PyTorch: the reference for parity. With the recipe options of
    ``GPTConfig`` (rotary positions, QK-norm, ReLU squared, an untied head) where the config sets them."""
    tnn, tF = torch.nn, torch.nn.functional

    class CausalSelfAttention(tnn.Module):
        def __init__(self, c):
            super().__init__()
            self.c_attn = tnn.Linear(c.n_embd, 3 * c.n_embd, bias=c.bias)
            self.c_proj = tnn.Linear(c.n_embd, c.n_embd, bias=c.bias)
            self.n_head, self.n_embd, self.c = c.n_head, c.n_embd, c

        def forward(self, x):
            B, T, C = x.size()
            q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
            q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
            if getattr(self.c, "qk_norm", False):
                q, k = tF.rms_norm(q, (q.size(-1),)), tF.rms_norm(k, (k.size(-1),))
            if getattr(self.c, "positions", "learned") == "rotary":
                q, k = torch_rotate(q), torch_rotate(k)
            y = tF.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))

    class MLP(tnn.Module):
        def __init__(self, c):
            super().__init__()
            self.c_fc = tnn.Linear(c.n_embd, 4 * c.n_embd, bias=c.bias)
            self.gelu = tnn.GELU()
            self.c_proj = tnn.Linear(4 * c.n_embd, c.n_embd, bias=c.bias)
            self.relu2 = getattr(c, "activation", "gelu") == "relu2"

        def forward(self, x):
            h = self.c_fc(x)
            return self.c_proj(tF.relu(h).square() if self.relu2 else self.gelu(h))

    class Block(tnn.Module):
        def __init__(self, c):
            super().__init__()
            self.ln_1 = tnn.LayerNorm(c.n_embd, bias=c.bias)
            self.attn = CausalSelfAttention(c)
            self.ln_2 = tnn.LayerNorm(c.n_embd, bias=c.bias)
            self.mlp = MLP(c)

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class TorchGPT(tnn.Module):
        def __init__(self, c):
            super().__init__()
            self.learned = getattr(c, "positions", "learned") == "learned"
            self.transformer = tnn.ModuleDict(dict(
                wte=tnn.Embedding(c.vocab_size, c.n_embd),
                **({"wpe": tnn.Embedding(c.block_size, c.n_embd)} if self.learned else {}),
                drop=tnn.Dropout(c.dropout), h=tnn.ModuleList([Block(c) for _ in range(c.n_layer)]),
                ln_f=tnn.LayerNorm(c.n_embd, bias=c.bias)))
            self.lm_head = tnn.Linear(c.n_embd, c.vocab_size, bias=False)
            if getattr(c, "tie_embeddings", True):
                self.transformer.wte.weight = self.lm_head.weight

        def forward(self, idx, targets=None):
            x = self.transformer.wte(idx)
            if self.learned:
                x = x + self.transformer.wpe(torch.arange(0, idx.size(1), dtype=torch.long))
            x = self.transformer.drop(x)
            for block in self.transformer.h:
                x = block(x)
            logits = self.lm_head(self.transformer.ln_f(x))
            loss = None
            if targets is not None:
                loss = tF.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
            return logits, loss

    return SimpleNamespace(Block=Block, GPT=TorchGPT)


def load_from_torch(ours, theirs) -> None:
    """Copy PyTorch's weights into tensorlite through the ordinary load_state_dict (same keys)."""
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


def jitter_(module) -> None:
    """Perturb PyTorch's weights (LayerNorm gains and zero biases included) so that all of them matter."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.05 * torch.randn_like(p))


@pytest.mark.parity
@pytest.mark.parametrize("bias", [True, False])
def test_transformer_block_parity(device, bias):
    reference = torch_nanogpt()
    config = models.GPTConfig(**SMALL, bias=bias)
    theirs = reference.Block(SimpleNamespace(**config.to_dict()))
    jitter_(theirs)
    ours = models.gpt.Block(config).to(device)
    load_from_torch(ours, theirs)
    check_parity(ours, theirs, [randn(3, 6, 16)], device, rtol=1e-4, atol=1e-5)
    theirs_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(host(p.grad), host(theirs_params[name].grad), rtol=1e-4, atol=1e-5, err_msg=name)


RECIPES = {  # GPTConfig options beyond SMALL: nanoGPT's model, then each recipe option, then all of them
    "nanogpt": {}, "nanogpt without biases": {"bias": False}, "rotary": {"positions": "rotary"},
    "qk-norm": {"qk_norm": True}, "relu2": {"activation": "relu2"}, "untied": {"tie_embeddings": False},
    "all": {"bias": False, "positions": "rotary", "qk_norm": True, "activation": "relu2", "tie_embeddings": False,
            "init": "pytorch", "zero_init_proj": True},
}


@pytest.mark.parity
@pytest.mark.parametrize("recipe", RECIPES)
def test_gpt_forward_loss_and_every_gradient_match_nanogpt(device, recipe):
    """nanoGPT's model and each recipe option against the PyTorch reference (rotary positions written there as
    Hugging Face's LLaMA writes them, QK-norm as F.rms_norm)."""
    reference = torch_nanogpt()
    config = models.GPTConfig(**SMALL, **RECIPES[recipe])
    theirs = reference.GPT(SimpleNamespace(**config.to_dict()))
    jitter_(theirs)
    ours = models.GPT(config).to(device)
    load_from_torch(ours, theirs)
    idx = rng.integers(0, 11, size=(3, 8))
    targets = rng.integers(0, 11, size=(3, 8))
    targets[0, :2] = -1  # nanoGPT's ignore_index
    logits, loss = ours(tl.tensor(idx, device=device), tl.tensor(targets, device=device))
    tlogits, tloss = theirs(torch.from_numpy(idx), torch.from_numpy(targets))
    assert logits.shape == (3, 8, 11)
    np.testing.assert_allclose(host(logits), host(tlogits), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-5)
    loss.backward()
    tloss.backward()
    theirs_params = dict(theirs.named_parameters())
    names = [name for name, _ in ours.named_parameters()]
    assert names == list(theirs_params)  # the tied weight once, under transformer.wte.weight
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(host(p.grad), host(theirs_params[name].grad), rtol=1e-4, atol=1e-6, err_msg=name)
    short_logits, no_loss = ours(tl.tensor(idx[:, :5], device=device))
    assert no_loss is None
    np.testing.assert_allclose(host(short_logits), host(theirs(torch.from_numpy(idx[:, :5]))[0]), rtol=1e-4,
                               atol=1e-5)


@pytest.mark.parity
def test_gpt_training_step_from_a_pytorch_checkpoint_matches_pytorch(device, tmp_path):
    """PyTorch's initial weights saved as a safetensors checkpoint and loaded into tensorlite; then one
    whole training step (loss, backward, clipping to 1.0, AdamW with nanoGPT's groups) on the same batch
    in each gives the same loss, gradients and updated weights."""
    import safetensors.numpy

    reference = torch_nanogpt()
    config = models.GPTConfig(**SMALL, bias=False)
    theirs = reference.GPT(SimpleNamespace(**config.to_dict()))
    jitter_(theirs)
    path = tmp_path / "torch_init.safetensors"
    safetensors.numpy.save_file({k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()}, path)
    ours = models.GPT(config).to(device)
    ours.load_state_dict(tl.load(path, device))
    x, y = rng.integers(0, 11, size=(4, 8)), rng.integers(0, 11, size=(4, 8))
    optimizers = (ours.configure_optimizers(0.1, 1e-3, (0.9, 0.99)),
                  torch.optim.AdamW([{"params": [p for p in theirs.parameters() if p.dim() >= 2], "weight_decay": 0.1},
                                     {"params": [p for p in theirs.parameters() if p.dim() < 2],
                                      "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.99)))
    _, loss = ours(tl.tensor(x, device=device), tl.tensor(y, device=device))
    _, tloss = theirs(torch.from_numpy(x), torch.from_numpy(y))
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-5)
    loss.backward()
    tloss.backward()
    norm = nn.utils.clip_grad_norm_(ours.parameters(), 1.0)
    tnorm = torch.nn.utils.clip_grad_norm_(theirs.parameters(), 1.0)
    np.testing.assert_allclose(float(norm), float(tnorm), rtol=1e-5)
    theirs_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(host(p.grad), host(theirs_params[name].grad), rtol=1e-4, atol=1e-6, err_msg=name)
    for optimizer in optimizers:
        optimizer.step()
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(host(p), host(theirs_params[name]), rtol=1e-5, atol=1e-6, err_msg=name)


def test_gpt_weight_tying_and_state_dict(device):
    model = models.GPT(models.GPTConfig(**SMALL)).to(device)
    assert model.lm_head.weight is model.transformer.wte.weight
    params = dict(model.named_parameters())
    assert "transformer.wte.weight" in params and "lm_head.weight" not in params
    state = model.state_dict()
    assert "transformer.wte.weight" in state and "lm_head.weight" in state
    assert len(state) == len(params) + 1
    n_embd, n_layer, V, T = 16, 2, 11, 8
    per_block = 2 * 2 * n_embd + (3 * n_embd * n_embd + 3 * n_embd) + (n_embd * n_embd + n_embd) + (
        4 * n_embd * n_embd + 4 * n_embd) + (4 * n_embd * n_embd + n_embd)
    total = V * n_embd + T * n_embd + n_layer * per_block + 2 * n_embd
    assert model.num_parameters() == total and model.get_num_params() == total - T * n_embd
    # Loading keeps the tie: both keys write the one Parameter.
    other = models.GPT(models.GPTConfig(**SMALL)).to(device)
    other.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(other.lm_head.weight.numpy(), model.transformer.wte.weight.numpy())
    assert other.lm_head.weight is other.transformer.wte.weight


def test_gpt_init_follows_nanogpt(device):
    config = models.GPTConfig(n_layer=8, n_head=2, n_embd=64, block_size=16, vocab_size=50)
    model = models.GPT(config).to(device)
    block = model.transformer.h[0]
    assert abs(block.attn.c_attn.weight.numpy().std() - 0.02) < 0.002
    assert abs(block.mlp.c_proj.weight.numpy().std() - 0.02 / math.sqrt(2 * 8)) < 0.001
    assert np.all(block.attn.c_attn.bias.numpy() == 0)
    assert np.all(block.ln_1.weight.numpy() == 1)


def test_gpt_pytorch_init_is_each_layers_own(device):
    """init="pytorch": Linear weights and biases U(+-1/sqrt(fan_in)), the tied embedding the head's Linear init,
    an untied embedding N(0, 1); LayerNorms at 1 and 0 either way."""
    n_embd = 64
    config = models.GPTConfig(n_layer=2, n_head=2, n_embd=n_embd, block_size=16, vocab_size=50, init="pytorch")
    block = models.GPT(config).to(device).transformer.h[0]
    for layer in (block.attn.c_attn, block.mlp.c_fc, block.mlp.c_proj):
        bound = 1 / math.sqrt(layer.in_features)
        for p in (layer.weight, layer.bias):
            values = p.numpy()
            assert np.abs(values).max() <= bound and np.abs(values).max() > 0.9 * bound
        assert abs(layer.weight.numpy().std() - bound / math.sqrt(3)) < 0.1 * bound  # uniform's std
    assert np.all(block.ln_1.weight.numpy() == 1) and np.all(block.ln_1.bias.numpy() == 0)
    tied = models.GPT(config).transformer.wte.weight.numpy()
    assert np.abs(tied).max() <= 1 / math.sqrt(n_embd)
    untied = models.GPT(models.GPTConfig(**{**config.to_dict(), "tie_embeddings": False}))
    assert abs(untied.transformer.wte.weight.numpy().std() - 1) < 0.05
    assert np.abs(untied.lm_head.weight.numpy()).max() <= 1 / math.sqrt(n_embd)


@pytest.mark.parametrize("init", ["nanogpt", "pytorch"])
def test_gpt_zero_init_proj_zeroes_only_the_output_projections(device, init):
    model = models.GPT(models.GPTConfig(**SMALL, init=init, zero_init_proj=True)).to(device)
    for name, p in model.named_parameters():
        if p.ndim == 2:  # the matrices: only the output projections are zero
            assert p.numpy().any() != name.endswith("c_proj.weight"), name
    default = models.GPT(models.GPTConfig(**SMALL, init=init))
    assert all(p.numpy().any() for name, p in default.named_parameters() if name.endswith("c_proj.weight"))


def test_gpt_untied_head_keeps_the_state_dict_keys(device):
    tied = models.GPT(models.GPTConfig(**SMALL)).to(device)
    untied = models.GPT(models.GPTConfig(**SMALL, tie_embeddings=False)).to(device)
    assert untied.lm_head.weight is not untied.transformer.wte.weight
    assert "lm_head.weight" in dict(untied.named_parameters())
    assert list(untied.state_dict()) == list(tied.state_dict())
    assert untied.num_parameters() == tied.num_parameters() + 11 * 16
    untied.load_state_dict(tied.state_dict())  # a tied model's weights load into an untied one, and stay apart
    with tl.no_grad():
        untied.lm_head.weight.mul_(2.0)
    np.testing.assert_array_equal(host(untied.transformer.wte.weight), host(tied.transformer.wte.weight))


def test_gpt_rotary_positions_have_no_position_embedding(device):
    model = models.GPT(models.GPTConfig(**SMALL, positions="rotary")).to(device)
    assert "wpe" not in model.transformer and not any("wpe" in key for key in model.state_dict())
    assert not any("rotary" in key for key in model.state_dict())  # the tables are not state
    assert model.get_num_params() == model.num_parameters()
    assert model.transformer.h[0].attn.rotary_cos.device == tl.device(device)
    logits, _ = model(tl.tensor(rng.integers(0, 11, size=(2, 8)), device=device))
    assert logits.shape == (2, 8, 11)


@pytest.mark.parametrize("options, message", [
    ({"init": "xavier"}, "init must be 'nanogpt' or 'pytorch', got 'xavier'"),
    ({"positions": "alibi"}, "positions must be 'learned' or 'rotary', got 'alibi'"),
    ({"activation": "relu"}, "activation must be 'gelu' or 'relu2', got 'relu'"),
    ({"positions": "rotary", "n_embd": 18, "n_head": 6},
     "rotary positions rotate channel pairs, so the head size n_embd / n_head must be even, got 3"),
])
def test_gpt_config_refuses_unknown_recipe_options(options, message):
    with pytest.raises(ValueError, match=re.escape(f"GPTConfig: {message}")):
        models.GPTConfig(**{**SMALL, **options})


def test_gpt_configure_optimizers_decays_only_matrices():
    model = models.GPT(models.GPTConfig(**SMALL))
    opt = model.configure_optimizers(weight_decay=0.1, learning_rate=1e-3, betas=(0.9, 0.95))
    assert isinstance(opt, tl.optim.AdamW)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim < 2 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    assert opt.param_groups[0]["lr"] == 1e-3 and opt.param_groups[0]["betas"] == (0.9, 0.95)


def test_gpt_configure_optimizers_gives_the_blocks_matrices_to_muon():
    model = models.GPT(models.GPTConfig(**SMALL, tie_embeddings=False))
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99), muon_lr=0.02, muon_momentum=0.9, muon_weight_decay=0.01,
                                     muon_ns_steps=3)
    adamw, muon = opt.optimizers
    assert isinstance(opt, tl.optim.CombinedOptimizer) and isinstance(adamw, tl.optim.AdamW)
    names = {id(p): name for name, p in model.named_parameters()}
    muon_names = sorted(names[id(p)] for p in muon.param_groups[0]["params"])
    assert muon_names == sorted(f"transformer.h.{i}.{layer}.weight" for i in range(2)
                                for layer in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"))
    decay, no_decay = adamw.param_groups
    assert sorted(names[id(p)] for p in decay["params"]) == ["lm_head.weight", "transformer.wpe.weight",
                                                             "transformer.wte.weight"]
    assert all(p.ndim == 1 for p in no_decay["params"]) and decay["weight_decay"] == 0.1
    assert len(decay["params"]) + len(no_decay["params"]) + len(muon_names) == len(list(model.parameters()))
    group = muon.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"], group["nesterov"], group["ns_steps"]) == (
        0.02, 0.9, 0.01, True, 3)
    assert [g["lr"] for g in opt.param_groups] == [1e-3, 1e-3, 0.02]  # AdamW's groups first
    with pytest.raises(NotImplementedError, match="CharLSTM: names no hidden matrices for Muon"):
        models.CharLSTM(models.CharLSTMConfig(11, 4, 5, 1)).configure_optimizers(0.1, 1e-3, (0.9, 0.99), muon_lr=0.02)


def test_gpt_training_steps_lower_the_loss(device):
    tl.manual_seed(0)
    model = models.GPT(models.GPTConfig(**SMALL)).to(device)
    opt = model.configure_optimizers(0.0, 1e-2, (0.9, 0.99))
    idx = tl.tensor(np.tile(np.arange(8), (4, 1)) % 11, device=device)  # a sequence to memorise
    first = None
    for _ in range(30):
        _, loss = model(idx[:, :-1], idx[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.3 * first


def test_gpt_errors(device):
    model = models.GPT(models.GPTConfig(**SMALL)).to(device)
    with pytest.raises(ValueError, match="longer than block_size=8"):
        model(tl.zeros(1, 9, dtype=tl.int64, device=device))
    with pytest.raises(TypeError, match="integer tensor"):
        model(tl.zeros(1, 4, device=device))
    with pytest.raises(ValueError, match="targets must have the shape of idx"):
        model(tl.zeros(2, 4, dtype=tl.int64, device=device), tl.zeros(2, 3, dtype=tl.int64, device=device))
    with pytest.raises(ValueError, match="divisible by n_head"):
        models.GPTConfig(n_embd=10, n_head=3)
    with pytest.raises(ValueError, match="temperature"):
        list(model.generate_tokens(tl.zeros(1, 2, dtype=tl.int64, device=device), 2, temperature=0))


# -- generation ---------------------------------------------------------------------------------------
CACHED = {"nanogpt": {}, "rotary, qk-norm": {"positions": "rotary", "qk_norm": True},
          "all but zero init": {**RECIPES["all"], "zero_init_proj": False}}


@pytest.mark.parametrize("recipe", CACHED)
def test_forward_step_with_cache_matches_the_full_forward(device, recipe):
    """Prefill 3 positions, then one token at a time: the logits equal those of the whole sequence."""
    model = models.GPT(models.GPTConfig(**SMALL, **CACHED[recipe])).to(device).eval()
    idx = tl.tensor(rng.integers(0, 11, size=(2, 8)), device=device)
    full, _ = model(idx)
    with tl.no_grad():
        steps = [model.forward_step(idx[:, :3], 0)]
        steps += [model.forward_step(idx[:, t:t + 1], t) for t in range(3, 6)]
        steps.append(model.forward_step(idx[:, 6:], 6))  # two new positions at once, after a cache
    np.testing.assert_allclose(host(tl.cat(steps, dim=1)), host(full), rtol=1e-4, atol=1e-5)
    assert model.transformer.h[0].attn.cache.shape == (2, 2, 2, 8, 8)  # (k/v, B, nh, block_size, hs)
    with pytest.raises(ValueError, match="block_size=8"):
        model.forward_step(idx[:, :1], 8)


@pytest.mark.parametrize("recipe", CACHED)
@pytest.mark.parametrize("top_k", [None, 3])
def test_generate_with_cache_samples_what_generate_without_cache_samples(device, top_k, recipe):
    """The same seed gives the same tokens while the context fits in block_size=8 (3 + 6 tokens)."""
    model = models.GPT(models.GPTConfig(**SMALL, **CACHED[recipe])).to(device).eval()
    idx = tl.tensor([[1, 2, 3]], device=device)
    runs = []
    for use_cache in (True, False):
        tl.manual_seed(7)
        runs.append(model.generate(idx, 6, temperature=0.8, top_k=top_k, use_cache=use_cache))
    assert runs[0].shape == (1, 9) and runs[0].dtype == tl.int64
    np.testing.assert_array_equal(host(runs[0]), host(runs[1]))
    np.testing.assert_array_equal(host(runs[0])[0, :3], [1, 2, 3])
    tl.manual_seed(7)
    streamed = list(model.generate_tokens(idx, 6, temperature=0.8, top_k=top_k))
    assert streamed == host(runs[0])[0, 3:].tolist() and all(isinstance(t, int) for t in streamed)


@pytest.mark.parametrize("recipe", ["nanogpt", "rotary, qk-norm"])
@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_generation_follows_the_argmax_of_its_context(device, use_cache, recipe):
    """top_k=1 is greedy: every new token is the argmax of the last logits of the context the model
    sees. Without the cache that is the last block_size=8 tokens; with it the context grows to 8 and
    then restarts from the last 4 tokens (a cache rebuild)."""
    model = models.GPT(models.GPTConfig(**SMALL, **CACHED[recipe])).to(device).eval()
    tokens = host(model.generate(tl.tensor([[4, 5]], device=device), 20, top_k=1, use_cache=use_cache))[0]
    start, starts = 0, []
    for t in range(2, len(tokens)):
        if t - start > 8:
            start = t - (4 if use_cache else 8)
        starts.append(start)
        logits, _ = model(tl.tensor(tokens[start:t][None], device=device))
        assert tokens[t] == int(np.argmax(host(logits)[0, -1])), f"token {t} from context {start}..{t - 1}"
    assert len(set(starts)) > (3 if use_cache else 10)  # the windows moved several times


def test_generate_batch_and_sampling_distribution(device):
    """Sampling follows softmax(logits / temperature): check the frequencies of the first sampled token."""
    model = models.GPT(models.GPTConfig(**SMALL)).to(device).eval()
    idx = tl.tensor(np.full((400, 2), 3), device=device)
    logits, _ = model(idx[:1])
    p = np.exp(host(logits)[0, -1] / 0.5)
    p /= p.sum()
    out = host(model.generate(idx, 1, temperature=0.5))
    assert out.shape == (400, 3)
    freq = np.bincount(out[:, -1], minlength=11) / 400
    assert np.abs(freq - p).max() < 0.1
    top2 = set(np.argsort(p)[-2:])
    assert set(host(model.generate(idx, 1, top_k=2))[:, -1]) <= top2


def test_generate_uses_no_gradient_and_leaves_grad_mode_alone(device):
    model = models.GPT(models.GPTConfig(**SMALL)).to(device).eval()
    tokens = model.generate_tokens(tl.tensor([[1]], device=device), 3)
    next(tokens)
    assert tl.is_grad_enabled()  # the generator pauses with gradients on, as the caller had them
    assert all(p.grad is None for p in model.parameters())


# -- CPU-backend fast paths the transformer relies on ------------------------------------------------
def test_float32_erf_is_accurate_everywhere():
    from tensorlite.backends.numpy_backend import erf_float32

    x = np.concatenate([np.linspace(-7, 7, 20001), [0.0, -0.0, np.inf, -np.inf, 1e-30]]).astype(np.float32)
    exact = np.array([math.erf(v) for v in x.astype(np.float64)])
    assert np.abs(erf_float32(x) - exact).max() < 6e-7
    assert erf_float32(np.float32(0.5) * np.ones((), np.float32)).shape == ()  # 0-d in, 0-d out
    assert erf_float32(np.ones(3, np.float16)).dtype == np.float16
    assert np.isnan(erf_float32(np.array([np.nan], np.float32)))[0]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("rows, index_shape, tail", [(65, (96,), (16,)), (5, (3, 4), (2,)), (7, (10,), ())])
def test_cpu_scatter_add_of_rows_matches_add_at(rows, index_shape, tail, dtype):
    """Embedding gradients: repeated and negative indices accumulate. float64 takes the sort-and-reduceat path;
    float32 rows the compiled kernel, which adds them in add.at's own order (the same bits); an index out of range
    is add.at's IndexError either way."""
    from tensorlite.backends.numpy_backend import NumpyBackend

    index = rng.integers(-rows, rows, size=index_shape)
    values = rng.standard_normal(index_shape + tail).astype(dtype)
    ours, expected = np.zeros((rows, *tail), dtype), np.zeros((rows, *tail), dtype)
    NumpyBackend().scatter_add(ours, index, values)
    np.add.at(expected, index, values)
    if dtype == np.float32 and tail:
        np.testing.assert_array_equal(ours, expected)
    np.testing.assert_allclose(ours, expected, rtol=1e-12 if dtype == np.float64 else 1e-6, atol=1e-12)
    with pytest.raises(IndexError):
        NumpyBackend().scatter_add(ours, np.full(index_shape, rows), values)
