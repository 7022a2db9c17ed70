"""Learning-rate schedules: the rate of every step of a trial, and how a card says it.

Two schedules, both with a linear warmup to the peak rate:
- `cosine`: cosine decay from the end of the warmup to `min_lr_ratio · lr` at the last step;
- `wsd` (warmup, stable, decay): the peak rate held constant, then a cooldown over the last
  `cooldown` fraction of the steps to `min_lr_ratio · lr`, linear or 1 − sqrt (Hägele et al.
  2024, "Scaling Laws and Compute-Optimal Training Beyond Fixed Training Durations", find
  1 − sqrt over 20% of the steps matches cosine).

Under WSD with the warmup given in tokens (`warmup_tokens`), a trial's rates up to its cooldown
do not depend on its length: a longer run passes through the same steps, which is what lets
one run branch a cooldown at each smaller budget (trainers.checkpoint, orchestrator.branches).
"""

from __future__ import annotations

import math

from trainers.trial import Optim, TrialSpec

SCHEDULES = ("cosine", "wsd")
COOLDOWN_SHAPES = ("linear", "1-sqrt")


def phases(optim: Optim, steps: int, tokens_per_step: int) -> tuple[int, int]:
    """(steps of the linear warmup, first step of the cooldown) of a run of `steps`: the
    warmup is `warmup_tokens` where given, else a fraction of the steps; a cosine run has no
    cooldown (its first step would be `steps`)."""
    if optim.warmup_tokens > 0:
        warmup = max(1, round(optim.warmup_tokens / tokens_per_step))
    else:
        warmup = max(1, round(optim.warmup * steps))
    if optim.schedule != "wsd":
        return warmup, steps
    return warmup, steps - max(1, round(optim.cooldown * steps))


def warmup_steps(spec: TrialSpec) -> int:
    """Steps of a trial's linear warmup."""
    return phases(spec.optim, spec.steps, spec.tokens_per_step)[0]


def cooldown_start(spec: TrialSpec) -> int:
    """The first step of a WSD trial's cooldown (its last step + 1 for cosine: none)."""
    return phases(spec.optim, spec.steps, spec.tokens_per_step)[1]


def too_short(optim: Optim, steps: int, tokens_per_step: int) -> str:
    """Why a run of `steps` cannot follow its schedule (its warmup would not end before its
    cooldown starts, or before its last step), or ""."""
    warmup, start = phases(optim, steps, tokens_per_step)
    if warmup <= start:
        return ""
    where = f"its cooldown starts (step {start:,})" if optim.schedule == "wsd" else "it ends"
    return f"its warmup of {warmup:,} steps would not end before {where}, {steps:,} steps in all"


def lr_at(step: int, spec: TrialSpec) -> float:
    """The learning rate of optimizer step `step` (0-based)."""
    o = spec.optim
    warmup = warmup_steps(spec)
    if step < warmup:
        return o.lr * (step + 1) / warmup
    if o.schedule == "wsd":
        start = cooldown_start(spec)
        if step < start:
            return o.lr
        progress = (step - start + 1) / (spec.steps - start)  # 1 at the last step
        left = 1.0 - progress if o.cooldown_shape == "linear" else 1.0 - math.sqrt(progress)
        return o.lr * (o.min_lr_ratio + (1.0 - o.min_lr_ratio) * left)
    progress = (step - warmup) / max(1, spec.steps - warmup)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return o.lr * (o.min_lr_ratio + (1.0 - o.min_lr_ratio) * cosine)


def describe(spec: TrialSpec) -> str:
    """The schedule in one line, for a model card."""
    o = spec.optim
    floor = f"{o.lr * o.min_lr_ratio:.3g}"
    head = f"linear warmup over {warmup_steps(spec):,} steps to {o.lr:.3g}, then "
    if o.schedule == "wsd":
        cool = spec.steps - cooldown_start(spec)
        return head + (f"constant until step {cooldown_start(spec):,}, then a {o.cooldown_shape} "
                       f"cooldown over {cool:,} steps to {floor}")  # fmt: skip
    return head + f"cosine decay to {floor} at the last step"
