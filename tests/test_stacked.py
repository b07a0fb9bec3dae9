"""StackedCells: forward, the scan runner and its equivalences ("two code paths, one answer")."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.gradient import verify_grad

import theano_lstm as tl
from theano_lstm import backend
from tests import reference as ref
from tests._util import requires_jax

T, B, I = 5, 3, 4


def randomize(model, rng, scale=0.5):
    for layer in model.layers:
        layer.params = [rng.normal(0, scale, p.get_value().shape) for p in layer.params]


def make(celltype, sizes=(6, 5), head=3, rng_seed=0, **kw):
    model = tl.StackedCells(I, celltype=celltype, layers=list(sizes), rng=rng_seed, **kw)
    if head:
        model.layers.append(tl.Layer(sizes[-1], head, "softmax", rng=rng_seed + 1))
    randomize(model, np.random.default_rng(rng_seed + 2))
    return model


def loop_forward(model, xs, mask=None, dropout=None):
    """Python loop over a compiled single-step ``forward``: the reference for the runner."""
    x = pt.matrix()
    prev = [pt.matrix() if layer.is_recursive and layer.n_states else None for layer in model.layers]
    outs = model.forward(x, prev_hiddens=[p if p is not None else None for p in prev], dropout=dropout)
    ins = [x] + [p for p in prev if p is not None]
    step = backend.function(ins, outs, on_unused_input="ignore")
    state = [np.zeros((xs.shape[1], layer.state_size)) if p is not None else None for layer, p in zip(model.layers, prev)]
    history = []
    for t in range(xs.shape[0]):
        new = step(xs[t], *[s for s in state if s is not None])
        for k, p in enumerate(prev):
            if p is not None:
                if mask is not None:
                    new[k] = np.where(mask[t][:, None] > 0, new[k], state[k])
                state[k] = new[k]
        history.append(new)
    return history, state


CELLS = [tl.RNN, tl.LSTM, tl.GRU]


@pytest.mark.parametrize("celltype", CELLS, ids=lambda c: c.__name__)
def test_runner_equals_python_loop_of_forward(celltype, rng):
    model = make(celltype)
    x = pt.tensor3("x")
    res = model.scan(x)
    f = backend.function([x], [res.outputs] + res.states[:2] + res.final_states[:2])
    xs = rng.normal(size=(T, B, I))
    outputs, s0, s1, f0, f1 = f(xs)
    history, final = loop_forward(model, xs)
    np.testing.assert_allclose(outputs, np.stack([h[-1] for h in history]), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(s0, np.stack([h[0] for h in history]), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(s1, np.stack([h[1] for h in history]), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(f0, final[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(f1, final[1], rtol=1e-10, atol=1e-12)


def test_runner_matches_numpy_reference_lstm(rng):
    """Independent check: the reference step functions, not the library's forward."""
    model = make(tl.LSTM, sizes=(6,), head=0, peepholes=True)
    lstm = model.layers[0]
    W, U, b, P = (p.get_value() for p in lstm.params)
    H = 6
    blk = lambda M: [M[..., k * H : (k + 1) * H] for k in range(4)]  # noqa: E731
    x = pt.tensor3("x")
    xs = rng.normal(size=(T, B, I))
    hs = backend.function([x], model.scan(x).outputs)(xs)
    states = ref.run(lambda xt, s: ref.lstm_step(xt, *s, *blk(W), *blk(U), *blk(b), *P), xs, (np.zeros((B, H)), np.zeros((B, H))))
    np.testing.assert_allclose(hs, np.stack([s[1] for s in states]), rtol=1e-10)


@pytest.mark.parametrize("celltype", CELLS, ids=lambda c: c.__name__)
def test_masked_batch_equals_each_sequence_alone(celltype, rng):
    model = make(celltype)
    lengths = [5, 2, 4]
    xs = rng.normal(size=(T, B, I))
    mask = (np.arange(T)[:, None] < np.array(lengths)[None, :]).astype(float)
    x, m = pt.tensor3("x"), pt.matrix("m")
    res = model.scan(x, mask=m)
    res_back = model.scan(x, mask=m, go_backwards=True)
    f = backend.function([x, m], [res.outputs, res.final_states[1], res_back.outputs, res_back.final_states[1]])
    xv = pt.matrix("xv")  # one unpadded sequence (vector path)
    single, single_back = model.scan(xv), model.scan(xv, go_backwards=True)
    g = backend.function([xv], [single.outputs, single.final_states[1], single_back.outputs, single_back.final_states[1]])
    out, final, out_b, final_b = f(xs, mask)
    for j, n in enumerate(lengths):
        o, fs, ob, fsb = g(xs[:n, j])
        np.testing.assert_allclose(out[:n, j], o, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(final[j], fs, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(out_b[:n, j], ob, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(final_b[j], fsb, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("celltype", CELLS, ids=lambda c: c.__name__)
def test_precomputed_equals_not_and_backwards_equals_reversed(celltype, rng):
    model = make(celltype)
    x = pt.tensor3("x")
    a, b_ = model.scan(x, precompute=True), model.scan(x, precompute=False)
    back = model.scan(x, go_backwards=True)
    rev = model.scan(x[::-1])
    f = backend.function([x], [a.outputs, b_.outputs, back.outputs, rev.outputs[::-1], back.final_states[0], rev.final_states[0]])
    o1, o2, ob, orev, fb, frev = f(rng.normal(size=(T, B, I)))
    np.testing.assert_allclose(o1, o2, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ob, orev, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(fb, frev, rtol=1e-12, atol=1e-14)
    assert not np.allclose(ob, o1)


def test_runner_gradients_verify_grad(rng):
    model = make(tl.LSTM, sizes=(3, 2), head=2, peepholes=True, learn_init=True)
    params = model.params
    mask = np.ones((4, 2))
    mask[3, 1] = 0

    def fn(x, *values):
        replaced = pytensor.graph.replace.clone_replace(
            model.scan(x, mask=mask).outputs, replace=dict(zip(params, values)))
        return (replaced * np.linspace(0.5, 1.5, 2)).sum()

    pts = [rng.normal(size=(4, 2, I))] + [p.get_value() for p in params]
    verify_grad(fn, pts, rng=np.random.default_rng(0), mode=backend.get_mode())


@pytest.mark.parametrize("celltype", [tl.RNN, tl.GRU], ids=lambda c: c.__name__)
def test_runner_gradients_other_cells(celltype, rng):
    model = make(celltype, sizes=(3,), head=2, learn_init=True)
    params = model.params

    def fn(x, *values):
        out = pytensor.graph.replace.clone_replace(model.scan(x, go_backwards=True).outputs, replace=dict(zip(params, values)))
        return (out[..., 0] ** 2).sum()

    verify_grad(fn, [rng.normal(size=(3, 2, I))] + [p.get_value() for p in params], rng=np.random.default_rng(0), mode=backend.get_mode())


def test_learnable_initial_state_gets_a_gradient(rng):
    model = make(tl.LSTM, sizes=(4,), head=0, learn_init=True)
    init = model.layers[0].initial_hidden_state
    x = pt.tensor3("x")
    cost = (model.scan(x).outputs ** 2).sum()
    g = backend.function([x], pytensor.grad(cost, init))(rng.normal(size=(T, B, I)))
    assert g.shape == (8,) and np.all(g != 0)


def test_truncate_gradient_cuts_old_steps(rng):
    model = make(tl.RNN, sizes=(4,), head=0)
    x = pt.tensor3("x")
    full = pytensor.grad(model.scan(x).outputs[-1].sum(), x)
    cut = pytensor.grad(model.scan(x, truncate_gradient=2).outputs[-1].sum(), x)
    gf, gc = backend.function([x], [full, cut])(rng.normal(size=(T, B, I)))
    assert np.all(gc[: T - 2] == 0) and np.any(gf[: T - 2] != 0)
    np.testing.assert_allclose(gc[T - 2 :], gf[T - 2 :], rtol=1e-12)


def test_chunks_with_initial_states_equal_whole_sequence(rng):
    model = make(tl.LSTM, head=0)
    x = pt.tensor3("x")
    s0, s1 = pt.matrix("s0"), pt.matrix("s1")
    whole = model.scan(x)
    chunk = model.scan(x, initial_states=[s0, s1])
    f_whole = backend.function([x], whole.outputs)
    f_chunk = backend.function([x, s0, s1], [chunk.outputs] + chunk.final_states)
    xs = rng.normal(size=(6, B, I))
    zeros = [np.zeros((B, 12)), np.zeros((B, 10))]
    o1, a, b_ = f_chunk(xs[:3], *zeros)
    o2, _, _ = f_chunk(xs[3:], a, b_)
    np.testing.assert_allclose(np.concatenate([o1, o2]), f_whole(xs), rtol=1e-12)


def test_embedding_first_layer_and_vector_sequences(rng):
    model = tl.StackedCells(4, celltype=tl.GRU, layers=[5], rng=0)
    model.layers.insert(0, tl.Embedding(9, 4, rng=1))
    model.layers.append(tl.Layer(5, 9, "softmax", rng=2))
    tokens = pt.imatrix("tokens")
    one = pt.ivector("one")
    f = backend.function([tokens, one], [model.scan(tokens).outputs, model.scan(one).outputs])
    tv = rng.integers(0, 9, size=(T, B)).astype("int32")
    batch, single = f(tv, tv[:, 1])
    assert batch.shape == (T, B, 9)
    np.testing.assert_allclose(batch[:, 1], single, rtol=1e-12)
    # the 2014 forward path with integer tokens agrees at t = 0
    step = backend.function([one], model.forward(one)[-1])
    np.testing.assert_allclose(step(tv[0]), batch[0], rtol=1e-12)


def test_gated_input_in_a_stack_equals_forward_loop(rng):
    model = tl.StackedCells(I, celltype=tl.LSTM, layers=[], rng=0)
    model.layers = [tl.GatedInput(I, 6, rng=1), tl.LSTM(I, 6, rng=2), tl.Layer(6, 2, "linear", rng=3)]
    randomize(model, rng)
    x = pt.tensor3("x")
    res = model.scan(x)
    f = backend.function([x], [res.outputs, res.states[0], res.layer_outputs[0]])
    xs = rng.normal(size=(T, B, I))
    out, gates, gated = f(xs)
    history, _ = loop_forward(model, xs)
    np.testing.assert_allclose(out, np.stack([h[-1] for h in history]), rtol=1e-10)
    np.testing.assert_allclose(gates, np.stack([h[0] for h in history]), rtol=1e-10)
    np.testing.assert_allclose(gated, gates * xs, rtol=1e-10)


def test_dropout_masks_match_forward_and_neutral_masks_change_nothing(rng):
    model = make(tl.LSTM)
    x = pt.tensor3("x")
    masks = [rng.integers(0, 2, size=(B, I)) * 2.0, rng.integers(0, 2, size=(B, 6)) * 2.0, None]
    res = model.scan(x, dropout=masks)
    plain = model.scan(x)
    neutral = model.scan(
        x, recurrent_dropout=[np.ones((B, 6)), np.ones((B, 5)), None],
        zoneout=[np.zeros((T, B, 12)), np.zeros((B, 10)), None])
    keep_all = model.scan(x, zoneout=[np.ones((B, 12)), None, None])
    f = backend.function([x], [res.outputs, plain.outputs, neutral.outputs, keep_all.states[0]])
    xs = rng.normal(size=(T, B, I))
    out, out_plain, out_neutral, kept = f(xs)
    history, _ = loop_forward(model, xs, dropout=masks)
    np.testing.assert_allclose(out, np.stack([h[-1] for h in history]), rtol=1e-10)
    assert not np.allclose(out, out_plain)
    np.testing.assert_allclose(out_neutral, out_plain, rtol=1e-12)
    np.testing.assert_array_equal(kept, 0.0)  # zoneout of 1 keeps the (zero) initial state


def test_recurrent_dropout_matches_reference(rng):
    model = make(tl.GRU, sizes=(4,), head=0)
    gru = model.layers[0]
    W, U, b = (p.get_value() for p in gru.params)
    H = 4
    blk = lambda M: [M[..., k * H : (k + 1) * H] for k in range(3)]  # noqa: E731
    m = rng.integers(0, 2, size=(B, H)) * 2.0
    x = pt.tensor3("x")
    xs = rng.normal(size=(T, B, I))
    out = backend.function([x], model.scan(x, recurrent_dropout=[m]).outputs)(xs)

    def step(xt, s):
        (h,) = s
        Wr, Wz, Wn = blk(W)
        Ur, Uz, Un = blk(U)
        br, bz, bn = blk(b)
        hm = h * m
        r, z = ref.sigmoid(xt @ Wr + hm @ Ur + br), ref.sigmoid(xt @ Wz + hm @ Uz + bz)
        n = np.tanh(xt @ Wn + (r * hm) @ Un + bn)
        return ((1 - z) * n + z * h,)

    want = ref.run(step, xs, (np.zeros((B, H)),))
    np.testing.assert_allclose(out, np.stack([s[0] for s in want]), rtol=1e-10)


def test_bidirectional(rng):
    fwd, bwd = make(tl.LSTM, head=0), make(tl.LSTM, head=0, rng_seed=5)
    x = pt.tensor3("x")
    both, _, _ = tl.bidirectional(fwd, bwd, x)
    rev = bwd.scan(x[::-1]).outputs[::-1]
    f = backend.function([x], [both, fwd.scan(x).outputs, rev])
    out, o_f, o_b = f(rng.normal(size=(T, B, I)))
    assert out.shape == (T, B, 10)
    np.testing.assert_allclose(out, np.concatenate([o_f, o_b], axis=-1), rtol=1e-12)


def test_hidden_size_one_stack(rng):
    model = make(tl.LSTM, sizes=(1, 1), head=0)
    x = pt.tensor3("x")
    xs = rng.normal(size=(T, B, I))
    out = backend.function([x], model.scan(x).outputs)(xs)
    history, _ = loop_forward(model, xs)
    assert out.shape == (T, B, 1)
    np.testing.assert_allclose(out, np.stack([h[-1][:, 1:] for h in history]), rtol=1e-10)


def test_2014_api_params_forward_and_initial_state():
    model = tl.StackedCells(I, celltype=tl.LSTM, layers=[5, 6], rng=0)
    assert len(model.params) == 6
    model.layers.append(tl.Layer(6, 2, "softmax", rng=0))
    assert len(model.params) == 8
    out = model.forward(np.ones(I))
    assert [o.eval().shape for o in out] == [(10,), (12,), (2,)]
    states = model.initial_hidden_states()
    assert states[2] is None and states[0].eval().shape == (10,)
    with pytest.raises(ValueError, match="has 8 parameters but 3 values were given"):
        model.params = [1, 2, 3]


def test_runner_bad_input():
    model = make(tl.LSTM)
    with pytest.raises(ValueError, match=r"inputs must be \(time, batch, features\) or \(time, features\), received a tensor with 4 dimensions"):
        model.scan(pt.tensor4())
    with pytest.raises(ValueError, match="inputs has 7 features but this StackedCells was built with 4"):
        model.scan(pt.tensor3(shape=(None, None, 7)))
    with pytest.raises(ValueError, match=r"mask must have shape \(time, batch\) \(2 dimensions\), received 3 dimensions"):
        model.scan(pt.tensor3(), mask=pt.tensor3())
    with pytest.raises(ValueError, match="mask axis 1 has length 2 but inputs axis 1 has length 3"):
        model.scan(pt.tensor3(shape=(5, 3, 4)), mask=np.ones((5, 2)))
    with pytest.raises(ValueError, match=r"dropout must have one entry per layer \(3\), received 1"):
        model.scan(pt.tensor3(), dropout=[None])
    with pytest.raises(ValueError, match="zoneout\\[2\\] is set but layer 2 \\(Layer\\) is not recurrent"):
        model.scan(pt.tensor3(), zoneout=[None, None, np.ones(3)])
    with pytest.raises(ValueError, match=r"recurrent_dropout\[1\] must have 5 features on its last axis, received 6"):
        model.scan(pt.tensor3(), recurrent_dropout=[None, np.ones((3, 6)), None])
    with pytest.raises(ValueError, match=r"zoneout\[0\] must have 12 features on its last axis, received 6"):
        model.scan(pt.tensor3(), zoneout=[np.ones((3, 6)), None, None])
    with pytest.raises(ValueError, match=r"dropout\[0\] must have 4 features on its last axis, received 5"):
        model.scan(pt.tensor3(), dropout=[np.ones((3, 5)), None, None])
    with pytest.raises(TypeError, match="inputs must be a float tensor for a first layer LSTM, received dtype int32"):
        model.scan(pt.imatrix())
    with pytest.raises(ValueError, match="initial state of layers.0.LSTM must have 12 features, received shape"):
        model.scan(pt.tensor3(), initial_states=[np.zeros(6), None, None])
    with pytest.raises(TypeError, match="celltype must be a cell class"):
        tl.StackedCells(3, celltype=int, layers=[2])
    with pytest.raises(ValueError, match="input_size must be a positive int, received 0"):
        tl.StackedCells(0, layers=[2])
    gated = tl.StackedCells(I, layers=[])
    gated.layers = [tl.GatedInput(I, 3), tl.LSTM(I, 4)]
    with pytest.raises(ValueError, match="GatedInput at layer 0 has hidden_size=3 but the layer above has hidden_size=4"):
        gated.scan(pt.tensor3())


# ------------------------------------------------------------------ backends


def _backend_case(mode, xs, mask):
    model = make(tl.LSTM, sizes=(4,), head=2)
    x, m = pt.tensor3("x"), pt.matrix("m")
    res = model.scan(x, mask=m)
    cost = (res.outputs[..., 0] * m).sum()
    grads = pytensor.grad(cost, model.params)
    f = backend.function([x, m], [res.outputs, grads[0]], mode=mode)
    out, g = f(xs, mask)
    return backend.to_numpy(out), backend.to_numpy(g)


def test_backends_agree_c_and_numba(rng):
    xs, mask = rng.normal(size=(T, B, I)), np.ones((T, B))
    mask[3:, 0] = 0
    ref_out = _backend_case("fast_compile", xs, mask)
    for mode in ("c", "numba"):
        out = _backend_case(mode, xs, mask)
        np.testing.assert_allclose(out[0], ref_out[0], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(out[1], ref_out[1], rtol=1e-10, atol=1e-12)


@requires_jax
@pytest.mark.parametrize("celltype", [tl.RNN, tl.LSTM, tl.GRU, "gated"], ids=["RNN", "LSTM", "GRU", "GatedInput"])
def test_every_cell_compiles_and_trains_in_jax_mode(celltype, rng):
    pytensor.config.floatX = "float32"
    if celltype == "gated":
        model = tl.StackedCells(I, layers=[])
        model.layers = [tl.GatedInput(I, 4, rng=0), tl.LSTM(I, 4, peepholes=True, rng=1), tl.Layer(4, 2, "softmax", rng=2)]
    else:
        model = make(celltype, sizes=(4,), head=2)
        model.params = [np.asarray(p.get_value(), "float32") for p in model.params]
    x, m = pt.tensor3("x"), pt.matrix("m")
    res = model.scan(x, mask=m, go_backwards=True)
    cost = -(pt.log(res.outputs[..., 0]) * m).sum()
    grads = pytensor.grad(cost, model.params)
    xs = rng.normal(size=(T, B, I)).astype("float32")
    mask = np.ones((T, B), "float32")
    mask[2:, 1] = 0
    cpu = backend.function([x, m], [cost] + grads, mode="fast_compile")(xs, mask)
    upd = [(p, p - np.float32(0.1) * g) for p, g in zip(model.params, grads)]
    f = backend.function([x, m], [cost] + grads, updates=upd, mode="jax")
    out = f(xs, mask)
    for a, b_ in zip(out, cpu):
        np.testing.assert_allclose(backend.to_numpy(a), b_, rtol=2e-4, atol=1e-5)
    second = backend.to_numpy(f(xs, mask)[0])
    assert second < backend.to_numpy(out[0])  # one SGD step lowered the loss
    assert all(backend.to_numpy(p.get_value()).dtype == np.float32 for p in model.params)


def test_checkpointed_runner_equals_plain_runner(rng):
    """Memory-bounded BPTT: same outputs, final states and gradients as the plain runner."""
    model = make(tl.LSTM, sizes=(3,), head=2)
    x, m = pt.tensor3("x"), pt.matrix("m")
    plain = model.scan(x, mask=m)
    ckpt = model.scan(x, mask=m, checkpoint_every=3)  # 7 steps: padded to 9
    plain_b = model.scan(x, mask=m, go_backwards=True)
    ckpt_b = model.scan(x, mask=m, go_backwards=True, checkpoint_every=3)
    assert ckpt.states[0] is None and ckpt.layer_outputs[0] is not None
    grads = [pytensor.grad(((r.outputs * m[..., None]) ** 2).sum(), model.params) for r in (plain, ckpt)]
    f = backend.function([x, m], [plain.outputs, ckpt.outputs, plain.final_states[0], ckpt.final_states[0],
                                  plain_b.outputs, ckpt_b.outputs] + grads[0] + grads[1])
    mask = np.ones((7, B))
    mask[4:, 1] = 0
    out = f(rng.normal(size=(7, B, I)), mask)
    for a, b_ in ((out[0], out[1]), (out[2], out[3]), (out[4], out[5])):
        np.testing.assert_allclose(b_, a, rtol=1e-12, atol=1e-14)
    n = len(model.params)
    for a, b_ in zip(out[6 : 6 + n], out[6 + n :]):
        np.testing.assert_allclose(b_, a, rtol=1e-10, atol=1e-13)
    with pytest.raises(ValueError, match="checkpoint_every cannot be combined with truncate_gradient"):
        model.scan(x, checkpoint_every=2, truncate_gradient=3)
    with pytest.raises(ValueError, match="checkpoint_every must be a positive int, received 0"):
        model.scan(x, checkpoint_every=0)
