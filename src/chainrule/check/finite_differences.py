"""Central finite differences: the one engine, and the one tolerance rule, behind ``check`` and
``gradcheck``.

Both turn a forward pass into a scalar L(x) = sum(u * f(x)) of one input x (u: a fixed random
weighting of the output), whose gradient backward computes as backward(u). Central
differences estimate its slope along a unit direction d:

    (L(x + h d) - L(x - h d)) / (2 h)  ~  <dL/dx, d>

``element_slopes`` takes every axis direction e_j with h = eps (the whole gradient, element
by element); ``direction_slopes`` takes a few random directions, cheap for big inputs: v drawn
standard normal, so that h = eps ||v|| moves each element by about eps, as the axis steps do,
and d = v / ||v||.

The rule: a slope of backward's agrees with the finite-difference one along a unit direction
when |backward - fd| <= atol + rtol * |fd|. For the axis directions that is the element-wise
comparison. For a random direction it is the same rule, not a looser one: written for v
itself, atol grows with ||v|| (about sqrt(size)), because <g, v> = sum_j g_j v_j sums one
term per element, and errors of size atol in those terms, with no common sign, add up like a
random walk, to about atol ||v||. A bound of atol * size would assume every element's error
pushes the same way, and would let a gradient that is wrong by more than atol per element
pass on any large input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from chainrule.check.comparison import Comparison, compare

Loss = Callable[[np.ndarray], float]  # L as a function of one input, the others held fixed


@dataclass(frozen=True)
class Slopes:
    """The slope along every element of x, and which elements sit on a kink."""

    values: np.ndarray
    kinks: np.ndarray  # both one-sided slopes are numbers and they differ (relu at 0)


def element_slopes(loss: Loss, x: np.ndarray, eps: float) -> Slopes:
    """Central differences along every element of ``x``: the whole gradient of ``loss``."""
    flat = x.reshape(-1)
    plus, minus = np.zeros(flat.size), np.zeros(flat.size)
    centre = loss(x)
    for j in range(flat.size):
        shifted = flat.copy()
        shifted[j] += eps
        plus[j] = loss(shifted.reshape(x.shape))
        shifted[j] = flat[j] - eps
        minus[j] = loss(shifted.reshape(x.shape))
    with np.errstate(all="ignore"):  # a NaN/inf here is judged by the comparison
        slopes = (plus - minus) / (2 * eps)
        right, left = (plus - centre) / eps, (centre - minus) / eps
    # A NaN/inf side is no kink: the slope there is unusable, which the comparison reports.
    kinks = compare(left, right, 1e-3, 1e-3).mismatch
    return Slopes(slopes.reshape(x.shape), kinks.reshape(x.shape))


def direction_slopes(loss: Loss, x: np.ndarray, gradient: np.ndarray,
                     rng: np.random.Generator, eps: float, directions: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Slopes along ``directions`` random unit directions: (finite differences, backward's).

    ``gradient`` is backward's gradient of ``loss`` at ``x`` (same shape).
    """
    numeric, analytic = np.zeros(directions), np.zeros(directions)
    for k in range(directions):
        v = rng.standard_normal(x.shape)
        plus, minus = loss(x + eps * v), loss(x - eps * v)
        norm = float(np.sqrt(np.sum(v * v))) or 1.0
        with np.errstate(all="ignore"):
            numeric[k] = (plus - minus) / (2 * eps) / norm
            analytic[k] = float(np.sum(gradient * v)) / norm
    return numeric, analytic


def agreement(reference: np.ndarray, got: np.ndarray, rtol: float, atol: float) -> Comparison:
    """The tolerance rule: slopes along unit directions agree within atol + rtol * |reference|.

    ``reference`` holds the finite-difference slopes, ``got`` backward's, from
    ``element_slopes`` or ``direction_slopes``; an infinite reference counts as unchecked.
    """
    return compare(reference, got, rtol, atol)


def directions_agree(loss: Loss, x: np.ndarray, gradient: np.ndarray,
                     rng: np.random.Generator, eps: float, rtol: float, atol: float,
                     directions: int) -> Comparison:
    """Backward's gradient against finite differences along random directions."""
    return agreement(*direction_slopes(loss, x, gradient, rng, eps, directions), rtol, atol)
