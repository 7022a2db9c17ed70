"""What BERT's masked-LM head costs the encoder: training steps with and without it, side by side.

The encoder projects its final hidden states through the head (dense, GELU, LayerNorm) before
the tied output layer, at the selected positions only (~15%). Without the head it would project
the final norm directly, as it did before 2026-12. Both train on the same masked-LM batches of
the quickstart's corpus with AdamW, interleaved round by round so a noisy neighbour slows both
alike; the table gives N, the training FLOPs per token from our accounting, and the median step
throughput after warm-up.

Run: python bench/mlm_head.py [--sizes 300K 1M 4M] [--rounds 5] [--steps 8] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from orchestrator.sizes import LADDER
from trainers.accounting import mlm_head_params
from trainers.blocks import ModelConfig
from trainers.data import load_token_data, sample_windows
from trainers.encoder import Encoder
from trainers.objectives import masked_lm

WARMUP_STEPS = 2


class Headless(Encoder):
    """The encoder as it was: the final norm projected straight onto the token table."""

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        del self.head

    def project(self, h: torch.Tensor) -> torch.Tensor:
        return F.linear(h, self.wte.weight)


def steps_per_s(model, batches, steps: int) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    times = []
    for batch in batches[:steps]:
        start = time.perf_counter()
        loss = model.loss(batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return 1.0 / statistics.median(times[WARMUP_STEPS:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["300K", "1M", "4M"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_token_data("builtin:kjv", "bytes", 0.02, 0.02, 0)
    rng = np.random.default_rng(0)
    tokens = args.batch * args.seq_len
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch} x "
          f"{args.seq_len} tokens, {args.rounds} rounds of {args.steps} steps")  # fmt: skip
    print("| size | shape | N with head | N without | FLOPs/token with | without "
          "| tokens/s with | without | with / without |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        s = LADDER["encoder"][size]
        config = ModelConfig("encoder", data.vocab_size, args.seq_len, s.n_layer, s.n_embd,
                             s.n_head)  # fmt: skip
        batches = []
        for _ in range(args.steps):
            windows = sample_windows(data.train, args.batch, args.seq_len, rng)
            batches.append(masked_lm(windows, data.tokenizer, rng))
        models = {"with": Encoder(config), "without": Headless(config)}
        rates = {name: [] for name in models}
        for _ in range(args.rounds):
            for name, model in models.items():
                rates[name].append(steps_per_s(model, batches, args.steps) * tokens)
        med = {name: statistics.median(r) for name, r in rates.items()}
        head = mlm_head_params(s.n_embd)
        n = config.accounting.n_params
        flops = config.accounting.flops_per_token
        less = flops - round(6 * head * config.accounting.scored_fraction)
        print(f"| {size} | {s.n_layer}x{s.n_embd}x{s.n_head} | {n:,} | {n - head:,} | "
              f"{flops:,} | {less:,} | {med['with']:,.0f} | {med['without']:,.0f} | "
              f"{med['with'] / med['without']:.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
