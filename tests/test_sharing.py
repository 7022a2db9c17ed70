"""Models that leave the tool: the finished trials of a tiny study exported as Hugging Face
folders, loaded with transformers' Auto classes, and compared with our models."""

from __future__ import annotations

import html
import io
import json
import shutil
import sqlite3

import pytest
import torch
import yaml
from rich.console import Console

from orchestrator import api

pytestmark = pytest.mark.slow
transformers = pytest.importorskip("transformers")

from tests.hf_outputs import TEXTS, outputs  # noqa: E402  (after the importorskip)


@pytest.fixture(scope="module")
def exported(ray_session, tmp_path_factory):
    """A tiny study of the three architectures, trained, and its models exported."""
    import os

    folder = tmp_path_factory.mktemp("sharing")
    study = folder / "share.yaml"
    study.write_text(
        "name: share\ndata: {corpus: 'builtin:kjv', tokenizer: bytes, seq_len: 32}\n"
        "architectures: [decoder, encoder, encdec]\nsizes: [25K]\nbudget: {tokens: 16K}\n"
        "train: {batch_size: 8}\neval: {every_tokens: 8K, tokens: 2K, zero_shot: {items: 20}}\n"
        f"resources: {{cpus_per_trial: 1}}\nstorage: {folder / 'artifacts'}\n"
    )
    before = os.getcwd()
    os.chdir(folder)
    try:
        result = api.run_study(study, console=Console(file=io.StringIO()), n_boot=0)
        assert result.failed == []
        folders, notes = api.export_models(study, out=folder / "models")
    finally:
        os.chdir(before)
    return study, folder, {f.name: f for f in folders}, notes


def _ours(study, trial_id):
    """Our model of a trial, with its final weights, and the study's tokenizer."""
    from orchestrator.store import current_trials, get_study, open_store
    from trainers.checkpoint import load_weights, scorable
    from trainers.train import _token_data, build_model

    url = f"sqlite:///{study.parent / 'runs' / 'share.db'}"
    from sqlalchemy.orm import Session

    with Session(open_store(url, create=False)) as session:
        row = next(r for r in current_trials(session, get_study(session)) if r.trial_id == trial_id)
        spec = row.spec
    data = _token_data(spec)
    model = build_model(spec, data.vocab_size)
    load_weights(spec, scorable(spec)[spec.steps], model)
    return model.eval(), data.tokenizer


@pytest.fixture(scope="module", params=["installed", "4.x"])
def loaded(request, exported):
    """What each exported folder gives under the transformers installed (5.x), and under 4.x
    (a child whose path puts the one in STUDY_TEST_TRANSFORMERS4 first; .ci/run installs it)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    _, folder, folders, _ = exported
    if request.param == "installed":
        return {t: outputs(f, t.split("-")[0]) for t, f in folders.items()}
    other = os.environ.get("STUDY_TEST_TRANSFORMERS4")
    if not other:
        if os.environ.get("CI"):
            pytest.fail("STUDY_TEST_TRANSFORMERS4 is not set: .ci/run installs transformers 4.x")
        pytest.skip("no transformers 4.x: set STUDY_TEST_TRANSFORMERS4 to a folder holding one")
    target = folder / "outputs-4.pt"
    env = os.environ | {"PYTHONPATH": os.pathsep.join([other, str(Path(__file__).parents[1])]),
                        "HF_HUB_OFFLINE": "1"}  # fmt: skip
    subprocess.run([sys.executable, str(Path(__file__).with_name("hf_outputs.py")), str(target),
                    *(f"{f}:{t.split('-')[0]}" for t, f in folders.items())],
                   env=env, check=True)  # fmt: skip
    found = torch.load(target, weights_only=True)
    assert {o["version"].split(".")[0] for o in found.values()} == {"4"}
    return found


def test_every_architecture_loads_with_the_auto_classes_and_gives_our_logits(exported, loaded):
    study, _, folders, notes = exported
    assert sorted(folders) == ["decoder-25K-s0", "encdec-25K-s0", "encoder-25K-s0"]
    assert notes == []
    classes = {"decoder": "GPT2LMHeadModel", "encoder": "XLMRobertaXLForMaskedLM",
               "encdec": "BlenderbotForConditionalGeneration"}  # fmt: skip
    for trial_id, folder in folders.items():
        names = sorted(p.name for p in folder.iterdir())
        assert names == ["README.md", "config.json", "generation_config.json",
                         "model.safetensors", "special_tokens_map.json", "tokenizer.json",
                         "tokenizer_config.json"]  # fmt: skip
        ours, tok = _ours(study, trial_id)
        theirs = loaded[trial_id]
        assert theirs["ids"] == [tok.encode(t).tolist() for t in TEXTS]
        assert theirs["specials"] == [tok.pad_id, tok.mask_id, tok.eos_id]
        assert theirs["class"] == classes[trial_id.split("-")[0]]
        mask = theirs["mask"].bool()
        assert (~mask).any()  # the shorter text is padded (on the right)
        with torch.no_grad():
            if trial_id.startswith("encdec"):
                mine = ours(theirs["inputs"], theirs["decoder_inputs"], mask)
                difference = theirs["logits"] - mine
            else:
                difference = theirs["logits"][mask] - ours(theirs["inputs"], mask)[mask]
        assert difference.abs().max().item() <= 1e-5, trial_id


def test_the_card_is_a_hub_model_card_with_every_result(exported):
    study, _, folders, _ = exported
    store = f"sqlite:///{study.parent / 'runs' / 'share.db'}"
    exported_evals = api.export_evals(store=store)
    for trial_id, folder in folders.items():
        text = (folder / "README.md").read_text()
        assert text.startswith("---\n")
        meta = yaml.safe_load(text.split("---\n")[1])
        assert meta["license"] == "mit" and meta["library_name"] == "transformers"
        pipelines = {"decoder": "text-generation", "encoder": "fill-mask",
                     "encdec": "text2text-generation"}  # fmt: skip
        assert meta["pipeline_tag"] == pipelines[trial_id.split("-")[0]]
        assert "corpus:builtin:kjv" in meta["tags"] and "scaling-study" in meta["tags"]
        assert "datasets" not in meta  # a built-in corpus is not a Hub dataset id
        (entry,) = meta["model-index"]
        assert entry["name"] == trial_id
        shown = {(r["dataset"]["type"], m["type"]): m for r in entry["results"]
                 for m in r["metrics"]}  # fmt: skip
        frame = api.status(store=store).set_index("trial_id")
        assert shown[("builtin:kjv", "loss")]["value"] == pytest.approx(frame.val_loss[trial_id])
        mine = exported_evals[exported_evals.trial_id == trial_id]
        final = mine[mine.tokens == mine.tokens.max()]
        assert len(final) >= 9  # three tasks of acc, acc_norm, bpb, margin (and held-out bits)
        for e in final.itertuples():
            metric = shown[(f"share_{e.task}", e.metric)]
            assert metric["value"] == pytest.approx(e.value, abs=1e-6)
            if e.metric in ("acc", "acc_norm"):
                assert metric["args"]["chance"] == pytest.approx(e.chance)
        assert "## Loading" in text and f'from_pretrained("{trial_id}")' in text
        snippet = text.split("```python\n")[1].split("```")[0]
        scope = {}
        exec(snippet.replace(f'"{trial_id}"', repr(str(folder))), scope)  # the card's own code
        assert isinstance(scope["model"], torch.nn.Module)
        if trial_id.startswith("encoder"):  # a masked input, as the card shows it
            assert scope["inputs"].input_ids[0, scope["at"]] == scope["tokenizer"].mask_token_id
        assert (
            "| sequence length | 32 tokens |" in text and "| shape |" in text
        )  # the report's card
        assert "## Intended use and limitations" in text


def test_bad_exports_are_one_clear_line_and_exit_2(exported, study_here):
    study, folder, _, _ = exported
    exists = study_here("export", str(study), "--what", "models", "--out", "models", cwd=folder)
    assert exists.returncode == 2
    assert (
        exists.stderr.strip()
        == "error: --out models exists: give a new folder (nothing is overwritten)"
    )
    nothing = study_here("export", str(study), "--what", "models", "--out", "new",
                        "--trials", "decoder-9M-*", cwd=folder)  # fmt: skip
    assert nothing.returncode == 2 and not (folder / "new").exists()
    assert nothing.stderr.startswith(
        "error: --trials 'decoder-9M-*' matches no trial of study share"
    )
    copy = folder / "runs" / "copy.db"
    shutil.copy(folder / "runs" / "share.db", copy)
    with sqlite3.connect(copy) as db:
        db.execute("UPDATE trials SET status = 'failed' WHERE trial_id = 'decoder-25K-s0'")
    unfinished = study_here("export", "--store", f"sqlite:///{copy}", "--what", "models",
                           "--out", "new", "--trials", "decoder-*", cwd=folder)  # fmt: skip
    assert unfinished.returncode == 2 and not (folder / "new").exists()
    assert "decoder-25K-s0 of --trials 'decoder-*' is not finished (failed)" in unfinished.stderr
    assert len(unfinished.stderr.strip().splitlines()) == 1 and "Traceback" not in unfinished.stderr
    bogus = study_here("export", str(study), "--what", "mlflow", "--to", "bogus://x", cwd=folder)
    assert bogus.returncode == 2 and bogus.stderr.startswith("error: --to bogus://x: ")
    assert "Traceback" not in bogus.stderr
    no_to = study_here("export", str(study), "--what", "mlflow", cwd=folder)
    assert no_to.returncode == 2 and "--what mlflow needs --to URI" in no_to.stderr
    no_out = study_here("export", str(study), "--what", "models", cwd=folder)
    assert no_out.returncode == 2 and "--what models needs --out DIR" in no_out.stderr


def test_a_bpe_tokenizer_exports_with_the_same_ids(tmp_path):
    """The BPE tokenizers of a study (trained on its own text) load with AutoTokenizer and
    give our ids, special-token names in the text included."""
    from trainers.data import load_token_data
    from trainers.hf import tokenizer_files

    data = load_token_data("builtin:kjv", "bpe:400", 0.02, 0.02, 0)
    for name, text in tokenizer_files(data.tokenizer, 64, "decoder").items():
        (tmp_path / name).write_text(text)
    theirs = transformers.AutoTokenizer.from_pretrained(tmp_path)
    long = "In the beginning God created the heaven and the earth. <mask> <extra_id_0>  \n"
    for text in [*TEXTS, long]:
        assert theirs(text)["input_ids"] == data.tokenizer.encode(text).tolist(), text
    assert json.loads((tmp_path / "tokenizer_config.json").read_text())["split_special_tokens"]


def test_lm_eval_scores_an_exported_decoder_on_the_study_items_as_the_store_does(
    exported, monkeypatch
):
    """The study's items as lm-evaluation-harness tasks: lm-eval's accuracy of the exported
    decoder is the store's, item for item (a tie, which the store counts as a half, lm-eval
    gives to the first of the tied candidates)."""
    lm_eval = pytest.importorskip("lm_eval")
    from lm_eval.tasks import TaskManager

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # everything it needs is on this disk
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    study, folder, folders, _ = exported
    store = f"sqlite:///{study.parent / 'runs' / 'share.db'}"
    yamls = api.export_tasks(store=store, out=folder / "tasks")
    names = ["share_last_word", "share_next_sentence", "share_minimal_pairs"]
    assert [p.stem for p in yamls] == names
    evaluated = lm_eval.simple_evaluate(
        model="hf", model_args=f"pretrained={folders['decoder-25K-s0']},dtype=float32",
        tasks=names, task_manager=TaskManager(include_path=str(folder / "tasks")),
        device="cpu", batch_size=16, log_samples=True,
    )  # fmt: skip
    results, samples = evaluated["results"], evaluated["samples"]
    with sqlite3.connect(study.parent / "runs" / "share.db") as db:
        stored = dict(db.execute(
            "SELECT e.task, e.per_item FROM evals e JOIN trials t ON t.id = e.trial_pk "
            "WHERE t.trial_id = 'decoder-25K-s0' AND e.metric = 'acc'"
        ))  # fmt: skip
    for name in names:
        task = name.removeprefix("share_")
        items = [json.loads(line) for line in (folder / "tasks" / f"{name}.jsonl").open()]
        per_item = json.loads(stored[task])
        assert len(per_item) == len(items)
        expected = [
            v if v in (0.0, 1.0) else float(it["choices"].index(it["choices"][it["gold"]])
                                             == it["gold"])
            for v, it in zip(per_item, items, strict=True)
        ]  # fmt: skip
        theirs = [s["acc"] for s in sorted(samples[name], key=lambda s: s["doc_id"])]
        assert theirs == expected, name  # item for item
        assert results[name]["acc,none"] == pytest.approx(sum(expected) / len(expected)), name
    with pytest.raises(Exception, match="exists"):
        api.export_tasks(store=store, out=folder / "tasks")


def test_every_trial_becomes_one_mlflow_run_with_every_metric_point(
    exported, tmp_path, monkeypatch
):
    """MLflow (a local sqlite: tracking store): one run per trial, params, each metric's whole
    history, the final results, the model card; a rerun changes nothing, and a trial whose
    store changed has its run replaced, never doubled."""
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    study, folder, _, _ = exported
    monkeypatch.chdir(tmp_path)  # MLflow keeps a sqlite store's artifacts under ./mlruns
    store_db = tmp_path / "share.db"
    shutil.copy(folder / "runs" / "share.db", store_db)
    store, uri = f"sqlite:///{store_db}", f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = api.export_mlflow(store=store, to=uri)
    assert sorted(t for t, _, _ in first) == ["decoder-25K-s0", "encdec-25K-s0", "encoder-25K-s0"]
    assert {done for _, _, done in first} == {"logged"}
    client = MlflowClient(tracking_uri=uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == "share"]
    with sqlite3.connect(store_db) as db:
        counts = db.execute(
            "SELECT t.trial_id, m.name, COUNT(*) FROM metrics m JOIN trials t ON t.id = m.trial_pk "
            "GROUP BY 1, 2"
        ).fetchall()  # fmt: skip
        val_loss = dict(db.execute("SELECT trial_id, val_loss FROM trials"))
    assert len(counts) == 12  # train_loss, val_loss, lr, tokens_per_s of three trials
    runs = {
        r.data.tags["study.trial_id"]: r for r in client.search_runs([experiment.experiment_id])
    }
    assert len(runs) == 3
    for trial_id, name, n in counts:
        history = client.get_metric_history(runs[trial_id].info.run_id, name)
        assert len(history) == n, (trial_id, name)
    for trial_id, run in runs.items():
        assert run.info.status == "FINISHED" and run.data.params["model.architecture"] in trial_id
        assert run.data.metrics["final.val_loss"] == pytest.approx(val_loss[trial_id])
        assert "final.zeroshot.last_word.acc" in run.data.metrics
        artifacts = [a.path for a in client.list_artifacts(run.info.run_id)]
        assert artifacts == ["model_card.md"]

    again = api.export_mlflow(store=store, to=uri)
    assert {done for _, _, done in again} == {"unchanged"}
    with sqlite3.connect(store_db) as db:  # one trial's history changed in the store
        db.execute("DELETE FROM metrics WHERE name = 'lr' AND trial_pk = "
                   "(SELECT id FROM trials WHERE trial_id = 'decoder-25K-s0') AND step = 1")  # fmt: skip
    changed = {t: done for t, _, done in api.export_mlflow(store=store, to=uri)}
    assert changed == {"decoder-25K-s0": "replaced", "encoder-25K-s0": "unchanged",
                       "encdec-25K-s0": "unchanged"}  # fmt: skip
    live = client.search_runs([experiment.experiment_id])
    assert len(live) == 3 and len({r.data.tags["study.trial_id"] for r in live}) == 3


def test_an_exported_model_scored_as_a_reference_matches_its_trial(exported, tmp_path, monkeypatch):
    """`eval.references`: a causal-LM folder (here one exported from the study, offline) is
    scored on the study's own items once per study, stored like the n-gram floor, and drawn as
    a labelled line in the zero-shot panels and the summary. Our decoder exported and scored
    through transformers gets its own trial's accuracy, item for item."""
    from orchestrator.spec import load_study

    study, folder, folders, _ = exported
    monkeypatch.chdir(folder)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = load_study(study).model_dump(mode="json", exclude_none=True)
    spec["eval"]["references"] = [str(folders["decoder-25K-s0"]), str(folder / "no-such-model")]
    with_ref = folder / "share-ref.yaml"
    with_ref.write_text(yaml.safe_dump(spec))
    console = Console(file=io.StringIO(), width=300)
    result = api.run_study(with_ref, console=console, n_boot=0)
    assert result.ran == []  # the same study: nothing trains for a reference
    said = console.file.getvalue()
    assert "ref:decoder-25K-s0: zero-shot accuracy last_word" in said
    assert "reference " + str(folder / "no-such-model") + " left out" in said  # and it goes on
    evals = api.export_evals(with_ref)
    ref = evals[evals.architecture == "ref:decoder-25K-s0"].set_index(["task", "metric"])
    trial = evals[evals.trial_id == "decoder-25K-s0"]
    trial = trial[trial.tokens == trial.tokens.max()].set_index(["task", "metric"])
    assert len(ref) == 12  # three tasks: acc, acc_norm, bpb, margin
    for key in ref.index:
        assert ref.value[key] == pytest.approx(trial.value[key], abs=1e-6), key
    page = result.report.read_text()
    assert '"name":"reference decoder-25K-s0"' in page
    # the page escapes its text (Jinja2 writes ' as &#39;): read it as a browser does
    assert "reference decoder-25K-s0 on the study's items: last_word" in html.unescape(page)
    again = Console(file=io.StringIO(), width=300)
    api.run_study(with_ref, console=again, n_boot=0)
    assert "scoring the reference " + str(folders["decoder-25K-s0"]) not in again.file.getvalue()


def test_a_tokenizer_files_post_processor_adds_nothing_when_exported(tmp_path):
    """A tokenizer.json with its own [CLS] ... [SEP] template: the study never adds them, and
    neither does the exported tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    from trainers.hf import tokenizer_files
    from trainers.tokenizers import load_tokenizer_file

    vocab = {"[UNK]": 0, "hello": 1, "world": 2, "[CLS]": 5, "[SEP]": 6}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 5), ("[SEP]", 6)]
    )
    tok.save(str(tmp_path / "file.json"))
    ours = load_tokenizer_file(tmp_path / "file.json")
    out = tmp_path / "exported"
    out.mkdir()
    for name, text in tokenizer_files(ours, 64, "decoder").items():
        (out / name).write_text(text)
    theirs = transformers.AutoTokenizer.from_pretrained(out)
    assert theirs("hello world")["input_ids"] == ours.encode("hello world").tolist() == [1, 2]


def test_a_cut_candidate_fits_the_context_even_inside_a_character():
    from orchestrator.sharing import _within
    from trainers.tokenizers import ByteTokenizer

    tok = ByteTokenizer()
    cut = _within(" " + "é" * 100, tok, 128)  # 201 bytes; byte 128 is inside an é
    assert len(tok.encode(cut)) <= 128 and cut == " " + "é" * 63
    assert _within(" short", tok, 128) == " short"
