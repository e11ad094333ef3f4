"""Matrix products on a small GPT's and GRU's shapes: NumPy's BLAS, PyTorch's, chainrule's.

    python benchmarks/blas.py                 # float32, 2 threads, 300 repeats
    python benchmarks/blas.py --threads 1 --repeats 500

chainrule's column is ``kernels.matmul``: MKL where ``pip install "chainrule[mkl]"`` put it
(kernels/mkl.py), NumPy otherwise (the table says which). The three run in turn on each
repeat, so drift in the machine's speed reaches all of them alike; the table gives medians
in microseconds and the ratios to PyTorch.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import chainrule as cr  # noqa: E402
from chainrule import kernels  # noqa: E402
from chainrule.kernels import mkl  # noqa: E402

#: (m, k, n): the GPT's forward and weight-gradient products, then the GRU's step products
SHAPES = [(768, 128, 384), (768, 128, 128), (768, 128, 512), (768, 512, 128),
          (128, 768, 384), (512, 768, 128), (100, 128, 384), (100, 384, 128)]


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()
    os.environ["CHAINRULE_NUM_THREADS"] = str(args.threads)
    cr.kernels.tune_process()
    torch.set_num_threads(args.threads)
    control = kernels.blas_threads()
    if control is not None:
        control[1](args.threads)
    mkl.set_threads(args.threads)
    rng = np.random.default_rng(0)
    who = "MKL" if mkl.available() else "NumPy (no mkl wheel)"
    print(f"float32, {args.threads} thread(s), medians of {args.repeats} interleaved repeats, "
          f"microseconds; chainrule multiplies with {who}")
    print(f"{'m, k, n':<16}{'NumPy':>8}{'PyTorch':>9}{'chainrule':>11}{'NumPy/PT':>10}"
          f"{'cr/PT':>8}")
    for m, k, n in SHAPES:
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        runs = {"numpy": lambda: kernels.matmul_reference(a, b), "torch": lambda: ta @ tb,
                "chainrule": lambda: kernels.matmul(a, b)}
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.repeats):
            for name, run in runs.items():
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
        med = {name: statistics.median(t) * 1e6 for name, t in times.items()}
        print(f"{f'{m}, {k}, {n}':<16}{med['numpy']:>8.0f}{med['torch']:>9.0f}"
              f"{med['chainrule']:>11.0f}{med['numpy'] / med['torch']:>10.2f}"
              f"{med['chainrule'] / med['torch']:>8.2f}")


if __name__ == "__main__":
    main()
