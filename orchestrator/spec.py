"""The study file: the one place YAML is read and validated."""

from __future__ import annotations

import difflib
import glob
import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Literal, get_args

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from orchestrator.sizes import (
    LADDER,
    Shape,
    flops_text,
    format_count,
    non_embedding_params,
    storable_count,
)
from orchestrator.sizes import parse_count as _parse_count
from trainers.architectures import ARCHITECTURES
from trainers.corpora import BUILTIN_CORPORA
from trainers.tokenizers import SPECIALS

N_SPECIALS = len(SPECIALS)

# Names of union branches, which pydantic puts in error locations; they are not fields.
UNION_TAGS = (
    "label",
    "shape",
    "lr-value",
    "lr-sweep",
    "lr-rule",
    "corpus-builtin",
    "corpus-files",
    "corpus-hf",
    "tokenizer-name",
    "tokenizer-bpe",
    "gpus-count",
    "gpus-rule",
)


class StudyError(ValueError):
    """A study file that cannot be used; the message names the file, the field and the line."""


Count = Annotated[int, BeforeValidator(_parse_count), AfterValidator(storable_count)]
Flops = Annotated[int, BeforeValidator(_parse_count)]  # stored as floats: no integer bound
Seed = Annotated[int, Field(ge=0, lt=2**31)]  # a signed 32-bit integer in any store


def _as_list(value):
    return value if isinstance(value, list) else [value]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FilesCorpus(_Strict):
    """Local files: a path or glob of .txt, .jsonl or .parquet files."""

    path: str = Field(description="a file, or a glob such as texts/*.txt or data/**/*.jsonl")
    format: Literal["txt", "jsonl", "parquet"] | None = Field(None, description="default: suffix")
    text_field: str = Field("text", description="the JSON field or parquet column of the text")
    blank_lines: int | None = Field(
        None,
        ge=1,
        description=".txt: documents are separated by this many blank lines or more; "
        "default: one document per file",
    )

    @model_validator(mode="after")
    def _options_fit_the_format(self):
        fmt = self.format or Path(self.path).suffix.lstrip(".").lower()
        if fmt == "txt" and "text_field" in self.model_fields_set:
            raise ValueError("text_field is for .jsonl and .parquet files; a .txt file is all text")
        if fmt in ("jsonl", "parquet") and self.blank_lines is not None:
            raise ValueError(
                f"blank_lines is for .txt files; a .{fmt} file has one text per record"
            )
        return self

    @field_validator("path")
    @classmethod
    def _matches_files(cls, value: str) -> str:
        if not any(Path(p).is_file() for p in glob.glob(value, recursive=True)):
            raise ValueError(f"no file matches {value!r} (relative paths start where you run)")
        return value

    def canonical(self) -> str:
        """The corpus string trials carry: JSON with the absolute path."""
        source = {
            "files": str(Path(self.path).absolute()),
            "format": self.format,
            "text_field": self.text_field,
            "blank_lines": self.blank_lines,
        }
        return json.dumps(source, sort_keys=True)


class HFCorpus(_Strict):
    """A Hugging Face dataset, from the Hub or saved with `save_to_disk` (a path)."""

    hf: str = Field(
        min_length=1, description="dataset name (wikitext) or the folder of a saved dataset"
    )
    revision: str | None = Field(None, description="a Hub dataset's commit, tag or branch")
    config: str | None = Field(None, description="dataset configuration (wikitext-2-raw-v1)")
    data_files: str | list[str] | None = Field(
        None,
        description="files for a builder such as json, csv or text (relative to where you run)",
    )
    split: str = "train"
    text_field: str = "text"
    streaming: bool = False
    max_documents: int | None = Field(None, gt=0, description="read at most this many")

    def canonical(self) -> str:
        """The corpus string trials carry: JSON, with the absolute path of a saved dataset."""
        source = self.model_dump()
        if Path(self.hf).exists():
            source["hf"] = str(Path(self.hf).absolute())
        files = [self.data_files] if isinstance(self.data_files, str) else self.data_files
        if files:
            source["data_files"] = [str(Path(f).absolute()) for f in files]
        return json.dumps(source, sort_keys=True)


def _corpus_form(value):
    if isinstance(value, str) and not value.startswith("builtin:"):
        return {"hf": value.removeprefix("hf:")} if value.startswith("hf:") else {"path": value}
    return value


def _corpus_kind(value) -> str:
    if isinstance(value, str):
        return "corpus-builtin"
    is_hf = isinstance(value, HFCorpus) or (isinstance(value, dict) and "hf" in value)
    return "corpus-hf" if is_hf else "corpus-files"


class BpeTokenizer(_Strict):
    """Byte-level BPE trained on the training split."""

    bpe: int = Field(
        gt=256 + N_SPECIALS, description="vocabulary size, the special tokens included"
    )


class DataSpec(_Strict):
    """Where the text comes from and how it becomes tokens."""

    corpus: Annotated[
        Annotated[
            Annotated[str, Tag("corpus-builtin")]
            | Annotated[FilesCorpus, Tag("corpus-files")]
            | Annotated[HFCorpus, Tag("corpus-hf")],
            Discriminator(_corpus_kind),
        ],
        BeforeValidator(_corpus_form),
    ] = Field("builtin:kjv", description="builtin:<name>, a path or glob, hf:<name>, or a mapping")
    tokenizer: Annotated[
        Annotated[str, Tag("tokenizer-name")] | Annotated[BpeTokenizer, Tag("tokenizer-bpe")],
        Discriminator(
            lambda v: "tokenizer-bpe" if isinstance(v, dict | BpeTokenizer) else "tokenizer-name"
        ),
    ] = Field(
        "bytes", description="bytes, {bpe: <vocabulary size>}, or the path of a tokenizer.json"
    )
    seq_len: int = Field(256, gt=1, description="tokens per training sequence")
    val_fraction: float = Field(0.02, gt=0, lt=0.5, description="documents held out to validate")
    heldout_fraction: float = Field(
        0.02, ge=0, lt=0.5, description="documents held out for zero-shot tasks"
    )
    split_seed: Seed = Field(0, description="seed of the document split")
    max_epochs: float = Field(
        4,
        gt=0,
        description="FLOP budgets: a cell that would read the training split more "
        "often is left out (up to ~4 epochs are nearly as good as fresh data)",
    )

    @field_validator("corpus")
    @classmethod
    def _known_builtin(cls, value):
        if isinstance(value, str) and value.removeprefix("builtin:") not in BUILTIN_CORPORA:
            known = ", ".join(f"builtin:{k}" for k in BUILTIN_CORPORA)
            raise ValueError(f"unknown built-in corpus {value!r}; known: {known}")
        return value

    @field_validator("tokenizer")
    @classmethod
    def _known_tokenizer(cls, value):
        if isinstance(value, str) and value != "bytes" and not Path(value).is_file():
            raise ValueError(
                f"tokenizer {value!r} is neither bytes, {{bpe: <vocabulary size>}} nor the path "
                "of a tokenizer.json"
            )
        return value

    def corpus_string(self) -> str:
        """The corpus as trials carry it (see trainers.corpora)."""
        return self.corpus if isinstance(self.corpus, str) else self.corpus.canonical()

    def tokenizer_string(self) -> str:
        """The tokenizer as trials carry it: bytes, bpe:<size> or an absolute path."""
        if isinstance(self.tokenizer, BpeTokenizer):
            return f"bpe:{self.tokenizer.bpe}"
        return self.tokenizer if self.tokenizer == "bytes" else str(Path(self.tokenizer).absolute())


class ShapeSpec(_Strict):
    """An explicit model shape instead of a ladder label."""

    n_layer: int = Field(gt=0)
    n_embd: int = Field(gt=0)
    n_head: int = Field(gt=0)
    name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        max_length=40,  # the store's size column, on every database
        description="label for trial ids (letters, digits, _ . -); default: N, as in '25.5K'",
    )

    @model_validator(mode="after")
    def _heads_divide_width(self):
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        return self

    @property
    def shape(self) -> Shape:
        """The plain shape."""
        return Shape(self.n_layer, self.n_embd, self.n_head)


SizeItem = Annotated[
    Annotated[str, BeforeValidator(lambda v: v if isinstance(v, str) else str(v)), Tag("label")]
    | Annotated[ShapeSpec, Tag("shape")],
    Discriminator(lambda v: "shape" if isinstance(v, dict | ShapeSpec) else "label"),
]


CHINCHILLA_TOKENS_PER_PARAM = 20  # Hoffmann et al. 2022: compute-optimal at about 20 tokens per N


def chinchilla_tokens(multiple: float, n_params: int) -> int:
    """Tokens for a model of `n_params` at `multiple` times the Chinchilla ratio."""
    return round(CHINCHILLA_TOKENS_PER_PARAM * multiple * n_params)


MIN_FLOPS_RATIO = 1.35  # cells within 1% of budgets 10^0.1 apart: analysis.laws.compute_budgets


class BudgetSpec(_Strict):
    """How much each model is trained: the same token counts for every size, multiples of the
    Chinchilla ratio (20 tokens per parameter), so that each size gets its own, or training
    FLOPs, so that every size at a budget spends the same compute (an IsoFLOP grid)."""

    tokens: Annotated[list[Count], BeforeValidator(_as_list)] | None = Field(
        None, min_length=1, description="one count or a list: 600000, '600K', '2M'"
    )
    chinchilla: Annotated[list[PositiveFloat], BeforeValidator(_as_list)] | None = Field(
        None, min_length=1, description="multiples of 20 tokens per parameter: 1, or [0.5, 1, 2]"
    )
    flops: Annotated[list[Flops], BeforeValidator(_as_list)] | None = Field(
        None, min_length=1, description="training FLOPs per cell: 1e12, '300G', '1T', or a list"
    )

    @model_validator(mode="after")
    def _one_kind(self):
        given = [v for v in (self.tokens, self.chinchilla, self.flops) if v is not None]
        if len(given) != 1:
            raise ValueError(
                "give tokens (counts for every size) or chinchilla (multiples of 20 tokens per "
                "parameter) or flops (training FLOPs per cell), one of them"
            )
        if len(set(given[0])) != len(given[0]):
            raise ValueError(f"duplicate budgets in {given[0]}")
        flops = sorted(self.flops or [])
        for low, high in zip(flops, flops[1:], strict=False):
            if high / low < MIN_FLOPS_RATIO:
                raise ValueError(
                    f"FLOP budgets {low:.3g} and {high:.3g} are less than {MIN_FLOPS_RATIO}x "
                    "apart: the IsoFLOP analysis could not tell their cells apart"
                )
        return self

    @property
    def values(self) -> list:
        """The budgets as given: token counts, Chinchilla multiples or FLOPs."""
        return self.tokens or self.chinchilla or self.flops

    def tokens_for(self, n_params: int) -> list[tuple[int, str]]:
        """The budgets of a model of `n_params` non-embedding parameters, smallest first, each
        with the label it adds to a trial id when there are several."""
        if self.tokens is not None:
            return [(t, f"{format_count(t)}tok") for t in sorted(self.tokens)]
        return [(chinchilla_tokens(m, n_params), f"{m:g}xC") for m in sorted(self.chinchilla)]


PositiveFloat = Annotated[float, Field(gt=0)]


class PredictSpec(_Strict):
    """Compute budgets beyond the grid to predict, then verify: once the grid is trained, the
    laws fitted on it give the compute-optimal N there and the loss it will reach, stored
    before the model that checks it trains."""

    flops: Annotated[list[Flops], BeforeValidator(_as_list)] = Field(
        min_length=1, description="training FLOPs to predict: 3e12, '3T', or a list"
    )

    @field_validator("flops")
    @classmethod
    def _distinct(cls, flops: list[int]):
        if len(set(flops)) != len(flops):
            raise ValueError(f"duplicate budgets in {flops}")
        return flops


DEFAULT_LR_BASE = {name: a.lr_base for name, a in ARCHITECTURES.items()}  # see the registry


class LrRule(_Strict):
    """Peak learning rate as a function of size: `base` up to N = `at`, then falling as
    N^(−exponent): lr = base · min(1, (N / at)^(−exponent))."""

    rule: Literal["power"] = "power"
    base: PositiveFloat | dict[str, PositiveFloat] = Field(
        DEFAULT_LR_BASE, description="peak lr up to N = at; one value or one per architecture"
    )
    at: Count = Field(1_000_000, description="N beyond which the peak lr falls")
    exponent: float = Field(1 / 3, ge=0, description="how fast it falls with N")

    @field_validator("base")
    @classmethod
    def _known_architectures(cls, base):
        if isinstance(base, dict):
            unknown = set(base) - set(LADDER)
            if unknown:
                raise ValueError(f"unknown architectures {sorted(unknown)}; known: {list(LADDER)}")
        return base

    def lr(self, architecture: str, n_params: int) -> float:
        """The peak learning rate of an architecture with `n_params` non-embedding parameters."""
        base = self.base if isinstance(self.base, float) else self.base.get(architecture)
        base = base or DEFAULT_LR_BASE[architecture]  # architectures a mapping leaves out
        return base * min(1.0, (n_params / self.at) ** -self.exponent)


class TrainSpec(_Strict):
    """Optimizer and schedule: AdamW, linear warmup, cosine decay."""

    batch_size: int = Field(16, gt=0, description="sequences per step")
    lr: Annotated[
        Annotated[PositiveFloat, Tag("lr-value")]
        | Annotated[list[PositiveFloat], Tag("lr-sweep")]
        | Annotated[LrRule, Tag("lr-rule")],
        Discriminator(
            lambda v: (
                "lr-sweep"
                if isinstance(v, list)
                else "lr-rule"
                if isinstance(v, dict | LrRule)
                else "lr-value"
            )
        ),
    ] = Field(LrRule(), description="peak lr: one value, a list to sweep, or a rule of N")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="final lr as a fraction of peak")
    warmup: float = Field(0.05, ge=0, lt=1, description="fraction of steps warming up")
    schedule: Literal["cosine"] = "cosine"
    weight_decay: float = Field(0.1, ge=0)
    grad_clip: float = Field(1.0, gt=0, description="max global gradient norm")
    betas: tuple[float, float] = (0.9, 0.95)
    dropout: float = Field(0.0, ge=0, lt=1)
    checkpoint_every: Count | None = Field(None, description="tokens; default: every evaluation")
    keep_checkpoints: bool = Field(
        False, description="keep the weights at every evaluation point, for `study eval`"
    )
    compile: bool = Field(
        False, description="torch.compile the model: a GPU may gain after a minute of compiling"
    )

    @field_validator("lr")
    @classmethod
    def _sweep_not_empty(cls, value):
        if isinstance(value, list) and (not value or len(set(value)) != len(value)):
            raise ValueError("a learning-rate sweep is a list of distinct values")
        return value


class ZeroShotSpec(_Strict):
    """Zero-shot tasks made from the held-out split, scored at the end of each trial."""

    tasks: list[Literal["last_word", "next_sentence", "minimal_pairs"]] = Field(
        ["last_word", "next_sentence", "minimal_pairs"], description="[] for none"
    )
    items: int = Field(1000, gt=0, description="items per task (fewer if the text runs out)")
    seed: Seed = Field(0, description="seed of the items: every trial gets the same ones")
    at_every_eval: bool = Field(False, description="also at each evaluation point")
    pll_stride: int = Field(7, gt=0, description="encoder: tokens masked together (1: exact)")


class EvalSpec(_Strict):
    """When and on how much held-out text the validation loss is measured."""

    every_tokens: Count | None = Field(None, description="default: a tenth of the budget")
    tokens: Count = Field(65_536, description="validation tokens per evaluation")
    zero_shot: ZeroShotSpec = ZeroShotSpec()
    references: list[str] = Field(
        [],
        description="causal LMs (model folders or Hugging Face Hub ids) scored on the study's "
        "zero-shot items once per study, drawn beside the trials",
    )

    @field_validator("references")
    @classmethod
    def _distinct_references(cls, value):
        from trainers.references import label

        if len(set(value)) != len(value) or any(not v.strip() for v in value):
            raise ValueError("references are distinct, non-empty folders or Hub ids")
        names = [label(v) for v in value]
        for i, name in enumerate(names):
            if name in names[:i]:
                first = value[names.index(name)]
                raise ValueError(
                    f"{first!r} and {value[i]!r} would both be named {name} in the store and "
                    "the report: give folders of other names"
                )
        return value


def _gpu_count(value: float) -> float:
    # Ray schedules fractions of one GPU, and whole GPUs; not 1.5 of them.
    if value > 1 and value != int(value):
        raise ValueError(f"{value} GPUs: a trial takes a fraction of one GPU or whole GPUs")
    return value


GpuCount = Annotated[float, Field(ge=0), AfterValidator(_gpu_count)]


class GpuRule(_Strict):
    """GPUs for the trials whose N is at most `max_params` (no `max_params`: all larger ones)."""

    max_params: Count | None = Field(None, gt=0, description="non-embedding N; omit in the last")
    gpus: GpuCount


class ResourcesSpec(_Strict):
    """What each trial asks Ray for."""

    cpus_per_trial: int = Field(1, gt=0, description="CPUs, and torch threads on CPU")
    gpus_per_trial: Annotated[
        Annotated[GpuCount, Tag("gpus-count")] | Annotated[list[GpuRule], Tag("gpus-rule")],
        Discriminator(lambda v: "gpus-rule" if isinstance(v, list) else "gpus-count"),
    ] = Field(0, description="GPUs (fractions allowed), or a rule of N: [{max_params, gpus}]")
    peak_flops: Flops | None = Field(
        None, description="FLOP/s a trial's MFU is measured against; default: by device"
    )
    max_retries: int = Field(
        0, ge=0, description="times a failed trial runs again in the same run (from its checkpoint)"
    )

    @field_validator("gpus_per_trial")
    @classmethod
    def _rule_covers_every_size(cls, value):
        if not isinstance(value, list):
            return value
        bounds = [rule.max_params for rule in value]
        if not bounds or bounds[-1] is not None or None in bounds[:-1]:
            raise ValueError(
                "a GPU rule is a list of {max_params, gpus} ending with one without max_params "
                "(the larger models): [{max_params: 10M, gpus: 0.25}, {gpus: 1}]"
            )
        if bounds[:-1] != sorted(set(bounds[:-1])):
            raise ValueError("the max_params of a GPU rule increase from one entry to the next")
        return value

    def gpus_for(self, n_params: int) -> float:
        """GPUs for a trial of `n_params` non-embedding parameters."""
        if not isinstance(self.gpus_per_trial, list):
            return self.gpus_per_trial
        return next(
            r.gpus for r in self.gpus_per_trial if r.max_params is None or n_params <= r.max_params
        )

    @property
    def wants_gpus(self) -> bool:
        """Whether any trial asks for a GPU."""
        rules = self.gpus_per_trial
        return any(r.gpus > 0 for r in rules) if isinstance(rules, list) else rules > 0


NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"  # a study's name: its store's and report's file


def resolve_size(architecture: str, size: str | ShapeSpec) -> tuple[str, Shape]:
    """The label and shape of one entry of `sizes` for an architecture."""
    if isinstance(size, ShapeSpec):
        shape = size.shape
        return size.name or format_count(non_embedding_params(architecture, shape)), shape
    return size, LADDER[architecture][size]


class StudySpec(_Strict):
    """A whole study: the grid architectures × sizes × budgets × seeds and how to train it."""

    name: str = Field(pattern=NAME_PATTERN, max_length=100)  # a file name, and a store's field
    data: DataSpec = DataSpec()
    architectures: list[str] = Field(min_length=1, description=", ".join(LADDER))
    sizes: list[SizeItem] = Field(min_length=1, description="ladder labels or explicit shapes")
    budget: BudgetSpec
    seeds: Annotated[list[Seed], BeforeValidator(_as_list)] = Field([0], min_length=1)
    train: TrainSpec = TrainSpec()
    eval: EvalSpec = EvalSpec()
    resources: ResourcesSpec = ResourcesSpec()
    predict: PredictSpec | None = None
    storage: str = Field("./artifacts", description="checkpoints; a shared path on a cluster")
    _source: str = PrivateAttr("<string>")  # where the study was read from, for error lines
    _root: object = PrivateAttr(None)  # its YAML nodes

    def where(self, *loc) -> str:
        """`file:line: field` of a field of the study (for errors found after validation)."""
        line = _line_of(self._root, loc)
        place = f"{self._source}:{line}" if line else self._source
        return f"{place}: {_field_name(loc)}"

    @field_validator("sizes")
    @classmethod
    def _known_sizes(cls, sizes: list, info):
        for size in sizes:
            if isinstance(size, str):
                for arch in info.data.get("architectures") or []:  # absent if it was invalid
                    if size not in LADDER[arch]:
                        labels = ", ".join(LADDER[arch])
                        raise ValueError(
                            f"size {size!r} is not in the {arch} ladder ({labels}); "
                            "give another label or an explicit {n_layer, n_embd, n_head}"
                        )
        return sizes

    @field_validator("architectures")
    @classmethod
    def _known_architectures(cls, values: list[str], info):
        for arch in values:
            if arch not in LADDER:
                raise ValueError(f"unknown architecture {arch!r}; available: {', '.join(LADDER)}")
        data = info.data.get("data")
        for arch in values:
            why = ARCHITECTURES[arch].too_long(data.seq_len) if data else None
            if why:
                raise ValueError(f"{arch} at data.seq_len={data.seq_len} {why}")
        return values

    @field_validator("architectures", "seeds")
    @classmethod
    def _no_duplicates(cls, values: list):
        if len(set(values)) != len(values):
            raise ValueError(f"duplicate entries in {values}")
        return values

    def hash(self) -> str:
        """A stable hash of the whole validated study."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _pairs(node: yaml.MappingNode) -> dict:
    """A mapping node's (key node, value node) by key, built once per node: looking up the
    lines of N errors in a mapping of N keys takes linear time, not quadratic."""
    index = getattr(node, "_pairs", None)
    if index is None:
        index = {}
        for k, v in node.value:
            index.setdefault(k.value, (k, v))
        node._pairs = index
    return index


def _line_of(root: yaml.Node | None, loc: tuple) -> int | None:
    """The 1-based line of the YAML node at a pydantic error location, or of its nearest parent."""
    node, line = root, (root.start_mark.line + 1 if root is not None else None)
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            pair = _pairs(node).get(key) if isinstance(key, str) else None
            if pair is None:
                break
            line, node = pair[0].start_mark.line + 1, pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            continue  # pydantic adds union branch names to locations; skip them
    return line


def _models_in(annotation) -> list[type[BaseModel]]:
    """The pydantic models an annotation names, through unions, lists and Annotated."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _suggestion(loc: tuple) -> str:
    """ "; did you mean `seq_len`?" for an unknown field close to a known one beside it."""
    models: list[type[BaseModel]] = [StudySpec]
    for key in loc[:-1]:
        if isinstance(key, int) or key in UNION_TAGS:
            continue
        models = [m for model in models if key in model.model_fields
                  for m in _models_in(model.model_fields[key].annotation)]  # fmt: skip
    known = sorted({name for model in models for name in model.model_fields})
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    return f"; did you mean `{close[0]}`?" if close else ""


def _field_name(loc: tuple) -> str:
    parts: list[str] = []
    for key in loc:
        if isinstance(key, int):
            parts[-1:] = [f"{parts[-1]}[{key}]"] if parts else [f"[{key}]"]
        elif key in UNION_TAGS:
            continue  # union branch tags
        else:
            parts.append(str(key))
    return ".".join(parts) or "(top level)"


MAX_ERRORS = 20  # errors listed for one study file
MAX_STUDY_BYTES = 1_000_000  # a study file is a page of settings; a megabyte is not one
MAX_VALUES = 100_000  # values after expanding aliases (a "billion laughs" file is billions)


def _expanded(root: yaml.Node | None) -> int:
    """How many values the document holds once its aliases are expanded, counted over the
    node graph (an alias is the node it names: shared, so this stays linear), stopping past
    MAX_VALUES."""
    sizes: dict[int, int] = {}

    def size(node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        sizes[id(node)] = 1  # a cycle counts once
        total = 1
        if isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total += sum(size(v) for v in node.value)
        sizes[id(node)] = total = min(total, MAX_VALUES + 1)
        return total

    return size(root) if root is not None else 0


def _yaml(text: str, source: str) -> tuple[yaml.Node | None, dict]:
    """The YAML nodes (for error lines) and the mapping of a study file."""
    if len(text) > MAX_STUDY_BYTES:
        raise StudyError(f"{source}: {len(text):,} characters: a study file is at most "
                         f"{MAX_STUDY_BYTES:,}")  # fmt: skip
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)  # nodes and their lines
        if _expanded(root) > MAX_VALUES:
            aliased = any(isinstance(e, yaml.AliasEvent) for e in yaml.parse(text, yaml.SafeLoader))
            how = "its aliases (*name) expand to" if aliased else "it holds"
            raise StudyError(
                f"{source}: {how} more than {MAX_VALUES:,} values: a study file is a page of "
                "settings"
            )
        raw = yaml.safe_load(text)
    except RecursionError:
        raise StudyError(
            f"{source}: nested too deeply to read (hundreds of levels of [ or {{)"
        ) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(e, "problem", None) or str(e)
        context = f" ({e.context})" if getattr(e, "context", None) else ""
        raise StudyError(f"{where}: not valid YAML: {problem}{context}") from None
    if not isinstance(raw, dict):
        raise StudyError(
            f"{source}: a study file is a mapping of fields (name, sizes, budget, ...)"
        )
    return root, raw


def parse_study(text: str, source: str = "<string>") -> StudySpec:
    """Validate the YAML text of a study; errors name the source, the field and the line."""
    root, raw = _yaml(text, source)
    try:
        spec = StudySpec.model_validate(raw)
    except ValidationError as e:
        lines, seen = [], set()
        for err in e.errors():
            field = _field_name(err["loc"])
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = "unknown field" + _suggestion(err["loc"])
            if (field, message) in seen:
                continue
            seen.add((field, message))
            line = _line_of(root, err["loc"])
            where = f"{source}:{line}" if line else source
            lines.append(f"{where}: {field}: {message}")
        if len(lines) > MAX_ERRORS:  # a file of thousands of unknown keys: the first of them
            lines[MAX_ERRORS:] = [f"... and {len(lines) - MAX_ERRORS:,} more errors"]
        raise StudyError("invalid study\n" + "\n".join(lines)) from None
    batch = spec.train.batch_size * spec.data.seq_len

    def below_one_batch(key: str, i: int, what: str) -> StudyError:
        line = _line_of(root, ("budget", key, i))
        return StudyError(
            f"invalid study\n{source}:{line}: budget.{key}[{i}]: {what} is less than one batch "
            f"(train.batch_size {spec.train.batch_size} × data.seq_len {spec.data.seq_len} = "
            f"{batch:,} tokens)"
        )

    for i, tokens in enumerate(spec.budget.tokens or []):
        if tokens < batch:
            raise below_one_batch("tokens", i, f"{tokens:,} tokens")
    largest = max(spec.budget.flops or [0])
    for i, flops in enumerate(spec.predict.flops if spec.predict else []):
        if flops <= largest:
            raise StudyError(
                f"invalid study\n{source}:{_line_of(root, ('predict', 'flops', i))}: "
                f"predict.flops[{i}]: {flops_text(flops)} FLOPs is not beyond the grid (its "
                f"largest budget is {flops_text(largest)}): a prediction extrapolates"
            )
    spec._source, spec._root = source, root
    for i, multiple in enumerate(spec.budget.chinchilla or []):
        for arch in spec.architectures:
            for size in spec.sizes:
                label, shape = resolve_size(arch, size)
                n_params = non_embedding_params(arch, shape)
                tokens = chinchilla_tokens(multiple, n_params)
                if tokens < batch:
                    what = f"{multiple:g}x Chinchilla for {arch} {label}, {tokens:,} tokens,"
                    raise below_one_batch("chinchilla", i, what)
    return spec


def _read(path: Path) -> str:
    try:
        with path.open("rb") as f:
            data = f.read(4 * MAX_STUDY_BYTES + 1)  # a UTF-8 character is at most 4 bytes
    except OSError as e:
        raise StudyError(f"{path}: cannot read the study file: {e.strerror}") from None
    if len(data) > 4 * MAX_STUDY_BYTES:
        raise StudyError(f"{path}: over {4 * MAX_STUDY_BYTES:,} bytes: a study file is at most "
                         f"{MAX_STUDY_BYTES:,} characters")  # fmt: skip
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise StudyError(f"{path}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x}): save "
                         "the study file as UTF-8") from None  # fmt: skip


def load_study(path: str | Path) -> StudySpec:
    """Read and validate a study file."""
    return parse_study(_read(Path(path)), str(path))


def study_name(path: str | Path) -> str:
    """The name of the study a file describes, the rest unvalidated: what the read commands
    (status, export, report, fit, upgrade) need to find its store, which holds everything
    else, even once the corpus has moved."""
    root, raw = _yaml(_read(Path(path)), str(path))
    name = raw.get("name")
    if not isinstance(name, str) or not re.match(NAME_PATTERN, name):
        line = _line_of(root, ("name",))
        raise StudyError(
            f"{path}:{line}: name: a study file names its study with letters, digits, _ . - "
            f"(got {name!r})"
        )
    return name
