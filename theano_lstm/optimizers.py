r"""Optimizers: update rules, gradient clipping and the 2014 ``create_optimization_updates``.

Every update rule is a pure function

.. code-block:: python

    updates = rule(cost_or_grads, params, **hyper_parameters)

returning an :class:`~collections.OrderedDict` that maps each shared variable
to its new value, ready for ``pytensor.function(..., updates=updates)``.

* ``cost_or_grads`` is a scalar cost (differentiated with respect to
  ``params``) or a list with one gradient per parameter.
* ``params`` is a list of float shared variables, e.g. ``model.params``.
* Accumulators (velocities, running averages, step counters) are new shared
  variables named after their parameter:
  ``"layers.0.LSTM.linear_matrix.adadelta_gsum"``.  In the returned dict each
  parameter comes right after its own accumulators.
* Every new value has its variable's dtype: a float32 parameter stays float32
  even when ``pytensor.config.floatX`` is float64.
* A hyper-parameter is a Python number or a scalar shared variable (any
  scalar tensor works, e.g. a function input); with a shared variable,
  ``lr.set_value(...)`` changes the next step of an already compiled function
  (a learning-rate schedule without recompiling).  It is cast to each
  parameter's dtype inside the graph.

Gradient transforms take a list of gradients and return a list, so they
compose with the rules by plain calls::

    grads = pytensor.grad(cost, params)
    updates = rmsprop(clip_global_norm(grads, 5.0), params)
    updates, finite = skip_non_finite(updates, grads)

===================================  ====================================================
:func:`sgd`                          plain gradient descent
:func:`momentum`                     heavy-ball momentum
:func:`nesterov_momentum`            Nesterov's accelerated gradient
:func:`adagrad`                      Duchi et al. (2011)
:func:`adadelta`                     Zeiler (2012)
:func:`rmsprop`                      Tieleman & Hinton (2012)
:func:`adam`                         Kingma & Ba (2015)
:func:`clip_elementwise`             clip each gradient entry to ``[-bound, bound]``
:func:`clip_norm_per_param`          rescale each gradient to norm at most ``max_norm``
:func:`clip_global_norm`             rescale all gradients together (Pascanu et al. 2013)
:func:`all_finite`                   one boolean: no NaN or inf anywhere
:func:`skip_non_finite`              a step with non-finite gradients changes nothing
:func:`create_optimization_updates`  the 2014 entry point
===================================  ====================================================

Not to be confused with :func:`theano_lstm.clip_gradient`, which clips the
gradient *messages* flowing backwards through one tensor inside the graph.

Examples
--------
>>> import numpy as np
>>> from theano_lstm import backend
>>> from theano_lstm.optimizers import sgd
>>> w = backend.shared(np.array([1.0, -2.0]), name="w")
>>> step = backend.function([], [], updates=sgd((w ** 2).sum(), [w], lr=0.25), mode="fast_compile")
>>> _ = step()
>>> w.get_value()
array([ 0.5, -1. ])
"""

from __future__ import annotations

import numbers
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.graph.basic import Variable
from pytensor.tensor.variable import TensorVariable

from . import backend

__all__ = [
    "sgd",
    "momentum",
    "nesterov_momentum",
    "adagrad",
    "adadelta",
    "rmsprop",
    "adam",
    "clip_elementwise",
    "clip_norm_per_param",
    "clip_global_norm",
    "all_finite",
    "skip_non_finite",
    "create_optimization_updates",
    "METHODS",
]

#: Rule names accepted by :func:`create_optimization_updates`.
METHODS = ("sgd", "momentum", "nesterov_momentum", "adagrad", "adadelta", "rmsprop", "adam")

# ------------------------------------------------------------------ validation


def _describe(value) -> str:
    """``type`` (and name, for a variable) of ``value`` for error messages."""
    name = getattr(value, "name", None)
    kind = type(value).__name__
    return f"{kind} {name!r}" if isinstance(value, Variable) and name else kind


def _is_float_tensor(value) -> bool:
    return str(getattr(value, "dtype", "")).startswith("float")


def _check_params(params) -> list:
    """``params`` as a list of distinct float shared variables, or raise."""
    if isinstance(params, (Variable, str)) or not isinstance(params, Sequence):
        raise TypeError(
            f"params must be a list of shared variables, received {_describe(params)}"
            + (" (wrap a single parameter in a list)" if isinstance(params, SharedVariable) else "")
        )
    params = list(params)
    if not params:
        raise ValueError("params is empty; expected a list of at least one shared variable")
    seen: dict[int, int] = {}
    for k, p in enumerate(params):
        if not isinstance(p, SharedVariable):
            raise TypeError(
                f"params[{k}] must be a shared variable (e.g. from pytensor.shared), received {_describe(p)}"
            )
        if not _is_float_tensor(p):
            raise TypeError(
                f"params[{k}] ({p.name!r}) must be a float tensor to be trained, "
                f"received dtype {getattr(p, 'dtype', type(p.type).__name__)}"
            )
        if id(p) in seen:
            raise ValueError(f"params[{k}] ({p.name!r}) is the same shared variable as params[{seen[id(p)]}]")
        seen[id(p)] = k
    return params


def _as_grad_list(grads, where: str) -> list:
    """``grads`` (a list of tensors) as a list of float tensor variables."""
    if isinstance(grads, (Variable, str)) or not isinstance(grads, Sequence):
        raise TypeError(f"{where} expects a list of gradient tensors, received {_describe(grads)}")
    out = []
    for k, g in enumerate(grads):
        try:
            g = pt.as_tensor_variable(g)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{where}: gradient {k} must be a tensor, received {_describe(g)}") from exc
        if not _is_float_tensor(g):
            raise TypeError(f"{where}: gradient {k} must be a float tensor, received dtype {g.dtype}")
        out.append(g)
    return out


def _gradients(cost_or_grads, params: list, where: str) -> list:
    """One gradient per parameter, from a scalar cost or a list of gradients."""
    if isinstance(cost_or_grads, Sequence) and not isinstance(cost_or_grads, str):
        grads = _as_grad_list(cost_or_grads, where)
        if len(grads) != len(params):
            raise ValueError(
                f"{where} received {len(grads)} gradients for {len(params)} parameters; "
                "expected one gradient per parameter"
            )
        for k, (g, p) in enumerate(zip(grads, params)):
            if g.ndim != p.ndim:
                raise ValueError(
                    f"{where}: gradient {k} has {g.ndim} dimensions but parameter {p.name!r} has {p.ndim}"
                )
            for axis, (a, b) in enumerate(zip(g.type.shape, p.type.shape)):
                if a is not None and b is not None and a != b:
                    raise ValueError(
                        f"{where}: gradient {k} has shape {g.type.shape} but parameter {p.name!r} "
                        f"has shape {p.type.shape} (axis {axis} differs)"
                    )
        return grads
    if isinstance(cost_or_grads, TensorVariable):
        if cost_or_grads.ndim != 0:
            raise ValueError(
                f"{where}: the cost must be a scalar, received a tensor with {cost_or_grads.ndim} "
                "dimensions (reduce it with .sum() or .mean(), or pass a list of gradients)"
            )
        if not _is_float_tensor(cost_or_grads):
            raise TypeError(f"{where}: the cost must be a float scalar, received dtype {cost_or_grads.dtype}")
        return pytensor.grad(cost_or_grads, params)
    raise TypeError(
        f"{where} expects a scalar cost tensor or a list of gradients as cost_or_grads, "
        f"received {_describe(cost_or_grads)}"
    )


def _check_hyper(value, name: str, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False):
    """A hyper-parameter: a number in range (returned as ``float``) or a scalar tensor."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number or a scalar shared variable, received bool")
    if isinstance(value, numbers.Real):
        v = float(value)
        too_low = low is not None and (v <= low if low_open else v < low)
        too_high = high is not None and (v >= high if high_open else v > high)
        if not np.isfinite(v) or too_low or too_high:
            left = "(" if low_open else "["
            right = ")" if high_open else "]"
            lo = "-inf" if low is None else f"{low:g}"
            hi = "inf" if high is None else f"{high:g}"
            raise ValueError(f"{name} must be in {left}{lo}, {hi}{right}, received {value!r}")
        return v
    if isinstance(value, Variable):
        t = pt.as_tensor_variable(value)
        if t.ndim != 0:
            raise ValueError(f"{name} must be a scalar, received a tensor with {t.ndim} dimensions")
        if not (t.dtype.startswith("float") or t.dtype.startswith("int") or t.dtype.startswith("uint")):
            raise TypeError(f"{name} must be a real scalar, received dtype {t.dtype}")
        return t
    raise TypeError(f"{name} must be a number or a scalar shared variable, received {_describe(value)}")


def _cast(value, dtype: str):
    """A checked hyper-parameter as a scalar tensor of ``dtype`` (cast inside the graph)."""
    if isinstance(value, float):
        return pt.constant(np.asarray(value, dtype=dtype))
    return value if value.dtype == dtype else pt.cast(value, dtype)


def _accumulator(param, base: str, what: str, fill: float = 0.0, scalar: bool = False):
    """A new shared variable like ``param`` (or a scalar), named ``"<base>.<what>"``."""
    if scalar:
        shape, static = (), ()
    else:
        shape, static = np.shape(param.get_value(borrow=True)), param.type.shape
    value = np.full(shape, fill, dtype=param.dtype)
    return pytensor.shared(value, name=f"{base}.{what}", shape=static)


def _apply(cost_or_grads, params, step: Callable, where: str) -> OrderedDict:
    """Run ``step(param, grad, base_name)`` for every parameter and collect its pairs.

    ``step`` returns ``[(variable, new_value), ...]``: the parameter's
    accumulators first, the parameter last.  Every new value is cast to its
    variable's dtype.
    """
    params = _check_params(params)
    grads = _gradients(cost_or_grads, params, where)
    updates: OrderedDict = OrderedDict()
    for k, (p, g) in enumerate(zip(params, grads)):
        g = g if g.dtype == p.dtype else pt.cast(g, p.dtype)
        base = p.name or f"params[{k}]"
        for var, new in step(p, g, base):
            updates[var] = new if new.dtype == var.dtype else pt.cast(new, var.dtype)
    return updates


# ------------------------------------------------------------------------ rules


def sgd(cost_or_grads, params: Sequence, lr=0.01) -> OrderedDict:
    r"""Stochastic gradient descent.

    .. math::
        \theta \leftarrow \theta - \eta\, g

    where :math:`g` is the gradient of the cost with respect to
    :math:`\theta` and :math:`\eta` is ``lr``.

    Parameters
    ----------
    cost_or_grads : scalar tensor or list of tensors
        The cost to minimise, or one gradient per parameter (each the shape
        of its parameter).
    params : list of shared variables
        Float parameters of any shape.
    lr : float or scalar shared variable, default 0.01
        Learning rate :math:`\eta`.

    Returns
    -------
    OrderedDict
        ``{param: new_value}``.

    Raises
    ------
    TypeError
        ``params`` is not a list of float shared variables, or a gradient or
        hyper-parameter has the wrong type.
    ValueError
        The cost is not a scalar, the number or shapes of the gradients do not
        match ``params``, or a hyper-parameter is out of range.

    References
    ----------
    H. Robbins, S. Monro, "A stochastic approximation method", Annals of
    Mathematical Statistics 22(3), 1951.

    Examples
    --------
    >>> import numpy as np
    >>> from theano_lstm import backend
    >>> w = backend.shared(np.zeros(3), name="w")
    >>> [var.name for var in sgd((w ** 2).sum(), [w])]
    ['w']
    """
    lr = _check_hyper(lr, "lr", low=0)

    def step(p, g, base):
        return [(p, p - _cast(lr, p.dtype) * g)]

    return _apply(cost_or_grads, params, step, "sgd")


def momentum(cost_or_grads, params: Sequence, lr=0.01, momentum=0.9) -> OrderedDict:
    r"""Gradient descent with (heavy-ball) momentum.

    .. math::
        \begin{aligned}
        v &\leftarrow \mu\, v - \eta\, g \\
        \theta &\leftarrow \theta + v
        \end{aligned}

    The velocity :math:`v` starts at zero.

    Parameters
    ----------
    cost_or_grads : scalar tensor or list of tensors
        The cost, or one gradient per parameter (each its parameter's shape).
    params : list of shared variables
        Float parameters of any shape.
    lr : float or scalar shared variable, default 0.01
        Learning rate :math:`\eta`.
    momentum : float or scalar shared variable, default 0.9
        Momentum :math:`\mu`, in ``[0, 1)``.

    Returns
    -------
    OrderedDict
        Per parameter: ``<name>.momentum_velocity`` (:math:`v`, shape of the
        parameter), then the parameter.

    Raises
    ------
    TypeError, ValueError
        As for :func:`sgd`.

    References
    ----------
    B. T. Polyak, "Some methods of speeding up the convergence of iteration
    methods", USSR Computational Mathematics and Mathematical Physics 4(5), 1964.

    I. Sutskever, J. Martens, G. Dahl, G. Hinton, "On the importance of
    initialization and momentum in deep learning", ICML 2013.

    Examples
    --------
    >>> import numpy as np
    >>> from theano_lstm import backend
    >>> w = backend.shared(np.zeros(3), name="w")
    >>> [var.name for var in momentum((w ** 2).sum(), [w])]
    ['w.momentum_velocity', 'w']
    """
    lr = _check_hyper(lr, "lr", low=0)
    mu = _check_hyper(momentum, "momentum", low=0, high=1, high_open=True)

    def step(p, g, base):
        v = _accumulator(p, base, "momentum_velocity")
        v_new = _cast(mu, p.dtype) * v - _cast(lr, p.dtype) * g
        return [(v, v_new), (p, p + v_new)]

    return _apply(cost_or_grads, params, step, "momentum")


def nesterov_momentum(cost_or_grads, params: Sequence, lr=0.01, momentum=0.9) -> OrderedDict:
    r"""Gradient descent with Nesterov's accelerated momentum.

    Written, as Bengio et al. (2013) do, in terms of the gradient at the
    current parameters:

    .. math::
        \begin{aligned}
        v &\leftarrow \mu\, v - \eta\, g \\
        \theta &\leftarrow \theta + \mu\, v - \eta\, g
        \end{aligned}

    (the second line uses the updated :math:`v`).  The velocity starts at zero.

    Parameters
    ----------
    cost_or_grads : scalar tensor or list of tensors
        The cost, or one gradient per parameter (each its parameter's shape).
    params : list of shared variables
        Float parameters of any shape.
    lr : float or scalar shared variable, default 0.01
        Learning rate :math:`\eta`.
    momentum : float or scalar shared variable, default 0.9
        Momentum :math:`\mu`, in ``[0, 1)``.

    Returns
    -------
    OrderedDict
        Per parameter: ``<name>.nesterov_velocity`` (:math:`v`), then the
        parameter.

    Raises
    ------
    TypeError, ValueError
        As for :func:`sgd`.

    References
    ----------
    Y. Nesterov, "A method of solving a convex programming problem with
    convergence rate O(1/k^2)", Soviet Mathematics Doklady 27, 1983.

    Y. Bengio, N. Boulanger-Lewandowski, R. Pascanu, "Advances in optimizing
    recurrent networks", ICASSP 2013.

    Examples
    --------
    >>> import numpy as np
    >>> from theano_lstm import backend
    >>> w = backend.shared(np.zeros(3), name="w")
    >>> [var.name for var in nesterov_momentum((w ** 2).sum(), [w])]
    ['w.nesterov_velocity', 'w']
    """
    lr = _check_hyper(lr, "lr", low=0)
    mu = _check_hyper(momentum, "momentum", low=0, high=1, high_open=True)

    def step(p, g, base):
        v = _accumulator(p, base, "nesterov_velocity")
        m, eta = _cast(mu, p.dtype), _cast(lr, p.dtype)
        v_new = m * v - eta * g
        return [(v, v_new), (p, p + m * v_new - eta * g)]

    return _apply(cost_or_grads, params, step, "nesterov_momentum")


def adagrad(cost_or_grads, params: Sequence, lr=0.01, eps=1e-6) -> OrderedDict:
    r"""AdaGrad: per-entry learning rates from the sum of squared gradients.

    .. math::
        \begin{aligned}
        G &\leftarrow G + g^2 \\
        \theta &\leftarrow \theta - \eta\, \frac{g}{\sqrt{G + \epsilon}}
        \end{aligned}

    (element-wise; :math:`G` starts at zero).

    Parameters
    ----------
    cost_or_grads : scalar tensor or list of tensors
        The cost, or one gradient per parameter (each its parameter's shape).
    params : list of shared variables
        Float parameters of any shape.
    lr : float or scalar shared variable, default 0.01
        Learning rate :math:`\eta`.
    eps : float or scalar shared variable, default 1e-6
        :math:`\epsilon \ge 0`, keeps the division finite.

    Returns
    -------
    OrderedDict
        Per parameter: ``<name>.adagrad_gsum`` (:math:`G`), then the parameter.

    Raises
    ------
    TypeError, ValueError
        As for :func:`sgd`.

    References
    ----------
    J. Duchi, E. Hazan, Y. Singer, "Adaptive subgradient methods for online
    learning and stochastic optimization", JMLR 12, 2011.

    Examples
    --------
    >>> import numpy as np
    >>> from theano_lstm import backend
    >>> w = backend.shared(np.zeros(3), name="w")
    >>> [var.name for var in adagrad((w ** 2).sum(), [w])]
    ['w.adagrad_gsum', 'w']
    """
    lr = _check_hyper(lr, "lr", low=0)
    eps = _check_hyper(eps, "eps", low=0)

    def step(p, g, base):
        gsum = _accumulator(p, base, "adagrad_gsum")
        gsum_new = gsum + g**2
        return [(gsum, gsum_new), (p, p - _cast(lr, p.dtype) * g / pt.sqrt(gsum_new + _cast(eps, p.dtype)))]

    return _apply(cost_or_grads, params, step, "adagrad")


def adadelta(cost_or_grads, params: Sequence, lr=1.0, rho=0.95, eps=1e-6) -> OrderedDict:
    r"""AdaDelta: step sizes from running averages of squared gradients and steps.

    .. math::
        \begin{aligned}
        E_g &\leftarrow \rho\, E_g + (1 - \rho)\, g^2 \\
        \Delta &= -\sqrt{\frac{E_\Delta + \epsilon}{E_g + \epsilon}}\; g \\
        E_\Delta &\leftarrow \rho\, E_\Delta + (1 - \rho)\, \Delta^2 \\
        \theta &\leftarrow \theta + \eta\, \Delta
        \end{aligned}

    (element-wise; :math:`E_g` and :math:`E_\Delta` start at zero).  With the
    default :math:`\eta = 1` this is Zeiler's method exactly (the 2014
    package's ``method="adadelta"``); :math:`\eta` only scales the step
    applied to :math:`\theta`, not the :math:`\Delta` that is averaged.

    Parameters
    ----------
    cost_or_grads : scalar tensor or list of tensors
        The cost, or one gradient per parameter (each its parameter's shape).
    params : list of shared variables
        Float parameters of any shape.
    lr : float or scalar shared variable, default 1.0
        Step scale :math:`\eta`.
    rho : float or scalar shared variable, default 0.95
        Decay :math:`\rho` of both running averages, in ``[0, 1)``.
    eps : float or scalar shared variable, default 1e-6
        :math:`\epsilon > 0`; it also sets the size of the first steps.

    Returns
    -------
    OrderedDict
        Per parameter: ``<name>.adadelta_gsum`` (:math:`E_g`),
        ``<name>.adadelta_xsum`` (:math:`E_\Delta`), then the parameter.

    Raises
    ------
    TypeError, ValueError
        As for :func:`sgd`.

    References
    ----------
    M. D. Zeiler, "ADADELTA: an adaptive learning rate method",
    arXiv:1212.5701, 2012.

    Examples
    --------
    >>> import numpy as np
    >>> from theano_lstm import backend
    >>> w = backend.shared(np.zeros(3), name="LSTM.linear_matrix")
    >>> [var.name for var in adadelta((w ** 2).sum(), [w])]
    ['LSTM.linear_matrix.adadelta_gsum', 'LSTM.linear_matrix.adadelta_xsum', 'LSTM.linear_matrix']
    """
    lr = _check_hyper(lr, "lr", low=0)
    rho = _check_hyper(rho, "rho", low=0, high=1, high_open=True)
    eps = _check_hyper(eps, "eps", low=0, low_open=True)

    def step(p, g, base):
        gsum = _accumulator(p, base, "adadelta_gsum")
        xsum = _accumulator(p, base, "adadelta_xsum")
        r, e, one = _cast(rho, p.dtype), _cast(eps, p.dtype), _cast(1.0, p.dtype)
        gsum_new = r * gsum + (one - r) * g**2
        delta = -pt.sqrt((xsum + e) / (gsum_new + e)) * g
        xsum_new = r * xsum + (one - r) * delta**2
        return [(gsum, gsum_new), (xsum, xsum_new), (p, p + _cast(lr, p.dtype) * delta)]

    return _apply(cost_or_grads, params, step, "adadelta")


def rmsprop(cost_or_grads, params: Sequence, lr=0.001, rho=0.9, eps=1e-6) -> OrderedDict:
    r"""RMSprop: divide the gradient by a running root mean square of recent gradients.

    .. math::
        \begin{aligned}
        c &\leftarrow \rho\, c + (1 - \rho)\, g^2 \\
        \theta &\leftarrow \theta - \eta\, \frac{g}{\sqrt{c + \epsilon}}
        \end{aligned}

    (element-wise; the cache :math:`c` starts at zero).  This is the form and
    the defaults (decay 0.9, :math:`\epsilon = 10^{-6}` inside the square
    root) of the GRU language-model tutorial (Britz 2015).

    Parameters
    ----------
    cost_or_grads : scalar tensor or list of tensors
        The cost, or one gradient per parameter (each its parameter's shape).
    params : list of shared variables
        Float parameters of any shape.
    lr : float or scalar shared variable, default 0.001
        Learning rate :math:`\eta`.
    rho : float or scalar shared variable, default 0.9
        Decay :math:`\rho` of the running average (the tutorial's ``decay``),
        in ``[0, 1)``.
    eps : float or scalar shared variable, default 1e-6
        :math:`\epsilon \ge 0`.

    Returns
    -------
    OrderedDict
        Per parameter: ``<name>.rmsprop_cache`` (:math:`c`), then the parameter.

    Raises
    ------
    TypeError, ValueError
        As for :func:`sgd`.

    References
    ----------
    T. Tieleman, G. Hinton, "Lecture 6.5 - rmsprop: divide the gradient by a
    running average of its recent magnitude", COURSERA: Neural Networks for
    Machine Learning, 2012.

    D. Britz, "Recurrent neural network tutorial, part 4: implementing a
    GRU/LSTM RNN with Python and Theano", WildML, 2015.

    Examples
    --------
    >>> import numpy as np
    >>> from theano_lstm import backend
    >>> w = backend.shared(np.zeros(3), name="w")
    >>> [var.name for var in rmsprop((w ** 2).sum(), [w])]
    ['w.rmsprop_cache', 'w']
    """
    lr = _check_hyper(lr, "lr", low=0)
    rho = _check_hyper(rho, "rho", low=0, high=1, high_open=True)
    eps = _check_hyper(eps, "eps", low=0)

    def step(p, g, base):
        cache = _accumulator(p, base, "rmsprop_cache")
        r, one = _cast(rho, p.dtype), _cast(1.0, p.dtype)
        cache_new = r * cache + (one - r) * g**2
        return [(cache, cache_new), (p, p - _cast(lr, p.dtype) * g / pt.sqrt(cache_new + _cast(eps, p.dtype)))]

    return _apply(cost_or_grads, params, step, "rmsprop")


def adam(cost_or_grads, params: Sequence, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8) -> OrderedDict:
    r"""Adam: bias-corrected running averages of the gradient and its square.

    Algorithm 1 of Kingma & Ba (2015), element-wise:

    .. math::
        \begin{aligned}
        t &\leftarrow t + 1 \\
        m &\leftarrow \beta_1 m + (1 - \beta_1)\, g \\
        v &\leftarrow \beta_2 v + (1 - \beta_2)\, g^2 \\
        \hat m &= m / (1 - \beta_1^t), \qquad \hat v = v / (1 - \beta_2^t) \\
        \theta &\leftarrow \theta - \eta\, \frac{\hat m}{\sqrt{\hat v} + \epsilon}
        \end{aligned}

    with :math:`m`, :math:`v` and the step count :math:`t` starting at zero.

    Parameters
    ----------
    cost_or_grads : scalar tensor or list of tensors
        The cost, or one gradient per parameter (each its parameter's shape).
    params : list of shared variables
        Float parameters of any shape.
    lr : float or scalar shared variable, default 0.001
        Step size :math:`\eta`.
    beta1, beta2 : float or scalar shared variable, default 0.9 and 0.999
        Decays :math:`\beta_1, \beta_2` of the two averages, in ``[0, 1)``.
    eps : float or scalar shared variable, default 1e-8
        :math:`\epsilon \ge 0`.

    Returns
    -------
    OrderedDict
        Per parameter: ``<name>.adam_m`` (:math:`m`), ``<name>.adam_v``
        (:math:`v`), ``<name>.adam_t`` (the step count :math:`t`, a scalar of
        the parameter's dtype), then the parameter.

    Raises
    ------
    TypeError, ValueError
        As for :func:`sgd`.

    References
    ----------
    D. P. Kingma, J. Ba, "Adam: a method for stochastic optimization",
    ICLR 2015, arXiv:1412.6980.

    Examples
    --------
    >>> import numpy as np
    >>> from theano_lstm import backend
    >>> w = backend.shared(np.zeros(3), name="w")
    >>> [var.name for var in adam((w ** 2).sum(), [w])]
    ['w.adam_m', 'w.adam_v', 'w.adam_t', 'w']
    """
    lr = _check_hyper(lr, "lr", low=0)
    beta1 = _check_hyper(beta1, "beta1", low=0, high=1, high_open=True)
    beta2 = _check_hyper(beta2, "beta2", low=0, high=1, high_open=True)
    eps = _check_hyper(eps, "eps", low=0)

    def step(p, g, base):
        m = _accumulator(p, base, "adam_m")
        v = _accumulator(p, base, "adam_v")
        t = _accumulator(p, base, "adam_t", scalar=True)
        b1, b2, one = _cast(beta1, p.dtype), _cast(beta2, p.dtype), _cast(1.0, p.dtype)
        t_new = t + one
        m_new = b1 * m + (one - b1) * g
        v_new = b2 * v + (one - b2) * g**2
        m_hat = m_new / (one - b1**t_new)
        v_hat = v_new / (one - b2**t_new)
        p_new = p - _cast(lr, p.dtype) * m_hat / (pt.sqrt(v_hat) + _cast(eps, p.dtype))
        return [(m, m_new), (v, v_new), (t, t_new), (p, p_new)]

    return _apply(cost_or_grads, params, step, "adam")


_RULES: dict[str, Callable] = {
    "sgd": sgd,
    "momentum": momentum,
    "nesterov_momentum": nesterov_momentum,
    "adagrad": adagrad,
    "adadelta": adadelta,
    "rmsprop": rmsprop,
    "adam": adam,
}

# --------------------------------------------------------------------- clipping


def _shrink(norm, max_norm, eps):
    """The factor ``min(norm, max_norm) / (norm + eps)`` (``max_norm`` and ``eps`` checked hypers).

    With ``eps == 0`` it is computed as ``max_norm / max(norm, max_norm)``:
    exactly 1 whenever ``norm <= max_norm``, including a norm that
    underflowed to 0 for subnormal gradients.
    """
    c = _cast(max_norm, norm.dtype)
    if isinstance(eps, float) and eps == 0.0:
        return c / pt.maximum(norm, c)
    tiny = pt.constant(np.asarray(np.finfo(norm.dtype).tiny, dtype=norm.dtype))
    return pt.minimum(norm, c) / pt.maximum(norm + _cast(eps, norm.dtype), tiny)


def clip_elementwise(grads: Sequence, bound) -> list:
    r"""Clip every gradient entry to ``[-bound, bound]``.

    .. math::
        g \leftarrow \min(\max(g, -b), b)

    Parameters
    ----------
    grads : list of tensors
        Gradients of any shapes (e.g. ``pytensor.grad(cost, params)``).
    bound : float or scalar shared variable
        :math:`b > 0`.

    Returns
    -------
    list of tensors
        The clipped gradients, same shapes and dtypes.

    Raises
    ------
    TypeError
        ``grads`` is not a list of float tensors, or ``bound`` is neither a
        number nor a scalar tensor.
    ValueError
        ``bound`` is not a positive number.

    References
    ----------
    T. Mikolov, "Statistical language models based on neural networks",
    PhD thesis, Brno University of Technology, 2012.

    Examples
    --------
    >>> import pytensor.tensor as pt
    >>> g = pt.vector("g")
    >>> [clipped] = clip_elementwise([g], 1.0)
    >>> clipped.eval({g: [500.0, -5.0, 0.5]})
    array([ 1. , -1. ,  0.5])
    """
    grads = _as_grad_list(grads, "clip_elementwise")
    bound = _check_hyper(bound, "bound", low=0, low_open=True)
    out = []
    for g in grads:
        b = _cast(bound, g.dtype)
        out.append(pt.clip(g, -b, b))
    return out


def clip_norm_per_param(grads: Sequence, max_norm, eps=0.0) -> list:
    r"""Rescale each gradient separately so that its L2 norm is at most ``max_norm``.

    .. math::
        g \leftarrow g\, \frac{\min(\lVert g \rVert_2, c)}{\lVert g \rVert_2 + \epsilon}

    where :math:`\lVert g \rVert_2` is the norm of all entries of one gradient
    (the Frobenius norm of a matrix).  With :math:`\epsilon = 0` a gradient
    whose norm is at most :math:`c` is returned unchanged.  This is what the
    2014 package's ``max_norm`` did (with its ``eps`` as :math:`\epsilon`).

    Parameters
    ----------
    grads : list of tensors
        Gradients of any shapes.
    max_norm : float or scalar shared variable
        :math:`c > 0`.
    eps : float or scalar shared variable, default 0.0
        :math:`\epsilon \ge 0`.

    Returns
    -------
    list of tensors
        The rescaled gradients, same shapes and dtypes.

    Raises
    ------
    TypeError, ValueError
        As for :func:`clip_elementwise`.

    See Also
    --------
    clip_global_norm : one common factor for all gradients, which keeps the
        direction of the whole update.

    Examples
    --------
    >>> import pytensor.tensor as pt
    >>> g = pt.vector("g")
    >>> [clipped] = clip_norm_per_param([g], 1.0)
    >>> clipped.eval({g: [3.0, 4.0]})
    array([0.6, 0.8])
    """
    grads = _as_grad_list(grads, "clip_norm_per_param")
    max_norm = _check_hyper(max_norm, "max_norm", low=0, low_open=True)
    eps = _check_hyper(eps, "eps", low=0)
    out = []
    for g in grads:
        norm = pt.sqrt(pt.sum(g**2))
        out.append(g * _shrink(norm, max_norm, eps))
    return out


def clip_global_norm(grads: Sequence, max_norm, eps=0.0, return_norm: bool = False):
    r"""Rescale all gradients by one factor so that their joint L2 norm is at most ``max_norm``.

    .. math::
        N = \sqrt{\textstyle\sum_k \lVert g_k \rVert_2^2}, \qquad
        g_k \leftarrow g_k\, \frac{\min(N, c)}{N + \epsilon}

    With :math:`\epsilon = 0` gradients whose joint norm is at most :math:`c`
    are returned unchanged.

    Parameters
    ----------
    grads : list of tensors
        Gradients of any shapes.
    max_norm : float or scalar shared variable
        :math:`c > 0`.
    eps : float or scalar shared variable, default 0.0
        :math:`\epsilon \ge 0`.
    return_norm : bool, default False
        Also return :math:`N` (before clipping), e.g. to monitor training.

    Returns
    -------
    list of tensors, or (list of tensors, scalar tensor)
        The rescaled gradients (same shapes and dtypes), and :math:`N` with
        ``return_norm=True`` (in the widest dtype of ``grads``).

    Raises
    ------
    TypeError, ValueError
        As for :func:`clip_elementwise`; ``ValueError`` for an empty list.

    References
    ----------
    R. Pascanu, T. Mikolov, Y. Bengio, "On the difficulty of training
    recurrent neural networks", ICML 2013.

    Examples
    --------
    >>> import pytensor.tensor as pt
    >>> from theano_lstm import backend
    >>> a, b = pt.vector("a"), pt.vector("b")
    >>> (ca, cb), norm = clip_global_norm([a, b], 2.5, return_norm=True)
    >>> backend.function([a, b], [ca, cb, norm], mode="fast_compile")([3.0], [4.0])
    [array([1.5]), array([2.]), array(5.)]
    """
    grads = _as_grad_list(grads, "clip_global_norm")
    if not grads:
        raise ValueError("clip_global_norm received an empty list of gradients")
    max_norm = _check_hyper(max_norm, "max_norm", low=0, low_open=True)
    eps = _check_hyper(eps, "eps", low=0)
    wide = pytensor.scalar.upcast(*[g.dtype for g in grads])
    squares = [pt.sum((g if g.dtype == wide else pt.cast(g, wide)) ** 2) for g in grads]
    total = squares[0]
    for s in squares[1:]:
        total = total + s
    norm = pt.sqrt(total)
    scale = _shrink(norm, max_norm, eps)
    out = [g * (scale if scale.dtype == g.dtype else pt.cast(scale, g.dtype)) for g in grads]
    return (out, norm) if return_norm else out


# ----------------------------------------------------------------- non-finite


def all_finite(tensors: Sequence):
    r"""A boolean scalar: true when no entry of any tensor is NaN or infinite.

    Parameters
    ----------
    tensors : list of tensors
        Any shapes (e.g. the gradients of a step).

    Returns
    -------
    scalar tensor of dtype bool

    Raises
    ------
    TypeError
        ``tensors`` is not a list of tensors.
    ValueError
        ``tensors`` is empty.

    Examples
    --------
    >>> import numpy as np
    >>> import pytensor.tensor as pt
    >>> g = pt.vector("g")
    >>> bool(all_finite([g]).eval({g: [1.0, np.inf]}))
    False
    """
    if isinstance(tensors, (Variable, str)) or not isinstance(tensors, Sequence):
        raise TypeError(f"all_finite expects a list of tensors, received {_describe(tensors)}")
    if not tensors:
        raise ValueError("all_finite received an empty list; expected at least one tensor")
    flags = []
    for k, t in enumerate(tensors):
        try:
            t = pt.as_tensor_variable(t)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"all_finite: item {k} must be a tensor, received {_describe(t)}") from exc
        flags.append(pt.all(pt.isfinite(t)))
    ok = flags[0]
    for f in flags[1:]:
        ok = pt.and_(ok, f)
    return ok


def _update_pairs(updates, where: str) -> list:
    """``updates`` (a mapping or a list of pairs) as a list of ``(shared, new)`` pairs."""
    if isinstance(updates, Mapping):
        pairs = list(updates.items())
    elif isinstance(updates, Sequence) and not isinstance(updates, (str, Variable)):
        pairs = list(updates)
        for k, pair in enumerate(pairs):
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                raise TypeError(
                    f"{where}: updates[{k}] must be a (shared variable, new value) pair, received {_describe(pair)}"
                )
    else:
        raise TypeError(
            f"{where} expects updates as a dict or a list of (shared variable, new value) pairs, "
            f"received {_describe(updates)}"
        )
    for var, _ in pairs:
        if not isinstance(var, SharedVariable):
            raise TypeError(f"{where}: every updated variable must be a shared variable, received {_describe(var)}")
    return pairs


def skip_non_finite(updates, grads: Sequence | None = None):
    r"""Make a step that meets NaN or inf change nothing.

    Every tensor update :math:`s \leftarrow s'` becomes

    .. math::
        s \leftarrow \begin{cases} s' & \text{if everything checked is finite} \\
        s & \text{otherwise} \end{cases}

    so parameters *and* accumulators (velocities, running averages, Adam's
    step count) keep their values on a bad step.  Updates of non-tensor shared
    variables (random generators) are kept as they are.

    Parameters
    ----------
    updates : dict or list of (shared variable, tensor) pairs
        E.g. the result of :func:`adam`.
    grads : list of tensors, optional
        What to check: typically the raw gradients, *before* any clipping
        (clipping can turn inf into a finite number).  By default the new
        values of the tensor updates are checked.

    Returns
    -------
    updates : OrderedDict
        The guarded updates, same keys in the same order.
    finite : scalar bool tensor
        True when the step was applied; add it to the compiled function's
        outputs to detect skipped steps.

    Raises
    ------
    TypeError
        ``updates`` is not a dict or list of pairs keyed by shared variables.
    ValueError
        There is nothing to check (no ``grads`` and no tensor updates).

    Examples
    --------
    >>> import numpy as np
    >>> from theano_lstm import backend
    >>> w = backend.shared(np.zeros(2), name="w")
    >>> updates, finite = skip_non_finite(sgd((w ** 2).sum(), [w]))
    >>> list(updates) == [w], finite.dtype
    (True, 'bool')
    """
    pairs = _update_pairs(updates, "skip_non_finite")
    tensor_pairs = [(var, pt.as_tensor_variable(new)) for var, new in pairs if isinstance(var.type, pt.TensorType)]
    if grads is None:
        if not tensor_pairs:
            raise ValueError("skip_non_finite: no tensor updates to check and no grads given")
        finite = all_finite([new for _, new in tensor_pairs])
    else:
        finite = all_finite(grads)
    guarded: OrderedDict = OrderedDict()
    for var, new in pairs:
        if isinstance(var.type, pt.TensorType):
            new = pt.as_tensor_variable(new)
            if new.dtype != var.dtype:
                new = pt.cast(new, var.dtype)
            guarded[var] = pt.switch(finite, new, var)
        else:
            guarded[var] = new
    return guarded, finite


# ----------------------------------------------------------------- 2014 API


def _shared_hyper(value, name: str, low: float, low_open: bool, high: float | None = None):
    """A scalar shared variable: ``value`` itself if it is one, else a new one of dtype floatX."""
    if isinstance(value, SharedVariable):
        _check_hyper(value, name)
        return value
    v = _check_hyper(value, name, low=low, low_open=low_open, high=high, high_open=high is not None)
    if not isinstance(v, float):
        raise TypeError(f"{name} must be a number or a scalar shared variable, received {_describe(value)}")
    return pytensor.shared(np.asarray(v, dtype=backend.floatX()), name=name)


def create_optimization_updates(
    cost,
    params: Sequence,
    updates=None,
    max_norm=5.0,
    lr=0.01,
    eps=1e-6,
    rho=0.95,
    method: str = "adadelta",
    gradients: Sequence | None = None,
):
    r"""The 2014 entry point: clip each gradient's norm, then apply ``method``.

    .. math::
        g \leftarrow g\, \frac{\min(\lVert g \rVert_2, c)}{\lVert g \rVert_2 + \epsilon}
        \quad \text{(per parameter)}, \qquad \text{then the rule } \texttt{method}.

    **Norm clipping is on by default and per parameter** (``max_norm=5.0``),
    as in 2014: each gradient is rescaled on its own
    (:func:`clip_norm_per_param`), not jointly (:func:`clip_global_norm`).
    Pass ``max_norm=None`` (or ``False``) to turn it off.

    Hyper-parameters go to the rules as follows:

    ========================================================================  ===================================================
    ``"sgd"``                                                                 :func:`sgd` (``lr``)
    ``"momentum"``                                                            :func:`momentum` (``lr``, momentum 0.9)
    ``"nesterov_momentum"`` :func:`nesterov_momentum` (``lr``, momentum 0.9)
    ``"adagrad"``                                                             :func:`adagrad` (``lr``, ``eps``)
    ``"adadelta"``                                                            :func:`adadelta` (``rho``, ``eps``; no ``lr``)
    ``"rmsprop"``                                                             :func:`rmsprop` (``lr``, ``rho`` as decay, ``eps``)
    ``"adam"``                                                                :func:`adam` (``lr``, ``eps``, betas 0.9/0.999)
    ========================================================================  ===================================================

    Parameters
    ----------
    cost : scalar tensor or None
        The cost to minimise (may be ``None`` when ``gradients`` is given).
    params : list of shared variables
        Float parameters of any shape, e.g. ``model.params``.
    updates : dict or list of pairs, optional
        Existing updates to extend (e.g. random-generator updates).  A dict is
        extended in place and returned; a list is copied into a new
        ``OrderedDict``.  It must not already update one of ``params``.
    max_norm : float, scalar shared variable, None or False, default 5.0
        Per-parameter norm bound :math:`c`; ``None``/``False`` for no clipping.
    lr : float or scalar shared variable, default 0.01
        Learning rate (unused by ``"adadelta"``).
    eps : float, default 1e-6
        :math:`\epsilon` of the rule and of the norm clipping.
    rho : float or scalar shared variable, default 0.95
        Decay of ``"adadelta"`` and ``"rmsprop"``.
    method : str, default ``"adadelta"``
        One of :data:`METHODS`.
    gradients : list of tensors, optional
        One gradient per parameter, used instead of differentiating ``cost``.

    Returns
    -------
    updates : OrderedDict
        All updates (``updates`` extended).
    gsums : list
        Per parameter, the rule's first accumulator (AdaGrad/AdaDelta
        ``gsum``, RMSprop cache, momentum velocity, Adam :math:`m`) or
        ``None`` (``"sgd"``).
    xsums : list
        Per parameter, the rule's second accumulator (AdaDelta ``xsum``, Adam
        :math:`v`) or ``None``.
    lr : shared variable
        The learning rate as a shared scalar (set it to change the learning
        rate of a compiled function).  For ``"adadelta"`` this is the shared
        ``rho``, as in 2014.
    max_norm : shared variable, None or False
        The clipping bound as a shared scalar, or ``max_norm`` as given when
        clipping is off.

    Raises
    ------
    ValueError
        ``method`` is not one of :data:`METHODS` (2014 silently ran SGD), a
        hyper-parameter is out of range, ``updates`` already updates a
        parameter, or a rule's check fails (see :func:`sgd`).
    TypeError
        Neither ``cost`` nor ``gradients`` is given, or an argument has the
        wrong type.

    Examples
    --------
    >>> import numpy as np
    >>> from theano_lstm import backend
    >>> w = backend.shared(np.zeros(3), name="w")
    >>> updates, gsums, xsums, lr, max_norm = create_optimization_updates((w ** 2).sum(), [w])
    >>> [var.name for var in updates], float(lr.get_value()), float(max_norm.get_value())
    (['w.adadelta_gsum', 'w.adadelta_xsum', 'w'], 0.95, 5.0)
    """
    if not isinstance(method, str) or method not in _RULES:
        raise ValueError(f"unknown optimization method {method!r}; expected one of {list(METHODS)}")
    params = _check_params(params)
    if gradients is not None:
        grads = _gradients(gradients, params, "create_optimization_updates")
    elif cost is not None:
        grads = _gradients(cost, params, "create_optimization_updates")
    else:
        raise TypeError("create_optimization_updates needs a cost or a list of gradients, received neither")
    eps = _check_hyper(eps, "eps", low=0)
    lr = _shared_hyper(lr, "lr", low=0, low_open=False)
    rho = _shared_hyper(rho, "rho", low=0, low_open=False, high=1)
    if max_norm is not None and max_norm is not False:
        max_norm = _shared_hyper(max_norm, "max_norm", low=0, low_open=True)
        grads = clip_norm_per_param(grads, max_norm, eps=eps)

    if updates is None:
        out: OrderedDict = OrderedDict()
    elif isinstance(updates, Mapping):
        out = updates  # extended in place, as in 2014
        _update_pairs(updates, "create_optimization_updates")
    else:
        out = OrderedDict(_update_pairs(updates, "create_optimization_updates"))
    for p in params:
        if p in out:
            raise ValueError(f"updates already contains an update for parameter {p.name!r}")

    if method == "sgd":
        new = sgd(grads, params, lr=lr)
    elif method in ("momentum", "nesterov_momentum"):
        new = _RULES[method](grads, params, lr=lr)
    elif method == "adagrad":
        new = adagrad(grads, params, lr=lr, eps=eps)
    elif method == "adadelta":
        new = adadelta(grads, params, lr=1.0, rho=rho, eps=eps)
    elif method == "rmsprop":
        new = rmsprop(grads, params, lr=lr, rho=rho, eps=eps)
    else:
        new = adam(grads, params, lr=lr, eps=eps)

    # the rules list each parameter right after its own accumulators
    states: list[list] = [[] for _ in params]
    k = 0
    for var in new:
        if var is params[k]:
            k += 1
        else:
            states[k].append(var)
    gsums = [s[0] if len(s) > 0 else None for s in states]
    xsums = [s[1] if len(s) > 1 else None for s in states]
    out.update(new)
    return out, gsums, xsums, (rho if method == "adadelta" else lr), max_norm
