"""Verification tools: check a backward pass (and diagnose it), finite-difference gradcheck,
the two-path cross-check of hand-written layers, the NaN/inf sentinel, and PyTorch parity
(torch is imported only when a parity tool runs). All of them compare through ``compare``,
which never lets a NaN/inf pass.

By concern: ``checker`` (check), ``diagnosis`` (diagnose), ``gradcheck``, ``finite_differences``
(their one engine and tolerance rule), ``comparison``, ``handwritten`` (watching ``.g`` writes,
the cross-check), ``sentinel``; for parity, ``converters`` and ``builtin_converters``
(to_torch/from_torch), ``parity`` (the runner), ``recording``, ``loss_twins``, ``report``.
"""

from chainrule.check import builtin_converters  # noqa: F401  (registers the layers' converters)
from chainrule.check.checker import CheckReport, GradientCheckError, Mismatch, check
from chainrule.check.comparison import Comparison, compare
from chainrule.check.converters import (
    ConversionError,
    Converter,
    from_torch,
    from_torch_parameter,
    register_converter,
    to_torch,
    to_torch_parameter,
    unregister_converter,
)
from chainrule.check.diagnosis import diagnose
from chainrule.check.gradcheck import GradcheckError, GradcheckResult, gradcheck
from chainrule.check.handwritten import GradientMismatchError
from chainrule.check.parity import parity_report
from chainrule.check.report import Diff, LayerParity, ParityReport
from chainrule.check.sentinel import NonFiniteError, Sentinel, SentinelCallback, sentinel

__all__ = [
    "CheckReport", "Comparison", "ConversionError", "Converter", "Diff", "GradcheckError",
    "GradcheckResult", "GradientCheckError", "GradientMismatchError", "LayerParity", "Mismatch",
    "NonFiniteError", "ParityReport", "Sentinel", "SentinelCallback", "check", "compare",
    "diagnose", "from_torch", "from_torch_parameter", "gradcheck", "parity_report",
    "register_converter", "sentinel", "to_torch", "to_torch_parameter", "unregister_converter",
]
