"""What the training loops need to train data-parallel, when ``tensorlite.distributed`` has been started (the
``tensorlite`` command does it under ``mpiexec``): which rank this is, the model each rank trains, and the
decisions all ranks must take together, so that none of them goes on alone and leaves the others waiting.

Without a process group (one process), every function here is the identity or a constant: the loops run as
before, bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy

from tensorlite import distributed as dist
from tensorlite.creation import tensor
from tensorlite.nn import Module


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def is_main() -> bool:
    """Whether this process writes the run directory, the log and the progress bar (rank 0, or the only one)."""
    return rank() == 0


def data_parallel(model: Module) -> Module:
    """``model`` wrapped in ``DistributedDataParallel`` when several processes train it, else ``model``."""
    if world_size() == 1:
        return model
    from tensorlite.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model)


def _reduce(values: Sequence[float], op: dist.ReduceOp) -> list[float]:
    if world_size() == 1:
        return list(values)
    reduced = tensor(numpy.array(values, dtype=numpy.float64), device="cpu")
    dist.all_reduce(reduced, op)
    return reduced.tolist()


def any_rank(flag: bool) -> bool:
    """True on every rank if ``flag`` is true on any (e.g. Ctrl-C reached one of them)."""
    return bool(_reduce([float(flag)], dist.ReduceOp.MAX)[0])


def sum_over_ranks(values: Sequence[float]) -> list[float]:
    """Each value summed over the ranks (a training epoch's loss total and sample count)."""
    return _reduce(values, dist.ReduceOp.SUM)


def first_over_ranks(step: int | None) -> int | None:
    """The smallest ``step`` over the ranks, None where a rank has none (the first non-finite loss of any)."""
    never = float(2**62)
    first = _reduce([never if step is None else float(step)], dist.ReduceOp.MIN)[0]
    return None if first == never else int(first)


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def describe(per_rank: int, unit: str) -> str:
    """``"data-parallel on 2 processes: 12 windows per rank, a global batch of 24"``."""
    return (f"data-parallel on {world_size()} processes: {per_rank} {unit} per rank, a global batch of "
            f"{per_rank * world_size()}")
