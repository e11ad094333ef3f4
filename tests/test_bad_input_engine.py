"""Bad input to the engine: in-place changes before backward, gradients of the wrong shape or
kind, the dtype policy, forgotten returns, modules that would lose a parameter."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from op_cases import CASES, Case
from test_ops_matrix import draw_case

import chainrule as cr
from chainrule import nn, optim
from chainrule.engine.function import _REGISTRY


def _float_tensors(inputs: list) -> list:
    return [cr.Tensor(x, requires_grad=True) if isinstance(x, np.ndarray) and x.dtype.kind == "f"
            else x for x in inputs]


# ----------------------------------------------------------------------------- versions
@pytest.mark.parametrize("case", CASES, ids=repr)
@settings(max_examples=3)
@given(data=st.data())
def test_every_op_refuses_backward_after_an_input_changed_in_place(case: Case,
                                                                    data: st.DataObject) -> None:
    inputs, attrs = draw_case(case, data)
    tensors = _float_tensors(inputs)
    op = _REGISTRY[case.op]
    out = op.apply(*tensors, **attrs)
    index = next(i for i, t in enumerate(tensors) if isinstance(t, cr.Tensor))
    tensors[index].data += 0  # an in-place write, even one that changes no value, is one
    with pytest.raises(RuntimeError, match=rf"input {index} of {op.__name__} .* modified in "
                                           "place"):
        out.backward(np.ones(out.shape, out.dtype))


@pytest.mark.parametrize("case", CASES, ids=repr)
@settings(max_examples=2)
@given(data=st.data())
def test_every_op_refuses_backward_after_its_output_changed_in_place(case: Case,
                                                                      data: st.DataObject
                                                                      ) -> None:
    inputs, attrs = draw_case(case, data)
    out = _REGISTRY[case.op].apply(*_float_tensors(inputs), **attrs)
    if not out.data.flags.writeable:  # a broadcast view (expand): NumPy refuses the write
        with pytest.raises(ValueError, match="read-only"):
            out.data *= 1
        return
    out.data *= 1
    # (a view's output is its input's array: the change shows as one of input 0)
    with pytest.raises(RuntimeError, match="(the output|input 0) of .* modified in place"):
        out.backward(np.ones(out.shape, out.dtype))


def test_an_optimizer_step_between_two_backwards_of_a_retained_graph_is_refused() -> None:
    for make in (lambda p: optim.SGD(p, lr=0.1, momentum=0.9), lambda p: optim.Adam(p),
                 lambda p: optim.AdamW(p)):
        layer = nn.Linear(3, 2)
        opt = make(layer.parameters())
        loss = layer(cr.randn(4, 3)).sum()
        loss.backward(retain_graph=True)
        opt.step()
        with pytest.raises(RuntimeError, match="input 1 of LinearOp .* optimizer step"):
            loss.backward()


def test_a_retained_graph_may_be_walked_twice_when_nothing_changed() -> None:
    w = cr.randn(3, requires_grad=True)
    loss = (w * w).sum()
    loss.backward(retain_graph=True)
    first = w.grad.copy()
    loss.backward()
    np.testing.assert_allclose(w.grad, 2 * first)


def _augmented(w: cr.Tensor) -> None:
    w.data += 0


def _through_detach(w: cr.Tensor) -> None:
    alias = w.detach()
    alias.data *= 1


def _through_a_parameter_made_from_it(w: cr.Tensor) -> None:
    alias = nn.Parameter(w)
    alias.data -= 0


def _init(w: cr.Tensor) -> None:
    nn.init.normal_(w)


@pytest.mark.parametrize("write", [_augmented, _through_detach,
                                   _through_a_parameter_made_from_it, _init])
def test_in_place_writes_chainrule_sees_are_caught_through_any_alias(write) -> None:
    w = cr.randn(3, 4, requires_grad=True)
    loss = (cr.randn(2, 3) @ w).sum()
    write(w)
    with pytest.raises(RuntimeError, match="input 1 of MatMulOp .* modified in place"):
        loss.backward()


def test_load_state_dict_counts_as_an_in_place_change() -> None:
    layer = nn.Linear(3, 2)
    loss = layer(cr.randn(4, 3)).sum()
    layer.load_state_dict(layer.state_dict())
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()


def test_writes_behind_chainrules_back_are_not_seen_as_documented() -> None:
    # What cannot be detected (README, "What chainrule refuses"): a write into the NumPy array
    # itself. This test pins the documented limit, so a change to it is noticed.
    array = np.ones(3)
    w = cr.from_numpy(array, requires_grad=True)
    loss = (w * w).sum()
    array[0] = 5.0
    loss.backward()
    assert w.grad[0] == 10.0  # the gradient at the new value: why the README warns


def test_rebinding_data_keeps_the_recorded_values() -> None:
    w = cr.tensor([1.0, 2.0], requires_grad=True)
    loss = (w * w).sum()
    w.data = np.array([5.0, 5.0], np.float32)  # a new array: the saved one is intact
    loss.backward()
    np.testing.assert_allclose(w.grad, [2.0, 4.0])


def test_the_version_stamp_grows_with_every_change_and_is_shared_by_aliases() -> None:
    w = cr.zeros(3, requires_grad=True)
    assert w._version == 0
    w.data -= 1
    first = w._version
    assert first > 0 and w.detach()._version == first
    assert cr.Tensor(w)._version == first  # shares the array, so the stamp
    w.data *= 2
    assert w._version > first


@pytest.mark.parametrize("view", [
    lambda t: t[0:2], lambda t: t.reshape(3, 2), lambda t: t.T, lambda t: t.transpose(0, 1),
    lambda t: t.permute(1, 0), lambda t: t.unsqueeze(0), lambda t: t.flatten(),
    lambda t: t[None][0], lambda t: t.squeeze(),
], ids=["slice", "reshape", "T", "transpose", "permute", "unsqueeze", "flatten",
        "index of a view", "squeeze"])
def test_a_change_through_a_view_is_a_change_of_the_tensor(view) -> None:
    w = cr.randn(2, 3, requires_grad=True)
    x = cr.randn(2, 3)
    loss = (w * x).sum()
    alias = view(x)
    alias.data += 10  # writes x's own array
    with pytest.raises(RuntimeError, match="input 1 of MulOp .* modified in place"):
        loss.backward()


def test_a_copy_made_by_an_op_is_its_own_tensor() -> None:
    w = cr.randn(2, 3, requires_grad=True)
    x = cr.randn(2, 3)
    loss = (w * x).sum()
    copy = x[[0, 1]]  # integer indexing copies: changing the copy leaves x as it was
    copy.data += 10
    loss.backward()
    np.testing.assert_allclose(w.grad, x.data)


# ----------------------------------------------------------------------------- gradients
class _Returns(cr.Function):
    """forward: x * 2 (or x * y); backward: whatever the test asks for."""

    reply = None

    @staticmethod
    def forward(ctx, x, y=None):
        return x * 2 if y is None else x * y

    @staticmethod
    def backward(ctx, grad):
        return _Returns.reply(grad)


@pytest.mark.parametrize("reply, shape, message", [
    (lambda g: np.broadcast_to(g, (5,) + g.shape), (2,), r"shape \(5, 2\) for input 0 of "
                                                        r"shape \(2,\) \(the output has shape"),
    (lambda g: np.ones((4, 3)), (1, 3), r"shape \(4, 3\) for input 0 of shape \(1, 3\)"),
    (lambda g: np.ones(7), (3,), r"shape \(7,\) for input 0"),
    (lambda g: np.float64(1.0), (3,), r"shape \(\) for input 0"),
    (lambda g: g.T, (2, 3), r"shape \(3, 2\) for input 0"),
], ids=["extra leading axis", "stretched size-1 axis", "wrong size", "scalar", "transposed"])
def test_a_gradient_the_engine_may_not_sum_is_refused_naming_both_shapes(reply, shape,
                                                                          message) -> None:
    _Returns.reply = staticmethod(reply)
    x = cr.randn(*shape, requires_grad=True)
    with pytest.raises(RuntimeError, match="_Returns.backward returned a gradient of " +
                       message):
        _Returns.apply(x).sum().backward()


def test_a_gradient_already_summed_over_some_broadcast_axes_is_summed_over_the_rest() -> None:
    # out (2, 3, 4) from an input (4,): a backward may hand back (3, 4), partly reduced.
    _Returns.reply = staticmethod(lambda g: (g.sum(0) * 3.0, None))
    x = cr.randn(4, requires_grad=True)
    _Returns.apply(x, cr.randn(2, 3, 4)).sum().backward()
    np.testing.assert_allclose(x.grad, np.full(4, 18.0))  # 3 x (2 summed here, 3 by the engine)


def test_axes_that_broadcasting_added_are_still_summed() -> None:
    _Returns.reply = staticmethod(lambda g: (g * 3.0, g * 2.0))
    x = cr.randn(4, 1, 3, requires_grad=True)
    y = cr.randn(5, 3, requires_grad=True)  # broadcast to (4, 5, 3)
    _Returns.apply(x, y).sum().backward()
    np.testing.assert_allclose(x.grad, np.full((4, 1, 3), 15.0))
    np.testing.assert_allclose(y.grad, np.full((5, 3), 8.0))


@pytest.mark.parametrize("reply, message", [
    (lambda g: None, "returned None, but input 0 needs a gradient: did it forget `return`"),
    (lambda g: np.array(["a"] * g.size).reshape(g.shape), "dtype <U1"),
    (lambda g: g.astype(complex), "dtype complex128"),
    (lambda g: (g, g), "returned 2 gradients for 1 inputs"),
])
def test_a_backward_that_returns_nonsense_is_named(reply, message) -> None:
    _Returns.reply = staticmethod(reply)
    x = cr.randn(3, requires_grad=True)
    with pytest.raises((TypeError, RuntimeError), match=message):
        _Returns.apply(x).sum().backward()


def test_a_list_of_gradients_is_told_to_be_a_tuple() -> None:
    _Returns.reply = staticmethod(lambda g: [g, g])
    with pytest.raises(RuntimeError, match="1 gradients for 2 inputs.*as a tuple: a list "
                                           "counts as one gradient"):
        _Returns.apply(cr.randn(3, requires_grad=True), cr.randn(3)).sum().backward()


def test_a_gradient_of_another_numeric_dtype_is_cast_as_pytorch_does() -> None:
    _Returns.reply = staticmethod(lambda g: np.ones(g.shape, np.int64))
    x = cr.randn(3, requires_grad=True)
    _Returns.apply(x).sum().backward()
    assert x.grad.dtype == np.float32 and np.all(x.grad == 1)


def test_a_hook_returning_the_wrong_shape_is_named_not_the_next_op() -> None:
    x = cr.randn(3, requires_grad=True)
    y = x * 2

    def widen(grad):
        return np.ones(4)

    y.register_hook(widen)
    with pytest.raises(RuntimeError, match=r"hook .*widen on a tensor of shape \(3,\) returned "
                                           r"a gradient of shape \(4,\)"):
        (y * y).sum().backward()


class _Forgets(cr.Function):
    @staticmethod
    def forward(ctx, x):
        x * 2  # noqa: B018 - the mistake under test

    @staticmethod
    def backward(ctx, grad):
        return grad


def test_a_forward_that_forgot_return_is_named() -> None:
    with pytest.raises(TypeError, match=r"_Forgets.forward returned None.*forget `return`"):
        _Forgets.apply(cr.randn(3, requires_grad=True))


# ----------------------------------------------------------------------------- dtypes
@pytest.mark.parametrize("dtype", ["float16", "complex64", "longdouble", "datetime64[s]"])
def test_one_dtype_policy_everywhere_a_tensor_can_be_made(dtype) -> None:
    bad = np.zeros(3, dtype)
    with pytest.raises(TypeError, match="not supported"):
        cr.tensor(bad)
    with pytest.raises(TypeError, match="not supported"):
        cr.randn(3).astype(dtype)

    class Emits(cr.Function):
        @staticmethod
        def forward(ctx, x):
            return x.astype(dtype)

        @staticmethod
        def backward(ctx, grad):
            return grad

    with pytest.raises(TypeError, match="emits output: dtype .* not supported"):
        Emits.apply(cr.randn(3, requires_grad=True))
    holder = cr.randn(3)
    with pytest.raises(TypeError, match="not supported"):
        holder.data = bad


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.bool_])
def test_casting_to_integers_or_bool_ends_the_tape_as_in_pytorch(dtype) -> None:
    x = cr.randn(3, requires_grad=True)
    y = x.astype(dtype)
    assert not y.requires_grad and y.grad_fn is None and y.dtype == dtype
    with pytest.raises(RuntimeError, match="does not require a gradient"):
        y.sum().backward()


def test_a_tensor_that_needs_a_gradient_keeps_a_float_array() -> None:
    w = cr.randn(3, requires_grad=True)
    with pytest.raises(TypeError, match="must be float32 or float64"):
        w.data = np.arange(3)


@pytest.mark.parametrize("case", [c for c in CASES if getattr(_REGISTRY[c.op], "same_dtype",
                                                                  False)], ids=repr)
@settings(max_examples=3)
@given(data=st.data())
def test_ops_that_meet_weights_refuse_mixed_float_dtypes(case: Case, data: st.DataObject
                                                         ) -> None:
    inputs, attrs = draw_case(case, data)
    floats = [i for i, x in enumerate(inputs) if isinstance(x, np.ndarray) and
              x.dtype.kind == "f"]
    if len(floats) < 2:
        return  # e.g. linear without bias on one float input: nothing to mix
    inputs[floats[0]] = inputs[floats[0]].astype(np.float32)
    with pytest.raises(TypeError, match=rf"{case.op}: input {floats[0]} is float32 but input "
                                        rf"{floats[1]} is float64"):
        _REGISTRY[case.op].apply(*_float_tensors(inputs), **attrs)


@pytest.mark.parametrize("batch", [np.random.default_rng(0).standard_normal((4, 3)),
                                   np.zeros((4, 3), np.uint8), np.zeros((4, 3), np.int64)],
                         ids=["float64", "uint8", "int64"])
def test_a_numpy_batch_of_another_dtype_is_refused_by_a_float32_layer(batch) -> None:
    layer = nn.Linear(3, 2)
    with pytest.raises(TypeError, match=rf"linear: input 0 is {batch.dtype} but input 1 is "
                                        r"float32.*Convert the input"):
        layer(batch)
    assert layer(batch.astype(np.float32)).dtype == np.float32


def test_elementwise_ops_still_promote_as_pytorch_does() -> None:
    # Only ops that meet weights insist on one dtype; a + b promotes, as torch.add does.
    out = cr.randn(3) + cr.randn(3, dtype="float64")
    assert out.dtype == np.float64


# ----------------------------------------------------------------------------- conversion
@pytest.mark.parametrize("value, message", [
    ([[1, 2], [3]], "ragged"),
    ([[1, 2], 3], "ragged"),
    (None, "cannot make a tensor from NoneType"),
    ({"a": 1}, "cannot make a tensor from dict"),
    ("abc", "not supported"),
    (object(), "cannot make a tensor from object"),
])
def test_what_cannot_be_a_tensor_is_named(value, message) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        cr.tensor(value)


def test_a_list_of_tensors_keeps_values_and_refuses_to_cut_gradients() -> None:
    x = cr.randn(3, requires_grad=True)
    with pytest.raises(TypeError, match=r"requires a gradient.*cr.stack"):
        cr.tensor([x, x])
    with pytest.raises(TypeError, match="cr.stack"):
        cr.tensor([[1.0, 2.0, 3.0], [x]])
    plain = cr.tensor([cr.tensor(1.0), cr.tensor(2.0)])  # 0-d tensors, no gradient: values
    np.testing.assert_array_equal(plain.data, [1.0, 2.0])
    assert cr.tensor([x.detach(), x.detach()]).shape == (2, 3)


# ----------------------------------------------------------------------------- modules
@pytest.mark.parametrize("value", [np.zeros((2, 3), np.float32), cr.zeros(2, 3),
                                   [[0.0] * 3] * 2, 0.5], ids=["ndarray", "Tensor", "list",
                                                              "float"])
def test_a_parameter_attribute_refuses_what_would_drop_out_of_the_model(value) -> None:
    layer = nn.Linear(3, 2)
    with pytest.raises(TypeError, match=r"Linear.weight is a parameter: assign an nn.Parameter"):
        layer.weight = value
    assert "weight" in dict(layer.named_parameters())


def test_a_parameter_attribute_takes_a_parameter_or_none() -> None:
    layer = nn.Linear(3, 2)
    layer.weight = nn.Parameter(np.zeros((2, 3), np.float32))
    layer.bias = None
    assert [name for name, _ in layer.named_parameters()] == ["weight"]
    seed_style = nn.Module()
    seed_style.w = cr.randn(3, requires_grad=True)  # the lesson's trainable tensor
    seed_style.w = cr.randn(3, requires_grad=True)
    assert len(seed_style.parameters()) == 1


def test_a_module_may_keep_any_tensor_that_is_not_a_parameter() -> None:
    class Stash(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(3, 2)

        def forward(self, x):
            self.last_input = x  # first a leaf that requires grad (check's), then another
            return self.lin(x)

    report = cr.check.check(Stash(), np.ones((2, 3)), torch=False)
    assert report.passed


@pytest.mark.parametrize("value", [np.zeros(3), nn.Parameter(np.zeros(3)),
                                   cr.zeros(3, requires_grad=True)],
                         ids=["ndarray", "Parameter", "trainable Tensor"])
def test_a_buffer_attribute_refuses_what_state_dict_would_lose(value) -> None:
    norm = nn.BatchNorm1d(3)
    with pytest.raises(TypeError, match="BatchNorm1d.running_mean is a buffer"):
        norm.running_mean = value
    norm.running_mean = cr.ones(3)
    assert "running_mean" in norm.state_dict()


@pytest.mark.parametrize("bad, message", [
    (np.array(["a", "b"]), "holds <U1, which does not convert"),
    (np.array([object(), 1]), "holds object"),
    (np.array([1 + 1j, 2]), "holds complex128"),
    (np.ones(3), r"checkpoint has shape \(3,\), model has \(2,\)"),
    (np.array([1e300, 0.0]), "beyond what the model's float32 can hold"),
    ([[1.0], [2.0, 3.0]], "not an array"),
])
def test_load_state_dict_checks_every_entry_before_changing_anything(bad, message) -> None:
    layer = nn.Linear(3, 2)
    before = layer.state_dict()
    state = {"weight": np.ones((2, 3)), "bias": bad}  # the good entry comes first
    with pytest.raises(ValueError, match=message):
        layer.load_state_dict(state)
    for key, value in layer.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_load_state_dict_refuses_floats_into_an_integer_buffer_and_non_mappings() -> None:
    norm = nn.BatchNorm1d(2)
    state = norm.state_dict()
    state["num_batches_tracked"] = np.array(1.5)
    with pytest.raises(ValueError, match="num_batches_tracked: checkpoint holds float64"):
        norm.load_state_dict(state)
    state["num_batches_tracked"] = np.array(2**64 - 1, np.uint64)
    with pytest.raises(ValueError, match="beyond what the model's int64 can hold"):
        norm.load_state_dict(state)
    with pytest.raises(TypeError, match="expected a mapping"):
        norm.load_state_dict([("weight", np.ones(2))])
