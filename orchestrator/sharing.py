"""Models that leave the tool: `study export --what models`, every chosen finished trial as a
Hugging Face model folder with a hub model card (trainers/hf.py writes the folder)."""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from pathlib import Path

from analysis.report.cards import file_name
from orchestrator.outputs import check_output_dir, output_folder
from orchestrator.store import RunStore, StoreError, TrialStatus
from trainers.corpora import CorpusError


def export_models(
    store: RunStore, out: str | Path, pattern: str | None = None
) -> tuple[list[Path], list[str]]:
    """Write `out/<trial_id>/` for each finished trial (those whose id matches `pattern`, a
    glob). Returns the folders and a note for each trial left out. Raises, before anything is
    written, OutputError for an `out` that exists, StoreError for a pattern that matches
    nothing, a trial the pattern names that is not finished, or nothing left to export; `out`
    is written whole or not at all (OutputError where it cannot be)."""
    from analysis.report.cards import hub_card
    from trainers.checkpoint import load_weights, scorable
    from trainers.hf import write_folder
    from trainers.integrity import verify_final
    from trainers.train import _token_data, build_model

    out = check_output_dir(out)
    rows = store.current_trials()
    chosen = [r for r in rows if pattern is None or fnmatchcase(r.trial_id, pattern)]
    if not chosen:
        raise StoreError(f"--trials {pattern!r} matches no trial of study {store.name} (its "
                         f"trials: {_some(r.trial_id for r in rows)})")  # fmt: skip
    unfinished = [r for r in chosen if r.status != TrialStatus.finished]
    if pattern is not None and unfinished:
        raise StoreError(
            f"{_some(r.trial_id for r in unfinished)} of --trials {pattern!r} "
            f"{'is' if len(unfinished) == 1 else 'are'} not finished "
            f"({unfinished[0].status.value}): only finished trials have final weights to export"
        )
    notes = [f"{r.trial_id}: not finished ({r.status.value}), left out" for r in unfinished]
    finished = [r for r in chosen if r.status == TrialStatus.finished]
    if not finished:
        raise StoreError(f"nothing to export from study {store.name}: " + "; ".join(notes))
    specs = {r.trial_id: r.spec for r in finished}
    finals = {}  # where each trial's trainer wrote its final weights (as the store says)
    for row in finished:
        spec = specs[row.trial_id]
        final = Path(row.checkpoint) if row.checkpoint else scorable(spec).get(spec.steps)
        if final is None or not final.exists():
            where = final or f"final.pt under {spec.placement.storage or 'no storage'}"
            raise StoreError(f"{row.trial_id} left no final weights (looked for {where}): train "
                             "it again, or keep its storage")  # fmt: skip
        broken = verify_final(final, row.checkpoint_bytes, row.checkpoint_sha256)
        if broken:
            raise StoreError(f"{row.trial_id}: {broken}: train it again")
        finals[row.trial_id] = final
    table = store.trials_frame().set_index("trial_id", drop=False)
    evals = store.evals_frame()
    folders = []
    with output_folder(out) as building:
        for row in finished:
            spec = specs[row.trial_id]
            try:
                data = _token_data(spec)
                model = build_model(spec, data.vocab_size)
                load_weights(spec, finals[row.trial_id], model)
            except (RuntimeError, ValueError, CorpusError) as e:  # another trial's, no corpus
                raise StoreError(f"{row.trial_id}: {e}") from None
            card = hub_card(store.name, table.loc[row.trial_id], store.data, evals, row.config)
            name = file_name(row.trial_id)
            write_folder(spec, model, data.tokenizer, building / name, card)
            folders.append(out / name)
    return folders, notes


def _within(candidate: str, tok, seq_len: int) -> str:
    """A candidate as our causal scorer scores it: its first `seq_len` tokens (lm-eval refuses
    a continuation longer than the model's context), or a few fewer where the cut falls inside
    a character (the text must encode back to the same tokens); else whole."""
    ids = tok.encode(candidate)
    if len(ids) <= seq_len:
        return candidate
    for n in range(seq_len, max(0, seq_len - 8), -1):  # a cut inside a character: a bit less
        cut = tok.decode(ids[:n])
        if tok.encode(cut).tolist() == ids[:n].tolist():
            return cut
    return candidate


def _some(names, shown: int = 3) -> str:
    names = list(names)
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def export_tasks(store: RunStore, out: str | Path) -> list[Path]:
    """The study's zero-shot items, as its trials are scored on them now, written as
    lm-evaluation-harness tasks `<study>_<task>` into `out` (a YAML and a JSONL each), so that
    `lm_eval --model hf --model_args pretrained=<exported model> --include_path out --tasks
    <study>_last_word` scores a model on exactly these items. Returns the YAML files. Raises
    OutputError for an `out` that exists, StoreError for a study without zero-shot tasks; `out`
    is written whole or not at all (OutputError where it cannot be)."""
    import json

    import yaml

    from trainers.tasks import make_tasks
    from trainers.train import _token_data

    out = check_output_dir(out)
    rows = store.current_trials()
    if not rows or not rows[0].spec.eval.tasks:
        raise StoreError(f"study {store.name} scores no zero-shot task: nothing to export")
    spec = rows[0].spec  # the evaluation settings are the study's, the same for every trial
    data = _token_data(spec)
    items = make_tasks(list(data.heldout_documents), spec.eval.items, spec.eval.seed)
    prefix = re.sub(r"[^A-Za-z0-9_]", "_", store.name)
    written = []
    with output_folder(out) as building:
        for task in spec.eval.tasks:
            name = f"{prefix}_{task}"
            with (building / f"{name}.jsonl").open("w") as f:
                for item in items[task]:
                    choices = [_within(c, data.tokenizer, spec.data.seq_len)
                               for c in item.candidates]  # fmt: skip
                    f.write(json.dumps({"context": item.context, "choices": choices,
                                        "gold": item.answer}) + "\n")  # fmt: skip
            config = {
                "task": name,
                "dataset_path": "json",
                # lm-eval reads the items from where `study export` wrote them: export again
                # after moving the folder
                "dataset_kwargs": {"data_files": {"test": str((out / f"{name}.jsonl").resolve())}},
                "test_split": "test",
                "output_type": "multiple_choice",
                "doc_to_text": "context",
                "doc_to_choice": "choices",
                "doc_to_target": "gold",
                "target_delimiter": "",  # each candidate carries its own leading space
                "metric_list": [
                    {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                    {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
                ],
                "metadata": {
                    "version": 1.0,
                    "study": store.name,
                    "items": len(items[task]),
                    "seed": spec.eval.seed,
                },  # fmt: skip
            }
            (building / f"{name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
            written.append(out / f"{name}.yaml")
    return written
