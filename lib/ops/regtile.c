/* The AVX-512 register-tile kernel (float32; declared in regtile.h): a tile
 * of output rows x up to 64 columns (6 x 64, 8 x 48, 12 x 32, 12 x 16: 24
 * accumulators where they fit) stays in vector registers while a sum of two
 * nested strides runs. The direct convolutions (conv.c) and small float32
 * products (matmul.c) run on it. Compiled for AVX-512 whatever the build's
 * target; callers check em__regtile_ready() first. */
#include "regtile.h"

#include <string.h>

#ifdef EM_REGTILE_KERNEL
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f")))

int em__regtile_rows(int vecs) { return vecs == 4 ? 6 : vecs == 3 ? 8 : 12; }

bool em__regtile_ready(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
}

static inline __attribute__((always_inline)) AVX512 void tile_sum(const int rows, const int vecs, const em_regtile *k) {
    __m512 acc[EM_REGTILE_MAX_ROWS][EM_REGTILE_VECS];
#pragma GCC unroll 12
    for (int j = 0; j < rows; j++)
#pragma GCC unroll 4
        for (int v = 0; v < vecs; v++)
            acc[j][v] = k->accumulate ? _mm512_loadu_ps(k->c + j * k->cj + 16 * v) : _mm512_setzero_ps();
    for (int64_t r = 0; r < k->nr; r++) {
        const float *b = k->b + r * k->br;
        int64_t off = r * k->ar;
#pragma GCC unroll 2
        for (int64_t t = 0; t < k->nt; t++, b += k->bt, off += k->at) {
            __m512 bv[EM_REGTILE_VECS];
#pragma GCC unroll 4
            for (int v = 0; v < vecs; v++) bv[v] = _mm512_loadu_ps(b + 16 * v);
#pragma GCC unroll 12
            for (int j = 0; j < rows; j++) {
                __m512 aj = _mm512_set1_ps(k->a[j][off]);
#pragma GCC unroll 4
                for (int v = 0; v < vecs; v++) acc[j][v] = _mm512_fmadd_ps(aj, bv[v], acc[j][v]);
            }
        }
    }
    if (k->bias) { /* relu(sum + bias): max(0, s) is s < 0 ? 0 : s, as bias_relu (-0 and NaN pass) */
        __m512 zero = _mm512_setzero_ps();
#pragma GCC unroll 4
        for (int v = 0; v < vecs; v++) {
            __m512 bias = _mm512_loadu_ps(k->bias + 16 * v);
#pragma GCC unroll 12
            for (int j = 0; j < rows; j++) acc[j][v] = _mm512_max_ps(zero, _mm512_add_ps(acc[j][v], bias));
        }
    }
#pragma GCC unroll 12
    for (int j = 0; j < rows; j++)
#pragma GCC unroll 4
        for (int v = 0; v < vecs; v++) _mm512_storeu_ps(k->c + j * k->cj + 16 * v, acc[j][v]);
}

/* A full tile (em__regtile_rows(vecs) rows); with the sizes constant, the
 * accumulators are registers. */
static AVX512 void tile_full(int vecs, const em_regtile *k) {
    switch (vecs) {
    case 1: tile_sum(12, 1, k); break;
    case 2: tile_sum(12, 2, k); break;
    case 3: tile_sum(8, 3, k); break;
    default: tile_sum(6, 4, k); break;
    }
}

/* A tile of `rows` rows: a short one (the end of a run) computes a full tile
 * whose extra rows repeat row 0, into a buffer, and keeps its first rows. */
void em__regtile_run(int rows, int vecs, const em_regtile *k) {
    if (rows == em__regtile_rows(vecs)) {
        tile_full(vecs, k);
        return;
    }
    float buf[EM_REGTILE_MAX_ROWS * EM_REGTILE_COLS];
    size_t row_bytes = sizeof(float) * 16 * (size_t)vecs;
    em_regtile part = *k;
    for (int j = rows; j < EM_REGTILE_MAX_ROWS; j++) part.a[j] = k->a[0];
    part.c = buf;
    part.cj = EM_REGTILE_COLS;
    if (k->accumulate)
        for (int j = 0; j < rows; j++) memcpy(buf + j * EM_REGTILE_COLS, k->c + j * k->cj, row_bytes);
    tile_full(vecs, &part);
    for (int j = 0; j < rows; j++) memcpy(k->c + j * k->cj, buf + j * EM_REGTILE_COLS, row_bytes);
}
#endif
