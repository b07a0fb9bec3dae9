"""Variable-length minibatches and ``masked_loss``: an LSTM learns to reverse codes.

The 2014 ``theano_lstm`` README's section on minibatches of different-length
sequences, made runnable.  Each example is a random *code* of ``n`` symbols
(``n`` varies from example to example), a delimiter, and ``n`` blank steps
during which the network must output the code **reversed**::

    input    3 7 1 5 |  _ _ _ _
    target   . . . . .  5 1 7 3        (". ": not scored)

so the labelled span of example ``b`` starts at ``label_starts[b] = n + 1``
and has ``codelengths[b] = n`` steps: exactly the arguments of the 2014
``masked_loss(predictions, padded_labels, codelengths, label_starts)``.

The script shows:

* Sequences of ``2 n + 1`` steps are padded at the end into time-major
  minibatches with ``_common.pad_batch`` (a ``(time, batch)`` mask marks the
  valid steps) and run through the runner, ``model.scan(x, mask=m)``: a padded
  step carries the previous state, so padding never changes a sequence's
  states.
* ``masked_loss`` is batch-major: the time-major softmax outputs
  ``(time, batch, classes)`` go in as ``outputs.dimshuffle(1, 0, 2)``.
* The same number, per step and time-major:
  ``categorical_crossentropy(outputs, labels.T, mask=label_mask,
  from_logits=False)`` where ``label_mask`` is 1 inside each labelled span.
  Training computes both and reports their largest difference; ``loss=``
  picks the one whose gradient trains the model.
* Training uses the library's update rules composed by plain calls:
  ``adam(clip_global_norm(grads, max_norm), params, lr=lr)``.

Accuracy is measured on fresh codes, per symbol and per whole code, against
chance.  The default run (about two minutes on 2 cores with JAX, 10 s of it
compiling) reaches about 96 % symbol and 87 % code accuracy (chance: 12.5 %
and 1.4 %); codes of up to 7 symbols come back right 94 % of the time or more,
codes of 10 symbols about a third of the time.  Run ``python examples/variable_length.py`` (``--help`` for options).
By default it compiles with JAX when jax is installed (``--mode auto``); there
every minibatch is padded to the longest possible sequence so one compiled
function serves all of them (JAX compiles once per input shape).
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

__all__ = ["LOSSES", "OPTIMIZERS", "make_codes", "Batch", "encode", "score", "Reverser", "evaluate", "main", "cli"]

#: Values of ``loss=`` / ``--loss``: which of the two equal losses is differentiated.
LOSSES = ("masked_loss", "crossentropy")
#: Update rules of :mod:`theano_lstm.optimizers` selectable with ``optimizer=``.
OPTIMIZERS = ("adam", "rmsprop", "adagrad", "adadelta", "momentum", "nesterov_momentum", "sgd")


# --------------------------------------------------------------------- data


def make_codes(n: int, n_symbols: int, min_length: int, max_length: int, rng) -> list:
    """Draw random codes of random lengths.

    Parameters
    ----------
    n : int
        Number of codes.
    n_symbols : int
        Alphabet size; symbols are ``0 … n_symbols - 1``.
    min_length, max_length : int
        Code lengths are uniform in ``[min_length, max_length]``.
    rng : int or Generator
        Seed.

    Returns
    -------
    list of int arrays
        The codes.
    """
    if not 1 <= min_length <= max_length:
        raise ValueError(f"need 1 <= min_length <= max_length, received {min_length}, {max_length}")
    if n_symbols < 2:
        raise ValueError(f"n_symbols must be at least 2, received {n_symbols}")
    rng = np.random.default_rng(rng)
    lengths = rng.integers(min_length, max_length + 1, size=n)
    return [rng.integers(0, n_symbols, size=int(k)) for k in lengths]


class Batch(NamedTuple):
    """One padded minibatch (see :func:`encode`)."""

    inputs: np.ndarray  # (time, batch, n_symbols + 2) float32 one-hot
    mask: np.ndarray  # (time, batch) float32, 1 at valid steps
    labels: np.ndarray  # (batch, time) int32, the reversed code inside the span, 0 elsewhere
    codelengths: np.ndarray  # (batch,) int32
    label_starts: np.ndarray  # (batch,) int32
    label_mask: np.ndarray  # (time, batch) float32, 1 inside the labelled spans


def encode(codes, n_symbols: int, length: int | None = None, batch_size: int | None = None) -> Batch:
    """Encode codes as one padded, time-major minibatch.

    Example ``b`` with code ``c`` of length ``n`` becomes ``2 n + 1`` input
    steps: the one-hot symbols of ``c``, the delimiter (index ``n_symbols``),
    then ``n`` blanks (index ``n_symbols + 1``); its labels are ``c`` reversed
    at steps ``n + 1 … 2 n``.

    Parameters
    ----------
    codes : list of int arrays
        The codes (values ``0 … n_symbols - 1``).
    n_symbols : int
        Code alphabet size; inputs have ``n_symbols + 2`` features.
    length, batch_size : int, optional
        Pad to this many steps / columns (see :func:`_common.pad_batch`);
        padded columns are empty sequences (no valid step, no label).

    Returns
    -------
    Batch
        Inputs, masks, labels, span lengths and starts.

    Examples
    --------
    >>> b = encode([np.array([2, 0])], n_symbols=3)
    >>> b.inputs.argmax(-1)[:, 0].tolist(), b.labels.tolist(), b.label_starts.tolist(), b.codelengths.tolist()
    ([2, 0, 3, 4, 4], [[0, 0, 0, 0, 2]], [3], [2])
    """
    eye = np.eye(n_symbols + 2, dtype="float32")
    delimiter, blank = n_symbols, n_symbols + 1
    sequences = [eye[np.concatenate([c, [delimiter], np.full(len(c), blank)]).astype(int)] for c in codes]
    inputs, mask = _common.pad_batch(sequences, length=length, batch_size=batch_size)
    T, B = mask.shape
    labels = np.zeros((B, T), dtype="int32")
    codelengths = np.zeros(B, dtype="int32")
    label_starts = np.zeros(B, dtype="int32")
    label_mask = np.zeros((T, B), dtype="float32")
    for b, c in enumerate(codes):
        n = len(c)
        labels[b, n + 1 : 2 * n + 1] = c[::-1]
        codelengths[b], label_starts[b] = n, n + 1
        label_mask[n + 1 : 2 * n + 1, b] = 1
    return Batch(inputs, mask, labels, codelengths, label_starts, label_mask)


def score(predicted_labels, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
    """Score predictions of a minibatch.

    Parameters
    ----------
    predicted_labels : int array ``(time, batch)``
        The most probable symbol at every step.
    batch : Batch
        The minibatch (its labels and spans).

    Returns
    -------
    n_right : int array ``(batch,)``
        Labelled steps predicted right, per example.
    all_right : bool array ``(batch,)``
        Whether the whole code was reversed right.
    """
    predicted = np.asarray(predicted_labels).T  # (batch, time)
    inside = batch.label_mask.T.astype(bool)
    right = (predicted == batch.labels) & inside
    n_right = right.sum(axis=1)
    return n_right, n_right == batch.codelengths


# -------------------------------------------------------------------- model


def _quiet_jax_warnings() -> None:
    """Silence two harmless warnings PyTensor's JAX backend prints at every compile."""
    import warnings

    warnings.filterwarnings("ignore", message="Skipping Assert", category=UserWarning)
    warnings.filterwarnings("ignore", message="Explicitly requested dtype", category=UserWarning)


class Reverser:
    """An LSTM stack with a softmax head, its loss and two compiled functions.

    Parameters
    ----------
    n_symbols : int
        Code alphabet size (inputs have ``n_symbols + 2`` features, outputs ``n_symbols`` classes).
    hidden_sizes : list of int
        LSTM layer sizes.
    loss : {"masked_loss", "crossentropy"}
        Which of the two (equal) losses is differentiated.
    optimizer : str
        An update rule of :mod:`theano_lstm.optimizers` (see :data:`OPTIMIZERS`).
    lr : float
        Its learning rate.
    max_norm : float
        Global gradient-norm bound.
    forget_bias : float
        Initial forget-gate bias.
    seed : int or Generator
        Initial weights.
    mode : str, optional
        Compile mode.

    Attributes
    ----------
    model : theano_lstm.StackedCells
        The LSTM layers followed by the softmax head (``model.layers[-1]``).
    seconds : dict
        Wall-clock seconds spent compiling (in JAX and Numba modes including
        the first call for each input shape), training and predicting.
    """

    def __init__(self, n_symbols: int, hidden_sizes, loss: str = "masked_loss", optimizer: str = "adam",
                 lr: float = 0.01, max_norm: float = 5.0, forget_bias: float = 1.0, seed=0, mode=None):
        import pytensor
        import pytensor.tensor as pt

        import theano_lstm as tl
        from theano_lstm import backend, optimizers

        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {list(LOSSES)}, received {loss!r}")
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, received {optimizer!r}")
        self.mode = mode
        self.seconds = {"compile": 0.0, "train": 0.0, "predict": 0.0}
        self._seen_shapes: set = set()
        start = time.perf_counter()
        n_in = n_symbols + 2
        hidden_sizes = list(hidden_sizes)
        rng = np.random.default_rng(seed)  # one stream for every layer's initial weights
        model = tl.StackedCells(n_in, celltype=tl.LSTM, layers=hidden_sizes, forget_bias=forget_bias, rng=rng)
        # masked_loss scores probabilities, so the head is a softmax (not logits)
        model.layers.append(tl.Layer(hidden_sizes[-1], n_symbols, "softmax", name="head", rng=rng))
        self.model = model

        x = pt.tensor3("x", shape=(None, None, n_in))  # (time, batch, n_in), time-major
        m = pt.matrix("mask")  # (time, batch)
        labels = pt.imatrix("labels")  # (batch, time), batch-major as masked_loss wants
        codelengths = pt.ivector("codelengths")  # (batch,)
        label_starts = pt.ivector("label_starts")  # (batch,)
        label_mask = pt.matrix("label_mask")  # (time, batch)

        probs = model.scan(x, mask=m).outputs  # (time, batch, n_symbols) softmax outputs
        n_labels = pt.maximum(codelengths.sum(), 1).astype(probs.dtype)
        # the 2014 loss: batch-major predictions, one number per example
        per_example = tl.masked_loss(probs.dimshuffle(1, 0, 2), labels, codelengths, label_starts)
        masked = per_example.sum() / n_labels
        # the same, per step and time-major
        crossentropy = tl.categorical_crossentropy(probs, labels.T, mask=label_mask, reduction="sum",
                                                   from_logits=False) / n_labels
        cost = masked if loss == "masked_loss" else crossentropy

        params = model.params
        grads = pytensor.grad(cost, params)
        rule = getattr(optimizers, optimizer)
        updates = rule(optimizers.clip_global_norm(grads, max_norm), params, lr=lr)
        self._train = backend.function([x, m, labels, codelengths, label_starts, label_mask],
                                       [masked, crossentropy], updates=updates, mode=mode)
        self._predict = backend.function([x, m], probs.argmax(axis=-1), mode=mode)
        self.seconds["compile"] += time.perf_counter() - start

    def _call(self, key: str, fn, *args):
        """Call a compiled function, return NumPy, and book its time under ``key`` (or compile)."""
        from theano_lstm import backend

        shapes = (key,) + tuple(np.shape(a) for a in args)
        start = time.perf_counter()
        out = fn(*args)
        out = [backend.to_numpy(o) for o in out] if isinstance(out, list) else backend.to_numpy(out)
        elapsed = time.perf_counter() - start
        # JAX compiles at the first call for each input shape, Numba JIT-compiles
        # at the first call: count those calls as compiling
        first = shapes not in self._seen_shapes and self.mode in ("jax", "gpu", "numba")
        self._seen_shapes.add(shapes)
        self.seconds["compile" if first else key] += elapsed
        return out

    def train_batch(self, batch: Batch) -> tuple[float, float]:
        """Make one update.

        Parameters
        ----------
        batch : Batch
            A padded minibatch.

        Returns
        -------
        masked_loss : float
            ``masked_loss`` per labelled symbol, before the update.
        crossentropy : float
            The masked per-step cross-entropy per labelled symbol (the same number).
        """
        masked, ce = self._call("train", self._train, batch.inputs, batch.mask, batch.labels, batch.codelengths,
                                batch.label_starts, batch.label_mask)
        return float(masked), float(ce)

    def predict(self, batch: Batch) -> np.ndarray:
        """Predict the most probable symbol at every step.

        Parameters
        ----------
        batch : Batch
            A padded minibatch (only its inputs and mask are read).

        Returns
        -------
        int array ``(time, batch)``
            The argmax of the softmax outputs.
        """
        return self._call("predict", self._predict, batch.inputs, batch.mask)


# --------------------------------------------------------------------- main


def evaluate(reverser: Reverser, codes, n_symbols: int, batch_size: int, length: int | None, static: bool) -> dict:
    """Measure symbol and code accuracy on ``codes``, overall and per code length.

    Parameters
    ----------
    reverser : Reverser
        The trained (or not) model.
    codes : list of int arrays
        Codes to reverse.
    n_symbols : int
        Alphabet size.
    batch_size : int
        Codes per prediction call.
    length : int or None
        Pad every minibatch to this many steps (``None``: its longest sequence).
    static : bool
        Also pad the last minibatch to ``batch_size`` columns (one shape for JAX).

    Returns
    -------
    dict
        ``"symbol_accuracy"``, ``"code_accuracy"`` (fractions) and
        ``"code_accuracy_by_length"`` (``{length: fraction}``).
    """
    n_right, all_right, lengths = [], [], []
    for first in range(0, len(codes), batch_size):
        part = codes[first : first + batch_size]
        batch = encode(part, n_symbols, length=length, batch_size=batch_size if static else None)
        right, whole = score(reverser.predict(batch), batch)
        n_right += right[: len(part)].tolist()
        all_right += whole[: len(part)].tolist()
        lengths += [len(c) for c in part]
    n_right, all_right, lengths = map(np.asarray, (n_right, all_right, lengths))
    by_length = {int(n): float(all_right[lengths == n].mean()) for n in np.unique(lengths)}
    return {
        "symbol_accuracy": float(n_right.sum() / lengths.sum()),
        "code_accuracy": float(all_right.mean()),
        "code_accuracy_by_length": by_length,
    }


def main(
    n_symbols: int = 8,
    min_length: int = 1,
    max_length: int = 10,
    hidden_sizes=(128,),
    n_train: int = 8000,
    n_test: int = 1000,
    batch_size: int = 32,
    epochs: int = 30,
    loss: str = "masked_loss",
    optimizer: str = "adam",
    lr: float = 0.01,
    max_norm: float = 5.0,
    forget_bias: float = 1.0,
    seed: int = 0,
    mode="auto",
    plot: str | None = None,
    verbose: bool = True,
) -> dict:
    """Train an LSTM to reverse variable-length codes; report accuracy on fresh codes.

    Parameters
    ----------
    n_symbols : int
        Code alphabet size.
    min_length, max_length : int
        Range of code lengths (a sequence has ``2 n + 1`` steps).
    hidden_sizes : sequence of int
        LSTM layer sizes.
    n_train, n_test : int
        Training codes, and fresh codes to measure accuracy on.
    batch_size : int
        Codes per minibatch.
    epochs : int
        Passes over the training codes.
    loss : {"masked_loss", "crossentropy"}
        Which loss is differentiated (both are computed and compared).
    optimizer : str
        Update rule (see :class:`Reverser`).
    lr : float
        Learning rate.
    max_norm : float
        Global gradient-norm bound.
    forget_bias : float
        Initial forget-gate bias.
    seed : int
        Seeds data and initial weights.
    mode : str or None
        ``"auto"`` (jax when installed, else the library default), ``None``
        (the library default) or a name of :data:`theano_lstm.backend.MODE_NAMES`.
    plot : str, optional
        Path of a learning-curve PNG (needs matplotlib).
    verbose : bool
        Print progress and results.

    Returns
    -------
    dict
        ``"symbol_accuracy"``, ``"code_accuracy"`` (fractions over the test
        codes), ``"code_accuracy_by_length"``, ``"chance_symbol_accuracy"``,
        ``"chance_code_accuracy"``, ``"initial"`` (the same accuracies before
        training), ``"curve"`` (per-epoch ``"loss"`` and ``"test symbol accuracy"``),
        ``"max_loss_difference"`` (largest ``|masked_loss - crossentropy|``
        seen, per symbol), ``"mode"``, ``"seed"``, ``"epochs"``,
        ``"compile_seconds"``, ``"train_seconds"``, ``"predict_seconds"``,
        ``"wall_seconds"``.
    """
    import theano_lstm as tl

    start = time.perf_counter()
    hidden_sizes = [int(h) for h in hidden_sizes]
    for name, value in (("n_symbols", n_symbols), ("min_length", min_length), ("max_length", max_length),
                        ("n_train", n_train), ("n_test", n_test), ("batch_size", batch_size), ("epochs", epochs)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{name} must be a positive int, received {value!r}")
    if not hidden_sizes or min(hidden_sizes) <= 0:
        raise ValueError(f"hidden_sizes must be a non-empty list of positive ints, received {hidden_sizes!r}")
    if batch_size < 2:
        raise ValueError("batch_size must be at least 2 (JAX mode cannot re-specialize a batch of one)")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {list(LOSSES)}, received {loss!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, received {optimizer!r}")
    if max_length < min_length:
        raise ValueError(f"need min_length <= max_length, received {min_length}, {max_length}")
    tl.use_float32()
    mode = _common.resolve_mode(mode)
    if mode in ("jax", "gpu"):
        _quiet_jax_warnings()
    static = mode in ("jax", "gpu")
    length = 2 * max_length + 1 if static else None
    streams = np.random.SeedSequence(seed).spawn(3)
    train = make_codes(n_train, n_symbols, min_length, max_length, np.random.default_rng(streams[0]))
    test = make_codes(n_test, n_symbols, min_length, max_length, np.random.default_rng(streams[1]))
    rng = np.random.default_rng(streams[2])
    if verbose:
        print(f"reverse codes of {min_length}-{max_length} of {n_symbols} symbols: {n_train} training and {n_test} fresh "
              f"test codes; {loss} + {optimizer}; mode {mode!r}, seed {seed}")
    reverser = Reverser(n_symbols, hidden_sizes, loss=loss, optimizer=optimizer, lr=lr, max_norm=max_norm,
                        forget_bias=forget_bias, seed=int(rng.integers(2**31)), mode=mode)
    initial = evaluate(reverser, test, n_symbols, batch_size, length, static)
    curve = {"loss": [], "test symbol accuracy": []}
    max_difference = 0.0
    train_lengths = [2 * len(c) + 1 for c in train]
    progress = _common.EpochProgress(epochs, "reverse", enabled=verbose)
    try:
        for epoch in range(1, epochs + 1):
            total = count = 0.0
            for idx in _common.minibatches(train_lengths, batch_size, rng):
                if static and len(idx) < batch_size:
                    continue  # one input shape in JAX mode: drop the ragged last batch
                batch = encode([train[i] for i in idx], n_symbols, length=length)
                masked, ce = reverser.train_batch(batch)
                max_difference = max(max_difference, abs(masked - ce))
                labelled = int(batch.codelengths.sum())
                total += masked * labelled
                count += labelled
            acc = evaluate(reverser, test, n_symbols, batch_size, length, static)["symbol_accuracy"]
            curve["loss"].append(total / count)
            curve["test symbol accuracy"].append(acc)
            progress.update(epoch, loss=total / count, test_symbol_acc=acc)
    finally:
        progress.close()
    final = evaluate(reverser, test, n_symbols, batch_size, length, static)
    lengths = np.array([len(c) for c in test])
    out = {
        **final,
        "chance_symbol_accuracy": 1.0 / n_symbols,
        "chance_code_accuracy": float(np.mean(float(n_symbols) ** -lengths)),
        "initial": initial,
        "curve": curve,
        "max_loss_difference": max_difference,
        "mode": mode,
        "seed": seed,
        "epochs": epochs,
        "n_test": n_test,
        "compile_seconds": reverser.seconds["compile"],
        "train_seconds": reverser.seconds["train"],
        "predict_seconds": reverser.seconds["predict"],
        "wall_seconds": time.perf_counter() - start,
    }
    if verbose:
        print()
        print(format_results(out))
    _common.save_learning_curves({"lstm": curve}, plot, title="reverse variable-length codes")
    return out


def format_results(out: dict) -> str:
    """Format the results of :func:`main` as text.

    Parameters
    ----------
    out : dict
        What :func:`main` returned.

    Returns
    -------
    str
        A header, a table and two summary lines.
    """
    rows = [
        {"": "LSTM", "symbol accuracy %": f"{100 * out['symbol_accuracy']:.1f}", "code accuracy %": f"{100 * out['code_accuracy']:.1f}"},
        {"": "untrained", "symbol accuracy %": f"{100 * out['initial']['symbol_accuracy']:.1f}",
         "code accuracy %": f"{100 * out['initial']['code_accuracy']:.1f}"},
        {"": "chance", "symbol accuracy %": f"{100 * out['chance_symbol_accuracy']:.1f}",
         "code accuracy %": f"{100 * out['chance_code_accuracy']:.1f}"},
    ]
    by_length = ", ".join(f"{n}: {100 * a:.0f}" for n, a in out["code_accuracy_by_length"].items())
    return (f"accuracy on {out['n_test']} fresh codes, mode {out['mode']!r}, seed {out['seed']}, {out['epochs']} epochs; "
            f"compile {out['compile_seconds']:.1f} s, train {out['train_seconds']:.1f} s, total {out['wall_seconds']:.1f} s\n"
            + _common.format_table(rows)
            + f"\ncode accuracy % by code length: {by_length}"
            + f"\nlargest |masked_loss - per-step crossentropy| during training: {out['max_loss_difference']:.2e} per symbol")


def _parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    p = argparse.ArgumentParser(
        description="Train an LSTM to reverse codes of different lengths from padded minibatches, with the "
        "2014 masked_loss (and the equivalent masked per-step cross-entropy); report accuracy on fresh codes.",
    )
    _common.add_common_arguments(p, mode_default="auto")
    p.add_argument("--n-symbols", type=_common.positive_int, default=8, help="code alphabet size (default %(default)s)")
    p.add_argument("--min-length", type=_common.positive_int, default=1, help="shortest code (default %(default)s)")
    p.add_argument("--max-length", type=_common.positive_int, default=10, help="longest code (default %(default)s)")
    p.add_argument("--hidden-sizes", type=_common.positive_int, nargs="+", default=[128], help="LSTM layer sizes (default %(default)s)")
    p.add_argument("--n-train", type=_common.positive_int, default=8000, help="training codes (default %(default)s)")
    p.add_argument("--n-test", type=_common.positive_int, default=1000, help="fresh test codes (default %(default)s)")
    p.add_argument("--batch-size", type=_common.positive_int, default=32, help="default %(default)s")
    p.add_argument("--epochs", type=_common.positive_int, default=30, help="default %(default)s")
    p.add_argument("--loss", choices=LOSSES, default="masked_loss", help="loss to differentiate (default %(default)s)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="adam", help="default %(default)s")
    p.add_argument("--lr", type=_common.positive_float, default=0.01, help="learning rate (default %(default)s)")
    p.add_argument("--max-norm", type=_common.positive_float, default=5.0, help="global gradient-norm bound (default %(default)s)")
    p.add_argument("--forget-bias", type=float, default=1.0, help="initial LSTM forget-gate bias (default %(default)s)")
    return p


def cli(argv=None) -> dict:
    """Parse ``argv`` (default ``sys.argv[1:]``) and run :func:`main`; returns what it returned."""
    args = _parser().parse_args(argv)
    return _common.run_main(main, args, format_results)


if __name__ == "__main__":
    cli()
