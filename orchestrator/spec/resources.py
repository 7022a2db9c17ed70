"""The study file's `resources:`: what each trial asks Ray for, its CPUs and GPUs, and how many
workers it trains on (one process each, Ray Train's), as one number or a rule of N."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
)

from orchestrator.localray import DEFAULT_START_TIMEOUT_S
from orchestrator.sizes import parse_count, storable_count

# as schema.py's, which imports this module
Count = Annotated[int, BeforeValidator(parse_count), AfterValidator(storable_count)]
Flops = Annotated[int, BeforeValidator(parse_count)]  # stored as floats: no integer bound
Strategy = Literal["ddp", "fsdp"]  # torch's DistributedDataParallel, or FSDP2 (sharded)


class _Strict(BaseModel):
    # inf GPUs would reach int() in _gpu_count as an OverflowError; inf and NaN are no count
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _gpu_count(value: float) -> float:
    # Ray schedules fractions of one GPU, and whole GPUs; not 1.5 of them.
    if value > 1 and value != int(value):
        raise ValueError(f"{value} GPUs: a trial takes a fraction of one GPU or whole GPUs")
    return value


GpuCount = Annotated[float, Field(ge=0), AfterValidator(_gpu_count)]


class GpuRule(_Strict):
    """GPUs for the trials whose N is at most `max_params` (no `max_params`: all larger ones)."""

    max_params: Count | None = Field(
        None, gt=0, description="non-embedding N; omit in the last", examples=["20M"]
    )
    gpus: GpuCount = Field(description="GPUs per trial of these sizes", examples=[0.25])


class SpreadRule(_Strict):
    """Workers for the trials whose N is at most `max_params` (no `max_params`: all larger
    ones), and optionally their strategy and GPUs per worker."""

    max_params: Count | None = Field(
        None, gt=0, description="non-embedding N; omit in the last", examples=["50M"]
    )
    workers: int = Field(
        ge=1, description="worker processes per trial of these sizes", examples=[8]
    )
    strategy: Strategy | None = Field(
        None, description="default: resources.strategy", examples=["fsdp"]
    )
    gpus_per_worker: GpuCount | None = Field(
        None, description="default: resources.gpus_per_worker", examples=[1]
    )
    micro_batch: int | None = Field(
        None, ge=1, description="default: resources.micro_batch", examples=[4]
    )


def _rule_of_n(value, what: str, key: str, example: str):
    """A rule of N checked: entries of rising max_params, the last one without any."""
    if not isinstance(value, list):
        return value
    bounds = [rule.max_params for rule in value]
    if not bounds or bounds[-1] is not None or None in bounds[:-1]:
        raise ValueError(
            f"a {what} rule is a list of {{max_params, {key}}} ending with one without "
            f"max_params (the larger models): {example}"
        )
    if bounds[:-1] != sorted(set(bounds[:-1])):
        raise ValueError(f"the max_params of a {what} rule increase from one entry to the next")
    return value


def _rule_for(rules: list, n_params: int):
    """The entry of a rule of N that covers `n_params`."""
    return next(r for r in rules if r.max_params is None or n_params <= r.max_params)


@dataclass(frozen=True)
class Spread:
    """How one trial runs: on how many workers, each with these CPUs and GPUs."""

    workers: int
    cpus: int
    gpus: float
    strategy: str
    micro_batch: int | None = None  # sequences per forward pass on a worker (None: its share)


class ResourcesSpec(_Strict):
    """What each trial asks Ray for. A trial on several workers asks it of each worker."""

    cpus_per_trial: int = Field(1, gt=0, description="CPUs, and torch threads on CPU")
    gpus_per_trial: Annotated[
        Annotated[GpuCount, Tag("gpus-count")] | Annotated[list[GpuRule], Tag("gpus-rule")],
        Discriminator(lambda v: "gpus-rule" if isinstance(v, list) else "gpus-count"),
    ] = Field(0, description="GPUs (fractions allowed), or a rule of N: [{max_params, gpus}]")
    workers: Annotated[
        Annotated[int, Field(ge=1), Tag("workers-count")]
        | Annotated[list[SpreadRule], Tag("workers-rule")],
        Discriminator(lambda v: "workers-rule" if isinstance(v, list) else "workers-count"),
    ] = Field(1, description="processes a trial trains on (Ray Train), or a rule of N: "
              "[{max_params, workers, strategy, gpus_per_worker, micro_batch}]")  # fmt: skip
    cpus_per_worker: int | None = Field(
        None, gt=0, description="as cpus_per_trial, per worker", examples=[2]
    )
    gpus_per_worker: GpuCount | None = Field(
        None,
        description="GPUs each worker needs: no falling back to the CPU without them",
        examples=[1],
    )
    strategy: Strategy = Field("ddp", description="how workers share the model: ddp or fsdp")
    micro_batch: int | None = Field(
        None,
        ge=1,
        description="the most sequences a worker puts through one forward pass: a larger "
        "share of the batch is split and its gradients accumulated (the same update; not "
        "part of a trial's identity); default: the whole share",
        examples=[4],
    )
    peak_flops: Flops | None = Field(
        None, description="FLOP/s a trial's MFU is measured against; default: by device"
    )
    max_retries: int = Field(
        0, ge=0, description="times a failed trial runs again in the same run (from its checkpoint)"
    )
    ray_start_timeout: float = Field(
        DEFAULT_START_TIMEOUT_S,
        gt=0,
        description="seconds a local Ray instance may take to start; then the run ends its "
        "processes and names its logs (env STUDY_RAY_START_TIMEOUT overrides it)",
        examples=[600],
    )

    @field_validator("gpus_per_trial")
    @classmethod
    def _gpu_rule(cls, value):
        return _rule_of_n(value, "GPU", "gpus", "[{max_params: 10M, gpus: 0.25}, {gpus: 1}]")

    @field_validator("workers")
    @classmethod
    def _workers_rule(cls, value):
        example = "[{max_params: 50M, workers: 1}, {workers: 8}]"
        return _rule_of_n(value, "workers", "workers", example)

    def spread_for(self, n_params: int) -> Spread:
        """How a trial of `n_params` non-embedding parameters runs: workers, each one's CPUs and
        GPUs, and the strategy."""
        rule = _rule_for(self.workers, n_params) if isinstance(self.workers, list) else None
        gpus = self.gpus_per_trial
        if isinstance(gpus, list):
            gpus = _rule_for(gpus, n_params).gpus
        if rule is not None and rule.gpus_per_worker is not None:
            gpus = rule.gpus_per_worker
        elif self.gpus_per_worker is not None:
            gpus = self.gpus_per_worker
        return Spread(
            workers=rule.workers if rule else self.workers,
            cpus=self.cpus_per_worker or self.cpus_per_trial,
            gpus=gpus,
            strategy=(rule and rule.strategy) or self.strategy,
            micro_batch=(rule and rule.micro_batch) or self.micro_batch,
        )

    def conflict(self) -> tuple[str, str] | None:
        """The field that contradicts another, and why (None if none): per trial and per worker
        are one amount, a process's, given once; a GPU shared by several workers of one trial
        is refused (their collectives would queue on one device)."""
        for kind in ("cpus", "gpus"):
            if {f"{kind}_per_trial", f"{kind}_per_worker"} <= self.model_fields_set:
                return f"{kind}_per_worker", (
                    f"give {kind}_per_trial or {kind}_per_worker, not both: each is what one "
                    "process of a trial gets"
                )
        rules = self.workers if isinstance(self.workers, list) else [None]
        for rule in rules:
            workers = rule.workers if rule else self.workers
            given = {"workers": rule and rule.gpus_per_worker,
                     "gpus_per_worker": self.gpus_per_worker,
                     "gpus_per_trial": self.gpus_per_trial}  # fmt: skip
            for field, gpus in given.items():
                if workers > 1 and isinstance(gpus, float) and gpus != int(gpus):
                    return field, (f"a trial on {workers} workers takes whole GPUs per worker "
                                   f"(got {gpus:g}): a GPU shared by its workers would run "
                                   "their collectives in turn")  # fmt: skip
        return None

    @property
    def gpus_required(self) -> bool:
        """Whether GPUs are asked per worker: such trials never fall back to the CPU."""
        rules = self.workers if isinstance(self.workers, list) else []
        asked = [self.gpus_per_worker, *(r.gpus_per_worker for r in rules)]
        return any((g or 0) > 0 for g in asked)

    @property
    def wants_gpus(self) -> bool:
        """Whether any trial asks for a GPU."""
        rules = self.gpus_per_trial
        asked = any(r.gpus > 0 for r in rules) if isinstance(rules, list) else rules > 0
        return asked or self.gpus_required
