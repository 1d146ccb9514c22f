"""The run directory (training.run_dir): checkpoint resolution, loading by kind, and run directories written
by tensorlite 0.1.0 (before the training core moved into its own package, and before checkpoints carried
checksums).

The old run directories are committed fixtures that 0.1.0's own ``tensorlite train`` wrote
(tests/fixtures/tensorlite-0.1.0/make_fixtures.py), so a change of layout, kind names or checksum rules in the
current code fails these tests.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import safetensors
from cli_runner import assert_fails, invoke

import tensorlite as tl
from tensorlite import models
from tensorlite.training import run_dir

OLD_RUNS = Path(__file__).parent / "fixtures" / "tensorlite-0.1.0"


def old_run(name: str, tmp_path: Path) -> Path:
    """A copy of the run directory ``name`` that tensorlite 0.1.0 wrote: its checkpoints have no checksums."""
    out = tmp_path / name
    shutil.copytree(OLD_RUNS / name, out)
    for path in out.glob("*.safetensors"):
        with safetensors.safe_open(path, "numpy") as f:
            assert not any(key.endswith("_sha256") for key in f.metadata()), path
    return out


def test_an_old_small_task_run_evaluates_predicts_and_resumes(tmp_path: Path) -> None:
    out = old_run("xor", tmp_path)
    result = invoke("eval", out)
    assert result.exit_code == 0, result.output
    assert "xor: test loss" in result.output and "confusion matrix" in result.output
    result = invoke("predict", out, "1", "0")
    assert result.exit_code == 0 and result.output.startswith("[1, 0] -> ") and "p=" in result.output
    result = invoke("train", "xor", "--out", out, "--epochs", "3", "--resume", "--no-progress")
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["epoch"] for line in (out / "log.jsonl").read_text().splitlines()] == [1, 2, 3]


def test_an_old_language_model_run_samples(tmp_path: Path) -> None:
    out = old_run("gpt", tmp_path)
    result = invoke("sample", out, "--prompt", "ROMEO:", "--max-new-tokens", "10")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ROMEO:") and len(result.output) == len("ROMEO:") + 10 + 1
    model, metadata = run_dir.load_model(out)
    assert isinstance(model, models.GPT) and not model.training and metadata["model"] == "gpt"
    assert "init" not in metadata["model_config"]  # written before the recipe options: nanoGPT's model
    assert model.config == models.GPTConfig(**metadata["model_config"])
    assert (model.config.init, model.config.positions, model.config.activation) == ("nanogpt", "learned", "gelu")
    assert model.lm_head.weight is model.transformer.wte.weight and "wpe" in model.transformer


def test_an_old_language_model_run_resumes_with_its_own_optimizer(tmp_path: Path) -> None:
    """0.1.0 recorded no optimizer: its run trained with AdamW, which --resume keeps (the cpu preset is Muon now)."""
    out = old_run("gpt", tmp_path)
    result = invoke("train", "shakespeare", "--out", out, "--resume", "--max-iters", "6", "--eval-iters", "2",
                    "--batch-size", "4", "--no-progress")
    assert result.exit_code == 0, result.output
    state = tl.load(out / run_dir.CHECKPOINT)
    assert state["train_state"]["iteration"] == 6
    assert all("exp_avg" in s for s in state["optimizer"]["state"].values()) and len(state["optimizer"]["state"]) == 9
    assert tl.load_metadata(out / run_dir.CHECKPOINT)["train_config"]["optimizer"] == "adamw"


def test_a_run_directory_resolves_to_its_best_checkpoint_if_it_has_one(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        run_dir.resolve_checkpoint(tmp_path)
    tl.save({"w": tl.zeros(1)}, tmp_path / run_dir.CHECKPOINT)
    assert run_dir.resolve_checkpoint(tmp_path) == tmp_path / run_dir.CHECKPOINT
    tl.save({"w": tl.zeros(1)}, tmp_path / run_dir.BEST)
    assert run_dir.resolve_checkpoint(tmp_path) == tmp_path / run_dir.BEST
    assert run_dir.resolve_checkpoint(tmp_path / run_dir.CHECKPOINT) == tmp_path / run_dir.CHECKPOINT


def test_load_model_names_the_kind_found_and_the_kinds_expected(tmp_path: Path) -> None:
    old_run("xor", tmp_path)
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


@pytest.mark.parametrize("config", [
    models.MLPConfig([2, 3, 1]), models.MLPConfig([4, 7, 5, 3]), models.MNISTMLPConfig([5]),
    models.MNISTCNNConfig([3, 4], 7), models.GPTConfig(8, 10, 2, 2, 4, bias=False), models.GPTConfig(8, 10, 2, 2, 4),
    models.GPTConfig(8, 10, 2, 2, 4, positions="rotary", tie_embeddings=False, qk_norm=True, activation="relu2"),
    models.CharLSTMConfig(10, 4, 5, 1), models.CharLSTMConfig(10, 4, 5, 3),
])
def test_a_config_counts_its_state_dict_without_building_it(config: object) -> None:
    """What load_model compares a checkpoint with, and bounds, before it builds anything."""
    model_class = {models.MLPConfig: models.MLP, models.MNISTMLPConfig: models.MNISTMLP,
                   models.MNISTCNNConfig: models.MNISTCNN, models.GPTConfig: models.GPT,
                   models.CharLSTMConfig: models.CharLSTM}[type(config)]
    state = model_class(config).state_dict()
    assert config.state_dict_numel() == sum(value.numel() for value in state.values())


RECIPE = models.GPTConfig(block_size=8, vocab_size=5, n_layer=1, n_head=2, n_embd=8, init="pytorch",
                          positions="rotary", qk_norm=True, activation="relu2", zero_init_proj=True,
                          tie_embeddings=False)


def save_gpt(path: Path, model: models.GPT, model_config: dict) -> Path:
    metadata = {"kind": "char-lm", "model": "gpt", "model_config": model_config, "tokenizer": {"chars": "abcde"}}
    tl.save({"model": model.state_dict()}, path, metadata=metadata)
    return path


def test_a_language_model_with_the_recipe_options_loads_back(tmp_path: Path) -> None:
    model = models.GPT(RECIPE)
    with tl.no_grad():
        for p in model.parameters():
            p.add_(tl.randn(*p.shape))
    loaded, metadata = run_dir.load_model(save_gpt(tmp_path / "recipe.safetensors", model, RECIPE.to_dict()))
    assert loaded.config == RECIPE and metadata["model_config"]["positions"] == "rotary"
    assert loaded.lm_head.weight is not loaded.transformer.wte.weight
    for key, value in model.state_dict().items():
        assert (loaded.state_dict()[key].numpy() == value.numpy()).all(), key
    idx = tl.tensor([[1, 2, 3, 4]])
    assert (loaded(idx)[0].numpy() == model.eval()(idx)[0].numpy()).all()


@pytest.mark.parametrize("field, value, message", [
    ("positions", "alibi", "metadata.model_config: GPTConfig: positions must be 'learned' or 'rotary', got 'alibi'"),
    ("qk_norm", "yes", "metadata.model_config.qk_norm must be bool, got 'yes'"),
    ("tie_embeddings", 1, "metadata.model_config.tie_embeddings must be bool, got 1"),
    ("activation", None, "metadata.model_config.activation must be str, got None"),
])
def test_recipe_options_in_a_checkpoint_are_checked(tmp_path: Path, field: str, value: object, message: str) -> None:
    path = save_gpt(tmp_path / "bad.safetensors", models.GPT(RECIPE), {**RECIPE.to_dict(), field: value})
    with pytest.raises(tl.CheckpointError, match=re.escape(message)):
        run_dir.load_model(path)


def test_a_rotary_checkpoint_that_holds_a_position_embedding_is_refused(tmp_path: Path) -> None:
    learned = models.GPT(models.GPTConfig(**{**RECIPE.to_dict(), "positions": "learned"}))
    path = save_gpt(tmp_path / "mixed.safetensors", learned, RECIPE.to_dict())
    with pytest.raises(tl.CheckpointError, match="model state holds 1,032 elements, its model_config describes 968"):
        run_dir.load_model(path)
