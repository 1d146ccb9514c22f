"""Losses: every functional loss and option against float64 finite differences and PyTorch, on every backend.

Each combination of options is checked twice: ``check_grad`` (float64 central differences of
the input's, and a float target's, gradient) and ``check_parity`` (float32 values and gradients
against ``torch.nn.functional``). The ``nn.*Loss`` modules are compared with PyTorch's modules.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from oracle import TF, check_parity, torch

import tensorlite as tl
import tensorlite.nn.functional as F

REDUCTIONS = ["mean", "sum", "none"]
CLASS_SHAPES = [(4, 3), (2, 3, 2)]  # (N, C) and (N, C, d)


def randn(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def uniform(*shape: int, low: float = 0.05, high: float = 0.95, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(low, high, shape)


def class_indices(shape: tuple[int, ...], ignore_index: int | None, seed: int = 2) -> np.ndarray:
    """int64 targets for input ``shape`` (N, C, ...): the batch shape, some positions set to ``ignore_index``."""
    classes = shape[1]
    target = np.random.default_rng(seed).integers(0, classes, shape[:1] + shape[2:])
    if ignore_index is not None:
        target.reshape(-1)[[0, -2]] = ignore_index
    return target


def class_probabilities(shape: tuple[int, ...], seed: int = 3) -> np.ndarray:
    e = np.exp(randn(*shape, seed=seed))
    return e / e.sum(axis=1, keepdims=True)


def check_both(check, ours, theirs, arrays: list[np.ndarray], device: str, grad: list[bool]) -> None:
    """Finite differences on ``ours``, or values and gradients against PyTorch's ``theirs``."""
    check.grad(ours, arrays, device, grad=grad)
    check.parity(ours, theirs, arrays, device, grad=grad)


# -- regression ------------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss"])
def test_regression_losses(check, device, name, reduction):
    def ours(x, y):
        return getattr(F, name)(x, y, reduction=reduction)

    def theirs(x, y):
        return getattr(TF, name)(x, y, reduction=reduction)

    check_both(check, ours, theirs, [randn(3, 4), randn(3, 4, seed=5)], device, grad=[True, True])


# -- binary cross entropy --------------------------------------------------------------------------
@pytest.mark.parametrize("weight_shape", [None, (3,), (4, 3)], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy(check, device, reduction, weight_shape):
    arrays = [uniform(4, 3), uniform(4, 3, low=0.0, high=1.0, seed=6)]
    if weight_shape is not None:
        arrays.append(uniform(*weight_shape, low=0.5, high=2.0, seed=7))

    def ours(x, y, *weight):
        return F.binary_cross_entropy(x, y, *weight, reduction=reduction)

    def theirs(x, y, *weight):
        return TF.binary_cross_entropy(x, y, *weight, reduction=reduction)

    check_both(check, ours, theirs, arrays, device, grad=[True, True, False][:len(arrays)])


def test_binary_cross_entropy_clamps_log_at_minus_100(device):
    x = tl.tensor([0.0, 1.0, 0.5], dtype=tl.float64, device=device, requires_grad=True)
    y = tl.tensor([1.0, 0.0, 1.0], dtype=tl.float64, device=device)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # log(0) is clamped, not warned about
        loss = F.binary_cross_entropy(x, y, reduction="none")
    np.testing.assert_allclose(loss.numpy(), [100.0, 100.0, np.log(2)])
    loss.sum().backward()
    assert np.isfinite(x.grad.numpy()).all()


@pytest.mark.parametrize("pos_weight", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_with_logits(check, device, reduction, weighted, pos_weight):
    arrays = [randn(4, 3) * 3, uniform(4, 3, low=0.0, high=1.0, seed=6)]
    grad = [True, True]
    if weighted:
        arrays.append(uniform(4, 1, low=0.5, high=2.0, seed=7))
        grad.append(False)
    if pos_weight:
        arrays.append(uniform(3, low=0.5, high=3.0, seed=8))
        grad.append(False)

    def split(extra):
        return (extra[0] if weighted else None), (extra[-1] if pos_weight else None)

    def ours(x, y, *extra):
        weight, pw = split(extra)
        return F.binary_cross_entropy_with_logits(x, y, weight, reduction=reduction, pos_weight=pw)

    def theirs(x, y, *extra):
        weight, pw = split(extra)
        return TF.binary_cross_entropy_with_logits(x, y, weight, reduction=reduction, pos_weight=pw)

    check_both(check, ours, theirs, arrays, device, grad=grad)


@pytest.mark.parity
def test_binary_cross_entropy_with_logits_is_stable_for_huge_logits(device):
    x = np.array([[-1000.0, -30.0, 0.0, 30.0, 1000.0]])
    y = np.array([[1.0, 0.0, 0.5, 1.0, 0.0]])
    pos_weight = np.array([2.0, 1.0, 0.5, 3.0, 1.5])

    def ours(x, y, pw):
        return F.binary_cross_entropy_with_logits(x, y, pos_weight=pw, reduction="none")

    def theirs(x, y, pw):
        return TF.binary_cross_entropy_with_logits(x, y, pos_weight=pw, reduction="none")

    check_parity(ours, theirs, [x, y, pos_weight], device, grad=[True, True, False])


# -- cross entropy and NLL -------------------------------------------------------------------------
@pytest.mark.parametrize("shape", CLASS_SHAPES, ids=str)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore_index", [None, -100, 1], ids=["none-ignored", "ignore-100", "ignore1"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_class_indices(check, device, reduction, ignore_index, weighted, label_smoothing, shape):
    arrays = [randn(*shape), class_indices(shape, ignore_index)]
    if weighted:
        arrays.append(uniform(shape[1], low=0.5, high=2.0, seed=7))
    options = dict(ignore_index=-100 if ignore_index is None else ignore_index, reduction=reduction,
                   label_smoothing=label_smoothing)

    def ours(x, t, *weight):
        return F.cross_entropy(x, t, *weight, **options)

    def theirs(x, t, *weight):
        return TF.cross_entropy(x, t, *weight, **options)

    check_both(check, ours, theirs, arrays, device, grad=[True, False, False][:len(arrays)])


@pytest.mark.parametrize("shape", CLASS_SHAPES, ids=str)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_class_probabilities(check, device, reduction, weighted, label_smoothing, shape):
    arrays = [randn(*shape), class_probabilities(shape)]
    if weighted:
        arrays.append(uniform(shape[1], low=0.5, high=2.0, seed=7))
    options = dict(reduction=reduction, label_smoothing=label_smoothing)

    def ours(x, p, *weight):
        return F.cross_entropy(x, p, *weight, **options)

    def theirs(x, p, *weight):
        return TF.cross_entropy(x, p, *weight, **options)

    check_both(check, ours, theirs, arrays, device, grad=[True, True, False][:len(arrays)])


@pytest.mark.parametrize("shape", CLASS_SHAPES, ids=str)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore_index", [None, -100, 1], ids=["none-ignored", "ignore-100", "ignore1"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss(check, device, reduction, ignore_index, weighted, shape):
    arrays = [randn(*shape), class_indices(shape, ignore_index)]
    if weighted:
        arrays.append(uniform(shape[1], low=0.5, high=2.0, seed=7))
    options = dict(ignore_index=-100 if ignore_index is None else ignore_index, reduction=reduction)

    def ours(x, t, *weight):
        return F.nll_loss(F.log_softmax(x, 1), t, *weight, **options)

    def theirs(x, t, *weight):
        return TF.nll_loss(TF.log_softmax(x, 1), t, *weight, **options)

    check_both(check, ours, theirs, arrays, device, grad=[True, False, False][:len(arrays)])


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
def test_unbatched_class_loss(check, device, name):
    def ours(x, t):
        return getattr(F, name)(x, t)

    def theirs(x, t):
        return getattr(TF, name)(x, t)

    check_both(check, ours, theirs, [randn(5), np.array(3)], device, grad=[True, False])


@pytest.mark.parity
def test_cross_entropy_is_stable_for_huge_logits(device):
    x = np.array([[1000.0, 0.0, -1000.0], [-1000.0, -1000.0, 1000.0]])

    def ours(x, t):
        return F.cross_entropy(x, t, reduction="none", label_smoothing=0.1)

    def theirs(x, t):
        return TF.cross_entropy(x, t, reduction="none", label_smoothing=0.1)

    check_parity(ours, theirs, [x, np.array([1, 2])], device, grad=[True, False], rtol=1e-4)


def test_cross_entropy_is_one_fused_node(device):
    x = tl.randn(4, 3, device=device, requires_grad=True)
    loss = F.cross_entropy(x, tl.tensor([0, 2, 1, 0], device=device))
    assert type(loss._fn).__name__ == "CrossEntropy"
    assert loss._fn.inputs[0] is x


def test_cross_entropy_mean_of_all_ignored_is_nan_as_pytorch(device):
    x = tl.randn(2, 3, device=device)
    with np.errstate(invalid="ignore"):
        loss = F.cross_entropy(x, tl.tensor([-100, -100], device=device))
    assert np.isnan(loss.item())


# -- modules ---------------------------------------------------------------------------------------
def _module_cases() -> list[tuple[str, dict, list[np.ndarray]]]:
    w3 = uniform(3, low=0.5, high=2.0, seed=7)
    logits, probs = randn(4, 3), uniform(4, 3)
    binary, indices = uniform(4, 3, low=0.0, high=1.0, seed=6), np.array([0, 2, 1, 2])
    return [
        ("MSELoss", {"reduction": "sum"}, [logits, binary]),
        ("L1Loss", {"reduction": "none"}, [logits, binary]),
        ("BCELoss", {"weight": w3}, [probs, binary]),
        ("BCEWithLogitsLoss", {"weight": w3, "pos_weight": w3[::-1].copy(), "reduction": "sum"}, [logits, binary]),
        ("CrossEntropyLoss", {"weight": w3, "ignore_index": 1, "label_smoothing": 0.1}, [logits, indices]),
        ("NLLLoss", {"weight": w3, "ignore_index": 2, "reduction": "sum"}, [logits, indices]),
    ]


@pytest.mark.parity
@pytest.mark.parametrize("name, options, arrays", _module_cases(), ids=[case[0] for case in _module_cases()])
def test_loss_modules_match_pytorch(device, name, options, arrays):
    def build(lib, to_tensor):
        return getattr(lib.nn, name)(**{k: to_tensor(v) if isinstance(v, np.ndarray) else v
                                        for k, v in options.items()})

    module = build(tl, lambda a: tl.tensor(a, dtype=tl.float32, device=device))
    assert isinstance(module, tl.nn.Module)
    expected = {k for k in ("weight", "pos_weight") if k in options}
    assert {buffer for buffer, _ in module.named_buffers()} == expected
    reference = build(torch, lambda a: torch.tensor(a, dtype=torch.float32))
    check_parity(module, reference, arrays, device, grad=[True, False])


def test_loss_module_weight_moves_with_the_module():
    loss = tl.nn.CrossEntropyLoss(tl.tensor([1.0, 2.0, 3.0]))
    assert "weight" in loss.state_dict()
    loss.to("sim")
    x, t = tl.randn(2, 3, device="sim"), tl.tensor([0, 2], device="sim")
    assert loss(x, t).device == tl.device("sim")


# -- errors ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits"])
def test_elementwise_losses_name_mismatched_shapes(name):
    with pytest.raises(ValueError, match=rf"{name}: target shape \(4,\) does not match input shape \(3, 4\)"):
        getattr(F, name)(tl.rand(3, 4), tl.rand(4))


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
                                  "cross_entropy", "nll_loss"])
def test_bad_reduction_is_named(name):
    target = tl.tensor([0, 1, 2, 0]) if name in ("cross_entropy", "nll_loss") else tl.rand(4, 3)
    with pytest.raises(ValueError, match=rf"{name}: reduction must be 'mean', 'sum' or 'none', got 'avg'"):
        getattr(F, name)(tl.rand(4, 3), target, reduction="avg")
    with pytest.raises(ValueError, match="CrossEntropyLoss: reduction must be"):
        tl.nn.CrossEntropyLoss(reduction="elementwise_mean")


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
def test_float_class_index_target_is_named(name):
    with pytest.raises(TypeError, match=rf"{name}: expected class-index targets of an integer dtype .* float32 target"):
        getattr(F, name)(tl.randn(4, 3), tl.tensor([0.0, 1.0, 2.0, 0.0]))


def test_cross_entropy_float_target_mentions_probabilities():
    with pytest.raises(TypeError, match=r"or class probabilities of the input's shape \(4, 3\)"):
        F.cross_entropy(tl.randn(4, 3), tl.rand(4, 2))


@pytest.mark.parametrize("bad", [3, 7, -1, -5])
@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
def test_out_of_range_class_index_is_named(device, name, bad):
    target = tl.tensor([0, 1, bad, 2], device=device)
    with pytest.raises(IndexError, match=rf"{name}: target {bad} is out of bounds: .* \[0, 3\)"):
        getattr(F, name)(tl.randn(4, 3, device=device), target).item()  # a device finds it at a read


def test_ignore_index_outside_the_classes_is_not_out_of_range():
    loss = F.cross_entropy(tl.randn(3, 3), tl.tensor([0, 7, 2]), ignore_index=7, reduction="none")
    assert loss[1].item() == 0.0


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
def test_class_index_target_shape_is_checked(name):
    with pytest.raises(ValueError, match=rf"{name}: target shape \(5,\) does not match input shape \(4, 3\): .*"
                                         r"must have shape \(4,\)"):
        getattr(F, name)(tl.randn(4, 3), tl.tensor([0, 1, 2, 0, 1]))
    with pytest.raises(ValueError, match=r"must have shape \(2, 5\)"):
        getattr(F, name)(tl.randn(2, 3, 5), tl.zeros(2, 4, dtype=tl.int64))


def test_class_weight_shape_and_grad_are_checked():
    x, t = tl.randn(4, 3), tl.tensor([0, 1, 2, 0])
    with pytest.raises(ValueError, match=r"cross_entropy: weight has shape \(2,\), expected \(3,\)"):
        F.cross_entropy(x, t, tl.ones(2))
    with pytest.raises(RuntimeError, match="nll_loss: weight must not require grad"):
        F.nll_loss(x, t, tl.ones(3, requires_grad=True))


def test_binary_weights_must_broadcast_to_the_input():
    x, y = tl.rand(4, 3), tl.rand(4, 3)
    with pytest.raises(ValueError, match=r"binary_cross_entropy: weight has shape \(4,\), expected a shape that "
                                         r"broadcasts to the input's \(4, 3\)"):
        F.binary_cross_entropy(x, y, tl.ones(4))
    with pytest.raises(ValueError, match=r"binary_cross_entropy_with_logits: pos_weight has shape \(2, 4, 3\)"):
        F.binary_cross_entropy_with_logits(x, y, pos_weight=tl.ones(2, 4, 3))


def test_binary_cross_entropy_input_must_be_probabilities():
    with pytest.raises(ValueError, match=r"binary_cross_entropy: input values must be probabilities in \[0, 1\], "
                                         r"got 1.5"):
        F.binary_cross_entropy(tl.tensor([0.5, 1.5]), tl.tensor([0.0, 1.0]))


def test_label_smoothing_must_be_a_probability():
    with pytest.raises(ValueError, match=r"cross_entropy: label_smoothing must be in \[0, 1\], got 1.5"):
        F.cross_entropy(tl.randn(2, 3), tl.tensor([0, 1]), label_smoothing=1.5)


def test_deprecated_positional_options_fail_loudly():
    with pytest.raises(TypeError):
        F.cross_entropy(tl.randn(2, 3), tl.tensor([0, 1]), None, None, -100)
