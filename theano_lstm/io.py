"""Save and load models (parameters + architecture) and training checkpoints.

One file holds everything: the parameters as arrays and the architecture as a
JSON *manifest*.  Two containers are supported:

``.npz`` (default)
    A zip of ``.npy`` arrays, readable with ``numpy.load(path,
    allow_pickle=False)``.  The manifest is the entry ``__manifest__``, a
    ``uint8`` array holding UTF-8 JSON.  Parameters are ``layers.<k>.<attr>``
    (``<attr>`` is the cell attribute, e.g. ``linear_matrix``), optimizer
    accumulators ``optimizer.<i>``.
``.safetensors``
    When the optional ``safetensors`` package is installed; the manifest is
    the header metadata entry ``theano_lstm``.

Loading never unpickles and never imports a name read from a file: cells are
rebuilt from a whitelist (:data:`CELL_CLASSES`) and activations from the
registered names of :func:`theano_lstm.backend.get_activation`.  Before any
array data is read, every entry name, declared shape, dtype and byte count is
checked against the manifest and against a size cap (``max_bytes``); a file
that is malformed, truncated, too large or carries missing or unexpected
entries raises :class:`ModelFormatError` (a :class:`ValueError`).  Writes are
atomic: a temporary file in the target directory replaced into place.

Example
-------
>>> import os, tempfile
>>> import numpy as np
>>> from theano_lstm import LSTM, Layer, StackedCells
>>> model = StackedCells(3, celltype=LSTM, layers=[4], rng=0)
>>> model.layers.append(Layer(4, 3, "softmax", rng=1))
>>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
>>> save(path, model)
>>> copy = load(path)
>>> [type(layer).__name__ for layer in copy.layers]
['LSTM', 'Layer']
>>> all(np.array_equal(a.get_value(), b.get_value()) for a, b in zip(model.params, copy.params))
True
"""

from __future__ import annotations

import inspect
import json
import os
import re
import struct
import tempfile
import zipfile
from collections.abc import Mapping, Sequence

import numpy as np
from pytensor.compile.sharedvalue import SharedVariable

from . import backend
from .layer_norm import LayerNormGRU, LayerNormLSTM
from .layers import GRU, LSTM, RNN, Cell, Embedding, GatedInput, Layer
from .stacked import StackedCells

__all__ = [
    "save",
    "load",
    "save_checkpoint",
    "load_checkpoint",
    "read_manifest",
    "ModelFormatError",
    "CELL_CLASSES",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "DEFAULT_MAX_BYTES",
]

#: Value of the manifest's ``"format"`` field.
FORMAT_NAME = "theano_lstm"
#: Version written by this module; files with a larger version are refused.
FORMAT_VERSION = 1
#: Default cap on a file's size and on the sum of its entries' declared sizes.
DEFAULT_MAX_BYTES = 2 * 1024**3
#: Cap on the JSON manifest (bytes).
MAX_MANIFEST_BYTES = 16 * 1024**2
#: Cap on the number of entries in a file.
MAX_ENTRIES = 65536

#: The only classes :func:`load` rebuilds (by exact class name).
CELL_CLASSES: dict[str, type] = {
    "Layer": Layer,
    "Embedding": Embedding,
    "RNN": RNN,
    "LSTM": LSTM,
    "GRU": GRU,
    "GatedInput": GatedInput,
    "LayerNormLSTM": LayerNormLSTM,
    "LayerNormGRU": LayerNormGRU,
}

_MANIFEST_KEY = "__manifest__"
_SAFETENSORS_META_KEY = "theano_lstm"
_PARAM_KEY = re.compile(r"^layers\.(0|[1-9][0-9]{0,5})\.([a-z][a-z0-9_]{0,63})$")
_OPT_KEY = re.compile(r"^optimizer\.(0|[1-9][0-9]{0,5})$")
_FLOAT_DTYPES = ("float32", "float64")
# dtypes an optimizer accumulator may have (no object, string or void dtypes)
_OPT_DTYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64",
               "uint8", "uint16", "uint32", "uint64", "bool")
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "SFC64", "Philox", "MT19937")
_NOT_CONFIG = {"self", "W_init", "U_init", "b_init", "P_init", "rng", "dtype"}


class ModelFormatError(ValueError):
    """A model or checkpoint file is malformed, truncated, too large, or does
    not match what was expected; raised before any of its data is used."""


# =============================================================== describing


def _activation_names() -> list:
    """The activation names :func:`theano_lstm.backend.get_activation` resolves."""
    return sorted(backend.ACTIVATION_NAMES)


def _activation_name(fn, where: str) -> str:
    name = backend.activation_name(fn)
    if name is None:
        raise ValueError(
            f"cannot save {where}: it is the custom callable "
            f"{getattr(fn, '__name__', type(fn).__name__)!r}; only registered activations "
            f"{_activation_names()} can be saved (set a registered name before saving)"
        )
    return name


def _json_scalar(value, where: str):
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not np.isfinite(value):
            raise ValueError(f"cannot save {where}={value!r}: expected a finite number")
        return value
    raise ValueError(f"cannot save {where}: expected a JSON scalar, received {type(value).__name__}")


def _describe_cell(layer: Cell) -> dict:
    cls = type(layer)
    name = cls.__name__
    if CELL_CLASSES.get(name) is not cls:
        raise TypeError(
            f"cannot save a {cls.__module__}.{cls.__qualname__}: only the classes "
            f"{sorted(CELL_CLASSES)} of theano_lstm can be saved"
        )
    where = f"{name} {layer.name!r}"
    config = {}
    accepted = _config_args(cls)
    for key, value in layer.get_config().items():
        if key not in accepted:  # passed separately (dtype) or not reproducible (initializers, rng)
            continue
        if key == "gate_activation":  # GRU: the gates' current activation
            value = layer.reset_gate.activation
        elif hasattr(layer, key):  # the current attribute, which the user may have changed
            value = getattr(layer, key)
        if callable(value):
            value = _activation_name(value, f"{where}: {key}")
        config[key] = _json_scalar(value, f"{where}: {key}")
    desc = {"class": name, "dtype": layer.dtype, "config": config}
    if hasattr(layer, "activation"):
        desc["activation"] = _activation_name(layer.activation, f"{where}: activation")
    gates = getattr(layer, "gates", None)
    if gates:
        desc["gates"] = {g.name: _activation_name(g.activation, f"{where}: gate {g.name}") for g in gates}
    desc["params"] = list(layer._param_attrs)
    return desc


def _layers_of(model) -> list:
    if isinstance(model, StackedCells):
        return list(model.layers)
    if isinstance(model, Cell):
        return [model]
    raise TypeError(f"model must be a StackedCells or a cell (Layer, LSTM, ...), received {type(model).__name__}")


def _describe_model(model) -> tuple[dict, list]:
    """(JSON description, [(key, shared variable or tied key)]) of ``model``."""
    layers = _layers_of(model)
    if isinstance(model, StackedCells):
        celltype = model.celltype.__name__
        if CELL_CLASSES.get(celltype) is not model.celltype:
            raise TypeError(f"cannot save a StackedCells whose celltype is {model.celltype!r}")
        desc = {"type": "StackedCells", "input_size": int(model.input_size), "celltype": celltype}
    else:
        desc = {"type": "cell"}
    desc["layers"] = [_describe_cell(layer) for layer in layers]
    entries, seen, tied = [], {}, {}
    for k, layer in enumerate(layers):
        for attr in layer._param_attrs:
            var = getattr(layer, attr)
            key = f"layers.{k}.{attr}"
            if id(var) in seen:
                tied[key] = seen[id(var)]
            else:
                seen[id(var)] = key
                entries.append((key, var))
    desc["tied"] = tied
    return desc, entries


def _check_name(var, where: str) -> str:
    name = getattr(var, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where} has no name; optimizer state is matched by name, give every shared variable one")
    return name


def _optimizer_variables(optimizer_state) -> list:
    """Shared variables of ``optimizer_state`` (a sequence of shared variables or an updates dict)."""
    if optimizer_state is None:
        return []
    if isinstance(optimizer_state, Mapping):
        candidates = [k for k in optimizer_state.keys() if isinstance(k, SharedVariable)]
    elif isinstance(optimizer_state, Sequence) and not isinstance(optimizer_state, (str, bytes)):
        candidates = list(optimizer_state)
        for i, var in enumerate(candidates):
            if not isinstance(var, SharedVariable):
                raise TypeError(f"optimizer_state[{i}] must be a shared variable, received {type(var).__name__}")
    else:
        raise TypeError(
            "optimizer_state must be a list of shared variables or an updates dict, "
            f"received {type(optimizer_state).__name__}"
        )
    out, names = [], {}
    for var in candidates:
        if any(var is v for v in out):
            continue
        name = _check_name(var, f"optimizer variable {var!r}")
        if name in names:
            raise ValueError(f"two optimizer variables are named {name!r}; names must be unique")
        names[name] = var
        out.append(var)
    return out


def _rng_state_to_json(state):
    if isinstance(state, dict):
        return {str(k): _rng_state_to_json(v) for k, v in state.items()}
    if isinstance(state, np.ndarray):
        return {"__ndarray__": state.dtype.str, "data": state.tolist()}
    if isinstance(state, np.integer):
        return int(state)
    return state


def _rng_state_from_json(state, where):
    if isinstance(state, dict):
        if "__ndarray__" in state:
            if set(state) != {"__ndarray__", "data"} or state["__ndarray__"] not in ("<u4", "<u8", "<i4", "<i8"):
                raise ModelFormatError(f"{where}: malformed array in a random generator state")
            try:
                return np.array(state["data"], dtype=state["__ndarray__"])
            except (TypeError, ValueError, OverflowError) as exc:
                raise ModelFormatError(f"{where}: malformed array in a random generator state ({exc})") from None
        return {k: _rng_state_from_json(v, where) for k, v in state.items()}
    if isinstance(state, (int, str)) and not isinstance(state, bool):
        return state
    raise ModelFormatError(f"{where}: unexpected {type(state).__name__} in a random generator state")


def _describe_optimizer(variables) -> tuple[list, list]:
    desc, entries = [], []
    for i, var in enumerate(variables):
        value = var.get_value(borrow=True)
        if isinstance(value, np.random.Generator):
            bitgen = type(value.bit_generator).__name__
            if bitgen not in _BIT_GENERATORS:
                raise ValueError(f"cannot save random generator {var.name!r}: bit generator {bitgen} is not one of {list(_BIT_GENERATORS)}")
            desc.append({"name": var.name, "kind": "rng", "bit_generator": bitgen,
                         "state": _rng_state_to_json(value.bit_generator.state)})
            continue
        value = backend.to_numpy(value)
        if value.dtype.name not in _OPT_DTYPES:
            raise ValueError(f"cannot save optimizer variable {var.name!r} of dtype {value.dtype}; expected one of {list(_OPT_DTYPES)}")
        key = f"optimizer.{i}"
        desc.append({"name": var.name, "kind": "array", "key": key})
        entries.append((key, var))
    return desc, entries


# ================================================================== writing


def _atomic_write(path, write) -> None:
    """Call ``write(fileobj)`` on a temporary file next to ``path``, then move it into place."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _format_of(path, format):
    if format is None:
        format = "safetensors" if os.fspath(path).endswith(".safetensors") else "npz"
    if format not in ("npz", "safetensors"):
        raise ValueError(f"format must be 'npz' or 'safetensors', received {format!r}")
    return format


def _write(path, manifest: dict, arrays: list, format, compress: bool) -> None:
    format = _format_of(path, format)
    text = json.dumps(manifest, allow_nan=False, sort_keys=True)
    if format == "safetensors":
        try:
            from safetensors.numpy import save as st_save
        except ImportError:
            raise ImportError("format 'safetensors' needs the safetensors package: pip install safetensors") from None
        blob = st_save({k: np.asarray(v, order="C") for k, v in arrays}, metadata={_SAFETENSORS_META_KEY: text})
        _atomic_write(path, lambda f: f.write(blob))
        return

    def write_zip(f):
        compression = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        with zipfile.ZipFile(f, "w", compression=compression, allowZip64=True) as zf:
            entries = [(_MANIFEST_KEY, np.frombuffer(text.encode("utf-8"), dtype=np.uint8))] + list(arrays)
            for key, value in entries:
                with zf.open(key + ".npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asarray(value, order="C"), allow_pickle=False)

    _atomic_write(path, write_zip)


def _collect(model, optimizer_state=None, extra=None):
    model_desc, param_entries = _describe_model(model)
    arrays, meta = [], {}
    for key, var in param_entries:
        value = backend.to_numpy(var)
        arrays.append((key, value))
        meta[key] = {"shape": list(value.shape), "dtype": value.dtype.name}
    manifest = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "model": model_desc}
    if optimizer_state is not None:
        opt_desc, opt_entries = _describe_optimizer(_optimizer_variables(optimizer_state))
        for key, var in opt_entries:
            value = backend.to_numpy(var)
            arrays.append((key, value))
            meta[key] = {"shape": list(value.shape), "dtype": value.dtype.name}
        manifest["optimizer"] = opt_desc
    if extra is not None:
        if not isinstance(extra, Mapping):
            raise TypeError(f"extra must be a dict, received {type(extra).__name__}")
        try:
            json.dumps(extra, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"extra must be JSON-serialisable (str keys, finite numbers, lists, dicts): {exc}") from None
        manifest["extra"] = dict(extra)
    manifest["arrays"] = meta
    return manifest, arrays


def save(path, model, format: str | None = None, compress: bool = False) -> None:
    """Save ``model``'s architecture and parameters to one file.

    Parameters
    ----------
    path : str or os.PathLike
        Destination, written atomically (no suffix is added).
    model : StackedCells or cell
        A :class:`~theano_lstm.StackedCells` (layers appended by hand
        included) or a single ``Layer``, ``Embedding``, ``RNN``, ``LSTM``,
        ``GRU`` or ``GatedInput``.
    format : {"npz", "safetensors"}, optional
        Default: ``"safetensors"`` when ``path`` ends with ``.safetensors``,
        else ``"npz"``.
    compress : bool
        Deflate the ``.npz`` entries.

    Raises
    ------
    TypeError
        ``model`` (or one of its layers) is not of a saveable class.
    ValueError
        A layer uses a custom (unregistered) activation, or a configuration
        value is not a finite JSON scalar.

    Notes
    -----
    Parameters shared between layers (the same shared variable in two places)
    are stored once and tied again on load.  Compiled functions keep using the
    shared variables they were built with; :func:`load` builds new ones.
    """
    manifest, arrays = _collect(model)
    _write(path, manifest, arrays, format, compress)


def save_checkpoint(path, model, optimizer_state=None, extra: Mapping | None = None,
                    format: str | None = None, compress: bool = False) -> None:
    """Save a training checkpoint: the model, the optimizer's state and ``extra``.

    Parameters
    ----------
    path, model, format, compress
        As for :func:`save`; the file is also a valid model file for :func:`load`.
    optimizer_state : list of shared variables or dict, optional
        The optimizer's accumulators (e.g. ``"LSTM.linear_matrix.adadelta_gsum"``),
        or the updates dict returned by an optimizer: its keys that are shared
        variables and not parameters of ``model`` are saved (random generators
        included, by bit-generator state).  Every variable needs a unique
        ``name``: they are matched by name on load.
    extra : dict, optional
        JSON-serialisable values (epoch, step, learning-rate schedule…),
        returned by :func:`load_checkpoint`.

    Raises
    ------
    ValueError
        An optimizer variable without a name, two with the same name, or an
        ``extra`` that is not JSON-serialisable; see also :func:`save`.
    """
    variables = _optimizer_variables(optimizer_state)
    model_vars = {id(p) for p in _all_params(model)}
    if isinstance(optimizer_state, Mapping):  # an updates dict also updates the parameters
        variables = [v for v in variables if id(v) not in model_vars]
    else:
        for v in variables:
            if id(v) in model_vars:
                raise ValueError(f"optimizer_state contains the model parameter {v.name!r}; parameters are saved with the model")
    manifest, arrays = _collect(model, variables, extra)
    _write(path, manifest, arrays, format, compress)


def _all_params(model) -> list:
    return [getattr(layer, attr) for layer in _layers_of(model) for attr in layer._param_attrs]


# ================================================================== reading


def _err(path, message):
    return ModelFormatError(f"{os.fspath(path)}: {message}")


def _check_dtype(dtype: np.dtype, allowed, where) -> np.dtype:
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise ModelFormatError(f"{where} has dtype {dtype}, which may hold Python objects; refused")
    if dtype.newbyteorder("=").name not in allowed:
        raise ModelFormatError(f"{where} has dtype {dtype}; expected one of {list(allowed)}")
    return dtype


def _check_shape_list(shape, where) -> tuple:
    if not isinstance(shape, list) or len(shape) > 8:
        raise ModelFormatError(f"{where}: shape must be a list of at most 8 ints, received {shape!r}")
    for s in shape:
        if isinstance(s, bool) or not isinstance(s, int) or s < 0 or s > 2**48:
            raise ModelFormatError(f"{where}: shape must hold non-negative ints, received {shape!r}")
    return tuple(shape)


def _nbytes(shape, dtype) -> int:
    n = int(np.dtype(dtype).itemsize)
    for s in shape:
        n *= int(s)
    return n


class _NpzReader:
    """Validated, lazy access to the arrays of an ``.npz`` file (never unpickles)."""

    def __init__(self, path, max_bytes: int):
        self.path = path
        size = os.path.getsize(path)
        if size > max_bytes:
            raise _err(path, f"file is {size} bytes, more than max_bytes={max_bytes}; pass a larger max_bytes to load it")
        with open(path, "rb") as f:
            magic = f.read(4)
        if magic[:1] == b"\x80":
            raise _err(path, "this is a pickle, not a .npz file; pickles are never loaded (they can run code)")
        if magic != b"PK\x03\x04":
            raise _err(path, f"not a .npz (zip) file: it starts with {magic!r}, expected b'PK\\x03\\x04'")
        try:
            self.zf = zipfile.ZipFile(path, "r")
            infos = self.zf.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
            raise _err(path, f"not a valid .npz (zip) file, possibly truncated ({exc})") from None
        try:
            self._index(infos, max_bytes)
        except BaseException:
            self.zf.close()
            raise
        self.headers: dict[str, tuple] = {}

    def _index(self, infos, max_bytes):
        path = self.path
        if len(infos) > MAX_ENTRIES:
            raise _err(path, f"{len(infos)} entries, more than the {MAX_ENTRIES} allowed")
        self.infos: dict[str, zipfile.ZipInfo] = {}
        total = 0
        for info in infos:
            name = info.filename
            if not name.endswith(".npy") or "/" in name or "\\" in name:
                raise _err(path, f"unexpected entry {name!r}: only top-level '.npy' arrays are allowed")
            key = name[: -len(".npy")]
            if key in self.infos:
                raise _err(path, f"entry {name!r} appears twice")
            if info.flag_bits & 0x1:
                raise _err(path, f"entry {name!r} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise _err(path, f"entry {name!r} uses compression method {info.compress_type}; expected stored or deflated")
            total += info.file_size
            self.infos[key] = info
        if total > max_bytes:
            raise _err(path, f"entries declare {total} bytes in all, more than max_bytes={max_bytes}")

    def close(self):
        self.zf.close()

    def keys(self) -> set:
        return set(self.infos)

    def _open_header(self, key):
        """Open ``key`` and read its npy header: (file, shape, fortran, dtype, header_len)."""
        info = self.infos[key]
        where = f"entry {key!r}"
        try:
            f = self.zf.open(info)
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy version {version}")
            header_len = f.tell()
        except ModelFormatError:
            raise
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, SyntaxError, TypeError) as exc:
            raise _err(self.path, f"{where} is not a valid .npy array ({exc})") from None
        return f, tuple(int(s) for s in shape), bool(fortran), np.dtype(dtype), header_len

    def header(self, key, allowed_dtypes):
        """Declared (shape, dtype) of ``key``, checked against the entry's declared size."""
        if key not in self.headers:
            f, shape, fortran, dtype, header_len = self._open_header(key)
            f.close()
            where = f"{os.fspath(self.path)}: entry {key!r}"
            _check_dtype(dtype, allowed_dtypes, where)
            declared = self.infos[key].file_size
            if header_len + _nbytes(shape, dtype) != declared:
                raise _err(self.path, f"entry {key!r} declares shape {shape} ({_nbytes(shape, dtype)} bytes of "
                                      f"{dtype}) but holds {declared - header_len} bytes of data")
            self.headers[key] = (shape, dtype.newbyteorder("=").name)
        return self.headers[key]

    def read(self, key) -> np.ndarray:
        f, shape, fortran, dtype, _ = self._open_header(key)
        nbytes = _nbytes(shape, dtype)
        try:
            with f:
                data = f.read(nbytes)
                if len(data) != nbytes:
                    raise _err(self.path, f"entry {key!r} is truncated: {len(data)} of {nbytes} bytes")
                f.read(1)  # reach the end of the entry so that zipfile checks its CRC
        except ModelFormatError:
            raise
        except (OSError, EOFError, zipfile.BadZipFile, ValueError) as exc:
            raise _err(self.path, f"entry {key!r} is corrupt or truncated ({exc})") from None
        arr = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
        return np.array(arr, dtype=dtype.newbyteorder("="), order="C")

    def manifest(self) -> dict:
        if _MANIFEST_KEY not in self.infos:
            raise _err(self.path, f"no {_MANIFEST_KEY!r} entry: not a theano_lstm model file")
        if self.infos[_MANIFEST_KEY].file_size > MAX_MANIFEST_BYTES:
            raise _err(self.path, f"manifest declares {self.infos[_MANIFEST_KEY].file_size} bytes, more than {MAX_MANIFEST_BYTES}")
        shape, _ = self.header(_MANIFEST_KEY, ("uint8",))
        if len(shape) != 1:
            raise _err(self.path, f"manifest must be a 1-d uint8 array, received shape {shape}")
        return _parse_manifest(self.path, self.read(_MANIFEST_KEY).tobytes())


_ST_DTYPES = {"F32": "float32", "F64": "float64", "F16": "float16", "I8": "int8", "I16": "int16",
              "I32": "int32", "I64": "int64", "U8": "uint8", "U16": "uint16", "U32": "uint32",
              "U64": "uint64", "BOOL": "bool"}


class _SafetensorsReader:
    """Validated access to a ``.safetensors`` file (header checked before any data is read)."""

    def __init__(self, path, max_bytes: int):
        self.path = path
        size = os.path.getsize(path)
        if size > max_bytes:
            raise _err(path, f"file is {size} bytes, more than max_bytes={max_bytes}; pass a larger max_bytes to load it")
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) != 8:
                raise _err(path, "truncated: no safetensors header")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_MANIFEST_BYTES or 8 + n > size:
                raise _err(path, f"safetensors header declares {n} bytes; the file has {size} and at most {MAX_MANIFEST_BYTES} are allowed")
            raw = f.read(n)
        header = _strict_json(path, raw, "safetensors header")
        if not isinstance(header, dict):
            raise _err(path, "safetensors header is not a JSON object")
        meta = header.pop("__metadata__", None)
        if not isinstance(meta, dict) or not isinstance(meta.get(_SAFETENSORS_META_KEY), str):
            raise _err(path, f"no {_SAFETENSORS_META_KEY!r} metadata: not a theano_lstm model file")
        self._manifest_text = meta[_SAFETENSORS_META_KEY].encode("utf-8")
        if len(header) > MAX_ENTRIES:
            raise _err(path, f"{len(header)} entries, more than the {MAX_ENTRIES} allowed")
        self.headers = {}
        spans = []
        for key, entry in header.items():
            where = f"entry {key!r}"
            if key == _MANIFEST_KEY:
                raise _err(path, f"unexpected entry {key!r}")
            if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
                raise _err(path, f"{where} is malformed")
            if entry["dtype"] not in _ST_DTYPES:
                raise _err(path, f"{where} has dtype {entry['dtype']!r}; expected one of {sorted(_ST_DTYPES)}")
            shape = _check_shape_list(entry["shape"], f"{os.fspath(path)}: {where}")
            dtype = _ST_DTYPES[entry["dtype"]]
            offsets = entry["data_offsets"]
            if (not isinstance(offsets, list) or len(offsets) != 2
                    or not all(isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offsets)
                    or offsets[1] - offsets[0] != _nbytes(shape, dtype)):
                raise _err(path, f"{where} declares shape {shape} of {dtype} but data offsets {offsets!r}")
            spans.append(tuple(offsets))
            self.headers[key] = (shape, dtype)
        spans.sort()
        end = 0
        for a, b in spans:
            if a != end:
                raise _err(path, "safetensors data offsets overlap or leave gaps")
            end = b
        if 8 + n + end != size:
            raise _err(path, f"file is {size} bytes but its header declares {8 + n + end} (truncated or padded)")

    def close(self):
        pass

    def keys(self) -> set:
        return set(self.headers) | {_MANIFEST_KEY}

    def header(self, key, allowed_dtypes):
        shape, dtype = self.headers[key]
        if dtype not in allowed_dtypes:
            raise _err(self.path, f"entry {key!r} has dtype {dtype}; expected one of {list(allowed_dtypes)}")
        return shape, dtype

    def read(self, key) -> np.ndarray:
        try:
            from safetensors import safe_open
        except ImportError:
            raise ImportError("reading .safetensors files needs the safetensors package: pip install safetensors") from None
        try:
            with safe_open(os.fspath(self.path), framework="np") as f:
                return np.array(f.get_tensor(key))
        except Exception as exc:  # noqa: BLE001 - any failure of the reader is a format error
            raise _err(self.path, f"entry {key!r} could not be read ({exc})") from None

    def manifest(self) -> dict:
        return _parse_manifest(self.path, self._manifest_text)


def _strict_json(path, raw: bytes, what: str):
    def no_constants(name):
        raise ValueError(f"{name} is not allowed")

    def no_duplicates(pairs):
        out = {}
        for k, v in pairs:
            if k in out:
                raise ValueError(f"duplicate key {k!r}")
            out[k] = v
        return out

    try:
        return json.loads(raw.decode("utf-8"), parse_constant=no_constants, object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _err(path, f"{what} is not valid JSON ({exc})") from None


def _parse_manifest(path, raw: bytes) -> dict:
    m = _strict_json(path, raw, "manifest")
    if not isinstance(m, dict):
        raise _err(path, "manifest is not a JSON object")
    if m.get("format") != FORMAT_NAME:
        raise _err(path, f"manifest format is {m.get('format')!r}, expected {FORMAT_NAME!r}")
    version = m.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise _err(path, f"format version {version!r} is not supported (this theano_lstm reads versions 1..{FORMAT_VERSION})")
    allowed = {"format", "version", "model", "arrays", "optimizer", "extra"}
    missing = {"model", "arrays"} - set(m)
    if missing or set(m) - allowed:
        raise _err(path, f"manifest keys {sorted(m)}; expected {sorted(allowed)} with 'model' and 'arrays' required")
    if not isinstance(m["arrays"], dict):
        raise _err(path, "manifest 'arrays' must be an object")
    for key, meta in m["arrays"].items():
        if not (_PARAM_KEY.match(key) or _OPT_KEY.match(key)):
            raise _err(path, f"unexpected array name {key!r}")
        if not isinstance(meta, dict) or set(meta) != {"shape", "dtype"}:
            raise _err(path, f"manifest entry for {key!r} must have exactly 'shape' and 'dtype'")
        _check_shape_list(meta["shape"], f"{os.fspath(path)}: {key}")
        allowed_dtypes = _FLOAT_DTYPES if key.startswith("layers.") else _OPT_DTYPES
        if meta["dtype"] not in allowed_dtypes:
            raise _err(path, f"array {key!r} has dtype {meta['dtype']!r}; expected one of {list(allowed_dtypes)}")
    if "extra" in m and not isinstance(m["extra"], dict):
        raise _err(path, "manifest 'extra' must be an object")
    return m


def _open(path, max_bytes):
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
        raise ValueError(f"max_bytes must be a positive int, received {max_bytes!r}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {os.fspath(path)}")
    with open(path, "rb") as f:
        head = f.read(4)
    reader = _NpzReader(path, max_bytes) if head[:2] == b"PK" or head[:1] == b"\x80" or len(head) < 4 \
        else _SafetensorsReader(path, max_bytes)
    try:
        manifest = reader.manifest()
        declared = set(manifest["arrays"])
        present = reader.keys() - {_MANIFEST_KEY}
        if present - declared:
            raise _err(path, f"unexpected entries {sorted(present - declared)} not listed in the manifest")
        if declared - present:
            raise _err(path, f"missing entries {sorted(declared - present)} listed in the manifest")
        for key, meta in manifest["arrays"].items():
            allowed = _FLOAT_DTYPES if key.startswith("layers.") else _OPT_DTYPES
            shape, dtype = reader.header(key, allowed)
            if list(shape) != meta["shape"] or dtype != meta["dtype"]:
                raise _err(path, f"entry {key!r} holds shape {tuple(shape)} {dtype} but the manifest says "
                                 f"{tuple(meta['shape'])} {meta['dtype']}")
    except BaseException:
        reader.close()
        raise
    return reader, manifest


def read_manifest(path, max_bytes: int = DEFAULT_MAX_BYTES) -> dict:
    """The validated JSON manifest of a model file (architecture, array shapes,
    optimizer entries and ``extra``), without reading any parameter data."""
    reader, manifest = _open(path, max_bytes)
    reader.close()
    return manifest


# ---------------------------------------------------------- rebuilding models


class _ParameterBudget:
    """Initializer that allocates zeros until the layer would exceed the elements the file holds.

    Passed as every ``*_init`` argument when a cell is rebuilt, so a manifest
    declaring a huge layer is refused at its first (input) matrix instead of
    allocating it; the values are overwritten from the file afterwards.
    """

    def __init__(self, limit: int):
        self.left = limit

    def __call__(self, shape, rng=None):
        n = _nbytes(shape, np.int8)
        if n > self.left:
            raise _BudgetExceeded(f"its config asks for a parameter of shape {tuple(shape)}, more than the file holds")
        self.left -= n
        return np.zeros(shape)


class _BudgetExceeded(ValueError):
    pass


def _initializer_args(cls) -> set:
    """Constructor arguments of ``cls`` that take initializers (``W_init``, ``b_init``…; not ``learn_init``)."""
    return {name for name, p in inspect.signature(cls.__init__).parameters.items()
            if name.endswith("_init") and not isinstance(p.default, bool)}


def _config_args(cls) -> set:
    """Constructor arguments of ``cls`` that a saved config may set."""
    return set(inspect.signature(cls.__init__).parameters) - _NOT_CONFIG - _initializer_args(cls)


def _check_layer_desc(path, k, desc) -> tuple[type, dict]:
    where = f"layer {k}"
    if not isinstance(desc, dict):
        raise _err(path, f"{where} must be an object")
    allowed = {"class", "dtype", "config", "activation", "gates", "params"}
    if not {"class", "dtype", "config", "params"} <= set(desc) <= allowed:
        raise _err(path, f"{where} has keys {sorted(desc)}; expected class, dtype, config, params (activation, gates optional)")
    cls_name = desc["class"]
    if not isinstance(cls_name, str) or cls_name not in CELL_CLASSES:
        raise _err(path, f"{where} has class {cls_name!r}; only {sorted(CELL_CLASSES)} can be loaded")
    cls = CELL_CLASSES[cls_name]
    if desc["dtype"] not in _FLOAT_DTYPES:
        raise _err(path, f"{where} has dtype {desc['dtype']!r}; expected one of {list(_FLOAT_DTYPES)}")
    config = desc["config"]
    if not isinstance(config, dict):
        raise _err(path, f"{where}: config must be an object")
    accepted = _config_args(cls)
    if set(config) - accepted:
        raise _err(path, f"{where}: unexpected {cls_name} arguments {sorted(set(config) - accepted)}")
    for key, value in config.items():
        if value is not None and not isinstance(value, (bool, int, float, str)):
            raise _err(path, f"{where}: config {key!r} must be a JSON scalar, received {type(value).__name__}")
        if key.endswith("_size") and (isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**31):
            raise _err(path, f"{where}: {key} must be a positive int, received {value!r}")
    if not isinstance(desc["params"], list) or not all(isinstance(a, str) for a in desc["params"]):
        raise _err(path, f"{where}: params must be a list of attribute names")
    if isinstance(config.get("name"), str) and len(config["name"]) > 1024:
        raise _err(path, f"{where}: name is longer than 1024 characters")
    if "gates" in desc and not isinstance(desc["gates"], dict):
        raise _err(path, f"{where}: gates must be an object")
    names = [desc.get("activation")] + list(desc.get("gates", {}).values())
    for key in ("activation", "gate_activation"):
        if key in config:
            names.append(config[key])
    for name in names:
        if name is not None and (not isinstance(name, str) or name not in _activation_names()):
            raise _err(path, f"{where}: activation {name!r} is not a registered name {_activation_names()}")
    return cls, config


def _rebuild_model(path, manifest):
    """(model, [(key, shared variable)]) from a validated manifest; no parameter data is read."""
    model_desc = manifest["model"]
    if not isinstance(model_desc, dict) or model_desc.get("type") not in ("cell", "StackedCells"):
        raise _err(path, "manifest 'model' must be an object with type 'cell' or 'StackedCells'")
    keys = {"type", "layers", "tied"} | ({"input_size", "celltype"} if model_desc["type"] == "StackedCells" else set())
    if set(model_desc) != keys:
        raise _err(path, f"manifest 'model' has keys {sorted(model_desc)}; expected {sorted(keys)}")
    layer_descs, tied = model_desc["layers"], model_desc["tied"]
    if not isinstance(layer_descs, list) or not isinstance(tied, dict):
        raise _err(path, "manifest 'model': layers must be a list and tied an object")
    if model_desc["type"] == "cell" and len(layer_descs) != 1:
        raise _err(path, f"a single-cell model must have 1 layer, the manifest lists {len(layer_descs)}")
    arrays = manifest["arrays"]
    param_keys = {k for k in arrays if k.startswith("layers.")}
    listed = {f"layers.{k}.{attr}" for k, desc in enumerate(layer_descs) if isinstance(desc, dict)
              for attr in (desc.get("params") if isinstance(desc.get("params"), list) else []) if isinstance(attr, str)}
    for key, source in tied.items():
        if key not in listed or not isinstance(source, str) or source in tied or source not in param_keys:
            raise _err(path, f"tied parameter {key!r} -> {source!r} does not name a stored parameter")
    if param_keys != listed - set(tied):
        extra = param_keys - listed
        raise _err(path, f"unexpected parameter arrays {sorted(extra)}" if extra
                   else f"missing parameter arrays {sorted(listed - set(tied) - param_keys)}")
    layers = []
    for k, desc in enumerate(layer_descs):
        cls, config = _check_layer_desc(path, k, desc)
        metas = {attr: arrays[tied.get(f"layers.{k}.{attr}", f"layers.{k}.{attr}")] for attr in desc["params"]}
        budget = _ParameterBudget(sum(_nbytes(m["shape"], np.int8) for m in metas.values()))
        inits = {a: budget for a in _initializer_args(cls)}
        try:
            layer = cls(**config, **inits, rng=0, dtype=desc["dtype"])
            if "activation" in desc:
                layer.activation = backend.get_activation(desc["activation"])
            gates = {gate.name: gate for gate in getattr(layer, "gates", ())}
            if set(desc.get("gates", {})) != set(gates):
                raise ValueError(f"it has gates {sorted(gates)}, the file lists {sorted(desc.get('gates', {}))}")
            for name, activation in desc.get("gates", {}).items():
                gates[name].activation = activation
        except (TypeError, ValueError) as exc:
            raise _err(path, f"layer {k} ({cls.__name__}) cannot be built from its config: {exc}") from None
        if list(layer._param_attrs) != desc["params"]:
            raise _err(path, f"layer {k} ({cls.__name__}) has parameters {list(layer._param_attrs)}, "
                             f"the file lists {desc['params']}")
        for attr, meta in metas.items():
            want = getattr(layer, attr).get_value(borrow=True).shape
            if tuple(meta["shape"]) != want or meta["dtype"] != desc["dtype"]:
                raise _err(path, f"parameter 'layers.{k}.{attr}' has shape {tuple(meta['shape'])} {meta['dtype']} "
                                 f"but a {cls.__name__} with this config has {want} {desc['dtype']}")
        layers.append(layer)
    if model_desc["type"] == "cell":
        model = layers[0]
    else:
        input_size, celltype = model_desc["input_size"], model_desc["celltype"]
        if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size <= 0:
            raise _err(path, f"StackedCells input_size must be a positive int, received {input_size!r}")
        if celltype not in CELL_CLASSES:
            raise _err(path, f"StackedCells celltype {celltype!r} is not one of {sorted(CELL_CLASSES)}")
        model = StackedCells(input_size, celltype=CELL_CLASSES[celltype], layers=[])
        model.layers.extend(layers)
    entries = [(f"layers.{k}.{attr}", getattr(layer, attr)) for k, layer in enumerate(layers) for attr in layer._param_attrs]
    return model, entries


def _fill_params(path, reader, manifest, entries) -> None:
    """Read the parameter arrays and set them into ``entries``' shared variables, tying where recorded."""
    tied = manifest["model"]["tied"]
    by_key = dict(entries)
    values = {}
    for key, var in entries:
        if key in tied:
            continue
        value = reader.read(key)
        want = var.get_value(borrow=True)
        if value.shape != want.shape or value.dtype != want.dtype:
            raise _err(path, f"parameter {key!r} holds {value.shape} {value.dtype}, expected {want.shape} {want.dtype}")
        values[key] = value
    for key, value in values.items():
        by_key[key].set_value(value)


def _tie(model, manifest) -> None:
    layers = _layers_of(model)
    for key, source in manifest["model"]["tied"].items():
        _, k, attr = key.split(".")
        _, ks, attr_s = source.split(".")
        shared = getattr(layers[int(ks)], attr_s)
        layer = layers[int(k)]
        values = [shared if a == attr else getattr(layer, a) for a in layer._param_attrs]
        layer.params = values


def load(path, max_bytes: int = DEFAULT_MAX_BYTES):
    """Rebuild a model saved by :func:`save` (or :func:`save_checkpoint`).

    Parameters
    ----------
    path : str or os.PathLike
        A ``.npz`` or ``.safetensors`` file (told apart by content).
    max_bytes : int
        Refuse files, or entry sizes declared in them, larger than this.

    Returns
    -------
    StackedCells or cell
        A new model with new shared variables, of the saved class, dtypes,
        activations (gates included) and parameter values.

    Raises
    ------
    ModelFormatError
        The file is not a theano_lstm model file, is malformed, truncated,
        too large, holds unexpected or missing entries, or names a class or
        activation outside the whitelists.
    FileNotFoundError
        ``path`` does not exist.
    """
    reader, manifest = _open(path, max_bytes)
    try:
        model, entries = _rebuild_model(path, manifest)
        _fill_params(path, reader, manifest, entries)
    finally:
        reader.close()
    _tie(model, manifest)
    return model


def _normalise(obj):
    return json.loads(json.dumps(obj, sort_keys=True))


def _first_difference(a, b, where="model"):
    """Where the JSON-like values ``a`` (the model) and ``b`` (the file) first differ, or None."""
    if type(a) is not type(b):
        return f"{where}: the model has {a!r}, the checkpoint {b!r}"
    if isinstance(a, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                return f"{where}.{key}: only the {'model' if key in a else 'checkpoint'} has it"
            d = _first_difference(a[key], b[key], f"{where}.{key}")
            if d:
                return d
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{where}: the model has {len(a)} items, the checkpoint {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            d = _first_difference(x, y, f"{where}[{i}]")
            if d:
                return d
        return None
    return None if a == b else f"{where}: the model has {a!r}, the checkpoint {b!r}"


def load_checkpoint(path, model, optimizer_state=None, max_bytes: int = DEFAULT_MAX_BYTES) -> dict:
    """Restore a checkpoint written by :func:`save_checkpoint` into existing objects.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint.
    model : StackedCells or cell
        A model of the *same architecture* (same classes, sizes, activations,
        names); its parameters' values are replaced in place, so functions
        compiled on it keep working.
    optimizer_state : list of shared variables or dict, optional
        The optimizer's shared variables (or its updates dict), matched by
        ``name`` with those saved; each gets the saved value.
    max_bytes : int
        As for :func:`load`.

    Returns
    -------
    dict
        The checkpoint's ``extra`` (empty when none was saved).

    Raises
    ------
    ModelFormatError
        Malformed file (see :func:`load`); an architecture different from
        ``model``'s; optimizer variables missing from the file, unexpected in
        it, or of another shape, dtype or kind.  Nothing is modified then.

    Examples
    --------
    >>> import os, tempfile
    >>> from theano_lstm import RNN, backend
    >>> cell = RNN(2, 3, rng=0)
    >>> velocity = backend.shared(np.zeros((2, 3)), name="RNN.linear_matrix.velocity")
    >>> path = os.path.join(tempfile.mkdtemp(), "ckpt.npz")
    >>> save_checkpoint(path, cell, [velocity], extra={"epoch": 3})
    >>> velocity.set_value(np.ones((2, 3)))
    >>> load_checkpoint(path, cell, [velocity])
    {'epoch': 3}
    >>> float(velocity.get_value().sum())
    0.0
    """
    reader, manifest = _open(path, max_bytes)
    try:
        own, entries = _describe_model(model)
        diff = _first_difference(_normalise(own), manifest["model"])
        if diff:
            raise _err(path, f"the checkpoint's architecture differs from the model's: {diff}")
        all_entries = [(f"layers.{k}.{attr}", getattr(layer, attr))
                       for k, layer in enumerate(_layers_of(model)) for attr in layer._param_attrs]
        # read and check every value before setting any
        staged = []
        tied = manifest["model"]["tied"]
        for key, var in all_entries:
            if key in tied:
                continue
            value = reader.read(key)
            want = var.get_value(borrow=True)
            want = backend.to_numpy(want) if not isinstance(want, np.ndarray) else want
            if value.shape != want.shape or value.dtype != want.dtype:
                raise _err(path, f"parameter {key!r} holds {value.shape} {value.dtype}, the model has {want.shape} {want.dtype}")
            staged.append((var, value))
        if optimizer_state is not None:
            variables = _optimizer_variables(optimizer_state)
            if isinstance(optimizer_state, Mapping):
                params = {id(v) for _, v in all_entries}
                variables = [v for v in variables if id(v) not in params]
            if "optimizer" not in manifest:
                raise _err(path, "the checkpoint holds no optimizer state (it was saved without optimizer_state)")
            staged.extend(_stage_optimizer(path, reader, manifest, manifest["optimizer"], variables))
    finally:
        reader.close()
    for var, value in staged:
        var.set_value(value)
    return dict(manifest.get("extra", {}))


def _stage_optimizer(path, reader, manifest, saved, variables) -> list:
    if not isinstance(saved, list):
        raise _err(path, "manifest 'optimizer' must be a list")
    by_name, used_keys = {}, set()
    for i, entry in enumerate(saved):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or entry.get("kind") not in ("array", "rng"):
            raise _err(path, f"optimizer entry {i} is malformed")
        keys = {"name", "kind", "key"} if entry["kind"] == "array" else {"name", "kind", "bit_generator", "state"}
        if set(entry) != keys:
            raise _err(path, f"optimizer entry {entry['name']!r} has keys {sorted(entry)}, expected {sorted(keys)}")
        if entry["name"] in by_name:
            raise _err(path, f"optimizer entry {entry['name']!r} appears twice")
        if entry["kind"] == "array":
            if not isinstance(entry["key"], str) or not _OPT_KEY.match(entry["key"]) or entry["key"] not in manifest["arrays"] or entry["key"] in used_keys:
                raise _err(path, f"optimizer entry {entry['name']!r} refers to a missing array {entry['key']!r}")
            used_keys.add(entry["key"])
        by_name[entry["name"]] = entry
    opt_arrays = {k for k in manifest["arrays"] if k.startswith("optimizer.")}
    if opt_arrays - used_keys:
        raise _err(path, f"unexpected optimizer arrays {sorted(opt_arrays - used_keys)}")
    wanted = {v.name: v for v in variables}
    for var in variables:
        _check_name(var, f"optimizer variable {var!r}")
    if set(wanted) - set(by_name):
        raise _err(path, f"optimizer variables {sorted(set(wanted) - set(by_name))} are not in the checkpoint")
    if set(by_name) - set(wanted):
        raise _err(path, f"the checkpoint holds optimizer variables {sorted(set(by_name) - set(wanted))} "
                         "that were not passed in optimizer_state")
    staged = []
    for name, var in wanted.items():
        entry = by_name[name]
        current = var.get_value(borrow=True)
        if entry["kind"] == "rng":
            if not isinstance(current, np.random.Generator):
                raise _err(path, f"optimizer variable {name!r} was saved as a random generator but is a {type(current).__name__}")
            if entry["bit_generator"] not in _BIT_GENERATORS:
                raise _err(path, f"random generator {name!r}: bit generator {entry['bit_generator']!r} not one of {list(_BIT_GENERATORS)}")
            gen = np.random.Generator(getattr(np.random, entry["bit_generator"])())
            try:
                gen.bit_generator.state = _rng_state_from_json(entry["state"], f"random generator {name!r}")
            except (TypeError, ValueError, KeyError, OverflowError) as exc:
                raise _err(path, f"random generator {name!r} has an invalid state ({exc})") from None
            staged.append((var, gen))
            continue
        if isinstance(current, np.random.Generator):
            raise _err(path, f"optimizer variable {name!r} is a random generator but was saved as an array")
        current = backend.to_numpy(current)
        value = reader.read(entry["key"])
        if value.shape != current.shape or value.dtype != current.dtype:
            raise _err(path, f"optimizer variable {name!r} holds {value.shape} {value.dtype} in the checkpoint, "
                             f"expected {current.shape} {current.dtype}")
        staged.append((var, value))
    return staged
