/* Products of bfloat16 and float16 matrices (gemm_narrow.h): every product summed in float32, the
 * output rounded once to its dtype (to nearest even, subnormals kept: lib/dtype_convert.h).
 *
 * Two routes, chosen at run time:
 *
 * - bfloat16 on CPUs with AVX512_BF16: a GEMM on VDPBF16PS, which multiplies 16 pairs of bfloat16
 *   and adds each pair's two products into a float32 lane. A and B are packed into the pairs the
 *   instruction reads (A: per 6 rows, the pair (a[i][2p], a[i][2p+1]) of each row; B: per 64 columns,
 *   (b[2p][j], b[2p+1][j]) of each column), blocked as BLIS blocks float32: a 6 x 64 tile of sums in
 *   24 registers, a k block of B's columns kept in L1 while the rows of A's block, in L2, pass over
 *   it. The products are exact in float32 (8-bit significands), so each step is one float32 addition
 *   rounded to nearest even, as the float32 GEMM's; what VDPBF16PS does differently is that it does
 *   not read MXCSR and treats subnormal inputs as zero and flushes subnormal results (and partial
 *   sums) to zero. So a sum of length k differs from the exact one by at most
 *       k 2^-24 sum_p |a_p b_p|  +  k 2^-126
 *   (the second term: the flushed subnormals, each below 2^-126), before the output's rounding
 *   (2^-8 |c| for bfloat16). The float32 route has the same first term and no second.
 *   bench/ops compares the route's speed with BLIS's float32 (the aim: at least float32's speed, at half
 *   the bytes).
 *
 * - float16, bfloat16 without AVX512_BF16, and a row or column (m or n 1): blocks of A and B (all of m and n, up to 1024 of k) are
 *   widened to float32 copies and the float32 GEMM (em__gemm: BLIS) adds their product into a float32
 *   copy of C, rounded back at the end. AVX512_FP16's
 *   arithmetic sums in float16, which is too short for training's sums, so float16 never uses it.
 *
 * AMX (AMX-BF16 tiles, 16 x 32 bfloat16 times 32 x 16 into 16 x 16 float32) is detected
 * (em__cpu_has_amx_bf16) but not used yet: no machine at hand has it to test a tile kernel on.
 *
 * Products of at most SMALL_PRODUCT multiply-adds run a plain loop in double. */
#include "gemm_narrow.h"
#include "narrow.h"

#include "../internal.h"
#include "../op.h"

#include <omp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#define BF16_KERNEL 1
#define BF16_TARGET __attribute__((target("avx512f,avx512bf16")))
#endif

#define SMALL_PRODUCT 4096
#define SERIAL_PRODUCT (1 << 20)

static atomic_bool force_float32;

void em__gemm_narrow_force_float32(bool on) { atomic_store(&force_float32, on); }

static bool cpu_has_avx512_bf16(void) {
#ifdef BF16_KERNEL
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16"); /* GCC's check includes the OS saving the zmm registers */
#else
    return false;
#endif
}

static bool bf16_native(em_dtype dtype) {
    return dtype == EM_BF16 && !atomic_load(&force_float32) && cpu_has_avx512_bf16();
}

const char *em__gemm_narrow_route(em_dtype dtype) { return bf16_native(dtype) ? "avx512_bf16" : "float32"; }

bool em__cpu_has_amx_bf16(void) {
#ifdef BF16_KERNEL
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 22)) || !(d & (1u << 24))) return false;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return false; /* OSXSAVE */
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & (3u << 17)) == (3u << 17); /* the OS saves the tile configuration and data */
#else
    return false;
#endif
}

/* ---- conversions between a narrow matrix and a row-major float32 one ---- */

typedef struct {
    em_dtype dtype;
    int64_t cols;
    uint16_t *x; /* the narrow matrix, strides rs, cs */
    int64_t rs, cs;
    float *y; /* the float32 one, row-major with leading dimension ld */
    int64_t ld;
    bool to_narrow;
} convert_job;

/* Rows [r0, r1) of x into y (to_narrow: of y into x), by narrow.h's runs (AVX-512 or F16C where the CPU has
 * them). */
static void convert_rows(void *ctx, int64_t r0, int64_t r1) {
    const convert_job *j = ctx;
    for (int64_t r = r0; r < r1; r++) {
        if (j->to_narrow) em__narrow_round(j->dtype, j->y + r * j->ld, j->x + r * j->rs, j->cs, j->cols);
        else em__narrow_widen(j->dtype, j->x + r * j->rs, j->cs, j->y + r * j->ld, j->cols);
    }
}

/* fn over [0, n) on this thread (serial) or the kernels' threads. */
static void run_range(int64_t n, int64_t grain, em_range_fn fn, void *ctx, bool serial) {
    if (serial) fn(ctx, 0, n);
    else em__parallel_for(n, grain, fn, ctx);
}

static void convert(em_dtype dtype, int64_t rows, int64_t cols, const void *x, int64_t rs, int64_t cs, float *y,
                    int64_t ld, bool to_narrow, bool serial) {
    convert_job j = {dtype, cols, (uint16_t *)x, rs, cs, y, ld, to_narrow};
    run_range(rows, (1 << 16) / (cols + 1) + 1, convert_rows, &j, serial);
}

/* ---- the plain loop, for small products ---- */

static void gemm_loop(em_dtype dtype, int64_t m, int64_t n, int64_t k, const uint16_t *a, int64_t rsa, int64_t csa,
                      const uint16_t *b, int64_t rsb, int64_t csb, bool accumulate, uint16_t *c, int64_t rsc,
                      int64_t csc) {
    const bool bf = dtype == EM_BF16;
#define WIDE(h) (bf ? em_bf16_to_f32(h) : em_f16_to_f32(h))
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            uint16_t *out = c + i * rsc + j * csc;
            double s = accumulate ? WIDE(*out) : 0;
            for (int64_t p = 0; p < k; p++) s += (double)WIDE(a[i * rsa + p * csa]) * WIDE(b[p * rsb + j * csb]);
            *out = bf ? em_convert_bf16(s) : em_convert_f16(s);
        }
#undef WIDE
}

/* ---- through float32 copies ---- */

/* k is cut into blocks of WIDE_K: the copies hold (m + n) WIDE_K floats, not (m + n) k, and each block's
 * product adds into C's float32 copy (BLIS blocks k finer itself). */
#define WIDE_K 1024

static void gemm_widened(em_dtype dtype, int64_t m, int64_t n, int64_t k, const void *a, int64_t rsa, int64_t csa,
                         const void *b, int64_t rsb, int64_t csb, bool accumulate, void *c, int64_t rsc, int64_t csc,
                         bool serial) {
    const int64_t kb = k < WIDE_K ? k : WIDE_K;
    float *aw = em__scratch(sizeof(float) * (size_t)(m * kb)), *bw = em__scratch(sizeof(float) * (size_t)(kb * n)),
          *cw = em__scratch(sizeof(float) * (size_t)(m * n));
    if (!aw || !bw || !cw) {
        em__error("matmul: out of memory for float32 copies of a %lld x %lld by %lld x %lld %s product",
                  (long long)m, (long long)k, (long long)k, (long long)n, em_dtype_name(dtype));
    } else {
        if (accumulate) convert(dtype, m, n, c, rsc, csc, cw, n, false, serial);
        for (int64_t p0 = 0; p0 < k; p0 += kb) {
            const int64_t kc = k - p0 < kb ? k - p0 : kb;
            convert(dtype, m, kc, (const uint16_t *)a + p0 * csa, rsa, csa, aw, kc, false, serial);
            convert(dtype, kc, n, (const uint16_t *)b + p0 * rsb, rsb, csb, bw, n, false, serial);
            em__gemm(EM_F32, m, n, kc, aw, kc, 1, bw, n, 1, accumulate || p0 > 0, cw, n, 1, serial);
        }
        convert(dtype, m, n, c, rsc, csc, cw, n, true, serial);
    }
    em__scratch_free(aw);
    em__scratch_free(bw);
    em__scratch_free(cw);
}

/* ---- bfloat16 on VDPBF16PS ---- */
#ifdef BF16_KERNEL

/* The tile: MR x NR float32 sums in 24 of the 32 vector registers. The k block: KP pairs, so that B's
 * KP x NR panel (32 KiB) stays in L1 while the tiles of A's rows pass over it. A task computes an MC x NC
 * block of C, whose A block (MC rows x KP pairs, 48 KiB) stays in L2 across its column panels. */
enum { MR = 6, NV = 4, NR = 16 * NV, KP = 128, MC = 96, NC = 256 };

static inline uint32_t pair(uint16_t lo, uint16_t hi) { return (uint32_t)lo | (uint32_t)hi << 16; }

/* Pairs [p0, p0 + np) of the k axis of every lane (row of A, or column of B) of x, `lanes` of them, lane l
 * at x + l ls, step ks along k, into panels of R lanes: lane l's pair p (x[l, 2p], x[l, 2p + 1]) at
 * out[(l / R) R np + p R + l % R]. Lanes from `lanes` up to the last panel's end, and the high half of an
 * odd k's last pair, are 0 (they add nothing). x is read in its own order: along the lanes where they are
 * adjacent (B row-major, A transposed), else along k. */
EM_HOT static void pack_block(int R, int64_t lanes, int64_t k, int64_t p0, int64_t np, const uint16_t *x,
                              int64_t ls, int64_t ks, uint32_t *restrict out) {
    const int64_t padded = (lanes + R - 1) / R * R;
    int64_t full = k / 2 - p0; /* pairs of this block with both halves */
    full = full < 0 ? 0 : full > np ? np : full;
#define AT(l, p) out[(l) / R * R * np + (p) * R + (l) % R]
    if (ls == 1) { /* interleave two runs of lanes */
        for (int64_t p = 0; p < full; p++) {
            const uint16_t *lo = x + 2 * (p0 + p) * ks, *hi = lo + ks;
            for (int64_t l0 = 0; l0 < lanes; l0 += R) {
                uint32_t *o = out + l0 * np + p * R;
                const int64_t w = lanes - l0 < R ? lanes - l0 : R;
                _Pragma("omp simd") for (int64_t r = 0; r < w; r++) o[r] = pair(lo[l0 + r], hi[l0 + r]);
            }
        }
    } else if (ks == 1) { /* a pair is a 32-bit word */
        for (int64_t l = 0; l < lanes; l++) {
            const uint16_t *row = x + l * ls + 2 * p0;
            uint32_t *o = &AT(l, 0);
            for (int64_t p = 0; p < full; p++) memcpy(o + p * R, row + 2 * p, sizeof(uint32_t));
        }
    } else {
        for (int64_t l = 0; l < lanes; l++)
            for (int64_t p = 0; p < full; p++)
                AT(l, p) = pair(x[l * ls + 2 * (p0 + p) * ks], x[l * ls + (2 * (p0 + p) + 1) * ks]);
    }
    if (full < np) /* k odd: the last pair */
        for (int64_t l = 0; l < lanes; l++) AT(l, full) = pair(x[l * ls + (k - 1) * ks], 0);
    for (int64_t l = lanes; l < padded; l++)
        for (int64_t p = 0; p < np; p++) AT(l, p) = 0;
#undef AT
}

/* c[MR x NR] (+)= the sums over np pairs of A's packed rows ap and B's packed columns bp. */
static BF16_TARGET void tile(int64_t np, const uint32_t *restrict ap, const uint32_t *restrict bp, float *restrict c,
                             int64_t ldc, bool load) {
    __m512 acc[MR][NV];
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) acc[r][v] = load ? _mm512_loadu_ps(c + r * ldc + 16 * v) : _mm512_setzero_ps();
    for (int64_t p = 0; p < np; p++, ap += MR, bp += NR) {
        __m512bh bv[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) bv[v] = (__m512bh)_mm512_load_si512(bp + 16 * v);
#pragma GCC unroll 6
        for (int r = 0; r < MR; r++) {
            __m512bh av = (__m512bh)_mm512_set1_epi32((int)ap[r]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], av, bv[v]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) _mm512_storeu_ps(c + r * ldc + 16 * v, acc[r][v]);
}

typedef struct {
    int64_t m, n, k, m_pad, n_pad, kp; /* m_pad, n_pad: m and n rounded up to MR and NR; kp: pairs, ceil(k / 2) */
    const uint16_t *a, *b;
    uint16_t *c;
    int64_t rsa, csa, rsb, csb, rsc, csc;
    uint32_t *ap, *bp; /* packed: per k block of KP pairs, its panels in order (MR rows, NR columns) */
    float *sums;       /* per thread, MC x NC float32 sums */
    int64_t nblocks;   /* blocks of NC columns */
    bool accumulate, serial;
} bf16_plan;

/* Packs tasks [t0, t1): task 2b packs A's k block b, task 2b + 1 B's. */
static void pack_blocks(void *ctx, int64_t t0, int64_t t1) {
    const bf16_plan *p = ctx;
    for (int64_t t = t0; t < t1; t++) {
        const int64_t p0 = t / 2 * KP, np = p->kp - p0 < KP ? p->kp - p0 : KP;
        if (t % 2 == 0) pack_block(MR, p->m, p->k, p0, np, p->a, p->rsa, p->csa, p->ap + p0 * p->m_pad);
        else pack_block(NR, p->n, p->k, p0, np, p->b, p->csb, p->rsb, p->bp + p0 * p->n_pad);
    }
}

/* Computes blocks [t0, t1) of C, MC x NC each, row-block-major. */
static void c_blocks(void *ctx, int64_t t0, int64_t t1) {
    const bf16_plan *p = ctx;
    float *sums = p->sums + (p->serial ? 0 : (size_t)omp_get_thread_num() * MC * NC);
    for (int64_t t = t0; t < t1; t++) {
        const int64_t i0 = t / p->nblocks * MC, j0 = t % p->nblocks * NC;
        const int64_t mc = p->m_pad - i0 < MC ? p->m_pad - i0 : MC, nc = p->n_pad - j0 < NC ? p->n_pad - j0 : NC;
        const int64_t rows = p->m - i0 < mc ? p->m - i0 : mc, cols = p->n - j0 < nc ? p->n - j0 : nc;
        uint16_t *c = p->c + i0 * p->rsc + j0 * p->csc;
        convert_job io = {EM_BF16, cols, c, p->rsc, p->csc, sums, NC, false};
        if (p->accumulate) convert_rows(&io, 0, rows);
        for (int64_t p0 = 0; p0 < p->kp; p0 += KP) {
            const int64_t np = p->kp - p0 < KP ? p->kp - p0 : KP;
            const uint32_t *ab = p->ap + p0 * p->m_pad + i0 * np, *bb = p->bp + p0 * p->n_pad + j0 * np;
            for (int64_t jr = 0; jr < nc; jr += NR)
                for (int64_t ir = 0; ir < mc; ir += MR)
                    tile(np, ab + ir * np, bb + jr * np, sums + ir * NC + jr, NC, p0 > 0 || p->accumulate);
        }
        io.to_narrow = true;
        convert_rows(&io, 0, rows);
    }
}

static void gemm_bf16(int64_t m, int64_t n, int64_t k, const void *a, int64_t rsa, int64_t csa, const void *b,
                      int64_t rsb, int64_t csb, bool accumulate, void *c, int64_t rsc, int64_t csc, bool serial) {
    bf16_plan p = {.m = m, .n = n, .k = k, .m_pad = (m + MR - 1) / MR * MR, .n_pad = (n + NR - 1) / NR * NR,
                   .kp = (k + 1) / 2, .a = a, .b = b, .c = c, .rsa = rsa, .csa = csa, .rsb = rsb, .csb = csb,
                   .rsc = rsc, .csc = csc, .accumulate = accumulate, .serial = serial};
    p.nblocks = (p.n_pad + NC - 1) / NC;
    const int64_t blocks = (p.m_pad + MC - 1) / MC * p.nblocks;
    const int threads = serial ? 1 : em__threads();
    /* the kernels' scratch blocks: 64-byte aligned, no page faults in steady state */
    p.ap = em__scratch(sizeof(uint32_t) * (size_t)(p.m_pad * p.kp));
    p.bp = em__scratch(sizeof(uint32_t) * (size_t)(p.n_pad * p.kp));
    p.sums = em__scratch(sizeof(float) * MC * NC * (size_t)threads);
    if (!p.ap || !p.bp || !p.sums) {
        em__error("matmul: out of memory for the packed operands of a %lld x %lld by %lld x %lld bfloat16 product",
                  (long long)m, (long long)k, (long long)k, (long long)n);
    } else {
        run_range(2 * ((p.kp + KP - 1) / KP), 1, pack_blocks, &p, serial);
        run_range(blocks, 1, c_blocks, &p, serial);
    }
    em__scratch_free(p.ap);
    em__scratch_free(p.bp);
    em__scratch_free(p.sums);
}
#endif

void em__gemm_narrow(em_dtype dtype, int64_t m, int64_t n, int64_t k, const void *a, int64_t rsa, int64_t csa,
                     const void *b, int64_t rsb, int64_t csb, bool accumulate, void *c, int64_t rsc, int64_t csc,
                     bool single_thread) {
    if (m == 0 || n == 0) return;
    if (m * n * k <= SMALL_PRODUCT) {
        gemm_loop(dtype, m, n, k, a, rsa, csa, b, rsb, csb, accumulate, c, rsc, csc);
        return;
    }
    /* Inside a parallel region (a graph level running nodes at once, or matmul's batches) one thread; and
     * below SERIAL_PRODUCT multiply-adds, where waking the threads costs more than it saves. */
    const bool serial = single_thread || omp_in_parallel() || m * n * k < SERIAL_PRODUCT;
#ifdef BF16_KERNEL
    /* A row times a matrix, or a matrix times a column, is bound by the bytes of the matrix: packing it
     * for VDPBF16PS would cost more than the products, while the float32 route's blocks stay in cache and
     * BLIS's gemv reads them in place. */
    if (bf16_native(dtype) && m > 1 && n > 1) {
        gemm_bf16(m, n, k, a, rsa, csa, b, rsb, csb, accumulate, c, rsc, csc, serial);
        return;
    }
#endif
    gemm_widened(dtype, m, n, k, a, rsa, csa, b, rsb, csb, accumulate, c, rsc, csc, serial);
}
