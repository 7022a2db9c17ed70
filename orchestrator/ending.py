"""The end of `study run` (and `predict`, `eval`): after the trials, the terminal's lines (each
law's fit, the report's path, the caveats, then the headline) or, with `--json`, one JSON
document on stdout of the same values, for a script to read."""

from __future__ import annotations

import io
import json
import sys

from orchestrator.printing import print_ending
from orchestrator.stages import RunResult


def run_json(result: RunResult) -> dict:
    """What a run did as JSON: the study, its store and report, the trials (`finished`: trained
    to the end by this run; `skipped`: found finished in the store; `failed`, `scored` again,
    `unscored`, `outdated`), the headline (analysis.headline), the caveats and notes, and the
    stored predictions with what their trials measured."""
    from analysis.headline import caveats_of, headline_of
    from analysis.report import outdated_note
    from analysis.results import nulls

    caveats = (result.caveats or caveats_of(result.fits)).to_json()
    if result.outdated:  # what the terminal says among the caveats: said here too
        caveats["caveats"].append({"architectures": [], "text": outdated_note(result.outdated),
                                   "advice": "study eval scores them again"})  # fmt: skip
    predictions = result.predictions
    report = result.report if result.report is not None and result.report.exists() else None
    return nulls({
        "study": result.study,
        "store": result.store_url,
        "report": str(report) if report else None,
        "trials": {
            "finished": len(result.ran),
            "skipped": len(result.skipped),
            "failed": len(result.failed),
            "scored": len(result.scored),
            "failed_ids": result.failed,
            "unscored_ids": result.unscored,
            "outdated_ids": result.outdated,
        },
        "headline": (result.headline or headline_of(result.fits)).to_json(),
        **caveats,
        "predictions": [] if predictions is None or predictions.empty
        else json.loads(predictions.to_json(orient="records", date_format="iso")),
    })  # fmt: skip: JSON has no NaN


def silent():
    """A console that prints nothing: the run's progress and lines under `--quiet`."""
    from rich.console import Console

    return Console(file=io.StringIO(), quiet=True)


def print_end(result: RunResult, out, err, *, as_json: bool = False, quiet: bool = False) -> None:
    """The run's last lines: each law's fit, the trials scored again and the report's path on
    `out`, the caveats on `err`, then the headline on `out`; with `as_json`, only `run_json` on
    stdout (one document: the progress and the run's lines went to stderr); with `quiet`, the
    caveats and the headline alone."""
    if as_json:
        sys.stdout.write(json.dumps(run_json(result), indent=2, allow_nan=False) + "\n")
        return
    if quiet:
        print_ending(result, out, err)
        return
    for arch, laws in result.fits.laws.items():
        for fit in laws.values():
            out.print(fit.summary(arch), highlight=False, markup=False)
    for arch, fitted in sorted(result.fits.tasks.items()):
        for line in fitted.lines(arch, fitted_only=True):
            out.print(line, highlight=False, markup=False)
    if result.scored:
        out.print(f"scored again: {len(result.scored)} trial(s)", highlight=False)
    out.print(f"report: {result.report}", highlight=False)
    print_ending(result, out, err)  # the caveats, then the headline: the run's verdict
