"""Checking ops two ways: float64 finite differences and PyTorch.

PyTorch is a test-only oracle, reached only through this module and only by tests marked
``parity``: ``from oracle import torch`` gives a stand-in that imports PyTorch on first use, so a
test module never imports it at load time (ruff's TID253 keeps it so) and, without PyTorch, the
parity tests skip while every other test runs. A test that touches the oracle without the
``parity`` marker fails, so ``pytest -m parity`` selects exactly the tests that need PyTorch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import tensorlite as tl

ENABLE_PARITY = 'PyTorch, the test oracle, is not installed: pip install -e ".[parity]" runs the parity tests'

_current_test: pytest.Item | None = None  # set by conftest for each test


def set_current_test(item: pytest.Item | None) -> None:
    global _current_test
    _current_test = item


def is_parity_test(item: pytest.Item) -> bool:
    return item.get_closest_marker("parity") is not None


def torch_or_skip(name: str = "torch") -> ModuleType:
    """PyTorch (or one of its submodules), for a test marked ``parity``; skips when it is not installed."""
    if _current_test is None or not is_parity_test(_current_test):
        where = _current_test.nodeid if _current_test is not None else "module level"
        pytest.fail(f"{where} uses PyTorch but is not marked parity: add @pytest.mark.parity (or use the "
                    "`check` fixture)", pytrace=False)
    module = pytest.importorskip(name.partition(".")[0], reason=ENABLE_PARITY)
    module.set_num_threads(1)  # the oracle's ops are tiny: a second thread only waits on a busy machine
    return module if name == module.__name__ else importlib.import_module(name)


class _LazyModule:
    """Stands for a PyTorch module in a test file; PyTorch is imported on first attribute access."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_"):  # pytest probes module globals for its own markers while collecting
            raise AttributeError(attr)
        return getattr(torch_or_skip(self._name), attr)

    def __repr__(self) -> str:
        return f"<lazy {self._name}>"


torch: Any = _LazyModule("torch")
TF: Any = _LazyModule("torch.nn.functional")


def as_tensors(arrays: Sequence[np.ndarray], device: str, dtype, grad: Sequence[bool] | None = None) -> list:
    """Host arrays as tensorlite tensors on ``device``; floating ones require grad unless told otherwise."""
    out = []
    for i, a in enumerate(arrays):
        a = np.asarray(a)
        wants = (a.dtype.kind == "f") if grad is None else grad[i]
        cast = a.astype(dtype) if a.dtype.kind == "f" else a
        out.append(tl.tensor(cast, device=device, requires_grad=wants))
    return out


def check_grad(fn: Callable, arrays: Sequence[np.ndarray], device: str, grad: Sequence[bool] | None = None,
               **kwargs) -> None:
    """float64 central-difference gradient check of ``fn`` at ``arrays`` on ``device``."""
    inputs = as_tensors(arrays, device, np.float64, grad)
    assert tl.gradcheck(fn, inputs, **kwargs)


def _host(t) -> np.ndarray:
    return np.asarray(t.detach().cpu().numpy() if hasattr(t, "detach") else t)


def check_parity(tl_fn: Callable, torch_fn: Callable, arrays: Sequence[np.ndarray], device: str,
                 grad: Sequence[bool] | None = None, rtol: float = 1e-5, atol: float = 1e-6,
                 dtype=np.float32) -> None:
    """Same inputs through tensorlite and PyTorch: forward values and every input gradient must match."""
    torch = torch_or_skip()
    ours = as_tensors(arrays, device, dtype, grad)
    theirs = []
    for t in ours:
        host = torch.from_numpy(np.array(t.numpy()))
        theirs.append(host.requires_grad_(t.requires_grad))
    out_ours, out_theirs = tl_fn(*ours), torch_fn(*theirs)
    outs_ours = out_ours if isinstance(out_ours, (tuple, list)) else (out_ours,)
    outs_theirs = out_theirs if isinstance(out_theirs, (tuple, list)) else (out_theirs,)
    assert len(outs_ours) == len(outs_theirs)
    for a, b in zip(outs_ours, outs_theirs):
        assert tuple(a.shape) == tuple(b.shape), f"shape {a.shape} vs torch {tuple(b.shape)}"
        np.testing.assert_allclose(_host(a), b.detach().numpy(), rtol=rtol, atol=atol, err_msg="forward")
    # Backward with the same random upstream gradient through every floating output.
    rng = np.random.default_rng(1)
    loss_ours = loss_theirs = None
    for a, b in zip(outs_ours, outs_theirs):
        if not (a.requires_grad and b.requires_grad):
            continue
        w = rng.standard_normal(tuple(a.shape)).astype(dtype)
        term_ours = (a * tl.tensor(w, device=device)).sum()
        term_theirs = (b * torch.from_numpy(w)).sum()
        loss_ours = term_ours if loss_ours is None else loss_ours + term_ours
        loss_theirs = term_theirs if loss_theirs is None else loss_theirs + term_theirs
    if loss_ours is None:
        return
    loss_ours.backward()
    loss_theirs.backward()
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if not b.requires_grad:
            continue
        expected = b.grad.numpy() if b.grad is not None else np.zeros(tuple(b.shape), dtype)
        got = a.grad.numpy() if a.grad is not None else np.zeros(tuple(a.shape), dtype)
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol, err_msg=f"gradient of input {i}")


class Checks:
    """One oracle per test instance: the ``check`` fixture runs a test once with finite differences
    (``check.grad``) and once, marked ``parity``, against PyTorch (``check.parity``).

    The other oracle's calls are skipped in each instance, so the gradient checks run without
    PyTorch; each instance must make at least one check of its own kind (counted in ``made``).
    """

    def __init__(self, oracle: str) -> None:
        self.oracle = oracle
        self.made = 0

    def grad(self, fn: Callable, arrays: Sequence[np.ndarray], device: str, **kwargs) -> None:
        if self.oracle == "gradcheck":
            check_grad(fn, arrays, device, **kwargs)
            self.made += 1

    def parity(self, tl_fn: Callable, torch_fn: Callable, arrays: Sequence[np.ndarray], device: str,
               **kwargs) -> None:
        if self.oracle == "parity":
            check_parity(tl_fn, torch_fn, arrays, device, **kwargs)
            self.made += 1
