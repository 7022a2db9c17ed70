"""The data layer: sources, splits, tokenizers, the token cache, and the errors users see."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from orchestrator.spec import parse_study
from trainers.corpora import CorpusError, load_documents
from trainers.data import _load, load_token_data, split_documents
from trainers.tokenizers import load_tokenizer_file, train_bpe


def source(study_text: str) -> str:
    """The corpus string a study's `data` section gives trials."""
    return parse_study(
        "name: t\narchitectures: [decoder]\nsizes: [25K]\nbudget: {tokens: 1M}\n" + study_text
    ).data.corpus_string()


def test_splits_are_by_document_disjoint_and_deterministic():
    docs = load_documents("builtin:kjv")
    assert len(docs) == 1189  # one document per chapter
    splits = split_documents(docs, 0.02, 0.05, seed=0)
    train, val, heldout = (set(splits[k]) for k in ("train", "validation", "heldout"))
    assert train.isdisjoint(val) and train.isdisjoint(heldout) and val.isdisjoint(heldout)
    assert len(splits["train"]) + len(val) + len(heldout) == len(docs)
    assert (len(val), len(heldout)) == (24, 59)
    assert split_documents(docs, 0.02, 0.05, seed=0) == splits
    assert split_documents(docs, 0.02, 0.05, seed=1)["heldout"] != splits["heldout"]
    assert split_documents(docs, 0.02, 0.0, seed=0)["heldout"] == []


def test_too_few_documents_for_the_splits_is_an_error():
    with pytest.raises(CorpusError, match="4 documents are too few"):
        split_documents(("a", "b", "c", "d"), 0.4, 0.4, seed=0)


def test_the_second_builtin_corpus_is_the_standard_library_documentation():
    docs = load_documents("builtin:pydocs")
    assert len(docs) > 100 and sum(map(len, docs)) > 500_000
    assert any("Return" in d for d in docs)


def test_text_files_one_document_per_file_or_split_on_blank_lines(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.txt").write_text("first doc\nline two\n\n\nsecond doc")
    (tmp_path / "b.txt").write_text("third doc")
    assert load_documents(source("data: {corpus: '*.txt'}")) == (
        "first doc\nline two\n\n\nsecond doc",
        "third doc",
    )
    split = source("data: {corpus: {path: '*.txt', blank_lines: 2}}")
    assert load_documents(split) == ("first doc\nline two", "second doc", "third doc")
    one_blank = source("data: {corpus: {path: 'a.txt', blank_lines: 1}}")
    assert len(load_documents(one_blank)) == 2


def test_jsonl_and_parquet_read_the_named_field(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    monkeypatch.chdir(tmp_path)
    lines = [json.dumps({"id": i, "body": f"document {i}"}) for i in range(3)]
    (tmp_path / "d.jsonl").write_text("\n".join(lines) + "\n")
    pq.write_table(pa.table({"body": ["p0", "p1"], "n": [1, 2]}), tmp_path / "d.parquet")
    jsonl = source("data: {corpus: {path: d.jsonl, text_field: body}}")
    assert load_documents(jsonl) == ("document 0", "document 1", "document 2")
    parquet = source("data: {corpus: {path: d.parquet, text_field: body}}")
    assert load_documents(parquet) == ("p0", "p1")
    with pytest.raises(CorpusError, match=r"d.jsonl:1: no text field 'text' \(it has: id, body\)"):
        load_documents(source("data: {corpus: d.jsonl}"))
    with pytest.raises(CorpusError, match=r"d.parquet: no column 'text' \(it has: body, n\)"):
        load_documents(source("data: {corpus: d.parquet}"))


def test_a_hugging_face_dataset_saved_to_disk_loads_by_path(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.chdir(tmp_path)
    rows = {"text": [f"story number {i}" for i in range(5)], "label": list(range(5))}
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_dict(rows), "test": datasets.Dataset.from_dict(rows)}
    ).save_to_disk(str(tmp_path / "saved"))
    docs = load_documents(source("data: {corpus: {hf: saved, split: train, max_documents: 3}}"))
    assert docs == ("story number 0", "story number 1", "story number 2")
    assert len(load_documents(source("data: {corpus: 'hf:saved'}"))) == 5
    with pytest.raises(CorpusError, match="no column 'body'"):
        load_documents(source("data: {corpus: {hf: saved, text_field: body}}"))
    with pytest.raises(CorpusError, match="no split 'validation'"):
        load_documents(source("data: {corpus: {hf: saved, split: validation}}"))


def test_a_hugging_face_builder_streams_local_files(tmp_path, monkeypatch):
    pytest.importorskip("datasets")
    monkeypatch.chdir(tmp_path)
    lines = [json.dumps({"body": f"streamed {i}"}) for i in range(4)]
    (tmp_path / "d.jsonl").write_text("\n".join(lines) + "\n")
    text = "data: {corpus: {hf: json, data_files: d.jsonl, streaming: true, text_field: body}}"
    assert load_documents(source(text)) == tuple(f"streamed {i}" for i in range(4))
    with pytest.raises(CorpusError, match=r"no column 'text' \(it has: body\)"):
        load_documents(source(text.replace(", text_field: body", "")))


def test_an_empty_corpus_is_an_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.txt").write_text("  \n\n")
    with pytest.raises(CorpusError, match="'.*empty.txt' has no text"):
        load_documents(source("data: {corpus: empty.txt}"))


def test_bpe_is_trained_on_the_training_split_and_round_trips_text(tmp_path):
    docs = list(load_documents("builtin:kjv")[:300])
    started = time.perf_counter()
    tok = train_bpe(docs, 2048)
    assert time.perf_counter() - started < 30  # seconds, not minutes (bench/ has the figure)
    assert tok.vocab_size == 2048
    text = "In the beginning God created the heaven and the earth. Ünïcödé ok."
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert len(ids) < len(text.encode()) / 2  # merges compress the text
    assert not tok.is_special(ids).any()
    (tmp_path / "tokenizer.json").write_text(tok.to_json())
    again = load_tokenizer_file(tmp_path / "tokenizer.json")
    assert again.encode(text).tolist() == ids.tolist() and again.vocab_size == 2048


def test_token_files_are_made_once_and_memory_mapped(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.txt").write_text("\n\n".join(f"document {i} " * 50 for i in range(60)))
    corpus = source("data: {corpus: {path: c.txt, blank_lines: 1}}")
    cache = str(tmp_path / "cache")
    args = (corpus, "bpe:400", 0.1, 0.1, 0)
    first = load_token_data(*args, cache)
    folder = tmp_path / "cache" / first.key
    assert sorted(p.name for p in folder.iterdir()) == [
        "heldout.jsonl",
        "heldout.npy",
        "meta.json",
        "tokenizer.json",
        "train.npy",
        "validation.npy",
    ]
    assert first.documents == {"train": 48, "validation": 6, "heldout": 6}
    assert len(open(folder / "heldout.jsonl").readlines()) == 6
    # the text's bytes per split, counted from its documents (tokens per byte: bits per byte)
    docs = split_documents(load_documents(corpus), 0.1, 0.1, 0)
    counted = {k: sum(len(d.encode()) for d in v) for k, v in docs.items()}
    assert first.summary()["bytes"] == counted
    assert json.loads((folder / "meta.json").read_text())["bytes"] == counted
    _load.cache_clear()
    stamp = os.stat(folder / "train.npy").st_mtime_ns
    second = load_token_data(*args, cache)  # another process, or a later run
    assert (
        isinstance(second.train, np.memmap) and os.stat(folder / "train.npy").st_mtime_ns == stamp
    )
    assert np.array_equal(first.train, second.train)
    assert second.summary()["bytes"] == counted
    meta = json.loads((folder / "meta.json").read_text())
    del meta["bytes"]  # a cache written before the bytes were recorded gets them added
    (folder / "meta.json").write_text(json.dumps(meta))
    _load.cache_clear()
    assert load_token_data(*args, cache).summary()["bytes"] == counted
    assert json.loads((folder / "meta.json").read_text())["bytes"] == counted
    _load.cache_clear()
    assert (
        second.tokenizer.encode("document 7").tolist()
        == first.tokenizer.encode("document 7").tolist()
    )
    # a changed corpus or tokenizer gets new token files
    (tmp_path / "c.txt").write_text("\n\n".join(f"changed {i} " * 50 for i in range(60)))
    changed = load_token_data(*args, cache)
    assert changed.key != first.key
    assert changed.tokenizer.decode(changed.train[:20]).startswith("changed")
    assert load_token_data(corpus, "bytes", 0.1, 0.1, 0, cache).key != first.key
    assert len(list((tmp_path / "cache").iterdir())) == 3


def test_a_split_too_small_for_the_sequence_is_an_error():
    data = load_token_data("builtin:kjv", "bytes", 0.001, 0.0, 0)
    with pytest.raises(
        CorpusError, match="validation split of builtin:kjv has .* too few for sequences of 100001"
    ):
        data.check_fits(100_001)


def test_a_bad_corpus_exits_2_naming_the_file_and_field_and_trains_nothing(tmp_path, study_cli):
    (tmp_path / "d.jsonl").write_text('{"body": "x"}\n')
    (tmp_path / "s.yaml").write_text(
        "name: s\ndata: {corpus: d.jsonl, seq_len: 16}\narchitectures: [decoder]\n"
        "sizes: [25K]\nbudget: {tokens: 10K}\n"
    )
    result = study_cli("run", "s.yaml", cwd=tmp_path, timeout=300)
    assert result.returncode == 2
    assert "d.jsonl:1: no text field 'text' (it has: body)" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "runs").exists()


def test_plan_shows_the_splits_and_warns_when_data_repeats(tmp_path, study_cli):
    (tmp_path / "s.yaml").write_text(
        "name: s\ndata: {corpus: 'builtin:kjv', seq_len: 64}\narchitectures: [decoder]\n"
        f"sizes: [25K]\nbudget: {{tokens: [1M, 10M]}}\nstorage: {tmp_path / 'artifacts'}\n"
    )
    result = study_cli("plan", "s.yaml", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    out = " ".join(result.stdout.split())
    assert "train 1,141 documents / 3.98M tokens" in out and "heldout 24 documents" in out
    assert "trials of 10M tokens read the 3.98M-token training split 2.5 times" in out
    assert "trials of 1M tokens" not in out


def test_a_tokenizer_file_with_its_own_specials_and_post_processor(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {"[UNK]": 0, "hello": 1, "world": 2, "<eos>": 3, "[CLS]": 5, "[SEP]": 700}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens(["[CLS]", "[SEP]"])
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 5), ("[SEP]", 700)]
    )
    tok.save(str(tmp_path / "tokenizer.json"))
    loaded = load_tokenizer_file(tmp_path / "tokenizer.json")
    assert loaded.vocab_size > 700  # ids have gaps: the table reaches the largest id
    ids = loaded.encode("hello world")
    assert ids.tolist() == [1, 2]  # no [CLS] ... [SEP] around a document
    assert loaded.is_special(np.array([5, 700, loaded.eos_id, loaded.pad_id])).all()
    assert not np.isin([5, 700], loaded.regular_ids).any()  # never a random replacement
    assert loaded.eos_id == 3  # a token the file already has keeps its id


def test_special_token_names_in_the_text_are_text():
    tok = train_bpe(list(load_documents("builtin:kjv")[:50]), 600)
    ids = tok.encode("the end <eos> <mask> <extra_id_0>")
    assert not tok.is_special(ids).any()
    assert tok.decode(ids) == "the end <eos> <mask> <extra_id_0>"


def test_more_bad_corpora_are_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "n.jsonl").write_text('{"text": "fine"}\n{"text": null}\n')
    with pytest.raises(CorpusError, match="n.jsonl:2: field 'text' holds NoneType, not text"):
        load_documents(source("data: {corpus: n.jsonl}"))
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe text")
    assert load_documents(source("data: {corpus: bad.txt}"))  # undecodable bytes are replaced
    (tmp_path / "bad.jsonl").write_bytes(b'{"text": "\xff"}\n')
    with pytest.raises(CorpusError, match="cannot read the corpus .*bad.jsonl"):
        load_documents(source("data: {corpus: bad.jsonl}"))
    (tmp_path / "folder").mkdir()
    with pytest.raises(CorpusError, match="folder: not a dataset saved with save_to_disk"):
        load_documents(source("data: {corpus: {hf: folder}}"))


def test_a_trial_refuses_token_files_of_a_corpus_that_changed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.txt").write_text("\n\n".join(f"text {i} " * 40 for i in range(40)))
    corpus = source("data: {corpus: {path: c.txt, blank_lines: 1}}")
    planned = load_token_data(corpus, "bytes", 0.1, 0.1, 0)  # no cache folder: memory only
    (tmp_path / "c.txt").write_text("\n\n".join(f"other {i} " * 40 for i in range(40)))
    with pytest.raises(CorpusError, match="changed since the study was planned"):
        load_token_data(corpus, "bytes", 0.1, 0.1, 0, "", key=planned.key)


def test_plan_warns_of_a_tokenizer_that_maps_the_text_to_one_token_and_of_text_not_utf8(
    tmp_path, study_cli
):
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "zebra": 1}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.save(str(tmp_path / "unk.json"))
    texts = tmp_path / "texts"
    texts.mkdir()
    for i in range(40):  # latin-1 files: é as byte 0xe9, not UTF-8
        (texts / f"{i}.txt").write_bytes(
            f"document {i} caf\xe9 and more words ".encode("latin-1") * 20
        )
    (tmp_path / "s.yaml").write_text(
        "name: s\ndata: {corpus: {path: 'texts/*.txt'}, tokenizer: unk.json, seq_len: 16}\n"
        "architectures: [decoder]\nsizes: [25K]\nbudget: {tokens: 16K}\n"
        f"train: {{batch_size: 8}}\nstorage: {tmp_path / 'artifacts'}\n"
    )
    result = study_cli("plan", "s.yaml", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    out = " ".join(result.stdout.split())
    assert "warning: " in out and "of the validation tokens are one token (id 0, '[UNK]')" in out
    assert "holds 800 replacement characters (U+FFFD)" in out and "not hold as UTF-8" in out
