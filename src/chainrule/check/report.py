"""What ``parity_report`` returns: a ``Diff`` per compared quantity, a ``LayerParity`` row per
layer, and the ``ParityReport`` that prints them as a table; ``measure`` makes a Diff from
chainrule's arrays and torch's through the shared NaN-aware comparison.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chainrule.check.comparison import compare, first_index, nonfinite_message

_PROBLEMS_SHOWN = 6  # NaN lines: the first few say where it starts; the rest inherit it


@dataclass(frozen=True)
class Diff:
    """The largest difference between a chainrule array and its torch counterpart."""

    layer: str
    quantity: str  # "output", "output grad", "weight grad", "local output", ...
    max_abs: float
    max_rel: float  # max_abs over the largest |torch value|: digits of agreement, not noise
    ok: bool
    problem: str = ""  # NaN/inf on one side, or nothing to compare with: said in words
    compared: int | None = None  # how many elements were compared (None: not counted)
    wrong: int | None = None  # how many are known to differ (None: not counted)
    uncomparable: int = 0  # how many could not be compared: torch gives NaN there

    @property
    def disagrees(self) -> bool:
        """Some element is known to differ, not merely uncomparable (torch gives NaN)."""
        if self.ok:
            return False
        return self.wrong is None or self.wrong > 0 or not self.uncomparable

    def __str__(self) -> str:
        text = (f"{self.layer} {self.quantity}: {_number(self.max_rel)} relative, "
                f"{_number(self.max_abs)} absolute{'' if self.ok else ' (beyond tolerance)'}")
        return f"{text}; {self.problem}" if self.problem else text


@dataclass
class LayerParity:
    """One row of the report: a layer (or the input, or the loss) and its differences."""

    name: str
    type: str
    torch_type: str
    forward: Diff | None = None
    output_grad: Diff | None = None
    param_grads: dict[str, Diff] = field(default_factory=dict)
    local: list[Diff] = field(default_factory=list)  # the layer alone, on identical inputs
    calls: int = 0
    matched: bool = True  # False when the torch model has no layer of this name
    note: str = ""

    def diffs(self) -> list[Diff]:
        """Every difference in this row."""
        found = [self.forward, self.output_grad, *self.param_grads.values(), *self.local]
        return [d for d in found if d is not None]

    @property
    def local_ok(self) -> bool:
        """The layer by itself agrees with its twin (False also when it has no twin).

        A local run that torch answers with NaN too (fed a NaN from elsewhere) is no
        disagreement of this layer's; the row is still not ok."""
        return self.matched and not any(d.disagrees for d in self.local)

    @property
    def ok(self) -> bool:
        """Everything in this row is within tolerance."""
        return self.local_ok and all(d.ok for d in self.diffs())

    @property
    def status(self) -> str:
        """✓ agrees; ✗ disagrees on identical inputs; ~ differs only by inheritance."""
        return "✓" if self.ok else "✗" if not self.local_ok else "~"


@dataclass
class ParityReport:
    """What ``parity_report`` compared; ``print(report)`` shows it as a table."""

    rows: list[LayerParity]
    dtype: str
    loss_name: str
    loss: tuple[float, float]  # (chainrule, torch)
    rtol: float
    atol: float
    batch: int | None = None
    torch_version: str = ""
    nothing_compared: str = ""  # why the comparison compared nothing ('' when it did)

    @property
    def ok(self) -> bool:
        """Something was compared, and every output, gradient and local check agrees."""
        return not self.nothing_compared and all(row.ok for row in self.rows)

    @property
    def flagged(self) -> list[str]:
        """Names of the rows that disagree with torch on identical inputs (✗)."""
        return [row.name for row in self.rows if row.status == "✗"]

    @property
    def worst(self) -> Diff | None:
        """The largest relative difference anywhere in the report."""
        diffs = [d for row in self.rows for d in row.diffs()]
        return max(diffs, key=lambda d: d.max_rel, default=None)

    def __str__(self) -> str:
        lines = self._heading() + self._table() + self._problems() + [""] + self._verdict()
        return "\n".join(lines)

    def _heading(self) -> list[str]:
        batch = f"one batch of {self.batch}" if self.batch is not None else "one batch"
        title = (f"parity chainrule vs torch {self.torch_version}: {batch} at {self.dtype}, "
                 f"loss {self.loss_name} ({self.loss[0]:.10g} vs {self.loss[1]:.10g})")
        scale = ("cells: max |chainrule - torch| / max |torch| per tensor, ! beyond tolerance "
                 f"(rtol {self.rtol:g}, atol {self.atol:g})")
        local = "local: the layer alone, fed identical inputs and output gradient in both"
        return [title, scale, local, ""]

    def _table(self) -> list[str]:
        """One aligned line per row, then the rows' notes."""
        header = ("layer", "type", "forward", "output grad", "parameter grads", "local", "")
        table = [header] + [(
            row.name, row.type, _cell(row.forward), _cell(row.output_grad),
            "  ".join(f"{n} {_cell(d)}" for n, d in row.param_grads.items()) or "-",
            _cell(max(row.local, key=lambda d: d.max_rel, default=None)), row.status,
        ) for row in self.rows]
        widths = [max(len(r[i]) for r in table) for i in range(len(header))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
        return lines + [f"  {row.name}: {row.note}" for row in self.rows if row.note]

    def _problems(self) -> list[str]:
        """The NaN/inf and uncomparable values, in words, the first few of them."""
        # The layers that disagree on their own come first: that is where a NaN starts.
        ordered = sorted(self.rows, key=lambda row: row.status != "✗")
        problems = [d.problem for row in ordered
                    for d in sorted(row.diffs(), key=lambda d: d not in row.local)
                    if d.problem]
        lines = [f"  {problem}" for problem in problems[:_PROBLEMS_SHOWN]]
        if len(problems) > _PROBLEMS_SHOWN:
            lines.append(f"  ... and {len(problems) - _PROBLEMS_SHOWN} more like these")
        return lines

    def _verdict(self) -> list[str]:
        """OK or FAILED, with where to look, and the largest difference."""
        worst = self.worst
        largest = f"largest difference: {worst}" if worst else "nothing compared"
        if self.nothing_compared:
            return [f"FAILED: nothing was compared: {self.nothing_compared}"]
        if self.ok:
            return [f"OK: every layer agrees with torch ({largest})"]
        flagged = [r for r in self.rows if r.status == "✗"]
        if flagged:
            named = ", ".join(f"{r.name} ({r.type})" for r in flagged)
            inherited = any(r.status == "~" for r in self.rows)
            verdict = (f"FAILED: disagrees with torch on identical inputs: {named}"
                       + (". Rows marked ~ only inherit that difference" * inherited))
        elif any(d.uncomparable for row in self.rows for d in row.diffs()):
            verdict = ("FAILED: torch gives NaN as well, so some values could not be "
                       "compared (see above): choose inputs where the model is finite")
        else:
            verdict = ("FAILED: every layer agrees with torch on its own, yet the results "
                       "differ: look at the code between layers (a container's forward) or "
                       "the loss")
        return [verdict, largest]


def _number(x: float) -> str:
    return "0" if x == 0 else f"{x:.1e}"


def _cell(diff: Diff | None) -> str:
    return "-" if diff is None else _number(diff.max_rel) + ("" if diff.ok else "!")


def measure(layer: str, quantity: str, pairs: list[tuple[Any, Any]], rtol: float,
            atol: float) -> Diff | None:
    """The Diff of chainrule's arrays against torch's over ``pairs`` (one per call of the
    layer), or None when neither side has a value; a missing gradient counts as 0.

    Goes through the shared comparison: a NaN/inf in chainrule's value where torch's is
    finite is a failure, the same infinity on both sides agrees (torch's value is exact), and
    a NaN from torch means that element could not be compared, which is a failure too.
    """
    prepared = []
    for ours, theirs in pairs:
        if ours is None and theirs is None:
            continue
        ours = np.zeros_like(theirs) if ours is None else np.asarray(ours, np.float64)
        theirs = np.zeros_like(ours) if theirs is None else np.asarray(theirs, np.float64)
        if ours.shape != theirs.shape:
            return Diff(layer, f"{quantity} (shapes {ours.shape} vs {theirs.shape})",
                        np.inf, np.inf, False, compared=0)
        prepared.append((ours, theirs))
    if not prepared:
        return None
    # One scale for the whole tensor: the tolerance is relative to its largest finite value.
    scale = max(float(np.abs(t[np.isfinite(t)]).max(initial=0.0)) for _, t in prepared)
    verdicts = [compare(theirs, ours, rtol, atol, scale=scale, exact_inf=True)
                for ours, theirs in prepared]
    max_abs = max(v.max_abs for v in verdicts)
    rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else np.inf)
    return Diff(layer, quantity, max_abs, rel, all(v.ok for v in verdicts),
                problem=_first_problem(layer, quantity, prepared, verdicts),
                compared=sum(v.compared for v in verdicts),
                wrong=sum(int(v.wrong.sum()) for v in verdicts),
                uncomparable=sum(int(v.unchecked.sum()) for v in verdicts))


def _first_problem(layer: str, quantity: str, prepared: list[tuple[np.ndarray, np.ndarray]],
                   verdicts: list[Any]) -> str:
    """The first call's NaN/inf or uncomparable value, in words ('' when there is none)."""
    for (ours, theirs), verdict in zip(prepared, verdicts):
        if verdict.nonfinite.any():
            return nonfinite_message(f"chainrule's {quantity} at {layer}", ours,
                                     verdict.nonfinite, theirs, "torch")
        if verdict.unchecked.any():
            j = first_index(verdict.unchecked)
            return (f"could not compare the {quantity} at {layer}: torch gives NaN at "
                    f"{int(verdict.unchecked.sum())} of {theirs.size} elements (first at "
                    f"{j}, where chainrule gives {float(ours[j]):.6g})")
    return ""
