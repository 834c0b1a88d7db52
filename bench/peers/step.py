"""One peer's training step, timed: the models of bench/steps.c (MLP) and bench/cnn.c (CNN).

  python step.py FRAMEWORK MODEL THREADS       FRAMEWORK: torch | tf | jax;  MODEL: mlp | cnn

  mlp: 784-500-10, ReLU, dropout 0.1 (keep 0.9), batch 100, softmax cross-entropy, Adam 1e-3
  cnn: conv 5x5x32 SAME + ReLU, max_pool 2x2, conv 5x5x64 SAME + ReLU, max_pool 2x2,
       fc 3136 -> 1024 ReLU, dropout 0.5, fc 1024 -> 10, softmax cross-entropy, Adam 1e-4, batch 100

Prints one line: `FRAMEWORK VERSION step_ms MS` (the best of 5 rounds of STEPS steps, after a
warm-up), or `FRAMEWORK n/a REASON` when the framework cannot be imported. The caller pins the
process to THREADS cores (taskset); each framework is also told THREADS: torch.set_num_threads,
TF's intra-op pool (inter-op 1), and XLA's Eigen pool through its flags.
"""
import os
import sys
import time

framework, model_name, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
STEPS = {"mlp": 50, "cnn": 5}[model_name]
os.environ["OMP_NUM_THREADS"] = str(threads)
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           f" --xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'}"
                           f" intra_op_parallelism_threads={threads}")


def best_ms(step, sync=lambda: None):
    for _ in range(3):
        step()
    sync()
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(STEPS):
            step()
        sync()
        best = min(best, (time.perf_counter() - t) / STEPS)
    return best * 1e3


def run_torch():
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    nn = torch.nn
    if model_name == "mlp":
        model = nn.Sequential(nn.Linear(784, 500), nn.ReLU(), nn.Dropout(0.1), nn.Linear(500, 10))
        x, lr = torch.rand(100, 784), 1e-3
    else:
        model = nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                              nn.Linear(7 * 7 * 64, 1024), nn.ReLU(), nn.Dropout(0.5), nn.Linear(1024, 10))
        x, lr = torch.rand(100, 1, 28, 28), 1e-4  # NCHW: PyTorch's native layout
    y = torch.arange(100) % 10
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def step():
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return torch.__version__, best_ms(step)


def run_tf():
    import numpy as np
    import tensorflow as tf
    v1 = tf.compat.v1
    v1.disable_eager_execution()
    v1.set_random_seed(0)
    init = v1.truncated_normal_initializer(stddev=0.1)  # tf.layers is gone with Keras 3: variables by hand

    def dense(h, n_out, name):
        w = v1.get_variable(name + "/w", [h.shape[-1], n_out], initializer=init)
        return tf.matmul(h, w) + v1.get_variable(name + "/b", [n_out], initializer=v1.constant_initializer(0.1))

    def conv_pool(h, n_out, name):
        w = v1.get_variable(name + "/w", [5, 5, h.shape[-1], n_out], initializer=init)
        b = v1.get_variable(name + "/b", [n_out], initializer=v1.constant_initializer(0.1))
        h = tf.nn.relu(tf.nn.conv2d(h, w, 1, "SAME") + b)
        return tf.nn.max_pool2d(h, 2, 2, "SAME")

    if model_name == "mlp":
        x = v1.placeholder(tf.float32, [None, 784])
        h = tf.nn.dropout(tf.nn.relu(dense(x, 500, "fc1")), rate=0.1)
        logits, lr = dense(h, 10, "fc2"), 1e-3
        xv = np.random.rand(100, 784).astype(np.float32)
    else:
        x = v1.placeholder(tf.float32, [None, 28, 28, 1])  # NHWC: TF's CPU layout, as Ember's
        h = conv_pool(conv_pool(x, 32, "conv1"), 64, "conv2")
        h = tf.nn.dropout(tf.nn.relu(dense(tf.reshape(h, [-1, 7 * 7 * 64]), 1024, "fc1")), rate=0.5)
        logits, lr = dense(h, 10, "fc2"), 1e-4
        xv = np.random.rand(100, 28, 28, 1).astype(np.float32)
    y = v1.placeholder(tf.int64, [None])
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
    train = v1.train.AdamOptimizer(lr).minimize(loss)
    cfg = v1.ConfigProto(intra_op_parallelism_threads=threads, inter_op_parallelism_threads=1)
    sess = v1.Session(config=cfg)
    sess.run(v1.global_variables_initializer())
    feed = {x: xv, y: np.arange(100) % 10}
    return tf.__version__, best_ms(lambda: sess.run(train, feed))


def run_jax():
    import jax
    import jax.numpy as jnp
    import numpy as np
    key = jax.random.PRNGKey(0)
    ks = jax.random.split(key, 8)

    def dense(k, n_in, n_out):
        return [jax.random.truncated_normal(k, -2, 2, (n_in, n_out)) * 0.1, jnp.full((n_out,), 0.1)]

    if model_name == "mlp":
        params = dense(ks[0], 784, 500) + dense(ks[1], 500, 10)
        x, lr, keep = jnp.asarray(np.random.rand(100, 784).astype(np.float32)), 1e-3, 0.9

        def logits_of(p, x, k):
            h = jax.nn.relu(x @ p[0] + p[1])
            h = jnp.where(jax.random.bernoulli(k, keep, h.shape), h / keep, 0)
            return h @ p[2] + p[3]
    else:
        params = [jax.random.truncated_normal(ks[0], -2, 2, (5, 5, 1, 32)) * 0.1, jnp.full((32,), 0.1),
                  jax.random.truncated_normal(ks[1], -2, 2, (5, 5, 32, 64)) * 0.1, jnp.full((64,), 0.1)]
        params += dense(ks[2], 3136, 1024) + dense(ks[3], 1024, 10)
        x, lr, keep = jnp.asarray(np.random.rand(100, 28, 28, 1).astype(np.float32)), 1e-4, 0.5

        def conv_pool(h, w, b):
            h = jax.lax.conv_general_dilated(h, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
            h = jax.nn.relu(h + b)
            return jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")

        def logits_of(p, x, k):
            h = conv_pool(conv_pool(x, p[0], p[1]), p[2], p[3]).reshape(-1, 3136)
            h = jax.nn.relu(h @ p[4] + p[5])
            h = jnp.where(jax.random.bernoulli(k, keep, h.shape), h / keep, 0)
            return h @ p[6] + p[7]
    y = jnp.arange(100) % 10

    def loss_of(p, k):
        z = logits_of(p, x, k)
        return jnp.mean(jax.nn.logsumexp(z, axis=1) - jnp.take_along_axis(z, y[:, None], axis=1)[:, 0])

    @jax.jit
    def step(p, m, v, t, k):  # Adam, as TF's (epsilon 1e-8)
        k, sub = jax.random.split(k)
        g = jax.grad(loss_of)(p, sub)
        t = t + 1
        m = [0.9 * mi + 0.1 * gi for mi, gi in zip(m, g)]
        v = [0.999 * vi + 0.001 * gi * gi for vi, gi in zip(v, g)]
        a = lr * jnp.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
        p = [pi - a * mi / (jnp.sqrt(vi) + 1e-8) for pi, mi, vi in zip(p, m, v)]
        return p, m, v, t, k

    state = [params, [jnp.zeros_like(q) for q in params], [jnp.zeros_like(q) for q in params], 0.0, key]

    def one():
        state[:] = step(*state)
    return jax.__version__, best_ms(one, lambda: jax.block_until_ready(state[0]))


try:
    version, ms = {"torch": run_torch, "tf": run_tf, "jax": run_jax}[framework]()
    print(f"{framework} {version} step_ms {ms:.3f}")
except ImportError as e:
    print(f"{framework} n/a {type(e).__name__}:{e.name or e}".replace(" ", "_", 0))
