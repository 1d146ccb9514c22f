"""The NCCL process group, through CuPy's bindings (``cupy.cuda.nccl``): collectives on CUDA arrays.

As ChainerMN and PyTorch do it, MPI bootstraps NCCL: rank 0 asks NCCL for a unique id
(``nccl.get_unique_id()``), MPI broadcasts it, and each rank joins the communicator
(``nccl.NcclCommunicator(size, id, rank)``) on its own GPU. Collectives run on a stream of the group's
own, ordered after the work already queued on the current stream (an event), so that they overlap the
kernels queued after them; ``Work.wait()`` orders the current stream after the collective (another event)
without blocking the host, as PyTorch's NCCL work does. Written to CuPy's documented API; see
docs/distributed.md for what has been run on a GPU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tensorlite.backends import Array, Backend
from tensorlite.backends.cupy_backend import import_cupy
from tensorlite.distributed.group import ProcessGroup, ReduceOp, Work, average_by, then


class NCCLGroup(ProcessGroup):
    """The ranks of ``mpi_group`` (an ``MPIGroup``), one GPU each: CUDA device ``device_index``."""

    backend_name = "nccl"

    def __init__(self, mpi_group: Any, device_index: int) -> None:
        self.cupy = cupy = import_cupy()
        try:
            from cupy.cuda import nccl
        except ImportError as exc:
            raise RuntimeError(f"backend 'nccl': this CuPy ({cupy.__version__}) has no NCCL bindings: install a "
                               "CuPy wheel for your CUDA version, or use backend 'mpi'") from exc
        self.nccl, self.mpi_group = nccl, mpi_group
        self.rank, self.size, self.device_index = mpi_group.rank, mpi_group.size, device_index
        self.device = cupy.cuda.Device(device_index)
        unique_id = nccl.get_unique_id() if self.rank == 0 else None
        unique_id = mpi_group.comm.bcast(unique_id, root=0)
        with self.device:
            self.comm = nccl.NcclCommunicator(self.size, unique_id, self.rank)
            self.stream = cupy.cuda.Stream(non_blocking=True)
        self._ops = {ReduceOp.SUM: nccl.NCCL_SUM, ReduceOp.AVG: nccl.NCCL_SUM, ReduceOp.MIN: nccl.NCCL_MIN,
                     ReduceOp.MAX: nccl.NCCL_MAX}
        # dtype name -> NCCL's type
        self._types = {"int8": nccl.NCCL_INT8, "uint8": nccl.NCCL_UINT8,
                       "int32": nccl.NCCL_INT32, "int64": nccl.NCCL_INT64, "float16": nccl.NCCL_FLOAT16,
                       "float32": nccl.NCCL_FLOAT32, "float64": nccl.NCCL_FLOAT64}

    def _check(self, array: Array) -> None:
        if not isinstance(array, self.cupy.ndarray) or array.device.id != self.device_index:
            where = f"cuda:{array.device.id}" if isinstance(array, self.cupy.ndarray) else type(array).__name__
            raise RuntimeError(f"backend 'nccl': this rank's communicator serves cuda:{self.device_index}, the tensor "
                               f"is on {where}; move it there, or use backend 'mpi' for host tensors")
        if array.dtype.name not in self._types:
            raise TypeError(f"backend 'nccl': NCCL cannot reduce {array.dtype} tensors; expected one of "
                            f"{', '.join(self._types)}")

    def _buffer(self, array: Array) -> tuple[Array, Callable[[], None] | None]:
        """``array`` if NCCL can use it as it is, else a contiguous copy and what copies a result back."""
        self._check(array)
        if array.flags.c_contiguous:
            return array, None
        copy = self.cupy.ascontiguousarray(array)

        def write_back() -> None:
            array[...] = copy

        return copy, write_back

    def _run(self, launch: Callable[[int], None], finish: Callable[[], None] | None, *buffers: Array) -> Work:
        """``launch(stream_ptr)`` on the group's stream after what the current stream has queued; the work."""
        with self.device:
            current = self.cupy.cuda.get_current_stream()
            self.stream.wait_event(current.record())
            launch(self.stream.ptr)
            done = self.stream.record()
        return Work(lambda: done.done, lambda: current.wait_event(done), finish, buffers)

    def all_reduce(self, array: Array, op: ReduceOp, backend: Backend) -> Work:
        buffer, write_back = self._buffer(array)
        kind, code = self._types[buffer.dtype.name], self._ops[op]
        average = average_by(self.size, buffer) if op is ReduceOp.AVG else None
        return self._run(lambda stream: self.comm.allReduce(buffer.data.ptr, buffer.data.ptr, buffer.size, kind,
                                                            code, stream), then(average, write_back), buffer)

    def broadcast(self, array: Array, src: int, backend: Backend) -> Work:
        buffer, write_back = self._buffer(array)
        kind = self._types[buffer.dtype.name]
        return self._run(lambda stream: self.comm.broadcast(buffer.data.ptr, buffer.data.ptr, buffer.size, kind, src,
                                                            stream), write_back, buffer)

    def all_gather(self, out: Array, array: Array, backend: Backend) -> Work:
        send, _ = self._buffer(array)
        receive, write_back = self._buffer(out)
        kind = self._types[send.dtype.name]
        return self._run(lambda stream: self.comm.allGather(send.data.ptr, receive.data.ptr, send.size, kind, stream),
                         write_back, send, receive)

    def reduce_scatter(self, out: Array, array: Array, op: ReduceOp, backend: Backend) -> Work:
        send, _ = self._buffer(array)
        receive, write_back = self._buffer(out)
        kind, code = self._types[send.dtype.name], self._ops[op]
        average = average_by(self.size, receive) if op is ReduceOp.AVG else None
        return self._run(lambda stream: self.comm.reduceScatter(send.data.ptr, receive.data.ptr, receive.size, kind,
                                                                code, stream), then(average, write_back), send, receive)

    def barrier(self) -> None:
        with self.device:
            self.cupy.cuda.get_current_stream().synchronize()
        self.mpi_group.barrier()

    def destroy(self) -> None:
        self.comm.destroy()
