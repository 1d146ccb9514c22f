"""Hostile and careless data-set files: directories, FIFOs, devices, oversized or malformed text, Iris CSVs
with short rows, NaN or a BOM, MNIST gzip bombs, and the downloader's writes when the disk is full.

Every case is a one-line error naming the file (a ``DataFileError``, a ``ValueError``), never a hang,
a traceback from deep inside, or memory that grows with what a file claims.
"""

from __future__ import annotations

import errno
import gzip
import io
import os
import signal
import stat
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tensorlite.datasets import iris, mnist, text
from tensorlite.datasets.iris import load_iris
from tensorlite.datasets.mnist import IMAGE_MAGIC, LABEL_MAGIC, MNISTError, read_idx
from tensorlite.datasets.text import load_shakespeare
from tensorlite.utils import files
from tensorlite.utils.files import DataFileError, open_regular_file, read_regular_file

HEADER = "sepal_length,sepal_width,petal_length,petal_width,species\n"


@pytest.fixture(autouse=True)
def _no_hang() -> Iterator[None]:
    """A FIFO opened for reading blocks forever: fail after 10 s instead."""
    def timeout(*_: object) -> None:
        raise TimeoutError("blocked: a FIFO was opened for reading")

    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


def idx(dims: tuple[int, ...], magic: int, data: bytes) -> bytes:
    return magic.to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in dims) + data


# -- the shared check: regular files only, bounded size -------------------------------------------------
@pytest.mark.parametrize("load", [load_shakespeare, load_iris, lambda p: read_idx(p, IMAGE_MAGIC)],
                         ids=["text", "iris", "mnist"])
def test_directories_and_fifos_are_refused_naming_the_file(load, tmp_path: Path, fifo: Path) -> None:
    for path, kind in ((tmp_path, "a directory"), (fifo, "a FIFO")):
        with pytest.raises(DataFileError, match=f"{path} is {kind}, expected a regular file"):
            load(path)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_dev_zero_is_refused_before_it_is_read() -> None:
    with pytest.raises(DataFileError, match="/dev/zero is a character device, expected a regular file"):
        load_shakespeare("/dev/zero")


def test_a_fifo_swapped_in_after_the_stat_is_caught_on_the_open_file(monkeypatch, fifo: Path) -> None:
    """Without the first check, the open must not block and the second check must refuse it."""
    monkeypatch.setattr(files, "require_regular_file", lambda *args: None)
    with pytest.raises(DataFileError, match="is a FIFO"):
        open_regular_file(fifo, "reader")


def test_missing_files_are_file_not_found_errors(tmp_path: Path) -> None:
    for load in (load_shakespeare, load_iris):
        with pytest.raises(FileNotFoundError, match=f"no such file {tmp_path / 'nope'}"):
            load(tmp_path / "nope")


def test_size_limits_are_checked_before_reading(monkeypatch, tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_text("x" * 11)
    monkeypatch.setattr(text, "TEXT_MAX_BYTES", 10)
    with pytest.raises(DataFileError, match=f"{path} is 11 bytes, more than the 10 allowed"):
        load_shakespeare(path)
    monkeypatch.setattr(iris, "IRIS_MAX_BYTES", 10)
    with pytest.raises(DataFileError, match="more than the 10 allowed"):
        load_iris(path)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="no /proc")
def test_reads_stop_at_the_limit_when_the_size_lies() -> None:
    """/proc files are regular files of size 0 that hold more: the read itself is bounded."""
    assert os.stat("/proc/self/status").st_size == 0
    with pytest.raises(DataFileError, match="holds more than the 10 bytes allowed"):
        read_regular_file("/proc/self/status", "reader", max_bytes=10)


# -- text (--data FILE) ---------------------------------------------------------------------------------
@pytest.mark.parametrize("content, message", [
    (b"caf\xe9 au lait", "is not utf-8 text (invalid continuation byte at byte 3)"),
    (b"", "is empty, expected text"),
], ids=["latin-1", "empty"])
def test_bad_text_files_are_data_file_errors(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "input.txt"
    path.write_bytes(content)
    with pytest.raises(DataFileError) as error:
        load_shakespeare(path)
    assert str(error.value) == f"load_shakespeare: {path} {message}"
    assert isinstance(error.value, ValueError)


def test_text_newlines_are_read_as_in_text_mode(tmp_path: Path) -> None:
    path = tmp_path / "dos.txt"
    path.write_bytes(b"to be\r\nor not\rto be\n")
    assert load_shakespeare(path) == "to be\nor not\nto be\n"


# -- Iris -----------------------------------------------------------------------------------------------
def write(tmp_path: Path, content: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / "iris.csv"
    path.write_bytes(content.encode(encoding))
    return path


@pytest.mark.parametrize("rows, message", [
    ("1,2,3,4,Iris-setosa\n1,2,3,Iris-setosa\n", "line 3: bad row: 4 fields, expected 5"),
    ("1,2,3,4,Iris-setosa,extra\n", "line 2: bad row: 6 fields, expected 5"),
    ("1,2,nan,4,Iris-setosa\n", "line 2: bad row: petal_length is 'nan', expected a finite float32 number"),
    ("1,2,3,inf,Iris-setosa\n", "line 2: bad row: petal_width is 'inf', expected a finite"),
    ("-Infinity,2,3,4,Iris-setosa\n", "line 2: bad row: sepal_length is '-Infinity'"),
    ("1e39,2,3,4,Iris-setosa\n", "line 2: bad row: sepal_length is '1e39'"),  # finite in float64, not float32
    ("1,,3,4,Iris-setosa\n", "line 2: bad row: sepal_width is ''"),
    ("1,2,3,4,Iris-rosea\n", "line 2: bad row: species 'Iris-rosea', expected one of Iris-setosa"),
    ('1,2,3,4,"' + "a" * 200_000 + '"\n', "line 2: not CSV (field larger than field limit"),
    ("", "has a header but no rows"),
], ids=["short", "long", "nan", "inf", "-inf", "float32-overflow", "empty-field", "species", "huge-field",
        "no-rows"])
def test_bad_iris_rows_name_the_file_and_line(tmp_path: Path, rows: str, message: str) -> None:
    path = write(tmp_path, HEADER + rows)
    with pytest.raises(DataFileError) as error:
        load_iris(path)
    assert str(error.value).startswith(f"load_iris: {path}")
    assert message in str(error.value)


def test_iris_accepts_a_bom_blank_lines_and_any_column_order(tmp_path: Path) -> None:
    path = write(tmp_path, "species,petal_width,petal_length,sepal_width,sepal_length\r\n"
                           "Iris-virginica,4,3,2,1\r\n\r\nIris-setosa, 8 ,7,6,5\r\n\r\n", encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    x, y = load_iris(path)
    np.testing.assert_array_equal(x, [[1, 2, 3, 4], [5, 6, 7, 8]])
    np.testing.assert_array_equal(y, [2, 0])


def test_iris_rejects_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "iris.csv"
    path.write_bytes(HEADER.encode() + b"1,2,3,4,Iris-s\xe9tosa\n")
    with pytest.raises(DataFileError, match=f"load_iris: {path} is not utf-8-sig text"):
        load_iris(path)


# -- MNIST: decompression bounded by the header ---------------------------------------------------------
def test_a_gzip_bomb_fails_after_reading_what_the_header_declares(monkeypatch, tmp_path: Path) -> None:
    """Two labels declared, 32 MiB delivered (32 KiB gzipped): the reader stops at 3 bytes of data."""
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx((2,), LABEL_MAGIC, bytes(32 << 20)), compresslevel=9))
    assert path.stat().st_size < 100_000
    returned = []

    class CountingGzipFile(gzip.GzipFile):
        def read(self, size: int = -1) -> bytes:
            data = super().read(size)
            returned.append(len(data))
            return data

    monkeypatch.setattr(gzip, "GzipFile", CountingGzipFile)
    tracemalloc.start()
    try:
        with pytest.raises(MNISTError, match=f"{path}: more than the 10 bytes expected for 2 labels"):
            read_idx(path, LABEL_MAGIC)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sum(returned) == 8 + 2 + 1  # header, the data, one byte past it
    assert peak < 4 << 20


def test_a_header_declaring_too_much_is_refused_before_reading(monkeypatch, tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx((2_000_000, 28, 28), IMAGE_MAGIC, bytes(100)))
    with pytest.raises(MNISTError, match="declares 2,000,000 images .1,568,000,000 bytes., more than the "
                                         "1,073,741,824 bytes allowed"):
        read_idx(path, IMAGE_MAGIC)
    monkeypatch.setattr(mnist, "IDX_MAX_BYTES", 784)
    path.write_bytes(idx((2, 28, 28), IMAGE_MAGIC, bytes(2 * 784)))
    with pytest.raises(MNISTError, match="declares 2 images"):
        read_idx(path, IMAGE_MAGIC)


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "raw"])
def test_short_and_long_idx_files_name_the_file(tmp_path: Path, compress: bool) -> None:
    path = tmp_path / "labels"
    for data, message in ((bytes(2), "10 bytes, expected 11 for 3 labels (truncated)"),
                          (bytes(4), "more than the 11 bytes expected for 3 labels (trailing bytes)"),
                          (bytes(3), None)):
        content = idx((3,), LABEL_MAGIC, data)
        path.write_bytes(gzip.compress(content) if compress else content)
        if message is None:
            np.testing.assert_array_equal(read_idx(path, LABEL_MAGIC), [0, 0, 0])
            continue
        with pytest.raises(MNISTError) as error:
            read_idx(path, LABEL_MAGIC)
        assert str(error.value) == f"{path}: {message}"


# -- the atomic write (the MNIST downloader's and tl.save's) -------------------------------------------------
def test_a_failed_write_leaves_no_temporary_file(monkeypatch, tmp_path: Path) -> None:
    class FullDisk(io.FileIO):
        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files, "open", lambda file, mode: FullDisk(file, mode), raising=False)
    with pytest.raises(OSError, match="No space left on device"):
        files.write_atomic(tmp_path / "file.gz", b"data")
    assert list(tmp_path.iterdir()) == []


def test_the_write_is_fsynced_then_the_directory_after_the_rename(monkeypatch, tmp_path: Path) -> None:
    target = tmp_path / "file.gz"
    synced = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(("directory" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file", target.exists()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    files.write_atomic(target, b"data")
    assert synced == [("file", False), ("directory", True)]
    assert target.read_bytes() == b"data" and [p.name for p in tmp_path.iterdir()] == ["file.gz"]
