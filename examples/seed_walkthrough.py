"""The lesson "the forward and backward passes", retold step by step with chainrule.

We build a two-layer network by hand, see why the scale of the initial weights matters, derive
every gradient with the chain rule, check those gradients against chainrule's autograd and
PyTorch's, and then fold the same code into layers, Modules and finally the built-in nn layers.

As in the lesson, the model regresses the digit's label: it outputs one number per image and
is scored with mean squared error against the label read as a float (a 7 should give 7.0).
That is a poor loss for classifying digits; it is used because its derivative is one line, so
the calculus stays in view. Cross-entropy comes later.

Data: the MNIST sample bundled with chainrule, 8,000 training and 2,000 test images (the
lesson uses all 50,000 + 10,000). Everything runs in float32, the dtype of the data.

Run from the repository root:  python examples/seed_walkthrough.py
It exits with an error if any gradient check disagrees.
"""

from __future__ import annotations

import math
import textwrap
import time

import numpy as np

import chainrule as cr
from chainrule.data import load_mnist_sample

# Tolerances for comparing two float32 computations of the same gradient. The hand-written
# and autograd versions add the same numbers in a different order (and PyTorch uses another
# BLAS), so they differ in the last bits. atol is relative to the largest entry of the
# gradient: entries that are sums of many cancelling terms are tiny, and their relative error
# says nothing about whether the formula is right.
RTOL = 1e-4
ATOL = 1e-5

# Every check that passed, by name: the summary at the end counts them.
CHECKS: list[str] = []


# --------------------------------------------------------------------------- printing helpers
def heading(number: int, title: str) -> None:
    print()
    print("=" * 100)
    print(f"Step {number}. {title}")
    print("=" * 100)


def stats(t: cr.Tensor) -> str:
    return f"mean {t.mean().item():8.4f}   std {t.std().item():8.4f}"


def rms(t: cr.Tensor) -> float:
    """Root mean square: the typical size of the entries, whatever their mean."""
    return math.sqrt(t.pow(2).mean().item())


def as_array(value) -> np.ndarray:
    """A NumPy array from a chainrule tensor, a torch tensor or an array."""
    if hasattr(value, "detach"):  # torch tensors (and chainrule ones) expose detach()
        value = value.detach()
    if hasattr(value, "numpy"):
        value = value.numpy()
    return np.asarray(value)


def check(what: str, name: str, mine, reference) -> None:
    """Print the largest disagreement, and stop the script if it is more than rounding."""
    a, b = as_array(mine), as_array(reference)
    assert a.shape == b.shape, f"{what} {name}: shape {a.shape} vs {b.shape}"
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL * scale,
                               err_msg=f"{what}: {name} disagrees")
    CHECKS.append(f"{what}: {name}")
    print(f"  {name:<9} shape {a.shape!s:<12} max |diff| {diff:.2e}"
          f"   (largest entry {scale:.2e})   agree")


# --------------------------------------------------------------------------- step 2: foundations
def lin(x, w, b):
    return x @ w + b


def relu(x):
    return x.clamp_min(0.0)


# --------------------------------------------------------------------------- step 4: the loss
def mse(output, targ):
    # output is (N, 1) and targ is (N,): take column 0 so the subtraction pairs them up.
    return (output[:, 0] - targ).pow(2).mean()


# --------------------------------------------------------------------------- step 5: by hand
# Each function receives tensors from the forward pass and fills in `.g`, the gradient of the
# loss with respect to that tensor. They run in the reverse order of the forward pass, so the
# `out.g` each one reads has already been written by the function after it.
def mse_grad(inp, targ):
    # d/d inp of mean((inp - targ)^2) is 2 (inp - targ) / N; unsqueeze puts back the (N, 1).
    inp.g = 2.0 * (inp.squeeze() - targ).unsqueeze(-1) / inp.shape[0]


def relu_grad(inp, out):
    # relu passes the gradient through where its input was positive and blocks it elsewhere.
    inp.g = (inp > 0).float() * out.g


def lin_grad(inp, out, w, b):
    # out = inp @ w + b, so: d/d inp = out.g @ w^T, d/d w = inp^T @ out.g, and b was broadcast
    # over the batch, so its gradient adds up over the batch axis.
    inp.g = out.g @ w.t()
    w.g = inp.t() @ out.g
    b.g = out.g.sum(0)


def forward_and_backward(inp, targ, w1, b1, w2, b2):
    # The lesson reads the weights from globals; passing them in keeps main() self-contained.
    # forward pass:
    l1 = lin(inp, w1, b1)
    l2 = relu(l1)
    out = lin(l2, w2, b2)
    loss = mse(out, targ)
    # backward pass, the same steps in reverse:
    mse_grad(out, targ)
    lin_grad(l2, out, w2, b2)
    relu_grad(l1, l2)
    lin_grad(inp, l1, w1, b1)
    return loss


# --------------------------------------------------------------------------- step 7: classes
# The same pieces, but each layer remembers its own input and output during the call, so
# backward() needs no arguments.
class Relu:
    def __call__(self, inp):
        self.inp = inp
        self.out = inp.clamp_min(0.0)
        return self.out

    def backward(self):
        self.inp.g = (self.inp > 0).float() * self.out.g


class Lin:
    def __init__(self, w, b):
        self.w, self.b = w, b

    def __call__(self, inp):
        self.inp = inp
        self.out = lin(inp, self.w, self.b)
        return self.out

    def backward(self):
        self.inp.g = self.out.g @ self.w.t()
        self.w.g = self.inp.t() @ self.out.g
        self.b.g = self.out.g.sum(0)


class Mse:
    def __call__(self, inp, targ):
        self.inp, self.targ = inp, targ
        self.out = mse(inp, targ)
        return self.out

    def backward(self):
        self.inp.g = 2.0 * (self.inp.squeeze() - self.targ).unsqueeze(-1) / self.targ.shape[0]


class Model:
    def __init__(self, w1, b1, w2, b2):
        self.layers = [Lin(w1, b1), Relu(), Lin(w2, b2)]
        self.loss = Mse()

    def __call__(self, x, targ):
        for layer in self.layers:
            x = layer(x)
        return self.loss(x, targ)

    def backward(self):
        # Each layer's output tensor is the next layer's input tensor (the same object), so
        # the .g one layer writes on its input is the out.g the layer before it reads.
        self.loss.backward()
        for layer in reversed(self.layers):
            layer.backward()


# --------------------------------------------------------------------------- step 8: Module.bwd
# chainrule's own nn.Module. A subclass that defines bwd(self, out, *args) is a hand-written
# layer: chainrule runs its forward without recording anything, puts the whole call on the
# autograd tape as one node, and during loss.backward() calls bwd with out.g already set.
class ModRelu(cr.nn.Module):
    def forward(self, inp):
        return inp.clamp_min(0.0)

    def bwd(self, out, inp):
        inp.g = (inp > 0).float() * out.g


class ModLin(cr.nn.Module):
    def __init__(self, w, b):
        self.w, self.b = w, b

    def forward(self, inp):
        return inp @ self.w + self.b

    def bwd(self, out, inp):
        inp.g = self.out.g @ self.w.t()
        self.w.g = inp.t() @ self.out.g
        self.b.g = self.out.g.sum(0)


class ModMse(cr.nn.Module):
    def forward(self, inp, targ):
        return (inp.squeeze() - targ).pow(2).mean()

    def bwd(self, out, inp, targ):
        # Like the lesson, this ignores out.g: it is 1 because the loss is where backward
        # starts. A loss used inside a bigger expression would have to multiply by out.g.
        inp.g = 2 * (inp.squeeze() - targ).unsqueeze(-1) / targ.shape[0]


class ModModel(cr.nn.Module):
    # No bwd here: this module just calls its layers, and autograd chains their bwd's.
    def __init__(self, w1, b1, w2, b2):
        super().__init__()
        self.layers = [ModLin(w1, b1), ModRelu(), ModLin(w2, b2)]
        self.loss = ModMse()

    def forward(self, x, targ):
        for layer in self.layers:
            x = layer(x)
        return self.loss(x, targ)


# --------------------------------------------------------------------------- step 9: autograd
# The lesson's last Linear keeps raw tensors with requires_grad as weights. PyTorch's
# nn.Module would not list those as parameters; chainrule's Module does.
class SeedLinear(cr.nn.Module):
    # The lesson draws w and b here; we pass step 5's, so the gradients can be compared.
    def __init__(self, w, b):
        super().__init__()
        self.w, self.b = w, b

    def forward(self, inp):
        return inp @ self.w + self.b


def load_torch():
    """PyTorch if it is installed, else None (it is only needed as a second opinion)."""
    try:
        import torch
    except ImportError:
        return None
    return torch


# =========================================================================== the walkthrough
def main() -> None:
    start = time.perf_counter()
    cr.manual_seed(42)
    torch = load_torch()

    heading(1, "Data")
    (x_train_np, y_train_np), (x_test_np, y_test_np) = load_mnist_sample()
    x_train, y_train = cr.tensor(x_train_np), cr.tensor(y_train_np)
    x_test, y_test = cr.tensor(x_test_np), cr.tensor(y_test_np)
    n, m = x_train.shape
    c = y_train.max().item() + 1
    print(f"x_train {x_train.shape} {x_train.dtype}, pixels in "
          f"[{x_train.min().item():.1f}, {x_train.max().item():.1f}]")
    print(f"y_train {y_train.shape} {y_train.dtype}, first labels {y_train[:10].tolist()}")
    print(f"x_test  {x_test.shape}, y_test {y_test.shape}")
    print(f"n = {n} images, m = {m} pixels per image, c = {c} classes")
    print("The model will predict the label as one number and be scored by MSE, as in the lesson.")

    heading(2, "Foundations: lin, relu and a two-layer model")
    nh = 50  # hidden units
    w1 = cr.randn(m, nh)
    b1 = cr.zeros(nh)
    w2 = cr.randn(nh, 1)
    b2 = cr.zeros(1)
    print(f"w1 {w1.shape}, b1 {b1.shape}, w2 {w2.shape}, b2 {b2.shape}  (standard normal weights)")
    t = lin(x_test, w1, b1)
    print(f"lin(x_test, w1, b1).shape = {t.shape}")
    t = relu(t)
    print("relu(...) =")
    print(t)

    def model(xb):
        l1 = lin(xb, w1, b1)
        l2 = relu(l1)
        return lin(l2, w2, b2)

    res = model(x_test)
    print(f"res = model(x_test); res.shape = {res.shape}   (the lesson's is (10000, 1))")
    print(f"hidden activations: {stats(t)}")
    print(f"outputs:            {stats(res)}")
    print("Outputs in the tens and hundreds, for labels between 0 and 9: the weights are far too")
    print("large. Step 3 shows why, and what to use instead.")

    heading(3, "Why the initial scale matters")
    # Silence NumPy's overflow warnings: overflowing is the point of this demo.
    with np.errstate(over="ignore", invalid="ignore"):
        x = cr.randn(200, 100)
        first_inf = first_nan = None
        for i in range(50):
            x = x @ cr.randn(100, 100)
            if first_inf is None and not np.isfinite(x.data).all():
                first_inf = i + 1
            if first_nan is None and np.isnan(x.data).any():
                first_nan = i + 1
    print("x = randn(200, 100), then 50 times: x = x @ randn(100, 100)")
    print("x[0:5, 0:5] =")
    print(x[0:5, 0:5])
    print("It blew up. Each product multiplies the typical size of the entries by about")
    print(f"sqrt(100) = 10. After {first_inf} layers some entries passed float32's largest "
          "value (~3.4e38) and")
    print(f"became inf; by layer {first_nan}, sums of +inf and -inf had made nan (not a number).")
    print()
    print("The same 50 layers with scaled weights (statistics of x after each layer):")
    print("  A: x = x @ (randn(100, 100) * sqrt(1/100))         no activation")
    print("  B: x = relu(x @ (randn(100, 100) * sqrt(2/100)))    relu, Kaiming init")
    print("  C: x = relu(x @ (randn(100, 100) * sqrt(1/100)))    relu, without Kaiming's 2")
    print("  rms = sqrt(mean(x**2)): with relu, this is what Kaiming init keeps constant")
    x_a = x_b = x_c = cr.randn(200, 100)
    print(f"  {'layer':>5}   {'A: mean':>8} {'std':>7}   {'B: mean':>8} {'std':>7} {'rms':>7}"
          f"   {'C: rms':>9}")

    def row(i: int) -> None:
        print(f"  {i:>5}   {x_a.mean().item():8.3f} {x_a.std().item():7.3f}   "
              f"{x_b.mean().item():8.3f} {x_b.std().item():7.3f} {rms(x_b):7.3f}"
              f"   {rms(x_c):9.2e}")

    row(0)
    for i in range(1, 51):
        x_a = x_a @ (cr.randn(100, 100) * math.sqrt(1 / 100))
        x_b = relu(x_b @ (cr.randn(100, 100) * math.sqrt(2 / 100)))
        x_c = relu(x_c @ (cr.randn(100, 100) * math.sqrt(1 / 100)))
        if i % 10 == 0:
            row(i)
    print("A: without an activation, scaling by sqrt(1/fan_in) keeps mean ~0 and std ~1.")
    print("B: relu zeroes about half of its inputs, which halves the mean square; the 2 in")
    print("   sqrt(2/100) gives it back. rms wanders (each layer is a random 100x100 matrix)")
    print("   but stays of order 1. relu outputs are never negative, so the mean is positive and")
    print("   the std is smaller than the rms: std is not the quantity to watch here.")
    print("C: the same relu net without the 2 loses half the mean square per layer: after 50")
    print("   layers the signal has all but vanished (rms ~ 2**-25, about 3e-8).")

    print()
    print("Kaiming init for our model: w1 * sqrt(2/m), w2 * sqrt(2/nh), then one layer:")
    # First on the lesson's synthetic batch (unit-variance inputs), then on the MNIST pixels.
    xs = cr.randn(200, 100)
    ws = cr.randn(100, 50) * math.sqrt(2 / 100)
    l2 = relu(lin(xs, ws, cr.zeros(50)))
    print(f"  x = randn(200, 100), w (100, 50):   relu(lin(x, w, b)):   {stats(l2)}")
    w1 = cr.randn(m, nh) * math.sqrt(2 / m)
    b1 = cr.zeros(nh)
    w2 = cr.randn(nh, 1) * math.sqrt(2 / nh)
    b2 = cr.zeros(1)
    l2 = relu(lin(x_test, w1, b1))
    print(f"  x = MNIST x_test,    w1 (784, 50):  relu(lin(x, w1, b1)): {stats(l2)}")
    print(f"  MNIST pixels are not unit-variance ({stats(x_test)}, rms {rms(x_test):.4f}),")
    print("  so the first layer's outputs are smaller too: Kaiming init carries the input's")
    print("  scale through the layers, it does not normalise the input (a later lesson does).")
    res = model(x_test)  # model() reads w1..b2 from this function, so it sees the new weights
    print(f"  model(x_test) with the Kaiming weights:                   {stats(res)}")

    heading(4, "The loss: mean squared error, and the trailing 1")
    y_test_f = y_test.float()
    print(f"res.shape = {res.shape}, y_test.shape = {y_test.shape}")
    print(f"(res - y_test).shape = {(res - y_test_f).shape}  <- broadcasting: every output minus"
          " every label")
    print("An (N, 1) minus an (N,) broadcasts to (N, N). Its mean is a number, just a meaningless")
    print("one, so nothing fails. Drop the trailing 1 first:")
    print(f"res[:, 0].shape = {res[:, 0].shape}, res.squeeze().shape = {res.squeeze().shape}, "
          f"(res[:, 0] - y_test).shape = {(res[:, 0] - y_test_f).shape}")
    y_train_f = y_train.float()
    preds = model(x_train)
    print(f"preds = model(x_train); preds.shape = {preds.shape}")
    hand, builtin = mse(preds, y_train_f), cr.mse(preds, y_train_f)
    print(f"hand-written mse(preds, y_train) = {hand.item():.6f}")
    print(f"cr.mse(preds, y_train)           = {builtin.item():.6f}")
    print(f"The same loss: they differ by {abs(hand.item() - builtin.item()):.1e}, float32 "
          "rounding from adding the squares in another order.")
    print("cr.mse accepts the (N, 1) output against (N,) targets on purpose and compares them")
    print("element by element; any other shape mismatch is an error rather than a broadcast:")
    try:
        cr.mse(preds, y_train_f[:100])
    except ValueError as error:
        print(textwrap.fill(f"ValueError: {error}", 96, initial_indent="  ",
                            subsequent_indent="    "))
    np.testing.assert_allclose(hand.item(), builtin.item(), rtol=1e-6)
    # The model predicts one number per image, so a constant guess is the baseline to beat.
    print(f"(For scale: predicting the mean label for every image gives "
          f"{mse(cr.full((n, 1), y_train_f.mean().item()), y_train_f).item():.4f}.)")

    heading(5, "Gradients by hand")
    print("Forward pass, then the chain rule backwards, one function per step; each stores the")
    print("gradient of the loss with respect to its input in that tensor's .g attribute.")
    loss = forward_and_backward(x_train, y_train_f, w1, b1, w2, b2)
    print(f"loss = {loss.item():.6f}  (on all {n} training images)")
    for name, p in [("w1", w1), ("b1", b1), ("w2", w2), ("b2", b2), ("x_train", x_train)]:
        print(f"  {name + '.g':<9} shape {p.g.shape!s:<12} mean |g| "
              f"{np.abs(p.g.data).mean():.3e}")
    # Keep copies: the later steps overwrite .g and must reproduce these numbers.
    chks = [w1, b1, w2, b2, x_train]
    names = ["w1", "b1", "w2", "b2", "x_train"]
    grads = [cr.tensor(p.g) for p in chks]
    # The lesson also writes w.g as a sum of per-image outer products; on a few images it is
    # the same matrix product (on all 8000 the (8000, 784, 50) intermediate would need 1.2 GB).
    inp, out_g = x_train[:64], cr.randn(64, nh)
    print("The lesson's other way to write w.g (sum of outer products), on 64 images:")
    outer = (inp.unsqueeze(-1) * out_g.unsqueeze(1)).sum(0)
    check("outer-product form", "w.g", outer, inp.t() @ out_g)

    heading(6, "Checking the hand-written gradients against autograd")

    def mkgrad(t):
        # A copy that records operations, so loss.backward() can fill in .grad.
        return cr.tensor(t, requires_grad=True)

    print(f"Comparisons are in float32, with rtol={RTOL} and atol={ATOL} times the gradient's "
          "largest entry.")
    w1a, b1a, w2a, b2a, xa = (mkgrad(p) for p in chks)
    loss_a = mse(lin(relu(lin(xa, w1a, b1a)), w2a, b2a), y_train_f)
    loss_a.backward()
    print(f"chainrule autograd: loss {loss_a.item():.6f}; compared with step 5's .g:")
    for name, mine, ref in zip(names, grads, [w1a, b1a, w2a, b2a, xa]):
        check("chainrule autograd", name, mine, ref.grad)

    if torch is None:
        print("PyTorch is not installed: the PyTorch check is skipped.")
    else:
        tw1, tb1, tw2, tb2, tx = (torch.tensor(p.data, requires_grad=True) for p in chks)
        ty = torch.from_numpy(y_train_f.data)
        # lin, relu and mse only use @, +, clamp_min, indexing, pow and mean, so the very same
        # functions run on torch tensors.
        t_loss = mse(lin(relu(lin(tx, tw1, tb1)), tw2, tb2), ty)
        t_loss.backward()
        print(f"PyTorch autograd:   loss {t_loss.item():.6f}; compared with step 5's .g:")
        check("PyTorch autograd", "loss", loss.data, t_loss)
        for name, mine, ref in zip(names, grads, [tw1, tb1, tw2, tb2, tx]):
            check("PyTorch autograd", name, mine, ref.grad)

    heading(7, "Layers as classes, each with its own backward")
    model7 = Model(w1, b1, w2, b2)
    for p in chks:
        p.g = None
    loss = model7(x_train, y_train_f)
    model7.backward()
    print(f"loss {loss.item():.6f}; after model.backward(), compared with step 5:")
    for name, p, ref in zip(names, chks, grads):
        check("layer classes", name, p.g, ref)

    heading(8, "chainrule's nn.Module with forward and bwd")
    print("The hand-written layers subclass cr.nn.Module. Each call becomes one node on the")
    print("autograd tape, so a plain loss.backward() runs their bwd methods in reverse order")
    print("and leaves the results in .grad, like any built-in op.")
    w1m, b1m, w2m, b2m, xm = (mkgrad(p) for p in chks)
    model8 = ModModel(w1m, b1m, w2m, b2m)
    print(f"parameters found by the Module: {[k for k, _ in model8.named_parameters()]}")
    loss = model8(xm, y_train_f)
    loss.backward()
    print(f"loss {loss.item():.6f}, made by a {loss.grad_fn.__name__} node (how a bwd layer "
          "sits on the tape)")
    print(".grad compared with step 5:")
    for name, p, ref in zip(names, [w1m, b1m, w2m, b2m, xm], grads):
        check("Module.bwd", name, p.grad, ref)

    print()
    print("Mixing both kinds: hand-written ModLin layers around the built-in cr.relu, with the")
    print("built-in cr.mse as the loss:")
    w1x, b1x, w2x, b2x, xx = (mkgrad(p) for p in chks)
    loss = cr.mse(ModLin(w2x, b2x)(cr.relu(ModLin(w1x, b1x)(xx))), y_train_f)
    loss.backward()
    print(f"loss {loss.item():.6f}; .grad compared with step 5:")
    for name, p, ref in zip(names, [w1x, b1x, w2x, b2x, xx], grads):
        check("bwd mixed with autograd", name, p.grad, ref)

    heading(9, "chainrule's autograd and nn layers, next to PyTorch's")
    print("First the lesson's own Linear: raw tensors with requires_grad as weights.")
    w1s, b1s, w2s, b2s = (mkgrad(p) for p in chks[:4])
    layers = [SeedLinear(w1s, b1s), cr.nn.ReLU(), SeedLinear(w2s, b2s)]
    out = x_train
    for layer in layers:
        out = layer(out)
    loss = cr.mse(out, y_train_f)
    loss.backward()
    print(f"loss {loss.item():.6f}; .grad compared with step 5:")
    for name, p, ref in zip(names, [w1s, b1s, w2s, b2s], grads):
        check("autograd, seed Linear", name, p.grad, ref)
    print(f"A chainrule Module lists such tensors as parameters: "
          f"{[k for k, _ in layers[0].named_parameters()]}")

    print()
    print("Now the built-in layers. cr.nn.Linear stores weight as (out_features, in_features),")
    print("PyTorch's layout, and computes x @ weight.T + bias. The lesson's w is (in, out), so")
    print("loading our weights means transposing them, and weight.grad is w1.g transposed.")
    model = cr.nn.Sequential(cr.nn.Linear(m, nh), cr.nn.ReLU(), cr.nn.Linear(nh, 1))
    print(model)
    model.load_state_dict({"0.weight": w1.t().data, "0.bias": b1.data,
                           "2.weight": w2.t().data, "2.bias": b2.data})
    loss = cr.mse(model(x_train), y_train_f)
    model.zero_grad()
    loss.backward()
    print(f"loss {loss.item():.6f}; .grad compared with step 5 (transposed where needed):")
    check("nn.Linear", "w1", model[0].weight.grad.T, grads[0])
    check("nn.Linear", "b1", model[0].bias.grad, grads[1])
    check("nn.Linear", "w2", model[2].weight.grad.T, grads[2])
    check("nn.Linear", "b2", model[2].bias.grad, grads[3])

    if torch is None:
        print("PyTorch is not installed: the PyTorch check is skipped.")
    else:
        torch_model = torch.nn.Sequential(torch.nn.Linear(m, nh), torch.nn.ReLU(),
                                          torch.nn.Linear(nh, 1))
        # The same keys and layouts, so the state_dict moves across unchanged.
        torch_model.load_state_dict({k: torch.from_numpy(v)
                                     for k, v in model.state_dict().items()})
        t_loss = torch.nn.functional.mse_loss(torch_model(torch.from_numpy(x_train.data)),
                                              torch.from_numpy(y_train_f.data)[:, None])
        t_loss.backward()
        print(f"PyTorch loss {t_loss.item():.6f}; chainrule vs PyTorch, parameter by parameter:")
        check("nn vs torch.nn", "loss", loss.data, t_loss)
        torch_params = dict(torch_model.named_parameters())
        for name, p in model.named_parameters():
            check("nn vs torch.nn", name, p.grad, torch_params[name].grad)

    heading(10, "The tape behind the loss, drawn")
    loss = cr.mse(model(x_train), y_train_f)
    # Drawn before backward, so that every op's box keeps the norm of its gradient.
    graph = cr.viz.draw(loss, model, names={"x_train": x_train, "y_train": y_train_f})
    model.zero_grad()
    loss.backward()
    print("cr.viz.draw(loss, model) gives the graph autograd walked: one box per op, with its")
    print("output's shape and the norm of the gradient that reached it, and the leaves it")
    print("started from. Its DOT text (graph.render('tape.png') draws it with Graphviz;")
    print("in Jupyter the graph shows itself):")
    print(graph.source)

    print()
    print("=" * 100)
    routes = ["the hand-written chain rule", "the layer classes", "Module.bwd",
              "chainrule's autograd"] + ([] if torch is None else ["PyTorch's autograd"])
    skipped = " (PyTorch is not installed: its checks were skipped)" if torch is None else ""
    summary = (f"Summary: all {len(CHECKS)} checks agree{skipped}: {', '.join(routes[:-1])} "
               f"and {routes[-1]} all give the same gradients "
               f"({time.perf_counter() - start:.1f} s).")
    print(textwrap.fill(summary, 96, break_on_hyphens=False))


if __name__ == "__main__":
    main()
