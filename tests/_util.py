"""Shared test helpers (markers and small utilities)."""

import importlib.util

import pytest


def has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


requires_jax = pytest.mark.skipif(not has_module("jax"), reason="jax is not installed")
requires_torch = pytest.mark.skipif(not has_module("torch"), reason="torch is not installed")
