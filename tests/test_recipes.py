"""Recipes as rules of N or C (orchestrator/rulesets.py): each built-in set reproduces a value
its source prints; `fixed` (no `recipe:`) keeps today's trials; sweeps of multiples; the fitted
lr*(N) round-trips through the `recipe:` line it prints."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from orchestrator.fitting import fit_lr
from orchestrator.grid import cells, expand
from orchestrator.recipe import CellBudget, Size, plan
from orchestrator.rulesets import constants_of, deepseek_flops_per_token, rates
from orchestrator.sizes import Shape
from orchestrator.spec import parse_study
from orchestrator.store import StoreError

BASE = """\
name: r
architectures: [decoder]
sizes: [25K, 1M]
budget: {tokens: 2M}
"""


def _plan(recipe: str, n_params: int, seq_len: int = 2048, tokens: int = 10**9):
    """The plan of a decoder of `n_params` under `recipe` (its shape only matters to C)."""
    study = parse_study(BASE + f"recipe: {recipe}\ndata: {{seq_len: {seq_len}}}\n")
    size = Size("decoder", "x", Shape(12, 768, 12), n_params)
    return plan(size, CellBudget(tokens=tokens), study)


def test_olmo_reproduces_the_ladder_at_108m():
    # OLMo-core v2.5.0, WSDSChinchillaRunConfigurator: target batch round(2048·160·(N/108M)^(2/3))
    # tokens; its dry run prints "peak LR={lr:.6f}": 0.002350 at N = 108M (0.0047 halved).
    p = _plan("olmo", 108_000_000)
    assert p.batch_size * 2048 == 327_680 and p.batch_size == 160
    assert f"{p.lr:.6f}" == "0.002350"
    assert p.betas == (0.9, 0.99)  # 327,680 tokens < 524,288
    assert p.warmup_tokens == 108_000_000  # one token per parameter
    assert (p.schedule, p.cooldown, p.cooldown_shape) == ("wsd", 0.1, "linear")
    assert p.weight_decay == 0.1
    large = _plan("olmo", 1_000_000_000)
    assert large.batch_size * 2048 == pytest.approx(round(327_680 * (1e9 / 108e6) ** (2 / 3)),
                                                    abs=1024)  # fmt: skip
    assert large.betas[1] == 0.95  # 1.44M tokens ≥ 524,288


def test_porian_at_108m_is_their_anchor_without_the_wsd_halving():
    p = _plan("porian", 108_000_000)
    assert (p.batch_size, p.lr, p.schedule, p.betas[1]) == (160, 0.0047, "cosine", 0.99)
    assert _plan("porian", 300_000_000).betas[1] == 0.95  # 160·2048·(300/108)^(2/3) > 524,288


def test_deepseek_reproduces_the_7b_hyperparameters_of_its_table_2():
    # DeepSeek LLM (2401.02954) Table 2, 7B: 30 layers, d_model 4096, seq 4096, 2.0T tokens;
    # batch 2304 sequences (9.44M tokens), lr 4.2e-4. The paper rounds these from its
    # eq. 1 (the batch to what its cluster takes): the formula gives 4.29e-4 and 9.0M.
    n = 12 * 30 * 4096**2
    compute = deepseek_flops_per_token(n, 30, 4096, 4096) * 2.0e12
    r = rates("deepseek", constants_of("deepseek", {}), n_params=n, compute=compute, wsd=False)
    assert r.lr == pytest.approx(4.2e-4, rel=0.025)
    assert r.batch_tokens == pytest.approx(2304 * 4096, rel=0.05)
    study = parse_study(BASE + "recipe: deepseek\ndata: {seq_len: 4096}\n")
    p = plan(Size("decoder", "7B", Shape(30, 4096, 32), n), CellBudget(tokens=2 * 10**12), study)
    assert p.lr == pytest.approx(r.lr) and p.batch_size == round(r.batch_tokens / 4096)


def test_no_recipe_is_fixed_and_keeps_every_trial():
    plain = expand(parse_study(BASE), "k", "")
    fixed = expand(parse_study(BASE + "recipe: fixed\n"), "k", "")
    assert [t.hash for t in plain] == [t.hash for t in fixed]
    assert plain[0].optim.batch_size == 16 and plain[0].optim.warmup_tokens == 0
    olmo = expand(parse_study(BASE + "recipe: olmo\n"), "k", "")
    assert not {t.hash for t in olmo} & {t.hash for t in plain}


def test_constants_override_and_a_sweep_is_of_multiples_with_readable_ids():
    text = BASE + "recipe: {name: olmo, lr_scale: 0.5}\ntrain: {lr: {sweep: [0.5, 1, 2]}}\n"
    trials = expand(parse_study(text), "k", "")
    ids = [t.trial_id for t in trials[:3]]
    assert ids == ["decoder-25K-lrx0.5-s0", "decoder-25K-lrx1-s0", "decoder-25K-lrx2-s0"]
    rates_ = [t.optim.lr for t in trials[:3]]
    assert rates_[0] * 2 == pytest.approx(rates_[1]) and rates_[2] == pytest.approx(2 * rates_[1])
    n = parse_study(text)  # lr_scale halves the rule's rate
    size = Size("decoder", "x", Shape(2, 32, 2), 25_000)
    full = parse_study(BASE + "recipe: olmo\n")
    assert plan(size, CellBudget(tokens=10**6), n).lr * 2 == pytest.approx(
        plan(size, CellBudget(tokens=10**6), full).lr
    )
    fixed = expand(parse_study(BASE + "train: {lr: {sweep: [0.5, 1]}}\n"), "k", "")
    assert fixed[1].optim.lr == pytest.approx(2 * fixed[0].optim.lr)  # of the default rule


@pytest.mark.parametrize("recipe", ["olmo", "deepseek"])
def test_flop_budgets_spend_the_rules_batch(recipe):
    sizes = "[10K, 25K, 50K, 100K, 200K, 300K, 400K, 1M]"
    text = BASE.replace("{tokens: 2M}", "{flops: [1e11, 3e11, 1e12]}").replace("[25K, 1M]", sizes)
    study = parse_study(text + f"recipe: {recipe}\n")
    trained = [c for c in cells(study, vocab_size=300) if not c.left_out]
    trials = expand(study, "k", "", vocab_size=300)
    assert len(trained) == len(trials) > 10
    for cell, trial in zip(trained, trials, strict=True):  # whole steps of the rule's batch
        batch = plan(cell.size, CellBudget(flops=cell.budget_flops), study, vocab_size=300)
        assert batch.batch_size != 16 and batch.tokens == cell.tokens == trial.budget.tokens
        assert trial.optim.batch_size == batch.batch_size and trial.optim.lr == batch.lr
        assert cell.tokens % (batch.batch_size * study.data.seq_len) == 0


def _sweep_frame(exponent: float = -0.3, coef: float = 0.02) -> pd.DataFrame:
    """Finished trials of a sweep whose best rate at N is coef·N^exponent exactly (the loss a
    parabola in log lr around it)."""
    rows = []
    for n in (1e5, 3e5, 1e6, 3e6):
        best = coef * n**exponent
        for k, m in enumerate((0.25, 0.5, 1, 2, 4)):
            rows.append({"trial_id": f"d-{n:g}-{k}", "architecture": "decoder",
                         "status": "finished", "val_loss": 3 + np.log(m) ** 2,
                         "n_params": n, "tokens": 20 * n, "flops": 120 * n * n,
                         "lr": best * m})  # fmt: skip
    return pd.DataFrame(rows)


@pytest.mark.parametrize("recipe", [{"name": "fixed"}, {"name": "olmo", "batch_ref": 65536}])
def test_the_fitted_lr_law_round_trips_through_the_recipe_line_it_prints(recipe):
    fit = fit_lr(_sweep_frame(), "decoder", recipe, n_boot=200, study="r")
    assert fit.b.estimate == pytest.approx(-0.3) and fit.a.estimate == pytest.approx(0.02)
    assert fit.b.ci[0] <= -0.3 <= fit.b.ci[1]
    line = fit.summary("decoder").splitlines()[-1].strip()
    assert line.startswith("recipe: {name: " + ("porian" if recipe["name"] == "fixed" else "olmo"))
    assert fit.to_json()["recipe"]["lr_exponent"] == pytest.approx(-0.3)
    study = parse_study(BASE + line + "\n")
    for n in (1e5, 1e6, 3e7):
        size = Size("decoder", "x", Shape(2, 32, 2), int(n))
        got = plan(size, CellBudget(tokens=10**6), study).lr
        assert got == pytest.approx(0.02 * int(n) ** -0.3, rel=1e-5)
    if recipe["name"] == "olmo":
        assert "batch_ref: 65536" in line  # the study's own overrides are kept


def test_a_study_without_a_sweep_has_no_lr_law():
    frame = _sweep_frame()
    frame = frame[frame.lr == frame.groupby("n_params").lr.transform("min")]
    with pytest.raises(StoreError, match="no finished learning-rate sweep of decoder"):
        fit_lr(frame, "decoder", {"name": "fixed"}, n_boot=10, study="r")


def test_plan_counts_what_a_changed_recipe_will_train(tmp_path, monkeypatch):
    from sqlalchemy import create_engine, text

    from orchestrator.reading import already_trained
    from orchestrator.stages import planned_accounting
    from orchestrator.store import RunStore

    monkeypatch.chdir(tmp_path)
    assert already_trained("r", ["a", "b"]).startswith("to train: 2 of 2 trials; 0 finished")
    old = parse_study(BASE)
    trials = expand(old, "k", "")
    (tmp_path / "runs").mkdir()
    with RunStore.open("sqlite:///runs/r.db") as store:
        store.register("r", trials, spec=old.model_dump(mode="json"), spec_hash=old.hash(),
                       planned={t.trial_id: planned_accounting(t, 300) for t in trials},
                       data=None)  # fmt: skip
    engine = create_engine("sqlite:///runs/r.db")
    with engine.begin() as db:
        db.execute(text("UPDATE trials SET status = 'finished'"))
    engine.dispose()
    same = [t.hash for t in expand(parse_study(BASE + "recipe: fixed\n"), "k", "")]
    assert already_trained("r", same).startswith("to train: 0 of 2 trials; 2 finished already")
    changed = [t.hash for t in expand(parse_study(BASE + "recipe: olmo\n"), "k", "")]
    assert already_trained("r", changed).startswith("to train: 2 of 2 trials; 0 finished")


def test_constants_may_differ_by_architecture_and_the_fit_prints_one_line_for_all():
    from orchestrator.fitting import recipe_for_all

    decoder = _sweep_frame(-0.3, 0.02)
    encoder = _sweep_frame(-0.2, 0.004).assign(architecture="encoder")
    fits = {arch: fit_lr(frame, arch, {"name": "porian", "batch_ref": 65536}, n_boot=100,
                         study="r")
            for arch, frame in (("decoder", decoder), ("encoder", encoder))}  # fmt: skip
    line = recipe_for_all(fits).splitlines()[-1].strip()
    assert "batch_ref: 65536," in line and "lr_exponent: {decoder: -0.3, encoder: -0.2}" in line
    study = parse_study(BASE.replace("[decoder]", "[decoder, encoder]") + line + "\n")
    for arch, coef, exponent in (("decoder", 0.02, -0.3), ("encoder", 0.004, -0.2)):
        p = plan(Size(arch, "x", Shape(2, 32, 2), 10**6), CellBudget(tokens=10**6), study)
        assert p.lr == pytest.approx(coef * 1e6**exponent, rel=1e-5)
    mixed = parse_study(BASE + "recipe: {name: olmo, lr_ref: {encoder: 0.001}}\n")
    assert _plan("olmo", 108_000_000).lr == plan(
        Size("decoder", "x", Shape(12, 768, 12), 108_000_000), CellBudget(tokens=10**9),
        mixed.model_copy(update={"data": parse_study(BASE + "data: {seq_len: 2048}\n").data}),
    ).lr  # an architecture a mapping leaves out keeps the published constant


def test_a_cells_best_rate_is_read_between_the_rates_tried():
    from analysis.fits import best_runs, vertex_rates

    rows = [{"N": 1e5, "D": 1e6, "lr": 1e-3 * m, "loss": 3 + (np.log(m) - 0.2) ** 2,
             "trial_id": str(m)} for m in (0.5, 1, 2, 4)]  # fmt: skip
    frame = pd.DataFrame(rows).assign(C=6e11)
    points, _, _ = best_runs(frame)
    assert list(points.lr) == [1e-3]
    assert vertex_rates(frame, points)[0] == pytest.approx(1e-3 * np.exp(0.2))


FIXED = ("scaling-gpu",)  # as before recipes; the quickstart and reference studies: their own


@pytest.mark.parametrize("name", ["quickstart", "scaling", "isoflop", "lr-sweep", "scaling-gpu"])
def test_every_shipped_study_names_its_recipe(name):
    from pathlib import Path

    import yaml

    from orchestrator.spec import load_study

    path = Path(__file__).parents[1] / "studies" / f"{name}.yaml"
    assert "recipe" in yaml.safe_load(path.read_text())  # said, not left to the default
    assert load_study(path).recipe.name == ("fixed" if name in FIXED else "porian")


def test_plan_does_not_count_a_store_it_cannot_read_as_empty(tmp_path, monkeypatch):
    from orchestrator.reading import already_trained

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "r.db").write_bytes(b"not a database" * 100)
    line = already_trained("r", ["a", "b"])
    assert line.startswith("to train: 2 of 2 trials unless sqlite:///runs/r.db says otherwise: ")
    assert "0 finished" not in line


def test_deepseek_takes_the_studys_warmup_and_olmo_refuses_it():
    from orchestrator.spec import StudyError

    p = plan(Size("decoder", "x", Shape(2, 32, 2), 25_000), CellBudget(tokens=10**6),
             parse_study(BASE + "recipe: deepseek\ntrain: {warmup: 0.2}\n"))  # fmt: skip
    assert p.warmup == 0.2 and p.warmup_tokens == 0
    with pytest.raises(StudyError, match="train.warmup: conflicts with recipe: olmo"):
        parse_study(BASE + "recipe: olmo\ntrain: {warmup: 0.2}\n")


def test_a_sweep_of_one_multiple_trains_its_predictions_at_that_multiple():
    from orchestrator.grid import cells
    from orchestrator.predicting import _learning_rate

    text = BASE.replace("{tokens: 2M}", "{tokens: 2M}\npredict: {flops: 1e15}")
    one = parse_study(text + "recipe: porian\ntrain: {lr: {sweep: [2]}}\n")
    rule = parse_study(text + "recipe: porian\n")
    cell = cells(one)[0]
    assert _learning_rate(one, cell, None) == pytest.approx(2 * _learning_rate(rule, cell, None))
    assert expand(one, "k", "")[0].optim.lr == pytest.approx(2 * expand(rule, "k", "")[0].optim.lr)


def test_a_cell_whose_other_rates_failed_is_left_out_of_the_lr_law():
    frame = _sweep_frame()
    frame.loc[(frame.n_params == 1e5) & (frame.lr != frame.lr.where(frame.n_params == 1e5).min() * 4),
              "status"] = "failed"  # fmt: skip
    fit = fit_lr(frame, "decoder", {"name": "fixed"}, n_boot=50, study="r")
    assert any("fewer than 3 of their rates finished: N=1e+05" in w for w in fit.warnings)
    assert fit.b.estimate == pytest.approx(-0.3)
