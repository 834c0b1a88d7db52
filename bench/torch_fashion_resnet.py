"""PyTorch side of examples/fashion_resnet.c: the same small ResNet and recipe on Debian's Fashion-MNIST.

conv 3x3x16 + batch norm + ReLU, residual blocks 16, 32 (stride 2), 64 (stride 2) (conv 3x3 + BN + ReLU,
conv 3x3 + BN, plus the input or its 1x1 conv + BN, ReLU), global average pooling, fc 64 -> 10; softmax
cross entropy, Adam 1e-3, batch 128, batch norm momentum 0.1 (TF's 0.9) and eps 1e-3, He-normal convolution
filters, Glorot-uniform fc weights. NCHW (PyTorch's native layout).
  /usr/bin/python3 bench/torch_fashion_resnet.py [THREADS] [EPOCHS] [STEPS] [SEED]
prints the step time (after 5 warm-up steps) and the test accuracy, as the example does.
"""
import gzip
import os
import sys
import time

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 2
max_steps = int(sys.argv[3]) if len(sys.argv) > 3 else 0
seed = int(sys.argv[4]) if len(sys.argv) > 4 else 1
os.environ.setdefault("OMP_NUM_THREADS", str(threads))
import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(threads)
torch.manual_seed(seed)
nn = torch.nn
DATA = "/usr/share/datasets/fashion-mnist"


def idx(name):
    with gzip.open(os.path.join(DATA, name)) as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * k:8 + 4 * k], "big") for k in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def conv_bn(cin, cout, k, stride):
    conv = nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False)
    nn.init.kaiming_normal_(conv.weight)
    return nn.Sequential(conv, nn.BatchNorm2d(cout, eps=1e-3, momentum=0.1))


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.a, self.b = conv_bn(cin, cout, 3, stride), conv_bn(cout, cout, 3, 1)
        self.shortcut = conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x):
        return torch.relu(self.b(torch.relu(self.a(x))) + self.shortcut(x))


fc = nn.Linear(64, 10)
nn.init.xavier_uniform_(fc.weight)
nn.init.zeros_(fc.bias)
# SAME padding for stride 2 on even sizes pads (0, 1) in TF and (1, 1) here: the output sizes agree (14, 7).
model = nn.Sequential(conv_bn(1, 16, 3, 1), nn.ReLU(), Block(16, 16, 1), Block(16, 32, 2), Block(32, 64, 2),
                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), fc)
opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
loss_fn = nn.CrossEntropyLoss()

train_x = torch.from_numpy(idx("train-images-idx3-ubyte.gz").astype(np.float32) / 255).unsqueeze(1)
train_y = torch.from_numpy(idx("train-labels-idx1-ubyte.gz").astype(np.int64))
test_x = torch.from_numpy(idx("t10k-images-idx3-ubyte.gz").astype(np.float32) / 255).unsqueeze(1)
test_y = torch.from_numpy(idx("t10k-labels-idx1-ubyte.gz").astype(np.int64))
batch = 128
per_epoch = len(train_x) // batch
total = per_epoch * epochs if not max_steps else min(max_steps, per_epoch * epochs)
model.train()
step, start, timed_from = 0, time.time(), None
while step < total:
    order = torch.randperm(len(train_x))
    for b in range(per_epoch):
        if step == total:
            break
        if step == 5:
            timed_from = time.time()
        rows = order[b * batch:(b + 1) * batch]
        loss = loss_fn(model(train_x[rows]), train_y[rows])
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
end = time.time()
model.eval()
with torch.no_grad():
    correct = sum((model(test_x[i:i + 500]).argmax(1) == test_y[i:i + 500]).sum().item() for i in range(0, 10000, 500))
print("torch %s: trained %d steps (%.2f epochs) in %.1f s: %.1f ms/step (batch %d, after 5 warm-up steps), %d threads"
      % (torch.__version__, total, total / per_epoch, end - start, 1e3 * (end - timed_from) / (total - 5), batch,
         threads))
print("final test accuracy: %.4f (all 10000 test images), last training loss %.4f" % (correct / 10000, loss.item()))
