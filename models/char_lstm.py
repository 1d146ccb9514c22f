"""A character-level LSTM language model, after Karpathy's char-rnn: embed each character, run a
stacked LSTM over the sequence, and map every hidden state to next-character logits.

Generation carries the LSTM's (h, c) state from token to token, so every new token costs one
time step, however long the text so far.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from tensorlite.models.config import ModelConfig, check_dropout
from tensorlite.models.language_model import LanguageModel

import tensorlite as tl
from tensorlite import nn
from tensorlite.nn import functional as F
from tensorlite.tensor import Tensor

State = tuple[Tensor, Tensor]  # the LSTM's (h, c), each (num_layers, B, hidden_size)


@dataclass
class CharLSTMConfig(ModelConfig):
    vocab_size: int = 65
    n_embd: int = 128  # the character embedding's size
    hidden_size: int = 256
    num_layers: int = 2
    dropout: float = 0.0  # between LSTM layers and before the head
    block_size: int = 128  # the length of the training windows (an LSTM itself has no context limit)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_embd", "hidden_size", "num_layers", "block_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                raise ValueError(f"CharLSTMConfig: {name} must be a positive integer, got {getattr(self, name)!r}")
        check_dropout("CharLSTMConfig", self.dropout)


    def state_dict_numel(self) -> int:
        h, inputs = self.hidden_size, [self.n_embd] + [self.hidden_size] * (self.num_layers - 1)
        lstm = sum(4 * h * (n_in + h) + 8 * h for n_in in inputs)
        return self.vocab_size * self.n_embd + lstm + (h + 1) * self.vocab_size


class CharLSTM(LanguageModel):
    """Token ids (B, T) -> Embedding -> LSTM (batch-first) -> Linear -> logits (B, T, vocab_size)."""


    def __init__(self, config: CharLSTMConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.n_embd)
        self.lstm = nn.LSTM(config.n_embd, config.hidden_size, config.num_layers, batch_first=True,
                            dropout=config.dropout if config.num_layers > 1 else 0.0)
        self.drop = nn.Dropout(config.dropout)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(self, idx: Tensor, targets: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """idx (B, T) int64 -> (logits (B, T, vocab_size), mean cross entropy against targets (B, T) or None)."""
        logits, _ = self.logits_and_state(idx)
        if targets is None:
            return logits, None
        B, T, V = logits.shape
        if tuple(targets.shape) != (B, T):
            raise ValueError(f"CharLSTM: targets must have the shape of idx {(B, T)}, got {tuple(targets.shape)}")
        return logits, F.cross_entropy(logits.view(B * T, V), targets.view(B * T), ignore_index=-1)

    def logits_and_state(self, idx: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """Logits (B, T, vocab_size) of idx (B, T) read after ``state`` (None: zeros), and the state after it."""
        if not isinstance(idx, Tensor) or idx.ndim != 2 or idx.dtype.kind not in "iu":
            got = f"{idx.dtype} of shape {tuple(idx.shape)}" if isinstance(idx, Tensor) else type(idx).__name__
            raise TypeError(f"CharLSTM: expected token ids as an integer tensor (B, T), got {got}")
        x, state = self.lstm(self.embedding(idx), state)  # (B, T, hidden_size)
        return self.lm_head(self.drop(x)), state

    def _next_tokens(self, idx: Tensor, max_new_tokens: int, sample, use_cache: bool) -> Iterator[Tensor]:
        """With the cache the LSTM state is carried over, so each token costs one step."""
        context, new, state = idx, idx, None  # ``new``: the tokens the state has not read yet
        for _ in range(max_new_tokens):
            with tl.no_grad():
                if use_cache:
                    logits, state = self.logits_and_state(new, state)
                else:
                    logits, _ = self.logits_and_state(context)
                new = sample(logits[:, -1, :])  # (B, 1)
                context = tl.cat([context, new], dim=1) if not use_cache else context
            yield new
