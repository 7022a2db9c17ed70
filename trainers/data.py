"""Document splits, token streams and batches for training and validation."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from trainers.corpora import CorpusError, load_documents
from trainers.tokenizers import ByteTokenizer, make_tokenizer


def split_documents(
    documents: tuple[str, ...], val_fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """Deterministic split by whole documents into (train, validation)."""
    order = np.random.default_rng(seed).permutation(len(documents))
    n_val = max(1, round(val_fraction * len(documents)))
    if n_val >= len(documents):
        raise CorpusError(f"{len(documents)} documents are too few for a validation split")
    val = [documents[i] for i in order[:n_val]]
    train = [documents[i] for i in order[n_val:]]
    return train, val


def _stream(tokenizer: ByteTokenizer, documents: list[str]) -> np.ndarray:
    eos = np.array([tokenizer.eos_id], dtype=np.uint16)
    parts = []
    for doc in documents:
        parts += [tokenizer.encode(doc), eos]
    return np.concatenate(parts)


@dataclass(frozen=True)
class TokenData:
    """Train and validation token streams: documents joined by end-of-sequence tokens."""

    train: np.ndarray
    val: np.ndarray
    tokenizer: ByteTokenizer

    @property
    def vocab_size(self) -> int:
        """Embedding rows a model needs: the tokenizer's whole vocabulary."""
        return self.tokenizer.vocab_size


@functools.lru_cache(maxsize=4)
def load_token_data(
    corpus: str, tokenizer: str, val_fraction: float, split_seed: int, seq_len: int
) -> TokenData:
    """Tokenized splits of a corpus, checked to hold at least a few sequences each."""
    tok = make_tokenizer(tokenizer)
    train_docs, val_docs = split_documents(load_documents(corpus), val_fraction, split_seed)
    data = TokenData(_stream(tok, train_docs), _stream(tok, val_docs), tok)
    for split, stream in (("train", data.train), ("validation", data.val)):
        if len(stream) < 2 * (seq_len + 1):
            raise CorpusError(
                f"the {split} split of {corpus!r} has {len(stream)} tokens, "
                f"too few for seq_len={seq_len}"
            )
    return data


def sample_windows(
    stream: np.ndarray, batch_size: int, window: int, rng: np.random.Generator
) -> np.ndarray:
    """`batch_size` windows of `window` tokens at random offsets: (B, window)."""
    starts = rng.integers(0, len(stream) - window, size=batch_size)
    return stream[starts[:, None] + np.arange(window)].astype(np.int64)


def validation_windows(stream: np.ndarray, seq_len: int, window: int, n_tokens: int) -> np.ndarray:
    """The fixed validation set: windows every `seq_len` tokens from the start of the split."""
    n_windows = max(1, min(n_tokens // seq_len, (len(stream) - window) // seq_len + 1))
    starts = np.arange(n_windows) * seq_len
    return stream[starts[:, None] + np.arange(window)].astype(np.int64)
