"""Programs that tests/test_distributed.py runs under ``mpiexec -n 2``: ``python distributed_worker.py CASE``.

Each rank writes what it measured to ``$RESULTS/<rank>.json`` (the ranks share one stdout, whose lines may
interleave); the tests compare those numbers with what one process computes (the reference is computed here
too, by plain single-process code on the combined batch).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import numpy as np

import tensorlite as tl
import tensorlite.distributed as dist
from tensorlite import nn, optim


def report(**values: object) -> None:
    path = Path(os.environ["RESULTS"]) / f"{dist.get_rank()}.json"
    path.write_text(json.dumps({"rank": dist.get_rank(), **values}))


def host(t: tl.Tensor) -> list:
    return t.detach().cpu().numpy().tolist()


def collectives() -> None:
    """Every collective on the CPU and on the sim device, with inputs that depend on the rank."""
    r, n = dist.get_rank(), dist.get_world_size()
    results = {}
    for device in ("cpu", "sim"):
        def base(values, dtype=tl.float32, device=device):
            return tl.tensor(values, dtype=dtype, device=device)

        got = {}
        for op in ("SUM", "AVG", "MIN", "MAX"):
            t = base([1.0, -2.0, 3.0]) * (r + 1)
            dist.all_reduce(t, op=getattr(dist.ReduceOp, op))
            got[op] = host(t)
        t = base([r, 10 * r], dtype=tl.int64)
        dist.all_reduce(t)
        got["int_sum"] = host(t)
        t = base([1.5, 2.5], dtype=tl.float16) * (r + 1)
        dist.all_reduce(t)
        got["half_sum"] = host(t)
        t = base([r == 1, False], dtype=tl.bool)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        got["bool_max"] = host(t)
        whole = tl.arange(6, dtype=tl.float32, device=device).reshape(2, 3) * (r + 1)
        dist.all_reduce(whole[:, 1])  # a non-contiguous view: reduced in place, through a copy
        got["strided"] = host(whole)
        t = base([float(r)] * 3)
        dist.broadcast(t, src=1)
        got["broadcast"] = host(t)
        outs = [tl.zeros(2, device=device) for _ in range(n)]
        dist.all_gather(outs, base([r, r + 0.5]))
        got["all_gather"] = [host(o) for o in outs]
        out = tl.zeros(2 * n, device=device)
        dist.all_gather_into_tensor(out, base([r, r + 0.5]))
        got["all_gather_into_tensor"] = host(out)
        out = tl.zeros(2, device=device)
        dist.reduce_scatter(out, [base([i, 10 * r]) for i in range(n)])
        got["reduce_scatter"] = host(out)
        out = tl.zeros(1, device=device)
        dist.reduce_scatter_tensor(out, base([float(i + r) for i in range(n)]), op=dist.ReduceOp.AVG)
        got["reduce_scatter_tensor"] = host(out)
        t = base([float(r + 1)])
        work = dist.all_reduce(t, async_op=True)
        work.wait()
        got["async"] = host(t)
        results[device] = got
    dist.barrier()
    report(results=results, local_rank=dist.get_node_local_rank(), backend=dist.get_backend())


def mlp(seed: int, device: str) -> nn.Module:
    tl.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 32), nn.GELU(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 4)).to(device)


def max_difference(a: nn.Module, b: nn.Module) -> float:
    return max(float((p - q).abs().max()) for p, q in zip(a.parameters(), b.parameters()))


def spread_over_ranks(model: nn.Module) -> float:
    """How far apart the ranks' weights are: max over parameters of (max over ranks - min over ranks)."""
    spread = 0.0
    for p in model.parameters():
        low, high = p.detach().clone(), p.detach().clone()
        dist.all_reduce(low, dist.ReduceOp.MIN)
        dist.all_reduce(high, dist.ReduceOp.MAX)
        spread = max(spread, float((high - low).abs().max()))
    return spread


def ddp_mlp(device: str) -> None:
    """An MLP with AdamW: rank r starts from seed 100 + r, DDP gives every rank rank 0's weights, and each
    step on two halves equals one step of a single process on the whole batch; then gradient accumulation
    with no_sync equals the step on the combined micro-batches."""
    r, n, per_rank, steps = dist.get_rank(), dist.get_world_size(), 8, 12
    reference = mlp(100, device)  # what rank 0 builds, trained by one process on the combined batch
    model = mlp(100 + r, device)
    initial_spread = spread_over_ranks(model)
    ddp = nn.parallel.DistributedDataParallel(model, bucket_cap_mb=0.0005)  # 512 bytes: three buckets
    start_difference = max_difference(reference, model)
    rng = np.random.default_rng(7)
    xs = tl.tensor(rng.normal(size=(steps, per_rank * n, 6)).astype(np.float32), device=device)
    ys = tl.tensor(rng.integers(0, 4, size=(steps, per_rank * n)), device=device)
    ref_opt = optim.AdamW(reference.parameters(), lr=3e-3, weight_decay=0.1)
    opt = optim.AdamW(ddp.parameters(), lr=3e-3, weight_decay=0.1)
    loss_fn = nn.CrossEntropyLoss()
    mine = slice(r * per_rank, (r + 1) * per_rank)
    loss_differences, weight_differences = [], []
    for step in range(steps):
        x, y = xs[step], ys[step]
        ref_loss = loss_fn(reference(x), y)
        ref_opt.zero_grad()
        ref_loss.backward()
        ref_opt.step()
        loss = loss_fn(ddp(x[mine]), y[mine])
        opt.zero_grad()
        loss.backward()
        opt.step()
        mean_loss = loss.detach().clone()
        dist.all_reduce(mean_loss, dist.ReduceOp.AVG)
        loss_differences.append(abs(float(mean_loss) - float(ref_loss)))
        weight_differences.append(max_difference(reference, model))
    # gradient accumulation: two micro-batches per rank, the first under no_sync
    x, y = xs[0], ys[0]
    opt.zero_grad()
    ref_opt.zero_grad()
    (loss_fn(reference(x), y) * 0.5).backward()
    (loss_fn(reference(xs[1]), ys[1]) * 0.5).backward()
    with ddp.no_sync():
        (loss_fn(ddp(x[mine]), y[mine]) * 0.5).backward()
    local_spread = max(float(g) for g in _grad_spread(model))
    (loss_fn(ddp(xs[1][mine]), ys[1][mine]) * 0.5).backward()
    accumulated = max(float((p.grad - q.grad).abs().max()) for p, q in zip(reference.parameters(), model.parameters()))
    report(initial_spread=initial_spread, start_difference=start_difference, loss_differences=loss_differences,
           weight_differences=weight_differences, final_spread=spread_over_ranks(model), buckets=len(ddp._buckets),
           no_sync_grad_spread=local_spread, accumulated_grad_difference=accumulated,
           keys=list(ddp.state_dict())[:2])


def _grad_spread(model: nn.Module) -> list[float]:
    """Per parameter, how far apart the ranks' gradients are (nonzero while no_sync keeps them local)."""
    spreads = []
    for p in model.parameters():
        low, high = p.grad.detach().clone(), p.grad.detach().clone()
        dist.all_reduce(low, dist.ReduceOp.MIN)
        dist.all_reduce(high, dist.ReduceOp.MAX)
        spreads.append(float((high - low).abs().max()))
    return spreads


def ddp_gpt() -> None:
    """A few AdamW steps (with gradient clipping) of the GPT `cpu` preset, 2 x 6 windows against 12 in one process."""
    from tensorlite.models import GPT, GPTConfig

    from tensorlite.cli.presets import GPT_PRESETS
    from tensorlite.nn.utils import clip_grad_norm_

    r, n, per_rank, steps = dist.get_rank(), dist.get_world_size(), 6, 3
    preset = GPT_PRESETS["cpu"]
    config = GPTConfig(**{k: preset[k] for k in ("n_layer", "n_head", "n_embd", "block_size", "dropout", "bias")},
                       vocab_size=65)

    def build(seed: int) -> GPT:
        tl.manual_seed(seed)
        return GPT(config)

    reference, model = build(1337), build(1337 + r)
    ddp = nn.parallel.DistributedDataParallel(model)
    ref_opt = reference.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
    rng = np.random.default_rng(3)
    tokens = rng.integers(0, 65, size=(steps, per_rank * n, config.block_size + 1))
    mine = slice(r * per_rank, (r + 1) * per_rank)
    loss_differences, weight_differences = [], []
    for step in range(steps):
        x, y = tl.tensor(tokens[step, :, :-1]), tl.tensor(tokens[step, :, 1:])
        _, ref_loss = reference(x, y)
        ref_opt.zero_grad()
        ref_loss.backward()
        clip_grad_norm_(reference.parameters(), 1.0)
        ref_opt.step()
        _, loss = ddp(x[mine], y[mine])
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        mean_loss = loss.detach().clone()
        dist.all_reduce(mean_loss, dist.ReduceOp.AVG)
        loss_differences.append(abs(float(mean_loss) - float(ref_loss)))
        weight_differences.append(max_difference(reference, model))
    report(loss_differences=loss_differences, weight_differences=weight_differences,
           final_spread=spread_over_ranks(model), buckets=len(ddp._buckets))


class HalfUsed(nn.Module):
    """Two layers, of which forward uses one."""

    def __init__(self) -> None:
        super().__init__()
        self.used, self.unused = nn.Linear(3, 2), nn.Linear(3, 2)

    def forward(self, x: tl.Tensor) -> tl.Tensor:
        return self.used(x)


def unused_parameter() -> None:
    """A parameter outside the loss: the next forward says which one got no gradient."""
    ddp = nn.parallel.DistributedDataParallel(HalfUsed())
    ddp(tl.ones(1, 3)).sum().backward()
    try:
        ddp(tl.ones(1, 3))
    except RuntimeError as error:
        report(error=str(error))
        return
    report(error=None)


def different_models() -> None:
    """Ranks that build models of different widths are refused on every rank (no hang)."""
    try:
        nn.parallel.DistributedDataParallel(nn.Linear(3, 2 + dist.get_rank()))
    except RuntimeError as error:
        report(error=str(error))
        return
    report(error=None)


def raises() -> None:
    """Rank 1 raises while rank 0 waits in a collective: the job must end, with rank 1's message."""
    if dist.get_rank() == 1:
        raise RuntimeError("rank 1 failed on purpose")
    t = tl.ones(1)
    dist.all_reduce(t)  # never completes: rank 1 is gone
    report(finished=True)


def killed() -> None:
    """Rank 1 is killed (SIGKILL) while rank 0 waits in a collective: the launcher must end the job."""
    if dist.get_rank() == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    t = tl.ones(1)
    dist.all_reduce(t)
    report(finished=True)


def cli_raises() -> None:
    """The command line, with rank 1's training step failing at iteration 3: one error line naming rank 1, and
    the whole job ends (the command's error handler aborts it)."""
    from tensorlite.cli.app import app
    from tensorlite.training import LMTrainer

    if dist.get_rank() == 1:
        step = LMTrainer.train_step

        def failing_step(self: LMTrainer) -> tl.Tensor:
            if self.iteration == 3:
                raise RuntimeError("the training step failed on purpose")
            return step(self)

        LMTrainer.train_step = failing_step
    app(["train", "shakespeare", "--max-iters", "8", "--eval-interval", "4", "--eval-iters", "1", "--no-progress",
         "--out", sys.argv[2]], prog_name="tensorlite")


if __name__ == "__main__":
    dist.init_process_group()
    case = sys.argv[1]
    if case in ("ddp_mlp", "ddp_mlp_sim"):
        ddp_mlp("sim" if case.endswith("sim") else "cpu")
    else:
        globals()[case]()
    dist.destroy_process_group()
