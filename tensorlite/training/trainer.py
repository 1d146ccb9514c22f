"""The training loop: epochs over a dataset, metrics, evaluation, JSONL log, checkpoints, resume.

``Trainer.fit`` runs epochs over a dataset with a progress bar (loss, accuracy, throughput),
evaluates on a validation set after each epoch, appends one JSON line per epoch to
``<out_dir>/log.jsonl``, and keeps ``<out_dir>/checkpoint.safetensors`` (model, optimizer,
scheduler, epoch), written at the end, every ``checkpoint_seconds``, and on Ctrl-C, which rolls
back to the last completed epoch, saves, and returns cleanly. Each epoch's shuffle order and
random state are derived from ``(seed, epoch)``, so a run resumed from epoch k ends bit for bit
where an uninterrupted run does. The scheduler steps once per epoch, or once per optimizer step with
``scheduler_step="batch"`` (for OneCycleLR and warmup schedules).

Language models train by iterations over random windows instead: ``lm_trainer.LMTrainer`` is that
variant (see its docstring for why it is a second, thin loop rather than options of this one).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import tensorlite as tl
from tensorlite.nn import Module
from tensorlite.tensor import Tensor
from tensorlite.training import run_dir
from tensorlite.training.metrics import AccuracyFn
from tensorlite.utils.data import DataLoader, Dataset


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
            self.load_checkpoint(self._path(run_dir.CHECKPOINT))
        log = run_dir.open_log(self.out_dir, self.state.history)
        from tensorlite.training.progress import TrainingProgress  # rich: loaded only when a loop runs

        start_epoch, last_save = self.state.epoch, time.monotonic()
        completed = _copy_tree(self._weights())  # as of the last completed epoch: what Ctrl-C saves
        with TrainingProgress(epochs, start_epoch, len(train_set), enabled=self.progress) as bar, log:
            try:
                for epoch in range(start_epoch + 1, epochs + 1):
                    record = self._epoch(epoch, train_set, val_set, bar)
                    completed = _copy_tree(self._weights())
                    run_dir.append_record(log, record)
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
                         + (f" in {self.out_dir}; continue with resume=True" if self.out_dir else ""))
                return self.state.history
        self.save_checkpoint()
        return self.state.history

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
        path = Path(path) if path is not None else self._path(run_dir.CHECKPOINT)
        best = self.state.best_val_loss
        train_state = {"epoch": self.state.epoch, "history": self.state.history,
                       "best_val_loss": best if math.isfinite(best) else None,
                       "epochs_without_improvement": self.state.epochs_without_improvement}
        return run_dir.save_checkpoint(path, self.model, self.optimizer, self.scheduler, train_state, self.metadata)

    def _weights(self) -> dict:
        return run_dir.training_state(self.model, self.optimizer, self.scheduler)

    def _load_weights(self, state: dict) -> None:
        run_dir.restore_training_state(state, self.model, self.optimizer, self.scheduler)

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore everything ``save_checkpoint`` wrote, onto the model's device."""
        saved = run_dir.load_checkpoint(path, self.model, self.optimizer, self.scheduler)
        best = saved.get("best_val_loss")
        self.state = TrainState(saved["epoch"], list(saved["history"]), math.inf if best is None else best,
                                saved["epochs_without_improvement"])
