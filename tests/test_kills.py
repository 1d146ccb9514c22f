"""Kills at random moments: ``tensorlite train`` runs in a subprocess that gets SIGKILL or SIGINT while it
trains, then resumes. After every kill the run directory loads, its checkpoint's history is where its log
begins (and all of it after a handled Ctrl-C), and the run resumed to the end is bit for bit an uninterrupted
one: every tensor of the checkpoints, the training state and the log records except their timing.

Each chain of kills (SIGKILL, SIGINT, SIGKILL, SIGINT) on one run directory ends early once it has trained to
the end; chains run, per family (a small task and a tiny language model), until 2 kills of each signal landed
while the process trained (CI), or ``TENSORLITE_KILL_TESTS=20`` of each.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_durability import text_file  # noqa: F401  (a fixture)
from test_training import leaves

import tensorlite as tl
from tensorlite.training import BEST, CHECKPOINT, LOG, run_dir

KILLS = int(os.environ.get("TENSORLITE_KILL_TESTS", "2"))  # of each signal, per family
CHAIN = (signal.SIGKILL, signal.SIGINT, signal.SIGKILL, signal.SIGINT)  # the kills one run directory takes
TIMING = ("seconds", "samples_per_second", "iters_per_second")
TIMEOUT = 120  # seconds for one process; a hang fails the test

FAMILIES = {  # family -> (its command line, the train_state field counting progress, its total)
    "small-task": (["train", "xor", "--epochs", "4000"], "epoch", 4000),
    "language-model": (["train", "shakespeare", "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size",
                        "16", "--batch-size", "8", "--max-iters", "400", "--eval-interval", "50", "--eval-iters",
                        "5"], "iteration", 400),
}


def start(args: list[str | Path], out: Path, resume: bool) -> subprocess.Popen:
    """``tensorlite ARGS --out OUT [--resume]`` in a new process (on the CPU, without a progress bar)."""
    command = [sys.executable, "-c", "from tensorlite.cli.app import app; app(prog_name='tensorlite')",
               *map(str, args), "--out", str(out), "--no-progress", *(["--resume"] if resume else [])]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "TENSORLITE_DEVICE": "cpu"})


def finish(process: subprocess.Popen) -> str:
    try:
        return process.communicate(timeout=TIMEOUT)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"{process.args} hung for {TIMEOUT} s")


def log_lines(out: Path) -> list[dict]:
    """The log's records (``read_log`` leaves out a last line cut short by SIGKILL)."""
    return run_dir.read_log(out) if (out / LOG).exists() else []


def without_timing(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def check_after_kill(out: Path, sig: signal.Signals, output: str) -> None:
    """The run directory loads, and its log begins with its checkpoint's history (equals it after Ctrl-C)."""
    if not (out / CHECKPOINT).exists():
        assert not log_lines(out), "a log without a checkpoint"
        return
    run_dir.load_model(out)
    history = tl.load(out / CHECKPOINT)["train_state"]["history"]
    records = log_lines(out)
    assert without_timing(records[:len(history)]) == without_timing(history)
    if sig == signal.SIGINT and "interrupted at" in output:
        assert records == history, output


def assert_same_run(expected: Path, got: Path, counter: str) -> None:
    for name in (CHECKPOINT, BEST):
        if not (expected / name).exists():
            assert not (got / name).exists()
            continue
        a, b = tl.load(expected / name), tl.load(got / name)
        for part in ("model", "optimizer", "scheduler"):
            x, y = leaves(a[part]), leaves(b[part])
            assert x.keys() == y.keys(), f"{name} {part}"
            for key, value in x.items():
                if isinstance(value, tl.Tensor):
                    assert np.array_equal(value.numpy(), y[key].numpy()), f"{name} {part}.{key} differs"
                else:
                    assert value == y[key], f"{name} {part}.{key}: {value} != {y[key]}"
        state_a, state_b = a["train_state"], b["train_state"]
        assert state_a[counter] == state_b[counter]
        assert without_timing(state_a.pop("history")) == without_timing(state_b.pop("history"))
        assert state_a == state_b
    assert without_timing(log_lines(expected)) == without_timing(log_lines(got))


def training_window(args: list[str | Path], out: Path) -> tuple[float, float]:
    """Run uninterrupted; returns when, in seconds from its start, the first and the last checkpoint were saved."""
    started, wall = time.monotonic(), time.time()
    process = start(args, out, resume=False)
    while not (out / CHECKPOINT).exists() and process.poll() is None:
        time.sleep(0.01)
    first = time.monotonic() - started
    assert process.wait(TIMEOUT) == 0, finish(process)
    return first, (out / CHECKPOINT).stat().st_mtime - wall


@pytest.mark.parametrize("family", FAMILIES)
def test_kills_at_random_moments_leave_a_run_that_resumes_bit_for_bit(family: str, tmp_path: Path,
                                                                      text_file: Path) -> None:  # noqa: F811
    args, counter, total = FAMILIES[family]
    args = args + (["--data", text_file] if family == "language-model" else [])
    started = time.monotonic()
    first, last = training_window(args, tmp_path / "reference")
    rng = random.Random(0)
    landed = {signal.SIGKILL: 0, signal.SIGINT: 0}  # kills that came while the process trained
    chains, saved_at = 0, []  # the checkpoint's progress after each kill
    while min(landed.values()) < KILLS and chains < 8 * KILLS:
        out = tmp_path / f"chain{chains}"
        for sig in CHAIN:
            resume = (out / CHECKPOINT).exists()
            done = tl.load(out / CHECKPOINT)["train_state"][counter] / total if resume else 0.0
            if done == 1.0:  # trained to the end: a kill now would not land during training
                break
            process = start(args, out, resume)
            time.sleep(rng.uniform(0.9 * first, first + (last - first) * (1.0 - done)))
            if process.poll() is None:
                process.send_signal(sig)
                landed[sig] += 1
            check_after_kill(out, sig, finish(process))
            saved_at.append(tl.load(out / CHECKPOINT)["train_state"][counter] if (out / CHECKPOINT).exists() else None)
        final = start(args, out, resume=(out / CHECKPOINT).exists())
        assert final.wait(TIMEOUT) == 0, finish(final)
        assert_same_run(tmp_path / "reference", out, counter)
        chains += 1
    print(f"{family}: {landed[signal.SIGKILL]} SIGKILL and {landed[signal.SIGINT]} SIGINT while it trained, "
          f"{chains} chains, {time.monotonic() - started:.0f} s; {counter} saved after each kill: {saved_at}")
    assert min(landed.values()) >= KILLS
