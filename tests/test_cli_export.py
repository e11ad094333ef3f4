"""`chainrule export CHECKPOINT --onnx FILE`: the file runs alone, with its preprocessing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from chainrule import data, io, models
from chainrule.cli import main

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")

QUICK = ["--epochs", "1", "--no-progress", "--batch-size", "256"]
TINY_GPT = ["--model", "gpt", "--n-layer", "1", "--n-head", "2", "--n-embd", "16",
            "--block-size", "8", "--batch-size", "4", "--steps", "2", "--eval-every", "2",
            "--eval-batches", "1", "--warmup-steps", "1", "--no-progress"]


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        status = main(argv)
    except SystemExit as exit_info:
        status = exit_info.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def session(path) -> tuple[object, dict[str, str]]:
    proto = onnx.load(str(path))
    meta = {p.key: p.value for p in proto.metadata_props}
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]), meta


@pytest.mark.parametrize("model", [["--hidden", "32"],
                                   ["--model", "cnn", "--channels", "4", "--hidden", "8"]],
                         ids=["mlp", "cnn"])
def test_an_exported_image_model_classifies_the_test_images_as_chainrule(tmp_path, capsys,
                                                                         model) -> None:
    status, _, err = run(["train", *QUICK, *model, "--out", str(tmp_path / "run")], capsys)
    assert status == 0, err
    checkpoint = tmp_path / "run" / "checkpoint.safetensors"
    target = tmp_path / "model.onnx"
    status, out, err = run(["export", str(checkpoint), "--onnx", str(target)], capsys)
    assert status == 0, err
    assert "matches chainrule to" in out
    runtime, meta = session(target)
    # The file alone: its metadata says how to turn raw pixels into its input.
    mean, std = json.loads(meta["chainrule.normalize"])
    classes = json.loads(meta["chainrule.classes"])
    assert classes == list(data.class_names("mnist-sample"))
    assert float(meta["chainrule.onnxruntime_check"]) <= 1e-5
    splits = data.load_dataset("mnist-sample")
    pixels = splits.test.x[:300].astype(np.float32) / 255
    x = (pixels - mean) / std
    x = x.reshape(300, -1) if "--model" not in model else x[:, None]
    logits = runtime.run(None, {"input": x.astype(np.float32)})[0]
    state, _, info = io.load_checkpoint(checkpoint)
    config = json.loads(meta["chainrule.config"])
    assert config == info["config"]
    net = models.build_model(config["model"]["name"], **config["model"]["kwargs"])
    net.load_state_dict(state)
    net.eval()
    ours = net(x.astype(np.float32)).data
    np.testing.assert_allclose(logits, ours, rtol=1e-4, atol=1e-5 * np.abs(ours).max())
    assert np.array_equal(logits.argmax(1), ours.argmax(1))
    assert (logits.argmax(1) == splits.test.y[:300]).mean() > 0.3  # chance is 0.1


def test_an_exported_gpt_carries_its_vocabulary(tmp_path, capsys) -> None:
    status, _, err = run(["train", *TINY_GPT, "--out", str(tmp_path / "run")], capsys)
    assert status == 0, err
    target = tmp_path / "gpt.onnx"
    status, out, err = run(["export", str(tmp_path / "run" / "checkpoint.safetensors"),
                            "--onnx", str(target)], capsys)
    assert status == 0, err
    runtime, meta = session(target)
    vocab = meta["chainrule.vocabulary"]
    ids = np.array([[vocab.index(c) for c in "ROMEO:\nA"]] * 3, np.int64)
    logits = runtime.run(None, {"input": ids})[0]
    assert logits.shape == (3, 8, len(vocab)) and np.isfinite(logits).all()


def test_export_refuses_to_overwrite_and_names_missing_pieces(tmp_path, capsys) -> None:
    status, _, err = run(["train", *QUICK, "--hidden", "8", "--out", str(tmp_path / "r")],
                         capsys)
    assert status == 0, err
    checkpoint = str(tmp_path / "r" / "checkpoint.safetensors")
    target = tmp_path / "mine.onnx"
    target.write_bytes(b"keep me")
    status, _, err = run(["export", checkpoint, "--onnx", str(target)], capsys)
    assert status == 2 and "exists; pass --overwrite" in err
    assert target.read_bytes() == b"keep me"
    status, _, err = run(["export", checkpoint, "--onnx", str(target), "--overwrite"], capsys)
    assert status == 0, err
    assert onnx.load(str(target)).graph.node
    status, _, err = run(["export", str(tmp_path / "nothing.safetensors"), "--onnx",
                          str(tmp_path / "x.onnx")], capsys)
    assert status == 1 and "nothing.safetensors" in err and "Traceback" not in err
    assert not (tmp_path / "x.onnx").exists()


def test_export_of_the_training_forward_says_it_was_not_compared(tmp_path, capsys) -> None:
    status, _, err = run(["train", *QUICK, "--model", "cnn", "--channels", "4", "--hidden",
                          "8", "--out", str(tmp_path / "r")], capsys)
    assert status == 0, err
    status, out, err = run(["export", str(tmp_path / "r" / "checkpoint.safetensors"),
                            "--onnx", str(tmp_path / "t.onnx"), "--training"], capsys)
    assert status == 0, err
    assert "not run in onnxruntime (it draws dropout masks)" in out
    _, meta = session(tmp_path / "t.onnx")
    assert meta["chainrule.training_mode"] == "true"
