"""The CPU's peak: measured once per run before its trials, kept beside the token cache, and
never moved by a trial's rate; a GPU's from the table of device names."""

from __future__ import annotations

import json

import pytest
import torch

from trainers import peak


def test_the_peak_is_measured_once_kept_and_read_back(tmp_path, monkeypatch):
    calls = []

    def measured() -> float:
        calls.append(1)
        return 5.0e10

    monkeypatch.setattr(peak, "measure_matmul_peak", measured)
    peak._measured_here.cache_clear()
    first = peak.cpu_peak_flops(str(tmp_path))
    assert first["flops"] == 5.0e10 and first["threads"] == torch.get_num_threads()
    (kept,) = (tmp_path / "cpu-peak").glob("*.json")
    assert kept.name == peak.machine_key(torch.get_num_threads()) + ".json"
    assert json.loads(kept.read_text())["flops"] == 5.0e10
    peak._measured_here.cache_clear()
    assert peak.cpu_peak_flops(str(tmp_path)) == first and len(calls) == 1  # read, not measured

    kept.write_text('{"flo')  # cut short: measured again and written whole
    peak._measured_here.cache_clear()
    assert peak.cpu_peak_flops(str(tmp_path))["flops"] == 5.0e10 and len(calls) == 2
    assert json.loads(kept.read_text())["flops"] == 5.0e10
    assert not list((tmp_path / "cpu-peak").glob(".*"))  # no partial file left


def test_measuring_leaves_the_training_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    flops = peak.measure_matmul_peak()
    assert torch.equal(torch.rand(3), expected)
    assert 1e8 < flops < 1e13  # a real rate: between 0.1 GFLOP/s and 10 TFLOP/s per process


def test_a_run_measures_again_before_its_trials_and_keeps_the_higher_rate(tmp_path, monkeypatch):
    """Issue 34 replaced the old rule (a trial near or above the peak measured again, or raised
    it to its own rate, mid-run): `study run` measures once before its trials, keeping the
    higher of the new and the kept rate, and trials only read it."""
    rates = iter([4.0e10, 6.0e10, 3.0e10])  # busy at first, then idle, then busy again
    monkeypatch.setattr(peak, "measure_matmul_peak", lambda: next(rates))
    peak._measured_here.cache_clear()
    assert peak.measure_cpu_peak(str(tmp_path))["flops"] == 4.0e10
    assert peak.cpu_peak_flops(str(tmp_path))["flops"] == 4.0e10  # read, not measured
    assert peak.measure_cpu_peak(str(tmp_path))["flops"] == 6.0e10  # the next run: higher
    assert peak.measure_cpu_peak(str(tmp_path))["flops"] == 6.0e10  # a busy one keeps it
    assert json.loads(next((tmp_path / "cpu-peak").glob("*.json")).read_text())["flops"] == 6.0e10
    assert peak.cpu_peak_flops(str(tmp_path))["flops"] == 6.0e10


def test_an_unreadable_or_unwritable_peak_file_never_fails_a_trial(tmp_path, monkeypatch):
    monkeypatch.setattr(peak, "measure_matmul_peak", lambda: 5.0e10)
    peak._measured_here.cache_clear()
    folder = tmp_path / "cpu-peak"
    folder.mkdir()
    (folder / f"{peak.machine_key(torch.get_num_threads())}.json").write_text("[]")
    assert peak.cpu_peak_flops(str(tmp_path))["flops"] == 5.0e10  # not a dict: measured
    blocked = tmp_path / "file"
    blocked.write_text("")  # a file where the folder should be: nothing can be written
    assert peak.cpu_peak_flops(str(blocked))["flops"] == 5.0e10


def test_a_trial_faster_than_the_peak_never_moves_it(tmp_path, monkeypatch):
    """Issue 34: a peak raised mid-run made one run's MFU range from 7.5% to 100.0%. Now the
    trainer has no way to raise it: it takes the run's measured peak, or the kept one."""
    import inspect

    from trainers import train

    assert "achieved" not in inspect.signature(peak.cpu_peak_flops).parameters
    assert list(inspect.signature(train.peak_flops).parameters) == ["spec", "device"]
    monkeypatch.setattr(peak, "measure_matmul_peak", lambda: 4.0e10)
    peak._measured_here.cache_clear()
    first = peak.cpu_peak_flops(str(tmp_path))
    monkeypatch.setattr(peak, "measure_matmul_peak", lambda: 9.0e10)  # never asked again
    peak._measured_here.cache_clear()
    assert peak.cpu_peak_flops(str(tmp_path)) == first and "note" not in first


def test_a_gpu_peak_is_found_by_its_exact_name_and_an_unknown_gpu_gets_none():
    import math

    assert peak.gpu_peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert peak.gpu_peak_flops("NVIDIA H100 PCIe") == 756e12  # not the SXM's, whatever the order
    assert peak.gpu_peak_flops("NVIDIA H200") == 989e12
    assert peak.gpu_peak_flops("NVIDIA A100-SXM4-40GB") == 312e12
    assert math.isnan(peak.gpu_peak_flops("NVIDIA A10G"))  # no longer read as an A10
    assert math.isnan(peak.gpu_peak_flops("NVIDIA H100"))  # a part of a name is not one
    assert math.isnan(peak.gpu_peak_flops("AMD Instinct MI300X"))


def _spec(storage: str = ""):
    from trainers.trial import Budget, Data, Eval, Model, Optim, Placement, TrialSpec

    return TrialSpec(
        study="t",
        trial_id="t",
        size="10K",
        seed=0,
        model=Model("decoder", 1, 28, 2),
        data=Data("builtin:kjv", "bytes", 32, 0.02, 0.02, 0),
        optim=Optim(8, 1e-3, 0.1, 0.05, 0.1, 1.0, 0.9, 0.95),
        budget=Budget(1024),
        eval=Eval(every_tokens=256, tokens=256),
        placement=Placement(storage=storage),
    )


def test_the_study_peak_wins_and_an_unknown_gpu_gives_no_mfu(monkeypatch):
    import math
    from dataclasses import replace

    from trainers import train

    spec = _spec()
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA L4")
    assert train.peak_flops(spec, torch.device("cuda")) == 121e12
    given = replace(spec, placement=replace(spec.placement, peak_flops=5e14))
    assert train.peak_flops(given, torch.device("cuda")) == 5e14
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Some Future GPU")
    assert math.isnan(train.peak_flops(spec, torch.device("cuda")))
    # on the CPU, the peak `study run` measured before its trials; the GPU's stays its table's
    measured = replace(spec, placement=replace(spec.placement, cpu_peak_flops=3e10))
    monkeypatch.setattr(peak, "measure_matmul_peak", lambda: pytest.fail("measured in a trial"))
    assert train.peak_flops(measured, torch.device("cpu")) == 3e10
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA L4")
    assert train.peak_flops(measured, torch.device("cuda")) == 121e12


def test_a_run_measures_the_cpu_peak_once_per_thread_count_before_its_trials(
    ray_session, tmp_path
):
    """`study run` measures on the cluster, as a task of the trials' CPUs, before any trains:
    each thread count once per run, kept beside the token cache; a GPU trial or one with the
    study's peak gets none."""
    from dataclasses import replace

    from orchestrator import schedule

    cpu = _spec(str(tmp_path))
    gpu = replace(cpu, trial_id="g", placement=replace(cpu.placement, gpus=1))
    given = replace(cpu, trial_id="p", placement=replace(cpu.placement, peak_flops=5e14))
    peaks: dict[int, float] = {}
    out = schedule.with_cpu_peaks([cpu, gpu, given, cpu], peaks, use_gpus=True)
    assert list(peaks) == [1] and 1e8 < peaks[1] < 1e13
    assert [t.placement.cpu_peak_flops for t in out] == [peaks[1], 0, 0, peaks[1]]
    (kept,) = (tmp_path / "cache" / "cpu-peak").glob("*1t.json")
    assert json.loads(kept.read_text())["flops"] >= peaks[1] * 0.999  # the higher kept
    peaks[1] = 7.0  # measured already in this run: never again
    assert schedule.with_cpu_peaks([cpu], peaks, use_gpus=False)[0].placement.cpu_peak_flops == 7
