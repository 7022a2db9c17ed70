"""The GPU check (bench/gpu_check.sh) runs only where a GPU is lent, rarely: its flow is checked
here on the CPU, so that a GPU's minutes are not spent finding a broken script."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ASSETS

ROOT = ASSETS.parents[1]


@pytest.mark.slow
@pytest.mark.parametrize("how", ["study", "direct", "ray-train"])
def test_the_gpu_check_trains_a_small_study_and_prints_each_trials_speed(how):
    """Through `study run` (figures read back from the store), or, where Ray is missing, the
    trainer each Ray task runs (figures from its events), or Ray Train on one worker."""
    flags = [] if how == "study" else [f"--{how}"]
    # Ray Train starts ~15 s per trial: its flow is checked on one trial (decoder 25K)
    sizes, architectures = (["25K"], ["decoder"]) if how == "ray-train" else (
        ["25K", "100K"], ["decoder", "encdec"])  # fmt: skip
    done = subprocess.run(
        [sys.executable, "bench/gpu_check.py", "--cpu", "--sizes", *sizes,
         "--architectures", *architectures, "--steps", "8", *flags],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("trial "))
    assert lines[header].split() == ["trial", "N", "device", "wall", "s", "tokens/s", "steady",
                                     "TFLOP/s", "MFU"]  # fmt: skip
    rows = {line.split()[0]: line.split() for line in lines[header + 1 :]}
    assert sorted(rows) == sorted(f"{a}-{n}-s0" for a in architectures for n in sizes)
    for trial_id, row in rows.items():
        assert row[2:4] == ["cpu", "x1"], trial_id  # trained where the study placed it
        rate, steady = (float(v.replace(",", "")) for v in row[5:7])
        assert rate > 0 and steady > 0 and 0 < float(row[-1].rstrip("%")) < 100, row
    ran = {"study": "`study run`", "direct": "the trainer, in this process",
           "ray-train": "Ray Train, one worker"}[how]  # fmt: skip
    assert f"{ran}, {len(rows)} trials: " in done.stdout
