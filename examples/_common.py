"""Utilities shared by the example scripts.

Nothing here is part of the library: command-line helpers, a per-epoch
progress display (a ``tqdm`` bar when tqdm is installed, plain lines
otherwise), time-major padding of variable-length sequences, a results table
and learning-curve plots (written when matplotlib is installed, skipped with a
message otherwise).
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import sys
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    "add_common_arguments",
    "positive_int",
    "positive_float",
    "clip_bound",
    "resolve_mode",
    "has_module",
    "EpochProgress",
    "pad_batch",
    "minibatches",
    "format_table",
    "save_learning_curves",
]


# ---------------------------------------------------------------- arguments


def has_module(name: str) -> bool:
    """Whether ``name`` can be imported (without importing it)."""
    return importlib.util.find_spec(name) is not None


def positive_int(text: str) -> int:
    """``argparse`` type: an int > 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {value}")
    return value


def positive_float(text: str) -> float:
    """``argparse`` type: a finite float > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, received {text!r}") from None
    if not (np.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, received {value}")
    return value


def add_common_arguments(parser: argparse.ArgumentParser, plot_default: str | None = None,
                         mode_default: str | None = None) -> None:
    """Add ``--seed``, ``--mode``, ``--plot`` and ``--quiet`` to ``parser``.

    ``plot_default`` is the default of ``--plot`` (no plot unless asked).
    ``mode_default="auto"`` adds the choice ``auto`` (jax when installed,
    else the library default, see :func:`resolve_mode`) and makes it the
    default; ``None`` leaves the library default.
    """
    from theano_lstm import backend

    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw (data, initial weights); default %(default)s")
    choices = list(backend.MODE_NAMES)
    if mode_default == "auto":
        choices = ["auto"] + choices
        text = "compile mode (default auto: jax when installed, else the library default %r)" % backend.get_default_mode()
    else:
        text = "compile mode (default: the library default, %r)" % backend.get_default_mode()
    parser.add_argument("--mode", choices=choices, default=mode_default, help=text + "; 'jax' needs jax installed")
    parser.add_argument(
        "--plot",
        metavar="PATH",
        default=plot_default,
        help="write a learning-curve PNG there (needs matplotlib; skipped otherwise)",
    )
    parser.add_argument("--quiet", action="store_true", help="no per-epoch progress output (the results are still printed)")


def run_main(main, args: argparse.Namespace, results=None, uses: Sequence[str] = (), **overrides):
    """Call an example's ``main`` with its parsed command line.

    Each parameter of ``main`` takes the option of the same name, ``verbose``
    is ``not --quiet``, and ``overrides`` (values computed from options, such
    as ``clip=None if args.no_clip else args.clip``) win.  Every option must
    end up used (by name, or listed in ``uses`` when an override reads it), so
    an option that ``main`` does not take is an error, not silently ignored.
    With ``--quiet``, ``results(out)`` (the result lines) is printed, since
    ``main`` printed nothing.
    """
    params = inspect.signature(main).parameters
    kwargs = {name: value for name, value in vars(args).items() if name in params}
    if "verbose" in params:
        kwargs["verbose"] = not args.quiet
    kwargs.update(overrides)
    unused = set(vars(args)) - set(kwargs) - set(uses) - {"quiet"}
    if unused:
        raise TypeError(f"{main.__module__}.main takes no parameter for the options {sorted(unused)}")
    out = main(**kwargs)
    if args.quiet and results is not None:
        print(results(out))
    return out


def resolve_mode(mode):
    """The compile mode an example uses.

    ``"auto"`` is ``"jax"`` when jax is installed (much faster to compile
    and run than the C backend for the examples' small recurrent models),
    else the library default; ``None`` is the library default
    (:func:`theano_lstm.backend.get_default_mode`); anything else is
    returned as is.
    """
    from theano_lstm import backend

    if mode == "auto":
        return "jax" if has_module("jax") else backend.get_default_mode()
    return backend.get_default_mode() if mode is None else mode


def clip_bound(text: str) -> float | None:
    """``argparse`` type: a gradient-norm bound > 0, or 0 for none (``None``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, received {text!r}") from None
    if not (np.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a number >= 0 (0: no clipping), received {value}")
    return value or None


# ----------------------------------------------------------------- progress


class EpochProgress:
    """Per-epoch progress: a tqdm bar when tqdm is installed, one printed line per epoch otherwise.

    Parameters
    ----------
    total : int
        Maximum number of epochs (the bar's length; training may stop earlier).
    desc : str
        Label (e.g. the model's name).
    enabled : bool
        ``False`` prints nothing.
    use_tqdm : bool, optional
        Force (``True``) or refuse (``False``) tqdm; default: use it when installed.

    Examples
    --------
    >>> progress = EpochProgress(2, "demo", use_tqdm=False)
    >>> progress.update(1, loss=0.5)
    demo epoch 1/2: loss 0.5
    >>> progress.close()
    """

    def __init__(self, total: int, desc: str, enabled: bool = True, use_tqdm: bool | None = None, file=None):
        self.total = int(total)
        self.desc = desc
        self.enabled = bool(enabled)
        self.file = file
        if use_tqdm is None:
            use_tqdm = has_module("tqdm")
        self._bar = None
        if self.enabled and use_tqdm:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total, desc=desc, unit="epoch", leave=True, file=file)

    @staticmethod
    def _format(value) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value)

    def update(self, epoch: int, **metrics) -> None:
        """Report that ``epoch`` (1-based) finished, with its metrics."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.set_postfix({k: self._format(v) for k, v in metrics.items()}, refresh=False)
            self._bar.update(epoch - self._bar.n)
            return
        text = ", ".join(f"{k} {self._format(v)}" for k, v in metrics.items())
        print(f"{self.desc} epoch {epoch}/{self.total}: {text}", file=self.file or sys.stdout, flush=True)

    def write(self, message: str) -> None:
        """Print a line without breaking the bar."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(message, file=self.file)
        else:
            print(message, file=self.file or sys.stdout, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


# ------------------------------------------------------------------ batching


def pad_batch(sequences: Sequence[np.ndarray], length: int | None = None, batch_size: int | None = None, dtype="float32"):
    """Stack variable-length sequences time-major, padded with zeros at the end.

    Parameters
    ----------
    sequences : list of arrays ``(T_i, features)``
    length : int, optional
        Pad to this many steps (default: the longest ``T_i``).  A fixed length
        keeps shapes static (one compile per shape in JAX mode).
    batch_size : int, optional
        Pad with empty (all-masked) sequences up to this many columns.

    Returns
    -------
    batch : ndarray ``(time, batch, features)``
    mask : ndarray ``(time, batch)``
        1 at valid steps, 0 at padding.

    Examples
    --------
    >>> x, m = pad_batch([np.ones((2, 3)), np.ones((1, 3))])
    >>> x.shape, m.T.tolist()
    ((2, 2, 3), [[1.0, 1.0], [1.0, 0.0]])
    """
    if len(sequences) == 0:
        raise ValueError("pad_batch needs at least one sequence")
    lengths = [len(s) for s in sequences]
    features = np.shape(sequences[0])[1:]
    T = max(lengths) if length is None else int(length)
    if T < max(lengths):
        raise ValueError(f"length={T} is shorter than the longest sequence ({max(lengths)} steps)")
    B = len(sequences) if batch_size is None else int(batch_size)
    if B < len(sequences):
        raise ValueError(f"batch_size={B} is smaller than the number of sequences ({len(sequences)})")
    batch = np.zeros((T, B) + tuple(features), dtype=dtype)
    mask = np.zeros((T, B), dtype=dtype)
    for j, s in enumerate(sequences):
        batch[: len(s), j] = s
        mask[: len(s), j] = 1
    return batch, mask


def minibatches(lengths: Sequence[int], batch_size: int, rng: np.random.Generator, sort: bool = True) -> list:
    """Shuffled minibatches of indices, each holding sequences of similar length.

    With ``sort=True`` the indices are shuffled, grouped into chunks of 50
    batches, sorted by length inside each chunk and cut into batches (which
    are shuffled again), so a batch wastes little time on padding while the
    order still changes from epoch to epoch.
    """
    lengths = np.asarray(lengths)
    order = rng.permutation(len(lengths))
    if sort:
        chunk = 50 * batch_size
        order = np.concatenate(
            [part[np.argsort(lengths[part], kind="stable")] for part in np.array_split(order, max(1, -(-len(order) // chunk)))]
        ) if len(order) else order
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return [batches[k] for k in rng.permutation(len(batches))]


# ------------------------------------------------------------------- report


def format_table(rows: Sequence[Mapping], columns: Sequence[str] | None = None) -> str:
    """A plain-text table of ``rows`` (dicts), one column per key.

    >>> print(format_table([{"model": "lstm", "accuracy": 1.0}]))
    model  accuracy
    lstm   1
    """
    if not rows:
        return ""
    columns = list(columns or rows[0].keys())

    def cell(value):
        if isinstance(value, float):
            return f"{value:.4g}"
        return "" if value is None else str(value)

    table = [columns] + [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(r[k]) for r in table) for k in range(len(columns))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in table)


def save_learning_curves(curves: Mapping[str, Mapping[str, Sequence[float]]], path: str | None, title: str = "") -> str | None:
    """Plot per-epoch curves to a PNG at ``path``; skipped (with a message) without matplotlib.

    Parameters
    ----------
    curves : dict
        ``{run name: {metric name: values per epoch}}``; one subplot per metric.
    path : str or None
        Where to write the PNG; ``None`` does nothing.

    Returns
    -------
    str or None
        ``path`` when the file was written, else ``None``.
    """
    if path is None:
        return None
    if not has_module("matplotlib"):
        print(f"matplotlib is not installed: skipping the learning-curve plot {path} (pip install matplotlib)")
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    metrics: list[str] = []
    for run in curves.values():
        metrics += [m for m in run if m not in metrics]
    if not metrics:
        print(f"no learning curves to plot: skipping {path}")
        return None
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.8), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for name, run in curves.items():
            values = run.get(metric)
            if values is not None and len(values):
                ax.plot(np.arange(1, len(values) + 1), values, marker=".", label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if "loss" in metric and all(min(run.get(metric) or [1.0]) > 0 for run in curves.values()):
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"learning curves written to {path}")
    return path
