"""Tests of theano_lstm.sampling: greedy/temperature generation, stop symbols, primes, JAX."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from tests._util import requires_jax
from theano_lstm import LSTM, RNN, Embedding, Layer, StackedCells, backend
from theano_lstm.sampling import Generated, Sampler, check_generator_model, generation_graph

V = 5
NEXT = np.roll(np.eye(V), 1, axis=1)  # NEXT[i, (i + 1) % V] = 1: "token i is followed by i + 1"


def embedding_model(dtype=None, rng=0):
    """Embedding(V) -> RNN -> softmax head."""
    model = StackedCells(V, celltype=RNN, layers=[], rng=rng)
    model.layers += [
        Embedding(V, 4, rng=rng, dtype=dtype),
        RNN(4, 6, rng=rng + 1, dtype=dtype),
        Layer(6, V, "softmax", rng=rng + 2, dtype=dtype),
    ]
    return model


def force_cycle_embedding(model):
    """Hand-set weights: greedy decoding continues 0, 1, 2, … (mod V) from any token."""
    emb, rnn, head = model.layers
    E = np.zeros((V, 4))
    E[:4, :4] = np.eye(4)  # tokens 0..3 -> unit vectors; token 4 -> 0 (so its state h is 0)
    emb.params = [E]
    W = np.zeros((4, 6))
    W[np.arange(4), np.arange(4)] = 10.0
    rnn.params = [W, np.zeros((6, 6)), np.zeros(6)]
    Wh = np.zeros((6, V))
    Wh[np.arange(4), (np.arange(4) + 1) % V] = 20.0  # h = e_k (token k < 4) -> token k + 1
    b = np.zeros(V)
    b[0] = 5.0  # h = 0 (token 4) -> token 0
    head.params = [Wh, b]


def randomise(model, scale, seed):
    rng = np.random.default_rng(seed)
    model.params = [scale * rng.normal(size=p.get_value().shape) for p in model.params]


@pytest.fixture(scope="module")
def emb_model():
    return embedding_model()


@pytest.fixture(scope="module")
def samplers(emb_model):
    """One compiled function per loop form, reused by every test (weights are shared variables)."""
    return {"until": Sampler(emb_model, until=True, seed=0), "fixed": Sampler(emb_model, until=False, seed=0)}


@pytest.fixture(scope="module")
def onehot_model():
    """A one-hot-fed LSTM -> softmax head, V tokens in and out."""
    model = StackedCells(V, celltype=LSTM, layers=[V], rng=3)
    model.layers.append(Layer(V, V, "softmax", rng=4))
    return model


def force_cycle_onehot(model):
    lstm, head = model.layers
    W = np.zeros((V, 4 * V))
    W[:, 2 * V : 3 * V] = 10.0 * np.eye(V)  # candidate g = tanh(10 x)
    b = np.zeros(4 * V)
    b[:V], b[V : 2 * V], b[3 * V :] = 10.0, -10.0, 10.0  # input gate open, forget closed, output open
    lstm.params = [W, np.zeros((V, 4 * V)), b]
    hb = np.zeros(V)
    hb[0] = 1.0  # from the all-zero start input the state is 0: token 0 wins
    head.params = [20.0 * NEXT, hb]


# ------------------------------------------------------------------ greedy


@pytest.mark.parametrize("form", ["until", "fixed"])
def test_greedy_decodes_the_forced_sequence(form, emb_model, samplers):
    force_cycle_embedding(emb_model)
    s = samplers[form]
    out = s.generate(7, prime=[0], greedy=True)
    assert isinstance(out, Generated)
    np.testing.assert_array_equal(out.tokens, [[1, 2, 3, 4, 0, 1, 2]])
    np.testing.assert_array_equal(out.lengths, [7])
    assert out.tokens.dtype == np.int64 and out.lengths.dtype == np.int64
    # a batch of primes, one per row; the last prime token decides the continuation
    out = s.generate(4, prime=[[0, 2], [1, 4], [3, 3]], greedy=True)
    np.testing.assert_array_equal(out.tokens, [[3, 4, 0, 1], [0, 1, 2, 3], [4, 0, 1, 2]])
    # a 1-d prime is shared by n_samples rows
    out = s.generate(3, prime=[2], greedy=True, n_samples=2)
    np.testing.assert_array_equal(out.tokens, [[3, 4, 0], [3, 4, 0]])


def test_greedy_one_hot_model(onehot_model):
    force_cycle_onehot(onehot_model)
    s = Sampler(onehot_model, seed=0)
    # no prime: the first input is the all-zero vector
    np.testing.assert_array_equal(s.generate(6, greedy=True, n_samples=2).tokens, [[0, 1, 2, 3, 4, 0]] * 2)
    np.testing.assert_array_equal(s.generate(3, prime=[2, 4], greedy=True).tokens, [[0, 1, 2]])
    out = s.generate(6, prime=[[1], [3]], greedy=True, stop_symbol=4)
    np.testing.assert_array_equal(out.tokens, [[2, 3, 4, 4, 4, 4], [4, 4, 4, 4, 4, 4]])
    np.testing.assert_array_equal(out.lengths, [3, 1])


# -------------------------------------------------------------- stop symbol


@pytest.mark.parametrize("form", ["until", "fixed"])
def test_stop_symbol_stops_each_sample(form, emb_model, samplers):
    force_cycle_embedding(emb_model)
    s = samplers[form]
    out = s.generate(8, prime=[[0], [2], [3]], greedy=True, stop_symbol=3)
    np.testing.assert_array_equal(
        out.tokens,
        [[1, 2, 3, 3, 3, 3, 3, 3],  # stops after 3 tokens, padded with the stop symbol
         [3, 3, 3, 3, 3, 3, 3, 3],  # stops at once
         [4, 0, 1, 2, 3, 3, 3, 3]],
    )
    np.testing.assert_array_equal(out.lengths, [3, 1, 5])
    # explicit padding; a sample that never reaches the stop symbol keeps n_steps tokens
    out = s.generate(3, prime=[[0], [3]], greedy=True, stop_symbol=2, pad_symbol=0)
    np.testing.assert_array_equal(out.tokens, [[1, 2, 0], [4, 0, 1]])
    np.testing.assert_array_equal(out.lengths, [2, 3])
    # every sample done early: the until loop ends early, the result is still n_steps wide
    out = s.generate(6, prime=[[0], [0]], greedy=True, stop_symbol=1)
    np.testing.assert_array_equal(out.tokens, np.ones((2, 6)))
    np.testing.assert_array_equal(out.lengths, [1, 1])


# -------------------------------------------------------------- temperature


def test_low_temperature_equals_greedy(emb_model, samplers):
    randomise(emb_model, scale=1.5, seed=11)
    s = samplers["until"]
    greedy = s.generate(8, prime=[[0], [1], [2], [4]], greedy=True, seed=1)
    cold = s.generate(8, prime=[[0], [1], [2], [4]], temperature=1e-4, seed=2)
    zero = s.generate(8, prime=[[0], [1], [2], [4]], temperature=0.0, seed=3)
    hot = s.generate(8, prime=[[0], [1], [2], [4]], temperature=1.0, seed=4)
    np.testing.assert_array_equal(cold.tokens, greedy.tokens)
    np.testing.assert_array_equal(zero.tokens, greedy.tokens)
    assert not np.array_equal(hot.tokens, greedy.tokens)  # the comparison above could fail


def test_sample_frequencies_follow_tempered_softmax(emb_model, samplers):
    """The head ignores the state (W = 0): every draw comes from softmax(b / T)."""
    force_cycle_embedding(emb_model)
    b = np.log(np.array([0.1, 0.2, 0.3, 0.35, 0.05]))
    emb_model.layers[-1].params = [np.zeros((6, V)), b]
    n = 4000
    for temperature in (1.0, 0.5):
        out = samplers["fixed"].generate(2, prime=[0], n_samples=n, temperature=temperature, seed=7)
        p = np.exp(b / temperature)
        p /= p.sum()
        freq = np.bincount(out.tokens.ravel(), minlength=V) / out.tokens.size
        np.testing.assert_allclose(freq, p, atol=4 * np.sqrt(0.25 / (2 * n)))


def test_seed_makes_samples_reproducible(emb_model, samplers):
    randomise(emb_model, scale=1.0, seed=5)
    s = samplers["until"]
    a = s.generate(6, prime=[1], n_samples=3, seed=42)
    b = s.generate(6, prime=[1], n_samples=3, seed=42)
    c = s.generate(6, prime=[1], n_samples=3)  # continues the generator
    np.testing.assert_array_equal(a.tokens, b.tokens)
    assert not np.array_equal(a.tokens, c.tokens)
    assert a.tokens.min() >= 0 and a.tokens.max() < V


# ------------------------------------------------- against a step-by-step loop


def reference_generate(step, n_states, prime_rows, n_steps, temperature, noise, embedding):
    """Generate with a Python loop around a compiled one-step ``model.forward``."""
    B, P = prime_rows.shape
    states = [np.zeros((B, n)) for n in n_states]
    out = []
    token = None
    for t in range(P - 1 + n_steps):
        tok = prime_rows[:, t] if t < P else token
        x = tok.astype("int64") if embedding else (tok[:, None] == np.arange(V)).astype(noise.dtype)
        *states, probs = step(x, *[s.astype(noise.dtype) for s in states])
        u = np.maximum(noise[t], np.finfo(noise.dtype).tiny)
        token = np.argmax(np.log(probs) + temperature * -np.log(-np.log(u)), axis=-1)
        if t >= P - 1:
            out.append(token)
    return np.stack(out, axis=1)


def compile_step(model, embedding, mode=None):
    x = pt.vector("x", dtype="int64") if embedding else pt.matrix("x")
    recurrent = [k for k, layer in enumerate(model.layers) if layer.is_recursive]
    prev = [pt.matrix(f"s{k}") for k in recurrent]
    full = [None] * len(model.layers)
    for k, s in zip(recurrent, prev):
        full[k] = s
    out = model.forward(x, full)
    f = backend.function([x] + prev, [out[k] for k in recurrent] + [out[-1]], mode=mode)
    return f, [model.layers[k].state_size for k in recurrent]


def test_matches_step_by_step_reference(onehot_model):
    randomise(onehot_model, scale=1.0, seed=3)
    s = Sampler(onehot_model, seed=0)
    step, sizes = compile_step(onehot_model, embedding=False)
    prime = np.array([[1, 2, 3], [4, 0, 0]])
    for temperature, seed in ((0.0, 0), (0.8, 1), (1.5, 2)):
        out = s.generate(7, prime=prime, temperature=temperature, seed=seed)
        noise = np.random.default_rng(seed).random((prime.shape[1] - 1 + 7, 2, V))
        expected = reference_generate(step, sizes, prime, 7, temperature, noise, embedding=False)
        np.testing.assert_array_equal(out.tokens, expected)


# ----------------------------------------------------- symbolic graph + RNG


def test_generation_graph_with_shared_rng(emb_model):
    randomise(emb_model, scale=1.0, seed=8)
    rng = pt.random.shared_rng(seed=123, name="gen_rng")
    prime = pt.as_tensor(np.array([[0, 1, 2]], dtype="int64"))  # (prime_length=1, batch=3)
    graph = generation_graph(emb_model, prime, n_steps=6, temperature=1.0, rng=rng)
    assert list(graph.updates) == [rng]
    f = backend.function([], [graph.tokens, graph.lengths], updates=graph.updates)
    first, lengths = f()
    assert first.shape == (6, 3) and first.min() >= 0 and first.max() < V
    np.testing.assert_array_equal(lengths, [6, 6, 6])
    second, _ = f()
    assert not np.array_equal(first, second)  # the RNG update was applied
    rng.set_value(np.random.default_rng(123))
    np.testing.assert_array_equal(f()[0], first)


# ---------------------------------------------------------------------- JAX


@requires_jax
def test_jax_fixed_step_generation():
    old = pytensor.config.floatX
    pytensor.config.floatX = "float32"
    try:
        model = embedding_model(dtype="float32")
        force_cycle_embedding(model)
        s = Sampler(model, mode="jax", seed=0)
        assert not s.until
        out = s.generate(8, prime=[[0], [2], [3]], greedy=True, stop_symbol=3)
        np.testing.assert_array_equal(out.tokens[0], [1, 2, 3, 3, 3, 3, 3, 3])
        np.testing.assert_array_equal(out.lengths, [3, 1, 5])
        assert isinstance(out.tokens, np.ndarray) and out.tokens.dtype == np.int64
        # sampling agrees with a step-by-step loop around a JAX-compiled forward step
        randomise(model, scale=1.0, seed=9)
        step, sizes = compile_step(model, embedding=True, mode="jax")
        prime = np.array([[1, 2], [3, 4]])
        out = s.generate(6, prime=prime, temperature=1.0, seed=5)
        noise = np.random.default_rng(5).random((prime.shape[1] - 1 + 6, 2, V), dtype=np.float32)
        expected = reference_generate(step, sizes, prime, 6, 1.0, noise, embedding=True)
        np.testing.assert_array_equal(out.tokens, expected)
        # static shapes: one compiled function per (prime length, samples, steps)
        assert len(s._functions) == 2
        s.generate(6, prime=prime, temperature=1.0)
        assert len(s._functions) == 2
        with pytest.raises(ValueError, match="while-loops"):
            Sampler(model, mode="jax", until=True)
    finally:
        pytensor.config.floatX = old


# --------------------------------------------------------------- validation


def test_model_checks():
    model = embedding_model()
    assert check_generator_model(model) == (True, V)
    with pytest.raises(TypeError, match="StackedCells"):
        Sampler(model.layers[1])
    no_head = StackedCells(V, celltype=RNN, layers=[V], rng=0)
    no_head.layers.append(Layer(V, V, "tanh", rng=1))
    with pytest.raises(ValueError, match="output head"):
        Sampler(no_head)
    wrong_vocab = StackedCells(V, celltype=RNN, layers=[4], rng=0)
    wrong_vocab.layers.append(Layer(4, V + 1, "softmax", rng=1))
    with pytest.raises(ValueError, match=f"input_size is {V}, expected {V + 1}"):
        Sampler(wrong_vocab)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(n_steps=0), ValueError, "n_steps must be a positive int"),
        (dict(n_steps=3), ValueError, "needs a prime"),
        (dict(n_steps=3, prime=[5]), ValueError, r"prime tokens must be in 0..4"),
        (dict(n_steps=3, prime=[-1]), ValueError, r"prime tokens must be in 0..4"),
        (dict(n_steps=3, prime=[0.5]), TypeError, "int tokens"),
        (dict(n_steps=3, prime=[[0], [1]], n_samples=3), ValueError, "2 rows but n_samples=3"),
        (dict(n_steps=3, prime=np.zeros((1, 1, 1), int)), ValueError, "1-d"),
        (dict(n_steps=3, prime=[0], temperature=-1.0), ValueError, "temperature"),
        (dict(n_steps=3, prime=[0], temperature="hot"), TypeError, "temperature"),
        (dict(n_steps=3, prime=[0], stop_symbol=V), ValueError, "stop_symbol"),
        (dict(n_steps=3, prime=[0], n_samples=0), ValueError, "n_samples"),
    ],
)
def test_generate_argument_checks(kwargs, error, message, emb_model):
    s = Sampler(emb_model)  # nothing is compiled before the checks pass
    with pytest.raises(error, match=message):
        s.generate(**kwargs)
    assert s._functions == {}
