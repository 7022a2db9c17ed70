"""The terminal view of a running study: which trials run, tokens done, loss and ETA."""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.console import Console
from rich.live import Live
from rich.table import Table

from orchestrator.sizes import format_count
from trainers.events import End, Event, Scored, Start, Train, Validation, ZeroShot, ZeroShotProgress
from trainers.trial import TrialSpec


@dataclass
class _Row:
    spec: TrialSpec
    status: str = "pending"  # the words of `study status`: pending, running, finished, ...
    tokens: int = 0
    loss: float | None = None
    val_loss: float | None = None
    tokens_per_s: float | None = None
    scoring: tuple[int, int] | None = None  # zero-shot items scored of all, while it scores

    @property
    def eta_s(self) -> float | None:
        if self.status != "running" or not self.tokens_per_s or self.scoring:
            return None
        return max(0.0, (self.spec.budget.tokens - self.tokens) / self.tokens_per_s)


def last_line(error: str) -> str:
    """The line of a traceback that says what went wrong."""
    return error.strip().splitlines()[-1] if error.strip() else "unknown error"


def _accuracies(results: list[dict]) -> str:
    """The accuracies of zero-shot results, "last_word 27.5%, minimal_pairs 55.0%"."""
    return ", ".join(
        f"{r['task']} {r['value']:.1%}"
        for r in results
        if r["metric"] == "acc" and r["value"] is not None
    )


def _scoring(row: _Row) -> str:
    """What a trial scoring zero-shot items says, where its tokens are all trained."""
    done, total = row.scoring or (0, 0)
    return f"scoring zero-shot, {done:,} of {total:,} items"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Progress:
    """A live table on a terminal; one line per change of state (and a heartbeat) elsewhere."""

    def __init__(self, trials: list[TrialSpec], console: Console, heartbeat_s: float = 15.0):
        self.rows = {t.trial_id: _Row(t) for t in trials}
        self.console = console
        self.started = time.monotonic()
        self.heartbeat_s = heartbeat_s
        self._last_beat = self.started
        self._live: Live | None = None

    def __enter__(self) -> Progress:
        if self.console.is_terminal:
            self._live = Live(self.table(), console=self.console, refresh_per_second=2)
            self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.update(self.table())
            self._live.__exit__(*exc)

    def _log(self, message: str) -> None:
        if self._live is None:
            self.console.print(message, highlight=False)

    def update(self, trial_id: str, event: Event) -> None:
        """Take one event of a trial."""
        row = self.rows[trial_id]
        match event:
            case Start():
                row.status = "running"
                row.tokens = resumed = event.resumed_tokens
                how = f"resumed at {resumed:,} tokens" if resumed else "started"
                where = event.device
                placement = row.spec.placement
                if placement.gpus > 0 and where == "cpu":
                    where += (f" ({placement.gpus:g} GPU asked for, but torch sees no CUDA "
                              "device there)")  # fmt: skip
                if placement.workers > 1:
                    where += f" ×{placement.workers} ({placement.strategy})"
                self._log(f"[{_duration(self.elapsed)}] {trial_id}: {how} on {where}")
            case Train():
                row.tokens, row.loss, row.tokens_per_s = (
                    event.tokens,
                    event.loss,
                    event.tokens_per_s,
                )
            case Validation():
                row.val_loss = event.val_loss
            case ZeroShotProgress():  # a trial of `study eval` runs from here (no Start)
                row.status, row.scoring = "running", (event.done, event.total)
            case ZeroShot():
                row.scoring = None
                self._log(
                    f"[{_duration(self.elapsed)}] {trial_id}: zero-shot accuracy "
                    f"{_accuracies(event.results)}"
                )
            case Scored():
                row.status, row.val_loss = "finished", event.val_loss  # scored again
                row.scoring = None
                accuracies = _accuracies(event.results)
                self._log(
                    f"[{_duration(self.elapsed)}] {trial_id}: scored at step {event.step:,}, "
                    f"val loss {event.val_loss:.4f}{', ' + accuracies if accuracies else ''}"
                )
            case End():
                row.status, row.tokens, row.val_loss = "finished", event.tokens, event.val_loss
                row.scoring = None
                self._log(
                    f"[{_duration(self.elapsed)}] {trial_id}: finished, val loss "
                    f"{event.val_loss:.4f} in {_duration(event.wall_s)}, "
                    f"{event.tokens_per_s:,.0f} tokens/s, MFU {event.mfu:.1%}"
                )

    def requeue(self, trial_id: str) -> None:
        """A trial is waiting to run again (the console says why)."""
        self.rows[trial_id].status = "pending"

    def fail(self, trial_id: str, status: str = "failed") -> None:
        """Mark a trial failed or interrupted."""
        self.rows[trial_id].status = status
        self._log(f"[{_duration(self.elapsed)}] {trial_id}: {status}")

    @property
    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self.started

    def tick(self) -> None:
        """Refresh the table, or print a heartbeat line for the running trials."""
        if self._live is not None:
            self._live.update(self.table())
            return
        if time.monotonic() - self._last_beat < self.heartbeat_s:
            return
        self._last_beat = time.monotonic()
        for row in self.rows.values():
            if row.status == "running" and row.scoring:
                self._log(f"[{_duration(self.elapsed)}] {row.spec.trial_id}: {_scoring(row)}")
            elif row.status == "running":
                loss = f"{row.loss:.4f}" if row.loss is not None else "-"
                self._log(
                    f"[{_duration(self.elapsed)}] {row.spec.trial_id}: "
                    f"{format_count(row.tokens)}/{format_count(row.spec.budget.tokens)} tokens, "
                    f"loss {loss}, ETA {_duration(row.eta_s)}"
                )

    def table(self) -> Table:
        """The live table."""
        done = sum(r.status == "finished" for r in self.rows.values())
        table = Table(title=f"{done}/{len(self.rows)} trials done, {_duration(self.elapsed)}")
        spread = any(r.spec.placement.workers > 1 for r in self.rows.values())
        columns = ("trial", *(("workers",) if spread else ()), "status", "tokens", "loss",
                   "val loss", "tokens/s", "ETA")  # fmt: skip
        for column in columns:
            table.add_column(column, justify="left" if column in ("trial", "status") else "right")
        for row in self.rows.values():
            p = row.spec.placement
            workers = [f"{p.workers} {p.strategy}" if p.workers > 1 else "1"] if spread else []
            table.add_row(
                row.spec.trial_id,
                *workers,
                _scoring(row) if row.status == "running" and row.scoring else row.status,
                f"{format_count(row.tokens) if row.tokens else 0}/"
                f"{format_count(row.spec.budget.tokens)}",
                f"{row.loss:.4f}" if row.loss is not None else "",
                f"{row.val_loss:.4f}" if row.val_loss is not None else "",
                f"{row.tokens_per_s:,.0f}" if row.tokens_per_s else "",
                _duration(row.eta_s),
            )
        return table
