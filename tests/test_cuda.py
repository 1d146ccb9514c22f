"""``tl.cuda``: without a GPU it says so; with one (tests marked gpu) its figures follow CuPy's memory pool,
synchronize waits and reports failed device checks, and a training step makes no synchronisation CuPy can
detect."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from devices import cuda_available

import tensorlite as tl
from tensorlite import models, nn, optim

no_gpu = pytest.mark.skipif(cuda_available(), reason="checks the answers given where there is no GPU")


@no_gpu
def test_without_a_gpu_cuda_is_unavailable_and_says_why() -> None:
    assert tl.cuda.is_available() is False and tl.cuda.device_count() == 0
    for call in (tl.cuda.synchronize, tl.cuda.memory_allocated, tl.cuda.empty_cache, tl.cuda.reset_peak_memory_stats,
                 tl.cuda.get_device_name):
        with pytest.raises(RuntimeError, match="tl.cuda: no CUDA device is usable: CuPy"):
            call()


@no_gpu
def test_info_reports_no_pool_without_a_gpu() -> None:
    from cli_runner import invoke

    result = invoke("info")
    assert result.exit_code == 0 and "backend cupy (cuda)" in result.output and "memory pool" not in result.output


@pytest.mark.gpu
def test_the_pool_figures_follow_allocations_and_empty_cache() -> None:
    tl.cuda.empty_cache()
    tl.cuda.reset_peak_memory_stats()
    before = tl.cuda.memory_allocated()
    x = tl.zeros(1024, 1024, device="cuda")  # 4 MiB
    assert tl.cuda.memory_allocated() >= before + 4 * 2**20
    assert tl.cuda.memory_reserved() >= tl.cuda.memory_allocated()
    del x
    assert tl.cuda.memory_allocated() == before
    assert tl.cuda.max_memory_allocated() >= before + 4 * 2**20  # the peak outlives the array
    held = tl.cuda.memory_reserved()
    tl.cuda.empty_cache()
    assert tl.cuda.memory_reserved() < held and tl.cuda.max_memory_reserved() >= held
    stats = tl.cuda.memory_stats()
    assert {"allocated_bytes.all.current", "allocated_bytes.all.peak", "reserved_bytes.all.current"} <= set(stats)
    assert "NVIDIA" in tl.cuda.get_device_name(0) or tl.cuda.get_device_name(0)


@pytest.mark.gpu
def test_synchronize_reports_a_failed_check_recorded_on_the_device() -> None:
    bad = nn.functional.embedding(tl.tensor([9], device="cuda"), tl.randn(3, 2, device="cuda"))
    assert bad.shape == (1, 2)
    with pytest.raises(IndexError, match="embedding: index 9 is out of range"):
        tl.cuda.synchronize()
    tl.cuda.synchronize()  # reported once


@pytest.mark.gpu
def test_a_training_step_makes_no_synchronisation_cupy_detects() -> None:
    """cupyx.allow_synchronize(False) (deprecated by CuPy, and it can miss synchronisations outside CuPy) raises
    on the synchronisations CuPy itself makes: none in a step after the first."""
    cupyx = pytest.importorskip("cupyx")
    tl.manual_seed(0)
    model = models.MNISTCNN().to("cuda")
    optimizer = optim.AdamW(model.parameters())
    rng = np.random.default_rng(0)
    x = tl.tensor(rng.standard_normal((8, 1, 28, 28)).astype(np.float32), device="cuda")
    y = tl.tensor(rng.integers(0, 10, 8), device="cuda")

    def step() -> None:
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    step()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with cupyx.allow_synchronize(False):
            step()
    tl.cuda.synchronize()


@pytest.mark.gpu
def test_info_reports_each_gpu_and_its_pool() -> None:
    from cli_runner import invoke

    result = invoke("info")
    assert result.exit_code == 0 and "cuda:0" in result.output and "memory pool used" in result.output


def test_tf32_is_off_by_default_and_switches_as_pytorchs_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    flags = tl.backends.cuda.matmul
    assert flags.allow_tf32 is False and "allow_tf32=False" in repr(tl.backends.cuda)
    monkeypatch.setattr(flags, "_allow_tf32", flags.allow_tf32)  # restored after the test
    flags.allow_tf32 = True  # recorded without a GPU; applied to CuPy's float32 compute type with one
    assert flags.allow_tf32 is True
    if cuda_available():
        from cupy._core import _routines_linalg as linalg

        assert linalg.get_compute_type(np.float32) == linalg.COMPUTE_TYPE_TF32
        flags.allow_tf32 = False
        assert linalg.get_compute_type(np.float32) == linalg.COMPUTE_TYPE_DEFAULT
