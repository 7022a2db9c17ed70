"""GPU check of the trainer alone (no Ray, no store): train two decoder sizes on CUDA.

Run: python bench/gpu_check.py   (prints device, N, throughput, MFU-style FLOP rate, val loss)
"""

from __future__ import annotations

import time

import torch

from trainers.train import train
from trainers.trial import TrialSpec


def spec(size: str, shape: tuple[int, int, int], tokens: int) -> TrialSpec:
    n_layer, n_embd, n_head = shape
    return TrialSpec(
        study="gpu-check",
        trial_id=f"decoder-{size}-s0",
        architecture="decoder",
        size=size,
        n_layer=n_layer,
        n_embd=n_embd,
        n_head=n_head,
        corpus="builtin:kjv",
        tokenizer="bytes",
        seq_len=256,
        val_fraction=0.02,
        split_seed=0,
        tokens=tokens,
        seed=0,
        batch_size=64,
        lr=1e-3,
        min_lr_ratio=0.1,
        warmup=0.02,
        weight_decay=0.1,
        grad_clip=1.0,
        beta1=0.9,
        beta2=0.95,
        dropout=0.0,
        eval_every_tokens=tokens // 2,
        eval_tokens=65536,
        cpus=1,
        gpus=1,
    )


def main() -> None:
    print("cuda available:", torch.cuda.is_available())
    for size, shape in (("1M", (5, 128, 4)), ("10M", (8, 320, 10))):
        events: list[dict] = []
        t0 = time.perf_counter()
        summary = train(spec(size, shape, 4_000_000), events.append)
        start = events[0]
        print(
            f"{size}: device={start['device']} N={start['n_params']} "
            f"tokens={summary['tokens']} wall={time.perf_counter() - t0:.1f}s "
            f"tokens/s={summary['tokens_per_s']:.0f} "
            f"TFLOP/s={summary['tokens_per_s'] * start['flops_per_token'] / 1e12:.2f} "
            f"val_loss={summary['val_loss']:.4f}"
        )


if __name__ == "__main__":
    main()
