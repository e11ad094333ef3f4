"""Data-parallel training over MPI (chainrule.distributed): N ranks x batch B take the steps
one process takes on batch N x B. The two-rank tests run ``mpiexec -n 2`` and are skipped,
saying so, where mpi4py or mpiexec is missing (``pip install "chainrule[distributed]"``)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr
from chainrule import distributed, nn, optim
from chainrule.data import ArrayDataset, DataLoader
from chainrule.train import Learner

HAVE_MPI4PY = importlib.util.find_spec("mpi4py") is not None
MPI_RUN = pytest.mark.skipif(not HAVE_MPI4PY or distributed.mpiexec_path() is None,
                             reason='needs mpi4py and mpiexec: pip install '
                                    '"chainrule[distributed]"')

N_SAMPLES, FEATURES, CLASSES, RANK_BATCH = 37, 6, 3, 4


def _data() -> ArrayDataset:
    rng = np.random.default_rng(0)
    return ArrayDataset(rng.standard_normal((N_SAMPLES, FEATURES)),
                        rng.integers(0, CLASSES, N_SAMPLES))


def _model(seed: int) -> nn.Module:
    cr.manual_seed(seed)
    return nn.Sequential(nn.Linear(FEATURES, 8, dtype="float64"), nn.ReLU(),
                         nn.Linear(8, CLASSES, dtype="float64"))


class _Rank:
    """A stand-in World for one rank of ``size`` without MPI: for the data shards only."""

    def __init__(self, rank: int, size: int) -> None:
        self.rank, self.size, self.comm = rank, size, None


# ----------------------------------------------------------------------------- no MPI needed
def test_buckets_hold_at_most_their_bytes_and_cover_every_array() -> None:
    assert distributed.buckets([10, 10, 10, 50, 1], 4, bucket_bytes=80) == [
        (0, 2), (2, 3), (3, 4), (4, 5)]  # 40 + 40 fits; the 200-byte array alone
    assert distributed.buckets([], 4) == []
    assert distributed.buckets([3, 3], 8, bucket_bytes=1 << 20) == [(0, 2)]


@pytest.mark.parametrize("shuffle", [False, True])
def test_the_ranks_shards_make_up_the_big_batches(shuffle) -> None:
    data = _data()
    big = DataLoader(data, batch_size=2 * RANK_BATCH, shuffle=shuffle, seed=3)
    shards = [distributed.ShardedLoader(
        DataLoader(data, batch_size=RANK_BATCH, shuffle=shuffle, seed=3), _Rank(r, 2))
        for r in range(2)]
    for epoch in range(2):
        batches = [list(s) for s in shards]
        assert len(batches[0]) == len(batches[1]) == len(big) == 5
        for b, (xb, yb) in enumerate(big):
            x = np.concatenate([batches[r][b][0].data for r in range(2)])
            np.testing.assert_array_equal(x, xb.data)
            assert min(len(batches[r][b][1].data) for r in range(2)) >= 2
        seen = np.concatenate([s.shard(epoch, b) for s in shards for b in range(5)])
        assert sorted(seen) == list(range(N_SAMPLES))  # each sample once an epoch


def test_a_final_batch_smaller_than_the_world_joins_the_one_before() -> None:
    data = ArrayDataset(np.arange(20.0).reshape(10, 2), np.arange(10))
    ranks = [distributed.ShardedLoader(DataLoader(data, batch_size=3), _Rank(r, 3))
             for r in range(3)]
    # 9 samples a global batch; the tenth alone would leave two ranks empty: it joins
    assert [len(s) for s in ranks] == [1, 1, 1]
    shards = [[y.data for _, y in s] for s in ranks]
    assert [len(b[0]) for b in shards] == [4, 3, 3]
    assert sorted(np.concatenate([b[0] for b in shards])) == list(range(10))
    dropping = distributed.ShardedLoader(DataLoader(data, batch_size=3, drop_last=True),
                                         _Rank(0, 3))
    assert [len(y.data) for _, y in dropping] == [3]  # drop_last: the loader's choice
    with pytest.raises(TypeError, match="wraps a chainrule DataLoader"):
        distributed.ShardedLoader([(1, 2)], _Rank(0, 2))


def test_without_mpi4py_the_error_says_how_to_install_it() -> None:
    code = textwrap.dedent("""
        import sys
        sys.modules["mpi4py"] = None
        from chainrule import distributed
        try:
            distributed.init()
        except distributed.MPIUnavailableError as error:
            print(error)
        """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=True)
    assert 'pip install "chainrule[distributed]"' in result.stdout, result.stdout


def test_mpiexec_command_adds_the_flags_the_machine_needs(monkeypatch) -> None:
    monkeypatch.setattr(distributed, "mpiexec_path", lambda: Path("/opt/bin/mpiexec"))
    monkeypatch.setattr(distributed, "_is_open_mpi", lambda path: True)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(distributed, "_cores", lambda: 2)
    assert distributed.mpiexec_command(4, ["python", "t.py"]) == [
        "/opt/bin/mpiexec", "-n", "4", "--allow-run-as-root", "--oversubscribe", "python",
        "t.py"]
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert distributed.mpiexec_command(2, ["x"]) == ["/opt/bin/mpiexec", "-n", "2", "x"]
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(distributed, "_is_open_mpi", lambda path: False)  # MPICH's, say
    assert distributed.mpiexec_command(4, ["x"]) == ["/opt/bin/mpiexec", "-n", "4", "x"]
    monkeypatch.setattr(distributed, "mpiexec_path", lambda: None)
    with pytest.raises(distributed.MPIUnavailableError, match="chainrule\\[distributed\\]"):
        distributed.mpiexec_command(2, ["x"])


# ----------------------------------------------------------------------------- one MPI process
@pytest.mark.skipif(not HAVE_MPI4PY, reason='needs mpi4py: pip install "chainrule[distributed]"')
def test_a_world_of_one_trains_as_without_it() -> None:
    world = distributed.init()
    assert (world.rank, world.size, world.is_root) == (0, 1, True)

    def train(parallel: bool) -> list[np.ndarray]:
        model = _model(1)
        loader = DataLoader(_data(), batch_size=RANK_BATCH, shuffle=True, seed=3)
        data = distributed.ShardedLoader(loader, world) if parallel else loader
        callbacks = [distributed.DataParallel(world)] if parallel else []
        Learner(model, data, optim.SGD(model.parameters(), lr=0.1),
                callbacks=callbacks).fit(1)
        return [p.data.copy() for p in model.parameters()]

    for a, b in zip(train(True), train(False)):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- two ranks
_TWO_RANKS = """
import sys
import numpy as np
import chainrule as cr
from chainrule import distributed, nn, optim
from chainrule.data import ArrayDataset, DataLoader
from chainrule.train import Learner

world = distributed.init()
rng = np.random.default_rng(0)
data = ArrayDataset(rng.standard_normal(({n}, {f})), rng.integers(0, {c}, {n}))
cr.manual_seed(1 + world.rank)  # different weights on each rank: the broadcast must fix it
model = nn.Sequential(nn.Linear({f}, 8, dtype="float64"), nn.ReLU(),
                      nn.Linear(8, {c}, dtype="float64"))
loader = DataLoader(data, batch_size={b}, shuffle=True, seed=3)
parallel = distributed.DataParallel(world, bucket_bytes=100)  # several buckets
learner = Learner(model, distributed.ShardedLoader(loader, world),
                  optim.SGD(model.parameters(), lr=0.1, momentum=0.9), callbacks=[parallel])
learner.fit(2)
weights = [p.data for p in model.parameters()]
others = world.comm.gather(weights)
if world.is_root:
    for theirs in others[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(weights, theirs)), "ranks differ"
    np.savez(sys.argv[1], *weights, losses=np.array(learner.recorder.losses),
             epochs=np.array([row["train_loss"] for row in learner.history]))
"""


@MPI_RUN
def test_two_ranks_on_batch_b_step_as_one_process_on_batch_2b(tmp_path) -> None:
    script = tmp_path / "two_ranks.py"
    script.write_text(_TWO_RANKS.format(n=N_SAMPLES, f=FEATURES, c=CLASSES, b=RANK_BATCH))
    out = tmp_path / "weights.npz"
    command = distributed.mpiexec_command(2, [sys.executable, str(script), str(out)])
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    model = _model(1)  # rank 0's weights
    loader = DataLoader(_data(), batch_size=2 * RANK_BATCH, shuffle=True, seed=3)
    one = Learner(model, loader, optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    one.fit(2)
    saved = np.load(out)
    for i, p in enumerate(model.parameters()):
        np.testing.assert_allclose(saved[f"arr_{i}"], p.data, rtol=1e-10, atol=1e-12)
    # the losses recorded are the global batches' means, as one process records them
    np.testing.assert_allclose(saved["losses"], one.recorder.losses, rtol=1e-12)
    np.testing.assert_allclose(saved["epochs"], [row["train_loss"] for row in one.history],
                               rtol=1e-12)  # the epochs' means too, uneven last batch and all


# ----------------------------------------------------------------------------- the command
def _chainrule(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "chainrule", *argv], capture_output=True,
                          text=True, timeout=600, cwd=cwd, check=False)


@MPI_RUN
def test_train_nproc_2_gives_the_one_process_run(tmp_path) -> None:
    flags = ["train", "--epochs", "2", "--no-progress", "--hidden", "32"]
    two = _chainrule(*flags, "--nproc", "2", "--out", "two", cwd=tmp_path)
    assert two.returncode == 0, two.stdout + two.stderr
    one = _chainrule(*flags, "--out", "one", cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    assert "on 2 processes (MPI)" in two.stdout and two.stdout.count("test accuracy") == 1
    a, b = (json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("two", "one"))
    # the same batches, augmented alike, the same steps: equal within float rounding
    assert abs(a["test"]["accuracy"] - b["test"]["accuracy"]) <= 1e-3
    for row_a, row_b in zip(a["history"], b["history"], strict=True):
        assert row_a["train_loss"] == pytest.approx(row_b["train_loss"], rel=1e-4)
    # the run folder is rank 0's alone: a second run into it is refused once, for both ranks
    again = _chainrule(*flags, "--nproc", "2", "--out", "two", cwd=tmp_path)
    assert again.returncode != 0 and again.stderr.count("already holds a run") == 1


_FAILING_RANK = """
import sys
from chainrule import cli, distributed
from chainrule.train import learner

if distributed.init().rank == 1:
    def fit(self, *args, **kwargs):
        raise RuntimeError("the disk on rank 1 is full")
    learner.Learner.fit = fit
sys.exit(cli.main(["train", "--epochs", "1", "--no-progress", "--out", sys.argv[1]]))
"""

_KILLED_RANK = """
import os, signal, sys
import numpy as np
from chainrule import distributed
world = distributed.init()
for step in range(1000):
    world.comm.Allreduce(np.ones(4), np.empty(4))
    if step == 3 and world.rank == 1:
        os.kill(os.getpid(), signal.SIGKILL)
"""


@MPI_RUN
def test_an_error_on_one_rank_stops_every_rank_with_its_message(tmp_path) -> None:
    script = tmp_path / "failing.py"
    script.write_text(_FAILING_RANK)
    command = distributed.mpiexec_command(2, [sys.executable, str(script), str(tmp_path / "r")])
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode != 0
    assert time.perf_counter() - start < 30
    assert "chainrule train: on rank 1 of 2: the disk on rank 1 is full" in result.stderr
    assert not (tmp_path / "r" / "metrics.json").exists()


@MPI_RUN
def test_a_killed_rank_makes_the_others_exit_within_30_s(tmp_path) -> None:
    script = tmp_path / "killed.py"
    script.write_text(_KILLED_RANK)
    command = distributed.mpiexec_command(2, [sys.executable, str(script)])
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode != 0
    assert time.perf_counter() - start < 30


_INTERRUPTED_AFTER_EPOCH_1 = """
import sys
from chainrule import cli, distributed
from chainrule.train.callbacks import Callback, CheckpointCallback

world = distributed.init()
save = CheckpointCallback.after_epoch


class StopAfterTheCheckpoint(Callback):
    order = 70  # after CheckpointCallback's after_epoch (60) on rank 0

    def after_epoch(self, learner):
        world.comm.Barrier()  # rank 0 has written its checkpoint
        raise KeyboardInterrupt


original = cli.Learner.__init__


def with_the_stop(self, *args, callbacks=(), **kwargs):
    original(self, *args, callbacks=[*callbacks, StopAfterTheCheckpoint()], **kwargs)


cli.Learner.__init__ = with_the_stop
sys.exit(cli.main(["train", *sys.argv[2:], "--out", sys.argv[1]]))
"""


@MPI_RUN
def test_an_interrupted_mpi_run_resumes_to_the_uninterrupted_result(tmp_path) -> None:
    flags = ["--epochs", "2", "--no-progress", "--hidden", "32", "--nproc", "2"]
    straight = _chainrule("train", *flags, "--out", "straight", cwd=tmp_path)
    assert straight.returncode == 0, straight.stderr
    script = tmp_path / "interrupted.py"
    script.write_text(_INTERRUPTED_AFTER_EPOCH_1)
    command = distributed.mpiexec_command(2, [sys.executable, str(script),
                                              str(tmp_path / "run"), *flags])
    stopped = subprocess.run(command, capture_output=True, text=True, timeout=300,
                             check=False, cwd=tmp_path)
    assert stopped.returncode != 0 and (tmp_path / "run" / "checkpoint.safetensors").exists()
    assert not (tmp_path / "run" / "metrics.json").exists(), stopped.stdout
    resumed = _chainrule("train", *flags, "--resume", "--out", "run", cwd=tmp_path)
    assert resumed.returncode == 0 and "resuming from" in resumed.stdout, resumed.stderr
    a, b = (json.loads((tmp_path / name / "metrics.json").read_text())
            for name in ("run", "straight"))
    for row in (*a["history"], a["test"], *b["history"], b["test"]):
        row.pop("seconds", None)
    assert a["history"] == b["history"] and a["test"] == b["test"]  # bit for bit


_TWO_RANKS_SYNC_BN = """
import sys
import numpy as np
import chainrule as cr
from chainrule import distributed, nn, optim
from chainrule.data import ArrayDataset, DataLoader
from chainrule.train import Learner

world = distributed.init()
rng = np.random.default_rng(0)
data = ArrayDataset(rng.standard_normal(({n}, {f})) * 3 + 1, rng.integers(0, {c}, {n}))
cr.manual_seed(1)
model = nn.Sequential(nn.Linear({f}, 8, dtype="float64"), nn.BatchNorm1d(8, dtype="float64"),
                      nn.ReLU(), nn.Linear(8, {c}, dtype="float64"))
model = distributed.SyncBatchNorm.convert(model, world)
assert type(model[1]).__name__ == "SyncBatchNorm"
loader = DataLoader(data, batch_size={b}, shuffle=True, seed=3)
learner = Learner(model, distributed.ShardedLoader(loader, world),
                  optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
                  callbacks=[distributed.DataParallel(world)])
learner.fit(2)
if world.is_root:
    np.savez(sys.argv[1], *[t.data for t in (*model.parameters(), *model.buffers())])
"""


@MPI_RUN
def test_sync_batch_norm_on_two_ranks_is_batch_norm_on_the_double_batch(tmp_path) -> None:
    script = tmp_path / "sync_bn.py"
    script.write_text(_TWO_RANKS_SYNC_BN.format(n=N_SAMPLES, f=FEATURES, c=CLASSES,
                                                b=RANK_BATCH))
    out = tmp_path / "weights.npz"
    command = distributed.mpiexec_command(2, [sys.executable, str(script), str(out)])
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    rng = np.random.default_rng(0)
    data = ArrayDataset(rng.standard_normal((N_SAMPLES, FEATURES)) * 3 + 1,
                        rng.integers(0, CLASSES, N_SAMPLES))
    cr.manual_seed(1)
    model = nn.Sequential(nn.Linear(FEATURES, 8, dtype="float64"),
                          nn.BatchNorm1d(8, dtype="float64"), nn.ReLU(),
                          nn.Linear(8, CLASSES, dtype="float64"))
    loader = DataLoader(data, batch_size=2 * RANK_BATCH, shuffle=True, seed=3)
    Learner(model, loader, optim.SGD(model.parameters(), lr=0.1, momentum=0.9)).fit(2)
    saved = np.load(out)
    tensors = [*model.parameters(), *model.buffers()]
    assert len(saved.files) == len(tensors)
    for i, t in enumerate(tensors):  # weights, and BatchNorm's running statistics
        np.testing.assert_allclose(saved[f"arr_{i}"], t.data, rtol=1e-10, atol=1e-12)


def test_sync_batch_norm_alone_is_batch_norm() -> None:
    x = cr.tensor(np.random.default_rng(1).standard_normal((6, 4, 3)), requires_grad=True)
    plain = nn.BatchNorm1d(4, dtype="float64")
    sync = distributed.SyncBatchNorm.convert(nn.BatchNorm1d(4, dtype="float64"), None)
    a, b = plain(x), sync(x)
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(plain.running_var.data, sync.running_var.data)
    # the same tensors: an optimizer built before the conversion still trains them
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    opt = optim.SGD(model.parameters(), lr=0.5)
    weight = model[1].weight
    model = distributed.SyncBatchNorm.convert(model, None)
    assert model[1].weight is weight and type(model[1]).__name__ == "SyncBatchNorm"
    model(cr.tensor(np.random.default_rng(2).standard_normal((5, 3)).astype(np.float32))
          ).sum().backward()
    before = weight.data.copy()
    opt.step()
    assert not np.array_equal(weight.data, before)
    with pytest.raises(TypeError, match="convert the model before fusing"):
        distributed.SyncBatchNorm.convert(nn.fuse(nn.Sequential(
            nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.MaxPool2d(2), nn.ReLU())), None)


_RAISING_SCRIPT = """
import numpy as np
from chainrule import distributed
world = distributed.init()
world.comm.Barrier()
if world.rank == 1:
    raise ValueError("rank 1 found a bad batch")
world.comm.Allreduce(np.ones(4), np.empty(4))  # rank 0 would wait here forever
"""


@MPI_RUN
def test_a_script_under_mpi4pys_runner_stops_every_rank_on_an_error(tmp_path) -> None:
    script = tmp_path / "raising.py"
    script.write_text(_RAISING_SCRIPT)
    command = distributed.mpiexec_command(2, [sys.executable, "-m", "mpi4py", str(script)])
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode != 0 and time.perf_counter() - start < 30
    assert "rank 1 found a bad batch" in result.stderr


class _SilentComm:
    """A communicator stand-in whose broadcast leaves the arrays as they are."""

    def Bcast(self, array, root=0):  # noqa: N802 - mpi4py's name
        return None


def test_ranks_other_than_0_leave_progress_and_checkpoints_to_rank_0(tmp_path) -> None:
    from chainrule.train import CheckpointCallback, ProgressBar

    def callbacks_on(rank: int) -> set[str]:
        world = distributed.World(rank, 2, _SilentComm())
        model = _model(0)
        learner = Learner(model, [(cr.tensor(np.zeros((2, FEATURES))), cr.tensor([0, 1]))],
                          optim.SGD(model.parameters(), lr=0.1),
                          callbacks=[ProgressBar(), CheckpointCallback(tmp_path / "c.st"),
                                     distributed.DataParallel(world)])
        distributed.DataParallel(world).before_fit(learner)
        return {type(c).__name__ for c in learner.callbacks}

    assert {"ProgressBar", "CheckpointCallback"} <= callbacks_on(0)
    assert not {"ProgressBar", "CheckpointCallback"} & callbacks_on(1)
