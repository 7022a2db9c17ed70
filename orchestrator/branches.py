"""One run for many budgets (`budget: {..., from_one_run: true}`), as OLMo-core's WSD-S ladder
trains them: each size trains once through the stable phase to its largest budget (the trunk,
itself the largest budget's trial) and each smaller budget branches its cooldown off the trunk's
train state at the step its cooldown starts.

Under WSD with the warmup in tokens, a trial's rates up to its cooldown do not depend on its
length, and its data order is drawn step by step from its seed: a branch computes exactly what
a standalone WSD run of its budget computes, so it is that run, with that run's hash (a store
that trained it on its own finds it finished; a branch's final loss is the standalone run's,
bit for bit on the CPU). Where it starts from is placement (trainers.trial.Placement: the
trunk's `branch_points`, the branch's `parent`), never hashed; the store links a branch to its
trunk's hash (trials.parent) and charges it its cooldown alone (trials.shared_tokens).

Against training each budget on its own, a size's budgets D_1 < ... < D_k then cost
((1 − f)·D_k + f·ΣD) / ΣD of the compute for a cooldown fraction f (`shared_fraction`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import fields, replace

from orchestrator.spec import StudyError, StudySpec
from trainers.events import Start
from trainers.schedules import cooldown_start, warmup_steps
from trainers.trial import TrialSpec


def link(study: StudySpec, trials: list[TrialSpec]) -> list[TrialSpec]:
    """The grid's trials, each size's trunk and branches linked where the study trains its
    budgets from one run (else `trials` as they are). Every trial of a size at one learning
    rate and seed shares its warmup in tokens (the largest budget's, where the plan gives a
    fraction of the steps). Raises StudyError, naming the file, line and field, where a size's
    budgets differ in anything but their length, or a branch would start inside the warmup."""
    if not study.budget.from_one_run:
        return trials
    linked = {}
    for run in _runs(trials):
        linked.update({t.trial_id: t for t in _one_run(study, run)})
    return [linked[t.trial_id] for t in trials]


def _runs(trials: list[TrialSpec]) -> list[list[TrialSpec]]:
    """The trials of each size at one learning rate and seed, one per budget: the n-th trial of
    each of a size's cells (a cell's trials come in the same learning-rate and seed order for
    every budget, whatever a recipe makes of the rate at each)."""
    cells: dict[tuple, list[TrialSpec]] = defaultdict(list)
    for trial in trials:
        size = (trial.model.architecture, trial.size)
        cells[size, trial.budget.tokens, trial.budget_flops].append(trial)
    runs: dict[tuple, list[TrialSpec]] = defaultdict(list)
    for (size, *_), members in cells.items():
        for n, trial in enumerate(members):
            runs[size, n].append(trial)
    return [sorted(run, key=lambda t: t.budget.tokens) for run in runs.values()]


def _one_run(study: StudySpec, run: list[TrialSpec]) -> list[TrialSpec]:
    """A size's budgets at one rate and seed, linked: the largest the trunk, the others its
    branches."""
    largest = run[-1]
    warmup = largest.optim.warmup_tokens or round(largest.optim.warmup * largest.budget.tokens)
    run = [replace(t, optim=replace(t.optim, warmup_tokens=warmup)) for t in run]
    trunk = run[-1]
    for trial in run[:-1]:
        _check_same(study, trial, trunk)
    if len(run) == 1:
        return run
    where = study.where("budget", "from_one_run")
    branches, points = [], []
    for trial in run[:-1]:
        point = cooldown_start(trial)
        if point < warmup_steps(trial):
            raise StudyError(
                f"invalid study\n{where}: {trial.trial_id}'s cooldown would start at step "
                f"{point:,}, inside the warmup ({warmup_steps(trial):,} steps): give it a "
                "larger budget or a shorter warmup"
            )
        branches.append(replace(trial, placement=replace(trial.placement, parent=trunk.trial_id)))
        points.append(point)
    trunk = replace(trunk, placement=replace(trunk.placement,
                                             branch_points=tuple(sorted(set(points)))))  # fmt: skip
    return [*branches, trunk]


def _check_same(study: StudySpec, trial: TrialSpec, trunk: TrialSpec) -> None:
    """A branch trains as its trunk does but for its length: the same optimizer numbers."""
    for f in fields(trial.optim):
        mine, theirs = getattr(trial.optim, f.name), getattr(trunk.optim, f.name)
        if mine == theirs:
            continue
        recipe = study.recipe.name
        whose = f"the recipe {recipe!r} gives" if recipe != "fixed" else "the study's settings give"
        mine, theirs = (f"{v:.3g}" if isinstance(v, float) else v for v in (mine, theirs))
        raise StudyError(
            f"invalid study\n{study.where('budget', 'from_one_run')}: {whose} "
            f"{trial.model.architecture} {trial.size} optim.{f.name} {mine} at "
            f"{trial.budget.tokens:,} tokens but {theirs} at {trunk.budget.tokens:,}: one "
            "run serves only budgets trained alike but for their length (a rule of D or C "
            "cannot); train the budgets on their own, or pick a recipe of N alone"
        )


class Gates:
    """The branches of a run waiting for their trunk to pass their branch point, so that none
    holds a slot while it waits. A trunk passes a point when it reports a checkpoint there or
    later, resumes beyond it, or ends; a trunk that fails for good leaves the branches whose
    point it had not passed unstarted."""

    def __init__(self, to_run: list[TrialSpec]):
        trunks = {t.trial_id for t in to_run if t.placement.branch_points}
        # A branch whose trunk is not in this run (finished, or passed its point before)
        # starts at once, from the trunk's checkpoint.
        self.waiting = {t.trial_id: (t.placement.parent, cooldown_start(t)) for t in to_run
                        if t.placement.parent in trunks}  # fmt: skip

    def held(self, trial_id: str) -> bool:
        """Whether a trial waits for its trunk."""
        return trial_id in self.waiting

    def passed(self, trunk: str, step: int) -> list[str]:
        """The branches `trunk` releases on reaching `step` (no longer waiting)."""
        return self._release(trunk, step)

    def failed(self, trunk: str) -> dict[str, str]:
        """The branches a trunk that failed for good leaves unstarted (no longer waiting), each
        with why."""
        points = {b: self.waiting[b][1] for b in self._waiting_on(trunk)}
        self._release(trunk, None)
        return {b: f"not started: its trunk {trunk} failed before step {point:,}, where its "
                   "cooldown branches off" for b, point in points.items()}  # fmt: skip

    def _waiting_on(self, trunk: str) -> list[str]:
        return [b for b, (t, _) in self.waiting.items() if t == trunk]

    def _release(self, trunk: str, step: int | None) -> list[str]:
        out = [b for b in self._waiting_on(trunk) if step is None or self.waiting[b][1] <= step]
        for branch in out:
            del self.waiting[branch]
        return out


def from_step_0(trial: TrialSpec, start: Start) -> str | None:
    """What the driver says where a branch starts from step 0 (its trunk's state at its branch
    point missing: it trains, and is charged, its whole budget); None for any other start."""
    if not trial.placement.parent or start.resumed_step:
        return None
    return (f"{trial.trial_id} trains from step 0: its trunk {trial.placement.parent} left no "
            f"train state at step {cooldown_start(trial):,}, where its cooldown branches off "
            "(the trunk had passed that point before this budget was added, or the file is "
            "gone), so it trains its whole budget and is charged for all of it")  # fmt: skip


def shared_fraction(tokens: list[int], cooldown: float) -> float:
    """What a size's budgets cost from one run, as a fraction of training each on its own:
    ((1 − f)·D_max + f·ΣD) / ΣD."""
    return ((1 - cooldown) * max(tokens) + cooldown * sum(tokens)) / sum(tokens)


def one_run_share(plan) -> str:
    """What `study plan` adds to its total where budgets share runs: the share of training
    each on its own that they cost ("" where none does)."""
    alone = plan.flops.sum()
    if plan.empty or plan.compute.sum() >= alone:
        return ""
    return (f"; from one run per size, {plan.compute.sum() / alone:.0%} of the {alone:.3g} "
            "training each budget on its own would cost")  # fmt: skip
