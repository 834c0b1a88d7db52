#!/usr/bin/env python3
"""bench/serve.c's peers, on the files `build/bench/serve --write DIR` leaves:
onnxruntime on the ONNX files Ember exported (DIR/{mlp,cnn}.onnx), and
PyTorch eager on the same networks with Ember's weights
(DIR/<model>_<variable>.npy), each where this Python has it, with THREADS
threads, on the same inputs (DIR/x{1,100}.npy). Each checks its outputs
against Ember's (DIR/<model>_probabilities<batch>.npy) before timing.
Prints rows in serve.c's format: model, engine, threads, batch, median
milliseconds per run (about 0.5 s of runs), images per second.

usage: serve_peers.py THREADS DIR
"""
import os
import sys
import time

import numpy as np


def median_s(fn, x):
    for _ in range(3):
        fn(x)
    t = []
    start = time.perf_counter()
    while len(t) < 2000 and (len(t) < 5 or time.perf_counter() - start < 0.5):
        t0 = time.perf_counter()
        fn(x)
        t.append(time.perf_counter() - t0)
    return float(np.median(t))


def rows(engine, model, run, threads, d):
    for batch in (1, 100):
        x = np.load(os.path.join(d, "x%d.npy" % batch))
        want = np.load(os.path.join(d, "%s_probabilities%d.npy" % (model, batch)))
        got = np.asarray(run(x))
        if not np.allclose(got, want, rtol=1e-4, atol=1e-6):
            sys.exit("%s's %s gives other probabilities than Ember's (worst difference %g)"
                     % (engine, model, np.abs(got - want).max()))
        s = median_s(run, x)
        print("%s %s %d %d %.4f %.0f" % (model, engine, threads, batch, s * 1e3, batch / s), flush=True)


def onnxruntime_rows(threads, d):
    try:
        import onnxruntime as ort
    except ImportError:
        print("(%s has no onnxruntime: no onnxruntime rows)" % sys.executable)
        return
    print("(onnxruntime %s)" % ort.__version__)
    for model in ("mlp", "cnn"):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        sess = ort.InferenceSession(os.path.join(d, model + ".onnx"), opts, providers=["CPUExecutionProvider"])
        rows("onnxruntime", model, lambda x: sess.run(None, {"x": x})[0], threads, d)


def pytorch_rows(threads, d):
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        print("(%s has no PyTorch: no PyTorch rows)" % sys.executable)
        return
    print("(PyTorch %s, eager)" % torch.__version__)
    torch.set_num_threads(threads)
    for model in ("mlp", "cnn"):
        p = lambda name: torch.from_numpy(np.load(os.path.join(d, "%s_%s.npy" % (model, name))))
        if model == "mlp":
            w1, b1, w2, b2 = p("w1"), p("b1"), p("w2"), p("b2")

            def forward(x):
                return torch.softmax(torch.relu(x @ w1 + b1) @ w2 + b2, -1)
        else:
            conv = [(p(w).permute(3, 2, 0, 1).contiguous(), p(b)) for w, b in (("c1", "cb1"), ("c2", "cb2"))]
            f1, fb1, f2, fb2 = p("f1"), p("fb1"), p("f2"), p("fb2")

            def forward(x):
                h = x.reshape(-1, 1, 28, 28)
                for w, b in conv:
                    h = F.max_pool2d(torch.relu(F.conv2d(h, w, b, padding=2)), 2)
                h = h.permute(0, 2, 3, 1).reshape(-1, 7 * 7 * 64)  # Ember's NHWC order
                return torch.softmax(torch.relu(h @ f1 + fb1) @ f2 + fb2, -1)

        def run(x):
            with torch.inference_mode():
                return forward(torch.from_numpy(x)).numpy()

        rows("pytorch", model, run, threads, d)


def main():
    threads, d = int(sys.argv[1]), sys.argv[2]
    onnxruntime_rows(threads, d)
    pytorch_rows(threads, d)


if __name__ == "__main__":
    main()
