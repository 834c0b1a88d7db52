"""The Deep MNIST CNN step's products one by one in TensorFlow (oneDNN) and PyTorch: the peer side of
bench/cnn_ops.c, the same shapes (batch 100), the same names, microseconds per call, best of 5 rounds.

  python bench/peers/cnn_ops.py PEER THREADS      (PEER: tf or torch)

TensorFlow runs the raw ops (Conv2D, Conv2DBackpropFilter/Input, MatMul) inside a tf.function, NHWC as
Ember; PyTorch runs its convolution and its backward (aten.convolution_backward) in NCHW, its native
layout, and torch.mm. Both are told THREADS (TF: intra-op THREADS, inter-op 1).
"""
import os
import sys
import time

peer, threads = sys.argv[1], int(sys.argv[2])
os.environ["OMP_NUM_THREADS"] = str(threads)
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np  # noqa: E402

ROUNDS = 5
rng = np.random.default_rng(1)


def normal(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def best_us(fn, iters):
    fn()
    best = float("inf")
    for _ in range(ROUNDS):
        t = time.perf_counter()
        for _ in range(iters):
            fn()
        best = min(best, (time.perf_counter() - t) / iters * 1e6)
    return best


# (name, x shape NHWC, filter HWIO, iterations)
CONVS = [("conv1", (100, 28, 28, 1), (5, 5, 1, 32), 10), ("conv2", (100, 14, 14, 32), (5, 5, 32, 64), 5)]
# (name, a, b, transpose_a, transpose_b)
PRODUCTS = [("fc1_fwd", (100, 3136), (3136, 1024), False, False), ("fc1_dx", (100, 1024), (3136, 1024), False, True),
            ("fc1_dw", (100, 3136), (100, 1024), True, False)]
rows = []

if peer == "tf":
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    raw = tf.raw_ops
    version = "TF " + tf.__version__
    for name, xs, ws, iters in CONVS:
        x, w = tf.constant(normal(*xs)), tf.constant(normal(*ws, scale=0.1))
        dy = tf.ones(xs[:3] + ws[3:])
        # the tensors are arguments, not captured constants that Grappler could fold
        ops = {"fwd": tf.function(lambda x, w, dy: raw.Conv2D(input=x, filter=w, strides=[1, 1, 1, 1],
                                                              padding="SAME")),
               "dfilter": tf.function(lambda x, w, dy: raw.Conv2DBackpropFilter(
                   input=x, filter_sizes=ws, out_backprop=dy, strides=[1, 1, 1, 1], padding="SAME"))}
        if name != "conv1":
            ops["dinput"] = tf.function(lambda x, w, dy: raw.Conv2DBackpropInput(
                input_sizes=xs, filter=w, out_backprop=dy, strides=[1, 1, 1, 1], padding="SAME"))
        for what, fn in ops.items():
            rows.append((f"{name}_{what}", best_us(lambda: fn(x, w, dy).numpy(), iters)))
    for name, as_, bs, ta, tb in PRODUCTS:
        a, b = tf.constant(normal(*as_)), tf.constant(normal(*bs))
        fn = tf.function(lambda a, b: raw.MatMul(a=a, b=b, transpose_a=ta, transpose_b=tb))
        rows.append((name, best_us(lambda: fn(a, b).numpy(), 20)))
else:
    import torch
    torch.set_num_threads(threads)
    version = "PyTorch " + torch.__version__
    conv_backward = torch.ops.aten.convolution_backward
    with torch.no_grad():
        for name, xs, ws, iters in CONVS:
            x = torch.from_numpy(normal(*xs)).permute(0, 3, 1, 2).contiguous()
            w = torch.from_numpy(normal(*ws, scale=0.1)).permute(3, 2, 0, 1).contiguous()
            dy = torch.ones(xs[0], ws[3], xs[1], xs[2])
            pad = ws[0] // 2

            def backward(mask):
                return conv_backward(dy, x, w, None, [1, 1], [pad, pad], [1, 1], False, [0, 0], 1, mask)

            rows.append((f"{name}_fwd", best_us(lambda: torch.nn.functional.conv2d(x, w, padding=pad), iters)))
            rows.append((f"{name}_dfilter", best_us(lambda: backward([False, True, False]), iters)))
            if name != "conv1":
                rows.append((f"{name}_dinput", best_us(lambda: backward([True, False, False]), iters)))
        for name, as_, bs, ta, tb in PRODUCTS:
            a, b = torch.from_numpy(normal(*as_)), torch.from_numpy(normal(*bs))
            rows.append((name, best_us(lambda: torch.mm(a.t() if ta else a, b.t() if tb else b), 20)))
print(f"# {version}")
for name, us in rows:
    print(f"{peer} {name} {us:.1f}")
