"""Document splits, token files and batches.

A corpus is split by whole documents into train, validation and held-out parts (the held-out
part is for zero-shot evaluation), tokenized once, and kept as token files under
`<storage>/cache/<key>/` that every trial, and every later run, memory-maps. The key hashes the
corpus's identity, the tokenizer and the split, so a changed corpus or tokenizer gets new
files.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trainers.corpora import CorpusError, corpus_identity, describe, load_documents
from trainers.downloads import progress
from trainers.folders import whole_folder
from trainers.tokenizers import make_tokenizer, tokenizer_from_json
from trainers.trial import Data

SPLITS = ("train", "validation", "heldout")
CACHE_VERSION = 1  # bump when the token files change meaning
# Text above which preparing shows progress: builtin:prose (52 MB) takes about a minute to
# encode with bpe:2048 on 2 cores; builtin:kjv (4 MB) is done before a bar would draw.
PROGRESS_CHARS = 10_000_000
UNWRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)  # a cache that cannot be kept: no cache


def split_documents(
    documents: tuple[str, ...], val_fraction: float, heldout_fraction: float, seed: int
) -> dict[str, list[str]]:
    """Deterministic split by whole documents into train, validation and held-out parts."""
    n = len(documents)
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, round(val_fraction * n))
    n_heldout = max(1, round(heldout_fraction * n)) if heldout_fraction > 0 else 0
    if n_val + n_heldout >= n:
        raise CorpusError(
            f"{n} documents are too few for a validation split of {n_val} and a held-out split "
            f"of {n_heldout} with any left to train on (splits take whole documents: a .txt "
            "file is one document, unless data.corpus.blank_lines splits it where that many "
            "blank lines separate texts)"
        )
    parts = np.split(order, [n_val, n_val + n_heldout])
    val, heldout, train = ([documents[i] for i in part] for part in parts)
    return {"train": train, "validation": val, "heldout": heldout}


def _stream(tokenized: list[np.ndarray], eos: int, dtype) -> np.ndarray:
    """Documents joined into one stream, each followed by <eos>."""
    end = np.array([eos], dtype=dtype)
    parts = [part for ids in tokenized for part in (ids.astype(dtype), end)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


@dataclass(frozen=True)
class TokenData:
    """The token streams of the three splits (memory-mapped when cached) and the tokenizer."""

    key: str
    corpus: str
    train: np.ndarray
    val: np.ndarray
    heldout: np.ndarray
    tokenizer: object
    documents: dict  # split -> number of documents
    heldout_documents: tuple[str, ...] = ()  # the text zero-shot tasks are made from
    text_bytes: dict = field(default_factory=dict)  # split -> UTF-8 bytes of its documents
    replaced: int = 0  # U+FFFD in the text: mostly bytes its files did not hold as UTF-8

    @property
    def vocab_size(self) -> int:
        """Embedding rows a model needs: the tokenizer's whole vocabulary."""
        return self.tokenizer.vocab_size

    def summary(self) -> dict:
        """Documents, tokens and UTF-8 bytes of text per split (tokens per byte turn a loss
        per token into bits per byte), the tokenizer and its vocabulary: for plan and store."""
        streams = {"train": self.train, "validation": self.val, "heldout": self.heldout}
        return {
            "key": self.key,
            "corpus": describe(self.corpus),
            "tokenizer": self.tokenizer.name,
            "vocab_size": self.vocab_size,
            "documents": dict(self.documents),
            "tokens": {k: int(len(v)) for k, v in streams.items()},
            **({"bytes": dict(self.text_bytes)} if self.text_bytes else {}),
        }

    def warnings(self) -> list[str]:
        """What about the data would make a study measure little, said before it trains: a
        tokenizer that maps most of the text to one token, and text that was not UTF-8."""
        out = []
        sample = np.asarray(self.val[:1_000_000])  # the first million tokens tell
        if len(sample):
            counts = np.bincount(sample)
            share = counts.max() / len(sample)
            if share > 0.5:
                top = int(counts.argmax())
                out.append(
                    f"{share:.0%} of the validation tokens are one token (id {top}, "
                    f"{self.tokenizer.decode([top])!r}): the tokenizer ({self.tokenizer.name}) "
                    "does not tell this text apart, and a model would learn to predict that one "
                    "token (a vocabulary without this corpus's words?)"
                )
        if self.replaced:
            out.append(
                f"{describe(self.corpus)} holds {self.replaced:,} replacement characters "
                "(U+FFFD): bytes its files did not hold as UTF-8 (read as U+FFFD), or U+FFFD "
                "written in the text; convert the files to UTF-8"
            )
        return out

    def check_fits(self, window: int) -> None:
        """Refuse splits too small to cut at least two sequences of `window` tokens from."""
        for split, stream in (("train", self.train), ("validation", self.val)):
            if len(stream) < 2 * window:
                raise CorpusError(
                    f"the {split} split of {describe(self.corpus)} has {len(stream)} tokens, "
                    f"too few for sequences of {window}: use a shorter seq_len or more text"
                )


def cache_root(storage: str) -> str:
    """Where a study's token files live: `<storage>/cache`, or nowhere without storage."""
    return str(Path(storage) / "cache") if storage else ""


def data_key(
    corpus: str, tokenizer: str, val_fraction: float, heldout_fraction: float, split_seed: int
) -> str:
    """The cache key of a corpus, tokenizer and split."""
    tok = tokenizer
    if not tokenizer.startswith(("bytes", "bpe:")) and Path(tokenizer).is_file():
        tok = hashlib.sha256(Path(tokenizer).read_bytes()).hexdigest()  # the file's content
    blob = json.dumps(
        [CACHE_VERSION, corpus_identity(corpus), tok, val_fraction, heldout_fraction, split_seed]
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _encode(tok, splits: dict[str, list[str]], name: str) -> dict[str, np.ndarray]:
    """Each split's token stream, encoded in batches of documents; under a progress display
    where the corpus is large."""
    total = sum(len(d) for docs in splits.values() for d in docs)
    large = total >= PROGRESS_CHARS
    shown = progress(f"tokenizing {name} with {tok.name}", total) if large else None
    streams = {}
    try:
        for split, docs in splits.items():
            encoded = []
            for i in range(0, len(docs), 512):
                encoded += tok.encode_documents(docs[i : i + 512])
                if shown:
                    shown.advance(sum(len(d) for d in docs[i : i + 512]))
            streams[split] = _stream(encoded, tok.eos_id, tok.dtype)
    finally:
        if shown:
            shown.close()
    return streams


def _build(corpus, tokenizer, val_fraction, heldout_fraction, split_seed) -> tuple:
    splits = split_documents(load_documents(corpus), val_fraction, heldout_fraction, split_seed)
    large = sum(len(d) for d in splits["train"]) >= PROGRESS_CHARS and tokenizer.startswith("bpe:")
    shown = progress(f"training {tokenizer} on {describe(corpus)}", 0) if large else None
    try:
        tok = make_tokenizer(tokenizer, splits["train"])
    finally:
        if shown:
            shown.close()
    return splits, tok, _encode(tok, splits, describe(corpus))


def _replaced(splits: dict[str, list[str]]) -> int:
    return sum(d.count("\ufffd") for docs in splits.values() for d in docs)


def _text_bytes(splits: dict[str, list[str]]) -> dict[str, int]:
    return {k: sum(len(d.encode("utf-8")) for d in docs) for k, docs in splits.items()}


def _add_text_bytes(folder: Path, meta: dict, corpus, val_fraction, heldout_fraction, seed):
    """A cache written before its text's bytes were recorded: count them from the corpus once
    and record them (without the corpus, as where it has moved, go without)."""
    try:
        docs = split_documents(load_documents(corpus), val_fraction, heldout_fraction, seed)
        meta["bytes"] = _text_bytes(docs)
        partial = folder / f".meta.json.{os.getpid()}"
        partial.write_text(json.dumps(meta, indent=2))
        os.replace(partial, folder / "meta.json")
    except (CorpusError, OSError):
        pass


def _write(folder: Path, splits: dict, tok, streams: dict, corpus: str) -> None:
    """Write the token files into a fresh folder, then move it into place in one rename (no
    half-written cache stays, after a full disk or an interrupt)."""
    try:
        with whole_folder(folder, taken_ok=True) as tmp:  # another process's files are the same
            for split, stream in streams.items():
                np.save(tmp / f"{split}.npy", stream)
            saved = tok.to_json()
            if saved is not None:
                (tmp / "tokenizer.json").write_text(saved)
            with (tmp / "heldout.jsonl").open("w") as f:  # the zero-shot tasks come from these
                for doc in splits["heldout"]:
                    f.write(json.dumps({"text": doc}) + "\n")
            meta = {
                "corpus": corpus,
                "tokenizer": tok.name,
                "documents": {k: len(v) for k, v in splits.items()},
                "bytes": _text_bytes(splits),
                "replaced": _replaced(splits),
            }
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise CorpusError(
                f"no space left on device writing the token files under {folder.parent}: free "
                "space on that disk, or give the study a storage folder on a larger one"
            ) from None
        raise


def load_token_data(
    corpus: str,
    tokenizer: str,
    val_fraction: float,
    heldout_fraction: float,
    split_seed: int,
    cache_root: str = "",
    *,
    key: str = "",
) -> TokenData:
    """The tokenized splits of a corpus: from `<cache_root>/<key>/` if they are there, else
    built (and written there, when a cache root is given that can be written). Kept in memory
    per process, by key: a changed corpus is read again.

    A trial passes the key its study was planned with: token files under that key are used
    as they are (a worker need not see the corpus), and a corpus that has changed since is an
    error rather than a silent change of data.
    """
    args = (corpus, tokenizer, val_fraction, heldout_fraction, split_seed)
    if key and cache_root and (Path(cache_root) / key / "meta.json").exists():
        return _load(key, args, cache_root)
    actual = data_key(*args)
    if key and actual != key:
        raise CorpusError(
            f"the corpus {describe(corpus)} or its tokenizer changed since the study was "
            f"planned (token files {key}, now {actual}); run the study again to plan it anew"
        )
    return _load(actual, args, cache_root)


def load_tokens(data: Data, storage: str) -> TokenData:
    """The token data of a trial's (or a study's) `data`, its files cached under `storage`
    (see `load_token_data`)."""
    return load_token_data(data.corpus, data.tokenizer, data.val_fraction, data.heldout_fraction,
                           data.split_seed, cache_root(storage), key=data.key)  # fmt: skip


@functools.lru_cache(maxsize=4)
def _load(key: str, source: tuple, cache_root: str) -> TokenData:
    """The token data of `source` (corpus, tokenizer, fractions, seed) under `key`."""
    corpus, tokenizer, val_fraction, heldout_fraction, split_seed = source
    folder = Path(cache_root) / key if cache_root else None
    if folder is None or not (folder / "meta.json").exists():
        splits, tok, streams = _build(corpus, tokenizer, val_fraction, heldout_fraction, split_seed)
        try:
            if folder is not None:
                _write(folder, splits, tok, streams, corpus)
        except OSError as e:  # a read-only place: `study plan` works there, from memory
            if e.errno not in UNWRITABLE:
                raise
            folder = None
        if folder is None:
            documents = {k: len(v) for k, v in splits.items()}
            heldout = tuple(splits["heldout"])
            return TokenData(key, corpus, *streams.values(), tok, documents, heldout,
                             _text_bytes(splits), _replaced(splits))  # fmt: skip
    meta = json.loads((folder / "meta.json").read_text())
    if "bytes" not in meta:
        _add_text_bytes(folder, meta, corpus, val_fraction, heldout_fraction, split_seed)
    saved = folder / "tokenizer.json"
    tok = tokenizer_from_json(saved.read_text() if saved.exists() else None, meta["tokenizer"])
    streams = [np.load(folder / f"{split}.npy", mmap_mode="r") for split in SPLITS]
    with (folder / "heldout.jsonl").open() as f:
        heldout = tuple(json.loads(line)["text"] for line in f)
    return TokenData(key, corpus, *streams, tok, meta["documents"], heldout, meta.get("bytes", {}),
                     meta.get("replaced", 0))  # fmt: skip


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
