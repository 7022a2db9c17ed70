"""Zero-shot items from held-out documents: deterministic, well formed, balanced."""

from __future__ import annotations

from collections import Counter

import pytest

from trainers.corpora import load_documents
from trainers.data import split_documents
from trainers.tasks import AGREEMENT, CHANCE, TASKS, make_tasks


@pytest.fixture(scope="module")
def documents():
    return split_documents(load_documents("builtin:kjv"), 0.02, 0.05, 0)["heldout"]


@pytest.fixture(scope="module")
def tasks(documents):
    return make_tasks(documents, 1000, seed=0)


def test_items_are_identical_across_runs_and_change_with_the_seed(documents, tasks):
    assert make_tasks(documents, 1000, seed=0) == tasks
    assert make_tasks(documents, 1000, seed=1)["last_word"] != tasks["last_word"]


def test_every_task_has_the_items_asked_for_and_one_right_answer(tasks):
    assert set(tasks) == set(TASKS)
    for task, items in tasks.items():
        assert len(items) == 1000
        k = round(1 / CHANCE[task])
        for item in items:
            assert len(item.candidates) == k == len(set(item.candidates))
            assert 0 <= item.answer < k
        # the right answer sits in each position about equally often: no position bias
        positions = Counter(item.answer for item in items)
        assert min(positions.values()) > 0.8 * 1000 / k


def _flat(text: str) -> str:
    return " ".join(text.split())  # items join sentences with single spaces


def test_last_word_continues_a_real_sentence(documents, tasks):
    text = _flat(" ".join(documents))
    for item in tasks["last_word"][:200]:
        right = item.candidates[item.answer]
        assert right.startswith(" ") and right.strip().isalpha()
        assert _flat(item.context + right) in text  # context and answer are the original text
        wrong = [c for c in item.candidates if c != right]
        assert all(
            c.strip().isalpha() and c.strip().lower() != right.strip().lower() for c in wrong
        )


def test_next_sentence_distractors_come_from_other_documents(documents, tasks):
    flat = [_flat(d) for d in documents]
    for item in tasks["next_sentence"][:200]:
        right = item.candidates[item.answer].strip()
        homes = {d for d, doc in enumerate(flat) if _flat(item.context + " " + right) in doc}
        assert homes
        for c in item.candidates:  # from another document, not from the item's own
            if c.strip() != right:
                assert any(c.strip() in doc for doc in flat)
                assert any(c.strip() not in flat[h] for h in homes)


def test_minimal_pairs_differ_by_one_swap_or_one_agreement_word(tasks):
    kinds = Counter()
    for item in tasks["minimal_pairs"]:
        assert item.context == ""
        right = item.candidates[item.answer].split()
        wrong = item.candidates[1 - item.answer].split()
        assert len(right) == len(wrong)
        diff = [k for k in range(len(right)) if right[k] != wrong[k]]
        if len(diff) == 1:
            assert AGREEMENT[right[diff[0]]] == wrong[diff[0]]
            kinds["agreement"] += 1
        else:
            assert len(diff) == 2 and diff[1] == diff[0] + 1
            assert (right[diff[0]], right[diff[1]]) == (wrong[diff[1]], wrong[diff[0]])
            kinds["swap"] += 1
    assert kinds["agreement"] > 150 and kinds["swap"] > 150


def test_few_documents_give_fewer_items_not_an_error():
    tasks = make_tasks(
        ["One sentence here is long enough to use. And another one follows it now."], 50, 0
    )
    assert all(len(items) <= 50 for items in tasks.values())
