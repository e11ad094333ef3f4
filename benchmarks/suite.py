"""The performance suite: chainrule vs PyTorch eager vs hand-written NumPy, one table.

    python benchmarks/suite.py            # everything (~3 minutes on 2 cores)
    python benchmarks/suite.py --quick    # fewer repeats, for a smoke test

Every case runs the same data, architecture and batch size in each library, in this one
process, with repeats interleaved (A, B, C, A, B, C, ...) so that a shared machine's drift
hits all of them; the table shows medians and ratios. "hand NumPy" is the lesson's style:
forward and backward written out for the whole network, no autograd, no tape — the floor
that chainrule's engine overhead is measured against. It multiplies with plain ``@`` on
NumPy's own BLAS threads, as the lesson writes it (issue 15's baseline); a second line
gives the same network multiplying through chainrule.kernels.matmul, as chainrule's ops
do, so that the two differ only in the engine. Peak
memory is measured in fresh subprocesses (one per library), as the growth of the resident
set during training. The start-up lines run the cnn recipe's first steps in fresh processes
with numba's cache in an empty directory (the compile a fresh install pays once), then
again with the cache that left (what every later start pays), against the NumPy path.
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
from collections.abc import Callable

# OpenBLAS reads its spin time once, when NumPy loads it: these figures are taken with the
# short spin that pays for conv training (docs/kernels.md), so it is set before the imports.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np

import chainrule as cr
from chainrule import models, nn, optim
from chainrule.check.parity import to_torch
from chainrule.kernels import matmul, num_threads
from chainrule.nn import functional as F


# ----------------------------------------------------------------------------- the machine
def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """float32 matrix-product throughput of this machine's BLAS, in GFLOP/s (best of runs)."""
    a = np.random.default_rng(0).standard_normal((size, size)).astype(np.float32)
    a @ a
    best = min(_seconds(lambda: a @ a) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def products_alone(sizes: list[int], batch: int, steps: int, repeats: int) -> float:
    """Seconds for just the matrix products of ``steps`` training steps of an MLP (forward,
    weight gradients, input gradients but the first layer's), timed on their own at the
    shapes a step uses: the ceiling for any engine built on this BLAS."""
    rng = np.random.default_rng(0)
    products = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        x = rng.standard_normal((batch, n_in)).astype(np.float32)
        w = rng.standard_normal((n_out, n_in)).astype(np.float32)
        g = rng.standard_normal((batch, n_out)).astype(np.float32)
        products += [lambda x=x, w=w: matmul(x, w.T), lambda x=x, g=g: matmul(g.T, x)]
        if i:
            products.append(lambda g=g, w=w: matmul(g, w))

    def run() -> None:
        for _ in range(steps):
            for product in products:
                product()

    run()
    return statistics.median(_seconds(run) for _ in range(repeats))


def products_in_situ(run: Callable[[], float], repeats: int) -> float:
    """Seconds that ``run`` (a chainrule epoch) spends inside kernels.matmul, the median of
    ``repeats`` epochs: the products' time with the caches a training step leaves them."""
    inner, spent = cr.kernels.matmul, [0.0]

    def timed(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        start = time.perf_counter()
        result = inner(a, b, out=out)
        spent[0] += time.perf_counter() - start
        return result

    cr.kernels.matmul = timed  # the ops call it through the module, so this sees them all
    try:
        times = []
        for _ in range(repeats):
            spent[0] = 0.0
            run()
            times.append(spent[0])
    finally:
        cr.kernels.matmul = inner
    return statistics.median(times)


def sgd_update_alone(sizes: list[int], steps: int, repeats: int) -> float:
    """Seconds for ``steps`` of chainrule's plain SGD update alone over an MLP's parameters,
    their gradients already there: the one pass over the weights any engine must add."""
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        for shape in ((n_out, n_in), (n_out,)):
            p = nn.Parameter(np.zeros(shape, np.float32))
            p.grad = np.full(shape, 1e-3, np.float32)
            params.append(p)
    opt = optim.SGD(params, lr=0.01)

    def run() -> None:
        for _ in range(steps):
            opt.step()

    run()
    return statistics.median(_seconds(run) for _ in range(repeats))


def _seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# ----------------------------------------------------------------------------- MLP, 3 ways
def mlp_data(samples: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random inputs and labels: speed does not depend on the values."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((samples, 784)).astype(np.float32),
            rng.integers(0, 10, samples))


class HandMLP:
    """The lesson's hand-written network: Linear/ReLU layers, softmax cross-entropy, SGD.

    Forward keeps what backward needs; backward is the chain rule written out by hand.
    """

    def __init__(self, sizes: list[int], seed: int = 0,
                 product: Callable[[np.ndarray, np.ndarray], np.ndarray] = np.matmul) -> None:
        rng = np.random.default_rng(seed)
        self.product = product
        self.weights = [(rng.standard_normal((n_in, n_out)) * np.sqrt(2 / n_in))
                        .astype(np.float32) for n_in, n_out in zip(sizes[:-1], sizes[1:])]
        self.biases = [np.zeros(n_out, np.float32) for n_out in sizes[1:]]

    def step(self, x: np.ndarray, y: np.ndarray, lr: float) -> float:
        """One SGD step; returns the loss."""
        acts = [x]
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            out = self.product(acts[-1], w) + b
            acts.append(np.maximum(out, 0) if i < len(self.weights) - 1 else out)
        logits = acts[-1]
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        probs = exp / exp.sum(axis=1, keepdims=True)
        n = len(y)
        loss = float(-np.log(probs[np.arange(n), y]).mean())
        grad = probs
        grad[np.arange(n), y] -= 1
        grad /= n
        for i in reversed(range(len(self.weights))):
            w = self.weights[i]
            grad_w, grad_b = self.product(acts[i].T, grad), grad.sum(axis=0)
            if i:
                grad = self.product(grad, w.T) * (acts[i] > 0)
            w -= lr * grad_w
            self.biases[i] -= lr * grad_b
        return loss

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Logits, no bookkeeping for backward."""
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = self.product(x, w) + b
            if i < len(self.weights) - 1:
                x = np.maximum(x, 0)
        return x


def training_runners(torch, ours: nn.Module, ours_opt, twin, twin_opt, x: np.ndarray,
                     y: np.ndarray, batch: int) -> dict[str, Callable[[], float]]:
    """One pass of training steps over ``x`` in batches, per library (same batches)."""
    starts = range(0, len(x) - batch + 1, batch)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def chainrule_run() -> float:
        for s in starts:
            loss = F.cross_entropy(ours(cr.from_numpy(x[s:s + batch])), y[s:s + batch])
            ours_opt.zero_grad()
            loss.backward()
            ours_opt.step()
        return loss.item()

    def torch_run() -> float:
        for s in starts:
            loss = torch.nn.functional.cross_entropy(twin(tx[s:s + batch]), ty[s:s + batch])
            twin_opt.zero_grad()
            loss.backward()
            twin_opt.step()
        return loss.item()

    return {"chainrule": chainrule_run, "torch": torch_run}


def mlp_runners(torch, sizes: list[int], batch: int, x: np.ndarray, y: np.ndarray
                ) -> dict[str, Callable[[], float]]:
    """One training epoch of the same MLP (same start weights, plain SGD) per library."""
    lr = 0.01
    cr.manual_seed(0)
    ours = nn.fuse(models.mlp(in_features=sizes[0], hidden=sizes[1:-1], classes=sizes[-1]))
    twin = to_torch(ours).float()
    hands = {"hand NumPy": HandMLP(sizes), "hand, kernels.matmul": HandMLP(sizes,
                                                                          product=matmul)}
    for hand in hands.values():
        for i, layer in enumerate(m for m in ours.modules() if isinstance(m, nn.Linear)):
            hand.weights[i][...] = layer.weight.data.T
            hand.biases[i][...] = layer.bias.data
    runners = training_runners(torch, ours, optim.SGD(ours.parameters(), lr=lr), twin,
                               torch.optim.SGD(twin.parameters(), lr=lr), x, y, batch)
    starts = range(0, len(x) - batch + 1, batch)

    def epoch(hand: HandMLP) -> Callable[[], float]:
        def run() -> float:
            for s in starts:
                loss = hand.step(x[s:s + batch], y[s:s + batch], lr)
            return loss
        return run

    return {**runners, **{name: epoch(hand) for name, hand in hands.items()}}


def inference_runners(torch, model: nn.Module, x: np.ndarray, batch: int,
                      hand: HandMLP | None = None) -> dict[str, Callable[[], float]]:
    """Forward passes over ``x`` in eval mode without recording (samples per second)."""
    twin = to_torch(model).float().eval()
    model.eval()
    tx = torch.from_numpy(x)

    def chainrule_run() -> float:
        with cr.no_grad():
            for s in range(0, len(x), batch):
                model(cr.from_numpy(x[s:s + batch]))
        return 0.0

    def torch_run() -> float:
        with torch.no_grad():
            for s in range(0, len(x), batch):
                twin(tx[s:s + batch])
        return 0.0

    runners = {"chainrule": chainrule_run, "torch": torch_run}
    if hand is not None:
        runners["hand NumPy"] = lambda: [hand.predict(x[s:s + batch])
                                         for s in range(0, len(x), batch)] and 0.0
    return runners


def with_parallel(run: Callable[[], float], choice: bool) -> Callable[[], float]:
    """``run`` with chainrule's prange loops on numba's threads (True) or on one (False)."""
    def wrapped() -> float:
        cr.kernels.use_parallel(choice)
        try:
            return run()
        finally:
            cr.kernels.use_parallel(None)

    return wrapped


def cnn_runners(torch, batches: int, batch: int) -> dict[str, Callable[[], float]]:
    """``batches`` training steps of the cnn recipe (AdamW) in each library."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batches * batch, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, batches * batch)
    cr.manual_seed(0)
    ours = nn.fuse(models.cnn())  # as chainrule train runs it
    twin = to_torch(ours).float()
    return training_runners(torch, ours,
                            optim.AdamW(ours.parameters(), lr=1e-3, weight_decay=0.01), twin,
                            torch.optim.AdamW(twin.parameters(), lr=1e-3, weight_decay=0.01),
                            x, y, batch)


def interleaved(runners: dict[str, Callable[[], object]], repeats: int, inner: int = 1
                ) -> dict[str, float]:
    """Median seconds per call of each runner; one warm-up each, then repeats in turn, each
    repeat timing ``inner`` calls in a row (for calls too short to time one by one)."""
    for run in runners.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            for _ in range(inner):
                run()
            times[name].append((time.perf_counter() - start) / inner)
    return {name: statistics.median(values) for name, values in times.items()}


# ----------------------------------------------------------------------------- memory
MEMORY_CHILD = r"""
import json, sys
import chainrule as cr
import numpy as np
cr.kernels.tune_process()  # as the parent: freed buffers are kept for the next step
library, steps = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
x = rng.standard_normal((256, 784)).astype(np.float32); y = rng.integers(0, 10, 256)
if library == "torch":
    import torch
    torch.set_num_threads(cr.kernels.num_threads())
    model = torch.nn.Sequential(torch.nn.Linear(784, 1024), torch.nn.ReLU(),
                                torch.nn.Linear(1024, 1024), torch.nn.ReLU(),
                                torch.nn.Linear(1024, 10))
    opt = torch.optim.Adam(model.parameters())
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    def step():
        loss = torch.nn.functional.cross_entropy(model(tx), ty)
        opt.zero_grad(); loss.backward(); opt.step()
else:
    model = cr.nn.fuse(cr.models.mlp(hidden=(1024, 1024)))
    opt = cr.optim.Adam(model.parameters())
    def step():
        loss = cr.nn.functional.cross_entropy(model(cr.from_numpy(x)), y)
        opt.zero_grad(); loss.backward(); opt.step()
def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024  # kB -> MiB
def growth(count):
    before = status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the high-water mark (VmHWM) to the current resident set
    for _ in range(count):
        step()
    return status("VmHWM") - before
def libraries():
    # What chainrule loads on first use (MKL, numba and its LLVM, one cached compiled
    # kernel): loaded before the steps are measured, as torch's own are when it is imported.
    if library != "torch":
        cr.kernels.mkl.available()
        p, g, m, v = (np.ones(8, np.float32) for _ in range(4))
        cr.kernels.adam_update(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 0.0, False, 1)
loaded = status("VmRSS")
libraries()
loaded = status("VmRSS") - loaded
first = growth(1)  # optimizer state and buffers appear in the first step
print(json.dumps({"first_mib": first, "steady_mib": growth(steps), "libraries_mib": loaded}))
"""


def peak_memory(library: str, steps: int = 20) -> dict[str, float]:
    """Peak resident-set growth while training MLP 784-1024-1024-10 (batch 256) in a fresh
    process, in MiB: during the first step (optimizer state appears) and during the next 20
    (steady state: activations and gradients), each as the high-water mark minus the resident
    set before (Linux: /proc/self/status, the mark reset through /proc/self/clear_refs)."""
    out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, library, str(steps)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- start-up
STARTUP_CHILD = r"""
import sys, time
start = time.perf_counter()
import numpy as np
import chainrule as cr
from chainrule import models, nn, optim
from chainrule.nn import functional as F
imported = time.perf_counter()
cr.manual_seed(0)
model = nn.fuse(models.cnn())
opt = optim.AdamW(model.parameters(), lr=1e-3)
x = np.random.default_rng(0).standard_normal((16, 1, 28, 28)).astype(np.float32)
y = np.arange(16) % 10
first = time.perf_counter()
for _ in range(2):  # train and evaluate once: every kernel of the recipe runs
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
model.eval()
model(x)
done = time.perf_counter()
print(imported - start, done - first, cr.kernels.backend())
"""


def startup_seconds(cache_dir: str, kernels: str) -> tuple[float, float]:
    """(import seconds, seconds of the cnn recipe's first two steps and one evaluation) in a
    fresh process, numba's cache in ``cache_dir``, ``CHAINRULE_KERNELS=kernels``."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, CHAINRULE_KERNELS=kernels)
    out = subprocess.run([sys.executable, "-c", STARTUP_CHILD], check=True,
                         capture_output=True, text=True, env=env).stdout.split()
    if out[2] != ("numba" if kernels == "numba" else "numpy"):
        raise RuntimeError(f"benchmarks/suite.py: the start-up child ran {out[2]} kernels")
    return float(out[0]), float(out[1])


def startup_rows() -> None:
    """Issue 15's start-up targets: the compile a fresh install pays once (cache empty),
    and what a later start pays (cache filled), each against the NumPy path's first steps."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="chainrule-numba-cache-") as cache:
        reference = startup_seconds(cache, "numpy")
        cold = startup_seconds(cache, "numba")
        warm = startup_seconds(cache, "numba")
    print(f"start-up, cnn recipe (a fresh process; its first 2 training steps and 1 evaluation, "
          f"imports apart): NumPy path {reference[1]:.2f} s")
    for label, (imported, steps), target in (("empty numba cache", cold, 10.0),
                                            ("filled numba cache", warm, 1.0)):
        extra = steps - reference[1]
        met = "met" if extra <= target else "NOT met"
        print(f"{'':<4}{label}: {steps:.2f} s, {extra:+.2f} s against the NumPy path "
              f"(issue 15's target: <= {target:.0f} s, {met}); import {imported:.2f} s")


# ----------------------------------------------------------------------------- the table
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and samples")
    args = parser.parse_args()
    cr.kernels.tune_process()  # freed buffers kept between steps, as a training run has them
    repeats = 2 if args.quick else 7
    samples = 10_000 if args.quick else 50_000

    import torch

    threads = num_threads()
    torch.set_num_threads(threads)
    peak = matmul_gflops()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
          f"({threads} threads per library), Python {platform.python_version()}, NumPy "
          f"{np.__version__}, torch {torch.__version__}")
    print(f"float32 matmul (NumPy BLAS, 2048x2048): {peak:.0f} GFLOP/s\n")
    header = (f"{'case':<40}{'chainrule':>11}{'torch':>11}{'hand NumPy':>12}"
              f"{'cr/torch':>10}{'cr/hand':>9}")
    print(header)
    print("-" * len(header))

    def row(label: str, result: dict[str, float], unit: str = "s") -> None:
        hand = result.get("hand NumPy")
        cells = [f"{result['chainrule']:.3f}{unit}", f"{result['torch']:.3f}{unit}",
                 f"{hand:.3f}{unit}" if hand else "-"]
        ratios = [f"{result['chainrule'] / result['torch']:.2f}",
                  f"{result['chainrule'] / hand:.2f}" if hand else "-"]
        print(f"{label:<40}{cells[0]:>11}{cells[1]:>11}{cells[2]:>12}{ratios[0]:>10}"
              f"{ratios[1]:>9}", flush=True)
        helper = result.get("hand, kernels.matmul")
        if helper:
            print(f"{'':<4}hand NumPy multiplying through kernels.matmul: {helper:.3f}{unit}, "
                  f"chainrule / it: {result['chainrule'] / helper:.2f}", flush=True)

    x, y = mlp_data(samples)
    for sizes, batch in (([784, 50, 10], 64), ([784, 50, 10], 512)):
        result = interleaved(mlp_runners(torch, sizes, batch, x, y), repeats)
        row(f"MLP 784-50-10, batch {batch}, epoch of {samples:,}", result)

    big = [784, 1024, 1024, 10]
    big_samples = samples // 5
    runners = mlp_runners(torch, big, 256, x[:big_samples], y[:big_samples])
    result = interleaved(runners, repeats)
    row(f"MLP 784-1024-1024-10, batch 256, {big_samples:,}", result)
    # Per sample and layer: 2 in*out FLOPs forward, 2 for the weight gradient, 2 for the
    # input gradient, which the first layer does not need (its input is data).
    layers = [a * b for a, b in zip(big[:-1], big[1:])]
    steps = big_samples // 256  # the epoch's whole batches
    flops = steps * 256 * (4 * layers[0] + 6 * sum(layers[1:]))
    share = {k: flops / v / 1e9 / peak for k, v in result.items()}
    alone = products_alone(big, 256, steps, repeats)
    ceiling = flops / alone / 1e9 / peak
    print(f"{'':<4}share of matmul peak: chainrule {share['chainrule']:.0%}, torch "
          f"{share['torch']:.0%}, hand NumPy {share['hand NumPy']:.0%} (the matrix products' "
          f"FLOPs over the epoch's time); the same products alone, nothing else: {ceiling:.0%}")
    situ, update = products_in_situ(runners["chainrule"], repeats), sgd_update_alone(
        big, steps, repeats)
    print(f"{'':<4}what the ceiling leaves: inside chainrule's epoch the products took "
          f"{situ:.3f}s ({alone:.3f}s alone) and SGD's update alone takes {update:.3f}s, so "
          f"those two reach {alone / (situ + update):.0%} of the ceiling before any ReLU, bias, "
          "loss or engine time")

    cnn_batches = 10 if args.quick else 40
    runners = cnn_runners(torch, cnn_batches, 128)
    flipped = not cr.kernels.parallel()  # the form the default does not run
    runners["other threads"] = with_parallel(runners["chainrule"], flipped)
    result = interleaved(runners, max(repeats - 2, 2))
    row(f"cnn recipe, {cnn_batches} steps of batch 128", result)
    print(f"{'':<4}the same with the prange loops {'on' if flipped else 'off'} numba's "
          f"threads (default here: {'on' if not flipped else 'off'}, {threads} threads): "
          f"{result['other threads']:.3f}s, {result['other threads'] / result['chainrule']:.2f}"
          " times the default's time", flush=True)

    cr.manual_seed(0)
    infer = nn.fuse(models.mlp(hidden=(1024, 1024)))
    hand = HandMLP(big)
    for i, layer in enumerate(m for m in infer.modules() if isinstance(m, nn.Linear)):
        hand.weights[i][...] = layer.weight.data.T
        hand.biases[i][...] = layer.bias.data
    result = interleaved(inference_runners(torch, infer, x, 1000, hand), repeats)
    per_second = {k: samples / v for k, v in result.items()}
    print(f"{'inference MLP 784-1024-1024-10, batch 1000':<40}"
          f"{per_second['chainrule']:>10,.0f}/s{per_second['torch']:>9,.0f}/s"
          f"{per_second['hand NumPy']:>10,.0f}/s{result['chainrule'] / result['torch']:>10.2f}"
          f"{result['chainrule'] / result['hand NumPy']:>9.2f}   (samples/s; ratios of time)")
    cnn_x = np.random.default_rng(0).standard_normal((2000, 1, 28, 28)).astype(np.float32)
    cr.manual_seed(0)
    result = interleaved(inference_runners(torch, nn.fuse(models.cnn()), cnn_x, 500),
                         repeats)
    per_second = {k: len(cnn_x) / v for k, v in result.items()}
    print(f"{'inference cnn recipe, batch 500':<40}{per_second['chainrule']:>10,.0f}/s"
          f"{per_second['torch']:>9,.0f}/s{'-':>12}"
          f"{result['chainrule'] / result['torch']:>10.2f}{'-':>9}   (samples/s)")

    memory = {library: peak_memory(library) for library in ("chainrule", "torch")}
    for key, label in (("first_mib", "first Adam step"), ("steady_mib", "next 20 steps")):
        ours_mib, torch_mib = memory["chainrule"][key], memory["torch"][key]
        print(f"{'memory, MLP 1024-1024, ' + label:<40}{ours_mib:>8.1f}MiB{torch_mib:>8.1f}MiB"
              f"{'-':>12}{ours_mib / max(torch_mib, 1e-9):>10.2f}{'-':>9}   (peak resident-set "
              "growth, batch 256)")
    print(f"{'':<4}chainrule's libraries loaded on first use (MKL, numba's LLVM, a compiled "
          f"kernel) took {memory['chainrule']['libraries_mib']:.1f} MiB once, before these "
          "steps, as torch's own are loaded at import")
    print()
    startup_rows()


if __name__ == "__main__":
    main()
