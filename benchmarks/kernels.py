"""Each compiled kernel against its NumPy reference, at the shapes the recipes give it.

    python benchmarks/kernels.py              # every kernel, 200 calls each
    python benchmarks/kernels.py --calls 50   # quicker
    python benchmarks/kernels.py --only softmax

For each kernel the script builds one set of inputs (float32, the shapes of the cnn recipe's
first block at batch 128, of the GPT of benchmarks/gpt_shakespeare.py: 12 x 64 tokens, n_embd
128, 4 heads; and of a GRU/LSTM step at batch 100, hidden 128), compiles the loops once, then
calls the kernel, its reference and, where it is another function, the NumPy path that runs
without numba (blocked passes over threads), ``--calls`` times each, the order rotating, on
fresh copies of the inputs for kernels that work in place. The table gives the medians in
microseconds; the kernel's result is checked against the reference's first (within rounding).
The process runs with ``OPENBLAS_THREAD_TIMEOUT=4`` unless set, as the other benchmarks.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

# OpenBLAS reads its spin time once, when NumPy loads it: the short spin the other benchmarks
# and `chainrule train`'s conv runs use, so that a reference's OpenBLAS product does not leave
# its threads spinning on the cores the next kernel needs.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np  # noqa: E402

import chainrule as cr  # noqa: E402
from chainrule import kernels  # noqa: E402

Case = tuple[str, str, Callable[[], tuple], bool]  # name, kernel, make arguments, in place


def cases(rng: np.random.Generator) -> list[Case]:
    """The kernels and their inputs (a function, so each in-place call gets fresh arrays)."""
    f32 = np.float32

    def normal(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(f32)

    tokens, embd, heads = 12 * 64, 128, 4
    hidden = normal(tokens, 4 * embd)
    x, grad = normal(tokens, embd), normal(tokens, embd)
    weight, bias = normal(embd), normal(embd)
    _, mean_x, inv_std = kernels.layer_norm_reference(x, weight, bias, 1e-5)
    scores = normal(12, heads, 64, 64)
    probs = kernels.softmax_columns_reference(scores.copy(), 0.17, True)
    d_probs = normal(12, heads, 64, 64)
    index = rng.integers(0, 66, tokens)
    logits = normal(tokens, 66) * f32(3)
    params = [normal(800_000) for _ in range(3)]
    v = np.abs(normal(800_000))
    out = normal(tokens, 3 * embd)
    row = normal(3 * embd)
    row512 = normal(4 * embd)
    batch, h = 100, 128
    gru_acts, gru_gh = normal(3, batch, h), normal(batch, 3 * h)
    lstm_acts, lstm_gh = normal(4, batch, h), normal(batch, 4 * h)

    def state() -> np.ndarray:
        return normal(batch, h)

    gru_state = [state() for _ in range(3)]
    lstm_state = [state() for _ in range(4)]
    b_hn = normal(h)
    # the cnn recipe's first block: (128, 28, 28, 32) channels-last after a 3x3 conv
    images = normal(128, 28, 28, 32)
    sign = np.ones(32, f32)
    best, larger = kernels.signed_window_max(images, sign, (2, 2), (2, 2), (14, 14))
    mean, b, c = normal(32), normal(32), normal(32)
    pooled = normal(128, 14, 14, 32)
    conv_grad, conv_weights = normal(128 * 14 * 14, 64), normal(64, 9 * 32)
    return [
        ("mean_and_variance (100352, 32)", "mean_and_variance",
         lambda: (images.reshape(-1, 32),), False),
        ("normalise (25088, 32)", "normalise",
         lambda: (pooled.reshape(-1, 32), mean, b, c), False),
        ("signed_window_max 2x2 (128, 28, 28, 32)", "signed_window_max",
         lambda: (images, sign, (2, 2), (2, 2), (14, 14)), False),
        ("pooled_input_grad 2x2 (128, 28, 28, 32)", "pooled_input_grad",
         lambda: (images, mean, b, c, pooled, larger, (2, 2), (2, 2), (14, 14)), False),
        ("conv_input_grad 3x3, 64 -> 32, 128x14x14", "conv_input_grad",
         lambda: (conv_grad, conv_weights, (128, 16, 16, 32), (3, 3), (1, 1), (1, 1),
                  (14, 14), 1), False),
        ("gelu tanh (768, 512)", "gelu", lambda: (hidden, "tanh"), False),
        ("gelu_grad tanh (768, 512)", "gelu_grad", lambda: (hidden, hidden, "tanh"), False),
        ("bias_gelu (768, 512)", "bias_gelu", lambda: (hidden.copy(), row512), False),
        ("bias_gelu_grad (768, 512)", "bias_gelu_grad", lambda: (hidden, hidden), False),
        ("layer_norm (768, 128)", "layer_norm", lambda: (x, weight, bias, 1e-5), False),
        ("layer_norm_grad (768, 128)", "layer_norm_grad",
         lambda: (grad, x, mean_x, inv_std, weight, True, True, True), False),
        ("softmax_columns causal (12, 4, 64, 64)", "softmax_columns",
         lambda: (scores.copy(), 0.17, True), True),
        ("softmax_columns_grad (12, 4, 64, 64)", "softmax_columns_grad",
         lambda: (d_probs.copy(), probs, 0.17), True),
        ("cross_entropy_rows (768, 66)", "cross_entropy_rows",
         lambda: (logits, index), False),
        ("scatter_add_rows (66, 128) <- 768 rows", "scatter_add_rows",
         lambda: (np.zeros((66, embd), f32), index, x), True),
        ("add_bias (768, 384)", "add_bias", lambda: (out.copy(), row), True),
        ("adam_update 800,000", "adam_update",
         lambda: (params[0].copy(), params[1], params[2].copy(), v.copy(), 1e-3, 0.9, 0.99,
                  1e-8, 0.1, True, 3), True),
        ("sgd_update momentum nesterov 800,000", "sgd_update",
         lambda: (params[0].copy(), params[1], params[2].copy(), 1e-2, 0.9, 0.0, 1e-4, True,
                  False), True),
        ("gru_step (100, 128)", "gru_step",
         lambda: (gru_acts, gru_gh, b_hn, *gru_state), True),
        ("lstm_step (100, 128)", "lstm_step",
         lambda: (lstm_acts, lstm_gh, *lstm_state), True),
    ]


def time_all(functions: list[Callable], make: Callable[[], tuple], calls: int) -> list[float]:
    """Medians (us) of ``calls`` calls of each function, the order rotating every round."""
    times: list[list[float]] = [[] for _ in functions]
    for i in range(calls + 3):
        for k in range(len(functions)):
            which = (i + k) % len(functions)
            args = make()
            start = time.perf_counter()
            functions[which](*args)
            took = time.perf_counter() - start
            if i >= 3:  # the first calls warm caches and allocators
                times[which].append(took)
    return [statistics.median(t) * 1e6 for t in times]


def agree(fast: Callable, plain: Callable, make: Callable[[], tuple], in_place: bool) -> None:
    """The kernel's result against the reference's, within float32 rounding."""
    fast_args, plain_args = make(), make()
    a, b = fast(*fast_args), plain(*plain_args)
    if in_place:
        a, b = fast_args, plain_args
    for x, y in zip(a if isinstance(a, (tuple, list)) else [a],
                    b if isinstance(b, (tuple, list)) else [b]):
        if isinstance(x, np.ndarray):
            np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)


def main(argv: list[str] | None = None) -> list[tuple[str, float, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200, help="calls of each (default 200)")
    parser.add_argument("--only", default="", help="run the kernels whose name has this")
    args = parser.parse_args(argv)
    if args.calls < 1:
        parser.error("--calls must be at least 1")
    cr.kernels.tune_process()
    if kernels.backend() != "numba":
        sys.exit("benchmarks/kernels.py: the compiled kernels are off (numba missing, or "
                 "CHAINRULE_KERNELS=numpy): there is nothing to compare")
    rows = []
    print(f"compiled kernels against their NumPy references: medians of {args.calls} calls "
          f"each, alternating; float32; numpy {np.__version__}, {platform.machine()}, "
          f"{kernels.num_threads()} threads")
    print(f"{'kernel':42s} {'compiled us':>12s} {'reference us':>13s} {'ratio':>7s} "
          f"{'NumPy path us':>14s}")
    print("-" * 92)
    for label, name, make, in_place in cases(np.random.default_rng(0)):
        if args.only not in label:
            continue
        fast, plain = getattr(kernels, name), getattr(kernels, f"{name}_reference")
        agree(fast, plain, make, in_place)  # also compiles the loops before timing
        # what runs without numba, where it is not the plain reference (blocked passes)
        fallback = getattr(fast, "reference", plain)
        functions = [fast, plain] + ([fallback] if fallback is not plain else [])
        medians = time_all(functions, make, args.calls)
        compiled, reference = medians[:2]
        rows.append((label, compiled, reference))
        path = f"{medians[2]:14.1f}" if len(medians) > 2 else f"{'(reference)':>14s}"
        print(f"{label:42s} {compiled:12.1f} {reference:13.1f} {compiled / reference:7.2f} "
              f"{path}")
    print("-" * 92)
    print("ratio: compiled / reference time (below 1: the compiled kernel is faster); NumPy "
          "path: what runs without numba, where that is not the reference itself")
    print("command: python benchmarks/kernels.py" + "".join(f" {a}" for a in (argv or
                                                                             sys.argv[1:])))
    return rows


if __name__ == "__main__":
    main()
