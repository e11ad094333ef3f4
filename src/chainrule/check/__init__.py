"""Verification tools: check a backward pass (and diagnose it), finite-difference gradcheck,
the NaN/inf sentinel, and PyTorch parity (torch is imported only when a parity tool runs).
All of them compare through ``compare``, which never lets a NaN/inf pass."""

from chainrule.check.checker import CheckReport, GradientCheckError, Mismatch, check, diagnose
from chainrule.check.comparison import Comparison, compare
from chainrule.check.gradcheck import GradcheckError, GradcheckResult, gradcheck
from chainrule.check.parity import (
    ConversionError,
    Converter,
    Diff,
    LayerParity,
    ParityReport,
    from_torch,
    from_torch_parameter,
    parity_report,
    register_converter,
    to_torch,
    to_torch_parameter,
    unregister_converter,
)
from chainrule.check.sentinel import NonFiniteError, Sentinel, SentinelCallback, sentinel

__all__ = [
    "CheckReport", "Comparison", "ConversionError", "Converter", "Diff", "GradcheckError",
    "GradcheckResult", "GradientCheckError", "LayerParity", "Mismatch", "NonFiniteError",
    "ParityReport", "Sentinel", "SentinelCallback", "check", "compare", "diagnose",
    "from_torch", "from_torch_parameter", "gradcheck", "parity_report", "register_converter",
    "sentinel", "to_torch", "to_torch_parameter", "unregister_converter",
]
