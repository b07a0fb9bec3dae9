"""Initializers: shapes, statistics, seeding and the special structures."""

import numpy as np
import pytest

from theano_lstm import init


def test_seeded_and_reproducible():
    for initializer in (init.Normal2014(), init.GlorotUniform(), init.Orthogonal(), init.SpectralRescale(1.2)):
        a, b, c = initializer((6, 4), 3), initializer((6, 4), 3), initializer((6, 4), 4)
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)
        assert a.shape == (6, 4)


def test_normal_2014_scale():
    w = init.Normal2014()((200, 300), 0)
    assert abs(w.std() - 1 / 200) < 0.05 / 200
    assert abs(w.mean()) < 0.01 / 200


def test_glorot_bounds():
    w = init.GlorotUniform(gain=2.0)((30, 10), 0)
    bound = 2.0 * np.sqrt(6 / 40)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound


@pytest.mark.parametrize("shape", [(5, 5), (3, 7), (7, 3)])
def test_orthogonal(shape):
    q = init.Orthogonal(gain=1.5)(shape, 0)
    small = min(shape)
    gram = q.T @ q if shape[0] >= shape[1] else q @ q.T
    np.testing.assert_allclose(gram, 2.25 * np.eye(small), atol=1e-12)


def test_identity_and_spectral_rescale():
    np.testing.assert_array_equal(init.Identity(0.9)((3, 3)), 0.9 * np.eye(3))
    with pytest.raises(ValueError, match=r"Identity needs a square 2-D shape, received \(2, 3\)"):
        init.Identity()((2, 3))
    w = init.SpectralRescale(radius=0.8, base=init.Normal2014())((10, 10), 1)
    assert np.isclose(np.linalg.svd(w, compute_uv=False)[0], 0.8)
    with pytest.raises(ValueError, match="radius must be > 0, received 0"):
        init.SpectralRescale(0)


def test_constant_resolve_and_errors():
    np.testing.assert_array_equal(init.resolve(0.5, "b_init")((2,)), [0.5, 0.5])
    np.testing.assert_array_equal(init.resolve(lambda shape, rng: np.ones(shape), "W_init")((2, 1)), [[1.0], [1.0]])
    with pytest.raises(TypeError, match="W_init must be an Initializer, a number or a callable, received str"):
        init.resolve("glorot", "W_init")
    with pytest.raises(ValueError, match=r"initializer shape must be positive, received \(0, 3\)"):
        init.Normal2014()((0, 3))
    with pytest.raises(TypeError, match="rng must be None, an int seed or a numpy Generator, received str"):
        init.as_rng("seed")
