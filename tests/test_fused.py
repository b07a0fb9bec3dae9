"""Fused sequence Ops (theano_lstm.fused): forward, BPTT, agreement with the scan runner, backends, errors."""

import subprocess
import sys
import warnings

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.gradient import verify_grad

import theano_lstm as tl
from theano_lstm import backend, fused
from tests import reference as ref

T, B, I = 4, 3, 5


def blocks(M, n, H):
    return [M[..., k * H : (k + 1) * H] for k in range(n)]


def padded_mask(T=T, B=B):
    """Sequence 0 full length, 1 of length 2, 2 of length 3 (padded at the end)."""
    mask = np.ones((T, B))
    mask[2:, 1] = 0
    mask[3:, 2] = 0
    return mask


def gru_weights(rng, reset, H, dtype="float64"):
    if reset == "before":
        ws = [rng.normal(0, 0.5, (H, 2 * H)), rng.normal(0, 0.5, (H, H))]
    else:
        ws = [rng.normal(0, 0.5, (H, 3 * H)), rng.normal(0, 0.5, 3 * H)]
    return [w.astype(dtype) for w in ws]


# ----------------------------------------------------------------- forward


def test_lstm_forward_matches_numpy_reference(rng):
    H = 3
    W, U, b = rng.normal(0, 0.5, (I, 4 * H)), rng.normal(0, 0.5, (H, 4 * H)), rng.normal(0, 0.5, 4 * H)
    xs = rng.normal(size=(T, B, I))
    c0, h0 = rng.normal(size=(B, H)), rng.normal(size=(B, H))
    mask = padded_mask()
    cs, hs = fused.lstm_sequence(xs @ W + b, U, c0, h0, mask)
    got_c, got_h = pytensor.function([], [cs, hs])()
    states = ref.run(lambda x, s: ref.lstm_step(x, *s, *blocks(W, 4, H), *blocks(U, 4, H), *blocks(b, 4, H)),
                     xs, (c0, h0), mask=mask)
    np.testing.assert_allclose(got_c, np.stack([s[0] for s in states]), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got_h, np.stack([s[1] for s in states]), rtol=1e-12, atol=1e-12)
    # padded steps carry the last valid state
    np.testing.assert_array_equal(got_h[3, 1], got_h[1, 1])
    np.testing.assert_array_equal(got_c[3, 2], got_c[2, 2])


@pytest.mark.parametrize("reset", ["before", "after"])
def test_gru_forward_matches_numpy_reference(reset, rng):
    H = 3
    W, U, b = rng.normal(0, 0.5, (I, 3 * H)), rng.normal(0, 0.5, (H, 3 * H)), rng.normal(0, 0.5, 3 * H)
    c = rng.normal(0, 0.5, 3 * H)
    xs = rng.normal(size=(T, B, I))
    h0 = rng.normal(size=(B, H))
    mask = padded_mask()
    weights = [U[:, : 2 * H], U[:, 2 * H :]] if reset == "before" else [U, c]
    got = fused.gru_sequence(xs @ W + b, weights, h0, mask, reset=reset).eval()
    rec_b = blocks(c, 3, H) if reset == "after" else []
    states = ref.run(lambda x, s: (ref.gru_step(x, s[0], *blocks(W, 3, H), *blocks(U, 3, H), *blocks(b, 3, H),
                                                *rec_b, reset=reset),), xs, (h0,), mask=mask)
    np.testing.assert_allclose(got, np.stack([s[0] for s in states]), rtol=1e-12, atol=1e-12)


def test_no_mask_is_all_valid_and_float32_stays_float32(rng):
    H = 2
    vals = [rng.normal(size=s).astype("float32") for s in [(T, B, 4 * H), (H, 4 * H), (B, H), (B, H)]]
    cs, hs = fused.lstm_sequence(*vals)
    assert cs.dtype == hs.dtype == "float32"
    got = pytensor.function([], [cs, hs])()
    want = fused.lstm_sequence(*vals, mask=np.ones((T, B), "float32"))
    for g, w in zip(got, pytensor.function([], list(want))()):
        assert g.dtype == np.float32
        np.testing.assert_array_equal(g, w)
    xw = pt.tensor3("xw", dtype="float32")
    hs = fused.gru_sequence(xw, gru_weights(rng, "after", H, "float32"), vals[3], reset="after")
    out = pytensor.function([xw], hs)(rng.normal(size=(T, B, 3 * H)).astype("float32"))
    assert out.dtype == np.float32 and out.shape == (T, B, H)


def test_static_shapes_and_infer_shape():
    xw, U, c0, h0 = pt.tensor3("xw"), pt.matrix("U"), pt.matrix("c0"), pt.matrix("h0")
    cs, hs = fused.lstm_sequence(pt.specify_shape(xw, (7, None, 8)), pt.specify_shape(U, (2, 8)), c0, h0)
    assert hs.type.shape == (7, None, 2)
    # the shape of the outputs (and of the gradient) needs no run of the Ops
    g = pytensor.grad(hs.sum(), U)
    f = pytensor.function([xw, U, c0, h0], [hs.shape, g.shape], mode="FAST_RUN")
    ops = {type(n.op) for n in f.maker.fgraph.apply_nodes}
    assert not ops & {fused.LSTMSequence, fused.LSTMSequenceGrad}
    hs_shape, g_shape = f(np.zeros((7, 3, 8)), np.zeros((2, 8)), np.zeros((3, 2)), np.zeros((3, 2)))
    assert tuple(hs_shape) == (7, 3, 2) and tuple(g_shape) == (2, 8)


# ------------------------------------------------------------------ gradients


def _lstm_values(rng, H):
    return [rng.normal(0, 0.5, s) for s in [(T, B, 4 * H), (H, 4 * H), (B, H), (B, H)]]


@pytest.mark.parametrize("H", [2, 3])
def test_lstm_verify_grad_both_outputs(H):
    rng = np.random.default_rng(H)
    mask = padded_mask()

    def fun(xw, U, c0, h0):
        cs, hs = fused.lstm_sequence(xw, U, c0, h0, mask)
        return pt.concatenate([cs, hs], axis=-1)  # verify_grad projects both randomly

    verify_grad(fun, _lstm_values(rng, H), rng=rng, mode=backend.get_mode("fast_compile"))


def test_lstm_verify_grad_hs_only():
    """cs unused: its output gradient is disconnected and must count as zero."""
    rng = np.random.default_rng(7)
    mask = padded_mask()
    verify_grad(lambda *a: fused.lstm_sequence(*a, mask)[1], _lstm_values(rng, 3), rng=rng, mode=backend.get_mode("fast_compile"))
    verify_grad(lambda *a: fused.lstm_sequence(*a, mask)[0], _lstm_values(rng, 2), rng=rng, mode=backend.get_mode("fast_compile"))


@pytest.mark.parametrize("reset", ["before", "after"])
@pytest.mark.parametrize("H", [2, 3])
def test_gru_verify_grad(reset, H):
    rng = np.random.default_rng(H)
    mask = padded_mask()
    values = [rng.normal(0, 0.5, (T, B, 3 * H)), *gru_weights(rng, reset, H), rng.normal(0, 0.5, (B, H))]

    def fun(xw, W1, W2, h0):
        return fused.gru_sequence(xw, [W1, W2], h0, mask, reset=reset)

    verify_grad(fun, values, rng=rng, mode=backend.get_mode("fast_compile"))


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-13), ("float32", 1e-5)])
def test_lstm_backward_numba_kernel_equals_numpy_loop(dtype, tol, monkeypatch):
    """The compiled backward step and the NumPy fallback agree (with padding)."""
    rng = np.random.default_rng(5)
    xw, U, c0, h0 = (v.astype(dtype) for v in _lstm_values(rng, 3))
    mask = padded_mask()
    cs, hs, gates = fused._lstm_forward(xw, U, c0, h0, mask)
    g_cs, g_hs = rng.normal(size=cs.shape).astype(dtype), rng.normal(size=hs.shape).astype(dtype)
    results = []
    for use in (True, False):
        monkeypatch.setattr(fused, "_use_numba", use)
        results.append(fused._lstm_backward(xw, U, c0, h0, mask, cs, hs, gates, g_cs, g_hs))
    for a, b in zip(*results):
        assert a.dtype == b.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def _forward_values(kind, rng, H, dtype):
    """``(xw, weights..., h0[, c0])`` for ``fused._<kind>_forward``, with padding."""
    if kind == "lstm":
        xw, U, c0, h0 = _lstm_values(rng, H)
        return [v.astype(dtype) for v in (xw, U, c0, h0)]
    xw, h0 = rng.normal(0, 0.5, (T, B, 3 * H)), rng.normal(0, 0.5, (B, H))
    return [xw.astype(dtype), *gru_weights(rng, kind, H, dtype), h0.astype(dtype)]


def _forward(kind, values, mask):
    if kind == "lstm":
        return fused._lstm_forward(*values, mask)
    return fused._gru_forward(kind, *values, mask)


@pytest.mark.parametrize("kind", ["lstm", "before", "after"])
def test_float32_compiled_forward_matches_float64(kind, monkeypatch):
    """The float32 forward kernels (own exp) against the float64 NumPy path, with padding."""
    rng = np.random.default_rng(11)
    mask = padded_mask()
    values = _forward_values(kind, rng, 5, "float64")
    want = _forward(kind, values, mask)
    got = _forward(kind, [v.astype("float32") for v in values], mask)
    monkeypatch.setattr(fused, "_use_numba", False)
    plain32 = _forward(kind, [v.astype("float32") for v in values], mask)
    for g, w, p in zip(got, want, plain32):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, w, rtol=0, atol=2e-6)
        np.testing.assert_allclose(p, w, rtol=0, atol=2e-6)
    # padded steps carry the state exactly
    hs = got[1] if kind == "lstm" else got[0]
    np.testing.assert_array_equal(hs[3, 1], hs[1, 1])


def test_float32_kernel_activations_over_the_whole_range():
    """sigmoid and tanh of the compiled kernels, from -100 to 100 and at tiny arguments."""
    from theano_lstm import _kernels

    grid = np.concatenate([np.linspace(-100, 100, 20001), [0.0, 1e-30, -1e-30, 1e-8, 88.7, -88.7, 1e4, -1e4]])
    n = len(grid)
    x = np.zeros((n, 4), "float32")  # H = 1: columns i, f, g, o
    x[:, 0] = x[:, 2] = grid
    gates, c, h = np.empty((n, 4), "float32"), np.empty((n, 1), "float32"), np.empty((n, 1), "float32")
    zero = np.zeros((n, 1), "float32")
    _kernels.lstm_forward_step(np.zeros_like(x), x, zero, zero, np.ones(n, bool), gates, c, h)
    x64 = x[:, 0].astype("float64")
    assert np.isfinite(gates).all()
    np.testing.assert_allclose(gates[:, 0], 0.5 + 0.5 * np.tanh(x64 / 2), rtol=0, atol=4e-7)
    np.testing.assert_allclose(gates[:, 2], np.tanh(x64), rtol=0, atol=4e-7)
    np.testing.assert_allclose(gates[:, 1], 0.5, rtol=0, atol=1e-7)


@pytest.mark.parametrize("reset", ["before", "after"])
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 2e-5)])
def test_gru_backward_numba_kernels_equal_numpy_loop(reset, dtype, tol, monkeypatch):
    rng = np.random.default_rng(6)
    mask = padded_mask()
    values = _forward_values(reset, rng, 3, dtype)
    hs, acts = fused._gru_forward(reset, *values, mask)
    g_hs = rng.normal(size=hs.shape).astype(dtype)
    results = []
    for use in (True, False):
        monkeypatch.setattr(fused, "_use_numba", use)
        results.append(fused._gru_backward(reset, *values, mask, hs, acts, g_hs))
    for a, b in zip(*results):
        assert a.dtype == b.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def test_mask_gets_no_gradient():
    xw, U, c0, h0, m = pt.tensor3(), pt.matrix(), pt.matrix(), pt.matrix(), pt.matrix("m")
    _, hs = fused.lstm_sequence(xw, U, c0, h0, m)
    with pytest.raises(pytensor.gradient.DisconnectedInputError):
        pytensor.grad(hs.sum(), m)
    assert pytensor.grad(hs.sum(), m, disconnected_inputs="ignore").eval({m: np.ones((2, 2))}).sum() == 0


# ------------------------------------------------ the scan runner's answers


def _fused_outputs(layer, x, mask):
    """The fused path built from ``layer``'s own weights, zero initial state."""
    xw = layer.input_projection(x)
    H = layer.hidden_size
    zeros = pt.zeros((x.shape[1], H), dtype=layer.dtype)
    if isinstance(layer, tl.LSTM):
        (U,) = layer.recurrent_weights()
        return fused.lstm_sequence(xw, U, zeros, zeros, mask)[1]
    return fused.gru_sequence(xw, layer.recurrent_weights(), zeros, mask, reset=layer.reset)


CASES = [(tl.LSTM, {}), (tl.GRU, {"reset": "before"}), (tl.GRU, {"reset": "after"})]


@pytest.mark.parametrize("celltype,kw", CASES, ids=["lstm", "gru-before", "gru-after"])
def test_fused_equals_scan_runner_outputs_and_gradients(celltype, kw, rng):
    H = 4
    model = tl.StackedCells(I, celltype=celltype, layers=[H], rng=0, **kw)
    layer = model.layers[0]
    layer.params = [rng.normal(0, 0.5, p.get_value().shape) for p in layer.params]  # non-zero biases too
    x, m = pt.tensor3("x"), pt.matrix("m")
    P = rng.normal(size=(T, B, H))
    results = []
    for out in (model.scan(x, mask=m).outputs, _fused_outputs(layer, x, m)):
        loss = (out * P * m[:, :, None]).sum() + (out[-1] ** 2).sum()
        results.append(backend.function([x, m], [out] + pytensor.grad(loss, model.params)))
    xs, mask = rng.normal(size=(T, B, I)), padded_mask()
    want, got = (f(xs, mask) for f in results)
    for w, g, name in zip(want, got, ["outputs"] + [p.name for p in model.params]):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12, err_msg=name)


# ------------------------------------------------------------------ backends


def _lstm_grad_graph(H=3, dtype="float32"):
    xw, U, c0, h0, m = (pt.tensor(n, dtype=dtype, shape=(None,) * k) for n, k in
                        [("xw", 3), ("U", 2), ("c0", 2), ("h0", 2), ("m", 2)])
    cs, hs = fused.lstm_sequence(xw, U, c0, h0, m)
    loss = (hs**2).sum() + (cs * 0.5).sum()
    return [xw, U, c0, h0, m], [cs, hs] + pytensor.grad(loss, [xw, U, c0, h0])


def _gru_grad_graph(reset, dtype="float32"):
    xw, W1, h0, m = pt.tensor3("xw", dtype=dtype), pt.matrix("W1", dtype=dtype), pt.matrix("h0", dtype=dtype), pt.matrix("m", dtype=dtype)
    W2 = pt.matrix("W2", dtype=dtype) if reset == "before" else pt.vector("W2", dtype=dtype)
    hs = fused.gru_sequence(xw, [W1, W2], h0, m, reset=reset)
    return [xw, W1, W2, h0, m], [hs] + pytensor.grad((hs**2).sum(), [xw, W1, W2, h0])


def _values(rng, kind, H=3, dtype="float32"):
    if kind == "lstm":
        vals = _lstm_values(rng, H)
    else:
        vals = [rng.normal(0, 0.5, (T, B, 3 * H)), *gru_weights(rng, kind, H), rng.normal(0, 0.5, (B, H))]
    return [v.astype(dtype) for v in vals] + [padded_mask().astype(dtype)]


def _compare_modes(kind, mode, rng, rtol, atol, dtype="float32"):
    ins, outs = _lstm_grad_graph(dtype=dtype) if kind == "lstm" else _gru_grad_graph(kind, dtype=dtype)
    vals = _values(rng, kind, dtype=dtype)
    want = pytensor.function(ins, outs, mode=backend.get_mode("fast_compile"))(*vals)
    got = backend.function(ins, outs, mode=mode)(*vals)
    for w, g in zip(want, got):
        g = backend.to_numpy(g)
        assert g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


@pytest.mark.parametrize("kind", ["lstm", "before", "after"])
def test_jax_mode_matches_default_mode(kind, rng):
    pytest.importorskip("jax")
    pytensor.config.floatX = "float32"
    _compare_modes(kind, "jax", rng, rtol=2e-4, atol=2e-5)
    assert fused._jax_registered


def test_c_mode_runs_the_ops(rng):
    _compare_modes("lstm", "c", rng, rtol=1e-12, atol=1e-14, dtype="float64")


def test_numba_mode_calls_perform_without_the_fallback_warning(rng):
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Numba will use object mode")
        _compare_modes("lstm", "numba", rng, rtol=1e-12, atol=1e-14, dtype="float64")
        _compare_modes("after", "numba", rng, rtol=1e-12, atol=1e-14, dtype="float64")


def test_import_does_not_import_jax_and_registers_later():
    pytest.importorskip("jax")
    code = (
        "import sys; import theano_lstm.fused as f; assert 'jax' not in sys.modules, 'jax imported'; "
        "assert not f._jax_registered; import pytensor.link.jax.dispatch; assert f._jax_registered"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


# -------------------------------------------------------------------- errors


def test_bad_inputs_are_reported(rng):
    xw, U, c0, h0 = _lstm_values(rng, 2)
    with pytest.raises(ValueError, match="xw must have 3 dimensions, received 2"):
        fused.lstm_sequence(xw[0], U, c0, h0)
    with pytest.raises(ValueError, match="U must have 2 dimensions, received 3"):
        fused.lstm_sequence(xw, U[None], c0, h0)
    with pytest.raises(ValueError, match="mask must have 2 dimensions, received 1"):
        fused.lstm_sequence(xw, U, c0, h0, mask=np.ones(T))
    with pytest.raises(TypeError, match="U must be float32 or float64, received dtype int64"):
        fused.lstm_sequence(xw, U.astype("int64"), c0, h0)
    with pytest.raises(TypeError, match="c0 is float32 but the inputs before it are float64"):
        fused.lstm_sequence(xw, U, c0.astype("float32"), h0)
    with pytest.raises(ValueError, match=r"hidden sizes disagree: U.shape\[0\] = 2, c0.shape\[1\] = 3"):
        fused.lstm_sequence(xw, U, np.zeros((B, 3)), h0)
    with pytest.raises(ValueError, match=r"batch sizes disagree: xw.shape\[1\] = 3, c0.shape\[0\] = 2"):
        fused.lstm_sequence(xw, U, c0[:2], h0)
    with pytest.raises(ValueError, match=r"sequence lengths disagree: xw.shape\[0\] = 4, mask.shape\[0\] = 3"):
        fused.lstm_sequence(xw, U, c0, h0, mask=np.ones((T - 1, B)))
    with pytest.raises(ValueError, match="reset must be 'before' or 'after', received 'middle'"):
        fused.gru_sequence(xw, [U, U], h0, reset="middle")
    with pytest.raises(ValueError, match=r"weights must be the two tensors \[U, c\] for reset='after', received 1"):
        fused.gru_sequence(xw, [U], h0, reset="after")
    with pytest.raises(ValueError, match="c must have 1 dimensions, received 2"):
        fused.gru_sequence(np.zeros((T, B, 6)), [np.zeros((2, 6)), np.zeros((2, 6))], h0, reset="after")
    with pytest.raises(ValueError, match=r"hidden sizes disagree: h0.shape\[1\] = 2, xw.shape\[2\] / 3 = 3"):
        fused.gru_sequence(np.zeros((T, B, 9)), [np.zeros((2, 4)), np.zeros((2, 2))], h0)
    # lengths only known at run time
    x = pt.tensor3("x")
    f = pytensor.function([x], fused.lstm_sequence(x, U, c0, h0)[1])
    with pytest.raises(ValueError, match=r"xw has 12 features on its last axis but U has 4H = 8 columns"):
        f(np.zeros((T, B, 12)))


# ------------------------------------------------- StackedCells.scan(fused=True)


def _mixed_stack(rng):
    model = tl.StackedCells(I, celltype=tl.LSTM, layers=[4], rng=0)
    model.layers.append(tl.GRU(4, 3, rng=1))
    model.layers.append(tl.Layer(3, 5, "tanh", rng=2))
    model.layers.append(tl.GRU(5, 3, reset="after", learn_init=True, rng=3))
    model.layers.append(tl.Layer(3, 2, "softmax", rng=4))
    for layer in model.layers:
        layer.params = [rng.normal(0, 0.5, p.get_value().shape) for p in layer.params]
    return model


def _compare_runner_paths(model, x, X, kwargs, rng, fields=("outputs",)):
    a = model.scan(x, **kwargs)
    b = model.scan(x, fused=True, **kwargs)
    outs_a, outs_b = [], []
    for res, outs in ((a, outs_a), (b, outs_b)):
        outs.append(res.outputs)
        outs.extend(s for s in res.final_states if s is not None)
        outs.extend(s for s in res.states if s is not None)
        outs.extend(c for c in res.cells if c is not None)
        outs.extend(o for o in res.layer_outputs if o is not None)
    assert len(outs_a) == len(outs_b)
    loss_a = (a.outputs ** 2).sum() + sum((s.sum() * (i + 1)) for i, s in enumerate(a.final_states) if s is not None)
    loss_b = (b.outputs ** 2).sum() + sum((s.sum() * (i + 1)) for i, s in enumerate(b.final_states) if s is not None)
    grads = pytensor.grad(loss_a, model.params) + pytensor.grad(loss_b, model.params)
    f = backend.function([x], outs_a + outs_b + grads, on_unused_input="ignore")
    got = f(X)
    n = len(outs_a)
    for u, v in zip(got[:n], got[n : 2 * n]):
        np.testing.assert_allclose(u, v, rtol=1e-10, atol=1e-12)
    m = len(model.params)
    for u, v in zip(got[2 * n : 2 * n + m], got[2 * n + m :]):
        np.testing.assert_allclose(u, v, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("go_backwards", [False, True], ids=["forwards", "backwards"])
def test_runner_fused_equals_scan_for_a_mixed_stack(go_backwards, rng):
    model = _mixed_stack(rng)
    x = pt.tensor3("x")
    mask = pt.as_tensor_variable(padded_mask())
    drop = [None, rng.integers(0, 2, (B, 4)).astype("float64"), rng.integers(0, 2, (T, B, 3)).astype("float64"), None, None]
    init = [rng.normal(size=(B, 8)), rng.normal(size=3), None, None, None]
    _compare_runner_paths(model, x, rng.normal(size=(T, B, I)),
                          dict(mask=mask, go_backwards=go_backwards, dropout=drop, initial_states=init), rng)


def test_runner_fused_unbatched_and_embedding(rng):
    model = tl.StackedCells(I, celltype=tl.LSTM, layers=[4], rng=0)
    model.layers.append(tl.GRU(4, 3, rng=1))
    x = pt.matrix("x")
    _compare_runner_paths(model, x, rng.normal(size=(T, I)), dict(mask=pt.as_tensor_variable(np.array([1, 1, 1, 0.0]))), rng)
    emb = tl.StackedCells(7, celltype=tl.GRU, layers=[3], rng=0)
    emb.layers.insert(0, tl.Embedding(10, 7, rng=5))
    idx = pt.imatrix("idx")
    a, b = emb.scan(idx).outputs, emb.scan(idx, fused=True).outputs
    ga, gb = pytensor.grad(a.sum(), emb.params), pytensor.grad(b.sum(), emb.params)
    f = backend.function([idx], [a, b] + ga + gb)
    got = f(rng.integers(0, 10, (T, B)).astype("int32"))
    np.testing.assert_allclose(got[0], got[1], rtol=1e-10)
    for u, v in zip(got[2 : 2 + len(ga)], got[2 + len(ga) :]):
        np.testing.assert_allclose(u, v, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    "build, kwargs, match",
    [
        (lambda: tl.StackedCells(I, celltype=tl.LSTM, layers=[3], peepholes=True), {}, "peepholes"),
        (lambda: tl.StackedCells(I, celltype=tl.RNN, layers=[3]), {}, "plain LSTM and GRU only"),
        (lambda: tl.StackedCells(I, celltype=tl.GRU, layers=[3], gate_activation="hard_sigmoid"), {}, "not sigmoid"),
        (lambda: tl.StackedCells(I, celltype=tl.LSTM, layers=[3], clip_gradients=1.0), {}, "clips gradients"),
        (lambda: tl.StackedCells(I, celltype=tl.LSTM, layers=[3]), {"truncate_gradient": 2}, "truncate_gradient"),
        (lambda: tl.StackedCells(I, celltype=tl.LSTM, layers=[3]), {"checkpoint_every": 2}, "checkpoint_every"),
        (lambda: tl.StackedCells(I, celltype=tl.LSTM, layers=[3]),
         {"recurrent_dropout": [np.ones((B, 3))]}, "recurrent_dropout"),
    ],
    ids=["peepholes", "rnn", "hard-sigmoid", "clip", "truncate", "checkpoint", "recurrent-dropout"],
)
def test_runner_fused_refuses_what_it_cannot_run(build, kwargs, match):
    model = build()
    with pytest.raises(ValueError, match=match):
        model.scan(pt.tensor3("x"), fused=True, **kwargs)
