"""Where outputs go: every path a command writes (`report --out`, `export --out`, `run
--report`, a study's storage) is checked here before anything is written, and a failed write
is one line naming the path and the reason.

A file path that exists and is not a regular file (a device, a FIFO, a socket, a folder) is
refused, a symbolic link is followed only to a regular file, and an existing file is
overwritten only where the command allows it (`force`). A folder to export into must not exist.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from orchestrator.spec import StudyError
from trainers.folders import whole_folder, write_whole

FULL = (errno.ENOSPC, errno.EDQUOT)  # a full disk is exit 1 (try again with room), not 2


class OutputError(StudyError):
    """A place that cannot be written; `code` is the exit status (1 for a full disk, else 2)."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


def _kind(mode: int) -> str:
    """What a path is, in words."""
    kinds = [(stat.S_ISREG, "a file"), (stat.S_ISDIR, "a folder"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")]  # fmt: skip
    return next((word for test, word in kinds if test(mode)), "not a regular file")


def check_output_file(path: str | Path, *, force: bool = False) -> Path:
    """The file to write for an output `path`, checked before anything is written: a path
    that exists must be a regular file (a link is followed to one) and, without `force`, is
    refused. Raises OutputError naming the path and why."""
    path = Path(path)
    try:
        target = path.resolve() if path.is_symlink() else path
    except RuntimeError:  # a link that leads back to itself
        raise OutputError(f"{path} is a link in a loop: give a regular file's path") from None
    if path.is_symlink() and not target.is_file():
        what = _kind(target.stat().st_mode) if target.exists() else "nothing"
        raise OutputError(f"{path} is a link to {what} ({target}): give a regular file's path")
    if target.exists():
        mode = target.stat().st_mode
        if not stat.S_ISREG(mode):
            raise OutputError(f"{path} is {_kind(mode)}, not a file: give a file's path "
                              "(nothing was written)")  # fmt: skip
        if not force:
            raise OutputError(f"{path} exists: give --force to overwrite it")
    _check_parent(target)
    return target


def check_output_dir(path: str | Path) -> Path:
    """A folder to export into, checked before anything is written: it must not exist (nothing
    is overwritten) and its parent must be a folder. Raises OutputError."""
    path = Path(path)
    if os.path.lexists(path):
        raise OutputError(f"--out {path} exists: give a new folder (nothing is overwritten)")
    _check_parent(path)
    return path


def _check_parent(path: Path) -> None:
    """The nearest existing folder above `path` must be a folder."""
    above = next(p for p in path.absolute().parents if p.exists())
    if not above.is_dir():
        raise OutputError(f"{path}: {above} is {_kind(above.stat().st_mode)}, not a folder")


def check_writable(folder: str | Path, hint: str) -> None:
    """Raise OutputError, ending with `hint` (where to point the output instead), if `folder`
    (or, where it does not exist yet, the nearest folder above it) cannot be written: a
    folder is made there and removed again, so read-only mounts and permissions both show."""
    folder = Path(folder).absolute()
    above = next(p for p in (folder, *folder.parents) if p.exists())
    with output_errors(folder, f": {hint}"):
        os.rmdir(tempfile.mkdtemp(prefix=".study-check.", dir=above))


@contextlib.contextmanager
def output_errors(path: str | Path, hint: str = "") -> Iterator[None]:
    """An OSError inside the block (a full disk, a read-only mount, no permission) as an
    OutputError naming `path` and the reason."""
    try:
        yield
    except OSError as e:
        reason = e.strerror or str(e)
        code = 1 if e.errno in FULL else 2
        raise OutputError(f"cannot write {path}: {reason}{hint}", code) from None


def write_output(path: str | Path, text: str, *, force: bool = False) -> Path:
    """Write `text` (ended by a newline) to the output file `path`, checked as
    `check_output_file` checks it, whole or not at all; returns the file written."""
    target = check_output_file(path, force=force)
    with output_errors(path):
        write_whole(target, text if text.endswith("\n") else text + "\n")
    return target


@contextlib.contextmanager
def output_folder(path: Path) -> Iterator[Path]:
    """`whole_folder` for an export folder: a failure to write it is an OutputError."""
    with output_errors(path), whole_folder(path) as building:
        yield building


def check_run_outputs(storage: str, store_file: Path | None, report: Path) -> None:
    """Before a run writes anything: its storage, its store's folder and its report's folder
    can be written, and its report path is a file's. Raises OutputError naming the first
    that cannot be, and how to point it elsewhere."""
    check_output_file(report, force=True)
    places = [(storage, "set `storage:` in the study file to a folder you can write"),
              (store_file and store_file.parent, "give --store a URL elsewhere, e.g. "
               "sqlite:////tmp/NAME.db"),
              (report.parent, "give --report a path elsewhere")]  # fmt: skip
    for folder, hint in places:
        if folder:
            check_writable(folder, hint)
