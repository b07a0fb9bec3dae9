"""Time to first result: compile times per mode (cold and warm caches) and the flagship's first epoch.

Not part of the test suite.  Every measurement runs in a fresh subprocess
whose compile caches (PyTensor's compiledir, Numba's cache, JAX's persistent
cache) point at a private temporary folder, so "cold" really is cold and
"warm" is the same folder used a second time.

Examples
--------
python benchmarks/bench_startup.py                       # compile table + flagship
python benchmarks/bench_startup.py --modes c jax --skip-flagship
python benchmarks/bench_startup.py --json startup.json

Compile table
    A one-layer LSTM training function built with the runner (forward, MSE,
    BPTT, SGD updates; batch 16, 20 steps, 7 inputs, ``--hidden`` units).
    ``cold``: empty caches; ``warm``: the same graph again in a new process
    with the caches the cold run filled; ``new graph``: a different hidden
    size with those warm caches.  Each row gives the seconds from the start
    of ``function()`` to the end of the first call, and the process's total
    wall time including imports.
Flagship
    ``examples/embedded_reber.py`` at its defaults with cold caches: the
    seconds from starting the command to the first finished epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def cache_env(folder: str) -> dict:
    """Environment whose compile caches all live under ``folder``."""
    env = dict(os.environ)
    flags = [f for f in env.get("PYTENSOR_FLAGS", "").split(",") if f and not f.startswith("base_compiledir")]
    env["PYTENSOR_FLAGS"] = ",".join(flags + [f"base_compiledir={os.path.join(folder, 'pytensor')}"])
    env["NUMBA_CACHE_DIR"] = os.path.join(folder, "numba")
    env["THEANO_LSTM_JAX_CACHE"] = os.path.join(folder, "jax")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def child(hidden: int, mode: str) -> None:
    t_start = time.perf_counter()
    import numpy as np
    import pytensor
    import pytensor.tensor as pt

    import theano_lstm as tl
    from theano_lstm import backend

    tl.use_float32()
    t_import = time.perf_counter() - t_start
    model = tl.StackedCells(7, celltype=tl.LSTM, layers=[hidden], rng=0)
    x, y = pt.tensor3("x"), pt.tensor3("y")
    hs = model.scan(x).outputs
    loss = ((hs - y) ** 2).mean()
    grads = pytensor.grad(loss, model.params)
    updates = [(p, p - np.float32(0.1) * g) for p, g in zip(model.params, grads)]
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 16, 7)).astype("float32")
    Y = rng.normal(size=(20, 16, hidden)).astype("float32")
    t0 = time.perf_counter()
    f = backend.function([x, y], loss, updates=updates, mode=mode)
    value = float(np.asarray(f(X, Y)))
    first = time.perf_counter() - t0
    assert np.isfinite(value)
    print("RESULT " + json.dumps(dict(import_s=t_import, compile_first_s=first)), flush=True)


def run_child(hidden: int, mode: str, env: dict) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", str(hidden), mode],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            res = json.loads(line[7:])
            res["process_s"] = wall
            return res
    return {"error": " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])}


def compile_table(modes, hidden: int) -> list:
    rows = []
    print(f"{'mode':13} {'cache':10} {'compile+1st call s':>18} {'process s':>10} {'import s':>9}")
    for mode in modes:
        folder = tempfile.mkdtemp(prefix=f"tl-startup-{mode}-")
        try:
            env = cache_env(folder)
            for label, h in (("cold", hidden), ("warm", hidden), ("new graph", hidden + 8)):
                res = run_child(h, mode, env)
                res.update(mode=mode, cache=label, hidden=h)
                rows.append(res)
                if "error" in res:
                    print(f"{mode:13} {label:10} ERROR {res['error'][:150]}", flush=True)
                else:
                    print(f"{mode:13} {label:10} {res['compile_first_s']:18.1f} {res['process_s']:10.1f} "
                          f"{res['import_s']:9.1f}", flush=True)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return rows


_FIRST_EPOCH = re.compile(r"(?<![\d/])1/\d+")


def flagship_first_epoch(extra_args) -> dict:
    """Seconds from starting the flagship (cold caches) to its first finished epoch."""
    folder = tempfile.mkdtemp(prefix="tl-startup-flagship-")
    try:
        env = cache_env(folder)
        cmd = [sys.executable, os.path.join(ROOT, "examples", "embedded_reber.py"), *extra_args]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        first, buf, text = None, b"", []
        while True:
            chunk = proc.stdout.read1(4096)
            if not chunk:
                break
            buf += chunk
            *segments, buf = re.split(rb"[\r\n]", buf)
            for seg in segments:
                line = seg.decode("utf-8", "replace")
                if line.strip():
                    text.append(line)
                if first is None and "epoch" in line.lower() and _FIRST_EPOCH.search(line):
                    first = time.perf_counter() - t0
                    print(f"first epoch finished after {first:.1f} s: {line.strip()[:100]}", flush=True)
        proc.wait()
        total = time.perf_counter() - t0
        return dict(first_epoch_s=first, total_s=total, returncode=proc.returncode, tail=text[-8:])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", nargs="+", default=["fast_compile", "c", "numba", "jax"])
    parser.add_argument("--hidden", type=int, default=24)
    parser.add_argument("--skip-compile", action="store_true")
    parser.add_argument("--skip-flagship", action="store_true")
    parser.add_argument("--flagship-args", nargs=argparse.REMAINDER, default=[],
                        help="arguments passed on to embedded_reber.py (put last)")
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(int(args.child[0]), args.child[1])
        return
    out = {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count()}
    if not args.skip_compile:
        out["compile"] = compile_table(args.modes, args.hidden)
    if not args.skip_flagship:
        res = flagship_first_epoch(args.flagship_args)
        out["flagship"] = res
        print(f"flagship: first epoch after {res['first_epoch_s']} s, whole run {res['total_s']:.1f} s "
              f"(exit {res['returncode']})")
        print("\n".join("  " + line for line in res["tail"]))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
