"""The OLMo model ladder's released runs as one table for `study fit --csv --law task`, and our
two-step prediction of the 7B and 13B models set beside the published one.

    python bench/olmo_ladder.py convert CHECKOUT   # writes data/anchors/olmo-ladder.csv
    python bench/olmo_ladder.py                    # fits it and prints the comparison

CHECKOUT is a clone of github.com/allenai/OLMo-ladder (Apache 2.0; Bhagia et al. 2024), whose
src/scripts/paper/data/ladder-runs/ holds one CSV per run (one row per evaluated checkpoint).
The table keeps, per task, the bits per byte of the right answer (`*_rc_5shot_bpb`) and the
length-normalised accuracy (`*_rc_5shot_len_norm`), N as the authors count it (every weight but
the input embedding), D the tokens seen; MMLU is the authors' weighted mean of its four
categories. Each ladder run is thinned to at most 50 evenly spaced checkpoints (its last kept).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

ASSET = Path(__file__).resolve().parents[1] / "data" / "anchors" / "olmo-ladder.csv"
N = {"190M": 190354176, "370M": 371262464, "760M": 758220288, "1B": 1279395840,
     "7B": 6887575552, "13B": 13202396160}  # fmt: skip
TASKS = {"hellaswag": "hellaswag_val", "arc_challenge": "arc_challenge_test",
         "arc_easy": "arc_easy_test", "piqa": "piqa_val", "csqa": "csqa_val",
         "socialiqa": "socialiqa_val", "openbookqa": "openbookqa_test"}  # fmt: skip
MMLU = {"mmlu_stem_test": 0.215, "mmlu_humanities_test": 0.335,
        "mmlu_social_sciences_test": 0.219, "mmlu_other_test": 0.231}  # fmt: skip
CHANCE = {"piqa": 0.5, "socialiqa": 1 / 3, "csqa": 0.2}  # the others: 4 choices
# The 7B (4T tokens, annealed) and 13B (5T) targets: tokens seen, and what the authors' code
# (their step1/step2/predict scripts, their settings) predicts and measures, in accuracy points.
TARGETS = {"7B": 3945065873408, "13B": 5000088518656}
PUBLISHED = {  # task: (7B actual, 7B predicted, 13B actual, 13B predicted)
    "mmlu": (49.0, 48.4, 51.6, 51.3), "hellaswag": (81.3, 82.5, 83.2, 85.3),
    "arc_challenge": (61.9, 51.5, 63.8, 52.7), "arc_easy": (84.6, 76.6, 87.2, 77.2),
    "piqa": (82.0, 81.2, 83.0, 82.1), "csqa": (72.6, 75.7, 74.1, 77.6),
    "socialiqa": (59.9, 58.7, 61.6, 59.9), "openbookqa": (49.4, 44.2, 48.6, 44.9),
}  # fmt: skip


def _columns(raw: pd.DataFrame) -> dict[str, tuple[pd.Series, pd.Series]]:
    out = {}
    for task, key in TASKS.items():
        out[task] = (raw[f"eval/downstream_bpb/{key}_rc_5shot_bpb"],
                     raw[f"eval/downstream/{key}_rc_5shot_len_norm"])  # fmt: skip
    bpb = sum(w * raw[f"eval/downstream_bpb/{k}_rc_5shot_bpb"] for k, w in MMLU.items())
    acc = sum(w * raw[f"eval/downstream/{k}_rc_5shot_len_norm"] for k, w in MMLU.items())
    out["mmlu"] = (bpb, acc)
    return out


def convert(checkout: Path) -> None:
    folder = checkout / "src" / "scripts" / "paper" / "data" / "ladder-runs"
    rows = []
    for size in ("190M", "370M", "760M", "1B"):
        for mult in ("1xC", "2xC", "5xC", "10xC"):
            raw = pd.read_csv(folder / f"{size}-{mult}.csv").sort_values("_step")
            keep = np.unique(np.linspace(0, len(raw) - 1, min(50, len(raw))).round().astype(int))
            raw = raw.iloc[keep]
            for task, (bpb, acc) in _columns(raw).items():
                for d, loss, a in zip(raw["throughput/total_tokens"], bpb, acc, strict=True):
                    rows.append({"run": f"{size}-{mult}", "N": N[size], "D": int(d), "task": task,
                                 "task_loss": round(float(loss), 6), "accuracy": round(float(a), 6),
                                 "chance": round(CHANCE.get(task, 0.25), 6)})  # fmt: skip
    frame = pd.DataFrame(rows)
    frame.to_csv(ASSET, index=False)
    print(f"wrote {ASSET}: {len(frame):,} rows, {frame.run.nunique()} runs, "
          f"{frame.task.nunique()} tasks")  # fmt: skip


def compare(n_boot: int = 1000) -> None:
    from orchestrator.fitting import fit_csv

    columns = {c: c for c in ("N", "D", "task", "task_loss", "accuracy", "chance")}
    print("| task | target | actual | published prediction (error) | ours [95% interval] "
          "(error) |")  # fmt: skip
    print("|---|---|---|---|---|")
    errors = {"published": [], "ours": []}
    for target, d in TARGETS.items():
        result = fit_csv(ASSET, "task", columns, group="run", n_boot=n_boot,
                         target=f"N={N[target]},D={d}")  # fmt: skip
        for task, r in result.fitted().items():
            actual, predicted = PUBLISHED[task][0:2] if target == "7B" else PUBLISHED[task][2:4]
            ours = 100 * r.accuracy.estimate
            ci = r.accuracy.ci
            shown = f"{ours:.1f}" + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "")
            errors["published"].append(abs(predicted - actual))
            errors["ours"].append(abs(ours - actual))
            print(f"| {task} | {target} | {actual:.1f} | {predicted:.1f} "
                  f"({predicted - actual:+.1f}) | {shown} ({ours - actual:+.1f}) |")  # fmt: skip
    for who, values in errors.items():
        within = sum(v <= 2 for v in values)
        print(f"{who}: mean absolute error {np.mean(values):.2f} points; within 2 points on "
              f"{within} of {len(values)}")  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "convert":
        convert(Path(sys.argv[2]))
    else:
        compare()
