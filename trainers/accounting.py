"""Parameter and FLOP accounting from a shape alone, without building the model (no torch).

N is the non-embedding parameter count (Kaplan et al. 2020): every weight, bias and norm
parameter except the token and position embeddings. FLOPs count a multiply-add as 2, a
training step as 3 forward passes (forward 2, backward 4 per weight and token), and
attention as 12·T·d per token and layer (the score and value products; PaLM, Chowdhery et
al. 2022, appendix B). FLOPs per token are per token of the budget, i.e. per token of text
the model reads, so that compute C = flops_per_token × tokens for every architecture.
"""

from __future__ import annotations

from dataclasses import dataclass

MLM_PROBABILITY = 0.15  # BERT: share of (non-special) tokens selected for prediction
NOISE_DENSITY = 0.15  # T5: share of tokens corrupted ...
MEAN_SPAN_LENGTH = 3.0  # ... in spans of this mean length
N_SENTINELS = 100  # T5's <extra_id_0> ... <extra_id_99>


def block_params(n_embd: int) -> int:
    """One self-attention block: qkv and output projections, a 4x MLP, two norms (12·d²+13·d)."""
    return 12 * n_embd * n_embd + 13 * n_embd


def cross_block_params(n_embd: int) -> int:
    """One decoder block of an encoder-decoder: a self-attention block plus cross-attention
    (q, k, v, output projections and a norm: 4·d² + 6·d), so 16·d² + 19·d."""
    return block_params(n_embd) + 4 * n_embd * n_embd + 6 * n_embd


def mlm_head_params(n_embd: int) -> int:
    """BERT's masked-LM head before the tied projection: dense, GELU, LayerNorm (d² + 3·d)."""
    return n_embd * n_embd + 3 * n_embd


def span_counts(seq_len: int) -> tuple[int, int]:
    """(noise tokens, noise spans) that span corruption places in `seq_len` tokens (as T5)."""
    n_noise = min(max(round(seq_len * NOISE_DENSITY), 1), seq_len - 1)
    n_spans = max(1, round(n_noise / MEAN_SPAN_LENGTH))
    return n_noise, n_spans


def max_encdec_seq_len() -> int:
    """The longest sequence span corruption can cover with its sentinels (one per span)."""
    seq_len = 2
    while span_counts(seq_len + 1)[1] <= N_SENTINELS:
        seq_len += 1
    return seq_len


def encdec_lengths(seq_len: int) -> tuple[int, int]:
    """(encoder, decoder) sequence lengths of span corruption on `seq_len` tokens of text.

    The encoder reads the kept tokens, one sentinel per span and end-of-sequence; the decoder
    reads each sentinel followed by the span it hides, then end-of-sequence.
    """
    n_noise, n_spans = span_counts(seq_len)
    return seq_len - n_noise + n_spans + 1, n_noise + n_spans + 1


@dataclass(frozen=True)
class Accounting:
    """What a model of one shape costs and holds."""

    n_params: int  # non-embedding parameters N, the x-axis of scaling laws
    total_params: int  # N plus embeddings (output projections are tied to the token embedding)
    flops_per_token: int  # training FLOPs per budget token
    scored_fraction: float  # share of budget tokens the loss is computed on


def _stack(n_layer: int, n_embd: int) -> int:
    return n_layer * block_params(n_embd) + 2 * n_embd  # blocks and the final norm


def decoder_accounting(n_layer: int, n_embd: int, vocab_size: int, seq_len: int) -> Accounting:
    """A decoder: every position predicts the next token, so the output projection runs on all
    T positions."""
    L, d, V, T = n_layer, n_embd, vocab_size, seq_len
    stack = _stack(L, d)
    flops = 6 * (stack + V * d) + 12 * L * T * d
    return Accounting(stack, stack + (V + T) * d, flops, 1.0)


def encoder_accounting(n_layer: int, n_embd: int, vocab_size: int, seq_len: int) -> Accounting:
    """An encoder: the masked-LM head and the output projection run only on the selected
    positions."""
    L, d, V, T = n_layer, n_embd, vocab_size, seq_len
    stack, head = _stack(L, d), mlm_head_params(d)
    flops = 6 * stack + 12 * L * T * d + round(6 * (head + V * d) * MLM_PROBABILITY)
    return Accounting(stack + head, stack + head + (V + T) * d, flops, MLM_PROBABILITY)


def encdec_accounting(n_layer: int, n_embd: int, vocab_size: int, seq_len: int) -> Accounting:
    """An encoder-decoder: the encoder on the corrupted input, the decoder on the targets."""
    L, d, V, T = n_layer, n_embd, vocab_size, seq_len
    stack = _stack(L, d)
    decoder = L * cross_block_params(d) + 2 * d
    n_params = stack + decoder
    enc_len, dec_len = encdec_lengths(T)
    cross_kv = L * (2 * d * d + 2 * d)  # cross-attention keys and values: on encoder outputs
    per_sequence = (
        enc_len * (6 * stack + 12 * L * enc_len * d)  # the encoder on its input
        + enc_len * 6 * cross_kv
        + dec_len * (6 * (decoder - cross_kv + V * d) + 12 * L * (dec_len + enc_len) * d)
    )
    # the shared token table and one position table per stack
    total = n_params + (V + enc_len + dec_len) * d
    return Accounting(n_params, total, round(per_sequence / T), dec_len / T)
