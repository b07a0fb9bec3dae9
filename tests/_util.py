"""Shared test helpers (markers and small utilities)."""

import importlib.util
import pathlib

import pytest


def has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


requires_jax = pytest.mark.skipif(not has_module("jax"), reason="jax is not installed")
requires_torch = pytest.mark.skipif(not has_module("torch"), reason="torch is not installed")


EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str):
    """Import ``examples/<name>.py`` (the examples import ``_common`` and each other by file name)."""
    import importlib
    import sys

    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    return importlib.import_module(name)
