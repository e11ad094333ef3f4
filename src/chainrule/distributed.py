"""Data-parallel training over MPI: N processes, each training on its shard of every batch.

chainrule runs on an existing engine for this, MPI through mpi4py (Open MPI's wheels), as
ChainerMN and Horovod do: ``pip install "chainrule[distributed]"``. Every process (rank)
holds the whole model. Rank 0's parameters and buffers are broadcast to the others before
training; each global batch of N x B samples is cut into N shards, one per rank; after each
backward the ranks sum their gradients, each weighted by its share of the batch, with one
in-place allreduce per bucket of a few MB; every rank then takes the same optimizer step.
So N ranks on batch B take the steps one process takes on batch N x B, up to the order in
which float sums round (tests/test_distributed.py checks it with ``mpiexec -n 2``).

    world = distributed.init()                  # rank, size, and mpi4py's communicator
    train = distributed.ShardedLoader(DataLoader(data, batch_size=64, shuffle=True), world)
    Learner(model, train, opt, callbacks=[distributed.DataParallel(world)]).fit(3)

and ``mpiexec -n 2 python train.py`` (``distributed.mpiexec_command`` gives the command
line with the flags this machine needs). The loss must be a mean over the batch (the
Learner's default): the weights n_rank / n_total turn the ranks' means into the global one.
docs/distributed.md has the rest.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.data.loader import _TRANSFORM_TAG, DataLoader
from chainrule.data.transforms import apply_transform
from chainrule.engine.tensor import Tensor
from chainrule.nn.fused import BatchNormMaxPool2d
from chainrule.nn.module import Module
from chainrule.nn.norm import _BatchNorm
from chainrule.ops.norm import sync_batch_norm
from chainrule.train.callbacks import (
    Callback,
    CheckpointCallback,
    ProgressBar,
    TrainingDiverged,
)

#: Bytes of gradients summed by one allreduce call (issue 16: one call per bucket of MBs).
BUCKET_BYTES = 4 << 20

_INSTALL = 'pip install "chainrule[distributed]" (mpi4py and Open MPI\'s wheels)'


class MPIUnavailableError(ImportError):
    """mpi4py (or the MPI library under it) cannot be loaded."""


def _mpi() -> Any:
    """mpi4py's MPI module, or an error saying how to install it."""
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise MPIUnavailableError(
            f"chainrule.distributed needs mpi4py and an MPI library: {_INSTALL}. "
            f"({type(error).__name__}: {error})") from None
    return MPI


@dataclass(frozen=True)
class World:
    """The processes training together: this one's rank, their number, the communicator
    (mpi4py's, for anything this module does not wrap)."""

    rank: int
    size: int
    comm: Any

    @property
    def is_root(self) -> bool:
        """Whether this is rank 0, the one that prints and writes checkpoints."""
        return self.rank == 0


def init(comm: Any = None) -> World:
    """The World of ``comm`` (default: every process ``mpiexec`` started, COMM_WORLD).

    Run without mpiexec, it is a world of one process, and training is as without it.
    """
    if comm is None:
        comm = _mpi().COMM_WORLD
    return World(comm.Get_rank(), comm.Get_size(), comm)


# ----------------------------------------------------------------------------- collectives
def broadcast_(arrays: Iterable[np.ndarray], world: World, root: int = 0) -> None:
    """Overwrite each array, in place, with rank ``root``'s (every rank passes the same
    sequence of arrays, of the same shapes and dtypes)."""
    for array in arrays:
        if array.flags.c_contiguous and array.flags.writeable:
            world.comm.Bcast(array, root=root)
        else:
            staged = np.ascontiguousarray(array)
            world.comm.Bcast(staged, root=root)
            array[...] = staged


def broadcast_model(model: Any, world: World, root: int = 0) -> None:
    """Give every rank rank ``root``'s parameters and buffers (BatchNorm's running
    statistics, ...), in place."""
    tensors = [*model.parameters(), *model.buffers()]
    broadcast_([t.data for t in tensors], world, root)


def all_sum(value: float, world: World) -> float:
    """The sum of ``value`` over the ranks."""
    return world.comm.allreduce(value)


def all_mean(value: float, world: World) -> float:
    """The mean of ``value`` over the ranks."""
    return world.comm.allreduce(value) / world.size


def buckets(sizes: Sequence[int], itemsize: int, bucket_bytes: int = BUCKET_BYTES
            ) -> list[tuple[int, int]]:
    """Consecutive [start, stop) runs of the arrays whose ``sizes`` are given, each holding
    at most ``bucket_bytes`` (an array bigger than that is a bucket of its own)."""
    runs, start, held = [], 0, 0
    for index, size in enumerate(sizes):
        nbytes = size * itemsize
        if index > start and held + nbytes > bucket_bytes:
            runs.append((start, index))
            start, held = index, 0
        held += nbytes
    if start < len(sizes):
        runs.append((start, len(sizes)))
    return runs


def average_gradients(params: Sequence[Tensor], world: World, weight: float | None = None,
                      bucket_bytes: int = BUCKET_BYTES,
                      present: Sequence[bool] | None = None) -> int:
    """Replace each parameter's ``.grad`` with the ranks' weighted sum, sum over ranks of
    ``weight * grad`` (``weight`` default 1 / size: the mean), on every rank.

    Gradients are packed into buckets of at most ``bucket_bytes`` per dtype and summed with
    one in-place allreduce per bucket; a parameter without a gradient here counts as zeros
    (so that every rank sends the same buckets). ``present`` (one flag per parameter, the
    same on every rank) names those that some rank has a gradient for: the others keep no
    gradient, as in one process, so an optimizer skips them. Returns the number of
    allreduce calls.
    """
    weight = 1.0 / world.size if weight is None else float(weight)
    MPI = _mpi() if world.size > 1 else None
    calls = 0
    by_dtype: dict[np.dtype, list[Tensor]] = {}
    for index, p in enumerate(params):
        if present is not None and not present[index]:
            p.grad = None
        elif p.requires_grad:
            by_dtype.setdefault(p.data.dtype, []).append(p)
    for dtype, group in by_dtype.items():
        sizes = [p.data.size for p in group]
        for lo, hi in buckets(sizes, dtype.itemsize, bucket_bytes):
            members = group[lo:hi]
            flat = np.empty(sum(sizes[lo:hi]), dtype)
            at = 0
            for p in members:
                n = p.data.size
                if p.grad is None:
                    flat[at:at + n] = 0
                else:
                    np.multiply(p.grad.reshape(-1), weight, out=flat[at:at + n],
                                casting="unsafe")
                at += n
            if MPI is not None:
                world.comm.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
            calls += 1
            at = 0
            for p in members:
                n = p.data.size
                p.grad = flat[at:at + n].reshape(p.data.shape)
                at += n
    return calls


# ----------------------------------------------------------------------------- data
class ShardedLoader:
    """This rank's shard of each global batch of ``loader``'s samples.

    The ranks walk ``loader``'s epoch order (the same permutation on every rank: it is a
    function of seed and epoch) in global batches of ``loader.batch_size`` x world size
    samples (``global_batch=True``: of ``loader.batch_size`` samples, the loader's batches
    themselves split over the ranks), and each takes its part of every global batch
    (``np.array_split``: parts differ by one sample at most). Over an epoch each sample is
    seen once, by one rank; a final global batch with fewer samples than there are ranks
    joins the one before it (a rank cannot step on an empty batch; with the loader's
    ``drop_last`` it is left out, as the loader would). Otherwise one rank on batch ``N x B``
    sees exactly the union of N ranks' batches of B, with
    the same random augmentation (a loader's transform runs on the whole global batch, with
    the random stream one process would use, on every rank: N times the augmentation work,
    for batches identical to one process's).
    """

    def __init__(self, loader: DataLoader, world: World, global_batch: bool = False) -> None:
        if not isinstance(loader, DataLoader):
            raise TypeError(f"ShardedLoader: wraps a chainrule DataLoader, got "
                            f"{type(loader).__name__}")
        self.loader, self.world = loader, world
        self.global_batch = loader.batch_size * (1 if global_batch else world.size)
        if self.global_batch < world.size:
            raise ValueError(f"ShardedLoader: a global batch of {self.global_batch} cannot be "
                             f"shared by {world.size} ranks; give a batch size of at least "
                             f"{world.size}")

    @property
    def epoch(self) -> int:
        """The epoch the next iteration serves (the loader's)."""
        return self.loader.epoch

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration produce epoch ``epoch`` (to resume)."""
        self.loader.set_epoch(epoch)

    def __len__(self) -> int:
        """Global batches per epoch: the same on every rank, so they step together."""
        n, size = len(self.loader.dataset), self.global_batch
        full, rest = divmod(n, size)
        keep_rest = rest >= self.world.size and not self.loader.drop_last
        return full + (1 if keep_rest else 0)  # a smaller rest joins the last full batch

    def _indices(self, order: np.ndarray, batch: int) -> np.ndarray:
        """The samples of global batch ``batch``: a last batch smaller than the world joins
        the one before it, so that every sample is still seen once an epoch."""
        size, count = self.global_batch, len(self)
        end = (batch + 1) * size
        if batch == count - 1 and not self.loader.drop_last and len(order) - end < \
                self.world.size:
            end = len(order)
        return order[batch * size:end]

    def _part(self, count: int) -> slice:
        """This rank's rows of a global batch of ``count`` samples."""
        sizes = [len(p) for p in np.array_split(np.empty(count), self.world.size)]
        start = sum(sizes[:self.world.rank])
        return slice(start, start + sizes[self.world.rank])

    def shard(self, epoch: int, batch: int) -> np.ndarray:
        """The sample indices this rank trains on in global batch ``batch`` of ``epoch``."""
        indices = self._indices(self.loader.order(epoch), batch)
        return indices[self._part(len(indices))]

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        epoch = self.loader.epoch
        self.loader.epoch += 1
        return self._batches(epoch)

    def _batches(self, epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        loader = self.loader
        order = loader.order(epoch)
        for b in range(len(self)):
            indices = self._indices(order, b)
            mine = self._part(len(indices))
            if loader.transform is None:
                x, y = loader.dataset[indices[mine]]
            else:
                # The whole global batch is augmented, with the random stream one process
                # would draw for it, and this rank keeps its rows: N ranks then train on
                # exactly the samples one process would, augmented alike.
                x, y = loader.dataset[indices]
                rng = np.random.default_rng([_TRANSFORM_TAG, loader.seed, epoch, b])
                x, y = apply_transform(loader.transform, x, rng)[mine], y[mine]
            yield Tensor(x), Tensor(y)


# ----------------------------------------------------------------------------- training
def _samples(batch: Any) -> int:
    targets = batch[1] if isinstance(batch, (tuple, list)) and len(batch) == 2 else batch
    return len(targets)


class DataParallel(Callback):
    """Make a Learner's training data-parallel: rank 0's weights broadcast before fitting,
    and after each backward the gradients summed over the ranks, each rank's weighted by
    its share of the global batch (so the loss must be a mean over the batch); the
    Learner's ``loss`` then becomes the global batch's mean loss, so the recorded losses
    agree on every rank, and a loss that is not finite on any rank stops every rank alike
    (TrainingDiverged) before any rank's own guard sees it. On the ranks other than 0 it
    leaves out the Learner's ProgressBar and CheckpointCallback: rank 0 shows progress and
    writes checkpoints for all. Use it with a ShardedLoader, so that the ranks see
    different samples."""

    order = -20  # before other after_backward callbacks: they see the averaged gradients

    def __init__(self, world: World | None = None, bucket_bytes: int = BUCKET_BYTES) -> None:
        self.world = world if world is not None else init()
        self.bucket_bytes = int(bucket_bytes)

    def before_fit(self, learner: Any) -> None:
        broadcast_model(learner.model, self.world)
        if not self.world.is_root:
            # rank 0 speaks and writes for all: every rank holds the same state
            learner.callbacks[:] = [c for c in learner.callbacks
                                    if not isinstance(c, (ProgressBar, CheckpointCallback))]

    def after_loss(self, learner: Any) -> None:
        if not learner.training:
            return  # every rank evaluates all of the data, with the same weights
        mine = _samples(learner.batch)
        # one small collective: the global batch's size and its summed loss
        total, summed = self.world.comm.allreduce(
            np.array([mine, mine * float(learner.loss.item())]))
        self._share, self._loss = mine / total, summed / total
        learner.global_batch_size = int(round(total))  # what the Recorder weights it by
        if not math.isfinite(self._loss):  # on every rank alike, before any rank's own guard
            raise TrainingDiverged(
                f"the loss of the global batch became {self._loss} at epoch "
                f"{learner.epoch + 1}, step {learner.step} (batch {learner.batch_index + 1}), "
                f"learning rate {learner.lr:.3g}, on {self.world.size} processes. Try a "
                "learning rate 3-10x lower, normalised inputs, or a warm-up.")

    def after_backward(self, learner: Any) -> None:
        params = learner.model.parameters()
        # which parameters any rank has a gradient for (an unused one keeps none)
        present = self.world.comm.allreduce(np.array([p.grad is not None for p in params],
                                                     np.int64)) > 0
        average_gradients(params, self.world, self._share, self.bucket_bytes, present)
        # what the Recorder and the progress bar read from now on: the global batch's mean
        # loss, the same on every rank (the backward is done)
        learner.loss = Tensor(np.asarray(self._loss, learner.loss.data.dtype))


# ----------------------------------------------------------------------------- SyncBatchNorm
class SyncBatchNorm(_BatchNorm):
    """Batch normalisation whose training statistics are those of every rank's batch
    together (torch.nn.SyncBatchNorm's meaning): N ranks on batch B normalise as one
    process on batch N x B, forward and backward (``ops.norm.SyncBatchNormOp`` has the
    derivation). Any (N, C, ...) input; in eval it is BatchNorm, with no communication.
    ``SyncBatchNorm.convert(model, world)`` swaps every BatchNorm1d/2d/3d of a model for one
    holding the same parameter and buffer tensors (an optimizer built before still trains
    them); convert before ``nn.fuse``, which it refuses after."""

    ranks = (2, 3, 4, 5)
    layout = "(N, C, ...) with C = num_features"

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True,
                 dtype: Any = None, *, bias: bool = True, world: World | None = None) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype,
                         bias=bias)
        self.world = world

    def _sum(self, array: np.ndarray) -> np.ndarray:
        out = np.empty_like(array)
        self.world.comm.Allreduce(np.ascontiguousarray(array), out, op=_mpi().SUM)
        return out

    def forward(self, x: Tensor) -> Tensor:
        """Normalise ``x`` per channel (axis 1), with every rank's batch in training."""
        self._check_input(x)
        training, factor = self._batch_settings()
        # in eval there is nothing to share, even where batch statistics normalise
        shared = self.training and self.world is not None and self.world.size > 1
        out = sync_batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                              training=training, momentum=factor, eps=self.eps,
                              reduce=self._sum if shared else None)
        self._count_batch()
        return out

    @classmethod
    def convert(cls, module: Module, world: World) -> Module:
        """``module`` with each BatchNorm1d/2d/3d in it replaced by a SyncBatchNorm holding
        the same parameter and buffer tensors (in place for its children; returned, since
        the module itself may be one)."""
        if isinstance(module, _BatchNorm) and not isinstance(module, (cls, BatchNormMaxPool2d)):
            held = [t for t in (module.weight, module.running_mean) if t is not None]
            dtype = held[0].data.dtype if held else np.dtype(np.float32)
            sync = cls(module.num_features, module.eps, module.momentum, module.affine,
                       module.track_running_stats, dtype, bias=module.bias is not None,
                       world=world)
            # the same tensors: an optimizer built before still trains them
            for name in ("weight", "bias", "running_mean", "running_var",
                         "num_batches_tracked"):
                held = getattr(module, name)
                if held is not None:
                    setattr(sync, name, held)
            sync.train(module.training)
            return sync
        if isinstance(module, BatchNormMaxPool2d):
            raise TypeError("SyncBatchNorm.convert: a fused BatchNormMaxPool2d (nn.fuse) "
                            "cannot be converted; convert the model before fusing it")
        for name, value in list(vars(module).items()):  # attributes, lists, tuples, dicts
            if isinstance(value, Module):
                setattr(module, name, cls.convert(value, world))
            elif isinstance(value, list):
                value[:] = [cls.convert(v, world) if isinstance(v, Module) else v
                            for v in value]
            elif isinstance(value, tuple):
                setattr(module, name, tuple(cls.convert(v, world) if isinstance(v, Module)
                                            else v for v in value))
            elif isinstance(value, dict) and not name.startswith("_"):
                for key, item in list(value.items()):
                    if isinstance(item, Module):
                        value[key] = cls.convert(item, world)
        return module


# ----------------------------------------------------------------------------- launching
def mpiexec_path() -> Path | None:
    """The mpiexec beside this Python (Open MPI's wheel puts it there), or on PATH."""
    here = Path(sys.executable).parent / "mpiexec"
    if here.is_file():
        return here
    found = shutil.which("mpiexec")
    return Path(found) if found else None


@functools.lru_cache(maxsize=8)
def _is_open_mpi(mpiexec: Path) -> bool:
    """Whether ``mpiexec`` is Open MPI's (whose flags below other MPIs' launchers refuse)."""
    try:
        shown = subprocess.run([str(mpiexec), "--version"], capture_output=True, text=True,
                               timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    text = (shown.stdout + shown.stderr).lower()
    return "open mpi" in text or "open-mpi" in text or "openrte" in text or "prte" in text


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def mpiexec_command(nproc: int, argv: Sequence[str]) -> list[str]:
    """``mpiexec -n nproc argv...`` with the flags this machine needs: Open MPI refuses root
    without --allow-run-as-root, and more ranks than cores without --oversubscribe (other
    MPIs' launchers get neither)."""
    mpiexec = mpiexec_path()
    if mpiexec is None:
        raise MPIUnavailableError(f"no mpiexec beside {sys.executable} or on PATH: {_INSTALL}")
    command = [str(mpiexec), "-n", str(int(nproc))]
    if _is_open_mpi(mpiexec):
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.append("--allow-run-as-root")
        if nproc > _cores():
            command.append("--oversubscribe")
    return [*command, *argv]
