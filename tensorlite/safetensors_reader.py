"""Read a safetensors file's header under the reference format's rules, before anything trusts it.

Layout: 8 bytes holding N (unsigned, little-endian), N bytes of UTF-8 JSON, then the tensors' bytes.
The JSON is an object: ``{"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets"}, ...}``.
Every rule broken is a one-line ``CheckpointError`` naming the file and the rule.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import numpy

from tensorlite.utils.files import open_regular_file

PathLike = str | os.PathLike
MAX_HEADER_BYTES = 100_000_000  # the reference reader's limit, checked before the header is read
MAX_DIMS = 32  # the most NumPy 1.x can reshape to
DTYPES = {name: numpy.dtype(kind) for name, kind in [
    ("BOOL", "bool"), ("U8", "uint8"), ("I8", "int8"), ("U16", "uint16"), ("I16", "int16"), ("F16", "float16"),
    ("U32", "uint32"), ("I32", "int32"), ("F32", "float32"), ("U64", "uint64"), ("I64", "int64"),
    ("F64", "float64")]}  # the safetensors dtypes NumPy holds
_FOREIGN = {b"PK\x03\x04": "a zip archive (torch.save writes these)", b"\x80": "a pickle",
            b"\x89PNG": "a PNG image"}  # how unwelcome files start


class CheckpointError(ValueError):
    """A file that is not a readable tensorlite/safetensors checkpoint."""


def checkpoint_error(path: PathLike, problem: str) -> CheckpointError:
    return CheckpointError(f"{os.fspath(path)!r} is not a valid checkpoint: {problem}")


def short(value: Any) -> str:
    """``repr(value)`` cut to one short line: messages echo what a hostile file holds."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class TensorEntry:
    dtype: str
    shape: tuple[int, ...]
    start: int  # data_offsets, relative to the end of the header
    end: int


@dataclass(frozen=True)
class Header:
    tensors: dict[str, TensorEntry]
    metadata: dict[str, str]
    data_start: int  # 8 + N: where the tensors' bytes begin


def parse_json(path: PathLike, what: str, text: str | bytes) -> Any:
    """``text`` as JSON with no object holding a key twice; too deep a nesting is refused, not a crash."""
    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(pairs)
        if len(result) != len(pairs):  # find the first repeated key in one pass
            seen: set[str] = set()
            duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))
            raise ValueError(f"the key {short(duplicate)} appears twice in one object")
        return result

    try:
        return json.loads(text, object_pairs_hook=unique)
    except RecursionError:
        raise checkpoint_error(path, f"its {what} nests too deep to parse") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, a duplicate key, an integer too long
        raise checkpoint_error(path, f"its {what} is not valid JSON ({str(exc).splitlines()[0]})") from None


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _nbytes(shape: tuple[int, ...], itemsize: int, bound: int) -> int:
    """``prod(shape) * itemsize``, or ``bound + 1`` as soon as it exceeds ``bound`` (no giant products)."""
    if 0 in shape:
        return 0
    total = itemsize
    for size in shape:
        total *= size
        if total > bound:
            return bound + 1
    return total


def _entry(path: PathLike, name: str, value: Any) -> TensorEntry:
    def bad(rule: str) -> CheckpointError:
        return checkpoint_error(path, f"tensor {short(name)} {rule}")

    if not isinstance(value, dict) or set(value) != {"dtype", "shape", "data_offsets"}:
        raise bad("is not an object of exactly dtype, shape and data_offsets")
    dtype, shape, offsets = value["dtype"], value["shape"], value["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise bad(f"has dtype {short(dtype)}, not one of {', '.join(DTYPES)}")
    if not isinstance(shape, list) or len(shape) > MAX_DIMS or not all(map(_is_count, shape)):
        raise bad(f"has shape {short(shape)}, not a list of at most {MAX_DIMS} non-negative integers")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(map(_is_count, offsets)) \
            or offsets[0] > offsets[1]:
        raise bad(f"has data_offsets {short(offsets)}, not two non-negative integers [start, end] with start <= end")
    start, end = offsets
    if _nbytes(tuple(shape), DTYPES[dtype].itemsize, end - start) != end - start:
        raise bad(f"of shape {short(shape)} and dtype {dtype} does not fill its data_offsets [{start}, {end}]")
    return TensorEntry(dtype, tuple(shape), start, end)


def _header(path: PathLike, raw: bytes, size: int) -> Header:
    """Check the N header bytes ``raw`` of a file of ``size`` bytes against every rule of the format."""
    if not raw.startswith(b"{"):
        raise checkpoint_error(path, "its header does not start with '{'")
    fields = parse_json(path, "header", raw)
    metadata = fields.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(value, str) for value in metadata.values()):
        raise checkpoint_error(path, "its __metadata__ is not an object of strings")
    tensors = {name: _entry(path, name, value) for name, value in fields.items()}
    end = 0
    for name, entry in sorted(tensors.items(), key=lambda item: (item[1].start, item[1].end)):
        if entry.start != end:
            raise checkpoint_error(path, f"tensor {short(name)} starts at byte {entry.start} of the data, not {end}: "
                                         "tensors must follow each other with no hole or overlap")
        end = entry.end
    if 8 + len(raw) + end != size:
        raise checkpoint_error(path, f"its header describes {8 + len(raw) + end} bytes but the file has {size} "
                                     "(truncated, or bytes after the tensors)")
    return Header(tensors, metadata, 8 + len(raw))


def read_safetensors(path: PathLike, whole_file: bool) -> tuple[Header, bytes | None]:
    """The checked header of the safetensors file ``path``, and the file's bytes if ``whole_file``."""
    # stat first: a FIFO would block the reader, a device never end
    with open_regular_file(path, f"{os.fspath(path)!r} is not a valid checkpoint", CheckpointError) as f:
        size = os.fstat(f.fileno()).st_size
        start = f.read(8)
        if size == 0:
            raise checkpoint_error(path, "the file is empty")
        n = int.from_bytes(start, "little")
        if size < 8 or n > size - 8:
            kind = next((kind for magic, kind in _FOREIGN.items() if start.startswith(magic)), None)
            raise checkpoint_error(path, f"it is {kind}, not a safetensors file" if kind else
                                   f"its header claims {n} bytes but the file has {size} "
                                   "(truncated, or not a safetensors file)")
        if n > MAX_HEADER_BYTES:
            raise checkpoint_error(path, f"its header claims {n} bytes, over the limit of {MAX_HEADER_BYTES}")
        header = _header(path, f.read(n), size)
        if not whole_file:
            return header, None
        f.seek(0)
        data = f.read(size + 1)  # one byte more than fstat said shows a file growing underneath
    if len(data) != size:
        raise checkpoint_error(path, f"the file changed size while being read ({size} then {len(data)} bytes)")
    return header, data
