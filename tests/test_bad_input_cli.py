"""Bad input to the command line: every expected failure is a line or two and a non-zero exit,
an earlier run is never replaced silently, an interrupted run says how to resume, and a
checkpoint's config is checked against its own tensors before anything is built."""

from __future__ import annotations

import argparse
import gzip
import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from chainrule import cli, io
from chainrule.cli import main
from chainrule.train import CheckpointCallback

QUICK = ["--epochs", "1", "--hidden", "16", "--no-progress", "--batch-size", "256"]


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    """main(argv) as a shell would see it: exit status, stdout, stderr."""
    try:
        status = main(argv)
    except SystemExit as exit_info:  # argparse's own exits
        status = exit_info.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# ----------------------------------------------------------------------------- flags
def _typed_flags() -> list[tuple[str, str, argparse.Action]]:
    """Every flag of every command whose value is parsed by one of the CLI's own types."""
    parser = cli.build_parser()
    found = []
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in commands.choices.items():
        for action in sub._actions:
            if action.option_strings and getattr(action.type, "__name__", "") in (
                    "integer", "number", "widths"):
                found.append((name, action.option_strings[0], action))
    return found


TYPED = _typed_flags()
BAD_VALUES = ["nan", "inf", "-inf", "-1", "1.5", "abc", "", "1e400", "0x10", "99999999999999999"
              "999999999"]


def test_the_flag_table_covers_the_numeric_flags() -> None:
    names = {(command, flag) for command, flag, _ in TYPED}
    for expected in [("train", "--epochs"), ("train", "--lr"), ("train", "--batch-size"),
                     ("train", "--weight-decay"), ("train", "--seed"), ("train", "--shift"),
                     ("train", "--dropout"), ("train", "--valid-split"), ("train", "--hidden"),
                     ("evaluate", "--batch-size"), ("lr-find", "--seed"), ("check", "--input")]:
        assert expected in names


@pytest.mark.parametrize("command, flag, action", TYPED, ids=[f"{c} {f}" for c, f, _ in TYPED])
def test_every_numeric_flag_refuses_every_kind_of_bad_value_in_one_line(command, flag,
                                                                        action, capsys) -> None:
    for value in BAD_VALUES:
        try:
            action.type(value)
        except argparse.ArgumentTypeError:
            pass
        else:
            continue  # a value this flag may take (e.g. -1 for --wrt, 1.5 for --lr)
        argv = [command, "x.py:Name" if command == "check" else None,
                "c.safetensors" if command == "evaluate" else None, f"{flag}={value}"]
        status, _, err = run([a for a in argv if a is not None], capsys)
        assert status == 2, (flag, value)
        last = err.strip().splitlines()[-1]
        assert last.startswith(f"chainrule {command}: error: argument {flag}")
        assert "must" in last and "Traceback" not in err
        assert "invalid" not in last  # argparse's "invalid _positive_int value"


@pytest.mark.parametrize("argv, message", [
    (["train", "--hidden="], "--hidden: must name at least one width"),
    (["train", "--hidden", "0"], "--hidden: layer widths must lie in 1.."),
    (["train", "--channels", ",", "--model", "cnn"], "--channels: must name at least one"),
    (["train", "--hidden", "99999999999"], "--hidden: layer widths must lie in"),
    (["train", "--resume", "--overwrite"], "not allowed with argument --resume"),
])
def test_flags_that_would_build_something_else_are_refused(argv, message, capsys) -> None:
    status, _, err = run(argv, capsys)
    assert status == 2 and message in err


# ----------------------------------------------------------------------------- the run folder
def test_a_second_run_into_the_same_folder_changes_nothing(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert run(["train", *QUICK, "--out", str(out)], capsys)[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    status, _, err = run(["train", *QUICK, "--epochs", "2", "--out", str(out)], capsys)
    assert status == 2
    assert "already holds a run" in err and "--resume" in err and "--overwrite" in err
    assert len(err.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_overwrite_starts_over_and_leaves_no_file_of_the_old_run(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert run(["train", *QUICK, "--stats", "--out", str(out)], capsys)[0] == 0
    assert (out / "layer_stats.png").exists()
    status, printed, _ = run(["train", *QUICK, "--epochs", "2", "--overwrite", "--out",
                              str(out)], capsys)
    assert status == 0 and "removed the earlier run's" in printed
    assert not (out / "layer_stats.png").exists()  # not a picture of the old run beside it
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["history"]) == 2


def test_resume_needs_a_checkpoint_when_the_folder_holds_a_run(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert run(["train", *QUICK, "--out", str(out)], capsys)[0] == 0
    (out / "checkpoint.safetensors").unlink()
    status, _, err = run(["train", *QUICK, "--resume", "--out", str(out)], capsys)
    assert status == 2 and "no checkpoint.safetensors to continue from" in err
    status, printed, _ = run(["train", *QUICK, "--resume", "--out", str(tmp_path / "new")],
                             capsys)
    assert status == 0 and "nothing to resume" in printed


@pytest.mark.parametrize("make, message", [
    (lambda tmp: (tmp / "file").write_text("x") and tmp / "file", "is a file, not a folder"),
    (lambda tmp: (tmp / "file").write_text("x") and tmp / "file" / "run", "lies under"),
], ids=["a file", "under a file"])
def test_an_out_that_cannot_be_a_folder_fails_before_any_training(tmp_path, capsys, make,
                                                                  message) -> None:
    out = make(tmp_path)
    start = time.perf_counter()
    status, printed, err = run(["train", *QUICK, "--out", str(out)], capsys)
    assert status == 2 and message in err and "training" not in printed
    assert time.perf_counter() - start < 5


def test_an_unwritable_or_full_out_fails_before_any_training(tmp_path, capsys,
                                                             monkeypatch) -> None:
    real = io.atomic_write

    def refuse(path, *args, **kwargs):
        if Path(path).name == ".chainrule-write-test":
            raise PermissionError(13, "Permission denied")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(io, "atomic_write", refuse)
    status, printed, err = run(["train", *QUICK, "--out", str(tmp_path / "ro")], capsys)
    assert status == 2 and "cannot be written (Permission denied)" in err
    assert "training" not in printed
    monkeypatch.setattr(io, "atomic_write", real)

    class Usage:
        free = 1000

    monkeypatch.setattr(cli.shutil, "disk_usage", lambda path: Usage())
    status, printed, err = run(["train", *QUICK, "--out", str(tmp_path / "full")], capsys)
    assert status == 2 and "free" in err and "need about" in err
    assert "epoch 1" not in printed


# ----------------------------------------------------------------------------- interruptions
def test_an_interrupt_prints_the_command_that_resumes(tmp_path, capsys, monkeypatch) -> None:
    out = tmp_path / "run"
    argv = ["train", "--epochs", "3", "--hidden", "16", "--no-progress", "--out", str(out)]
    save = CheckpointCallback.after_epoch

    def save_then_stop(self, learner) -> None:
        save(self, learner)
        if learner.epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(CheckpointCallback, "after_epoch", save_then_stop)
    status, _, err = run(argv, capsys)
    assert status == 130
    assert "(after epoch 2) is kept" in err
    command = err.strip().splitlines()[-1].strip()
    assert command.startswith("chainrule train") and command.endswith("--resume")
    monkeypatch.setattr(CheckpointCallback, "after_epoch", save)
    status, printed, _ = run(command.split()[1:], capsys)  # the printed command, as is
    assert status == 0 and "resuming from" in printed and "epoch 3/3" in printed


def test_an_overwrite_interrupted_is_resumed_without_overwriting(tmp_path, capsys,
                                                                 monkeypatch) -> None:
    out = tmp_path / "run"
    assert run(["train", *QUICK, "--out", str(out)], capsys)[0] == 0

    save = CheckpointCallback.after_epoch

    def save_then_stop(self, learner) -> None:
        save(self, learner)
        raise KeyboardInterrupt

    monkeypatch.setattr(CheckpointCallback, "after_epoch", save_then_stop)
    _, _, err = run(["train", *QUICK, "--overwrite", "--out", str(out)], capsys)
    assert "--overwrite" not in err.splitlines()[-1] and err.strip().endswith("--resume")


def test_sigterm_stops_a_run_like_ctrl_c(tmp_path) -> None:
    out = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "chainrule", "train", "--epochs", "200", "--hidden", "16",
         "--no-progress", "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        line = process.stdout.readline()
        while line and not line.startswith("epoch 2/"):  # epoch 1's checkpoint is written
            line = process.stdout.readline()
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130
    assert "Traceback" not in err and err.strip().endswith("--resume")
    assert io.load_checkpoint(out / "checkpoint.safetensors")[2]["next_epoch"] >= 1


# ----------------------------------------------------------------------------- data
def write_idx(folder: Path, n: int, side: int = 28) -> None:
    """A tiny dataset of ``n`` random images of side x side pixels, labels 0..9."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(n)
    images = rng.integers(0, 256, (n, side, side), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    for base, array, magic in (("train-images-idx3-ubyte", images, 2051),
                               ("train-labels-idx1-ubyte", labels, 2049),
                               ("t10k-images-idx3-ubyte", images, 2051),
                               ("t10k-labels-idx1-ubyte", labels, 2049)):
        raw = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
        (folder / (base + ".gz")).write_bytes(gzip.compress(raw + array.tobytes()))


def test_a_data_dir_that_does_not_exist_is_refused_not_replaced(tmp_path, capsys) -> None:
    status, printed, err = run(["train", *QUICK, "--data-dir", str(tmp_path / "nowhere"),
                                "--out", str(tmp_path / "o")], capsys)
    assert status == 1 and str(tmp_path / "nowhere") in err and "training" not in printed


def test_images_of_another_size_are_refused_before_training(tmp_path, capsys) -> None:
    write_idx(tmp_path / "data32", 64, side=32)
    status, printed, err = run(["train", *QUICK, "--data-dir", str(tmp_path / "data32"),
                                "--out", str(tmp_path / "o")], capsys)
    assert status == 1 and "images are 28x28 pixels, this file holds 32x32" in err
    assert "training" not in printed and len(err.strip().splitlines()) == 1


def test_evaluate_tries_the_model_on_the_data_before_reporting(tmp_path, capsys,
                                                               monkeypatch) -> None:
    assert run(["train", *QUICK, "--out", str(tmp_path / "o")], capsys)[0] == 0

    def shrink(*args, **kwargs):  # a config whose data no longer fits the model it builds
        train, valid, test = loaders(*args, **kwargs)
        test.transform = lambda x, rng=None: x.reshape(len(x), -1)[:, :100].astype("f4")
        return train, valid, test

    loaders = cli._loaders
    monkeypatch.setattr(cli, "_loaders", shrink)
    status, _, err = run(["evaluate", str(tmp_path / "o" / "checkpoint.safetensors")], capsys)
    assert status == 1 and "cannot run on the test data" in err and "(inputs (500, 100)" in err


def test_a_validation_split_is_held_out_and_the_test_split_used_once(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    status, printed, _ = run(["train", *QUICK, "--valid-split", "0.25", "--out", str(out)],
                             capsys)
    assert status == 0 and "6,000 train (2,000 held out) / 2,000 test" in printed
    assert "valid_loss" in printed and "test_loss" not in printed.split("test accuracy")[0]
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["history"][0]) >= {"valid_loss", "valid_accuracy"}
    assert set(metrics["test"]) == {"loss", "accuracy"}
    status, _, err = run(["train", *QUICK, "--valid-split", "0.99995", "--out",
                          str(tmp_path / "x")], capsys)
    assert status == 1 and "both need at least one" in err


def test_without_a_split_each_epoch_is_labelled_test(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    status, printed, _ = run(["train", *QUICK, "--out", str(out)], capsys)
    assert status == 0 and "test_loss" in printed and "valid_loss" not in printed
    history = json.loads((out / "metrics.json").read_text())["history"]
    assert {"test_loss", "test_accuracy"} <= set(history[0])


# ----------------------------------------------------------------------------- checkpoints
@pytest.fixture
def trained(tmp_path, capsys) -> Path:
    out = tmp_path / "run"
    assert run(["train", *QUICK, "--out", str(out)], capsys)[0] == 0
    return out / "checkpoint.safetensors"


def _rewrite(path: Path, change) -> None:
    state, optimizer, info = io.load_checkpoint(path)
    change(info)
    io.save_checkpoint(path, state, optimizer, info)


@pytest.mark.parametrize("change, message", [
    (lambda i: i["config"]["model"]["kwargs"].update(hidden=[200000, 200000]),
     r"settings and its tensors disagree.*0.weight: the settings give \(200000, 784\)"),
    (lambda i: i["config"]["model"]["kwargs"].update(hidden=[16] * 100000),
     "lists 100000 entries"),
    (lambda i: i["config"]["model"]["kwargs"].update(hidden=[10**12]), "not a setting"),
    (lambda i: i["config"]["model"]["kwargs"].update(depth=3), "takes no setting depth"),
    (lambda i: i["config"]["model"].update(name="transformer"), "must name a recipe"),
    (lambda i: i["config"].update(dataset="../../etc"), "dataset '../../etc' is not one of"),
    (lambda i: i["config"].update(normalize=[0.1, 0.0]), "normalize must be"),
    (lambda i: i["config"].update(normalize=[0.1, 1e-300]), "normalize must be"),
    (lambda i: i["config"].update(normalize="fast"), "normalize must be"),
    (lambda i: i.update(config=[1, 2]), "expected an object"),
    (lambda i: i["config"].update(shift=-3), "shift must be"),
], ids=["huge widths", "a million layers", "absurd width", "unknown setting",
        "unknown model", "dataset path", "zero std", "tiny std", "std not a list",
        "config a list",
        "negative shift"])
def test_evaluate_checks_a_checkpoints_config_before_building_anything(trained, capsys, change,
                                                                      message) -> None:
    _rewrite(trained, change)
    start = time.perf_counter()
    status, _, err = run(["evaluate", str(trained)], capsys)
    assert status == 1, err
    assert __import__("re").search(message, err), err
    assert "Traceback" not in err and "MemoryError" not in err
    assert time.perf_counter() - start < 10


def test_evaluate_refuses_to_report_an_accuracy_for_outputs_that_are_not_finite(trained,
                                                                              capsys) -> None:
    state, optimizer, info = io.load_checkpoint(trained)
    state["0.weight"][0, 0] = np.nan
    io.save_checkpoint(trained, state, optimizer, info)
    status, printed, err = run(["evaluate", str(trained)], capsys)
    assert status == 1 and "loss on the test split is nan" in err and "accuracy" not in printed


def test_a_model_too_big_for_the_machine_is_refused_before_allocation(tmp_path, capsys) -> None:
    start = time.perf_counter()
    status, _, err = run(["train", "--hidden", "200000,200000", "--no-progress", "--out",
                          str(tmp_path / "big")], capsys)
    assert status == 1 and "would have" in err and "parameters" in err
    assert time.perf_counter() - start < 10


# ----------------------------------------------------------------------------- errors
def test_debug_shows_the_traceback_and_bugs_say_they_are_bugs(tmp_path, capsys,
                                                              monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise KeyError("oops")

    monkeypatch.setattr(cli, "_splits", broken)
    status, _, err = run(["train", *QUICK, "--out", str(tmp_path / "a")], capsys)
    assert status == 1 and "internal error: KeyError" in err and "bug" in err
    with pytest.raises(KeyError):
        main(["train", *QUICK, "--debug", "--out", str(tmp_path / "b")])
    monkeypatch.setenv("CHAINRULE_DEBUG", "1")
    with pytest.raises(KeyError):
        main(["train", *QUICK, "--out", str(tmp_path / "c")])


def test_a_real_shell_sees_no_traceback(tmp_path) -> None:
    for argv in (["evaluate", str(tmp_path / "missing.safetensors")],
                 ["train", "--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path)],
                 ["train", "--seed", "-1"]):
        result = subprocess.run([sys.executable, "-m", "chainrule", *argv],
                                capture_output=True, text=True, timeout=120,
                                env={**os.environ, "CHAINRULE_DEBUG": ""})
        assert result.returncode in (1, 2) and "Traceback" not in result.stderr
        assert result.stderr.strip()


@pytest.mark.parametrize("source, message, code", [
    ("def broken(:\n", "check: importing .* failed \\(line 1\\): SyntaxError", 2),
    ("import not_a_module_anywhere\n", "ModuleNotFoundError", 2),
    ("X = 1\n", "is an int, not a Function subclass or a Module", 2),
    ("import chainrule as cr\nclass Bad(cr.nn.Module):\n    def forward(self, x):\n"
     "        raise ValueError('my bug')\n", "check .*:Bad: ValueError: my bug", 1),
], ids=["syntax error", "import error", "not a target", "forward raises"])
def test_check_reports_the_users_own_errors_in_a_line(tmp_path, capsys, source, message,
                                                      code) -> None:
    path = tmp_path / "mine.py"
    path.write_text(source)
    name = "X" if "X = 1" in source else "Bad"
    status, _, err = run(["check", f"{path}:{name}", "--input", "3"], capsys)
    assert status == code and __import__("re").search(message, err), err


def test_a_second_run_into_a_folder_in_use_is_refused(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    out.mkdir()
    lock = out / ".chainrule-train.lock"
    lock.write_text(str(os.getppid()))  # a live process holds it
    status, printed, err = run(["train", *QUICK, "--out", str(out)], capsys)
    assert status == 2 and "in use by another chainrule train" in err
    assert "training" not in printed and lock.exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    lock.write_text(dead)  # left by a run that was killed
    assert run(["train", *QUICK, "--out", str(out)], capsys)[0] == 0
    assert not lock.exists()


def test_abbreviated_flags_are_refused_so_a_printed_command_is_exact(capsys) -> None:
    status, _, err = run(["train", "--over"], capsys)
    assert status == 2 and "unrecognized arguments: --over" in err


def test_a_run_from_before_validation_splits_resumes_with_honest_labels(tmp_path,
                                                                         capsys) -> None:
    out = tmp_path / "run"
    flags = ["--epochs", "2", "--hidden", "16", "--no-progress", "--batch-size", "256",
             "--out", str(out)]
    save = CheckpointCallback.after_epoch

    def stop(self, learner) -> None:
        save(self, learner)
        raise KeyboardInterrupt

    CheckpointCallback.after_epoch = stop
    try:
        assert run(["train", *flags], capsys)[0] == 130
    finally:
        CheckpointCallback.after_epoch = save
    path = out / "checkpoint.safetensors"
    state, optimizer, info = io.load_checkpoint(path)
    del info["config"]["valid_split"]  # as a checkpoint written before --valid-split
    info["history"] = [{"epoch": r["epoch"], "train_loss": r["train_loss"],
                        "valid_loss": r["test_loss"], "accuracy": r["test_accuracy"],
                        "seconds": r["seconds"]} for r in info["history"]]
    io.save_checkpoint(path, state, optimizer, info)
    status, printed, err = run(["train", *flags, "--resume"], capsys)
    assert status == 0, err
    history = json.loads((out / "metrics.json").read_text())["history"]
    assert [sorted(row) for row in history] == [
        ["epoch", "seconds", "test_accuracy", "test_loss", "train_loss"]] * 2


def test_check_usage_mistakes_are_usage_errors(tmp_path, capsys) -> None:
    status, _, err = run(["check", "chainrule.nn:ReLU", "--input", "3", "--wrt", "5"], capsys)
    assert status == 2 and "--wrt 5: chainrule.nn:ReLU takes 1 input (positions 0 to 0)" in err
    status, _, err = run(["check", "chainrule.nn:ReLU", "--input", "3,x"], capsys)
    assert status == 2 and "must be an array shape" in err
    status, _, err = run(["check", str(tmp_path / "nope.py") + ":X", "--input", "3"], capsys)
    assert status == 2 and err.count("check:") == 1 and "no such file" in err


def test_conv_runs_start_with_a_short_blas_spin_unless_one_was_chosen() -> None:
    parser = cli.build_parser()
    conv = parser.parse_args(["train", "--model", "cnn"])
    mlp = parser.parse_args(["train"])
    assert cli._tuned_environment(conv, {"PATH": "/bin"}) == {
        "PATH": "/bin", "OPENBLAS_THREAD_TIMEOUT": cli.CONV_BLAS_SPIN}
    assert cli._tuned_environment(conv, {"OPENBLAS_THREAD_TIMEOUT": "0"}) is None
    assert cli._tuned_environment(mlp, {}) is None
    assert cli._tuned_environment(parser.parse_args(["evaluate", "c.safetensors"]), {}) is None


def test_a_conv_run_from_the_shell_starts_itself_again_with_the_spin(monkeypatch) -> None:
    started = []

    def execve(path, argv, env):
        started.append((argv, env.get("OPENBLAS_THREAD_TIMEOUT")))
        raise SystemExit(0)

    monkeypatch.setattr(cli.os, "execve", execve)
    monkeypatch.setattr(cli, "train", lambda args: 0)
    monkeypatch.delenv("OPENBLAS_THREAD_TIMEOUT", raising=False)
    line = ["train", "--model", "cnn", "--epochs", "1"]
    monkeypatch.setattr(sys, "argv", ["/venv/bin/chainrule", *line])
    monkeypatch.setattr(sys, "orig_argv", ["python3", "-X", "dev", "/venv/bin/chainrule", *line])
    assert main() == 0 and main(line) == 0 and started == []  # a program's own process: kept
    with pytest.raises(SystemExit):
        cli.command()
    # started again as it was started: the interpreter's flags and the script, not `-m`
    assert started == [([sys.executable, "-X", "dev", "/venv/bin/chainrule", *line],
                        cli.CONV_BLAS_SPIN)]
    monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", cli.CONV_BLAS_SPIN)  # as the child has it
    assert cli.command() == 0 and len(started) == 1  # the child runs: no second start
