"""theano_lstm: LSTM, GRU and RNN cells for PyTensor, the continuation of Theano.

The 2014 ``theano_lstm`` API (``StackedCells``, ``LSTM``, ``Layer``,
``forward``, ``initial_hidden_state``, ``create_optimization_updates``,
``masked_loss``, ``MultiDropout``) on a modern, tested core.
"""

from . import backend, dropout, init, io, losses, optimizers, sampling, torch_interop
from .backend import clip_gradient, get_mode, set_default_mode, use_float32
from .layer_norm import LayerNormGRU, LayerNormLSTM
from .layers import GRU, LSTM, RNN, Embedding, GatedInput, Gate, Layer, split_lstm_state
from .dropout import Dropout, MultiDropout, dropout_masks
from .losses import binary_crossentropy, categorical_crossentropy, masked_loss, squared_error
from .io import ModelFormatError, load, load_checkpoint, save, save_checkpoint
from .optimizers import create_optimization_updates
from .sampling import Sampler
from .stacked import SequenceResult, StackedCells, bidirectional

__version__ = "0.1.0"

__all__ = [
    "Layer",
    "Embedding",
    "RNN",
    "LSTM",
    "GRU",
    "GatedInput",
    "LayerNormLSTM",
    "LayerNormGRU",
    "Gate",
    "StackedCells",
    "SequenceResult",
    "bidirectional",
    "split_lstm_state",
    "clip_gradient",
    "get_mode",
    "set_default_mode",
    "use_float32",
    "create_optimization_updates",
    "masked_loss",
    "categorical_crossentropy",
    "binary_crossentropy",
    "squared_error",
    "Dropout",
    "MultiDropout",
    "dropout_masks",
    "save",
    "load",
    "save_checkpoint",
    "load_checkpoint",
    "ModelFormatError",
    "Sampler",
    "losses",
    "dropout",
    "io",
    "sampling",
    "backend",
    "init",
    "optimizers",
]
