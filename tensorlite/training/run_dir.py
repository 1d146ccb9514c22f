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
from typing import Any, TextIO, TypeVar

import tensorlite as tl
from tensorlite import models
from tensorlite.datasets.preprocessing import Normalizer
from tensorlite.datasets.transforms import Normalize
from tensorlite.nn import Module
from tensorlite.safetensors_reader import checkpoint_error, short
from tensorlite.tensor import Tensor
from tensorlite.training.schema import SchemaError, parse
from tensorlite.utils.files import DataFileError, read_text_file, write_atomic

T = TypeVar("T")

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
    write_atomic(path, "".join(json.dumps(record, allow_nan=False) + "\n" for record in history).encode())
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


MAX_LOG_BYTES = 1 << 30  # a log.jsonl read back (for plots): a billion characters


def read_log(run_dir: str | Path) -> list[dict]:
    """The records of ``run_dir/log.jsonl`` in order. A last line cut short by a kill is left out; any
    other line that is not a JSON object is a ``DataFileError`` naming the file and line."""
    path = Path(run_dir) / LOG
    if not path.exists():
        raise FileNotFoundError(f"no training log at {path}")
    lines = [line for line in read_text_file(path, "read_log", MAX_LOG_BYTES).splitlines() if line.strip()]
    records = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):  # a write cut short by kill -9
                break
            record = None
        if not isinstance(record, dict):
            raise DataFileError(f"read_log: {path}, line {number} is not a JSON object")
        records.append(record)
    return records


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
    """Write model, optimizer, scheduler and ``train_state`` (JSON-like progress) atomically to ``path``; the
    metadata of a run of several processes records how many (``world_size``), which ``--resume`` checks."""
    from tensorlite.training import parallel

    if parallel.world_size() > 1:
        metadata = {**metadata, "world_size": parallel.world_size()}
    tl.save({**training_state(model, optimizer, scheduler), "train_state": train_state}, path, metadata=metadata)
    return path


def load_checkpoint(path: str | Path, model: Module, optimizer: Any, scheduler: Any,
                    read_state: Callable[[dict], T]) -> T:
    """Restore a ``save_checkpoint`` file onto the model's device; returns ``read_state(train_state)``.
    Whatever in the file does not fit this run (a key missing from the training state, a value of the wrong
    type, an optimizer state of another optimizer) is a ``CheckpointError`` naming the file."""
    state = tl.load(path, next(model.parameters()).device)
    try:
        restore_training_state(state, model, optimizer, scheduler)
        return read_state(state["train_state"])
    except tl.CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as exc:
        detail = " ".join(str(exc).split())
        raise checkpoint_error(path, f"its training state does not fit this run ({type(exc).__name__}: "
                                     f"{detail[:200]})") from None


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


# -- models by kind ---------------------------------------------------------------------------------------------
MAX_STATE_NUMEL = 2**31  # elements a loaded model may hold: 8 GiB of float32, 60 times nanoGPT's GPT-2 small


class RunMetadata:
    """The metadata of a run that commands read (``model_config`` aside, whose class the run names)."""

    def check(self, config: Any) -> None:
        """Rules across the metadata and its model config; a ``SchemaError`` naming the field if one fails."""


@dataclass(frozen=True)
class TaskRun(RunMetadata):
    """``mlp-task``: one of the small tasks."""

    task: str
    loss: str
    seed: int
    model_config: dict
    normalizer: Normalizer
    classes: list[str] | None = None
    optimizer: str | None = None  # recorded by runs after 0.1.0, for --resume
    lr: float | None = None

    def __post_init__(self) -> None:
        if self.optimizer not in (None, "sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {short(self.optimizer)}")
        if self.lr is not None and not 0 < self.lr < float("inf"):
            raise ValueError(f"lr must be positive and finite, got {self.lr}")
        if self.loss not in ("mse", "bce", "ce"):
            raise ValueError(f"loss must be 'mse', 'bce' or 'ce', got {short(self.loss)}")
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")

    def check(self, config: models.MLPConfig) -> None:
        n_inputs, n_outputs = config.sizes[0], config.sizes[-1]
        for name in ("shift", "scale"):
            if len(getattr(self.normalizer, name)) != n_inputs:
                raise SchemaError(f"metadata.normalizer.{name} has {len(getattr(self.normalizer, name))} values "
                                  f"for {n_inputs} inputs (model_config.sizes[0])")
        if self.classes is not None and not (len(self.classes) >= 2 if n_outputs == 1
                                             else len(self.classes) == n_outputs):
            raise SchemaError(f"metadata.classes names {len(self.classes)} classes for {n_outputs} output(s) "
                              "(model_config.sizes[-1]: one output scores two or more classes, more outputs "
                              "one class each)")


@dataclass(frozen=True)
class MNISTRun(RunMetadata):
    """``mnist-mlp`` / ``mnist-cnn``."""

    kind: str
    model_config: dict
    recipe: dict
    normalize: Normalize
    classes: list[str]
    seed: int


@dataclass(frozen=True)
class TokenizerState:
    """A ``CharTokenizer.to_dict()``: the vocabulary in id order, each character once."""

    chars: str

    def __post_init__(self) -> None:
        if len(set(self.chars)) != len(self.chars):
            raise ValueError("chars must name each character once")


@dataclass(frozen=True)
class CharLMRun(RunMetadata):
    """``char-lm``: a character GPT or LSTM."""

    model: str
    model_config: dict
    tokenizer: TokenizerState

    def __post_init__(self) -> None:
        if self.model not in LANGUAGE_MODELS:
            raise ValueError(f"model must be one of {', '.join(LANGUAGE_MODELS)}, got {short(self.model)}")

    def check(self, config: models.GPTConfig | models.CharLSTMConfig) -> None:
        if len(self.tokenizer.chars) != config.vocab_size:
            raise SchemaError(f"metadata.tokenizer holds {len(self.tokenizer.chars)} characters, "
                              f"model_config.vocab_size is {config.vocab_size}")


@dataclass(frozen=True)
class ModelKind:
    """A checkpoint kind: how messages name it, the schema of its metadata, and the model and config classes a
    run's metadata names."""

    description: str
    schema: type[RunMetadata]
    architecture: Callable[[Any], tuple[type[Module], type]]


MODEL_KINDS = {
    "mlp-task": ModelKind("one of the small tasks", TaskRun, lambda run: (models.MLP, models.MLPConfig)),
    "mnist-mlp": ModelKind("mnist-mlp", MNISTRun, lambda run: MNIST_MODELS[run.kind]),
    "mnist-cnn": ModelKind("mnist-cnn", MNISTRun, lambda run: MNIST_MODELS[run.kind]),
    "char-lm": ModelKind("a character language model", CharLMRun, lambda run: LANGUAGE_MODELS[run.model]),
}


def check_kind(path: Path, metadata: dict, kinds: Collection[str]) -> str:
    """The ``kind`` in a checkpoint's metadata, or a ``CheckpointError`` naming it and the kinds expected."""
    kind = metadata.get("kind")
    if kind not in kinds:
        expected = " or ".join(MODEL_KINDS[k].description if k in MODEL_KINDS else repr(k) for k in kinds)
        raise tl.CheckpointError(f"{path} holds a {short(kind or 'unknown')} checkpoint, not {expected}")
    return kind


def read_metadata(path: Path, schema: type[T], value: Any, name: str, ignore_unknown: bool = False) -> T:
    """``schema.parse`` of a checkpoint's metadata (or a field of it), a ``CheckpointError`` naming ``path``
    and the field otherwise."""
    try:
        return parse(schema, value, name, ignore_unknown)
    except SchemaError as exc:
        raise checkpoint_error(path, str(exc)) from None


def check_model_metadata(path: Path, metadata: dict, kind: str) -> tuple[type[Module], Any]:
    """The model class and config a checkpoint's metadata describes, checked against its kind's schema and
    bounded by ``MAX_STATE_NUMEL`` before anything is allocated."""
    run = read_metadata(path, MODEL_KINDS[kind].schema, metadata, "metadata", ignore_unknown=True)
    model_class, config_class = MODEL_KINDS[kind].architecture(run)
    config = read_metadata(path, config_class, run.model_config, "metadata.model_config")
    if config.state_dict_numel() > MAX_STATE_NUMEL:
        raise checkpoint_error(path, f"its model_config describes a model of {config.state_dict_numel():,} "
                                     f"elements, more than the {MAX_STATE_NUMEL:,} allowed")
    try:
        run.check(config)
    except SchemaError as exc:
        raise checkpoint_error(path, str(exc)) from None
    return model_class, config


def model_state(path: Path, checkpoint: Any, config: Any) -> dict[str, Tensor]:
    """The ``"model"`` state dict of a loaded checkpoint, which must be tensors holding as many elements as
    ``config`` describes (so that building the model allocates no more than the file held)."""
    weights = checkpoint.get("model") if isinstance(checkpoint, dict) else None
    if not isinstance(weights, dict) or not all(isinstance(value, Tensor) for value in weights.values()):
        raise checkpoint_error(path, "it holds no 'model' state dict of tensors")
    numel = sum(value.numel() for value in weights.values())
    if numel != config.state_dict_numel():
        raise checkpoint_error(path, f"its model state holds {numel:,} elements, its model_config describes "
                                     f"{config.state_dict_numel():,}")
    return weights


def load_model(path: str | Path, device: str | tl.Device | None = None,
               kinds: Collection[str] = tuple(MODEL_KINDS)) -> tuple[Module, dict]:
    """The model (in eval mode, on ``device``) and metadata of a checkpoint file or run directory whose
    kind is one of ``kinds``. The metadata is checked (``check_model_metadata``) before the tensors are read,
    and the tensors against the model as it is loaded: anything amiss is a ``CheckpointError``."""
    path = resolve_checkpoint(path)
    metadata = tl.load_metadata(path)
    model_class, config = check_model_metadata(path, metadata, check_kind(path, metadata, kinds))
    target = tl.device(device)
    weights = model_state(path, tl.load(path), config)  # on the host: load_state_dict copies only the model's
    model = model_class(config).to(target)
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:  # a key missing or unexpected, a shape that does not fit: the message names them
        raise checkpoint_error(path, "; ".join(line.strip() for line in str(exc).splitlines())) from None
    return model.eval(), metadata
