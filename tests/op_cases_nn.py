"""Matrix cases for issue 13's losses, norms, embedding and other layers (area E)."""

from __future__ import annotations

from op_cases import Case

CASES: list[Case] = [
]
