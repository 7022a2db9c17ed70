"""A study on a fake-GPU Ray cluster, for the placement and node-loss tests.

Run as a script (`python fake_gpu_cluster.py STUDY.yaml OUT.json`) in the study's folder: it
starts its own multi-node cluster with `ray.cluster_utils.Cluster`, which cannot share a process
with the test session's Ray instance. The head node has CPUs only; two worker nodes declare one
GPU each (no real GPU is needed: the trainer falls back to the CPU). While the study runs, the
script watches the store and, once both GPU trials train side by side and the larger one has
written a checkpoint, removes the node that larger trial runs on. It writes what it saw as JSON.
"""

from __future__ import annotations

import io
import json
import sqlite3
import sys
import threading
import time
from pathlib import Path

import ray
from ray.cluster_utils import Cluster
from rich.console import Console

from orchestrator import api

VICTIM = "decoder-50K-s0"  # the trial whose node is removed
GPU_TRIALS = {"decoder-25K-s0", VICTIM}  # the trials the study's rule gives one GPU


def main(study: str, out: str) -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    gpu_nodes = [cluster.add_node(num_cpus=1, num_gpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    by_id = {node.node_id[:12]: node for node in gpu_nodes}  # the store keeps 12 characters
    log = io.StringIO()
    outcome: dict = {}

    def run() -> None:
        try:
            result = api.run_study(
                study, address=cluster.address, console=Console(file=log, width=200), n_boot=20
            )
            outcome["failed"] = result.failed
        except BaseException as e:  # reported in the JSON; the test fails on it
            outcome["error"] = repr(e)

    thread = threading.Thread(target=run)
    thread.start()
    store = Path("runs") / "fakegpu.db"
    seen: dict[str, list[str]] = {}  # trial -> the nodes it was seen running on
    side_by_side = False
    removed = None
    while thread.is_alive():
        time.sleep(0.2)
        try:
            with sqlite3.connect(store) as db:
                rows = db.execute(
                    "SELECT trial_id, status, node, checkpoint FROM trials"
                ).fetchall()
        except sqlite3.OperationalError:  # not created yet
            continue
        running = {trial: (node, checkpoint) for trial, status, node, checkpoint in rows
                   if status == "running" and node}  # fmt: skip
        for trial, (node, _) in running.items():
            if node not in seen.setdefault(trial, []):
                seen[trial].append(node)
        side_by_side |= GPU_TRIALS <= set(running)
        if removed is None and side_by_side and VICTIM in running and running[VICTIM][1]:
            removed = running[VICTIM][0]
            cluster.remove_node(by_id[removed])
    thread.join()
    ray.shutdown()  # the driver's connection; run_study leaves a joined cluster up
    cluster.shutdown()
    Path(out).write_text(
        json.dumps(
            {
                "outcome": outcome,
                "gpu_nodes": sorted(by_id),
                "seen": seen,
                "side_by_side": side_by_side,
                "removed": removed,
                "log": log.getvalue(),
            }
        )
    )


if __name__ == "__main__":
    main(*sys.argv[1:3])
