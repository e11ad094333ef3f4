"""Getting a model out: tracing it (``trace``) and writing it as ONNX (``to_onnx``)."""

from chainrule.export.onnx import OPSET, ExportError, build, supported_ops, to_onnx
from chainrule.export.trace import Call, Trace, trace

__all__ = ["OPSET", "Call", "ExportError", "Trace", "build", "supported_ops", "to_onnx",
           "trace"]
