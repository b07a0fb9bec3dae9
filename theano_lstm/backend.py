"""PyTensor specifics in one place: scan, activations, dtypes and compile modes.

Every other module of :mod:`theano_lstm` goes through this one for anything that
depends on the PyTensor version or on the backend that compiles a graph, so that
a change of PyTensor touches a single file.

Compile modes
-------------
A *mode* decides which backend turns a graph into machine code.  The library
accepts these names wherever it takes ``mode=`` (and :func:`set_default_mode`
changes the default):

``"cpu"``
    The library default: PyTensor's C virtual machine (``"c"`` below).  It
    compiles a small training function in a few seconds once its cache is warm
    and runs recurrent graphs at least as fast as Numba does for the small
    models of the tutorials.  See the documentation's *Choosing a compile mode* page for measurements.
``"c"``
    PyTensor's ``CVM`` mode (C code, cached on disk in ``pytensor.config.compiledir``).
``"numba"``
    PyTensor's ``NUMBA`` mode (its own default since PyTensor 3).  Slow first
    compile of a new graph, fast loops.
``"jax"``
    PyTensor's ``JAX`` mode, on whatever device jax uses (a CUDA GPU when a
    CUDA build of jax is installed).  Needs static shapes: one compile per
    distinct (time, batch) shape.  Requires ``floatX=float32`` (see
    :func:`use_float32`).
``"gpu"``
    Same as ``"jax"`` but refuses to compile unless jax sees a GPU.
``"fast_compile"``
    Minimal graph rewriting (PyTensor's ``fast_compile`` rewrites) and every
    Op run by its Python/NumPy ``perform``: nothing is compiled, so a graph
    is ready in about a second even on a cold cache.  For debugging, tests
    and tiny problems; loops run slower than in the other modes.  (PyTensor's
    own ``FAST_COMPILE`` still compiles a C thunk per Op, tens of seconds on
    a cold cache.)  To make it PyTensor's default too (for ``.eval()``):
    ``pytensor.config.mode = backend.get_mode("fast_compile")``.

A :class:`pytensor.compile.mode.Mode` instance is accepted too and used as is.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.compile.mode import Mode, get_mode as _pytensor_get_mode
from pytensor.gradient import grad_clip

__all__ = [
    "scan",
    "sigmoid",
    "tanh",
    "relu",
    "hard_sigmoid",
    "softmax",
    "log_softmax",
    "linear",
    "get_activation",
    "ACTIVATION_NAMES",
    "clip_gradient",
    "random_draw",
    "is_integer",
    "floatX",
    "as_floatX",
    "shared",
    "get_mode",
    "set_default_mode",
    "get_default_mode",
    "function",
    "ShapeSpecializedFunction",
    "jax_cache_dir",
    "bucket_lengths",
    "use_float32",
    "to_numpy",
    "MODE_NAMES",
]

# --------------------------------------------------------------------------- scan


def scan(
    fn: Callable,
    sequences: Sequence | None = None,
    outputs_info: Sequence | None = None,
    non_sequences: Sequence | None = None,
    n_steps=None,
    truncate_gradient: int = -1,
    go_backwards: bool = False,
    strict: bool = True,
    name: str | None = None,
):
    """Run ``pytensor.scan`` and return only its outputs (a list).

    Thin wrapper fixing the two arguments that changed across PyTensor
    versions: updates are never returned (the library's graphs draw no random
    numbers inside a loop) and ``return_list=True`` so callers always unpack a
    list.  ``strict=True`` by default: every shared variable the step uses must
    be passed in ``non_sequences``, which keeps the inner graph explicit and is
    what JAX and Numba compile best.
    """
    outputs = pytensor.scan(
        fn,
        sequences=list(sequences or []),
        outputs_info=list(outputs_info or []),
        non_sequences=list(non_sequences or []),
        n_steps=n_steps,
        truncate_gradient=truncate_gradient,
        go_backwards=go_backwards,
        strict=strict,
        name=name,
        return_list=True,
        return_updates=False,
    )
    return list(outputs)


# -------------------------------------------------------------------- activations


def sigmoid(x):
    """Logistic function :math:`1 / (1 + e^{-x})`."""
    return pt.sigmoid(x)


def tanh(x):
    """Hyperbolic tangent."""
    return pt.tanh(x)


def relu(x):
    """Rectified linear unit :math:`\\max(x, 0)`, written with ``maximum`` so its
    gradient at 0 is 0 and it compiles on every backend."""
    return pt.maximum(x, pt.zeros_like(x))


def hard_sigmoid(x):
    """Piecewise-linear sigmoid :math:`\\mathrm{clip}(0.2 x + 0.5, 0, 1)`.

    The form used by Keras and by the GRU language-model tutorial; cheaper than
    :func:`sigmoid` and equal to it at 0.
    """
    slope = pt.as_tensor_variable(np.asarray(0.2, dtype=x.dtype))
    shift = pt.as_tensor_variable(np.asarray(0.5, dtype=x.dtype))
    return pt.clip(x * slope + shift, 0, 1)


def softmax(x):
    """Softmax over the last axis (PyTensor requires the axis to be explicit)."""
    return pt.special.softmax(x, axis=-1)


def log_softmax(x):
    """Log-softmax over the last axis, computed stably."""
    return pt.special.log_softmax(x, axis=-1)


def linear(x):
    """Identity activation."""
    return x


_ACTIVATIONS: dict[str, Callable] = {
    "sigmoid": sigmoid,
    "tanh": tanh,
    "relu": relu,
    "hard_sigmoid": hard_sigmoid,
    "softmax": softmax,
    "log_softmax": log_softmax,
    "linear": linear,
    "identity": linear,
}


#: The activation names every ``activation=`` argument accepts.
ACTIVATION_NAMES = tuple(_ACTIVATIONS)


def get_activation(activation: str | Callable | None) -> Callable:
    """Resolve an activation given by name or as a callable.

    Parameters
    ----------
    activation : str or callable or None
        One of ``"sigmoid"``, ``"tanh"``, ``"relu"``, ``"hard_sigmoid"``,
        ``"softmax"``, ``"log_softmax"``, ``"linear"``/``"identity"``; a
        callable mapping a tensor to a tensor of the same shape; or ``None``
        for the identity.

    Raises
    ------
    ValueError
        For an unknown name.
    TypeError
        For anything that is neither a string nor callable.

    Examples
    --------
    >>> get_activation("tanh") is tanh
    True
    """
    if activation is None:
        return linear
    if isinstance(activation, str):
        try:
            return _ACTIVATIONS[activation]
        except KeyError:
            raise ValueError(
                f"unknown activation {activation!r}; expected one of "
                f"{sorted(_ACTIVATIONS)} or a callable"
            ) from None
    if callable(activation):
        return activation
    raise TypeError(
        f"activation must be a name or a callable, received {type(activation).__name__}"
    )


def activation_name(activation: Callable) -> str | None:
    """The registered name of ``activation``, or ``None`` for a custom callable."""
    for name, fn in _ACTIVATIONS.items():
        if fn is activation:
            return name
    for name, fn in (("sigmoid", pt.sigmoid), ("tanh", pt.tanh)):
        if fn is activation:
            return name
    return None


def clip_gradient(x, bound: float):
    """Identity in the forward pass; clips the gradient flowing back through
    ``x`` to ``[-bound, bound]`` (Graves 2013).  Not to be confused with the
    optimizer-side clipping of parameter gradients in
    :mod:`theano_lstm.optimizers`."""
    bound = float(bound)
    if not bound > 0:
        raise ValueError(f"gradient clipping bound must be > 0, received {bound}")
    return grad_clip(x, -bound, bound)


# ------------------------------------------------------------------ random draws


def _returns_next_rng() -> bool:
    import inspect

    from pytensor.tensor.random.op import RandomVariable

    return "return_next_rng" in inspect.signature(RandomVariable.__call__).parameters


#: PyTensor 3 returns ``(next_rng, draw)`` on request (and warns when the generator output is hidden).
_RETURNS_NEXT_RNG = _returns_next_rng()


def random_draw(distribution: Callable, *params, rng, size=None):
    """``(next_rng, draw)`` from ``distribution`` (e.g. ``pt.random.bernoulli``) and a shared ``rng``.

    The caller must put ``{rng: next_rng}`` into the compiled function's
    updates so every call draws fresh numbers.  Hides the PyTensor 2/3
    difference in how the next generator state is obtained.
    """
    if _RETURNS_NEXT_RNG:
        next_rng, draw = distribution(*params, size=size, rng=rng, return_next_rng=True)
    else:  # pragma: no cover - PyTensor < 3: the next generator is the draw's sibling output
        draw = distribution(*params, size=size, rng=rng)
        next_rng = draw.owner.outputs[0]
    return next_rng, draw


# ------------------------------------------------------------------------- dtypes


def is_integer(x) -> bool:
    """Whether the tensor ``x`` has a (signed or unsigned) integer dtype."""
    return x.dtype.startswith(("int", "uint"))


def floatX() -> str:
    """The current ``pytensor.config.floatX`` (``"float64"`` unless configured)."""
    return pytensor.config.floatX


def as_floatX(value) -> np.ndarray:
    """``value`` as a NumPy array of dtype :func:`floatX`."""
    return np.asarray(value, dtype=floatX())


def shared(value, name: str | None = None, dtype: str | None = None):
    """A shared variable with a *static* shape (what JAX mode needs).

    ``value`` is copied and cast to ``dtype`` (default :func:`floatX`).
    """
    value = np.array(value, dtype=dtype or floatX(), copy=True)
    return pytensor.shared(value, name=name, shape=value.shape)


def use_float32() -> None:
    """Set ``pytensor.config.floatX = "float32"``.

    Call it before building any model that should run in float32, and always
    before a first JAX compile: with the default ``float64`` a float32
    parameter silently becomes float64 after one update in JAX mode.
    """
    pytensor.config.floatX = "float32"


def to_numpy(value) -> np.ndarray:
    """A NumPy array from a compiled function's output or a shared variable.

    JAX mode returns ``jax.Array`` objects and keeps shared values on the
    device; this brings them back for saving, plotting or comparisons.
    """
    if hasattr(value, "get_value"):
        value = value.get_value(borrow=False)
    return np.asarray(value)


# -------------------------------------------------------------------------- modes

MODE_NAMES = ("cpu", "c", "numba", "jax", "gpu", "fast_compile")
_PYTENSOR_MODE = {
    "c": "CVM",
    "numba": "NUMBA",
    "jax": "JAX",
    "gpu": "JAX",
}  # "fast_compile" is the library's own mode: _python_mode


@functools.lru_cache(maxsize=None)
def _python_mode() -> Mode:
    """The ``"fast_compile"`` mode: fast_compile rewrites, every Op's Python ``perform``.

    PyTensor compiles a Scan's inner graph with the mode the Scan was *built*
    with (``None``: C, "CVM"), not the mode of the function it ends up in, so a
    last rewrite hands every outer Scan the Python inner mode as well.
    """
    import copy

    from pytensor.graph.rewriting.basic import in2out, node_rewriter
    from pytensor.link.vm import VMLinker
    from pytensor.scan.op import Scan

    @node_rewriter([Scan])
    def python_inner_graph(fgraph, node):
        if node.op.mode == "FAST_COMPILE":  # PyTensor's name for a C-free inner mode
            return None
        op = copy.copy(node.op)
        op.mode, op._fn = "FAST_COMPILE", None
        return op.make_node(*node.inputs).outputs

    mode = Mode(linker=VMLinker(use_cloop=False, c_thunks=False), optimizer="fast_compile")
    return mode.register((in2out(python_inner_graph, name="theano_lstm_python_scan"), 99))


_default_mode = "cpu"
_CPU_DEFAULT = "c"


def _resolve_name(name: str) -> str:
    key = name.lower()
    if key not in MODE_NAMES:
        raise ValueError(f"unknown compile mode {name!r}; expected one of {list(MODE_NAMES)}")
    return _CPU_DEFAULT if key == "cpu" else key


JAX_CACHE_ENV = "THEANO_LSTM_JAX_CACHE"


def jax_cache_dir() -> str | None:
    """Where JAX mode keeps compiled programs between processes (``None``: nowhere).

    The first compile in ``"jax"``/``"gpu"`` mode turns on jax's persistent
    compilation cache in ``<pytensor.config.compiledir>/jax`` (next to
    PyTensor's own C cache, so clearing one clears both), unless jax's
    ``jax_compilation_cache_dir`` was already set by the user (then that one
    is used).  The environment variable ``THEANO_LSTM_JAX_CACHE`` overrides
    the folder; ``THEANO_LSTM_JAX_CACHE=off`` turns the cache off.  Like
    PyTensor's compiledir, the folder holds executable code: keep it private.
    """
    value = os.environ.get(JAX_CACHE_ENV)
    if value is not None and value.strip().lower() in ("", "0", "off", "false", "no", "none"):
        return None
    if value:
        return os.path.abspath(os.path.expanduser(value))
    return os.path.join(pytensor.config.compiledir, "jax")


def _configure_jax_cache(jax) -> None:
    if jax.config.jax_compilation_cache_dir:  # the user chose already
        return
    folder = jax_cache_dir()
    if folder is None:
        return
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
    except OSError as exc:
        import warnings

        warnings.warn(f"JAX compilation cache disabled: cannot create {folder!r} ({exc})", stacklevel=3)
        return
    jax.config.update("jax_compilation_cache_dir", folder)
    # the recurrent graphs compile in 0.2-3 s: cache them all
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


@functools.lru_cache(maxsize=None)
def _jax_platform() -> str:
    try:
        import jax
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "mode 'jax'/'gpu' needs jax: pip install 'theano_lstm[jax]' "
            "(or 'theano_lstm[gpu]' for CUDA)"
        ) from None
    _configure_jax_cache(jax)
    return jax.default_backend()


def get_mode(mode: str | Mode | None = None) -> Mode:
    """The :class:`~pytensor.compile.mode.Mode` for a library mode name.

    Parameters
    ----------
    mode : str or Mode or None
        A name from :data:`MODE_NAMES`, a ready ``Mode``, or ``None`` for the
        current default (:func:`get_default_mode`).

    Raises
    ------
    ValueError
        Unknown name; ``"jax"``/``"gpu"`` while ``floatX`` is not float32;
        ``"gpu"`` when jax sees no GPU.
    ImportError
        ``"jax"``/``"gpu"`` without jax installed.

    Examples
    --------
    >>> get_mode("numba").linker.__class__.__name__
    'NumbaLinker'
    """
    if isinstance(mode, Mode):
        return mode
    if mode is None:
        mode = _default_mode
    if not isinstance(mode, str):
        raise TypeError(f"mode must be a name or a pytensor Mode, received {type(mode).__name__}")
    key = _resolve_name(mode)
    if key in ("jax", "gpu"):
        platform = _jax_platform()
        if floatX() != "float32":
            raise ValueError(
                f"mode {mode!r} needs pytensor.config.floatX='float32' (it is {floatX()!r}); "
                "call theano_lstm.backend.use_float32() before building the model"
            )
        if key == "gpu" and platform != "gpu":
            raise ValueError(
                f"mode 'gpu' needs a CUDA build of jax that sees a GPU; jax is using {platform!r}. "
                "Install it with pip install 'theano_lstm[gpu]' or use mode='jax'"
            )
    if key == "fast_compile":
        return _python_mode()
    return _pytensor_get_mode(_PYTENSOR_MODE[key])


def set_default_mode(mode: str) -> None:
    """Make ``mode`` (a name from :data:`MODE_NAMES`) the library default."""
    global _default_mode
    _resolve_name(mode)
    _default_mode = mode.lower()


def get_default_mode() -> str:
    """The name of the current default mode."""
    return _default_mode


def function(inputs, outputs=None, updates=None, mode: str | Mode | None = None, **kwargs: Any):
    """``pytensor.function`` compiled in a library mode (default :func:`get_default_mode`).

    In ``"jax"``/``"gpu"`` mode the graph is compiled once per distinct set of
    input shapes, each time with those shapes made static (JAX traces with
    concrete shapes; a symbolic batch size or time length would fail deep
    inside jax).  The returned :class:`ShapeSpecializedFunction` caches one
    compiled function per shape; group variable-length data into a few
    lengths (see :func:`bucket_lengths`) to keep the number of compiles small.
    An axis of length 1 (a batch of one) must be fixed when the graph is
    built (``pt.tensor3("x", shape=(None, 1, n))``): PyTensor's scan cannot
    re-specialize it afterwards.
    Other modes return a plain ``pytensor`` function.
    """
    resolved = get_mode(mode)
    if _is_jax(mode, resolved):
        return ShapeSpecializedFunction(inputs, outputs, updates=updates, mode=resolved, **kwargs)
    return pytensor.function(inputs, outputs, updates=updates, mode=resolved, **kwargs)


def _is_jax(name, resolved: Mode) -> bool:
    if isinstance(name, str):
        return _resolve_name(name) in ("jax", "gpu")
    if name is None:
        return _resolve_name(_default_mode) in ("jax", "gpu")
    return type(resolved.linker).__name__ == "JAXLinker"


class ShapeSpecializedFunction:
    """A function compiled once per distinct input shape (JAX mode).

    Behaves like the function ``pytensor.function(inputs, outputs,
    updates=updates)`` would; on each call it looks up (or compiles) the
    version whose inputs have the call's shapes as static shapes.  Shared
    variables and their updates are common to all versions.

    Attributes
    ----------
    compiled : dict
        ``{shapes: pytensor function}``, one entry per shape seen so far.
    """

    def __init__(self, inputs, outputs, updates=None, mode=None, **kwargs):
        self.inputs = list(inputs)
        for v in self.inputs:
            if not isinstance(v, pytensor.graph.basic.Variable) or v.owner is not None:
                raise TypeError(
                    f"jax-mode function inputs must be root symbolic variables, received {v!r}"
                )
        self._single = outputs is not None and not isinstance(outputs, (list, tuple))
        self.outputs = [] if outputs is None else ([outputs] if self._single else list(outputs))
        if updates is None:
            updates = []
        self.updates = list(updates.items()) if hasattr(updates, "items") else list(updates)
        self.mode = mode
        self.kwargs = kwargs
        self.compiled: dict = {}

    def _compile(self, shapes):
        from pytensor.graph.replace import clone_replace

        replace = {}
        new_inputs = []
        for v, shape in zip(self.inputs, shapes):
            if len(shape) != v.ndim:
                raise ValueError(
                    f"input {v.name or v} expects {v.ndim} dimensions, received an array with shape {shape}"
                )
            for axis, (want, got) in enumerate(zip(v.type.shape, shape)):
                if want is not None and want != got:
                    raise ValueError(
                        f"input {v.name or v} axis {axis} must have length {want}, received shape {shape}"
                    )
            for axis, (want, got) in enumerate(zip(v.type.shape, shape)):
                # Scan's inner graphs were built for a non-broadcastable axis:
                # a length-1 axis can only be specialized if the graph was
                # built with it fixed.
                if want is None and got == 1:
                    fixed = tuple(1 if a == axis else w for a, w in enumerate(v.type.shape))
                    raise ValueError(
                        f"input {v.name or v} has length 1 on axis {axis}, which the graph left symbolic; "
                        f"in JAX mode declare length-1 axes when building the graph, e.g. "
                        f"pt.tensor(name={v.name!r}, dtype={v.dtype!r}, shape={fixed})"
                    )
            new = v.type.clone(shape=shape)(name=v.name)
            replace[v] = new
            new_inputs.append(new)
        targets = [t for t, _ in self.updates]
        graph = clone_replace(self.outputs + [u for _, u in self.updates], replace=replace, rebuild_strict=False)
        outs = graph[: len(self.outputs)]
        new_updates = list(zip(targets, graph[len(self.outputs) :]))
        fn_outputs = outs[0] if self._single else (outs if self.outputs else None)
        return pytensor.function(new_inputs, fn_outputs, updates=new_updates, mode=self.mode, **self.kwargs)

    def __call__(self, *args):
        if len(args) != len(self.inputs):
            raise TypeError(f"function takes {len(self.inputs)} inputs, received {len(args)}")
        shapes = tuple(tuple(np.shape(a)) for a in args)
        fn = self.compiled.get(shapes)
        if fn is None:
            fn = self.compiled[shapes] = self._compile(shapes)
        return fn(*args)


def bucket_lengths(lengths: Sequence[int], buckets: Sequence[int]) -> np.ndarray:
    """For each sequence length, the smallest bucket length that holds it.

    Pad every sequence of a minibatch to its bucket's length so a
    :class:`ShapeSpecializedFunction` compiles once per bucket instead of once
    per length.

    >>> bucket_lengths([3, 9, 10, 17], buckets=[10, 20])
    array([10, 10, 10, 20])
    """
    buckets = np.sort(np.asarray(buckets, dtype=int))
    lengths = np.asarray(lengths, dtype=int)
    if buckets.size == 0 or lengths.size and lengths.max() > buckets[-1]:
        raise ValueError(
            f"every length must fit a bucket: longest length {int(lengths.max()) if lengths.size else 0}, "
            f"largest bucket {int(buckets[-1]) if buckets.size else None}"
        )
    return buckets[np.searchsorted(buckets, lengths)]
