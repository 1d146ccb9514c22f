"""Data-parallel runs of ``tensorlite train``: started by an MPI launcher (``mpiexec -n N tensorlite train ...``,
``srun --mpi=pmix tensorlite train ...``), the command joins the other processes before it trains, each rank
on its own GPU when the device is CUDA. ``training.parallel`` does the rest: the trainers shard the batches,
average gradients and leave the run directory to rank 0.
"""

from __future__ import annotations

import os

from tensorlite import distributed as dist
from tensorlite.cli.options import UsageError, parse_device
from tensorlite.distributed.mpi import INSTALL_HINT
from tensorlite.training import parallel

# set in each process by: MPICH and Intel MPI (and srun --mpi=pmi2), Open MPI, PMIx (srun --mpi=pmix), MVAPICH
LAUNCHER_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "MV2_COMM_WORLD_SIZE")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def launched_by_mpi() -> bool:
    """Whether an MPI launcher started this process (one of its variables is set)."""
    return any(name in os.environ for name in LAUNCHER_VARIABLES)


def join_ranks(device: str | None) -> str | None:
    """Start ``tensorlite.distributed`` if an MPI launcher started this process (``"nccl"`` for a CUDA ``device``,
    else ``"mpi"``); returns the device this rank trains on: ``device``, or for CUDA without an index the GPU
    of the rank's number on its machine."""
    if not launched_by_mpi() or dist.is_initialized():
        return device
    if not dist.is_mpi_available():
        raise UsageError(f"this command was started by an MPI launcher (mpiexec, srun), which needs mpi4py: "
                         f"{INSTALL_HINT}")
    target = parse_device(device)
    if target.type != "cuda":
        dist.init_process_group("mpi")
    else:
        dist.init_process_group("nccl", device_id=None if device in (None, "auto", "cuda") else target.index)
        if device in (None, "auto", "cuda"):
            from tensorlite.backends.cupy_backend import import_cupy

            device = f"cuda:{dist.get_node_local_rank() % import_cupy().cuda.runtime.getDeviceCount()}"
    if parallel.world_size() > 1 and parallel.is_main() and not any(name in os.environ for name in THREAD_VARIABLES):
        print(f"note: {parallel.world_size()} processes may share this machine's cores, each with a BLAS using "
              "all of them; set OMP_NUM_THREADS to the cores per process (mpiexec -n 2 -genv OMP_NUM_THREADS 1 ...)",
              flush=True)
    return device
