"""The compiled CPU kernels (backends/numba_kernels.py) against float64 math and against the reference
``xp`` math that every other backend runs: accuracy over the whole float32 range, NaN and infinity,
shapes and layouts, and the switch that turns them off."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from tensorlite.backends import numpy_backend
from tensorlite.backends.base import Backend
from tensorlite.backends.numpy_backend import NumpyBackend, compiled_kernels

pytest.importorskip("numba", reason="the compiled kernels need Numba: pip install -e '.[fast]'")

SPECIAL = [np.inf, -np.inf, np.nan, 0.0, -0.0, 1e-30, -1e-30, 87.0, -87.0, -100.0, 3e38, -3e38]
GRID = np.concatenate([np.linspace(-12, 12, 48001), SPECIAL]).astype(np.float32)
CPU = NumpyBackend()


def exact_gelu(x: np.ndarray, approximate: str) -> tuple[np.ndarray, np.ndarray]:
    """GELU and its derivative in float64 with math.erf (``approximate="tanh"``: the tanh form)."""
    x = x.astype(np.float64)
    with np.errstate(all="ignore"):
        if approximate == "tanh":
            k = math.sqrt(2 / math.pi)
            t = np.tanh(k * (x + 0.044715 * x**3))
            dt = (1 - t * t) * k * (1 + 3 * 0.044715 * x * x)
            return 0.5 * x * (1 + t), 0.5 * (1 + t) + 0.5 * x * dt
        cdf = 0.5 * (1 + np.array([math.erf(v / math.sqrt(2)) if np.isfinite(v) else np.sign(v) for v in x]))
        return x * cdf, cdf + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_kernels_match_float64_math(approximate: str) -> None:
    """Within 1.5e-6 of float64 GELU and its gradient over [-12, 12] and at the special values; NaN where the
    float64 math is NaN. (Where the tanh form's x^3 overflows float32, |x| > 1e19, its gradient is NaN in any
    float32 arithmetic: the next test holds the kernel to the float32 reference math there.)"""
    out, saved = CPU.gelu(GRID, approximate)
    assert saved is None, "float32 GELU should run the compiled kernel"
    grad = CPU.gelu_backward(np.ones_like(GRID), GRID, saved, approximate)
    want, want_grad = exact_gelu(GRID, approximate)
    in_float32_range = np.abs(GRID) < 1e19 if approximate == "tanh" else True
    for got, ref in ((out, want), (grad, want_grad)):
        assert got.dtype == np.float32 and got.shape == GRID.shape
        finite = np.isfinite(ref) & in_float32_range
        assert np.abs(got[finite] - ref[finite]).max() < 1.5e-6
        assert np.isnan(got[np.isnan(ref)]).all()


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_kernels_agree_with_the_reference_math(approximate: str) -> None:
    """The compiled kernel and the xp math the other backends run give the same values to float32 rounding,
    and NaN at the same special values (infinities, overflow)."""
    g = np.random.default_rng(0).standard_normal(GRID.shape).astype(np.float32)
    ours, saved = CPU.gelu(GRID, approximate)
    with np.errstate(all="ignore"):
        ref, ref_saved = Backend.gelu(CPU, GRID, approximate)
        ours_grad = CPU.gelu_backward(g, GRID, saved, approximate)
        ref_grad = Backend.gelu_backward(CPU, g, GRID, ref_saved, approximate)
    np.testing.assert_allclose(ours, ref, rtol=2e-6, atol=2e-6)
    # atol: in the tail (x < -5) the reference's 1 - t * t cancels in float32 and is ~5e-6 off; the kernel is not
    np.testing.assert_allclose(ours_grad, ref_grad, rtol=2e-5, atol=1e-5)


def test_gelu_kernels_take_any_layout_and_shape() -> None:
    """0-d, strided, transposed and broadcast gradients give what the same contiguous arrays give."""
    x = np.random.default_rng(1).standard_normal((6, 8)).astype(np.float32)
    g = np.random.default_rng(2).standard_normal((6, 8)).astype(np.float32)
    for xs, gs in ((x.T, g.T), (x[:, ::2], g[:, ::2]), (x[2, 3].reshape(()), g[2, 3].reshape(()))):
        out, saved = CPU.gelu(xs, "none")
        np.testing.assert_array_equal(out, CPU.gelu(np.ascontiguousarray(xs), "none")[0])
        contiguous = CPU.gelu_backward(np.ascontiguousarray(gs), np.ascontiguousarray(xs), None, "none")
        np.testing.assert_array_equal(CPU.gelu_backward(gs, xs, saved, "none"), contiguous)
        assert out.shape == xs.shape
    broadcast = np.broadcast_to(np.float32(1), x.shape)
    np.testing.assert_array_equal(CPU.gelu_backward(broadcast, x, None, "none"),
                                  CPU.gelu_backward(np.ones_like(x), x, None, "none"))


def test_float64_keeps_the_exact_reference_path() -> None:
    x = np.linspace(-5, 5, 101)
    out, saved = CPU.gelu(x, "none")
    assert saved is not None
    np.testing.assert_array_equal(out, Backend.gelu(CPU, x, "none")[0])


def test_the_switch_turns_the_kernels_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENSORLITE_CPU_KERNELS", "0")
    compiled_kernels.cache_clear()
    try:
        assert compiled_kernels() is None
        out, saved = CPU.gelu(GRID[:100], "none")
        assert saved is not None  # the reference math ran
    finally:
        monkeypatch.undo()
        compiled_kernels.cache_clear()
    assert compiled_kernels() is numpy_backend.compiled_kernels()


def test_import_tensorlite_does_not_import_numba() -> None:
    code = "import sys, tensorlite as tl; tl.randn(3).sum(); assert 'numba' not in sys.modules, 'numba imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_without_numba_large_attention_runs_on_numpy() -> None:
    """Numba is optional (``tensorlite[fast]``): without it, a GPT's attention (products of 2^20 multiply-adds and
    more, which split over OpenBLAS's threads with it) trains on NumPy's own loop. (It once raised an ImportError.)"""
    code = ("import sys\nsys.modules['numba'] = None\nimport tensorlite as tl\nF = tl.nn.functional\n"
            "q = tl.randn(12, 4, 64, 32, requires_grad=True)\n"
            "F.scaled_dot_product_attention(q, q, q, is_causal=True).sum().backward()\n"
            "(q @ q.transpose(-1, -2)).sum().backward()\nassert q.grad.shape == q.shape")
    subprocess.run([sys.executable, "-c", code], check=True)


def softmax_case(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    x = (3 * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)
    x[..., 0, :] = -np.inf  # a fully masked row
    x[..., 1, 2] = np.nan  # a NaN row
    return x


@pytest.mark.parametrize("empty_rows_zero", [False, True])
@pytest.mark.parametrize("mask_shape", [None, (5, 7), (1, 7), (1, 1, 5, 7), (3, 1, 5, 7)])
def test_softmax_kernels_agree_with_the_reference_math(empty_rows_zero: bool, mask_shape) -> None:
    """Same values (float32 rounding), same NaN rows, zeros for empty rows only when asked; masks of one (L, n)
    block repeated over the rows are fused, others take the reference path; forward and backward."""
    x = softmax_case((3, 2, 5, 7))
    mask = None
    if mask_shape is not None:
        mask = np.where(np.random.default_rng(1).random(mask_shape) < 0.3, -np.inf, 0).astype(np.float32)
    with np.errstate(invalid="ignore"):
        ours = CPU.softmax(x, 0.5, mask, empty_rows_zero)
        ref = Backend.softmax(CPU, x, 0.5, mask, empty_rows_zero)
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-7)
    assert np.isnan(ours[:, :, 1]).all() and np.isnan(ours[:, :, 0]).all() != empty_rows_zero
    g = np.random.default_rng(2).standard_normal(x.shape).astype(np.float32)
    p = np.nan_to_num(ref)
    np.testing.assert_allclose(CPU.softmax_backward(g, p, 0.25), Backend.softmax_backward(CPU, g, p, 0.25),
                               rtol=1e-5, atol=1e-6)
    in_place = g.copy()
    assert CPU.softmax_backward(in_place, p, 0.25, out=in_place) is in_place
    np.testing.assert_allclose(in_place, Backend.softmax_backward(CPU, g, p, 0.25), rtol=1e-5, atol=1e-6)


def test_softmax_kernel_is_exact_on_a_wide_range() -> None:
    """Against float64: rows of 1..1000 scores spread over +-80 (the exp polynomial's whole range)."""
    rng = np.random.default_rng(3)
    for n in (1, 2, 17, 64, 1000):
        x = rng.uniform(-80, 80, (50, n)).astype(np.float32)
        want = np.exp(x.astype(np.float64) - x.max(-1, keepdims=True))
        want /= want.sum(-1, keepdims=True)
        np.testing.assert_allclose(CPU.softmax(x), want, rtol=2e-6, atol=1e-9)


def test_exp_kernel_is_exact_for_every_power_of_two() -> None:
    """exp32(y) for y <= 0 writes 2^-m straight into a float's exponent bits: against float64 around every m
    (0..126, y down to -87; the range reduction's error grows with m), with 0 below -87 and NaN through."""
    exp32 = compiled_kernels().exp32
    m = np.arange(127)
    y = (-m[:, None] * math.log(2) + np.linspace(-0.35, 0.35, 15)).ravel()
    y = np.concatenate([y[(y <= 0) & (y >= -87)], [0.0, -1e-30, -86.99]]).astype(np.float32)
    ours, want = np.array([exp32(v) for v in y], dtype=np.float64), np.exp(y.astype(np.float64))
    np.testing.assert_allclose(ours, want, rtol=3e-7, atol=0)
    np.testing.assert_allclose(ours[y >= -20], want[y >= -20], rtol=1.1e-7, atol=0)  # a softmax's useful range
    assert exp32(np.float32(-87.5)) == 0 and exp32(np.float32(-np.inf)) == 0 and np.isnan(exp32(np.float32(np.nan)))


@pytest.mark.parametrize("n", [8, 19, 64])
def test_softmax_kernel_finds_the_maximum_in_every_lane(n: int) -> None:
    """The row maximum runs in eight interleaved lanes and a tail: put it at every position in turn, 80 above
    the rest, where a missed maximum would send the exp polynomial out of its range (y > 0)."""
    x = np.full((n, n), -40.0, np.float32) + np.random.default_rng(4).uniform(-1, 1, (n, n)).astype(np.float32)
    x[np.arange(n), np.arange(n)] = 40.0
    want = np.exp(x.astype(np.float64) - 40.0)
    want /= want.sum(-1, keepdims=True)
    np.testing.assert_allclose(CPU.softmax(x), want, rtol=2e-6, atol=1e-30)


@pytest.mark.parametrize("columns", [1, 7, 65, 300])
def test_log_softmax_kernel_agrees_with_the_reference_math(columns: int) -> None:
    """Both outputs to float32 rounding on rows of very different scales; NaN rows where the reference's are (a NaN,
    +inf, every entry -inf), -inf log-probabilities for -inf logits; other layouts through the reference."""
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((5000, columns)) * rng.uniform(0.1, 30, (5000, 1)) + rng.uniform(-80, 80, (5000, 1)))
    x = x.astype(np.float32)
    x[0, -1], x[1, 0], x[2], x[3, 0] = np.nan, np.inf, -np.inf, -np.inf
    logp, p = CPU.log_softmax(x)
    with np.errstate(all="ignore"):
        ref_logp, ref_p = Backend.log_softmax(CPU, x)
    for ours, want in ((logp, ref_logp), (p, ref_p)):
        assert ours.dtype == np.float32
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(want))
        np.testing.assert_allclose(ours, want, rtol=2e-6, atol=1e-6)
    exact = x[4:].astype(np.float64)
    exact = exact - exact.max(axis=1, keepdims=True)
    exact -= np.log(np.exp(exact).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(logp[4:], exact, rtol=1e-6, atol=2e-5)
    transposed = np.ascontiguousarray(x.T).T
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(CPU.log_softmax(transposed)[0], Backend.log_softmax(CPU, transposed)[0])


@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_kernels_agree_with_the_reference_math(affine: bool) -> None:
    """Output and all three gradients to float32 rounding, rows of very different scales and offsets."""
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((64, 48)) * rng.uniform(1e-2, 1e2, (64, 1)) + rng.uniform(-50, 50, (64, 1)))
    x = x.astype(np.float32)
    w, b = (rng.standard_normal((2, 48)).astype(np.float32) if affine else (None, None))
    g = rng.standard_normal(x.shape).astype(np.float32)
    out, saved = CPU.layer_norm(x, w, b, 1e-5)
    ref, ref_saved = Backend.layer_norm(CPU, x, w, b, 1e-5)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=2e-5)
    reference = Backend.layer_norm_backward(CPU, g, x, w, ref_saved)
    for ours, want in zip(CPU.layer_norm_backward(g, x, w, saved), reference):
        np.testing.assert_allclose(ours, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize("inverse", [False, True])
def test_rotary_kernel_agrees_with_the_reference_math_on_strided_queries(inverse: bool, monkeypatch) -> None:
    """Queries (B, T, nh, hs) as attention makes them, a strided view of the packed (B, T, 3C) projection, with
    (T, 1, hs / 2) tables: the compiled kernel runs (the reference is not called) and agrees with the reference
    math to float32 rounding, both ways; tables that broadcast otherwise take the reference path."""
    rng = np.random.default_rng(5)
    B, T, nh, hs = 3, 7, 4, 8
    packed = rng.standard_normal((B, T, 3 * nh * hs)).astype(np.float32)
    q = packed[..., nh * hs:2 * nh * hs].reshape(B, T, nh, hs)
    assert not q.flags.c_contiguous
    angles = rng.uniform(-4, 4, (T, 1, hs // 2))
    cos, sin = np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)
    want = Backend.rotary(CPU, q, cos, sin, inverse)
    calls = []
    monkeypatch.setattr(Backend, "rotary", lambda *args: calls.append(args))
    got = CPU.rotary(q, cos, sin, inverse)
    assert not calls and got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    monkeypatch.undo()
    back = CPU.rotary(got, cos, sin, not inverse)  # a rotation and its inverse: the identity
    np.testing.assert_allclose(back, q, rtol=1e-5, atol=1e-5)
    per_head = np.broadcast_to(cos, (T, nh, hs // 2)).copy()  # (T, nh, hs / 2): not one row per position
    np.testing.assert_array_equal(CPU.rotary(q, per_head, np.broadcast_to(sin, per_head.shape).copy(), inverse),
                                  Backend.rotary(CPU, q, per_head, np.broadcast_to(sin, per_head.shape), inverse))


@pytest.mark.parametrize("decay", [1.0, 0.999])
def test_adam_kernel_agrees_with_the_reference_math(decay: float) -> None:
    """50 steps on the same gradients stay within float32 rounding of the reference sequence of ops."""
    rng = np.random.default_rng(5)
    start = rng.standard_normal((2, 33)).astype(np.float32)
    ours = [start.copy(), *np.zeros((2, 2, 33), np.float32)]  # parameter, m, v
    ref = [start.copy(), *np.zeros((2, 2, 33), np.float32)]
    for step in range(1, 51):
        g = rng.standard_normal(start.shape).astype(np.float32)
        options = dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, step=step, decay=decay)
        CPU.adam_update(ours[0], g, ours[1], ours[2], **options)
        Backend.adam_update(CPU, ref[0], g, ref[1], ref[2], **options)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert not np.array_equal(ours[0], start)


@pytest.mark.parametrize("layout", ["nchw", "batch-innermost"])
@pytest.mark.parametrize("kernel, stride, dilation", [((2, 2), (2, 2), (1, 1)), ((3, 3), (3, 3), (1, 1)),
                                                      ((3, 3), (1, 2), (1, 1)), ((2, 3), (2, 1), (2, 1))])
def test_max_pool_kernels_agree_with_the_reference_math(layout: str, kernel, stride, dilation) -> None:
    """Ties (values on a coarse lattice) go to the first maximum, NaN wins, -inf padding never does; overlapping
    windows add their gradients, windows that tile the input (stride = kernel) leave the rows and columns past the
    last window at zero; both memory orders; forward and backward equal the reference exactly."""
    rng = np.random.default_rng(6)
    x = rng.integers(-2, 3, (3, 4, 9, 10)).astype(np.float32)
    x[0, 0, 1, 1] = np.nan
    x[:, :, 0, :] = -np.inf  # a padding row
    if layout == "batch-innermost":
        x = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    out_size = tuple((n - d * (k - 1) - 1) // s + 1 for n, k, s, d in zip(x.shape[2:], kernel, stride, dilation))
    ours, saved = CPU.max_pool2d(x, kernel, stride, dilation, out_size)
    ref, ref_saved = Backend.max_pool2d(CPU, x, kernel, stride, dilation, out_size)
    assert not isinstance(saved, tuple) or type(saved).__name__ == "PoolArgmax", "expected the compiled kernel"
    np.testing.assert_array_equal(ours, ref)
    assert ours.strides == ref.strides
    g = rng.standard_normal(ours.shape).astype(np.float32)
    ours_grad = CPU.max_pool2d_backward(g, saved)
    ref_grad = Backend.max_pool2d_backward(CPU, g, ref_saved)
    finite = ~np.isnan(x)  # the reference math sends no gradient to a NaN maximum (NaN == NaN is false)
    np.testing.assert_allclose(ours_grad[finite], ref_grad[finite], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kernel, stride, dilation", [((3, 3), (1, 1), (1, 1)), ((3, 2), (2, 1), (1, 2)),
                                                      ((2, 2), (2, 2), (1, 1))])
def test_col2im_kernel_agrees_with_the_reference_math(kernel, stride, dilation) -> None:
    """Overlapping, strided, dilated and tiling windows; a non-contiguous column gradient takes the reference path."""
    rng = np.random.default_rng(8)
    padded_shape = (9, 10)
    out_size = tuple((n - d * (k - 1) - 1) // s + 1 for n, k, s, d in zip(padded_shape, kernel, stride, dilation))
    gcols = rng.standard_normal((3, *kernel, *out_size, 5)).astype(np.float32)
    ours = CPU.col2im(gcols, padded_shape, kernel, stride, dilation)
    ref = Backend.col2im(CPU, gcols, padded_shape, kernel, stride, dilation)
    assert ours.shape == ref.shape == (3, *padded_shape, 5)
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-6)
    strided = np.ascontiguousarray(gcols.transpose(5, 0, 1, 2, 3, 4)).transpose(1, 2, 3, 4, 5, 0)
    np.testing.assert_array_equal(CPU.col2im(strided, padded_shape, kernel, stride, dilation), ref)


def test_sum_rows_is_each_rows_sum_by_blas_or_numpy() -> None:
    """Float rows through a product with ones (a convolution's bias gradient), other dtypes through NumPy's sum."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((32, 4000)).astype(np.float32)
    np.testing.assert_allclose(CPU.sum_rows(x), x.astype(np.float64).sum(axis=1), rtol=1e-5, atol=1e-4)
    assert CPU.sum_rows(x).dtype == np.float32 and CPU.sum_rows(x).shape == (32,)
    ints = rng.integers(-5, 5, (3, 7))
    np.testing.assert_array_equal(CPU.sum_rows(ints), ints.sum(axis=1))


def test_sum_columns_adds_the_rows_in_order() -> None:
    """Float32 rows in C order through the kernel, bit for bit the rows added one after another (NumPy's own order,
    so that results do not move); a single column (NumPy sums it pairwise), other layouts and dtypes through
    NumPy's sum."""
    rng = np.random.default_rng(10)
    for shape in ((768, 384), (1, 5), (3, 2), (1000, 65)):
        x = (rng.standard_normal(shape) * rng.uniform(0, 100, shape)).astype(np.float32)
        in_order = x[0].copy()
        for row in x[1:]:
            in_order += row
        np.testing.assert_array_equal(CPU.sum_columns(x), in_order)
        np.testing.assert_allclose(CPU.sum_columns(x), x.astype(np.float64).sum(axis=0), rtol=1e-4, atol=1e-3)
    for x in (rng.standard_normal((30, 20)).astype(np.float32).T, rng.integers(-5, 5, (3, 7)), np.zeros((0, 4)),
              rng.standard_normal((400, 1)).astype(np.float32)):
        np.testing.assert_array_equal(CPU.sum_columns(x), x.sum(axis=0))


def test_relu_backward_kernel_takes_any_shared_layout() -> None:
    """C order, a transposed layout shared by g and out (the kernel), and mixed layouts (the reference math)."""
    rng = np.random.default_rng(7)
    out = np.maximum(rng.standard_normal((40, 3, 50)).astype(np.float32), 0)  # large enough for the kernel
    out[0, 0, 0] = np.nan
    g = rng.standard_normal(out.shape).astype(np.float32)
    want = g * (out > 0)
    for o, gg in ((out, g), (np.asfortranarray(out), np.asfortranarray(g)), (out, np.asfortranarray(g)),
                  (out, np.broadcast_to(np.float32(2), out.shape))):
        np.testing.assert_array_equal(CPU.relu_backward(gg, o), np.asarray(gg) * (out > 0))
    np.testing.assert_array_equal(CPU.relu_backward(g, out), want)


def test_float32_kernels_compute_in_float32() -> None:
    """No float64 arithmetic in the row kernels' compiled code: dividing a float32 by an integer (``total / n``) types
    the result float64 in Numba, and that made LayerNorm's whole row run in float64, at half the speed (74 against
    32 us on (768, 128)). Compiled afresh (cached code cannot be inspected) for float32 arguments."""
    import re

    import numba
    from tensorlite.backends import numba_kernels as k

    f32, rows = np.float32, np.ones((8, 64), np.float32)
    flat, row, one = np.ones(256, f32), np.ones(64, f32), f32(1.0)
    cases = {
        "layer_norm_rows": (rows, row, row, one, rows.copy(), np.ones(8, f32), np.ones(8, f32)),
        "layer_norm_backward_rows": (rows, rows, row, np.ones(8, f32), np.ones(8, f32), rows.copy(), row.copy(),
                                     row.copy()),
        "softmax_rows": (rows, rows.copy(), one, np.zeros((1, 64), f32), True),
        "softmax_backward_rows": (rows, rows, rows.copy(), one),
        "log_softmax_rows": (rows, rows.copy(), rows.copy()),
        "gelu_backward": (flat, flat, flat.copy()),
        "adam_update": (flat, flat, flat.copy(), flat.copy(), *[one] * 7),
    }
    for name, args in cases.items():
        kernel = getattr(k, name)
        options = {key: value for key, value in kernel.targetoptions.items() if key != "nopython"}
        fresh = numba.njit(**{**options, "cache": False})(kernel.py_func)
        fresh(*args)
        llvm = fresh.inspect_llvm(fresh.signatures[0])
        double_math = re.findall(r"= (?:fadd|fsub|fmul|fdiv|fpext)\b[^\n]*double", llvm)
        assert not double_math, f"{name}: float64 arithmetic in its compiled code: {double_math[:3]}"
