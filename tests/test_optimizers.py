"""Tests of theano_lstm.optimizers.

Compiling is the slow part here, so each rule gets *one* compiled toy problem
(cached for the session) that several tests reuse, resetting every updated
shared variable first:

* ``x`` (float64, static shape) and ``z`` (float32, no static shape) minimise
  the toy objective ``sum([0.1, 0.2, 0.3] * X**2)`` with every hyper-parameter
  given as a float64 *shared* scalar (gradients passed as a list);
* ``w`` (float32) minimises the same objective with Python-number
  hyper-parameters (cost passed, gradient taken by the rule);
* ``y`` (float64) minimises the Rosenbrock function.

The NumPy reference below is written from the papers' equations, not from the
library's code.
"""

from __future__ import annotations

import functools
from collections import OrderedDict

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.testing import assert_allclose, assert_array_equal

import theano_lstm
from theano_lstm import backend, optimizers
from theano_lstm.optimizers import (
    METHODS,
    adadelta,
    adagrad,
    adam,
    all_finite,
    clip_elementwise,
    clip_global_norm,
    clip_norm_per_param,
    create_optimization_updates,
    momentum,
    rmsprop,
    sgd,
    skip_non_finite,
)

RULES = list(METHODS)

# ----------------------------------------------------------- NumPy reference


def reference_step(rule, x, g, state, h):
    """One step of ``rule`` from the published equations (float64).

    ``state`` is a dict of accumulators, updated in place; ``h`` the
    hyper-parameters.  Returns the new parameters.
    """
    zeros = np.zeros_like(x)
    if rule == "sgd":  # Robbins & Monro
        return x - h["lr"] * g
    if rule == "momentum":  # Polyak's heavy ball, Sutskever et al. (2013) eq. 1-2
        state["v"] = h["momentum"] * state.get("v", zeros) - h["lr"] * g
        return x + state["v"]
    if rule == "nesterov_momentum":  # Bengio et al. (2013) eq. 7 with the new velocity
        state["v"] = h["momentum"] * state.get("v", zeros) - h["lr"] * g
        return x + h["momentum"] * state["v"] - h["lr"] * g
    if rule == "adagrad":  # Duchi et al. (2011), diagonal form
        state["G"] = state.get("G", zeros) + g * g
        return x - h["lr"] * g / np.sqrt(state["G"] + h["eps"])
    if rule == "adadelta":  # Zeiler (2012), Algorithm 1; RMS[y] = sqrt(E[y^2] + eps)
        rho, eps = h["rho"], h["eps"]
        state["Eg2"] = rho * state.get("Eg2", zeros) + (1 - rho) * g * g
        rms_dx_prev = np.sqrt(state.get("Edx2", zeros) + eps)
        rms_g = np.sqrt(state["Eg2"] + eps)
        dx = -(rms_dx_prev / rms_g) * g
        state["Edx2"] = rho * state.get("Edx2", zeros) + (1 - rho) * dx * dx
        return x + h["lr"] * dx
    if rule == "rmsprop":  # Tieleman & Hinton (2012), the GRU tutorial's form
        state["ms"] = h["rho"] * state.get("ms", zeros) + (1 - h["rho"]) * g * g
        return x - h["lr"] * g / np.sqrt(state["ms"] + h["eps"])
    if rule == "adam":  # Kingma & Ba (2015), Algorithm 1
        b1, b2 = h["beta1"], h["beta2"]
        t = state["t"] = state.get("t", 0) + 1
        state["m"] = b1 * state.get("m", zeros) + (1 - b1) * g
        state["v"] = b2 * state.get("v", zeros) + (1 - b2) * g * g
        m_hat = state["m"] / (1 - b1**t)
        v_hat = state["v"] / (1 - b2**t)
        return x - h["lr"] * m_hat / (np.sqrt(v_hat) + h["eps"])
    raise AssertionError(rule)


def reference_trajectory(rule, x0, grad, hyper, steps, lrs=None):
    """Parameters after each of ``steps`` steps (``lrs``: a learning rate per step)."""
    x, state, out = np.array(x0, dtype=np.float64), {}, []
    for k in range(steps):
        h = dict(hyper, lr=lrs[k]) if lrs is not None else hyper
        x = reference_step(rule, x, grad(x), state, h)
        out.append(x)
    return out


TOY_C = np.array([0.1, 0.2, 0.3])
TOY_X0 = np.array([1.0, -2.0, 0.5])
ROSEN_X0 = np.array([-1.2, 1.0])


def toy(x):
    return float(np.sum(TOY_C * x**2))


def toy_grad(x):
    return 2 * TOY_C * x


def rosen(x):
    return float((1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2)


# Non-default values, and eps large enough to matter, so a hyper-parameter
# that is dropped or swapped shows up in the comparison.
TOY_HYPER = {
    "sgd": dict(lr=0.5),
    "momentum": dict(lr=0.3, momentum=0.8),
    "nesterov_momentum": dict(lr=0.3, momentum=0.8),
    "adagrad": dict(lr=0.5, eps=1e-3),
    "adadelta": dict(lr=1.0, rho=0.85, eps=1e-2),
    "rmsprop": dict(lr=0.05, rho=0.85, eps=1e-3),
    "adam": dict(lr=0.1, beta1=0.8, beta2=0.99, eps=1e-3),
}
ROSEN_HYPER = {
    "sgd": dict(lr=2e-3),
    "momentum": dict(lr=2e-4, momentum=0.95),
    "nesterov_momentum": dict(lr=5e-4, momentum=0.9),
    "adagrad": dict(lr=0.5),
    "adadelta": dict(rho=0.95, eps=1e-4),
    "rmsprop": dict(lr=1e-2),
    "adam": dict(lr=0.1),
}


# ------------------------------------------------------------ toy problems


class ToyProblem:
    """One compiled step of ``rule`` on the toy objective and the Rosenbrock function."""

    def __init__(self, rule):
        rule_fn = getattr(optimizers, rule)
        self.x = backend.shared(TOY_X0, name="x", dtype="float64")
        self.z = pytensor.shared(TOY_X0.astype("float32"), name="z")
        self.w = pytensor.shared(TOY_X0.astype("float32"), name="w")
        self.y = backend.shared(ROSEN_X0, name="y", dtype="float64")
        self.hyper = {k: pytensor.shared(np.float64(v), name=k) for k, v in TOY_HYPER[rule].items()}

        def toy_cost(v):
            return pt.sum(pt.constant(TOY_C.astype(v.dtype)) * v**2)

        y = self.y
        rosen_cost = (1 - y[0]) ** 2 + 100 * (y[1] - y[0] ** 2) ** 2
        gx, gz = pytensor.grad(toy_cost(self.x) + toy_cost(self.z), [self.x, self.z])
        self.updates = OrderedDict()
        self.updates.update(rule_fn([gx, gz], [self.x, self.z], **self.hyper))
        self.updates.update(rule_fn(toy_cost(self.w), [self.w], **TOY_HYPER[rule]))
        self.updates.update(rule_fn(pytensor.grad(rosen_cost, [y]), [y], **ROSEN_HYPER[rule]))
        self.initial = {var: var.get_value().copy() for var in self.updates}
        self.fn = backend.function([], [], updates=self.updates)
        self.rule = rule

    def reset(self):
        for var, value in self.initial.items():
            var.set_value(value.copy())
        for name, var in self.hyper.items():
            var.set_value(np.float64(TOY_HYPER[self.rule][name]))


@functools.lru_cache(maxsize=None)
def toy_problem(rule) -> ToyProblem:
    return ToyProblem(rule)


@pytest.mark.parametrize("rule", RULES)
def test_rule_matches_numpy_reference(rule):
    prob = toy_problem(rule)
    prob.reset()
    expected = reference_trajectory(rule, TOY_X0, toy_grad, TOY_HYPER[rule], steps=10)
    assert not np.allclose(expected[-1], TOY_X0, rtol=0.05)
    for k in range(10):
        prob.fn()
        assert_allclose(prob.x.get_value(), expected[k], rtol=1e-10, atol=1e-12, err_msg=f"step {k + 1}")
        assert_allclose(prob.z.get_value(), expected[k], rtol=1e-4, atol=1e-6, err_msg=f"z, step {k + 1}")
        assert_allclose(prob.w.get_value(), expected[k], rtol=1e-4, atol=1e-6, err_msg=f"w, step {k + 1}")


@pytest.mark.parametrize("rule", RULES)
def test_float32_parameters_stay_float32(rule):
    # floatX is float64 here and z's hyper-parameters are float64 shared scalars
    prob = toy_problem(rule)
    prob.reset()
    prob.fn()
    prob.fn()
    float32_vars = [v for v in prob.updates if v.name.split(".")[0] in ("z", "w")]
    assert len(float32_vars) == len(prob.updates) // 2  # z and w, accumulators included
    for var in float32_vars:
        assert prob.updates[var].dtype == "float32", var.name
        assert var.get_value().dtype == np.float32, var.name
    for var in prob.updates:
        if var.name.split(".")[0] in ("x", "y"):
            assert var.get_value().dtype == np.float64, var.name


@pytest.mark.parametrize("rule", RULES)
def test_shared_lr_schedule_needs_no_recompilation(rule):
    prob = toy_problem(rule)
    prob.reset()
    fn = prob.fn
    hyper = TOY_HYPER[rule]
    lrs = [hyper["lr"] * 0.7**k for k in range(10)]
    scheduled = reference_trajectory(rule, TOY_X0, toy_grad, hyper, 10, lrs=lrs)
    constant = reference_trajectory(rule, TOY_X0, toy_grad, hyper, 10)
    assert not np.allclose(scheduled[-1], constant[-1], rtol=1e-3)
    for k in range(10):
        prob.hyper["lr"].set_value(lrs[k])
        fn()
        assert_allclose(prob.x.get_value(), scheduled[k], rtol=1e-10, atol=1e-12, err_msg=f"step {k + 1}")
        # w's learning rate is a Python number: unaffected
        assert_allclose(prob.w.get_value(), constant[k], rtol=1e-4, atol=1e-6, err_msg=f"w, step {k + 1}")
    assert prob.fn is fn


@pytest.mark.parametrize("rule", RULES)
def test_rule_converges_on_parabola_and_rosenbrock(rule):
    prob = toy_problem(rule)
    prob.reset()
    for _ in range(300):
        prob.fn()
    assert toy(prob.x.get_value()) < 1e-8 * toy(TOY_X0)
    assert toy(prob.w.get_value().astype(np.float64)) < 1e-6 * toy(TOY_X0)
    assert rosen(prob.y.get_value()) < 0.15 * rosen(ROSEN_X0)


@pytest.mark.parametrize("rule", RULES)
def test_accumulators_are_named_after_their_parameter(rule):
    prob = toy_problem(rule)
    names = [v.name for v in prob.updates if v.name.startswith("x")]
    state = {
        "sgd": [],
        "momentum": ["momentum_velocity"],
        "nesterov_momentum": ["nesterov_velocity"],
        "adagrad": ["adagrad_gsum"],
        "adadelta": ["adadelta_gsum", "adadelta_xsum"],
        "rmsprop": ["rmsprop_cache"],
        "adam": ["adam_m", "adam_v", "adam_t"],
    }[rule]
    assert names == [f"x.{s}" for s in state] + ["x"]
    # accumulators are new shared variables with the parameter's (static) shape
    for var in prob.updates:
        if var.name.startswith("x.") and var.name != "x.adam_t":
            assert var.type.shape == (3,)
            assert var not in (prob.x, prob.y, prob.z, prob.w)


def test_unnamed_parameter_gets_positional_name():
    p = pytensor.shared(np.zeros(2))
    assert [v.name for v in adagrad((p**2).sum(), [p])] == ["params[0].adagrad_gsum", None]


# ---------------------------------------------------------------- clipping


@functools.lru_cache(maxsize=None)
def clip_function():
    a = pt.dvector("a")
    b = pt.fmatrix("b")
    bound = pt.dscalar("bound")
    elementwise = clip_elementwise([a, b], bound)
    per_param = clip_norm_per_param([a, b], bound)
    global_, norm = clip_global_norm([a, b], bound, return_norm=True)
    fn = backend.function([a, b, bound], elementwise + per_param + global_ + [norm])

    def run(av, bv, bound_value):
        out = fn(np.asarray(av, dtype="float64"), np.asarray(bv, dtype="float32"), bound_value)
        return out[0:2], out[2:4], out[4:6], out[6]

    return run


def test_clip_huge_bound_changes_nothing(rng):
    a = rng.normal(size=3) * 100
    b = (rng.normal(size=(2, 2)) * 100).astype("float32")
    for pair in clip_function()(a, b, 1e30)[:3]:
        assert_array_equal(pair[0], a)
        assert_array_equal(pair[1], b)
        assert pair[1].dtype == np.float32


def test_clip_elementwise_bound_one():
    (ca, cb), _, _, _ = clip_function()([500.0, 5.0], [[-500.0, 0.5], [2.0, -0.25]], 1.0)
    assert_array_equal(ca, [1.0, 1.0])
    assert_array_equal(cb, [[-1.0, 0.5], [1.0, -0.25]])


def test_clip_norm_per_param_rescales_each_gradient_alone():
    _, (ca, cb), _, _ = clip_function()([3.0, 4.0], [[0.5, 0.0], [0.0, 0.0]], 1.0)
    assert_allclose(ca, [0.6, 0.8], rtol=1e-12)
    assert_array_equal(cb, [[0.5, 0.0], [0.0, 0.0]])  # norm 0.5 <= 1: untouched
    _, (za, zb), _, _ = clip_function()([0.0, 0.0], np.zeros((2, 2)), 1.0)  # zero norm: no NaN
    assert_array_equal(za, [0.0, 0.0])
    assert_array_equal(zb, np.zeros((2, 2)))


def test_clip_global_norm_matches_numpy(rng):
    a = rng.normal(size=3)
    b = rng.normal(size=(2, 2)).astype("float32")
    norm = np.sqrt(np.sum(a**2) + np.sum(b.astype(np.float64) ** 2))
    bound = 0.4 * norm
    _, _, (ga, gb), got_norm = clip_function()(a, b, bound)
    assert_allclose(got_norm, norm, rtol=1e-12)
    assert_allclose(ga, a * bound / norm, rtol=1e-12)
    assert_allclose(gb, b * bound / norm, rtol=1e-6)
    assert gb.dtype == np.float32
    # the direction of the whole update is kept, unlike per-parameter clipping
    assert_allclose(np.sqrt(np.sum(ga**2) + np.sum(gb.astype(np.float64) ** 2)), bound, rtol=1e-6)


finite_values = st.floats(-1e6, 1e6, allow_nan=False, width=32)


@settings(max_examples=40, deadline=None)
@given(
    a=hnp.arrays(np.float64, 3, elements=finite_values),
    b=hnp.arrays(np.float32, (2, 2), elements=finite_values),
    bound=st.floats(1e-3, 1e3),
)
def test_clipping_bounds_hold_for_any_gradients(a, b, bound):
    (ea, eb), (pa, pb), (ga, gb), norm = clip_function()(a, b, bound)
    assert np.all(np.abs(ea) <= bound) and np.all(np.abs(eb) <= np.float32(bound) * (1 + 1e-6))
    for clipped, raw in ((pa, a), (pb, b)):
        n = np.sqrt(np.sum(raw.astype(np.float64) ** 2))
        assert np.sqrt(np.sum(clipped.astype(np.float64) ** 2)) <= bound * (1 + 1e-6)
        if n <= bound * (1 - 1e-6):  # within the bound: untouched
            assert_array_equal(clipped, raw)
    total = np.sqrt(np.sum(ga**2) + np.sum(gb.astype(np.float64) ** 2))
    assert total <= bound * (1 + 1e-6)
    scale = min(1.0, bound / norm) if norm > 0 else 1.0
    assert_allclose(ga, a * scale, rtol=1e-12, atol=1e-300)
    assert_allclose(gb, b * scale, rtol=1e-6, atol=1e-30)


def test_clipping_composes_with_a_rule():
    w = backend.shared(np.zeros(2), name="w")
    g = [pt.constant(np.array([500.0, 5.0]))]
    updates = sgd(clip_elementwise(g, 1.0), [w], lr=1.0)
    fn = backend.function([], [], updates=updates)
    fn()
    assert_array_equal(w.get_value(), [-1.0, -1.0])


# ------------------------------------------------------- non-finite guard


@functools.lru_cache(maxsize=None)
def guarded_problem():
    w = backend.shared(np.array([1.0, -1.0]), name="w")
    u = backend.shared(np.array([0.5, 2.0]), name="u")
    x = pt.dvector("x")
    raw = pytensor.grad((w * x).sum() + (w**2).sum(), [w])
    # w: adam on clipped gradients, guarded by the raw gradients
    upd_w, finite_w = skip_non_finite(adam(clip_elementwise(raw, 1.0), [w], lr=0.1), raw)
    # u: sgd guarded by its own new values (the default)
    upd_u, finite_u = skip_non_finite(sgd(((u * x) ** 2).sum(), [u], lr=0.1))
    updates = OrderedDict(upd_w)
    updates.update(upd_u)
    fn = backend.function([x], [finite_w, finite_u], updates=updates)
    initial = {var: var.get_value().copy() for var in updates}
    return fn, w, u, updates, initial


def test_non_finite_step_leaves_every_variable_intact():
    fn, w, u, updates, initial = guarded_problem()
    for var, value in initial.items():
        var.set_value(value.copy())
    good = np.array([0.3, -0.7])
    assert [bool(f) for f in fn(good)] == [True, True]
    after_good = {var: var.get_value().copy() for var in updates}
    assert not np.array_equal(after_good[w], initial[w])
    assert not np.array_equal(after_good[u], initial[u])
    for bad in ([np.nan, 1.0], [np.inf, 1.0], [1.0, -np.inf]):
        assert [bool(f) for f in fn(np.array(bad))] == [False, False], bad
        for var in updates:
            assert_array_equal(var.get_value(), after_good[var], err_msg=f"{var.name} after {bad}")
    fn(good)
    # the skipped steps did not count: w followed two plain Adam steps
    expected = reference_trajectory(
        "adam", [1.0, -1.0], lambda p: np.clip(good + 2 * p, -1, 1),
        dict(lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8), steps=2,
    )
    assert_allclose(w.get_value(), expected[-1], rtol=1e-12)
    t = next(var for var in updates if var.name == "w.adam_t")
    assert t.get_value() == 2


def test_skip_non_finite_keeps_random_generator_updates():
    w = backend.shared(np.zeros(2), name="w")
    gen = pytensor.shared(np.random.default_rng(0), name="gen")
    next_gen, noise = pt.random.normal(rng=gen, return_next_rng=True)
    updates = sgd((w**2).sum() + noise, [w])
    updates[gen] = next_gen
    guarded, finite = skip_non_finite(updates)
    assert list(guarded) == [w, gen]
    assert guarded[gen] is next_gen
    assert finite.dtype == "bool"


def test_skip_non_finite_accepts_a_list_of_pairs():
    w = backend.shared(np.zeros(2), name="w")
    guarded, _ = skip_non_finite([(w, w + 1.0)], grads=[w])
    assert list(guarded) == [w]


# ----------------------------------------------------- 2014 compatibility


@pytest.mark.parametrize("method", RULES)
def test_create_optimization_updates_returns_the_2014_tuple(method):
    a = backend.shared(np.ones((2, 3)), name="a")
    b = backend.shared(np.ones(3), name="b")
    cost = (a**2).sum() + (b**2).sum()
    result = create_optimization_updates(cost, [a, b], method=method)
    assert isinstance(result, tuple) and len(result) == 5
    updates, gsums, xsums, lr, max_norm = result
    assert isinstance(updates, OrderedDict)
    assert list(updates)[-1] is b and a in updates
    n_state = {"sgd": 0, "adadelta": 2, "adam": 3}.get(method, 1)
    assert len(updates) == 2 * (1 + n_state)
    assert len(gsums) == len(xsums) == 2
    for p, g, x in zip([a, b], gsums, xsums):
        if n_state == 0:
            assert g is None
        else:
            assert g in updates and g.name.startswith(p.name + ".")
            assert g.get_value().shape == p.get_value().shape
        if n_state >= 2:
            assert x in updates and x.name.startswith(p.name + ".")
        else:
            assert x is None
    assert isinstance(lr, pytensor.compile.SharedVariable)
    # 2014: for adadelta the returned "lr" is the shared rho
    assert float(lr.get_value()) == (0.95 if method == "adadelta" else 0.01)
    assert isinstance(max_norm, pytensor.compile.SharedVariable)
    assert float(max_norm.get_value()) == 5.0


@pytest.mark.parametrize("off", [None, False])
def test_create_optimization_updates_without_clipping(off):
    a = backend.shared(np.ones(3), name="a")
    *_, max_norm = create_optimization_updates((a**2).sum(), [a], max_norm=off, method="sgd")
    assert max_norm is off


def test_create_optimization_updates_matches_2014_equations():
    """adadelta, adagrad and sgd with the 2014 per-parameter clipping (on), sharing one updates dict."""
    p_ad = backend.shared(TOY_X0, name="p_ad")
    p_ag = backend.shared(TOY_X0, name="p_ag")
    p_sgd = backend.shared(TOY_X0, name="p_sgd")

    def cost(p):
        return pt.sum(pt.constant(TOY_C) * p**2)

    updates, gs_ad, xs_ad, rho, mn_ad = create_optimization_updates(cost(p_ad), [p_ad], max_norm=0.3, eps=1e-4)
    same, gs_ag, xs_ag, lr_ag, mn_ag = create_optimization_updates(
        None, [p_ag], updates=updates, max_norm=0.3, lr=0.1, eps=1e-4, method="adagrad",
        gradients=pytensor.grad(cost(p_ag), [p_ag]),
    )
    assert same is updates  # extended in place, as in 2014
    _, _, _, lr_sgd, mn_sgd = create_optimization_updates(
        cost(p_sgd), [p_sgd], updates=updates, max_norm=0.3, lr=0.5, method="sgd"
    )
    assert list(updates) == [gs_ad[0], xs_ad[0], p_ad, gs_ag[0], p_ag, p_sgd]
    fn = backend.function([], [], updates=updates)

    def clip(g, c, eps):
        n = np.sqrt(np.sum(g**2))
        return g * min(n, c) / (n + eps)

    # the 2014 code, written out: per-parameter clipping, then the rule
    x = {k: TOY_X0.copy() for k in ("ad", "ag", "sgd")}
    gsum_ad, xsum_ad, gsum_ag = np.zeros(3), np.zeros(3), np.zeros(3)
    lr_ag_v, lr_sgd_v, c = 0.1, 0.5, 0.3
    for step in range(8):
        if step == 4:  # the returned shared scalars drive the compiled function
            lr_ag_v, lr_sgd_v, c = 0.05, 0.2, 0.2
            lr_ag.set_value(lr_ag_v)
            lr_sgd.set_value(lr_sgd_v)
            for m in (mn_ad, mn_ag, mn_sgd):
                m.set_value(c)
        g = clip(toy_grad(x["ad"]), c, 1e-4)
        gsum_ad = 0.95 * gsum_ad + 0.05 * g**2
        d = -np.sqrt((xsum_ad + 1e-4) / (gsum_ad + 1e-4)) * g
        xsum_ad = 0.95 * xsum_ad + 0.05 * d**2
        x["ad"] = x["ad"] + d
        g = clip(toy_grad(x["ag"]), c, 1e-4)
        gsum_ag = gsum_ag + g**2
        x["ag"] = x["ag"] - lr_ag_v * g / np.sqrt(gsum_ag + 1e-4)
        x["sgd"] = x["sgd"] - lr_sgd_v * clip(toy_grad(x["sgd"]), c, 1e-6)
        fn()
        assert_allclose(p_ad.get_value(), x["ad"], rtol=1e-10, err_msg=f"adadelta, step {step + 1}")
        assert_allclose(p_ag.get_value(), x["ag"], rtol=1e-10, err_msg=f"adagrad, step {step + 1}")
        assert_allclose(p_sgd.get_value(), x["sgd"], rtol=1e-10, err_msg=f"sgd, step {step + 1}")
    assert_allclose(gs_ad[0].get_value(), gsum_ad, rtol=1e-10)
    assert_allclose(xs_ad[0].get_value(), xsum_ad, rtol=1e-10)
    assert float(rho.get_value()) == 0.95


def test_create_optimization_updates_unknown_method_raises():
    a = backend.shared(np.ones(3), name="a")
    with pytest.raises(ValueError, match=r"unknown optimization method 'adamax'; expected one of \['sgd'"):
        create_optimization_updates((a**2).sum(), [a], method="adamax")
    with pytest.raises(ValueError, match="unknown optimization method None"):
        create_optimization_updates((a**2).sum(), [a], method=None)


def test_create_optimization_updates_bad_arguments():
    a = backend.shared(np.ones(3), name="a")
    cost = (a**2).sum()
    with pytest.raises(TypeError, match="needs a cost or a list of gradients, received neither"):
        create_optimization_updates(None, [a])
    with pytest.raises(ValueError, match=r"max_norm must be in \(0, inf\], received 0"):
        create_optimization_updates(cost, [a], max_norm=0)
    with pytest.raises(ValueError, match="updates already contains an update for parameter 'a'"):
        create_optimization_updates(cost, [a], updates={a: a + 1})
    with pytest.raises(ValueError, match=r"rho must be in \[0, 1\), received 1.5"):
        create_optimization_updates(cost, [a], rho=1.5)
    my_lr = pytensor.shared(np.float64(0.3), name="my_lr")
    my_max_norm = pytensor.shared(np.float64(2.0), name="my_max_norm")
    _, _, _, lr, max_norm = create_optimization_updates(cost, [a], lr=my_lr, max_norm=my_max_norm, method="adam")
    assert lr is my_lr and max_norm is my_max_norm  # a given shared scalar is used, not copied
    other = backend.shared(np.ones(2), name="other")
    updates, *_ = create_optimization_updates(cost, [a], updates=[(other, other * 2)], method="sgd")
    assert list(updates) == [other, a]


# ------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("rule", RULES)
def test_every_rule_validates_its_inputs(rule):
    rule_fn = getattr(optimizers, rule)
    a = backend.shared(np.ones(3), name="a")
    b = backend.shared(np.ones((2, 2)), name="b")
    cost = (a**2).sum()
    with pytest.raises(TypeError, match="wrap a single parameter in a list"):
        rule_fn(cost, a)
    with pytest.raises(TypeError, match=r"params\[1\] must be a shared variable .* received TensorVariable 'v'"):
        rule_fn(cost, [a, pt.vector("v")])
    with pytest.raises(ValueError, match="received 1 gradients for 2 parameters; expected one gradient per parameter"):
        rule_fn([a * 2], [a, b])
    with pytest.raises(ValueError, match="lr must be in \\[0, inf\\], received -0.1"):
        rule_fn(cost, [a], lr=-0.1)
    with pytest.raises(ValueError, match="lr must be a scalar, received a tensor with 1 dimensions"):
        rule_fn(cost, [a], lr=a)
    with pytest.raises(TypeError, match="lr must be a number or a scalar shared variable, received str"):
        rule_fn(cost, [a], lr="0.1")


def test_bad_params():
    a = backend.shared(np.ones(3), name="a")
    i = pytensor.shared(np.arange(3), name="i")
    cost = (a**2).sum()
    with pytest.raises(ValueError, match="params is empty"):
        sgd(cost, [])
    message = r"params\[0\] \('i'\) must be a float tensor to be trained, received dtype int64"
    with pytest.raises(TypeError, match=message):
        sgd(cost, [i])
    with pytest.raises(ValueError, match=r"params\[1\] \('a'\) is the same shared variable as params\[0\]"):
        sgd(cost, [a, a])
    with pytest.raises(TypeError, match="params must be a list of shared variables, received int"):
        sgd(cost, 3)


def test_bad_cost_or_gradients():
    a = backend.shared(np.ones(3), name="a")
    b = backend.shared(np.ones((2, 2)), name="b")
    with pytest.raises(ValueError, match="the cost must be a scalar, received a tensor with 1 dimensions"):
        adam(a**2, [a])
    with pytest.raises(TypeError, match="expects a scalar cost tensor or a list of gradients .* received float"):
        adam(3.0, [a])
    with pytest.raises(ValueError, match="gradient 1 has 1 dimensions but parameter 'b' has 2"):
        adam([a, a], [a, b])
    with pytest.raises(ValueError, match=r"gradient 0 has shape \(2,\) but parameter 'a' has shape \(3,\)"):
        adam([pt.specify_shape(pt.vector(), (2,))], [a])
    with pytest.raises(TypeError, match="gradient 0 must be a float tensor, received dtype int64"):
        adam([pt.lvector()], [a])


def test_bad_hyper_parameters():
    a = backend.shared(np.ones(3), name="a")
    cost = (a**2).sum()
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\), received 1.0"):
        momentum(cost, [a], momentum=1.0)
    with pytest.raises(ValueError, match=r"beta2 must be in \[0, 1\), received -0.5"):
        adam(cost, [a], beta2=-0.5)
    with pytest.raises(ValueError, match=r"eps must be in \(0, inf\], received 0"):
        adadelta(cost, [a], eps=0)
    with pytest.raises(ValueError, match=r"rho must be in \[0, 1\), received nan"):
        rmsprop(cost, [a], rho=float("nan"))
    with pytest.raises(TypeError, match="lr must be a number or a scalar shared variable, received bool"):
        sgd(cost, [a], lr=True)


def test_bad_clipping_arguments():
    g = pt.vector("g")
    with pytest.raises(ValueError, match=r"bound must be in \(0, inf\], received 0"):
        clip_elementwise([g], 0)
    message = "clip_elementwise expects a list of gradient tensors, received TensorVariable 'g'"
    with pytest.raises(TypeError, match=message):
        clip_elementwise(g, 1.0)
    with pytest.raises(ValueError, match=r"max_norm must be in \(0, inf\], received -1"):
        clip_norm_per_param([g], -1)
    with pytest.raises(ValueError, match="clip_global_norm received an empty list"):
        clip_global_norm([], 1.0)
    with pytest.raises(TypeError, match="gradient 0 must be a float tensor, received dtype int64"):
        clip_global_norm([pt.lvector()], 1.0)
    with pytest.raises(ValueError, match="all_finite received an empty list"):
        all_finite([])
    with pytest.raises(TypeError, match="every updated variable must be a shared variable, received TensorVariable"):
        skip_non_finite({g: g + 1})
    with pytest.raises(TypeError, match="expects updates as a dict or a list of"):
        skip_non_finite(g)


# ------------------------------------------------------------ end to end


class LSTMProblem:
    """A one-layer LSTM with a linear head on a tiny regression task.

    The loss and its gradients are compiled once; each rule then gets a small
    update function fed with those gradients (the "list of gradients" use).
    """

    def __init__(self):
        rng = np.random.default_rng(0)
        self.model = theano_lstm.StackedCells(3, celltype=theano_lstm.LSTM, layers=[4], rng=0)
        self.model.layers.append(theano_lstm.Layer(4, 2, "linear", rng=1))
        self.params = self.model.params
        self.initial = [p.get_value().copy() for p in self.params]
        self.x = pt.tensor3("x", dtype="float64")
        self.y = pt.tensor3("y", dtype="float64")
        self.loss = pt.mean((self.model.scan(self.x).outputs - self.y) ** 2)
        self.grad_fn = backend.function([self.x, self.y], [self.loss] + pytensor.grad(self.loss, self.params))
        self.data = (rng.normal(size=(5, 2, 3)), rng.normal(size=(5, 2, 2)))

    def reset(self):
        for p, value in zip(self.params, self.initial):
            p.set_value(value.copy())


@functools.lru_cache(maxsize=None)
def lstm_problem() -> LSTMProblem:
    return LSTMProblem()


LSTM_HYPER = {
    "sgd": dict(lr=0.5),
    "momentum": dict(lr=0.2),
    "nesterov_momentum": dict(lr=0.2),
    "adagrad": dict(lr=0.05),
    "adadelta": dict(eps=1e-4),
    "rmsprop": dict(lr=0.01),
    "adam": dict(lr=0.02),
}


@pytest.mark.parametrize("rule", RULES)
def test_every_rule_trains_an_lstm(rule):
    prob = lstm_problem()
    prob.reset()
    grads_in = [p.type() for p in prob.params]
    updates = getattr(optimizers, rule)(grads_in, prob.params, **LSTM_HYPER[rule])
    for var in updates:
        assert any(var.name == p.name or var.name.startswith(p.name + ".") for p in prob.params), var.name
    assert "layers.0.LSTM.linear_matrix" in [v.name for v in updates]
    step = backend.function(grads_in, [], updates=updates)
    losses = []
    for _ in range(10):
        loss, *grads = prob.grad_fn(*prob.data)
        losses.append(float(loss))
        step(*grads)
    final = float(prob.grad_fn(*prob.data)[0])
    assert final < 0.9 * losses[0], (rule, losses, final)


def test_2014_style_training_of_an_lstm():
    """cost -> create_optimization_updates (adadelta, max_norm on) -> one compiled training step."""
    prob = lstm_problem()
    prob.reset()
    updates, gsums, xsums, lr, max_norm = create_optimization_updates(prob.loss, prob.params, eps=1e-4)
    assert gsums[0].name == "layers.0.LSTM.linear_matrix.adadelta_gsum"
    train = backend.function([prob.x, prob.y], prob.loss, updates=updates)
    losses = [float(train(*prob.data)) for _ in range(10)]
    assert losses[-1] < 0.9 * losses[0], losses
