"""Shared by the benchmark scripts: alternating rounds, the CPU kind (and forcing AVX2 on an AVX-512 machine),
and a description of NumPy's BLAS and tensorlite's compiled kernels."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Callable

# Both libraries forced down to AVX2 on an AVX-512 machine: OpenBLAS's Haswell kernels and NumPy's own loops without
# their AVX-512 variants; PyTorch's ATen, MKL and oneDNN at AVX2.
FORCE_AVX2 = {
    "OPENBLAS_CORETYPE": "Haswell",
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "NUMBA_CPU_NAME": "haswell",  # tensorlite's compiled kernels: AVX2 code
}
FORCED_MARK = "TENSORLITE_BENCH_FORCED_AVX2"


def add_cpu_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cpu", choices=["native", "avx2"], default="native",
                        help="avx2: rerun with both libraries forced down to AVX2 (on an AVX-512 machine)")


def apply_cpu_option(args: argparse.Namespace) -> None:
    """For ``--cpu avx2``, re-execute this script with FORCE_AVX2 set (it must be in place before NumPy and PyTorch
    load); otherwise make sure no leftover OpenBLAS override picks a slower kernel than the CPU has."""
    if args.cpu == "avx2" and not os.environ.get(FORCED_MARK):
        env = {**os.environ, **FORCE_AVX2, FORCED_MARK: "1"}
        env.pop("OPENBLAS_L2_SIZE", None)
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    if args.cpu == "native" and (os.environ.get("OPENBLAS_CORETYPE") or os.environ.get("OPENBLAS_L2_SIZE")):
        env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
        os.execve(sys.executable, [sys.executable, *sys.argv], env)


def cpu_summary() -> str:
    """The CPU model and vector extensions (from /proc/cpuinfo), and whether this run forces AVX2."""
    model, flags = "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    kind = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    forced = ", forced down to AVX2 for this run" if os.environ.get(FORCED_MARK) else ""
    return f"{model} ({kind}{forced}), {os.cpu_count()} cores"


def kernels_summary() -> str:
    """Whether tensorlite's compiled CPU kernels (Numba) are in use."""
    from tensorlite.backends.numpy_backend import compiled_kernels_status

    return compiled_kernels_status()


def alternate(contenders: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Run each contender once per round, in turn (this machine is noisy); the median seconds of each."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, run in contenders.items():
            times[name].append(run())
    return {name: statistics.median(ts) for name, ts in times.items()}


def blas_summary() -> str:
    """NumPy's BLAS library, version, kernel and threads (via threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    return "; ".join(
        f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')} {i.get('num_threads')} threads"
        for i in threadpool_info() if i.get("user_api") == "blas" and "numpy" in i.get("filepath", "")
    )
