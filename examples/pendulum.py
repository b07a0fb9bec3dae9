"""Forecasting damped double pendulums with a stacked LSTM in a hand-written scan.

The 2014 ``theano_lstm`` README's sequence-forecasting tutorial, made
runnable: a :class:`~theano_lstm.StackedCells` of LSTMs with a linear
:class:`~theano_lstm.Layer` head appended by hand, called one step at a time
through :meth:`~theano_lstm.StackedCells.forward` inside a ``pytensor.scan``
that the script writes itself, whose prediction is fed back as the next
input, trained through that feedback loop with AdaDelta by the 2014 call
``create_optimization_updates(cost, model.params, method="adadelta")``.

**The task.**  Each pendulum is a double pendulum (two 1 kg masses on two
1 m rods) with viscous friction in both joints.  The friction coefficient ``b`` differs from
pendulum to pendulum (uniform in ``friction``) and is never given to the
model.  The model *watches* the first ``warmup`` steps of a trajectory (the
observed states are fed in) and then *forecasts* the next ``horizon`` steps on
its own, each predicted state fed back as the next input.  The training and
test data are simulated with :func:`simulate` (RK4, four substeps per
observation interval, NumPy float64).

**The design: a grey-box model.**  The model knows the frictionless
equations of motion (:func:`accelerations` with ``b = 0``) and integrates them with one Runge-Kutta step per observation
interval, built symbolically inside the scan by the very :func:`rk4_step`
that generates the data (it takes ``xp=numpy`` or ``xp=pytensor.tensor``).
What it does not know, the friction, enters as generalized accelerations
:math:`u_t = (u_1, u_2)` that the network outputs at every step:

.. math::
    \\begin{aligned}
    x_t &= \\begin{cases} \\text{observed state} & t \\le \\text{warmup} \\\\
                          \\hat x_t & \\text{afterwards} \\end{cases}
         \\qquad (\\theta_1, \\theta_2, \\omega_1, \\omega_2) \\\\
    s_t &= \\mathrm{LSTMs}\\big([x_t / \\sigma,\\; (x_t - \\hat x_t) / (\\sigma \\Delta t)],\\; s_{t-1}\\big) \\\\
    u_t &= h^{\\text{top}}_t W + b \\qquad \\text{(linear head, zero at the start)} \\\\
    \\hat x_{t+1} &= \\mathrm{RK4}_{\\Delta t}\\big[x \\mapsto f_0(x) + (0, 0, u_t)\\big](x_t)
    \\end{aligned}

with :math:`f_0` the frictionless vector field, :math:`u_t` held constant
during the step and :math:`\\sigma` each state component's standard
deviation.  This is the README's ``dynamics(x, new_states[-1])``: the
network's output and the current state produce the next state.

The second input, the *innovation* :math:`x_t - \\hat x_t`, is what the last
prediction missed: during the warm-up it shows the friction at work, and once
the model forecasts it is exactly zero, so whatever the network learned about
this pendulum must live in its memory.  It makes the network's input 8 wide
where the README's was 4.  ``innovation=False`` (``--no-innovation``)
restores the state-only input; the network then does little better than one
average friction for all pendulums (scaled RMSE 0.17 by default, against 0.19
for the fitted friction and 0.03 with the innovation).

The head starts at zero, so the untrained model *is* the frictionless
simulator.  The cost is the mean squared error of the scaled forecast over the
horizon, differentiated through the whole loop (every RK4 step and LSTM
step), as in the README.

**Results.**  Root-mean-square forecasting errors over the horizon on fresh
pendulums (:func:`forecast_errors`: the scaled state error and the angle error in
degrees), against four baselines that see the same warm-up:

``constant``
    the last observed state, repeated;
``linear``
    linear extrapolation of the last two observed states;
``frictionless``
    the frictionless equations from the last observed state (the model with
    its correction switched off);
``fitted_friction``
    the equations with one friction coefficient fitted on the training
    pendulums: about the best a correction without memory of the warm-up
    can do.

The default run (about 75 s on 2 cores with JAX, 30 s of it compiling) ends
near a scaled RMSE of 0.03 (angles within 0.6 degrees RMS over the 2 s
horizon, 1 degree at its end), against 0.34 without friction, 0.19 with the
fitted friction and above 1 for the constant and linear forecasts.  AdaDelta
takes many small steps here: the error falls slowly for about 20 epochs
(through the fitted-friction level), then quickly; with ``--method adam``
(``lr`` 0.003) the same run ends at 0.014.

With ``--plot PATH`` (and matplotlib installed) the learning curves are
written to ``PATH`` and one test pendulum's forecast, against the truth, to
``PATH`` with ``_forecast`` before the suffix.

Run ``python examples/pendulum.py`` (``--help`` for options).  ``--mode auto``
(the default) compiles with JAX when jax is installed; ``--mode c`` uses the
library's default C backend.
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
    "STATE_NAMES",
    "PendulumParameters",
    "accelerations",
    "vector_field",
    "rk4_step",
    "energy",
    "simulate",
    "Dataset",
    "make_dataset",
    "model_inputs",
    "physics_forecast",
    "fit_friction",
    "baseline_forecasts",
    "forecast_errors",
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
    state : tuple ``(theta1, theta2, omega1, omega2)``
        Four arrays (or tensors) of the same shape, e.g. ``(batch,)``.  The
        components are kept apart (not stacked on an axis) so the symbolic
        graph has no slicing or concatenation, which keeps its gradient small.
    params : PendulumParameters
        Masses, lengths, gravity and friction.
    xp : module
        ``numpy`` for arrays or ``pytensor.tensor`` for symbolic tensors; the
        same code serves the data generator and the model's symbolic step.

    Returns
    -------
    alpha1 : array or tensor
        :math:`\alpha_1`, shaped like the components.
    alpha2 : array or tensor
        :math:`\alpha_2`, shaped like the components.
    """
    m1, m2, l1, l2, g, b = params
    t1, t2, w1, w2 = state
    delta = t1 - t2
    sin_d, cos_d = xp.sin(delta), xp.cos(delta)
    a11 = (m1 + m2) * l1 * l1
    a12 = (m2 * l1 * l2) * cos_d
    a22 = m2 * l2 * l2
    r1 = -(m2 * l1 * l2) * (w2 * w2) * sin_d - ((m1 + m2) * g * l1) * xp.sin(t1)
    r2 = (m2 * l1 * l2) * (w1 * w1) * sin_d - (m2 * g * l2) * xp.sin(t2)
    if not (np.isscalar(b) and b == 0):  # no friction terms in the frictionless graph
        relative = w2 - w1
        r1 = r1 - b * w1 + b * relative
        r2 = r2 - b * relative
    det = a11 * a22 - a12 * a12
    return (a22 * r1 - a12 * r2) / det, (a11 * r2 - a12 * r1) / det


def vector_field(state, params: PendulumParameters = PendulumParameters(), xp=np, extra_acceleration=None):
    """Time derivative of a state given as four components.

    Parameters
    ----------
    state : tuple ``(theta1, theta2, omega1, omega2)``
        Equally shaped arrays or tensors.
    params : PendulumParameters
        Masses, lengths, gravity and friction.
    xp : module
        ``numpy`` or ``pytensor.tensor``.
    extra_acceleration : pair ``(u1, u2)``, optional
        Added to the angular accelerations (the model's network output
        enters here).

    Returns
    -------
    tuple
        ``(omega1, omega2, alpha1 + u1, alpha2 + u2)``.
    """
    a1, a2 = accelerations(state, params, xp)
    if extra_acceleration is not None:
        a1 = a1 + extra_acceleration[0]
        a2 = a2 + extra_acceleration[1]
    return (state[2], state[3], a1, a2)


def rk4_step(state, dt: float, params: PendulumParameters = PendulumParameters(), xp=np, extra_acceleration=None):
    r"""One classical Runge-Kutta step of size ``dt``.

    .. math::
        \begin{aligned}
        k_1 &= f(x), \quad k_2 = f(x + \tfrac{\Delta t}{2} k_1), \quad
        k_3 = f(x + \tfrac{\Delta t}{2} k_2), \quad k_4 = f(x + \Delta t\, k_3) \\
        x' &= x + \tfrac{\Delta t}{6} (k_1 + 2 k_2 + 2 k_3 + k_4)
        \end{aligned}

    with :math:`f` = :func:`vector_field` (``extra_acceleration`` held
    constant during the step).

    Parameters
    ----------
    state : array or tensor ``(..., 4)``, or tuple of 4 components
        ``(theta1, theta2, omega1, omega2)`` on the last axis (or as a tuple).
    dt : float
        Step size (s).
    params : PendulumParameters
        Masses, lengths, gravity and friction.
    xp : module
        ``numpy`` or ``pytensor.tensor``.
    extra_acceleration : array or tensor ``(..., 2)``, or pair, optional
        Added to the angular accelerations, constant during the step.

    Returns
    -------
    array, tensor or tuple
        The state after ``dt``, of the same kind as ``state``.

    Examples
    --------
    >>> x = np.array([0.1, -0.2, 0.0, 0.0])
    >>> rk4_step(x, 0.01).shape
    (4,)
    """
    stacked = not isinstance(state, tuple)
    x = tuple(state[..., k] for k in range(4)) if stacked else state
    u = extra_acceleration
    if u is not None and not isinstance(u, tuple):
        u = (u[..., 0], u[..., 1])
    half = 0.5 * dt

    def f(s):
        return vector_field(s, params, xp, u)

    def shift(s, k, h):
        return tuple(a + h * b for a, b in zip(s, k))

    k1 = f(x)
    k2 = f(shift(x, k1, half))
    k3 = f(shift(x, k2, half))
    k4 = f(shift(x, k3, dt))
    new = tuple(a + (dt / 6.0) * (p + 2.0 * q + 2.0 * r + s) for a, p, q, r, s in zip(x, k1, k2, k3, k4))
    return xp.stack(new, axis=-1) if stacked else new


def energy(state, params: PendulumParameters = PendulumParameters(), xp=np):
    r"""Total mechanical energy (J) of ``state`` ``(..., 4)``.

    .. math::
        E = \tfrac12 (m_1 + m_2) l_1^2 \omega_1^2 + \tfrac12 m_2 l_2^2 \omega_2^2
            + m_2 l_1 l_2\, \omega_1 \omega_2 \cos(\theta_1 - \theta_2)
            - (m_1 + m_2)\, g\, l_1 \cos\theta_1 - m_2\, g\, l_2 \cos\theta_2

    Conserved without friction; friction only ever lowers it.

    Parameters
    ----------
    state : array or tensor ``(..., 4)``, or tuple of 4 components
        ``(theta1, theta2, omega1, omega2)``.
    params : PendulumParameters
        Masses, lengths and gravity (friction is not used).
    xp : module
        ``numpy`` or ``pytensor.tensor``.

    Returns
    -------
    array or tensor
        Energy, shape ``state.shape[:-1]``.
    """
    m1, m2, l1, l2, g, _ = params
    t1, t2, w1, w2 = state if isinstance(state, tuple) else (state[..., k] for k in range(4))
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

    Parameters
    ----------
    n : int
        Number of pendulums.
    warmup, horizon : int
        Each trajectory has ``warmup + horizon + 1`` states.
    dt : float
        Observation interval (s).
    friction : (float, float)
        Range ``(low, high)`` of each pendulum's friction coefficient (uniform).
    max_angle : float
        Initial angles are uniform in ``[-max_angle, max_angle]`` rad.
    max_speed : float
        Initial angular velocities are uniform in ``[-max_speed, max_speed]`` rad/s.
    rng : int or Generator, optional
        Seed.

    Returns
    -------
    Dataset
        The trajectories and their friction coefficients.
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
    """The float32 arrays a :class:`Forecaster` takes.

    Parameters
    ----------
    data : Dataset
        Trajectories of ``T + 1`` states, ``T = warmup + horizon``.
    hide_future : bool
        Zero the states after the warm-up, to show the forecast cannot peek.

    Returns
    -------
    observed : array ``(T, n, 4)``
        The states the step function reads at ``t = 0 … T-1``.
    teach : array ``(T,)``
        1 while the model is fed observations (``t <= warmup``), else 0.
    targets : array ``(T, n, 4)``
        The states at ``t + 1``.
    weights : array ``(T,)``
        1 at the forecast steps (``t >= warmup``), else 0.
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


def physics_forecast(data: Dataset, friction: float = 0.0) -> np.ndarray:
    """Forecast the ``horizon`` states after the warm-up with the equations of motion.

    Parameters
    ----------
    data : Dataset
        Trajectories; the forecast starts from each one's last observed state.
    friction : float
        One friction coefficient for every pendulum.

    Returns
    -------
    array ``(horizon, n, 4)``
        One RK4 step per observation interval (the model's integrator).
    """
    params = PendulumParameters(friction=friction)
    x = data.states[data.warmup]
    out = []
    for _ in range(data.horizon):
        x = rk4_step(x, data.dt, params)
        out.append(x)
    return np.stack(out)


def fit_friction(data: Dataset, scale, candidates) -> float:
    """Fit one friction coefficient for all pendulums by grid search.

    Parameters
    ----------
    data : Dataset
        Trajectories to fit.
    scale : array ``(4,)``
        Component scales of :func:`forecast_errors`.
    candidates : sequence of float
        Coefficients to try.

    Returns
    -------
    float
        The candidate whose :func:`physics_forecast` has the lowest scaled RMSE.
    """
    errors = [forecast_errors(physics_forecast(data, b), data, scale)["rmse"] for b in candidates]
    return float(candidates[int(np.argmin(errors))])


def baseline_forecasts(data: Dataset, fitted_friction: float | None = None) -> dict:
    """Forecast the ``horizon`` states after the warm-up with the baselines.

    Parameters
    ----------
    data : Dataset
        Trajectories.
    fitted_friction : float, optional
        Coefficient of the ``"fitted_friction"`` baseline (see :func:`fit_friction`).

    Returns
    -------
    dict
        ``{name: array (horizon, n, 4)}`` for

        ``"constant"`` (the last observed state), ``"linear"``
        (extrapolation of the last two observed states), ``"frictionless"``
        (the frictionless equations: the model without its learned
        correction) and, when ``fitted_friction`` is given,
        ``"fitted_friction"`` (the equations with that one coefficient for
        every pendulum: about the best a correction without memory can do).
    """
    W, H = data.warmup, data.horizon
    last, before = data.states[W], data.states[max(W - 1, 0)]
    k = np.arange(1, H + 1)[:, None, None]
    out = {
        "constant": np.broadcast_to(last, (H,) + last.shape),
        "linear": last + k * (last - before),
        "frictionless": physics_forecast(data, 0.0),
    }
    if fitted_friction is not None:
        out["fitted_friction"] = physics_forecast(data, fitted_friction)
    return out


def forecast_errors(forecast, data: Dataset, scale) -> dict:
    """Root-mean-square errors of a forecast against the true states.

    Parameters
    ----------
    forecast : array ``(horizon, n, 4)``
        Predicted states after the warm-up.
    data : Dataset
        The true trajectories.
    scale : array ``(4,)``
        Typical size of each component.

    Returns
    -------
    dict
        ``"rmse"``: RMS of the scaled state error (each component divided by
        ``scale``) over the horizon; ``"angle_rmse_deg"``: RMS angle error in
        degrees over the horizon; ``"final_angle_rmse_deg"``: the same at the
        last step.
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


def _quiet_jax_warnings() -> None:
    """Silence two harmless warnings PyTensor's JAX backend prints at every compile."""
    import warnings

    warnings.filterwarnings("ignore", message="Skipping Assert", category=UserWarning)
    warnings.filterwarnings("ignore", message="Explicitly requested dtype", category=UserWarning)


class Forecaster:
    """A grey-box forecaster: stacked LSTM + linear head inside a hand-written scan.

    Builds the model, the scan and two compiled functions (training and
    forecasting).  See the module docstring for the equations.

    Parameters
    ----------
    hidden_sizes : list of int
        Sizes of the LSTM layers.
    dt : float
        Observation interval: the size of the model's RK4 step.
    scale : array ``(4,)``
        Typical size of each state component: the network's inputs are
        divided by it, and the cost is the mean squared error of the scaled
        forecast.
    innovation : bool, default True
        Feed the network the innovation :math:`(x_t - \\hat x_t) / (\\sigma \\Delta t)`
        next to the state (``StackedCells(8, ...)``); ``False`` feeds the
        state alone, as the 2014 README did (``StackedCells(4, ...)``).
    method : str, default ``"adadelta"``
        ``method`` of ``create_optimization_updates`` (any of
        :data:`theano_lstm.optimizers.METHODS`).
    lr : float
        Learning rate (not used by AdaDelta).
    max_norm : float
        Per-parameter gradient-norm bound of ``create_optimization_updates``
        (2014 default 5).
    eps : float
        The rule's :math:`\\epsilon` (2014 default ``1e-6``).
    seed : int or Generator
        Initial weights.
    mode : str, optional
        Compile mode (a name of :data:`theano_lstm.backend.MODE_NAMES`).

    Attributes
    ----------
    model : theano_lstm.StackedCells
        The LSTM layers followed by the head (``model.layers[-1]``).
    seconds : dict
        Wall-clock seconds spent compiling (in JAX and Numba modes including
        the first call for each input shape), training and forecasting.
    """

    def __init__(self, hidden_sizes, dt: float, scale, innovation: bool = True, method: str = "adadelta",
                 lr: float = 0.01, max_norm: float = 5.0, eps: float = 1e-6, seed=0, mode=None):
        import pytensor
        import pytensor.tensor as pt

        import theano_lstm as tl
        from theano_lstm import backend, init

        self.mode = mode
        self.dt = float(dt)
        self.seconds = {"compile": 0.0, "train": 0.0, "forecast": 0.0}
        self._seen_shapes: set = set()
        start = time.perf_counter()
        self.scale = np.asarray(scale, dtype=backend.floatX())
        if self.scale.shape != (4,) or not (self.scale > 0).all():
            raise ValueError(f"scale must hold 4 positive numbers, received {scale!r}")
        hidden_sizes = list(hidden_sizes)
        n_rec = len(hidden_sizes)

        # The 2014 construction: a stack of LSTMs, then a head appended by hand.
        model = tl.StackedCells(8 if innovation else 4, celltype=tl.LSTM, layers=hidden_sizes, rng=seed)
        # A zero head: the untrained model is exactly the frictionless simulator.
        model.layers.append(tl.Layer(hidden_sizes[-1], 2, "linear", W_init=init.Constant(0.0), name="head"))
        self.model = model
        inv_scale = pt.constant(1.0 / self.scale)
        inv_scale_dt = pt.constant(1.0 / (self.scale * self.dt))
        nominal = PendulumParameters(friction=0.0)
        dt_ = self.dt

        # static feature axes (JAX needs every length inside the loop to be known)
        observed = pt.tensor3("observed", shape=(None, None, 4))  # (time, batch, 4)
        teach = pt.vector("teach")  # (time,)
        targets = pt.tensor3("targets", shape=(None, None, 4))  # (time, batch, 4)
        weights = pt.vector("weights")  # (time,)

        # Everything the loop carries (the predicted state and each LSTM's
        # packed [c, h]) travels as ONE tensor, split at the top of the step
        # and concatenated at its end.  Same arithmetic as carrying them
        # separately (the 2014 README's outputs_info list), but PyTensor
        # builds the scan's gradient once per carried output: with six
        # outputs its backward step had ~11,000 nodes and took minutes to
        # compile; with one it has ~800.
        sizes = [4] + [layer.state_size for layer in model.layers[:n_rec]]
        bounds = np.cumsum([0] + sizes)

        def split(carried):
            return [carried[:, start:stop] for start, stop in zip(bounds[:-1], bounds[1:])]

        def step(observed_t, teach_t, carried, *params):
            # params: scan's inner copies of model.params (strict=True); forward reads the layers' own
            prev_prediction, *prev_hiddens = split(carried)
            # the observation during the warm-up, our own forecast afterwards
            x = teach_t * observed_t + (1 - teach_t) * prev_prediction
            net_input = x * inv_scale
            if innovation:  # what the last prediction missed; 0 once forecasting
                net_input = pt.concatenate([net_input, (x - prev_prediction) * inv_scale_dt], axis=-1)
            new_states = model.forward(net_input, prev_hiddens + [None])
            u = new_states[-1]  # (batch, 2): the accelerations the frictionless model misses
            prediction = rk4_step(x, dt_, nominal, xp=pt, extra_acceleration=u)
            return pt.concatenate([prediction] + new_states[:-1], axis=-1)

        first = model.initial_hidden_states(batch_like=observed[0])[:n_rec]
        carried = pytensor.scan(
            step,
            sequences=[observed, teach],
            outputs_info=[pt.concatenate([observed[0]] + first, axis=-1)],
            non_sequences=model.params,
            strict=True,
            return_updates=False,
        )
        predictions = carried[:, :, :4]  # (time, batch, 4): the state at t + 1
        per_step = pt.sqr((predictions - targets) * inv_scale).mean(axis=(1, 2))  # (time,)
        cost = (per_step * weights).sum() / pt.maximum(weights.sum(), 1)

        # the 2014 call; for AdaDelta ``self.lr`` is its shared rho, as in 2014
        updates, self.gsums, self.xsums, self.lr, self.max_norm = tl.create_optimization_updates(
            cost, model.params, method=method, lr=lr, max_norm=max_norm, eps=eps
        )
        self._train = backend.function([observed, teach, targets, weights], cost, updates=updates, mode=mode)
        self._forecast = backend.function([observed, teach], predictions, mode=mode)
        self.seconds["compile"] += time.perf_counter() - start

    def _call(self, key: str, fn, *args) -> np.ndarray:
        """Call a compiled function, return NumPy, and book its time under ``key`` (or compile)."""
        from theano_lstm import backend

        shapes = (key,) + tuple(np.shape(a) for a in args)
        start = time.perf_counter()
        out = backend.to_numpy(fn(*args))
        elapsed = time.perf_counter() - start
        # JAX compiles at the first call for each input shape, Numba JIT-compiles
        # at the first call: count those calls as compiling
        first = shapes not in self._seen_shapes and self.mode in ("jax", "gpu", "numba")
        self._seen_shapes.add(shapes)
        self.seconds["compile" if first else key] += elapsed
        return out

    def train_epoch(self, data: Dataset, batch_size: int, rng) -> float:
        """Train one pass over ``data`` in shuffled minibatches.

        A trailing partial minibatch is dropped (one input shape: one compile in JAX mode).

        Parameters
        ----------
        data : Dataset
            Training trajectories.
        batch_size : int
            Trajectories per update.
        rng : numpy.random.Generator
            Shuffles the trajectories.

        Returns
        -------
        float
            The mean training cost of the epoch's minibatches.
        """
        observed, teach, targets, weights = model_inputs(data, hide_future=False)
        n = observed.shape[1]
        if n < batch_size:
            raise ValueError(f"batch_size={batch_size} is larger than the {n} training trajectories")
        order = rng.permutation(n)
        costs = []
        for start in range(0, n - batch_size + 1, batch_size):
            idx = order[start : start + batch_size]
            costs.append(float(self._call("train", self._train, observed[:, idx], teach, targets[:, idx], weights)))
        return float(np.mean(costs))

    def forecast(self, data: Dataset) -> np.ndarray:
        """Forecast each trajectory after its warm-up.

        The states after the warm-up are zeroed before they reach the model.

        Parameters
        ----------
        data : Dataset
            Trajectories (at least 2, a JAX-mode requirement).

        Returns
        -------
        array ``(horizon, n, 4)``
            The forecast, float64.
        """
        observed, teach, _, _ = model_inputs(data, hide_future=True)
        return self._call("forecast", self._forecast, observed, teach)[data.warmup :].astype(np.float64)


# --------------------------------------------------------------------- main


def main(
    hidden_sizes=(32, 32),
    n_train: int = 1024,
    n_test: int = 256,
    warmup: int = 20,
    horizon: int = 40,
    dt: float = 0.05,
    friction=(0.0, 0.5),
    innovation: bool = True,
    batch_size: int = 8,
    epochs: int = 50,
    method: str = "adadelta",
    lr: float = 0.003,
    max_norm: float = 5.0,
    eps: float = 1e-6,
    seed: int = 0,
    mode="auto",
    plot: str | None = None,
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
        Observed steps before each forecast.
    horizon : int
        Forecast steps.
    dt : float
        Observation interval (s).
    friction : (float, float)
        Range of the joint friction coefficient.
    innovation : bool
        Feed the network the innovation next to the state (see :class:`Forecaster`).
    batch_size : int
        Pendulums per minibatch (at least 2).
    epochs : int
        Passes over the training pendulums.
    method : str
        ``method`` of ``create_optimization_updates`` (default ``"adadelta"``, the 2014 tutorial's).
    lr : float
        Learning rate of the other methods (AdaDelta has none).
    max_norm, eps : float
        Per-parameter gradient-norm bound and the rule's epsilon (2014 defaults).
    seed : int
        Seeds data and initial weights.
    mode : str or None
        ``"auto"`` (jax when installed, else the library default), ``None``
        (the library default) or a name of :data:`theano_lstm.backend.MODE_NAMES`.
    plot : str, optional
        Path of a learning-curve PNG; a test pendulum's forecast against the
        truth goes next to it, with ``_forecast`` before the suffix (both need
        matplotlib).
    verbose : bool
        Print progress and results.

    Returns
    -------
    dict
        ``"errors"``: ``{name: {"rmse", "angle_rmse_deg", "final_angle_rmse_deg"}}``
        on the test pendulums (see :func:`forecast_errors`) for ``"lstm"``
        and the baselines ``"constant"``, ``"linear"``, ``"frictionless"``,
        ``"fitted_friction"``; ``"initial_errors"``: the same for the
        untrained model; ``"fitted_friction"``: the coefficient fitted on the
        training pendulums; ``"curve"``: per-epoch ``"loss"`` (training
        cost) and ``"test rmse"``; ``"mode"``, ``"seed"``, ``"epochs"``,
        ``"n_test"``, ``"horizon"``, ``"dt"``, ``"method"``,
        ``"compile_seconds"``, ``"train_seconds"``, ``"forecast_seconds"``,
        ``"wall_seconds"``.
    """
    import theano_lstm as tl
    from theano_lstm.optimizers import METHODS

    start = time.perf_counter()
    hidden_sizes = [int(h) for h in hidden_sizes]
    for name, value in (("n_train", n_train), ("n_test", n_test), ("warmup", warmup), ("horizon", horizon),
                        ("batch_size", batch_size), ("epochs", epochs)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{name} must be a positive int, received {value!r}")
    if not hidden_sizes or min(hidden_sizes) <= 0:
        raise ValueError(f"hidden_sizes must be a non-empty list of positive ints, received {hidden_sizes!r}")
    if not 2 <= batch_size <= n_train:
        raise ValueError(f"batch_size must be between 2 (JAX mode cannot re-specialize a batch of one) and "
                         f"n_train={n_train}, received {batch_size}")
    if n_test < 2:
        raise ValueError(f"n_test must be at least 2, received {n_test}")
    if not dt > 0:
        raise ValueError(f"dt must be > 0, received {dt}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, received {method!r}")
    tl.use_float32()
    mode = _common.resolve_mode(mode)
    if mode in ("jax", "gpu"):
        _quiet_jax_warnings()
    streams = np.random.SeedSequence(seed).spawn(3)
    train = make_dataset(n_train, warmup, horizon, dt, friction, rng=np.random.default_rng(streams[0]))
    test = make_dataset(n_test, warmup, horizon, dt, friction, rng=np.random.default_rng(streams[1]))
    scale = train.states.reshape(-1, 4).std(axis=0)
    fitted = fit_friction(train, scale, np.linspace(friction[0], friction[1], 21))
    if verbose:
        print(f"double pendulum: {n_train} training and {n_test} test pendulums, friction {friction[0]:g}-{friction[1]:g}, "
              f"warm-up {warmup} and horizon {horizon} steps of {dt:g} s; {method}, mode {mode!r}, seed {seed}")
    rng = np.random.default_rng(streams[2])
    forecaster = Forecaster(hidden_sizes, dt, scale, innovation=innovation, method=method, lr=lr, max_norm=max_norm,
                            eps=eps, seed=int(rng.integers(2**31)), mode=mode)
    baselines = baseline_forecasts(test, fitted)
    initial = forecast_errors(forecaster.forecast(test), test, scale)
    curve = {"loss": [], "test rmse": []}
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
    errors = {"lstm": forecast_errors(final, test, scale)}
    errors.update((name, forecast_errors(f, test, scale)) for name, f in baselines.items())
    out = {
        "errors": errors,
        "initial_errors": initial,
        "fitted_friction": fitted,
        "curve": curve,
        "mode": mode,
        "seed": seed,
        "epochs": epochs,
        "n_test": n_test,
        "horizon": horizon,
        "dt": dt,
        "method": method,
        "compile_seconds": forecaster.seconds["compile"],
        "train_seconds": forecaster.seconds["train"],
        "forecast_seconds": forecaster.seconds["forecast"],
        "wall_seconds": time.perf_counter() - start,
    }
    if verbose:
        print()
        print(format_results(out))
    if plot is not None:
        _common.save_learning_curves({"lstm": curve}, plot, title="double pendulum forecaster")
        root, ext = os.path.splitext(plot)
        save_trajectory_plot(test, final, baselines, f"{root}_forecast{ext or '.png'}")
    return out


def format_results(out: dict) -> str:
    """Format the results of :func:`main` as a table.

    Parameters
    ----------
    out : dict
        What :func:`main` returned.

    Returns
    -------
    str
        A header line and one row per forecast.
    """
    rows = []
    for name, e in out["errors"].items():
        label = f"fitted_friction (b={out['fitted_friction']:.3g})" if name == "fitted_friction" else name
        rows.append({"forecast": label, "scaled rmse": f"{e['rmse']:.4f}", "angle rmse (deg)": f"{e['angle_rmse_deg']:.2f}",
                     "final-step angle rmse (deg)": f"{e['final_angle_rmse_deg']:.2f}"})
    head = (f"forecast errors over {out['horizon']} steps ({out['horizon'] * out['dt']:g} s) on {out['n_test']} fresh "
            f"pendulums after {out['epochs']} epochs of {out['method']} (mode {out['mode']!r}, seed {out['seed']}); "
            f"compile {out['compile_seconds']:.1f} s, train {out['train_seconds']:.1f} s, total {out['wall_seconds']:.1f} s")
    return head + "\n" + _common.format_table(rows)


def save_trajectory_plot(data: Dataset, forecast, baselines: dict, path: str | None, index: int | None = None) -> str | None:
    """Plot a test pendulum's angles: the truth, the LSTM forecast and the physics baselines.

    Skipped (with a message) without matplotlib.

    Parameters
    ----------
    data : Dataset
        Test trajectories.
    forecast : array ``(horizon, n, 4)``
        The LSTM's forecast.
    baselines : dict
        :func:`baseline_forecasts` output.
    path : str or None
        Where to write the PNG (``None``: nothing).
    index : int, optional
        Which pendulum (default: one with friction near the upper quartile,
        where friction matters).

    Returns
    -------
    str or None
        ``path`` when the file was written.
    """
    if path is None:
        return None
    if not _common.has_module("matplotlib"):
        print(f"matplotlib is not installed: skipping the forecast plot {path} (pip install matplotlib)")
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if index is None:
        index = int(np.argmin(np.abs(data.friction - np.quantile(data.friction, 0.75))))
    W, dt = data.warmup, data.dt
    t = np.arange(len(data.states)) * dt
    tf = t[W + 1 :]
    fig, axes = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    for k, ax in enumerate(axes):
        ax.plot(t, data.states[:, index, k], color="black", label="truth")
        ax.plot(tf, forecast[:, index, k], color="tab:blue", label="LSTM forecast")
        for name, style, color in (("frictionless", "--", "tab:orange"), ("fitted_friction", ":", "tab:green")):
            if name in baselines:
                ax.plot(tf, baselines[name][:, index, k], ls=style, color=color, label=name)
        ax.axvline(t[W], color="gray", ls=":", lw=1)
        ax.set_ylabel(f"{STATE_NAMES[k]} (rad)")
        ax.grid(True, alpha=0.3)
    axes[0].legend(loc="best", fontsize=8)
    axes[0].set_title(f"test pendulum {index} (friction {data.friction[index]:.3f}); the forecast starts at the dotted line")
    axes[1].set_xlabel("time (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"forecast plot written to {path}")
    return path


def _parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    from theano_lstm.optimizers import METHODS

    p = argparse.ArgumentParser(
        description="Forecast damped double pendulums with a stacked LSTM that corrects a frictionless "
        "simulator inside a hand-written scan (the 2014 theano_lstm tutorial), trained with AdaDelta; "
        "report the forecasting error against constant, linear and physics baselines.",
    )
    _common.add_common_arguments(p, mode_default="auto")
    p.add_argument("--hidden-sizes", type=_common.positive_int, nargs="+", default=[32, 32],
                   help="LSTM layer sizes (default %(default)s)")
    p.add_argument("--n-train", type=_common.positive_int, default=1024, help="training pendulums (default %(default)s)")
    p.add_argument("--n-test", type=_common.positive_int, default=256, help="fresh test pendulums (default %(default)s)")
    p.add_argument("--warmup", type=_common.positive_int, default=20, help="observed steps before forecasting (default %(default)s)")
    p.add_argument("--horizon", type=_common.positive_int, default=40, help="forecast steps (default %(default)s)")
    p.add_argument("--dt", type=_common.positive_float, default=0.05, help="observation interval in s (default %(default)s)")
    p.add_argument("--friction", type=float, nargs=2, default=[0.0, 0.5], metavar=("LOW", "HIGH"),
                   help="range of the joint friction coefficient (default %(default)s)")
    p.add_argument("--no-innovation", action="store_true",
                   help="feed the network the state only (the 2014 README's 4 inputs), not the innovation")
    p.add_argument("--batch-size", type=_common.positive_int, default=8, help="default %(default)s")
    p.add_argument("--epochs", type=_common.positive_int, default=50, help="default %(default)s")
    p.add_argument("--method", choices=METHODS, default="adadelta",
                   help="create_optimization_updates method (default %(default)s)")
    p.add_argument("--lr", type=_common.positive_float, default=0.003,
                   help="learning rate of methods other than adadelta (default %(default)s)")
    p.add_argument("--max-norm", type=_common.positive_float, default=5.0,
                   help="per-parameter gradient-norm bound (default %(default)s)")
    p.add_argument("--eps", type=_common.positive_float, default=1e-6, help="the rule's epsilon (default %(default)s)")
    return p


def cli(argv=None) -> dict:
    """Parse ``argv`` (default ``sys.argv[1:]``) and run :func:`main`; returns what it returned."""
    args = _parser().parse_args(argv)
    return _common.run_main(main, args, format_results, uses=["no_innovation"], friction=tuple(args.friction),
                            innovation=not args.no_innovation)


if __name__ == "__main__":
    cli()
