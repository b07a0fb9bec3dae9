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
#
# Every kernel takes row views and then per-block slices (``gb[:H]``,
# ``gb[H:2*H]``, ...) of them before its inner loops.  Indexing one wide
# array at ``k``, ``H + k``, ... instead makes LLVM either guard every loop
# with run-time overlap checks between all the offsets or give up
# vectorising: the sliced kernels are 1.6x (forward) to 2.5x (backward)
# faster at B=64, H=256.


@_jit
def lstm_forward_step(z, x, c_prev, h_prev, valid, gates, c_new, h_new):  # pragma: no cover - compiled
    r"""One LSTM step after the recurrent GEMM, float32, all ``(B, .)`` arrays C-contiguous.

    ``z = h_{t-1} U`` ``(B, 4H)`` (overwritten: scratch), ``x`` the step's
    input projection ``(B, 4H)``, ``valid`` ``(B,)`` bool.  Writes the
    activated gates :math:`i, f = \sigma(\cdot), g = \tanh(\cdot), o = \sigma(\cdot)`
    to ``gates``, :math:`c_t = f c_{t-1} + i g` to ``c_new`` and
    :math:`h_t = o \tanh(c_t)` to ``h_new``; a padded row (``valid[b]``
    false) carries ``c_prev``/``h_prev``.
    """
    B, G = z.shape
    H = G // 4
    for b in range(B):
        zb, xb, gb = z[b], x[b], gates[b]
        for k in range(G):
            zb[k] = zb[k] + xb[k]
        for k in range(2 * H):
            gb[k] = _sigmoid32(zb[k])
        for k in range(2 * H, 3 * H):
            gb[k] = _tanh32(zb[k])
        for k in range(3 * H, G):
            gb[k] = _sigmoid32(zb[k])
        cp, cn, hn = c_prev[b], c_new[b], h_new[b]
        if valid[b]:
            gi, gf, gg, go = gb[:H], gb[H : 2 * H], gb[2 * H : 3 * H], gb[3 * H :]
            for j in range(H):
                cn[j] = gf[j] * cp[j] + gi[j] * gg[j]
            for j in range(H):
                hn[j] = go[j] * _tanh32(cn[j])
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
        dhb, dcb, ghb, gcb, cab, zb = dh[b], dc[b], g_h[b], g_c[b], carry_h[b], dz[b]
        if valid[b]:
            gb, tb, cpb = gates[b], tc[b], c_prev[b]
            gi, gf, gg, go = gb[:H], gb[H : 2 * H], gb[2 * H : 3 * H], gb[3 * H :]
            zi, zf, zg, zo = zb[:H], zb[H : 2 * H], zb[2 * H : 3 * H], zb[3 * H :]
            for j in range(H):
                i, f, g, o, t = gi[j], gf[j], gg[j], go[j], tb[j]
                dhv = dhb[j] + ghb[j]
                dcv = dcb[j] + gcb[j] + dhv * o * (1 - t * t)
                zi[j] = dcv * g * i * (1 - i)
                zf[j] = dcv * cpb[j] * f * (1 - f)
                zg[j] = dcv * i * (1 - g * g)
                zo[j] = dhv * t * o * (1 - o)
                dcb[j] = dcv * f
                cab[j] = 0
        else:
            for j in range(H):
                cab[j] = dhb[j] + ghb[j]
                dcb[j] = dcb[j] + gcb[j]
            for j in range(4 * H):
                zb[j] = 0


# ====================================================================== GRU
#
# ``acts`` (B, 4H) holds a step's blocks r, z, n, v: the gates, the candidate
# and the operand the reset gate multiplies (r * h_{t-1} with the reset
# before the product, h_{t-1} U_n + c_n after it).


@_jit
def gru_before_gates(rz, x, h_prev, acts):  # pragma: no cover - compiled
    r"""GRU, reset before the product, part 1 (float32): ``rz = h_{t-1} U_{rz}``
    ``(B, 2H)``; writes :math:`r, z = \sigma(rz + x_{rz})` and ``v = r * h_{t-1}``
    (the second GEMM's left operand) into ``acts``."""
    B, H = h_prev.shape
    for b in range(B):
        a, zb, xb, hp = acts[b], rz[b], x[b], h_prev[b]
        for k in range(2 * H):
            a[k] = _sigmoid32(zb[k] + xb[k])
        ar, av = a[:H], a[3 * H :]
        for j in range(H):
            av[j] = ar[j] * hp[j]


@_jit
def gru_before_state(n, x, h_prev, valid, acts, h_new):  # pragma: no cover - compiled
    r"""GRU, reset before the product, part 2 (float32): ``n = (r h_{t-1}) U_n``
    ``(B, H)``; writes :math:`n = \tanh(n + x_n)` into ``acts`` and
    :math:`h_t = n + z (h_{t-1} - n)` into ``h_new`` (padded rows carry ``h_prev``)."""
    B, H = h_prev.shape
    for b in range(B):
        a, nb, xn = acts[b], n[b], x[b, 2 * H :]
        an = a[2 * H : 3 * H]
        for j in range(H):
            an[j] = _tanh32(nb[j] + xn[j])
        _gru_blend(a[H : 2 * H], an, h_prev[b], valid[b], h_new[b])


@_inline
def _gru_blend(z, n, hp, ok, hn):
    """``h_new = n + z (h_prev - n)`` for one row (``h_prev`` where the row is padded)."""
    if ok:
        for j in range(hn.shape[0]):
            hn[j] = n[j] + z[j] * (hp[j] - n[j])
    else:
        for j in range(hn.shape[0]):
            hn[j] = hp[j]


@_jit
def gru_after_step(hu, cb, x, h_prev, valid, acts, h_new):  # pragma: no cover - compiled
    r"""GRU, reset after the product (float32): ``hu = h_{t-1} U`` ``(B, 3H)``, ``cb``
    ``(3H,)`` the recurrent bias; writes :math:`r, z = \sigma(x_{rz} + hu_{rz} + c_{rz})`,
    :math:`v = hu_n + c_n` and :math:`n = \tanh(x_n + r v)` into ``acts`` and
    :math:`h_t = n + z (h_{t-1} - n)` into ``h_new`` (padded rows carry ``h_prev``)."""
    B, H = h_prev.shape
    cn = cb[2 * H :]
    for b in range(B):
        a, hb, xb = acts[b], hu[b], x[b]
        for k in range(2 * H):
            a[k] = _sigmoid32(xb[k] + hb[k] + cb[k])
        ar, an, av, hn_, xn = a[:H], a[2 * H : 3 * H], a[3 * H :], hb[2 * H :], xb[2 * H :]
        for j in range(H):
            v = hn_[j] + cn[j]
            av[j] = v
            an[j] = _tanh32(xn[j] + ar[j] * v)
        _gru_blend(a[H : 2 * H], an, h_prev[b], valid[b], h_new[b])


@_jit
def gru_backward_head(dh, g_h, valid, acts, h_prev, gx, carry):  # pragma: no cover - compiled
    r"""GRU backward step, first part (float32 or float64), ``(B, H)`` arrays unless noted.

    ``dh`` += ``g_h``; then for valid rows the gradients of the candidate's
    and the update gate's pre-activations,
    :math:`gx_n = dh (1 - z)(1 - n^2)` and :math:`gx_z = dh (h_{t-1} - n) z (1 - z)`,
    go to ``gx`` ``(B, 3H)`` and ``carry = 0``; for padded rows those are 0,
    ``carry = dh`` and ``dh = 0`` (the gradient skips the step).
    """
    B, H = dh.shape
    for b in range(B):
        dhb, ghb, cab, gxb = dh[b], g_h[b], carry[b], gx[b]
        gz, gn = gxb[H : 2 * H], gxb[2 * H :]
        if valid[b]:
            a, hp = acts[b], h_prev[b]
            az, an = a[H : 2 * H], a[2 * H : 3 * H]
            for j in range(H):
                d = dhb[j] + ghb[j]
                z, n = az[j], an[j]
                dhb[j] = d
                gn[j] = d * (1 - z) * (1 - n * n)
                gz[j] = d * (hp[j] - n) * z * (1 - z)
                cab[j] = 0
        else:
            for j in range(H):
                cab[j] = dhb[j] + ghb[j]
                dhb[j] = 0
                gn[j] = 0
                gz[j] = 0


@_jit
def gru_backward_reset(dr, acts, h_prev, dh, gx):  # pragma: no cover - compiled
    r"""GRU backward, reset before the product (float32 or float64): ``dr`` ``(B, H)``
    is the gradient reaching :math:`r h_{t-1}`; writes :math:`gx_r = dr\, h_{t-1} r (1 - r)`
    and :math:`dh = dh\, z + dr\, r`."""
    B, H = dh.shape
    for b in range(B):
        drb, hp, dhb, gr = dr[b], h_prev[b], dh[b], gx[b, :H]
        a = acts[b]
        ar, az = a[:H], a[H : 2 * H]
        for j in range(H):
            r = ar[j]
            gr[j] = drb[j] * hp[j] * r * (1 - r)
            dhb[j] = dhb[j] * az[j] + drb[j] * r


@_jit
def gru_backward_after(gx, acts, dh, ghu):  # pragma: no cover - compiled
    r"""GRU backward, reset after the product (float32 or float64), after
    :func:`gru_backward_head`: with ``dn = gx[:, 2H:]``, writes
    :math:`gx_r = dn\, v\, r (1 - r)`, ``ghu`` ``(B, 3H)`` the gradient of
    :math:`h_{t-1} U + c` (``gx_r, gx_z, dn r``), and ``dh = dh z``."""
    B, H = dh.shape
    for b in range(B):
        gxb, a, dhb, gub = gx[b], acts[b], dh[b], ghu[b]
        xr, xz, xn = gxb[:H], gxb[H : 2 * H], gxb[2 * H :]
        ar, az, av = a[:H], a[H : 2 * H], a[3 * H :]
        ur, uz, un = gub[:H], gub[H : 2 * H], gub[2 * H :]
        for j in range(H):
            dn, r = xn[j], ar[j]
            g = dn * av[j] * r * (1 - r)
            xr[j] = g
            ur[j] = g
            uz[j] = xz[j]
            un[j] = dn * r
            dhb[j] = dhb[j] * az[j]
