"""The study file's `recipe:` and `train.lr: {sweep: [...]}`: which rule set makes each trial's
training plan (orchestrator.rulesets) with which constants, and a learning-rate sweep as
multiples of the rule's rate."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from orchestrator.rulesets import CONSTANTS, RULE_SETS, SIGNED
from orchestrator.sizes import LADDER, parse_count

_STRICT = ConfigDict(extra="forbid", frozen=True)
Architecture = Literal[tuple(LADDER)]  # type: ignore[valid-type]
_Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
_Signed = Annotated[float, Field(allow_inf_nan=False)]
_Tokens = Annotated[int, BeforeValidator(parse_count), Field(gt=0)]  # 108M, "512K", 524288
# A constant is one value for every architecture, or one per architecture ({decoder: 3e-3,
# encoder: 1e-3}; an architecture left out keeps the set's published value).
def per_architecture(kind):
    return Annotated[
        Annotated[kind, Tag("one-value")]
        | Annotated[dict[Architecture, kind], Tag("per-architecture")],
        Discriminator(lambda v: "per-architecture" if isinstance(v, dict) else "one-value"),
    ]


Positive = per_architecture(_Positive)
Signed = per_architecture(_Signed)
Tokens = per_architecture(_Tokens)
Beta = per_architecture(Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)])


def _recipe_form(value):
    # `recipe: olmo` is the set with its published constants
    return {"name": value} if isinstance(value, str) else value


class RecipeSpec(BaseModel):
    """A rule set and the constants it overrides (any left out keep the published value)."""

    model_config = _STRICT

    name: Literal[RULE_SETS] = Field(  # type: ignore[valid-type]
        "fixed", description="olmo, porian, deepseek, or fixed (train.* as given)"
    )
    n_ref: Tokens | None = Field(None, description="olmo, porian: parameters the rules "
                                 "are anchored at (108M)", examples=["108M"])  # fmt: skip
    lr_ref: Positive | None = Field(None, description="olmo, porian: peak lr at N = n_ref (0.0047)")
    lr_exponent: Signed | None = Field(
        None,
        description="exponent of the learning rate, signed: of N/n_ref (olmo, porian: −1/3), or "
        "of C in FLOPs (deepseek: −0.1250)",
    )
    batch_ref: Tokens | None = Field(
        None, description="olmo, porian: batch in tokens at N = n_ref (327,680)"
    )
    batch_exponent: Signed | None = Field(
        None,
        description="exponent of the batch, signed: of N/n_ref (olmo, porian: 2/3), or of C in "
        "FLOPs (deepseek: 0.3271)",
    )
    beta2_small: Beta | None = Field(None, description="olmo, porian: AdamW β2 "
                                         "under beta2_batch tokens (0.99)",
                                     examples=[0.99])  # fmt: skip
    beta2_large: Beta | None = Field(None, description="olmo, porian: AdamW β2 "
                                         "from beta2_batch tokens (0.95)",
                                     examples=[0.95])  # fmt: skip
    beta2_batch: Tokens | None = Field(
        None, description="olmo, porian: batch in tokens from which beta2_large applies "
        "(524,288)", examples=["512K"]
    )  # fmt: skip
    warmup_per_param: Positive | None = Field(
        None, description="olmo, porian: warmup tokens per parameter (1: N tokens)"
    )
    wsd_lr_factor: Positive | None = Field(
        None,
        description="olmo, porian: multiplies the rate under WSD (olmo 0.5, porian 1)",
        examples=[0.5],
    )
    lr_coef: Positive | None = Field(
        None,
        description="deepseek: η_opt = lr_coef·C^lr_exponent, C in FLOPs (0.3118)",
        examples=[0.3118],
    )
    batch_coef: Positive | None = Field(
        None,
        description="deepseek: B_opt = batch_coef·C^batch_exponent tokens (0.2920)",
        examples=[0.292],
    )
    beta2: Beta | None = Field(None, description="deepseek: AdamW β2 (0.95)", examples=[0.95])
    weight_decay: Positive | None = Field(
        None, description="AdamW weight decay (0.1)", examples=[0.1]
    )
    lr_scale: Positive | None = Field(
        None, description="multiplies the rule's rate (1)", examples=[0.5]
    )

    @model_validator(mode="after")
    def _constants_of_the_set(self):
        own = CONSTANTS[self.name]
        for key in self.model_fields_set - {"name"}:
            if key not in own:
                known = ", ".join(own) or "none: fixed takes train.* as given"
                raise ValueError(f"{key} is not a constant of {self.name} (its constants: {known})")
        return self

    def constants(self, architecture: str) -> dict[str, float]:
        """The constants the study file gives an architecture (the rest keep the set's
        published values)."""
        out = {}
        for key in self.model_fields_set - {"name"}:
            value = getattr(self, key)
            if isinstance(value, dict):
                if architecture not in value:
                    continue
                value = value[architecture]
            out[key] = value
        return out

    def is_fixed(self) -> bool:
        """Whether trials train with train.* as given (no rule set)."""
        return self.name == "fixed"


RecipeField = Annotated[RecipeSpec, BeforeValidator(_recipe_form)]
assert not SIGNED - set(RecipeSpec.model_fields)  # every signed constant is a field


class LrSweep(BaseModel):
    """Learning rates swept as multiples of the recipe's (or train.lr's rule's) rate at N."""

    model_config = _STRICT

    sweep: list[Positive] = Field(
        min_length=1, description="multiples of the rule's rate: [0.25, 0.5, 1, 2, 4]"
    )

    @field_validator("sweep", mode="before")
    @classmethod
    def _a_list_of_numbers(cls, value):
        if not isinstance(value, list) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for v in value
        ):
            raise ValueError(f"a sweep is a list of positive numbers, not {value!r}")
        if len(set(value)) != len(value):
            raise ValueError(f"a sweep is a list of distinct multiples, not {value!r}")
        return value
