"""`study fit --csv`: published tables fitted from the command line; bad tables refused."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from tests.test_laws import ANCHOR, PUBLISHED


def test_the_published_chinchilla_fit_from_the_command_line(study_here, tmp_path):
    args = ["--n", "Model Size", "--c", "Training FLOP", "--drop-highest-loss", "5"]
    done = study_here(
        "fit", "--csv", str(ANCHOR), "--law", "nd", *args, "--json", "--n-boot", "50",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["law"] == "nd" and result["n_points"] == 240
    for name, value in PUBLISHED.items():
        entry = result["params"][name]
        assert entry["estimate"] == pytest.approx(value, rel=0.01)
        assert entry["ci"][0] < entry["estimate"] < entry["ci"][1]
    assert 0.45 < result["derived"]["a"]["estimate"] < 0.55
    assert result["holdout"]["held_out"] == "the largest compute budget"
    text = study_here("fit", "--csv", str(ANCHOR), "--law", "nd", *args, "--n-boot", "0",
                     cwd=tmp_path)  # fmt: skip
    assert "alpha = 0.3473" in text.stdout and "predicts it" in text.stdout


def test_a_trend_from_a_table_of_accuracies(study_here, tmp_path):
    table = tmp_path / "acc.csv"
    table.write_text(
        "params,acc,items,task\n1e6,0.30,500,a\n1e7,0.36,500,a\n1e8,0.44,500,a\n"
        "1e9,0.52,500,a\n3e9,0.55,500,a\n1e6,0.9,500,b\n"
    )
    done = study_here(
        "fit", "--csv", str(table), "--law", "trend", "--n", "params", "--accuracy", "acc",
        "--n-items", "items", "--where", "task=a", "--json", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["n_points"] == 5 and result["spearman_rho"] == pytest.approx(1.0)
    assert result["p_value"] == pytest.approx(2 / 120)  # exact: 2 of 120 orderings as extreme
    low, high = result["params"]["slope"]["ci"]
    assert 0 < low < result["slope"] < high
    assert result["verdict"].startswith("acc.csv: larger models did better")


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ("N,loss\n1e6,3.0\n2e6,x\n", ["--law", "n"], "line 3: column 'loss' needs a positive"),
        ("N,loss\n1e6,3.0\n", ["--law", "nd"], "needs D (column 'D')"),
        ("N,loss\n1e6,3\n2e6,2.9\n", ["--law", "n"], "needs 3 distinct sizes"),
        ("N,accuracy\n1e6,1.5\n", ["--law", "trend"], "needs a number in [0, 1]"),
        ("N,loss\n1e6,3\n", ["--law", "n", "--where", "arch"], "--where 'arch' must be"),
        ("N,loss\n1e6,3\n", ["--law", "quadratic"], "--law must be one of"),
        # empty tables (issue 35): no bytes, only blank lines, a header and no rows
        ("", [], "t.csv: the file is empty"),
        ("\n\n  \n\n", [], "t.csv: the file is empty"),
        ("N,loss\n", [], "t.csv: the file has a header (N, loss) but no rows"),
        # non-finite values are refused as NaN and negatives are, naming the rows
        ("N,loss\n1e6,3.0\n2e6,inf\n4e6,2.5\n", [], "line 3: column 'loss' needs a positive"),
        ("N,loss\n1e6,-inf\n2e6,inf\n4e6,nan\n8e6,2\n", [],
         "t.csv, lines 2, 3, 4: column 'loss' needs a positive finite number, got -inf, inf, nan"),
        ("N,loss\n" + "inf,3\n" * 8, [], "lines 2, 3, 4, 5, 6 and 3 more: column 'N' needs"),
        ("N,D,loss\n1e6,inf,3\n2e6,1e9,3\n", ["--law", "nd"], "line 2: column 'D' needs a"),
        ("N,C,loss\n1e6,-inf,3\n2e6,1e9,3\n", ["--law", "nd"], "line 2: column 'C' needs a"),
        ("N,D,U,loss\n1e6,1e9,inf,3\n", ["--law", "data-constrained"], "column 'U' needs a"),
        ("N,accuracy\n1e6,0.3\n2e6,inf\n", ["--law", "trend"], "line 3: column 'accuracy'"),
    ],
)
def test_a_bad_table_gets_one_clear_line_and_status_2(study_here, tmp_path, content, args, message):
    table = tmp_path / "t.csv"
    table.write_text(content)
    done = study_here("fit", "--csv", str(table), *args, cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


def test_a_csv_with_a_learning_rate_sweep_is_fitted_on_its_envelope(tmp_path, study_here):
    lines = ["N,D,loss,lr"]
    for n in (1e5, 3e5, 1e6, 3e6, 1e7):
        for lr in (1e-3, 2e-3, 4e-3):
            optimum = 2e-3 if n < 1e7 else 8e-3
            loss = 1.5 + 40.0 * n**-0.3 + 0.05 * abs(math.log(lr / optimum))
            lines.append(f"{n:g},{2e8:g},{loss:.6f},{lr:g}")
    table = tmp_path / "sweep.csv"
    table.write_text("\n".join(lines) + "\n")
    done = study_here(
        "fit", "--csv", str(table), "--law", "n", "--json", "--n-boot", "50", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    fit = json.loads(done.stdout)
    assert [e["best_lr"] for e in fit["envelope"]] == [2e-3] * 4 + [4e-3]
    assert [e["at_edge"] for e in fit["envelope"]] == [False] * 4 + [True]
    assert fit["n_points"] == 4 and fit["params"]["alpha"]["estimate"] == pytest.approx(
        0.3, rel=0.05
    )


def test_a_sweep_in_a_table_without_tokens_and_a_missing_lr_column(tmp_path, study_here):
    lines = ["N,loss,lr"] + [
        f"{n:g},{1.5 + 40.0 * n**-0.3 + 0.05 * abs(math.log(lr / 2e-3)):.6f},{lr:g}"
        for n in (1e5, 3e5, 1e6, 3e6) for lr in (1e-3, 2e-3, 4e-3)
    ]  # fmt: skip
    table = tmp_path / "n.csv"
    table.write_text("\n".join(lines) + "\n")
    done = study_here(
        "fit", "--csv", str(table), "--law", "n", "--json", "--n-boot", "0", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert [e["best_lr"] for e in json.loads(done.stdout)["envelope"]] == [2e-3] * 4
    missing = study_here("fit", "--csv", str(table), "--lr", "rate", cwd=tmp_path)
    assert missing.returncode == 2 and "--lr 'rate' is not a column of the file" in missing.stderr


def test_the_olmo_ladder_predicts_its_7b_model_in_two_steps(study_here, tmp_path):
    """The OLMo ladder's released runs (Bhagia et al. 2024; bench/olmo_ladder.py made the
    table): the 7B model's HellaSwag accuracy from the 190M-1.3B runs, as BENCHMARKS.md records
    it (83.0 predicted, 81.3 measured; the authors' code predicts 82.5)."""
    from tests.conftest import ANCHORS

    done = study_here(
        "fit", "--csv", str(ANCHORS / "olmo-ladder.csv"), "--law", "task", "--group", "run",
        "--where", "task=hellaswag", "--target", "N=6887575552,D=3945065873408", "--json",
        "--n-boot", "100", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)["tasks"]["hellaswag"]
    assert result["accuracy"]["estimate"] == pytest.approx(0.830, abs=0.001)
    low, high = result["accuracy"]["ci"]
    assert low < 0.813 < high  # the 7B model's measured accuracy
    assert result["step1"]["formula"] == "L(N, D) = E + A/N^α + B/D^β"
    assert result["n_runs"] == 16 and set(result["step2"]["params"]) == {"a", "b", "k", "L0"}
    bad = study_here("fit", "--csv", str(ANCHORS / "olmo-ladder.csv"), "--law", "task",
                    "--group", "run", "--target", "M=1", cwd=tmp_path)  # fmt: skip
    assert bad.returncode == 2 and "give N=COUNT,D=COUNT" in bad.stderr


def _task_table(path, chance: bool = True, few_runs_of: str | None = None):
    """A synthetic ladder (tests/test_tasklaw.py) as a CSV of two tasks, `a` and `b`, with or
    without a chance column; `few_runs_of`: a task left with 3 runs, too few to fit."""
    from tests.test_tasklaw import CHANCE, ladder

    parts = []
    for task in ("a", "b"):
        rows = ladder().assign(task=task)
        if task == few_runs_of:
            rows = rows[rows.run.isin(sorted(set(rows.run))[:3])]
        parts.append(rows.assign(chance=CHANCE) if chance else rows)
    pd.concat(parts).to_csv(path, index=False)
    return path


def test_a_task_table_without_chance_levels_is_fitted_with_a_warning(study_here, tmp_path):
    args = ["--law", "task", "--group", "run", "--target", "N=1e9,D=6e10", "--json",
            "--n-boot", "20"]  # fmt: skip
    bare = _task_table(tmp_path / "bare.csv", chance=False)
    done = study_here("fit", "--csv", str(bare), *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert all(r["step2"]["chance"] == 0.0 for r in result["tasks"].values())
    [warning] = result["warnings"]
    assert "chance accuracy was taken as 0" in warning and "--chance" in warning
    assert done.stderr.count("warning: the table has no chance column") == 1
    given = _task_table(tmp_path / "given.csv")
    done = study_here("fit", "--csv", str(given), *args, cwd=tmp_path)
    assert done.returncode == 0 and "warning" not in done.stderr
    assert json.loads(done.stdout)["warnings"] == []


def test_a_task_table_where_no_task_can_be_fitted_is_status_2(study_here, tmp_path):
    table = _task_table(tmp_path / "t.csv")
    args = ["--law", "task", "--group", "run", "--json", "--n-boot", "0"]
    done = study_here("fit", "--csv", str(table), *args, "--target", "N=1e9", cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"error: {table}: no task could be fitted (a: --target needs D as well: the runs saw "
        "several token counts)"
    ]
    some = _task_table(tmp_path / "some.csv", few_runs_of="b")
    done = study_here("fit", "--csv", str(some), *args, "--target", "N=1e9,D=6e10", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    tasks = json.loads(done.stdout)["tasks"]
    assert "accuracy" in tasks["a"]  # the fitted task kept, the other's error beside it
    assert tasks["b"] == {"error": "the two-step fit needs 6 runs; got 3"}


def test_fit_prints_the_honest_fit_warnings_on_stderr_for_a_table(study_here, tmp_path):
    table = tmp_path / "starved.csv"  # 3 sizes on 1M tokens: under 5 tokens per parameter
    table.write_text("N,D,loss\n1e6,1e6,3.10\n1e7,1e6,2.90\n1e8,1e6,2.85\n")
    done = study_here("fit", "--csv", str(table), "--law", "n", "--n-boot", "50", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "L(N) = E + A·N^(−α)" in done.stdout and "warning" not in done.stdout
    said = done.stderr.splitlines()
    assert any(line.startswith("warning: no intervals: with 3 runs for 3 parameters")
               for line in said)  # fmt: skip
    assert any(line.startswith("warning: most trials saw fewer than 5 tokens per parameter")
               for line in said)  # fmt: skip
    fed = tmp_path / "fed.csv"  # 20+ tokens per parameter: no such warning
    fed.write_text("N,D,loss\n1e6,1e9,3.10\n1e7,1e9,2.90\n1e8,1e9,2.85\n")
    done = study_here("fit", "--csv", str(fed), "--law", "n", "--n-boot", "0", cwd=tmp_path)
    assert done.returncode == 0 and "tokens per parameter" not in done.stderr


def test_fit_says_when_its_intervals_come_from_a_residual_bootstrap(study_here, tmp_path):
    lines = ["N,loss,size"]
    for i, n in enumerate([1e5, 1e6, 1e7] * 3):  # three seeds of three sizes, a run per size
        lines.append(f"{n:g},{(1.5 + 40.0 * n**-0.3) * (1 + 0.01 * ((i * 7) % 5 - 2)):.6f},{n:g}")
    table = tmp_path / "seeds.csv"
    table.write_text("\n".join(lines) + "\n")
    args = ["fit", "--csv", str(table), "--law", "n", "--group", "size", "--n-boot", "100"]
    done = study_here(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "(95% intervals: residual bootstrap)" in done.stdout
    assert "warning: with 3 runs for 3 parameters" in done.stderr
    result = json.loads(study_here(*args, "--json", cwd=tmp_path).stdout)
    assert result["interval"] == "residual bootstrap"
    assert all(entry["ci"] for entry in result["params"].values())


def test_the_loss_of_a_target_model_by_l_of_n_d_with_its_interval(study_here, tmp_path):
    args = ["--n", "Model Size", "--c", "Training FLOP", "--drop-highest-loss", "5"]
    at = ["--target", "N=70e9,D=1.4e12", "--n-boot", "30"]
    done = study_here("fit", "--csv", str(ANCHOR), "--law", "nd", *args, *at, "--json",
                      cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    target = json.loads(done.stdout)["target"]
    assert target["N"] == 70e9 and target["D"] == 1.4e12
    expected = 1.817 + 477.8 / 70e9**0.347 + 2143.0 / 1.4e12**0.367  # the published fit
    assert target["loss"] == pytest.approx(expected, rel=0.01)
    assert target["ci"][0] < target["loss"] < target["ci"][1]
    text = study_here("fit", "--csv", str(ANCHOR), "--law", "nd", *args, *at, cwd=tmp_path)
    assert "at N=7e+10, D=1.4e+12: loss" in text.stdout and "(95%, bootstrap)" in text.stdout
    for law, bad in (("n", "N=1e9,D=2e10"), ("nd", "N=1e9"), ("isoflop", "C=1e20")):
        refused = study_here("fit", "--csv", str(ANCHOR), "--law", law, *args, "--target", bad,
                             cwd=tmp_path)  # fmt: skip
        assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
        assert "--target" in refused.stderr
