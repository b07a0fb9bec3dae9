"""The backend module: activations, modes, shared variables, JAX shape specialization."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from theano_lstm import backend
from tests import reference as ref
from tests._util import requires_jax


def test_activations_match_numpy(rng):
    x = pt.matrix()
    v = rng.normal(scale=3, size=(4, 5))
    names = ["sigmoid", "tanh", "relu", "hard_sigmoid", "softmax", "log_softmax", "linear"]
    f = backend.function([x], [backend.get_activation(n)(x) for n in names])
    want = [ref.sigmoid(v), np.tanh(v), np.maximum(v, 0), ref.hard_sigmoid(v), ref.softmax(v), np.log(ref.softmax(v)), v]
    for name, got, expected in zip(names, f(v), want):
        np.testing.assert_allclose(got, expected, rtol=1e-12, err_msg=name)


def test_softmax_is_over_the_last_axis(rng):
    x = pt.tensor3()
    out = backend.function([x], backend.softmax(x))(rng.normal(size=(2, 3, 4)))
    np.testing.assert_allclose(out.sum(axis=-1), 1.0)


def test_relu_and_hard_sigmoid_gradients(rng):
    x = pt.vector()
    g = backend.function([x], [pytensor.grad(backend.relu(x).sum(), x), pytensor.grad(backend.hard_sigmoid(x).sum(), x)])
    gr, gh = g(np.array([-1.0, 0.5, 3.0]))
    np.testing.assert_array_equal(gr, [0.0, 1.0, 1.0])
    np.testing.assert_allclose(gh, [0.2, 0.2, 0.0])


def test_get_activation_errors():
    assert backend.get_activation(None) is backend.linear
    f = lambda v: v * 2  # noqa: E731
    assert backend.get_activation(f) is f
    with pytest.raises(ValueError, match=r"unknown activation 'swish'; expected one of \["):
        backend.get_activation("swish")
    with pytest.raises(TypeError, match="activation must be a name or a callable, received int"):
        backend.get_activation(3)


def test_clip_gradient(rng):
    x = pt.vector()
    g = backend.function([x], pytensor.grad((10 * backend.clip_gradient(x, 2.0)).sum(), x))(np.ones(3))
    np.testing.assert_array_equal(g, [2.0, 2.0, 2.0])
    with pytest.raises(ValueError, match="gradient clipping bound must be > 0, received -1.0"):
        backend.clip_gradient(x, -1)


def test_shared_has_static_shape_and_dtype():
    s = backend.shared(np.zeros((2, 3)), name="w", dtype="float32")
    assert s.type.shape == (2, 3) and s.dtype == "float32" and s.name == "w"


def test_scan_wrapper_returns_a_list():
    x = pt.vector()
    (out,) = backend.scan(lambda v, acc: acc + v, sequences=[x], outputs_info=[pt.zeros(())])
    np.testing.assert_array_equal(backend.function([x], out)(np.arange(4.0)), [0, 1, 3, 6])


def test_modes():
    cpu = backend.get_mode("cpu").linker
    assert type(cpu).__name__ == "VMLinker" and cpu.c_thunks and cpu.use_cloop  # PyTensor's CVM
    assert "Numba" in backend.get_mode("numba").linker.__class__.__name__
    with pytest.raises(ValueError, match=r"unknown compile mode 'cuda'; expected one of \['cpu', 'c', 'numba', 'jax', 'gpu', 'fast_compile'\]"):
        backend.get_mode("cuda")
    with pytest.raises(TypeError, match="mode must be a name or a pytensor Mode, received int"):
        backend.get_mode(3)
    old = backend.get_default_mode()
    try:
        backend.set_default_mode("numba")
        assert backend.get_default_mode() == "numba"
    finally:
        backend.set_default_mode(old)
    with pytest.raises(ValueError, match="unknown compile mode"):
        backend.set_default_mode("fastest")


def test_fast_compile_mode_compiles_no_c_even_inside_scan(rng):
    """Every Op, the Scan's inner graph included, runs its Python perform (no C compile)."""
    from pytensor.scan.op import Scan

    py = backend.get_mode("fast_compile")
    assert py.linker.c_thunks is False
    x = pt.matrix("x")
    ys = backend.scan(lambda a, h: pt.tanh(a + h), sequences=[x], outputs_info=[pt.zeros((3,))])[0]
    xs = rng.normal(size=(4, 3))
    results = []
    for mode in ("fast_compile", "c"):
        f = backend.function([x], [ys, pytensor.grad(ys.sum(), x)], mode=mode)
        scans = [n.op for n in f.maker.fgraph.apply_nodes if isinstance(n.op, Scan)]
        assert len(scans) == 2  # forward and gradient
        assert all((op.mode == "FAST_COMPILE") == (mode == "fast_compile") for op in scans)
        results.append(f(xs))
        if mode == "fast_compile":
            assert all(op.fn.maker.linker.c_thunks is False for op in scans)
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12)


@requires_jax
def test_jax_mode_requires_float32():
    pytensor.config.floatX = "float64"
    with pytest.raises(ValueError, match="mode 'jax' needs pytensor.config.floatX='float32' \\(it is 'float64'\\)"):
        backend.get_mode("jax")


@requires_jax
def test_gpu_mode_refuses_without_a_gpu():
    import jax

    pytensor.config.floatX = "float32"
    if jax.default_backend() == "gpu":
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="mode 'gpu' needs a CUDA build of jax that sees a GPU; jax is using 'cpu'"):
        backend.get_mode("gpu")


@requires_jax
def test_jax_function_compiles_once_per_shape_and_updates_shared():
    pytensor.config.floatX = "float32"
    w = backend.shared(np.ones(3), name="w")
    x = pt.matrix("x")
    f = backend.function([x], (x * w).sum(axis=0), updates=[(w, w * 2)], mode="jax")
    assert isinstance(f, backend.ShapeSpecializedFunction)
    np.testing.assert_allclose(backend.to_numpy(f(np.ones((2, 3), "float32"))), [2, 2, 2])
    np.testing.assert_allclose(backend.to_numpy(f(np.ones((5, 3), "float32"))), [10, 10, 10])
    np.testing.assert_allclose(backend.to_numpy(f(np.ones((2, 3), "float32"))), [8, 8, 8])
    assert len(f.compiled) == 2
    np.testing.assert_allclose(backend.to_numpy(w), [8, 8, 8])
    with pytest.raises(ValueError, match=r"input x expects 2 dimensions, received an array with shape \(3,\)"):
        f(np.ones(3, "float32"))
    with pytest.raises(TypeError, match="function takes 1 inputs, received 2"):
        f(1, 2)


def test_bucket_lengths():
    np.testing.assert_array_equal(backend.bucket_lengths([1, 10, 11], [20, 10]), [10, 10, 20])
    with pytest.raises(ValueError, match="every length must fit a bucket: longest length 30, largest bucket 20"):
        backend.bucket_lengths([30], [10, 20])


def test_jax_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(backend.JAX_CACHE_ENV, "off")
    assert backend.jax_cache_dir() is None
    monkeypatch.setenv(backend.JAX_CACHE_ENV, str(tmp_path / "cache"))
    assert backend.jax_cache_dir() == str(tmp_path / "cache")
    monkeypatch.delenv(backend.JAX_CACHE_ENV)
    assert backend.jax_cache_dir().startswith(str(pytensor.config.compiledir))


def test_jax_cache_is_configured_unless_the_user_chose(monkeypatch, tmp_path):
    class FakeConfig:
        jax_compilation_cache_dir = None

        def __init__(self):
            self.updates = {}

        def update(self, key, value):
            self.updates[key] = value

    class FakeJax:
        config = FakeConfig()

    monkeypatch.setenv(backend.JAX_CACHE_ENV, str(tmp_path / "c"))
    backend._configure_jax_cache(FakeJax)
    assert FakeJax.config.updates["jax_compilation_cache_dir"] == str(tmp_path / "c")
    assert (tmp_path / "c").is_dir()
    FakeJax.config = FakeConfig()
    FakeJax.config.jax_compilation_cache_dir = "/somewhere/else"
    backend._configure_jax_cache(FakeJax)
    assert FakeJax.config.updates == {}
    FakeJax.config = FakeConfig()
    monkeypatch.setenv(backend.JAX_CACHE_ENV, "off")
    backend._configure_jax_cache(FakeJax)
    assert FakeJax.config.updates == {}
