#!/usr/bin/python3
"""Expected values of the batch-norm and composite neural-network cases (test/cases_batch_norm.c,
test/test_nn.c), from PyTorch (Debian's python3-torch): run /usr/bin/python3 tools/ref_nn.py.
Inputs are test/common.c's fw_ints_a and fw_ints_b: random.Random(1 or 2).randint(-4, 4), 64 each."""
import random

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
r1, r2 = random.Random(1), random.Random(2)
A = [r1.randint(-4, 4) for _ in range(64)]
B = [r2.randint(-4, 4) for _ in range(64)]


def t(vals, *shape):
    return torch.tensor(vals[: int(torch.tensor(shape).prod())], dtype=torch.float64).reshape(shape)


def show(name, x):
    v = x.detach().reshape(-1).tolist()
    print("static const double %s[%d] = {%s};" % (name, len(v), ", ".join("%.17g" % e for e in v)))


# batch norm, training: x [2,3,4] (6 rows, 4 channels), scale B[0:4], offset B[4:8], eps 1e-3
x = t(A, 2, 3, 4).requires_grad_()
scale, offset = torch.tensor(B[0:4], dtype=torch.float64).requires_grad_(), torch.tensor(B[4:8], dtype=torch.float64).requires_grad_()
rows = x.reshape(-1, 4)
mean, var = rows.mean(0), rows.var(0, unbiased=False)
y = F.batch_norm(rows, None, None, scale, offset, training=True, eps=1e-3).reshape(2, 3, 4)
show("BN_Y", y)
show("BN_STATS", torch.cat([mean, 1 / torch.sqrt(var + 1e-3), var]))
dy = t(B[8:], 2, 3, 4)
dx, dscale, doffset = torch.autograd.grad(y, [x, scale, offset], dy)
show("BN_GRADS", torch.cat([dscale, doffset, dx.reshape(-1)]))
# moving averages after one training step, TF momentum 0.9 (PyTorch's 0.1), from zeros and ones
rm, rv = torch.zeros(4), torch.ones(4)
F.batch_norm(rows.detach(), rm, rv, None, None, training=True, momentum=0.1, eps=1e-3)
show("BN_MOVING", torch.cat([rm, rv]))
show("BN_INFER", F.batch_norm(rows.detach(), rm, rv, scale.detach(), offset.detach(), training=False, eps=1e-3))

# conv1d: value [2,5,3], filters [3,3,2], stride 2, SAME (pads 1 before, 1 after: TF's rule for W 5, K 3, s 2)
v = t(A, 2, 5, 3)
f = t(B, 3, 3, 2)
show("CONV1D", F.conv1d(F.pad(v.permute(0, 2, 1), (1, 1)), f.permute(2, 1, 0), stride=2).permute(0, 2, 1))
# conv2d_transpose: value [1,2,2,2], filter [3,3,1,2] (KH,KW,Cout,Cin), strides 2, VALID -> [1,5,5,1]
v = t(A, 1, 2, 2, 2)
f = t(B, 3, 3, 1, 2)
show("CONV2D_T", F.conv_transpose2d(v.permute(0, 3, 1, 2), f.permute(3, 2, 0, 1), stride=2).permute(0, 2, 3, 1))
# depthwise_conv2d: input [1,3,3,2], filter [2,2,2,2] (M 2), stride 1, VALID -> [1,2,2,4]
i = t(A, 1, 3, 3, 2)
f = t(B, 2, 2, 2, 2)
dw = F.conv2d(i.permute(0, 3, 1, 2), f.permute(2, 3, 0, 1).reshape(4, 1, 2, 2), groups=2)
show("DEPTHWISE", dw.permute(0, 2, 3, 1))
# separable_conv2d: then pointwise [1,1,4,3] = B[16:28]
p = t(B[16:], 1, 1, 4, 3)
show("SEPARABLE", F.conv2d(dw, p.permute(3, 2, 0, 1)).permute(0, 2, 3, 1))
# l2_normalize over axis 1 of [2,3] (a zero row meets epsilon), epsilon 1e-12
x = torch.tensor([[0.0, 0.0, 0.0], [3.0, -4.0, 12.0]])
show("L2", x * torch.rsqrt(torch.clamp((x * x).sum(1, keepdim=True), min=1e-12)))
# softmax cross entropy with label smoothing 0.1: labels one-hot [2,4], logits A[0:8]/2
z = torch.tensor([[0, 1, 0, 0], [0, 0, 0, 1.0]])
logits = t(A, 2, 4) / 2
zs = z * 0.9 + 0.1 / 4
show("XENT_SMOOTH", -(zs * F.log_softmax(logits, -1)).sum(-1))
# weighted cross entropy, pos_weight 3: labels [0, 1, 0.25, 1], logits [-2, 0.5, 3, -40]
lz, lx = torch.tensor([0, 1, 0.25, 1]), torch.tensor([-2, 0.5, 3, -40.0])
show("XENT_WEIGHTED", F.binary_cross_entropy_with_logits(lx, lz, pos_weight=torch.tensor(3.0), reduction="none"))
# depthwise gradients of the VALID case above, dy = B[32:48] as [1,2,2,4]
i = t(A, 1, 3, 3, 2).requires_grad_()
f = t(B, 2, 2, 2, 2).requires_grad_()
dw = F.conv2d(i.permute(0, 3, 1, 2), f.permute(2, 3, 0, 1).reshape(4, 1, 2, 2), groups=2).permute(0, 2, 3, 1)
di, df = torch.autograd.grad(dw, [i, f], t(B[32:], 1, 2, 2, 4))
show("DEPTHWISE_DX", di)
show("DEPTHWISE_DF", df)
# depthwise SAME, stride 2, dilation 1: input [1,4,4,2] = A[8:40], filter [3,3,2,1] = B[40:58]; TF pads (0, 1)
i = t(A[8:], 1, 4, 4, 2)
f = t(B[40:], 3, 3, 2, 1)
dw = F.conv2d(F.pad(i.permute(0, 3, 1, 2), (0, 1, 0, 1)), f.permute(2, 3, 0, 1).reshape(2, 1, 3, 3), stride=2, groups=2)
show("DEPTHWISE_SAME", dw.permute(0, 2, 3, 1))
