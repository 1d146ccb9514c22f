"""Checkpoints: tl.save / tl.load / tl.load_metadata in the safetensors format."""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy
import pytest
import safetensors.numpy

import tensorlite as tl

LEGACY = Path(__file__).parent / "fixtures" / "tensorlite-0.1.0"  # files tensorlite 0.1.0 wrote, without checksums


def assert_same(a: Any, b: Any) -> None:
    """Equal trees: same container types, keys (with their types), values, and tensor dtype/shape/values."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, tl.Tensor):
        assert (a.dtype, a.shape, str(a.device)) == (b.dtype, b.shape, str(b.device))
        numpy.testing.assert_array_equal(a.numpy(), b.numpy())
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        assert a == b


def nested(device: str = "cpu") -> dict[str, Any]:
    return {
        "model": {"0.weight": tl.randn(3, 2, device=device), "0.bias": tl.zeros(3, dtype=tl.float64, device=device)},
        "counts": tl.tensor([[1, -2], [3, 2**40]], device=device),
        "mask": tl.tensor([True, False, True], device=device),
        "scalar": tl.tensor(2.5, device=device),
        "empty": tl.zeros(0, 4, device=device),
        "step": 7, "lr": 1e-3, "name": "gpt", "done": False, "nothing": None, "nan": float("inf"),
        "mixed": [1, 2.5, "x", None, True, [tl.ones(2, device=device), {}]],
        "betas": (0.9, 0.999),
        "keys": {0: "int zero", "0": "string zero", 1: {2: []}},
    }


def test_nested_round_trip(tmp_path: Path, device: str) -> None:
    obj = nested(device)
    tl.save(obj, tmp_path / "ckpt.safetensors")
    assert_same(tl.load(tmp_path / "ckpt.safetensors", device=device), obj)


def test_optimizer_state_dict_round_trips_exactly(tmp_path: Path) -> None:
    state = {
        "state": {0: {"step": tl.tensor(3.0), "exp_avg": tl.randn(4), "exp_avg_sq": tl.rand(4)},
                  1: {"step": tl.tensor(3.0), "exp_avg": tl.randn(2, 2), "exp_avg_sq": tl.rand(2, 2)}},
        "param_groups": [{"lr": 0.01, "betas": (0.9, 0.95), "eps": 1e-8, "weight_decay": 0, "amsgrad": False,
                          "params": [0, 1]}],
    }
    tl.save({"optimizer": state, "epoch": 4}, str(tmp_path / "opt.safetensors"))
    assert_same(tl.load(str(tmp_path / "opt.safetensors")), {"optimizer": state, "epoch": 4})


def test_module_state_dict_round_trip(tmp_path: Path) -> None:
    class Net(tl.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = tl.nn.Parameter(tl.randn(3, 2))
            self.register_buffer("running", tl.ones(3))

    net, other = Net(), Net()
    tl.save(net.state_dict(), tmp_path / "net.safetensors")
    other.load_state_dict(tl.load(tmp_path / "net.safetensors"))
    numpy.testing.assert_array_equal(other.weight.numpy(), net.weight.numpy())


def test_metadata_round_trip_and_version(tmp_path: Path) -> None:
    metadata = {"model": "char-gpt", "config": {"n_layer": 2, "dropout": 0.1, "bias": True},
                "itos": {0: "a", 1: "\n"}, "stoi": {"a": 0}, "shape": (2, 3)}
    path = tmp_path / "m.safetensors"
    tl.save({"w": tl.ones(2)}, path, metadata=metadata)
    assert tl.load_metadata(path) == {**metadata, "tensorlite_version": tl.__version__}
    assert tl.load_metadata(path)["itos"][0] == "a"  # int keys come back as ints
    tl.save({}, path)
    assert tl.load_metadata(path) == {"tensorlite_version": tl.__version__}
    assert tl.load(path) == {}


def test_files_are_plain_safetensors(tmp_path: Path) -> None:
    obj = nested()
    path = tmp_path / "x.safetensors"
    tl.save(obj, path, metadata={"model": "m"})
    arrays = safetensors.numpy.load_file(path)
    assert sorted(arrays) == sorted(["model.0.weight", "model.0.bias", "counts", "mask", "scalar", "empty",
                                     "mixed.5.0"])
    numpy.testing.assert_array_equal(arrays["model.0.weight"], obj["model"]["0.weight"].numpy())
    assert arrays["counts"].dtype == numpy.int64 and arrays["mask"].dtype == numpy.bool_


def test_foreign_safetensors_files_load_flat(tmp_path: Path) -> None:
    path = tmp_path / "hub.safetensors"
    weight = numpy.arange(6, dtype=numpy.float32).reshape(2, 3)
    safetensors.numpy.save_file({"encoder.weight": weight}, path, metadata={"format": "np"})
    loaded = tl.load(path)
    assert list(loaded) == ["encoder.weight"] and loaded["encoder.weight"].tolist() == weight.tolist()
    assert tl.load_metadata(path) == {"format": "np"}


def legacy_content() -> tuple[dict[str, Any], dict[str, Any]]:
    """What tensorlite 0.1.0 was given to write LEGACY / "objects.safetensors", built with today's tensorlite."""
    spec = importlib.util.spec_from_file_location("make_fixtures", LEGACY / "make_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.saved()


def test_a_file_written_by_0_1_0_loads_as_it_was_saved() -> None:
    path = LEGACY / "objects.safetensors"
    assert sorted(safetensors.safe_open(path, "numpy").metadata()) == [
        "tensorlite_metadata", "tensorlite_structure", "tensorlite_version"]  # no checksums in 0.1.0
    obj, metadata = legacy_content()
    assert_same(tl.load(path), obj)
    assert_same(tl.load_metadata(path), {**metadata, "tensorlite_version": "0.1.0"})


def test_a_file_without_checksums_loads_corrupt_data_unnoticed(tmp_path: Path) -> None:
    """The honest limit of backward compatibility: a 0.1.0 file's bytes have no checksum to be checked against."""
    data = bytearray((LEGACY / "objects.safetensors").read_bytes())
    n = int.from_bytes(data[:8], "little")
    data[8 + n + json.loads(data[8:8 + n])["weight"]["data_offsets"][0]] ^= 1  # a bit of weight[0, 0]
    path = tmp_path / "flipped.safetensors"
    path.write_bytes(bytes(data))
    loaded, original = tl.load(path)["weight"].numpy(), legacy_content()[0]["weight"].numpy()
    assert loaded.tobytes() != original.tobytes() and loaded.flat[1:].tolist() == original.flat[1:].tolist()


def test_non_contiguous_tensors_are_written_in_order(tmp_path: Path) -> None:
    x = tl.arange(6, dtype=tl.float32).reshape(2, 3).T
    tl.save({"x": x}, tmp_path / "t.safetensors")
    assert tl.load(tmp_path / "t.safetensors")["x"].tolist() == x.tolist()


def test_sim_tensors_load_on_cpu_by_default(tmp_path: Path) -> None:
    tl.save({"x": tl.ones(2, 2, device="sim")}, tmp_path / "s.safetensors")
    x = tl.load(tmp_path / "s.safetensors")["x"]
    assert x.device == "cpu" and x.tolist() == [[1.0, 1.0], [1.0, 1.0]]
    assert tl.load(tmp_path / "s.safetensors", device="sim")["x"].device == "sim"


def test_loaded_tensors_are_writable(tmp_path: Path) -> None:
    tl.save({"x": tl.zeros(3)}, tmp_path / "w.safetensors")
    x = tl.load(tmp_path / "w.safetensors")["x"]
    x.add_(1.0)
    assert x.tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("fail", ["fsync", "replace"])
def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            fail: str) -> None:
    path = tmp_path / "ckpt.safetensors"
    tl.save({"x": tl.ones(3)}, path)

    def crash(*args: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, fail, crash)
    with pytest.raises(OSError, match="disk full"):
        tl.save({"x": tl.zeros(3), "y": tl.zeros(100)}, path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]
    assert_same(tl.load(path), {"x": tl.ones(3)})


def test_save_overwrites_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.safetensors"
    tl.save({"x": tl.ones(3)}, path)
    tl.save({"x": tl.zeros(2)}, path)
    assert os.listdir(tmp_path) == ["ckpt.safetensors"] and tl.load(path)["x"].tolist() == [0.0, 0.0]


def _good_file(tmp_path: Path) -> bytes:
    path = tmp_path / "good.safetensors"
    tl.save({"x": tl.ones(50), "step": 1}, path, metadata={"model": "m"})
    return path.read_bytes()


def _zip(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", b"weights")


BAD_FILES = {
    "empty": (lambda good: b"", "empty"),
    "tiny": (lambda good: b"abc", "has 3"),
    "truncated": (lambda good: good[: len(good) - 40], "truncated"),
    "cut in the header": (lambda good: good[:30], "header claims"),
    "corrupt header": (lambda good: good[:8] + b"\xff" * 20 + good[28:], "header does not start with '{'"),
    "pickle": (lambda good: pickle.dumps({"x": [1.0, 2.0]}), "a pickle"),
    "png": (lambda good: b"\x89PNG\r\n\x1a\n" + bytes(64), "a PNG image"),
    "text": (lambda good: b"just some text\n", "not a safetensors file"),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
@pytest.mark.parametrize("reader", [tl.load, tl.load_metadata])
def test_bad_files_raise_checkpoint_error_naming_the_file(tmp_path: Path, kind: str, reader: Any) -> None:
    make, problem = BAD_FILES[kind]
    path = tmp_path / f"{kind}.safetensors"
    path.write_bytes(make(_good_file(tmp_path)))
    with pytest.raises(tl.CheckpointError, match=problem) as info:
        reader(path)
    assert str(path) in str(info.value) and isinstance(info.value, ValueError)


def test_torch_zip_files_are_recognised(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    _zip(path)
    with pytest.raises(tl.CheckpointError, match=r"model\.pt.*zip archive"):
        tl.load(path)


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        tl.load(tmp_path / "nope.safetensors")
    with pytest.raises(FileNotFoundError, match="no_such_dir"):
        tl.save({}, tmp_path / "no_such_dir" / "x.safetensors")


def test_unsavable_values_are_refused_with_their_place(tmp_path: Path) -> None:
    path = tmp_path / "x.safetensors"
    with pytest.raises(TypeError, match=r"cannot store a value of type object at 'a\.b\.1'.*never pickled"):
        tl.save({"a": {"b": [1, object()]}}, path)
    with pytest.raises(TypeError, match="expected a dict"):
        tl.save(tl.ones(2), path)
    with pytest.raises(TypeError, match="dict keys must be str or int"):
        tl.save({(1, 2): 3}, path)
    with pytest.raises(TypeError, match="metadata holds a tensor at 'w'"):
        tl.save({}, path, metadata={"w": tl.ones(1)})
    with pytest.raises(ValueError, match="two tensors would be stored under the name 'a.b'"):
        tl.save({"a": {"b": tl.ones(1)}, "a.b": tl.ones(1)}, path)
    assert not path.exists()
