"""Peak FLOP/s, what MFU is measured against: a GPU's from a table of exact device names, the
CPU's measured once per run, before any trial trains, and never moved while it runs.

On the CPU:

An assumed peak per thread (a table of clock rates and vector units) does not know the machine:
a 1M decoder alone on one thread showed 97.8% of an assumed 70 GFLOP/s. So `study run`, before
its first trial, times fp32 matrix products (under a second) on each thread count its trials
will use, on the cluster as a task of that many CPUs (`measure_cpu_peak`), and hands the rate to
every trial (`Placement.cpu_peak_flops`). The rate is kept beside the token cache
(`<storage>/cache/cpu-peak/`), one file per machine, torch version and thread count; a later
measurement keeps the higher of the two, so a run that measured on a busy machine is not stuck
with it. A trial never moves the peak: one faster than it shows MFU over 100%, which the run's
caveats call a peak measured low, rather than a peak raised to the trial's rate mid-run (that
made one run's MFU range from 7.5% to 100.0%). A trial trained outside a run reads the kept
file, or measures once per process (`cpu_peak_flops`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import platform
import re
import socket
import time
from pathlib import Path

import torch

# Dense (no sparsity) bf16 tensor-core peaks, FLOP/s, by the exact name
# torch.cuda.get_device_name gives: the trainer runs matmuls in bf16 on GPUs that have it. From
# the makers' data sheets (NVIDIA H100, H200, A100, L40S, L4, A10 and Ada datasheets: their
# "with sparsity" figures halved). A name not here (a GPU, or a spelling, not yet in the table)
# gets no MFU (NaN) unless the study gives `resources.peak_flops`: a wrong peak is worse than
# none, and a substring would match an A10G as an A10 or an H100 NVL as an H100 SXM.
GPU_PEAK_FLOPS = {
    "NVIDIA H100 80GB HBM3": 989e12,  # SXM5
    "NVIDIA H100 PCIe": 756e12,
    "NVIDIA H100 NVL": 835e12,
    "NVIDIA H200": 989e12,  # SXM
    "NVIDIA H200 NVL": 835e12,
    "NVIDIA A100-SXM4-80GB": 312e12,
    "NVIDIA A100-SXM4-40GB": 312e12,
    "NVIDIA A100 80GB PCIe": 312e12,
    "NVIDIA A100-PCIE-40GB": 312e12,
    "NVIDIA L40S": 362e12,
    "NVIDIA L4": 121e12,
    "NVIDIA A10": 125e12,
    "NVIDIA GeForce RTX 4090": 165e12,  # fp32 accumulation (the GeForce rate)
}


def gpu_peak_flops(name: str) -> float:
    """The dense bf16 peak of a GPU by its exact device name; NaN (no MFU) for one not in the
    table."""
    return GPU_PEAK_FLOPS.get(name.strip(), float("nan"))


SIZES = (256, 512, 1024)  # square fp32 products: small ones fit in cache, large ones do not
WORK_S = 0.05  # seconds of products per timing; each size is timed three times


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
        found = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        if found:
            return found.group(1).strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_key(threads: int) -> str:
    """A file name for this machine, its CPU, torch's version and the thread count."""
    what = f"{_cpu_model()}|{torch.__version__}"
    digest = hashlib.sha256(what.encode()).hexdigest()[:8]
    host = re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname())[:60]
    return f"{host}-{digest}-{threads}t"


def measure_matmul_peak() -> float:
    """The best fp32 FLOP/s of square matrix products on torch's current threads. The inputs
    come from a generator of their own: the global random state, which training draws from,
    is left as it was."""
    generator = torch.Generator().manual_seed(0)
    best = 0.0
    for n in SIZES:
        a = torch.randn(n, n, generator=generator)
        b = torch.randn(n, n, generator=generator)
        out = torch.empty(n, n)
        torch.mm(a, b, out=out)  # warm: the first call pays for allocation and dispatch
        flops = 2.0 * n**3
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        reps = max(1, int(WORK_S / max(time.perf_counter() - start, 1e-6)))
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(reps):
                torch.mm(a, b, out=out)
            best = max(best, flops * reps / (time.perf_counter() - start))
    return best


@functools.cache
def _measured_here(threads: int) -> float:
    return measure_matmul_peak()


def _kept(path: Path | None) -> dict | None:
    try:
        kept = json.loads(path.read_text()) if path is not None and path.exists() else None
    except (OSError, ValueError):
        return None  # a file cut short or unreadable: measure again, and write it whole
    ok = isinstance(kept, dict) and isinstance(kept.get("flops"), int | float)
    return kept if ok and kept["flops"] > 0 else None


def cpu_peak_flops(folder: str) -> dict:
    """The CPU's peak on torch's current thread count, for a trial trained outside `study run`:
    read from `folder` (the token cache) if this machine measured it before, else measured once
    in this process and kept there ("" keeps it in this process only). Never measured again
    because a trial ran fast: the peak does not move during a run."""
    threads = torch.get_num_threads()
    kept = _kept(_path(folder, threads))
    return kept if kept is not None else _keep(folder, threads, _measured_here(threads))


def measure_cpu_peak(folder: str) -> dict:
    """Measure the CPU's peak now, on torch's current thread count, before a run's trials (the
    machine idle): the higher of this rate and the one `folder` kept, kept there and returned
    as `cpu_peak_flops` returns it. Never raises for the file."""
    threads = torch.get_num_threads()
    kept = _kept(_path(folder, threads))
    flops = measure_matmul_peak()
    if kept is not None and kept["flops"] >= flops:
        return kept  # measured higher before: this machine is busier now than then
    return _keep(folder, threads, flops)


def _path(folder: str, threads: int) -> Path | None:
    return Path(folder) / "cpu-peak" / f"{machine_key(threads)}.json" if folder else None


def _keep(folder: str, threads: int, flops: float) -> dict:
    """The peak as kept: written to `folder` whole (a folder it cannot write: not at all)."""
    result = {
        "flops": flops,
        "threads": threads,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu": _cpu_model(),
        "torch": torch.__version__,
        "method": f"best fp32 torch.mm of {', '.join(map(str, SIZES))}-square matrices",
    }
    path = _path(folder, threads)
    if path is not None:
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial.write_text(json.dumps(result, indent=2))
            os.replace(partial, path)  # two processes measuring at once: either file is whole
        except OSError:  # a read-only or full disk: kept in this process
            with contextlib.suppress(OSError):
                partial.unlink()
    return result
