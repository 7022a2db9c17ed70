"""A folder written whole or not at all: built beside its place under a temporary name, then
renamed into it in one step; removed if writing it fails."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def whole_folder(out: Path, taken_ok: bool = False) -> Iterator[Path]:
    """A folder to write into that becomes `out` when the block ends, or is removed if it
    fails. With `taken_ok`, an `out` that another process made meanwhile is kept (its files
    are the same) and this one dropped; else that is an OSError."""
    out.parent.mkdir(parents=True, exist_ok=True)
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
