#!/usr/bin/env python3
"""Writes test/data/ops1_reference.h: NumPy's values for the scans, moments,
norms, creation ops and einsum, which test/cases_*.c compare Ember's with.

Run from the repository root: python3 tools/ops_reference.py (NumPy only).
Each array is `static const double ops1_<name>[]`, row-major; inputs are
small integers or halves, so float32, integer and float64 results are exact
where the test says so."""
import math

import numpy as np

out = []


def arr(name, a):
    a = np.asarray(a, dtype=np.float64).ravel()

    def fmt(v):
        if math.isnan(v):
            return "NAN"
        if math.isinf(v):
            return "INFINITY" if v > 0 else "-INFINITY"
        return repr(float(v))

    body = ", ".join(fmt(v) for v in a) if a.size else "0"
    out.append(f"static const double ops1_{name}[] = {{{body}}};")


def scan(fn, x, axis, exclusive, reverse):
    """TF's cumsum/cumprod from NumPy's: flip for reverse, shift for exclusive."""
    x = np.asarray(x)
    if reverse:
        x = np.flip(x, axis)
    y = fn(x, axis=axis, dtype=x.dtype)
    if exclusive:
        ident = np.zeros_like(np.take(y, [0], axis)) if fn is np.cumsum else np.ones_like(np.take(y, [0], axis))
        y = np.concatenate([ident, np.take(y, range(x.shape[axis] - 1), axis)], axis)
    if reverse:
        y = np.flip(y, axis)
    return y


# ---- scans ----
x234 = (np.arange(24).reshape(2, 3, 4) * 7 % 11) - 3  # small signed integers
arr("x234", x234)
u234 = np.arange(24).reshape(2, 3, 4) * 7 % 5  # 0..4, for uint8 and cumprod
arr("u234", u234)
for dt, sfx in ((np.float32, "f32"), (np.float64, "f64"), (np.int32, "i32"), (np.int64, "i64"), (np.uint8, "u8")):
    arr(f"cumsum_ax1_{sfx}", scan(np.cumsum, u234.astype(dt) if sfx == "u8" else x234.astype(dt), 1, False, False))
    arr(f"cumprod_ax1_{sfx}", scan(np.cumprod, u234.astype(dt), 1, False, False))
arr("cumsum_last_excl", scan(np.cumsum, x234.astype(np.float64), -1, True, False))
arr("cumsum_ax0_rev", scan(np.cumsum, x234.astype(np.float64), 0, False, True))
arr("cumsum_ax1_excl_rev", scan(np.cumsum, x234.astype(np.float64), 1, True, True))
arr("cumprod_last_excl_rev", scan(np.cumprod, u234.astype(np.float64), -1, True, True))
arr("cumprod_ax0_excl", scan(np.cumprod, u234.astype(np.float64), 0, True, False))
# wide inner (a block of 256 neighbouring lines and a partial one): [3, 300] along axis 0
w = (np.arange(900).reshape(3, 300) % 13) - 6
arr("w3x300", w)
arr("cumsum_w_ax0_rev", scan(np.cumsum, w.astype(np.float64), 0, False, True))
# NaN and Inf carry forward
nan_in = np.array([1, 2, np.nan, 4, 5, np.inf, -np.inf, 1])
arr("nan_in", nan_in)
arr("cumsum_nan", scan(np.cumsum, nan_in, 0, False, False))
arr("cumprod_nan_rev", scan(np.cumprod, nan_in, 0, False, True))
# uint8 products and int32 sums wrap, as NumPy's fixed-width arithmetic does
arr("u8_big", [200, 2, 3])
arr("cumprod_u8_wrap", scan(np.cumprod, np.array([200, 2, 3], dtype=np.uint8), 0, False, False))
arr("i32_big", [2147483647, 1, 2147483647, 2])
arr("cumsum_i32_wrap", scan(np.cumsum, np.array([2147483647, 1, 2147483647, 2], dtype=np.int32), 0, False, False))

# ---- moments and norms (float64) ----
xf = x234.astype(np.float64) / 2
arr("xf", xf)
arr("moments_02_mean", xf.mean(axis=(0, 2)))
arr("moments_02_var", xf.var(axis=(0, 2)))
arr("moments_all_mean", [xf.mean()])
arr("moments_all_var", [xf.var()])
arr("moments_last_mean", xf.mean(axis=-1, keepdims=True))
arr("moments_last_var", xf.var(axis=-1, keepdims=True))
arr("norm1_last", np.linalg.norm(xf, ord=1, axis=-1))
arr("norm2_last", np.linalg.norm(xf, ord=2, axis=-1))
arr("norminf_last", np.linalg.norm(xf, ord=np.inf, axis=-1))
arr("norm2_all", [np.sqrt((xf * xf).sum())])
arr("norm2_01_keep", np.sqrt((xf * xf).sum(axis=(0, 1), keepdims=True)))

# ---- creation and masks ----
arr("linspace_0_1_5", np.linspace(0, 1, 5))
arr("linspace_m1_2_4", np.linspace(-1, 2, 4, dtype=np.float32))
arr("eye_3", np.eye(3))
arr("eye_2_4", np.eye(2, 4))
for lo, up, name in ((1, 0, "1_0"), (-1, 0, "tril"), (0, -1, "triu"), (0, 0, "diag"), (1, 2, "1_2")):
    r = np.arange(3)[:, None] - np.arange(4)[None, :]
    keep = ((lo < 0) | (r <= lo)) & ((up < 0) | (-r <= up))
    arr(f"band_{name}", np.where(keep, x234, 0))

# ---- einsum (float64) ----
ea = ((np.arange(24) * 5 % 7) - 3).reshape(2, 3, 4) / 2
eb = ((np.arange(40) * 3 % 11) - 5).reshape(2, 4, 5) / 4
arr("ea", ea)
arr("eb", eb)
arr("einsum_bij_bjk", np.einsum("bij,bjk->bik", ea, eb))
q = ((np.arange(48) * 7 % 13) - 6).reshape(2, 2, 3, 4) / 3
k = ((np.arange(80) * 5 % 9) - 4).reshape(2, 2, 5, 4) / 2
arr("eq", q)
arr("ek", k)
arr("einsum_bhqd_bhkd", np.einsum("bhqd,bhkd->bhqk", q, k))
m34 = ea[0]
arr("einsum_ij_ji", np.einsum("ij->ji", m34))
sq = ((np.arange(9) * 4 % 7) - 2).reshape(3, 3).astype(np.float64)
arr("sq", sq)
arr("einsum_ii_i", np.einsum("ii->i", sq))
arr("einsum_ii", [np.einsum("ii->", sq)])
arr("einsum_ij_jk_ki", np.einsum("ij,jk->ki", m34, eb[1]))
arr("einsum_i_j_ij", np.einsum("i,j->ij", m34[0], eb[0, 0]))
arr("einsum_bij_bkj_sum", np.einsum("bij,bkj->k", ea, ea))
arr("einsum_ijk_kj", np.einsum("ijk->kj", ea))

# ---- where_indices ----
cond = (np.arange(24).reshape(2, 3, 4) * 7 % 5) > 2
arr("cond", cond)
arr("where_cond", np.argwhere(cond))

with open("test/data/ops1_reference.h", "w") as f:
    f.write("/* Generated by tools/ops_reference.py (NumPy " + np.__version__ + "); do not edit. */\n")
    f.write("#ifndef EMBER_OPS1_REFERENCE_H\n#define EMBER_OPS1_REFERENCE_H\n\n#include <math.h>\n\n")
    f.write("\n".join(out) + "\n\n#endif\n")
