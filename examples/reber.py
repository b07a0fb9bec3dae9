"""The Reber grammar: a data generator and the Elman-network tutorial.

The Reber grammar (Reber 1967) is a small finite automaton over the seven
symbols ``B T P S X V E``.  Every string starts with ``B`` and ends with ``E``;
in between, the automaton walks through six states, and at each state two
symbols are allowed (each drawn with probability 1/2 when generating):

.. code-block:: text

    state 0 --B--> 1
    state 1 --T--> 2        state 1 --P--> 3
    state 2 --S--> 2        state 2 --X--> 4
    state 3 --T--> 3        state 3 --V--> 5
    state 4 --X--> 3        state 4 --S--> 6
    state 5 --P--> 4        state 5 --V--> 6
    state 6 --E--> accept

e.g. ``BTXSE``, ``BPVVE``, ``BTSSXXTVVE``.  Because the two symbols leaving a
state are always different, the state is a function of the prefix read so far,
and so is the *set of allowed next symbols*.  A network trained to predict that
set (a multi-hot target, one sigmoid unit per symbol, as in Elman-style Reber
experiments) can in principle be perfect; this is "next-symbol prediction".

The *embedded* Reber grammar (Hochreiter & Schmidhuber 1997) wraps a Reber
string: ``B``, then ``T`` or ``P``, then a whole Reber string, then the same
``T`` or ``P`` again, then ``E``.  Predicting the second-to-last symbol needs
a memory of the second symbol across the whole inner string: the classic
long-range test that an LSTM passes and an Elman network does not (see
``embedded_reber.py``).

Run ``python examples/reber.py`` to train an Elman network
(:class:`theano_lstm.RNN`) on next-symbol prediction and then let it write
strings of its own, reporting the fraction that the grammar accepts.

Everything random takes a ``rng``: a :class:`numpy.random.Generator` or a seed.

References
----------
A. S. Reber, "Implicit learning of artificial grammars", Journal of Verbal
Learning and Verbal Behavior 6(6), 1967.
J. L. Elman, "Finding structure in time", Cognitive Science 14(2), 1990.
S. Hochreiter, J. Schmidhuber, "Long short-term memory", Neural Computation
9(8), 1997.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterable, Sequence

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

__all__ = [
    "SYMBOLS",
    "N_SYMBOLS",
    "REBER",
    "EMBEDDED_REBER",
    "Grammar",
    "generate_word",
    "generate_embedded_word",
    "get_one_example",
    "get_one_embedded_example",
    "get_n_examples",
    "get_n_embedded_examples",
    "word_to_indices",
    "one_hot",
    "next_symbol_targets",
    "allowed_next",
    "sequence_to_word",
    "in_grammar",
    "in_embedded_grammar",
    "build_model",
    "Trainer",
    "main",
]

#: The alphabet, in the order of the one-hot encoding.
SYMBOLS = "BTPSXVE"
#: Size of the alphabet (and of every one-hot / multi-hot vector).
N_SYMBOLS = len(SYMBOLS)
_INDEX = {s: i for i, s in enumerate(SYMBOLS)}


# ------------------------------------------------------------------ automata


class Grammar:
    """A deterministic finite automaton that generates and checks strings.

    Parameters
    ----------
    transitions : dict
        ``{state: {symbol: next_state}}``.  A state with no outgoing symbol
        is accepting.
    start : hashable
        The initial state.
    name : str
        Used in messages.

    Notes
    -----
    Generation is a random walk: at each state one of the outgoing symbols
    is drawn uniformly.  Every state of the Reber automata has at most two,
    distinct, outgoing symbols, so the state reached after a prefix, and the
    set of symbols allowed next, are functions of the prefix.
    """

    def __init__(self, transitions: dict, start, name: str):
        self.transitions = {q: dict(edges) for q, edges in transitions.items()}
        self.start = start
        self.name = name
        for q, edges in self.transitions.items():
            for symbol, target in edges.items():
                if symbol not in _INDEX:
                    raise ValueError(f"{name}: symbol {symbol!r} of state {q!r} is not one of {SYMBOLS!r}")
                if target not in self.transitions:
                    raise ValueError(f"{name}: state {q!r} leads to unknown state {target!r}")
        # per state: symbols in a fixed order (for generation), as an array of targets
        self._choices = {q: tuple(edges.items()) for q, edges in self.transitions.items()}

    def walk(self, word: str):
        """The states visited while reading ``word`` (``len(word) + 1`` of them), or ``None``.

        ``None`` means some symbol of ``word`` is not allowed where it occurs.
        The walk does not require ``word`` to be complete.
        """
        q = self.start
        states = [q]
        for symbol in word:
            q = self.transitions[q].get(symbol)
            if q is None:
                return None
            states.append(q)
        return states

    def accepts(self, word: str) -> bool:
        """Whether ``word`` is a complete string of the grammar."""
        if not isinstance(word, str):
            raise TypeError(f"word must be a str of symbols from {SYMBOLS!r}, received {type(word).__name__}")
        states = self.walk(word)
        return states is not None and not self.transitions[states[-1]]

    def allowed(self, prefix: str) -> str:
        """The symbols allowed after ``prefix`` (in :data:`SYMBOLS` order); ``""`` after a complete string.

        Raises
        ------
        ValueError
            ``prefix`` is not a prefix of any string of the grammar.
        """
        states = self.walk(prefix)
        if states is None:
            raise ValueError(f"{prefix!r} is not a prefix of the {self.name} grammar")
        edges = self.transitions[states[-1]]
        return "".join(s for s in SYMBOLS if s in edges)

    def generate(self, rng: np.random.Generator) -> str:
        """One string drawn by a uniform random walk from the start state."""
        q, out = self.start, []
        while True:
            choices = self._choices[q]
            if not choices:
                return "".join(out)
            symbol, q = choices[0] if len(choices) == 1 else choices[int(rng.random() * len(choices))]
            out.append(symbol)


# States 1..6 are the six states of the Reber automaton, 0 is "before B" and
# 7 is "after E" (accepting).
REBER = Grammar(
    {
        0: {"B": 1},
        1: {"T": 2, "P": 3},
        2: {"S": 2, "X": 4},
        3: {"T": 3, "V": 5},
        4: {"X": 3, "S": 6},
        5: {"P": 4, "V": 6},
        6: {"E": 7},
        7: {},
    },
    start=0,
    name="Reber",
)


def _embed(inner: Grammar) -> Grammar:
    """The embedded grammar ``B (T inner T | P inner P) E`` built from ``inner``."""
    accept_inner = [q for q, edges in inner.transitions.items() if not edges]
    table: dict = {"start": {"B": "branch"}, "branch": {"T": ("T", inner.start), "P": ("P", inner.start)}}
    for branch in "TP":
        for q, edges in inner.transitions.items():
            if q in accept_inner:
                continue
            table[(branch, q)] = {
                s: (("close", branch) if target in accept_inner else (branch, target)) for s, target in edges.items()
            }
        table[("close", branch)] = {branch: "end"}
    table["end"] = {"E": "accept"}
    table["accept"] = {}
    return Grammar(table, start="start", name="embedded " + inner.name)


#: The embedded Reber grammar: ``B``, ``T`` or ``P``, a Reber string, the same ``T``/``P``, ``E``.
EMBEDDED_REBER = _embed(REBER)


def _rng(rng) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be a numpy.random.Generator, an int seed or None, received {type(rng).__name__}")


def _check_lengths(min_length, max_length):
    if isinstance(min_length, bool) or not isinstance(min_length, (int, np.integer)) or min_length < 0:
        raise ValueError(f"min_length must be an int >= 0, received {min_length!r}")
    if max_length is not None:
        if isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer)):
            raise ValueError(f"max_length must be an int or None, received {max_length!r}")
        if max_length < max(min_length, 5):
            raise ValueError(
                f"max_length must be at least max(min_length, 5) (the shortest Reber string has 5 symbols), "
                f"received max_length={max_length} with min_length={min_length}"
            )


def _draw(grammar: Grammar, rng, min_length: int, max_length: int | None) -> str:
    _check_lengths(min_length, max_length)
    rng = _rng(rng)
    while True:  # rejection sampling: the length distribution has a geometric tail
        word = grammar.generate(rng)
        if len(word) >= min_length and (max_length is None or len(word) <= max_length):
            return word


def generate_word(rng=None, min_length: int = 0, max_length: int | None = None) -> str:
    """A random Reber string of ``min_length`` to ``max_length`` symbols (``B`` and ``E`` included).

    Strings are drawn by the uniform random walk of :class:`Grammar` and
    rejected until their length is in range.

    Examples
    --------
    >>> word = generate_word(np.random.default_rng(0), min_length=8)
    >>> len(word) >= 8 and in_grammar(word)
    True
    """
    return _draw(REBER, rng, min_length, max_length)


def generate_embedded_word(rng=None, min_length: int = 0, max_length: int | None = None) -> str:
    """A random embedded Reber string; the lengths count the whole string.

    Examples
    --------
    >>> word = generate_embedded_word(np.random.default_rng(0))
    >>> word[1] == word[-2] and in_embedded_grammar(word)
    True
    """
    if max_length is not None and max_length < 9:
        raise ValueError(f"max_length must be at least 9 for the embedded grammar, received {max_length}")
    return _draw(EMBEDDED_REBER, rng, min_length, max_length)


# ------------------------------------------------------------------ encodings


def word_to_indices(word: str) -> np.ndarray:
    """Symbol indices of ``word`` (into :data:`SYMBOLS`), an int64 array.

    Raises
    ------
    ValueError
        A character that is not one of :data:`SYMBOLS`.
    """
    if not isinstance(word, str):
        raise TypeError(f"word must be a str of symbols from {SYMBOLS!r}, received {type(word).__name__}")
    try:
        return np.array([_INDEX[s] for s in word], dtype=np.int64)
    except KeyError as exc:
        raise ValueError(f"{word!r} contains {exc.args[0]!r}, which is not one of {SYMBOLS!r}") from None


def one_hot(word: str, dtype="float32") -> np.ndarray:
    """One-hot encoding of ``word``, shape ``(len(word), 7)``.

    >>> one_hot("BE").astype(int)
    array([[1, 0, 0, 0, 0, 0, 0],
           [0, 0, 0, 0, 0, 0, 1]])
    """
    idx = word_to_indices(word)
    out = np.zeros((len(idx), N_SYMBOLS), dtype=dtype)
    out[np.arange(len(idx)), idx] = 1
    return out


def next_symbol_targets(word: str, embedded: bool = False, dtype="float32") -> np.ndarray:
    """Multi-hot sets of allowed next symbols, shape ``(len(word) - 1, 7)``.

    Row ``t`` marks every symbol the grammar allows right after
    ``word[: t + 1]``; the last row is therefore ``E`` alone.  These are the
    targets of next-symbol prediction for the inputs ``one_hot(word[:-1])``.

    Raises
    ------
    ValueError
        ``word`` is not a complete string of the grammar.

    Examples
    --------
    >>> next_symbol_targets("BTXSE")[:2].astype(int)  # after B: T or P; after BT: S or X
    array([[0, 1, 1, 0, 0, 0, 0],
           [0, 0, 0, 1, 1, 0, 0]])
    """
    grammar = EMBEDDED_REBER if embedded else REBER
    if not grammar.accepts(word):
        raise ValueError(f"{word!r} is not a string of the {grammar.name} grammar")
    states = grammar.walk(word)
    out = np.zeros((len(word) - 1, N_SYMBOLS), dtype=dtype)
    for t, q in enumerate(states[1:-1]):
        for symbol in grammar.transitions[q]:
            out[t, _INDEX[symbol]] = 1
    return out


def allowed_next(prefix: str, embedded: bool = False) -> str:
    """The symbols allowed after ``prefix``, e.g. ``allowed_next("B") == "TP"``."""
    return (EMBEDDED_REBER if embedded else REBER).allowed(prefix)


def sequence_to_word(sequence) -> str:
    """The string of a one-hot sequence ``(time, 7)`` or of symbol indices ``(time,)``.

    A one-hot row is read by its largest entry, so network outputs can be
    decoded too.

    >>> sequence_to_word(one_hot("BTXSE"))
    'BTXSE'
    >>> sequence_to_word([0, 2, 5, 5, 6])
    'BPVVE'
    """
    arr = np.asarray(sequence)
    if arr.ndim == 2:
        if arr.shape[1] != N_SYMBOLS:
            raise ValueError(f"a one-hot sequence must have {N_SYMBOLS} columns, received shape {arr.shape}")
        arr = arr.argmax(axis=1)
    elif arr.ndim != 1:
        raise ValueError(f"sequence must be (time, {N_SYMBOLS}) one-hot rows or (time,) indices, received shape {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= N_SYMBOLS):
        raise ValueError(f"symbol indices must be in 0..{N_SYMBOLS - 1}, received {arr.min()}..{arr.max()}")
    return "".join(SYMBOLS[int(i)] for i in arr)


def in_grammar(word: str) -> bool:
    """Whether ``word`` is a (complete) Reber string.

    >>> in_grammar("BTSSXXTVVE"), in_grammar("BTSSXXTVE")
    (True, False)
    """
    return REBER.accepts(word)


def in_embedded_grammar(word: str) -> bool:
    """Whether ``word`` is a (complete) embedded Reber string.

    >>> in_embedded_grammar("BTBTXSETE"), in_embedded_grammar("BTBTXSEPE")
    (True, False)
    """
    return EMBEDDED_REBER.accepts(word)


def get_one_example(min_length: int = 0, rng=None, max_length: int | None = None, dtype="float32"):
    """One training pair for next-symbol prediction on the Reber grammar.

    Returns
    -------
    inputs : ndarray ``(T, 7)``
        One-hot symbols of the string without its final ``E``.
    targets : ndarray ``(T, 7)``
        Multi-hot sets of allowed next symbols (:func:`next_symbol_targets`).

    The string has ``T + 1`` symbols, ``min_length <= T + 1 <= max_length``.
    """
    word = generate_word(rng, min_length, max_length)
    return one_hot(word[:-1], dtype), next_symbol_targets(word, dtype=dtype)


def get_one_embedded_example(min_length: int = 0, rng=None, max_length: int | None = None, dtype="float32"):
    """As :func:`get_one_example`, for the embedded Reber grammar."""
    word = generate_embedded_word(rng, min_length, max_length)
    return one_hot(word[:-1], dtype), next_symbol_targets(word, embedded=True, dtype=dtype)


def _check_n(n):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be an int >= 0, received {n!r}")


def get_n_examples(n: int, min_length: int = 0, rng=None, max_length: int | None = None, dtype="float32") -> list:
    """``n`` pairs ``(inputs, targets)`` from :func:`get_one_example`, drawn from one generator.

    >>> pairs = get_n_examples(3, 6, rng=0)
    >>> [sequence_to_word(x)[0] for x, _ in pairs]
    ['B', 'B', 'B']
    """
    _check_n(n)
    rng = _rng(rng)
    return [get_one_example(min_length, rng, max_length, dtype) for _ in range(n)]


def get_n_embedded_examples(n: int, min_length: int = 0, rng=None, max_length: int | None = None, dtype="float32") -> list:
    """``n`` pairs ``(inputs, targets)`` from :func:`get_one_embedded_example`."""
    _check_n(n)
    rng = _rng(rng)
    return [get_one_embedded_example(min_length, rng, max_length, dtype) for _ in range(n)]
