"""What the character language models (``GPT``, ``CharLSTM``) share: nanoGPT's optimizer groups (and
Muon for the hidden matrices, where a model names them), the ``generate`` API, and drawing the next token
on the device."""

from __future__ import annotations

import math
from collections.abc import Iterator

import tensorlite as tl
from tensorlite import nn
from tensorlite.tensor import Tensor


def sample_next(logits: Tensor, temperature: float, top_k: int | None) -> Tensor:
    """One token id per row of logits (B, V), drawn on the device: (B, 1) int64."""
    backend, xp = logits.device.backend, logits.device.backend.xp
    with backend.scope:
        x = logits._data / temperature
        V = x.shape[-1]
        if top_k is not None and top_k < V:
            kth = xp.partition(x, V - top_k, axis=-1)[:, V - top_k:V - top_k + 1]  # each row's k-th largest logit
            x = xp.where(x < kth, -math.inf, x)
        cdf = xp.cumsum(xp.exp(x - x.max(axis=-1, keepdims=True)), axis=-1)  # unnormalised (B, V)
        u = backend.uniform((x.shape[0], 1), cdf.dtype) * cdf[:, -1:]  # uniform in [0, total)
        ids = xp.minimum((cdf <= u).sum(axis=-1, keepdims=True), V - 1).astype(tl.int64)  # first cdf > u
    return tl.as_tensor(ids, device=logits.device)


class LanguageModel(nn.Module):
    """Base of the models that map token ids (B, T) to next-token logits (B, T, V).

    Subclasses define ``forward(idx, targets=None) -> (logits, loss)`` and ``_next_tokens``,
    which yields the sampled tokens (B, 1) one step at a time.
    """

    def configure_optimizers(self, weight_decay: float, learning_rate: float, betas: tuple[float, float], *,
                             muon_lr: float | None = None, muon_momentum: float = 0.95,
                             muon_weight_decay: float = 0.0, muon_ns_steps: int = 5) -> tl.optim.Optimizer:
        """AdamW that decays the matrices (weights, embeddings) but not biases and norm gains, as nanoGPT.

        With ``muon_lr``, the hidden matrices (``hidden_matrices()``) go to Muon instead (Nesterov, rate
        ``muon_lr``, ``muon_ns_steps`` Newton-Schulz steps, Keller Jordan's scaling by sqrt(max(1, rows / cols))),
        the rest to that AdamW, the two combined as one optimizer (AdamW's groups first, then Muon's).
        """
        params = [p for p in self.parameters() if p.requires_grad]
        matrices = [p for p in self.hidden_matrices() if p.requires_grad] if muon_lr is not None else []
        rest = [p for p in params if all(p is not m for m in matrices)]
        groups = [
            {"params": [p for p in rest if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in rest if p.ndim < 2], "weight_decay": 0.0},
        ]
        adamw = tl.optim.AdamW(groups, lr=learning_rate, betas=betas)
        if muon_lr is None:
            return adamw
        muon = tl.optim.Muon(matrices, lr=muon_lr, momentum=muon_momentum, weight_decay=muon_weight_decay,
                            ns_steps=muon_ns_steps)
        return tl.optim.CombinedOptimizer(adamw, muon)

    def hidden_matrices(self) -> list[Tensor]:
        """The 2-D weights of the hidden layers, which Muon may update (not the embeddings, not the head)."""
        raise NotImplementedError(f"{type(self).__name__}: names no hidden matrices for Muon; train it with AdamW")

    def generate(self, idx: Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 use_cache: bool = True) -> Tensor:
        """idx (B, T) followed by ``max_new_tokens`` sampled tokens: (B, T + max_new_tokens).

        Call ``model.eval()`` first (dropout). See ``generate_tokens`` for the sampling options.
        """
        new = list(self._sample_tokens(idx, max_new_tokens, temperature, top_k, use_cache))
        return tl.cat([idx, *new], dim=1) if new else idx

    def generate_tokens(self, idx: Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                        use_cache: bool = True) -> Iterator[int]:
        """Yield each new token id of the sequence that continues idx (1, T) as soon as it is sampled.

        ``temperature`` divides the logits (< 1: more confident); ``top_k`` keeps only the k most
        likely tokens. Samples come from the device's generator (``tl.manual_seed``). With
        ``use_cache`` each token costs one step (a key/value cache, a carried hidden state); without
        it the whole context is read again for every token (for checking: the same tokens, except
        where a model's ``_next_tokens`` says otherwise, as GPT's past its block_size).
        """
        name = type(self).__name__
        if idx.ndim != 2 or idx.shape[0] != 1:
            raise ValueError(f"{name}.generate_tokens: expected one sequence idx of shape (1, T), got "
                             f"{tuple(idx.shape)}; use generate for a batch")
        for token in self._sample_tokens(idx, max_new_tokens, temperature, top_k, use_cache):
            yield token.item()  # the one host read per step

    def _sample_tokens(self, idx: Tensor, max_new_tokens: int, temperature: float, top_k: int | None,
                       use_cache: bool) -> Iterator[Tensor]:
        name = type(self).__name__
        if temperature <= 0:
            raise ValueError(f"{name}.generate: temperature must be positive, got {temperature}")
        if top_k is not None and top_k < 1:
            raise ValueError(f"{name}.generate: top_k must be a positive integer or None, got {top_k}")
        return self._next_tokens(idx, max_new_tokens, lambda logits: sample_next(logits, temperature, top_k),
                                 use_cache)

    def _next_tokens(self, idx: Tensor, max_new_tokens: int, sample, use_cache: bool) -> Iterator[Tensor]:
        """Yield the next tokens (B, 1); ``sample`` maps last-position logits (B, V) to tokens (B, 1)."""
        raise NotImplementedError
