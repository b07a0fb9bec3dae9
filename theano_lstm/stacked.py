"""``StackedCells``: a stack of cells, one time step (``forward``) or a whole sequence (``scan``).

This is the only module of the library that calls scan.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import pytensor.tensor as pt

from . import backend
from . import init as initializers
from .layers import GRU, LSTM, Cell, Embedding, GatedInput, RecurrentCell, RNN, _check_size, check_features

__all__ = ["StackedCells", "SequenceResult", "bidirectional"]


class SequenceResult(NamedTuple):
    """What :meth:`StackedCells.scan` returns (all time-major).

    Attributes
    ----------
    outputs : tensor ``(time, batch, size)`` or ``(time, size)``
        The last layer's output sequence.
    layer_outputs : list of tensors
        Per layer, the sequence it passed up (``h`` for a recurrent cell, the
        activation of a ``Layer``, the gated input of a ``GatedInput``).
    states : list of tensors or None
        Per layer, the state sequence in the 2014 packed layout (``[c, h]``
        for an LSTM, ``h`` for RNN/GRU; the gate for ``GatedInput``); ``None``
        for stateless layers.
    final_states : list of tensors or None
        Per recurrent layer, the state after the last *valid* step of each
        sequence (packed layout), ready to be fed back as ``initial_states``
        of the next chunk (truncated BPTT); ``None`` for stateless layers.
    cells : list of tensors or None
        Per LSTM layer, the memory-cell sequence ``c``; ``None`` elsewhere.
    """

    outputs: object
    layer_outputs: list
    states: list
    final_states: list
    cells: list


class StackedCells:
    """A stack of cells whose output at each step feeds the next cell.

    Parameters
    ----------
    input_size : int
        Size of the input of the first layer.
    celltype : type, default :class:`~theano_lstm.RNN`
        Class of the layers built from ``layers`` (``RNN``, ``LSTM``, ``GRU``,
        ``Layer``…).
    layers : list of int
        Hidden size of each layer to build.  ``self.layers`` is a plain list:
        append more cells to it (e.g. a softmax :class:`~theano_lstm.Layer`
        head, as in the 2014 README).
    activation : str or callable, default ``"tanh"``
        Passed to every built layer.
    clip_gradients : float or False
        Passed to every built layer.
    rng : int or Generator, optional
        Seed shared by the built layers (each draws from it in turn).
    **cell_kwargs
        Further arguments for ``celltype`` (e.g. ``peepholes=True``).

    Examples
    --------
    >>> from theano_lstm import LSTM, Layer
    >>> model = StackedCells(4, celltype=LSTM, layers=[8, 8], rng=0)
    >>> model.layers.append(Layer(8, 3, "softmax", rng=1))
    >>> len(model.params)
    8
    """

    def __init__(
        self,
        input_size: int,
        celltype: type = RNN,
        layers: Sequence[int] | None = None,
        activation="tanh",
        clip_gradients=False,
        rng=None,
        **cell_kwargs,
    ):
        input_size = _check_size(input_size, "input_size")
        if not (isinstance(celltype, type) and issubclass(celltype, Cell)):
            raise TypeError(f"celltype must be a cell class such as LSTM, received {celltype!r}")
        self.input_size = input_size
        self.celltype = celltype
        self.layers: list = []
        rng = initializers.as_rng(rng)
        previous = input_size
        for k, size in enumerate(layers or []):
            cell = celltype(previous, size, activation=activation, clip_gradients=clip_gradients,
                            rng=rng, name=f"layers.{k}.{celltype.__name__}", **cell_kwargs)
            self.layers.append(cell)
            previous = size

    # ---------------------------------------------------------------- 2014 API
    @property
    def params(self) -> list:
        """Every layer's parameters, in layer order."""
        return [p for layer in self.layers for p in layer.params]

    @params.setter
    def params(self, values) -> None:
        values = list(values)
        expected = sum(len(layer.params) for layer in self.layers)
        if len(values) != expected:
            raise ValueError(f"this StackedCells has {expected} parameters but {len(values)} values were given")
        start = 0
        for layer in self.layers:
            n = len(layer.params)
            layer.params = values[start : start + n]
            start += n

    def initial_hidden_states(self, batch_like=None) -> list:
        """Per layer, its packed initial state (``None`` for stateless layers).

        With ``batch_like`` (a tensor whose first axis is the batch) the states
        are broadcast to ``(batch, state_size)``.
        """
        return [_initial_state(layer, batch_like) for layer in self.layers]

    def forward(self, x, prev_hiddens=None, dropout=None) -> list:
        """One time step through every layer (2014 API).

        Parameters
        ----------
        x : tensor ``(input_size,)`` or ``(batch, input_size)``
            Input at this step (integer indices if the first layer is an
            :class:`~theano_lstm.Embedding`).
        prev_hiddens : list, optional
            Per layer, its previous packed state (``None`` for stateless layers);
            default: the layers' initial states.
        dropout : list, optional
            Per layer, a mask multiplied into that layer's input (``None`` for
            no dropout at that layer).

        Returns
        -------
        list
            Per layer, its new packed state (recurrent cells) or output
            (other layers); an LSTM's entry is ``[c, h]``.
        """
        x = pt.as_tensor_variable(x)
        if prev_hiddens is None:
            batch_like = None
            if x.ndim == 2 and not backend.is_integer(x):
                batch_like = x
            elif x.ndim == 1 and backend.is_integer(x):
                batch_like = x
            prev_hiddens = self.initial_hidden_states(batch_like)
        prev_hiddens = list(prev_hiddens)
        self._check_list(prev_hiddens, "prev_hiddens")
        dropout = self._masks(dropout, "dropout")
        self._check_gates()
        out = []
        layer_input = x
        for k, layer in enumerate(self.layers):
            if dropout[k] is not None:
                layer_input = layer_input * dropout[k]
            if isinstance(layer, GatedInput):
                h_above = self.layers[k + 1].postprocess_activation(prev_hiddens[k + 1])
                level = layer.activate(layer_input, h_above)
                out.append(level)
                layer_input = layer.postprocess_activation(level, layer_input)
            elif layer.is_recursive:
                level = layer.activate(layer_input, prev_hiddens[k])
                out.append(level)
                layer_input = layer.postprocess_activation(level, layer_input, prev_hiddens[k])
            else:
                level = layer.activate(layer_input)
                out.append(level)
                layer_input = level
        return out

    # ------------------------------------------------------------------ runner
    def scan(
        self,
        inputs,
        mask=None,
        initial_states=None,
        go_backwards: bool = False,
        truncate_gradient: int = -1,
        dropout=None,
        recurrent_dropout=None,
        zoneout=None,
        precompute: bool = False,
        checkpoint_every: int | None = None,
        fused: bool = False,
    ) -> SequenceResult:
        """Run the stack over a time-major sequence with one ``scan``.

        Parameters
        ----------
        inputs : tensor ``(time, batch, input_size)`` or ``(time, input_size)``
            Time-major input; integer ``(time, batch)`` or ``(time,)`` indices
            when the first layer is an :class:`~theano_lstm.Embedding`.
        mask : tensor ``(time, batch)`` or ``(time,)``, optional
            1 for valid steps, 0 for padding.  Each column must be a prefix of
            ones followed by zeros (sequences padded at the end).  A padded
            step carries the previous state, so :attr:`SequenceResult.final_states`
            hold each sequence's last valid state.  Padded *outputs* are not
            zeroed: mask them in the loss.
        initial_states : list, optional
            Per layer, a packed initial state ``(state_size,)`` or
            ``(batch, state_size)`` (``None`` entries use the layer's
            :attr:`initial_hidden_state`).
        go_backwards : bool
            Process each sequence from its last valid step to its first.
            Outputs stay aligned with the inputs (``outputs[t]`` belongs to
            ``inputs[t]``); padding stays at the end.
        truncate_gradient : int
            Backpropagate through at most this many steps (-1: all).
        dropout : list, optional
            Per layer, a mask multiplied into that layer's input: shape
            ``(batch, size)``/``(size,)`` (same mask at every step, as in the
            2014 package and variational dropout) or ``(time, batch, size)``/
            ``(time, size)`` (a mask per step).  See :mod:`theano_lstm.dropout`.
        recurrent_dropout : list, optional
            Per recurrent layer, a mask multiplied into ``h_{t-1}`` where it
            enters the recurrent products (variational dropout, Gal &
            Ghahramani 2016); shapes as for ``dropout`` with ``hidden_size``.
        zoneout : list, optional
            Per recurrent layer, a mask over the packed state (last axis
            ``state_size``, ``[c, h]`` for an LSTM): where it is 1
            the previous state is kept (Krueger et al. 2017):
            :math:`s_t = m \\odot s_{t-1} + (1 - m) \\odot \\tilde s_t`.  A mask
            filled with the zoneout probability gives the evaluation-time
            expectation.
        precompute : bool, default False
            Compute the first recurrent layer's input projection for all steps
            with one matrix product before the loop.  Same result either way.
            Off by default: measured on CPU it made no difference in the C
            and Numba modes (PyTensor's scan rewrites handle the in-loop
            product well) and made JAX mode 1.3-2x slower
            (``benchmarks/README.md``).
        checkpoint_every : int, optional
            Memory-bounded BPTT: run the loop in chunks of this many steps
            (an outer scan over chunks, an inner scan within each) and keep
            only the chunk-boundary states and the last recurrent layer's
            output sequence; backpropagation recomputes the rest chunk by
            chunk.  Peak memory falls roughly from :math:`O(T)` full stack
            states to :math:`O(T/N + N)`, for about one extra forward pass.
            The result then has ``outputs``, ``final_states`` and the last
            recurrent layer's entry of ``layer_outputs``; the other per-step
            sequences are ``None``.  A sequence whose length is not a multiple
            is padded internally with masked steps.  Not combined with
            ``truncate_gradient`` or per-step dropout/zoneout masks, and the
            input projection is computed inside the loop.  Compiling the
            gradient of the nested loop takes noticeably longer than for the
            plain runner (tens of seconds for a 2-layer stack).
        fused : bool, default False
            Run each recurrent layer over the whole sequence with one fused
            Op and a hand-written backward pass (:mod:`theano_lstm.fused`)
            instead of one ``scan`` for the stack.  Same results (tested to
            1e-10 in float64, gradients included); several times faster in
            the C mode, where ``scan`` pays per-step overhead.  Only for
            stacks of plain :class:`~theano_lstm.LSTM` (no peepholes, no
            coupled gates) and :class:`~theano_lstm.GRU` cells with their
            default activations and no gradient clipping, plus
            non-recurrent layers; not combined with ``recurrent_dropout``,
            ``zoneout``, ``truncate_gradient`` or ``checkpoint_every``.
            Anything else raises ``ValueError`` naming what prevents it.

        Returns
        -------
        SequenceResult
        """
        inputs = pt.as_tensor_variable(inputs)
        self._check_gates()
        n = len(self.layers)
        if n == 0:
            raise ValueError("this StackedCells has no layers")
        integer = backend.is_integer(inputs)
        if integer and not _accepts_int(self.layers[0]):
            raise TypeError(f"inputs must be a float tensor for a first layer {type(self.layers[0]).__name__}, received dtype {inputs.dtype}")
        seq_ndim = inputs.ndim if integer else inputs.ndim - 1
        if seq_ndim not in (1, 2):
            want = "(time, batch) or (time,) integer indices" if integer else "(time, batch, features) or (time, features)"
            raise ValueError(f"inputs must be {want}, received a tensor with {inputs.ndim} dimensions")
        if not integer:
            inputs = check_features(inputs, self.layers[0].input_size, "inputs", "StackedCells")
        batched = seq_ndim == 2
        mask = self._check_mask(mask, inputs, seq_ndim)
        dropout = self._masks(dropout, "dropout")
        recurrent_dropout = self._masks(recurrent_dropout, "recurrent_dropout", recurrent_only=True)
        zoneout = self._masks(zoneout, "zoneout", recurrent_only=True)
        for name, masks in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout), ("zoneout", zoneout)):
            for k, m in enumerate(masks):
                if m is None:
                    continue
                if m.ndim not in (seq_ndim, seq_ndim + 1):
                    raise ValueError(
                        f"{name}[{k}] must have {seq_ndim} dimensions (one mask per sequence) or "
                        f"{seq_ndim + 1} (one per step), received {m.ndim}"
                    )
                layer = self.layers[k]
                if name == "dropout" and isinstance(layer, Embedding):
                    raise ValueError(
                        f"dropout[{k}] would multiply the integer indices of an Embedding; "
                        f"drop its output instead (dropout[{k + 1}])"
                    )
                size = {"dropout": layer.input_size, "recurrent_dropout": getattr(layer, "hidden_size", None),
                        "zoneout": getattr(layer, "state_size", None)}[name]
                last = m.type.shape[-1]
                if last is not None and last != size:
                    raise ValueError(f"{name}[{k}] must have {size} features on its last axis, received {last}")
                if last is None:  # checked when the function runs instead
                    masks[k] = pt.specify_shape(m, (None,) * (m.ndim - 1) + (size,))
        if initial_states is not None:
            initial_states = list(initial_states)
            self._check_list(initial_states, "initial_states")
        else:
            initial_states = [None] * n

        rec = [k for k, layer in enumerate(self.layers) if layer.is_recursive]
        first, last = (rec[0], rec[-1]) if rec else (n, n - 1)
        if checkpoint_every is not None:
            checkpoint_every = _check_size(checkpoint_every, "checkpoint_every")
            if truncate_gradient != -1:
                raise ValueError("checkpoint_every cannot be combined with truncate_gradient")
            for name, masks in (("dropout", dropout), ("zoneout", zoneout), ("recurrent_dropout", recurrent_dropout)):
                if any(m is not None and m.ndim == seq_ndim + 1 for m in masks):
                    raise ValueError(f"checkpoint_every needs per-sequence {name} masks (no time axis)")
            precompute = False

        def flip(v):
            return v[::-1] if go_backwards else v

        def per_step(m):
            return m is not None and m.ndim == seq_ndim + 1

        # ---- layers before the first recurrent one: whole sequence at once
        layer_outputs: list = [None] * n
        states: list = [None] * n
        final_states: list = [None] * n
        cells: list = [None] * n
        current = inputs
        for k in range(first):
            layer = self.layers[k]
            if dropout[k] is not None:
                current = current * _time_broadcast(dropout[k], per_step(dropout[k]))
            current = layer.activate(current)
            layer_outputs[k] = current

        if rec and fused:
            blocker = self._fusion_blocker(range(first, last + 1), recurrent_dropout, zoneout,
                                           truncate_gradient, checkpoint_every)
            if blocker:
                raise ValueError(f"fused=True cannot run this stack: {blocker}; use fused=False")
            current = self._fused_core(current, mask, batched, first, last, dropout, initial_states, go_backwards,
                                       layer_outputs, states, final_states, cells)
        elif rec:
            batch_like = current[0] if batched else None
            core = list(range(first, last + 1))
            # ---- sequences
            seqs, seq_slots = [], {}

            def add_seq(key, value):
                seq_slots[key] = len(seqs)
                seqs.append(flip(value))

            head = self.layers[first]
            precomputed = precompute and isinstance(head, RecurrentCell)
            # the head layer's input dropout is applied to the whole sequence
            # outside the loop (free when the projection is precomputed)
            head_input = current
            if dropout[first] is not None:
                head_input = head_input * _time_broadcast(dropout[first], per_step(dropout[first]))
            n_steps = head_input.shape[0]
            if checkpoint_every is not None:
                head_input, mask, n_chunks = _pad_to_chunks(head_input, mask, checkpoint_every, batched)
            add_seq("input", head.input_projection(head_input) if precomputed else head_input)
            if mask is not None:
                m = pt.neq(mask, 0)
                add_seq("mask", m.dimshuffle(0, 1, "x") if batched else m)
            for name, masks in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout), ("zoneout", zoneout)):
                for k in core:
                    if per_step(masks[k]) and not (name == "dropout" and k == first):
                        add_seq((name, k), masks[k])
            # ---- carried states
            outputs_info, out_slots = [], {}
            for k in core:
                layer = self.layers[k]
                if isinstance(layer, RecurrentCell):
                    init = initial_states[k]
                    init = _initial_state(layer, batch_like) if init is None else _broadcast_state(layer, init, batch_like)
                    out_slots[k] = len(outputs_info)
                    outputs_info.extend(layer.unpack(init))
                else:  # per-step outputs, not carried (a GatedInput has two: gate, gated input)
                    out_slots[k] = len(outputs_info)
                    outputs_info.extend([None] * (2 if isinstance(layer, GatedInput) else 1))
            # ---- non-sequences: weights, then constant masks
            nonseqs, w_slots = [], {}
            for k in core:
                layer = self.layers[k]
                if isinstance(layer, RecurrentCell):
                    ws = (layer.recurrent_weights() if (k == first and precomputed)
                          else layer.projection_weights() + layer.recurrent_weights())
                else:
                    ws = layer.weights()
                w_slots[k] = (len(nonseqs), len(ws))
                nonseqs.extend(ws)
            const_slots = {}
            for name, masks in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout), ("zoneout", zoneout)):
                for k in core:
                    if masks[k] is not None and not per_step(masks[k]) and not (name == "dropout" and k == first):
                        const_slots[(name, k)] = len(nonseqs)
                        nonseqs.append(masks[k])
            n_seq, n_out = len(seqs), len(outputs_info)
            n_carried = sum(1 for v in outputs_info if v is not None)
            layers = self.layers

            def step(*args):
                seq_v = args[:n_seq]
                prev_v = args[n_seq : n_seq + n_carried]
                non_v = args[n_seq + n_carried :]
                # map carried slots to their values
                prev_by_slot, i = {}, 0
                for s, v in enumerate(outputs_info):
                    if v is not None:
                        prev_by_slot[s] = prev_v[i]
                        i += 1

                def get_mask(name, k):
                    if (name, k) in seq_slots:
                        return seq_v[seq_slots[(name, k)]]
                    if (name, k) in const_slots:
                        return non_v[const_slots[(name, k)]]
                    return None

                valid = seq_v[seq_slots["mask"]] if "mask" in seq_slots else None
                new_out = [None] * n_out
                x = seq_v[seq_slots["input"]]
                for k in core:
                    layer = layers[k]
                    start, count = w_slots[k]
                    ws = list(non_v[start : start + count])
                    drop = get_mask("dropout", k) if k != first else None
                    if drop is not None:
                        x = x * drop
                    slot = out_slots[k]
                    if isinstance(layer, RecurrentCell):
                        prev = tuple(prev_by_slot[slot + j] for j in range(layer.n_states))
                        if k == first and precomputed:
                            xw, rw = x, ws
                        else:
                            n_proj = len(layer.projection_weights())
                            xw = layer.input_projection(x, ws[:n_proj])
                            rw = ws[n_proj:]
                        new = layer.step(xw, prev, rw, h_mask=get_mask("recurrent_dropout", k))
                        zo = get_mask("zoneout", k)
                        if zo is not None:
                            new = tuple(z * p + (1 - z) * s for z, p, s in zip(layer.unpack(zo), prev, new))
                        if valid is not None:
                            new = tuple(pt.switch(valid, s, p) for s, p in zip(new, prev))
                        for j, s in enumerate(new):
                            new_out[slot + j] = s
                        x = layer.output(new)
                    elif isinstance(layer, GatedInput):
                        above = layers[k + 1]
                        h_above = prev_by_slot[out_slots[k + 1] + above.n_states - 1]
                        g = layer.activate(x, h_above, ws)
                        x = layer.postprocess_activation(g, x)
                        new_out[slot], new_out[slot + 1] = g, x
                    else:
                        x = layer.activate(x, ws)
                        new_out[slot] = x
                return new_out

            if checkpoint_every is not None:
                top = self.layers[last]
                top_slot = out_slots[last] + top.n_states - 1
                outputs, finals = _checkpointed_scan(
                    step, seqs, outputs_info, nonseqs, checkpoint_every, n_chunks, top_slot)
                # padding steps sit at the end of the loop's time, or at its start when reversed
                outputs = flip(outputs[outputs.shape[0] - n_steps :] if go_backwards else outputs[:n_steps])
                i = 0
                for k in core:
                    layer = self.layers[k]
                    if isinstance(layer, RecurrentCell):
                        final_states[k] = layer.pack(finals[i : i + layer.n_states])
                        i += layer.n_states
                layer_outputs[last] = outputs
                current = outputs
                core = []
            else:
                results = backend.scan(
                    step,
                    sequences=seqs,
                    outputs_info=outputs_info,
                    non_sequences=nonseqs,
                    truncate_gradient=truncate_gradient,
                    name="StackedCells.scan",
                )
            for k in core:
                layer = self.layers[k]
                slot = out_slots[k]
                if isinstance(layer, RecurrentCell):
                    seq_states = tuple(results[slot + j] for j in range(layer.n_states))
                    final_states[k] = layer.pack(tuple(s[-1] for s in seq_states))
                    seq_states = tuple(flip(s) for s in seq_states)
                    states[k] = layer.pack(seq_states)
                    layer_outputs[k] = layer.output(seq_states)
                    if layer.n_states == 2:
                        cells[k] = seq_states[0]
                elif isinstance(layer, GatedInput):
                    states[k] = flip(results[slot])
                    layer_outputs[k] = flip(results[slot + 1])
                else:
                    layer_outputs[k] = flip(results[slot])
            current = layer_outputs[last]
        # ---- layers after the last recurrent one: whole sequence at once
        for k in range(last + 1, n):
            layer = self.layers[k]
            if dropout[k] is not None:
                current = current * _time_broadcast(dropout[k], per_step(dropout[k]))
            current = layer.activate(current)
            layer_outputs[k] = current
        return SequenceResult(current, layer_outputs, states, final_states, cells)

    # ---------------------------------------------------------------- fused path

    def _fusion_blocker(self, core, recurrent_dropout, zoneout, truncate_gradient, checkpoint_every) -> str | None:
        """Why ``fused=True`` cannot run this stack, or ``None`` when it can."""
        for name, masks in (("recurrent_dropout", recurrent_dropout), ("zoneout", zoneout)):
            if any(m is not None for m in masks):
                return f"{name} acts inside the recurrence, which the fused Ops do not support"
        if truncate_gradient != -1:
            return "truncate_gradient is not supported by the fused Ops"
        if checkpoint_every is not None:
            return "checkpoint_every is not supported by the fused Ops"
        for k in core:
            layer = self.layers[k]
            where = f"layer {k} ({type(layer).__name__})"
            if isinstance(layer, GatedInput):
                return f"{where} reads the state of the layer above at every step"
            if not isinstance(layer, RecurrentCell):
                continue
            if type(layer) not in (LSTM, GRU):
                return f"{where} has no fused implementation (plain LSTM and GRU only)"
            if layer.clip_gradients:
                return f"{where} clips gradients inside the recurrence"
            if backend.activation_name(layer.activation) != "tanh":
                return f"{where} uses activation {backend.activation_name(layer.activation) or 'custom'}, not tanh"
            if isinstance(layer, LSTM):
                if layer.peepholes or layer.coupled_gates:
                    return f"{where} has peepholes or coupled gates"
                gates = (layer.in_gate, layer.forget_gate, layer.out_gate)
            else:
                gates = (layer.reset_gate, layer.update_gate)
            for gate in gates:
                name = backend.activation_name(gate.activation)
                if name != "sigmoid":
                    return f"{where} gate {gate.name} uses {name or 'a custom activation'}, not sigmoid"
            cand = layer.in_gate2 if isinstance(layer, LSTM) else layer.candidate
            if backend.activation_name(cand.activation) != "tanh":
                return f"{where} gate {cand.name} does not use tanh"
        return None

    def _fused_core(self, x, mask, batched, first, last, dropout, initial_states, go_backwards,
                    layer_outputs, states, final_states, cells):
        """Run layers ``first..last`` one whole sequence at a time with the fused Ops."""
        from . import fused

        def flip(v):
            return v[::-1] if go_backwards else v

        def add_batch(v):  # (time, n) -> (time, 1, n): the Ops are batched
            return v if batched or v is None else v.dimshuffle(0, "x", *range(1, v.ndim))

        def drop_batch(v, time_axis=True):
            if batched or v is None:
                return v
            return v[:, 0] if time_axis else v[0]

        x = add_batch(x)
        valid = None
        if mask is not None:
            valid = add_batch(pt.neq(mask, 0)).astype(x.dtype)
        for k in range(first, last + 1):
            layer = self.layers[k]
            d = dropout[k]
            if d is not None:
                per_step = d.ndim == (3 if batched else 2)
                d = add_batch(d) if per_step else d
                x = x * _time_broadcast(d, per_step)
            if not isinstance(layer, RecurrentCell):
                x = layer.activate(x)
                layer_outputs[k] = drop_batch(x)
                continue
            init = initial_states[k]
            init = _initial_state(layer, x[0]) if init is None else _broadcast_state(layer, init, x[0])
            xw = layer.input_projection(flip(x))
            m = None if valid is None else flip(valid)
            if isinstance(layer, LSTM):
                c0, h0 = layer.unpack(init)
                seq_states = fused.lstm_sequence(xw, layer.recurrent_weights()[0], c0, h0, m)
            else:
                (h0,) = layer.unpack(init)
                seq_states = (fused.gru_sequence(xw, layer.recurrent_weights(), h0, m, reset=layer.reset),)
            final_states[k] = drop_batch(layer.pack(tuple(s[-1] for s in seq_states)), time_axis=False)
            seq_states = tuple(flip(s) for s in seq_states)
            x = layer.output(seq_states)
            states[k] = drop_batch(layer.pack(seq_states))
            layer_outputs[k] = drop_batch(x)
            if layer.n_states == 2:
                cells[k] = drop_batch(seq_states[0])
        return drop_batch(x)

    # ---------------------------------------------------------------- helpers
    def _check_list(self, values, what):
        if len(values) != len(self.layers):
            raise ValueError(f"{what} must have one entry per layer ({len(self.layers)}), received {len(values)}")

    def _masks(self, masks, what, recurrent_only=False):
        if masks is None:
            return [None] * len(self.layers)
        masks = list(masks)
        self._check_list(masks, what)
        out = []
        for k, m in enumerate(masks):
            if m is None:
                out.append(None)
                continue
            if recurrent_only and not isinstance(self.layers[k], RecurrentCell):
                raise ValueError(f"{what}[{k}] is set but layer {k} ({type(self.layers[k]).__name__}) is not recurrent")
            m = pt.as_tensor_variable(m)
            if m.dtype != self.layers[k].dtype:
                m = pt.cast(m, self.layers[k].dtype)  # a float64 mask must not upcast a float32 state
            out.append(m)
        return out

    def _check_mask(self, mask, inputs, seq_ndim):
        if mask is None:
            return None
        mask = pt.as_tensor_variable(mask)
        if mask.ndim != seq_ndim:
            want = "(time, batch)" if seq_ndim == 2 else "(time,)"
            raise ValueError(f"mask must have shape {want} ({seq_ndim} dimensions), received {mask.ndim} dimensions")
        for axis in range(seq_ndim):
            a, b = mask.type.shape[axis], inputs.type.shape[axis]
            if a is not None and b is not None and a != b:
                raise ValueError(f"mask axis {axis} has length {a} but inputs axis {axis} has length {b}")
        return mask

    def _check_gates(self):
        for k, layer in enumerate(self.layers):
            if isinstance(layer, GatedInput):
                above = self.layers[k + 1] if k + 1 < len(self.layers) else None
                if not isinstance(above, RecurrentCell):
                    raise ValueError(f"GatedInput at layer {k} must be followed by a recurrent layer")
                if above.hidden_size != layer.hidden_size:
                    raise ValueError(
                        f"GatedInput at layer {k} has hidden_size={layer.hidden_size} but the layer above has "
                        f"hidden_size={above.hidden_size}"
                    )


def _accepts_int(layer) -> bool:
    return isinstance(layer, Embedding)


def _pad_to_chunks(inputs, mask, every: int, batched: bool):
    """Pad a time-major sequence (and its mask) with masked steps to a multiple of ``every``.

    Returns ``(inputs, mask, n_chunks)``; the mask is created (all valid) when
    padding is needed and none was given.  No padding when the static length
    is already a multiple.
    """
    length = inputs.type.shape[0]
    if length is not None:
        n_chunks = -(-length // every)
        pad = n_chunks * every - length
        if pad == 0:
            return inputs, mask, n_chunks
    else:
        n_chunks = (inputs.shape[0] + every - 1) // every
        pad = n_chunks * every - inputs.shape[0]
    if mask is None:
        mask = pt.ones(inputs.shape[:2] if batched else inputs.shape[:1], dtype=inputs.dtype)
    zeros = pt.zeros((pad,) + tuple(inputs.shape[1:]), dtype=inputs.dtype)
    inputs = pt.concatenate([inputs, zeros], axis=0)
    mask = pt.concatenate([mask, pt.zeros((pad,) + tuple(mask.shape[1:]), dtype=mask.dtype)], axis=0)
    return inputs, mask, n_chunks


def _checkpointed_scan(step, seqs, outputs_info, nonseqs, every, n_chunks, top_slot):
    """Run ``step`` as an outer scan over chunks of ``every`` steps with an inner scan per chunk.

    Only the chunk-boundary carried states and the ``top_slot`` output are
    outputs of the outer loop, so backpropagation stores those and recomputes
    each chunk's inner loop.  Returns ``(top output sequence, final carried states)``.
    """
    def tail(v):  # trailing shape, static lengths kept (a broadcastable 1 must stay one)
        return tuple(st if st is not None else v.shape[i] for i, st in enumerate(v.type.shape) if i > 0)

    chunked = [s.reshape((n_chunks, every) + tail(s), ndim=s.ndim + 1) for s in seqs]
    carried = [k for k, v in enumerate(outputs_info) if v is not None]
    n_seq, n_carried = len(chunked), len(carried)

    def chunk_step(*args):
        chunk_seqs = args[:n_seq]
        prev = args[n_seq : n_seq + n_carried]
        inner_nonseqs = args[n_seq + n_carried :]
        inits = [None] * len(outputs_info)
        for k, v in zip(carried, prev):
            inits[k] = v
        inner = backend.scan(step, sequences=chunk_seqs, outputs_info=inits, non_sequences=inner_nonseqs,
                             name="StackedCells.scan.chunk")
        return [inner[top_slot]] + [inner[k][-1] for k in carried]

    results = backend.scan(
        chunk_step,
        sequences=chunked,
        outputs_info=[None] + [outputs_info[k] for k in carried],
        non_sequences=nonseqs,
        name="StackedCells.scan.checkpointed",
    )
    top = results[0]
    top = top.reshape((top.shape[0] * top.shape[1],) + tail(top)[1:], ndim=top.ndim - 1)
    return top, [r[-1] for r in results[1:]]


def _time_broadcast(m, per_step):
    """A per-sequence mask gets a leading broadcastable time axis."""
    return m if per_step else pt.shape_padleft(m)


def _initial_state(layer, batch_like):
    if not isinstance(layer, RecurrentCell):
        return None
    init = layer.initial_hidden_state
    if batch_like is None:
        return init
    return _broadcast_state(layer, init, batch_like)


def _broadcast_state(layer, state, batch_like):
    state = pt.as_tensor_variable(state)
    if state.ndim == 0 or state.type.shape[-1] not in (None, layer.state_size):
        raise ValueError(
            f"initial state of {layer.name} must have {layer.state_size} features, received shape {state.type.shape}"
        )
    if not state.dtype == layer.dtype:
        state = pt.cast(state, layer.dtype)
    if batch_like is None or state.ndim == 2:
        return state
    # (size,) -> (batch, size) without a symbolic shape (JAX needs none):
    # broadcast against a zero column derived from the batch.
    zeros = pt.zeros_like(batch_like[..., :1] if not backend.is_integer(batch_like) else batch_like, dtype=layer.dtype)
    if backend.is_integer(batch_like):
        zeros = zeros.dimshuffle(0, "x")
    return zeros + state


def bidirectional(forward_model: StackedCells, backward_model: StackedCells, inputs, mask=None, **kwargs):
    """Run ``forward_model`` forwards and ``backward_model`` backwards over ``inputs``.

    Returns ``(outputs, forward_result, backward_result)`` where ``outputs``
    concatenates the two output sequences on the feature axis, time-aligned
    (``outputs[t]`` sees the whole sequence).  ``kwargs`` go to both
    :meth:`StackedCells.scan` calls.
    """
    fwd = forward_model.scan(inputs, mask=mask, **kwargs)
    bwd = backward_model.scan(inputs, mask=mask, go_backwards=True, **kwargs)
    return pt.concatenate([fwd.outputs, bwd.outputs], axis=-1), fwd, bwd
