"""The decoder-only (GPT-style) model, trained with the causal LM objective."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from trainers.blocks import ModelConfig, TransformerLM


class Decoder(TransformerLM):
    """GPT: token and position embeddings, causal blocks, a tied output projection. Its logits
    at a position are those of the token after it."""

    def __init__(self, config: ModelConfig):
        super().__init__(config, causal=True)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Causal LM: mean cross-entropy of each next token given the ones before it."""
        logits = self(batch["inputs"])
        return F.cross_entropy(logits.flatten(0, 1), batch["targets"].flatten())
