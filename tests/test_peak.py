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
