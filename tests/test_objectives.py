"""The three pre-training objectives: masking and span statistics, the sentinel round trip."""

from __future__ import annotations

import numpy as np
import pytest

from trainers.accounting import encdec_lengths, span_counts
from trainers.blocks import IGNORE
from trainers.objectives import (
    causal_lm,
    corrupt_spans,
    masked_lm,
    objective_for,
    random_spans_noise_mask,
    span_corruption,
)
from trainers.tokenizers import ByteTokenizer

TOK = ByteTokenizer()


def windows(rows: int, length: int, seed: int = 0) -> np.ndarray:
    """Random text tokens with an end-of-sequence token every 50 positions (document breaks)."""
    w = np.random.default_rng(seed).integers(0, 256, (rows, length))  # bytes
    w[:, ::50] = TOK.eos_id
    return w


def test_causal_lm_targets_are_the_next_tokens():
    w = windows(2, 9)
    batch = causal_lm(w, TOK, np.random.default_rng(0))
    assert batch["inputs"].tolist() == w[:, :-1].tolist()
    assert batch["targets"].tolist() == w[:, 1:].tolist()


def test_masking_statistics_match_bert():
    w = windows(2000, 128)
    batch = masked_lm(w, TOK, np.random.default_rng(1))
    inputs, targets = batch["inputs"].numpy(), batch["targets"].numpy()
    regular = w < 256
    selected = targets != IGNORE
    assert not (selected & ~regular).any()  # special tokens are never selected
    assert (targets[selected] == w[selected]).all()  # targets are the original tokens
    assert abs(selected.sum() / regular.sum() - 0.15) < 0.01
    masked = (inputs == TOK.mask_id) & selected
    kept = (inputs == w) & selected
    changed = selected & ~masked & ~kept
    n = selected.sum()
    assert abs(masked.sum() / n - 0.8) < 0.02
    # a random replacement equals the original 1 time in 256: "kept" absorbs those
    assert abs(changed.sum() / n - 0.1 * 255 / 256) < 0.02
    assert abs(kept.sum() / n - (0.1 + 0.1 / 256)) < 0.02
    assert (inputs[changed] < 256).all()  # random tokens are regular tokens
    assert (inputs[~selected] == w[~selected]).all()  # the rest is untouched


@pytest.mark.parametrize("length", [2, 7, 32, 128, 512, 2000])
def test_noise_mask_has_t5_counts_and_layout(length):
    rng = np.random.default_rng(length)
    n_noise, n_spans = span_counts(length)
    for _ in range(20):
        noise = random_spans_noise_mask(length, rng)
        assert noise.shape == (length,) and noise.sum() == n_noise
        starts = noise & ~np.concatenate([[False], noise[:-1]])
        assert starts.sum() == n_spans
        assert not noise[0] and noise[-1]  # a kept span first, a noise span last


def test_span_statistics_match_t5():
    rng = np.random.default_rng(0)
    masks = np.stack([random_spans_noise_mask(512, rng) for _ in range(500)])
    assert abs(masks.mean() - 0.15) < 0.005
    edges = np.diff(masks.astype(int), axis=1)
    n_spans = (edges == 1).sum()  # the first token is never noise, so every span has a rise
    assert abs(masks.sum() / n_spans - 3.0) < 0.1
    # span lengths vary (random segmentation), they are not all 3
    lengths = np.diff(np.flatnonzero(np.diff(np.pad(masks[0].astype(int), 1))))[::2]
    assert len(set(lengths.tolist())) > 1


def reconstruct(inputs: np.ndarray, targets: np.ndarray, tok=TOK) -> list[int]:
    """The original text from a corrupted input and its target: replace each sentinel."""
    sentinels = set(tok.sentinel_ids.tolist())
    spans, current = {}, None
    for t in targets[:-1]:
        if t in sentinels:
            current = spans.setdefault(int(t), [])
        else:
            current.append(int(t))
    out = []
    for t in inputs[:-1]:
        out += spans[int(t)] if t in sentinels else [int(t)]
    return out


def test_sentinel_round_trip_reconstructs_the_original():
    w = windows(200, 128, seed=3)
    batch = span_corruption(w, TOK, np.random.default_rng(4))
    enc_len, dec_len = encdec_lengths(128)
    assert batch["inputs"].shape == (200, enc_len)
    assert batch["targets"].shape == (200, dec_len)
    pairs = zip(batch["inputs"].numpy(), batch["targets"].numpy(), strict=True)
    for row, (inputs, targets) in zip(w, pairs, strict=True):
        assert inputs[-1] == TOK.eos_id and targets[-1] == TOK.eos_id
        assert targets[0] == TOK.sentinel_ids[0]  # the target starts with <extra_id_0>
        assert reconstruct(inputs, targets) == row.tolist()
    dec_in = batch["decoder_inputs"].numpy()
    assert (dec_in[:, 0] == TOK.pad_id).all()
    assert (dec_in[:, 1:] == batch["targets"].numpy()[:, :-1]).all()  # shifted right


def test_sentinels_are_numbered_in_order():
    row = np.arange(20)
    noise = np.zeros(20, dtype=bool)
    noise[[3, 4, 9, 15, 16, 17]] = True
    inputs, targets = corrupt_spans(row, noise, TOK)
    s = TOK.sentinel_ids[0]
    assert inputs.tolist() == [
        0,
        1,
        2,
        s,
        5,
        6,
        7,
        8,
        s + 1,
        10,
        11,
        12,
        13,
        14,
        s + 2,
        18,
        19,
        257,
    ]
    assert targets.tolist() == [s, 3, 4, s + 1, 9, s + 2, 15, 16, 17, 257]


def test_every_tokenizer_has_the_special_tokens():
    ids = {TOK.pad_id, TOK.eos_id, TOK.mask_id, *TOK.sentinel_ids.tolist()}
    assert len(ids) == 103 and min(ids) >= 256 and max(ids) < TOK.vocab_size
    assert TOK.vocab_size == 256 + 3 + 100


def test_encdec_refuses_more_spans_than_sentinels():
    with pytest.raises(ValueError, match="sentinel"):
        objective_for("encdec", 4096)


def test_span_corruption_with_a_bpe_tokenizer_round_trips_text():
    from trainers.corpora import load_documents
    from trainers.tokenizers import train_bpe

    documents = list(load_documents("builtin:kjv")[:200])
    tok = train_bpe(documents, 1000)
    assert tok.vocab_size == 1000 and tok.is_special(tok.sentinel_ids).all()
    ids = tok.encode(documents[0])[:256].astype(np.int64)
    windows = np.stack([ids[:128], ids[128:256]])
    batch = span_corruption(windows, tok, np.random.default_rng(0))
    pairs = zip(batch["inputs"].numpy(), batch["targets"].numpy(), strict=True)
    for row, (inputs, targets) in zip(windows, pairs, strict=True):
        assert reconstruct(inputs, targets, tok) == row.tolist()
    masked = masked_lm(windows, tok, np.random.default_rng(0))["inputs"].numpy()
    assert not tok.is_special(masked[masked != tok.mask_id]).any()
