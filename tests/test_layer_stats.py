"""LayerStats: the numbers are right, hooks come off, plots are written, the example runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn, optim
from chainrule.data import ArrayDataset, DataLoader
from chainrule.train import LayerStats, Learner, dead_fraction

ROOT = Path(__file__).resolve().parents[1]


def fixed_model() -> nn.Sequential:
    layer = nn.Linear(3, 2, dtype="float64")
    layer.weight.data[...] = [[1.0, 0.0, 0.0], [-1.0, -1.0, -1.0]]  # unit 1 is dead on x >= 0
    layer.bias.data[...] = 0.0
    return nn.Sequential(layer, nn.ReLU())


def test_dead_fraction_counts_units_that_never_fire() -> None:
    assert dead_fraction(np.array([[1.0, 0.0, -1.0], [0.0, 0.0, 2.0]])) == pytest.approx(1 / 3)
    images = np.zeros((2, 4, 3, 3))
    images[0, 1, 2, 2] = 0.5  # only channel 1 fires, once
    assert dead_fraction(images) == 0.75


def test_activation_and_gradient_statistics_are_the_real_ones() -> None:
    model = fixed_model()
    stats = LayerStats(bins=10).attach(model)
    x = np.abs(np.random.default_rng(0).standard_normal((5, 3)))
    out = model(cr.tensor(x))
    upstream = np.random.default_rng(1).standard_normal(out.shape)
    out.backward(upstream)
    stats.remove()
    linear_out = x @ model[0].weight.data.T
    relu_out = np.maximum(linear_out, 0)
    linear, relu = stats.activations["0 Linear"], stats.activations["1 ReLU"]
    assert linear.mean == [pytest.approx(linear_out.mean())]
    assert linear.std == [pytest.approx(linear_out.std())]
    assert relu.dead == [0.5]  # the second unit is <= 0 for every sample
    assert relu.histograms[0].sum() == relu_out.size  # every element counted once
    assert stats.gradients["1 ReLU"].std == [pytest.approx(upstream.std())]
    relu_grad = upstream * (linear_out > 0)
    assert stats.gradients["0 Linear"].mean == [pytest.approx(relu_grad.mean())]


def test_nothing_is_recorded_in_eval_mode_and_hooks_come_off() -> None:
    model = fixed_model()
    stats = LayerStats().attach(model)
    model.eval()
    model(cr.tensor(np.ones((2, 3))))
    assert stats.activations["0 Linear"].steps == []
    stats.remove()
    model.train()
    model(cr.tensor(np.ones((2, 3))))
    assert stats.activations["0 Linear"].steps == []
    assert all(not m.__dict__.get("_forward_hooks") for m in model.modules())


def test_with_a_learner_it_records_every_few_steps_and_saves_plots(tmp_path) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    data = DataLoader(ArrayDataset(x, (x[:, 0] > 0).astype(np.int64)), batch_size=8)
    cr.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    stats = LayerStats(every=2)
    Learner(model, data, optim.SGD(model.parameters(), lr=0.1), callbacks=[stats]).fit(2)
    steps = stats.activations["0 Linear"].steps
    assert steps == list(range(0, 16, 2))
    assert stats.gradients["2 Linear"].steps == steps
    assert all(not m.__dict__.get("_forward_hooks") for m in model.modules())
    paths = stats.save_plots(tmp_path)
    assert [p.name for p in paths] == ["layer_stats.png", "layer_histograms.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)
    assert "0 Linear" in stats.summary()


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="every must be >= 1"):
        LayerStats(every=0)
    with pytest.raises(ValueError, match="hist_range must be a positive number"):
        LayerStats(hist_range=0)
    with pytest.raises(ValueError, match="no layer of type"):
        LayerStats(layers=nn.Conv2d).attach(fixed_model())


def test_values_at_the_top_edge_are_counted_in_float32() -> None:
    from chainrule.train.layer_stats import Series

    series = Series(limit=1.0)
    values = np.array([1.0, np.nextafter(np.float32(1), 0), -1.0, 5.0, -5.0, 0.0],
                      dtype=np.float32)
    series.add(0, values, bins=4, dead=0.0)
    np.testing.assert_array_equal(series.histograms[0], [2, 0, 1, 3])


def test_layers_can_be_picked_by_type_with_a_fixed_range() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2), nn.ReLU())
    stats = LayerStats(layers=nn.ReLU, bins=8, hist_range=2.0).attach(model)
    model(cr.randn(5, 3))
    stats.remove()
    assert list(stats.activations) == ["1 ReLU", "3 ReLU"]
    assert all(series.limit == 2.0 for series in stats.activations.values())
    assert stats.activations["1 ReLU"].histograms[0].sum() == 20


def test_the_init_story_example_runs(tmp_path) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "init_story.py"),
                             "--steps", "20", "--out", str(tmp_path)],
                            capture_output=True, text=True, check=True)
    lines = result.stdout.splitlines()
    rows = {line.split()[0]: line for line in lines
            if line.split() and line.split()[0] in ("randn", "scaled", "kaiming")}
    assert "diverged" in rows["randn"] and "trained" in rows["kaiming"]
    first, last = (float(v) for v in rows["scaled"].split()[1:3])
    assert last < first / 3  # without Kaiming's 2 the signal fades with depth
    first, last = (float(v) for v in rows["kaiming"].split()[1:3])
    assert 0.5 < last / first < 2  # with it, the scale holds
    assert (tmp_path / "init_story.png").read_bytes()[:4] == b"\x89PNG"
