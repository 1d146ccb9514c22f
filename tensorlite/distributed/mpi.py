"""The MPI process group, through mpi4py: ranks and sizes from the launcher, collectives on host arrays.

mpi4py is imported here only, when ``init_process_group`` builds the group (importing it starts MPI), so
``import tensorlite`` never loads it. Collectives are MPI's nonblocking ones (``Iallreduce``, ``Ibcast``,
``Iallgather``, ``Ireduce_scatter_block``) on NumPy buffers, in place; arrays of another device (CUDA,
sim), non-contiguous ones and dtypes MPI cannot reduce (float16, bool) travel through a host copy. Most
MPI libraries advance a nonblocking collective only while the process is inside an MPI call:
``Work.is_completed`` (``MPI_Test``) is such a call, which ``DistributedDataParallel`` makes as backward
goes on, so that a gradient bucket's reduction moves while the rest of backward runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy

from tensorlite.backends import Array, Backend
from tensorlite.distributed.group import ProcessGroup, ReduceOp, Work, average_by, then

INSTALL_HINT = ('pip install "tensorlite[mpi]" (mpi4py with MPICH), or pip install mpi4py to use the MPI your '
                "cluster provides")
# dtypes MPI cannot reduce as they are -> the dtype they travel as
_STAGED_DTYPES = {numpy.dtype(numpy.float16): numpy.dtype(numpy.float32), numpy.dtype(bool): numpy.dtype(numpy.uint8)}


def import_mpi() -> Any:
    """``mpi4py.MPI`` (which initialises MPI on first import), or a RuntimeError saying how to install it."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise RuntimeError(f"tensorlite.distributed needs mpi4py, which is not installed: {INSTALL_HINT}") from exc
    return MPI


def _usable(array: Array) -> bool:
    """Whether MPI can read and write ``array`` as it is."""
    return (isinstance(array, numpy.ndarray) and array.flags.c_contiguous and array.flags.writeable
            and array.dtype not in _STAGED_DTYPES)


def _host_copy(array: Array, backend: Backend) -> numpy.ndarray:
    host = backend.to_host(array)
    return numpy.array(host, dtype=_STAGED_DTYPES.get(host.dtype, host.dtype), order="C", copy=True)


def send_buffer(array: Array, backend: Backend) -> numpy.ndarray:
    """``array`` as a contiguous host buffer MPI can read (itself when it already is one)."""
    return array if _usable(array) else _host_copy(array, backend)


def receive_buffer(array: Array, backend: Backend) -> tuple[numpy.ndarray, Callable[[], None] | None]:
    """A contiguous host buffer holding ``array`` that MPI can write a result into, and, when it is a copy,
    what copies the result back into ``array`` (None when it is ``array`` itself)."""
    if _usable(array):
        return array, None
    if isinstance(array, numpy.ndarray) and not array.flags.writeable:
        raise ValueError("the tensor to receive the result is a read-only view (e.g. from expand or broadcast_to): "
                         "pass one that owns its memory (.clone())")
    host = _host_copy(array, backend)

    def write_back() -> None:
        array[...] = host if isinstance(array, numpy.ndarray) else backend.from_host(host.astype(array.dtype))

    return host, write_back


class MPIGroup(ProcessGroup):
    """Every process of ``comm`` (MPI's ``COMM_WORLD`` for the default group)."""

    backend_name = "mpi"

    def __init__(self, comm: Any) -> None:
        self.MPI = import_mpi()
        self.comm = comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        node = comm.Split_type(self.MPI.COMM_TYPE_SHARED)  # the ranks on this machine
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
        node.Free()
        self._ops = {ReduceOp.SUM: self.MPI.SUM, ReduceOp.AVG: self.MPI.SUM, ReduceOp.MIN: self.MPI.MIN,
                     ReduceOp.MAX: self.MPI.MAX}

    def _work(self, request: Any, finish: Callable[[], None] | None, *buffers: Any) -> Work:
        return Work(request.Test, request.Wait, finish, buffers)

    def all_reduce(self, array: Array, op: ReduceOp, backend: Backend) -> Work:
        buffer, write_back = receive_buffer(array, backend)
        request = self.comm.Iallreduce(self.MPI.IN_PLACE, buffer, op=self._ops[op])
        average = average_by(self.size, buffer) if op is ReduceOp.AVG else None
        return self._work(request, then(average, write_back), buffer)

    def broadcast(self, array: Array, src: int, backend: Backend) -> Work:
        buffer, write_back = receive_buffer(array, backend)
        return self._work(self.comm.Ibcast(buffer, root=src), write_back, buffer)

    def all_gather(self, out: Array, array: Array, backend: Backend) -> Work:
        send = send_buffer(array, backend)
        receive, write_back = receive_buffer(out, backend)
        return self._work(self.comm.Iallgather(send, receive), write_back, send, receive)

    def reduce_scatter(self, out: Array, array: Array, op: ReduceOp, backend: Backend) -> Work:
        send = send_buffer(array, backend)
        receive, write_back = receive_buffer(out, backend)
        request = self.comm.Ireduce_scatter_block(send, receive, op=self._ops[op])
        average = average_by(self.size, receive) if op is ReduceOp.AVG else None
        return self._work(request, then(average, write_back), send, receive)

    def barrier(self) -> None:
        self.comm.Barrier()

    def abort(self, errorcode: int) -> None:
        """End every process of the job now (``MPI_Abort``)."""
        self.comm.Abort(errorcode)
