"""The command line: ``chainrule train``, ``evaluate``, ``lr-find`` and ``check``.

Every expected failure -- a bad flag, missing or damaged data, a checkpoint that does not fit,
a folder that cannot be written, a diverging run -- is reported in a line or two on stderr with a
non-zero exit status (2 for bad usage, 1 for the rest, 130 when interrupted), never as a
traceback; ``--debug`` (or ``CHAINRULE_DEBUG=1``) shows the traceback too.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import math
import os
import shlex
import shutil
import signal
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from chainrule import io, kernels, models, nn, optim
from chainrule.check.sentinel import NonFiniteError, SentinelCallback
from chainrule.data import ArrayDataset, DataLoader, Splits, load_dataset, transforms
from chainrule.engine import backend
from chainrule.train import (
    CheckpointCallback,
    LayerStats,
    Learner,
    ProgressBar,
    TrainingDiverged,
    check_fits,
    plot_loss_curves,
    plot_lr_find,
)

DATASETS = ("mnist-sample", "mnist", "fashion-mnist")
OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("onecycle", "cosine", "step", "none")
# Config keys added in later versions, with the value that means what older runs did.
CONFIG_ADDED: dict[str, Any] = {"flip": False, "valid_split": 0.0}
# Per-model defaults for the flags left unset: what each recipe was tuned with (see README).
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "mlp": {"epochs": 12, "lr": 3e-3, "batch_size": 64, "weight_decay": 0.05, "shift": 2,
            "hidden": [512, 256]},
    "cnn": {"epochs": 15, "lr": 3e-3, "batch_size": 128, "weight_decay": 0.01, "shift": 1,
            "hidden": [128], "channels": [32, 64], "dropout": 0.1},
    "resnet": {"epochs": 15, "lr": 3e-3, "batch_size": 128, "weight_decay": 0.01, "shift": 1,
               "channels": [16, 32, 64]},
}
#: the files ``chainrule train`` writes into --out; finding any of them there means a run
RUN_FILES = ("checkpoint.safetensors", "model.safetensors", "metrics.json", "loss_curve.png",
             "layer_stats.png", "layer_histograms.png")
_HOLD_OUT_TAG = 0x5641  # "VA": the validation split's own random stream
_MAX_WIDTH = 1 << 20  # a layer wider than this is a typo (or an attack), not a model
_MAX_BATCH = 1 << 24


class UsageError(Exception):
    """A problem with what the user asked for; the CLI prints it and exits with status 2."""


# ---------------------------------------------------------------------------- argument types
def _integer(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type for whole numbers in [low, high], with a message that says so."""
    if high is not None:
        wanted = f"a whole number from {low} to {high}"
    else:
        wanted = {0: "zero or a positive whole number", 1: "a positive integer"}.get(
            low, f"a whole number of at least {low}")

    def parse(text: str) -> int:
        try:
            value = int(text.strip(), 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text}")
        return value

    parse.__name__ = "integer"
    return parse


def _real(low: float, high: float = math.inf, low_open: bool = False,
          high_open: bool = False, wanted: str = "") -> Callable[[str], float]:
    """An argparse type for finite numbers in a range (NaN and inf never pass)."""
    if not wanted:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        wanted = f"a number in {left}{low:g}, {high:g}{right}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        inside = (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high)
        if not math.isfinite(value) or not inside:
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


_positive_int = _integer(1)
_positive_float = _real(0.0, low_open=True, high_open=True, wanted="a positive number")
_non_negative_float = _real(0.0, high_open=True, wanted="zero or more (a finite number)")
_seed = _integer(0, 2**63 - 1)


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be comma-separated layer widths such as 256,128, got {text!r}") from None
    if not sizes:
        raise argparse.ArgumentTypeError(
            f"must name at least one width, such as 256,128; got {text!r}")
    if any(size <= 0 or size > _MAX_WIDTH for size in sizes):
        raise argparse.ArgumentTypeError(
            f"layer widths must lie in 1..{_MAX_WIDTH}, got {text!r}")
    return sizes


_sizes.__name__ = "widths"


def _shape(text: str) -> tuple[int, ...]:
    """An input shape for ``chainrule check``: comma-separated positive sizes."""
    try:
        shape = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be an array shape such as 8,3 (sizes separated by commas), got {text!r}"
        ) from None
    if not shape or any(size <= 0 for size in shape):
        raise argparse.ArgumentTypeError(f"must be an array shape of positive sizes such as "
                                         f"8,3, got {text!r}")
    if math.prod(shape) > _MAX_CHECKED:
        raise argparse.ArgumentTypeError(
            f"must have at most {_MAX_CHECKED:,} elements (finite differences over more take "
            f"too long), got {text!r}")
    return shape


_shape.__name__ = "widths"  # the same kind of flag for the tests that sweep them
_MAX_CHECKED = 1 << 20


# ---------------------------------------------------------------------------- the parser
def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``chainrule`` command."""
    # On every subcommand too, so `chainrule train --debug` works; SUPPRESS keeps a subcommand
    # from resetting a `chainrule --debug train` to False.
    debug = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the traceback of an error (also CHAINRULE_DEBUG=1)")
    # allow_abbrev=False: "--over" for --overwrite would make the printed resume command wrong.
    parser = argparse.ArgumentParser(
        prog="chainrule", allow_abbrev=False,
        description="Train and evaluate neural networks with chainrule (NumPy, CPU). "
                    "Every gradient is hand-derived and checked against PyTorch.",
        epilog="Example: chainrule train --epochs 3 --out runs/quick   "
               "|  chainrule evaluate runs/quick/checkpoint.safetensors",
    )
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error (also CHAINRULE_DEBUG=1)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train = commands.add_parser(
        "train", parents=[debug], allow_abbrev=False,
        help="train a model (default: an MLP on the bundled MNIST sample)",
        description="Train a model and write checkpoint, weights, metrics JSON and a loss "
                    "curve into --out. Runs offline on the bundled MNIST sample by default. "
                    "A folder that already holds a run is never overwritten silently: give "
                    "--resume to continue it or --overwrite to start it over.")
    _data_arguments(train)
    _model_arguments(train)
    train.add_argument("--epochs", type=_positive_int, default=None,
                       help="passes over the training set (default: mlp 12, cnn 15, "
                            "resnet 15)")
    train.add_argument("--lr", type=_positive_float, default=None,
                       help="peak learning rate (default: 0.003)")
    train.add_argument("--batch-size", type=_integer(1, _MAX_BATCH), default=None,
                       help="samples per optimizer step (default: mlp 64, cnn and resnet 128)")
    train.add_argument("--optimizer", choices=OPTIMIZERS, default="adamw",
                       help="optimizer (default: %(default)s)")
    train.add_argument("--weight-decay", type=_non_negative_float, default=None,
                       help="weight decay (default: mlp 0.05, cnn and resnet 0.01)")
    train.add_argument("--schedule", choices=SCHEDULES, default="onecycle",
                       help="learning-rate schedule, stepped every batch (default: %(default)s)")
    train.add_argument("--shift", type=_integer(0, 4), default=None, metavar="PIXELS",
                       help="augment: move each training image by up to this many pixels, "
                            "0 to 4 (default: mlp 2, cnn and resnet 1)")
    train.add_argument("--flip", action="store_true",
                       help="augment: mirror half the training images left-right (for "
                            "clothes, not digits)")
    train.add_argument("--valid-split", type=_real(0.0, 1.0, high_open=True), default=0.0,
                       metavar="FRACTION",
                       help="hold out this fraction of the training set (chosen by --seed) "
                            "and report each epoch's loss and accuracy on it; the test split "
                            "is then used once, at the end. With 0 (the default) each epoch "
                            "is reported on the test split, labelled test_")
    train.add_argument("--seed", type=_seed, default=0,
                       help="seed for init, shuffling, augmentation and the validation split "
                            "(default: %(default)s)")
    train.add_argument("--out", type=Path, default=None,
                       help="output folder (default: runs/DATASET-MODEL)")
    again = train.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its checkpoint.safetensors (a new "
                            "run if the folder holds none)")
    again.add_argument("--overwrite", action="store_true",
                       help="start over in an --out that holds an earlier run, replacing its "
                            "files")
    train.add_argument("--no-progress", action="store_true",
                       help="no progress bar (a line per epoch is still printed)")
    train.add_argument("--stats", action="store_true",
                       help="record per-layer activation and gradient statistics and write "
                            "layer_stats.png and layer_histograms.png into --out")
    train.add_argument("--sentinel", action="store_true",
                       help="stop at the first op or layer that produces NaN/inf, naming it "
                            "(slower)")

    evaluate = commands.add_parser(
        "evaluate", parents=[debug], allow_abbrev=False,
        help="evaluate a checkpoint on its dataset's test split",
        description="Rebuild the model a checkpoint was trained as, load its weights and "
                    "report test loss and accuracy.")
    evaluate.add_argument("checkpoint", type=Path, help="a checkpoint.safetensors file")
    evaluate.add_argument("--data-dir", type=Path, default=None,
                          help="folder holding the dataset's IDX files")
    evaluate.add_argument("--batch-size", type=_integer(1, _MAX_BATCH), default=500)

    finder = commands.add_parser(
        "lr-find", parents=[debug], allow_abbrev=False,
        help="sweep the learning rate and suggest one",
        description="Train briefly with an exponentially growing learning rate, plot loss "
                    "against it, and suggest a rate. The model is thrown away afterwards.")
    _data_arguments(finder)
    _model_arguments(finder)
    finder.add_argument("--batch-size", type=_integer(1, _MAX_BATCH), default=None)
    finder.add_argument("--optimizer", choices=OPTIMIZERS, default="adamw")
    finder.add_argument("--seed", type=_seed, default=0)
    finder.add_argument("--out", type=Path, default=Path("runs/lr-find"),
                        help="where lr_find.png goes, replacing an earlier one (default: "
                             "%(default)s)")
    checker = commands.add_parser(
        "check", parents=[debug], allow_abbrev=False,
        help="verify a Function's or Module's backward pass",
        description="Compare the backward pass of your Function or Module with finite "
                    "differences of its forward, and say what is wrong if they disagree.",
        epilog="TARGET is module.path:Name or path/to/file.py:Name; Name is a Function "
               "subclass, a Module instance or class (built with no arguments), or a function "
               "returning one. Example: chainrule check mylayers.py:Lin --input 8,3")
    checker.add_argument("target", metavar="TARGET", help="what to check, e.g. mylayers.py:Lin")
    checker.add_argument("--input", action="append", type=_shape, default=None,
                         metavar="D1,D2,...",
                         help="shape of a random float64 input; repeat for each input "
                              "(default: the target's example_inputs)")
    checker.add_argument("--wrt", type=_integer(-1000, 1000), action="append", default=None,
                         metavar="INDEX",
                         help="check only this input position (repeat); e.g. leave out a "
                              "float target")
    checker.add_argument("--mode", choices=("auto", "full", "random"), default="auto",
                         help="every element, random directions, or full when small")
    checker.add_argument("--seed", type=_seed, default=0)
    return parser


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", choices=models.recipes(), default="mlp",
                        help="model recipe: mlp (784-512-256-10), cnn (2 conv + BN + pool "
                             "blocks, then 128 hidden) or resnet (3 stages of residual "
                             "blocks) (default: %(default)s)")
    parser.add_argument("--hidden", type=_sizes, default=None, metavar="W1,W2,...",
                        help="hidden widths: the MLP's layers (default 512,256) or the cnn's "
                             "one classifier layer (default 128)")
    parser.add_argument("--channels", type=_sizes, default=None, metavar="C1,C2,...",
                        help="conv widths per stage: cnn (default 32,64) or resnet "
                             "(default 16,32,64)")
    parser.add_argument("--dropout", type=_real(0.0, 1.0, high_open=True), default=None,
                        metavar="P",
                        help="dropout probability in the cnn's classifier (default 0.1)")


def _settings(args: argparse.Namespace) -> None:
    """Fill the flags left unset with the model's defaults; refuse ones it cannot use."""
    defaults = MODEL_DEFAULTS[args.model]
    for name in ("epochs", "lr", "batch_size", "weight_decay", "shift", "hidden", "channels",
                 "dropout"):
        if hasattr(args, name) and getattr(args, name) is None:
            setattr(args, name, defaults.get(name))
    if args.model == "mlp" and args.channels is not None:
        raise UsageError("--channels is for the cnn and resnet models; the mlp takes --hidden")
    if args.model != "cnn" and args.dropout is not None:
        raise UsageError("--dropout is for the cnn model")
    if args.model == "resnet" and args.hidden is not None:
        raise UsageError("--hidden is for the mlp and cnn models; resnet takes --channels")
    if args.model == "cnn" and len(args.channels) > 4:
        raise UsageError(f"--channels: {len(args.channels)} pooling stages halve 28-pixel "
                         "images to nothing; give at most 4 widths")
    if args.model == "cnn" and len(args.hidden) != 1:
        raise UsageError(f"the cnn has one hidden classifier layer: give --hidden one width, "
                         f"got {','.join(map(str, args.hidden))}")
    if args.model in ("mlp", "resnet") and len(args.hidden or args.channels) > 64:
        raise UsageError("give at most 64 layer widths")


def _model_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    if args.model == "mlp":
        return {"hidden": args.hidden}
    if args.model == "cnn":
        return {"channels": args.channels, "hidden": args.hidden[0], "dropout": args.dropout}
    return {"widths": args.channels, "blocks": [1] * len(args.channels)}


def _data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", choices=DATASETS, default="mnist-sample",
                        help="dataset (default: %(default)s, bundled, 8,000 + 2,000 digits)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder holding the dataset's IDX files (then only this folder "
                             "is used)")
    parser.add_argument("--download", action="store_true",
                        help="download the dataset (sha256-checked) if it is not found")


# ---------------------------------------------------------------------------- data
def _splits(name: str, data_dir: Path | None, download: bool) -> Splits:
    """The dataset, with every split it has checked to hold samples."""
    splits = load_dataset(name, root=data_dir, download=download or None)
    for split, part in (("training", splits.train), ("test", splits.test)):
        if len(part) == 0:
            raise ValueError(f"the {split} split of {name} (in {splits.root}) has no samples")
    return splits


def _hold_out(dataset: ArrayDataset, fraction: float, seed: int
              ) -> tuple[ArrayDataset, ArrayDataset | None]:
    """Split off ``fraction`` of ``dataset`` as a validation set, chosen by ``seed``."""
    if not fraction:
        return dataset, None
    n = len(dataset)
    count = round(n * fraction)
    if not 0 < count < n:
        raise ValueError(f"--valid-split {fraction:g} of {n} training samples leaves "
                         f"{count} for validation and {n - count} for training; both need "
                         "at least one")
    order = np.random.default_rng([_HOLD_OUT_TAG, seed]).permutation(n)
    valid, train = np.sort(order[:count]), np.sort(order[count:])
    return (ArrayDataset(dataset.x[train], dataset.y[train]),
            ArrayDataset(dataset.x[valid], dataset.y[valid]))


def _statistics(dataset: ArrayDataset) -> list[float]:
    """Mean and std of the training pixels in [0, 1], for normalisation."""
    pixels = np.asarray(dataset.x, dtype=np.float32) / 255
    std = float(pixels.std())
    if not std > 0:
        raise ValueError("the training images are all the same value (std 0): nothing to learn "
                         "from, and they cannot be normalised")
    return [round(float(pixels.mean()), 4), round(std, 4)]


def _loaders(config: dict[str, Any], splits: Splits, test_batch_size: int = 500
             ) -> tuple[DataLoader, DataLoader | None, DataLoader]:
    """The training, validation (None without a split) and test loaders of a run."""
    mean, std = config["normalize"]
    model = config.get("model", {}).get("name", "mlp")
    layout = transforms.Flatten() if models.input_kind(model) == "flat" else \
        transforms.AddChannel()
    finish = [transforms.ToFloat(), transforms.Normalize(mean, std), layout]
    shift = config.get("shift", 0)
    augment = [transforms.RandomShift(shift)] if shift else []
    if config.get("flip"):
        augment.append(transforms.RandomHorizontalFlip())
    train_part, valid_part = _hold_out(splits.train, config.get("valid_split", 0.0),
                                       config.get("seed", 0))
    train = DataLoader(train_part, batch_size=config.get("batch_size", 64), shuffle=True,
                       seed=config.get("seed", 0), transform=transforms.Compose(augment + finish))
    valid = None if valid_part is None else DataLoader(
        valid_part, batch_size=test_batch_size, transform=transforms.Compose(finish))
    test = DataLoader(splits.test, batch_size=test_batch_size,
                      transform=transforms.Compose(finish))
    return train, valid, test


# ---------------------------------------------------------------------------- pieces
def _optimizer(name: str, parameters: list, lr: float, weight_decay: float) -> Any:
    if name == "sgd":
        return optim.SGD(parameters, lr=lr, momentum=0.9, nesterov=True,
                         weight_decay=weight_decay)
    if name == "adam":
        return optim.Adam(parameters, lr=lr, weight_decay=weight_decay)
    return optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)


def _scheduler(name: str, optimizer: Any, lr: float, total_steps: int) -> Any:
    if name == "onecycle":
        return optim.OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps)
    if name == "cosine":
        return optim.CosineAnnealingLR(optimizer, T_max=total_steps)
    if name == "step":
        return optim.StepLR(optimizer, step_size=max(total_steps // 3, 1), gamma=0.1)
    return None


def _build_model(config: dict[str, Any]) -> Any:
    """The config's model, after checking that this machine can hold it."""
    name, kwargs = config["model"]["name"], config["model"]["kwargs"]
    count = models.parameter_count(name, **kwargs)
    # weights, gradients, two optimizer moments and a copy for the checkpoint, in float32
    need = count * 4 * 5
    memory = _physical_memory()
    if memory and need > 0.8 * memory:
        raise ValueError(f"the {name} model would have {count:,} parameters, needing about "
                         f"{_size(need)} with gradients and optimizer state: more than this "
                         f"machine's {_size(memory)} of memory. Use smaller widths")
    return models.build_model(name, **kwargs)


def _build(config: dict[str, Any], train_batches: int, plain: bool = False
           ) -> tuple[Any, Any, Any]:
    backend.manual_seed(config["seed"])
    model = _runnable(_build_model(config), plain)
    optimizer = _optimizer(config["optimizer"], model.parameters(), config["lr"],
                           config["weight_decay"])
    scheduler = _scheduler(config["schedule"], optimizer, config["lr"],
                           config["epochs"] * train_batches)
    return model, optimizer, scheduler


def _runnable(model: Any, plain: bool = False) -> Any:
    """The model as the CLI runs it: fused (``nn.fuse``: the same state, fewer ops, the same
    numbers to rounding), or ``plain`` when every layer must be seen as itself (--stats,
    --sentinel)."""
    return model if plain else nn.fuse(model)


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def _size(count: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    return ""  # not reached


# ---------------------------------------------------------------------------- the run folder
def _writable_folder(out: Path) -> None:
    """Make ``out`` if need be and check that it can be written, before anything is trained."""
    for place in (out, *out.parents):
        if place.exists() and not place.is_dir():
            where = "is" if place == out else f"lies under {place}, which is"
            raise UsageError(f"--out {out} {where} a file, not a folder; choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".chainrule-write-test"
        io.atomic_write(probe, lambda file: file.write(b"ok"))
        probe.unlink()
    except OSError as error:
        raise UsageError(f"--out {out} cannot be written ({error.strerror or error}); choose "
                         "a folder you can write to") from None


@contextlib.contextmanager
def _run_lock(out: Path) -> Iterator[None]:
    """Hold ``out`` for this run, so that a second ``chainrule train`` into the same folder
    is refused instead of the two runs silently writing over each other's files."""
    lock = out / ".chainrule-train.lock"
    for _ in range(2):
        try:
            handle = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                holder = int(lock.read_text().strip() or 0)
            except (OSError, ValueError):
                holder = 0
            if holder and holder != os.getpid() and io.process_alive(holder):
                raise UsageError(f"--out {out} is in use by another chainrule train (process "
                                 f"{holder}); wait for it, or choose another --out (if no "
                                 f"such run is going on, delete {lock})") from None
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()  # left by a run that was killed: stale
            continue
        with os.fdopen(handle, "w") as file:
            file.write(str(os.getpid()))
        break
    else:
        raise UsageError(f"--out {out}: could not take {lock}; delete it if no run is going on")
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()


def _existing_run(out: Path, resume: bool, overwrite: bool) -> list[str]:
    """The run files already in ``out``; an earlier run is never replaced without --resume
    or --overwrite."""
    existing = [name for name in RUN_FILES if (out / name).exists()]
    checkpoint = out / "checkpoint.safetensors"
    if existing and not (resume or overwrite):
        raise UsageError(
            f"--out {out} already holds a run ({', '.join(existing)}); nothing was changed. "
            "Add --resume to continue it, --overwrite to start it over (its files are "
            "replaced), or choose another --out")
    if resume and existing and not checkpoint.exists():
        raise UsageError(f"--resume: {out} holds {', '.join(existing)} but no "
                         "checkpoint.safetensors to continue from; use --overwrite to start "
                         "over there")
    return existing


def _check_free_space(out: Path, parameters: int) -> None:
    """Refuse to start a run whose checkpoints the disk could not hold."""
    # checkpoint (weights + two Adam moments) while the previous one still exists, + weights
    need = parameters * 4 * 8 + (1 << 20)
    free = shutil.disk_usage(out).free
    if free < need:
        raise UsageError(f"--out {out}: only {_size(free)} free, and this run's checkpoints "
                         f"need about {_size(need)}; free some space or choose another --out")


def _test_labels(row: dict[str, Any]) -> dict[str, Any]:
    """A history row of a run from before --valid-split, keyed as such runs are now
    ("valid_loss" and "accuracy" were measured on the test split: "test_loss", ...)."""
    if "valid_loss" not in row:
        return row
    fixed = {"epoch", "train_loss", "seconds"}
    return {("test_loss" if key == "valid_loss" else key if key in fixed else f"test_{key}"):
            value for key, value in row.items()}


def _resume_command(argv: Sequence[str]) -> str:
    """The command line that continues this run: the same flags, --resume instead of
    --overwrite."""
    words = [word for word in argv if word != "--overwrite"]
    if "--resume" not in words:
        words.append("--resume")
    return shlex.join(["chainrule", *words])


# ---------------------------------------------------------------------------- commands
def train(args: argparse.Namespace) -> int:
    """Run ``chainrule train``."""
    out = args.out or Path("runs") / f"{args.dataset}-{args.model}"
    _writable_folder(out)
    with _run_lock(out):
        return _train(args, out, _existing_run(out, args.resume, args.overwrite))


def _train(args: argparse.Namespace, out: Path, existing: list[str]) -> int:
    splits = _splits(args.dataset, args.data_dir, args.download)
    train_part, _ = _hold_out(splits.train, args.valid_split, args.seed)
    kwargs = _model_kwargs(args)
    config = {
        "dataset": args.dataset, "epochs": args.epochs, "lr": args.lr,
        "batch_size": args.batch_size, "optimizer": args.optimizer,
        "weight_decay": args.weight_decay, "schedule": args.schedule, "seed": args.seed,
        "shift": args.shift, "flip": args.flip, "valid_split": args.valid_split,
        "model": {"name": args.model, "kwargs": kwargs},
        "normalize": _statistics(train_part),
    }
    train_data, valid_data, test_data = _loaders(config, splits)
    checkpoint = out / "checkpoint.safetensors"
    resuming = args.resume and checkpoint.exists()
    saved = {}
    if resuming:
        # Compare settings before building: other --hidden widths would otherwise surface as
        # a shape error from load_state_dict instead of the flag that differs. Settings added
        # after a checkpoint was written count as their old behaviour.
        written = io.load_checkpoint(checkpoint)[2].get("config", {})
        saved = {**CONFIG_ADDED, **written}
        if saved != config:
            changed = sorted(k for k in {*config, *saved} if saved.get(k) != config.get(k))
            raise UsageError(f"cannot resume {checkpoint}: it was trained with different "
                             f"settings ({', '.join(changed)}); use the same flags, "
                             "--overwrite to start over, or another --out")
    model, optimizer, scheduler = _build(config, len(train_data),
                                         plain=args.stats or args.sentinel)
    params = sum(p.size for p in model.parameters())
    _check_free_space(out, params)
    callbacks: list = [CheckpointCallback(checkpoint)]
    callbacks.append(ProgressBar(file=sys.stdout, bar=not args.no_progress))
    if args.sentinel:
        callbacks.append(SentinelCallback())
    stats = LayerStats(every=max(len(train_data) // 50, 1)) if args.stats else None
    if stats is not None:
        callbacks.append(stats)
    watched = valid_data if valid_data is not None else test_data
    learner = Learner(model, train_data, optimizer, valid_data=watched, callbacks=callbacks,
                      scheduler=scheduler, config=config,
                      valid_name="valid" if valid_data is not None else "test")
    if resuming:
        learner.load_checkpoint(checkpoint)
        if "valid_split" not in written:  # written before splits: its epochs watched the test
            learner.history = [_test_labels(row) for row in learner.history]
        print(f"resuming from {checkpoint} after epoch {learner.next_epoch}")
    elif args.resume:
        print(f"nothing to resume in {out}: starting a new run")
    elif existing:  # --overwrite: the earlier run's files go now, so none outlives this run
        for name in existing:
            (out / name).unlink()
        print(f"--overwrite: removed the earlier run's {', '.join(existing)} from {out}")
    held_out = "" if valid_data is None else f" ({len(valid_data.dataset):,} held out)"
    print(f"training {args.model} ({params:,} parameters) on {args.dataset}: "
          f"{len(train_data.dataset):,} train{held_out} / {len(test_data.dataset):,} test, "
          f"{args.epochs} epochs, {args.optimizer} lr {args.lr:g} ({args.schedule}), "
          f"batch {args.batch_size}, seed {args.seed}")
    start = time.perf_counter()
    learner.fit(args.epochs)
    seconds = time.perf_counter() - start
    final = learner.evaluate(test_data, name="test")
    io.save_weights(model, out / "model.safetensors")
    metrics = {"config": config, "history": learner.history, "test": final,
               "train_seconds": round(seconds, 2)}
    io.atomic_write(out / "metrics.json", lambda f: f.write(json.dumps(metrics, indent=2)),
                    mode="w")
    plot_loss_curves(learner.recorder, learner.history, out / "loss_curve.png")
    print(f"test accuracy {final['accuracy']:.4f}  test loss {final['loss']:.4f}  "
          f"({seconds:.1f} s training)")
    written = "checkpoint.safetensors, model.safetensors, metrics.json, loss_curve.png"
    if stats is not None:
        stats.save_plots(out)
        print(stats.summary())
        written += ", layer_stats.png, layer_histograms.png"
    print(f"wrote {out}/{written}")
    return 0


def evaluate(args: argparse.Namespace) -> int:
    """Run ``chainrule evaluate``."""
    model_state, _, info = io.load_checkpoint(args.checkpoint)
    if not info.get("config"):
        raise io.CheckpointError(
            f"{args.checkpoint} does not say how its model was built (no config); load it in "
            "Python with chainrule.io.load_weights")
    config = _checked_config(info["config"], args.checkpoint)
    name, kwargs = config["model"]["name"], config["model"]["kwargs"]
    # The config is the file's word; the tensors are its substance. They must agree before
    # anything the config asks for is allocated.
    models.check_state_shapes(name, kwargs, model_state, str(args.checkpoint))
    splits = _splits(config["dataset"], args.data_dir, False)
    _, _, test_data = _loaders(config, splits, test_batch_size=args.batch_size)
    model = _runnable(models.build_model(name, **kwargs))
    model.load_state_dict(model_state)
    check_fits(model, test_data, name="test")
    learner = Learner(model, [], optimizer=None)
    result = learner.evaluate(test_data, name="test")
    if not math.isfinite(result["loss"]):
        raise ValueError(f"{args.checkpoint}: the model's loss on the test split is "
                         f"{result['loss']}: its weights (or the config's normalisation) make "
                         "outputs that are not finite, so there is no accuracy to report")
    print(f"{args.checkpoint}: {config['dataset']} test ({len(test_data.dataset):,} samples): "
          f"accuracy {result['accuracy']:.4f}  loss {result['loss']:.4f}")
    return 0


def _checked_config(config: Any, path: Path) -> dict[str, Any]:
    """The parts of a checkpoint's config that evaluate uses, checked before they are used."""
    def bad(what: str) -> io.CheckpointError:
        return io.CheckpointError(f"{path}: its config is not one chainrule wrote: {what}")

    if not isinstance(config, dict):
        raise bad(f"expected an object, got {type(config).__name__}")
    if config.get("dataset") not in DATASETS:
        raise bad(f"dataset {config.get('dataset')!r} is not one of {', '.join(DATASETS)}")
    model = config.get("model")
    if not isinstance(model, dict) or model.get("name") not in models.recipes() or \
            not isinstance(model.get("kwargs"), dict):
        raise bad(f"model must name a recipe ({', '.join(models.recipes())}) and its kwargs, "
                  f"got {model!r:.200}")
    try:
        models.check_kwargs(model["name"], model["kwargs"])
    except (TypeError, ValueError) as error:
        raise bad(str(error)) from None
    normalize = config.get("normalize")
    # Training writes the mean and std of pixels in [0, 1]: nothing else is a real config.
    if not (isinstance(normalize, list) and len(normalize) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in normalize) and 0 <= normalize[0] <= 1 and 1e-3 <= normalize[1] <= 1):
        raise bad(f"normalize must be [mean, std] of pixels in [0, 1] (mean in [0, 1], std in "
                  f"[0.001, 1]), got {normalize!r:.200}")
    for key, low, high in (("shift", 0, 4), ("seed", 0, 2**63 - 1), ("batch_size", 1, None)):
        value = config.get(key, low)
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (
                high is not None and value > high):
            raise bad(f"{key} must be a whole number of at least {low}, got {value!r:.100}")
    split = config.get("valid_split", 0.0)
    if isinstance(split, bool) or not isinstance(split, (int, float)) or not 0 <= split < 1:
        raise bad(f"valid_split must be a number in [0, 1), got {split!r:.100}")
    return config


def lr_find(args: argparse.Namespace) -> int:
    """Run ``chainrule lr-find``."""
    splits = _splits(args.dataset, args.data_dir, args.download)
    kwargs = _model_kwargs(args)
    config = {"dataset": args.dataset, "batch_size": args.batch_size, "seed": args.seed,
              "model": {"name": args.model, "kwargs": kwargs},
              "normalize": _statistics(splits.train)}
    _writable_folder(args.out)  # (lr_find.png is the sweep's own picture: it is replaced)
    train_data, _, _ = _loaders(config, splits)
    backend.manual_seed(args.seed)
    model = _runnable(_build_model(config))
    optimizer = _optimizer(args.optimizer, model.parameters(), 1e-3, 0.0)
    learner = Learner(model, train_data, optimizer)
    check_fits(model, train_data, name="training")
    lrs, losses, suggestion = learner.lr_find()
    path = plot_lr_find(lrs, losses, suggestion, args.out / "lr_find.png")
    print(f"suggested learning rate {suggestion:.3g} (loss lowest near {suggestion * 10:.3g}); "
          f"plot: {path}")
    return 0


def _load_target(spec: str) -> Any:
    """Import ``module.path:Name`` or ``file.py:Name`` and return Name."""
    import importlib
    import importlib.util

    source, _, name = spec.rpartition(":")
    if not source or not name:
        raise UsageError(f"TARGET must look like module.path:Name or file.py:Name, "
                         f"got {spec!r}")
    try:
        if source.endswith(".py") or "/" in source:
            path = Path(source)
            if not path.is_file():
                raise UsageError(f"no such file {path}")
            module_spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[path.stem] = module
            module_spec.loader.exec_module(module)
        else:
            sys.path.insert(0, str(Path.cwd()))
            module = importlib.import_module(source)
    except UsageError:
        raise
    except Exception as error:  # the user's module: report its error, not ours
        where = ""
        if isinstance(error, SyntaxError) and error.lineno:
            where = f" (line {error.lineno})"
        raise UsageError(f"importing {source} failed{where}: {type(error).__name__}: "
                         f"{error}") from error
    if not hasattr(module, name):
        raise UsageError(f"{source} has no attribute {name!r}")
    return getattr(module, name)


def _refuse_required_arguments(name: str, build: Any) -> None:
    """A usage error when the check's target cannot be called without arguments."""
    try:
        signature = inspect.signature(build)
    except (TypeError, ValueError):  # a builtin without one: calling it will tell
        return
    required = [p.name for p in signature.parameters.values()
                if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD,
                                                       p.KEYWORD_ONLY)]
    if required:
        raise UsageError(
            f"{name} needs arguments to build ({', '.join(required)}); name instead a function "
            f"that takes none and returns the built layer, e.g. def make(): return "
            f"{getattr(build, '__name__', 'Layer')}(...)")


def check_command(args: argparse.Namespace) -> int:
    """Run ``chainrule check``."""
    from chainrule import Function
    from chainrule.check import GradientCheckError, check
    from chainrule.nn import Module

    target = _load_target(args.target)
    if isinstance(target, type) and issubclass(target, Module):
        _refuse_required_arguments(args.target, target)
        target = target()
    elif callable(target) and not isinstance(target, (type, Module)):
        _refuse_required_arguments(args.target, target)
        target = target()
    if not (isinstance(target, Module) or
            (isinstance(target, type) and issubclass(target, Function))):
        kind = type(target).__name__
        raise UsageError(f"{args.target} is {'an' if kind[0] in 'aeiouAEIOU' else 'a'} {kind}, "
                         "not a Function subclass or a Module")
    rng = np.random.default_rng(args.seed)
    if args.input:
        inputs = [rng.standard_normal(shape) for shape in args.input]
    elif hasattr(target, "example_inputs"):
        example = target.example_inputs
        inputs = list(example() if callable(example) else example)
    else:
        raise UsageError(f"give the shape of each input of {args.target} with --input "
                         "(e.g. --input 8,3), or define example_inputs on it")
    wrong = [i for i in args.wrt or () if not -len(inputs) <= i < len(inputs)]
    if wrong:
        raise UsageError(f"--wrt {wrong[0]}: {args.target} takes {len(inputs)} input"
                         f"{'s' if len(inputs) != 1 else ''} (positions 0 to "
                         f"{len(inputs) - 1})")
    try:
        report = check(target, *inputs, wrt=args.wrt, mode=args.mode, seed=args.seed)
    except GradientCheckError as error:
        print(error)
        return 1
    print(report)
    return 0


# ---------------------------------------------------------------------------- entry point
#: errors that are chainrule's way of saying what is wrong with the input or the machine
_EXPECTED = (ValueError, TypeError, OSError, RuntimeError, ArithmeticError, MemoryError)


def command() -> int:
    """The ``chainrule`` command and ``python -m chainrule``: ``main`` in a process of its own,
    which it tunes (``kernels.tune_process``; docs/kernels.md says what and why)."""
    return main(sys.argv[1:], own_process=True)


def main(argv: Sequence[str] | None = None, *, own_process: bool = False) -> int:
    """Run one command line (``sys.argv[1:]`` by default) and return its exit status.

    Called from a program of your own, it changes nothing in that process; ``own_process``
    (what the ``chainrule`` command passes) lets it tune the process for training, restarting
    it once for a conv recipe so that OpenBLAS starts with a short spin."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False) or os.environ.get("CHAINRULE_DEBUG", "") not in (
        "", "0")
    if args.command in ("train", "lr-find"):
        try:
            _settings(args)
        except UsageError as error:
            parser.error(str(error))  # usage and exit status 2, like any bad flag
    if own_process:
        environment = _tuned_environment(args, os.environ)
        if environment is not None:
            # OpenBLAS reads its spin setting once, as NumPy loads it (already done here):
            # the command starts again as it was started (the interpreter's own flags too),
            # with the setting in place.
            os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], environment)
        if args.command != "check":
            kernels.tune_process()  # this process is the command's: keep freed buffers
    command = {"train": train, "evaluate": evaluate, "lr-find": lr_find,
               "check": check_command}[args.command]
    try:
        with _notes_on_stderr(), _terminate_as_interrupt():
            return command(args)
    except UsageError as error:
        if debug:
            raise
        print(f"chainrule {args.command}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _report_interrupt(args, argv)
        return 130
    except (TrainingDiverged, NonFiniteError) as error:
        if debug:
            raise
        print(f"chainrule: training stopped: {error}", file=sys.stderr)
        return 1
    except MemoryError as error:
        if debug:
            raise
        smaller = ("smaller --input shapes" if args.command == "check" else
                   "a smaller --batch-size" + ("" if args.command == "evaluate" else
                                               ", --hidden or --channels"))
        print(f"chainrule {args.command}: not enough memory ({error or 'MemoryError'}); try "
              f"{smaller}", file=sys.stderr)
        return 1
    except Exception as error:
        if debug:
            raise
        _report_error(args, error)
        return 1


#: OpenBLAS's spin after each product, in ms, for the conv recipes: their own threads need
#: the cores next (docs/kernels.md has the measurements, and why MLPs are better off without)
CONV_BLAS_SPIN = "4"


def _tuned_environment(args: argparse.Namespace, environ: Mapping[str, str]
                       ) -> dict[str, str] | None:
    """The environment a conv training run should start in, when it is not already: None
    when nothing needs changing (another command or model, or a spin the user chose)."""
    if args.command not in ("train", "lr-find") or args.model not in ("cnn", "resnet"):
        return None
    if "OPENBLAS_THREAD_TIMEOUT" in environ or os.name != "posix":
        return None
    return {**environ, "OPENBLAS_THREAD_TIMEOUT": CONV_BLAS_SPIN}


def _report_error(args: argparse.Namespace, error: Exception) -> None:
    """One paragraph on stderr: the message, or for a bug, where to look."""
    message = str(error) or type(error).__name__
    if args.command == "check":
        # Everything below check runs the user's own forward and backward.
        message = message.removeprefix("check: ")
        print(f"chainrule check {args.target}: {type(error).__name__}: {message}\n"
              "  (in the checked code or its inputs; --debug shows the traceback)",
              file=sys.stderr)
    elif isinstance(error, _EXPECTED):
        print(f"chainrule {args.command}: {message}", file=sys.stderr)
    else:
        print(f"chainrule {args.command}: internal error: {type(error).__name__}: {message}\n"
              "  This is a bug in chainrule; please report it with the output of --debug.",
              file=sys.stderr)


def _report_interrupt(args: argparse.Namespace, argv: Sequence[str]) -> None:
    if args.command != "train":
        print("chainrule: interrupted", file=sys.stderr)
        return
    out = args.out or Path("runs") / f"{args.dataset}-{args.model}"
    checkpoint = out / "checkpoint.safetensors"
    try:
        done = io.load_checkpoint(checkpoint)[2].get("next_epoch")
    except (OSError, ValueError):
        done = None
    if done is None:
        print("chainrule: interrupted before the first epoch finished; nothing was saved. "
              "Run the same command again to start over", file=sys.stderr)
        return
    print(f"chainrule: interrupted; {checkpoint} (after epoch {done}) is kept. To continue:\n"
          f"  {_resume_command(argv)}", file=sys.stderr)


@contextlib.contextmanager
def _notes_on_stderr() -> Iterator[None]:
    """Warnings (e.g. a checkpoint without a checksum) as one "chainrule: note:" line each."""
    def show(message: Any, category: type, *_args: Any, **_kwargs: Any) -> None:
        print(f"chainrule: note: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM ends a command the way Ctrl-C does: files stay whole and the resume command is
    printed."""
    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (e.g. called from a test runner's worker)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
