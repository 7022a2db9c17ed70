"""The CPU's peak, measured once per machine and kept beside the token cache."""

from __future__ import annotations

import json

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


def test_a_trial_close_to_the_kept_peak_measures_again_and_keeps_the_higher(tmp_path, monkeypatch):
    rates = iter([4.0e10, 6.0e10, 3.0e10])  # busy at first, then idle, then busy again
    monkeypatch.setattr(peak, "measure_matmul_peak", lambda: next(rates))
    peak._measured_here.cache_clear()
    assert peak.cpu_peak_flops(str(tmp_path))["flops"] == 4.0e10
    assert peak.cpu_peak_flops(str(tmp_path), achieved=3.0e10)["flops"] == 4.0e10  # read
    assert peak.cpu_peak_flops(str(tmp_path), achieved=3.9e10)["flops"] == 6.0e10  # measured
    assert peak.cpu_peak_flops(str(tmp_path), achieved=5.9e10)["flops"] == 6.0e10  # kept max
    assert json.loads(next((tmp_path / "cpu-peak").glob("*.json")).read_text())["flops"] == 6.0e10


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


def test_a_trial_faster_than_every_product_timed_raises_the_kept_peak_to_its_rate(
    tmp_path, monkeypatch
):
    rates = iter([4.0e10, 4.5e10, 3.0e10])
    monkeypatch.setattr(peak, "measure_matmul_peak", lambda: next(rates))
    peak._measured_here.cache_clear()
    assert peak.cpu_peak_flops(str(tmp_path))["flops"] == 4.0e10
    raised = peak.cpu_peak_flops(str(tmp_path), achieved=5.0e10)  # measured 4.5e10: too low
    assert raised["flops"] == 5.0e10 and "above the 4.5e+10 FLOP/s" in raised["note"]
    assert json.loads(next((tmp_path / "cpu-peak").glob("*.json")).read_text()) == raised
    again = peak.cpu_peak_flops(str(tmp_path), achieved=4.6e10)  # measured 3e10: kept, as said
    assert again["flops"] == 5.0e10 and again["note"] == raised["note"]


def test_a_gpu_peak_is_found_by_its_exact_name_and_an_unknown_gpu_gets_none():
    import math

    assert peak.gpu_peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert peak.gpu_peak_flops("NVIDIA H100 PCIe") == 756e12  # not the SXM's, whatever the order
    assert peak.gpu_peak_flops("NVIDIA H200") == 989e12
    assert peak.gpu_peak_flops("NVIDIA A100-SXM4-40GB") == 312e12
    assert math.isnan(peak.gpu_peak_flops("NVIDIA A10G"))  # no longer read as an A10
    assert math.isnan(peak.gpu_peak_flops("NVIDIA H100"))  # a part of a name is not one
    assert math.isnan(peak.gpu_peak_flops("AMD Instinct MI300X"))


def test_the_study_peak_wins_and_an_unknown_gpu_gives_no_mfu(monkeypatch):
    import math
    from dataclasses import replace

    from trainers import train
    from trainers.trial import Budget, Data, Eval, Model, Optim, TrialSpec

    spec = TrialSpec(
        study="t",
        trial_id="t",
        size="10K",
        seed=0,
        model=Model("decoder", 1, 28, 2),
        data=Data("builtin:kjv", "bytes", 32, 0.02, 0.02, 0),
        optim=Optim(8, 1e-3, 0.1, 0.05, 0.1, 1.0, 0.9, 0.95),
        budget=Budget(1024),
        eval=Eval(every_tokens=256, tokens=256),
    )
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA L4")
    assert train.peak_flops(spec, torch.device("cuda")) == 121e12
    given = replace(spec, placement=replace(spec.placement, peak_flops=5e14))
    assert train.peak_flops(given, torch.device("cuda")) == 5e14
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Some Future GPU")
    assert math.isnan(train.peak_flops(spec, torch.device("cuda")))
