"""``Muon``: momentum orthogonalised by Newton-Schulz, for 2-D weights, as ``torch.optim.Muon``.

Keller Jordan's optimizer for the matrices of a network's hidden layers
(https://kellerjordan.github.io/posts/muon/): the (Nesterov) momentum of the gradient is replaced by
the nearest semi-orthogonal matrix, approximately, in a few Newton-Schulz steps, so every direction of
the update moves the weights by about the same amount. Embeddings, the output head, biases and norm gains
belong to another optimizer (AdamW): ``CombinedOptimizer`` steps the two as one.
"""

from __future__ import annotations

import math
from typing import Any

from tensorlite.creation import zeros_like
from tensorlite.optim.optimizer import Optimizer, ParamsT, lerp_
from tensorlite.tensor import Tensor

NS_COEFFICIENTS = (3.4445, -4.775, 2.0315)  # Keller Jordan's quintic: the steepest slope at 0 that still converges
ADJUST_LR_FNS = (None, "original", "match_rms_adamw")
MAX_NS_STEPS = 99  # PyTorch refuses 100 and more


def zeropower_via_newton_schulz(xp: Any, g: Any, coefficients: tuple[float, float, float], steps: int,
                                eps: float) -> Any:
    """An approximately semi-orthogonal matrix ``U S' V^T`` (S' between about 0.5 and 1.5) from ``g`` (m, n)
    ``= U S V^T``: the quintic ``X <- a X + (b A + c A^2) X`` with ``A = X X^T``, ``steps`` times, from
    ``X = g / max(||g||_F, eps)``, on the wide orientation (k, l), k <= l. In float32 (float64 for a float64
    ``g``); a new (m, n) array, computed on ``g``'s device with no host read. The same polynomial runs on the
    (k, k) Gram matrix alone (``newton_schulz_on_gram``) where that costs fewer operations: l > 1.5 k."""
    tall = g.shape[0] > g.shape[1]
    dtype = xp.promote_types(g.dtype, xp.float32)
    x = xp.array(g.T if tall else g, dtype=dtype, order="C")  # a copy (k, l), k <= l
    x /= xp.maximum(xp.linalg.norm(x), eps)  # the spectral norm is now at most 1
    rows, cols = x.shape
    on_gram = steps > 1 and 2 * cols > 3 * rows
    out = (newton_schulz_on_gram if on_gram else newton_schulz_direct)(xp, x, coefficients, steps)
    return out.T if tall else out


def newton_schulz_direct(xp: Any, x: Any, coefficients: tuple[float, float, float], steps: int) -> Any:
    """``steps`` quintic steps on x (k, l), k <= l, as written: k^3 + 2 k^2 l multiply-adds a step. Overwrites x."""
    a, b, c = coefficients
    k = x.shape[0]
    gram, poly, next_x = xp.empty((k, k), x.dtype), xp.empty((k, k), x.dtype), xp.empty_like(x)
    for _ in range(steps):
        xp.matmul(x, x.T, out=gram)  # A = X X^T (k, k)
        xp.matmul(gram, gram, out=poly)
        poly *= c
        gram *= b
        poly += gram  # b A + c A^2
        xp.matmul(poly, x, out=next_x)
        x *= a
        next_x += x  # a X + (b A + c A^2) X
        x, next_x = next_x, x
    return x


def newton_schulz_on_gram(xp: Any, x: Any, coefficients: tuple[float, float, float], steps: int) -> Any:
    """The same ``steps`` quintic steps on x (k, l), computed on its Gram matrix A = X X^T (k, k).

    A step is ``X <- Q X`` with ``Q = a I + b A + c A^2``, a polynomial in A, so Q is symmetric and commutes
    with A: the next Gram matrix is ``Q A Q``, and the result is ``(Q_s ... Q_1) X``. That is 4 k^3
    multiply-adds a step plus two k^2 l products in all, against k^3 + 2 k^2 l a step: fewer for l > 1.5 k (a
    third fewer for the 1:4 matrices of a transformer's MLP at 3 steps). Equal to the direct steps in exact
    arithmetic; in float32 within its rounding of them (tests/test_muon.py)."""
    a, b, c = coefficients
    k = x.shape[0]
    gram, product = x @ x.T, None
    for step in range(steps):
        poly = gram @ gram
        poly *= c
        poly += b * gram
        diagonal = poly.reshape(-1)[::k + 1]  # a view of Q's diagonal
        diagonal += a  # Q = a I + b A + c A^2
        product = poly if product is None else poly @ product
        if step + 1 < steps:
            gram = poly @ (gram @ poly)
    return product @ x


def adjusted_lr(lr: float, adjust_lr_fn: str | None, shape: tuple[int, ...]) -> float:
    """The rate of a (rows, cols) matrix's update: ``lr * sqrt(max(1, rows / cols))`` (``None`` or
    ``"original"``, Keller Jordan's) or ``lr * 0.2 * sqrt(max(rows, cols))`` (``"match_rms_adamw"``, Moonshot's,
    whose update has AdamW's RMS so that AdamW's rate and decay carry over)."""
    rows, cols = shape[:2]
    if adjust_lr_fn == "match_rms_adamw":
        return lr * 0.2 * math.sqrt(max(rows, cols))
    return lr * math.sqrt(max(1, rows / cols))


class Muon(Optimizer):
    """Per 2-D parameter ``p`` (rows, cols) with gradient ``g``, PyTorch's update::

        buf = momentum * buf + (1 - momentum) * g                       (buf starts at 0)
        u = (1 - momentum) * g + momentum * buf if nesterov else buf
        O = NS(u)                    ``ns_steps`` Newton-Schulz steps (``zeropower_via_newton_schulz``)
        p *= 1 - lr * weight_decay                                      (decoupled weight decay)
        p -= adjusted_lr(lr, adjust_lr_fn, (rows, cols)) * O

    Same signature, defaults, state (``momentum_buffer``), state-dict layout and errors as
    ``torch.optim.Muon`` (PyTorch 2.13), so its state dicts load here and ours there.

    One difference, on purpose: PyTorch runs Newton-Schulz in bfloat16 (fast on GPUs with bfloat16 matrix
    units, slow on most CPUs); tensorlite runs it in float32 (float64 for float64 parameters), which is
    what fast CPU BLAS computes and what Keller Jordan's formulation specifies where bfloat16 is slow. The
    orthogonalised update then differs from PyTorch's by bfloat16's rounding (8 significant bits), about
    1% of its size per element; against PyTorch's algorithm run in float32 it agrees to float32 rounding.
    (tests/test_muon.py checks both.)

    Args:
        params: 2-D tensors (or parameter groups of them); anything else is refused.
        lr: learning rate (before ``adjust_lr_fn``).
        weight_decay: decoupled weight decay, ``p *= 1 - lr * weight_decay`` each step.
        momentum: the momentum buffer's decay.
        nesterov: orthogonalise the Nesterov look-ahead instead of the buffer.
        ns_coefficients: (a, b, c) of the Newton-Schulz quintic.
        eps: the smallest norm an update is divided by (a zero gradient stays zero).
        ns_steps: Newton-Schulz steps (fewer than 100).
        adjust_lr_fn: ``None``/``"original"`` or ``"match_rms_adamw"``; see ``adjusted_lr``.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3, weight_decay: float = 0.1, momentum: float = 0.95,
                 nesterov: bool = True, ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
                 eps: float = 1e-7, ns_steps: int = 5, adjust_lr_fn: str | None = None) -> None:
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
                        ns_coefficients=ns_coefficients, eps=eps, ns_steps=ns_steps, adjust_lr_fn=adjust_lr_fn)
        super().__init__(params, defaults)

    def _validate(self, group: dict[str, Any]) -> None:
        self._check_nonnegative(group, "lr", "momentum", "weight_decay", "eps")
        self._check(group["adjust_lr_fn"] in ADJUST_LR_FNS, "adjust_lr_fn", group["adjust_lr_fn"],
                    "None, 'original' or 'match_rms_adamw'")
        steps = group["ns_steps"]
        self._check(isinstance(steps, int) and 0 <= steps <= MAX_NS_STEPS, "ns_steps", steps,
                    f"an integer from 0 to {MAX_NS_STEPS}")
        coefficients = group["ns_coefficients"]
        self._check(isinstance(coefficients, (tuple, list)) and len(coefficients) == 3, "ns_coefficients",
                    coefficients, "three numbers (a, b, c)")
        for p in group["params"]:
            if p.ndim != 2:
                raise ValueError(f"Muon: only supports 2-D parameters (matrices), but a parameter has shape "
                                 f"{p.shape}; optimize biases, norm gains and embeddings with another optimizer "
                                 "(AdamW), e.g. through tl.optim.CombinedOptimizer")

    def _update(self, p: Tensor, group: dict[str, Any]) -> None:
        xp = p._device.backend.xp
        lr, momentum = group["lr"], group["momentum"]
        state = self.state[p]
        if not state:
            state["momentum_buffer"] = zeros_like(p)
        g, buf = p.grad._data, state["momentum_buffer"]._data
        scratch = xp.empty_like(buf)
        lerp_(xp, buf, g, 1 - momentum, scratch)
        if group["nesterov"]:  # g.lerp(buf, momentum), rounded as PyTorch's lerp rounds
            xp.subtract(buf, g, out=scratch)
            if momentum < 0.5:
                scratch *= momentum
                scratch += g
            else:
                scratch *= momentum - 1
                scratch += buf
            direction = scratch
        else:
            direction = buf
        update = zeropower_via_newton_schulz(xp, direction, tuple(group["ns_coefficients"]), group["ns_steps"],
                                             group["eps"])
        if group["weight_decay"] != 0:
            p._data *= 1 - lr * group["weight_decay"]
        update *= adjusted_lr(lr, group["adjust_lr_fn"], p.shape)
        p._data -= update
