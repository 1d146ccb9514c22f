"""One training loop for every model: batches, metrics, evaluation, JSONL logs, checkpoints.

``Trainer.fit`` runs epochs over a dataset with a progress bar (loss, accuracy, throughput),
evaluates on a validation set after each epoch, appends one JSON line per epoch to
``<out_dir>/log.jsonl``, and keeps ``<out_dir>/checkpoint.safetensors`` (model, optimizer,
scheduler, epoch), written at the end, every ``checkpoint_seconds``, and on Ctrl-C, which rolls
back to the last completed epoch, saves, and returns cleanly. Each epoch's shuffle order and
random state are derived from ``(seed, epoch)``, so a run resumed from epoch k ends bit for bit
where an uninterrupted run does. The scheduler steps once per epoch, or once per optimizer step with
``scheduler_step="batch"`` (for OneCycleLR and warmup schedules).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import tensorlite as tl
from tensorlite.nn import Module
from tensorlite.tensor import Tensor
from tensorlite.utils.data import DataLoader, Dataset

CHECKPOINT = "checkpoint.safetensors"
LOG = "log.jsonl"

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


def _copy_tree(value: Any) -> Any:
    """A snapshot of a state tree: tensors cloned on their device, dicts/lists/tuples rebuilt."""
    if isinstance(value, Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {key: _copy_tree(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_copy_tree(v) for v in value)
    return value


@dataclass
class TrainState:
    """What a checkpoint restores besides the weights: the epoch reached and the per-epoch history."""

    epoch: int = 0
    history: list[dict] = field(default_factory=list)
    best_val_loss: float = math.inf
    epochs_without_improvement: int = 0


class Trainer:
    """Trains ``model`` with ``loss_fn`` and ``optimizer``; see the module docstring."""

    def __init__(self, model: Module, loss_fn: Callable[[Tensor, Tensor], Tensor], optimizer: Any, *,
                 accuracy_fn: AccuracyFn | None = None, scheduler: Any = None, batch_size: int = 32,
                 seed: int = 0, out_dir: str | Path | None = None, metadata: dict | None = None,
                 patience: int | None = None, progress: bool = True, checkpoint_seconds: float = 60.0,
                 scheduler_step: str = "epoch") -> None:
        if batch_size <= 0:
            raise ValueError(f"Trainer: batch_size must be positive, got {batch_size}")
        if scheduler_step not in ("epoch", "batch"):
            raise ValueError(f"Trainer: scheduler_step must be 'epoch' or 'batch', got {scheduler_step!r}")
        self.model, self.loss_fn, self.optimizer, self.scheduler = model, loss_fn, optimizer, scheduler
        self.accuracy_fn, self.batch_size, self.seed = accuracy_fn, batch_size, seed
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.metadata = metadata or {}
        self.patience, self.progress, self.checkpoint_seconds = patience, progress, checkpoint_seconds
        self.scheduler_step = scheduler_step
        self.state = TrainState()

    # -- one pass ----------------------------------------------------------------------------------
    def _loader(self, dataset: Dataset, epoch: int | None) -> DataLoader:
        if epoch is None:
            return DataLoader(dataset, batch_size=self.batch_size)
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=True,
                          generator=np.random.default_rng([self.seed, epoch]))

    def _run(self, dataset: Dataset, epoch: int | None, on_batch: Callable[[int], None] | None = None) -> dict:
        """One pass: training (with ``epoch``) or evaluation (without); returns mean loss and accuracy."""
        training = epoch is not None
        self.model.train(training)
        total_loss = correct = None
        seen = 0
        with tl.enable_grad() if training else tl.no_grad():
            for inputs, targets in self._loader(dataset, epoch):
                outputs = self.model(inputs)
                loss = self.loss_fn(outputs, targets)
                if training:
                    self.optimizer.zero_grad()
                    loss.backward()
                    self.optimizer.step()
                    if self.scheduler is not None and self.scheduler_step == "batch":
                        self.scheduler.step()
                n = len(inputs)
                batch_loss = loss.detach() * n
                total_loss = batch_loss if total_loss is None else total_loss + batch_loss
                if self.accuracy_fn is not None:
                    hits = self.accuracy_fn(outputs.detach(), targets)
                    correct = hits if correct is None else correct + hits
                seen += n
                if on_batch is not None:
                    on_batch(n)
        result = {"loss": float(total_loss) / seen if seen else math.nan}
        if correct is not None:
            result["accuracy"] = float(correct) / seen
        return result

    def evaluate(self, dataset: Dataset) -> dict:
        """Mean loss (and accuracy) over ``dataset`` in eval mode, without gradients."""
        return self._run(dataset, None)

    # -- the loop ----------------------------------------------------------------------------------
    def fit(self, train_set: Dataset, val_set: Dataset | None = None, epochs: int = 10,
            resume: bool = False) -> list[dict]:
        """Train until ``epochs`` (counting epochs done before a resume); returns the history."""
        if resume:
            self.load_checkpoint(self._path(CHECKPOINT))
        log = self._open_log()
        from tensorlite.progress import TrainingProgress

        start_epoch, last_save = self.state.epoch, time.monotonic()
        completed = _copy_tree(self._weights())  # as of the last completed epoch: what Ctrl-C saves
        with TrainingProgress(epochs, start_epoch, len(train_set), enabled=self.progress) as bar, log:
            try:
                for epoch in range(start_epoch + 1, epochs + 1):
                    record = self._epoch(epoch, train_set, val_set, bar)
                    completed = _copy_tree(self._weights())
                    log.write(json.dumps(record) + "\n")
                    bar.epoch_done(record)
                    if time.monotonic() - last_save > self.checkpoint_seconds:
                        self.save_checkpoint()
                        last_save = time.monotonic()
                    if self._should_stop():
                        bar.note(f"early stopping: no val_loss improvement in {self.patience} epochs")
                        break
            except KeyboardInterrupt:
                self._load_weights(completed)  # drop the interrupted epoch's partial updates
                self.save_checkpoint()
                bar.note(f"interrupted at epoch {self.state.epoch}: checkpoint saved"
                         + (f" in {self.out_dir}; resume with --resume" if self.out_dir else ""))
                return self.state.history
        self.save_checkpoint()
        return self.state.history

    def _open_log(self) -> Any:
        """The JSONL log, rewritten from the (checkpointed) history so it never runs ahead of it."""
        if self.out_dir is None:
            return open(os.devnull, "w")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        log = self._path(LOG).open("w")
        for record in self.state.history:
            log.write(json.dumps(record) + "\n")
        return log

    def _epoch(self, epoch: int, train_set: Dataset, val_set: Dataset | None, bar: Any) -> dict:
        tl.manual_seed(self.seed * 100_003 + epoch)  # dropout masks etc. depend only on (seed, epoch)
        started = time.perf_counter()
        train = self._run(train_set, epoch, bar.batch_done)
        seconds = time.perf_counter() - started
        record = {"epoch": epoch, **{f"train_{k}": v for k, v in train.items()}}
        if val_set is not None:
            record.update({f"val_{k}": v for k, v in self.evaluate(val_set).items()})
        record["lr"] = self.optimizer.param_groups[0]["lr"]
        record["seconds"] = round(seconds, 4)
        record["samples_per_second"] = round(len(train_set) / seconds, 1) if seconds > 0 else None
        if self.scheduler is not None and self.scheduler_step == "epoch":
            self.scheduler.step()
        self.state.epoch = epoch
        self.state.history.append(record)
        watched = record.get("val_loss", record["train_loss"])
        if watched < self.state.best_val_loss:
            self.state.best_val_loss, self.state.epochs_without_improvement = watched, 0
        else:
            self.state.epochs_without_improvement += 1
        return record

    def _should_stop(self) -> bool:
        return self.patience is not None and self.state.epochs_without_improvement >= self.patience

    # -- checkpoints -------------------------------------------------------------------------------
    def _path(self, name: str) -> Path:
        if self.out_dir is None:
            raise ValueError("Trainer: no out_dir was given, so there is no checkpoint to save or resume")
        return self.out_dir / name

    def save_checkpoint(self, path: str | Path | None = None) -> Path | None:
        """Write model, optimizer, scheduler and progress atomically (default: ``out_dir``)."""
        if path is None and self.out_dir is None:
            return None
        path = Path(path) if path is not None else self._path(CHECKPOINT)
        state = {
            **self._weights(),
            "train_state": {"epoch": self.state.epoch, "history": self.state.history,
                            "best_val_loss": self.state.best_val_loss if math.isfinite(self.state.best_val_loss)
                            else None,
                            "epochs_without_improvement": self.state.epochs_without_improvement},
        }
        tl.save(state, path, metadata=self.metadata)
        return path

    def _weights(self) -> dict:
        """The model's, optimizer's and scheduler's state dicts (live tensors, not copies)."""
        return {"model": dict(self.model.state_dict()), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None}

    def _load_weights(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore everything ``save_checkpoint`` wrote, onto the model's device."""
        state = tl.load(path)
        self._load_weights(state)
        saved = state["train_state"]
        best = saved.get("best_val_loss")
        self.state = TrainState(saved["epoch"], list(saved["history"]), math.inf if best is None else best,
                                saved["epochs_without_improvement"])
