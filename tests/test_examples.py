"""Tests of the example scripts in ``examples/``.

Each example exposes ``main(...)``; the tests call it with tiny sizes in the
suite's default compile mode (seconds each) and check the returned
measurements.  Data generators are checked against independent oracles
written in this file.  ``@pytest.mark.slow`` tests run an example at its real
size to its documented result.

To add tests for another example, load it with :func:`load_example` and add a
section below.
"""

from __future__ import annotations

import doctest
import re
import sys
from collections import defaultdict

import numpy as np
import pytest

from tests._util import load_example  # noqa: E402


@pytest.fixture(scope="module")
def reber():
    return load_example("reber")


@pytest.fixture(scope="module")
def embedded_reber():
    return load_example("embedded_reber")


@pytest.fixture(scope="module")
def common():
    return load_example("_common")


# ------------------------------------------------------------ docstrings


@pytest.mark.parametrize("name", ["_common", "reber", "embedded_reber"])
def test_docstring_examples(name):
    """The examples' doctests (``examples/`` is not on the suite's doctest path)."""
    result = doctest.testmod(load_example(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


# ------------------------------------------------------------ _common helpers


def test_pad_batch_is_time_major_with_prefix_mask(common):
    a, b = np.ones((3, 2)), 2 * np.ones((1, 2))
    x, m = common.pad_batch([a, b])
    assert x.shape == (3, 2, 2) and m.shape == (3, 2)
    assert m[:, 0].tolist() == [1, 1, 1] and m[:, 1].tolist() == [1, 0, 0]
    assert (x[0, 1] == 2).all() and (x[1:, 1] == 0).all()
    x, m = common.pad_batch([a, b], length=5, batch_size=4)
    assert x.shape == (5, 4, 2) and m[:, 2:].sum() == 0
    with pytest.raises(ValueError, match="shorter than the longest"):
        common.pad_batch([a], length=2)
    with pytest.raises(ValueError, match="smaller than the number"):
        common.pad_batch([a, b], batch_size=1)


def test_minibatches_cover_every_index_once(common):
    lengths = np.random.default_rng(0).integers(1, 30, size=103)
    batches = common.minibatches(lengths, 10, np.random.default_rng(1))
    seen = np.concatenate(batches)
    assert sorted(seen.tolist()) == list(range(103))
    assert max(len(b) for b in batches) == 10


def test_epoch_progress_prints_plain_lines_without_tqdm(common, capsys):
    progress = common.EpochProgress(3, "demo", use_tqdm=False)
    progress.update(1, loss=0.25, acc=1.0)
    progress.close()
    assert capsys.readouterr().out == "demo epoch 1/3: loss 0.25, acc 1\n"
    quiet = common.EpochProgress(3, "demo", enabled=False)
    quiet.update(1, loss=1.0)
    assert capsys.readouterr().out == ""


def test_epoch_progress_uses_tqdm_when_available(common, monkeypatch):
    calls = defaultdict(list)

    class FakeBar:
        def __init__(self, **kwargs):
            calls["init"].append(kwargs)
            self.n = 0

        def set_postfix(self, postfix, refresh=True):
            calls["postfix"].append(postfix)

        def update(self, n):
            self.n += n
            calls["update"].append(n)

        def close(self):
            calls["close"].append(True)

    fake = type(sys)("tqdm.auto")
    fake.tqdm = FakeBar
    monkeypatch.setitem(sys.modules, "tqdm", type(sys)("tqdm"))
    monkeypatch.setitem(sys.modules, "tqdm.auto", fake)
    progress = common.EpochProgress(4, "demo", use_tqdm=True)
    progress.update(1, loss=0.5)
    progress.update(2, loss=0.25)
    progress.close()
    assert calls["init"][0]["total"] == 4
    assert calls["update"] == [1, 1] and calls["close"] == [True]
    assert calls["postfix"][-1] == {"loss": "0.25"}


def test_learning_curves_written_or_skipped(common, tmp_path, capsys):
    path = tmp_path / "curve.png"
    out = common.save_learning_curves({"run": {"loss": [1.0, 0.5]}}, str(path))
    if common.has_module("matplotlib"):
        assert out == str(path) and path.stat().st_size > 0
    else:
        assert out is None and not path.exists()
        assert "matplotlib is not installed" in capsys.readouterr().out
    assert common.save_learning_curves({"run": {"loss": [1.0]}}, None) is None


def test_common_arguments(common):
    import argparse

    from theano_lstm import backend

    plain = argparse.ArgumentParser()
    common.add_common_arguments(plain)
    args = plain.parse_args([])
    assert args.mode is None and args.seed == 0 and args.plot is None and not args.quiet
    with pytest.raises(SystemExit):
        plain.parse_args(["--mode", "auto"])
    auto = argparse.ArgumentParser()
    common.add_common_arguments(auto, mode_default="auto")
    assert auto.parse_args([]).mode == "auto"
    assert auto.parse_args(["--mode", "c", "--seed", "3"]).mode == "c"
    assert common.resolve_mode(None) == backend.get_default_mode()
    assert common.resolve_mode("auto") in ("jax", backend.get_default_mode())
    assert common.resolve_mode("numba") == "numba"
    assert common.clip_bound("0") is None and common.clip_bound("2.5") == 2.5
    with pytest.raises(argparse.ArgumentTypeError):
        common.clip_bound("-1")
    with pytest.raises(argparse.ArgumentTypeError):
        common.positive_int("0")


def test_format_table_aligns_columns(common):
    text = common.format_table([{"model": "lstm", "acc": 1.0}, {"model": "elman", "acc": 0.5}])
    assert text.splitlines() == ["model  acc", "lstm   1", "elman  0.5"]


# --------------------------------------------------------- Reber generator

# Independent oracle: the Reber grammar as a regular expression, derived by
# hand from the state diagram.  After "BT S* X" the automaton is in the state
# that reads X or S; after "BP T* V" in the one that reads P or V.
_FROM_X_STATE = r"(?:XT*VP)*(?:S|XT*VV)"
_FROM_V_STATE = r"(?:PXT*V)*(?:V|PS)"
_REBER = rf"B(?:TS*X{_FROM_X_STATE}|PT*V{_FROM_V_STATE})E"
REBER_RE = re.compile(_REBER)
EMBEDDED_RE = re.compile(rf"B(?:T{_REBER}T|P{_REBER}P)E")

KNOWN_REBER = ["BTXSE", "BPVVE", "BTSSXXTVVE", "BPVPSE", "BPVPXVVE", "BTXXVPSE", "BPTTTVPXTVVE"]
NOT_REBER = ["", "B", "BE", "BTSE", "BTXSEE", "TXSE", "BTXS", "BPVE", "BTXXVVPE", "BPVVEX", "btxse", "BTXQE"]


def _corruptions(word, symbols):
    """Every string one edit away from ``word`` (substitution, deletion, insertion, swap)."""
    out = set()
    for i in range(len(word) + 1):
        for s in symbols:
            out.add(word[:i] + s + word[i:])
            if i < len(word):
                out.add(word[:i] + s + word[i + 1 :])
        if i < len(word):
            out.add(word[:i] + word[i + 1 :])
        if i + 1 < len(word):
            out.add(word[:i] + word[i + 1] + word[i] + word[i + 2 :])
    out.discard(word)
    return out


def test_oracle_agrees_with_known_strings():
    assert all(REBER_RE.fullmatch(w) for w in KNOWN_REBER)
    assert not any(REBER_RE.fullmatch(w) for w in NOT_REBER)


def test_known_strings(reber):
    assert all(reber.in_grammar(w) for w in KNOWN_REBER)
    assert not any(reber.in_grammar(w) for w in NOT_REBER)
    assert reber.in_embedded_grammar("BTBTXSETE") and reber.in_embedded_grammar("BPBPVVEPE")
    for bad in ["BTBTXSEPE", "BPBPVVETE", "BTBTXSEE", "BTXSE", "BTBTXSET", "BTTXSETE"]:
        assert not reber.in_embedded_grammar(bad), bad


def test_every_generated_string_is_in_the_grammar(reber):
    rng = np.random.default_rng(0)
    words = [reber.generate_word(rng) for _ in range(2000)]
    assert all(reber.in_grammar(w) and REBER_RE.fullmatch(w) for w in words)
    assert {w[1] for w in words} == {"T", "P"}  # both branches are drawn
    for inputs, targets in reber.get_n_examples(300, rng=1):
        word = reber.sequence_to_word(inputs) + "E"
        assert REBER_RE.fullmatch(word)
        assert targets.shape == inputs.shape == (len(word) - 1, reber.N_SYMBOLS)


def test_embedded_strings_repeat_the_second_symbol(reber):
    rng = np.random.default_rng(2)
    words = [reber.generate_embedded_word(rng) for _ in range(2000)]
    for w in words:
        assert w[1] == w[-2] and w[1] in "TP"
        assert reber.in_embedded_grammar(w) and EMBEDDED_RE.fullmatch(w)
        assert REBER_RE.fullmatch(w[2:-2])
    assert 0.4 < np.mean([w[1] == "T" for w in words]) < 0.6
    for inputs, targets in reber.get_n_embedded_examples(200, rng=3):
        word = reber.sequence_to_word(inputs) + "E"
        assert EMBEDDED_RE.fullmatch(word) and word[1] == word[-2]


def test_in_grammar_agrees_with_the_oracle_on_corrupted_strings(reber):
    rng = np.random.default_rng(4)
    rejected = checked = 0
    for _ in range(40):
        word = reber.generate_word(rng)
        for bad in _corruptions(word, reber.SYMBOLS):
            assert reber.in_grammar(bad) == bool(REBER_RE.fullmatch(bad)), bad
            rejected += not reber.in_grammar(bad)
            checked += 1
        emb = reber.generate_embedded_word(rng)
        for bad in _corruptions(emb, reber.SYMBOLS):
            assert reber.in_embedded_grammar(bad) == bool(EMBEDDED_RE.fullmatch(bad)), bad
    assert rejected > 0.9 * checked


def test_same_seed_same_strings(reber):
    a = [reber.generate_embedded_word(np.random.default_rng(7)) for _ in range(3)]
    b = [reber.generate_embedded_word(np.random.default_rng(7)) for _ in range(3)]
    assert a == b
    xa = reber.get_n_examples(5, rng=np.random.default_rng(8))
    xb = reber.get_n_examples(5, rng=8)
    assert all((p[0] == q[0]).all() and (p[1] == q[1]).all() for p, q in zip(xa, xb))


def test_length_bounds(reber):
    rng = np.random.default_rng(5)
    words = [reber.generate_word(rng, min_length=10, max_length=12) for _ in range(200)]
    assert all(10 <= len(w) <= 12 for w in words)
    emb = [reber.generate_embedded_word(rng, min_length=15) for _ in range(100)]
    assert all(len(w) >= 15 for w in emb)
    with pytest.raises(ValueError, match="max_length"):
        reber.generate_word(rng, min_length=10, max_length=8)
    with pytest.raises(ValueError, match="min_length"):
        reber.generate_word(rng, min_length=-1)


def _rows(targets, reber):
    return ["".join(s for s, on in zip(reber.SYMBOLS, row) if on) for row in targets]


def test_multi_hot_targets_by_hand(reber):
    # worked out on the state diagram, one row per prefix B, BT, BTS, ...
    assert _rows(reber.next_symbol_targets("BTSSXXTVVE"), reber) == ["TP", "SX", "SX", "SX", "SX", "TV", "TV", "PV", "E"]
    assert _rows(reber.next_symbol_targets("BPVPXVVE"), reber) == ["TP", "TV", "PV", "SX", "TV", "PV", "E"]
    emb = reber.next_symbol_targets("BPBTXSEPE", embedded=True)
    assert _rows(emb, reber) == ["TP", "B", "TP", "SX", "SX", "E", "P", "E"]
    with pytest.raises(ValueError, match="not a string"):
        reber.next_symbol_targets("BTXSSE")


def test_multi_hot_targets_match_observed_continuations(reber):
    """Each target row is exactly the set of symbols seen after that prefix in many strings."""
    rng = np.random.default_rng(6)
    for embedded, gen in ((False, reber.generate_word), (True, reber.generate_embedded_word)):
        words = [gen(rng) for _ in range(4000)]
        seen = defaultdict(set)
        count = defaultdict(int)
        for w in words:
            for t in range(1, len(w)):
                seen[w[:t]].add(w[t])
                count[w[:t]] += 1
        checked = 0
        for w in words[:300]:
            targets = reber.next_symbol_targets(w, embedded=embedded)
            for t, row in enumerate(_rows(targets, reber)):
                prefix = w[: t + 1]
                assert w[t + 1] in row  # the actual next symbol is always allowed
                assert 1 <= len(row) <= 2
                assert row == reber.allowed_next(prefix, embedded=embedded)
                if count[prefix] >= 40:  # a branch is missed with probability < 2**-40
                    assert set(row) == seen[prefix], prefix
                    checked += 1
        assert checked > 1000


def test_encodings_round_trip(reber):
    word = "BTSSXXTVVE"
    x = reber.one_hot(word)
    assert x.dtype == np.float32 and x.sum(axis=1).tolist() == [1.0] * len(word)
    assert reber.sequence_to_word(x) == word
    assert reber.sequence_to_word(reber.word_to_indices(word)) == word
    with pytest.raises(ValueError, match="not one of"):
        reber.word_to_indices("BTQ")
    with pytest.raises(ValueError, match="columns"):
        reber.sequence_to_word(np.zeros((3, 5)))


def test_long_range_accuracy_counts_only_exact_choices(reber, embedded_reber):
    word = "BTBTXSETE"  # the prediction that matters is row len(word) - 3
    T, P = reber.SYMBOLS.index("T"), reber.SYMBOLS.index("P")
    right = np.zeros((8, 7)); right[-2, T] = 0.9
    both = np.zeros((8, 7)); both[-2, T] = 0.8; both[-2, P] = 0.6
    wrong = np.zeros((8, 7)); wrong[-2, P] = 0.9
    low = np.zeros((8, 7)); low[-2, T] = 0.4; low[-2, P] = 0.3
    acc, strict = embedded_reber.long_range_accuracy([right, both, wrong, low], [word] * 4)
    assert acc == 0.75  # argmax right for right, both and low
    assert strict == 0.25  # only "right" selects exactly T
    with pytest.raises(ValueError, match="shape"):
        embedded_reber.long_range_accuracy([np.zeros((3, 7))], [word])


# ------------------------------------------------------------- example mains


def test_reber_main_tiny(reber):
    out = reber.main(hidden_size=4, n_train=16, n_test=8, batch_size=8, epochs=2, n_samples=8,
                     mode=None, verbose=False)
    assert out["epochs"] == 2 and len(out["curve"]["loss"]) == 2
    for key in ("step_accuracy", "string_accuracy", "in_grammar"):
        assert 0.0 <= out[key] <= 1.0
    assert all(w.startswith("B") for w in out["samples"])
    assert out["compile_seconds"] > 0 and out["wall_seconds"] >= out["train_seconds"]


def test_embedded_reber_main_tiny(embedded_reber, capsys):
    # the LSTM without peepholes is the same code path as with them: left out to save two compiles
    out = embedded_reber.main(models=("lstm_peephole", "elman"), hidden_size=4, n_train=16, n_valid=8,
                              n_test=8, batch_size=8, max_epochs=2, mode=None, verbose=True)
    names = [r["model"] for r in out["results"]]
    assert names == ["lstm_peephole", "elman"] and out["n_test"] == 8
    for r in out["results"]:
        assert 0.0 <= r["thresholded_accuracy"] <= r["accuracy"] <= 1.0  # exactly-right implies most probable
        assert 1 <= r["epochs"] <= 2
        assert r["compile_seconds"] > 0
    printed = capsys.readouterr()
    assert "long-range accuracy" in printed.out
    assert "lstm_peephole" in printed.out + printed.err  # progress: plain lines, or a tqdm bar on stderr


@pytest.mark.parametrize("name", ["reber", "embedded_reber"])
def test_help(name, capsys):
    module = load_example(name)
    with pytest.raises(SystemExit) as exc:
        module.cli(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "--seed" in text and "--plot" in text and "--mode" in text


EXAMPLES = ["reber", "embedded_reber", "sine", "char_lm", "variable_length", "pendulum"]


@pytest.mark.parametrize("name", EXAMPLES)
@pytest.mark.parametrize("quiet", [False, True], ids=["verbose", "quiet"])
def test_cli_passes_every_option_to_main(name, quiet, monkeypatch, capsys):
    """Every command-line option reaches a parameter of ``main`` (defaults: the same
    values), and ``--quiet`` still prints the results."""
    import functools
    import inspect

    module = load_example(name)
    real = module.main
    calls = []

    @functools.wraps(real)  # same signature, so the option mapping sees main's parameters
    def fake(**kwargs):
        calls.append(kwargs)
        return {"fake": True}

    monkeypatch.setattr(module, "main", fake)
    if hasattr(module, "format_results"):
        monkeypatch.setattr(module, "format_results", lambda out: f"RESULTS {out}")
    assert module.cli(["--seed", "3"] + (["--quiet"] if quiet else [])) == {"fake": True}
    (kwargs,) = calls
    params = inspect.signature(real).parameters
    assert set(kwargs) <= set(params)
    assert kwargs["seed"] == 3 and kwargs["verbose"] is not quiet
    # the parser's defaults agree with main's own (other than the mode choice)
    for key, value in kwargs.items():
        default = params[key].default
        if key not in ("seed", "verbose", "mode", "plot") and default is not inspect.Parameter.empty:
            assert value == default or (isinstance(default, tuple) and tuple(value) == default), (key, value, default)
    printed = capsys.readouterr().out
    assert ("RESULTS" in printed) == (quiet and hasattr(module, "format_results"))


def test_run_main_refuses_an_option_main_does_not_take():
    import argparse

    common = load_example("reber")._common

    def main(seed=0, verbose=True):
        return {"seed": seed, "verbose": verbose}

    assert common.run_main(main, argparse.Namespace(seed=2, quiet=True)) == {"seed": 2, "verbose": False}
    with pytest.raises(TypeError, match=r"no parameter for the options \['bogus'\]"):
        common.run_main(main, argparse.Namespace(seed=2, quiet=False, bogus=1))


def test_embedded_reber_rejects_bad_arguments(embedded_reber):
    with pytest.raises(ValueError, match="models"):
        embedded_reber.main(models=["gru"], verbose=False)
    with pytest.raises(ValueError, match="hidden_size"):
        embedded_reber.main(hidden_size=0, verbose=False)


@pytest.mark.slow
def test_embedded_reber_lstm_reaches_criterion(embedded_reber):
    """The flagship at its default size: both LSTMs reach 99.9 % on 1,000 fresh strings."""
    out = embedded_reber.main(models=("lstm_peephole", "lstm"), verbose=False)
    for r in out["results"]:
        assert r["stopped_early"], r["model"]
        assert r["accuracy"] >= 0.999 and r["thresholded_accuracy"] >= 0.999, r
