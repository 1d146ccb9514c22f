"""``tl.cuda``: CUDA devices and CuPy's memory pool, under the names ``torch.cuda`` gives them.

    tl.cuda.is_available(), tl.cuda.device_count(), tl.cuda.get_device_name(0)
    tl.cuda.synchronize()                 # wait for the device's queued work (and report its pending checks)
    tl.cuda.memory_allocated()            # bytes held by live arrays (CuPy pool: used_bytes)
    tl.cuda.memory_reserved()             # bytes the pool holds from CUDA, live or cached (total_bytes)
    tl.cuda.reset_peak_memory_stats()     # start tracking peaks; then tl.cuda.max_memory_allocated()
    tl.cuda.empty_cache()                 # hand the pool's free blocks back to CUDA (free_all_blocks)

CuPy keeps one memory pool per device (https://docs.cupy.dev/en/stable/user_guide/memory.html); its
figures are those of the current device, so each function here reads them under the device asked for
(default: the current one, as in PyTorch). CuPy's pool does not track peaks: ``reset_peak_memory_stats``
installs a ``cupy.cuda.MemoryHook`` (in the calling thread) that notes the pool's use after each allocation,
about a microsecond per allocation, so peak tracking is off until asked for, and ``max_memory_allocated``
says so rather than return a wrong figure. The reserved peak needs no hook: the pool only grows between
``empty_cache`` calls.

Without CuPy or a GPU, ``is_available()`` is False, ``device_count()`` 0, and the other functions raise a
RuntimeError saying why; the seeding functions then do nothing, as PyTorch's. There is no
bfloat16 (``is_bf16_supported`` is False), ``set_device`` says to name the device instead, and ``tl.cuda.amp``
is ``tl.amp``.
"""

from __future__ import annotations

from typing import Any

from tensorlite import amp, scope
from tensorlite.backends import get_backend
from tensorlite.backends.cupy_backend import cuda_status, import_cupy

_peak_allocated: dict[int, int] = {}  # per device, while a tracking hook is installed
_peak_reserved: dict[int, int] = {}  # per device: the pool's size just before each empty_cache
_hook: Any = None


def is_available() -> bool:
    """Whether CuPy is installed and sees at least one CUDA device."""
    return cuda_status()[0]


def device_count() -> int:
    """The number of CUDA devices CuPy sees (0 without CuPy or a driver)."""
    if not is_available():
        return 0
    return import_cupy().cuda.runtime.getDeviceCount()


def _cupy() -> Any:
    usable, reason = cuda_status()
    if not usable:
        raise RuntimeError(f"tl.cuda: no CUDA device is usable: CuPy {reason}")
    return import_cupy()


def _index(device: Any) -> int:
    """The CUDA device index of ``device``: None (the current device), an int, "cuda:N" or a tl.device."""
    if device is None:
        return _cupy().cuda.Device().id
    if isinstance(device, int):
        return device
    from tensorlite.device import device as as_device

    parsed = as_device(device)
    if parsed.type != "cuda":
        raise ValueError(f"tl.cuda: expected a CUDA device, got {parsed}")
    return parsed.index


def current_device() -> int:
    """The index of CuPy's current CUDA device."""
    return _index(None)


def get_device_name(device: Any = None) -> str:
    """The GPU's name, e.g. "NVIDIA H200"."""
    name = _cupy().cuda.runtime.getDeviceProperties(_index(device))["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def synchronize(device: Any = None) -> None:
    """Wait until every kernel queued on the device has finished; then raise any failed check of device values
    recorded since the last read (see ``tensorlite.device_checks``)."""
    from tensorlite import device_checks
    from tensorlite.device import device as as_device

    index = _index(device)
    _cupy().cuda.Device(index).synchronize()
    device_checks.raise_pending(as_device(f"cuda:{index}"))


def _pool_figure(device: Any, read: str) -> tuple[int, int]:
    """(device index, ``getattr(pool, read)()``) of the default memory pool, read under that device."""
    cupy = _cupy()
    index = _index(device)
    with cupy.cuda.Device(index):
        return index, getattr(cupy.get_default_memory_pool(), read)()


def memory_allocated(device: Any = None) -> int:
    """Bytes of device memory held by live arrays (CuPy's ``MemoryPool.used_bytes``)."""
    return _pool_figure(device, "used_bytes")[1]


def memory_reserved(device: Any = None) -> int:
    """Bytes the memory pool holds from CUDA, in use or cached for reuse (``MemoryPool.total_bytes``)."""
    return _pool_figure(device, "total_bytes")[1]


def max_memory_reserved(device: Any = None) -> int:
    """The most bytes the pool has held since the last ``reset_peak_memory_stats``."""
    index, total = _pool_figure(device, "total_bytes")
    return max(total, _peak_reserved.get(index, 0))


def max_memory_allocated(device: Any = None) -> int:
    """The most bytes held by live arrays since ``reset_peak_memory_stats`` (which starts the tracking)."""
    index, used = _pool_figure(device, "used_bytes")
    if _hook is None:
        raise RuntimeError("tl.cuda.max_memory_allocated: peak tracking is off (CuPy's pool does not track peaks); "
                           "call tl.cuda.reset_peak_memory_stats() before the code to measure")
    return max(used, _peak_allocated.get(index, 0))


def reset_peak_memory_stats(device: Any = None) -> None:
    """Start (or restart) tracking the peaks from the pool's present use, for ``max_memory_allocated`` and
    ``max_memory_reserved``. Installs the tracking hook in the calling thread on first use."""
    global _hook
    cupy = _cupy()
    index, used = _pool_figure(device, "used_bytes")
    _peak_allocated[index] = used
    _peak_reserved[index] = 0
    if _hook is None:
        pool = cupy.get_default_memory_pool()

        class PeakHook(cupy.cuda.MemoryHook):
            """Notes the pool's use on each device after every allocation (current device = the allocating one)."""

            name = "tensorlite_peak_memory"

            def malloc_postprocess(self, device_id: int, **kwargs: Any) -> None:
                used_now = pool.used_bytes()
                if used_now > _peak_allocated.get(device_id, 0):
                    _peak_allocated[device_id] = used_now

        _hook = PeakHook()
        _hook.__enter__()  # active in this thread from now on (CuPy's hooks are thread-local)


def empty_cache() -> None:
    """Hand the memory pool's cached free blocks back to CUDA on every device (CuPy's ``free_all_blocks``), so
    that other processes can use them. Live arrays are untouched."""
    cupy = _cupy()
    pool = cupy.get_default_memory_pool()
    for index in range(device_count()):
        with cupy.cuda.Device(index):
            _peak_reserved[index] = max(_peak_reserved.get(index, 0), pool.total_bytes())
            pool.free_all_blocks()
    cupy.get_default_pinned_memory_pool().free_all_blocks()


def memory_stats(device: Any = None) -> dict[str, int]:
    """The pool's figures under PyTorch's keys (``allocated_bytes.all.current`` ...); peaks of allocated bytes
    only while tracking (after ``reset_peak_memory_stats``)."""
    stats = {"allocated_bytes.all.current": memory_allocated(device),
             "reserved_bytes.all.current": memory_reserved(device),
             "reserved_bytes.all.peak": max_memory_reserved(device)}
    if _hook is not None:
        stats["allocated_bytes.all.peak"] = max_memory_allocated(device)
    return stats


def memory_summary_line(device: Any = None) -> str:
    """One line for reports: used, held and (when tracked) peak bytes of the pool, in MiB."""
    stats = memory_stats(device)
    peak = stats.get("allocated_bytes.all.peak")
    mib = 2**20
    return (f"used {stats['allocated_bytes.all.current'] / mib:.1f} MiB, held "
            f"{stats['reserved_bytes.all.current'] / mib:.1f} MiB, peak "
            + (f"{peak / mib:.1f} MiB" if peak is not None else "untracked (tl.cuda.reset_peak_memory_stats)"))


def manual_seed(seed: int) -> None:
    """Seed the random stream of CUDA device 0 (nothing to seed without CUDA, as in PyTorch)."""
    if is_available():
        get_backend("cuda", 0).manual_seed(int(seed))


def manual_seed_all(seed: int) -> None:
    """Seed the random streams of every CUDA device (nothing without CUDA)."""
    for index in range(device_count()):
        get_backend("cuda", index).manual_seed(int(seed))


def is_bf16_supported(including_emulation: bool = True) -> bool:
    """False: tensorlite has no bfloat16 dtype (NumPy and CuPy have none)."""
    return False


set_device = scope.out_of_scope(
    "torch.cuda.set_device", "name the device where tensors and modules go (device='cuda:1', "
    "model.to('cuda:1')) or make it the default with tl.set_default_device('cuda:1')")

__all__ = ["amp", "current_device", "device_count", "empty_cache", "get_device_name", "is_available",
           "is_bf16_supported", "manual_seed", "manual_seed_all", "max_memory_allocated", "max_memory_reserved",
           "memory_allocated", "memory_reserved", "memory_stats", "reset_peak_memory_stats", "set_device",
           "synchronize"]
