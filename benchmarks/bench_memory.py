"""Peak memory and time of BPTT on a long sequence: plain runner vs ``checkpoint_every``.

Each variant runs in its own subprocess so its peak RSS is its own.

python benchmarks/bench_memory.py --steps 2000 --batch 32 --hidden 256 --every 50
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def child(args) -> None:
    import numpy as np
    import pytensor
    import pytensor.tensor as pt

    import theano_lstm as tl
    from theano_lstm import backend

    tl.use_float32()
    model = tl.StackedCells(args.input, celltype=tl.LSTM, layers=[args.hidden] * args.layers, rng=0)
    x = pt.tensor3("x")
    every = args.every if args.variant == "checkpointed" else None
    out = model.scan(x, checkpoint_every=every).outputs
    loss = (out ** 2).mean()
    grads = pytensor.grad(loss, model.params)
    lr = np.float32(0.01)
    t0 = time.perf_counter()
    f = backend.function([x], loss, updates=[(p, p - lr * g) for p, g in zip(model.params, grads)], mode=args.mode)
    compile_s = time.perf_counter() - t0
    X = np.random.default_rng(0).normal(size=(args.steps, args.batch, args.input)).astype("float32")
    base_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    np.asarray(f(X))  # JAX compiles here, at the first call for this shape (asarray waits for the result)
    compile_s += time.perf_counter() - t0
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        np.asarray(f(X))  # JAX dispatches asynchronously: wait for the value
        times.append(time.perf_counter() - t0)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(dict(compile_s=compile_s, median_s=statistics.median(times),
                                      peak_mb=peak_mb, before_first_call_mb=base_mb)), flush=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--input", type=int, default=64)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--every", type=int, default=50)
    p.add_argument("--mode", default="c")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--variant", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.variant:
        child(args)
        return
    print(f"LSTM {args.layers}x{args.hidden}, input {args.input}, batch {args.batch}, {args.steps} steps, "
          f"mode {args.mode}, checkpoint every {args.every}")
    print(f"{'variant':14} {'step s':>8} {'peak RSS MB':>12} {'RSS before 1st call':>20} {'compile+1st s':>14}")
    for variant in ("plain", "checkpointed"):
        cmd = [sys.executable, os.path.abspath(__file__), "--variant", variant] + [
            a for a in (argv if argv is not None else sys.argv[1:])]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            print(f"{variant:14} ERROR {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
            continue
        r = json.loads(line[7:])
        print(f"{variant:14} {r['median_s']:8.2f} {r['peak_mb']:12.0f} {r['before_first_call_mb']:20.0f} {r['compile_s']:14.1f}")


if __name__ == "__main__":
    main()
