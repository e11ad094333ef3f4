"""check(): each known mistake, made on purpose, gets its diagnosis; kinks are not flaky.
Also the two-path cross-check of hand-written layers, the sentinel and `chainrule check`."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn
from chainrule.check import GradientCheckError, GradientMismatchError, check
from chainrule.check.sentinel import NonFiniteError, SentinelCallback, sentinel

RNG = np.random.default_rng(0)


def weights(*shape: int) -> cr.Tensor:
    return cr.tensor(RNG.standard_normal(shape), requires_grad=True)


class Lin(nn.Module):
    """The lesson's linear layer, right."""

    def __init__(self, w: cr.Tensor, b: cr.Tensor) -> None:
        self.w, self.b = w, b

    def forward(self, inp):
        return inp @ self.w + self.b

    def bwd(self, out, inp):
        inp.g = out.g @ self.w.t()
        self.w.g = inp.t() @ out.g
        self.b.g = out.g.sum(0)


class Mse(nn.Module):
    """The lesson's mse, right: 2 (x - y) / n."""

    def forward(self, inp, targ):
        return (inp.squeeze(-1) - targ).pow(2).mean()

    def bwd(self, out, inp, targ):
        inp.g = 2 * (inp.squeeze(-1) - targ).unsqueeze(-1) / targ.shape[0] * out.g


def failure(target, *inputs, **options) -> str:
    with pytest.raises(GradientCheckError) as error:
        check(target, *inputs, **options)
    return str(error.value)


# ----------------------------------------------------------------------------- right ones
def test_correct_layers_pass_and_the_report_says_what_was_compared() -> None:
    report = check(Lin(weights(3, 2), weights(2)), RNG.standard_normal((4, 3)))
    assert report.passed and set(report.worst_error) == {"input 0 (inp)", "w", "b"}
    assert "OK, 3 gradients agree" in str(report)
    assert check(Mse(), RNG.standard_normal((5, 1)), RNG.standard_normal(5), wrt=[0]).passed
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    assert check(model, RNG.standard_normal((5, 3)), mode="random").passed


def test_builtin_functions_pass_including_integer_targets() -> None:
    registry = cr.registry()
    assert check(registry["cross_entropy"], RNG.standard_normal((4, 3)),
                 np.array([0, 2, 1, 2])).passed
    assert check(registry["matmul"], RNG.standard_normal((2, 3)),
                 RNG.standard_normal((3, 4))).passed


def test_the_users_module_is_left_untouched() -> None:
    layer = nn.Linear(3, 2)
    before = layer.weight.data.copy()
    check(layer, RNG.standard_normal((2, 3)))
    assert layer.weight.dtype == np.float32 and layer.weight.grad is None
    np.testing.assert_array_equal(layer.weight.data, before)


# ----------------------------------------------------------------------------- diagnoses
def test_a_loss_bwd_that_ignores_out_g_passes_like_the_lessons_mse_grad() -> None:
    class LessonMse(Mse):
        def bwd(self, out, inp, targ):  # the lesson's mse_grad: a loss is the graph's top
            inp.g = 2 * (inp.squeeze(-1) - targ).unsqueeze(-1) / targ.shape[0]

    assert check(LessonMse(), RNG.standard_normal((6, 1)), RNG.standard_normal(6),
                 wrt=[0]).passed


def test_a_non_scalar_bwd_that_ignores_out_g_fails() -> None:
    class ForgetfulRelu(nn.Module):
        def forward(self, inp):
            return inp.relu()

        def bwd(self, out, inp):
            inp.g = (inp.data > 0).astype(inp.data.dtype)  # forgot "* out.g"

    message = failure(ForgetfulRelu(), RNG.standard_normal((4, 3)) + 0.5)
    assert "gradient of input 0 (inp)" in message


def test_a_missing_two_is_a_constant_factor_like_mse() -> None:
    class HalfMse(Mse):
        def bwd(self, out, inp, targ):
            inp.g = (inp.squeeze(-1) - targ).unsqueeze(-1) / targ.shape[0] * out.g

    message = failure(HalfMse(), RNG.standard_normal((6, 1)), RNG.standard_normal(6), wrt=[0])
    assert "gradient of input 0 (inp) (shape (6, 1)) is wrong at element (0, 0)" in message
    assert "finite differences give" in message and "backward gives" in message
    assert "off by a constant factor: backward is 0.5 times" in message
    assert "the 2 in d(x^2)/dx" in message


def test_a_transposed_weight_gradient_is_named() -> None:
    class Transposed(Lin):
        def bwd(self, out, inp):
            super().bwd(out, inp)
            self.w.g = out.g.t() @ inp

    message = failure(Transposed(weights(3, 2), weights(2)), RNG.standard_normal((4, 3)))
    assert "gradient of w (shape (3, 2)) is wrong" in message
    assert "transposed" in message


def test_a_transposed_square_gradient_is_named() -> None:
    class SquareTransposed(cr.Function, register=False):
        @staticmethod
        def forward(ctx, x, w):
            ctx.x, ctx.w = x, w
            return x @ w

        @staticmethod
        def backward(ctx, grad):
            return grad @ ctx.w.T, (ctx.x.T @ grad).T

    message = failure(SquareTransposed, RNG.standard_normal((3, 3)), RNG.standard_normal((3, 3)))
    assert "gradient of input 1 (w)" in message and "transposed" in message


def test_a_missing_sum_over_the_batch_axis_is_named() -> None:
    class NoSum(Lin):
        def bwd(self, out, inp):
            super().bwd(out, inp)
            self.b.g = out.g

    message = failure(NoSum(weights(3, 2), weights(2)), RNG.standard_normal((4, 3)))
    assert "gradient of b (shape (2,))" in message
    assert "missing sum over a broadcast axis" in message and "summed over axis 0" in message

    class BroadcastAdd(cr.Function, register=False):
        @staticmethod
        def forward(ctx, a, b):
            return a + b

        @staticmethod
        def backward(ctx, grad):
            return grad, grad  # b was (1, 3), broadcast to (4, 3)

    message = failure(BroadcastAdd, RNG.standard_normal((4, 3)), RNG.standard_normal((1, 3)))
    assert "input 1 (b)" in message and "missing sum over a broadcast axis" in message


def test_an_overwritten_gradient_of_a_tensor_used_twice_is_named() -> None:
    class Residual(nn.Module):
        def __init__(self, w: cr.Tensor) -> None:
            self.w = w

        def forward(self, inp):
            return inp @ self.w + inp  # inp is used twice

        def bwd(self, out, inp):
            inp.g = out.g @ self.w.t()
            inp.g = out.g  # overwrites the first use's gradient
            self.w.g = inp.t() @ out.g

    message = failure(Residual(weights(3, 3)), RNG.standard_normal((4, 3)))
    assert "gradient of input 0 (inp)" in message
    assert ".g was assigned 2 times in bwd" in message and "inp.g = inp.g +" in message


def test_a_wrong_sign_is_named() -> None:
    class Flipped(Lin):
        def bwd(self, out, inp):
            super().bwd(out, inp)
            inp.g = -inp.g

    message = failure(Flipped(weights(3, 2), weights(2)), RNG.standard_normal((4, 3)))
    assert "wrong sign" in message


def test_a_zero_or_missing_gradient_is_named() -> None:
    class Forgetful(cr.Function, register=False):
        @staticmethod
        def forward(ctx, a):
            return a * 3

        @staticmethod
        def backward(ctx, grad):
            return grad * 0

    assert "backward gives zeros" in failure(Forgetful, RNG.standard_normal(4))
    message = failure(Mse(), RNG.standard_normal((6, 1)), RNG.standard_normal(6))
    assert "input 1 (targ)" in message and "no gradient" in message and "wrt=" in message


def test_an_unknown_mistake_still_points_at_the_element() -> None:
    class Wrong(cr.Function, register=False):
        @staticmethod
        def forward(ctx, a):
            ctx.a = a
            return np.sin(a)

        @staticmethod
        def backward(ctx, grad):
            return grad * np.sin(ctx.a)  # should be cos

    message = failure(Wrong, np.array([0.3, 1.0, 2.0]))
    assert "at element (0,)" in message and "no known pattern" in message


# ----------------------------------------------------------------------------- kinks
def test_relu_exactly_at_zero_is_redrawn_not_failed() -> None:
    report = check(nn.ReLU(), np.array([[-1.0, 0.0, 2.0, 0.0]]))
    assert report.passed
    assert any("non-differentiable point" in note for note in report.notes)


def test_max_with_ties_passes() -> None:
    # At a tie the central difference is the average of the two one-sided slopes, which is
    # exactly the equal split chainrule's max uses: no redraw needed, and no false alarm.
    report = check(cr.registry()["max"], np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]]), axis=1)
    assert report.passed


# ----------------------------------------------------------------------------- bad input
def test_check_refuses_what_it_cannot_check() -> None:
    with pytest.raises(TypeError, match="expected a Function subclass or a Module instance"):
        check(lambda x: x, np.ones(2))
    with pytest.raises(TypeError, match="Lin is a Module class; pass an instance"):
        check(Lin, np.ones(2))
    with pytest.raises(TypeError, match=r"Lin.forward takes 1 input\(s\), got 2"):
        check(Lin(weights(2, 2), weights(2)), np.ones((1, 2)), np.ones((1, 2)))
    with pytest.raises(TypeError, match="input 0 of Lin has dtype complex128"):
        check(Lin(weights(2, 2), weights(2)), np.ones((1, 2), complex))
    with pytest.raises(TypeError, match="give Lin its input arrays"):
        check(Lin(weights(2, 2), weights(2)))
    with pytest.raises(ValueError, match="mode must be"):
        check(nn.ReLU(), np.ones(2), mode="fast")


# ----------------------------------------------------------------------------- two paths
def test_cross_check_runs_both_paths_once_and_fails_loudly() -> None:
    class Checked(Lin):
        cross_check = True

    layer = Checked(weights(3, 2), weights(2))
    layer(cr.tensor(RNG.standard_normal((4, 3)))).sum().backward()
    assert layer.__dict__["_cross_checked"]
    assert layer.w.grad is not None and layer.w.grad.shape == (3, 2)

    class WrongChecked(Lin):
        cross_check = True

        def bwd(self, out, inp):
            super().bwd(out, inp)
            self.w.g = self.w.g * 2

    with pytest.raises(GradientMismatchError,
                       match=r"WrongChecked: the hand-written bwd and autograd through forward "
                             r"disagree on w.g.*2 times the true gradient"):
        WrongChecked(weights(3, 2), weights(2))(cr.randn(4, 3, dtype="float64")).sum().backward()


def test_cross_check_leaves_the_real_gradients_alone() -> None:
    class Checked(Lin):
        cross_check = True

    w, b = weights(3, 2), weights(2)
    x = RNG.standard_normal((4, 3))
    Checked(w, b)(cr.tensor(x)).sum().backward()
    checked = w.grad.copy()
    w.grad = None
    Lin(w, b)(cr.tensor(x)).sum().backward()
    np.testing.assert_array_equal(checked, w.grad)


def test_cross_check_and_the_g_watch_go_through_nn_hooks_that_check_installs() -> None:
    from chainrule.check.handwritten import watch_g_writes
    from chainrule.nn import module

    class Checked(Lin):
        cross_check = True

    x = cr.tensor(RNG.standard_normal((4, 3)))
    installed = module.set_hand_written_hooks(module.HandWrittenHooks())  # nn alone
    try:
        with pytest.raises(RuntimeError, match="no cross-check is installed: import "
                                               "chainrule.check"):
            Checked(weights(3, 2), weights(2))(x).sum().backward()
        layer = Lin(weights(3, 2), weights(2))
        with watch_g_writes(layer) as writes:  # the arguments are plain Tensors without them
            layer(x).sum().backward()
        assert id(layer.w) in writes and "_checked_args" not in vars(layer)
    finally:
        assert type(module.set_hand_written_hooks(installed)) is module.HandWrittenHooks
    with watch_g_writes(layer) as writes:
        layer(x).sum().backward()
    assert id(layer.w) in writes and len(vars(layer)["_checked_args"]) == 1
    with pytest.raises(TypeError, match="expected a HandWrittenHooks"):
        module.set_hand_written_hooks(object())


def test_nn_does_not_import_the_check_package() -> None:
    """check builds on nn and fills in nn's hooks: an import the other way would be a cycle."""
    import ast
    import pathlib

    offenders = []
    for path in sorted(pathlib.Path(nn.__file__).parent.rglob("*.py")):
        package = ".".join(("chainrule",) + path.relative_to(
            pathlib.Path(cr.__file__).parent).parent.parts)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = ".".join(package.split(".")[:len(package.split(".")) + 1 - node.level]) \
                    if node.level else ""
                source = ".".join(part for part in (base, node.module) if part)
                names = [source] + [f"{source}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Call) and node.args and isinstance(
                    node.args[0], ast.Constant) and isinstance(node.args[0].value, str) and (
                    getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                        "import_module", "__import__")):
                names = [node.args[0].value]
            if any(n == "chainrule.check" or n.startswith("chainrule.check.") for n in names):
                offenders.append(f"{path.name}:{node.lineno}")
    assert not offenders, f"chainrule.nn imports chainrule.check at {', '.join(offenders)}"
    # Yet a program that imports only nn gets the cross-check: `import chainrule` loads check.
    code = ("from chainrule.nn import module\n"
            "assert type(module._hooks).__module__ == 'chainrule.check.handwritten'")
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------------------- one rule
class Offset(cr.Function, register=False):
    """The output does not depend on x, yet backward says each element's slope is 1e-6: ten
    times atol, wrong by the same rule that every element is judged by in full mode."""

    @staticmethod
    def forward(ctx, x):
        return np.zeros_like(x)

    @staticmethod
    def backward(ctx, grad):
        return np.full(grad.shape, 1e-6)


def test_random_directions_judge_by_the_same_rule_as_every_element() -> None:
    from chainrule.check import GradcheckError, gradcheck

    x = RNG.standard_normal((50, 50))
    # The old gradcheck bound, atol * size (2.5e-4 here), let this pass in random mode.
    for mode in ("full", "random"):
        with pytest.raises(GradcheckError, match="disagrees with finite differences"):
            gradcheck(Offset.apply, [x], mode=mode)
    report = check(Offset, x, mode="random", raise_on_failure=False)
    assert not report.passed and "no known pattern" in str(report)
    small = x[:4, :4]  # the same rule at every size: an error below atol passes in both
    for mode in ("full", "random"):
        assert gradcheck(Offset.apply, [small], mode=mode, atol=1e-5).worst_error[0] < 1e-5
        assert check(Offset, small, mode=mode, atol=1e-5).passed


# ----------------------------------------------------------------------------- sentinel
def test_the_sentinel_names_the_op_the_layer_and_the_inputs() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    model[2].weight.data[...] = np.inf
    with sentinel(model), pytest.raises(NonFiniteError) as error:
        model(cr.tensor([[1.0, 2.0]]))
    message = str(error.value)
    assert message.startswith("linear produced") and "in layer 2 (Linear)" in message
    assert "input 1: shape (1, 2)" in message and "non-finite" in message


def test_the_sentinel_catches_a_non_finite_gradient() -> None:
    x = cr.tensor([0.0, 1.0], requires_grad=True)
    with sentinel(), pytest.raises(NonFiniteError, match="backward of sqrt gave a non-finite"):
        x.sqrt().sum().backward()


def test_without_the_sentinel_nothing_is_checked() -> None:
    with np.errstate(over="ignore"):
        out = cr.tensor([1000.0]).exp()
    assert np.isinf(out.item())


def test_the_sentinel_callback_reports_the_training_step() -> None:
    from chainrule.data import ArrayDataset, DataLoader
    from chainrule.train import Learner

    x = np.ones((32, 2), np.float32)
    x[20] = np.inf  # a poisoned sample in the second batch
    data = DataLoader(ArrayDataset(x, np.zeros(32, np.int64)), batch_size=16)
    model = nn.Sequential(nn.Linear(2, 3))
    learner = Learner(model, data, cr.optim.SGD(model.parameters(), lr=0.1),
                      callbacks=[SentinelCallback()])
    with pytest.raises(NonFiniteError, match="in layer 0 \\(Linear\\) at step 1"):
        learner.fit(1)
    assert cr.tensor.__module__ and cr.Tensor  # the sentinel is gone after the failed fit
    from chainrule.engine.tensor import STATE
    assert STATE.sentinel is None


# ----------------------------------------------------------------------------- CLI
def test_chainrule_check_on_the_command_line(tmp_path) -> None:
    (tmp_path / "layers.py").write_text(textwrap.dedent("""
        import numpy as np
        from chainrule import nn

        class Mse(nn.Module):
            example_inputs = (np.linspace(-1, 1, 6).reshape(6, 1), np.zeros(6))

            def forward(self, inp, targ):
                return (inp.squeeze(-1) - targ).pow(2).mean()

            def bwd(self, out, inp, targ):
                inp.g = (inp.squeeze(-1) - targ).unsqueeze(-1) / targ.shape[0] * out.g
        """))
    command = [sys.executable, "-m", "chainrule", "check", "layers.py:Mse", "--wrt", "0"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 1
    assert "0.5 times the true gradient" in result.stdout
    ok = subprocess.run([sys.executable, "-m", "chainrule", "check", "chainrule.nn:ReLU",
                         "--input", "3,4"], capture_output=True, text=True)
    assert ok.returncode == 0 and "check ReLU: OK" in ok.stdout
    missing = subprocess.run([sys.executable, "-m", "chainrule", "check", "layers.py:Nope"],
                             cwd=tmp_path, capture_output=True, text=True)
    assert missing.returncode == 2 and "has no attribute 'Nope'" in missing.stderr


def test_modules_are_also_compared_with_their_pytorch_twin() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    report = check(model, RNG.standard_normal((5, 3)))
    assert any(note.startswith("PyTorch agrees on every layer") for note in report.notes)
    assert not check(model, RNG.standard_normal((5, 3)), torch=False).notes
    hand = check(Lin(weights(3, 2), weights(2)), RNG.standard_normal((4, 3)))
    assert "PyTorch comparison skipped: not every layer has a torch twin" in hand.notes
    with pytest.raises(cr.check.ConversionError):
        check(Lin(weights(3, 2), weights(2)), RNG.standard_normal((4, 3)), torch=True)
