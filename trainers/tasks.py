"""Zero-shot tasks made from held-out documents: multiple-choice items as plain text.

Every item is a context, candidate continuations and the index of the right one; a model scores
each candidate's log-likelihood given the context (lm-evaluation-harness's multiple choice).
Items depend only on the documents, the number asked for and the seed, so every trial of a
study sees the same ones, whatever its architecture or tokenizer.

| task | item | chance |
|---|---|---|
| last_word | a passage ending in a sentence, without its last word; that word against 3 words of
  similar frequency, from the passage when it has them | 1/4 |
| next_sentence | two sentences; the one that follows against 3 of similar length from other
  documents | 1/4 |
| minimal_pairs | a sentence against itself with two adjacent words swapped, or with one word of
  an agreement pair (is/are, was/were, ...) changed | 1/2 |
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

TASKS = ("last_word", "next_sentence", "minimal_pairs")
CHANCE = {"last_word": 1 / 4, "next_sentence": 1 / 4, "minimal_pairs": 1 / 2}
# Word pairs whose swap breaks agreement or usage; either member may be replaced by the other.
AGREEMENT = {
    "is": "are",
    "are": "is",
    "was": "were",
    "were": "was",
    "has": "have",
    "have": "has",
    "a": "an",
    "an": "a",
    "this": "these",
    "these": "this",
    "does": "do",
    "do": "does",
}
CONTEXT_CHARS = 400  # last_word: the passage before the target sentence, at most this long

_SENTENCE_END = re.compile(r"(?<=[.?!])\s+")
_WORD = re.compile(r"[A-Za-z]+")


@dataclass(frozen=True)
class Item:
    """One multiple-choice question: the answer is `candidates[answer]`."""

    context: str
    candidates: tuple[str, ...]
    answer: int


def sentences(document: str) -> list[str]:
    """The sentences of a document, split after . ? or ! followed by white space, with their
    white space made single spaces."""
    return [" ".join(s.split()) for s in _SENTENCE_END.split(document) if s.strip()]


def _shuffled(rng: np.random.Generator, right: str, wrong: list[str]) -> tuple[tuple, int]:
    candidates = [right, *wrong]
    order = rng.permutation(len(candidates))
    return tuple(candidates[i] for i in order), int(np.flatnonzero(order == 0)[0])


def last_word_items(documents: list[str], n: int, seed: int) -> list[Item]:
    """Sentence-final words against 3 distractors of the nearest frequency (in the held-out
    text), taken from the passage itself when it has enough."""
    rng = np.random.default_rng([seed, 1])
    counts = Counter(w.lower() for d in documents for w in _WORD.findall(d))
    vocabulary = [w for w, c in counts.items() if len(w) >= 3]
    log_count = {w: math.log(counts[w]) for w in vocabulary}
    candidates = []
    for d, document in enumerate(documents):
        for s, sentence in enumerate(sentences(document)):
            words = sentence.rstrip(".?!").split()
            if len(words) >= 6 and _WORD.fullmatch(words[-1]) and len(words[-1]) >= 3:
                candidates.append((d, s))
    items = []
    for index in rng.permutation(len(candidates))[:n]:
        d, s = candidates[index]
        parts = sentences(documents[d])
        words = parts[s].rstrip(".?!").split()
        truth = words[-1]
        before = " ".join(parts[:s])[-CONTEXT_CHARS:]
        before = before[before.find(" ") + 1 :] if len(before) == CONTEXT_CHARS else before
        context = (before + " " if before else "") + " ".join(words[:-1])
        target = log_count[truth.lower()]
        seen = {truth.lower()}
        passage = [w for w in _WORD.findall(before + " " + parts[s]) if len(w) >= 3]
        pool = [w for w in dict.fromkeys(passage) if w.lower() not in seen]
        pool.sort(key=lambda w: (abs(log_count.get(w.lower(), 0.0) - target), w))
        wrong = []
        for w in pool:
            if len(wrong) == 3:
                break
            if w.lower() not in seen:
                wrong.append(w)
                seen.add(w.lower())
        if len(wrong) < 3:  # a short passage: fill from the whole held-out vocabulary
            nearest = sorted(vocabulary, key=lambda w: (abs(log_count[w] - target), w))
            wrong += [w for w in nearest if w not in seen][: 3 - len(wrong)]
        options, answer = _shuffled(rng, " " + truth, [" " + w for w in wrong])
        items.append(Item(context, options, answer))
    return items


def next_sentence_items(documents: list[str], n: int, seed: int) -> list[Item]:
    """Two sentences, then the true next one against 3 of the closest length from other
    documents."""
    rng = np.random.default_rng([seed, 2])
    split = [sentences(d) for d in documents]
    pool = [(len(s), d, s) for d, ss in enumerate(split) for s in ss if len(s.split()) >= 4]
    lengths = np.array([p[0] for p in pool])
    places = [(d, i) for d, ss in enumerate(split) for i in range(2, len(ss))]
    items = []
    for index in rng.permutation(len(places))[:n]:
        d, i = places[index]
        truth = split[d][i]
        order = np.argsort(np.abs(lengths - len(truth)), kind="stable")
        wrong = []
        for j in order:
            if pool[j][1] != d and pool[j][2] not in wrong and pool[j][2] != truth:
                wrong.append(pool[j][2])
            if len(wrong) == 12:  # the 12 closest in length; 3 of them drawn
                break
        chosen = [wrong[k] for k in sorted(rng.choice(len(wrong), 3, replace=False))]
        context = " ".join(split[d][i - 2 : i])
        options, answer = _shuffled(rng, " " + truth, [" " + w for w in chosen])
        items.append(Item(context, options, answer))
    return items


def _perturb(sentence: str, rng: np.random.Generator) -> str | None:
    words = sentence.split()
    agreement = [k for k, w in enumerate(words) if w in AGREEMENT]
    if agreement and rng.random() < 0.5:
        k = agreement[rng.integers(len(agreement))]
        return " ".join(words[:k] + [AGREEMENT[words[k]]] + words[k + 1 :])
    swaps = [k for k in range(len(words) - 1) if words[k] != words[k + 1]]
    if not swaps:
        return None
    k = swaps[rng.integers(len(swaps))]
    return " ".join(words[:k] + [words[k + 1], words[k]] + words[k + 2 :])


def minimal_pair_items(documents: list[str], n: int, seed: int) -> list[Item]:
    """A sentence against the same sentence with two adjacent words swapped or one agreement
    word changed; no context."""
    rng = np.random.default_rng([seed, 3])
    pool = [s for d in documents for s in sentences(d) if 4 <= len(s.split()) <= 40]
    items = []
    for index in rng.permutation(len(pool)):
        if len(items) == n:
            break
        wrong = _perturb(pool[index], rng)
        if wrong is not None and wrong != pool[index]:
            options, answer = _shuffled(rng, pool[index], [wrong])
            items.append(Item("", options, answer))
    return items


def make_tasks(documents: list[str], n_items: int, seed: int) -> dict[str, list[Item]]:
    """Up to `n_items` items of each task from the held-out documents (fewer if the documents
    do not hold that many)."""
    return {
        "last_word": last_word_items(documents, n_items, seed),
        "next_sentence": next_sentence_items(documents, n_items, seed),
        "minimal_pairs": minimal_pair_items(documents, n_items, seed),
    }
