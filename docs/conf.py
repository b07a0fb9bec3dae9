"""Sphinx configuration (built in CI with warnings as errors)."""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

project = "theano_lstm"
author = "theano_lstm developers"
copyright = "2026, theano_lstm developers"
release = "0.1.0"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
]
autosummary_generate = True
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": True}
exclude_patterns = ["_build"]
html_theme = "alabaster"
nitpicky = False
