"""The training loop: `train(spec, report)` runs one trial and reports what happens as it goes.

This module imports neither ray nor sqlalchemy, so a trial can be run and tested on a plain
`python`: `train(spec, print)`.
"""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from trainers.data import load_token_data, sample_batch, validation_batches
from trainers.decoder import Decoder, DecoderConfig
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


def build_model(spec: TrialSpec, vocab_size: int) -> Decoder:
    """The model a trial trains."""
    if spec.architecture != "decoder":
        raise NotImplementedError(f"architecture {spec.architecture!r} is not built yet")
    config = DecoderConfig(
        vocab_size=vocab_size,
        seq_len=spec.seq_len,
        n_layer=spec.n_layer,
        n_embd=spec.n_embd,
        n_head=spec.n_head,
        dropout=spec.dropout,
    )
    return Decoder(config)


def _optimizer(model: torch.nn.Module, spec: TrialSpec) -> torch.optim.AdamW:
    # Decay matrices only; biases and norm parameters stay undecayed (as GPT-2 and nanoGPT do).
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": spec.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=spec.lr, betas=(spec.beta1, spec.beta2))


@torch.no_grad()
def evaluate(model: Decoder, batches: list[torch.Tensor], device: torch.device) -> float:
    """Mean validation loss over the fixed validation batches."""
    model.eval()
    total, count = 0.0, 0
    for batch in batches:
        total += model.loss(batch.to(device)).item() * batch.shape[0]
        count += batch.shape[0]
    model.train()
    return total / count


def _device(spec: TrialSpec) -> torch.device:
    if spec.gpus > 0 and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def train(spec: TrialSpec, report: Report) -> dict:
    """Train one trial to its token budget; report events; return the final summary."""
    started = time.perf_counter()
    device = _device(spec)
    if device.type == "cpu":
        torch.set_num_threads(max(1, int(spec.cpus)))  # one thread per CPU the trial was given
    torch.manual_seed(spec.seed)
    rng = np.random.default_rng(spec.seed)

    data = load_token_data(
        spec.corpus, spec.tokenizer, spec.val_fraction, spec.split_seed, spec.seq_len
    )
    model = build_model(spec, data.vocab_size).to(device)
    optimizer = _optimizer(model, spec)
    val_batches = validation_batches(data.val, spec.seq_len, spec.eval_tokens, spec.batch_size)
    tokens_per_step = spec.batch_size * spec.seq_len
    eval_every = max(1, round(spec.eval_every_tokens / tokens_per_step))
    log_every = max(1, spec.steps // MAX_LOGGED_STEPS)
    config = model.config
    report(
        {
            "event": "start",
            "n_params": model.count_params(non_embedding=True),
            "total_params": model.count_params(non_embedding=False),
            "flops_per_token": config.flops_per_token,
            "steps": spec.steps,
            "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
            "threads": torch.get_num_threads(),
            "host": platform.node(),
            "pid": os.getpid(),
        }
    )

    val_loss = float("nan")
    window_loss, window_steps, window_start = 0.0, 0, time.perf_counter()
    for step in range(spec.steps):
        lr = lr_at(step, spec)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = sample_batch(data.train, spec.batch_size, spec.seq_len, rng).to(device)
        loss = model.loss(batch)
        if not torch.isfinite(loss):
            raise DivergenceError(f"loss is {loss.item()} at step {step} (lr {lr:.3g})")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip)
        optimizer.step()
        window_loss += loss.item()
        window_steps += 1

        done = step + 1
        if done % log_every == 0 or done == spec.steps:
            elapsed = time.perf_counter() - window_start
            report(
                {
                    "event": "train",
                    "step": done,
                    "tokens": done * tokens_per_step,
                    "loss": window_loss / window_steps,
                    "lr": lr,
                    "tokens_per_s": window_steps * tokens_per_step / max(elapsed, 1e-9),
                }
            )
            window_loss, window_steps, window_start = 0.0, 0, time.perf_counter()
        if done % eval_every == 0 or done == spec.steps:
            val_loss = evaluate(model, val_batches, device)
            report(
                {
                    "event": "eval",
                    "step": done,
                    "tokens": done * tokens_per_step,
                    "val_loss": val_loss,
                }
            )
            if not math.isfinite(val_loss):
                raise DivergenceError(f"validation loss is {val_loss} at step {done}")

    checkpoint = ""
    if spec.storage:
        path = Path(spec.storage) / spec.study / spec.trial_id / "final.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"model": model.state_dict(), "spec": spec.to_dict()}, path)
        checkpoint = str(path)
    wall = time.perf_counter() - started
    summary = {
        "event": "end",
        "step": spec.steps,
        "tokens": spec.steps * tokens_per_step,
        "val_loss": val_loss,
        "wall_s": wall,
        "tokens_per_s": spec.steps * tokens_per_step / wall,
        "checkpoint": checkpoint,
    }
    report(summary)
    return summary
