r"""Generation from a stacked model: greedy, temperature sampling, stop symbols, primes.

The model is a :class:`~theano_lstm.StackedCells` whose last layer is an
output head (a :class:`~theano_lstm.Layer` with a ``"softmax"``,
``"log_softmax"`` or ``"linear"`` activation over a vocabulary of ``V``
tokens) and whose first layer reads the previous token, either

* an :class:`~theano_lstm.Embedding` of ``V`` rows (integer tokens), or
* a recurrent cell (or ``Layer``) with ``input_size == V``, fed one-hot
  vectors built as ``eq(token[:, None], arange(V))`` with ``V`` a constant.

Each step feeds a token through :meth:`StackedCells.forward`, turns the head's
output into logits :math:`\ell` and picks the next token by the Gumbel-max
trick:

.. math::
    y_t = \arg\max_v \left(\ell_{t,v} + T\, g_{t,v}\right), \qquad
    g_{t,v} = -\log(-\log u_{t,v}),\; u_{t,v} \sim \mathcal{U}(0, 1)

which draws :math:`y_t` from :math:`\mathrm{softmax}(\ell_t / T)` for a
temperature :math:`T > 0` and is greedy decoding (``argmax``) for
:math:`T = 0`.  So greedy and sampled generation share one compiled graph and
:math:`T \to 0` tends to greedy.

Two loop forms:

* **fixed-step** (every backend, JAX included): ``n_steps`` steps, a done-mask
  per sample; tokens after a sample's stop symbol are replaced by a padding
  symbol;
* **until** (``pytensor.scan`` with an ``until`` condition): stops as soon as
  every sample has emitted the stop symbol.  PyTensor's JAX backend cannot
  compile a while-scan, so JAX mode always uses the fixed form.

:class:`Sampler` is the user-facing entry point; :func:`generation_graph`
builds the symbolic loop for use inside a larger graph.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import numpy as np
import pytensor.tensor as pt
from pytensor.compile.mode import Mode
from pytensor.scan.utils import until as scan_until

from . import backend
from .layers import Embedding, Layer, RecurrentCell
from .stacked import StackedCells

__all__ = ["Sampler", "Generated", "GenerationGraph", "generation_graph", "check_generator_model"]

_LOGIT_ACTIVATIONS = ("softmax", "log_softmax", "linear")
_TOKEN_DTYPE = "int32"


class Generated(NamedTuple):
    """What :meth:`Sampler.generate` returns (rows are samples).

    Attributes
    ----------
    tokens : numpy.ndarray of int64, shape ``(n_samples, n_steps)``
        Generated tokens (the prime excluded).  After a sample's stop symbol
        (which is included) come padding symbols.
    lengths : numpy.ndarray of int64, shape ``(n_samples,)``
        Number of valid tokens per sample: up to and including the stop
        symbol, or ``n_steps`` when it never came.
    """

    tokens: np.ndarray
    lengths: np.ndarray


class GenerationGraph(NamedTuple):
    """What :func:`generation_graph` returns (time-major, as scan produces it).

    Attributes
    ----------
    tokens : int32 tensor ``(steps, batch)``
        Generated tokens, padding after each sample's stop symbol; ``steps`` is
        ``n_steps`` for the fixed form and at most ``n_steps`` for the until form.
    lengths : int32 tensor ``(batch,)``
        Valid tokens per sample (stop symbol included).
    updates : OrderedDict
        ``{rng: next_rng}`` when the noise was drawn from a shared RNG (pass
        it to ``function(..., updates=...)``); empty when ``noise`` was given.
    """

    tokens: object
    lengths: object
    updates: OrderedDict


def check_generator_model(model) -> tuple[bool, int]:
    """Check ``model`` can generate; return ``(embedding_input, vocabulary_size)``.

    Raises
    ------
    TypeError
        ``model`` is not a :class:`~theano_lstm.StackedCells`.
    ValueError
        No output head (last layer a ``Layer`` with a softmax, log-softmax or
        linear activation), or a first layer that cannot read tokens of that
        vocabulary.

    Examples
    --------
    >>> from theano_lstm import LSTM, Layer, StackedCells
    >>> model = StackedCells(5, celltype=LSTM, layers=[4], rng=0)
    >>> model.layers.append(Layer(4, 5, "softmax", rng=1))
    >>> check_generator_model(model)
    (False, 5)
    """
    if not isinstance(model, StackedCells):
        raise TypeError(f"model must be a StackedCells, received {type(model).__name__}")
    if len(model.layers) < 2:
        raise ValueError(f"model must have an input layer and an output head, it has {len(model.layers)} layers")
    head = model.layers[-1]
    name = backend.activation_name(head.activation) if isinstance(head, Layer) else None
    if not isinstance(head, Layer) or name not in _LOGIT_ACTIVATIONS + ("identity",):
        raise ValueError(
            "the last layer must be an output head: a Layer with activation "
            f"{list(_LOGIT_ACTIVATIONS)}, received {type(head).__name__} with activation {name!r}"
        )
    V = head.hidden_size
    first = model.layers[0]
    embedding = isinstance(first, Embedding)
    size = first.vocabulary_size if embedding else first.input_size
    if size != V:
        what = "vocabulary_size" if embedding else "input_size"
        raise ValueError(
            f"the first layer ({type(first).__name__}) must read the {V} tokens the head produces: "
            f"its {what} is {size}, expected {V}"
        )
    return embedding, V


def _static(x, axis):
    s = x.type.shape[axis]
    return s if s is not None else x.shape[axis]


def generation_graph(
    model: StackedCells,
    prime,
    n_steps=None,
    temperature=1.0,
    stop_symbol=-1,
    pad_symbol=-1,
    noise=None,
    rng=None,
    until: bool = False,
) -> GenerationGraph:
    r"""The symbolic generation loop (time-major).

    Parameters
    ----------
    model : StackedCells
        See :func:`check_generator_model`.
    prime : int tensor ``(prime_length, batch)``
        Tokens fed first, one per step (``prime_length >= 1``); the first
        generated token is drawn from the distribution after the last prime
        token.  For a one-hot input, ``-1`` feeds an all-zero vector (a
        "no token" start).
    n_steps : int or int scalar tensor, optional
        Tokens to generate (an int for JAX: a static loop length).  When
        ``noise`` is given its length sets the loop and ``n_steps`` may be
        left out.
    temperature : float or scalar tensor
        :math:`T \ge 0`; 0 is greedy decoding.
    stop_symbol : int or int scalar tensor
        A sample is done after emitting it; ``-1`` for none.
    pad_symbol : int or int scalar tensor
        Emitted after a sample's stop symbol.
    noise : float tensor ``(prime_length - 1 + n_steps, batch, V)``, optional
        Uniform(0, 1) draws for the Gumbel noise (one row per loop step).
        Default: drawn from ``rng``.
    rng : shared random generator, optional
        Used when ``noise`` is None (default: a new ``pt.random.shared_rng``);
        its update is returned in :attr:`GenerationGraph.updates`.
    until : bool
        Stop the loop once every sample is done (``scan`` with ``until``); not
        compilable by JAX.

    Returns
    -------
    GenerationGraph

    Examples
    --------
    >>> import numpy as np
    >>> from theano_lstm import RNN, Embedding, Layer, StackedCells, backend
    >>> model = StackedCells(3, celltype=RNN, layers=[], rng=0)
    >>> model.layers += [Embedding(3, 2, rng=0), RNN(2, 2, rng=1), Layer(2, 3, "softmax", rng=2)]
    >>> prime = pt.as_tensor(np.zeros((1, 2), dtype="int64"))
    >>> g = generation_graph(model, prime, n_steps=4, temperature=0.0, rng=pt.random.shared_rng(seed=0))
    >>> f = backend.function([], [g.tokens, g.lengths], updates=g.updates)
    >>> [a.shape for a in f()]
    [(4, 2), (2,)]
    """
    embedding, V = check_generator_model(model)
    prime = pt.as_tensor_variable(prime)
    if prime.ndim != 2 or not (prime.dtype.startswith("int") or prime.dtype.startswith("uint")):
        raise TypeError(f"prime must be an integer tensor (prime_length, batch), received {prime.ndim} dimensions of {prime.dtype}")
    prime = pt.cast(prime, _TOKEN_DTYPE)
    P, B = _static(prime, 0), _static(prime, 1)
    floatX = backend.floatX()
    if n_steps is None and noise is None:
        raise ValueError("generation_graph needs n_steps or noise (whose length sets the number of steps)")
    if isinstance(n_steps, (int, np.integer)) and not isinstance(n_steps, bool) and n_steps < 1:
        raise ValueError(f"n_steps must be a positive int, received {n_steps}")
    updates: OrderedDict = OrderedDict()
    if noise is None:
        T = P - 1 + n_steps
        if rng is None:
            rng = pt.random.shared_rng(seed=None, name="generation_rng")
        next_rng, noise = rng.uniform(0.0, 1.0, size=(T, B, V), dtype=floatX)
        updates[rng] = next_rng
    else:
        noise = pt.as_tensor_variable(noise)
        if noise.ndim != 3 or not noise.dtype.startswith("float"):
            raise TypeError(f"noise must be a float tensor (steps, batch, {V}), received {noise.ndim} dimensions of {noise.dtype}")
        if noise.type.shape[-1] not in (None, V):
            raise ValueError(f"noise must have {V} entries on its last axis (the vocabulary), received {noise.type.shape[-1]}")
        noise = pt.cast(noise, floatX)
        T = _static(noise, 0)
        if all(isinstance(v, (int, np.integer)) for v in (T, P, n_steps)) and T != P - 1 + n_steps:
            raise ValueError(
                f"noise has {T} rows but prime_length - 1 + n_steps = {P - 1 + n_steps} loop steps need one each"
            )
    # Gumbel noise; u is clipped away from 0 so that 0 * g is 0 for greedy decoding
    tiny = np.asarray(np.finfo(floatX).tiny, dtype=floatX)
    gumbel = -pt.log(-pt.log(pt.maximum(noise, tiny)))
    scale = pt.cast(pt.as_tensor_variable(temperature), floatX)
    stop = pt.cast(pt.as_tensor_variable(stop_symbol), _TOKEN_DTYPE)
    pad = pt.cast(pt.as_tensor_variable(pad_symbol), _TOKEN_DTYPE)

    layers = model.layers
    recurrent = [k for k, layer in enumerate(layers) if isinstance(layer, RecurrentCell)]
    head_name = backend.activation_name(layers[-1].activation)
    vocab = np.arange(V)
    init_states = model.initial_hidden_states(prime[0])
    init = [init_states[k] for k in recurrent]

    def step(g_t, t, prev_token, done, *rest):
        states = rest[: len(recurrent)]
        prime_, scale_, stop_, pad_ = rest[len(recurrent):]
        n_prime = prime_.shape[0]
        token_in = pt.switch(pt.lt(t, n_prime), prime_[pt.minimum(t, n_prime - 1)], prev_token)
        if embedding:
            x = token_in
        else:
            x = pt.cast(pt.eq(token_in[:, None], vocab), floatX)
        prev = [None] * len(layers)
        for k, s in zip(recurrent, states):
            prev[k] = s
        out = model.forward(x, prev)
        logits = pt.log(out[-1]) if head_name == "softmax" else out[-1]
        token = _first_argmax(logits + scale_ * g_t, V)
        emitting = pt.ge(t, n_prime - 1)
        new_done = pt.or_(done, pt.and_(emitting, pt.eq(token, stop_)))
        emitted = pt.switch(done, pad_, token)
        new_states = [pt.cast(out[k], init[i].dtype) for i, k in enumerate(recurrent)]
        outputs = [t + 1, token, new_done] + new_states + [emitted, done]
        if until:
            return outputs, scan_until(pt.and_(emitting, pt.all(new_done)))
        return outputs

    zeros_b = pt.zeros_like(prime[0])
    outputs_info = [pt.as_tensor_variable(np.int32(0)), zeros_b, pt.eq(zeros_b, 1)] + init + [None, None]
    results = backend.scan(
        step,
        sequences=[gumbel],
        outputs_info=outputs_info,
        non_sequences=[prime, scale, stop, pad],
        strict=False,
        name="generate",
    )
    emitted, done_before = results[-2], results[-1]
    tokens = emitted[P - 1 :]
    lengths = pt.sum(pt.eq(done_before[P - 1 :], 0), axis=0, dtype=_TOKEN_DTYPE, acc_dtype=_TOKEN_DTYPE)
    return GenerationGraph(tokens, lengths, updates)


def _first_argmax(z, V: int):
    """Index of the first maximum of ``z`` on its last axis (int32).

    Written with ``max`` over a constant ``arange(V)`` instead of ``argmax``,
    whose JAX translation asks for int64 (a warning per compile when jax runs
    without 64-bit types, as it does with ``floatX=float32``).
    """
    reverse = np.arange(V - 1, -1, -1, dtype=_TOKEN_DTYPE)  # V-1 … 0
    best = pt.max(z, axis=-1, keepdims=True)
    first = pt.max(pt.switch(pt.eq(z, best), reverse, np.int32(-1)), axis=-1)
    return pt.cast(pt.clip(V - 1 - first, 0, V - 1), _TOKEN_DTYPE)


def _is_jax(mode) -> bool:
    resolved = backend.get_mode(mode)
    return type(resolved.linker).__name__ == "JAXLinker"


class Sampler:
    r"""Compiled generation from a stacked model with an output head.

    Parameters
    ----------
    model : StackedCells
        First layer an :class:`~theano_lstm.Embedding` (or a cell reading
        one-hot vectors), last layer a softmax :class:`~theano_lstm.Layer`;
        see :func:`check_generator_model`.
    mode : str or Mode, optional
        Compile mode (default: the library default).  In JAX mode the loop
        length, prime length and number of samples are static, so one
        function is compiled per distinct ``(prime length, n_samples,
        n_steps)``; in other modes one function serves every size.
    until : bool, optional
        Use the early-stopping ``until`` loop.  Default: yes, except in JAX
        mode, which cannot compile it.
    seed : int, optional
        Seed of the sampler's :class:`numpy.random.Generator` (the Gumbel
        noise is drawn with NumPy and passed in, so that every backend draws
        the same samples for the same seed).

    Notes
    -----
    Compiled functions are cached on the sampler and read the model's shared
    variables, so they see later training updates without recompiling.

    Each call draws its uniform noise as
    ``rng.random((prime_length - 1 + n_steps, n_samples, V))`` from the
    sampler's generator ``rng`` (one row per loop step; see
    :func:`generation_graph`), so a seed fixes the samples on every backend.
    Tokens are int32 inside the graph (JAX runs without 64-bit integers when
    ``floatX`` is float32) and int64 in the returned arrays.

    Examples
    --------
    >>> from theano_lstm import LSTM, Layer, StackedCells
    >>> model = StackedCells(4, celltype=LSTM, layers=[3], rng=0)
    >>> model.layers.append(Layer(3, 4, "softmax", rng=1))
    >>> sampler = Sampler(model, seed=0)
    >>> out = sampler.generate(5, prime=[1, 2], n_samples=2, stop_symbol=0)
    >>> out.tokens.shape, out.lengths.shape
    ((2, 5), (2,))
    """

    def __init__(self, model: StackedCells, mode: str | Mode | None = None, until: bool | None = None, seed=None):
        self.embedding, self.vocabulary_size = check_generator_model(model)
        self.model = model
        self.mode = mode
        self.static = _is_jax(mode)
        if until is None:
            until = not self.static
        if until and self.static:
            raise ValueError("until=True needs a backend that compiles while-loops; PyTensor's JAX backend does not")
        self.until = bool(until)
        self.rng = np.random.default_rng(seed)
        self._functions: dict = {}

    def _function(self, P: int, B: int, T: int):
        key = (P, B, T) if self.static else None
        fn = self._functions.get(key)
        if fn is None:
            shape = (lambda *s: s) if self.static else (lambda *s: (None,) * len(s))
            prime = pt.tensor("prime", dtype=_TOKEN_DTYPE, shape=shape(P, B))
            noise = pt.tensor("noise", dtype=backend.floatX(), shape=shape(T, B, self.vocabulary_size))
            temperature = pt.scalar("temperature", dtype=backend.floatX())
            stop = pt.scalar("stop_symbol", dtype=_TOKEN_DTYPE)
            pad = pt.scalar("pad_symbol", dtype=_TOKEN_DTYPE)
            graph = generation_graph(self.model, prime, temperature=temperature, stop_symbol=stop,
                                     pad_symbol=pad, noise=noise, until=self.until)
            fn = backend.function([prime, noise, temperature, stop, pad], [graph.tokens, graph.lengths], mode=self.mode)
            self._functions[key] = fn
        return fn

    def _check_token(self, value, what):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{what} must be an int token, received {value!r}")
        if not 0 <= value < self.vocabulary_size:
            raise ValueError(f"{what} must be a token in 0..{self.vocabulary_size - 1}, received {value}")
        return int(value)

    def generate(
        self,
        n_steps: int,
        prime=None,
        temperature: float = 1.0,
        greedy: bool = False,
        stop_symbol: int | None = None,
        n_samples: int | None = None,
        seed=None,
        pad_symbol: int | None = None,
    ) -> Generated:
        """Generate ``n_samples`` sequences of up to ``n_steps`` tokens.

        Parameters
        ----------
        n_steps : int
            Tokens to generate per sample (the prime not counted).
        prime : sequence of int, or int array ``(n_samples, prime_length)``, optional
            Tokens fed before generating; a 1-d prime is used for every sample.
            Required for an Embedding model (e.g. a start symbol); a one-hot
            model without a prime starts from an all-zero input vector.
        temperature : float
            Sampling temperature :math:`T > 0` (lower: closer to greedy).
        greedy : bool
            Always take the most probable token (same as ``temperature=0``).
        stop_symbol : int, optional
            A sample stops after emitting this token.
        n_samples : int, optional
            Number of samples (default: the rows of a 2-d prime, else 1).
        seed : int, optional
            Reseed the sampler's generator first (reproducible samples).
        pad_symbol : int, optional
            Fills each sample after its stop symbol (default: the stop symbol).

        Returns
        -------
        Generated
            ``tokens`` ``(n_samples, n_steps)`` and ``lengths`` ``(n_samples,)``.

        Raises
        ------
        ValueError, TypeError
            Invalid sizes, tokens outside the vocabulary, negative temperature.
        """
        V = self.vocabulary_size
        if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
            raise ValueError(f"n_steps must be a positive int, received {n_steps!r}")
        if n_samples is not None and (isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1):
            raise ValueError(f"n_samples must be a positive int, received {n_samples!r}")
        if not greedy:
            if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.integer, np.floating)):
                raise TypeError(f"temperature must be a number, received {type(temperature).__name__}")
            if not (np.isfinite(temperature) and temperature >= 0):
                raise ValueError(f"temperature must be a finite number >= 0, received {temperature!r}")
        temperature = 0.0 if greedy else float(temperature)
        stop = -1 if stop_symbol is None else self._check_token(stop_symbol, "stop_symbol")
        if pad_symbol is None:
            pad = stop if stop_symbol is not None else 0
        else:
            pad = self._check_token(pad_symbol, "pad_symbol")
        if prime is None:
            if self.embedding:
                raise ValueError("an Embedding model needs a prime to start from (e.g. prime=[start_symbol])")
            rows = np.full((n_samples or 1, 1), -1, dtype=np.int64)
        else:
            arr = np.asarray(prime)
            if arr.dtype.kind not in "iu" and not (arr.size == 0 and arr.dtype.kind == "f"):
                raise TypeError(f"prime must hold int tokens, received dtype {arr.dtype}")
            if arr.ndim == 1:
                rows = np.broadcast_to(arr, (n_samples or 1, arr.shape[0]))
            elif arr.ndim == 2:
                if n_samples is not None and arr.shape[0] != n_samples:
                    raise ValueError(f"prime has {arr.shape[0]} rows but n_samples={n_samples}")
                rows = arr
            else:
                raise ValueError(f"prime must be 1-d (prime_length,) or 2-d (n_samples, prime_length), received shape {arr.shape}")
            if rows.shape[1] == 0:
                raise ValueError("prime must hold at least one token")
            if rows.min() < 0 or rows.max() >= V:
                raise ValueError(f"prime tokens must be in 0..{V - 1}, received values in {int(rows.min())}..{int(rows.max())}")
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        B, P = rows.shape
        T = P - 1 + int(n_steps)
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        dtype = backend.floatX()
        noise = self.rng.random((T, B, V), dtype=np.float32 if dtype == "float32" else np.float64)
        fn = self._function(P, B, T)
        tokens, lengths = fn(rows.T.astype(np.int32), noise, np.asarray(temperature, dtype=dtype),
                             np.int32(stop), np.int32(pad))
        tokens = backend.to_numpy(tokens).astype(np.int64).T
        lengths = backend.to_numpy(lengths).astype(np.int64)
        if tokens.shape[1] < n_steps:  # the until loop stopped early: every sample is done
            fill = np.full((B, int(n_steps) - tokens.shape[1]), pad, dtype=np.int64)
            tokens = np.concatenate([tokens, fill], axis=1)
        return Generated(np.ascontiguousarray(tokens), lengths)
