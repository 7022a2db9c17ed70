"""The trainer under a process group, without Ray: two gloo ranks train what one process does,
with DDP and with FSDP2 (`strategy: fsdp`)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import trainers.train
from orchestrator.grid import expand
from orchestrator.spec import parse_study
from trainers import parallel
from trainers.checkpoint import load_weights
from trainers.events import from_dict, to_dict
from trainers.parallel import Ranks
from trainers.train import build_model, train
from trainers.trial import TrialSpec

STUDY = """\
name: p
data: {seq_len: 32}
architectures: [decoder, encoder, encdec]
sizes: [25K]
budget: {tokens: 12800}
train: {batch_size: 8, lr: 3.0e-3}
eval: {every_tokens: 6400, tokens: 2K, zero_shot: {tasks: []}}
storage: ""
"""
WORLD = 2
# DDP and FSDP change only the order of float reductions (an all-reduce, or FSDP's
# reduce-scatter of each block's gradients); the probe saw 9e-6 after 60 steps.
TOLERANCE = 1e-4
LOGITS = 1e-3  # weights within 1e-4 of one process's, through 2 blocks and a 50-way head


def _specs(storage: Path, strategy: str = "ddp") -> dict[str, TrialSpec]:
    """The three architectures' 50-step trials; the decoder keeps checkpoints and scores a
    zero-shot task at its end, so rank 0's writing and scoring run too."""
    specs = {s.model.architecture: s for s in expand(parse_study(STUDY), "", "")}
    specs = {a: replace(s, placement=replace(s.placement, strategy=strategy))
             for a, s in specs.items()}  # fmt: skip
    decoder = specs["decoder"]
    specs["decoder"] = replace(
        decoder,
        placement=replace(decoder.placement, storage=str(storage), checkpoint_every_tokens=3072),
        eval=replace(decoder.eval, tasks=("minimal_pairs",), items=20),
    )
    return specs


def _join(folder: Path, rank: int) -> None:
    dist.init_process_group("gloo", init_method=f"file://{folder}/pg", rank=rank,
                            world_size=WORLD, timeout=timedelta(seconds=60))  # fmt: skip


def _spawn(target, args: tuple, *, until_rank_0: bool = False) -> None:
    """Run `target(rank, *args)` on WORLD processes; a hung rank fails the test, not the
    session. `until_rank_0`: the others are ended once rank 0 has."""
    group = mp.spawn(target, args=args, nprocs=WORLD, join=False)
    watched = group.processes[:1] if until_rank_0 else group.processes
    deadline = time.monotonic() + 300
    while any(p.exitcode is None for p in watched) and time.monotonic() < deadline:
        time.sleep(0.2)
    hung = any(p.exitcode is None for p in watched)
    for process in group.processes:
        if process.exitcode is None:
            process.kill()
            process.join()
    if hung:
        pytest.fail("the ranks did not finish in 300 s")
    if not until_rank_0:
        group.join()  # raises a rank's error


def _rank(rank: int, folder: Path, specs: list[dict]) -> None:
    """One rank: join the group, train each trial, write what it reported and returned."""
    _join(folder, rank)
    try:
        for i, spec in enumerate(specs):
            out = folder / f"{i}-rank{rank}.jsonl"

            def report(event, out=out):
                with open(out, "a") as file:
                    file.write(json.dumps(to_dict(event)) + "\n")

            end = train(TrialSpec.from_dict(spec), report)
            (folder / f"{i}-rank{rank}.end").write_text(json.dumps(end and to_dict(end)))
    finally:
        dist.destroy_process_group()


def _ranks_train(folder: Path, two: dict[str, TrialSpec]) -> dict[str, dict]:
    """Each trial of `two` trained by two gloo ranks: rank 0's events, what rank 1 reported
    (nothing, it should be) and returned, by architecture."""
    order = list(two)
    _spawn(_rank, (folder, [two[a].to_dict() for a in order]))
    out = {}
    for i, architecture in enumerate(order):
        lines = (folder / f"{i}-rank0.jsonl").read_text().splitlines()
        out[architecture] = {
            "ranks": [from_dict(json.loads(line)) for line in lines],
            "others": [p.name for p in folder.glob(f"{i}-rank[1-9]*.jsonl")],
            "returned": json.loads((folder / f"{i}-rank1.end").read_text()),
            "spec": two[architecture],
        }
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Each architecture's trial trained by two gloo ranks and by one process: their events."""
    folder = tmp_path_factory.mktemp("ranks")
    one, two = _specs(folder / "one"), _specs(folder / "two")
    # each rank's 4 rows of the 8 in micro-batches of 3 and 1, the gradients accumulated
    one["encoder-micro"] = one["encoder"]
    two["encoder-micro"] = _micro(two["encoder"], 3)
    out = _ranks_train(folder, two)
    for architecture, run in out.items():
        run["alone"] = []
        train(one[architecture], run["alone"].append)
    return out


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    """Each architecture's trial trained by two gloo ranks under FSDP2: their events."""
    folder = tmp_path_factory.mktemp("fsdp")
    two = _specs(folder / "two", "fsdp")
    two["encoder-micro"] = _micro(two["encoder"], 3)  # FSDP2's reduce-scatter held to the last
    return _ranks_train(folder, two)


def _micro(spec: TrialSpec, size: int) -> TrialSpec:
    return replace(spec, placement=replace(spec.placement, micro_batch=size))


@pytest.mark.parametrize("architecture", ["decoder", "encoder", "encdec", "encoder-micro"])
def test_two_ranks_train_what_one_process_does(runs, architecture):
    run = runs[architecture]
    alone, ranks = run["alone"], run["ranks"]
    assert [e.kind for e in ranks] == [e.kind for e in alone]
    assert ranks[0].workers == 2 and ranks[0].strategy == "ddp"
    assert alone[0].workers == 1 and alone[0].strategy == ""
    curve = lambda events: [e for e in events if e.kind == "train"]
    assert len(curve(alone)) == run["spec"].steps == 50
    for a, b in zip(curve(alone), curve(ranks), strict=True):
        assert (a.step, a.tokens, a.lr) == (b.step, b.tokens, b.lr)
        assert a.loss == pytest.approx(b.loss, abs=TOLERANCE)
    end_alone, end_ranks = alone[-1], ranks[-1]
    assert end_ranks.val_loss == pytest.approx(end_alone.val_loss, abs=TOLERANCE)
    seen = lambda end: (end.tokens, end.tokens_scored)
    assert seen(end_ranks) == seen(end_alone)
    assert run["others"] == [] and run["returned"] is None  # rank 1 reports nothing


def _curve(events) -> list:
    return [e for e in events if e.kind == "train"]


@pytest.mark.parametrize("architecture", ["decoder", "encoder", "encdec", "encoder-micro"])
def test_fsdp_on_two_ranks_trains_what_ddp_and_one_process_do(runs, sharded, architecture):
    alone, ddp = runs[architecture]["alone"], runs[architecture]["ranks"]
    fsdp = sharded[architecture]["ranks"]
    assert [e.kind for e in fsdp] == [e.kind for e in alone]
    assert (fsdp[0].workers, fsdp[0].strategy) == (2, "fsdp")
    assert (fsdp[0].n_params, fsdp[0].total_params) == (alone[0].n_params, alone[0].total_params)
    assert len(_curve(fsdp)) == 50
    for a, b, c in zip(_curve(alone), _curve(ddp), _curve(fsdp), strict=True):
        assert (a.step, a.tokens, a.lr) == (c.step, c.tokens, c.lr)
        assert c.loss == pytest.approx(a.loss, abs=TOLERANCE)
        assert c.loss == pytest.approx(b.loss, abs=TOLERANCE)
    assert fsdp[-1].val_loss == pytest.approx(alone[-1].val_loss, abs=TOLERANCE)
    assert (fsdp[-1].tokens, fsdp[-1].tokens_scored) == (alone[-1].tokens, alone[-1].tokens_scored)
    run = sharded[architecture]
    assert run["others"] == [] and run["returned"] is None


def test_fsdp_leaves_final_weights_whole_that_a_plain_model_loads(runs, sharded):
    run = sharded["decoder"]
    kinds = [e.kind for e in run["ranks"]]
    assert kinds.count("zeroshot") == 1 and kinds.count("checkpoint") > 1
    zeroshot = lambda events: next(e for e in events if e.kind == "zeroshot").results
    for a, b in zip(zeroshot(runs["decoder"]["alone"]), zeroshot(run["ranks"]), strict=True):
        assert (a["task"], a["metric"]) == (b["task"], b["metric"])
        assert a["value"] == pytest.approx(b["value"], abs=LOGITS)
    spec = run["spec"]
    folder = Path(spec.placement.storage) / spec.study / spec.trial_id
    assert not (folder / "last.pt").exists() and not list(folder.glob("*.dcp"))
    # a full state dict (no shards, no DTensors) that loads, strictly, into a plain model
    vocab = torch.load(folder / "final.pt", weights_only=True)["model"]["wte.weight"].shape[0]
    plain, alone = build_model(spec, vocab), build_model(spec, vocab)
    load_weights(spec, folder / "final.pt", plain)
    load_weights(spec, Path(runs["decoder"]["alone"][-1].checkpoint), alone)
    idx = torch.randint(
        0, vocab, (4, spec.data.seq_len), generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        torch.testing.assert_close(plain(idx), alone(idx), atol=LOGITS, rtol=0)


def test_rank_0_writes_the_checkpoints_and_scores_once(runs):
    run = runs["decoder"]
    kinds = [e.kind for e in run["ranks"]]
    assert kinds.count("zeroshot") == 1 and kinds.count("checkpoint") > 1
    folder = Path(run["spec"].placement.storage) / run["spec"].study / run["spec"].trial_id
    assert (folder / "final.pt").exists() and not (folder / "last.pt").exists()
    alone = Path(runs["decoder"]["alone"][-1].checkpoint)
    weights = torch.load(folder / "final.pt", weights_only=True)["model"]
    expected = torch.load(alone, weights_only=True)["model"]
    for name, tensor in expected.items():
        torch.testing.assert_close(weights[name], tensor, atol=TOLERANCE, rtol=0)


def test_the_rows_of_every_rank_make_the_batch():
    batch = {"inputs": torch.arange(24).view(8, 3), "targets": torch.arange(24).view(8, 3) + 1}
    for world in (1, 2, 4, 8):
        shares = [parallel.rows(batch, Ranks(r, world)) for r in range(world)]
        for name, whole in batch.items():
            assert torch.equal(torch.cat([s[name] for s in shares]), whole)
            assert {len(s[name]) for s in shares} == {8 // world}
    with pytest.raises(ValueError, match="a batch of 8 rows does not split over 3 ranks"):
        parallel.rows(batch, Ranks(0, 3))


def test_one_rank_weighs_its_loss_by_one_and_is_the_whole_group():
    batch = {"targets": torch.tensor([[1, -100], [-100, -100]])}
    assert parallel.weight(batch, batch, Ranks()) == 1.0
    assert parallel.ranks() == Ranks(0, 1) and Ranks().main
    value = torch.tensor(2.5)
    assert parallel.mean(value, Ranks()) is value
    # two ranks: the one with 1 of the 3 scored tokens weighs its mean by 1 * 2 / 3
    whole = {"targets": torch.tensor([[1, -100], [2, 3]])}
    assert parallel.weight(parallel.rows(whole, Ranks(0, 2)), whole, Ranks(0, 2)) == 2 / 3
    assert parallel.weight(parallel.rows(whole, Ranks(1, 2)), whole, Ranks(1, 2)) == 4 / 3


LOGGED = 10  # train-loss points: a window of 5 steps, so checkpoints (every 12) fall inside one


def _rank_killed(rank: int, folder: Path, spec: dict, at_step: int) -> None:
    """A rank of a trial whose rank 0 is killed right after it saves a checkpoint."""
    _join(folder, rank)
    trainers.train.MAX_LOGGED_STEPS = LOGGED

    def report(event):
        if event.kind == "checkpoint" and event.step >= at_step:
            os._exit(0)

    train(TrialSpec.from_dict(spec), report)


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_a_checkpoint_of_two_ranks_resumes_on_one(tmp_path, monkeypatch, strategy):
    monkeypatch.setattr(trainers.train, "MAX_LOGGED_STEPS", LOGGED)
    spec = _specs(tmp_path / "two", strategy)["decoder"]
    spec = replace(spec, eval=replace(spec.eval, tasks=()))
    _spawn(_rank_killed, (tmp_path, spec.to_dict(), 24), until_rank_0=True)
    folder = tmp_path / "two" / spec.study / spec.trial_id
    saved = torch.load(folder / "last.pt", weights_only=True)
    if strategy == "fsdp":  # the weights and optimizer in shards beside it, one folder a step
        assert "model" not in saved and saved["sharded"] == "last-24.dcp"
        assert [p.name for p in folder.glob("*.dcp")] == ["last-24.dcp"]
    after = []
    train(spec, after.append)  # one process goes on from the ranks' last.pt
    whole = []
    train(replace(spec, placement=replace(spec.placement, storage=str(tmp_path / "one"))),
          whole.append)  # fmt: skip
    assert after[0].resumed_step == 24 and after[0].workers == 1
    curve = lambda events: [(e.step, e.loss) for e in events if e.kind == "train"]
    assert [s for s, _ in curve(after)] == [s for s, _ in curve(whole)] == [*range(5, 51, 5)]
    for (_, a), (_, b) in zip(curve(after), curve(whole), strict=True):
        assert a == pytest.approx(b, abs=TOLERANCE)  # the window across the checkpoint too
    assert after[-1].val_loss == pytest.approx(whole[-1].val_loss, abs=TOLERANCE)
    assert after[-1].tokens_scored == whole[-1].tokens_scored


class _Stopped(Exception):
    """Raised from `report` to stop a one-process trial right after a checkpoint."""


def test_a_checkpoint_of_one_process_resumes_sharded_on_two(tmp_path, monkeypatch):
    """A trial's strategy is no part of it: a whole last.pt resumes under FSDP2 on two ranks."""
    monkeypatch.setattr(trainers.train, "MAX_LOGGED_STEPS", LOGGED)
    spec = _specs(tmp_path / "two", "fsdp")["decoder"]
    spec = replace(spec, eval=replace(spec.eval, tasks=()))

    def stop(event):
        if event.kind == "checkpoint" and event.step >= 24:
            raise _Stopped

    with pytest.raises(_Stopped):
        train(spec, stop)  # one process: last.pt holds the whole model and optimizer
    _spawn(_rank_logged, (tmp_path, [spec.to_dict()]))
    after = [from_dict(json.loads(line)) for line in (tmp_path / "0-rank0.jsonl").open()]
    whole = []
    train(replace(spec, placement=replace(spec.placement, storage=str(tmp_path / "one"))),
          whole.append)  # fmt: skip
    assert after[0].resumed_step == 24 and (after[0].workers, after[0].strategy) == (2, "fsdp")
    curve = lambda events: [(e.step, e.loss) for e in events if e.kind == "train"]
    assert [s for s, _ in curve(after)] == [s for s, _ in curve(whole)]
    for (_, a), (_, b) in zip(curve(after), curve(whole), strict=True):
        assert a == pytest.approx(b, abs=TOLERANCE)
    assert after[-1].val_loss == pytest.approx(whole[-1].val_loss, abs=TOLERANCE)


def _rank_logged(rank: int, folder: Path, specs: list[dict]) -> None:
    """`_rank`, with the train-loss points of the tests of resuming."""
    trainers.train.MAX_LOGGED_STEPS = LOGGED
    _rank(rank, folder, specs)


@pytest.mark.parametrize("architecture", ["decoder", "encoder", "encdec"])
def test_micro_batches_accumulate_the_whole_batchs_step(tmp_path, architecture):
    """A batch of 8 in forward passes of 3, 3 and 2 rows, the gradients accumulated (each pass
    weighed by its share of the scored tokens: an encoder's masked positions differ by row),
    trains what one pass does; the trial is the same trial (`micro_batch` is placement)."""
    spec = _specs(tmp_path)[architecture]
    spec = replace(spec, placement=replace(spec.placement, storage="", checkpoint_every_tokens=0))
    whole, micro = [], []
    train(spec, whole.append)
    train(_micro(spec, 3), micro.append)
    assert _micro(spec, 3).hash == spec.hash
    for a, b in zip(_curve(whole), _curve(micro), strict=True):
        assert (a.step, a.tokens) == (b.step, b.tokens)
        assert a.loss == pytest.approx(b.loss, abs=TOLERANCE)
    assert micro[-1].val_loss == pytest.approx(whole[-1].val_loss, abs=TOLERANCE)
    assert micro[-1].tokens_scored == whole[-1].tokens_scored
    # the passes were split: the same sums in another order differ in their last bits
    assert any(a.loss != b.loss for a, b in zip(_curve(whole), _curve(micro), strict=True))
    # zero-shot scoring in passes of 3 items (the decoder scores minimal_pairs and held-out text)
    scored = [[(r["task"], r["metric"], r["value"]) for r in e.results]
              for run in (whole, micro) for e in run if e.kind == "zeroshot"]  # fmt: skip
    assert len(scored) == (2 if architecture == "decoder" else 0)
    if scored:
        assert [k[:2] for k in scored[0]] == [k[:2] for k in scored[1]]
        assert [k[2] for k in scored[1]] == pytest.approx([k[2] for k in scored[0]], abs=1e-4)


def test_micro_batches_split_rows_and_weigh_them_by_scored_tokens():
    targets = torch.tensor([[1, -100], [2, 3], [-100, -100], [4, 5], [6, -100]])
    local = {"inputs": torch.zeros(5, 2), "targets": targets}
    assert parallel.micro_batches(local, 0) == [(local, 1.0)]
    assert parallel.micro_batches(local, 5) == [(local, 1.0)]
    chunks = parallel.micro_batches(local, 2)
    assert [len(c["targets"]) for c, _ in chunks] == [2, 2, 1]
    assert [share for _, share in chunks] == pytest.approx([3 / 6, 2 / 6, 1 / 6])


def test_a_study_file_gives_the_micro_batch_for_every_trial_or_by_a_rule_of_n():
    base = STUDY.replace("sizes: [25K]", "sizes: [25K, 100K]")
    every = expand(parse_study(base + "resources: {micro_batch: 2}\n"), "", "")
    assert {t.placement.micro_batch for t in every} == {2}
    rule = "resources: {workers: [{max_params: 50K, workers: 1}, {workers: 1, micro_batch: 4}]}\n"
    by_n = expand(parse_study(base + rule), "", "")
    size = lambda t: t.model.n_layer * t.model.n_embd**2  # 25K, then 100K
    decoders = sorted((t for t in by_n if t.model.architecture == "decoder"), key=size)
    assert [t.placement.micro_batch for t in decoders] == [0, 4]  # 0: the whole share
    plain = expand(parse_study(base), "", "")
    assert [t.hash for t in every] == [t.hash for t in by_n] == [t.hash for t in plain]
