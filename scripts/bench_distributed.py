"""Data-parallel overhead: ``mpiexec -n 2`` with one BLAS thread per rank against one process with two threads,
for the MNIST CNN and the GPT `cpu` preset, at the same global batch (``python scripts/bench.py distributed``).

For each model it prints the training throughput (samples/s, AdamW steps) of both, and for the ranks: the
step time with gradient averaging (DistributedDataParallel), without it (the same step under ``no_sync``: the
compute), the time the same gradient buckets take to all-reduce alone (the communication), and from those
the communication exposed in a step (with - without) and the share of it hidden behind backward. Each round
runs the three in turn; medians over rounds. On a 2-core machine two ranks share the cores that one process
would use: the point is the overhead, not a speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from benchlib import blas_summary, cpu_summary, kernels_summary

import tensorlite as tl
import tensorlite.distributed as dist
from tensorlite import nn

HERE = Path(__file__).resolve()
PER_RANK_BATCH = {"cnn": 64, "gpt": 12}  # the CNN's recipe batch is 128 = 2 x 64; the GPT preset's is 12 per rank


def build(model: str, batch: int, steps: int) -> tuple[nn.Module, Callable, list]:
    """The model, its loss ``loss(model, x, y)``, and ``steps`` random batches of ``batch`` samples (host arrays)."""
    rng = np.random.default_rng(0)
    tl.manual_seed(0)
    if model == "cnn":
        from tensorlite.models import MNISTCNN

        batches = [(rng.standard_normal((batch, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, batch))
                   for _ in range(steps)]
        loss_fn = nn.CrossEntropyLoss()
        return MNISTCNN(), lambda m, x, y: loss_fn(m(x), y), batches
    from tensorlite.models import GPT, GPTConfig

    from tensorlite.cli.presets import GPT_PRESETS

    preset = GPT_PRESETS["cpu"]
    config = GPTConfig(vocab_size=65, **{k: preset[k] for k in ("n_layer", "n_head", "n_embd", "block_size",
                                                                "dropout", "bias")})
    tokens = rng.integers(0, 65, size=(steps, batch, config.block_size + 1))
    return GPT(config), lambda m, x, y: m(x, y)[1], [(t[:, :-1], t[:, 1:]) for t in tokens]


def step_loop(model: nn.Module, loss: Callable, optimizer, batches: list) -> Callable[[], float]:
    """``run()``: one AdamW step per batch; returns seconds per step."""
    tensors = [(tl.tensor(x), tl.tensor(y)) for x, y in batches]

    def run() -> float:
        start = time.perf_counter()
        for x, y in tensors:
            value = loss(model, x, y)
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
        return (time.perf_counter() - start) / len(tensors)

    return run


def child(model_name: str, steps: int, rounds: int) -> None:
    """One rank (or the one process): time the steps and print a JSON line (rank 0)."""
    ranks = 1
    if "PMI_SIZE" in os.environ or "OMPI_COMM_WORLD_SIZE" in os.environ:
        dist.init_process_group("mpi")
        ranks = dist.get_world_size()
    per_rank = PER_RANK_BATCH[model_name] * (2 // ranks)  # one process takes the global batch of two ranks
    model, loss, batches = build(model_name, per_rank, steps)
    optimizer = tl.optim.AdamW(model.parameters(), lr=1e-3)
    result: dict = {"ranks": ranks, "per_rank_batch": per_rank, "threads": os.environ.get("OMP_NUM_THREADS")}
    if ranks == 1:
        run = step_loop(model, loss, optimizer, batches)
        run()  # warm-up
        result["step"] = statistics.median(run() for _ in range(rounds))
    else:
        ddp = nn.parallel.DistributedDataParallel(model)
        synced, local = step_loop(ddp, loss, optimizer, batches), step_loop(ddp, loss, optimizer, batches)

        def without_sync() -> float:
            with ddp.no_sync():
                return local()

        def all_reduce_alone() -> float:
            start = time.perf_counter()
            for _ in range(steps):
                for bucket in ddp._buckets:
                    dist.all_reduce(bucket.flat, dist.ReduceOp.AVG)
            return (time.perf_counter() - start) / steps

        synced(), without_sync(), all_reduce_alone()  # warm-up
        times: dict[str, list[float]] = {"step": [], "compute": [], "comm": []}
        for _ in range(rounds):
            times["step"].append(synced())
            times["compute"].append(without_sync())
            times["comm"].append(all_reduce_alone())
        result.update({key: statistics.median(values) for key, values in times.items()})
        result["buckets"] = [round(b.nbytes / 2**20, 2) for b in ddp._buckets]
    if ranks == 1 or dist.get_rank() == 0:
        print(json.dumps(result), flush=True)


def run_child(model_name: str, ranks: int, steps: int, rounds: int) -> dict:
    """The child's JSON line: under ``mpiexec -n ranks`` with one thread each, or one process with two threads."""
    command = [sys.executable, str(HERE), "--child", model_name, "--steps", str(steps), "--rounds", str(rounds)]
    env = {**os.environ, "OMP_NUM_THREADS": str(2 // ranks), "TENSORLITE_DEVICE": "cpu"}
    if ranks > 1:
        mpiexec = shutil.which("mpiexec", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        command = [mpiexec, "-n", str(ranks), *command]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"bench distributed: {' '.join(command)} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(model_name: str, title: str, steps: int, rounds: int) -> None:
    one, two = run_child(model_name, 1, steps, rounds), run_child(model_name, 2, steps, rounds)
    batch = one["per_rank_batch"]
    print(f"\n{title}, AdamW, global batch {batch}: {steps} steps per round, median of {rounds} rounds")
    print(f"    one process, 2 threads:              {one['step'] * 1e3:8.1f} ms/step  {batch / one['step']:8.1f} "
          "samples/s")
    print(f"    mpiexec -n 2, 1 thread each ({two['per_rank_batch']}/rank): {two['step'] * 1e3:8.1f} ms/step  "
          f"{batch / two['step']:8.1f} samples/s   (throughput ratio 2 ranks / 1 process = "
          f"{one['step'] / two['step']:.2f})")
    exposed = max(two["step"] - two["compute"], 0.0)  # below zero: within the noise
    hidden = min(max(two["comm"] - exposed, 0.0), two["comm"])
    overlap = (f"overlapped with backward: {hidden / two['comm']:.0%} of the all-reduce time"
               if len(two["buckets"]) > 1 else "nothing can overlap: one bucket starts only when backward ends")
    print(f"    a rank's step: {two['compute'] * 1e3:.1f} ms compute (no_sync), the {len(two['buckets'])} bucket(s) "
          f"({' + '.join(map(str, two['buckets']))} MiB) all-reduce alone in {two['comm'] * 1e3:.2f} ms "
          f"({two['comm'] / two['step']:.1%} of the step)")
    print(f"    exposed communication: {exposed * 1e3:.2f} ms ({exposed / two['step']:.1%} of the step); {overlap}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20, help="steps per round")
    parser.add_argument("--child", choices=sorted(PER_RANK_BATCH), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.steps, args.rounds)
    if not dist.is_mpi_available():
        raise SystemExit('bench distributed: needs mpi4py and an MPI: pip install -e ".[mpi]"')
    print(f"tensorlite {tl.__version__}, numpy {np.__version__}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.2f} (1 min) at the start")
    print(f"CPU: {cpu_summary()}\nnumpy BLAS: {blas_summary()}\ntensorlite CPU kernels: {kernels_summary()}")
    report("cnn", "MNISTCNN conv32-pool-conv64-pool-1600-128-10, random MNIST-shaped data", args.steps, args.rounds)
    report("gpt", "Shakespeare GPT `cpu` preset (4 layers, 128 wide, block 64), random tokens", args.steps,
           args.rounds)


if __name__ == "__main__":
    main()
