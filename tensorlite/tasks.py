"""The small supervised tasks the CLI trains: logic gates, addition, circles, Iris.

A ``Task`` knows its data (train / validation / test splits as host arrays), its default
network and training settings, and how to turn outputs into predictions for each loss:

| loss  | outputs                   | targets               | prediction                |
|-------|---------------------------|-----------------------|---------------------------|
| ``mse`` | 1 value (sigmoid for classes) | float (N, 1)      | > 0.5 (or the value itself) |
| ``bce`` | 1 logit                   | float (N, 1)          | logit > 0                 |
| ``ce``  | C logits                  | class index (N,)      | argmax                    |
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import tensorlite as tl
from tensorlite import data, nn, training
from tensorlite.models import MLP, MLPConfig
from tensorlite.tensor import Tensor
from tensorlite.utils.data import TensorDataset

LOSSES = ("mse", "bce", "ce")
OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class Task:
    """One CLI task and the defaults that make it converge."""

    name: str
    n_inputs: int
    classes: tuple[str, ...] | None  # None: a regression task
    hidden: tuple[int, ...]
    activation: str
    loss: str
    optimizer: str
    lr: float
    epochs: int
    batch_size: int
    normalize: str = "none"
    momentum: float = 0.0

    @property
    def is_classifier(self) -> bool:
        return self.classes is not None

    def splits(self, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{"train": (x, y), "val": ..., "test": ...}`` with raw (unnormalised) inputs."""
        if self.name in data.GATES:
            x, y = data.logic_gate(self.name)
            return {"train": (x, y[:, 0].astype(np.int64)), "val": (x, y[:, 0].astype(np.int64)),
                    "test": (x, y[:, 0].astype(np.int64))}
        if self.name == "addition":
            return {"train": data.addition(1000, seed), "val": data.addition(200, seed + 1),
                    "test": data.addition(200, seed + 2)}
        if self.name == "circles":
            return {"train": data.circles(400, seed=seed), "val": data.circles(200, seed=seed + 1),
                    "test": data.circles(200, seed=seed + 2)}
        if self.name == "iris":
            x, y = data.load_iris()
            train, test = data.stratified_split(y, 30, seed)
            return {"train": (x[train], y[train]), "val": (x[test], y[test]), "test": (x[test], y[test])}
        raise ValueError(f"unknown task {self.name!r}")

    def model_config(self, hidden: tuple[int, ...], activation: str, loss: str) -> MLPConfig:
        n_outputs = len(self.classes) if loss == "ce" and self.classes else 1
        output_activation = "sigmoid" if loss == "mse" and self.is_classifier else None
        return MLPConfig([self.n_inputs, *hidden, n_outputs], activation, output_activation)

    def check_loss(self, loss: str) -> None:
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}: expected one of {', '.join(LOSSES)}")
        if not self.is_classifier and loss != "mse":
            raise ValueError(f"task {self.name!r} is a regression task: use --loss mse, not {loss}")
        if loss == "bce" and self.classes is not None and len(self.classes) != 2:
            raise ValueError(f"task {self.name!r} has {len(self.classes)} classes: use --loss ce, not bce")


TASKS = {
    **{gate: Task(gate, 2, ("0", "1"), (3,), "sigmoid", "mse", "sgd", 2.0, 1000, 4, momentum=0.9)
       for gate in data.GATES},
    "addition": Task("addition", 2, None, (), "sigmoid", "mse", "sgd", 0.5, 200, 32),
    "circles": Task("circles", 2, ("outside", "inside"), (16, 16), "tanh", "bce", "adam", 0.01, 200, 32),
    "iris": Task("iris", 4, data.SPECIES, (32,), "relu", "ce", "adam", 0.01, 100, 16, normalize="standard"),
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}: expected one of {', '.join(TASKS)}")
    return TASKS[name]


def targets_for(loss: str, y: np.ndarray) -> np.ndarray:
    """Targets in the form each loss wants: class indices for ``ce``, float columns otherwise."""
    return y.astype(np.int64) if loss == "ce" else y.astype(np.float32).reshape(len(y), -1)


def make_dataset(loss: str, x: np.ndarray, y: np.ndarray, device: tl.Device) -> TensorDataset:
    return TensorDataset(tl.tensor(x, device=device), tl.tensor(targets_for(loss, y), device=device))


def loss_function(loss: str) -> nn.Module:
    return {"mse": nn.MSELoss, "bce": nn.BCEWithLogitsLoss, "ce": nn.CrossEntropyLoss}[loss]()


def accuracy_function(task: Task, loss: str) -> training.AccuracyFn:
    if not task.is_classifier:
        return training.tolerance_accuracy(0.05)
    return {"mse": training.threshold_accuracy(0.5), "bce": training.threshold_accuracy(0.0),
            "ce": training.argmax_accuracy}[loss]


def predict_classes(loss: str, outputs: Tensor) -> Tensor:
    """Class indices (N,) from a classifier's outputs under ``loss``."""
    if loss == "ce":
        return outputs.argmax(dim=1)
    threshold = 0.5 if loss == "mse" else 0.0
    return (outputs.reshape(-1) > threshold).long()


def build_model(metadata: dict) -> MLP:
    """The network a checkpoint's metadata describes (weights not loaded)."""
    return MLP(MLPConfig(**metadata["model_config"]))
