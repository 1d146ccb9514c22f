"""Final validation loss of the `cpu` preset, tensorlite and PyTorch each with their own randomness.

    python scripts/val_loss.py                      # seeds 1337, 0 and 1: about 3.5 minutes per seed here
    python scripts/val_loss.py --seeds 1337 --max-iters 200

For each seed, tensorlite trains the preset exactly as ``tensorlite train shakespeare --preset cpu``
does, and PyTorch runs nanoGPT's ``train.py`` loop on the same recipe with PyTorch's own generator
for the initial weights and batches (``torch.manual_seed(seed)``; nanoGPT's init and ``get_lr``).
Both estimate the final loss over 200 batches per split. So this measures what the recipe reaches,
framework by framework, not only whether the two compute alike (the tests check that step by step).
Last, the spread of a val-loss estimate over 20 batches (nanoGPT's CPU setting) and over 200, from
2,000 batches drawn for the first seed's tensorlite model.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from bench import torch_gpt

import tensorlite as tl
from tensorlite.cli.char_lm import load_char_lm, train_char_lm
from tensorlite.cli.presets import GPT_PRESETS
from tensorlite.datasets import CharTokenizer, TextData, load_shakespeare
from tensorlite.training import LMTrainConfig

RUNS = "runs/val-loss"


def tensorlite_run(seed: int, max_iters: int, eval_iters: int) -> dict[str, float]:
    trainer, _ = train_char_lm("gpt", preset="cpu", out=f"{RUNS}/seed{seed}", progress=False, seed=seed,
                               max_iters=max_iters, eval_interval=max_iters, eval_iters=eval_iters)
    return trainer.history[-1]


def torch_run(torch, seed: int, max_iters: int, eval_iters: int) -> dict[str, float]:
    """nanoGPT's training loop on the preset's recipe, with PyTorch's generator for weights and batches."""
    from tensorlite.models import GPTConfig

    preset, recipe = GPT_PRESETS["cpu"], LMTrainConfig()
    text = load_shakespeare()
    tokenizer = CharTokenizer.from_text(text)
    splits = {name: torch.from_numpy(ids) for name, ids in TextData(tokenizer.encode(text)).splits.items()}
    config = GPTConfig(vocab_size=tokenizer.vocab_size, **{k: preset[k] for k in ("n_layer", "n_head", "n_embd",
                                                                                   "block_size", "dropout", "bias")})
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
        ix = torch.randint(len(data) - config.block_size, (preset["batch_size"],))
        return (torch.stack([data[i:i + config.block_size] for i in ix]),
                torch.stack([data[i + 1:i + 1 + config.block_size] for i in ix]))

    for it in range(max_iters):
        for group in optimizer.param_groups:
            group["lr"] = get_lr(it)
        _, loss = model(*get_batch("train"))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        optimizer.step()
    model.eval()
    with torch.no_grad():
        return {f"{split}_loss": float(np.mean([model(*get_batch(split))[1].item() for _ in range(eval_iters)]))
                for split in ("train", "val")}


def estimate_spread(seed: int, n_batches: int = 2000) -> None:
    """The standard deviation of the mean val loss over 20 and over 200 random batches, for one trained model."""
    model, tokenizer, _ = load_char_lm(f"{RUNS}/seed{seed}")
    data = TextData(tokenizer.encode(load_shakespeare()))
    rng = np.random.default_rng(seed)
    with tl.no_grad():
        losses = np.array([model(*data.get_batch("val", GPT_PRESETS["cpu"]["batch_size"], model.config.block_size,
                                                 "cpu", rng))[1].item() for _ in range(n_batches)])
    spread = {k: losses[:n_batches // k * k].reshape(-1, k).mean(axis=1) for k in (20, 200)}
    print(f"    seed {seed} tensorlite model, {n_batches} val batches: mean {losses.mean():.4f}; an estimate over 20 "
          f"batches has std {spread[20].std():.4f} (range {spread[20].min():.4f}..{spread[20].max():.4f}), over 200 "
          f"std {spread[200].std():.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1337, 0, 1])
    parser.add_argument("--max-iters", type=int, default=GPT_PRESETS["cpu"]["max_iters"])
    parser.add_argument("--eval-iters", type=int, default=LMTrainConfig.eval_iters)
    parser.add_argument("--spread-batches", type=int, default=2000, help="val batches for the estimates' spread")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(2)
    print(f"`cpu` preset, {args.max_iters} iterations, loss over {args.eval_iters} batches per split")
    finals: dict[str, list[float]] = {"tensorlite": [], "torch": []}
    runs = {"tensorlite": tensorlite_run, "torch": lambda *a: torch_run(torch, *a)}
    for seed in args.seeds:
        for name, run in runs.items():
            start = time.perf_counter()
            losses = run(seed, args.max_iters, args.eval_iters)
            finals[name].append(losses["val_loss"])
            print(f"    seed {seed:>5}  {name:<10}  train {losses['train_loss']:.4f}  val {losses['val_loss']:.4f}"
                  f"  ({time.perf_counter() - start:.0f} s)", flush=True)
    for name, values in finals.items():
        print(f"    {name:<10} val loss mean {np.mean(values):.4f} over {len(values)} seed(s), "
              f"min {min(values):.4f}, max {max(values):.4f}")
    estimate_spread(args.seeds[0], args.spread_batches)


if __name__ == "__main__":
    main()
