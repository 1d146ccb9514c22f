"""Character-level text for language models: a tokenizer, Tiny Shakespeare (shipped), random windows.

    text = load_shakespeare()                      # 1,115,394 characters, 65 distinct
    tokenizer = CharTokenizer.from_text(text)
    data = TextData(tokenizer.encode(text))        # first 90% train, last 10% validation
    x, y = data.get_batch("train", batch_size=12, block_size=64, device="cpu")  # (12, 64) int64; y = x shifted by one
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy

from tensorlite.creation import tensor
from tensorlite.device import device as as_device
from tensorlite.tensor import Tensor
from tensorlite.utils.files import DataFileError, read_text_file

SHAKESPEARE_TXT = Path(__file__).with_name("tinyshakespeare.txt")
TEXT_MAX_BYTES = 1 << 30  # 1 GiB: a thousand times Tiny Shakespeare, and still held in memory whole
SPLITS = ("train", "val")


class CharTokenizer:
    """One token per character; ids follow the sorted vocabulary (as nanoGPT's shakespeare_char)."""

    def __init__(self, chars: Iterable[str]) -> None:
        self.chars = list(chars)  # id -> character
        if any(not isinstance(c, str) or len(c) != 1 for c in self.chars):
            raise ValueError("CharTokenizer: the vocabulary must be single characters")
        if len(set(self.chars)) != len(self.chars):
            raise ValueError("CharTokenizer: the vocabulary has repeated characters")
        self.stoi = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        """The sorted set of characters in ``text``."""
        if not text:
            raise ValueError("CharTokenizer.from_text: the text is empty")
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; characters outside the vocabulary raise a ValueError naming them."""
        try:
            return [self.stoi[c] for c in text]
        except KeyError:
            unknown = "".join(sorted(set(text) - self.stoi.keys()))
            raise ValueError(f"CharTokenizer.encode: {len(unknown)} character(s) not in the vocabulary: "
                             f"{unknown!r} (the vocabulary has {self.vocab_size} characters from the "
                             f"training text)") from None

    def decode(self, ids: Iterable[int] | Tensor) -> str:
        """The text of token ids (a list, or a tensor of any shape, read in order)."""
        ids = ids.reshape(-1).tolist() if isinstance(ids, Tensor) else list(ids)
        bad = sorted({i for i in ids if not 0 <= i < self.vocab_size})
        if bad:
            raise ValueError(f"CharTokenizer.decode: token ids {bad} are outside the vocabulary [0, {self.vocab_size})")
        return "".join(self.chars[i] for i in ids)

    def to_dict(self) -> dict[str, Any]:
        """The vocabulary as JSON-friendly checkpoint metadata."""
        return {"chars": "".join(self.chars)}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> CharTokenizer:
        return cls(state["chars"])


def load_shakespeare(path: str | Path | None = None) -> str:
    """Tiny Shakespeare (the copy shipped with the package), or the UTF-8 text file at ``path``.

    ``path`` must be a regular file of at most ``TEXT_MAX_BYTES`` (directories, FIFOs and devices
    such as ``/dev/zero`` are refused before they are opened); a missing file raises
    ``FileNotFoundError``, anything else a ``DataFileError`` naming the file.
    """
    path = Path(path) if path is not None else SHAKESPEARE_TXT
    text = read_text_file(path, "load_shakespeare", TEXT_MAX_BYTES)
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # universal newlines, as open() in text mode
    if not text:
        raise DataFileError(f"load_shakespeare: {path} is empty, expected text")
    return text


class TextData:
    """Token ids split into train (the first ``1 - val_fraction``) and val (the rest), as nanoGPT."""

    def __init__(self, tokens: Iterable[int] | numpy.ndarray, val_fraction: float = 0.1) -> None:
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"TextData: val_fraction must be in (0, 1), got {val_fraction}")
        ids = numpy.asarray(tokens if isinstance(tokens, numpy.ndarray) else list(tokens), dtype=numpy.int64)
        if ids.ndim != 1:
            raise ValueError(f"TextData: expected a 1-D sequence of token ids, got shape {ids.shape}")
        n = int(len(ids) * (1.0 - val_fraction))
        self.splits = {"train": ids[:n], "val": ids[n:]}

    def get_batch(self, split: str, batch_size: int, block_size: int, device: Any = None,
                  generator: numpy.random.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``batch_size`` random windows of ``split``: inputs x and next-token targets y, int64 (B, T).

        Starts come from ``generator``, or else the CPU generator that ``tl.manual_seed`` seeds.
        """
        if split not in SPLITS:
            raise ValueError(f"TextData.get_batch: split must be 'train' or 'val', got {split!r}")
        if batch_size <= 0 or block_size <= 0:
            raise ValueError(f"TextData.get_batch: batch_size and block_size must be positive, got "
                             f"{batch_size} and {block_size}")
        data = self.splits[split]
        if len(data) <= block_size:
            raise ValueError(f"TextData.get_batch: the {split} split has {len(data)} tokens, too few for windows "
                             f"of block_size {block_size} plus a target; use a longer text or a smaller block_size")
        rng = generator if generator is not None else as_device("cpu").backend.rng
        starts = rng.integers(0, len(data) - block_size, size=batch_size)  # (B,)
        windows = data[starts[:, None] + numpy.arange(block_size + 1)]  # (B, T + 1): one fancy index
        target = as_device(device)
        if target.type == "cpu":  # contiguous arrays, as PyTorch users expect of .numpy()
            return tensor(windows[:, :-1], device=target), tensor(windows[:, 1:], device=target)
        moved = tensor(windows, device=target)  # on a device: one host-to-device copy for inputs and targets
        return moved[:, :-1], moved[:, 1:]
