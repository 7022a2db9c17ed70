"""TrialSpec: the fully resolved configuration of one pre-training run, and its hash."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields

# Fields that say where and how a trial runs but not what it computes; a rerun on other
# hardware or under a renamed study finds its finished trials by a hash that leaves them out.
PLACEMENT_FIELDS = frozenset(
    {
        "study",
        "trial_id",
        "cpus",
        "gpus",
        "storage",
        "checkpoint_every_tokens",
        "peak_flops",
        "compile",
    }
)


def device_label(start: dict) -> str:
    """Where a trial trained, from its `start` event: "cpu x2" (torch threads) or the GPU."""
    return f"cpu x{start['threads']}" if start["device"] == "cpu" else start["device"]


@dataclass(frozen=True)
class TrialSpec:
    """Everything a trainer needs to run one trial; plain data, picklable, JSON round-trips."""

    study: str
    trial_id: str
    architecture: str
    size: str  # the label ("1M"); the measured N is stored beside it
    n_layer: int
    n_embd: int
    n_head: int
    corpus: str  # builtin:<name>, or the JSON of a source (trainers.corpora)
    tokenizer: str  # bytes, bpe:<vocabulary size>, or the path of a tokenizer.json
    seq_len: int
    val_fraction: float
    split_seed: int
    tokens: int  # training budget: tokens fed to the model
    seed: int
    batch_size: int
    lr: float
    min_lr_ratio: float
    warmup: float  # fraction of the steps spent warming up linearly
    weight_decay: float
    grad_clip: float
    beta1: float
    beta2: float
    dropout: float
    eval_every_tokens: int
    eval_tokens: int
    zero_shot_tasks: tuple[str, ...] = ("last_word", "next_sentence", "minimal_pairs")
    zero_shot_items: int = 1000
    zero_shot_seed: int = 0
    zero_shot_every_eval: bool = False
    pll_stride: int = 7
    cpus: int = 1
    gpus: float = 0
    heldout_fraction: float = 0.02
    data_key: str = ""  # the token cache's key: changes when the corpus's content does
    storage: str = ""  # folder for checkpoints and token files; empty saves none
    checkpoint_every_tokens: int = 0  # 0: at every evaluation
    peak_flops: float = 0  # FLOP/s that MFU is measured against; 0: a table by device
    compile: bool = False  # torch.compile the model (a speed choice, like the device)

    @property
    def hash(self) -> str:
        """A stable hash of what the trial computes (placement fields left out)."""
        config = {k: v for k, v in asdict(self).items() if k not in PLACEMENT_FIELDS}
        blob = json.dumps(config, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def steps(self) -> int:
        """Optimizer steps needed to feed `tokens` tokens (the last batch may overshoot)."""
        return max(1, -(-self.tokens // (self.batch_size * self.seq_len)))

    def to_dict(self) -> dict:
        """Plain dict of every field, for JSON and for the store."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrialSpec:
        """Inverse of `to_dict`; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown TrialSpec fields: {sorted(unknown)}")
        data = dict(data)
        if "zero_shot_tasks" in data:  # JSON gives back a list
            data["zero_shot_tasks"] = tuple(data["zero_shot_tasks"])
        return cls(**data)
