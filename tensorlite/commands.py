"""What the CLI's ``train``/``eval``/``predict`` do for the small tasks, callable from Python too."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

import tensorlite as tl
from tensorlite import optim, tasks
from tensorlite.data import Normalizer
from tensorlite.training import CHECKPOINT, Trainer

TASK_KIND = "mlp-task"


class UsageError(ValueError):
    """A problem with what the user asked for (shown without a traceback by the CLI)."""


def parse_hidden(spec: str) -> tuple[int, ...]:
    """``"3"`` -> (3,), ``"16,16"`` -> (16, 16), ``""``/``"none"`` -> () (no hidden layer)."""
    if spec.strip().lower() in ("", "none", "0"):
        return ()
    try:
        sizes = tuple(int(part) for part in spec.split(","))
    except ValueError:
        raise UsageError(f"--hidden: bad layer spec {spec!r}: expected sizes separated by commas, e.g. 16,16") from None
    if any(n <= 0 for n in sizes):
        raise UsageError(f"--hidden: layer sizes must be positive, got {spec!r}")
    return sizes


def train_task(name: str, *, hidden: str | None = None, activation: str | None = None, loss: str | None = None,
               optimizer: str | None = None, lr: float | None = None, epochs: int | None = None,
               batch_size: int | None = None, seed: int = 0, device: str | None = None,
               out: str | Path | None = None, resume: bool = False, patience: int | None = None,
               progress: bool = True) -> tuple[Trainer, dict]:
    """Train one of ``tasks.TASKS`` (defaults from the task); returns the trainer and test metrics."""
    task = tasks.get_task(name)
    loss = loss or task.loss
    task.check_loss(loss)
    optimizer = optimizer or task.optimizer
    if optimizer not in tasks.OPTIMIZERS:
        raise UsageError(f"--optimizer: unknown optimizer {optimizer!r}: expected one of {', '.join(tasks.OPTIMIZERS)}")
    lr = task.lr if lr is None else lr
    if not (lr > 0 and math.isfinite(lr)):
        raise UsageError(f"--lr: the learning rate must be positive, got {lr}")
    epochs = task.epochs if epochs is None else epochs
    batch_size = task.batch_size if batch_size is None else batch_size
    if epochs <= 0 or batch_size <= 0:
        raise UsageError(f"--epochs and --batch-size must be positive, got {epochs} and {batch_size}")
    sizes = parse_hidden(hidden) if hidden is not None else task.hidden
    out_dir = Path(out) if out is not None else Path("runs") / name
    if resume and not (out_dir / CHECKPOINT).exists():
        raise UsageError(f"--resume: no checkpoint to resume from at {out_dir / CHECKPOINT}")

    tl.manual_seed(seed)
    target = tl.device(device)
    config = task.model_config(sizes, activation or task.activation, loss)
    model = tasks.MLP(config).to(target)
    splits = task.splits(seed)
    normalizer = Normalizer.fit(splits["train"][0], task.normalize)
    datasets = {k: tasks.make_dataset(loss, normalizer(x), y, target) for k, (x, y) in splits.items()}
    if optimizer == "sgd":
        opt = optim.SGD(model.parameters(), lr=lr, momentum=task.momentum)
    else:
        opt = optim.Adam(model.parameters(), lr=lr)
    metadata = {"kind": TASK_KIND, "task": name, "loss": loss, "seed": seed, "model_config": config.to_dict(),
                "normalizer": normalizer.__dict__, "classes": list(task.classes) if task.classes else None}
    trainer = Trainer(model, tasks.loss_function(loss), opt, accuracy_fn=tasks.accuracy_function(task, loss),
                      batch_size=batch_size, seed=seed, out_dir=out_dir, metadata=metadata, patience=patience,
                      progress=progress)
    trainer.fit(datasets["train"], datasets["val"], epochs=epochs, resume=resume)
    return trainer, trainer.evaluate(datasets["test"])


def checkpoint_metadata(path: str | Path) -> tuple[Path, dict]:
    """The checkpoint file at ``path`` (the file or its run directory) and its metadata."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.exists():
        raise UsageError(f"no checkpoint at {path}")
    return path, tl.load_metadata(path)


def load_task_checkpoint(path: str | Path, device: str | None = None) -> tuple[tasks.MLP, dict]:
    """The model and metadata of a checkpoint written by ``train_task``, with a clear error otherwise."""
    path, metadata = checkpoint_metadata(path)
    if metadata.get("kind") != TASK_KIND:
        raise UsageError(f"{path} holds a {metadata.get('kind', 'unknown')!r} checkpoint, not one of the "
                         f"small tasks ({', '.join(tasks.TASKS)}) that this command evaluates")
    model = tasks.build_model(metadata)
    model.load_state_dict(tl.load(path)["model"])
    return model.to(tl.device(device)).eval(), metadata


def evaluate_checkpoint(path: str | Path, device: str | None = None) -> dict:
    """Loss, accuracy and (for classifiers) the confusion matrix on the task's test split."""
    model, meta = load_task_checkpoint(path, device)
    task, loss = tasks.get_task(meta["task"]), meta["loss"]
    x, y = task.splits(meta["seed"])["test"]
    normalizer = Normalizer(**meta["normalizer"])
    dataset = tasks.make_dataset(loss, normalizer(x), y, tl.device(device))
    trainer = Trainer(model, tasks.loss_function(loss), optim.SGD(model.parameters(), lr=1e-3),
                      accuracy_fn=tasks.accuracy_function(task, loss), batch_size=256, progress=False)
    result = {"task": meta["task"], "n": len(y), **trainer.evaluate(dataset)}
    if task.is_classifier:
        with tl.no_grad():
            predicted = tasks.predict_classes(loss, model(dataset.tensors[0])).numpy()
        result["classes"] = list(task.classes)
        result["confusion"] = confusion_matrix(y.astype(np.int64), predicted, len(task.classes))
    return result


def confusion_matrix(actual: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts (n_classes, n_classes): row = actual class, column = predicted class."""
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(counts, (actual, predicted), 1)
    return counts


def predict(path: str | Path, rows: np.ndarray, device: str | None = None) -> tuple[np.ndarray, dict]:
    """Model outputs for raw input ``rows`` (N, features), normalised as in training."""
    model, meta = load_task_checkpoint(path, device)
    normalizer = Normalizer(**meta["normalizer"])
    rows = np.atleast_2d(np.asarray(rows, dtype=np.float32))
    expected = meta["model_config"]["sizes"][0]
    if rows.shape[1] != expected:
        raise UsageError(f"predict: the {meta['task']} model takes {expected} inputs per row, got {rows.shape[1]}")
    with tl.no_grad():
        outputs = model(tl.tensor(normalizer(rows), device=tl.device(device)))
    return outputs.numpy(), meta
