"""A research script's transformer: nanoGPT's shape written the way a PyTorch user writes it, once,
against either library (``lib`` is ``torch`` or ``tensorlite``): ``nn.Linear`` with biases,
``c_attn(x).split(...)``, ``reshape(...).transpose(1, 2)`` per head, ``scaled_dot_product_attention``
with ``is_causal=True``, exact GELU, ``nn.LayerNorm`` with bias, each library's default
initialisation, AdamW on every parameter and ``clip_grad_norm_``. ``scripts/bench.py user-gpt``
trains it in both side by side; ``op_breakdown`` says where tensorlite's time goes, op by op.
"""

from __future__ import annotations

import cProfile
import inspect
import pstats
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import tensorlite as tl
from tensorlite.autograd import Function


@dataclass(frozen=True)
class UserGPTConfig:
    vocab_size: int = 65
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 64
    batch_size: int = 12


def build(lib: Any, config: UserGPTConfig) -> Any:
    """The model, built with ``lib.nn`` (PyTorch's or tensorlite's): forward(idx, targets) -> loss."""
    nn, F = lib.nn, lib.nn.functional
    n_embd, n_head = config.n_embd, config.n_head

    class CausalSelfAttention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c_attn = nn.Linear(n_embd, 3 * n_embd)
            self.c_proj = nn.Linear(n_embd, n_embd)

        def forward(self, x):
            B, T, C = x.shape
            q, k, v = self.c_attn(x).split(n_embd, dim=2)
            q = q.reshape(B, T, n_head, C // n_head).transpose(1, 2)  # (B, nh, T, hs)
            k = k.reshape(B, T, n_head, C // n_head).transpose(1, 2)
            v = v.reshape(B, T, n_head, C // n_head).transpose(1, 2)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.c_proj(y.transpose(1, 2).reshape(B, T, C))

    class MLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c_fc = nn.Linear(n_embd, 4 * n_embd)
            self.c_proj = nn.Linear(4 * n_embd, n_embd)

        def forward(self, x):
            return self.c_proj(F.gelu(self.c_fc(x)))

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln_1 = nn.LayerNorm(n_embd)
            self.attn = CausalSelfAttention()
            self.ln_2 = nn.LayerNorm(n_embd)
            self.mlp = MLP()

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class GPT(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.wte = nn.Embedding(config.vocab_size, n_embd)
            self.wpe = nn.Embedding(config.block_size, n_embd)
            self.blocks = nn.ModuleList([Block() for _ in range(config.n_layer)])
            self.ln_f = nn.LayerNorm(n_embd)
            self.lm_head = nn.Linear(n_embd, config.vocab_size)

        def forward(self, idx, targets):
            T = idx.shape[1]
            x = self.wte(idx) + self.wpe(lib.arange(T))  # (B, T, C)
            for block in self.blocks:
                x = block(x)
            logits = self.lm_head(self.ln_f(x))  # (B, T, vocab)
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    return GPT()


def _timed_code() -> dict[Any, str]:
    """Code object -> name of what the breakdown times: each ``Function`` subclass's forward and backward,
    each optimizer's ``step`` and ``clip_grad_norm_``."""
    names = {tl.nn.utils.clip_grad_norm_.__code__: "clip_grad_norm_"}
    stack = [(Function, ("forward", "backward")), (tl.optim.Optimizer, ("step",))]
    while stack:
        cls, methods = stack.pop()
        stack.extend((sub, methods) for sub in cls.__subclasses__())
        for method in methods:
            fn = cls.__dict__.get(method)
            if inspect.isfunction(fn):
                names[inspect.unwrap(fn).__code__] = f"{cls.__name__}.{method}"
    return names


def op_breakdown(train: Callable[[int], Any], iterations: int, top: int = 15) -> list[tuple[str, float, float]]:
    """Run ``train(iterations)`` under cProfile; the ``top`` ops by time in their forward or backward, and
    the optimizer and clipping (callees included): ``(name, ms per iteration, share of the whole)``."""
    profile = cProfile.Profile()
    profile.enable()
    train(iterations)
    profile.disable()
    stats = pstats.Stats(profile).stats
    names = _timed_code()
    by_code = {(c.co_filename, c.co_firstlineno, c.co_name): name for c, name in names.items()}
    per_op: dict[str, float] = defaultdict(float)
    total = 0.0
    for (filename, line, func), (_, _, tottime, cumtime, _) in stats.items():
        total += tottime
        name = by_code.get((filename, line, func))
        if name is not None:
            per_op[name] += cumtime
    rows = sorted(per_op.items(), key=lambda item: -item[1])[:top]
    return [(name, seconds / iterations * 1e3, seconds / total) for name, seconds in rows]

