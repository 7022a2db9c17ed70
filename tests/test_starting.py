"""The front door of the command line: `study new`, `study --version`, the help text, the plan's
note on rounding and the progress line while a trial scores zero-shot items."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.helptext import one_paragraph, usage_piece

STUDIES = Path(__file__).parents[1] / "studies"


def _commands() -> dict:
    return typer.main.get_command(app).commands


def test_study_new_writes_the_quickstarts_study_with_comments(tmp_path, monkeypatch):
    from orchestrator.spec import load_study

    monkeypatch.chdir(tmp_path)
    shown = CliRunner().invoke(app, ["new", "mine"])
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.startswith("wrote mine.yaml: `study plan mine.yaml`")
    text = (tmp_path / "mine.yaml").read_text()
    assert text.count("#") > 20  # its fields said, with their alternatives
    written, quickstart = (
        load_study(tmp_path / "mine.yaml"),
        load_study(STUDIES / "quickstart.yaml"),
    )
    assert written.name == "mine"
    same = {"name", "next_study"}  # the quickstart names the study that goes further
    assert written.model_dump(exclude=same) == quickstart.model_dump(exclude=same)


def test_study_new_refuses_a_file_there_unless_forced_and_a_name_that_is_not_one(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.yaml").write_text("kept\n")
    shown = CliRunner().invoke(app, ["new", "mine.yaml"])  # the suffix is the file's
    assert shown.exit_code == 2
    assert shown.stderr == "error: mine.yaml exists here; give --force to overwrite it\n"
    assert (tmp_path / "mine.yaml").read_text() == "kept\n"
    assert CliRunner().invoke(app, ["new", "mine", "--force"]).exit_code == 0
    assert "name: mine" in (tmp_path / "mine.yaml").read_text()
    shown = CliRunner().invoke(app, ["new", "my study"])
    assert shown.exit_code == 2 and shown.stderr.count("\n") == 1
    assert "'my study' cannot name a study" in shown.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.yaml"]
    # a folder or a FIFO of that name: one line, even forced, and nothing written (no hang)
    (tmp_path / "d.yaml").mkdir()
    os.mkfifo(tmp_path / "f.yaml")
    for name, what in (("d", "a folder"), ("f", "a FIFO")):
        shown = CliRunner().invoke(app, ["new", name, "--force"])
        assert shown.exit_code == 2 and shown.stderr.count("\n") == 1
        assert f"{name}.yaml is {what}, not a file" in shown.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.yaml", "f.yaml", "mine.yaml"]


def test_the_new_study_plans_as_it_is(tmp_path, study_here):
    assert study_here("new", "start", cwd=tmp_path).returncode == 0
    shown = study_here("plan", "start.yaml", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("start: 12 trials")


def test_the_version_names_torch_and_ray():
    from importlib.metadata import version

    shown = CliRunner().invoke(app, ["--version"])
    assert shown.exit_code == 0
    assert shown.stdout == (f"study (scaling-study) {version('scaling-study')}, torch "
                            f"{version('torch')}, ray {version('ray')}\n")  # fmt: skip


def test_every_commands_help_reads_as_whole_sentences():
    """typer's list of commands keeps a docstring's single line breaks: a command's help broke
    mid-sentence wherever its docstring did."""
    assert one_paragraph("a b\n    c\n\n    d\n    e") == "a b c\n\nd e"
    for name, command in _commands().items():
        assert "\n" not in command.help.replace("\n\n", ""), name
    shown = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "80"}).stdout
    assert re.search(r"Hugging Face\s+│\n│\s+model folders", shown)  # no line cut short


def test_a_required_argument_reads_as_click_writes_it():
    assert usage_piece("{study}") == "STUDY" and usage_piece("[sources]...") == "[SOURCES]..."
    assert usage_piece("[OPTIONS]") == "[OPTIONS]"
    for name in ("run", "plan", "new", "status", "report"):
        shown = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "120"}).stdout
        usage = next(line for line in shown.splitlines() if "Usage:" in line)
        assert "{" not in usage, usage
    shown = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "120"}).stdout
    assert re.search(r"Usage: \w+ run \[OPTIONS\] STUDY\s", shown)  # the test names it root


@pytest.mark.parametrize("option", ["--d", "--c", "--chance"])
def test_each_column_option_of_fit_shows_one_default(option):
    shown = CliRunner().invoke(app, ["fit", "--help"], env={"COLUMNS": "200"}).stdout
    line = next(line for line in shown.splitlines() if re.search(rf"│ {option}\s", line))
    assert line.count("default") == 1, line


def test_plan_says_why_a_budget_becomes_more_tokens(tiny_study, study_here):
    """tiny: 16K tokens a trial in steps of 8 sequences of 32 tokens; 63 steps feed 16,128."""
    shown = study_here("plan", str(tiny_study), cwd=tiny_study.parent)
    assert shown.returncode == 0, shown.stderr
    assert ("tokens are rounded up to whole batches of 256 tokens (a trial trains whole steps): "
            "16K becomes 16.1K\n") in shown.stdout  # fmt: skip


def test_plan_has_no_rounding_note_where_the_budget_is_whole_batches():
    import pandas as pd

    from orchestrator.printing import rounding_note

    frame = pd.DataFrame({"trial_id": ["a"], "tokens": [16_384], "budget_tokens": [16_384],
                          "batch_tokens": [256]})  # fmt: skip
    assert rounding_note(frame) is None


def test_the_progress_line_of_a_trial_scoring_zero_shot_items_says_so():
    from rich.console import Console

    from orchestrator.grid import expand
    from orchestrator.progress import Progress
    from orchestrator.spec import parse_study
    from trainers.events import Start, Train, ZeroShot, ZeroShotProgress

    spec = parse_study("name: z\narchitectures: [decoder]\nsizes: [25K]\nbudget: {tokens: 600K}\n")
    (trial,) = expand(spec, "k", "")
    out = io.StringIO()
    progress = Progress([trial], Console(file=out, width=200), heartbeat_s=0)
    start = Start(n_params=25_000, total_params=30_000, flops_per_token=150_000, steps=10,
                  device="cpu", threads=1)  # fmt: skip
    progress.update(trial.trial_id, start)
    progress.update(trial.trial_id, Train(step=10, tokens=602_112, loss=2.0, lr=1e-3,
                                          tokens_per_s=5000.0))  # fmt: skip
    progress.update(
        trial.trial_id, ZeroShotProgress(step=10, tokens=602_112, done=1000, total=3000)
    )
    progress.tick()
    assert (
        out.getvalue()
        .splitlines()[-1]
        .endswith("decoder-25K-s0: scoring zero-shot, 1,000 of 3,000 items")
    )
    assert "scoring zero-shot, 1,000 of 3,000 items" in str(progress.table().columns[1]._cells)
    progress.update(trial.trial_id, ZeroShot(step=10, tokens=602_112, eval_key="k", results=[]))
    progress.tick()
    assert "ETA" in out.getvalue().splitlines()[-1]  # back to tokens, as it ends


def test_scoring_events_are_plain_dicts_too():
    from trainers.events import ZeroShotProgress, from_dict, to_dict

    event = ZeroShotProgress(step=3, tokens=96, done=10, total=30)
    assert to_dict(event)["event"] == "scoring" and from_dict(to_dict(event)) == event


def test_a_trial_scored_again_shows_its_items_as_it_scores_them():
    """`study eval` reports no Start: the trial runs from its first items to its Scored."""
    from rich.console import Console

    from orchestrator.grid import expand
    from orchestrator.progress import Progress
    from orchestrator.spec import parse_study
    from trainers.events import Scored, ZeroShotProgress

    spec = parse_study("name: z\narchitectures: [decoder]\nsizes: [25K]\nbudget: {tokens: 600K}\n")
    (trial,) = expand(spec, "k", "")
    progress = Progress([trial], Console(file=io.StringIO(), width=200), heartbeat_s=0)
    progress.update(trial.trial_id, ZeroShotProgress(step=10, tokens=600_000, done=0, total=300))
    assert progress.rows[trial.trial_id].status == "running"
    assert "scoring zero-shot, 0 of 300 items" in str(progress.table().columns[1]._cells)
    scored = Scored(step=10, tokens=600_000, eval_key="k", val_loss=2.0, results=[], final=True)
    progress.update(trial.trial_id, scored)
    assert progress.table().columns[1]._cells == ["finished"]
