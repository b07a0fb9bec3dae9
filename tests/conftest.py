"""Test configuration.

Unit tests compile many tiny graphs, so the suite's default compile mode is
the library's "fast_compile": every Op runs its Python perform, nothing is
compiled, so a graph is ready in about a second even on a cold cache.  A few
tests per real backend (C, Numba, JAX) check that those agree.
Set THEANO_LSTM_TEST_MODE=c (or numba, jax) to run everything in another mode.
"""

import os

import numpy as np
import pytensor
import pytest

import theano_lstm.backend as backend

TEST_MODE = os.environ.get("THEANO_LSTM_TEST_MODE", "fast_compile")
backend.set_default_mode(TEST_MODE)
# ``.eval()`` and doctests use PyTensor's own default mode: make it the same.
pytensor.config.mode = backend.get_mode(TEST_MODE)
# JAX mode runs float32 only; the float64 reference tests need a float64 mode.
DEFAULT_FLOATX = "float32" if TEST_MODE in ("jax", "gpu") else "float64"
pytensor.config.floatX = DEFAULT_FLOATX


@pytest.fixture(autouse=True)
def _float64_by_default():
    """Every test starts in float64 (a test that wants float32 sets it itself)."""
    old = pytensor.config.floatX
    pytensor.config.floatX = DEFAULT_FLOATX
    yield
    pytensor.config.floatX = old


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _plain_progress_lines(monkeypatch):
    """The examples print tqdm bars when tqdm is installed (the ``progress`` extra);
    tests read the plain per-epoch lines, so they see tqdm as absent."""
    from tests._util import load_example

    common = load_example("_common")
    real = common.has_module
    monkeypatch.setattr(common, "has_module", lambda name: False if name == "tqdm" else real(name))
