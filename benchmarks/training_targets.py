"""Check the training targets end to end, printing a table.

    python benchmarks/training_targets.py                 # default `chainrule train` (sample)
    python benchmarks/training_targets.py --fashion       # also the Fashion-MNIST MLP recipe
    python benchmarks/training_targets.py --cnn           # the conv-net targets (~12 min)
    python benchmarks/training_targets.py --seeds 0 1 2   # repeat with several seeds

Each run is the real command line (`python -m chainrule train ...`) in a fresh process, timed
from start to exit, so start-up and data loading count against the time target. Fashion-MNIST
must be installed (apt-get install dataset-fashion-mnist) or given with CHAINRULE_DATA.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# name, extra flags, accuracy target, seconds target (None: no time target); the CNN's
# Fashion-MNIST limit is on training time (fit), the sample runs' on the whole command.
RUNS = {
    "sample": ("default `chainrule train` on the MNIST sample", [], 0.95, 60.0),
    "fashion": ("MLP 1024-512 on Fashion-MNIST",
                ["--dataset", "fashion-mnist", "--hidden", "1024,512", "--epochs", "20",
                 "--weight-decay", "0.05", "--lr", "2e-3", "--batch-size", "128",
                 "--shift", "0"], 0.885, None),
    "cnn-sample": ("cnn on the MNIST sample", ["--model", "cnn"], 0.98, None),
    "cnn-fashion": ("cnn on Fashion-MNIST (fit <= 10 min)",
                    ["--model", "cnn", "--dataset", "fashion-mnist", "--flip"], 0.93, 600.0),
}
FIT_LIMITED = {"cnn-fashion"}


def run(flags: list[str], seed: int) -> tuple[float, float, float]:
    """(test accuracy, wall seconds of the whole command, seconds spent in fit)."""
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "chainrule", "train", "--no-progress", "--seed",
                   str(seed), "--out", out, *flags]
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        metrics = json.loads((Path(out) / "metrics.json").read_text())
    return metrics["test"]["accuracy"], wall, metrics["train_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fashion", action="store_true", help="also run the Fashion-MNIST MLP")
    parser.add_argument("--cnn", action="store_true",
                        help="run the conv-net targets (sample and Fashion-MNIST) instead")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    names = ["sample", "fashion"] if args.fashion else ["sample"]
    if args.cnn:
        names = ["cnn-sample", "cnn-fashion"]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")
    header = f"{'run':<48} {'seed':>4} {'test acc':>9} {'target':>7} {'wall s':>7} " \
             f"{'fit s':>6} {'limit':>6}  ok"
    print(header)
    print("-" * len(header))
    failures = 0
    for name in names:
        title, flags, accuracy_target, seconds_target = RUNS[name]
        for seed in args.seeds:
            accuracy, wall, fit = run(flags, seed)
            timed = fit if name in FIT_LIMITED else wall
            ok = accuracy >= accuracy_target and (seconds_target is None or timed < seconds_target)
            failures += not ok
            limit = f"{seconds_target:.0f}" if seconds_target else "-"
            print(f"{title:<48} {seed:>4} {accuracy:>9.4f} {accuracy_target:>7.3f} "
                  f"{wall:>7.1f} {fit:>6.1f} {limit:>6}  {'yes' if ok else 'NO'}", flush=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
