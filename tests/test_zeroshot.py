"""Zero-shot scoring against brute force, an oracle and a uniform model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainers.accounting import encdec_lengths
from trainers.architectures import ARCHITECTURES
from trainers.blocks import ModelConfig
from trainers.tasks import CHANCE, Item, make_tasks
from trainers.tokenizers import ByteTokenizer
from trainers.zeroshot import (
    SPAN_CHUNK,
    Request,
    bits_per_byte,
    item_metrics,
    requests_of,
    score,
    score_causal,
    score_pll,
    summarize,
)

TOK = ByteTokenizer()
SEQ = 48


def model(architecture):
    torch.manual_seed(0)
    return (
        ARCHITECTURES[architecture]
        .load("model")(ModelConfig(architecture, TOK.vocab_size, SEQ, 2, 32, 2))
        .eval()
    )


def ids(text):
    return tuple(int(t) for t in TOK.encode(text))


REQUESTS = [
    Request(ids("In the beginning"), ids(" God")),
    Request(ids("and the earth was"), ids(" without form, and void")),
    Request((), ids("A sentence scored with no context.")),
    Request(ids("x" * 70), ids(" long context, cut on the left")),
]


def logp_next(m, tokens):
    with torch.no_grad():
        return F.log_softmax(m(torch.tensor([tokens]))[0, -1], dim=-1)


def test_decoder_scores_equal_one_position_at_a_time():
    m = model("decoder")
    batched = score_causal(m, TOK, REQUESTS, SEQ, batch_size=3)
    for r, got in zip(REQUESTS, batched, strict=True):
        # as lm-evaluation-harness: the context is cut on the left so that it and the
        # candidate fit; then each candidate token is predicted from the tokens before it
        seq = ((list(r.context) or [TOK.eos_id]) + list(r.candidate))[-(SEQ + 1) :]
        first = len(seq) - len(r.candidate)
        brute = sum(logp_next(m, seq[:p])[seq[p]].item() for p in range(first, len(seq)))
        assert got == pytest.approx(brute, abs=1e-4)


@pytest.mark.parametrize("stride", [1, 3])
def test_encoder_pseudo_log_likelihood_equals_masking_by_hand(stride):
    m = model("encoder")
    batched = score_pll(m, TOK, REQUESTS, SEQ, stride=stride, batch_size=5)
    for r, got in zip(REQUESTS, batched, strict=True):
        seq = (list(r.context) + list(r.candidate))[-SEQ:]
        first = len(seq) - len(r.candidate)
        brute = 0.0
        for offset in range(stride):
            positions = list(range(first + offset, len(seq), stride))
            masked = [TOK.mask_id if p in positions else t for p, t in enumerate(seq)]
            with torch.no_grad():  # one sequence alone: no padding at all
                logp = F.log_softmax(m(torch.tensor([masked]))[0], dim=-1)
            brute += sum(logp[p, seq[p]].item() for p in positions)
        assert got == pytest.approx(brute, abs=1e-4)


def test_encdec_scores_equal_decoding_chunk_by_chunk_token_by_token():
    m = model("encdec")
    enc_len, _ = encdec_lengths(SEQ)
    s0 = int(TOK.sentinel_ids[0])
    batched = score(m, "encdec", TOK, REQUESTS, SEQ, batch_size=4)
    for r, got in zip(REQUESTS, batched, strict=True):
        cand, brute = list(r.candidate), 0.0
        chunk = min(SPAN_CHUNK, encdec_lengths(SEQ)[1] - 1)
        for start in range(0, len(cand), chunk):
            enc = (list(r.context) + cand[:start])[-(enc_len - 2) :] + [s0, TOK.eos_id]
            piece = cand[start : start + chunk]
            for t, token in enumerate(piece):
                dec = [TOK.pad_id, s0, *piece[:t]]
                with torch.no_grad():
                    logits = m(torch.tensor([enc]), torch.tensor([dec]))[0, -1]
                brute += F.log_softmax(logits, dim=-1)[token].item()
        assert got == pytest.approx(brute, abs=1e-4)


class Oracle(nn.Module):
    """A causal 'model' that knows the right continuations: it puts all probability on the
    next token of a right answer while the text so far is one, and is uniform elsewhere."""

    def __init__(self, sequences):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))
        self.next = {}
        for seq in sequences:
            for t in range(1, len(seq)):
                self.next[tuple(seq[:t])] = seq[t]

    def forward(self, ids):
        logits = torch.zeros(*ids.shape, TOK.vocab_size)
        for b, row in enumerate(ids.tolist()):
            for t in range(len(row)):
                token = self.next.get(tuple(row[: t + 1]))
                if token is not None:
                    logits[b, t, token] = 30.0
        return logits


@pytest.fixture(scope="module")
def items():
    from trainers.corpora import load_documents
    from trainers.data import split_documents

    documents = split_documents(load_documents("builtin:kjv"), 0.02, 0.05, 0)["heldout"]
    return {task: its[:40] for task, its in make_tasks(documents, 40, seed=0).items()}


def test_a_model_that_knows_the_answers_scores_100_percent(items):
    for task, its in items.items():
        truth = []
        for item in its:
            ctx = list(ids(item.context)) or [TOK.eos_id]
            truth.append(ctx + list(ids(item.candidates[item.answer])))
        oracle = Oracle(truth)
        loglik = score(oracle, "decoder", TOK, requests_of(its, TOK), 10_000)
        metrics = item_metrics(loglik, its)
        assert metrics["acc"].mean() == 1.0 and metrics["acc_norm"].mean() == 1.0, task
        assert (metrics["margin"] > 0).all()


class Uniform(nn.Module):
    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))

    def forward(self, ids, keys=None):
        return torch.zeros(*ids.shape, TOK.vocab_size)


@pytest.mark.parametrize("architecture", ["decoder", "encoder"])
def test_a_uniform_model_scores_chance_per_character(items, architecture):
    for task, its in items.items():
        loglik = score(Uniform(), architecture, TOK, requests_of(its, TOK), 1024)  # no cuts
        per_item = item_metrics(loglik, its)
        assert per_item["acc_norm"].mean() == pytest.approx(CHANCE[task])  # all tied
        (acc_norm,) = [r for r in summarize(per_item, CHANCE[task]) if r["metric"] == "acc_norm"]
        assert acc_norm["ci_low"] < CHANCE[task] < acc_norm["ci_high"]


def test_task_loss_is_the_bits_per_byte_of_the_right_answer_token_by_token():
    """bpb of an item: -log2 p(gold | context) / UTF-8 bytes of gold, the probability summed
    one position at a time (a candidate with a two-byte character, one without a context)."""
    import math

    m = model("decoder")
    its = [
        Item("In the beginning", (" God", " dog"), 0),
        Item("and the earth was", (" void", " without form, and void"), 1),
        Item("", ("Café au lait.", "x"), 0),
    ]
    per_item = item_metrics(score(m, "decoder", TOK, requests_of(its, TOK), SEQ), its)
    for item, got in zip(its, per_item["bpb"], strict=True):
        gold = item.candidates[item.answer]
        seq = (list(ids(item.context)) or [TOK.eos_id]) + list(ids(gold))
        first = len(seq) - len(ids(gold))
        nats = -sum(logp_next(m, seq[:p])[seq[p]].item() for p in range(first, len(seq)))
        assert got == pytest.approx(nats / math.log(2) / len(gold.encode("utf-8")), rel=1e-5)
    rows = {r["metric"]: r for r in summarize(per_item, 1 / 3)}
    bpb = rows["bpb"]
    assert bpb["value"] == pytest.approx(per_item["bpb"].mean()) and bpb["chance"] is None
    assert bpb["ci_low"] < bpb["value"] < bpb["ci_high"]


def test_metrics_count_ties_as_shares_and_margins_against_the_best_wrong():
    items = [Item("", ("a", "b", "c"), 0), Item("", ("a", "b", "c"), 2)]
    loglik = np.array([-1.0, -2.0, -3.0, -1.0, -1.0, -5.0])
    m = item_metrics(loglik, items)
    assert m["acc"].tolist() == [1.0, 0.0]
    assert m["margin"].tolist() == [1.0, -4.0]
    rows = {r["metric"]: r for r in summarize(m, 1 / 3)}
    assert rows["acc"]["value"] == 0.5 and rows["acc"]["n_items"] == 2
    assert rows["acc"]["ci_low"] < 0.5 < rows["acc"]["ci_high"] and rows["acc"]["chance"] == 1 / 3


def test_the_trigram_baseline_is_a_distribution_and_beats_chance(items):
    from trainers.data import load_token_data
    from trainers.ngram import Trigram, score_requests

    data = load_token_data("builtin:kjv", "bytes", 0.02, 0.05, 0)
    model = Trigram(data.train, TOK.vocab_size)
    for a, b in ((116, 104), (0, 1), (TOK.eos_id, TOK.eos_id)):  # seen, unseen, the start
        c = np.arange(TOK.vocab_size)
        total = np.exp(model.logprob(np.full_like(c, a), np.full_like(c, b), c)).sum()
        assert total == pytest.approx(1.0)
    its = items["minimal_pairs"]  # word order is what three bytes of context can see
    per_item = item_metrics(score_requests(model, requests_of(its, TOK), TOK.eos_id), its)
    assert per_item["acc"].mean() > 0.6  # a real floor, above the 0.5 of chance


def test_bits_per_byte_is_the_log_likelihood_of_every_window_summed():
    net = model("decoder")
    text = "In the beginning God created the heaven and the earth. " * 12
    stream = np.array(TOK.encode(text), dtype=np.int64)
    bpb, n_tokens, windows = bits_per_byte(net, TOK, stream, SEQ, max_tokens=4 * SEQ)
    assert len(windows) == 4 and n_tokens == 4 * SEQ  # no special tokens in the text
    with torch.no_grad():
        nats = 0.0
        for i in range(4):  # one window at a time, without batching
            window = torch.from_numpy(stream[i * SEQ : i * SEQ + SEQ + 1])[None]
            logp = F.log_softmax(net(window[:, :-1]), dim=-1)
            nats -= logp.gather(-1, window[:, 1:, None]).sum().item()
    assert sum(w[0] for w in windows) == pytest.approx(nats, rel=1e-5)
    assert all(w[1] == SEQ for w in windows)  # one byte per token
    assert bpb == pytest.approx(nats / np.log(2) / (4 * SEQ), rel=1e-5)
