"""The decoder-only (GPT-style) language model trained with the causal LM objective."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from trainers.accounting import (
    decoder_flops_per_token,
    decoder_params,
    decoder_total_params,
)
from trainers.blocks import Block, LayerNorm, init_weights


@dataclass(frozen=True)
class DecoderConfig:
    """Shape of a decoder; the accounting fields are derived once, in `__post_init__`."""

    vocab_size: int
    seq_len: int
    n_layer: int
    n_embd: int
    n_head: int
    dropout: float = 0.0  # pre-training at these scales sees each token about once: no dropout
    n_params: int = field(init=False)  # non-embedding parameters N, the x-axis of scaling laws
    total_params: int = field(init=False)
    flops_per_token: int = field(init=False)

    def __post_init__(self):
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        shape = (self.n_layer, self.n_embd)
        object.__setattr__(self, "n_params", decoder_params(*shape))
        object.__setattr__(
            self, "total_params", decoder_total_params(*shape, self.vocab_size, self.seq_len)
        )
        object.__setattr__(
            self, "flops_per_token", decoder_flops_per_token(*shape, self.vocab_size, self.seq_len)
        )


class Decoder(nn.Module):
    """GPT: token and position embeddings, causal blocks, a tied output projection."""

    def __init__(self, config: DecoderConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.seq_len, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            Block(config.n_embd, config.n_head, config.dropout, causal=True)
            for _ in range(config.n_layer)
        )
        self.ln_f = LayerNorm(config.n_embd)
        init_weights(self, config.n_layer)

    def count_params(self, non_embedding: bool = True) -> int:
        """Measured parameter count; without embeddings it is N of the scaling laws."""
        total = sum(p.numel() for p in self.parameters())
        if non_embedding:
            total -= self.wte.weight.numel() + self.wpe.weight.numel()
        return total

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits for every position of `idx` (B, T)."""
        T = idx.shape[1]
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))  # (B, T, C)
        for block in self.blocks:
            x = block(x)
        return F.linear(self.ln_f(x), self.wte.weight)  # (B, T, vocab)

    def loss(self, batch: torch.Tensor) -> torch.Tensor:
        """Causal LM loss: mean cross-entropy of each next token given the ones before it."""
        inputs, targets = batch[:, :-1], batch[:, 1:]
        logits = self(inputs)
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
