"""Character language models (GPT, CharLSTM): what ``tensorlite train shakespeare|char-lstm`` and ``sample``
do, callable from Python too: options and presets to an ``LMTrainer`` run, loading, and streaming samples."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import tensorlite as tl
from tensorlite.cli import options
from tensorlite.cli.options import UsageError
from tensorlite.cli.presets import GPT_PRESETS, LSTM_DEFAULTS
from tensorlite.datasets.text import CharTokenizer, TextData, load_shakespeare
from tensorlite.nn import Module
from tensorlite.tensor import Tensor
from tensorlite.training import LMTrainConfig, LMTrainer, run_dir
from tensorlite.training.lm_trainer import OPTIMIZER_FIELDS, OPTIMIZERS
from tensorlite.training.run_dir import CHECKPOINT, LANGUAGE_MODELS

KIND = "char-lm"
MODEL_SIZE_OPTIONS = {"gpt": "--n-layer, --n-embd and --block-size", "lstm": "--n-embd, --hidden-size and --num-layers"}


# -- from options to a run -------------------------------------------------------------------------------
def resolve_settings(model_type: str, preset: str | None, chosen: dict[str, Any]) -> dict[str, Any]:
    """Preset (or the model's defaults) overridden by the ``chosen`` options that are not None, checked."""
    options.check_choice("model_type", "language model type", model_type, LANGUAGE_MODELS)
    if model_type == "gpt":
        preset = preset or "cpu"  # tensorlite's recipe; nanogpt-cpu for nanoGPT's
        options.check_choice("--preset", "preset", preset, GPT_PRESETS)
        settings = dict(GPT_PRESETS[preset])
    else:
        settings = dict(LSTM_DEFAULTS)
    settings.update({key: value for key, value in chosen.items() if value is not None})
    if chosen.get("warmup_iters") is None:  # a shortened run warms up for at most a tenth of it
        settings["warmup_iters"] = min(LMTrainConfig.warmup_iters, settings["max_iters"] // 10)
    if chosen.get("min_lr") is None:  # the decay ends at a tenth of the peak rate, as nanoGPT advises
        settings["min_lr"] = settings.get("learning_rate", LMTrainConfig.learning_rate) / 10
    _check_settings(model_type, settings)
    return settings


def _check_settings(model_type: str, settings: dict[str, Any]) -> None:
    for key in options.RANGES.keys() & settings.keys():
        options.check_range(key, settings[key])
    if model_type == "gpt" and settings["n_embd"] % settings["n_head"]:
        raise UsageError(f"--n-embd ({settings['n_embd']}) must be divisible by --n-head ({settings['n_head']}): "
                         "each attention head gets n_embd / n_head channels")
    if not 0.0 <= settings.get("dropout", 0.0) < 1.0:
        raise UsageError(f"--dropout must be in [0, 1), got {settings['dropout']}")
    lr = settings.get("learning_rate", LMTrainConfig.learning_rate)
    options.check_positive("--lr", lr)
    options.check_choice("--optimizer", "optimizer", settings.get("optimizer", LMTrainConfig.optimizer), OPTIMIZERS)
    options.check_positive("--muon-lr", settings.get("muon_lr", LMTrainConfig.muon_lr))
    if not 0 <= settings["min_lr"] <= lr:
        raise UsageError(f"min_lr must be between 0 and --lr ({lr}), got {settings['min_lr']}")
    warmup, max_iters = settings["warmup_iters"], settings["max_iters"]
    if warmup >= max_iters:
        raise UsageError(f"--warmup-iters ({warmup}) must be less than --max-iters ({max_iters})")


def train_char_lm(model_type: str, *, preset: str | None = None, data: str | Path | None = None,
                  device: str | None = None, out: str | Path | None = None, resume: bool = False,
                  overwrite: bool = False, progress: bool = True, **chosen: Any) -> tuple[LMTrainer, CharTokenizer]:
    """Train a ``"gpt"`` or ``"lstm"`` character model on ``data`` (default Tiny Shakespeare) in ``out``
    (``overwrite``: even if it holds another kind of run) from options named as on the command line
    (``n_layer``, ``learning_rate``, ...; None: the preset's); returns the trainer and the tokenizer."""
    settings = resolve_settings(model_type, preset, chosen)
    target = options.parse_device(device)
    run = options.out_dir(out, Path("runs") / ("shakespeare" if model_type == "gpt" else "char-lstm"))
    text = load_shakespeare(data)
    model_cls, config_cls = LANGUAGE_MODELS[model_type]
    saved = options.check_out_dir(run, KIND, resume, overwrite)
    if saved is not None:
        if saved["model"] != model_type:
            raise UsageError(f"--resume: {run / CHECKPOINT} holds a {saved['model']} model, not a {model_type}")
        options.check_resumed(saved["model_config"], chosen, run)
        settings.update(_recorded_optimizer(saved, chosen, run))
        tokenizer, model_config = CharTokenizer.from_dict(saved["tokenizer"]), config_cls(**saved["model_config"])
    else:
        tokenizer = CharTokenizer.from_text(text)
        model_fields = {f.name for f in dataclasses.fields(config_cls)}
        model_config = config_cls(**{k: v for k, v in settings.items() if k in model_fields},
                                   vocab_size=tokenizer.vocab_size)
        options.check_model_size(model_config, MODEL_SIZE_OPTIONS[model_type])
    options.make_out_dir(run)
    train_fields = {f.name for f in dataclasses.fields(LMTrainConfig)}
    train_config = LMTrainConfig(**{k: v for k, v in settings.items() if k in train_fields})
    tl.manual_seed(train_config.seed)
    model = model_cls(model_config).to(target)
    metadata = {"kind": KIND, "model": model_type, "model_config": asdict(model_config),
                "tokenizer": tokenizer.to_dict(), "train_config": asdict(train_config),
                "data": str(data) if data is not None else "tinyshakespeare"}
    try:
        trainer = LMTrainer(model, TextData(tokenizer.encode(text)), train_config, out_dir=run, metadata=metadata,
                            progress=progress)
    except ValueError as exc:  # the text is too short for the block (LMTrainer checks its splits)
        raise UsageError(f"--data / --block-size: {exc}") from None
    trainer.fit(resume=resume, overwrite=overwrite)
    return trainer, tokenizer


def _recorded_optimizer(saved: dict[str, Any], chosen: dict[str, Any], run: Path) -> dict[str, Any]:
    """The optimizer settings of the run to resume, as it recorded them (runs before Muon: AdamW), whatever the
    preset says now: its checkpoint holds that optimizer's state. An option that contradicts them is refused."""
    recorded = saved.get("train_config")
    recorded = recorded if isinstance(recorded, dict) else {}
    fields = {field.name: field.default for field in dataclasses.fields(LMTrainConfig)}
    settings = {key: recorded.get(key, fields[key]) for key in OPTIMIZER_FIELDS}
    numbers = [settings[key] for key in OPTIMIZER_FIELDS if key != "optimizer"]
    if settings["optimizer"] not in OPTIMIZERS or not all(type(n) in (int, float) for n in numbers):
        raise UsageError(f"--resume: {run / CHECKPOINT} records optimizer settings that this tensorlite cannot "
                         f"continue: {settings}")
    options.check_resumed(settings, {key: chosen.get(key) for key in OPTIMIZER_FIELDS}, run)
    return settings


# -- loading and sampling ---------------------------------------------------------------------------------
def load_char_lm(path: str | Path, device: str | None = None) -> tuple[Module, CharTokenizer, dict]:
    """The model (in eval mode), tokenizer and metadata of a ``char-lm`` checkpoint or run directory (its best)."""
    model, metadata = run_dir.load_model(path, options.parse_device(device), kinds=[KIND])
    return model, CharTokenizer.from_dict(metadata["tokenizer"]), metadata


def default_prompt(tokenizer: CharTokenizer) -> str:
    """A newline (the start of a speech in Shakespeare), or the vocabulary's first character without one."""
    return "\n" if "\n" in tokenizer.stoi else tokenizer.chars[0]


def sample_chars(model: Module, tokenizer: CharTokenizer, prompt: str, max_new_tokens: int,
                 temperature: float = 0.8, top_k: int | None = 40, use_cache: bool = True) -> Iterator[str]:
    """The characters that follow ``prompt``, one at a time as they are sampled (seed with ``tl.manual_seed``).

    The arguments are checked here, before the first character is asked for.
    """
    if not prompt:
        raise UsageError("sample: the prompt is empty; give at least one character")
    options.check_range("max_new_tokens", max_new_tokens)
    options.check_positive("--temperature", temperature)
    if top_k is not None:
        options.check_range("top_k", top_k)
    try:
        ids = tokenizer.encode(prompt)
    except ValueError as exc:
        raise UsageError(f"sample: cannot encode the prompt {prompt!r}: {exc}") from None
    idx = tl.tensor([ids], dtype=tl.int64, device=next(model.parameters()).device)  # (1, T)
    top_k = min(top_k, tokenizer.vocab_size) if top_k else None
    return _stream_chars(model, tokenizer, idx, max_new_tokens, temperature, top_k, use_cache)


def _stream_chars(model: Module, tokenizer: CharTokenizer, idx: Tensor, max_new_tokens: int, temperature: float,
                  top_k: int | None, use_cache: bool) -> Iterator[str]:
    with tl.no_grad():
        for token in model.generate_tokens(idx, max_new_tokens, temperature=temperature, top_k=top_k,
                                           use_cache=use_cache):
            yield tokenizer.chars[token]
