"""Checking ops two ways: float64 finite differences (``check_grad``) and PyTorch (``check_parity``).

PyTorch is a test-only oracle; tests that need it skip when it is not installed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytest

import tensorlite as tl


def torch_or_skip():
    return pytest.importorskip("torch")


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
