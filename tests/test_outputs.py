"""Where outputs go (issue 35, items 1-5): a path that is not a regular file (a FIFO stands for
a device), a folder where a file is meant, an existing file without --force, a full disk and
a read-only place each end in one line, with no temporary file and no half-written folder
left behind; `study plan` works from a read-only folder, and `study run` says which folder it
cannot write."""

from __future__ import annotations

import errno
import io
import os
import shutil
import stat

import pytest
from sqlalchemy.orm import Session

from orchestrator.outputs import OutputError, check_output_dir, check_output_file, output_folder
from tests.conftest import ASSETS


def _left(folder) -> list[str]:
    """Every name under `folder`, so that a test sees what a failure left behind."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if "st.db" not in p.name)


def _one_line(result, code: int) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    return result.stderr.strip()


@pytest.fixture
def read_only(monkeypatch):
    """Makes a folder (made if need be) read-only: mode 0o555, and where that does not stop writes (as root), a
    read-only mount simulated: making a folder, or opening a file to write, under it fails
    with EROFS, as on a read-only mount."""
    folders = []

    def make(folder):
        folder.mkdir(exist_ok=True)
        folder.chmod(0o555)
        folders.append(folder)
        try:
            (folder / ".probe").mkdir()
        except PermissionError:
            return folder  # the mode is enough
        (folder / ".probe").rmdir()
        _simulate_read_only(monkeypatch, folder)
        return folder

    yield make
    for folder in folders:
        folder.chmod(0o755)  # tmp_path is removed afterwards


def _simulate_read_only(monkeypatch, folder) -> None:
    root = str(folder.resolve())

    def under(path) -> bool:
        return os.path.abspath(os.fsdecode(path)).startswith(root)

    def refuse(path):
        raise OSError(errno.EROFS, "Read-only file system", os.fsdecode(path))

    real_mkdir, real_os_open, real_open = os.mkdir, os.open, io.open
    writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT

    def mkdir(path, *args, **kwargs):
        return refuse(path) if under(path) else real_mkdir(path, *args, **kwargs)

    def os_open(path, flags, *args, **kwargs):
        refused = under(path) and flags & writes
        return refuse(path) if refused else real_os_open(path, flags, *args, **kwargs)

    def open_(file, mode="r", *args, **kwargs):
        writing = isinstance(file, str | os.PathLike) and set(mode) & set("wax+")
        return refuse(file) if writing and under(file) else real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(io, "open", open_)
    monkeypatch.setattr("builtins.open", open_)


@pytest.fixture
def registered(tmp_path, monkeypatch):
    """A store holding a registered study (`st`, its trials pending) and the report's fits
    made from a synthetic finished study (no laws fitted, the page left short: they take long,
    and only where the files go is tested here): its URL, and the calls that stored fits."""
    from orchestrator import fitting
    from orchestrator.store import open_store
    from tests import test_report
    from tests.test_store import _registered

    monkeypatch.setattr(test_report, "fit_study", lambda *args, **kwargs: {})  # fits take long
    monkeypatch.setattr(test_report, "study_trends", lambda *args, **kwargs: {})

    url = f"sqlite:///{tmp_path / 'st.db'}"
    with Session(open_store(url)) as session:
        _registered(session)
        session.commit()
    calls = []
    monkeypatch.setattr("analysis.report.write.page_html", lambda *args: "<html></html>\n")
    monkeypatch.setattr(fitting, "fit_and_store",
                        lambda *args: calls.append(args) or test_report.synthetic_view("st"))  # fmt: skip
    return url, calls


@pytest.fixture
def fifo(tmp_path):
    """A FIFO under tmp_path: a path that exists and is not a regular file, as a device is."""
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


def test_report_refuses_a_fifo_a_folder_and_a_link_to_them_before_anything_is_written(
    tmp_path, study_here, registered, fifo
):
    url, calls = registered
    (tmp_path / "adir").mkdir()
    (tmp_path / "link").symlink_to(fifo)
    before = _left(tmp_path)
    for out, what in ((fifo, "a FIFO"), (tmp_path / "adir", "a folder")):
        said = _one_line(study_here("report", "--store", url, "--out", str(out), cwd=tmp_path), 2)
        assert said == (f"error: {out} is {what}, not a file: give a file's path "
                        "(nothing was written)")  # fmt: skip
    said = _one_line(study_here("report", "--store", url, "--out", "link", cwd=tmp_path), 2)
    assert said == f"error: link is a link to a FIFO ({fifo}): give a regular file's path"
    assert stat.S_ISFIFO(fifo.stat().st_mode) and (tmp_path / "link").is_symlink()
    assert _left(tmp_path) == before and calls == []  # no fit stored, no file, no -cards/
    (tmp_path / "reports" / "st.html").mkdir(parents=True)  # the default path: the same
    said = _one_line(study_here("report", "--store", url, cwd=tmp_path), 2)
    assert said.startswith(f"error: {os.path.join('reports', 'st.html')} is a folder, not a file")
    assert calls == []


def test_report_follows_a_link_to_a_regular_file_and_writes_through_it(
    tmp_path, study_here, registered
):
    url, _ = registered
    (tmp_path / "real.html").write_text("old")
    (tmp_path / "link.html").symlink_to(tmp_path / "real.html")
    done = study_here("report", "--store", url, "--out", "link.html", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "link.html").is_symlink() and "<html" in (tmp_path / "real.html").read_text()


def _full_disk(monkeypatch):
    """Every atomic write meets a full disk, as on /dev/full."""
    from trainers import folders

    class Full(io.StringIO):
        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

    def fdopen(handle, *args, **kwargs):
        os.close(handle)
        return Full()

    monkeypatch.setattr(folders.os, "fdopen", fdopen)


def test_a_report_that_meets_a_full_disk_leaves_no_temporary_file_and_no_cards(
    tmp_path, study_here, registered, monkeypatch
):
    url, _ = registered
    _full_disk(monkeypatch)
    before = _left(tmp_path)
    out = tmp_path / "new" / "r.html"
    said = _one_line(study_here("report", "--store", url, "--out", str(out), cwd=tmp_path), 1)
    assert said == f"error: cannot write {out}: No space left on device"
    assert _left(tmp_path) == before  # neither new/, nor .r.html.*, nor r-cards/


def test_export_refuses_a_fifo_a_folder_and_an_existing_file_without_force(
    tmp_path, study_here, registered, fifo
):
    url, _ = registered
    (tmp_path / "adir").mkdir()
    (tmp_path / "old.csv").write_text("kept\n")
    before = _left(tmp_path)
    for out, what in ((fifo, "a FIFO"), (tmp_path / "adir", "a folder")):
        said = _one_line(study_here("export", "--store", url, "--out", str(out), cwd=tmp_path), 2)
        assert said.startswith(f"error: {out} is {what}, not a file")
    said = _one_line(study_here("export", "--store", url, "--out", "old.csv", cwd=tmp_path), 2)
    assert said == "error: old.csv exists: give --force to overwrite it"
    assert (tmp_path / "old.csv").read_text() == "kept\n" and _left(tmp_path) == before
    forced = study_here("export", "--store", url, "--out", "old.csv", "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert (tmp_path / "old.csv").read_text().startswith("trial_id,")
    assert _left(tmp_path) == before  # replaced in place: no temporary file beside it
    assert "--force" in study_here("export", "--help", cwd=tmp_path).stdout


def test_export_to_a_full_disk_is_one_line_exit_1_and_keeps_the_old_file(
    tmp_path, study_here, registered, monkeypatch
):
    url, _ = registered
    (tmp_path / "old.csv").write_text("kept\n")
    before = _left(tmp_path)
    _full_disk(monkeypatch)
    done = study_here("export", "--store", url, "--out", "old.csv", "--force", cwd=tmp_path)
    assert _one_line(done, 1) == "error: cannot write old.csv: No space left on device"
    assert (tmp_path / "old.csv").read_text() == "kept\n" and _left(tmp_path) == before


def test_export_into_a_read_only_folder_is_one_line_exit_2(
    tmp_path, study_here, registered, read_only
):
    url, _ = registered
    ro = read_only(tmp_path / "ro")
    for out in ("ro/x.csv", "ro/sub/x.csv"):
        said = _one_line(study_here("export", "--store", url, "--out", out, cwd=tmp_path), 2)
        assert said in (f"error: cannot write {out}: Read-only file system",
                        f"error: cannot write {out}: Permission denied")  # fmt: skip
    assert _left(ro) == []


def test_an_export_folder_is_new_and_written_whole_or_refused_in_one_line(
    tmp_path, fifo, read_only
):
    (tmp_path / "models").mkdir()
    for taken in (tmp_path / "models", fifo):
        with pytest.raises(OutputError, match="exists: give a new folder"):
            check_output_dir(taken)
    with pytest.raises(OutputError, match=r"pipe is a FIFO, not a folder"):
        check_output_dir(fifo / "models")
    ro = read_only(tmp_path / "ro")
    with pytest.raises(OutputError) as refused, output_folder(ro / "models") as building:
        (building / "x").write_text("never")
    assert refused.value.code == 2 and str(refused.value).startswith(f"cannot write {ro}/models: ")
    assert _left(ro) == []
    with pytest.raises(OutputError), output_folder(tmp_path / "half") as building:
        (building / "one").write_text("written")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert not any(p.name.startswith((".half", "half")) for p in tmp_path.iterdir())


def test_check_output_file_refuses_a_link_to_nothing_and_a_file_under_a_file(tmp_path):
    (tmp_path / "dangling").symlink_to(tmp_path / "absent")
    with pytest.raises(OutputError, match="is a link to nothing"):
        check_output_file(tmp_path / "dangling", force=True)
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    with pytest.raises(OutputError, match="is a link in a loop|is a link to nothing"):
        check_output_file(tmp_path / "loop", force=True)
    (tmp_path / "plain").write_text("")
    with pytest.raises(OutputError, match="plain is a file, not a folder"):
        check_output_file(tmp_path / "plain" / "x.csv")
    assert check_output_file(tmp_path / "new.csv") == tmp_path / "new.csv"


def test_plan_works_from_a_read_only_folder_and_run_says_which_folder_it_cannot_write(
    tmp_path, study_here, read_only
):
    ro = tmp_path / "ro"
    ro.mkdir()
    shutil.copy(ASSETS / "tiny.yaml", ro / "tiny.yaml")  # storage: ./artifacts, under ro
    read_only(ro)
    plan = study_here("plan", "tiny.yaml", cwd=ro)
    assert plan.returncode == 0, plan.stderr
    assert "decoder-25K" in plan.stdout and _left(ro) == ["tiny.yaml"]
    said = _one_line(study_here("run", "tiny.yaml", cwd=ro), 2)
    assert said.startswith(f"error: cannot write {ro.resolve()}/artifacts: ")
    assert said.endswith(": set `storage:` in the study file to a folder you can write")
    assert _left(ro) == ["tiny.yaml"]


def test_a_failed_write_removes_the_folders_it_made_but_not_what_others_wrote(tmp_path):
    from trainers.folders import new_folders

    with pytest.raises(OSError), new_folders(tmp_path / "a" / "b", contents=True) as made:
        (made / "half").write_text("half a card")
        (tmp_path / "a" / "other").write_text("another writer's")  # the live report's, say
        raise OSError(errno.ENOSPC, "No space left on device")
    assert _left(tmp_path) == ["a", "a/other"]
