"""Predict, then verify: a prediction at a budget beyond the grid, stored before its trial trains,
never made again, and checked by training."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from analysis.forecast import APPROACH_3, METHODS
from analysis.laws import CHINCHILLA_ND
from analysis.predict import forecast, verdict
from analysis.results import stored_forecast
from orchestrator.grid import prediction_cell, shape_near
from orchestrator.sizes import non_embedding_params
from orchestrator.spec import load_study, parse_study

TRUE = {"E": 1.7, "A": 400.0, "alpha": 0.34, "B": 410.0, "beta": 0.28}


def _law_points(budgets=(1e17, 3e17, 1e18, 3e18), sizes=9, noise=0.003, seed=0):
    """IsoFLOP cells (C = 6ND) of a known L(N, D), with multiplicative noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in budgets:
        for n in np.geomspace(3e7, 1.5e9, sizes):
            d = c / (6 * n)
            loss = CHINCHILLA_ND.predict(TRUE, N=n, D=d) * np.exp(rng.normal(0, noise))
            rows.append({"trial_id": f"{n:.3g}-{c:.0e}", "N": n, "D": d, "C": c,
                         "loss": float(loss)})  # fmt: skip
    return pd.DataFrame(rows)


def predict_budget(points, flops, cell_of, n_boot):
    """What `study predict` does at a budget: the forecast, the model `cell_of(N_opt)` trained
    there (its N and tokens), the prediction for it."""
    ahead = forecast(points, flops, n_boot)
    return ahead.predict(*cell_of(ahead.n_opt))


def test_a_known_law_is_predicted_at_three_times_the_largest_budget():
    points = _law_points()
    flops = 1e19
    chosen = {}

    def cell_of(n_opt):  # the model trained there: N as chosen, D spends the budget
        chosen["n"] = n_opt
        n = round(n_opt, -5)
        return n, round(flops / (6 * n))

    result = predict_budget(points, flops, cell_of, n_boot=200)
    n, d = result.n_params, result.tokens
    truth = float(CHINCHILLA_ND.predict(TRUE, N=n, D=d))
    # the method the backtest picked, and the backtest, kept with the prediction
    kept = result.forecast
    assert result.optimum.source == kept["method"] in METHODS
    assert kept["methods"].keys() == set(METHODS)  # both fitted, side by side
    left_out = [r["budget"] for r in kept["backtest"]]
    assert len(kept["backtest"]) == 4 * 2 and left_out[0] == pytest.approx(3e18, rel=0.01)
    assert all(abs(r["error"]) < 0.02 for r in kept["backtest"])
    assert kept["text"].startswith(f"forecast {kept['loss']:.4g} [")
    assert "backtest: largest budget" in kept["text"]
    assert result.interval == "budget bootstrap" and result.notes
    # the true compute-optimal N at 1e19 under C = 6ND (Hoffmann et al.'s eq. 4)
    a = TRUE["beta"] / (TRUE["alpha"] + TRUE["beta"])
    g = (TRUE["alpha"] * TRUE["A"] / (TRUE["beta"] * TRUE["B"])) ** (1 / (TRUE["alpha"] +
                                                                        TRUE["beta"]))  # fmt: skip
    n_true = g * (flops / 6) ** a
    assert abs(np.log(chosen["n"] / n_true)) < np.log(1.5)
    assert abs(result.loss / truth - 1) < 0.01
    low, high = result.ci
    assert low < truth < high
    assert sorted(result.trials) == sorted(points.trial_id)


def test_a_prediction_holds_d_opt_with_its_interval_and_the_export_gives_it(tmp_path):
    from sqlalchemy.orm import Session

    from orchestrator.store import open_store, predictions_frame, store_prediction
    from tests.test_store import _registered

    flops = 1e19
    made = predict_budget(_law_points(), flops, lambda n: (round(n), round(flops / (6 * n))), 100)
    row = made.row(architecture="decoder", trial_id="t1", trial_hash="h1", cell={})
    n_opt, d_opt = made.optimum.n_opt, made.optimum.d_opt
    # the true compute-optimal D at 1e19 under C = 6ND (Hoffmann et al.'s eq. 4)
    alpha, beta = TRUE["alpha"], TRUE["beta"]
    g = (alpha * TRUE["A"] / (beta * TRUE["B"])) ** (1 / (alpha + beta))
    d_true = (flops / 6) ** (alpha / (alpha + beta)) / g
    assert abs(np.log(d_opt.estimate / d_true)) < np.log(1.5)
    for at in (n_opt, d_opt):
        low, high = at.ci
        assert low < at.estimate < high
    kept = row["fit"]["optimum"]  # what the store and the export keep
    assert kept["D_opt"] == {"estimate": d_opt.estimate, "ci": list(d_opt.ci)}
    assert kept["interval"] == "budget bootstrap"  # the forecast's resamples of whole budgets
    assert row["n_opt_from"] == row["fit"]["forecast"]["method"] in METHODS
    stored = stored_forecast(row["fit"])  # read back typed, as the report and headline read it
    assert stored.method == row["n_opt_from"] and stored.json == row["fit"]["forecast"]
    assert stored.chosen().startswith(f"{stored.loss:.4g} [") and stored.chosen().endswith(
        f"by {stored.method}")  # fmt: skip
    assert [(b.budget, b.method) for b in stored.backtest] == [
        (r["budget"], r["method"]) for r in row["fit"]["forecast"]["backtest"]]  # fmt: skip
    assert all(b.text().endswith("%") for b in stored.backtest if b.error is not None)

    with Session(open_store(f"sqlite:///{tmp_path / 'p.db'}")) as session:
        study, _ = _registered(session)
        store_prediction(session, study, **row)
        # made before D_opt was kept: its fit says nothing of it
        store_prediction(session, study, **row | {"flops": 3e19, "n_opt": 1e9, "trial_id": "t2",
                         "trial_hash": "h2", "fit": {"law": "nd", "optimum": {"a": 0.5}}})
        session.commit()
        shown = predictions_frame(session, study)
    made, older = shown.iloc[0], shown.iloc[1]
    assert made.d_opt == pytest.approx(d_opt.estimate)
    assert [made.d_opt_ci_low, made.d_opt_ci_high] == pytest.approx(d_opt.ci)
    assert [made.n_opt_ci_low, made.n_opt_ci_high] == pytest.approx(n_opt.ci)
    assert older[["d_opt", "d_opt_ci_low", "n_opt_ci_high"]].isna().all()
    assert made.forecast == row["fit"]["forecast"] and made.method in METHODS
    assert pd.isna(older.method) and pd.isna(older.forecast)  # made before the backtest
    # exported: the forecast an object in JSON, its JSON text in a CSV's cell
    from orchestrator.api import to_csv, to_json

    exported = json.loads(to_json(shown))[0]["forecast"]
    assert exported.keys() == row["fit"]["forecast"].keys()
    assert exported["loss"] == pytest.approx(row["fit"]["forecast"]["loss"], rel=1e-14)
    cells = pd.read_csv(io.StringIO(to_csv(shown)))
    assert json.loads(cells.forecast[0]) == row["fit"]["forecast"] and pd.isna(cells.forecast[1])


def test_a_prediction_stored_before_the_backtest_reads_verifies_and_reports_as_before(tmp_path):
    """A prediction of the format before the forecast (its fit without "forecast", N_opt from
    the IsoFLOP minima) reads back, is verified by its trial and shows in the report as
    before; one made now shows its method, forecast and backtest beside it."""
    from sqlalchemy.orm import Session

    from analysis.report.tables import predictions_table
    from analysis.report.view import prediction_summary
    from orchestrator.store import (
        open_store,
        predictions_frame,
        queue_trial,
        record_event,
        record_measurements,
        store_prediction,
    )
    from tests.test_store import _registered
    from trainers.events import End, Start

    old_fit = {"law": "nd", "params": dict(TRUE), "n_boot": 20, "interval": "trial bootstrap",
               "optimum": {"a": 0.5, "interval": "trial bootstrap", "minima": [[1e17, 1e8]],
                           "N_opt": {"estimate": 1e8, "ci": [9e7, 1.1e8]},
                           "D_opt": {"estimate": 1e9, "ci": [9e8, 1.1e9]}},
               "trials": ["a", "b"], "warnings": []}  # fmt: skip
    flops = 1e19
    made = predict_budget(_law_points(), flops, lambda n: (round(n), round(flops / (6 * n))), 20)
    with Session(open_store(f"sqlite:///{tmp_path / 'p.db'}")) as session:
        study, trials = _registered(session)
        trial_id, row = trials[0].trial_id, trials[0]
        store_prediction(session, study, architecture="decoder", flops=3e10, n_opt=1e8,
                         n_opt_from="isoflop", trial_id=trial_id, trial_hash=row.hash, cell={},
                         n_params=100, tokens=1000, predicted_loss=2.0, ci_low=1.9,
                         ci_high=2.1, fit=old_fit)  # fmt: skip
        store_prediction(session, study, **made.row(architecture="decoder", trial_id="t2",
                                                    trial_hash="h2", cell={}))  # fmt: skip
        session.commit()
        queue_trial(row)  # its trial trains: the old prediction is verified
        record_event(session, row, Start(n_params=100, total_params=200, flops_per_token=600,
                                         steps=1, device="cpu", threads=1, host="h"))
        record_event(session, row, End(step=1, tokens=1000, val_loss=2.05, wall_s=1.0,
                                       tokens_per_s=1e3, tokens_scored=1000, mfu=0.5,
                                       checkpoint="", epochs=1.0))  # fmt: skip
        [verified] = record_measurements(session, study)
        session.commit()
        assert verified.trial_id == trial_id and verified.error == pytest.approx(2.0 / 2.05 - 1)  # forecast/measured − 1
        shown = predictions_frame(session, study)
    old, new = shown.iloc[0], shown.iloc[1]
    assert old.measured_loss == 2.05 and pd.isna(new.measured_loss)
    assert stored_forecast(old_fit) is None and pd.isna(old.method) and pd.isna(old.forecast)
    assert (old.d_opt, old.n_opt_ci_low) == (1e9, 9e7) and old.n_opt_from == "isoflop"
    # verified as before: the line names no method; a new one names its method
    assert verdict(2.0, 1.9, 2.1, 2.05) == (
        "measured 2.05, predicted 2 [1.9, 2.1]: error -2.44%, inside the interval")
    method = stored_forecast(made.fit_json()).method
    assert f"[1.9, 2.1] by {method}: error -2.44%" in verdict(2.0, 1.9, 2.1, 2.05, method)
    measured = shown

    class View:  # what predictions_table reads of a report's view
        comparison = False
        studies = [type("Study", (), {"name": "st", "predictions": measured})]

    page = predictions_table(View)
    assert "2 (isoflop)" not in page and "1e+08 (isoflop)" in page  # N_opt (from), as before
    assert page.count("Backtest of") == 1 and f"chosen: {method}" in page  # the new one only
    assert f"by {method}</td>" in page and "-2.44%" in page
    said = prediction_summary(measured)
    assert said[0] == ("decoder at 3e+10 FLOPs: predicted 2 [1.9, 2.1] for "
                       f"{trial_id} (stored before it trained); measured 2.05, error "
                       "-2.44%.")  # fmt: skip
    assert said[1].startswith("decoder at 1e+19 FLOPs: forecast ") and f"by {method}" in said[1]


def test_without_windowed_minima_the_forecast_is_approach_3s_and_says_why():
    # two sizes per budget: no parabola, no loss-at-optimum law; approach 3 forecasts alone
    points = _law_points(sizes=2)
    result = predict_budget(points, 1e19, lambda n: (round(n), round(1e19 / (6 * n))), 50)
    o = result.optimum
    assert o.source == APPROACH_3 and o.n_opt.estimate > 0 and o.d_opt.estimate > 0
    assert list(result.forecast["methods"]) == [APPROACH_3]
    assert any(w.startswith("no loss-at-optimum forecast: ") for w in result.warnings)
    assert "L(N, D) of approach 3 at its own N and tokens" in result.notes[0]
    shown = result.forecast["backtest"]  # loss-at-optimum rows say why they have no error
    assert [r["method"] for r in shown if r.get("error") is not None] == [APPROACH_3] * 4


def test_too_few_points_are_a_clear_error():
    points = _law_points(budgets=(1e17,), sizes=3)
    with pytest.raises(ValueError, match="needs"):
        predict_budget(points, 1e19, lambda n: (round(n), 1), 10)


STUDY = """\
name: p
data: {corpus: "builtin:kjv", tokenizer: bytes, seq_len: 32}
architectures: [decoder]
sizes:
  - {n_layer: 2, n_embd: 16, n_head: 2}
  - {n_layer: 2, n_embd: 24, n_head: 3}
  - {n_layer: 2, n_embd: 32, n_head: 4}
  - {n_layer: 3, n_embd: 48, n_head: 4}
budget: {flops: [3e9, 1e10]}
predict: {flops: 3e10}
train: {batch_size: 8, lr: 3.0e-3}
eval: {tokens: 2K, zero_shot: {tasks: []}}
"""


def test_the_model_of_a_prediction_keeps_the_family_of_the_nearest_size():
    spec = parse_study(STUDY)
    label, shape, n = shape_near(spec, "decoder", 30_000)
    assert (shape.n_layer, shape.n_embd // shape.n_head) == (2, 8)  # nearest: the 2x32 size
    step = non_embedding_params("decoder", type(shape)(2, shape.n_embd + 8, shape.n_head + 1))
    assert abs(n - 30_000) < step - n  # the nearest whole number of heads
    label, shape, n = shape_near(spec, "decoder", 200_000)
    assert (shape.n_layer, shape.n_embd // shape.n_head) == (3, 12)  # beyond: the largest's
    cell = prediction_cell(spec, "decoder", 30_000, 3e10, vocab_size=359)
    assert not cell.left_out and cell.tokens % (8 * 32) == 0
    assert cell.name == "3e10F" and cell.budget_flops == 3e10


@pytest.mark.slow
def test_a_prediction_is_stored_before_its_trial_trains_and_never_made_again(
    ray_session, tmp_path, monkeypatch, study_cli
):
    """The run is stopped (as by Ctrl-C) after the prediction is stored and before the trial
    that verifies it trains: the prediction stays; the rerun trains that trial without
    predicting again and stores the measured loss beside the prediction."""
    from orchestrator import api, run

    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text(STUDY + f"storage: {tmp_path / 'artifacts'}\n")
    quiet = Console(file=io.StringIO())
    real = run._run_on_ray
    calls = []

    def stop_before_verifying(*args, **kwargs):
        calls.append(args[3])  # the trials it was asked to run
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(run, "_run_on_ray", stop_before_verifying)
    with pytest.raises(KeyboardInterrupt):
        api.run_study(tmp_path / "p.yaml", console=quiet, n_boot=20)
    grid = api.plan(load_study(tmp_path / "p.yaml"))
    assert len(calls[0]) == len(grid) >= 6  # the grid first
    [verifying] = calls[1]  # then only the trial that verifies the prediction
    assert verifying.budget_flops == 3e10 and verifying.trial_id.endswith("-3e10F-s0")
    with sqlite3.connect("runs/p.db") as db:
        kept = db.execute("SELECT * FROM predictions").fetchall()
        (status,) = db.execute(
            "SELECT status FROM trials WHERE hash = ?", (verifying.hash,)
        ).fetchone()
    assert len(kept) == 1 and status == "pending"
    before = api.export_predictions(tmp_path / "p.yaml").iloc[0]
    assert pd.isna(before.measured_loss) and before.trial_id == verifying.trial_id

    def no_second_prediction(*args, **kwargs):
        raise AssertionError("predicted again")

    monkeypatch.setattr("analysis.predict.forecast", no_second_prediction)
    calls.clear()
    monkeypatch.setattr(run, "_run_on_ray", real)
    again = api.run_study(tmp_path / "p.yaml", console=quiet, n_boot=20)
    assert again.ran == [verifying.trial_id] and not again.failed
    after = api.export_predictions(tmp_path / "p.yaml").iloc[0]
    for column in ("predicted_loss", "ci_low", "ci_high", "created_at", "n_params", "tokens"):
        assert after[column] == before[column] or (
            pd.isna(after[column]) and pd.isna(before[column])
        )
    trials = api.status(tmp_path / "p.yaml").set_index("trial_id")
    measured = trials.loc[verifying.trial_id, "val_loss"]
    assert after.measured_loss == pytest.approx(measured)
    assert after.error == pytest.approx(after.predicted_loss / measured - 1)

    # the laws are fitted on the grid alone: the verifying trial is not one of their points
    fitted = {p["trial_id"] for p in again.fits.laws["decoder"]["nd"].data}
    assert verifying.trial_id not in fitted and fitted == set(grid.trial_id)

    done = study_cli("export", "p.yaml", "--what", "predictions", "--format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    [row] = json.loads(done.stdout)
    assert set(row) >= {"architecture", "flops", "n_params", "tokens", "predicted_loss", "ci_low",
                        "ci_high", "measured_loss", "error", "trial_id"}  # fmt: skip
    assert row["measured_loss"] == pytest.approx(measured)
    assert row["method"] == row["n_opt_from"] == APPROACH_3  # the method, kept and exported
    assert row["forecast"]["backtest"] is not None  # an object, not JSON text in JSON
    page = again.report.read_text()
    assert "Predicted, then trained" in page and verifying.trial_id in page

    # `study predict` at another budget, not trained: stored; the next `study run` trains it
    done = study_cli("predict", "p.yaml", "--flops", "1e11", "--no-train", "--n-boot", "10",
                     cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "predicted decoder at 1e11 FLOPs: forecast " in done.stdout
    # two budgets: approach 3 alone, and no backtest (one budget left cannot be refitted): said
    assert "by approach 3 at C = 1e+11; no backtest (too few budgets" in done.stdout
    assert "its loss " in done.stdout and "stored before it trains" in done.stdout
    shown = api.export_predictions(tmp_path / "p.yaml")
    assert list(shown.flops) == [3e10, 1e11] and pd.isna(shown.measured_loss.iloc[1])
    assert shown.trial_id.iloc[1] not in set(api.status(tmp_path / "p.yaml").trial_id)
    last = api.run_study(tmp_path / "p.yaml", console=quiet, n_boot=10)
    assert last.ran == [shown.trial_id.iloc[1]]
    assert api.export_predictions(tmp_path / "p.yaml").measured_loss.notna().all()
    bad = study_cli("predict", "p.yaml", "--flops", "lots", cwd=tmp_path)
    assert bad.returncode == 2 and "--flops 'lots'" in bad.stderr
    inside = study_cli("predict", "p.yaml", "--flops", "1e10", cwd=tmp_path)  # a grid budget
    assert inside.returncode == 2 and "--flops 1e+10: 1e10 FLOPs is not beyond the grid" in (
        inside.stderr
    )


@pytest.mark.slow  # its corpus, builtin:prose, is fetched from the package registries once
def test_the_reference_study_is_an_isoflop_grid_with_a_prediction_beyond_it(tmp_path, monkeypatch):
    """studies/isoflop.yaml as BENCHMARKS.md ran it (issue 32, item 6): at least 4 budgets of at
    least 5 sizes, none reading a text twice, and a forecast at 10 times the largest budget."""
    from orchestrator import api

    monkeypatch.chdir(tmp_path)  # its token files go under ./artifacts
    spec = load_study(Path(__file__).parents[1] / "studies" / "isoflop.yaml")
    grid = api.plan(spec)
    per_budget = grid.groupby("budget_flops").size()
    assert len(per_budget) >= 4 and (per_budget >= 5).all()
    assert ((grid.flops / grid.budget_flops - 1).abs() <= 0.01).all()
    assert (grid.epochs <= spec.data.max_epochs).all()
    [flops] = spec.predict.flops
    assert flops / max(spec.budget.flops) == pytest.approx(10)


FORECAST_STUDY = """\
name: fc
data: {corpus: "builtin:kjv", tokenizer: bytes, seq_len: 32}
architectures: [decoder]
sizes: [25K, 50K, 100K, 200K, 400K]
budget: {flops: [1e11, 3e11, 1e12, 3e12]}
predict: {flops: 3e13}
train: {batch_size: 8}
"""


def _isoflop_store(url: str) -> int:
    """FORECAST_STUDY's grid in a store, every trial finished at the loss TRUE's L(N, D) gives
    its N and tokens, C = 6ND (as a run's events would write them); returns the trials."""
    from sqlalchemy.orm import Session

    from orchestrator.grid import expand
    from orchestrator.stages import register
    from orchestrator.store import RunStore, current_trials, get_study, open_store, record_event
    from trainers.data import load_token_data
    from trainers.events import End, Start

    spec = parse_study(FORECAST_STUDY)
    data = load_token_data("builtin:kjv", "bytes", 0.02, 0.02, 0)  # in memory: no cache folder
    grid = expand(spec, "", "", vocab_size=data.vocab_size, train_tokens=len(data.train))
    with RunStore.open(url) as run_store:
        register(run_store, spec, grid, data)
    with Session(open_store(url)) as session:
        rows = current_trials(session, get_study(session, spec.name))
        for row in rows:
            trial = row.spec
            n, tokens = float(row.n_params), trial.steps * trial.tokens_per_step
            loss = float(CHINCHILLA_ND.predict(TRUE, N=n, D=tokens))
            record_event(session, row, Start(n_params=int(n), total_params=int(2 * n),
                                             flops_per_token=int(6 * n), steps=trial.steps,
                                             device="cpu", threads=1, host="h",
                                             eval_key=trial.eval_key))  # fmt: skip
            record_event(session, row, End(step=trial.steps, tokens=tokens, val_loss=loss,
                                           wall_s=1.0, tokens_per_s=1e4, tokens_scored=tokens,
                                           mfu=0.1, checkpoint="", epochs=1.0))  # fmt: skip
        session.commit()
    return len(rows)


def test_study_fit_forecasts_a_stored_study_as_it_forecasts_a_csv(store, study_here, tmp_path):
    """`study fit STORE --law forecast`: each architecture's forecast, both methods with their
    backtests and the method picked, in text and JSON of the shape `--csv` gives; at the
    study's predict: budget without --target; a store without either is one line, exit 2."""
    n_trials = _isoflop_store(store)
    args = ["fit", "--store", store, "--law", "forecast", "--n-boot", "20"]
    done = study_here(*args, "--target", "C=3e13", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["law"] == "forecast" and list(shown["architectures"]) == ["decoder"]
    entry = shown["architectures"]["decoder"]["forecast"]  # as `--csv --law forecast` nests it
    assert entry["target"] == {"C": 3e13} and entry["method"] in METHODS
    assert set(entry["methods"]) == set(METHODS) and entry["rule"] and entry["reason"]
    assert len(entry["backtest"]) == 4 * 2  # each budget left out, each method
    assert {r["method"] for r in entry["backtest"]} == set(METHODS)
    alpha, beta = TRUE["alpha"], TRUE["beta"]  # the true N_opt at 3e13 (Hoffmann's eq. 4)
    g = (alpha * TRUE["A"] / (beta * TRUE["B"])) ** (1 / (alpha + beta))
    n_true = g * (3e13 / 6) ** (beta / (alpha + beta))
    n_opt = entry["methods"][APPROACH_3]["n_opt"]["estimate"]
    assert abs(np.log(n_opt / n_true)) < np.log(1.5)
    text = study_here(*args, "--target", "C=3e13", cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith(f"decoder: forecast {entry['loss']:.4g} [")
    assert f"by {entry['method']} at C = 3e+13; backtest: largest budget " in text.stdout
    assert text.stdout.count("without C = ") == 4 * 2 and "chosen: " in text.stdout
    at_predict = study_here(*args, "--json", cwd=tmp_path)  # the study's predict: flops
    assert at_predict.returncode == 0, at_predict.stderr
    assert json.loads(at_predict.stdout)["architectures"]["decoder"]["forecast"] == entry
    bad = study_here(*args, "--target", "N=1e6", cwd=tmp_path)
    assert bad.returncode == 2 and "--law forecast needs --target C=FLOPS" in bad.stderr
    assert n_trials >= 16  # every budget has 4 sizes or more


def _predicted_beyond_a_rule_of_workers(monkeypatch, workers: int, **kwargs) -> str:
    """What `predict_missing` says at 3e10 FLOPs, whose model (N_opt 200K, beyond the grid) a
    rule of N puts on `workers` workers, the grid's on one; it must store no prediction."""
    from types import SimpleNamespace

    import analysis.predict
    from orchestrator import predicting

    spec = parse_study(STUDY + "resources: {workers: [{max_params: 50K, workers: 1}, "
                       f"{{workers: {workers}}}]}}\n")  # fmt: skip
    data = SimpleNamespace(key="k", vocab_size=359, train=np.zeros(10**6))
    grid = pd.DataFrame({"architecture": ["decoder"], "status": ["finished"],
                         "verifies": [False], "hash": ["h"], "trial_id": ["t"]})  # fmt: skip

    class Store:
        def predictions(self):
            return []

        def save_prediction(self, **columns):
            raise AssertionError("a prediction was stored")

    monkeypatch.setattr(predicting, "comparable_trials", lambda store: (grid, []))
    monkeypatch.setattr(analysis.predict, "grid_points", lambda rows, arch: (rows, None))
    monkeypatch.setattr(analysis.predict, "forecast",
                        lambda points, c, n_boot: SimpleNamespace(n_opt=200_000))  # fmt: skip
    said = io.StringIO()
    made = predicting.predict_missing(Store(), spec, data, "", [3e10], n_boot=0,
                                      console=Console(file=said, width=400), **kwargs)  # fmt: skip
    assert made == []
    return said.getvalue()


def test_a_prediction_whose_model_would_not_split_its_batch_over_its_workers_is_refused(
    monkeypatch,
):
    """A rule of N may give the predicted model (beyond the grid) more workers than the grid's
    trials: where its batch does not split over them, no prediction is stored, and it is said,
    as for other models that cannot be trained (the grid itself is checked on loading)."""
    said = _predicted_beyond_a_rule_of_workers(monkeypatch, 3)
    assert "no prediction for decoder at 3e10 FLOPs: its model (decoder-" in said
    assert "would train on 3 workers, and its batch of 8 sequences does not split over 3 " in said


def test_a_prediction_whose_model_the_cluster_can_never_place_is_refused(monkeypatch):
    """`study run` refuses a grid the cluster can never place; a predicted model beyond the
    grid, on more workers by the rule of N, is asked the same before its prediction is stored
    (Ray Train would wait for its workers forever)."""
    asked = []

    def never_fit(trials):
        asked.extend(t.placement.workers for t in trials)
        return [f"{trials[0].trial_id} needs 4 workers × 1 CPU; the cluster has 2 CPUs and no GPU"]

    said = _predicted_beyond_a_rule_of_workers(monkeypatch, 4, never_fit=never_fit)
    assert asked == [4]
    assert "no prediction for decoder at 3e10 FLOPs: decoder-" in said
    assert "needs 4 workers × 1 CPU; the cluster has 2 CPUs" in said
