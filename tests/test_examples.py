"""The examples run, and say what they should: each is executed as a user would run it."""

from __future__ import annotations

import importlib.util
import math
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
    for step in range(1, 11):
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


def test_the_attention_walkthrough_checks_catches_and_trains() -> None:
    script = str(ROOT / "examples" / "attention_walkthrough.py")
    result = run(script, "--steps", "30", "--eval-every", "15", "--n-layer", "1", "--n-head",
                 "2", "--n-embd", "32", "--tokens", "80")
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    out = result.stdout
    for step in range(1, 7):
        assert f"Step {step}. " in out
    assert "check CausalAttention: OK, 3 gradients agree with finite differences" in out
    # Both slips are caught, and the second with check's diagnosis of a factor of sqrt(4).
    assert "check SoftmaxAsIfElementwise: FAILED" in out
    assert "-> caught: SoftmaxAsIfElementwise" in out
    assert "-> caught: ForgetsTheScale" in out
    assert "backward is 2 times the true gradient" in out
    against = ["the op"] + (["PyTorch"] if HAS_TORCH else [])
    for reference in against:
        rows = re.findall(rf"^\s+(\S+): CausalAttention vs {reference}\s+max \|diff\| (\S+)"
                          r"\s+agree$", out, re.MULTILINE)
        assert [name for name, _ in rows] == ["output", "q.grad", "k.grad", "v.grad"], out
        assert all(float(diff) < 1e-12 for _, diff in rows)
    # Training learns: from about ln(66), a uniform guess, clearly down in 30 steps.
    before = float(re.search(r"before training: validation loss (\d+\.\d+)", out).group(1))
    after = float(re.search(r"after 30 steps: validation loss (\d+\.\d+)", out).group(1))
    assert abs(before - math.log(66)) < 0.15
    assert after < before - 0.3
    assert len(re.findall(r"^step (15|30)/30\s+train_loss", out, re.MULTILINE)) == 2
    sample = out.split("Step 6. Sampling from it", 1)[1].split("=" * 100, 2)[1]
    assert len(sample.split("Summary", 1)[0].strip()) >= 60  # 80 characters, some of them \n
    summary = re.search(r"Summary: all (\d+) checks pass", out)
    assert summary and int(summary.group(1)) == (11 if HAS_TORCH else 7)
    # The checks have teeth: with the slip "fixed" into the right formula, the walkthrough
    # must stop, because cr.check now passes a layer it expected to fail.
    code = textwrap.dedent(f"""
        import importlib.util
        spec = importlib.util.spec_from_file_location("attention", {script!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.ForgetsTheScale.bwd = module.CausalAttention.bwd
        module.main(["--steps", "1", "--n-layer", "1", "--n-embd", "16", "--n-head", "1"])
    """)
    broken = run("-c", code)
    assert broken.returncode != 0
    assert "cr.check passed ForgetsTheScale, whose bwd is wrong" in broken.stderr


def test_the_walkthrough_draws_the_lessons_graph_with_its_gradients(walkthrough: str) -> None:
    dot = walkthrough.split("Step 10. ", 1)[1].split("digraph tape {", 1)[1].split("}", 1)[0]
    names = re.findall(r'label="([^"\\]*)', dot)
    assert names == ["x_train", "0.weight", "0.bias", "linear", "relu", "2.weight", "2.bias",
                     "linear", "y_train", "mse_loss"]
    assert re.search(r'label="0\.weight\\n50×784\\n\|grad\| [0-9.e+-]+"', dot)
    assert re.search(r'label="relu\\n8000×50\\n\|grad\| [0-9.e+-]+"', dot)


def test_the_figure_script_draws_the_readmes_graphs(tmp_path) -> None:
    import shutil

    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed (.ci/run installs it)")
    result = run(str(ROOT / "examples" / "tape_graphs.py"), "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    for name in ("tape_lesson.png", "tape_gpt.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert "tape_lesson.png" in result.stdout
