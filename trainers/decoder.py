"""The decoder-only (GPT-style) model, trained with the causal LM objective."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainers.blocks import Block, Embeddings, LayerNorm, ModelConfig, count_params, init_weights


class Decoder(nn.Module):
    """GPT: token and position embeddings, causal blocks, a tied output projection."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.embed = Embeddings(self.wte, config.seq_len, config.dropout)
        self.blocks = nn.ModuleList(
            Block(config.n_embd, config.n_head, config.dropout, causal=True)
            for _ in range(config.n_layer)
        )
        self.ln_f = LayerNorm(config.n_embd)
        init_weights(self, config.n_layer)

    count_params = count_params

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, vocab) of the token after each position of `idx` (B, T)."""
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x)
        return F.linear(self.ln_f(x), self.wte.weight)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Causal LM: mean cross-entropy of each next token given the ones before it."""
        logits = self(batch["inputs"])
        return F.cross_entropy(logits.flatten(0, 1), batch["targets"].flatten())
