"""Model cards: one Markdown file per finished trial, as model hubs publish them."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from trainers.architectures import ARCHITECTURES

STYLES = {name: a.description for name, a in ARCHITECTURES.items()}
OBJECTIVES = {name: a.objective for name, a in ARCHITECTURES.items()}
OBJECTIVE_TEXT = {name: a.objective_text for name, a in ARCHITECTURES.items()}


def _md(text) -> str:
    """Text safe inside a Markdown table cell or line (no HTML, no table breaks)."""
    return (
        str(text)
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("|", "\\|")
    )


def _count(value: float | None) -> str:
    if value is None or value != value:
        return "?"
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.0f}"


def model_card(study: str, trial: pd.Series, data: dict | None, evals: pd.DataFrame) -> str:
    """The Markdown card of one trial: what it is, what it saw, what it scored."""
    arch = trial.architecture
    lines = [
        f"# {_md(trial.trial_id)}",
        "",
        f"A {_md(STYLES.get(arch, arch))} trained from scratch in the scaling study "
        f"`{_md(study)}`, one point of its grid.",
        "",
        "## Model",
        "",
        "| | |",
        "|---|---|",
        f"| architecture | {_md(arch)} |",
        f"| objective | {_md(OBJECTIVE_TEXT.get(arch, OBJECTIVES.get(arch, '?')))} |",
        f"| parameters (non-embedding, N) | {trial.n_params:,} |",
        f"| parameters (total) | {_count(trial.total_params)} |",
        f"| seed | {trial.seed} |",
        f"| peak learning rate | {trial.lr:.3g} |",
        "",
        "## Training data and compute",
        "",
        "| | |",
        "|---|---|",
    ]
    if data:
        lines += [
            f"| corpus | {_md(data.get('corpus'))} |",
            f"| tokenizer | {_md(data.get('tokenizer'))} ({data.get('vocab_size')} tokens) |",
        ]
    lines += [
        f"| tokens seen | {_count(trial.tokens_done)} of a budget of {_count(trial.tokens)} |",
        f"| epochs over the training split | {trial.epochs:.2f} |"
        if pd.notna(trial.epochs)
        else "| epochs | ? |",
        f"| training compute | {trial.flops:.3g} FLOPs |",
        f"| wall time | {trial.wall_s:.0f} s on {_md(trial.device)} |"
        if pd.notna(trial.wall_s)
        else "| wall time | ? |",
        f"| throughput | {trial.tokens_per_s:,.0f} tokens/s, MFU {100 * trial.mfu:.1f}% |"
        if pd.notna(trial.tokens_per_s) and pd.notna(trial.mfu)
        else "| throughput | ? |",
        "",
        "## Results",
        "",
        f"Final validation loss ({_md(OBJECTIVES.get(arch, '?'))}, nats per scored token): "
        f"**{trial.val_loss:.4f}**.",
        "",
    ]
    mine = evals[evals.trial_id == trial.trial_id] if len(evals) else evals
    if len(mine):
        lines += [
            "Zero-shot, on items made from the held-out split (no training on them, no "
            "examples in the prompt):",
            "",
            "| task | metric | value | 95% interval | chance | items |",
            "|---|---|---|---|---|---|",
        ]
        for e in mine.sort_values(["task", "metric"]).itertuples():
            interval = f"[{e.ci_low:.3f}, {e.ci_high:.3f}]" if pd.notna(e.ci_low) else ""
            chance = f"{e.chance:.3f}" if pd.notna(e.chance) else ""
            lines.append(
                f"| {_md(e.task)} | {_md(e.metric)} | {e.value:.4f} | {interval} | {chance} | "
                f"{e.n_items} |"
            )
        lines.append("")
    lines += [
        "## Intended use and limitations",
        "",
        "A research artefact for measuring how loss and zero-shot skill change with scale. It "
        "is small and trained briefly on one corpus, so it knows only that corpus's language "
        "and topics, makes frequent errors, and has had no instruction tuning or safety "
        "review: do not use it to generate or judge text for anyone. Its loss is comparable "
        "with other trials of the same architecture and tokenizer only.",
        "",
    ]
    return "\n".join(lines)


def write_cards(
    folder: Path, study: str, trials: pd.DataFrame, data: dict | None, evals: pd.DataFrame
) -> dict[str, Path]:
    """Write a card for every finished trial into `folder`; trial id -> card path."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for _, trial in trials[trials.status == "finished"].iterrows():
        path = folder / (re.sub(r"[^A-Za-z0-9_.-]", "_", trial.trial_id) + ".md")
        path.write_text(model_card(study, trial, data, evals))
        out[trial.trial_id] = path
    return out
