"""The training loop: epochs over a dataset, metrics, evaluation, JSONL log, checkpoints, resume.

``Trainer.fit`` runs epochs over a dataset with a progress bar (loss, accuracy, throughput),
evaluates on a validation set after each epoch, appends one JSON line per epoch to
``<out_dir>/log.jsonl``, and keeps ``<out_dir>/checkpoint.safetensors`` (model, optimizer,
scheduler, epoch), written before the first epoch, after every epoch that ends more than
``checkpoint_seconds`` (``CHECKPOINT_SECONDS``) after the last save, and at the end. A kill at any
moment thus loses a few seconds at most, and leaves a log that may run ahead of the checkpoint, which
resuming truncates. Ctrl-C (deferred to the next batch) and a non-finite training loss both roll back
to the last completed epoch, whose state is kept as one snapshot, and save it: the checkpoint and the
log never disagree about an epoch, and a non-finite state is never saved (``NonFiniteLossError``
follows). Each epoch's shuffle order and
random state are derived from ``(seed, epoch)``, so a run resumed from epoch k ends bit for bit
where an uninterrupted run does. The scheduler steps once per epoch, or once per optimizer step with
``scheduler_step="batch"`` (for OneCycleLR and warmup schedules).

Language models train by iterations over random windows instead: ``lm_trainer.LMTrainer`` is that
variant (see its docstring for why it is a second, thin loop rather than options of this one).

Under ``tensorlite.distributed`` (``training.parallel``), N ranks train the model through
``DistributedDataParallel``, each on its ``DistributedSampler`` share of every epoch (per-rank batches of
``batch_size``, a global batch N times larger); the epoch's training loss and accuracy are totalled over the
ranks, every rank evaluates the whole validation set, and only rank 0 writes the run directory.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

import tensorlite as tl
from tensorlite.nn import Module
from tensorlite.tensor import Tensor
from tensorlite.training import parallel, run_dir
from tensorlite.training.metrics import AccuracyFn
from tensorlite.training.stopping import DeferredInterrupt, LossWatch, NonFiniteLossError, all_finite
from tensorlite.utils.data import DataLoader, Dataset, DistributedSampler

CHECKPOINT_SECONDS = 2.0  # an epoch that ends this long after the last save saves again


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

    def copy(self) -> TrainState:
        return replace(self, history=list(self.history))


class Trainer:
    """Trains ``model`` with ``loss_fn`` and ``optimizer``; see the module docstring."""

    def __init__(self, model: Module, loss_fn: Callable[[Tensor, Tensor], Tensor], optimizer: Any, *,
                 accuracy_fn: AccuracyFn | None = None, scheduler: Any = None, batch_size: int = 32,
                 seed: int = 0, out_dir: str | Path | None = None, metadata: dict | None = None,
                 patience: int | None = None, progress: bool = True,
                 checkpoint_seconds: float = CHECKPOINT_SECONDS,
                 scheduler_step: str = "epoch") -> None:
        if batch_size <= 0:
            raise ValueError(f"Trainer: batch_size must be positive, got {batch_size}")
        if scheduler_step not in ("epoch", "batch"):
            raise ValueError(f"Trainer: scheduler_step must be 'epoch' or 'batch', got {scheduler_step!r}")
        self.model, self.loss_fn, self.optimizer, self.scheduler = model, loss_fn, optimizer, scheduler
        self._train_model: Module | None = None
        self.accuracy_fn, self.batch_size, self.seed = accuracy_fn, batch_size, seed
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.metadata = metadata or {}
        self.patience, self.progress, self.checkpoint_seconds = patience, progress, checkpoint_seconds
        self.scheduler_step = scheduler_step
        self.state = TrainState()
        self._interrupt, self._watch = DeferredInterrupt(), LossWatch()

    @property
    def train_model(self) -> Module:
        """What training passes call: the model, or on several ranks the model in ``DistributedDataParallel``,
        wrapped at the first training pass (a collective), so that a trainer that only evaluates never wraps."""
        if self._train_model is None:
            self._train_model = parallel.data_parallel(self.model)
        return self._train_model

    # -- one pass ----------------------------------------------------------------------------------
    def _loader(self, dataset: Dataset, epoch: int | None) -> DataLoader:
        if epoch is None:
            return DataLoader(dataset, batch_size=self.batch_size)
        if parallel.world_size() > 1:  # this rank's share of the epoch
            sampler = DistributedSampler(dataset, shuffle=True, seed=self.seed)
            sampler.set_epoch(epoch)
            return DataLoader(dataset, batch_size=self.batch_size, sampler=sampler)
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=True,
                          generator=np.random.default_rng([self.seed, epoch]))

    def _run(self, dataset: Dataset, epoch: int | None, on_batch: Callable[[int], None] | None = None) -> dict:
        """One pass: training (with ``epoch``) or evaluation (without); returns mean loss and accuracy."""
        training = epoch is not None
        self.model.train(training)
        model = self.train_model if training else self.model
        total_loss = correct = None
        seen = 0
        with tl.enable_grad() if training else tl.no_grad():
            for batch, (inputs, targets) in enumerate(self._loader(dataset, epoch), 1):
                if training and self._interrupt.agreed():
                    raise KeyboardInterrupt  # Ctrl-C, deferred to here: the epoch is rolled back
                outputs = model(inputs)
                loss = self.loss_fn(outputs, targets)
                if training:
                    self.optimizer.zero_grad()
                    loss.backward()
                    self.optimizer.step()
                    if self.scheduler is not None and self.scheduler_step == "batch":
                        self.scheduler.step()
                    self._watch.update(loss.detach(), batch)
                n = len(inputs)
                batch_loss = loss.detach() * n
                total_loss = batch_loss if total_loss is None else total_loss + batch_loss
                if self.accuracy_fn is not None:
                    hits = self.accuracy_fn(outputs.detach(), targets)
                    correct = hits if correct is None else correct + hits
                seen += n
                if on_batch is not None:
                    on_batch(n * parallel.world_size())
        loss_sum = float(total_loss) if total_loss is not None else 0.0
        hits = float(correct) if correct is not None else None
        if training:  # each rank trained on its share of the epoch
            loss_sum, seen, hit_sum = parallel.sum_over_ranks([loss_sum, seen, hits or 0.0])
            hits = None if hits is None else hit_sum
        result = {"loss": loss_sum / seen if seen else math.nan}
        if hits is not None:
            result["accuracy"] = hits / seen
        return result

    def evaluate(self, dataset: Dataset) -> dict:
        """Mean loss (and accuracy) over ``dataset`` in eval mode, without gradients."""
        return self._run(dataset, None)

    # -- the loop ----------------------------------------------------------------------------------
    def fit(self, train_set: Dataset, val_set: Dataset | None = None, epochs: int = 10,
            resume: bool = False, overwrite: bool = False) -> list[dict]:
        """Train until ``epochs`` (counting epochs done before a resume); returns the history.

        A new run clears ``out_dir`` first (``overwrite`` replaces a run of another kind there; see
        ``run_dir.start_run``) and saves the untrained state, so the directory always holds a checkpoint.
        """
        from tensorlite.training.progress import TrainingProgress  # rich: loaded only when a loop runs

        with self._interrupt:
            parallel.barrier()  # every rank has checked its settings before rank 0 touches the run directory
            if parallel.is_main():
                run_dir.start_run(self.out_dir, self.metadata.get("kind"), resume, overwrite)
            if resume:
                self.load_checkpoint(self._path(run_dir.CHECKPOINT))
            else:
                self.save_checkpoint()
            with TrainingProgress(epochs, self.state.epoch, len(train_set), enabled=self.progress) as bar, \
                    run_dir.open_log(self.out_dir if parallel.is_main() else None, self.state.history, bar.note) as log:
                if parallel.world_size() > 1:
                    bar.note(parallel.describe(self.batch_size, "samples"))
                return self._epochs(train_set, val_set, epochs, bar, log)

    def _epochs(self, train_set: Dataset, val_set: Dataset | None, epochs: int, bar: Any, log: Any) -> list[dict]:
        """The epochs of ``fit``, each committed as one snapshot before it is logged or saved."""
        committed, last_save = self._snapshot(), time.monotonic()
        try:
            for epoch in range(self.state.epoch + 1, epochs + 1):
                record = self._epoch(epoch, train_set, val_set, bar)
                failure = self._non_finite(epoch)
                if failure is None:
                    committed = self._snapshot()
                run_dir.append_record(log, record)
                bar.epoch_done(record)
                if failure is not None:
                    raise NonFiniteLossError(
                        f"Trainer: {failure}: training stopped at epoch {epoch - 1}, the last finite state"
                        + (f", saved in {self.out_dir / run_dir.CHECKPOINT}" if self.out_dir else ""))
                if time.monotonic() - last_save > self.checkpoint_seconds:
                    self.save_checkpoint()
                    last_save = time.monotonic()
                if self._should_stop():
                    bar.note(f"early stopping: no val_loss improvement in {self.patience} epochs")
                    break
        except (KeyboardInterrupt, NonFiniteLossError) as stop:
            self._restore(committed)  # drop what came after the last completed, finite epoch
            self.save_checkpoint()
            if isinstance(stop, NonFiniteLossError):
                raise
            bar.note(f"interrupted at epoch {self.state.epoch}: checkpoint saved"
                     + (f" in {self.out_dir}; continue with resume=True" if self.out_dir else ""))
            return self.state.history
        self.save_checkpoint()
        return self.state.history

    def _epoch(self, epoch: int, train_set: Dataset, val_set: Dataset | None, bar: Any) -> dict:
        tl.manual_seed(self.seed * 100_003 + epoch + 1_000_003 * parallel.rank())  # dropout: (seed, epoch, rank)
        started = time.perf_counter()
        self._watch.reset()
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
        watched = record.get("val_loss", record["train_loss"])
        if watched < self.state.best_val_loss:  # never true for NaN
            self.state.best_val_loss, self.state.epochs_without_improvement = watched, 0
        else:
            self.state.epochs_without_improvement += 1
        record = run_dir.finite_or_null(record)
        self.state.epoch = epoch
        self.state.history.append(record)
        return record

    def _non_finite(self, epoch: int) -> str | None:
        """What ``epoch`` made NaN or infinite (a training loss, else the weights), or None: read once an epoch."""
        bad_batch = self._watch.first_bad_step()
        if bad_batch is not None:
            return f"the training loss is not finite (NaN or infinity) at epoch {epoch}, batch {bad_batch}"
        return None if all_finite(self.model.parameters()) else f"the weights are not finite after epoch {epoch}"

    def _should_stop(self) -> bool:
        return self.patience is not None and self.state.epochs_without_improvement >= self.patience

    # -- checkpoints -------------------------------------------------------------------------------
    def _path(self, name: str) -> Path:
        if self.out_dir is None:
            raise ValueError("Trainer: no out_dir was given, so there is no checkpoint to save or resume")
        return self.out_dir / name

    def save_checkpoint(self, path: str | Path | None = None) -> Path | None:
        """Write model, optimizer, scheduler and progress atomically (default: ``out_dir``; rank 0 alone)."""
        if (path is None and self.out_dir is None) or not parallel.is_main():
            return None
        path = Path(path) if path is not None else self._path(run_dir.CHECKPOINT)
        best = self.state.best_val_loss
        train_state = {"epoch": self.state.epoch, "history": self.state.history,
                       "best_val_loss": best if math.isfinite(best) else None,
                       "epochs_without_improvement": self.state.epochs_without_improvement}
        return run_dir.save_checkpoint(path, self.model, self.optimizer, self.scheduler, train_state, self.metadata)

    def _snapshot(self) -> tuple[dict, TrainState]:
        """Copies of the model, optimizer and scheduler state and of the progress: what a stop rolls back to."""
        weights = run_dir.training_state(self.model, self.optimizer, self.scheduler)
        return _copy_tree(weights), self.state.copy()

    def _restore(self, snapshot: tuple[dict, TrainState]) -> None:
        weights, state = snapshot
        run_dir.restore_training_state(weights, self.model, self.optimizer, self.scheduler)
        self.state = state.copy()

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore everything ``save_checkpoint`` wrote, onto the model's device."""
        def read_state(saved: dict) -> TrainState:
            best = saved.get("best_val_loss")
            return TrainState(int(saved["epoch"]), list(saved["history"]), math.inf if best is None else float(best),
                              int(saved["epochs_without_improvement"]))

        self.state = run_dir.load_checkpoint(path, self.model, self.optimizer, self.scheduler, read_state)
