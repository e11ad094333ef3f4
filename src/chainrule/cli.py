"""The command line: ``chainrule train``, ``chainrule evaluate`` and ``chainrule lr-find``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from chainrule import backend, io, models, optim
from chainrule.check.sentinel import NonFiniteError, SentinelCallback
from chainrule.data import DataLoader, DatasetNotFoundError, load_dataset, transforms
from chainrule.data.idx import IDXError
from chainrule.train import (
    CheckpointCallback,
    LayerStats,
    Learner,
    ProgressBar,
    SchedulerCallback,
    TrainingDiverged,
    plot_loss_curves,
    plot_lr_find,
)

DATASETS = ("mnist-sample", "mnist", "fashion-mnist")
OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("onecycle", "cosine", "step", "none")
# Config keys added in later versions, with the value that means what older runs did.
CONFIG_ADDED: dict[str, Any] = {"flip": False}
# Per-model defaults for the flags left unset: what each recipe was tuned with (see README).
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "mlp": {"epochs": 12, "lr": 3e-3, "batch_size": 64, "weight_decay": 0.05, "shift": 2,
            "hidden": [512, 256]},
    "cnn": {"epochs": 15, "lr": 3e-3, "batch_size": 128, "weight_decay": 0.01, "shift": 1,
            "hidden": [128], "channels": [32, 64], "dropout": 0.1},
    "resnet": {"epochs": 15, "lr": 3e-3, "batch_size": 128, "weight_decay": 0.01, "shift": 1,
               "channels": [16, 32, 64]},
}


# ---------------------------------------------------------------------------- argument types
def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not value > 0 or not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or more, got {text}")
    return value


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be comma-separated layer widths such as 256,128, got {text!r}") from None
    if any(size <= 0 for size in sizes):
        raise argparse.ArgumentTypeError(f"layer widths must be positive, got {text!r}")
    return sizes


# ---------------------------------------------------------------------------- the parser
def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``chainrule`` command."""
    parser = argparse.ArgumentParser(
        prog="chainrule",
        description="Train and evaluate neural networks with chainrule (NumPy, CPU). "
                    "Every gradient is hand-derived and checked against PyTorch.",
        epilog="Example: chainrule train --epochs 3 --out runs/quick   "
               "|  chainrule evaluate runs/quick/checkpoint.safetensors",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train = commands.add_parser(
        "train", help="train a model (default: an MLP on the bundled MNIST sample)",
        description="Train a model and write checkpoint, weights, metrics JSON and a loss "
                    "curve into --out. Runs offline on the bundled MNIST sample by default.")
    _data_arguments(train)
    _model_arguments(train)
    train.add_argument("--epochs", type=_positive_int, default=None,
                       help="passes over the training set (default: mlp 12, cnn 15, "
                            "resnet 15)")
    train.add_argument("--lr", type=_positive_float, default=None,
                       help="peak learning rate (default: 0.003)")
    train.add_argument("--batch-size", type=_positive_int, default=None,
                       help="samples per optimizer step (default: mlp 64, cnn and resnet 128)")
    train.add_argument("--optimizer", choices=OPTIMIZERS, default="adamw",
                       help="optimizer (default: %(default)s)")
    train.add_argument("--weight-decay", type=_non_negative_float, default=None,
                       help="weight decay (default: mlp 0.05, cnn and resnet 0.01)")
    train.add_argument("--schedule", choices=SCHEDULES, default="onecycle",
                       help="learning-rate schedule, stepped every batch (default: %(default)s)")
    train.add_argument("--shift", type=int, choices=range(0, 5), default=None,
                       metavar="PIXELS",
                       help="augment: move each training image by up to this many pixels, "
                            "0 to 4 (default: mlp 2, cnn and resnet 1)")
    train.add_argument("--flip", action="store_true",
                       help="augment: mirror half the training images left-right (for "
                            "clothes, not digits)")
    train.add_argument("--seed", type=int, default=0,
                       help="seed for init, shuffling and augmentation (default: %(default)s)")
    train.add_argument("--out", type=Path, default=None,
                       help="output folder (default: runs/DATASET-MODEL)")
    train.add_argument("--resume", action="store_true",
                       help="continue from OUT/checkpoint.safetensors if it exists")
    train.add_argument("--no-progress", action="store_true",
                       help="no progress bar (a line per epoch is still printed)")
    train.add_argument("--stats", action="store_true",
                       help="record per-layer activation and gradient statistics and write "
                            "layer_stats.png and layer_histograms.png into --out")
    train.add_argument("--sentinel", action="store_true",
                       help="stop at the first op or layer that produces NaN/inf, naming it "
                            "(slower)")

    evaluate = commands.add_parser(
        "evaluate", help="evaluate a checkpoint on its dataset's test split",
        description="Rebuild the model a checkpoint was trained as, load its weights and "
                    "report test loss and accuracy.")
    evaluate.add_argument("checkpoint", type=Path, help="a checkpoint.safetensors file")
    evaluate.add_argument("--data-dir", type=Path, default=None,
                          help="folder holding the dataset's IDX files")
    evaluate.add_argument("--batch-size", type=_positive_int, default=500)

    finder = commands.add_parser(
        "lr-find", help="sweep the learning rate and suggest one",
        description="Train briefly with an exponentially growing learning rate, plot loss "
                    "against it, and suggest a rate. The model is thrown away afterwards.")
    _data_arguments(finder)
    _model_arguments(finder)
    finder.add_argument("--batch-size", type=_positive_int, default=None)
    finder.add_argument("--optimizer", choices=OPTIMIZERS, default="adamw")
    finder.add_argument("--seed", type=int, default=0)
    finder.add_argument("--out", type=Path, default=Path("runs/lr-find"),
                        help="where lr_find.png goes (default: %(default)s)")
    checker = commands.add_parser(
        "check", help="verify a Function's or Module's backward pass",
        description="Compare the backward pass of your Function or Module with finite "
                    "differences of its forward, and say what is wrong if they disagree.",
        epilog="TARGET is module.path:Name or path/to/file.py:Name; Name is a Function "
               "subclass, a Module instance or class (built with no arguments), or a function "
               "returning one. Example: chainrule check mylayers.py:Lin --input 8,3")
    checker.add_argument("target", metavar="TARGET", help="what to check, e.g. mylayers.py:Lin")
    checker.add_argument("--input", action="append", type=_sizes, default=None,
                         metavar="D1,D2,...",
                         help="shape of a random float64 input; repeat for each input "
                              "(default: the target's example_inputs)")
    checker.add_argument("--wrt", type=int, action="append", default=None, metavar="INDEX",
                         help="check only this input position (repeat); e.g. leave out a "
                              "float target")
    checker.add_argument("--mode", choices=("auto", "full", "random"), default="auto",
                         help="every element, random directions, or full when small")
    checker.add_argument("--seed", type=int, default=0)
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
    parser.add_argument("--dropout", type=float, default=None, metavar="P",
                        help="dropout probability in the cnn's classifier (default 0.1)")


def _settings(args: argparse.Namespace) -> None:
    """Fill the flags left unset with the model's defaults; refuse ones it cannot use."""
    defaults = MODEL_DEFAULTS[args.model]
    for name in ("epochs", "lr", "batch_size", "weight_decay", "shift", "hidden", "channels",
                 "dropout"):
        if hasattr(args, name) and getattr(args, name) is None:
            setattr(args, name, defaults.get(name))
    if args.model == "mlp" and args.channels is not None:
        raise ValueError("--channels is for the cnn and resnet models; the mlp takes --hidden")
    if args.model != "cnn" and args.dropout is not None:
        raise ValueError("--dropout is for the cnn model")
    if args.dropout is not None and not 0 <= args.dropout < 1:
        raise ValueError(f"--dropout must lie in [0, 1), got {args.dropout}")
    if args.model == "resnet" and args.hidden is not None:
        raise ValueError("--hidden is for the mlp and cnn models; resnet takes --channels")
    if args.model == "cnn" and len(args.channels) > 4:
        raise ValueError(f"--channels: {len(args.channels)} pooling stages halve 28-pixel "
                         "images to nothing; give at most 4 widths")
    if args.model == "cnn" and len(args.hidden) != 1:
        raise ValueError(f"the cnn has one hidden classifier layer: give --hidden one width, "
                         f"got {','.join(map(str, args.hidden))}")


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
                        help="folder holding the dataset's IDX files (searched first)")
    parser.add_argument("--download", action="store_true",
                        help="download the dataset (sha256-checked) if it is not found")


# ---------------------------------------------------------------------------- pieces
def _loaders(config: dict[str, Any], data_dir: Path | None, download: bool,
             test_batch_size: int = 500) -> tuple[DataLoader, DataLoader]:
    splits = load_dataset(config["dataset"], root=data_dir, download=download or None)
    mean, std = config["normalize"]
    model = config.get("model", {}).get("name", "mlp")
    layout = transforms.Flatten() if models.input_kind(model) == "flat" else \
        transforms.AddChannel()
    finish = [transforms.ToFloat(), transforms.Normalize(mean, std), layout]
    shift = config.get("shift", 0)
    augment = [transforms.RandomShift(shift)] if shift else []
    if config.get("flip"):
        augment.append(transforms.RandomHorizontalFlip())
    train = DataLoader(splits.train, batch_size=config["batch_size"], shuffle=True,
                       seed=config["seed"], transform=transforms.Compose(augment + finish))
    test = DataLoader(splits.test, batch_size=test_batch_size,
                      transform=transforms.Compose(finish))
    return train, test


def _dataset_statistics(name: str, data_dir: Path | None, download: bool) -> list[float]:
    """Mean and std of the training pixels in [0, 1], for normalisation."""
    splits = load_dataset(name, root=data_dir, download=download or None)
    pixels = np.asarray(splits.train.x, dtype=np.float32) / 255
    return [round(float(pixels.mean()), 4), round(float(pixels.std()), 4)]


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


def _build(config: dict[str, Any], train_batches: int) -> tuple[Any, Any, Any]:
    backend.manual_seed(config["seed"])
    model = models.build_model(config["model"]["name"], **config["model"]["kwargs"])
    optimizer = _optimizer(config["optimizer"], model.parameters(), config["lr"],
                           config["weight_decay"])
    scheduler = _scheduler(config["schedule"], optimizer, config["lr"],
                           config["epochs"] * train_batches)
    return model, optimizer, scheduler


# ---------------------------------------------------------------------------- commands
def train(args: argparse.Namespace) -> int:
    """Run ``chainrule train``."""
    out = args.out or Path("runs") / f"{args.dataset}-{args.model}"
    config = {
        "dataset": args.dataset, "epochs": args.epochs, "lr": args.lr,
        "batch_size": args.batch_size, "optimizer": args.optimizer,
        "weight_decay": args.weight_decay, "schedule": args.schedule, "seed": args.seed,
        "shift": args.shift, "flip": args.flip,
        "model": {"name": args.model, "kwargs": _model_kwargs(args)},
        "normalize": _dataset_statistics(args.dataset, args.data_dir, args.download),
    }
    train_data, test_data = _loaders(config, args.data_dir, args.download)
    model, optimizer, scheduler = _build(config, len(train_data))
    callbacks: list = [CheckpointCallback(out / "checkpoint.safetensors")]
    if scheduler is not None:
        callbacks.append(SchedulerCallback(scheduler))
    callbacks.append(ProgressBar(file=sys.stdout, bar=not args.no_progress))
    if args.sentinel:
        callbacks.append(SentinelCallback())
    stats = LayerStats(every=max(len(train_data) // 50, 1)) if args.stats else None
    if stats is not None:
        callbacks.append(stats)
    learner = Learner(model, train_data, optimizer, valid_data=test_data, callbacks=callbacks,
                      scheduler=scheduler, config=config)
    checkpoint = out / "checkpoint.safetensors"
    if args.resume and checkpoint.exists():
        # Compare settings before loading: other --hidden widths would otherwise surface as
        # a shape error from load_state_dict instead of the flag that differs.
        # Settings added after a checkpoint was written count as their old behaviour.
        saved = {**CONFIG_ADDED, **io.load_checkpoint(checkpoint)[2].get("config", {})}
        if saved != config:
            changed = sorted(k for k in {*config, *saved} if saved.get(k) != config.get(k))
            print(f"chainrule: cannot resume {checkpoint}: it was trained with different "
                  f"settings ({', '.join(changed)}); use another --out or the same flags",
                  file=sys.stderr)
            return 2
        learner.load_checkpoint(checkpoint)
        print(f"resuming from {checkpoint} after epoch {learner.next_epoch}")
    params = sum(p.size for p in model.parameters())
    print(f"training {args.model} ({params:,} parameters) on {args.dataset}: "
          f"{len(train_data.dataset):,} train / {len(test_data.dataset):,} test, "
          f"{args.epochs} epochs, {args.optimizer} lr {args.lr:g} ({args.schedule}), "
          f"batch {args.batch_size}, seed {args.seed}")
    start = time.perf_counter()
    learner.fit(args.epochs)
    seconds = time.perf_counter() - start
    final = learner.evaluate(test_data)
    io.save_weights(model, out / "model.safetensors")
    metrics = {"config": config, "history": learner.history, "test": final,
               "train_seconds": round(seconds, 2)}
    io.atomic_write(out / "metrics.json", lambda f: f.write(json.dumps(metrics, indent=2)),
                    mode="w")
    plot_loss_curves(learner.recorder, learner.history, out / "loss_curve.png")
    print(f"test accuracy {final['accuracy']:.4f}  test loss {final['valid_loss']:.4f}  "
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
    config = info.get("config")
    if not config:
        print(f"chainrule: {args.checkpoint} does not say how its model was built (no config); "
              "load it in Python with chainrule.io.load_weights", file=sys.stderr)
        return 2
    _, test_data = _loaders(config, args.data_dir, False, test_batch_size=args.batch_size)
    model = models.build_model(config["model"]["name"], **config["model"]["kwargs"])
    model.load_state_dict(model_state)
    learner = Learner(model, [], optimizer=None, metrics=None)
    result = learner.evaluate(test_data)
    print(f"{args.checkpoint}: {config['dataset']} test ({len(test_data.dataset):,} samples): "
          f"accuracy {result['accuracy']:.4f}  loss {result['valid_loss']:.4f}")
    return 0


def lr_find(args: argparse.Namespace) -> int:
    """Run ``chainrule lr-find``."""
    config = {"dataset": args.dataset, "batch_size": args.batch_size, "seed": args.seed,
              "model": {"name": args.model, "kwargs": _model_kwargs(args)},
              "normalize": _dataset_statistics(args.dataset, args.data_dir, args.download)}
    train_data, _ = _loaders(config, args.data_dir, args.download)
    backend.manual_seed(args.seed)
    model = models.build_model(args.model, **config["model"]["kwargs"])
    optimizer = _optimizer(args.optimizer, model.parameters(), 1e-3, 0.0)
    learner = Learner(model, train_data, optimizer)
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
        raise ValueError(f"check: TARGET must look like module.path:Name or file.py:Name, "
                         f"got {spec!r}")
    if source.endswith(".py") or "/" in source:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"check: no such file {path}")
        module_spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[path.stem] = module
        module_spec.loader.exec_module(module)
    else:
        sys.path.insert(0, str(Path.cwd()))
        module = importlib.import_module(source)
    if not hasattr(module, name):
        raise ValueError(f"check: {source} has no attribute {name!r}")
    return getattr(module, name)


def check_command(args: argparse.Namespace) -> int:
    """Run ``chainrule check``."""
    from chainrule import Function
    from chainrule.check import GradientCheckError, check
    from chainrule.nn import Module

    target = _load_target(args.target)
    if isinstance(target, type) and issubclass(target, Module):
        target = target()
    elif callable(target) and not isinstance(target, (type, Module)):
        target = target()
    if not (isinstance(target, Module) or
            (isinstance(target, type) and issubclass(target, Function))):
        print(f"chainrule: {args.target} is a {type(target).__name__}, not a Function "
              "subclass or a Module", file=sys.stderr)
        return 2
    rng = np.random.default_rng(args.seed)
    if args.input:
        inputs = [rng.standard_normal(shape) for shape in args.input]
    elif hasattr(target, "example_inputs"):
        example = target.example_inputs
        inputs = list(example() if callable(example) else example)
    else:
        print(f"chainrule: give the shape of each input of {args.target} with --input "
              "(e.g. --input 8,3), or define example_inputs on it", file=sys.stderr)
        return 2
    try:
        report = check(target, *inputs, wrt=args.wrt, mode=args.mode, seed=args.seed)
    except GradientCheckError as error:
        print(error)
        return 1
    print(report)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``chainrule`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("train", "lr-find"):
        try:
            _settings(args)
        except ValueError as error:
            parser.error(str(error))  # usage and exit status 2, like any bad flag
    command = {"train": train, "evaluate": evaluate, "lr-find": lr_find,
               "check": check_command}[args.command]
    try:
        return command(args)
    except DatasetNotFoundError as error:
        print(f"chainrule: {error}", file=sys.stderr)
        return 1
    except (IDXError, io.CheckpointError, FileNotFoundError) as error:
        print(f"chainrule: {error}", file=sys.stderr)
        return 1
    except (TrainingDiverged, NonFiniteError) as error:
        print(f"chainrule: training stopped: {error}", file=sys.stderr)
        return 1
    except TypeError as error:
        if str(error).startswith("check:"):
            print(f"chainrule: {error}", file=sys.stderr)
            return 2
        raise
    except ValueError as error:
        if "load_state_dict" in str(error) or str(error).startswith("check:"):
            print(f"chainrule: {error}", file=sys.stderr)
            return 1
        raise
    except KeyboardInterrupt:
        print("chainrule: interrupted; the last finished epoch's checkpoint is kept",
              file=sys.stderr)
        return 130
