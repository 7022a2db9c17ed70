"""Tokenizers: UTF-8 bytes plus the special tokens every architecture needs.

Every tokenizer puts its regular tokens at ids 0 .. n_regular-1 and the special tokens after
them: pad, end-of-sequence, mask, then the span-corruption sentinels <extra_id_0> ... (T5's
names). The objectives draw random replacement tokens from the regular range only.
"""

from __future__ import annotations

import numpy as np

from trainers.accounting import N_SENTINELS
from trainers.corpora import CorpusError


class ByteTokenizer:
    """UTF-8 bytes as tokens 0-255, then the special tokens."""

    n_regular = 256
    specials = ("<pad>", "<eos>", "<mask>", *(f"<extra_id_{i}>" for i in range(N_SENTINELS)))

    def __init__(self):
        self.pad_id, self.eos_id, self.mask_id = 256, 257, 258
        self.sentinel_id = 259  # <extra_id_i> is sentinel_id + i

    @property
    def vocab_size(self) -> int:
        """Regular plus special tokens."""
        return self.n_regular + len(self.specials)

    def encode(self, text: str) -> np.ndarray:
        """Token ids of `text`."""
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.uint16)

    def decode(self, ids) -> str:
        """Text of token ids; special tokens are dropped."""
        return bytes(int(i) for i in ids if i < self.n_regular).decode("utf-8", errors="replace")


TOKENIZERS = {"bytes": ByteTokenizer}


def make_tokenizer(name: str) -> ByteTokenizer:
    """The tokenizer called `name` in a study file."""
    if name not in TOKENIZERS:
        raise CorpusError(f"unknown tokenizer {name!r}; known: {', '.join(TOKENIZERS)}")
    return TOKENIZERS[name]()
