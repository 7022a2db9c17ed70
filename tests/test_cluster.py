"""Scale-out: placement by GPUs and the loss of a worker node, on a multi-node Ray cluster
whose worker nodes declare GPUs (no real GPU needed). Each test starts its own cluster in a
subprocess, apart from the test session's Ray instance."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

FAKE_GPU = """\
name: fakegpu
data: {corpus: "builtin:kjv", tokenizer: bytes, seq_len: 64}
architectures: [decoder]
sizes: [10K, 25K, 50K]
budget: {tokens: 160K}
train: {batch_size: 8, checkpoint_every: 16K}
eval: {every_tokens: 80K, tokens: 4K, zero_shot: {tasks: []}}
resources:
  cpus_per_trial: 1
  gpus_per_trial:            # the 10K model on a CPU, the others on one GPU each
    - {max_params: 15K, gpus: 0}
    - {gpus: 1}
"""


@pytest.mark.slow
def test_gpu_trials_share_out_the_gpu_nodes_and_survive_losing_one(tmp_path):
    study = tmp_path / "fakegpu.yaml"
    study.write_text(FAKE_GPU + f"storage: {tmp_path / 'artifacts'}\n")
    script = Path(__file__).parent / "fake_gpu_cluster.py"
    done = subprocess.run(
        [sys.executable, str(script), str(study), str(tmp_path / "out.json")],
        cwd=tmp_path, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads((tmp_path / "out.json").read_text())
    assert seen["outcome"] == {"failed": []}, seen

    # Trials asking for a GPU ran on the GPU nodes only, and side by side.
    gpu_nodes = set(seen["gpu_nodes"])
    assert set(seen["seen"]["decoder-25K-s0"]) <= gpu_nodes
    assert set(seen["seen"]["decoder-50K-s0"]) <= gpu_nodes
    assert seen["side_by_side"]

    # The trial whose node was removed ran again on the other GPU node, from its checkpoint.
    removed = seen["removed"]
    assert removed in gpu_nodes
    assert seen["seen"]["decoder-50K-s0"] == [removed, (gpu_nodes - {removed}).pop()]
    assert "decoder-50K-s0 lost its node or worker, running again (attempt 2)" in seen["log"]
    assert "decoder-50K-s0: resumed at" in seen["log"]

    with sqlite3.connect(tmp_path / "runs" / "fakegpu.db") as db:
        rows = db.execute("SELECT trial_id, status, attempts, node FROM trials").fetchall()
        assert {(t, s, a) for t, s, a, _ in rows} == {
            ("decoder-10K-s0", "finished", 1),
            ("decoder-25K-s0", "finished", 1),
            ("decoder-50K-s0", "finished", 2),
        }
        assert dict((t, n) for t, _, _, n in rows)["decoder-50K-s0"] != removed
        duplicates = db.execute(
            "SELECT COUNT(*) FROM (SELECT trial_pk, name, step FROM metrics "
            "GROUP BY trial_pk, name, step HAVING COUNT(*) > 1)"
        ).fetchone()[0]
        assert duplicates == 0
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
