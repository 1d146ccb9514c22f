"""The ``tensorlite`` command line: train, eval, predict, plot, info, and its error messages."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from cli_runner import assert_fails, invoke
from test_run_dir import old_run
from typer.testing import Result

import tensorlite as tl

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"




@pytest.fixture(scope="module")
def xor_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Result]:
    out = tmp_path_factory.mktemp("cli") / "xor"
    return out, invoke("train", "xor", "--epochs", "300", "--out", out, "--no-progress")


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "iris"
    result = invoke("train", "iris", "--epochs", "3", "--out", out, "--no-progress")
    assert result.exit_code == 0, result.output
    return out


def test_train_prints_accuracy_and_a_confusion_matrix(xor_run: tuple[Path, Result]) -> None:
    out, result = xor_run
    assert result.exit_code == 0, result.output
    assert (out / "checkpoint.safetensors").exists() and (out / "log.jsonl").exists()
    assert len((out / "log.jsonl").read_text().splitlines()) == 300
    assert f"checkpoint: {out / 'checkpoint.safetensors'}" in result.output
    assert "xor: test loss" in result.output and "accuracy" in result.output and "on 4 examples" in result.output
    assert "confusion matrix" in result.output and "rows: actual" in result.output


def test_eval_prints_accuracy_and_the_confusion_matrix_table(xor_run: tuple[Path, Result]) -> None:
    out, _ = xor_run
    for target in (out, out / "checkpoint.safetensors"):  # a run directory or the file itself
        result = invoke("eval", target)
        assert result.exit_code == 0, result.output
        assert "accuracy" in result.output and "confusion matrix" in result.output
        assert "actual \\ predicted" in result.output


def test_eval_of_a_three_class_model_names_the_classes(iris_run: Path) -> None:
    result = invoke("eval", iris_run)
    assert result.exit_code == 0, result.output
    assert "on 30 examples" in result.output
    for species in tl.datasets.SPECIES:
        assert species in result.output


def test_predict_one_row(xor_run: tuple[Path, Result]) -> None:
    out, _ = xor_run
    result = invoke("predict", out, "0", "1")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("[0, 1] -> ") and "p=" in result.output


def test_predict_rows_from_a_csv(xor_run: tuple[Path, Result], tmp_path: Path) -> None:
    out, _ = xor_run
    rows = tmp_path / "rows.csv"
    rows.write_text("0,0\n0,1\n1,0\n1,1\n")
    result = invoke("predict", out, "--csv", rows)
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert [line.split(" -> ")[0] for line in lines] == ["[0, 0]", "[0, 1]", "[1, 0]", "[1, 1]"]


def test_predict_iris_names_a_species(iris_run: Path) -> None:
    result = invoke("predict", iris_run, "5.1", "3.5", "1.4", "0.2")
    assert result.exit_code == 0, result.output
    assert "Iris-" in result.output and "logits" in result.output


@pytest.mark.parametrize("args, fragments", [
    (["0", "1", "1"], ["takes 2 inputs per row, got 3"]),
    ([], ["give an input row", "--csv"]),
    (["--csv", "nowhere.csv"], ["--csv", "no such file nowhere.csv"]),
])
def test_predict_errors(xor_run: tuple[Path, Result], args: list[str], fragments: list[str]) -> None:
    out, _ = xor_run
    assert_fails(invoke("predict", out, *args), *fragments)


def test_plot_loss_and_boundary_write_pngs(xor_run: tuple[Path, Result], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out, _ = xor_run
    result = invoke("plot", "loss", out, "--out", tmp_path / "loss.png")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "loss.png").read_bytes().startswith(PNG_MAGIC)
    result = invoke("plot", "boundary", out)  # default: beside the checkpoint
    assert result.exit_code == 0, result.output
    assert f"wrote {out / 'boundary.png'}" in result.output
    assert (out / "boundary.png").read_bytes().startswith(PNG_MAGIC)


def test_plot_boundary_refuses_a_four_input_model(iris_run: Path) -> None:
    pytest.importorskip("matplotlib")
    assert_fails(invoke("plot", "boundary", iris_run), "iris model takes 4 inputs", "2-input models only")


def test_plot_loss_without_a_log(tmp_path: Path) -> None:
    assert_fails(invoke("plot", "loss", tmp_path), "no training log")


def test_plot_loss_of_a_language_model_run_and_of_a_log_cut_short(tmp_path: Path) -> None:
    """A language model logs per evaluation ("iter"); a last line cut short by kill -9 is left out, and a
    broken line before it is a one-line error naming the line."""
    pytest.importorskip("matplotlib")
    run = old_run("gpt", tmp_path)
    log = run / "log.jsonl"
    complete = log.read_text()
    log.write_text(complete + '{"iter": 30, "train_lo')
    result = invoke("plot", "loss", run, "--out", tmp_path / "lm.png")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "lm.png").read_bytes().startswith(PNG_MAGIC)
    log.write_text('{"iter": 1, "train_lo\n' + complete)
    assert_fails(invoke("plot", "loss", run), str(log), "line 1 is not a JSON object")


def test_plot_without_matplotlib_says_how_to_install_it(xor_run: tuple[Path, Result],
                                                        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    out, _ = xor_run
    for args in (["loss", out, "--out", tmp_path / "loss.png"], ["boundary", out, "--out", tmp_path / "b.png"]):
        assert_fails(invoke("plot", *args), "needs matplotlib", 'pip install "tensorlite[plot]"')
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("args, fragments", [
    (["xor", "--lr", "-0.5"], ["--lr must be a positive number, got -0.5"]),
    (["xor", "--hidden", "3,x"], ["--hidden", "bad layer spec '3,x'"]),
    (["xor", "--hidden", "0,-2"], ["--hidden must be between 1 and 65,536, got 0"]),
    (["iris", "--loss", "bce"], ["3 classes", "use --loss ce"]),
    (["addition", "--loss", "ce"], ["regression task", "use --loss mse"]),
    (["xor", "--loss", "hinge"], ["unknown loss 'hinge'"]),
    (["xor", "--optimizer", "lbfgs"], ["unknown optimizer 'lbfgs'"]),
    (["xor", "--activation", "swish"], ["unknown activation 'swish'"]),
    (["xor", "--epochs", "0"], ["--epochs must be between 1 and 10,000,000, got 0"]),
    (["xor", "--device", "tpu"], ["cannot parse 'tpu'"]),
    (["xor", "--resume"], ["--resume", "no checkpoint to resume from"]),
])
def test_train_validation_errors(tmp_path: Path, args: list[str], fragments: list[str]) -> None:
    assert_fails(invoke("train", *args, "--out", tmp_path / "run", "--no-progress"), *fragments)
    assert not (tmp_path / "run").exists()


def test_unknown_model_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke("train", "resnet", "--out", tmp_path / "run")
    assert result.exit_code == 2
    assert "No such command 'resnet'" in result.output
    assert not (tmp_path / "run").exists()


def test_every_small_task_has_a_train_command() -> None:
    from tensorlite.cli import app, small_tasks

    assert set(app.SMALL_TASKS) == set(small_tasks.TASKS)


def test_resume_with_a_different_network_is_a_clear_error(xor_run: tuple[Path, Result]) -> None:
    out, _ = xor_run
    assert_fails(invoke("train", "xor", "--resume", "--hidden", "5", "--epochs", "301", "--out", out,
                        "--no-progress"), "--resume", "sizes [2, 3, 1], not [2, 5, 1]")


def test_eval_errors(tmp_path: Path) -> None:
    assert_fails(invoke("eval", tmp_path / "missing"), "no checkpoint at")
    other = tmp_path / "other.safetensors"
    tl.save({"w": tl.zeros(3)}, other, metadata={"kind": "gpt"})
    assert_fails(invoke("eval", other), "'gpt'", "not one of the small tasks")
    plain = tmp_path / "plain.safetensors"
    tl.save({"w": tl.zeros(3)}, plain)
    assert_fails(invoke("eval", plain), "not one of the small tasks")
    junk = tmp_path / "junk.safetensors"
    junk.write_text("not a checkpoint")
    assert_fails(invoke("eval", junk), "is not a valid checkpoint")


def test_info_and_help() -> None:
    result = invoke("info")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("tensorlite") and tl.__version__ in result.output
    assert "default device" in result.output and "backend numpy (cpu)" in result.output
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("info", "train", "eval", "predict", "plot"):
        assert command in result.output


def test_help_keeps_the_square_brackets_of_install_hints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # one hint per line: rich wraps at the terminal width
    assert 'pip install "tensorlite[plot]"' in invoke("--help").output
    assert 'pip install "tensorlite[image]"' in invoke("predict", "--help").output
