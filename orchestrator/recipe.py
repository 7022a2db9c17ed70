"""How a model of each size is trained: the one place that turns a size, a budget and a study's
settings into a training plan (tokens, batch, learning rate, warmup, schedule, optimizer).

As OLMo-core's model ladder keeps "what model is size s" (orchestrator.sizes, the ladder) apart
from "how a model of N parameters is trained" (its run configurator), `plan` is the only maker
of the numbers a trial trains with; `grid.expand` calls it and the trainer only reads them (as
the trial's `Optim` and `Budget`). Rule sets of other recipes (a learning rate, a batch or
tokens as functions of N, D or C) join `LR_RULES` here.

Nothing here imports the study file's schema (it imports this module): the study's settings
are read by their field names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from orchestrator.sizes import Shape, flops_text, format_count
from trainers.architectures import ARCHITECTURES, account
from trainers.trial import Budget, Optim


class StudySpec(Protocol):
    """What a recipe reads of a study (an orchestrator.spec.StudySpec, which imports this
    module, so it is named here by its shape): `train` (batch_size, lr, min_lr_ratio, warmup,
    schedule, weight_decay, grad_clip, betas) and `data.seq_len`."""

    @property
    def train(self) -> Any: ...

    @property
    def data(self) -> Any: ...


CHINCHILLA_TOKENS_PER_PARAM = 20  # Hoffmann et al. 2022: compute-optimal at about 20 tokens per N
DEFAULT_LR_BASE = {name: a.lr_base for name, a in ARCHITECTURES.items()}  # see the registry


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


def learning_rates(study: StudySpec, architecture: str, n_params: int) -> list[float]:
    """The peak learning rates a model is trained with: one (a value, or the rule's at N), or
    the list a study sweeps."""
    lr = study.train.lr
    if isinstance(lr, list):
        return lr
    if isinstance(lr, int | float):
        return [lr]
    return [LR_RULES[lr.rule](lr, architecture, n_params)]


def flops_per_token(size: Size, study: StudySpec, vocab_size: int) -> float:
    """Training FLOPs per token of a size at the study's sequence length (6N plus attention
    and the output projection)."""
    shape = size.shape
    return account(size.architecture, shape.n_layer, shape.n_embd, vocab_size,
                   study.data.seq_len).flops_per_token  # fmt: skip


def _tokens(size: Size, budget: CellBudget, study: StudySpec, vocab_size: int | None) -> int:
    if budget.chinchilla:
        return chinchilla_tokens(budget.chinchilla, size.n_params)
    if not budget.flops:
        return budget.tokens
    if vocab_size is None:
        raise ValueError("FLOP budgets need the vocabulary size of the prepared data")
    per_step = study.train.batch_size * study.data.seq_len
    steps = round(budget.flops / (flops_per_token(size, study, vocab_size) * per_step))
    return steps * per_step  # whole steps: 0 where one step costs over twice the budget


def plan(
    size: Size,
    budget: CellBudget,
    study: StudySpec,
    *,
    vocab_size: int | None = None,
    lr: float | None = None,
) -> TrainPlan:
    """How `size` is trained at `budget` under the study's settings. FLOP budgets need the
    vocabulary's size; `lr` is one rate of a sweep (default: the study's rate at N, the first
    of a sweep)."""
    train = study.train
    wsd = None if train.schedule == "cosine" else train.schedule
    return TrainPlan(
        tokens=_tokens(size, budget, study, vocab_size),
        batch_size=train.batch_size,
        lr=learning_rates(study, size.architecture, size.n_params)[0] if lr is None else lr,
        min_lr_ratio=train.min_lr_ratio,
        warmup=train.warmup,
        schedule="wsd" if wsd else "cosine",
        weight_decay=train.weight_decay,
        grad_clip=train.grad_clip,
        betas=tuple(train.betas),
        cooldown=wsd.cooldown if wsd else 0.0,
        cooldown_shape=wsd.shape if wsd else "linear",
    )
