"""The training loop: `train(spec, report)` runs one trial and reports what happens as it goes.

This module imports neither ray nor sqlalchemy, so a trial can be run and tested on a plain
`python`: `train(spec, print)`.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from trainers import zeroshot
from trainers.blocks import IGNORE, ModelConfig
from trainers.data import cache_root, load_token_data, sample_windows, validation_windows
from trainers.decoder import Decoder
from trainers.encdec import EncoderDecoder
from trainers.encoder import Encoder
from trainers.objectives import Batch, objective_for
from trainers.trial import TrialSpec

Report = Callable[[dict], None]

MAX_LOGGED_STEPS = 200  # train-loss points per trial: enough for a smooth curve, a small store


class DivergenceError(FloatingPointError):
    """The loss became NaN or infinite."""


def lr_at(step: int, spec: TrialSpec) -> float:
    """Linear warmup to `lr`, then cosine decay to `min_lr_ratio · lr` at the last step."""
    warmup = max(1, round(spec.warmup * spec.steps))
    if step < warmup:
        return spec.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, spec.steps - warmup)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return spec.lr * (spec.min_lr_ratio + (1.0 - spec.min_lr_ratio) * cosine)


MODELS = {"decoder": Decoder, "encoder": Encoder, "encdec": EncoderDecoder}


def build_model(spec: TrialSpec, vocab_size: int) -> torch.nn.Module:
    """The model a trial trains."""
    config = ModelConfig(
        architecture=spec.architecture,
        vocab_size=vocab_size,
        seq_len=spec.seq_len,
        n_layer=spec.n_layer,
        n_embd=spec.n_embd,
        n_head=spec.n_head,
        dropout=spec.dropout,
    )
    return MODELS[spec.architecture](config)


def _optimizer(model: torch.nn.Module, spec: TrialSpec, device: torch.device) -> torch.optim.AdamW:
    # Decay matrices only; biases and norm parameters stay undecayed (as GPT-2 and nanoGPT do).
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": spec.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # On a GPU, one fused kernel updates every parameter. On the CPU, torch's default is a loop
    # over the parameters; its foreach path gives bitwise the same numbers a little faster (the
    # fused CPU kernel does not: it rounds differently, which would change pinned results).
    cuda = device.type == "cuda"
    return torch.optim.AdamW(
        groups, lr=spec.lr, betas=(spec.beta1, spec.beta2), fused=cuda or None, foreach=not cuda
    )


# Dense bf16 tensor-core peaks of common accelerators (FLOP/s, from the makers' data sheets),
# for MFU when the study gives none: the trainer runs matmuls in bf16 on GPUs that have it.
GPU_PEAK_FLOPS = {
    "H200": 989e12,
    "H100 PCIe": 756e12,
    "H100": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "L4": 121e12,
    "A10": 125e12,
    "4090": 165e12,
}
CPU_PEAK_FLOPS_PER_THREAD = 70e9  # fp32 FMA on one AVX2 core at ~2.2 GHz (2 units x 8 lanes x 2)


def peak_flops(spec: TrialSpec, device: torch.device) -> float:
    """The peak MFU is measured against: the study's value, else a table by device."""
    if spec.peak_flops > 0:
        return spec.peak_flops
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return next((v for k, v in GPU_PEAK_FLOPS.items() if k in name), float("nan"))
    return CPU_PEAK_FLOPS_PER_THREAD * torch.get_num_threads()


def _to(batch: Batch, device: torch.device) -> Batch:
    if device.type == "cuda":  # from pinned memory the copy runs while the GPU computes
        return {k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items()}
    return batch


def _wait(device: torch.device) -> None:
    """Let the device finish its queued work (for timing)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _precision(device: torch.device):
    """The arithmetic of a device: on a GPU, TF32 matmuls and bf16 autocast where the GPU has
    bf16 (the weights, the optimizer and the loss stay fp32); on the CPU, plain fp32."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    if not torch.cuda.is_bf16_supported():
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16)


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches: list[Batch], device: torch.device) -> float:
    """Mean validation loss per scored token over the fixed validation batches."""
    model.eval()
    total, count = 0.0, 0
    for batch in batches:
        n = int((batch["targets"] != IGNORE).sum())
        total += model.loss(_to(batch, device)).item() * n
        count += n
    model.train()
    return total / count


def _device(spec: TrialSpec) -> torch.device:
    if spec.gpus > 0 and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def checkpoint_dir(spec: TrialSpec) -> Path | None:
    """Where a trial keeps its checkpoints: <storage>/<study>/<trial_id>/, or nowhere."""
    return Path(spec.storage) / spec.study / spec.trial_id if spec.storage else None


def _save(state: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # a reader never sees half a checkpoint, even if we are killed here


def _load_resumable(spec: TrialSpec) -> dict | None:
    """The last checkpoint of this very trial (same hash), if there is one."""
    folder = checkpoint_dir(spec)
    if folder is None or not (folder / "last.pt").exists():
        return None
    try:
        state = torch.load(folder / "last.pt", map_location="cpu", weights_only=True)
    except Exception as e:
        raise RuntimeError(
            f"cannot read the checkpoint {folder / 'last.pt'} ({type(e).__name__}); delete it "
            "to train this trial from the start"
        ) from e
    return state if state.get("hash") == spec.hash else None


def train(spec: TrialSpec, report: Report) -> dict:
    """Train one trial to its token budget; report events; return the final summary.

    If the trial's folder holds a checkpoint of the same trial (same hash), training resumes
    from it: model, optimizer, data order and random state continue where they were, so the
    metrics after the checkpoint are those an uninterrupted run reports. The training and
    evaluation events up to the checkpoint are reported again after `start`, so a reader that
    lost some of them (a driver killed before it stored them) has them all.
    """
    started = time.perf_counter()
    device = _device(spec)
    if device.type == "cpu":
        torch.set_num_threads(max(1, int(spec.cpus)))  # one thread per CPU the trial was given
    torch.manual_seed(spec.seed)
    rng = np.random.default_rng(spec.seed)

    data = load_token_data(
        spec.corpus,
        spec.tokenizer,
        spec.val_fraction,
        spec.heldout_fraction,
        spec.split_seed,
        cache_root(spec.storage),
        spec.data_key,
    )
    tok = data.tokenizer
    objective = objective_for(spec.architecture, spec.seq_len)
    data.check_fits(objective.window)
    model = build_model(spec, data.vocab_size).to(device)
    optimizer = _optimizer(model, spec, device)
    amp = _precision(device)
    if spec.compile:
        model.compile()  # in place: `model.loss` calls the compiled forward, state_dict unchanged
    # the validation set is the same for every trial of an architecture: fixed windows, and
    # masks drawn from the split seed
    val_rng = np.random.default_rng(spec.split_seed)
    windows = validation_windows(data.val, spec.seq_len, objective.window, spec.eval_tokens)
    val_batches = [
        objective.make(windows[i : i + spec.batch_size], tok, val_rng)
        for i in range(0, len(windows), spec.batch_size)
    ]
    tokens_per_step = spec.batch_size * spec.seq_len
    eval_every = max(1, round(spec.eval_every_tokens / tokens_per_step))
    ckpt_every = (
        max(1, round(spec.checkpoint_every_tokens / tokens_per_step))
        if spec.checkpoint_every_tokens
        else eval_every
    )
    log_every = max(1, spec.steps // MAX_LOGGED_STEPS)
    accounting = model.config.accounting
    peak = peak_flops(spec, device)
    folder = checkpoint_dir(spec)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)

    first_step, val_loss, scored = 0, float("nan"), 0
    window_loss, window_steps, window_elapsed = 0.0, 0, 0.0
    history: list[dict] = []  # the train and eval events so far, kept in checkpoints
    resumed = _load_resumable(spec)
    if resumed is not None:
        model.load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["optimizer"])
        rng.bit_generator.state = resumed["numpy_rng"]
        torch.set_rng_state(resumed["torch_rng"])
        if device.type == "cuda" and resumed.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(resumed["cuda_rng"], device)
        first_step, val_loss, scored = resumed["step"], resumed["val_loss"], resumed["scored"]
        window_loss, window_steps = resumed["window_loss"], resumed["window_steps"]
        window_elapsed, history = resumed["window_elapsed"], resumed["history"]
    report(
        {
            "event": "start",
            "n_params": model.count_params(non_embedding=True),
            "total_params": model.count_params(non_embedding=False),
            "flops_per_token": accounting.flops_per_token,
            "steps": spec.steps,
            "resumed_step": first_step,
            "resumed_tokens": first_step * tokens_per_step,
            "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
            "threads": torch.get_num_threads(),
            "host": platform.node(),
            "pid": os.getpid(),
        }
    )

    for event in history:
        report(event)

    def emit(event: dict) -> None:
        history.append(event)
        report(event)

    # Training never waits for the device: the loss is summed where it is computed (in
    # float64, as a Python float would be) and read at the log points. Evaluations and
    # checkpoints are timed apart, so `train_time` and each window count training steps only.
    loop_start, paused = time.perf_counter(), 0.0
    window_start = loop_start - window_elapsed
    for step in range(first_step, spec.steps):
        lr = lr_at(step, spec)
        for group in optimizer.param_groups:
            group["lr"] = lr
        windows = sample_windows(data.train, spec.batch_size, objective.window, rng)
        batch = objective.make(windows, tok, rng)
        scored += int((batch["targets"] != IGNORE).sum())  # counted on the host: no GPU sync
        batch = _to(batch, device)
        with amp:
            loss = model.loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip)
        optimizer.step()
        window_loss = window_loss + loss.detach().double()
        window_steps += 1

        done = step + 1
        if done % log_every == 0 or done == spec.steps:
            mean_loss = float(window_loss) / window_steps  # waits for the device
            if not math.isfinite(mean_loss):
                raise DivergenceError(f"loss is {mean_loss} at step {done} (lr {lr:.3g})")
            elapsed = time.perf_counter() - window_start
            emit(
                {
                    "event": "train",
                    "step": done,
                    "tokens": done * tokens_per_step,
                    "loss": mean_loss,
                    "lr": lr,
                    "tokens_per_s": window_steps * tokens_per_step / max(elapsed, 1e-9),
                }
            )
            window_loss, window_steps, window_start = 0.0, 0, time.perf_counter()
        is_eval = done % eval_every == 0 or done == spec.steps
        is_checkpoint = folder is not None and done % ckpt_every == 0 and done < spec.steps
        if is_eval or is_checkpoint:
            _wait(device)
            pause_start = time.perf_counter()
        if is_eval:
            with amp:
                val_loss = evaluate(model, val_batches, device)
            emit(
                {
                    "event": "eval",
                    "step": done,
                    "tokens": done * tokens_per_step,
                    "val_loss": val_loss,
                }
            )
            if not math.isfinite(val_loss):
                raise DivergenceError(f"validation loss is {val_loss} at step {done}")
            if spec.zero_shot_tasks and (done == spec.steps or spec.zero_shot_every_eval):
                with amp:
                    results = zeroshot.evaluate(model, spec.architecture, data, spec)
                emit(
                    {
                        "event": "zeroshot",
                        "step": done,
                        "tokens": done * tokens_per_step,
                        "results": results,
                    }
                )
        if is_checkpoint:
            state = {
                "hash": spec.hash,
                "spec": spec.to_dict(),
                "step": done,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "numpy_rng": rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                "val_loss": val_loss,
                "scored": scored,
                "window_loss": float(window_loss),
                "window_steps": window_steps,
                "window_elapsed": pause_start - window_start,  # training time only
                "history": history,
            }
            _save(state, folder / "last.pt")
            report({"event": "checkpoint", "step": done, "path": str(folder / "last.pt")})
        if is_eval or is_checkpoint:  # neither counts as training time, in the total or a window
            pause = time.perf_counter() - pause_start
            paused += pause
            window_start += pause
    _wait(device)
    train_time = time.perf_counter() - loop_start - paused

    checkpoint = ""
    if folder is not None:
        _save(
            {"hash": spec.hash, "spec": spec.to_dict(), "model": model.state_dict()},
            folder / "final.pt",
        )
        (folder / "last.pt").unlink(missing_ok=True)  # finished: nothing left to resume
        checkpoint = str(folder / "final.pt")
    tokens = spec.steps * tokens_per_step
    trained = (spec.steps - first_step) * tokens_per_step
    tokens_per_s = trained / max(train_time, 1e-9)
    summary = {
        "event": "end",
        "step": spec.steps,
        "tokens": tokens,
        "tokens_scored": scored,
        "epochs": tokens / len(data.train),  # passes over the training split
        "val_loss": val_loss,
        "wall_s": time.perf_counter() - started,
        "tokens_per_s": tokens_per_s,  # training steps only: no evaluation, no checkpoints
        "mfu": accounting.flops_per_token * tokens_per_s / peak,
        "checkpoint": checkpoint,
    }
    report(summary)
    return summary
