"""PyTorch side of ember-bench: the same ops, sizes, passes and timing rule.

    /usr/bin/python3 bench/torch_ops.py OP SIZES [--dtype f32|f64] [--threads N] [--backward]
                                        [--time S] [--axis A|all] [--stride S] [--padding same|valid]
                                        [--ksize K]

takes ember-bench's arguments (NHWC shapes and HWIO filters are transposed to
PyTorch's NCHW and OIHW) and prints one JSON line per row, in ember-bench's
order, with its keys op, shape, dtype, threads, pass, samples, min_us,
median_us, max_us, plus impl "torch" and, for a row PyTorch cannot run the
same way, median_us null and a note. Timing follows em_bench_run: warm-up in
doubling batches, samples of >= 50 us, stop at a 2% interquartile spread or
the time budget. Prints {"unavailable": reason} if torch cannot be imported.
"""
import argparse
import bisect
import json
import math
import os
import sys
import time


def parse_args(argv):
    p = argparse.ArgumentParser()
    p.add_argument("op")
    p.add_argument("sizes", nargs="*")
    p.add_argument("--dtype", default="f32", choices=["f32", "f64", "float32", "float64"])
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--backward", action="store_true")
    p.add_argument("--json", action="store_true")  # accepted for symmetry: output is always JSON
    p.add_argument("--time", type=float, default=1.0)
    p.add_argument("--peak", type=float, default=0.0)  # ignored: PyTorch rows report times
    p.add_argument("--png", default=None)  # ignored
    p.add_argument("--axis", default=None)
    p.add_argument("--stride", default=None)
    p.add_argument("--padding", default=None)
    p.add_argument("--ksize", default="2")
    return p.parse_args(argv)


args = parse_args(sys.argv[1:])
threads = args.threads or os.cpu_count() or 1
os.environ["OMP_NUM_THREADS"] = str(threads)
os.environ["OPENBLAS_NUM_THREADS"] = str(threads)
os.environ["MKL_NUM_THREADS"] = str(threads)
try:
    import torch
    import torch.nn.functional as F
except ImportError as e:
    print(json.dumps({"unavailable": f"torch not importable by {sys.executable}: {e}"}))
    sys.exit(0)
torch.set_num_threads(threads)
torch.manual_seed(0)
DTYPE = torch.float64 if args.dtype in ("f64", "float64") else torch.float32
DT = "f64" if DTYPE == torch.float64 else "f32"


def bench(fn, max_time):
    """em_bench_run's rule; returns (samples, min, median, max) seconds per call."""
    min_time, warmup, min_sample, target = max_time / 4, min(0.05, max_time / 4), 50e-6, 0.02
    start, batch = time.perf_counter(), 1
    while True:
        t = time.perf_counter()
        for _ in range(batch):
            fn()
        batch_s = time.perf_counter() - t
        if batch_s >= min_sample and time.perf_counter() - start >= warmup:
            break
        if batch_s < min_sample:
            batch *= 2
    calls = max(1, math.ceil(min_sample / (batch_s / batch))) if batch_s > 0 else batch
    s = []

    def q(p):
        pos = p * (len(s) - 1)
        i = int(pos)
        return s[-1] if i >= len(s) - 1 else s[i] + (pos - i) * (s[i + 1] - s[i])

    start = time.perf_counter()
    while True:
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        end = time.perf_counter()
        bisect.insort(s, (end - t) / calls)
        if len(s) >= 10000 or end - start >= max_time:
            break
        med = q(0.5)
        if len(s) >= 5 and end - start >= min_time and med > 0 and (q(0.75) - q(0.25)) / med <= target:
            break
    return len(s), s[0], q(0.5), s[-1]


def dims(text):
    return [int(d) for d in text.split("x")]


def rand(*shape, grad=False):
    return (torch.rand(*shape, dtype=DTYPE) + 0.5).requires_grad_(grad)


def tf_same_pads(size, k, stride):
    """TensorFlow's SAME padding (before, after) along one axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return total // 2, total - total // 2


def pair(text, default):
    if text is None:
        return default
    d = dims(text)
    return (d[0], d[-1])


UNARY = {"neg": torch.neg, "abs": torch.abs, "square": torch.square, "sqrt": torch.sqrt, "rsqrt": torch.rsqrt,
         "exp": torch.exp, "log": torch.log, "log1p": torch.log1p, "relu": torch.relu, "elu": F.elu,
         "sigmoid": torch.sigmoid, "tanh": torch.tanh, "softplus": F.softplus, "gelu": F.gelu}
BINARY = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div, "pow": torch.pow,
          "maximum": torch.maximum, "minimum": torch.minimum}
REDUCE = {"sum": torch.sum, "mean": torch.mean, "max": torch.amax, "min": torch.amin,
          "prod": None, "log_sum_exp": torch.logsumexp}


def make_case(op, items, grad):
    """(shape text, forward fn, differentiable inputs) or (shape text, None, note)."""
    if op in UNARY or op in BINARY:
        shape = dims(items[0])
        xs = [rand(*shape, grad=grad) for _ in range(1 if op in UNARY else 2)]
        f = UNARY.get(op) or BINARY[op]
        return items[0], (lambda: f(*xs)), xs
    if op in REDUCE:
        shape = dims(items[0])
        x = rand(*shape, grad=grad)
        axis = None if args.axis in (None, "all") else int(args.axis)
        if op == "prod":
            f = (lambda: torch.prod(x)) if axis is None else (lambda: torch.prod(x, axis))
        elif axis is None:
            alldims = tuple(range(len(shape)))
            f = lambda: REDUCE[op](x, alldims)
        else:
            f = lambda: REDUCE[op](x, axis)
        return items[0], f, [x]
    if op in ("softmax", "log_softmax"):
        x = rand(*dims(items[0]), grad=grad)
        axis = -1 if args.axis is None else int(args.axis)
        f = torch.softmax if op == "softmax" else torch.log_softmax
        return items[0], (lambda: f(x, axis)), [x]
    if op == "matmul":
        d = dims(items[0])
        m, n, k = (d[0], d[0], d[0]) if len(d) == 1 else d
        a, b = rand(m, k, grad=grad), rand(k, n, grad=grad)
        return f"{m}x{n}x{k}", (lambda: a @ b), [a, b]
    if op == "conv2d":
        (n, h, w, c), (kh, kw, c2, o) = dims(items[0]), dims(items[1])
        sh, sw = pair(args.stride, (1, 1))
        x, wt = rand(n, c, h, w, grad=grad), rand(o, c2, kh, kw, grad=grad)
        if args.padding == "valid":
            f = lambda: F.conv2d(x, wt, stride=(sh, sw))
        else:
            (pt, pb), (pl, pr) = tf_same_pads(h, kh, sh), tf_same_pads(w, kw, sw)
            if pt == pb and pl == pr:
                f = lambda: F.conv2d(x, wt, stride=(sh, sw), padding=(pt, pl))
            else:
                f = lambda: F.conv2d(F.pad(x, (pl, pr, pt, pb)), wt, stride=(sh, sw))
        return f"{items[0]},{items[1]}", f, [x, wt]
    if op in ("max_pool", "avg_pool"):
        n, h, w, c = dims(items[0])
        kh, kw = pair(args.ksize, (2, 2))
        sh, sw = pair(args.stride, (kh, kw))
        x = rand(n, c, h, w, grad=grad)
        pads = (0, 0, 0, 0)
        if args.padding == "same":
            (pt, pb), (pl, pr) = tf_same_pads(h, kh, sh), tf_same_pads(w, kw, sw)
            pads = (pl, pr, pt, pb)
        if op == "max_pool":
            f = lambda: F.max_pool2d(F.pad(x, pads, value=-math.inf) if any(pads) else x, (kh, kw), (sh, sw))
        elif pads[0] == pads[1] and pads[2] == pads[3]:
            f = lambda: F.avg_pool2d(x, (kh, kw), (sh, sw), padding=(pads[2], pads[0]), count_include_pad=False)
        else:
            return items[0], None, "asymmetric SAME padding: PyTorch's avg_pool2d cannot exclude it from the count"
        return items[0], f, [x]
    raise SystemExit(f"torch_ops.py: unknown op {op}")


def mlp_case(batch):
    model = torch.nn.Sequential(torch.nn.Linear(784, 500), torch.nn.ReLU(), torch.nn.Dropout(0.1),
                                torch.nn.Linear(500, 10)).to(DTYPE)
    x = torch.rand(batch, 784, dtype=DTYPE)
    y = torch.randint(0, 10, (batch,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    params = list(model.parameters())
    loss_fn = torch.nn.CrossEntropyLoss()

    def forward():
        with torch.no_grad():
            return loss_fn(model(x), y)

    def backward():
        return torch.autograd.grad(loss_fn(model(x), y), params)

    def step():
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()

    return forward, backward, step


def row(op, shape, pass_name, result=None, note=None):
    r = {"op": op, "shape": shape, "dtype": DT, "threads": threads, "pass": pass_name, "impl": "torch"}
    if result:
        n, lo, med, hi = result
        r.update(samples=n, min_us=lo * 1e6, median_us=med * 1e6, max_us=hi * 1e6)
    else:
        r.update(samples=0, min_us=None, median_us=None, max_us=None, note=note)
    print(json.dumps(r), flush=True)


def main():
    op = args.op
    items = [s for a in args.sizes for s in a.split(",")]
    if op == "mlp":
        for b in items or ["100"]:
            forward, backward, step = mlp_case(int(b))
            shape = f"{b}x784-500-10"
            passes = [("forward", forward), ("forward+backward", backward)] if args.backward else []
            for name, fn in passes + [("step", step)]:
                row(op, shape, name, bench(fn, args.time))
        return
    groups = [items[i:i + 2] for i in range(0, len(items), 2)] if op == "conv2d" else [[s] for s in items]
    for g in groups:
        shape, fwd, xs = make_case(op, g, False)
        if fwd is None:
            row(op, shape, "forward", note=xs)
        else:
            with torch.no_grad():
                row(op, shape, "forward", bench(fwd, args.time))
        if args.backward:
            shape, f, xs = make_case(op, g, True)
            if f is None:
                row(op, shape, "forward+backward", note=xs)
                continue

            def fwd_bwd():
                y = f()
                return torch.autograd.grad(y, xs, grad_outputs=torch.ones_like(y))

            row(op, shape, "forward+backward", bench(fwd_bwd, args.time))


main()
