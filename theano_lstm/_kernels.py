r"""Compiled (Numba) per-step kernels for the fused sequence Ops in :mod:`theano_lstm.fused`.

Each kernel does one time step's element-wise work in one pass over the
``(batch, hidden)`` elements, in place on preallocated buffers; the matrix
products stay BLAS GEMMs called by the Op between kernels.  One kernel call
replaces the eight to twelve NumPy ufunc calls (and their temporaries) of a
step, which is what the Ops' time went to at small sizes.

The forward kernels are for **float32 only**: they evaluate the logistic
sigmoid and ``tanh`` with :func:`_exp32`, a range-reduced polynomial that
LLVM vectorises (Numba's ``math.exp``/``math.tanh`` call the scalar C
library, three times slower than NumPy's SIMD ``tanh``).  Its error is below
4e-7 absolute for sigmoid and tanh over the whole float32 range, about the
float32 rounding of the sums around it; float64 inputs use the NumPy code in
:mod:`theano_lstm.fused`.  The backward kernels do only products of saved
activations and are used for both dtypes.

This module imports Numba; :mod:`theano_lstm.fused` imports it on first use.
"""

import numba
import numpy as np

# error_model="numpy": a float division by zero gives inf instead of raising,
# which is what lets LLVM vectorise the loops that divide.
_jit = numba.njit(cache=True, fastmath=True, nogil=True, error_model="numpy")
_inline = numba.njit(cache=True, fastmath=True, error_model="numpy", inline="always")

_f32 = np.float32
_LOG2E = _f32(1.4426950408889634)
# ln 2 split in two so that n * _LN2_HI is exact for |n| < 2**12
_LN2_HI = _f32(0.693359375)
_LN2_LO = _f32(-2.12194440e-4)


@_inline
def _exp32(x):
    """``exp(x)`` for float32 ``x``: ``2**n * e**r`` with ``n = round(x / ln 2)``, ``|r| <= ln(2) / 2``.

    ``e**r`` is its Taylor polynomial of degree 7 (remainder below 2e-9
    relative); ``2**n`` is built in the exponent bits.  ``x`` is clamped to
    [-87, 88] so that ``2**n`` stays a normal float32.
    """
    x = min(max(x, _f32(-87.0)), _f32(88.0))
    # round half up via truncation of a positive number (vectorises; floor does not)
    n = np.int32(x * _LOG2E + _f32(128.5)) - np.int32(128)
    nf = _f32(n)
    r = (x - nf * _LN2_HI) - nf * _LN2_LO
    p = _f32(1.0 / 5040.0)
    p = p * r + _f32(1.0 / 720.0)
    p = p * r + _f32(1.0 / 120.0)
    p = p * r + _f32(1.0 / 24.0)
    p = p * r + _f32(1.0 / 6.0)
    p = p * r + _f32(0.5)
    p = p * r + _f32(1.0)
    p = p * r + _f32(1.0)
    return p * np.int32((n + np.int32(127)) << 23).view(np.float32)


@_inline
def _sigmoid32(x):
    """Logistic sigmoid ``1 / (1 + exp(-x))`` (float32)."""
    return _f32(1.0) / (_f32(1.0) + _exp32(-x))


@_inline
def _tanh32(x):
    """``tanh(x) = 2 sigmoid(2x) - 1`` (float32; absolute error, not relative, near 0)."""
    return _f32(2.0) * _sigmoid32(_f32(2.0) * x) - _f32(1.0)


# ===================================================================== LSTM


@_jit
def lstm_forward_step(z, x, c_prev, h_prev, valid, gates, c_new, h_new):  # pragma: no cover - compiled
    r"""One LSTM step after the recurrent GEMM, float32, all ``(B, .)`` arrays C-contiguous.

    ``z = h_{t-1} U`` ``(B, 4H)``, ``x`` the step's input projection ``(B, 4H)``,
    ``valid`` ``(B,)`` bool.  Writes the activated gates
    :math:`i, f = \sigma(\cdot), g = \tanh(\cdot), o = \sigma(\cdot)` to ``gates``,
    :math:`c_t = f c_{t-1} + i g` to ``c_new`` and :math:`h_t = o \tanh(c_t)` to
    ``h_new``; a padded row (``valid[b]`` false) carries ``c_prev``/``h_prev``.
    """
    B, G = z.shape
    H = G // 4
    # Short loops with few arrays each: LLVM vectorises a loop only when it
    # can rule out overlap of its arrays at run time, and gives up beyond a
    # handful of pairs (one loop over everything ran scalar, 3x slower).
    for b in range(B):
        zb, xb, gb = z[b], x[b], gates[b]
        for k in range(2 * H):
            gb[k] = _sigmoid32(zb[k] + xb[k])
        for k in range(2 * H, 3 * H):
            gb[k] = _tanh32(zb[k] + xb[k])
        for k in range(3 * H, G):
            gb[k] = _sigmoid32(zb[k] + xb[k])
        cp, cn, hn = c_prev[b], c_new[b], h_new[b]
        if valid[b]:
            for j in range(H):
                c = gb[H + j] * cp[j] + gb[j] * gb[2 * H + j]
                cn[j] = c
                hn[j] = gb[3 * H + j] * _tanh32(c)
        else:
            hp = h_prev[b]
            for j in range(H):
                cn[j] = cp[j]
                hn[j] = hp[j]


@_jit
def lstm_backward_step(dh, dc, g_h, g_c, gates, tc, c_prev, valid, dz, carry_h):  # pragma: no cover - compiled
    """One LSTM backward step in place, for ``(B, H)`` state arrays (float32 or float64).

    In: ``dh``/``dc`` the gradient reaching :math:`h_t, c_t` from step t+1,
    ``g_h``/``g_c`` the output gradients of step t, ``gates`` ``(B, 4H)``
    (activated ``i, f, g, o``), ``tc = tanh(c_t)``, ``c_prev`` = :math:`c_{t-1}`,
    ``valid`` ``(B,)`` bool.  Out: ``dz`` ``(B, 4H)`` the gradient of the gate
    pre-activations, ``dc`` the gradient reaching :math:`c_{t-1}`, and
    ``carry_h`` the part of the gradient reaching :math:`h_{t-1}` that skips
    the recurrent product (padded rows).  ``dh`` is left for the caller's
    ``dz @ U.T``.
    """
    B, H = dh.shape
    for b in range(B):
        if valid[b]:
            for j in range(H):
                i = gates[b, j]
                f = gates[b, H + j]
                g = gates[b, 2 * H + j]
                o = gates[b, 3 * H + j]
                t = tc[b, j]
                dhv = dh[b, j] + g_h[b, j]
                dcv = dc[b, j] + g_c[b, j] + dhv * o * (1 - t * t)
                dz[b, j] = dcv * g * i * (1 - i)
                dz[b, H + j] = dcv * c_prev[b, j] * f * (1 - f)
                dz[b, 2 * H + j] = dcv * i * (1 - g * g)
                dz[b, 3 * H + j] = dhv * t * o * (1 - o)
                dc[b, j] = dcv * f
                carry_h[b, j] = 0
        else:
            for j in range(H):
                carry_h[b, j] = dh[b, j] + g_h[b, j]
                dc[b, j] = dc[b, j] + g_c[b, j]
            for j in range(4 * H):
                dz[b, j] = 0


# ====================================================================== GRU


@_jit
def gru_before_gates(rz, x, h_prev, rh):  # pragma: no cover - compiled
    r"""GRU, reset before the product, part 1 (float32): ``rz`` ``(B, 2H)`` holds
    ``h_{t-1} U_{rz}`` on entry and :math:`r, z = \sigma(\cdot + x_{rz})` on exit;
    writes ``rh = r * h_{t-1}`` ``(B, H)`` for the second GEMM."""
    B, H = h_prev.shape
    for b in range(B):
        for j in range(H):
            r = _sigmoid32(rz[b, j] + x[b, j])
            rz[b, j] = r
            rz[b, H + j] = _sigmoid32(rz[b, H + j] + x[b, H + j])
            rh[b, j] = r * h_prev[b, j]


@_jit
def gru_before_state(n, x, rz, h_prev, valid, h_new):  # pragma: no cover - compiled
    r"""GRU, reset before the product, part 2 (float32): ``n`` ``(B, H)`` holds
    ``(r h_{t-1}) U_n`` on entry; :math:`n = \tanh(\cdot + x_n)`,
    :math:`h_t = n + z (h_{t-1} - n)` into ``h_new`` (padded rows carry ``h_prev``)."""
    B, H = h_prev.shape
    for b in range(B):
        if valid[b]:
            for j in range(H):
                nn = _tanh32(n[b, j] + x[b, 2 * H + j])
                h_new[b, j] = nn + rz[b, H + j] * (h_prev[b, j] - nn)
        else:
            for j in range(H):
                h_new[b, j] = h_prev[b, j]


@_jit
def gru_after_step(hu, cb, x, h_prev, valid, h_new):  # pragma: no cover - compiled
    r"""GRU, reset after the product (float32): ``hu = h_{t-1} U`` ``(B, 3H)``, ``cb``
    ``(3H,)`` the recurrent bias; :math:`r, z = \sigma(x_{rz} + hu_{rz} + c_{rz})`,
    :math:`n = \tanh(x_n + r (hu_n + c_n))`, :math:`h_t = n + z (h_{t-1} - n)`."""
    B, H = h_prev.shape
    for b in range(B):
        if valid[b]:
            for j in range(H):
                r = _sigmoid32(x[b, j] + hu[b, j] + cb[j])
                z = _sigmoid32(x[b, H + j] + hu[b, H + j] + cb[H + j])
                nn = _tanh32(x[b, 2 * H + j] + r * (hu[b, 2 * H + j] + cb[2 * H + j]))
                h_new[b, j] = nn + z * (h_prev[b, j] - nn)
        else:
            for j in range(H):
                h_new[b, j] = h_prev[b, j]


@_jit
def gru_backward_head(dh, g_h, valid, An, Az, gx, carry):  # pragma: no cover - compiled
    """GRU backward step, first part (float32 or float64), ``(B, H)`` arrays unless noted.

    ``dh`` += ``g_h``; then for valid rows ``gx[:, 2H:] = dh * An`` (the
    gradient of the candidate's pre-activation) and ``gx[:, H:2H] = dh * Az``
    (of the update gate's), ``carry = 0``; for padded rows those are 0,
    ``carry = dh`` and ``dh = 0`` (the gradient skips the step).  ``gx`` is
    ``(B, 3H)``.
    """
    B, H = dh.shape
    for b in range(B):
        if valid[b]:
            for j in range(H):
                d = dh[b, j] + g_h[b, j]
                dh[b, j] = d
                gx[b, 2 * H + j] = d * An[b, j]
                gx[b, H + j] = d * Az[b, j]
                carry[b, j] = 0
        else:
            for j in range(H):
                carry[b, j] = dh[b, j] + g_h[b, j]
                dh[b, j] = 0
                gx[b, 2 * H + j] = 0
                gx[b, H + j] = 0


@_jit
def gru_backward_reset(dr, Ar, r, z, dh, gx):  # pragma: no cover - compiled
    """GRU backward, the reset gate (float32 or float64): ``dr`` ``(B, H)`` is the
    gradient reaching ``r * (h or hu_n)``; writes ``gx[:, :H] = dr * Ar`` and
    ``dh = dh * z + dr * r`` (reset before the product)."""
    B, H = dh.shape
    for b in range(B):
        for j in range(H):
            gx[b, j] = dr[b, j] * Ar[b, j]
            dh[b, j] = dh[b, j] * z[b, j] + dr[b, j] * r[b, j]


@_jit
def gru_backward_after(gx, Ar, r, z, dh, ghu):  # pragma: no cover - compiled
    """GRU backward, reset after the product (float32 or float64), after
    :func:`gru_backward_head`: ``gx[:, :H] = dn * Ar``, ``ghu`` ``(B, 3H)`` the
    gradient of ``h_{t-1} U + c`` (``gx``'s r and z blocks, then ``dn * r``),
    and ``dh = dh * z``; ``dn = gx[:, 2H:]``."""
    B, H = dh.shape
    for b in range(B):
        for j in range(H):
            dn = gx[b, 2 * H + j]
            gr = dn * Ar[b, j]
            gx[b, j] = gr
            ghu[b, j] = gr
            ghu[b, H + j] = gx[b, H + j]
            ghu[b, 2 * H + j] = dn * r[b, j]
            dh[b, j] = dh[b, j] * z[b, j]
