"""How the ``tensorlite`` command ends when something goes wrong: the exit status of each kind of error,
written once, and the one line (or, with ``--debug``, the traceback) that says why.

| status | cause                                                                                          |
|--------|------------------------------------------------------------------------------------------------|
| 2      | bad input: an option or argument (``UsageError``, typer's own usage errors), a checkpoint or   |
|        | data file that cannot be used (``CheckpointError``, ``DataFileError``, ``MNISTError``), a path |
|        | the user named that is missing, a directory, not one, or not permitted                         |
| 1      | a failed run: a ``RuntimeError`` (such as a non-finite loss), ``MemoryError``, any other error |
| 130    | Ctrl-C outside a training loop (the loops handle it themselves and exit 0)                     |

When several processes train together (``mpiexec -n N tensorlite train ...``), the message names the rank
that failed, and ``end_other_ranks`` then ends the whole job with that status (MPI_Abort) instead of leaving
the other ranks waiting for this one in their next collective.
"""

from __future__ import annotations

import traceback

import typer

from tensorlite.cli.options import UsageError
from tensorlite.serialization import CheckpointError
from tensorlite.utils.files import DataFileError  # MNISTError is one

BAD_INPUT = 2
FAILED_RUN = 1
INTERRUPTED = 130  # 128 + SIGINT, as shells report it
# errors of a path the user named (the command line's paths are the only ones a command opens)
PATH_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)


def exit_status(error: BaseException) -> int:
    """The status the command exits with after ``error``, following the table above."""
    if _is_typer_error(error):
        return error.exit_code  # type: ignore[attr-defined]
    return BAD_INPUT if isinstance(error, (UsageError, CheckpointError, DataFileError, *PATH_ERRORS)) else FAILED_RUN


def report(error: BaseException, debug: bool) -> int:
    """Print ``error`` on stderr as one line (its traceback with ``debug``); return ``exit_status(error)``."""
    if type(error).__name__ == "NoArgsIsHelpError":  # a command run without arguments: typer printed its help
        return error.exit_code  # type: ignore[attr-defined]
    if isinstance(error, KeyboardInterrupt) or type(error).__name__ == "Abort":  # Ctrl-C (click calls it Abort)
        typer.secho("interrupted", fg=typer.colors.RED, err=True)
        return INTERRUPTED
    if debug:
        traceback.print_exception(type(error), error, error.__traceback__)
    else:
        text = error.format_message() if _is_typer_error(error) else str(error)  # type: ignore[attr-defined]
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        typer.secho(f"error{_rank_label()}: {'; '.join(lines) or type(error).__name__}", fg=typer.colors.RED,
                    err=True)
    return exit_status(error)


def _rank_label() -> str:
    """`` (rank 1 of 2)`` when several processes train together, else nothing."""
    from tensorlite import distributed as dist

    if not dist.is_initialized() or dist.get_world_size() == 1:
        return ""
    return f" (rank {dist.get_rank()} of {dist.get_world_size()})"


def end_other_ranks(status: int) -> None:
    """After a failure (``status`` not 0) on one of several ranks, end them all with ``status`` (MPI_Abort)."""
    from tensorlite import distributed as dist

    if status and dist.is_initialized() and dist.get_world_size() > 1:
        dist.abort(status)


def _is_typer_error(error: BaseException) -> bool:
    """A usage error of typer's click (bad option value, unknown command...), which carries its exit status.
    Told by its methods: typer vendors click since 0.2x, so its classes have no import path stable across
    the versions tensorlite supports."""
    return callable(getattr(error, "format_message", None)) and isinstance(getattr(error, "exit_code", None), int)
