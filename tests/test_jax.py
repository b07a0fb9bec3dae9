"""JAX mode across the library: optimizers, clipping, a full training step, and the GPU.

The per-cell JAX tests live in test_stacked.py, losses and dropout in their own
files; this file covers what spans modules.  Everything here runs on jax's CPU
backend in CI; tests marked ``gpu`` run only where jax sees a CUDA device.
"""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

import theano_lstm as tl
from theano_lstm import backend, losses, optimizers
from tests._util import has_module, requires_jax

pytestmark = requires_jax

T, B, I, H, C = 6, 3, 4, 5, 3


def _gpu_available() -> bool:
    if not has_module("jax"):
        return False
    import jax

    return jax.default_backend() == "gpu"


def _training_problem(rule, clip=None, seed=0, inputs=None, celltype=tl.LSTM):
    """A recurrent layer (a peephole LSTM by default) + softmax head on a fixed batch;
    returns (model, inputs, cost, updates).

    ``inputs`` ``(x, m, y)`` lets several problems share one set of input variables.
    """
    pytensor.config.floatX = "float32"
    kw = {"peepholes": True} if celltype is tl.LSTM else {}
    model = tl.StackedCells(I, celltype=celltype, layers=[H], rng=seed, **kw)
    model.layers.append(tl.Layer(H, C, "linear", rng=seed + 1))
    x, m, y = inputs or (pt.tensor3("x"), pt.matrix("m"), pt.imatrix("y"))
    logits = model.scan(x, mask=m).outputs
    cost = losses.categorical_crossentropy(logits, y, mask=m, reduction="mean")
    grads = pytensor.grad(cost, model.params)
    if clip is not None:
        grads = clip(grads)
    lr = {"adadelta": 1.0, "adagrad": 0.1, "sgd": 0.5, "momentum": 0.2, "nesterov_momentum": 0.2}.get(rule, 0.02)
    updates = getattr(optimizers, rule)(grads, model.params, lr=lr)
    return model, [x, m, y], cost, updates


def _data(seed=1):
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(T, B, I)).astype("float32")
    mask = np.ones((T, B), "float32")
    mask[4:, 1] = 0
    ys = rng.integers(0, C, size=(T, B)).astype("int32")
    return xs, mask, ys


def test_every_optimizer_trains_in_jax_mode_like_on_cpu():
    """One model per rule, all trained by one function per mode (one compile each, not one per rule).

    The models are plain RNNs: what is under test is the update rules, and XLA
    compiles seven RNN scans far faster than seven peephole-LSTM scans (the
    LSTM in JAX mode is covered by the other tests here and in test_stacked.py).
    """
    data = _data()
    inputs = (pt.tensor3("x", dtype="float32"), pt.matrix("m", dtype="float32"), pt.imatrix("y"))
    results = {}
    for mode in ("fast_compile", "jax"):
        problems = [_training_problem(rule, inputs=inputs, celltype=tl.RNN) for rule in optimizers.METHODS]
        updates = {var: new for _, _, _, ups in problems for var, new in ups.items()}
        f = backend.function(list(inputs), [cost for _, _, cost, _ in problems], updates=updates, mode=mode)
        results[mode] = np.array([[float(backend.to_numpy(c)) for c in f(*data)] for _ in range(4)])
        for model, _, _, _ in problems:  # stays float32 and comes back as NumPy
            for p in model.params:
                assert backend.to_numpy(p).dtype == np.float32
    for k, rule in enumerate(optimizers.METHODS):
        np.testing.assert_allclose(results["jax"][:, k], results["fast_compile"][:, k], rtol=2e-4, atol=1e-5,
                                   err_msg=f"optimizer {rule!r}: JAX and the default mode disagree")
        assert results["jax"][-1, k] < results["jax"][0, k], f"optimizer {rule!r} did not lower the loss"


def test_clipping_and_non_finite_guard_in_jax_mode():
    data = _data()
    model, inputs, cost, updates = _training_problem(
        "adam", clip=lambda g: optimizers.clip_global_norm(optimizers.clip_elementwise(g, 1.0), 0.5))
    guarded, finite = optimizers.skip_non_finite(updates)
    f = backend.function(inputs, [cost, finite], updates=guarded, mode="jax")
    before = [backend.to_numpy(p).copy() for p in model.params]
    c0, ok = f(*data)
    assert bool(ok)
    bad = (data[0] * np.float32(np.nan), data[1], data[2])
    after_good = [backend.to_numpy(p).copy() for p in model.params]
    _, ok_bad = f(*bad)
    assert not bool(ok_bad)
    for a, b in zip(after_good, model.params):
        np.testing.assert_array_equal(a, backend.to_numpy(b))  # the NaN step changed nothing
    assert any(not np.array_equal(a, b) for a, b in zip(before, after_good))


def test_variable_lengths_compile_once_per_bucket():
    pytensor.config.floatX = "float32"
    model = tl.StackedCells(I, celltype=tl.GRU, layers=[H], rng=0)
    x, m = pt.tensor3("x"), pt.matrix("m")
    with pytest.raises(ValueError, match="input x has length 1 on axis 1, which the graph left symbolic"):
        backend.function([x, m], model.scan(x, mask=m).final_states[0], mode="jax")(
            np.zeros((3, 1, I), "float32"), np.ones((3, 1), "float32"))
    x, m = pt.tensor3("x", shape=(None, 1, I)), pt.matrix("m", shape=(None, 1))  # a batch of one: fixed
    f = backend.function([x, m], model.scan(x, mask=m).final_states[0], mode="jax")
    rng = np.random.default_rng(0)
    lengths = [3, 7, 8, 12, 15]
    for n, bucket in zip(lengths, backend.bucket_lengths(lengths, [8, 16])):
        xs = np.zeros((bucket, 1, I), "float32")
        xs[:n, 0] = rng.normal(size=(n, I))
        mask = np.zeros((bucket, 1), "float32")
        mask[:n] = 1
        final = backend.to_numpy(f(xs, mask))
        exact = backend.to_numpy(f(xs[:n], mask[:n]))  # unpadded: its own compile
        np.testing.assert_allclose(final, exact, rtol=1e-5, atol=1e-6)
    assert set(f.compiled) == {((n, 1, I), (n, 1)) for n in [8, 16] + lengths}


@pytest.mark.gpu
@pytest.mark.skipif(not _gpu_available(), reason="jax sees no CUDA GPU")
def test_training_on_the_gpu_matches_cpu():  # pragma: no cover - needs a GPU
    import jax

    data = _data()
    results = {}
    for mode in ("fast_compile", "gpu"):
        model, inputs, cost, updates = _training_problem("adam")
        f = backend.function(inputs, cost, updates=updates, mode=mode)
        results[mode] = [float(backend.to_numpy(f(*data))) for _ in range(4)]
        if mode == "gpu":
            value = model.params[0].get_value(borrow=True)
            assert isinstance(value, jax.Array) and value.devices().pop().platform == "gpu"
    np.testing.assert_allclose(results["gpu"], results["fast_compile"], rtol=1e-3, atol=1e-4)
