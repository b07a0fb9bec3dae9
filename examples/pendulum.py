"""Forecasting a damped double pendulum with a stacked LSTM in a hand-written scan.

The 2014 ``theano_lstm`` README's sequence-forecasting tutorial, made
runnable: a :class:`~theano_lstm.StackedCells` of LSTMs with a linear
:class:`~theano_lstm.Layer` head, called one step at a time through
:meth:`~theano_lstm.StackedCells.forward` inside a ``pytensor.scan`` that the
script writes itself, whose prediction is fed back as the next input, trained
with AdaDelta through the 2014 call
``create_optimization_updates(cost, model.params, method="adadelta")``.

The task
--------
Each pendulum is a double pendulum (two unit masses on two unit-length rods)
with viscous friction in both joints.  The friction coefficient ``b`` differs
from pendulum to pendulum (drawn uniformly from ``friction``) and is never
given to the model.  The model *watches* the first ``warmup`` steps of a
trajectory (observed states are fed in) and then *forecasts* the next
``horizon`` steps on its own, each predicted state fed back as the next
input.

The design: a grey-box model
----------------------------
The model knows the frictionless equations of motion (the same ones the data
were simulated with, friction set to zero) and integrates them with one
Runge-Kutta (RK4) step per observation interval, written symbolically inside
the scan.  What it does not know, the friction, enters as generalized
accelerations :math:`u_t = (u_1, u_2)` that the network outputs at every step:

.. math::
    \\begin{aligned}
    \\text{state}_t &= (\\theta_1, \\theta_2, \\omega_1, \\omega_2) \\\\
    s_t &= \\mathrm{LSTM\\ stack}(x_t / \\sigma,\\; s_{t-1}) \\\\
    u_t &= s_t^{\\text{top}} W + b \\qquad \\text{(linear head, 2 outputs)} \\\\
    \\hat x_{t+1} &= \\mathrm{RK4}_{\\Delta t}\\big(x \\mapsto f_0(x) + (0, 0, u_t)\\big)(x_t)
    \\end{aligned}

where :math:`f_0` is the frictionless vector field, :math:`u_t` is held
constant during the step and :math:`x_t` is the observed state during the
warm-up and :math:`\\hat x_t` afterwards.  This is the README's
``dynamics(x, new_states[-1])``: the network's output and the current state
produce the next observation.  The head starts at zero, so the untrained
model *is* the frictionless simulator; training teaches the LSTM to infer each
pendulum's friction from the warm-up (its memory carries that estimate through
the forecast) and to supply the missing accelerations.

Results are reported as root-mean-square forecasting errors over the horizon,
on fresh pendulums, against three baselines that see the same warm-up:

``constant``
    the last observed state, repeated;
``linear``
    linear extrapolation of the last two observed states;
``frictionless``
    the frictionless simulator from the last observed state (the model with
    its correction switched off).

Run ``python examples/pendulum.py`` (``--help`` for options).  By default it
compiles with JAX when jax is installed (``--mode auto``); ``--mode c`` uses
the library's default C backend.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import NamedTuple

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

__all__ = [
    "PendulumParameters",
    "accelerations",
    "vector_field",
    "rk4_step",
    "energy",
    "simulate",
    "make_dataset",
    "baseline_forecasts",
    "Forecaster",
    "main",
    "cli",
]

#: State layout on the last axis: ``(theta1, theta2, omega1, omega2)``.
STATE_NAMES = ("theta1", "theta2", "omega1", "omega2")


# ------------------------------------------------------------------ physics


class PendulumParameters(NamedTuple):
    """Physical constants of a double pendulum (SI units).

    ``friction`` is the viscous friction coefficient of both joints (N m s);
    it may be an array that broadcasts against the batch axis of a state
    (one pendulum per entry).
    """

    m1: float = 1.0
    m2: float = 1.0
    l1: float = 1.0
    l2: float = 1.0
    g: float = 9.81
    friction: float | np.ndarray = 0.0


def accelerations(state, params: PendulumParameters = PendulumParameters(), xp=np):
    r"""Angular accelerations of a double pendulum with joint friction.

    With absolute angles :math:`\theta_1, \theta_2` from the downward
    vertical, angular velocities :math:`\omega_1, \omega_2`,
    :math:`\Delta = \theta_1 - \theta_2` and friction coefficient :math:`b`
    in both joints (joint 2 rubs on the *relative* rotation
    :math:`\omega_2 - \omega_1`), the Euler-Lagrange equations read
    :math:`M \alpha = r` with

    .. math::
        \begin{aligned}
        M &= \begin{pmatrix} (m_1 + m_2)\, l_1^2 & m_2 l_1 l_2 \cos\Delta \\
                             m_2 l_1 l_2 \cos\Delta & m_2 l_2^2 \end{pmatrix} \\
        r_1 &= -m_2 l_1 l_2\, \omega_2^2 \sin\Delta - (m_1 + m_2)\, g\, l_1 \sin\theta_1
               - b\,\omega_1 + b\,(\omega_2 - \omega_1) \\
        r_2 &= \phantom{-}m_2 l_1 l_2\, \omega_1^2 \sin\Delta - m_2\, g\, l_2 \sin\theta_2
               - b\,(\omega_2 - \omega_1)
        \end{aligned}

    solved here by Cramer's rule (:math:`\det M = m_2 l_1^2 l_2^2 (m_1 + m_2 \sin^2\Delta) > 0`).

    Parameters
    ----------
    state : array or tensor ``(..., 4)``
        ``(theta1, theta2, omega1, omega2)`` on the last axis.
    params : PendulumParameters
        Masses, lengths, gravity and friction.
    xp : module
        ``numpy`` for arrays or ``pytensor.tensor`` for symbolic tensors; the
        same code serves the data generator and the model's symbolic step.

    Returns
    -------
    alpha1, alpha2 : arrays or tensors ``(...)``
    """
    m1, m2, l1, l2, g, b = params
    t1, t2, w1, w2 = (state[..., k] for k in range(4))
    delta = t1 - t2
    sin_d, cos_d = xp.sin(delta), xp.cos(delta)
    a11 = (m1 + m2) * l1 * l1
    a12 = m2 * l1 * l2 * cos_d
    a22 = m2 * l2 * l2
    relative = w2 - w1
    r1 = -m2 * l1 * l2 * w2 * w2 * sin_d - (m1 + m2) * g * l1 * xp.sin(t1) - b * w1 + b * relative
    r2 = m2 * l1 * l2 * w1 * w1 * sin_d - m2 * g * l2 * xp.sin(t2) - b * relative
    det = a11 * a22 - a12 * a12
    return (a22 * r1 - a12 * r2) / det, (a11 * r2 - a12 * r1) / det


def vector_field(state, params: PendulumParameters = PendulumParameters(), xp=np, extra_acceleration=None):
    """Time derivative of ``state`` ``(..., 4)``: ``(omega1, omega2, alpha1, alpha2)``.

    ``extra_acceleration`` (``(..., 2)``, optional) is added to
    :math:`(\\alpha_1, \\alpha_2)`; the model's network output enters here.
    """
    a1, a2 = accelerations(state, params, xp)
    if extra_acceleration is not None:
        a1 = a1 + extra_acceleration[..., 0]
        a2 = a2 + extra_acceleration[..., 1]
    return xp.stack([state[..., 2], state[..., 3], a1, a2], axis=-1)


def rk4_step(state, dt: float, params: PendulumParameters = PendulumParameters(), xp=np, extra_acceleration=None):
    r"""One classical Runge-Kutta step of size ``dt``.

    .. math::
        \begin{aligned}
        k_1 &= f(x), \quad k_2 = f(x + \tfrac{\Delta t}{2} k_1), \quad
        k_3 = f(x + \tfrac{\Delta t}{2} k_2), \quad k_4 = f(x + \Delta t\, k_3) \\
        x' &= x + \tfrac{\Delta t}{6} (k_1 + 2 k_2 + 2 k_3 + k_4)
        \end{aligned}

    with :math:`f` = :func:`vector_field` (``extra_acceleration`` held
    constant during the step).  Works on NumPy arrays (``xp=numpy``) and on
    PyTensor tensors (``xp=pytensor.tensor``); the state may have any
    leading axes.

    Examples
    --------
    >>> x = np.array([0.1, -0.2, 0.0, 0.0])
    >>> rk4_step(x, 0.01).shape
    (4,)
    """
    half = 0.5 * dt

    def f(x):
        return vector_field(x, params, xp, extra_acceleration)

    k1 = f(state)
    k2 = f(state + half * k1)
    k3 = f(state + half * k2)
    k4 = f(state + dt * k3)
    return state + (dt / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


def energy(state, params: PendulumParameters = PendulumParameters(), xp=np):
    r"""Total mechanical energy (J) of ``state`` ``(..., 4)``.

    .. math::
        E = \tfrac12 (m_1 + m_2) l_1^2 \omega_1^2 + \tfrac12 m_2 l_2^2 \omega_2^2
            + m_2 l_1 l_2\, \omega_1 \omega_2 \cos(\theta_1 - \theta_2)
            - (m_1 + m_2)\, g\, l_1 \cos\theta_1 - m_2\, g\, l_2 \cos\theta_2

    Conserved without friction; friction only ever lowers it.
    """
    m1, m2, l1, l2, g, _ = params
    t1, t2, w1, w2 = (state[..., k] for k in range(4))
    kinetic = 0.5 * (m1 + m2) * l1 * l1 * w1 * w1 + 0.5 * m2 * l2 * l2 * w2 * w2 + m2 * l1 * l2 * w1 * w2 * xp.cos(t1 - t2)
    potential = -(m1 + m2) * g * l1 * xp.cos(t1) - m2 * g * l2 * xp.cos(t2)
    return kinetic + potential


def simulate(initial, n_steps: int, dt: float, params: PendulumParameters = PendulumParameters(), substeps: int = 4):
    """Integrate ``n_steps`` observation intervals of length ``dt`` with RK4 (NumPy, float64).

    Parameters
    ----------
    initial : array ``(batch, 4)`` or ``(4,)``
        Initial states.
    n_steps : int
        Number of observation intervals.
    dt : float
        Observation interval (s).
    params : PendulumParameters
        ``friction`` may be an array ``(batch,)`` (one coefficient per pendulum).
    substeps : int
        RK4 steps per observation interval (the data are integrated more
        finely than the model's single step).

    Returns
    -------
    array ``(n_steps + 1, batch, 4)`` or ``(n_steps + 1, 4)``
        Time-major states, the initial one first.
    """
    if n_steps < 0 or substeps < 1 or not dt > 0:
        raise ValueError(f"need n_steps >= 0, substeps >= 1 and dt > 0; received {n_steps}, {substeps}, {dt}")
    x = np.array(initial, dtype=np.float64)
    if x.shape[-1] != 4:
        raise ValueError(f"initial states must have 4 components {STATE_NAMES}, received shape {x.shape}")
    out = np.empty((n_steps + 1,) + x.shape)
    out[0] = x
    h = dt / substeps
    for t in range(n_steps):
        for _ in range(substeps):
            x = rk4_step(x, h, params)
        out[t + 1] = x
    return out


# --------------------------------------------------------------------- data


class Dataset(NamedTuple):
    """Trajectories of ``warmup + horizon + 1`` states each.

    Attributes
    ----------
    states : array ``(warmup + horizon + 1, n, 4)``
        Time-major, float64.
    friction : array ``(n,)``
        Each pendulum's friction coefficient (hidden from the model).
    warmup, horizon : int
    dt : float
    """

    states: np.ndarray
    friction: np.ndarray
    warmup: int
    horizon: int
    dt: float


def make_dataset(n: int, warmup: int, horizon: int, dt: float, friction=(0.0, 0.5), max_angle: float = 1.2,
                 max_speed: float = 1.0, rng=None) -> Dataset:
    """Simulate ``n`` damped double pendulums from random initial states.

    Angles are drawn uniformly from ``[-max_angle, max_angle]`` rad, angular
    velocities from ``[-max_speed, max_speed]`` rad/s and each pendulum's
    friction from ``friction = (low, high)``.
    """
    rng = np.random.default_rng(rng)
    low, high = friction
    if not 0 <= low <= high:
        raise ValueError(f"friction must be a range (low, high) with 0 <= low <= high, received {friction!r}")
    initial = np.concatenate(
        [rng.uniform(-max_angle, max_angle, size=(n, 2)), rng.uniform(-max_speed, max_speed, size=(n, 2))], axis=1
    )
    b = rng.uniform(low, high, size=n)
    states = simulate(initial, warmup + horizon, dt, PendulumParameters(friction=b))
    return Dataset(states, b, warmup, horizon, dt)


def model_inputs(data: Dataset, hide_future: bool = True):
    """The arrays a :class:`Forecaster` takes: ``(observed, teach, targets, weights)``.

    ``observed`` ``(T, n, 4)`` holds the states the step functions read at
    ``t = 0 … T-1`` (``T = warmup + horizon``); with ``hide_future`` the states
    after the warm-up are zeroed, to show the forecast cannot peek.
    ``teach`` ``(T,)`` is 1 while the model is fed observations (``t <= warmup``),
    ``targets`` ``(T, n, 4)`` are the states at ``t + 1`` and ``weights``
    ``(T,)`` are 1 at the forecast steps (``t >= warmup``).
    """
    T = data.warmup + data.horizon
    t = np.arange(T)
    teach = (t <= data.warmup).astype("float32")
    observed = np.array(data.states[:T], dtype="float32")
    if hide_future:
        observed[data.warmup + 1 :] = 0.0
    targets = np.asarray(data.states[1 : T + 1], dtype="float32")
    weights = (t >= data.warmup).astype("float32")
    return observed, teach, targets, weights


def baseline_forecasts(data: Dataset) -> dict:
    """Forecasts of the ``horizon`` states after the warm-up by three baselines.

    Returns ``{name: array (horizon, n, 4)}`` for ``"constant"`` (last
    observed state), ``"linear"`` (extrapolation of the last two observed
    states) and ``"frictionless"`` (one RK4 step per interval of the
    frictionless equations, the model without its learned correction).
    """
    W, H, dt = data.warmup, data.horizon, data.dt
    last, before = data.states[W], data.states[W - 1] if W > 0 else data.states[W]
    k = np.arange(1, H + 1)[:, None, None]
    frictionless = [last]
    for _ in range(H):
        frictionless.append(rk4_step(frictionless[-1], dt))
    return {
        "constant": np.broadcast_to(last, (H,) + last.shape),
        "linear": last + k * (last - before),
        "frictionless": np.stack(frictionless[1:]),
    }


def forecast_errors(forecast, data: Dataset, scale) -> dict:
    """RMS errors of a ``(horizon, n, 4)`` forecast against the true states.

    Returns ``{"rmse": …, "angle_rmse_deg": …, "final_angle_rmse_deg": …}``:
    the RMS of the scaled state error (each component divided by ``scale``)
    over the horizon, the RMS angle error in degrees over the horizon, and
    the RMS angle error at the last step.
    """
    truth = data.states[data.warmup + 1 :]
    err = np.asarray(forecast, dtype=np.float64) - truth
    angles = np.degrees(err[..., :2])
    return {
        "rmse": float(np.sqrt(np.mean((err / scale) ** 2))),
        "angle_rmse_deg": float(np.sqrt(np.mean(angles**2))),
        "final_angle_rmse_deg": float(np.sqrt(np.mean(angles[-1] ** 2))),
    }


# -------------------------------------------------------------------- model


def resolve_mode(mode):
    """``"auto"``: ``"jax"`` when jax is installed, else the library default; ``None``: the library default."""
    from theano_lstm import backend

    if mode == "auto":
        return "jax" if _common.has_module("jax") else backend.get_default_mode()
    return backend.get_default_mode() if mode is None else mode


class Forecaster:
    """A grey-box forecaster: stacked LSTM + linear head inside a hand-written scan.

    Builds the model, the scan and two compiled functions (training and
    forecasting).  See the module docstring for the equations.

    Parameters
    ----------
    hidden_sizes : list of int
        Sizes of the LSTM layers (``StackedCells(4, celltype=LSTM, layers=hidden_sizes)``).
    dt : float
        Observation interval: the size of the model's RK4 step.
    scale : array ``(4,)``
        Typical size of each state component: inputs are divided by it, and
        the cost is the mean squared error of the scaled forecast.
    max_norm : float
        Per-parameter gradient-norm bound of ``create_optimization_updates``
        (2014 default 5).
    eps : float
        AdaDelta's :math:`\\epsilon` (2014 default ``1e-6``; larger values take
        larger first steps).
    seed : int or Generator
        Initial weights.
    mode : str, optional
        Compile mode (a name of :data:`theano_lstm.backend.MODE_NAMES`).

    Attributes
    ----------
    model : theano_lstm.StackedCells
        The LSTM layers followed by the head (``model.layers[-1]``).
    seconds : dict
        Wall-clock seconds spent compiling, training and forecasting.
    """

    def __init__(self, hidden_sizes, dt: float, scale, max_norm: float = 5.0, eps: float = 1e-6, seed=0, mode=None):
        import pytensor
        import pytensor.tensor as pt

        import theano_lstm as tl
        from theano_lstm import backend, init

        self.mode = mode
        self.dt = float(dt)
        self.seconds = {"compile": 0.0, "train": 0.0, "forecast": 0.0}
        start = time.perf_counter()
        floatX = backend.floatX()
        self.scale = np.asarray(scale, dtype=floatX)
        if self.scale.shape != (4,) or not (self.scale > 0).all():
            raise ValueError(f"scale must hold 4 positive numbers, received {scale!r}")

        # The 2014 construction: a stack of LSTMs, then a head appended by hand.
        model = tl.StackedCells(4, celltype=tl.LSTM, layers=list(hidden_sizes), rng=seed)
        # A zero head: the untrained model is exactly the frictionless simulator.
        model.layers.append(tl.Layer(hidden_sizes[-1], 2, "linear", W_init=init.Constant(0.0), name="head"))
        self.model = model
        n_rec = len(hidden_sizes)
        inv_scale = pt.constant(1.0 / self.scale)
        nominal = PendulumParameters(friction=0.0)
        dt_ = self.dt

        observed = pt.tensor3("observed")  # (time, batch, 4)
        teach = pt.vector("teach")  # (time,)
        targets = pt.tensor3("targets")  # (time, batch, 4)
        weights = pt.vector("weights")  # (time,)

        def step(observed_t, teach_t, prev_prediction, *rest):
            prev_hiddens = list(rest[:n_rec])  # rest[n_rec:] are scan's copies of the parameters
            # feed the observation during the warm-up, our own forecast afterwards
            x = teach_t * observed_t + (1 - teach_t) * prev_prediction
            new_states = model.forward(x * inv_scale, prev_hiddens + [None])
            correction = new_states[-1]  # (batch, 2): the accelerations friction adds
            prediction = rk4_step(x, dt_, nominal, xp=pt, extra_acceleration=correction)
            return [prediction] + new_states[:-1]

        initial = [observed[0]] + model.initial_hidden_states(batch_like=observed[0])[:n_rec]
        outputs = pytensor.scan(
            step,
            sequences=[observed, teach],
            outputs_info=initial,
            non_sequences=model.params,
            strict=True,
            return_updates=False,
        )
        predictions = outputs[0]  # (time, batch, 4): the state at t + 1
        err = (predictions - targets) * inv_scale
        per_step = pt.sqr(err).mean(axis=(1, 2))  # (time,)
        cost = (per_step * weights).sum() / pt.maximum(weights.sum(), 1)

        updates, self.gsums, self.xsums, self.rho, self.max_norm = tl.create_optimization_updates(
            cost, model.params, method="adadelta", max_norm=max_norm, eps=eps
        )
        self._train = backend.function([observed, teach, targets, weights], cost, updates=updates, mode=mode)
        self._forecast = backend.function([observed, teach], predictions, mode=mode)
        self.seconds["compile"] += time.perf_counter() - start

    def _timed(self, key, fn, *args):
        from theano_lstm import backend

        first = fn is self._train and not getattr(self, "_train_called", False)
        start = time.perf_counter()
        out = backend.to_numpy(fn(*args))
        elapsed = time.perf_counter() - start
        # JAX compiles at the first call of each input shape: count those under compile
        self.seconds["compile" if first and self.mode in ("jax", "gpu") else key] += elapsed
        if fn is self._train:
            self._train_called = True
        return out

    def train_epoch(self, data: Dataset, batch_size: int, rng) -> float:
        """One pass over ``data`` in shuffled minibatches; returns the mean training cost.

        A trailing partial minibatch is dropped (one input shape: one compile in JAX mode).
        """
        observed, teach, targets, weights = model_inputs(data, hide_future=False)
        n = observed.shape[1]
        order = rng.permutation(n)
        costs = []
        for start in range(0, n - batch_size + 1, batch_size):
            idx = order[start : start + batch_size]
            costs.append(float(self._timed("train", self._train, observed[:, idx], teach, targets[:, idx], weights)))
        return float(np.mean(costs))

    def forecast(self, data: Dataset) -> np.ndarray:
        """The ``(horizon, n, 4)`` forecast after each trajectory's warm-up (future inputs hidden)."""
        observed, teach, _, _ = model_inputs(data, hide_future=True)
        start = time.perf_counter()
        predictions = self._timed("forecast", self._forecast, observed, teach)
        del start
        return predictions[data.warmup :].astype(np.float64)


# --------------------------------------------------------------------- main


def main(
    hidden_sizes=(32, 32),
    n_train: int = 512,
    n_test: int = 256,
    warmup: int = 20,
    horizon: int = 40,
    dt: float = 0.05,
    friction=(0.0, 0.5),
    batch_size: int = 32,
    epochs: int = 30,
    max_norm: float = 5.0,
    eps: float = 1e-6,
    seed: int = 0,
    mode="auto",
    plot: str | None = None,
    trajectory_plot: str | None = None,
    verbose: bool = True,
) -> dict:
    """Train the grey-box forecaster and compare its forecasts with the baselines.

    Parameters
    ----------
    hidden_sizes : sequence of int
        LSTM layer sizes.
    n_train, n_test : int
        Number of training and test pendulums (the test ones are fresh).
    warmup : int
        Observed steps before each forecast (at least 1).
    horizon : int
        Forecast steps.
    dt : float
        Observation interval (s).
    friction : (float, float)
        Range of the joint friction coefficient.
    batch_size : int
        Pendulums per minibatch.
    epochs : int
        Passes over the training pendulums.
    max_norm, eps : float
        Passed to ``create_optimization_updates`` (per-parameter norm clipping, AdaDelta epsilon).
    seed : int
        Seeds data and initial weights.
    mode : str or None
        ``"auto"`` (jax when installed, else the library default), ``None``
        (the library default) or a name of :data:`theano_lstm.backend.MODE_NAMES`.
    plot : str, optional
        Path of a learning-curve PNG (needs matplotlib).
    trajectory_plot : str, optional
        Path of a PNG of one test pendulum's forecast against the truth.
    verbose : bool
        Print progress and results.

    Returns
    -------
    dict
        ``"errors"``: ``{method: {"rmse", "angle_rmse_deg", "final_angle_rmse_deg"}}``
        on the test pendulums for ``"lstm"`` and the baselines;
        ``"initial_errors"``: the same for the untrained model;
        ``"curve"``: per-epoch ``"loss"`` and ``"test rmse"``;
        ``"mode"``, ``"seed"``, ``"epochs"``, ``"compile_seconds"``,
        ``"train_seconds"``, ``"forecast_seconds"``, ``"wall_seconds"``.
    """
    import theano_lstm as tl

    start = time.perf_counter()
    hidden_sizes = [int(h) for h in hidden_sizes]
    for name, value in (("n_train", n_train), ("n_test", n_test), ("warmup", warmup), ("horizon", horizon),
                        ("batch_size", batch_size), ("epochs", epochs)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{name} must be a positive int, received {value!r}")
    if not hidden_sizes or min(hidden_sizes) <= 0:
        raise ValueError(f"hidden_sizes must be a non-empty list of positive ints, received {hidden_sizes!r}")
    if batch_size > n_train:
        raise ValueError(f"batch_size={batch_size} is larger than n_train={n_train}")
    if batch_size < 2:
        raise ValueError("batch_size must be at least 2 (JAX mode cannot re-specialize a batch of one)")
    if not dt > 0:
        raise ValueError(f"dt must be > 0, received {dt}")
    tl.use_float32()
    mode = resolve_mode(mode)
    streams = np.random.SeedSequence(seed).spawn(3)
    train = make_dataset(n_train, warmup, horizon, dt, friction, rng=np.random.default_rng(streams[0]))
    test = make_dataset(n_test, warmup, horizon, dt, friction, rng=np.random.default_rng(streams[1]))
    scale = train.states.reshape(-1, 4).std(axis=0)
    if verbose:
        print(f"double pendulum: {n_train} training and {n_test} test pendulums, friction {friction[0]:g}-{friction[1]:g}, "
              f"warm-up {warmup} and horizon {horizon} steps of {dt:g} s; mode {mode!r}, seed {seed}")
    forecaster = Forecaster(hidden_sizes, dt, scale, max_norm=max_norm, eps=eps, seed=int(streams[2].generate_state(1)[0]),
                            mode=mode)
    baselines = {name: forecast_errors(f, test, scale) for name, f in baseline_forecasts(test).items()}
    initial = forecast_errors(forecaster.forecast(test), test, scale)
    curve = {"loss": [], "test rmse": []}
    rng = np.random.default_rng(streams[2])
    progress = _common.EpochProgress(epochs, "pendulum", enabled=verbose)
    try:
        for epoch in range(1, epochs + 1):
            loss = forecaster.train_epoch(train, batch_size, rng)
            rmse = forecast_errors(forecaster.forecast(test), test, scale)["rmse"]
            curve["loss"].append(loss)
            curve["test rmse"].append(rmse)
            progress.update(epoch, loss=loss, test_rmse=rmse)
    finally:
        progress.close()
    final = forecaster.forecast(test)
    errors = {"lstm": forecast_errors(final, test, scale), **baselines}
    out = {
        "errors": errors,
        "initial_errors": initial,
        "curve": curve,
        "mode": mode,
        "seed": seed,
        "epochs": epochs,
        "n_test": n_test,
        "horizon": horizon,
        "dt": dt,
        "compile_seconds": forecaster.seconds["compile"],
        "train_seconds": forecaster.seconds["train"],
        "forecast_seconds": forecaster.seconds["forecast"],
        "wall_seconds": time.perf_counter() - start,
    }
    if verbose:
        print()
        print(format_results(out))
    _common.save_learning_curves({"lstm": curve}, plot, title="double pendulum forecaster")
    save_trajectory_plot(test, final, baseline_forecasts(test), trajectory_plot)
    return out


def format_results(out: dict) -> str:
    """The results of :func:`main` as a table."""
    rows = []
    for name, e in out["errors"].items():
        rows.append({"forecast": name, "scaled rmse": f"{e['rmse']:.4f}", "angle rmse (deg)": f"{e['angle_rmse_deg']:.2f}",
                     "final angle rmse (deg)": f"{e['final_angle_rmse_deg']:.2f}"})
    head = (f"forecast errors over {out['horizon']} steps ({out['horizon'] * out['dt']:g} s) on {out['n_test']} fresh "
            f"pendulums, mode {out['mode']!r}, seed {out['seed']}: {out['epochs']} epochs; "
            f"compile {out['compile_seconds']:.1f} s, train {out['train_seconds']:.1f} s, total {out['wall_seconds']:.1f} s")
    return head + "\n" + _common.format_table(rows)


def save_trajectory_plot(data: Dataset, forecast, baselines: dict, path: str | None, index: int = 0) -> str | None:
    """Plot pendulum ``index``'s angles: truth, the LSTM forecast and the frictionless forecast.

    Skipped (with a message) without matplotlib; returns ``path`` when written.
    """
    if path is None:
        return None
    if not _common.has_module("matplotlib"):
        print(f"matplotlib is not installed: skipping the trajectory plot {path} (pip install matplotlib)")
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    W, dt = data.warmup, data.dt
    t = np.arange(len(data.states)) * dt
    tf = t[W + 1 :]
    fig, axes = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    for k, ax in enumerate(axes):
        ax.plot(t, data.states[:, index, k], color="black", label="truth")
        ax.plot(tf, forecast[:, index, k], color="tab:blue", label="LSTM forecast")
        ax.plot(tf, baselines["frictionless"][:, index, k], color="tab:orange", ls="--", label="frictionless")
        ax.axvline(t[W], color="gray", ls=":", lw=1)
        ax.set_ylabel(f"{STATE_NAMES[k]} (rad)")
        ax.grid(True, alpha=0.3)
    axes[0].legend(loc="best", fontsize=8)
    axes[0].set_title(f"test pendulum {index} (friction {data.friction[index]:.3f}); warm-up ends at the dotted line")
    axes[1].set_xlabel("time (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"trajectory plot written to {path}")
    return path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Forecast damped double pendulums with a stacked LSTM that corrects a frictionless "
        "simulator inside a hand-written scan (the 2014 theano_lstm tutorial), trained with AdaDelta.",
    )
    _common.add_common_arguments(p, plot_default=None)
    p.set_defaults(mode="auto")
    p.add_argument("--hidden-sizes", type=_common.positive_int, nargs="+", default=[32, 32], help="LSTM layer sizes (default %(default)s)")
    p.add_argument("--n-train", type=_common.positive_int, default=512, help="training pendulums (default %(default)s)")
    p.add_argument("--n-test", type=_common.positive_int, default=256, help="test pendulums (default %(default)s)")
    p.add_argument("--warmup", type=_common.positive_int, default=20, help="observed steps before forecasting (default %(default)s)")
    p.add_argument("--horizon", type=_common.positive_int, default=40, help="forecast steps (default %(default)s)")
    p.add_argument("--dt", type=_common.positive_float, default=0.05, help="observation interval in s (default %(default)s)")
    p.add_argument("--friction", type=float, nargs=2, default=[0.0, 0.5], metavar=("LOW", "HIGH"),
                   help="range of the joint friction coefficient (default %(default)s)")
    p.add_argument("--batch-size", type=_common.positive_int, default=32, help="default %(default)s")
    p.add_argument("--epochs", type=_common.positive_int, default=30, help="default %(default)s")
    p.add_argument("--max-norm", type=_common.positive_float, default=5.0, help="per-parameter gradient-norm bound (default %(default)s)")
    p.add_argument("--eps", type=_common.positive_float, default=1e-6, help="AdaDelta epsilon (default %(default)s)")
    p.add_argument("--trajectory-plot", metavar="PATH", default=None,
                   help="write a PNG of a test pendulum's forecast vs the truth (needs matplotlib)")
    return p


def cli(argv=None) -> dict:
    """Parse ``argv`` and run :func:`main`."""
    args = _parser().parse_args(argv)
    return main(
        hidden_sizes=args.hidden_sizes,
        n_train=args.n_train,
        n_test=args.n_test,
        warmup=args.warmup,
        horizon=args.horizon,
        dt=args.dt,
        friction=tuple(args.friction),
        batch_size=args.batch_size,
        epochs=args.epochs,
        max_norm=args.max_norm,
        eps=args.eps,
        seed=args.seed,
        mode=args.mode,
        plot=args.plot,
        trajectory_plot=args.trajectory_plot,
        verbose=not args.quiet,
    )


if __name__ == "__main__":
    cli()
