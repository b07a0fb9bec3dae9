r"""Dropout and zoneout masks, drawn outside the scan, with explicit RNG updates.

As in the 2014 package, masks are drawn *before* the loop and passed in:
to :meth:`StackedCells.forward <theano_lstm.StackedCells.forward>` (``dropout=``)
inside a hand-written step function, or to :meth:`StackedCells.scan
<theano_lstm.StackedCells.scan>` (``dropout=``, ``recurrent_dropout=``,
``zoneout=``).  Drawing inside the loop would thread the random generator
through the scan state, which breaks gradients through sequences.

Random state is never global or hidden.  Each call that draws creates its own
shared random generator (a ``numpy.random.Generator`` in a shared variable) and
gives back the update that advances it; merge that update into
``pytensor.function(updates=...)``, or every call of the compiled function
reuses the same masks:

>>> masks = MultiDropout([(2, 3), (2, 4)], 0.5, rng=0)
>>> [m.type.shape for m in masks]
[(2, 3), (2, 4)]
>>> len(masks.updates)  # {shared generator: its advanced state}
1

Conventions
-----------
``prob`` / ``dropout`` is the probability of *dropping* a unit (2014
meaning); the keep probability is :math:`q = 1 - p`.

* **Inverted dropout** (``inverted=True``, the default): kept units are scaled
  by :math:`1/q`, so the expected mask is 1 and evaluation needs no mask at
  all.  The 2014 package did not rescale (``inverted=False``): its masks are
  0/1, and evaluation must scale by :math:`q` (``deterministic=True`` masks
  are filled with :math:`q` for exactly that).
* **Variational dropout** (Gal & Ghahramani 2016): one mask per sequence,
  shape ``(batch, size)``, reused at every step, on inputs (``dropout=``) and
  on the recurrent state (``recurrent_dropout=``).  Per-step masks
  ``(time, batch, size)`` are also accepted by the runner.
* **Zoneout** (Krueger et al. 2017): a mask :math:`z` over a recurrent cell's
  packed state, 1 where the previous state is kept,
  :math:`s_t = z \odot s_{t-1} + (1 - z) \odot \tilde s_t`.  Training draws
  :math:`z \sim \mathrm{Bernoulli}(p)` per step; evaluation uses its
  expectation :math:`p`.

JAX mode draws with ``bernoulli`` (there is no JAX ``binomial`` without
numpyro) and needs static mask shapes: give every shape as Python ints.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from numbers import Real
from typing import NamedTuple

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.graph.basic import Variable
from pytensor.tensor.random.op import RandomVariable

from . import backend
from . import init as initializers
from .layers import Embedding, LSTM, RecurrentCell

__all__ = [
    "Dropout",
    "MultiDropout",
    "DropoutMasks",
    "dropout_masks",
    "StackedMasks",
    "rng_updates",
]


# --------------------------------------------------------------------- helpers


def _shared_rng(rng):
    """A new shared generator from ``None`` (fresh entropy), an int seed or a Generator.

    A ``Generator`` is not copied but asked for a child seed, so passing the
    same one to several calls gives independent, reproducible streams.
    """
    if isinstance(rng, np.random.Generator):
        generator = np.random.default_rng(int(rng.integers(2**63 - 1)))
    elif isinstance(rng, (bool, np.bool_)):
        raise TypeError(f"rng must be None, an int seed or a numpy Generator, received {rng!r}")
    else:
        if isinstance(rng, (int, np.integer)) and rng < 0:
            raise ValueError(f"rng seed must be >= 0, received {rng}")
        generator = initializers.as_rng(rng)
    return pytensor.shared(generator, name="dropout.rng")


def _check_prob(prob, what: str, allow_symbolic: bool = False):
    """A probability in [0, 1] (a Python number, or a scalar tensor when allowed)."""
    if isinstance(prob, (bool, np.bool_)):
        raise TypeError(f"{what} must be a probability in [0, 1], received {prob!r}")
    if isinstance(prob, Real):
        prob = float(prob)
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"{what} must be a probability in [0, 1], received {prob}")
        return prob
    if allow_symbolic:
        try:
            var = pt.as_tensor_variable(prob)
        except Exception as exc:  # noqa: BLE001 - re-raised with context
            raise TypeError(f"{what} must be a number or a scalar tensor, received {type(prob).__name__}") from exc
        if var.ndim != 0 or not var.dtype.startswith("float"):
            raise TypeError(f"{what} must be a float scalar, received a {var.ndim}-d {var.dtype} tensor")
        return var
    raise TypeError(f"{what} must be a probability in [0, 1], received {type(prob).__name__}")


def _check_shape(shape, what: str) -> tuple:
    """A mask shape: a tuple of positive ints (or scalar integer tensors)."""
    if not isinstance(shape, (tuple, list)) or len(shape) == 0:
        raise TypeError(f"{what} must be a non-empty tuple of ints, received {shape!r}")
    out = []
    for dim in shape:
        if isinstance(dim, (int, np.integer)) and not isinstance(dim, (bool, np.bool_)):
            if dim <= 0:
                raise ValueError(f"{what} must contain positive lengths, received {tuple(shape)}")
            out.append(int(dim))
        elif isinstance(dim, pt.TensorVariable) and dim.ndim == 0 and dim.dtype.startswith(("int", "uint")):
            out.append(dim)
        else:
            raise TypeError(f"{what} must contain ints (or scalar integer tensors), received {dim!r} in {shape!r}")
    return tuple(out)


def _as_dtype(value, dtype):
    """A Python number as a constant of ``dtype``, or a tensor cast to ``dtype``."""
    if isinstance(value, float):
        return pt.as_tensor_variable(np.asarray(value, dtype=dtype))
    return pt.cast(value, dtype)


def _draw_bernoulli(rng, p, shape, dtype):
    """``(next_rng, mask)``: a Bernoulli(``p``) mask of ``dtype`` drawn from ``rng``."""
    next_rng, draw = backend.random_draw(pt.random.bernoulli, _as_dtype(p, dtype), rng=rng, size=shape)
    return next_rng, pt.cast(draw, dtype)


def _dropout_mask(rng, prob, shape, inverted, deterministic, dtype):
    """``(next_rng, mask)`` for dropping with probability ``prob`` (``rng`` unused when deterministic)."""
    keep = 1.0 - prob
    if deterministic:
        fill = 1.0 if inverted else keep
        return rng, pt.full(shape, _as_dtype(fill, dtype))
    next_rng, mask = _draw_bernoulli(rng, keep, shape, dtype)
    if inverted:
        mask = mask * _as_dtype(1.0 / keep, dtype)
    return next_rng, mask


def _check_inverted(prob, inverted: bool, what: str):
    if inverted and isinstance(prob, float) and prob == 1.0:
        raise ValueError(
            f"{what}=1.0 drops every unit; inverted dropout would rescale by 1/(1 - {what}) = 1/0. "
            "Use a probability below 1 or inverted=False"
        )


# ------------------------------------------------------------ RNG bookkeeping


def rng_updates(*variables) -> OrderedDict:
    """The updates that advance every shared random generator ``variables`` draw from.

    Walks the graphs of ``variables`` (masks, or anything built from them),
    finds the random draws and, for each shared generator, follows the chain
    of draws made from it to its final state.  Pass the result to
    ``pytensor.function(updates=...)`` so each call draws fresh masks.

    Parameters
    ----------
    *variables : tensors
        Outputs whose random inputs should be advanced.

    Returns
    -------
    OrderedDict
        ``{shared generator: advanced generator}``; empty when nothing is random.

    Raises
    ------
    ValueError
        When one generator state feeds two draws (they would be identical).

    Examples
    --------
    >>> mask = Dropout((2, 3), 0.5, rng=0)
    >>> [k.name for k in rng_updates(mask * 2)]
    ['dropout.rng']
    """
    consumers: dict = {}
    seen: set = set()
    stack = [v if isinstance(v, Variable) else pt.as_tensor_variable(v) for v in variables]
    while stack:
        node = stack.pop().owner
        if node is None or node in seen:
            continue
        seen.add(node)
        if isinstance(node.op, RandomVariable):
            rng_in = node.inputs[0]  # a RandomVariable's first input is its generator
            if rng_in in consumers:
                raise ValueError(
                    f"random generator {rng_in} feeds two draws, which would be identical; "
                    "chain them (draw the second from the first's next generator)"
                )
            consumers[rng_in] = node
        stack.extend(node.inputs)
    updates = OrderedDict()
    for rng_in in consumers:
        if not isinstance(rng_in, SharedVariable):
            continue
        state = rng_in
        while state in consumers:
            state = consumers[state].outputs[0]  # a RandomVariable's first output is its next generator
        updates[rng_in] = state
    return updates


# -------------------------------------------------------------------- 2014 API


def Dropout(shape, prob, rng=None, inverted: bool = True, deterministic: bool = False, dtype: str | None = None):
    r"""A dropout mask of ``shape`` that drops each unit with probability ``prob`` (2014 API).

    .. math::
        m = \frac{b}{q}\ \text{(inverted)} \quad\text{or}\quad m = b,
        \qquad b \sim \mathrm{Bernoulli}(q),\ q = 1 - p

    Multiply it into an input: ``x * mask``.  The mask is drawn from a new
    shared generator; get the update that advances it with
    :func:`rng_updates` (``rng_updates(mask)``).  For several masks use
    :func:`MultiDropout`, which also returns the update.

    Parameters
    ----------
    shape : tuple of int
        Shape of the mask, e.g. ``(batch, size)``.  Python ints give a static
        shape (required in JAX mode); scalar integer tensors are accepted.
    prob : float or scalar tensor
        Probability :math:`p` of dropping a unit, in ``[0, 1]``.
    rng : int, numpy.random.Generator or None
        Seed of the new shared generator (``None``: fresh OS entropy; a
        ``Generator`` is asked for a child seed, so reusing it gives
        independent streams).
    inverted : bool, default True
        Scale kept units by :math:`1/q` (the 2014 package did not).
    deterministic : bool, default False
        Evaluation mode: no randomness, a mask filled with :math:`1`
        (inverted) or :math:`q` (not inverted).
    dtype : str, optional
        Mask dtype (default ``floatX``); use the dtype of the tensor it multiplies.

    Returns
    -------
    tensor of ``shape``

    Raises
    ------
    ValueError
        ``prob`` outside ``[0, 1]``; ``prob=1`` with ``inverted=True``; a
        non-positive length.
    TypeError
        A shape or probability of the wrong type.

    Examples
    --------
    >>> from theano_lstm.backend import function
    >>> mask = Dropout((2, 4), 0.5, rng=0)
    >>> f = function([], mask, updates=rng_updates(mask), mode="fast_compile")
    >>> sorted(set(f().ravel().tolist()))  # inverted: kept units are 1 / 0.5
    [0.0, 2.0]
    """
    return _draw_masks([shape], [prob], ["prob"], ["shape"], rng, inverted, deterministic, dtype)[0]


class DropoutMasks(list):
    """A list of masks (``None`` where a layer has none), as returned by :func:`MultiDropout`.

    Attributes
    ----------
    updates : OrderedDict
        ``{shared generator: advanced generator}``; merge it into
        ``pytensor.function(updates=...)``.  Empty for deterministic masks.
    rng : SharedVariable or None
        The shared generator the masks are drawn from (reseed it with
        ``masks.rng.set_value(numpy.random.default_rng(seed))``).  A function
        compiled in JAX mode keeps its own copy of the generator, so reseed
        before compiling it.
    """

    def __init__(self, masks, updates: OrderedDict, rng):
        super().__init__(masks)
        self.updates = updates
        self.rng = rng


def MultiDropout(
    shapes: Sequence,
    dropout=0.0,
    rng=None,
    inverted: bool = True,
    deterministic: bool = False,
    dtype: str | None = None,
) -> DropoutMasks:
    r"""One dropout mask per shape, all from one shared generator (2014 API).

    Draw the masks outside the scan and pass them in, e.g. as
    ``model.forward(x_t, prev_hiddens, dropout=masks)`` in a step function
    (passing ``masks`` in the scan's ``non_sequences``), or
    ``model.scan(x, dropout=masks)``.

    Parameters
    ----------
    shapes : list of tuple of int or None
        Shape of each mask, e.g. ``[(batch, input_size), (batch, hidden_size)]``
        for the inputs of a two-layer stack; a ``None`` entry gives ``None``
        (no dropout at that layer).
    dropout : float, scalar tensor or list of them
        Probability of dropping a unit: one for all masks, or one per shape.
    rng, inverted, deterministic, dtype
        As for :func:`Dropout`.

    Returns
    -------
    DropoutMasks
        The list of masks (primary result, as in 2014) with ``.updates``, the
        generator update to merge into ``pytensor.function(updates=...)``,
        and ``.rng``.

    Raises
    ------
    ValueError, TypeError
        As for :func:`Dropout`; a list of probabilities whose length differs
        from ``shapes``.

    Examples
    --------
    >>> import numpy as np
    >>> from theano_lstm.backend import function
    >>> masks = MultiDropout([(1000,), None], 0.25, rng=1, inverted=False)
    >>> masks[1] is None
    True
    >>> f = function([], masks[0], updates=masks.updates, mode="fast_compile")
    >>> bool(0.7 < f().mean() < 0.8)  # keep rate 0.75
    True
    """
    if isinstance(shapes, (str, bytes)) or not isinstance(shapes, Sequence):
        raise TypeError(f"shapes must be a list of mask shapes, received {type(shapes).__name__}")
    shapes = list(shapes)
    if isinstance(dropout, Sequence) and not isinstance(dropout, (str, bytes)):
        probs = list(dropout)
        if len(probs) != len(shapes):
            raise ValueError(
                f"dropout has {len(probs)} probabilities but {len(shapes)} shapes were given; "
                "give one probability or one per shape"
            )
        labels = [f"dropout[{k}]" for k in range(len(shapes))]
    else:
        probs = [dropout] * len(shapes)
        labels = ["dropout"] * len(shapes)
    return _draw_masks(shapes, probs, labels, [f"shapes[{k}]" for k in range(len(shapes))],
                       rng, inverted, deterministic, dtype)


def _draw_masks(shapes, probs, prob_labels, shape_labels, rng, inverted, deterministic, dtype) -> DropoutMasks:
    """Check every (shape, probability) pair, then draw the masks from one chained generator."""
    dtype = dtype or backend.floatX()
    checked = []
    for shape, prob, prob_label, shape_label in zip(shapes, probs, prob_labels, shape_labels):
        if shape is None:
            checked.append(None)
            continue
        prob = _check_prob(prob, prob_label, allow_symbolic=True)
        _check_inverted(prob, inverted, prob_label)
        checked.append((_check_shape(shape, shape_label), prob))
    shared = None if deterministic or all(c is None for c in checked) else _shared_rng(rng)
    state, masks = shared, []
    for entry in checked:
        if entry is None:
            masks.append(None)
            continue
        shape, prob = entry
        state, mask = _dropout_mask(state, prob, shape, inverted, deterministic, dtype)
        masks.append(mask)
    updates = OrderedDict() if shared is None else OrderedDict([(shared, state)])
    return DropoutMasks(masks, updates, shared)


# -------------------------------------------------------- masks for a stack


class StackedMasks(NamedTuple):
    """What :func:`dropout_masks` returns: per-layer lists (``None`` = no mask) and the RNG update.

    Attributes
    ----------
    dropout : list
        Input masks, for ``StackedCells.scan(dropout=...)`` and
        ``StackedCells.forward(dropout=...)``.
    recurrent_dropout : list
        Masks on :math:`h_{t-1}`, for ``StackedCells.scan(recurrent_dropout=...)``.
    zoneout : list
        Zoneout masks over packed states, for ``StackedCells.scan(zoneout=...)``.
    updates : OrderedDict
        ``{shared generator: advanced generator}`` for ``pytensor.function(updates=...)``.
    """

    dropout: list
    recurrent_dropout: list
    zoneout: list
    updates: OrderedDict

    def scan_kwargs(self) -> dict:
        """``dict(dropout=..., recurrent_dropout=..., zoneout=...)`` for ``model.scan(x, **kwargs)``."""
        return {"dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout, "zoneout": self.zoneout}


def _per_layer(spec, n_layers: int, what: str) -> list:
    if spec is None:
        return [None] * n_layers
    if isinstance(spec, (list, tuple)):
        if len(spec) != n_layers:
            raise ValueError(
                f"{what} must have one entry per layer ({n_layers}), received {len(spec)}; "
                "or give one probability for every layer"
            )
        return [(s, True) if s is not None else None for s in spec]
    return [(spec, False)] * n_layers


def _check_count(value, what: str, allow_none: bool) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be a positive int{' or None' if allow_none else ''}, received {value!r}")
    if value <= 0:
        raise ValueError(f"{what} must be a positive int, received {value}")
    return int(value)


def dropout_masks(
    model,
    batch_size: int | None,
    time_steps: int | None = None,
    *,
    dropout=None,
    recurrent_dropout=None,
    zoneout=None,
    inverted: bool = True,
    variational: bool = True,
    deterministic: bool = False,
    rng=None,
) -> StackedMasks:
    r"""Every dropout and zoneout mask a :class:`~theano_lstm.StackedCells` needs, from one generator.

    Time-major like :meth:`StackedCells.scan <theano_lstm.StackedCells.scan>`:
    per-step masks are ``(time, batch, size)``.

    .. math::
        \text{dropout, layer } k:\ m \in \{0, 1/q\}^{B \times I_k}
        \qquad
        \text{recurrent: } m \in \{0, 1/q\}^{B \times H_k}
        \qquad
        \text{zoneout: } z \in \{0, 1\}^{T \times B \times S_k}

    with :math:`I_k` the layer's ``input_size``, :math:`H_k` its
    ``hidden_size``, :math:`S_k` its ``state_size`` (``2 * hidden_size``, the
    packed ``[c, h]``, for an LSTM) and :math:`q = 1 - p`.

    Parameters
    ----------
    model : StackedCells
        The stack the masks are for (its ``layers`` as they are now).
    batch_size : int or None
        Batch size :math:`B`; ``None`` for unbatched ``(time, features)``
        inputs (masks lose their batch axis).
    time_steps : int, optional
        Sequence length :math:`T`; needed for zoneout (per-step masks) and
        for ``variational=False``, ignored with ``deterministic=True``.
    dropout : float, or list with one float/None per layer, optional
        Probability of dropping each input unit of a layer.  A single number
        applies to every layer except an :class:`~theano_lstm.Embedding`
        (whose input is integer indices; drop its output by giving the next
        layer a probability).
    recurrent_dropout : float, or list with one float/None per layer, optional
        Probability of dropping units of :math:`h_{t-1}` where it enters a
        recurrent cell's matrix products.  A single number applies to every
        recurrent cell (RNN, GRU, LSTM).
    zoneout : float, or list with one entry per layer, optional
        Probability of keeping each unit of a recurrent cell's previous
        state.  A single number applies to every recurrent cell.  In a
        per-layer list an LSTM's entry may be a pair ``(p_c, p_h)``: separate
        probabilities for the memory cells and the outputs (Krueger et al.
        use ``(0.5, 0.05)``).  A list or tuple at the top level is always
        per layer.
    inverted : bool, default True
        Scale kept dropout units by :math:`1/q` (zoneout masks are never scaled).
    variational : bool, default True
        One dropout / recurrent-dropout mask per sequence ``(batch, size)``,
        reused at every step; ``False`` draws one per step
        ``(time, batch, size)`` (needs ``time_steps``).
    deterministic : bool, default False
        Evaluation masks, without randomness: dropout masks filled with 1
        (inverted) or :math:`q`, zoneout masks filled with :math:`p`; all of
        shape ``(batch, size)`` (constant over time), so ``time_steps`` is not
        needed and ``updates`` is empty.
    rng : int, numpy.random.Generator or None
        Seed of the shared generator (see :func:`Dropout`).

    Returns
    -------
    StackedMasks
        ``model.scan(x, **masks.scan_kwargs())`` and merge ``masks.updates``
        into ``pytensor.function(updates=...)``.

    Raises
    ------
    TypeError
        ``model`` is not a ``StackedCells``; sizes or probabilities of the
        wrong type.
    ValueError
        A list whose length is not the number of layers; a probability outside
        ``[0, 1]`` (or 1 with ``inverted=True``); dropout asked for an
        ``Embedding`` input, recurrent dropout or zoneout for a non-recurrent
        layer, a zoneout pair for a non-LSTM layer; zoneout or
        ``variational=False`` without ``time_steps``.

    Notes
    -----
    The masks have the dtype of the layer they belong to, so a float32 model
    stays float32 whatever ``floatX`` is.  A probability of 0 still draws a
    mask (of ones); pass ``None`` for no mask at all.

    Examples
    --------
    >>> from theano_lstm import LSTM, StackedCells
    >>> model = StackedCells(3, celltype=LSTM, layers=[4, 5], rng=0)
    >>> masks = dropout_masks(model, batch_size=2, time_steps=7, dropout=0.2,
    ...                       recurrent_dropout=[None, 0.3], zoneout=[(0.5, 0.05), 0.1], rng=0)
    >>> [m.type.shape for m in masks.dropout]
    [(2, 3), (2, 4)]
    >>> masks.recurrent_dropout[0] is None, masks.recurrent_dropout[1].type.shape
    (True, (2, 5))
    >>> [m.type.shape for m in masks.zoneout]  # LSTM: packed [c, h]
    [(7, 2, 8), (7, 2, 10)]
    """
    from .stacked import StackedCells

    if not isinstance(model, StackedCells):
        raise TypeError(f"model must be a StackedCells, received {type(model).__name__}")
    layers = list(model.layers)
    n = len(layers)
    if n == 0:
        raise ValueError("this StackedCells has no layers")
    batch_size = _check_count(batch_size, "batch_size", allow_none=True)
    time_steps = _check_count(time_steps, "time_steps", allow_none=True)
    batch = () if batch_size is None else (batch_size,)
    if not variational and not deterministic and time_steps is None and (dropout is not None or recurrent_dropout is not None):
        raise ValueError("variational=False draws a mask per step and needs time_steps (the sequence length)")

    # ---- plan, per kind and layer: ([(probability, size), ...], dtype) or None
    plan = {"dropout": [None] * n, "recurrent_dropout": [None] * n, "zoneout": [None] * n}
    for k, entry in enumerate(_per_layer(dropout, n, "dropout")):
        if entry is None:
            continue
        prob, explicit = entry
        layer = layers[k]
        if isinstance(layer, Embedding):
            if explicit:
                raise ValueError(
                    f"dropout[{k}] is set but layer {k} is an Embedding whose input is integer indices; "
                    f"drop its output instead with dropout[{k + 1}]"
                )
            continue
        prob = _check_prob(prob, f"dropout[{k}]")
        _check_inverted(prob, inverted, f"dropout[{k}]")
        plan["dropout"][k] = ([(prob, layer.input_size)], layer.dtype)
    for kind, spec in (("recurrent_dropout", recurrent_dropout), ("zoneout", zoneout)):
        for k, entry in enumerate(_per_layer(spec, n, kind)):
            if entry is None:
                continue
            prob, explicit = entry
            layer = layers[k]
            if not isinstance(layer, RecurrentCell):
                if explicit:
                    raise ValueError(
                        f"{kind}[{k}] is set but layer {k} ({type(layer).__name__}) is not a recurrent cell "
                        "(RNN, GRU or LSTM)"
                    )
                continue
            if kind == "zoneout" and isinstance(prob, (tuple, list)):
                if not isinstance(layer, LSTM):
                    raise ValueError(
                        f"zoneout[{k}] is {tuple(prob)!r}; a pair (p_c, p_h) is only for an LSTM layer, "
                        f"layer {k} is {type(layer).__name__}"
                    )
                if len(prob) != 2:
                    raise ValueError(
                        f"zoneout[{k}] must be a probability or a pair (p_c, p_h), received {len(prob)} values {tuple(prob)!r}"
                    )
                probs = (_check_prob(prob[0], f"zoneout[{k}][0]"), _check_prob(prob[1], f"zoneout[{k}][1]"))
                parts = [(probs[0], layer.hidden_size), (probs[1], layer.hidden_size)]
            elif kind == "zoneout":
                parts = [(_check_prob(prob, f"zoneout[{k}]"), layer.state_size)]
            else:
                prob = _check_prob(prob, f"recurrent_dropout[{k}]")
                _check_inverted(prob, inverted, f"recurrent_dropout[{k}]")
                parts = [(prob, layer.hidden_size)]
            plan[kind][k] = (parts, layer.dtype)
    if plan["zoneout"] != [None] * n and not deterministic and time_steps is None:
        raise ValueError("zoneout draws a mask per step and needs time_steps (the sequence length)")

    # ---- draw, in a fixed order, from one chained generator
    draws = not deterministic and any(p is not None for masks in plan.values() for p in masks)
    shared = _shared_rng(rng) if draws else None
    state = shared
    out = {kind: [None] * n for kind in plan}
    step = () if (variational or deterministic) else (time_steps,)
    for kind in ("dropout", "recurrent_dropout"):
        for k, entry in enumerate(plan[kind]):
            if entry is not None:
                [(prob, size)], dtype = entry
                state, out[kind][k] = _dropout_mask(state, prob, step + batch + (size,), inverted, deterministic, dtype)
    for k, entry in enumerate(plan["zoneout"]):
        if entry is None:
            continue
        parts, dtype = entry
        pieces = []
        for prob, size in parts:
            if deterministic:
                pieces.append(pt.full(batch + (size,), _as_dtype(prob, dtype)))
            else:
                state, mask = _draw_bernoulli(state, prob, (time_steps,) + batch + (size,), dtype)
                pieces.append(mask)
        out["zoneout"][k] = pieces[0] if len(pieces) == 1 else pt.concatenate(pieces, axis=-1)
    updates = OrderedDict() if shared is None else OrderedDict([(shared, state)])
    return StackedMasks(out["dropout"], out["recurrent_dropout"], out["zoneout"], updates)
