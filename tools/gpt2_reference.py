#!/usr/bin/python3
"""Reference losses for test/test_gpt2.c, from PyTorch (Debian's python3-torch), run by hand:

    /usr/bin/python3 tools/gpt2_reference.py

A small GPT-2 as llm.c's train_gpt2.py defines it (learned positions, pre-LN
blocks, GELU-tanh, tied embedding and output projection, padded vocabulary):
2 layers, 4 heads, 64 channels, T = 16, a vocabulary of 50 padded to 64.
Writes into test/data/:
  gpt2_tiny.bin         its initial weights as an llm.c checkpoint (version 3, float32);
  gpt2_tiny_tokens.bin  one batch of B x (T + 1) tokens as an llm.c token shard;
  gpt2_tiny_losses.txt  the float64 loss before each of 10 AdamW steps.
The model runs in float64 from the float32 weights of the file, so Ember can
start from the same numbers. The AdamW update is written out here because
Ember's Adam puts epsilon where TensorFlow does (lib/optim.c):
  w = w * (1 - lr * wd) - lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps),
with weight decay on the matrices only (llm.c's rule: parameters of 2 or more dims,
counted per layer: wte, wpe, qkvw, attprojw, fcw, fcprojw).
"""
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

V, VP, MAXT, L, NH, C = 50, 64, 32, 2, 4, 64
B, T = 4, 16
LR, B1, B2, EPS, WD, STEPS = 1e-3, 0.9, 0.999, 1e-8, 0.1, 10
NAMES = ["wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
         "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb"]
SHAPES = [(VP, C), (MAXT, C), (L, C), (L, C), (L, 3 * C, C), (L, 3 * C), (L, C, C), (L, C),
          (L, C), (L, C), (L, 4 * C, C), (L, 4 * C), (L, C, 4 * C), (L, C), (C,), (C,)]
DECAYS = {"wte", "wpe", "qkvw", "attprojw", "fcw", "fcprojw"}
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "test", "data")


def initial_weights(gen):
    """llm.c's init (normal 0.02, residual projections 0.02/sqrt(2L)), with
    biases and layer norms drawn too so that every gradient is exercised."""
    p = {}
    for name, shape in zip(NAMES, SHAPES):
        if name in ("ln1w", "ln2w", "lnfw"):
            t = 1 + 0.1 * torch.randn(shape, generator=gen)
        elif name.endswith("b") and name != "wte":
            t = 0.02 * torch.randn(shape, generator=gen)
        else:
            std = 0.02 / math.sqrt(2 * L) if name in ("attprojw", "fcprojw") else 0.02
            t = std * torch.randn(shape, generator=gen)
        p[name] = t.to(torch.float32)
    p["wte"][V:] = 0  # the padded rows, as train_gpt2.py's pad_vocab writes them
    return p


def forward(p, idx, targets):
    x = p["wte"][idx] + p["wpe"][:T]
    for l in range(L):
        h = F.layer_norm(x, (C,), p["ln1w"][l], p["ln1b"][l], 1e-5)
        qkv = h @ p["qkvw"][l].T + p["qkvb"][l]
        q, k, v = qkv.split(C, dim=2)
        q, k, v = (t.view(B, T, NH, C // NH).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // NH)
        att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + y @ p["attprojw"][l].T + p["attprojb"][l]
        h = F.layer_norm(x, (C,), p["ln2w"][l], p["ln2b"][l], 1e-5)
        h = F.gelu(h @ p["fcw"][l].T + p["fcb"][l], approximate="tanh")
        x = x + h @ p["fcprojw"][l].T + p["fcprojb"][l]
    x = F.layer_norm(x, (C,), p["lnfw"], p["lnfb"], 1e-5)
    logits = x @ p["wte"].T
    return F.cross_entropy(logits[:, :, :V].reshape(-1, V), targets.reshape(-1))


def main():
    gen = torch.Generator().manual_seed(42)
    w32 = initial_weights(gen)
    tokens = torch.randint(0, V, (B * (T + 1),), generator=gen)

    header = np.zeros(256, dtype=np.int32)
    header[:8] = [20240326, 3, MAXT, V, L, NH, C, VP]
    with open(os.path.join(OUT, "gpt2_tiny.bin"), "wb") as f:
        f.write(header.tobytes())
        for name in NAMES:
            f.write(w32[name].numpy().astype("<f4").tobytes())
    header = np.zeros(256, dtype=np.int32)
    header[:3] = [20240520, 1, tokens.numel()]
    with open(os.path.join(OUT, "gpt2_tiny_tokens.bin"), "wb") as f:
        f.write(header.tobytes())
        f.write(tokens.numpy().astype("<u2").tobytes())

    batch = tokens.view(B, T + 1)
    idx, targets = batch[:, :T], batch[:, 1:]
    p = {n: w32[n].to(torch.float64).requires_grad_() for n in NAMES}
    m = {n: torch.zeros_like(p[n]) for n in NAMES}
    v = {n: torch.zeros_like(p[n]) for n in NAMES}
    losses = []
    for step in range(1, STEPS + 1):
        loss = forward(p, idx, targets)
        losses.append(loss.item())
        grads = torch.autograd.grad(loss, [p[n] for n in NAMES])
        lr_t = LR * math.sqrt(1 - B2 ** step) / (1 - B1 ** step)
        with torch.no_grad():
            for n, g in zip(NAMES, grads):
                m[n] += (g - m[n]) * (1 - B1)
                v[n] += (g * g - v[n]) * (1 - B2)
                keep = 1 - LR * WD if n in DECAYS else 1.0
                p[n].mul_(keep).sub_(lr_t * m[n] / (v[n].sqrt() + EPS))
    with open(os.path.join(OUT, "gpt2_tiny_losses.txt"), "w") as f:
        f.write("# tools/gpt2_reference.py (PyTorch %s, float64): the loss before each AdamW step\n"
                % torch.__version__)
        for x in losses:
            f.write("%.17g\n" % x)
    print("\n".join("%.17g" % x for x in losses))


if __name__ == "__main__":
    main()
