#!/usr/bin/python3
"""Expected values of test/cases_index.c's forward cases, from NumPy (run: /usr/bin/python3 tools/ref_index.py).
The inputs are the cases' own: XS (small integers valid in every dtype) and the NaN rows."""
import numpy as np

XS = np.array([3, 0, 7, 1, 9, 4, 2, 8, 0, 5, 6, 1, 9, 3, 4, 0, 7, 2, 5, 1, 8, 6, 0, 9], dtype=np.float64)


def x(*shape, off=0):
    n = int(np.prod(shape))
    return XS[off:off + n].reshape(shape)


def show(name, a):
    a = np.asarray(a, dtype=np.float64).ravel()
    vals = ", ".join("NAN" if np.isnan(v) else ("-INFINITY" if v == -np.inf else ("INFINITY" if v == np.inf else "%g" % v)) for v in a)
    print("EXPECT(%s, %s)" % (name, vals if len(a) else "0"))


def rank(a, descending):
    """Stable rank order along the last axis: NaN above every number (NumPy puts it last ascending)."""
    a = np.asarray(a, dtype=np.float64)
    out = []
    for row in a.reshape(-1, a.shape[-1]):
        pos = np.arange(len(row))
        if descending:
            order = np.lexsort((pos, -np.nan_to_num(row, nan=0.0), ~np.isnan(row)))
        else:
            order = np.argsort(row, kind="stable")
        out.append(order)
    return np.array(out).reshape(a.shape)


def gather_nd(p, ind):
    ind = np.asarray(ind)
    m = ind.shape[-1]
    return p[tuple(np.moveaxis(ind, -1, 0))] if m else np.broadcast_to(p, ind.shape[:-1] + p.shape)


def scatter_nd(ind, upd, shape):
    out = np.zeros(shape)
    np.add.at(out, tuple(np.moveaxis(np.asarray(ind), -1, 0)), upd)
    return out


show("gather_nd_pairs", gather_nd(x(3, 2, 2), [[1, 0], [2, 1], [1, 0]]))
show("gather_nd_rows", gather_nd(x(3, 4), [[[2]], [[0]]]))
show("gather_nd_elems", gather_nd(x(2, 3), [[1, 2], [0, 0]]))
show("scatter_nd_rows", scatter_nd([[1], [3], [1]], x(3, 2), (4, 2)))
show("scatter_nd_elems", scatter_nd([[0, 1], [1, 0], [0, 1]], x(3), (2, 2)))
show("segment_sum", scatter_nd([[2], [0], [2], [2]], x(4, 2), (3, 2)))
TIES = [3, 1, 3, 2, 1, 3, 0, 2]
show("top_k_ties", rank(np.array(TIES).reshape(2, 4), True)[:, :3])
show("top_k_long", rank(x(1, 24), True)[:, :3])
show("top_k_long_asc", rank(x(1, 24), False)[:, :5])
show("argsort_axis0", np.argsort(np.array(TIES).reshape(2, 4), axis=0, kind="stable"))
show("sort_desc", -np.sort(-x(3, 4), axis=-1, kind="stable"))
NANS = [1, np.nan, 3, -np.inf, 3, np.nan, np.inf, 0]
show("top_k_nan", rank(NANS, True)[:4])
show("argsort_nan_asc", np.argsort(NANS, kind="stable"))
show("argsort_nan_desc", rank(NANS, True))
show("sort_nan_desc", np.array(NANS)[rank(NANS, True)])
