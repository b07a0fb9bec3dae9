r"""Sequence losses: the 2014 ``masked_loss`` and masked per-step losses.

Every loss here is built from ordinary graph operations (no custom ``Op``), so
it compiles on every backend (C, Numba, JAX) and its gradient is PyTensor's
own, exact for any upstream gradient.  No loss uses a symbolic ``arange``: a
class or time index is compared against a constant index vector whenever the
length of that axis is known statically (always the case in JAX mode, which
needs static shapes anyway).

Layouts
-------
* :func:`masked_loss` keeps the 2014 signature and its **batch-major**
  ``(batch, time, classes)`` layout.
* :func:`categorical_crossentropy`, :func:`binary_crossentropy` and
  :func:`squared_error` are **time-major**, like :meth:`StackedCells.scan
  <theano_lstm.StackedCells.scan>`: predictions ``(time, batch, features)`` or
  ``(time, features)``, an optional mask ``(time, batch)`` or ``(time,)``
  (1 = valid step, 0 = padding) and a ``reduction``:

  ``"sum"``
      sum of the per-step losses over the valid steps (a scalar);
  ``"mean"``
      that sum divided by the number of valid steps (a scalar; 0 when no step
      is valid);
  ``"none"``
      the per-step losses, shape ``(time, batch)`` or ``(time,)``, zero at
      padded steps.

Padded steps are excluded with ``switch`` (never by multiplying with the
mask), so whatever the padding holds (``-inf`` logits, probabilities of 0,
out-of-range labels) cannot turn the loss or its gradient into ``nan``.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt

from . import backend
from .layers import _as_tensor as _tensor

__all__ = [
    "masked_loss",
    "categorical_crossentropy",
    "binary_crossentropy",
    "squared_error",
    "REDUCTIONS",
]

#: Accepted values of the ``reduction`` argument.
REDUCTIONS = ("sum", "mean", "none")


# --------------------------------------------------------------------- helpers


def _is_float(x) -> bool:
    return x.dtype.startswith("float")


def _check_float(x, what: str):
    if not _is_float(x):
        raise TypeError(f"{what} must be a float tensor, received dtype {x.dtype}")


def _check_int(x, what: str, hint: str = ""):
    if not backend.is_integer(x):
        raise TypeError(f"{what} must be an integer tensor, received dtype {x.dtype}{hint}")


def _check_ndim(x, allowed, what: str, layout: str):
    if x.ndim not in allowed:
        raise ValueError(f"{what} must be {layout}, received a tensor with {x.ndim} dimensions")


def _check_same_lengths(a, a_name: str, b, b_name: str, axes) -> None:
    """Raise when two static axis lengths are both known and differ."""
    for axis_a, axis_b in axes:
        la, lb = a.type.shape[axis_a], b.type.shape[axis_b]
        if la is not None and lb is not None and la != lb:
            raise ValueError(
                f"{a_name} axis {axis_a} has length {la} but {b_name} axis {axis_b} has length {lb}; "
                "they must be equal"
            )


def _index_vector(x, axis: int):
    """``[0, 1, ..., n-1]`` for ``n = x.shape[axis]``: a constant when ``n`` is static."""
    n = x.type.shape[axis]
    if n is not None:
        return pt.as_tensor_variable(np.arange(n, dtype="int64"))
    return pt.arange(x.shape[axis])


def _one_hot(labels, like):
    """Boolean ``labels.shape + (C,)`` one-hot against the last axis of ``like``.

    Labels outside ``0..C-1`` give an all-false row.
    """
    return pt.eq(labels[..., None], _index_vector(like, -1))


def _check_reduction(reduction) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; expected one of {list(REDUCTIONS)}")
    return reduction


def _valid_steps(mask, predictions, what: str = "predictions"):
    """The mask as a boolean ``(time, batch)``/``(time,)`` tensor (``None`` without a mask)."""
    if mask is None:
        return None
    mask = _tensor(mask, "mask")
    if mask.ndim != predictions.ndim - 1:
        want = "(time, batch)" if predictions.ndim == 3 else "(time,)"
        raise ValueError(
            f"mask must have shape {want} ({predictions.ndim - 1} dimensions) to match {what} with "
            f"{predictions.ndim} dimensions, received {mask.ndim} dimensions"
        )
    _check_same_lengths(mask, "mask", predictions, what, [(k, k) for k in range(mask.ndim)])
    if mask.dtype == "bool":
        return mask
    return pt.neq(mask, 0)


def _reduce(per_step, valid, reduction: str):
    """Apply ``reduction`` to per-step losses (already zero at invalid steps)."""
    if reduction == "none":
        return per_step
    total = per_step.sum()
    if reduction == "sum":
        return total
    count = per_step.size if valid is None else pt.maximum(valid.sum(), 1)
    return total / pt.cast(count, per_step.dtype)


def _xlogy(x, y):
    """:math:`x \\log y` with the convention :math:`0 \\log y = 0` (gradient-safe)."""
    zero = pt.eq(x, 0)
    return pt.switch(zero, 0, x * pt.log(pt.switch(zero, 1, y)))


def _check_sequence_pair(predictions, targets, name: str):
    """Shared checks of ``binary_crossentropy``/``squared_error`` inputs."""
    predictions = _tensor(predictions, "predictions")
    targets = _tensor(targets, "targets")
    layout = "(time, batch, features) or (time, features)"
    _check_ndim(predictions, (2, 3), f"{name} predictions", layout)
    _check_float(predictions, f"{name} predictions")
    if targets.ndim != predictions.ndim:
        raise ValueError(
            f"{name} targets must have the shape of predictions ({predictions.ndim} dimensions), "
            f"received {targets.ndim} dimensions"
        )
    _check_same_lengths(targets, "targets", predictions, "predictions", [(k, k) for k in range(targets.ndim)])
    if targets.dtype == "bool" or backend.is_integer(targets):
        targets = pt.cast(targets, predictions.dtype)
    elif not _is_float(targets):
        raise TypeError(f"{name} targets must be a float (or 0/1 integer) tensor, received dtype {targets.dtype}")
    return predictions, targets


# ----------------------------------------------------------------- 2014 loss


def masked_loss(predictions, padded_labels, codelengths, label_starts):
    r"""Negative log-likelihood of a labelled span of each sequence (2014 API).

    For example :math:`b` with span start :math:`s_b` (``label_starts``) and
    length :math:`n_b` (``codelengths``):

    .. math::
        L_b = -\sum_{j=0}^{n_b - 1}
              \log P_{b,\, s_b + j,\, y_{b,\, s_b + j}}

    where :math:`P` is ``predictions`` and :math:`y` is ``padded_labels``.
    Labels are read at the same time index as the prediction they score
    (``padded_labels[b, t]`` is the target of ``predictions[b, t]``), not
    relative to the span start.

    Parameters
    ----------
    predictions : tensor ``(batch, time, classes)``, float
        Class probabilities (softmax outputs), **batch-major** as in 2014.
    padded_labels : tensor ``(batch, time)``, int
        Target class of each step; values outside the labelled span are
        ignored (any padding value, even out of range, is fine).
    codelengths : tensor ``(batch,)``, int
        Number of labelled steps :math:`n_b` of each example.
    label_starts : tensor ``(batch,)``, int
        Time index :math:`s_b` of each example's first labelled step.

    Returns
    -------
    tensor ``(batch,)``
        :math:`L_b` per example, dtype of ``predictions``.  Reduce it yourself
        (``.sum()`` or ``.mean()``); the gradient is exact for any reduction.

    Raises
    ------
    TypeError
        Float labels, lengths or starts; integer predictions.
    ValueError
        Wrong number of dimensions, or static batch/time lengths that disagree.

    Notes
    -----
    Steps of a span that run past the last time index are not counted (the
    2014 ``Op`` raised an ``IndexError``).  A label outside ``0..classes-1``
    inside the span scores probability 0, i.e. an infinite loss.
    The 2014 custom ``Op`` returned a gradient that was only right when the
    upstream gradient was 1; this version is composed of ordinary operations
    and is differentiated by PyTensor.

    Examples
    --------
    >>> import numpy as np
    >>> import pytensor.tensor as pt
    >>> from theano_lstm.backend import function
    >>> p = pt.tensor3("p"); y = pt.imatrix("y"); n = pt.ivector("n"); s = pt.ivector("s")
    >>> f = function([p, y, n, s], masked_loss(p, y, n, s), mode="fast_compile")
    >>> probs = np.full((1, 3, 2), 0.5); probs[0, 1] = [0.25, 0.75]
    >>> np.round(f(probs, [[0, 1, 0]], [2], [1]), 6)  # -log(0.75) - log(0.5)
    array([0.980829])
    """
    predictions = _tensor(predictions, "predictions")
    padded_labels = _tensor(padded_labels, "padded_labels")
    codelengths = _tensor(codelengths, "codelengths")
    label_starts = _tensor(label_starts, "label_starts")
    _check_ndim(predictions, (3,), "predictions", "(batch, time, classes)")
    _check_float(predictions, "predictions")
    _check_ndim(padded_labels, (2,), "padded_labels", "(batch, time)")
    _check_int(padded_labels, "padded_labels", " (class indices expected)")
    for tensor, name in ((codelengths, "codelengths"), (label_starts, "label_starts")):
        _check_ndim(tensor, (1,), name, "(batch,)")
        _check_int(tensor, name)
        _check_same_lengths(tensor, name, predictions, "predictions", [(0, 0)])
    _check_same_lengths(padded_labels, "padded_labels", predictions, "predictions", [(0, 0), (1, 1)])

    t = _index_vector(predictions, 1)[None, :]  # (1, time)
    start = label_starts[:, None]
    in_span = pt.and_(pt.ge(t, start), pt.lt(t, start + codelengths[:, None]))  # (batch, time)
    picked = pt.switch(_one_hot(padded_labels, predictions), predictions, 0).sum(axis=-1)
    # log(1) = 0 outside the span; the double switch keeps the gradient finite there
    return -pt.log(pt.switch(in_span, picked, 1)).sum(axis=1)


# ------------------------------------------------------------ per-step losses


def categorical_crossentropy(predictions, targets, mask=None, reduction: str = "sum", from_logits: bool = True):
    r"""Per-step categorical cross-entropy of a time-major sequence.

    With logits :math:`z_t` (``from_logits=True``, the default) the per-step
    loss uses a stable log-softmax; with probabilities :math:`p_t`
    (``from_logits=False``) it takes their log directly:

    .. math::
        \ell_t = -\log \mathrm{softmax}(z_t)_{y_t}
               = -z_{t, y_t} + \log \sum_k e^{z_{t,k}}
        \qquad\text{or}\qquad
        \ell_t = -\log p_{t, y_t}

    and the reduction is over the valid steps :math:`V = \{t : m_t \neq 0\}`:
    ``"sum"`` :math:`\sum_{t \in V} \ell_t`, ``"mean"``
    :math:`\frac{1}{|V|}\sum_{t \in V} \ell_t`, ``"none"``
    :math:`[m_t \neq 0]\,\ell_t`.

    Parameters
    ----------
    predictions : tensor ``(time, batch, classes)`` or ``(time, classes)``, float
        Logits (``from_logits=True``) or probabilities.
    targets : tensor ``(time, batch)`` or ``(time,)``, int
        Class index :math:`y_t` of each step (``0 … classes-1``).
    mask : tensor ``(time, batch)`` or ``(time,)``, optional
        1 (or nonzero) for valid steps, 0 for padding.
    reduction : {"sum", "mean", "none"}
        See above.
    from_logits : bool, default True
        Whether ``predictions`` are logits or probabilities.

    Returns
    -------
    tensor
        A scalar, or the per-step losses ``(time, batch)``/``(time,)`` for
        ``reduction="none"``; dtype of ``predictions``.

    Raises
    ------
    TypeError
        Float targets (one-hot targets must be converted to indices first,
        e.g. ``targets.argmax(-1)``) or integer predictions.
    ValueError
        Wrong number of dimensions, static shapes that disagree, unknown
        ``reduction``.

    Notes
    -----
    A target outside ``0 … classes-1`` at a valid step selects no class: with
    logits that step contributes 0, with probabilities an infinite loss.  No
    index check is made at run time (none survives JAX compilation), so
    check label ranges when building the data.

    Examples
    --------
    >>> import numpy as np
    >>> import pytensor.tensor as pt
    >>> from theano_lstm.backend import function
    >>> z = pt.tensor3("z"); y = pt.imatrix("y"); m = pt.matrix("m")
    >>> f = function([z, y, m], categorical_crossentropy(z, y, m, "none"), mode="fast_compile")
    >>> np.round(f(np.zeros((2, 1, 4)), [[3], [0]], [[1.0], [0.0]]), 4)  # log(4) = 1.3863
    array([[1.3863],
           [0.    ]])
    """
    _check_reduction(reduction)
    predictions = _tensor(predictions, "predictions")
    targets = _tensor(targets, "targets")
    _check_ndim(predictions, (2, 3), "categorical_crossentropy predictions", "(time, batch, classes) or (time, classes)")
    _check_float(predictions, "categorical_crossentropy predictions")
    _check_int(targets, "categorical_crossentropy targets",
               " (class indices expected; for one-hot targets pass targets.argmax(-1))")
    if targets.ndim != predictions.ndim - 1:
        raise ValueError(
            f"categorical_crossentropy targets must have {predictions.ndim - 1} dimensions "
            f"(predictions without the class axis), received {targets.ndim}"
        )
    _check_same_lengths(targets, "targets", predictions, "predictions", [(k, k) for k in range(targets.ndim)])
    valid = _valid_steps(mask, predictions)
    hot = _one_hot(targets, predictions)
    if from_logits:
        log_p = backend.log_softmax(predictions)
        # switch, not a product: a -inf logit must not give -inf * 0 = nan
        per_step = -pt.switch(hot, log_p, 0).sum(axis=-1)
    else:
        picked = pt.switch(hot, predictions, 0).sum(axis=-1)
        if valid is not None:
            picked = pt.switch(valid, picked, 1)
        per_step = -pt.log(picked)
    if valid is not None:
        per_step = pt.switch(valid, per_step, 0)
    return _reduce(per_step, valid, reduction)


def binary_crossentropy(predictions, targets, mask=None, reduction: str = "sum", from_logits: bool = True):
    r"""Per-step binary cross-entropy of independent (multi-label) outputs.

    For each output unit :math:`k` with target :math:`t_{t,k} \in [0, 1]`,
    from logits :math:`z` (the default; stable softplus form, the gradient is
    :math:`\sigma(z) - t`) or from probabilities :math:`p`:

    .. math::
        \ell_t = \sum_k \big(\operatorname{softplus}(z_{t,k}) - t_{t,k} z_{t,k}\big)
        \qquad\text{or}\qquad
        \ell_t = -\sum_k \big(t_{t,k}\log p_{t,k} + (1 - t_{t,k})\log(1 - p_{t,k})\big)

    with :math:`\operatorname{softplus}(z) = \log(1 + e^z)`, reduced over the
    valid steps as in :func:`categorical_crossentropy`.

    Parameters
    ----------
    predictions : tensor ``(time, batch, units)`` or ``(time, units)``, float
        Logits (``from_logits=True``) or sigmoid probabilities.
    targets : tensor, same shape as ``predictions``
        Targets in :math:`[0, 1]`; integer or boolean 0/1 tensors are cast.
    mask : tensor ``(time, batch)`` or ``(time,)``, optional
        1 (or nonzero) for valid steps, 0 for padding.
    reduction : {"sum", "mean", "none"}
    from_logits : bool, default True

    Returns
    -------
    tensor
        A scalar, or the per-step losses (summed over units) ``(time, batch)``/
        ``(time,)`` for ``reduction="none"``.

    Raises
    ------
    TypeError
        Non-float predictions; targets neither float, integer nor boolean.
    ValueError
        Wrong number of dimensions, static shapes that disagree, unknown
        ``reduction``.

    Notes
    -----
    From probabilities, :math:`0 \log 0` is taken as 0, so hard 0/1 targets
    with saturated probabilities give a finite loss when they agree.

    Examples
    --------
    >>> import numpy as np
    >>> import pytensor.tensor as pt
    >>> from theano_lstm.backend import function
    >>> z = pt.matrix("z"); t = pt.matrix("t")
    >>> f = function([z, t], binary_crossentropy(z, t, reduction="mean"), mode="fast_compile")
    >>> round(float(f(np.zeros((3, 2)), np.ones((3, 2)))), 4)  # 2 * log(2)
    1.3863
    """
    _check_reduction(reduction)
    predictions, targets = _check_sequence_pair(predictions, targets, "binary_crossentropy")
    valid = _valid_steps(mask, predictions)
    if from_logits:
        per_unit = pt.softplus(predictions) - targets * predictions
    else:
        p = predictions if valid is None else pt.switch(valid[..., None], predictions, np.asarray(0.5, dtype=predictions.dtype))
        per_unit = -(_xlogy(targets, p) + _xlogy(1 - targets, 1 - p))
    per_step = per_unit.sum(axis=-1)
    if valid is not None:
        per_step = pt.switch(valid, per_step, 0)
    return _reduce(per_step, valid, reduction)


def squared_error(predictions, targets, mask=None, reduction: str = "sum"):
    r"""Per-step squared error, summed over the feature axis.

    .. math::
        \ell_t = \sum_k (\hat y_{t,k} - y_{t,k})^2

    reduced over the valid steps as in :func:`categorical_crossentropy`
    (``"mean"`` divides by the number of valid steps, not by the number of
    features).

    Parameters
    ----------
    predictions : tensor ``(time, batch, features)`` or ``(time, features)``, float
        :math:`\hat y`.
    targets : tensor, same shape as ``predictions``
        :math:`y` (integer tensors are cast).
    mask : tensor ``(time, batch)`` or ``(time,)``, optional
        1 (or nonzero) for valid steps, 0 for padding.
    reduction : {"sum", "mean", "none"}

    Returns
    -------
    tensor
        A scalar, or ``(time, batch)``/``(time,)`` per-step losses.

    Raises
    ------
    TypeError, ValueError
        As for :func:`binary_crossentropy`.

    Examples
    --------
    >>> import numpy as np
    >>> import pytensor.tensor as pt
    >>> from theano_lstm.backend import function
    >>> y = pt.matrix("y"); t = pt.matrix("t")
    >>> f = function([y, t], squared_error(y, t, reduction="none"), mode="fast_compile")
    >>> f([[1.0, 2.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 3.0]])
    array([5., 9.])
    """
    _check_reduction(reduction)
    predictions, targets = _check_sequence_pair(predictions, targets, "squared_error")
    valid = _valid_steps(mask, predictions)
    per_step = pt.sqr(predictions - targets).sum(axis=-1)
    if valid is not None:
        per_step = pt.switch(valid, per_step, 0)
    return _reduce(per_step, valid, reduction)
