"""MNIST: 70,000 handwritten digits, 28 x 28 grey pixels, in IDX files read from disk or downloaded.

The four files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
``t10k-labels-idx1-ubyte``, each gzipped with ``.gz`` or raw) are looked for, in order, in ``root``,
``$TENSORLITE_DATA/mnist`` and the user cache (``$XDG_CACHE_HOME/tensorlite/mnist``, by default
``~/.cache/tensorlite/mnist``). ``download=True`` fetches missing ones from public mirrors into
``root`` or the cache, checking the SHA-256 of their decompressed content.

    train = MNIST(train=True, download=True)
    train.images, train.labels  # uint8 (60000, 28, 28), int64 (60000,)
    loader = DataLoader(train.to_tensor_dataset("cpu"), batch_size=64, shuffle=True)
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import math
import os
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.request import urlopen

import numpy as np

import tensorlite as tl
from tensorlite.datasets.transforms import Normalize
from tensorlite.utils.data import Dataset, TensorDataset
from tensorlite.utils.files import DataFileError, open_regular_file, read_at_most, write_atomic

# File name -> SHA-256 of its decompressed content.
FILES = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
GZIP_MAGIC = b"\x1f\x8b"
MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/")
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049  # 0x0803: unsigned bytes, 3 dims; 0x0801: unsigned bytes, 1 dim
SIZE = 28
IDX_MAX_BYTES = 1 << 30  # the most data an IDX header may declare (MNIST's 60,000 training images: 47,040,000)
NORMALIZE = Normalize(mean=0.1307, std=0.3081)  # the training images' pixel mean and std, in [0, 1] units


class MNISTError(DataFileError):
    """MNIST files that are missing, truncated, corrupt or not MNIST (the message names the file)."""


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/tensorlite/mnist``, by default ``~/.cache/tensorlite/mnist``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tensorlite" / "mnist"


def search_dirs(root: str | Path | None = None) -> list[Path]:
    """Where MNIST is looked for, in order: ``root``, ``$TENSORLITE_DATA/mnist``, the user cache."""
    dirs = [Path(root)] if root is not None else []
    if os.environ.get("TENSORLITE_DATA"):
        dirs.append(Path(os.environ["TENSORLITE_DATA"]) / "mnist")
    return [*dirs, cache_dir()]


def split_files(train: bool) -> tuple[str, str]:
    """The (images, labels) file names of the training or test split."""
    prefix = "train" if train else "t10k"
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


def file_magic(name: str) -> int:
    """The IDX magic number of a standard file name: ``IMAGE_MAGIC`` or ``LABEL_MAGIC``."""
    return IMAGE_MAGIC if "-images-" in name else LABEL_MAGIC


def find_file(directory: Path, name: str) -> Path | None:
    """``directory/name.gz`` or ``directory/name``, whichever exists first."""
    return next((p for p in (directory / f"{name}.gz", directory / name) if p.is_file()), None)


# -- IDX files ------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _gzip_errors(source: str | Path) -> Iterator[None]:
    """Turn a gzip stream's errors into an ``MNISTError`` naming ``source``."""
    try:
        yield
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise MNISTError(f"{source}: corrupt or truncated gzip file ({exc})") from None


def parse_idx(stream: BinaryIO, magic: int, source: str | Path) -> tuple[bytes, np.ndarray]:
    """The header and uint8 array of the IDX file in ``stream`` (gzip or raw, seekable): (N, 28, 28)
    images or (N,) labels.

    Checks the magic number (``IMAGE_MAGIC`` or ``LABEL_MAGIC``), the image size, that the header
    declares at most ``IDX_MAX_BYTES`` and that the file holds exactly that. It reads at most one
    byte more, so a small gzip file that expands to gigabytes fails fast in bounded memory. Errors
    name ``source``.
    """
    gzipped = stream.read(2) == GZIP_MAGIC
    stream.seek(0)
    if gzipped:
        stream = gzip.GzipFile(fileobj=stream)
    what, ndim = ("images", 3) if magic == IMAGE_MAGIC else ("labels", 1)
    header_size = 4 + 4 * ndim
    with _gzip_errors(source):
        header = bytes(read_at_most(stream, header_size))
        found = int.from_bytes(header[:4], "big") if len(header) >= 4 else None
        if found != magic:
            seen = f"magic number {found}" if found is not None else f"only {len(header)} bytes"
            raise MNISTError(f"{source} is not an IDX {what} file: {seen}, expected magic number {magic}")
        if len(header) < header_size:
            raise MNISTError(f"{source}: truncated IDX header ({len(header)} bytes, expected {header_size})")
        dims = tuple(int(d) for d in np.frombuffer(header, ">u4", ndim, 4))
        if ndim == 3 and dims[1:] != (SIZE, SIZE):
            raise MNISTError(f"{source}: images are {dims[1]}x{dims[2]} pixels, expected {SIZE}x{SIZE}")
        size = math.prod(dims)
        if size > IDX_MAX_BYTES:
            raise MNISTError(f"{source}: the header declares {dims[0]:,} {what} ({size:,} bytes), more than the "
                             f"{IDX_MAX_BYTES:,} bytes allowed")
        data = read_at_most(stream, size + 1)
    expected = header_size + size
    if len(data) < size:
        raise MNISTError(f"{source}: {header_size + len(data)} bytes, expected {expected} for {dims[0]} {what} "
                         "(truncated)")
    if len(data) > size:
        raise MNISTError(f"{source}: more than the {expected} bytes expected for {dims[0]} {what} (trailing bytes)")
    return header, np.frombuffer(data, np.uint8).reshape(dims)


def read_idx(path: str | Path, magic: int) -> np.ndarray:
    """The array of the IDX file at ``path`` (see ``parse_idx``), which must be a regular file."""
    with open_regular_file(path, "MNIST", MNISTError) as file:
        return parse_idx(file, magic, path)[1]


# -- download -------------------------------------------------------------------------------------------
def _fetch(url: str, progress: bool) -> bytes:
    """The body at ``url``, with a byte-count progress bar."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with urlopen(url, timeout=30) as response, Progress(*columns, console=Console(stderr=True),
                                                         disable=not progress) as bar:
        task = bar.add_task(url.rsplit("/", 1)[-1], total=int(response.headers.get("Content-Length") or 0) or None)
        chunks = []
        while chunk := response.read(1 << 16):
            chunks.append(chunk)
            bar.advance(task, len(chunk))
    return b"".join(chunks)


def download(directory: str | Path | None = None, progress: bool = True) -> Path:
    """Fetch the MNIST files missing from ``directory`` (default: the user cache); returns the directory.

    Each file is tried at every mirror in turn and kept (gzipped, as served) only when the SHA-256 of
    its decompressed content is the published one.
    """
    directory = Path(directory) if directory is not None else cache_dir()
    for name, sha256 in FILES.items():
        if find_file(directory, name) is not None:
            continue
        failures = []
        for mirror in MIRRORS:
            url = f"{mirror}{name}.gz"
            try:
                raw = _fetch(url, progress)
                header, array = parse_idx(io.BytesIO(raw), file_magic(name), url)
                digest = hashlib.sha256(header + array.tobytes()).hexdigest()
            except (OSError, MNISTError) as exc:  # URLError and timeouts are OSErrors
                failures.append(f"{url}: {getattr(exc, 'reason', None) or exc}")
                continue
            if digest == sha256:
                directory.mkdir(parents=True, exist_ok=True)
                write_atomic(directory / f"{name}.gz", raw)
                break
            failures.append(f"{url}: SHA-256 of the decompressed file is {digest}, expected {sha256}")
        else:
            raise MNISTError(f"could not download {name}.gz:\n  " + "\n  ".join(failures) + "\nWithout network "
                             f"access, copy the four MNIST files ({', '.join(FILES)}, gzipped or raw) into "
                             f"{directory}, or into $TENSORLITE_DATA/mnist")
    return directory


def locate(root: str | Path | None = None, train: bool = True, download_missing: bool = False,
           progress: bool = True) -> Path:
    """The first of ``search_dirs(root)`` holding the split's two files; else download all four (into
    ``root`` or the user cache) when ``download_missing``, or raise an error listing the places searched."""
    names = split_files(train)
    dirs = search_dirs(root)
    for directory in dirs:
        if all(find_file(directory, name) for name in names):
            return directory
    if download_missing:
        return download(root if root is not None else cache_dir(), progress)
    searched = ", ".join(str(d) for d in dirs)
    raise MNISTError(f"MNIST {'training' if train else 'test'} files {names[0]}[.gz] and {names[1]}[.gz] not "
                     f"found in {searched}: pass download=True to fetch them, or put the files in one of these "
                     "directories")


class MNIST(Dataset):
    """MNIST's training (60,000 digits) or test (10,000) split; ``dataset[i]`` is ``(image, label)``.

    ``image`` is float32 (1, 28, 28) in [0, 1], passed through ``transform`` when given (such as
    ``NORMALIZE``); ``label`` is an int. ``images`` (uint8 (N, 28, 28)) and ``labels`` (int64 (N,))
    hold the whole split as host arrays.
    """

    classes = tuple(str(digit) for digit in range(10))

    def __init__(self, root: str | Path | None = None, train: bool = True, download: bool = False,
                 transform: Callable[[Any], Any] | None = None) -> None:
        self.root = locate(root, train, download)
        self.train, self.transform = train, transform
        images_path, labels_path = (find_file(self.root, name) for name in split_files(train))
        self.images = read_idx(images_path, IMAGE_MAGIC)
        labels = read_idx(labels_path, LABEL_MAGIC)
        if len(labels) != len(self.images):
            raise MNISTError(f"{images_path} holds {len(self.images)} images but {labels_path} holds "
                             f"{len(labels)} labels")
        if labels.size and labels.max() > 9:
            raise MNISTError(f"{labels_path}: labels must be digits 0-9, found {labels.max()}")
        self.labels = labels.astype(np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = self.images[index][None] / np.float32(255)  # (1, 28, 28) float32
        return (self.transform(image) if self.transform else image), int(self.labels[index])

    def to_tensor_dataset(self, device: Any = None, normalize: bool = True) -> TensorDataset:
        """The whole split on ``device``: float32 images (N, 1, 28, 28) in [0, 1], ``NORMALIZE``d unless
        ``normalize=False``, and int64 labels (N,). A DataLoader batches it with one index per batch."""
        images = self.images[:, None] / np.float32(255)
        if normalize:
            images = NORMALIZE(images)
        return TensorDataset(tl.tensor(images, device=device), tl.tensor(self.labels, device=device))
