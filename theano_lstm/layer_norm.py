r"""Layer-normalized recurrent cells: :class:`LayerNormLSTM` and :class:`LayerNormGRU`.

Layer normalization (Ba, Kiros & Hinton 2016) rescales a vector of
pre-activations to zero mean and unit variance over its features, *per
example and per time step*, then applies a learned gain and bias:

.. math::
    \mu = \frac{1}{H}\sum_{j=1}^{H} a_j, \qquad
    \sigma^2 = \frac{1}{H}\sum_{j=1}^{H} (a_j - \mu)^2, \qquad
    \mathrm{LN}(a;\,\gamma, \beta) = \gamma \odot \frac{a - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta

In the cells below the statistics are taken separately over each gate block
of a fused pre-activation (the columns ``[..., k*H:(k+1)*H]`` of gate
``k``), so that, e.g., the forget gate's pre-activation is not normalized
together with the candidate's.  Because the statistics never mix time steps
or examples, normalizing the input projection of a whole sequence at once
(what :meth:`theano_lstm.StackedCells.scan` does before its loop) gives the
same answer as normalizing it step by step.

The cells follow the :class:`~theano_lstm.layers.RecurrentCell` contract, so
they work wherever :class:`~theano_lstm.LSTM` and :class:`~theano_lstm.GRU`
do: the 2014 ``activate``/``forward`` API, ``StackedCells(...,
celltype=LayerNormLSTM)``, the runner with masks, dropout, zoneout,
``go_backwards`` and ``precompute``, and every compile mode (JAX included).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytensor.tensor as pt

from .layers import Gate, RecurrentCell, _activation_config, check_features

__all__ = ["layer_norm", "LayerNormLSTM", "LayerNormGRU"]

DEFAULT_EPS = 1e-5


def layer_norm(x, gain=None, bias=None, n_blocks: int = 1, eps: float = DEFAULT_EPS):
    r"""Layer-normalize each of ``n_blocks`` equal blocks of the last axis of ``x``.

    .. math::
        \mathrm{LN}(a) = \gamma \odot \frac{a - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta

    with :math:`\mu, \sigma^2` the mean and (biased) variance of each block of
    ``a``'s last axis, computed separately for every leading index (example,
    time step).

    Parameters
    ----------
    x : tensor ``(..., n_blocks * H)``
        Pre-activations; any number of leading axes.
    gain, bias : tensor ``(n_blocks * H,)``, optional
        :math:`\gamma` and :math:`\beta` (default: none, i.e. 1 and 0).
    n_blocks : int, default 1
        Number of blocks normalized independently (the gates of a fused
        pre-activation).
    eps : float, default 1e-5
        :math:`\epsilon`, added to the variance inside the square root.

    Returns
    -------
    tensor, shape and dtype of ``x``

    Raises
    ------
    ValueError
        If the (static) size of the last axis is not a multiple of ``n_blocks``.

    Examples
    --------
    >>> import numpy as np
    >>> y = layer_norm(np.array([[1.0, 3.0, 0.0, 10.0]]), n_blocks=2, eps=0.0)
    >>> y.eval()
    array([[-1.,  1., -1.,  1.]])
    """
    x = pt.as_tensor_variable(x)
    if x.ndim == 0:
        raise ValueError("layer_norm needs a tensor with a feature axis, received a scalar")
    if isinstance(n_blocks, bool) or not isinstance(n_blocks, (int, np.integer)) or n_blocks <= 0:
        raise ValueError(f"n_blocks must be a positive int, received {n_blocks!r}")
    n_blocks = int(n_blocks)
    size = x.type.shape[-1]
    if size is not None and size % n_blocks:
        raise ValueError(f"the last axis of x has {size} features, which is not a multiple of n_blocks={n_blocks}")
    eps_c = pt.constant(np.asarray(eps, dtype=x.dtype))
    if n_blocks == 1:
        blocks = x
    else:
        lead = [x.shape[i] for i in range(x.ndim - 1)]
        block = size // n_blocks if size is not None else x.shape[-1] // n_blocks
        blocks = x.reshape((*lead, n_blocks, block), ndim=x.ndim + 1)
    centred = blocks - blocks.mean(axis=-1, keepdims=True)
    var = pt.sqr(centred).mean(axis=-1, keepdims=True)
    out = centred / pt.sqrt(var + eps_c)
    if n_blocks > 1:
        lead = [x.shape[i] for i in range(x.ndim - 1)]
        out = out.reshape((*lead, size if size is not None else x.shape[-1]), ndim=x.ndim)
    if gain is not None:
        out = out * gain
    if bias is not None:
        out = out + bias
    return out


def _check_eps(eps) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating, np.integer)):
        raise TypeError(f"eps must be a positive number, received {eps!r} ({type(eps).__name__})")
    eps = float(eps)
    if not (np.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a positive finite number, received {eps}")
    return eps


def _unpack(weights, n: int, cell, what: str) -> list:
    weights = list(weights)
    if len(weights) != n:
        raise ValueError(f"{cell.name}: {what} needs {n} weight tensors, received {len(weights)}")
    return weights


class _LayerNormCell(RecurrentCell):
    """Shared parts: the normalized input projection and the gain/bias parameters."""

    def _init_layer_norm(self, eps) -> None:
        self.eps = _check_eps(eps)
        GH = self.n_gates * self.hidden_size
        self._new_param("input_gain", (GH,), 1.0, "input gain")
        self._new_param("recurrent_gain", (GH,), 1.0, "recurrent gain")
        self._new_param("recurrent_bias", (GH,), 0.0, "recurrent bias")

    def projection_weights(self) -> list:
        """``[linear_matrix, input_gain]``: the weights :meth:`input_projection` reads.

        ``bias_matrix`` is added in :meth:`step` (it is listed in
        :meth:`recurrent_weights`), after the normalization.
        """
        return [self.linear_matrix, self.input_gain]

    def input_projection(self, x, weights: Sequence | None = None):
        r"""Normalized input projection :math:`\gamma_x \odot \mathrm{LN}_{\text{gates}}(x W)`.

        Parameters
        ----------
        x : tensor ``(..., input_size)``
            Inputs; any leading axes (one step, a batch, or a whole
            time-major sequence: the statistics are per leading index).
        weights : list, optional
            Replaces :meth:`projection_weights` (``[W, gain]``).

        Returns
        -------
        tensor ``(..., n_gates * hidden_size)``
        """
        W, gain = _unpack(weights if weights is not None else self.projection_weights(), 2, self,
                          "input_projection")
        x = check_features(x, self.input_size, "x", type(self).__name__)
        return layer_norm(pt.dot(x, W), gain, None, self.n_gates, self.eps)

    def _norm(self, a, gain, bias, n_blocks):
        return layer_norm(a, gain, bias, n_blocks, self.eps)


class LayerNormLSTM(_LayerNormCell):
    r"""LSTM with layer normalization (Ba, Kiros & Hinton 2016).

    .. math::
        \begin{aligned}
        a_t &= \gamma_x \odot \mathrm{LN}(x_t W)
              + \gamma_h \odot \mathrm{LN}(h_{t-1} U) + \beta_h + b \\
        i_t &= \sigma(a_{t,i}), \quad f_t = \sigma(a_{t,f}), \quad
        g_t = \phi_g(a_{t,g}), \quad o_t = \sigma(a_{t,o}) \\
        c_t &= f_t \odot c_{t-1} + i_t \odot g_t \\
        h_t &= o_t \odot \phi\big(\gamma_c \odot \mathrm{LN}(c_t) + \beta_c\big)
        \end{aligned}

    Normalized terms, exactly: the input projection :math:`x_t W` and the
    recurrent projection :math:`h_{t-1} U` (separately, each gate block
    ``i, f, g, o`` of ``hidden_size`` columns with its own mean and variance),
    and the cell state :math:`c_t` before the output non-linearity.  The
    carried state :math:`c_t` itself is not normalized.  :math:`\gamma` are
    gains (initialized to 1), :math:`\beta_h, \beta_c` biases of the
    normalizations (initialized to 0) and :math:`b` (``bias_matrix``) the
    gate bias, which plays the role of the input normalization's bias
    (:math:`\beta_h + b` is the paper's :math:`\beta_1 + \beta_2 + b`: one
    sum, three names, kept so that each normalization has its gain and bias).

    Parameters
    ----------
    input_size, hidden_size : int
        Sizes of :math:`x_t` and :math:`h_t`.
    activation : str or callable, default ``"tanh"``
        :math:`\phi`, also the initial :math:`\phi_g`.
    clip_gradients : float or False
        Clip the gradient reaching the gate pre-activations :math:`a_t`.
    forget_bias : float, default 0.0
        Initial value of :math:`b_f`.
    eps : float, default 1e-5
        :math:`\epsilon` of every normalization.
    learn_init : bool, default False
        Learn the initial packed state ``[c_0, h_0]``.
    W_init, U_init, b_init
        Initializers of ``linear_matrix`` ``(input_size, 4 * hidden_size)``,
        ``recurrent_matrix`` ``(hidden_size, 4 * hidden_size)`` and
        ``bias_matrix`` ``(4 * hidden_size,)``, gate blocks ``i, f, g, o``
        as in :class:`~theano_lstm.LSTM`.
    rng, name, dtype
        As for :class:`~theano_lstm.Layer`.

    Attributes
    ----------
    input_gain, recurrent_gain, recurrent_bias : shared ``(4 * hidden_size,)``
        :math:`\gamma_x, \gamma_h, \beta_h`.
    cell_gain, cell_bias : shared ``(hidden_size,)``
        :math:`\gamma_c, \beta_c`.
    in_gate, forget_gate, in_gate2, out_gate : Gate
        As for :class:`~theano_lstm.LSTM`.

    Notes
    -----
    The state is the 2014 packed ``[c, h]`` (``2 * hidden_size``), as for
    :class:`~theano_lstm.LSTM`.  :meth:`projection_weights` are
    ``[linear_matrix, input_gain]`` (what the runner precomputes for a whole
    sequence); ``bias_matrix`` is added in :meth:`step`.  There are no
    peepholes and no coupled gates.

    References
    ----------
    J. L. Ba, J. R. Kiros, G. E. Hinton, "Layer normalization", arXiv:1607.06450, 2016.

    Examples
    --------
    >>> import numpy as np
    >>> cell = LayerNormLSTM(3, 2, rng=0)
    >>> [p.name.split(".")[1] for p in cell.params][3:]
    ['input_gain', 'recurrent_gain', 'recurrent_bias', 'cell_gain', 'cell_bias']
    >>> cell.activate(np.ones((5, 3)), np.zeros((5, 4))).eval().shape
    (5, 4)
    """

    n_states = 2
    n_gates = 4
    _param_attrs = (
        "linear_matrix",
        "recurrent_matrix",
        "bias_matrix",
        "input_gain",
        "recurrent_gain",
        "recurrent_bias",
        "cell_gain",
        "cell_bias",
    )

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        activation="tanh",
        clip_gradients=False,
        forget_bias: float = 0.0,
        eps: float = DEFAULT_EPS,
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
        H = self.hidden_size
        self.in_gate = Gate("in_gate", "sigmoid", slice(0, H))
        self.forget_gate = Gate("forget_gate", "sigmoid", slice(H, 2 * H))
        self.in_gate2 = Gate("in_gate2", self.activation, slice(2 * H, 3 * H))
        self.out_gate = Gate("out_gate", "sigmoid", slice(3 * H, 4 * H))
        if forget_bias:
            b = self.bias_matrix.get_value()
            b[self.forget_gate.columns] = forget_bias
            self.bias_matrix.set_value(b)
        self._init_layer_norm(eps)
        self._new_param("cell_gain", (H,), 1.0, "cell gain")
        self._new_param("cell_bias", (H,), 0.0, "cell bias")
        self._init_state_param()
        self._config.update(forget_bias=float(forget_bias), eps=self.eps)

    @property
    def gates(self) -> tuple:
        """``(in_gate, forget_gate, in_gate2, out_gate)``."""
        return (self.in_gate, self.forget_gate, self.in_gate2, self.out_gate)

    def recurrent_weights(self) -> list:
        """``[recurrent_matrix, recurrent_gain, recurrent_bias, bias_matrix, cell_gain, cell_bias]``."""
        return [self.recurrent_matrix, self.recurrent_gain, self.recurrent_bias, self.bias_matrix,
                self.cell_gain, self.cell_bias]

    def step(self, xw, states, weights=None, h_mask=None):
        r"""One step from the normalized input projection.

        Parameters
        ----------
        xw : tensor ``(..., 4 * hidden_size)``
            :meth:`input_projection` of :math:`x_t`, i.e.
            :math:`\gamma_x \odot \mathrm{LN}(x_t W)`.
        states : tuple ``(c, h)``, each ``(..., hidden_size)``
        weights : list, optional
            Replaces :meth:`recurrent_weights`.
        h_mask : tensor, optional
            Multiplies :math:`h_{t-1}` in the recurrent product only
            (variational dropout).

        Returns
        -------
        tuple ``(c_t, h_t)``
        """
        U, rg, rb, b, cg, cb = _unpack(weights if weights is not None else self.recurrent_weights(), 6, self, "step")
        c, h = states
        h_in = h if h_mask is None else h * h_mask
        a = self._clip(xw + self._norm(pt.dot(h_in, U), rg, rb, 4) + b)
        i = self.in_gate.activation(a[..., self.in_gate.columns])
        f = self.forget_gate.activation(a[..., self.forget_gate.columns])
        g = self.in_gate2.activation(a[..., self.in_gate2.columns])
        o = self.out_gate.activation(a[..., self.out_gate.columns])
        c_new = f * c + i * g
        return (c_new, o * self.activation(self._norm(c_new, cg, cb, 1)))


class LayerNormGRU(_LayerNormCell):
    r"""GRU with layer normalization (Ba, Kiros & Hinton 2016).

    With :math:`A_x = \gamma_x \odot \mathrm{LN}(x_t W)` (blocks ``r, z, n``
    normalized separately) and ``reset="after"``:

    .. math::
        \begin{aligned}
        A_h &= \gamma_h \odot \mathrm{LN}(h_{t-1} U) + \beta_h \\
        r_t &= \sigma(A_{x,r} + A_{h,r} + b_r), \quad
        z_t = \sigma(A_{x,z} + A_{h,z} + b_z) \\
        n_t &= \phi(A_{x,n} + b_n + r_t \odot A_{h,n}) \\
        h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}
        \end{aligned}

    With ``reset="before"`` (the default, as for :class:`~theano_lstm.GRU`)
    the candidate's recurrent term is normalized after the reset:

    .. math::
        \begin{aligned}
        A_{h,rz} &= \gamma_{h,rz} \odot \mathrm{LN}(h_{t-1} U_{rz}) + \beta_{h,rz} \\
        n_t &= \phi\big(A_{x,n} + b_n + \gamma_{h,n} \odot
               \mathrm{LN}((r_t \odot h_{t-1}) U_n) + \beta_{h,n}\big)
        \end{aligned}

    Normalized terms, exactly: the input projection :math:`x_t W` (blocks
    ``r, z, n`` separately) and the recurrent products (blocks ``r, z`` of
    :math:`h_{t-1} U`, and :math:`h_{t-1} U_n` or :math:`(r_t \odot
    h_{t-1}) U_n`, each with its own statistics).  The state is not
    normalized.  Gains :math:`\gamma` start at 1, biases :math:`\beta_h` at 0;
    ``bias_matrix`` :math:`b` is the input normalization's bias.

    Parameters
    ----------
    input_size, hidden_size : int
        Sizes of :math:`x_t` and :math:`h_t`.
    activation : str or callable, default ``"tanh"``
        :math:`\phi`.
    gate_activation : str or callable, default ``"sigmoid"``
        :math:`\sigma` of both gates.
    reset : {"before", "after"}
        Where the reset gate applies (see above and :class:`~theano_lstm.GRU`).
    clip_gradients : float or False
        Clip the gradient reaching the gate pre-activations.
    eps : float, default 1e-5
        :math:`\epsilon` of every normalization.
    learn_init, W_init, U_init, b_init, rng, name, dtype
        As for :class:`~theano_lstm.GRU` (fused blocks ``r, z, n``).

    Attributes
    ----------
    input_gain, recurrent_gain, recurrent_bias : shared ``(3 * hidden_size,)``
        :math:`\gamma_x, \gamma_h, \beta_h`.
    reset_gate, update_gate, candidate : Gate

    References
    ----------
    J. L. Ba, J. R. Kiros, G. E. Hinton, "Layer normalization", arXiv:1607.06450, 2016.

    Examples
    --------
    >>> import numpy as np
    >>> cell = LayerNormGRU(3, 2, reset="after", rng=0)
    >>> cell.get_config()["reset"], cell.get_config()["eps"]
    ('after', 1e-05)
    >>> cell.activate(np.ones(3), np.zeros(2)).eval().shape
    (2,)
    """

    n_gates = 3
    _param_attrs = (
        "linear_matrix",
        "recurrent_matrix",
        "bias_matrix",
        "input_gain",
        "recurrent_gain",
        "recurrent_bias",
    )

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        activation="tanh",
        gate_activation="sigmoid",
        reset: str = "before",
        clip_gradients=False,
        eps: float = DEFAULT_EPS,
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
        self._init_layer_norm(eps)
        self._init_state_param()
        self._config.update(gate_activation=_activation_config(self.reset_gate.activation), reset=reset, eps=self.eps)

    @property
    def gates(self) -> tuple:
        """``(reset_gate, update_gate, candidate)``."""
        return (self.reset_gate, self.update_gate, self.candidate)

    def recurrent_weights(self) -> list:
        """``[recurrent_matrix, recurrent_gain, recurrent_bias, bias_matrix]``.

        With ``reset="before"`` the recurrent matrix comes as its two slices
        ``U[:, :2H]`` and ``U[:, 2H:]`` (five tensors).
        """
        tail = [self.recurrent_gain, self.recurrent_bias, self.bias_matrix]
        if self.reset == "after":
            return [self.recurrent_matrix] + tail
        H = self.hidden_size
        U = self.recurrent_matrix
        return [U[:, : 2 * H], U[:, 2 * H :]] + tail

    def step(self, xw, states, weights=None, h_mask=None):
        r"""One step: ``xw`` ``(..., 3 * hidden_size)`` (:meth:`input_projection`), ``states`` ``(h,)``.

        Returns ``(h_t,)``.

        ``h_mask`` multiplies :math:`h_{t-1}` inside the recurrent products
        only; the interpolation :math:`z_t \odot h_{t-1}` uses the unmasked
        state.
        """
        H = self.hidden_size
        weights = weights if weights is not None else self.recurrent_weights()
        (h,) = states
        h_in = h if h_mask is None else h * h_mask
        if self.reset == "after":
            U, rg, rb, b = _unpack(weights, 4, self, "step")
            ah = self._norm(pt.dot(h_in, U), rg, rb, 3)
            pre = xw + b
            r = self.reset_gate.activation(self._clip(pre[..., :H] + ah[..., :H]))
            z = self.update_gate.activation(self._clip(pre[..., H : 2 * H] + ah[..., H : 2 * H]))
            n = self.candidate.activation(self._clip(pre[..., 2 * H :] + r * ah[..., 2 * H :]))
        else:
            U_rz, U_n, rg, rb, b = _unpack(weights, 5, self, "step")
            pre = xw + b
            rz = self._clip(pre[..., : 2 * H] + self._norm(pt.dot(h_in, U_rz), rg[: 2 * H], rb[: 2 * H], 2))
            r = self.reset_gate.activation(rz[..., :H])
            z = self.update_gate.activation(rz[..., H:])
            an = self._norm(pt.dot(r * h_in, U_n), rg[2 * H :], rb[2 * H :], 1)
            n = self.candidate.activation(self._clip(pre[..., 2 * H :] + an))
        return ((1 - z) * n + z * h,)

