"""Matrix cases for issue 13's scans, sorting, reductions, linear algebra (area A)."""

from __future__ import annotations

from op_cases import Case

CASES: list[Case] = [
]
