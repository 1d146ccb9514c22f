"""The settings each command trains with unless told otherwise: the GPT presets (tensorlite's CPU recipe and
nanoGPT's), the character LSTM's defaults and the MNIST recipes (the small tasks keep theirs in
``small_tasks.TASKS``)."""

from __future__ import annotations

from dataclasses import dataclass

# Settings by field name: a model's config fields and LMTrainConfig's. Unset ones take the defaults (nanoGPT's).
# nanogpt-cpu and nanogpt-gpu are nanoGPT's shakespeare_char runs exactly, with its train.py's bias=False.
NANOGPT_CPU = {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "dropout": 0.0, "bias": False,
               "batch_size": 12, "max_iters": 2000}
NANOGPT_GPU = {"n_layer": 6, "n_head": 6, "n_embd": 384, "block_size": 256, "dropout": 0.2, "bias": False,
               "batch_size": 64, "max_iters": 5000}
GPT_PRESETS = {
    # The best Shakespeare model a laptop CPU trains in nanoGPT's CPU time (issue 13; docs/benchmarks.md has the
    # screening): nanoGPT's model size with PyTorch's default initialisation, biases, rotary positions and an
    # untied head; Muon (rate 0.02, momentum 0.9, 3 Newton-Schulz steps) on the blocks' matrices and AdamW at rate
    # 1e-2 on the rest, on nanoGPT's warmup and cosine schedule, for the iterations that fit in nanoGPT's 2,000.
    "cpu": {**NANOGPT_CPU, "bias": True, "init": "pytorch", "positions": "rotary", "tie_embeddings": False,
            "max_iters": 900, "learning_rate": 1e-2, "min_lr": 1e-3,
            "optimizer": "muon", "muon_lr": 0.02, "muon_momentum": 0.9, "muon_ns_steps": 3},
    "gpu": NANOGPT_GPU,  # the CPU recipe is not measured on a GPU: nanoGPT's run until it is
    "nanogpt-cpu": NANOGPT_CPU,
    "nanogpt-gpu": NANOGPT_GPU,
}
LSTM_DEFAULTS = {"n_embd": 64, "hidden_size": 256, "num_layers": 2, "block_size": 64, "dropout": 0.0,
                 "batch_size": 32, "max_iters": 2000, "learning_rate": 2e-3, "weight_decay": 0.0}


@dataclass(frozen=True)
class Recipe:
    """How an MNIST model is trained; kept in its checkpoint so that ``--resume`` continues the same schedule."""

    epochs: int
    batch_size: int
    lr: float  # the one-cycle schedule's peak rate
    weight_decay: float
    dropout: float


MNIST_RECIPES = {
    "mnist-mlp": Recipe(epochs=5, batch_size=128, lr=5e-3, weight_decay=1e-2, dropout=0.0),
    "mnist-cnn": Recipe(epochs=3, batch_size=128, lr=3e-3, weight_decay=1e-2, dropout=0.0),
}
