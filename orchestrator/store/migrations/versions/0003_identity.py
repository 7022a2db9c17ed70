"""One identity per trial: trials are rehashed, their configuration nested, evals keyed.

Release 0.2 hashed a trial's whole flat configuration but its placement, so more zero-shot items
made every trial new. A trial's hash now covers what training computes (model, data, optim,
budget, seed; trainers/trial.py), and its evaluation settings have a key of their own, stored
with each zero-shot result (`evals.eval_key`). This revision rewrites every trial's `config` in
the nested form and its `hash` under the new identity, so a rerun of the study after `study
upgrade` finds every finished trial.

Trials of one cell that 0.2 told apart only by their evaluation settings now share a hash: the
finished one is kept (of several, the one in the latest grid, else the newest), the others'
zero-shot results move to it under their own evaluation key, and the others go (their training
repeated the kept one's).

Revision ID: 0003
Revises: 0002
"""

import hashlib
import json

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# The flat configuration of releases 0.1 and 0.2, field by field, into the nested TrialSpec.
FLAT = {
    "model": {"architecture": "architecture", "n_layer": "n_layer", "n_embd": "n_embd",
              "n_head": "n_head", "dropout": "dropout"},
    "data": {"corpus": "corpus", "tokenizer": "tokenizer", "seq_len": "seq_len",
             "val_fraction": "val_fraction", "heldout_fraction": "heldout_fraction",
             "split_seed": "split_seed", "key": "data_key"},
    "optim": {"batch_size": "batch_size", "lr": "lr", "min_lr_ratio": "min_lr_ratio",
              "warmup": "warmup", "weight_decay": "weight_decay", "grad_clip": "grad_clip",
              "beta1": "beta1", "beta2": "beta2"},
    "budget": {"tokens": "tokens"},
    "eval": {"every_tokens": "eval_every_tokens", "tokens": "eval_tokens",
             "tasks": "zero_shot_tasks", "items": "zero_shot_items", "seed": "zero_shot_seed",
             "at_every_eval": "zero_shot_every_eval", "pll_stride": "pll_stride"},
    "placement": {"cpus": "cpus", "gpus": "gpus", "storage": "storage",
                  "checkpoint_every_tokens": "checkpoint_every_tokens",
                  "peak_flops": "peak_flops", "compile": "compile"},
}  # fmt: skip
TOP = ("study", "trial_id", "size", "seed")
# Fields that releases before 0.2 did not write, at the values those releases used.
MISSING = {"heldout_fraction": 0.02, "pll_stride": 7, "data_key": "", "compile": False}
# The identity of this revision, frozen here (trainers/trial.py may change after it): a field
# at its declared default is left out of the hash and of the evaluation key.
DEFAULTS = {
    "model": {"dropout": 0.0},
    "data": {"key": ""},
    "eval": {"tasks": ["last_word", "next_sentence", "minimal_pairs"], "items": 1000, "seed": 0,
             "at_every_eval": False, "pll_stride": 7},
}  # fmt: skip


def nested(flat: dict) -> dict:
    """A 0.1 or 0.2 configuration in the nested form."""
    flat = MISSING | flat
    out = {k: flat[k] for k in TOP}
    for part, names in FLAT.items():
        out[part] = {new: flat[old] for new, old in names.items() if old in flat}
    return out


def _part(config: dict, part: str) -> dict:
    defaults = DEFAULTS.get(part, {})
    return {k: v for k, v in config[part].items() if k not in defaults or defaults[k] != v}


def _digest(value) -> str:
    blob = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def identity(config: dict) -> tuple[str, str]:
    """The hash (model, data, optim, budget, seed) and the evaluation key of a nested config."""
    parts = [_part(config, p) for p in ("model", "data", "optim", "budget")]
    settings = _part(config, "eval")
    settings.pop("every_tokens", None)  # the cadence: when a trial is scored, not how
    return _digest([*parts, config["seed"]]), _digest([settings])


def _json(value):
    return json.loads(value) if isinstance(value, str) else value


def upgrade() -> None:
    with op.batch_alter_table("evals") as batch:
        batch.add_column(sa.Column("eval_key", sa.String(16), nullable=True))
    with op.batch_alter_table("trials") as batch:
        batch.add_column(sa.Column("eval_key", sa.String(16), nullable=True))
    bind = op.get_bind()
    rows = bind.execute(
        sa.text("SELECT id, study_id, config, status, current FROM trials ORDER BY id")
    ).fetchall()
    cells: dict[tuple, list] = {}
    baseline: dict[int, str] = {}  # per study: the settings of its latest current trial
    for pk, study_id, config, status, current in rows:
        config = nested(_json(config))
        trial_hash, key = identity(config)
        cells.setdefault((study_id, trial_hash), []).append((pk, config, key, status, current))
        bind.execute(
            sa.text("UPDATE evals SET eval_key = :key WHERE trial_pk = :pk"), {"key": key, "pk": pk}
        )
        if current:
            baseline[study_id] = key
    for study_id, key in baseline.items():  # the n-gram baseline was scored with those
        bind.execute(
            sa.text(
                "UPDATE evals SET eval_key = :key WHERE study_id = :study AND trial_pk IS NULL"
            ),
            {"key": key, "study": study_id},
        )
    for (_, trial_hash), members in cells.items():
        rank = lambda m: (m[3] == "finished", bool(m[4]), m[0])  # finished, current, newest
        keep = max(members, key=rank)
        for pk, *_ in members:
            if pk != keep[0]:
                _merge(bind, pk, keep[0])
        update = sa.text(
            "UPDATE trials SET hash = :hash, config = :config, current = :current, "
            "eval_key = :key WHERE id = :pk"
        ).bindparams(sa.bindparam("config", type_=sa.JSON))
        bind.execute(
            update,
            {"hash": trial_hash, "config": keep[1], "key": keep[2],
             "current": any(bool(m[4]) for m in members), "pk": keep[0]},
        )  # fmt: skip


def _merge(bind, pk: int, keep: int) -> None:
    """Fold a trial into the one kept for its cell: its zero-shot results move over, except
    those the kept trial has too (same settings, step, task and metric); then it goes, with
    its metrics (the kept trial's training curve is the same computation)."""
    bind.execute(
        sa.text(
            "DELETE FROM evals WHERE trial_pk = :pk AND EXISTS (SELECT 1 FROM evals AS k "
            "WHERE k.trial_pk = :keep AND k.eval_key = evals.eval_key AND k.step = evals.step "
            "AND k.task = evals.task AND k.metric = evals.metric)"
        ),
        {"pk": pk, "keep": keep},
    )
    bind.execute(
        sa.text("UPDATE evals SET trial_pk = :keep WHERE trial_pk = :pk"), {"keep": keep, "pk": pk}
    )
    bind.execute(sa.text("DELETE FROM metrics WHERE trial_pk = :pk"), {"pk": pk})
    bind.execute(sa.text("DELETE FROM trials WHERE id = :pk"), {"pk": pk})


def downgrade() -> None:
    raise NotImplementedError(
        "the identity of release 0.2 cannot be restored: restore the copy `study upgrade` kept"
    )
