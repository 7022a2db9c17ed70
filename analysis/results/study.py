"""A study's fits by architecture (`StudyFits`): their JSON and the rows a store keeps."""

from __future__ import annotations

from dataclasses import dataclass, field

from analysis.results.laws import Fit, fit_from_json
from analysis.results.tasks import TaskFits
from analysis.results.trends import ArchitectureTrends


@dataclass(frozen=True)
class StudyFits:
    """A study's fits by architecture: its laws (architecture -> law -> fit), its two-step
    task fits and its zero-shot trends (architecture -> `ArchitectureTrends`)."""

    laws: dict[str, dict[str, Fit]]
    tasks: dict[str, TaskFits] = field(default_factory=dict)
    trends: dict[str, ArchitectureTrends] = field(default_factory=dict)

    def warnings(self) -> list[str]:
        """Every warning of the fits, one line each ("decoder n: E = ... sits at its bound"),
        then the task fits' and the tasks not fitted."""
        out = [f"{architecture} {law}: {warning}"
               for architecture, laws in sorted(self.laws.items())
               for law, fit in laws.items()
               for warning in fit.warnings]  # fmt: skip
        for name, result in sorted(self.tasks.items()):
            out += result.all_warnings(name)
        for name, result in sorted(self.tasks.items()):
            out += [f"{name} {task}: two-step fit not made ({r.error})"
                    for task, r in result.failed().items()]  # fmt: skip
        return out

    def to_json(self) -> dict[str, dict[str, dict]]:
        """The laws' JSON, by architecture and law."""
        return {arch: {law: fit.to_json() for law, fit in laws.items()}
                for arch, laws in self.laws.items()}  # fmt: skip

    def tasks_json(self) -> dict[str, dict]:
        """The task fits' JSON, by architecture."""
        return {arch: result.to_json() for arch, result in self.tasks.items()}

    def trend_rows(self) -> list[dict]:
        """The trends as the fit rows a store keeps (law "trend:<task>")."""
        return [row for arch, result in self.trends.items() for row in result.rows(arch)]

    @classmethod
    def from_json(cls, laws: dict, tasks: dict | None = None, trends: list | None = None):
        """A study's fits from their JSON (`to_json`, `tasks_json`, `trend_rows`); the fits
        read back have no solution (no curve or band to draw), and an architecture without
        a trend has no row to come back from."""
        out = {arch: {law: fit_from_json(d) for law, d in fits.items()}
               for arch, fits in laws.items()}  # fmt: skip
        tasks = {arch: TaskFits.from_json(r) for arch, r in (tasks or {}).items()}
        by_arch = {}
        for row in trends or []:
            by_arch.setdefault(row["architecture"], []).append(row)
        return cls(out, tasks, {a: ArchitectureTrends.from_rows(r) for a, r in by_arch.items()})

    def rows(self) -> list[dict]:
        """The fits as the rows a store keeps (architecture, law, params, quality and the
        points fitted), NaN-free: the laws', the trends', then the task fits'."""
        rows = []
        for architecture, laws in self.laws.items():
            for law, fit in laws.items():
                stored = fit.to_json()  # law, params, quality, data, the rest
                params, data = stored.pop("params", {}), stored.pop("data")
                quality = stored.pop("quality", {}) | {k: v for k, v in stored.items()
                                                       if k != "law"}  # fmt: skip
                rows.append({"architecture": architecture, "law": law, "params": params,
                             "quality": quality, "data": data})  # fmt: skip
        rows += self.trend_rows()
        for architecture, result in self.tasks.items():
            for task, t in result.fitted().items():
                stored = t.to_json()
                params = {"step1": stored.pop("step1"), "step2": stored.pop("step2")}
                rows.append({"architecture": architecture, "law": f"task:{task}",
                             "params": params, "quality": stored, "data": []})  # fmt: skip
        return rows
