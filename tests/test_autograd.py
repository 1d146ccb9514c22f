"""Autograd semantics: accumulation, gradient modes, graph shapes, graph lifetime, and gradcheck itself."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
from oracle import check_grad, torch, torch_or_skip

import tensorlite as tl


def host(t: tl.Tensor) -> np.ndarray:
    return t.detach().numpy()


def leaf(values, device: str, dtype=tl.float32) -> tl.Tensor:
    return tl.tensor(values, dtype=dtype, device=device, requires_grad=True)


# -- accumulation ----------------------------------------------------------------------------------


def test_gradients_accumulate_across_backward_calls(device: str) -> None:
    """Two backward passes add into .grad instead of overwriting it."""
    x = leaf([1.0, 2.0, 3.0], device)
    (x * x).sum().backward()
    np.testing.assert_allclose(host(x.grad), [2.0, 4.0, 6.0])
    (x * x).sum().backward()
    np.testing.assert_allclose(host(x.grad), [4.0, 8.0, 12.0])


def test_grad_can_be_reset_between_passes(device: str) -> None:
    x = leaf([1.0, 2.0], device)
    (3 * x).sum().backward()
    x.grad = None
    (5 * x).sum().backward()
    np.testing.assert_allclose(host(x.grad), [5.0, 5.0])


@pytest.mark.parametrize("via_gradient", [False, True], ids=["implicit", "gradient="])
def test_grads_of_two_leaves_are_independent_arrays(device: str, via_gradient: bool) -> None:
    """c = a + b hands both leaves the same upstream array; each must get its own copy."""
    a, b = leaf([1.0, 2.0, 3.0], device), leaf([4.0, 5.0, 6.0], device)
    c = a + b
    upstream = tl.ones(3, device=device)
    if via_gradient:
        c.backward(upstream)
    else:
        c.sum().backward()
    with tl.no_grad():
        a.grad[0] = 100.0
    np.testing.assert_allclose(host(b.grad), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(host(upstream), [1.0, 1.0, 1.0])


def test_leaf_grad_does_not_alias_the_callers_gradient(device: str) -> None:
    """Mutating the tensor passed as gradient= afterwards leaves .grad alone (leaf and non-leaf roots)."""
    x, y = leaf([1.0, 2.0], device), leaf([1.0, 2.0], device)
    g = tl.tensor([1.0, 2.0], device=device)
    x.backward(g)
    (y + 0).backward(g)
    g[0] = -7.0
    np.testing.assert_allclose(host(x.grad), [1.0, 2.0])
    np.testing.assert_allclose(host(y.grad), [1.0, 2.0])


def test_the_pieces_of_a_split_meet_in_one_gradient(device: str) -> None:
    """The regions that basic indexing sends back (kept as pieces until the node below needs one array): a
    split's three pieces, a slice that overlaps two of them, and the tensor used whole, each region summed."""
    x = leaf(np.arange(12.0).reshape(2, 6), device)
    h = x * 1.0  # not a leaf: its node receives the pieces
    q, k, v = h.split(2, dim=1)
    loss = q.sum() + (k * 2).sum() + (v * 3).sum() + (h[:, 1:4] * 10).sum() + (h * 100).sum()
    loss.backward()
    want = np.array([[1.0, 1, 2, 2, 3, 3]] * 2) + 100
    want[:, 1:4] += 10
    np.testing.assert_array_equal(host(x.grad), want)
    y = leaf([1.0, 2.0, 3.0], device)  # pieces that reach a leaf, and a piece whose gradient is the caller's
    y[0:2].backward(tl.tensor([5.0, 6.0], device=device))
    y[1:].backward(tl.tensor([7.0, 8.0], device=device))
    np.testing.assert_array_equal(host(y.grad), [5.0, 13.0, 8.0])
    s = leaf(2.0, device)  # 0-d: the whole tensor's gradient comes first, then the region's
    t = s * 1.0
    (t * 2 + t[()] * 3 + t[...] * 5).backward()
    assert host(s.grad) == 10.0


def test_a_splits_pieces_are_joined_side_by_side(device: str) -> None:
    """Pieces that cover the tensor once along one axis (split, chunk, in any order of use) are concatenated;
    a gap, an overlap, a step or a dropped dimension falls back to adding them into zeros. Same gradients."""
    x = leaf(np.arange(24.0).reshape(2, 12), device)
    h = x * 1.0
    a, b, c = h.split([5, 4, 3], dim=1)
    ((c * 3).sum() + a.sum() + (b * 2).sum()).backward()
    np.testing.assert_array_equal(host(x.grad), np.repeat([[1.0, 2.0, 3.0]], [5, 4, 3], axis=1).repeat(2, axis=0))
    z = leaf(np.ones((4, 3)), device)
    top, bottom = (z * 1.0).chunk(2, dim=0)
    (bottom * 2).sum().backward()  # only one piece: a gap, so zeros above
    np.testing.assert_array_equal(host(z.grad), [[0.0] * 3] * 2 + [[2.0] * 3] * 2)
    from tensorlite.autograd import SliceGrad

    def axis(*keys, shape=(4, 6)):
        pieces = [(key, np.zeros(np.zeros(shape)[key].shape)) for key in keys]
        return SliceGrad(np, shape, np.dtype(np.float64), pieces)._tiling_axis()

    assert axis((slice(None), slice(3, 6)), (slice(None), slice(0, 3))) == 1
    assert axis((slice(0, 4),)) == 0
    assert axis((slice(None), slice(0, 3)), (slice(None), slice(2, 6))) is None  # an overlap
    assert axis((slice(None), slice(0, 6, 2)),) is None  # a step
    assert axis((slice(None, 2),), (slice(2, 4),)) is None  # an open start
    assert axis((0, slice(0, 6)),) is None  # a dropped dimension


def test_anomaly_mode_sees_nan_in_an_indexed_region(device: str) -> None:
    x = leaf([0.0, 1.0, 2.0], device)
    with tl.autograd.detect_anomaly(), pytest.raises(RuntimeError, match="'GetItemBackward' returned nan"):
        (x * 1.0)[0:2].backward(tl.tensor([float("nan"), 1.0], device=device))


@pytest.mark.parametrize("dtype", [tl.float16, tl.float32, tl.float64], ids=lambda d: d.name)
def test_gradient_dtype_equals_leaf_dtype(device: str, dtype) -> None:
    """Even through a cast, or with an upstream gradient of another dtype, .grad has the leaf's dtype."""
    x = leaf([0.5, 1.5], device, dtype)
    y = x.double() * 2 if dtype != tl.float64 else x.float() * 2
    y.backward(tl.ones(2, dtype=tl.float64, device=device))
    assert x.grad.dtype == dtype
    np.testing.assert_allclose(host(x.grad).astype(np.float64), [2.0, 2.0])


# -- gradient modes ----------------------------------------------------------------------------------


def test_no_grad_context_manager(device: str) -> None:
    x = leaf([1.0, 2.0], device)
    with tl.no_grad():
        assert not tl.is_grad_enabled()
        y = x * 2
    assert tl.is_grad_enabled()
    assert not y.requires_grad and y.is_leaf
    assert (x * 2).requires_grad


def test_no_grad_decorator(device: str) -> None:
    @tl.no_grad()
    def double(t: tl.Tensor) -> tl.Tensor:
        """Doubles."""
        assert not tl.is_grad_enabled()
        return t * 2

    x = leaf([1.0, 2.0], device)
    y = double(x)
    assert not y.requires_grad
    assert tl.is_grad_enabled()
    assert double.__doc__ == "Doubles."  # functools.wraps keeps the metadata


def test_no_grad_restores_mode_after_an_exception() -> None:
    with pytest.raises(KeyError), tl.no_grad():
        raise KeyError("inside no_grad")
    assert tl.is_grad_enabled()


def test_enable_grad_inside_no_grad(device: str) -> None:
    x = leaf([1.0, 2.0], device)
    with tl.no_grad():
        with tl.enable_grad():
            y = x * x
        z = x * x
    assert y.requires_grad and not z.requires_grad
    y.sum().backward()
    np.testing.assert_allclose(host(x.grad), [2.0, 4.0])


def test_grad_mode_decorators_work_without_parentheses(device: str) -> None:
    """``@tl.no_grad`` as well as ``@tl.no_grad()``, as PyTorch allows."""

    @tl.no_grad
    def double(t: tl.Tensor) -> tl.Tensor:
        """Doubles."""
        return t * 2

    @tl.enable_grad
    def square(t: tl.Tensor) -> tl.Tensor:
        return t * t

    x = leaf([1.0, 2.0], device)
    assert not double(x).requires_grad and double.__doc__ == "Doubles."
    with tl.no_grad():
        assert square(x).requires_grad
    assert tl.is_grad_enabled()


def test_inference_mode_context_manager(device: str) -> None:
    x = leaf([1.0, 2.0], device)
    assert not tl.is_inference_mode_enabled()
    with tl.inference_mode():
        assert not tl.is_grad_enabled() and tl.is_inference_mode_enabled()
        y = x * 2
        with tl.inference_mode(False):  # off again inside: the graph is recorded
            assert tl.is_grad_enabled() and not tl.is_inference_mode_enabled()
            z = x * 2
        with tl.no_grad():
            assert tl.is_inference_mode_enabled()
    assert tl.is_grad_enabled() and not tl.is_inference_mode_enabled()
    assert not y.requires_grad and z.requires_grad


@pytest.mark.parametrize("form", ["bare", "called"])
def test_inference_mode_decorator(device: str, form: str) -> None:
    def evaluate(t: tl.Tensor) -> tuple[tl.Tensor, bool]:
        """Evaluates."""
        return t * 2, tl.is_inference_mode_enabled()

    decorated = tl.inference_mode(evaluate) if form == "bare" else tl.inference_mode()(evaluate)
    out, inside = decorated(leaf([1.0], device))
    assert inside and not out.requires_grad and decorated.__doc__ == "Evaluates."
    assert tl.is_grad_enabled() and not tl.is_inference_mode_enabled()


def test_inference_mode_restores_modes_after_an_exception() -> None:
    with pytest.raises(KeyError), tl.inference_mode():
        raise KeyError("inside inference_mode")
    assert tl.is_grad_enabled() and not tl.is_inference_mode_enabled()
    with pytest.raises(TypeError, match="inference_mode: mode must be a bool, got str"):
        tl.inference_mode("yes")


@pytest.mark.parity
def test_grad_modes_nest_as_in_pytorch() -> None:
    """The same nesting of modes gives the same (grad, inference) states in both libraries."""
    def states(lib) -> list[tuple[bool, bool]]:
        seen = []
        with lib.inference_mode():
            seen.append((lib.is_grad_enabled(), lib.is_inference_mode_enabled()))
            with lib.no_grad():
                seen.append((lib.is_grad_enabled(), lib.is_inference_mode_enabled()))
            with lib.inference_mode(False):
                seen.append((lib.is_grad_enabled(), lib.is_inference_mode_enabled()))
        with lib.no_grad(), lib.inference_mode(False):
            seen.append((lib.is_grad_enabled(), lib.is_inference_mode_enabled()))
        return seen

    assert states(tl) == states(torch)


# -- detach --------------------------------------------------------------------------------------------


def test_detach_shares_data_and_stops_gradients(device: str) -> None:
    x = leaf([1.0, 2.0, 3.0], device)
    d = x.detach()
    assert not d.requires_grad and d.is_leaf
    d[0] = 10.0  # same memory: visible through x
    np.testing.assert_allclose(host(x), [10.0, 2.0, 3.0])
    (x.detach() * x).sum().backward()  # d/dx of const * x is const, not 2x
    np.testing.assert_allclose(host(x.grad), [10.0, 2.0, 3.0])


# -- graph shapes ------------------------------------------------------------------------------------


def test_tensor_used_twice(device: str) -> None:
    """y = x*x + x: both uses of x contribute (2x + 1)."""
    x = leaf([-1.0, 0.5, 2.0], device)
    (x * x + x).sum().backward()
    np.testing.assert_allclose(host(x.grad), [-1.0, 2.0, 5.0])


def test_diamond_graph(device: str) -> None:
    """a = x+1 feeds both b = a*a and c = a*3: d/dx (b + c) = 2(x+1) + 3."""
    x = leaf([-1.0, 0.5, 2.0], device)
    a = x + 1
    b, c = a * a, a * 3
    (b + c).sum().backward()
    np.testing.assert_allclose(host(x.grad), [3.0, 6.0, 9.0])


def test_diamond_graph_gradcheck(device: str) -> None:
    def fn(x: tl.Tensor) -> tl.Tensor:
        a = x.exp()
        return a * a.sin() + a.tanh() * x

    check_grad(fn, [np.array([[-0.5, 0.2, 0.9], [1.1, -1.3, 0.4]])], device)


def test_backward_with_gradient_for_non_scalar_output(device: str) -> None:
    x = leaf([[1.0, 2.0], [3.0, 4.0]], device)
    w = tl.tensor([[0.5, -1.0], [2.0, 0.0]], device=device)
    (x * 3).backward(w)
    np.testing.assert_allclose(host(x.grad), 3 * host(w))


def test_backward_on_a_leaf(device: str) -> None:
    x = leaf(2.0, device)
    x.backward()
    assert x.grad.item() == 1.0
    v = leaf([1.0, 2.0], device)
    v.backward(tl.tensor([3.0, 4.0], device=device))
    np.testing.assert_allclose(host(v.grad), [3.0, 4.0])


def test_only_leaves_requiring_grad_get_grad(device: str) -> None:
    x, c = leaf([1.0, 2.0], device), tl.tensor([3.0, 4.0], device=device)
    h = x * c
    (h * h).sum().backward()
    assert c.grad is None and h.grad is None
    np.testing.assert_allclose(host(x.grad), 2 * host(c) ** 2 * host(x))


# -- graph lifetime --------------------------------------------------------------------------------


def test_retain_graph_allows_a_second_backward(device: str) -> None:
    x = leaf([1.0, 2.0], device)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(host(x.grad), [4.0, 8.0])


def test_second_backward_without_retain_graph_raises(device: str) -> None:
    x = leaf([1.0, 2.0], device)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_backward_frees_saved_arrays(device: str) -> None:
    """After backward (without retain_graph) nodes drop their inputs, so intermediates can be freed."""
    x = leaf([0.1, 0.2, 0.3], device)
    hidden = x * 2
    out = hidden.exp().sum()
    node = out._fn
    hidden_ref = weakref.ref(hidden)
    del hidden
    gc.collect()
    assert hidden_ref() is not None  # still held by the graph
    out.backward()
    gc.collect()
    assert hidden_ref() is None
    assert node.inputs is None and not vars(node)  # saved arrays and inputs gone


def test_retain_graph_keeps_saved_arrays(device: str) -> None:
    x = leaf([0.1, 0.2], device)
    out = (x * x).sum()
    out.backward(retain_graph=True)
    assert out._fn.inputs is not None


def test_long_chain_backpropagates_without_recursion() -> None:
    """100,000 chained ops: backward is iterative (no RecursionError) and the gradient is exact."""
    n, factor = 100_000, 1.00001
    x = tl.tensor(1.0, dtype=tl.float64, requires_grad=True)
    y = x
    for _ in range(n):
        y = y * factor
    y.backward()
    np.testing.assert_allclose(x.grad.item(), factor ** n, rtol=1e-9)


# -- leaves, requires_grad, repr -------------------------------------------------------------------


def test_is_leaf_and_grad_fn_repr(device: str) -> None:
    x = leaf([1.0, 2.0], device)
    y = x * 2
    plain = tl.tensor([1.0], device=device) * 2
    assert x.is_leaf and not y.is_leaf and plain.is_leaf
    assert y.detach().is_leaf
    assert "requires_grad=True" in repr(x)
    assert "grad_fn=<MulBackward>" in repr(y)
    assert "grad_fn" not in repr(plain) and "requires_grad" not in repr(plain)


@pytest.mark.parametrize("dtype", [tl.int64, tl.int32, tl.bool_], ids=lambda d: d.name)
def test_requires_grad_on_non_float_raises(device: str, dtype) -> None:
    t = tl.tensor([1, 0], dtype=dtype, device=device)
    with pytest.raises(RuntimeError, match="only floating-point tensors can require grad"):
        t.requires_grad_()
    with pytest.raises(RuntimeError, match="floating-point"):
        tl.tensor([1, 2], dtype=dtype, device=device, requires_grad=True)


def test_requires_grad_cannot_be_switched_off_on_a_non_leaf(device: str) -> None:
    y = leaf([1.0], device) * 2
    with pytest.raises(RuntimeError, match="non-leaf"):
        y.requires_grad = False


def test_non_float_outputs_do_not_require_grad(device: str) -> None:
    """An integer cast or a comparison of a tensor requiring grad ends the graph."""
    x = leaf([1.5, -2.5], device)
    for out in (x.long(), x.int(), x > 0, x.argmax()):
        assert not out.requires_grad and out.is_leaf


# -- gradcheck itself --------------------------------------------------------------------------------


class WrongMul(tl.autograd.Function):
    """a * b whose gradient for b is off by one at index (1, 2)."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        gb = g * self.a
        gb[1, 2] += 1.0
        return g * self.b, gb


def test_gradcheck_passes_on_a_correct_function(device: str) -> None:
    a = tl.randn(2, 3, dtype=tl.float64, device=device, requires_grad=True)
    b = tl.randn(2, 3, dtype=tl.float64, device=device, requires_grad=True)
    assert tl.gradcheck(lambda p, q: (p * q).tanh(), [a, b])


def test_gradcheck_names_input_and_worst_index(device: str) -> None:
    a = tl.randn(2, 3, dtype=tl.float64, device=device, requires_grad=True)
    b = tl.randn(2, 3, dtype=tl.float64, device=device, requires_grad=True)
    with pytest.raises(tl.GradcheckError, match=r"gradient of input 1 \(shape \(2, 3\)\) is wrong at index \(1, 2\)"):
        tl.gradcheck(WrongMul.apply, [a, b])
    assert tl.gradcheck(WrongMul.apply, [a, b], raise_exception=False) is False
    b.requires_grad_(False)  # input 0's gradient is right
    assert tl.gradcheck(WrongMul.apply, [a, b])


def test_gradcheck_rejects_float32(device: str) -> None:
    x = tl.randn(3, device=device, requires_grad=True)
    with pytest.raises(TypeError, match="input 0 is float32; use float64"):
        tl.gradcheck(lambda t: t * 2, [x])


def test_gradcheck_needs_an_input_requiring_grad(device: str) -> None:
    with pytest.raises(ValueError, match="no input requires grad"):
        tl.gradcheck(lambda t: t * 2, [tl.randn(3, dtype=tl.float64, device=device)])


# -- post-accumulate-grad hooks -------------------------------------------------------------------------------


def test_post_accumulate_grad_hook_runs_once_with_the_whole_gradient(device: str) -> None:
    """A leaf used by three ops: its hook runs once per backward, when all three gradients are in .grad."""
    w = leaf([1.0, -2.0, 3.0], device)
    seen = []
    w.register_post_accumulate_grad_hook(lambda t: seen.append(host(t.grad).copy()))
    ((w * w).sum() + (3 * w).sum() + w.exp().sum()).backward()
    expected = 2 * host(w) + 3 + np.exp(host(w))
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], expected, rtol=1e-6)
    (w * 2).sum().backward()  # accumulates: the hook sees the sum of both backward passes
    np.testing.assert_allclose(seen[1], expected + 2, rtol=1e-6)


def test_post_accumulate_grad_hook_runs_while_backward_goes_on(device: str) -> None:
    """The last layer's hook runs before the first layer's gradient exists: what lets DDP overlap communication."""
    w1, w2 = leaf([[1.0, 2.0], [3.0, 4.0]], device), leaf([[0.5], [-1.0]], device)
    x = tl.tensor([[1.0, -1.0]], device=device)
    grads_of_w1_when_w2_ready = []
    w2.register_post_accumulate_grad_hook(lambda t: grads_of_w1_when_w2_ready.append(w1.grad))
    ((x @ w1).tanh() @ w2).sum().backward()
    assert grads_of_w1_when_w2_ready == [None] and w1.grad is not None


def test_post_accumulate_grad_hook_on_a_leaf_root_and_removal(device: str) -> None:
    w = leaf([1.0, 2.0], device)
    calls = []
    handle = w.register_post_accumulate_grad_hook(lambda t: calls.append(host(t.grad).tolist()))
    w.backward(tl.tensor([1.0, 1.0], device=device))
    assert calls == [[1.0, 1.0]]
    handle.remove()
    handle.remove()  # a second remove does nothing
    (w * 3).sum().backward()
    assert calls == [[1.0, 1.0]]


def test_post_accumulate_grad_hooks_only_on_leaves_that_require_grad(device: str) -> None:
    w = leaf([1.0], device)
    with pytest.raises(RuntimeError, match="only be registered on leaf tensors; this one was computed by Mul"):
        (w * 2).register_post_accumulate_grad_hook(lambda t: None)
    with pytest.raises(RuntimeError, match="does not require grad"):
        tl.ones(1, device=device).register_post_accumulate_grad_hook(lambda t: None)


@pytest.mark.parity
def test_post_accumulate_grad_hook_calls_are_pytorchs() -> None:
    """The gradients each hook sees, and when, over two backward passes (a leaf used three times, a leaf root)."""
    torch = torch_or_skip()
    values = np.array([0.5, -1.0, 2.0], dtype=np.float32)

    def run(lib, make):
        w = make(values)
        seen = []
        w.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.detach().numpy().copy()))
        ((w * w).sum() + (3 * w).sum() + w.exp().sum()).backward()
        w.backward(lib.ones(3))
        return seen

    ours = run(tl, lambda v: tl.tensor(v, requires_grad=True))
    theirs = run(torch, lambda v: torch.tensor(v, requires_grad=True))
    assert len(ours) == len(theirs) == 2
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-6)
