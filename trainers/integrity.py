"""Whether a file of weights is as it was written: its size and SHA-256 (no torch here, so
that `study status` can look without importing it)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_digest(path: Path) -> tuple[int, str]:
    """The size and SHA-256 of a file as it is on disk."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return path.stat().st_size, digest.hexdigest()


def verify_final(path: Path, size: int | None, sha256: str | None, full: bool = True) -> str:
    """Why the final weights at `path` cannot be trusted ("" when they can): gone, another size
    than when they were written, or (with `full`) another checksum."""
    try:
        if not path.exists():
            return f"its final weights are not at {path} (gone, or not seen from this machine)"
        if size is not None and path.stat().st_size != size:
            return (f"its final weights are broken ({path}: {path.stat().st_size} bytes, "
                    f"{size} when written)")  # fmt: skip
        if full and sha256 and file_digest(path)[1] != sha256:
            return f"its final weights are broken ({path}: another checksum than when written)"
    except OSError as e:  # a folder this user may not read
        return f"its final weights cannot be read ({path}: {e.strerror or e})"
    return ""
