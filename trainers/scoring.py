"""Scoring a finished trial again, from the weights it left, under the evaluation settings its
spec carries now: the evaluation stage (`study eval`). Nothing is trained.

Like `train`, a plain function without ray or sqlalchemy: `score_trial(spec, "final", print)`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from trainers import zeroshot
from trainers.checkpoint import load_weights, scorable
from trainers.events import Event, Scored, ZeroShotProgress
from trainers.objectives import objective_for
from trainers.trial import TrialSpec


def score_trial(
    spec: TrialSpec,
    checkpoints: str,
    report: Callable[[Event], None],
    skip: frozenset[int] = frozenset(),
) -> list[int]:
    """Score the trial's final weights (`checkpoints` "final") or every weights it kept ("all")
    but the steps in `skip`: for each, report a `Scored` event with the validation loss and the
    zero-shot results under `spec.eval`. Returns the steps scored. Raises FileNotFoundError when
    the trial left no final weights."""
    from trainers.train import (
        _device,
        _precision,
        _token_data,
        _validation_batches,
        build_model,
        evaluate,
    )

    found = scorable(spec)
    if spec.steps not in found:
        raise FileNotFoundError(
            f"{spec.trial_id} left no final weights to score (looked for final.pt under "
            f"{spec.placement.storage or 'no storage'}/{spec.study}/{spec.trial_id}): train it "
            "again, or keep its storage"
        )
    steps = [spec.steps] if checkpoints == "final" else list(found)
    device = _device(spec)
    if device.type == "cpu":
        torch.set_num_threads(max(1, int(spec.placement.cpus)))
    data = _token_data(spec)
    objective = objective_for(spec.model.architecture, spec.data.seq_len)
    model = build_model(spec, data.vocab_size).to(device)
    amp = _precision(device)
    val_batches = _validation_batches(spec, data, objective)
    done = []
    for step in steps:
        if step in skip:
            continue
        try:
            load_weights(spec, found[step], model)
        except RuntimeError:
            if step == spec.steps:
                raise
            continue  # kept by an earlier trial of this id (another hash): not this one's
        model.to(device)
        tokens = step * spec.tokens_per_step

        def scoring(so_far: int, total: int, step: int = step, tokens: int = tokens) -> None:
            report(ZeroShotProgress(step=step, tokens=tokens, done=so_far, total=total))

        with amp:
            val_loss = evaluate(model, val_batches, device, spec.placement.micro_batch)
            results = (
                zeroshot.evaluate(model, spec.model.architecture, data, spec, scoring)
                if spec.eval.tasks and math.isfinite(val_loss)
                else []
            )
        report(Scored(step=step, tokens=tokens, eval_key=spec.eval_key,
                      val_loss=val_loss, results=results, final=step == spec.steps))  # fmt: skip
        done.append(step)
    return done
