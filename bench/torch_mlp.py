"""PyTorch side of bench/mlp.c and bench/dispatch.c: the same work, same threads.

Prints one line of `key value` pairs that the C benchmark parses:
  add_us, add_grad_us    eager dispatch of a 1-element add, without / with autograd
  step_us                the MNIST MLP step (784-500-10, ReLU, batch 100, Adam 1e-3)
  peak_rss_mib           peak resident memory of this process
"""
import os
import resource
import sys
import time

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
os.environ.setdefault("OMP_NUM_THREADS", str(threads))
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(threads))
try:
    import torch
except ImportError:
    print("unavailable torch-not-installed")
    sys.exit(0)
torch.set_num_threads(threads)
torch.manual_seed(0)


def best_of(fn, reps, rounds=5):
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        fn(reps)
        best = min(best, (time.perf_counter() - t) / reps)
    return best * 1e6


a = torch.ones(1)
b = torch.ones(1)


def adds(n):
    for _ in range(n):
        a + b


ag = torch.ones(1, requires_grad=True)


def adds_grad(n):
    for _ in range(n):
        ag + b


x = torch.rand(100, 784)
y = torch.randint(0, 10, (100,))
model = torch.nn.Sequential(torch.nn.Linear(784, 500), torch.nn.ReLU(), torch.nn.Dropout(0.1),
                            torch.nn.Linear(500, 10))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
loss_fn = torch.nn.CrossEntropyLoss()


def steps(n):
    for _ in range(n):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()


steps(20)
add_us = best_of(adds, 100000)
add_grad_us = best_of(adds_grad, 100000)
step_us = best_of(steps, 50)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
print(f"torch {torch.__version__} add_us {add_us:.3f} add_grad_us {add_grad_us:.3f} "
      f"step_us {step_us:.1f} peak_rss_mib {rss:.1f}")
