"""Small synthetic data sets from the tutorials: logic gates, the addition task, circles.

Each returns host NumPy arrays ``(x, y)``: inputs float32 ``(n, 2)``; targets float32 ``(n, 1)``
for the regression-style tasks and int64 ``(n,)`` class labels for circles.
"""

from __future__ import annotations

import numpy as np

GATES = {
    "and": [0, 0, 0, 1],
    "or": [0, 1, 1, 1],
    "xor": [0, 1, 1, 0],
    "nand": [1, 1, 1, 0],
}


def logic_gate(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The four input pairs of a two-input gate and its truth table: x (4, 2), y (4, 1)."""
    key = name.lower()
    if key not in GATES:
        raise ValueError(f"logic_gate: unknown gate {name!r}: expected one of {', '.join(GATES)}")
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    return x, np.array(GATES[key], dtype=np.float32).reshape(4, 1)


def addition(n: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pairs drawn from [0, 0.5) and their sum (so the sum stays in [0, 1)): x (n, 2), y (n, 1)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 0.5, size=(n, 2)).astype(np.float32)
    return x, x.sum(axis=1, keepdims=True)


def circles(n: int = 400, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Points in [-1.5, 1.5]^2, label 1 inside the unit circle else 0, with Gaussian input noise."""
    rng = np.random.default_rng(seed)
    clean = rng.uniform(-1.5, 1.5, size=(n, 2))
    labels = (np.sqrt((clean**2).sum(axis=1)) < 1.0).astype(np.int64)
    x = clean + rng.normal(0.0, noise, size=clean.shape)
    return x.astype(np.float32), labels
