"""Peak FLOP/s, what MFU is measured against: a GPU's from a table of exact device names, the
CPU's measured once per machine.

On the CPU:

An assumed peak per thread (a table of clock rates and vector units) does not know the machine:
a 1M decoder alone on one thread showed 97.8% of an assumed 70 GFLOP/s. So the first trial on a
machine times fp32 matrix products on its own thread count (under a second) and keeps the
best rate beside the token cache (`<storage>/cache/cpu-peak/`), one file per machine, torch
version and thread count; every later trial there reads it, and one that comes within 90% of
it measures again (keeping the higher rate, or the trial's own where that is higher still).
A study without storage measures it once per worker process.
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


def cpu_peak_flops(folder: str, achieved: float = 0.0) -> dict:
    """The CPU's measured peak on torch's current thread count: {"flops", "threads",
    "measured_at", "cpu", "torch", "method"}, read from `folder` (the token cache) if this
    machine measured it before, else measured now and kept there ("" keeps it in this process
    only). A trial that `achieved` over 90% of the kept peak measures again and keeps the
    higher rate: a peak first measured on a busy machine does not stay too low. A trial faster
    than every product timed raises the peak to its own rate (said in "note"), so MFU never
    passes 100%. Never raises for the file: a folder it cannot write keeps the peak in this
    process."""
    threads = torch.get_num_threads()
    path = Path(folder) / "cpu-peak" / f"{machine_key(threads)}.json" if folder else None
    kept = _kept(path)
    if kept is not None and achieved <= 0.9 * kept["flops"]:
        return kept
    if kept is not None:
        _measured_here.cache_clear()  # suspiciously close: measure once more
    flops = max(_measured_here(threads), kept["flops"] if kept else 0.0)
    note = kept.get("note") if kept and flops == kept["flops"] else None
    if achieved > flops:  # the trial beat every product timed: the peak is at least its rate
        flops, note = achieved, f"a trial's rate, above the {flops:.4g} FLOP/s the products reached"
    result = {
        "flops": flops,
        "threads": threads,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu": _cpu_model(),
        "torch": torch.__version__,
        "method": f"best fp32 torch.mm of {', '.join(map(str, SIZES))}-square matrices",
    } | ({"note": note} if note else {})
    if path is not None:
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial.write_text(json.dumps(result, indent=2))
            os.replace(partial, path)  # two trials measuring at once: either file is whole
        except OSError:  # a read-only or full disk: kept in this process
            with contextlib.suppress(OSError):
                partial.unlink()
    return result
