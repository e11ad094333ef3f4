"""Draw the README's pictures of the tape: the lesson's network and a GPT, after backward.

    python examples/tape_graphs.py                 # writes docs/images/tape_*.png
    python examples/tape_graphs.py --out folder    # somewhere else

The lesson's lin -> relu -> lin -> mse on the bundled MNIST sample (8,000 images, the label
predicted as one number), and the default GPT (nanoGPT's CPU configuration) on a batch of
Shakespeare, each drawn with cr.viz.draw before backward so that every op shows the norm of
its gradient. Needs Graphviz's dot (apt-get install graphviz).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import chainrule as cr
from chainrule import data, models, nn
from chainrule.nn import functional as F

ROOT = Path(__file__).resolve().parents[1]


def lesson_graph() -> cr.viz.Graph:
    (x, y), _ = data.load_mnist_sample()
    x, y = cr.tensor(x), cr.tensor(y.astype(np.float32)[:, None])
    cr.manual_seed(42)
    model = nn.Sequential(nn.Linear(784, 50), nn.ReLU(), nn.Linear(50, 1))
    loss = cr.mse(model(x), y)
    graph = cr.viz.draw(loss, model, names={"x_train": x, "y_train": y})
    loss.backward()
    return graph


def gpt_graph() -> cr.viz.Graph:
    text = data.load_text_dataset("shakespeare-char")
    cr.manual_seed(0)
    model = models.gpt(vocab_size=text.vocab.size)
    batch = text.train[:12 * 65].reshape(12, 65)
    idx, targets = batch[:, :-1], batch[:, 1:]
    loss = F.cross_entropy(model(idx).reshape(-1, text.vocab.size), targets.reshape(-1))
    graph = cr.viz.draw(loss, model)
    loss.backward()
    return graph


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, graph in (("tape_lesson.png", lesson_graph()), ("tape_gpt.png", gpt_graph())):
        path = graph.render(args.out / name, overwrite=True)
        print(f"{path}: {graph!r}")


if __name__ == "__main__":
    main()
