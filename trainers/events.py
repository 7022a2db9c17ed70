"""What a trainer reports as it runs: one frozen dataclass per kind of event.

Events cross process boundaries (a Ray task's stream, a checkpoint's history) as plain dicts:
`to_dict` names the kind under "event", `from_dict` makes the typed event again. A misspelt or
missing field fails where the event is made, not where it is read.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import ClassVar


@dataclass(frozen=True, kw_only=True)
class Start:
    """A trial starts, or resumes from a checkpoint (its history up to there follows)."""

    kind: ClassVar[str] = "start"
    n_params: int  # non-embedding, measured on the model built
    total_params: int
    flops_per_token: int
    steps: int
    device: str  # "cpu" or the GPU's name
    threads: int  # torch threads
    resumed_step: int = 0
    resumed_tokens: int = 0
    inherited_tokens: int = 0  # a branch: its trunk's tokens it starts from, not trained by it
    eval_key: str = ""  # the evaluation settings its validation and zero-shot are measured by
    host: str = ""
    pid: int = 0
    node: str | None = None  # the Ray node, added by the scheduler
    workers: int = 1  # processes it trains on
    strategy: str = ""  # "ddp" where workers > 1

    @property
    def device_label(self) -> str:
        """Where the trial trains: "cpu x2" (torch threads) or the GPU."""
        return f"cpu x{self.threads}" if self.device == "cpu" else self.device


@dataclass(frozen=True, kw_only=True)
class Train:
    """A logged window of training steps."""

    kind: ClassVar[str] = "train"
    step: int
    tokens: int
    loss: float  # mean over the window
    lr: float
    tokens_per_s: float  # of the window's training steps only


@dataclass(frozen=True, kw_only=True)
class Validation:
    """The validation loss at an evaluation point."""

    kind: ClassVar[str] = "eval"
    step: int
    tokens: int
    val_loss: float


@dataclass(frozen=True, kw_only=True)
class ZeroShot:
    """Zero-shot results at an evaluation point, under the trial's evaluation settings."""

    kind: ClassVar[str] = "zeroshot"
    step: int
    tokens: int
    eval_key: str
    results: list[dict]  # rows: task, metric, value, n_items, chance, ci_low, ci_high, per_item


@dataclass(frozen=True, kw_only=True)
class ZeroShotProgress:
    """Zero-shot items being scored at an evaluation point: `done` of `total` so far. Progress
    alone: never kept in a checkpoint's history nor stored, so old histories read as before."""

    kind: ClassVar[str] = "scoring"
    step: int
    tokens: int
    done: int
    total: int


@dataclass(frozen=True, kw_only=True)
class Checkpoint:
    """A resumable checkpoint was written."""

    kind: ClassVar[str] = "checkpoint"
    step: int
    path: str


@dataclass(frozen=True, kw_only=True)
class End:
    """The trial reached its budget."""

    kind: ClassVar[str] = "end"
    step: int
    tokens: int
    tokens_scored: int  # tokens the loss was computed on
    epochs: float  # passes over the training split
    val_loss: float
    wall_s: float
    tokens_per_s: float  # training steps only: no evaluation, no checkpoints
    mfu: float
    checkpoint: str = ""  # the final weights, if the trial has storage
    checkpoint_bytes: int = 0  # their size and SHA-256, as written and read back
    checkpoint_sha256: str = ""


@dataclass(frozen=True, kw_only=True)
class Scored:
    """A finished trial's weights at one step scored again (`study eval`), under evaluation
    settings `eval_key`: the validation loss and the zero-shot results. Nothing is trained."""

    kind: ClassVar[str] = "scored"
    step: int
    tokens: int
    eval_key: str
    val_loss: float
    results: list[dict]  # as ZeroShot's
    final: bool  # the trial's last step (final.pt)


Event = Start | Train | Validation | ZeroShotProgress | ZeroShot | Checkpoint | End | Scored
KINDS: dict[str, type] = {
    c.kind: c
    for c in (Start, Train, Validation, ZeroShotProgress, ZeroShot, Checkpoint, End, Scored)
}


def to_dict(event: Event) -> dict:
    """An event as plain data: {"event": kind, field: value, ...}."""
    return {"event": event.kind, **asdict(event)}


def from_dict(data: dict) -> Event:
    """The typed event of `to_dict`'s output. Raises ValueError for an unknown kind or field."""
    values = dict(data)
    kind = values.pop("event", None)
    cls = KINDS.get(kind)
    if cls is None:
        raise ValueError(f"unknown event {kind!r}; known: {', '.join(KINDS)}")
    unknown = set(values) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"unknown fields of the {kind} event: {sorted(unknown)}")
    return cls(**values)
