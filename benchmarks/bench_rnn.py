"""Training and inference throughput of theano_lstm vs a hand-written scan vs PyTorch.

Every case runs in its own subprocess (clean peak-RSS reading, no cross-talk
between compile caches); the parent prints one table with sequences per second
and ratios to PyTorch measured in the same run.

Examples
--------
python benchmarks/bench_rnn.py                                  # S, M, L1 x LSTM, GRU, train + infer
python benchmarks/bench_rnn.py --configs S --cells lstm --modes c jax --impls runner raw torch
python benchmarks/bench_rnn.py --json results.json              # also write the raw numbers

A training step is forward + mean-squared-error loss on the top hidden state +
backpropagation through time + a plain SGD update, float32.  Inference is the
forward pass returning the last hidden state.  PyTorch runs with 2 threads,
first and again last in each group of rows; the ratios use the mean of its two rates
(the row printed as a case finishes uses the rates known so far).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

CONFIGS = {
    # name: (batch, time, input, hidden)
    "S": (32, 50, 64, 128),
    "M": (64, 100, 128, 256),
    "L1": (1, 100, 7, 10),
    "L": (128, 100, 256, 512),
}
IMPLS = ("runner", "runner_precompute", "runner_fused", "forward", "raw", "torch")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _time_calls(call, repeats: int, min_seconds: float) -> list[float]:
    times = []
    start = time.perf_counter()
    while len(times) < repeats or (time.perf_counter() - start < min_seconds and len(times) < 50):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return times


def run_library_case(case: dict) -> dict:
    import numpy as np
    import pytensor
    import pytensor.tensor as pt

    import theano_lstm as tl
    from theano_lstm import backend

    tl.use_float32()
    B, T, I, H = CONFIGS[case["config"]]
    cell = case["cell"]
    rng = np.random.default_rng(0)
    # JAX mode needs a batch of one declared when the graph is built
    static_b = B if B == 1 else None
    x = pt.tensor3("x", shape=(None, static_b, None))
    y = pt.tensor3("y", shape=(None, static_b, None))
    if case["impl"] == "raw":
        hs, params = _raw_scan(x, I, H, cell, rng)
    else:
        celltype = tl.LSTM if cell == "lstm" else tl.GRU
        kw = {"reset": "after"} if cell == "gru" else {}
        model = tl.StackedCells(I, celltype=celltype, layers=[H], rng=0, **kw)
        params = model.params
        if case["impl"].startswith("runner"):
            hs = model.scan(x, precompute=case["impl"] == "runner_precompute", fused=case["impl"] == "runner_fused").outputs
        else:  # the 2014 tutorial style: a user-written scan around forward()
            layer = model.layers[0]
            init = model.initial_hidden_states(x[0])

            def step(x_t, prev):
                return model.forward(x_t, [prev])[0]

            (states,) = backend.scan(step, sequences=[x], outputs_info=[init[0]], non_sequences=None, strict=False)
            hs = layer.postprocess_activation(states)
    X = rng.normal(size=(T, B, I)).astype("float32")
    Y = rng.normal(size=(T, B, H)).astype("float32")
    t0 = time.perf_counter()
    if case["what"] == "train":
        loss = ((hs - y) ** 2).mean()
        grads = pytensor.grad(loss, params)
        lr = np.float32(0.01)
        f = backend.function([x, y], loss, updates=[(p, p - lr * g) for p, g in zip(params, grads)], mode=case["mode"])
        args = (X, Y)
    else:
        f = backend.function([x], hs[-1], mode=case["mode"])
        args = (X,)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = f(*args)
    if hasattr(out, "block_until_ready"):
        out.block_until_ready()
    first_call_s = time.perf_counter() - t0

    def call():
        r = f(*args)
        if hasattr(r, "block_until_ready"):
            r.block_until_ready()

    for _ in range(2):
        call()
    times = _time_calls(call, case["repeats"], case["min_seconds"])
    return dict(compile_s=compile_s, first_call_s=first_call_s, times=times, batch=B)


def _raw_scan(x, I, H, cell, rng):
    """The best hand-written PyTensor scan we know, independent of the library."""
    import numpy as np
    import pytensor
    import pytensor.tensor as pt

    G = 4 if cell == "lstm" else 3

    def shared(shape, name):
        v = (rng.standard_normal(shape) / shape[0]).astype("float32")
        return pytensor.shared(v, name=name, shape=v.shape)

    W, U, b = shared((I, G * H), "W"), shared((H, G * H), "U"), pytensor.shared(np.zeros(G * H, "float32"), shape=(G * H,))
    zeros = pt.zeros_like(x[0, :, :1]) + pt.zeros((H,), dtype="float32")
    if cell == "lstm":
        def step(x_t, c, h, W, U, b):
            z = pt.dot(x_t, W) + pt.dot(h, U) + b
            i, f, o = pt.sigmoid(z[:, :H]), pt.sigmoid(z[:, H:2 * H]), pt.sigmoid(z[:, 3 * H:])
            c = f * c + i * pt.tanh(z[:, 2 * H:3 * H])
            return c, o * pt.tanh(c)

        (_, hs) = pytensor.scan(step, sequences=[x], outputs_info=[zeros, zeros], non_sequences=[W, U, b],
                                strict=True, return_updates=False)
        return hs, [W, U, b]
    c = pytensor.shared(np.zeros(G * H, "float32"), shape=(G * H,))

    def step(x_t, h, W, U, b, c):
        xw = pt.dot(x_t, W) + b
        hu = pt.dot(h, U) + c
        r = pt.sigmoid(xw[:, :H] + hu[:, :H])
        z = pt.sigmoid(xw[:, H:2 * H] + hu[:, H:2 * H])
        n = pt.tanh(xw[:, 2 * H:] + r * hu[:, 2 * H:])
        return (1 - z) * n + z * h

    hs = pytensor.scan(step, sequences=[x], outputs_info=[zeros], non_sequences=[W, U, b, c],
                       strict=True, return_updates=False)
    return hs, [W, U, b, c]


def run_torch_case(case: dict) -> dict:
    import torch

    torch.set_num_threads(case.get("threads", 2))
    B, T, I, H = CONFIGS[case["config"]]
    torch.manual_seed(0)
    net = (torch.nn.LSTM if case["cell"] == "lstm" else torch.nn.GRU)(I, H)
    X = torch.randn(T, B, I)
    Y = torch.randn(T, B, H)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    if case["what"] == "train":
        def call():
            opt.zero_grad(set_to_none=True)
            out, _ = net(X)
            loss = ((out - Y) ** 2).mean()
            loss.backward()
            opt.step()
    else:
        def call():
            with torch.no_grad():
                out, _ = net(X)
            return out[-1]
    t0 = time.perf_counter()
    call()
    first_call_s = time.perf_counter() - t0
    for _ in range(2):
        call()
    times = _time_calls(call, case["repeats"], case["min_seconds"])
    return dict(compile_s=0.0, first_call_s=first_call_s, times=times, batch=B)


def child(case: dict) -> None:
    if case["impl"] == "torch":
        result = run_torch_case(case)
    else:
        result = run_library_case(case)
    result["peak_rss_mb"] = _peak_rss_mb()
    print("RESULT " + json.dumps(result), flush=True)


def run_case(case: dict, env: dict) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--case", json.dumps(case)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"error": " | ".join(tail)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["S", "M", "L1"], choices=sorted(CONFIGS))
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru"], choices=["lstm", "gru"])
    parser.add_argument("--impls", nargs="+", default=["runner", "raw", "torch"], choices=IMPLS)
    parser.add_argument("--modes", nargs="+", default=["c", "numba", "jax"], help="library compile modes")
    parser.add_argument("--what", nargs="+", default=["train", "infer"], choices=["train", "infer"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--min-seconds", type=float, default=3.0)
    parser.add_argument("--json", help="write all results to this file")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        child(json.loads(args.case))
        return
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "2")
    rows = []
    for config in args.configs:
        for cell in args.cells:
            for what in args.what:
                torch_rate = None
                # PyTorch runs first and again last in each group: the machine's speed drifts,
                # so the ratios use the mean of the two rates and the table shows both.
                order = [i for i in args.impls if i != "torch"]
                if "torch" in args.impls:
                    order = ["torch"] + order + (["torch"] if order else [])
                group = []
                for impl in order:
                    for mode in (["-"] if impl == "torch" else args.modes):
                        case = dict(config=config, cell=cell, what=what, impl=impl, mode=mode,
                                    repeats=args.repeats, min_seconds=args.min_seconds)
                        res = run_case(case, env)
                        res.update(case)
                        if "times" in res:
                            res["median_s"] = statistics.median(res["times"])
                            res["min_s"] = min(res["times"])
                            res["seq_per_s"] = res["batch"] / res["median_s"]
                            if impl == "torch":
                                torch_rate = res["seq_per_s"] if torch_rate is None else (torch_rate + res["seq_per_s"]) / 2
                        group.append(res)
                        _print_row(res, torch_rate)
                for res in group:
                    if torch_rate and "seq_per_s" in res:
                        res["vs_torch"] = res["seq_per_s"] / torch_rate
                rows.extend(group)
                if len([r for r in group if r["impl"] == "torch"]) == 2:
                    print(f"{'':6} {'':5} {'':6} ratios against the mean PyTorch rate, {torch_rate:.1f} seq/s:  "
                          + "  ".join(f"{r['impl']}/{r['mode']} {r['vs_torch']:.2f}" for r in group
                                      if r["impl"] != "torch" and "vs_torch" in r), flush=True)
    print()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(machine=platform.uname()._asdict(), date=time.strftime("%Y-%m-%d"), rows=rows), fh, indent=1)


_HEADER_PRINTED = False


def _print_row(res: dict, torch_rate):
    global _HEADER_PRINTED
    if not _HEADER_PRINTED:
        print(f"{'config':6} {'cell':5} {'what':6} {'impl':17} {'mode':6} {'seq/s':>9} {'median ms':>10} {'min ms':>8} "
              f"{'vs torch':>8} {'compile s':>9} {'1st call s':>10} {'peak MB':>8}")
        _HEADER_PRINTED = True
    if "error" in res:
        print(f"{res['config']:6} {res['cell']:5} {res['what']:6} {res['impl']:17} {res['mode']:6} ERROR {res['error'][:120]}")
        return
    ratio = f"{res['seq_per_s'] / torch_rate:8.2f}" if torch_rate else f"{'-':>8}"
    print(f"{res['config']:6} {res['cell']:5} {res['what']:6} {res['impl']:17} {res['mode']:6} {res['seq_per_s']:9.1f} "
          f"{1e3 * res['median_s']:10.2f} {1e3 * res['min_s']:8.2f} {ratio} {res['compile_s']:9.2f} "
          f"{res['first_call_s']:10.2f} {res['peak_rss_mb']:8.0f}", flush=True)


if __name__ == "__main__":
    main()
