"""TrialSpec: the fully resolved configuration of one pre-training run, its identity and the key
of its evaluation settings.

A trial is six parts: what is trained (`model`), on what (`data`), how (`optim`), for how long
(`budget`), how it is measured (`eval`) and where it runs (`placement`). Its `hash` covers what
training computes: model, data, optim, budget and the seed. Evaluation settings have a key of
their own (`eval_key`), so scoring more zero-shot items never retrains; placement is never
hashed, so moving a study to other hardware finds its finished trials.

A field whose value equals its declared default is left out of the hash and the key: a field
added later with a default that keeps today's behaviour changes no stored hash. So a default
declared here must never change.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import MISSING, asdict, dataclass, fields, is_dataclass


@dataclass(frozen=True)
class Model:
    """The network: architecture and shape."""

    architecture: str
    n_layer: int
    n_embd: int
    n_head: int
    dropout: float = 0.0
    mlm_head: bool = False  # the encoder's masked-LM head (dense, GELU, norm); every encoder
    # since it was added (2026-12): the encoders trained before it keep their own hashes


@dataclass(frozen=True)
class Data:
    """The text and how it becomes tokens."""

    corpus: str  # builtin:<name>, or the JSON of a source (trainers.corpora)
    tokenizer: str  # bytes, bpe:<vocabulary size>, or the path of a tokenizer.json
    seq_len: int
    val_fraction: float
    heldout_fraction: float
    split_seed: int
    key: str = ""  # the token cache's key: changes when the corpus's content does


@dataclass(frozen=True)
class Optim:
    """AdamW with a linear warmup, then the schedule's decay (trainers.schedules)."""

    batch_size: int
    lr: float
    min_lr_ratio: float
    warmup: float  # fraction of the steps spent warming up linearly
    weight_decay: float
    grad_clip: float
    beta1: float
    beta2: float
    schedule: str = "cosine"  # or "wsd": warmup, constant, cooldown (trainers.schedules)
    cooldown: float = 0.0  # wsd: the fraction of the steps cooling down
    cooldown_shape: str = "linear"  # wsd: "linear" or "1-sqrt"
    warmup_tokens: int = 0  # the warmup in tokens (a recipe's rule of N); 0: `warmup` of steps


@dataclass(frozen=True)
class Budget:
    """How much is trained."""

    tokens: int  # tokens fed to the model


@dataclass(frozen=True)
class Eval:
    """How a trial is measured: the validation loss and the zero-shot tasks."""

    every_tokens: int
    tokens: int  # validation tokens per evaluation (and held-out tokens of bits per byte)
    tasks: tuple[str, ...] = ("last_word", "next_sentence", "minimal_pairs")
    items: int = 1000
    seed: int = 0  # of the zero-shot items
    at_every_eval: bool = False  # zero-shot at every evaluation, not only the last
    pll_stride: int = 7  # encoder: tokens masked together when scoring

    def __post_init__(self):
        object.__setattr__(self, "tasks", tuple(self.tasks))  # JSON gives back a list


@dataclass(frozen=True)
class Placement:
    """Where and how fast a trial runs; none of it changes what it computes."""

    cpus: int = 1
    gpus: float = 0
    workers: int = 1  # processes the trial trains on (Ray Train workers); cpus, gpus: each
    strategy: str = "ddp"  # how the workers share the model: ddp, or fsdp (sharded)
    micro_batch: int = 0  # sequences per forward pass on a worker, gradients accumulated; 0: all
    storage: str = ""  # folder for checkpoints and token files; empty saves none
    checkpoint_every_tokens: int = 0  # 0: at every evaluation
    peak_flops: float = 0  # FLOP/s that MFU is measured against; 0: a table by device
    cpu_peak_flops: float = 0  # the CPU's, measured by `study run` before its trials (0: here)
    compile: bool = False  # torch.compile the model
    keep_checkpoints: bool = False  # keep the weights of every evaluation point (step-N.pt)
    # One run for many budgets (orchestrator.branches): a trunk keeps its resumable state at
    # each branch point (branch-<step>.pt); a branch starts from the trunk's at its own. Which
    # trial starts from which file says where the work is done, not what it computes.
    branch_points: tuple[int, ...] = ()  # a trunk: the steps whose train state it keeps
    parent: str = ""  # a branch: the trial id of its trunk (whose branch-<step>.pt it starts
    # from, the step its own cooldown starts at)

    def __post_init__(self):
        object.__setattr__(self, "branch_points", tuple(self.branch_points))  # JSON: a list


PARTS = {"model": Model, "data": Data, "optim": Optim, "budget": Budget, "eval": Eval,
         "placement": Placement}  # fmt: skip


def _identity(value):
    """A dataclass as a dict of its fields, those at their declared default left out."""
    if not is_dataclass(value):
        return list(value) if isinstance(value, tuple) else value
    out = {}
    for f in fields(value):
        v = getattr(value, f.name)
        if f.default is not MISSING and v == f.default:
            continue
        out[f.name] = _identity(v)
    return out


def identity_hash(*parts) -> str:
    """A stable 16-hex-digit hash of dataclasses and plain values (defaults left out)."""
    return _digest([_identity(p) for p in parts])


def _digest(value) -> str:
    blob = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TrialSpec:
    """Everything a trainer needs to run one trial; plain data, picklable, JSON round-trips."""

    study: str
    trial_id: str
    size: str  # the label ("1M"); the measured N is stored beside it
    seed: int
    model: Model
    data: Data
    optim: Optim
    budget: Budget
    eval: Eval
    placement: Placement = Placement()
    budget_flops: float = 0  # the FLOP budget the cell was planned to spend (0: token budget)

    @property
    def hash(self) -> str:
        """The identity of what the trial computes: model, data, optim, budget and seed."""
        return identity_hash(self.model, self.data, self.optim, self.budget, self.seed)

    @property
    def eval_key(self) -> str:
        """The key of how the trial is scored (stored with its zero-shot results): validation
        tokens and the zero-shot settings. The cadence is left out: it says when a trial is
        scored, not how, and each result carries its step."""
        settings = _identity(self.eval)
        settings.pop("every_tokens")
        return _digest([settings])

    @property
    def steps(self) -> int:
        """Optimizer steps needed to feed the budget's tokens (the last batch may overshoot)."""
        return steps_for(self.budget.tokens, self.tokens_per_step)

    @property
    def tokens_per_step(self) -> int:
        return self.optim.batch_size * self.data.seq_len

    @property
    def eval_every(self) -> int:
        """Steps between evaluation points (the last step is one as well)."""
        return max(1, round(self.eval.every_tokens / self.tokens_per_step))

    def to_dict(self) -> dict:
        """Plain nested dict of every field, for JSON and for the store."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrialSpec:
        """Inverse of `to_dict`; unknown keys are an error, missing ones take their default."""
        _check_keys(cls, data, "TrialSpec")
        values = dict(data)
        for name, part in PARTS.items():
            if name in values:
                _check_keys(part, values[name], name)
                values[name] = part(**values[name])
        return cls(**values)


def steps_for(tokens: int, tokens_per_step: int) -> int:
    """Optimizer steps that feed `tokens` (the last batch may overshoot), at least one."""
    return max(1, -(-tokens // tokens_per_step))


def _check_keys(cls, data: dict, where: str) -> None:
    unknown = set(data) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"unknown {where} fields: {sorted(unknown)}")
