"""GPU check: a small study run on the GPU as a user runs one (`study run`: a local Ray
instance, the run store, the fit and the report), then tokens/s and MFU per trial, read back
from the study's store. Where Ray is not installed (the GPU machines this project borrows have
PyTorch but no Ray), --direct trains the same trials with the function each Ray task runs, one
after another in this process, and reads the figures from its events; --ray-train trains them
through Ray Train on one worker each (the launcher of trials on several workers), for its
tokens/s beside the plain trial's.

Each trial trains on the GPU path (bf16 autocast, TF32, fused AdamW, pinned batches; with
--compile, torch.compile too), one trial at a time on the GPU. `tokens/s` is the trainer's own
figure over its training steps (evaluations excluded; compilation included); `steady` is the
median of its logged windows after the first quarter, when warm-up (CUDA context, cuBLAS
plans, compilation) is over. MFU is against the GPU's dense bf16 peak.

Run: bash bench/gpu_check.sh
     python bench/gpu_check.py [--sizes 10M 50M 200M] [--architectures decoder ...]
                               [--steps 64] [--compile] [--direct | --ray-train]
     python bench/gpu_check.py --cpu   (the same flow on the CPU at small sizes: a check of
                                        this script on a machine without a GPU)
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STUDY = """
name: {name}
data: {{corpus: "builtin:kjv", tokenizer: bytes, seq_len: {seq_len}}}
architectures: {architectures}
sizes: {sizes}
budget: {{tokens: {tokens}}}
train: {{batch_size: {batch}, warmup: 0.05, compile: {compile}}}
eval: {{every_tokens: {tokens}, tokens: {eval_tokens}, zero_shot: {{tasks: []}}}}
resources: {{cpus_per_trial: {cpus}, gpus_per_trial: {gpus}}}
storage: {storage}
"""

GPU = {"seq_len": 1024, "batch": 32, "eval_tokens": "64K", "cpus": 4, "gpus": 1}
CPU = {"seq_len": 256, "batch": 8, "eval_tokens": "4K", "cpus": 1, "gpus": 0}


def steady(rates: list[float]) -> float:
    """The median of a trial's logged tokens/s after the first quarter of its windows (the last
    window, which holds the evaluation, left out)."""
    later = rates[len(rates) // 4 : -1] or rates
    return statistics.median(later) if later else float("nan")


def study_text(folder: Path, args, settings: dict) -> tuple[str, str]:
    name = "gpu-check-compiled" if args.compile else "gpu-check"
    text = STUDY.format(
        name=name,
        architectures=list(args.architectures),
        sizes=list(args.sizes),
        tokens=args.steps * settings["batch"] * settings["seq_len"],
        compile=str(args.compile).lower(),
        storage=folder / "artifacts",
        **settings,
    )
    return name, text


def run_study(folder: Path, args, settings: dict) -> list[dict]:
    """Run the study with `study run` as a user would; each trial's figures from its store."""
    from orchestrator import api
    from orchestrator.store import RunStore

    name, text = study_text(folder, args, settings)
    study = folder / f"{name}.yaml"
    study.write_text(text)
    url = f"sqlite:///{folder / name}.db"
    report = str(folder / f"{name}.html")
    command = [sys.executable, "-m", "orchestrator.cli", "run", str(study), "--store", url,
               "--report", report, "--n-boot", "100"]  # fmt: skip
    subprocess.run(command, check=True, cwd=folder)
    with RunStore.open_study(url) as store:
        metrics = store.metrics_frame()  # by trial, name and step
    rates = metrics[metrics.name == "tokens_per_s"].groupby("trial_id").value.agg(list)
    rows = []
    for t in api.status(store=url).itertuples():
        rows.append({"trial_id": t.trial_id, "status": t.status, "n_params": t.n_params,
                     "device": t.device, "wall_s": t.wall_s, "tokens_per_s": t.tokens_per_s,
                     "steady": steady(rates.get(t.trial_id, [])),
                     "flops_per_token": t.flops / t.tokens, "mfu": t.mfu})  # fmt: skip
    return rows


def run_direct(folder: Path, args, settings: dict) -> list[dict]:
    """Train the study's trials one after another in this process, with the function each Ray
    task of `study run` runs; each trial's figures from the events it reports."""
    from trainers.train import train

    rows = []
    for spec in _trials(folder, args, settings):
        events: list = []
        train(spec, events.append)
        rows.append(_row(spec, events))
    return rows


def run_ray_train(folder: Path, args, settings: dict) -> list[dict]:
    """Train the study's trials one after another through Ray Train on one worker each (the
    launcher a trial on several workers takes: a controller, a worker group, a process group),
    on a local Ray instance; each trial's figures from the events its rank 0 reports."""
    import ray

    from orchestrator.raytrain import train_spread

    ray.init(num_cpus=settings["cpus"], num_gpus=settings["gpus"], include_dashboard=False)
    try:
        return [_row(spec, list(train_spread(spec))) for spec in _trials(folder, args, settings)]
    finally:
        ray.shutdown()


def _trials(folder: Path, args, settings: dict) -> list:
    from orchestrator.grid import expand
    from orchestrator.spec import parse_study

    study = parse_study(study_text(folder, args, settings)[1])
    return expand(study, "", study.storage)


def _row(spec, events: list) -> dict:
    """A trial's figures from the events it reported (its Start first, its End last)."""
    start, end = events[0], events[-1]
    rates = [e.tokens_per_s for e in events if e.kind == "train"]
    return {"trial_id": spec.trial_id, "status": "finished" if end.kind == "end" else end.kind,
            "n_params": start.n_params, "device": start.device_label, "wall_s": end.wall_s,
            "tokens_per_s": end.tokens_per_s, "steady": steady(rates),
            "flops_per_token": start.flops_per_token, "mfu": end.mfu}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", help="default: 10M 50M 200M (--cpu: 25K 100K)")
    parser.add_argument("--architectures", nargs="+", default=["decoder", "encoder", "encdec"])
    parser.add_argument("--steps", type=int, help="training steps per trial (default 64; --cpu 16)")
    parser.add_argument("--compile", action="store_true", help="train with torch.compile")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU (a check of the flow)")
    parser.add_argument("--direct", action="store_true", help="no Ray, no store: the trainer")
    parser.add_argument("--ray-train", action="store_true",
                        help="no store: each trial through Ray Train on one worker")  # fmt: skip
    args = parser.parse_args()
    settings = CPU if args.cpu else GPU
    args.sizes = args.sizes or (["25K", "100K"] if args.cpu else ["10M", "50M", "200M"])
    args.steps = args.steps or (16 if args.cpu else 64)
    if not args.cpu:
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device: this check is for a machine with a GPU (or --cpu)")
        print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, bf16 "
              f"{torch.cuda.is_bf16_supported()}, compile {args.compile}", flush=True)  # fmt: skip
    how, run = (("the trainer, in this process", run_direct) if args.direct else
                ("Ray Train, one worker", run_ray_train) if args.ray_train else
                ("`study run`", run_study))  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        start = time.perf_counter()
        rows = run(Path(tmp), args, settings)
        wall = time.perf_counter() - start
    print(f"\n{how}, {len(rows)} trials: {wall:.0f} s in all")
    print(f"{'trial':22} {'N':>12} {'device':>22} {'wall s':>7} {'tokens/s':>11} "
          f"{'steady':>11} {'TFLOP/s':>8} {'MFU':>6}")  # fmt: skip
    for r in rows:
        print(
            f"{r['trial_id']:22} {r['n_params']:>12,} {r['device']:>22} {r['wall_s']:>7.1f} "
            f"{r['tokens_per_s']:>11,.0f} {r['steady']:>11,.0f} "
            f"{r['tokens_per_s'] * r['flops_per_token'] / 1e12:>8.2f} "
            f"{r['mfu'] or float('nan'):>6.1%}"
        )
    unfinished = [r["trial_id"] for r in rows if r["status"] != "finished"]
    if unfinished:
        raise SystemExit(f"{len(unfinished)} trial(s) did not finish: {', '.join(unfinished)}")


if __name__ == "__main__":
    main()
