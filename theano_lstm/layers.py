"""Cells: ``Layer``, ``Embedding``, ``RNN``, ``LSTM``, ``GRU`` and ``GatedInput``.

Every cell is a step function that composes inside :func:`pytensor.scan`: it
never calls scan itself (that is :class:`theano_lstm.StackedCells`'s job).

Conventions
-----------
* Weights are ``(input, output)``: a layer computes ``x @ W + b``, so the same
  code serves one example ``x`` of shape ``(input_size,)`` and a batch of shape
  ``(batch, input_size)`` (and any leading axes, e.g. a whole time-major
  sequence for the non-recurrent layers).
* The gates of a recurrent cell are fused: one input matrix ``linear_matrix``
  of shape ``(input_size, G * hidden_size)``, one ``recurrent_matrix`` of shape
  ``(hidden_size, G * hidden_size)`` and one ``bias_matrix`` of shape
  ``(G * hidden_size,)``, so a step does one matrix product per input.  The
  gate order is documented per cell (LSTM ``i, f, g, o`` and GRU ``r, z, n``,
  PyTorch's orders).
* The state a recurrent cell carries is given to and returned by
  :meth:`RecurrentCell.activate` in the 2014 packed layout: an LSTM's state is
  ``[c, h]`` concatenated on the last axis (``c`` first); RNN and GRU states are
  ``h``.  Only ``h`` goes up a stack (:meth:`RecurrentCell.postprocess_activation`).
  The runner carries ``c`` and ``h`` separately (:meth:`RecurrentCell.step`),
  so it never concatenates per step.
* Shared variables get stable dotted names: ``"<cell name>.<attribute>"``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytensor.tensor as pt
from pytensor.compile.sharedvalue import SharedVariable

from . import backend
from . import init as initializers

__all__ = [
    "Cell",
    "Layer",
    "Embedding",
    "RecurrentCell",
    "RNN",
    "LSTM",
    "GRU",
    "GatedInput",
    "Gate",
    "split_lstm_state",
]


def _check_size(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be a positive int, received {value!r} ({type(value).__name__})")
    if value <= 0:
        raise ValueError(f"{what} must be a positive int, received {value}")
    return int(value)


def _as_tensor(x, what: str):
    try:
        return pt.as_tensor_variable(x)
    except Exception as exc:  # noqa: BLE001 - re-raised with context
        raise TypeError(f"{what} must be a tensor or array, received {type(x).__name__}") from exc


def check_features(x, size: int, what: str, owner: str):
    """Check the last axis of ``x`` is ``size`` (statically when known).

    Returns ``x`` as a tensor (with a ``specify_shape`` on the last axis when
    its length is not known statically, so a wrong size at run time fails
    with a shape message instead of a wrong answer).
    """
    x = _as_tensor(x, what)
    if x.ndim == 0:
        raise ValueError(f"{what} must have a feature axis of size {size}, received a scalar")
    if not x.dtype.startswith("float"):
        raise TypeError(f"{what} must be a float tensor, received dtype {x.dtype}")
    last = x.type.shape[-1]
    if last is None:
        return pt.specify_shape(x, (None,) * (x.ndim - 1) + (size,))
    if last != size:
        raise ValueError(f"{what} has {last} features but this {owner} was built with {size}")
    return x


class Cell:
    """Base of every cell: parameters, naming and the 2014 ``params`` API.

    Subclasses list the attribute names of their shared variables in
    ``_param_attrs`` (in the order :attr:`params` returns them).
    """

    is_recursive = False
    #: number of state tensors carried through time (0 for stateless cells)
    n_states = 0
    _param_attrs: tuple[str, ...] = ()

    def __init__(self, name: str | None, dtype: str | None, rng):
        self.name = name if name is not None else type(self).__name__
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"name must be a non-empty str, received {name!r}")
        self.dtype = dtype or backend.floatX()
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', received {self.dtype!r}")
        self._rng = initializers.as_rng(rng)
        self._config: dict = {}

    # ----------------------------------------------------------- parameters
    def _new_param(self, attr: str, shape, init, what: str):
        value = initializers.resolve(init, what)(shape, self._rng)
        var = backend.shared(value, name=f"{self.name}.{attr}", dtype=self.dtype)
        setattr(self, attr, var)
        return var

    @property
    def params(self) -> list:
        """The cell's trainable shared variables, in a fixed order.

        Setting ``params`` accepts a list of the same length whose items are
        NumPy arrays (values are copied in, cast to the cell's dtype) or
        shared variables (which replace the cell's own, e.g. to tie weights);
        each must have the shape of the parameter it replaces.
        """
        return [getattr(self, a) for a in self._param_attrs]

    @params.setter
    def params(self, values: Sequence) -> None:
        names = list(self._param_attrs)
        values = list(values)
        if len(values) != len(names):
            raise ValueError(
                f"{self.name} has {len(names)} parameters {names} but {len(values)} values were given"
            )
        checked = []
        for attr, value in zip(names, values):
            current = getattr(self, attr)
            want = current.get_value(borrow=True).shape
            if isinstance(value, SharedVariable):
                got = value.get_value(borrow=True).shape
            else:
                value = np.asarray(value)
                got = value.shape
            if tuple(got) != tuple(want):
                raise ValueError(f"{self.name}.{attr} must have shape {tuple(want)}, received {tuple(got)}")
            checked.append((attr, value))
        for attr, value in checked:
            if isinstance(value, SharedVariable):
                setattr(self, attr, value)
            else:
                getattr(self, attr).set_value(np.asarray(value, dtype=self.dtype))

    def get_config(self) -> dict:
        """Constructor arguments that rebuild this cell's architecture (JSON-able).

        Activations are reported as they are now (a reassigned activation
        shows its new name; a custom callable shows as ``"<custom ...>"``).
        """
        config = dict(self._config)
        if "activation" in config:
            config["activation"] = _activation_config(self.activation)
        if "gate_activation" in config:  # GRU
            config["gate_activation"] = _activation_config(self.reset_gate.activation)
        return config

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Layer(Cell):
    r"""A fully connected layer, :math:`y = \phi(x W + b)`.

    .. math::
        y = \phi(x\,W + b)

    Parameters
    ----------
    input_size, hidden_size : int
        Sizes of :math:`x` and :math:`y`.
    activation : str or callable
        :math:`\phi`; a name (``"tanh"``, ``"sigmoid"``, ``"relu"``,
        ``"softmax"``, ``"linear"``…) or a tensor function.
    clip_gradients : float or False
        When a number, the gradient reaching the pre-activation
        :math:`xW + b` is clipped to ``[-clip_gradients, clip_gradients]``.
    W_init, b_init : Initializer, number or callable
        Initializers of ``linear_matrix`` (``(input_size, hidden_size)``) and
        ``bias_matrix`` (``(hidden_size,)``; zero by default).
    rng : int or numpy.random.Generator, optional
        Seed for the initializers.
    name : str, optional
        Prefix of the shared variables' names (default ``"Layer"``).
    dtype : str, optional
        Parameter dtype (default ``pytensor.config.floatX``).

    Examples
    --------
    >>> import numpy as np
    >>> layer = Layer(3, 2, "linear", rng=0)
    >>> layer.params = [np.ones((3, 2)), np.zeros(2)]
    >>> layer.activate(np.ones((1, 3))).eval()
    array([[3., 3.]])
    """

    _param_attrs = ("linear_matrix", "bias_matrix")

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        activation: str | Callable,
        clip_gradients: float | bool = False,
        W_init=None,
        b_init=0.0,
        rng=None,
        name: str | None = None,
        dtype: str | None = None,
    ):
        super().__init__(name, dtype, rng)
        self.input_size = _check_size(input_size, "input_size")
        self.hidden_size = _check_size(hidden_size, "hidden_size")
        self.activation = backend.get_activation(activation)
        self.clip_gradients = _check_clip(clip_gradients)
        self._new_param("linear_matrix", (self.input_size, self.hidden_size), initializers.Normal2014() if W_init is None else W_init, "W_init")
        self._new_param("bias_matrix", (self.hidden_size,), b_init, "b_init")
        self._config = dict(
            input_size=self.input_size,
            hidden_size=self.hidden_size,
            activation=_activation_config(self.activation),
            clip_gradients=self.clip_gradients,
            name=self.name,
        )

    def activate(self, x, weights: Sequence | None = None):
        """Apply the layer to ``x`` of shape ``(..., input_size)``; returns ``(..., hidden_size)``.

        ``weights`` replaces ``[linear_matrix, bias_matrix]`` (the runner
        passes scan's inner copies of them).
        """
        W, b = weights if weights is not None else self.params
        x = check_features(x, self.input_size, "x", type(self).__name__ + " layer")
        pre = pt.dot(x, W) + b
        if self.clip_gradients:
            pre = backend.clip_gradient(pre, self.clip_gradients)
        return self.activation(pre)

    def weights(self) -> list:
        """Tensors the layer reads (its parameters)."""
        return self.params


class Embedding(Cell):
    r"""A lookup table, :math:`y = E[x]`.

    Parameters
    ----------
    vocabulary_size : int
        Number of rows of ``embedding_matrix`` (valid indices are
        ``0 … vocabulary_size - 1``).
    hidden_size : int
        Size of an embedding vector.
    W_init : Initializer, optional
        Initializer of ``embedding_matrix`` (default :class:`~theano_lstm.init.Normal2014`).
    rng, name, dtype
        As for :class:`Layer`.

    Notes
    -----
    ``activate`` takes integer indices of any shape (scalar, ``(batch,)``,
    ``(time, batch)``) and returns the embeddings with a trailing
    ``hidden_size`` axis.  Float indices are rejected: they usually mean
    one-hot inputs were passed by mistake.

    Examples
    --------
    >>> emb = Embedding(5, 2, rng=0)
    >>> emb.activate(np.array([0, 4])).eval().shape
    (2, 2)
    """

    _param_attrs = ("embedding_matrix",)

    def __init__(self, vocabulary_size: int, hidden_size: int, W_init=None, rng=None, name=None, dtype=None):
        super().__init__(name, dtype, rng)
        self.vocabulary_size = _check_size(vocabulary_size, "vocabulary_size")
        self.hidden_size = _check_size(hidden_size, "hidden_size")
        self.input_size = self.vocabulary_size
        self._new_param(
            "embedding_matrix", (self.vocabulary_size, self.hidden_size), initializers.Normal2014() if W_init is None else W_init, "W_init"
        )
        self._config = dict(vocabulary_size=self.vocabulary_size, hidden_size=self.hidden_size, name=self.name)

    def activate(self, x, weights: Sequence | None = None):
        """Look up integer indices ``x`` (any shape); returns ``x.shape + (hidden_size,)``."""
        (E,) = weights if weights is not None else self.params
        x = _as_tensor(x, "embedding indices")
        if not (x.dtype.startswith("int") or x.dtype.startswith("uint")):
            raise TypeError(
                f"embedding indices must be an integer tensor, received dtype {x.dtype} "
                f"(values 0..{self.vocabulary_size - 1} expected)"
            )
        return E[x]

    def weights(self) -> list:
        return self.params


class Gate:
    """One gate of a fused recurrent cell: holds the gate's ``activation``.

    Reassigning ``activation`` (a name or a tensor function) changes every
    graph built afterwards, e.g. ``lstm.in_gate2.activation = lambda x: x``.
    The gate's weights live in the cell's fused matrices; ``columns`` is the
    slice of their last axis that belongs to this gate.
    """

    def __init__(self, name: str, activation, columns: slice):
        self.name = name
        self.activation = activation
        self.columns = columns

    @property
    def activation(self) -> Callable:
        return self._activation

    @activation.setter
    def activation(self, value) -> None:
        self._activation = backend.get_activation(value)

    def __repr__(self) -> str:
        return f"Gate({self.name!r}, columns={self.columns.start}:{self.columns.stop})"


class RecurrentCell(Cell):
    """Base of recurrent cells (RNN, LSTM, GRU).

    A recurrent cell splits one time step into

    * :meth:`input_projection` — :math:`x W + b` for every gate, which does not
      depend on the state and so can be computed for all time steps at once
      before the scan, and
    * :meth:`step` — the recurrence proper, from the projection and the
      previous states (a tuple: ``(h,)``, or ``(c, h)`` for an LSTM).

    :meth:`activate` chains the two on the 2014 packed state.
    """

    is_recursive = True
    n_states = 1
    n_gates = 1

    def _init_recurrent(self, input_size, hidden_size, activation, clip_gradients, learn_init, W_init, U_init, b_init):
        self.input_size = _check_size(input_size, "input_size")
        self.hidden_size = _check_size(hidden_size, "hidden_size")
        self.activation = backend.get_activation(activation)
        self.clip_gradients = _check_clip(clip_gradients)
        self.learn_init = bool(learn_init)
        G, H = self.n_gates, self.hidden_size
        self._new_param("linear_matrix", (self.input_size, G * H), initializers.Normal2014() if W_init is None else W_init, "W_init")
        self._new_param("recurrent_matrix", (H, G * H), initializers.Normal2014() if U_init is None else U_init, "U_init")
        self._new_param("bias_matrix", (G * H,), b_init, "b_init")
        self._config = dict(
            input_size=self.input_size,
            hidden_size=self.hidden_size,
            activation=_activation_config(self.activation),
            clip_gradients=self.clip_gradients,
            learn_init=self.learn_init,
            name=self.name,
        )

    def _init_state_param(self):
        if self.learn_init:
            self._new_param("initial_hidden_state", (self.state_size,), 0.0, "initial state")
            self._param_attrs = self._param_attrs + ("initial_hidden_state",)

    # ------------------------------------------------------------- state
    @property
    def state_size(self) -> int:
        """Size of the packed state (``hidden_size``; ``2 * hidden_size`` for LSTM)."""
        return self.n_states * self.hidden_size

    @property
    def initial_hidden_state(self):
        """The packed initial state, shape ``(state_size,)``.

        A trainable shared variable (listed in :attr:`params`) when the cell was
        built with ``learn_init=True``; otherwise a constant zero vector (the
        default, as in the 2014 package where it was never trained).
        """
        if self.learn_init:
            return self.__dict__["initial_hidden_state"]
        return pt.zeros((self.state_size,), dtype=self.dtype)

    @initial_hidden_state.setter
    def initial_hidden_state(self, value):
        if not self.learn_init:
            raise AttributeError(f"{self.name} was built with learn_init=False; its initial state is constant zero")
        self.__dict__["initial_hidden_state"] = value

    def pack(self, states: Sequence):
        """2014 packed layout from a state tuple (``[c, h]`` for an LSTM)."""
        return states[0] if len(states) == 1 else pt.concatenate(list(states), axis=-1)

    def unpack(self, packed) -> tuple:
        """State tuple from the packed layout."""
        packed = pt.as_tensor_variable(packed)
        if self.n_states == 1:
            return (packed,)
        H = self.hidden_size
        return tuple(packed[..., k * H : (k + 1) * H] for k in range(self.n_states))

    def output(self, states: Sequence):
        """What the cell passes up a stack: ``h`` (the last state)."""
        return states[-1]

    def postprocess_activation(self, packed, *args):
        """2014 API: the part of a packed state passed to the next layer (``h``)."""
        return self.output(self.unpack(packed))

    # --------------------------------------------------------- computation
    def projection_weights(self) -> list:
        """The weights :meth:`input_projection` reads (``[linear_matrix, bias_matrix]`` here;
        a subclass may read others, and the runner passes exactly this list)."""
        return [self.linear_matrix, self.bias_matrix]

    def recurrent_weights(self) -> list:
        """The weights :meth:`step` reads."""
        return [self.recurrent_matrix]

    def input_projection(self, x, weights: Sequence | None = None):
        """:math:`x W + b` for all gates: ``(..., input_size)`` → ``(..., n_gates * hidden_size)``."""
        W, b = weights if weights is not None else self.projection_weights()
        x = check_features(x, self.input_size, "x", type(self).__name__)
        return pt.dot(x, W) + b

    def step(self, xw, states: Sequence, weights: Sequence | None = None, h_mask=None) -> tuple:  # pragma: no cover
        """One recurrence step from the input projection ``xw`` and the previous ``states``.

        ``h_mask`` (optional, broadcastable to ``h``) multiplies ``h_{t-1}``
        where it enters the recurrent matrix products only (variational
        recurrent dropout); the state itself is carried unmasked.
        """
        raise NotImplementedError

    def _clip(self, z):
        return backend.clip_gradient(z, self.clip_gradients) if self.clip_gradients else z

    def activate(self, x, h):
        """One time step in the 2014 API.

        Parameters
        ----------
        x : tensor, shape ``(input_size,)`` or ``(batch, input_size)``
            Input at this step.
        h : tensor, shape ``(state_size,)`` or ``(batch, state_size)``
            Previous packed state.

        Returns
        -------
        tensor, shape like ``h``
            The new packed state.
        """
        prev = self.unpack(self._check_state(h))
        return self.pack(self.step(self.input_projection(x), prev))

    def _check_state(self, h):
        h = _as_tensor(h, "previous state")
        last = h.type.shape[-1] if h.ndim else None
        if h.ndim == 0 or (last is not None and last != self.state_size):
            raise ValueError(
                f"previous state of {self.name} must have {self.state_size} features on its last axis, "
                f"received shape {h.type.shape}"
            )
        return h


class RNN(RecurrentCell):
    r"""Elman recurrent cell.

    .. math::
        h_t = \phi(x_t W + h_{t-1} U + b)

    Parameters
    ----------
    input_size, hidden_size : int
        Sizes of :math:`x_t` and :math:`h_t`.
    activation : str or callable, default ``"tanh"``
        :math:`\phi`: any activation (``"tanh"``, ``"relu"`` for an IRNN,
        ``"linear"``…).
    clip_gradients : float or False
        Clip the gradient reaching the pre-activation (Graves 2013).
    learn_init : bool, default False
        Learn the initial state (then listed in :attr:`params`).
    W_init, U_init, b_init
        Initializers of ``linear_matrix`` ``(input_size, hidden_size)``,
        ``recurrent_matrix`` ``(hidden_size, hidden_size)`` and
        ``bias_matrix`` ``(hidden_size,)`` (zero).
    rng, name, dtype
        As for :class:`Layer`.

    Examples
    --------
    >>> cell = RNN(2, 3, rng=0)
    >>> cell.activate(np.ones(2), np.zeros(3)).eval().shape
    (3,)
    """

    _param_attrs = ("linear_matrix", "recurrent_matrix", "bias_matrix")

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        activation="tanh",
        clip_gradients=False,
        learn_init: bool = False,
        W_init=None,
        U_init=None,
        b_init=0.0,
        rng=None,
        name=None,
        dtype=None,
    ):
        super().__init__(name, dtype, rng)
        self._init_recurrent(input_size, hidden_size, activation, clip_gradients, learn_init, W_init, U_init, b_init)
        self._init_state_param()

    def step(self, xw, states, weights=None, h_mask=None):
        """``xw``: projection ``(..., hidden_size)``; ``states``: ``(h,)``; returns ``(h_new,)``."""
        (U,) = weights if weights is not None else self.recurrent_weights()
        (h,) = states
        h_in = h if h_mask is None else h * h_mask
        return (self.activation(self._clip(xw + pt.dot(h_in, U))),)


class LSTM(RecurrentCell):
    r"""Long short-term memory cell (Graves 2013), optionally with peepholes.

    .. math::
        \begin{aligned}
        i_t &= \sigma(x_t W_i + h_{t-1} U_i + c_{t-1} \odot p_i + b_i) \\
        f_t &= \sigma(x_t W_f + h_{t-1} U_f + c_{t-1} \odot p_f + b_f) \\
        g_t &= \phi_g(x_t W_g + h_{t-1} U_g + b_g) \\
        c_t &= f_t \odot c_{t-1} + i_t \odot g_t \\
        o_t &= \sigma(x_t W_o + h_{t-1} U_o + c_t \odot p_o + b_o) \\
        h_t &= o_t \odot \phi(c_t)
        \end{aligned}

    The peephole terms :math:`p_\ast` (diagonal cell-to-gate weights) are
    present only with ``peepholes=True``.  With ``coupled_gates=True`` (the
    CIFG variant of Greff et al. 2017) there is no forget-gate block and
    :math:`f_t = 1 - i_t`.  :math:`\sigma` is each gate's
    activation (``in_gate``, ``forget_gate``, ``out_gate``; sigmoid by
    default), :math:`\phi_g` is ``in_gate2.activation`` and :math:`\phi` is
    the cell's ``activation`` (both tanh by default).

    Parameters
    ----------
    input_size, hidden_size : int
        Sizes of :math:`x_t` and :math:`h_t`.
    activation : str or callable, default ``"tanh"``
        :math:`\phi`, also the initial :math:`\phi_g`.
    clip_gradients : float or False
        Clip the gradient reaching the gate pre-activations (Graves 2013).
    peepholes : bool, default False
        Add the diagonal peephole weights ``peephole_matrix`` of shape
        ``(3, hidden_size)`` (rows :math:`p_i, p_f, p_o`).
    forget_bias : float, default 0.0
        Initial value of :math:`b_f` (1.0 is a common choice).
    learn_init : bool, default False
        Learn the initial packed state ``[c_0, h_0]``.
    W_init, U_init, b_init
        Initializers of ``linear_matrix`` ``(input_size, 4 * hidden_size)``,
        ``recurrent_matrix`` ``(hidden_size, 4 * hidden_size)`` and
        ``bias_matrix`` ``(4 * hidden_size,)``; the gate blocks of the last axis
        are in the order ``i, f, g, o`` (PyTorch's).
    P_init : Initializer, optional
        Initializer of ``peephole_matrix`` (default :class:`~theano_lstm.init.Normal2014`).
    coupled_gates : bool, default False
        Coupled input-forget gate (CIFG): :math:`f_t = 1 - i_t`; the fused
        blocks are then ``i, g, o`` (``3 * hidden_size`` columns), the
        peephole rows :math:`p_i, p_o`, and ``forget_gate`` is ``None``.
    rng, name, dtype
        As for :class:`Layer`.

    Attributes
    ----------
    in_gate, forget_gate, in_gate2, out_gate : Gate
        The 2014 gate names (``in_gate2`` is the candidate :math:`g_t`); set a
        gate's ``activation`` to change the graphs built afterwards.

    Notes
    -----
    :meth:`activate` takes and returns the packed state ``[c, h]`` of size
    ``2 * hidden_size``; :func:`split_lstm_state` splits it.

    References
    ----------
    A. Graves, "Generating sequences with recurrent neural networks", 2013.
    K. Greff et al., "LSTM: a search space odyssey", IEEE TNNLS 2017 (CIFG).
    F. Gers, N. Schraudolph, J. Schmidhuber, "Learning precise timing with LSTM
    recurrent networks", JMLR 2002 (peepholes).

    Examples
    --------
    >>> lstm = LSTM(3, 2, rng=0)
    >>> state = lstm.activate(np.ones((4, 3)), np.zeros((4, 4)))
    >>> state.eval().shape
    (4, 4)
    """

    n_states = 2
    n_gates = 4
    _param_attrs = ("linear_matrix", "recurrent_matrix", "bias_matrix")

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        activation="tanh",
        clip_gradients=False,
        peepholes: bool = False,
        forget_bias: float = 0.0,
        learn_init: bool = False,
        W_init=None,
        U_init=None,
        b_init=0.0,
        P_init=None,
        coupled_gates: bool = False,
        rng=None,
        name=None,
        dtype=None,
    ):
        super().__init__(name, dtype, rng)
        self.coupled_gates = bool(coupled_gates)
        if self.coupled_gates:
            if forget_bias:
                raise ValueError("forget_bias has no meaning with coupled_gates=True (f = 1 - i has no bias of its own)")
            self.n_gates = 3
        self._init_recurrent(input_size, hidden_size, activation, clip_gradients, learn_init, W_init, U_init, b_init)
        H = self.hidden_size
        starts = iter(range(0, self.n_gates * H, H))

        def cols():  # the next gate block of the fused matrices
            start = next(starts)
            return slice(start, start + H)

        self.in_gate = Gate("in_gate", "sigmoid", cols())
        self.forget_gate = None if self.coupled_gates else Gate("forget_gate", "sigmoid", cols())
        self.in_gate2 = Gate("in_gate2", self.activation, cols())
        self.out_gate = Gate("out_gate", "sigmoid", cols())
        if forget_bias:
            b = self.bias_matrix.get_value()
            b[self.forget_gate.columns] = forget_bias
            self.bias_matrix.set_value(b)
        self.peepholes = bool(peepholes)
        if self.peepholes:
            rows = 2 if self.coupled_gates else 3
            self._new_param("peephole_matrix", (rows, H), initializers.Normal2014() if P_init is None else P_init, "P_init")
            self._param_attrs = self._param_attrs + ("peephole_matrix",)
        self._init_state_param()
        self._config.update(peepholes=self.peepholes, forget_bias=float(forget_bias), coupled_gates=self.coupled_gates)

    @property
    def gates(self) -> tuple:
        """``(in_gate, forget_gate, in_gate2, out_gate)`` (without ``forget_gate`` when coupled)."""
        return tuple(g for g in (self.in_gate, self.forget_gate, self.in_gate2, self.out_gate) if g is not None)

    def recurrent_weights(self) -> list:
        return [self.recurrent_matrix] + ([self.peephole_matrix] if self.peepholes else [])

    def step(self, xw, states, weights=None, h_mask=None):
        """One LSTM step.

        Parameters
        ----------
        xw : tensor ``(..., 4 * hidden_size)``
            :meth:`input_projection` of :math:`x_t`.
        states : tuple ``(c, h)``, each ``(..., hidden_size)``
        weights : list, optional
            Replaces :meth:`recurrent_weights`.
        h_mask : tensor, optional
            Multiplies :math:`h_{t-1}` in the recurrent product (variational dropout).

        Returns
        -------
        tuple ``(c_t, h_t)``
        """
        weights = list(weights) if weights is not None else self.recurrent_weights()
        U = weights[0]
        c, h = states
        h_in = h if h_mask is None else h * h_mask
        z = self._clip(xw + pt.dot(h_in, U))
        P = weights[1] if self.peepholes else None
        zi, zg, zo = (z[..., g.columns] for g in (self.in_gate, self.in_gate2, self.out_gate))
        if self.peepholes:
            zi = zi + c * P[0]
        i = self.in_gate.activation(zi)
        if self.coupled_gates:
            f = 1 - i
        else:
            zf = z[..., self.forget_gate.columns]
            if self.peepholes:
                zf = zf + c * P[1]
            f = self.forget_gate.activation(zf)
        g = self.in_gate2.activation(zg)
        c_new = f * c + i * g
        if self.peepholes:
            zo = zo + c_new * P[-1]
        o = self.out_gate.activation(zo)
        return (c_new, o * self.activation(c_new))


class GRU(RecurrentCell):
    r"""Gated recurrent unit (Cho et al. 2014).

    With ``reset="before"`` (the default; Cho et al. and the GRU language-model
    tutorial) the reset gate scales the previous state before the recurrent
    product of the candidate:

    .. math::
        \begin{aligned}
        r_t &= \sigma(x_t W_r + h_{t-1} U_r + b_r) \\
        z_t &= \sigma(x_t W_z + h_{t-1} U_z + b_z) \\
        n_t &= \phi(x_t W_n + (r_t \odot h_{t-1}) U_n + b_n) \\
        h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}
        \end{aligned}

    With ``reset="after"`` (cuDNN and PyTorch ``nn.GRU``) it scales the
    recurrent product, which has its own bias :math:`c_n`, so one matrix
    product per step serves all three gates:

    .. math::
        n_t = \phi(x_t W_n + b_n + r_t \odot (h_{t-1} U_n + c_n))

    Parameters
    ----------
    input_size, hidden_size : int
        Sizes of :math:`x_t` and :math:`h_t`.
    activation : str or callable, default ``"tanh"``
        :math:`\phi`.
    gate_activation : str or callable, default ``"sigmoid"``
        :math:`\sigma` of both gates; ``"hard_sigmoid"`` as in the tutorial.
    reset : {"before", "after"}
        Where the reset gate applies (see above).
    clip_gradients, learn_init, W_init, U_init, b_init, rng, name, dtype
        As for :class:`LSTM`; the fused blocks are in the order ``r, z, n``
        (PyTorch's).  With ``reset="after"`` there is also
        ``recurrent_bias`` of shape ``(3 * hidden_size,)`` (zero), whose
        ``r`` and ``z`` blocks simply add to ``bias_matrix``.

    Attributes
    ----------
    reset_gate, update_gate, candidate : Gate

    References
    ----------
    K. Cho et al., "Learning phrase representations using RNN encoder-decoder
    for statistical machine translation", 2014.

    Examples
    --------
    >>> gru = GRU(3, 2, rng=0)
    >>> gru.activate(np.ones(3), np.zeros(2)).eval().shape
    (2,)
    """

    n_gates = 3
    _param_attrs = ("linear_matrix", "recurrent_matrix", "bias_matrix")

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        activation="tanh",
        gate_activation="sigmoid",
        reset: str = "before",
        clip_gradients=False,
        learn_init: bool = False,
        W_init=None,
        U_init=None,
        b_init=0.0,
        rng=None,
        name=None,
        dtype=None,
    ):
        super().__init__(name, dtype, rng)
        if reset not in ("before", "after"):
            raise ValueError(f"reset must be 'before' or 'after', received {reset!r}")
        self.reset = reset
        self._init_recurrent(input_size, hidden_size, activation, clip_gradients, learn_init, W_init, U_init, b_init)
        H = self.hidden_size
        self.reset_gate = Gate("reset_gate", gate_activation, slice(0, H))
        self.update_gate = Gate("update_gate", gate_activation, slice(H, 2 * H))
        self.candidate = Gate("candidate", self.activation, slice(2 * H, 3 * H))
        if reset == "after":
            self._new_param("recurrent_bias", (3 * H,), 0.0, "recurrent bias")
            self._param_attrs = self._param_attrs + ("recurrent_bias",)
        self._init_state_param()
        self._config.update(gate_activation=_activation_config(self.reset_gate.activation), reset=reset)

    @property
    def gates(self) -> tuple:
        """``(reset_gate, update_gate, candidate)``."""
        return (self.reset_gate, self.update_gate, self.candidate)

    def recurrent_weights(self) -> list:
        if self.reset == "after":
            return [self.recurrent_matrix, self.recurrent_bias]
        H = self.hidden_size
        U = self.recurrent_matrix
        return [U[:, : 2 * H], U[:, 2 * H :]]

    def step(self, xw, states, weights=None, h_mask=None):
        """One GRU step: ``xw`` ``(..., 3 * hidden_size)``, ``states`` ``(h,)``; returns ``(h_t,)``.

        ``h_mask`` multiplies :math:`h_{t-1}` inside the recurrent products
        only; the interpolation ``z_t * h_{t-1}`` uses the unmasked state.
        """
        weights = list(weights) if weights is not None else self.recurrent_weights()
        (h,) = states
        h_in = h if h_mask is None else h * h_mask
        H = self.hidden_size
        if self.reset == "after":
            U, c = weights
            hu = pt.dot(h_in, U) + c
            pre_r = xw[..., :H] + hu[..., :H]
            pre_z = xw[..., H : 2 * H] + hu[..., H : 2 * H]
            r = self.reset_gate.activation(self._clip(pre_r))
            z = self.update_gate.activation(self._clip(pre_z))
            n = self.candidate.activation(self._clip(xw[..., 2 * H :] + r * hu[..., 2 * H :]))
        else:
            U_rz, U_n = weights
            rz = self._clip(xw[..., : 2 * H] + pt.dot(h_in, U_rz))
            r = self.reset_gate.activation(rz[..., :H])
            z = self.update_gate.activation(rz[..., H:])
            n = self.candidate.activation(self._clip(xw[..., 2 * H :] + pt.dot(r * h_in, U_n)))
        return ((1 - z) * n + z * h,)


class GatedInput(Cell):
    r"""A scalar input gate conditioned on a recurrent state (2014 ``GatedInput``).

    .. math::
        \begin{aligned}
        g_t &= \sigma(x_t w_x + h_{t-1} w_h + b) \\
        \tilde x_t &= g_t\, x_t
        \end{aligned}

    :meth:`activate` returns the gate :math:`g_t` (shape ``(..., 1)``) and
    :meth:`postprocess_activation` the gated input :math:`\tilde x_t`.  In a
    :class:`~theano_lstm.StackedCells`, :math:`h_{t-1}` is the previous
    output (``h``) of the recurrent layer right above the gate, which must
    therefore have ``hidden_size`` outputs; the gate lets that layer decide how
    much of each input to read.

    Parameters
    ----------
    input_size : int
        Size of :math:`x_t` (and of the gated output).
    hidden_size : int
        Size of the conditioning state :math:`h_{t-1}`.
    W_init, U_init, b_init, rng, name, dtype
        Initializers of ``linear_matrix`` ``(input_size, 1)``,
        ``recurrent_matrix`` ``(hidden_size, 1)``, ``bias_matrix`` ``(1,)``.

    Examples
    --------
    >>> gate = GatedInput(3, 2, rng=0)
    >>> g = gate.activate(np.ones(3), np.zeros(2))
    >>> gate.postprocess_activation(g, np.ones(3), np.zeros(2)).eval().shape
    (3,)
    """

    is_recursive = True
    n_states = 0
    _param_attrs = ("linear_matrix", "recurrent_matrix", "bias_matrix")

    def __init__(self, input_size: int, hidden_size: int, W_init=None, U_init=None, b_init=0.0, rng=None, name=None, dtype=None):
        super().__init__(name, dtype, rng)
        self.input_size = _check_size(input_size, "input_size")
        self.hidden_size = _check_size(hidden_size, "hidden_size")
        self._new_param("linear_matrix", (self.input_size, 1), initializers.Normal2014() if W_init is None else W_init, "W_init")
        self._new_param("recurrent_matrix", (self.hidden_size, 1), initializers.Normal2014() if U_init is None else U_init, "U_init")
        self._new_param("bias_matrix", (1,), b_init, "b_init")
        self.activation = backend.sigmoid
        self._config = dict(input_size=self.input_size, hidden_size=self.hidden_size, name=self.name)

    def weights(self) -> list:
        return self.params

    def activate(self, x, h, weights: Sequence | None = None):
        """Gate :math:`g_t`, shape ``x.shape[:-1] + (1,)``, from ``x`` ``(..., input_size)`` and ``h`` ``(..., hidden_size)``."""
        Wx, Wh, b = weights if weights is not None else self.params
        x = check_features(x, self.input_size, "x", "GatedInput")
        h = check_features(h, self.hidden_size, "h", "GatedInput")
        return self.activation(pt.dot(x, Wx) + pt.dot(h, Wh) + b)

    def postprocess_activation(self, gate, x, *args):
        """The gated input :math:`g_t x_t`."""
        return gate * x


def split_lstm_state(state, hidden_size: int):
    """Split a packed LSTM state ``[c, h]`` (last axis ``2 * hidden_size``) into ``(c, h)``.

    >>> c, h = split_lstm_state(np.arange(4.0), 2)
    >>> c.eval(), h.eval()
    (array([0., 1.]), array([2., 3.]))
    """
    state = pt.as_tensor_variable(state)
    return state[..., :hidden_size], state[..., hidden_size:]


def _check_clip(value):
    if value is False or value is None:
        return False
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"clip_gradients must be False or a positive number, received {value!r}")
    if not value > 0:
        raise ValueError(f"clip_gradients must be False or a positive number, received {value}")
    return float(value)


def _activation_config(fn):
    name = backend.activation_name(fn)
    return name if name is not None else f"<custom {getattr(fn, '__name__', type(fn).__name__)}>"
