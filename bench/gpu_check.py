"""GPU check of the trainer alone (no Ray, no store): each architecture at two sizes on CUDA.

Run: python bench/gpu_check.py   (prints device, N, throughput, MFU and validation loss)
"""

from __future__ import annotations

import time

import torch

from orchestrator.grid import expand
from orchestrator.spec import parse_study
from trainers.train import train

STUDY = """
name: gpu-check
data: {corpus: "builtin:kjv", tokenizer: bytes, seq_len: 256}
architectures: [decoder, encoder, encdec]
sizes: [1M, 10M]
budget: {tokens: 4M}
train: {batch_size: 64, warmup: 0.02}
eval: {every_tokens: 2M, tokens: 64K}
resources: {gpus_per_trial: 1}
storage: ""
"""


def main() -> None:
    print("cuda available:", torch.cuda.is_available())
    for spec in expand(parse_study(STUDY)):
        events: list[dict] = []
        t0 = time.perf_counter()
        summary = train(spec, events.append)
        start = events[0]
        print(
            f"{spec.trial_id}: device={start['device']} N={start['n_params']} "
            f"lr={spec.lr:.2g} tokens={summary['tokens']} wall={time.perf_counter() - t0:.1f}s "
            f"tokens/s={summary['tokens_per_s']:.0f} "
            f"TFLOP/s={summary['tokens_per_s'] * start['flops_per_token'] / 1e12:.2f} "
            f"MFU={summary['mfu']:.2%} val_loss={summary['val_loss']:.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
