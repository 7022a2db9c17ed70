"""The encoder-only (BERT-style) model, trained with the masked LM objective."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from trainers.blocks import IGNORE, ModelConfig, TransformerLM


class Encoder(TransformerLM):
    """BERT: token and position embeddings, bidirectional blocks, a tied output projection.
    Every position sees the whole sequence; its logits are those of the original token there."""

    def __init__(self, config: ModelConfig):
        super().__init__(config, causal=False)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Masked LM: cross-entropy on the selected positions only (the others are IGNORE); a
        batch with none selected (possible for tiny batches) has loss 0, not NaN."""
        targets = batch["targets"]
        selected = targets != IGNORE
        h = self.hidden(batch["inputs"])[selected]  # (n_selected, C): project only these
        logits = F.linear(h, self.wte.weight)
        total = F.cross_entropy(logits, targets[selected], reduction="sum")
        return total / max(1, len(h))
