"""The run directory: what a training run leaves on disk, and how to read it back.

    <out_dir>/checkpoint.safetensors   the latest state (written by both trainers)
    <out_dir>/best.safetensors         the state with the lowest val loss (iteration-based runs)
    <out_dir>/log.jsonl                one JSON record per epoch (or per evaluation)

A checkpoint holds ``{"model", "optimizer", "scheduler", "train_state"}`` (state dicts; the
scheduler's may be None) and JSON metadata whose ``kind`` names the model family: ``mlp-task``
(``model_config``: ``MLPConfig`` fields), ``mnist-mlp`` / ``mnist-cnn`` (``model_config``) or
``char-lm`` (``model``: ``"gpt"`` or ``"lstm"``, ``model_config``, ``tokenizer``). ``load_model``
builds the model for a kind from ``MODEL_KINDS``, so one function loads every checkpoint tensorlite
has written, including those written before this package existed (the layout is unchanged).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import tensorlite as tl
from tensorlite import models
from tensorlite.nn import Module

CHECKPOINT = "checkpoint.safetensors"
BEST = "best.safetensors"
LOG = "log.jsonl"

# model type of a ``char-lm`` checkpoint -> (model class, config class)
LANGUAGE_MODELS = {"gpt": (models.GPT, models.GPTConfig), "lstm": (models.CharLSTM, models.CharLSTMConfig)}
# kind of an MNIST checkpoint -> (model class, config class)
MNIST_MODELS = {"mnist-mlp": (models.MNISTMLP, models.MNISTMLPConfig),
                "mnist-cnn": (models.MNISTCNN, models.MNISTCNNConfig)}


# -- the log ------------------------------------------------------------------------------------------------
def open_log(out_dir: Path | None, history: list[dict], note: Callable[[str], None] = print) -> TextIO:
    """The JSONL log, rewritten from ``history`` (the checkpointed records) so that it never runs ahead of
    the checkpoint; ``note`` tells how many records a log that did run ahead lost. A sink that discards
    everything when there is no ``out_dir``.

    The rewrite goes to a temporary file renamed over the log, so a kill leaves the old log or the new one.
    """
    if out_dir is None:
        return open(os.devnull, "w")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / LOG
    if path.exists():
        with path.open() as old:
            ahead = sum(1 for line in old if line.strip()) - len(history)
        if ahead > 0:
            note(f"{path} ran {ahead} record{'s' if ahead > 1 else ''} ahead of the checkpoint (a run stopped "
                 f"between saves): dropped them, the run continues from the checkpoint")
    rewritten = path.with_name(LOG + ".tmp")
    with rewritten.open("w") as log:
        for record in history:
            append_record(log, record)
    os.replace(rewritten, path)
    return path.open("a")


def finite_or_null(record: dict) -> dict:
    """``record`` with NaN and infinity as None (null in JSON, which has neither), as the log and the
    checkpoint's history hold it."""
    return {key: None if isinstance(value, float) and not math.isfinite(value) else value
            for key, value in record.items()}


def append_record(log: TextIO, record: dict) -> None:
    """One JSON line, flushed so that a crash or Ctrl-C loses nothing already logged."""
    log.write(json.dumps(record, allow_nan=False) + "\n")
    log.flush()


def read_log(run_dir: str | Path) -> list[dict]:
    """The records of ``run_dir/log.jsonl`` in order."""
    path = Path(run_dir) / LOG
    if not path.exists():
        raise FileNotFoundError(f"no training log at {path}")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# -- checkpoints ----------------------------------------------------------------------------------------------
def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file as given, or for a run directory its best checkpoint if it has one, else its latest."""
    path = Path(path)
    if path.is_dir():
        path = path / BEST if (path / BEST).exists() else path / CHECKPOINT
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    return path


def training_state(model: Module, optimizer: Any, scheduler: Any) -> dict:
    """The model's, optimizer's and scheduler's state dicts (live tensors, not copies)."""
    return {"model": dict(model.state_dict()), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None}


def restore_training_state(state: dict, model: Module, optimizer: Any, scheduler: Any) -> None:
    """Load what ``training_state`` returned (or a checkpoint holds) back into the three objects."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])


def save_checkpoint(path: Path, model: Module, optimizer: Any, scheduler: Any, train_state: dict,
                    metadata: dict) -> Path:
    """Write model, optimizer, scheduler and ``train_state`` (JSON-like progress) atomically to ``path``."""
    tl.save({**training_state(model, optimizer, scheduler), "train_state": train_state}, path, metadata=metadata)
    return path


def load_checkpoint(path: str | Path, model: Module, optimizer: Any, scheduler: Any) -> dict:
    """Restore a ``save_checkpoint`` file onto the model's device; returns its ``train_state``."""
    state = tl.load(path, next(model.parameters()).device)
    restore_training_state(state, model, optimizer, scheduler)
    return state["train_state"]


def checkpoint_to_resume(out_dir: str | Path, kind: str) -> dict:
    """The metadata of ``out_dir``'s latest checkpoint, which must exist and hold a ``kind`` model."""
    path = Path(out_dir) / CHECKPOINT
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint to resume from at {path}")
    metadata = tl.load_metadata(path)
    check_kind(path, metadata, [kind])
    return metadata


RUN_FILES = (LOG, BEST, CHECKPOINT)  # removed in this order, so a kill midway never leaves a log without a checkpoint


def check_out_dir(out_dir: Path, kind: str | None, overwrite_hint: str = "overwrite=True") -> None:
    """Refuse an ``out_dir`` whose checkpoint belongs to another ``kind`` of run, or cannot be read
    (``FileExistsError`` naming the directory, what it holds and ``overwrite_hint``, how to replace it)."""
    for name in (CHECKPOINT, BEST):
        path = out_dir / name
        if not path.exists():
            continue
        try:
            held = tl.load_metadata(path).get("kind")
        except (ValueError, OSError) as exc:
            raise FileExistsError(f"{out_dir} holds a checkpoint that cannot be read ({exc}); {overwrite_hint} "
                                  f"replaces that run") from None
        if held != kind:
            raise FileExistsError(f"{out_dir} holds a {held!r} run ({name}), not a {kind!r} one; {overwrite_hint} "
                                  f"replaces it (removing its {', '.join(RUN_FILES)})")
        return


def start_run(out_dir: Path | None, kind: str | None, resume: bool = False, overwrite: bool = False) -> None:
    """Make ``out_dir`` ready for a new run of ``kind`` (nothing to do when resuming or without one): refuse
    one holding another kind of run (see ``check_out_dir``) unless ``overwrite``, then remove the previous
    run's files so that none of them (an old ``best``, say) mixes with the new run."""
    if resume and overwrite:
        raise ValueError("resume continues the run in out_dir and overwrite replaces it: pass one of them")
    if resume or out_dir is None:
        return
    if not overwrite:
        check_out_dir(out_dir, kind)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        (out_dir / name).unlink(missing_ok=True)


# -- models by kind -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelKind:
    """How to name a checkpoint kind in messages, and how to build its (untrained) model from the metadata."""

    description: str
    build: Callable[[dict], Module]


def _mlp(metadata: dict) -> Module:
    return models.MLP(models.MLPConfig(**metadata["model_config"]))


def _mnist(metadata: dict) -> Module:
    model_class, config_class = MNIST_MODELS[metadata["kind"]]
    return model_class(config_class(**metadata["model_config"]))


def _char_lm(metadata: dict) -> Module:
    model_class, config_class = LANGUAGE_MODELS[metadata["model"]]
    return model_class(config_class(**metadata["model_config"]))


MODEL_KINDS = {
    "mlp-task": ModelKind("one of the small tasks", _mlp),
    "mnist-mlp": ModelKind("mnist-mlp", _mnist),
    "mnist-cnn": ModelKind("mnist-cnn", _mnist),
    "char-lm": ModelKind("a character language model", _char_lm),
}


def check_kind(path: Path, metadata: dict, kinds: Collection[str]) -> str:
    """The ``kind`` in a checkpoint's metadata, or an error naming it and the kinds expected."""
    kind = metadata.get("kind")
    if kind not in kinds:
        expected = " or ".join(MODEL_KINDS[k].description if k in MODEL_KINDS else repr(k) for k in kinds)
        raise ValueError(f"{path} holds a {kind or 'unknown'!r} checkpoint, not {expected}")
    return kind


def load_model(path: str | Path, device: str | tl.Device | None = None,
               kinds: Collection[str] = tuple(MODEL_KINDS)) -> tuple[Module, dict]:
    """The model (in eval mode, on ``device``) and metadata of a checkpoint file or run directory whose
    kind is one of ``kinds``."""
    path = resolve_checkpoint(path)
    metadata = tl.load_metadata(path)
    kind = check_kind(path, metadata, kinds)
    target = tl.device(device)
    model = MODEL_KINDS[kind].build(metadata).to(target)
    model.load_state_dict(tl.load(path, target)["model"])
    return model.eval(), metadata
