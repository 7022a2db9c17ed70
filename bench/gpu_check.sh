#!/usr/bin/env bash
# GPU check, under five minutes on a machine with one CUDA GPU: a small study (the three
# architectures at 10M, 50M and 200M, 64 steps of 32 x 1024 tokens each) run with `study run`
# on the GPU, then the 10M decoder again with torch.compile, and through Ray Train on one worker
# (the launcher of trials on several workers); tokens/s and MFU per trial, read
# back from the store. Without Ray installed, the same trials run through the trainer directly
# (--direct). Results go in BENCHMARKS.md. Extra flags go to both runs (e.g. --cpu, which checks
# the flow on a machine without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
how=()
python3 -c "import ray" 2>/dev/null || { how=(--direct); echo "Ray is not installed: --direct"; }
timeout 210 python3 bench/gpu_check.py "${how[@]}" "$@"
timeout 80 python3 bench/gpu_check.py "${how[@]}" --compile --sizes 10M --architectures decoder "$@"
# the 10M decoder through Ray Train on one worker: its tokens/s beside the plain trial's above
if [ ${#how[@]} -eq 0 ]; then
  timeout 100 python3 bench/gpu_check.py --ray-train --sizes 10M --architectures decoder "$@"
fi
