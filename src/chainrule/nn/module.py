"""Module and Parameter: the base of every layer, and of the seed's hand-written layers."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from chainrule.engine.function import Context, Function
from chainrule.engine.tensor import STATE, HookHandle, Tensor, no_grad


class Parameter(Tensor):
    """A tensor a Module trains: requires a gradient unless told otherwise."""

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        super().__init__(data, requires_grad=requires_grad)  # a Tensor's array is shared

    def __repr__(self) -> str:
        return "Parameter(" + super().__repr__()[len("tensor("):]


class Module:
    """Base class of layers and models.

    Subclasses assign Parameters and sub-Modules as attributes (lists, tuples and dicts of
    Modules count too, as in the seed's ``self.layers = [...]``) and define ``forward``.
    Discovery walks the attributes in the order they were set, so names are stable:
    ``layers.0.weight``.

    A subclass that also defines ``bwd(self, out, *args)`` is a hand-written layer in the
    seed's style: ``forward`` runs without recording, and ``bwd`` reads ``out.g`` and sets
    ``.g`` on its inputs and parameters. Such a layer is a node on the same tape as every
    built-in op, so it mixes freely with autograd. With ``cross_check = True`` (on the class
    or an instance) its first backward also differentiates ``forward`` by autograd and fails
    if the two disagree; ``chainrule.check`` runs that, through ``HandWrittenHooks``.

    State that is not trained (BatchNorm's running statistics) is a buffer: see
    ``register_buffer``.
    """

    training: bool = True  # a class default, so seed-style subclasses may skip __init__

    def __init__(self) -> None:
        self.training = True

    def __setattr__(self, name: str, value: Any) -> None:
        old = self.__dict__.get(name)
        if isinstance(old, Tensor) and value is not None and value is not old:
            _check_replacement(self, name, old, value)
        object.__setattr__(self, name, value)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Compute the layer's output; every Module subclass defines it."""
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        guard = STATE.sentinel
        if guard is None:
            guard = STATE.tracer
        if guard is not None:  # let the sentinel or tracer name the layer an op runs in
            guard.layers.append(self)
            try:
                return self._call(args, kwargs)
            finally:
                guard.layers.pop()
        if "_forward_hooks" in self.__dict__ or getattr(type(self), "bwd", None) is not None:
            return self._call(args, kwargs)
        # The common case, without _call's extra frame: every layer of every step comes here.
        return self.forward(*args, **kwargs)

    def _call(self, args: tuple, kwargs: dict) -> Any:
        if getattr(type(self), "bwd", None) is not None:
            out = HandWritten.apply(*args, *self.parameters(), module=self, n_args=len(args),
                                    kwargs=kwargs)
        else:
            out = self.forward(*args, **kwargs)
        hooks = self.__dict__.get("_forward_hooks")
        if hooks:
            for hook in list(hooks):
                hook(self, args, out)
        return out

    def summary(self, input_shape: Any, dtype: Any = None) -> Any:
        """Each layer's output shape, parameters and multiply-adds for an input of
        ``input_shape`` (batch first), with totals: see chainrule.summarize."""
        from chainrule.summarize import summary

        return summary(self, input_shape, dtype)

    def register_forward_hook(self, hook: Any) -> HookHandle:
        """Call ``hook(module, args, output)`` after every forward; returns a removable handle."""
        hooks = self.__dict__.setdefault("_forward_hooks", [])
        hooks.append(hook)
        return HookHandle(hooks, hook)

    # ------------------------------------------------------------------ discovery
    def named_children(self) -> Iterator[tuple[str, Module]]:
        """Direct sub-modules with their attribute names (``layers.0`` for list items)."""
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value
            elif isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    if isinstance(item, Module):
                        yield f"{name}.{i}", item
            elif isinstance(value, dict) and not name.startswith("_"):
                for key, item in value.items():
                    if isinstance(item, Module):
                        yield f"{name}.{key}", item

    def children(self) -> Iterator[Module]:
        """Direct sub-modules."""
        for _, child in self.named_children():
            yield child

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module and every module inside it, depth first."""
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        """This module and every module inside it."""
        for _, module in self.named_modules():
            yield module

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        """Every parameter with its dotted name; a parameter shared twice is listed once.

        A Parameter is a parameter; so is any leaf tensor attribute with requires_grad=True
        (the seed's ``self.w = randn(...).requires_grad_()``, which PyTorch would miss).
        """
        yield from self._named_state(prefix, parameters=True, buffers=False)

    def parameters(self) -> list[Tensor]:
        """Every parameter, in a stable order."""
        return [p for _, p in self.named_parameters()]

    def register_buffer(self, name: str, value: Any) -> None:
        """Keep ``value`` (an array, or None for an unused slot) as state that is not trained.

        A buffer is a tensor attribute without gradient (``self.running_mean``): it is saved
        by ``state_dict`` under its dotted name, as PyTorch saves it, and copied by deepcopy,
        but ``parameters()`` (so the optimizer) never sees it. Assigning the attribute a Tensor
        (or None) later replaces the buffer's value; update one in place (``buf.data += 1``)
        to keep it the same object.
        """
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"register_buffer: the name must be an identifier, got {name!r}")
        names = self.__dict__.setdefault("_buffer_names", [])
        if name not in names and name in vars(self):
            raise KeyError(f"register_buffer: {type(self).__name__} already has an attribute "
                           f"{name!r} that is not a buffer")
        if isinstance(value, Parameter) or (isinstance(value, Tensor) and value.requires_grad):
            raise TypeError(f"register_buffer: {name!r} would be trained; a buffer takes no "
                            "gradient (assign a Parameter as an attribute instead)")
        if value is not None and not isinstance(value, Tensor):
            value = Tensor(np.asarray(value))
        if name not in names:
            names.append(name)
        setattr(self, name, value)

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        """Every buffer with its dotted name (``1.running_mean``); None slots are skipped."""
        yield from self._named_state(prefix, parameters=False, buffers=True)

    def buffers(self) -> list[Tensor]:
        """Every buffer, in a stable order."""
        return [b for _, b in self.named_buffers()]

    def _named_state(self, prefix: str = "", parameters: bool = True,
                     buffers: bool = True) -> Iterator[tuple[str, Tensor]]:
        """Per module: its parameters, then its buffers (PyTorch's state_dict order)."""
        seen: set[int] = set()
        for module_name, module in self.named_modules(prefix):
            found = []
            if parameters:
                found += [(n, v) for n, v in vars(module).items() if _is_trainable(v)]
            if buffers:
                found += [(n, module.__dict__.get(n))
                          for n in module.__dict__.get("_buffer_names", ())]
            for name, value in found:
                if isinstance(value, Tensor) and id(value) not in seen:
                    seen.add(id(value))
                    yield (f"{module_name}.{name}" if module_name else name), value

    # ------------------------------------------------------------------ training state
    def zero_grad(self) -> None:
        """Drop every parameter's gradient (set it to None)."""
        for p in self.parameters():
            p.grad = None

    def train(self, mode: bool = True) -> Module:
        """Put this module and its children in training mode (or eval mode for False)."""
        for module in self.modules():
            module.training = mode
        return self

    def eval(self) -> Module:
        """Put this module and its children in evaluation mode."""
        return self.train(False)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """Parameter and buffer name -> a copy of its array, in PyTorch's naming and layout."""
        return OrderedDict((name, t.data.copy()) for name, t in self._named_state())

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> None:
        """Copy arrays (NumPy or anything np.asarray accepts, torch tensors included) in.

        With ``strict`` every key must match. Shapes must always match, and values must be
        numbers that convert to the parameter's dtype without changing kind (no strings,
        objects, complex; no floats into an integer buffer). Everything is checked before
        anything changes, so a refused dict leaves the module as it was.
        """
        name_of = type(self).__name__
        if not isinstance(state, Mapping):
            raise TypeError(f"load_state_dict into {name_of}: expected a mapping of names to "
                            f"arrays (a state_dict), got {type(state).__name__}")
        own = dict(self._named_state())
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        problems = []
        if strict and missing:
            problems.append(f"missing keys: {', '.join(missing)}")
        if strict and unexpected:
            problems.append(f"unexpected keys: {', '.join(map(str, unexpected))}")
        arrays = {}
        for name, param in own.items():
            if name not in state:
                continue
            value = state[name]
            try:
                array = np.asarray(value.data if isinstance(value, Tensor) else value)
            except (ValueError, TypeError) as error:
                problems.append(f"{name}: not an array ({error})")
                continue
            if array.dtype.kind not in "fiub" or not np.can_cast(array.dtype, param.dtype,
                                                                "same_kind"):
                problems.append(f"{name}: checkpoint holds {array.dtype}, which does not "
                                f"convert to the model's {param.dtype}")
            elif array.shape != param.shape:
                problems.append(f"{name}: checkpoint has shape {array.shape}, "
                                f"model has {param.shape}")
            elif not _fits(array, param.dtype):
                problems.append(f"{name}: checkpoint holds values beyond what the model's "
                                f"{param.dtype} can hold (they would become inf or wrap)")
            arrays[name] = array
        if problems:
            raise ValueError(f"load_state_dict into {name_of}: " + "; ".join(problems))
        for name, array in arrays.items():
            own[name].data[...] = array  # in place: the optimizer holds these very arrays
            own[name]._bump_version()

    # ------------------------------------------------------------------ repr
    def extra_repr(self) -> str:
        """Settings shown inside the parentheses of repr (override in layers)."""
        return ""

    def __repr__(self) -> str:
        lines = []
        for name, child in self.named_children():
            child_lines = repr(child).split("\n")
            lines.append(f"  ({name}): " + "\n  ".join(child_lines))
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n" + "\n".join(lines) + "\n)"


def _fits(array: np.ndarray, dtype: np.dtype) -> bool:
    """Whether every finite value of ``array`` survives a cast to ``dtype``."""
    if array.size == 0 or np.can_cast(array.dtype, dtype, "safe"):
        return True
    info = np.finfo(dtype) if dtype.kind == "f" else np.iinfo(dtype)
    finite = array[np.isfinite(array)] if array.dtype.kind == "f" else array
    return finite.size == 0 or bool(info.min <= finite.min() and finite.max() <= info.max)


def _check_replacement(module: Module, name: str, old: Tensor, value: Any) -> None:
    """Refuse an assignment that would silently drop a parameter or buffer from the module."""
    where = f"{type(module).__name__}.{name}"
    if name in module.__dict__.get("_buffer_names", ()):
        if not isinstance(value, Tensor) or isinstance(value, Parameter) or value.requires_grad:
            raise TypeError(
                f"{where} is a buffer: assign a Tensor without gradient or None (e.g. "
                f"cr.tensor(array)), or give it new values ({where}.data = array); this "
                f"{type(value).__name__} would silently drop out of state_dict()")
    elif isinstance(old, Parameter) and not isinstance(value, Parameter):
        # Only a Parameter's slot is guarded: other tensor attributes (an input a layer keeps,
        # the lesson's requires_grad tensors) are the module's own business, as in PyTorch.
        raise TypeError(
            f"{where} is a parameter: assign an nn.Parameter (nn.Parameter(array)) or None, or "
            f"give it new values ({where}.data = array, of the same shape). This "
            f"{type(value).__name__} would silently drop out of parameters(), state_dict() and "
            "the optimizer")


def _is_trainable(value: Any) -> bool:
    return isinstance(value, Parameter) or (
        isinstance(value, Tensor) and value.requires_grad and value.grad_fn is None)


class HandWrittenHooks:
    """The extension point of hand-written layers (a Module with ``bwd``), for the tools that
    check them.

    nn does not import those tools: ``chainrule.check`` (which ``import chainrule`` loads)
    installs its subclass with ``set_hand_written_hooks``, to watch every ``.g`` assignment
    while ``check`` runs and to run the two-path cross-check of ``cross_check = True``. These
    defaults are the plain behaviour, with nothing watched.
    """

    def arguments(self, module: Module, arrays: Sequence[Any]) -> list[Any]:
        """A call's arguments as ``bwd`` gets them: each array a Tensor to set ``.g`` on."""
        return [Tensor(a) if isinstance(a, np.ndarray) else a for a in arrays]

    def reports_missing_gradients(self) -> bool:
        """Whether a ``.g`` that ``bwd`` left unset is left to someone else to report."""
        return False

    def cross_check(self, module: Module, args: list[Any], kwargs: dict[str, Any],
                    named: list[tuple[str, Tensor]], grad: np.ndarray,
                    hand: list[np.ndarray | None]) -> None:
        """Check ``bwd``'s gradients ``hand`` (arguments, then the ``named`` parameters) for
        the output gradient ``grad``; called on a ``cross_check`` layer's first backward."""
        raise RuntimeError(f"{type(module).__name__} sets cross_check, but no cross-check is "
                           "installed: import chainrule.check")


_hooks = HandWrittenHooks()


def set_hand_written_hooks(hooks: HandWrittenHooks) -> HandWrittenHooks:
    """Install ``hooks`` for every hand-written layer; returns the ones they replace."""
    global _hooks
    if not isinstance(hooks, HandWrittenHooks):
        raise TypeError(f"set_hand_written_hooks: expected a HandWrittenHooks, got "
                        f"{type(hooks).__name__}")
    previous, _hooks = _hooks, hooks
    return previous


def _hand_gradient(module: Module, what: str, value: Any, shape: tuple[int, ...],
                   needed: bool) -> np.ndarray | None:
    """Check one ``.g`` that a hand-written ``bwd`` set: present when needed, exact shape."""
    layer = type(module).__name__
    if value is None:
        if needed and _hooks.reports_missing_gradients():
            return None  # a check is running: it reports the missing gradient itself
        if needed:
            raise RuntimeError(
                f"{layer}.bwd did not set {what}.g, but {what} needs a gradient: assign it "
                f"(the gradient of the loss with respect to {what}, shape {shape})"
            )
        return None
    grad = value.data if isinstance(value, Tensor) else np.asarray(value)
    if grad.shape != shape:
        # No silent unbroadcasting here: a wrong shape is the very mistake a learner must see.
        summed_away = grad.ndim > len(shape) and grad.shape[grad.ndim - len(shape):] == shape
        hint = " (a missing sum over the batch axis?)" if summed_away else ""
        raise GradientShapeError(
            f"{layer}.bwd set {what}.g with shape {grad.shape}, but {what} has shape "
            f"{shape}{hint}", what, grad)
    return grad


class GradientShapeError(RuntimeError):
    """A hand-written bwd set a ``.g`` whose shape is not its tensor's."""

    def __init__(self, message: str, what: str, grad: np.ndarray) -> None:
        super().__init__(message)
        self.what, self.grad = what, grad


class HandWritten(Function, register=False):
    """Runs a seed-style Module (forward + bwd) as one node on the tape.

    Inputs are the call's arguments followed by the module's parameters, so the engine
    accumulates the parameters' gradients like any other op's. Gradients from ``bwd`` must
    have exactly their tensor's shape: nothing is summed for you.
    """

    @staticmethod
    def forward(ctx: Context, *arrays: Any, module: Module, n_args: int,
                kwargs: dict) -> np.ndarray:
        args = _hooks.arguments(module, arrays[:n_args])
        with no_grad():
            out = module.forward(*args, **kwargs)
        if not isinstance(out, Tensor):
            out = Tensor(out)
        ctx.module, ctx.args, ctx.out, ctx.kwargs = module, args, out, kwargs
        return out.data

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        module, args, out = ctx.module, ctx.args, ctx.out
        named = list(module.named_parameters())
        for value in (*args, *(p for _, p in named)):
            if isinstance(value, Tensor):
                value.g = None
        out.g = Tensor(grad)
        # The seed's layers read self.out and self.args; point them at this call's tensors.
        module.out, module.args = out, tuple(args)
        with no_grad():
            module.bwd(out, *args, **ctx.kwargs)
        needs = ctx.needs_input_grad
        grads = [_hand_gradient(module, f"argument {i}", a.g, a.shape, needs[i])
                 if isinstance(a, Tensor) else None for i, a in enumerate(args)]
        grads += [_hand_gradient(module, name, p.g, p.shape, needs[len(args) + i])
                  for i, (name, p) in enumerate(named)]
        if getattr(module, "cross_check", False) and not module.__dict__.get("_cross_checked"):
            _hooks.cross_check(module, args, ctx.kwargs, named, grad, grads)
            module.__dict__["_cross_checked"] = True
        return tuple(grads)
