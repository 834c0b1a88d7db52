/* Matrix multiply: [..., m, k] x [..., k, n] -> [..., m, n], batch dims
 * broadcast. Float dtypes call BLIS's typed API with each operand's own row
 * and column strides, so transposed and strided views are multiplied in place
 * (EM_OPF_STRIDED: the dispatcher copies nothing). bfloat16 and float16 sum
 * in float32 (gemm_narrow.c: VDPBF16PS where the CPU has it, else float32
 * copies through BLIS), reading any strides too. Integer dtypes run a plain
 * loop.
 *
 * Attributes: i[0] transpose_a, i[1] transpose_b (0 or 1). */
#include "../gpu.h"
#include "../internal.h"
#include "gemm_narrow.h"
#include "regtile.h"

#include <blis.h>
#include <omp.h>


/* BLIS ignores the stride of a size-1 dimension but still checks it; give it
 * a value BLIS accepts, then say whether BLIS accepts the pair (its rules:
 * bli_check_matrix_strides). */
static bool blis_strides(int64_t m, int64_t n, int64_t *rs, int64_t *cs) {
    if (m == 1 && n == 1) {
        *rs = *cs = 1;
        return true;
    }
    if (m == 1) *rs = n * *cs;
    if (n == 1) *cs = m * *rs;
    int64_t r = *rs, c = *cs;
    if (r <= 0 || c <= 0) return false;
    if (r == 1) return c != 1 && c >= m;
    if (c == 1) return r >= n;
    if (r == c) return false;
    return r < c ? m * r <= c : n * c <= r;
}

#define SMALL_GEMM 4096

/* The plain loop: double accumulation for floats, wrapping uint64 for ints. */
#define GEMM_LOOP(T, ACC)                                                                     \
    do {                                                                                      \
        const T *A = a, *B = b;                                                               \
        T *C = c;                                                                             \
        for (int64_t i = 0; i < m; i++)                                                       \
            for (int64_t j = 0; j < n; j++) {                                                 \
                ACC s = accumulate ? (ACC)C[i * rsc + j * csc] : 0;                           \
                for (int64_t p = 0; p < k; p++) s += (ACC)A[i * rsa + p * csa] * (ACC)B[p * rsb + j * csb]; \
                C[i * rsc + j * csc] = (T)s;                                                  \
            }                                                                                 \
    } while (0)

/* ---- small float32 products on the register-tile kernel (regtile.h) ---- */
#ifdef EM_REGTILE_KERNEL
/* C (+)= A B in tiles read straight from A and B, for float32 products of at
 * most TILE_GEMM_MAX multiply-adds whose B and C rows are contiguous and a
 * multiple of 16 wide: there BLIS's setup and packing cost more than the
 * product (64^3: 15 us against 2.6). Each output is one sequential float32
 * sum, so k stays at most TILE_GEMM_MAX_K (BLIS blocks longer sums). false:
 * not taken. */
enum { TILE_GEMM_MAX = 1 << 21, TILE_GEMM_MAX_N = 256, TILE_GEMM_MAX_K = 1024 };
static bool tile_gemm(int64_t m, int64_t n, int64_t k, const float *a, int64_t rsa, int64_t csa, const float *b,
                      int64_t rsb, int64_t csb, bool accumulate, float *c, int64_t rsc, int64_t csc) {
    if (csb != 1 || csc != 1 || n % 16 != 0 || n > TILE_GEMM_MAX_N || k > TILE_GEMM_MAX_K ||
        m * n * k > TILE_GEMM_MAX || !em__regtile_ready())
        return false;
    for (int64_t o0 = 0; o0 < n; o0 += EM_REGTILE_COLS) {
        int vecs = em__regtile_vecs(n - o0), full = em__regtile_rows(vecs);
        em_regtile t = {.b = b + o0, .nr = 1, .nt = k, .at = csa, .bt = rsb, .cj = rsc, .accumulate = accumulate};
        for (int64_t i = 0; i < m; i += full) {
            int rows = (int)(m - i < full ? m - i : full);
            for (int r = 0; r < rows; r++) t.a[r] = a + (i + r) * rsa;
            t.c = c + i * rsc + o0;
            em__regtile_run(rows, vecs, &t);
        }
    }
    return true;
}

/* Products with few rows and a large B (a batch of 100 through a 3136 x 1024
 * layer: the forward product, and dx = dy W^T): BLIS packs all of B for
 * every call, and each packed element then serves only m multiply-adds. perf
 * put 44% of the forward product in that packing, which reads B a 16-column
 * panel at a time, its rows 4 KB apart, at about 6 GB/s. Here B is packed
 * too, but read along its contiguous dimension into a buffer that stays in
 * L2, and every row tile of a then runs over each 64-column panel on the
 * register-tile kernel:
 * - B's rows contiguous: SKINNY_KC rows at a time, SKINNY_GROUP panels wide,
 *   read row after row;
 * - B's columns contiguous (B transposed): one panel at a time, SKINNY_KC *
 *   SKINNY_GROUP rows deep, read column after column (a gather per row).
 * The last n % 16 columns are left to the caller (BLIS). Each output sums
 * its k products in float32 runs of at most 1024, as the small-product path
 * does. Threads take contiguous ranges of panels, each with its own buffer,
 * so results do not depend on the thread count. */
enum { SKINNY_MAX_M = 192, SKINNY_MIN_NK = 1 << 18, SKINNY_KC = 64, SKINNY_GROUP = 16 };
#define SKINNY_BUFFER (SKINNY_KC * SKINNY_GROUP * EM_REGTILE_COLS)
typedef struct {
    int64_t m, n, k, rsa, csa, rsb, csb, rsc, grain;
    const float *a, *b;
    float *c, *buffers;
    bool accumulate;
} skinny;

/* Rows [p0, p0 + kc) of B's columns [o0, o0 + cols) into `packed`: each 64-column panel (the last one
 * narrower) as kc rows of its width. A loop, not memcpy: GCC makes a 256-byte memcpy of unknown size a
 * slow rep movs. */
EM_HOT static void skinny_pack(const skinny *s, int64_t p0, int64_t kc, int64_t o0, int64_t cols, float *packed) {
    if (s->csb != 1) { /* B transposed: 16 of its contiguous columns at a time, a gather per row */
        for (int64_t p = 0; p < cols; p += EM_REGTILE_COLS) {
            int64_t width = cols - p < EM_REGTILE_COLS ? cols - p : EM_REGTILE_COLS;
            for (int64_t j0 = 0; j0 < width; j0 += 16) {
                const float *restrict src = s->b + p0 * s->rsb + (o0 + p + j0) * s->csb;
                float *restrict dst = packed + p * kc + j0;
                for (int64_t t = 0; t < kc; t++) {
                    _Pragma("omp simd") for (int32_t j = 0; j < 16; j++) dst[t * width + j] = src[t + j * s->csb];
                }
            }
        }
        return;
    }
    for (int64_t t = 0; t < kc; t++)
        for (int64_t p = 0; p < cols; p += EM_REGTILE_COLS) {
            int64_t width = cols - p < EM_REGTILE_COLS ? cols - p : EM_REGTILE_COLS;
            float *restrict dst = packed + p * kc + t * width;
            const float *restrict src = s->b + (p0 + t) * s->rsb + o0 + p;
            _Pragma("omp simd") for (int64_t j = 0; j < width; j++) dst[j] = src[j];
        }
}

static void skinny_panels(void *ctx, int64_t first, int64_t end) {
    const skinny *s = ctx;
    float *buffer = s->buffers + first / s->grain * SKINNY_BUFFER;
    /* the same buffer: SKINNY_KC rows of SKINNY_GROUP panels, or SKINNY_KC * SKINNY_GROUP rows of one */
    int64_t group = s->csb == 1 ? SKINNY_GROUP : 1, depth = SKINNY_KC * SKINNY_GROUP / group;
    for (int64_t g = first; g < end; g += group) {
        int64_t o0 = g * EM_REGTILE_COLS, last = (g + group < end ? g + group : end) * EM_REGTILE_COLS;
        int64_t cols = (last < s->n ? last : s->n) - o0;
        for (int64_t p0 = 0; p0 < s->k; p0 += depth) {
            int64_t kc = s->k - p0 < depth ? s->k - p0 : depth;
            skinny_pack(s, p0, kc, o0, cols, buffer);
            for (int64_t p = 0; p < cols; p += EM_REGTILE_COLS) {
                int vecs = em__regtile_vecs(cols - p), full = em__regtile_rows(vecs);
                em_regtile t = {.b = buffer + p * kc, .nr = 1, .nt = kc, .at = s->csa, .bt = 16 * vecs,
                                .cj = s->rsc, .accumulate = s->accumulate || p0 > 0};
                for (int64_t i = 0; i < s->m; i += full) {
                    int rows = (int)(s->m - i < full ? s->m - i : full);
                    for (int r = 0; r < rows; r++) t.a[r] = s->a + (i + r) * s->rsa + p0 * s->csa;
                    t.c = s->c + i * s->rsc + o0 + p;
                    em__regtile_run(rows, vecs, &t);
                }
            }
        }
    }
}

/* Computes c's first columns, a multiple of 16 (the caller does the rest); returns how many (0: not taken). */
static int64_t skinny_gemm(int64_t m, int64_t n, int64_t k, const float *a, int64_t rsa, int64_t csa, const float *b,
                           int64_t rsb, int64_t csb, bool accumulate, float *c, int64_t rsc, int64_t csc,
                           bool single_thread) {
    int64_t cols = n / 16 * 16;
    if (m > SKINNY_MAX_M || (csb != 1 && rsb != 1) || csc != 1 || cols * k < SKINNY_MIN_NK || !em__regtile_ready())
        return 0;
    int64_t panels = (cols + EM_REGTILE_COLS - 1) / EM_REGTILE_COLS;
    int threads = single_thread ? 1 : em__threads();
    int64_t grain = (panels + threads - 1) / threads, chunks = (panels + grain - 1) / grain;
    float *buffers = em__scratch(sizeof(float) * SKINNY_BUFFER * (size_t)chunks); /* cached: no page faults */
    if (!buffers) return 0; /* BLIS then */
    skinny s = {m, cols, k, rsa, csa, rsb, csb, rsc, grain, a, b, c, buffers, accumulate};
    em__parallel_for(panels, grain, skinny_panels, &s);
    em__scratch_free(buffers);
    return cols;
}
#endif

/* c (+)= a B for one float32 row a and a B whose rows are contiguous, as
 * batch-1 inference multiplies: one pass over the rows of B, each scaled
 * into c (which stays in L1), skipping the rows that a zero of a selects,
 * as the reference BLAS gemv does. Such products are bound by the bytes of B
 * they read, and a ReLU's output is about half zeros. */
EM_HOT static void row_times_rows(int64_t n, int64_t k, const float *a, int64_t csa, const float *b, int64_t rsb,
                                  bool accumulate, float *restrict c) {
    if (!accumulate) memset(c, 0, sizeof(float) * (size_t)n);
    for (int64_t p = 0; p < k; p++) {
        const float s = a[p * csa];
        if (s == 0) continue;
        const float *restrict row = b + p * rsb;
        _Pragma("omp simd") for (int64_t j = 0; j < n; j++) c[j] += s * row[j];
    }
}

void em__gemm(em_dtype dtype, int64_t m, int64_t n, int64_t k, const void *a, int64_t rsa, int64_t csa,
              const void *b, int64_t rsb, int64_t csb, bool accumulate, void *c, int64_t rsc, int64_t csc,
              bool single_thread) {
    if (m == 0 || n == 0) return;
    if (em__is_narrow(dtype)) {
        em__gemm_narrow(dtype, m, n, k, a, rsa, csa, b, rsb, csb, accumulate, c, rsc, csc, single_thread);
        return;
    }
    int64_t ra = rsa, ca = csa, rb = rsb, cb = csb, rc = rsc, cc = csc;
#ifdef EM_REGTILE_KERNEL
    if (dtype == EM_F32 && k > 0 && m * n * k > SMALL_GEMM &&
        tile_gemm(m, n, k, a, rsa, csa, b, rsb, csb, accumulate, c, rsc, csc))
        return;
    if (dtype == EM_F32 && m > 1 && k > 0) {
        int64_t done = skinny_gemm(m, n, k, a, rsa, csa, b, rsb, csb, accumulate, c, rsc, csc, single_thread);
        if (done == n) return;
        b = (const float *)b + done * csb; /* the last n % 16 columns go on */
        c = (float *)c + done * csc;
        n -= done;
    }
#endif
    if (dtype == EM_F32 && m == 1 && csb == 1 && csc == 1 && k > 0 && n * k > SMALL_GEMM) {
        row_times_rows(n, k, a, csa, b, rsb, accumulate, c);
        return;
    }
    /* Below a few thousand multiply-adds BLIS's setup costs more than the
     * product (about 1 us a call): the plain loop runs those. */
    if (em__is_float(dtype) && k > 0 && m * n * k > SMALL_GEMM && blis_strides(m, k, &ra, &ca) &&
        blis_strides(k, n, &rb, &cb) &&
        blis_strides(m, n, &rc, &cc)) {
        rntm_t one = BLIS_RNTM_INITIALIZER, *rntm = NULL;
        em__blis_ready();
        /* Inside a parallel region (a graph level running nodes at once) this
         * product has one thread; BLIS's own team would only contend. On a
         * logical device it has that device's threads. */
        if (single_thread || em__run_threads || omp_in_parallel()) {
            bli_rntm_set_num_threads(single_thread || (!em__run_threads && omp_in_parallel()) ? 1 : em__run_threads,
                                     &one);
            rntm = &one;
        } else {
            (void)em_num_threads(); /* hands the thread count to BLIS on first use */
        }
        /* A row times a matrix (batch-1 inference) or a matrix times a
         * column: BLIS's gemv reads the matrix in place, where gemm would
         * first pack all of it (a 3136 x 1024 layer: 8 ms against 0.5). */
        if ((m == 1 || n == 1) && dtype == EM_F32) {
            float alpha = 1, beta = accumulate;
            if (m == 1)
                bli_sgemv_ex(BLIS_TRANSPOSE, BLIS_NO_CONJUGATE, k, n, &alpha, (float *)b, rb, cb, (float *)a, ca, &beta,
                             c, cc, NULL, rntm);
            else
                bli_sgemv_ex(BLIS_NO_TRANSPOSE, BLIS_NO_CONJUGATE, m, k, &alpha, (float *)a, ra, ca, (float *)b, rb,
                             &beta, c, rc, NULL, rntm);
        } else if ((m == 1 || n == 1) && dtype == EM_F64) {
            double alpha = 1, beta = accumulate;
            if (m == 1)
                bli_dgemv_ex(BLIS_TRANSPOSE, BLIS_NO_CONJUGATE, k, n, &alpha, (double *)b, rb, cb, (double *)a, ca,
                             &beta, c, cc, NULL, rntm);
            else
                bli_dgemv_ex(BLIS_NO_TRANSPOSE, BLIS_NO_CONJUGATE, m, k, &alpha, (double *)a, ra, ca, (double *)b, rb,
                             &beta, c, rc, NULL, rntm);
        } else if (dtype == EM_F32) {
            float alpha = 1, beta = accumulate;
            bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, m, n, k, &alpha, (float *)a, ra, ca, (float *)b, rb,
                         cb, &beta, c, rc, cc, NULL, rntm);
        } else {
            double alpha = 1, beta = accumulate;
            bli_dgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, m, n, k, &alpha, (double *)a, ra, ca, (double *)b, rb,
                         cb, &beta, c, rc, cc, NULL, rntm);
        }
        return;
    }
    switch (dtype) {
    case EM_F32: GEMM_LOOP(float, double); break;
    case EM_F64: GEMM_LOOP(double, double); break;
    case EM_I32: GEMM_LOOP(int32_t, uint64_t); break;
    case EM_I64: GEMM_LOOP(int64_t, uint64_t); break;
    case EM_U8: GEMM_LOOP(uint8_t, uint64_t); break;
    case EM_I8: GEMM_LOOP(int8_t, uint64_t); break;
    case EM_I16: GEMM_LOOP(int16_t, uint64_t); break;
    case EM_U16: GEMM_LOOP(uint16_t, uint64_t); break;
    default: break; /* bool: rejected by the shape rule */
    }
}

/* ---- the op ---- */

typedef struct {
    int64_t m, n, k;
    int nb;                                /* batch rank of the output */
    int64_t bshape[EM_MAX_DIMS];           /* output batch shape */
    int64_t bsa[EM_MAX_DIMS], bsb[EM_MAX_DIMS]; /* batch strides, 0 where broadcast */
    int64_t rsa, csa, rsb, csb;            /* strides of op(a) and op(b) */
    const char *a, *b;
    char *c;
    size_t esize;
    em_dtype dtype;
    bool single_thread;
} mm_plan;

static void mm_batches(void *ctx, int64_t begin, int64_t end) {
    const mm_plan *p = ctx;
    for (int64_t t = begin; t < end; t++) {
        int64_t oa = 0, ob = 0, r = t;
        for (int d = p->nb - 1; d >= 0; d--) {
            int64_t i = r % p->bshape[d];
            r /= p->bshape[d];
            oa += i * p->bsa[d];
            ob += i * p->bsb[d];
        }
        em__gemm(p->dtype, p->m, p->n, p->k, p->a + (size_t)oa * p->esize, p->rsa, p->csa,
                 p->b + (size_t)ob * p->esize, p->rsb, p->csb, false, p->c + (size_t)(t * p->m * p->n) * p->esize,
                 p->n, 1, p->single_thread);
    }
}

/* Batch strides of x aligned to the output's nb batch dims. */
static void batch_strides(const em_tensor *x, int nb, int64_t *bs) {
    int lead = nb - (x->ndim - 2);
    for (int d = 0; d < nb; d++) {
        int xd = d - lead;
        bs[d] = xd < 0 || x->shape[xd] == 1 ? 0 : x->strides[xd];
    }
}

/* "<what>: [3,5] x [4,1]<note>": shapes are formatted only when there is an error. */
static int mm_error(const em_call *c, const char *what, const char *note) {
    char sa[160], sb[160];
    return em__op_error(c, "%s: %s x %s%s", what, em__tshape(c->in[0], sa, sizeof sa),
                        em__tshape(c->in[1], sb, sizeof sb), note);
}

static int matmul_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    const em_tensor *a = c->in[0], *b = c->in[1];
    if (a->ndim < 2 || b->ndim < 2) return mm_error(c, "both operands need at least 2 dimensions", "");
    if (a->dtype != b->dtype) {
        char sa[160], sb[160];
        return em__op_error(c, "dtypes differ: %s %s x %s %s", em_dtype_name((em_dtype)a->dtype),
                            em__tshape(a, sa, sizeof sa), em_dtype_name((em_dtype)b->dtype), em__tshape(b, sb, sizeof sb));
    }
    if (a->dtype == EM_BOOL) return mm_error(c, "dtype bool is not supported", "");
    bool ta = c->a->i[0], tb = c->a->i[1];
    int64_t m = a->shape[a->ndim - (ta ? 1 : 2)], ka = a->shape[a->ndim - (ta ? 2 : 1)];
    int64_t kb = b->shape[b->ndim - (tb ? 1 : 2)], n = b->shape[b->ndim - (tb ? 2 : 1)];
    if (ka != kb)
        return mm_error(c, "inner dimensions differ",
                        ta && tb ? " (a and b transposed)" : ta ? " (a transposed)" : tb ? " (b transposed)" : "");
    int nb = (a->ndim > b->ndim ? a->ndim : b->ndim) - 2;
    for (int d = 0; d < nb; d++) {
        int da = d - (nb - (a->ndim - 2)), db = d - (nb - (b->ndim - 2));
        int64_t xa = da < 0 ? 1 : a->shape[da], xb = db < 0 ? 1 : b->shape[db];
        if (xa != xb && xa != 1 && xb != 1) return mm_error(c, "batch dimensions cannot be broadcast", "");
        shape[d] = xa == 1 ? xb : xa;
    }
    shape[nb] = m;
    shape[nb + 1] = n;
    *ndim = nb + 2;
    *dtype = (em_dtype)a->dtype;
    return 0;
}

static void matmul_cpu(const em_call *c, em_tensor *out) {
    const em_tensor *a = c->in[0], *b = c->in[1];
    bool ta = c->a->i[0], tb = c->a->i[1];
    mm_plan p = {.nb = out->ndim - 2, .dtype = (em_dtype)out->dtype, .esize = em_dtype_size((em_dtype)out->dtype)};
    p.m = out->shape[p.nb];
    p.n = out->shape[p.nb + 1];
    p.k = a->shape[a->ndim - (ta ? 2 : 1)];
    if (out->numel == 0) return;
    if (p.k == 0) {
        memset(out->data, 0, (size_t)out->numel * p.esize);
        return;
    }
    const int64_t *sa = a->strides + a->ndim - 2, *sb = b->strides + b->ndim - 2;
    p.rsa = sa[ta ? 1 : 0];
    p.csa = sa[ta ? 0 : 1];
    p.rsb = sb[tb ? 1 : 0];
    p.csb = sb[tb ? 0 : 1];
    memcpy(p.bshape, out->shape, sizeof(int64_t) * (size_t)p.nb);
    batch_strides(a, p.nb, p.bsa);
    batch_strides(b, p.nb, p.bsb);
    p.a = a->data;
    p.b = b->data;
    p.c = out->data;
    int64_t batches = out->numel / (p.m * p.n);
    /* Many small products: one single-threaded product per task; otherwise
     * BLIS threads each product. Either way each element is computed alike. */
    p.single_thread = batches > 1 && (!em__is_float(p.dtype) || p.m * p.n * p.k <= (int64_t)1 << 21) &&
                      em__threads() > 1;
    if (p.single_thread)
        em__parallel_for(batches, 1, mm_batches, &p);
    else
        mm_batches(&p, 0, batches);
}

/* C = op(A) op(B): dA = G op(B)^T (transposed back if A was), dB = op(A)^T G
 * (likewise), each summed over the batch dims its operand was broadcast on. */
static int matmul_grad(const em_call *c, em_tensor *out, em_tensor *g, const bool *need, em_tensor **gin) {
    (void)out;
    em_tensor *a = c->in[0], *b = c->in[1];
    bool ta = c->a->i[0], tb = c->a->i[1];
    if (need[0]) {
        em_tensor *da = ta ? em_matmul_t(b, g, tb, true) : em_matmul_t(g, b, false, !tb);
        if (!(gin[0] = em__sum_to_shape(da, a->ndim, a->shape))) return -1;
    }
    if (need[1]) {
        em_tensor *db = tb ? em_matmul_t(g, a, true, ta) : em_matmul_t(a, g, !ta, false);
        if (!(gin[1] = em__sum_to_shape(db, b->ndim, b->shape))) return -1;
    }
    return 0;
}

/* One multiply-add per element of the contracted axis. */
static int64_t matmul_cost(const em_call *c) {
    const em_tensor *a = c->in[0];
    return a->shape[a->ndim - (c->a->i[0] ? 2 : 1)];
}

#define EM_OP(ID, name, arity, dtypes, grad, kernel, flags, cost) \
    EM_OP_ROW(ID, name, arity, dtypes, grad, kernel, flags, cost, name##_infer, name##_cpu, NULL, name##_grad)
#include "matmul.def"
#undef EM_OP

em_tensor *em_matmul_t(em_tensor *a, em_tensor *b, bool transpose_a, bool transpose_b) {
    em_attrs at = {.i = {transpose_a, transpose_b}, .ni = 2};
    em_tensor *in[2] = {a, b};
    return em__apply(EM_OP_MATMUL, 2, in, &at);
}

em_tensor *em_matmul(em_tensor *a, em_tensor *b) { return em_matmul_t(a, b, false, false); }
