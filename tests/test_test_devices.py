"""The devices the test suite runs on: cuda joins cpu and sim when present, TENSORLITE_TEST_DEVICES chooses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from devices import ENV, test_devices

TESTS = Path(__file__).resolve().parent


def test_cuda_joins_the_default_devices_only_when_usable() -> None:
    assert test_devices({}, has_cuda=False) == ["cpu", "sim"]
    assert test_devices({}, has_cuda=True) == ["cpu", "sim", "cuda"]


def test_the_variable_chooses_devices_in_order_without_repeats() -> None:
    assert test_devices({ENV: "cuda"}, has_cuda=True) == ["cuda"]
    assert test_devices({ENV: " CPU, sim ,cpu"}, has_cuda=False) == ["cpu", "sim"]
    assert test_devices({ENV: "cpu,sim,cuda"}, has_cuda=True) == ["cpu", "sim", "cuda"]


@pytest.mark.parametrize("value", ["gpu", "cpu,,tpu", ","])
def test_an_unknown_device_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match=f"{ENV}=.*expected a comma-separated list of cpu, sim, cuda"):
        test_devices({ENV: value}, has_cuda=False)


def test_asking_for_cuda_without_it_is_an_error_not_a_silent_skip() -> None:
    with pytest.raises(ValueError, match="asks for cuda, but it is not usable here: CuPy"):
        test_devices({ENV: "cpu,cuda"}, has_cuda=False)


def test_pytest_runs_the_device_fixture_on_the_chosen_devices(tmp_path: Path) -> None:
    """A fresh pytest process with TENSORLITE_TEST_DEVICES=sim runs a device test once, on sim."""
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only",
                          str(TESTS / "test_tensor.py::test_tensor_from_numpy_keeps_dtype_and_copies")],
                         capture_output=True, text=True, timeout=120, cwd=TESTS.parent,
                         env={**os.environ, ENV: "sim"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "[sim]" in out.stdout and "[cpu]" not in out.stdout, out.stdout
