"""Data-layer speed: batches made per second against batches the fastest trainer consumes, and
tokenizing the default corpus.

Run: python bench/data_speed.py   (one CPU thread, as a trial gets; prints two tables)

The fastest trainer is the smallest model of the quickstart (25K parameters, batch 16 x 128):
its step rate bounds how fast batches are needed. Each objective's batches (random windows
from the memory-mapped training split, then masking or span corruption) must come at least
10x faster than that.
"""

from __future__ import annotations

import statistics
import tempfile
import time

import numpy as np
import torch

from trainers.architectures import ARCHITECTURES
from trainers.blocks import ModelConfig
from trainers.corpora import load_documents
from trainers.data import load_token_data, sample_windows, split_documents
from trainers.objectives import objective_for
from trainers.tokenizers import ByteTokenizer, train_bpe
from trainers.train import _optimizer
from trainers.trial import Optim

REPEATS = 5


def rate(fn, seconds: float = 1.0) -> float:
    """Median calls per second of `fn` over REPEATS runs of about `seconds` each."""
    rates = []
    for _ in range(REPEATS):
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            fn()
            n += 1
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates)


def trainer_steps_per_second(architecture: str, data, batch: int, seq_len: int) -> float:
    """Training steps per second of the smallest ladder model (25K), batches made ahead."""
    config = ModelConfig(architecture, data.vocab_size, seq_len, 2, 32, 2)
    if architecture == "encdec":
        config = ModelConfig(architecture, data.vocab_size, seq_len, 2, 20, 2)
    model = ARCHITECTURES[architecture].load("model")(config)
    optimizer = _optimizer(model, OPTIM, torch.device("cpu"))
    objective = objective_for(architecture, seq_len)
    rng = np.random.default_rng(0)
    windows = [sample_windows(data.train, batch, objective.window, rng) for _ in range(8)]
    batches = [objective.make(w, data.tokenizer, rng) for w in windows]
    i = iter(range(10**9))

    def step():
        loss = model.loss(batches[next(i) % len(batches)])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return rate(step, 2.0)


OPTIM = Optim(batch_size=16, lr=3e-3, min_lr_ratio=0.1, warmup=0.05, weight_decay=0.1,
              grad_clip=1.0, beta1=0.9, beta2=0.95)  # fmt: skip


def main() -> None:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        data = load_token_data("builtin:kjv", "bytes", 0.02, 0.02, 0, cache)
        print(f"KJV, bytes: split, tokenized and written in {time.perf_counter() - started:.2f} s")
        from trainers.data import _load

        _load.cache_clear()
        data = load_token_data("builtin:kjv", "bytes", 0.02, 0.02, 0, cache)  # memory-mapped
        print(f"{'objective':<16}{'batches/s made':>16}{'trainer steps/s':>17}{'ratio':>8}")
        for architecture in ("decoder", "encoder", "encdec"):
            objective = objective_for(architecture, 128)
            rng = np.random.default_rng(0)
            tok = data.tokenizer

            def make(objective=objective, rng=rng, tok=tok):
                objective.make(sample_windows(data.train, 16, objective.window, rng), tok, rng)

            made = rate(make)
            used = trainer_steps_per_second(architecture, data, 16, 128)
            print(f"{objective.name:<16}{made:>16,.0f}{used:>17,.1f}{made / used:>7.0f}x")

    documents = load_documents("builtin:kjv")
    train = split_documents(documents, 0.02, 0.02, 0)["train"]
    byte_tok = ByteTokenizer()
    started = time.perf_counter()
    byte_tok.encode_documents(train)
    print(f"\nKJV ({sum(map(len, train)) / 1e6:.1f} MB of training text):")
    print(f"  bytes: encoded in {time.perf_counter() - started:.2f} s")
    for vocab in (4096, 16384):
        started = time.perf_counter()
        tok = train_bpe(train, vocab)
        trained = time.perf_counter() - started
        started = time.perf_counter()
        ids = tok.encode_documents(train)
        encoded = time.perf_counter() - started
        n = sum(len(x) for x in ids)
        print(
            f"  BPE {vocab}: trained in {trained:.1f} s, encoded in {encoded:.2f} s, "
            f"{n / 1e6:.2f}M tokens ({sum(map(len, train)) / n:.2f} bytes per token)"
        )


if __name__ == "__main__":
    main()
