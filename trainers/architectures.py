"""The one registry of architectures: what each is, trains on, costs, is scored with and looks
like in a report. A fourth architecture is one entry here and its model file.

Code that needs torch (the model, the batches of its objective, its zero-shot scorer) is named
"module:attribute" and imported where it is used (`load`), so that the driver and the report,
which read this registry too, import no torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from trainers.accounting import (
    N_SENTINELS,
    Accounting,
    decoder_accounting,
    encdec_accounting,
    encoder_accounting,
    max_encdec_seq_len,
    span_counts,
)


@dataclass(frozen=True)
class Architecture:
    """One architecture and its pre-training objective."""

    description: str  # for model cards
    objective: str  # the objective's short name, on loss axes
    objective_text: str  # the objective in a sentence, for model cards
    accounting: Callable[[int, int, int, int], Accounting]  # (n_layer, n_embd, vocab, seq_len)
    model: str  # "module:class" of the torch model
    batches: str  # "module:function" making a batch of its objective from token windows
    window_extra: int  # text tokens per sequence beyond seq_len (a shifted target: 1)
    scorer: str  # "module:function" giving each zero-shot candidate's log-likelihood
    scorer_options: Callable[[object], dict]  # the scorer's options from the eval settings
    heldout_bits: bool  # also scored as bits per byte of held-out text (causal models)
    ladder: str  # the size ladder it takes its shapes from (orchestrator/sizes.py)
    lr_base: float  # default peak learning rate up to 1M parameters
    color: str  # in every figure of a report
    hf_class: str  # the transformers Auto class an exported folder loads with
    hf_mapping: str  # "module:function" giving (config, weights) of its transformers class
    pipeline: str  # the hub's pipeline tag
    too_long: Callable[[int], str | None] = lambda seq_len: None  # why a seq_len cannot be used
    mlm_head: bool = False  # a masked-LM head before the tied output projection (BERT's)
    card_usage: tuple[str, ...] = ()  # lines of the card's loading snippet after the loading

    def load(self, part: str):
        """The torch code a field names: `load("model")`, `load("batches")`, `load("scorer")`,
        `load("hf_mapping")`."""
        module, _, attribute = getattr(self, part).partition(":")
        return getattr(importlib.import_module(module), attribute)


def _too_many_spans(seq_len: int) -> str | None:
    n_spans = span_counts(seq_len)[1]
    if n_spans <= N_SENTINELS:
        return None
    return (
        f"corrupts {n_spans} spans per sequence, more than its {N_SENTINELS} sentinel tokens; "
        f"use seq_len <= {max_encdec_seq_len()}"
    )


# Peak learning rates from a sweep at 300K parameters on 500K tokens of the quickstart
# (1e-3 .. 4.5e-3, three seeds near the best; BENCHMARKS.md): masked LM and span corruption
# want smaller steps. The encoder's 1e-3 is not the best mean but the one whose seeds agree.
ARCHITECTURES: dict[str, Architecture] = {
    "decoder": Architecture(
        description="GPT-style decoder-only Transformer (causal self-attention)",
        objective="causal LM",
        objective_text="causal language modelling: predict every next token",
        accounting=decoder_accounting,
        model="trainers.decoder:Decoder",
        batches="trainers.objectives:causal_lm",
        window_extra=1,  # seq_len inputs and the targets shifted by one
        scorer="trainers.zeroshot:score_causal",
        scorer_options=lambda settings: {},
        heldout_bits=True,
        ladder="decoder",
        lr_base=3e-3,
        color="#1f77b4",
        hf_class="AutoModelForCausalLM",
        hf_mapping="trainers.hf:gpt2",
        pipeline="text-generation",
    ),
    "encoder": Architecture(
        description="BERT-style encoder-only Transformer (bidirectional self-attention, "
        "BERT's masked-LM head)",
        objective="masked LM",
        objective_text="masked language modelling: 15% of tokens selected, 80/10/10 "
        "mask/random/keep",
        accounting=encoder_accounting,
        model="trainers.encoder:Encoder",
        batches="trainers.objectives:masked_lm",
        window_extra=0,
        scorer="trainers.zeroshot:score_pll",
        scorer_options=lambda settings: {"stride": settings.pll_stride},
        heldout_bits=False,
        ladder="encoder",  # the decoder's shapes, but where the head's d² + 3·d moves N off
        lr_base=1e-3,
        color="#d62728",
        hf_class="AutoModelForMaskedLM",
        hf_mapping="trainers.hf:xlm_roberta_xl",
        pipeline="fill-mask",
        mlm_head=True,
        # the tokenizer reads "<mask>" in a text as text (as ours does); a masked input asks
        card_usage=(
            "",
            "# <mask> as the mask token, not as text: split_special_tokens=False",
            'inputs = tokenizer("In the beginning <mask> created", split_special_tokens=False,',
            '                   return_tensors="pt")',
            "at = inputs.input_ids[0].tolist().index(tokenizer.mask_token_id)",
            "best = model(**inputs).logits[0, at].argmax()",
        ),
    ),
    "encdec": Architecture(
        description="T5-style encoder-decoder Transformer (one shared token table)",
        objective="span corruption",
        objective_text="span corruption: 15% noise in spans of mean length 3, each span "
        "replaced by a sentinel; the decoder writes the sentinels and the spans",
        accounting=encdec_accounting,
        model="trainers.encdec:EncoderDecoder",
        batches="trainers.objectives:span_corruption",
        window_extra=0,
        scorer="trainers.zeroshot:score_span",
        scorer_options=lambda settings: {},
        heldout_bits=False,
        ladder="encdec",
        lr_base=2e-3,
        color="#2ca02c",
        hf_class="AutoModelForSeq2SeqLM",
        hf_mapping="trainers.hf:blenderbot",
        pipeline="text2text-generation",
        too_long=_too_many_spans,
    ),
}


def architecture(name: str) -> Architecture:
    """The registry's entry of an architecture; ValueError naming the known ones otherwise."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def account(
    architecture_name: str, n_layer: int, n_embd: int, vocab_size: int, seq_len: int
) -> Accounting:
    """Parameters and training FLOPs of an architecture at a shape."""
    return architecture(architecture_name).accounting(n_layer, n_embd, vocab_size, seq_len)


def non_embedding_params(architecture_name: str, n_layer: int, n_embd: int) -> int:
    """N of an architecture at a shape (it depends on neither vocabulary nor sequence length)."""
    return account(architecture_name, n_layer, n_embd, 1, 8).n_params
