"""Train the same conv net in chainrule and in PyTorch eager, in one run; print epoch times.

    python benchmarks/conv_speed.py                      # bundled MNIST sample, cnn recipe
    python benchmarks/conv_speed.py --dataset fashion-mnist --repeats 2
    python benchmarks/conv_speed.py --profile            # and where chainrule's time goes

Both libraries start from identical weights (the torch model is chainrule's converted by
chainrule.check.parity.to_torch), see the same batches in the same order, use AdamW with the
same settings and the same number of threads. Epochs alternate (chainrule, torch, chainrule,
torch, ...) so that drift in a shared machine's speed hits both; the table reports medians.
Dropout masks differ (each library draws its own), so losses agree only roughly.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

# OpenBLAS reads its spin time once, when NumPy loads it: these figures are taken with the
# short spin that pays for conv training (docs/kernels.md), so it is set before the imports.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np

import chainrule as cr
from chainrule import models, nn, optim
from chainrule.check.parity import to_torch
from chainrule.data import DataLoader, load_dataset, transforms
from chainrule.kernels import num_threads
from chainrule.nn import functional as F
from chainrule.profiler import profile


def batches(name: str, batch_size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """One epoch of normalised (N, 1, 28, 28) float32 batches, shuffled with a fixed seed."""
    splits = load_dataset(name)
    pixels = np.asarray(splits.train.x, np.float32) / 255
    mean, std = float(pixels.mean()), float(pixels.std())
    loader = DataLoader(splits.train, batch_size=batch_size, shuffle=True, seed=0,
                        drop_last=True,
                        transform=transforms.Compose([transforms.ToFloat(),
                                                      transforms.Normalize(mean, std),
                                                      transforms.AddChannel()]))
    return [(np.ascontiguousarray(getattr(x, "data", x)), np.asarray(getattr(y, "data", y)))
            for x, y in loader]


def chainrule_epoch(model, optimizer, data) -> tuple[float, float]:
    """(seconds, mean loss) of one training epoch in chainrule."""
    model.train()
    total = 0.0
    start = time.perf_counter()
    for x, y in data:
        loss = F.cross_entropy(model(cr.from_numpy(x)), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item()
    return time.perf_counter() - start, total / len(data)


def torch_epoch(torch, model, optimizer, data) -> tuple[float, float]:
    """(seconds, mean loss) of one training epoch in PyTorch eager."""
    model.train()
    total = 0.0
    start = time.perf_counter()
    for x, y in data:
        loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x)),
                                                 torch.from_numpy(y).long())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item()
    return time.perf_counter() - start, total / len(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist-sample",
                        choices=("mnist-sample", "mnist", "fashion-mnist"))
    parser.add_argument("--model", default="cnn", choices=("cnn", "resnet"))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3, help="epochs per library")
    parser.add_argument("--profile", action="store_true",
                        help="then profile 20 chainrule steps op by op")
    args = parser.parse_args()
    cr.kernels.tune_process()  # freed buffers kept between steps, as a training run has them

    import torch

    threads = num_threads()
    torch.set_num_threads(threads)
    data = batches(args.dataset, args.batch_size)
    cr.manual_seed(0)
    model = nn.fuse(models.build_model(args.model))  # as chainrule train runs it
    twin = to_torch(model).float()
    ours = optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    theirs = torch.optim.AdamW(twin.parameters(), lr=1e-3, weight_decay=0.01)

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores ({threads} used by each "
          f"library), Python {platform.python_version()}, NumPy {np.__version__}, "
          f"torch {torch.__version__}")
    print(f"model: {args.model}, {sum(p.size for p in model.parameters()):,} parameters; "
          f"{args.dataset}: {len(data)} batches of {args.batch_size} per epoch")
    # One short warm-up each: first calls allocate and load kernels.
    chainrule_epoch(model, ours, data[:3])
    torch_epoch(torch, twin, theirs, data[:3])
    times: dict[str, list[float]] = {"chainrule": [], "torch": []}
    print(f"{'epoch':>5} {'library':>10} {'seconds':>9} {'loss':>8}")
    for repeat in range(args.repeats):
        for name in ("chainrule", "torch"):
            if name == "chainrule":
                seconds, loss = chainrule_epoch(model, ours, data)
            else:
                seconds, loss = torch_epoch(torch, twin, theirs, data)
            times[name].append(seconds)
            print(f"{repeat + 1:>5} {name:>10} {seconds:>9.2f} {loss:>8.4f}", flush=True)
    ours_s, theirs_s = (statistics.median(times[k]) for k in ("chainrule", "torch"))
    print(f"\nmedian epoch: chainrule {ours_s:.2f} s, torch {theirs_s:.2f} s; "
          f"ratio chainrule / torch = {ours_s / theirs_s:.2f} (target <= 1.0)")

    if args.profile:
        steps = data[:20]
        with profile() as prof:
            chainrule_epoch(model, ours, steps)
        print(f"\nchainrule, per training step (batch {args.batch_size}):")
        print(prof.table(per=len(steps)))


if __name__ == "__main__":
    main()
