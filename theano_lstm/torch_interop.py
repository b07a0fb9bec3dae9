r"""Exchange weights with PyTorch's ``nn.LSTM``/``nn.GRU`` (and ``nn.LSTMCell``/``nn.GRUCell``).

:func:`from_torch_state_dict` copies a PyTorch ``state_dict`` into an
:class:`~theano_lstm.LSTM`, a :class:`~theano_lstm.GRU` or a
:class:`~theano_lstm.StackedCells` of them; :func:`to_torch_state_dict` goes
the other way.  Both give the same function of the inputs on both sides: the
same sequence through ``torch.nn.LSTM`` and through
:meth:`StackedCells.scan` gives the same outputs and final states.

PyTorch is optional: it is imported only inside :func:`to_torch_state_dict`
(and not at all with ``as_numpy=True``).

Layout
------
Both libraries fuse the gates in the same order (LSTM ``i, f, g, o``; GRU
``r, z, n``); PyTorch stores each weight as ``(gates * hidden, inputs)``, this
library as ``(inputs, gates * hidden)``, so weights are transposed:

======================  =====================================  ==============================
PyTorch (layer ``k``)   shape                                  theano_lstm (layer ``k``)
======================  =====================================  ==============================
``weight_ih_l{k}``      ``(G*H, input_size)``                  ``linear_matrix.T``
``weight_hh_l{k}``      ``(G*H, H)``                           ``recurrent_matrix.T``
``bias_ih_l{k}``        ``(G*H,)``                             LSTM: ``bias_matrix`` (see below); GRU: ``bias_matrix``
``bias_hh_l{k}``        ``(G*H,)``                             LSTM: zeros; GRU: ``recurrent_bias``
======================  =====================================  ==============================

An LSTM's two PyTorch biases only ever appear as a sum, which is what
``bias_matrix`` holds: importing adds them, exporting puts the sum in
``bias_ih`` and zeros in ``bias_hh`` (so a round trip changes the split, not
the function).  A GRU's ``bias_hh`` block ``n`` sits inside
:math:`r_t \odot (h_{t-1} U_n + c_n)`, so it is kept apart: only a
:class:`~theano_lstm.GRU` built with ``reset="after"`` (PyTorch's form) has
it.

State correspondence: the runner's ``final_states[k]`` of an LSTM is the
packed ``[c, h]`` where PyTorch returns ``(h_n[k], c_n[k])``; for a GRU it is
``h_n[k]``.  PyTorch's ``batch_first=False`` is the runner's time-major layout.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from . import backend
from .layers import GRU, LSTM, Cell
from .stacked import StackedCells

__all__ = ["from_torch_state_dict", "to_torch_state_dict"]

_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


# ------------------------------------------------------------------ checks


def _activation(fn) -> str:
    return backend.activation_name(fn) or f"custom {getattr(fn, '__name__', type(fn).__name__)}"


def _check_cell(cell, where: str) -> None:
    """Raise unless ``cell`` has an exact PyTorch equivalent."""
    if isinstance(cell, LSTM):
        torch_name = "nn.LSTM"
        if cell.peepholes:
            raise ValueError(f"{where} has peepholes; {torch_name} has no peephole weights, so no conversion exists")
        if getattr(cell, "coupled_gates", False):
            raise ValueError(
                f"{where} has coupled input-forget gates (CIFG); {torch_name} always has a separate forget gate"
            )
        wanted = [("activation", cell.activation, "tanh"), ("in_gate.activation", cell.in_gate.activation, "sigmoid"),
                  ("forget_gate.activation", cell.forget_gate.activation, "sigmoid"),
                  ("in_gate2.activation", cell.in_gate2.activation, "tanh"),
                  ("out_gate.activation", cell.out_gate.activation, "sigmoid")]
    elif isinstance(cell, GRU):
        torch_name = "nn.GRU"
        if cell.reset != "after":
            raise ValueError(
                f"{where} was built with reset={cell.reset!r}: its candidate is "
                "n = tanh(x W_n + (r * h) U_n + b_n), while PyTorch's nn.GRU computes "
                "n = tanh(W_in x + b_in + r * (W_hn h + b_hn)) (the reset gate after the recurrent product). "
                "These are different functions of the same weights, so no exact conversion exists; "
                "build the GRU with reset='after'"
            )
        wanted = [("reset_gate.activation", cell.reset_gate.activation, "sigmoid"),
                  ("update_gate.activation", cell.update_gate.activation, "sigmoid"),
                  ("candidate.activation", cell.candidate.activation, "tanh")]
    else:
        raise TypeError(
            f"{where} is a {type(cell).__name__}; only LSTM and GRU cells have a PyTorch nn.LSTM/nn.GRU "
            "equivalent (keep other layers, e.g. a softmax head, outside the converted model)"
        )
    for what, fn, want in wanted:
        got = _activation(fn)
        if got != want:
            raise ValueError(f"{where} has {what}={got!r}; {torch_name} fixes it to {want!r}, so no conversion exists")
    if cell.learn_init:
        raise ValueError(
            f"{where} was built with learn_init=True; {torch_name} has no learned initial state "
            "(its h_0/c_0 are inputs), so the conversion would drop it"
        )


def _cells(model) -> list:
    """The recurrent cells of ``model``, checked to form one PyTorch module."""
    if isinstance(model, StackedCells):
        cells = list(model.layers)
        if not cells:
            raise ValueError("this StackedCells has no layers")
        names = [f"layer {k} ({cell.name})" for k, cell in enumerate(cells)]
    elif isinstance(model, Cell):
        cells, names = [model], [f"{type(model).__name__} {model.name!r}"]
    else:
        raise TypeError(f"model must be an LSTM, a GRU or a StackedCells of them, received {type(model).__name__}")
    for cell, where in zip(cells, names):
        _check_cell(cell, where)
    kinds = [type(c).__name__ for c in cells]
    if any(isinstance(c, LSTM) for c in cells) and any(isinstance(c, GRU) for c in cells):
        raise ValueError(f"a PyTorch nn.LSTM/nn.GRU has one kind of layer; this model mixes {kinds}")
    sizes = [c.hidden_size for c in cells]
    if len(set(sizes)) > 1:
        raise ValueError(f"a multi-layer PyTorch module has one hidden_size for all layers; this model has {sizes}")
    for k in range(1, len(cells)):
        if cells[k].input_size != cells[k - 1].hidden_size:
            raise ValueError(
                f"layer {k} has input_size={cells[k].input_size} but layer {k - 1} has "
                f"hidden_size={cells[k - 1].hidden_size}"
            )
    return cells


def _key_names(k: int, cell_style: bool) -> list:
    suffix = "" if cell_style else f"_l{k}"
    return [name + suffix for name in _NAMES]


def _as_array(value, key: str) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor (torch is not imported for this)
        value = value.detach().cpu()
        try:
            value = value.numpy()
        except TypeError:  # bfloat16 and other dtypes NumPy lacks
            value = value.double().numpy()
    try:
        arr = np.asarray(value)
    except Exception as exc:  # noqa: BLE001 - re-raised with context
        raise TypeError(f"state_dict[{key!r}] must be a tensor or an array, received {type(value).__name__}") from exc
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"state_dict[{key!r}] must hold floating-point numbers, received dtype {arr.dtype}")
    return arr


# ------------------------------------------------------------------ public


def from_torch_state_dict(model, state_dict: Mapping, *, prefix: str = ""):
    """Copy a PyTorch ``nn.LSTM``/``nn.GRU`` (or cell) ``state_dict`` into ``model``.

    Parameters
    ----------
    model : LSTM, GRU or StackedCells
        The destination, built with the PyTorch module's sizes: for
        ``nn.LSTM(input_size, hidden_size, num_layers=N)`` a
        ``StackedCells(input_size, celltype=LSTM, layers=[hidden_size] * N)``
        (or a single :class:`~theano_lstm.LSTM` when ``N == 1``).  A GRU
        must have ``reset="after"``.  Peepholes, coupled gates,
        ``learn_init`` and non-default activations have no PyTorch
        equivalent.
    state_dict : mapping of str to tensor or array
        ``module.state_dict()``: keys ``weight_ih_l{k}``, ``weight_hh_l{k}``,
        ``bias_ih_l{k}``, ``bias_hh_l{k}`` (weights ``(G*H, inputs)``, biases
        ``(G*H,)``; ``G`` = 4 for an LSTM, 3 for a GRU), or for a single
        cell the ``nn.LSTMCell``/``nn.GRUCell`` keys ``weight_ih``,
        ``weight_hh``, ``bias_ih``, ``bias_hh``.  A module built with
        ``bias=False`` has no bias keys (biases become zero).  Values may be
        torch tensors or NumPy arrays; they are cast to the model's dtype.
    prefix : str, optional
        Only keys starting with ``prefix`` are read (and it is stripped), to
        take the recurrent module out of a larger model's ``state_dict``
        (``prefix="encoder.rnn."``).

    Returns
    -------
    model
        The same object, its parameters overwritten.  Nothing is written
        unless every key and shape is valid.

    Raises
    ------
    TypeError
        A model or layer with no PyTorch equivalent; values that are not
        floating-point arrays.
    ValueError
        Unsupported configurations (see above), missing or unexpected keys
        (bidirectional modules and ``proj_size`` are not supported), or a
        shape that does not match the model.

    Notes
    -----
    PyTorch has two biases per layer; for an LSTM only their sum matters and
    ``bias_matrix`` receives ``bias_ih + bias_hh``.  For a GRU
    ``bias_matrix = bias_ih`` and ``recurrent_bias = bias_hh`` exactly.

    Examples
    --------
    >>> import numpy as np
    >>> from theano_lstm import GRU
    >>> gru = GRU(2, 3, reset="after", rng=0)
    >>> sd = {"weight_ih_l0": np.ones((9, 2)), "weight_hh_l0": np.zeros((9, 3)),
    ...       "bias_ih_l0": np.arange(9.0), "bias_hh_l0": np.ones(9)}
    >>> _ = from_torch_state_dict(gru, sd)
    >>> gru.linear_matrix.get_value().shape, gru.recurrent_bias.get_value()[:2]
    ((2, 9), array([1., 1.]))
    """
    cells = _cells(model)
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a mapping of names to tensors, received {type(state_dict).__name__}")
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, received {type(prefix).__name__}")
    entries = {}
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise TypeError(f"state_dict keys must be strings, received {key!r}")
        if key.startswith(prefix):
            entries[key[len(prefix) :]] = value
    received = set(entries)
    cell_style = len(cells) == 1 and "weight_ih" in received
    names = [_key_names(k, cell_style) for k in range(len(cells))]
    weights = {n for layer in names for n in layer[:2]}
    biases = {n for layer in names for n in layer[2:]}
    if received != weights | biases and received != weights:  # bias=False modules have no bias keys
        missing = sorted((weights | biases) - received)
        unexpected = sorted(received - (weights | biases))
        hint = ""
        if any("_reverse" in k for k in unexpected):
            hint = "; bidirectional modules are not supported (convert each direction into its own model)"
        elif any(k.startswith("weight_hr") for k in unexpected):
            hint = "; LSTMs with proj_size are not supported"
        kind = type(cells[0]).__name__
        raise ValueError(
            f"state_dict{' (prefix ' + repr(prefix) + ')' if prefix else ''} does not match a {len(cells)}-layer "
            f"torch {kind}: missing keys {missing}, unexpected keys {unexpected}{hint}"
        )
    new_values = []
    for k, (cell, (w_ih, w_hh, b_ih, b_hh)) in enumerate(zip(cells, names)):
        G, H = cell.n_gates, cell.hidden_size
        kind = type(cell).__name__
        expected = {w_ih: (G * H, cell.input_size), w_hh: (G * H, H), b_ih: (G * H,), b_hh: (G * H,)}
        arrays = {}
        for key, shape in expected.items():
            if key not in entries:
                arrays[key] = np.zeros(shape)  # a bias=False module: zero biases
                continue
            arr = _as_array(entries[key], prefix + key)
            if arr.shape != shape:
                raise ValueError(
                    f"{prefix + key} has shape {arr.shape} but layer {k} ({kind}, input_size={cell.input_size}, "
                    f"hidden_size={H}) needs {shape}"
                )
            arrays[key] = arr.astype(np.float64)
        values = {"linear_matrix": arrays[w_ih].T, "recurrent_matrix": arrays[w_hh].T}
        if isinstance(cell, LSTM):
            values["bias_matrix"] = arrays[b_ih] + arrays[b_hh]
        else:
            values["bias_matrix"] = arrays[b_ih]
            values["recurrent_bias"] = arrays[b_hh]
        new_values.append((cell, values))
    for cell, values in new_values:
        for attr, value in values.items():
            getattr(cell, attr).set_value(np.ascontiguousarray(value, dtype=cell.dtype))
    return model


def to_torch_state_dict(model, *, as_numpy: bool = False, prefix: str = "", cell_style: bool = False) -> OrderedDict:
    """A PyTorch ``state_dict`` holding ``model``'s weights.

    Parameters
    ----------
    model : LSTM, GRU or StackedCells
        As for :func:`from_torch_state_dict` (a GRU needs ``reset="after"``).
    as_numpy : bool, default False
        Return NumPy arrays instead of torch tensors (torch is then not
        imported).
    prefix : str, optional
        Prepended to every key.
    cell_style : bool, default False
        Use the ``nn.LSTMCell``/``nn.GRUCell`` keys (``weight_ih``…) instead
        of ``nn.LSTM``'s (``weight_ih_l0``…); for a single cell only.

    Returns
    -------
    collections.OrderedDict
        Keys in PyTorch's order (``weight_ih_l0, weight_hh_l0, bias_ih_l0,
        bias_hh_l0, weight_ih_l1``…), values copies with the model's dtype,
        ready for ``torch.nn.LSTM(input_size, hidden_size,
        num_layers=len(model.layers)).load_state_dict(...)``.

    Raises
    ------
    TypeError, ValueError
        As for :func:`from_torch_state_dict`; also when the layers of a
        :class:`~theano_lstm.StackedCells` have different hidden sizes.

    Notes
    -----
    An LSTM's ``bias_matrix`` goes to ``bias_ih`` and ``bias_hh`` is zero.

    Examples
    --------
    >>> from theano_lstm import LSTM, StackedCells
    >>> model = StackedCells(3, celltype=LSTM, layers=[4, 4], rng=0)
    >>> sd = to_torch_state_dict(model, as_numpy=True)
    >>> [(k, v.shape) for k, v in sd.items()][:4]
    [('weight_ih_l0', (16, 3)), ('weight_hh_l0', (16, 4)), ('bias_ih_l0', (16,)), ('bias_hh_l0', (16,))]
    """
    cells = _cells(model)
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, received {type(prefix).__name__}")
    if cell_style and len(cells) != 1:
        raise ValueError(
            f"cell_style=True writes nn.LSTMCell/nn.GRUCell keys for a single cell; this model has {len(cells)} layers"
        )
    out = OrderedDict()
    for k, cell in enumerate(cells):
        w_ih, w_hh, b_ih, b_hh = _key_names(k, cell_style)
        bias = backend.to_numpy(cell.bias_matrix)
        out[prefix + w_ih] = backend.to_numpy(cell.linear_matrix).T
        out[prefix + w_hh] = backend.to_numpy(cell.recurrent_matrix).T
        out[prefix + b_ih] = bias
        out[prefix + b_hh] = backend.to_numpy(cell.recurrent_bias) if isinstance(cell, GRU) else np.zeros_like(bias)
    for key, value in out.items():
        out[key] = np.ascontiguousarray(value)
    if as_numpy:
        return out
    try:
        import torch
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("to_torch_state_dict needs torch (or pass as_numpy=True)") from None
    return OrderedDict((key, torch.from_numpy(value.copy())) for key, value in out.items())
