"""Tests of theano_lstm.io: save/load round trips, checkpoints, hostile files."""

from __future__ import annotations

import io as _io
import json
import os
import pickle
import struct
import zipfile

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from tests._util import has_module
from theano_lstm import GRU, LSTM, RNN, Embedding, GatedInput, Layer, StackedCells, backend
from theano_lstm.layer_norm import LayerNormGRU, LayerNormLSTM
from theano_lstm.io import (
    FORMAT_VERSION,
    ModelFormatError,
    load,
    load_checkpoint,
    read_manifest,
    save,
    save_checkpoint,
)

# ------------------------------------------------------------------ models


def _lstm_changed_gates():
    lstm = LSTM(3, 4, peepholes=True, forget_bias=1.0, rng=3, name="lstm")
    lstm.in_gate2.activation = "linear"
    lstm.out_gate.activation = "hard_sigmoid"
    return lstm


def _stacked_lstm_head():
    model = StackedCells(3, celltype=LSTM, layers=[4, 4], rng=5)
    model.layers.append(Layer(4, 3, "softmax", rng=6))
    model.layers[1].forget_gate.activation = "hard_sigmoid"
    return model


def _stacked_embedding_gru():
    model = StackedCells(5, celltype=GRU, layers=[], rng=7)
    model.layers += [
        Embedding(5, 3, rng=0, name="emb"),
        GRU(3, 4, reset="after", gate_activation="hard_sigmoid", learn_init=True, rng=1, name="gru"),
        Layer(4, 5, "log_softmax", rng=2, name="head"),
    ]
    model.layers[1].initial_hidden_state.set_value(np.linspace(-1, 1, 4))
    return model


def _stacked_gated():
    model = StackedCells(3, celltype=RNN, layers=[], rng=8)
    model.layers += [GatedInput(3, 4, rng=0, name="gate"), RNN(3, 4, activation="relu", learn_init=True, rng=1)]
    return model


def _randomise_biases(model):
    """Give zero-initialised biases random values so that a lost bias shows."""
    rng = np.random.default_rng(99)
    cells = model.layers if isinstance(model, StackedCells) else [model]
    for cell in cells:
        for attr in cell._param_attrs:
            var = getattr(cell, attr)
            if "bias" in attr:
                var.set_value(rng.normal(size=var.get_value().shape).astype(var.dtype))
    return model


MODELS = {
    "Layer": lambda: Layer(3, 2, "tanh", clip_gradients=2.0, rng=0),
    "Layer-float32": lambda: Layer(3, 2, "relu", rng=0, dtype="float32"),
    "Embedding": lambda: Embedding(5, 3, rng=1),
    "RNN": lambda: RNN(3, 4, activation="relu", learn_init=True, rng=2),
    "LSTM": _lstm_changed_gates,
    "GRU": lambda: GRU(3, 4, gate_activation="hard_sigmoid", rng=4),
    "GatedInput": lambda: GatedInput(3, 4, rng=9),
    "LSTM-coupled": lambda: LSTM(3, 4, coupled_gates=True, peepholes=True, learn_init=True, rng=10),
    "LayerNormLSTM": lambda: LayerNormLSTM(3, 4, forget_bias=1.0, eps=1e-3, rng=11),
    "LayerNormGRU": lambda: LayerNormGRU(3, 4, reset="after", rng=12),
    "Stacked-LSTM-head": _stacked_lstm_head,
    "Stacked-Embedding-GRU": _stacked_embedding_gru,
    "Stacked-GatedInput": _stacked_gated,
}


def _cells(model):
    return model.layers if isinstance(model, StackedCells) else [model]


def _gate_names(cell):
    return {g.name: backend.activation_name(g.activation) for g in getattr(cell, "gates", ())}


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "model.npz")


# ----------------------------------------------------------- round trips


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_round_trip_restores_architecture_and_values(kind, path):
    model = _randomise_biases(MODELS[kind]())
    save(path, model)
    copy = load(path)
    assert type(copy) is type(model)
    a, b = _cells(model), _cells(copy)
    assert [type(c) for c in a] == [type(c) for c in b]
    for ca, cb in zip(a, b):
        assert cb.get_config() == ca.get_config()
        assert cb.dtype == ca.dtype
        assert backend.activation_name(getattr(cb, "activation", None)) == backend.activation_name(getattr(ca, "activation", None))
        assert _gate_names(cb) == _gate_names(ca)
        for pa, pb in zip(ca.params, cb.params):
            assert pb is not pa
            assert pb.name == pa.name
            assert pb.dtype == pa.dtype
            np.testing.assert_array_equal(pb.get_value(), pa.get_value())
    if isinstance(model, StackedCells):
        assert copy.input_size == model.input_size and copy.celltype is model.celltype


def _sequence_output(model, x):
    if isinstance(model, StackedCells):
        return model.scan(x).outputs
    if isinstance(model, Embedding):
        return model.activate(x)
    if isinstance(model, GatedInput):
        return model.activate(x, pt.ones((x.shape[0], model.hidden_size)))
    if isinstance(model, Layer):
        return model.activate(x)
    return model.activate(x, pt.zeros((x.shape[0], model.state_size), dtype=model.dtype))


def test_round_trip_gives_identical_outputs(tmp_path):
    """One compiled graph evaluates every model and its reloaded copy on the same input."""
    rng = np.random.default_rng(0)
    inputs, outputs, values = [], [], []
    for kind, build in sorted(MODELS.items()):
        model = _randomise_biases(build())
        p = str(tmp_path / f"{kind}.npz")
        save(p, model)
        copy = load(p)
        first = _cells(model)[0]
        if isinstance(first, Embedding):
            x = pt.matrix(f"x_{kind}", dtype="int64") if isinstance(model, StackedCells) else pt.vector(f"x_{kind}", dtype="int64")
            value = rng.integers(0, first.vocabulary_size, size=(4, 2) if x.ndim == 2 else (4,))
        else:
            x = pt.tensor3(f"x_{kind}", dtype=first.dtype) if isinstance(model, StackedCells) else pt.matrix(f"x_{kind}", dtype=first.dtype)
            value = rng.normal(size=(4, 2, first.input_size) if x.ndim == 3 else (4, first.input_size)).astype(first.dtype)
        inputs.append(x)
        values.append(value)
        outputs += [_sequence_output(model, x), _sequence_output(copy, x)]
    f = backend.function(inputs, outputs)
    results = f(*values)
    for kind, (before, after) in zip(sorted(MODELS), zip(results[::2], results[1::2])):
        assert np.all(np.isfinite(before)), kind
        np.testing.assert_array_equal(after, before, err_msg=kind)


def test_tied_parameters_stay_tied(path):
    model = StackedCells(4, celltype=RNN, layers=[4, 4], rng=0)
    model.layers[1].params = [model.layers[0].linear_matrix, model.layers[1].recurrent_matrix, model.layers[1].bias_matrix]
    save(path, model)
    manifest = read_manifest(path)
    assert manifest["model"]["tied"] == {"layers.1.linear_matrix": "layers.0.linear_matrix"}
    assert "layers.1.linear_matrix" not in manifest["arrays"]
    copy = load(path)
    assert copy.layers[1].linear_matrix is copy.layers[0].linear_matrix
    np.testing.assert_array_equal(copy.layers[1].linear_matrix.get_value(), model.layers[0].linear_matrix.get_value())


def test_file_is_plain_numpy_npz_with_json_manifest(path):
    model = _stacked_lstm_head()
    save(path, model)
    with np.load(path, allow_pickle=False) as data:
        keys = set(data.files)
        manifest = data["__manifest__"]
        W = data["layers.0.linear_matrix"]
    assert manifest.dtype == np.uint8 and manifest.ndim == 1
    meta = json.loads(manifest.tobytes().decode("utf-8"))
    assert meta["format"] == "theano_lstm" and meta["version"] == FORMAT_VERSION
    assert [layer["class"] for layer in meta["model"]["layers"]] == ["LSTM", "LSTM", "Layer"]
    assert meta["model"]["layers"][1]["gates"]["forget_gate"] == "hard_sigmoid"
    assert keys == {"__manifest__"} | set(meta["arrays"])
    np.testing.assert_array_equal(W, model.layers[0].linear_matrix.get_value())


def test_compressed_round_trip(path):
    model = MODELS["LSTM"]()
    save(path, model, compress=True)
    with zipfile.ZipFile(path) as zf:
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_DEFLATED}
    np.testing.assert_array_equal(load(path).linear_matrix.get_value(), model.linear_matrix.get_value())


@pytest.mark.skipif(not has_module("safetensors"), reason="safetensors is not installed")
def test_safetensors_round_trip(tmp_path):
    model = _stacked_embedding_gru()
    p = str(tmp_path / "model.safetensors")
    save(p, model)
    with open(p, "rb") as f:
        assert not f.read(2) == b"PK"
    copy = load(p)
    for a, b in zip(model.params, copy.params):
        np.testing.assert_array_equal(a.get_value(), b.get_value())
    assert _gate_names(copy.layers[1]) == _gate_names(model.layers[1])
    # truncation and a forged header are refused
    data = open(p, "rb").read()
    open(p, "wb").write(data[:-5])
    with pytest.raises(ModelFormatError, match="truncated|declares"):
        load(p)
    open(p, "wb").write(struct.pack("<Q", 10**12) + data[8:])
    with pytest.raises(ModelFormatError, match="header declares"):
        load(p)


# ---------------------------------------------------- refusals at save time


def test_custom_activation_cannot_be_saved(path):
    with pytest.raises(ValueError, match="custom callable 'my_act'"):
        def my_act(x):
            return x * 2

        save(path, Layer(3, 2, my_act, rng=0))
    lstm = LSTM(3, 2, rng=0)
    lstm.in_gate2.activation = lambda x: x
    with pytest.raises(ValueError, match="gate in_gate2"):
        save(path, lstm)
    assert not os.path.exists(path)
    assert os.listdir(os.path.dirname(path)) == []  # no temporary file left behind


def test_unknown_classes_cannot_be_saved(path):
    class MyLSTM(LSTM):
        pass

    with pytest.raises(TypeError, match="MyLSTM"):
        save(path, MyLSTM(2, 2, rng=0))
    with pytest.raises(TypeError, match="StackedCells or a cell"):
        save(path, {"W": np.zeros(2)})


def test_write_is_atomic(path, monkeypatch):
    model = Layer(3, 2, "tanh", rng=0)
    save(path, model)
    before = open(path, "rb").read()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np.lib.format, "write_array", fail)
    with pytest.raises(OSError, match="disk full"):
        save(path, Layer(3, 2, "tanh", rng=1))
    assert open(path, "rb").read() == before
    assert os.listdir(os.path.dirname(path)) == [os.path.basename(path)]


# --------------------------------------------------------- hostile files

MARKER_NAME = "pwned.txt"


class _Payload:
    """Unpickling this creates a marker file (it would run arbitrary code)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _npy(arr, allow_pickle=False) -> bytes:
    buf = _io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def _members(path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return {i.filename: zf.read(i.filename) for i in zf.infolist()}


def _write_zip(path, members: dict):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _manifest(members) -> dict:
    raw = members["__manifest__.npy"]
    return json.loads(np.load(_io.BytesIO(raw)).tobytes())


def _with_manifest(members, manifest) -> dict:
    out = dict(members)
    out["__manifest__.npy"] = _npy(np.frombuffer(json.dumps(manifest).encode(), dtype=np.uint8))
    return out


def _pickle_file(path, marker):
    with open(path, "wb") as f:
        pickle.dump({"layers.0.linear_matrix": _Payload(marker)}, f)


def _object_array(path, marker):
    members = _members(path)
    arr = np.empty(1, dtype=object)
    arr[0] = _Payload(marker)
    members["layers.0.linear_matrix.npy"] = _npy(arr, allow_pickle=True)
    _write_zip(path, members)


def _object_manifest(path, marker):
    members = _members(path)
    arr = np.empty(1, dtype=object)
    arr[0] = _Payload(marker)
    members["__manifest__.npy"] = _npy(arr, allow_pickle=True)
    _write_zip(path, members)


def _missing_key(path, marker):
    members = _members(path)
    del members["layers.0.bias_matrix.npy"]
    _write_zip(path, members)


def _extra_key(path, marker):
    members = _members(path)
    members["evil.npy"] = _npy(np.zeros(3))
    _write_zip(path, members)


def _extra_param_in_manifest(path, marker):
    members = _members(path)
    m = _manifest(members)
    m["arrays"]["layers.0.evil_matrix"] = {"shape": [3], "dtype": "float64"}
    members = _with_manifest(members, m)
    members["layers.0.evil_matrix.npy"] = _npy(np.zeros(3))
    _write_zip(path, members)


def _non_npy_member(path, marker):
    members = _members(path)
    members["payload.py"] = b"import os; os.system('touch pwned')"
    _write_zip(path, members)


def _wrong_shape(path, marker):
    """Array and manifest agree with each other but not with the layer's config."""
    members = _members(path)
    m = _manifest(members)
    m["arrays"]["layers.0.linear_matrix"]["shape"] = [3, 3]
    members = _with_manifest(members, m)
    members["layers.0.linear_matrix.npy"] = _npy(np.zeros((3, 3)))
    _write_zip(path, members)


def _shape_differs_from_manifest(path, marker):
    members = _members(path)
    members["layers.0.linear_matrix.npy"] = _npy(np.zeros((2, 3)))
    _write_zip(path, members)


def _wrong_dtype(path, marker):
    members = _members(path)
    m = _manifest(members)
    m["arrays"]["layers.0.linear_matrix"]["dtype"] = "int64"
    members = _with_manifest(members, m)
    members["layers.0.linear_matrix.npy"] = _npy(np.zeros((3, 2), dtype=np.int64))
    _write_zip(path, members)


def _complex_dtype(path, marker):
    members = _members(path)
    members["layers.0.linear_matrix.npy"] = _npy(np.zeros((3, 2), dtype=np.complex128))
    _write_zip(path, members)


def _huge_zip_declared_size(path, marker):
    """Patch the central directory so an entry declares 2**40 bytes (a zip bomb's lie)."""
    data = bytearray(open(path, "rb").read())
    cd = data.rfind(b"PK\x01\x02")  # the last central-directory record
    # uncompressed size field at offset 24 of the record (zip64 marker 0xFFFFFFFF -> use extra)
    size = struct.unpack_from("<I", data, cd + 24)[0]
    if size == 0xFFFFFFFF:  # zip64: the real size sits in the extra field
        name_len, extra_len = struct.unpack_from("<HH", data, cd + 28)
        extra = cd + 46 + name_len
        struct.pack_into("<Q", data, extra + 4, 2**40)
    else:
        struct.pack_into("<I", data, cd + 24, 0xFFFFFFF0)
    open(path, "wb").write(bytes(data))


def _huge_npy_shape(path, marker):
    """An npy header declaring a 10^12-element array in a tiny entry."""
    members = _members(path)
    header = np.lib.format.header_data_from_array_1_0(np.zeros((3, 2)))
    header["shape"] = (10**6, 10**6)
    buf = _io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    members["layers.0.linear_matrix.npy"] = buf.getvalue() + np.zeros(6).tobytes()
    _write_zip(path, members)


def _huge_config(path, marker):
    """A manifest asking for a 10^9-unit layer (would allocate terabytes if built first)."""
    members = _members(path)
    m = _manifest(members)
    m["model"]["layers"][0]["config"]["hidden_size"] = 10**9
    _write_zip(path, _with_manifest(members, m))


def _truncated_zip(path, marker):
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])


def _truncated_entry(path, marker):
    members = _members(path)
    members["layers.0.linear_matrix.npy"] = members["layers.0.linear_matrix.npy"][:-8]
    _write_zip(path, members)


def _corrupt_data(path, marker):
    """Flip bytes inside a stored entry: the zip CRC no longer matches."""
    data = bytearray(open(path, "rb").read())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("layers.0.linear_matrix.npy")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 140
    data[start : start + 4] = b"\xff\xff\xff\xff"
    open(path, "wb").write(bytes(data))


def _bad_json(path, marker):
    members = _members(path)
    members["__manifest__.npy"] = _npy(np.frombuffer(b'{"format": "theano_lstm", "version": 1, ', dtype=np.uint8))
    _write_zip(path, members)


def _nan_json(path, marker):
    members = _members(path)
    text = json.dumps(_manifest(members)).replace('"version": 1', '"version": NaN')
    members["__manifest__.npy"] = _npy(np.frombuffer(text.encode(), dtype=np.uint8))
    _write_zip(path, members)


def _float_manifest(path, marker):
    members = _members(path)
    members["__manifest__.npy"] = _npy(np.load(_io.BytesIO(members["__manifest__.npy"])).astype(float))
    _write_zip(path, members)


def _unknown_class(path, marker):
    members = _members(path)
    m = _manifest(members)
    m["model"]["layers"][0]["class"] = "os.system"
    _write_zip(path, _with_manifest(members, m))


def _unknown_activation(path, marker):
    members = _members(path)
    m = _manifest(members)
    m["model"]["layers"][0]["activation"] = "__import__('os').system"
    m["model"]["layers"][0]["config"]["activation"] = "__import__('os').system"
    _write_zip(path, _with_manifest(members, m))


def _unexpected_config_argument(path, marker):
    members = _members(path)
    m = _manifest(members)
    m["model"]["layers"][0]["config"]["W_init"] = "evil"
    _write_zip(path, _with_manifest(members, m))


def _future_version(path, marker):
    members = _members(path)
    m = _manifest(members)
    m["version"] = FORMAT_VERSION + 1
    _write_zip(path, _with_manifest(members, m))


def _duplicate_entry(path, marker):
    members = _members(path)
    with pytest.warns(UserWarning, match="Duplicate name"):
        with zipfile.ZipFile(path, "a") as zf:
            zf.writestr("layers.0.bias_matrix.npy", members["layers.0.bias_matrix.npy"])


def _missing_manifest(path, marker):
    members = _members(path)
    del members["__manifest__.npy"]
    _write_zip(path, members)


def _empty_file(path, marker):
    open(path, "wb").close()


def _text_file(path, marker):
    open(path, "w").write("W = [[1, 2], [3, 4]]\n")


HOSTILE = {
    "pickle renamed to .npz": (_pickle_file, "pickle"),
    "object array (pickled payload)": (_object_array, "Python objects"),
    "object-array manifest": (_object_manifest, "Python objects"),
    "missing parameter entry": (_missing_key, "missing entries"),
    "extra entry": (_extra_key, "unexpected entries"),
    "extra parameter listed in manifest": (_extra_param_in_manifest, "evil_matrix"),
    "non-npy member": (_non_npy_member, "payload.py"),
    "wrong shape for the config": (_wrong_shape, r"shape \(3, 3\)"),
    "array shape differs from manifest": (_shape_differs_from_manifest, "manifest says"),
    "wrong dtype": (_wrong_dtype, "dtype"),
    "complex dtype": (_complex_dtype, "dtype complex128"),
    "huge declared zip entry size": (_huge_zip_declared_size, "max_bytes"),
    "huge npy shape": (_huge_npy_shape, "declares shape"),
    "huge layer in config": (_huge_config, "hidden_size|shape"),
    "truncated zip": (_truncated_zip, "truncated|not a valid"),
    "truncated entry": (_truncated_entry, "declares shape|truncated"),
    "corrupt data (CRC)": (_corrupt_data, "corrupt|CRC"),
    "bad JSON": (_bad_json, "not valid JSON"),
    "NaN in JSON": (_nan_json, "NaN is not allowed"),
    "float manifest": (_float_manifest, "dtype float64"),
    "unknown class": (_unknown_class, "'os.system'"),
    "unknown activation": (_unknown_activation, "not a registered name"),
    "unexpected constructor argument": (_unexpected_config_argument, "W_init"),
    "future format version": (_future_version, "version"),
    "duplicate entry": (_duplicate_entry, "twice"),
    "missing manifest": (_missing_manifest, "no '__manifest__'"),
    "empty file": (_empty_file, "not a .npz"),
    "text file": (_text_file, "header declares|not a"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_file_is_refused_without_running_code(case, path, tmp_path):
    marker = str(tmp_path / MARKER_NAME)
    save(path, Layer(3, 2, "tanh", rng=0))
    make, message = HOSTILE[case]
    make(path, marker)
    with pytest.raises(ModelFormatError, match=message):
        load(path)
    assert not os.path.exists(marker)
    # the dedicated error is a ValueError, as the library's conventions ask
    assert issubclass(ModelFormatError, ValueError)


def test_unpickling_payload_would_have_run(tmp_path):
    """The hostile pickle really is dangerous: plain pickle.load creates the marker."""
    marker = str(tmp_path / MARKER_NAME)
    p = str(tmp_path / "evil.npz")
    _pickle_file(p, marker)
    with open(p, "rb") as f:
        pickle.load(f)
    assert os.path.exists(marker)


def test_max_bytes_cap(path):
    save(path, Layer(30, 20, "tanh", rng=0))
    size = os.path.getsize(path)
    with pytest.raises(ModelFormatError, match=f"more than max_bytes={size - 1}"):
        load(path, max_bytes=size - 1)
    assert load(path, max_bytes=size).hidden_size == 20


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(str(tmp_path / "nope.npz"))


# ------------------------------------------------------------ checkpoints


def _train_setup(seed):
    """A tiny model, its momentum updates (and an RNG for input noise), compiled."""
    try:
        from theano_lstm.optimizers import momentum
    except ImportError:  # pragma: no cover - optimizers written concurrently
        momentum = None
    model = StackedCells(2, celltype=RNN, layers=[3], rng=seed)
    model.layers.append(Layer(3, 1, "linear", rng=seed + 1))
    x = pt.tensor3("x")
    y = pt.tensor3("y")
    rng = pt.random.shared_rng(seed=seed, name="train.noise_rng")
    next_rng, noise = rng.normal(0.0, 0.1, size=(4, 2, 2))
    cost = ((model.scan(x + noise).outputs - y) ** 2).mean()
    if momentum is not None:
        updates = momentum(cost, model.params, lr=0.1, momentum=0.9)
    else:  # pragma: no cover
        updates = {}
        for p, g in zip(model.params, pytensor.grad(cost, model.params)):
            v = pytensor.shared(np.zeros_like(p.get_value()), name=f"{p.name}.momentum_velocity")
            updates[v] = 0.9 * v - 0.1 * g
            updates[p] = p + updates[v]
    updates[rng] = next_rng
    train = backend.function([x, y], cost, updates=updates)
    return model, updates, train


def test_interrupted_training_resumes_exactly(tmp_path):
    data = np.random.default_rng(0)
    batches = [(data.normal(size=(4, 2, 2)), data.normal(size=(4, 2, 1))) for _ in range(6)]
    ckpt = str(tmp_path / "ckpt.npz")

    model, updates, train = _train_setup(seed=1)
    costs = []
    for k, (x, y) in enumerate(batches):
        if k == 3:
            save_checkpoint(ckpt, model, updates, extra={"step": 3, "history": costs[:]})
        costs.append(float(train(x, y)))
    uninterrupted = [p.get_value() for p in model.params]

    # a "new process": the same code builds fresh objects with other initial values
    model2, updates2, train2 = _train_setup(seed=2)
    assert not np.array_equal(model2.params[0].get_value(), model.params[0].get_value())
    extra = load_checkpoint(ckpt, model2, updates2)
    assert extra == {"step": 3, "history": costs[:3]}
    resumed = [float(train2(x, y)) for x, y in batches[3:]]
    np.testing.assert_array_equal(resumed, costs[3:])
    for a, b in zip(uninterrupted, model2.params):
        np.testing.assert_array_equal(b.get_value(), a)

    # without the optimizer state (velocities and noise RNG) the run differs
    load_checkpoint(ckpt, model2)
    for var in updates2:
        if var.name.endswith("momentum_velocity"):
            var.set_value(np.zeros_like(var.get_value()))
    other = [float(train2(x, y)) for x, y in batches[3:]]
    assert other != costs[3:]

    # a checkpoint is also a model file
    assert isinstance(load(ckpt), StackedCells)


def test_checkpoint_validation(tmp_path):
    ckpt = str(tmp_path / "ckpt.npz")
    model = RNN(2, 3, rng=0, name="rnn")
    v1 = backend.shared(np.ones((2, 3)), name="rnn.v1")
    v2 = backend.shared(np.full((3,), 2.0), name="rnn.v2")
    save_checkpoint(ckpt, model, [v1, v2])
    saved = [p.get_value() for p in model.params]

    def unchanged():
        for p, s in zip(model.params, saved):
            np.testing.assert_array_equal(p.get_value(), s)
        np.testing.assert_array_equal(v1.get_value(), 1.0)
        np.testing.assert_array_equal(v2.get_value(), 0.0)

    model.params = [np.zeros_like(s) for s in saved]
    saved = [p.get_value() for p in model.params]
    v2.set_value(np.zeros(3))
    # a variable the checkpoint does not have
    v3 = backend.shared(np.zeros(3), name="rnn.v3")
    with pytest.raises(ModelFormatError, match=r"\['rnn.v3'\] are not in the checkpoint"):
        load_checkpoint(ckpt, model, [v1, v2, v3])
    # a saved variable not passed
    with pytest.raises(ModelFormatError, match=r"\['rnn.v2'\] that were not passed"):
        load_checkpoint(ckpt, model, [v1])
    # wrong shape
    bad = backend.shared(np.zeros(4), name="rnn.v2")
    with pytest.raises(ModelFormatError, match="rnn.v2"):
        load_checkpoint(ckpt, model, [v1, bad])
    # another architecture
    with pytest.raises(ModelFormatError, match="architecture differs.*hidden_size: the model has 4, the checkpoint 3"):
        load_checkpoint(ckpt, RNN(2, 4, rng=0, name="rnn"), [v1, v2])
    with pytest.raises(ModelFormatError, match="architecture differs"):
        load_checkpoint(ckpt, LSTM(2, 3, rng=0, name="rnn"), [v1, v2])
    unchanged()  # nothing was modified by the failed loads
    load_checkpoint(ckpt, model, [v2, v1])
    np.testing.assert_array_equal(v2.get_value(), 2.0)
    # saving refuses unnamed or duplicate-named state, and parameters passed as state
    with pytest.raises(ValueError, match="no name"):
        save_checkpoint(ckpt, model, [pytensor.shared(np.zeros(2))])
    with pytest.raises(ValueError, match="named 'rnn.v1'"):
        save_checkpoint(ckpt, model, [v1, backend.shared(np.zeros(2), name="rnn.v1")])
    with pytest.raises(ValueError, match="model parameter"):
        save_checkpoint(ckpt, model, [model.linear_matrix])
    with pytest.raises(ValueError, match="JSON"):
        save_checkpoint(ckpt, model, [v1], extra={"f": object()})
    # a model file has no optimizer state to restore
    save(str(tmp_path / "m.npz"), model)
    with pytest.raises(ModelFormatError, match="no optimizer state"):
        load_checkpoint(str(tmp_path / "m.npz"), model, [v1])


def test_checkpoint_random_generator_state(tmp_path):
    ckpt = str(tmp_path / "ckpt.npz")
    model = Layer(2, 2, "tanh", rng=0)
    rng = pt.random.shared_rng(np.random.Generator(np.random.Philox(3)), name="dropout_rng")
    save_checkpoint(ckpt, model, [rng])
    expected = rng.get_value().random(4)  # advances the stored generator
    rng.set_value(np.random.Generator(np.random.Philox(99)))
    load_checkpoint(ckpt, model, [rng])
    np.testing.assert_array_equal(rng.get_value().random(4), expected)
    # an array variable of the same name is not a generator
    with pytest.raises(ModelFormatError, match="random generator"):
        load_checkpoint(ckpt, model, [backend.shared(np.zeros(2), name="dropout_rng")])


@pytest.mark.parametrize("fmt", ["npz", pytest.param("safetensors", marks=pytest.mark.skipif(
    not has_module("safetensors"), reason="safetensors is not installed"))])
def test_checkpoint_restores_optimizer_accumulators_of_every_shape(fmt, tmp_path):
    """Adam's accumulators (matrices, vectors and 0-d step counters) by name, both formats."""
    from theano_lstm.optimizers import adam

    ckpt = str(tmp_path / f"ckpt.{fmt}")
    model = _stacked_lstm_head()
    x = pt.tensor3("x")
    updates = adam(model.scan(x).outputs.sum(), model.params)
    state = [v for v in updates if all(v is not p for p in model.params)]
    assert any(v.get_value().ndim == 0 for v in state)
    rng = np.random.default_rng(0)
    for v in state:
        v.set_value(np.asarray(rng.normal(size=v.get_value().shape), dtype=v.dtype))
    saved = {v.name: v.get_value() for v in state}
    save_checkpoint(ckpt, model, updates, extra={"epoch": 2}, format=fmt)
    assert len(read_manifest(ckpt)["optimizer"]) == len(state)
    for v in state:
        v.set_value(np.zeros_like(v.get_value()))
    assert load_checkpoint(ckpt, model, updates) == {"epoch": 2}
    for v in state:
        np.testing.assert_array_equal(v.get_value(), saved[v.name])
