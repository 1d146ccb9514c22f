"""Smoke tests of the benchmark scripts: they run and print their results (no timing assertions)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from oracle import torch, torch_or_skip

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def test_bench_ops_prints_the_ratio():
    out = subprocess.run([sys.executable, str(SCRIPTS / "bench_ops.py"), "--no-torch", "--iterations", "20",
                          "--rounds", "1", "--matmul-rounds", "1", "--size", "32"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert re.search(r"ratio tensorlite/numpy = \d+\.\d+", out.stdout), out.stdout
    assert "torch" not in out.stdout  # --no-torch


@pytest.mark.parity
def test_val_loss_trains_both_frameworks_and_prints_their_losses(tmp_path):
    torch_or_skip()  # the script imports PyTorch in its own process
    out = subprocess.run([sys.executable, str(SCRIPTS / "val_loss.py"), "--seeds", "3", "--max-iters", "10",
                          "--eval-iters", "2", "--spread-batches", "400"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    for name in ("tensorlite", "torch"):
        losses = re.search(rf"seed +3 +{name} +train (\d+\.\d+) +val (\d+\.\d+)", out.stdout)
        assert losses and all(2.5 < float(x) < 4.5 for x in losses.groups()), out.stdout  # near ln(65) = 4.17
    assert (tmp_path / "runs" / "val-loss" / "seed3" / "best.safetensors").exists()
    spread = re.search(r"over 20 batches has std (\d+\.\d+) .* over 200 std (\d+\.\d+)", out.stdout)
    assert spread and 0 < float(spread.group(2)) < float(spread.group(1)), out.stdout  # more batches, less noise


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
