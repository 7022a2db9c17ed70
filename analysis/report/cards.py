"""Model cards: one per finished trial, as model hubs publish them, written twice with the same
content: Markdown (`<trial>.md`, for a hub or a repository) and an HTML page styled like the
report (`<trial>.html`, what the report links: a browser shows Markdown as raw text)."""

from __future__ import annotations

import hashlib
import html
import re
from pathlib import Path

import pandas as pd

from trainers.architectures import ARCHITECTURES
from trainers.schedules import describe
from trainers.trial import TrialSpec

STYLES = {name: a.description for name, a in ARCHITECTURES.items()}
OBJECTIVES = {name: a.objective for name, a in ARCHITECTURES.items()}
OBJECTIVE_TEXT = {name: a.objective_text for name, a in ARCHITECTURES.items()}

# A card is a list of blocks, each rendered in both formats: ("h1" | "h2" | "p", text) or
# ("table", header, rows); in text, `code` and **bold** are the only markup.
Block = tuple

PAGE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 900px; color: #222;
       padding: 0 1em; }
table { border-collapse: collapse; font-size: 0.9em; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
th { background: #f2f2f2; }
code { background: #f4f4f4; padding: 0 3px; }
"""


MAX_FILE_NAME = 120  # characters: room for the suffixes (-cards, .html) under most systems' 255


def file_name(name: str) -> str:
    """A name (a study's, a trial's) as a file name: letters, digits, `_`, `-` and `.` (not
    leading) kept, anything else `_`, so that a name read from a store (`../../x`) never
    leaves its folder; past MAX_FILE_NAME characters, its start and a digest of the whole."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip(".") or "_"
    if len(safe) > MAX_FILE_NAME:
        digest = hashlib.sha256(name.encode()).hexdigest()[:16]
        safe = f"{safe[: MAX_FILE_NAME - len(digest) - 1]}-{digest}"
    return safe


def _count(value: float | None) -> str:
    if value is None or value != value:
        return "?"
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.0f}"


def _training_rows(config: dict | None) -> list[list[str]]:
    """The shape and the recipe of a trial, from its stored configuration."""
    try:
        spec = TrialSpec.from_dict(config) if config else None
    except (TypeError, ValueError, KeyError):
        spec = None  # a configuration this version cannot read: the card goes without it
    if spec is None:
        return []
    m, o = spec.model, spec.optim
    return [
        ["shape", f"{m.n_layer} layers, width {m.n_embd}, {m.n_head} heads"],
        ["sequence length", f"{spec.data.seq_len} tokens"],
        ["steps", f"{spec.steps:,} of {o.batch_size} sequences ({spec.tokens_per_step:,} tokens)"],
        ["learning rate", describe(spec)],
        ["optimizer", f"AdamW (β1 {o.beta1}, β2 {o.beta2}), weight decay {o.weight_decay}, "
                      f"gradients clipped at {o.grad_clip}"],
    ]  # fmt: skip


def card_blocks(
    study: str, trial: pd.Series, data: dict | None, evals: pd.DataFrame, config: dict | None
) -> list[Block]:
    """What the card of one trial says: what it is, how it was trained, what it scored."""
    arch = trial.architecture
    model = [
        ["architecture", arch],
        ["objective", OBJECTIVE_TEXT.get(arch, OBJECTIVES.get(arch, "?"))],
        ["parameters (non-embedding, N)", f"{trial.n_params:,}"],
        ["parameters (total)", _count(trial.total_params)],
        ["seed", str(trial.seed)],
        ["peak learning rate", f"{trial.lr:.3g}"],
    ]
    compute = []
    if data:
        compute += [
            ["corpus", str(data.get("corpus"))],
            ["tokenizer", f"{data.get('tokenizer')} ({data.get('vocab_size')} tokens)"],
        ]
    compute += [
        ["tokens seen", f"{_count(trial.tokens_done)} of a budget of {_count(trial.tokens)}"],
        ["epochs over the training split",
         f"{trial.epochs:.2f}" if pd.notna(trial.epochs) else "?"],
        ["training compute", f"{trial.flops:.3g} FLOPs"],
        ["wall time",
         f"{trial.wall_s:.0f} s on {trial.device}" if pd.notna(trial.wall_s) else "?"],
        ["throughput",
         f"{trial.tokens_per_s:,.0f} tokens/s, MFU {100 * trial.mfu:.1f}%"
         if pd.notna(trial.tokens_per_s) and pd.notna(trial.mfu) else "?"],
    ]  # fmt: skip
    blocks: list[Block] = [
        ("h1", trial.trial_id),
        ("p", f"A {STYLES.get(arch, arch)} trained from scratch in the scaling study `{study}`, "
              "one point of its grid."),
        ("h2", "Model"),
        ("table", ["", ""], model),
        ("h2", "Training"),
        ("table", ["", ""], _training_rows(config) + compute),
        ("h2", "Results"),
        ("p", f"Final validation loss ({OBJECTIVES.get(arch, '?')}, nats per scored token): "
              f"**{trial.val_loss:.4f}**."),
    ]  # fmt: skip
    mine = evals[evals.trial_id == trial.trial_id] if len(evals) else evals
    if len(mine):
        rows = []
        for e in mine.sort_values(["task", "metric"]).itertuples():
            interval = f"[{e.ci_low:.3f}, {e.ci_high:.3f}]" if pd.notna(e.ci_low) else ""
            chance = f"{e.chance:.3f}" if pd.notna(e.chance) else ""
            rows.append([e.task, e.metric, f"{e.value:.4f}", interval, chance, str(e.n_items)])
        blocks += [
            ("p", "Zero-shot, on items made from the held-out split (no training on them, no "
                  "examples in the prompt):"),
            ("table", ["task", "metric", "value", "95% interval", "chance", "items"], rows),
        ]  # fmt: skip
    blocks += [
        ("h2", "Intended use and limitations"),
        ("p", "A research artefact for measuring how loss and zero-shot skill change with scale. "
              "It is small and trained briefly on one corpus, so it knows only that corpus's "
              "language and topics, makes frequent errors, and has had no instruction tuning or "
              "safety review: do not use it to generate or judge text for anyone. Its loss is "
              "comparable with other trials of the same architecture and tokenizer only."),
    ]  # fmt: skip
    return blocks


def _md(text) -> str:
    """Text safe inside a Markdown table cell or line (no HTML, no table breaks)."""
    return (
        str(text)
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("|", "\\|")
    )


def to_markdown(blocks: list[Block]) -> str:
    """A card's blocks as Markdown (for a hub or a repository)."""
    lines = []
    for kind, *rest in blocks:
        if kind == "table":
            header, rows = rest
            lines += ["| " + " | ".join(_md(h) for h in header) + " |",
                      "|" + "---|" * len(header)]  # fmt: skip
            lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
        else:
            prefix = {"h1": "# ", "h2": "## ", "p": ""}[kind]
            lines.append(prefix + _md(rest[0]))
        lines.append("")
    return "\n".join(lines)


def _inline(text) -> str:
    """Escaped HTML of a block's text, its `code` and **bold** drawn as such."""
    out = html.escape(str(text))
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)


def to_html(blocks: list[Block]) -> str:
    """A card's blocks as an HTML page styled like the report (what the report links)."""
    title = next(html.escape(str(b[1])) for b in blocks if b[0] == "h1")
    body = []
    for kind, *rest in blocks:
        if kind == "table":
            header, rows = rest
            head = "" if not any(header) else (
                "<tr>" + "".join(f"<th>{_inline(h)}</th>" for h in header) + "</tr>"
            )  # fmt: skip
            cells = "".join(
                "<tr>" + "".join(
                    f"<th>{_inline(c)}</th>" if i == 0 and not any(header) else
                    f"<td>{_inline(c)}</td>" for i, c in enumerate(row)
                ) + "</tr>"
                for row in rows
            )  # fmt: skip
            body.append(f"<table>{head}{cells}</table>")
        else:
            body.append(f"<{kind}>{_inline(rest[0])}</{kind}>")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n<title>{title}</title>'
        f"\n<style>{PAGE_STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


PIPELINES = {name: a.pipeline for name, a in ARCHITECTURES.items()}


def hub_metadata(study: str, trial: pd.Series, data: dict | None, evals: pd.DataFrame) -> dict:
    """The YAML metadata of a hub model card: license, library, pipeline, tags, the corpus,
    and a model-index with the final validation loss and every zero-shot result (with its
    chance level)."""
    arch = trial.architecture
    corpus = str((data or {}).get("corpus", "?"))
    task = {"type": PIPELINES.get(arch, "other"),
            "name": OBJECTIVE_TEXT.get(arch, OBJECTIVES.get(arch, "?"))}  # fmt: skip
    results = [{
        "task": task,
        "dataset": {"name": f"{corpus}, validation split", "type": corpus, "split": "validation"},
        "metrics": [{"type": "loss", "name": f"validation loss ({OBJECTIVES.get(arch, '?')}, "
                     "nats per scored token)", "value": round(float(trial.val_loss), 6)}],
    }]  # fmt: skip
    mine = evals[evals.trial_id == trial.trial_id] if len(evals) else evals
    for name, rows in mine.groupby("task", sort=True) if len(mine) else []:
        metrics = []
        for e in rows.sort_values("metric").itertuples():
            accuracy = e.metric in ("acc", "acc_norm") and pd.notna(e.chance)
            what = (f"bits per byte of {e.n_items:,} held-out tokens" if name == "heldout"
                    else f"{e.metric} on {e.n_items} items"
                    + (f", chance {e.chance:.3f}" if accuracy else ""))  # fmt: skip
            metric = {"type": str(e.metric), "value": round(float(e.value), 6), "name": what}
            if accuracy:
                metric["args"] = {"chance": round(float(e.chance), 6)}
            metrics.append(metric)
        held_out = name == "heldout"
        results.append({
            "task": {"type": "text-generation" if held_out else "zero-shot-classification",
                     "name": "held-out likelihood" if held_out else f"zero-shot {name}"},
            "dataset": {"name": f"{study} {name} (items from the held-out split of {corpus})",
                        "type": f"{study}_{name}", "split": "heldout"},
            "metrics": metrics,
        })  # fmt: skip
    return {
        "license": "mit",
        "library_name": "transformers",
        "pipeline_tag": PIPELINES.get(arch, "other"),
        "tags": ["scaling-study", f"study:{study}", arch, OBJECTIVES.get(arch, "?"),
                 f"corpus:{corpus}"[:120]],
        # the Hub's `datasets` takes dataset ids: a corpus of the Hub, not a file or built-in
        **({"datasets": [corpus]} if re.fullmatch(r"[\w.-]+/[\w.-]+", corpus) else {}),
        "model-index": [{"name": str(trial.trial_id), "results": results}],
    }  # fmt: skip


def hub_card(study: str, trial: pd.Series, data: dict | None, evals: pd.DataFrame,
             config: dict | None) -> str:  # fmt: skip
    """The README.md of an exported model folder: the hub metadata, the card the report
    writes, and how to load the model."""
    import yaml

    meta = yaml.safe_dump(hub_metadata(study, trial, data, evals), sort_keys=False,
                          allow_unicode=True)  # fmt: skip
    entry = ARCHITECTURES.get(trial.architecture)
    auto = entry.hf_class if entry else "AutoModel"
    loading = [
        ("h2", "Loading"),
        ("p", "With `transformers` (4.5x or 5.x; offline, no remote code):"),
    ]
    snippet = "\n".join([
        "```python",
        f"from transformers import {auto}, AutoTokenizer",
        "",
        f'model = {auto}.from_pretrained("{trial.trial_id}")  # the path of this folder',
        f'tokenizer = AutoTokenizer.from_pretrained("{trial.trial_id}")',
        *(entry.card_usage if entry else ()),
        "```",
        "",
    ])  # fmt: skip
    body = to_markdown(card_blocks(study, trial, data, evals, config) + loading)
    return f"---\n{meta}---\n\n{body}\n{snippet}"


def write_cards(
    folder: Path,
    study: str,
    trials: pd.DataFrame,
    data: dict | None,
    evals: pd.DataFrame,
    *,
    configs: dict[str, dict] | None = None,
    only_new: bool = False,
) -> dict[str, Path]:
    """Write the card of every finished trial into `folder`, as Markdown and as HTML (with
    `only_new`, of those that have none yet); trial id -> the HTML card's path."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    by_trial = dict(tuple(evals.groupby("trial_id"))) if len(evals) else {}
    for _, trial in trials[trials.status == "finished"].iterrows():
        stem = file_name(trial.trial_id)
        out[trial.trial_id] = folder / f"{stem}.html"
        if only_new and out[trial.trial_id].exists():
            continue
        mine = by_trial.get(trial.trial_id, evals.iloc[0:0])
        blocks = card_blocks(study, trial, data, mine, (configs or {}).get(trial.trial_id))
        (folder / f"{stem}.md").write_text(to_markdown(blocks))
        (folder / f"{stem}.html").write_text(to_html(blocks))
    return out
