"""Metrics of classifiers and regressors: correct predictions per batch (for ``Trainer``), confusion matrices."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tensorlite.tensor import Tensor

# (outputs, targets) -> number of correct predictions in the batch (a 0-d tensor or a number)
AccuracyFn = Callable[[Tensor, Tensor], Any]


def argmax_accuracy(outputs: Tensor, targets: Tensor) -> Tensor:
    """Correct class predictions for (N, C) logits and (N,) class indices."""
    return (outputs.argmax(dim=1) == targets).sum()


def threshold_accuracy(threshold: float) -> AccuracyFn:
    """Correct binary predictions: output above ``threshold`` (0.5 for probabilities, 0 for logits)."""

    def accuracy(outputs: Tensor, targets: Tensor) -> Tensor:
        return ((outputs > threshold) == (targets.reshape(outputs.shape) > 0.5)).sum()

    return accuracy


def tolerance_accuracy(tolerance: float) -> AccuracyFn:
    """Regression outputs within ``tolerance`` of the target count as correct."""

    def accuracy(outputs: Tensor, targets: Tensor) -> Tensor:
        return ((outputs - targets.reshape(outputs.shape)).abs() <= tolerance).sum()

    return accuracy


def confusion_matrix(actual: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts (n_classes, n_classes) from (N,) class indices: row = actual class, column = predicted class."""
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(counts, (actual, predicted), 1)
    return counts
