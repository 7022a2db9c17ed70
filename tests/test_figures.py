"""The zero-shot panels: architectures side by side at each N (the hover says the true N),
and the chance line named in the legend, with no label on the data."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from analysis.report import figures
from analysis.report.view import view_of
from tests.test_report import synthetic_view


@pytest.fixture(scope="module")
def study():
    """One synthetic study, made once (its fits take a while on a busy CPU)."""
    return synthetic_view("one")


def _series(fig, axis: str = "x") -> dict[str, object]:
    """The trials' traces of one panel, by name."""
    return {t.name: t for t in fig.data if t.xaxis == axis and t.customdata is not None}


def test_the_architectures_are_dodged_at_each_n_and_the_hover_says_the_true_n(study):
    fig = figures.zero_shot(view_of([study]))
    for axis in ("x", "x2"):  # each task's panel
        series = _series(fig, axis)
        assert set(series) == {"decoder", "encoder"}
        true_n = [np.asarray(t.customdata)[:, 0] for t in series.values()]
        np.testing.assert_array_equal(true_n[0], [25_000, 100_000, 300_000, 1_000_000])
        np.testing.assert_array_equal(true_n[0], true_n[1])
        xs = [np.asarray(t.x, dtype=float) for t in series.values()]
        assert np.all(xs[0] != xs[1])  # never drawn on top of each other
        for x, n in zip(xs, true_n, strict=True):  # near the true N, by the same factor
            ratio = x / n
            assert np.allclose(ratio, ratio[0]) and 1 / 1.3 < ratio[0] < 1.3
        assert np.isclose(xs[0][0] * xs[1][0], 25_000**2)  # centred on the true N
        for t in series.values():
            assert "%{customdata[0]" in t.hovertemplate and "%{x" not in t.hovertemplate


def test_two_studies_give_every_series_its_own_offset(study):
    pair = [replace(study, name="small"), replace(study, name="large")]
    fig = figures.zero_shot(view_of(pair))
    firsts = [float(t.x[0]) for t in _series(fig).values()]
    assert len(firsts) == 4 and len(set(firsts)) == 4
    assert np.isclose(np.prod(firsts) ** 0.25, 25_000)  # centred on the true N


def test_the_series_share_half_the_narrowest_gap_between_sizes_at_most():
    ladder = pd.Series([25_000, 100_000, 300_000, 1_000_000])
    factors = figures.dodge_factors([ladder, ladder * 1.02, ladder * 0.97])  # near, not equal
    assert factors[1] == 1.0 and np.isclose(factors[0] * factors[2], 1.0)
    assert np.isclose(factors[2] / factors[0], 3 ** (1 / 3))  # half of the 3x gap, in log N
    wide = pd.Series([1e3, 1e6])
    assert np.isclose(np.divide(*figures.dodge_factors([wide, wide])[::-1]), 10**figures.MAX_DODGE)
    one = pd.Series([1e5])
    assert figures.dodge_factors([one, one]) != [1.0, 1.0]  # one size each: still apart


def test_the_chance_line_is_named_in_the_legend_not_labelled_on_the_data(study):
    fig = figures.zero_shot(view_of([study]))
    texts = [a.text for a in fig.layout.annotations]
    assert texts == ["last_word", "minimal_pairs"]  # the panels' titles, no line's label
    chance = [t for t in fig.data if t.name == "chance"]
    assert [tuple(t.y) for t in chance] == [(0.25, 0.25), (0.5, 0.5)]
    assert [t.showlegend for t in chance] == [True, False]  # once in the legend
    assert chance[0].line.dash == "dot"
    assert [t.showlegend for t in fig.data if t.name == "trigram"] == [True, False]


def test_task_loss_has_its_own_panels_one_per_task_lower_is_better(study):
    assert figures.zero_shot_loss(view_of([study])) is None  # no task losses stored: no figure
    acc = study.evals[study.evals.metric == "acc"]
    loss = acc.assign(metric="bpb", value=3.0 - acc.value, chance=None,
                      ci_low=2.9 - acc.value, ci_high=3.1 - acc.value)  # fmt: skip
    with_loss = replace(study, evals=pd.concat([study.evals, loss], ignore_index=True))
    fig = figures.zero_shot_loss(view_of([with_loss]))
    tasks = sorted(set(acc.task))
    assert [a.text for a in fig.layout.annotations] == tasks  # the panel titles, nothing else
    for axis in ("x", "x2"):
        series = _series(fig, axis)
        assert set(series) == {"decoder", "encoder"}
        assert all("task loss %{y" in t.hovertemplate for t in series.values())
    assert not any(t.name == "chance" for t in fig.data)  # a loss has no chance level
    assert "lower is better" in fig.layout.title.text
