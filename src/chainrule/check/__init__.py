"""Verification tools: check a backward pass, finite-difference gradcheck (torch not needed)."""

from chainrule.check.checker import CheckReport, GradientCheckError, Mismatch, check, diagnose
from chainrule.check.gradcheck import GradcheckError, GradcheckResult, gradcheck

__all__ = ["CheckReport", "GradcheckError", "GradcheckResult", "GradientCheckError", "Mismatch",
           "check", "diagnose", "gradcheck"]
