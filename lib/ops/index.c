/* The index family: gather_nd and its gradient scatter_nd pick and add
 * slices by index tuples; top_k ranks each row of the last axis. The
 * composites tensor_scatter_add, unsorted_segment_sum, top_k's values, sort
 * and argsort are built on them and em_gather (lib/ops/shape.c). */
#include "../internal.h"
#include "index_math.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>

#define SHAPE_BUF 160
#define SCATTER_BLOCK 512   /* columns per parallel item of scatter_nd: a column adds its tuples in order */
#define TOPK_SELECT_MAX 32  /* k up to this selects with an insertion buffer; larger k sorts the whole row */
#define TOPK_FILTER 16      /* elements compared at once against the k-th best before the exact test */

static size_t esize(const em_tensor *t) { return em_dtype_size((em_dtype)t->dtype); }

static int64_t prod(const int64_t *d, int from, int to) {
    int64_t n = 1;
    for (int k = from; k < to; k++) n *= d[k];
    return n;
}

/* ---- index tuples: the checks gather_nd and scatter_nd share ---- */

/* Checks that indices are of an index dtype with a last axis of M <= limit_rank
 * components (the tuple length), and, when their values are known, that every
 * tuple lies inside dims[0..M-1] (of the tensor `target`, named in errors). */
static int check_tuples(const em_call *c, const em_tensor *ind, int limit_rank, const int64_t *dims,
                        const em_tensor *target) {
    char b1[SHAPE_BUF], b2[SHAPE_BUF];
    if (!em_is_index_dtype(ind->dtype))
        return em__op_error(c, "indices must be " EM_INDEX_DTYPES ", not %s", em_dtype_name((em_dtype)ind->dtype));
    if (ind->ndim == 0) return em__op_error(c, "indices must have at least one dimension (the tuples' last), not a scalar");
    int64_t m = ind->shape[ind->ndim - 1];
    if (m > limit_rank)
        return em__op_error(c, "index tuples of %" PRId64 " components (indices %s) exceed the %d dimensions of %s", m,
                            em__tshape(ind, b1, sizeof b1), limit_rank, em__tshape(target, b2, sizeof b2));
    if (!ind->data || m == 0) return 0;
    const em_tensor *dense = ind;
    em_tensor *copy = NULL;
    if (!em__is_contiguous(ind)) {
        if (!(copy = em__alloc((em_dtype)ind->dtype, ind->ndim, ind->shape))) return -1;
        em__copy_strided(copy, ind);
        dense = copy;
    }
    int rc = 0;
    size_t tsize = (size_t)m * esize(dense);
    for (int64_t t = 0; t < dense->numel / m && rc == 0; t++) {
        const char *tuple = (const char *)dense->data + t * (int64_t)tsize;
        if (em_index_nd_row(tuple, dense->dtype, (int)m, dims) >= 0) continue;
        char tb[SHAPE_BUF];
        size_t at = 0;
        for (int k = 0; k < m && at < sizeof tb; k++) {
            int64_t v = em_index_at(tuple, dense->dtype, k);
            at += (size_t)snprintf(tb + at, sizeof tb - at, "%s%" PRId64, k ? "," : "", v);
        }
        rc = em__op_error(c, "index tuple %" PRId64 " (%s) is out of range for %s", t, tb,
                          em__tshape(target, b1, sizeof b1));
    }
    if (copy) em__unref(copy);
    return rc;
}

/* ---- gather_nd(params, indices) ---- */

static int gather_nd_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    const em_tensor *x = c->in[0], *ind = c->in[1];
    if (check_tuples(c, ind, x->ndim, x->shape, x)) return -1;
    int m = (int)ind->shape[ind->ndim - 1], nd = ind->ndim - 1 + x->ndim - m;
    if (nd > EM_MAX_DIMS) return em__op_error(c, "result rank %d exceeds %d", nd, EM_MAX_DIMS);
    int n = 0;
    for (int d = 0; d < ind->ndim - 1; d++) shape[n++] = ind->shape[d];
    for (int d = m; d < x->ndim; d++) shape[n++] = x->shape[d];
    *ndim = nd;
    *dtype = (em_dtype)x->dtype;
    return 0;
}

typedef struct {
    const char *src, *tuples;
    char *dst;
    const int64_t *dims;
    int m;
    int idx_dtype;
    size_t tuple_bytes;
    int64_t slice_bytes;
} gather_nd_ctx;

static void gather_nd_rows(void *p, int64_t begin, int64_t end) {
    const gather_nd_ctx *k = p;
    for (int64_t t = begin; t < end; t++) {
        int64_t row = em_index_nd_row(k->tuples + t * (int64_t)k->tuple_bytes, k->idx_dtype, k->m, k->dims);
        memcpy(k->dst + t * k->slice_bytes, k->src + row * k->slice_bytes, (size_t)k->slice_bytes);
    }
}

static void gather_nd_cpu(const em_call *c, em_tensor *out) {
    const em_tensor *x = c->in[0], *ind = c->in[1];
    int m = (int)ind->shape[ind->ndim - 1];
    int64_t slice = prod(x->shape, m, x->ndim) * (int64_t)esize(x), ntuples = ind->numel / (m ? m : 1);
    if (m == 0) ntuples = prod(ind->shape, 0, ind->ndim - 1);
    gather_nd_ctx k = {x->data, ind->data, out->data, x->shape, m, ind->dtype, (size_t)m * esize(ind), slice};
    em__parallel_for(ntuples, slice >= 65536 ? 1 : 65536 / (slice ? slice : 1), gather_nd_rows, &k);
}

static int gather_nd_grad(const em_call *c, em_tensor *out, em_tensor *gout, const bool *need, em_tensor **gin) {
    (void)out;
    (void)need;
    const em_tensor *x = c->in[0];
    em_attrs a = {.ni = x->ndim};
    memcpy(a.i, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    gin[0] = em__apply(EM_OP_SCATTER_ND, 2, (em_tensor *[]){gout, c->in[1]}, &a);
    return gin[0] ? 0 : -1;
}

/* ---- scatter_nd(updates, indices), attrs: the output's shape ---- */

static int scatter_nd_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    const em_tensor *u = c->in[0], *ind = c->in[1];
    char b1[SHAPE_BUF], b2[SHAPE_BUF], b3[SHAPE_BUF];
    int nd = c->a->ni;
    em_tensor target = {.dtype = u->dtype, .ndim = (uint8_t)nd};
    for (int d = 0; d < nd; d++) {
        if (c->a->i[d] < 0) return em__op_error(c, "shape has a negative dimension %" PRId64, c->a->i[d]);
        target.shape[d] = shape[d] = c->a->i[d];
    }
    if (u->dtype == EM_BOOL) return em__op_error(c, "updates must be numeric, not bool");
    if (check_tuples(c, ind, nd, shape, &target)) return -1;
    int m = (int)ind->shape[ind->ndim - 1];
    /* updates = indices.shape[:-1] + shape[m:] */
    bool ok = u->ndim == ind->ndim - 1 + nd - m;
    for (int d = 0; ok && d < ind->ndim - 1; d++) ok = u->shape[d] == ind->shape[d];
    for (int d = m; ok && d < nd; d++) ok = u->shape[ind->ndim - 1 + d - m] == shape[d];
    if (!ok)
        return em__op_error(c, "updates %s do not match indices %s and shape %s (indices.shape[:-1] + shape[%d:])",
                            em__tshape(u, b1, sizeof b1), em__tshape(ind, b2, sizeof b2),
                            em__tshape(&target, b3, sizeof b3), m);
    *ndim = nd;
    *dtype = (em_dtype)u->dtype;
    return 0;
}

typedef struct {
    const em_tensor *u, *ind;
    em_tensor *out;
    int m;
    int64_t ntuples, inner, blocks;
} scatter_nd_ctx;

#define DEFINE_SCATTER_ND(T)                                                                               \
    static void scatter_nd_##T(const scatter_nd_ctx *k, int64_t b0, int64_t b1) {                         \
        const T *u = (const T *)k->u->data;                                                                \
        T *out = (T *)k->out->data;                                                                        \
        size_t tuple_bytes = (size_t)k->m * esize(k->ind);                                                 \
        for (int64_t t = 0; t < k->ntuples; t++) {                                                         \
            int64_t row = em_index_nd_row((const char *)k->ind->data + t * (int64_t)tuple_bytes,           \
                                          k->ind->dtype, k->m, k->out->shape);                              \
            T *dst = out + row * k->inner;                                                                 \
            const T *src = u + t * k->inner;                                                               \
            for (int64_t b = b0; b < b1; b++) dst[b] = (T)(dst[b] + src[b]);                               \
        }                                                                                                  \
    }
DEFINE_SCATTER_ND(float)
DEFINE_SCATTER_ND(double)
DEFINE_SCATTER_ND(int32_t)
DEFINE_SCATTER_ND(int64_t)
DEFINE_SCATTER_ND(uint8_t)
DEFINE_SCATTER_ND(uint16_t)

static void scatter_nd_items(void *p, int64_t begin, int64_t end) {
    const scatter_nd_ctx *k = p;
    for (int64_t it = begin; it < end; it++) {
        int64_t b0 = it * SCATTER_BLOCK, b1 = b0 + SCATTER_BLOCK < k->inner ? b0 + SCATTER_BLOCK : k->inner;
        switch (k->u->dtype) {
        case EM_F32: scatter_nd_float(k, b0, b1); break;
        case EM_F64: scatter_nd_double(k, b0, b1); break;
        case EM_I32: scatter_nd_int32_t(k, b0, b1); break;
        case EM_I64: scatter_nd_int64_t(k, b0, b1); break;
        case EM_I16: /* a wrapping sum has the same bits signed or not */
        case EM_U16: scatter_nd_uint16_t(k, b0, b1); break;
        default: scatter_nd_uint8_t(k, b0, b1); break; /* uint8, int8 */
        }
    }
}

static void scatter_nd_cpu(const em_call *c, em_tensor *out) {
    const em_tensor *ind = c->in[1];
    memset(out->data, 0, (size_t)out->numel * esize(out));
    int m = (int)ind->shape[ind->ndim - 1];
    scatter_nd_ctx k = {c->in[0], ind, out, m, prod(ind->shape, 0, ind->ndim - 1), prod(out->shape, m, out->ndim), 0};
    if (k.inner == 0 || k.ntuples == 0) return;
    k.blocks = (k.inner + SCATTER_BLOCK - 1) / SCATTER_BLOCK;
    em__parallel_for(k.blocks, 1, scatter_nd_items, &k);
}

static int scatter_nd_grad(const em_call *c, em_tensor *out, em_tensor *gout, const bool *need, em_tensor **gin) {
    (void)out;
    (void)need;
    gin[0] = em_gather_nd(gout, c->in[1]);
    return gin[0] ? 0 : -1;
}

/* ---- top_k(x): attrs i[0] k, i[1] descending ---- */

static int top_k_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    const em_tensor *x = c->in[0];
    char b[SHAPE_BUF];
    if (x->dtype == EM_BOOL) return em__op_error(c, "x must be numeric, not bool");
    if (x->ndim == 0) return em__op_error(c, "x must have at least one dimension (it ranks the last), not a scalar");
    int64_t n = x->shape[x->ndim - 1], k = c->a->i[0];
    if (k < 0 || k > n)
        return em__op_error(c, "k = %" PRId64 " is outside [0, %" PRId64 "], the last dimension of x %s", k, n,
                            em__tshape(x, b, sizeof b));
    memcpy(shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    shape[x->ndim - 1] = k;
    *ndim = x->ndim;
    *dtype = EM_I64;
    return 0;
}

typedef struct {
    const em_tensor *x;
    int64_t *out;
    int64_t n, k;
    bool descending;
    atomic_bool failed; /* a worker's scratch could not be allocated */
} top_k_ctx;

/* Per element type T: BEFORE(a, ia, b, ib) is index_math.h's order, MAYBE(v, w) a cheap test true at least
 * for every v that can rank before the k-th best w (vectorized over TOPK_FILTER elements). */
#define DEFINE_TOP_K(T, BEFORE, MAYBE)                                                                           \
    typedef struct {                                                                                                 \
        T v;                                                                                                         \
        int64_t i;                                                                                                   \
    } pair_##T;                                                                                                      \
    /* A stable bottom-up merge sort of (value, position) pairs (no indirection in the inner loop); returns          \
     * the buffer that holds the result. */                                                                          \
    static pair_##T *merge_sort_##T(pair_##T *p, pair_##T *tmp, int64_t n, bool desc) {                              \
        for (int64_t w = 1; w < n; w *= 2) {                                                                         \
            for (int64_t lo = 0; lo < n; lo += 2 * w) {                                                              \
                int64_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n, a = lo, b = mid;        \
                for (int64_t o = lo; o < hi; o++)                                                                    \
                    tmp[o] = a < mid && (b >= hi || !BEFORE(p[b].v, p[b].i, p[a].v, p[a].i, desc)) ? p[a++] : p[b++]; \
            }                                                                                                        \
            pair_##T *t = p;                                                                                         \
            p = tmp;                                                                                                 \
            tmp = t;                                                                                                 \
        }                                                                                                            \
        return p;                                                                                                    \
    }                                                                                                                \
    /* The k best of row x into best[0..k-1] in order: an insertion buffer, entered only by elements that    \
     * pass the vectorized filter against the current k-th best. */                                          \
    static void select_##T(const T *x, int64_t n, int64_t k, bool desc, int64_t *best) {                       \
        for (int64_t j = 0; j < n; j++) {                                                                        \
            int64_t have = j < k ? j : k;                                                                        \
            if (have == k) {                                                                                     \
                T w = x[best[k - 1]];                                                                            \
                if (j % TOPK_FILTER == 0 && j + TOPK_FILTER <= n) {                                              \
                    int any = 0;                                                                                 \
                    _Pragma("omp simd reduction(|:any)") for (int t = 0; t < TOPK_FILTER; t++) any |=            \
                        MAYBE(x[j + t], w, desc);                                                                \
                    if (!any) {                                                                                  \
                        j += TOPK_FILTER - 1;                                                                    \
                        continue;                                                                                \
                    }                                                                                            \
                }                                                                                                \
                if (!BEFORE(x[j], j, w, best[k - 1], desc)) continue;                                            \
                have = k - 1;                                                                                    \
            }                                                                                                    \
            int64_t at = have;                                                                                   \
            while (at > 0 && BEFORE(x[j], j, x[best[at - 1]], best[at - 1], desc)) {                             \
                best[at] = best[at - 1];                                                                         \
                at--;                                                                                            \
            }                                                                                                    \
            best[at] = j;                                                                                        \
        }                                                                                                        \
    }                                                                                                            \
    static void top_k_rows_##T(top_k_ctx *k, int64_t begin, int64_t end) {                                           \
        pair_##T *scratch = NULL;                                                                                    \
        bool select = k->k <= TOPK_SELECT_MAX && k->k < k->n;                                                        \
        if (!select && !(scratch = malloc(sizeof(pair_##T) * 2 * (size_t)k->n))) {                                   \
            atomic_store(&k->failed, true);                                                                          \
            return;                                                                                                  \
        }                                                                                                            \
        for (int64_t r = begin; r < end; r++) {                                                                      \
            const T *x = (const T *)k->x->data + r * k->n;                                                           \
            int64_t *out = k->out + r * k->k;                                                                        \
            if (select) {                                                                                            \
                select_##T(x, k->n, k->k, k->descending, out);                                                       \
                continue;                                                                                            \
            }                                                                                                        \
            for (int64_t j = 0; j < k->n; j++) scratch[j] = (pair_##T){x[j], j};                                     \
            const pair_##T *sorted = merge_sort_##T(scratch, scratch + k->n, k->n, k->descending);                   \
            for (int64_t j = 0; j < k->k; j++) out[j] = sorted[j].i;                                                 \
        }                                                                                                            \
        free(scratch);                                                                                               \
    }
#define BEFORE_FLOAT(a, ia, b, ib, d) em_index_before_float(a, ia, b, ib, d)
#define BEFORE_INT(a, ia, b, ib, d) em_index_before_int(a, ia, b, ib, d)
/* NaN passes both ways (it ranks first descending, and any number ranks before a NaN w ascending). */
#define MAYBE_FLOAT(v, w, d) ((d) ? !((v) <= (w)) : !((v) >= (w)))
#define MAYBE_INT(v, w, d) ((d) ? (v) > (w) : (v) < (w))
DEFINE_TOP_K(float, BEFORE_FLOAT, MAYBE_FLOAT)
DEFINE_TOP_K(double, BEFORE_FLOAT, MAYBE_FLOAT)
DEFINE_TOP_K(int32_t, BEFORE_INT, MAYBE_INT)
DEFINE_TOP_K(int64_t, BEFORE_INT, MAYBE_INT)
DEFINE_TOP_K(uint8_t, BEFORE_INT, MAYBE_INT)
DEFINE_TOP_K(int8_t, BEFORE_INT, MAYBE_INT)
DEFINE_TOP_K(int16_t, BEFORE_INT, MAYBE_INT)
DEFINE_TOP_K(uint16_t, BEFORE_INT, MAYBE_INT)

static void top_k_items(void *p, int64_t begin, int64_t end) {
    top_k_ctx *k = p;
    switch (k->x->dtype) {
    case EM_F32: top_k_rows_float(k, begin, end); break;
    case EM_F64: top_k_rows_double(k, begin, end); break;
    case EM_I32: top_k_rows_int32_t(k, begin, end); break;
    case EM_I64: top_k_rows_int64_t(k, begin, end); break;
    case EM_I8: top_k_rows_int8_t(k, begin, end); break;
    case EM_I16: top_k_rows_int16_t(k, begin, end); break;
    case EM_U16: top_k_rows_uint16_t(k, begin, end); break;
    default: top_k_rows_uint8_t(k, begin, end); break;
    }
}

static void top_k_cpu(const em_call *c, em_tensor *out) {
    const em_tensor *x = c->in[0];
    top_k_ctx k = {x, out->data, x->shape[x->ndim - 1], c->a->i[0], c->a->i[1] != 0, false};
    if (k.k == 0) return;
    int64_t rows = x->numel / k.n;
    em__parallel_for(rows, k.n >= 4096 ? 1 : 4096 / k.n, top_k_items, &k);
    if (atomic_load(&k.failed)) em__error("top_k: out of memory sorting rows of %" PRId64 " elements", k.n);
}

/* A row costs about log2(n) comparisons per element (a sort) or a filter pass (a selection). */
static int64_t top_k_cost(const em_call *c) {
    const em_tensor *x = c->in[0];
    int64_t n = x->ndim ? x->shape[x->ndim - 1] : 1, cost = 1;
    while (((int64_t)1 << cost) < n) cost++;
    return c->a->i[0] ? 2 * cost * n / c->a->i[0] + 1 : 1;
}

#define top_k_grad NULL
#define EM_OP(ID, name, arity, dtypes, grad, kernel, flags, cost) \
    EM_OP_ROW(ID, name, arity, dtypes, grad, kernel, flags, cost, name##_infer, name##_cpu, NULL, name##_grad)
#include "index.def"
#undef EM_OP

/* ---- public functions ---- */

em_tensor *em_gather_nd(em_tensor *params, em_tensor *indices) {
    return em__apply(EM_OP_GATHER_ND, 2, (em_tensor *[]){params, indices}, &(em_attrs){0});
}

em_tensor *em_scatter_nd(em_tensor *indices, em_tensor *updates, em_shape shape) {
    if (shape.ndim < 0 || shape.ndim > EM_MAX_DIMS) {
        em__error("scatter_nd: shape rank %d is outside 0..%d", shape.ndim, EM_MAX_DIMS);
        return NULL;
    }
    em_attrs a = {.ni = shape.ndim};
    for (int d = 0; d < shape.ndim; d++) a.i[d] = shape.dims[d];
    return em__apply(EM_OP_SCATTER_ND, 2, (em_tensor *[]){updates, indices}, &a);
}

em_tensor *em_tensor_scatter_add(em_tensor *tensor, em_tensor *indices, em_tensor *updates) {
    if (!tensor) return em__null_input("tensor_scatter_add");
    em_scope_begin();
    em_tensor *y = em_escape(em_add(tensor, em_scatter_nd(indices, updates, em__shape_of(tensor))));
    em_scope_end();
    return y;
}

em_tensor *em_unsorted_segment_sum(em_tensor *data, em_tensor *segment_ids, int64_t num_segments) {
    if (!data || !segment_ids) return em__null_input("unsorted_segment_sum");
    char b1[SHAPE_BUF], b2[SHAPE_BUF];
    bool prefix = segment_ids->ndim <= data->ndim;
    for (int d = 0; prefix && d < segment_ids->ndim; d++) prefix = segment_ids->shape[d] == data->shape[d];
    if (num_segments < 0) {
        em__error("unsorted_segment_sum: num_segments %" PRId64 " is negative", num_segments);
        return NULL;
    }
    if (!prefix) {
        em__error("unsorted_segment_sum: segment_ids %s are not a prefix of data's shape %s",
                  em__tshape(segment_ids, b1, sizeof b1), em__tshape(data, b2, sizeof b2));
        return NULL;
    }
    em_shape out = {.ndim = 1 + data->ndim - segment_ids->ndim};
    out.dims[0] = num_segments;
    for (int d = segment_ids->ndim; d < data->ndim; d++) out.dims[1 + d - segment_ids->ndim] = data->shape[d];
    em_scope_begin();
    em_tensor *y = em_escape(em_scatter_nd(em_expand_dims(segment_ids, -1), data, out));
    em_scope_end();
    return y;
}

/* Row r's elements idx[r, :] of x [rows, n] (both viewed with the last axis as the row): a gather from the
 * flattened x, so that the gradient is gather's scatter-add. */
static em_tensor *take_last_axis(em_tensor *x, em_tensor *idx) {
    if (idx->numel == 0) return em_zeros((em_dtype)x->dtype, em__shape_of(idx));
    int64_t n = x->shape[x->ndim - 1], rows = idx->numel / idx->shape[idx->ndim - 1];
    em_tensor *offsets = em_reshape(em_arange(EM_I64, 0, (double)(rows * n), (double)n), EM_SHAPE(rows, 1));
    em_tensor *flat_idx = em_add(em_reshape(idx, EM_SHAPE(rows, -1)), offsets);
    return em_reshape(em_gather(em_reshape(x, EM_SHAPE(-1)), flat_idx, 0), em__shape_of(idx));
}

static em_tensor *rank_indices(em_tensor *x, int64_t k, bool descending) {
    em_attrs a = {.ni = 2, .i = {k, descending}};
    return em__apply(EM_OP_TOP_K, 1, (em_tensor *[]){x}, &a);
}

int em_top_k(em_tensor *x, int64_t k, bool sorted, em_tensor **values, em_tensor **indices) {
    (void)sorted; /* the k are always in rank order: sorting them costs nothing extra here */
    if (!values || !indices) {
        em__error("top_k: values and indices must not be NULL");
        return -1;
    }
    *values = *indices = NULL;
    em_scope_begin();
    em_tensor *idx = rank_indices(x, k, true);
    em_tensor *v = idx ? take_last_axis(x, idx) : NULL;
    if (v) {
        *values = em_escape(v);
        *indices = em_escape(idx);
    }
    em_scope_end();
    return v ? 0 : -1;
}

/* x with `axis` moved last (a transpose) for sort and argsort; the same call undoes it. */
static em_tensor *swap_last(em_tensor *x, int axis) {
    if (axis == x->ndim - 1) return x;
    int perm[EM_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) perm[d] = d;
    perm[axis] = x->ndim - 1;
    perm[x->ndim - 1] = axis;
    return em_transpose(x, x->ndim, perm);
}

static em_tensor *sort_along(const char *op, em_tensor *x, int axis, bool descending, bool want_values) {
    if (!x) return em__null_input(op);
    char b[SHAPE_BUF];
    if (x->ndim == 0 || axis < -x->ndim || axis >= x->ndim) {
        em__error("%s: axis %d is out of range for x %s", op, axis, em__tshape(x, b, sizeof b));
        return NULL;
    }
    int a = axis < 0 ? axis + x->ndim : axis;
    em_scope_begin();
    em_tensor *moved = swap_last(x, a);
    em_tensor *idx = moved ? rank_indices(moved, moved->shape[moved->ndim - 1], descending) : NULL;
    em_tensor *y = idx && want_values ? take_last_axis(moved, idx) : idx;
    y = y ? em_escape(swap_last(y, a)) : NULL;
    em_scope_end();
    return y;
}

em_tensor *em_sort(em_tensor *x, int axis, bool descending) { return sort_along("sort", x, axis, descending, true); }
em_tensor *em_argsort(em_tensor *x, int axis, bool descending) {
    return sort_along("argsort", x, axis, descending, false);
}
