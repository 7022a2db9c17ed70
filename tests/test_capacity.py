"""Whether a cluster can ever place a trial's workers (orchestrator/capacity.py): pure, no Ray."""

from __future__ import annotations

import re

import pytest

from orchestrator.capacity import Need, never_fits, workers_placeable

TWO_CPUS = [{"CPU": 2.0, "memory": 1e9}]
GPU_NODES = [{"CPU": 16.0, "GPU": 4.0}, {"CPU": 16.0, "GPU": 4.0}]


def test_workers_are_counted_node_by_node():
    # 8 workers of 1 GPU fit two 4-GPU nodes, though no node holds them all
    assert workers_placeable(Need("t", 8, 1, 1), GPU_NODES) == 8
    assert workers_placeable(Need("t", 8, 6, 1), GPU_NODES) == 4  # 2 per node: their CPUs
    # three 3-CPU workers on two 4-CPU nodes: 6 CPUs are free, but one per node
    assert workers_placeable(Need("t", 3, 3, 0), [{"CPU": 4.0}] * 2) == 2
    assert workers_placeable(Need("t", 1, 1, 0.25), [{"CPU": 4.0, "GPU": 1.0}]) == 4


def test_a_trial_that_fits_says_nothing():
    assert never_fits([Need("a", 2, 1, 0), Need("b", 1, 2, 0)], TWO_CPUS, cpu_fallback=True) == []
    assert never_fits([Need("a", 8, 1, 1)], GPU_NODES, cpu_fallback=False) == []


def test_more_workers_than_the_cluster_has_is_one_line_per_need():
    needs = [Need("decoder-1M-s0", 4, 1, 0), Need("decoder-2M-s0", 4, 1, 0), Need("x", 1, 1, 0)]
    assert never_fits(needs, TWO_CPUS, cpu_fallback=True) == [
        "decoder-1M-s0 (and 1 more) needs 4 workers × 1 CPU; the cluster has 2 CPUs and no GPU"
    ]
    (line,) = never_fits([Need("big", 9, 1, 1)], GPU_NODES, cpu_fallback=False)
    assert (
        line == "big needs 9 workers × 1 CPU + 1 GPU; the cluster has 32 CPUs and 8 GPUs on 2 nodes"
    )


def test_gpus_on_a_cluster_without_them_fall_back_only_where_allowed():
    need = [Need("t", 2, 1, 1)]
    assert never_fits(need, TWO_CPUS, cpu_fallback=True) == []  # gpus_per_trial: runs on CPU
    (line,) = never_fits(need, TWO_CPUS, cpu_fallback=False, name="this machine")
    assert line == "t needs 2 workers × 1 CPU + 1 GPU; this machine has 2 CPUs and no GPU"
    # a cluster with GPUs somewhere: no fallback, the GPUs are asked for
    assert never_fits([Need("t", 2, 1, 2)], [{"CPU": 8.0, "GPU": 1.0}], cpu_fallback=True)


def test_plan_warns_of_more_workers_than_this_machine_has(tiny_study, study_here, monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    text = tiny_study.read_text().replace("{cpus_per_trial: 1}", "{workers: 4}")
    tiny_study.write_text(text)
    shown = study_here("plan", str(tiny_study), cwd=tiny_study.parent)
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"workers\n", shown.stdout)  # the table's last column
    assert ("decoder-25K-s0 (and 8 more) needs 4 workers × 1 CPU; this machine has 2 CPUs"
            in shown.stdout)  # fmt: skip
    assert "`study run` checks the cluster it joins" in shown.stdout


@pytest.mark.slow
def test_a_study_whose_trials_never_fit_the_cluster_exits_2_storing_nothing(
    ray_session, tiny_study, study_here
):
    """`ray_session` has 2 CPUs: a trial on 4 workers of 1 CPU could never start (Ray Train
    would wait for them forever), so `study run` says so before the store is made."""
    tiny_study.write_text(tiny_study.read_text().replace("{cpus_per_trial: 1}", "{workers: 4}"))
    cwd = tiny_study.parent
    result = study_here("run", str(tiny_study), cwd=cwd)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert (f"{tiny_study}:10: resources.workers: decoder-25K-s0 (and 8 more) needs 4 workers × "
            "1 CPU; the cluster has 2 CPUs and no GPU") in result.stdout + result.stderr  # fmt: skip
    assert not (cwd / "runs").exists() and not (cwd / "artifacts" / "tiny").exists()
    import ray

    assert ray.is_initialized()  # the shared instance is left as it was


def test_the_progress_line_of_a_trial_on_several_workers_says_how_many():
    import io
    from dataclasses import replace

    from rich.console import Console

    from orchestrator.grid import expand
    from orchestrator.progress import Progress
    from orchestrator.spec import parse_study
    from trainers.events import Start

    spec = parse_study("name: w\narchitectures: [decoder]\nsizes: [25K]\nbudget: {tokens: 600K}\n")
    (trial,) = expand(spec, "k", "")
    wide = replace(trial, placement=replace(trial.placement, workers=4))
    out = io.StringIO()
    progress = Progress([wide], Console(file=out, width=200))
    progress.update(
        wide.trial_id,
        Start(
            n_params=25_000,
            total_params=30_000,
            flops_per_token=150_000,
            steps=10,
            device="cpu",
            threads=1,
        ),
    )
    assert "decoder-25K-s0: started on cpu ×4 (ddp)" in out.getvalue()
    # the live table (a terminal's view) has a workers column where a trial spans several
    shown = io.StringIO()
    Console(file=shown, width=200).print(progress.table())
    lines = shown.getvalue().splitlines()
    header = next(line for line in lines if "trial" in line and "status" in line)
    assert "workers" in header
    assert any("4 ddp" in line and "running" in line for line in lines)
    alone = io.StringIO()
    Console(file=alone, width=200).print(Progress([trial], Console(file=io.StringIO())).table())
    assert "workers" not in alone.getvalue()  # one process each: no column
