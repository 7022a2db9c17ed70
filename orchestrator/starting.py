"""A study file to start from (`study new NAME`) and the versions `study --version` names."""

from __future__ import annotations

import re
from pathlib import Path

from orchestrator.outputs import OutputError, write_output
from orchestrator.spec.schema import NAME_PATTERN

# The quickstart's study (studies/quickstart.yaml), each field said with its alternatives.
# tests/test_starting.py plans it as written, so an edit that breaks it fails there.
TEMPLATE = """\
# A scaling study: every architecture below at every size, trained on the budget, fitted and
# reported. `study plan NAME.yaml` shows the trials, their cost and the caveats before anything
# trains; `study run NAME.yaml` trains them. Every field is in docs/study-file.md.
name: NAME                 # the store (runs/NAME.db) and the report (reports/NAME.html)
data:
  corpus: builtin:kjv      # builtin:kjv installs with the project; or a path or glob of
                           # .txt/.jsonl/.parquet files, hf:<dataset>, or a mapping
  tokenizer: {bpe: 2048}   # a byte-level BPE trained on the corpus; bytes; or a tokenizer.json
  seq_len: 128             # tokens per training sequence
architectures: [decoder, encoder, encdec]  # any of these: causal LM, masked LM, span corruption
sizes: [10K, 25K, 50K, 100K]  # non-embedding parameters, labels of each ladder (`study plan`
                           # says the shapes); or explicit shapes {n_layer, n_embd, n_head}
budget: {chinchilla: 0.5}  # multiples of 20 tokens per parameter (a list trains each); or
                           # {tokens: 500K} for every size, or {flops: [1e12, 3e12]} (IsoFLOP)
seeds: [0]                 # one trial per seed: [0, 1, 2] to see the spread between seeds
recipe:                    # the batch, lr, warmup and beta2 as rules of N (docs/recipes.md):
  name: porian             # olmo, porian or deepseek; fixed: train: as given below
  lr_ref: {decoder: 7.71e-4, encoder: 5.79e-5, encdec: 8.66e-4}  # lr at 108M parameters, and
  lr_exponent: {decoder: -0.301, encoder: -0.486, encdec: -0.235}  # lr ∝ N^exponent: these
                           # fitted to studies/lr-sweep.yaml by `study fit --law lr`
train:
  schedule: {name: wsd, cooldown: 0.2, shape: 1-sqrt}  # or cosine
eval:
  tokens: 32K              # validation tokens per evaluation
  zero_shot: {items: 200}  # items per task, scored at the end of each trial (default 1000);
                           # tasks: [last_word, next_sentence, minimal_pairs] by default
resources: {cpus_per_trial: 1}  # per trial; gpus_per_trial: 1 on a GPU machine (fractions
                           # share one); workers: 2 trains one trial on two
storage: ./artifacts       # checkpoints and token caches; a path every node sees on a cluster
# next_study: bigger.yaml  # the study the headline names where these sizes show no law
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
    try:  # whole or not at all; a folder, a device or a FIFO of that name is refused
        return write_output(path, TEMPLATE.replace("NAME", name), force=True)
    except OutputError as e:
        raise StartError(str(e)) from None


def versions() -> str:
    """This package's version, with torch's and ray's where they are installed."""
    from importlib.metadata import PackageNotFoundError, version

    def of(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:
            return "not installed"

    return f"study (scaling-study) {of('scaling-study')}, torch {of('torch')}, ray {of('ray')}"
