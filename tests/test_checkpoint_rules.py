"""Every rule the checkpoint reader enforces, one hand-made bad file each, for tl.load and tl.load_metadata alike;
truncation at every offset; paths that are not regular files; what save leaves on disk."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy
import pytest
import safetensors.numpy

import tensorlite as tl
from tensorlite import serialization
from tensorlite.safetensors_reader import MAX_HEADER_BYTES

READERS = [tl.load, tl.load_metadata]


def raw(header: dict[str, Any] | bytes, data: bytes = b"") -> bytes:
    """A safetensors file as bytes: the 8-byte length, the header as given (a dict goes through json), the data."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + data


def f32(shape: list[Any], offsets: list[Any]) -> dict[str, Any]:
    return {"dtype": "F32", "shape": shape, "data_offsets": offsets}


def forged(structure: Any, metadata: Any = None, arrays: dict[str, numpy.ndarray] | None = None) -> bytes:
    """A tensorlite file with these trees (a str is the JSON text itself) and tensors, and correct checksums:
    what a hostile writer can make."""
    arrays = arrays if arrays is not None else {"w": numpy.ones(2, numpy.float32)}
    metadata = metadata if metadata is not None else {"dict": [["tensorlite_version", "0.1.0"]]}
    structure, metadata = (tree if isinstance(tree, str) else json.dumps(tree) for tree in (structure, metadata))
    strings = serialization._strings(structure, metadata, arrays)
    return safetensors.numpy.save(arrays, metadata=strings)


def without_checksums(data: bytes, keys: tuple[str, ...] = ("tensorlite_header_sha256", "tensorlite_data_sha256")
                      ) -> bytes:
    """The file ``data`` with these ``__metadata__`` keys removed: by default, as tensorlite 0.1.0 wrote it."""
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    for key in keys:
        del header["__metadata__"][key]
    return raw(header, data[8 + n:])


def nested(depth: int) -> str:
    """JSON text of a structure holding tensor w and, under "a", 1 inside ``depth`` list nodes."""
    return '{"dict": [["w", {"tensor": "w"}], ["a", ' + '{"list": [' * depth + "1" + "]}" * depth + "]]}"


W = {"dict": [["w", {"tensor": "w"}]]}
SAFETENSORS_RULES: dict[str, tuple[Callable[[], bytes], str]] = {
    "header does not start with {": (lambda: raw(b' {"__metadata__": {}}'), "does not start with '{'"),
    "header not utf-8": (lambda: raw(b'{"\xff": 1}'), "header is not valid JSON.*utf-8"),
    "header not json": (lambda: raw(b'{"a": }'), "header is not valid JSON"),
    "header not an object": (lambda: raw(b"{}[]"), "header is not valid JSON.*Extra data"),
    "duplicate tensor name": (lambda: raw(b'{"a": 1, "a": 2}'), "key 'a' appears twice"),
    "duplicate key in an entry": (lambda: raw(b'{"a": {"dtype": "F32", "dtype": "F32"}}'), "'dtype' appears twice"),
    "header nested too deep": (lambda: raw(b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"), "nests too deep"),
    "metadata not an object": (lambda: raw({"__metadata__": ["x"]}), "__metadata__ is not an object of strings"),
    "metadata value not a string": (lambda: raw({"__metadata__": {"a": 1}}), "__metadata__ is not an object of str"),
    "entry not an object": (lambda: raw({"x": [1]}), "tensor 'x' is not an object of exactly dtype, shape"),
    "entry with an extra field": (lambda: raw({"x": {**f32([], [0, 4]), "y": 1}}), "not an object of exactly"),
    "unknown dtype": (lambda: raw({"x": {**f32([1], [0, 2]), "dtype": "BF16"}}, bytes(2)), "dtype 'BF16', not one"),
    "negative shape": (lambda: raw({"x": f32([-1], [0, 0])}), r"shape \[-1\], not a list"),
    "float in shape": (lambda: raw({"x": f32([1.0], [0, 4])}, bytes(4)), r"shape \[1.0\], not a list"),
    "bool in shape": (lambda: raw({"x": f32([True], [0, 4])}, bytes(4)), r"shape \[True\], not a list"),
    "too many dimensions": (lambda: raw({"x": f32([1] * 33, [0, 4])}, bytes(4)), "at most 32 non-negative"),
    "shape overflows": (lambda: raw({"x": f32([2**62] * 4, [0, 4])}, bytes(4)), "does not fill its data_offsets"),
    "string end offset": (lambda: raw({"x": f32([1], [0, "4"])}, bytes(4)), r"data_offsets \[0, '4'\], not two"),
    "one offset": (lambda: raw({"x": f32([], [4])}, bytes(4)), r"data_offsets \[4\], not two"),
    "reversed offsets": (lambda: raw({"x": f32([], [4, 0])}, bytes(4)), "with start <= end"),
    "size mismatch": (lambda: raw({"x": f32([2], [0, 4])}, bytes(4)), r"of shape \[2\] and dtype F32 does not fill"),
    "data not from 0": (lambda: raw({"x": f32([1], [4, 8])}, bytes(8)), "starts at byte 4 of the data, not 0"),
    "hole": (lambda: raw({"x": f32([1], [0, 4]), "y": f32([1], [8, 12])}, bytes(12)), "starts at byte 8.*no hole"),
    "overlap": (lambda: raw({"x": f32([2], [0, 8]), "y": f32([2], [4, 12])}, bytes(12)), "starts at byte 4.*overlap"),
    "trailing bytes": (lambda: raw({"x": f32([1], [0, 4])}, bytes(5)), "describes .* bytes but the file has"),
    "data truncated": (lambda: raw({"x": f32([2], [0, 8])}, bytes(4)), "describes .* bytes but the file has"),
}
TREE_RULES: dict[str, tuple[Callable[[], bytes], str]] = {
    "tensorlite key missing": (lambda: safetensors.numpy.save({}, metadata={"tensorlite_structure": "{}"}),
                               "keys .*, not tensorlite's"),
    "unknown tensorlite key": (lambda: safetensors.numpy.save({}, metadata={**serialization._strings(
        json.dumps({"dict": []}), json.dumps({"dict": []}), {}), "tensorlite_x": ""}), "not tensorlite's"),
    "one checksum without the other": (lambda: without_checksums(forged(W), ("tensorlite_data_sha256",)),
                                       "keys .*, not tensorlite's"),
    "header checksum": (lambda: forged(W, {"dict": [["model", "gpt"]]}).replace(b"gpt", b"mlp"),
                        "does not match its tensorlite_header_sha256"),
    "structure not json": (lambda: forged("{not json"), "tensorlite_structure is not valid JSON"),
    "structure nested 5,000 deep": (lambda: forged(nested(5000)), "tensorlite_structure nests too deep to parse"),
    "metadata nested 5,000 deep": (lambda: forged(W, nested(5000)), "tensorlite_metadata nests too deep to parse"),
    "structure nested 65 deep": (lambda: forged(nested(64)), "tensorlite_structure nests deeper than 64"),
    "structure too large": (lambda: forged({"dict": [["a", "x" * serialization.MAX_TREE_CHARS],
                                                     ["w", {"tensor": "w"}]]}),
                            "tensorlite_structure has .* characters, over the limit of 8388608"),
    "top level not a dict": (lambda: forged("5"), "tensorlite_structure holds 5, not a dict"),
    "metadata not a dict": (lambda: forged(W, {"list": []}), "tensorlite_metadata holds .*, not a dict"),
    "raw json list": (lambda: forged({"dict": [["a", [1, 2]], ["w", {"tensor": "w"}]]}), "not a node tensorlite"),
    "unknown node": (lambda: forged({"dict": [["a", {"set": []}], ["w", {"tensor": "w"}]]}), "not a node"),
    "two-key node": (lambda: forged({"dict": [["w", {"tensor": "w", "list": []}]]}), "not a node"),
    "body not a list": (lambda: forged({"dict": {"w": {"tensor": "w"}}}), "whose body .* is not a list"),
    "dict pair of three": (lambda: forged({"dict": [["w", {"tensor": "w"}, 1]]}), "not a .key, value. pair"),
    "float dict key": (lambda: forged({"dict": [[1.5, {"tensor": "w"}]]}), "not a .key, value. pair"),
    "duplicate dict key": (lambda: forged({"dict": [["w", {"tensor": "w"}], ["w", 1]]}), "with a new str or int"),
    "tensor name not a string": (lambda: forged({"dict": [["w", {"tensor": 0}]]}), "no tensor reference may be"),
    "tensor in metadata": (lambda: forged(W, {"dict": [["w", {"tensor": "w"}]]}), "no tensor reference may be"),
    "tensor referenced twice": (lambda: forged({"dict": [["a", {"tensor": "w"}], ["b", {"tensor": "w"}]]}),
                                "refers 2 times to the tensor 'w'.*exactly once"),
    "500 references": (lambda: forged({"dict": [["a", {"list": [{"tensor": "w"}] * 500}]]}),
                       "refers 500 times to the tensor 'w'"),
    "tensor never referenced": (lambda: forged({"dict": []}), "refers 0 times to the tensor 'w'"),
    "tensor not in the file": (lambda: forged({"dict": [["w", {"tensor": "w"}], ["v", {"tensor": "v"}]]}),
                               "refers 1 times to the tensor 'v', which the file lacks"),
}


@pytest.mark.parametrize("rule", list(SAFETENSORS_RULES) + list(TREE_RULES))
@pytest.mark.parametrize("reader", READERS)
def test_each_rule_is_a_one_line_checkpoint_error_naming_the_file(tmp_path: Path, rule: str, reader: Any) -> None:
    make, message = {**SAFETENSORS_RULES, **TREE_RULES}[rule]
    path = tmp_path / "bad.safetensors"
    path.write_bytes(make())
    with pytest.raises(tl.CheckpointError, match=message) as info:
        reader(path)
    assert str(info.value).startswith(repr(str(path))) and "\n" not in str(info.value)


KEY_AND_CHECKSUM_RULES = {"tensorlite key missing", "unknown tensorlite key", "one checksum without the other",
                          "header checksum"}


@pytest.mark.parametrize("rule", [rule for rule in TREE_RULES if rule not in KEY_AND_CHECKSUM_RULES])
@pytest.mark.parametrize("reader", READERS)
def test_files_without_checksums_as_0_1_0_wrote_them_keep_every_tree_rule(tmp_path: Path, rule: str,
                                                                        reader: Any) -> None:
    make, message = TREE_RULES[rule]
    path = tmp_path / "bad.safetensors"
    path.write_bytes(without_checksums(make()))
    with pytest.raises(tl.CheckpointError, match=message):
        reader(path)


def test_forged_files_pass_when_they_break_no_rule(tmp_path: Path) -> None:
    """The helpers above make loadable files: each bad file fails for its rule alone."""
    path = tmp_path / "ok.safetensors"
    path.write_bytes(forged(nested(63)))
    assert tl.load(path)["w"].tolist() == [1.0, 1.0] and tl.load_metadata(path) == {"tensorlite_version": "0.1.0"}
    path.write_bytes(without_checksums(forged(nested(63))))
    assert tl.load(path)["w"].tolist() == [1.0, 1.0] and tl.load_metadata(path) == {"tensorlite_version": "0.1.0"}
    path.write_bytes(raw({"x": f32([1], [0, 4]), "__metadata__": {"a": "b"}}, bytes(4)))
    assert tl.load(path)["x"].tolist() == [0.0] and tl.load_metadata(path) == {"a": "b"}


def test_data_checksum_is_checked_by_load(tmp_path: Path) -> None:
    path = tmp_path / "flipped.safetensors"
    tl.save({"w": tl.ones(4)}, path, metadata={"model": "m"})
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(tl.CheckpointError, match="bytes do not match its tensorlite_data_sha256"):
        tl.load(path)
    assert tl.load_metadata(path)["model"] == "m"  # the header alone is intact


@pytest.mark.parametrize("reader", READERS)
def test_a_wide_object_with_a_repeated_key_is_found_in_one_pass(tmp_path: Path, reader: Any) -> None:
    """60,000 distinct metadata keys, then one repeated: found in one pass (a search that rebuilt the keys
    seen so far for each key would take billions of steps: a hang)."""
    keys = ", ".join(f'"k{i}": "v"' for i in range(60_000))
    path = tmp_path / "wide.safetensors"
    path.write_bytes(raw(('{"__metadata__": {' + keys + ', "k7": "again"}}').encode()))
    with pytest.raises(tl.CheckpointError, match="'k7' appears twice"):
        reader(path)


def test_header_length_over_the_limit_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.safetensors"
    with open(path, "wb") as f:
        f.write((MAX_HEADER_BYTES + 1).to_bytes(8, "little"))
        f.truncate(MAX_HEADER_BYTES + 100)  # sparse: no disk used, and the reader must not read it
    for reader in READERS:
        with pytest.raises(tl.CheckpointError, match="header claims 100000001 bytes, over the limit of 100000000"):
            reader(path)


def test_save_refuses_what_load_would_refuse(tmp_path: Path) -> None:
    deep: Any = 1
    for _ in range(63):
        deep = [deep]
    tl.save({"deep": deep}, tmp_path / "63.safetensors")  # the top dict plus 63 lists: 64 containers
    assert tl.load(tmp_path / "63.safetensors") == {"deep": deep}
    with pytest.raises(ValueError, match="nested deeper than 64"):
        tl.save({"deep": [deep]}, tmp_path / "x.safetensors")
    with pytest.raises(ValueError, match="metadata takes .* characters of JSON, over the limit"):
        tl.save({}, tmp_path / "x.safetensors", metadata={"a": "x" * serialization.MAX_TREE_CHARS})
    assert sorted(os.listdir(tmp_path)) == ["63.safetensors"]


# -- truncation -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("written_by", ["this version", "0.1.0"])
def test_every_truncation_is_a_checkpoint_error(tmp_path: Path, written_by: str) -> None:
    path = tmp_path / "small.safetensors"
    if written_by == "0.1.0":
        path = Path(__file__).parent / "fixtures" / "tensorlite-0.1.0" / "objects.safetensors"
    else:
        tl.save({"w": tl.ones(3), "opt": {"step": 2, "m": [tl.zeros(2, dtype=tl.int64)]}}, path, metadata={"k": 1})
    good = path.read_bytes()
    cut = tmp_path / "cut.safetensors"
    for length in range(len(good)):
        cut.write_bytes(good[:length])
        for reader in READERS:
            with pytest.raises(tl.CheckpointError):
                reader(cut)


# -- paths that are not regular files ------------------------------------------------------------------
@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail instead of hanging: SIGALRM interrupts a blocking open()."""
    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def special_paths(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    fifo = tmp_path / "fifo.safetensors"
    os.mkfifo(fifo)
    yield fifo, "a FIFO"
    yield tmp_path, "a directory"
    for device in ("/dev/null", "/dev/zero"):
        if os.path.exists(device):
            yield Path(device), "a character device"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
@pytest.mark.parametrize("reader", READERS)
def test_fifos_directories_and_devices_are_refused_without_opening(tmp_path: Path, reader: Any) -> None:
    for path, kind in special_paths(tmp_path):
        with deadline(5), pytest.raises(tl.CheckpointError, match=f"is {kind}, expected a regular file") as info:
            reader(path)
        assert repr(str(path)) in str(info.value)


# -- what save leaves on disk ---------------------------------------------------------------------------
def test_save_removes_orphans_of_killed_saves_to_the_same_name(tmp_path: Path) -> None:
    orphans = [".ckpt.safetensors.0123abcd.tmp", ".ckpt.safetensors.ffffffff.tmp"]
    kept = [".other.safetensors.0123abcd.tmp", ".ckpt.safetensors.notours.tmp", "ckpt.safetensors.0123abcd.tmp"]
    for name in orphans + kept:
        (tmp_path / name).write_bytes(b"half a checkpoint")
    tl.save({"x": tl.ones(1)}, tmp_path / "ckpt.safetensors")
    assert sorted(os.listdir(tmp_path)) == sorted(kept + ["ckpt.safetensors"])


def test_failed_write_removes_its_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = open

    def full_disk(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = real_open(file, mode, *args, **kwargs)
        if mode == "xb":
            handle.write = lambda data: (_ for _ in ()).throw(OSError(28, "No space left on device"))
        return handle

    monkeypatch.setattr("builtins.open", full_disk)
    with pytest.raises(OSError, match="No space left"):
        tl.save({"x": tl.ones(1000)}, tmp_path / "ckpt.safetensors")
    assert os.listdir(tmp_path) == []


def test_save_fsyncs_the_folder_after_the_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def record(fd: int) -> None:
        synced.append("folder" if os.path.isdir(f"/proc/self/fd/{fd}") else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", record)
    tl.save({"x": tl.ones(1)}, tmp_path / "ckpt.safetensors")
    assert synced == ["file", "folder"]
