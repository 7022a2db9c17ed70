"""The two-step prediction of accuracy (`TaskFit`: task loss against N and D, then accuracy
against task loss), a table's or an architecture's (`TaskFits`), and their JSON."""

from __future__ import annotations

from dataclasses import dataclass

from analysis.results.estimates import Estimate, _estimates, _read_estimates, nulls
from analysis.results.laws import NotFitted


@dataclass(frozen=True, kw_only=True)
class Step1:
    """The two-step fit's first step: task loss against N (and D)."""

    formula: str
    params: dict[str, Estimate]
    n_points: int
    rmse_log: float
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return nulls({"formula": self.formula, "params": _estimates(self.params),
                      "n_points": self.n_points, "rmse_log": self.rmse_log,
                      "warnings": list(self.warnings)})  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Step2:
    """The two-step fit's second step: accuracy against task loss, a sigmoid above chance."""

    formula: str
    params: dict[str, Estimate]  # a, b, k, L0
    n_points: int
    rmse: float
    chance: float

    def to_json(self) -> dict:
        return nulls({"formula": self.formula, "params": _estimates(self.params),
                      "n_points": self.n_points, "rmse": self.rmse,
                      "chance": self.chance})  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class TaskFit:
    """One task's two-step prediction of accuracy at `target` (N, D), with 95% intervals from
    resampling whole runs; in the self-test, the run held out and what it measured."""

    task_loss: Estimate
    accuracy: Estimate
    step1: Step1
    step2: Step2
    target: dict[str, float]
    n_runs: int
    n_boot: int
    held_out: str | None = None  # the self-test: the largest run, predicted from the others
    measured: Estimate | None = None  # its accuracy (interval over the items, where known)
    measured_task_loss: float | None = None

    def line(self, name: str, task: str) -> str:
        """One line for the terminal and the report's summary."""
        if self.held_out is not None:
            return (f"{name} {task}: the largest run {self.held_out} held out and predicted from "
                    f"the other {self.n_runs}: accuracy {_show(self.accuracy)}, measured "
                    f"{_show(self.measured)}")  # fmt: skip
        where = ", ".join(f"{k}={v:.3g}" for k, v in self.target.items())
        return (f"{name} {task}: accuracy {_show(self.accuracy)} at {where} (task loss "
                f"{_show(self.task_loss)} bits per byte)")  # fmt: skip

    def to_json(self) -> dict:
        out = {"task_loss": self.task_loss.to_json(), "accuracy": self.accuracy.to_json(),
               "step1": self.step1.to_json(), "step2": self.step2.to_json(),
               "target": dict(self.target), "n_runs": self.n_runs,
               "n_boot": self.n_boot}  # fmt: skip
        if self.held_out is not None:
            measured = {"estimate": self.measured.estimate}
            if self.measured.ci:  # over the items, where the table gave it
                measured["ci"] = list(self.measured.ci)
            out |= {"held_out": self.held_out, "measured": measured,
                    "measured_task_loss": self.measured_task_loss}  # fmt: skip
        return nulls(out)

    @classmethod
    def from_json(cls, d: dict) -> TaskFit:
        s1, s2 = d["step1"], d["step2"]
        step1 = Step1(formula=s1["formula"], params=_read_estimates(s1["params"]),
                      n_points=s1["n_points"], rmse_log=s1["rmse_log"],
                      warnings=tuple(s1["warnings"]))  # fmt: skip
        step2 = Step2(formula=s2["formula"], params=_read_estimates(s2["params"]),
                      n_points=s2["n_points"], rmse=s2["rmse"], chance=s2["chance"])  # fmt: skip
        measured = Estimate.from_json(d["measured"]) if "measured" in d else None
        return cls(task_loss=Estimate.from_json(d["task_loss"]),
                   accuracy=Estimate.from_json(d["accuracy"]), step1=step1, step2=step2,
                   target=dict(d["target"]), n_runs=d["n_runs"], n_boot=d["n_boot"],
                   held_out=d.get("held_out"), measured=measured,
                   measured_task_loss=d.get("measured_task_loss"))  # fmt: skip


def _show(entry: Estimate, digits: int = 3) -> str:
    text = f"{entry.estimate:.{digits}g}"
    ci = entry.ci
    return text + (f" [{ci[0]:.{digits}g}, {ci[1]:.{digits}g}]" if ci else " (no interval)")


@dataclass(frozen=True)
class TaskFits:
    """The two-step fits of every task of a table or an architecture (a task that cannot be
    fitted: `NotFitted`), and what they assumed (`warnings`: chance taken as 0)."""

    tasks: dict[str, TaskFit | NotFitted]
    warnings: tuple[str, ...] = ()

    def fitted(self) -> dict[str, TaskFit]:
        """The tasks that were fitted."""
        return {t: r for t, r in self.tasks.items() if isinstance(r, TaskFit)}

    def failed(self) -> dict[str, NotFitted]:
        """The tasks that could not be, with why."""
        return {t: r for t, r in self.tasks.items() if isinstance(r, NotFitted)}

    def lines(self, name: str, fitted_only: bool = False) -> list[str]:
        """One line per task (only the fitted ones: `fitted_only`)."""
        return [r.line(name, task) if isinstance(r, TaskFit)
                else f"{name} {task}: two-step fit not made ({r.error})"
                for task, r in self.tasks.items()
                if isinstance(r, TaskFit) or not fitted_only]  # fmt: skip

    def all_warnings(self, name: str) -> list[str]:
        """What the fits assumed, and each task's step-1 warnings, one line each."""
        return list(self.warnings) + [f"{name} {task} two-step: {warning}"
                                      for task, r in self.fitted().items()
                                      for warning in r.step1.warnings]  # fmt: skip

    def to_json(self) -> dict:
        tasks = {t: r.to_json() if isinstance(r, TaskFit) else {"error": r.error}
                 for t, r in self.tasks.items()}  # fmt: skip
        return {"law": "task", "tasks": tasks, "warnings": list(self.warnings)}

    @classmethod
    def from_json(cls, d: dict) -> TaskFits:
        tasks = {t: NotFitted(law="task", error=r["error"]) if "error" in r
                 else TaskFit.from_json(r)
                 for t, r in d["tasks"].items()}  # fmt: skip
        return cls(tasks, tuple(d.get("warnings", [])))
