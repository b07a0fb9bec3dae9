"""Tests of ``examples/char_lm.py`` (character language model) and ``examples/sine.py`` (Elman regression).

Each example's ``main`` runs with tiny sizes in the suite's default compile
mode and its returned measurements are checked for sanity; the data helpers
are checked against what they must produce by construction.
``@pytest.mark.slow`` tests run an example at its default size to its
documented result.
"""

from __future__ import annotations

import math
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from tests._util import EXAMPLES, load_example  # noqa: E402


@pytest.fixture(scope="module")
def char_lm():
    return load_example("char_lm")


@pytest.fixture(scope="module")
def sine():
    return load_example("sine")


# ------------------------------------------------------------------ char data


def test_anthology_ships_as_package_data(char_lm):
    path = resources.files("theano_lstm").joinpath("data", char_lm.DATA_FILE)
    assert path.is_file()
    text = char_lm.load_text()
    assert text == path.read_text(encoding="utf-8")
    assert 20_000 < len(text.encode("utf-8")) < 60_000
    assert text.isascii()
    for phrase in ("In the beginning God created", "Quoth the Raven", "Down the Rabbit-Hole"):
        assert phrase in text
    assert char_lm.load_text(max_chars=50) == text[:50]


def test_pydoc_corpus_comes_from_the_standard_library(char_lm):
    from pydoc_data.topics import topics

    text = char_lm.load_text("pydoc", max_chars=5000)
    assert len(text) == 5000
    assert text.startswith(topics[sorted(topics)[0]].strip("\n")[:100])
    with pytest.raises(ValueError, match="unknown corpus"):
        char_lm.load_text("gutenberg")
    with pytest.raises(ValueError, match="max_chars"):
        char_lm.load_text(max_chars=0)


def test_vocabulary_round_trip(char_lm):
    text = char_lm.load_text()
    vocab = char_lm.Vocabulary(text)
    assert vocab.chars == sorted(set(text)) and len(vocab) == len(set(text))
    ids = vocab.encode(text[:500])
    assert ids.dtype == np.int32 and vocab.decode(ids) == text[:500]
    with pytest.raises(ValueError, match="not in the vocabulary"):
        vocab.encode("caf\u00e9")


def test_training_streams_are_consecutive_text(char_lm):
    ids = np.arange(103, dtype=np.int32)
    x, y = char_lm.training_streams(ids, batch_size=4, bptt=6)
    per_stream = (len(ids) - 1) // 4  # 25 steps, trimmed to 4 chunks of 6
    assert x.shape == y.shape == (24, 4) and x.dtype == np.int32
    for j in range(4):
        assert x[:, j].tolist() == list(range(j * per_stream, j * per_stream + 24))
    assert (y == x + 1).all()  # each target is the next character
    with pytest.raises(ValueError, match="too short"):
        char_lm.training_streams(ids, batch_size=20, bptt=6)


@pytest.mark.parametrize("n, n_streams, bptt", [(101, 4, 7), (10, 3, 16), (9, 8, 2)])
def test_evaluation_streams_predict_every_character_once(char_lm, n, n_streams, bptt):
    ids = np.random.default_rng(n).integers(0, 9, size=n).astype(np.int32)
    x, y, m = char_lm.evaluation_streams(ids, n_streams, bptt)
    assert x.shape == y.shape == m.shape and x.shape[1] == n_streams and x.shape[0] % bptt == 0
    pairs = [(x[t, j], y[t, j]) for j in range(n_streams) for t in range(x.shape[0]) if m[t, j]]
    assert pairs == list(zip(ids[:-1], ids[1:]))
    for j in range(n_streams):  # each column: ones, then zeros (what the runner's mask requires)
        k = int(m[:, j].sum())
        assert (m[:k, j] == 1).all() and (m[k:, j] == 0).all()


def test_baselines(char_lm):
    uniform = np.arange(8).repeat(5)
    assert char_lm.unigram_bpc(uniform, np.arange(8), 8) == pytest.approx(3.0)
    alternating = np.tile([0, 1, 2, 3], 50)
    uni = char_lm.unigram_bpc(alternating, alternating[:40], 4)
    bi = char_lm.bigram_bpc(alternating, alternating[:40], 4)
    assert uni == pytest.approx(2.0) and bi < 0.5  # the bigram model sees the cycle
    text = char_lm.load_text()
    vocab = char_lm.Vocabulary(text)
    train, valid = char_lm.split_text(vocab.encode(text), 0.1)
    V = len(vocab)
    assert char_lm.bigram_bpc(train, valid, V) < char_lm.unigram_bpc(train, valid, V) < math.log2(V)


# ----------------------------------------------------------------- char model


def test_truncated_bptt_carries_the_state_exactly(char_lm):
    """Reading a text in chunks of 5 with states carried = reading it in one piece (LSTM: packed [c, h])."""
    import theano_lstm as tl

    tl.use_float32()
    text = char_lm.load_text(max_chars=400)
    vocab = char_lm.Vocabulary(text)
    ids = vocab.encode(text)
    model = char_lm.build_model(len(vocab), embedding_size=4, hidden_size=6, layers=2, cell="lstm", rng=0)
    assert [type(layer).__name__ for layer in model.layers] == ["Embedding", "LSTM", "LSTM", "Layer"]
    trainer = char_lm.CharTrainer(model, batch_size=2, lr=1e-2, dropout=0.2, mode=None, seed=0)
    whole = trainer.evaluate(ids, n_streams=2, bptt=len(ids))
    chunked = trainer.evaluate(ids, n_streams=2, bptt=5)
    assert np.isfinite(whole) and chunked == pytest.approx(whole, rel=1e-4)
    assert whole == pytest.approx(math.log2(len(vocab)), abs=0.5)  # untrained: near uniform
    x, y = char_lm.training_streams(ids, batch_size=2, bptt=10)
    before = [p.get_value() for p in model.params]
    first = trainer.train_epoch(x, y, bptt=10)
    second = trainer.train_epoch(x, y, bptt=10)
    assert np.isfinite(first) and second < first
    assert all(not np.array_equal(b, p.get_value()) for b, p in zip(before, model.params))
    assert all(p.dtype == "float32" for p in model.params)


def test_char_lm_main_tiny(char_lm):
    prime = "In the "
    out = char_lm.main(max_chars=2000, embedding_size=4, hidden_size=12, batch_size=4, bptt=8, epochs=2,
                       lr=1e-2, prime=prime, sample_length=30, mode=None, verbose=False)
    assert out["epochs"] == 2 and out["cell"] == "gru"
    curve = out["curve"]
    assert len(curve["train bpc"]) == len(curve["valid bpc"]) == 2
    assert all(np.isfinite(v) for v in curve["train bpc"] + curve["valid bpc"])
    assert curve["train bpc"][1] < curve["train bpc"][0]  # the loss went down
    assert out["val_bpc"] == min(curve["valid bpc"]) and curve["valid bpc"][out["best_epoch"] - 1] == out["val_bpc"]
    assert out["final_val_bpc"] == curve["valid bpc"][-1]
    assert 0 < out["bigram_bpc"] < out["unigram_bpc"] < math.log2(out["vocabulary_size"]) + 0.5
    sample = out["sample"]
    assert sample.startswith(prime) and len(sample) == len(prime) + 30
    assert set(sample) <= set(char_lm.load_text(max_chars=2000))
    assert out["n_train_chars"] + out["n_valid_chars"] == 2000
    assert out["seconds"] >= out["train_seconds"] > 0 and out["compile_seconds"] > 0


def test_char_lm_rejects_bad_arguments(char_lm):
    with pytest.raises(ValueError, match="cell"):
        char_lm.main(cell="rnn", verbose=False)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        char_lm.main(max_chars=2000, prime="\u00a7", verbose=False)
    with pytest.raises(ValueError, match="hidden_size"):
        char_lm.main(hidden_size=0, verbose=False)
    with pytest.raises(ValueError, match="too short"):
        char_lm.main(max_chars=300, batch_size=32, bptt=64, verbose=False)


# ----------------------------------------------------------------------- sine


def test_sine_windows_walk_the_unit_circle(sine):
    x, y, theta = sine.make_windows(5, 12, rng=3, min_step=0.2, max_step=0.4)
    assert x.dtype == np.float32 and x.shape == y.shape == (12, 5, 2)
    assert np.allclose((x**2).sum(-1), 1.0, atol=1e-6)
    assert ((0.2 <= theta) & (theta <= 0.4)).all()
    # each step turns the point by theta: cos(angle between x_t and x_{t+1}) = cos(theta)
    assert np.allclose((x * y).sum(-1), np.cos(theta)[None, :], atol=1e-5)
    # predicting the previous value costs |x_{t+1} - x_t|^2 / 2 = 1 - cos(theta) per coordinate
    assert sine.previous_value_mse(x, y) == pytest.approx(float(np.mean(1 - np.cos(theta))), rel=1e-4)
    assert sine.extrapolation_mse(x, y) < sine.previous_value_mse(x, y)


def test_sine_main_tiny(sine, tmp_path, capsys):
    plot = tmp_path / "sine.png"
    out = sine.main(hidden_size=6, length=8, batch_size=4, steps_per_epoch=15, epochs=2, n_test=6,
                    mode=None, plot=str(plot), verbose=True)
    assert np.isfinite(out["test_mse"]) and out["test_mse"] < out["initial_test_mse"]  # training helped
    assert 0 < out["extrapolation_mse"] < out["previous_value_mse"]
    assert len(out["curve"]["train mse"]) == len(out["curve"]["test mse"]) == 2
    assert out["curve"]["test mse"][-1] == pytest.approx(out["test_mse"])
    example = out["example"]
    assert example["inputs"].shape == example["targets"].shape == example["predictions"].shape == (8, 2)
    assert 0.1 <= example["theta"] <= 0.6
    printed = capsys.readouterr().out
    assert "Elman 6 epoch 2/2" in printed and "previous value" in printed
    if sine._common.has_module("matplotlib"):
        assert out["plots"] == [str(plot), str(tmp_path / "sine_predictions.png")]
        assert all(Path(p).stat().st_size > 0 for p in out["plots"])
    else:
        assert out["plots"] == [] and "matplotlib is not installed" in printed


def test_sine_rejects_bad_arguments(sine):
    with pytest.raises(ValueError, match="hidden_size"):
        sine.main(hidden_size=0, verbose=False)
    with pytest.raises(ValueError, match="min_step"):
        sine.make_windows(2, 3, rng=0, min_step=0.5, max_step=0.1)


# -------------------------------------------------------------------- scripts


@pytest.mark.parametrize("name, flags", [("char_lm", ["--corpus", "--cell", "--bptt"]),
                                         ("sine", ["--hidden-size", "--epochs"])])
def test_help(name, flags):
    done = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), "--help"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for flag in ["--seed", "--mode", "--plot", "--quiet"] + flags:
        assert flag in done.stdout


@pytest.mark.parametrize("name", ["char_lm", "sine"])
def test_mode_defaults_to_auto(name):
    module = load_example(name)
    assert module._parser().parse_args([]).mode == "auto"
    assert module._parser().parse_args(["--mode", "fast_compile"]).mode == "fast_compile"
    assert module._common.resolve_mode("auto") in ("jax", module._common.resolve_mode(None))
    with pytest.raises(SystemExit):
        module._parser().parse_args(["--mode", "bogus"])


@pytest.mark.slow
def test_char_lm_default_run_beats_the_baselines(char_lm):
    out = char_lm.main(verbose=False)
    assert out["val_bpc"] < out["bigram_bpc"] < out["unigram_bpc"]
    assert out["val_bpc"] < out["unigram_bpc"] - 1.0


@pytest.mark.slow
def test_sine_default_run_beats_the_baselines(sine):
    out = sine.main(verbose=False)
    assert out["test_mse"] < 0.1 * out["extrapolation_mse"]
