"""Character data (tokenizer, shipped Tiny Shakespeare, random windows) and language-model training,
checkpoints, resume, Ctrl-C and sampling through the ``tensorlite`` command line."""

from __future__ import annotations

import hashlib
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from cli_runner import assert_fails, invoke
from typer.testing import Result

import tensorlite as tl
from tensorlite.cli import char_lm
from tensorlite.datasets.text import SHAKESPEARE_TXT, CharTokenizer, TextData, load_shakespeare
from tensorlite.training import BEST, CHECKPOINT, LMTrainConfig

SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"




# -- tokenizer and data ------------------------------------------------------------------------------------
def test_tokenizer_round_trip_over_a_sorted_vocabulary() -> None:
    tokenizer = CharTokenizer.from_text("hello, world\n")
    assert tokenizer.chars == sorted(set("hello, world\n")) and tokenizer.vocab_size == 10
    ids = tokenizer.encode("world, hello")
    assert ids[:2] == [tokenizer.chars.index("w"), tokenizer.chars.index("o")]
    assert tokenizer.decode(ids) == "world, hello"
    assert tokenizer.decode(tl.tensor([ids])) == "world, hello"  # a (1, T) tensor reads in order


def test_tokenizer_names_unknown_characters_and_bad_ids() -> None:
    tokenizer = CharTokenizer.from_text("abc")
    with pytest.raises(ValueError, match=r"2 character\(s\) not in the vocabulary: 'XZ'"):
        tokenizer.encode("aZbX")
    with pytest.raises(ValueError, match=r"token ids \[-1, 3\] are outside the vocabulary \[0, 3\)"):
        tokenizer.decode([0, 3, -1])
    with pytest.raises(ValueError, match="repeated"):
        CharTokenizer("aa")


def test_tokenizer_survives_checkpoint_metadata(tmp_path: Path) -> None:
    tokenizer = CharTokenizer.from_text("To be, or not to be:\nthat is the question.")
    tl.save({"w": tl.zeros(1)}, tmp_path / "t.safetensors", metadata={"tokenizer": tokenizer.to_dict()})
    again = CharTokenizer.from_dict(tl.load_metadata(tmp_path / "t.safetensors")["tokenizer"])
    assert again.chars == tokenizer.chars and again.encode("not") == tokenizer.encode("not")


def test_shipped_tiny_shakespeare_is_the_original() -> None:
    assert hashlib.sha256(SHAKESPEARE_TXT.read_bytes()).hexdigest() == SHAKESPEARE_SHA256
    text = load_shakespeare()
    assert len(text) == 1_115_394 and text.startswith("First Citizen:")
    assert CharTokenizer.from_text(text).vocab_size == 65


def test_load_shakespeare_reads_any_text_file_and_names_a_missing_one(tmp_path: Path) -> None:
    (tmp_path / "poem.txt").write_text("Shall I compare thee", encoding="utf-8")
    assert load_shakespeare(tmp_path / "poem.txt") == "Shall I compare thee"
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_shakespeare(tmp_path / "missing.txt")


def test_get_batch_windows_and_next_token_targets(device: str) -> None:
    data = TextData(np.arange(1000) % 97)
    x, y = data.get_batch("train", 6, 16, device)
    assert x.shape == y.shape == (6, 16) and x.dtype == y.dtype == tl.int64
    assert x.device == tl.device(device) and y.device == tl.device(device)
    x, y = x.numpy(), y.numpy()
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])  # y is x shifted by one
    np.testing.assert_array_equal((x[:, :1] + np.arange(17)) % 97, np.concatenate([x, y[:, -1:]], axis=1))


def test_val_windows_come_from_the_last_tenth() -> None:
    data = TextData(np.arange(1000))  # token i at position i
    train_x, train_y = data.get_batch("train", 200, 8)
    val_x, val_y = data.get_batch("val", 200, 8)
    assert train_x.numpy().min() >= 0 and train_y.numpy().max() < 900
    assert val_x.numpy().min() >= 900 and val_y.numpy().max() < 1000
    assert len(set(val_x.numpy()[:, 0])) > 50  # random starts, not one window


def test_get_batch_is_reproducible_from_the_seed_or_a_generator() -> None:
    data = TextData(np.arange(5000))
    tl.manual_seed(7)
    first = data.get_batch("train", 4, 8)[0].numpy()
    tl.manual_seed(7)
    np.testing.assert_array_equal(first, data.get_batch("train", 4, 8)[0].numpy())
    assert not np.array_equal(first, data.get_batch("train", 4, 8)[0].numpy())
    a = data.get_batch("val", 4, 8, generator=np.random.default_rng(1))[0].numpy()
    np.testing.assert_array_equal(a, data.get_batch("val", 4, 8, generator=np.random.default_rng(1))[0].numpy())


def test_get_batch_errors_are_clear() -> None:
    data = TextData(np.arange(100))
    with pytest.raises(ValueError, match="'train' or 'val'"):
        data.get_batch("test", 2, 4)
    with pytest.raises(ValueError, match="val split has 10 tokens, too few for windows of block_size 10"):
        data.get_batch("val", 2, 10)
    with pytest.raises(ValueError, match="val_fraction"):
        TextData(np.arange(100), val_fraction=1.0)


# -- settings ----------------------------------------------------------------------------------------------
def test_explicit_options_override_the_preset() -> None:
    cpu = char_lm.resolve_settings("gpt", "cpu", {"n_layer": 2, "learning_rate": 3e-3, "n_head": None})
    assert cpu["n_layer"] == 2 and cpu["n_head"] == 4 and cpu["n_embd"] == 128 and cpu["block_size"] == 64
    assert cpu["learning_rate"] == 3e-3 and cpu["min_lr"] == pytest.approx(3e-4) and cpu["warmup_iters"] == 90
    gpu = char_lm.resolve_settings("gpt", "gpu", {"max_iters": 50})
    assert (gpu["n_layer"], gpu["n_embd"], gpu["block_size"], gpu["batch_size"], gpu["dropout"]) == (6, 384, 256, 64,
                                                                                                      0.2)
    assert gpu["max_iters"] == 50 and gpu["warmup_iters"] == 5  # a short run warms up for a tenth of it
    assert char_lm.resolve_settings("gpt", None, {})["max_iters"] == 900  # the cpu preset by default


def test_presets_are_the_recipe_and_nanogpts_runs() -> None:
    cpu, nanogpt = (char_lm.resolve_settings("gpt", name, {}) for name in ("cpu", "nanogpt-cpu"))
    recipe = ("optimizer", "muon_lr", "muon_momentum", "muon_ns_steps", "init", "bias", "positions", "tie_embeddings")
    assert [cpu[k] for k in recipe] == ["muon", 0.02, 0.9, 3, "pytorch", True, "rotary", False]
    assert not nanogpt.keys() & set(recipe[:5]) and nanogpt["bias"] is False  # nanoGPT's defaults
    size = ("n_layer", "n_head", "n_embd", "block_size", "batch_size", "dropout")
    assert [cpu[k] for k in size] == [nanogpt[k] for k in size] == [4, 4, 128, 64, 12, 0.0]
    schedule = ("max_iters", "warmup_iters", "learning_rate", "min_lr")
    assert [nanogpt.get(k, LMTrainConfig.learning_rate) for k in schedule] == [2000, 100, 1e-3, pytest.approx(1e-4)]
    assert [cpu[k] for k in schedule] == [900, 90, 1e-2, pytest.approx(1e-3)]  # in nanoGPT's time for its 2000
    assert char_lm.resolve_settings("gpt", "gpu", {}) == char_lm.resolve_settings("gpt", "nanogpt-gpu", {})
    assert char_lm.resolve_settings("gpt", "cpu", {"optimizer": "adamw"})["optimizer"] == "adamw"


@pytest.mark.parametrize("options, message", [
    ({"n_embd": 100, "n_head": 3}, "--n-embd (100) must be divisible by --n-head (3)"),
    ({"block_size": 0}, "--block-size must be between 1 and 65,536, got 0"),
    ({"batch_size": -1}, "--batch-size must be between 1 and 65,536, got -1"),
    ({"learning_rate": -1.0}, "--lr must be a positive number, got -1.0"),
    ({"dropout": 1.0}, "--dropout must be in [0, 1)"),
    ({"warmup_iters": 50, "max_iters": 50}, "--warmup-iters (50) must be less than --max-iters (50)"),
    ({"optimizer": "sgd"}, "--optimizer: unknown optimizer 'sgd': expected one of adamw, muon"),
    ({"muon_lr": 0.0}, "--muon-lr must be a positive number, got 0.0"),
])
def test_bad_options_are_named(options: dict, message: str) -> None:
    with pytest.raises(ValueError) as info:
        char_lm.resolve_settings("gpt", "cpu", options)
    assert message in str(info.value)


def test_cli_reports_bad_options_and_presets(tmp_path: Path) -> None:
    assert_fails(invoke("train", "shakespeare", "--n-embd", "100", "--n-head", "3", "--out", tmp_path),
                 "--n-embd (100) must be divisible by --n-head (3)")
    assert_fails(invoke("train", "shakespeare", "--preset", "tpu", "--out", tmp_path), "unknown preset 'tpu'")
    assert_fails(invoke("train", "shakespeare", "--data", tmp_path / "nope.txt", "--out", tmp_path), "no such file")
    assert_fails(invoke("train", "char-lstm", "--resume", "--out", tmp_path), "no checkpoint to resume from")


# -- training, resume, Ctrl-C and sampling through the CLI ------------------------------------------------
TINY = ("--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "8", "--batch-size", "8",
        "--max-iters", "30", "--eval-interval", "10", "--eval-iters", "5", "--lr", "1e-2", "--dropout", "0.1",
        "--no-progress")


@pytest.fixture(scope="module")
def text_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("text") / "shakespeare_head.txt"
    path.write_text(load_shakespeare()[:20_000], encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def gpt_run(tmp_path_factory: pytest.TempPathFactory, text_file: Path) -> tuple[Path, Result]:
    """The cpu preset's recipe (Muon and AdamW) on a tiny model."""
    out = tmp_path_factory.mktemp("lm") / "gpt"
    return out, invoke("train", "shakespeare", *TINY, "--data", text_file, "--out", out)


@pytest.fixture(scope="module")
def adamw_run(tmp_path_factory: pytest.TempPathFactory, text_file: Path) -> tuple[Path, Result]:
    """nanoGPT's CPU preset (AdamW only) on the same tiny model."""
    out = tmp_path_factory.mktemp("lm") / "adamw"
    return out, invoke("train", "shakespeare", "--preset", "nanogpt-cpu", *TINY, "--data", text_file, "--out", out)


def final_weights(out: Path) -> dict:
    return tl.load(out / CHECKPOINT)["model"]


def test_training_logs_checkpoints_and_prints_val_loss_and_a_sample(gpt_run: tuple[Path, Result]) -> None:
    out, result = gpt_run
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in records] == [10, 20, 30]
    assert records[-1]["val_loss"] < records[0]["val_loss"] < np.log(60)  # learning, from about log(vocab)
    assert records[-1]["train_loss"] < records[0]["train_loss"]
    assert f"final val loss {records[-1]['val_loss']:.4f}" in result.output
    sample = result.output.split("sample:\n", 1)[1]
    assert len(sample) == 1 + 500 + 1  # the newline prompt, 500 characters, a newline
    meta = tl.load_metadata(out / BEST)
    assert meta["kind"] == "char-lm" and meta["model"] == "gpt" and meta["tensorlite_version"] == tl.__version__
    assert meta["model_config"]["n_embd"] == 16
    assert meta["model_config"]["vocab_size"] == len(meta["tokenizer"]["chars"])
    state = tl.load(out / CHECKPOINT)
    assert state["train_state"]["iteration"] == 30 and state["scheduler"]["last_epoch"] == 30
    assert state["train_state"]["best_val_loss"] == min(r["val_loss"] for r in records)


@pytest.mark.parametrize("recipe", ["cpu", "nanogpt-cpu"])
def test_resume_after_ctrl_c_ends_exactly_where_the_uninterrupted_run_does(
        recipe: str, request: pytest.FixtureRequest, text_file: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    uninterrupted = request.getfixturevalue("gpt_run" if recipe == "cpu" else "adamw_run")
    calls = 0
    step = tl.optim.AdamW.step  # each recipe steps an AdamW once an iteration (the cpu one a Muon too)

    def step_then_ctrl_c(self, *args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == 14:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C during iteration 14
        return step(self, *args, **kwargs)

    monkeypatch.setattr(tl.optim.AdamW, "step", step_then_ctrl_c)
    interrupted = invoke("train", "shakespeare", "--preset", recipe, *TINY, "--data", text_file, "--out", tmp_path)
    monkeypatch.undo()
    assert interrupted.exit_code == 0, interrupted.output
    assert "interrupted at iteration 14: checkpoint saved" in interrupted.output
    assert "sample:" not in interrupted.output
    assert tl.load(tmp_path / CHECKPOINT)["train_state"]["iteration"] == 14
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 1

    states = tl.load(tmp_path / CHECKPOINT)["optimizer"]["state"].values()  # every parameter's, AdamW's or Muon's
    muon, adamw = sum("momentum_buffer" in s for s in states), sum("exp_avg" in s for s in states)
    assert (muon, adamw) == ((4, 12) if recipe == "cpu" else (0, 9))  # Muon: the block's four matrices

    resumed = invoke("train", "shakespeare", *TINY, "--data", text_file, "--out", tmp_path, "--resume")  # no preset
    assert resumed.exit_code == 0, resumed.output
    expected, got = final_weights(uninterrupted[0]), final_weights(tmp_path)
    for key in expected:
        np.testing.assert_array_equal(got[key].numpy(), expected[key].numpy(), err_msg=key)
    log = lambda out: [json.loads(line)["val_loss"] for line in (out / "log.jsonl").read_text().splitlines()]  # noqa: E731
    assert log(tmp_path) == log(uninterrupted[0])


def test_sample_streams_a_continuation_of_the_prompt(gpt_run: tuple[Path, Result]) -> None:
    out, _ = gpt_run
    result = invoke("sample", out, "--prompt", "ROMEO:", "--max-new-tokens", "40", "--seed", "3")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ROMEO:") and len(result.output) == len("ROMEO:") + 40 + 1
    # The same seed and weights: while the context fits in block_size=8 the cache changes the speed only.
    cached, uncached = (invoke("sample", out / BEST, "--prompt", "ROM", "--max-new-tokens", "6", "--seed",
                               "3", *flag).output for flag in ((), ("--no-cache",)))
    assert len(cached) == 3 + 6 + 1 and cached == uncached
    model, tokenizer, _ = char_lm.load_char_lm(out)
    chars = char_lm.sample_chars(model, tokenizer, "ROMEO:", 5)
    assert len(next(chars)) == 1 and len(list(chars)) == 4  # one character at a time


def test_sample_errors_name_the_problem(gpt_run: tuple[Path, Result], tmp_path: Path) -> None:
    out, _ = gpt_run
    assert_fails(invoke("sample", out, "--prompt", "ROMEO@{"), "not in the vocabulary", "'@{'")
    assert_fails(invoke("sample", out, "--temperature", "0"), "--temperature must be a positive number")
    tl.save({"model": {"w": tl.zeros(1)}}, tmp_path / "mlp.safetensors", metadata={"kind": "mlp-task"})
    assert_fails(invoke("sample", tmp_path / "mlp.safetensors"), "holds a 'mlp-task' checkpoint",
                 "not a character language model")
    assert_fails(invoke("sample", tmp_path / "missing.safetensors"), "no checkpoint at")


def test_resume_refuses_another_optimizer(gpt_run: tuple[Path, Result], adamw_run: tuple[Path, Result]) -> None:
    assert_fails(invoke("train", "shakespeare", *TINY, "--optimizer", "adamw", "--out", gpt_run[0], "--resume"),
                 "--resume", "trained with optimizer 'muon', not 'adamw'")
    assert_fails(invoke("train", "shakespeare", *TINY, "--muon-lr", "0.05", "--out", gpt_run[0], "--resume"),
                 "trained with muon_lr 0.02, not 0.05")
    assert_fails(invoke("train", "shakespeare", *TINY, "--optimizer", "muon", "--out", adamw_run[0], "--resume"),
                 "trained with optimizer 'adamw', not 'muon'")


def test_the_log_and_schedule_of_a_muon_run(gpt_run: tuple[Path, Result]) -> None:
    """The log's lr is AdamW's (--lr 1e-2); Muon's rate decays from 0.02 to the same tenth of it."""
    out, result = gpt_run
    assert result.exit_code == 0, result.output
    assert tl.load_metadata(out / CHECKPOINT)["train_config"]["optimizer"] == "muon"
    scheduler = tl.load(out / CHECKPOINT)["scheduler"]
    assert scheduler["base_lrs"] == [1e-2, 1e-2, 0.02] and scheduler["min_lrs"] == pytest.approx([1e-3, 1e-3, 2e-3])
    assert json.loads((out / "log.jsonl").read_text().splitlines()[-1])["lr"] == pytest.approx(1e-3)


def test_char_lstm_trains_and_samples(text_file: Path, tmp_path: Path) -> None:
    result = invoke("train", "char-lstm", "--n-embd", "8", "--hidden-size", "16", "--num-layers", "1",
                    "--block-size", "8", "--batch-size", "8", "--max-iters", "20", "--eval-interval", "10",
                    "--eval-iters", "5", "--lr", "1e-2", "--data", text_file, "--out", tmp_path, "--no-progress")
    assert result.exit_code == 0, result.output
    assert tl.load_metadata(tmp_path / CHECKPOINT)["model"] == "lstm"
    sample = invoke("sample", tmp_path, "--prompt", "MENENIUS", "--max-new-tokens", "20")
    assert sample.exit_code == 0 and sample.output.startswith("MENENIUS") and len(sample.output) == 8 + 20 + 1
    assert_fails(invoke("train", "shakespeare", *TINY, "--data", text_file, "--out", tmp_path, "--resume"),
                 "holds a lstm model, not a gpt")
