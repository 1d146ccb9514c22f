"""Preparing small tabular data: normalisation fitted on the training split, stratified hold-out."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Normalizer:
    """Per-feature scaling fitted on training data: ``minmax`` to [0, 1] or ``standard`` to mean 0, std 1.

    Kept (as ``shift``/``scale``) in checkpoints so predictions scale new inputs the same way.
    """

    method: str
    shift: list[float]
    scale: list[float]

    @classmethod
    def fit(cls, x: np.ndarray, method: str = "standard") -> Normalizer:
        if method == "minmax":
            shift, scale = x.min(axis=0), x.max(axis=0) - x.min(axis=0)
        elif method == "standard":
            shift, scale = x.mean(axis=0), x.std(axis=0)
        elif method == "none":
            shift, scale = np.zeros(x.shape[1]), np.ones(x.shape[1])
        else:
            raise ValueError(f"normalize: unknown method {method!r}: expected 'minmax', 'standard' or 'none'")
        scale = np.where(scale > 0, scale, 1.0)  # a constant feature is left unscaled
        return cls(method, [float(v) for v in shift], [float(v) for v in scale])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.shape[-1] != len(self.shift):
            raise ValueError(f"normalize: expected {len(self.shift)} features, got shape {x.shape}")
        return ((x - np.float32(self.shift)) / np.float32(self.scale)).astype(np.float32)


def stratified_split(labels: np.ndarray, test_size: int | float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test) with each class's share of the test set as in the whole set."""
    labels = np.asarray(labels)
    n = len(labels)
    n_test = int(round(test_size * n)) if isinstance(test_size, float) else int(test_size)
    if not 0 < n_test < n:
        raise ValueError(f"stratified_split: test size {test_size} must leave both splits non-empty (n={n})")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quotas = np.floor(counts * n_test / n).astype(int)
    remainder = counts * n_test / n - quotas
    for i in np.argsort(-remainder)[: n_test - quotas.sum()]:  # largest remainders get the leftovers
        quotas[i] += 1
    test = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:q] for c, q in zip(classes, quotas)])
    train = np.setdiff1d(np.arange(n), test)
    return rng.permutation(train), np.sort(test)
