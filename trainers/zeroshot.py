"""Zero-shot scoring: the log-likelihood each architecture gives a candidate after a context.

The semantics of lm-evaluation-harness's multiple choice, for three kinds of model:
- decoder: the sum of log-probabilities of the candidate's tokens given the context;
- encoder: pseudo-log-likelihood (Salazar et al. 2020): each candidate token is masked and
  predicted from everything else; with `pll_stride` s > 1, every s-th candidate token is masked
  at once (s passes instead of one per token, about the 15% masking the model was trained on);
  s = 1 is the exact PLL;
- encdec: the context and a sentinel to the encoder, the sentinel and the candidate to the
  decoder (the question span corruption trains); a candidate longer than a span is scored in
  chunks of SPAN_CHUNK tokens, each given the context and the chunks before it (the chain rule).
Requests are grouped by length and batched; padding is masked out of bidirectional attention.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from trainers.accounting import MEAN_SPAN_LENGTH, encdec_lengths
from trainers.architectures import ARCHITECTURES
from trainers.tasks import Item

PLL_STRIDE = 7  # mask every 7th candidate token at once: ~14% masked, as in training
SCORE_BATCH = 64  # requests scored per pass (fewer where a trial holds its passes small)
BPB_BATCH = 32  # held-out windows per pass, likewise
SPAN_CHUNK = round(3 * MEAN_SPAN_LENGTH)  # encdec scores a candidate 9 tokens at a time


@dataclass(frozen=True)
class Request:
    """One candidate after one context, as token ids."""

    context: tuple[int, ...]
    candidate: tuple[int, ...]


def _pad(rows: list[list[int]], value: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), value, dtype=torch.long)
    keys = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        keys[i, : len(r)] = True
    return ids, keys


def _batches(n: int, lengths: Sequence[int], batch_size: int):
    order = sorted(range(n), key=lambda i: lengths[i])  # similar lengths: little padding
    for i in range(0, n, batch_size):
        yield order[i : i + batch_size]


def _scored_logp(model, ids, keys, rows, cols, targets) -> torch.Tensor:
    """log p(targets[i] at position (rows[i], cols[i])) under a model run on `ids`: for our
    models, the output projection and softmax at those positions only (most of a forward's
    cost at small sizes is the projection onto the vocabulary); for any other module, from its
    full logits."""
    if hasattr(model, "hidden") and hasattr(model, "project"):
        logits = model.project(model.hidden(ids, keys)[rows, cols]).float()
    else:
        logits = (model(ids) if keys is None else model(ids, keys)).float()[rows, cols]
    return F.log_softmax(logits, dim=-1).gather(-1, targets[:, None])[:, 0]


@torch.no_grad()
def score_causal(
    model, tok, requests: list[Request], seq_len: int, batch_size: int = SCORE_BATCH
):
    """Decoder: sum of log p(candidate token | everything before it)."""
    rows, scored = [], []
    for r in requests:
        cand = list(r.candidate[:seq_len])
        ctx = list(r.context) or [tok.eos_id]  # a document starts after <eos>
        seq = (ctx + cand)[-(seq_len + 1) :]
        rows.append(seq)
        scored.append(len(cand))
    out = np.zeros(len(requests))
    device = next(model.parameters()).device
    for idx in _batches(len(rows), [len(r) for r in rows], batch_size):
        ids, _ = _pad([rows[i] for i in idx], tok.pad_id)
        ids = ids.to(device)
        # position t predicts token t + 1: the candidate's tokens, the last `scored` of a row
        where = [(b, t) for b, i in enumerate(idx)
                 for t in range(len(rows[i]) - 1 - scored[i], len(rows[i]) - 1)]  # fmt: skip
        b_at = torch.tensor([b for b, _ in where], dtype=torch.long, device=device)
        t_at = torch.tensor([t for _, t in where], dtype=torch.long, device=device)
        logp = _scored_logp(model, ids[:, :-1], None, b_at, t_at, ids[b_at, t_at + 1])
        sums = torch.zeros(len(idx), dtype=logp.dtype, device=device).index_add_(0, b_at, logp)
        out[idx] = sums.cpu().numpy()
    return out


@torch.no_grad()
def score_pll(
    model, tok, requests: list[Request], seq_len: int, stride: int = PLL_STRIDE,
    batch_size: int = SCORE_BATCH,
):
    """Encoder: pseudo-log-likelihood of the candidate, every `stride`-th token masked at once."""
    passes = []  # (request, masked sequence, masked positions, their original tokens)
    for i, r in enumerate(requests):
        cand = list(r.candidate[:seq_len])
        seq = (list(r.context) + cand)[-seq_len:]
        first = len(seq) - len(cand)
        for offset in range(min(stride, len(cand))):
            positions = list(range(first + offset, len(seq), stride))
            masked = list(seq)
            for p in positions:
                masked[p] = tok.mask_id
            passes.append((i, masked, positions, [seq[p] for p in positions]))
    out = np.zeros(len(requests))
    device = next(model.parameters()).device
    for idx in _batches(len(passes), [len(p[1]) for p in passes], batch_size):
        ids, keys = _pad([passes[j][1] for j in idx], tok.pad_id)
        b_at = torch.tensor([b for b, j in enumerate(idx) for _ in passes[j][2]], device=device)
        t_at = torch.tensor([t for j in idx for t in passes[j][2]], device=device)
        targets = torch.tensor([t for j in idx for t in passes[j][3]], device=device)
        logp = _scored_logp(model, ids.to(device), keys.to(device), b_at, t_at, targets)
        sums = torch.zeros(len(idx), dtype=logp.dtype, device=device).index_add_(0, b_at, logp)
        np.add.at(out, [passes[j][0] for j in idx], sums.cpu().numpy())
    return out


@torch.no_grad()
def score_span(
    model, tok, requests: list[Request], seq_len: int, batch_size: int = SCORE_BATCH
):
    """Encoder-decoder: context + <extra_id_0> + <eos> in, <extra_id_0> + candidate out, the
    candidate in chunks of SPAN_CHUNK tokens, each conditioned on the chunks before it."""
    enc_len, dec_len = encdec_lengths(seq_len)
    chunk = min(SPAN_CHUNK, dec_len - 1)
    sentinel = int(tok.sentinel_ids[0])
    passes = []  # (request, encoder input, decoder targets: sentinel + chunk)
    for i, r in enumerate(requests):
        cand = list(r.candidate)
        for start in range(0, max(1, len(cand)), chunk):
            before = (list(r.context) + cand[:start])[-(enc_len - 2) :]
            passes.append(
                (i, [*before, sentinel, tok.eos_id], [sentinel, *cand[start : start + chunk]])
            )
    out = np.zeros(len(requests))
    device = next(model.parameters()).device
    for idx in _batches(len(passes), [len(p[1]) for p in passes], batch_size):
        # the candidates of an item share their first encoder input (the context): encode each
        # distinct input of the batch once
        distinct = {tuple(passes[j][1]): None for j in idx}
        which = {e: k for k, e in enumerate(distinct)}
        enc, keys = _pad([list(e) for e in distinct], tok.pad_id)
        targets, _ = _pad([passes[j][2] for j in idx], tok.pad_id)
        dec_in = torch.cat([torch.full((len(idx), 1), tok.pad_id), targets[:, :-1]], dim=1)
        rows = torch.tensor([which[tuple(passes[j][1])] for j in idx], device=device)
        keys = keys.to(device)
        memory = model.encode(enc.to(device), keys)[rows]
        logits = model.decode(dec_in.to(device), memory, keys[rows]).float()
        logp = F.log_softmax(logits, dim=-1).gather(-1, targets.to(device)[..., None])[..., 0]
        for b, j in enumerate(idx):
            i, _, target = passes[j]
            out[i] += logp[b, 1 : len(target)].sum().item()  # the candidate, not the sentinel
    return out


def score(model, architecture: str, tok, requests: list[Request], seq_len: int, **kw):
    """Log-likelihood of each request's candidate under a model of `architecture`."""
    model.eval()
    return ARCHITECTURES[architecture].load("scorer")(model, tok, requests, seq_len, **kw)


def requests_of(items: list[Item], tok) -> list[Request]:
    """Every candidate of every item, tokenized (context and candidate separately)."""
    out = []
    for item in items:
        context = tuple(int(t) for t in tok.encode(item.context)) if item.context else ()
        for candidate in item.candidates:
            out.append(Request(context, tuple(int(t) for t in tok.encode(candidate))))
    return out


def _wilson(k: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson 95% interval of a proportion k/n."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (centre - half, centre + half)


def item_metrics(loglik: np.ndarray, items: list[Item]) -> dict[str, np.ndarray]:
    """Per item: correct by log-likelihood (acc), correct per character (acc_norm), the margin
    of the right answer's log-likelihood over the best wrong one, and the task loss (bpb): the
    bits per UTF-8 byte of the right answer given the context, -log2 p(gold) / bytes(gold)
    under the architecture's own scoring. Ties count as 1/(number tied) of a right answer, so a
    model that cannot tell them apart scores chance."""
    k = len(items[0].candidates)
    scores = loglik.reshape(len(items), k)
    chars = np.array([[max(1, len(c)) for c in item.candidates] for item in items], float)
    answer = np.array([item.answer for item in items])
    rows = np.arange(len(items))
    out = {}
    for name, s in (("acc", scores), ("acc_norm", scores / chars)):
        best = s.max(axis=1, keepdims=True)
        tied = np.isclose(s, best, rtol=1e-6, atol=1e-9)  # float32 sums of equal terms
        out[name] = tied[rows, answer] / tied.sum(axis=1)
    wrong = np.where(np.arange(k)[None, :] == answer[:, None], -np.inf, scores)
    out["margin"] = scores[rows, answer] - wrong.max(axis=1)
    gold_bytes = np.array([max(1, len(item.candidates[item.answer].encode())) for item in items])
    out["bpb"] = -scores[rows, answer] / math.log(2) / gold_bytes
    return out


CONTINUOUS = {"margin": 0.0, "bpb": None}  # not proportions; their "chance" (bpb has none)


def summarize(per_item: dict[str, np.ndarray], chance: float) -> list[dict]:
    """Each metric's value, items, chance level and 95% interval (Wilson for accuracies, the
    normal interval of the mean for the margin and the task loss)."""
    rows = []
    for metric, values in per_item.items():
        n = len(values)
        mean = float(values.mean()) if n else float("nan")
        if metric in CONTINUOUS:
            half = 1.96 * float(values.std(ddof=1)) / math.sqrt(n) if n > 1 else float("nan")
            low, high, level = mean - half, mean + half, CONTINUOUS[metric]
        else:
            low, high = _wilson(float(values.sum()), n)
            level = chance
        rows.append(
            {"metric": metric, "value": mean, "n_items": n, "chance": level,
             "ci_low": low, "ci_high": high}
        )  # fmt: skip
    return rows


@torch.no_grad()
def bits_per_byte(
    model, tok, stream: np.ndarray, seq_len: int, max_tokens: int, batch_size: int = BPB_BATCH
):
    """A decoder's negative log-likelihood of held-out text in bits per UTF-8 byte, over
    consecutive windows of `seq_len` tokens (at most `max_tokens`); <eos> is not counted.
    Returns bits per byte, the tokens scored, and [nats, bytes] per window (for intervals)."""
    n_windows = max(0, min(max_tokens // seq_len, (len(stream) - 1) // seq_len))
    if n_windows == 0:
        return float("nan"), 0, []
    device = next(model.parameters()).device
    windows = np.stack([stream[i * seq_len : i * seq_len + seq_len + 1] for i in range(n_windows)])
    windows = torch.from_numpy(windows.astype(np.int64))
    per_window, n_tokens = [], 0
    for i in range(0, n_windows, batch_size):
        batch = windows[i : i + batch_size]
        targets = batch[:, 1:]
        logp = F.log_softmax(model(batch[:, :-1].to(device)).float(), dim=-1)
        token_logp = logp.gather(-1, targets.to(device)[..., None])[..., 0].cpu()
        text = ~torch.from_numpy(tok.is_special(targets.numpy()))
        nats = -(token_logp * text).sum(dim=1)
        n_tokens += int(text.sum())
        for row, row_nats in zip(targets.tolist(), nats.tolist(), strict=True):
            per_window.append([row_nats, len(tok.decode(row).encode("utf-8"))])
    total_nats, n_bytes = np.sum(per_window, axis=0)
    return float(total_nats / math.log(2) / max(1, n_bytes)), n_tokens, per_window


_ITEMS: dict = {}  # (data key, items, seed) -> tasks: made once per process


def evaluate(
    model, architecture: str, data, spec, progress: Callable[[int, int], None] | None = None
) -> list[dict]:
    """Every zero-shot task of a trial (rows of task, metric, value, n_items, chance, interval,
    and the per-item values behind them), plus held-out bits per byte for a decoder.
    `progress(done, total)` hears of the items scored before each task and after the last."""
    from trainers.tasks import CHANCE, make_tasks

    model.eval()  # no dropout while scoring; train() again at the end
    key = (data.key, spec.eval.items, spec.eval.seed)
    if key not in _ITEMS:
        _ITEMS[key] = make_tasks(list(data.heldout_documents), spec.eval.items, spec.eval.seed)
    rows = []
    entry = ARCHITECTURES[architecture]
    options = entry.scorer_options(spec.eval)
    rows_per_pass = spec.placement.micro_batch  # where a trial's passes are held small, these too
    if rows_per_pass:
        options = options | {"batch_size": min(SCORE_BATCH, rows_per_pass)}
    total, done = sum(len(_ITEMS[key][task]) for task in spec.eval.tasks), 0
    for task in spec.eval.tasks:
        items = _ITEMS[key][task]
        if not items:
            continue
        if progress is not None:
            progress(done, total)
        done += len(items)
        loglik = score(model, architecture, data.tokenizer, requests_of(items, data.tokenizer),
                       spec.data.seq_len, **options)  # fmt: skip
        per_item = item_metrics(loglik, items)
        for row in summarize(per_item, CHANCE[task]):
            rows.append({"task": task, **row, "per_item": per_item[row["metric"]].tolist()})
    if progress is not None:
        progress(done, total)
    if entry.heldout_bits:
        bpb, n, windows = bits_per_byte(
            model, data.tokenizer, data.heldout, spec.data.seq_len, spec.eval.tokens,
            batch_size=min(BPB_BATCH, rows_per_pass or BPB_BATCH),
        )
        rows.append(
            {"task": "heldout", "metric": "bits_per_byte", "value": bpb, "n_items": n,
             "chance": None, "ci_low": None, "ci_high": None, "per_item": windows}
        )  # fmt: skip
    model.train()
    return rows
