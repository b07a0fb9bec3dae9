"""Character-level language model: a two-layer GRU trained with truncated BPTT.

The network reads a text one character at a time and predicts the next one.
It is a :class:`theano_lstm.StackedCells` of

* an :class:`theano_lstm.Embedding` (character index -> vector), inserted at
  index 0,
* two recurrent layers (:class:`theano_lstm.GRU` by default, ``--cell lstm``
  for :class:`theano_lstm.LSTM`),
* a linear :class:`theano_lstm.Layer` head whose outputs are the logits of
  the next character,

trained with :func:`theano_lstm.optimizers.rmsprop` on the cross-entropy of
the logits (:func:`theano_lstm.losses.categorical_crossentropy`), the
gradients jointly rescaled to a bounded norm
(:func:`theano_lstm.optimizers.clip_global_norm`), with a little dropout
between the layers (masks from :func:`theano_lstm.dropout.dropout_masks`).

Truncated backpropagation through time
--------------------------------------
The training text is cut into ``batch_size`` equal parts, read side by side
as the columns of a time-major ``(time, batch)`` matrix of character
indices.  Training walks down that matrix ``bptt`` steps at a time.  The
recurrent states reached at the end of one chunk
(:attr:`theano_lstm.SequenceResult.final_states`, returned by the compiled
training function as NumPy arrays) are fed back as the ``initial_states`` of
the next chunk, so each column is read as one long sequence while gradients
flow back at most ``bptt`` steps.  Every chunk has the same shape, so one
compiled training function serves them all (JAX mode compiles it once).

Data
----
``--corpus anthology`` (default) is a 40 KB anthology of public-domain
English texts shipped with the package (``theano_lstm/data/anthology.txt``):
Genesis 1 and two other passages of the King James Bible, seven Shakespeare
sonnets and Hamlet's soliloquy, poems by Blake, Shelley, Carroll and Poe,
the Gettysburg Address, excerpts of the Declaration of Independence, the
openings of *Pride and Prejudice* and *A Tale of Two Cities*, and the first
chapter of *Alice's Adventures in Wonderland*.  ``--corpus pydoc`` is a
bigger run on the 465 KB of the Python documentation's topic pages that ship
with the standard library (``pydoc_data.topics``); nothing is downloaded.
The last ``valid_fraction`` of the text is held out for validation.

Results
-------
The script reports the validation **bits per character** (bpc: the
cross-entropy in base 2, lower is better) next to two baselines estimated on
the training part: a unigram model (character frequencies, add-one
smoothed) and a bigram model (Witten-Bell smoothed).  Training keeps the
parameters of the epoch with the lowest validation bpc (early stopping) and
reports that epoch.  Then the network writes text: a
:class:`theano_lstm.sampling.Sampler` feeds a prime string and samples each
next character from the softmax of the logits divided by a temperature.

Run ``python examples/char_lm.py`` (``--help`` for options).  ``--mode auto``
(the default) compiles with JAX when it is installed: here an epoch of this
model at batch 32 took about 3 s with JAX against 90 s with the library's
default C backend (pip-installed PyTensor has no BLAS for it).  The default
run (25 epochs, about 1.5 minutes on 2 cores) reaches about 2.7 bits per
character on the held-out text, against 4.4 for the unigram and 3.5 for the
bigram baseline.  On the bigger corpus, ``--corpus pydoc --batch-size 32
--epochs 4`` took about 3 minutes to reach 2.2 bits per character (unigram
4.7, bigram 3.3), still improving.

References
----------
A. Karpathy, "The unreasonable effectiveness of recurrent neural networks",
2015 (char-rnn).
D. Britz, "Recurrent neural network tutorial, part 4: implementing a GRU/LSTM
RNN with Python and Theano", WildML, 2015.
I. Sutskever, J. Martens, G. Hinton, "Generating text with recurrent neural
networks", ICML 2011.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

__all__ = [
    "CORPORA",
    "CELLS",
    "DATA_FILE",
    "load_text",
    "Vocabulary",
    "split_text",
    "training_streams",
    "evaluation_streams",
    "unigram_bpc",
    "bigram_bpc",
    "build_model",
    "CharTrainer",
    "generate_text",
    "main",
    "cli",
]

#: Corpus names accepted by ``corpus=`` / ``--corpus``.
CORPORA = ("anthology", "pydoc")
#: Recurrent cells accepted by ``cell=`` / ``--cell``.
CELLS = ("gru", "lstm")
#: The shipped text, in the ``theano_lstm/data`` folder of the package.
DATA_FILE = "anthology.txt"

_LN2 = math.log(2.0)


# ----------------------------------------------------------------------- data


def load_text(corpus: str = "anthology", max_chars: int | None = None) -> str:
    """The text of a corpus.

    Parameters
    ----------
    corpus : {"anthology", "pydoc"}
        ``"anthology"``: the public-domain texts shipped as package data
        (``theano_lstm/data/anthology.txt``, read with
        :mod:`importlib.resources`).  ``"pydoc"``: the topic pages of the
        Python documentation bundled with the standard library
        (``pydoc_data.topics.topics``), joined in the order of their keys.
    max_chars : int, optional
        Keep only the first ``max_chars`` characters.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        Unknown corpus name or a non-positive ``max_chars``.

    Examples
    --------
    >>> load_text()[:28]
    'THE FIRST CHAPTER OF GENESIS'
    >>> len(load_text("anthology", max_chars=100))
    100
    """
    if corpus == "anthology":
        from importlib import resources

        text = resources.files("theano_lstm").joinpath("data", DATA_FILE).read_text(encoding="utf-8")
    elif corpus == "pydoc":
        from pydoc_data.topics import topics

        text = "\n\n".join(topics[key].strip("\n") for key in sorted(topics)) + "\n"
    else:
        raise ValueError(f"unknown corpus {corpus!r}; expected one of {list(CORPORA)}")
    if max_chars is not None:
        if isinstance(max_chars, bool) or not isinstance(max_chars, (int, np.integer)) or max_chars <= 0:
            raise ValueError(f"max_chars must be a positive int, received {max_chars!r}")
        text = text[: int(max_chars)]
    return text


class Vocabulary:
    """The characters of a text, each mapped to an index (sorted order).

    Parameters
    ----------
    text : str
        Every character that may be encoded must occur in it.

    Attributes
    ----------
    chars : list of str
        ``chars[i]`` is the character of index ``i``.

    Examples
    --------
    >>> vocab = Vocabulary("abca")
    >>> vocab.chars, vocab.encode("cab").tolist(), vocab.decode([2, 0])
    (['a', 'b', 'c'], [2, 0, 1], 'ca')
    """

    def __init__(self, text: str):
        if not isinstance(text, str) or not text:
            raise ValueError("a vocabulary needs a non-empty text")
        self.chars = sorted(set(text))
        self._index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """Indices of the characters of ``text`` (int32).

        Raises
        ------
        ValueError
            A character that is not in the vocabulary.
        """
        unknown = sorted(set(text) - set(self._index))
        if unknown:
            raise ValueError(
                f"characters {''.join(unknown)!r} are not in the vocabulary of this text "
                f"({len(self.chars)} characters)"
            )
        return np.fromiter((self._index[c] for c in text), dtype=np.int32, count=len(text))

    def decode(self, indices) -> str:
        """The characters of ``indices``."""
        return "".join(self.chars[int(i)] for i in np.ravel(indices))


def split_text(ids: np.ndarray, valid_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Split encoded text into a training head and a held-out validation tail.

    Examples
    --------
    >>> train, valid = split_text(np.arange(10), 0.2)
    >>> train.tolist(), valid.tolist()
    ([0, 1, 2, 3, 4, 5, 6, 7], [8, 9])
    """
    if not 0 < valid_fraction < 1:
        raise ValueError(f"valid_fraction must be in (0, 1), received {valid_fraction!r}")
    ids = np.asarray(ids)
    n_valid = int(round(len(ids) * valid_fraction))
    if n_valid < 2 or len(ids) - n_valid < 2:
        raise ValueError(
            f"a text of {len(ids)} characters is too short to hold out {valid_fraction:g} of it "
            "(each part needs at least 2 characters)"
        )
    return ids[:-n_valid], ids[-n_valid:]


def training_streams(ids: np.ndarray, batch_size: int, bptt: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut a text into ``batch_size`` parallel streams, time-major, for truncated BPTT.

    Column ``j`` holds the ``j``-th of ``batch_size`` consecutive parts of the
    text; the targets are the inputs shifted by one character.  Each stream
    is trimmed to a whole number of ``bptt``-step chunks (at most
    ``bptt - 1`` characters per stream are left out), so every chunk has the
    same shape.

    Parameters
    ----------
    ids : int array ``(n,)``
        The encoded text.
    batch_size : int
        Number of streams.
    bptt : int
        Chunk length.

    Returns
    -------
    inputs, targets : int32 arrays ``(n_chunks * bptt, batch_size)``

    Raises
    ------
    ValueError
        The text is too short for one chunk per stream.

    Examples
    --------
    >>> x, y = training_streams(np.arange(13), batch_size=2, bptt=3)
    >>> x.T.tolist(), y.T.tolist()
    ([[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]], [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]])
    """
    ids = np.asarray(ids, dtype=np.int32)
    per_stream = (len(ids) - 1) // batch_size
    steps = (per_stream // bptt) * bptt
    if steps == 0:
        raise ValueError(
            f"the training text ({len(ids)} characters) is too short for batch_size={batch_size} "
            f"streams of at least bptt={bptt} steps; lower batch_size or bptt"
        )
    starts = np.arange(batch_size) * per_stream
    index = starts[None, :] + np.arange(steps)[:, None]
    return ids[index], ids[index + 1]


def evaluation_streams(ids: np.ndarray, n_streams: int, bptt: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Like :func:`training_streams` but covering every character, with a mask.

    The text is cut into ``n_streams`` parts of ``ceil((n - 1) / n_streams)``
    predictions each (the last part shorter), padded at the end to a whole
    number of ``bptt``-step chunks.  Every next-character prediction of the
    text appears exactly once where the mask is 1.

    Returns
    -------
    inputs, targets : int32 arrays ``(time, n_streams)``
    mask : float32 array ``(time, n_streams)``
        1 at real predictions, 0 at padding (a prefix of ones per column).

    Examples
    --------
    >>> x, y, m = evaluation_streams(np.arange(6), n_streams=2, bptt=2)
    >>> x.T.tolist(), y.T.tolist(), m.T.tolist()
    ([[0, 1, 2, 0], [3, 4, 0, 0]], [[1, 2, 3, 0], [4, 5, 0, 0]], [[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    """
    ids = np.asarray(ids, dtype=np.int32)
    n = len(ids) - 1
    if n < 1:
        raise ValueError("evaluation needs a text of at least 2 characters")
    per_stream = -(-n // n_streams)
    steps = -(-per_stream // bptt) * bptt
    inputs = np.zeros((steps, n_streams), dtype=np.int32)
    targets = np.zeros((steps, n_streams), dtype=np.int32)
    mask = np.zeros((steps, n_streams), dtype=np.float32)
    for j in range(n_streams):
        part = ids[j * per_stream : min((j + 1) * per_stream, n) + 1]
        k = len(part) - 1
        if k > 0:
            inputs[:k, j], targets[:k, j], mask[:k, j] = part[:-1], part[1:], 1.0
    return inputs, targets, mask


def unigram_bpc(train_ids, valid_ids, vocabulary_size: int) -> float:
    """Bits per character of the validation text under add-one-smoothed character frequencies.

    >>> round(unigram_bpc([0, 1], [0, 1], 2), 6)  # p = 1/2 each: one bit
    1.0
    """
    counts = np.bincount(np.asarray(train_ids), minlength=vocabulary_size).astype(np.float64) + 1.0
    p = counts / counts.sum()
    return float(-np.mean(np.log2(p[np.asarray(valid_ids)])))


def bigram_bpc(train_ids, valid_ids, vocabulary_size: int) -> float:
    """Bits per character of the validation text (first character excluded) under a bigram model.

    Witten-Bell smoothing, which has no parameter to tune:

    .. math::
        p(c \\mid h) = \\frac{N(h, c) + T(h)\\, p_1(c)}{N(h) + T(h)}

    with :math:`N` the training counts, :math:`T(h)` the number of distinct
    characters seen after :math:`h` and :math:`p_1` the add-one unigram.
    A context never seen in training falls back to :math:`p_1`.
    """
    train = np.asarray(train_ids)
    valid = np.asarray(valid_ids)
    V = vocabulary_size
    uni = np.bincount(train, minlength=V).astype(np.float64) + 1.0
    uni /= uni.sum()
    pairs = np.zeros((V, V))
    np.add.at(pairs, (train[:-1], train[1:]), 1.0)
    N = pairs.sum(axis=1, keepdims=True)
    T = (pairs > 0).sum(axis=1, keepdims=True).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(N > 0, (pairs + T * uni[None, :]) / (N + T), uni[None, :])
    return float(-np.mean(np.log2(p[valid[:-1], valid[1:]])))


# ---------------------------------------------------------------------- model


def build_model(vocabulary_size: int, embedding_size: int = 32, hidden_size: int = 128, layers: int = 2,
                cell: str = "gru", rng=None):
    """The character model: ``Embedding`` -> ``layers`` recurrent layers -> linear head.

    Parameters
    ----------
    vocabulary_size : int
        Number of distinct characters (rows of the embedding, logits of the head).
    embedding_size : int
        Size of a character vector.
    hidden_size : int
        Units of every recurrent layer.
    layers : int
        Number of recurrent layers.
    cell : {"gru", "lstm"}
        :class:`theano_lstm.GRU` or :class:`theano_lstm.LSTM` (forget-gate bias 1).
    rng : int or Generator, optional
        Seed of the initial weights.

    Returns
    -------
    theano_lstm.StackedCells
        ``layers[0]`` the :class:`~theano_lstm.Embedding`, then the recurrent
        cells, then the head, a :class:`~theano_lstm.Layer` with a
        ``"linear"`` activation whose outputs are logits (the softmax is in
        the loss and in the sampler).  Input projections are Glorot-uniform,
        recurrent matrices orthogonal, biases zero.

    Examples
    --------
    >>> model = build_model(10, 4, 8, layers=2, rng=0)
    >>> [type(layer).__name__ for layer in model.layers]
    ['Embedding', 'GRU', 'GRU', 'Layer']
    """
    import theano_lstm as tl
    from theano_lstm import init

    if cell not in CELLS:
        raise ValueError(f"cell must be one of {list(CELLS)}, received {cell!r}")
    for name, value in (("vocabulary_size", vocabulary_size), ("embedding_size", embedding_size),
                        ("hidden_size", hidden_size), ("layers", layers)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{name} must be a positive int, received {value!r}")
    rng = np.random.default_rng(rng)
    extra = dict(forget_bias=1.0) if cell == "lstm" else {}
    celltype = tl.GRU if cell == "gru" else tl.LSTM
    model = tl.StackedCells(embedding_size, celltype=celltype, layers=[hidden_size] * layers, rng=rng,
                            W_init=init.GlorotUniform(), U_init=init.Orthogonal(), **extra)
    model.layers.insert(0, tl.Embedding(vocabulary_size, embedding_size, W_init=init.GlorotUniform(), rng=rng,
                                        name="embedding"))
    model.layers.append(tl.Layer(hidden_size, vocabulary_size, "linear", W_init=init.GlorotUniform(), rng=rng,
                                 name="head"))
    return model


def _quiet_jax_warnings() -> None:
    """Silence harmless warnings PyTensor's JAX backend prints at every compile."""
    import warnings

    warnings.filterwarnings("ignore", message="Skipping Assert", category=UserWarning)
    warnings.filterwarnings("ignore", message="Explicitly requested dtype", category=UserWarning)
    # the dropout generator is copied into the JAX graph; its update still advances it every call
    warnings.filterwarnings("ignore", message="The RandomType SharedVariables", category=UserWarning)


class CharTrainer:
    """Compiled truncated-BPTT training and evaluation of a character model.

    Two functions are compiled, each once:

    ``train(x, y, *states) -> (cost, *final_states)``
        One RMSprop step on a chunk: ``x``, ``y`` int32 ``(bptt, batch)``
        (inputs and next characters), one ``(batch, state_size)`` float
        array per recurrent layer (its packed state before the chunk).
        ``cost`` is the mean cross-entropy in nats per character.
    ``evaluate(x, y, mask, *states) -> (total, *final_states)``
        The summed cross-entropy (nats) over the steps where ``mask`` is 1;
        no update.

    Parameters
    ----------
    model : StackedCells
        From :func:`build_model`.
    batch_size : int
        Streams per training chunk (the dropout masks' batch size).
    lr : float
        RMSprop learning rate; a shared variable (:attr:`lr`), so a schedule
        needs no recompilation.
    clip : float or None
        Rescale the gradients jointly to a global norm of at most ``clip``.
    dropout : float
        Probability of dropping each unit entering a layer above the
        embedding (variational dropout: one mask per stream and chunk,
        drawn outside the scan by :func:`theano_lstm.dropout.dropout_masks`;
        inverted, so evaluation uses no mask).  0 for none.
    mode : str, optional
        Compile mode (see :func:`_common.resolve_mode`).
    seed : int, optional
        Seed of the dropout masks.

    Attributes
    ----------
    lr : shared scalar
        The learning rate (``trainer.lr.set_value(...)``).
    seconds : dict
        Wall-clock seconds spent compiling (graph construction, compilation
        and, in JAX mode, each function's first call, which traces and
        compiles), training and evaluating.
    static_shapes : bool
        Whether the mode compiles one function per input shape (JAX).
    """

    def __init__(self, model, batch_size: int, lr: float = 2e-3, clip: float | None = 5.0, dropout: float = 0.0,
                 mode=None, seed=None):
        import pytensor
        import pytensor.tensor as pt

        from theano_lstm import backend, losses, optimizers
        from theano_lstm.dropout import dropout_masks
        from theano_lstm.layers import RecurrentCell

        self.model = model
        self.mode = _common.resolve_mode(mode)
        if self.mode in ("jax", "gpu"):
            _quiet_jax_warnings()
        self.seconds = {"compile": 0.0, "train": 0.0, "evaluate": 0.0}
        start = time.perf_counter()
        dtype = backend.floatX()
        self.recurrent = [k for k, layer in enumerate(model.layers) if isinstance(layer, RecurrentCell)]
        self.state_sizes = [model.layers[k].state_size for k in self.recurrent]

        def state_inputs():
            return [pt.matrix(f"state{k}", dtype=dtype) for k in self.recurrent]

        def initial(states):
            full = [None] * len(model.layers)
            for k, s in zip(self.recurrent, states):
                full[k] = s
            return full

        x = pt.matrix("x", dtype="int32")
        y = pt.matrix("y", dtype="int32")
        m = pt.matrix("mask", dtype=dtype)
        # training: one chunk, states carried in, mean nats per character out
        h0 = state_inputs()
        masks = {}
        mask_updates = {}
        if dropout:
            drawn = dropout_masks(model, batch_size, dropout=[None] + [dropout] * (len(model.layers) - 1), rng=seed)
            masks, mask_updates = {"dropout": drawn.dropout}, drawn.updates
        result = model.scan(x, initial_states=initial(h0), **masks)
        cost = losses.categorical_crossentropy(result.outputs, y, reduction="mean")
        params = model.params
        grads = pytensor.grad(cost, params)
        if clip is not None:
            grads = optimizers.clip_global_norm(grads, clip)
        self.lr = backend.shared(np.asarray(lr, dtype=dtype), name="lr")
        updates = optimizers.rmsprop(grads, params, lr=self.lr)
        updates.update(mask_updates)
        finals = [result.final_states[k] for k in self.recurrent]
        self._train = backend.function([x, y] + h0, [cost] + finals, updates=updates, mode=self.mode)
        # evaluation: masked chunk, summed nats
        e0 = state_inputs()
        result = model.scan(x, mask=m, initial_states=initial(e0))
        total = losses.categorical_crossentropy(result.outputs, y, mask=m, reduction="sum")
        finals = [result.final_states[k] for k in self.recurrent]
        self._evaluate = backend.function([x, y, m] + e0, [total] + finals, mode=self.mode)
        # JAX mode compiles one function per input shape (backend.ShapeSpecializedFunction)
        self.static_shapes = isinstance(self._train, backend.ShapeSpecializedFunction)
        self.seconds["compile"] += time.perf_counter() - start

    def zero_states(self, batch_size: int) -> list:
        """Per recurrent layer, a zero packed state ``(batch_size, state_size)``."""
        from theano_lstm import backend

        return [np.zeros((batch_size, size), dtype=backend.floatX()) for size in self.state_sizes]

    def _call(self, fn, key, *args):
        compiled = getattr(fn, "compiled", None)  # JAX: one function per input shape
        before = None if compiled is None else len(compiled)
        start = time.perf_counter()
        # np.asarray waits for JAX's asynchronous dispatch: the time is the computation's
        out = [np.asarray(v) for v in fn(*args)]
        elapsed = time.perf_counter() - start
        if before is not None and len(compiled) > before:
            key = "compile"
        self.seconds[key] += elapsed
        return out

    def train_epoch(self, inputs: np.ndarray, targets: np.ndarray, bptt: int) -> float:
        """One pass down the streams of :func:`training_streams`, ``bptt`` steps per update.

        The states start at zero and are carried from each chunk to the next.
        Returns the mean training cross-entropy in bits per character.
        """
        states = self.zero_states(inputs.shape[1])
        total, chunks = 0.0, 0
        for t in range(0, inputs.shape[0], bptt):
            cost, *states = self._call(self._train, "train", inputs[t : t + bptt], targets[t : t + bptt], *states)
            cost = float(cost)
            if not np.isfinite(cost):
                raise FloatingPointError("the training loss is not finite; lower the learning rate or set a clip")
            total += cost
            chunks += 1
        return total / chunks / _LN2

    def evaluate(self, ids: np.ndarray, n_streams: int, bptt: int) -> float:
        """Bits per character of an encoded text, read as ``n_streams`` parallel streams.

        Every character after the first is predicted once, from the
        characters before it in its stream (see :func:`evaluation_streams`).
        """
        inputs, targets, mask = evaluation_streams(ids, n_streams, bptt)
        states = self.zero_states(n_streams)
        total = 0.0
        for t in range(0, inputs.shape[0], bptt):
            nats, *states = self._call(self._evaluate, "evaluate", inputs[t : t + bptt], targets[t : t + bptt],
                                       mask[t : t + bptt], *states)
            total += float(nats)
        return total / float(mask.sum()) / _LN2


def generate_text(sampler, vocab: Vocabulary, prime: str, n_chars: int, temperature: float, seed=None) -> str:
    """Prime a :class:`theano_lstm.sampling.Sampler` with ``prime`` and let it write ``n_chars`` characters.

    Returns the prime followed by the generated characters.
    """
    if not prime:
        raise ValueError("prime must hold at least one character")
    out = sampler.generate(n_chars, prime=vocab.encode(prime), temperature=temperature, seed=seed)
    return prime + vocab.decode(out.tokens[0, : out.lengths[0]])


# ----------------------------------------------------------------------- main


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive int, received {value!r}")


def main(
    corpus: str = "anthology",
    text: str | None = None,
    max_chars: int | None = None,
    cell: str = "gru",
    embedding_size: int = 32,
    hidden_size: int = 128,
    layers: int = 2,
    batch_size: int = 8,
    bptt: int = 64,
    epochs: int = 25,
    lr: float = 4e-3,
    lr_decay: float = 0.96,
    clip: float | None = 5.0,
    dropout: float = 0.1,
    valid_fraction: float = 0.1,
    eval_streams: int = 8,
    prime: str = "The ",
    sample_length: int = 400,
    temperature: float = 0.6,
    seed: int = 0,
    mode="auto",
    plot: str | None = None,
    verbose: bool = True,
) -> dict:
    """Train the character model, report validation bits per character and print a sample.

    Parameters
    ----------
    corpus : {"anthology", "pydoc"}
        Text to learn (see :func:`load_text`); ignored when ``text`` is given.
    text : str, optional
        Learn this text instead of a corpus.
    max_chars : int, optional
        Use only the first ``max_chars`` characters of the corpus.
    cell : {"gru", "lstm"}
        Recurrent cell.
    embedding_size, hidden_size, layers : int
        Model size (see :func:`build_model`).
    batch_size : int
        Parallel streams the training text is cut into.
    bptt : int
        Steps per truncated-BPTT chunk (one update per chunk).
    epochs : int
        Passes over the training text.
    lr : float
        RMSprop learning rate of the first epoch.
    lr_decay : float
        The learning rate is multiplied by this after every epoch.
    clip : float or None
        Global gradient-norm bound (``None``: no clipping).
    dropout : float
        Dropout probability on the inputs of the layers above the embedding
        (see :class:`CharTrainer`); 0 for none.
    valid_fraction : float
        Fraction of the text, at its end, held out for validation.
    eval_streams : int
        Parallel streams the validation text is read as (at least 2 in JAX mode).
    prime : str
        Text fed to the sampler before it writes (its characters must occur
        in the corpus).
    sample_length : int
        Characters to generate.
    temperature : float
        Sampling temperature (lower: more conservative text; 0: greedy).
    seed : int
        Seeds the initial weights and the sampler.
    mode : str or None
        ``"auto"`` (jax when installed, else the library default), ``None``
        (the library default) or a name from :data:`theano_lstm.backend.MODE_NAMES`.
    plot : str, optional
        Path of a learning-curve PNG (needs matplotlib).
    verbose : bool
        Print progress, results and the sample.

    Returns
    -------
    dict
        ``val_bpc`` (validation bits per character of the kept epoch),
        ``best_epoch``, ``final_val_bpc`` (after the last epoch),
        ``train_bpc`` (last epoch's running average, dropout on), ``unigram_bpc`` and
        ``bigram_bpc`` (baselines on the same validation text), ``sample``
        (the prime and the generated text), ``epochs``, ``curve``
        (per-epoch ``train bpc`` and ``valid bpc``), ``seconds`` (total wall
        time), ``compile_seconds``, ``train_seconds``, ``evaluate_seconds``,
        ``sample_seconds`` (the sampler's compilation included),
        ``n_train_chars``, ``n_valid_chars``, ``vocabulary_size``,
        ``n_params``, ``cell`` and ``mode``.
    """
    import theano_lstm as tl
    from theano_lstm.sampling import Sampler

    start = time.perf_counter()
    for name, value in (("embedding_size", embedding_size), ("hidden_size", hidden_size), ("layers", layers),
                        ("batch_size", batch_size), ("bptt", bptt), ("epochs", epochs),
                        ("eval_streams", eval_streams), ("sample_length", sample_length)):
        _check_positive_int(name, value)
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {list(CELLS)}, received {cell!r}")
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number, received {lr!r}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), received {dropout!r}")
    if not 0 < lr_decay <= 1:
        raise ValueError(f"lr_decay must be in (0, 1], received {lr_decay!r}")
    if not (np.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be a number >= 0, received {temperature!r}")
    tl.use_float32()
    mode = _common.resolve_mode(mode)
    if text is None:
        text = load_text(corpus, max_chars)
        source = corpus
    else:
        source = "text"
    vocab = Vocabulary(text)
    vocab.encode(prime)  # fail early on a prime the model cannot read
    ids = vocab.encode(text)
    train_ids, valid_ids = split_text(ids, valid_fraction)
    x_train, y_train = training_streams(train_ids, batch_size, bptt)
    V = len(vocab)
    baselines = {"unigram": unigram_bpc(train_ids, valid_ids, V), "bigram": bigram_bpc(train_ids, valid_ids, V)}
    if verbose:
        print(f"char-lm: corpus {source!r}, {len(text):,} characters ({V} distinct): {len(train_ids):,} to train "
              f"on as {batch_size} streams of {x_train.shape[0]:,} steps ({x_train.shape[0] // bptt} chunks of "
              f"{bptt}), {len(valid_ids):,} held out; mode {mode!r}, seed {seed}")

    model = build_model(V, embedding_size, hidden_size, layers, cell, rng=seed)
    n_params = int(sum(p.get_value(borrow=True).size for p in model.params))
    trainer = CharTrainer(model, batch_size, lr=lr, clip=clip, dropout=dropout, mode=mode, seed=seed)
    if verbose:
        lazy = " (JAX compiles each at its first call)" if trainer.static_shapes else ""
        print(f"{layers}-layer {cell.upper()} ({hidden_size} units, {n_params:,} parameters): training and "
              f"evaluation functions built in {trainer.seconds['compile']:.1f} s{lazy}")
    curve = {"train bpc": [], "valid bpc": []}
    best = (np.inf, 0, None)
    progress = _common.EpochProgress(epochs, f"char-lm {cell}", enabled=verbose)
    try:
        for epoch in range(1, epochs + 1):
            train_bpc = trainer.train_epoch(x_train, y_train, bptt)
            val_bpc = trainer.evaluate(valid_ids, eval_streams, bptt)
            curve["train bpc"].append(train_bpc)
            curve["valid bpc"].append(val_bpc)
            if val_bpc < best[0]:
                best = (val_bpc, epoch, [p.get_value() for p in model.params])
            progress.update(epoch, train_bpc=train_bpc, valid_bpc=val_bpc, lr=float(trainer.lr.get_value()))
            trainer.lr.set_value(np.asarray(trainer.lr.get_value() * lr_decay, dtype=trainer.lr.dtype))
    finally:
        progress.close()
    val_bpc, best_epoch, best_params = best
    if best_params is not None and best_epoch != epochs:
        for p, value in zip(model.params, best_params):
            p.set_value(value)

    sample_start = time.perf_counter()
    sampler = Sampler(model, mode=mode, seed=seed)
    sample = generate_text(sampler, vocab, prime, sample_length, temperature)
    sample_seconds = time.perf_counter() - sample_start

    out = {
        "val_bpc": float(val_bpc),
        "best_epoch": int(best_epoch),
        "final_val_bpc": float(curve["valid bpc"][-1]),
        "train_bpc": float(curve["train bpc"][-1]),
        "unigram_bpc": baselines["unigram"],
        "bigram_bpc": baselines["bigram"],
        "sample": sample,
        "epochs": epochs,
        "curve": curve,
        "compile_seconds": trainer.seconds["compile"],
        "train_seconds": trainer.seconds["train"],
        "evaluate_seconds": trainer.seconds["evaluate"],
        "sample_seconds": sample_seconds,
        "n_train_chars": int(len(train_ids)),
        "n_valid_chars": int(len(valid_ids)),
        "vocabulary_size": V,
        "n_params": n_params,
        "cell": cell,
        "mode": mode,
        "seconds": time.perf_counter() - start,
    }
    if verbose:
        print()
        print(format_results(out))
        print()
        print(f"sample (temperature {temperature:g}, prime {prime!r}):")
        print(sample)
    _common.save_learning_curves({f"{layers}-layer {cell.upper()}": curve}, plot, title=f"char-lm ({source})")
    return out


def format_results(out: dict) -> str:
    """The measurements of :func:`main` as a small table."""
    rows = [
        {"model": f"{out['cell'].upper()} (epoch {out['best_epoch']} of {out['epochs']})",
         "valid bpc": f"{out['val_bpc']:.3f}"},
        {"model": "bigram, Witten-Bell", "valid bpc": f"{out['bigram_bpc']:.3f}"},
        {"model": "unigram, add-one", "valid bpc": f"{out['unigram_bpc']:.3f}"},
    ]
    head = (f"validation bits per character on the held-out {out['n_valid_chars']:,} characters "
            f"(mode {out['mode']!r}; total {out['seconds']:.1f} s: compile {out['compile_seconds']:.1f} s, "
            f"train {out['train_seconds']:.1f} s, evaluate {out['evaluate_seconds']:.1f} s, "
            f"sample {out['sample_seconds']:.1f} s)")
    return head + "\n" + _common.format_table(rows)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Train a character-level language model (Embedding, two GRU or LSTM layers, linear head) "
        "with truncated backpropagation through time; report validation bits per character against "
        "unigram and bigram baselines and print generated text.",
    )
    _common.add_common_arguments(p, mode_default="auto")
    p.add_argument("--corpus", choices=CORPORA, default="anthology",
                   help="anthology: 40 KB of public-domain texts shipped with the package; pydoc: 465 KB of "
                   "Python documentation from the standard library (default %(default)s)")
    p.add_argument("--max-chars", type=_common.positive_int, default=None, help="use only the first N characters")
    p.add_argument("--cell", choices=CELLS, default="gru", help="recurrent cell (default %(default)s)")
    p.add_argument("--embedding-size", type=_common.positive_int, default=32, help="default %(default)s")
    p.add_argument("--hidden-size", type=_common.positive_int, default=128, help="default %(default)s")
    p.add_argument("--layers", type=_common.positive_int, default=2, help="recurrent layers (default %(default)s)")
    p.add_argument("--batch-size", type=_common.positive_int, default=8, help="parallel streams (default %(default)s)")
    p.add_argument("--bptt", type=_common.positive_int, default=64,
                   help="steps per truncated-BPTT chunk (default %(default)s)")
    p.add_argument("--epochs", type=_common.positive_int, default=25, help="default %(default)s")
    p.add_argument("--lr", type=_common.positive_float, default=4e-3,
                   help="RMSprop learning rate (default %(default)s)")
    p.add_argument("--lr-decay", type=_common.positive_float, default=0.96,
                   help="learning-rate factor per epoch (default %(default)s)")
    p.add_argument("--clip", type=_common.positive_float, default=5.0,
                   help="global gradient-norm bound (default %(default)s)")
    p.add_argument("--no-clip", action="store_true", help="do not clip the gradients")
    p.add_argument("--dropout", type=float, default=0.1,
                   help="dropout probability between layers, 0 for none (default %(default)s)")
    p.add_argument("--valid-fraction", type=float, default=0.1, help="held-out tail of the text (default %(default)s)")
    p.add_argument("--prime", default="The ", help="text the sampler starts from (default %(default)r)")
    p.add_argument("--sample-length", type=_common.positive_int, default=400,
                   help="characters to generate (default %(default)s)")
    p.add_argument("--temperature", type=float, default=0.6, help="sampling temperature (default %(default)s)")
    return p


def cli(argv=None) -> dict:
    """Parse ``argv`` (default ``sys.argv[1:]``) and run :func:`main`; returns what it returned."""
    args = _parser().parse_args(argv)
    return _common.run_main(main, args, format_results, uses=["no_clip"], clip=None if args.no_clip else args.clip)


if __name__ == "__main__":
    cli()
