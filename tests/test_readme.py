"""The README's Python examples run as written (one namespace, in order, as a reader would
paste them), and its `chainrule check mylayers.py:lin` line works on its Lin."""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path

import numpy as np

import chainrule as cr
from chainrule.cli import main
from chainrule.engine.function import _REGISTRY

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def test_the_readme_examples_run_in_order(tmp_path, monkeypatch) -> None:
    blocks = python_blocks()
    assert len(blocks) >= 5 and any("learner.fit(12)" in block for block in blocks)
    if importlib.util.find_spec("mpi4py") is None:  # the extra is not installed: not that one
        blocks = [block for block in blocks if "distributed" not in block]
    if shutil.which("dot") is None:  # Graphviz (.ci/run installs it): not the drawing
        blocks = [block for block in blocks if ".render(" not in block]
    monkeypatch.chdir(tmp_path)  # the checkpoint the last one saves lands here
    namespace: dict = {}
    registered = set(_REGISTRY)
    try:
        for block in blocks:
            exec(compile(block.replace("learner.fit(12)", "learner.fit(1)"), str(README),
                         "exec"), namespace)
    finally:  # the README's own Function (Cube) registers itself: leave the registry as it was
        for name in set(_REGISTRY) - registered:
            del _REGISTRY[name]
    assert namespace["w"].grad.shape == (784, 50)
    assert type(namespace["fast"][0]).__name__ == "LinearReLU"
    assert namespace["learner"].history[0]["test_accuracy"] > 0.8
    assert (tmp_path / "run.safetensors").is_file()
    if shutil.which("dot") is not None:
        assert (tmp_path / "tape.png").read_bytes()[:4] == b"\x89PNG"
    layer = namespace["lin"]()
    assert cr.check.check(layer, np.random.default_rng(0).standard_normal((8, 3))).passed


def test_the_readme_check_line_works_on_its_layer(tmp_path, monkeypatch, capsys) -> None:
    (layers,) = [b for b in python_blocks() if "class Lin(" in b]
    (tmp_path / "mylayers.py").write_text("import chainrule as cr\nfrom chainrule import nn\n"
                                          + layers)
    monkeypatch.chdir(tmp_path)
    (line,) = [row for row in README.read_text().splitlines()
               if row.startswith("chainrule check mylayers.py")]
    assert main(line.split("#")[0].split()[1:]) == 0, capsys.readouterr().err
    assert "OK" in capsys.readouterr().out
    # The class itself needs its weights: named instead, it is refused with the fix.
    assert main(["check", "mylayers.py:Lin", "--input", "8,3"]) == 2
    assert "needs arguments to build (w, b)" in capsys.readouterr().err


def test_the_readmes_summary_table_is_what_the_command_prints(capsys) -> None:
    text = README.read_text()
    block = re.search(r"```text\n\$ (chainrule summary[^\n]*)\n(.*?)```", text, flags=re.S)
    assert block, "the README shows a summary table"
    assert main(block.group(1).split()[1:]) == 0
    assert capsys.readouterr().out == block.group(2)
