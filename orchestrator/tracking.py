"""`study export --what mlflow --to URI`: the study in an MLflow tracking store, one run per
trial, as a team that tracks its experiments in MLflow would have logged them: the trial's
configuration as params, every stored metric point as a metric history, the final results
as metrics, the model card as an artifact. Rerunning it leaves one live run per trial with
every point once: a trial's run is kept when nothing changed, else replaced."""

from __future__ import annotations

from datetime import UTC, datetime

from orchestrator.store import RunStore, StoreError

BATCH = 1000  # MLflow takes at most 1,000 metrics per log_batch
STATUS = {"finished": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}


def _ms(when: datetime | None) -> int | None:
    if when is None:
        return None
    return int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() * 1000)


def _flat(config: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out |= _flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = str(value)[:6000]  # MLflow's longest param value
    return out


def export_mlflow(store: RunStore, uri: str) -> list[tuple[str, str, str]]:
    """Log the study's current trials to the MLflow tracking store at `uri` (experiment
    `<study name>`): (trial id, run id, "logged" | "replaced" | "unchanged") per trial. Raises
    StoreError when MLflow is not installed or the URI cannot be used."""
    try:
        from mlflow.entities import Metric as Point
        from mlflow.entities import Param, RunTag
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise StoreError(
            "--what mlflow needs MLflow: pip install mlflow-skinny (or mlflow)"
        ) from None

    try:
        client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name(store.name)
        experiment_id = (experiment.experiment_id if experiment is not None
                         else client.create_experiment(store.name))  # fmt: skip
    except MlflowException as e:
        raise StoreError(f"--to {uri}: {str(e).splitlines()[0]}") from None
    if experiment is not None and experiment.lifecycle_stage != "active":
        raise StoreError(f"--to {uri}: the experiment {store.name} is deleted there: restore it "
                         "(mlflow experiments restore) or remove it for good first")  # fmt: skip
    try:
        return _log(client, experiment_id, store, (Point, Param, RunTag))
    except MlflowException as e:
        raise StoreError(f"--to {uri}: {str(e).splitlines()[0]}") from None


def _log(client, experiment_id, store: RunStore, entities):
    """One run per current trial (see export_mlflow); `entities`: MLflow's Metric, Param and
    RunTag."""
    from analysis.report.cards import hub_card

    Point, Param, RunTag = entities
    rows = store.current_trials()
    table = store.trials_frame().set_index("trial_id", drop=False)
    evals = store.evals_frame()
    done = []
    for row in rows:
        points = store.metric_points(row.trial_id)
        mine = evals[evals.trial_id == row.trial_id] if len(evals) else evals
        final = {"val_loss": row.val_loss, "tokens_per_s": row.tokens_per_s, "mfu": row.mfu,
                 "wall_s": row.wall_s, "tokens_done": row.tokens_done,
                 "n_params": row.n_params, "flops": row.flops}  # fmt: skip
        final |= {f"zeroshot.{e.task}.{e.metric}": e.value for e in mine.itertuples()}
        final = {k: float(v) for k, v in final.items() if v is not None and v == v}
        status = row.status.value
        signature = f"{status}:{len(points)}:{len(final)}:{row.eval_key}"
        found = client.search_runs(
            [experiment_id], filter_string=f"tags.`study.trial_hash` = '{row.hash}'"
        )
        if found and found[0].data.tags.get("study.signature") == signature:
            done.append((row.trial_id, found[0].info.run_id, "unchanged"))
            continue
        for old in found:
            client.delete_run(old.info.run_id)
        tags = {"mlflow.runName": row.trial_id, "study": store.name, "study.trial_id": row.trial_id,
                "study.trial_hash": row.hash, "study.architecture": row.architecture,
                "study.status": status}  # fmt: skip
        run = client.create_run(experiment_id, start_time=_ms(row.started_at),
                                tags=tags, run_name=row.trial_id)  # fmt: skip
        run_id = run.info.run_id
        params = _flat(row.config) | {"n_params": str(row.n_params), "flops": str(row.flops)}
        client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()],
                         tags=[RunTag(k, v) for k, v in tags.items()])  # fmt: skip
        history = [Point(n, float(v), _ms(w) or 0, int(s)) for n, v, s, w in points]
        last = max((int(s) for _, _, s, _ in points), default=0)
        now = _ms(row.ended_at) or 0
        history += [Point(f"final.{k}", v, now, last) for k, v in final.items()]
        for i in range(0, len(history), BATCH):
            client.log_batch(run_id, metrics=history[i : i + BATCH])
        if row.status.value == "finished":
            card = hub_card(store.name, table.loc[row.trial_id], store.data, evals, row.config)
            client.log_text(run_id, card, "model_card.md")
        if status in STATUS:
            client.set_terminated(run_id, STATUS[status], end_time=_ms(row.ended_at))
        client.set_tag(run_id, "study.signature", signature)  # last: the run is complete
        done.append((row.trial_id, run_id, "replaced" if found else "logged"))
    return done
