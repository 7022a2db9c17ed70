"""The Python API, a thin facade; the `study` CLI is a shell over these functions.

- planning and running: `plan`, `run_study` (orchestrator/run.py holds the run loop, and
  orchestrator/stages.py its stages; `Mode` chooses which run), `evaluate_study` (the
  evaluation stage alone);
- the read commands, which need only the store (orchestrator/reading.py): `status`,
  `export_*`, `report`, `fit_store`, `upgrade`; the exports that leave the tool (models, tasks,
  MLflow runs: orchestrator/sharing.py, orchestrator/tracking.py);
- `fit_csv`, a law fitted to a CSV of results; `recipe_for_all`, the `recipe:` line of the
  learning rates `fit_store(..., "lr")` fitted.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from orchestrator import fitting
from orchestrator.duration import trial_seconds
from orchestrator.evaluating import Scoring
from orchestrator.outputs import OutputError, write_output
from orchestrator.progress import last_line
from orchestrator.reading import (
    already_trained,
    export_evals,
    export_fits,
    export_predictions,
    export_trials,
    finished_hashes,
    fit_store,
    open_study,
    report,
    status,
    to_csv,
    to_json,
    upgrade,
)
from orchestrator.run import run_study
from orchestrator.spec import StudySpec
from orchestrator.stages import (
    Mode,
    RunResult,
    describe_data,
    left_out,
    planned_accounting,
    prepare_data,
    report_path,
    trials,
)
from orchestrator.store import StoreError
from trainers.data import TokenData
from trainers.schedules import cooldown_start, warmup_steps
from trainers.trial import TrialSpec

__all__ = [
    "already_trained", "cluster_nodes", "describe_data", "evaluate_study", "export_evals",
    "export_fits",
    "export_mlflow", "export_models", "export_predictions", "export_tasks",
    "export_trials", "fit_csv", "fit_store", "last_line", "left_out", "Mode", "open_study", "plan",
    "planned_accounting", "prepare_data", "recipe_for_all", "report", "report_path", "run_study",
    "RunResult", "OutputError",
    "status", "to_csv", "to_json", "trials", "upgrade", "write_output",
]  # fmt: skip


def plan(spec: StudySpec, data: TokenData | None = None) -> pd.DataFrame:
    """The grid before anything runs: one row per trial with its identity (hash) and the key
    of its evaluation settings, N, tokens trained, its recipe's numbers (lr, batch and warmup
    in tokens, β2, weight decay, schedule and cooldown fraction), its workers and each one's
    CPUs and GPUs, FLOPs, passes over the training split, its minutes on its CPUs
    (orchestrator.duration: training, evaluations, zero-shot) and the storage its weights take
    (final.pt, the kept evaluation points and a trunk's train state at its branch points).
    Prepares the token files if they are not there yet (or takes `data`, the study's prepared
    data)."""
    data = data if data is not None else prepare_data(spec)
    rows = []
    grid = trials(spec, data)
    from_trunk = _from_trunk(spec.name, grid)
    for trial in grid:
        acct = planned_accounting(trial, data.vocab_size)
        tokens = trial.steps * trial.tokens_per_step
        flops = acct["flops_per_token"] * tokens
        # a branch of one run trains its cooldown alone: its trunk trains (and is charged) the rest
        branched = trial.trial_id in from_trunk
        shared = cooldown_start(trial) * trial.tokens_per_step if branched else 0
        compute = acct["flops_per_token"] * (tokens - shared)
        kept = (trial.steps - 1) // trial.eval_every if trial.placement.keep_checkpoints else 0
        per_token = acct["flops_per_token"]
        seconds = trial_seconds(trial, flops_per_token=per_token, tokens=compute / per_token,
                                n_params=acct["n_params"], vocab_size=data.vocab_size)  # fmt: skip
        rows.append(
            {
                "trial_id": trial.trial_id,
                "hash": trial.hash,
                "eval_key": trial.eval_key,
                "architecture": trial.model.architecture,
                "size": trial.size,
                "seed": trial.seed,
                "budget_flops": trial.budget_flops or None,
                "shape": f"{trial.model.n_layer}x{trial.model.n_embd}x{trial.model.n_head}",
                "n_params": acct["n_params"],
                "total_params": acct["total_params"],
                "tokens": tokens,
                "budget_tokens": trial.budget.tokens,  # before rounding up to whole steps
                "tokens_per_param": tokens / acct["n_params"],
                "steps": trial.steps,
                "lr": trial.optim.lr,
                "batch_tokens": trial.tokens_per_step,
                "warmup_tokens": warmup_steps(trial) * trial.tokens_per_step,
                "beta2": trial.optim.beta2,
                "weight_decay": trial.optim.weight_decay,
                "schedule": trial.optim.schedule,
                "cooldown": trial.optim.cooldown,
                "flops": float(flops),
                "compute": float(compute),
                "epochs": tokens / len(data.train),
                "workers": trial.placement.workers,
                "micro_batch": trial.placement.micro_batch or None,  # None: each worker's share
                "cpus": trial.placement.cpus,  # each worker's
                "gpus": trial.placement.gpus,
                "cpu_minutes": seconds / 60,
                "weights_mb": _weights_mb(trial, acct["total_params"], kept),
            }
        )
    return pd.DataFrame(rows)


def cluster_nodes(address: str, study: str) -> list[dict]:
    """The resources of each live node of the Ray cluster at `address` (`study plan
    --address`): joined, read, left running. Raises ConnectionError naming what to check."""
    from orchestrator import schedule  # ray: only when a cluster is asked about

    return schedule.cluster_nodes(address, study)


def _from_trunk(name: str, grid: list[TrialSpec]) -> set[str]:
    """The ids of the branches that will start from their trunk's state at their branch point:
    its file is there, or the trunk is still to train (not finished in the study's store) and
    will write it. A branch of a trunk that finished without it (a budget added later, the file
    gone) trains from step 0, at full cost. A trunk stopped past the point, to be resumed, is
    taken to write it too (it will not: `study run` says so when that branch starts)."""
    from trainers.checkpoint import parent_checkpoint  # torch: only for studies with branches

    branches = [t for t in grid if t.placement.parent]
    missing = {t.trial_id for t in branches if not parent_checkpoint(t).exists()}
    trunks = {t.trial_id: t.hash for t in grid}
    try:
        finished = finished_hashes(name) if missing else set()
    except StoreError:  # a store this version cannot read (`study plan` says so): in full
        finished = set(trunks.values())
    return {t.trial_id for t in branches
            if t.trial_id not in missing or trunks[t.placement.parent] not in finished}  # fmt: skip


def _weights_mb(trial: TrialSpec, total_params: int, kept: int) -> float:
    """The storage a trial's weights take: fp32 final.pt and kept evaluation points, and for a
    trunk its full train state at each branch point (weights and AdamW's two moments: 12 bytes
    a parameter, measured: tests/test_branches.py), never removed."""
    return (4 * (1 + kept) + 12 * len(trial.placement.branch_points)) * total_params / 1e6


def export_models(
    path: str | Path | None = None,
    store: str | None = None,
    out: str | Path = "models",
    pattern: str | None = None,
) -> tuple[list[Path], list[str]]:
    """Each finished trial (matching `pattern`) as a Hugging Face model folder under `out`:
    the folders, and a note for each trial left out (orchestrator/sharing.py)."""
    from orchestrator.sharing import export_models as export

    with open_study(path, store) as run_store:
        return export(run_store, out, pattern)


def export_tasks(
    path: str | Path | None = None, store: str | None = None, out: str | Path = "tasks"
) -> list[Path]:
    """The study's zero-shot items as lm-evaluation-harness tasks under `out`: the YAMLs."""
    from orchestrator.sharing import export_tasks as export

    with open_study(path, store) as run_store:
        return export(run_store, out)


def export_mlflow(
    path: str | Path | None = None, store: str | None = None, to: str = ""
) -> list[tuple[str, str, str]]:
    """The study's trials as MLflow runs in the tracking store `to` (orchestrator/tracking.py):
    (trial id, run id, what was done) per trial."""
    from orchestrator.tracking import export_mlflow as export

    with open_study(path, store) as run_store:
        return export(run_store, to)


def evaluate_study(
    path: str | Path,
    trials: str | None = None,
    checkpoints: str = "final",
    **options,
) -> RunResult:
    """The evaluation stage alone (`study eval`): score the study's finished trials (those whose
    id matches the glob `trials`) from their weights under its current evaluation settings,
    their final weights or (`checkpoints` "all") every kept checkpoint, where results under
    these settings are missing; store them, refit and report. Nothing trains. `options` as
    `run_study`'s (store, report, address, console, n_boot, wait). Raises StoreError for
    `checkpoints` neither "final" nor "all", before anything runs."""
    scoring = Scoring(checkpoints, trials)
    return run_study(path, mode=Mode.EVAL, scoring=scoring, **options)


fit_csv = fitting.fit_csv
recipe_for_all = fitting.recipe_for_all
