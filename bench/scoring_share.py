"""The share of a trial's time that zero-shot scoring takes, at the reference study's settings
(studies/scaling.yaml: BPE 2,048, seq_len 128, 400 items per task, 1M tokens per trial), per
architecture and size, on one CPU thread as a trial runs.

    python bench/scoring_share.py [SIZES...]     # default: 100K 1M

Training time is the budget over the tokens/s of 20 timed steps (after 5 untimed); scoring is
`trainers.zeroshot.evaluate` on the same (untrained) model, timed once (its items made
before). share = scoring / (training + scoring).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def main(sizes: list[str]) -> None:
    from orchestrator.spec import load_study
    from orchestrator.stages import prepare_data, trials
    from trainers import zeroshot
    from trainers.data import sample_windows
    from trainers.objectives import objective_for
    from trainers.tasks import make_tasks
    from trainers.train import _optimizer, build_model

    torch.set_num_threads(1)
    spec = load_study(ROOT / "studies" / "scaling.yaml")
    data = prepare_data(spec)
    grid = {(t.model.architecture, t.size): t for t in trials(spec, data)}
    print("| architecture | size | training s (1M tokens) | scoring s | share |")
    print("|---|---|---|---|---|")
    for architecture in ("decoder", "encoder", "encdec"):
        for size in sizes:
            trial = grid[(architecture, size)]
            torch.manual_seed(0)
            model = build_model(trial, data.vocab_size)
            optimizer = _optimizer(model, trial.optim, torch.device("cpu"))
            objective = objective_for(architecture, trial.data.seq_len)
            rng = np.random.default_rng(0)
            for step in range(25):
                if step == 5:
                    started = time.perf_counter()
                windows = sample_windows(data.train, trial.optim.batch_size, objective.window, rng)
                loss = model.loss(objective.make(windows, data.tokenizer, rng))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            per_token = (time.perf_counter() - started) / (20 * trial.tokens_per_step)
            training = per_token * trial.budget.tokens
            key = (data.key, trial.eval.items, trial.eval.seed)  # the items, made once
            if key not in zeroshot._ITEMS:
                zeroshot._ITEMS[key] = make_tasks(list(data.heldout_documents), trial.eval.items,
                                                  trial.eval.seed)  # fmt: skip
            started = time.perf_counter()
            zeroshot.evaluate(model, architecture, data, trial)
            scoring = time.perf_counter() - started
            share = scoring / (training + scoring)
            print(f"| {architecture} | {size} | {training:.1f} | {scoring:.1f} | {share:.0%} |",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:] or ["100K", "1M"])
