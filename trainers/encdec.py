"""The encoder-decoder (T5-style) model, trained with span corruption."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainers.accounting import encdec_lengths
from trainers.blocks import (
    Block,
    CrossBlock,
    Embeddings,
    LayerNorm,
    ModelConfig,
    count_params,
    init_weights,
)


class EncoderDecoder(nn.Module):
    """T5's layout with GPT's parts: a bidirectional encoder, a causal decoder that attends to
    the encoder's output, one token table shared by both stacks and the output projection.
    `n_layer` blocks in each stack."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        enc_len, dec_len = encdec_lengths(config.seq_len)
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.enc_embed = Embeddings(self.wte, enc_len, config.dropout)
        self.encoder = nn.ModuleList(
            Block(config.n_embd, config.n_head, config.dropout, causal=False)
            for _ in range(config.n_layer)
        )
        self.ln_enc = LayerNorm(config.n_embd)
        self.dec_embed = Embeddings(self.wte, dec_len, config.dropout)
        self.decoder = nn.ModuleList(
            CrossBlock(config.n_embd, config.n_head, config.dropout) for _ in range(config.n_layer)
        )
        self.ln_f = LayerNorm(config.n_embd)
        init_weights(self, config.n_layer)

    count_params = count_params

    def encode(self, idx: torch.Tensor, keys: torch.Tensor | None = None) -> torch.Tensor:
        """Encoder output (B, S, C) of the (corrupted) input `idx` (B, S); `keys` marks the
        real positions of a padded batch."""
        x = self.enc_embed(idx)
        for block in self.encoder:
            x = block(x, keys)
        return self.ln_enc(x)

    def decode(
        self, idx: torch.Tensor, memory: torch.Tensor, memory_keys: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits (B, T, vocab) of the next target token after each position of `idx` (B, T)."""
        x = self.dec_embed(idx)
        for block in self.decoder:
            x = block(x, memory, memory_keys)
        return F.linear(self.ln_f(x), self.wte.weight)

    def forward(
        self,
        inputs: torch.Tensor,
        decoder_inputs: torch.Tensor,
        keys: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits of the targets given the encoder's input and the shifted-right targets."""
        return self.decode(decoder_inputs, self.encode(inputs, keys), keys)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Span corruption: mean cross-entropy over every target token (sentinels, spans, end)."""
        logits = self(batch["inputs"], batch["decoder_inputs"])
        return F.cross_entropy(logits.flatten(0, 1), batch["targets"].flatten())
