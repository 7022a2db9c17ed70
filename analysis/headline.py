"""A study's headline: one verdict per architecture (its law, its compute-optimal point, its
zero-shot verdict, its forecast), computed once from the fits and the stored predictions, and
the caveats of the fits grouped so that each is said once, with what to do about it.

`study run` ends on the headline's text form, the report opens on it as a table, and the JSON
form is the same values: all three read the `Headline` made here."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from analysis.fits import FEW_TOKENS_PER_PARAM, PLAUSIBLE
from analysis.laws import EXPONENT_BOUND
from analysis.results import Estimate, IsoFlopFit, LawFit, LossOptimumFit, StudyFits, forecast_of
from analysis.trends import TEST, TaskVerdict, Verdicts, task_verdicts, zero_shot_words


@dataclass(frozen=True)
class ArchitectureHeadline:
    """One architecture's verdict: its law (exponent, interval, whether inside the range of
    published fits), its compute-optimal point where the study has budgets, its zero-shot
    verdict per task (held-out likelihood apart) and its forecast where it made one."""

    architecture: str
    law: str | None  # "L(N): α = 0.30 [0.1, 0.42], inside the published 0.05-1.5"
    in_range: bool | None  # every exponent inside the published range (None: no law)
    optimum: str | None  # the compute-optimal point, where the study has budgets
    tasks: tuple[TaskVerdict, ...]  # the zero-shot tasks by accuracy
    likelihood: tuple[TaskVerdict, ...]  # held-out likelihood: not a zero-shot task
    forecast: str | None  # the stored prediction's forecast line and how it did
    losses: tuple[TaskVerdict, ...] = ()  # the zero-shot tasks by their task loss

    def cells(self) -> dict[str, str]:
        """The report table's cells by column, in order; empty where there is nothing."""
        scored = Verdicts(self.tasks, self.losses, self.likelihood)
        return {"law": self.law or "no law fitted", "compute-optimal": self.optimum or "",
                "zero-shot": f"by {TEST}: " + zero_shot_words(scored) if scored.all() else "",
                "forecast": self.forecast or ""}  # fmt: skip

    def text(self) -> str:
        """The one line the terminal prints: the cells that say something, in order."""
        return f"{self.architecture}: " + " | ".join(v for v in self.cells().values() if v)

    def to_json(self) -> dict:
        """Its values, and its line (`text`), as JSON."""
        return {"architecture": self.architecture, "law": self.law, "in_range": self.in_range,
                "compute_optimal": self.optimum, "zero_shot_test": TEST,
                "zero_shot": [t.to_json() for t in self.tasks],
                "zero_shot_task_loss": [t.to_json() for t in self.losses],
                "heldout_likelihood": [t.to_json() for t in self.likelihood],
                "forecast": self.forecast, "text": self.text()}  # fmt: skip


@dataclass(frozen=True)
class Headline:
    """A study's headline: one `ArchitectureHeadline` per architecture, in order."""

    rows: tuple[ArchitectureHeadline, ...]

    def lines(self) -> list[str]:
        """One line per architecture."""
        return [row.text() for row in self.rows]

    def to_json(self) -> list[dict]:
        """One JSON object per architecture (`ArchitectureHeadline.to_json`)."""
        return [row.to_json() for row in self.rows]


def _exponents(fit: LawFit) -> list[tuple[str, Estimate]]:
    names = ("alpha", "beta") if fit.law == "nd" else ("alpha",)
    return [(n, fit.params[n]) for n in names if n in fit.params]


def _inside(name: str, e: Estimate) -> bool:
    low, high = PLAUSIBLE[name]
    return e.estimate is not None and low <= e.estimate <= high


def _headline_fit(laws: dict) -> LawFit | None:
    """The law the headline speaks of: L(N, D) where fitted, unless its exponents fall outside
    the range of published fits and L(N) is fitted too: budgets that do not pin L(N, D) down
    (two multiples of tokens per parameter, 2x apart, say) may still measure L(N)."""
    nd, n = (laws.get(k) if isinstance(laws.get(k), LawFit) else None for k in ("nd", "n"))
    if nd is not None and (n is None or all(_inside(k, e) for k, e in _exponents(nd))):
        return nd
    return n


def _law(laws: dict) -> tuple[str | None, bool | None]:
    """L(N, D) where fitted, else L(N): its exponents with intervals, and whether inside the
    range of published fits."""
    fit = _headline_fit(laws)
    if fit is None:
        return None, None
    inside = all(_inside(n, e) for n, e in _exponents(fit))
    name = "L(N, D)" if fit.law == "nd" else "L(N)"
    low, high = PLAUSIBLE["alpha"]  # beta's range is alpha's
    where = "inside" if inside else "outside"
    text = f"{name}: {_said(fit)}, {where} the published {low:g}-{high:g}"
    nd = laws.get("nd")
    if isinstance(nd, LawFit) and fit is not nd:  # passed over: said, not hidden
        text += f" (L(N, D) not pinned down by these budgets: {_said(nd)})"
    return text, inside


def _said(fit: LawFit) -> str:
    """A fit's exponents with their intervals: "α = 0.21 [0.053, 2.02], β = ..."."""
    return ", ".join(f"{'α' if n == 'alpha' else 'β'} = {e.text(3, 3)}" for n, e in _exponents(fit))


def shows_law(laws: dict) -> bool | None:
    """Whether the points show a law: every exponent inside the published range with a 95%
    interval that excludes 0 and stops short of the fit's bound (an interval that reaches it
    is open above: the resamples ran off; None: no law fitted)."""
    fit = _headline_fit(laws)
    if fit is None:
        return None
    return all(_inside(n, e) and _closed(e) for n, e in _exponents(fit))


def _open(laws: dict) -> str:
    """Why an exponent inside the published range still shows no law ("" where an exponent
    is outside, which the line says)."""
    exponents = _exponents(_headline_fit(laws))
    if not all(_inside(n, e) for n, e in exponents):
        return ""
    return next((f" but {why}" for _, e in exponents if (why := _why_open(e))), "")


def _why_open(e: Estimate) -> str | None:
    """Why an exponent's 95% interval leaves it unmeasured: none, it reaches 0, or it runs to
    the fit's bound (where the resamples ran off); None where it is closed."""
    low, high = e.ci or (None, None)
    if low is None or high is None:
        return "has no interval"
    if low <= 0:
        return "its interval reaches 0"
    if high >= 0.99 * EXPONENT_BOUND:
        return f"its interval runs to the fit's bound, {EXPONENT_BOUND:g}"
    return None


def _closed(e: Estimate) -> bool:
    return _why_open(e) is None


def _optimum(laws: dict) -> str | None:
    """The compute-optimal point: L(N, D)'s allocation at its budget (where the headline
    speaks of L(N, D)), else the largest budget's minimum of the loss-at-optimum law or the
    IsoFLOP analysis."""
    nd = _headline_fit(laws)
    if nd is not None and nd.law == "nd" and "N_opt" in nd.derived and nd.compute:
        d = nd.derived
        n_opt, d_opt, ratio = (d[k].text(3, 3) for k in ("N_opt", "D_opt", "tokens_per_param"))
        return f"at C = {nd.compute:.3g}: N = {n_opt}, D = {d_opt} ({ratio} tokens per parameter)"
    for law in ("optimum", "isoflop"):
        fit = laws.get(law)
        if isinstance(fit, LossOptimumFit | IsoFlopFit) and fit.budgets:
            top = max(fit.budgets, key=lambda m: m.C)
            a = fit.values()["a"]
            return (f"at C = {top.C:.3g}: N = {top.N_opt:.3g}, D = {top.D_opt:.3g}; "
                    f"N_opt ∝ C^a, a = {a.text(3, 3)}")  # fmt: skip
    return None


def _forecast(predictions: pd.DataFrame, architecture: str) -> str | None:
    """The forecast line of the architecture's largest stored prediction, and what its trial
    measured where it has trained."""
    if predictions is None or predictions.empty:
        return None
    rows = predictions[predictions.architecture == architecture]
    if rows.empty:
        return None
    p = rows.sort_values("flops").iloc[-1]
    stored = forecast_of(p)
    if stored is not None and stored.text:
        text = stored.text
    else:  # made before the backtest: no forecast line was kept
        ci = f" [{p.ci_low:.4g}, {p.ci_high:.4g}]" if pd.notna(p.get("ci_low")) else ""
        text = f"predicted {p.predicted_loss:.4g}{ci} at C = {p.flops:.3g}"
    if pd.notna(p.get("measured_loss")):
        return text + f"; measured {p.measured_loss:.4g} ({p.error:+.2%})"
    return text + "; not trained yet"


def headline_of(
    fits: StudyFits,
    predictions: pd.DataFrame | None = None,
    *,
    next_study: str | dict[str, str] | None = None,
) -> Headline:
    """The study's headline from its fits and its stored predictions (store.predictions_frame).
    An architecture whose points do not show a law (`shows_law`) says so in its line, and names
    `next_study` (the study file's `next_study`: one study, or one per architecture), the study
    that goes further."""
    rows = []
    for arch in sorted(set(fits.laws) | set(fits.trends)):
        law, inside = _law(fits.laws.get(arch, {}))
        if law and shows_law(fits.laws[arch]) is False:
            further = next_study.get(arch) if isinstance(next_study, dict) else next_study
            law += _open(fits.laws[arch]) + ": these sizes do not show a law"
            law += f"; {further} goes further" if further else ""
        trends = fits.trends.get(arch)
        verdicts = task_verdicts(trends.tasks if trends else {})
        rows.append(ArchitectureHeadline(
            architecture=arch, law=law, in_range=inside, optimum=_optimum(fits.laws.get(arch, {})),
            tasks=verdicts.accuracy, likelihood=verdicts.likelihood, losses=verdicts.loss,
            forecast=_forecast(predictions, arch)))  # fmt: skip
    return Headline(tuple(rows))


# --- caveats -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Caveat:
    """One warning of the fits, said once for every architecture it holds for, and what to do."""

    text: str
    architectures: tuple[str, ...]
    advice: str = ""
    code: str = ""  # what `study plan --json` names it by (the caveats knowable before training)

    def line(self) -> str:
        """The caveat in one line: the architectures, what, and what to do about it."""
        who = ", ".join(self.architectures)
        return f"{who}: {self.text}" + (f"; {self.advice}" if self.advice else "")


@dataclass(frozen=True)
class Caveats:
    """The fits' warnings grouped (`items`, each said once) and the notes that hold for every
    run of the study's design (`notes`: information, not a fault of this run)."""

    items: tuple[Caveat, ...]
    notes: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        """One line per caveat, then the notes."""
        return [c.line() for c in self.items] + [f"note: {n}" for n in self.notes]

    def to_json(self) -> dict:
        """The caveats and the notes as JSON."""
        return {"caveats": [{"architectures": list(c.architectures), "text": c.text,
                             "advice": c.advice} for c in self.items],
                "notes": list(self.notes)}  # fmt: skip


# Warnings that say the same thing for every architecture, whatever their numbers: one line.
STARVED = (
    f"fewer than {FEW_TOKENS_PER_PARAM} tokens per parameter",
    f"starved of data: most trials saw fewer than {FEW_TOKENS_PER_PARAM} tokens per parameter "
    "(compute-optimal is about 20), so L(N) measures the data more than the model",
    "give budgets in tokens per parameter (budget: {chinchilla: [...]}) or FLOPs",
)  # fmt: skip
KNOWN = (
    STARVED,
    ("the range of published fits",
     "a fitted exponent is outside the range of published fits: these points do not pin the "
     "law down", "add sizes (a wider span of N) or train each size on more tokens"),
    ("residual bootstrap instead",
     "intervals from a residual bootstrap (too few runs to resample whole runs): they may be "
     "too narrow", "add seeds or sizes"),
)  # fmt: skip
# Warnings whose numbers and names matter (said as they are), and what to do about them: the
# first entry whose every part the warning holds.
ADVICE = (
    (("log_E = ", "sits at its bound"), "add sizes or seeds; an E at its lower bound means the "
     "points show no floor, so read the exponent as a local slope"),
    (("sits at its bound",), "add sizes, budgets or seeds: the points do not pin this "
     "parameter down, and the others' intervals are narrower than they should be"),
    (("edge of the starting grid",), "the fit left the region it searched from; more sizes or "
     "budgets usually bring the optimum inside"),
    (("no interval for",), "read that parameter as unmeasured, not exact; more sizes or seeds "
     "give the resamples room to move it"),
)  # fmt: skip
_NUMBER = re.compile(r"[-+−]?\d[\d.,]*(e[-+]?\d+)?%?")
_TWO_STEP = re.compile(r"needs (\d+) runs; got (\d+)")


def _kind(message: str) -> tuple[str, str, str]:
    """The group a warning falls in, its text and its advice."""
    for key, text, advice in KNOWN:
        if key in message:
            return key, text, advice
    advice = next((advice for parts, advice in ADVICE if all(p in message for p in parts)), "")
    return _NUMBER.sub("#", message), message, advice


def caveats_of(fits: StudyFits, trials: pd.DataFrame | None = None) -> Caveats:
    """The fits' warnings, each kind said once naming the architectures it holds for (an
    L(N, D) the headline passes over, and the two-step fits' step 1, summed up in one caveat
    each: their warnings are in the report); the two-step fit not made for want of sizes said
    once, as a note; with the study's `trials`, the CPU trials whose MFU passed 100% (a peak
    measured low), said once."""
    passed = _passed_over(fits)  # their L(N, D) warnings: one caveat, not each of them
    said = [(arch, f"{law}: ", message)
            for arch, laws in sorted(fits.laws.items())
            for law, fit in laws.items() if not (law == "nd" and arch in passed)
            for message in fit.warnings]  # fmt: skip
    said += [(arch, "", message) for arch, result in sorted(fits.tasks.items())
             for message in result.warnings]  # fmt: skip
    groups: dict[str, dict] = {}
    for arch, law, message in said:
        key, text, advice = _kind(message)
        text = text if any(key == k for k, _, _ in KNOWN) else law + text  # known: any law
        group = groups.setdefault(key, {"texts": [], "advice": advice, "archs": []})
        group["texts"].append(text)
        group["archs"] += [] if arch in group["archs"] else [arch]
    items = []
    for group in groups.values():
        text = group["texts"][0]
        if len(set(group["texts"])) > 1:  # the same warning with other numbers
            text += f" (the numbers {group['archs'][0]}'s; the others' in the report)"
        items.append(Caveat(text, tuple(group["archs"]), group["advice"]))
    items += _step1_caveats(fits)
    if passed:
        items.insert(0, Caveat(
            "L(N, D) is not pinned down by these budgets (its exponents fall outside the "
            "published range; its warnings are in the report), so the headline speaks of L(N)",
            tuple(passed), "to measure L(N, D), give budgets further apart in tokens per "
            "parameter, or a grid of FLOP budgets"))  # fmt: skip
    return Caveats(tuple(items + _peak_caveat(trials)), _two_step_notes(fits))


def _step1_caveats(fits: StudyFits) -> list[Caveat]:
    """The two-step fits whose step 1 (task loss from N and D) warned: one caveat per set of
    tasks, naming the architectures; each warning stays in the report."""
    warned: dict[tuple[str, ...], list[str]] = {}
    for arch, result in sorted(fits.tasks.items()):
        tasks = tuple(t for t, r in result.fitted().items() if r.step1.warnings)
        if tasks:
            warned.setdefault(tasks, []).append(arch)
    return [Caveat(f"the two-step fit's step 1 (task loss from N and D) warned on "
                   f"{', '.join(tasks)} (such as parameters at their bounds or beyond the starting "
                   "grid; each warning is in the report), so its accuracy predictions are loose",
                   tuple(archs), "more sizes or budgets pin step 1 down")
            for tasks, archs in warned.items()]  # fmt: skip


def _passed_over(fits: StudyFits) -> list[str]:
    """The architectures whose headline passes over their L(N, D) fit for L(N)."""
    return [
        arch
        for arch, laws in sorted(fits.laws.items())
        if isinstance(laws.get("nd"), LawFit) and _headline_fit(laws) is not laws["nd"]
    ]


def _peak_caveat(trials: pd.DataFrame | None) -> list[Caveat]:
    """One caveat for CPU trials faster than the peak their MFU is against: the peak is
    measured once, before a run's trials, and never raised to a trial's rate (trainers/peak.py),
    so MFU over 100% says the measurement was low, on a machine busy at the time."""
    if trials is None or not {"mfu", "device"} <= set(trials.columns):
        return []
    over = trials[(trials.device == "cpu") & (trials.mfu > 1.0)]
    if over.empty:
        return []
    text = (f"CPU peak measured low: MFU above 100% in {len(over)} trial(s) (up to "
            f"{over.mfu.max():.0%}); the peak is measured once, before the trials, and a trial "
            "faster than it does not move it")  # fmt: skip
    advice = (
        "run on an idle machine (a later run keeps the higher peak) or give resources.peak_flops"
    )
    return [Caveat(text, tuple(sorted(set(over.architecture))), advice)]


def _two_step_notes(fits: StudyFits) -> tuple[str, ...]:
    """One note for the two-step fits not made for want of runs (true of every run of a study
    of that many sizes); one line per other reason."""
    short, other = {}, []
    for arch, result in sorted(fits.tasks.items()):
        for task, failed in result.failed().items():
            if m := _TWO_STEP.search(failed.error):
                short.setdefault((m.group(1), m.group(2)), []).append(arch)
            else:
                other.append(f"{arch} {task}: two-step fit not made ({failed.error})")
    notes = [
        f"the two-step accuracy fit is not made for {', '.join(dict.fromkeys(archs))}: "
        f"{two_step_why(need, got)}. A study with more sizes makes it"
        for (need, got), archs in short.items()
    ]  # fmt: skip
    return tuple(notes + other)


def two_step_why(need, got) -> str:
    """Why the two-step accuracy fit is not made for want of runs (`study run` and `plan`)."""
    return (f"it holds out the largest size to test itself, and needs {need} runs besides; "
            f"{got} are left")  # fmt: skip
