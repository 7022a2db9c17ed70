"""A study file to start from (`study new NAME`) and the versions `study --version` names."""

from __future__ import annotations

import re
from pathlib import Path

from orchestrator.spec.schema import NAME_PATTERN

# The quickstart's study (studies/quickstart.yaml), each field said with its alternatives.
# tests/test_starting.py plans it as written, so an edit that breaks it fails there.
TEMPLATE = """\
# A scaling study: every architecture below at every size, trained on the budget, fitted and
# reported. `study plan NAME.yaml` shows the trials and their cost before anything trains;
# `study run NAME.yaml` trains them. Every field is in docs/study-file.md.
name: NAME                 # the store (runs/NAME.db) and the report (reports/NAME.html)
data:
  corpus: builtin:kjv      # builtin:kjv installs with the project; or a path or glob of
                           # .txt/.jsonl/.parquet files, hf:<dataset>, or a mapping
  tokenizer: bytes         # bytes; {bpe: 4096} to train a byte-level BPE; or a tokenizer.json
  seq_len: 128             # tokens per training sequence
architectures: [decoder, encoder, encdec]  # any of these: causal LM, masked LM, span corruption
sizes: [25K, 100K, 300K, 1M]  # non-embedding parameters, labels of each ladder (`study plan`
                           # says the shapes); or explicit shapes {n_layer, n_embd, n_head}
budget: {tokens: 500K}     # tokens per trial: one count or a list; or {chinchilla: [1, 2]}
                           # (multiples of 20 per parameter), or {flops: [1e12, 3e12]} (IsoFLOP)
seeds: [0]                 # one trial per seed: [0, 1, 2] to see the spread between seeds
recipe: fixed              # fixed: train: as given below; olmo, porian or deepseek: the batch,
                           # lr and warmup as rules of N (docs/recipes.md)
train:
  batch_size: 16           # sequences per step
  # peak lr = base·min(1, (N/at)^-exponent): constant up to 1M parameters, then falling; or
  # one rate for all (lr: 1e-3), or a list to sweep (lr: [1e-3, 3e-3])
  lr: {rule: power, base: {decoder: 3.0e-3, encoder: 1.0e-3, encdec: 2.0e-3},
       at: 1M, exponent: 0.333}
  warmup: 0.05             # fraction of the steps warming up
  schedule: cosine         # cosine; or {name: wsd, cooldown: 0.2, shape: 1-sqrt}
eval:
  every_tokens: 100K       # validation loss every this many tokens (default: a tenth of the budget)
  tokens: 32K              # validation tokens per evaluation
  zero_shot: {items: 100}  # items per task, scored at the end of each trial (default 1000);
                           # tasks: [last_word, next_sentence, minimal_pairs] by default
resources: {cpus_per_trial: 1, gpus_per_trial: 0}  # per trial; gpus_per_trial: 1 on a GPU
                           # machine (fractions share one); workers: 2 trains one trial on two
storage: ./artifacts       # checkpoints and token caches; a path every node sees on a cluster
"""


class StartError(ValueError):
    """A study file that `study new` will not write (a bad name, a file already there)."""


def new_study(name: str, folder: Path, *, force: bool = False) -> Path:
    """Write the commented starting study NAME.yaml into `folder`; its path. Raises StartError
    for a name that cannot name a study, or a file already there unless `force`."""
    name = name.removesuffix(".yaml").removesuffix(".yml")
    if not re.match(NAME_PATTERN, name):
        raise StartError(f"{name!r} cannot name a study: letters, digits, _ . - (a letter or "
                         "digit first)")  # fmt: skip
    path = folder / f"{name}.yaml"
    if path.exists() and not force:
        raise StartError(f"{path.name} exists here; give --force to overwrite it")
    path.write_text(TEMPLATE.replace("NAME", name))
    return path


def versions() -> str:
    """This package's version, with torch's and ray's where they are installed."""
    from importlib.metadata import PackageNotFoundError, version

    def of(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:
            return "not installed"

    return f"study (scaling-study) {of('scaling-study')}, torch {of('torch')}, ray {of('ray')}"
