"""A store path that holds something else: another program's SQLite database, a text file, a
folder. Every command that opens a store refuses it in one line, exit 2, and leaves it exactly
as it was: not a byte changed (SQLite's journal mode is in the header), no lock file, no
`-wal` or `-shm` beside it."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import pytest

ASSETS = Path(__file__).parent / "assets"

# Every command that opens the study's store, with what it takes besides the study file.
COMMANDS = [
    ["status"], ["report"], ["export"], ["fit"], ["upgrade"], ["eval"],
    ["predict", "--flops", "1e15"], ["run"],
]  # fmt: skip


def _foreign_database(path: Path) -> None:
    """Another program's SQLite database: one `users` table, in the default (rollback) journal
    mode, which opening it as a run store would have switched to WAL."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    connection.execute("INSERT INTO users (name) VALUES ('ada')")
    connection.commit()
    connection.close()


def _text_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("name,email\nada,ada@example.org\n" * 200)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def work(tmp_path) -> Path:
    """A folder with the tiny study file, its store path runs/tiny.db still empty."""
    tiny = (ASSETS / "tiny.yaml").read_text()
    (tmp_path / "tiny.yaml").write_text(tiny + f"storage: {tmp_path / 'artifacts'}\n")
    return tmp_path


def _left_alone(store: Path, digest: str) -> None:
    assert _digest(store) == digest  # not a byte: the journal mode (bytes 18-19) included
    beside = sorted(p.name for p in store.parent.iterdir())
    assert beside == [store.name], beside  # no .lock, -wal, -shm or -journal


def _refused_once(result, *said: str) -> None:
    assert result.returncode == 2, (result.stdout[-1000:], result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for words in said:
        assert words in lines[0], lines[0]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_another_programs_database_is_refused_and_left_as_it_was(work, study_here, command):
    store = work / "runs" / "tiny.db"
    _foreign_database(store)
    assert store.read_bytes()[18:20] == b"\x01\x01"  # rollback journal, as SQLite made it
    digest = _digest(store)
    _refused_once(study_here(*command, "tiny.yaml", cwd=work),
                  "is not a run store of this tool", "users", "left as it is")  # fmt: skip
    _left_alone(store, digest)


def test_plan_leaves_another_programs_database_as_it_was(work, study_here):
    """`study plan` reads how many trials the store has finished: of a database that is not a
    store it says so in one line, and changes nothing."""
    store = work / "runs" / "tiny.db"
    _foreign_database(store)
    digest = _digest(store)
    shown = study_here("plan", "tiny.yaml", cwd=work)
    assert "Traceback" not in shown.stderr, shown.stderr[-2000:]
    assert "is not a run store of this tool" in shown.stdout + shown.stderr
    _left_alone(store, digest)


@pytest.mark.parametrize("command", [["status"], ["run"]], ids=lambda c: c[0])
def test_a_foreign_file_is_left_alone_by_the_installed_command(work, study_cli, command):
    """As a user runs it (a process of its own, which exits as the shell sees it), for another
    program's database and for a text file at the store's path."""
    store = work / "runs" / "tiny.db"
    for make, said in ((_foreign_database, "is not a run store of this tool"),
                       (_text_file, "is damaged or not a run store")):  # fmt: skip
        make(store)
        digest = _digest(store)
        _refused_once(study_cli(*command, "tiny.yaml", cwd=work), said)
        _left_alone(store, digest)
        store.unlink()


@pytest.mark.parametrize("command", [["status"], ["report"], ["run"]], ids=lambda c: c[0])
def test_a_text_file_at_the_store_path_is_refused_and_left_as_it_was(work, study_here, command):
    store = work / "runs" / "tiny.db"
    _text_file(store)
    digest = _digest(store)
    _refused_once(study_here(*command, "tiny.yaml", cwd=work), "is damaged or not a run store")
    _left_alone(store, digest)


@pytest.mark.parametrize("command", [["status"], ["export"], ["run"]], ids=lambda c: c[0])
def test_a_folder_where_the_store_file_should_be_is_named_a_folder(work, study_here, command):
    folder = work / "runs" / "tiny.db"
    folder.mkdir(parents=True)
    (folder / "keep.txt").write_text("mine\n")
    shown = study_here(*command, "tiny.yaml", cwd=work)
    _refused_once(shown, "is a folder, not a file")
    assert "permission" not in shown.stderr
    assert sorted(p.name for p in folder.parent.iterdir()) == ["tiny.db"]  # no tiny.db.lock
    assert [p.name for p in folder.iterdir()] == ["keep.txt"]


def test_a_store_of_ours_still_opens_and_leaves_no_journal_files(tmp_path):
    """The read-only look comes first and makes no file: a store of this tool opens as before,
    and once closed only its file is left."""
    from orchestrator.store import RunStore

    url = f"sqlite:///{tmp_path / 'runs' / 'st.db'}"
    RunStore.open(url).close()
    with RunStore.open(url, create=False):
        pass
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["st.db"]


def test_an_empty_file_at_the_store_path_becomes_the_store(tmp_path):
    """A file of no bytes is an empty SQLite database: a run makes its store there, as before."""
    from orchestrator.store import RunStore, run_lock

    path = tmp_path / "runs" / "st.db"
    path.parent.mkdir()
    path.touch()
    url = f"sqlite:///{path}"
    with run_lock(url), RunStore.open(url):
        pass
    assert path.stat().st_size > 0
    shutil.rmtree(path.parent)
