"""Val loss against training time: tensorlite's `cpu` preset against nanoGPT's CPU recipe in PyTorch, seed by seed.

    python scripts/val_loss.py                      # seeds 1337, 0 and 1, 2000 iterations each (minutes per seed)
    python scripts/val_loss.py --seeds 1337 --set positions=rotary --set qk_norm=true --no-torch   # screen a change
    python scripts/val_loss.py --seeds 1337 --set max_iters=1500 --set batch_size=16               # spend the budget
    python scripts/val_loss.py --cpu avx2           # on an AVX-512 machine: both libraries forced down to AVX2

For each seed, tensorlite trains the `cpu` preset exactly as ``tensorlite train shakespeare --preset cpu``
does (with the ``--set`` changes: any ``GPTConfig`` or ``LMTrainConfig`` field, e.g. ``positions=rotary``,
``qk_norm=true``, ``activation=relu2``, ``muon_lr=0.03``, ``optimizer=adamw``), and PyTorch runs nanoGPT's
``train.py`` loop on nanoGPT's CPU recipe (the `nanogpt-cpu` preset: nanoGPT's init N(0, 0.02), no biases,
AdamW) with PyTorch's own generator for the initial weights and batches (``torch.manual_seed(seed)``; nanoGPT's
init, ``get_lr`` and ``estimate_loss``). Both estimate train and val loss over ``--eval-iters`` (200) batches
per split every ``--eval-interval`` iterations and at the end; the training wall time leaves those
evaluations (and tensorlite's checkpoint saves) out. Printed: each seed's final losses and training time, the
means, the CPU (its vector extensions matter: see docs/benchmarks.md); saved: a PNG of val loss against
training time for every run (``--plot``, default docs/val_loss.png). Last, unless ``--spread-batches 0``, the
spread of a val-loss estimate over 20 batches (nanoGPT's CPU setting) and over 200, from the first seed's
tensorlite model.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench import preset_settings, torch_gpt
from benchlib import add_cpu_option, apply_cpu_option, blas_summary, cpu_summary
from tensorlite.models import GPTConfig

import tensorlite as tl
from tensorlite.cli.char_lm import load_char_lm, train_char_lm
from tensorlite.cli.presets import GPT_PRESETS
from tensorlite.datasets import CharTokenizer, TextData, load_shakespeare
from tensorlite.training import LMTrainConfig

RECIPE, BASELINE = "cpu", "nanogpt-cpu"
NOT_SETTABLE = {"vocab_size", "seed", "eval_interval", "eval_iters"}  # fixed by the data or by this script's options
SETTABLE = ({f.name for f in dataclasses.fields(GPTConfig)} | {f.name for f in dataclasses.fields(LMTrainConfig)}) \
    - NOT_SETTABLE

Curve = list[tuple[float, float, float]]  # (training seconds so far, train loss, val loss) per evaluation


def parse_setting(text: str) -> tuple[str, Any]:
    """``"qk_norm=true"`` -> ("qk_norm", True): booleans, integers, floats, comma-separated tuples, else strings."""
    key, sep, raw = text.partition("=")
    if not sep or key not in SETTABLE:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with KEY one of {', '.join(sorted(SETTABLE))}, "
                                         f"got {text!r}")

    def value(word: str) -> Any:
        if word.lower() in ("true", "false"):
            return word.lower() == "true"
        for kind in (int, float):
            try:
                return kind(word)
            except ValueError:
                pass
        return word

    return key, tuple(value(w) for w in raw.split(",")) if "," in raw else value(raw)


def tensorlite_run(seed: int, settings: dict[str, Any], eval_interval: int, eval_iters: int, out: Path) -> Curve:
    """The `cpu` preset with ``settings``, as `tensorlite train shakespeare` trains it; its evaluations' curve."""
    trainer, _ = train_char_lm("gpt", preset=RECIPE, out=out / f"seed{seed}", progress=False, seed=seed,
                               eval_interval=eval_interval, eval_iters=eval_iters, **settings)
    curve, seconds, done = [], 0.0, 0
    for record in trainer.history:  # iters_per_second: the iterations since the last evaluation, over their time
        seconds += (record["iter"] - done) / record["iters_per_second"]
        done = record["iter"]
        curve.append((seconds, record["train_loss"], record["val_loss"]))
    return curve


def torch_run(torch, seed: int, max_iters: int, eval_interval: int, eval_iters: int) -> Curve:
    """nanoGPT's training loop on its CPU recipe, with PyTorch's generator for weights and batches."""
    text = load_shakespeare()
    tokenizer = CharTokenizer.from_text(text)
    splits = {name: torch.from_numpy(ids) for name, ids in TextData(tokenizer.encode(text)).splits.items()}
    config, recipe = preset_settings(BASELINE, tokenizer.vocab_size)
    torch.manual_seed(seed)
    model = torch_gpt(torch, config)
    for name, p in model.named_parameters():  # nanoGPT's init: N(0, 0.02), residual projections scaled by depth
        if p.dim() >= 2:  # (LayerNorm gains stay 1)
            torch.nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * config.n_layer) if name.endswith("c_proj.weight")
                                  else 0.02)
    optimizer = model.configure_optimizers(recipe.weight_decay, recipe.learning_rate, recipe.betas)
    warmup, min_lr = min(recipe.warmup_iters, max_iters // 10), recipe.learning_rate / 10

    def get_lr(it: int) -> float:  # nanoGPT's
        if it < warmup:
            return recipe.learning_rate * (it + 1) / (warmup + 1)
        cosine = 0.5 * (1.0 + math.cos(math.pi * (it - warmup) / (max_iters - warmup)))
        return min_lr + cosine * (recipe.learning_rate - min_lr)

    def get_batch(split: str):
        data = splits[split]
        ix = torch.randint(len(data) - config.block_size, (recipe.batch_size,))
        return (torch.stack([data[i:i + config.block_size] for i in ix]),
                torch.stack([data[i + 1:i + 1 + config.block_size] for i in ix]))

    @torch.no_grad()
    def estimate_loss() -> tuple[float, float]:  # nanoGPT's
        model.eval()
        losses = [float(np.mean([model(*get_batch(split))[1].item() for _ in range(eval_iters)]))
                  for split in ("train", "val")]
        model.train()
        return losses[0], losses[1]

    curve, seconds = [], 0.0
    for it in range(max_iters):
        start = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = get_lr(it)
        _, loss = model(*get_batch("train"))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        optimizer.step()
        seconds += time.perf_counter() - start
        if (it + 1) % eval_interval == 0 or it + 1 == max_iters:
            curve.append((seconds, *estimate_loss()))
    return curve


def estimate_spread(out: Path, seed: int, n_batches: int) -> None:
    """The standard deviation of the mean val loss over 20 and over 200 random batches, for one trained model."""
    model, tokenizer, _ = load_char_lm(out / f"seed{seed}")
    data = TextData(tokenizer.encode(load_shakespeare()))
    rng = np.random.default_rng(seed)
    with tl.no_grad():
        losses = np.array([model(*data.get_batch("val", GPT_PRESETS[RECIPE]["batch_size"], model.config.block_size,
                                                 "cpu", rng))[1].item() for _ in range(n_batches)])
    spread = {k: losses[:n_batches // k * k].reshape(-1, k).mean(axis=1) for k in (20, 200)}
    print(f"    seed {seed} tensorlite model, {n_batches} val batches: mean {losses.mean():.4f}; an estimate over 20 "
          f"batches has std {spread[20].std():.4f} (range {spread[20].min():.4f}..{spread[20].max():.4f}), over 200 "
          f"std {spread[200].std():.4f}")


def plot(curves: dict[tuple[str, int], Curve], path: Path, title: str) -> None:
    """Val loss against training seconds, one line per run: tensorlite's in one colour, PyTorch's in another."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    colours = {"tensorlite": "tab:blue", "torch": "tab:orange"}
    for (name, seed), curve in curves.items():
        seconds, _, val = zip(*curve)
        ax.plot(seconds, val, marker="o", markersize=3, color=colours[name], alpha=0.85,
                label=f"{name}, seed {seed}: {val[-1]:.4f} in {seconds[-1]:.0f} s")
    ax.set_xlabel("training wall time (s; evaluations left out)")
    ax.set_ylabel("val loss (mean over the evaluation batches)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1337, 0, 1])
    parser.add_argument("--max-iters", type=int, default=None,
                        help="iterations of both runs (default: each preset's, 2000); --set max_iters=N for "
                             "tensorlite's alone")
    parser.add_argument("--set", dest="settings", type=parse_setting, action="append", default=[], metavar="KEY=VALUE",
                        help="change the tensorlite recipe: a GPTConfig or LMTrainConfig field (repeatable)")
    parser.add_argument("--eval-interval", type=int, default=250, help="iterations between points of the curves")
    parser.add_argument("--eval-iters", type=int, default=LMTrainConfig.eval_iters, help="batches per split")
    parser.add_argument("--no-torch", action="store_true", help="train tensorlite only (screening a change)")
    parser.add_argument("--plot", type=Path, default=Path("docs/val_loss.png"), help="where the PNG goes")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/val-loss"), help="tensorlite's run directories")
    parser.add_argument("--spread-batches", type=int, default=2000,
                        help="val batches for the estimates' spread (0: skip it)")
    add_cpu_option(parser)
    args = parser.parse_args()
    apply_cpu_option(args)
    settings = dict(args.settings)
    if args.max_iters is not None:
        settings.setdefault("max_iters", args.max_iters)
    torch_iters = args.max_iters or GPT_PRESETS[BASELINE]["max_iters"]
    torch = None
    if not args.no_torch:
        import torch

        torch.set_num_threads(2)
    changes = ", ".join(f"{k}={v}" for k, v in settings.items()) or "none"
    print(f"CPU: {cpu_summary()}; BLAS: {blas_summary()}")
    print(f"tensorlite: the `{RECIPE}` preset, changes: {changes}"
          + ("" if args.no_torch else f"; torch: nanoGPT's CPU recipe (`{BASELINE}`), {torch_iters} iterations"))
    print(f"losses over {args.eval_iters} batches per split; training time leaves the evaluations out")
    curves: dict[tuple[str, int], Curve] = {}
    for seed in args.seeds:
        for name in ("tensorlite",) if torch is None else ("tensorlite", "torch"):
            curve = curves[name, seed] = (
                tensorlite_run(seed, settings, args.eval_interval, args.eval_iters, args.out) if name == "tensorlite"
                else torch_run(torch, seed, torch_iters, args.eval_interval, args.eval_iters))
            seconds, train, val = curve[-1]
            print(f"    seed {seed:>5}  {name:<10}  train {train:.4f}  val {val:.4f}  training {seconds:7.1f} s",
                  flush=True)
    for name in ("tensorlite", "torch"):
        finals = [curve[-1] for (n, _), curve in curves.items() if n == name]
        if finals:
            seconds, _, val = (np.array(column) for column in zip(*finals))
            print(f"    {name:<10} val loss mean {val.mean():.4f} over {len(val)} seed(s) (min {val.min():.4f}, max "
                  f"{val.max():.4f}); training time mean {seconds.mean():.1f} s")
    if torch is not None:
        ratio = np.mean([curves["tensorlite", s][-1][0] for s in args.seeds]) / np.mean(
            [curves["torch", s][-1][0] for s in args.seeds])
        print(f"    training time tensorlite/torch = {ratio:.2f}")
    if not args.no_plot:
        plot(curves, args.plot, f"Tiny Shakespeare: tensorlite `{RECIPE}` preset (changes: {changes}) vs nanoGPT's "
                                f"CPU recipe in PyTorch\n{cpu_summary()}")
        print(f"plot: {args.plot}")
    if args.spread_batches:
        estimate_spread(args.out, args.seeds[0], args.spread_batches)


if __name__ == "__main__":
    main()
