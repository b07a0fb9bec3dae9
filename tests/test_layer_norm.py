"""Layer-normalized LSTM and GRU: NumPy reference, gradients, the runner, masks, JAX."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.gradient import verify_grad
from pytensor.graph.replace import clone_replace

import theano_lstm as tl
from theano_lstm import backend
from theano_lstm.layer_norm import LayerNormGRU, LayerNormLSTM, layer_norm
from tests._util import requires_jax

I, H, B, T = 3, 4, 2, 4

# ------------------------------------------------------------ NumPy reference
# Written from the equations of Ba, Kiros & Hinton (2016) with per-gate weight
# blocks passed by gate name, so the library's fused layout is not reused here.


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def norm(a, eps):
    """(a - mean) / sqrt(var + eps) over the last axis."""
    mu = a.mean(axis=-1, keepdims=True)
    var = ((a - mu) ** 2).mean(axis=-1, keepdims=True)
    return (a - mu) / np.sqrt(var + eps)


def ln_lstm_step(x, c, h, p, eps, h_mask=None):
    """a_g = gx_g LN(x W_g) + gh_g LN(h U_g) + bh_g + b_g;  h' = o tanh(gc LN(c') + bc)."""
    hm = h if h_mask is None else h * h_mask
    a = {g: p["gx"][g] * norm(x @ p["W"][g], eps) + p["gh"][g] * norm(hm @ p["U"][g], eps) + p["bh"][g] + p["b"][g]
         for g in "ifgo"}
    i, f, o = sigmoid(a["i"]), sigmoid(a["f"]), sigmoid(a["o"])
    c_new = f * c + i * np.tanh(a["g"])
    return c_new, o * np.tanh(p["gc"] * norm(c_new, eps) + p["bc"])


def ln_gru_step(x, h, p, eps, reset, h_mask=None):
    hm = h if h_mask is None else h * h_mask
    ax = {g: p["gx"][g] * norm(x @ p["W"][g], eps) for g in "rzn"}

    def rec(v, g):
        return p["gh"][g] * norm(v @ p["U"][g], eps) + p["bh"][g]

    r = sigmoid(ax["r"] + rec(hm, "r") + p["b"]["r"])
    z = sigmoid(ax["z"] + rec(hm, "z") + p["b"]["z"])
    if reset == "after":
        n = np.tanh(ax["n"] + p["b"]["n"] + r * rec(hm, "n"))
    else:
        n = np.tanh(ax["n"] + p["b"]["n"] + rec(r * hm, "n"))
    return (1.0 - z) * n + z * h


def split(cell, gates):
    """Per-gate blocks of every fused parameter (the layout assumption lives here)."""
    short = {"linear_matrix": "W", "recurrent_matrix": "U", "bias_matrix": "b", "input_gain": "gx",
             "recurrent_gain": "gh", "recurrent_bias": "bh", "cell_gain": "gc", "cell_bias": "bc"}
    p = {}
    for attr, key in short.items():
        if not hasattr(cell, attr):
            continue
        v = getattr(cell, attr).get_value()
        p[key] = v if key in ("gc", "bc") else {g: v[..., k * H : (k + 1) * H] for k, g in enumerate(gates)}
    return p


def randomize(cell, rng, scale=0.5):
    """Random values for every parameter, gains around 1 so no term hides."""
    values = []
    for attr, p in zip(cell._param_attrs, cell.params):
        shape = p.get_value().shape
        values.append(rng.normal(1.0 if "gain" in attr else 0.0, scale, shape))
    cell.params = values


def make(celltype, sizes=(4, 5), head=2, **kw):
    model = tl.StackedCells(I, celltype=celltype, layers=list(sizes), rng=0, **kw)
    if head:
        model.layers.append(tl.Layer(sizes[-1], head, "tanh", rng=1))
    rng = np.random.default_rng(2)
    for layer in model.layers:
        randomize(layer, rng)
    return model


# ---------------------------------------------------------------- layer_norm


def test_layer_norm_function_matches_numpy(rng):
    x = pt.tensor3("x")
    gain, bias = rng.normal(size=6), rng.normal(size=6)
    f = backend.function([x], [layer_norm(x, gain, bias, n_blocks=3, eps=0.1), layer_norm(x)])
    xv = rng.normal(size=(2, 3, 6)) * 5 + 3
    blocked, whole = f(xv)
    want = np.concatenate([norm(xv[..., k * 2 : (k + 1) * 2], 0.1) for k in range(3)], axis=-1) * gain + bias
    np.testing.assert_allclose(blocked, want, rtol=1e-12)
    np.testing.assert_allclose(whole, norm(xv, 1e-5), rtol=1e-12)
    np.testing.assert_allclose(whole.mean(-1), 0.0, atol=1e-12)
    with pytest.raises(ValueError, match="6 features, which is not a multiple of n_blocks=4"):
        layer_norm(pt.matrix(shape=(None, 6)), n_blocks=4)


# ---------------------------------------------------------------- reference


def test_lstm_matches_reference_vector_batch_and_recurrent_mask(rng):
    eps = 1e-2
    cell = LayerNormLSTM(I, H, eps=eps, rng=0)
    randomize(cell, rng)
    xv, sv, xb, sb, m = pt.vector(), pt.vector(), pt.matrix(), pt.matrix(), pt.matrix()
    masked = cell.step(cell.input_projection(xb), cell.unpack(sb), h_mask=m)
    f = backend.function([xv, sv, xb, sb, m], [cell.activate(xv, sv), cell.activate(xb, sb), *masked])
    x1, s1 = rng.normal(size=I), rng.normal(size=2 * H)
    x2, s2 = rng.normal(size=(B, I)), rng.normal(size=(B, 2 * H))
    mv = rng.integers(0, 2, size=(B, H)) * 2.0
    out_v, out_b, c_m, h_m = f(x1, s1, x2, s2, mv)
    p = split(cell, "ifgo")
    for x, s, out in ((x1, s1, out_v), (x2, s2, out_b)):
        c_new, h_new = ln_lstm_step(x, s[..., :H], s[..., H:], p, eps)
        np.testing.assert_allclose(out, np.concatenate([c_new, h_new], axis=-1), rtol=1e-12, atol=1e-14)
    c_ref, h_ref = ln_lstm_step(x2, s2[:, :H], s2[:, H:], p, eps, h_mask=mv)
    np.testing.assert_allclose(c_m, c_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h_m, h_ref, rtol=1e-12, atol=1e-14)
    # once the variances dwarf eps the cell is invariant to the scale of W and U
    # (the cell's eps is large, so compare two large scales); a gain is not a no-op
    def scaled(k):
        cell.linear_matrix.set_value(cell.linear_matrix.get_value() * k)
        cell.recurrent_matrix.set_value(cell.recurrent_matrix.get_value() * k)
        return f(x1, s1, x2, s2, mv)[1]

    big = scaled(100.0)
    assert not np.allclose(big, out_b, rtol=1e-3)  # eps matters at the original scale
    np.testing.assert_allclose(scaled(10.0), big, rtol=1e-4, atol=1e-5)
    cell.cell_gain.set_value(cell.cell_gain.get_value() * 2.0)
    assert not np.allclose(f(x1, s1, x2, s2, mv)[1], big, rtol=1e-3)


@pytest.mark.parametrize("reset", ["before", "after"])
def test_gru_matches_reference_vector_batch_and_recurrent_mask(reset, rng):
    cell = LayerNormGRU(I, H, reset=reset, rng=0)
    randomize(cell, rng)
    xv, hv, xb, hb, m = pt.vector(), pt.vector(), pt.matrix(), pt.matrix(), pt.matrix()
    (masked,) = cell.step(cell.input_projection(xb), (hb,), h_mask=m)
    f = backend.function([xv, hv, xb, hb, m], [cell.activate(xv, hv), cell.activate(xb, hb), masked])
    x1, h1 = rng.normal(size=I), rng.normal(size=H)
    x2, h2 = rng.normal(size=(B, I)), rng.normal(size=(B, H))
    mv = rng.integers(0, 2, size=(B, H)) * 2.0
    out_v, out_b, out_m = f(x1, h1, x2, h2, mv)
    p = split(cell, "rzn")
    np.testing.assert_allclose(out_v, ln_gru_step(x1, h1, p, 1e-5, reset), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(out_b, ln_gru_step(x2, h2, p, 1e-5, reset), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(out_m, ln_gru_step(x2, h2, p, 1e-5, reset, h_mask=mv), rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------- gradients


@pytest.mark.parametrize(
    "make_cell",
    [lambda: LayerNormLSTM(I, H, rng=0), lambda: LayerNormGRU(I, H, rng=0),
     lambda: LayerNormGRU(I, H, reset="after", rng=0)],
    ids=["lstm", "gru-before", "gru-after"],
)
def test_cell_gradients(make_cell, rng):
    cell = make_cell()
    randomize(cell, rng)
    params = cell.params

    def fn(x, s, *values):
        out = clone_replace(cell.activate(x, s), replace=dict(zip(params, values)))
        return (out * np.linspace(-1.0, 2.0, cell.state_size)).sum()

    pts = [rng.normal(size=(B, I)), rng.normal(size=(B, cell.state_size))] + [p.get_value() for p in params]
    verify_grad(fn, pts, rng=np.random.default_rng(0), mode=backend.get_mode())


@pytest.mark.parametrize(
    "celltype,kw,scan_kw",
    [(LayerNormLSTM, {"learn_init": True}, {"precompute": True}),
     (LayerNormGRU, {}, {"precompute": False, "go_backwards": True})],
    ids=["lstm-precomputed", "gru-in-loop-backwards"],
)
def test_runner_gradients_with_mask(celltype, kw, scan_kw, rng):
    model = make(celltype, sizes=(3,), head=0, **kw)
    params = model.params
    mask = np.ones((3, 2))
    mask[2, 1] = 0

    def fn(x, *values):
        out = clone_replace(model.scan(x, mask=mask, **scan_kw).outputs, replace=dict(zip(params, values)))
        return (out * np.linspace(0.5, 1.5, 3)).sum()

    pts = [rng.normal(size=(3, 2, I))] + [p.get_value() for p in params]
    verify_grad(fn, pts, rng=np.random.default_rng(0), mode=backend.get_mode())


# ---------------------------------------------------------------- runner


def loop_forward(model, xs):
    """Python loop over a compiled single-step ``forward`` (the 2014 API)."""
    x = pt.matrix()
    prev = [pt.matrix() if layer.is_recursive else None for layer in model.layers]
    step = backend.function([x] + [p for p in prev if p is not None], model.forward(x, prev_hiddens=prev))
    state = [np.zeros((xs.shape[1], layer.state_size)) if p is not None else None
             for layer, p in zip(model.layers, prev)]
    history = []
    for t in range(xs.shape[0]):
        new = step(xs[t], *[s for s in state if s is not None])
        state = [n if s is not None else None for n, s in zip(new, state)]
        history.append(new)
    return history


@pytest.mark.parametrize(
    "celltype,kw", [(LayerNormLSTM, {}), (LayerNormGRU, {"reset": "after"})], ids=["lstm", "gru-after"]
)
def test_runner_equals_python_loop_and_precompute_does_not_matter(celltype, kw, rng):
    model = make(celltype, **kw)
    x = pt.tensor3("x")
    res, res_loop = model.scan(x), model.scan(x, precompute=False)
    f = backend.function([x], [res.outputs, *res.states[:2], *res.final_states[:2], res_loop.outputs])
    xs = rng.normal(size=(T, B, I))
    out, s0, s1, f0, f1, out_loop = f(xs)
    history = loop_forward(model, xs)
    np.testing.assert_allclose(out, np.stack([h[-1] for h in history]), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(s0, np.stack([h[0] for h in history]), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(s1, np.stack([h[1] for h in history]), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(f0, history[-1][0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(f1, history[-1][1], rtol=1e-10, atol=1e-12)
    # normalizing the whole sequence's input projection at once == per step
    np.testing.assert_allclose(out_loop, out, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("celltype", [LayerNormLSTM, LayerNormGRU], ids=lambda c: c.__name__)
def test_masked_batch_equals_each_sequence_alone(celltype, rng):
    model = make(celltype)
    lengths = [4, 1, 3]
    xs = rng.normal(size=(T, 3, I))
    mask = (np.arange(T)[:, None] < np.array(lengths)[None, :]).astype(float)
    x, m, xv = pt.tensor3("x"), pt.matrix("m"), pt.matrix("xv")
    res, back = model.scan(x, mask=m), model.scan(x, mask=m, go_backwards=True)
    one, one_back = model.scan(xv), model.scan(xv, go_backwards=True)
    f = backend.function([x, m], [res.outputs, res.final_states[1], back.outputs, back.final_states[1]])
    g = backend.function([xv], [one.outputs, one.final_states[1], one_back.outputs, one_back.final_states[1]])
    batch = f(xs, mask)
    for j, n in enumerate(lengths):
        alone = g(xs[:n, j])
        for got, want, per_step in zip(batch, alone, (True, False, True, False)):
            np.testing.assert_allclose(got[:n, j] if per_step else got[j], want, rtol=1e-10, atol=1e-12)
    assert not np.allclose(batch[0][:, 0], batch[2][:, 0])


# ---------------------------------------------------------------- JAX


@requires_jax
def test_jax_mode_matches_default_mode(rng):
    """Forward of a masked LN-LSTM stack, forward and gradients of a backwards LN-GRU."""
    pytensor.config.floatX = "float32"
    lstm = make(LayerNormLSTM, sizes=(4,), head=2)
    gru = make(LayerNormGRU, sizes=(3,), head=0, reset="after")
    assert all(p.dtype == "float32" for p in lstm.params + gru.params)
    x, m = pt.tensor3("x"), pt.matrix("m")
    cost = (gru.scan(x, mask=m, go_backwards=True).outputs ** 2).sum()
    outputs = [lstm.scan(x, mask=m).outputs, cost] + pytensor.grad(cost, gru.params)
    xs = rng.normal(size=(T, B, I)).astype("float32")
    ms = np.ones((T, B), "float32")
    ms[2:, 1] = 0
    got = backend.function([x, m], outputs, mode="jax")(xs, ms)
    want = backend.function([x, m], outputs)(xs, ms)
    for a, b in zip(got, want):
        np.testing.assert_allclose(np.asarray(a), b, rtol=2e-4, atol=2e-5)
    assert np.abs(want[2]).max() > 0


# ---------------------------------------------------------------- API


def test_parameters_names_config_and_stacking():
    cell = LayerNormLSTM(I, H, forget_bias=1.0, eps=1e-3, learn_init=True, name="enc", rng=0)
    assert [p.name for p in cell.params] == [
        "enc.linear_matrix", "enc.recurrent_matrix", "enc.bias_matrix", "enc.input_gain", "enc.recurrent_gain",
        "enc.recurrent_bias", "enc.cell_gain", "enc.cell_bias", "enc.initial_hidden_state"]
    np.testing.assert_array_equal(cell.input_gain.get_value(), np.ones(4 * H))
    np.testing.assert_array_equal(cell.cell_gain.get_value(), np.ones(H))
    np.testing.assert_array_equal(cell.recurrent_bias.get_value(), np.zeros(4 * H))
    np.testing.assert_array_equal(cell.bias_matrix.get_value()[H : 2 * H], np.ones(H))
    np.testing.assert_array_equal(cell.bias_matrix.get_value()[2 * H :], np.zeros(2 * H))
    config = cell.get_config()
    assert config == dict(input_size=I, hidden_size=H, activation="tanh", clip_gradients=False, learn_init=True,
                          name="enc", forget_bias=1.0, eps=1e-3)
    rebuilt = LayerNormLSTM(**config)
    assert rebuilt.get_config() == config and [p.name for p in rebuilt.params] == [p.name for p in cell.params]
    gru = LayerNormGRU(I, H, gate_activation="hard_sigmoid", reset="after", rng=0)
    assert gru.get_config() == dict(input_size=I, hidden_size=H, activation="tanh", clip_gradients=False,
                                    learn_init=False, name="LayerNormGRU", gate_activation="hard_sigmoid",
                                    reset="after", eps=1e-5)
    assert [p.get_value().shape for p in gru.params] == [(I, 3 * H), (H, 3 * H), (3 * H,), (3 * H,), (3 * H,), (3 * H,)]
    model = tl.StackedCells(I, celltype=LayerNormGRU, layers=[4, 5], rng=0, eps=1e-4)
    assert model.layers[1].input_gain.name == "layers.1.LayerNormGRU.input_gain"
    assert model.layers[1].eps == 1e-4 and model.layers[1].input_size == 4
    assert model.layers[0].state_size == 4 and LayerNormLSTM(I, H).state_size == 2 * H


def test_bad_arguments():
    with pytest.raises(ValueError, match="eps must be a positive finite number, received 0.0"):
        LayerNormLSTM(I, H, eps=0.0)
    with pytest.raises(TypeError, match="eps must be a positive number"):
        LayerNormGRU(I, H, eps="small")
    with pytest.raises(ValueError, match="reset must be 'before' or 'after', received 'middle'"):
        LayerNormGRU(I, H, reset="middle")
    cell = LayerNormLSTM(I, H, rng=0)
    with pytest.raises(ValueError, match="x has 5 features but this LayerNormLSTM was built with 3"):
        cell.input_projection(pt.matrix(shape=(None, 5)))
    with pytest.raises(ValueError, match="step needs 6 weight tensors, received 1"):
        cell.step(pt.matrix(), (pt.matrix(), pt.matrix()), [cell.recurrent_matrix])
    with pytest.raises(ValueError, match="previous state of LayerNormLSTM must have 8 features"):
        cell.activate(pt.vector(), pt.vector(shape=(4,)))
