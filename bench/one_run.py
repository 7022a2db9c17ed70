"""What one run for many budgets saves: one size's four doubling budgets trained from one run
(`budget: {..., from_one_run: true}`: the largest budget's trunk, a WSD cooldown branched off it
at each smaller one) and each budget on its own, through the trainer (`trainers.train.train`,
what each Ray task runs), one trial at a time.

Printed for each way: the FLOPs trained (FLOPs per token × the tokens each trial trained itself:
a branch's own are those after its trunk's prefix, Start.inherited_tokens), the wall time, and
each budget's final validation loss (the two ways' must be equal: a branch is the standalone
run of its budget); beside them the arithmetic ((1 − f)·D_max + f·ΣD) / ΣD.

Run: python bench/one_run.py [--size 50K] [--tokens 64K 128K 256K 512K] [--cooldown 0.2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace

from orchestrator import api
from orchestrator.branches import shared_fraction
from orchestrator.spec import parse_study
from trainers.train import train

STUDY = """
name: one-run
data: {{corpus: "builtin:kjv", tokenizer: bytes, seq_len: 64}}
architectures: [decoder]
sizes: [{size}]
budget: {{tokens: [{tokens}], from_one_run: true}}
train: {{batch_size: 8, lr: 3.0e-3, schedule: {{name: wsd, cooldown: {cooldown}, shape: 1-sqrt}}}}
eval: {{tokens: 4K, zero_shot: {{tasks: []}}}}
resources: {{cpus_per_trial: 1, peak_flops: 1T}}  # no CPU peak measured in the first trial
storage: {storage}
"""


def _train(trial):
    """Train one trial; its own FLOPs (after any inherited prefix), wall time and final loss."""
    events = []
    started = time.perf_counter()
    end = train(trial, events.append)
    wall = time.perf_counter() - started
    start = events[0]
    return start.flops_per_token * (end.tokens - start.inherited_tokens), wall, end.val_loss


def main() -> None:
    """Train the budgets both ways and print what each cost."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="50K")
    parser.add_argument("--tokens", nargs="+", default=["64K", "128K", "256K", "512K"])
    parser.add_argument("--cooldown", type=float, default=0.2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        text = STUDY.format(size=args.size, tokens=", ".join(args.tokens),
                            cooldown=args.cooldown, storage=folder)  # fmt: skip
        study = parse_study(text)
        trials = api.trials(study, api.prepare_data(study))
        *branches, trunk = trials
        warm = replace(branches[0].placement, storage=f"{folder}/warm", parent="")
        _train(replace(branches[0], placement=warm))  # torch's first-call costs, untimed
        one_run = {t.trial_id: _train(t) for t in (trunk, *branches)}  # the trunk first
        plain = replace(trunk.placement, storage=f"{folder}/alone", branch_points=())
        alone = {t.trial_id: _train(replace(t, placement=replace(plain, parent="")))
                 for t in trials}  # fmt: skip
    tokens = [t.steps * t.tokens_per_step for t in trials]
    print(f"decoder {args.size}, budgets {', '.join(args.tokens)} tokens, WSD cooldown "
          f"{args.cooldown:g} (1-sqrt), one CPU thread per trial, one trial at a time")  # fmt: skip
    print(f"{'trial':<26}{'from one run':>30}{'on its own':>30}")
    for t in trials:
        (f1, w1, l1), (f2, w2, l2) = one_run[t.trial_id], alone[t.trial_id]
        print(f"{t.trial_id:<26}{f1:>10.3g} FLOPs {w1:>6.1f} s {l1:.6f}"
              f"{f2:>10.3g} FLOPs {w2:>6.1f} s {l2:.6f}")  # fmt: skip
    flops = [sum(v[0] for v in way.values()) for way in (one_run, alone)]
    walls = [sum(v[1] for v in way.values()) for way in (one_run, alone)]
    same = all(one_run[k][2] == alone[k][2] for k in alone)
    print(f"total: from one run {flops[0]:.4g} FLOPs in {walls[0]:.1f} s; on their own "
          f"{flops[1]:.4g} FLOPs in {walls[1]:.1f} s")  # fmt: skip
    print(f"measured: {flops[0] / flops[1]:.1%} of the FLOPs, {walls[0] / walls[1]:.1%} of the "
          f"wall time; arithmetic ((1-f)*D_max + f*sum D) / sum D: "
          f"{shared_fraction(tokens, args.cooldown):.1%}")  # fmt: skip
    print(f"final validation losses equal bit for bit: {same}")


if __name__ == "__main__":
    main()
