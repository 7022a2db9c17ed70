"""Tokenizers: UTF-8 bytes plus the special tokens every architecture needs."""

from __future__ import annotations

import numpy as np

from trainers.corpora import CorpusError


class ByteTokenizer:
    """UTF-8 bytes as tokens 0-255, then the special tokens every architecture needs."""

    specials = ("<pad>", "<eos>", "<mask>")

    def __init__(self):
        self.pad_id, self.eos_id, self.mask_id = 256, 257, 258

    @property
    def vocab_size(self) -> int:
        """Bytes plus special tokens."""
        return 256 + len(self.specials)

    def encode(self, text: str) -> np.ndarray:
        """Token ids of `text`."""
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.uint16)

    def decode(self, ids) -> str:
        """Text of byte ids; special tokens are dropped."""
        return bytes(int(i) for i in ids if i < 256).decode("utf-8", errors="replace")


TOKENIZERS = {"bytes": ByteTokenizer}


def make_tokenizer(name: str) -> ByteTokenizer:
    """The tokenizer called `name` in a study file."""
    if name not in TOKENIZERS:
        raise CorpusError(f"unknown tokenizer {name!r}; known: {', '.join(TOKENIZERS)}")
    return TOKENIZERS[name]()
