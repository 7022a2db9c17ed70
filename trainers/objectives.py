"""Pre-training objectives: windows of text tokens -> model inputs and targets.

Each objective takes `windows` (B, window) of token ids cut from the token stream and a numpy
generator, and returns the batch a model's `loss` reads. Everything is numpy until the end, so
the same code serves training and the fixed validation set (built with a fixed seed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from trainers.accounting import MLM_PROBABILITY, span_counts
from trainers.architectures import architecture as entry_of
from trainers.blocks import IGNORE
from trainers.tokenizers import Tokenizer

Batch = dict[str, torch.Tensor]


def _tensors(**arrays: np.ndarray) -> Batch:
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.int64)) for k, v in arrays.items()}


def causal_lm(windows: np.ndarray, tok: Tokenizer, rng: np.random.Generator) -> Batch:
    """Predict every next token: inputs are the window but its last token, targets shifted by 1."""
    return _tensors(inputs=windows[:, :-1], targets=windows[:, 1:])


def masked_lm(windows: np.ndarray, tok: Tokenizer, rng: np.random.Generator) -> Batch:
    """BERT's masking (as HF `DataCollatorForLanguageModeling`): each regular token is selected
    with probability 0.15; a selected token becomes <mask> with probability 0.8, a random
    regular token with 0.1, and stays with 0.1. Only selected positions carry a target."""
    regular = ~tok.is_special(
        windows
    )  # special tokens (<eos> between documents) are never selected
    selected = regular & (rng.random(windows.shape) < MLM_PROBABILITY)
    draw = rng.random(windows.shape)
    masked = selected & (draw < 0.8)
    randomized = selected & (draw >= 0.8) & (draw < 0.9)
    inputs = windows.copy()
    inputs[masked] = tok.mask_id
    inputs[randomized] = tok.regular_ids[
        rng.integers(0, len(tok.regular_ids), int(randomized.sum()))
    ]
    targets = np.where(selected, windows, IGNORE)
    return _tensors(inputs=inputs, targets=targets)


def _random_segmentation(n_items: int, n_segments: int, rng: np.random.Generator) -> np.ndarray:
    """Lengths of a uniformly random split of `n_items` into `n_segments` non-empty segments."""
    starts = np.zeros(n_items, dtype=bool)
    starts[1 + rng.choice(n_items - 1, n_segments - 1, replace=False)] = True
    return np.bincount(np.cumsum(starts), minlength=n_segments)


def random_spans_noise_mask(length: int, rng: np.random.Generator) -> np.ndarray:
    """Which of `length` tokens are noise, placed as T5's `random_spans_noise_mask`: exactly
    round(0.15·length) noise tokens in round(that / 3) spans of random lengths, alternating
    with kept spans, starting with a kept span and ending with a noise span."""
    n_noise, n_spans = span_counts(length)
    noise = _random_segmentation(n_noise, n_spans, rng)
    kept = _random_segmentation(length - n_noise, n_spans, rng)
    lengths = np.stack([kept, noise], axis=1).reshape(-1)
    return np.repeat(np.tile([False, True], n_spans), lengths)


def corrupt_spans(
    row: np.ndarray, noise: np.ndarray, tok: Tokenizer
) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) of one sequence: each noise span in the input becomes one sentinel;
    the target is each sentinel followed by the span it hides; both end with <eos>."""
    starts = noise & ~np.concatenate([[False], noise[:-1]])
    sentinels = tok.sentinel_ids[np.cumsum(starts) - 1]  # the i-th span gets <extra_id_i>
    inputs = np.where(starts, sentinels, row)[~noise | starts]
    targets = np.insert(row[noise], np.flatnonzero(starts[noise]), sentinels[starts])
    return np.append(inputs, tok.eos_id), np.append(targets, tok.eos_id)


def span_corruption(windows: np.ndarray, tok: Tokenizer, rng: np.random.Generator) -> Batch:
    """T5's span corruption (noise density 0.15, mean span 3). The decoder reads the targets
    shifted right behind <pad> (T5's decoder start token)."""
    pairs = [corrupt_spans(row, random_spans_noise_mask(len(row), rng), tok) for row in windows]
    inputs = np.stack([p[0] for p in pairs])
    targets = np.stack([p[1] for p in pairs])
    start = np.full((len(targets), 1), tok.pad_id)
    decoder_inputs = np.concatenate([start, targets[:, :-1]], axis=1)
    return _tensors(inputs=inputs, decoder_inputs=decoder_inputs, targets=targets)


@dataclass(frozen=True)
class Objective:
    """An objective and the window of text tokens it turns into one sequence."""

    name: str
    window: int
    make: Callable[[np.ndarray, Tokenizer, np.random.Generator], Batch]


def objective_for(architecture: str, seq_len: int) -> Objective:
    """The pre-training objective of an architecture at a sequence length (its registry entry
    names it); ValueError for a sequence the objective cannot cover."""
    entry = entry_of(architecture)
    why = entry.too_long(seq_len)
    if why:
        raise ValueError(f"{architecture} at seq_len={seq_len} {why}")
    return Objective(entry.objective, seq_len + entry.window_extra, entry.load("batches"))
