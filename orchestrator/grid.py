"""Expanding a study into its grid of trials: pure and deterministic."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from itertools import product

from orchestrator.branches import link
from orchestrator.recipe import CellBudget, Size, flops_per_token, lr_points, lr_suffix, plan
from orchestrator.sizes import Shape, flops_text, format_count, non_embedding_params
from orchestrator.spec import StudyError, StudySpec, resolve_size
from trainers.architectures import ARCHITECTURES
from trainers.schedules import too_short
from trainers.trial import Eval, Model, Placement, TrialSpec, steps_for

FLOPS_TOLERANCE = 0.01  # a cell of a FLOP budget spends it within 1% (whole steps)


@dataclass(frozen=True)
class Cell:
    """One (architecture, size, budget) of the grid, with the tokens it trains on, or why it is
    left out."""

    architecture: str
    label: str
    shape: Shape
    n_params: int
    tokens: int
    name: str  # the budget's part of a trial id
    budget_flops: float = 0  # the FLOP budget it spends (0: a token budget)
    left_out: str = ""  # why it is not trained
    vocab_size: int | None = None  # a FLOP budget's: what its plan is made with

    @property
    def size(self) -> Size:
        """What size the cell trains."""
        return Size(self.architecture, self.label, self.shape, self.n_params)


def _cell(study: StudySpec, size: Size, budget: CellBudget, vocab_size, train_tokens) -> Cell:
    """The cell of a size at a budget, with the tokens of its plan. A cell is left out where
    its warmup would not end before its cooldown (a recipe's warmup of N tokens, on a short
    run); a FLOP budget's also unless whole steps spend it within 1% and read the training
    split at most `data.max_epochs` times."""
    trained = plan(size, budget, study, vocab_size=vocab_size)
    tokens = trained.tokens
    cell = Cell(size.architecture, size.label, size.shape, size.n_params, tokens, budget.name,
                budget.flops, vocab_size=vocab_size)  # fmt: skip
    per_step = trained.batch_size * study.data.seq_len
    short = too_short(trained.optim(), steps_for(tokens, per_step), per_step) if tokens else ""
    if not budget.flops:
        what = f"{size.architecture} {size.label} at {budget.name}"
        return replace(cell, left_out=f"{what}: {short}") if short else cell
    flops = budget.flops
    per_token = flops_per_token(size, study, vocab_size)
    what = f"{size.architecture} {size.label} at {flops_text(flops)} FLOPs"
    if tokens == 0:
        why = f"{what}: fewer tokens than one batch ({per_step:,})"
    elif abs(per_token * tokens / flops - 1) > FLOPS_TOLERANCE:
        off = per_token * tokens / flops - 1
        why = f"{what}: whole steps of {per_step:,} tokens miss the budget by {off:+.1%}"
    elif train_tokens and tokens / train_tokens > study.data.max_epochs:
        why = (f"{what}: {format_count(tokens)} tokens would read the "
               f"{format_count(train_tokens)}-token training split {tokens / train_tokens:.1f} "
               f"times (data.max_epochs is {study.data.max_epochs:g})")  # fmt: skip
    elif short:
        why = f"{what}: {short}"
    else:
        return cell
    return replace(cell, left_out=why)


def cells(study: StudySpec, vocab_size: int | None = None, train_tokens: int | None = None):
    """Every (architecture, size, budget) of the study, in grid order (architecture, N,
    budget), the cells left out included. FLOP budgets need the vocabulary's size (the output
    projection's FLOPs) and, to keep data from repeating, the training split's tokens."""
    budget = study.budget
    if budget.flops and vocab_size is None:
        raise ValueError("FLOP budgets need the vocabulary size of the prepared data")
    out = []
    for architecture in study.architectures:
        sizes = [resolve_size(architecture, s) for s in study.sizes]
        sizes.sort(key=lambda ls: non_embedding_params(architecture, ls[1]))
        for label, shape in sizes:
            size = Size(architecture, label, shape, non_embedding_params(architecture, shape))
            out += [_cell(study, size, b, vocab_size, train_tokens) for b in budget.cells()]
    return out


def expand(
    study: StudySpec,
    data_key: str,
    storage: str,
    vocab_size: int | None = None,
    train_tokens: int | None = None,
) -> list[TrialSpec]:
    """Every trial of the study, complete, ordered by architecture, N, budget, learning rate
    and seed: the one place the grid's TrialSpecs are made. `data_key` is the key of the
    study's prepared token files and `storage` the absolute folder of its checkpoints ("" for
    none); FLOP budgets also need the vocabulary's and the training split's size (see `cells`).

    Ids read like `decoder-1M-s0`; the budget joins the id when the study has several
    (`decoder-1M-2Mtok-s0`, `decoder-1M-0.5xC-s0` for multiples of the Chinchilla ratio), and
    a FLOP budget always (`decoder-1M-1e12F-s0`: its tokens depend on the size); the learning
    rate (`decoder-1M-lr0.003-s0`) only when the study sweeps several.
    """
    budget_in_id = len(study.budget.values) > 1 or bool(study.budget.flops)
    trials = [
        trial_spec(
            study,
            cell,
            lr,
            seed,
            data_key,
            storage,
            budget_in_id=budget_in_id,
            lr_multiple=multiple,
        )
        for cell in cells(study, vocab_size, train_tokens)
        if not cell.left_out
        for (lr, multiple), seed in product(lr_points(study), study.seeds)
    ]
    trials = link(study, trials)  # one run for many budgets: trunks and their branches
    seen: dict[str, TrialSpec] = {}
    same: dict[str, TrialSpec] = {}
    for trial in trials:
        if trial.trial_id in seen:
            raise StudyError(
                f"two cells of the grid get the same trial id {trial.trial_id!r}: two sizes "
                "with one label (name explicit shapes differently) or learning rates equal to "
                "3 significant digits"
            )
        if trial.hash in same:
            raise StudyError(
                f"{same[trial.hash].trial_id} and {trial.trial_id} would train the same model on "
                "the same data: one shape is given twice in sizes (a label and an explicit shape)"
            )
        seen[trial.trial_id], same[trial.hash] = trial, trial
    return trials


def trial_spec(
    study: StudySpec,
    cell: Cell,
    lr: float | None,
    seed: int,
    data_key: str,
    storage: str,
    *,
    budget_in_id: bool = True,
    lr_multiple: float | None = None,
) -> TrialSpec:
    """The trial that trains a cell of the study at one learning rate (None: the recipe's, or
    `lr_multiple` times it) and seed: its training plan from the recipe, for the cell's
    tokens."""
    train, zero_shot = study.train, study.eval.zero_shot
    architecture, shape, n_params = cell.architecture, cell.shape, cell.n_params
    spread = study.resources.spread_for(n_params)
    # a FLOP budget's plan as its cell made it (a rule of C, deepseek's, reads the budget)
    budget = CellBudget(tokens=cell.tokens)
    if cell.budget_flops and cell.vocab_size is not None:
        budget = CellBudget(flops=cell.budget_flops)
    trained = plan(cell.size, budget, study, vocab_size=cell.vocab_size, lr=lr,
                   lr_multiple=lr_multiple)  # fmt: skip
    suffix = f"-{cell.name}" if budget_in_id else ""
    suffix += lr_suffix(study, trained.lr, lr_multiple)
    return TrialSpec(
        study=study.name,
        trial_id=f"{architecture}-{cell.label}{suffix}-s{seed}",
        size=cell.label,
        seed=seed,
        model=Model(
            architecture,
            shape.n_layer,
            shape.n_embd,
            shape.n_head,
            train.dropout,
            mlm_head=ARCHITECTURES[architecture].mlm_head,
        ),
        data=study.data.trial_data(data_key),
        optim=trained.optim(),
        budget=trained.budget(),
        eval=Eval(
            every_tokens=study.eval.every_tokens or max(1, trained.tokens // 10),
            tokens=study.eval.tokens,
            tasks=tuple(zero_shot.tasks),
            items=zero_shot.items,
            seed=zero_shot.seed,
            at_every_eval=zero_shot.at_every_eval,
            pll_stride=zero_shot.pll_stride,
        ),
        placement=Placement(
            cpus=spread.cpus,
            gpus=spread.gpus,
            workers=spread.workers,
            strategy=spread.strategy,
            micro_batch=spread.micro_batch or 0,
            storage=storage,
            checkpoint_every_tokens=train.checkpoint_every or 0,
            peak_flops=study.resources.peak_flops or 0,
            compile=train.compile,
            keep_checkpoints=train.keep_checkpoints,
        ),
        budget_flops=cell.budget_flops,
    )


MAX_HEADS = 64


def shape_near(study: StudySpec, architecture: str, n_target: float) -> tuple[str, Shape, int]:
    """The shape of a model with N nearest `n_target` in the study's family: the depth and head
    width of the study's size nearest it in log N, with a whole number of heads (up to 64).
    Returns its label (its N, short), the shape and N."""
    sizes = [resolve_size(architecture, s)[1] for s in study.sizes]
    gap = lambda n: abs(math.log(n / n_target))  # noqa: E731
    base = min(sizes, key=lambda s: gap(non_embedding_params(architecture, s)))
    head = base.n_embd // base.n_head
    shapes = [Shape(base.n_layer, head * h, h) for h in range(1, MAX_HEADS + 1)]
    shape = min(shapes, key=lambda s: gap(non_embedding_params(architecture, s)))
    n_params = non_embedding_params(architecture, shape)
    return format_count(n_params), shape, n_params


def prediction_cell(
    study: StudySpec,
    architecture: str,
    n_target: float,
    flops: float,
    vocab_size: int,
    train_tokens: int | None = None,
) -> Cell:
    """The cell that verifies a prediction at `flops`: the study's model nearest `n_target`
    (see `shape_near`) trained on the tokens that spend the budget, or why it cannot be."""
    size = Size(architecture, *shape_near(study, architecture, n_target))
    return _cell(study, size, CellBudget(flops=flops), vocab_size, train_tokens)
