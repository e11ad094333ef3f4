"""Matrix cases for issue 14's recurrent layers (area S2); see op_cases.py."""

from __future__ import annotations

from op_cases import Case

CASES: list[Case] = [
]
