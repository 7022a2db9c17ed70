"""Grid expansion: deterministic, readable ids, stable hashes, the size ladder honest."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.grid import expand
from orchestrator.sizes import LADDER, format_count, non_embedding_params, parse_count
from orchestrator.spec import StudyError, parse_study
from trainers.accounting import max_encdec_seq_len

STUDY = """\
name: g
architectures: [decoder]
sizes: [1M, 25K, {n_layer: 2, n_embd: 48, n_head: 3}]
budget: {tokens: [2M, 600K]}
seeds: [0, 1]
"""


PINNED_HASH = "66d20900a7ddba21"


def grid(text: str, source: str = "<string>"):
    """The trials of a study text, as `study run` makes them (the data key given)."""
    spec = parse_study(text, source)
    return expand(spec, "k3y", spec.storage)


def test_grid_is_the_product_in_a_stable_order():
    trials = grid(STUDY)
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
    first, second = grid(STUDY), grid(STUDY)
    assert [(t.trial_id, t.hash) for t in first] == [(t.trial_id, t.hash) for t in second]
    assert len({t.hash for t in first}) == len(first)


def test_single_budget_ids_read_like_decoder_1m_s0():
    text = STUDY.replace("[2M, 600K]", "600K").replace("[0, 1]", "[0]")
    assert [t.trial_id for t in grid(text)] == [
        "decoder-25K-s0",
        "decoder-56.6K-s0",
        "decoder-1M-s0",
    ]


def test_hash_ignores_placement_but_not_training():
    base = grid(STUDY)[0]
    moved = grid(STUDY + "resources: {cpus_per_trial: 2}\nstorage: /elsewhere\n")[0]
    retuned = grid(STUDY + "train: {lr: 1.0e-3}\n")[0]
    assert moved.hash == base.hash
    assert retuned.hash != base.hash


PLACEMENT = [
    "resources: {cpus_per_trial: 2, gpus_per_trial: 1, max_retries: 3, peak_flops: 1T}\n",
    "resources: {workers: 4, cpus_per_worker: 2, gpus_per_worker: 1, strategy: ddp}\n",
    "resources: {workers: 2, strategy: fsdp}\n",
    "storage: /elsewhere\n",
    "train: {checkpoint_every: 100K}\n",
]
MEANING = [
    "train: {lr: 1.0e-3}\n",
    "train: {batch_size: 8}\n",
    "train: {warmup: 0.1}\n",
    "data: {corpus: 'builtin:pydocs'}\n",
    "data: {tokenizer: {bpe: 512}}\n",
    "data: {seq_len: 128}\n",
    "data: {split_seed: 1}\n",
    "data: {val_fraction: 0.05}\n",
    "train: {dropout: 0.1}\n",
]
# Evaluation settings: they have a key of their own, so changing them retrains nothing.
EVALUATION = [
    "eval: {tokens: 4096}\n",
    "eval: {zero_shot: {items: 10}}\n",
    "eval: {zero_shot: {seed: 3, pll_stride: 1, at_every_eval: true}}\n",
    "eval: {zero_shot: {tasks: [last_word]}}\n",
]


@pytest.mark.parametrize("change", PLACEMENT)
def test_where_a_trial_runs_never_makes_a_new_cell(change):
    base = {t.trial_id: t.hash for t in grid(STUDY)}
    assert {t.trial_id: t.hash for t in grid(STUDY + change)} == base


@pytest.mark.parametrize("change", MEANING)
def test_what_a_trial_means_makes_new_cells_never_reusing_old_ones(change):
    base = {t.hash for t in grid(STUDY)}
    assert not base & {t.hash for t in grid(STUDY + change)}


@pytest.mark.parametrize("change", EVALUATION)
def test_evaluation_settings_change_the_evaluation_key_not_the_trial(change):
    base, changed = grid(STUDY), grid(STUDY + change)
    assert [t.hash for t in changed] == [t.hash for t in base]
    assert {t.eval_key for t in base}.isdisjoint({t.eval_key for t in changed})


def test_the_evaluation_key_is_one_per_study_whatever_the_budgets():
    # the cadence (a tenth of each budget by default) says when a trial is scored, not how
    assert len({t.eval_key for t in grid(STUDY)}) == 1


def test_a_field_added_with_a_default_changes_no_hash():
    from dataclasses import make_dataclass

    from trainers.trial import Model, identity_hash

    model = grid(STUDY)[0].model
    Grown = make_dataclass("Model", [("gated_mlp", bool, False)], bases=(Model,), frozen=True)
    grown = Grown(**vars(model))
    assert identity_hash(grown) == identity_hash(model)
    assert identity_hash(Grown(**vars(model), gated_mlp=True)) != identity_hash(model)


def test_the_hash_of_a_trial_is_pinned():
    # the identity every store holds: a change here orphans every stored trial (a migration
    # must rehash them, as 0003 does)
    assert grid(STUDY)[0].hash == PINNED_HASH


def test_more_tokens_seeds_or_sizes_keep_the_old_cells_and_add_new_ones():
    base = {t.trial_id: t.hash for t in grid(STUDY)}
    grown = STUDY.replace("[2M, 600K]", "[2M, 600K, 4M]").replace("[0, 1]", "[0, 1, 2]")
    grown = grown.replace("sizes: [1M, 25K", "sizes: [1M, 300K, 25K")
    bigger = {t.trial_id: t.hash for t in grid(grown)}
    assert base.items() <= bigger.items()
    assert len(bigger) == 4 * 3 * 3


def test_gpus_per_trial_may_follow_a_rule_of_n_without_changing_hashes():
    rule = """\
resources:
  gpus_per_trial:
    - {max_params: 30K, gpus: 0.25}
    - {max_params: 100K, gpus: 0.5}
    - {gpus: 2}
"""
    ruled = grid(STUDY + rule)
    gpus = {t.size: t.placement.gpus for t in ruled}
    assert gpus == {"25K": 0.25, "56.6K": 0.5, "1M": 2.0}  # N is 25K, 56.6K and 1M
    assert [t.hash for t in ruled] == [t.hash for t in grid(STUDY)]


def test_workers_may_follow_a_rule_of_n_without_changing_hashes():
    rule = """\
resources:
  workers:
    - {max_params: 30K, workers: 1}
    - {max_params: 100K, workers: 2}
    - {workers: 4, gpus_per_worker: 1, strategy: fsdp}
"""
    ruled = grid(STUDY + rule)
    spread = {t.size: (t.placement.workers, t.placement.gpus, t.placement.strategy) for t in ruled}
    assert spread == {"25K": (1, 0, "ddp"), "56.6K": (2, 0, "ddp"), "1M": (4, 1.0, "fsdp")}
    assert [t.hash for t in ruled] == [t.hash for t in grid(STUDY)]


def test_the_workers_of_a_trial_are_neither_its_identity_nor_its_evaluation_key():
    from dataclasses import replace

    trial = grid(STUDY)[0]
    assert trial.placement.workers == 1  # a study without `workers` trains as before
    wide = replace(trial, placement=replace(trial.placement, workers=8, strategy="ddp"))
    assert (wide.hash, wide.eval_key) == (trial.hash, trial.eval_key)
    assert wide.hash == PINNED_HASH
    assert type(trial).from_dict(wide.to_dict()) == wide


def test_one_shape_given_twice_is_rejected():
    text = STUDY.replace(
        "{n_layer: 2, n_embd: 48, n_head: 3}", "{n_layer: 2, n_embd: 32, n_head: 2, name: small}"
    )
    with pytest.raises(
        StudyError, match="decoder-25K-600Ktok-s0 and decoder-small-600Ktok-s0 would train the same"
    ):
        grid(text)


def test_duplicate_trial_ids_are_rejected():
    text = STUDY.replace(
        "{n_layer: 2, n_embd: 48, n_head: 3}", "{n_layer: 2, n_embd: 32, n_head: 2, name: 25K}"
    )
    with pytest.raises(StudyError, match="same trial id"):
        grid(text)


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


LR_STUDY = """\
name: lr
architectures: [decoder, encoder, encdec]
sizes: [25K, 1M, 10M, 100M]
budget: {tokens: 1M}
"""


def test_the_default_lr_rule_is_flat_to_1m_then_falls_as_n_to_the_minus_third():
    trials = grid(LR_STUDY)
    lr = {t.trial_id: t.optim.lr for t in trials}
    base = {"decoder": 3e-3, "encoder": 1e-3, "encdec": 2e-3}
    for arch, value in base.items():
        assert lr[f"{arch}-25K-s0"] == value
    flat = set()
    for t in trials:
        n = non_embedding_params(t.model.architecture, LADDER[t.model.architecture][t.size])
        if n > 1_000_000:  # the encoder's 1M holds 1.008M with its masked-LM head
            assert t.optim.lr == pytest.approx(base[t.model.architecture] * (n / 1e6) ** (-1 / 3))
        else:
            assert t.optim.lr == base[t.model.architecture]
            flat.add(t.trial_id)
    assert {"decoder-1M-s0", "encdec-1M-s0"} <= flat
    assert lr["decoder-100M-s0"] < lr["decoder-10M-s0"] < lr["decoder-1M-s0"]


def test_a_rule_with_one_base_for_some_architectures_keeps_the_defaults_for_the_others():
    text = LR_STUDY + "train: {lr: {base: {encoder: 1.0e-3}, at: 10M, exponent: 0.5}}\n"
    lr = {t.trial_id: t.optim.lr for t in grid(text)}
    assert lr["encoder-10M-s0"] == 1e-3 and lr["decoder-1M-s0"] == 3e-3
    n = non_embedding_params("encoder", LADDER["encoder"]["100M"])
    assert lr["encoder-100M-s0"] == pytest.approx(1e-3 * (n / 1e7) ** -0.5)


def test_a_learning_rate_sweep_is_a_grid_axis_with_readable_ids():
    text = LR_STUDY.replace("[25K, 1M, 10M, 100M]", "[1M]") + "train: {lr: [1.0e-3, 3.0e-3]}\n"
    trials = grid(text)
    assert [t.trial_id for t in trials[:2]] == ["decoder-1M-lr0.001-s0", "decoder-1M-lr0.003-s0"]
    assert len(trials) == 6 and len({t.hash for t in trials}) == 6


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ("{lr: [1.0e-3, 1.0e-3]}", "train.lr: a learning-rate sweep is a list of distinct"),
        ("{lr: [1.0e-3, 1.0001e-3]}", "learning rates equal to 3 significant digits"),
        ("{lr: {base: {gpt: 1.0e-3}}}", "train.lr.base: unknown architectures ['gpt']"),
        ("{lr: {rule: sqrt}}", "train.lr.rule: Input should be 'power'"),
        ("{lr: 0}", "train.lr: Input should be greater than 0"),
    ],
)
def test_bad_learning_rates_are_named(train, message):
    with pytest.raises(StudyError, match=re.escape(message)):
        grid(LR_STUDY + f"train: {train}\n", "lr.yaml")


def test_encdec_refuses_a_sequence_longer_than_its_sentinels_allow():
    text = LR_STUDY + "data: {seq_len: 4096}\n"
    with pytest.raises(StudyError, match="lr.yaml:2: architectures: encdec at data.seq_len=4096"):
        parse_study(text, "lr.yaml")
    assert max_encdec_seq_len() == 2009
    parse_study(text.replace("4096", "2009"))
    with pytest.raises(StudyError, match="use seq_len <= 2009"):
        parse_study(text.replace("4096", "2010"))
    parse_study(text.replace("decoder, encoder, encdec", "decoder, encoder"))  # fine without it


def test_chinchilla_budgets_give_each_size_twenty_tokens_per_parameter():
    text = STUDY.replace("budget: {tokens: [2M, 600K]}", "budget: {chinchilla: [1, 0.5]}")
    trials = grid(text.replace("[0, 1]", "[0]"))
    by_id = {t.trial_id: t for t in trials}
    n_1m = non_embedding_params("decoder", LADDER["decoder"]["1M"])
    assert by_id["decoder-1M-1xC-s0"].budget.tokens == 20 * n_1m
    assert by_id["decoder-1M-0.5xC-s0"].budget.tokens == 10 * n_1m
    assert [t.trial_id for t in trials][:2] == ["decoder-25K-0.5xC-s0", "decoder-25K-1xC-s0"]
    single = grid(STUDY.replace("{tokens: [2M, 600K]}", "{chinchilla: 1}"))
    assert single[0].trial_id == "decoder-25K-s0"


def test_the_gpu_study_is_decoders_from_10m_to_200m_at_chinchilla_budgets():
    from pathlib import Path

    from orchestrator.spec import load_study

    study = load_study(Path(__file__).parents[1] / "studies" / "scaling-gpu.yaml")
    trials = expand(study, "", "")
    sizes = [non_embedding_params(t.model.architecture, LADDER["decoder"][t.size]) for t in trials]
    assert [t.size for t in trials] == ["10M", "20M", "50M", "100M", "200M"]
    assert all(
        t.budget.tokens == 20 * n and t.placement.gpus == 1
        for t, n in zip(trials, sizes, strict=True)
    )
    assert 9.5e6 < sizes[0] and sizes[-1] < 2.1e8


ISO = """\
name: iso
data: {seq_len: 32}
architectures: [decoder]
sizes: [10M, 20M, 50M, 100M, 200M]
budget: {flops: [3e16, 1e17, 3e17, 1e18]}
"""


def _flops_per_token(cell, vocab_size=359, seq_len=32):
    from trainers.architectures import account

    shape = cell.shape
    return account(
        cell.architecture, shape.n_layer, shape.n_embd, vocab_size, seq_len
    ).flops_per_token


def test_flop_budgets_give_every_cell_its_budget_within_one_percent():
    from orchestrator.grid import cells

    spec = parse_study(ISO.replace("[3e16, 1e17, 3e17, 1e18]", "[3e16, 300P, 1e18, 1e11]"))
    planned = cells(spec, vocab_size=359, train_tokens=None)
    kept = [c for c in planned if not c.left_out]
    assert {c.budget_flops for c in kept} == {3e16, 3e17, 1e18}
    for cell in kept:
        assert cell.tokens % (16 * 32) == 0  # whole steps
        assert abs(_flops_per_token(cell) * cell.tokens / cell.budget_flops - 1) <= 0.01
    small = [c.left_out for c in planned if c.budget_flops == 1e11]
    assert any("fewer tokens than one batch (512)" in why for why in small)
    assert any("whole steps of 512 tokens miss the budget by" in why for why in small)
    assert len(small) == 5  # every size: the whole budget is left out
    trials = expand(spec, "k", "", vocab_size=359)
    assert trials[0].trial_id == "decoder-10M-3e16F-s0" and trials[0].budget_flops == 3e16
    assert trials[0].budget.tokens == kept[0].tokens
    one = parse_study(ISO.replace("[3e16, 1e17, 3e17, 1e18]", "[3e16]"))
    assert expand(one, "k", "", vocab_size=359)[0].trial_id == "decoder-10M-3e16F-s0"


def test_flop_budgets_leave_out_cells_that_would_repeat_the_data():
    from orchestrator.grid import cells

    spec = parse_study(ISO.replace("{seq_len: 32}", "{seq_len: 32, max_epochs: 2}"))
    planned = cells(spec, vocab_size=359, train_tokens=2_000_000_000)
    repeating = [c for c in planned if "times (data.max_epochs is 2)" in c.left_out]
    assert repeating and all(c.tokens > 4_000_000_000 for c in repeating)
    assert all(c.tokens <= 4_000_000_000 for c in planned if not c.left_out)
    with pytest.raises(ValueError, match="vocabulary size"):
        cells(spec)


def test_a_synthetic_law_through_flop_budget_cells_gives_back_its_exponents():
    """Chinchilla's law (Hoffmann et al. 2022, approach 3: alpha 0.34, beta 0.28) at the cells of
    an IsoFLOP grid, with 0.2% noise: the IsoFLOP fit finds N_opt ∝ C^a and D_opt ∝ C^b with the
    law's exponents inside its intervals (a = beta/(alpha+beta), b = alpha/(alpha+beta))."""
    import numpy as np
    import pandas as pd

    from analysis.fits import fit_points
    from orchestrator.grid import cells

    alpha, beta = 0.34, 0.28
    rng = np.random.default_rng(0)
    rows = []
    for cell in cells(parse_study(ISO), vocab_size=359):
        loss = 1.69 + 406.4 / cell.n_params**alpha + 410.7 / cell.tokens**beta
        rows.append({"N": cell.n_params, "D": cell.tokens, "C": _flops_per_token(cell) * cell.tokens,
                     "loss": loss * (1 + 0.002 * rng.standard_normal())})  # fmt: skip
    fit = fit_points("isoflop", pd.DataFrame(rows), n_boot=200)
    a, b = fit.a, fit.b
    assert a.ci[0] < beta / (alpha + beta) < a.ci[1]
    assert b.ci[0] < alpha / (alpha + beta) < b.ci[1]
    assert len(fit.budgets) == 4 and not fit.warnings


def test_plan_of_flop_budgets_says_what_it_leaves_out_and_counts_trials_in_words(
    tmp_path, study_cli
):
    (tmp_path / "p.yaml").write_text(
        "name: p\ndata: {corpus: 'builtin:kjv', tokenizer: bytes, seq_len: 32}\n"
        "architectures: [decoder]\nsizes: [10K, 25K, 50K]\nbudget: {flops: [1e10, 1e12, 6e12]}\n"
        f"train: {{batch_size: 8}}\nstorage: {tmp_path / 'artifacts'}\n"
    )
    done = study_cli("plan", "p.yaml", cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    out = " ".join(done.stdout.split())
    assert "budget 1e10 FLOPs: 3 trials" in out and "budget 6e12 FLOPs: 1 trial " in out
    left = [line for line in done.stdout.splitlines() if line.startswith("left out: ")]
    assert len(left) == 2 and all("at 6e12 FLOPs" in line for line in left)
    assert "data.max_epochs is 4" in left[0] and not (tmp_path / "runs").exists()
    # cells that read the data more than once: one warning naming them, not one line each
    [repeats] = [line for line in done.stdout.splitlines() if "the data repeats" in line]
    assert repeats.startswith("warning: 3 cells read the 3.98M-token training split more than")
    assert "decoder 10K on 7.69M tokens (1.9 times)" in repeats and "decoder 50K on" in repeats
