"""Malformed study files through `study run`: one clear message naming the file, the field and
the line; exit status 2; no traceback; no store, report or checkpoint written."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app

VALID = """\
name: bad
architectures: [decoder]
sizes: [25K, 100K]
budget: {tokens: 600K}
"""


def _replace(old: str, new: str) -> str:
    assert old in VALID
    return VALID.replace(old, new)


# (study text, what the message must say); {f} stands for the study file's path.
LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 10) + "]\n"
    for i in range(8)
)  # nine levels of ten aliases each: 10^9 values from 1 KB ("billion laughs")

CASES = [
    # counts and seeds a store cannot keep, or torch cannot seed with
    (_replace("600K", "1e400"), "{f}:4: budget.tokens[0]: '1e400' is not a finite count"),
    (_replace("600K", ".inf"), "{f}:4: budget.tokens[0]: inf is not a finite count"),
    (_replace("600K", "10000000000000000000"), "beyond the largest count a store keeps"),
    (VALID + "seeds: [-1]\n", "{f}:5: seeds[0]: Input should be greater than or equal to 0"),
    (VALID + "seeds: [2147483648]\n", "{f}:5: seeds[0]: Input should be less than 2147483648"),
    (VALID + "data: {split_seed: -3}\n", "{f}:5: data.split_seed: Input should be greater"),
    (VALID + "eval: {zero_shot: {seed: -1}}\n", "{f}:5: eval.zero_shot.seed: Input should be"),
    (_replace("name: bad", "name: " + "x" * 150), "{f}:1: name: String should have at most 100"),
    (
        _replace("[25K, 100K]", "[{n_layer: 1, n_embd: 32, n_head: 2, name: " + "w" * 41 + "}]"),
        "{f}:3: sizes[0].name: String should have at most 40 characters",
    ),
    # files that would take the machine: aliases expanding to billions, megabytes of keys
    (LAUGHS + VALID, "{f}: its aliases (*name) expand to more than 100,000 values"),
    (VALID + "x: [" + "1, " * 100_001 + "]\n", "{f}: it holds more than 100,000 values"),
    (VALID + "x: " + "[" * 2000 + "]" * 2000 + "\n", "{f}: nested too deeply to read"),
    (_replace("600K", "1" + "0" * 400), "{f}:4: budget.tokens[0]: 1000"),
    (VALID + "#" * 1_000_001 + "\n", "{f}: 1,000,079 characters: a study file is at most"),
    (VALID + "".join(f"k{i}: 1\n" for i in range(5000)), "... and 4,980 more errors"),
    # YAML syntax
    ("name: bad\nsizes: [25K, 100K\nbudget: {tokens: 1M}\n", "{f}:3: not valid YAML"),
    ("name: bad\n  sizes: [25K]\n", "{f}:2: not valid YAML"),
    ("name: bad\n\tsizes: [25K]\n", "not valid YAML"),
    ("name: 'bad\n", "{f}:2: not valid YAML: found unexpected end of stream"),
    ("", "{f}: a study file is a mapping"),
    ("- a\n- list\n", "{f}: a study file is a mapping"),
    # unknown keys
    (VALID + "sezes: [1M]\n", "{f}:5: sezes: unknown field; did you mean `sizes`?"),
    (VALID + "train: {learning_rate: 0.001}\n", "{f}:5: train.learning_rate: unknown field"),
    (
        VALID + "eval: {zero_shot: {taks: []}}\n",
        "{f}:5: eval.zero_shot.taks: unknown field; did you mean `tasks`?",
    ),
    (VALID + "data: {seqlen: 64}\n", "{f}:5: data.seqlen: unknown field; did you mean `seq_len`?"),
    # keys given twice: a YAML loader keeps the last one silently
    (VALID + "sizes: [1M]\n", "{f}:5: sizes: key given twice (lines 3 and 5): give it once"),
    (
        VALID + "train:\n  lr: 1.0e-3\n  warmup: 0.1\n  lr: 2.0e-3\n",
        "{f}:8: train.lr: key given twice (lines 6 and 8)",
    ),
    (
        _replace("[25K, 100K]", "[{n_layer: 1, n_embd: 32, n_head: 2, n_layer: 2}]"),
        "{f}:3: sizes[0].n_layer: key given twice (lines 3 and 3)",
    ),
    # missing fields
    (
        "architectures: [decoder]\nsizes: [25K]\nbudget: {tokens: 1M}\n",
        "{f}:1: name: Field required",
    ),
    ("name: bad\narchitectures: [decoder]\nsizes: [25K]\n", "budget: Field required"),
    # Python objects: the safe loader builds none of them
    (
        VALID + "storage: !!python/object/apply:os.system ['touch code-ran']\n",
        "{f}:5: not valid YAML: could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/object/apply:os.system'",
    ),
    # wrong types
    (_replace("name: bad", "name: [1, 2]"), "{f}:1: name: Input should be a valid string"),
    (VALID + "seeds: [zero]\n", "{f}:5: seeds[0]: Input should be a valid integer"),
    (VALID + "train: {batch_size: 1.5}\n", "{f}:5: train.batch_size"),
    (VALID + "resources: {cpus_per_trial: two}\n", "{f}:5: resources.cpus_per_trial"),
    (VALID + "storage: [a, b]\n", "{f}:5: storage: Input should be a valid string"),
    # negative, zero or impossible numbers
    (_replace("[25K, 100K]", "[-5K]"), "{f}:3: sizes"),
    (_replace("[25K, 100K]", "[0]"), "{f}:3: sizes"),
    (_replace("600K", "0"), "{f}:4: budget.tokens[0]"),
    (_replace("600K", "-1M"), "{f}:4: budget.tokens[0]"),
    (VALID + "train: {lr: 0}\n", "{f}:5: train.lr: Input should be greater than 0"),
    (VALID + "train: {warmup: 1.5}\n", "{f}:5: train.warmup"),
    (VALID + "data: {seq_len: 0}\n", "{f}:5: data.seq_len"),
    (VALID + "eval: {zero_shot: {items: 0}}\n", "{f}:5: eval.zero_shot.items"),
    (VALID + "resources: {max_retries: -1}\n", "{f}:5: resources.max_retries"),
    (VALID + "resources: {gpus_per_trial: -1}\n", "{f}:5: resources.gpus_per_trial"),
    (VALID + "resources: {gpus_per_trial: 1.5}\n", "1.5 GPUs: a trial takes a fraction"),
    (
        VALID + "resources: {gpus_per_trial: [{max_params: 50K, gpus: 1}]}\n",
        "{f}:5: resources.gpus_per_trial: a GPU rule is a list of {{max_params, gpus}} ending",
    ),
    (
        VALID + "resources: {gpus_per_trial: [{max_params: 1M, gpus: 1}, "
        "{max_params: 10K, gpus: 1}, {gpus: 2}]}\n",
        "the max_params of a GPU rule increase",
    ),
    # trials on several workers (Ray Train)
    (VALID + "resources: {workers: 0}\n", "{f}:5: resources.workers: Input should be greater"),
    # valid constants whose results are not: a grid of no trial, a rate that overflows
    (
        _replace("600K", "16K") + "recipe: olmo\n",
        "{f}:4: budget: no trial to train: every cell of sizes × budgets is left out (2); the "
        "first: decoder 25K",
    ),
    (
        VALID + "recipe: {name: porian, lr_ref: {decoder: 1e308}}\n",
        "{f}:5: recipe: decoder-25K-s0's learning rate comes to inf",
    ),
    (
        VALID + "resources: {micro_batch: 0}\n",
        "{f}:5: resources.micro_batch: Input should be greater than or equal to 1",
    ),
    (
        VALID + "resources: {strategy: zero}\n",
        "{f}:5: resources.strategy: Input should be 'ddp' or 'fsdp'",
    ),
    (
        VALID + "resources: {workers: 2, gpus_per_worker: 0.5}\n",
        "{f}:5: resources.gpus_per_worker: a trial on 2 workers takes whole GPUs per worker",
    ),
    (
        VALID + "resources: {cpus_per_trial: 2, cpus_per_worker: 2}\n",
        "{f}:5: resources.cpus_per_worker: give cpus_per_trial or cpus_per_worker, not both",
    ),
    (
        VALID + "resources: {workers: [{max_params: 50K, workers: 1}]}\n",
        "{f}:5: resources.workers: a workers rule is a list of {{max_params, workers}} ending",
    ),
    (
        VALID + "resources: {workers: [{max_params: 50K, workers: 1}, {workers: 3}]}\n",
        "{f}:5: resources.workers: decoder-100K-s0's batch of 16 sequences does not split over "
        "3 workers",
    ),
    # shapes and budgets that cannot work
    (
        _replace("{tokens: 600K}", "{tokens: 600K, chinchilla: 1}"),
        "{f}:4: budget: give tokens (counts for every size) or chinchilla",
    ),
    (_replace("{tokens: 600K}", "{}"), "{f}:4: budget: give tokens"),
    (
        _replace("{tokens: 600K}", "{chinchilla: 0.001}"),
        "{f}:4: budget.chinchilla[0]: 0.001x Chinchilla for decoder 25K, 509 tokens, is less than one batch",
    ),
    (
        _replace("25K, 100K", "{n_layer: 2, n_embd: 30, n_head: 4}"),
        "{f}:3: sizes[0]: n_embd=30 is not divisible by n_head=4",
    ),
    (_replace("600K", "1000"), "{f}:4: budget.tokens[0]: 1,000 tokens is less than one batch"),
    (
        _replace("600K", "1M") + "train: {batch_size: 1}\ndata: {seq_len: 100000}\n",
        "too few for sequences of 100001",
    ),
    (
        _replace("[decoder]", "[encdec]") + "data: {seq_len: 4096}\n",
        "{f}:2: architectures: encdec at data.seq_len=4096",
    ),
    # unknown names
    (_replace("[decoder]", "[decoder, mamba]"), "{f}:2: architectures: unknown architecture"),
    (_replace("25K, 100K", "7M"), "{f}:3: sizes: size '7M' is not in the decoder ladder"),
    (VALID + "data: {corpus: 'builtin:nope'}\n", "unknown built-in corpus 'builtin:nope'"),
    (VALID + "eval: {zero_shot: {tasks: [riddles]}}\n", "{f}:5: eval.zero_shot.tasks[0]"),
    (_replace("name: bad", "name: a/b"), "{f}:1: name: String should match pattern"),
    # FLOP budgets
    (
        _replace("{tokens: 600K}", "{flops: []}"),
        "{f}:4: budget.flops: Value should have at least 1 item",
    ),
    (
        _replace("{tokens: 600K}", "{flops: [-1e12]}"),
        "{f}:4: budget.flops[0]: '-1e12' is not a count",
    ),
    (_replace("{tokens: 600K}", "{flops: lots}"), "{f}:4: budget.flops[0]: 'lots' is not a count"),
    (_replace("{tokens: 600K}", "{flops: [1e12, 1T]}"), "{f}:4: budget: duplicate budgets"),
    (_replace("{tokens: 600K}", "{flops: 1e12, tokens: 1M}"), "{f}:4: budget: give tokens"),
    (
        _replace("{tokens: 600K}", "{flops: [1e12, 1e3]}"),
        "{f}:4: budget.flops[1]: no size of the study can spend 1e3 FLOPs: decoder 25K at 1e3 FLOPs: fewer tokens than one batch (4,096) (and 1 more)",
    ),
    (
        _replace("{tokens: 600K}", "{flops: [1e18]}"),
        "{f}:4: budget.flops[0]: no size of the study can spend 1e18 FLOPs: decoder 25K at 1e18 FLOPs: ",
    ),
    (
        _replace("{tokens: 600K}", "{flops: [1e12, 1.2e12]}"),
        "{f}:4: budget: FLOP budgets 1e+12 and 1.2e+12 are less than 1.35x apart",
    ),
    # predictions
    (VALID + "predict: {flops: []}\n", "{f}:5: predict.flops: List should have at least 1 item"),
    (VALID + "predict: {flops: [1e13, lots]}\n", "{f}:5: predict.flops[1]: 'lots' is not a count"),
    (VALID + "predict: {flops: [1e13, 10T]}\n", "{f}:5: predict.flops: duplicate budgets"),
    (VALID + "predict: {tokens: 1e13}\n", "{f}:5: predict.tokens: unknown field"),
    (
        _replace("{tokens: 600K}", "{flops: [1e12, 3e12]}") + "predict:\n  flops: [1e13, 2e12]\n",
        "{f}:6: predict.flops[1]: 2e12 FLOPs is not beyond the grid (its largest budget is 3e12)",
    ),
    # recipes (orchestrator/rulesets.py) and learning-rate sweeps as multiples
    (VALID + "recipe: olmoo\n", "{f}:5: recipe.name: Input should be 'olmo', 'porian'"),
    (VALID + "recipe: {name: olmo, lr_ref: -1}\n", "{f}:5: recipe.lr_ref: Input should be greater"),
    (VALID + "recipe: {name: porian, batch_ref: 0}\n", "{f}:5: recipe.batch_ref: 0 is not a posi"),
    (VALID + "recipe: {name: olmo, lr_coef: 0.3}\n", "{f}:5: recipe: lr_coef is not a constant of"),
    (VALID + "recipe: {name: fixed, lr_scale: 2}\n", "{f}:5: recipe: lr_scale is not a constant"),
    (VALID + "train: {lr: {sweep: 0.5}}\n", "{f}:5: train.lr.sweep: a sweep is a list of positive"),
    (VALID + "train: {lr: {sweep: [1, -2]}}\n", "{f}:5: train.lr.sweep[1]: Input should be greater"),
    (VALID + "train: {lr: {sweep: [a, b]}}\n", "{f}:5: train.lr.sweep: a sweep is a list of posit"),
    (VALID + "recipe: olmo\ntrain: {lr: 0.001}\n", "{f}:6: train.lr: conflicts with recipe: olmo"),
    (VALID + "recipe: deepseek\ntrain: {batch_size: 8}\n", "{f}:6: train.batch_size: conflicts"),
    # one run for many budgets (orchestrator.branches)
    (
        _replace("{tokens: 600K}", "{tokens: [600K], from_one_run: true}")
        + "train: {schedule: wsd}\n",
        "{f}:4: budget.from_one_run: one run for many budgets needs two budgets or more",
    ),
    (
        _replace("{tokens: 600K}", "{tokens: [300K, 600K], from_one_run: true}"),
        "{f}:4: budget.from_one_run: needs train.schedule wsd",
    ),
    (
        _replace("{tokens: 600K}", "{tokens: [20K, 600K], from_one_run: true}")
        + "train: {schedule: wsd, warmup: 0.2}\n",
        "{f}:4: budget.from_one_run: decoder-25K-20Ktok-s0's cooldown would start at step 4, "
        "inside the warmup (29 steps)",
    ),
    # missing files
    (VALID + "data: {corpus: 'nowhere/*.txt'}\n", "data.corpus.path: no file matches"),
    (VALID + "data: {tokenizer: missing.json}\n", "tokenizer 'missing.json' is neither bytes"),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_a_malformed_study_gets_one_clear_message_and_exit_2(tmp_path, monkeypatch, text, expected):
    monkeypatch.chdir(tmp_path)
    study = tmp_path / "study.yaml"
    study.write_text(text)
    result = CliRunner().invoke(app, ["run", str(study)])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert expected.format(f=study) in result.output
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "artifacts") == ["study.yaml"]
    assert not (tmp_path / "artifacts" / "bad").exists()  # no checkpoints


def test_there_are_at_least_thirty():
    assert len(CASES) >= 30


def test_a_study_file_that_is_not_utf8(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "latin.yaml").write_bytes(VALID.encode() + b"storage: caf\xe9\n")
    result = CliRunner().invoke(app, ["run", "latin.yaml"])
    assert result.exit_code == 2
    assert "latin.yaml:5: not UTF-8 text (byte 0xe9): save the study file as UTF-8" in (
        result.output
    )
    assert not (tmp_path / "runs").exists()


def test_a_missing_study_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["run", str(tmp_path / "absent.yaml")])
    assert result.exit_code == 2 and "cannot read the study file" in result.output
    assert list(tmp_path.iterdir()) == []


def _run(tmp_path, text: str):
    study = tmp_path / "study.yaml"
    study.write_text(VALID + text)
    result = CliRunner().invoke(app, ["run", str(study)])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    return result.output


def test_a_word_level_tokenizer_without_unk_names_the_file_and_the_fix(tmp_path, monkeypatch):
    from tokenizers import Tokenizer, models, pre_tokenizers

    monkeypatch.chdir(tmp_path)
    tok = Tokenizer(models.WordLevel(vocab={"the": 0, "and": 1}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "words.json"))
    said = _run(tmp_path, "data: {corpus: 'builtin:kjv', tokenizer: words.json}\n")
    path = tmp_path / "words.json"
    assert f"the tokenizer {path} cannot encode the corpus (WordLevel error: Missing [UNK]" in said
    assert "add the [UNK] token to its vocabulary" in said
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.yaml", "words.json"]


def test_one_text_file_says_how_documents_are_split(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "book.txt").write_text("In the beginning.\n\nAnd the earth.\n" * 50)
    said = _run(tmp_path, "data: {corpus: book.txt}\n")
    assert "1 documents are too few" in said and "data.corpus.blank_lines splits it" in said


def test_a_full_disk_while_writing_the_token_files_leaves_no_partial_cache(tmp_path, monkeypatch):
    import errno

    import trainers.data

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(trainers.data.np, "save", full)
    said = _run(tmp_path, f"storage: {tmp_path / 'artifacts'}\n")
    assert "no space left on device writing the token files under" in said
    cache = tmp_path / "artifacts" / "cache"
    assert not cache.exists() or list(cache.iterdir()) == []  # no half-written folder
    assert not (tmp_path / "runs").exists()


def test_a_store_in_a_folder_that_cannot_be_written_is_one_line(tmp_path, sqlite_store):
    """An immutable folder (chattr +i: even root cannot write in it): SQLite cannot open the
    store beside its journal, and says which store and what to do."""
    import shutil
    import subprocess

    store = sqlite_store
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed")
    from orchestrator.store import open_store

    open_store(store).dispose()
    folder = tmp_path / "runs"
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode:
        pytest.skip("this file system cannot make a folder immutable")
    try:
        for name in ("st.db-wal", "st.db-shm"):
            assert not (folder / name).exists()
        result = CliRunner().invoke(app, ["status", "--store", store])
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "cannot be opened for writing" in result.output
    assert "give it and its folder write permission" in result.output


OPTIMIZER = [  # issue 35: each passed `plan` and failed every trial (DivergenceError, torch)
    ("train: {lr: .inf}", "train.lr: Input should be a finite number"),
    ("train: {lr: .nan}", "train.lr: Input should be a finite number"),
    ("train: {lr: -0.001}", "train.lr: Input should be greater than 0"),
    ("train: {lr: [0.001, .inf]}", "train.lr[1]: Input should be a finite number"),
    ("train: {lr: {exponent: .inf}}", "train.lr.exponent: Input should be a finite number"),
    ("train: {lr: {sweep: [1, .nan]}}", "train.lr.sweep: a sweep is a list of positive numbers"),
    ("train: {betas: [1.5, 0.95]}", "train.betas[0]: Input should be less than 1"),
    ("train: {betas: [0.9, -2]}", "train.betas[1]: Input should be greater than or equal to 0"),
    ("train: {betas: [0.9, .nan]}", "train.betas[1]: Input should be a finite number"),
    ("train: {weight_decay: .inf}", "train.weight_decay: Input should be a finite number"),
    ("train: {weight_decay: -0.1}", "train.weight_decay: Input should be greater than or equal"),
    ("train: {grad_clip: .nan}", "train.grad_clip: Input should be a finite number"),
    ("train: {grad_clip: 0}", "train.grad_clip: Input should be greater than 0"),
    ("train: {warmup: 1.5}", "train.warmup: Input should be less than 1"),
    ("train: {warmup: .nan}", "train.warmup: Input should be a finite number"),
    ("train: {min_lr_ratio: .inf}", "train.min_lr_ratio: Input should be a finite number"),
    ("train: {dropout: .nan}", "train.dropout: Input should be a finite number"),
    ("train: {schedule: {name: wsd, cooldown: .nan}}", "train.schedule.cooldown: Input should"),
    ("recipe: {name: olmo, lr_ref: .inf}", "recipe.lr_ref: Input should be a finite number"),
    ("recipe: {name: fixed, lr_scale: .nan}", "recipe.lr_scale: Input should be a finite number"),
    ("recipe: {name: olmo, beta2_small: 1.5}", "recipe.beta2_small: Input should be less than 1"),
    ("data: {max_epochs: .inf}", "data.max_epochs: Input should be a finite number"),
    ("resources: {gpus_per_trial: .inf}", "resources.gpus_per_trial: Input should be a finite"),
]


@pytest.mark.parametrize(("line", "expected"), OPTIMIZER)
def test_a_non_finite_or_out_of_range_optimizer_field_is_refused_by_plan(
    tmp_path, monkeypatch, line, expected
):
    monkeypatch.chdir(tmp_path)
    study = tmp_path / "study.yaml"
    study.write_text(VALID + line + "\n")
    result = CliRunner().invoke(app, ["plan", str(study)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert f"{study}:5: {expected}" in result.output
