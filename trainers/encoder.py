"""The encoder-only (BERT-style) model, trained with the masked LM objective."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainers.blocks import (
    IGNORE,
    Block,
    Embeddings,
    LayerNorm,
    ModelConfig,
    count_params,
    init_weights,
)


class Encoder(nn.Module):
    """BERT: token and position embeddings, bidirectional blocks, a tied output projection."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.embed = Embeddings(self.wte, config.seq_len, config.dropout)
        self.blocks = nn.ModuleList(
            Block(config.n_embd, config.n_head, config.dropout, causal=False)
            for _ in range(config.n_layer)
        )
        self.ln_f = LayerNorm(config.n_embd)
        init_weights(self, config.n_layer)

    count_params = count_params

    def hidden(self, idx: torch.Tensor, keys: torch.Tensor | None = None) -> torch.Tensor:
        """Final hidden states (B, T, C); every position sees the whole sequence (the positions
        `keys` marks, when the batch is padded)."""
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x, keys)
        return self.ln_f(x)

    def forward(self, idx: torch.Tensor, keys: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, T, vocab) of the original token at each position of `idx` (B, T)."""
        return F.linear(self.hidden(idx, keys), self.wte.weight)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Masked LM: cross-entropy on the selected positions only (the others are IGNORE); a
        batch with none selected (possible for tiny batches) has loss 0, not NaN."""
        targets = batch["targets"]
        selected = targets != IGNORE
        h = self.hidden(batch["inputs"])[selected]  # (n_selected, C): project only these
        logits = F.linear(h, self.wte.weight)
        total = F.cross_entropy(logits, targets[selected], reduction="sum")
        return total / max(1, len(h))
