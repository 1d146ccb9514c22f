"""The run directory (training.run_dir): checkpoint resolution, loading by kind, and run directories written
before the training core moved into its own package (tensorlite 0.1.0, ``tensorlite.training`` as one module).

The old checkpoints are written here from the documented layout, not by the current code, so a change of
layout or kind names in the current code fails these tests:
``{"model", "optimizer", "scheduler", "train_state"}`` plus JSON metadata naming the ``kind``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
from cli_runner import assert_fails, invoke

import tensorlite as tl
from tensorlite import models, optim
from tensorlite.datasets import CharTokenizer, load_shakespeare
from tensorlite.training import run_dir


def write_old_xor_run(out: Path) -> None:
    """A 2-3-1 sigmoid XOR run as ``tensorlite train xor`` of tensorlite 0.1.0 left it after one epoch."""
    config = models.MLPConfig([2, 3, 1], "sigmoid", "sigmoid")
    model = models.MLP(config)
    record = {"epoch": 1, "train_loss": 0.25, "train_accuracy": 0.5, "val_loss": 0.25, "val_accuracy": 0.5,
              "lr": 2.0, "seconds": 0.01, "samples_per_second": 400.0}
    state = {"model": dict(model.state_dict()),
             "optimizer": optim.SGD(model.parameters(), lr=2.0, momentum=0.9).state_dict(), "scheduler": None,
             "train_state": {"epoch": 1, "history": [record], "best_val_loss": 0.25, "epochs_without_improvement": 0}}
    metadata = {"kind": "mlp-task", "task": "xor", "loss": "mse", "seed": 0,
                "model_config": {"sizes": [2, 3, 1], "activation": "sigmoid", "output_activation": "sigmoid",
                                 "dropout": 0.0},
                "normalizer": {"method": "none", "shift": [0.0, 0.0], "scale": [1.0, 1.0]}, "classes": ["0", "1"]}
    out.mkdir(parents=True)
    tl.save(state, out / "checkpoint.safetensors", metadata=metadata)
    (out / "log.jsonl").write_text(json.dumps(record) + "\n")


def write_old_gpt_run(out: Path) -> None:
    """A tiny character GPT run as ``tensorlite train shakespeare`` of tensorlite 0.1.0 left it (no best file)."""
    tokenizer = CharTokenizer.from_text(load_shakespeare()[:5000])
    config = models.GPTConfig(block_size=8, vocab_size=tokenizer.vocab_size, n_layer=1, n_head=2, n_embd=16,
                              dropout=0.0, bias=False)
    model = models.GPT(config)
    optimizer = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
    scheduler = optim.lr_scheduler.WarmupCosineLR(optimizer, 0, 4, 1e-4)
    state = {"model": dict(model.state_dict()), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(),
             "train_state": {"iteration": 0, "history": [], "best_val_loss": None}}
    metadata = {"kind": "char-lm", "model": "gpt", "model_config": asdict(config), "tokenizer": tokenizer.to_dict(),
                "train_config": {"max_iters": 4, "batch_size": 4, "learning_rate": 1e-3, "min_lr": 1e-4,
                                 "warmup_iters": 0, "weight_decay": 0.1, "betas": [0.9, 0.99], "grad_clip": 1.0,
                                 "eval_interval": 2, "eval_iters": 2, "seed": 1337},
                "data": "tinyshakespeare"}
    out.mkdir(parents=True)
    tl.save(state, out / "checkpoint.safetensors", metadata=metadata)


def test_an_old_small_task_run_evaluates_predicts_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "xor"
    write_old_xor_run(out)
    result = invoke("eval", out)
    assert result.exit_code == 0, result.output
    assert "xor: test loss" in result.output and "confusion matrix" in result.output
    result = invoke("predict", out, "1", "0")
    assert result.exit_code == 0 and result.output.startswith("[1, 0] -> ") and "p=" in result.output
    result = invoke("train", "xor", "--out", out, "--epochs", "3", "--resume", "--no-progress")
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["epoch"] for line in (out / "log.jsonl").read_text().splitlines()] == [1, 2, 3]


def test_an_old_language_model_run_samples(tmp_path: Path) -> None:
    out = tmp_path / "gpt"
    write_old_gpt_run(out)
    result = invoke("sample", out, "--prompt", "ROMEO:", "--max-new-tokens", "10")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ROMEO:") and len(result.output) == len("ROMEO:") + 10 + 1
    model, metadata = run_dir.load_model(out)
    assert isinstance(model, models.GPT) and not model.training and metadata["model"] == "gpt"


def test_a_run_directory_resolves_to_its_best_checkpoint_if_it_has_one(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        run_dir.resolve_checkpoint(tmp_path)
    tl.save({"w": tl.zeros(1)}, tmp_path / run_dir.CHECKPOINT)
    assert run_dir.resolve_checkpoint(tmp_path) == tmp_path / run_dir.CHECKPOINT
    tl.save({"w": tl.zeros(1)}, tmp_path / run_dir.BEST)
    assert run_dir.resolve_checkpoint(tmp_path) == tmp_path / run_dir.BEST
    assert run_dir.resolve_checkpoint(tmp_path / run_dir.CHECKPOINT) == tmp_path / run_dir.CHECKPOINT


def test_load_model_names_the_kind_found_and_the_kinds_expected(tmp_path: Path) -> None:
    write_old_xor_run(tmp_path / "xor")
    with pytest.raises(ValueError, match="holds a 'mlp-task' checkpoint, not a character language model"):
        run_dir.load_model(tmp_path / "xor", kinds=["char-lm"])
    with pytest.raises(FileNotFoundError, match="no checkpoint to resume from"):
        run_dir.checkpoint_to_resume(tmp_path / "elsewhere", "mlp-task")
    with pytest.raises(ValueError, match="not mnist-cnn"):
        run_dir.checkpoint_to_resume(tmp_path / "xor", "mnist-cnn")
    assert_fails(invoke("sample", tmp_path / "xor"), "holds a 'mlp-task' checkpoint")


def test_the_log_is_rewritten_from_the_checkpointed_history(tmp_path: Path) -> None:
    with run_dir.open_log(tmp_path / "run", [{"epoch": 1}]) as log:
        run_dir.append_record(log, {"epoch": 2})
    assert run_dir.read_log(tmp_path / "run") == [{"epoch": 1}, {"epoch": 2}]
    with run_dir.open_log(tmp_path / "run", [{"epoch": 1}]):
        pass
    assert run_dir.read_log(tmp_path / "run") == [{"epoch": 1}]
    with pytest.raises(FileNotFoundError, match="no training log at"):
        run_dir.read_log(tmp_path / "nowhere")
