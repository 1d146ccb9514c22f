"""The iteration-based variant of the training loop, for language models, after nanoGPT's ``train.py``.

Each iteration draws ``batch_size`` random windows of the training text, takes one optimizer step with
gradient clipping (AdamW, nanoGPT's; or, with ``optimizer="muon"``, Muon on the hidden matrices and AdamW on
the rest), and moves the learning rate along ``WarmupCosineLR`` (linear warmup, then cosine decay to
``min_lr`` at ``max_iters``; Muon's from ``muon_lr`` to the same fraction of it). Every ``eval_interval``
iterations and at the end, the mean train and val losses over ``eval_iters`` batches each (the same windows
every time) go as one JSON line to ``<out_dir>/log.jsonl``, and ``checkpoint.safetensors`` (the latest) and
``best.safetensors`` (the lowest val loss) are written: model, optimizer, scheduler, iteration, and metadata
(kind ``char-lm``, model type and config, vocabulary). Iteration ``i`` takes its batch and its dropout seed
from a generator seeded with ``(seed, i)``, so a resumed run ends exactly where an uninterrupted one does.
Ctrl-C finishes the current iteration, saves, and returns. A new run saves the untrained state first, so its
directory always holds a checkpoint. Under ``tensorlite.distributed`` (``training.parallel``) each of N ranks
trains on its slice of the iteration's N x ``batch_size`` windows (the ones a single process would draw with
that batch size) through ``DistributedDataParallel``, and only rank 0 writes the run directory and shows
progress. Each step's loss is checked for NaN and infinity on the device
(``stopping.LossWatch``), read before every save: a non-finite loss stops the run with ``NonFiniteLossError``
naming the iteration, leaving the last checkpoint saved (a finite state) as the latest.

Why a second loop and not options of ``Trainer``: a language model never sees an epoch. Its batches
are random windows drawn per iteration, not a shuffled pass over a dataset; it evaluates every N
iterations on a fixed sample of windows, not after each pass over a validation set; it keeps the
best checkpoint besides the latest and is interrupted between steps rather than rolled back to an
epoch boundary. Folding that into ``Trainer`` would put an ``if`` on every line of its loop. What
the two share (the run directory: log, checkpoint layout, resume) lives once in ``run_dir``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy

import tensorlite as tl
from tensorlite.datasets.text import SPLITS, TextData
from tensorlite.nn import Module
from tensorlite.nn.utils import clip_grad_norm_
from tensorlite.optim.lr_scheduler import WarmupCosineLR
from tensorlite.tensor import Tensor
from tensorlite.training import parallel, run_dir
from tensorlite.training.run_dir import BEST, CHECKPOINT
from tensorlite.training.stopping import DeferredInterrupt, LossWatch, NonFiniteLossError, all_finite

TRAIN_STREAM, EVAL_STREAM = 1, 2  # seed words that keep training and evaluation windows apart


@dataclass
class LMTrainConfig:
    """The optimisation settings of a run (defaults: nanoGPT's Shakespeare character model)."""

    max_iters: int = 2000
    batch_size: int = 12
    learning_rate: float = 1e-3  # AdamW's peak rate
    min_lr: float = 1e-4  # where the cosine decay ends, at max_iters
    warmup_iters: int = 100
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0  # 0: no clipping
    eval_interval: int = 250
    eval_iters: int = 200  # batches per split for each loss estimate
    seed: int = 1337
    optimizer: str = "adamw"  # "adamw": AdamW on every parameter; "muon": Muon on the hidden matrices, AdamW elsewhere
    muon_lr: float = 0.02  # Muon's peak rate, on the same schedule (decaying to min_lr / learning_rate of it)
    muon_momentum: float = 0.95
    muon_weight_decay: float = 0.0  # Keller Jordan's Muon decays nothing (torch.optim.Muon's default is 0.1)
    muon_ns_steps: int = 5  # Newton-Schulz steps per Muon update (the update's main cost on a CPU)

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"LMTrainConfig: optimizer must be {' or '.join(map(repr, OPTIMIZERS))}, got "
                             f"{self.optimizer!r}")


OPTIMIZERS = ("adamw", "muon")
# The settings that decide the optimizer's state (which optimizer holds which parameter): a run resumes with its own.
OPTIMIZER_FIELDS = ("optimizer", "muon_lr", "muon_momentum", "muon_weight_decay", "muon_ns_steps")


def build_optimizer(model: Module, config: LMTrainConfig) -> Any:
    """The optimizer ``config`` describes for a language model (its ``configure_optimizers``): AdamW, or Muon on
    the hidden matrices and AdamW on the rest (a ``CombinedOptimizer``)."""
    muon = dict(muon_lr=config.muon_lr, muon_momentum=config.muon_momentum, muon_weight_decay=config.muon_weight_decay,
                muon_ns_steps=config.muon_ns_steps) if config.optimizer == "muon" else {}
    return model.configure_optimizers(config.weight_decay, config.learning_rate, config.betas, **muon)


def _seeded(seed: int, stream: int, index: int = 0) -> numpy.random.Generator:
    return numpy.random.default_rng([seed, stream, index])


class LMTrainer:
    """Trains a language model (``model(idx, targets) -> (logits, loss)``) on ``data``; see the module docstring."""

    def __init__(self, model: Module, data: TextData, config: LMTrainConfig, *, out_dir: str | Path | None = None,
                 metadata: dict | None = None, progress: bool = True) -> None:
        self.model, self.data, self.config = model, data, config
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.metadata, self.progress = metadata or {}, progress
        self.device = next(model.parameters()).device
        self.block_size = model.config.block_size
        for split, tokens in data.splits.items():
            if len(tokens) <= self.block_size:
                raise ValueError(f"LMTrainer: the {split} split has {len(tokens)} tokens, fewer than the "
                                 f"block_size + 1 = {self.block_size + 1} that one window and its targets need; "
                                 "use a longer text or a smaller block_size")
        self.train_model = parallel.data_parallel(model)  # what the training steps call: DDP on several ranks
        self.optimizer = build_optimizer(model, config)
        # A group at the peak learning_rate decays to min_lr, any other (Muon's) to the same fraction of its rate.
        min_lrs = [config.min_lr if group["lr"] == config.learning_rate
                   else group["lr"] * config.min_lr / config.learning_rate for group in self.optimizer.param_groups]
        self.scheduler = WarmupCosineLR(self.optimizer, config.warmup_iters, config.max_iters, min_lrs)
        self.iteration = 0
        self.best_val_loss = math.inf
        self.history: list[dict] = []  # one record per evaluation
        self.interrupted = False
        self._interrupt, self._watch = DeferredInterrupt(), LossWatch()

    # -- one step, one estimate ------------------------------------------------------------------------
    def train_step(self) -> Tensor:
        """One optimizer step on the batch of the current iteration; returns the loss (0-d, detached)."""
        cfg = self.config
        rng = _seeded(cfg.seed, TRAIN_STREAM, self.iteration)
        x, y = self._batch("train", rng)
        tl.manual_seed(int(rng.integers(2**62)) + parallel.rank())  # dropout masks: (seed, iteration, rank) too
        _, loss = self.train_model(x, y)
        self.optimizer.zero_grad()
        loss.backward()
        if cfg.grad_clip > 0:
            clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.iteration += 1
        self._watch.update(loss.detach(), self.iteration)
        return loss.detach()

    def _batch(self, split: str, rng: numpy.random.Generator) -> tuple[Tensor, Tensor]:
        """This rank's windows: the ``batch_size`` of one process, or its slice of the N x ``batch_size`` that one
        process would draw with a batch N times larger, when N ranks train together."""
        size, ranks = self.config.batch_size, parallel.world_size()
        x, y = self.data.get_batch(split, size * ranks, self.block_size, self.device, rng)
        if ranks == 1:
            return x, y
        mine = slice(parallel.rank() * size, (parallel.rank() + 1) * size)
        return x[mine], y[mine]

    def estimate_loss(self) -> dict[str, float] | None:
        """Mean loss over ``eval_iters`` batches of each split, in eval mode (None if Ctrl-C cut it short); ranks
        training together each take their slice of the windows and average their means."""
        cfg = self.config
        rng = _seeded(cfg.seed, EVAL_STREAM)
        losses = {}
        self.model.eval()
        try:
            with tl.no_grad():
                for split in SPLITS:
                    total = 0.0
                    for _ in range(cfg.eval_iters):
                        if self._interrupt.agreed():
                            return None
                        x, y = self._batch(split, rng)
                        total = total + self.model(x, y)[1]
                    losses[f"{split}_loss"] = float(total) / cfg.eval_iters
        finally:
            self.model.train()
        means = parallel.sum_over_ranks(list(losses.values()))  # each rank estimated on its slice of the windows
        return {key: mean / parallel.world_size() for key, mean in zip(losses, means)}

    # -- the loop --------------------------------------------------------------------------------------
    def fit(self, resume: bool = False, overwrite: bool = False) -> list[dict]:
        """Train until ``max_iters`` (counting iterations done before a resume); returns the evaluations.

        A new run clears ``out_dir`` first (``overwrite`` replaces a run of another kind there; see
        ``run_dir.start_run``).
        """
        from tensorlite.training.progress import IterationProgress  # rich: loaded only when a loop runs

        cfg = self.config
        with self._interrupt:
            parallel.barrier()  # every rank has checked its settings before rank 0 touches the run directory
            if parallel.is_main():
                run_dir.start_run(self.out_dir, self.metadata.get("kind"), resume, overwrite)
            if resume:
                self.load_checkpoint(self._path(CHECKPOINT))
            else:
                self.save_checkpoint(CHECKPOINT)
            started, done_at_start = time.perf_counter(), self.iteration
            with IterationProgress(cfg.max_iters, self.iteration, self.progress) as bar, \
                    run_dir.open_log(self.out_dir if parallel.is_main() else None, self.history, bar.note) as log:
                if parallel.world_size() > 1:
                    bar.note(parallel.describe(cfg.batch_size, "windows"))
                self.model.train()
                while not (stopped := self._interrupt.agreed()):
                    due = self.iteration == cfg.max_iters or self.iteration % cfg.eval_interval == 0
                    evaluated = bool(self.history) and self.history[-1]["iter"] == self.iteration
                    if due and self.iteration > 0 and not evaluated:
                        seconds = time.perf_counter() - started
                        if not self._evaluate(log, bar, (self.iteration - done_at_start) / seconds):
                            stopped = True
                            break
                        started, done_at_start = time.perf_counter(), self.iteration
                    if self.iteration >= cfg.max_iters:
                        break
                    self.train_step()
                    bar.step()
                if stopped:
                    self._check_finite()
                    self.interrupted = True
                    self.save_checkpoint(CHECKPOINT)
                    saved = f": checkpoint saved in {self.out_dir}; continue with resume=True" if self.out_dir else ""
                    bar.note(f"interrupted at iteration {self.iteration}{saved}")
        return self.history

    def _evaluate(self, log: Any, bar: Any, iters_per_second: float) -> bool:
        """Estimate the losses, log them, check the training losses since the last save, and save the latest
        (and maybe best) checkpoint; False if interrupted."""
        losses = self.estimate_loss()
        if losses is None:
            return False
        record = run_dir.finite_or_null({"iter": self.iteration, **losses, "lr": self.optimizer.param_groups[0]["lr"],
                                         "iters_per_second": round(iters_per_second, 2)})
        self.history.append(record)
        run_dir.append_record(log, record)
        bar.evaluated(record)
        self._check_finite()
        if losses["val_loss"] < self.best_val_loss:  # never true for NaN
            self.best_val_loss = losses["val_loss"]
            self.save_checkpoint(BEST)
        self.save_checkpoint(CHECKPOINT)
        return True

    def _check_finite(self) -> None:
        """Raise ``NonFiniteLossError`` if a training loss so far or the weights are NaN or infinite (a device read)."""
        bad = self._watch.first_bad_step()
        if bad is None and all_finite(self.model.parameters()):
            return
        failure = f"the training loss is not finite (NaN or infinity) at iteration {bad}" if bad is not None \
            else f"the weights are not finite at iteration {self.iteration}"
        raise NonFiniteLossError(f"LMTrainer: {failure}: training stopped without saving that state"
                                 + (f"; the latest checkpoint in {self.out_dir} is the last finite one"
                                    if self.out_dir else ""))

    # -- checkpoints -----------------------------------------------------------------------------------
    def _path(self, name: str) -> Path:
        if self.out_dir is None:
            raise ValueError("LMTrainer: no out_dir was given, so there is no checkpoint to save or resume")
        return self.out_dir / name

    def save_checkpoint(self, name: str) -> None:
        """Write model, optimizer, scheduler and progress atomically to ``out_dir/name`` (if there is an out_dir, on
        rank 0)."""
        if self.out_dir is None or not parallel.is_main():
            return
        best = self.best_val_loss if math.isfinite(self.best_val_loss) else None
        train_state = {"iteration": self.iteration, "history": self.history, "best_val_loss": best}
        run_dir.save_checkpoint(self._path(name), self.model, self.optimizer, self.scheduler, train_state,
                                self.metadata)

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore everything ``save_checkpoint`` wrote, onto the model's device."""
        def read_state(saved: dict) -> tuple[int, list[dict], float]:
            best = saved["best_val_loss"]
            return int(saved["iteration"]), list(saved["history"]), math.inf if best is None else float(best)

        self.iteration, self.history, self.best_val_loss = run_dir.load_checkpoint(
            path, self.model, self.optimizer, self.scheduler, read_state)
