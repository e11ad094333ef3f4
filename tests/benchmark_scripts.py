"""Loading a script of benchmarks/ as a module, for the tests that check its parts."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType


def load_benchmark(name: str) -> ModuleType:
    """benchmarks/<name>.py as a module (registered in sys.modules, where dataclasses look
    their module up), leaving the test process's OPENBLAS_THREAD_TIMEOUT as it was: the
    scripts set it for their own runs when they are imported."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    before = os.environ.get("OPENBLAS_THREAD_TIMEOUT")
    spec.loader.exec_module(module)
    if before is None:
        os.environ.pop("OPENBLAS_THREAD_TIMEOUT", None)
    return module
