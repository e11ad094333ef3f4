"""A conv net, trusted before it is trained: check a layer, compare with PyTorch, then train.

    python examples/conv_net.py [--epochs 3] [--out runs/conv_net]

1. A convolution written the lesson's way — forward and a hand-written ``bwd`` — is checked
   by ``cr.check.check`` against finite differences; then the same layer with one classic
   slip (the weight gradient averaged over the batch, not summed) shows the diagnosis a
   learner gets.
2. The library's ``cnn`` recipe runs one batch next to its PyTorch twin (weights copied by
   ``to_torch``): every layer's output and gradient compared.
3. It trains on the bundled MNIST sample with ``LayerStats`` watching each layer, and prints
   test accuracy and the statistics table; the pictures go to ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import chainrule as cr
from chainrule import models, nn, optim
from chainrule.check import GradientCheckError, check, parity_report
from chainrule.data import DataLoader, load_dataset, transforms
from chainrule.train import LayerStats, Learner


class Conv(nn.Module):
    """A 3x3 convolution (padding 1) with its gradient written by hand:

        out[n, o, y, x] = sum over c, i, j of x_pad[n, c, y + i, x + j] * w[o, c, i, j]
    """

    def __init__(self, w: cr.Tensor) -> None:
        self.w = w  # (out, in, 3, 3)

    @staticmethod
    def patches(x: np.ndarray) -> np.ndarray:
        """(N, C, H, W) -> (N, H, W, C, 3, 3): the 3x3 neighbourhood of every pixel."""
        padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
        h, w = x.shape[2:]
        return np.stack([np.stack([padded[:, :, i:i + h, j:j + w] for j in range(3)], -1)
                         for i in range(3)], -2).transpose(0, 2, 3, 1, 4, 5)

    def forward(self, inp: cr.Tensor) -> cr.Tensor:
        p = self.patches(inp.data)
        return cr.tensor(np.einsum("nhwcij,ocij->nohw", p, self.w.data))

    def bwd(self, out: cr.Tensor, inp: cr.Tensor) -> None:
        g = out.g.data  # (N, O, H, W)
        p = self.patches(inp.data)
        self.w.g = np.einsum("nohw,nhwcij->ocij", g, p)  # summed over images and pixels
        # Each input pixel fed 9 outputs: send the gradient back through the flipped kernel.
        flipped = self.w.data[:, :, ::-1, ::-1]
        gp = self.patches(g)  # (N, H, W, O, 3, 3)
        inp.g = np.einsum("nhwoij,ocij->nchw", gp, flipped)


class ConvAveragesTheBatch(Conv):
    """The slip: the weight gradient averaged over the batch instead of summed."""

    def bwd(self, out: cr.Tensor, inp: cr.Tensor) -> None:
        super().bwd(out, inp)
        self.w.g = self.w.g / len(inp.data)


def check_by_hand(rng: np.random.Generator) -> None:
    """Step 1: the hand-written layer passes; the slip is caught and explained."""
    w = cr.tensor(rng.standard_normal((3, 2, 3, 3)), requires_grad=True)
    x = rng.standard_normal((4, 2, 5, 5))
    report = check(Conv(w), x)
    print(f"hand-written Conv: {'passed' if report.passed else 'FAILED'} "
          f"(worst relative error {max(report.worst_error.values()):.1e})")
    try:
        check(ConvAveragesTheBatch(w), x)
    except GradientCheckError as error:
        print("the same layer, its weight gradient averaged over the batch:")
        print("\n".join("    " + line for line in str(error).splitlines()[:4]))


def loaders(batch_size: int) -> tuple[DataLoader, DataLoader]:
    """The bundled MNIST sample as (N, 1, 28, 28) images, 1-pixel shifts when training."""
    splits = load_dataset("mnist-sample")
    finish = [transforms.ToFloat(), transforms.Normalize(0.13, 0.31), transforms.AddChannel()]
    train = DataLoader(splits.train, batch_size=batch_size, shuffle=True, seed=0,
                       transform=transforms.Compose([transforms.RandomShift(1), *finish]))
    return train, DataLoader(splits.test, batch_size=500, transform=transforms.Compose(finish))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--channels", type=int, nargs=2, default=(16, 32))
    parser.add_argument("--out", type=Path, default=Path("runs/conv_net"))
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    print("1. checking a hand-written convolution")
    check_by_hand(rng)

    print("\n2. the cnn recipe next to its PyTorch twin, one batch")
    cr.manual_seed(0)
    model = models.cnn(channels=args.channels, hidden=64)
    train, test = loaders(batch_size=128)
    x, y = next(iter(test))
    report = parity_report(model.eval(), x.data[:32], y.data[:32])
    print(report)

    print(f"\n3. training {sum(p.size for p in model.parameters()):,} parameters for "
          f"{args.epochs} epochs on the MNIST sample")
    model.train()
    opt = optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    sched = optim.OneCycleLR(opt, max_lr=3e-3, total_steps=args.epochs * len(train))
    stats = LayerStats(layers=(nn.Conv2d, nn.BatchNorm2d, nn.ReLU), every=10)
    learner = Learner(model, train, opt, valid_data=test, scheduler=sched,
                      callbacks=[stats])
    learner.fit(args.epochs)
    print(f"test accuracy {learner.evaluate(test)['accuracy']:.4f}")
    print(stats.summary())
    for path in stats.save_plots(args.out):
        print(f"picture: {path}")


if __name__ == "__main__":
    main()
