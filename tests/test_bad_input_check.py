"""The checkers never pass a broken gradient: NaN/inf under test, a reference that is not
finite, and a check that compared nothing are all failures, in check, gradcheck, parity_report
and `chainrule check`, through the one shared comparison."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn
from chainrule.check import GradcheckError, GradientCheckError, check, diagnose, gradcheck
from chainrule.check.comparison import compare

RNG = np.random.default_rng(0)
X = RNG.standard_normal((3, 4))

POISONS = {  # what backward's gradient gets, and where
    "all NaN": lambda g: np.full_like(g, np.nan),
    "one NaN": lambda g: _at(g, (0, 1), np.nan),
    "one inf": lambda g: _at(g, (0, 1), np.inf),
    "one -inf": lambda g: _at(g, (0, 1), -np.inf),
}


def _at(g: np.ndarray, index: tuple, value: float) -> np.ndarray:
    g = np.array(g, dtype=np.float64)
    g[index] = value
    return g


def poisoned_square(poison):
    """x * x, whose backward is right except for ``poison``."""
    class Square(cr.Function, register=False):
        @staticmethod
        def forward(ctx, x):
            ctx.x = x
            return x * x

        @staticmethod
        def backward(ctx, grad):
            return poison(2 * ctx.x * grad)

    return Square


class Lin(nn.Module):
    """The lesson's linear layer, right."""

    def __init__(self) -> None:
        self.w = cr.tensor(RNG.standard_normal((4, 2)), requires_grad=True)
        self.b = cr.tensor(RNG.standard_normal(2), requires_grad=True)

    def forward(self, inp):
        return inp @ self.w + self.b

    def bwd(self, out, inp):
        inp.g = out.g @ self.w.t()
        self.w.g = inp.t() @ out.g
        self.b.g = out.g.sum(0)


class NanLin(Lin):
    """Lin whose bwd puts a NaN into w.g."""

    def bwd(self, out, inp):
        super().bwd(out, inp)
        self.w.g = _at(self.w.g.data, (1, 0), np.nan)


class InfInputLin(Lin):
    """Lin whose bwd puts an inf into inp.g."""

    def bwd(self, out, inp):
        super().bwd(out, inp)
        inp.g = _at(inp.g.data, (2, 3), np.inf)


def failure(target, *inputs, **options) -> str:
    with pytest.raises(GradientCheckError) as error:
        check(target, *inputs, **options)
    return str(error.value)


# ----------------------------------------------------------------------------- the comparison
def test_the_comparison_puts_every_non_finite_element_in_a_failing_bin() -> None:
    ref = np.array([1.0, 2.0, 3.0, 4.0, np.nan, np.inf])
    got = np.array([1.0, np.nan, np.inf, -np.inf, np.nan, np.inf])
    verdict = compare(ref, got, 1e-6, 1e-9)
    assert not verdict.ok
    assert verdict.nonfinite.tolist() == [False, True, True, True, False, False]
    # NaN never agrees with NaN; an infinite finite-difference reference checks nothing.
    assert verdict.unchecked.tolist() == [False] * 4 + [True, True]
    assert verdict.max_abs == np.inf and verdict.max_rel == np.inf
    assert verdict.compared == 4 and verdict.where() == (1,)
    assert "NaN/inf in x: 3 of 6 elements are NaN and inf (first at (1,): nan" in \
        verdict.describe("x")


def test_only_an_exact_reference_agrees_on_an_equal_infinity() -> None:
    ref, got = np.array([np.inf, -np.inf, 2.0]), np.array([np.inf, -np.inf, 2.0])
    assert compare(ref, got, 1e-6, 1e-9, exact_inf=True).ok
    assert not compare(ref, got, 1e-6, 1e-9).ok  # finite differences: nothing learnt there
    wrong = compare(ref, np.array([5.0, np.inf, 2.0]), 1e-6, 1e-9, exact_inf=True)
    assert wrong.mismatch.tolist() == [True, False, False]
    assert wrong.nonfinite.tolist() == [False, True, False]
    assert not compare(np.array([np.nan]), np.array([np.nan]), 1e-6, 1e-9, exact_inf=True).ok


def test_the_comparison_passes_what_agrees_and_refuses_mismatched_shapes() -> None:
    verdict = compare(np.array([1.0, 2.0]), np.array([1.0, 2.0 + 1e-12]), 1e-6, 1e-9)
    assert verdict.ok and verdict.where() is None and verdict.describe("x") == ""
    assert 0 <= verdict.max_rel < 1e-11
    assert not compare(np.array([1.0]), np.array([1.1]), 1e-6, 1e-9).ok
    with pytest.raises(ValueError, match="same shape"):
        compare(np.ones(3), np.ones(2), 1e-6, 1e-9)


# ----------------------------------------------------------------------------- check: NaN/inf
@pytest.mark.parametrize("poison", list(POISONS))
@pytest.mark.parametrize("mode", ["full", "random", "auto"])
def test_a_function_whose_backward_gives_nan_or_inf_fails(poison: str, mode: str) -> None:
    options = {"full_limit": 4} if mode == "auto" else {}  # auto: the random branch
    message = failure(poisoned_square(POISONS[poison]), X, mode=mode, **options)
    assert message.startswith("check Square: FAILED")
    assert "Diagnosis: NaN/inf in the gradient of input 0 (x)" in message
    count = "12 of 12" if poison == "all NaN" else "1 of 12"
    first = "(0, 0)" if poison == "all NaN" else "(0, 1)"
    assert f"{count} elements are" in message and f"first at {first}" in message
    for wrong_pattern in ("no known pattern", "gives zeros", "constant factor", "OK"):
        assert wrong_pattern not in message


def test_a_nan_in_an_input_too_large_to_scan_is_still_located() -> None:
    big = RNG.standard_normal((6, 5))
    message = failure(poisoned_square(POISONS["one NaN"]), big, mode="random", full_limit=1)
    assert "NaN/inf in the gradient of input 0 (x): 1 of 30 elements are NaN" in message
    assert "first at (0, 1)" in message and "too large to locate" not in message


@pytest.mark.parametrize("mode", ["full", "random"])
def test_a_hand_written_bwd_that_sets_a_nan_or_inf_g_fails(mode: str) -> None:
    x = RNG.standard_normal((3, 4))
    message = failure(NanLin(), x, mode=mode, torch=False)
    assert "gradient of w (shape (4, 2)) is wrong at element (1, 0)" in message
    assert "NaN/inf in the gradient of w: 1 of 8 elements are NaN" in message
    message = failure(InfInputLin(), x, mode=mode, torch=False)
    assert "NaN/inf in the gradient of input 0 (inp): 1 of 12 elements are inf" in message
    report = check(NanLin(), x, mode=mode, torch=False, raise_on_failure=False)
    assert not report.passed and "FAILED" in str(report)


def test_diagnose_names_a_non_finite_gradient_ahead_of_every_pattern() -> None:
    expected = RNG.standard_normal((3, 3))
    for got in (_at(np.zeros((3, 3)), (0, 0), np.nan),  # otherwise "zeros"
                _at(2 * expected, (1, 2), np.inf),  # otherwise "constant factor"
                _at(expected.T, (2, 2), np.nan),  # otherwise "transposed"
                np.full((3, 3), np.nan)):
        text = diagnose(expected, got, name="w")
        assert text.startswith("NaN/inf in the gradient of w"), text
        assert "pattern" not in text and "factor" not in text and "zeros" not in text
    shaped = diagnose(np.ones(3), np.full((4, 3), np.nan), name="b")
    assert shaped.startswith("NaN/inf in the gradient of b") and "broadcast axis" in shaped
    unusable = diagnose(np.array([np.nan, 1.0]), np.array([0.0, 1.0]), name="x")
    assert unusable.startswith("could not check the gradient of x: NaN/inf in the true "
                               "gradient at 1 of 2 elements (first at (0,): nan)")
    assert "choose inputs where it is finite" in unusable


def test_a_passing_check_reports_real_error_figures_in_every_mode() -> None:
    square = poisoned_square(lambda g: g)
    for mode in ("full", "random"):
        report = check(square, X, mode=mode)
        figures = list(report.worst_error.values())
        assert figures and all(np.isfinite(f) and f < 1e-6 for f in figures), (mode, figures)
        assert "nan" not in str(report)


# ----------------------------------------------------------------------------- check: reference
class Log(cr.Function, register=False):
    @staticmethod
    def forward(ctx, x):
        ctx.x = x
        return np.log(x)

    @staticmethod
    def backward(ctx, grad):
        return grad / ctx.x


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_forward_that_is_nan_at_the_inputs_cannot_pass() -> None:
    for mode in ("full", "random"):
        message = failure(Log, -np.ones(3), mode=mode)
        assert "FAILED, nothing was checked: the forward gives NaN/inf at these inputs" in message
        assert "3 of 3 output elements" in message and "input 0 (x) holds NaN/inf" not in message
        assert "choose inputs where the forward is finite" in message.lower()
    message = failure(Log, np.array([1.0, np.nan, 2.0]))
    assert "input 0 (x) holds NaN/inf" in message


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_finite_differences_that_are_nan_next_to_the_inputs_cannot_pass() -> None:
    message = failure(Log, np.array([1.0, 1e-7, 2.0]))  # log(1e-7 - eps) is NaN
    assert "gradient of input 0 (x) (shape (3,)) could not be checked at element (1,)" in message
    assert "could not check the gradient of input 0 (x): NaN/inf in finite differences" in \
        message and "move the inputs away" in message


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_no_gradient_for_an_input_whose_slope_is_nan_cannot_pass() -> None:
    class Shift(cr.Function, register=False):
        @staticmethod
        def forward(ctx, x, y):
            return x + np.sqrt(y)

        @staticmethod
        def backward(ctx, grad):
            return grad, None  # no gradient for y, whose slope is NaN at 1e-9

    message = failure(Shift, np.ones(2), np.array([1e-9]))
    assert "input 1 (y)" in message and "could not be checked" in message


def test_a_backward_that_returns_no_numbers_is_a_failure_not_a_traceback() -> None:
    class Words(cr.Function, register=False):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, grad):
            return "two"

    message = failure(Words, np.ones(3))
    assert "backward gives a str for it, which is not an array of real numbers" in message


# ----------------------------------------------------------------------------- check: nothing
class Double(nn.Module):
    """No parameters."""

    def forward(self, inp):
        return inp * 2


@pytest.mark.parametrize("target, inputs, options, why", [
    (poisoned_square(lambda g: g), (np.array([1, 2, 3]),), {},
     "no input is a floating array"),
    (poisoned_square(lambda g: g), (X,), {"wrt": []}, "wrt=[] leaves out every input"),
    (Double(), (np.array([[1, 2]]),), {"torch": False},
     "no input is a floating array (integer inputs, like class labels, take no gradient), "
     "and Double has no parameters"),
    (Double(), (X,), {"wrt": [], "torch": False}, "and Double has no parameters"),
    (poisoned_square(lambda g: g), (np.zeros((0, 3)),), {}, "the output is empty"),
    (nn.Linear(3, 2), (np.zeros((0, 3)),), {}, "the output is empty (shape (0, 2))"),
])
def test_a_check_that_compares_nothing_fails(target, inputs, options, why) -> None:
    report = check(target, *inputs, raise_on_failure=False, **options)
    assert not report.passed and report.not_checked and not report.worst_error
    assert "FAILED, nothing was checked" in str(report) and why in str(report)
    assert "OK" not in str(report) and "agree" not in str(report)
    with pytest.raises(GradientCheckError, match="nothing was checked"):
        check(target, *inputs, **options)


def test_an_empty_float_input_among_others_is_noted_not_counted() -> None:
    class Pair(cr.Function, register=False):
        @staticmethod
        def forward(ctx, x, e):
            return x * 3 + e.sum()

        @staticmethod
        def backward(ctx, grad):
            return grad * 3, np.zeros((0,))

    report = check(Pair, np.ones(3), np.zeros((0,)))
    assert report.passed and list(report.worst_error) == ["input 0 (x)"]
    assert any("nothing to compare for input 1 (e) (shape (0,))" in n for n in report.notes)


def test_check_refuses_a_wrt_that_names_a_missing_input() -> None:
    square = poisoned_square(lambda g: g)
    with pytest.raises(IndexError, match=r"wrt=\[1\] names input 1, but there are only 1"):
        check(square, X, wrt=[1])  # once checked input 0 silently, as 1 % 1
    with pytest.raises(TypeError, match=r"wrt must be a list of input positions, e.g. wrt=\[0\]"):
        check(square, X, wrt=0)
    with pytest.raises(TypeError, match="give input positions as integers"):
        check(square, X, wrt=["0"])
    assert check(square, X, wrt=[-1]).passed


@pytest.mark.parametrize("option, value, error", [
    ("atol", np.inf, ValueError),  # would pass any finite gradient
    ("rtol", -1e-5, ValueError),
    ("atol", np.nan, ValueError),
    ("eps", 0.0, ValueError),  # divides by zero
    ("directions", 0, ValueError),  # random mode would compare nothing, and say OK
    ("rtol", "1e-5", TypeError),
])
def test_check_and_gradcheck_refuse_settings_that_would_pass_vacuously(option, value,
                                                                       error) -> None:
    square = poisoned_square(lambda g: g)
    with pytest.raises(error, match=f"check: {option} must be a"):
        check(square, X, mode="random", **{option: value})
    with pytest.raises(error, match=f"gradcheck: {option} must be a"):
        gradcheck(square.apply, [X], mode="random", **{option: value})


def test_a_complex_gradient_is_refused_not_stripped_of_its_imaginary_part() -> None:
    message = failure(poisoned_square(lambda g: g + 1j), X)
    assert "backward gives a ndarray for it, which is not an array of real numbers" in message


# ----------------------------------------------------------------------------- gradcheck
@pytest.mark.parametrize("poison", list(POISONS))
@pytest.mark.parametrize("mode", ["full", "random"])
def test_gradcheck_fails_a_nan_or_inf_gradient(poison: str, mode: str) -> None:
    with pytest.raises(GradcheckError) as error:
        gradcheck(poisoned_square(POISONS[poison]).apply, [X], mode=mode)
    message = str(error.value)
    assert message.startswith("NaN/inf in the gradient of input 0 (shape (3, 4))")
    assert ("12 of 12" if poison == "all NaN" else "1 of 12") in message


def test_gradcheck_fails_a_nan_gradient_from_a_hand_written_bwd() -> None:
    with pytest.raises(GradcheckError, match="NaN/inf in the gradient of input 0"):
        gradcheck(InfInputLin(), [RNG.standard_normal((3, 4))])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_gradcheck_cannot_pass_where_the_forward_is_not_finite() -> None:
    for mode in ("full", "random"):
        with pytest.raises(GradcheckError, match="could not be made: the forward gives NaN/inf"):
            gradcheck(Log.apply, [-np.ones(3)], mode=mode)
        with pytest.raises(GradcheckError, match="could not check the gradient of input 0"):
            gradcheck(Log.apply, [np.array([1.0, 1e-7, 2.0])], mode=mode)


@pytest.mark.parametrize("inputs, options, why", [
    ([np.array([1, 2, 3])], {}, "no input is a floating array"),
    ([X], {"wrt": []}, "wrt=[] names no input"),
    ([np.zeros((0, 3))], {}, "every input it was to check is empty"),
])
def test_gradcheck_that_compares_nothing_fails(inputs, options, why) -> None:
    with pytest.raises(GradcheckError) as error:
        gradcheck(lambda t: t * 2, inputs, **options)
    assert "nothing was checked" in str(error.value) and why in str(error.value)


def test_gradcheck_refuses_bad_wrt_and_mode_and_reports_real_figures() -> None:
    square = poisoned_square(lambda g: g).apply
    with pytest.raises(IndexError, match="names input 2"):
        gradcheck(square, [X], wrt=[2])
    with pytest.raises(TypeError, match="not a floating array"):
        gradcheck(lambda a, b: a * 2, [X, np.array([1])], wrt=[1])
    with pytest.raises(ValueError, match="mode must be"):
        gradcheck(square, [X], mode="fast")
    for mode in ("full", "random"):
        worst = gradcheck(square, [X], mode=mode).worst_error
        assert worst[0] is not None and np.isfinite(worst[0]) and worst[0] < 1e-6


# ----------------------------------------------------------------------------- parity
def test_parity_flags_a_layer_whose_backward_gives_nan() -> None:
    torch = pytest.importorskip("torch")
    from chainrule.check.parity import parity_report, register_converter, unregister_converter

    class NanBackward(cr.Function, register=False):
        @staticmethod
        def forward(ctx, x):
            return x

        @staticmethod
        def backward(ctx, grad):
            return _at(grad, (0, 0), np.nan)

    class NanRelu(nn.ReLU):
        def forward(self, x):
            return NanBackward.apply(super().forward(x))

    register_converter(NanRelu, torch.nn.ReLU, lambda layer, children: torch.nn.ReLU())
    try:
        model = nn.Sequential(nn.Linear(6, 5), NanRelu(), nn.Linear(5, 3))
        report = parity_report(model, RNG.standard_normal((4, 6)))
    finally:
        unregister_converter(NanRelu)
    assert not report.ok and report.flagged == ["1"]  # not layer 0, which only inherits it
    text = str(report)
    assert "NaN/inf in chainrule's local input grad at 1: 1 of 20 elements are NaN" in text
    assert "FAILED: disagrees with torch on identical inputs: 1 (NanRelu)" in text
    assert "OK" not in text


def test_parity_on_an_empty_batch_or_nan_inputs_does_not_say_agree() -> None:
    pytest.importorskip("torch")
    from chainrule.check.parity import parity_report

    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU())
    report = parity_report(model, np.zeros((0, 6)))
    assert not report.ok and "FAILED: nothing was compared: the model's output is empty" in \
        str(report) and "OK" not in str(report)
    with pytest.raises(ValueError, match="parity_report: atol must be a finite number"):
        parity_report(model, RNG.standard_normal((4, 6)), atol=np.inf)
    x = RNG.standard_normal((4, 6))
    x[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"input 0 holds NaN/inf at 1 of 24 elements \(first "
                                         r"at \(1, 2\)\)"):
        parity_report(model, x)


def test_parity_cannot_pass_where_torch_gives_nan_too() -> None:
    pytest.importorskip("torch")
    from chainrule.check.parity import parity_report

    model = nn.Sequential(nn.Linear(6, 5))
    model[0].weight.data[0, 0] = np.nan
    report = parity_report(model, RNG.standard_normal((4, 6)))
    assert not report.ok and report.flagged == []
    text = str(report)
    assert "could not compare the output at 0: torch gives NaN at 4 of 20 elements" in text
    assert "FAILED: torch gives NaN as well" in text


# ----------------------------------------------------------------------------- the CLI
def test_chainrule_check_fails_a_nan_gradient_with_the_diagnosis(tmp_path, capsys) -> None:
    from chainrule.cli import main

    path = tmp_path / "nan_layer_for_check.py"
    path.write_text(textwrap.dedent("""
        import numpy as np
        import chainrule as cr
        from chainrule import nn

        class NanLin(nn.Module):
            def __init__(self):
                self.w = cr.tensor(np.random.default_rng(0).standard_normal((4, 2)),
                                   requires_grad=True)

            def forward(self, inp):
                return inp @ self.w

            def bwd(self, out, inp):
                inp.g = out.g @ self.w.t()
                g = (inp.t() @ out.g).data.copy()
                g[1, 0] = np.nan
                self.w.g = g
        """))
    assert main(["check", f"{path}:NanLin", "--input", "3,4"]) == 1
    out = capsys.readouterr().out
    assert "check NanLin: FAILED" in out
    assert "NaN/inf in the gradient of w: 1 of 8 elements are NaN (first at (1, 0)" in out
    assert "OK" not in out


def test_the_two_path_cross_check_catches_a_nan_from_bwd() -> None:
    from chainrule.check import GradientMismatchError

    class Scale(nn.Module):
        cross_check = True

        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(np.ones(3))

        def forward(self, x):
            return x * self.w

        def bwd(self, out, x):
            x.g = out.g * self.w
            grad = out.g.data.sum(0) * 0 + x.data.sum(0)
            grad[1] = np.nan  # one broken element
            self.w.g = cr.tensor(grad)

    layer = Scale()
    with pytest.raises(GradientMismatchError, match=r"disagree on w.g: NaN/inf in the gradient "
                                                    r"of w: 1 of 3"):
        layer(cr.randn(4, 3, dtype="float64")).sum().backward()


def test_gradcheck_of_a_closure_over_a_float32_layer_says_how_to_check_it() -> None:
    from chainrule.engine.function import DtypeMismatchError

    layer = nn.Linear(3, 2)
    with pytest.raises(DtypeMismatchError, match="gradcheck runs in float64: pass the Module "
                                                 "itself"):
        gradcheck(lambda x: layer(x), [np.random.default_rng(0).standard_normal((4, 3))])
    assert gradcheck(layer, [np.random.default_rng(0).standard_normal((4, 3))]).worst_error[0] \
        is not None


def test_check_names_a_forward_that_forgot_return() -> None:
    class Forgets(cr.Function):
        @staticmethod
        def forward(ctx, x):
            x * 2  # noqa: B018 - the mistake under test

        @staticmethod
        def backward(ctx, grad):
            return grad

    with pytest.raises(TypeError, match=r"Forgets.forward returned None.*forget `return`"):
        check(Forgets, np.ones(3))


@pytest.mark.parametrize("run", [lambda: check(nn.ReLU(), np.ones(3), rtol=1.0),
                                 lambda: gradcheck(cr.relu, [np.ones(3)], rtol=1e9)])
def test_a_relative_tolerance_that_passes_anything_is_refused(run) -> None:
    with pytest.raises(ValueError, match="rtol must be below 1"):
        run()
