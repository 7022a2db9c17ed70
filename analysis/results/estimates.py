"""Numbers a fit estimates (`Estimate`: a value and its interval) and the one NaN-to-null
rule of their JSON."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

TRIALS, RESIDUALS = "trial bootstrap", "residual bootstrap"  # what an interval resampled
# the loss-at-optimum law's: whole compute budgets (isoFLOP curves), each curve's minimum kept
BUDGETS = "budget bootstrap"


def nulls(value):
    """NaN and infinities as None, recursively (JSON has no NaN); numpy scalars as Python's."""
    if isinstance(value, dict):
        return {k: nulls(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [nulls(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def json_of(value):
    """The JSON form of a result, or of a dict or list holding results (and plain values)."""
    if hasattr(value, "to_json"):
        return value.to_json()
    if isinstance(value, dict):
        return {k: json_of(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_of(v) for v in value]
    return nulls(value)


def _finite(value) -> bool:
    return value is not None and math.isfinite(value)


@dataclass(frozen=True)
class Estimate:
    """A number a fit estimates, with its 95% interval (None: no interval)."""

    estimate: float | None
    ci: tuple[float | None, float | None] | None = None

    def text(self, digits: int = 4, ci_digits: int = 4) -> str:
        """The text "0.34 [0.29, 0.4]"; a value or bound that is not finite is said, not printed."""
        text = f"{self.estimate:.{digits}g}" if _finite(self.estimate) else "not finite"
        if not self.ci:
            return text
        if not all(_finite(v) for v in self.ci):
            return text + " (no finite interval)"
        return text + f" [{self.ci[0]:.{ci_digits}g}, {self.ci[1]:.{ci_digits}g}]"

    def to_json(self) -> dict:
        return nulls({"estimate": self.estimate, "ci": list(self.ci) if self.ci else None})

    @classmethod
    def from_json(cls, entry: dict) -> Estimate:
        ci = entry.get("ci")
        return cls(entry.get("estimate"), tuple(ci) if ci else None)


def _estimates(entries: dict[str, Estimate]) -> dict:
    return {name: e.to_json() for name, e in entries.items()}


def _read_estimates(entries: dict) -> dict[str, Estimate]:
    return {name: Estimate.from_json(e) for name, e in entries.items()}
