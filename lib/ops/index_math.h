/* The index math of the index family (lib/ops/index.c), written once and
 * compiled into both the C kernels and the CUDA ones (gpu/index.cu): where an
 * index tuple of gather_nd and scatter_nd points, and the order top_k, sort
 * and argsort rank elements in. */
#ifndef EMBER_INDEX_MATH_H
#define EMBER_INDEX_MATH_H

#include "../dtype_convert.h"
#include "../em_hd.h"

#include <stdbool.h>
#include <stdint.h>

/* The row that the index tuple t[0..m-1] picks in params viewed as
 * [dims[0] * ... * dims[m-1], inner], or -1 when a component is outside
 * [0, dims[k]). t holds the index dtype `dtype` (em_index_at). */
EM_HD static inline int64_t em_index_nd_row(const void *t, int dtype, int m, const int64_t *dims) {
    int64_t row = 0;
    for (int k = 0; k < m; k++) {
        int64_t v = em_index_at(t, dtype, k);
        if (v < 0 || v >= dims[k]) return -1;
        row = row * dims[k] + v;
    }
    return row;
}

/* Whether element a (at position ia of its row) ranks before element b (at ib)
 * in top_k's order: larger first when descending, smaller first otherwise; NaN
 * counts as larger than every number (as NumPy's sort and PyTorch's topk
 * place it: last ascending, first descending); equal values keep their order
 * (a stable sort). Float elements compare as double (exact for float32). */
EM_HD static inline bool em_index_before_float(double a, int64_t ia, double b, int64_t ib, bool descending) {
    bool an = a != a, bn = b != b;
    if (an || bn) return an && bn ? ia < ib : descending == an;
    if (a == b) return ia < ib;
    return descending ? a > b : a < b;
}
/* The same for integer elements (int32, int64, uint8 held as int64). */
EM_HD static inline bool em_index_before_int(int64_t a, int64_t ia, int64_t b, int64_t ib, bool descending) {
    if (a == b) return ia < ib;
    return descending ? a > b : a < b;
}

#endif
