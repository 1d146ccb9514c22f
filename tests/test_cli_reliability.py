"""Issue 11 from the command line: lying checkpoint metadata, odd paths and absurd option values each end in one
line on stderr and exit status 2; a failed run in one line and status 1; ``--debug`` shows the traceback."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import safetensors.numpy
from cli_runner import assert_fails, invoke
from test_run_dir import old_run

import tensorlite as tl
from tensorlite import models
from tensorlite.training import run_dir

XOR_METADATA = {"kind": "mlp-task", "task": "xor", "loss": "mse", "seed": 0,
                "model_config": {"sizes": [2, 3, 1], "activation": "sigmoid", "output_activation": "sigmoid",
                                 "dropout": 0.0},
                "normalizer": {"method": "none", "shift": [0.0, 0.0], "scale": [1.0, 1.0]}, "classes": ["0", "1"]}


def write_xor(path: Path, metadata: dict[str, Any], **state_changes: Any) -> Path:
    """A 2-3-1 XOR checkpoint with ``metadata`` and the model state changed by ``state_changes`` (None: removed)."""
    state = dict(models.MLP(models.MLPConfig([2, 3, 1], "sigmoid", "sigmoid")).state_dict())
    state.update(state_changes)
    tl.save({"model": {k: v for k, v in state.items() if v is not None}}, path, metadata=metadata)
    return path


def changed(**fields: Any) -> dict[str, Any]:
    """``XOR_METADATA`` with ``fields`` replaced (None: removed)."""
    return {k: v for k, v in {**XOR_METADATA, **fields}.items() if v is not None}


def config(**fields: Any) -> dict[str, Any]:
    return {**XOR_METADATA["model_config"], **fields}


@pytest.mark.parametrize("metadata, state, fragments", [
    (changed(model_config=None), {}, ["metadata lacks model_config"]),
    (changed(normalizer=None), {}, ["metadata lacks normalizer"]),
    (changed(loss=None, task=None), {}, ["metadata lacks task, loss"]),
    (changed(model_config=config(width=3)), {}, ["metadata.model_config has unknown field(s) width"]),
    (changed(model_config=config(sizes=[2, "3", 1])), {}, ["metadata.model_config.sizes[1] must be int, got '3'"]),
    (changed(model_config=config(sizes=[2, 1e12, 1])), {}, ["model_config.sizes[1] must be int, got 1000000000000.0"]),
    (changed(model_config=config(sizes=[2, 10**12, 1])), {}, ["model of 4,000,000,000,001 elements", "2,147,483,648"]),
    (changed(model_config=config(activation="swish")), {}, ["metadata.model_config: MLP: unknown activation 'swish'"]),
    (changed(normalizer={"method": "none", "shift": [0.0], "scale": [1.0]}), {}, ["normalizer.shift has 1 values"]),
    (changed(loss="hinge"), {}, ["loss must be 'mse', 'bce' or 'ce', got 'hinge'"]),
    (changed(seed="0"), {}, ["metadata.seed must be int, got '0'"]),
    (changed(classes=["a"]), {}, ["metadata.classes names 1 classes for 1 output(s)"]),
    (changed(model_config=config(sizes=[2, 4, 1])), {}, ["model state holds 13 elements", "describes 17"]),
    (XOR_METADATA, {"0.weight": tl.zeros(2, 3)}, ["0.weight: checkpoint has shape (2, 3), the model has (3, 2)"]),
    (XOR_METADATA, {"0.bias": None, "extra": tl.zeros(3)}, ["unexpected key extra (shape (3,))"]),
])
def test_eval_refuses_lying_metadata(tmp_path: Path, metadata: dict, state: dict, fragments: list[str]) -> None:
    path = write_xor(tmp_path / "xor.safetensors", metadata, **state)
    assert_fails(invoke("eval", path), str(path), *fragments)


def test_every_command_that_loads_a_run_checks_it(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "xor"
    out.mkdir()
    write_xor(out / run_dir.CHECKPOINT, changed(model_config=config(sizes=[2, 1e12, 1])))
    for args in (["eval", out], ["predict", out, "0", "1"], ["plot", "boundary", out],
                 ["train", "xor", "--resume", "--out", out, "--no-progress"]):
        assert_fails(invoke(*args), "sizes[1] must be int")


def test_a_plain_safetensors_file_claiming_a_kind(tmp_path: Path) -> None:
    path = tmp_path / "plain.safetensors"
    safetensors.numpy.save_file({"w": tl.zeros(3).numpy()}, str(path), metadata={"kind": "mlp-task"})
    assert_fails(invoke("eval", path), str(path), "metadata lacks task, loss, seed, model_config, normalizer")


@pytest.fixture()
def gpt_run(tmp_path: Path) -> Path:
    return old_run("gpt", tmp_path)


def rewrite_metadata(path: Path, **fields: Any) -> None:
    metadata = {k: v for k, v in tl.load_metadata(path).items() if k != "tensorlite_version"}
    tl.save(tl.load(path), path, metadata={**metadata, **fields})


@pytest.mark.parametrize("change, fragments", [
    (lambda m: {"tokenizer": {"chars": "a" + m["tokenizer"]["chars"][1:-1] + "a"}},
     ["metadata.tokenizer", "each character once"]),
    (lambda m: {"tokenizer": {"chars": m["tokenizer"]["chars"][:5]}}, ["tokenizer holds 5 characters",
                                                                       "vocab_size is"]),
    (lambda m: {"model_config": {**m["model_config"], "vocab_size": 10**12}}, ["2,147,483,648 allowed"]),
    (lambda m: {"model": "rnn"}, ["model must be one of gpt, lstm, got 'rnn'"]),
    (lambda m: {"tokenizer": None}, ["metadata.tokenizer must be an object, got None"]),
])
def test_sample_refuses_lying_metadata(gpt_run: Path, change: Any, fragments: list[str]) -> None:
    path = run_dir.resolve_checkpoint(gpt_run)  # the checkpoint sample reads: best.safetensors
    rewrite_metadata(path, **change(tl.load_metadata(path)))
    assert_fails(invoke("sample", gpt_run, "--max-new-tokens", "5"), str(path), *fragments)


# -- paths ----------------------------------------------------------------------------------------------------
def test_a_directory_without_a_checkpoint(tmp_path: Path) -> None:
    for command in ("eval", "predict", "sample"):
        assert_fails(invoke(command, tmp_path), f"no checkpoint at {tmp_path / run_dir.CHECKPOINT}")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "ckpt.safetensors"
    os.mkfifo(fifo)
    for command in ("eval", "predict", "sample"):
        assert_fails(invoke(command, fifo), str(fifo), "a FIFO")
    write_xor(tmp_path / "xor.safetensors", XOR_METADATA)
    assert_fails(invoke("predict", tmp_path / "xor.safetensors", "--csv", fifo), "--csv", "is a FIFO")


@pytest.mark.parametrize("content, fragments", [
    (None, ["--csv", "is a directory"]),
    ("", ["--csv", "is empty"]),
    ("\n \n", ["--csv", "is empty"]),
    ("0,x\n", ["--csv", "does not hold rows of numbers"]),
])
def test_predict_csv_errors(tmp_path: Path, content: str | None, fragments: list[str]) -> None:
    csv = tmp_path / "rows.csv"
    csv.mkdir() if content is None else csv.write_text(content)
    path = write_xor(tmp_path / "xor.safetensors", XOR_METADATA)
    assert_fails(invoke("predict", path, "--csv", csv), str(csv), *fragments)


# -- option values --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, fragments", [
    (["xor", "--hidden", "100000000000"], ["--hidden must be between 1 and 65,536, got 100000000000"]),
    (["xor", "--hidden", "65536,65536"], ["--hidden: the model would hold 4,295,294,977 elements"]),
    (["xor", "--epochs", "100000000000000000000"], ["--epochs must be between 1 and 10,000,000"]),
    (["xor", "--patience", "0"], ["--patience must be between 1 and 10,000,000, got 0"]),
    (["xor", "--patience", "-1"], ["--patience must be between 1", "got -1"]),
    (["xor", "--seed", "-1"], ["--seed must be between 0 and"]),
    (["xor", "--batch-size", "1000000"], ["--batch-size must be between 1 and 65,536"]),
    (["xor", "--activation", "swish"], ["--activation: unknown activation 'swish'"]),
    (["xor", "--epochs", "x"], ["Invalid value for '--epochs'"]),  # typer's own usage error, in one line too
    (["shakespeare", "--n-embd", "100000000"], ["--n-embd must be between 1 and 65,536"]),
    (["shakespeare", "--block-size", "100000000"], ["--block-size must be between 1 and 65,536"]),
    (["shakespeare", "--n-layer", "5000"], ["--n-layer must be between 1 and 1,024"]),
    (["shakespeare", "--n-embd", "65536", "--n-head", "1"], ["--n-layer, --n-embd and --block-size: the model"]),
    (["char-lstm", "--hidden-size", "100000"], ["--hidden-size must be between 1 and 65,536"]),
    (["mnist-mlp", "--epochs", "0"], ["--epochs must be between 1"]),
])
def test_absurd_option_values_are_refused(tmp_path: Path, args: list[str], fragments: list[str]) -> None:
    assert_fails(invoke("train", *args, "--out", tmp_path / "run", "--no-progress"), *fragments)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("model", ["xor", "mnist-mlp", "shakespeare", "char-lstm"])
def test_out_must_be_a_directory(tmp_path: Path, model: str) -> None:
    file = tmp_path / "file"
    file.write_text("not a run")
    assert_fails(invoke("train", model, "--out", file, "--no-progress"), f"--out: {file} exists and is not a directory")
    assert_fails(invoke("train", model, "--out", "", "--no-progress"), "--out is empty")


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
def test_out_that_cannot_be_created() -> None:
    assert_fails(invoke("train", "xor", "--out", "/proc/tensorlite-run", "--epochs", "1", "--no-progress"),
                 "--out: cannot create the run directory /proc/tensorlite-run")


@pytest.mark.parametrize("args, fragments", [
    (["--seed", "-1"], ["--seed must be between 0"]),
    (["--max-new-tokens", "100000000000"], ["--max-new-tokens must be between 1 and 10,000,000"]),
    (["--top-k", "-1"], ["--top-k must be between 0"]),
])
def test_sample_option_values(gpt_run: Path, args: list[str], fragments: list[str]) -> None:
    assert_fails(invoke("sample", gpt_run, *args), *fragments)


def test_a_device_that_is_not_there(tmp_path: Path) -> None:
    from tensorlite.backends.cupy_backend import cuda_status

    if cuda_status()[0]:
        pytest.skip("CUDA is available here")
    path = write_xor(tmp_path / "xor.safetensors", XOR_METADATA)
    for args in (["eval", path, "--device", "cuda"], ["predict", path, "0", "1", "--device", "cuda"],
                 ["train", "xor", "--device", "cuda", "--out", tmp_path / "run"]):
        assert_fails(invoke(*args), "--device: device 'cuda")  # 'cuda' without CuPy, 'cuda:0' without a GPU


# -- exit statuses --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("error", [RuntimeError("non-finite loss at iteration 3"), MemoryError("out of memory"),
                                   KeyError("boom")])
def test_a_failed_run_exits_1_in_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                          error: Exception) -> None:
    from tensorlite.cli import small_tasks

    def fail(*args: Any, **kwargs: Any) -> None:
        raise error

    monkeypatch.setattr(small_tasks, "train_task", fail)
    assert_fails(invoke("train", "xor", "--out", tmp_path / "run"), str(error).strip("'"), status=1)


def test_ctrl_c_outside_a_training_loop_exits_130(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tensorlite.cli import small_tasks

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(small_tasks, "train_task", interrupted)
    result = invoke("train", "xor", "--out", tmp_path / "run")
    assert result.exit_code == 130 and "Traceback" not in result.output, result.output


def test_debug_shows_the_traceback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tensorlite.cli import small_tasks

    def fail(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("non-finite loss at iteration 3")

    monkeypatch.setattr(small_tasks, "train_task", fail)
    for args, debug in ((["--debug"], "0"), ([], "1")):
        monkeypatch.setenv("TENSORLITE_DEBUG", debug)
        result = invoke(*args, "train", "xor", "--out", tmp_path / "run")
        assert result.exit_code == 1
        assert "Traceback" in result.stderr and "RuntimeError: non-finite loss at iteration 3" in result.stderr


# -- --resume continues the run as it was ------------------------------------------------------------------
def test_resume_refuses_options_that_contradict_the_run(tmp_path: Path) -> None:
    out = tmp_path / "xor"
    assert invoke("train", "xor", "--epochs", "3", "--out", out, "--no-progress").exit_code == 0
    for args, fragments in [(["--optimizer", "adam"], ["optimizer 'sgd', not 'adam'"]),
                            (["--lr", "0.5"], ["lr 2.0, not 0.5"]),
                            (["--seed", "3"], ["seed 0, not 3"])]:
        assert_fails(invoke("train", "xor", "--epochs", "5", "--out", out, "--resume", "--no-progress", *args),
                     "--resume", str(out), *fragments)
    assert_fails(invoke("train", "and", "--epochs", "5", "--out", out, "--resume", "--no-progress"),
                 "task 'xor', not 'and'")
    result = invoke("train", "xor", "--epochs", "5", "--out", out, "--resume", "--no-progress")
    assert result.exit_code == 0, result.output  # options left out take the run's


def test_resume_refuses_a_training_state_that_does_not_fit(tmp_path: Path) -> None:
    out = tmp_path / "xor"
    assert invoke("train", "xor", "--epochs", "3", "--out", out, "--no-progress").exit_code == 0
    path = out / run_dir.CHECKPOINT
    state, metadata = tl.load(path), tl.load_metadata(path)
    del state["train_state"]["epoch"]
    tl.save(state, path, metadata={k: v for k, v in metadata.items() if k != "tensorlite_version"})
    assert_fails(invoke("train", "xor", "--epochs", "5", "--out", out, "--resume", "--no-progress"),
                 str(path), "training state does not fit this run", "KeyError")


def test_resume_of_a_language_model_refuses_another_shape(gpt_run: Path) -> None:
    assert_fails(invoke("train", "shakespeare", "--n-layer", "3", "--max-iters", "5", "--out", gpt_run, "--resume",
                        "--no-progress"), "--resume", "n_layer")
