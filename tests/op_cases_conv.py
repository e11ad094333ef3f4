"""Matrix cases for issue 13's convolution, pooling, padding, resizing (area D); see op_cases.py."""

from __future__ import annotations

from op_cases import Case

CASES: list[Case] = [
]
