"""The small supervised tasks (logic gates, addition, circles, Iris): what ``tensorlite train``, ``eval``,
``predict`` and ``plot boundary`` do for them, callable from Python too.

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
from pathlib import Path

import numpy as np

import tensorlite as tl
from tensorlite import datasets, nn, optim
from tensorlite.cli import options
from tensorlite.cli.options import UsageError
from tensorlite.datasets import Normalizer
from tensorlite.models import MLP, MLPConfig
from tensorlite.models.mlp import ACTIVATIONS
from tensorlite.tensor import Tensor
from tensorlite.training import Trainer, metrics, run_dir
from tensorlite.utils.data import TensorDataset

TASK_KIND = "mlp-task"


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
        if self.name in datasets.GATES:
            x, y = datasets.logic_gate(self.name)
            return {"train": (x, y[:, 0].astype(np.int64)), "val": (x, y[:, 0].astype(np.int64)),
                    "test": (x, y[:, 0].astype(np.int64))}
        if self.name == "addition":
            return {"train": datasets.addition(1000, seed), "val": datasets.addition(200, seed + 1),
                    "test": datasets.addition(200, seed + 2)}
        if self.name == "circles":
            return {"train": datasets.circles(400, seed=seed), "val": datasets.circles(200, seed=seed + 1),
                    "test": datasets.circles(200, seed=seed + 2)}
        if self.name == "iris":
            x, y = datasets.load_iris()
            train, test = datasets.stratified_split(y, 30, seed)
            return {"train": (x[train], y[train]), "val": (x[test], y[test]), "test": (x[test], y[test])}
        raise ValueError(f"unknown task {self.name!r}")

    def model_config(self, hidden: tuple[int, ...], activation: str, loss: str) -> MLPConfig:
        n_outputs = len(self.classes) if loss == "ce" and self.classes else 1
        output_activation = "sigmoid" if loss == "mse" and self.is_classifier else None
        return MLPConfig([self.n_inputs, *hidden, n_outputs], activation, output_activation)

    def check_loss(self, loss: str) -> None:
        if loss not in LOSSES:
            raise UsageError(f"--loss: unknown loss {loss!r}: expected one of {', '.join(LOSSES)}")
        if not self.is_classifier and loss != "mse":
            raise UsageError(f"task {self.name!r} is a regression task: use --loss mse, not {loss}")
        if loss == "bce" and self.classes is not None and len(self.classes) != 2:
            raise UsageError(f"task {self.name!r} has {len(self.classes)} classes: use --loss ce, not bce")


TASKS = {
    **{gate: Task(gate, 2, ("0", "1"), (3,), "sigmoid", "mse", "sgd", 2.0, 1000, 4, momentum=0.9)
       for gate in datasets.GATES},
    "addition": Task("addition", 2, None, (), "sigmoid", "mse", "sgd", 0.5, 200, 32),
    "circles": Task("circles", 2, ("outside", "inside"), (16, 16), "tanh", "bce", "adam", 0.01, 200, 32),
    "iris": Task("iris", 4, datasets.SPECIES, (32,), "relu", "ce", "adam", 0.01, 100, 16, normalize="standard"),
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise UsageError(f"unknown task {name!r}: expected one of {', '.join(TASKS)}")
    return TASKS[name]


def targets_for(loss: str, y: np.ndarray) -> np.ndarray:
    """Targets in the form each loss wants: class indices for ``ce``, float columns otherwise."""
    return y.astype(np.int64) if loss == "ce" else y.astype(np.float32).reshape(len(y), -1)


def make_dataset(loss: str, x: np.ndarray, y: np.ndarray, device: tl.Device) -> TensorDataset:
    return TensorDataset(tl.tensor(x, device=device), tl.tensor(targets_for(loss, y), device=device))


def loss_function(loss: str) -> nn.Module:
    return {"mse": nn.MSELoss, "bce": nn.BCEWithLogitsLoss, "ce": nn.CrossEntropyLoss}[loss]()


def accuracy_function(task: Task, loss: str) -> metrics.AccuracyFn:
    if not task.is_classifier:
        return metrics.tolerance_accuracy(0.05)
    return {"mse": metrics.threshold_accuracy(0.5), "bce": metrics.threshold_accuracy(0.0),
            "ce": metrics.argmax_accuracy}[loss]


def predict_classes(loss: str, outputs: Tensor) -> Tensor:
    """Class indices (N,) from a classifier's outputs under ``loss``."""
    if loss == "ce":
        return outputs.argmax(dim=1)
    threshold = 0.5 if loss == "mse" else 0.0
    return (outputs.reshape(-1) > threshold).long()


def output_score(loss: str, outputs: Tensor) -> Tensor:
    """One number (N,) per row: P(the last class) of a classifier under ``loss``, a regressor's output."""
    if loss == "ce":
        return nn.functional.softmax(outputs, dim=1)[:, -1]
    return outputs[:, 0].sigmoid() if loss == "bce" else outputs[:, 0]


def train_task(name: str, *, hidden: str | None = None, activation: str | None = None, loss: str | None = None,
               optimizer: str | None = None, lr: float | None = None, epochs: int | None = None,
               batch_size: int | None = None, seed: int = 0, device: str | None = None,
               out: str | Path | None = None, resume: bool = False, overwrite: bool = False,
               patience: int | None = None, progress: bool = True) -> tuple[Trainer, dict]:
    """Train one of ``TASKS`` (defaults from the task) in ``out`` (``overwrite``: even if it holds another kind
    of run); returns the trainer and test metrics."""
    task = get_task(name)
    loss = loss or task.loss
    task.check_loss(loss)
    chosen = {"task": name, "seed": seed, "optimizer": optimizer, "lr": lr}  # as given, checked on --resume
    optimizer = optimizer or task.optimizer
    options.check_choice("--optimizer", "optimizer", optimizer, OPTIMIZERS)
    lr = task.lr if lr is None else lr
    options.check_positive("--lr", lr)
    epochs = task.epochs if epochs is None else epochs
    batch_size = task.batch_size if batch_size is None else batch_size
    options.check_range("epochs", epochs)
    options.check_range("batch_size", batch_size)
    options.check_range("seed", seed)
    if patience is not None:
        options.check_range("patience", patience)
    activation = activation or task.activation
    options.check_choice("--activation", "activation", activation, ACTIVATIONS)
    sizes = options.parse_hidden(hidden) if hidden is not None else task.hidden
    config = task.model_config(sizes, activation, loss)
    options.check_model_size(config, "--hidden")
    target = options.parse_device(device)
    run = options.out_dir(out, Path("runs") / name)
    saved = options.check_out_dir(run, TASK_KIND, resume, overwrite)
    if saved is not None:
        options.check_same_model(saved, config, run)
        options.check_resumed(saved, chosen, run)
        optimizer, lr = saved.get("optimizer", optimizer), saved.get("lr", lr)  # tensorlite 0.1.0's runs record neither
    options.make_out_dir(run)

    tl.manual_seed(seed)
    model = MLP(config).to(target)
    splits = task.splits(seed)
    normalizer = Normalizer.fit(splits["train"][0], task.normalize)
    data_sets = {k: make_dataset(loss, normalizer(x), y, target) for k, (x, y) in splits.items()}
    if optimizer == "sgd":
        opt = optim.SGD(model.parameters(), lr=lr, momentum=task.momentum)
    else:
        opt = optim.Adam(model.parameters(), lr=lr)
    metadata = {"kind": TASK_KIND, "task": name, "loss": loss, "seed": seed, "optimizer": optimizer, "lr": lr,
                "model_config": config.to_dict(),
                "normalizer": normalizer.__dict__, "classes": list(task.classes) if task.classes else None}
    trainer = Trainer(model, loss_function(loss), opt, accuracy_fn=accuracy_function(task, loss),
                      batch_size=batch_size, seed=seed, out_dir=run, metadata=metadata, patience=patience,
                      progress=progress)
    trainer.fit(data_sets["train"], data_sets["val"], epochs=epochs, resume=resume, overwrite=overwrite)
    return trainer, trainer.evaluate(data_sets["test"])


def load_task_checkpoint(path: str | Path, device: str | None = None) -> tuple[MLP, dict]:
    """The model (in eval mode) and metadata of a checkpoint written by ``train_task``, with a clear error otherwise."""
    return run_dir.load_model(path, options.parse_device(device), kinds=[TASK_KIND])


def evaluate_checkpoint(path: str | Path, device: str | None = None) -> dict:
    """Loss, accuracy and (for classifiers) the confusion matrix on the task's test split."""
    model, meta = load_task_checkpoint(path, device)
    task, loss = get_task(meta["task"]), meta["loss"]
    x, y = task.splits(meta["seed"])["test"]
    normalizer = Normalizer(**meta["normalizer"])
    dataset = make_dataset(loss, normalizer(x), y, next(model.parameters()).device)
    trainer = Trainer(model, loss_function(loss), optim.SGD(model.parameters(), lr=1e-3),
                      accuracy_fn=accuracy_function(task, loss), batch_size=256, progress=False)
    result = {"task": meta["task"], "n": len(y), **trainer.evaluate(dataset)}
    if task.is_classifier:
        with tl.no_grad():
            predicted = predict_classes(loss, model(dataset.tensors[0])).numpy()
        result["classes"] = list(task.classes)
        result["confusion"] = metrics.confusion_matrix(y.astype(np.int64), predicted, len(task.classes))
    return result


def predict(path: str | Path, rows: np.ndarray, device: str | None = None) -> tuple[np.ndarray, dict]:
    """Model outputs for raw input ``rows`` (N, features), normalised as in training."""
    model, meta = load_task_checkpoint(path, device)
    normalizer = Normalizer(**meta["normalizer"])
    rows = np.atleast_2d(np.asarray(rows, dtype=np.float32))
    expected = meta["model_config"]["sizes"][0]
    if rows.shape[1] != expected:
        raise UsageError(f"predict: the {meta['task']} model takes {expected} inputs per row, got {rows.shape[1]}")
    with tl.no_grad():
        outputs = model(tl.tensor(normalizer(rows), device=next(model.parameters()).device))
    return outputs.numpy(), meta
