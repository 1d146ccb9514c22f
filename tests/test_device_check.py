"""scripts/device_check.sh: without CUDA it checks what it can and says so in one line (exit 0); its parts run here
on the simulated device; the test subset it names exists."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from devices import cuda_available

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "device_check.sh"
sys.path.insert(0, str(ROOT / "scripts"))
import device_check  # noqa: E402


def run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, "PYTHON": sys.executable})


def test_the_script_parses_and_names_existing_tests() -> None:
    assert run("bash", "-n", str(SCRIPT)).returncode == 0
    missing = [path for path in device_check.TEST_SUBSET if not (ROOT / path).is_file()]
    assert not missing
    assert "tests/test_ops_elementwise.py" in device_check.TEST_SUBSET and "tests/test_model_steps.py" in \
        device_check.TEST_SUBSET


@pytest.mark.skipif(cuda_available(), reason="with CUDA the script runs the whole check")
def test_without_cuda_it_checks_what_it_can_and_says_so_in_one_line(tmp_path: Path) -> None:
    out = run("bash", str(SCRIPT), str(tmp_path / "out"))
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("device_check: no usable CUDA device here"), out.stdout
    assert "fused kernels' math on NumPy: ok" in lines[0], out.stdout
    preflight = json.loads((tmp_path / "out" / "preflight.json").read_text())
    assert preflight["cuda_usable"] is False and max(preflight["fused_math_on_numpy"].values()) < 1e-5


def test_the_training_part_and_the_summary_run_on_the_simulated_device(tmp_path: Path) -> None:
    trained = run(sys.executable, "scripts/device_check.py", "train", str(tmp_path), "--device", "sim",
                  "--iters", "20", "--preset", "cpu")
    assert trained.returncode == 0, trained.stdout + trained.stderr
    result = json.loads((tmp_path / "train.json").read_text())
    assert result["iters"] == 20 and result["loss_fell"] and set(result["loss"]) == {"1", "20"}
    (tmp_path / "phases.txt").write_text("train: ok in 9s\n")
    summary = run(sys.executable, "scripts/device_check.py", "summary", str(tmp_path))
    assert summary.returncode == 0, summary.stderr
    text = (tmp_path / "summary.txt").read_text()
    assert "train: ok in 9s" in text and "20 iterations of `cpu`" in text
    assert json.loads((tmp_path / "summary.json").read_text())["train"]["device"] == "sim"
