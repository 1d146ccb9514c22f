"""Drawing categories from probabilities: ``multinomial``.

With replacement, each draw inverts the row's cumulative distribution (one ``searchsorted`` over all
rows at once: row r's cumulative probabilities, scaled to [0, 1], are offset by r). Without
replacement, each category races an exponential clock (``p / E``, ``E ~ Exp(1)``) and the ``k``
fastest win in order: the same distribution as drawing one at a time and removing what was drawn,
as PyTorch does. Uniforms come from the device's stream (``tl.manual_seed``) or, given a
``generator``, from the host.
"""

from __future__ import annotations

from typing import Any

import numpy

from tensorlite.autograd import Function
from tensorlite.ops.sorting import topk_indices
from tensorlite.random import GeneratorLike, host_generator
from tensorlite.tensor import Tensor


class Multinomial(Function):
    differentiable = False

    def forward(self, probs, num_samples, replacement, generator):
        xp = self.xp
        p = probs.reshape(-1, probs.shape[-1]).astype(numpy.float64)
        rows, n = p.shape
        self.check(p, num_samples, replacement)
        shape = (rows, num_samples)
        u = self.uniform(shape if replacement else p.shape, generator)  # a draw per sample, or per category
        if replacement:
            offsets = xp.arange(rows, dtype=numpy.float64)[:, None]
            cdf = xp.cumsum(p, axis=1)
            keys = (cdf / cdf[:, -1:] + offsets).reshape(-1)  # row r spans [r, r + 1], non-decreasing
            targets = xp.minimum(u + offsets, xp.nextafter(offsets + 1, offsets))  # rounding stays in row r
            found = xp.searchsorted(keys, targets.reshape(-1), side="right").reshape(shape)
            out = found - xp.arange(rows)[:, None] * n
        else:
            out = topk_indices(xp, p / -xp.log(u), num_samples, 1, True)
        return out.astype(numpy.int64).reshape(probs.shape[:-1] + (num_samples,))

    def uniform(self, shape: tuple[int, int], generator: numpy.random.Generator | None) -> Any:
        """U[0, 1) float64 samples on the device: from its own stream, or from ``generator`` on the host."""
        if generator is None:
            return self.backend.uniform(shape, numpy.float64)
        return self.backend.from_host(generator.random(shape))

    def check(self, p: Any, num_samples: int, replacement: bool) -> None:
        """One read to the host for every row's validity (as PyTorch checks on the CPU)."""
        xp = self.xp
        flags = [(~xp.isfinite(p) | (p < 0)).any(), (p.sum(axis=1) <= 0).any()]
        if not replacement:
            flags.append((xp.count_nonzero(p, axis=1) < num_samples).any())
        bad_values, zero_rows, *too_few = self.backend.to_host(xp.stack(flags)).tolist()
        if bad_values:
            raise ValueError("multinomial: probability tensor contains either inf, nan or element < 0")
        if zero_rows:
            raise ValueError("multinomial: invalid distribution: a row's probabilities sum to 0")
        if too_few and too_few[0]:
            raise ValueError(f"multinomial: cannot draw num_samples={num_samples} without replacement from a row with "
                             "fewer non-zero probabilities (PyTorch would return zero-probability categories)")


def multinomial(input: Tensor, num_samples: int, replacement: bool = False, *,
                generator: GeneratorLike = None) -> Tensor:
    """``num_samples`` category indices per row of ``input`` (probabilities or any non-negative
    weights, shape (C,) or (N, C)), each category drawn with probability proportional to its weight.
    Without ``replacement`` a row never repeats a category. Returns int64 of shape (num_samples,) or
    (N, num_samples), on ``input``'s device. ``generator``: an int seed or a NumPy generator (drawn
    on the host), ``None``: the device's stream that ``tl.manual_seed`` seeds."""
    if not isinstance(input, Tensor):
        raise TypeError(f"multinomial: expected a tensor of probabilities, got {type(input).__name__}")
    if input.ndim not in (1, 2):
        raise ValueError(f"multinomial: expected probabilities of shape (C,) or (N, C), got shape {input.shape}")
    if input.dtype.kind != "f":
        raise TypeError(f"multinomial: expected a floating-point tensor of probabilities, got {input.dtype}; "
                        "cast it with .float()")
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples <= 0:
        raise ValueError(f"multinomial: num_samples must be a positive int, got {num_samples!r}")
    categories = input.shape[-1]
    if categories == 0:
        raise ValueError(f"multinomial: there are no categories to draw from (shape {input.shape})")
    if not replacement and num_samples > categories:
        raise ValueError(f"multinomial: cannot draw num_samples={num_samples} > {categories} categories without "
                         "replacement")
    rng = None if generator is None else host_generator("multinomial", generator)
    return Multinomial.apply(input, num_samples, bool(replacement), rng)


__all__ = ["multinomial"]
