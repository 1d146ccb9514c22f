"""Training state that never lies: periodic saves and a log truncated to its checkpoint on resume, run
directories that refuse another kind of run, short validation splits found before training, and non-finite
losses that stop a run (found on the device, with no host read per step).

Ctrl-C at a given moment is tested in test_training.py and test_text_lm.py; kills at random moments in
test_kills.py.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_runner import assert_fails, invoke
from tensorlite.backends.sim import SimArray, SimBackend
from test_text_lm import TINY
from test_training import assert_same_checkpoint, dropout_trainer, log_records, train, without_timing

import tensorlite as tl
from tensorlite import datasets, models, nn
from tensorlite.datasets.text import CharTokenizer, TextData, load_shakespeare
from tensorlite.training import (
    BEST,
    CHECKPOINT,
    CHECKPOINT_SECONDS,
    LMTrainConfig,
    LMTrainer,
    NonFiniteLossError,
    Trainer,
    run_dir,
)
from tensorlite.training.stopping import LossWatch
from tensorlite.utils.data import TensorDataset


@pytest.fixture(scope="module")
def text_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("text") / "shakespeare_head.txt"
    path.write_text(load_shakespeare()[:20_000], encoding="utf-8")
    return path


class Killed(BaseException):
    """Stands for kill -9: nothing in the trainer catches it."""


def iris_set() -> TensorDataset:
    x, y = datasets.load_iris()
    return TensorDataset(tl.tensor(datasets.Normalizer.fit(x, "standard")(x)), tl.tensor(y))


def kill_at_epoch(monkeypatch: pytest.MonkeyPatch, epoch: int) -> None:
    """Make ``Trainer._epoch`` raise ``Killed`` when epoch ``epoch`` starts."""
    original = Trainer._epoch

    def epoch_or_kill(self: Trainer, number: int, *args: Any) -> dict:
        if number == epoch:
            raise Killed
        return original(self, number, *args)

    monkeypatch.setattr(Trainer, "_epoch", epoch_or_kill)


def finite_json(path: Path) -> list[dict]:
    """The records of a JSONL file, refusing the NaN and Infinity that Python's json would otherwise accept."""
    def refuse(name: str) -> None:
        raise ValueError(f"{path} holds {name}")
    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


def all_weights_finite(path: Path) -> bool:
    return all(np.isfinite(value.numpy()).all() for value in tl.load(path)["model"].values())


# -- periodic saves, and a log that runs ahead of its checkpoint -----------------------------------------
def test_a_run_saves_after_every_epoch_that_ends_checkpoint_seconds_after_the_last_save(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert Trainer(models.MLP(models.MLPConfig([2, 1])), nn.MSELoss(), None).checkpoint_seconds == CHECKPOINT_SECONDS
    dataset = iris_set()
    kill_at_epoch(monkeypatch, 4)
    trainer = dropout_trainer(tmp_path)
    trainer.checkpoint_seconds = 0.0
    with pytest.raises(Killed):
        trainer.fit(dataset, dataset, epochs=6)
    assert tl.load(tmp_path / CHECKPOINT)["train_state"]["epoch"] == 3 and len(log_records(tmp_path)) == 3


def test_a_killed_run_resumes_from_its_checkpoint_and_drops_the_log_records_past_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    dataset = iris_set()
    dropout_trainer(tmp_path / "a").fit(dataset, dataset, epochs=6)
    with monkeypatch.context() as patch:
        kill_at_epoch(patch, 4)
        killed = dropout_trainer(tmp_path / "b")
        killed.checkpoint_seconds = math.inf  # saved only before the first epoch
        with pytest.raises(Killed):
            killed.fit(dataset, dataset, epochs=6)
    assert tl.load(tmp_path / "b" / CHECKPOINT)["train_state"]["epoch"] == 0
    assert len(log_records(tmp_path / "b")) == 3
    capsys.readouterr()

    dropout_trainer(tmp_path / "b").fit(dataset, dataset, epochs=6, resume=True)
    assert "ran 3 records ahead of the checkpoint" in " ".join(capsys.readouterr().err.split())  # rich wraps
    assert_same_checkpoint(tmp_path / "a", tmp_path / "b")
    assert without_timing(log_records(tmp_path / "b")) == without_timing(log_records(tmp_path / "a"))


def test_open_log_rewrites_a_log_that_ran_ahead_and_says_how_many_records_it_dropped(tmp_path: Path) -> None:
    (tmp_path / run_dir.LOG).write_text('{"epoch": 1}\n{"epoch": 2}\n{"epoch": 3}\n{"epo')  # killed mid-line
    notes: list[str] = []
    run_dir.open_log(tmp_path, [{"epoch": 1}], notes.append).close()
    assert run_dir.read_log(tmp_path) == [{"epoch": 1}]
    assert len(notes) == 1 and "ran 3 records ahead of the checkpoint" in notes[0]
    run_dir.open_log(tmp_path, [{"epoch": 1}, {"epoch": 2}], notes.append).close()  # behind: restored silently
    assert run_dir.read_log(tmp_path) == [{"epoch": 1}, {"epoch": 2}] and len(notes) == 1


# -- a run directory holds one run -----------------------------------------------------------------------
def test_out_refuses_a_directory_holding_another_kind_of_run_unless_overwrite(text_file: Path,
                                                                             tmp_path: Path) -> None:
    lm = invoke("train", "shakespeare", *TINY, "--max-iters", "10", "--data", text_file, "--out", tmp_path)
    assert lm.exit_code == 0, lm.output
    assert_fails(invoke("train", "xor", "--epochs", "2", "--out", tmp_path, "--no-progress"),
                 f"--out: {tmp_path} holds a 'char-lm' run", "not a 'mlp-task' one", "--overwrite")
    assert tl.load_metadata(tmp_path / CHECKPOINT)["kind"] == "char-lm"  # untouched
    with pytest.raises(FileExistsError, match="overwrite=True replaces it"):
        run_dir.start_run(tmp_path, "mlp-task")

    xor = invoke("train", "xor", "--epochs", "2", "--out", tmp_path, "--no-progress", "--overwrite")
    assert xor.exit_code == 0, xor.output
    assert not (tmp_path / BEST).exists()  # nothing of the language model is left
    assert tl.load_metadata(tmp_path / CHECKPOINT)["kind"] == "mlp-task" and len(log_records(tmp_path)) == 2
    assert_fails(invoke("train", "xor", "--out", tmp_path, "--resume", "--overwrite"), "give one of them")


def test_a_new_run_of_the_same_kind_replaces_the_old_one(tmp_path: Path) -> None:
    train("xor", tmp_path, epochs=5)
    (tmp_path / BEST).write_bytes((tmp_path / CHECKPOINT).read_bytes())  # a stale best of the same kind
    trainer, _ = train("and", tmp_path, epochs=2)
    assert not (tmp_path / BEST).exists() and len(log_records(tmp_path)) == 2
    with pytest.raises(ValueError, match="resume continues the run in out_dir and overwrite replaces it"):
        trainer.fit(None, epochs=2, resume=True, overwrite=True)


# -- a validation split too short for one window -----------------------------------------------------------
def test_a_split_shorter_than_a_window_is_refused_before_training(tmp_path: Path) -> None:
    text = "abcdefghij" * 10  # 90 training and 10 validation characters
    model = models.GPT(models.GPTConfig(block_size=16, vocab_size=10, n_layer=1, n_head=1, n_embd=8))
    data = TextData(CharTokenizer.from_text(text).encode(text))
    with pytest.raises(ValueError, match=r"the val split has 10 tokens, fewer than the block_size \+ 1 = 17"):
        LMTrainer(model, data, LMTrainConfig(), out_dir=tmp_path)
    short = tmp_path / "short.txt"
    short.write_text(text)
    assert_fails(invoke("train", "shakespeare", *TINY, "--block-size", "16", "--data", short, "--out", tmp_path),
                 "the val split has 10 tokens")
    assert not (tmp_path / CHECKPOINT).exists()


# -- non-finite losses ---------------------------------------------------------------------------------------
def test_loss_watch_keeps_the_first_non_finite_step_on_the_device(device: str) -> None:
    watch = LossWatch()
    assert watch.first_bad_step() is None
    for step, value in enumerate([1.0, 2.0, math.inf, math.nan, 3.0], 1):
        watch.update(tl.tensor(value, device=device), step)
        assert isinstance(watch.first_bad, SimArray) == (device == "sim")
    assert watch.first_bad_step() == 3
    watch.reset()
    watch.update(tl.tensor(1.0, device=device), 7)
    assert watch.first_bad_step() is None


def test_a_non_finite_loss_stops_the_epoch_loop_at_the_last_finite_epoch(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    dataset = iris_set()
    dropout_trainer(tmp_path / "a").fit(dataset, dataset, epochs=2)
    calls, loss_fn = itertools.count(1), nn.CrossEntropyLoss.forward

    def nan_at_call_25(self: nn.Module, *args: Any) -> tl.Tensor:  # 5 training and 5 evaluation batches an epoch
        loss = loss_fn(self, *args)
        return loss * math.nan if next(calls) == 10 + 10 + 5 else loss

    monkeypatch.setattr(nn.CrossEntropyLoss, "forward", nan_at_call_25)
    with pytest.raises(NonFiniteLossError, match="not finite .* at epoch 3, batch 5: training stopped at epoch 2"):
        dropout_trainer(tmp_path / "b").fit(dataset, dataset, epochs=6)
    assert_same_checkpoint(tmp_path / "a", tmp_path / "b")  # the last finite state, saved
    records = finite_json(tmp_path / "b" / run_dir.LOG)
    assert len(records) == 3 and records[2]["train_loss"] is None


def test_train_xor_with_a_huge_learning_rate_stops_with_exit_status_1(tmp_path: Path) -> None:
    with pytest.raises(NonFiniteLossError, match="after epoch 1: training stopped at epoch 0"):
        train("xor", tmp_path / "lib", lr=1e308)
    result = invoke("train", "xor", "--lr", "1e308", "--out", tmp_path / "cli", "--no-progress")
    assert_fails(result, "not finite", "epoch 1", "stopped at epoch 0", status=1)
    for run in (tmp_path / "lib", tmp_path / "cli"):
        assert finite_json(run / run_dir.LOG)[0]["val_loss"] is None
        assert all_weights_finite(run / CHECKPOINT)


def test_a_non_finite_language_model_loss_stops_with_exit_status_1(text_file: Path, tmp_path: Path) -> None:
    result = invoke("train", "shakespeare", *TINY, "--lr", "1e6", "--data", text_file, "--out", tmp_path)
    assert_fails(result, "the training loss is not finite", "at iteration", status=1)
    assert "best val loss" not in result.output
    assert finite_json(tmp_path / run_dir.LOG)[-1]["val_loss"] is None
    assert not (tmp_path / BEST).exists()  # best: the lowest finite val loss, and there was none
    assert all_weights_finite(tmp_path / CHECKPOINT)


# -- no host read per step ---------------------------------------------------------------------------------
@pytest.fixture
def host_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every read of a sim array's values from the host, by the name of the way out it took.

    Not counted: the ops' own argument checks (``embedding`` and ``cross_entropy`` read whether an index is
    out of bounds), which belong to the ops, not to the loops tested here.
    """
    reads: list[str] = []

    def counted(name: str, method: Any) -> Any:
        def read(*args: Any) -> Any:
            if os.path.join("tensorlite", "ops", "") not in sys._getframe(1).f_code.co_filename:
                reads.append(name)
            return method(*args)
        return read

    for name in ("__float__", "__int__", "__bool__", "__index__", "item", "tolist", "get"):
        monkeypatch.setattr(SimArray, name, counted(name, getattr(SimArray, name)))
    monkeypatch.setattr(SimBackend, "to_host", counted("to_host", SimBackend.to_host))
    return reads


def test_an_epoch_reads_from_the_device_as_often_whatever_its_number_of_batches(host_reads: list[str]) -> None:
    counts = []
    for batch_size in (50, 10):  # 3 and 15 steps an epoch
        tl.manual_seed(0)
        model = models.MLP(models.MLPConfig([4, 8, 3], "relu")).to("sim")
        x, y = datasets.load_iris()
        dataset = TensorDataset(tl.tensor(x, device="sim"), tl.tensor(y, device="sim"))
        Trainer(model, nn.CrossEntropyLoss(), tl.optim.Adam(model.parameters()), batch_size=batch_size,
                progress=False).fit(dataset, dataset, epochs=2)
        counts.append(len(host_reads))
        host_reads.clear()
    assert counts[0] == counts[1] > 0


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_language_model_steps_read_nothing_from_the_device(host_reads: list[str], text_file: Path,
                                                            optimizer: str) -> None:
    counts = []
    for iterations in (4, 12):  # one evaluation, at the end
        tl.manual_seed(0)
        text = text_file.read_text()
        tokenizer = CharTokenizer.from_text(text)
        config = models.GPTConfig(block_size=8, vocab_size=tokenizer.vocab_size, n_layer=1, n_head=2, n_embd=16)
        model = models.GPT(config).to("sim")
        data = TextData(tokenizer.encode(text))
        config = LMTrainConfig(max_iters=iterations, eval_interval=iterations, eval_iters=2, batch_size=4,
                               warmup_iters=1, optimizer=optimizer)
        LMTrainer(model, data, config, progress=False).fit()
        counts.append(len(host_reads))
        host_reads.clear()
    assert counts[0] == counts[1] > 0
