"""Checks of command-line options, written once for every command; each failure names the option.

A ``UsageError`` is a problem with what the user asked for; the app prints it as one line.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from pathlib import Path
from typing import Any

from tensorlite.training import run_dir


class UsageError(ValueError):
    """A problem with what the user asked for (shown without a traceback by the CLI)."""


def option_name(field: str) -> str:
    """``"batch_size"`` -> ``"--batch-size"``; the learning rate's option is ``--lr``."""
    return "--" + {"learning_rate": "lr"}.get(field, field).replace("_", "-")


def check_positive(option: str, value: float) -> None:
    if not value > 0:
        raise UsageError(f"{option} must be positive, got {value}")


def check_learning_rate(lr: float) -> None:
    if not (lr > 0 and math.isfinite(lr)):
        raise UsageError(f"--lr: the learning rate must be positive, got {lr}")


def check_choice(option: str, what: str, value: str, choices: Collection[str]) -> None:
    if value not in choices:
        raise UsageError(f"{option}: unknown {what} {value!r}: expected one of {', '.join(choices)}")


def checkpoint_to_resume(out_dir: Path, kind: str) -> dict[str, Any]:
    """The metadata of the checkpoint ``--resume`` continues from, which must exist and hold a ``kind`` model."""
    try:
        return run_dir.checkpoint_to_resume(out_dir, kind)
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(f"--resume: {exc}") from None


def check_out_dir(out_dir: Path, kind: str, resume: bool, overwrite: bool) -> dict[str, Any] | None:
    """With ``--resume``, the metadata of the checkpoint to continue from; otherwise None, once ``--out`` is
    known to hold no run of another kind (or ``--overwrite`` replaces it)."""
    if resume and overwrite:
        raise UsageError("--resume continues the run in --out and --overwrite replaces it: give one of them")
    if resume:
        return checkpoint_to_resume(out_dir, kind)
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
    if any(n <= 0 for n in sizes):
        raise UsageError(f"--hidden: layer sizes must be positive, got {spec!r}")
    return sizes
