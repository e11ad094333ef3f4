"""Time forward + backward of chainrule's RNN, GRU and LSTM against torch.nn's, in one run.

    python benchmarks/recurrent.py                      # batch 100, length 40, 128 -> 128
    python benchmarks/recurrent.py --repeats 31 --layers 2 --bidirectional
    python benchmarks/recurrent.py --batch 8 --length 5 --repeats 3   # a quick smoke run

Both layers hold the same weights (chainrule's state dict loaded into the torch twin), get the
same float32 input (which takes a gradient, as below an embedding) and the same output
gradient. The process is tuned as the ``chainrule`` command tunes its own
(``cr.kernels.tune_process()``: freed buffers kept), and OpenBLAS's threads spin briefly
(``OPENBLAS_THREAD_TIMEOUT=4`` unless set): with OpenBLAS's long default spin, its idle
threads hold the cores that torch's threads need next, and torch's times are several times
worse. Repeats alternate (chainrule, torch, chainrule, ...) so that drift in a shared
machine's speed hits both; the table gives medians and chainrule's time over torch's. The
issue's target: GRU at the default size within 1.0x torch.nn.GRU.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

# OpenBLAS reads its spin time once, when NumPy loads it: set before the imports.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import chainrule as cr  # noqa: E402
from chainrule import nn  # noqa: E402
from chainrule.kernels import num_threads  # noqa: E402

LAYERS = {"RNN": (nn.RNN, torch.nn.RNN), "GRU": (nn.GRU, torch.nn.GRU),
          "LSTM": (nn.LSTM, torch.nn.LSTM)}


def chainrule_step(layer: nn.Module, x: np.ndarray, grad: np.ndarray) -> Callable[[], None]:
    def step() -> None:
        for param in layer.parameters():
            param.grad = None
        inputs = cr.tensor(x, requires_grad=True)
        output, _ = layer(inputs)
        output.backward(grad)
    return step


def torch_step(layer: torch.nn.Module, x: np.ndarray, grad: np.ndarray) -> Callable[[], None]:
    upstream = torch.from_numpy(grad)

    def step() -> None:
        layer.zero_grad(set_to_none=True)
        inputs = torch.tensor(x, requires_grad=True)
        output, _ = layer(inputs)
        output.backward(upstream)
    return step


def timed(step: Callable[[], None]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def agree(ours: nn.Module, theirs: torch.nn.Module, x: np.ndarray) -> float:
    """The largest difference between the two layers' outputs (float32 rounding only)."""
    with cr.no_grad(), torch.no_grad():
        return float(np.max(np.abs(ours(cr.tensor(x))[0].data
                                   - theirs(torch.from_numpy(x))[0].numpy())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--length", type=int, default=40)
    parser.add_argument("--input", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--bidirectional", action="store_true")
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per library")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs per library first")
    parser.add_argument("--only", choices=tuple(LAYERS), nargs="*", default=list(LAYERS))
    args = parser.parse_args()
    cr.kernels.tune_process()  # freed buffers kept between steps, as a training run has them

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.length, args.batch, args.input)).astype(np.float32)
    print(f"forward + backward, input (L={args.length}, N={args.batch}, H_in={args.input}), "
          f"hidden {args.hidden}, {args.layers} layer(s)"
          f"{', bidirectional' if args.bidirectional else ''}; float32; medians of "
          f"{args.repeats} interleaved repeats")
    print(f"threads: chainrule {num_threads()}, torch {torch.get_num_threads()}; "
          f"OPENBLAS_THREAD_TIMEOUT={os.environ.get('OPENBLAS_THREAD_TIMEOUT')}; "
          f"numpy {np.__version__}, torch {torch.__version__}, {platform.machine()}")
    print(f"{'layer':<6} {'chainrule ms':>13} {'torch ms':>9} {'ratio':>6}  max |diff|")
    for name in args.only:
        make, make_torch = LAYERS[name]
        ours = make(args.input, args.hidden, args.layers, bidirectional=args.bidirectional,
                    generator=np.random.default_rng(1))
        theirs = make_torch(args.input, args.hidden, args.layers,
                            bidirectional=args.bidirectional)
        theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
        directions = 2 if args.bidirectional else 1
        grad = rng.standard_normal((args.length, args.batch, directions * args.hidden)
                                   ).astype(np.float32)
        steps = (chainrule_step(ours, x, grad), torch_step(theirs, x, grad))
        for _ in range(args.warmup):
            for step in steps:
                step()
        times: tuple[list[float], list[float]] = ([], [])
        for _ in range(args.repeats):
            for step, kept in zip(steps, times):
                kept.append(timed(step))
        mine, reference = (statistics.median(t) * 1e3 for t in times)
        print(f"{name:<6} {mine:>13.1f} {reference:>9.1f} {mine / reference:>5.2f}x  "
              f"{agree(ours, theirs, x):.1e}")


if __name__ == "__main__":
    main()
