"""Foundation models as references: an existing causal LM (a transformers model folder, or a
Hugging Face Hub id when the machine is online) scored on a study's own zero-shot items, as
our decoders are (the sum of each candidate's token log-likelihoods after the context, the
window cut to the model's context from the left, its begin token as the context of an item
that has none), with the model's own tokenizer."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

MAX_CONTEXT = 2048  # tokens of a window, at most, whatever the model allows


def label(source: str) -> str:
    """How a reference is named in the store and the report: `ref:<folder name>` for a model
    folder, `ref:<Hub id>` else (36 characters at most)."""
    name = Path(source).expanduser().name if Path(source).expanduser().exists() else source
    return "ref:" + re.sub(r"\s+", "_", name)[:36]


class _Tokenizer:
    """A transformers tokenizer as our scorer reads one: encode, eos_id, pad_id."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        begin = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else None
        self.eos_id = begin if begin is not None else tokenizer.eos_token_id
        if self.eos_id is None:
            raise ValueError("the reference's tokenizer has no begin or end token")
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id

    def encode(self, text: str) -> np.ndarray:
        return np.array(self.tokenizer(text, add_special_tokens=False)["input_ids"], dtype=np.int64)


def context_length(config) -> int:
    for name in ("n_positions", "max_position_embeddings", "n_ctx", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return min(value, MAX_CONTEXT)
    return 1024


def score_reference(source: str, documents: list[str], tasks, items: int, seed: int) -> list[dict]:
    """Rows (task, metric, value, n_items, chance, interval, per_item) of the reference at
    `source` on the zero-shot items made from `documents` with `items` and `seed`. Raises
    OSError or ValueError, saying what is wrong, when the model cannot be loaded."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    class _Model(torch.nn.Module):
        """A transformers causal LM as our scorer calls one: ids in, logits out."""

        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.model(input_ids=ids).logits

    from trainers.tasks import CHANCE, make_tasks
    from trainers.zeroshot import item_metrics, requests_of, score_causal, summarize

    tokenizer = _Tokenizer(AutoTokenizer.from_pretrained(source))
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32).eval()
    seq_len = context_length(model.config)  # the model reads seq_len of a window's seq_len + 1
    made = make_tasks(documents, items, seed)
    rows = []
    with torch.no_grad():
        for task in tasks:
            if not made[task]:
                continue
            requests = requests_of(made[task], tokenizer)
            loglik = score_causal(_Model(model), tokenizer, requests, seq_len, batch_size=16)
            per_item = item_metrics(loglik, made[task])
            for row in summarize(per_item, CHANCE[task]):
                rows.append({"task": task, **row, "per_item": per_item[row["metric"]].tolist()})
    return rows
