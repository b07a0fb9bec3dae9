"""Cells against the NumPy reference, golden values, gradients and the 2014 API."""

import math

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.gradient import verify_grad

import theano_lstm as tl
from theano_lstm import backend
from tests import reference as ref

I, H, B = 3, 4, 2


def compile_(inputs, outputs):
    return backend.function(inputs, outputs)


def blocks(M, n, H):
    """Split the last axis of a fused weight into ``n`` gate blocks of size ``H``."""
    return [M[..., k * H : (k + 1) * H] for k in range(n)]


def randomize(cell, rng, scale=0.5):
    """Give every parameter (biases included) random values so no term hides."""
    cell.params = [rng.normal(0, scale, p.get_value().shape) for p in cell.params]


# ------------------------------------------------------------------ reference


@pytest.mark.parametrize("activation,np_act", [("tanh", np.tanh), ("relu", lambda v: np.maximum(v, 0)), ("linear", lambda v: v)])
def test_rnn_matches_reference(activation, np_act, rng):
    cell = tl.RNN(I, H, activation=activation, rng=0)
    randomize(cell, rng)
    W, U, b = (p.get_value() for p in cell.params)
    xv, hv, xb, hb = pt.vector(), pt.vector(), pt.matrix(), pt.matrix()
    f = compile_([xv, hv, xb, hb], [cell.activate(xv, hv), cell.activate(xb, hb)])
    x1, h1 = rng.normal(size=I), rng.normal(size=H)
    x2, h2 = rng.normal(size=(B, I)), rng.normal(size=(B, H))
    out_v, out_b = f(x1, h1, x2, h2)
    np.testing.assert_allclose(out_v, ref.rnn_step(x1, h1, W, U, b, np_act), rtol=1e-12)
    np.testing.assert_allclose(out_b, ref.rnn_step(x2, h2, W, U, b, np_act), rtol=1e-12)


@pytest.mark.parametrize("peepholes", [False, True])
def test_lstm_matches_reference(peepholes, rng):
    cell = tl.LSTM(I, H, peepholes=peepholes, rng=0)
    randomize(cell, rng)
    values = [p.get_value() for p in cell.params]
    W, U, b = values[:3]
    peeps = list(values[3]) if peepholes else [None, None, None]
    xv, sv, xb, sb = pt.vector(), pt.vector(), pt.matrix(), pt.matrix()
    f = compile_([xv, sv, xb, sb], [cell.activate(xv, sv), cell.activate(xb, sb)])
    x1, s1 = rng.normal(size=I), rng.normal(size=2 * H)
    x2, s2 = rng.normal(size=(B, I)), rng.normal(size=(B, 2 * H))
    out_v, out_b = f(x1, s1, x2, s2)
    for x, s, out in ((x1, s1, out_v), (x2, s2, out_b)):
        c, h = s[..., :H], s[..., H:]
        c_new, h_new = ref.lstm_step(x, c, h, *blocks(W, 4, H), *blocks(U, 4, H), *blocks(b, 4, H),
                                     pi=peeps[0], pf=peeps[1], po=peeps[2])
        np.testing.assert_allclose(out, np.concatenate([c_new, h_new], axis=-1), rtol=1e-12)


@pytest.mark.parametrize("peepholes", [False, True])
def test_cifg_lstm_matches_reference(peepholes, rng):
    cell = tl.LSTM(I, H, peepholes=peepholes, coupled_gates=True, rng=0)
    assert cell.forget_gate is None and cell.linear_matrix.get_value().shape == (I, 3 * H)
    randomize(cell, rng)
    values = [p.get_value() for p in cell.params]
    W, U, b = values[:3]
    peeps = list(values[3]) if peepholes else [None, None]
    xb, sb = pt.matrix(), pt.matrix()
    f = compile_([xb, sb], cell.activate(xb, sb))
    x, s = rng.normal(size=(B, I)), rng.normal(size=(B, 2 * H))
    c_new, h_new = ref.cifg_lstm_step(x, s[:, :H], s[:, H:], *blocks(W, 3, H), *blocks(U, 3, H), *blocks(b, 3, H),
                                      pi=peeps[0], po=peeps[1])
    np.testing.assert_allclose(f(x, s), np.concatenate([c_new, h_new], axis=-1), rtol=1e-12)
    with pytest.raises(ValueError, match="forget_bias has no meaning with coupled_gates=True"):
        tl.LSTM(I, H, coupled_gates=True, forget_bias=1.0)


@pytest.mark.parametrize("reset,gate", [("before", "sigmoid"), ("after", "sigmoid"), ("before", "hard_sigmoid")])
def test_gru_matches_reference(reset, gate, rng):
    cell = tl.GRU(I, H, reset=reset, gate_activation=gate, rng=0)
    randomize(cell, rng)
    values = [p.get_value() for p in cell.params]
    W, U, b = values[:3]
    cs = blocks(values[3], 3, H) if reset == "after" else [None] * 3
    np_gate = ref.sigmoid if gate == "sigmoid" else ref.hard_sigmoid
    xv, hv, xb, hb = pt.vector(), pt.vector(), pt.matrix(), pt.matrix()
    f = compile_([xv, hv, xb, hb], [cell.activate(xv, hv), cell.activate(xb, hb)])
    x1, h1 = rng.normal(size=I), rng.normal(size=H)
    x2, h2 = rng.normal(size=(B, I)), rng.normal(size=(B, H))
    for (x, h), out in zip(((x1, h1), (x2, h2)), f(x1, h1, x2, h2)):
        want = ref.gru_step(x, h, *blocks(W, 3, H), *blocks(U, 3, H), *blocks(b, 3, H), *cs, reset=reset, gate=np_gate)
        np.testing.assert_allclose(out, want, rtol=1e-12)


def test_layer_gated_input_and_embedding_match_reference(rng):
    layer = tl.Layer(I, H, "sigmoid", rng=0)
    randomize(layer, rng)
    gate = tl.GatedInput(I, H, rng=0)
    randomize(gate, rng)
    emb = tl.Embedding(7, H, rng=0)
    xb, hb, idx, idx_m, idx_s = pt.matrix(), pt.matrix(), pt.ivector(), pt.imatrix(), pt.iscalar()
    g = gate.activate(xb, hb)
    f = compile_([xb, hb, idx, idx_m, idx_s],
                 [layer.activate(xb), g, gate.postprocess_activation(g, xb), emb.activate(idx), emb.activate(idx_m), emb.activate(idx_s)])
    x, h = rng.normal(size=(B, I)), rng.normal(size=(B, H))
    iv, im = np.array([0, 6, 3], "int32"), np.array([[1, 2], [5, 0]], "int32")
    out = f(x, h, iv, im, np.int32(4))
    W, b = (p.get_value() for p in layer.params)
    np.testing.assert_allclose(out[0], ref.layer(x, W, b, ref.sigmoid), rtol=1e-12)
    g_ref, gx_ref = ref.gated_input(x, h, *(p.get_value() for p in gate.params))
    assert out[1].shape == (B, 1)
    np.testing.assert_allclose(out[1], g_ref, rtol=1e-12)
    np.testing.assert_allclose(out[2], gx_ref, rtol=1e-12)
    E = emb.embedding_matrix.get_value()
    np.testing.assert_array_equal(out[3], E[iv])
    np.testing.assert_array_equal(out[4], E[im])
    np.testing.assert_array_equal(out[5], E[4])


def test_softmax_layer_rows_sum_to_one(rng):
    layer = tl.Layer(I, 5, "softmax", rng=0)
    randomize(layer, rng)
    x = pt.matrix()
    xv = rng.normal(size=(B, I))
    out = compile_([x], layer.activate(x))(xv)
    W, b = (p.get_value() for p in layer.params)
    np.testing.assert_allclose(out, ref.layer(xv, W, b, ref.softmax), rtol=1e-12)
    np.testing.assert_allclose(out.sum(axis=-1), 1.0, rtol=1e-12)


# ------------------------------------------------------------------ golden values
# Constant weights; expected numbers worked out by hand from the equations.

SIG02 = 1 / (1 + math.exp(-0.2))  # sigmoid(0.2) = 0.549833997...


def _const(cell, w):
    cell.params = [np.full(p.get_value().shape, w) for p in cell.params]


def test_golden_values():
    x = np.ones(2)
    # RNN: W = U = 0.1, b = 0.1, h0 = 0 -> h = tanh(2 * 0.1 + 0.1) = tanh(0.3)
    rnn = tl.RNN(2, 3, rng=0)
    _const(rnn, 0.1)
    # LSTM: all weights and biases 0.05, x = 1, c = h = 0 -> every gate sees 2*0.05 + 0.05 = 0.15
    lstm = tl.LSTM(2, 3, rng=0)
    _const(lstm, 0.05)
    # GRU (reset before): all 0.1, h0 = 0 -> r = z = sigmoid(0.3), n = tanh(0.3), h = (1 - z) n
    gru = tl.GRU(2, 3, rng=0)
    _const(gru, 0.1)
    # Layer: W = 0.1, b = 0 -> sigmoid(0.2)
    layer = tl.Layer(2, 3, "sigmoid", rng=0)
    _const(layer, 0.1)
    layer.bias_matrix.set_value(np.zeros(3))
    out = compile_([], [rnn.activate(x, np.zeros(3)), lstm.activate(x, np.zeros(6)), gru.activate(x, np.zeros(3)), layer.activate(x)])()
    np.testing.assert_allclose(out[0], [0.291312612451591] * 3, rtol=1e-12)  # tanh(0.3)
    s = 1 / (1 + math.exp(-0.15))  # 0.53742985...
    c = s * math.tanh(0.15)  # i * g
    np.testing.assert_allclose(out[1], [c] * 3 + [s * math.tanh(c)] * 3, rtol=1e-12)
    np.testing.assert_allclose(out[1][:3], 0.0800152606, rtol=1e-9)  # sigmoid(0.15) * tanh(0.15)
    z = 1 / (1 + math.exp(-0.3))
    np.testing.assert_allclose(out[2], [(1 - z) * math.tanh(0.3)] * 3, rtol=1e-12)
    np.testing.assert_allclose(out[3], [SIG02] * 3, rtol=1e-12)
    np.testing.assert_allclose(out[3], 0.549833997312478, rtol=1e-12)


# ------------------------------------------------------------------ gradients


@pytest.mark.parametrize(
    "make",
    [
        lambda: tl.RNN(I, H, rng=0),
        lambda: tl.LSTM(I, H, rng=0),
        lambda: tl.LSTM(I, H, peepholes=True, rng=0),
        lambda: tl.LSTM(I, H, peepholes=True, coupled_gates=True, rng=0),
        lambda: tl.GRU(I, H, rng=0),
        lambda: tl.GRU(I, H, reset="after", rng=0),
    ],
    ids=["rnn", "lstm", "lstm-peepholes", "cifg-peepholes", "gru", "gru-reset-after"],
)
def test_cell_gradients(make, rng):
    cell = make()
    randomize(cell, rng)
    n_w = len(cell.params)

    def fn(x, s, *ws):
        # Rebuild the step from explicit weights: input projection + step.
        W, b = ws[0], ws[2]
        rest = list(ws[1:2]) + list(ws[3:])
        if isinstance(cell, tl.GRU) and cell.reset == "before":
            U = ws[1]
            rest = [U[:, : 2 * H], U[:, 2 * H :]]
        elif isinstance(cell, tl.GRU):
            rest = [ws[1], ws[3]]
        xw = cell.input_projection(x, [W, b])
        new = cell.step(xw, cell.unpack(s), rest)
        return cell.pack(new).sum() + (cell.pack(new) ** 2).sum()

    pts = [rng.normal(size=(B, I)), rng.normal(size=(B, cell.state_size))] + [p.get_value() for p in cell.params]
    assert len(pts) == 2 + n_w
    verify_grad(fn, pts, rng=np.random.default_rng(0), mode=backend.get_mode())


def test_layer_and_gated_input_gradients(rng):
    layer = tl.Layer(I, H, "tanh", rng=0)
    gate = tl.GatedInput(I, H, rng=0)
    randomize(gate, rng)

    def fn(x, h, W, b, gx, gh, gb):
        y = layer.activate(x, [W, b])
        g = gate.activate(x, h, [gx, gh, gb])
        return (y ** 2).sum() + (gate.postprocess_activation(g, x) ** 2).sum()

    pts = [rng.normal(size=(B, I)), rng.normal(size=(B, H)), rng.normal(size=(I, H)), rng.normal(size=H),
           *(p.get_value() for p in gate.params)]
    verify_grad(fn, pts, rng=np.random.default_rng(0), mode=backend.get_mode())


def test_activate_uses_shared_parameters_for_gradients(rng):
    """The 2014 path (activate on shared params) differentiates w.r.t. every parameter."""
    cell = tl.LSTM(I, H, peepholes=True, learn_init=True, rng=0)
    randomize(cell, rng)
    x = pt.matrix()
    s0 = pt.shape_padleft(cell.initial_hidden_state).repeat(B, axis=0)
    cost = (cell.activate(x, s0) ** 2).sum()
    grads = pytensor.grad(cost, cell.params)
    out = compile_([x], grads)(rng.normal(size=(B, I)))
    assert len(out) == 5
    for g in out:
        assert np.all(np.isfinite(g)) and np.any(g != 0)


# ------------------------------------------------------------------ 2014 API


def test_gate_activation_reassignment_changes_graph(rng):
    model = tl.StackedCells(I, celltype=tl.LSTM, layers=[H], rng=0)
    lstm = model.layers[0]
    randomize(lstm, rng)
    x = rng.normal(size=I)
    before = compile_([], model.forward(x)[0])()
    model.layers[0].in_gate2.activation = lambda v: v
    after = compile_([], model.forward(x)[0])()
    W, U, b = (p.get_value() for p in lstm.params)
    c_lin, h_lin = ref.lstm_step(x, np.zeros(H), np.zeros(H), *blocks(W, 4, H), *blocks(U, 4, H), *blocks(b, 4, H),
                                 cand_act=lambda v: v)
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, np.concatenate([c_lin, h_lin]), rtol=1e-12)
    model.layers[0].out_gate.activation = "hard_sigmoid"
    assert model.layers[0].out_gate.activation is backend.hard_sigmoid


def test_params_setter_arrays_shared_and_errors(rng):
    cell = tl.RNN(I, H, rng=0)
    W = rng.normal(size=(I, H))
    cell.params = [W, np.eye(H), np.ones(H)]
    np.testing.assert_array_equal(cell.linear_matrix.get_value(), W)
    tied = pytensor.shared(np.zeros((H, H)), name="tied")
    cell.params = [W, tied, np.ones(H)]
    assert cell.recurrent_matrix is tied and cell.params[1] is tied
    with pytest.raises(ValueError, match=r"has 3 parameters .* but 2 values were given"):
        cell.params = [W, W]
    with pytest.raises(ValueError, match=r"recurrent_matrix must have shape \(4, 4\), received \(3, 3\)"):
        cell.params = [W, np.eye(3), np.ones(H)]
    with pytest.raises(ValueError, match=r"linear_matrix must have shape \(3, 4\), received \(4, 4\)"):
        cell.params = [pytensor.shared(np.zeros((H, H))), np.eye(H), np.ones(H)]
    # a failed assignment changed nothing
    np.testing.assert_array_equal(cell.linear_matrix.get_value(), W)


def test_param_names_and_dtypes():
    lstm = tl.LSTM(I, H, peepholes=True, learn_init=True, name="enc", dtype="float32", rng=0)
    assert [p.name for p in lstm.params] == [
        "enc.linear_matrix", "enc.recurrent_matrix", "enc.bias_matrix", "enc.peephole_matrix", "enc.initial_hidden_state"]
    assert all(p.dtype == "float32" for p in lstm.params)
    assert all(p.type.shape == p.get_value().shape for p in lstm.params)  # static shapes (JAX)
    model = tl.StackedCells(I, celltype=tl.GRU, layers=[H, H], rng=0)
    assert [p.name for p in model.params][:3] == ["layers.0.GRU.linear_matrix", "layers.0.GRU.recurrent_matrix", "layers.0.GRU.bias_matrix"]


def test_initial_hidden_state_default_and_learnable():
    lstm = tl.LSTM(I, H, rng=0)
    assert lstm.initial_hidden_state.eval().shape == (2 * H,)
    assert not np.any(lstm.initial_hidden_state.eval())
    assert len(lstm.params) == 3
    with pytest.raises(AttributeError, match="learn_init=False"):
        lstm.initial_hidden_state = np.zeros(2 * H)
    learn = tl.GRU(I, H, learn_init=True, rng=0)
    assert learn.params[-1] is learn.initial_hidden_state
    assert learn.initial_hidden_state.get_value().shape == (H,)


def test_is_recursive_and_postprocess():
    assert tl.LSTM(I, H, rng=0).is_recursive and tl.RNN(I, H, rng=0).is_recursive and tl.GRU(I, H, rng=0).is_recursive
    assert not tl.Layer(I, H, "tanh", rng=0).is_recursive and not tl.Embedding(5, H, rng=0).is_recursive
    lstm = tl.LSTM(I, 2, rng=0)
    packed = np.arange(4.0)
    np.testing.assert_array_equal(lstm.postprocess_activation(packed).eval(), [2.0, 3.0])
    c, h = tl.split_lstm_state(packed, 2)
    np.testing.assert_array_equal(c.eval(), [0.0, 1.0])


def test_biases_start_at_zero_and_forget_bias():
    lstm = tl.LSTM(I, H, forget_bias=1.0, rng=0)
    b = lstm.bias_matrix.get_value()
    np.testing.assert_array_equal(b[H : 2 * H], 1.0)
    np.testing.assert_array_equal(np.delete(b, np.s_[H : 2 * H]), 0.0)
    assert not np.any(tl.Layer(I, H, "tanh", rng=0).bias_matrix.get_value())


def test_seeded_construction_is_reproducible():
    a, b, c = tl.LSTM(I, H, rng=7), tl.LSTM(I, H, rng=7), tl.LSTM(I, H, rng=8)
    np.testing.assert_array_equal(a.linear_matrix.get_value(), b.linear_matrix.get_value())
    assert not np.array_equal(a.linear_matrix.get_value(), c.linear_matrix.get_value())


def test_clip_gradients_clips_the_backprop_message(rng):
    layer = tl.Layer(I, H, "linear", clip_gradients=0.1, rng=0)
    x = pt.matrix()
    cost = (100.0 * layer.activate(x)).sum()  # d cost / d pre-activation = 100 -> clipped to 0.1
    gx = compile_([x], pytensor.grad(cost, x))(rng.normal(size=(B, I)))
    W = layer.linear_matrix.get_value()
    np.testing.assert_allclose(gx, np.tile(0.1 * W.sum(axis=1), (B, 1)), rtol=1e-12)
    free = tl.Layer(I, H, "linear", rng=0)
    gx_free = compile_([x], pytensor.grad((100.0 * free.activate(x)).sum(), x))(np.zeros((B, I)))
    np.testing.assert_allclose(gx_free, np.tile(100 * W.sum(axis=1), (B, 1)), rtol=1e-12)


def test_hidden_size_one(rng):
    for cell in (tl.RNN(I, 1, rng=0), tl.LSTM(I, 1, rng=0), tl.GRU(I, 1, rng=0)):
        x, s = pt.matrix(), pt.matrix()
        out = compile_([x, s], cell.activate(x, s))(rng.normal(size=(B, I)), np.zeros((B, cell.state_size)))
        assert out.shape == (B, cell.state_size)


# ------------------------------------------------------------------ bad input


def test_bad_input_errors():
    lstm = tl.LSTM(4, H, rng=0)
    with pytest.raises(ValueError, match="x has 5 features but this LSTM was built with 4"):
        lstm.activate(pt.matrix(shape=(None, 5)), pt.matrix())
    with pytest.raises(ValueError, match=r"previous state of LSTM must have 8 features on its last axis, received shape \(None, 4\)"):
        lstm.activate(pt.matrix(shape=(None, 4)), pt.matrix(shape=(None, 4)))
    with pytest.raises(TypeError, match="x must be a float tensor, received dtype int64"):
        lstm.activate(pt.lmatrix(), pt.matrix())
    with pytest.raises(TypeError, match="embedding indices must be an integer tensor, received dtype float64"):
        tl.Embedding(5, 3).activate(pt.matrix())
    with pytest.raises(ValueError, match="hidden_size must be a positive int, received 0"):
        tl.LSTM(3, 0)
    with pytest.raises(ValueError, match="input_size must be a positive int, received -2"):
        tl.Layer(-2, 3, "tanh")
    with pytest.raises(TypeError, match=r"hidden_size must be a positive int, received 2.5 \(float\)"):
        tl.RNN(3, 2.5)
    with pytest.raises(ValueError, match=r"unknown activation 'tanhh'; expected one of"):
        tl.RNN(3, 2, activation="tanhh")
    with pytest.raises(ValueError, match="reset must be 'before' or 'after', received 'middle'"):
        tl.GRU(3, 2, reset="middle")
    with pytest.raises(ValueError, match="clip_gradients must be False or a positive number, received -1"):
        tl.RNN(3, 2, clip_gradients=-1)
    with pytest.raises(ValueError, match="dtype must be 'float32' or 'float64', received 'int8'"):
        tl.RNN(3, 2, dtype="int8")


def test_zero_initializers_are_honoured():
    """``W_init=0.0`` means zeros, not "use the default" (0.0 is falsy)."""
    layer = tl.Layer(I, H, "tanh", W_init=0.0, rng=0)
    lstm = tl.LSTM(I, H, W_init=0.0, U_init=0.0, peepholes=True, P_init=0.0, rng=0)
    assert not np.any(layer.linear_matrix.get_value())
    assert not any(np.any(p.get_value()) for p in lstm.params)
