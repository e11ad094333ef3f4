"""The tape walk: reverse-mode differentiation over the graph that recorded ops leave behind.

Every tensor an op makes remembers its Function, the Function's context and its inputs (the
tape). ``backward`` orders that graph so each node comes after every node it feeds, then walks
it in reverse: a node's gradient is complete (summed over all its uses) when it is reached, and
its Function's ``backward`` turns it into one gradient per input, by the chain rule. Leaves
keep what arrives in ``.grad``. The rest of this module is one named check each on what a
``backward`` may hand back.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from chainrule.engine import backend
from chainrule.engine.tensor import _CLOCK, STATE, Tensor, _as_data


def backward(root: Tensor, gradient: Any = None, retain_graph: bool = False) -> None:
    """Fill ``.grad`` of every leaf ``root`` depends on (see ``Tensor.backward``)."""
    grads = {id(root): _seed(root, gradient)}  # each node's gradient, summed over its uses
    # Leaves nobody watches (parameters, usually) are not in the order: their gradients are
    # summed here as they arrive, .grad + ((g1 + g2) + g3) as torch adds, and stored last.
    leaves: dict[int, np.ndarray] = {}
    owners: dict[int, Tensor] = {}
    sentinel = STATE.sentinel
    for node in reversed(topological_order(root)):
        grad = grads.pop(id(node), None)
        if grad is None:
            continue  # nothing that it feeds wanted a gradient
        if node._hooks:
            grad = _run_hooks(node, grad)
        fn = node.grad_fn
        if fn is None:  # a leaf with hooks: its gradient is complete now
            _store(node, grad)
            continue
        if node._retains_grad:  # a copy: the backward below may change grad in place
            _store(node, grad.copy())
        # The chain rule: the node's Function turns its gradient into one per input.
        ctx = node._ctx
        if ctx is _FREED or _CLOCK[0] > node._born:  # freed, or something changed since
            _check_differentiable(node)
        input_grads = fn.backward(ctx, grad)
        if not retain_graph:
            node._ctx = _FREED
        parents = node._parents
        if type(input_grads) is not tuple:  # a one-input op's lone gradient, or a mistake
            input_grads = (input_grads,) if input_grads is not None else _one_per_input(
                node, ctx, input_grads)
        if len(input_grads) != len(parents):
            input_grads = _one_per_input(node, ctx, input_grads)
        for index, parent in enumerate(parents):
            if parent is None:
                continue
            input_grad = input_grads[index]
            if input_grad is None or not parent.requires_grad:
                continue
            data = parent._data
            if type(input_grad) is not np.ndarray or input_grad.dtype != data.dtype:
                input_grad = _as_gradient(input_grad, data.dtype, fn, index)
            if input_grad.shape != data.shape:
                input_grad = _fit_to(input_grad, data.shape, node._data.shape, fn, index)
            if sentinel is not None:
                sentinel.check_backward(fn, index, input_grad)
            key = id(parent)
            # Out of place: an op may hand one array to two inputs (add does).
            if parent.grad_fn is None and not parent._hooks:
                owners[key] = parent
                held = leaves.get(key)
                leaves[key] = input_grad if held is None else held + input_grad
            else:
                held = grads.get(key)
                grads[key] = input_grad if held is None else held + input_grad
    # Let go of the last node's arrays, so that _store may keep each leaf's sum uncopied.
    grad = input_grads = input_grad = held = None
    while leaves:
        key, leaf_grad = leaves.popitem()
        _store(owners.pop(key), leaf_grad)


def topological_order(root: Tensor) -> list[Tensor]:
    """Every tensor needing a gradient that ``root`` depends on, inputs before outputs,
    except leaves without hooks (backward sums their gradients and stores them after the walk).

    Iterative depth-first search, so deep graphs (hundreds of layers) do not hit the recursion
    limit.
    """
    order: list[Tensor] = []
    visited: set[int] = {id(root)}
    stack = [(root, iter(root._parents))]  # a node and its parents still to visit
    while stack:
        node, parents = stack[-1]
        for parent in parents:
            if parent is None or not parent.requires_grad or id(parent) in visited:
                continue
            if parent.grad_fn is not None or parent._hooks:  # unwatched leaves: see backward
                visited.add(id(parent))
                stack.append((parent, iter(parent._parents)))
                break
        else:  # every parent done: the node goes after them
            stack.pop()
            order.append(node)
    return order


# ----------------------------------------------------------------------------- one node
#: marks a node whose saved buffers a backward() without retain_graph has released
_FREED = object()


def _check_differentiable(node: Tensor) -> None:
    """Refuse a node whose saved buffers a backward() has freed, or whose inputs or output
    were changed in place since its op ran."""
    fn = node.grad_fn
    if node._ctx is _FREED:
        raise RuntimeError(
            f"backward() through {fn.__name__} a second time: its saved buffers were "
            "freed by the first backward(). Pass retain_graph=True to the first call")
    _check_unchanged(node, fn)


def _one_per_input(node: Tensor, ctx: Any, returned: Any) -> tuple | list:
    """What a backward returned, as one gradient per input: a lone gradient for a one-input
    op, or an error saying what is wrong with it."""
    fn, needs = node.grad_fn, ctx.needs_input_grad
    if type(returned) is not tuple:
        if returned is None and True in needs:
            raise TypeError(
                f"{fn.__name__}.backward returned None, but input "
                f"{needs.index(True)} needs a gradient: did it forget "
                "`return`? Return one gradient per input (None only for inputs that need "
                "none), as a tuple when there are several")
        returned = [returned]
    if len(returned) != len(node._parents):
        listed = len(returned) == 1 and type(returned[0]) is list
        raise RuntimeError(
            f"{fn.__name__}.backward returned {len(returned)} gradients for "
            f"{len(node._parents)} inputs; return one per input (None for no gradient)"
            + (", as a tuple: a list counts as one gradient" if listed else ""))
    return returned


def _seed(root: Tensor, gradient: Any) -> np.ndarray:
    """The gradient the walk starts from: 1 for a one-element tensor, else the one given."""
    if not root.requires_grad:
        raise RuntimeError(
            "backward(): this tensor does not require a gradient: none of the tensors it was "
            "computed from has requires_grad=True (or it was computed under no_grad())")
    data = root._data
    if gradient is None:
        if data.size != 1:
            raise RuntimeError(
                f"backward(): the tensor has shape {data.shape}; gradients are implicit only "
                "for a single-element output. Pass backward(gradient) with that shape, or "
                "reduce it first (e.g. .sum() or .mean())")
        one = np.array(1, data.dtype)  # (np.ones is Python code)
        return np.full(data.shape, one) if data.ndim else one
    gradient = _as_data(gradient, data.dtype, "backward(gradient)")
    if gradient.shape != data.shape:
        raise ValueError(f"backward(): gradient has shape {gradient.shape} but the tensor has "
                         f"shape {data.shape}; they must match")
    return gradient


# ----------------------------------------------------------------------------- the checks
def _check_unchanged(node: Tensor, fn: type) -> None:
    """Refuse ``fn``'s backward if an input, or its output, was changed in place after it ran:
    the backward would read the new values, a silently wrong gradient (see Tensor._version)."""
    for index, parent in enumerate(node._parents):
        if parent is not None and parent._counter[0] > node._born:
            raise RuntimeError(_modified(fn, f"input {index}", parent))
    if node._counter[0] > node._born:
        raise RuntimeError(_modified(fn, "the output", node))


def _modified(fn: type, what: str, tensor: Tensor) -> str:
    name = f" ({tensor.name})" if tensor.name else ""
    return (f"backward(): {what}{name} of {fn.__name__} (shape {tensor.shape}) was modified "
            f"in place after {fn.__name__} ran: an optimizer step, load_state_dict or an "
            "in-place write to .data in between. Its backward would use the new values and "
            "give a wrong gradient. Run the forward again after the change, or change a copy "
            "(t.clone())")


def _as_gradient(value: Any, dtype: np.dtype, fn: type, index: int) -> np.ndarray:
    """A gradient a backward returned, as an array of its input's dtype (as PyTorch casts)."""
    array = np.asarray(value._data if isinstance(value, Tensor) else value)
    if array.dtype.kind not in "fiub":
        raise TypeError(f"{fn.__name__}.backward returned a gradient of dtype {array.dtype} "
                        f"for input {index}; return a float array of the input's dtype ({dtype})")
    return array if array.dtype == dtype else array.astype(dtype)


def _fit_to(grad: np.ndarray, shape: tuple[int, ...], out_shape: tuple[int, ...], fn: type,
            index: int) -> np.ndarray:
    """Sum ``grad`` over the axes that broadcasting ``shape`` into the output added or
    stretched; any other mismatch is the op's mistake, and the error says so.

    An axis counts as broadcast only when the output has it too, with the gradient's size, at
    the same place counted from the right (as broadcasting aligns shapes): a gradient with an
    axis the output lacks is not one the engine may guess a sum for.
    """
    extra = grad.ndim - len(shape)
    offset = len(out_shape) - grad.ndim
    broadcast = extra >= 0 and offset >= 0
    if broadcast:
        for axis, size in enumerate(grad.shape):
            own = shape[axis - extra] if axis >= extra else 1
            if size != own and not (own == 1 and size == out_shape[axis + offset]):
                broadcast = False
                break
    if not broadcast:
        raise RuntimeError(
            f"{fn.__name__}.backward returned a gradient of shape {grad.shape} for input "
            f"{index} of shape {shape} (the output has shape {out_shape}). A gradient must have "
            "its input's shape, or the shape that input was broadcast to in the output (the "
            "engine sums that back); sum any other axes in backward yourself")
    return backend.unbroadcast(grad, shape)


def _run_hooks(node: Tensor, grad: np.ndarray) -> np.ndarray:
    """Call the tensor's hooks in order; each may replace the gradient with one of its shape."""
    for hook in node._hooks:
        replaced = hook(grad)
        if replaced is None:
            continue
        replaced = np.asarray(replaced._data if isinstance(replaced, Tensor) else replaced)
        if replaced.shape != grad.shape or replaced.dtype.kind not in "fiub":
            name = getattr(hook, "__qualname__", type(hook).__name__)
            raise RuntimeError(
                f"hook {name} on a tensor of shape {node.shape} returned a gradient of shape "
                f"{replaced.shape} and dtype {replaced.dtype}; return an array of shape "
                f"{grad.shape} (or None to keep the gradient as it is)")
        grad = replaced if replaced.dtype == grad.dtype else replaced.astype(grad.dtype)
    return grad


# ----------------------------------------------------------------------------- storing
def _store(tensor: Tensor, grad: np.ndarray) -> None:
    """Add ``grad`` into ``tensor.grad`` (gradients of a tensor used twice add up); the first
    time, keep the array itself when nothing else can see it (``_unshared``), else a copy,
    since a later accumulation adds into ``.grad`` in place."""
    if tensor.grad is not None:
        tensor.grad += grad
    elif _unshared(grad, tensor._data.dtype):
        tensor.grad = grad
    else:
        tensor.grad = np.array(grad, dtype=tensor._data.dtype, copy=True)


# References to ``grad`` inside _unshared when nothing else holds it: the caller's variable,
# _store's parameter and getrefcount's own argument. Checked on CPython up to 3.13; 3.14
# counts borrowed references differently, and other interpreters have no getrefcount: there
# gradients are always copied.
_PRIVATE_REFS = 4
_refcount = getattr(sys, "getrefcount", None) if sys.version_info < (3, 14) else None


def _unshared(grad: np.ndarray, dtype: np.dtype) -> bool:
    """Whether ``grad`` may become a ``.grad`` as it is: an array no tensor, op or hook holds
    (saving a parameter-sized copy per parameter per step), not a view, writeable, C order."""
    if _refcount is None or _refcount(grad) > _PRIVATE_REFS:
        return False
    flags = grad.flags
    return grad.base is None and grad.dtype == dtype and flags.writeable and flags.c_contiguous
