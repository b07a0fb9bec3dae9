"""Weight initializers.

An initializer is a callable ``init(shape, rng) -> numpy.ndarray`` where ``rng``
is a :class:`numpy.random.Generator`.  Cells take one per kind of weight
(``W_init`` for input weights, ``U_init`` for recurrent weights, ``b_init`` for
biases) and a ``rng`` (seed or Generator), so a model is reproducible from its
seed.

The classes here are small and stateless apart from their hyper-parameters:

==========================  =====================================================
:class:`Normal2014`         the 2014 package's default, :math:`\\mathcal{N}(0,1)/\\text{fan\\_in}`
:class:`GlorotUniform`      Glorot & Bengio (2010), uniform
:class:`Orthogonal`         Saxe et al. (2014), a (semi-)orthogonal matrix
:class:`Identity`           scaled identity for the recurrent matrix (IRNN, Le et al. 2015)
:class:`SpectralRescale`    any initializer rescaled to a given largest singular value
:class:`Constant`           a constant (biases: zero unless asked)
==========================  =====================================================

The LSTM's forget-gate bias is set through the cell's ``forget_bias`` argument.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "Initializer",
    "Normal2014",
    "GlorotUniform",
    "Orthogonal",
    "Identity",
    "SpectralRescale",
    "Constant",
    "as_rng",
    "resolve",
]


def as_rng(rng) -> np.random.Generator:
    """A :class:`numpy.random.Generator` from ``None``, an int seed or a Generator.

    >>> bool(as_rng(0).integers(10) == as_rng(0).integers(10))
    True
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be None, an int seed or a numpy Generator, received {type(rng).__name__}")


def _check_shape(shape) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    if any(s <= 0 for s in shape):
        raise ValueError(f"initializer shape must be positive, received {shape}")
    return shape


class Initializer:
    """Base class: subclasses implement ``sample(shape, rng)``."""

    def __call__(self, shape, rng=None) -> np.ndarray:
        return np.asarray(self.sample(_check_shape(shape), as_rng(rng)), dtype=np.float64)

    def sample(self, shape, rng):  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Normal2014(Initializer):
    """The 2014 ``theano_lstm`` default: standard normal divided by the fan-in
    (the first dimension of ``shape``).

    >>> w = Normal2014()((100, 3), rng=0)
    >>> bool(abs(w.std() - 0.01) < 0.002)
    True
    """

    def sample(self, shape, rng):
        return rng.standard_normal(shape) / shape[0]


class GlorotUniform(Initializer):
    """Uniform on :math:`[-a, a]` with :math:`a = g\\sqrt{6 / (\\text{fan\\_in} + \\text{fan\\_out})}`.

    For a 2-D ``(fan_in, fan_out)`` shape; a 1-D shape uses ``fan_in = fan_out = n``.
    """

    def __init__(self, gain: float = 1.0):
        self.gain = float(gain)

    def sample(self, shape, rng):
        fan_in, fan_out = (shape[0], shape[-1]) if len(shape) > 1 else (shape[0], shape[0])
        bound = self.gain * np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-bound, bound, size=shape)


class Orthogonal(Initializer):
    """A matrix with orthonormal rows or columns (whichever are fewer), times ``gain``.

    >>> q = Orthogonal()((4, 4), rng=0)
    >>> bool(np.allclose(q @ q.T, np.eye(4)))
    True
    """

    def __init__(self, gain: float = 1.0):
        self.gain = float(gain)

    def sample(self, shape, rng):
        if len(shape) != 2:
            raise ValueError(f"Orthogonal needs a 2-D shape, received {shape}")
        rows, cols = shape
        a = rng.standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q = q * np.sign(np.diag(r))  # unique, uniformly distributed
        if rows < cols:
            q = q.T
        return self.gain * q


class Identity(Initializer):
    """``scale`` times the identity (IRNN: ReLU RNN with an identity recurrent matrix).

    >>> Identity(0.5)((2, 2))
    array([[0.5, 0. ],
           [0. , 0.5]])
    """

    def __init__(self, scale: float = 1.0):
        self.scale = float(scale)

    def sample(self, shape, rng):
        if len(shape) != 2 or shape[0] != shape[1]:
            raise ValueError(f"Identity needs a square 2-D shape, received {shape}")
        return self.scale * np.eye(shape[0])


class SpectralRescale(Initializer):
    """Draw from ``base`` then rescale so the largest singular value is ``radius``.

    The Elman tutorial's recipe for a recurrent matrix that neither explodes nor
    vanishes at the start of training.

    >>> w = SpectralRescale(radius=1.1)((5, 5), rng=0)
    >>> round(float(np.linalg.svd(w, compute_uv=False)[0]), 6)
    1.1
    """

    def __init__(self, radius: float = 1.0, base: Initializer | None = None):
        if not radius > 0:
            raise ValueError(f"radius must be > 0, received {radius}")
        self.radius = float(radius)
        self.base = base if base is not None else GlorotUniform()

    def sample(self, shape, rng):
        w = self.base(shape, rng)
        top = np.linalg.svd(np.atleast_2d(w), compute_uv=False)[0]
        return w * (self.radius / top)


class Constant(Initializer):
    """Every entry equal to ``value``."""

    def __init__(self, value: float = 0.0):
        self.value = float(value)

    def sample(self, shape, rng):
        return np.full(shape, self.value)


def resolve(init, what: str) -> Initializer:
    """An initializer from an :class:`Initializer`, a number (:class:`Constant`)
    or a plain callable ``(shape, rng) -> array``."""
    if isinstance(init, Initializer):
        return init
    if isinstance(init, (int, float)) and not isinstance(init, bool):
        return Constant(init)
    if callable(init):
        return _Wrapped(init)
    raise TypeError(f"{what} must be an Initializer, a number or a callable, received {type(init).__name__}")


class _Wrapped(Initializer):
    def __init__(self, fn):
        self.fn = fn

    def sample(self, shape, rng):
        return self.fn(shape, rng)
