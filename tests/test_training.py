"""The training stack: Trainer, the small tasks (small_tasks.train_task / predict), checkpoints and resume.

The "must show" results of the tutorials: the [2, 3, 1] sigmoid network learns XOR, a perceptron
cannot (but learns AND and OR), the perceptron learns addition, an MLP classifies Iris, and a run
resumed from a checkpoint (or after Ctrl-C) ends bit for bit where an uninterrupted run does.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tensorlite as tl
from tensorlite import datasets, models, nn, optim
from tensorlite.cli import small_tasks
from tensorlite.training import CHECKPOINT, LOG, Trainer, argmax_accuracy
from tensorlite.utils.data import TensorDataset

TIMING = ("seconds", "samples_per_second")  # the only log fields that may differ between identical runs


def train(name: str, out: Path, **kwargs: Any) -> tuple[Trainer, dict]:
    return small_tasks.train_task(name, out=out, progress=False, **kwargs)


def log_records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / LOG).read_text().splitlines()]


def without_timing(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def leaves(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"model.0.weight": tensor, "optimizer.state.0.step": 3, ...}`` from a nested state tree."""
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, (list, tuple)):
        items = enumerate(tree)
    else:
        return {prefix: tree}
    return {k: v for key, value in items for k, v in leaves(value, f"{prefix}.{key}" if prefix else str(key)).items()}


def assert_same_checkpoint(a: Path, b: Path) -> None:
    """Model, optimizer and scheduler state exactly equal; the same epoch and metric history."""
    first, second = tl.load(a / CHECKPOINT), tl.load(b / CHECKPOINT)
    for part in ("model", "optimizer", "scheduler"):
        x, y = leaves(first[part]), leaves(second[part])
        assert x.keys() == y.keys(), part
        for key in x:
            if isinstance(x[key], tl.Tensor):
                assert np.array_equal(x[key].numpy(), y[key].numpy()), f"{part}.{key} differs"
            else:
                assert x[key] == y[key], f"{part}.{key}: {x[key]} != {y[key]}"
    assert len(leaves(first["model"])) > 0 and len(leaves(first["optimizer"]["state"])) > 0
    assert first["train_state"]["epoch"] == second["train_state"]["epoch"]
    assert without_timing(first["train_state"]["history"]) == without_timing(second["train_state"]["history"])


def interrupt_at_step(monkeypatch: pytest.MonkeyPatch, optimizer_class: type, n: int) -> None:
    """Make the ``n``-th ``optimizer_class.step`` call raise KeyboardInterrupt (as Ctrl-C would)."""
    original, calls = optimizer_class.step, itertools.count(1)

    def step(self: Any, *args: Any, **kwargs: Any) -> Any:
        if next(calls) == n:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(optimizer_class, "step", step)


# -- what the tutorials must show --------------------------------------------------------------------
def gate_predictions(out: Path) -> np.ndarray:
    x, _ = datasets.logic_gate("xor")
    outputs, meta = small_tasks.predict(out, x)
    assert meta["loss"] == "mse"
    return (outputs[:, 0] > 0.5).astype(np.int64)


def test_xor_is_learned_by_the_2_3_1_sigmoid_network_for_most_seeds(tmp_path: Path) -> None:
    task = small_tasks.TASKS["xor"]
    solved = []
    for seed in range(10):
        trainer, _ = train("xor", tmp_path / f"xor{seed}", seed=seed)
        assert trainer.metadata["model_config"] == {"sizes": [2, 3, 1], "activation": "sigmoid",
                                                    "output_activation": "sigmoid", "dropout": 0.0}
        assert isinstance(trainer.optimizer, optim.SGD) and isinstance(trainer.loss_fn, nn.MSELoss)
        assert trainer.state.epoch == task.epochs
        if np.array_equal(gate_predictions(tmp_path / f"xor{seed}"), [0, 1, 1, 0]):
            solved.append(seed)
    print(f"XOR solved (all four outputs correct) for {len(solved)}/10 seeds: {solved}")
    assert len(solved) >= 9, f"XOR solved for only {len(solved)}/10 seeds: {solved}"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_perceptron_cannot_learn_xor_but_learns_and_and_or(tmp_path: Path, seed: int) -> None:
    results = {}
    for gate in ("xor", "and", "or"):
        trainer, results[gate] = train(gate, tmp_path / gate, hidden="none", seed=seed)
        assert [type(layer) for layer in trainer.model] == [nn.Linear, nn.Sigmoid]  # one layer of weights
    assert results["xor"]["accuracy"] < 1.0
    assert results["and"]["accuracy"] == 1.0
    assert results["or"]["accuracy"] == 1.0


def test_the_perceptron_learns_addition(tmp_path: Path) -> None:
    trainer, result = train("addition", tmp_path / "addition")
    assert [type(layer) for layer in trainer.model] == [nn.Linear]
    assert result["accuracy"] == 1.0  # within 0.05 on the test split
    x, y = datasets.addition(200, seed=123)  # pairs it never saw
    outputs, _ = small_tasks.predict(tmp_path / "addition", x)
    error = np.abs(outputs - y).max()
    assert error < 0.05, f"max absolute error {error}"


def test_iris_median_test_accuracy_over_five_seeds(tmp_path: Path) -> None:
    accuracies = [train("iris", tmp_path / f"iris{seed}", seed=seed)[1]["accuracy"] for seed in range(5)]
    print(f"Iris test accuracies (seeds 0..4): {accuracies}")
    assert float(np.median(accuracies)) >= 0.96, accuracies


# -- resume, bit for bit -----------------------------------------------------------------------------
def test_resume_ends_bit_for_bit_where_an_uninterrupted_run_does(tmp_path: Path) -> None:
    n, k = 10, 4
    train("iris", tmp_path / "a", epochs=n, seed=3)
    first, _ = train("iris", tmp_path / "b", epochs=k, seed=3)
    assert first.state.epoch == k and len(log_records(tmp_path / "b")) == k
    resumed, _ = train("iris", tmp_path / "b", epochs=n, seed=3, resume=True)
    assert resumed.state.epoch == n
    assert_same_checkpoint(tmp_path / "a", tmp_path / "b")
    records = log_records(tmp_path / "b")
    assert len(records) == n and [r["epoch"] for r in records] == list(range(1, n + 1))
    assert without_timing(records) == without_timing(log_records(tmp_path / "a"))


def test_ctrl_c_saves_the_last_completed_epoch_and_resume_matches(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    n, task = 6, small_tasks.TASKS["iris"]
    steps_per_epoch = math.ceil(120 / task.batch_size)  # 120 training rows
    train("iris", tmp_path / "a", epochs=n, seed=1)

    interrupt_at_step(monkeypatch, optim.Adam, 2 * steps_per_epoch + 5)  # in the middle of epoch 3
    trainer, _ = train("iris", tmp_path / "b", epochs=n, seed=1)  # returns cleanly
    assert trainer.state.epoch == 2
    saved = tl.load(tmp_path / "b" / CHECKPOINT)
    assert saved["train_state"]["epoch"] == 2 and len(saved["train_state"]["history"]) == 2
    assert len(log_records(tmp_path / "b")) == 2
    for key, value in trainer.model.state_dict().items():  # the partial epoch's updates were rolled back
        assert np.array_equal(value.numpy(), saved["model"][key].numpy()), key
    assert all(s["step"] == 2 * steps_per_epoch for s in saved["optimizer"]["state"].values())

    train("iris", tmp_path / "b", epochs=n, seed=1, resume=True)
    assert_same_checkpoint(tmp_path / "a", tmp_path / "b")
    assert len(log_records(tmp_path / "b")) == n


@pytest.mark.parametrize("interrupted_after", [1, 3])
def test_ctrl_c_just_after_an_epoch_returns_neither_skips_nor_repeats_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, interrupted_after: int) -> None:
    n = 5
    train("iris", tmp_path / "a", epochs=n, seed=2)
    epoch = Trainer._epoch

    def epoch_then_ctrl_c(self: Trainer, number: int, *args: Any) -> dict:
        record = epoch(self, number, *args)
        if number == interrupted_after:
            raise KeyboardInterrupt  # the epoch is done but not yet committed
        return record

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "_epoch", epoch_then_ctrl_c)
        trainer, _ = train("iris", tmp_path / "b", epochs=n, seed=2)
    saved = tl.load(tmp_path / "b" / CHECKPOINT)
    assert trainer.state.epoch == saved["train_state"]["epoch"] == interrupted_after - 1
    assert len(saved["train_state"]["history"]) == len(log_records(tmp_path / "b")) == interrupted_after - 1
    for key, value in trainer.model.state_dict().items():
        assert np.array_equal(value.numpy(), saved["model"][key].numpy()), key

    train("iris", tmp_path / "b", epochs=n, seed=2, resume=True)
    assert_same_checkpoint(tmp_path / "a", tmp_path / "b")
    assert [r["epoch"] for r in log_records(tmp_path / "b")] == list(range(1, n + 1))


def dropout_trainer(out: Path) -> Trainer:
    """An Iris MLP with dropout and a step schedule: resume must also restore the RNG and scheduler."""
    tl.manual_seed(7)
    x, y = datasets.load_iris()
    x = datasets.Normalizer.fit(x, "standard")(x)
    model = models.MLP(models.MLPConfig([4, 16, 3], "relu", dropout=0.3))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    return Trainer(model, nn.CrossEntropyLoss(), opt, accuracy_fn=argmax_accuracy, scheduler=scheduler,
                   batch_size=32, seed=5, out_dir=out, progress=False)


def test_resume_with_dropout_and_a_scheduler_after_ctrl_c(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = datasets.load_iris()
    x = datasets.Normalizer.fit(x, "standard")(x)
    dataset = TensorDataset(tl.tensor(x), tl.tensor(y))
    n = 6
    dropout_trainer(tmp_path / "a").fit(dataset, dataset, epochs=n)

    interrupt_at_step(monkeypatch, optim.SGD, 3 * 5 + 2)  # 5 steps per epoch: inside epoch 4
    interrupted = dropout_trainer(tmp_path / "b")
    history = interrupted.fit(dataset, dataset, epochs=n)
    assert len(history) == 3 and interrupted.state.epoch == 3
    assert interrupted.scheduler.last_epoch == 3

    resumed = dropout_trainer(tmp_path / "b")
    resumed.fit(dataset, dataset, epochs=n, resume=True)
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**3)
    assert_same_checkpoint(tmp_path / "a", tmp_path / "b")


def test_resuming_a_finished_run_changes_nothing(tmp_path: Path) -> None:
    train("xor", tmp_path / "a", epochs=20)
    before = tl.load(tmp_path / "a" / CHECKPOINT)
    trainer, _ = train("xor", tmp_path / "a", epochs=20, resume=True)
    assert trainer.state.epoch == 20 and len(log_records(tmp_path / "a")) == 20
    after = tl.load(tmp_path / "a" / CHECKPOINT)
    for key, value in before["model"].items():
        assert np.array_equal(value.numpy(), after["model"][key].numpy())


def test_simulated_device_trains_exactly_as_the_cpu(tmp_path: Path) -> None:
    train("iris", tmp_path / "cpu", epochs=3, device="cpu")
    trainer, _ = train("iris", tmp_path / "sim", epochs=3, device="sim")
    assert str(next(iter(trainer.model.parameters())).device).startswith("sim")
    assert_same_checkpoint(tmp_path / "cpu", tmp_path / "sim")


# -- early stopping, logs, evaluation, metadata -----------------------------------------------------
def test_early_stopping_on_a_plateau(tmp_path: Path) -> None:
    """A perceptron on XOR plateaus at a loss of about 0.25: patience stops it long before 1000 epochs."""
    patience = 10
    trainer, _ = train("xor", tmp_path / "run", hidden="none", patience=patience)
    epochs = trainer.state.epoch
    assert epochs < small_tasks.TASKS["xor"].epochs
    records = log_records(tmp_path / "run")
    assert len(records) == epochs == len(trainer.state.history)
    best_before = min(r["val_loss"] for r in records[:-patience])
    assert all(r["val_loss"] >= best_before for r in records[-patience:])
    assert trainer.state.epochs_without_improvement == patience


def test_log_records_one_line_per_epoch_with_metrics(tmp_path: Path) -> None:
    train("circles", tmp_path / "run", epochs=3)
    records = log_records(tmp_path / "run")
    assert [r["epoch"] for r in records] == [1, 2, 3]
    for r in records:
        assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", *TIMING} <= r.keys()
        assert 0.0 <= r["val_accuracy"] <= 1.0 and r["lr"] == small_tasks.TASKS["circles"].lr


def test_trainer_evaluate_returns_mean_loss_and_accuracy() -> None:
    rng = np.random.default_rng(0)
    x = tl.tensor(rng.normal(size=(10, 4)).astype(np.float32))
    y = tl.tensor(rng.integers(0, 3, size=10))
    model = models.MLP(models.MLPConfig([4, 5, 3], "tanh"))
    trainer = Trainer(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1),
                      accuracy_fn=argmax_accuracy, batch_size=3, progress=False)  # batches of 3, 3, 3, 1
    result = trainer.evaluate(TensorDataset(x, y))
    with tl.no_grad():
        logits = model(x)
    assert result.keys() == {"loss", "accuracy"}
    assert result["loss"] == pytest.approx(float(nn.CrossEntropyLoss()(logits, y)), rel=1e-5)
    assert result["accuracy"] == pytest.approx(float((logits.numpy().argmax(1) == y.numpy()).mean()))
    assert not model.training

    no_accuracy = Trainer(model, nn.CrossEntropyLoss(), trainer.optimizer, batch_size=4, progress=False)
    assert no_accuracy.evaluate(TensorDataset(x, y)).keys() == {"loss"}


def test_trainer_without_out_dir_trains_but_cannot_resume() -> None:
    x, y = datasets.logic_gate("and")
    model = models.MLP(models.MLPConfig([2, 1], output_activation="sigmoid"))
    trainer = Trainer(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=1.0), batch_size=4, progress=False)
    history = trainer.fit(TensorDataset(tl.tensor(x), tl.tensor(y)), epochs=3)
    assert [r["epoch"] for r in history] == [1, 2, 3] and "val_loss" not in history[0]
    assert trainer.save_checkpoint() is None
    with pytest.raises(ValueError, match="no out_dir"):
        trainer.fit(TensorDataset(tl.tensor(x), tl.tensor(y)), epochs=3, resume=True)


def test_trainer_rejects_a_bad_batch_size() -> None:
    model = models.MLP(models.MLPConfig([2, 1]))
    with pytest.raises(ValueError, match="Trainer: batch_size must be positive, got 0"):
        Trainer(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=1.0), batch_size=0)


def test_checkpoint_metadata(tmp_path: Path) -> None:
    train("iris", tmp_path / "run", epochs=2, seed=4)
    meta = tl.load_metadata(tmp_path / "run" / CHECKPOINT)
    assert meta["kind"] == small_tasks.TASK_KIND and meta["task"] == "iris" and meta["seed"] == 4
    assert meta["loss"] == "ce" and meta["classes"] == list(datasets.SPECIES)
    assert meta["model_config"] == {"sizes": [4, 32, 3], "activation": "relu", "output_activation": None,
                                    "dropout": 0.0}
    assert meta["normalizer"]["method"] == "standard" and len(meta["normalizer"]["shift"]) == 4
    assert meta["tensorlite_version"] == tl.__version__
    model, loaded = small_tasks.load_task_checkpoint(tmp_path / "run")
    assert loaded == meta and isinstance(model, models.MLP) and not model.training


def test_evaluate_checkpoint_confusion_matrix_matches_accuracy(tmp_path: Path) -> None:
    train("iris", tmp_path / "run", epochs=5)
    result = small_tasks.evaluate_checkpoint(tmp_path / "run" / CHECKPOINT)
    confusion = result["confusion"]
    assert confusion.shape == (3, 3) and confusion.sum() == result["n"] == 30
    np.testing.assert_array_equal(confusion.sum(axis=1), [10, 10, 10])  # the stratified test split
    assert result["accuracy"] == pytest.approx(np.trace(confusion) / 30)
    assert result["classes"] == list(datasets.SPECIES)


@pytest.mark.parametrize("kwargs, message", [
    ({"optimizer": "lbfgs"}, "unknown optimizer 'lbfgs'"),
    ({"lr": 0.0}, "--lr must be a positive number, got 0.0"),
    ({"lr": math.nan}, "--lr must be a positive number, got nan"),
    ({"epochs": 0}, "--epochs must be between 1 and 10,000,000, got 0"),
    ({"hidden": "3,-1"}, "--hidden must be between 1 and 65,536, got -1"),
    ({"hidden": "three"}, "bad layer spec 'three'"),
    ({"loss": "hinge"}, "unknown loss 'hinge'"),
    ({"resume": True}, "no checkpoint to resume from"),
])
def test_train_task_validates_its_arguments(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        train("xor", tmp_path / "run", **kwargs)
    assert not (tmp_path / "run").exists()  # nothing was written


def test_predict_checks_the_number_of_inputs(tmp_path: Path) -> None:
    train("xor", tmp_path / "run", epochs=2)
    with pytest.raises(small_tasks.UsageError, match="takes 2 inputs per row, got 3"):
        small_tasks.predict(tmp_path / "run", np.zeros((1, 3)))


def test_progress_bar_runs_and_formats_metrics(tmp_path: Path) -> None:
    from tensorlite.training.progress import format_metrics

    trainer, _ = small_tasks.train_task("xor", out=tmp_path / "run", epochs=3, progress=True)
    assert trainer.state.epoch == 3
    assert format_metrics({"epoch": 1, "train_loss": 0.5, "train_accuracy": 0.75, "lr": 0.1}) == \
        "train_loss 0.5000  train_acc 75.00%"


def test_scheduler_steps_after_every_batch_when_asked() -> None:
    x, y = datasets.load_iris()
    dataset = TensorDataset(tl.tensor(datasets.Normalizer.fit(x, "standard")(x)), tl.tensor(y))
    model = models.MLP(models.MLPConfig([4, 8, 3], "relu"))
    opt = optim.Adam(model.parameters(), lr=0.01)
    scheduler = optim.lr_scheduler.OneCycleLR(opt, max_lr=0.01, epochs=3, steps_per_epoch=5)  # 150 rows / 32
    trainer = Trainer(model, nn.CrossEntropyLoss(), opt, scheduler=scheduler, scheduler_step="batch", batch_size=32,
                      progress=False)
    history = trainer.fit(dataset, epochs=3)
    assert scheduler.last_epoch == 15
    reference = optim.lr_scheduler.OneCycleLR(optim.Adam(models.MLP(models.MLPConfig([4, 3])).parameters()),
                                              max_lr=0.01, total_steps=15)
    expected = []  # the rate after each epoch's 5 steps
    for step in range(1, 16):
        reference.step()
        if step % 5 == 0:
            expected.append(reference.get_last_lr()[0])
    assert [record["lr"] for record in history] == pytest.approx(expected)
    with pytest.raises(ValueError, match="scheduler_step must be 'epoch' or 'batch', got 'step'"):
        Trainer(model, nn.CrossEntropyLoss(), opt, scheduler_step="step")
