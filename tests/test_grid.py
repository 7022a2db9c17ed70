"""Grid expansion: deterministic, readable ids, stable hashes, the size ladder honest."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.grid import expand
from orchestrator.sizes import LADDER, format_count, non_embedding_params, parse_count
from orchestrator.spec import StudyError, parse_study

STUDY = """\
name: g
architectures: [decoder]
sizes: [1M, 25K, {n_layer: 2, n_embd: 48, n_head: 3}]
budget: {tokens: [2M, 600K]}
seeds: [0, 1]
"""


def test_grid_is_the_product_in_a_stable_order():
    trials = expand(parse_study(STUDY))
    assert len(trials) == 3 * 2 * 2
    assert [t.trial_id for t in trials][:4] == [
        "decoder-25K-600Ktok-s0",
        "decoder-25K-600Ktok-s1",
        "decoder-25K-2Mtok-s0",
        "decoder-25K-2Mtok-s1",
    ]
    assert trials[-1].trial_id == "decoder-1M-2Mtok-s1"
    assert trials[4].size == "56.6K"  # an explicit shape is labelled by its N


def test_grid_is_deterministic_and_hashes_are_unique():
    first, second = expand(parse_study(STUDY)), expand(parse_study(STUDY))
    assert [(t.trial_id, t.hash) for t in first] == [(t.trial_id, t.hash) for t in second]
    assert len({t.hash for t in first}) == len(first)


def test_single_budget_ids_read_like_decoder_1m_s0():
    text = STUDY.replace("[2M, 600K]", "600K").replace("[0, 1]", "[0]")
    assert [t.trial_id for t in expand(parse_study(text))] == [
        "decoder-25K-s0",
        "decoder-56.6K-s0",
        "decoder-1M-s0",
    ]


def test_hash_ignores_placement_but_not_training():
    base = expand(parse_study(STUDY))[0]
    moved = expand(parse_study(STUDY + "resources: {cpus_per_trial: 2}\nstorage: /elsewhere\n"))[0]
    retuned = expand(parse_study(STUDY + "train: {lr: 1.0e-3}\n"))[0]
    assert moved.hash == base.hash
    assert retuned.hash != base.hash


def test_duplicate_trial_ids_are_rejected():
    text = STUDY.replace(
        "{n_layer: 2, n_embd: 48, n_head: 3}", "{n_layer: 2, n_embd: 32, n_head: 2, name: 25K}"
    )
    with pytest.raises(StudyError, match="same trial"):
        expand(parse_study(text))


@pytest.mark.parametrize(("architecture", "label"), [(a, s) for a in LADDER for s in LADDER[a]])
def test_every_ladder_label_is_within_5_percent_of_n(architecture, label):
    n = non_embedding_params(architecture, LADDER[architecture][label])
    assert abs(n - parse_count(label)) / parse_count(label) < 0.05


@given(st.integers(min_value=1, max_value=10**13))
def test_format_count_round_trips_within_rounding(n):
    assert abs(parse_count(format_count(n)) - n) <= max(0.005 * n, 1)


@pytest.mark.parametrize("bad", ["", "abc", "-5", "1.5", "0", True])
def test_parse_count_rejects_non_counts(bad):
    with pytest.raises(ValueError):
        parse_count(bad)
