"""tensorlite.distributed, DistributedDataParallel and data-parallel training.

The first part runs in this process, without MPI: the hooks and buckets DDP is built on, on the CPU and
the sim device, and the errors before a process group exists. The tests marked ``distributed`` start
``mpiexec -n 2`` (tests/distributed_worker.py, or the ``tensorlite`` command) with a timeout, and skip with
the reason where mpi4py or mpiexec is missing (``pip install -e ".[mpi]"`` brings both).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cli_runner import invoke

import tensorlite as tl
import tensorlite.distributed as dist
from tensorlite import nn
from tensorlite.nn.parallel.buckets import Bucket, assign_buckets, flatten, unflatten_into

WORKER = Path(__file__).with_name("distributed_worker.py")
BIN = Path(sys.executable).parent
TIMEOUT = 180  # seconds for one mpiexec run on a loaded 2-core machine; a hang fails the test instead of CI


# -- without MPI ---------------------------------------------------------------------------------------------
def test_import_tensorlite_never_imports_mpi4py() -> None:
    code = ("import sys, tensorlite, tensorlite.distributed, tensorlite.nn.parallel, tensorlite.training, "
            "tensorlite.cli.app, tensorlite.cli.launch; assert 'mpi4py' not in sys.modules, 'mpi4py was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_every_function_needs_a_process_group_first() -> None:
    assert not dist.is_initialized()
    for call in (dist.get_rank, dist.get_world_size, dist.barrier, lambda: dist.all_reduce(tl.ones(2)),
                 lambda: dist.broadcast(tl.ones(2), 0), dist.destroy_process_group):
        with pytest.raises(ValueError, match="init_process_group"):
            call()
    with pytest.raises(ValueError, match="DistributedDataParallel: Default process group has not been initialized"):
        nn.parallel.DistributedDataParallel(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="unknown backend 'gloo'"):
        dist.init_process_group("gloo")


def test_node_local_rank_without_a_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert dist.get_node_local_rank(fallback_rank=3) == 3
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert dist.get_node_local_rank() == 1


def test_avg_needs_floating_point() -> None:
    from tensorlite.distributed.group import check_reducible

    check_reducible("all_reduce", dist.ReduceOp.AVG, np.dtype(np.float32))
    with pytest.raises(TypeError, match="AVG needs a floating-point tensor"):
        check_reducible("all_reduce", dist.ReduceOp.AVG, np.dtype(np.int64))
    with pytest.raises(TypeError, match="must be a tl.distributed.ReduceOp"):
        check_reducible("all_reduce", "sum", np.dtype(np.float32))


def sizes_of(tensors: list[tl.Tensor], buckets: list[list[int]]) -> list[int]:
    return [sum(tensors[i].numel() * tensors[i].dtype.itemsize for i in b) for b in buckets]


def test_buckets_walk_the_parameters_backwards_and_close_at_their_cap() -> None:
    tensors = [tl.zeros(n) for n in (10, 20, 30, 40, 50)]  # float32: 40 .. 200 bytes
    buckets = assign_buckets(tensors, cap_bytes=150, first_cap_bytes=100)
    assert buckets == [[4], [3], [2, 1], [0]]  # the first closes at 100 bytes or more, the next at 150
    assert sizes_of(tensors, buckets) == [200, 160, 200, 40]
    assert assign_buckets(tensors, cap_bytes=10**6) == [[4, 3, 2, 1, 0]]


def test_buckets_never_mix_dtypes_or_devices() -> None:
    tensors = [tl.zeros(4), tl.zeros(4, dtype=tl.float64), tl.zeros(4, device="sim"), tl.zeros(4)]
    buckets = assign_buckets(tensors, cap_bytes=10**6)
    assert sorted(map(sorted, buckets)) == [[0, 3], [1], [2]]
    for bucket in buckets:
        assert len({(str(tensors[i].device), tensors[i].dtype) for i in bucket}) == 1


@pytest.mark.parametrize("device", ["cpu", "sim"])
def test_flatten_and_unflatten_round_trip(device: str) -> None:
    arrays = [tl.randn(*shape, device=device)._data for shape in ((2, 3), (4,), (1, 2, 2))]
    xp = tl.device(device).backend.xp
    flat = flatten(arrays, xp)
    assert flat.shape == (14,)
    copies = [xp.zeros_like(a) for a in arrays]
    unflatten_into(flat, copies)
    for a, b in zip(arrays, copies):
        np.testing.assert_array_equal(tl.Tensor._make(a, tl.device(device), False, None).numpy(),
                                      tl.Tensor._make(b, tl.device(device), False, None).numpy())


@pytest.mark.parametrize("device", ["cpu", "sim"])
def test_a_bucket_gathers_gradients_and_hands_them_back(device: str) -> None:
    params = [nn.Parameter(tl.randn(*shape, device=device)) for shape in ((3, 2), (5,))]
    bucket = Bucket(params)
    assert bucket.nbytes == 11 * 4 and bucket.flat.device == tl.device(device) and not bucket.ready
    for slot, p in enumerate(params):
        p.grad = tl.full(p.shape, float(slot + 1), device=device)
        bucket.put(slot, p.grad._data)
    assert bucket.ready and bucket.arrived == [True, True]
    np.testing.assert_array_equal(bucket.flat.numpy(), [1.0] * 6 + [2.0] * 5)
    bucket.flat.mul_(10)  # what the averaging all-reduce would write
    grads = [p.grad for p in params]
    bucket.unflatten_into_grads()
    assert [p.grad is g for p, g in zip(params, grads)] == [True, True]  # in place
    np.testing.assert_array_equal(params[0].grad.numpy(), np.full((3, 2), 10.0))
    np.testing.assert_array_equal(params[1].grad.numpy(), np.full(5, 20.0))
    bucket.reset()
    assert bucket.waiting == 2 and bucket.arrived == [False, False]


def test_launcher_variables_mean_an_mpi_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from tensorlite.cli import launch

    for name in launch.LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert not launch.launched_by_mpi()
    assert launch.join_ranks("cpu") == "cpu"  # not launched: nothing started
    monkeypatch.setenv("PMI_SIZE", "2")
    assert launch.launched_by_mpi()


def test_resume_refuses_another_number_of_processes(tmp_path: Path) -> None:
    from tensorlite.cli.options import UsageError, check_world_size

    check_world_size({}, tmp_path)  # runs before this metadata field existed were one process
    with pytest.raises(UsageError, match="trained by 2 process.*resume it under mpiexec -n 2"):
        check_world_size({"world_size": 2}, tmp_path)


# -- under mpiexec -n 2 ----------------------------------------------------------------------------------------
def mpiexec() -> str:
    if importlib.util.find_spec("mpi4py") is None:
        pytest.skip('needs mpi4py and an MPI: pip install -e ".[mpi]"')
    found = shutil.which("mpiexec", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        pytest.skip('needs mpiexec (an MPI): pip install -e ".[mpi]" brings MPICH')
    return found


def run_ranks(*command: str | Path, n: int = 2, results: Path | None = None) -> subprocess.CompletedProcess:
    """``mpiexec -n n command`` with one BLAS thread per rank, its output captured; fails the test on a timeout.
    The worker's ranks write their results into ``results``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TENSORLITE_DEVICE": "cpu", "RESULTS": str(results)}
    try:
        return subprocess.run([mpiexec(), "-n", str(n), *map(str, command)], capture_output=True, text=True,
                              timeout=TIMEOUT, env=env, cwd=WORKER.parent)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"mpiexec -n {n} {command} did not end within {TIMEOUT} s (a hang): {exc.stderr}")


def worker(case: str, tmp_path: Path) -> dict[int, dict]:
    """What each rank of ``distributed_worker.py case`` measured; the run must succeed."""
    done = run_ranks(sys.executable, WORKER, case, results=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(p.name for p in tmp_path.glob("*.json")) == ["0.json", "1.json"], done.stdout + done.stderr
    return {rank: json.loads((tmp_path / f"{rank}.json").read_text()) for rank in (0, 1)}


@pytest.mark.distributed
def test_collectives_on_cpu_and_sim(tmp_path: Path) -> None:
    ranks = worker("collectives", tmp_path)
    for rank, result in ranks.items():
        assert result["backend"] == "mpi" and result["local_rank"] == rank
        for device, got in result["results"].items():
            assert got["SUM"] == [3.0, -6.0, 9.0] and got["AVG"] == [1.5, -3.0, 4.5], device
            assert got["MIN"] == [1.0, -4.0, 3.0] and got["MAX"] == [2.0, -2.0, 6.0], device
            assert got["int_sum"] == [1, 10] and got["half_sum"] == [4.5, 7.5] and got["bool_max"] == [True, False]
            assert got["strided"] == [[0.0, 3.0, 2.0 * (rank + 1)], [3.0 * (rank + 1), 12.0, 5.0 * (rank + 1)]], device
            assert got["broadcast"] == [1.0, 1.0, 1.0]
            assert got["all_gather"] == [[0.0, 0.5], [1.0, 1.5]]
            assert got["all_gather_into_tensor"] == [0.0, 0.5, 1.0, 1.5]
            assert got["reduce_scatter"] == [2.0 * rank, 10.0]  # sum over ranks of [i, 10 r] for i = this rank
            assert got["reduce_scatter_tensor"] == [rank + 0.5]  # mean over r of (i + r)
            assert got["async"] == [3.0]


@pytest.mark.distributed
@pytest.mark.parametrize("case", ["ddp_mlp", "ddp_mlp_sim"])
def test_ddp_mlp_adamw_equals_one_process_on_the_combined_batch(case: str, tmp_path: Path) -> None:
    ranks = worker(case, tmp_path)
    for result in ranks.values():
        assert result["initial_spread"] > 0.1  # the ranks built different weights (seeds 100, 101) ...
        assert result["start_difference"] == 0.0  # ... and wrapping gave both rank 0's
        assert max(result["loss_differences"]) < 1e-5, result["loss_differences"]
        assert max(result["weight_differences"]) < 1e-5, result["weight_differences"]
        assert result["final_spread"] == 0.0  # every rank holds the same weights
        assert result["buckets"] >= 3
        assert result["no_sync_grad_spread"] > 1e-3  # under no_sync each rank kept its own gradient
        assert result["accumulated_grad_difference"] < 1e-6  # the synced backward averaged both micro-batches
        assert result["keys"] == ["module.0.weight", "module.0.bias"]


@pytest.mark.distributed
def test_ddp_gpt_cpu_preset_equals_one_process_on_the_combined_batch(tmp_path: Path) -> None:
    for result in worker("ddp_gpt", tmp_path).values():
        assert max(result["loss_differences"]) < 1e-5, result["loss_differences"]
        assert max(result["weight_differences"]) < 1e-4, result["weight_differences"]
        assert result["final_spread"] == 0.0


@pytest.mark.distributed
def test_ddp_names_a_parameter_that_got_no_gradient(tmp_path: Path) -> None:
    for result in worker("unused_parameter", tmp_path).values():
        assert "produced no gradient for unused.weight, unused.bias" in result["error"]


@pytest.mark.distributed
def test_ddp_refuses_ranks_with_different_models(tmp_path: Path) -> None:
    for result in worker("different_models", tmp_path).values():
        assert "the ranks wrap different models" in result["error"]


@pytest.mark.distributed
def test_an_exception_on_one_rank_ends_the_job_with_its_message(tmp_path: Path) -> None:
    done = run_ranks(sys.executable, WORKER, "raises", results=tmp_path)
    assert done.returncode != 0
    assert "RuntimeError: rank 1 failed on purpose" in done.stderr
    assert not list(tmp_path.glob("*.json"))  # rank 0 never got past its all_reduce


@pytest.mark.distributed
def test_a_killed_rank_ends_the_job(tmp_path: Path) -> None:
    done = run_ranks(sys.executable, WORKER, "killed", results=tmp_path)
    assert done.returncode != 0 and not list(tmp_path.glob("*.json"))


@pytest.mark.distributed
def test_the_command_ends_every_rank_when_one_fails(tmp_path: Path) -> None:
    done = run_ranks(sys.executable, WORKER, "cli_raises", tmp_path / "run")
    assert done.returncode == 1, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error")]
    assert errors == ["error (rank 1 of 2): the training step failed on purpose"], done.stderr


def model_state(run: Path) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in tl.load(run / "checkpoint.safetensors")["model"].items()}


@pytest.mark.distributed
def test_train_shakespeare_on_two_processes_equals_one_process_and_resumes(tmp_path: Path) -> None:
    """2 x 6 windows per step under mpiexec == 12 windows in one process; one run directory; --resume continues."""
    common = ["train", "shakespeare", "--preset", "cpu", "--eval-interval", "3", "--eval-iters", "2", "--no-progress"]
    two, one = tmp_path / "two", tmp_path / "one"
    done = run_ranks(BIN / "tensorlite", *common, "--max-iters", "6", "--batch-size", "6", "--out", two)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "data-parallel on 2 processes: 6 windows per rank, a global batch of 12" in done.stdout + done.stderr
    assert done.stdout.count("final val loss") == 1  # rank 0 alone reports
    result = invoke(*common, "--max-iters", "6", "--batch-size", "12", "--out", one)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in two.iterdir()) == ["best.safetensors", "checkpoint.safetensors", "log.jsonl"]
    log_two, log_one = tl.training.read_log(two), tl.training.read_log(one)
    assert [r["iter"] for r in log_two] == [3, 6]
    for a, b in zip(log_two, log_one):
        for key in ("train_loss", "val_loss"):
            assert abs(a[key] - b[key]) < 1e-4, (a, b)
    state_two, state_one = model_state(two), model_state(one)
    assert state_two.keys() == state_one.keys()
    assert max(float(np.abs(state_two[k] - state_one[k]).max()) for k in state_one) < 1e-4
    assert tl.load_metadata(two / "checkpoint.safetensors")["world_size"] == 2

    done = run_ranks(BIN / "tensorlite", *common, "--max-iters", "9", "--resume", "--out", two)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [r["iter"] for r in tl.training.read_log(two)] == [3, 6, 9]
    assert tl.training.read_log(two)[:2] == log_two
    refused = invoke(*common, "--max-iters", "12", "--resume", "--out", two)
    assert refused.exit_code == 2 and "resume it under mpiexec -n 2" in refused.output


@pytest.mark.distributed
def test_train_iris_on_two_processes_shares_each_epoch_and_resumes(tmp_path: Path) -> None:
    run = tmp_path / "iris"
    common = ["train", "iris", "--out", run, "--no-progress"]
    done = run_ranks(BIN / "tensorlite", *common, "--epochs", "4")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "data-parallel on 2 processes: 16 samples per rank, a global batch of 32" in done.stdout + done.stderr
    assert done.stdout.count("iris: test loss") == 1  # rank 0 alone evaluates and reports
    log = tl.training.read_log(run)
    assert [r["epoch"] for r in log] == [1, 2, 3, 4] and log[-1]["train_loss"] < log[0]["train_loss"]
    done = run_ranks(BIN / "tensorlite", *common, "--epochs", "6", "--resume")
    assert done.returncode == 0, done.stdout + done.stderr
    assert tl.training.read_log(run)[:4] == log and len(tl.training.read_log(run)) == 6


@pytest.mark.distributed
def test_bench_distributed_runs_and_reports(tmp_path: Path) -> None:
    mpiexec()
    scripts = WORKER.parent.parent / "scripts"
    done = subprocess.run([sys.executable, scripts / "bench.py", "distributed", "--rounds", "1", "--steps", "1"],
                          capture_output=True, text=True, timeout=2 * TIMEOUT, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for fragment in ("MNISTCNN", "Shakespeare GPT", "samples/s", "all-reduce alone", "exposed communication"):
        assert fragment in done.stdout, done.stdout


@pytest.mark.distributed
def test_ctrl_c_stops_every_rank_at_the_same_step_and_rank_0_saves(tmp_path: Path) -> None:
    """mpiexec forwards SIGINT to every rank; they agree on it each step, so all stop after the same step."""
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TENSORLITE_DEVICE": "cpu"}
    job = subprocess.Popen([mpiexec(), "-n", "2", BIN / "tensorlite", "train", "shakespeare", "--max-iters", "100000",
                            "--eval-interval", "5", "--eval-iters", "1", "--out", run, "--no-progress"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.monotonic() + TIMEOUT
    while not ((run / "log.jsonl").exists() and (run / "log.jsonl").read_text().strip()):  # training has begun
        assert job.poll() is None and time.monotonic() < deadline, "the run ended or never logged"
        time.sleep(0.2)
    job.send_signal(signal.SIGINT)
    try:
        output, _ = job.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        job.kill()
        pytest.fail(f"the ranks did not stop after Ctrl-C (a hang): {job.communicate()[0]}")
    assert job.returncode == 0, output
    stops = [line for line in output.splitlines() if line.startswith("interrupted at iteration")]
    assert len(stops) == 1, output  # rank 0 alone reports
    iteration = int(stops[0].split()[3].rstrip(":"))
    assert tl.load(run / "checkpoint.safetensors")["train_state"]["iteration"] == iteration
