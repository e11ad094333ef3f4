"""The engine's own cost: graphs so small that NumPy's arithmetic is nothing and the tape is all.

    python benchmarks/engine_overhead.py            # ~30 s on 2 cores
    python benchmarks/engine_overhead.py --quick    # fewer repeats

Rows, in one process with repeats interleaved (medians), chainrule beside PyTorch eager and,
where it can be written, hand NumPy (the lesson's forward and backward written out, no tape):

- a training step of an 8-5-3 MLP on a batch of 4 (matmuls, bias, ReLU, cross-entropy,
  backward, an SGD update under no_grad), written with tensor ops only, so it runs unchanged
  on any chainrule tree: ``PYTHONPATH=<tree>/src python benchmarks/engine_overhead.py``
  compares two trees through their ratios to PyTorch and NumPy in each run;
- 20 chained multiplications of 3 numbers and their backward: per-op cost, forward and back;
- entering and leaving a ``no_grad`` block.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")  # as the other benchmarks run

import numpy as np
import torch
from suite import interleaved  # same folder: the suite's interleaved, median timing

import chainrule as cr
from chainrule.nn import functional as F

RNG = np.random.default_rng(0)
X = RNG.standard_normal((4, 8)).astype(np.float32)
Y = RNG.integers(0, 3, 4)
SHAPES = [(8, 5), (5,), (5, 3), (3,)]
START = [RNG.standard_normal(shape).astype(np.float32) * 0.3 for shape in SHAPES]
LR = 0.01


def tiny_step_runs() -> tuple[dict[str, object], object]:
    """One SGD step of the 8-5-3 MLP in each library, from the same weights."""
    ours = [cr.tensor(w.copy(), requires_grad=True) for w in START]
    theirs = [torch.tensor(w.copy(), requires_grad=True) for w in START]
    hand = [w.copy() for w in START]
    x, y = cr.tensor(X), Y
    tx, ty = torch.from_numpy(X), torch.from_numpy(Y)

    def chainrule_step() -> None:
        w1, b1, w2, b2 = ours
        loss = F.cross_entropy((x @ w1 + b1).relu() @ w2 + b2, y)
        loss.backward()
        with cr.no_grad():
            for w in ours:
                w.data -= LR * w.grad
                w.grad = None

    def torch_step() -> None:
        w1, b1, w2, b2 = theirs
        loss = torch.nn.functional.cross_entropy((tx @ w1 + b1).relu() @ w2 + b2, ty)
        loss.backward()
        with torch.no_grad():
            for w in theirs:
                w -= LR * w.grad
                w.grad = None

    def numpy_step() -> None:
        w1, b1, w2, b2 = hand
        pre = X @ w1 + b1
        hidden = np.maximum(pre, 0)
        logits = hidden @ w2 + b2
        shifted = logits - logits.max(axis=1, keepdims=True)
        probs = np.exp(shifted)
        probs /= probs.sum(axis=1, keepdims=True)
        probs[np.arange(len(Y)), Y] -= 1  # d loss / d logits, times the batch size
        d_logits = probs / len(Y)
        d_hidden = (d_logits @ w2.T) * (pre > 0)
        grads = [X.T @ d_hidden, d_hidden.sum(axis=0), hidden.T @ d_logits, d_logits.sum(axis=0)]
        for w, g in zip(hand, grads):
            w -= LR * g

    def same_weights() -> None:
        """Every runner has taken as many steps: the three must hold the same weights."""
        for mine, torch_w, numpy_w in zip(ours, theirs, hand):
            np.testing.assert_allclose(mine.data, torch_w.detach().numpy(), rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(mine.data, numpy_w, rtol=1e-4, atol=1e-5)

    runs = {"chainrule": chainrule_step, "torch": torch_step, "numpy": numpy_step}
    return runs, same_weights


def chain_runs(length: int = 20) -> dict[str, object]:
    a = cr.tensor(np.ones(3, np.float32), requires_grad=True)
    ta = torch.ones(3, requires_grad=True)

    def ours() -> None:
        b = a
        for _ in range(length):
            b = b * 1.0
        b.sum().backward()

    def theirs() -> None:
        b = ta
        for _ in range(length):
            b = b * 1.0
        b.sum().backward()

    return {"chainrule": ours, "torch": theirs}


def no_grad_runs() -> dict[str, object]:
    def ours() -> None:
        with cr.no_grad():
            pass

    def theirs() -> None:
        with torch.no_grad():
            pass

    return {"chainrule": ours, "torch": theirs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    torch.set_num_threads(1)  # nothing here is big enough for a second thread
    repeats = 5 if args.quick else 21
    print(f"{'case':<50}{'chainrule':>11}{'torch':>11}{'numpy':>11}{'cr/torch':>10}"
          f"{'cr/numpy':>10}")
    print("-" * 103)
    steps, same_weights = tiny_step_runs()
    cases = [("training step, MLP 8-5-3, batch 4", steps, 500),
             ("20 chained multiplies, forward and backward", chain_runs(), 300),
             ("a no_grad block, entered and left", no_grad_runs(), 20000)]
    for label, runs, inner in cases:
        result = {name: seconds * 1e6 for name, seconds in
                  interleaved(runs, repeats, inner).items()}
        if runs is steps:
            same_weights()  # the three timed the same computation
        ours, theirs, hand = result["chainrule"], result["torch"], result.get("numpy")
        print(f"{label:<50}{ours:>9.2f}us{theirs:>9.2f}us"
              + (f"{hand:>9.2f}us" if hand is not None else f"{'-':>11}")
              + f"{ours / theirs:>10.2f}"
              + (f"{ours / hand:>10.2f}" if hand is not None else f"{'-':>10}"), flush=True)


if __name__ == "__main__":
    main()
