"""Checkpoints: ``tl.save(obj, path)`` / ``tl.load(path)`` in the safetensors format, never pickle.

``obj`` is a dict (a ``state_dict()``, an optimizer's, or a dict of those) whose leaves are
tensors, numbers, strings, bools or ``None``, nested in dicts, lists and tuples. Tensors are stored
as safetensors tensors named by their dotted path (``"model.0.weight"``), so other tools read them;
the rest, with its key types, and ``metadata`` go as JSON in the header's ``__metadata__``:

    tensorlite_version    "0.1.0"
    tensorlite_structure  the tree: a JSON scalar, or {"tensor": name} | {"dict": [[key, node], ...]}
                          | {"list": [node, ...]} | {"tuple": [node, ...]}
    tensorlite_metadata   ``metadata`` (plus ``tensorlite_version``) in the same encoding

A safetensors file from elsewhere (no ``tensorlite_structure``) loads as ``{name: tensor}``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from typing import Any

import numpy
import safetensors.numpy
from safetensors import SafetensorError

from tensorlite import __version__
from tensorlite.creation import tensor
from tensorlite.device import device as as_device
from tensorlite.tensor import Tensor

PathLike = str | os.PathLike
_FOREIGN = {b"PK\x03\x04": "a zip archive (torch.save writes these)", b"\x80": "a pickle",
            b"\x89PNG": "a PNG image"}  # how unwelcome files start


class CheckpointError(ValueError):
    """A file that is not a readable tensorlite/safetensors checkpoint."""


def _error(path: PathLike, problem: str) -> CheckpointError:
    return CheckpointError(f"{os.fspath(path)!r} is not a valid checkpoint: {problem}")


# -- the tree <-> JSON + named tensors ---------------------------------------------------------------
def _encode(value: Any, name: str, tensors: dict[str, numpy.ndarray] | None) -> Any:
    """``value`` as a JSON node; tensors go into ``tensors`` under ``name`` (``None``: tensors refused)."""
    where = repr(name) if name else "the top level"
    if isinstance(value, Tensor):
        if tensors is None:
            raise TypeError(f"save: metadata holds a tensor at {where}; put tensors in the saved object")
        if name in tensors:
            raise ValueError(f"save: two tensors would be stored under the name {name!r}; rename one of the keys")
        tensors[name] = numpy.asarray(value.numpy(), order="C")  # safetensors writes raw, dense memory
        return {"tensor": name}
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise TypeError(f"save: dict keys must be str or int, got {key!r} at {where}")
        return {"dict": [[key, _encode(v, f"{name}.{key}" if name else str(key), tensors)] for key, v in value.items()]}
    if isinstance(value, (list, tuple)):
        items = [_encode(v, f"{name}.{i}" if name else str(i), tensors) for i, v in enumerate(value)]
        return {"tuple" if isinstance(value, tuple) else "list": items}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, numpy.generic):
        return value.item()
    raise TypeError(f"save: cannot store a value of type {type(value).__name__} at {where}: checkpoints hold "
                    "tensors, numbers, strings, bools and None, in dicts, lists and tuples (objects are never pickled)")


def _decode(node: Any, tensors: dict[str, numpy.ndarray], device: Any) -> Any:
    if not isinstance(node, dict):
        return node
    ((kind, body),) = node.items()
    if kind == "tensor":
        return tensor(tensors[body], device=device)  # a writable copy on ``device``
    if kind == "dict":
        return {key: _decode(value, tensors, device) for key, value in body}
    if kind in ("list", "tuple"):
        items = [_decode(value, tensors, device) for value in body]
        return tuple(items) if kind == "tuple" else items
    raise ValueError(f"unknown node kind {kind!r}")


# -- files --------------------------------------------------------------------------------------------
def save(obj: dict[str, Any], path: PathLike, metadata: dict[str, Any] | None = None) -> None:
    """Write ``obj`` (and ``metadata``: model name, config, vocabulary...) to ``path`` atomically: a crash
    mid-write leaves any previous file at ``path`` intact."""
    if not isinstance(obj, dict):
        raise TypeError(f"save: expected a dict (e.g. model.state_dict()), got {type(obj).__name__}")
    if metadata is not None and not isinstance(metadata, dict):
        raise TypeError(f"save: metadata must be a dict, got {type(metadata).__name__}")
    tensors: dict[str, numpy.ndarray] = {}
    header = {
        "tensorlite_version": __version__,
        "tensorlite_structure": json.dumps(_encode(obj, "", tensors)),
        "tensorlite_metadata": json.dumps(_encode({**(metadata or {}), "tensorlite_version": __version__}, "", None)),
    }
    data = safetensors.numpy.save(tensors, metadata=header)
    folder, base = os.path.split(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"save: the folder {folder!r} does not exist")
    temp = os.path.join(folder, f".{base}.{secrets.token_hex(4)}.tmp")  # same folder: os.replace is atomic
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


def _read_header(path: PathLike, f: Any) -> dict[str, Any]:
    """The JSON header of the open safetensors file ``f``, after checking the file can hold what it says."""
    size = os.fstat(f.fileno()).st_size
    start = f.read(8)
    if size == 0:
        raise _error(path, "the file is empty")
    n = int.from_bytes(start, "little")
    if size < 8 or n > size - 8:
        kind = next((kind for magic, kind in _FOREIGN.items() if start.startswith(magic)), None)
        raise _error(path, f"it is {kind}, not a safetensors file" if kind else
                     f"its header claims {n} bytes but the file has {size} (truncated, or not a safetensors file)")
    try:
        header = json.loads(f.read(n))
        if not isinstance(header.get("__metadata__", {}), dict):
            raise TypeError("__metadata__ is not a JSON object")
        end = max((entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"), default=0)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise _error(path, f"its header is not a safetensors header ({exc})") from None
    if 8 + n + end > size:
        raise _error(path, f"the file is truncated: its tensors need {8 + n + end} bytes but it has {size}")
    return header


def _tree(path: PathLike, header: dict[str, Any], key: str, arrays: dict[str, numpy.ndarray], device: Any) -> Any:
    """Rebuild the tree stored as JSON under ``key`` of the header's ``__metadata__``."""
    try:
        return _decode(json.loads(header["__metadata__"][key]), arrays, device)
    except (ValueError, TypeError, KeyError) as exc:
        raise _error(path, f"its {key} is malformed ({exc!r})") from None


def load(path: PathLike, device: Any = None) -> dict[str, Any]:
    """Read a checkpoint written by ``save`` (or any safetensors file); tensors go to ``device`` (default cpu)."""
    with open(path, "rb") as f:
        header = _read_header(path, f)
        f.seek(0)
        data = f.read()
    try:
        arrays = safetensors.numpy.load(data)
    except (SafetensorError, KeyError, ValueError) as exc:
        raise _error(path, f"safetensors cannot read it ({exc!r})") from None
    device = as_device(device or "cpu")
    if "tensorlite_structure" not in header.get("__metadata__", {}):
        return {name: tensor(array, device=device) for name, array in arrays.items()}
    return _tree(path, header, "tensorlite_structure", arrays, device)


def load_metadata(path: PathLike) -> dict[str, Any]:
    """The ``metadata`` given to ``save`` plus ``tensorlite_version``, reading only the header.
    For a safetensors file from elsewhere: its ``__metadata__`` strings as they are."""
    with open(path, "rb") as f:
        header = _read_header(path, f)
    strings = header.get("__metadata__", {})
    return _tree(path, header, "tensorlite_metadata", {}, None) if "tensorlite_metadata" in strings else dict(strings)


__all__ = ["CheckpointError", "load", "load_metadata", "save"]
