"""What a study's design lets its fits say, known before anything trains: the caveats that
`study run` would give of its fits and that the planned trials alone decide (too few tokens per
parameter, too few sizes or budgets for a law's parameters), for `study plan` to say first.

Each check uses the threshold the fits use, from the module that defines it, and the run's own
words where the run says the same thing (analysis.headline)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.fits import laws_of, starved
from analysis.headline import STARVED, Caveat, two_step_why
from analysis.isoflop import LEAST_SIZES, no_parabola
from analysis.laws import CHINCHILLA_ND, KAPLAN_N, compute_budgets
from analysis.tasklaw import two_step_runs

N_PARAMS = len(KAPLAN_N.internal_names())  # L(N): E, A, α
ND_PARAMS = len(CHINCHILLA_ND.internal_names())  # L(N, D): E, A, B, α, β
ISOFLOP_BUDGETS = 2  # the lines through the parabolas' minima (analysis.isoflop._lines)


def _law_n(points: pd.DataFrame) -> list[tuple[str, str, str]]:
    """L(N)'s caveats: too few sizes to fit it, to give it intervals, to test it; starved."""
    sizes, runs = points.N.nunique(), len(points)
    more = f"give {N_PARAMS + 1} sizes or more"
    said = []
    if sizes < N_PARAMS:
        said.append(("too-few-sizes", f"L(N) needs {N_PARAMS} distinct sizes; got {sizes}: no "
                     "law is fitted", more))  # fmt: skip
    elif sizes == N_PARAMS:
        intervals = "no intervals and " if runs <= N_PARAMS else ""
        said.append(("too-few-sizes", f"L(N) has {N_PARAMS} parameters and the study "
                     f"{sizes} sizes: {intervals}no self-test (it holds out the largest size "
                     f"and refits on {sizes - 1})", more))  # fmt: skip
    if starved(points):
        said.append(("starved-of-data", STARVED[1], STARVED[2]))
    return said


def _law_nd(points: pd.DataFrame) -> list[tuple[str, str, str]]:
    """L(N, D)'s caveat: fewer points than its parameters."""
    if len(points) >= ND_PARAMS and points.N.nunique() >= 2:
        return []
    return [("too-few-points", f"L(N, D) has {ND_PARAMS} parameters: it needs {ND_PARAMS} "
             f"points of 2 sizes or more; got {len(points)}: it is not fitted",
             "add sizes or budgets")]  # fmt: skip


def _isoflop(points: pd.DataFrame) -> list[tuple[str, str, str]]:
    """IsoFLOP's caveats, where the grid has FLOP budgets (several sizes at one compute): a
    budget of too few sizes for a parabola, and fewer such budgets than the fit needs."""
    labels = compute_budgets(points.C)
    sizes = points.groupby(labels).N.nunique()
    if sizes.max() < 2:  # a grid of token budgets: no two sizes share a compute budget
        return []
    middle = points.C.groupby(labels).apply(lambda c: float(np.exp(np.log(c).mean())))
    said = [("budget-left-out", no_parabola(middle[label], count),
             f"give each FLOP budget {LEAST_SIZES} sizes or more")
            for label, count in sizes.items() if count < LEAST_SIZES]  # fmt: skip
    fitted = int((sizes >= LEAST_SIZES).sum())
    if fitted >= ISOFLOP_BUDGETS:
        return said
    return said + [("too-few-budgets", f"an IsoFLOP fit needs {ISOFLOP_BUDGETS} compute budgets, "
                    f"each with {LEAST_SIZES} sizes or more; {fitted} have: it is not fitted",
                    f"give {ISOFLOP_BUDGETS} FLOP budgets or more, each with {LEAST_SIZES} "
                    "sizes or more around its optimum")]  # fmt: skip


def _two_step(points: pd.DataFrame) -> list[tuple[str, str, str]]:
    """The two-step accuracy fit's caveat: too few runs once the largest size is held out."""
    rest = points[points.N < points.N.max()]
    need = two_step_runs(rest.D.nunique() >= 2)
    if len(rest) >= need:
        return []
    return [
        (
            "two-step-fit",
            f"the two-step accuracy fit is not made: {two_step_why(need, len(rest))}",
            "a study with more sizes makes it",
        )
    ]


def design_caveats(points: pd.DataFrame, *, zero_shot: bool) -> list[Caveat]:
    """The caveats of a planned grid, each said once naming the architectures it holds for:
    `points` has one row per planned trial (architecture, N, D, C, lr); `zero_shot`: its trials
    score zero-shot tasks (the two-step accuracy fit is made of them)."""
    said: dict[tuple[str, str, str], list[str]] = {}
    for arch, frame in points.groupby("architecture", sort=True):
        frame = frame[frame.N > 0]
        if frame.groupby(["N", "D"]).lr.nunique().max() > 1:  # a sweep: one point a cell
            frame = frame.drop_duplicates(["N", "D"])
        found = []
        for law, at in laws_of(frame).items():
            found += {"n": _law_n, "nd": _law_nd, "isoflop": _isoflop}[law](at)
        found += _two_step(frame) if zero_shot and len(frame) else []
        for key in found:
            said.setdefault(key, []).append(str(arch))
    return [Caveat(text, tuple(archs), advice, code)
            for (code, text, advice), archs in said.items()]  # fmt: skip


def caveats_json(caveats: list[Caveat]) -> list[dict]:
    """The caveats as `study plan --json` gives them."""
    return [{"code": c.code, "message": c.text, "what_to_do": c.advice,
             "architectures": list(c.architectures)} for c in caveats]  # fmt: skip
