"""A GPT language model, after Andrej Karpathy's nanoGPT (``model.py``): same architecture, same
state-dict keys, same initialisation, so weights move between the two.

Token and position embeddings feed ``n_layer`` pre-LayerNorm transformer blocks (causal
self-attention, then a GELU MLP, each added to the residual stream); a final LayerNorm and a
linear head, whose weight is the token embedding's (weight tying), give next-token logits.

``GPTConfig`` also offers what small-model speedruns (modded-nanogpt) changed since, each off by
default, so a config without them (every checkpoint written before they existed) is nanoGPT's model:
PyTorch's default initialisation (``init="pytorch"``), rotary position embeddings instead of learned
ones (``positions="rotary"``: no ``wpe``), RMS-normalised queries and keys (``qk_norm``), a ReLU-squared
MLP (``activation="relu2"``), output projections that start at zero (``zero_init_proj``), and a head
with weights of its own (``tie_embeddings=False``). The state-dict keys stay nanoGPT's (less ``wpe``
with rotary positions).

Generation keeps a key/value cache in each attention layer, so every new token costs one
position instead of a pass over the whole context.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy
from tensorlite.models.config import ModelConfig, check_dropout
from tensorlite.models.language_model import LanguageModel

import tensorlite as tl
from tensorlite import nn
from tensorlite.nn import functional as F
from tensorlite.ops.rotary import rotary_tables
from tensorlite.tensor import Tensor


@dataclass
class GPTConfig(ModelConfig):
    block_size: int = 256  # the longest context (number of positions)
    vocab_size: int = 65
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    dropout: float = 0.0
    bias: bool = True  # biases in the Linear layers and LayerNorms (False: a bit better and faster)
    # The recipe options; each default is nanoGPT's model.
    init: str = "nanogpt"  # "nanogpt": N(0, 0.02), zero biases, residual projections scaled by depth; "pytorch":
    #                        each layer's own (Linear U(+-1/sqrt(fan_in)), Embedding N(0, 1))
    positions: str = "learned"  # "learned": a position embedding (wpe); "rotary": queries and keys rotated (RoPE)
    qk_norm: bool = False  # RMS-normalise each head's queries and keys (no gain) before attention
    activation: str = "gelu"  # the MLP's: "gelu" or "relu2" (ReLU squared)
    zero_init_proj: bool = False  # the output projections of attention and MLP (c_proj.weight) start at zero
    tie_embeddings: bool = True  # the head's weight is the token embedding's

    def __post_init__(self) -> None:
        for name in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                raise ValueError(f"GPTConfig: {name} must be a positive integer, got {getattr(self, name)!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"GPTConfig: n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        check_dropout("GPTConfig", self.dropout)
        for name, choices in CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(f"GPTConfig: {name} must be {' or '.join(map(repr, choices))}, got "
                                 f"{getattr(self, name)!r}")
        if self.positions == "rotary" and (self.n_embd // self.n_head) % 2:
            raise ValueError(f"GPTConfig: rotary positions rotate channel pairs, so the head size n_embd / n_head "
                             f"must be even, got {self.n_embd // self.n_head}")

    def state_dict_numel(self) -> int:
        """Elements in the model's state dict (the tied lm_head counted again, as the state dict holds it),
        without building it (checkpoints are checked against it)."""
        c, bias = self.n_embd, int(self.bias)
        block = 12 * c * c + 2 * c + 11 * c * bias  # LayerNorms, attention and MLP of one layer
        positions = self.block_size * c if self.positions == "learned" else 0
        return 2 * self.vocab_size * c + positions + self.n_layer * block + c + c * bias


CHOICES = {"init": ("nanogpt", "pytorch"), "positions": ("learned", "rotary"), "activation": ("gelu", "relu2")}


def rms_norm(x: Tensor) -> Tensor:
    """x (..., D) divided by the root mean square of its last dimension (no gain), as ``F.rms_norm(x, (D,))``."""
    eps = float(numpy.finfo(x.dtype).eps)
    return x / ((x * x).mean(dim=-1, keepdim=True) + eps).sqrt()


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which position t only sees positions <= t."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v for all heads
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head, self.n_embd, self.dropout = config.n_head, config.n_embd, config.dropout
        self.block_size = config.block_size
        self.qk_norm, self.rotary = config.qk_norm, config.positions == "rotary"
        if self.rotary:  # (block_size, 1, hs / 2): one row per position, broadcast over the heads
            cos, sin = rotary_tables(config.block_size, config.n_embd // config.n_head)
            self.register_buffer("rotary_cos", cos.unsqueeze(1), persistent=False)
            self.register_buffer("rotary_sin", sin.unsqueeze(1), persistent=False)
        self.cache: Tensor | None = None  # generation only: keys and values (2, B, nh, block_size, hs)

    def forward(self, x: Tensor, cache_pos: int | None = None) -> Tensor:
        """x (B, T, C) -> (B, T, C). With ``cache_pos``, x holds positions cache_pos.. and the
        keys/values of earlier positions come from the cache (inference only; 0 starts a new cache)."""
        B, T, C = x.shape
        qkv = self.c_attn(x)  # (B, T, 3C): queries, keys and values of every head
        q, k, v = qkv.split(self.n_embd, dim=2)
        hs = C // self.n_head
        q, k = q.view(B, T, self.n_head, hs), k.view(B, T, self.n_head, hs)  # (B, T, nh, hs)
        if self.qk_norm or self.rotary:
            q, k = self._prepare(q, cache_pos or 0), self._prepare(k, cache_pos or 0)
        if cache_pos is not None:
            if self.qk_norm or self.rotary:  # the cache takes them packed, as the projection makes them
                qkv = tl.cat([q.reshape(B, T, C), k.reshape(B, T, C), v], dim=2)
            y = F.kv_cache_attention(qkv, self._cache_for(x, cache_pos), cache_pos, self.n_head)  # (B, T, C)
            return self.resid_dropout(self.c_proj(y))
        q, k = q.transpose(1, 2), k.transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        dropout_p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, nh, hs) -> (B, T, C): the heads side by side
        return self.resid_dropout(self.c_proj(y))

    def _prepare(self, t: Tensor, start: int) -> Tensor:
        """Queries or keys (B, T, nh, hs) of positions start..start+T-1, RMS-normalised (qk_norm), then rotated
        by position (rotary)."""
        if self.qk_norm:
            t = rms_norm(t)
        if self.rotary:
            T = t.shape[1]
            t = F.rotary_embedding(t, self.rotary_cos[start:start + T], self.rotary_sin[start:start + T])
        return t

    def _cache_for(self, x: Tensor, pos: int) -> Tensor:
        """The key/value cache (2, B, nh, block_size, hs) for x (B, T, C): a new one at position 0, else the
        current one."""
        B = x.shape[0]
        if pos == 0:
            self.cache = tl.zeros(2, B, self.n_head, self.block_size, self.n_embd // self.n_head, dtype=x.dtype,
                                  device=x.device)
        elif self.cache is None or self.cache.shape[1] != B:
            raise ValueError("GPT: start the key/value cache at position 0 (with this batch size) before extending it")
        return self.cache


class ReLUSquared(nn.Module):
    """``relu(x) ** 2`` (So et al., "Primer", 2021; modded-nanogpt's MLP)."""

    def forward(self, x: Tensor) -> Tensor:
        r = F.relu(x)
        return r * r


class MLP(nn.Module):
    """Position-wise feed-forward: expand to 4 * n_embd, GELU (or ReLU squared), project back."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU() if config.activation == "gelu" else ReLUSquared()  # nanoGPT's name, either way
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))  # (B, T, C)


class Block(nn.Module):
    """One transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: Tensor, cache_pos: int | None = None) -> Tensor:
        x = x + self.attn(self.ln_1(x), cache_pos)
        return x + self.mlp(self.ln_2(x))


class GPT(LanguageModel):
    """Next-token prediction over ``config.vocab_size`` tokens with a context of ``config.block_size``."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            **({"wpe": nn.Embedding(config.block_size, config.n_embd)} if config.positions == "learned" else {}),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.transformer.wte.weight = self.lm_head.weight  # weight tying: one Parameter, two state-dict keys
        if config.init == "nanogpt":  # N(0, 0.02) everywhere, zero biases, residual projections scaled down by depth
            self.apply(self._init_weights)
            for name, p in self.named_parameters():
                if name.endswith("c_proj.weight"):
                    nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))
        if config.zero_init_proj:  # each block starts as the identity on the residual stream
            for block in self.transformer.h:
                nn.init.zeros_(block.attn.c_proj.weight)
                nn.init.zeros_(block.mlp.c_proj.weight)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def hidden_matrices(self) -> list[Tensor]:
        """The weights of the blocks' Linear layers (c_attn, c_proj, c_fc, mlp.c_proj): what Muon updates."""
        return [p for block in self.transformer.h for p in block.parameters() if p.ndim == 2]

    def get_num_params(self, non_embedding: bool = True) -> int:
        """Parameters, counted once; without the position embeddings (if learned) by default, as nanoGPT."""
        n = self.num_parameters()
        return n - self.transformer.wpe.weight.numel() if non_embedding and "wpe" in self.transformer else n

    def forward(self, idx: Tensor, targets: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """idx (B, T) int64 -> (logits (B, T, vocab_size), mean cross entropy against targets (B, T) or None)."""
        B, T = self._check_idx(idx)
        if T > self.config.block_size:
            raise ValueError(f"GPT: a sequence of length {T} is longer than block_size={self.config.block_size}")
        x = self._embed(idx, 0)  # (B, T, C)
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))  # (B, T, vocab_size)
        if targets is None:
            return logits, None
        if tuple(targets.shape) != (B, T):
            raise ValueError(f"GPT: targets must have the shape of idx {(B, T)}, got {tuple(targets.shape)}")
        loss = F.cross_entropy(logits.view(B * T, -1), targets.view(B * T), ignore_index=-1)
        return logits, loss

    def forward_step(self, idx: Tensor, pos: int) -> Tensor:
        """Logits (B, T, vocab_size) of tokens idx (B, T) at positions pos..pos+T-1, attending over the
        key/value cache of the positions before (``pos=0`` starts a new cache). Inference only."""
        B, T = self._check_idx(idx)
        if not 0 <= pos <= self.config.block_size - T:
            raise ValueError(f"GPT: positions {pos}..{pos + T - 1} do not fit in block_size={self.config.block_size}")
        x = self._embed(idx, pos)  # (B, T, C)
        for block in self.transformer.h:
            x = block(x, cache_pos=pos)
        return self.lm_head(self.transformer.ln_f(x))

    def _embed(self, idx: Tensor, start: int) -> Tensor:
        """Token ids (B, T) at positions start..start+T-1 -> embeddings (B, T, C), with learned positions added
        (rotary positions act inside attention instead)."""
        x = self.transformer.wte(idx)
        if "wpe" in self.transformer:
            x = x + self.transformer.wpe(tl.arange(start, start + idx.shape[1], dtype=tl.int64, device=idx.device))
        return self.transformer.drop(x)

    def _check_idx(self, idx: Tensor) -> tuple[int, int]:
        if not isinstance(idx, Tensor) or idx.ndim != 2 or idx.dtype.kind not in "iu":
            got = f"{idx.dtype} of shape {idx.shape}" if isinstance(idx, Tensor) else type(idx).__name__
            raise TypeError(f"GPT: expected token ids as an integer tensor (B, T), got {got}")
        return idx.shape

    def _next_tokens(self, idx: Tensor, max_new_tokens: int, sample, use_cache: bool) -> Iterator[Tensor]:
        """Without the cache, each token reads the last block_size tokens again (as nanoGPT). With it,
        each token costs one position until the cache holds block_size; then the cache is rebuilt
        from the last ``block_size // 2`` tokens (their positions shift) in one pass. So the model sees
        between half a block and a whole block of context, and the rebuilds cost one pass every
        block_size / 2 tokens (rebuilding for every token would cost as much as no cache at all)."""
        self._check_idx(idx)
        block_size = self.config.block_size
        context = idx[:, -block_size:]  # at most block_size tokens: what the model sees
        cached = 0  # how many positions of ``context`` the cache holds
        for _ in range(max_new_tokens):
            with tl.no_grad():
                if not use_cache:
                    logits, _ = self(context)
                elif cached == 0:  # (re)build the cache from the whole context, positions from 0
                    logits = self.forward_step(context, 0)
                else:  # only the newest token is new
                    logits = self.forward_step(context[:, -1:], cached)
                cached = context.shape[1]
                token = sample(logits[:, -1, :])  # (B, 1)
                context = tl.cat([context, token], dim=1)
                if context.shape[1] > block_size:  # crop; the positions shift, so a cache must be rebuilt
                    keep = max(block_size // 2, 1) if use_cache else block_size
                    context, cached = context[:, -keep:], 0
            yield token
