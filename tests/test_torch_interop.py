"""PyTorch weight interchange: same outputs and final states as torch.nn.LSTM/GRU, both ways."""

import subprocess
import sys

import numpy as np
import pytensor.tensor as pt
import pytest

import theano_lstm as tl
from theano_lstm import backend
from theano_lstm.torch_interop import from_torch_state_dict, to_torch_state_dict
from tests._util import requires_torch

T, B, I, H = 5, 3, 4, 6
KW = {"LSTM": {}, "GRU": {"reset": "after"}}


def stack(kind, n_layers, seed=0):
    return tl.StackedCells(I, celltype=getattr(tl, kind), layers=[H] * n_layers, rng=seed, **KW[kind])


def torch_final(kind, state, k):
    """PyTorch's final state of layer ``k`` in the library's packed layout."""
    if kind == "LSTM":
        h_n, c_n = state
        return np.concatenate([c_n[k].numpy(), h_n[k].numpy()], axis=-1)
    return state[k].numpy()


@requires_torch
@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_same_outputs_as_torch_both_ways(kind, rng):
    import torch

    torch.manual_seed(0)
    one, two = stack(kind, 1), stack(kind, 2, seed=1)
    x = pt.tensor3("x")
    r1, r2 = one.scan(x), two.scan(x)
    f = backend.function([x], [r1.outputs, r1.final_states[0], r2.outputs, *r2.final_states])
    xs = rng.normal(size=(T, B, I))
    module = getattr(torch.nn, kind)
    t1 = module(I, H, num_layers=1, dtype=torch.float64)
    t2 = module(I, H, num_layers=2, dtype=torch.float64)
    with torch.no_grad():  # distinct random biases on both sides, so a lost bias shows
        for p in list(t1.parameters()) + list(t2.parameters()):
            p.uniform_(-0.5, 0.5)

    def check():
        out1, fin1, out2, fin2_0, fin2_1 = f(xs)
        with torch.no_grad():
            o1, s1 = t1(torch.from_numpy(xs))
            o2, s2 = t2(torch.from_numpy(xs))
        np.testing.assert_allclose(out1, o1.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(out2, o2.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(fin1, torch_final(kind, s1, 0), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(fin2_0, torch_final(kind, s2, 0), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(fin2_1, torch_final(kind, s2, 1), rtol=1e-10, atol=1e-12)
        return out2

    # torch -> library (a single cell and a 2-layer stack)
    assert from_torch_state_dict(one.layers[0], t1.state_dict()) is one.layers[0]
    from_torch_state_dict(two, t2.state_dict())
    before = check()
    if kind == "GRU":
        np.testing.assert_array_equal(two.layers[1].recurrent_bias.get_value(), t2.bias_hh_l1.detach().numpy())
    else:
        np.testing.assert_allclose(two.layers[1].bias_matrix.get_value(),
                                   (t2.bias_ih_l1 + t2.bias_hh_l1).detach().numpy(), rtol=1e-15)
    # library -> torch, from new random library weights
    for model in (one, two):
        model.params = [rng.normal(0, 0.5, p.get_value().shape) for p in model.params]
    sd = to_torch_state_dict(two)
    assert list(sd) == list(t2.state_dict()) and all(v.dtype == torch.float64 for v in sd.values())
    t1.load_state_dict(to_torch_state_dict(one))
    t2.load_state_dict(sd)
    assert not np.allclose(check(), before)
    # a round trip through torch leaves the library weights alone
    old = [p.get_value() for p in two.params]
    from_torch_state_dict(two, t2.state_dict())
    for a, p in zip(old, two.params):
        np.testing.assert_allclose(p.get_value(), a, rtol=1e-15)

    # nn.LSTMCell / nn.GRUCell keys, both ways, through the same compiled function
    cell_module = getattr(torch.nn, kind + "Cell")(I, H, dtype=torch.float64)
    from_torch_state_dict(one.layers[0], cell_module.state_dict())
    out1 = f(xs)[0]
    h = torch.zeros(B, H, dtype=torch.float64)
    state = (h, torch.zeros(B, H, dtype=torch.float64)) if kind == "LSTM" else h
    with torch.no_grad():
        for t in range(T):
            state = cell_module(torch.from_numpy(xs[t]), state)
            h = state[0] if kind == "LSTM" else state
            np.testing.assert_allclose(out1[t], h.numpy(), rtol=1e-10, atol=1e-12)
    exported = to_torch_state_dict(one.layers[0], cell_style=True)
    assert list(exported) == ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    cell_module.load_state_dict(exported)


@requires_torch
def test_numpy_values_prefix_and_bias_free_modules(rng):
    import torch

    lstm = torch.nn.LSTM(I, H, num_layers=2)  # float32 tensors into a float64 model
    sd = lstm.state_dict()
    a, b = stack("LSTM", 2), stack("LSTM", 2, seed=5)
    from_torch_state_dict(a, sd)
    nested = {"head.weight": np.ones(3), **{"enc.rnn." + k: v.numpy() for k, v in sd.items()}}
    from_torch_state_dict(b, nested, prefix="enc.rnn.")
    for p, q in zip(a.params, b.params):
        np.testing.assert_array_equal(p.get_value(), q.get_value())
    assert a.layers[0].linear_matrix.dtype == "float64"
    np.testing.assert_allclose(a.layers[0].linear_matrix.get_value(), sd["weight_ih_l0"].numpy().T, rtol=0)
    out = to_torch_state_dict(a, prefix="rnn.", as_numpy=True)
    assert list(out)[:2] == ["rnn.weight_ih_l0", "rnn.weight_hh_l0"] and isinstance(out["rnn.bias_hh_l1"], np.ndarray)
    np.testing.assert_array_equal(out["rnn.bias_hh_l1"], 0.0)
    np.testing.assert_allclose(out["rnn.bias_ih_l1"], (sd["bias_ih_l1"] + sd["bias_hh_l1"]).numpy(), rtol=1e-6)
    gru = tl.GRU(I, H, reset="after", rng=0)
    from_torch_state_dict(gru, torch.nn.GRU(I, H, bias=False).state_dict())
    np.testing.assert_array_equal(gru.bias_matrix.get_value(), 0.0)
    np.testing.assert_array_equal(gru.recurrent_bias.get_value(), 0.0)


def test_no_torch_import():
    code = (
        "import sys\n"
        "import theano_lstm as tl\n"
        "from theano_lstm.torch_interop import from_torch_state_dict, to_torch_state_dict\n"
        "m = tl.StackedCells(3, celltype=tl.LSTM, layers=[2, 2], rng=0)\n"
        "from_torch_state_dict(m, to_torch_state_dict(m, as_numpy=True))\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def sd_of(model):
    return to_torch_state_dict(model, as_numpy=True)


def test_configurations_without_a_torch_equivalent():
    with pytest.raises(ValueError, match=r"reset='before'.*different functions of the same weights.*reset='after'"):
        to_torch_state_dict(tl.GRU(I, H, rng=0), as_numpy=True)
    with pytest.raises(ValueError, match="reset='before'"):
        from_torch_state_dict(tl.GRU(I, H, rng=0), sd_of(tl.GRU(I, H, reset="after", rng=0)))
    with pytest.raises(ValueError, match="has peepholes; nn.LSTM has no peephole weights"):
        sd_of(tl.LSTM(I, H, peepholes=True))
    with pytest.raises(ValueError, match=r"coupled input-forget gates \(CIFG\)"):
        sd_of(tl.LSTM(I, H, coupled_gates=True))
    with pytest.raises(ValueError, match="learn_init=True; nn.GRU has no learned initial state"):
        sd_of(tl.GRU(I, H, reset="after", learn_init=True))
    relu = tl.LSTM(I, H)
    relu.in_gate2.activation = "relu"
    with pytest.raises(ValueError, match="in_gate2.activation='relu'; nn.LSTM fixes it to 'tanh'"):
        sd_of(relu)
    with pytest.raises(ValueError, match="reset_gate.activation='hard_sigmoid'; nn.GRU fixes it to 'sigmoid'"):
        sd_of(tl.GRU(I, H, reset="after", gate_activation="hard_sigmoid"))
    with pytest.raises(ValueError, match="activation='relu'; nn.LSTM"):
        sd_of(tl.LSTM(I, H, activation="relu"))
    custom = tl.LSTM(I, H)
    custom.out_gate.activation = lambda v: v
    with pytest.raises(ValueError, match="out_gate.activation='custom <lambda>'"):
        sd_of(custom)
    headed = stack("LSTM", 1)
    headed.layers.append(tl.Layer(H, 2, "softmax"))
    with pytest.raises(TypeError, match=r"layer 1 \(Layer\) is a Layer; only LSTM and GRU"):
        sd_of(headed)
    with pytest.raises(TypeError, match="is a RNN; only LSTM and GRU"):
        sd_of(tl.RNN(I, H))
    with pytest.raises(TypeError, match="model must be an LSTM, a GRU or a StackedCells of them, received dict"):
        sd_of({})
    mixed = stack("LSTM", 1)
    mixed.layers.append(tl.GRU(H, H, reset="after"))
    with pytest.raises(ValueError, match=r"one kind of layer; this model mixes \['LSTM', 'GRU'\]"):
        sd_of(mixed)
    with pytest.raises(ValueError, match=r"one hidden_size for all layers; this model has \[6, 5\]"):
        sd_of(tl.StackedCells(I, celltype=tl.LSTM, layers=[6, 5]))
    with pytest.raises(ValueError, match="cell_style=True .* this model has 2 layers"):
        to_torch_state_dict(stack("LSTM", 2), as_numpy=True, cell_style=True)


def test_bad_state_dicts_raise_and_leave_the_model_unchanged():
    model = stack("LSTM", 2)
    good = sd_of(stack("LSTM", 2, seed=3))
    old = [p.get_value() for p in model.params]
    with pytest.raises(ValueError, match=r"2-layer torch LSTM: missing keys \['bias_hh_l1'\], unexpected keys \[\]"):
        from_torch_state_dict(model, {k: v for k, v in good.items() if k != "bias_hh_l1"})
    with pytest.raises(ValueError, match=r"unexpected keys \['weight_ih_l0_reverse'\]; bidirectional"):
        from_torch_state_dict(model, {**good, "weight_ih_l0_reverse": good["weight_ih_l0"]})
    with pytest.raises(ValueError, match=r"unexpected keys \['weight_hr_l0'\]; LSTMs with proj_size"):
        from_torch_state_dict(model, {**good, "weight_hr_l0": np.zeros((H, H))})
    with pytest.raises(ValueError, match=r"missing keys \['bias_hh_l0', 'bias_hh_l1', 'bias_ih_l0'"):
        from_torch_state_dict(model, good, prefix="rnn.")
    bad = dict(good, weight_hh_l1=np.zeros((4 * H, I)))
    with pytest.raises(ValueError, match=r"weight_hh_l1 has shape \(24, 4\) but layer 1 \(LSTM, input_size=6, "
                                         r"hidden_size=6\) needs \(24, 6\)"):
        from_torch_state_dict(model, bad)
    with pytest.raises(TypeError, match=r"state_dict\['bias_ih_l1'\] must hold floating-point numbers, received dtype"):
        from_torch_state_dict(model, dict(good, bias_ih_l1=np.array(["a"] * 24)))
    with pytest.raises(TypeError, match="state_dict must be a mapping of names to tensors, received list"):
        from_torch_state_dict(model, list(good.values()))
    with pytest.raises(ValueError, match=r"weight_ih_l0 has shape \(24, 4\) but layer 0 \(GRU"):
        from_torch_state_dict(stack("GRU", 1), {k: v for k, v in good.items() if k.endswith("l0")})
    for a, p in zip(old, model.params):  # nothing was written by the failed calls
        np.testing.assert_array_equal(p.get_value(), a)
    from_torch_state_dict(model, good)
    assert not np.allclose(model.params[0].get_value(), old[0])
