"""How a model of each size is trained: the one place that turns a size, a budget and a study's
settings into a training plan (tokens, batch, learning rate, warmup, schedule, optimizer).

As OLMo-core's model ladder keeps "what model is size s" (orchestrator.sizes, the ladder) apart
from "how a model of N parameters is trained" (its run configurator), `plan` is the only maker
of the numbers a trial trains with; `grid.expand` calls it and the trainer only reads them (as
the trial's `Optim` and `Budget`). A study's `recipe:` picks the rule set (a learning rate,
batch, warmup, β2 and weight decay as functions of N, or of compute C: orchestrator.rulesets);
`fixed`, the default, trains with the study's train.* settings as before.

Nothing here imports the study file's schema (it imports this module): the study's settings
are read by their field names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from orchestrator.rulesets import (
    SCHEDULES,
    beta2_for,
    constants_of,
    deepseek_flops_per_token,
    rates,
    sequences,
)
from orchestrator.sizes import Shape, flops_text, format_count
from trainers.architectures import ARCHITECTURES, account
from trainers.trial import Budget, Optim


class StudySpec(Protocol):
    """What a recipe reads of a study (an orchestrator.spec.StudySpec, which imports this
    module, so it is named here by its shape): `recipe` (a rule set and its constants),
    `train` (batch_size, lr, min_lr_ratio, warmup, schedule, weight_decay, grad_clip, betas)
    and `data.seq_len`."""

    @property
    def recipe(self) -> Any: ...

    @property
    def train(self) -> Any: ...

    @property
    def data(self) -> Any: ...


CHINCHILLA_TOKENS_PER_PARAM = 20  # Hoffmann et al. 2022: compute-optimal at about 20 tokens per N
DEFAULT_LR_BASE = {name: a.lr_base for name, a in ARCHITECTURES.items()}  # see the registry


@dataclass(frozen=True)
class PowerRule:
    """train.lr's default rule (the schema's LrRule takes its defaults from this one)."""

    rule: str = "power"
    base: Any = None  # one rate, or one per architecture
    at: int = 1_000_000
    exponent: float = 1 / 3


DEFAULT_LR_RULE = PowerRule(base=DEFAULT_LR_BASE)


@dataclass(frozen=True)
class Size:
    """What size s is: an architecture's shape, its label and its non-embedding N."""

    architecture: str
    label: str
    shape: Shape
    n_params: int


@dataclass(frozen=True)
class CellBudget:
    """One budget of a study, as given: tokens, a multiple of the Chinchilla ratio, or
    training FLOPs (exactly one of them)."""

    tokens: int = 0
    chinchilla: float = 0
    flops: float = 0

    @property
    def name(self) -> str:
        """What the budget adds to a trial id: `2Mtok`, `0.5xC`, `1e12F`."""
        if self.flops:
            return f"{flops_text(self.flops)}F"
        if self.chinchilla:
            return f"{self.chinchilla:g}xC"
        return f"{format_count(self.tokens)}tok"


@dataclass(frozen=True)
class TrainPlan:
    """Every number a trial trains with, beyond its model and data."""

    tokens: int  # fed to the model (a FLOP budget: whole steps)
    batch_size: int  # sequences per step
    lr: float  # peak learning rate
    min_lr_ratio: float  # final lr as a fraction of the peak
    warmup: float  # fraction of the steps warming up linearly (where warmup_tokens is 0)
    schedule: str  # "cosine" or "wsd" (trainers.schedules)
    weight_decay: float
    grad_clip: float
    betas: tuple[float, float]
    cooldown: float = 0.0  # wsd: fraction of the steps cooling down
    cooldown_shape: str = "linear"  # wsd: "linear" or "1-sqrt"
    warmup_tokens: int = 0  # the warmup in tokens; 0: `warmup` as a fraction of the steps

    def optim(self) -> Optim:
        """The plan's optimizer settings as a trial carries them (and its hash covers)."""
        return Optim(
            batch_size=self.batch_size,
            lr=self.lr,
            min_lr_ratio=self.min_lr_ratio,
            warmup=self.warmup,
            weight_decay=self.weight_decay,
            grad_clip=self.grad_clip,
            beta1=self.betas[0],
            beta2=self.betas[1],
            schedule=self.schedule,
            cooldown=self.cooldown,
            cooldown_shape=self.cooldown_shape,
            warmup_tokens=self.warmup_tokens,
        )

    def budget(self) -> Budget:
        """The plan's length as a trial carries it."""
        return Budget(self.tokens)


def chinchilla_tokens(multiple: float, n_params: int) -> int:
    """Tokens for a model of `n_params` at `multiple` times the Chinchilla ratio."""
    return round(CHINCHILLA_TOKENS_PER_PARAM * multiple * n_params)


def _power_lr(rule: Any, architecture: str, n_params: int) -> float:
    """An LrRule's rate: `base` up to N = `at`, then falling as N^(−exponent)."""
    base = rule.base if isinstance(rule.base, float) else rule.base.get(architecture)
    base = base or DEFAULT_LR_BASE[architecture]  # architectures a mapping leaves out
    return base * min(1.0, (n_params / rule.at) ** -rule.exponent)


LR_RULES = {"power": _power_lr}  # train.lr's `rule:` -> the peak learning rate at N


def _train_lr(study: StudySpec, architecture: str, n_params: int) -> float:
    """The one rate of a `fixed` study at N: train.lr's value, or its rule's (the default rule
    where train.lr sweeps multiples)."""
    lr = study.train.lr
    if isinstance(lr, int | float):
        return lr
    if isinstance(lr, list):
        return lr[0]  # the first rate of a sweep
    rule = lr if hasattr(lr, "rule") else DEFAULT_LR_RULE
    return LR_RULES[rule.rule](rule, architecture, n_params)


def lr_points(study: StudySpec) -> list[tuple[float | None, float | None]]:
    """The learning rates a study sweeps, one trial each, as (rate, multiple): absolute rates
    (train.lr a list), multiples of the rule's rate at N (train.lr {sweep: [...]}), or one
    (None, None): the recipe's or rule's rate."""
    lr = study.train.lr
    if isinstance(lr, list):
        return [(rate, None) for rate in lr]
    if hasattr(lr, "sweep"):
        return [(None, multiple) for multiple in lr.sweep]
    return [(None, None)]


def lr_suffix(study: StudySpec, lr: float, multiple: float | None) -> str:
    """What a trial's id says of its learning rate: `-lrx0.5` for a multiple of a sweep of
    several, `-lr0.003` for a rate of a sweep, nothing without a sweep."""
    swept = study.train.lr
    several = len(swept) if isinstance(swept, list) else len(getattr(swept, "sweep", ()))
    if several < 2:
        return ""
    return f"-lrx{multiple:g}" if multiple is not None else f"-lr{lr:.3g}"


def flops_per_token(size: Size, study: StudySpec, vocab_size: int) -> float:
    """Training FLOPs per token of a size at the study's sequence length (6N plus attention
    and the output projection)."""
    shape = size.shape
    return account(size.architecture, shape.n_layer, shape.n_embd, vocab_size,
                   study.data.seq_len).flops_per_token  # fmt: skip


def _tokens(size: Size, budget: CellBudget, study: StudySpec, vocab_size, batch: int) -> int:
    if budget.chinchilla:
        return chinchilla_tokens(budget.chinchilla, size.n_params)
    if not budget.flops:
        return budget.tokens
    per_step = batch * study.data.seq_len
    steps = round(budget.flops / (flops_per_token(size, study, vocab_size) * per_step))
    return steps * per_step  # whole steps: 0 where one step costs over twice the budget


def schedule_of(study: StudySpec) -> tuple[str, float, str]:
    """(name, cooldown, shape) of the trials' schedule: train.schedule where the study file
    gives it, else the rule set's (orchestrator.rulesets.SCHEDULES), else cosine."""
    train = study.train
    if "schedule" not in train.model_fields_set and study.recipe.name in SCHEDULES:
        return SCHEDULES[study.recipe.name]
    wsd = None if train.schedule == "cosine" else train.schedule
    return ("wsd", wsd.cooldown, wsd.shape) if wsd else ("cosine", 0.0, "linear")


def _budget_tokens(size: Size, budget: CellBudget, study: StudySpec, vocab_size) -> float:
    """D before the batch is known: a FLOP budget's tokens as a real number."""
    if budget.tokens or budget.chinchilla:
        return _tokens(size, budget, study, vocab_size, 1)
    return budget.flops / flops_per_token(size, study, vocab_size)


def plan(
    size: Size,
    budget: CellBudget,
    study: StudySpec,
    *,
    vocab_size: int | None = None,
    lr: float | None = None,
    lr_multiple: float | None = None,
) -> TrainPlan:
    """How `size` is trained at `budget` under the study's recipe (`fixed`: its train.*
    settings). FLOP budgets need the vocabulary's size; `lr` is one rate of a sweep, or
    `lr_multiple` a multiple of the rule's rate (default: the rule's rate at N)."""
    if budget.flops and vocab_size is None:
        raise ValueError("FLOP budgets need the vocabulary size of the prepared data")
    train, recipe = study.train, study.recipe
    name, cooldown, shape = schedule_of(study)
    if recipe.is_fixed():
        rate = _train_lr(study, size.architecture, size.n_params)
        batch, betas = train.batch_size, tuple(train.betas)
        warmup_tokens, weight_decay = 0, train.weight_decay
    else:
        c = constants_of(recipe.name, recipe.constants(size.architecture))
        seq_len, s = study.data.seq_len, size.shape
        per_token = deepseek_flops_per_token(size.n_params, s.n_layer, s.n_embd, seq_len)
        compute = per_token * _budget_tokens(size, budget, study, vocab_size)
        rules = rates(recipe.name, c, n_params=size.n_params, compute=compute,
                      wsd=name == "wsd")  # fmt: skip
        rate, batch = rules.lr, sequences(rules.batch_tokens, seq_len)
        betas = (train.betas[0], beta2_for(recipe.name, c, batch * seq_len))
        warmup_tokens, weight_decay = rules.warmup_tokens, rules.weight_decay
    return TrainPlan(
        tokens=_tokens(size, budget, study, vocab_size, batch),
        batch_size=batch,
        lr=lr if lr is not None else rate * (1.0 if lr_multiple is None else lr_multiple),
        min_lr_ratio=train.min_lr_ratio,
        warmup=train.warmup,
        schedule=name,
        weight_decay=weight_decay,
        grad_clip=train.grad_clip,
        betas=betas,
        cooldown=cooldown,
        cooldown_shape=shape,
        warmup_tokens=warmup_tokens,
    )
