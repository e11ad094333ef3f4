"""The fast array work behind the ops, each kernel beside its plain NumPy reference.

An op's forward and backward say the maths; where the maths has a fast form (threads,
cache-sized blocks, BLAS tricks, strided views), the op calls a kernel from this namespace,
``kernels.im2col(...)``. Every kernel ``f`` has ``f_reference`` beside it in the same module:
the same signature, the same result (bit for bit where the docstring says so), written as
plainly as NumPy allows. The reference is what the tests check the kernel against and what a
compiled or GPU backend would start from: a backend supplies functions of these names and
signatures, and assigning them here (as tests/test_kernels.py does with the references)
is all the ops need. docs/kernels.md describes each kernel and why it is fast.

- threads: ``over_batch``, ``over_blocks``, ``blocked_sum``: split memory-bound passes over
  threads, a cache-sized block at a time.
- bias: a bias added to each row of a layer's output, compiled.
- blas: ``matmul``: small products on one BLAS thread.
- reduce: column and row sums as BLAS products, row maxima over a transposed copy, cached
  constant arrays.
- conv: channels-last im2col on strided views, the input gradient one kernel position at a
  time (its adds compiled), pooling one kernel position at a time.
- norm: batch norm's statistics, affine passes and sums; its fusion with max pooling (the
  statistics, the affine pass and the fused pooling's two passes compiled).
- update: optimizer updates in cache-sized blocks; Adam's and SGD's in one compiled pass.
- process: ``tune_process()``, the opt-in process settings (nothing is set on import).
- activation: GELU's forward and backward, compiled passes (one each in float32).
- recurrent: a GRU or LSTM step's elementwise work, forward and backward, compiled.
- layernorm: layer norm over the last axis, forward and backward, compiled row passes.
- scatter: rows added into a table at indices (an embedding's backward), compiled.
- softmax: attention's softmax over the keys in place (scale, causal mask), on scores laid
  out keys by queries, forward and backward, compiled passes (float32's exp compiled in).
- crossentropy: softmax cross-entropy over rows at class indices, one compiled pass.
- exp: ``exp_float32``, e^x written out for compiled loops to call (SIMD inside them).
- mkl: matrix products through MKL where the ``mkl`` wheel is installed.
- jit: the compiled kernels' machinery: numba on first use, ``use("numpy")`` for the
  references (or ``CHAINRULE_KERNELS=numpy``), ``backend()`` says which runs;
  ``use_parallel`` and ``parallel()`` for the loops that may run on numba's threads.
"""

from chainrule.kernels.activation import (
    bias_gelu,
    bias_gelu_grad,
    bias_gelu_grad_reference,
    bias_gelu_reference,
    gelu,
    gelu_grad,
    gelu_grad_reference,
    gelu_reference,
)
from chainrule.kernels.bias import add_bias, add_bias_reference
from chainrule.kernels.blas import blas_threads, matmul, matmul_reference
from chainrule.kernels.conv import (
    channels_last,
    channels_last_reference,
    conv_input_grad,
    conv_input_grad_reference,
    im2col,
    im2col_reference,
    image_bytes,
    images,
    positions,
    route_to_winners,
    route_to_winners_reference,
    spread_over_windows,
    spread_over_windows_reference,
    tap,
    tap_nd,
    window_max,
    window_max_reference,
    window_mean,
    window_mean_reference,
    windows,
    windows_reference,
    winners,
)
from chainrule.kernels.crossentropy import cross_entropy_rows, cross_entropy_rows_reference
from chainrule.kernels.jit import backend, parallel, use, use_parallel
from chainrule.kernels.layernorm import (
    layer_norm,
    layer_norm_grad,
    layer_norm_grad_reference,
    layer_norm_reference,
)
from chainrule.kernels.norm import (
    batch_norm_input_grad,
    batch_norm_input_grad_reference,
    batch_norm_sums,
    batch_norm_sums_reference,
    mean_and_variance,
    mean_and_variance_reference,
    normalise,
    normalise_reference,
    pooled_input_grad,
    pooled_input_grad_reference,
    signed_window_max,
    signed_window_max_reference,
)
from chainrule.kernels.process import blas_spin, keep_freed_memory, tune_process
from chainrule.kernels.recurrent import (
    gru_step,
    gru_step_grad,
    gru_step_grad_reference,
    gru_step_reference,
    lstm_step,
    lstm_step_grad,
    lstm_step_grad_reference,
    lstm_step_reference,
)
from chainrule.kernels.reduce import (
    cached_arange,
    cached_arange_reference,
    cached_ones,
    cached_ones_reference,
    column_sums,
    column_sums_reference,
    max_along,
    max_along_reference,
    precise_column_sums,
    precise_column_sums_reference,
    row_sums,
    row_sums_reference,
)
from chainrule.kernels.scatter import scatter_add_rows, scatter_add_rows_reference
from chainrule.kernels.softmax import (
    softmax_columns,
    softmax_columns_grad,
    softmax_columns_grad_reference,
    softmax_columns_reference,
)
from chainrule.kernels.threads import (
    block_rows,
    blocked_sum,
    blocked_sum_reference,
    num_threads,
    over_batch,
    over_batch_reference,
    over_blocks,
    over_blocks_reference,
)
from chainrule.kernels.update import (
    adam_update,
    adam_update_reference,
    blocked_update,
    blocked_update_reference,
    sgd_update,
    sgd_update_reference,
)

#: The kernels: each has ``<name>_reference`` beside it, with the same signature.
KERNELS = (
    "adam_update", "add_bias", "batch_norm_input_grad", "batch_norm_sums", "bias_gelu",
    "bias_gelu_grad", "blocked_sum", "blocked_update", "cached_arange", "cached_ones",
    "channels_last", "column_sums", "conv_input_grad", "cross_entropy_rows", "gelu",
    "gelu_grad", "gru_step", "gru_step_grad", "im2col", "layer_norm", "layer_norm_grad",
    "lstm_step", "lstm_step_grad", "matmul", "max_along", "mean_and_variance", "normalise",
    "over_batch", "over_blocks", "pooled_input_grad", "precise_column_sums", "route_to_winners",
    "row_sums", "scatter_add_rows", "sgd_update", "signed_window_max", "softmax_columns",
    "softmax_columns_grad", "spread_over_windows", "window_max", "window_mean", "windows",
)

#: Public functions that are not kernels: views and index helpers (their plain form is
#: themselves), and the thread and process settings.
HELPERS = (
    "backend", "blas_spin", "blas_threads", "block_rows", "image_bytes", "images",
    "keep_freed_memory", "num_threads", "parallel", "positions", "tap", "tap_nd",
    "tune_process", "use", "use_parallel", "winners",
)

__all__ = [
    "HELPERS", "KERNELS", "adam_update", "adam_update_reference", "add_bias",
    "add_bias_reference", "backend", "batch_norm_input_grad", "batch_norm_input_grad_reference",
    "batch_norm_sums", "batch_norm_sums_reference", "bias_gelu", "bias_gelu_grad",
    "bias_gelu_grad_reference", "bias_gelu_reference", "blas_spin", "blas_threads",
    "block_rows", "blocked_sum", "blocked_sum_reference", "blocked_update",
    "blocked_update_reference", "cached_arange", "cached_arange_reference", "cached_ones",
    "cached_ones_reference", "channels_last", "channels_last_reference", "column_sums",
    "column_sums_reference", "conv_input_grad", "conv_input_grad_reference",
    "cross_entropy_rows", "cross_entropy_rows_reference", "gelu", "gelu_grad",
    "gelu_grad_reference", "gelu_reference", "gru_step", "gru_step_grad",
    "gru_step_grad_reference", "gru_step_reference", "im2col", "im2col_reference",
    "image_bytes", "images", "keep_freed_memory", "layer_norm", "layer_norm_grad",
    "layer_norm_grad_reference", "layer_norm_reference", "lstm_step", "lstm_step_grad",
    "lstm_step_grad_reference", "lstm_step_reference", "matmul", "matmul_reference",
    "max_along", "max_along_reference", "mean_and_variance", "mean_and_variance_reference",
    "normalise", "normalise_reference", "num_threads", "over_batch", "over_batch_reference",
    "over_blocks", "over_blocks_reference", "parallel", "pooled_input_grad",
    "pooled_input_grad_reference", "positions", "precise_column_sums",
    "precise_column_sums_reference", "route_to_winners", "route_to_winners_reference",
    "row_sums", "row_sums_reference", "scatter_add_rows", "scatter_add_rows_reference",
    "sgd_update", "sgd_update_reference", "signed_window_max", "signed_window_max_reference",
    "softmax_columns", "softmax_columns_grad", "softmax_columns_grad_reference",
    "softmax_columns_reference", "spread_over_windows", "spread_over_windows_reference", "tap",
    "tap_nd", "tune_process", "use", "use_parallel", "window_max", "window_max_reference",
    "window_mean", "window_mean_reference", "windows", "windows_reference", "winners",
]
