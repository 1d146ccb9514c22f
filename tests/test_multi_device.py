"""Several devices: every op runs under its arrays' device, whatever device is current, tensors move between
devices (differentiably), and tensors of two devices in one op raise PyTorch's error. Run on the simulated
devices sim:0 and sim:1, whose current-device rule is CUDA's (and stricter: an array of another device is
refused, never reached across); the same tests run on cuda:0/cuda:1 where there are two GPUs.
"""

from __future__ import annotations

import numpy as np
import pytest
from devices import cuda_available
from tensorlite.backends.sim import count_transfers, current_device

import tensorlite as tl
from tensorlite import models, nn, optim
from tensorlite.datasets.text import TextData
from tensorlite.training import LMTrainConfig, LMTrainer, Trainer
from tensorlite.utils.data import DataLoader, TensorDataset


def two_gpus() -> bool:
    if not cuda_available():
        return False
    import cupy

    return cupy.cuda.runtime.getDeviceCount() >= 2


@pytest.fixture(params=["sim", pytest.param("cuda", marks=pytest.mark.gpu)])
def kind(request: pytest.FixtureRequest) -> str:
    if request.param == "cuda" and not two_gpus():
        pytest.skip("needs two CUDA devices")
    return request.param


def test_creation_and_moves_land_on_the_named_device(kind: str) -> None:
    second = f"{kind}:1"
    for made in (tl.zeros(2, device=second), tl.arange(3, device=second), tl.randn(2, device=second),
                 tl.eye(2, device=second), tl.full((2,), 3.0, device=second), tl.tensor([1, 2], device=second),
                 tl.ones(2, device=f"{kind}:0").to(second), tl.ones(2).to(second), tl.ones(2, device=kind).cuda(1)
                 if kind == "cuda" else tl.ones(2, device=kind).to(second)):
        assert made.device == second and made.device.backend.is_array(made._data)
    back = tl.tensor([1.5, 2.5], device=second).to(f"{kind}:0")
    assert back.device == f"{kind}:0" and back.tolist() == [1.5, 2.5]


def test_a_move_between_sim_devices_does_not_pass_through_the_host() -> None:
    x = tl.randn(3, device="sim:0")
    with count_transfers() as log:
        y = x.to("sim:1")
    assert y.device == "sim:1" and not log.transfers, log.report()


def test_ops_run_under_their_arrays_device_whatever_is_current(kind: str) -> None:
    a = tl.randn(4, 3, device=f"{kind}:1", requires_grad=True)
    b = tl.randn(3, 2, device=f"{kind}:1", requires_grad=True)
    out = nn.functional.gelu(a @ b).softmax(dim=1).log().sum()
    out.backward()
    assert out.device == f"{kind}:1" and a.grad.device == f"{kind}:1" and b.grad.device == f"{kind}:1"
    if kind == "sim":
        assert current_device() == 0  # restored after every op
    host = [t.detach().to("cpu") for t in (a, b)]
    for t in host:
        t.requires_grad_()
    expected = nn.functional.gelu(host[0] @ host[1]).softmax(dim=1).log().sum()
    expected.backward()
    np.testing.assert_allclose(out.item(), expected.item(), rtol=1e-6)
    np.testing.assert_allclose(a.grad.numpy(), host[0].grad.numpy(), rtol=1e-5, atol=1e-7)


def test_gradients_flow_back_across_a_move(kind: str) -> None:
    x = tl.tensor([1.0, 2.0], device=f"{kind}:0", requires_grad=True)
    y = (x.to(f"{kind}:1") * tl.tensor([3.0, 4.0], device=f"{kind}:1")).sum()
    y.backward()
    assert x.grad.device == f"{kind}:0" and x.grad.tolist() == [3.0, 4.0]


@pytest.mark.parametrize("call", [lambda a, b: a + b, lambda a, b: a @ b, lambda a, b: tl.cat([a, b]),
                                  lambda a, b: a.add_(b), lambda a, b: nn.functional.cross_entropy(a, b[0].long())],
                         ids=["add", "matmul", "cat", "add_", "cross_entropy"])
def test_two_devices_in_one_op_raise_pytorchs_error(kind: str, call) -> None:
    a, b = tl.ones(2, 2, device=f"{kind}:0"), tl.ones(2, 2, device=f"{kind}:1")
    with pytest.raises(RuntimeError, match=f"Expected all tensors to be on the same device, but found at least two "
                                           f"devices, {kind}:0 and {kind}:1!"):
        call(a, b)


def test_a_model_trains_on_the_second_device_as_on_the_first(kind: str) -> None:
    """A GPT step (forward, backward, clipping, AdamW) and a CNN epoch on device 1 equal those on device 0."""
    def gpt_losses(device: str) -> list[float]:
        tl.manual_seed(0)
        model = models.GPT(models.GPTConfig(block_size=8, vocab_size=11, n_layer=1, n_head=2, n_embd=8)).to(device)
        data = TextData(np.random.default_rng(0).integers(0, 11, 300))
        trainer = LMTrainer(model, data, LMTrainConfig(batch_size=2, max_iters=3, warmup_iters=1), progress=False)
        return [trainer.train_step().item() for _ in range(3)]

    def cnn_loss(device: str) -> float:
        tl.manual_seed(0)
        model = models.MNISTCNN().to(device)
        rng = np.random.default_rng(0)
        data = TensorDataset(tl.tensor(rng.standard_normal((8, 1, 28, 28)).astype(np.float32), device=device),
                             tl.tensor(rng.integers(0, 10, 8), device=device))
        trainer = Trainer(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters()), batch_size=4, progress=False)
        return trainer._run(data, epoch=1)["loss"]

    assert gpt_losses(f"{kind}:1") == gpt_losses(f"{kind}:0")
    assert cnn_loss(f"{kind}:1") == cnn_loss(f"{kind}:0")


def test_a_loader_and_a_generation_on_the_second_device(kind: str) -> None:
    device = f"{kind}:1"
    loader = DataLoader(TensorDataset(tl.randn(6, 2), tl.arange(6)), batch_size=4, shuffle=True, generator=0,
                        device=device)
    assert all(t.device == device for batch in loader for t in batch)
    tl.manual_seed(0)
    model = models.GPT(models.GPTConfig(block_size=8, vocab_size=11, n_layer=1, n_head=2, n_embd=8)).to(device)
    tokens = model.generate(tl.zeros(1, 1, dtype=tl.int64, device=device), 5)
    assert tokens.device == device and tokens.shape == (1, 6)
