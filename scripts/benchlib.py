"""Shared by the benchmark scripts: alternating rounds and a description of NumPy's BLAS."""

from __future__ import annotations

import statistics
from collections.abc import Callable


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
