"""PyTorch side of bench/steps.c: the same steps, same threads, in the same run.

Prints `key value` pairs that bench/steps.c parses (microseconds per call):
  add_us add_grad_us   a 1-element add, without / with autograd
  mlp_us mlp_jit_us    the MNIST MLP step (784-500-10, ReLU, dropout 0.1, batch 100, Adam 1e-3),
                       eager and with the model under torch.jit.trace
  logreg_us logreg_jit_us  the lecture's logistic regression step (3 x 5 inputs, SGD 0.003)
  mlp_epoch_s          one MNIST epoch of the MLP (600 steps of 100), eager, in seconds
  peak_rss_mib
"""
import os
import resource
import sys
import time

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
try:
    import torch
except ImportError:
    print("unavailable torch-not-installed")
    sys.exit(0)
torch.set_num_threads(threads)
torch.manual_seed(0)


def best_of(fn, reps, rounds=5):
    fn(max(1, reps // 10))  # warm up
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        fn(reps)
        best = min(best, (time.perf_counter() - t) / reps)
    return best * 1e6


a, b = torch.ones(1), torch.ones(1)
ag = torch.ones(1, requires_grad=True)


def adds(n):
    for _ in range(n):
        a + b


def adds_grad(n):
    for _ in range(n):
        ag + b


def stepper(model, x, y, loss_fn, opt):
    def steps(n):
        for _ in range(n):
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
    return steps


def mlp_steps(jit):
    x = torch.rand(100, 784)
    y = torch.randint(0, 10, (100,))
    model = torch.nn.Sequential(torch.nn.Linear(784, 500), torch.nn.ReLU(), torch.nn.Dropout(0.1),
                                torch.nn.Linear(500, 10))
    if jit:
        model = torch.jit.trace(model, x, check_trace=False)
    return stepper(model, x, y, torch.nn.functional.cross_entropy, torch.optim.Adam(model.parameters(), lr=1e-3))


def logreg_steps(jit):
    x = torch.randn(3, 5)
    y = torch.tensor([[0.0], [0.0], [1.0]])
    model = torch.nn.Linear(5, 1)
    if jit:
        model = torch.jit.trace(model, x)
    return stepper(model, x, y, torch.nn.functional.binary_cross_entropy_with_logits,
                   torch.optim.SGD(model.parameters(), lr=0.003))


out = {
    "add_us": best_of(adds, 100000),
    "add_grad_us": best_of(adds_grad, 100000),
    "mlp_us": best_of(mlp_steps(False), 50),
    "mlp_jit_us": best_of(mlp_steps(True), 50),
    "logreg_us": best_of(logreg_steps(False), 2000),
    "logreg_jit_us": best_of(logreg_steps(True), 2000),
}
epoch = mlp_steps(False)
epoch(5)  # warm up
t = time.perf_counter()
epoch(600)
out["mlp_epoch_s"] = time.perf_counter() - t
out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
print(f"torch {torch.__version__} " + " ".join(f"{k} {v:.3f}" for k, v in out.items()))
