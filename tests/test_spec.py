"""The study file: validation errors name the file, the field and the line; nothing is written."""

from __future__ import annotations

import subprocess
import sys

import pytest

from orchestrator.spec import StudyError, load_study, parse_study

VALID = """\
name: s
architectures: [decoder]
sizes: [25K, 100K]
budget: {tokens: 600K}
"""


def test_valid_study_gets_defaults():
    spec = parse_study(VALID)
    assert spec.budget.tokens == [600_000]
    assert spec.seeds == [0]
    assert spec.data.corpus == "builtin:kjv"
    assert spec.resources.cpus_per_trial == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (VALID + "bogus: 1\n", "x.yaml:5: bogus: unknown field"),
        (
            VALID.replace("sizes: [25K, 100K]", "sizes: []"),
            "x.yaml:3: sizes: List should have at least 1",
        ),
        (
            VALID.replace("[decoder]", "[decoder, mamba]"),
            "x.yaml:2: architectures: unknown architecture 'mamba'",
        ),
        (VALID.replace("600K", "lots"), "x.yaml:4: budget.tokens[0]: 'lots' is not a count"),
        (VALID.replace("25K", "7M"), "size '7M' is not in the decoder ladder"),
        (VALID + "train: {lr: -1}\n", "x.yaml:5: train.lr: Input should be greater than 0"),
        (VALID + "train:\n  batch_size: many\n", "x.yaml:6: train.batch_size:"),
        (VALID + "data: {corpus: 'builtin:nope'}\n", "unknown built-in corpus 'builtin:nope'"),
        (
            VALID + "data:\n  corpus: 'nowhere/*.txt'\n",
            "x.yaml:6: data.corpus.path: no file matches 'nowhere/*.txt'",
        ),
        (
            VALID + "data: {corpus: {path: README.md, text_feild: body}}\n",
            "x.yaml:5: data.corpus.text_feild: unknown field; did you mean `text_field`?",
        ),
        (
            VALID + "data: {tokenizer: {bpe: 300}}\n",
            "data.tokenizer.bpe: Input should be greater than 359",
        ),
        (VALID + "data: {tokenizer: none.json}\n", "tokenizer 'none.json' is neither bytes"),
        (
            VALID + "data: {heldout_fraction: 0.7}\n",
            "data.heldout_fraction: Input should be less than 0.5",
        ),
        (
            VALID.replace("25K", "{n_layer: 2, n_embd: 30, n_head: 4}"),
            "n_embd=30 is not divisible by n_head=4",
        ),
        ("name: [1, 2\n", "x.yaml:2: not valid YAML"),
        ("- a list\n", "x.yaml: a study file is a mapping"),
    ],
)
def test_invalid_study_names_file_field_and_line(text, expected):
    with pytest.raises(StudyError) as info:
        parse_study(text, "x.yaml")
    assert expected in str(info.value)


def test_missing_file_is_a_study_error(tmp_path):
    with pytest.raises(StudyError, match="cannot read the study file"):
        load_study(tmp_path / "absent.yaml")


def test_cli_rejects_a_bad_study_with_exit_2_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(VALID + "sezes: [1M]\n")
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "run", str(bad)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert f"{bad}:5: sezes: unknown field" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]  # no runs/, no reports/


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            "{corpus: {path: README.md, format: txt, text_field: body}}",
            "x.yaml:5: data.corpus: text_field is for .jsonl and .parquet files",
        ),
        (
            "{corpus: {path: README.md, format: jsonl, blank_lines: 2}}",
            "data.corpus: blank_lines is for .txt files",
        ),
        ("{corpus: 'hf:'}", "x.yaml:5: data.corpus.hf: String should have at least 1"),
    ],
)
def test_corpus_options_that_do_not_apply_are_refused(data, expected):
    with pytest.raises(StudyError) as info:
        parse_study(VALID + f"data: {data}\n", "x.yaml")
    assert expected in str(info.value)


def test_the_read_commands_read_only_the_name_of_a_study_file(tmp_path):
    from orchestrator.spec import study_name

    path = tmp_path / "x.yaml"
    path.write_text("name: moved\ndata: {corpus: gone/*.txt}\nsizes: [7M]\nbogus: 1\n")
    assert study_name(path) == "moved"  # the rest is the store's business
    path.write_text("sizes: [25K]\nname: [1, 2]\n")
    with pytest.raises(StudyError, match=r"x.yaml:2: name: a study file names its study"):
        study_name(path)
    path.write_text("sizes: [25K\n")
    with pytest.raises(StudyError, match=r"x.yaml:2: not valid YAML"):
        study_name(path)


def test_a_key_given_twice_is_one_error_line_and_exit_2_from_plan_and_run(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from orchestrator.cli import app

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "twice.yaml"
    path.write_text(VALID + "seeds: [0]\nsizes: [1M]\n")  # the second list would train alone
    for command in ("plan", "run"):
        result = CliRunner().invoke(app, [command, str(path)])
        assert result.exit_code == 2, result.output
        assert f"{path}:6: sizes: key given twice (lines 3 and 6): give it once" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["twice.yaml"]  # nothing written


def test_the_read_commands_refuse_a_name_given_twice_and_nothing_else(tmp_path):
    from orchestrator.spec import study_name

    path = tmp_path / "x.yaml"
    path.write_text("name: a\nsizes: [25K]\nsizes: [1M]\n")
    assert study_name(path) == "a"  # the rest is the store's business
    path.write_text("name: a\nsizes: [25K]\nname: b\n")
    with pytest.raises(StudyError, match=r"x.yaml:3: name: key given twice \(lines 1 and 3\)"):
        study_name(path)


def test_the_cli_prints_its_version_and_flags_without_a_type():
    from importlib.metadata import version

    from typer.testing import CliRunner

    from orchestrator.cli import app

    shown = CliRunner().invoke(app, ["--version"])
    assert (
        shown.exit_code == 0
        and shown.stdout.strip()
        == f"study (scaling-study) {version('scaling-study')}, torch {version('torch')}, "
        f"ray {version('ray')}"
    )
    help_text = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "120"}).stdout
    wait = next(line for line in help_text.splitlines() if "--wait" in line)
    assert "<bool>" not in wait and "if another run holds the store" in wait


def test_no_command_shows_a_type_after_a_flag_in_its_help():
    import typer
    from typer.testing import CliRunner

    from orchestrator.cli import app

    commands = sorted(typer.main.get_command(app).commands)
    assert {"run", "report", "fit", "status"} <= set(commands)
    for command in [[], *([c] for c in commands)]:
        shown = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "120"})
        assert shown.exit_code == 0 and "Show this message and exit." in shown.stdout, command
        assert "<bool>" not in shown.stdout, command


def test_references_that_would_share_a_name_are_refused(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name / "decoder-1M-s0").mkdir(parents=True)
    text = (
        "name: r\narchitectures: [decoder]\nsizes: [25K]\nbudget: {tokens: 16K}\n"
        f"eval: {{references: [{tmp_path}/a/decoder-1M-s0, {tmp_path}/b/decoder-1M-s0]}}\n"
    )
    with pytest.raises(StudyError, match="would both be named ref:decoder-1M-s0"):
        parse_study(text)
