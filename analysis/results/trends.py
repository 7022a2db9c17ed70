"""Zero-shot trends (`Trend`: a metric against model size), an architecture's with its verdict
(`ArchitectureTrends`) or a table's (`TableTrend`), their JSON and the rows a store keeps."""

from __future__ import annotations

from dataclasses import dataclass

from analysis.results.estimates import Estimate, nulls


@dataclass(frozen=True, kw_only=True)
class Trend:
    """A zero-shot metric against model size: the slope per decade of N (least squares on
    log10 N) with the 95% interval of the resampled slopes, Spearman's rho of the metric with
    N and its p-value, and the points."""

    metric: str  # "acc", or "bits_per_byte" (lower is better)
    slope: Estimate
    spearman_rho: float
    p_value: float
    n_params: tuple[float, ...]
    values: tuple[float, ...]  # the metric at each size
    interval_from: str | None = None  # published numbers: what the interval resampled

    def to_json(self) -> dict:
        """As `study fit --law trend` prints it: the slope as a parameter with its interval,
        and the rank statistics (the points are in the store's `row`)."""
        return nulls({"n_points": len(self.n_params), "params": {"slope": self.slope.to_json()},
                      "slope": self.slope.estimate, "spearman_rho": self.spearman_rho,
                      "p_value": self.p_value})  # fmt: skip

    def row(self, architecture: str, task: str, verdict: str) -> dict:
        """The fit row a store keeps of it (law "trend:<task>"), its architecture's verdict
        in the quality."""
        quality = {"metric": self.metric, "spearman_rho": self.spearman_rho,
                   "p_value": self.p_value, "verdict": verdict}  # fmt: skip
        points = [{"n_params": n, self.metric: v}
                  for n, v in zip(self.n_params, self.values, strict=True)]  # fmt: skip
        return nulls({"architecture": architecture, "law": f"trend:{task}",
                      "params": {"slope": self.slope.to_json()}, "quality": quality,
                      "data": points})  # fmt: skip

    @classmethod
    def from_row(cls, row: dict) -> Trend:
        """A trend from the fit row a store keeps (`row`)."""
        q, points = row["quality"], row["data"]
        return cls(metric=q["metric"], slope=Estimate.from_json(row["params"]["slope"]),
                   spearman_rho=q["spearman_rho"], p_value=q["p_value"],
                   n_params=tuple(p["n_params"] for p in points),
                   values=tuple(p[q["metric"]] for p in points))  # fmt: skip


@dataclass(frozen=True)
class ArchitectureTrends:
    """An architecture's zero-shot trends by task, and the sentence that says whether its
    larger models did better (`analysis.trends.verdict`)."""

    tasks: dict[str, Trend]
    verdict: str

    def to_json(self) -> dict:
        """As `study fit STUDY --law trend` prints an architecture's trends."""
        return {"law": "trend", "tasks": {task: t.to_json() for task, t in self.tasks.items()},
                "verdict": self.verdict}  # fmt: skip

    def rows(self, architecture: str) -> list[dict]:
        """The fit rows a store keeps: one per task (none without a trend)."""
        return [t.row(architecture, task, self.verdict) for task, t in self.tasks.items()]

    @classmethod
    def from_rows(cls, rows: list[dict]) -> ArchitectureTrends:
        """An architecture's trends from the fit rows a store keeps of them (`rows`)."""
        tasks = {row["law"].removeprefix("trend:"): Trend.from_row(row) for row in rows}
        return cls(tasks, rows[0]["quality"]["verdict"])


@dataclass(frozen=True)
class TableTrend:
    """The trend of a table of published accuracies (`study fit --csv --law trend`), and its
    verdict."""

    trend: Trend
    verdict: str

    def to_json(self) -> dict:
        """As `study fit --csv --law trend` prints it."""
        return (
            {"law": "trend"}
            | self.trend.to_json()
            | nulls({"interval_from": self.trend.interval_from, "verdict": self.verdict})
        )
