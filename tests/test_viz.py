"""cr.viz.draw: the tape behind a tensor as DOT text and images, with gradients and folds."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

import chainrule as cr
from chainrule import models, nn
from chainrule.nn import functional as F

HAS_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot is not installed "
                               "(.ci/run installs it)")


def lesson() -> tuple[nn.Module, cr.Tensor, cr.Tensor, cr.Tensor]:
    """The lesson's lin -> relu -> lin -> mse on a small batch."""
    cr.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 1))
    rng = np.random.default_rng(0)
    x = cr.tensor(rng.standard_normal((8, 6)).astype(np.float32))
    y = cr.tensor(rng.standard_normal((8, 1)).astype(np.float32))
    return model, x, y, F.mse_loss(model(x), y)


def labels(source: str) -> list[str]:
    return re.findall(r'\[label="([^"]*)"', source)


def test_the_lessons_graph_has_one_box_per_op_and_its_gradient_norms() -> None:
    model, x, y, loss = lesson()
    graph = cr.viz.draw(loss, model, names={"x": x, "y": y})
    hidden = model[0](x)
    hidden.retain_grad()  # the same first op again, to read its gradient for comparison
    loss.backward()
    found = labels(graph.source)
    assert [text.split("\\n")[0] for text in found] == [
        "x", "0.weight", "0.bias", "linear", "relu", "2.weight", "2.bias", "linear", "y",
        "mse_loss"]
    by_name = {text.split("\\n")[0]: text for text in found}
    weight = model[0].weight
    assert by_name["0.weight"] == f"0.weight\\n5×6\\n|grad| {np.linalg.norm(weight.grad):.3g}"
    assert by_name["mse_loss"].endswith("|grad| 1") and by_name["x"] == "x\\n8×6"
    # the first linear's box carries the norm of the gradient that reached its output
    first_linear = found[3]
    out_grad = _gradient_of_first_linear(model, x, y)
    assert first_linear == f"linear\\n8×5\\n|grad| {np.linalg.norm(out_grad):.3g}"
    edges = re.findall(r"(n\d+) -> (n\d+);", graph.source)
    assert ("n3", "n4") in edges and ("n4", "n7") in edges and ("n7", "n9") in edges
    assert len(edges) == 9


def _gradient_of_first_linear(model: nn.Module, x: cr.Tensor, y: cr.Tensor) -> np.ndarray:
    out = model[0](x)
    out.retain_grad()
    F.mse_loss(model[2](model[1](out)), y).backward()
    return out.grad


def test_drawing_changes_no_gradient() -> None:
    model, _, _, loss = lesson()
    loss.backward()
    plain = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    model2, _, _, loss2 = lesson()
    cr.viz.draw(loss2, model2)
    loss2.backward()
    for a, b in zip(plain, (p.grad for p in model2.parameters())):
        np.testing.assert_array_equal(a, b)


def test_drawn_after_backward_the_leaves_still_show_their_gradients() -> None:
    model, _, _, loss = lesson()
    loss.backward()
    found = labels(cr.viz.draw(loss, model).source)
    assert any(t.startswith("0.weight") and "|grad|" in t for t in found)
    assert not any(t.startswith("relu") and "|grad|" in t for t in found)


def test_depth_keeps_only_the_ops_near_the_tensor() -> None:
    model, _, _, loss = lesson()
    found = labels(cr.viz.draw(loss, model, depth=2).source)
    names = [t.split("\\n")[0] for t in found]
    assert names.count("linear") == 1 and "relu" in names and "0.weight" not in names
    assert any("beyond depth 2" in t for t in found)


def small_gpt_loss() -> tuple[nn.Module, cr.Tensor]:
    cr.manual_seed(0)
    gpt = models.gpt(vocab_size=11, block_size=8, n_layer=4, n_head=2, n_embd=8)
    idx = np.random.default_rng(0).integers(0, 11, (2, 8))
    return gpt, F.cross_entropy(gpt(idx).reshape(-1, 11), idx.reshape(-1))


def test_a_gpts_repeated_blocks_fold_into_one_box() -> None:
    gpt, loss = small_gpt_loss()
    folded = cr.viz.draw(loss, gpt).source
    full = cr.viz.draw(loss, gpt, fold=False).source
    assert "transformer.h.1 … transformer.h.3\\n3 layers built like transformer.h.0" in folded
    assert folded.count("self_attention") == 1 and full.count("self_attention") == 4
    assert 'label="transformer.h.0"' in folded  # the first block drawn as a group
    assert len(folded) < len(full) / 2


@needs_dot
@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".svg", b"<?xml")])
def test_render_writes_an_image_and_refuses_to_overwrite(tmp_path, suffix, magic) -> None:
    model, _, _, loss = lesson()
    graph = cr.viz.draw(loss, model)
    loss.backward()
    path = graph.render(tmp_path / f"tape{suffix}")
    assert path.read_bytes().startswith(magic)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        graph.render(path)
    graph.render(path, overwrite=True)
    assert "<svg" in graph._repr_svg_()


def test_without_graphviz_the_error_says_how_to_get_it(tmp_path, monkeypatch) -> None:
    model, _, _, loss = lesson()
    graph = cr.viz.draw(loss, model)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="apt-get install graphviz"):
        graph.render(tmp_path / "tape.png")
    assert not (tmp_path / "tape.png").exists()
    assert graph._repr_svg_() is None  # Jupyter falls back to the text form
    assert "ops" in repr(graph)


def test_bad_arguments_are_named() -> None:
    model, x, _, loss = lesson()
    with pytest.raises(TypeError, match="expected a chainrule Tensor"):
        cr.viz.draw(np.ones(3))
    with pytest.raises(ValueError, match="not made by a recorded op"):
        cr.viz.draw(x)
    with pytest.raises(ValueError, match="depth must be"):
        cr.viz.draw(loss, depth=0)
    with pytest.raises(TypeError, match=r"names\['x'\] must be a Tensor"):
        cr.viz.draw(loss, names={"x": np.ones(3)})
    with pytest.raises(ValueError, match=r"must end in \.svg, \.png or \.pdf"):
        cr.viz.draw(loss).render("tape.jpg")


def test_depth_counts_the_shortest_path_to_each_node() -> None:
    x = cr.tensor(np.linspace(-1, 1, 5), requires_grad=True)
    c = x.exp()
    root = (c.neg() + c.cos().sin()).sum()  # x is 4 steps away through neg, 5 through sin
    names = [t.split("\\n")[0] for t in labels(cr.viz.draw(root, names={"x": x},
                                                           depth=4).source)]
    assert "x" in names and "exp" in names


def test_drawing_twice_keeps_each_graphs_norms() -> None:
    model, _, _, loss = lesson()
    first, second = cr.viz.draw(loss, model), cr.viz.draw(loss, model)
    loss.backward()
    assert first.source == second.source and "relu\\n8×5\\n|grad|" in first.source
