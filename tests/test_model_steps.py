"""One training step of each model on each device equals the same step on the CPU: the GPT, the character LSTM,
the MNIST MLP and CNN, and a small-task MLP, each through forward, loss, backward, clipping and an optimizer step
(and on a GPU, with CuPy's kernels, within float32 rounding of NumPy's)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from tensorlite.backends import numpy_backend

import tensorlite as tl
from tensorlite import models, nn, optim

rng = np.random.default_rng(0)
TOKENS = rng.integers(0, 11, (3, 9))
IMAGES, DIGITS = rng.standard_normal((4, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 4)
FEATURES, CLASSES = rng.standard_normal((6, 4)).astype(np.float32), rng.integers(0, 3, 6)


def language_step(model: nn.Module, device: str) -> tl.Tensor:
    _, loss = model(tl.tensor(TOKENS[:, :-1], device=device), tl.tensor(TOKENS[:, 1:], device=device))
    return loss


def classifier_step(inputs: np.ndarray, targets: np.ndarray) -> Callable[[nn.Module, str], tl.Tensor]:
    def step(model: nn.Module, device: str) -> tl.Tensor:
        return nn.functional.cross_entropy(model(tl.tensor(inputs, device=device)), tl.tensor(targets, device=device))

    return step


MODELS = {
    "gpt": (lambda p: models.GPT(models.GPTConfig(block_size=8, vocab_size=11, n_layer=2, n_head=2, n_embd=16,
                                                  dropout=p)), language_step),
    "char-lstm": (lambda p: models.CharLSTM(models.CharLSTMConfig(vocab_size=11, n_embd=8, hidden_size=16,
                                                                  num_layers=2, block_size=8, dropout=p)),
                  language_step),
    "mnist-mlp": (lambda p: models.MNISTMLP(models.MNISTMLPConfig(dropout=p)), classifier_step(IMAGES, DIGITS)),
    "mnist-cnn": (lambda p: models.MNISTCNN(models.MNISTCNNConfig(dropout=p)), classifier_step(IMAGES, DIGITS)),
    "mlp": (lambda p: models.MLP(models.MLPConfig([4, 16, 3], "gelu", dropout=p)), classifier_step(FEATURES, CLASSES)),
}


def dropout_for(device: str) -> float:
    """Dropout where the device draws the CPU's random numbers (cpu, sim); none on CUDA, whose generator differs."""
    return 0.0 if device.startswith("cuda") else 0.2


def one_step(name: str, device: str, dropout: float) -> tuple[float, dict[str, np.ndarray]]:
    """The loss of one AdamW step with clipping, from the same initial weights and seed, and the weights after it."""
    build, loss_of = MODELS[name]
    tl.manual_seed(0)
    model = build(dropout).to(device)
    optimizer = optim.AdamW(model.parameters(), lr=1e-2)
    tl.manual_seed(1)  # the same dropout masks on every device: the generators are seeded alike
    loss = loss_of(model, device)
    optimizer.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return loss.item(), {key: value.numpy() for key, value in model.state_dict().items()}


@pytest.mark.parametrize("name", MODELS)
def test_a_training_step_on_the_device_equals_the_step_on_the_cpu(name: str, device: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Both sides run the reference math on the CPU (its compiled kernels, which round differently, are checked
    against that math in test_cpu_kernels.py: through Adam's first step, which divides by |g|, their last bits
    would move a weight by up to lr * 1e-3)."""
    monkeypatch.setattr(numpy_backend, "_float32_kernel", lambda x: None)
    loss, weights = one_step(name, device, dropout_for(device))
    expected_loss, expected = one_step(name, "cpu", dropout_for(device))
    assert np.isfinite(loss)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-5)
    for key, value in expected.items():
        np.testing.assert_allclose(weights[key], value, rtol=1e-4, atol=1e-6, err_msg=key)
