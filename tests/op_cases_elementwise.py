"""Matrix cases for issue 13's elementwise maths and activations (area C); see op_cases.py."""

from __future__ import annotations

from op_cases import Case

CASES: list[Case] = [
]
