"""Loading a study file: its YAML read, validated against the schema, and checked as a whole
(what needs several fields at once, and the recipe's plans); every error names the file, the
line and the field."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import ValidationError

from orchestrator.recipe import CellBudget, Size, plan, schedule_of
from orchestrator.sizes import flops_text, non_embedding_params
from orchestrator.spec.schema import NAME_PATTERN, StudySpec, resolve_size
from orchestrator.spec.yaml_errors import (
    StudyError,
    compose,
    duplicate_key_error,
    line_of,
    read_text,
    validation_error,
)
from trainers.trial import TrialSpec


def parse_study(text: str, source: str = "<string>") -> StudySpec:
    """Validate the YAML text of a study; errors name the source, the field and the line."""
    root, raw = compose(text, source)
    duplicate = duplicate_key_error(root, source, StudySpec)
    if duplicate is not None:
        raise duplicate
    try:
        spec = StudySpec.model_validate(raw)
    except ValidationError as e:
        raise validation_error(e, root, source, StudySpec) from None
    spec._source, spec._root = source, root
    _check_recipe(spec)
    _check_resources(spec)
    _check_one_batch(spec, "tokens")
    check_beyond_grid(spec, max(spec.budget.flops or [0]), "its largest budget is")
    _check_one_batch(spec, "chinchilla")
    _check_one_run(spec)
    return spec


_RULES = ("batch_size", "lr", "weight_decay", "betas")
# the train.* settings each rule set makes (deepseek has no warmup rule: train.warmup applies)
RULED = {"olmo": (*_RULES, "warmup"), "porian": (*_RULES, "warmup"), "deepseek": _RULES}


def _check_recipe(spec: StudySpec) -> None:
    """A rule set (not `fixed`) makes what train.batch_size, lr, weight_decay, betas and (but
    for deepseek) warmup would: the study file gives them in one place, not two (a
    learning-rate sweep as multiples of the rule's rate, {sweep: [...]}, is the one train.lr a
    recipe takes)."""
    name = spec.recipe.name
    for field in RULED.get(name, ()):
        value = getattr(spec.train, field)
        if field not in spec.train.model_fields_set or hasattr(value, "sweep"):
            continue
        raise StudyError(
            f"invalid study\n{spec.where('train', field)}: conflicts with recipe: {name}, "
            "whose rules set it (override the rule's constants under recipe:, sweep "
            "learning rates as multiples with lr: {sweep: [0.5, 1, 2]}, or use recipe: fixed)"
        )


def _check_resources(spec: StudySpec) -> None:
    """The resources given once each, and whole GPUs for a trial on several workers."""
    conflict = spec.resources.conflict()
    if conflict is not None:
        field, why = conflict
        raise StudyError(f"invalid study\n{spec.where('resources', field)}: {why}")


def check_spread(spec: StudySpec, trials: list[TrialSpec]) -> None:
    """Each trial's batch splits evenly over its workers: each rank trains on its own equal
    rows of every global batch, so the tokens of a step are one process's."""
    for trial in trials:
        if (why := unsplit(trial)) is not None:
            raise StudyError(
                f"invalid study\n{spec.where('resources', 'workers')}: {trial.trial_id}'s {why}"
            )


def unsplit(trial: TrialSpec) -> str | None:
    """Why the trial's batch does not split evenly over its workers (None where it does)."""
    batch, workers = trial.optim.batch_size, trial.placement.workers
    if batch % workers == 0:
        return None
    return (f"batch of {batch} sequences does not split over {workers} workers (each takes "
            "an equal share): give a batch size they divide")  # fmt: skip


def _check_one_run(spec: StudySpec) -> None:
    """One run for many budgets needs several budgets, a schedule whose rates up to the
    cooldown do not depend on the length (WSD), and storage for the trunk's checkpoints."""
    budget = spec.budget
    if not budget.from_one_run:
        return
    why = ""
    if len(budget.values) < 2:
        why = f"one run for many budgets needs two budgets or more (got {budget.values[0]:g})"
    elif schedule_of(spec)[0] == "cosine":
        why = ("needs train.schedule wsd (a cosine schedule's rates depend on the run's length, "
               "so a shorter budget is no prefix of a longer one): give train: {schedule: "
               "{name: wsd, cooldown: 0.2}}")  # fmt: skip
    elif not spec.storage:
        why = "needs storage: the trunk keeps its checkpoints at the branch points there"
    if why:
        raise StudyError(f"invalid study\n{spec.where('budget', 'from_one_run')}: {why}")


def _check_one_batch(spec: StudySpec, key: str) -> None:
    """Every plan of a token or Chinchilla budget (`key`) trains at least one batch."""
    for i, value in enumerate(getattr(spec.budget, key) or []):
        for arch in spec.architectures:
            for size in spec.sizes:
                label, shape = resolve_size(arch, size)
                cell = Size(arch, label, shape, non_embedding_params(arch, shape))
                trained = plan(cell, CellBudget(**{key: value}), spec)
                batch = trained.batch_size * spec.data.seq_len
                if trained.tokens >= batch:
                    continue
                what = f"{trained.tokens:,} tokens"
                if key == "chinchilla":
                    what = f"{value:g}x Chinchilla for {arch} {label}, {what},"
                source = (
                    f"train.batch_size {trained.batch_size}"
                    if spec.recipe.is_fixed()
                    else f"recipe {spec.recipe.name}: {trained.batch_size} sequences"
                )
                raise StudyError(
                    f"invalid study\n{spec.where('budget', key, i)}: {what} is less than one "
                    f"batch ({source} × data.seq_len {spec.data.seq_len} = {batch:,} tokens)"
                )


def check_beyond_grid(spec: StudySpec, largest: float, grid: str, extra=()) -> None:
    """Every budget to predict (the study file's, and `extra` from `study predict --flops`)
    lies beyond `largest`, the grid's compute, which `grid` names ("its largest budget is"): a
    prediction extrapolates, and its model must not be one the laws are fitted on."""
    asked = [(spec.where("predict", "flops", i), c)
             for i, c in enumerate(spec.predict.flops if spec.predict else [])]  # fmt: skip
    asked += [(f"--flops {c:g}", c) for c in extra]
    for place, flops in asked:
        if flops <= largest:
            raise StudyError(
                f"invalid study\n{place}: {flops_text(flops)} FLOPs is not beyond the grid "
                f"({grid} {flops_text(largest)}): a prediction extrapolates"
            )


def load_study(path: str | Path) -> StudySpec:
    """Read and validate a study file."""
    return parse_study(read_text(Path(path)), str(path))


def study_name(path: str | Path) -> str:
    """The name of the study a file describes, the rest unvalidated: what the read commands
    (status, export, report, fit, upgrade) need to find its store, which holds everything
    else, even once the corpus has moved."""
    root, raw = compose(read_text(Path(path)), str(path))
    duplicate = duplicate_key_error(root, str(path), StudySpec, keys=("name",))
    if duplicate is not None:
        raise duplicate
    name = raw.get("name")
    if not isinstance(name, str) or not re.match(NAME_PATTERN, name):
        raise StudyError(
            f"{path}:{line_of(root, ('name',))}: name: a study file names its study with "
            f"letters, digits, _ . - (got {name!r})"
        )
    return name
