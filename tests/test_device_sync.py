"""No hidden host synchronisation: on the simulated device, which counts every transfer between host and
device, a training step of each model makes no device-to-host read, batches move to the device once, and
optimizers, clipping and schedulers never read a value back. Checks of device values (embedding indices,
class targets, probabilities) do not read per step either: they are read at the next read of the device.
"""

from __future__ import annotations

import numpy as np
import pytest
from tensorlite.backends.sim import count_transfers

import tensorlite as tl
from tensorlite import device_checks, models, nn, optim
from tensorlite.datasets.text import TextData
from tensorlite.optim import lr_scheduler
from tensorlite.training import LMTrainConfig, LMTrainer, Trainer
from tensorlite.training.metrics import argmax_accuracy
from tensorlite.utils.data import DataLoader, TensorDataset


@pytest.fixture(autouse=True)
def _no_pending_checks() -> None:
    """Each test starts with no checks recorded on the sim device by an earlier test."""
    device_checks.forget(tl.device("sim"))


def assert_no_reads(log) -> None:
    assert not log.device_to_host, "device-to-host reads:\n" + log.report()


# -- one training step of each model ----------------------------------------------------------------------
def gpt_cpu_preset_trainer() -> LMTrainer:
    """The `cpu` preset's GPT (4 layers, 4 heads, 128 wide, block 64, batch 12) on sim, on random text."""
    from tensorlite.cli.presets import GPT_PRESETS

    preset = GPT_PRESETS["cpu"]
    config = models.GPTConfig(vocab_size=65, **{k: preset[k] for k in ("n_layer", "n_head", "n_embd", "block_size",
                                                                       "dropout", "bias")})
    tl.manual_seed(0)
    model = models.GPT(config).to("sim")
    data = TextData(np.random.default_rng(0).integers(0, 65, 5_000))
    config = LMTrainConfig(batch_size=preset["batch_size"], max_iters=10, warmup_iters=2)
    return LMTrainer(model, data, config, progress=False)


def test_a_gpt_training_step_reads_nothing_and_moves_its_batch_once() -> None:
    trainer = gpt_cpu_preset_trainer()
    trainer.train_step()  # the first step makes the optimizer's state
    with count_transfers() as log:
        trainer.train_step()  # forward, cross entropy, backward, clipping, AdamW, the schedule, the loss watch
    assert_no_reads(log)
    assert len(log.host_to_device) == 1, log.report()  # inputs and targets: one window array
    with count_transfers() as log:
        assert trainer._watch.first_bad_step() is None  # what the loop reads at a log interval
    assert log.device_to_host, "the loss watch is read at log intervals"


def classifier_trainer(model: nn.Module, n: int, shape: tuple[int, ...]) -> tuple[Trainer, TensorDataset]:
    rng = np.random.default_rng(0)
    x = tl.tensor(rng.standard_normal((n, *shape)).astype(np.float32), device="sim")
    y = tl.tensor(rng.integers(0, 10, n), device="sim")
    optimizer = optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = lr_scheduler.OneCycleLR(optimizer, max_lr=1e-2, total_steps=100)
    trainer = Trainer(model.to("sim"), nn.CrossEntropyLoss(), optimizer, accuracy_fn=argmax_accuracy,
                      scheduler=scheduler, scheduler_step="batch", batch_size=8, progress=False)
    return trainer, TensorDataset(x, y)


@pytest.mark.parametrize("name", ["mnist-cnn", "mlp"])
def test_an_epoch_reads_the_device_only_at_its_end(name: str) -> None:
    """Trainer epochs of 2 and of 6 batches make the same reads: those of the epoch's end, none per step."""
    def reads(batches: int) -> list[str]:
        tl.manual_seed(0)
        if name == "mnist-cnn":
            model, shape = models.MNISTCNN(), (1, 28, 28)
        else:
            model, shape = models.MLP(models.MLPConfig([20, 32, 10], "relu")), (20,)
        trainer, dataset = classifier_trainer(model, 8 * batches, shape)
        trainer._run(dataset, epoch=1)  # warm: optimizer state made
        with count_transfers() as log:
            trainer._run(dataset, epoch=2)
        return [str(t).split(" at ")[0] + " " + t.where[-1].name for t in log.device_to_host]

    short, long = reads(2), reads(6)
    assert short == long, f"per-step reads: {len(short)} reads for 2 batches, {len(long)} for 6"
    assert len(short) <= 3, short  # the mean loss and the accuracy (and the checks recorded on the device)


def test_a_bare_training_step_with_clipping_reads_nothing() -> None:
    tl.manual_seed(0)
    model = models.MNISTCNN().to("sim")
    optimizer = optim.Adam(model.parameters(), lr=1e-3)
    x, y = tl.randn(4, 1, 28, 28, device="sim"), tl.tensor([1, 2, 3, 4], device="sim")
    for _ in range(2):
        with count_transfers() as log:
            loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        assert_no_reads(log)
        assert not log.host_to_device, log.report()


# -- data, optimizers, clipping, schedulers --------------------------------------------------------------
def test_a_device_dataset_moves_its_order_once_an_epoch_and_batches_never() -> None:
    data = TensorDataset(tl.randn(40, 3, device="sim"), tl.arange(40, device="sim"))
    with count_transfers() as log:
        batches = list(DataLoader(data, batch_size=8, shuffle=True, generator=0))
    assert len(batches) == 5 and batches[0][0].device == "sim"
    assert_no_reads(log)
    assert len(log.host_to_device) == 1, log.report()  # the shuffled order


def test_a_host_dataset_moves_each_batch_tensor_to_the_device_once() -> None:
    data = TensorDataset(tl.randn(40, 3), tl.arange(40))
    loader = DataLoader(data, batch_size=8, device="sim")
    with count_transfers() as log:
        x, y = next(iter(loader))
    assert x.device == "sim" and y.device == "sim"
    assert_no_reads(log)
    assert [t.what for t in log.host_to_device] == ["from_host", "from_host"], log.report()


OPTIMIZERS = {
    "SGD": lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    "Adam": lambda p: optim.Adam(p, lr=0.1, amsgrad=True, weight_decay=0.01),
    "AdamW": lambda p: optim.AdamW(p, lr=0.1),
    "RMSprop": lambda p: optim.RMSprop(p, lr=0.1, momentum=0.9, centered=True),
    "Adagrad": lambda p: optim.Adagrad(p, lr=0.1),
}
SCHEDULERS = {
    "StepLR": lambda o: lr_scheduler.StepLR(o, step_size=2),
    "ExponentialLR": lambda o: lr_scheduler.ExponentialLR(o, gamma=0.9),
    "CosineAnnealingLR": lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=10),
    "OneCycleLR": lambda o: lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=10,
                                                    cycle_momentum=not isinstance(o, optim.Adagrad)),
    "WarmupCosineLR": lambda o: lr_scheduler.WarmupCosineLR(o, 2, 10, 0.01),
    "LambdaLR": lambda o: lr_scheduler.LambdaLR(o, lambda step: 0.9**step),
}


@pytest.mark.parametrize("scheduler", SCHEDULERS)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_optimizers_clipping_and_schedulers_never_read_the_device(optimizer: str, scheduler: str) -> None:
    params = [tl.randn(3, 4, device="sim", requires_grad=True), tl.randn(4, device="sim", requires_grad=True)]
    opt = OPTIMIZERS[optimizer](params)
    sched = SCHEDULERS[scheduler](opt)
    for _ in range(3):
        for p in params:
            p.grad = tl.randn(*p.shape, device="sim")
        with count_transfers() as log:
            norm = nn.utils.clip_grad_norm_(params, 0.5)
            opt.step()
            sched.step()
            opt.zero_grad()
        assert_no_reads(log)
        assert not log.host_to_device, log.report()
    assert norm.device == "sim"


def test_clipping_reads_the_norm_only_when_asked_to_check_it() -> None:
    p = tl.randn(3, device="sim", requires_grad=True)
    p.grad = tl.randn(3, device="sim")
    with count_transfers() as log:
        nn.utils.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    assert [t.what for t in log.device_to_host] == ["item"], log.report()


def test_anomaly_mode_reads_each_gradient_only_when_enabled() -> None:
    x = tl.randn(3, device="sim", requires_grad=True)
    with count_transfers() as log:
        (x.exp() * 2).sum().backward()
    assert_no_reads(log)
    with tl.autograd.detect_anomaly(), count_transfers() as log:
        (x.exp() * 2).sum().backward()
    assert log.device_to_host  # the NaN check reads: the user asked for it


# -- checks of device values ---------------------------------------------------------------------------------
@pytest.fixture
def checks_mode():
    """Restore the mode of device checks after a test that changes it."""
    before = device_checks.get_mode()
    yield device_checks.set_mode
    device_checks.set_mode(before)
    device_checks.forget(tl.device("sim"))


CHECKED_OPS = {
    "embedding": (lambda d: nn.functional.embedding(tl.tensor([[1, 7, 2]], device=d), tl.randn(5, 3, device=d)),
                  IndexError, "embedding: index 7 is out of range: indices must be in [0, 5)"),
    "cross_entropy": (lambda d: nn.functional.cross_entropy(tl.randn(3, 4, device=d), tl.tensor([0, -3, 9], device=d)),
                      IndexError, "cross_entropy: target -3 is out of bounds"),
    "nll_loss": (lambda d: nn.functional.nll_loss(tl.randn(2, 4, device=d), tl.tensor([4, 0], device=d)),
                 IndexError, "nll_loss: target 4 is out of bounds"),
    "binary_cross_entropy": (lambda d: nn.functional.binary_cross_entropy(tl.tensor([0.5, 1.5], device=d),
                                                                           tl.tensor([0.0, 1.0], device=d)),
                             ValueError, "probabilities in [0, 1], got 1.5"),
}


@pytest.mark.parametrize("op", CHECKED_OPS)
def test_a_bad_value_raises_at_once_on_the_cpu(op: str) -> None:
    call, error, message = CHECKED_OPS[op]
    with pytest.raises(error, match=message.replace("[", r"\[").replace(")", r"\)")) as raised:
        call("cpu")
    assert "later read" not in str(raised.value)


@pytest.mark.parametrize("op", CHECKED_OPS)
def test_a_bad_value_on_a_device_raises_at_the_next_read_without_a_read_of_its_own(op: str, checks_mode) -> None:
    checks_mode("deferred")
    call, error, message = CHECKED_OPS[op]
    with count_transfers() as log:
        out = call("sim")  # computes with the index wrapped around, as CuPy does
    assert_no_reads(log)
    with pytest.raises(error, match=message.replace("[", r"\[").replace(")", r"\)")) as raised:
        out.sum().item()
    assert "checked on sim:0 without waiting for it" in str(raised.value)
    assert tl.ones(1, device="sim").item() == 1.0  # reported once: the next read is clean


def test_the_first_failed_check_is_the_one_reported(checks_mode) -> None:
    checks_mode("deferred")
    weight = tl.randn(5, 3, device="sim")
    nn.functional.embedding(tl.tensor([0, 1], device="sim"), weight)  # fine
    nn.functional.embedding(tl.tensor([6], device="sim"), weight)  # the first bad one
    nn.functional.cross_entropy(tl.randn(1, 2, device="sim"), tl.tensor([5], device="sim"))
    with pytest.raises(IndexError, match="embedding: index 6"):
        tl.zeros(2, device="sim").numpy()


def test_sync_mode_raises_where_the_op_runs_and_off_mode_never(checks_mode) -> None:
    call, error, message = CHECKED_OPS["embedding"]
    checks_mode("sync")
    with pytest.raises(error, match="index 7 is out of range"):
        call("sim")
    checks_mode("off")
    call("sim").sum().item()
    with pytest.raises(ValueError, match="set_device_checks: mode must be one of 'deferred', 'sync', 'off'"):
        checks_mode("lazy")


def test_the_trainer_reports_a_bad_target_at_the_end_of_its_epoch(checks_mode) -> None:
    checks_mode("deferred")
    tl.manual_seed(0)
    model = models.MLP(models.MLPConfig([4, 8, 3], "relu")).to("sim")
    data = TensorDataset(tl.randn(16, 4, device="sim"), tl.tensor([0, 1, 2, 3] * 4, device="sim"))
    trainer = Trainer(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), batch_size=4,
                      progress=False)
    with pytest.raises(IndexError, match="cross_entropy: target 3 is out of bounds"):
        trainer._run(data, epoch=1)
