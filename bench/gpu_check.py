"""GPU check of the trainer a study's Ray tasks run (no Ray, no store needed): tokens/s and MFU
per architecture and size on CUDA, with the GPU path (bf16 autocast, TF32, fused AdamW, pinned
batches) and, with --compile, torch.compile.

Run: bash bench/gpu_check.sh   (or python bench/gpu_check.py [--compile] [--sizes 10M 50M 200M])
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from orchestrator.grid import expand
from orchestrator.spec import parse_study
from trainers.train import train

STUDY = """
name: gpu-check
data: {{corpus: "builtin:kjv", tokenizer: bytes, seq_len: 1024}}
architectures: [decoder, encoder, encdec]
sizes: {sizes}
budget: {{tokens: {tokens}}}
train: {{batch_size: 32, warmup: 0.05}}
eval: {{tokens: 64K, zero_shot: {{tasks: []}}}}
resources: {{gpus_per_trial: 1}}
storage: ""
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["10M", "50M"])
    parser.add_argument("--largest", default="200M", help="a decoder size run last ('' for none)")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this check is for a machine with a GPU")
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, bf16 "
          f"{torch.cuda.is_bf16_supported()}, compile {args.compile}")  # fmt: skip
    tokens = args.steps * 32 * 1024
    specs = expand(parse_study(STUDY.format(sizes=list(args.sizes), tokens=tokens)))
    if args.largest:
        text = STUDY.format(sizes=[args.largest], tokens=tokens)
        specs += [s for s in expand(parse_study(text)) if s.architecture == "decoder"]
    print(f"{'trial':24} {'N':>12} {'wall s':>7} {'tokens/s':>11} {'TFLOP/s':>8} {'MFU':>6}")
    for spec in specs:
        spec = replace(spec, compile=args.compile)
        events: list[dict] = []
        start = time.perf_counter()
        summary = train(spec, events.append)
        first = events[0]
        rate = summary["tokens_per_s"]
        print(
            f"{spec.trial_id:24} {first['n_params']:>12,} {time.perf_counter() - start:>7.1f} "
            f"{rate:>11,.0f} {rate * first['flops_per_token'] / 1e12:>8.1f} "
            f"{summary['mfu']:>6.1%}",
            flush=True,
        )


if __name__ == "__main__":
    main()
