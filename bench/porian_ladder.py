"""Porian et al. 2024's isoFLOP ladder as one table for `study fit --csv --law forecast`, and our
forecast of its largest budget's optimum set beside the one the authors' released fit makes.

    python bench/porian_ladder.py convert CHECKOUT_OR_FILE   # writes data/anchors/porian-ladder.csv
    python bench/porian_ladder.py                            # forecasts 2.56e19 and compares

CHECKOUT_OR_FILE is a clone of github.com/formll/resolving-scaling-law-discrepancies (MIT), or
its `data/summary_df.pickle.xz`: one row per setting, whose `optimal_pairs` hold per FLOP budget
the runs the authors' own code (analysis.interp_flop) took for that budget: N (`n_vals`, their
"standard" count: every weight, the output layer included), tokens (`t_vals`, C / 6N) and the
validation loss at C (`loss_vals`). The table keeps one setting, the paper's last and the one
whose loss at the optimum it extrapolates: RefinedWeb, tuned AdamW hyperparameters, short
warmup, constant learning rate ("Optimizer tuning (no decay)").
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

ASSET = Path(__file__).resolve().parents[1] / "data" / "anchors" / "porian-ladder.csv"
SETTING = ("rw", "tuned", "short", "const", "standard", "val")
FIELDS = ("dataset", "hparams", "warmup", "decay", "param_count", "val")
# The authors fit L*(C) = E + A·C^-α only on the budgets 1e16 < C < 5e17 (plotting.py,
# opt_loss_vs_compute_plot) and extrapolate it to 2.56e19, 64× beyond; their released fit for
# this setting (summary_df.pickle.xz, fit_results["bs_median"]), and its 95% band from their
# 200 bootstrap fits at 2.56e19.
PAPER_FIT = (1e16, 5e17)
PUBLISHED = {"A": 128.93191387679073, "E": 2.0055567801262706, "alpha": 0.10596965150600296}
PUBLISHED_BAND = (3.1042, 3.1672)
PUBLISHED_OBSERVED = 3.0949  # their interpolated optimum at 2.56e19 (optimal_pairs.loss)
LARGEST = 2.56e19


def convert(source: Path) -> None:
    """Write the chosen setting's runs, one row per (budget, run), to ASSET."""
    if source.is_dir():
        source = source / "data" / "summary_df.pickle.xz"
    summary = pd.read_pickle(source)
    row = summary[(summary[list(FIELDS)] == pd.Series(SETTING, index=FIELDS)).all(axis=1)]
    rows = []
    for _, budget in row.iloc[0].optimal_pairs.iterrows():
        c = float(budget.flops)
        for n, d, loss in zip(budget.n_vals, budget.t_vals, budget.loss_vals, strict=True):
            rows.append({"N": int(n), "D": int(round(d)), "C": c, "loss": round(float(loss), 6),
                         "paper_fit": int(PAPER_FIT[0] < c < PAPER_FIT[1]),
                         "held_out": int(c == LARGEST)})  # fmt: skip
    frame = pd.DataFrame(rows)
    frame.to_csv(ASSET, index=False)
    print(f"wrote {ASSET}: {len(frame)} runs at {frame.C.nunique()} budgets")


def compare(n_boot: int = 200) -> None:
    """Forecast the largest budget's optimum from the others (all eleven, then the paper's
    six) by both methods, beside the published fit's forecast."""
    from analysis.forecast import forecast

    frame = pd.read_csv(ASSET)
    whole = forecast(frame.N, frame.D, frame.C, frame.loss, LARGEST, n_boot=0)
    observed = whole.backtest.rows[0].observed  # the largest budget's windowed parabola
    paper = PUBLISHED["E"] + PUBLISHED["A"] * LARGEST ** -PUBLISHED["alpha"]
    print(f"measured optimum at {LARGEST:.3g}: {observed:.4f} (windowed parabola; the "
          f"authors' own {PUBLISHED_OBSERVED})")  # fmt: skip
    print(f"published fit (budgets 1.25e16..4e17): {paper:.4f} {list(PUBLISHED_BAND)}, "
          f"error {100 * (paper / observed - 1):+.2f}%")  # fmt: skip
    for label, kept in (("the other eleven budgets", frame.held_out == 0),
                        ("the paper's six budgets", frame.paper_fit == 1)):  # fmt: skip
        part = frame[kept]
        result = forecast(part.N, part.D, part.C, part.loss, LARGEST, n_boot=n_boot)
        errors = ", ".join(f"{m} {f.loss.text()} ({100 * (f.loss.estimate / observed - 1):+.2f}%)"
                           for m, f in result.forecasts.items())  # fmt: skip
        print(f"from {label}: {errors}; chosen: {result.method}")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "convert":
        convert(Path(sys.argv[2]))
    else:
        compare()
