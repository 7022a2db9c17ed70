"""Parameter and FLOP accounting from a shape alone, without building the model (no torch)."""

from __future__ import annotations


def block_params(n_embd: int) -> int:
    """Parameters of one transformer block: 12·d² weights plus 13·d biases and norm parameters."""
    return 12 * n_embd * n_embd + 13 * n_embd


def decoder_params(n_layer: int, n_embd: int) -> int:
    """Non-embedding parameters N of a decoder: its blocks and the final norm."""
    return n_layer * block_params(n_embd) + 2 * n_embd


def decoder_total_params(n_layer: int, n_embd: int, vocab_size: int, seq_len: int) -> int:
    """All parameters of a decoder: N plus token and position embeddings (lm_head is tied)."""
    return decoder_params(n_layer, n_embd) + (vocab_size + seq_len) * n_embd


def decoder_flops_per_token(n_layer: int, n_embd: int, vocab_size: int, seq_len: int) -> int:
    """Training FLOPs per token: 6 per weight (forward 2, backward 4) plus attention.

    The dense part counts the blocks and the tied output projection; the attention part,
    12·L·T·d, is the score and value products (PaLM, Chowdhery et al. 2022, appendix B).
    Embedding lookups cost no multiply-adds.
    """
    dense = 6 * (decoder_params(n_layer, n_embd) + vocab_size * n_embd)
    return dense + 12 * n_layer * seq_len * n_embd
