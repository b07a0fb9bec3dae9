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
from collections.abc import Sequence

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
    "sample_words",
    "step_accuracy",
    "string_accuracy",
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


# ------------------------------------------------------------------- models


def build_model(cell: str, hidden_size: int, rng=None, peepholes: bool = False, forget_bias: float = 1.0):
    """A one-layer recurrent network with a 7-unit output head for next-symbol prediction.

    Parameters
    ----------
    cell : {"elman", "lstm"}
        :class:`theano_lstm.RNN` (tanh Elman cell) or :class:`theano_lstm.LSTM`.
    hidden_size : int
    rng : Generator or int, optional
        Seed of the initial weights.
    peepholes, forget_bias
        LSTM options (ignored for ``"elman"``).

    Returns
    -------
    theano_lstm.StackedCells
        ``layers[0]`` the recurrent cell, ``layers[1]`` the head: a
        :class:`theano_lstm.Layer` with a ``"linear"`` activation whose outputs
        are the *logits* of seven independent sigmoid units.  The sigmoid is
        applied by the loss (``binary_crossentropy(..., from_logits=True)``,
        the numerically stable form) and by :class:`Trainer.predict`.
    """
    import theano_lstm as tl

    rng = _rng(rng)
    if cell == "elman":
        model = tl.StackedCells(N_SYMBOLS, celltype=tl.RNN, layers=[hidden_size], activation="tanh", rng=rng)
    elif cell == "lstm":
        model = tl.StackedCells(
            N_SYMBOLS, celltype=tl.LSTM, layers=[hidden_size], rng=rng, peepholes=peepholes, forget_bias=forget_bias
        )
    else:
        raise ValueError(f"cell must be 'elman' or 'lstm', received {cell!r}")
    model.layers.append(tl.Layer(hidden_size, N_SYMBOLS, "linear", rng=rng, name="head"))
    return model


def _quiet_jax_warnings() -> None:
    """Silence two kinds of harmless warnings PyTensor's JAX backend prints at every compile."""
    import warnings

    warnings.filterwarnings("ignore", message="Skipping Assert", category=UserWarning)
    warnings.filterwarnings("ignore", message="Explicitly requested dtype", category=UserWarning)


class Trainer:
    """Compiled training and prediction for next-symbol prediction with multi-hot targets.

    The graph is the runner form: ``model.scan(x, mask=m)`` over a
    time-major batch ``x`` ``(time, batch, 7)`` with mask ``m``
    ``(time, batch)``, binary cross-entropy of the logits against the
    multi-hot targets ``y`` averaged over the valid steps
    (:func:`theano_lstm.losses.binary_crossentropy`), and an update rule from
    :mod:`theano_lstm.optimizers`.  Two functions are compiled: one training
    step and one prediction.

    Parameters
    ----------
    model : StackedCells
        From :func:`build_model`.
    optimizer : str, default "sgd"
        An update rule of :mod:`theano_lstm.optimizers` (one of its ``METHODS``).
    lr : float, default 1.0
        Learning rate (``adadelta``: its multiplier, normally 1).
    clip : float or None
        Rescale the gradients jointly to a global norm of at most ``clip``.
    mode : str, optional
        Compile mode (see ``_common.resolve_mode``).
    pad_length : int, optional
        With static shapes (JAX), pad every batch to this many steps so that
        one function serves all batches (default: each call's longest
        sequence).  Ignored in other modes, where each batch is padded to its
        own longest sequence.

    Attributes
    ----------
    seconds : dict
        Wall-clock seconds spent compiling (graph rewriting, code generation,
        and in JAX mode the first call for each input shape), training and
        predicting.
    static_shapes : bool
        Whether the mode compiles one function per input shape (JAX): then
        every batch is padded to a fixed length and batch size.
    """

    def __init__(self, model, optimizer: str = "sgd", lr: float = 1.0, clip: float | None = None, mode=None,
                 pad_length: int | None = None):
        import pytensor
        import pytensor.tensor as pt

        from theano_lstm import backend, losses, optimizers

        if optimizer not in optimizers.METHODS:
            raise ValueError(f"unknown optimizer {optimizer!r}; expected one of {list(optimizers.METHODS)}")
        self.model = model
        self.mode = _common.resolve_mode(mode)
        if self.mode in ("jax", "gpu"):
            _quiet_jax_warnings()
        self.pad_length = pad_length
        self.seconds = {"compile": 0.0, "train": 0.0, "predict": 0.0}
        start = time.perf_counter()
        dtype = backend.floatX()
        x = pt.tensor3("x", dtype=dtype)
        y = pt.tensor3("y", dtype=dtype)
        m = pt.matrix("mask", dtype=dtype)
        logits = model.scan(x, mask=m).outputs
        cost = losses.binary_crossentropy(logits, y, mask=m, reduction="mean")
        params = model.params
        grads = pytensor.grad(cost, params)
        if clip is not None:
            grads = optimizers.clip_global_norm(grads, clip)
        rule = getattr(optimizers, optimizer)
        updates = rule(grads, params, lr=lr)
        self._train = backend.function([x, y, m], cost, updates=updates, mode=self.mode)
        self._predict = backend.function([x, m], pt.sigmoid(logits), mode=self.mode)
        # JAX mode compiles one function per input shape (backend.ShapeSpecializedFunction)
        self.static_shapes = isinstance(self._train, backend.ShapeSpecializedFunction)
        self.seconds["compile"] += time.perf_counter() - start

    def _length(self, lengths):
        if not self.static_shapes:
            return None
        return max(max(lengths), self.pad_length or 0)

    def _call(self, fn, key, *args):
        compiled = getattr(fn, "compiled", None)
        before = None if compiled is None else len(compiled)
        start = time.perf_counter()
        out = fn(*args)
        elapsed = time.perf_counter() - start
        if before is not None and len(compiled) > before:
            key = "compile"  # the first call for a new shape traces and compiles
        self.seconds[key] += elapsed
        return out

    def train_epoch(self, inputs: Sequence, targets: Sequence, batch_size: int, rng) -> float:
        """One pass over the examples in shuffled minibatches; returns the mean loss per valid step."""
        rng = _rng(rng)
        lengths = [len(s) for s in inputs]
        length = self._length(lengths)
        size = batch_size if self.static_shapes else None
        total, steps = 0.0, 0
        for idx in _common.minibatches(lengths, batch_size, rng):
            x, m = _common.pad_batch([inputs[i] for i in idx], length, size)
            y, _ = _common.pad_batch([targets[i] for i in idx], length, size)
            cost = float(np.asarray(self._call(self._train, "train", x, y, m)))
            if not np.isfinite(cost):
                raise FloatingPointError(
                    f"the training loss is {cost}; lower the learning rate or clip the gradients (clip=...)"
                )
            n = float(m.sum())
            total += cost * n
            steps += n
        return total / max(steps, 1.0)

    def predict(self, inputs: Sequence, batch_size: int = 500) -> list:
        """Per sequence, the predicted probabilities of each symbol coming next, ``(T_i, 7)``."""
        length = self._length([len(s) for s in inputs])
        out = []
        for start in range(0, len(inputs), batch_size):
            chunk = list(inputs[start : start + batch_size])
            size = batch_size if self.static_shapes and len(inputs) > batch_size else None
            x, m = _common.pad_batch(chunk, length, size)
            p = np.asarray(self._call(self._predict, "predict", x, m))
            out += [p[: len(s), j] for j, s in enumerate(chunk)]
        return out


def step_accuracy(probabilities: Sequence, targets: Sequence) -> float:
    """Fraction of steps whose thresholded prediction (``p > 0.5``) equals the allowed set exactly."""
    hits = sum(int(((p > 0.5) == (t > 0.5)).all(axis=1).sum()) for p, t in zip(probabilities, targets))
    return hits / max(1, sum(len(t) for t in targets))


def string_accuracy(probabilities: Sequence, targets: Sequence) -> float:
    """Fraction of strings predicted exactly at every step (thresholded at 0.5)."""
    hits = sum(int(((p > 0.5) == (t > 0.5)).all()) for p, t in zip(probabilities, targets))
    return hits / max(1, len(targets))


# ------------------------------------------------------------------ tutorial


def sample_words(model, n_samples: int, max_steps: int = 50, temperature: float = 1.0, seed=None, mode=None) -> list:
    """Let a trained model write ``n_samples`` strings, starting from ``B``.

    Uses :class:`theano_lstm.sampling.Sampler`: a compiled loop over
    ``model.forward`` that feeds each drawn symbol back as the next one-hot
    input and stops a string at its ``E``.  The symbol is drawn from the
    softmax of the head's logits divided by ``temperature``; the allowed
    symbols, whose logits are high, share almost all the mass.

    Returns
    -------
    list of str
        Each starting with ``B``; a string that did not reach ``E`` within
        ``max_steps`` symbols is returned unfinished (and is not in the grammar).
    """
    from theano_lstm.sampling import Sampler

    sampler = Sampler(model, mode=_common.resolve_mode(mode), seed=seed)
    out = sampler.generate(max_steps, prime=[_INDEX["B"]], n_samples=n_samples, stop_symbol=_INDEX["E"],
                           temperature=temperature)
    return ["B" + sequence_to_word(tokens[:length]) for tokens, length in zip(out.tokens, out.lengths)]


def main(
    hidden_size: int = 12,
    n_train: int = 1000,
    n_test: int = 500,
    batch_size: int = 16,
    optimizer: str = "sgd",
    lr: float = 1.0,
    epochs: int = 10,
    min_length: int = 0,
    max_length: int | None = None,
    n_samples: int = 1000,
    temperature: float = 1.0,
    seed: int = 0,
    mode="auto",
    plot: str | None = None,
    verbose: bool = True,
) -> dict:
    """Train an Elman network on Reber next-symbol prediction, then sample strings from it.

    Parameters
    ----------
    hidden_size : int
        Hidden units of the Elman cell.
    n_train, n_test : int
        Training strings and held-out strings for the prediction accuracies.
    batch_size : int
        Strings per minibatch.
    optimizer : str
        Update rule from :mod:`theano_lstm.optimizers` (plain SGD by default).
    lr : float
        Learning rate (the loss is the mean cross-entropy per valid step).
    epochs : int
        Passes over the training strings.
    min_length, max_length : int
        Range of string lengths, ``B`` and ``E`` included.
    n_samples : int
        Strings to sample from the trained network.
    temperature : float
        Sampling temperature (1: the network's own distribution).
    seed : int
        Seeds data, initial weights and sampling.
    mode : str or None
        ``"auto"`` (jax when installed, else the library default), ``None``
        (the library default) or a name of :data:`theano_lstm.backend.MODE_NAMES`.
    plot : str, optional
        Path of a learning-curve PNG (needs matplotlib).
    verbose : bool
        Print per-epoch progress and the results.

    Returns
    -------
    dict
        ``step_accuracy`` (fraction of test steps whose thresholded prediction
        is exactly the allowed set), ``string_accuracy`` (test strings right
        at every step), ``in_grammar`` (fraction of sampled strings the grammar
        accepts), ``samples`` (a few sampled strings), ``epochs``,
        ``compile_seconds``, ``train_seconds``, ``wall_seconds``, ``curve``
        and ``mode``.

    Notes
    -----
    Sets ``pytensor.config.floatX = "float32"`` (:func:`theano_lstm.use_float32`)
    for the rest of the process.
    """
    import theano_lstm as tl

    start = time.perf_counter()
    for name, value in (("hidden_size", hidden_size), ("n_train", n_train), ("n_test", n_test),
                        ("batch_size", batch_size), ("epochs", epochs), ("n_samples", n_samples)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{name} must be a positive int, received {value!r}")
    tl.use_float32()
    mode = _common.resolve_mode(mode)
    data_seed, test_seed, model_seed, train_seed, sample_seed = np.random.SeedSequence(seed).spawn(5)
    train = get_n_examples(n_train, min_length, np.random.default_rng(data_seed), max_length)
    test = get_n_examples(n_test, min_length, np.random.default_rng(test_seed), max_length)
    train_x, train_y = [x for x, _ in train], [y for _, y in train]
    test_x, test_y = [x for x, _ in test], [y for _, y in test]
    if verbose:
        print(f"Reber grammar: {n_train} training strings, {n_test} test strings; Elman network with "
              f"{hidden_size} hidden units, {optimizer} lr={lr}; mode {mode!r}, seed {seed}")
    model = build_model("elman", hidden_size, np.random.default_rng(model_seed))
    pad = max(len(x) for x in train_x + test_x)
    trainer = Trainer(model, optimizer=optimizer, lr=lr, mode=mode, pad_length=pad)
    rng = np.random.default_rng(train_seed)
    curve = {"loss": [], "test step accuracy": []}
    progress = _common.EpochProgress(epochs, "elman", enabled=verbose)
    try:
        for epoch in range(1, epochs + 1):
            loss = trainer.train_epoch(train_x, train_y, batch_size, rng)
            acc = step_accuracy(trainer.predict(test_x), test_y)
            curve["loss"].append(loss)
            curve["test step accuracy"].append(acc)
            progress.update(epoch, loss=loss, step_acc=acc)
    finally:
        progress.close()
    probabilities = trainer.predict(test_x)
    compile_before = time.perf_counter()
    words = sample_words(model, n_samples, temperature=temperature, seed=int(sample_seed.generate_state(1)[0]), mode=mode)
    sample_seconds = time.perf_counter() - compile_before
    result = {
        "step_accuracy": step_accuracy(probabilities, test_y),
        "string_accuracy": string_accuracy(probabilities, test_y),
        "in_grammar": float(np.mean([in_grammar(w) for w in words])),
        "samples": words[:10],
        "epochs": epochs,
        "compile_seconds": trainer.seconds["compile"],
        "train_seconds": trainer.seconds["train"],
        "sample_seconds": sample_seconds,
        "wall_seconds": time.perf_counter() - start,
        "curve": curve,
        "mode": mode,
    }
    if verbose:
        print(f"test steps predicted exactly: {100 * result['step_accuracy']:.1f} %; "
              f"test strings right at every step: {100 * result['string_accuracy']:.1f} %")
        print(f"sampled strings in the grammar: {100 * result['in_grammar']:.1f} % of {n_samples}, e.g. "
              + ", ".join(words[:5]))
        print(f"wall time {result['wall_seconds']:.1f} s (compile {result['compile_seconds']:.1f} s, "
              f"train {result['train_seconds']:.1f} s, sampling incl. its compile {sample_seconds:.1f} s)")
    _common.save_learning_curves({"elman": curve}, plot, title="Reber grammar, Elman network")
    return result


def _parser() -> argparse.ArgumentParser:
    from theano_lstm import optimizers

    p = argparse.ArgumentParser(
        description="Train an Elman network on next-symbol prediction for the Reber grammar, then sample "
        "strings from it and report how many the grammar accepts.",
    )
    _common.add_common_arguments(p, mode_default="auto")
    p.add_argument("--hidden-size", type=_common.positive_int, default=12, help="default %(default)s")
    p.add_argument("--n-train", type=_common.positive_int, default=1000, help="training strings (default %(default)s)")
    p.add_argument("--n-test", type=_common.positive_int, default=500, help="test strings (default %(default)s)")
    p.add_argument("--batch-size", type=_common.positive_int, default=16, help="default %(default)s")
    p.add_argument("--optimizer", choices=optimizers.METHODS, default="sgd", help="default %(default)s")
    p.add_argument("--lr", type=_common.positive_float, default=1.0, help="learning rate (default %(default)s)")
    p.add_argument("--epochs", type=_common.positive_int, default=10, help="default %(default)s")
    p.add_argument("--min-length", type=int, default=0, help="shortest string (default: no minimum)")
    p.add_argument("--max-length", type=int, default=None, help="longest string (default: no maximum)")
    p.add_argument("--n-samples", type=_common.positive_int, default=1000, help="strings to sample (default %(default)s)")
    p.add_argument("--temperature", type=_common.positive_float, default=1.0, help="sampling temperature (default %(default)s)")
    return p


def cli(argv=None) -> dict:
    """Parse ``argv`` (default ``sys.argv[1:]``) and run :func:`main`; returns what it returned."""
    args = _parser().parse_args(argv)
    return _common.run_main(main, args)


if __name__ == "__main__":
    cli()
