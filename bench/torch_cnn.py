"""PyTorch side of bench/cnn.c: the Deep MNIST CNN training step, same threads.

conv 5x5x32 SAME + ReLU, max_pool 2x2, conv 5x5x64 + ReLU, max_pool 2x2,
fc 3136 -> 1024 ReLU, dropout 0.5, fc 1024 -> 10, softmax cross-entropy,
Adam 1e-4, batch 100 (NCHW: PyTorch's native layout). Prints one line:
  torch VERSION step_us US
"""
import os
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
nn = torch.nn

model = nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                      nn.Linear(7 * 7 * 64, 1024), nn.ReLU(), nn.Dropout(0.5), nn.Linear(1024, 10))
opt = torch.optim.Adam(model.parameters(), lr=1e-4)
loss_fn = nn.CrossEntropyLoss()
x = torch.rand(100, 1, 28, 28)
y = torch.arange(100) % 10


def steps(n):
    for _ in range(n):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()


steps(5)
best = float("inf")
for _ in range(5):
    t = time.perf_counter()
    steps(10)
    best = min(best, (time.perf_counter() - t) / 10)
print(f"torch {torch.__version__} step_us {best * 1e6:.1f}")
