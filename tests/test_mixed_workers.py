"""Trials of different sizes share the cluster (issue 33, item 5): a trial that needs every CPU
of the cluster for its workers waits for them while the one-process trials queued beside it
run, and nothing deadlocks: Ray Train places a trial's workers all at once or not at all, and
its launcher, queue and controller hold no CPU."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.test_raytrain import _cpus_free_again, _trial
from trainers.events import End, Start


@pytest.mark.slow
def test_a_trial_on_every_cpu_waits_without_blocking_the_small_ones(ray_session, tmp_path):
    from orchestrator import schedule

    spread = _trial(str(tmp_path / "art"), workers=2)  # both of ray_session's 2 CPUs
    small = [replace(t := _trial(str(tmp_path / "art")), trial_id=f"{t.trial_id}-{i}")
             for i in range(2)]  # fmt: skip
    trials = [spread, *small]
    started, ended, errors = [], [], []

    def seen(spec, event):
        if isinstance(event, Start):
            started.append((spec.trial_id, event.workers))
        if isinstance(event, End):
            ended.append(spec.trial_id)

    schedule.run_trials(trials, seen, lambda s, e: errors.append((s.trial_id, e)),
                        use_gpus=False)  # fmt: skip
    assert errors == []
    assert sorted(ended) == sorted(t.trial_id for t in trials)  # every trial finished
    assert (spread.trial_id, 2) in started and len(started) == len(trials)
    assert _cpus_free_again(2)
