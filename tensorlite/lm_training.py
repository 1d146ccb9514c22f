"""Character language models (GPT, CharLSTM): iteration-based training after nanoGPT's ``train.py``,
their checkpoints, and sampling from them.

Each iteration draws ``batch_size`` random windows of the training text, takes one AdamW step
with gradient clipping, and moves the learning rate along ``WarmupCosineLR`` (linear warmup, then
cosine decay to ``min_lr`` at ``max_iters``). Every ``eval_interval`` iterations and at the end,
the mean train and val losses over ``eval_iters`` batches each (the same windows every time) go
as one JSON line to ``<out_dir>/log.jsonl``, and ``checkpoint.safetensors`` (the latest) and
``best.safetensors`` (the lowest val loss) are written: model, optimizer, scheduler, iteration,
and metadata (kind ``char-lm``, model type and config, vocabulary). Iteration ``i`` takes its
batch and its dropout seed from a generator seeded with ``(seed, i)``, so a resumed run ends
exactly where an uninterrupted one does. Ctrl-C finishes the current iteration, saves, and returns.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy

import tensorlite as tl
from tensorlite.data.text import SPLITS, CharTokenizer, TextData, load_shakespeare
from tensorlite.nn import Module
from tensorlite.nn.utils import clip_grad_norm_
from tensorlite.optim.lr_scheduler import WarmupCosineLR
from tensorlite.progress import IterationProgress
from tensorlite.tensor import Tensor

KIND = "char-lm"
CHECKPOINT, BEST, LOG = "checkpoint.safetensors", "best.safetensors", "log.jsonl"
MODEL_TYPES = ("gpt", "lstm")
TRAIN_STREAM, EVAL_STREAM = 1, 2  # seed words that keep training and evaluation windows apart


@dataclass
class LMTrainConfig:
    """The optimisation settings of a run (defaults: nanoGPT's Shakespeare character model)."""

    max_iters: int = 2000
    batch_size: int = 12
    learning_rate: float = 1e-3
    min_lr: float = 1e-4  # where the cosine decay ends, at max_iters
    warmup_iters: int = 100
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0  # 0: no clipping
    eval_interval: int = 250
    eval_iters: int = 200  # batches per split for each loss estimate
    seed: int = 1337


# Settings by option name: a model's config fields and LMTrainConfig's. Unset ones take the defaults.
# The GPT presets are nanoGPT's shakespeare_char runs, with its train.py's bias=False.
GPT_PRESETS = {
    "cpu": {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "dropout": 0.0, "bias": False,
            "batch_size": 12, "max_iters": 2000},
    "gpu": {"n_layer": 6, "n_head": 6, "n_embd": 384, "block_size": 256, "dropout": 0.2, "bias": False,
            "batch_size": 64, "max_iters": 5000},
}
LSTM_DEFAULTS = {"n_embd": 64, "hidden_size": 256, "num_layers": 2, "block_size": 64, "dropout": 0.0,
                 "batch_size": 32, "max_iters": 2000, "learning_rate": 2e-3, "weight_decay": 0.0}
OPTION_NAMES = {"learning_rate": "lr"}  # settings whose command-line option is not --the-field-name


def model_classes(model_type: str) -> tuple[type[Module], type]:
    """The model class and its config dataclass for ``"gpt"`` or ``"lstm"``."""
    if model_type == "gpt":
        from tensorlite.models import GPT, GPTConfig

        return GPT, GPTConfig
    if model_type == "lstm":
        from tensorlite.models import CharLSTM, CharLSTMConfig

        return CharLSTM, CharLSTMConfig
    raise ValueError(f"unknown language model type {model_type!r}: expected one of {', '.join(MODEL_TYPES)}")


def _seeded(seed: int, stream: int, index: int = 0) -> numpy.random.Generator:
    return numpy.random.default_rng([seed, stream, index])


class _DeferredInterrupt:
    """While active, Ctrl-C sets ``requested`` instead of raising (a second Ctrl-C raises as usual)."""

    requested = False

    def __enter__(self) -> _DeferredInterrupt:
        self.requested = False
        try:
            self.previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread, which alone receives signals
            self.previous = None
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


class LMTrainer:
    """Trains a language model (``model(idx, targets) -> (logits, loss)``) on ``data``; see the module docstring."""

    def __init__(self, model: Module, data: TextData, config: LMTrainConfig, *, out_dir: str | Path | None = None,
                 metadata: dict | None = None, progress: bool = True) -> None:
        self.model, self.data, self.config = model, data, config
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.metadata, self.progress = metadata or {}, progress
        self.device = next(model.parameters()).device
        self.block_size = model.config.block_size
        self.optimizer = model.configure_optimizers(config.weight_decay, config.learning_rate, config.betas)
        self.scheduler = WarmupCosineLR(self.optimizer, config.warmup_iters, config.max_iters, config.min_lr)
        self.iteration = 0
        self.best_val_loss = math.inf
        self.history: list[dict] = []  # one record per evaluation
        self.interrupted = False
        self._interrupt = _DeferredInterrupt()

    # -- one step, one estimate ------------------------------------------------------------------------
    def train_step(self) -> Tensor:
        """One AdamW step on the batch of the current iteration; returns the loss (0-d, detached)."""
        cfg = self.config
        rng = _seeded(cfg.seed, TRAIN_STREAM, self.iteration)
        x, y = self.data.get_batch("train", cfg.batch_size, self.block_size, self.device, rng)
        tl.manual_seed(int(rng.integers(2**62)))  # dropout masks depend only on (seed, iteration) too
        _, loss = self.model(x, y)
        self.optimizer.zero_grad()
        loss.backward()
        if cfg.grad_clip > 0:
            clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.iteration += 1
        return loss.detach()

    def estimate_loss(self) -> dict[str, float] | None:
        """Mean loss over ``eval_iters`` batches of each split, in eval mode (None if Ctrl-C cut it short)."""
        cfg = self.config
        rng = _seeded(cfg.seed, EVAL_STREAM)
        losses = {}
        self.model.eval()
        try:
            with tl.no_grad():
                for split in SPLITS:
                    total = 0.0
                    for _ in range(cfg.eval_iters):
                        if self._interrupt.requested:
                            return None
                        x, y = self.data.get_batch(split, cfg.batch_size, self.block_size, self.device, rng)
                        total = total + self.model(x, y)[1]
                    losses[f"{split}_loss"] = float(total) / cfg.eval_iters
        finally:
            self.model.train()
        return losses

    # -- the loop --------------------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> list[dict]:
        """Train until ``max_iters`` (counting iterations done before a resume); returns the evaluations."""
        if resume:
            self.load_checkpoint(self._path(CHECKPOINT))
        cfg = self.config
        log = self._open_log()
        started, done_at_start = time.perf_counter(), self.iteration
        with IterationProgress(cfg.max_iters, self.iteration, self.progress) as bar, log, self._interrupt:
            self.model.train()
            while not self._interrupt.requested:
                due = self.iteration == cfg.max_iters or self.iteration % cfg.eval_interval == 0
                evaluated = bool(self.history) and self.history[-1]["iter"] == self.iteration
                if due and self.iteration > 0 and not evaluated:
                    seconds = time.perf_counter() - started
                    if not self._evaluate(log, bar, (self.iteration - done_at_start) / seconds):
                        break
                    started, done_at_start = time.perf_counter(), self.iteration
                if self.iteration >= cfg.max_iters:
                    break
                bar.step(float(self.train_step()))
            if self._interrupt.requested:
                self.interrupted = True
                self.save_checkpoint(CHECKPOINT)
                saved = f": checkpoint saved in {self.out_dir}; continue with --resume" if self.out_dir else ""
                bar.note(f"interrupted at iteration {self.iteration}{saved}")
        return self.history

    def _evaluate(self, log: Any, bar: IterationProgress, iters_per_second: float) -> bool:
        """Estimate the losses, log them, and save the latest (and maybe best) checkpoint; False if interrupted."""
        losses = self.estimate_loss()
        if losses is None:
            return False
        record = {"iter": self.iteration, **losses, "lr": self.optimizer.param_groups[0]["lr"],
                  "iters_per_second": round(iters_per_second, 2)}
        self.history.append(record)
        log.write(json.dumps(record) + "\n")
        log.flush()
        bar.note(f"iter {self.iteration}: train loss {losses['train_loss']:.4f}, val loss {losses['val_loss']:.4f}")
        if losses["val_loss"] < self.best_val_loss:
            self.best_val_loss = losses["val_loss"]
            self.save_checkpoint(BEST)
        self.save_checkpoint(CHECKPOINT)
        return True

    def _open_log(self) -> Any:
        """The JSONL log, rewritten from the (checkpointed) history so it never runs ahead of it."""
        if self.out_dir is None:
            return open(os.devnull, "w")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        log = self._path(LOG).open("w")
        for record in self.history:
            log.write(json.dumps(record) + "\n")
        return log

    # -- checkpoints -----------------------------------------------------------------------------------
    def _path(self, name: str) -> Path:
        if self.out_dir is None:
            raise ValueError("LMTrainer: no out_dir was given, so there is no checkpoint to save or resume")
        return self.out_dir / name

    def save_checkpoint(self, name: str) -> None:
        """Write model, optimizer, scheduler and progress atomically to ``out_dir/name`` (if there is an out_dir)."""
        if self.out_dir is None:
            return
        state = {"model": dict(self.model.state_dict()), "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(),
                 "train_state": {"iteration": self.iteration, "history": self.history,
                                 "best_val_loss": self.best_val_loss if math.isfinite(self.best_val_loss) else None}}
        tl.save(state, self._path(name), metadata=self.metadata)

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore everything ``save_checkpoint`` wrote, onto the model's device."""
        state = tl.load(path, self.device)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        saved = state["train_state"]
        self.iteration, self.history = saved["iteration"], list(saved["history"])
        self.best_val_loss = math.inf if saved["best_val_loss"] is None else saved["best_val_loss"]


# -- from options to a run -------------------------------------------------------------------------------
def resolve_settings(model_type: str, preset: str | None, options: dict[str, Any]) -> dict[str, Any]:
    """Preset (or the model's defaults) overridden by the options that are not None, checked."""
    if model_type == "gpt":
        preset = preset or "cpu"
        if preset not in GPT_PRESETS:
            raise ValueError(f"--preset: unknown preset {preset!r}: expected one of {', '.join(GPT_PRESETS)}")
        settings = dict(GPT_PRESETS[preset])
    else:
        settings = dict(LSTM_DEFAULTS)
    settings.update({key: value for key, value in options.items() if value is not None})
    if options.get("warmup_iters") is None:  # a shortened run warms up for at most a tenth of it
        settings["warmup_iters"] = min(LMTrainConfig.warmup_iters, settings["max_iters"] // 10)
    if options.get("min_lr") is None:  # the decay ends at a tenth of the peak rate, as nanoGPT advises
        settings["min_lr"] = settings.get("learning_rate", LMTrainConfig.learning_rate) / 10
    _check_settings(model_type, settings)
    return settings


def _option(key: str) -> str:
    return "--" + OPTION_NAMES.get(key, key).replace("_", "-")


def _check_settings(model_type: str, settings: dict[str, Any]) -> None:
    positive = ("n_layer", "n_head", "n_embd", "hidden_size", "num_layers", "block_size", "batch_size", "max_iters",
                "eval_interval", "eval_iters")
    for key in positive:
        if key in settings and not settings[key] > 0:
            raise ValueError(f"{_option(key)} must be positive, got {settings[key]}")
    if model_type == "gpt" and settings["n_embd"] % settings["n_head"]:
        raise ValueError(f"--n-embd ({settings['n_embd']}) must be divisible by --n-head ({settings['n_head']}): "
                         "each attention head gets n_embd / n_head channels")
    if not 0.0 <= settings.get("dropout", 0.0) < 1.0:
        raise ValueError(f"--dropout must be in [0, 1), got {settings['dropout']}")
    lr = settings.get("learning_rate", LMTrainConfig.learning_rate)
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"--lr: the learning rate must be positive, got {lr}")
    if not 0 <= settings["min_lr"] <= lr:
        raise ValueError(f"--min-lr must be between 0 and --lr ({lr}), got {settings['min_lr']}")
    warmup, max_iters = settings["warmup_iters"], settings["max_iters"]
    if not 0 <= warmup < max_iters:
        raise ValueError(f"--warmup-iters ({warmup}) must be at least 0 and less than --max-iters ({max_iters})")


def train_char_lm(model_type: str, *, preset: str | None = None, data: str | Path | None = None,
                  device: str | None = None, out: str | Path | None = None, resume: bool = False,
                  progress: bool = True, **options: Any) -> tuple[LMTrainer, CharTokenizer]:
    """Train a ``"gpt"`` or ``"lstm"`` character model on ``data`` (default Tiny Shakespeare) from options
    named as on the command line (``n_layer``, ``learning_rate``, ...; None: the preset's); returns the
    trainer and the tokenizer."""
    settings = resolve_settings(model_type, preset, options)
    out_dir = Path(out) if out is not None else Path("runs") / ("shakespeare" if model_type == "gpt" else "char-lstm")
    text = load_shakespeare(data)
    model_cls, config_cls = model_classes(model_type)
    if resume:
        if not (out_dir / CHECKPOINT).exists():
            raise ValueError(f"--resume: no checkpoint to resume from at {out_dir / CHECKPOINT}")
        saved = check_kind(out_dir / CHECKPOINT)
        if saved["model"] != model_type:
            raise ValueError(f"--resume: {out_dir / CHECKPOINT} holds a {saved['model']} model, not a {model_type}")
        tokenizer, model_config = CharTokenizer.from_dict(saved["tokenizer"]), config_cls(**saved["model_config"])
    else:
        tokenizer = CharTokenizer.from_text(text)
        model_fields = {f.name for f in dataclasses.fields(config_cls)}
        model_config = config_cls(**{k: v for k, v in settings.items() if k in model_fields},
                                   vocab_size=tokenizer.vocab_size)
    train_fields = {f.name for f in dataclasses.fields(LMTrainConfig)}
    train_config = LMTrainConfig(**{k: v for k, v in settings.items() if k in train_fields})
    tl.manual_seed(train_config.seed)
    model = model_cls(model_config).to(tl.device(device))
    metadata = {"kind": KIND, "model": model_type, "model_config": asdict(model_config),
                "tokenizer": tokenizer.to_dict(), "train_config": asdict(train_config),
                "data": str(data) if data is not None else "tinyshakespeare"}
    trainer = LMTrainer(model, TextData(tokenizer.encode(text)), train_config, out_dir=out_dir, metadata=metadata,
                        progress=progress)
    trainer.fit(resume=resume)
    return trainer, tokenizer


# -- checkpoints and sampling ------------------------------------------------------------------------------
def checkpoint_path(path: str | Path) -> Path:
    """A checkpoint file, or for a run directory its ``best.safetensors`` (else its latest checkpoint)."""
    path = Path(path)
    if path.is_dir():
        path = path / BEST if (path / BEST).exists() else path / CHECKPOINT
    if not path.exists():
        raise ValueError(f"no checkpoint at {path}")
    return path


def check_kind(path: Path) -> dict:
    """The metadata of a character-model checkpoint, or a clear error for another kind."""
    metadata = tl.load_metadata(path)
    if metadata.get("kind") != KIND:
        raise ValueError(f"{path} holds a {metadata.get('kind', 'unknown')!r} checkpoint, not a character language "
                         "model; train one with `tensorlite train shakespeare` or `tensorlite train char-lstm`")
    return metadata


def load_char_lm(path: str | Path, device: str | None = None) -> tuple[Module, CharTokenizer, dict]:
    """The model (in eval mode), tokenizer and metadata of a ``char-lm`` checkpoint or run directory."""
    path = checkpoint_path(path)
    metadata = check_kind(path)
    model_cls, config_cls = model_classes(metadata["model"])
    target = tl.device(device)
    model = model_cls(config_cls(**metadata["model_config"])).to(target)
    model.load_state_dict(tl.load(path, target)["model"])
    return model.eval(), CharTokenizer.from_dict(metadata["tokenizer"]), metadata


def default_prompt(tokenizer: CharTokenizer) -> str:
    """A newline (the start of a speech in Shakespeare), or the vocabulary's first character without one."""
    return "\n" if "\n" in tokenizer.stoi else tokenizer.chars[0]


def sample_chars(model: Module, tokenizer: CharTokenizer, prompt: str, max_new_tokens: int,
                 temperature: float = 0.8, top_k: int | None = 40, use_cache: bool = True) -> Iterator[str]:
    """The characters that follow ``prompt``, one at a time as they are sampled (seed with ``tl.manual_seed``).

    The arguments are checked here, before the first character is asked for.
    """
    if not prompt:
        raise ValueError("sample: the prompt is empty; give at least one character")
    if max_new_tokens <= 0 or not temperature > 0:
        raise ValueError(f"sample: --max-new-tokens and --temperature must be positive, got {max_new_tokens} "
                         f"and {temperature}")
    if top_k is not None and top_k < 0:
        raise ValueError(f"sample: --top-k must be positive (or 0 for no limit), got {top_k}")
    try:
        ids = tokenizer.encode(prompt)
    except ValueError as exc:
        raise ValueError(f"sample: cannot encode the prompt {prompt!r}: {exc}") from None
    idx = tl.tensor([ids], dtype=tl.int64, device=next(model.parameters()).device)  # (1, T)
    top_k = min(top_k, tokenizer.vocab_size) if top_k else None
    return _stream_chars(model, tokenizer, idx, max_new_tokens, temperature, top_k, use_cache)


def _stream_chars(model: Module, tokenizer: CharTokenizer, idx: Tensor, max_new_tokens: int, temperature: float,
                  top_k: int | None, use_cache: bool) -> Iterator[str]:
    with tl.no_grad():
        for token in model.generate_tokens(idx, max_new_tokens, temperature=temperature, top_k=top_k,
                                           use_cache=use_cache):
            yield tokenizer.chars[token]
