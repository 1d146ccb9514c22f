"""Smoke tests of the benchmark scripts: they run and print their results (no timing assertions)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from oracle import torch_or_skip

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def test_bench_ops_prints_the_ratio():
    out = subprocess.run([sys.executable, str(SCRIPTS / "bench_ops.py"), "--no-torch", "--iterations", "20",
                          "--rounds", "1", "--matmul-rounds", "1", "--size", "32"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert re.search(r"ratio tensorlite/numpy = \d+\.\d+", out.stdout), out.stdout
    assert "torch" not in out.stdout  # --no-torch


@pytest.mark.parity
def test_val_loss_trains_both_frameworks_and_prints_their_losses(tmp_path):
    torch_or_skip()  # the script imports PyTorch in its own process
    out = subprocess.run([sys.executable, str(SCRIPTS / "val_loss.py"), "--seeds", "3", "--max-iters", "10",
                          "--eval-iters", "2", "--spread-batches", "400"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    for name in ("tensorlite", "torch"):
        losses = re.search(rf"seed +3 +{name} +train (\d+\.\d+) +val (\d+\.\d+)", out.stdout)
        assert losses and all(2.5 < float(x) < 4.5 for x in losses.groups()), out.stdout  # near ln(65) = 4.17
    assert (tmp_path / "runs" / "val-loss" / "seed3" / "best.safetensors").exists()
    spread = re.search(r"over 20 batches has std (\d+\.\d+) .* over 200 std (\d+\.\d+)", out.stdout)
    assert spread and 0 < float(spread.group(2)) < float(spread.group(1)), out.stdout  # more batches, less noise
