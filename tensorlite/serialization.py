"""Checkpoints: ``tl.save(obj, path)`` / ``tl.load(path)`` in the safetensors format, never pickle.

``obj`` is a dict (a ``state_dict()``, an optimizer's, or a dict of those) whose leaves are
tensors, numbers, strings, bools or ``None``, nested in dicts, lists and tuples. Tensors are stored
as safetensors tensors named by their dotted path (``"model.0.weight"``), so other tools read them;
the rest, with its key types, and ``metadata`` go as JSON in the header's ``__metadata__``:

    tensorlite_version        "0.1.0"
    tensorlite_structure      the tree: a JSON scalar, or {"tensor": name} | {"dict": [[key, node], ...]}
                              | {"list": [node, ...]} | {"tuple": [node, ...]}
    tensorlite_metadata       ``metadata`` (plus ``tensorlite_version``) in the same encoding
    tensorlite_header_sha256  SHA-256 of the two trees and every tensor's name, dtype and shape
    tensorlite_data_sha256    SHA-256 of the tensors' bytes, in name order

The two checksums came after tensorlite 0.1.0, whose files hold only the first three keys. A file is
recognised by its key set: all five keys, checksums verified; exactly the first three, a 0.1.0 file, loaded
as before; any other set of ``tensorlite_*`` keys (one checksum without the other) is a ``CheckpointError``.
A file without checksums (0.1.0, or a safetensors file from elsewhere, with no ``tensorlite_*`` key, which
loads as ``{name: tensor}``) passes every structural rule but its content cannot be verified: a flipped
byte in its tensors or metadata loads as a different value. docs/checkpoints.md lists the rules ``load``
and ``load_metadata`` enforce before trusting a file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable
from typing import Any, NamedTuple

import numpy
import safetensors.numpy
from safetensors import SafetensorError

from tensorlite import __version__
from tensorlite.creation import tensor
from tensorlite.device import Device
from tensorlite.device import device as as_device
from tensorlite.safetensors_reader import (
    DTYPES,
    CheckpointError,
    Header,
    PathLike,
    checkpoint_error,
    parse_json,
    read_safetensors,
    short,
)
from tensorlite.tensor import Tensor
from tensorlite.utils.files import write_atomic

MAX_DEPTH = 64  # containers inside containers, in the saved object and in metadata
MAX_TREE_CHARS = 8 * 2**20  # the JSON text of each tree
_TREE_KEYS = {"tensorlite_version", "tensorlite_structure", "tensorlite_metadata"}  # all that 0.1.0 wrote
_CHECKSUM_KEYS = {"tensorlite_header_sha256", "tensorlite_data_sha256"}  # written since, and then verified
_DTYPE_NAMES = {dtype: name for name, dtype in DTYPES.items()}
_NODES = {"tensor", "dict", "list", "tuple"}


# -- the tree <-> JSON + named tensors ---------------------------------------------------------------
def _encode(value: Any, name: str, tensors: dict[str, numpy.ndarray] | None, depth: int = 0) -> Any:
    """``value`` as a JSON node; tensors go into ``tensors`` under ``name`` (``None``: tensors refused)."""
    where = repr(name) if name else "the top level"
    if isinstance(value, Tensor):
        if tensors is None:
            raise TypeError(f"save: metadata holds a tensor at {where}; put tensors in the saved object")
        if name in tensors:
            raise ValueError(f"save: two tensors would be stored under the name {name!r}; rename one of the keys")
        tensors[name] = numpy.asarray(value.numpy(), order="C")  # safetensors writes raw, dense memory
        return {"tensor": name}
    if isinstance(value, (dict, list, tuple)) and depth == MAX_DEPTH:
        raise ValueError(f"save: {where} is nested deeper than {MAX_DEPTH} dicts, lists and tuples")
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise TypeError(f"save: dict keys must be str or int, got {key!r} at {where}")
        return {"dict": [[key, _encode(v, f"{name}.{key}" if name else str(key), tensors, depth + 1)]
                         for key, v in value.items()]}
    if isinstance(value, (list, tuple)):
        items = [_encode(v, f"{name}.{i}" if name else str(i), tensors, depth + 1) for i, v in enumerate(value)]
        return {"tuple" if isinstance(value, tuple) else "list": items}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, numpy.generic):
        return value.item()
    raise TypeError(f"save: cannot store a value of type {type(value).__name__} at {where}: checkpoints hold "
                    "tensors, numbers, strings, bools and None, in dicts, lists and tuples (objects are never pickled)")


def _check(path: PathLike, key: str, node: Any, depth: int, names: list[str] | None) -> None:
    """Refuse any node of a parsed tree that ``_encode`` would not write; collect tensor names into ``names``
    (``None``: no tensors allowed). Recursion stops at ``MAX_DEPTH``, as ``_encode`` does."""
    if node is None or isinstance(node, (bool, int, float, str)):
        return
    if not isinstance(node, dict) or len(node) != 1 or next(iter(node)) not in _NODES:
        raise checkpoint_error(path, f"its {key} holds {short(node)}, which is not a node tensorlite writes")
    ((kind, body),) = node.items()
    if kind == "tensor":
        if names is None or not isinstance(body, str):
            raise checkpoint_error(path, f"its {key} holds {short(node)} where no tensor reference may be")
        names.append(body)
        return
    if depth == MAX_DEPTH:
        raise checkpoint_error(path, f"its {key} nests deeper than {MAX_DEPTH} dicts, lists and tuples")
    if not isinstance(body, list):
        raise checkpoint_error(path, f"its {key} holds a {kind} whose body {short(body)} is not a list")
    if kind == "dict":
        keys = set()
        for pair in body:
            if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], (str, int))
                    and not isinstance(pair[0], bool)) or pair[0] in keys:
                raise checkpoint_error(path, f"its {key} holds the dict entry {short(pair)}, not a [key, value] pair "
                                             "with a new str or int key")
            keys.add(pair[0])
        body = [value for _, value in body]
    for item in body:
        _check(path, key, item, depth + 1, names)


def _decode(node: Any, tensors: dict[str, numpy.ndarray], device: Any) -> Any:
    """The object a tree passed by ``_check`` describes."""
    if not isinstance(node, dict):
        return node
    ((kind, body),) = node.items()
    if kind == "tensor":
        return tensor(tensors[body], device=device)  # a writable copy on ``device``
    if kind == "dict":
        return {key: _decode(value, tensors, device) for key, value in body}
    items = [_decode(value, tensors, device) for value in body]
    return tuple(items) if kind == "tuple" else items


# -- checksums: corruption anywhere in a tensorlite file is an error, never a different load ---------------
def _sha256(chunks: Iterable[Any]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def _header_sha256(structure: str, metadata: str, tensors: Iterable[tuple[str, str, Any]]) -> str:
    """The trees' JSON and each tensor's (name, dtype, shape), hashed."""
    described = sorted([name, dtype, list(shape)] for name, dtype, shape in tensors)
    return _sha256([json.dumps([structure, metadata, described]).encode()])


def _strings(structure: str, metadata: str, arrays: dict[str, numpy.ndarray]) -> dict[str, str]:
    """The ``__metadata__`` of a tensorlite checkpoint holding these trees and tensors."""
    names = sorted(arrays)
    return {
        "tensorlite_version": __version__,
        "tensorlite_structure": structure,
        "tensorlite_metadata": metadata,
        "tensorlite_header_sha256": _header_sha256(
            structure, metadata, [(name, _DTYPE_NAMES[arrays[name].dtype], arrays[name].shape) for name in names]),
        "tensorlite_data_sha256": _sha256(arrays[name] for name in names),
    }


# -- files --------------------------------------------------------------------------------------------
def _tree_json(node: Any, what: str) -> str:
    text = json.dumps(node)
    if len(text) > MAX_TREE_CHARS:
        raise ValueError(f"save: {what} takes {len(text)} characters of JSON, over the limit of {MAX_TREE_CHARS}")
    return text


def save(obj: dict[str, Any], path: PathLike, metadata: dict[str, Any] | None = None) -> None:
    """Write ``obj`` (and ``metadata``: model name, config, vocabulary...) to ``path`` atomically: a crash
    mid-write leaves any previous file at ``path`` intact, and the next save removes the crashed one's temp file
    (``utils.files.write_atomic``). Two processes saving to one path at the same time is not supported."""
    if not isinstance(obj, dict):
        raise TypeError(f"save: expected a dict (e.g. model.state_dict()), got {type(obj).__name__}")
    if metadata is not None and not isinstance(metadata, dict):
        raise TypeError(f"save: metadata must be a dict, got {type(metadata).__name__}")
    tensors: dict[str, numpy.ndarray] = {}
    structure = _tree_json(_encode(obj, "", tensors), "the saved object")
    metadata_json = _tree_json(_encode({**(metadata or {}), "tensorlite_version": __version__}, "", None), "metadata")
    data = safetensors.numpy.save(tensors, metadata=_strings(structure, metadata_json, tensors))
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"save: the folder {folder!r} does not exist")
    write_atomic(path, data)


def _tree(path: PathLike, key: str, text: str, names: list[str] | None) -> Any:
    """The checked tree stored as JSON ``text`` under ``key``: a dict at the top, within the limits."""
    if len(text) > MAX_TREE_CHARS:
        raise checkpoint_error(path, f"its {key} has {len(text)} characters, over the limit of {MAX_TREE_CHARS}")
    tree = parse_json(path, key, text)
    _check(path, key, tree, 0, names)
    if not (isinstance(tree, dict) and "dict" in tree):
        raise checkpoint_error(path, f"its {key} holds {short(tree)}, not a dict")
    return tree


class _Trees(NamedTuple):
    structure: Any
    metadata: Any
    checksummed: bool  # False for a tensorlite 0.1.0 file: its data can not be verified


def _trees(path: PathLike, header: Header) -> _Trees | None:
    """The checked trees of a tensorlite file, its header checksum verified if it has one; ``None`` for a plain
    safetensors file."""
    strings = header.metadata
    if not any(key.startswith("tensorlite_") for key in strings):
        return None
    checksummed = set(strings) == _TREE_KEYS | _CHECKSUM_KEYS
    if not checksummed and set(strings) != _TREE_KEYS:
        raise checkpoint_error(path, f"its __metadata__ has the keys {short(sorted(strings))}, not tensorlite's "
                                     f"{', '.join(sorted(_TREE_KEYS))}, plus {' and '.join(sorted(_CHECKSUM_KEYS))} "
                                     "in files written after the 0.1.0 release")
    structure, metadata = strings["tensorlite_structure"], strings["tensorlite_metadata"]
    names: list[str] = []
    trees = _tree(path, "tensorlite_structure", structure, names), _tree(path, "tensorlite_metadata", metadata, None)
    counts = Counter(names)
    for name in sorted(counts.keys() | header.tensors.keys()):
        if counts[name] != 1 or name not in header.tensors:  # shared, it would be copied once per reference
            raise checkpoint_error(path, f"its tensorlite_structure refers {counts[name]} times to the tensor "
                                         f"{short(name)}{'' if name in header.tensors else ', which the file lacks'}; "
                                         "each stored tensor must be referenced exactly once")
    described = [(name, entry.dtype, entry.shape) for name, entry in header.tensors.items()]
    if checksummed and strings["tensorlite_header_sha256"] != _header_sha256(structure, metadata, described):
        raise checkpoint_error(path, "its header does not match its tensorlite_header_sha256 (the file is corrupt)")
    return _Trees(*trees, checksummed)


def load(path: PathLike, device: Any = None, *, map_location: Any = None, weights_only: bool | None = None
         ) -> dict[str, Any]:
    """Read a checkpoint written by ``save`` (of any release; checksums, which files since 0.1.0 carry, are
    verified) or any safetensors file; tensors go to ``device`` (default cpu).

    ``map_location`` is PyTorch's name for ``device`` (a device or its name; PyTorch's dict and function
    forms are not supported). ``weights_only`` is accepted and changes nothing: a tensorlite file holds
    tensors and JSON, so loading is always weights-only and never unpickles."""
    if map_location is not None:
        if device is not None:
            raise TypeError("load: give device or map_location (PyTorch's name for it), not both")
        if not isinstance(map_location, (str, Device)):
            raise TypeError(f"load: map_location must be a device or its name such as 'cpu', got "
                            f"{type(map_location).__name__} (PyTorch's dict and function forms are not supported)")
        device = map_location
    header, data = read_safetensors(path, whole_file=True)
    trees = _trees(path, header)
    if trees is not None and trees.checksummed:
        view = memoryview(data)[header.data_start:]
        spans = (view[entry.start:entry.end] for _, entry in sorted(header.tensors.items()))
        if header.metadata["tensorlite_data_sha256"] != _sha256(spans):
            raise checkpoint_error(path, "its tensors' bytes do not match its tensorlite_data_sha256 (the file "
                                         "is corrupt)")
    try:
        arrays = safetensors.numpy.load(data)
    except (SafetensorError, ValueError) as exc:
        raise checkpoint_error(path, f"safetensors cannot read it ({short(exc)})") from None
    device = as_device(device or "cpu")
    if trees is None:
        return {name: tensor(array, device=device) for name, array in arrays.items()}
    return _decode(trees.structure, arrays, device)


def load_metadata(path: PathLike) -> dict[str, Any]:
    """The ``metadata`` given to ``save`` plus ``tensorlite_version``, reading only the header (so the tensors'
    checksum is left to ``load``). For a safetensors file from elsewhere: its ``__metadata__`` strings as they are."""
    header, _ = read_safetensors(path, whole_file=False)
    trees = _trees(path, header)
    return dict(header.metadata) if trees is None else _decode(trees.metadata, {}, None)


__all__ = ["CheckpointError", "load", "load_metadata", "save"]
