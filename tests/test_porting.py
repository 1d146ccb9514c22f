"""The PyTorch names that research scripts use and that tensorlite answers: runtime shims (torch.cuda,
torch.amp, torch.compile, torch.backends), deliberate refusals (bfloat16, Variable, TensorBoard),
small tensor methods (narrow, new_*, view_as, to(dtype)), diag, set_grad_enabled, load's PyTorch
keywords, and docs/porting.md, which must match what tensorlite does today.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from oracle import torch

import tensorlite as tl
from tensorlite.scope import OutOfScopeError, marker

ROOT = Path(__file__).resolve().parent.parent


# -- runtime shims ---------------------------------------------------------------------------------


def test_cuda_answers_for_real(monkeypatch: pytest.MonkeyPatch) -> None:
    from tensorlite.backends.cupy_backend import cuda_status

    available = cuda_status()[0]
    assert tl.cuda.is_available() is available
    assert (tl.cuda.device_count() > 0) is available
    assert tl.cuda.is_bf16_supported() is False
    tl.cuda.manual_seed(1)  # nothing to seed without CUDA, as in PyTorch
    tl.cuda.manual_seed_all(1)
    if available:
        tl.cuda.synchronize()
    else:  # as PyTorch without CUDA: an error, not a silent wait for nothing
        with pytest.raises(RuntimeError, match="CUDA|CuPy|GPU"):
            tl.cuda.synchronize()
    assert tl.cuda.amp is tl.amp


def test_cuda_set_device_says_to_name_the_device() -> None:
    with pytest.raises(OutOfScopeError, match=r"torch.cuda.set_device .*\(device='cuda:1'"):
        tl.cuda.set_device(1)
    assert marker(tl.cuda.set_device)[0] == "error"


def test_nanogpts_mixed_precision_lines_run_as_written() -> None:
    """nanoGPT's ``torch.amp.autocast(device_type, dtype)`` context and ``torch.cuda.amp.GradScaler(enabled=...)``
    are tensorlite's real ones (docs/gpu.md tests them against PyTorch): on the CPU with float32 its scaler is
    disabled and passes the loss and the step through."""
    x = tl.ones(2, 2)
    with tl.amp.autocast(device_type="cpu", dtype=tl.float16):
        assert (x @ x).dtype == tl.float16  # matrix products run in float16 under autocast, as PyTorch's
    w = tl.tensor([1.0, 2.0], requires_grad=True)
    optimizer = tl.optim.SGD([w], lr=0.5)
    scaler = tl.cuda.amp.GradScaler(enabled=False)  # nanoGPT: enabled=(dtype == 'float16')
    loss = (w * w).sum()
    assert scaler.scale(loss) is loss
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    scaler.step(optimizer)
    scaler.update()
    assert w.tolist() == [0.0, 0.0]  # w - 0.5 * 2w: one plain SGD step
    assert tl.cuda.amp.GradScaler is tl.amp.GradScaler and marker(tl.amp.autocast) is None


def test_compile_returns_what_it_was_given() -> None:
    model = tl.nn.Linear(2, 2)
    assert tl.compile(model) is model
    assert tl.compile(model, mode="max-autotune", fullgraph=True) is model

    @tl.compile
    def f(x: tl.Tensor) -> tl.Tensor:
        return x + 1

    @tl.compile(dynamic=True)
    def g(x: tl.Tensor) -> tl.Tensor:
        return x + 2

    assert f(tl.zeros(1)).item() == 1.0 and g(tl.zeros(1)).item() == 2.0


def test_backend_switches_are_accepted() -> None:
    tl.backends.cuda.matmul.allow_tf32 = True
    tl.backends.cudnn.allow_tf32 = True
    assert tl.backends.mps.is_available() is False
    assert tl.tensor([2.0]).sum().item() == 2.0


# -- deliberate refusals ---------------------------------------------------------------------------


def test_bfloat16_can_be_named_but_not_used() -> None:
    dtypes = {"float32": tl.float32, "bfloat16": tl.bfloat16, "float16": tl.float16}  # nanoGPT builds this table
    assert "unsupported" in repr(dtypes["bfloat16"])
    with pytest.raises(TypeError, match="tensorlite.bfloat16 is not supported: NumPy has no bfloat16"):
        tl.zeros(2, dtype=tl.bfloat16)
    with pytest.raises(TypeError, match="bfloat16"):
        tl.ones(2).to(tl.bfloat16)


def test_variable_and_summary_writer_say_what_to_do_instead() -> None:
    with pytest.raises(OutOfScopeError, match="torch.autograd.Variable .* use the tensor itself"):
        tl.autograd.Variable(tl.zeros(1))
    from tensorlite.utils.tensorboard import SummaryWriter

    with pytest.raises(OutOfScopeError, match="TensorBoard event files: log the numbers yourself"):
        SummaryWriter(log_dir="runs")


def test_saving_a_whole_module_names_the_state_dict(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"model.state_dict\(\)"):
        tl.save(tl.nn.Linear(1, 1), tmp_path / "model.pt")


# -- tensor methods --------------------------------------------------------------------------------


def test_new_tensors_take_dtype_and_device_from_self(device: str) -> None:
    x = tl.zeros(2, dtype=tl.float64, device=device)
    for made in (x.new_zeros(2, 3), x.new_zeros((2, 3)), x.new_ones(2, 3), x.new_empty(2, 3),
                 x.new_full((2, 3), 7.0), x.new_tensor([[1, 2, 3], [4, 5, 6]])):
        assert made.shape == (2, 3) and made.dtype == tl.float64 and made.device == device
    assert x.new_zeros(2, dtype=tl.int64).dtype == tl.int64
    assert x.new_full((1,), 7.0).item() == 7.0 and x.new_ones(1, requires_grad=True).requires_grad


def test_to_takes_a_dtype_a_tensor_and_copy(device: str) -> None:
    x = tl.arange(3, device=device)
    assert x.to(tl.float64).dtype == tl.float64
    like = tl.zeros(1, dtype=tl.float16, device="cpu")
    moved = x.to(like)
    assert moved.dtype == tl.float16 and moved.device == "cpu"
    assert x.to(device, non_blocking=True) is x
    copied = x.to(copy=True)
    assert copied is not x and copied.tolist() == x.tolist()
    assert x.pin_memory() is x


def test_narrow_and_view_as(check, device: str) -> None:
    x = np.arange(24.0).reshape(4, 6) / 7
    check.parity(lambda a: a.narrow(1, 2, 3), lambda a: a.narrow(1, 2, 3), [x], device)
    check.parity(lambda a: a.narrow(0, -3, 2), lambda a: a.narrow(0, -3, 2), [x], device)
    check.parity(lambda a: a.view_as(a.t()), lambda a: a.view_as(a.t()), [x], device)
    check.grad(lambda a: a.narrow(-1, 1, 4) * a.narrow(-1, 0, 4), [x], device)


def test_narrow_rejects_what_does_not_fit() -> None:
    with pytest.raises(IndexError, match="narrow: start 4 and length 3 do not fit dimension 1 of size 6"):
        tl.zeros(2, 6).narrow(1, 4, 3)
    with pytest.raises(IndexError, match="narrow: dimension 2 is out of range"):
        tl.zeros(2, 6).narrow(2, 0, 1)


@pytest.mark.parametrize(("shape", "diagonal"), [((4,), 0), ((3,), 2), ((3,), -1), ((3, 3), 0), ((3, 5), 1),
                                                 ((4, 2), -2), ((2, 4), -1)])
def test_diag(check, device: str, shape: tuple, diagonal: int) -> None:
    x = np.random.default_rng(len(shape) + diagonal).standard_normal(shape)
    check.parity(lambda a: tl.diag(a, diagonal), lambda a: torch.diag(a, diagonal), [x], device)
    check.parity(lambda a: a.diag(diagonal), lambda a: a.diag(diagonal), [x], device)
    check.grad(lambda a: tl.diag(a, diagonal), [x], device)


def test_diag_rejects_other_shapes() -> None:
    with pytest.raises(ValueError, match=r"diag: expected a vector or a matrix, got shape \(2, 2, 2\)"):
        tl.diag(tl.zeros(2, 2, 2))


# -- gradient mode, clipping, loading --------------------------------------------------------------


def test_set_grad_enabled_as_call_block_and_decorator(device: str) -> None:
    x = tl.ones(2, requires_grad=True, device=device)
    tl.set_grad_enabled(False)
    assert not (x * 2).requires_grad
    tl.set_grad_enabled(True)
    with tl.set_grad_enabled(False):
        assert not (x * 2).requires_grad
        with tl.set_grad_enabled(True):
            assert (x * 2).requires_grad
    assert tl.is_grad_enabled()

    @tl.set_grad_enabled(False)
    def frozen(t: tl.Tensor) -> tl.Tensor:
        return t * 2

    assert tl.is_grad_enabled()  # decorating does not switch the mode
    assert not frozen(x).requires_grad and tl.is_grad_enabled()


@pytest.mark.parity
def test_set_grad_enabled_sequence_matches_pytorch() -> None:
    def states(lib) -> list[bool]:
        seen = []
        lib.set_grad_enabled(False)
        seen.append(lib.is_grad_enabled())
        with lib.set_grad_enabled(True):
            seen.append(lib.is_grad_enabled())
        seen.append(lib.is_grad_enabled())
        lib.set_grad_enabled(True)
        with lib.no_grad(), lib.set_grad_enabled(True):
            seen.append(lib.is_grad_enabled())
        seen.append(lib.is_grad_enabled())
        return seen

    assert states(tl) == states(torch)


def test_clip_grad_norm_is_the_deprecated_spelling() -> None:
    a, b = tl.tensor([3.0, 4.0], requires_grad=True), tl.tensor([3.0, 4.0], requires_grad=True)
    (a * a).sum().backward()
    (b * b).sum().backward()
    with pytest.warns(FutureWarning, match="use clip_grad_norm_"):
        norm = tl.nn.utils.clip_grad_norm([a], 1.0)
    assert norm.item() == tl.nn.utils.clip_grad_norm_([b], 1.0).item() == 10.0
    assert a.grad.tolist() == b.grad.tolist()


def test_load_takes_pytorchs_keywords(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    tl.save({"w": tl.arange(3.0)}, path)
    assert tl.load(path, map_location="cpu", weights_only=True)["w"].tolist() == [0.0, 1.0, 2.0]
    assert tl.load(path, map_location=tl.device("sim"))["w"].device == "sim"
    with pytest.raises(TypeError, match="map_location must be a device or its name"):
        tl.load(path, map_location={"cuda:0": "cpu"})
    with pytest.raises(TypeError, match="not both"):
        tl.load(path, "cpu", map_location="cpu")


# -- the porting page ------------------------------------------------------------------------------


def test_porting_page_matches_what_tensorlite_does() -> None:
    """docs/porting.md is generated by probing tensorlite: regenerate it when a name starts (or stops) working."""
    done = subprocess.run([sys.executable, "scripts/porting_coverage.py", "--check"], cwd=ROOT, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr


def test_coverage_probe_tells_the_kinds_apart() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import porting_coverage as coverage
    finally:
        sys.path.pop(0)
    assert coverage.probe("torch.topk")[0] == "yes"
    assert coverage.probe("torch.arange(dtype=)")[0] == "yes"
    assert coverage.probe("torch.arange(nonsense=)") == ("no", "no nonsense= argument")
    assert coverage.probe("torch.compile")[0] == "no-op"
    assert coverage.probe("torch.cuda.amp.GradScaler.step")[0] == "yes"
    assert coverage.probe("torch.bfloat16")[0] == "error"
    assert coverage.probe("torch.save(module)")[0] == "error"
    assert coverage.probe("torch.no_such_thing") == ("no", "")
    assert coverage.probe("torch.nn.Module.training")[0] == "yes"  # an attribute set in __init__
    assert coverage.probe("torch.Tensor.__setitem__(bool-mask)")[0] == "yes"


# -- in-place random fills, copies of models --------------------------------------------------------


def test_normal_and_uniform_fill_in_place(device: str) -> None:
    w = tl.zeros(200, 50, device=device)
    assert w.normal_(mean=1.0, std=0.5) is w
    values = np.asarray(w.numpy())
    assert abs(values.mean() - 1.0) < 0.02 and abs(values.std() - 0.5) < 0.02  # 10,000 draws: ~0.005 std error
    w.uniform_(-2.0, 3.0)
    values = np.asarray(w.numpy())
    assert values.min() >= -2.0 and values.max() < 3.0 and abs(values.mean() - 0.5) < 0.05
    tl.manual_seed(4)
    first = tl.empty(5, device=device).normal_().tolist()
    tl.manual_seed(4)
    assert tl.empty(5, device=device).normal_().tolist() == first


def test_random_fills_follow_the_in_place_rules() -> None:
    p = tl.nn.Parameter(tl.zeros(3))
    with pytest.raises(RuntimeError, match="normal_: in-place update of a tensor that requires grad"):
        p.normal_()
    p.data.normal_(std=0.02)  # minGPT's init: through .data, outside the graph
    assert p.abs().max().item() > 0
    with pytest.raises(TypeError, match="uniform_: expected a floating-point tensor, got int64"):
        tl.zeros(3, dtype=tl.long).uniform_()


def test_a_deep_copy_of_a_model_stays_on_the_same_device_object() -> None:
    """copy.deepcopy (nn.TransformerEncoder copies its layer) must not make a second 'cpu' device."""
    import copy

    model = tl.nn.Linear(2, 2)
    clone = copy.deepcopy(model)
    assert clone.weight.device is model.weight.device and clone.weight is not model.weight
    assert (clone(tl.ones(1, 2)) - model(tl.ones(1, 2))).abs().max().item() == 0.0
