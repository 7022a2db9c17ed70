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


def nested(flat: dict) -> dict:
    """A 0.1 or 0.2 configuration in the nested form; fields it lacks take their defaults."""
    out = {k: flat[k] for k in TOP}
    for part, names in FLAT.items():
        out[part] = {new: flat[old] for new, old in names.items() if old in flat}
    return out


def _json(value):
    return json.loads(value) if isinstance(value, str) else value


def upgrade() -> None:
    from trainers.trial import TrialSpec  # the identity this revision moves the store to

    with op.batch_alter_table("evals") as batch:
        batch.add_column(sa.Column("eval_key", sa.String(16), nullable=True))
    bind = op.get_bind()
    rows = bind.execute(
        sa.text("SELECT id, study_id, config, status, current FROM trials ORDER BY id")
    ).fetchall()
    cells: dict[tuple, list] = {}
    for pk, study_id, config, status, current in rows:
        spec = TrialSpec.from_dict(nested(_json(config)))
        cells.setdefault((study_id, spec.hash), []).append((pk, spec, status, bool(current)))
        bind.execute(
            sa.text("UPDATE evals SET eval_key = :key WHERE trial_pk = :pk"),
            {"key": spec.eval_key, "pk": pk},
        )
    # the n-gram baseline was scored with the settings of the study's trials
    for (study_id, _), members in cells.items():
        bind.execute(
            sa.text(
                "UPDATE evals SET eval_key = :key WHERE study_id = :study AND trial_pk IS NULL"
            ),
            {"key": members[0][1].eval_key, "study": study_id},
        )
    for (_, new_hash), members in cells.items():
        rank = lambda m: (m[2] == "finished", m[3], m[0])  # finished, current, newest
        keep = max(members, key=rank)
        for pk, *_ in members:
            if pk == keep[0]:
                continue
            bind.execute(
                sa.text("UPDATE evals SET trial_pk = :keep WHERE trial_pk = :pk"),
                {"keep": keep[0], "pk": pk},
            )
            bind.execute(sa.text("DELETE FROM metrics WHERE trial_pk = :pk"), {"pk": pk})
            bind.execute(sa.text("DELETE FROM trials WHERE id = :pk"), {"pk": pk})
        current = any(m[3] for m in members)
        bind.execute(
            sa.text("UPDATE trials SET hash = :hash, config = :config, current = :current "
                    "WHERE id = :pk"),
            {"hash": new_hash, "config": json.dumps(keep[1].to_dict()), "current": current,
             "pk": keep[0]},
        )  # fmt: skip


def downgrade() -> None:
    raise NotImplementedError(
        "the identity of release 0.2 cannot be restored: restore the copy `study upgrade` kept"
    )
