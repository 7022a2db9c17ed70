"""An n-gram baseline: an interpolated trigram model of the training split's tokens, scored on
the same zero-shot items as the trials, so the report can draw the floor any neural model
should clear.

p(c | a, b) = λ3·p̂(c | a, b) + λ2·p̂(c | b) + λ1·p̂(c) + λ0 / V, with maximum-likelihood
estimates p̂ and Jelinek-Mercer weights (0.6, 0.3, 0.09, 0.01); an unseen history gives its
weight to the lower orders.
"""

from __future__ import annotations

import numpy as np

LAMBDAS = (0.6, 0.3, 0.09, 0.01)  # trigram, bigram, unigram, uniform


class Trigram:
    """Counts of one token stream, looked up with sorted keys and binary search."""

    def __init__(self, stream: np.ndarray, vocab_size: int):
        s = np.asarray(stream, dtype=np.int64)
        self.V = vocab_size
        self.unigram = np.bincount(s, minlength=vocab_size).astype(np.float64)
        self.total = float(len(s))
        # histories are counted where a next token follows, so each estimate sums to one
        self.first = np.bincount(s[:-1], minlength=vocab_size).astype(np.float64)
        self.bi_keys, self.bi_counts = np.unique(s[:-1] * vocab_size + s[1:], return_counts=True)
        self.pair_keys, self.pair_counts = np.unique(
            s[:-2] * vocab_size + s[1:-1], return_counts=True
        )
        self.tri_keys, self.tri_counts = np.unique(
            (s[:-2] * vocab_size + s[1:-1]) * vocab_size + s[2:], return_counts=True
        )

    @staticmethod
    def _count(keys: np.ndarray, counts: np.ndarray, query: np.ndarray) -> np.ndarray:
        i = np.clip(np.searchsorted(keys, query), 0, len(keys) - 1)
        return np.where(keys[i] == query, counts[i], 0).astype(np.float64)

    def logprob(self, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
        """log p(c | a, b), elementwise."""
        V = self.V
        l3, l2, l1, l0 = LAMBDAS
        tri = self._count(self.tri_keys, self.tri_counts, (a * V + b) * V + c)
        ab = self._count(self.pair_keys, self.pair_counts, a * V + b)
        bc = self._count(self.bi_keys, self.bi_counts, b * V + c)
        b_count = self.first[b]
        p = l1 * self.unigram[c] / self.total + l0 / V
        with np.errstate(divide="ignore", invalid="ignore"):
            p3 = np.where(ab > 0, tri / ab, 0.0)
            p2 = np.where(b_count > 0, bc / b_count, 0.0)
        w3 = np.where(ab > 0, l3, 0.0)  # an unseen history passes its weight down
        w2 = np.where(b_count > 0, l2, 0.0)
        rest = 1.0 - w3 - w2
        p = w3 * p3 + w2 * p2 + rest * p / (l1 + l0)
        return np.log(p)


def score_requests(model: Trigram, requests, eos_id: int) -> np.ndarray:
    """Sum of log p(candidate token | the two before it) for each request (context first; an
    empty context starts after <eos>)."""
    out = np.zeros(len(requests))
    for i, r in enumerate(requests):
        seq = np.array([eos_id, eos_id, *r.context, *r.candidate], dtype=np.int64)
        n = len(r.candidate)
        if n == 0:
            continue
        c = seq[-n:]
        b = seq[-n - 1 : -1]
        a = seq[-n - 2 : -2]
        out[i] = model.logprob(a, b, c).sum()
    return out


def baseline_results(data, tasks: tuple[str, ...], items: int, seed: int) -> list[dict]:
    """The zero-shot results of a trigram model of the training split, on the items the trials
    are scored on: rows as a trial's (task, metric, value, n_items, chance, interval, per-item
    values), for the store to keep once per study."""
    from trainers.tasks import CHANCE, make_tasks
    from trainers.zeroshot import item_metrics, requests_of, summarize

    if not tasks:
        return []
    model = Trigram(data.train, data.vocab_size)
    made = make_tasks(list(data.heldout_documents), items, seed)
    rows = []
    for task in tasks:
        if not made[task]:
            continue
        requests = requests_of(made[task], data.tokenizer)
        per_item = item_metrics(score_requests(model, requests, data.tokenizer.eos_id), made[task])
        for row in summarize(per_item, CHANCE[task]):
            rows.append({"task": task, **row, "per_item": per_item[row["metric"]].tolist()})
    return rows
