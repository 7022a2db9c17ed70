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
