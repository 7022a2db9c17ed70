"""How long a study takes on this machine: `study plan`'s one estimate of a run's wall-clock
time, from each trial's FLOPs and tokens, its validation evaluations and its zero-shot items,
with the trials run side by side as the machine's cores allow.

The constants are calibrated on the 2-core CPU machine of BENCHMARKS.md (AMD EPYC, torch
2.13.0+cpu); a faster or slower CPU shifts every trial alike. Trials on GPUs get no estimate."""

from __future__ import annotations

import heapq
import os
from dataclasses import dataclass

# One CPU thread trains a step of B tokens in B·FLOPs / TRAIN_FLOPS_PER_S + STEP_S seconds,
# fitted to BENCHMARKS.md, "MFU on the CPU against a measured peak (2026-12-01, issue 19)": the
# quickstart's decoders (MFU 31.0% at 25K parameters, 0.32 MFLOP a token; 71.4% at 1M, 7.2
# MFLOP a token; of a 115.9 GFLOP/s peak, two trials side by side; 2,048 tokens a step) ran
# at 36 and 83 GFLOP/s: 88 GFLOP/s on the FLOPs and 10.9 ms a step besides (small kernels,
# the optimizer). Its other architectures' trials come within 20%. VOCAB_S a token per entry
# of the vocabulary: the softmax and cross-entropy over it, which FLOPs do not count, set so
# that the four studies' measured runs come within 20% (the quickstart 2 min 49 s, issue 20;
# studies/isoflop.yaml's grid 9 min, "The reference forecast, verified" (issue 32);
# studies/scaling.yaml 11 min 32 s and studies/lr-sweep.yaml 7 min 35 s, issue 31).
TRAIN_FLOPS_PER_S = 8.8e10
STEP_S = 0.0109
VOCAB_S = 5e-9
# A validation token is a forward pass: a third of a training token's time.
FORWARD_SHARE = 1 / 3
# Zero-shot scoring, seconds an item at 1M parameters, one thread, byte tokens: BENCHMARKS.md,
# "Quickstart, three architectures, on a 2-core CPU machine (2026-11-28)" (200 items a task:
# decoder 16.2 s, encoder 87.0 s, encdec 50.1 s for 600 items) over the speed-ups of "Zero-shot
# scoring's share of a trial (2026-12-01, issue 18)" at 1M (1.8x, 2.1x, 1.7x). An item at 100K
# parameters takes a sixth to a quarter of that (issue 18's table): SCORE_FLOOR of it is fixed.
SCORE_S_AT_1M = {"decoder": 0.015, "encoder": 0.069, "encdec": 0.049}
SCORE_FLOOR = 0.15
# A trial on several workers starts a Ray Train controller and its worker processes first:
# 17.6 to 21.2 s on the 2-core machine (BENCHMARKS.md, "Trials on several workers", issue 33).
RAY_TRAIN_START_S = 19.0
# What a run spends outside its trials: Ray's start (~8 s), the fits and the report (~5 s) and
# starting Python (BENCHMARKS.md, "Quickstart, three architectures ..." and "Fit speed under
# load (2026-12-01, issue 19)").
FIXED_S = 20.0


def trial_seconds(
    trial, *, flops_per_token: float, tokens: float, n_params: int, vocab_size: int
) -> float:
    """One trial's wall-clock seconds on its CPUs: `tokens` trained (those it is charged for),
    its validation evaluations and its zero-shot scoring."""
    threads = trial.placement.cpus * trial.placement.workers
    per_token = (flops_per_token / TRAIN_FLOPS_PER_S + vocab_size * VOCAB_S) / threads
    per_token += STEP_S / trial.tokens_per_step
    evaluations = trial.steps // trial.eval_every + 1  # the last step is one as well
    validation = evaluations * trial.eval.tokens * per_token * FORWARD_SHARE
    items = len(trial.eval.tasks) * trial.eval.items * (evaluations if trial.eval.at_every_eval
                                                        else 1)  # fmt: skip
    per_item = SCORE_S_AT_1M.get(trial.model.architecture, max(SCORE_S_AT_1M.values()))
    scale = SCORE_FLOOR + (1 - SCORE_FLOOR) * n_params / 1e6
    start = RAY_TRAIN_START_S if trial.placement.workers > 1 else 0.0
    return start + tokens * per_token + validation + items * per_item * scale / threads


@dataclass(frozen=True)
class Estimate:
    """A run's wall-clock estimate: minutes (None where trials train on GPUs), the cores it
    assumed and how many trials run side by side."""

    minutes: float | None
    cores: int
    side_by_side: int

    def phrase(self) -> str:
        """The estimate as `study plan` says it: "about 4 min on this machine (2 cores)"."""
        if self.minutes is None:
            return "no time estimate: its trials train on GPUs (the estimate is for CPUs)"
        at_once = f", {self.side_by_side} trials at a time" if self.side_by_side > 1 else ""
        amount = f"{self.minutes:.0f} min" if self.minutes >= 1.5 else "1 min"
        amount = amount if self.minutes < 120 else f"{self.minutes / 60:.1f} h"
        return f"about {amount} on this machine ({self.cores} cores{at_once})"

    def to_json(self) -> dict:
        """The estimate as `study plan --json` gives it."""
        return {"minutes": self.minutes, "cores": self.cores, "side_by_side": self.side_by_side,
                "text": self.phrase()}  # fmt: skip


def estimate_run(frame, cores: int | None = None) -> Estimate:
    """The run's wall-clock estimate from `api.plan`'s frame (its `cpu_minutes`): trials
    queued costliest first (as `study run` queues them), each on the next free slot of
    `cores` (default: this machine's), plus what a run spends outside its trials."""
    cores = cores or os.cpu_count() or 1
    if frame.empty:
        return Estimate(0.0, cores, 1)
    if (frame.gpus > 0).any():
        return Estimate(None, cores, 1)
    threads = int((frame.cpus * frame.workers).max())
    slots = max(1, cores // threads)
    free = [0.0] * slots
    for seconds in sorted(60 * frame.cpu_minutes, reverse=True):
        heapq.heappush(free, heapq.heappop(free) + seconds)
    return Estimate((max(free) + FIXED_S) / 60, cores, min(slots, len(frame)))
