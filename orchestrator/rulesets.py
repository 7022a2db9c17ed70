"""Published recipes as rules of N (and of compute C where the source says so): a model's peak
learning rate, batch in tokens, warmup in tokens, AdamW β2, weight decay and schedule.

A study picks one with `recipe:` (orchestrator.spec.recipes) and may override any constant;
orchestrator.recipe.plan turns the rules' numbers into a trial's plan. Built-in sets:

- `olmo`: OLMo-core's model ladder, `WSDSChinchillaRunConfigurator` in
  src/olmo_core/model_ladder/wsds_chinchilla_run_configurator.py (OLMo-core v2.5.0; the file
  is unchanged to fa6c5014c, 2026-04): batch = round(2048·160·(N/108M)^(2/3)) tokens,
  lr = 0.0047·(N/108M)^(−1/3), halved for its WSD schedule, β2 = 0.95 for batches of at least
  524,288 tokens else 0.99, warmup = N tokens, weight decay 0.1 (its embeddings take none:
  ours decay every weight alike), WSD-S with a linear decay over 10% of each period. Its N is
  the non-embedding count (`ModelLadder.get_num_params`), as ours is.
- `porian`: Porian et al. 2024, "Resolving discrepancies in compute-optimal scaling of language
  models" (arXiv 2406.19146): their rounded fits as their repository prints them
  (formll/resolving-scaling-law-discrepancies, plotting.py, `plot_sweep_key`, the legends
  "Rounded fit: LR = 0.0047 (N / 108e6)^{-1/3}" and "Rounded fit: BS = 160 (N / 108e6)^{2/3}",
  BS in sequences of 2048 tokens), which OLMo-core copies: the same lr and batch rules without
  the WSD halving, warmup = N tokens, β2 = 0.99 below 524,288 tokens (OLMo-core's threshold;
  the paper tunes β2 up for small batches, its Table 4) and a cosine schedule. The fit spans
  their models of 25M-110M parameters (108,540,160 the largest), N counting the output layer
  and not the input embedding; ours is the non-embedding N, as OLMo-core's.
- `deepseek`: DeepSeek LLM 2024 (arXiv 2401.02954, eq. 1): η_opt = 0.3118·C^(−0.1250),
  B_opt = 0.2920·C^(0.3271) tokens, C = M·D in FLOPs with M the non-embedding FLOPs per
  token, 72·n_layer·d² + 6·n_layer·d·seq_len (attention included, the vocabulary left out);
  ours is the same count, 6N + 6·n_layer·d·seq_len. β2 0.95 and weight decay 0.1 as the
  paper trains; its multi-step schedule is not built: the study's `train.schedule` applies.
- `fixed`: the study's `train` settings, as before recipes (every old study file).
"""

from __future__ import annotations

from dataclasses import dataclass

REF_N = 108_000_000  # Porian et al.'s largest swept model, the anchor of their fits

# name -> constant -> (default, unit and meaning); exponents are signed, every other constant
# is positive (orchestrator.spec.recipes checks both)
_N_RULES = {
    "n_ref": (REF_N, "parameters: the N the rules are anchored at"),
    "lr_ref": (0.0047, "peak learning rate at N = n_ref"),
    "lr_exponent": (-1 / 3, "exponent of N/n_ref in the learning rate (signed)"),
    "batch_ref": (2048 * 160, "batch in tokens at N = n_ref (160 sequences of 2048)"),
    "batch_exponent": (2 / 3, "exponent of N/n_ref in the batch (signed)"),
    "beta2_small": (0.99, "AdamW β2 of batches under beta2_batch tokens"),
    "beta2_large": (0.95, "AdamW β2 of batches of beta2_batch tokens or more"),
    "beta2_batch": (524_288, "tokens: the batch from which beta2_large applies"),
    "warmup_per_param": (1.0, "warmup tokens per parameter (warmup = this·N tokens)"),
    "weight_decay": (0.1, "AdamW weight decay"),
    "lr_scale": (1.0, "multiplies the rule's learning rate"),
}
CONSTANTS: dict[str, dict[str, tuple[float, str]]] = {
    "olmo": _N_RULES | {"wsd_lr_factor": (0.5, "multiplies the rate under a WSD schedule")},
    "porian": _N_RULES | {"wsd_lr_factor": (1.0, "multiplies the rate under a WSD schedule")},
    "deepseek": {
        "lr_coef": (0.3118, "η_opt = lr_coef·C^lr_exponent, C in FLOPs"),
        "lr_exponent": (-0.1250, "exponent of C in the learning rate (signed)"),
        "batch_coef": (0.2920, "B_opt = batch_coef·C^batch_exponent tokens, C in FLOPs"),
        "batch_exponent": (0.3271, "exponent of C in the batch (signed)"),
        "beta2": (0.95, "AdamW β2"),
        "weight_decay": (0.1, "AdamW weight decay"),
        "lr_scale": (1.0, "multiplies the rule's learning rate"),
    },
    "fixed": {},
}
RULE_SETS = tuple(CONSTANTS)
SIGNED = {"lr_exponent", "batch_exponent"}
# the schedule a set trains with unless the study gives train.schedule: (name, cooldown, shape)
SCHEDULES = {"olmo": ("wsd", 0.1, "linear"), "porian": ("cosine", 0.0, "linear")}


@dataclass(frozen=True)
class Rates:
    """What a rule set gives a model: its numbers before they become a plan."""

    lr: float
    batch_tokens: float  # before rounding to whole sequences
    beta2: float | None  # None: set from the batch once it is whole sequences (beta2_for)
    weight_decay: float
    warmup_tokens: int  # 0: the study's train.warmup fraction


def constants_of(name: str, given: dict[str, float]) -> dict[str, float]:
    """A set's constants, its defaults overridden by those `given`."""
    return {k: given.get(k, default) for k, (default, _) in CONSTANTS[name].items()}


def deepseek_flops_per_token(n_params: int, n_layer: int, n_embd: int, seq_len: int) -> float:
    """DeepSeek's M: non-embedding FLOPs per token, attention included (6N + 6·l·d·seq)."""
    return 6 * n_params + 6 * n_layer * n_embd * seq_len


def rates(name: str, c: dict[str, float], *, n_params: int, compute: float, wsd: bool) -> Rates:
    """The rates of set `name` (constants `c`) for a model of `n_params` non-embedding
    parameters trained on `compute` FLOPs (DeepSeek's C = M·D; only `deepseek` reads it)."""
    if name == "deepseek":
        return Rates(lr=c["lr_coef"] * compute ** c["lr_exponent"] * c["lr_scale"],
                     batch_tokens=c["batch_coef"] * compute ** c["batch_exponent"],
                     beta2=c["beta2"], weight_decay=c["weight_decay"], warmup_tokens=0)  # fmt: skip
    ratio = n_params / c["n_ref"]
    lr = c["lr_ref"] * ratio ** c["lr_exponent"] * c["lr_scale"]
    return Rates(
        lr=lr * (c["wsd_lr_factor"] if wsd else 1.0),
        batch_tokens=c["batch_ref"] * ratio ** c["batch_exponent"],
        beta2=None,
        weight_decay=c["weight_decay"],
        warmup_tokens=round(c["warmup_per_param"] * n_params),
    )


def beta2_for(name: str, c: dict[str, float], batch_tokens: int) -> float:
    """AdamW β2 for a batch of `batch_tokens` (the rounded batch, as OLMo-core decides it)."""
    if name == "deepseek":
        return c["beta2"]
    return c["beta2_large"] if batch_tokens >= c["beta2_batch"] else c["beta2_small"]


def sequences(batch_tokens: float, seq_len: int) -> int:
    """A batch in tokens as whole sequences: the nearest count, at least one."""
    return max(1, round(batch_tokens / seq_len))


def lr_constants(c: dict[str, float], a: float, b: float) -> dict[str, float]:
    """The constants of an N-rule set (`olmo`, `porian`) whose rate is a·N^b exactly, whatever
    the schedule: what `study fit --law lr` prints to paste."""
    return {"lr_ref": a * c["n_ref"] ** b, "lr_exponent": b, "lr_scale": 1.0,
            "wsd_lr_factor": 1.0}  # fmt: skip


def recipe_line(name: str, constants: dict) -> str:
    """The `recipe:` line of a study file that names set `name` with `constants` (each one
    value, or a mapping of architecture to value)."""
    def text(value) -> str:
        if isinstance(value, dict):
            return "{" + ", ".join(f"{k}: {v:.6g}" for k, v in value.items()) + "}"
        return f"{value:.6g}"

    items = "".join(f", {k}: {text(v)}" for k, v in constants.items())
    return f"recipe: {{name: {name}{items}}}"
