"""Training on several processes, with ``torch.distributed``'s names and signatures.

    # mpiexec -n 2 python train.py
    import tensorlite as tl
    import tensorlite.distributed as dist

    dist.init_process_group()  # "mpi" for CPU tensors (mpi4py); "nccl" when the default device is CUDA
    model = tl.nn.parallel.DistributedDataParallel(Net())  # rank 0's weights everywhere; gradients averaged
    t = tl.ones(3) * dist.get_rank()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)  # in place: the sum over ranks, on every rank
    dist.destroy_process_group()

The engines are MPI, through mpi4py (the ``[mpi]`` extra), and NCCL, through CuPy's bindings; there is no
rendezvous or transport of tensorlite's own. Ranks and the world size come from the MPI launcher
(``mpiexec -n N``, Slurm's ``srun --mpi=pmix``), which also starts a single process as a world of one.
With backend ``"nccl"``, CUDA tensors go through NCCL (bootstrapped over MPI) and host tensors through MPI;
with ``"mpi"``, every tensor goes through MPI (a CUDA tensor by way of a host copy). Each collective takes
``async_op=True`` to return a ``Work`` instead of waiting.

MPI has no timeouts: a rank that stops taking part would leave the others waiting forever. So, in a world
of more than one, ``init_process_group`` installs a ``sys.excepthook`` that prints an uncaught exception
and then ends every rank (``abort``, MPI_Abort), and the ``tensorlite`` command does the same for its
errors. ``import tensorlite`` never imports mpi4py: ``init_process_group`` does.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from tensorlite.device import Device, default_device
from tensorlite.distributed.group import ProcessGroup, ReduceOp, Work, check_reducible, done_work
from tensorlite.tensor import Tensor

BACKENDS = ("mpi", "nccl")
# How long a rank that aborts the job waits first: mpiexec passes each rank's output on through a pipe, and MPI_Abort
# can end the launcher before it has read the error line the rank has just printed (MPICH lost it in 3 runs of 21).
OUTPUT_GRACE_SECONDS = 0.5
_NOT_INITIALIZED = ("Default process group has not been initialized, please make sure to call "
                    "init_process_group (and run the script under an MPI launcher: mpiexec -n N ...)")


@dataclass
class _World:
    """The default process group: the backend asked for, the MPI group, and the NCCL group for CUDA tensors."""

    backend: str
    mpi: Any  # an MPIGroup
    nccl: Any  # an NCCLGroup, or None
    previous_excepthook: Any


_world: _World | None = None


# -- availability and state ------------------------------------------------------------------------------
def is_mpi_available() -> bool:
    """Whether mpi4py is installed (without importing it, which would start MPI)."""
    return importlib.util.find_spec("mpi4py") is not None


def is_nccl_available() -> bool:
    """Whether CuPy is installed with its NCCL bindings (imports CuPy)."""
    if importlib.util.find_spec("cupy") is None:
        return False
    try:
        from cupy.cuda import nccl  # noqa: F401
    except ImportError:
        return False
    return True


def is_available() -> bool:
    """Whether ``init_process_group`` can start: mpi4py, which every backend needs to start, is installed."""
    return is_mpi_available()


def is_initialized() -> bool:
    """Whether ``init_process_group`` has run (and ``destroy_process_group`` not since)."""
    return _world is not None


def _require(op: str) -> _World:
    if _world is None:
        raise ValueError(f"{op}: {_NOT_INITIALIZED}")
    return _world


def get_rank(group: None = None) -> int:
    """This process's rank, 0 .. world size - 1."""
    _check_group("get_rank", group)
    return _require("get_rank").mpi.rank


def get_world_size(group: None = None) -> int:
    """How many processes take part."""
    _check_group("get_world_size", group)
    return _require("get_world_size").mpi.size


def get_backend(group: None = None) -> str:
    """``"mpi"`` or ``"nccl"``: the backend ``init_process_group`` started."""
    _check_group("get_backend", group)
    return _require("get_backend").backend


def get_node_local_rank(fallback_rank: int | None = None) -> int:
    """This process's rank among those on its machine (which GPU it takes): from MPI once initialized, else
    ``$LOCAL_RANK``, else ``fallback_rank``."""
    if _world is not None:
        return _world.mpi.local_rank
    if "LOCAL_RANK" in os.environ:
        return int(os.environ["LOCAL_RANK"])
    if fallback_rank is not None:
        return fallback_rank
    raise RuntimeError(f"get_node_local_rank: {_NOT_INITIALIZED}; or set LOCAL_RANK, or pass fallback_rank")


# -- starting and ending -----------------------------------------------------------------------------------
def init_process_group(backend: str | None = None, *, world_size: int = -1, rank: int = -1,
                       device_id: int | str | Device | None = None) -> None:
    """Join the processes the MPI launcher started. ``backend``: ``"mpi"`` (CPU tensors, through mpi4py) or
    ``"nccl"`` (CUDA tensors, through CuPy's NCCL, on GPU ``device_id``: by default the rank's number on its
    machine); None picks ``"nccl"`` when the default device is CUDA, else ``"mpi"``. ``world_size`` and
    ``rank``, if given, must be what the launcher assigned."""
    global _world
    if _world is not None:
        raise RuntimeError("init_process_group: trying to initialize the default process group twice")
    if backend is None:
        backend = "nccl" if default_device().type == "cuda" else "mpi"
    if not isinstance(backend, str) or backend.lower() not in BACKENDS:
        raise ValueError(f"init_process_group: unknown backend {backend!r}: expected 'mpi' (CPU tensors, through "
                         "mpi4py) or 'nccl' (CUDA tensors, through CuPy's NCCL)")
    backend = backend.lower()
    from tensorlite.distributed.mpi import MPIGroup, import_mpi

    mpi = MPIGroup(import_mpi().COMM_WORLD)
    for name, given, actual in (("world_size", world_size, mpi.size), ("rank", rank, mpi.rank)):
        if given != -1 and given != actual:
            raise ValueError(f"init_process_group: {name}={given}, but the MPI launcher started this process with "
                             f"{name} {actual}; leave it out (ranks and sizes come from mpiexec or srun)")
    _world = _World(backend, mpi, None, sys.excepthook)
    if mpi.size > 1:
        sys.excepthook = _abort_on_uncaught_exception
    if backend == "nccl":
        from tensorlite.distributed.nccl import NCCLGroup

        try:
            _world.nccl = NCCLGroup(mpi, _cuda_index(device_id, mpi.local_rank))
        except BaseException:
            if mpi.size == 1:  # nothing waits on this process: leave no half-started group behind
                sys.excepthook, _world = _world.previous_excepthook, None
            raise  # with several ranks the others wait in the NCCL start: uncaught, this ends the job


def _cuda_index(device_id: int | str | Device | None, local_rank: int) -> int:
    """The GPU of this rank: ``device_id`` (an index, ``"cuda:N"`` or a device), else its rank on the machine."""
    if device_id is None:
        from tensorlite.backends.cupy_backend import import_cupy

        count = import_cupy().cuda.runtime.getDeviceCount()
        if count == 0:
            raise RuntimeError("init_process_group: backend 'nccl' needs a CUDA device, and none was found")
        return local_rank % count
    if isinstance(device_id, int) and not isinstance(device_id, bool):
        return device_id
    from tensorlite.device import device

    found = device(device_id)
    if found.type != "cuda":
        raise ValueError(f"init_process_group: backend 'nccl' runs on a CUDA device, got device_id={device_id!r}")
    return found.index


def _abort_on_uncaught_exception(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
    """``sys.excepthook`` in a world of several ranks: print the error as usual, then end every rank."""
    world = _world
    (world.previous_excepthook if world is not None else sys.__excepthook__)(kind, error, tb)
    abort(1)


def abort(errorcode: int = 1) -> None:
    """End every process of the job now, with ``errorcode`` (MPI_Abort): what a rank that cannot go on calls so
    that the others do not wait for it forever. Nothing happens if no process group was started."""
    if _world is not None:
        sys.stderr.flush()
        sys.stdout.flush()
        time.sleep(OUTPUT_GRACE_SECONDS)  # (what this rank printed reaches the user: see OUTPUT_GRACE_SECONDS)
        _world.mpi.abort(errorcode)


def destroy_process_group(group: None = None) -> None:
    """Leave the process group (NCCL's communicator is freed; MPI itself ends with the process)."""
    global _world
    _check_group("destroy_process_group", group)
    world = _require("destroy_process_group")
    if world.nccl is not None:
        world.nccl.destroy()
    if sys.excepthook is _abort_on_uncaught_exception:
        sys.excepthook = world.previous_excepthook
    _world = None


# -- collectives -------------------------------------------------------------------------------------------------
def _check_group(op: str, group: Any) -> None:
    if group is not None:
        raise ValueError(f"{op}: only the default group (group=None) exists in tensorlite")


def _group_for(op: str, tensor: Any, group: Any) -> ProcessGroup:
    """The group that moves ``tensor``: NCCL for a CUDA tensor when it was started, else MPI."""
    _check_group(op, group)
    world = _require(op)
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{op}: expected a tensor, got {type(tensor).__name__}")
    return world.nccl if world.nccl is not None and tensor.device.type == "cuda" else world.mpi


def _done(work: Work, async_op: bool) -> Work | None:
    if async_op:
        return work
    work.wait()
    return None


def _check_like(op: str, what: str, tensors: Sequence[Any], like: Tensor, count: int) -> None:
    """``tensors`` are ``count`` tensors of ``like``'s shape, dtype and device."""
    if not isinstance(tensors, Sequence) or len(tensors) != count:
        raise ValueError(f"{op}: {what} must be a list of world_size = {count} tensors, got "
                         f"{len(tensors) if isinstance(tensors, Sequence) else type(tensors).__name__}")
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor) or (t.shape, t.dtype, t.device) != (like.shape, like.dtype, like.device):
            got = f"{t.shape} {t.dtype} on {t.device}" if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"{op}: {what}[{i}] must be a {like.shape} {like.dtype} tensor on {like.device}, "
                             f"got {got}")


def _check_sizes(op: str, big: Tensor, small: Tensor, size: int, names: tuple[str, str]) -> None:
    """``big`` holds ``size`` times as many elements as ``small``, of its dtype and device."""
    if big.numel() != size * small.numel() or big.dtype != small.dtype or big.device != small.device:
        raise ValueError(f"{op}: {names[0]} must hold world_size ({size}) x {small.numel()} elements of "
                         f"{small.dtype} on {small.device} ({names[1]}'s), got {big.numel()} of {big.dtype} on "
                         f"{big.device}")


def all_reduce(tensor: Tensor, op: ReduceOp = ReduceOp.SUM, group: None = None,
               async_op: bool = False) -> Work | None:
    """Combine ``tensor`` across ranks with ``op`` (SUM, AVG, MIN, MAX), in place on every rank."""
    pg = _group_for("all_reduce", tensor, group)
    check_reducible("all_reduce", op, tensor.dtype)
    return _done(pg.all_reduce(tensor._data, op, tensor.device.backend), async_op)


def broadcast(tensor: Tensor, src: int, group: None = None, async_op: bool = False) -> Work | None:
    """Overwrite ``tensor`` on every rank with rank ``src``'s, in place."""
    pg = _group_for("broadcast", tensor, group)
    if not 0 <= src < pg.size:
        raise ValueError(f"broadcast: src must be a rank in 0..{pg.size - 1}, got {src}")
    return _done(pg.broadcast(tensor._data, src, tensor.device.backend), async_op)


def all_gather(tensor_list: list[Tensor], tensor: Tensor, group: None = None, async_op: bool = False) -> Work | None:
    """``tensor_list[r]`` receives rank r's ``tensor``, on every rank (the list holds world_size tensors)."""
    pg = _group_for("all_gather", tensor, group)
    _check_like("all_gather", "tensor_list", tensor_list, tensor, pg.size)
    backend = tensor.device.backend
    gathered = backend.xp.empty((pg.size, *tensor.shape), dtype=tensor.dtype)

    def fill() -> None:
        for i, out in enumerate(tensor_list):
            out._data[...] = gathered[i]

    return _done(pg.all_gather(gathered, tensor._data, backend)._and_then(fill), async_op)


def all_gather_into_tensor(output_tensor: Tensor, input_tensor: Tensor, group: None = None,
                           async_op: bool = False) -> Work | None:
    """``output_tensor`` (world_size times ``input_tensor``'s elements, e.g. its rows stacked) receives every
    rank's ``input_tensor`` in rank order."""
    pg = _group_for("all_gather_into_tensor", input_tensor, group)
    _check_sizes("all_gather_into_tensor", output_tensor, input_tensor, pg.size, ("output_tensor", "input_tensor"))
    return _done(pg.all_gather(output_tensor._data, input_tensor._data, input_tensor.device.backend), async_op)


def reduce_scatter(output: Tensor, input_list: list[Tensor], op: ReduceOp = ReduceOp.SUM, group: None = None,
                   async_op: bool = False) -> Work | None:
    """Rank r's ``output`` receives the combination (``op``) over ranks of their ``input_list[r]``."""
    pg = _group_for("reduce_scatter", output, group)
    _check_like("reduce_scatter", "input_list", input_list, output, pg.size)
    check_reducible("reduce_scatter", op, output.dtype)
    backend = output.device.backend
    stacked = backend.xp.stack([t._data for t in input_list])
    return _done(pg.reduce_scatter(output._data, stacked, op, backend), async_op)


def reduce_scatter_tensor(output: Tensor, input: Tensor, op: ReduceOp = ReduceOp.SUM, group: None = None,
                          async_op: bool = False) -> Work | None:
    """``input`` holds world_size blocks of ``output``'s size; rank r's ``output`` receives block r combined
    over ranks with ``op``."""
    pg = _group_for("reduce_scatter_tensor", output, group)
    _check_sizes("reduce_scatter_tensor", input, output, pg.size, ("input", "output"))
    check_reducible("reduce_scatter_tensor", op, output.dtype)
    return _done(pg.reduce_scatter(output._data, input._data, op, output.device.backend), async_op)


def barrier(group: None = None, async_op: bool = False) -> Work | None:
    """Return once every rank has reached it (with NCCL, after this rank's queued GPU work has finished)."""
    _check_group("barrier", group)
    world = _require("barrier")
    (world.nccl or world.mpi).barrier()
    return done_work() if async_op else None


__all__ = ["BACKENDS", "ReduceOp", "Work", "abort", "all_gather", "all_gather_into_tensor", "all_reduce", "barrier",
           "broadcast", "destroy_process_group", "get_backend", "get_node_local_rank", "get_rank", "get_world_size",
           "init_process_group", "is_available", "is_initialized", "is_mpi_available", "is_nccl_available",
           "reduce_scatter", "reduce_scatter_tensor"]
