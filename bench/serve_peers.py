#!/usr/bin/env python3
"""bench/serve_onnx.c's peers: onnxruntime on the ONNX files Ember exported
(DIR/mlp.onnx, DIR/cnn.onnx), or PyTorch eager on the same networks with
Ember's weights (DIR/<variable name, / as _>.npy), with the same threads.
Prints rows in serve_onnx.c's format: net, runtime, median latency at batch 1
(us), median throughput at batch 100 (images/s).

usage: serve_peers.py onnxruntime|pytorch THREADS DIR
"""
import os
import sys
import time

import numpy as np


def median_s(fn, x, runs):
    for _ in range(3):
        fn(x)
    t = []
    for _ in range(runs):
        start = time.perf_counter()
        fn(x)
        t.append(time.perf_counter() - start)
    return float(np.median(t))


def report(net, runtime, b1, b100):
    print("%-4s %-14s %14.1f %16.0f" % (net, runtime, b1 * 1e6, 100 / b100), flush=True)


def onnxruntime_rows(threads, d, inputs):
    try:
        import onnxruntime as ort
    except ImportError:
        print("(onnxruntime is not installed: pip install onnxruntime)")
        return
    for net in ("mlp", "cnn"):
        path = os.path.join(d, net + ".onnx")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        run = lambda x: sess.run(None, {"x": x})
        runs1, runs100 = (100, 10) if net == "cnn" else (400, 100)
        report(net, "onnxruntime", median_s(run, inputs[1], runs1), median_s(run, inputs[100], runs100))


def torch_rows(threads, d, inputs):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    p = lambda name: torch.from_numpy(np.load(os.path.join(d, name.replace("/", "_") + ".npy")))
    for net in ("mlp", "cnn"):
        if net == "mlp":
            def forward(x):
                h = torch.relu(x @ p("mlp/layer1/weights") + p("mlp/layer1/biases"))
                return torch.softmax(h @ p("mlp/layer2/weights") + p("mlp/layer2/biases"), -1)
        else:
            conv = {k: p("cnn/%s/weights" % k).permute(3, 2, 0, 1).contiguous() for k in ("conv1", "conv2")}

            def forward(x):
                h = x.reshape(-1, 1, 28, 28)
                for k in ("conv1", "conv2"):
                    h = F.max_pool2d(torch.relu(F.conv2d(h, conv[k], p("cnn/%s/biases" % k), padding=2)), 2)
                h = h.permute(0, 2, 3, 1).reshape(-1, 7 * 7 * 64)  # Ember's NHWC order
                h = torch.relu(h @ p("cnn/fc1/weights") + p("cnn/fc1/biases"))
                return torch.softmax(h @ p("cnn/fc2/weights") + p("cnn/fc2/biases"), -1)

        def run(x):
            with torch.inference_mode():
                return forward(torch.from_numpy(x))

        runs1, runs100 = (100, 10) if net == "cnn" else (400, 100)
        report(net, "pytorch " + torch.__version__.split("+")[0], median_s(run, inputs[1], runs1),
               median_s(run, inputs[100], runs100))


def main():
    which, threads, d = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    rng = np.random.default_rng(0)
    inputs = {b: rng.random((b, 784)).astype(np.float32) for b in (1, 100)}
    (onnxruntime_rows if which == "onnxruntime" else torch_rows)(threads, d, inputs)


if __name__ == "__main__":
    main()
