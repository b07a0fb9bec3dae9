"""The code users copy: README and getting-started snippets must run as written."""

import pathlib
import re

import pytensor

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _python_blocks(text: str, rst: bool) -> list[str]:
    if rst:
        blocks = re.findall(r"\.\. code-block:: python\n\n((?:   .*\n|\n)+)", text)
        return ["\n".join(line[3:] for line in b.splitlines()) for b in blocks]
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def _run(code: str) -> dict:
    old = pytensor.config.floatX
    namespace: dict = {}
    try:
        exec(compile(code, "<snippet>", "exec"), namespace)
    finally:
        pytensor.config.floatX = old
    return namespace


def test_readme_python_snippets_run():
    blocks = _python_blocks((ROOT / "README.md").read_text(), rst=False)
    assert blocks, "the README has no python snippet"
    for code in blocks:
        ns = _run(code)
    assert "predict" in ns  # the first-model snippet compiled its function


def test_getting_started_first_model_trains():
    blocks = _python_blocks((ROOT / "docs" / "getting_started.rst").read_text(), rst=True)
    ns = _run(blocks[0])
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 2, 7)).astype("float32")
    y = rng.integers(0, 7, size=(5, 2)).astype("int32")
    m = np.ones((5, 2), "float32")
    first = float(ns["train"](x, m, y))
    for _ in range(20):
        last = float(ns["train"](x, m, y))
    assert last < first
