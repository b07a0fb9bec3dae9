"""Tests of theano_lstm.dropout: masks, RNG updates, and their effect inside StackedCells."""

import warnings
from collections import OrderedDict

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.tensor.random.basic import BernoulliRV, BinomialRV

from theano_lstm import GRU, LSTM, RNN, Embedding, Layer, StackedCells, backend
from theano_lstm.dropout import (
    Dropout,
    DropoutMasks,
    MultiDropout,
    StackedMasks,
    dropout_masks,
    rng_updates,
)
from tests._util import requires_jax

# ------------------------------------------------------ Dropout / MultiDropout


def test_multidropout_returns_list_of_masks_with_explicit_update():
    masks = MultiDropout([(2, 3), None, (4,)], 0.5, rng=0)
    assert isinstance(masks, DropoutMasks) and isinstance(masks, list)
    assert masks[1] is None
    assert [m.type.shape for m in (masks[0], masks[2])] == [(2, 3), (4,)]
    assert all(m.dtype == "float64" for m in (masks[0], masks[2]))
    assert list(masks.updates) == [masks.rng]
    # the update is the end of the chain: the generator state after both draws
    assert masks.updates[masks.rng] is not masks.rng
    assert rng_updates(masks[0], masks[2]) == masks.updates
    assert MultiDropout([(2,)], 0.5, rng=0, dtype="float32")[0].dtype == "float32"


def test_deterministic_masks_draw_nothing():
    masks = MultiDropout([(2, 3), (3,)], [0.2, 0.5], deterministic=True, inverted=False)
    assert masks.updates == OrderedDict() and masks.rng is None
    assert rng_updates(*masks) == OrderedDict()
    single = Dropout((2, 2), 0.5, deterministic=True)
    assert rng_updates(single) == OrderedDict()


@pytest.fixture(scope="module")
def draws_fn():
    """One compiled function with every mask the sampling tests look at."""
    p = pytensor.shared(np.asarray(0.3), name="p")
    inv = MultiDropout([(100, 100), (100, 100)], [0.3, p], rng=11)
    raw = MultiDropout([(100, 100)], 0.3, rng=12, inverted=False)
    det = MultiDropout([(2, 2), (2, 2)], 0.3, deterministic=True)
    det_raw = MultiDropout([(2, 2)], 0.3, deterministic=True, inverted=False)
    same_a = MultiDropout([(6, 7), (6, 7)], 0.5, rng=5)
    same_b = MultiDropout([(6, 7), (6, 7)], 0.5, rng=5)
    other = MultiDropout([(6, 7)], 0.5, rng=6)
    gen = np.random.default_rng(3)
    from_gen = [Dropout((6, 7), 0.5, rng=gen), Dropout((6, 7), 0.5, rng=gen)]
    gen_again = Dropout((6, 7), 0.5, rng=np.random.default_rng(3))
    outputs = [*inv, *raw, *det, *det_raw, *same_a, *same_b, *other, *from_gen, gen_again]
    updates = rng_updates(*outputs)
    assert len(updates) == 8  # one generator per call
    return p, backend.function([], outputs, updates=updates)


def test_keep_rate_and_values(draws_fn):
    p, f = draws_fn
    previous = None
    for _ in range(4):
        inv, inv_p, raw = f()[:3]
        # inverted: kept units scaled by 1/0.7, expected value 1
        np.testing.assert_allclose(np.unique(inv), [0.0, 1 / 0.7])
        np.testing.assert_array_equal(np.unique(raw), [0.0, 1.0])
        # 10^4 draws: sd of the keep rate is sqrt(0.21 / 1e4) = 0.0046; 5 sd
        for mask in (inv, inv_p):
            assert abs((mask != 0).mean() - 0.7) < 0.023
        assert abs(raw.mean() - 0.7) < 0.023
        assert abs(inv.mean() - 1.0) < 0.033
        # a fresh draw at every call (the update is applied)
        if previous is not None:
            assert not np.array_equal(inv, previous)
        previous = inv
    # a shared probability changes the keep rate without recompiling
    p.set_value(0.8)
    inv_p = f()[1]
    assert abs((inv_p != 0).mean() - 0.2) < 0.02
    np.testing.assert_allclose(np.unique(inv_p), [0.0, 5.0])
    p.set_value(0.3)


def test_deterministic_values(draws_fn):
    values = draws_fn[1]()
    det_a, det_b, det_raw = values[3:6]
    np.testing.assert_array_equal(det_a, np.ones((2, 2)))
    np.testing.assert_array_equal(det_b, np.ones((2, 2)))
    np.testing.assert_allclose(det_raw, np.full((2, 2), 0.7))


def test_same_seed_same_masks_other_seed_other_masks(draws_fn):
    values = draws_fn[1]()
    a0, a1, b0, b1, other, g0, g1, g_again = values[6:]
    np.testing.assert_array_equal(a0, b0)
    np.testing.assert_array_equal(a1, b1)
    assert not np.array_equal(a0, a1)  # two layers of one call differ
    assert not np.array_equal(a0, other)
    # one Generator passed to two calls: independent streams, reproducible from the seed
    assert not np.array_equal(g0, g1)
    np.testing.assert_array_equal(g0, g_again)


def test_rng_updates_follows_chains_and_rejects_reused_state():
    rng = pytensor.shared(np.random.default_rng(0))
    nxt1, a = pt.random.bernoulli(0.5, size=(2,), rng=rng, return_next_rng=True)
    nxt2, b = pt.random.bernoulli(0.5, size=(2,), rng=nxt1, return_next_rng=True)
    assert rng_updates(a + b) == OrderedDict([(rng, nxt2)])
    assert rng_updates(a) == OrderedDict([(rng, nxt1)])
    assert rng_updates(pt.ones(2)) == OrderedDict()
    _, c = pt.random.bernoulli(0.5, size=(2,), rng=rng, return_next_rng=True)
    with pytest.raises(ValueError, match="feeds two draws, which would be identical"):
        rng_updates(a, c)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: Dropout((2, 3), 1.5), ValueError, r"prob must be a probability in \[0, 1\], received 1.5"),
        (lambda: Dropout((2, 3), -0.1), ValueError, "received -0.1"),
        (lambda: Dropout((2, 3), 1.0), ValueError, r"prob=1.0 drops every unit; inverted dropout would rescale by 1/\(1 - prob\) = 1/0"),
        (lambda: Dropout((2, 3), True), TypeError, "prob must be a probability"),
        (lambda: Dropout((2, 3), "0.5"), TypeError, "prob must be a number or a scalar tensor, received str"),
        (lambda: Dropout((2, 3), pt.vector("p")), TypeError, "prob must be a float scalar, received a 1-d"),
        (lambda: Dropout((2, 0), 0.5), ValueError, r"shape must contain positive lengths, received \(2, 0\)"),
        (lambda: Dropout((2, 2.5), 0.5), TypeError, r"shape must contain ints .*received 2.5"),
        (lambda: Dropout("ab", 0.5), TypeError, "shape must be a non-empty tuple of ints"),
        (lambda: Dropout((2,), 0.5, rng="seed"), TypeError, "rng must be None, an int seed or a numpy Generator, received str"),
        (lambda: Dropout((2,), 0.5, rng=-1), ValueError, "rng seed must be >= 0, received -1"),
        (lambda: MultiDropout([(2,), (3,)], [0.1]), ValueError, "dropout has 1 probabilities but 2 shapes were given"),
        (lambda: MultiDropout([(2,), (3,)], [0.1, 2.0]), ValueError, r"dropout\[1\] must be a probability in \[0, 1\], received 2.0"),
        (lambda: MultiDropout((2, 3), 0.1), TypeError, r"shapes\[0\] must be a non-empty tuple of ints, received 2"),
        (lambda: MultiDropout(None, 0.1), TypeError, "shapes must be a list of mask shapes, received NoneType"),
    ],
)
def test_dropout_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_inverted_false_accepts_drop_everything():
    mask = Dropout((2,), 1.0, inverted=False, deterministic=True)
    assert mask.type.shape == (2,)


# --------------------------------------------------------------- dropout_masks


def _lstm_stack():
    model = StackedCells(3, celltype=LSTM, layers=[4, 5], rng=0)
    model.layers.append(Layer(5, 2, "softmax", rng=1))
    return model


def test_dropout_masks_shapes_for_every_kind():
    model = _lstm_stack()
    masks = dropout_masks(model, 2, 7, dropout=0.2, recurrent_dropout=0.3, zoneout=[(0.5, 0.05), 0.1, None], rng=0)
    assert isinstance(masks, StackedMasks)
    assert [m.type.shape for m in masks.dropout] == [(2, 3), (2, 4), (2, 5)]
    assert [m.type.shape for m in masks.recurrent_dropout[:2]] == [(2, 4), (2, 5)]
    assert masks.recurrent_dropout[2] is None  # the Layer head is not recurrent
    assert [m.type.shape for m in masks.zoneout[:2]] == [(7, 2, 8), (7, 2, 10)]
    assert masks.zoneout[2] is None
    assert set(masks.scan_kwargs()) == {"dropout", "recurrent_dropout", "zoneout"}
    assert len(masks.updates) == 1
    assert rng_updates(*[m for kind in masks[:3] for m in kind if m is not None]) == masks.updates

    per_step = dropout_masks(model, 2, 7, dropout=[0.2, None, None], recurrent_dropout=[0.1, None, None], variational=False)
    assert per_step.dropout[0].type.shape == (7, 2, 3) and per_step.recurrent_dropout[0].type.shape == (7, 2, 4)
    assert per_step.dropout[1:] == [None, None]

    unbatched = dropout_masks(model, None, 7, dropout=0.2, zoneout=0.1)
    assert [m.type.shape for m in unbatched.dropout] == [(3,), (4,), (5,)]
    assert unbatched.zoneout[0].type.shape == (7, 8)

    evaluation = dropout_masks(model, 2, dropout=0.2, recurrent_dropout=0.3, zoneout=0.1, deterministic=True)
    assert evaluation.updates == OrderedDict()
    assert evaluation.zoneout[1].type.shape == (2, 10)  # constant over time: no time axis needed
    assert dropout_masks(model, 2).updates == OrderedDict()  # nothing asked, nothing drawn


def test_dropout_masks_follow_layer_dtype_and_skip_embedding_input():
    pytensor.config.floatX = "float32"
    model = StackedCells(4, celltype=GRU, layers=[3], rng=0)
    model.layers.insert(0, Embedding(6, 4, rng=1))
    pytensor.config.floatX = "float64"
    masks = dropout_masks(model, 2, 5, dropout=0.5, recurrent_dropout=0.5, zoneout=0.5, rng=0)
    assert masks.dropout[0] is None  # a single number skips the Embedding's integer input
    assert all(m.dtype == "float32" for m in (masks.dropout[1], masks.recurrent_dropout[1], masks.zoneout[1]))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(dropout=[0.1, 0.2]), ValueError, r"dropout must have one entry per layer \(3\), received 2"),
        (dict(recurrent_dropout=[None, None, 0.2]), ValueError, r"recurrent_dropout\[2\] is set but layer 2 \(Layer\) is not a recurrent cell"),
        (dict(zoneout=[None, None, 0.2], time_steps=4), ValueError, r"zoneout\[2\] is set but layer 2 \(Layer\)"),
        (dict(zoneout=0.1), ValueError, "zoneout draws a mask per step and needs time_steps"),
        (dict(dropout=0.1, variational=False), ValueError, "variational=False draws a mask per step and needs time_steps"),
        (dict(dropout=1.5), ValueError, r"dropout\[0\] must be a probability in \[0, 1\], received 1.5"),
        (dict(recurrent_dropout=1.0), ValueError, r"recurrent_dropout\[0\]=1.0 drops every unit"),
        (dict(zoneout=[(0.5, 0.1, 0.2), None, None], time_steps=4), ValueError, r"zoneout\[0\] must be a probability or a pair \(p_c, p_h\), received 3 values"),
        (dict(zoneout=[(0.5, 1.2), None, None], time_steps=4), ValueError, r"zoneout\[0\]\[1\] must be a probability"),
        (dict(batch_size=0), ValueError, "batch_size must be a positive int, received 0"),
        (dict(batch_size=2.0), TypeError, "batch_size must be a positive int or None, received 2.0"),
        (dict(time_steps="7"), TypeError, "time_steps must be a positive int or None, received '7'"),
    ],
)
def test_dropout_masks_errors(kwargs, error, match):
    kwargs = {"batch_size": 2, **kwargs}
    with pytest.raises(error, match=match):
        dropout_masks(_lstm_stack(), **kwargs)


def test_dropout_masks_errors_about_the_model():
    with pytest.raises(TypeError, match="model must be a StackedCells, received LSTM"):
        dropout_masks(LSTM(2, 3), 2)
    with pytest.raises(ValueError, match="this StackedCells has no layers"):
        dropout_masks(StackedCells(2), 2)
    rnn = StackedCells(2, celltype=RNN, layers=[3])
    with pytest.raises(ValueError, match=r"a pair \(p_c, p_h\) is only for an LSTM layer, layer 0 is RNN"):
        dropout_masks(rnn, 2, 4, zoneout=[(0.5, 0.05)])
    model = StackedCells(4, celltype=RNN, layers=[3])
    model.layers.insert(0, Embedding(6, 4))
    with pytest.raises(ValueError, match=r"dropout\[0\] is set but layer 0 is an Embedding .* dropout\[1\]"):
        dropout_masks(model, 2, dropout=[0.5, None])


# ------------------------------------------------- masks inside StackedCells.scan

T, B, I, H = 4, 2, 3, 5


def _zoneout_checks_fn(celltype):
    """One compiled function comparing scans with and without masks for ``celltype``."""
    model = StackedCells(I, celltype=celltype, layers=[H], rng=0)
    layer = model.layers[0]
    x = pt.tensor3("x")
    init = pt.matrix("init")  # (batch, state_size)
    plain = model.scan(x).states[0]
    zo0 = dropout_masks(model, B, T, zoneout=0.0, rng=1)
    zo1 = dropout_masks(model, B, T, zoneout=1.0, rng=2)
    rd0 = dropout_masks(model, B, T, recurrent_dropout=0.0, rng=3)
    half = dropout_masks(model, B, T, zoneout=0.5, rng=4)
    evaluation = dropout_masks(model, B, zoneout=0.3, deterministic=True)
    outputs = [
        plain,
        model.scan(x, **zo0.scan_kwargs()).states[0],
        model.scan(x, initial_states=[init], **zo1.scan_kwargs()).states[0],
        model.scan(x, **rd0.scan_kwargs()).states[0],
        model.scan(x, initial_states=[init], **half.scan_kwargs()).states[0],
        half.zoneout[0],
        evaluation.zoneout[0],
    ]
    updates = OrderedDict()
    for masks in (zo0, zo1, rd0, half):
        updates.update(masks.updates)
    return layer.state_size, backend.function([x, init], outputs, updates=updates)


@pytest.mark.parametrize("celltype", [RNN, GRU, LSTM])
def test_zoneout_and_recurrent_dropout_limits(celltype, rng):
    state_size, f = _zoneout_checks_fn(celltype)
    x = rng.normal(size=(T, B, I))
    init = rng.normal(size=(B, state_size))
    plain, zo0, zo1, rd0, half, z_half, z_eval = f(x, init)
    assert plain.shape == (T, B, state_size)
    np.testing.assert_allclose(zo0, plain, rtol=1e-12, atol=1e-14)  # p = 0: no zoneout
    np.testing.assert_array_equal(zo1, np.broadcast_to(init, zo1.shape))  # p = 1: initial state kept
    np.testing.assert_allclose(rd0, plain, rtol=1e-12, atol=1e-14)  # keep = 1: no recurrent dropout
    # p = 0.5: every zoned-out unit holds its previous value, the others moved on
    previous = np.concatenate([init[None], half[:-1]])
    kept = z_half == 1
    assert 0 < kept.mean() < 1
    np.testing.assert_array_equal(half[kept], previous[kept])
    assert np.all(half[~kept] != previous[~kept])
    np.testing.assert_array_equal(z_eval, np.full((B, state_size), 0.3))


@pytest.fixture(scope="module")
def rnn_reference_fn():
    """An RNN scanned with input + recurrent dropout, three ways, in one compiled function."""
    model = StackedCells(I, celltype=RNN, layers=[H], rng=0)
    x = pt.tensor3("x")
    masks = dropout_masks(model, B, dropout=0.4, recurrent_dropout=0.4, rng=7)
    runner = model.scan(x, **masks.scan_kwargs()).outputs
    # the 2014 style: a hand-written scan calling forward with the same input mask
    # (forward has no recurrent dropout, so that path gets the input mask only)
    def step(x_t, h_prev, m_in):
        return model.forward(x_t, [h_prev], dropout=[m_in])[0]

    h0 = pt.zeros((B, H))
    by_hand = pytensor.scan(step, sequences=[x], outputs_info=[h0], non_sequences=[masks.dropout[0]],
                            return_updates=False)
    input_only = model.scan(x, dropout=masks.dropout).outputs
    eval_masks = dropout_masks(model, B, dropout=0.4, recurrent_dropout=0.4, deterministic=True)
    evaluation = model.scan(x, **eval_masks.scan_kwargs()).outputs
    plain = model.scan(x).outputs
    outputs = [runner, by_hand, input_only, evaluation, plain, masks.dropout[0], masks.recurrent_dropout[0]]
    return model, backend.function([x], outputs, updates=masks.updates)


def test_variational_masks_match_numpy_reference(rnn_reference_fn, rng):
    model, f = rnn_reference_fn
    W, U, b = (p.get_value() for p in model.layers[0].params)
    x = rng.normal(size=(T, B, I))
    runner, by_hand, input_only, evaluation, plain, m_in, m_rec = f(x)
    assert set(np.unique(m_in)) <= {0.0, 1 / 0.6} and set(np.unique(m_rec)) <= {0.0, 1 / 0.6}

    def reference(m_in, m_rec):
        h, out = np.zeros((B, H)), []
        for t in range(T):
            h = np.tanh((x[t] * m_in) @ W + (h * m_rec) @ U + b)  # the same masks at every step
            out.append(h)
        return np.stack(out)

    np.testing.assert_allclose(runner, reference(m_in, m_rec), rtol=1e-10)
    np.testing.assert_allclose(input_only, reference(m_in, 1.0), rtol=1e-10)
    np.testing.assert_allclose(by_hand, input_only, rtol=1e-10)
    np.testing.assert_allclose(evaluation, plain, rtol=1e-12)  # inverted: evaluation masks are ones
    # new masks on the next call
    again = f(x)
    assert not np.array_equal(again[5], m_in)


def test_gradients_flow_through_embeddings_with_dropout(rng):
    V, E = 6, 4
    model = StackedCells(E, celltype=GRU, layers=[3], rng=0)
    model.layers.insert(0, Embedding(V, E, rng=1))
    tokens = pt.lmatrix("tokens")  # (time, batch)
    masks = dropout_masks(model, 2, 3, dropout=[None, 0.5], recurrent_dropout=0.3, rng=0)
    cost = model.scan(tokens, **masks.scan_kwargs()).outputs.sum()
    E_grad = pytensor.grad(cost, model.layers[0].embedding_matrix)
    f = backend.function([tokens], [E_grad, masks.dropout[1]], updates=masks.updates)
    # sequence 0 reads tokens 0 and 1 only, sequence 1 tokens 2 and 3; 4 and 5 are never read
    ids = np.array([[0, 2], [1, 3], [0, 2]])
    for _ in range(3):
        grad, mask = f(ids)
        assert (mask == 0).any() and (mask != 0).any()
        for b, rows in ((0, [0, 1]), (1, [2, 3])):
            dropped = mask[b] == 0
            np.testing.assert_array_equal(grad[rows][:, dropped], 0.0)
            assert np.all(grad[rows][:, ~dropped] != 0.0)
        np.testing.assert_array_equal(grad[4:], 0.0)


# ------------------------------------------------------------------------- JAX


@requires_jax
def test_jax_mode_compiles_and_draws_with_bernoulli(rng):
    pytensor.config.floatX = "float32"
    model = StackedCells(I, celltype=LSTM, layers=[H], rng=0)
    x = pt.tensor3("x", shape=(T, B, I))
    masks = dropout_masks(model, B, T, dropout=0.3, recurrent_dropout=0.3, zoneout=[(0.5, 0.05)], rng=0)
    states = model.scan(x, **masks.scan_kwargs()).states[0]
    cost = states.sum()
    grads = pytensor.grad(cost, model.params)
    with warnings.catch_warnings():
        # jax works on a copy of the shared generator (it still advances between calls)
        warnings.filterwarnings("ignore", "The RandomType SharedVariables", UserWarning)
        f = pytensor.function([x], [states, masks.zoneout[0], masks.dropout[0], *grads],
                              updates=masks.updates, mode="JAX")
    ops = [type(node.op) for node in f.maker.fgraph.toposort()]
    assert BernoulliRV in ops and BinomialRV not in ops
    xv = rng.normal(size=(T, B, I)).astype("float32")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Explicitly requested dtype", UserWarning)
        first = [np.asarray(v) for v in f(xv)]
        second = [np.asarray(v) for v in f(xv)]
    states_v, z, m_in = first[:3]
    assert states_v.dtype == np.float32 and states_v.shape == (T, B, 2 * H)
    assert all(np.isfinite(g).all() for g in first[3:])
    assert set(np.unique(m_in)) <= {0.0, np.float32(1 / 0.7)}
    previous = np.concatenate([np.zeros((1, B, 2 * H), "float32"), states_v[:-1]])
    np.testing.assert_array_equal(states_v[z == 1], previous[z == 1])
    assert not np.array_equal(second[2], m_in)  # the generator advanced
