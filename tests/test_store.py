"""The run store: round trip, schema version, current grid, events written as reported."""

from __future__ import annotations

import os
import shutil
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.grid import expand
from orchestrator.spec import parse_study
from orchestrator.stages import planned_accounting
from orchestrator.store import (
    Metric,
    StoreError,
    TrialStatus,
    current_trials,
    open_store,
    queue_trial,
    record_event,
    register_study,
)
from trainers.data import load_token_data
from trainers.events import End, Start, Train, Validation, ZeroShot

STUDY = """\
name: st
architectures: [decoder]
sizes: [25K, 100K]
budget: {tokens: 600K}
"""


def _register(session, spec, trials):
    """The study and its grid registered as `study run` registers them (stages.register), in the
    caller's session."""
    data = load_token_data("builtin:kjv", "bytes", 0.02, 0.02, 0)  # in memory: no cache folder
    planned = {t.trial_id: planned_accounting(t, data.vocab_size) for t in trials}
    return register_study(session, spec.name, spec.model_dump(mode="json"), spec.hash(), trials,
                          planned, data=data.summary())  # fmt: skip


def _registered(session):
    """The STUDY grid registered in a store: the study and its current trials."""
    spec = parse_study(STUDY)
    study = _register(session, spec, expand(spec, "", ""))
    return study, current_trials(session, study)


def test_round_trip_of_study_trials_and_events(store):
    spec = parse_study(STUDY)
    trials = expand(spec, "", "")
    engine = open_store(store)
    with Session(engine) as session:
        study = _register(session, spec, trials)
        row = current_trials(session, study)[0]
        queue_trial(row)
        assert (row.status, row.attempts) == (TrialStatus.pending, 0)  # a try counts once started
        record_event(
            session,
            row,
            Start(n_params=25472, total_params=37856, flops_per_token=10**6, steps=1,
                  device="cpu", threads=1, host="h"),
        )  # fmt: skip
        record_event(session, row, Train(step=1, tokens=2048, loss=5.5, lr=1e-3, tokens_per_s=1e4))
        record_event(session, row, Validation(step=1, tokens=2048, val_loss=5.4))
        record_event(
            session,
            row,
            End(step=1, tokens=2048, val_loss=5.4, wall_s=1.0, tokens_per_s=2048.0,
                tokens_scored=2048, mfu=0.5, checkpoint="", epochs=1.0),
        )  # fmt: skip
        session.commit()
    engine.dispose()

    with Session(open_store(store, create=False)) as session:
        from orchestrator.store import get_study

        study = get_study(session, "st")
        rows = current_trials(session, study)
        assert [r.trial_id for r in rows] == ["decoder-25K-s0", "decoder-100K-s0"]
        assert rows[0].status == TrialStatus.finished and rows[1].status == TrialStatus.pending
        assert rows[0].spec == trials[0]  # the config round-trips to the same TrialSpec
        assert rows[0].flops == 2048 * 10**6
        names = session.scalars(select(Metric.name).where(Metric.trial_pk == rows[0].id)).all()
        assert sorted(names) == ["lr", "tokens_per_s", "train_loss", "val_loss"]
        assert rows[0].tokens_scored == 2048 and rows[0].mfu == 0.5
        assert [r.attempts for r in rows] == [1, 0]
    if store.startswith("sqlite"):
        db = sqlite3.connect(store.removeprefix("sqlite:///"))
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_changed_study_keeps_old_trials_but_not_as_current(store):
    spec = parse_study(STUDY)
    engine = open_store(store)
    with Session(engine) as session:
        _register(session, spec, expand(spec, "", ""))
        changed = parse_study(STUDY + "train: {lr: 1.0e-3}\n")
        study = _register(session, changed, expand(changed, "", ""))
        session.commit()
        assert len(study.trials) == 4
        assert len(current_trials(session, study)) == 2


def _old_store(tmp_path, asset: str = "store-schema4.db") -> str:
    """A copy of a store of an earlier release: by default 0.1's (schema_info version 4), three
    finished trials."""
    import shutil

    from tests.conftest import ASSETS

    path = tmp_path / "old.db"
    shutil.copy(ASSETS / asset, path)
    return f"sqlite:///{path}"


def _counts(url: str) -> dict:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        return {
            table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("studies", "trials", "metrics", "evals", "fits")
        }


def test_a_store_of_an_earlier_schema_is_refused_with_the_command_that_upgrades_it(tmp_path):
    url = _old_store(tmp_path)
    before = _counts(url)
    with pytest.raises(StoreError, match=rf"release 0.1.*`study upgrade --store {url}`"):
        open_store(url)
    assert _counts(url) == before  # refused before anything was written


def test_study_upgrade_migrates_an_old_store_keeping_its_data_and_a_copy(tmp_path, study_cli):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from orchestrator import api
    from orchestrator.store import VERSION_TABLE, Base

    url = _old_store(tmp_path)
    before = _counts(url)
    refused = study_cli("status", "--store", url, cwd=tmp_path)
    assert refused.returncode == 2 and "study upgrade --store" in refused.stderr

    done = study_cli("upgrade", "--store", url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    copy = tmp_path / "old.db.schema-0001.bak"
    assert f"from schema 0001 to 0008; the old store is kept as {copy}" in done.stdout
    assert _counts(url) == before and _counts(f"sqlite:///{copy}") == before
    shown = api.status(store=url)
    assert shown.status.tolist() == ["finished"] * 3 and shown.heartbeat_at.isna().all()

    # The migrated schema is the one the models describe: alembic finds nothing to change.
    engine = open_store(url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()
    again = study_cli("upgrade", "--store", url, cwd=tmp_path)
    assert again.returncode == 0 and "at schema 0008 already" in again.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("asset", "trials", "evals", "eval_keys"),
    [("store-schema4.db", 3, 39, 1), ("store-0002.db", 6, 121, 2)],
)
def test_after_an_upgrade_rerunning_the_study_trains_nothing(
    tmp_path, asset, trials, evals, eval_keys
):
    """Release 0.1's store, and 0.2's (its study run with 20 zero-shot items, then 30, which
    retrained every trial then): rehashed, every cell is found finished."""
    import json

    import yaml

    from orchestrator import api
    from orchestrator.store import upgrade_store

    url = _old_store(tmp_path, asset)
    before = _counts(url)
    assert upgrade_store(url)[1] == "0008"
    after = _counts(url)
    assert after["evals"] == before["evals"] == evals  # every zero-shot result kept
    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        (spec,) = db.execute("SELECT spec FROM studies").fetchone()
        keys = db.execute("SELECT COUNT(DISTINCT eval_key) FROM evals").fetchone()[0]
        assert db.execute("SELECT COUNT(*) FROM evals WHERE eval_key IS NULL").fetchone() == (0,)
    assert keys == eval_keys  # 0.2's two settings told apart
    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        twice = db.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM evals GROUP BY trial_pk, eval_key, step, task, "
            "metric HAVING COUNT(*) > 1)"
        ).fetchone()
        baseline = db.execute("SELECT DISTINCT eval_key FROM evals WHERE trial_pk IS NULL")
        current = db.execute("SELECT DISTINCT eval_key FROM trials WHERE current")
        assert twice == (0,) and baseline.fetchall() == current.fetchall()  # the latest settings
    with Session(open_store(url)) as session:
        from orchestrator.store import evals_frame, get_study, outdated

        study_row = get_study(session)
        assert outdated(session, study_row) == []  # measured under the settings they hold
        assert "ngram" in set(evals_frame(session, study_row).architecture)
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(json.loads(spec) | {"storage": str(tmp_path / "art")}))
    result = api.run_study(study, store=url, report=tmp_path / "r.html", n_boot=0)
    # the encoders train again: their model has BERT's masked-LM head since (a new identity)
    encoders = sorted(t for t in result.ran + result.skipped if t.startswith("encoder"))
    assert sorted(result.ran) == encoders
    assert len(result.skipped) + len(encoders) == trials == after["trials"]


def test_a_store_from_a_newer_tool_is_refused_and_not_touched(store, study_cli, tmp_path):
    engine = open_store(store)
    with engine.begin() as connection:
        connection.execute(text("UPDATE study_schema_version SET version_num = '0099'"))
    engine.dispose()
    with pytest.raises(StoreError, match="schema 0099, newer than this version.*pip install -U"):
        open_store(store)
    done = study_cli("upgrade", "--store", store, cwd=tmp_path)
    assert done.returncode == 2 and "upgrade the tool instead" in done.stderr


def test_a_new_store_is_made_at_the_latest_schema(store):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from orchestrator.store import SCHEMA_REVISION, VERSION_TABLE, Base

    engine = open_store(store)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        assert context.get_current_revision() == "0008"
        assert context.get_current_revision() == SCHEMA_REVISION  # kept up to date
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()


def test_missing_store_is_an_error_for_readers(tmp_path):
    with pytest.raises(StoreError, match="run the study first"):
        open_store(f"sqlite:///{tmp_path / 'none.db'}", create=False)


def test_a_new_attempt_starts_from_no_metrics(store):
    """A resumed trainer reports its history again after `start`; a fresh one starts empty."""
    engine = open_store(store)
    with Session(engine) as session:
        _, (row, _) = _registered(session)
        start = Start(n_params=1, total_params=2, flops_per_token=3, steps=1, device="cpu",
                      threads=1, host="h")  # fmt: skip
        record_event(session, row, start)
        for step in (1, 2, 3):
            record_event(session, row, Validation(step=step, tokens=step, val_loss=5.0))
        steps = lambda: session.scalars(select(Metric.step).where(Metric.trial_pk == row.id))
        queue_trial(row)
        record_event(session, row, replace(start, resumed_step=2, resumed_tokens=2))
        assert steps().all() == [] and row.tokens_done == 2 and row.attempts == 2  # two starts


def test_a_trial_records_the_workers_it_trained_on(store):
    """Schema 0007: a start's workers and strategy land on the trial's row and in its frame;
    a trial on one process says 1 and no strategy."""
    from orchestrator.store import trials_frame

    engine = open_store(store)
    with Session(engine) as session:
        study, (row, _) = _registered(session)
        start = Start(n_params=1, total_params=2, flops_per_token=3, steps=1, device="cpu",
                      threads=1, host="h")  # fmt: skip
        record_event(session, row, start)
        assert (row.workers, row.strategy) == (1, None)
        record_event(session, row, replace(start, workers=2, strategy="ddp"))
        session.commit()
        frame = trials_frame(session, study)
        assert frame.set_index("trial_id").loc[row.trial_id, ["workers", "strategy"]].tolist() == [
            2, "ddp"]  # fmt: skip
    engine.dispose()
    # `study status` shows the columns where a trial spans several workers
    shown = CliRunner().invoke(app, ["status", "--store", store])
    assert shown.exit_code == 0, shown.output
    header = next(line for line in shown.stdout.splitlines() if "trial" in line and "status" in line)
    assert "workers" in header and "strategy" in header
    assert any(row.trial_id in line and " ddp" in line for line in shown.stdout.splitlines())


def test_zero_shot_results_are_stored_and_replaced_by_a_new_attempt(store):
    from orchestrator.store import Eval, evals_of

    engine = open_store(store)
    with Session(engine) as session:
        study, (row, _) = _registered(session)
        start = Start(n_params=1, total_params=2, flops_per_token=3, steps=1, device="cpu",
                      threads=1, host="h")  # fmt: skip
        record_event(session, row, start)
        result = {"task": "last_word", "metric": "acc", "value": 0.5, "n_items": 2}
        result |= {"chance": 0.25, "ci_low": 0.1, "ci_high": float("nan"), "per_item": [1, 0]}
        record_event(session, row, ZeroShot(step=5, tokens=80, eval_key="k", results=[result]))
        session.commit()
        (stored,) = evals_of(session, study)
        assert (stored.task, stored.value, stored.architecture) == ("last_word", 0.5, "decoder")
        assert stored.ci_high is None and stored.per_item == [1, 0]  # NaN stored as NULL
        record_event(session, row, start)  # a new attempt starts over
        assert session.scalars(select(Eval)).all() == []


def test_the_evals_export_says_which_step_each_result_is_from(store):
    """A kept checkpoint's results and the final ones, under two evaluation settings: the
    export has a row for each, with its step and tokens."""
    from orchestrator.store import EVAL_COLUMNS, all_evals_frame

    engine = open_store(store)
    with Session(engine) as session:
        study, (row, _) = _registered(session)
        record_event(session, row, Start(n_params=1, total_params=2, flops_per_token=3, steps=10,
                                         device="cpu", threads=1, host="h"))  # fmt: skip
        result = {"task": "last_word", "metric": "acc", "n_items": 2, "chance": 0.25}
        for step, key, value in ((5, "k1", 0.25), (10, "k1", 0.5), (10, "k2", 0.75)):
            record_event(session, row, ZeroShot(step=step, tokens=step * 16, eval_key=key,
                                                results=[result | {"value": value}]))  # fmt: skip
        session.commit()
        frame = all_evals_frame(session, study)
    assert list(frame.columns) == EVAL_COLUMNS and "step" in EVAL_COLUMNS
    assert frame[["step", "tokens", "eval_key", "value"]].values.tolist() == [
        [5, 80, "k1", 0.25], [10, 160, "k1", 0.5], [10, 160, "k2", 0.75]
    ]  # fmt: skip
    assert set(frame.trial_id) == {row.trial_id}


def test_metric_curves_are_thinned_evenly_for_the_report(store):
    from orchestrator.store import metrics_frame

    engine = open_store(store)
    with Session(engine) as session:
        study, (first, second) = _registered(session)
        session.add_all(
            [Metric(trial_pk=first.id, step=s, tokens=s * 10, name="train_loss", value=1 / s)
             for s in range(1, 1001)]
            + [Metric(trial_pk=second.id, step=s, tokens=s, name="val_loss", value=s)
               for s in range(1, 6)]
        )  # fmt: skip
        session.commit()
        everything = metrics_frame(session, study)
        thinned = metrics_frame(session, study, max_points=100)
    assert len(everything) == 1005
    long = thinned[thinned.trial_id == first.trial_id]
    assert len(long) == 100 and long.step.iloc[0] == 1 and long.step.iloc[-1] == 1000
    assert set(long.step.diff().dropna()) <= {10, 11}  # evenly spaced
    assert list(thinned[thinned.trial_id == second.trial_id].step) == [1, 2, 3, 4, 5]


HOLDER = """
import sys, time
from orchestrator.store import run_lock
with run_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _hold(store, seconds):
    import subprocess
    import sys

    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, store, str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_run_is_refused_with_who_holds_the_store_until_it_ends(store):
    import time

    from orchestrator.store import run_lock

    holder = _hold(store, 60)
    try:
        with pytest.raises(
            StoreError, match=rf"in use by study run \(pid {holder.pid} on .*--wait"
        ):
            with run_lock(store):
                pass
    finally:
        holder.kill()  # SIGKILL: the operating system releases the lock
        holder.wait()
    with run_lock(store):  # free again, no stale lock left behind
        pass
    holder = _hold(store, 1.5)
    start = time.monotonic()
    with run_lock(store, wait=True):  # waits for the holder to finish
        assert time.monotonic() - start > 0.5
    holder.wait()


def test_study_run_refuses_a_held_store_without_touching_it(tmp_path, study_cli):
    import shutil

    from tests.conftest import ASSETS

    study = tmp_path / "tiny.yaml"
    shutil.copy(ASSETS / "tiny.yaml", study)
    url = f"sqlite:///{tmp_path / 'runs' / 'tiny.db'}"
    holder = _hold(url, 120)
    try:
        done = study_cli("run", str(study), cwd=tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"in use by study run (pid {holder.pid}" in done.stderr
    assert not (tmp_path / "runs" / "tiny.db").exists()


def test_status_shows_a_trial_whose_run_died_as_interrupted(store):
    from orchestrator import api

    engine = open_store(store)
    with Session(engine) as session:
        study, (row, _) = _registered(session)
        queue_trial(row)
        row.status = TrialStatus.running  # as a killed driver leaves it
        session.commit()
    shown = api.status(store=store).set_index("trial_id")
    assert shown.loc["decoder-25K-s0", "status"] == "interrupted"
    assert "driver stopped" in shown.loc["decoder-25K-s0", "error"]
    holder = _hold(store, 60)  # a live run holds the store: the trial really is running
    try:
        assert api.status(store=store).set_index("trial_id").loc["decoder-25K-s0", "status"] == (
            "running"
        )
    finally:
        holder.kill()
        holder.wait()


def test_study_status_prints_counts_a_table_and_each_error_once(store, study_cli, tmp_path):
    spec = parse_study(STUDY.replace("seeds", "").replace("600K}", "600K}\nseeds: [0, 1, 2, 3, 4]"))
    engine = open_store(store)
    with Session(engine) as session:
        rows = current_trials(session, _register(session, spec, expand(spec, "", "")))
        for row in rows[1:4]:  # a killed driver left three running; one failed; five pending
            queue_trial(row)
            row.status, row.attempts = TrialStatus.running, 1  # started
        rows[-1].status, rows[-1].error = (
            TrialStatus.failed,
            "Traceback ...\nValueError: bad lr [bold]x[/bold]",
        )
        rows[0].status = TrialStatus.finished
        session.commit()
        ids = [row.trial_id for row in rows]
    engine.dispose()
    shown = study_cli("status", "--store", store, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "10 trials: 8 interrupted, 1 finished, 1 failed"
    header = lines[2]
    assert header.split() == ["trial", "status", "tries", "N", "tokens", "val", "loss", "wall",
                              "s", "device"]  # fmt: skip
    table = {line.split()[0]: line for line in lines[4:14]}
    assert sorted(table) == sorted(ids)
    tries_end = header.index("tries") + len("tries")  # numbers are right-aligned under it
    assert table[ids[1]][tries_end - 1] == "1"
    assert table[ids[1]].split()[1] == "interrupted"
    assert table[ids[0]].split()[1] == "finished"
    errors = lines[14:]  # the same error once, with three of the trials it names
    assert len(errors) == 2 and errors[1] == f"{ids[-1]}: ValueError: bad lr [bold]x[/bold]"
    assert errors[0].endswith(
        " and 5 more: interrupted: the run that trained it is gone (its driver stopped)"
    )
    assert len(errors[0].split(" and ")[0].split(", ")) == 3


def test_status_flags_a_finished_trial_whose_final_weights_are_gone_or_broken(
    store, study_cli, tmp_path
):
    """final.pt as the trainer wrote it (size and SHA-256 stored with the trial): cut short, it
    is flagged broken; deleted, gone; study export refuses it in one line."""
    import hashlib

    from orchestrator import api

    final = tmp_path / "final.pt"
    final.write_bytes(b"w" * 1000)
    engine = open_store(store)
    with Session(engine) as session:
        study, (row, _) = _registered(session)
        record_event(session, row, Start(n_params=25472, total_params=37856,
                                         flops_per_token=10**6, device="cpu", threads=1,
                                         steps=1))  # fmt: skip
        record_event(session, row, End(
            step=1, tokens=2048, val_loss=5.0, wall_s=1.0, tokens_per_s=1e4, tokens_scored=2048,
            mfu=0.1, epochs=1.0, checkpoint=str(final), checkpoint_bytes=1000,
            checkpoint_sha256=hashlib.sha256(b"w" * 1000).hexdigest()))  # fmt: skip
        session.commit()
    engine.dispose()
    assert api.status(store=store).set_index("trial_id").weights["decoder-25K-s0"] == ""
    final.write_bytes(b"w" * 400)  # cut short
    shown = api.status(store=store).set_index("trial_id")
    assert shown.status["decoder-25K-s0"] == "finished"  # its results stand
    assert shown.weights["decoder-25K-s0"] == (
        f"its final weights are broken ({final}: 400 bytes, 1000 when written)"
    )
    done = study_cli("status", "--store", store, cwd=tmp_path)
    assert done.returncode == 0
    assert "decoder-25K-s0: finished, but its final weights are broken" in done.stdout
    refused = study_cli("export", "--store", store, "--what", "models", "--out", "m",
                        "--trials", "decoder-25K-*", cwd=tmp_path)  # fmt: skip
    assert refused.returncode == 2 and not (tmp_path / "m").exists()
    assert refused.stderr.strip().startswith("error: decoder-25K-s0: its final weights are broken")
    final.unlink()
    gone = api.status(store=store).set_index("trial_id").weights["decoder-25K-s0"]
    assert gone == f"its final weights are not at {final} (gone, or not seen from this machine)"


def test_status_on_a_database_server_tells_a_dead_run_by_its_heartbeats(sqlite_store):
    """Where no lock tells whether a run is alive (a store on a database server other than
    PostgreSQL), a trial whose heartbeat stopped is shown interrupted. `sqlite+pysqlite://`
    takes that path here."""
    from datetime import timedelta

    from orchestrator import api
    from orchestrator.store import STALE_AFTER_S, beat
    from orchestrator.store.tables import utc_now

    server_like = sqlite_store.replace("sqlite:///", "sqlite+pysqlite:///")
    engine = open_store(sqlite_store)
    with Session(engine) as session:
        study, (first, second) = _registered(session)
        queue_trial(first)
        queue_trial(second)
        first.status = TrialStatus.running
        session.commit()
        shown = api.status(store=server_like).set_index("trial_id")
        assert shown.status.tolist() == ["running", "pending"]  # fresh heartbeats

        # The driver died STALE_AFTER_S ago: its heartbeats stopped then.
        long_ago = utc_now() - timedelta(seconds=STALE_AFTER_S + 5)
        first.heartbeat_at = second.heartbeat_at = long_ago
        session.commit()
        shown = api.status(store=server_like).set_index("trial_id")
        assert shown.status.tolist() == ["interrupted", "interrupted"]
        assert "driver stopped" in shown.loc["decoder-25K-s0", "error"]

        beat(session, [first, second])  # a live driver refreshes them
        session.commit()
        assert api.status(store=server_like).status.tolist() == ["running", "pending"]


def test_the_driver_commits_metrics_in_batches_and_states_at_once(store):
    """Recorder: train and eval rows wait for a tick past COMMIT_S (or an end), while a trial's
    start and end are visible to readers at once; a new attempt's start clears the rows of the
    one before, including rows that were still waiting."""
    from orchestrator.store import Recorder

    engine = open_store(store)
    reader = create_engine(store).connect()  # another connection: sees commits only

    def seen() -> tuple[str, int]:
        status = reader.execute(text("SELECT status FROM trials ORDER BY id LIMIT 1")).scalar()
        count = reader.execute(text("SELECT COUNT(*) FROM metrics")).scalar()
        reader.rollback()  # the next look starts afresh
        return status, count

    start = Start(n_params=25472, total_params=37856, flops_per_token=10**6, device="cpu",
                  threads=1, steps=1)  # fmt: skip

    def step(n: int) -> dict:
        return Train(step=n, tokens=2048 * n, loss=5.0, lr=1e-3, tokens_per_s=1e4)  # fmt: skip

    with Session(engine) as session:
        _, (row, _) = _registered(session)
        queue_trial(row)
        session.commit()
        recorder = Recorder(session)
        recorder.record(row, start)
        assert seen() == ("running", 0)  # the start is committed at once
        recorder.record(row, step(1))
        recorder.record(row, step(2))
        recorder.tick()  # within COMMIT_S: nothing written yet
        assert seen() == ("running", 0)
        recorder.last_commit -= Recorder.COMMIT_S
        recorder.tick()
        assert seen() == ("running", 6)  # three rows per train event, in one statement
        recorder.record(row, step(3))  # waiting when the trial starts again (a retry)
        recorder.record(row, start)
        assert seen() == ("running", 0)
        recorder.record(row, step(1))
        recorder.record(row, End(step=1, tokens=2048, val_loss=5.0, wall_s=1.0, tokens_per_s=1e4,
                                 tokens_scored=2048, mfu=0.1, epochs=1.0))  # fmt: skip
        assert seen() == ("finished", 3)
    reader.close()
    engine.dispose()


@pytest.mark.slow
def test_new_zero_shot_settings_retrain_nothing_and_old_results_are_not_mixed_in(tmp_path):
    """More items: every trial is still finished (its hash did not change). Its results under
    the earlier settings stay in the store and the export, but not in the fits or the report,
    which say which trials they leave out."""
    import yaml

    from orchestrator import api
    from orchestrator.store import evals_frame, get_study, upgrade_store
    from tests.conftest import ASSETS

    url = _old_store(tmp_path, "store-0002.db")
    upgrade_store(url)
    study = tmp_path / "study.yaml"
    spec = yaml.safe_load((ASSETS / "store-0002.yaml").read_text())
    spec["eval"]["zero_shot"]["items"] = 40
    study.write_text(yaml.safe_dump(spec | {"storage": str(tmp_path / "art")}))
    result = api.run_study(study, store=url, report=tmp_path / "r.html", n_boot=0)
    # the encoders train again: their model has BERT's masked-LM head since (a new identity)
    assert sorted(result.ran) == ["encoder-25K-s0", "encoder-50K-s0"]
    assert len(result.skipped) == 4
    assert sorted(result.outdated) == sorted(result.skipped)
    assert "were measured under earlier evaluation settings" in (tmp_path / "r.html").read_text()
    with Session(open_store(url)) as session:
        frame = evals_frame(session, get_study(session))
    # the n-gram floor scored anew (it is cheap and needs no model), the encoders as they train
    assert set(frame.architecture) == {"ngram", "encoder"}
    exported = api.export_evals(store=url)
    assert exported.eval_key.nunique() == 3  # 20 and 30 items (the trials), 40 (the baseline)


def test_a_crafted_study_name_in_a_store_never_writes_outside_reports(store, tmp_path, monkeypatch):
    """A store's study name comes from whoever wrote the store: `../../../evil` stays a file
    name inside reports/."""
    from orchestrator import api

    engine = open_store(store)
    with Session(engine) as session:
        study, _ = _registered(session)
        study.name = "../../../evil"
        session.commit()
    engine.dispose()
    work = tmp_path / "a" / "b" / "c"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    path, _ = api.report(store=store, n_boot=0)
    assert path.resolve().parent == (work / "reports").resolve()
    assert not list(tmp_path.glob("evil*")) and not list((tmp_path / "a").glob("evil*"))


def test_long_study_names_make_file_names_the_file_system_takes(tmp_path, monkeypatch):
    """Study names of 100 characters (three compared) or of 300 (a crafted store): the report,
    its card folder and the comparison get names of at most MAX_FILE_NAME characters, one per
    set of names."""
    from analysis.report.cards import MAX_FILE_NAME, file_name
    from orchestrator import api

    stores = []
    for i, length in enumerate([100, 100, 300]):
        url = f"sqlite:///{tmp_path / f's{i}.db'}"
        engine = open_store(url)
        with Session(engine) as session:
            study, _ = _registered(session)
            study.name = f"{i}" * length
            session.commit()
        engine.dispose()
        stores.append(url.removeprefix("sqlite:///"))
    monkeypatch.chdir(tmp_path)
    compared, _ = api.report(stores, n_boot=0)
    alone, _ = api.report(store=f"sqlite:///{stores[2]}", n_boot=0)
    for path in (compared, alone):
        assert path.exists() and len(path.stem) <= MAX_FILE_NAME
        assert path.parent.resolve() == (tmp_path / "reports").resolve()
    assert compared.stem.startswith("compare-000") and alone.stem.startswith("222")
    assert file_name("2" * 300) != file_name("2" * 299)  # the digest tells them apart


@pytest.mark.parametrize("damage", ["random", "truncated"])
def test_a_damaged_store_or_a_bad_url_is_one_line_and_exit_2(
    sqlite_store, study_cli, tmp_path, damage
):
    store = sqlite_store
    engine = open_store(store)
    with Session(engine) as session:
        _registered(session)
        session.commit()
    engine.dispose()
    path = Path(store.removeprefix("sqlite:///"))
    data = path.read_bytes()
    path.write_bytes(os.urandom(5000) if damage == "random" else data[: len(data) // 3])
    for wal in path.parent.glob(path.name + "-*"):
        wal.unlink()
    for command in (["status"], ["export"], ["report"], ["fit"]):
        shown = study_cli(*command, "--store", store, cwd=tmp_path)
        assert shown.returncode == 2, (command, shown.stderr[-2000:])
        assert shown.stderr.startswith(f"error: the store {store} is damaged or not a run store")
        assert "Traceback" not in shown.stderr and len(shown.stderr.strip().splitlines()) == 1
    if damage == "truncated":
        return  # the rest does not depend on the damage
    shutil.copy(Path(__file__).parent / "assets" / "tiny.yaml", tmp_path / "tiny.yaml")
    shown = study_cli("run", "tiny.yaml", "--store", store, cwd=tmp_path)
    assert shown.returncode == 2 and "Traceback" not in shown.stderr, shown.stderr[-2000:]
    assert f"the store {store} is damaged or not a run store" in shown.stderr
    for url, said in (("notaurl", "is not a database URL"),
                      ("mysql://u@localhost/db", "needs a database driver that is not installed"),
                      ("postgresql+psycopg://u@127.0.0.1:1/db", "the store postgresql")):  # fmt: skip
        shown = study_cli("status", "--store", url, cwd=tmp_path)
        assert shown.returncode == 2 and said in shown.stderr and "Traceback" not in shown.stderr
        assert len(shown.stderr.strip().splitlines()) == 1, shown.stderr


def test_a_postgresql_store_without_its_driver_is_one_line_before_anything_runs(
    study_cli, tmp_path
):
    """A PostgreSQL store is locked before it is opened: the lock says so as the store would,
    without the URL's password; `study run` says it before it prepares any data."""
    tiny = (Path(__file__).parent / "assets" / "tiny.yaml").read_text()
    (tmp_path / "tiny.yaml").write_text(tiny + "storage: artifacts\n")  # token files go there
    unloaded = "postgresql+pg8000://u:s3cret@127.0.0.1:1/db"  # a driver that is not installed
    for command in (["upgrade"], ["run", "tiny.yaml"]):
        shown = study_cli(*command, "--store", unloaded, cwd=tmp_path)
        assert shown.returncode == 2 and "Traceback" not in shown.stderr, shown.stderr[-2000:]
        assert "needs a database driver that is not installed (pg8000)" in shown.stderr
        assert "s3cret" not in shown.stderr
    shown = study_cli("run", "tiny.yaml", "--store", "notaurl", cwd=tmp_path)
    assert shown.returncode == 2 and "is not a database URL" in shown.stderr
    assert not (tmp_path / "artifacts").exists()  # no token files made for a run that cannot be


def test_a_store_failure_names_the_store_without_its_password():
    from orchestrator.store.engine import store_failure

    said = store_failure("postgresql+psycopg://me:s3cret@db.example/runs", OSError("down"))
    assert "s3cret" not in said and "me:***@db.example" in said and said.endswith(": down")
    assert store_failure("", OSError("gone")) == "cannot use the run store: gone"


CONCURRENT = """\
name: conc
data: {corpus: "builtin:kjv", tokenizer: bytes, seq_len: 32}
architectures: [decoder]
sizes: [25K, 50K]
budget: {tokens: 16K}
train: {batch_size: 8}
eval: {every_tokens: 8K, tokens: 2K, zero_shot: {items: 10}}
resources: {cpus_per_trial: 1}
"""


@pytest.mark.slow
def test_two_runs_started_at_once_on_one_store_train_each_trial_once(postgres_store, tmp_path):
    """On a database server: the second run is refused by the store's run lock (an advisory
    lock) before it writes anything; the first trains every trial once: no row twice, one
    attempt each. (On SQLite the lock file does the same: tests above.)"""
    store = postgres_store
    import subprocess
    import sys

    study = tmp_path / "conc.yaml"
    study.write_text(CONCURRENT + f"storage: {tmp_path / 'artifacts'}\n")
    command = [sys.executable, "-m", "orchestrator.cli", "run", str(study), "--store", store]
    runs = [subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]  # fmt: skip
    done = [(run.wait(timeout=600), *run.communicate()) for run in runs]
    codes = sorted(code for code, _, _ in done)
    assert codes == [0, 2], done
    refused = next(err for code, _, err in done if code == 2)
    assert "is in use by study run (pid" in refused and "Traceback" not in refused
    engine = open_store(store, create=False)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT trial_id, status, attempts FROM trials")).all()
        assert sorted(rows) == [("decoder-25K-s0", "finished", 1),
                                ("decoder-50K-s0", "finished", 1)]  # fmt: skip
        assert connection.execute(text("SELECT COUNT(*) FROM studies")).scalar() == 1
        for table, key in (("metrics", "trial_pk, name, step"),
                           ("evals", "trial_pk, eval_key, step, task, metric")):  # fmt: skip
            twice = connection.execute(text(
                f"SELECT COUNT(*) FROM (SELECT 1 FROM {table} GROUP BY {key} "
                "HAVING COUNT(*) > 1) AS twice"
            )).scalar()  # fmt: skip
            assert twice == 0, table
    engine.dispose()


def test_a_batch_the_server_took_before_the_connection_dropped_is_not_stored_twice(
    postgres_store,
):
    """The server commits a batch, then the connection drops before it says so: the recorder
    finds the batch's stamp on the study row and does not replay it (a replay would store
    every point twice and count the try twice)."""
    from sqlalchemy.exc import OperationalError

    from orchestrator.store import Recorder

    engine = open_store(postgres_store)
    with Session(engine) as session:
        study, (row, _) = _registered(session)
        session.commit()
        recorder = Recorder(session, study=study)
        recorder.RETRY_EVERY_S = 0.0
        real = session.commit
        dropped = []

        def commit_then_drop():
            batch = bool(recorder.changes)
            real()
            if batch and not dropped:  # once, a batch's: the reply is lost
                dropped.append(True)
                raise OperationalError("COMMIT", {}, Exception("server closed the connection"),
                                       connection_invalidated=True)  # fmt: skip

        session.commit = commit_then_drop
        recorder.record(row, Start(n_params=25472, total_params=37856, flops_per_token=10**6,
                                   device="cpu", threads=1, steps=2))  # fmt: skip
        recorder.record(row, Train(step=1, tokens=1024, loss=5.0, lr=1e-3, tokens_per_s=1e4))
        recorder.flush()
        assert dropped  # the drop happened, and was recovered from
    with engine.connect() as connection:
        points = connection.execute(text("SELECT COUNT(*) FROM metrics")).scalar()
        attempts = connection.execute(text("SELECT MAX(attempts) FROM trials")).scalar()
    engine.dispose()
    assert (points, attempts) == (3, 1)  # train_loss, lr, tokens_per_s once; one try


def _drop_connections(url: str, allow: bool = True) -> None:
    """What a server restart does to a store's clients: every connection to its database ends
    (and, without `allow`, no new one is let in until it is allowed again)."""
    from sqlalchemy import make_url
    from sqlalchemy.pool import NullPool

    from tests.conftest import POSTGRES

    name = make_url(url).database
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as connection:
        connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allow).lower()}'))
        connection.execute(text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": name})  # fmt: skip
    admin.dispose()


def _when_training(url: str, then) -> object:
    """A thread that calls `then()` once a trial of the store has trained some tokens."""
    import threading
    import time

    def watch():
        engine = create_engine(url)
        try:
            for _ in range(600):
                try:
                    with engine.connect() as connection:
                        done = connection.execute(text(
                            "SELECT COUNT(*) FROM trials WHERE status = 'running' "
                            "AND tokens_done > 0")).scalar()  # fmt: skip
                except ProgrammingError:  # no tables yet
                    done = 0
                if done:
                    then()
                    return
                time.sleep(0.1)
        finally:
            engine.dispose()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.mark.slow
def test_a_database_restart_mid_run_loses_nothing_and_a_long_outage_stops_cleanly(
    ray_session, postgres_store, tmp_path, monkeypatch
):
    """The server drops every connection while trials train: the driver takes its lock again
    and replays what it had not committed, and the run ends as if nothing happened. A server
    that stays away past the recorder's patience stops the run with one line; the trials it
    held show interrupted and the next run finishes them."""
    import io

    from rich.console import Console

    from orchestrator import api
    from orchestrator.store import Recorder, run_active

    store = postgres_store
    monkeypatch.setattr(Recorder, "RETRY_EVERY_S", 0.5)  # look again sooner than a run would
    study = tmp_path / "conc.yaml"
    study.write_text(CONCURRENT.replace("16K", "300K") + f"storage: {tmp_path / 'artifacts'}\n")
    flush, dropped = Recorder.flush, []

    def flush_after_a_restart(self):  # the server restarts as a batch of training points waits
        if not dropped and any(m["name"] == "train_loss" for m in self.metrics):
            dropped.append(True)
            _drop_connections(store)
        flush(self)

    monkeypatch.setattr(Recorder, "flush", flush_after_a_restart)
    out = io.StringIO()
    result = api.run_study(study, store=store, console=Console(file=out, width=200), n_boot=0,
                           report=tmp_path / "r.html")  # fmt: skip
    said = out.getvalue()
    assert dropped and "the store stopped answering" in said
    assert "nothing was lost" in said  # the lock taken again, what was not committed replayed
    assert sorted(result.ran) == ["decoder-25K-s0", "decoder-50K-s0"] and result.failed == []
    engine = open_store(store, create=False)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT status, attempts FROM trials")).all()
        assert rows == [("finished", 1), ("finished", 1)]
        twice = connection.execute(text(
            "SELECT COUNT(*) FROM (SELECT 1 FROM metrics GROUP BY trial_pk, name, step "
            "HAVING COUNT(*) > 1) AS twice")).scalar()  # fmt: skip
        assert twice == 0
    engine.dispose()

    # A longer outage: the server does not come back within the recorder's patience.
    monkeypatch.setattr(Recorder, "RETRY_S", 3.0)
    study.write_text(study.read_text().replace("[25K, 50K]", "[25K, 50K, 10K]"))
    watcher = _when_training(store, lambda: _drop_connections(store, allow=False))
    with pytest.raises(StoreError, match="stopped answering for 3 s .* the run stops"):
        api.run_study(study, store=store, console=Console(file=io.StringIO()), n_boot=0,
                      report=tmp_path / "r.html")  # fmt: skip
    watcher.join()
    _drop_connections(store, allow=True)
    assert run_active(store) is False  # the lock went with the run
    shown = api.status(store=store).set_index("trial_id")
    assert shown.loc["decoder-10K-s0", "status"] == "interrupted"
    again = api.run_study(study, store=store, console=Console(file=io.StringIO()), n_boot=0,
                          report=tmp_path / "r.html")  # fmt: skip
    assert again.ran == ["decoder-10K-s0"] and again.failed == []


def test_schema_0008_states_a_verified_predictions_error_as_the_backtest_does(tmp_path):
    """A store at 0007 kept (measured − forecast) / forecast; 0008 keeps forecast / measured − 1,
    the backtest's sign (positive: the forecast was too high). Unverified rows stay null."""
    from orchestrator.store import store_prediction, upgrade_store

    url = f"sqlite:///{tmp_path / 'st.db'}"
    engine = open_store(url)
    with Session(engine) as session:
        study, trials = _registered(session)
        for i, measured in enumerate((2.05, None)):
            p = store_prediction(session, study, architecture="decoder", flops=1e12, n_opt=1e5,
                                 n_opt_from="approach 3", trial_id=f"t{i}", trial_hash=f"h{i}",
                                 cell={}, n_params=100, tokens=1000, predicted_loss=2.0,
                                 ci_low=None, ci_high=None, fit={})  # fmt: skip
            if measured is not None:
                p.measured_loss, p.error = measured, (measured - 2.0) / 2.0  # as 0007 kept it
        session.commit()
    with engine.begin() as connection:
        connection.execute(text("UPDATE study_schema_version SET version_num = '0007'"))
    engine.dispose()
    assert upgrade_store(url)[:2] == ("0007", "0008")
    with sqlite3.connect(tmp_path / "st.db") as db:
        errors = db.execute("SELECT error FROM predictions ORDER BY trial_id").fetchall()
    assert errors[0][0] == pytest.approx(2.0 / 2.05 - 1) and errors[1][0] is None
