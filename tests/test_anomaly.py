"""Anomaly detection: ``tl.autograd.detect_anomaly`` / ``set_detect_anomaly`` name the backward function
that returns a NaN and where its forward ran; off (the default), NaN passes silently and costs nothing."""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import numpy as np
import pytest
from tensorlite.backends.sim import SimArray

import tensorlite as tl
from tensorlite import autograd

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # log(0), 0 * inf: the NaN is the point


@pytest.fixture(autouse=True)
def _anomaly_off() -> Iterator[None]:
    """Every test starts and ends with anomaly detection off, as a fresh process has it."""
    assert not autograd.is_anomaly_enabled()
    yield
    autograd.set_detect_anomaly(False)


def zero_leaf(device: str) -> tl.Tensor:
    return tl.tensor([0.0, 1.0, 2.0], device=device, requires_grad=True)


def nan_backward(x: tl.Tensor) -> None:
    """d/dx (log(x) * x) at 0: Log's backward divides a zero gradient by zero."""
    (x.log() * x).sum().backward()


def test_nan_gradient_is_silent_by_default(device: str) -> None:
    x = zero_leaf(device)
    nan_backward(x)
    grad = x.grad.numpy()
    assert np.isnan(grad[0]) and np.isfinite(grad[1:]).all()


def test_detect_anomaly_names_the_function_its_output_and_where_it_was_created(device: str) -> None:
    x = zero_leaf(device)
    with tl.autograd.detect_anomaly():
        line = inspect.currentframe().f_lineno + 1
        y = x.log() * x
        with pytest.raises(RuntimeError) as error:
            y.sum().backward()
    message = str(error.value)
    assert message.startswith("Function 'LogBackward' returned nan values in its 0th output.")
    assert "(3,)" in message
    assert f'File "{__file__}", line {line}, in test_detect_anomaly_names' in message
    assert "y = x.log() * x" in message
    assert "tensorlite/" not in message  # the user's frames, not the library's


def test_decorator_form(device: str) -> None:
    @tl.autograd.detect_anomaly()
    def step(x: tl.Tensor) -> None:
        assert autograd.is_anomaly_enabled()
        nan_backward(x)

    with pytest.raises(RuntimeError, match="'LogBackward' returned nan values in its 0th output"):
        step(zero_leaf(device))
    assert not autograd.is_anomaly_enabled()


def test_decorated_recursive_calls_restore_the_mode() -> None:
    @tl.autograd.detect_anomaly(check_nan=False)
    def depth(n: int) -> int:
        assert autograd.is_anomaly_enabled() and not autograd.is_anomaly_check_nan_enabled()
        return 0 if n == 0 else 1 + depth(n - 1)

    assert depth(3) == 3
    assert not autograd.is_anomaly_enabled() and autograd.is_anomaly_check_nan_enabled()


def test_set_detect_anomaly_toggles_at_once(device: str) -> None:
    autograd.set_detect_anomaly(True)
    assert autograd.is_anomaly_enabled() and autograd.is_anomaly_check_nan_enabled()
    with pytest.raises(RuntimeError, match="LogBackward"):
        nan_backward(zero_leaf(device))
    autograd.set_detect_anomaly(False)
    assert not autograd.is_anomaly_enabled()
    nan_backward(zero_leaf(device))  # silent again


def test_nesting_restores_the_previous_mode() -> None:
    with autograd.detect_anomaly():
        with autograd.set_detect_anomaly(False):
            assert not autograd.is_anomaly_enabled()
        assert autograd.is_anomaly_enabled() and autograd.is_anomaly_check_nan_enabled()
        with autograd.detect_anomaly(check_nan=False):
            assert autograd.is_anomaly_enabled() and not autograd.is_anomaly_check_nan_enabled()
        assert autograd.is_anomaly_check_nan_enabled()
    assert not autograd.is_anomaly_enabled()
    with autograd.set_detect_anomaly(True, check_nan=False):
        assert autograd.is_anomaly_enabled() and not autograd.is_anomaly_check_nan_enabled()
    assert not autograd.is_anomaly_enabled() and autograd.is_anomaly_check_nan_enabled()


def test_mode_is_restored_after_an_exception() -> None:
    with pytest.raises(KeyError), autograd.detect_anomaly():
        raise KeyError("boom")
    assert not autograd.is_anomaly_enabled()


def test_check_nan_false_records_the_place_but_does_not_raise(device: str) -> None:
    x = zero_leaf(device)
    with autograd.detect_anomaly(check_nan=False):
        y = x.log() * x
        assert y._fn.forward_trace[-1].name == "test_check_nan_false_records_the_place_but_does_not_raise"
        y.sum().backward()
    assert np.isnan(x.grad.numpy()[0])


def test_an_op_created_before_anomaly_mode_has_no_recorded_place(device: str) -> None:
    x = zero_leaf(device)
    y = x.log() * x
    assert y._fn.forward_trace is None  # off: nothing recorded
    with autograd.detect_anomaly(), pytest.raises(RuntimeError, match="the op ran before anomaly detection"):
        y.sum().backward()


def test_the_later_of_two_inputs_is_named_by_its_index(device: str) -> None:
    """a / b at b = 0: the gradient for a is inf, the one for b (-g * a / b**2) is 0/0, NaN."""
    a = tl.tensor([0.0, 1.0], device=device, requires_grad=True)
    b = tl.tensor([0.0, 1.0], device=device, requires_grad=True)
    with autograd.detect_anomaly(), pytest.raises(RuntimeError, match="'DivBackward' returned nan values in its 1th"):
        (a / b).sum().backward()


def test_gradients_are_unchanged_under_anomaly_mode(device: str) -> None:
    def grads() -> list[np.ndarray]:
        tl.manual_seed(0)
        model = tl.nn.Sequential(tl.nn.Linear(4, 8), tl.nn.Tanh(), tl.nn.Linear(8, 3)).to(device)
        x = tl.randn(5, 4, device=device)
        tl.nn.functional.cross_entropy(model(x), tl.tensor([0, 1, 2, 0, 1], device=device)).backward()
        return [p.grad.numpy() for p in model.parameters()]

    plain = grads()
    with autograd.detect_anomaly():
        checked = grads()
    for a, b in zip(plain, checked, strict=True):
        np.testing.assert_array_equal(a, b)


def test_off_mode_reads_nothing_back_from_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """The NaN check is the only device-to-host read backward adds, and only in anomaly mode."""
    reads = []
    monkeypatch.setattr(SimArray, "__bool__", lambda self: reads.append(1) or bool(self._a))
    nan_backward(zero_leaf("sim"))
    assert reads == []
    with autograd.detect_anomaly(check_nan=False):
        nan_backward(zero_leaf("sim"))
    assert reads == []
    with autograd.detect_anomaly(), pytest.raises(RuntimeError):
        nan_backward(zero_leaf("sim"))
    assert reads
