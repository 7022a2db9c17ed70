"""A trial's checkpoints: the train state it resumes from, written atomically, read weights-only.

`<storage>/<study>/<trial_id>/last.pt` holds everything an interrupted trial needs to continue
as if it had not stopped (model, optimizer, random states, the open logging window and the
events so far; under `strategy: fsdp` the model and optimizer are in a sharded
torch.distributed.checkpoint folder beside it, `last-<step>.dcp/`, which any number of ranks
reads back, one process included); `final.pt` holds the trained weights, and `step-<N>.pt` the
weights of each evaluation point where the study keeps them. A checkpoint is used only by the
trial of the same hash, with one exception: a trunk of one run for many budgets keeps its train
state at each branch point (`branch-<step>.pt`, never removed), and a branch whose cooldown
starts there starts from it (it computes what the trunk computed up to there: the same model,
data, optimizer and seed, with the same rates until that step).
"""

from __future__ import annotations

import errno
import hashlib
import math
import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from trainers.integrity import file_digest
from trainers.schedules import cooldown_start
from trainers.trial import TrialSpec


@dataclass
class TrainState:
    """Where the loop stands, besides the model, the optimizer and the random states."""

    step: int = 0  # steps done
    val_loss: float = math.nan  # the latest validation loss
    scored: int = 0  # tokens the loss was computed on so far
    window_loss: float | torch.Tensor = 0.0  # summed loss of the open logging window
    window_steps: int = 0
    window_elapsed: float = 0.0  # training seconds of the open window
    history: list[dict] = field(default_factory=list)  # train and eval events, as dicts
    inherited: int = 0  # a branch: the steps it took from its trunk's checkpoint


def checkpoint_dir(spec: TrialSpec) -> Path | None:
    """Where a trial keeps its checkpoints: <storage>/<study>/<trial_id>/, or nowhere."""
    storage = spec.placement.storage
    return Path(storage) / spec.study / spec.trial_id if storage else None


class _Hashing:
    """A file that hashes and counts what is written to it (as torch.save writes)."""

    def __init__(self, file):
        self.file = file
        self.sha256 = hashlib.sha256()
        self.bytes = 0

    def write(self, data) -> int:
        self.sha256.update(data)
        self.bytes += len(data)
        return self.file.write(data)

    def flush(self) -> None:
        self.file.flush()


def _save(state: dict, path: Path) -> tuple[int, str]:
    """Write `state` to `path` atomically (a reader never sees half a checkpoint, even if the
    writer is killed); returns the bytes written and their SHA-256. A full disk is an OSError
    that says so, with the path; no temporary file is left behind."""
    tmp = path.with_suffix(".tmp")
    try:
        with open(tmp, "wb") as file:
            out = _Hashing(file)
            torch.save(state, out)
            file.flush()
            os.fsync(file.fileno())  # on the disk before it takes the checkpoint's name
        os.replace(tmp, path)
    except BaseException as e:
        full = _disk_full(e, path.parent)
        tmp.unlink(missing_ok=True)
        if full:
            raise OSError(
                errno.ENOSPC,
                f"no space left on device writing the checkpoint {path}: free space on that "
                "disk, or give the study a storage folder on a larger one, and run it again",
            ) from None
        raise
    return out.bytes, out.sha256.hexdigest()


def _disk_full(error: BaseException, folder: Path) -> bool:
    """Whether a failed write failed for want of space: ENOSPC, or (torch's zip writer says only
    "unexpected pos") a disk with almost nothing left."""
    if getattr(error, "errno", None) == errno.ENOSPC:
        return True
    if not isinstance(error, OSError | RuntimeError):
        return False
    try:
        return shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        return False


def _train_state(spec: TrialSpec, state: TrainState, weights: dict, rng: np.random.Generator,
                 device: torch.device) -> dict:  # fmt: skip
    """What a resumable file holds: `weights` (the model and optimizer, or where their shards
    are), the random states and where the loop stands."""
    cuda = device.type == "cuda"
    return {
        "hash": spec.hash,
        "spec": spec.to_dict(),
        "step": state.step,
        **weights,
        "numpy_rng": rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state(device) if cuda else None,
        "val_loss": state.val_loss,
        "scored": state.scored,
        "window_loss": float(state.window_loss),
        "window_steps": state.window_steps,
        "window_elapsed": state.window_elapsed,
        "history": state.history,
        "inherited": state.inherited,
    }


def save_resumable(
    folder: Path,
    spec: TrialSpec,
    state: TrainState,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    rng: np.random.Generator,
    device: torch.device,
    name: str = "last.pt",
    sharded: bool = False,
    main: bool = True,
) -> Path:
    """Write `last.pt` (or `name`: a trunk's `branch-<step>.pt`): all a resumed run needs to
    continue bit for bit. A model `sharded` by FSDP2 is saved by every rank: each writes its
    shards of the model and optimizer to a torch.distributed.checkpoint folder, then rank 0
    (`main`) writes `name` pointing at it."""
    path = folder / name
    if sharded:
        weights = {"sharded": _save_shards(folder, name, state.step, model, optimizer)}
    else:
        weights = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
    if main:
        _save(_train_state(spec, state, weights, rng, device), path)
    if main and sharded and name == "last.pt":  # it points at the new folder: the old ones go
        for old in folder.glob("last-*.dcp"):
            if old.name != weights["sharded"]:
                shutil.rmtree(old, ignore_errors=True)
    return path


def _save_shards(folder: Path, name: str, step: int, model: torch.nn.Module, optimizer) -> str:
    """Write this rank's shards of a sharded model and its optimizer beside `name`; the name of
    their folder. That of `last.pt` is new at each step (`last-<step>.dcp`), so a rank killed
    while writing leaves the previous one whole."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    stem = Path(name).stem
    shards = f"{stem}-{step}.dcp" if name == "last.pt" else f"{stem}.dcp"
    model_state, optimizer_state = get_state_dict(model, optimizer)
    dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=folder / shards)
    return shards


def _load_sharded(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Read a sharded checkpoint's model and optimizer into `model` and `optimizer`, sharded or
    not, on any number of ranks (one process needs no process group)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    model_state, optimizer_state = get_state_dict(model, optimizer)
    saved = {"model": model_state, "optimizer": optimizer_state}
    with warnings.catch_warnings():  # one process: dcp says it assumes so, which is meant
        warnings.filterwarnings("ignore", "torch.distributed is disabled", UserWarning)
        dcp.load(saved, checkpoint_id=path)  # in place, each rank its own shards
    set_state_dict(model, optimizer, model_state_dict=saved["model"],
                   optim_state_dict=saved["optimizer"])  # fmt: skip


@dataclass(frozen=True)
class Final:
    """The final weights as written and read back: path, size and SHA-256."""

    path: Path
    bytes: int
    sha256: str


def save_final(folder: Path, spec: TrialSpec, model: torch.nn.Module) -> Final:
    """Write `final.pt` (the trained weights), read it back to verify it (size and checksum
    against what was written), and drop `last.pt`: nothing is left to resume. A file that does
    not read back as written is an OSError, and `last.pt` stays."""
    path = folder / "final.pt"
    written = _save({"hash": spec.hash, "spec": spec.to_dict(), "model": model.state_dict()},
                    path)  # fmt: skip
    if file_digest(path) != written:
        raise OSError(f"the final weights {path} do not read back as they were written "
                      f"({written[0]} bytes): the disk or the file system lost them")  # fmt: skip
    (folder / "last.pt").unlink(missing_ok=True)
    for shards in folder.glob("last-*.dcp"):
        shutil.rmtree(shards, ignore_errors=True)
    return Final(path, *written)


def save_weights(folder: Path, spec: TrialSpec, model: torch.nn.Module, step: int) -> Path:
    """Keep the weights at an evaluation point (`step-<step>.pt`), to be scored later."""
    path = folder / f"step-{step}.pt"
    _save({"hash": spec.hash, "spec": spec.to_dict(), "step": step,
           "model": model.state_dict()}, path)  # fmt: skip
    return path


def scorable(spec: TrialSpec) -> dict[int, Path]:
    """The trained weights a finished trial left, by step: `final.pt` at its last step and the
    kept evaluation points (`train.keep_checkpoints`)."""
    folder = checkpoint_dir(spec)
    if folder is None:
        return {}
    out = {int(p.stem.removeprefix("step-")): p for p in folder.glob("step-*.pt")
           if p.stem.removeprefix("step-").isdigit()}  # fmt: skip
    if (folder / "final.pt").exists():
        out[spec.steps] = folder / "final.pt"
    return dict(sorted(out.items()))


def load_weights(spec: TrialSpec, path: Path, model: torch.nn.Module) -> None:
    """Load weights a trial saved (weights only) into `model`; the file must be this trial's."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise RuntimeError(f"cannot read the checkpoint {path} ({type(e).__name__})") from e
    if saved.get("hash") != spec.hash:
        raise RuntimeError(f"the checkpoint {path} is not of trial {spec.trial_id} (another hash)")
    model.load_state_dict(saved["model"])


def _load_resumable(spec: TrialSpec) -> dict | None:
    """The latest checkpoint of this very trial (same hash), if there is one: `last.pt`, or a
    trunk's state at a later branch point (a trunk stopped between the two resumes from it)."""
    folder = checkpoint_dir(spec)
    if folder is None:
        return None
    last = _read_own(spec, folder / "last.pt")
    done = last["step"] if last else 0
    later = sorted((s for s in spec.placement.branch_points if s > done), reverse=True)
    for step in later:
        state = _read_own(spec, folder / branch_name(step))
        if state is not None:
            return state
    return last


def _read(path: Path, what: str = "the checkpoint") -> dict | None:
    """The train state saved at `path`, if there is one."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise RuntimeError(
            f"cannot read {what} {path} ({type(e).__name__}); delete it to train this trial "
            "from the start"
        ) from e
    if "sharded" in state:  # its model and optimizer are in a folder beside it
        state["sharded"] = str(path.parent / state["sharded"])
    return state


def _read_own(spec: TrialSpec, path: Path) -> dict | None:
    """A checkpoint of this trial (same hash) at `path`, if there is one."""
    state = _read(path)
    return state if state is not None and state.get("hash") == spec.hash else None


def _is_sharded(model: torch.nn.Module) -> bool:
    """Whether FSDP2 holds the model's weights in shards (DTensors)."""
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())


def _load_whole_into_shards(saved: dict, model: torch.nn.Module, optimizer) -> None:
    """Read a whole checkpoint (of one process, or of DDP) into a model and optimizer sharded
    by FSDP2: each rank keeps its shards. torch names an optimizer's parameters by number, in
    the order of its groups; the sharded optimizer is built in the same order, so each number
    is the name of the same parameter."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict
    from torch.distributed.tensor import distribute_tensor

    with torch.no_grad():  # each rank keeps its shard of each whole tensor (a tied one once)
        for name, param in model.named_parameters():
            whole = saved["model"][name].to(param.device)
            param.copy_(distribute_tensor(whole, param.device_mesh, param.placements,
                                          src_data_rank=None))  # fmt: skip
        for name, buffer in model.named_buffers():
            buffer.copy_(saved["model"][name])
    names = {id(p): name for name, p in model.named_parameters()}
    order = [names[id(p)] for group in optimizer.param_groups for p in group["params"]]
    state = saved["optimizer"]
    named = {
        "state": {order[i]: value for i, value in state["state"].items()},
        "param_groups": [
            {**g, "params": [order[i] for i in g["params"]]} for g in state["param_groups"]
        ],
    }
    set_optimizer_state_dict(model, optimizer, named,
                             options=StateDictOptions(full_state_dict=True))  # fmt: skip


def find_resumable(spec: TrialSpec) -> dict | None:
    """The train state a trial starts from: its own last checkpoint, else (a branch) its trunk's
    at the branch point, else None. The trial's folder is made where it has storage; a start
    without a checkpoint of its own removes the kept weights (and a trunk's branch points) of an
    earlier trial of its id."""
    folder = checkpoint_dir(spec)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    saved = _load_resumable(spec)
    if saved is None:  # nothing of this trial's own: what its folder keeps is another's
        stale_files = [*folder.glob("step-*.pt"), *folder.glob("branch-*.pt")] if folder else ()
        for stale in stale_files:
            stale.unlink()
        for stale in folder.glob("*.dcp") if folder else ():
            shutil.rmtree(stale, ignore_errors=True)
        saved = _load_parent(spec)
    return saved


def resume(
    spec: TrialSpec,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    rng: np.random.Generator,
    device: torch.device,
    *,
    saved: dict | None = None,
) -> TrainState:
    """Restore model, optimizer and random states from the trial's last checkpoint, if it has
    one, and return where the loop stands (a fresh state otherwise); `saved`: what
    `find_resumable` found, else it is looked for here. A branch without a checkpoint of its own
    starts from its trunk's (its kept weights before that stay in the trunk's folder). A sharded
    checkpoint is read by every rank (a collective under FSDP)."""
    if saved is None:
        saved = find_resumable(spec)
    if saved is None:
        return TrainState()
    if "sharded" in saved:
        _load_sharded(Path(saved["sharded"]), model, optimizer)
    elif _is_sharded(model):
        _load_whole_into_shards(saved, model, optimizer)
    else:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
    rng.bit_generator.state = saved["numpy_rng"]
    torch.set_rng_state(saved["torch_rng"])
    if device.type == "cuda" and saved.get("cuda_rng") is not None:
        torch.cuda.set_rng_state(saved["cuda_rng"], device)
    return TrainState(
        step=saved["step"],
        val_loss=saved["val_loss"],
        scored=saved["scored"],
        window_loss=saved["window_loss"],
        window_steps=saved["window_steps"],
        window_elapsed=saved["window_elapsed"],
        history=saved["history"],
        inherited=saved.get("inherited", 0) if saved["hash"] == spec.hash else saved["step"],
    )


def branch_name(step: int) -> str:
    """The file a trunk keeps its train state at a branch point in."""
    return f"branch-{step}.pt"


def parent_checkpoint(spec: TrialSpec) -> Path | None:
    """Where a branch's trunk keeps its train state at the branch's point (None for a trial
    that is no branch, or a study without storage)."""
    if not spec.placement.parent or not spec.placement.storage:
        return None
    folder = Path(spec.placement.storage) / spec.study / spec.placement.parent
    return folder / branch_name(cooldown_start(spec))


def _load_parent(spec: TrialSpec) -> dict | None:
    """A branch's start: its trunk's train state at the branch point, if the trunk left it
    (a branch whose trunk's file is gone trains from step 0: the same numbers, at full cost).
    The file must be of a run this branch continues: the same model, data, optimizer and seed,
    stopped no later than this branch's cooldown starts."""
    path = parent_checkpoint(spec)
    state = None if path is None else _read(path, "the trunk's checkpoint")
    if state is None:
        return None
    trunk = TrialSpec.from_dict(state["spec"])
    same = (trunk.model, trunk.data, trunk.optim, trunk.seed) == (
        spec.model, spec.data, spec.optim, spec.seed)  # fmt: skip
    if not same:
        raise RuntimeError(f"the checkpoint {path} is not of a run {spec.trial_id} continues "
                           "(other model, data, optimizer or seed)")  # fmt: skip
    if state["step"] > cooldown_start(spec):
        raise RuntimeError(
            f"the checkpoint {path} is at step {state['step']}, after the cooldown of "
            f"{spec.trial_id} starts ({cooldown_start(spec)})"
        )
    return state
