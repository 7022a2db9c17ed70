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
from dataclasses import dataclass

import numpy as np
import torch

from trainers import parallel, zeroshot
from trainers.architectures import architecture
from trainers.blocks import IGNORE, ModelConfig
from trainers.checkpoint import (
    branch_name,
    checkpoint_dir,
    find_resumable,
    resume,
    save_final,
    save_resumable,
    save_weights,
)
from trainers.data import (
    TokenData,
    cache_root,
    load_tokens,
    sample_windows,
    validation_windows,
)
from trainers.events import (
    Checkpoint,
    End,
    Event,
    Start,
    Train,
    Validation,
    ZeroShot,
    ZeroShotProgress,
    from_dict,
    to_dict,
)
from trainers.objectives import Batch, Objective, objective_for
from trainers.parallel import Ranks, main_first, ranks, rows, wrap
from trainers.peak import cpu_peak_flops, gpu_peak_flops
from trainers.schedules import lr_at
from trainers.trial import Optim, TrialSpec

Report = Callable[[Event], None]

MAX_LOGGED_STEPS = 200  # train-loss points per trial: enough for a smooth curve, a small store


class DivergenceError(FloatingPointError):
    """The loss became NaN or infinite."""


def build_model(spec: TrialSpec, vocab_size: int) -> torch.nn.Module:
    """The model a trial trains."""
    entry = architecture(spec.model.architecture)
    if spec.model.mlm_head != entry.mlm_head:
        raise ValueError(
            f"{spec.trial_id}: an {spec.model.architecture} "
            f"{'with' if spec.model.mlm_head else 'without'} a masked-LM head is not a model "
            "this version builds (encoders have had BERT's head since 2026-12): train it again"
        )
    config = ModelConfig(
        architecture=spec.model.architecture,
        vocab_size=vocab_size,
        seq_len=spec.data.seq_len,
        n_layer=spec.model.n_layer,
        n_embd=spec.model.n_embd,
        n_head=spec.model.n_head,
        dropout=spec.model.dropout,
    )
    return entry.load("model")(config)


def _optimizer(model: torch.nn.Module, optim: Optim, device: torch.device) -> torch.optim.AdamW:
    # Decay matrices only; biases and norm parameters stay undecayed (as GPT-2 and nanoGPT do).
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": optim.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # On a GPU, one fused kernel updates every parameter. On the CPU, torch's default is a loop
    # over the parameters; its foreach path gives bitwise the same numbers a little faster (the
    # fused CPU kernel does not: it rounds differently, which would change pinned results).
    cuda = device.type == "cuda"
    return torch.optim.AdamW(
        groups, lr=optim.lr, betas=(optim.beta1, optim.beta2), fused=cuda or None, foreach=not cuda
    )


def peak_flops(spec: TrialSpec, device: torch.device) -> float:
    """The peak MFU is measured against: the study's value, else the GPU's from the table of
    device names (NaN for one not there), else the CPU's as `study run` measured it before its
    trials, else as this machine kept it beside the token cache (or measures it once here). A
    trial's own rate never moves it: a trial faster than it shows MFU over 100%."""
    if spec.placement.peak_flops > 0:
        return spec.placement.peak_flops
    if device.type == "cuda":
        return gpu_peak_flops(torch.cuda.get_device_name(device))
    if spec.placement.cpu_peak_flops > 0:
        return spec.placement.cpu_peak_flops
    return cpu_peak_flops(cache_root(spec.placement.storage))["flops"]


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
def evaluate(
    model: torch.nn.Module, batches: list[Batch], device: torch.device, micro_batch: int = 0
) -> float:
    """Mean validation loss per scored token over the fixed validation batches, each put
    through the model `micro_batch` rows at a time (0: whole), as training's passes are."""
    model.eval()
    total, count = 0.0, 0
    for batch in batches:
        for chunk, _ in parallel.micro_batches(batch, micro_batch):
            n = int((chunk["targets"] != IGNORE).sum())
            if n:
                total += model.loss(_to(chunk, device)).item() * n
                count += n
    model.train()
    return total / count


def _device(spec: TrialSpec) -> torch.device:
    if spec.placement.gpus > 0 and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def _token_data(spec: TrialSpec):
    """The trial's token data (scoring and sharing read it too)."""
    return load_tokens(spec.data, spec.placement.storage)


def _validation_batches(spec: TrialSpec, data, objective) -> list[Batch]:
    """The same for every trial of an architecture: fixed windows, masks from the split seed
    (never from the training random state)."""
    val_rng = np.random.default_rng(spec.data.split_seed)
    windows = validation_windows(data.val, spec.data.seq_len, objective.window, spec.eval.tokens)
    size = spec.optim.batch_size
    return [
        objective.make(windows[i : i + size], data.tokenizer, val_rng)
        for i in range(0, len(windows), size)
    ]


def _every(tokens: int, tokens_per_step: int) -> int:
    return max(1, round(tokens / tokens_per_step))


@dataclass(frozen=True)
class _Loop:
    """What every step and evaluation of a trial uses, made once when it starts."""

    spec: TrialSpec
    model: torch.nn.Module
    data: TokenData
    objective: Objective
    device: torch.device
    amp: contextlib.AbstractContextManager  # the device's precision (see `_precision`)
    ranks: Ranks = Ranks()  # this process's place in its group (one rank without a group)
    forward: Callable[[Batch], torch.Tensor] | None = None  # the loss a step calls (`wrap`)
    sharded: torch.nn.Module | None = None  # the FSDP2 root (`parallel.shard`), if sharded
    plain: torch.nn.Module | None = None  # under FSDP, rank 0's unsharded copy (`gather`)

    @property
    def whole(self) -> torch.nn.Module:
        """The model as rank 0 validates, scores and saves it: under FSDP, its gathered copy."""
        return self.model if self.plain is None else self.plain


def _score(loop: _Loop, val_batches: list[Batch], step: int, report: Report) -> list[Event]:
    """The events of an evaluation point: the validation loss, and the zero-shot results where
    the trial asks for them here (at its end, or at every evaluation). The items scored so far
    go to `report` as they are (progress only: not among the events kept)."""
    spec, model, data, device, amp = loop.spec, loop.whole, loop.data, loop.device, loop.amp
    tokens = step * spec.tokens_per_step
    with amp:
        val_loss = evaluate(model, val_batches, device, spec.placement.micro_batch)
    events: list[Event] = [Validation(step=step, tokens=tokens, val_loss=val_loss)]
    if not math.isfinite(val_loss):
        return events
    if spec.eval.tasks and (step == spec.steps or spec.eval.at_every_eval):

        def scoring(done: int, total: int) -> None:
            report(ZeroShotProgress(step=step, tokens=tokens, done=done, total=total))

        with amp:
            results = zeroshot.evaluate(model, spec.model.architecture, data, spec, scoring)
        events.append(ZeroShot(step=step, tokens=tokens, eval_key=spec.eval_key, results=results))
    return events


def _step(loop: _Loop, optimizer, rng: np.random.Generator, state, step: int) -> float:
    """One optimizer step on a fresh batch, its loss added to the open window; the rate used.

    Every rank draws the whole global batch from the same random state (so the state, the
    tokens scored and a resume are those of one process) and trains on its rows of it."""
    spec, model, data, objective = loop.spec, loop.model, loop.data, loop.objective
    par = loop.ranks
    lr = lr_at(step, spec)
    for group in optimizer.param_groups:
        group["lr"] = lr
    windows = sample_windows(data.train, spec.optim.batch_size, objective.window, rng)
    batch = objective.make(windows, data.tokenizer, rng)
    state.scored += int((batch["targets"] != IGNORE).sum())  # on the host: no GPU sync
    local = rows(batch, par)
    forward = loop.forward or model.loss
    spread = parallel.weight(local, batch, par)  # DDP's mean of the ranks' is the batch's
    chunks = parallel.micro_batches(local, spec.placement.micro_batch)
    optimizer.zero_grad(set_to_none=True)
    total = torch.zeros((), dtype=torch.float64, device=loop.device)
    for i, (chunk, share) in enumerate(chunks):  # one, the whole share, unless micro-batched
        with parallel.deferred_sync(forward, last=i == len(chunks) - 1):
            with loop.amp:
                loss = forward(_to(chunk, loop.device))
            loss = loss * share if len(chunks) > 1 else loss  # its share of the scored tokens
            loss = loss * spread if par.world > 1 else loss
            loss.backward()
        total = total + loss.detach().double()
    torch.nn.utils.clip_grad_norm_(model.parameters(), spec.optim.grad_clip)
    optimizer.step()
    state.window_loss = state.window_loss + total
    state.window_steps += 1
    return lr


def _start(spec: TrialSpec, model, device: torch.device, state, par: Ranks) -> Start:
    first_step = state.step
    return Start(
        n_params=model.count_params(non_embedding=True),
        total_params=model.count_params(non_embedding=False),
        flops_per_token=model.config.accounting.flops_per_token,
        steps=spec.steps,
        resumed_step=first_step,
        resumed_tokens=first_step * spec.tokens_per_step,
        inherited_tokens=state.inherited * spec.tokens_per_step,
        eval_key=spec.eval_key,
        device=str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        threads=torch.get_num_threads(),
        host=platform.node(),
        pid=os.getpid(),
        workers=par.world,
        strategy=spec.placement.strategy if par.world > 1 else "",
    )


def train(spec: TrialSpec, report: Report) -> End | None:
    """Train one trial to its token budget; report events; return the final one.

    Under a `torch.distributed` process group of several ranks (Ray Train's workers), each rank
    trains on its rows of every global batch through DistributedDataParallel (or FSDP2, under
    `strategy: fsdp`), and the numbers are those of one process to rounding. Rank 0 alone
    reports, validates, scores and writes the checkpoints (under FSDP: on a copy of the whole
    model gathered at each evaluation point, every rank writing its shards of the resumable
    ones); the other ranks call `report` never and return None.

    If the trial's folder holds a checkpoint of the same trial (same hash), training resumes
    from it: model, optimizer, data order and random state continue where they were, so the
    metrics after the checkpoint are those an uninterrupted run reports. The training and
    evaluation events up to the checkpoint are reported again after `Start`, so a reader that
    lost some of them (a driver killed before it stored them) has them all. A branch without
    a checkpoint of its own starts from its trunk's at its branch point the same way, the
    trunk's events up to there reported as its own; a trunk keeps its state at every branch
    point (`placement.branch_points`).
    """
    started = time.perf_counter()
    par = ranks()
    device = _device(spec)
    if device.type == "cpu":
        torch.set_num_threads(max(1, int(spec.placement.cpus)))  # one thread per CPU given
    torch.manual_seed(spec.seed)
    rng = np.random.default_rng(spec.seed)
    with main_first(par):  # one rank builds a missing token cache, the others read it
        data = _token_data(spec)
    objective = objective_for(spec.model.architecture, spec.data.seq_len)
    data.check_fits(objective.window)
    model = build_model(spec, data.vocab_size).to(device)
    sharded = parallel.shard(model, par, device, spec.placement.strategy)
    optimizer = _optimizer(model, spec.optim, device)  # on the shards, where they are
    plain = None
    if sharded is not None and par.main:  # built aside: the training random state is untouched
        with torch.random.fork_rng(devices=[]):
            plain = build_model(spec, data.vocab_size).to(device)
    amp = _precision(device)
    if spec.placement.compile:
        model.compile()  # in place: `model.loss` calls the compiled forward, state_dict unchanged
    val_batches = _validation_batches(spec, data, objective) if par.main else []
    per_step = spec.tokens_per_step
    eval_every = spec.eval_every
    ckpt_every = _every(spec.placement.checkpoint_every_tokens or spec.eval.every_tokens, per_step)
    log_every = max(1, spec.steps // MAX_LOGGED_STEPS)
    accounting = model.config.accounting
    folder = checkpoint_dir(spec)
    with main_first(par):  # rank 0 clears a stale folder before the others look at it
        saved = find_resumable(spec)
    state = resume(spec, model, optimizer, rng, device, saved=saved)  # FSDP: all ranks at once
    forward = wrap(model, par, device, sharded)
    loop = _Loop(spec, model, data, objective, device, amp,
                 ranks=par, forward=forward, sharded=sharded, plain=plain)  # fmt: skip
    first_step = state.step
    if par.main:
        report(_start(spec, model, device, state, par))
        for event in state.history:
            report(from_dict(event))

    def emit(event: Event) -> None:
        state.history.append(to_dict(event))
        if par.main:
            report(event)

    # Training never waits for the device: the loss is summed where it is computed (in
    # float64, as a Python float would be) and read at the log points. Evaluations and
    # checkpoints are timed apart, so `train_time` and each window count training steps only.
    loop_start, paused = time.perf_counter(), 0.0
    window_start = loop_start - state.window_elapsed
    for step in range(first_step, spec.steps):
        lr = _step(loop, optimizer, rng, state, step)
        state.step = done = step + 1

        if done % log_every == 0 or done == spec.steps:
            # The same on every rank (a mean over them), so all raise on divergence together.
            window = parallel.mean(state.window_loss, par)
            mean_loss = float(window) / state.window_steps  # waits for the device
            if not math.isfinite(mean_loss):
                raise DivergenceError(f"loss is {mean_loss} at step {done} (lr {lr:.3g})")
            elapsed = time.perf_counter() - window_start
            rate = state.window_steps * per_step / max(elapsed, 1e-9)
            emit(Train(step=done, tokens=done * per_step, loss=mean_loss, lr=lr,
                       tokens_per_s=rate))  # fmt: skip
            state.window_loss, state.window_steps, window_start = 0.0, 0, time.perf_counter()
        is_eval = done % eval_every == 0 or done == spec.steps
        is_checkpoint = folder is not None and done % ckpt_every == 0 and done < spec.steps
        is_branch = folder is not None and done in spec.placement.branch_points
        if not (is_eval or is_checkpoint or is_branch):
            continue
        _wait(device)
        pause_start = time.perf_counter()
        if (is_checkpoint or is_branch) and state.window_steps:
            state.window_loss = parallel.mean(state.window_loss, par)  # as the file keeps it
        state.window_elapsed = pause_start - window_start  # training time only
        if sharded is not None and is_eval:  # every rank gathers, rank 0 keeps the copy
            parallel.gather(model, par, plain)
        if is_eval and par.main:
            scored = _score(loop, val_batches, done, report)
            for event in scored:
                emit(event)
            state.val_loss = scored[0].val_loss
            if not math.isfinite(state.val_loss):
                raise DivergenceError(f"validation loss is {state.val_loss} at step {done}")
            if folder is not None and spec.placement.keep_checkpoints and done < spec.steps:
                save_weights(folder, spec, loop.whole, done)  # the last one is final.pt
        for name in [branch_name(done)] * is_branch + ["last.pt"] * is_checkpoint:
            if par.main or sharded is not None:  # under FSDP every rank writes its shards
                path = save_resumable(folder, spec, state, model, optimizer, rng=rng,
                                      device=device, name=name, sharded=sharded is not None,
                                      main=par.main)  # fmt: skip
            if par.main:
                report(Checkpoint(step=done, path=str(path)))
        if not par.main:  # the others wait in their next step's gradient sync
            continue
        pause = time.perf_counter() - pause_start  # neither counts as training time
        paused += pause
        window_start += pause
    _wait(device)
    train_time = time.perf_counter() - loop_start - paused
    if sharded is not None and first_step == spec.steps:  # no evaluation point ran to gather
        parallel.gather(model, par, plain)
    if not par.main:
        return None

    final = save_final(folder, spec, loop.whole) if folder is not None else None
    tokens = spec.steps * per_step
    tokens_per_s = (spec.steps - first_step) * per_step / max(train_time, 1e-9)
    achieved = accounting.flops_per_token * tokens_per_s  # by all ranks: each has one device
    end = End(
        step=spec.steps,
        tokens=tokens,
        tokens_scored=state.scored,
        epochs=tokens / len(data.train),
        val_loss=state.val_loss,
        wall_s=time.perf_counter() - started,
        tokens_per_s=tokens_per_s,
        mfu=achieved / (peak_flops(spec, device) * par.world),
        checkpoint=str(final.path) if final else "",
        checkpoint_bytes=final.bytes if final else 0,
        checkpoint_sha256=final.sha256 if final else "",
    )
    report(end)
    return end
