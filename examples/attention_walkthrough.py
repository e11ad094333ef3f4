"""Attention, its backward derived by hand, then a GPT that learns Shakespeare.

The seed lesson derived the gradients of a linear layer, relu and mse with the chain rule and
checked them. This walk-through does the same for the layer a GPT is made of: single-head
causal self-attention,

    S = q k^T / sqrt(d)        scores: how well query i matches key j
    S[i, j] = -inf for j > i   the causal mask: position i may only look at 0..i
    P = softmax(S)             along each row: attention weights that sum to 1
    O = P v                    each output a weighted average of the values

written as a Module with ``forward`` and a hand-written ``bwd`` (the seed's style), checked
with ``cr.check``, shown failing when one line of the derivation is wrong, and compared with
chainrule's own ``scaled_dot_product_attention`` op. Then the library's GPT (nanoGPT's model,
whose attention is this one with several heads) trains on the bundled Shakespeare and writes
some of its own.

Run from the repository root:  python examples/attention_walkthrough.py [--steps 800]
(about a minute on 2 cores; add --steps 30 --n-layer 1 --n-embd 32 for a quick look).
It exits with an error if a gradient check disagrees or a wrong gradient goes unnoticed.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import textwrap
import time

import numpy as np

import chainrule as cr
from chainrule import models, nn, optim
from chainrule.check import GradientCheckError, check
from chainrule.data import load_text_dataset
from chainrule.nn import functional as F
from chainrule.train import Learner, ProgressBar

# Every check that passed and every deliberate slip that was caught: the summary counts them.
CHECKS: list[str] = []


# --------------------------------------------------------------------------- printing helpers
def heading(number: int, title: str) -> None:
    print()
    print("=" * 100)
    print(f"Step {number}. {title}")
    print("=" * 100)


def show(name: str, t: cr.Tensor) -> None:
    """A small matrix, two decimals, indented under its name."""
    text = np.array2string(np.asarray(t.data), precision=2, suppress_small=True,
                           floatmode="fixed", max_line_width=96)
    print(f"{name} {tuple(t.shape)}:")
    print(textwrap.indent(text, "    "))


def agree(what: str, mine: cr.Tensor, reference, tol: float = 1e-10) -> None:
    """Print the largest difference of two float64 results; stop the script if it is more
    than rounding."""
    a = np.asarray(mine.data if isinstance(mine, cr.Tensor) else mine)
    b = np.asarray(reference.detach().numpy() if hasattr(reference, "detach") else reference)
    diff = float(np.max(np.abs(a - b)))
    assert a.shape == b.shape and diff <= tol * max(1.0, float(np.max(np.abs(b)))), (
        f"{what} disagrees: max |diff| {diff:.2e}")
    CHECKS.append(what)
    print(f"  {what:<34} max |diff| {diff:.1e}   agree")


# --------------------------------------------------------------------------- step 1: forward
def causal_weights(q: cr.Tensor, k: cr.Tensor) -> cr.Tensor:
    """P = softmax(q k^T / sqrt(d) with the future masked out), (..., T, T)."""
    d, t = q.shape[-1], q.shape[-2]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)
    future = cr.ones(t, t).triu(1).bool()  # True above the diagonal: key j > query i
    # exp(-inf) = 0, so a masked key gets exactly zero weight after the softmax.
    return scores.masked_fill(future, float("-inf")).softmax(-1)


# --------------------------------------------------------------------------- step 2: by hand
# The backward pass, derived the way the seed derives lin_grad: write the forward as sums over
# indices, differentiate one entry, and read the result back as matrix products. Write dX
# for the gradient of the loss L with respect to X (the seed's X.g), and ∂ for one entry's
# partial derivative. bwd gets dO = out.g and must set q.g, k.g and v.g.
#
#   O = P v,  O[i, c] = sum_j P[i, j] v[j, c]
#     dv[j, c] = sum_i dO[i, c] ∂O[i, c]/∂v[j, c] = sum_i P[i, j] dO[i, c]    dv = P^T dO
#     dP[i, j] = sum_c dO[i, c] ∂O[i, c]/∂P[i, j] = sum_c dO[i, c] v[j, c]    dP = dO v^T
#
#   P = softmax(S) row by row,  P[i, j] = exp(S[i, j]) / Z[i],  Z[i] = sum_m exp(S[i, m])
#     ∂P[i, j]/∂S[i, m] = P[i, j] (1 if j == m else 0) - P[i, j] P[i, m]
#     (the exp on top gives the first term, the Z below the second; rows do not mix)
#   so, summing over j (the chain rule adds every path from S[i, m] to the loss):
#     dS[i, m] = sum_j dP[i, j] ∂P[i, j]/∂S[i, m]
#              = dP[i, m] P[i, m] - P[i, m] sum_j dP[i, j] P[i, j]
#              = P[i, m] (dP[i, m] - rowsum(dP * P)[i])
#                                                    so   dS = P * (dP - rowsum(dP * P))
#   That is the softmax's Jacobian-vector product: the (T, T) Jacobian of each row is never
#   built, one elementwise product and one row sum do its work.
#
#   The mask: a masked S[i, m] is -inf and its P[i, m] is 0, so the formula gives dS[i, m] = 0.
#   No gradient flows to the future, and the mask needs no line of its own.
#
#   S = q k^T / sqrt(d),  S[i, j] = sum_c q[i, c] k[j, c] / sqrt(d)
#     dq = dS k / sqrt(d)        dk = dS^T q / sqrt(d)
#   (k appears in S transposed, so its gradient takes dS transposed, as lin_grad's w.g does.)
class CausalAttention(nn.Module):
    """Single-head causal attention with the backward written by hand."""

    def forward(self, q: cr.Tensor, k: cr.Tensor, v: cr.Tensor) -> cr.Tensor:
        return causal_weights(q, k) @ v

    def bwd(self, out: cr.Tensor, q: cr.Tensor, k: cr.Tensor, v: cr.Tensor) -> None:
        # bwd gets the forward's inputs, so it recomputes P from them (cheap at this size;
        # chainrule's own op keeps P from the forward instead).
        p = causal_weights(q, k)
        scale = 1 / math.sqrt(q.shape[-1])
        v.g = p.transpose(-2, -1) @ out.g
        dp = out.g @ v.transpose(-2, -1)
        ds = p * (dp - (dp * p).sum(-1, keepdim=True))
        q.g = ds @ k * scale
        k.g = ds.transpose(-2, -1) @ q * scale


# Two slips a learner might make, each a single line of bwd changed.
class SoftmaxAsIfElementwise(CausalAttention):
    """dS = P * dP: the softmax differentiated as if each entry depended on its own score
    only (exp's derivative), forgetting that every score also moves Z, the row's sum."""

    def bwd(self, out: cr.Tensor, q: cr.Tensor, k: cr.Tensor, v: cr.Tensor) -> None:
        p = causal_weights(q, k)
        scale = 1 / math.sqrt(q.shape[-1])
        v.g = p.transpose(-2, -1) @ out.g
        dp = out.g @ v.transpose(-2, -1)
        ds = p * dp  # the slip: the "- rowsum(dP * P)" term is missing
        q.g = ds @ k * scale
        k.g = ds.transpose(-2, -1) @ q * scale


class ForgetsTheScale(CausalAttention):
    """The 1/sqrt(d) of the scores left out of k's gradient."""

    def bwd(self, out: cr.Tensor, q: cr.Tensor, k: cr.Tensor, v: cr.Tensor) -> None:
        p = causal_weights(q, k)
        scale = 1 / math.sqrt(q.shape[-1])
        v.g = p.transpose(-2, -1) @ out.g
        dp = out.g @ v.transpose(-2, -1)
        ds = p * (dp - (dp * p).sum(-1, keepdim=True))
        q.g = ds @ k * scale
        k.g = ds.transpose(-2, -1) @ q  # the slip: "* scale" is missing


def catch(layer: nn.Module, inputs: list[np.ndarray], expect: str) -> None:
    """Run cr.check on a deliberately wrong layer: it must fail, and say ``expect``."""
    try:
        check(layer, *inputs, torch=False)
    except GradientCheckError as error:
        message = str(error)
        for line in message.splitlines()[:6]:
            indent = " " * (4 + len(line) - len(line.lstrip()))
            print(textwrap.fill(line.strip(), 96, initial_indent=indent,
                                subsequent_indent=indent + "  "))
        assert expect in message, f"check's message lacks {expect!r}:\n{message}"
        CHECKS.append(f"caught {type(layer).__name__}")
        print(f"  -> caught: {type(layer).__name__}")
        return
    raise AssertionError(f"cr.check passed {type(layer).__name__}, whose bwd is wrong")


# --------------------------------------------------------------------------- step 6: the GPT
def token_loss(logits: cr.Tensor, targets: cr.Tensor) -> cr.Tensor:
    """Cross-entropy of every position's next-character logits (B, T, V) against (B, T)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def load_torch():
    """PyTorch if it is installed, else None (it is only a second opinion here)."""
    try:
        import torch
    except ImportError:
        return None
    return torch


# =========================================================================== the walkthrough
def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=800, help="GPT training steps (800)")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (2e-3)")
    parser.add_argument("--eval-every", type=int, default=100,
                        help="evaluate on the validation text every N steps (100)")
    parser.add_argument("--n-layer", type=int, default=4)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--n-embd", type=int, default=128)
    parser.add_argument("--block-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=12)
    parser.add_argument("--tokens", type=int, default=300, help="characters to sample (300)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.eval_every < 1 or args.tokens < 0 or not args.lr > 0:
        parser.error("--steps and --eval-every must be at least 1, --tokens at least 0 and "
                     "--lr positive")
    return args


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Run every step; returns the GPT's losses (first and last evaluation)."""
    args = parse(argv)
    start = time.perf_counter()
    torch = load_torch()
    cr.manual_seed(args.seed)

    heading(1, "Causal attention's forward pass, on 5 positions")
    print("Each position has a query (what it looks for), a key (what it offers) and a value")
    print("(what it passes on); here they are random, in a GPT they are projections of the")
    print("characters' embeddings. One sequence of T = 5 positions, d = 4 features:")
    q, k, v = cr.randn(5, 4), cr.randn(5, 4), cr.randn(5, 4)
    scores = q @ k.transpose(-2, -1) / math.sqrt(4)
    show("S = q @ k^T / sqrt(d)", scores)
    show("with the future masked out", scores.masked_fill(cr.ones(5, 5).triu(1).bool(),
                                                        float("-inf")))
    p = causal_weights(q, k)
    show("P = softmax(S) along each row", p)
    print(f"Every row sums to 1 (row sums {np.round(p.sum(-1).data, 6).tolist()}), and the")
    print("first position can only attend to itself: its output is its own value.")
    out = p @ v
    show("O = P @ v", out)
    assert np.allclose(out.data[0], v.data[0])

    heading(2, "The backward pass, derived by hand")
    print("The derivation is written out in the comments above CausalAttention. In short:")
    for line in ("dv = P^T dO", "dP = dO v^T", "dS = P * (dP - rowsum(dP * P))   "
                 "the softmax's Jacobian-vector product",
                 "dq = dS k / sqrt(d),   dk = dS^T q / sqrt(d)"):
        print(f"    {line}")
    print("A masked score has P = 0, so its dS is 0: no gradient flows to future positions.")

    heading(3, "Checking the hand-written backward with cr.check")
    print("cr.check compares every gradient bwd sets with central finite differences of the")
    print("forward, at float64 (a batch of 2 sequences of 6 positions, d = 4, values of 3):")
    rng = np.random.default_rng(args.seed)
    inputs = [rng.standard_normal((2, 6, 4)), rng.standard_normal((2, 6, 4)),
              rng.standard_normal((2, 6, 3))]
    report = check(CausalAttention(), *inputs, torch=False)
    print(textwrap.indent(str(report), "    "))
    assert report.passed
    CHECKS.append("cr.check CausalAttention")
    print()
    print("Now one line of the derivation wrong. The softmax differentiated as if it were")
    print("elementwise, dS = P * dP:")
    catch(SoftmaxAsIfElementwise(), inputs, "gradient of input 0 (q)")
    print("v's gradient is still right (it does not go through the softmax); q's and k's are")
    print("not. The true gradient of the first query is 0: it sees only its own key, whose")
    print("weight is 1 whatever q is. The slip gives it one anyway.")
    print()
    print("And the 1/sqrt(d) forgotten in k's gradient (d = 4, so it comes out twice too big):")
    catch(ForgetsTheScale(), inputs, "2 times the true gradient")

    heading(4, "The hand-written layer next to chainrule's scaled_dot_product_attention op")
    print("F.scaled_dot_product_attention(q, k, v, is_causal=True) is the same computation as")
    print("one op, its backward written out in chainrule/ops/attention.py. Same inputs, same")
    print("upstream gradient, at float64:")
    upstream = rng.standard_normal((2, 6, 3))
    qkv_hand = [cr.tensor(x, requires_grad=True) for x in inputs]
    out_hand = CausalAttention()(*qkv_hand)
    (out_hand * cr.tensor(upstream)).sum().backward()
    qkv_op = [cr.tensor(x, requires_grad=True) for x in inputs]
    out_op = F.scaled_dot_product_attention(*qkv_op, is_causal=True)
    (out_op * cr.tensor(upstream)).sum().backward()
    print(f"(On the tape the hand-written layer is one {out_hand.grad_fn.__name__} node, the op "
          f"one {out_op.grad_fn.__name__} node.)")
    agree("output: CausalAttention vs the op", out_hand, out_op.data)
    for name, mine, op in zip("qkv", qkv_hand, qkv_op):
        agree(f"{name}.grad: CausalAttention vs the op", mine.grad, op.grad.data)
    if torch is None:
        print("PyTorch is not installed: the PyTorch comparison is skipped.")
    else:
        tq, tk, tv = (torch.tensor(x, requires_grad=True) for x in inputs)
        t_out = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=True)
        (t_out * torch.from_numpy(upstream)).sum().backward()
        print("and next to PyTorch's torch.nn.functional.scaled_dot_product_attention:")
        agree("output: CausalAttention vs PyTorch", out_hand, t_out)
        for name, mine, theirs in zip("qkv", qkv_hand, (tq, tk, tv)):
            agree(f"{name}.grad: CausalAttention vs PyTorch", mine.grad, theirs.grad)

    heading(5, f"Training the GPT for {args.steps} steps on the bundled Shakespeare")
    data = load_text_dataset("shakespeare-char")
    vocab = data.vocab
    print(f"{len(data.train):,} training and {len(data.valid):,} validation characters, "
          f"{vocab.size} distinct:")
    print(f"    {''.join(vocab.chars)!r}")
    model = models.gpt(vocab_size=vocab.size, block_size=args.block_size,
                       n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd)
    attention = model.transformer.h[0].attn
    blocks = f"{args.n_layer} block" + ("s" if args.n_layer != 1 else "")
    print(f"models.gpt: {sum(p.size for p in model.parameters()):,} parameters in {blocks}.")
    print(f"Each block's {type(attention).__name__} runs {args.n_head} heads, each one the "
          "attention of steps 1-4, as one scaled_dot_product_attention op.")
    # nanoGPT's recipe (as chainrule train --model gpt): AdamW, weight decay on the matrices
    # only, a short warm-up then a cosine, gradients clipped to norm 1. Its peak rate is 1e-3
    # for 2000 steps; twice that learns more in this run's few hundred.
    params = model.parameters()
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": 0.1},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    opt = optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.99))
    warmup = min(100, args.steps // 10)
    sched = optim.WarmupCosineLR(opt, warmup, args.steps, eta_min=1e-4)
    train = data.train_loader(args.batch_size, args.block_size, seed=args.seed)
    valid = data.valid_loader(args.batch_size, args.block_size)
    learner = Learner(model, train, opt, valid_data=valid, loss_func=token_loss, metrics={},
                      scheduler=sched, grad_clip=1.0,
                      callbacks=[ProgressBar(file=sys.stdout, bar=False)])
    # The loss before training is close to ln(vocab), a uniform guess over the characters.
    # Measured on the first 10 validation batches, the ones every evaluation during fit uses.
    first_batches = list(itertools.islice(valid, 10))
    untrained = learner.evaluate(first_batches)["loss"]
    print(f"before training: validation loss {untrained:.4f} (ln {vocab.size} = "
          f"{math.log(vocab.size):.4f}: a uniform guess)")
    began = time.perf_counter()
    learner.fit(steps=args.steps, eval_every=args.eval_every, eval_batches=10)
    seconds = time.perf_counter() - began
    final = learner.evaluate(first_batches)["loss"]
    print(f"after {learner.step} steps: validation loss {final:.4f} "
          f"({seconds:.1f} s, {seconds / learner.step * 1000:.0f} ms a step)")

    heading(6, "Sampling from it")
    prompt = "\n"
    tokens = model.generate(vocab.encode(prompt)[None], args.tokens, temperature=0.8,
                            generator=np.random.default_rng(args.seed))
    print(vocab.decode(tokens[0]))

    print()
    print("=" * 100)
    skipped = " (PyTorch is not installed: its comparison was skipped)" if torch is None else ""
    print(textwrap.fill(
        f"Summary: all {len(CHECKS)} checks pass{skipped}: the hand-written attention passes "
        f"cr.check, both wrong versions were caught, and it matches chainrule's op; the GPT's "
        f"validation loss went from {untrained:.4f} to {final:.4f} "
        f"({time.perf_counter() - start:.1f} s in all).", 96, break_on_hyphens=False))
    return {"untrained_loss": untrained, "final_loss": final}


if __name__ == "__main__":
    main()
