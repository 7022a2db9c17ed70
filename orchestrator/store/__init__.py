"""The run store: studies, trials, metrics, zero-shot results and fits in SQLite (any SQLAlchemy
URL works). Only the driver process writes it.

- `tables`: the schema as SQLAlchemy models;
- `urls`: where a store lives (`runs/<study>.db` by default);
- `recognition`: whether the file at a store's path is a run store, read without writing it;
- `engine`: opening a store, creating its schema, alembic migrations (`study upgrade`);
- `liveness`: the run lock, heartbeats, and whether a run is gone;
- `writes`: registering a study, recording trainer events, trial status changes, fits,
  predictions and their measurements;
- `reads`: queries, and the DataFrames analysis and the report take;
- `facade`: `RunStore`, the one object the rest of the tool uses: it holds the session and
  commits inside, and returns DataFrames and ORM-free records. Only this package imports
  sqlalchemy (tests/test_store_facade.py checks); its migrations are in `migrations/`.
"""

from orchestrator.store.engine import (
    LEGACY_VERSION,
    SCHEMA_REVISION,
    VERSION_TABLE,
    open_store,
    upgrade_store,
)
from orchestrator.store.facade import PredictionRecord, RunStore, TrialEvents, TrialRecord
from orchestrator.store.liveness import (
    HEARTBEAT_S,
    STALE_AFTER_S,
    beat,
    hold_lock,
    run_active,
    run_lock,
    stale,
)
from orchestrator.store.reads import (
    EVAL_COLUMNS,
    EXPORT_COLUMNS,
    PREDICTION_COLUMNS,
    TRIAL_COLUMNS,
    all_evals_frame,
    current_trials,
    eval_keys,
    evals_frame,
    evals_of,
    fits_of,
    get_study,
    metrics_frame,
    outdated,
    predictions_frame,
    predictions_of,
    select_current,
    task_points,
    trials_frame,
)
from orchestrator.store.tables import (
    Base,
    Eval,
    Fit,
    Metric,
    Prediction,
    Study,
    Trial,
    TrialStatus,
)
from orchestrator.store.urls import (
    NoStudyError,
    StoreError,
    check_url,
    database_errors,
    default_url,
    sqlite_file,
    store_failure,
)
from orchestrator.store.writes import (
    Recorder,
    fail_trial,
    mark_unfinished_interrupted,
    queue_trial,
    record_event,
    record_measurements,
    references_stored,
    register_study,
    replace_baseline,
    replace_fits,
    replace_reference,
    store_prediction,
)

__all__ = [
    "all_evals_frame", "Base", "beat", "check_url", "current_trials", "database_errors",
    "default_url", "Eval", "EVAL_COLUMNS", "eval_keys", "evals_frame", "evals_of",
    "EXPORT_COLUMNS", "fail_trial", "Fit", "fits_of", "get_study", "HEARTBEAT_S", "hold_lock",
    "LEGACY_VERSION", "mark_unfinished_interrupted", "Metric", "metrics_frame", "NoStudyError",
    "open_store",
    "outdated", "Prediction", "PREDICTION_COLUMNS", "PredictionRecord", "predictions_frame",
    "predictions_of", "queue_trial", "record_event", "record_measurements", "Recorder",
    "references_stored", "register_study", "replace_baseline", "replace_fits", "replace_reference",
    "run_active", "run_lock", "RunStore", "SCHEMA_REVISION", "select_current", "sqlite_file",
    "stale", "STALE_AFTER_S", "store_failure", "store_prediction", "StoreError", "Study",
    "task_points", "Trial", "TRIAL_COLUMNS", "TrialEvents", "TrialRecord", "trials_frame",
    "TrialStatus", "upgrade_store", "VERSION_TABLE",
]  # fmt: skip
