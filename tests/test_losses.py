"""Tests of theano_lstm.losses against NumPy references written from the equations."""

import warnings

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.gradient import verify_grad

from theano_lstm import backend
from theano_lstm.losses import (
    REDUCTIONS,
    binary_crossentropy,
    categorical_crossentropy,
    masked_loss,
    squared_error,
)
from tests._util import requires_jax

# ------------------------------------------------------------ NumPy references


def ref_masked_loss(p, labels, lengths, starts):
    """-sum_j log p[b, s_b + j, labels[b, s_b + j]] for j < n_b (and s_b + j < T)."""
    out = np.zeros(p.shape[0])
    for b in range(p.shape[0]):
        for j in range(lengths[b]):
            t = starts[b] + j
            if t < p.shape[1]:
                out[b] -= np.log(p[b, t, labels[b, t]])
    return out


def ref_log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def ref_reduce(per_step, mask, reduction):
    per_step = np.where(mask != 0, per_step, 0.0)
    if reduction == "none":
        return per_step
    if reduction == "sum":
        return per_step.sum()
    return per_step.sum() / max((mask != 0).sum(), 1)


def ref_categorical(z_or_p, y, mask, reduction, from_logits):
    logp = ref_log_softmax(z_or_p) if from_logits else np.log(np.where(z_or_p > 0, z_or_p, 1e-300))
    per_step = -np.take_along_axis(logp, y[..., None], axis=-1)[..., 0]
    return ref_reduce(per_step, mask, reduction)


def ref_bce_logits(z, t, mask, reduction):
    # -[t log sigmoid(z) + (1-t) log(1 - sigmoid(z))], with log sigmoid(z) = -log(1 + e^-z)
    log_sig = -np.logaddexp(0.0, -z)
    log_one_minus = -np.logaddexp(0.0, z)
    per_step = -(t * log_sig + (1 - t) * log_one_minus).sum(axis=-1)
    return ref_reduce(per_step, mask, reduction)


def ref_bce_probs(p, t, mask, reduction):
    per_step = -(t * np.log(p) + (1 - t) * np.log(1 - p)).sum(axis=-1)
    return ref_reduce(per_step, mask, reduction)


def ref_squared(y, t, mask, reduction):
    return ref_reduce(((y - t) ** 2).sum(axis=-1), mask, reduction)


def softmax(z):
    return np.exp(ref_log_softmax(z))


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def prefix_mask(lengths, T):
    """(time, batch) mask of ones for the first lengths[b] steps."""
    return (np.arange(T)[:, None] < np.asarray(lengths)[None, :]).astype("float64")


T, B, C = 5, 3, 4
LENGTHS = [5, 2, 3]

# ------------------------------------------------------------------ masked_loss


@pytest.fixture(scope="module")
def masked_loss_fn():
    p = pt.tensor3("p")
    y = pt.lmatrix("y")
    n = pt.lvector("n")
    s = pt.lvector("s")
    w = pt.vector("w")
    loss = masked_loss(p, y, n, s)
    grad = pytensor.grad((w * loss).sum(), p)
    return backend.function([p, y, n, s, w], [loss, grad])


def _masked_loss_data(rng):
    p = softmax(rng.normal(size=(B, T, C)))
    labels = rng.integers(0, C, size=(B, T))
    lengths = np.array([2, 0, 3])
    starts = np.array([1, 3, 2])  # example 2's span ends exactly at T
    # padding outside the spans, even out of range, must not matter
    for b in range(B):
        outside = np.ones(T, bool)
        outside[starts[b] : starts[b] + lengths[b]] = False
        labels[b, outside] = -7
    return p, labels, lengths, starts


def test_masked_loss_matches_reference(masked_loss_fn, rng):
    p, labels, lengths, starts = _masked_loss_data(rng)
    loss, _ = masked_loss_fn(p, labels, lengths, starts, np.ones(B))
    np.testing.assert_allclose(loss, ref_masked_loss(p, labels, lengths, starts), rtol=1e-12)
    assert loss[1] == 0.0  # empty span


def test_masked_loss_labels_are_indexed_at_their_own_time_step(masked_loss_fn):
    # one example, span [2, 4): the loss must read labels[0, 2] and labels[0, 3]
    p = np.full((1, 4, 3), 1 / 3)
    p[0, 2] = [0.7, 0.2, 0.1]
    p[0, 3] = [0.1, 0.1, 0.8]
    labels = np.array([[2, 2, 0, 2]])  # relative indexing would read labels[0, 0:2] = [2, 2]
    loss, _ = masked_loss_fn(p, labels, np.array([2]), np.array([2]), np.ones(1))
    np.testing.assert_allclose(loss, [-np.log(0.7) - np.log(0.8)], rtol=1e-12)


def test_masked_loss_gradient_is_exact_for_any_upstream_gradient(masked_loss_fn, rng):
    """The 2014 Op returned -1/(p*g) instead of -g/p: wrong unless g == 1."""
    p, labels, lengths, starts = _masked_loss_data(rng)
    w = np.array([0.5, -2.0, 3.0])
    _, grad = masked_loss_fn(p, labels, lengths, starts, w)
    expected = np.zeros_like(p)
    for b in range(B):
        for t in range(starts[b], min(starts[b] + lengths[b], T)):
            expected[b, t, labels[b, t]] = -w[b] / p[b, t, labels[b, t]]
    np.testing.assert_allclose(grad, expected, rtol=1e-12)


def test_masked_loss_verify_grad(rng):
    p, labels, lengths, starts = _masked_loss_data(rng)
    w = np.array([0.5, -2.0, 3.0])
    verify_grad(
        lambda probs: (w * masked_loss(probs, labels, lengths, starts)).sum(),
        [p],
        rng=rng,
        n_tests=1,
        mode=backend.get_mode(),
    )


@pytest.mark.parametrize(
    "args, error, match",
    [
        ((np.ones((2, 3)), np.zeros((2, 3), "int64"), [1, 1], [0, 0]), ValueError, r"predictions must be \(batch, time, classes\).*2 dimensions"),
        ((np.ones((2, 3, 4), "int64"), np.zeros((2, 3), "int64"), [1, 1], [0, 0]), TypeError, "predictions must be a float tensor, received dtype int64"),
        ((np.ones((2, 3, 4)), np.zeros((2, 3)), [1, 1], [0, 0]), TypeError, "padded_labels must be an integer tensor, received dtype float64"),
        ((np.ones((2, 3, 4)), np.zeros((2, 3, 1), "int64"), [1, 1], [0, 0]), ValueError, "padded_labels must be"),
        ((np.ones((2, 3, 4)), np.zeros((2, 3), "int64"), [1.0, 1.0], [0, 0]), TypeError, "codelengths must be an integer tensor"),
        ((np.ones((2, 3, 4)), np.zeros((2, 3), "int64"), [1, 1], [[0, 0]]), ValueError, r"label_starts must be \(batch,\)"),
        ((np.ones((2, 3, 4)), np.zeros((2, 3), "int64"), [1, 1, 1], [0, 0]), ValueError, "codelengths axis 0 has length 3 but predictions axis 0 has length 2"),
        ((np.ones((2, 3, 4)), np.zeros((2, 5), "int64"), [1, 1], [0, 0]), ValueError, "padded_labels axis 1 has length 5 but predictions axis 1 has length 3"),
    ],
)
def test_masked_loss_errors(args, error, match):
    with pytest.raises(error, match=match):
        masked_loss(*args)


# --------------------------------------------------------- categorical (+ mask)


@pytest.fixture(scope="module")
def categorical_fn():
    z = pt.tensor3("z")
    p = pt.tensor3("p")
    y = pt.lmatrix("y")
    m = pt.matrix("m")
    outs = []
    for reduction in REDUCTIONS:
        outs.append(categorical_crossentropy(z, y, m, reduction))
        outs.append(categorical_crossentropy(p, y, m, reduction, from_logits=False))
    outs.append(pytensor.grad(categorical_crossentropy(z, y, m, "sum"), z))
    return backend.function([z, p, y, m], outs)


def _run_categorical(fn, z, y, m):
    values = fn(z, softmax(z), y, m)
    grad = values.pop()
    by_reduction = {r: (values[2 * k], values[2 * k + 1]) for k, r in enumerate(REDUCTIONS)}
    return by_reduction, grad


def test_categorical_matches_reference(categorical_fn, rng):
    z = rng.normal(size=(T, B, C)) * 3
    y = rng.integers(0, C, size=(T, B))
    m = prefix_mask(LENGTHS, T)
    by_reduction, grad = _run_categorical(categorical_fn, z, y, m)
    for reduction, (from_logits, from_probs) in by_reduction.items():
        np.testing.assert_allclose(from_logits, ref_categorical(z, y, m, reduction, True), rtol=1e-10)
        np.testing.assert_allclose(from_probs, ref_categorical(softmax(z), y, m, reduction, False), rtol=1e-10)
    # gradient from the equations: (softmax(z) - onehot(y)) at valid steps, 0 elsewhere
    expected = (softmax(z) - np.eye(C)[y]) * m[..., None]
    np.testing.assert_allclose(grad, expected, rtol=1e-10, atol=1e-14)
    # "mean" divides by the number of valid steps, not by time * batch
    np.testing.assert_allclose(by_reduction["mean"][0] * sum(LENGTHS), by_reduction["sum"][0], rtol=1e-12)


def test_categorical_masked_equals_unpadded_per_sequence(categorical_fn, rng):
    z = rng.normal(size=(T, B, C))
    y = rng.integers(0, C, size=(T, B))
    padded, _ = _run_categorical(categorical_fn, z, y, prefix_mask(LENGTHS, T))
    total = 0.0
    for b, length in enumerate(LENGTHS):
        alone, _ = _run_categorical(
            categorical_fn, z[:length, b : b + 1], y[:length, b : b + 1], np.ones((length, 1))
        )
        np.testing.assert_allclose(padded["none"][0][:, b].sum(), alone["sum"][0], rtol=1e-12)
        np.testing.assert_allclose(padded["none"][1][:, b].sum(), alone["sum"][1], rtol=1e-12)
        total += alone["sum"][0]
    np.testing.assert_allclose(padded["sum"][0], total, rtol=1e-12)
    np.testing.assert_array_equal(padded["none"][0][np.asarray(prefix_mask(LENGTHS, T)) == 0], 0.0)


def test_categorical_is_stable_and_ignores_padding(categorical_fn, rng):
    z = rng.normal(size=(T, B, C))
    z[0, 0] = [1000.0, -1000.0, 0.0, 999.0]  # log of softmax would give log(0) = -inf
    z[1, 0] = [-np.inf, 2.0, 1.0, 0.0]  # a -inf logit of a non-target class
    y = np.zeros((T, B), "int64")
    y[0, 0], y[1, 0] = 1, 2
    m = prefix_mask(LENGTHS, T)
    z[4, 1] = np.nan  # padding (example 1 has length 2) ...
    y[4, 1] = 1  # ... with an in-range label: the nan must not leak into the loss
    y[3, 1] = 99  # an out-of-range label in the padding
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        by_reduction, grad = _run_categorical(categorical_fn, z, y, m)
    per_step = by_reduction["none"][0]
    assert np.isfinite(per_step).all()
    np.testing.assert_allclose(per_step[0, 0], 2000.0 + np.log1p(np.exp(-1.0)), rtol=1e-12)
    np.testing.assert_allclose(per_step[1, 0], -ref_log_softmax(np.array([2.0, 1.0, 0.0]))[1], rtol=1e-12)
    assert per_step[4, 1] == 0.0 and per_step[3, 1] == 0.0
    assert np.isfinite(by_reduction["sum"][0]) and np.isfinite(by_reduction["mean"][0])
    assert np.isfinite(grad[m != 0]).all()


@pytest.mark.parametrize("from_logits", [True, False])
def test_categorical_verify_grad(from_logits, rng):
    y = rng.integers(0, C, size=(T, B))
    m = prefix_mask(LENGTHS, T)
    z = rng.normal(size=(T, B, C))
    x = z if from_logits else softmax(z)
    verify_grad(
        lambda v: categorical_crossentropy(v, y, m, "mean", from_logits=from_logits),
        [x],
        rng=rng,
        n_tests=1,
        mode=backend.get_mode(),
    )


def test_categorical_unbatched_time_only(rng):
    z = pt.matrix("z")
    y = pt.lvector("y")
    f = backend.function([z, y], categorical_crossentropy(z, y, reduction="none"))
    zv = rng.normal(size=(T, C))
    yv = rng.integers(0, C, size=T)
    np.testing.assert_allclose(f(zv, yv), ref_categorical(zv, yv, np.ones(T), "none", True), rtol=1e-12)


# ----------------------------------------------------- binary cross-entropy, MSE


@pytest.fixture(scope="module")
def elementwise_fn():
    z = pt.tensor3("z")
    p = pt.tensor3("p")
    t = pt.tensor3("t")
    m = pt.matrix("m")
    outs = []
    for reduction in REDUCTIONS:
        outs.append(binary_crossentropy(z, t, m, reduction))
        outs.append(binary_crossentropy(p, t, m, reduction, from_logits=False))
        outs.append(squared_error(z, t, m, reduction))
    outs.append(pytensor.grad(binary_crossentropy(z, t, m, "sum"), z))
    outs.append(pytensor.grad(squared_error(z, t, m, "sum"), z))
    return backend.function([z, p, t, m], outs)


def test_bce_and_squared_error_match_reference(elementwise_fn, rng):
    z = rng.normal(size=(T, B, C)) * 3
    t = rng.uniform(size=(T, B, C))
    t[0] = rng.integers(0, 2, size=(B, C))  # hard multi-label targets too
    m = prefix_mask(LENGTHS, T)
    values = elementwise_fn(z, sigmoid(z), t, m)
    g_bce, g_mse = values[-2:]
    for k, reduction in enumerate(REDUCTIONS):
        bce_z, bce_p, mse = values[3 * k : 3 * k + 3]
        np.testing.assert_allclose(bce_z, ref_bce_logits(z, t, m, reduction), rtol=1e-10)
        np.testing.assert_allclose(bce_p, ref_bce_probs(sigmoid(z), t, m, reduction), rtol=1e-10)
        np.testing.assert_allclose(mse, ref_squared(z, t, m, reduction), rtol=1e-12)
    np.testing.assert_allclose(g_bce, (sigmoid(z) - t) * m[..., None], rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(g_mse, 2 * (z - t) * m[..., None], rtol=1e-12)


def test_bce_is_stable_for_large_logits(elementwise_fn):
    z = np.zeros((T, B, C))
    t = np.zeros((T, B, C))
    z[0, 0, :2] = [800.0, -800.0]  # sigmoid saturates to exactly 1.0 and 0.0
    t[0, 0, :2] = [1.0, 0.0]  # and the targets agree: loss ~ 0, not nan
    z[1, 0, 0], t[1, 0, 0] = -800.0, 1.0  # disagreement: loss 800, not inf
    m = np.ones((T, B))
    with np.errstate(over="ignore"):
        values = elementwise_fn(z, sigmoid(z), t, m)
    bce_z, bce_p = values[2 * 3 + 0], values[2 * 3 + 1]  # reduction "none"
    np.testing.assert_allclose(bce_z[0, 0], (C - 2) * np.log(2.0), rtol=1e-12)
    np.testing.assert_allclose(bce_z[1, 0], 800.0 + (C - 1) * np.log(2.0), rtol=1e-12)
    # from probabilities: 0 log 0 = 0 for the agreeing saturated units
    np.testing.assert_allclose(bce_p[0, 0], (C - 2) * np.log(2.0), rtol=1e-12)
    assert np.isfinite(values[-2]).all()


def test_bce_masked_equals_unpadded_per_sequence(elementwise_fn, rng):
    z = rng.normal(size=(T, B, C))
    t = rng.uniform(size=(T, B, C))
    padded = elementwise_fn(z, sigmoid(z), t, prefix_mask(LENGTHS, T))
    for b, length in enumerate(LENGTHS):
        zb, tb = z[:length, b : b + 1], t[:length, b : b + 1]
        alone = elementwise_fn(zb, sigmoid(zb), tb, np.ones((length, 1)))
        for j in range(3):  # bce logits, bce probs, squared error: "none" of padded vs "sum" alone
            np.testing.assert_allclose(padded[6 + j][:, b].sum(), alone[j], rtol=1e-12)


def test_bce_and_squared_error_accept_integer_targets_and_unbatched_input():
    y = pt.matrix("y")
    t = pt.lmatrix("t")
    f = backend.function([y, t], [binary_crossentropy(y, t, reduction="none"), squared_error(y, t)])
    yv = np.array([[0.0, 2.0], [-1.0, 0.5]])
    tv = np.array([[1, 0], [1, 1]])
    bce, mse = f(yv, tv)
    np.testing.assert_allclose(bce, ref_bce_logits(yv, tv, np.ones(2), "none"), rtol=1e-12)
    np.testing.assert_allclose(mse, ((yv - tv) ** 2).sum(), rtol=1e-12)


@pytest.mark.parametrize("which", ["bce_logits", "bce_probs", "squared_error"])
def test_elementwise_verify_grad(which, rng):
    t = rng.uniform(size=(T, B, C))
    m = prefix_mask(LENGTHS, T)
    z = rng.normal(size=(T, B, C))
    fun, x = {
        "bce_logits": (lambda v: binary_crossentropy(v, t, m, "mean"), z),
        "bce_probs": (lambda v: binary_crossentropy(v, t, m, "sum", from_logits=False), 0.1 + 0.8 * sigmoid(z)),
        "squared_error": (lambda v: squared_error(v, t, m, "mean"), z),
    }[which]
    verify_grad(fun, [x], rng=rng, n_tests=1, mode=backend.get_mode())


# ---------------------------------------------------------------------- errors


P3 = np.zeros((T, B, C))
Y2 = np.zeros((T, B), "int64")


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: categorical_crossentropy(P3, Y2, reduction="avg"), ValueError, r"unknown reduction 'avg'; expected one of \['sum', 'mean', 'none'\]"),
        (lambda: squared_error(P3, P3, reduction=None), ValueError, "unknown reduction None"),
        (lambda: categorical_crossentropy(np.zeros((T, B, C, 2)), Y2), ValueError, r"predictions must be \(time, batch, classes\) or \(time, classes\), received a tensor with 4"),
        (lambda: categorical_crossentropy(np.zeros(T), Y2), ValueError, "received a tensor with 1 dimensions"),
        (lambda: categorical_crossentropy(P3, P3), TypeError, r"targets must be an integer tensor, received dtype float64 \(class indices expected; for one-hot"),
        (lambda: categorical_crossentropy(P3, np.zeros(T, "int64")), ValueError, "targets must have 2 dimensions .* received 1"),
        (lambda: categorical_crossentropy(Y2[..., None], Y2), TypeError, "predictions must be a float tensor, received dtype int64"),
        (lambda: categorical_crossentropy(P3, np.zeros((T, B + 1), "int64")), ValueError, "targets axis 1 has length 4 but predictions axis 1 has length 3"),
        (lambda: categorical_crossentropy(P3, Y2, mask=np.ones(T)), ValueError, r"mask must have shape \(time, batch\) \(2 dimensions\) .* received 1"),
        (lambda: categorical_crossentropy(P3, Y2, mask=np.ones((T + 1, B))), ValueError, "mask axis 0 has length 6 but predictions axis 0 has length 5"),
        (lambda: binary_crossentropy(P3, np.zeros((T, B))), ValueError, "targets must have the shape of predictions .3 dimensions., received 2"),
        (lambda: binary_crossentropy(P3, np.zeros((T, B, C + 1))), ValueError, "targets axis 2 has length 5 but predictions axis 2 has length 4"),
        (lambda: binary_crossentropy(Y2[..., None], Y2[..., None]), TypeError, "binary_crossentropy predictions must be a float tensor"),
        (lambda: binary_crossentropy(P3, P3.astype("complex128")), TypeError, "targets must be a float .* received dtype complex128"),
        (lambda: squared_error(P3[0, 0], P3[0, 0]), ValueError, r"squared_error predictions must be \(time, batch, features\) or \(time, features\)"),
        (lambda: squared_error(P3, P3, mask=np.ones((T, B, 1))), ValueError, "mask must have shape"),
        (lambda: squared_error(P3, object()), TypeError, "targets must be a tensor or array, received object"),
    ],
)
def test_per_step_loss_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ------------------------------------------------------------------------- JAX


@requires_jax
def test_all_losses_compile_and_agree_in_jax_mode(rng):
    pytensor.config.floatX = "float32"
    z = pt.tensor3("z", shape=(T, B, C))
    y = pt.tensor("y", dtype="int64", shape=(T, B))
    m = pt.tensor("m", dtype="float32", shape=(T, B))
    t = pt.tensor3("t", shape=(T, B, C))
    bp = pt.tensor3("bp", shape=(B, T, C))
    by = pt.tensor("by", dtype="int64", shape=(B, T))
    n = pt.tensor("n", dtype="int64", shape=(B,))
    s = pt.tensor("s", dtype="int64", shape=(B,))
    losses = [
        categorical_crossentropy(z, y, m, "mean"),
        categorical_crossentropy(pt.special.softmax(z, axis=-1), y, m, "sum", from_logits=False),
        binary_crossentropy(z, t, m, "mean"),
        binary_crossentropy(pt.sigmoid(z), t, m, "sum", from_logits=False),
        squared_error(z, t, m, "mean"),
        masked_loss(bp, by, n, s).mean(),
    ]
    grads = pytensor.grad(sum(losses[:5]), z), pytensor.grad(losses[5], bp)
    f = pytensor.function([z, y, m, t, bp, by, n, s], [*losses, *grads], mode="JAX")
    zv = rng.normal(size=(T, B, C)).astype("float32")
    yv = rng.integers(0, C, size=(T, B))
    mv = prefix_mask(LENGTHS, T).astype("float32")
    tv = rng.uniform(size=(T, B, C)).astype("float32")
    bpv = softmax(rng.normal(size=(B, T, C))).astype("float32")
    byv = rng.integers(0, C, size=(B, T))
    nv, sv = np.array([2, 0, 3]), np.array([1, 3, 2])
    with warnings.catch_warnings():
        # PyTensor's JAX Sum asks for a float64 accumulator, which jax truncates to float32
        warnings.filterwarnings("ignore", "Explicitly requested dtype", UserWarning)
        out = [np.asarray(v) for v in f(zv, yv, mv, tv, bpv, byv, nv, sv)]
    assert all(v.dtype == np.float32 for v in out)
    z64, t64, m64 = zv.astype("float64"), tv.astype("float64"), mv.astype("float64")
    expected = [
        ref_categorical(z64, yv, m64, "mean", True),
        ref_categorical(softmax(z64), yv, m64, "sum", False),
        ref_bce_logits(z64, t64, m64, "mean"),
        ref_bce_probs(sigmoid(z64), t64, m64, "sum"),
        ref_squared(z64, t64, m64, "mean"),
        ref_masked_loss(bpv.astype("float64"), byv, nv, sv).mean(),
    ]
    for got, want in zip(out[:6], expected):
        np.testing.assert_allclose(got, want, rtol=2e-5)
    # gradients agree with the default-mode graph
    f_ref = backend.function([z, y, m, t, bp, by, n, s], list(grads))
    for got, want in zip(out[6:], f_ref(zv, yv, mv, tv, bpv, byv, nv, sv)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
