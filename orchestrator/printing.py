"""Plain text for the terminal: tables of trials (`study plan`, `study status`) and the last
lines of `study run` (its caveats, then its headline)."""

from __future__ import annotations

import glob
import json
import os

from orchestrator.branches import one_run_share
from orchestrator.capacity import Need, never_fits
from orchestrator.duration import estimate_run
from orchestrator.reading import to_json
from orchestrator.sizes import flops_text, format_count

COUNT_COLUMNS = {"n_params", "total_params", "tokens", "tokens_done", "batch_tokens",
                 "warmup_tokens"}  # fmt: skip
HEADERS = {
    "trial_id": "trial",
    "n_params": "N",
    "total_params": "params",
    "tokens_done": "tokens",
    "val_loss": "val loss",
    "wall_s": "wall s",
    "attempts": "tries",
    "cpu_minutes": "CPU min",
    "flops": "FLOPs",
    "tokens_per_param": "tok/N",
    "batch_tokens": "batch",
    "warmup_tokens": "warmup",
    "beta2": "β2",
}


def _cell(column: str, value) -> str:
    """One value as the table shows it: counts as "600K", times to a tenth, empty for none."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if column in COUNT_COLUMNS:
        return format_count(int(value))
    if column in ("cpu_minutes", "wall_s"):
        return f"{value:.1f}" if value < 100 else f"{value:,.0f}"
    if isinstance(value, float):
        return f"{value:.2g}" if column in ("flops", "lr") else f"{value:.4g}"
    return str(value)


def frame_table(frame, title: str) -> str:
    """The frame as a plain-text table (numbers right-aligned), for the terminal. Built by hand
    rather than with rich's Table, which takes about 0.5 ms a row: 5 s for a 10,000-trial study."""
    columns = list(frame.columns)
    cells = [[HEADERS.get(c, c) for c in columns]]
    cells += [
        [_cell(c, v) for c, v in zip(columns, row, strict=True)]
        for row in frame.itertuples(index=False)
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    numeric = [frame[c].dtype.kind in "if" for c in columns]

    def line(row: list[str]) -> str:
        padded = (
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, right in zip(row, widths, numeric, strict=True)
        )
        return " " + "   ".join(padded).rstrip() + "\n"

    rule = " " + "─" * (sum(widths) + 3 * (len(widths) - 1)) + "\n"
    return title + "\n\n" + line(cells[0]) + rule + "".join(map(line, cells[1:]))


PLAN_COLUMNS = ["trial_id", "shape", "n_params", "tokens", "tokens_per_param", "epochs",
                "batch_tokens", "lr", "warmup_tokens", "beta2", "steps", "flops",
                "cpu_minutes"]  # fmt: skip


def _trials(count: int) -> str:
    return f"{count} trial{'' if count == 1 else 's'}"


def grid_tables(frame, study: str, *, by_budget: bool) -> str:
    """`study plan`'s tables: one for the grid, or one per budget of an IsoFLOP grid; a
    column of workers where a trial spans several."""
    columns = PLAN_COLUMNS + (["workers"] if frame.workers.max() > 1 else [])
    if not by_budget:
        return frame_table(frame[columns], f"{study}: {_trials(len(frame))}") + "\n"
    text = f"{study}: {_trials(len(frame))}\n\n"
    for flops, group in frame.groupby("budget_flops", sort=True):
        title = f"budget {flops_text(flops)} FLOPs: {_trials(len(group))}"
        text += frame_table(group[columns], title) + "\n"
    return text


def plan_footer(frame, spec) -> list[str]:
    """`study plan`'s lines under the tables: the total compute, the run's one time estimate
    (orchestrator.duration) and the storage of weights."""
    kept = ", and at every evaluation point: train.keep_checkpoints"
    trunks = ", and each trunk's train state at its branch points"
    return [
        f"total {frame.compute.sum():.3g} FLOPs{one_run_share(frame)}",
        f"time: {estimate_run(frame).phrase()}",
        f"storage: {frame.weights_mb.sum():,.1f} MB of weights under {spec.storage} (final.pt of "
        f"each trial{kept if spec.train.keep_checkpoints else ''}"
        f"{trunks if spec.budget.from_one_run else ''}), besides the token files",
    ] + [note for note in [rounding_note(frame)] if note]


def plan_caveats(frame, spec) -> list:
    """The caveats of the run's fits that the planned grid alone decides (analysis.design),
    each an analysis.headline.Caveat with its code."""
    from analysis.design import design_caveats

    if frame.empty:
        return []
    points = frame[["architecture", "n_params", "tokens", "flops", "lr"]].rename(
        columns={"n_params": "N", "tokens": "D", "flops": "C"})  # fmt: skip
    return design_caveats(points, zero_shot=bool(spec.eval.zero_shot.tasks))


def before_training(frame, spec) -> list[str]:
    """`study plan`'s last block: what the run's fits will warn of, said before anything trains."""
    caveats = plan_caveats(frame, spec)
    heading = f"before you train: caveats the run will give ({len(caveats)}):"
    return [heading] + [f"  {c.line()}" for c in caveats] if caveats else []


def plan_json(frame, spec, warnings: list[str] = ()) -> str:
    """`study plan --json`: the trials (one object each), the caveats known before training
    ({code, message, what_to_do, architectures}), the run's time estimate and the plan's
    warnings (`plan_warnings`: data that repeats, trials that could never be placed)."""
    from analysis.design import caveats_json

    return json.dumps({"study": spec.name, "trials": json.loads(to_json(frame)),
                       "caveats": caveats_json(plan_caveats(frame, spec)),
                       "estimate": estimate_run(frame).to_json(),
                       "warnings": list(warnings)}, indent=2)  # fmt: skip


def rounding_note(frame) -> str | None:
    """One line when trials train more tokens than their budget, and why: a trial trains whole
    steps (trainers.trial.steps_for), so its last batch may overshoot (None if none does)."""
    over = frame[frame.tokens > frame.budget_tokens]
    if not len(over):
        return None
    batches = sorted(set(over.batch_tokens))
    batch = format_count(batches[0])
    if len(batches) > 1:
        batch = f"{batch} to {format_count(batches[-1])}"
    first = over.iloc[0]
    return (f"tokens are rounded up to whole batches of {batch} tokens (a trial trains whole "
            f"steps): {format_count(first.budget_tokens)} becomes {format_count(first.tokens)}"
            f"{f' ({first.trial_id})' if len(over) < len(frame) else ''}")  # fmt: skip


def plan_warnings(
    frame, spec, train_tokens: int, cluster: tuple[str, list] | None = None
) -> list[str]:
    """`study plan`'s warnings: data that repeats, and trials that could never be placed on
    this machine, or on the nodes of the cluster `study plan --address` joined (`cluster`: its
    name and its nodes' resources; the plan is otherwise offline, and `study run` asks the
    cluster it joins)."""
    warnings = [w for w in [repeat_warning(frame, train_tokens)] if w]
    required = spec.resources.gpus_required
    if cluster is not None or frame.workers.max() > 1 or required:
        name, nodes = cluster or ("this machine", [
            {"CPU": os.cpu_count() or 1, "GPU": len(glob.glob("/dev/nvidia[0-9]*"))}])
        needs = [Need(r.trial_id, r.workers, r.cpus, r.gpus) for r in frame.itertuples()]
        lines = never_fits(needs, nodes, cpu_fallback=not required, name=name)
        after = ("`study run` refuses a trial it can never place" if cluster else "`study run` "
                 "checks the cluster it joins, and refuses a trial it can never place")
        warnings += [f"{line} ({after})" for line in lines]  # fmt: skip
    return warnings


def repeat_warning(frame, train_tokens: int) -> str | None:
    """One line when cells of the grid read the training split more than once (None if none)."""
    repeats = frame[frame.epochs > 1].drop_duplicates(["architecture", "size", "tokens"])
    split = f"{format_count(train_tokens)}-token training split"
    if repeats.tokens.nunique() == 1:
        return (f"trials of {format_count(repeats.tokens.iloc[0])} tokens read the {split} "
                f"{repeats.epochs.iloc[0]:.1f} times: the data repeats")  # fmt: skip
    if len(repeats):  # one line, not one per token count
        which = ", ".join(f"{r.architecture} {r.size} on {format_count(r.tokens)} tokens "
                          f"({r.epochs:.1f} times)" for r in repeats.itertuples())  # fmt: skip
        return (f"{len(repeats)} cells read the {split} more than once, up to "
                f"{repeats.epochs.max():.1f} times: the data repeats for {which}")  # fmt: skip
    return None


def ending_blocks(result) -> tuple[list[str], list[str]]:
    """The last lines of `study run`: the caveats (the fits' warnings grouped, each said once
    with what to do, the outdated trials among them) for stderr, then the headline, one line
    per architecture, for stdout: printed in that order, the headline ends the run."""
    from analysis.headline import caveats_of, headline_of

    caveats = result.caveats or caveats_of(result.fits)
    headline = result.headline or headline_of(result.fits)
    said = caveats.lines()
    if result.outdated:
        from analysis.report import outdated_note

        said.append(outdated_note(result.outdated))
    caveat_lines = [f"caveats ({len(said)}):"] + [f"  {line}" for line in said] if said else []
    lines = headline.lines()
    return caveat_lines, (["headline:"] + [f"  {line}" for line in lines] if lines else [])


def print_ending(result, out, err) -> None:
    """Print the caveats on `err` (stderr), then the headline on `out`: the run's last lines."""
    caveats, headline = ending_blocks(result)
    if caveats:
        err.print("\n".join(caveats), highlight=False, markup=False)
    if headline:
        out.print("\n".join(headline), highlight=False, markup=False)
