"""Files that users name: read only regular ones, of bounded size, with errors naming the file; write
them atomically and durably.

A path given on a command line may be a directory, a FIFO (a reader blocks until someone writes)
or a device such as ``/dev/zero`` (endless). ``stat`` tells them apart before anything is opened;
the open file is checked again, so a path swapped for a FIFO in between cannot hang the reader.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20  # bytes per read: memory grows with what a file holds, never with what it claims


class DataFileError(ValueError):
    """A data file that cannot be used: not a regular file, too large, or not in the expected format."""


def _kind(mode: int) -> str | None:
    """What a non-regular file is ("a directory", "a FIFO", ...), or None for a regular file."""
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def _check(status: os.stat_result, path: str | Path, what: str, error: type[Exception],
           max_bytes: int | None) -> None:
    kind = _kind(status.st_mode)
    if kind is not None:
        raise error(f"{what}: {path} is {kind}, expected a regular file")
    if max_bytes is not None and status.st_size > max_bytes:
        raise error(f"{what}: {path} is {status.st_size:,} bytes, more than the {max_bytes:,} allowed")


def require_regular_file(path: str | Path, what: str, error: type[Exception] = DataFileError,
                         max_bytes: int | None = None) -> os.stat_result:
    """``stat`` of ``path`` if it is a regular file of at most ``max_bytes``; else ``error`` (or
    ``FileNotFoundError``) whose message starts with ``what`` (the reader, e.g. ``"load_iris"``)."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{what}: no such file {path}") from None
    _check(status, path, what, error, max_bytes)
    return status


def open_regular_file(path: str | Path, what: str, error: type[Exception] = DataFileError,
                      max_bytes: int | None = None) -> BinaryIO:
    """``path`` opened for binary reading after ``require_regular_file``; never blocks on a FIFO."""
    require_regular_file(path, what, error, max_bytes)
    file = os.fdopen(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb")
    try:
        _check(os.fstat(file.fileno()), path, what, error, max_bytes)
    except BaseException:
        file.close()
        raise
    return file


def read_at_most(stream: BinaryIO, n: int) -> bytearray:
    """Up to ``n`` bytes of ``stream`` (fewer at its end), read in chunks: a stream that claims more
    than it holds, or holds more than wanted, costs only what is actually read."""
    buffer = bytearray()
    while len(buffer) < n and (chunk := stream.read(min(CHUNK, n - len(buffer)))):
        buffer += chunk
    return buffer


def read_regular_file(path: str | Path, what: str, max_bytes: int, error: type[Exception] = DataFileError) -> bytearray:
    """The bytes of the regular file at ``path``, refused (``error``) beyond ``max_bytes``, even if it grows
    while being read."""
    with open_regular_file(path, what, error, max_bytes) as file:
        data = read_at_most(file, max_bytes + 1)
    if len(data) > max_bytes:
        raise error(f"{what}: {path} holds more than the {max_bytes:,} bytes allowed")
    return data


def read_text_file(path: str | Path, what: str, max_bytes: int, encoding: str = "utf-8",
                   error: type[Exception] = DataFileError) -> str:
    """``read_regular_file`` decoded from ``encoding``; undecodable bytes are an ``error`` giving their offset."""
    try:
        return read_regular_file(path, what, max_bytes, error).decode(encoding)
    except UnicodeDecodeError as exc:
        raise error(f"{what}: {path} is not {encoding} text ({exc.reason} at byte {exc.start})") from None


def fsync_directory(directory: str | Path) -> None:
    """Make a rename in ``directory`` survive a crash (POSIX; on Windows a directory cannot be opened)."""
    if os.name == "posix":
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove_orphans(folder: str, name: str) -> None:
    """Delete the temp files that writes to ``folder/name`` killed mid-way left behind."""
    orphan = re.compile(re.escape(f".{name}.") + r"[0-9a-f]{8}\.tmp")  # the temp name ``write_atomic`` makes
    for entry in os.listdir(folder):
        if orphan.fullmatch(entry):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(folder, entry))


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash at any moment leaves the old file or the new one, whole.

    The bytes go to ``.<name>.<8 hex digits>.tmp`` beside ``path`` (same folder: the rename is atomic), which
    is fsynced, renamed over ``path``, then the folder fsynced so the rename survives a power loss. A failed
    write (a full disk) removes its temp file; one a kill left behind is removed by the next write to ``path``.
    Two processes writing one path at the same time are not supported."""
    folder, name = os.path.split(os.path.abspath(path))
    _remove_orphans(folder, name)
    temp = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temp)
        raise
    fsync_directory(folder)
