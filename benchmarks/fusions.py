"""What each fused path buys: the fused and the plain way of the same work, side by side.

    python benchmarks/fusions.py            # ~1 minute on 2 cores
    python benchmarks/fusions.py --quick    # fewer repeats

Rows, each "fused" against "plain", in one process with repeats interleaved (medians):

- a Sequential's Linear+ReLU run as one op (``linear_relu``) against the layers called one by
  one, on a whole training step of the small MLP (784-50-10, batch 64: engine overhead is most
  of what differs) and of a tiny one (8-5-3, batch 4: nothing but engine overhead);
- BatchNorm2d -> MaxPool2d -> ReLU as one op (``batch_norm_max_pool2d``) against the three
  ops, forward and backward, at the shapes of the ``cnn`` recipe's two blocks (batch 128);
- an optimizer step on one parameter of 2^20 float32 numbers, updated in cache-sized blocks
  split over threads against one whole-array update (what small parameters get).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

# OpenBLAS reads its spin time once, when NumPy loads it: these figures are taken with the
# short spin that pays for conv training (docs/kernels.md), so it is set before the imports.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np
from suite import interleaved  # same folder: the suite's interleaved, median timing

import chainrule as cr
from chainrule import kernels, models, nn, optim
from chainrule.nn import functional as F


def mlp_step_runs(hidden: int, features: int, classes: int, batch: int
                  ) -> dict[str, Callable[[], object]]:
    cr.manual_seed(0)
    model = models.mlp(in_features=features, hidden=(hidden,), classes=classes)
    opt = optim.SGD(model.parameters(), lr=0.01)
    rng = np.random.default_rng(0)
    x = cr.from_numpy(rng.standard_normal((batch, features)).astype(np.float32))
    y = rng.integers(0, classes, batch)

    def step(forward: Callable[[cr.Tensor], cr.Tensor]) -> None:
        loss = F.cross_entropy(forward(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    fused = nn.fuse(model)
    return {"fused": lambda: step(fused), "plain": lambda: step(model)}


def conv_block_runs(channels: int, size: int) -> dict[str, Callable[[], object]]:
    """Forward and backward of BatchNorm2d -> MaxPool2d -> ReLU on a conv output's layout."""
    block = nn.Sequential(nn.BatchNorm2d(channels), nn.MaxPool2d(2), nn.ReLU())
    rng = np.random.default_rng(0)
    memory = rng.standard_normal((128, size, size, channels)).astype(np.float32)
    x = cr.from_numpy(memory.transpose(0, 3, 1, 2), requires_grad=True)  # channels last
    upstream = rng.standard_normal((128, channels, size // 2, size // 2)).astype(np.float32)

    def run(forward: Callable[[cr.Tensor], cr.Tensor]) -> None:
        x.grad = None
        forward(x).backward(upstream)

    fused = nn.fuse(block)
    return {"fused": lambda: run(fused), "plain": lambda: run(block)}


def optimizer_runs(kind: str) -> dict[str, Callable[[], object]]:
    rng = np.random.default_rng(0)
    param = cr.tensor(rng.standard_normal(1 << 20).astype(np.float32), requires_grad=True)
    param.grad = rng.standard_normal(1 << 20).astype(np.float32)
    opt = optim.Adam([param]) if kind == "Adam" else optim.SGD([param], lr=0.01, momentum=0.9)

    def whole() -> None:
        saved = kernels.threads.MIN_ELEMENTS
        kernels.threads.MIN_ELEMENTS = 1 << 62  # every parameter counts as small: one update
        try:
            opt.step()
        finally:
            kernels.threads.MIN_ELEMENTS = saved

    return {"fused": opt.step, "plain": whole}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    cr.kernels.tune_process()  # freed buffers kept between steps, as a training run has them
    repeats = 5 if args.quick else 15
    print(f"{'case':<58}{'fused':>10}{'plain':>10}{'saved':>8}")
    print("-" * 86)
    cases = [
        ("training step, MLP 8-5-3, batch 4 (engine only)", mlp_step_runs(5, 8, 3, 4), 200,
         1e6, "us"),
        ("training step, MLP 784-50-10, batch 64", mlp_step_runs(50, 784, 10, 64), 50,
         1e6, "us"),
        ("BatchNorm2d+MaxPool2d+ReLU fwd+bwd, 32 ch 28x28", conv_block_runs(32, 28), 1,
         1e3, "ms"),
        ("BatchNorm2d+MaxPool2d+ReLU fwd+bwd, 64 ch 14x14", conv_block_runs(64, 14), 1,
         1e3, "ms"),
        ("SGD (momentum) step, one parameter of 2^20", optimizer_runs("SGD"), 3, 1e3, "ms"),
        ("Adam step, one parameter of 2^20", optimizer_runs("Adam"), 3, 1e3, "ms"),
    ]
    for label, runs, inner, scale, unit in cases:
        result = interleaved(runs, repeats, inner)
        fused, plain = result["fused"] * scale, result["plain"] * scale
        print(f"{label:<58}{fused:>8.1f}{unit}{plain:>8.1f}{unit}"
              f"{1 - fused / plain:>8.0%}", flush=True)


if __name__ == "__main__":
    main()
