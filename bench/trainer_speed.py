"""Trainer throughput against what a user would use instead, side by side on this machine.

For each size, the project's trainer (`trainers.train.train`, the loop a study runs) trains each
architecture, and two references train a GPT of the decoder's shape on the same tokens:
  plain  a nanoGPT-style model and loop written here in plain PyTorch (SDPA attention, fused
         QKV, GELU MLP, tied head, AdamW with decay on matrices, gradient clipping);
  hf     Hugging Face `transformers` GPT2LMHeadModel with the same shape (SDPA attention), in
         the same loop (skipped when transformers is not installed: pip install -e .[bench]).
The runs are interleaved round by round, so a noisy neighbour slows all of them alike. Each run
reports its median step throughput after warm-up; the table gives the median over rounds, MFU
against the CPU peak the trainer uses, and ratios to the plain reference.

Run: python bench/trainer_speed.py [--sizes 1M 4M 10M] [--rounds 3] [--steps 8] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from orchestrator.grid import expand
from orchestrator.spec import parse_study
from trainers.architectures import account
from trainers.data import load_token_data, sample_windows
from trainers.events import Event, Train
from trainers.peak import measure_matmul_peak
from trainers.train import train

WARMUP_STEPS = 2  # steps left out of the median: allocation and first-touch costs

STUDY = """
name: bench
data: {{corpus: "builtin:kjv", tokenizer: bytes, seq_len: {seq_len}}}
architectures: [decoder, encoder, encdec]
sizes: [{size}]
budget: {{tokens: {tokens}}}
train: {{batch_size: {batch}, warmup: 0.5}}
eval: {{every_tokens: {tokens}, tokens: {seq_len}, zero_shot: {{tasks: []}}}}
resources: {{cpus_per_trial: {threads}}}
storage: ""
"""


class PlainGPT(nn.Module):
    """nanoGPT's model, written out: what a researcher would write in an afternoon."""

    def __init__(self, vocab: int, seq_len: int, n_layer: int, n_embd: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.wte = nn.Embedding(vocab, n_embd)
        self.wpe = nn.Embedding(seq_len, n_embd)
        self.layers = nn.ModuleList(
            nn.ModuleDict(
                {
                    "ln_1": nn.LayerNorm(n_embd),
                    "qkv": nn.Linear(n_embd, 3 * n_embd),
                    "proj": nn.Linear(n_embd, n_embd),
                    "ln_2": nn.LayerNorm(n_embd),
                    "fc": nn.Linear(n_embd, 4 * n_embd),
                    "out": nn.Linear(4 * n_embd, n_embd),
                }
            )
            for _ in range(n_layer)
        )
        self.ln_f = nn.LayerNorm(n_embd)
        for p in self.parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        B, T = idx.shape
        x = self.wte(idx) + self.wpe(torch.arange(T))
        for layer in self.layers:
            h = layer["ln_1"](x)
            q, k, v = layer["qkv"](h).split(h.shape[-1], dim=2)
            q, k, v = (t.view(B, T, self.n_head, -1).transpose(1, 2) for t in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + layer["proj"](y.transpose(1, 2).reshape(B, T, -1))
            x = x + layer["out"](F.gelu(layer["fc"](layer["ln_2"](x))))
        logits = F.linear(self.ln_f(x), self.wte.weight)
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


class HFGPT2(nn.Module):
    """transformers' GPT2LMHeadModel at the same shape, returning the loss of the same batch."""

    def __init__(self, vocab: int, seq_len: int, n_layer: int, n_embd: int, n_head: int):
        super().__init__()
        from transformers import GPT2Config, GPT2LMHeadModel

        config = GPT2Config(
            vocab_size=vocab, n_positions=seq_len, n_embd=n_embd, n_layer=n_layer,
            n_head=n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
            bos_token_id=0, eos_token_id=0, attn_implementation="sdpa",
        )  # fmt: skip
        self.model = GPT2LMHeadModel(config)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = self.model(input_ids=idx).logits
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


def reference_run(model_cls, spec, stream: np.ndarray, vocab: int, steps: int) -> float:
    """Median tokens/s of a plain training loop (AdamW, clipping) over `steps` steps."""
    torch.manual_seed(0)
    shape = spec.model
    model = model_cls(vocab, spec.data.seq_len, shape.n_layer, shape.n_embd, shape.n_head)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ],
        lr=spec.optim.lr,
        betas=(0.9, 0.95),
    )
    rng = np.random.default_rng(0)
    tokens = spec.tokens_per_step
    rates = []
    for _ in range(steps + WARMUP_STEPS):
        start = time.perf_counter()
        window = torch.from_numpy(
            sample_windows(stream, spec.optim.batch_size, spec.data.seq_len + 1, rng)
        )
        loss = model(window[:, :-1], window[:, 1:])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        loss.item()
        rates.append(tokens / (time.perf_counter() - start))
    return statistics.median(rates[WARMUP_STEPS:])


def trainer_run(spec) -> float:
    """Median tokens/s of the project's trainer, from the per-step events it reports."""
    rates = []

    def report(event: Event) -> None:
        if isinstance(event, Train):
            rates.append(event.tokens_per_s)

    train(spec, report)
    return statistics.median(rates[WARMUP_STEPS:-1])  # the last window holds the evaluation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["1M", "4M", "10M"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8, help="measured steps per run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        import transformers  # noqa: F401

        references = {"plain": PlainGPT, "hf": HFGPT2}
    except ImportError:
        print("transformers is not installed: the hf reference is skipped")
        references = {"plain": PlainGPT}

    data = load_token_data("builtin:kjv", "bytes", 0.02, 0.02, 0)
    steps = args.steps + WARMUP_STEPS + 1
    specs = {}
    for size in args.sizes:
        text = STUDY.format(
            seq_len=args.seq_len, size=size, tokens=steps * args.batch * args.seq_len,
            batch=args.batch, threads=args.threads,
        )  # fmt: skip
        for spec in expand(parse_study(text), data.key, ""):
            specs[(size, spec.model.architecture)] = spec

    runs = [(size, arch, "ours") for size, arch in specs]
    runs += [(size, "decoder", ref) for size in args.sizes for ref in references]
    rates: dict[tuple, list[float]] = {run: [] for run in runs}
    for r in range(args.rounds):
        for run in runs:
            size, arch, impl = run
            spec = specs[(size, arch)]
            if impl == "ours":
                rate = trainer_run(spec)
            else:
                model = references[impl]
                rate = reference_run(model, spec, data.train, data.vocab_size, args.steps)
            rates[run].append(rate)
            print(f"round {r + 1}: {arch} {size} {impl}: {rate:,.0f} tokens/s", flush=True)

    peak = measure_matmul_peak()  # on args.threads threads, as the trainer's MFU is
    print(
        f"\n{torch.__version__}, {args.threads} threads, batch {args.batch} x {args.seq_len}, "
        f"peak {peak / 1e9:.0f} GFLOP/s, median of {args.rounds} rounds"
    )
    header = f"{'size':>5} {'arch':8} {'impl':6} {'N':>10} {'tokens/s':>10} {'GFLOP/s':>8} "
    print(header + f"{'MFU':>6} {'vs plain':>9} {'vs hf':>6}")
    decoder_mfu = {}
    for size in args.sizes:
        plain = statistics.median(rates[(size, "decoder", "plain")])
        hf = statistics.median(rates[(size, "decoder", "hf")]) if "hf" in references else None
        for run in [r for r in runs if r[0] == size]:
            _, arch, impl = run
            spec = specs[(size, arch)]
            acct = account(
                arch, spec.model.n_layer, spec.model.n_embd, data.vocab_size, spec.data.seq_len
            )
            rate = statistics.median(rates[run])
            flops = acct.flops_per_token * rate
            mfu = flops / peak
            if impl == "ours" and arch == "decoder":
                decoder_mfu[size] = mfu
            versus = f"{rate / plain:9.2f}" if arch == "decoder" else f"{'':9}"
            versus_hf = f"{rate / hf:6.2f}" if arch == "decoder" and hf else f"{'':6}"
            print(
                f"{size:>5} {arch:8} {impl:6} {acct.n_params:>10,} {rate:>10,.0f} "
                f"{flops / 1e9:>8.1f} {mfu:>6.1%} {versus} {versus_hf}"
            )
    print("\nMFU of each architecture relative to the decoder's at the same size:")
    for size in args.sizes:
        parts = []
        for arch in ("encoder", "encdec"):
            spec = specs[(size, arch)]
            acct = account(
                arch, spec.model.n_layer, spec.model.n_embd, data.vocab_size, spec.data.seq_len
            )
            mfu = acct.flops_per_token * statistics.median(rates[(size, arch, "ours")]) / peak
            parts.append(f"{arch} {mfu / decoder_mfu[size]:.2f}")
        print(f"  {size}: " + ", ".join(parts))


if __name__ == "__main__":
    main()
