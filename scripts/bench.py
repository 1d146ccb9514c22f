"""Model-level speed: tensorlite vs PyTorch (CPU, 2 threads) on identical models, in one run.

    python scripts/bench.py xor      # 10,000 full-batch SGD steps of the 2-3-1 sigmoid XOR net
    python scripts/bench.py iris     # 100 epochs of the 4-32-3 Iris classifier, batch 16, Adam
    python scripts/bench.py shakespeare  # the `cpu` preset's GPT: ms/iteration, peak memory, sampling speed
    python scripts/bench.py all

Both frameworks start from the same weights; rounds alternate between them (this machine is
noisy) and medians and the ratio tensorlite/PyTorch are printed. Unset OpenBLAS's core-type
override for the run: ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python scripts/bench.py``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from benchlib import alternate

import tensorlite as tl
from tensorlite import nn, optim


def report(title: str, times: dict[str, float], unit_count: int, unit: str) -> None:
    print(f"\n{title}")
    for name, seconds in times.items():
        print(f"    {name:<11} {seconds * 1e3:9.1f} ms  ({seconds / unit_count * 1e6:8.1f} us/{unit})")
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
    from tensorlite.data import Normalizer, load_iris, stratified_split

    x, y = load_iris()
    train, _ = stratified_split(y, 30, 0)
    x = Normalizer.fit(x[train], "standard")(x[train])
    rng = np.random.default_rng(0)
    orders = [rng.permutation(len(train)) for _ in range(100)]  # the same shuffles for both frameworks
    return x, y[train], orders


def iris_model() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 3))


def iris_tensorlite(data, epochs: int) -> float:
    x_np, y_np, orders = data
    tl.manual_seed(0)
    model = iris_model()
    opt = optim.Adam(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    x, y = tl.tensor(x_np), tl.tensor(y_np)
    start = time.perf_counter()
    for epoch in range(epochs):
        order = tl.tensor(orders[epoch])
        for i in range(0, len(order), 16):
            idx = order[i:i + 16]
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return time.perf_counter() - start


def iris_torch(torch, data, epochs: int) -> float:
    x_np, y_np, orders = data
    model = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    tl.manual_seed(0)
    copy_weights(iris_model(), model)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
    start = time.perf_counter()
    for epoch in range(epochs):
        order = torch.from_numpy(orders[epoch])
        for i in range(0, len(order), 16):
            idx = order[i:i + 16]
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return time.perf_counter() - start


# -- Shakespeare: the `cpu` preset's GPT, training, memory and sampling --------------------------------
def shakespeare_setup(n_batches: int) -> tuple[Any, int, list[tuple[np.ndarray, np.ndarray]]]:
    """The `cpu` preset's GPTConfig, its batch size, and ``n_batches`` training batches (host arrays)."""
    from tensorlite.models import GPTConfig

    from tensorlite.data import CharTokenizer, TextData, load_shakespeare
    from tensorlite.lm_training import GPT_PRESETS

    preset = GPT_PRESETS["cpu"]
    text = load_shakespeare()
    tokenizer = CharTokenizer.from_text(text)
    data = TextData(tokenizer.encode(text))
    config = GPTConfig(vocab_size=tokenizer.vocab_size, **{k: preset[k] for k in ("n_layer", "n_head", "n_embd",
                                                                                   "block_size", "dropout", "bias")})
    rng = np.random.default_rng(0)
    batches = [tuple(t.numpy() for t in data.get_batch("train", preset["batch_size"], config.block_size, "cpu", rng))
               for _ in range(n_batches)]
    return config, preset["batch_size"], batches


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


def gpt_trainer(model, batches, to_tensor, clip_grad_norm_) -> Callable[[int], float]:
    """``train(steps)``: that many AdamW steps with gradient clipping (1.0) on the next batches; returns seconds."""
    optimizer = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
    inputs = [(to_tensor(x), to_tensor(y)) for x, y in batches]
    done = 0

    def train(steps: int) -> float:
        nonlocal done
        start = time.perf_counter()
        for _ in range(steps):
            x, y = inputs[done % len(inputs)]
            _, loss = model(x, y)
            optimizer.zero_grad()
            loss.backward()
            clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            done += 1
        return time.perf_counter() - start

    return train


def peak_memory_child(framework: str, steps: int) -> None:
    """Run in a subprocess: train ``steps`` iterations with one framework only; print resident MB before and peak."""
    config, _, batches = shakespeare_setup(10)
    if framework == "torch":
        import torch

        torch.set_num_threads(2)
        model = torch_gpt(torch, config)
        train = gpt_trainer(model, batches, torch.from_numpy, torch.nn.utils.clip_grad_norm_)
    else:
        from tensorlite.models import GPT

        model = GPT(config)
        train = gpt_trainer(model, batches, tl.tensor, nn.utils.clip_grad_norm_)
    before = memory_mb("VmRSS")
    train(steps)
    print(f"{before:.1f} {memory_mb('VmHWM'):.1f}")


def memory_mb(field: str) -> float:
    """This process's resident memory now (``VmRSS``) or at its peak (``VmHWM``), in MB.

    (Not ``getrusage``: a child's ``ru_maxrss`` starts from its parent's peak at fork.)
    """
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":")) / 1024


def tensorlite_sampling(model, n: int, use_cache: bool) -> float:
    """Seconds to sample ``n`` characters after a one-character prompt."""
    idx = tl.zeros(1, 1, dtype=tl.int64)
    start = time.perf_counter()
    for _ in model.generate_tokens(idx, n, temperature=0.8, top_k=40, use_cache=use_cache):
        pass
    return time.perf_counter() - start


def torch_sampling(torch, model, n: int) -> float:
    start = time.perf_counter()
    model.generate(torch.zeros(1, 1, dtype=torch.int64), n, temperature=0.8, top_k=40)
    return time.perf_counter() - start


def shakespeare(torch, rounds: int) -> None:
    """Training speed side by side, peak memory of each alone, and sampling speed with and without the cache."""
    config, batch_size, batches = shakespeare_setup(20)
    ours, theirs = shakespeare_models(torch, config)
    trainers = {"tensorlite": gpt_trainer(ours, batches, tl.tensor, nn.utils.clip_grad_norm_),
                "torch": gpt_trainer(theirs, batches, torch.from_numpy, torch.nn.utils.clip_grad_norm_)}
    steps = 20
    for train in trainers.values():
        train(3)  # warm up
    times = alternate({name: lambda train=train: train(steps) for name, train in trainers.items()}, rounds)
    report(f"Shakespeare GPT, `cpu` preset ({config.n_layer} layers, {config.n_head} heads, {config.n_embd} wide, "
           f"block {config.block_size}, batch {batch_size}), AdamW + clipping: {steps} iterations, median of "
           f"{rounds}", times, steps, "iter")

    print("\nPeak resident memory, 100 training iterations, each framework alone in a subprocess")
    for framework in trainers:
        out = subprocess.run([sys.executable, __file__, "--memory-child", framework], capture_output=True, text=True,
                             check=True).stdout.split()
        print(f"    {framework:<11} peak {float(out[1]):7.1f} MB  ({float(out[0]):.1f} MB before training)")

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", choices=["xor", "iris", "shakespeare", "all"], nargs="?", default="all")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--memory-child", choices=["tensorlite", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        return peak_memory_child(args.memory_child, 100)
    import torch

    torch.set_num_threads(2)
    tl.set_default_device("cpu")
    print(f"tensorlite {tl.__version__}, numpy {np.__version__}, torch {torch.__version__} (2 threads)")
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


if __name__ == "__main__":
    main()
