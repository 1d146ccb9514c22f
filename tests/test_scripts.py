"""Smoke tests of the benchmark scripts: they run and print their results (no timing assertions)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from oracle import torch, torch_or_skip

import tensorlite as tl

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def test_bench_ops_prints_the_ratio():
    out = subprocess.run([sys.executable, str(SCRIPTS / "bench_ops.py"), "--no-torch", "--iterations", "20",
                          "--rounds", "1", "--matmul-rounds", "1", "--size", "32"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert re.search(r"ratio tensorlite/numpy = \d+\.\d+", out.stdout), out.stdout
    assert "torch" not in out.stdout  # --no-torch


def test_bench_ops_two_cores_compares_a_kernel_on_one_core_and_two():
    out = subprocess.run([sys.executable, str(SCRIPTS / "bench_ops.py"), "--no-torch", "--iterations", "20",
                          "--rounds", "1", "--matmul-rounds", "1", "--size", "32", "--two-cores"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    if "(c) skipped: the compiled CPU kernels are off" not in out.stdout:  # without Numba, (c) says why
        assert re.search(r"after a BLAS product, the kernel takes -?\d+\.\d us on one core, -?\d+\.\d us on two "
                         r"of Numba's threads and -?\d+\.\d us on \d+ of OpenBLAS's", out.stdout), out.stdout


def val_loss(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPTS / "val_loss.py"), "--eval-iters", "2", *args],
                          capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.mark.parity
def test_val_loss_trains_both_recipes_and_plots_val_loss_against_time(tmp_path):
    torch_or_skip()  # the script imports PyTorch in its own process
    out = val_loss(tmp_path, "--seeds", "3", "--max-iters", "10", "--eval-interval", "5", "--spread-batches", "400",
                   "--plot", "plots/val.png")
    assert out.returncode == 0, out.stderr
    assert re.search(r"^CPU: .+ \((AVX-512|AVX2|no AVX2)\), \d+ cores; BLAS: .+$", out.stdout, re.M), out.stdout
    assert "tensorlite: the `cpu` preset, changes: max_iters=10; torch: nanoGPT's CPU recipe" in out.stdout
    for name in ("tensorlite", "torch"):
        losses = re.search(rf"seed +3 +{name} +train (\d+\.\d+) +val (\d+\.\d+) +training +(\d+\.\d) s", out.stdout)
        assert losses and all(2.5 < float(x) < 4.5 for x in losses.groups()[:2]), out.stdout  # near ln(65) = 4.17
        assert float(losses.group(3)) > 0
    assert re.search(r"training time tensorlite/torch = \d+\.\d\d", out.stdout), out.stdout
    assert (tmp_path / "plots" / "val.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    run = tmp_path / "runs" / "val-loss" / "seed3"
    assert [r["iter"] for r in map(json.loads, (run / "log.jsonl").read_text().splitlines())] == [5, 10]
    metadata = tl.load_metadata(run / "best.safetensors")
    assert metadata["train_config"]["optimizer"] == "muon" and metadata["model_config"]["init"] == "pytorch"
    spread = re.search(r"over 20 batches has std (\d+\.\d+) .* over 200 std (\d+\.\d+)", out.stdout)
    assert spread and 0 < float(spread.group(2)) < float(spread.group(1)), out.stdout  # more batches, less noise


def test_val_loss_screens_a_recipe_change_in_tensorlite_alone(tmp_path):
    out = val_loss(tmp_path, "--seeds", "5", "--set", "max_iters=6", "--set", "positions=rotary", "--set",
                   "qk_norm=true", "--set", "muon_lr=0.03", "--no-torch", "--no-plot", "--spread-batches", "0",
                   "--eval-interval", "3")
    assert out.returncode == 0, out.stderr
    assert "changes: max_iters=6, positions=rotary, qk_norm=True, muon_lr=0.03" in out.stdout
    assert re.search(r"seed +5 +tensorlite +train", out.stdout) and "torch" not in out.stdout.split("changes:")[1]
    metadata = tl.load_metadata(tmp_path / "runs" / "val-loss" / "seed5" / "checkpoint.safetensors")
    assert metadata["model_config"]["positions"] == "rotary" and metadata["model_config"]["qk_norm"] is True
    assert metadata["train_config"]["muon_lr"] == 0.03 and metadata["train_config"]["max_iters"] == 6
    assert not (tmp_path / "docs").exists()
    bad = val_loss(tmp_path, "--set", "rotary=yes", "--no-torch")
    assert bad.returncode == 2 and "expected KEY=VALUE with KEY one of" in bad.stderr and "positions" in bad.stderr


@pytest.mark.parity
def test_user_gpt_is_the_same_model_in_both_libraries_and_its_breakdown_names_ops():
    """scripts/user_gpt.py, built with each library from the same weights: same keys, same loss and
    gradients; the per-op breakdown of bench.py user-gpt names tensorlite's ops."""
    import numpy as np

    import tensorlite as tl

    sys.path.insert(0, str(SCRIPTS))
    try:
        import user_gpt
    finally:
        sys.path.remove(str(SCRIPTS))
    config = user_gpt.UserGPTConfig(n_layer=1, n_embd=16, block_size=8, batch_size=2)
    ours, theirs = user_gpt.build(tl, config), user_gpt.build(torch, config)
    state = ours.state_dict()
    assert sorted(state) == sorted(theirs.state_dict())
    theirs.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in state.items()})
    x, y = np.random.default_rng(0).integers(0, config.vocab_size, size=(2, 2, config.block_size))
    loss, expected = ours(tl.from_numpy(x), tl.from_numpy(y)), theirs(torch.from_numpy(x), torch.from_numpy(y))
    np.testing.assert_allclose(loss.item(), expected.item(), rtol=1e-5)
    loss.backward()
    expected.backward()
    ours_params = dict(ours.named_parameters())
    for name, p in theirs.named_parameters():
        np.testing.assert_allclose(ours_params[name].grad.numpy(), p.grad.numpy(), rtol=1e-4, atol=1e-6, err_msg=name)

    def train(steps: int) -> None:
        for _ in range(steps):
            ours(tl.from_numpy(x), tl.from_numpy(y)).backward()

    names = [name for name, _, _ in user_gpt.op_breakdown(train, 2, top=40)]
    assert {"Linear.forward", "Linear.backward", "Gelu.forward", "ScaledDotProductAttention.backward"} <= set(names)
