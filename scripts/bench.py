"""Model-level speed: tensorlite vs PyTorch (CPU, 2 threads) on identical models, in one run.

    python scripts/bench.py xor      # 10,000 full-batch SGD steps of the 2-3-1 sigmoid XOR net
    python scripts/bench.py iris     # 100 epochs of the 4-32-3 Iris classifier, batch 16, Adam
    python scripts/bench.py shakespeare  # nanoGPT's CPU GPT: ms/iteration, peak memory, sampling speed; and
                                         # the `cpu` preset's recipe (Muon): ms/iteration, tensorlite only
    python scripts/bench.py mnist    # MNISTMLP's epoch and MNISTCNN's step (Adam, batch 64), peak memory
    python scripts/bench.py user-gpt # a research script's GPT (scripts/user_gpt.py): ms/iteration, memory, ops
    python scripts/bench.py distributed  # mpiexec -n 2 against one process (scripts/bench_distributed.py)
    python scripts/bench.py gpu --device cuda --json out.json  # on a GPU, beside PyTorch CUDA eager: the `gpu`
                                     # preset's GPT ms/iteration, MNISTCNN ms/step, sampling chars/s, peak memory
    python scripts/bench.py all      # all but distributed and gpu

Both frameworks start from the same weights; rounds alternate between them (this machine is
noisy) and medians and the ratio tensorlite/PyTorch are printed, with the CPU kind, NumPy's BLAS kernel
and whether tensorlite's compiled kernels ran. ``--cpu avx2`` reruns with both libraries forced down
to AVX2 (for an AVX-512 machine); by default a leftover ``OPENBLAS_CORETYPE`` override is dropped.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import user_gpt
from benchlib import add_cpu_option, alternate, apply_cpu_option, blas_summary, cpu_summary, kernels_summary

import tensorlite as tl
from tensorlite import nn, optim


def report(title: str, times: dict[str, float], unit_count: int, unit: str) -> None:
    print(f"\n{title}")
    width = max(11, *map(len, times))
    for name, seconds in times.items():
        per_unit = seconds / unit_count
        per = f"{per_unit * 1e3:8.2f} ms" if per_unit >= 1e-3 else f"{per_unit * 1e6:8.1f} us"
        print(f"    {name:<{width}} {seconds * 1e3:9.1f} ms  ({per}/{unit})")
    print(f"    ratio tensorlite/torch = {times['tensorlite'] / times['torch']:.2f}")


def copy_weights(ours: nn.Module, theirs) -> None:
    """Give the PyTorch model tensorlite's initial weights (same architecture, same keys)."""
    import torch

    with torch.no_grad():
        for key, value in ours.state_dict().items():
            theirs.state_dict()[key].copy_(torch.from_numpy(value.numpy()))


# -- XOR: 10,000 full-batch steps ------------------------------------------------------------------
XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
XOR_Y = np.array([[0], [1], [1], [0]], dtype=np.float32)


def xor_tensorlite(steps: int) -> float:
    tl.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3), nn.Sigmoid(), nn.Linear(3, 1), nn.Sigmoid())
    opt = optim.SGD(model.parameters(), lr=2.0, momentum=0.9)
    loss_fn = nn.MSELoss()
    x, y = tl.tensor(XOR_X), tl.tensor(XOR_Y)
    start = time.perf_counter()
    for _ in range(steps):
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def xor_torch(torch, steps: int) -> float:
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Sigmoid(), torch.nn.Linear(3, 1), torch.nn.Sigmoid())
    tl.manual_seed(0)
    copy_weights(nn.Sequential(nn.Linear(2, 3), nn.Sigmoid(), nn.Linear(3, 1), nn.Sigmoid()), model)
    opt = torch.optim.SGD(model.parameters(), lr=2.0, momentum=0.9)
    loss_fn = torch.nn.MSELoss()
    x, y = torch.from_numpy(XOR_X), torch.from_numpy(XOR_Y)
    start = time.perf_counter()
    for _ in range(steps):
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - start


# -- Iris: 100 epochs, batch 16 ---------------------------------------------------------------------
def iris_data() -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    from tensorlite.datasets import Normalizer, load_iris, stratified_split

    x, y = load_iris()
    train, _ = stratified_split(y, 30, 0)
    x = Normalizer.fit(x[train], "standard")(x[train])
    rng = np.random.default_rng(0)
    orders = [rng.permutation(len(train)) for _ in range(100)]  # the same shuffles for both frameworks
    return x, y[train], orders


def iris_model() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 3))


def iris_epochs(model, optimizer, loss_fn, to_tensor: Callable, data, epochs: int) -> float:
    """Seconds for ``epochs`` passes of Adam over the Iris rows in the given orders, batch 16 (either framework)."""
    x_np, y_np, orders = data
    x, y = to_tensor(x_np), to_tensor(y_np)
    start = time.perf_counter()
    for epoch in range(epochs):
        order = to_tensor(orders[epoch])
        for i in range(0, len(order), 16):
            idx = order[i:i + 16]
            loss = loss_fn(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return time.perf_counter() - start


def iris_tensorlite(data, epochs: int) -> float:
    tl.manual_seed(0)
    model = iris_model()
    return iris_epochs(model, optim.Adam(model.parameters(), lr=0.01), nn.CrossEntropyLoss(), tl.tensor, data, epochs)


def iris_torch(torch, data, epochs: int) -> float:
    model = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    tl.manual_seed(0)
    copy_weights(iris_model(), model)
    return iris_epochs(model, torch.optim.Adam(model.parameters(), lr=0.01), torch.nn.CrossEntropyLoss(),
                       torch.from_numpy, data, epochs)


# -- Shakespeare: nanoGPT's CPU GPT (and the `cpu` preset's recipe), training, memory and sampling ----------
def preset_settings(name: str, vocab_size: int, **overrides: Any) -> tuple[Any, Any]:
    """A GPT preset (with ``overrides``, by field name) as its ``GPTConfig`` and ``LMTrainConfig``."""
    from tensorlite.models import GPTConfig

    from tensorlite.cli.presets import GPT_PRESETS
    from tensorlite.training import LMTrainConfig

    settings = {**GPT_PRESETS[name], **overrides}
    fields = lambda cls: {f.name for f in dataclasses.fields(cls)}  # noqa: E731
    model = GPTConfig(vocab_size=vocab_size, **{k: v for k, v in settings.items() if k in fields(GPTConfig)})
    return model, LMTrainConfig(**{k: v for k, v in settings.items() if k in fields(LMTrainConfig)})


def shakespeare_setup(n_batches: int, preset: str = "nanogpt-cpu") -> tuple[Any, int, list[tuple[np.ndarray,
                                                                                                  np.ndarray]]]:
    """A preset's GPTConfig (nanoGPT's CPU one by default), its batch size, and ``n_batches`` training batches
    (host arrays)."""
    from tensorlite.datasets import CharTokenizer, TextData, load_shakespeare

    text = load_shakespeare()
    tokenizer = CharTokenizer.from_text(text)
    data = TextData(tokenizer.encode(text))
    config, train = preset_settings(preset, tokenizer.vocab_size)
    rng = np.random.default_rng(0)
    batches = [tuple(t.numpy() for t in data.get_batch("train", train.batch_size, config.block_size, "cpu", rng))
               for _ in range(n_batches)]
    return config, train.batch_size, batches


def torch_gpt(torch, config):
    """nanoGPT's ``model.py`` in brief: the same architecture and state-dict keys as tensorlite's GPT."""
    F = torch.nn.functional

    class CausalSelfAttention(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c_attn = torch.nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
            self.c_proj = torch.nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
            self.resid_dropout = torch.nn.Dropout(config.dropout)

        def forward(self, x):
            B, T, C = x.shape
            q, k, v = (t.view(B, T, config.n_head, C // config.n_head).transpose(1, 2)
                       for t in self.c_attn(x).split(C, dim=2))
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=config.dropout if self.training else 0.0,
                                               is_causal=True)
            return self.resid_dropout(self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C)))

    class Block(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln_1 = torch.nn.LayerNorm(config.n_embd, bias=config.bias)
            self.attn = CausalSelfAttention()
            self.ln_2 = torch.nn.LayerNorm(config.n_embd, bias=config.bias)
            self.mlp = torch.nn.Sequential()
            self.mlp.c_fc = torch.nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
            self.mlp.gelu = torch.nn.GELU()
            self.mlp.c_proj = torch.nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
            self.mlp.dropout = torch.nn.Dropout(config.dropout)

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class GPT(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = torch.nn.ModuleDict(dict(
                wte=torch.nn.Embedding(config.vocab_size, config.n_embd),
                wpe=torch.nn.Embedding(config.block_size, config.n_embd),
                drop=torch.nn.Dropout(config.dropout),
                h=torch.nn.ModuleList([Block() for _ in range(config.n_layer)]),
                ln_f=torch.nn.LayerNorm(config.n_embd, bias=config.bias)))
            self.lm_head = torch.nn.Linear(config.n_embd, config.vocab_size, bias=False)
            self.transformer.wte.weight = self.lm_head.weight

        def forward(self, idx, targets=None):
            T = idx.shape[1]
            x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(torch.arange(T)))
            for block in self.transformer.h:
                x = block(x)
            logits = self.lm_head(self.transformer.ln_f(x))
            loss = None if targets is None else F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))
            return logits, loss

        def configure_optimizers(self, weight_decay, learning_rate, betas):
            params = list(self.parameters())
            return torch.optim.AdamW([{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
                                      {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
                                     lr=learning_rate, betas=betas)

        @torch.no_grad()
        def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None):  # no cache: the whole context each time
            for _ in range(max_new_tokens):
                logits, _ = self(idx[:, -config.block_size:])
                logits = logits[:, -1, :] / temperature
                if top_k is not None:
                    v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                    logits[logits < v[:, [-1]]] = -float("inf")
                idx = torch.cat((idx, torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)), dim=1)
            return idx

    return GPT()


def shakespeare_models(torch, config) -> tuple[nn.Module, Any]:
    """tensorlite's GPT and the PyTorch one, with the same initial weights."""
    from tensorlite.models import GPT

    tl.manual_seed(0)
    ours = GPT(config)
    theirs = torch_gpt(torch, config)
    copy_weights(ours, theirs)
    return ours, theirs


def trainer(loss_fn: Callable, optimizer, inputs: list, clip: Callable[[], Any] | None = None,
            sync: Callable[[], Any] | None = None) -> Callable[[int], float]:
    """``train(steps)``: that many optimizer steps on ``loss_fn(x, y)`` over the next ``(x, y)`` of ``inputs``
    (cycling), calling ``clip()`` between backward and step when given; returns seconds, after ``sync()`` (a GPU's
    queued work must finish inside the timing)."""
    done = 0

    def train(steps: int) -> float:
        nonlocal done
        start = time.perf_counter()
        for _ in range(steps):
            x, y = inputs[done % len(inputs)]
            loss = loss_fn(x, y)
            optimizer.zero_grad()
            loss.backward()
            if clip is not None:
                clip()
            optimizer.step()
            done += 1
        if sync is not None:
            sync()
        return time.perf_counter() - start

    return train


def gpt_trainer(model, batches, to_tensor, clip_grad_norm_, optimizer=None, sync: Callable[[], Any] | None = None
                ) -> Callable[[int], float]:
    """``train(steps)``: that many steps with gradient clipping (1.0) on the next batches; returns seconds (after
    ``sync()``, a device's wait, when given). The optimizer: nanoGPT's AdamW unless given."""
    optimizer = optimizer or model.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
    return trainer(lambda x, y: model(x, y)[1], optimizer, [(to_tensor(x), to_tensor(y)) for x, y in batches],
                   lambda: clip_grad_norm_(model.parameters(), 1.0), sync)


def recipe_trainer(batches, vocab_size: int) -> tuple[Callable[[int], float], Any]:
    """The `cpu` preset's model and optimizer (Muon and AdamW) over the same batches: ``train(steps)``, config."""
    from tensorlite.models import GPT

    from tensorlite.training.lm_trainer import build_optimizer

    config, train = preset_settings("cpu", vocab_size)
    tl.manual_seed(0)
    model = GPT(config)
    return gpt_trainer(model, batches, tl.tensor, nn.utils.clip_grad_norm_, build_optimizer(model, train)), config


def peak_memory_child(framework: str, model_name: str, steps: int) -> None:
    """Run in a subprocess: train ``steps`` iterations of one model with one framework only (the other is never
    imported); print resident MB before training and at its peak during training."""
    if framework == "torch":
        import torch

        torch.set_num_threads(2)
        lib, to_tensor = torch, torch.from_numpy
    else:
        lib, to_tensor = tl, tl.tensor
    if model_name == "gpt":
        from tensorlite.models import GPT

        config, _, batches = shakespeare_setup(10)
        model = torch_gpt(torch, config) if framework == "torch" else GPT(config)
        train = gpt_trainer(model, batches, to_tensor, lib.nn.utils.clip_grad_norm_)
    elif model_name == "user-gpt":
        _, _, batches = shakespeare_setup(10)
        train = user_gpt_trainer(lib, user_gpt.build(lib, user_gpt.UserGPTConfig()), batches)
    else:
        batches, _ = mnist_batches(10)
        model = torch_mnist(torch, model_name) if framework == "torch" else tensorlite_mnist(model_name)
        train = mnist_trainer(lib, model, batches, to_tensor)
    gc.collect()
    before = memory_mb("VmRSS")
    reset_peak_memory()  # forget the setup's transient peak (reading a data set, say)
    train(steps)
    print(f"{before:.1f} {memory_mb('VmHWM'):.1f}")


def memory_mb(field: str) -> float:
    """This process's resident memory now (``VmRSS``) or at its peak (``VmHWM``), in MB.

    (Not ``getrusage``: a child's ``ru_maxrss`` starts from its parent's peak at fork.)
    """
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":")) / 1024


def reset_peak_memory() -> None:
    """Reset this process's ``VmHWM`` to its current resident memory (Linux: ``/proc/self/clear_refs``)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def peak_memory(model_name: str, what: str, steps: int = 100) -> None:
    """Print each framework's peak resident memory training ``model_name`` alone in a subprocess, and the ratios."""
    print(f"\nPeak resident memory, {steps} training iterations of {what}, each framework alone in a subprocess")
    mb = {}
    for framework in ("tensorlite", "torch"):
        out = subprocess.run([sys.executable, __file__, "--memory-child", framework, "--memory-model", model_name,
                              "--memory-steps", str(steps)], capture_output=True, text=True, check=True).stdout
        before, peak = mb[framework] = tuple(float(v) for v in out.split())
        print(f"    {framework:<11} peak {peak:7.1f} MB  ({before:.1f} MB before training)")
    (ours_before, ours_peak), (theirs_before, theirs_peak) = mb["tensorlite"], mb["torch"]
    growth = (ours_peak - ours_before) / max(theirs_peak - theirs_before, 0.1)
    print(f"    ratio tensorlite/torch = {ours_peak / theirs_peak:.2f} (peak), {growth:.2f} (growth during training)")


def tensorlite_sampling(model, n: int, use_cache: bool, device: str = "cpu") -> float:
    """Seconds to sample ``n`` characters after a one-character prompt (each one read back, as when printed)."""
    idx = tl.zeros(1, 1, dtype=tl.int64, device=device)
    start = time.perf_counter()
    for _ in model.generate_tokens(idx, n, temperature=0.8, top_k=40, use_cache=use_cache):
        pass
    return time.perf_counter() - start


def torch_sampling(torch, model, n: int, device: str = "cpu") -> float:
    start = time.perf_counter()
    tokens = model.generate(torch.zeros(1, 1, dtype=torch.int64, device=device), n, temperature=0.8, top_k=40)
    tokens.tolist()  # the characters on the host, as tensorlite's
    return time.perf_counter() - start


def iterations_side_by_side(trainers: dict[str, Callable[[int], float]], steps: int, rounds: int,
                            warm_up: int = 3) -> dict[str, float]:
    """Each ``train(steps)`` after ``warm_up`` steps, in alternating rounds: the median seconds of each."""
    for train in trainers.values():
        train(warm_up)
    return alternate({name: lambda train=train: train(steps) for name, train in trainers.items()}, rounds)


def shakespeare(torch, rounds: int) -> None:
    """Training speed side by side (nanoGPT's CPU GPT in both; the `cpu` preset's recipe in tensorlite in the same
    rounds), peak memory of each alone, and sampling speed with and without the cache."""
    config, batch_size, batches = shakespeare_setup(20)
    ours, theirs = shakespeare_models(torch, config)
    recipe, recipe_config = recipe_trainer(batches, config.vocab_size)
    trainers = {"tensorlite": gpt_trainer(ours, batches, tl.tensor, nn.utils.clip_grad_norm_),
                "torch": gpt_trainer(theirs, batches, torch.from_numpy, torch.nn.utils.clip_grad_norm_),
                "tensorlite, `cpu` preset": recipe}
    steps = 20
    times = iterations_side_by_side(trainers, steps, rounds)
    report(f"Shakespeare GPT, nanoGPT's CPU run (`nanogpt-cpu`: {config.n_layer} layers, {config.n_head} heads, "
           f"{config.n_embd} wide, block {config.block_size}, batch {batch_size}), AdamW + clipping: {steps} "
           f"iterations, median of {rounds}; and tensorlite's `cpu` preset (the same size, bias={recipe_config.bias}, "
           f"init={recipe_config.init!r}, positions={recipe_config.positions!r}, "
           f"tie_embeddings={recipe_config.tie_embeddings}, Muon + AdamW + clipping)",
           times, steps, "iter")

    peak_memory("gpt", "the GPT")

    ours.eval()
    theirs.eval()
    for n in (500, config.block_size - 1):
        sampling_speeds(torch, ours, theirs, n, rounds)


def sampling_speeds(torch, ours, theirs, n: int, rounds: int) -> None:
    """Characters per second generating ``n`` from a one-character prompt, with and without tensorlite's cache."""
    times = alternate({"tensorlite, cache": lambda: tensorlite_sampling(ours, n, True),
                       "tensorlite, no cache": lambda: tensorlite_sampling(ours, n, False),
                       "torch, no cache": lambda: torch_sampling(torch, theirs, n)}, rounds)
    block = ours.config.block_size
    where = "within one block" if n < block else f"so the context is cropped to block_size={block}"
    print(f"\nSampling {n} characters ({where}; temperature 0.8, top-k 40), median of {rounds}")
    for name, seconds in times.items():
        print(f"    {name:<21} {n / seconds:8.0f} chars/s")
    print(f"    cache speedup = {times['tensorlite, no cache'] / times['tensorlite, cache']:.1f}x")


# -- a research script's GPT, written with the public API of either library -------------------------------
def user_gpt_trainer(lib, model, batches) -> Callable[[int], float]:
    """``train(steps)``: AdamW on every parameter, clipping to 1.0, over the next batches; returns seconds."""
    return trainer(model, lib.optim.AdamW(model.parameters(), lr=1e-3),
                   [(lib.from_numpy(x), lib.from_numpy(y)) for x, y in batches],
                   lambda: lib.nn.utils.clip_grad_norm_(model.parameters(), 1.0))


def user_gpt_bench(torch, rounds: int) -> None:
    """scripts/user_gpt.py in both libraries from the same weights and batches: speed, peak memory, tensorlite's ops."""
    config = user_gpt.UserGPTConfig()
    _, _, batches = shakespeare_setup(20)
    tl.manual_seed(0)
    ours, theirs = user_gpt.build(tl, config), user_gpt.build(torch, config)
    copy_weights(ours, theirs)
    trainers = {"tensorlite": user_gpt_trainer(tl, ours, batches), "torch": user_gpt_trainer(torch, theirs, batches)}
    steps = 20
    times = iterations_side_by_side(trainers, steps, rounds)
    report(f"A research script's GPT (scripts/user_gpt.py: {config.n_layer} layers, {config.n_head} heads, "
           f"{config.n_embd} wide, block {config.block_size}, batch {config.batch_size}; biases, exact GELU, "
           f"default init), AdamW + clipping: {steps} iterations, median of {rounds}", times, steps, "iter")
    print("    (target: ratio <= 0.9)")
    peak_memory("user-gpt", "the research script's GPT")
    print(f"\nWhere tensorlite's time goes ({steps} iterations under cProfile, forward/backward of each op, "
          "callees included)")
    for name, ms, share in user_gpt.op_breakdown(trainers["tensorlite"], steps):
        print(f"    {name:<36} {ms:7.2f} ms/iter  {share:6.1%}")


# -- MNIST: MNISTMLP's epoch and MNISTCNN's step, Adam, batch 64 ----------------------------------------
MNIST_BATCH, MNIST_EPOCH_STEPS = 64, 938  # 938 batches of 64 make one pass over the 60,000 training digits


def mnist_batches(n: int) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """``n`` shuffled training batches (host arrays: float32 (64, 1, 28, 28), int64 (64,)) and where they came from:
    MNIST in ``$TENSORLITE_DATA/mnist`` or /work/shared/data/mnist, else random data of the same shape."""
    from tensorlite.datasets import MNIST, MNISTError

    rng = np.random.default_rng(0)
    try:
        dataset = MNIST(None if os.environ.get("TENSORLITE_DATA") else "/work/shared/data/mnist")
        images, labels = (t.numpy() for t in dataset.to_tensor_dataset().tensors)
        source = f"MNIST's training digits from {dataset.root}"
    except MNISTError:
        images = rng.standard_normal((n * MNIST_BATCH, 1, 28, 28), dtype=np.float32)
        labels = rng.integers(0, 10, n * MNIST_BATCH)
        source = "random data of MNIST's shape (note: MNIST not found in $TENSORLITE_DATA/mnist or /work/shared/data)"
    order = rng.permutation(len(labels))[:n * MNIST_BATCH].reshape(n, MNIST_BATCH)
    return [(images[idx], labels[idx]) for idx in order], source


def tensorlite_mnist(name: str) -> nn.Module:
    from tensorlite.models import MNISTCNN, MNISTMLP

    return MNISTMLP() if name == "mlp" else MNISTCNN()


def torch_mnist(torch, name: str):
    """The same layers as ``tensorlite_mnist(name)`` in a ``torch.nn.Sequential``, so the state-dict keys match."""
    tnn = torch.nn
    if name == "mlp":
        return tnn.Sequential(tnn.Flatten(), tnn.Linear(784, 128), tnn.ReLU(), tnn.Linear(128, 64), tnn.ReLU(),
                              tnn.Linear(64, 10))
    return tnn.Sequential(tnn.Conv2d(1, 32, 3), tnn.ReLU(), tnn.MaxPool2d(2),
                          tnn.Conv2d(32, 64, 3), tnn.ReLU(), tnn.MaxPool2d(2),
                          tnn.Flatten(), tnn.Linear(64 * 5 * 5, 128), tnn.ReLU(), tnn.Linear(128, 10))


def mnist_trainer(lib, model, batches, to_tensor, sync: Callable[[], Any] | None = None) -> Callable[[int], float]:
    """``train(steps)`` for ``lib`` (tensorlite or torch): Adam (lr 1e-3) on cross-entropy; returns seconds."""
    loss_fn = lib.nn.CrossEntropyLoss()
    return trainer(lambda x, y: loss_fn(model(x), y), lib.optim.Adam(model.parameters(), lr=1e-3),
                   [(to_tensor(x), to_tensor(y)) for x, y in batches], sync=sync)


def mnist_speed(torch, name: str, batches, steps: int, rounds: int) -> dict[str, float]:
    """Median seconds for ``steps`` training steps of model ``name``, both frameworks from the same weights."""
    tl.manual_seed(0)
    ours, theirs = tensorlite_mnist(name), torch_mnist(torch, name)
    copy_weights(ours, theirs)
    trainers = {"tensorlite": mnist_trainer(tl, ours, batches, tl.tensor),
                "torch": mnist_trainer(torch, theirs, batches, torch.from_numpy)}
    return iterations_side_by_side(trainers, steps, rounds, warm_up=10)


def mnist(torch, rounds: int) -> None:
    """MLP seconds per epoch and CNN milliseconds per step side by side, then each one's peak memory alone."""
    batches, source = mnist_batches(100)
    print(f"\nMNIST: {len(batches)} batches of {MNIST_BATCH} from {source}, taken in turn by both frameworks")
    steps = 300
    times = mnist_speed(torch, "mlp", batches, steps, rounds)
    report(f"MNISTMLP 784-128-64-10 ReLU, cross-entropy, Adam, batch {MNIST_BATCH}: {steps} steps, median of "
           f"{rounds}", times, steps, "step")
    epoch = {key: seconds / steps * MNIST_EPOCH_STEPS for key, seconds in times.items()}
    print(f"    one epoch = {MNIST_EPOCH_STEPS} steps (scaled from {steps}): tensorlite {epoch['tensorlite']:.2f} s, "
          f"torch {epoch['torch']:.2f} s   (target: ratio <= 1.0)")
    steps = 50
    times = mnist_speed(torch, "cnn", batches, steps, rounds)
    report(f"MNISTCNN conv32-pool-conv64-pool-1600-128-10, cross-entropy, Adam, batch {MNIST_BATCH}: {steps} steps "
           f"after 10 warm-up, median of {rounds}", times, steps, "step")
    print("    (target: ratio <= 1.0)")
    peak_memory("mlp", "MNISTMLP")
    peak_memory("cnn", "MNISTCNN")


# -- on a device: the `gpu` preset's GPT, MNISTCNN and sampling, beside PyTorch eager on the same GPU --------
def device_sides(torch, device: str) -> dict[str, dict[str, Any]]:
    """For each framework: where its tensors go, how to make one from a host array, how to wait for the device,
    and its peak-memory functions (None off CUDA). On ``sim`` (a smoke test of this path) PyTorch runs on the CPU."""
    on_cuda = device.startswith("cuda")
    torch_device = device if on_cuda else "cpu"
    return {
        "tensorlite": {"device": device, "to_tensor": lambda a: tl.tensor(a, device=device),
                       "sync": tl.cuda.synchronize if on_cuda else None,
                       "reset_peak": tl.cuda.reset_peak_memory_stats if on_cuda else None,
                       "peak": tl.cuda.max_memory_allocated if on_cuda else None},
        "torch": {"device": torch_device, "to_tensor": lambda a: torch.from_numpy(a).to(torch_device),
                  "sync": torch.cuda.synchronize if on_cuda else None,
                  "reset_peak": torch.cuda.reset_peak_memory_stats if on_cuda else None,
                  "peak": torch.cuda.max_memory_allocated if on_cuda else None},
    }


def timed_with_peak(sides: dict, trainers: dict[str, Callable[[int], float]], steps: int, rounds: int
                    ) -> tuple[dict[str, float], dict[str, float | None]]:
    """Median seconds of ``steps`` steps per framework (alternating rounds), and each one's peak device memory in
    MiB over one more run of ``steps`` (None where there is no GPU)."""
    times = iterations_side_by_side(trainers, steps, rounds)
    peaks: dict[str, float | None] = {}
    for name, train in trainers.items():
        side = sides[name]
        if side["reset_peak"] is None:
            peaks[name] = None
            continue
        side["reset_peak"]()
        train(steps)
        peaks[name] = side["peak"]() / 2**20
    return times, peaks


def device_bench(torch, device: str, rounds: int, steps: int, preset: str = "gpu") -> dict[str, Any]:
    """The GPT preset's training (AdamW + clipping), MNISTCNN's training (Adam, batch 64) and sampling with the
    cache, tensorlite on ``device`` beside PyTorch eager on the same GPU; returns the figures (also printed)."""
    sides = device_sides(torch, device)
    results: dict[str, Any] = {"device": device, "preset": preset, "steps": steps, "rounds": rounds}
    config, batch_size, batches = shakespeare_setup(4, preset)
    ours, theirs = shakespeare_models(torch, config)
    ours.to(device)
    theirs.to(sides["torch"]["device"])
    trainers = {name: gpt_trainer(model, batches, sides[name]["to_tensor"], lib.nn.utils.clip_grad_norm_,
                                  sync=sides[name]["sync"])
                for name, model, lib in (("tensorlite", ours, tl), ("torch", theirs, torch))}
    times, peaks = timed_with_peak(sides, trainers, steps, rounds)
    report(f"GPT `{preset}` preset ({config.n_layer} layers, {config.n_head} heads, {config.n_embd} wide, block "
           f"{config.block_size}, batch {batch_size}) on {device}: {steps} iterations, median of {rounds}",
           times, steps, "iter")
    results["gpt"] = {"ms_per_iter": {k: v / steps * 1e3 for k, v in times.items()},
                      "ratio": times["tensorlite"] / times["torch"], "peak_mib": peaks}
    print(f"    peak device memory: {peaks}")

    mnist_data, source = mnist_batches(20)
    tl.manual_seed(0)
    cnn_ours, cnn_theirs = tensorlite_mnist("cnn"), torch_mnist(torch, "cnn")
    copy_weights(cnn_ours, cnn_theirs)
    cnn_ours.to(device)
    cnn_theirs.to(sides["torch"]["device"])
    trainers = {"tensorlite": mnist_trainer(tl, cnn_ours, mnist_data, sides["tensorlite"]["to_tensor"],
                                            sides["tensorlite"]["sync"]),
                "torch": mnist_trainer(torch, cnn_theirs, mnist_data, sides["torch"]["to_tensor"],
                                       sides["torch"]["sync"])}
    times, peaks = timed_with_peak(sides, trainers, steps, rounds)
    report(f"MNISTCNN, Adam, batch {MNIST_BATCH} ({source}) on {device}: {steps} steps, median of {rounds}",
           times, steps, "step")
    results["mnist_cnn"] = {"ms_per_step": {k: v / steps * 1e3 for k, v in times.items()},
                            "ratio": times["tensorlite"] / times["torch"], "peak_mib": peaks}

    ours.eval()
    theirs.eval()
    n = min(500, 2 * config.block_size)
    times = alternate({"tensorlite, cache": lambda: tensorlite_sampling(ours, n, True, device),
                       "torch, no cache": lambda: torch_sampling(torch, theirs, n, sides["torch"]["device"])}, rounds)
    print(f"\nSampling {n} characters on {device} (temperature 0.8, top-k 40), median of {rounds}")
    for name, seconds in times.items():
        print(f"    {name:<21} {n / seconds:8.0f} chars/s")
    results["sampling_chars_per_s"] = {name: n / seconds for name, seconds in times.items()}
    if device.startswith("cuda"):
        results["tensorlite_memory_pool"] = tl.cuda.memory_summary_line()
        print(f"    tensorlite's memory pool: {results['tensorlite_memory_pool']}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", nargs="?", default="all",
                        choices=["xor", "iris", "shakespeare", "mnist", "user-gpt", "distributed", "gpu", "all"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20, help="distributed and gpu: steps per round")
    parser.add_argument("--device", default="cuda", help="gpu: tensorlite's device (cuda, cuda:N; sim: a smoke test)")
    parser.add_argument("--preset", default="gpu", help="gpu: the GPT preset (cli/presets.py)")
    parser.add_argument("--json", help="gpu: also write the figures to this JSON file")
    parser.add_argument("--memory-child", choices=["tensorlite", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--memory-model", choices=["gpt", "user-gpt", "mlp", "cnn"], default="gpt",
                        help=argparse.SUPPRESS)
    parser.add_argument("--memory-steps", type=int, default=100, help=argparse.SUPPRESS)
    add_cpu_option(parser)
    args = parser.parse_args()
    if args.memory_child:
        return peak_memory_child(args.memory_child, args.memory_model, args.memory_steps)
    apply_cpu_option(args)
    if args.which == "distributed":  # no PyTorch: tensorlite on several processes against itself on one
        import bench_distributed

        return bench_distributed.main(["--rounds", str(args.rounds), "--steps", str(args.steps)])
    import torch

    torch.set_num_threads(2)
    if args.which == "gpu":
        name = tl.cuda.get_device_name(args.device) if args.device.startswith("cuda") else args.device
        print(f"tensorlite {tl.__version__}, torch {torch.__version__}, on {name}")
        results = device_bench(torch, args.device, args.rounds, args.steps, args.preset)
        if args.json:
            with open(args.json, "w", encoding="utf-8") as out:
                json.dump(results, out, indent=2)
        return None
    tl.set_default_device("cpu")
    print(f"tensorlite {tl.__version__}, numpy {np.__version__}, torch {torch.__version__} (2 threads)")
    print(f"CPU: {cpu_summary()}\nnumpy BLAS: {blas_summary()}\ntensorlite CPU kernels: {kernels_summary()}")
    if args.which in ("xor", "all"):
        steps = 10_000
        times = alternate({"tensorlite": lambda: xor_tensorlite(steps), "torch": lambda: xor_torch(torch, steps)},
                          args.rounds)
        report(f"XOR 2-3-1 sigmoid, MSE, SGD: {steps} full-batch steps, median of {args.rounds}", times, steps, "step")
    if args.which in ("iris", "all"):
        data, epochs = iris_data(), 100
        times = alternate({"tensorlite": lambda: iris_tensorlite(data, epochs),
                           "torch": lambda: iris_torch(torch, data, epochs)}, args.rounds)
        report(f"Iris 4-32-3 ReLU, cross-entropy, Adam, batch 16: {epochs} epochs, median of {args.rounds}",
               times, epochs, "epoch")
    if args.which in ("shakespeare", "all"):
        shakespeare(torch, args.rounds)
    if args.which in ("mnist", "all"):
        mnist(torch, args.rounds)
    if args.which in ("user-gpt", "all"):
        user_gpt_bench(torch, args.rounds)


if __name__ == "__main__":
    main()
