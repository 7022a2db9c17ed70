"""Whether the cluster can ever place a trial: Ray Train waits for a placement group of all a
trial's workers, and on a fixed cluster too small for it waits forever (it compares sizes only
with an autoscaler's maximum), so `study run` asks here first and `study plan` warns. Pure: the
nodes' resources come in as plain dicts (schedule.nodes)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Need:
    """What one trial asks of the cluster: `workers` processes, each with `cpus` and `gpus`."""

    trial_id: str
    workers: int
    cpus: float
    gpus: float


def workers_placeable(need: Need, nodes: list[dict]) -> int:
    """How many of the trial's workers the nodes can hold at once, each on one node."""
    total = 0
    for node in nodes:
        fits = math.floor(node.get("CPU", 0) / need.cpus + 1e-9) if need.cpus else math.inf
        if need.gpus:
            fits = min(fits, math.floor(node.get("GPU", 0) / need.gpus + 1e-9))
        total += fits
    return total


def _has(nodes: list[dict]) -> str:
    cpus, gpus = (sum(n.get(k, 0) for n in nodes) for k in ("CPU", "GPU"))
    where = f" on {len(nodes)} nodes" if len(nodes) > 1 else ""
    return f"{cpus:g} CPUs and {f'{gpus:g} GPUs' if gpus else 'no GPU'}{where}"


def never_fits(
    needs: Iterable[Need], nodes: list[dict], *, cpu_fallback: bool, name: str = "the cluster"
) -> list[str]:
    """One line for each distinct need no placement on `nodes` (which `name` names) can ever
    meet, naming its first trial. With `cpu_fallback`, a cluster without GPUs runs GPU trials
    on the CPU (as schedule.run_trials does for `gpus_per_trial`): their GPUs are not asked."""
    no_gpu = not any(n.get("GPU", 0) for n in nodes)
    seen: dict[tuple, list[str]] = {}
    for need in needs:
        gpus = 0 if cpu_fallback and no_gpu else need.gpus
        need = Need(need.trial_id, need.workers, need.cpus, gpus)
        if workers_placeable(need, nodes) < need.workers:
            seen.setdefault((need.workers, need.cpus, gpus), []).append(need.trial_id)
    lines = []
    for (workers, cpus, gpus), ids in seen.items():
        each = f"{cpus:g} CPU" + (f" + {gpus:g} GPU" if gpus else "")
        more = f" (and {len(ids) - 1} more)" if len(ids) > 1 else ""
        lines.append(f"{ids[0]}{more} needs {workers} worker{'s' if workers > 1 else ''} × "
                     f"{each}; {name} has {_has(nodes)}")  # fmt: skip
    return lines


def needs_of(trials) -> list[Need]:
    """The needs of TrialSpecs, from their placements."""
    return [Need(t.trial_id, t.placement.workers, t.placement.cpus, t.placement.gpus)
            for t in trials]  # fmt: skip
