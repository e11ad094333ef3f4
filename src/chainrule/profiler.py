"""Where does the time go? Per-op forward and backward wall time.

    with cr.profiler.profile() as prof:
        loss = model(x) ...; loss.backward(); optimizer.step()
    print(prof.table())

Every registered op's ``forward`` and ``backward`` is timed while the block runs (the
classes are wrapped on entry and restored on exit; methods an op inherits from a registered
op count under that op's name), so the table adds up the work of each primitive: the place
to look before optimising anything. Times are exclusive: an op whose forward calls another
op's forward (a fused op built from a plain one) counts only its own part, so the rows add up
to no more than the time spent in ops. (A fused op that falls back to running plain ops,
as batch_norm_max_pool2d does on an input its shortcut cannot take, shows them as rows of
their own.)
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chainrule.engine.function import registry

_active: Profile | None = None


@dataclass
class Profile:
    """Accumulated seconds and calls per (op, pass)."""

    seconds: dict[tuple[str, str], float] = field(default_factory=lambda: defaultdict(float))
    calls: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    wall: float = 0.0

    def table(self, top: int = 20, per: int = 1) -> str:
        """The ``top`` most expensive (op, pass) rows; times divided by ``per`` (e.g. steps)."""
        if per < 1:
            raise ValueError(f"Profile.table: per must be a positive count, got {per}")
        total = sum(self.seconds.values())
        lines = [f"{'op':<20}{'pass':<10}{'ms':>10}{'share':>8}{'calls':>8}"]
        ranked = sorted(self.seconds.items(), key=lambda item: -item[1])[:top]
        for (op, kind), seconds in ranked:
            lines.append(f"{op:<20}{kind:<10}{seconds * 1e3 / per:>10.2f}"
                         f"{seconds / total if total else 0:>8.1%}"
                         f"{self.calls[(op, kind)] // per:>8}")
        lines.append(f"{'ops total':<30}{total * 1e3 / per:>10.2f}"
                     f"{total / self.wall if self.wall else 0:>8.1%}  of the block's "
                     f"{self.wall * 1e3 / per:.2f} ms")
        return "\n".join(lines)


def _timed(function: Callable[..., Any], key: tuple[str, str], profile: Profile,
           stacks: threading.local) -> Callable[..., Any]:
    # A stack per thread, one entry per timed call in progress there: the seconds its nested
    # timed calls took, which are theirs and not its own.
    def run(*args: Any, **kwargs: Any) -> Any:
        inner = stacks.__dict__.setdefault("inner", [])
        inner.append(0.0)
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - start
            profile.seconds[key] += elapsed - inner.pop()
            profile.calls[key] += 1
            if inner:
                inner[-1] += elapsed
    return run


class profile:  # noqa: N801 - used like a function, as a context manager
    """Context manager that times every registered op's forward and backward inside it."""

    def __enter__(self) -> Profile:
        global _active
        if _active is not None:
            raise RuntimeError("profile: a profile is already running; nest nothing")
        self.result = _active = Profile()
        self.saved: list[tuple[type, str, Any]] = []
        stacks = threading.local()
        for name, cls in registry().items():
            for kind in ("forward", "backward"):
                original = cls.__dict__.get(kind)
                if original is None:
                    continue
                self.saved.append((cls, kind, original))
                wrapped = _timed(original.__func__, (name, kind), self.result, stacks)
                setattr(cls, kind, classmethod(wrapped) if isinstance(original, classmethod)
                        else staticmethod(wrapped))
        self.start = time.perf_counter()
        return self.result

    def __exit__(self, *exc: object) -> None:
        global _active
        self.result.wall += time.perf_counter() - self.start
        for cls, kind, original in reversed(self.saved):
            setattr(cls, kind, original)
        _active = None
