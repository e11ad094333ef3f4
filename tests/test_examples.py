"""The examples run, and say what they should: each is executed as a user would run it."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WALKTHROUGH = ROOT / "examples" / "seed_walkthrough.py"
HAS_TORCH = importlib.util.find_spec("torch") is not None


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          check=False, timeout=300)


@pytest.fixture(scope="module")
def walkthrough() -> str:
    result = run(str(WALKTHROUGH))
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


def test_every_step_runs(walkthrough: str) -> None:
    for step in range(1, 10):
        assert f"Step {step}. " in walkthrough


def test_data_and_shapes_are_reported(walkthrough: str) -> None:
    assert "n = 8000 images, m = 784 pixels per image, c = 10 classes" in walkthrough
    assert "res.shape = (2000, 1)" in walkthrough
    # The broadcast bug is shown, then fixed.
    assert "(res - y_test).shape = (2000, 2000)" in walkthrough
    assert "(res[:, 0] - y_test).shape = (2000,)" in walkthrough


def test_unscaled_matmuls_blow_up(walkthrough: str) -> None:
    block = walkthrough.split("x[0:5, 0:5] =", 1)[1].split("It blew up", 1)[0]
    values = re.findall(r"-?\b(?:nan|inf)\b|-?\d+\.\d*(?:e[+-]?\d+)?", block)
    assert values and all(v.lstrip("-") in ("nan", "inf") for v in values), block
    assert "It blew up" in walkthrough


def test_kaiming_keeps_the_scale(walkthrough: str) -> None:
    rows = re.findall(r"^\s+50\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$",
                      walkthrough, re.MULTILINE)
    assert len(rows) == 1, "expected one table row for layer 50"
    _, a_std, _, _, b_rms, c_rms = map(float, rows[0])
    assert 0.3 < a_std < 3 and 0.3 < b_rms < 3  # order 1, nowhere near inf or 0
    assert c_rms < 1e-5  # without Kaiming's factor 2 the relu net's signal dies


def test_all_gradient_checks_agree(walkthrough: str) -> None:
    agree = [line for line in walkthrough.splitlines() if line.rstrip().endswith("agree")]
    summary = re.search(r"Summary: all (\d+) checks agree", walkthrough)
    assert summary, "the summary line is missing"
    assert int(summary.group(1)) == len(agree) >= 30
    assert "disagree" not in walkthrough
    # Every route to the gradients was compared with step 5's hand-written ones.
    for route in ("chainrule autograd:", "after model.backward()", "HandWritten node",
                  "Mixing both kinds", "transposed where needed"):
        assert route in walkthrough


def test_the_two_mse_versions_agree(walkthrough: str) -> None:
    hand = re.search(r"hand-written mse\(preds, y_train\) = (\S+)", walkthrough)
    builtin = re.search(r"cr\.mse\(preds, y_train\)\s+= (\S+)", walkthrough)
    assert hand and builtin
    assert float(hand.group(1)) == pytest.approx(float(builtin.group(1)), rel=1e-6)


@pytest.mark.skipif(not HAS_TORCH, reason="PyTorch is not installed")
def test_the_pytorch_comparisons_ran(walkthrough: str) -> None:
    assert "PyTorch autograd:   loss" in walkthrough
    assert "chainrule vs PyTorch, parameter by parameter:" in walkthrough
    for name in ("0.weight", "0.bias", "2.weight", "2.bias"):
        assert re.search(rf"^\s+{re.escape(name)}\s+shape .* agree$", walkthrough, re.MULTILINE)
    assert "skipped" not in walkthrough


def test_a_wrong_hand_written_gradient_makes_the_script_fail() -> None:
    # The checks must have teeth: break relu_grad (forget the mask) and the run must fail.
    code = textwrap.dedent(f"""
        import importlib.util
        spec = importlib.util.spec_from_file_location("walkthrough", {str(WALKTHROUGH)!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)

        def relu_grad(inp, out):
            inp.g = out.g

        module.relu_grad = relu_grad
        module.main()
    """)
    result = run("-c", code)
    assert result.returncode != 0
    assert "AssertionError" in result.stderr
    assert "w1 disagrees" in result.stderr


def test_the_script_runs_without_pytorch() -> None:
    # PyTorch is only a second opinion: with `import torch` failing, the run still passes.
    code = textwrap.dedent(f"""
        import runpy, sys
        sys.modules["torch"] = None  # makes `import torch` raise ImportError
        runpy.run_path({str(WALKTHROUGH)!r}, run_name="__main__")
    """)
    result = run("-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("PyTorch is not installed: the PyTorch check is skipped.") == 2
    assert re.search(r"Summary: all \d+ checks agree \(PyTorch is not installed", result.stdout)


def test_the_conv_net_example_checks_compares_and_trains(tmp_path) -> None:
    result = run(str(ROOT / "examples" / "conv_net.py"), "--epochs", "1", "--channels", "4",
                 "8", "--out", str(tmp_path))
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    out = result.stdout
    assert "hand-written Conv: passed" in out
    assert "backward is 0.25 times the true gradient" in out  # the averaged-batch slip
    assert "OK: every layer agrees with torch" in out
    accuracy = float(re.search(r"test accuracy (\d\.\d+)", out).group(1))
    assert accuracy > 0.5
    assert (tmp_path / "layer_histograms.png").read_bytes()[:4] == b"\x89PNG"
