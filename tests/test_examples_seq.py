"""Tests of the sequence examples ``examples/pendulum.py`` and ``examples/variable_length.py``.

The physics of the pendulum example is checked against facts derived by hand
(small-angle normal modes, the energy balance with friction, energy
conservation without it) and its NumPy simulator against the symbolic step
the model uses.  Each example's ``main`` runs once with tiny sizes in the
suite's default compile mode; the checks are on the returned measurements
(finite, learning happened, the two losses agree), never on wall time.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tests._util import EXAMPLES, load_example  # noqa: E402


@pytest.fixture(scope="module")
def pendulum():
    return load_example("pendulum")


@pytest.fixture(scope="module")
def variable_length():
    return load_example("variable_length")


def _random_states(rng, n, max_angle=1.5, max_speed=2.0):
    return np.concatenate([rng.uniform(-max_angle, max_angle, (n, 2)), rng.uniform(-max_speed, max_speed, (n, 2))], axis=1)


# ------------------------------------------------------------ pendulum physics


def test_small_angle_accelerations_match_the_linearized_equations(pendulum):
    """For small angles at rest, M0 alpha = -K theta with M0 = [[m1+m2)l1^2, m2 l1 l2], [m2 l1 l2, m2 l2^2]]."""
    p = pendulum.PendulumParameters(m1=1.5, m2=0.7, l1=0.8, l2=1.3, g=9.81)
    m1, m2, l1, l2, g, _ = p
    M0 = np.array([[(m1 + m2) * l1**2, m2 * l1 * l2], [m2 * l1 * l2, m2 * l2**2]])
    K = np.diag([(m1 + m2) * g * l1, m2 * g * l2])
    theta = np.array([2e-5, -3e-5])
    a1, a2 = pendulum.accelerations((theta[0], theta[1], 0.0, 0.0), p)
    expected = -np.linalg.solve(M0, K @ theta)
    np.testing.assert_allclose([a1, a2], expected, rtol=1e-6)


def test_small_angle_slow_mode_has_the_analytic_period(pendulum):
    """Equal unit masses and rods: the slow normal mode has omega^2 = g (2 - sqrt 2) and theta2 = sqrt 2 theta1."""
    g = 9.81
    omega = np.sqrt(g * (2 - np.sqrt(2)))
    period = 2 * np.pi / omega
    n = 400
    start = np.array([1e-4, np.sqrt(2) * 1e-4, 0.0, 0.0])
    path = pendulum.simulate(start, n, period / n, substeps=2)
    np.testing.assert_allclose(path[-1], start, atol=1e-8)  # back where it started after one period
    assert path[n // 2, 0] == pytest.approx(-1e-4, rel=1e-4)  # and opposite after half of it


def test_energy_balance_with_friction(pendulum):
    """dE/dt along the flow equals the friction power -b (omega1^2 + (omega2 - omega1)^2)."""
    rng = np.random.default_rng(0)
    x = _random_states(rng, 50)
    b = rng.uniform(0, 1, 50)
    p = pendulum.PendulumParameters(friction=b)
    f = np.stack(pendulum.vector_field(tuple(x.T), p), axis=-1)
    h = 1e-6
    dE = (pendulum.energy(x + h * f, p) - pendulum.energy(x - h * f, p)) / (2 * h)
    w1, w2 = x[:, 2], x[:, 3]
    np.testing.assert_allclose(dE, -b * (w1**2 + (w2 - w1) ** 2), atol=1e-6)


def test_simulator_conserves_energy_without_friction(pendulum):
    x0 = _random_states(np.random.default_rng(1), 8)
    path = pendulum.simulate(x0, 500, 0.002)  # 1 s
    energy = pendulum.energy(path)
    assert np.abs(energy - energy[0]).max() < 1e-9 * np.abs(energy[0]).max()
    assert np.ptp(path[:, :, 0], axis=0).min() > 0.01  # it did move


def test_simulator_loses_energy_with_friction(pendulum):
    x0 = _random_states(np.random.default_rng(2), 8)
    b = np.linspace(0.1, 1.0, 8)
    energy = pendulum.energy(pendulum.simulate(x0, 100, 0.01, pendulum.PendulumParameters(friction=b)))
    assert (np.diff(energy, axis=0) < 0).all()


def test_rk4_step_accepts_stacked_and_component_states(pendulum):
    x = _random_states(np.random.default_rng(3), 5)
    u = np.random.default_rng(4).normal(size=(5, 2))
    stacked = pendulum.rk4_step(x, 0.05, extra_acceleration=u)
    parts = pendulum.rk4_step(tuple(x.T), 0.05, extra_acceleration=tuple(u.T))
    np.testing.assert_array_equal(stacked, np.stack(parts, axis=-1))
    with pytest.raises(ValueError, match="4 components"):
        pendulum.simulate(np.zeros(3), 2, 0.1)


def test_symbolic_rk4_step_matches_numpy(pendulum):
    """The step built with ``xp=pytensor.tensor`` (what the model's scan runs) equals the NumPy simulator's."""
    import pytensor.tensor as pt

    from theano_lstm import backend

    x = pt.matrix("x", shape=(None, 4))
    u = pt.matrix("u", shape=(None, 2))
    b = pt.vector("b")
    dt = 0.05
    step = backend.function([x, u, b], pendulum.rk4_step(x, dt, pendulum.PendulumParameters(friction=b), xp=pt,
                                                          extra_acceleration=u))
    rng = np.random.default_rng(5)
    states, corrections, friction = _random_states(rng, 7), rng.normal(size=(7, 2)), rng.uniform(0, 1, 7)
    expected = pendulum.rk4_step(states, dt, pendulum.PendulumParameters(friction=friction), extra_acceleration=corrections)
    np.testing.assert_allclose(step(states, corrections, friction), expected, rtol=1e-12, atol=1e-12)
    # a frictionless trajectory: the symbolic step, iterated, follows simulate() with one substep
    path = pendulum.simulate(states, 20, dt, substeps=1)
    current = states
    for _ in range(20):
        current = step(current, np.zeros((7, 2)), np.zeros(7))
    np.testing.assert_allclose(current, path[-1], rtol=1e-10, atol=1e-10)


def test_model_inputs_hide_the_future_and_weight_the_forecast(pendulum):
    data = pendulum.make_dataset(3, warmup=4, horizon=5, dt=0.05, rng=0)
    observed, teach, targets, weights = pendulum.model_inputs(data)
    assert observed.shape == targets.shape == (9, 3, 4)
    assert teach.tolist() == [1] * 5 + [0] * 4  # states 0..warmup are observed
    assert weights.tolist() == [0] * 4 + [1] * 5  # predictions of states warmup+1..warmup+horizon are scored
    assert (observed[5:] == 0).all() and (observed[:5] != 0).any()
    np.testing.assert_allclose(targets, data.states[1:], rtol=1e-6)


def test_baselines_by_hand(pendulum):
    states = np.zeros((4, 1, 4))
    states[:, 0, 0] = [0.0, 0.1, 0.3, 0.9]  # theta1; warm-up 1, then 2 forecast steps (4 angle entries)
    data = pendulum.Dataset(states, np.zeros(1), warmup=1, horizon=2, dt=0.05)
    base = pendulum.baseline_forecasts(data)
    np.testing.assert_allclose(base["constant"][:, 0, 0], [0.1, 0.1])
    np.testing.assert_allclose(base["linear"][:, 0, 0], [0.2, 0.3])
    errors = pendulum.forecast_errors(base["constant"], data, np.ones(4))
    assert errors["angle_rmse_deg"] == pytest.approx(np.degrees(np.sqrt((0.2**2 + 0.8**2) / 4)))
    assert errors["final_angle_rmse_deg"] == pytest.approx(np.degrees(np.sqrt(0.8**2 / 2)))


def test_pendulum_main_tiny(pendulum, capsys):
    out = pendulum.main(hidden_sizes=[4, 4], n_train=16, n_test=4, warmup=4, horizon=6, batch_size=8, epochs=3,
                        mode=None, verbose=True)
    errors = out["errors"]
    assert set(errors) == {"lstm", "constant", "linear", "frictionless", "fitted_friction"}
    for e in list(errors.values()) + [out["initial_errors"]]:
        assert all(np.isfinite(v) and v >= 0 for v in e.values())
    # the head starts at zero: before training the model is the frictionless simulator (float32 vs float64)
    assert out["initial_errors"]["rmse"] == pytest.approx(errors["frictionless"]["rmse"], rel=1e-3, abs=1e-5)
    curve = out["curve"]
    assert len(curve["loss"]) == len(curve["test rmse"]) == 3
    assert np.isfinite(curve["loss"]).all() and curve["loss"][-1] < curve["loss"][0]
    assert out["compile_seconds"] > 0 and out["wall_seconds"] >= out["train_seconds"]
    printed = capsys.readouterr().out
    assert "pendulum epoch 1/3" in printed and "forecast errors over 6 steps" in printed


def test_pendulum_rejects_bad_arguments(pendulum):
    with pytest.raises(ValueError, match="batch_size"):
        pendulum.main(n_train=4, batch_size=8, verbose=False)
    with pytest.raises(ValueError, match="method"):
        pendulum.main(method="lbfgs", verbose=False)
    with pytest.raises(ValueError, match="friction"):
        pendulum.make_dataset(2, 1, 1, 0.1, friction=(0.5, 0.1))


# ----------------------------------------------------------- variable length


def test_encode_spans_masks_and_labels(variable_length):
    codes = [np.array([3, 1, 4]), np.array([5]), np.array([2, 6])]
    n_symbols = 7
    b = variable_length.encode(codes, n_symbols)
    T = 2 * 3 + 1
    assert b.inputs.shape == (T, 3, n_symbols + 2) and b.mask.shape == (T, 3)
    assert b.mask.sum(axis=0).tolist() == [7, 3, 5]
    assert b.codelengths.tolist() == [3, 1, 2] and b.label_starts.tolist() == [4, 2, 3]
    symbols = b.inputs.argmax(-1)
    assert symbols[:, 0].tolist() == [3, 1, 4, 7, 8, 8, 8]  # code, delimiter, blanks
    assert (b.inputs[5:, 1] == 0).all()  # padding is all-zero
    assert b.labels[0, 4:7].tolist() == [4, 1, 3] and b.labels[2, 3:5].tolist() == [6, 2]
    for j in range(3):  # label_mask is exactly the masked_loss span
        span = np.zeros(T)
        span[b.label_starts[j] : b.label_starts[j] + b.codelengths[j]] = 1
        np.testing.assert_array_equal(b.label_mask[:, j], span)
    assert (b.label_mask <= b.mask).all()  # labels only at valid steps
    wide = variable_length.encode(codes, n_symbols, length=9, batch_size=5)
    assert wide.inputs.shape == (9, 5, 9) and wide.codelengths[3:].tolist() == [0, 0]


def test_score_counts_exact_codes(variable_length):
    codes = [np.array([1, 2]), np.array([3])]
    b = variable_length.encode(codes, 4)
    predicted = np.zeros((5, 2), dtype=int)
    predicted[3:5, 0] = [2, 1]  # right
    predicted[2, 1] = 0  # wrong (should be 3)
    n_right, whole = variable_length.score(predicted, b)
    assert n_right.tolist() == [2, 0] and whole.tolist() == [True, False]


def test_make_codes_lengths(variable_length):
    codes = variable_length.make_codes(200, 5, 2, 4, rng=0)
    assert {len(c) for c in codes} == {2, 3, 4}
    assert all(c.min() >= 0 and c.max() < 5 for c in codes)
    with pytest.raises(ValueError, match="min_length"):
        variable_length.make_codes(2, 5, 3, 2, rng=0)


@pytest.mark.parametrize("loss", ["masked_loss", "crossentropy"])
def test_variable_length_main_tiny(variable_length, loss, capsys):
    out = variable_length.main(n_symbols=4, max_length=3, hidden_sizes=[8], n_train=64, n_test=16, batch_size=8,
                               epochs=3, lr=0.05, loss=loss, mode=None, verbose=True)
    for key in ("symbol_accuracy", "code_accuracy", "chance_symbol_accuracy", "chance_code_accuracy"):
        assert 0.0 <= out[key] <= 1.0
    assert out["chance_symbol_accuracy"] == 0.25
    assert set(out["code_accuracy_by_length"]) <= {1, 2, 3}
    curve = out["curve"]
    assert np.isfinite(curve["loss"]).all() and curve["loss"][-1] < curve["loss"][0]
    # masked_loss (batch-major) and the masked per-step cross-entropy (time-major) are one number
    assert out["max_loss_difference"] < 1e-5
    assert out["compile_seconds"] > 0
    assert "reverse epoch 1/3" in capsys.readouterr().out


def test_variable_length_rejects_bad_arguments(variable_length):
    with pytest.raises(ValueError, match="loss"):
        variable_length.main(loss="hinge", n_train=8, batch_size=4, verbose=False)
    with pytest.raises(ValueError, match="batch_size"):
        variable_length.main(batch_size=1, verbose=False)


# ------------------------------------------------------------------ CLI


@pytest.mark.parametrize("name", ["pendulum", "variable_length"])
def test_help(name):
    result = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), "--help"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    for option in ("--seed", "--mode", "--plot", "--quiet", "--epochs"):
        assert option in result.stdout
