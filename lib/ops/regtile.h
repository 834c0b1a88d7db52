/* The AVX-512 register-tile kernel (lib/ops/regtile.c; x86-64 with GCC or
 * clang), float32. Private to lib/ops/: the direct convolutions (conv.c)
 * and small float32 products (matmul.c) run on it.
 *
 * One output tile of `rows` rows and `vecs` vectors of 16 floats: for j <
 * rows, v < vecs,
 *   c[j*cj + 16v..] (+)= sum over r < nr, t < nt of
 *       a[j][r*ar + t*at] * b[r*br + t*bt + 16v..]
 * (accumulate: added to what c holds); with bias set, relu(that + bias[16v..])
 * is stored instead (nn_math.h's bias_relu: a convolution's fused epilogue).
 * Call only when em__regtile_ready() (the CPU has AVX-512). */
#ifndef EMBER_OPS_REGTILE_H
#define EMBER_OPS_REGTILE_H

#include <stdbool.h>
#include <stdint.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define EM_REGTILE_KERNEL 1
enum { EM_REGTILE_MAX_ROWS = 12, EM_REGTILE_VECS = 4, EM_REGTILE_COLS = 16 * EM_REGTILE_VECS };
typedef struct {
    const float *a[EM_REGTILE_MAX_ROWS];
    const float *b;
    float *c;
    int64_t nr, nt, ar, at, br, bt, cj;
    bool accumulate;
    const float *bias;
} em_regtile;
bool em__regtile_ready(void);
/* Rows of a full tile `vecs` vectors wide (6, 8, 12 or 12). */
int em__regtile_rows(int vecs);
/* Vectors of the tile starting `cols` columns before the end (a multiple of 16). */
static inline int em__regtile_vecs(int64_t cols) { return cols / 16 < EM_REGTILE_VECS ? (int)(cols / 16) : EM_REGTILE_VECS; }
/* rows <= em__regtile_rows(vecs); a shorter tile costs a full one. */
void em__regtile_run(int rows, int vecs, const em_regtile *k);
#endif

#endif
