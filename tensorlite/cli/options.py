"""Checks of command-line options, written once for every command; each failure names the option.

A ``UsageError`` is a problem with what the user asked for; the app prints it as one line and exits with
status 2. The family modules run these checks (they are callable from Python too), before anything is
allocated or written. Counts and sizes are bounded far above any run tensorlite is meant for, so that a
typo (an extra zero) is refused in a second instead of running out of memory or for years (``RANGES``):

- 1 .. 10^7: ``--epochs``, ``--max-iters``, ``--eval-interval``, ``--eval-iters``, ``--patience``,
  ``--max-new-tokens``; 0 .. 10^7: ``--warmup-iters``;
- 1 .. 65,536: ``--batch-size``, ``--block-size``, each ``--hidden`` size, ``--n-embd``, ``--n-head``,
  ``--hidden-size``; 0 .. 65,536: ``--top-k``;
- 1 .. 1,024: ``--n-layer``, ``--num-layers``;
- 0 .. 2^63 - 1: ``--seed``;
- and the model the options make holds at most ``run_dir.MAX_STATE_NUMEL`` (2^31) elements, what a checkpoint
  may hold.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from pathlib import Path
from typing import Any

import tensorlite as tl
from tensorlite.training import run_dir

MAX_STEPS = 10**7
MAX_WIDTH = 2**16
MAX_LAYERS = 1024
MAX_SEED = 2**63 - 1
# an integer option, by parameter name -> (smallest, largest) value allowed
RANGES = {
    **{name: (1, MAX_STEPS) for name in ("epochs", "max_iters", "eval_interval", "eval_iters", "patience",
                                         "max_new_tokens")},
    "warmup_iters": (0, MAX_STEPS),
    **{name: (1, MAX_WIDTH) for name in ("batch_size", "block_size", "hidden", "n_embd", "n_head", "hidden_size")},
    "n_layer": (1, MAX_LAYERS),
    "num_layers": (1, MAX_LAYERS),
    "seed": (0, MAX_SEED),
    "top_k": (0, MAX_WIDTH),
}


class UsageError(ValueError):
    """A problem with what the user asked for (shown without a traceback by the CLI)."""


def option_name(field: str) -> str:
    """``"batch_size"`` -> ``"--batch-size"``; the learning rate's option is ``--lr``."""
    return "--" + {"learning_rate": "lr"}.get(field, field).replace("_", "-")


def check_range(name: str, value: int) -> None:
    """The integer option ``name`` (a parameter name, e.g. ``"batch_size"``) lies within its ``RANGES``."""
    low, high = RANGES[name]
    if not low <= value <= high:
        raise UsageError(f"{option_name(name)} must be between {low:,} and {high:,}, got {value}")


def check_positive(option: str, value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise UsageError(f"{option} must be a positive number, got {value}")


def check_choice(option: str, what: str, value: str, choices: Collection[str]) -> None:
    if value not in choices:
        raise UsageError(f"{option}: unknown {what} {value!r}: expected one of {', '.join(choices)}")


def check_model_size(config: Any, options: str) -> None:
    """The model ``config`` describes fits in a checkpoint (``run_dir.MAX_STATE_NUMEL`` elements)."""
    if config.state_dict_numel() > run_dir.MAX_STATE_NUMEL:
        raise UsageError(f"{options}: the model would hold {config.state_dict_numel():,} elements, more than the "
                         f"{run_dir.MAX_STATE_NUMEL:,} a checkpoint may hold")


def parse_device(device: str | None) -> tl.Device:
    """``--device`` as a device (None: the default one), which must exist here."""
    try:
        return tl.device(device)
    except (ValueError, TypeError, RuntimeError, ImportError) as exc:
        raise UsageError(f"--device: {exc}") from None


def out_dir(out: str | Path | None, default: Path) -> Path:
    """The run directory ``--out`` names (``default`` if not given): not empty, and a directory if it exists."""
    if out is None:
        return default
    if not str(out).strip():
        raise UsageError(f"--out is empty: give a run directory, e.g. {default}")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out: {path} exists and is not a directory")
    return path


def make_out_dir(path: Path) -> None:
    """Create the run directory (once every other option is checked, so that a refused run leaves nothing)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out: cannot create the run directory {path}: {exc.strerror or exc}") from None


def checkpoint_to_resume(out_dir: Path, kind: str) -> dict[str, Any]:
    """The metadata of the checkpoint ``--resume`` continues from, which must exist and load as a ``kind`` model
    (checked as ``eval`` checks it, before the run touches anything)."""
    try:
        metadata = run_dir.checkpoint_to_resume(out_dir, kind)
        run_dir.load_model(out_dir / run_dir.CHECKPOINT, "cpu", kinds=[kind])
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(f"--resume: {exc}") from None
    return metadata


def check_same_model(saved: dict, config: Any, out: Path) -> None:
    """``--resume`` continues the model in ``out`` (its ``model_config``), not one the options describe."""
    saved_config, wanted = saved["model_config"], config.to_dict()
    for field in wanted:
        if saved_config.get(field) != wanted[field]:
            raise UsageError(f"--resume: the run in {out} trains a model with {field} {saved_config.get(field)}, "
                             f"not {wanted[field]} as these options make it")


def check_resumed(saved: dict[str, Any], chosen: dict[str, Any], out: Path) -> None:
    """``--resume`` continues the run in ``out`` as it was recorded (``saved``, its metadata or model config):
    every option given (not None) that the run recorded must have the recorded value."""
    for field, value in chosen.items():
        if value is not None and field in saved and saved[field] != value:
            raise UsageError(f"--resume: the run in {out} was trained with {field} {saved[field]!r}, not {value!r} "
                             "as these options ask; leave the option out, or train a new run")


def check_world_size(saved: dict[str, Any], out: Path) -> None:
    """``--resume`` continues a run on as many processes as trained it (its global batch, and its schedule's steps
    per epoch, depend on that number)."""
    from tensorlite.training import parallel

    trained, now = saved.get("world_size", 1), parallel.world_size()
    if trained != now:
        how = f"under mpiexec -n {trained}" if trained > 1 else "as one process (without mpiexec)"
        raise UsageError(f"--resume: the run in {out} was trained by {trained} process(es), this is {now}: resume it "
                         f"{how}, or train a new run")


def check_out_dir(out_dir: Path, kind: str, resume: bool, overwrite: bool) -> dict[str, Any] | None:
    """With ``--resume``, the metadata of the checkpoint to continue from; otherwise None, once ``--out`` is
    known to hold no run of another kind (or ``--overwrite`` replaces it)."""
    if resume and overwrite:
        raise UsageError("--resume continues the run in --out and --overwrite replaces it: give one of them")
    if resume:
        metadata = checkpoint_to_resume(out_dir, kind)
        check_world_size(metadata, out_dir)
        return metadata
    if not overwrite:
        try:
            run_dir.check_out_dir(out_dir, kind, "--overwrite")
        except FileExistsError as exc:
            raise UsageError(f"--out: {exc}") from None
    return None


def parse_hidden(spec: str) -> tuple[int, ...]:
    """``"3"`` -> (3,), ``"16,16"`` -> (16, 16), ``""``/``"none"`` -> () (no hidden layer)."""
    if spec.strip().lower() in ("", "none", "0"):
        return ()
    try:
        sizes = tuple(int(part) for part in spec.split(","))
    except ValueError:
        raise UsageError(f"--hidden: bad layer spec {spec!r}: expected sizes separated by commas, e.g. 16,16") from None
    for size in sizes:
        check_range("hidden", size)
    return sizes
