r"""Experimental fused sequence Ops for the plain LSTM and GRU (whole loop in one Op).

:meth:`theano_lstm.StackedCells.scan` runs a recurrent layer with
:func:`pytensor.scan`, which pays a per-step overhead in the C backend.  The
Ops here run the whole time loop (and a hand-written backpropagation through
time) in one node:

* :class:`LSTMSequence` / :class:`LSTMSequenceGrad`: standard LSTM, gate order
  ``i, f, g, o`` (sigmoid, sigmoid, tanh, sigmoid), no peepholes, no clipping.
* :class:`GRUSequence` / :class:`GRUSequenceGrad`: standard GRU, gate order
  ``r, z, n``, with the reset gate applied ``"before"`` or ``"after"`` the
  recurrent product exactly as :meth:`theano_lstm.GRU.step`.

The public entry points are :func:`lstm_sequence` and :func:`gru_sequence`.
They take the *input projection* ``xw = x W + b`` of the whole sequence
(:meth:`~theano_lstm.layers.RecurrentCell.input_projection`), so only the
recurrence is inside the Op and the projection stays one ordinary matrix
product that PyTensor differentiates itself.

How each backend runs the Ops
-----------------------------
C / CVM (and FAST_COMPILE, FAST_RUN)
    ``perform``: a Python loop over time whose matrix products are BLAS GEMMs
    (``np.dot`` into preallocated buffers) and whose per-step gate arithmetic
    is one or two compiled Numba kernels (:mod:`theano_lstm._kernels`,
    compiled once per machine and cached on disk).  In float32 the forward
    kernels compute the sigmoids and ``tanh`` with their own vectorised
    ``exp`` (absolute error below 4e-7); float64 runs the forward pass in
    NumPy ufuncs (sigmoids as ``(1 + tanh(x/2)) / 2``).  The LSTM forward Op
    also outputs the activated gates, and the GRU forward Op its gates, candidate
    and the reset gate's operand, which the gradient Ops reuse instead of
    recomputing them.  The recurrent weight gradient is accumulated with one
    large GEMM over all ``T * B`` rows after the backward loop.  Without Numba
    (or with ``fused._use_numba = False``) everything runs in NumPy ufuncs.
    The small per-step GEMMs suffer when OpenBLAS runs several threads on a
    busy machine (each step waits for a thread that is not scheduled);
    ``OPENBLAS_NUM_THREADS=1`` is then much faster.
NUMBA
    PyTensor 3.0.7's Numba linker has no implementation for an Op that only
    defines ``perform``: its fallback (``generate_fallback_impl``) calls
    ``perform`` from inside the jitted graph in ``numba.objmode`` and warns
    ("Numba will use object mode to run ...").  This module registers the
    same object-mode call explicitly (without the warning), so in NUMBA mode
    the Ops run exactly the ``perform`` code above, the rest of the graph
    being jitted.  The graph is then not cached on disk by PyTensor's Numba cache
    (an object-mode call has no cache key).
JAX
    ``jax_funcify`` implementations: a :func:`jax.lax.scan` of the same
    equations, and for the gradient Ops a reverse scan of the same BPTT
    from the saved activations (no second forward pass, which
    :func:`jax.vjp` of the forward scan would run).  The
    registration needs ``pytensor.link.jax.dispatch``, which imports jax and
    sets ``jax_enable_x64`` from ``floatX`` as a side effect; to keep
    ``import theano_lstm.fused`` from importing jax (slow) or changing that
    setting, registration happens when PyTensor itself first imports its
    JAX dispatch module (right away if it already has).  Nothing is imported
    when jax is not installed.

Masks
-----
``mask`` is ``(time, batch)``, 1 (any non-zero value) for a valid step and 0
for padding; a padded step carries the previous state unchanged, as in
:meth:`StackedCells.scan`.  The mask gets no gradient.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from collections.abc import Sequence

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, disconnected_type, grad_not_implemented
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

__all__ = [
    "lstm_sequence",
    "gru_sequence",
    "LSTMSequence",
    "LSTMSequenceGrad",
    "GRUSequence",
    "GRUSequenceGrad",
    "register_jax",
]

_FLOATS = ("float32", "float64")


# ============================================================== input checks


def _tensor(x, what: str):
    try:
        return pt.as_tensor_variable(x)
    except Exception as exc:  # noqa: BLE001 - re-raised with context
        raise TypeError(f"{what} must be a tensor or array, received {type(x).__name__}") from exc


def _check_inputs(op_name: str, specs, dtype=None):
    """Convert and check ``[(value, name, ndim, float?), ...]``; returns tensors and the float dtype.

    Every float input must have the same dtype (float32 or float64); a mask
    may have any numeric or bool dtype.
    """
    out = []
    for value, name, ndim, is_float in specs:
        v = _tensor(value, f"{op_name}: {name}")
        if v.ndim != ndim:
            raise ValueError(
                f"{op_name}: {name} must have {ndim} dimensions, received {v.ndim} (static shape {v.type.shape})"
            )
        if is_float:
            if v.dtype not in _FLOATS:
                raise TypeError(f"{op_name}: {name} must be float32 or float64, received dtype {v.dtype}")
            if dtype is None:
                dtype = v.dtype
            elif v.dtype != dtype:
                raise TypeError(
                    f"{op_name}: every float input must have the same dtype; {name} is {v.dtype} "
                    f"but the inputs before it are {dtype}"
                )
        elif not (v.dtype == "bool" or v.dtype.startswith(("int", "uint", "float"))):
            raise TypeError(f"{op_name}: {name} must be a numeric or bool tensor, received dtype {v.dtype}")
        out.append(v)
    return out, dtype


def _same(op_name: str, what: str, *pairs):
    """Check statically known lengths agree: ``pairs`` of ``(label, length or None)``."""
    known = [(label, n) for label, n in pairs if n is not None]
    if len({n for _, n in known}) > 1:
        detail = ", ".join(f"{label} = {n}" for label, n in known)
        raise ValueError(f"{op_name}: {what} disagree: {detail}")
    return known[0][1] if known else None


def _runtime_check(op_name: str, ok: bool, message: str):
    if not ok:
        raise ValueError(f"{op_name}: {message}")


def _valid_steps(mask, T: int, B: int, op_name: str):
    """``(valid, padded)`` from a ``(T, B)`` mask: ``valid`` a bool ``(T, B, 1)`` array
    (``None`` when every step is valid) and ``padded[t]`` whether step t has padding."""
    mask = np.asarray(mask)
    _runtime_check(op_name, mask.shape == (T, B), f"mask must have shape (time, batch) = {(T, B)}, received {mask.shape}")
    valid = mask != 0
    if valid.all():
        return None, None
    padded = ~valid.all(axis=1)
    return valid[:, :, None], padded


# sigmoid(x) = (1 + tanh(x / 2)) / 2: NumPy's tanh is vectorised (SIMD) and
# about twice as fast as scipy.special.expit, and this way one tanh call
# covers all the gates of a fused pre-activation.
def _sigmoid_(x):
    """In-place logistic sigmoid of ``x``."""
    x *= 0.5
    np.tanh(x, out=x)
    x *= 0.5
    x += 0.5
    return x


def _lstm_rows(H, dtype):
    """Row vectors turning tanh of the scaled pre-activation into ``i, f, g, o`` (sigmoid, sigmoid, tanh, sigmoid)."""
    half, one = np.full(H, 0.5, dtype), np.ones(H, dtype)
    return np.concatenate([half, half, one, half]), np.concatenate([half, half, 1 - one, half])


def _activate_rows(z, scale, shift):
    """In place: ``tanh(z * scale) * scale + shift`` (sigmoid columns have scale = shift = 1/2, tanh columns 1 and 0)."""
    z *= scale
    np.tanh(z, out=z)
    z *= scale
    z += shift
    return z


# ================================================================ LSTM (NumPy)


def _lstm_forward(xw, U, c0, h0, mask, op_name="LSTMSequence"):
    T, B, G = xw.shape
    H = U.shape[0]
    _runtime_check(op_name, U.shape == (H, 4 * H), f"U must have shape (H, 4H), received {U.shape}")
    _runtime_check(op_name, G == 4 * H, f"xw has {G} features on its last axis but U has 4H = {4 * H} columns")
    for name, v in (("c0", c0), ("h0", h0)):
        _runtime_check(op_name, v.shape == (B, H), f"{name} must have shape (batch, H) = {(B, H)}, received {v.shape}")
    valid, padded = _valid_steps(mask, T, B, op_name)
    dt = xw.dtype
    U = np.ascontiguousarray(U)
    cs = np.empty((T, B, H), dt)
    hs = np.empty((T, B, H), dt)
    gates = np.empty((T, B, G), dt)
    kernels = _numba_kernels(dt)
    if kernels is not None:
        # per step: one GEMM, then one compiled pass over the gates
        xw, c0, h0 = (np.ascontiguousarray(a) for a in (xw, c0, h0))
        ok = _ok_rows(valid, T, B)
        z = np.empty((B, G), dt)
        c, h = c0, h0
        for t in range(T):
            np.dot(h, U, out=z)
            kernels.lstm_forward_step(z, xw[t], c, h, ok[t], gates[t], cs[t], hs[t])
            c, h = cs[t], hs[t]
        return cs, hs, gates
    tmp = np.empty((B, H), dt)
    scale, shift = _lstm_rows(H, dt)
    c, h = c0, h0
    for t in range(T):
        z = gates[t]
        np.dot(h, U, out=z)
        z += xw[t]
        _activate_rows(z, scale, shift)
        i, f, g, o = z[:, :H], z[:, H : 2 * H], z[:, 2 * H : 3 * H], z[:, 3 * H :]
        c_new, h_new = cs[t], hs[t]
        np.multiply(f, c, out=c_new)
        np.multiply(i, g, out=tmp)
        c_new += tmp
        np.tanh(c_new, out=tmp)
        np.multiply(o, tmp, out=h_new)
        if padded is not None and padded[t]:
            keep = ~valid[t]
            np.copyto(c_new, c, where=keep)
            np.copyto(h_new, h, where=keep)
        c, h = c_new, h_new
    return cs, hs, gates


def _shift(h0, hs):
    """``[h0, hs[0], ..., hs[T-2]]``: the state each step started from, ``(T, B, H)``."""
    prev = np.empty_like(hs)
    if len(hs):
        prev[0] = h0
        prev[1:] = hs[:-1]
    return prev


def _lstm_backward(xw, U, c0, h0, mask, cs, hs, gates, g_cs, g_hs, op_name="LSTMSequenceGrad"):
    T, B, G = xw.shape
    H = U.shape[0]
    _runtime_check(op_name, gates.shape == (T, B, G), f"gates must have shape {(T, B, G)}, received {gates.shape}")
    valid, padded = _valid_steps(mask, T, B, op_name)
    kernels = _numba_kernels()
    dt = xw.dtype
    # With valid steps cs is the new cell; at padded rows it is the carried
    # one, but those rows' gate gradients are multiplied by 0 below.
    tc = np.tanh(cs)
    UT = np.ascontiguousarray(U.T)
    g_xw = np.empty((T, B, G), dt)
    dh = np.zeros((B, H), dt)
    dc = np.zeros((B, H), dt)
    if kernels is not None:
        # one compiled pass per step over the gates (pure arithmetic: the
        # activations were saved by the forward pass); about 40% less time
        # than the NumPy path below for B=64, T=100, H=256.
        gates, cs, g_cs, g_hs, c0 = (np.ascontiguousarray(a) for a in (gates, cs, g_cs, g_hs, c0))
        ok = _ok_rows(valid, T, B)
        carry = np.empty((B, H), dt)
        for t in range(T - 1, -1, -1):
            kernels.lstm_backward_step(dh, dc, g_hs[t], g_cs[t], gates[t], tc[t], cs[t - 1] if t else c0, ok[t], g_xw[t], carry)
            np.dot(g_xw[t], UT, out=dh)
            if padded is not None and padded[t]:
                dh += carry
    else:
        _lstm_backward_loop(T, B, H, c0, cs, gates, tc, valid, padded, UT, g_xw, dh, dc, g_cs, g_hs)
    # g_U = [h0; hs[:-1]]^T g_xw over all T*B rows
    return g_xw, _rows_gemm(h0, hs, g_xw), dc, dh


def _lstm_backward_loop(T, B, H, c0, cs, gates, tc, valid, padded, UT, g_xw, dh, dc, g_cs, g_hs):
    """The backward loop in NumPy ufuncs (used when Numba is unavailable or turned off)."""
    dt = g_xw.dtype
    c_prev = _shift(c0, cs)
    Z = gates.reshape(T, B, 4, H)
    i, f, g, o = Z[:, :, 0], Z[:, :, 1], Z[:, :, 2], Z[:, :, 3]
    # Per-step local derivatives, so the loop only multiplies:
    #   dz_{i,f,g} = dc_t * A[:, :, 0:3],  dz_o = dh_t * A[:, :, 3],
    #   dc_t = dc_in + dh_t * Ac,  dc_{t-1} = dc_t * f.
    A = np.empty((T, B, 4, H), dt)
    np.multiply(g, i * (1 - i), out=A[:, :, 0])
    np.multiply(c_prev, f * (1 - f), out=A[:, :, 1])
    np.multiply(i, 1 - g * g, out=A[:, :, 2])
    np.multiply(tc, o * (1 - o), out=A[:, :, 3])
    Ac = o * (1 - tc * tc)
    del c_prev
    g4 = g_xw.reshape(T, B, 4, H)
    tmp = np.empty((B, H), dt)
    for t in range(T - 1, -1, -1):
        dh += g_hs[t]
        dc += g_cs[t]
        dz = g4[t]
        masked = padded is not None and padded[t]
        if masked:  # padded rows: the gradient passes straight to the previous state
            v = valid[t]
            carry_h = np.where(v, 0, dh)
            carry_c = np.where(v, 0, dc)
            dh *= v
            dc *= v
        np.multiply(dh, Ac[t], out=tmp)
        dc += tmp
        np.multiply(dc[:, None, :], A[t, :, :3], out=dz[:, :3])
        np.multiply(dh, A[t, :, 3], out=dz[:, 3])
        dc *= f[t]
        np.dot(dz.reshape(B, 4 * H), UT, out=dh)
        if masked:
            dh += carry_h
            dc += carry_c


# ============================================================= Numba kernels

#: Use the compiled (Numba) step kernels of :mod:`theano_lstm._kernels`;
#: ``False`` forces the NumPy code (same results to rounding).
_use_numba = True


def _numba_kernels(dtype=None):
    """The kernels module, or ``None`` (Numba missing, turned off, or ``dtype``
    given and not float32: the forward kernels' activations are float32-accurate)."""
    if not _use_numba or (dtype is not None and np.dtype(dtype) != np.float32):
        return None
    try:
        from theano_lstm import _kernels
    except ImportError:  # pragma: no cover - numba is a PyTensor 3 dependency
        return None
    return _kernels


def _ok_rows(valid, T, B):
    """``(T, B)`` C-contiguous bool validity for the kernels (all true without padding)."""
    return np.ones((T, B), bool) if valid is None else np.ascontiguousarray(valid[:, :, 0])


# ================================================================= GRU (NumPy)


def _gru_check(op_name, reset, xw, W1, W2, h0):
    T, B, G = xw.shape
    H = h0.shape[-1] if h0.ndim == 2 else -1
    _runtime_check(op_name, h0.shape == (B, H), f"h0 must have shape (batch, H) with batch = {B}, received {h0.shape}")
    _runtime_check(op_name, G == 3 * H, f"xw has {G} features on its last axis but h0 has H = {H} (3H = {3 * H} expected)")
    if reset == "before":
        _runtime_check(op_name, W1.shape == (H, 2 * H), f"U_rz must have shape (H, 2H) = {(H, 2 * H)}, received {W1.shape}")
        _runtime_check(op_name, W2.shape == (H, H), f"U_n must have shape (H, H) = {(H, H)}, received {W2.shape}")
    else:
        _runtime_check(op_name, W1.shape == (H, 3 * H), f"U must have shape (H, 3H) = {(H, 3 * H)}, received {W1.shape}")
        _runtime_check(op_name, W2.shape == (3 * H,), f"c must have shape (3H,) = {(3 * H,)}, received {W2.shape}")
    return T, B, H


def _gru_forward(reset, xw, W1, W2, h0, mask, op_name="GRUSequence"):
    """``(hs, acts)``: the states ``(T, B, H)`` and every step's activations
    ``(T, B, 4H)`` in the blocks ``r, z, n, v`` with ``v = r * h_{t-1}``
    (reset before) or ``v = h_{t-1} U_n + c_n`` (reset after), which the
    backward pass reuses.  At padded steps they are those of the discarded update."""
    T, B, H = _gru_check(op_name, reset, xw, W1, W2, h0)
    valid, padded = _valid_steps(mask, T, B, op_name)
    dt = xw.dtype
    hs = np.empty((T, B, H), dt)
    acts = np.empty((T, B, 4 * H), dt)
    kernels = _numba_kernels(dt)
    if kernels is not None:
        _gru_forward_compiled(kernels, reset, xw, W1, W2, h0, _ok_rows(valid, T, B), hs, acts)
        return hs, acts
    tmp = np.empty((B, H), dt)
    W1 = np.ascontiguousarray(W1)
    hu = np.empty((B, (2 if reset == "before" else 3) * H), dt)
    h = h0
    for t in range(T):
        x, a = xw[t], acts[t]
        rz, n, v = a[:, : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
        np.dot(h, W1, out=hu)
        np.add(hu[:, : 2 * H], x[:, : 2 * H], out=rz)
        if reset == "before":
            _sigmoid_(rz)
            np.multiply(rz[:, :H], h, out=v)
            np.dot(v, W2, out=tmp)
            np.add(tmp, x[:, 2 * H :], out=n)
        else:
            rz += W2[: 2 * H]
            _sigmoid_(rz)
            np.add(hu[:, 2 * H :], W2[2 * H :], out=v)
            np.multiply(rz[:, :H], v, out=n)
            n += x[:, 2 * H :]
        np.tanh(n, out=n)
        # h_t = (1 - z) n + z h = n + z (h - n)
        h_new = hs[t]
        np.subtract(h, n, out=tmp)
        tmp *= rz[:, H:]
        np.add(n, tmp, out=h_new)
        if padded is not None and padded[t]:
            np.copyto(h_new, h, where=~valid[t])
        h = h_new
    return hs, acts


def _gru_forward_compiled(kernels, reset, xw, W1, W2, h0, ok, hs, acts):
    """:func:`_gru_forward` with the per-step arithmetic in compiled kernels (float32)."""
    T, B, H = hs.shape
    xw, h0, W1, W2 = (np.ascontiguousarray(a) for a in (xw, h0, W1, W2))
    h = h0
    if reset == "before":
        rz = np.empty((B, 2 * H), xw.dtype)
        n = np.empty((B, H), xw.dtype)
        for t in range(T):
            np.dot(h, W1, out=rz)
            kernels.gru_before_gates(rz, xw[t], h, acts[t])
            np.dot(acts[t, :, 3 * H :], W2, out=n)
            kernels.gru_before_state(n, xw[t], h, ok[t], acts[t], hs[t])
            h = hs[t]
    else:
        hu = np.empty((B, 3 * H), xw.dtype)
        for t in range(T):
            np.dot(h, W1, out=hu)
            kernels.gru_after_step(hu, W2, xw[t], h, ok[t], acts[t], hs[t])
            h = hs[t]


def _gru_backward(reset, xw, W1, W2, h0, mask, hs, acts, g_hs, op_name="GRUSequenceGrad"):
    T, B, H = _gru_check(op_name, reset, xw, W1, W2, h0)
    _runtime_check(op_name, acts.shape == (T, B, 4 * H), f"acts must have shape {(T, B, 4 * H)}, received {acts.shape}")
    valid, padded = _valid_steps(mask, T, B, op_name)
    dt = xw.dtype
    g_xw = np.empty((T, B, 3 * H), dt)
    dh = np.zeros((B, H), dt)
    # W1T is U_rz^T (reset before) or U^T (reset after); U_nT only exists before,
    # g_hu (the gradient of h_{t-1} U + c) only after
    W1T = np.ascontiguousarray(W1.T)
    U_nT = np.ascontiguousarray(W2.T) if reset == "before" else None
    g_hu = np.empty((T, B, 3 * H), dt) if reset == "after" else None
    kernels = _numba_kernels()
    if kernels is not None:
        ok = _ok_rows(valid, T, B)
        carry = np.empty((B, H), dt)
        tmp = np.empty((B, H), dt)
        drh = np.empty((B, H), dt)
        acts, hs, g_hs, h0 = (np.ascontiguousarray(a) for a in (acts, hs, g_hs, h0))
        for t in range(T - 1, -1, -1):
            gx, a, h_prev = g_xw[t], acts[t], hs[t - 1] if t else h0
            kernels.gru_backward_head(dh, g_hs[t], ok[t], a, h_prev, gx, carry)
            if reset == "before":
                np.dot(gx[:, 2 * H :], U_nT, out=drh)
                kernels.gru_backward_reset(drh, a, h_prev, dh, gx)
                np.dot(gx[:, : 2 * H], W1T, out=tmp)
            else:
                kernels.gru_backward_after(gx, a, dh, g_hu[t])
                np.dot(g_hu[t], W1T, out=tmp)
            dh += tmp
            if padded is not None and padded[t]:
                dh += carry
    else:
        _gru_backward_loop(reset, acts, _shift(h0, hs), valid, padded, g_hs, g_xw, g_hu, dh, W1T, U_nT)
    # weight gradients: GEMMs over all T * B rows ([h0; hs[:-1]] without a copy)
    if reset == "before":
        g_rz = g_xw[:, :, : 2 * H]
        g_W1 = _rows_gemm(h0, hs, g_rz)
        v = acts[:, :, 3 * H :].reshape(T * B, H)
        g_W2 = np.dot(v.T, g_xw[:, :, 2 * H :].reshape(T * B, H))
    else:
        g_W1 = _rows_gemm(h0, hs, g_hu)
        g_W2 = g_hu.reshape(T * B, 3 * H).sum(axis=0)
    return g_xw, g_W1, g_W2, dh


def _rows_gemm(h0, hs, g):
    """``[h0; hs[0]; ...; hs[T-2]]^T g`` summed over time and batch, ``(H, g.shape[-1])``, without building the shifted copy."""
    T, B, H = hs.shape
    if T == 0:
        return np.zeros((H, g.shape[-1]), hs.dtype)
    out = np.dot(np.asarray(h0).T, g[0])
    if T > 1:
        out += np.dot(hs[:-1].reshape((T - 1) * B, H).T, g[1:].reshape((T - 1) * B, g.shape[-1]))
    return out


def _gru_backward_loop(reset, acts, h_prev, valid, padded, g_hs, g_xw, g_hu, dh, W1T, U_nT):
    """The backward loop in NumPy ufuncs (used when Numba is unavailable or turned off)."""
    T, B, H = h_prev.shape
    tmp = np.empty((B, H), dh.dtype)
    r, z, n, v = (acts[:, :, k * H : (k + 1) * H] for k in range(4))
    # local derivatives: dn_pre = dh An, dz_pre = dh Az, dr_pre = (gradient at r * v) Ar
    An = (1 - z) * (1 - n * n)
    Az = (h_prev - n) * (z * (1 - z))
    Ar = (h_prev if reset == "before" else v) * (r * (1 - r))
    for t in range(T - 1, -1, -1):
        dh += g_hs[t]
        masked = padded is not None and padded[t]
        if masked:
            ok = valid[t]
            carry = np.where(ok, 0, dh)
            dh *= ok
        gx = g_xw[t]
        dn, dz = gx[:, 2 * H :], gx[:, H : 2 * H]
        np.multiply(dh, An[t], out=dn)
        np.multiply(dh, Az[t], out=dz)
        if reset == "before":
            drh = np.dot(dn, U_nT)
            np.multiply(drh, Ar[t], out=gx[:, :H])
            dh *= z[t]
            np.multiply(drh, r[t], out=tmp)
            dh += tmp
            dh += np.dot(gx[:, : 2 * H], W1T)
        else:
            ghu = g_hu[t]
            np.multiply(dn, Ar[t], out=gx[:, :H])
            ghu[:, : 2 * H] = gx[:, : 2 * H]
            np.multiply(dn, r[t], out=ghu[:, 2 * H :])
            dh *= z[t]
            dh += np.dot(ghu, W1T)
        if masked:
            dh += carry


# ======================================================================= Ops


def _out_type(dtype, shape):
    return pt.tensor(dtype=dtype, shape=shape)


def _zeros_if_disconnected(g, like):
    return like.zeros_like() if isinstance(g.type, DisconnectedType) else g


class LSTMSequence(Op):
    """Whole-sequence LSTM: ``(xw, U, c0, h0, mask) -> (cs, hs, gates)``; see :func:`lstm_sequence`.

    ``gates`` ``(T, B, 4H)`` holds the activated ``i, f, g, o`` of every step
    (at padded steps: of the discarded update).  It is an output so that the
    backward pass reuses it instead of recomputing it (which cost one
    ``(T*B, H) x (H, 4H)`` GEMM and the activations, about a third of the
    backward time for B=64, T=100, H=256); it has no gradient of its own.
    """

    __props__ = ()

    def make_node(self, xw, U, c0, h0, mask):
        name = type(self).__name__
        (xw, U, c0, h0, mask), dtype = _check_inputs(
            name, [(xw, "xw", 3, True), (U, "U", 2, True), (c0, "c0", 2, True), (h0, "h0", 2, True), (mask, "mask", 2, False)]
        )
        T, B, G = xw.type.shape
        H = _same(name, "hidden sizes", ("U.shape[0]", U.type.shape[0]), ("c0.shape[1]", c0.type.shape[1]),
                  ("h0.shape[1]", h0.type.shape[1]),
                  ("U.shape[1] / 4", None if U.type.shape[1] is None else U.type.shape[1] / 4),
                  ("xw.shape[2] / 4", None if G is None else G / 4))
        B = _same(name, "batch sizes", ("xw.shape[1]", B), ("c0.shape[0]", c0.type.shape[0]),
                  ("h0.shape[0]", h0.type.shape[0]), ("mask.shape[1]", mask.type.shape[1]))
        T = _same(name, "sequence lengths", ("xw.shape[0]", T), ("mask.shape[0]", mask.type.shape[0]))
        if H is not None and H != int(H):
            raise ValueError(f"{name}: the last axis of xw and U must be 4 * hidden size, received {G} and {U.type.shape[1]}")
        H = None if H is None else int(H)
        # the third output, the activated gates (T, B, 4H), is for LSTMSequenceGrad
        outs = [_out_type(dtype, (T, B, H)) for _ in range(2)] + [_out_type(dtype, (T, B, G))]
        return Apply(self, [xw, U, c0, h0, mask], outs)

    def perform(self, node, inputs, output_storage):
        for storage, value in zip(output_storage, _lstm_forward(*inputs)):
            storage[0] = value

    def infer_shape(self, fgraph, node, shapes):
        xw, U = shapes[0], shapes[1]
        return [(xw[0], xw[1], U[0])] * 2 + [tuple(xw)]

    def connection_pattern(self, node):
        return [[True, True, True]] * 4 + [[False, False, False]]

    def pullback(self, inputs, outputs, output_grads):
        xw, U, c0, h0, mask = inputs
        cs, hs, gates = outputs
        if not isinstance(output_grads[2].type, DisconnectedType):
            raise NotImplementedError("LSTMSequence: the gates output is internal and has no gradient; use cs and hs")
        g_cs = _zeros_if_disconnected(output_grads[0], cs)
        g_hs = _zeros_if_disconnected(output_grads[1], hs)
        grads = LSTMSequenceGrad()(xw, U, c0, h0, mask, cs, hs, gates, g_cs, g_hs)
        return list(grads) + [disconnected_type()]

    L_op = pullback  # what PyTensor 2.x calls (3.x calls pullback)


class _BackwardOp(Op):
    """Common part of the gradient Ops: the first four inputs' gradients, no second derivatives."""

    _cell = ""
    _n_inputs = 0

    def _backward(self, *inputs):  # pragma: no cover - abstract
        raise NotImplementedError

    def make_node(self, *inputs):
        if len(inputs) != self._n_inputs:
            raise TypeError(f"{type(self).__name__} takes {self._n_inputs} inputs, received {len(inputs)}")
        ins = [pt.as_tensor_variable(v) for v in inputs]
        return Apply(self, ins, [v.type() for v in ins[:4]])

    def perform(self, node, inputs, output_storage):
        for storage, value in zip(output_storage, self._backward(*inputs)):
            storage[0] = value

    def infer_shape(self, fgraph, node, shapes):
        return list(shapes[:4])

    def pullback(self, inputs, outputs, output_grads):
        what = f"second derivatives of the fused {self._cell}"
        return [grad_not_implemented(self, k, v, what) for k, v in enumerate(inputs)]

    L_op = pullback  # what PyTensor 2.x calls (3.x calls pullback)


class LSTMSequenceGrad(_BackwardOp):
    """BPTT of :class:`LSTMSequence`: ``(xw, U, c0, h0, mask, cs, hs, gates, g_cs, g_hs) -> (g_xw, g_U, g_c0, g_h0)``."""

    __props__ = ()
    _cell = "LSTM"
    _n_inputs = 10

    def _backward(self, *inputs):
        return _lstm_backward(*inputs)


class GRUSequence(Op):
    """Whole-sequence GRU: ``(xw, W1, W2, h0, mask) -> (hs, acts)``; see :func:`gru_sequence`.

    ``reset="before"``: ``W1, W2 = U_rz (H, 2H), U_n (H, H)``;
    ``reset="after"``: ``W1, W2 = U (H, 3H), c (3H,)``.

    ``acts`` ``(T, B, 4H)`` holds every step's ``r, z, n`` and the operand
    the reset gate multiplies (``r * h_{t-1}``, reset before;
    ``h_{t-1} U_n + c_n``, reset after).  It is an output so that
    :class:`GRUSequenceGrad` reuses it instead of recomputing the gates
    (two large GEMMs and about ten passes over ``(T, B, H)`` arrays, more
    than half of the backward time for B=64, T=100, H=256); it has no
    gradient of its own.
    """

    __props__ = ("reset",)

    def __init__(self, reset: str = "before"):
        if reset not in ("before", "after"):
            raise ValueError(f"reset must be 'before' or 'after', received {reset!r}")
        self.reset = reset

    def _weight_names(self):
        return ("U_rz", "U_n") if self.reset == "before" else ("U", "c")

    def make_node(self, xw, W1, W2, h0, mask):
        name = f"{type(self).__name__}(reset={self.reset!r})"
        n1, n2 = self._weight_names()
        (xw, W1, W2, h0, mask), dtype = _check_inputs(
            name,
            [(xw, "xw", 3, True), (W1, n1, 2, True), (W2, n2, 2 if self.reset == "before" else 1, True),
             (h0, "h0", 2, True), (mask, "mask", 2, False)],
        )
        T, B, G = xw.type.shape
        s1, s2 = W1.type.shape, W2.type.shape

        def div(n, k):
            return None if n is None else n / k

        if self.reset == "before":
            hidden = [(f"{n1}.shape[0]", s1[0]), (f"{n1}.shape[1] / 2", div(s1[1], 2)),
                      (f"{n2}.shape[0]", s2[0]), (f"{n2}.shape[1]", s2[1])]
        else:
            hidden = [(f"{n1}.shape[0]", s1[0]), (f"{n1}.shape[1] / 3", div(s1[1], 3)), (f"{n2}.shape[0] / 3", div(s2[0], 3))]
        H = _same(name, "hidden sizes", ("h0.shape[1]", h0.type.shape[1]), ("xw.shape[2] / 3", div(G, 3)), *hidden)
        if H is not None and H != int(H):
            raise ValueError(f"{name}: the last axis of xw must be 3 * hidden size, received {G}")
        H = None if H is None else int(H)
        B = _same(name, "batch sizes", ("xw.shape[1]", B), ("h0.shape[0]", h0.type.shape[0]), ("mask.shape[1]", mask.type.shape[1]))
        T = _same(name, "sequence lengths", ("xw.shape[0]", T), ("mask.shape[0]", mask.type.shape[0]))
        # the second output, the activations (T, B, 4H), is for GRUSequenceGrad
        outs = [_out_type(dtype, (T, B, H)), _out_type(dtype, (T, B, None if H is None else 4 * H))]
        return Apply(self, [xw, W1, W2, h0, mask], outs)

    def perform(self, node, inputs, output_storage):
        for storage, value in zip(output_storage, _gru_forward(self.reset, *inputs)):
            storage[0] = value

    def infer_shape(self, fgraph, node, shapes):
        T, B, G = shapes[0]
        return [(T, B, shapes[3][1]), (T, B, 4 * shapes[3][1])]

    def connection_pattern(self, node):
        return [[True, True]] * 4 + [[False, False]]

    def pullback(self, inputs, outputs, output_grads):
        xw, W1, W2, h0, mask = inputs
        hs, acts = outputs
        if not isinstance(output_grads[1].type, DisconnectedType):
            raise NotImplementedError("GRUSequence: the acts output is internal and has no gradient; use hs")
        g_hs = _zeros_if_disconnected(output_grads[0], hs)
        grads = GRUSequenceGrad(self.reset)(xw, W1, W2, h0, mask, hs, acts, g_hs)
        return list(grads) + [disconnected_type()]

    L_op = pullback  # what PyTensor 2.x calls (3.x calls pullback)


class GRUSequenceGrad(_BackwardOp):
    """BPTT of :class:`GRUSequence`: ``(xw, W1, W2, h0, mask, hs, acts, g_hs) -> (g_xw, g_W1, g_W2, g_h0)``."""

    __props__ = ("reset",)

    def __init__(self, reset: str = "before"):
        if reset not in ("before", "after"):
            raise ValueError(f"reset must be 'before' or 'after', received {reset!r}")
        self.reset = reset

    _cell = "GRU"
    _n_inputs = 8

    def _backward(self, *inputs):
        return _gru_backward(self.reset, *inputs)


# ========================================================== public functions


def _default_mask(xw):
    # ones of shape (time, batch) derived elementwise from xw (no symbolic shape or arange)
    return pt.ones_like(xw[:, :, 0])


def lstm_sequence(xw, U, c0, h0, mask=None):
    r"""Run a standard LSTM over a whole sequence with one fused Op.

    For :math:`t = 1 \dots T`, with the gate blocks of the last axis in the
    order ``i, f, g, o``:

    .. math::
        \begin{aligned}
        z_t &= xw_t + h_{t-1} U \\
        i_t &= \sigma(z_{t,i}),\quad f_t = \sigma(z_{t,f}),\quad
        g_t = \tanh(z_{t,g}),\quad o_t = \sigma(z_{t,o}) \\
        c_t &= f_t \odot c_{t-1} + i_t \odot g_t \\
        h_t &= o_t \odot \tanh(c_t)
        \end{aligned}

    and where ``mask[t, b] == 0`` the step carries :math:`c_{t-1}, h_{t-1}`
    of that sequence unchanged.  This is :meth:`theano_lstm.LSTM.step` of a
    cell with default activations, no peepholes, no coupled gates and no
    gradient clipping.

    Parameters
    ----------
    xw : tensor ``(T, B, 4H)``
        Input projection :math:`x_t W + b` of every step
        (:meth:`~theano_lstm.layers.RecurrentCell.input_projection`).
    U : tensor ``(H, 4H)``
        Recurrent matrix (``LSTM.recurrent_matrix``).
    c0, h0 : tensor ``(B, H)``
        Initial cell and hidden states.
    mask : tensor ``(T, B)``, optional
        1 (non-zero) for valid steps, 0 for padding; default all valid.
        Gets no gradient.

    Returns
    -------
    cs, hs : tensors ``(T, B, H)``
        :math:`c_t` and :math:`h_t` after every step.

    Raises
    ------
    ValueError
        Wrong number of dimensions or inconsistent static lengths (at
        run time: inconsistent lengths).
    TypeError
        Non-float ``xw``/``U``/``c0``/``h0``, or float dtypes that differ
        (all must be float32 or all float64).

    Examples
    --------
    >>> import numpy as np
    >>> T, B, H = 5, 2, 3
    >>> cs, hs = lstm_sequence(np.zeros((T, B, 4 * H)), np.zeros((H, 4 * H)), np.zeros((B, H)), np.zeros((B, H)))
    >>> hs.eval().shape
    (5, 2, 3)
    """
    xw = _tensor(xw, "lstm_sequence: xw")
    if mask is None:
        if xw.ndim != 3:
            raise ValueError(f"LSTMSequence: xw must have 3 dimensions, received {xw.ndim} (static shape {xw.type.shape})")
        mask = _default_mask(xw)
    cs, hs, _gates = LSTMSequence()(xw, U, c0, h0, mask)
    return cs, hs


def gru_sequence(xw, weights: Sequence, h0, mask=None, reset: str = "before"):
    r"""Run a standard GRU over a whole sequence with one fused Op.

    With the gate blocks of the last axis in the order ``r, z, n``, for
    ``reset="before"``:

    .. math::
        \begin{aligned}
        [a_r, a_z] &= xw_{t,rz} + h_{t-1} U_{rz} \\
        r_t &= \sigma(a_r),\quad z_t = \sigma(a_z) \\
        n_t &= \tanh(xw_{t,n} + (r_t \odot h_{t-1}) U_n) \\
        h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}
        \end{aligned}

    and for ``reset="after"`` (cuDNN / PyTorch), with :math:`u_t = h_{t-1} U + c`:

    .. math::
        r_t = \sigma(xw_{t,r} + u_{t,r}),\quad z_t = \sigma(xw_{t,z} + u_{t,z}),\quad
        n_t = \tanh(xw_{t,n} + r_t \odot u_{t,n})

    Where ``mask[t, b] == 0`` the step carries :math:`h_{t-1}` unchanged.
    This is :meth:`theano_lstm.GRU.step` with sigmoid gates, tanh and no
    gradient clipping.

    Parameters
    ----------
    xw : tensor ``(T, B, 3H)``
        Input projection :math:`x_t W + b` of every step.
    weights : sequence of two tensors
        :meth:`theano_lstm.GRU.recurrent_weights`: ``[U_rz (H, 2H), U_n (H, H)]``
        for ``reset="before"``, ``[U (H, 3H), c (3H,)]`` for ``reset="after"``.
    h0 : tensor ``(B, H)``
        Initial state.
    mask : tensor ``(T, B)``, optional
        1 (non-zero) for valid steps, 0 for padding; default all valid.
    reset : {"before", "after"}
        Where the reset gate applies.

    Returns
    -------
    hs : tensor ``(T, B, H)``
        :math:`h_t` after every step.

    Raises
    ------
    ValueError
        Unknown ``reset``, not two weights, wrong number of dimensions or
        inconsistent lengths.
    TypeError
        Non-float inputs or float dtypes that differ.

    Examples
    --------
    >>> import numpy as np
    >>> T, B, H = 5, 2, 3
    >>> hs = gru_sequence(np.zeros((T, B, 3 * H)), [np.zeros((H, 3 * H)), np.zeros(3 * H)], np.zeros((B, H)), reset="after")
    >>> hs.eval().shape
    (5, 2, 3)
    """
    if reset not in ("before", "after"):
        raise ValueError(f"reset must be 'before' or 'after', received {reset!r}")
    if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence):
        raise TypeError(f"weights must be a list of two tensors, received {type(weights).__name__}")
    if len(weights) != 2:
        want = "[U_rz, U_n]" if reset == "before" else "[U, c]"
        raise ValueError(f"weights must be the two tensors {want} for reset={reset!r}, received {len(weights)}")
    xw = _tensor(xw, "gru_sequence: xw")
    if mask is None:
        if xw.ndim != 3:
            raise ValueError(f"GRUSequence: xw must have 3 dimensions, received {xw.ndim} (static shape {xw.type.shape})")
        mask = _default_mask(xw)
    hs, _acts = GRUSequence(reset)(xw, weights[0], weights[1], h0, mask)
    return hs


# ===================================================================== Numba


def _register_numba():
    """Object-mode call of ``perform`` (what PyTensor's fallback does, minus its warning)."""
    try:
        import numba
        from pytensor.link.numba.dispatch import numba_funcify
        from pytensor.link.numba.dispatch.basic import get_numba_type, numba_njit
    except ImportError:  # pragma: no cover - numba is a PyTensor dependency
        return

    def objmode_perform(op, node=None, **kwargs):
        n_out = len(node.outputs)
        types = [get_numba_type(o.type) for o in node.outputs]
        ret_sig = types[0] if n_out == 1 else numba.types.Tuple(types)

        def py_perform(inputs):
            storage = [[None] for _ in range(n_out)]
            op.perform(node, inputs, storage)
            outs = tuple(s[0] for s in storage)
            return outs[0] if n_out == 1 else outs

        @numba_njit
        def fused_op(*inputs):
            with numba.objmode(ret=ret_sig):
                ret = py_perform(inputs)
            return ret

        return fused_op

    for cls in (LSTMSequence, LSTMSequenceGrad, GRUSequence, GRUSequenceGrad):
        numba_funcify.register(cls)(objmode_perform)


_register_numba()


# ======================================================================= JAX


def _jax_lstm(xw, U, c0, h0, mask):
    import jax
    import jax.numpy as jnp

    H = U.shape[0]
    valid = (mask != 0)[:, :, None]

    def step(carry, inp):
        c, h = carry
        x, v = inp
        z = x + jnp.dot(h, U)
        i = jax.nn.sigmoid(z[:, :H])
        f = jax.nn.sigmoid(z[:, H : 2 * H])
        g = jnp.tanh(z[:, 2 * H : 3 * H])
        o = jax.nn.sigmoid(z[:, 3 * H :])
        c_new = f * c + i * g
        h_new = o * jnp.tanh(c_new)
        c_new = jnp.where(v, c_new, c)
        h_new = jnp.where(v, h_new, h)
        return (c_new, h_new), (c_new, h_new, jnp.concatenate([i, f, g, o], axis=-1))

    _, (cs, hs, gates) = jax.lax.scan(step, (c0, h0), (xw, valid))
    return cs, hs, gates


def _jax_gru(reset, xw, W1, W2, h0, mask):
    """``(hs, acts)`` as :class:`GRUSequence` computes them."""
    import jax
    import jax.numpy as jnp

    H = h0.shape[-1]
    valid = (mask != 0)[:, :, None]

    def step(h, inp):
        x, ok = inp
        if reset == "before":
            rz = jax.nn.sigmoid(x[:, : 2 * H] + jnp.dot(h, W1))
            v = rz[:, :H] * h
            n = jnp.tanh(x[:, 2 * H :] + jnp.dot(v, W2))
        else:
            hu = jnp.dot(h, W1) + W2
            rz = jax.nn.sigmoid(x[:, : 2 * H] + hu[:, : 2 * H])
            v = hu[:, 2 * H :]
            n = jnp.tanh(x[:, 2 * H :] + rz[:, :H] * v)
        z = rz[:, H:]
        h_new = jnp.where(ok, (1 - z) * n + z * h, h)
        return h_new, (h_new, jnp.concatenate([rz, n, v], axis=-1))

    _, (hs, acts) = jax.lax.scan(step, h0, (xw, valid))
    return hs, acts


def _jax_shift(first, seq):
    """``[first, seq[0], ..., seq[T-2]]`` (the state each step started from)."""
    import jax.numpy as jnp

    return jnp.concatenate([first[None], seq[:-1]], axis=0)


def _jax_lstm_grad(xw, U, c0, h0, mask, cs, hs, gates, g_cs, g_hs):
    """BPTT of :func:`_jax_lstm` from its saved gates: one reverse :func:`jax.lax.scan`, no second forward pass."""
    import jax
    import jax.numpy as jnp

    H = U.shape[0]
    valid = (mask != 0)[:, :, None]
    UT = U.T

    def step(carry, inp):
        dh, dc = carry
        gh, gc, g4, c, c_prev, ok = inp
        dh = dh + gh
        dc = dc + gc
        i, f, g, o = g4[:, :H], g4[:, H : 2 * H], g4[:, 2 * H : 3 * H], g4[:, 3 * H :]
        tc = jnp.tanh(c)
        dcv = dc + dh * o * (1 - tc * tc)
        dz = jnp.concatenate([dcv * g * i * (1 - i), dcv * c_prev * f * (1 - f), dcv * i * (1 - g * g), dh * tc * o * (1 - o)], axis=-1)
        dz = jnp.where(ok, dz, 0)
        return (jnp.where(ok, jnp.dot(dz, UT), dh), jnp.where(ok, dcv * f, dc)), dz

    inputs = (g_hs, g_cs, gates, cs, _jax_shift(c0, cs), valid)
    (dh, dc), g_xw = jax.lax.scan(step, (jnp.zeros_like(h0), jnp.zeros_like(c0)), inputs, reverse=True)
    g_U = jnp.einsum("tbh,tbk->hk", _jax_shift(h0, hs), g_xw)
    return g_xw, g_U, dc, dh


def _jax_gru_grad(reset, xw, W1, W2, h0, mask, hs, acts, g_hs):
    """BPTT of :func:`_jax_gru` from its saved activations (one reverse scan)."""
    import jax
    import jax.numpy as jnp

    H = h0.shape[-1]
    valid = (mask != 0)[:, :, None]
    h_prev = _jax_shift(h0, hs)

    def step(dh, inp):
        gh, a, hp, ok = inp
        dh = dh + gh
        r, z, n, v = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
        dn = jnp.where(ok, dh * (1 - z) * (1 - n * n), 0)
        dz = jnp.where(ok, dh * (hp - n) * z * (1 - z), 0)
        skip = jnp.where(ok, 0, dh)
        if reset == "before":
            dv = jnp.dot(dn, W2.T)  # gradient reaching v = r * h_prev
            dr = dv * hp * r * (1 - r)
            g_x = jnp.concatenate([dr, dz, dn], axis=-1)
            dh_prev = jnp.where(ok, dh * z, 0) + dv * r + jnp.dot(g_x[:, : 2 * H], W1.T) + skip
            return dh_prev, (g_x,)
        dr = dn * v * r * (1 - r)
        g_x = jnp.concatenate([dr, dz, dn], axis=-1)
        g_u = jnp.concatenate([dr, dz, dn * r], axis=-1)  # gradient of h_prev U + c
        dh_prev = jnp.where(ok, dh * z, 0) + jnp.dot(g_u, W1.T) + skip
        return dh_prev, (g_x, g_u)

    dh, per_step = jax.lax.scan(step, jnp.zeros_like(h0), (g_hs, acts, h_prev, valid), reverse=True)
    g_xw = per_step[0]
    if reset == "before":
        g_W1 = jnp.einsum("tbh,tbk->hk", h_prev, g_xw[:, :, : 2 * H])
        g_W2 = jnp.einsum("tbh,tbk->hk", acts[:, :, 3 * H :], g_xw[:, :, 2 * H :])
    else:
        g_u = per_step[1]
        g_W1 = jnp.einsum("tbh,tbk->hk", h_prev, g_u)
        g_W2 = g_u.sum(axis=(0, 1))
    return g_xw, g_W1, g_W2, dh


_JAX_DISPATCH = "pytensor.link.jax.dispatch"
_jax_registered = False


def register_jax() -> bool:
    """Register the JAX implementations of the Ops (idempotent).

    Imports ``pytensor.link.jax.dispatch`` (and so jax).  Called
    automatically when PyTensor first imports that module; returns whether
    the registration is in place (``False`` when jax is not installed).
    """
    global _jax_registered
    if _jax_registered:
        return True
    try:
        import jax  # noqa: F401 - the implementations below import it when they run
        from pytensor.link.jax.dispatch import jax_funcify
    except ImportError:
        return False

    @jax_funcify.register(LSTMSequence)
    def _lstm(op, node=None, **kwargs):
        return _jax_lstm

    @jax_funcify.register(LSTMSequenceGrad)
    def _lstm_grad(op, node=None, **kwargs):
        return _jax_lstm_grad

    @jax_funcify.register(GRUSequence)
    def _gru(op, node=None, **kwargs):
        reset = op.reset

        def gru(xw, W1, W2, h0, mask):
            return _jax_gru(reset, xw, W1, W2, h0, mask)

        return gru

    @jax_funcify.register(GRUSequenceGrad)
    def _gru_grad(op, node=None, **kwargs):
        reset = op.reset

        def gru_grad(xw, W1, W2, h0, mask, hs, acts, g_hs):
            return _jax_gru_grad(reset, xw, W1, W2, h0, mask, hs, acts, g_hs)

        return gru_grad

    _jax_registered = True
    return True


class _RegisterWhenImported(importlib.abc.MetaPathFinder):
    """One-shot import hook: run :func:`register_jax` right after PyTensor imports its JAX dispatch."""

    def find_spec(self, fullname, path, target=None):
        if fullname != _JAX_DISPATCH:
            return None
        try:
            sys.meta_path.remove(self)
        except ValueError:  # pragma: no cover - already removed
            return None
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec  # pragma: no cover - unusual loader: register_jax() by hand
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            register_jax()

        spec.loader.exec_module = exec_then_register
        return spec


if _JAX_DISPATCH in sys.modules:
    register_jax()
elif importlib.util.find_spec("jax") is not None:
    sys.meta_path.insert(0, _RegisterWhenImported())
