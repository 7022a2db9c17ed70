"""Whole studies through Ray: a rerun skips finished trials; the CLI path end to end."""

from __future__ import annotations

import io
import json
import re
import sqlite3
from pathlib import Path

import pytest
from rich.console import Console

from analysis.results import IsoFlopFit
from orchestrator import api
from trainers.accounting import encdec_lengths

pytestmark = pytest.mark.slow


def _console():
    return Console(file=open("/dev/null", "w"), soft_wrap=True)  # noqa: SIM115


def test_rerun_skips_finished_trials_and_runs_only_what_is_missing(ray_session, tiny_study):
    first = api.run_study(tiny_study, console=_console(), n_boot=50)
    archs, sizes = ("decoder", "encoder", "encdec"), ("25K", "50K", "100K")
    assert sorted(first.ran) == sorted(f"{a}-{s}-s0" for a in archs for s in sizes)
    assert first.failed == [] and first.report.exists()
    for arch in archs:  # one fit per architecture, each on its own objective's loss
        assert first.fits.laws[arch]["n"].params["alpha"].estimate is not None

    # Add a size: only the new trial trains; the finished ones are found by hash.
    tiny_study.write_text(
        tiny_study.read_text().replace("[25K, 50K, 100K]", "[25K, 50K, 100K, 200K]")
    )
    second = api.run_study(tiny_study, console=_console(), n_boot=50)
    assert sorted(second.ran) == [f"{a}-200K-s0" for a in sorted(archs)]
    assert sorted(second.skipped) == sorted(first.ran)

    db = sqlite3.connect("runs/tiny.db")
    attempts = dict(db.execute("SELECT trial_id, attempts FROM trials").fetchall())
    assert len(attempts) == 12 and set(attempts.values()) == {1}
    scored = dict(
        db.execute(
            "SELECT architecture, AVG(1.0 * tokens_scored / tokens_done) FROM trials GROUP BY 1"
        )
    )
    assert scored["decoder"] == 1.0
    assert 0.13 < scored["encoder"] < 0.17
    assert scored["encdec"] == encdec_lengths(32)[1] / 32  # sentinels, spans, <eos> of 32 tokens
    # MFU against the CPU's peak as each run measured it before its trials, kept beside the
    # token cache: one peak for all the trials of a run (FLOP/s over MFU), never moved
    assert db.execute("SELECT MIN(mfu) > 0 AND MAX(mfu) <= 1 FROM trials").fetchone()[0] == 1
    for run in ("size != '200K'", "size = '200K'"):
        rows = db.execute(f"SELECT flops_per_token * tokens_per_s / mfu FROM trials WHERE {run}")
        peaks = [peak for (peak,) in rows]
        assert max(peaks) == pytest.approx(min(peaks), rel=1e-6)
    assert len(list(Path("artifacts/cache/cpu-peak").glob("*.json"))) == 1
    (dupes,) = db.execute(
        "SELECT COUNT(*) FROM (SELECT trial_pk, name, step FROM metrics GROUP BY 1, 2, 3 HAVING COUNT(*) > 1)"
    ).fetchone()
    assert dupes == 0


def test_a_failing_trial_is_recorded_with_its_traceback(ray_session, tiny_study):
    # A learning rate that overflows the loss: the 25K trial diverges, is retried twice as the
    # study asks, diverges again each time, and is recorded as failed with the reason.
    text = (
        tiny_study.read_text()
        .replace("lr: 3.0e-3", "lr: 1.0e+30")
        .replace("[25K, 50K, 100K]", "[25K]")
        .replace("[decoder, encoder, encdec]", "[decoder]")
    )
    retries = "resources: {cpus_per_trial: 1, max_retries: 2}"
    tiny_study.write_text(text.replace("resources: {cpus_per_trial: 1}", retries))
    console = Console(file=io.StringIO(), soft_wrap=True, width=200)
    result = api.run_study(tiny_study, console=console, n_boot=0)
    assert result.failed == ["decoder-25K-s0"]
    frame = api.status(tiny_study)
    assert frame.status.tolist() == ["failed"]
    assert frame.attempts.tolist() == [3]  # the first run and two retries (max_retries: 2)
    assert console.file.getvalue().count("decoder-25K-s0 failed on try") == 2
    assert result.ran == []
    error = frame.error[0]
    assert "DivergenceError: loss is nan at step" in error
    assert 'trainers/train.py", line' in error  # the real traceback, not "trial did not complete"


def test_plan_states_the_storage_the_weights_take(tiny_study, study_cli):
    """`study plan` (nothing trained) says how much the weights will take: each trial's final.pt
    (fp32), and with train.keep_checkpoints one more at each evaluation point before the last."""
    cwd = tiny_study.parent
    kept = cwd / "kept.yaml"
    kept.write_text(tiny_study.read_text().replace("lr: 3.0e-3}", "lr: 3.0e-3, "
                                                   "keep_checkpoints: true}"))  # fmt: skip
    shown, planned = {}, {}
    for name, path in (("final", tiny_study), ("kept", kept)):
        shown[name] = study_cli("plan", str(path), cwd=cwd).stdout
        planned[name] = json.loads(study_cli("plan", str(path), "--json", cwd=cwd).stdout)["trials"]
    final_mb = [4 * p["total_params"] / 1e6 for p in planned["final"]]
    assert [p["weights_mb"] for p in planned["final"]] == pytest.approx(final_mb)
    # 63 steps evaluated every 31: step-31.pt and step-62.pt kept beside final.pt
    assert [p["weights_mb"] for p in planned["kept"]] == pytest.approx([3 * m for m in final_mb])
    where = f"MB of weights under {cwd / 'artifacts'} (final.pt of each trial"
    assert (f"storage: {sum(final_mb):,.1f} {where}), besides the token files"
            in shown["final"])  # fmt: skip
    assert (f"storage: {3 * sum(final_mb):,.1f} {where}, and at every evaluation point: "
            "train.keep_checkpoints), besides the token files" in shown["kept"])  # fmt: skip
    assert not (cwd / "runs").exists() and not (cwd / "artifacts" / "tiny").exists()


def test_cli_end_to_end(tiny_study, study_cli, study_here):
    """What a user does: plan, run, status, export, report, run again; all through the CLI (the
    installed command for plan and run; the read commands in this process, as `study_here`
    runs them, sparing a second of imports each)."""
    cwd = tiny_study.parent
    plan = study_cli("plan", str(tiny_study), cwd=cwd)
    assert plan.returncode == 0 and "decoder-25K-s0" in plan.stdout
    assert not (cwd / "runs").exists()  # plan writes nothing
    planned = json.loads(study_here("plan", str(tiny_study), "--json", cwd=cwd).stdout)
    foreseen = {c["code"]: c["architectures"] for c in planned["caveats"]}
    planned = planned["trials"]
    assert len(planned) == 9 and len({p["eval_key"] for p in planned}) == 1
    keys = {"trial_id", "hash", "architecture", "size", "n_params", "tokens", "flops", "lr"}
    assert keys <= set(planned[0]) and planned[0]["trial_id"] == "decoder-25K-s0"

    run = study_cli("run", str(tiny_study), "--n-boot", "100", cwd=cwd)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Ray dashboard: http://" in run.stdout and "ray get-auth-token" in run.stdout
    assert "decoder-100K-s0: finished" in run.stdout
    assert "decoder L(N) = E + A·N^(−α): E = " in run.stdout
    # three sizes for three parameters, 16K tokens for up to 100K parameters: said, not hidden
    # under one caveats heading, each said once for the architectures it holds for
    starved = re.findall(r"^  (.*): starved of data: most trials saw fewer than 5 tokens", run.stderr,
                         re.M)  # fmt: skip
    assert starved == ["decoder, encdec, encoder"]
    assert re.search(r"^  decoder(, \w+)*: n: no intervals: with 3 runs", run.stderr, re.M)
    # `study plan` said both before anything trained, for the same architectures
    assert foreseen["starved-of-data"] == foreseen["too-few-sizes"] == starved[0].split(", ")

    status = study_here("status", str(tiny_study), "--json", cwd=cwd)
    trials = json.loads(status.stdout)
    assert [t["status"] for t in trials] == ["finished"] * 9
    decoders = [t for t in trials if t["architecture"] == "decoder"]
    assert [t["n_params"] for t in decoders] == [25472, 50880, 100096]
    # the identity `plan` shows is the one the store holds
    assert {(p["trial_id"], p["hash"]) for p in planned} == {
        (t["trial_id"], t["hash"]) for t in trials
    }

    export = study_here("export", "--store", "sqlite:///runs/tiny.db", "--format", "json", cwd=cwd)
    rows = json.loads(export.stdout)
    for key in (
        "trial_id",
        "architecture",
        "size",
        "n_params",
        "total_params",
        "tokens",
        "flops",
        "status",
        "val_loss",
    ):
        assert key in rows[0]
    for r in rows:  # 6N plus attention; encdec runs its decoder on the targets only (~25% here)
        bound = 6 * r["n_params"] * r["tokens"]
        assert r["flops"] < bound if r["architecture"] == "encdec" else r["flops"] > bound
    csv = study_here("export", str(tiny_study), cwd=cwd)
    assert csv.stdout.splitlines()[0].startswith("trial_id,architecture,size")
    evals = json.loads(
        study_here("export", str(tiny_study), "--what", "evals", "--format", "json", cwd=cwd).stdout
    )
    keys = {"trial_id", "architecture", "n_params", "task", "metric", "value", "n_items"}
    assert keys | {"chance", "ci_low", "ci_high"} <= set(evals[0])
    tasks = {(e["architecture"], e["task"], e["metric"]) for e in evals}
    for arch in ("decoder", "encoder", "encdec"):
        for task in ("last_word", "next_sentence", "minimal_pairs"):
            assert {(arch, task, m) for m in ("acc", "acc_norm", "margin")} <= tasks
    assert ("decoder", "heldout", "bits_per_byte") in tasks
    baseline = [e for e in evals if e["architecture"] == "ngram"]  # once per study
    assert {e["task"] for e in baseline} == {"last_word", "next_sentence", "minimal_pairs"}
    assert all(e["trial_id"] is None and e["n_items"] == 30 for e in baseline)
    accuracy = [e for e in evals if e["metric"] == "acc"]
    assert all(e["n_items"] == 30 and e["ci_low"] <= e["value"] <= e["ci_high"] for e in accuracy)
    fits = json.loads(
        study_here("export", str(tiny_study), "--what", "fits", "--format", "json", cwd=cwd).stdout
    )
    assert fits[0]["law"] == "n" and set(fits[0]["params"]) == {"E", "A", "alpha"}
    assert fits[0]["quality"]["holdout"]["held_out"] == "the largest model"
    assert len(fits[0]["data"]) == 3 and fits[0]["quality"]["n_boot"] == 0  # none can tell
    assert all(p["ci"] is None for p in fits[0]["params"].values())

    fit = study_here("fit", str(tiny_study), "--law", "n", "--json", "--n-boot", "50", cwd=cwd)
    fitted = json.loads(fit.stdout)["architectures"]
    assert set(fitted) == {"decoder", "encoder", "encdec"}
    assert set(fitted["decoder"]["params"]) == {"E", "A", "alpha"}
    trend = study_here("fit", str(tiny_study), "--law", "trend", "--json", cwd=cwd)
    decoder = json.loads(trend.stdout)["architectures"]["decoder"]
    assert {"slope", "spearman_rho", "p_value"} <= set(decoder["tasks"]["last_word"])
    assert decoder["verdict"].startswith("decoder: ")

    report = (cwd / "reports" / "tiny.html").read_text()
    assert "decoder-50K-s0" in report and "are not comparable with each other" in report
    assert "Summary" in report and "Loss against compute" in report
    warnings = report.split('<h3 class="warn">Warnings of the fits', 1)[1].split("</ul>", 1)[0]
    assert "<li>decoder n: most trials saw fewer than 5 tokens per parameter" in warnings
    assert "Zero-shot accuracy against model size" in report
    assert (cwd / "reports" / "tiny-cards" / "decoder-50K-s0.md").exists()
    # A second store (a copy of the study under another name) compared side by side.
    other = sqlite3.connect(cwd / "runs" / "other.db")
    sqlite3.connect(cwd / "runs" / "tiny.db").backup(other)
    other.execute("UPDATE studies SET name = 'other'")
    other.commit()
    compare = study_here("report", "runs/tiny.db", "runs/other.db", "--n-boot", "20", cwd=cwd)
    assert compare.returncode == 0, compare.stderr
    assert "warning: other: decoder n: no intervals" in compare.stderr
    page = (cwd / "reports" / "compare-tiny-other.html").read_text()
    assert "tiny: decoder trials" in page and "other: decoder trials" in page
    assert (cwd / "reports" / "compare-tiny-other-cards" / "other" / "decoder-25K-s0.md").exists()
    ending = run.stdout.rstrip().splitlines()[-4:]  # the headline: the run's last lines
    assert ending[0] == "headline:" and ending[1].startswith("  decoder: L(N): α = ")
    assert "by the slope's 95% interval: " in ending[1]
    laws = {f["law"] for f in fits}
    assert {"trend:last_word", "trend:next_sentence", "trend:minimal_pairs"} <= laws
    assert "span corruption loss (nats" in report  # each objective has its own axis
    assert re.search(r"<script[^>]*src=", report) is None  # no script fetched: opens offline
    assert "Plotly.newPlot" in report and len(report) > 1_000_000  # plotly.js is inlined
    db = sqlite3.connect(cwd / "runs" / "tiny.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    data = json.loads(db.execute("SELECT data FROM studies").fetchone()[0])
    assert data["documents"] == {"train": 1141, "validation": 24, "heldout": 24}
    assert data["tokens"]["train"] > 3_900_000 and data["vocab_size"] == 359
    assert all(r["epochs"] > 0 for r in rows)
    n_metrics = db.execute("SELECT COUNT(*) FROM metrics").fetchone()[0]

    again = study_cli("run", str(tiny_study), "--n-boot", "10", cwd=cwd)
    assert again.returncode == 0 and "9 already finished, 0 to run" in again.stdout
    assert "Ray dashboard" not in again.stdout  # nothing to run: Ray is not started
    assert db.execute("SELECT COUNT(*) FROM metrics").fetchone()[0] == n_metrics


class _Interrupted(Exception):
    pass


def test_run_json_ends_on_one_document_on_stdout(ray_session, tiny_study, study_here):
    """`study run --json`: stdout holds one JSON document (the headline, caveats, trials, the
    store and the report), everything else goes to stderr; a rerun counts its trials skipped."""
    only = tiny_study.read_text().replace("[decoder, encoder, encdec]", "[decoder]")
    tiny_study.write_text(only)  # three sizes: a law is fitted, and its caveats said
    cwd = tiny_study.parent
    done = study_here("run", str(tiny_study), "--json", "--n-boot", "10", cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads(done.stdout)  # the whole of stdout: nothing printed around it
    assert doc["study"] == "tiny" and doc["store"] == "sqlite:///runs/tiny.db"
    assert Path(doc["report"]) == Path("reports/tiny.html") and (cwd / doc["report"]).exists()
    assert doc["trials"] == {"finished": 3, "skipped": 0, "failed": 0, "scored": 0,
                             "failed_ids": [], "unscored_ids": [], "outdated_ids": []}  # fmt: skip
    (decoder,) = doc["headline"]
    assert decoder["architecture"] == "decoder" and decoder["text"].startswith("decoder: ")
    starved = [c for c in doc["caveats"] if c["text"].startswith("starved of data")]
    assert len(starved) == 1 and starved[0]["architectures"] == ["decoder"], doc["caveats"]
    assert "give budgets in tokens per parameter" in starved[0]["advice"]  # what to do
    assert isinstance(doc["notes"], list) and doc["predictions"] == []
    assert "decoder-100K-s0: finished" in done.stderr and "headline:" not in done.stderr

    again = json.loads(study_here("run", str(tiny_study), "--json", "--n-boot", "10",
                                  cwd=cwd).stdout)  # fmt: skip
    assert again["trials"]["finished"] == 0 and again["trials"]["skipped"] == 3
    assert [h["architecture"] for h in again["headline"]] == ["decoder"]

    quiet = study_here("run", str(tiny_study), "--quiet", "--n-boot", "10", cwd=cwd)
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    # the headline alone on stdout (the caveats on stderr): no progress, no per-law lines
    assert quiet.stdout.splitlines() == ["headline:", "  " + again["headline"][0]["text"]]
    assert quiet.stderr.startswith("caveats (") and "report:" not in quiet.stderr


def test_an_interrupted_trial_resumes_from_its_checkpoint(ray_session, tiny_study):
    from io import StringIO

    from orchestrator.spec import load_study
    from trainers.train import train

    text = tiny_study.read_text().replace("[decoder, encoder, encdec]", "[encdec]")
    tiny_study.write_text(text.replace("[25K, 50K, 100K]", "[50K]"))
    study = load_study(tiny_study)
    (spec,) = api.trials(study, api.prepare_data(study))  # the trial as `study run` makes it

    def cut_off(event):  # the trial stops right after its first checkpoint
        if event.kind == "checkpoint":
            raise _Interrupted

    with pytest.raises(_Interrupted):
        train(spec, cut_off)
    console = Console(file=StringIO(), soft_wrap=True, width=200)
    result = api.run_study(tiny_study, console=console, n_boot=0)
    assert result.ran == [spec.trial_id]
    tokens = 31 * spec.tokens_per_step  # the first evaluation, and checkpoint
    assert f"{spec.trial_id}: resumed at {tokens:,} tokens" in console.file.getvalue()
    (row,) = api.status(tiny_study).itertuples()
    assert row.status == "finished" and row.tokens_done == spec.steps * 256
    # every point once: those before the checkpoint come from the checkpoint's history
    db = sqlite3.connect("runs/tiny.db")
    steps = lambda name: [
        s for (s,) in db.execute("SELECT step FROM metrics WHERE name = ? ORDER BY step", (name,))
    ]
    assert steps("train_loss") == list(range(1, spec.steps + 1))
    assert steps("val_loss") == [31, 62, 63]


KILLED = """\
name: killed
data: {corpus: "builtin:kjv", tokenizer: bytes, seq_len: 64}
architectures: [decoder]
sizes: [25K, 200K]
budget: {tokens: 240K}
train: {batch_size: 8, checkpoint_every: 24K}
eval: {every_tokens: 120K, tokens: 4K, zero_shot: {tasks: []}}
resources: {cpus_per_trial: 1}
"""


def _run_until_midway(tmp_path):
    """Start `study run` of the KILLED study in a subprocess and return it once the small
    trial has finished and the big one is training past a checkpoint; and the run command."""
    import signal
    import subprocess
    import sys
    import time

    study = tmp_path / "killed.yaml"
    study.write_text(KILLED + f"storage: {tmp_path / 'artifacts'}\n")
    command = [sys.executable, "-m", "orchestrator.cli", "run", str(study), "--n-boot", "20"]
    first = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, text=True,
        # A background CI job may ignore SIGINT, and a child inherits that: Python then never
        # raises KeyboardInterrupt. Ctrl-C in a terminal is never ignored; restore that.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    db_path = tmp_path / "runs" / "killed.db"
    checkpoint = tmp_path / "artifacts" / "killed" / "decoder-200K-s0" / "last.pt"
    deadline = time.monotonic() + 240
    state = {}
    while time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.3)
        if not db_path.exists():
            continue
        try:
            with sqlite3.connect(db_path) as db:
                query = "SELECT trial_id, status || ':' || tokens_done FROM trials"
                state = dict(db.execute(query))
        except sqlite3.OperationalError:  # the file is there, its tables not yet
            continue
        small, big = state.get("decoder-25K-s0", ""), state.get("decoder-200K-s0", "")
        if small.startswith("finished") and big.startswith("running") and checkpoint.exists():
            return first, command, db_path
    first.kill()
    pytest.fail(f"the trials never reached the point to stop at: {state}")


def test_a_killed_driver_is_finished_by_running_again(tmp_path):
    """SIGKILL the driver while a trial trains: the same command completes the study, the
    finished trial is not trained again, the interrupted one resumes from its checkpoint, no
    point is stored twice and the database is intact."""
    import os
    import signal
    import subprocess
    import time

    first, command, db_path = _run_until_midway(tmp_path)
    first.send_signal(signal.SIGKILL)
    first.wait()
    time.sleep(2)  # Ray's processes share the driver's fate

    with sqlite3.connect(db_path) as db:
        before = dict(db.execute("SELECT trial_id, attempts FROM trials"))
    second = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "1 already finished, 1 to run" in second.stdout
    assert "decoder-200K-s0: resumed at" in second.stdout
    with sqlite3.connect(db_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = dict(db.execute("SELECT trial_id, status || ':' || attempts FROM trials"))
        assert rows["decoder-25K-s0"] == f"finished:{before['decoder-25K-s0']}"  # not retrained
        assert rows["decoder-200K-s0"] == f"finished:{before['decoder-200K-s0'] + 1}"
        duplicates = db.execute(
            "SELECT COUNT(*) FROM (SELECT trial_pk, name, step FROM metrics "
            "GROUP BY trial_pk, name, step HAVING COUNT(*) > 1)"
        ).fetchone()[0]
        assert duplicates == 0
        steps = [s for (s,) in db.execute(
            "SELECT step FROM metrics m JOIN trials t ON t.id = m.trial_pk "
            "WHERE t.trial_id = 'decoder-200K-s0' AND name = 'train_loss' ORDER BY step"
        )]  # fmt: skip
        every, last = steps[0], -(-240_000 // (8 * 64))  # every few steps, and the last one
        assert steps == list(range(every, last, every)) + [last]  # each once, none lost
    assert os.path.exists(tmp_path / "reports" / "killed.html")


@pytest.mark.parametrize(
    ("name", "code", "why"),
    [("SIGINT", 130, "interrupted by the user (Ctrl-C)"), ("SIGTERM", 143, "stopped by SIGTERM")],
)
def test_ctrl_c_or_sigterm_stops_cleanly_and_leaves_no_ray_process(tmp_path, name, code, why):
    """SIGINT (Ctrl-C), or SIGTERM (kill, Docker, Slurm, Kubernetes), while a trial trains:
    exit 130 (143) within seconds, the running trial marked interrupted with the reason, the
    database intact, and no Ray process of this run left behind."""
    import signal
    import time

    first, _, db_path = _run_until_midway(tmp_path)
    spawned = _descendants(first.pid)  # the run's Ray processes and workers
    assert spawned, "the run started no processes?"
    first.send_signal(getattr(signal, name))
    assert first.wait(timeout=60) == code
    with sqlite3.connect(db_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        status = dict(db.execute("SELECT trial_id, status FROM trials"))
        errors = dict(db.execute("SELECT trial_id, error FROM trials"))
    assert status == {"decoder-25K-s0": "finished", "decoder-200K-s0": "interrupted"}
    assert errors["decoder-200K-s0"] == why
    time.sleep(3)
    alive = {pid for pid in spawned if Path(f"/proc/{pid}").exists()}
    names = {pid: Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ") for pid in alive}
    assert not alive, f"processes of the run left behind: {names}"


def _descendants(pid: int) -> set[int]:
    """Every live process below `pid`, from /proc."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


LOCAL = """\
name: local
data: {corpus: {path: texts/*.txt, blank_lines: 1}, tokenizer: bytes, seq_len: 32}
architectures: [decoder]
sizes: [25K, 50K, 100K]
budget: {tokens: 16K}
train: {batch_size: 8, lr: 3.0e-3}
eval: {every_tokens: 8K, tokens: 2K, zero_shot: {items: 20}}
storage: artifacts
"""


@pytest.mark.slow
def test_read_commands_need_only_the_store_once_the_corpus_has_moved(
    ray_session, tmp_path, monkeypatch, study_cli
):
    from trainers.corpora import load_documents

    monkeypatch.chdir(tmp_path)
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "kjv.txt").write_text("\n\n".join(load_documents("builtin:kjv")[:400]))
    study = tmp_path / "local.yaml"
    study.write_text(LOCAL)
    console = Console(file=io.StringIO(), soft_wrap=True, width=200)
    result = api.run_study(study, console=console, n_boot=0)
    assert len(result.ran) == 3 and not result.failed
    (tmp_path / "texts").rename(tmp_path / "moved")  # the corpus is gone from where it was

    commands = [
        ["status", "local.yaml"],
        ["status", "local.yaml", "--json"],
        ["export", "local.yaml"],
        ["export", "local.yaml", "--what", "evals"],
        ["export", "local.yaml", "--what", "fits", "--format", "json"],
        ["report", "local.yaml", "--n-boot", "10"],
        ["fit", "local.yaml", "--law", "n", "--n-boot", "10"],
        ["upgrade", "local.yaml"],
    ]
    for args in commands:
        done = study_cli(*args, cwd=tmp_path)
        assert done.returncode == 0, (args, done.stderr)
        assert "no file matches" not in done.stderr
    assert "decoder-100K-s0" in study_cli("status", "local.yaml", cwd=tmp_path).stdout
    # running it is another matter: the data must be prepared, and the file says where
    rerun = study_cli("run", "local.yaml", cwd=tmp_path)
    assert rerun.returncode == 2 and "data.corpus.path: no file matches" in rerun.stderr


FLOPS = """\
name: flops
data: {corpus: "builtin:kjv", tokenizer: bytes, seq_len: 32}
architectures: [decoder]
sizes: [10K, 25K, 50K]
budget: {flops: [1e10, 3e10]}
train: {batch_size: 8, lr: 3.0e-3}
eval: {tokens: 2K, zero_shot: {tasks: []}}
storage: artifacts
"""


@pytest.mark.slow
def test_a_study_of_flop_budgets_spends_each_budget_and_fits_isoflop(
    ray_session, tmp_path, monkeypatch, study_cli
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "flops.yaml").write_text(FLOPS)
    planned = json.loads(study_cli("plan", "flops.yaml", "--json", cwd=tmp_path).stdout)["trials"]
    assert [p["trial_id"] for p in planned][:2] == ["decoder-10K-1e10F-s0", "decoder-10K-3e10F-s0"]
    assert {p["budget_flops"] for p in planned} == {1e10, 3e10}
    assert all(abs(p["flops"] / p["budget_flops"] - 1) <= 0.01 for p in planned)
    shown = study_cli("plan", "flops.yaml", cwd=tmp_path).stdout
    assert "budget 1e10 FLOPs: 3 trials" in shown and "tok/N" in shown
    result = api.run_study(tmp_path / "flops.yaml", console=Console(file=io.StringIO()), n_boot=20)
    assert len(result.ran) == 6 and not result.failed
    assert "n" not in result.fits.laws["decoder"]  # no token budget shared by the sizes
    isoflop = result.fits.laws["decoder"]["isoflop"]  # fitted, or the honest reason it is not
    assert isinstance(isoflop, IsoFlopFit) or "loss minimum inside" in isoflop.error
    trials = api.status(tmp_path / "flops.yaml")  # as trained and counted by the trainer
    budget = trials.trial_id.map({p["trial_id"]: p["budget_flops"] for p in planned})
    assert ((trials.flops / budget - 1).abs() <= 0.01).all()


def test_the_report_is_rewritten_while_trials_train(ray_session, tiny_study, monkeypatch):
    """While `study run` trains, the report shows what is finished and the curves of the
    trials still training, says that it is partial and when it was written, and reloads
    itself; the terminal says when fitting starts. The report after the run is whole."""
    from orchestrator import fitting, run

    pages, training = [], []  # each page, and the trials running with a curve when it was written

    def keep(store, path):
        trials, curves = store.trials_frame(), store.metrics_frame()
        running = set(trials.trial_id[trials.status == "running"])
        drawn = running & set(curves.trial_id[curves.name == "train_loss"])
        if not pages and not drawn:  # the first page waits for a curve: a write puts the next
            return path  # off by 20 times its own time, past the end of so small a run
        written = write(store, path)
        pages.append(Path(written).read_text())
        training.append(drawn)
        return written

    write = fitting.write_partial_report
    monkeypatch.setattr(run, "LIVE_REPORT_S", 0.5)
    monkeypatch.setattr(fitting, "write_partial_report", keep)
    tiny_study.write_text(tiny_study.read_text().replace("[decoder, encoder, encdec]", "[decoder]"))
    console = Console(file=io.StringIO(), soft_wrap=True, width=200)
    result = api.run_study(tiny_study, console=console, n_boot=20)
    assert result.failed == [] and len(result.ran) == 3
    assert pages, "no partial report was written while the trials trained"
    for page in pages:
        assert "Partial report, written " in page and "while <code>study run</code> trains" in page
        assert '<meta http-equiv="refresh" content="60">' in page
        assert re.search(r"\d of 3 trials finished, \d running; the laws", page)
    assert any(re.search(r"[012] of 3 trials finished", p) for p in pages)  # during the run
    for page, ids in zip(pages, training, strict=True):  # the curves so far of those training
        for trial_id in ids:
            curve = rf'"legendgroup":"{trial_id}","line":{{"color":"#\w+"}},"mode":"lines"'
            assert re.search(curve, page), trial_id
    final = result.report.read_text()
    assert "Partial report" not in final and 'http-equiv="refresh"' not in final
    said = console.file.getvalue()
    assert (
        "fitting the scaling laws of decoder on 3 finished trials (20 bootstrap resamples" in said
    )
    assert re.search(r"fitted in \d+\.\d s", said)

    # A run stopped early leaves a page that says so and no longer reloads itself.
    from orchestrator.store import RunStore

    with RunStore.open_study(result.store_url, "tiny") as store:
        write(store, result.report, "interrupted")
    stopped = result.report.read_text()
    assert "when <code>study run</code> stopped (interrupted): 3 of 3 trials finished" in stopped
    assert "run it again to finish the study" in stopped and "http-equiv" not in stopped


def test_sigterm_while_the_driver_waits_inside_ray_is_still_told_from_ctrl_c(ray_session):
    """Ray, waiting in its own code when a signal comes, raises a KeyboardInterrupt of its own
    in place of the handler's Terminated: the run still knows it was SIGTERM."""
    import os
    import signal
    import threading
    import time

    import ray

    from orchestrator import schedule

    @ray.remote
    def sleeper():
        time.sleep(30)

    previous = signal.signal(signal.SIGTERM, schedule._terminated)
    schedule._SIGTERM.clear()
    ref = sleeper.remote()
    threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM)).start()
    try:
        with pytest.raises(KeyboardInterrupt) as caught:
            ray.wait([ref], timeout=20)
        assert schedule.terminated(caught.value)  # not a Terminated: Ray's own interrupt
    finally:
        signal.signal(signal.SIGTERM, previous)
        schedule._SIGTERM.clear()
        ray.cancel(ref, force=True)
    assert not schedule.terminated(KeyboardInterrupt())  # a Ctrl-C is a Ctrl-C
