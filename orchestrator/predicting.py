"""Predict, then verify: at each budget of `predict:` (or `study predict --flops`), once the
grid is trained, fit it, choose the compute-optimal model, store the loss it will reach, and
only then train it; its measured loss is stored beside the prediction.

A prediction is made once, for the training settings it was made under: a rerun finds it
stored (by architecture, budget and the identity of the trial that verifies it) and never
predicts again, least of all from the trial it predicts."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from rich.console import Console

from orchestrator.fitting import comparable_trials, one_blas_thread
from orchestrator.grid import Cell, prediction_cell, trial_spec
from orchestrator.recipe import CellBudget, lr_points, plan
from orchestrator.sizes import Shape, flops_text, format_count
from orchestrator.spec import StudySpec, unsplit
from orchestrator.store import PredictionRecord, RunStore
from trainers.data import TokenData
from trainers.trial import TrialSpec

if TYPE_CHECKING:
    from analysis import results
    from analysis.forecast import Forecast


def verifying_trial(spec: StudySpec, p: PredictionRecord, data_key: str, storage: str) -> TrialSpec:
    """The trial that verifies a stored prediction, under the study's current settings: its
    model and tokens as stored, the learning rate of the study's rule now (in a sweep, the
    rate chosen when it was made)."""
    c = p.cell
    cell = Cell(p.architecture, c["label"], Shape(c["n_layer"], c["n_embd"], c["n_head"]),
                p.n_params, p.tokens, f"{flops_text(p.flops)}F", p.flops)  # fmt: skip
    points = lr_points(spec)
    lr, multiple = points[0] if len(points) == 1 else (c["lr"], None)
    return trial_spec(spec, cell, lr, c["seed"], data_key, storage, lr_multiple=multiple)


def current(spec: StudySpec, predictions: list[PredictionRecord], data_key: str, storage: str):
    """The stored predictions made under the study's current training settings, for one of
    its architectures (their trial, rebuilt now, is the one they name), each with that trial.
    Change the data, the optimizer or the learning rate and none is current: the next run
    predicts anew, the old predictions stay in the store."""
    out = []
    for p in predictions:
        if p.architecture not in spec.architectures:
            continue
        trial = verifying_trial(spec, p, data_key, storage)
        if trial.hash == p.trial_hash:
            out.append((p, trial))
    return out


def stored_trials(
    store: RunStore, spec: StudySpec, data_key: str, storage: str, to_train: bool = True
):
    """The trials that verify the study's stored predictions (none before its first run); not
    `to_train`: only those the store has registered already (a run that trains none of them
    registers none, so that none is shown queued)."""
    if not store.select_study(spec.name):
        return []
    trials = [t for _, t in current(spec, store.predictions(), data_key, storage)]
    if not to_train:
        registered = store.registered_hashes()
        trials = [t for t in trials if t.hash in registered]
    return trials


def budgets(spec: StudySpec, extra: Sequence[float] = ()) -> list[float]:
    """The budgets to predict at: the study file's and any more asked for."""
    return sorted({float(c) for c in (spec.predict.flops if spec.predict else [])} | set(extra))


@one_blas_thread
def predict_missing(
    store: RunStore,
    spec: StudySpec,
    data: TokenData,
    storage: str,
    flops: list[float],
    *,
    console: Console,
    n_boot: int,
    never_fit: Callable[[list[TrialSpec]], list[str]] = lambda trials: [],
) -> list[TrialSpec]:
    """Make and store (committed) every prediction of `flops` the store does not hold for the
    current settings, each architecture's once its grid is trained; return the trials that
    will verify them. What cannot be predicted is said, and left for a later run: among it a
    model whose trial the cluster can never place (`never_fit`: why, for trials)."""
    from analysis.predict import forecast, grid_points

    known = current(spec, store.predictions(), data.key, storage)
    have = {(p.architecture, p.flops) for p, _ in known}
    trials, _ = comparable_trials(store)  # those of other evaluation settings: outdated
    grid = trials[~trials.verifies]
    made = []
    for architecture in spec.architectures:
        wanted = [c for c in flops if (architecture, c) not in have]
        if not wanted:
            continue
        rows = grid[grid.architecture == architecture]
        unfinished = rows[rows.status != "finished"]  # outdated ones too: not comparable
        if len(unfinished):
            console.print(
                f"no prediction for {architecture} yet: {len(unfinished)} trial(s) of its grid "
                f"not finished or not measured under the current evaluation settings "
                f"({', '.join(unfinished.trial_id[:3])}"
                f"{' and more' if len(unfinished) > 3 else ''})",
                highlight=False,
            )
            continue
        points, envelope = grid_points(rows, architecture)
        for c in wanted:
            what = f"{architecture} at {flops_text(c)} FLOPs"
            try:  # points -> the forecast, by the method the backtest picks -> the model -> loss
                ahead = forecast(points, c, n_boot)
                cell = prediction_cell(spec, architecture, ahead.n_opt, c,
                                       data.vocab_size, len(data.train))  # fmt: skip
                if cell.left_out:  # that model cannot be trained (too many epochs)
                    raise ValueError(cell.left_out)
            except ValueError as e:
                console.print(f"[yellow]no prediction for {what}[/]: {e}", highlight=False)
                continue
            lr = _learning_rate(spec, cell, envelope)
            trial = trial_spec(spec, cell, lr, spec.seeds[0], data.key, storage)
            if (why := unsplit(trial)) is not None:  # its workers, by the rule of N, at its N
                console.print(f"[yellow]no prediction for {what}[/]: its model "
                              f"({trial.trial_id}) would train on {trial.placement.workers} "
                              f"workers, and its {why}", highlight=False)  # fmt: skip
                continue
            if lines := never_fit([trial]):  # Ray Train would wait for its workers forever
                console.print(f"[yellow]no prediction for {what}[/]: {lines[0]}",
                              highlight=False)  # fmt: skip
                continue
            if trial.hash in set(rows.hash):
                console.print(f"[yellow]no prediction for {what}[/]: its model is a trial of "
                              f"the grid ({trial.trial_id})", highlight=False)  # fmt: skip
                continue
            result = ahead.predict(cell.n_params, cell.tokens)
            cell_json = {"label": cell.label, "n_layer": cell.shape.n_layer,
                         "n_embd": cell.shape.n_embd, "n_head": cell.shape.n_head, "lr": lr,
                         "seed": spec.seeds[0]}  # fmt: skip
            store.save_prediction(  # committed: kept before anything trains it
                **result.row(architecture=architecture, trial_id=trial.trial_id,
                             trial_hash=trial.hash, cell=cell_json)
            )  # fmt: skip
            console.print(prediction_line(what, ahead.forecast, result, trial), highlight=False)
            for line in ahead.forecast.summary(what).splitlines()[1:]:  # both methods, backtests
                console.print(line, highlight=False)
            for note in result.notes:
                console.print(f"note: {note}", highlight=False)
            for warning in result.warnings:
                console.print(f"[yellow]warning[/]: the fit behind it: {warning}", highlight=False)
            made.append(trial)
    return made


def prediction_line(
    what: str, ahead: Forecast, result: results.Prediction, trial: TrialSpec
) -> str:
    """What the terminal says of a prediction just stored: the forecast, its method and
    backtest (`Forecast.text`), the optimum, and the model trained for it with its loss."""
    o = result.optimum
    loss = f"{result.loss:.4g}"
    if result.ci is not None:
        loss += f" [{result.ci[0]:.4g}, {result.ci[1]:.4g}]"
    else:
        loss += " (no interval)"
    return (
        f"predicted {what}: {ahead.text()}; N_opt {_count_ci(o.n_opt)}, D_opt "
        f"{_count_ci(o.d_opt)}, trained as {trial.trial_id} ({format_count(result.tokens)} "
        f"tokens): its loss {loss}; stored before it trains"
    )


def _count_ci(entry: results.Estimate) -> str:
    """A count and its interval, "90.8K [71.2K, 118K]"; a bound that is not finite is said."""
    text = format_count(round(entry.estimate))
    if not entry.ci:
        return text + " (no interval)"
    if not all(v is not None and math.isfinite(v) for v in entry.ci):
        return text + " (no finite interval)"
    return text + f" [{format_count(round(entry.ci[0]))}, {format_count(round(entry.ci[1]))}]"


def _learning_rate(spec: StudySpec, cell: Cell, envelope) -> float:
    """The recipe's (or the one) learning rate of the cell; in a sweep, the best rate of the
    envelope's cell nearest its N (of the largest budget, on a tie)."""
    n_params = cell.n_params
    points = lr_points(spec)
    if len(points) == 1 or not envelope:
        lr, multiple = points[0] if len(points) == 1 else (None, None)
        return plan(cell.size, CellBudget(tokens=cell.tokens), spec, lr=lr,
                    lr_multiple=multiple).lr  # fmt: skip
    inside = [row for row in envelope if not row["at_edge"]] or envelope
    nearest = min(inside, key=lambda r: (abs(math.log(r["N"] / n_params)), -r["D"] * r["N"]))
    return float(nearest["best_lr"])
