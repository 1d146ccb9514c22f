"""Smoke tests of the benchmark scripts: they run and print their results (no timing assertions)."""

import re
import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def test_bench_ops_prints_the_ratio():
    out = subprocess.run([sys.executable, str(SCRIPTS / "bench_ops.py"), "--no-torch", "--iterations", "20",
                          "--rounds", "1", "--matmul-rounds", "1", "--size", "32"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert re.search(r"ratio tensorlite/numpy = \d+\.\d+", out.stdout), out.stdout
    assert "torch" not in out.stdout  # --no-torch
