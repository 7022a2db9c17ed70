"""The run store's one facade: only orchestrator/store/ imports sqlalchemy (the rest of the tool
goes through `RunStore`), and a read lets go of what it opened."""

from __future__ import annotations

import os
import sqlite3

import pytest
from sqlalchemy.orm import Session

from orchestrator.store import VERSION_TABLE, StoreError, open_store
from tests.test_layers import PACKAGES, ROOT, imported_names
from tests.test_store import _registered

WALKED = (*PACKAGES, "bench")  # the benches measure the tool through its facade too


def test_only_the_store_imports_sqlalchemy():
    store = ROOT / "orchestrator" / "store"
    found = [
        f"{path.relative_to(ROOT)} imports {name}"
        for package in WALKED
        for path in sorted((ROOT / package).rglob("*.py"))
        if store not in path.parents
        for name in imported_names(path)
        if name.split(".")[0] == "sqlalchemy"
    ]
    assert found == []


def test_the_walker_sees_sqlalchemy_where_it_is_imported():
    store = ROOT / "orchestrator" / "store"
    assert "sqlalchemy.orm.Session" in imported_names(store / "facade.py")
    migrations = list((store / "migrations" / "versions").glob("*.py"))
    assert any("sqlalchemy" in imported_names(p) for p in migrations)  # moved here, walked


def test_the_walker_sees_a_bench_import_sqlalchemy_inside_a_function(tmp_path):
    """As bench/gpu_check.py imports the store only where it runs a study."""
    assert list((ROOT / "bench").glob("*.py"))  # the folder walked is there
    script = tmp_path / "bench.py"
    script.write_text("def read():\n    from sqlalchemy.orm import Session\n    return Session\n")
    assert "sqlalchemy.orm.Session" in imported_names(script)


def _handles() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_two_hundred_reads_leave_no_file_handle_open(tmp_path):
    """Each read command opens the store and closes it, its engine disposed: 200 reads in one
    process hold no more file handles afterwards than one did."""
    from orchestrator import api

    url = f"sqlite:///{tmp_path / 'st.db'}"
    with Session(open_store(url)) as session:
        _registered(session)
        session.commit()

    api.export_trials(store=url)  # the first read imports and caches what it needs
    before = _handles()
    for i in range(200):
        read = (api.status, api.export_trials, api.export_evals, api.export_predictions,
                api.export_fits)[i % 5]  # fmt: skip
        read(store=url)
    assert _handles() <= before


@pytest.mark.parametrize("store", ["newer", "empty"])
def test_two_hundred_refused_opens_leave_no_file_handle_open(tmp_path, store):
    """A store that cannot be read (of a newer schema than the tool's, or an empty file) is
    refused after its engine has opened it: the engine is disposed before the StoreError, so
    200 refusals hold no more file handles than one, and neither do 200 refused upgrades."""
    from orchestrator import api

    path = tmp_path / "st.db"
    url = f"sqlite:///{path}"
    if store == "newer":
        open_store(url).dispose()
        with sqlite3.connect(path) as connection:  # as a later version of the tool leaves it
            connection.execute(f"UPDATE {VERSION_TABLE} SET version_num = '9999'")
    else:
        path.touch()
    for read in (api.status, api.upgrade):  # the first refusal imports what it needs
        with pytest.raises(StoreError):
            read(store=url)
    before = _handles()
    for i in range(200):
        with pytest.raises(StoreError):
            (api.status, api.upgrade)[i % 2](store=url)
    assert _handles() <= before


def test_events_recorded_many_at_once_land_as_one_by_one(tmp_path):
    """TrialEvents.record_many (a store filled in one commit, as bench/store_speed.py fills
    one) writes what `record` writes, event by event."""
    from orchestrator.store import RunStore
    from trainers.events import End, Start, Train

    start = Start(n_params=25_472, total_params=37_856, flops_per_token=150_000, device="cpu",
                  threads=1, steps=2)  # fmt: skip
    train = Train(step=1, tokens=4096, loss=3.5, lr=1e-3, tokens_per_s=5e4)
    end = End(step=2, tokens=8192, tokens_scored=8192, val_loss=3.0, wall_s=5.0,
              tokens_per_s=5e4, mfu=0.3, epochs=1.0)  # fmt: skip
    seen = []
    for how in ("record", "record_many"):
        url = f"sqlite:///{tmp_path / how}.db"
        with Session(open_store(url)) as session:
            _registered(session)
            session.commit()
        with RunStore.open_study(url) as store:
            ids = [t.trial_id for t in store.current_trials()]
            events = store.events(ids)
            reported = [(ids[0], start), (ids[0], train), (ids[0], end), (ids[1], start)]
            if how == "record":
                for trial_id, event in reported:
                    events.record(trial_id, event)
                events.flush()
            else:
                events.record_many(reported)
        with RunStore.open_study(url) as store:  # what was committed
            trials = store.trials_frame()[["trial_id", "status", "tokens_done", "val_loss"]]
            seen.append((trials, store.metrics_frame()[["trial_id", "name", "value"]]))
    assert seen[0][0].equals(seen[1][0]) and seen[0][1].equals(seen[1][1])
    assert list(seen[1][0].status) == ["finished", "running"]
    assert sorted(seen[1][1].name) == ["lr", "tokens_per_s", "train_loss"]
