"""The encoder-only (BERT-style) model, trained with the masked LM objective."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainers.blocks import IGNORE, LayerNorm, ModelConfig, TransformerLM, init_weights


class MLMHead(nn.Module):
    """BERT's masked-LM head: dense, GELU and LayerNorm between the final norm and the tied
    projection (as every transformers masked-LM class has it)."""

    def __init__(self, n_embd: int):
        super().__init__()
        self.dense = nn.Linear(n_embd, n_embd)
        self.ln = LayerNorm(n_embd)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.ln(F.gelu(self.dense(h)))


class Encoder(TransformerLM):
    """BERT: token and position embeddings, bidirectional blocks, the masked-LM head and a tied
    output projection. Every position sees the whole sequence; its logits are those of the
    original token there."""

    def __init__(self, config: ModelConfig):
        super().__init__(config, causal=False)
        self.head = MLMHead(config.n_embd)  # after the trunk: its initialisation is unchanged
        init_weights(self.head, config.n_layer)

    def project(self, h: torch.Tensor) -> torch.Tensor:
        return F.linear(self.head(h), self.wte.weight)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Masked LM: cross-entropy on the selected positions only (the others are IGNORE); a
        batch with none selected (possible for tiny batches) has loss 0, not NaN."""
        targets = batch["targets"]
        selected = targets != IGNORE
        h = self.hidden(batch["inputs"])[selected]  # (n_selected, C): project only these
        total = F.cross_entropy(self.project(h), targets[selected], reduction="sum")
        return total / max(1, len(h))
