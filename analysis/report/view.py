"""What the report says of its studies, computed once from their frames and fits: what each
figure draws (in one unit), the summary, the fitted-laws table and the caveat on units.

Pure: the frames and fits it is given stay as they were. Every read of a fit result happens
here; the figures and tables read the view."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from analysis.headline import Headline, caveats_of, headline_of
from analysis.laws import compute_budgets
from analysis.results import IsoFlopFit, LawFit, NotFitted, StudyFits, TaskFit, forecast_of
from analysis.tasklaw import sigmoid

MAX_CURVE_POINTS = 300  # per trial and curve: a long run's every step would bloat the file
NATS = "nats/token"
BITS = "bits/byte"


@dataclass
class StudyView:
    """What the report is given of one study: its frames and fits, as the store holds them."""

    name: str
    trials: pd.DataFrame
    metrics: pd.DataFrame
    fits: StudyFits  # its laws, two-step task fits and zero-shot trends
    evals: pd.DataFrame = field(default_factory=pd.DataFrame)
    data: dict | None = None  # the splits and tokenizer (Study.data)
    outdated: list[str] = field(default_factory=list)  # measured under other eval settings
    predictions: pd.DataFrame = field(default_factory=pd.DataFrame)  # store.predictions_frame
    task_points: pd.DataFrame = field(default_factory=pd.DataFrame)  # store.task_points
    configs: dict[str, dict] = field(default_factory=dict)  # trial id -> its TrialSpec dict
    partial: str = ""  # while the study trains: how far it is (the report says it is partial)
    stopped: str = ""  # a partial report's run stopped before the end: why
    new_cards_only: bool = False  # a partial report writes the cards of newly finished trials
    next_study: str | dict[str, str] | None = None  # the study file's: where no law is shown


# --- units -------------------------------------------------------------------------------


def tokens_per_byte(view: StudyView) -> float | None:
    """Validation tokens per UTF-8 byte of validation text (<eos> included), where the store
    recorded the bytes."""
    data = view.data or {}
    tokens = data.get("tokens", {}).get("validation")
    size = data.get("bytes", {}).get("validation")
    return tokens / size if tokens and size else None


def _tokenizers(views: list[StudyView]) -> str:
    return "; ".join(f"{v.name}: {(v.data or {}).get('tokenizer', '?')}, "
                     f"{(v.data or {}).get('vocab_size', '?')} tokens" for v in views)  # fmt: skip


def tokenized_alike(views: list[StudyView]) -> bool:
    """One tokenizer for all: the same name and, where the stores know it, the same tokens
    per byte (two `bpe:2048` studies on different corpora have different tokens)."""
    if len({(v.data or {}).get("tokenizer") for v in views}) > 1:
        return False
    ratios = [r for r in map(tokens_per_byte, views) if r is not None]
    return not ratios or max(ratios) / min(ratios) < 1.005


@dataclass(frozen=True)
class Caveat:
    """Above the loss panels of a comparison whose studies were tokenized differently."""

    tokenizers: str  # "a: bytes, 359 tokens; b: bpe:2048, 2048 tokens"
    same_names: bool  # one tokenizer name, trained on different text
    unknown: list[str]  # studies whose stores predate the record of bytes: panels in nats
    ratios: list[tuple[str, float]]  # else each study's tokens per byte: panels in bits/byte


def caveat_of(views: list[StudyView]) -> Caveat | None:
    """What the loss panels of these studies must say first, if anything."""
    if tokenized_alike(views):
        return None
    return Caveat(
        tokenizers=_tokenizers(views),
        same_names=len({(v.data or {}).get("tokenizer") for v in views}) == 1,
        unknown=[v.name for v in views if tokens_per_byte(v) is None],
        ratios=[(v.name, r) for v in views if (r := tokens_per_byte(v)) is not None],
    )


# --- what the loss figures draw ----------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class LawCurve:
    """A fitted L(N) over the span of an architecture's sizes: the law and its 95% band."""

    n: np.ndarray
    loss: np.ndarray
    low: np.ndarray
    high: np.ndarray
    E: float
    A: float
    alpha: float


@dataclass(frozen=True, kw_only=True)
class IsoFlopBudget:
    """One compute budget of an IsoFLOP panel: its trials and, where fitted, the parabola in
    log N over their sizes and its minimum."""

    c_mid: float  # the budget's geometric mean compute
    points: pd.DataFrame  # its finished trials, by size
    parabola: np.ndarray | None  # coefficients in log N (numpy.polyval), loss units
    n: np.ndarray | None  # where the parabola is drawn
    n_opt: float | None = None
    loss_min: float | None = None

    @property
    def loss(self) -> np.ndarray:
        """The parabola's loss over `n`."""
        return np.polyval(self.parabola, np.log(self.n))


@dataclass(frozen=True, kw_only=True)
class IsoFlopPanel:
    """Hoffmann et al.'s Figure 3 for one architecture: the budgets, then the minima's N_opt
    against C with the fitted N_opt ∝ C^a."""

    arch: str
    budgets: list[IsoFlopBudget]
    c: np.ndarray  # each fitted minimum's compute
    n_opt: np.ndarray  # and its loss-optimal size
    a: float
    line_c: np.ndarray
    line_n: np.ndarray


@dataclass(frozen=True, kw_only=True)
class Drawing:
    """One study as its loss figures draw it, every loss in `loss_unit`."""

    name: str
    finished: pd.DataFrame  # the grid's finished trials: the laws' points
    predictions: pd.DataFrame
    laws: dict[str, LawCurve]  # architecture -> its fitted L(N)
    isoflop: list[IsoFlopPanel]  # architectures in order
    per_byte: float | None  # validation tokens per byte of text, where recorded
    loss_unit: str = NATS


def finished_grid(trials: pd.DataFrame) -> pd.DataFrame:
    """The finished trials of the grid: the laws' points (a trial that verifies a prediction
    is drawn with its prediction)."""
    grid = ~trials.verifies.astype(bool) if "verifies" in trials else True
    return trials[(trials.status == "finished") & trials.val_loss.notna() & grid]


def _law_curve(fit: LawFit, points: pd.DataFrame) -> LawCurve:
    n = np.logspace(np.log10(points.n_params.min() / 1.5), np.log10(points.n_params.max() * 3), 60)
    low, high = fit.band(N=n)
    p = fit.params
    return LawCurve(n=n, loss=fit.predict(N=n), low=low, high=high, E=p["E"].estimate,
                    A=p["A"].estimate, alpha=p["alpha"].estimate)  # fmt: skip


def _isoflop_panel(arch: str, result: IsoFlopFit, finished: pd.DataFrame) -> IsoFlopPanel:
    points = finished[finished.architecture == arch]
    budget = compute_budgets(points.flops)
    budgets = []
    for label in np.unique(budget):
        at = points[budget == label].sort_values("n_params")
        c_mid = float(np.exp(np.mean(np.log(at.flops))))
        minimum = next((m for m in result.budgets if abs(np.log(m.C / c_mid)) < 0.2), None)
        if minimum is None:
            budgets.append(IsoFlopBudget(c_mid=c_mid, points=at, parabola=None, n=None))
            continue
        n = np.exp(np.linspace(np.log(at.n_params.min()), np.log(at.n_params.max()), 50))
        budgets.append(IsoFlopBudget(
            c_mid=c_mid, points=at, parabola=np.asarray(minimum.parabola), n=n,
            n_opt=minimum.N_opt, loss_min=minimum.loss_min,
        ))  # fmt: skip
    c = np.array([m.C for m in result.budgets])
    n_opt = np.array([m.N_opt for m in result.budgets])
    a = result.a.estimate
    intercept = float(np.mean(np.log(n_opt) - a * np.log(c)))
    line_c = np.logspace(np.log10(c.min() / 2), np.log10(c.max() * 4), 20)
    return IsoFlopPanel(arch=arch, budgets=budgets, c=c, n_opt=n_opt, a=a, line_c=line_c,
                        line_n=np.exp(intercept + a * np.log(line_c)))  # fmt: skip


def drawing_of(view: StudyView) -> Drawing:
    """What the loss figures draw of a study, in nats per token."""
    finished = finished_grid(view.trials)
    laws = {}
    for arch, fitted in view.fits.laws.items():
        points = finished[finished.architecture == arch]
        fit = fitted.get("n")
        # a fit read back from JSON has no solution to draw
        if isinstance(fit, LawFit) and fit.solution is not None and not points.empty:
            laws[arch] = _law_curve(fit, points)
    isoflop = [_isoflop_panel(arch, fitted["isoflop"], finished)
               for arch, fitted in sorted(view.fits.laws.items())
               if isinstance(fitted.get("isoflop"), IsoFlopFit)]  # fmt: skip
    return Drawing(name=view.name, finished=finished, predictions=view.predictions, laws=laws,
                   isoflop=isoflop, per_byte=tokens_per_byte(view))  # fmt: skip


def _scaled(frame: pd.DataFrame, factor: float, columns: tuple[str, ...]) -> pd.DataFrame:
    return frame.assign(**{c: frame[c] * factor for c in columns if c in frame})


def in_bits_per_byte(drawing: Drawing) -> Drawing:
    """The drawing with every loss per token turned into bits per byte of text: times tokens
    per byte, over ln 2 (E and A scale with the loss; the exponents do not). The stored fits
    and the tables keep nats per token."""
    factor = drawing.per_byte / np.log(2)
    laws = {arch: replace(c, loss=c.loss * factor, low=c.low * factor, high=c.high * factor,
                          E=c.E * factor, A=c.A * factor)
            for arch, c in drawing.laws.items()}  # fmt: skip
    isoflop = [
        replace(panel, budgets=[
            replace(b, points=_scaled(b.points, factor, ("val_loss",)),
                    parabola=None if b.parabola is None else b.parabola * factor,
                    loss_min=None if b.loss_min is None else b.loss_min * factor)
            for b in panel.budgets])
        for panel in drawing.isoflop
    ]  # fmt: skip
    predictions = _scaled(drawing.predictions, factor,
                          ("predicted_loss", "ci_low", "ci_high", "measured_loss"))  # fmt: skip
    return replace(drawing, finished=_scaled(drawing.finished, factor, ("val_loss",)),
                   predictions=predictions, laws=laws, isoflop=isoflop, loss_unit=BITS)  # fmt: skip


# --- the two-step task fits --------------------------------------------------------------


@dataclass(frozen=True)
class TaskPoint:
    """A point of a task panel: task loss, accuracy and its interval (if any)."""

    task_loss: float
    accuracy: float
    ci: tuple[float, float] | None


@dataclass(frozen=True, kw_only=True)
class TaskPanel:
    """A two-step fit of one task: every checkpoint scored, the sigmoid fitted without the
    largest model, and that model's accuracy as predicted and as measured."""

    study: int  # which of the report's studies
    arch: str
    task: str
    points: pd.DataFrame  # the scored checkpoints of this architecture and task
    held_out: str  # the run held out: the largest model
    curve: tuple[np.ndarray, np.ndarray]  # the sigmoid: task loss, accuracy
    predicted: TaskPoint
    measured: TaskPoint


def _task_panel(i: int, view: StudyView, arch: str, task: str, r: TaskFit) -> TaskPanel:
    points = view.task_points
    points = points[(points.architecture == arch) & (points.task == task)]
    p = {k: v.estimate for k, v in r.step2.params.items()}
    span = np.linspace(points.task_loss.min() * 0.9, points.task_loss.max() * 1.05, 80)
    curve = (span, sigmoid(span, p["a"], p["b"], p["k"], p["L0"]))
    predicted = TaskPoint(r.task_loss.estimate, r.accuracy.estimate, r.accuracy.ci)
    measured = TaskPoint(r.measured_task_loss, r.measured.estimate, r.measured.ci)
    return TaskPanel(study=i, arch=arch, task=task, points=points, held_out=r.held_out,
                     curve=curve, predicted=predicted, measured=measured)  # fmt: skip


# --- what the page says ------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ReportView:
    """What the page says of one study, or of several compared."""

    studies: list[StudyView]
    drawings: list[Drawing]  # in bits per byte where the studies were tokenized differently
    caveat: Caveat | None
    summary: list[str]
    warnings: list[str]
    fits: pd.DataFrame  # the fitted-laws table, as text
    tasks: list[TaskPanel]
    headlines: list[tuple[str, Headline]] = field(default_factory=list)  # by study: the verdict
    caveats: list[str] = field(default_factory=list)  # the fits' warnings, each said once

    @property
    def comparison(self) -> bool:
        """Several studies: each has its own dash and marker, and labels name it."""
        return len(self.studies) > 1

    @property
    def title(self) -> str:
        """The page's title and heading."""
        names = ", ".join(v.name for v in self.studies)
        return f"Scaling studies compared: {names}" if self.comparison else f"Scaling study {names}"

    def label(self, i: int, arch: str) -> str:
        """An architecture of the `i`-th study, as a legend names it."""
        return f"{self.studies[i].name}: {arch}" if self.comparison else arch


def view_of(studies: list[StudyView]) -> ReportView:
    """What the page says of these studies."""
    drawings = [drawing_of(v) for v in studies]
    if not tokenized_alike(studies) and all(d.per_byte for d in drawings):
        drawings = [in_bits_per_byte(d) for d in drawings]  # in bits per byte of text
    summary, warnings = [], []
    for view in studies:
        prefix = f"{view.name}: " if len(studies) > 1 else ""
        summary += [prefix + line for line in _summary_lines(view)]
        warnings += [prefix + w for w in view.fits.warnings()]
    tasks = [_task_panel(i, view, arch, task, r)
             for i, view in enumerate(studies)
             for arch, result in sorted(view.fits.tasks.items())
             for task, r in result.fitted().items()]  # fmt: skip
    prefixes = [f"{view.name}: " if len(studies) > 1 else "" for view in studies]
    headlines = [(view.name, headline_of(view.fits, view.predictions, next_study=view.next_study))
                 for view in studies if view.fits.laws or view.fits.trends]  # fmt: skip
    caveats = [prefix + line for view, prefix in zip(studies, prefixes, strict=True)
               for line in caveats_of(view.fits, view.trials).lines()]  # fmt: skip
    return ReportView(studies=studies, drawings=drawings, caveat=caveat_of(studies),
                      summary=summary, warnings=warnings, fits=_fits_frame(studies),
                      tasks=tasks, headlines=headlines, caveats=caveats)  # fmt: skip


def _interval(entry) -> str:
    return entry.text() if entry else ""


def _summary_lines(view: StudyView) -> list[str]:
    """The summary's sentences of one study: verdicts, exponents with intervals, held-out
    prediction errors."""
    items = []
    for arch, laws in sorted(view.fits.laws.items()):
        fit = laws.get("n")
        if isinstance(fit, LawFit):
            text = f"{arch}: loss falls as N^−α with α = {_interval(fit.params['alpha'])}"
            held = fit.holdout
            if held is not None and held.error_pct is not None:
                text += (f"; refitted without the largest model, the law predicts its loss "
                         f"{held.error_pct:+.2f}% off")  # fmt: skip
            items.append(text + ".")
        nd = laws.get("nd")
        if isinstance(nd, LawFit):
            d = nd.derived
            items.append(
                f"{arch}: compute-optimal N ∝ C^a with a = {_interval(d['a'])}, "
                f"D ∝ C^b with b = {_interval(d['b'])}"
                + (f"; {_interval(d['tokens_per_param'])} tokens per parameter at "
                   f"C = {nd.compute:.3g} FLOPs." if "tokens_per_param" in d else ".")
            )  # fmt: skip
    items += [result.verdict for result in view.fits.trends.values()]  # trends: not fits
    items += reference_lines(view.evals)
    items += prediction_summary(view.predictions)
    for arch, result in sorted(view.fits.tasks.items()):
        items += [line + "." for line in result.lines(arch, fitted_only=True)]
    if view.outdated:
        items.append(f"{outdated_note(view.outdated)}.")
    return items


def _fits_frame(views: list[StudyView]) -> pd.DataFrame:
    """The fitted-laws table: a row per study, architecture and law."""
    rows = []
    for view in views:
        for arch, laws in sorted(view.fits.laws.items()):
            for law, fit in laws.items():
                row = {"study": view.name} if len(views) > 1 else {}
                row |= {"architecture": arch, "law": fit.formula or law}
                if isinstance(fit, NotFitted):
                    rows.append(row | {"note": fit.error})
                    continue
                row["parameters (95% CI)"] = "; ".join(
                    f"{name} = {_interval(v)}" for name, v in fit.values().items()
                )
                row["CI from"] = fit.interval or "no interval"
                row["points"] = fit.n_points
                held = fit.holdout
                row["held-out prediction"] = (
                    f"{held.error_pct:+.2f}% ({held.held_out})"
                    if held is not None and held.error_pct is not None else ""
                )  # fmt: skip
                if isinstance(fit, LawFit):  # an IsoFLOP analysis has no residual of its own
                    row["RMSE of log-loss"] = f"{fit.rmse_log:.3g}"
                row["note"] = "; ".join(fit.warnings)
                rows.append(row)
    return pd.DataFrame(rows)


def outdated_note(trial_ids: list[str]) -> str:
    """What the report and the terminal say of finished trials scored under other zero-shot
    settings than the study's current ones."""
    shown = ", ".join(trial_ids[:3]) + (
        f" and {len(trial_ids) - 3} more" if len(trial_ids) > 3 else ""
    )
    return (
        f"{len(trial_ids)} finished trial(s) ({shown}) were measured under earlier evaluation "
        "settings (validation tokens or zero-shot) and have no measurements under the current "
        "ones; they are left out of the fits, the figures and the zero-shot results (their "
        "earlier results stay in the store: study export)"
    )


def reference_lines(evals: pd.DataFrame) -> list[str]:
    """One sentence per reference model: its zero-shot accuracy on each task, with the
    interval over the items, and the best trial's beside it."""
    if evals.empty:
        return []
    acc = evals[evals.metric == "acc"]
    out = []
    for name, rows in acc[acc.architecture.str.startswith("ref:")].groupby("architecture"):
        parts = []
        for r in rows.sort_values("task").itertuples():
            trials = acc[(acc.task == r.task) & acc.trial_id.notna()]
            best = f"; the best trial {trials.value.max():.1%}" if len(trials) else ""
            parts.append(f"{r.task} {r.value:.1%} [{r.ci_low:.1%}, {r.ci_high:.1%}]{best}")
        out.append(f"reference {name.removeprefix('ref:')} on the study's items: "
                   + "; ".join(parts) + ".")  # fmt: skip
    return out


def prediction_summary(predictions: pd.DataFrame) -> list[str]:
    """One sentence per prediction, for the report's summary and the terminal."""
    out = []
    for p in predictions.itertuples():
        forecast = forecast_of(p)  # none: made before the backtest
        said = forecast.text + "; " if forecast else ""
        text = (f"{p.architecture} at {p.flops:.3g} FLOPs: {said}predicted "
                f"{p.predicted_loss:.4g}"
                + (f" [{p.ci_low:.4g}, {p.ci_high:.4g}]" if pd.notna(p.ci_low) else
                   " (no interval)")
                + (f" by {method}" if isinstance(method := getattr(p, "method", None), str)
                   else "")
                + f" for {p.trial_id} (stored before it trained)")  # fmt: skip
        if pd.notna(p.measured_loss):
            text += f"; measured {p.measured_loss:.4g}, error {p.error:+.2%}"
        else:
            text += "; not trained yet"
        out.append(text + ".")
    return out
