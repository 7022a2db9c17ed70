"""Expanding a study into its grid of trials: pure and deterministic."""

from __future__ import annotations

from itertools import product

from orchestrator.sizes import non_embedding_params
from orchestrator.spec import LrRule, StudyError, StudySpec, resolve_size
from trainers.trial import TrialSpec


def learning_rates(study: StudySpec, architecture: str, n_params: int) -> list[float]:
    """The peak learning rates a model is trained with: one, or a swept list."""
    lr = study.train.lr
    if isinstance(lr, LrRule):
        return [lr.lr(architecture, n_params)]
    return lr if isinstance(lr, list) else [lr]


def expand(study: StudySpec) -> list[TrialSpec]:
    """Every trial of the study, ordered by architecture, N, budget, learning rate and seed.

    Ids read like `decoder-1M-s0`; the budget joins the id (`decoder-1M-2Mtok-s0`, or
    `decoder-1M-0.5xC-s0` for multiples of the Chinchilla ratio) only when the study has
    several, and the learning rate (`decoder-1M-lr0.003-s0`) only when it sweeps several.
    """
    trials = []
    budget = study.budget
    many_budgets = len(budget.tokens or budget.chinchilla) > 1
    sweep = isinstance(study.train.lr, list) and len(study.train.lr) > 1
    train, data = study.train, study.data
    for architecture in study.architectures:
        sizes = [resolve_size(architecture, s) for s in study.sizes]
        sizes.sort(key=lambda ls: non_embedding_params(architecture, ls[1]))
        for label, shape in sizes:
            n_params = non_embedding_params(architecture, shape)
            lrs = learning_rates(study, architecture, n_params)
            for (tokens, name), lr, seed in product(budget.tokens_for(n_params), lrs, study.seeds):
                suffix = f"-{name}" if many_budgets else ""
                suffix += f"-lr{lr:.3g}" if sweep else ""
                trials.append(
                    TrialSpec(
                        study=study.name,
                        trial_id=f"{architecture}-{label}{suffix}-s{seed}",
                        architecture=architecture,
                        size=label,
                        n_layer=shape.n_layer,
                        n_embd=shape.n_embd,
                        n_head=shape.n_head,
                        corpus=data.corpus_string(),
                        tokenizer=data.tokenizer_string(),
                        seq_len=data.seq_len,
                        val_fraction=data.val_fraction,
                        split_seed=data.split_seed,
                        heldout_fraction=data.heldout_fraction,
                        tokens=tokens,
                        seed=seed,
                        batch_size=train.batch_size,
                        lr=lr,
                        min_lr_ratio=train.min_lr_ratio,
                        warmup=train.warmup,
                        weight_decay=train.weight_decay,
                        grad_clip=train.grad_clip,
                        beta1=train.betas[0],
                        beta2=train.betas[1],
                        dropout=train.dropout,
                        eval_every_tokens=study.eval.every_tokens or max(1, tokens // 10),
                        eval_tokens=study.eval.tokens,
                        zero_shot_tasks=tuple(study.eval.zero_shot.tasks),
                        zero_shot_items=study.eval.zero_shot.items,
                        zero_shot_seed=study.eval.zero_shot.seed,
                        zero_shot_every_eval=study.eval.zero_shot.at_every_eval,
                        pll_stride=study.eval.zero_shot.pll_stride,
                        cpus=study.resources.cpus_per_trial,
                        gpus=study.resources.gpus_for(n_params),
                        storage=study.storage,
                        checkpoint_every_tokens=train.checkpoint_every or 0,
                        peak_flops=study.resources.peak_flops or 0,
                        compile=train.compile,
                    )
                )
    seen: dict[str, TrialSpec] = {}
    for trial in trials:
        if trial.trial_id in seen:
            raise StudyError(
                f"two cells of the grid get the same trial id {trial.trial_id!r}: two sizes "
                "with one label (name explicit shapes differently) or learning rates equal to "
                "3 significant digits"
            )
        seen[trial.trial_id] = trial
    return trials
