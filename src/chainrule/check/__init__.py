"""Verification tools: finite-difference gradient checks (PyTorch is never needed here)."""

from chainrule.check.gradcheck import GradcheckError, GradcheckResult, gradcheck

__all__ = ["GradcheckError", "GradcheckResult", "gradcheck"]
