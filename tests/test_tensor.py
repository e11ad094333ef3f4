"""The Tensor, the tape walk and the factory functions; bad input gets clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule.engine.function import _REGISTRY


# ----------------------------------------------------------------------------- dtypes
def test_python_floats_become_float32_and_float64_arrays_stay() -> None:
    assert cr.tensor([1.0, 2.0]).dtype == np.float32
    assert cr.tensor(np.zeros(3)).dtype == np.float64
    assert cr.tensor(np.zeros(3, np.float32)).dtype == np.float32
    assert cr.tensor([1, 2]).dtype == np.int64
    assert cr.randn(2, 3).dtype == np.float32
    assert cr.randn(2, 3, dtype="float64").dtype == np.float64


def test_default_dtype_can_change() -> None:
    cr.set_default_dtype(np.float64)
    try:
        assert cr.tensor([1.0]).dtype == np.float64
        assert cr.zeros(2).dtype == np.float64
    finally:
        cr.set_default_dtype(np.float32)
    with pytest.raises(TypeError, match="float32 or float64"):
        cr.set_default_dtype(np.int32)


@pytest.mark.parametrize("bad", [np.array([1 + 2j]), np.array(["a"]), np.array([object()])])
def test_unsupported_dtypes_are_refused_at_creation(bad: np.ndarray) -> None:
    with pytest.raises(TypeError, match="not supported"):
        cr.tensor(bad)


def test_float16_is_refused_with_a_fix() -> None:
    with pytest.raises(TypeError, match="float32 or float64"):
        cr.tensor(np.zeros(2, np.float16))


def test_integer_tensors_cannot_require_grad() -> None:
    with pytest.raises(TypeError, match="only floating"):
        cr.tensor([1, 2], requires_grad=True)


def test_scalar_operands_keep_the_tensor_dtype() -> None:
    x = cr.ones(3)
    assert (x * 2).dtype == np.float32
    assert (x + np.float64(1.5)).dtype == np.float32
    assert (x + np.arange(3)).dtype == np.float32  # int data meets a float tensor: float32
    assert (2.0 - x).data.tolist() == [1.0, 1.0, 1.0]


def test_mixed_float_dtypes_promote_and_gradients_keep_each_dtype() -> None:
    a = cr.tensor(np.ones(2, np.float32), requires_grad=True)
    b = cr.tensor(np.ones(2, np.float64), requires_grad=True)
    out = (a * b).sum()
    assert out.dtype == np.float64
    out.backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64


# ----------------------------------------------------------------------------- the tape
def test_gradients_accumulate_for_a_tensor_used_twice() -> None:
    x = cr.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * x + x  # x used three times
    y.sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data + 1)


def test_a_leaf_hook_sees_the_summed_gradient_once_and_may_replace_it() -> None:
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    x.register_hook(lambda grad: seen.append(grad.copy()) or grad * 10)
    (x * 2 + x * 3).sum().backward()
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0], [5.0, 5.0])
    np.testing.assert_array_equal(x.grad, [50.0, 50.0])


def test_two_leaves_given_one_gradient_array_do_not_share_it() -> None:
    a = cr.tensor([1.0, 2.0], requires_grad=True)
    b = cr.tensor([3.0, 4.0], requires_grad=True)
    (a + b).sum().backward()  # add hands the same array to both inputs
    assert not np.shares_memory(a.grad, b.grad)
    a.grad += 1
    np.testing.assert_array_equal(b.grad, [1.0, 1.0])


@pytest.mark.parametrize("uses", [2, 3])
def test_a_leaf_used_several_times_adds_up_in_torchs_order(uses: int) -> None:
    """.grad + ((g1 + g2) + g3), bit for bit as torch (float32 rounding shows the order)."""
    rng = np.random.default_rng(0)
    start, *factors = (rng.standard_normal(10_000).astype(np.float32) * scale
                       for scale in (1, 7, 1, 1e-3, 30)[:uses + 2])
    ours = cr.tensor(start, requires_grad=True)
    theirs = torch.tensor(start, requires_grad=True)
    for leaf, wrap in ((ours, cr.tensor), (theirs, torch.tensor)):
        (leaf * wrap(factors[0])).sum().backward()  # .grad already holds something
        total = leaf * wrap(factors[1])
        for factor in factors[2:]:
            total = total + leaf * wrap(factor)
        total.sum().backward()
    np.testing.assert_array_equal(ours.grad, theirs.grad.numpy())


def test_backward_twice_accumulates_into_leaves() -> None:
    x = cr.tensor([1.0, -2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad, [6.0, 6.0])


def test_a_diamond_graph_matches_torch() -> None:
    data = np.random.default_rng(0).standard_normal((4, 3))
    x = cr.tensor(data, requires_grad=True)
    h = x.tanh()
    out = (h * h.exp() + h.sum(axis=0)).mean()
    out.backward()
    tx = torch.tensor(data, requires_grad=True)
    th = tx.tanh()
    (th * th.exp() + th.sum(dim=0)).mean().backward()
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-12)


def test_a_deep_chain_does_not_hit_the_recursion_limit() -> None:
    x = cr.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0
    y.sum().backward()
    assert x.grad.tolist() == [1.0]


def test_non_leaf_gradients_are_kept_only_when_asked() -> None:
    x = cr.tensor([2.0], requires_grad=True)
    h = (x * 3).retain_grad()
    k = x * 4
    (h * k).sum().backward()
    np.testing.assert_allclose(h.grad, [8.0])
    assert k.grad is None
    np.testing.assert_allclose(x.grad, [48.0])


def test_backward_on_a_tensor_without_grad_explains() -> None:
    with pytest.raises(RuntimeError, match="does not require a gradient"):
        cr.tensor([1.0]).sum().backward()


def test_backward_on_a_non_scalar_needs_a_gradient() -> None:
    y = cr.ones(2, 3, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match=r"shape \(2, 3\).*backward\(gradient\)"):
        y.backward()
    with pytest.raises(ValueError, match="gradient has shape"):
        y.backward(np.ones(3))
    y.backward(np.ones((2, 3)))


def test_a_second_backward_through_freed_buffers_explains() -> None:
    x = cr.tensor([1.0], requires_grad=True)
    y = (x.exp() * 2).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()
    z = (x.exp() * 2).sum()
    z.backward(retain_graph=True)
    z.backward()


def test_no_grad_records_nothing_and_enable_grad_restores() -> None:
    x = cr.ones(2, requires_grad=True)
    with cr.no_grad():
        y = x * 2
        with cr.enable_grad():
            z = x * 2
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad and z.grad_fn is not None
    assert cr.is_grad_enabled()

    @cr.no_grad()
    def infer(t: cr.Tensor) -> cr.Tensor:
        return t * 2

    assert not infer(x).requires_grad


def test_detach_shares_data_and_cuts_the_tape() -> None:
    x = cr.ones(2, requires_grad=True)
    d = (x * 2).detach()
    assert not d.requires_grad and d.is_leaf
    y = (d * x).sum()
    y.backward()
    np.testing.assert_allclose(x.grad, [2.0, 2.0])


def test_numpy_item_repr_and_len() -> None:
    x = cr.tensor([[1.0, 2.0]], requires_grad=True)
    assert x.numpy() is x.data
    assert cr.tensor([3.5]).item() == 3.5
    with pytest.raises(ValueError, match="2 elements"):
        x.item()
    assert repr(x) == "tensor([[1., 2.]], requires_grad=True)"
    assert repr(x * 2) == "tensor([[2., 4.]], grad_fn=<MulOp>)"
    assert "dtype=float64" in repr(cr.tensor(np.zeros(1)))
    assert len(x) == 1 and x.shape == (1, 2) and x.ndim == 2 and x.size == 2


def test_numpy_arrays_on_the_left_defer_to_the_tensor() -> None:
    x = cr.ones(2, requires_grad=True)
    y = np.array([1.0, 2.0], np.float32) * x
    assert isinstance(y, cr.Tensor) and y.requires_grad


def test_comparisons_return_tensors_without_gradient() -> None:
    x = cr.tensor([1.0, 2.0, 3.0], requires_grad=True)
    for result in (x > 1.5, x >= 2, x < 2, x <= 2, x == 2, x != 2):
        assert isinstance(result, cr.Tensor)
        assert result.dtype == np.bool_ and not result.requires_grad
    assert (x > 1.5).data.tolist() == [False, True, True]


# ----------------------------------------------------------------------------- op errors
def test_matmul_shape_mismatch_names_the_op_and_both_shapes() -> None:
    with pytest.raises(ValueError, match=r"matmul: shapes \(3, 4\) and \(5, 6\)"):
        cr.ones(3, 4) @ cr.ones(5, 6)
    with pytest.raises(ValueError, match=r"matmul.*\(2, 3, 4\).*\(5, 4, 6\)"):
        cr.ones(2, 3, 4) @ cr.ones(5, 4, 6)


def test_broadcast_mismatch_names_the_op_and_both_shapes() -> None:
    with pytest.raises(ValueError, match=r"add:.*\(3, 4\) and \(5,\)"):
        cr.ones(3, 4) + cr.ones(5)
    with pytest.raises(ValueError, match=r"mul:.*\(2, 3\) and \(4, 1, 2\)"):
        cr.ones(2, 3) * cr.ones(4, 1, 2)


def test_shape_op_errors_say_what_went_wrong() -> None:
    with pytest.raises(ValueError, match=r"reshape: cannot reshape .* \(2, 3\).* \(4,\)"):
        cr.ones(2, 3).reshape(4)
    with pytest.raises(ValueError, match="not a permutation"):
        cr.ones(2, 3).permute(0, 0)
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        cr.ones(2, 3).sum(axis=2)
    with pytest.raises(ValueError, match="only size-1 axes can grow"):
        cr.ones(2, 3).expand(4, 3)
    with pytest.raises(ValueError, match="concatenate: shapes"):
        cr.cat([cr.ones(2, 3), cr.ones(2, 4)], axis=0)
    with pytest.raises(IndexError, match=r"tensor shape \(2, 3\)"):
        cr.ones(2, 3)[5]


def test_a_custom_backward_returning_the_wrong_shape_is_named() -> None:
    class Broken(cr.Function, register=False):
        @staticmethod
        def forward(ctx, a):
            return a * 2

        @staticmethod
        def backward(ctx, grad):
            return grad[:1]

    x = cr.ones(3, 2, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"Broken.backward returned a gradient of shape"):
        Broken.apply(x).sum().backward()


def test_a_custom_backward_returning_too_few_gradients_is_named() -> None:
    class TwoInputs(cr.Function, register=False):
        @staticmethod
        def forward(ctx, a, b):
            return a + b

        @staticmethod
        def backward(ctx, grad):
            return grad

    with pytest.raises(RuntimeError, match="returned 1 gradients for 2 inputs"):
        TwoInputs.apply(cr.ones(2, requires_grad=True), cr.ones(2)).sum().backward()


# ----------------------------------------------------------------------------- custom ops
def test_a_user_function_uses_the_same_api_as_builtins() -> None:
    class Cube(cr.Function, register=False):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x**3

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * 3 * x**2

    data = np.random.default_rng(1).standard_normal((3, 2))
    x = cr.tensor(data, requires_grad=True)
    Cube.apply(x).sum().backward()
    np.testing.assert_allclose(x.grad, 3 * data**2)
    cr.check.gradcheck(Cube.apply, [data])
    assert "cube" not in cr.registry()


def test_function_names_must_be_unique() -> None:
    with pytest.raises(ValueError, match="'add' is taken"):
        class add(cr.Function):  # noqa: N801 - the clash is the point
            pass
    assert _REGISTRY["add"].__module__ == "chainrule.ops.elementwise"


def test_needs_input_grad_lets_backward_skip_work() -> None:
    seen = []

    class Spy(cr.Function, register=False):
        @staticmethod
        def forward(ctx, a, b):
            seen.append(ctx.needs_input_grad)
            return a * b

        @staticmethod
        def backward(ctx, grad):
            return grad, None

    Spy.apply(cr.ones(2, requires_grad=True), cr.ones(2)).sum().backward()
    assert seen == [(True, False)]


# ----------------------------------------------------------------------------- kinks, ties
def _torch_grad(fn, *arrays):
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    fn(*tensors).sum().backward()
    return [t.grad.numpy() for t in tensors]


def _our_grad(fn, *arrays):
    tensors = [cr.tensor(a, requires_grad=True) for a in arrays]
    fn(*tensors).sum().backward()
    return [t.grad for t in tensors]


@pytest.mark.parametrize("name, ours, theirs, arrays", [
    ("relu at 0", cr.relu, torch.relu, [np.array([-1.0, 0.0, 1.0])]),
    ("abs at 0", cr.abs, torch.abs, [np.array([-1.0, 0.0, 1.0])]),
    ("clamp at bounds", lambda a: a.clamp(-1.0, 1.0), lambda a: a.clamp(-1.0, 1.0),
     [np.array([-2.0, -1.0, 0.0, 1.0, 2.0])]),
    ("max ties", lambda a: a.max(axis=1), lambda a: a.amax(dim=1),
     [np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])]),
    ("min ties", lambda a: a.min(), lambda a: a.amin(), [np.array([1.0, 1.0, 5.0])]),
    ("maximum ties", cr.maximum, torch.maximum, [np.array([1.0, 2.0]), np.array([1.0, 3.0])]),
    ("minimum ties", cr.minimum, torch.minimum, [np.array([1.0, 2.0]), np.array([1.0, 3.0])]),
    ("std of equal values", lambda a: a.std(), lambda a: a.std(), [np.array([2.0, 2.0])]),
])
def test_non_differentiable_points_follow_pytorch(name, ours, theirs, arrays) -> None:
    for mine, reference in zip(_our_grad(ours, *arrays), _torch_grad(theirs, *arrays)):
        np.testing.assert_allclose(mine, reference, err_msg=name)


def test_softmax_family_is_stable_for_huge_logits() -> None:
    logits = np.array([[1000.0, 0.0, -1000.0], [-1e4, -1e4, -1e4]])
    x = cr.tensor(logits, requires_grad=True)
    for ours, theirs in [(x.softmax(axis=1), torch.softmax(torch.tensor(logits), 1)),
                         (x.log_softmax(axis=1), torch.log_softmax(torch.tensor(logits), 1)),
                         (x.logsumexp(axis=1), torch.logsumexp(torch.tensor(logits), 1))]:
        assert np.all(np.isfinite(ours.data))
        np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=1e-12)
    x.log_softmax(axis=1).sum().backward()
    assert np.all(np.isfinite(x.grad))


def test_sigmoid_does_not_overflow() -> None:
    with np.errstate(all="raise"):
        out = cr.tensor([-1000.0, 0.0, 1000.0]).sigmoid()
    np.testing.assert_allclose(out.data, [0.0, 0.5, 1.0])


# ----------------------------------------------------------------------------- methods
def test_composite_methods_match_torch() -> None:
    data = np.random.default_rng(2).standard_normal((2, 3, 4))
    checks = [
        (lambda t: t.T, lambda t: t.permute(2, 1, 0)),
        (lambda t: t[0].t(), lambda t: t[0].t()),
        (lambda t: t.flatten(1), lambda t: t.flatten(1)),
        (lambda t: t.clamp_min(0.0), lambda t: t.clamp_min(0.0)),
        (lambda t: t.clamp_max(0.1), lambda t: t.clamp_max(0.1)),
        (lambda t: t.view(6, 4), lambda t: t.view(6, 4)),
        (lambda t: 2 ** t, lambda t: 2 ** t),
        (lambda t: 1 / (t.abs() + 1), lambda t: 1 / (t.abs() + 1)),
        (lambda t: cr.where(t > 0, t, t * 0.1), lambda t: torch.where(t > 0, t, t * 0.1)),
        (lambda t: t.double().float(), lambda t: t.double().float()),
        (lambda t: cr.stack(list(t)), lambda t: torch.stack(list(t))),
    ]
    for ours, theirs in checks:
        mine = _our_grad(ours, data)[0]
        reference = _torch_grad(theirs, data)[0]
        np.testing.assert_allclose(mine, reference, rtol=1e-6)


def test_argmax_and_friends_have_no_gradient() -> None:
    x = cr.tensor([[1.0, 5.0, 2.0]], requires_grad=True)
    assert x.argmax(axis=1).tolist() == [1]
    assert x.argmin().item() == 0
    assert not x.argmax().requires_grad


# ----------------------------------------------------------------------------- factories
def test_factories_make_the_shapes_and_values_asked() -> None:
    assert cr.zeros(2, 3).shape == (2, 3) and cr.zeros((2, 3)).shape == (2, 3)
    assert cr.ones(4).data.sum() == 4
    assert cr.full((2, 2), 7.0).data.tolist() == [[7.0, 7.0], [7.0, 7.0]]
    assert cr.arange(5).tolist() == [0, 1, 2, 3, 4] and cr.arange(5).dtype == np.int64
    assert cr.arange(0, 1, 0.5).dtype == np.float32
    assert cr.linspace(0, 1, 3).tolist() == [0.0, 0.5, 1.0]
    assert cr.eye(2).tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert cr.zeros_like(cr.ones(2, 2)).shape == (2, 2)
    assert cr.randint(0, 3, (100,)).data.max() < 3


def test_tensor_copies_but_from_numpy_shares() -> None:
    array = np.zeros(3, np.float32)
    copied, shared = cr.tensor(array), cr.from_numpy(array)
    array[0] = 1
    assert copied.data[0] == 0 and shared.data[0] == 1


def test_random_factories_are_seedable() -> None:
    cr.manual_seed(123)
    first = cr.randn(3, 3).data.copy()
    cr.manual_seed(123)
    np.testing.assert_array_equal(first, cr.randn(3, 3).data)
    rng = np.random.default_rng(5)
    np.testing.assert_array_equal(cr.rand(4, generator=rng).data,
                                  cr.rand(4, generator=np.random.default_rng(5)).data)


def test_one_no_grad_object_reused_or_recursing_restores_grad_mode() -> None:
    mode = cr.no_grad()

    @mode
    def depth(n: int) -> bool:
        return depth(n - 1) if n else cr.is_grad_enabled()

    assert depth(3) is False
    x = cr.tensor([1.0], requires_grad=True)
    assert (x * 2).requires_grad
    with mode, mode:
        assert not (x * 2).requires_grad
    assert (x * 2).requires_grad


def test_var_of_one_element_is_nan_in_value_and_gradient_like_torch() -> None:
    x = cr.tensor([1.5], dtype=np.float64, requires_grad=True)
    y = x.var()
    y.backward()
    assert np.isnan(y.item()) and np.isnan(x.grad).all()


def test_pow_gradients_at_zero_base_match_torch() -> None:
    import torch

    a = cr.tensor([0.0, 0.0, 2.0], dtype=np.float64, requires_grad=True)
    b = cr.tensor([0.0, 2.0, 3.0], dtype=np.float64, requires_grad=True)
    (a**b).sum().backward()
    ta = torch.tensor([0.0, 0.0, 2.0], dtype=torch.float64, requires_grad=True)
    tb = torch.tensor([0.0, 2.0, 3.0], dtype=torch.float64, requires_grad=True)
    (ta**tb).sum().backward()
    np.testing.assert_allclose(a.grad, ta.grad.numpy())
    np.testing.assert_allclose(b.grad, tb.grad.numpy())


def test_a_retained_gradient_is_not_changed_by_a_backward_that_works_in_place() -> None:
    class TripleInPlace(cr.Function, register=False):
        @staticmethod
        def forward(ctx, a):
            return a.copy()

        @staticmethod
        def backward(ctx, grad):
            grad *= 3  # legal for the op; must not reach y.grad below
            return grad

    x = cr.tensor([1.0], dtype=np.float64, requires_grad=True)
    y = TripleInPlace.apply(x * 1.0)
    y.retain_grad()
    (y * y).sum().backward()
    np.testing.assert_array_equal(y.grad, [2.0])
    np.testing.assert_array_equal(x.grad, [6.0])


def test_leaf_gradients_never_share_memory() -> None:
    a = cr.tensor([1.0, 2.0], requires_grad=True)
    b = cr.tensor([3.0, 4.0], requires_grad=True)
    (a + b).sum().backward()  # add hands one array to both inputs
    assert not np.shares_memory(a.grad, b.grad)
    (a + b).sum().backward()  # and accumulating into one leaves the other alone
    np.testing.assert_array_equal(a.grad, [2.0, 2.0])
    np.testing.assert_array_equal(b.grad, [2.0, 2.0])


def test_grad_mode_is_per_thread_as_in_pytorch() -> None:
    import threading

    seen = {}

    def record() -> None:
        seen["other"] = (cr.randn(2, requires_grad=True) * 2).requires_grad

    with cr.no_grad():
        worker = threading.Thread(target=record)
        worker.start()
        worker.join()
        seen["here"] = (cr.randn(2, requires_grad=True) * 2).requires_grad
    assert seen == {"other": True, "here": False}


def test_one_decorated_function_in_two_threads_restores_each_threads_own_mode() -> None:
    import threading

    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    @cr.no_grad()  # one _GradMode object, entered by both threads, exits interleaved
    def hold(entered: threading.Event, until: threading.Event) -> None:
        entered.set()
        until.wait(5)

    def a() -> None:  # enters first and leaves while b is still inside
        hold(a_in, b_in)
        seen["a"] = cr.is_grad_enabled()
        a_out.set()

    def b() -> None:
        with cr.no_grad():
            a_in.wait(5)
            hold(b_in, a_out)
            seen["b"] = cr.is_grad_enabled()

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {"a": True, "b": False}


def test_a_gradient_nothing_else_holds_becomes_the_leafs_grad_uncopied() -> None:
    # What autograd._unshared buys: one parameter-sized copy less per parameter per step.
    made = []

    class Fresh(cr.Function, register=False):
        @staticmethod
        def forward(ctx, a):
            return a * 2

        @staticmethod
        def backward(ctx, grad):
            out = grad * 2
            made.append(id(out))
            return out

    w = cr.randn(4, 3, requires_grad=True)
    Fresh.apply(w).sum().backward()
    assert id(w.grad) == made[0]
    kept = []

    class Keeps(Fresh, register=False):
        @staticmethod
        def backward(ctx, grad):
            out = grad * 2
            kept.append(out)  # someone else holds it: the leaf must get a copy
            return out

    v = cr.randn(4, 3, requires_grad=True)
    Keeps.apply(v).sum().backward()
    assert v.grad is not kept[0] and not np.shares_memory(v.grad, kept[0])
