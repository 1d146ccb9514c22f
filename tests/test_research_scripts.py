"""Research-script patterns, written the way small public codebases write them (our own code, in
their style), run on tensorlite: a GPT written the nanoGPT way with top-k / multinomial sampling, an
"infinite" loader over a RandomSampler with replacement, an evaluation under inference_mode, and a
makemore-style MLP whose context comes from torch.roll. Each model is written once against ``lib``,
so the parity tests run the same code with PyTorch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from oracle import torch

import tensorlite as tl


@dataclass
class Config:
    vocab_size: int = 11
    block_size: int = 8
    n_layer: int = 2
    n_head: int = 2
    n_embd: int = 16
    bias: bool = True


def gpt(lib: Any, config: Config) -> Any:
    """A nanoGPT-shaped model: LayerNorm with optional bias, fused qkv, causal SDPA, GELU MLP, tied head."""
    nn, F = lib.nn, lib.nn.functional

    class LayerNorm(nn.Module):
        def __init__(self, ndim: int, bias: bool) -> None:
            super().__init__()
            self.weight = nn.Parameter(lib.ones(ndim))
            self.bias = nn.Parameter(lib.zeros(ndim)) if bias else None

        def forward(self, x):
            return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln_1, self.ln_2 = LayerNorm(config.n_embd, config.bias), LayerNorm(config.n_embd, config.bias)
            self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
            self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
            self.mlp = nn.Sequential(nn.Linear(config.n_embd, 4 * config.n_embd), nn.GELU(),
                                     nn.Linear(4 * config.n_embd, config.n_embd))

        def attend(self, x):
            B, T, C = x.size()
            q, k, v = self.c_attn(x).split(config.n_embd, dim=2)
            q, k, v = (t.view(B, T, config.n_head, C // config.n_head).transpose(1, 2) for t in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=True)
            return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))

        def forward(self, x):
            x = x + self.attend(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class GPT(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = nn.ModuleDict(dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd), wpe=nn.Embedding(config.block_size, config.n_embd),
                h=nn.ModuleList([Block() for _ in range(config.n_layer)]), ln_f=LayerNorm(config.n_embd, config.bias)))
            self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
            self.transformer.wte.weight = self.lm_head.weight
            self.apply(self._init_weights)

        def _init_weights(self, module):
            if isinstance(module, (nn.Linear, nn.Embedding)):
                lib.nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if isinstance(module, nn.Linear) and module.bias is not None:
                    lib.nn.init.zeros_(module.bias)

        def forward(self, idx, targets=None):
            b, t = idx.size()
            pos = lib.arange(0, t, dtype=lib.long, device=idx.device)
            x = self.transformer.wte(idx) + self.transformer.wpe(pos)
            for block in self.transformer.h:
                x = block(x)
            x = self.transformer.ln_f(x)
            if targets is None:
                return self.lm_head(x[:, [-1], :]), None
            logits = self.lm_head(x)
            return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)

        def configure_optimizers(self, weight_decay: float, learning_rate: float):
            params = [p for p in self.parameters() if p.requires_grad]
            groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
                      {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
            return lib.optim.AdamW(groups, lr=learning_rate, betas=(0.9, 0.95))

        @lib.no_grad()
        def generate(self, idx, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                     do_sample: bool = True):
            for _ in range(max_new_tokens):
                idx_cond = idx if idx.size(1) <= config.block_size else idx[:, -config.block_size:]
                logits, _ = self(idx_cond)
                logits = logits[:, -1, :] / temperature
                if top_k is not None:
                    v, _ = lib.topk(logits, min(top_k, logits.size(-1)))
                    logits[logits < v[:, [-1]]] = -float("Inf")
                probs = F.softmax(logits, dim=-1)
                if do_sample:
                    idx_next = lib.multinomial(probs, num_samples=1)
                else:
                    _, idx_next = lib.topk(probs, k=1, dim=-1)
                idx = lib.cat((idx, idx_next), dim=1)
            return idx

    return GPT()


def counting_batch(batch: int = 8, length: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Sequences that count up modulo 11 from random starts: the next token is always the last plus one."""
    starts = np.random.default_rng(0).integers(0, 11, size=(batch, 1))
    seq = (starts + np.arange(length + 1)) % 11
    return np.ascontiguousarray(seq[:, :-1]), np.ascontiguousarray(seq[:, 1:])


def test_nanogpt_style_gpt_trains_and_samples() -> None:
    tl.manual_seed(0)
    model = gpt(tl, Config())
    optimizer = model.configure_optimizers(weight_decay=0.1, learning_rate=1e-2)
    x, y = (tl.tensor(a) for a in counting_batch())
    losses = []
    for _ in range(60):
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        tl.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses[::10]
    model.eval()
    start = tl.tensor([[3], [7]])
    greedy = model.generate(start, 12, do_sample=False)  # longer than block_size: the context is cropped
    assert greedy.shape == (2, 13) and greedy.dtype == tl.int64
    assert greedy.tolist() == [[(s + i) % 11 for i in range(13)] for s in (3, 7)]  # it learned to count
    assert model.generate(start, 12, top_k=1).tolist() == greedy.tolist()  # top-1 sampling is greedy
    tl.manual_seed(5)
    sampled = model.generate(start, 6, temperature=2.0, top_k=4)
    tl.manual_seed(5)
    assert model.generate(start, 6, temperature=2.0, top_k=4).tolist() == sampled.tolist()


@pytest.mark.parity
def test_nanogpt_style_gpt_matches_pytorch_logits_and_greedy_generation() -> None:
    torch.manual_seed(0)
    theirs = gpt(torch, Config(bias=False))
    ours = gpt(tl, Config(bias=False))
    ours.load_state_dict({k: tl.tensor(v.detach().numpy()) for k, v in theirs.state_dict().items()})
    x, y = counting_batch()
    logits_t, loss_t = theirs(torch.from_numpy(x), torch.from_numpy(y))
    logits_o, loss_o = ours(tl.tensor(x), tl.tensor(y))
    np.testing.assert_allclose(logits_o.detach().numpy(), logits_t.detach().numpy(), rtol=1e-4, atol=1e-5)
    assert math.isclose(loss_o.item(), loss_t.item(), rel_tol=1e-5)
    start = [[3], [7]]
    for top_k in (None, 3):
        expected = theirs.generate(torch.tensor(start), 10, top_k=top_k, do_sample=False).tolist()
        assert ours.generate(tl.tensor(start), 10, top_k=top_k, do_sample=False).tolist() == expected


class Words:
    """A makemore-style dataset read one sample at a time: (x, y) with y = -1 past the word's end."""

    def __init__(self, words: list[str], lib: Any) -> None:
        self.words, self.lib = words, lib
        self.stoi = {ch: i + 1 for i, ch in enumerate(sorted(set("".join(words))))}
        self.length = max(len(w) for w in words) + 1

    def __len__(self) -> int:
        return len(self.words)

    def __getitem__(self, idx: int) -> tuple:
        ix = self.lib.tensor([self.stoi[c] for c in self.words[idx]], dtype=self.lib.long)
        x = self.lib.zeros(self.length, dtype=self.lib.long)
        y = self.lib.zeros(self.length, dtype=self.lib.long)
        x[1:1 + len(ix)] = ix
        y[:len(ix)] = ix
        y[len(ix) + 1:] = -1
        return x, y


class InfiniteLoader:
    """The makemore idiom: a RandomSampler with replacement and a huge num_samples, read with next()."""

    def __init__(self, dataset: Any, **kwargs: Any) -> None:
        sampler = tl.utils.data.RandomSampler(dataset, replacement=True, num_samples=int(1e10))
        self.loader = tl.utils.data.DataLoader(dataset, sampler=sampler, **kwargs)
        self.batches = iter(self.loader)

    def next(self) -> Any:
        try:
            return next(self.batches)
        except StopIteration:
            self.batches = iter(self.loader)
            return next(self.batches)


def mlp_model(vocab: int, block: int) -> tl.nn.Module:
    """makemore's MLP idea: embed the previous ``block`` tokens by rolling the index right, one step at a time."""

    class MLP(tl.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.wte = tl.nn.Embedding(vocab + 1, 8)
            self.mlp = tl.nn.Sequential(tl.nn.Linear(block * 8, 32), tl.nn.Tanh(), tl.nn.Linear(32, vocab))

        def forward(self, idx, targets=None):
            embs = []
            for _ in range(block):
                embs.append(self.wte(idx))
                idx = tl.roll(idx, 1, 1)
                idx[:, 0] = vocab  # the blank before the start
            logits = self.mlp(tl.cat(embs, -1))
            loss = None if targets is None else tl.nn.functional.cross_entropy(
                logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
            return logits, loss

    return MLP()


@tl.inference_mode()
def evaluate(model: tl.nn.Module, dataset: Words, batch_size: int, max_batches: int) -> float:
    model.eval()
    losses = []
    for i, (x, y) in enumerate(tl.utils.data.DataLoader(dataset, shuffle=True, batch_size=batch_size, num_workers=0)):
        losses.append(model(x, y)[1].item())
        if i >= max_batches:
            break
    model.train()
    return tl.tensor(losses).mean().item()


def test_makemore_style_training_with_an_infinite_loader() -> None:
    tl.manual_seed(0)
    words = ["anna", "bob", "cecil", "dave", "emma", "fred", "gina", "hank", "ivy", "jo"] * 5
    dataset = Words(words, tl)
    vocab = len(dataset.stoi) + 1
    model = mlp_model(vocab, dataset.length)
    optimizer = tl.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01, betas=(0.9, 0.99), eps=1e-8)
    loader = InfiniteLoader(dataset, batch_size=16, pin_memory=True, num_workers=0)
    before = evaluate(model, dataset, batch_size=25, max_batches=1)
    assert tl.is_grad_enabled() and model.training  # evaluate restored both
    for _ in range(80):
        x, y = [t.to("cpu") for t in loader.next()]
        assert x.shape == (16, dataset.length)
        _, loss = model(x, y)
        model.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    after = evaluate(model, dataset, batch_size=25, max_batches=1)
    assert after < 0.6 * before, (before, after)
    assert len(loader.loader) == math.ceil(1e10 / 16)


@pytest.mark.parity
def test_roll_context_matches_pytorch() -> None:
    """The rolled contexts the MLP embeds are PyTorch's."""
    idx = np.array([[0, 4, 2, 9], [0, 1, 1, 3]])
    ours, theirs = tl.tensor(idx), torch.tensor(idx)
    for _ in range(3):
        ours, theirs = tl.roll(ours, 1, 1), torch.roll(theirs, 1, 1)
        ours[:, 0] = 12
        theirs[:, 0] = 12
        assert ours.tolist() == theirs.tolist()
