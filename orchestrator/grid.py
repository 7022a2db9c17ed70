"""Expanding a study into its grid of trials: pure and deterministic."""

from __future__ import annotations

from itertools import product

from orchestrator.sizes import non_embedding_params
from orchestrator.spec import LrRule, StudyError, StudySpec, resolve_size
from trainers.trial import Budget, Data, Eval, Model, Optim, Placement, TrialSpec


def learning_rates(study: StudySpec, architecture: str, n_params: int) -> list[float]:
    """The peak learning rates a model is trained with: one, or a swept list."""
    lr = study.train.lr
    if isinstance(lr, LrRule):
        return [lr.lr(architecture, n_params)]
    return lr if isinstance(lr, list) else [lr]


def expand(study: StudySpec, data_key: str, storage: str) -> list[TrialSpec]:
    """Every trial of the study, complete, ordered by architecture, N, budget, learning rate
    and seed: the one place a TrialSpec is made. `data_key` is the key of the study's prepared
    token files and `storage` the absolute folder of its checkpoints ("" for none).

    Ids read like `decoder-1M-s0`; the budget joins the id (`decoder-1M-2Mtok-s0`, or
    `decoder-1M-0.5xC-s0` for multiples of the Chinchilla ratio) only when the study has
    several, and the learning rate (`decoder-1M-lr0.003-s0`) only when it sweeps several.
    """
    trials = []
    budget = study.budget
    many_budgets = len(budget.tokens or budget.chinchilla) > 1
    sweep = isinstance(study.train.lr, list) and len(study.train.lr) > 1
    train, zero_shot = study.train, study.eval.zero_shot
    data = Data(
        corpus=study.data.corpus_string(),
        tokenizer=study.data.tokenizer_string(),
        seq_len=study.data.seq_len,
        val_fraction=study.data.val_fraction,
        heldout_fraction=study.data.heldout_fraction,
        split_seed=study.data.split_seed,
        key=data_key,
    )
    for architecture in study.architectures:
        sizes = [resolve_size(architecture, s) for s in study.sizes]
        sizes.sort(key=lambda ls: non_embedding_params(architecture, ls[1]))
        for label, shape in sizes:
            n_params = non_embedding_params(architecture, shape)
            lrs = learning_rates(study, architecture, n_params)
            model = Model(architecture, shape.n_layer, shape.n_embd, shape.n_head, train.dropout)
            placement = Placement(
                cpus=study.resources.cpus_per_trial,
                gpus=study.resources.gpus_for(n_params),
                storage=storage,
                checkpoint_every_tokens=train.checkpoint_every or 0,
                peak_flops=study.resources.peak_flops or 0,
                compile=train.compile,
            )
            for (tokens, name), lr, seed in product(budget.tokens_for(n_params), lrs, study.seeds):
                suffix = f"-{name}" if many_budgets else ""
                suffix += f"-lr{lr:.3g}" if sweep else ""
                optim = Optim(
                    batch_size=train.batch_size,
                    lr=lr,
                    min_lr_ratio=train.min_lr_ratio,
                    warmup=train.warmup,
                    weight_decay=train.weight_decay,
                    grad_clip=train.grad_clip,
                    beta1=train.betas[0],
                    beta2=train.betas[1],
                )
                evaluation = Eval(
                    every_tokens=study.eval.every_tokens or max(1, tokens // 10),
                    tokens=study.eval.tokens,
                    tasks=tuple(zero_shot.tasks),
                    items=zero_shot.items,
                    seed=zero_shot.seed,
                    at_every_eval=zero_shot.at_every_eval,
                    pll_stride=zero_shot.pll_stride,
                )
                trials.append(
                    TrialSpec(
                        study=study.name,
                        trial_id=f"{architecture}-{label}{suffix}-s{seed}",
                        size=label,
                        seed=seed,
                        model=model,
                        data=data,
                        optim=optim,
                        budget=Budget(tokens),
                        eval=evaluation,
                        placement=placement,
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
