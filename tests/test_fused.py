"""The fused CUDA kernels (backends/fused.py): the elementwise cores they fuse are the reference kernels' own math
(backends/base.py), checked here on NumPy against float64 math; the fused path's methods (reductions, what is
saved, in-place updates) run with the plain cores on NumPy and sim arrays against the reference kernels; the switch
is off by default; with a GPU, the compiled kernels against the same."""

from __future__ import annotations

import math

import numpy as np
import pytest
from tensorlite.backends import base, get_backend
from tensorlite.backends.cupy_backend import CupyBackend
from tensorlite.backends.fused import FusedKernels, RowStats, plain_kernel, self_check
from tensorlite.backends.sim import SimBackend

import tensorlite as tl

rng = np.random.default_rng(0)
CPU = get_backend("cpu", 0)


class PlainFusedSim(FusedKernels, SimBackend):
    """The fused path on the simulated device: the same methods, each core run unfused."""

    def fused_enabled(self) -> bool:
        return True

    def kernel(self, name: str):
        return plain_kernel(self, name)


def test_the_gelu_cores_match_float64_math() -> None:
    x = np.linspace(-6, 6, 1201).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    x64 = x.astype(np.float64)
    cdf = 0.5 * (1 + np.vectorize(math.erf)(x64 / math.sqrt(2)))
    pdf = np.exp(-x64 * x64 / 2) / math.sqrt(2 * math.pi)
    np.testing.assert_allclose(base.gelu_cdf(CPU.math, x), cdf, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(base.gelu_grad(CPU.math, g, x, base.gelu_cdf(CPU.math, x)), g * (cdf + x64 * pdf),
                               rtol=1e-5, atol=1e-6)
    t = np.tanh(math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64**3))
    np.testing.assert_allclose(base.gelu_tanh_t(CPU.math, x), t, rtol=1e-6, atol=1e-6)
    dt = (1 - t * t) * math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * x64**2)
    # 1 - t * t cancels near x = -5 in float32 (the reference math's own rounding): a few 1e-6 absolute there
    np.testing.assert_allclose(base.gelu_tanh_grad(CPU.math, g, x, base.gelu_tanh_t(CPU.math, x)),
                               g * (0.5 * (1 + t) + 0.5 * x64 * dt), rtol=1e-5, atol=5e-6)


def test_the_adam_core_updates_in_place_as_pytorchs_adamw() -> None:
    p0 = rng.standard_normal(20).astype(np.float32)
    p = tl.tensor(p0, requires_grad=True)
    reference = tl.optim.AdamW([p], lr=0.01, betas=(0.9, 0.99), weight_decay=0.1)
    mine, avg, avg_sq = p0.copy(), np.zeros(20, np.float32), np.zeros(20, np.float32)
    for step in range(1, 6):
        grad = rng.standard_normal(20).astype(np.float32)
        p.grad = tl.tensor(grad)
        reference.step()
        base.adam_(CPU.math, mine, avg, avg_sq, grad, 0.1, 0.99, 0.01, 1 - 0.01 * 0.1, (1 - 0.99**step) ** 0.5,
                   1e-8, 0.01 / (1 - 0.9**step))
        np.testing.assert_allclose(mine, p.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(avg, reference.state[p]["exp_avg"].numpy(), rtol=1e-6)


@pytest.fixture
def fused_sim() -> PlainFusedSim:
    return PlainFusedSim(0)


def sim(array: np.ndarray, backend: SimBackend):
    return backend.from_host(array)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_fused_gelu_saves_nothing_and_matches_the_reference(fused_sim: PlainFusedSim, approximate: str) -> None:
    x, g = (sim(a, fused_sim) for a in rng.standard_normal((2, 5, 7)).astype(np.float32))
    out, saved = fused_sim.gelu(x, approximate)
    assert saved is None and out.dtype == np.float32
    ref_out, ref_saved = base.Backend.gelu(fused_sim, x, approximate)
    np.testing.assert_array_equal(out.get(), ref_out.get())
    np.testing.assert_array_equal(fused_sim.gelu_backward(g, x, saved, approximate).get(),
                                  base.Backend.gelu_backward(fused_sim, g, x, ref_saved, approximate).get())


@pytest.mark.parametrize("affine", [True, False])
def test_fused_layer_norm_matches_the_reference_forward_and_backward(fused_sim: PlainFusedSim, affine: bool) -> None:
    x, g = (sim(a, fused_sim) for a in rng.standard_normal((2, 6, 8)).astype(np.float32))
    w, b = (sim(a, fused_sim) if affine else None for a in rng.standard_normal((2, 8)).astype(np.float32))
    out, saved = fused_sim.layer_norm(x, w, b, 1e-5)
    assert isinstance(saved, RowStats)
    ref_out, ref_saved = base.Backend.layer_norm(fused_sim, x, w, b, 1e-5)
    np.testing.assert_allclose(out.get(), ref_out.get(), rtol=1e-5, atol=1e-6)
    for got, want in zip(fused_sim.layer_norm_backward(g, x, w, saved),
                         base.Backend.layer_norm_backward(fused_sim, g, x, w, ref_saved)):
        np.testing.assert_allclose(got.get(), want.get(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_fused_adam_updates_in_place_as_the_reference(fused_sim: PlainFusedSim, amsgrad: bool) -> None:
    p0 = rng.standard_normal(30).astype(np.float32)
    ours = [sim(a, fused_sim) for a in (p0, np.zeros(30, np.float32), np.zeros(30, np.float32),
                                         np.zeros(30, np.float32))]
    theirs = [sim(a.get(), fused_sim) for a in ours]
    for step in range(1, 5):
        g = sim(rng.standard_normal(30).astype(np.float32), fused_sim)
        options = dict(lr=0.01, beta1=0.9, beta2=0.99, eps=1e-8, step=step, decay=0.999)
        fused_sim.adam_update(ours[0], g, ours[1], ours[2], max_v=ours[3] if amsgrad else None, **options)
        base.Backend.adam_update(fused_sim, theirs[0], g, theirs[1], theirs[2], max_v=theirs[3] if amsgrad else None,
                                 **options)
        for a, b in zip(ours, theirs):
            np.testing.assert_array_equal(a.get(), b.get())


def test_the_fused_step_takes_a_step_count_kept_on_the_device(fused_sim: PlainFusedSim) -> None:
    """After GradScaler's masked steps the count is a 0-d device array: the fused update takes it as one."""
    p, m, v = (sim(a, fused_sim) for a in (np.ones(4, np.float32), np.zeros(4, np.float32), np.zeros(4, np.float32)))
    g = sim(np.full(4, 0.5, np.float32), fused_sim)
    with fused_sim.scope:
        step = fused_sim.xp.full((), 1.0)
    fused_sim.adam_update(p, g, m, v, lr=0.1, beta1=0.9, beta2=0.99, eps=1e-8, step=step)
    np.testing.assert_allclose(p.get(), np.full(4, 0.9), rtol=1e-6)


def test_the_switch_is_off_by_default_and_the_cuda_backend_takes_the_fused_path() -> None:
    assert issubclass(CupyBackend, FusedKernels) and tl.backends.cuda.fused_kernels is False
    try:
        tl.set_fused_kernels(True)
        assert tl.backends.cuda.fused_kernels is True and "fused_kernels=True" in repr(tl.backends.cuda)
    finally:
        tl.set_fused_kernels(False)


def test_the_preflight_self_check_passes() -> None:
    errors = self_check()
    assert set(errors) == {"gelu_none", "gelu_tanh", "layer_norm", "adam"} and max(errors.values()) < 1e-5


# -- with a GPU: the compiled kernels -----------------------------------------------------------------------------
@pytest.mark.gpu
def test_each_kernel_is_fused_once_and_keeps_the_dtype() -> None:
    import cupy
    from tensorlite.backends.fused import cupy_kernel

    assert cupy_kernel("gelu") is cupy_kernel("gelu")
    x = cupy.linspace(-3, 3, 101, dtype=cupy.float32)
    assert cupy_kernel("gelu")(x).dtype == cupy.float32


@pytest.mark.gpu
def test_a_gpt_step_with_the_fused_kernels_equals_one_without_on_cuda() -> None:
    from tensorlite import models, nn

    def step(fused: bool) -> tuple[float, dict]:
        tl.set_fused_kernels(fused)
        try:
            tl.manual_seed(0)
            model = models.GPT(models.GPTConfig(block_size=8, vocab_size=11, n_layer=2, n_head=2, n_embd=16))
            model.to("cuda")
            optimizer = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
            x, y = (tl.tensor(a, device="cuda") for a in np.random.default_rng(2).integers(0, 11, (2, 3, 8)))
            _, loss = model(x, y)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            return loss.item(), {k: v.numpy() for k, v in model.state_dict().items()}
        finally:
            tl.set_fused_kernels(False)

    (loss, weights), (expected_loss, expected) = step(True), step(False)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-5)
    for key, value in expected.items():
        np.testing.assert_allclose(weights[key], value, rtol=1e-4, atol=1e-6, err_msg=key)
