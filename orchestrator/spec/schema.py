"""The study file's schema: the pydantic models a study's YAML is validated against (read and
checked as a whole in orchestrator.spec.loader)."""

from __future__ import annotations

import glob
import hashlib
import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    field_validator,
    model_validator,
)

from orchestrator.recipe import DEFAULT_LR_BASE, DEFAULT_LR_RULE, CellBudget
from orchestrator.sizes import (
    LADDER,
    Shape,
    format_count,
    non_embedding_params,
    storable_count,
)
from orchestrator.sizes import parse_count as _parse_count
from orchestrator.spec import yaml_errors
from orchestrator.spec.recipes import LrSweep, RecipeField, RecipeSpec, per_architecture
from orchestrator.spec.resources import ResourcesSpec
from trainers.architectures import ARCHITECTURES
from trainers.corpora import BUILTIN_CORPORA
from trainers.tokenizers import SPECIALS
from trainers.trial import Data

N_SPECIALS = len(SPECIALS)

Count = Annotated[int, BeforeValidator(_parse_count), AfterValidator(storable_count)]
Flops = Annotated[int, BeforeValidator(_parse_count)]  # stored as floats: no integer bound
Seed = Annotated[int, Field(ge=0, lt=2**31)]  # a signed 32-bit integer in any store


def _as_list(value):
    return value if isinstance(value, list) else [value]


class _Strict(BaseModel):
    # inf and NaN are no value of any field: `lr: .inf` would pass `gt=0` and diverge every trial
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class FilesCorpus(_Strict):
    """Local files: a path or glob of .txt, .jsonl or .parquet files."""

    path: str = Field(
        description="a file, or a glob such as texts/*.txt or data/**/*.jsonl",
        examples=["texts/*.txt"],
    )
    format: Literal["txt", "jsonl", "parquet"] | None = Field(
        None, description="default: suffix", examples=["jsonl"]
    )
    text_field: str = Field("text", description="the JSON field or parquet column of the text")
    blank_lines: int | None = Field(
        None,
        ge=1,
        description=".txt: documents are separated by this many blank lines or more; "
        "default: one document per file",
        examples=[2],
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
    revision: str | None = Field(
        None, description="a Hub dataset's commit, tag or branch", examples=["main"]
    )
    config: str | None = Field(None, description="dataset configuration (wikitext-2-raw-v1)")
    data_files: str | list[str] | None = Field(
        None,
        description="files for a builder such as json, csv or text (relative to where you run)",
        examples=["data/*.jsonl"],
    )
    split: str = Field("train", description="the Hub dataset's split to read")
    text_field: str = Field("text", description="the column of the text")
    streaming: bool = Field(False, description="read the Hub dataset without downloading it whole")
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

    def trial_data(self, key: str = "") -> Data:
        """The data as trials carry it; `key` is the token cache's key ("" before it is known)."""
        return Data(
            corpus=self.corpus_string(),
            tokenizer=self.tokenizer_string(),
            seq_len=self.seq_len,
            val_fraction=self.val_fraction,
            heldout_fraction=self.heldout_fraction,
            split_seed=self.split_seed,
            key=key,
        )


class ShapeSpec(_Strict):
    """An explicit model shape instead of a ladder label."""

    n_layer: int = Field(gt=0, description="transformer blocks")
    n_embd: int = Field(gt=0, description="model width")
    n_head: int = Field(gt=0, description="attention heads (divides n_embd)")
    name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        max_length=40,  # the store's size column, on every database
        description="label for trial ids (letters, digits, _ . -); default: N, as in '25.5K'",
        examples=["wide-1M"],
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
    Annotated[
        str, BeforeValidator(lambda v: v if isinstance(v, str) else str(v)), Tag("size-label")
    ]
    | Annotated[ShapeSpec, Tag("size-shape")],
    Discriminator(lambda v: "size-shape" if isinstance(v, dict | ShapeSpec) else "size-label"),
]


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
    from_one_run: bool = Field(
        False,
        description="train each size once to its largest budget and branch a WSD "
        "cooldown off it at each smaller one (orchestrator.branches)",
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

    def cells(self) -> list[CellBudget]:
        """The budgets, smallest first, one for each cell of a size."""
        if self.tokens is not None:
            return [CellBudget(tokens=t) for t in sorted(self.tokens)]
        if self.chinchilla is not None:
            return [CellBudget(chinchilla=m) for m in sorted(self.chinchilla)]
        return [CellBudget(flops=f) for f in sorted(self.flops)]


PositiveFloat = Annotated[float, Field(gt=0)]
AdamBeta = Annotated[float, Field(ge=0, lt=1)]  # torch.optim.AdamW refuses any other


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


class LrRule(_Strict):
    """Peak learning rate as a function of size: `base` up to N = `at`, then falling as
    N^(−exponent): lr = base · min(1, (N / at)^(−exponent))."""

    rule: Literal["power"] = Field("power", description="the rule's form: base·(at/N)^exponent")
    base: PositiveFloat | dict[str, PositiveFloat] = Field(
        DEFAULT_LR_BASE, description="peak lr up to N = at; one value or one per architecture"
    )
    at: Count = Field(DEFAULT_LR_RULE.at, description="N beyond which the peak lr falls")
    exponent: float = Field(DEFAULT_LR_RULE.exponent, ge=0, description="how fast it falls with N")

    @field_validator("base")
    @classmethod
    def _known_architectures(cls, base):
        if isinstance(base, dict):
            unknown = set(base) - set(LADDER)
            if unknown:
                raise ValueError(f"unknown architectures {sorted(unknown)}; known: {list(LADDER)}")
        return base


class WsdSchedule(_Strict):
    """Warmup, stable, decay: the peak rate held, then a cooldown over the last fraction of the
    steps (Hägele et al. 2024: 1−sqrt over 20% matches cosine)."""

    name: Literal["wsd"] = Field(description="warmup, stable, decay")
    cooldown: float = Field(0.2, gt=0, lt=1, description="fraction of the steps cooling down")
    shape: Literal["linear", "1-sqrt"] = Field("1-sqrt", description="of the cooldown")


def _schedule_form(value):
    # `wsd` alone is WSD with its defaults; {name: cosine} is the plain `cosine`.
    if value == "wsd":
        return {"name": "wsd"}
    if isinstance(value, dict) and value.get("name") == "cosine" and len(value) == 1:
        return "cosine"
    return value


def _lr_kind(v) -> str:
    if isinstance(v, list):
        return "lr-sweep"
    if isinstance(v, LrSweep) or (isinstance(v, dict) and "sweep" in v):
        return "lr-multiples"
    return "lr-rule" if isinstance(v, dict | LrRule) else "lr-value"


class TrainSpec(_Strict):
    """Optimizer and schedule: AdamW, linear warmup, then cosine decay or WSD."""

    batch_size: int = Field(16, gt=0, description="sequences per step")
    lr: Annotated[
        Annotated[PositiveFloat, Tag("lr-value")]
        | Annotated[list[PositiveFloat], Tag("lr-sweep")]
        | Annotated[LrRule, Tag("lr-rule")]
        | Annotated[LrSweep, Tag("lr-multiples")],
        Discriminator(_lr_kind),
    ] = Field(LrRule(), description="peak lr: one value, a list to sweep, a rule of N, or "
              "{sweep: [0.5, 1, 2]}: multiples of the recipe's or rule's rate")  # fmt: skip
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="final lr as a fraction of peak")
    warmup: float = Field(0.05, ge=0, lt=1, description="fraction of steps warming up")
    schedule: Annotated[
        Annotated[Literal["cosine"], Tag("schedule-cosine")]
        | Annotated[WsdSchedule, Tag("schedule-wsd")],
        Discriminator(
            lambda v: "schedule-wsd" if isinstance(v, dict | WsdSchedule) else "schedule-cosine"
        ),
        BeforeValidator(_schedule_form),
    ] = Field("cosine", description="cosine, or {name: wsd, cooldown: 0.2, shape: 1-sqrt}")
    weight_decay: float = Field(0.1, ge=0, description="AdamW weight decay")
    grad_clip: float = Field(1.0, gt=0, description="max global gradient norm")
    betas: tuple[AdamBeta, AdamBeta] = Field((0.9, 0.95), description="AdamW β1, β2")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout probability")
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
    zero_shot: ZeroShotSpec = Field(ZeroShotSpec(), description="the zero-shot tasks")
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


NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"  # a study's name: its store's and report's file


def resolve_size(architecture: str, size: str | ShapeSpec) -> tuple[str, Shape]:
    """The label and shape of one entry of `sizes` for an architecture."""
    if isinstance(size, ShapeSpec):
        shape = size.shape
        return size.name or format_count(non_embedding_params(architecture, shape)), shape
    return size, LADDER[architecture][size]


class StudySpec(_Strict):
    """A whole study: the grid architectures × sizes × budgets × seeds and how to train it."""

    name: str = Field(  # a file name, and a store's field
        pattern=NAME_PATTERN,
        max_length=100,
        description="names the store and the report",
        examples=["my-study"],
    )
    data: DataSpec = Field(DataSpec(), description="the corpus and its tokens")
    architectures: list[str] = Field(
        min_length=1, description=", ".join(LADDER), examples=[["decoder", "encoder"]]
    )
    sizes: list[SizeItem] = Field(
        min_length=1, description="ladder labels or explicit shapes", examples=[["10K", "100K"]]
    )
    budget: BudgetSpec = Field(
        description="tokens each size trains on", examples=[{"chinchilla": [5, 10]}]
    )
    seeds: Annotated[list[Seed], BeforeValidator(_as_list)] = Field(
        [0], min_length=1, description="one trial per seed in each cell"
    )
    recipe: RecipeField = Field(RecipeSpec(), description="rule set: olmo, porian, deepseek, "
                                "fixed; or {name: olmo, lr_scale: 0.5, ...}")  # fmt: skip
    train: TrainSpec = Field(TrainSpec(), description="the optimizer and its schedule")
    eval: EvalSpec = Field(EvalSpec(), description="validation and zero-shot scoring")
    resources: ResourcesSpec = Field(ResourcesSpec(), description="CPUs, GPUs and workers")
    predict: PredictSpec | None = Field(None, description="forecast beyond the grid")
    storage: str = Field("./artifacts", description="checkpoints; a shared path on a cluster")
    next_study: per_architecture(str) | None = Field(
        None,
        description="the study that goes further than this one: the headline names it for an "
        "architecture whose law these sizes do not show; one per architecture, or one for all",
        examples=["studies/scaling.yaml", {"encoder": "studies/encoder.yaml"}],
    )
    _source: str = PrivateAttr("<string>")  # where the study was read from, for error lines
    _root: object = PrivateAttr(None)  # its YAML nodes

    def where(self, *loc) -> str:
        """`file:line: field` of a field of the study (for errors found after validation)."""
        return yaml_errors.where(self._root, self._source, loc, StudySpec)

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
