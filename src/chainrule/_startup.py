"""Process settings chainrule makes before NumPy loads its BLAS (imported first)."""

import os

# OpenBLAS's threads spin for a long while after each matrix product, holding the cores that
# chainrule's own threads (see chainrule.parallel) need next; a short spin costs matmuls
# nothing. Takes effect only when chainrule is imported before NumPy; set it yourself otherwise.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
