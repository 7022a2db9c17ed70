#!/usr/bin/env bash
# GPU check, under five minutes on a machine with one CUDA GPU: the trainer that each Ray task
# of a study runs, at 10M and 50M for the three architectures and a 200M decoder, eager and then
# compiled at 10M; tokens/s and MFU against the GPU's bf16 peak. Results go in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
timeout 200 python bench/gpu_check.py
timeout 90 python bench/gpu_check.py --compile --sizes 10M --largest ""
