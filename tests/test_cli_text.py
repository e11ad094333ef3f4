"""The command line for language models: `chainrule train --model gpt` (bundled Shakespeare or
`--text FILE`), resuming it bit for bit, and `chainrule sample`, with their bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from chainrule import cli, io, models
from chainrule.cli import main
from chainrule.train import CheckpointCallback

# A model of a few thousand parameters, a few steps: seconds, not minutes.
TINY = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "8",
        "--batch-size", "4", "--steps", "6", "--eval-every", "3", "--eval-batches", "2",
        "--warmup-steps", "2", "--no-progress"]
TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
        "All:\nSpeak, speak.\n\n") * 12


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    """main(argv) as a shell would see it: exit status, stdout, stderr."""
    try:
        status = main(argv)
    except SystemExit as exit_info:  # argparse's own exits
        status = exit_info.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
def text_file(tmp_path) -> Path:
    path = tmp_path / "citizens.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.fixture
def trained(tmp_path, text_file, capsys) -> Path:
    """The checkpoint of a tiny run on a text file of the user's."""
    out = tmp_path / "run"
    status, _, err = run(["train", "--text", str(text_file), *TINY, "--out", str(out)], capsys)
    assert status == 0, err
    return out / "checkpoint.safetensors"


def _without_seconds(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


# ----------------------------------------------------------------------------- train
def test_the_default_gpt_run_is_nanogpts_cpu_configuration() -> None:
    args = cli.build_parser().parse_args(["train", "--model", "gpt"])
    cli._settings(args)
    assert args.dataset == "shakespeare-char" and args.text is None
    assert (args.n_layer, args.n_head, args.n_embd, args.block_size, args.batch_size) == (
        4, 4, 128, 64, 12)
    assert (args.lr, args.min_lr, args.warmup_steps, args.beta2, args.weight_decay) == (
        1e-3, 1e-4, 100, 0.99, 0.1)
    assert (args.dropout, args.grad_clip, args.steps) == (0.0, 1.0, 2000)
    assert cli._default_out(args) == Path("runs/shakespeare-char-gpt")
    # a text dataset or file alone means the gpt
    for argv in (["train", "--dataset", "shakespeare-char"], ["train", "--text", "a.txt"]):
        args = cli.build_parser().parse_args(argv)
        cli._settings(args)
        assert args.model == "gpt"
    args = cli.build_parser().parse_args(["train", "--text", "data/my.txt"])
    cli._settings(args)
    assert cli._default_out(args) == Path("runs/my-gpt")


def test_the_optimizer_is_nanogpts_decay_on_matrices_only_and_warmup_cosine() -> None:
    config = {"lr": 1e-3, "beta2": 0.99, "weight_decay": 0.1, "warmup_steps": 2, "steps": 10,
              "min_lr": 1e-4}
    model = models.gpt(vocab_size=7, block_size=4, n_layer=1, n_head=1, n_embd=4)
    optimizer, scheduler = cli._text_optimizer(model, config)
    decayed, plain = optimizer.param_groups
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert all(p.ndim == 2 for p in decayed["params"]) and all(p.ndim == 1
                                                              for p in plain["params"])
    assert len(decayed["params"]) + len(plain["params"]) == len(model.parameters())
    assert decayed["betas"] == (0.9, 0.99)
    rates = []
    for _ in range(12):
        rates.append(optimizer.param_groups[0]["lr"])
        scheduler.step()
    assert rates[0] == pytest.approx(1e-3 / 3) and rates[2] == pytest.approx(1e-3)
    assert rates[10] == pytest.approx(1e-4) and rates[11] == pytest.approx(1e-4)


def test_a_gpt_run_on_shakespeare_writes_its_run_and_a_sample(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    status, printed, err = run(["train", "--model", "gpt", *TINY, "--out", str(out)], capsys)
    assert status == 0, err
    assert "training gpt" in printed and "on shakespeare-char" in printed
    assert "step 3/6" in printed and "step 6/6" in printed and "valid_loss" in printed
    assert "a sample (temperature 0.8):" in printed
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.safetensors", "loss_curve.png", "metrics.json", "model.safetensors"]
    assert (out / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    metrics = json.loads((out / "metrics.json").read_text())
    assert [row["step"] for row in metrics["evaluations"]] == [3, 6]
    assert 0 < metrics["valid"]["loss"] < 5 and metrics["seconds_per_step"] > 0
    config = metrics["config"]
    assert config["task"] == "text" and config["data"]["vocab"]["chars"].startswith("\n !")
    assert config["model"]["kwargs"]["vocab_size"] == 66
    info = io.load_checkpoint(out / "checkpoint.safetensors")[2]
    assert info["step"] == 6 and info["config"] == config
    # the second command of a run into the same folder changes nothing
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    status, _, err = run(["train", "--model", "gpt", *TINY, "--out", str(out)], capsys)
    assert status == 2 and "already holds a run" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_text_file_trains_and_its_vocabulary_is_kept_for_sampling(trained, text_file,
                                                                    capsys) -> None:
    config = io.load_checkpoint(trained)[2]["config"]
    assert config["data"]["name"] == "citizens.txt"
    assert config["data"]["vocab"]["chars"] == "".join(sorted(set(TEXT)))
    text_file.unlink()  # sampling needs nothing but the checkpoint
    status, printed, err = run(["sample", str(trained), "--prompt", "All:", "--tokens", "40",
                                "--seed", "3"], capsys)
    assert status == 0, err
    assert printed.startswith("All:") and len(printed.rstrip("\n")) >= 44
    assert set(printed) <= set(TEXT)
    again = run(["sample", str(trained), "--prompt", "All:", "--tokens", "40", "--seed", "3"],
                capsys)[1]
    other = run(["sample", str(trained), "--prompt", "All:", "--tokens", "40", "--seed", "4",
                 "--top-k", "3", "--temperature", "1.5"], capsys)[1]
    assert again == printed and other != printed
    assert run(["sample", str(trained), "--tokens", "0"], capsys)[1] == "\n"  # the prompt


def test_an_interrupted_gpt_run_resumes_bit_for_bit(tmp_path, text_file, capsys,
                                                    monkeypatch) -> None:
    # dropout: its masks' random stream must come back as well
    flags = ["train", "--text", str(text_file), *TINY, "--steps", "8", "--eval-every", "2",
             "--dropout", "0.1"]
    straight, run_dir = tmp_path / "straight", tmp_path / "run"
    assert run([*flags, "--out", str(straight)], capsys)[0] == 0

    save = CheckpointCallback._save

    def save_then_stop(self, learner) -> None:
        save(self, learner)
        if learner.step == 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(CheckpointCallback, "_save", save_then_stop)
    status, _, err = run([*flags, "--out", str(run_dir)], capsys)
    assert status == 130 and "(after step 4) is kept" in err
    command = err.strip().splitlines()[-1].strip()
    assert command.startswith("chainrule train") and command.endswith("--resume")
    monkeypatch.setattr(CheckpointCallback, "_save", save)
    status, printed, err = run(command.split()[1:], capsys)  # the printed command, as is
    assert status == 0, err
    assert "resuming from" in printed and "after step 4" in printed
    # (the files' bytes may differ: safetensors writes its metadata keys in any order)
    weights = io.load_weights(run_dir / "model.safetensors")
    expected = io.load_weights(straight / "model.safetensors")
    assert weights.keys() == expected.keys()
    for key, value in expected.items():
        assert weights[key].dtype == value.dtype and np.array_equal(weights[key], value), key
    resumed = json.loads((run_dir / "metrics.json").read_text())
    whole = json.loads((straight / "metrics.json").read_text())
    assert _without_seconds(resumed["evaluations"]) == _without_seconds(whole["evaluations"])
    assert resumed["valid"] == whole["valid"] and resumed["config"] == whole["config"]

    status, _, err = run([*flags, "--lr", "0.01", "--resume", "--out", str(run_dir)], capsys)
    assert status == 2 and "different settings (lr)" in err
    text_file.write_text(TEXT + "More text.\n", encoding="utf-8")
    status, _, err = run([*flags, "--resume", "--out", str(run_dir)], capsys)
    assert status == 2 and "trained on another text (citizens.txt" in err


def test_an_interrupt_before_the_first_checkpoint_says_nothing_was_saved(
        tmp_path, text_file, capsys, monkeypatch) -> None:
    def stop(self, learner) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(CheckpointCallback, "after_batch", stop)
    status, _, err = run(["train", "--text", str(text_file), *TINY, "--out",
                          str(tmp_path / "run")], capsys)
    assert status == 130 and "before the first checkpoint (step 3)" in err


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("argv, message", [
    (["train", "--model", "mlp", "--text", "a.txt"], "is text, and the mlp model takes images"),
    (["train", "--model", "cnn", "--dataset", "shakespeare-char"], "train it with --model gpt"),
    (["train", "--model", "gpt", "--dataset", "mnist"], "--dataset mnist holds images"),
    (["train", "--text", "a.txt", "--dataset", "shakespeare-char"], "not both"),
    (["train", "--model", "gpt", "--epochs", "3"], "--epochs is for the image models"),
    (["train", "--model", "gpt", "--hidden", "8"], "--hidden is for the image models"),
    (["train", "--model", "gpt", "--schedule", "step"], "--schedule is for the image models"),
    (["train", "--model", "gpt", "--flip"], "--flip is for the image models"),
    (["train", "--model", "gpt", "--optimizer", "sgd"], "trains with adamw"),
    (["train", "--model", "gpt", "--n-embd", "30", "--n-head", "4"], "multiple of --n-head"),
    (["train", "--model", "gpt", "--steps", "50"], "--warmup-steps 100 must be fewer than"),
    (["train", "--model", "gpt", "--min-lr", "0.01"], "--min-lr 0.01 is above --lr 0.001"),
    (["train", "--steps", "10"], "--steps is for language models (--model gpt)"),
    (["train", "--model", "resnet", "--n-layer", "2"], "--n-layer is for language models"),
    (["lr-find", "--model", "gpt"], "lr-find is for the image models"),
    (["train", "--model", "gpt", "--beta2", "1"], "--beta2: must be a number in [0, 1)"),
    (["train", "--model", "gpt", "--grad-clip", "-1"], "--grad-clip: must be zero or more"),
    (["sample", "c.safetensors", "--temperature", "0"], "--temperature: must be a positive"),
    (["sample", "c.safetensors", "--temperature", "1e-320"], "number from 1e-6 to 1e6"),
    (["sample", "c.safetensors", "--tokens", "-5"], "--tokens: must be a whole number"),
    (["sample", "c.safetensors", "--top-k", "0"], "--top-k: must be a positive integer"),
    (["sample"], "the following arguments are required: checkpoint"),
])
def test_flags_a_text_run_cannot_use_are_usage_errors(argv, message, capsys) -> None:
    status, printed, err = run(argv, capsys)
    assert status == 2 and message in err, err
    assert "Traceback" not in err and "training" not in printed


def test_a_block_longer_than_the_text_allows_is_refused_before_training(tmp_path,
                                                                        capsys) -> None:
    short = tmp_path / "short.txt"
    short.write_text("to be or not to be, that is the question\n" * 3, encoding="utf-8")
    status, printed, err = run(["train", "--text", str(short), *TINY, "--block-size", "64",
                                "--out", str(tmp_path / "o")], capsys)
    assert status == 1 and "--block-size 64 is too long for" in err
    assert "use --block-size 12 or less" in err
    assert "training" not in printed and len(err.strip().splitlines()) == 1
    status, _, err = run(["train", "--text", str(tmp_path / "none.txt"), *TINY, "--out",
                          str(tmp_path / "o")], capsys)
    assert status == 1 and "no such file" in err
    binary = tmp_path / "weights.bin"
    binary.write_bytes(b"\x00\x01" * 100)
    status, _, err = run(["train", "--text", str(binary), *TINY, "--out",
                          str(tmp_path / "o")], capsys)
    assert status == 1 and "binary, not text" in err


def test_sample_refuses_a_prompt_outside_the_vocabulary(trained, capsys) -> None:
    status, printed, err = run(["sample", str(trained), "--prompt", "Zeal?"], capsys)
    assert status == 2 and printed == ""
    assert "--prompt has 2 character(s) the model never saw: '?Z'" in err
    status, _, err = run(["sample", str(trained), "--prompt", ""], capsys)
    assert status == 2 and "--prompt is empty" in err


def test_sample_refuses_a_checkpoint_that_is_not_a_text_model(tmp_path, trained,
                                                              capsys) -> None:
    image = tmp_path / "mlp.safetensors"
    model = models.mlp(hidden=[4])
    io.save_checkpoint(image, model.state_dict(), {}, {"config": {
        "dataset": "mnist-sample", "model": {"name": "mlp", "kwargs": {"hidden": [4]}}}})
    status, _, err = run(["sample", str(image)], capsys)
    assert status == 1 and "is a checkpoint of an image model (mlp on mnist-sample)" in err
    assert "chainrule evaluate" in err and len(err.strip().splitlines()) == 1

    bare = tmp_path / "bare.safetensors"
    io.save_checkpoint(bare, model.state_dict(), {}, {})
    status, _, err = run(["sample", str(bare)], capsys)
    assert status == 1 and "no config" in err

    status, _, err = run(["sample", str(tmp_path / "missing.safetensors")], capsys)
    assert status == 1 and "Traceback" not in err and err.strip()

    # a vocabulary that does not fit the model, and weights that are not finite
    state, optimizer, info = io.load_checkpoint(trained)
    info["config"]["data"]["vocab"]["chars"] = "ab"
    io.save_checkpoint(tmp_path / "vocab.safetensors", state, optimizer, info)
    status, _, err = run(["sample", str(tmp_path / "vocab.safetensors")], capsys)
    assert status == 1 and "its vocabulary has 2 characters" in err
    state, optimizer, info = io.load_checkpoint(trained)
    state["transformer.wte.weight"][0, 0] = np.nan
    io.save_checkpoint(tmp_path / "nan.safetensors", state, optimizer, info)
    status, _, err = run(["sample", str(tmp_path / "nan.safetensors")], capsys)
    assert status == 1 and "not finite (transformer.wte.weight)" in err


def test_evaluate_points_a_text_checkpoint_to_sample(trained, capsys) -> None:
    status, _, err = run(["evaluate", str(trained)], capsys)
    assert status == 1 and "language model's checkpoint" in err and "chainrule sample" in err
