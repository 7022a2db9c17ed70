"""`study plan` before anything trains: the caveats the run's fits will give that the study
file alone decides, said with the run's thresholds and words, and the run's one time estimate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from analysis.design import design_caveats
from analysis.fits import FEW_TOKENS_PER_PARAM, _far_from_optimal
from orchestrator.duration import Estimate, estimate_run

STUDIES = Path(__file__).resolve().parents[1] / "studies"

# 3 sizes at 2 tokens per parameter (chinchilla 0.1 × 20): starved, and L(N) fits 3 parameters
# on 3 sizes (no intervals, no self-test)
SHORT = """\
name: short
data: {corpus: "builtin:kjv", tokenizer: bytes, seq_len: 32}
architectures: [decoder]
sizes: [25K, 50K, 100K]
budget: {chinchilla: 0.1}
train: {batch_size: 8, lr: 3.0e-3}
eval: {every_tokens: 8K, tokens: 2K, zero_shot: {items: 30}}
resources: {cpus_per_trial: 1}
"""


def test_a_starved_study_of_three_sizes_is_warned_of_both_before_it_trains(tmp_path, study_here):
    (tmp_path / "short.yaml").write_text(SHORT + f"storage: {tmp_path / 'artifacts'}\n")
    shown = study_here("plan", "short.yaml", cwd=tmp_path)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    block = shown.stdout[shown.stdout.index("before you train") :].splitlines()
    assert block[0].startswith("before you train: caveats the run will give (")
    assert any(line.startswith("  decoder: starved of data: most trials saw fewer than "
                               f"{FEW_TOKENS_PER_PARAM} tokens per parameter")
               for line in block)  # fmt: skip
    assert any("  decoder: L(N) has 3 parameters and the study 3 sizes: no intervals and no "
               "self-test" in line and line.endswith("; give 4 sizes or more")
               for line in block)  # fmt: skip
    planned = json.loads(study_here("plan", "short.yaml", "--json", cwd=tmp_path).stdout)
    codes = {c["code"]: c for c in planned["caveats"]}
    assert {"starved-of-data", "too-few-sizes"} <= set(codes)
    assert codes["starved-of-data"]["architectures"] == ["decoder"]
    assert codes["starved-of-data"]["what_to_do"].startswith("give budgets in tokens per param")
    assert [round(t["tokens_per_param"]) for t in planned["trials"]] == [2, 2, 2]
    assert not (tmp_path / "runs").exists()  # plan trains nothing


def test_the_plans_starved_warning_is_the_fits_own():
    """The plan says "starved" exactly where fitting L(N) to those points warns of it: one
    threshold (analysis.fits.FEW_TOKENS_PER_PARAM) decides both."""
    n = pd.Series([25e3, 50e3, 1e5, 2e5])
    edge = FEW_TOKENS_PER_PARAM * 50e3  # most sizes (three of four) below it from here down
    for tokens in (0.96 * edge, 1.04 * edge):
        points = pd.DataFrame({"architecture": "decoder", "N": n, "D": tokens, "C": 6 * n * tokens,
                               "lr": 1e-3, "loss": 2 + 50 * n**-0.3})  # fmt: skip
        planned = {c.code for c in design_caveats(points, zero_shot=False)}
        said = bool(_far_from_optimal(points))  # the warning fit_points adds to L(N)
        assert ("starved-of-data" in planned) == said == (tokens < edge)


def test_the_quickstarts_plan_says_what_its_run_will(tmp_path, study_here):
    """What `study plan studies/quickstart.yaml` says before it trains (update with the study)."""
    shutil.copy(STUDIES / "quickstart.yaml", tmp_path / "quickstart.yaml")
    planned = json.loads(study_here("plan", "quickstart.yaml", "--json", cwd=tmp_path).stdout)
    codes = {c["code"]: c["architectures"] for c in planned["caveats"]}
    # four sizes: L(N) has its intervals and self-test; the two-step fit holds out the 100K
    # models and has 3 runs left; every size trains on 10 tokens per parameter (not starved);
    # one tokens-per-parameter budget: no L(N, D) or IsoFLOP fit to warn of
    assert codes == {"two-step-fit": ["decoder", "encdec", "encoder"]}
    assert planned["estimate"]["text"].startswith("about ")
    assert planned["estimate"]["text"].endswith(" on this machine "
                                                f"({planned['estimate']['cores']} cores"
                                                + (", 2 trials at a time)"
                                                   if planned["estimate"]["cores"] >= 2
                                                   else ")"))  # fmt: skip


# The quickstart's last whole run recorded in BENCHMARKS.md: "The quickstart that shows the
# claim (2026-12-07, issue 34)", `python bench/quickstart.py --runs 3` on the 2-core machine:
# median 101 s (99-104 s). Re-measured with the study, this figure moves with it.
MEASURED_MIN = 101 / 60
BAND = 1.5  # the estimate is honest to within a factor 1.5 either way on that machine


def test_the_quickstarts_time_estimate_is_near_its_measured_time(tmp_path):
    from orchestrator import api
    from orchestrator.spec import load_study

    spec = load_study(STUDIES / "quickstart.yaml")
    estimate = estimate_run(api.plan(spec), cores=2)
    assert MEASURED_MIN / BAND <= estimate.minutes <= MEASURED_MIN * BAND, estimate
    assert estimate.phrase() == "about 2 min on this machine (2 cores, 2 trials at a time)"


def test_the_estimate_runs_trials_side_by_side_costliest_first():
    frame = pd.DataFrame({"cpu_minutes": [4.0, 1.0, 1.0, 1.0, 1.0], "cpus": 1, "workers": 1,
                          "gpus": 0})  # fmt: skip
    assert estimate_run(frame, cores=1).minutes == pytest.approx(8 + 1 / 3)
    # 4 on one core, the four 1s on the other: 4 min, plus the run's fixed 20 s
    assert estimate_run(frame, cores=2).minutes == pytest.approx(4 + 1 / 3)
    two_each = frame.assign(cpus=2)
    assert estimate_run(two_each, cores=2).side_by_side == 1
    assert estimate_run(frame.assign(gpus=1), cores=2).phrase().startswith("no time estimate")
    assert Estimate(0.4, 2, 1).phrase() == "about 1 min on this machine (2 cores)"


def test_a_flop_grid_is_warned_of_budgets_too_small_for_a_parabola():
    """An IsoFLOP grid of 2 budgets, one with 2 sizes: that budget is left out (the fits' own
    note), and one budget is too few for the fit's lines."""
    rows = [(n, c) for c in (1e10, 1e11) for n in (1e4, 2e4, 4e4)][:5]  # 1e11: 2 sizes
    points = pd.DataFrame([{"architecture": "decoder", "N": n, "D": c / (6 * n), "C": c,
                            "lr": 1e-3} for n, c in rows])  # fmt: skip
    said = {c.code: c for c in design_caveats(points, zero_shot=False)}
    assert said["budget-left-out"].text == (
        "C = 1e+11: 2 size(s) tried, a parabola needs 3; left out"
    )
    assert said["too-few-budgets"].text.startswith("an IsoFLOP fit needs 2 compute budgets")
    assert "starved-of-data" not in said and "too-few-sizes" not in said  # no L(N) here
