"""Tokenizers: UTF-8 bytes, byte-level BPE trained on the study's training split, or a local
`tokenizer.json`, each with the special tokens every architecture needs.

Every tokenizer has <pad>, <eos> (between documents), <mask> (masked LM) and 100 sentinels
<extra_id_0> ... <extra_id_99> (span corruption, T5's names). Objectives find them through
`pad_id`, `eos_id`, `mask_id`, `sentinel_ids`, tell them from text tokens with `is_special`,
and draw random text tokens from `regular_ids`. The vocabulary size is the number of embedding
rows a model needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from trainers.accounting import N_SENTINELS
from trainers.corpora import CorpusError

SPECIALS = ("<pad>", "<eos>", "<mask>", *(f"<extra_id_{i}>" for i in range(N_SENTINELS)))


class _Vocabulary:
    """Special-token bookkeeping shared by the tokenizers: give `vocab_size` and the ids."""

    def _set_specials(self, vocab_size: int, ids: list[int], others: Sequence[int] = ()) -> None:
        self.vocab_size = vocab_size
        self.pad_id, self.eos_id, self.mask_id = ids[:3]
        self.sentinel_ids = np.array(ids[3:], dtype=np.int64)
        self.special_mask = np.zeros(vocab_size, dtype=bool)
        self.special_mask[[*ids, *others]] = True  # ours, and a tokenizer file's own ([CLS], ...)
        self.regular_ids = np.flatnonzero(~self.special_mask)
        self.dtype = np.uint16 if vocab_size <= 2**16 else np.uint32

    def is_special(self, ids: np.ndarray) -> np.ndarray:
        """Which of `ids` are special tokens."""
        return self.special_mask[ids]

    def encode_documents(self, documents: list[str]) -> list[np.ndarray]:
        """Token ids of each document."""
        return [self.encode(d) for d in documents]


class ByteTokenizer(_Vocabulary):
    """UTF-8 bytes as tokens 0-255, then the special tokens (359 in all)."""

    name = "bytes"

    def __init__(self):
        self._set_specials(256 + len(SPECIALS), list(range(256, 256 + len(SPECIALS))))

    def encode(self, text: str) -> np.ndarray:
        """Token ids of `text`."""
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(self.dtype)

    def decode(self, ids) -> str:
        """Text of token ids; special tokens are dropped."""
        return bytes(int(i) for i in ids if i < 256).decode("utf-8", errors="replace")

    def to_json(self) -> str | None:
        """Nothing to save: the byte tokenizer is fixed."""
        return None


class HFTokenizer(_Vocabulary):
    """A Hugging Face `tokenizers` tokenizer with the special tokens added (appended if absent).

    Text is encoded as text: no post-processor tokens ([CLS], </s>) are added, and a special
    token's name inside the text ("<eos>") is tokenized like any other text, as the byte
    tokenizer does.
    """

    def __init__(self, tokenizer, name: str):
        self.name = name
        self.tokenizer = tokenizer
        tokenizer.add_special_tokens(list(SPECIALS))
        tokenizer.encode_special_tokens = True
        ids = [tokenizer.token_to_id(t) for t in SPECIALS]
        others = [i for i, t in tokenizer.get_added_tokens_decoder().items() if t.special]
        size = max(tokenizer.get_vocab(with_added_tokens=True).values()) + 1  # ids may have gaps
        self._set_specials(size, ids, others)

    def encode(self, text: str) -> np.ndarray:
        """Token ids of `text`."""
        try:
            ids = self.tokenizer.encode(text, add_special_tokens=False).ids
        except Exception as e:  # the tokenizers library raises a bare Exception
            raise self._cannot(e) from None
        return np.array(ids, dtype=self.dtype)

    def encode_documents(self, documents: list[str]) -> list[np.ndarray]:
        """Token ids of each document, encoded in parallel batches."""
        out = []
        for i in range(0, len(documents), 1024):
            try:
                batch = self.tokenizer.encode_batch(documents[i : i + 1024],
                                                    add_special_tokens=False)  # fmt: skip
            except Exception as e:
                raise self._cannot(e) from None
            out += [np.array(e.ids, dtype=self.dtype) for e in batch]
        return out

    def _cannot(self, error: Exception) -> CorpusError:
        hint = ""
        if "Missing [UNK]" in str(error):  # a WordLevel model needs it for words it lacks
            hint = ": add the [UNK] token to its vocabulary"
        return CorpusError(f"the tokenizer {self.name} cannot encode the corpus ({error}){hint}")

    def decode(self, ids) -> str:
        """Text of token ids; special tokens are dropped."""
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=True)

    def to_json(self) -> str:
        """The tokenizer as `tokenizer.json` text, to reload it exactly."""
        return self.tokenizer.to_str()


Tokenizer = ByteTokenizer | HFTokenizer


def train_bpe(documents: list[str], vocab_size: int) -> HFTokenizer:
    """Byte-level BPE (GPT-2's pre-tokenizer and byte alphabet) trained on `documents`, with
    `vocab_size` tokens in all, the special tokens included."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    n_merged = vocab_size - len(SPECIALS)
    if n_merged < 256 + 1:
        raise CorpusError(
            f"a BPE vocabulary of {vocab_size} leaves no room for merges: it holds the 256 "
            f"bytes and {len(SPECIALS)} special tokens; use more than {256 + len(SPECIALS)}"
        )
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=n_merged,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(documents, trainer=trainer, length=len(documents))
    return HFTokenizer(tokenizer, f"bpe:{vocab_size}")


def load_tokenizer_file(path: str | Path) -> HFTokenizer:
    """A `tokenizer.json` saved by Hugging Face `tokenizers` (or `transformers`)."""
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as e:
        raise CorpusError(f"{path}: not a tokenizer.json that `tokenizers` can read ({e})") from e
    return HFTokenizer(tokenizer, str(path))


def tokenizer_from_json(text: str | None, name: str) -> ByteTokenizer | HFTokenizer:
    """The tokenizer saved by `to_json` (None for the byte tokenizer)."""
    if text is None:
        return ByteTokenizer()
    from tokenizers import Tokenizer

    return HFTokenizer(Tokenizer.from_str(text), name)


def make_tokenizer(name: str, train_documents: list[str] | None = None):
    """The tokenizer a study names: "bytes", "bpe:<vocab size>" (trained on `train_documents`),
    or the path of a tokenizer.json."""
    if name == "bytes":
        return ByteTokenizer()
    if name.startswith("bpe:"):
        if train_documents is None:
            raise ValueError("a BPE tokenizer is trained on the training split: pass it")
        return train_bpe(train_documents, int(name.removeprefix("bpe:")))
    if not Path(name).is_file():
        raise CorpusError(f"tokenizer {name!r}: no such file (give bytes, {{bpe: N}} or a path)")
    return load_tokenizer_file(name)
