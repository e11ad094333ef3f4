"""The command line: train, evaluate, lr-find, --help, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from chainrule import io
from chainrule.cli import main
from chainrule.train import CheckpointCallback

QUICK = ["--epochs", "1", "--hidden", "32", "--no-progress", "--batch-size", "256"]


def test_train_writes_checkpoint_weights_metrics_and_curve(tmp_path, capsys) -> None:
    assert main(["train", *QUICK, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "epoch 1/1" in out and "test accuracy 0." in out
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["checkpoint.safetensors", "loss_curve.png", "metrics.json",
                     "model.safetensors"]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] > 0.7 and len(metrics["history"]) == 1
    assert (tmp_path / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"

    assert main(["evaluate", str(tmp_path / "checkpoint.safetensors")]) == 0
    reported = capsys.readouterr().out
    assert f"accuracy {metrics['test']['accuracy']:.4f}" in reported


@pytest.mark.parametrize("model", [
    ["--hidden", "16"],
    # BatchNorm buffers and Dropout's random stream must come back too.
    ["--model", "cnn", "--channels", "4", "--hidden", "8", "--flip"],
], ids=["mlp", "cnn"])
def test_an_interrupted_run_resumes_to_the_same_result(tmp_path, monkeypatch, capsys,
                                                        model) -> None:
    flags = ["--epochs", "2", *model, "--no-progress", "--batch-size", "256"]
    assert main(["train", *flags, "--out", str(tmp_path / "straight")]) == 0
    straight = json.loads((tmp_path / "straight" / "metrics.json").read_text())

    save = CheckpointCallback.after_epoch

    def save_then_crash(self, learner) -> None:
        save(self, learner)
        raise KeyboardInterrupt

    monkeypatch.setattr(CheckpointCallback, "after_epoch", save_then_crash)
    assert main(["train", *flags, "--out", str(tmp_path / "run")]) == 130
    monkeypatch.setattr(CheckpointCallback, "after_epoch", save)
    capsys.readouterr()
    assert main(["train", *flags, "--resume", "--out", str(tmp_path / "run")]) == 0
    assert "resuming from" in capsys.readouterr().out
    resumed = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for row in (*resumed["history"], resumed["test"]):
        row.pop("seconds", None)
    for row in (*straight["history"], straight["test"]):
        row.pop("seconds", None)
    assert resumed["history"] == straight["history"] and resumed["test"] == straight["test"]

    assert main(["train", *flags, "--lr", "0.01", "--resume", "--out",
                 str(tmp_path / "run")]) == 2
    assert "different settings (lr)" in capsys.readouterr().err
    assert main(["train", *flags, "--hidden", "12", "--resume", "--out",
                 str(tmp_path / "run")]) == 2
    assert "different settings (model)" in capsys.readouterr().err


def test_help_reads_well_and_python_dash_m_works() -> None:
    result = subprocess.run([sys.executable, "-m", "chainrule", "train", "--help"],
                            capture_output=True, text=True, check=True)
    for flag in ("--dataset", "--model", "--epochs", "--lr", "--batch-size", "--seed", "--out"):
        assert flag in result.stdout
    top = subprocess.run([sys.executable, "-m", "chainrule", "--help"], capture_output=True,
                         text=True, check=True)
    assert "train" in top.stdout and "evaluate" in top.stdout


@pytest.mark.parametrize("argv, message", [
    (["train", "--epochs", "0"], "--epochs: must be a positive integer"),
    (["train", "--lr", "-1"], "--lr: must be a positive number"),
    (["train", "--lr", "fast"], "--lr: must be a number"),
    (["train", "--hidden", "32,x"], "--hidden: must be comma-separated"),
    (["train", "--dataset", "cifar"], "invalid choice: 'cifar'"),
    (["train", "--bogus"], "unrecognized arguments: --bogus"),
    ([], "the following arguments are required: COMMAND"),
    (["train", "--model", "cnn", "--channels", "8,8,8,8,8"], "5 pooling stages"),
    (["train", "--model", "mlp", "--channels", "8"], "--channels is for the cnn and resnet"),
    (["train", "--model", "resnet", "--hidden", "8"], "--hidden is for the mlp and cnn"),
    (["train", "--model", "cnn", "--hidden", "8,8"], "one hidden classifier layer"),
    (["train", "--model", "mlp", "--dropout", "0.1"], "--dropout is for the cnn model"),
    (["train", "--model", "cnn", "--dropout", "1"], "--dropout: must be a number in [0, 1)"),
])
def test_bad_flags_get_argparse_messages_and_exit_2(argv, message, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_missing_dataset_lists_where_it_looked(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("CHAINRULE_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr("chainrule.data.datasets.SYSTEM_DATA_DIRS", [tmp_path / "system"])
    assert main(["train", "--dataset", "mnist", *QUICK, "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "nowhere" in err and "download" in err.lower()


def test_evaluate_refuses_a_checkpoint_of_another_architecture(tmp_path, capsys) -> None:
    assert main(["train", *QUICK, "--out", str(tmp_path)]) == 0
    path = tmp_path / "checkpoint.safetensors"
    state, optimizer, info = io.load_checkpoint(path)
    info["config"]["model"]["kwargs"]["hidden"] = [64]
    io.save_checkpoint(path, state, optimizer, info)
    capsys.readouterr()
    assert main(["evaluate", str(path)]) == 1
    assert "0.weight: the settings give (64, 784), the file has (32, 784)" in \
        capsys.readouterr().err


def test_evaluate_refuses_a_corrupt_checkpoint(tmp_path, capsys) -> None:
    path = tmp_path / "checkpoint.safetensors"
    path.write_bytes(np.arange(10, dtype=np.uint8).tobytes())
    assert main(["evaluate", str(path)]) == 1
    assert "truncated or corrupt" in capsys.readouterr().err


def test_a_diverging_run_stops_with_a_message(tmp_path, capsys) -> None:
    argv = ["train", *QUICK, "--lr", "1e9", "--schedule", "none", "--optimizer", "sgd",
            "--out", str(tmp_path)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "training stopped" in err and "learning rate 1e+09" in err


def test_lr_find_writes_a_plot(tmp_path, capsys) -> None:
    assert main(["lr-find", "--hidden", "16", "--out", str(tmp_path)]) == 0
    assert "suggested learning rate" in capsys.readouterr().out
    assert (tmp_path / "lr_find.png").exists()


def test_the_sentinel_flag_names_the_first_non_finite_op(tmp_path, capsys) -> None:
    argv = ["train", *QUICK, "--lr", "1e9", "--schedule", "none", "--optimizer", "sgd",
            "--sentinel", "--out", str(tmp_path)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "training stopped" in err and "produced" in err and "at step" in err


def test_the_stats_flag_writes_layer_pictures(tmp_path, capsys) -> None:
    assert main(["train", *QUICK, "--stats", "--out", str(tmp_path)]) == 0
    assert "act std" in capsys.readouterr().out
    for name in ("layer_stats.png", "layer_histograms.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_a_checkpoint_from_before_a_new_setting_still_resumes(tmp_path, capsys) -> None:
    flags = [*QUICK, "--out", str(tmp_path)]
    assert main(["train", *flags]) == 0
    path = tmp_path / "checkpoint.safetensors"
    state, optimizer, info = io.load_checkpoint(path)
    del info["config"]["flip"]  # written before --flip existed
    io.save_checkpoint(path, state, optimizer, info)
    capsys.readouterr()
    assert main(["train", *flags, "--epochs", "2", "--resume"]) == 2  # epochs differ: refused
    assert "different settings (epochs)" in capsys.readouterr().err
    assert main(["train", *flags, "--resume"]) == 0
    assert "resuming from" in capsys.readouterr().out


def test_evaluate_uses_its_batch_size(tmp_path, monkeypatch, capsys) -> None:
    assert main(["train", *QUICK, "--out", str(tmp_path)]) == 0
    from chainrule import cli

    seen = []
    loaders = cli._loaders

    def spy(*args, **kwargs):
        train, valid, test = loaders(*args, **kwargs)
        seen.append(test.batch_size)
        return train, valid, test

    monkeypatch.setattr(cli, "_loaders", spy)
    assert main(["evaluate", str(tmp_path / "checkpoint.safetensors"), "--batch-size",
                 "123"]) == 0
    assert seen == [123]


def test_the_conv_recipes_train_evaluate_and_record_stats(tmp_path, capsys) -> None:
    flags = ["--epochs", "1", "--no-progress", "--batch-size", "256"]
    assert main(["train", "--model", "resnet", "--channels", "4,8", *flags,
                 "--out", str(tmp_path / "resnet")]) == 0
    assert "training resnet" in capsys.readouterr().out
    assert main(["evaluate", str(tmp_path / "resnet" / "checkpoint.safetensors")]) == 0
    assert "accuracy 0." in capsys.readouterr().out
    assert main(["train", "--model", "cnn", "--channels", "4", "--hidden", "8", "--stats",
                 *flags, "--out", str(tmp_path / "cnn")]) == 0
    assert (tmp_path / "cnn" / "layer_histograms.png").exists()
    metrics = json.loads((tmp_path / "cnn" / "metrics.json").read_text())
    assert metrics["config"]["model"] == {"name": "cnn", "kwargs": {
        "channels": [4], "hidden": 8, "dropout": 0.1}}
