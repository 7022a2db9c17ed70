"""Data-parallel training: the ranks of a process group, each training on its rows of every
global batch, their gradients averaged by torch's DistributedDataParallel (`strategy: ddp`) or
by FSDP2, which also shards the weights and the optimizer's state over the ranks (`fsdp`).

The process group comes from outside (Ray Train's torch backend, or a test's
`init_process_group`); this module only reads it, so the trainer stays free of ray. Without a
group, or with one rank, every function here is the identity and training is today's, bit for
bit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from trainers.blocks import IGNORE
from trainers.objectives import Batch


@dataclass(frozen=True)
class Ranks:
    """Where this process stands in its group: its rank and how many ranks there are."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """Whether this rank reports, validates, scores and writes checkpoints (rank 0)."""
        return self.rank == 0


def ranks() -> Ranks:
    """This process's rank and world size: from `torch.distributed` where a group is set up."""
    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size())
    return Ranks()


class LossModule(nn.Module):
    """A model whose forward is its loss: DistributedDataParallel syncs gradients only for what
    runs through its own forward, and our loops call `model.loss` (the encoder's goes through
    `hidden`, not `forward`)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.model.loss(batch)


def shard(model: nn.Module, par: Ranks, device: torch.device, strategy: str) -> nn.Module | None:
    """Under `fsdp` on several ranks, FSDP2 on each block, then on a root whose forward is the
    loss (None otherwise: nothing is sharded). The root is a LossModule because FSDP2 gathers a
    module's own weights (embeddings, final norm, tied head) only around its `forward`, and our
    loops call `loss`. On a GPU the weights are gathered in bf16, gradients reduced in fp32."""
    if par.world == 1 or strategy != "fsdp":
        return None
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = init_device_mesh(device.type, (par.world,))
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    policy = (MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
              if bf16 else MixedPrecisionPolicy())  # fmt: skip
    stacks = [m for m in model.children() if isinstance(m, nn.ModuleList)]  # encdec: two
    for block in (b for stack in stacks for b in stack):
        fully_shard(block, mesh=mesh, mp_policy=policy)
    return fully_shard(LossModule(model), mesh=mesh, mp_policy=policy)


def gather(model: nn.Module, par: Ranks, plain: nn.Module | None) -> nn.Module | None:
    """The weights of a sharded `model`, whole, loaded into `plain` (a model of the same
    architecture, unsharded) on rank 0; None on the others. Every rank must call it: the
    gathering is a collective."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    whole = StateDictOptions(full_state_dict=True, cpu_offload=True)  # rank 0's, on the host
    weights = get_model_state_dict(model, options=whole)
    if not par.main or plain is None:
        return None
    plain.load_state_dict(weights)
    return plain


def wrap(
    model: nn.Module, par: Ranks, device: torch.device, sharded: nn.Module | None = None
) -> Callable[[Batch], torch.Tensor]:
    """The loss a training step calls: `model.loss` on one rank, the FSDP2 root where `shard`
    made one, else the same loss through DistributedDataParallel (which also broadcasts rank
    0's weights once, here)."""
    if par.world == 1:
        return model.loss
    if sharded is not None:
        return sharded
    ids = [torch.cuda.current_device()] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(LossModule(model), device_ids=ids)


def rows(batch: Batch, par: Ranks) -> Batch:
    """This rank's share of a global batch: rows [rank*k, (rank+1)*k), k = rows // world."""
    if par.world == 1:
        return batch
    k, left = divmod(len(batch["targets"]), par.world)
    if left:  # the study file's check refuses such a batch; a step must never drop rows
        raise ValueError(f"a batch of {len(batch['targets'])} rows does not split over "
                         f"{par.world} ranks")  # fmt: skip
    return {name: v[par.rank * k : (par.rank + 1) * k] for name, v in batch.items()}


def micro_batches(local: Batch, size: int) -> list[tuple[Batch, float]]:
    """This rank's rows in chunks of at most `size` (0: one chunk), each with its share of the
    rows' scored tokens: the shares' weighted sum of the chunks' mean losses is the mean loss
    of all the rows, so the accumulated gradient is the whole share's."""
    n = len(local["targets"])
    if not size or size >= n:
        return [(local, 1.0)]
    chunks = [{k: v[i : i + size] for k, v in local.items()} for i in range(0, n, size)]
    scored = [int((c["targets"] != IGNORE).sum()) for c in chunks]
    total = sum(scored)
    if not total:  # nothing scored (an encoder's tiny share): by rows
        return [(c, len(c["targets"]) / n) for c in chunks]
    return [(c, s / total) for c, s in zip(chunks, scored, strict=True)]


def deferred_sync(forward, *, last: bool) -> contextlib.AbstractContextManager:
    """The gradients' reduction held back for every micro-batch but the last, around its
    forward and backward: the gradients accumulate locally, then one all-reduce (DDP's
    `no_sync`) or one reduce-scatter (FSDP2's `set_requires_gradient_sync`); nothing to hold
    back on one rank."""
    if last:
        return contextlib.nullcontext()
    if isinstance(forward, nn.parallel.DistributedDataParallel):
        return forward.no_sync()
    if hasattr(forward, "set_requires_gradient_sync"):  # an FSDP2 root
        return _unsynced(forward)
    return contextlib.nullcontext()


@contextlib.contextmanager
def _unsynced(root) -> Iterator[None]:
    root.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        root.set_requires_gradient_sync(True)


def weight(local: Batch, whole: Batch, par: Ranks) -> float:
    """What this rank's mean loss is multiplied by before `backward` so that DDP's average of the
    ranks' gradients is the gradient of the global batch's mean loss: its share of the scored
    tokens times the world (1 on one rank; an encoder's masked positions differ by rank)."""
    if par.world == 1:
        return 1.0
    n_local = int((local["targets"] != IGNORE).sum())
    n_global = int((whole["targets"] != IGNORE).sum())
    return n_local * par.world / n_global if n_global else 0.0


def mean(value: torch.Tensor, par: Ranks) -> torch.Tensor:
    """The mean of a tensor over the ranks (the tensor itself on one rank)."""
    if par.world == 1:
        return value
    total = value.clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total / par.world


@contextlib.contextmanager
def main_first(par: Ranks) -> Iterator[None]:
    """Run the block on rank 0, then on the others: what it writes (a token cache, a trial's
    folder cleared of stale files) is written once, and read by the others when it is there."""
    if not par.main:
        dist.barrier()
    yield
    if par.main and par.world > 1:
        dist.barrier()
