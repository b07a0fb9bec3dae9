"""Independent NumPy implementations of every cell, written from the equations.

Nothing here imports theano_lstm: these functions take plain arrays and
per-gate weight blocks, so a mistake in the library's fused layout or gate
order cannot be copied into the reference.  Gate blocks are passed by name.
"""

import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def hard_sigmoid(x):
    return np.clip(0.2 * x + 0.5, 0.0, 1.0)


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def layer(x, W, b, act=np.tanh):
    """y = act(x W + b)."""
    return act(x @ W + b)


def rnn_step(x, h, W, U, b, act=np.tanh):
    """h_t = act(x_t W + h_{t-1} U + b)."""
    return act(x @ W + h @ U + b)


def lstm_step(x, c, h, Wi, Wf, Wg, Wo, Ui, Uf, Ug, Uo, bi, bf, bg, bo,
              pi=None, pf=None, po=None, act=np.tanh, cand_act=np.tanh):
    """Graves (2013) LSTM step, peepholes when ``pi, pf, po`` are given."""
    peep = pi is not None
    i = sigmoid(x @ Wi + h @ Ui + bi + (c * pi if peep else 0.0))
    f = sigmoid(x @ Wf + h @ Uf + bf + (c * pf if peep else 0.0))
    g = cand_act(x @ Wg + h @ Ug + bg)
    c_new = f * c + i * g
    o = sigmoid(x @ Wo + h @ Uo + bo + (c_new * po if peep else 0.0))
    return c_new, o * act(c_new)


def cifg_lstm_step(x, c, h, Wi, Wg, Wo, Ui, Ug, Uo, bi, bg, bo, pi=None, po=None):
    """Coupled input-forget gate LSTM: f = 1 - i (Greff et al. 2017)."""
    peep = pi is not None
    i = sigmoid(x @ Wi + h @ Ui + bi + (c * pi if peep else 0.0))
    c_new = (1.0 - i) * c + i * np.tanh(x @ Wg + h @ Ug + bg)
    o = sigmoid(x @ Wo + h @ Uo + bo + (c_new * po if peep else 0.0))
    return c_new, o * np.tanh(c_new)


def gru_step(x, h, Wr, Wz, Wn, Ur, Uz, Un, br, bz, bn, cr=None, cz=None, cn=None,
             reset="before", gate=sigmoid, act=np.tanh):
    """Cho et al. GRU step; ``h_t = (1 - z) n + z h_{t-1}``.

    reset="before": n = act(x Wn + (r * h) Un + bn)
    reset="after":  n = act(x Wn + bn + r * (h Un + cn)), with recurrent biases c*.
    """
    if reset == "before":
        r = gate(x @ Wr + h @ Ur + br)
        z = gate(x @ Wz + h @ Uz + bz)
        n = act(x @ Wn + (r * h) @ Un + bn)
    else:
        r = gate(x @ Wr + br + h @ Ur + cr)
        z = gate(x @ Wz + bz + h @ Uz + cz)
        n = act(x @ Wn + bn + r * (h @ Un + cn))
    return (1.0 - z) * n + z * h


def gated_input(x, h, wx, wh, b):
    """g = sigmoid(x wx + h wh + b); returns (g, g * x)."""
    g = sigmoid(x @ wx + h @ wh + b)
    return g, g * x


def embedding(indices, E):
    return E[indices]


def run(step, xs, state, mask=None):
    """Run ``state = step(x_t, state)`` over time-major ``xs``; with a
    ``(time, batch)`` mask a padded step keeps the previous state.
    Returns the list of states after each step."""
    out = []
    for t, x in enumerate(xs):
        new = step(x, state)
        if mask is not None:
            m = mask[t][:, None].astype(bool)
            new = tuple(np.where(m, n, s) for n, s in zip(new, state))
        state = new
        out.append(state)
    return out
