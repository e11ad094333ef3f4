"""Data-parallel training over MPI: allreduce time against message size, training throughput
of 1 process x 2 threads against 2 processes x 1 thread, and a cost model fitted to them.

    python benchmarks/distributed.py                 # the tables (a few minutes on 2 cores)
    python benchmarks/distributed.py --quick         # a smoke run

Needs the distributed extra (``pip install -e ".[distributed]"``); the script starts
``mpiexec`` itself (``chainrule.distributed.mpiexec_command``).

1. Allreduce: 2 ranks sum a float32 buffer in place (``MPI.IN_PLACE``, as
   ``distributed.average_gradients`` does), sizes 1 KiB to 16 MiB; each repeat starts at a
   barrier and takes the slower rank's time; medians.
2. Throughput: ``models.mlp()`` (batch 64) and ``models.cnn()`` (batch 128, fused) on
   random images, trained by the same pieces ``chainrule train --nproc`` uses
   (ShardedLoader with the global batch split over the ranks, DataParallel's weighted
   gradient sum, AdamW). One process with 2 threads against 2 processes with 1 thread each
   (``CHAINRULE_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``), alternating, each run in fresh
   processes; samples per second of training, medians over the repeats. The last column is
   the model's figure for the 2 x 1 run: one thread's measured step on B / 2 samples plus
   the allreduces the model gives.
3. The model: a ring allreduce of s bytes over N ranks takes 2 (N - 1) (alpha + s / (N beta))
   (a reduce-scatter and an all-gather, N - 1 steps each, each sending s / N). alpha and beta
   are fitted (least squares) to table 1, where N = 2: T = 2 alpha + s / beta. A step on N
   machines of 2 cores, the global batch B fixed: t(N) = one machine's step on B / N samples
   (measured here, 2 threads) + one allreduce per 4 MiB bucket of the gradients + the small
   one of the batch size and loss. Assumed: the machines are like this one; nothing of the
   communication overlaps the compute; the ring's alpha and beta hold at N ranks. The
   speed-up t(1) / t(N) is printed for the local link fitted here and for an assumed 10 Gb/s
   Ethernet (alpha 30 us, beta 1.25 GB/s: assumed, not measured here).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

MIB = 1 << 20
SIZES = [1 << 10, 1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20, 1 << 22, 1 << 24]
#: an assumed inter-machine link for the model's second column (not measured here)
ETHERNET_10G = (30e-6, 1.25e9)
#: the recipes' batch sizes (chainrule train's defaults)
BATCH = {"mlp": 64, "cnn": 128}
#: the machine counts the model predicts for
MACHINES = (2, 4, 8, 16)


def grad_bytes(name: str) -> int:
    """The float32 gradients' bytes of ``models.mlp()`` or ``models.cnn()``."""
    from chainrule import models

    model = models.mlp() if name == "mlp" else models.cnn()
    return 4 * sum(p.size for p in model.parameters())


# ----------------------------------------------------------------------------- the workers
def allreduce_worker(repeats: int) -> None:
    """Run under mpiexec: print, on rank 0, {bytes: median seconds} as JSON."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    result = {}
    for size in SIZES:
        buffer = np.ones(size // 4, np.float32)
        times = []
        for i in range(repeats + 3):
            comm.Barrier()
            start = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
            took = comm.allreduce(time.perf_counter() - start, op=MPI.MAX)
            if i >= 3:
                times.append(took)
        result[size] = statistics.median(times)
    if comm.Get_rank() == 0:
        print(json.dumps(result))


def train_worker(model_name: str, steps: int, batch: int) -> None:
    """Run alone or under mpiexec: print, on rank 0, training samples per second as JSON."""
    import chainrule as cr
    from chainrule import distributed, models, optim
    from chainrule.data import ArrayDataset, DataLoader
    from chainrule.nn import functional as F

    cr.kernels.tune_process()
    world = distributed.init()
    rng = np.random.default_rng(0)
    count = batch * (steps + 3)
    shape = (count, 784) if model_name == "mlp" else (count, 1, 28, 28)
    data = ArrayDataset(rng.standard_normal(shape).astype(np.float32),
                        rng.integers(0, 10, count))
    cr.manual_seed(0)
    model = models.mlp() if model_name == "mlp" else models.cnn()
    if model_name == "cnn":
        model = cr.nn.fuse(model)
    model.train()
    opt = optim.AdamW(model.parameters(), lr=1e-3)
    parallel = distributed.DataParallel(world)
    loader = distributed.ShardedLoader(DataLoader(data, batch_size=batch, shuffle=True),
                                       world, global_batch=True)

    class Step:  # what DataParallel reads off a Learner
        pass

    learner = Step()
    learner.model, learner.callbacks, learner.training = model, [], True
    learner.epoch, learner.step, learner.batch_index, learner.lr = 0, 0, 0, 1e-3
    parallel.before_fit(learner)
    start = 0.0
    for i, (x, y) in enumerate(loader):
        if i == 3:  # the first steps compile kernels and allocate
            world.comm.Barrier()
            start = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        learner.batch, learner.loss = (x, y), loss
        parallel.after_loss(learner)
        opt.zero_grad()
        loss.backward()
        parallel.after_backward(learner)
        opt.step()
    took = world.comm.allreduce(time.perf_counter() - start, op=max)
    if world.is_root:
        print(json.dumps({"samples_per_s": batch * steps / took}))


# ----------------------------------------------------------------------------- the driver
def _run(command: list[str], threads: int) -> dict:
    env = dict(os.environ, CHAINRULE_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               OPENBLAS_THREAD_TIMEOUT=os.environ.get("OPENBLAS_THREAD_TIMEOUT", "4"))
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False,
                          timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"benchmarks/distributed.py: a run failed:\n{done.stderr[-2000:]}")
    # the last JSON line (mpiexec may print terminal colour resets after it)
    return json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])


def fit_link(times: dict[int, float]) -> tuple[float, float]:
    """(alpha, beta) of T = 2 alpha + s / beta (a 2-rank ring), least squares."""
    sizes = np.array(list(times), float)
    seconds = np.array(list(times.values()), float)
    slope, intercept = np.polyfit(sizes, seconds, 1)
    return max(intercept / 2, 0.0), 1.0 / slope


def ring_time(nbytes: int, ranks: int, alpha: float, beta: float) -> float:
    """The model's allreduce time of ``nbytes`` over ``ranks``."""
    if ranks == 1:
        return 0.0
    return 2 * (ranks - 1) * (alpha + nbytes / (ranks * beta))


def step_time(compute: float, grad_bytes: int, ranks: int, alpha: float, beta: float) -> float:
    """The model's step: compute split over the ranks, then one allreduce per 4 MiB bucket."""
    from chainrule.distributed import BUCKET_BYTES

    full, rest = divmod(grad_bytes, BUCKET_BYTES)
    buckets = [BUCKET_BYTES] * full + ([rest] if rest else [])
    return compute / ranks + sum(ring_time(b, ranks, alpha, beta) for b in buckets)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: few repeats")
    parser.add_argument("--repeats", type=int, default=None, help="throughput repeats (5)")
    parser.add_argument("--allreduce-worker", type=int, metavar="REPEATS",
                        help=argparse.SUPPRESS)
    parser.add_argument("--train-worker", nargs=3, metavar=("MODEL", "STEPS", "BATCH"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.allreduce_worker is not None:
        return allreduce_worker(args.allreduce_worker)
    if args.train_worker is not None:
        name, steps, batch = args.train_worker
        return train_worker(name, int(steps), int(batch))

    from chainrule import distributed

    # mpi4py's runner: an error on one rank ends every rank instead of leaving them waiting
    here = [sys.executable, "-m", "mpi4py", os.path.abspath(__file__)]
    two = distributed.mpiexec_command
    repeats = args.repeats or (1 if args.quick else 5)
    steps = {"mlp": 10 if args.quick else 150, "cnn": 4 if args.quick else 40}

    print(f"chainrule data-parallel benchmark; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores")
    times = _run(two(2, [*here, "--allreduce-worker", "5" if args.quick else "50"]), 1)
    times = {int(k): v for k, v in times.items()}
    alpha, beta = fit_link(times)
    print("\nallreduce (in place, float32 sum), 2 ranks on this machine, median of repeats")
    print(f"{'bytes':>10}  {'ms':>8}  {'GB/s (s / T)':>12}")
    for size, seconds in times.items():
        print(f"{size:>10,}  {seconds * 1e3:8.3f}  {size / seconds / 1e9:12.2f}")
    print(f"fitted: T = 2 alpha + s / beta with alpha {alpha * 1e6:.1f} us, "
          f"beta {beta / 1e9:.2f} GB/s")

    print("\ntraining throughput (samples/s of the global batch B), medians of", repeats,
          "repeats, alternating")
    print(f"{'model':6} {'B':>4}  {'1 x 2 threads':>13}  {'2 x 1 thread':>12}  "
          f"{'2 ranks / 1':>11}  {'model, 2 x 1':>12}")
    compute: dict[str, tuple[float, dict[int, float]]] = {}
    for name in ("mlp", "cnn"):
        batch = BATCH[name]
        runs: dict[str, list[float]] = {"one": [], "pair": [], "single": []}
        for _ in range(repeats):
            def worker(b: int) -> list[str]:
                return [*here, "--train-worker", name, str(steps[name]), str(b)]
            runs["one"].append(_run(worker(batch), 2)["samples_per_s"])
            runs["pair"].append(_run(two(2, worker(batch)), 1)["samples_per_s"])
            runs["single"].append(_run(worker(batch // 2), 1)["samples_per_s"])
        one, pair, single = (statistics.median(runs[k]) for k in ("one", "pair", "single"))
        # one machine's step on the shard of each N (B / N samples, 2 threads), measured
        shards = {n: [] for n in MACHINES}
        for _ in range(repeats):
            for n in MACHINES:
                b = max(batch // n, 1)
                shards[n].append(b / _run([*here, "--train-worker", name, str(steps[name]),
                                           str(b)], 2)["samples_per_s"])
        compute[name] = (batch / one, {n: statistics.median(t) for n, t in shards.items()})
        # 2 ranks here: each a one-thread step on B / 2, then the gradients' allreduces and
        # the small one of the batch size and loss
        grads = grad_bytes(name)
        predicted_step = ((batch // 2) / single + step_time(0.0, grads, 2, alpha, beta)
                          + ring_time(16, 2, alpha, beta))
        print(f"{name:6} {batch:4}  {one:13.0f}  {pair:12.0f}  {pair / one:11.2f}  "
              f"{batch / predicted_step:12.0f}")

    print("\nthe model: speed-up on N machines of 2 cores, the global batch B fixed: t(N) =")
    print("one machine's measured step on B / N samples + the model's allreduces")
    print(f"{'model':6}  {'grad MB':>7}  {'link':>16}  " + "  ".join(f"N={n:<3}" for n in
                                                                  MACHINES))
    for name in ("mlp", "cnn"):
        t1, steps_at = compute[name]
        grads = grad_bytes(name)
        print(f"{name:6}  {'':>7}  {'step on B/N, ms':>16}  "
              + "  ".join(f"{steps_at[n] * 1e3:5.1f}" for n in MACHINES))
        for label, (a, b) in (("fitted, local", (alpha, beta)), ("10 GbE, assumed",
                                                                  ETHERNET_10G)):
            speedups = [t1 / (steps_at[n] + step_time(0.0, grads, n, a, b)
                              + ring_time(16, n, a, b)) for n in MACHINES]
            print(f"{name:6}  {grads / 1e6:7.2f}  {label:>16}  "
                  + "  ".join(f"{x:5.2f}" for x in speedups))
    print(f"\ncommand: python benchmarks/distributed.py{' --quick' if args.quick else ''}")


if __name__ == "__main__":
    main()
