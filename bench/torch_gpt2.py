"""PyTorch eager beside bench/gpt2.sh: GPT-2 small's training step (12 layers, 12 heads, 768
channels, vocabulary 50257 padded to 50304, tied embedding, pre-LN, GELU-tanh, causal attention
through scaled_dot_product_attention; B = 4, T = 64; forward, backward, AdamW), float32.

  python torch_gpt2.py THREADS [STEPS]

Prints `torch VERSION step_ms MS` (median of STEPS steps after one warm-up), or
`torch n/a REASON` without PyTorch."""
import statistics
import sys
import time

threads, steps = int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 3
try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:
    print(f"torch n/a {e.name}")
    sys.exit(0)
torch.set_num_threads(threads)
torch.manual_seed(0)
L, H, C, V, Vp, T, B = 12, 12, 768, 50257, 50304, 64, 4


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.qkv, self.proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.fc, self.fcproj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)

    def forward(self, x):
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, H, C // H).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
        x = x + self.proj(y)
        return x + self.fcproj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(Vp, C), nn.Embedding(1024, C)
        self.blocks = nn.ModuleList(Block() for _ in range(L))
        self.lnf = nn.LayerNorm(C)

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(T))
        for b in self.blocks:
            x = b(x)
        logits = (self.lnf(x) @ self.wte.weight.t())[:, :, :V]  # tied, the padding sliced away
        return F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))


model = GPT()
opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
tokens = torch.randint(0, V, (B, T + 1))
times = []
for s in range(steps + 1):
    t0 = time.perf_counter()
    opt.zero_grad()
    model(tokens[:, :-1], tokens[:, 1:]).backward()
    opt.step()
    if s:
        times.append((time.perf_counter() - t0) * 1e3)
print(f"torch {torch.__version__} step_ms {statistics.median(times):.1f}")
