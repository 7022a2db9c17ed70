"""Files and folders written whole or not at all: built beside their place under a temporary
name (`.<name>.*`), then renamed into it in one step; removed if writing them fails."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def whole_folder(out: Path, taken_ok: bool = False) -> Iterator[Path]:
    """A folder to write into that becomes `out` when the block ends, or is removed if it
    fails. With `taken_ok`, an `out` that another process made meanwhile is kept (its files
    are the same) and this one dropped; else that is an OSError."""
    with new_folders(out.parent):
        building = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            yield building
            building.rename(out)
        except OSError:
            shutil.rmtree(building, ignore_errors=True)
            if not (taken_ok and out.exists()):
                raise
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise


@contextlib.contextmanager
def new_folders(folder: Path, *, contents: bool = False) -> Iterator[Path]:
    """Make `folder` and its missing parents for the block; if the block fails, remove again
    those it made, where empty (with `contents`, `folder` with what the block wrote into it):
    a failed write leaves no empty or half-written folder behind."""
    missing = [p for p in (folder, *folder.parents) if not os.path.lexists(p)]
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield folder
    except BaseException:
        if contents and folder in missing:
            shutil.rmtree(folder, ignore_errors=True)
        for made in missing:  # deepest first; one that another process wrote into stays
            with contextlib.suppress(OSError):
                os.rmdir(made)
        raise


def write_whole(path: Path, text: str) -> None:
    """Write `text` to a file of its own, then rename it to `path`: a reader never sees half
    a file, and two writers (the live report and `study report`) never share one. The file
    of its own is removed if anything fails; a `path` that exists and is not a regular file
    (a device, a FIFO, a folder) is never replaced: that is an OSError."""
    handle, written_to = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(written_to, 0o666 & ~umask)  # as a file written plainly (mkstemp makes it 0600)
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISREG(os.stat(path).st_mode):  # checked by callers; again, at the end
                raise OSError(errno.EEXIST, "exists and is not a regular file", str(path))
        os.replace(written_to, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(written_to)
        raise
