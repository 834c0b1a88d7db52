/* Shape ops: reshape, transpose, slice, broadcast_to and stop_gradient are
 * views (no copy; they keep their input's memory alive); concat, gather and
 * its gradient gather_grad, one_hot, pad and tile compute new tensors. The
 * composites expand_dims, squeeze, split and split_sizes are built on them. */
#include "../gpu.h"
#include "../internal.h"

#include <inttypes.h>
#include <stdlib.h>


#define SHAPE_BUF 160
#define COPY_GRAIN_BYTES 65536 /* bytes copied per parallel chunk */

static size_t esize(const em_tensor *t) { return em_dtype_size((em_dtype)t->dtype); }

static int64_t prod(const int64_t *d, int from, int to) {
    int64_t n = 1;
    for (int k = from; k < to; k++) n *= d[k];
    return n;
}

/* "[a,b,...]" of sizes given for input x ("?" where symbolic, as x's own);
 * n may exceed EM_MAX_DIMS (pads hold two values per axis). */
static const char *shape_str(const em_tensor *x, int n, const int64_t *dims, char *buf, size_t size) {
    size_t at = (size_t)snprintf(buf, size, "[");
    for (int k = 0; k < n && at < size; k++) {
        char dim[24];
        at += (size_t)snprintf(buf + at, size - at, "%s%s", k ? "," : "", em__size_str(x, dims[k], dim, sizeof dim));
    }
    if (at < size) snprintf(buf + at, size - at, "]");
    return buf;
}

/* Chunks of parallel work over `rows` rows of `row_bytes` bytes each. */
static int64_t row_grain(int64_t row_bytes) {
    return row_bytes >= COPY_GRAIN_BYTES ? 1 : COPY_GRAIN_BYTES / (row_bytes ? row_bytes : 1);
}

static em_tensor *view_of(const em_call *c, int ndim, const int64_t *shape, const int64_t *strides, int64_t offset) {
    return em__view(c->in[0], ndim, shape, strides, offset);
}

/* ---- reshape: attrs i[0..ni-1] = target dims, one may be -1 ---- */

static int reshape_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    const em_tensor *x = c->in[0];
    char b1[SHAPE_BUF], b2[SHAPE_BUF];
    int infer_at = -1;
    int64_t known = 1, nonzero = 1;
    if (c->a->ni < 0 || c->a->ni > EM_MAX_DIMS) /* em_reshape checks it; a loaded graph's attributes come here */
        return em__op_error(c, "target rank %d is outside 0..%d", c->a->ni, EM_MAX_DIMS);
    for (int k = 0; k < c->a->ni; k++) {
        int64_t d = c->a->i[k];
        shape[k] = d;
        if (d == -1 && infer_at < 0) {
            infer_at = k;
            continue;
        }
        if (d < 0)
            return em__op_error(c, "invalid dimension %" PRId64 " in target shape %s (only one -1 is allowed)", d,
                                shape_str(x, c->a->ni, c->a->i, b1, sizeof b1));
        known = d && known > INT64_MAX / d ? INT64_MAX : known * d; /* saturates: never a tensor's numel */
        nonzero = d && nonzero > INT64_MAX / d ? INT64_MAX : nonzero * (d ? d : 1);
    }
    if (nonzero == INT64_MAX) /* its strides would overflow, even with no elements */
        return em__op_error(c, "target shape %s is too large", shape_str(x, c->a->ni, c->a->i, b1, sizeof b1));
    if (infer_at >= 0 ? known == 0 || x->numel % known : known != x->numel) {
        char count[24] = "?";
        if (!em__numel_symbolic(x)) snprintf(count, sizeof count, "%" PRId64, x->numel);
        return em__op_error(c, "cannot reshape %s (%s elements) into %s", em__tshape(x, b1, sizeof b1), count,
                            shape_str(x, c->a->ni, c->a->i, b2, sizeof b2));
    }
    if (infer_at >= 0) shape[infer_at] = x->numel / known;
    *ndim = c->a->ni;
    *dtype = (em_dtype)x->dtype;
    return 0;
}

/* A view of a contiguous input; a strided input is copied (row-major) by reshape_cpu. */
static em_tensor *reshape_view(const em_call *c, int ndim, const int64_t *shape) {
    if (!em__is_contiguous(c->in[0])) return EM_NOT_A_VIEW;
    int64_t strides[EM_MAX_DIMS];
    em__contiguous_strides(ndim, shape, strides);
    return view_of(c, ndim, shape, strides, 0);
}

static void reshape_cpu(const em_call *c, em_tensor *out) { em__copy_strided(out, c->in[0]); }

static int reshape_grad(const em_call *c, em_tensor *out, em_tensor *gout, const bool *need, em_tensor **gin) {
    (void)out;
    (void)need;
    gin[0] = em_reshape(gout, em__shape_of(c->in[0]));
    return gin[0] ? 0 : -1;
}

em_tensor *em_reshape(em_tensor *x, em_shape shape) {
    if (!x) return em__null_input("reshape");
    if (shape.ndim < 0 || shape.ndim > EM_MAX_DIMS) {
        em__error("reshape: target rank %d is outside 0..%d", shape.ndim, EM_MAX_DIMS);
        return NULL;
    }
    em_attrs a = {.ni = shape.ndim};
    memcpy(a.i, shape.dims, sizeof(int64_t) * (size_t)shape.ndim);
    return em__apply(EM_OP_RESHAPE, 1, &x, &a);
}

/* ---- transpose: attrs i[0..ni-1] = perm as given (may be negative), ni = 0 reverses ---- */

static void perm_of(const em_call *c, int *perm) {
    int nd = c->in[0]->ndim;
    for (int k = 0; k < nd; k++) {
        int p = c->a->ni ? (int)c->a->i[k] : nd - 1 - k;
        perm[k] = p < 0 ? p + nd : p;
    }
}

static int transpose_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    const em_tensor *x = c->in[0];
    int nd = x->ndim;
    char b1[SHAPE_BUF], b2[SHAPE_BUF];
    if (c->a->ni) {
        bool seen[EM_MAX_DIMS] = {false};
        bool ok = c->a->ni == nd;
        for (int k = 0; ok && k < nd; k++) {
            int64_t p = c->a->i[k] < 0 ? c->a->i[k] + nd : c->a->i[k];
            ok = p >= 0 && p < nd && !seen[p];
            if (ok) seen[p] = true;
        }
        if (!ok)
            return em__op_error(c, "perm %s is not a permutation of the %d axes of input %s",
                                shape_str(x, c->a->ni, c->a->i, b1, sizeof b1), nd, em__tshape(x, b2, sizeof b2));
    }
    int perm[EM_MAX_DIMS];
    perm_of(c, perm);
    for (int k = 0; k < nd; k++) shape[k] = x->shape[perm[k]];
    *ndim = nd;
    *dtype = (em_dtype)x->dtype;
    return 0;
}

static em_tensor *transpose_view(const em_call *c, int ndim, const int64_t *shape) {
    int perm[EM_MAX_DIMS];
    int64_t strides[EM_MAX_DIMS];
    perm_of(c, perm);
    for (int k = 0; k < ndim; k++) strides[k] = c->in[0]->strides[perm[k]];
    return view_of(c, ndim, shape, strides, 0);
}

static int transpose_grad(const em_call *c, em_tensor *out, em_tensor *gout, const bool *need, em_tensor **gin) {
    (void)out;
    (void)need;
    int perm[EM_MAX_DIMS], inv[EM_MAX_DIMS], nd = c->in[0]->ndim;
    perm_of(c, perm);
    for (int k = 0; k < nd; k++) inv[perm[k]] = k;
    gin[0] = em_transpose(gout, nd, inv);
    return gin[0] ? 0 : -1;
}

em_tensor *em_transpose(em_tensor *x, int nperm, const int *perm) {
    if (!x) return em__null_input("transpose");
    em_attrs a = {.ni = nperm};
    if (nperm < 0 || nperm > EM_MAX_DIMS || (nperm && !perm)) {
        char b[SHAPE_BUF];
        em__error("transpose: perm of %d axes given for input %s", nperm, em__tshape(x, b, sizeof b));
        return NULL;
    }
    for (int k = 0; k < nperm; k++) a.i[k] = perm[k];
    return em__apply(EM_OP_TRANSPOSE, 1, &x, &a);
}

/* ---- slice: attrs i[0..nd-1] = begin, i[nd..2nd-1] = size (-1: to the end) ---- */

static int slice_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    const em_tensor *x = c->in[0];
    int nd = x->ndim;
    char b1[SHAPE_BUF], b2[SHAPE_BUF], b3[SHAPE_BUF];
    for (int k = 0; k < nd; k++) {
        int64_t begin = c->a->i[k], size = c->a->i[nd + k];
        if (size == -1 && begin >= 0 && begin <= x->shape[k]) size = x->shape[k] - begin;
        if (begin < 0 || size < 0 || begin > x->shape[k] || size > x->shape[k] - begin) /* no overflow */
            return em__op_error(c, "begin %s, size %s is out of bounds for axis %d of input %s",
                                shape_str(x, nd, c->a->i, b1, sizeof b1),
                                shape_str(x, nd, c->a->i + nd, b2, sizeof b2), k,
                                em__tshape(x, b3, sizeof b3));
        shape[k] = size;
    }
    *ndim = nd;
    *dtype = (em_dtype)x->dtype;
    return 0;
}

static em_tensor *slice_view(const em_call *c, int ndim, const int64_t *shape) {
    const em_tensor *x = c->in[0];
    int64_t offset = 0;
    for (int k = 0; k < ndim; k++) offset += c->a->i[k] * x->strides[k];
    return view_of(c, ndim, shape, x->strides, offset);
}

static int slice_grad(const em_call *c, em_tensor *out, em_tensor *gout, const bool *need, em_tensor **gin) {
    (void)need;
    const em_tensor *x = c->in[0];
    int64_t pads[2 * EM_MAX_DIMS];
    for (int k = 0; k < x->ndim; k++) {
        pads[2 * k] = c->a->i[k];
        pads[2 * k + 1] = x->shape[k] - c->a->i[k] - out->shape[k];
    }
    gin[0] = em_pad(gout, pads, 0.0);
    return gin[0] ? 0 : -1;
}

em_tensor *em_slice(em_tensor *x, const int64_t *begin, const int64_t *size) {
    if (!x) return em__null_input("slice");
    if (x->ndim && (!begin || !size)) {
        em__error("slice: begin and size must hold %d entries", x->ndim);
        return NULL;
    }
    em_attrs a = {.ni = 2 * x->ndim};
    for (int k = 0; k < x->ndim; k++) {
        a.i[k] = begin[k];
        a.i[x->ndim + k] = size[k];
    }
    return em__apply(EM_OP_SLICE, 1, &x, &a);
}

/* ---- broadcast_to: attrs i[0..ni-1] = target shape ---- */

static int broadcast_to_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    const em_tensor *x = c->in[0];
    int nd = c->a->ni, lead = nd - x->ndim;
    char b1[SHAPE_BUF], b2[SHAPE_BUF];
    bool ok = lead >= 0;
    for (int k = 0; k < nd; k++) {
        shape[k] = c->a->i[k];
        if (shape[k] < 0) ok = false;
        if (ok && k >= lead && x->shape[k - lead] != 1 && x->shape[k - lead] != shape[k]) ok = false;
    }
    if (!ok)
        return em__op_error(c, "cannot broadcast input %s to shape %s", em__tshape(x, b1, sizeof b1),
                            shape_str(x, nd, c->a->i, b2, sizeof b2));
    *ndim = nd;
    *dtype = (em_dtype)x->dtype;
    return 0;
}

static em_tensor *broadcast_to_view(const em_call *c, int ndim, const int64_t *shape) {
    const em_tensor *x = c->in[0];
    int64_t strides[EM_MAX_DIMS];
    int lead = ndim - x->ndim;
    for (int k = 0; k < ndim; k++)
        strides[k] = k < lead || (x->shape[k - lead] == 1 && shape[k] != 1) ? 0 : x->strides[k - lead];
    return view_of(c, ndim, shape, strides, 0);
}

static int broadcast_to_grad(const em_call *c, em_tensor *out, em_tensor *gout, const bool *need, em_tensor **gin) {
    (void)out;
    (void)need;
    gin[0] = em__sum_to_shape(gout, c->in[0]->ndim, c->in[0]->shape);
    return gin[0] ? 0 : -1;
}

em_tensor *em_broadcast_to(em_tensor *x, em_shape shape) {
    if (!x) return em__null_input("broadcast_to");
    if (shape.ndim < 0 || shape.ndim > EM_MAX_DIMS) {
        em__error("broadcast_to: target rank %d is outside 0..%d", shape.ndim, EM_MAX_DIMS);
        return NULL;
    }
    em_attrs a = {.ni = shape.ndim};
    memcpy(a.i, shape.dims, sizeof(int64_t) * (size_t)shape.ndim);
    return em__apply(EM_OP_BROADCAST_TO, 1, &x, &a);
}

/* ---- stop_gradient: the input itself, as a view the tape does not cross ---- */

static int same_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    const em_tensor *x = c->in[0];
    memcpy(shape, x->shape, sizeof(int64_t) * x->ndim);
    *ndim = x->ndim;
    *dtype = (em_dtype)x->dtype;
    return 0;
}

static em_tensor *same_view(const em_call *c, int ndim, const int64_t *shape) {
    return view_of(c, ndim, shape, c->in[0]->strides, 0);
}

/* ---- concat: attrs i[0] = axis as given ---- */

static int concat_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    const em_tensor *x0 = c->in[0];
    char b1[SHAPE_BUF], b2[SHAPE_BUF];
    if (x0->ndim == 0) return em__op_error(c, "inputs must have at least one dimension, input 0 is a scalar");
    int axis = em__axis(c, (int)c->a->i[0], x0->ndim, "axis");
    if (axis < 0) return -1;
    memcpy(shape, x0->shape, sizeof(int64_t) * x0->ndim);
    for (int k = 1; k < c->n; k++) {
        const em_tensor *x = c->in[k];
        if (x->dtype != x0->dtype)
            return em__op_error(c, "input %d has dtype %s but input 0 has %s", k, em_dtype_name((em_dtype)x->dtype),
                                em_dtype_name((em_dtype)x0->dtype));
        bool ok = x->ndim == x0->ndim;
        for (int d = 0; ok && d < x0->ndim; d++) ok = d == axis || x->shape[d] == x0->shape[d];
        if (!ok)
            return em__op_error(c, "input %d has shape %s but input 0 has %s; all dims except axis %d must match", k,
                                em__tshape(x, b1, sizeof b1), em__tshape(x0, b2, sizeof b2), axis);
        shape[axis] += x->shape[axis];
    }
    *ndim = x0->ndim;
    *dtype = (em_dtype)x0->dtype;
    return 0;
}

typedef struct {
    const em_call *c;
    em_tensor *out;
    int axis;
} concat_ctx;

static void concat_rows(void *p, int64_t begin, int64_t end) {
    const concat_ctx *k = p;
    size_t es = esize(k->out);
    int64_t inner = prod(k->out->shape, k->axis + 1, k->out->ndim) * (int64_t)es;
    int64_t out_row = k->out->shape[k->axis] * inner;
    for (int64_t o = begin; o < end; o++) {
        char *dst = (char *)k->out->data + o * out_row;
        for (int i = 0; i < k->c->n; i++) {
            int64_t bytes = k->c->in[i]->shape[k->axis] * inner;
            if (bytes) memcpy(dst, (const char *)k->c->in[i]->data + o * bytes, (size_t)bytes);
            dst += bytes;
        }
    }
}

static void concat_cpu(const em_call *c, em_tensor *out) {
    concat_ctx k = {c, out, (int)(c->a->i[0] < 0 ? c->a->i[0] + out->ndim : c->a->i[0])};
    int64_t outer = prod(out->shape, 0, k.axis);
    int64_t row_bytes = prod(out->shape, k.axis, out->ndim) * (int64_t)esize(out);
    em__parallel_for(outer, row_grain(row_bytes), concat_rows, &k);
}

static int concat_grad(const em_call *c, em_tensor *out, em_tensor *gout, const bool *need, em_tensor **gin) {
    int axis = (int)(c->a->i[0] < 0 ? c->a->i[0] + out->ndim : c->a->i[0]);
    int64_t begin[EM_MAX_DIMS] = {0}, size[EM_MAX_DIMS];
    for (int i = 0; i < c->n; i++) {
        if (need[i]) {
            memcpy(size, c->in[i]->shape, sizeof(int64_t) * out->ndim);
            gin[i] = em_slice(gout, begin, size);
            if (!gin[i]) return -1;
        }
        begin[axis] += c->in[i]->shape[axis];
    }
    return 0;
}

em_tensor *em_concat(int n, em_tensor *const *xs, int axis) {
    if (n < 1 || !xs) {
        em__error("concat: needs at least one input (n = %d)", n);
        return NULL;
    }
    em_attrs a = {.ni = 1, .i = {axis}};
    return em__apply(EM_OP_CONCAT, n, xs, &a);
}

/* ---- gather / gather_grad: integer indices into one axis ---- */

static int64_t index_at(const em_tensor *ind, int64_t j) { return em_index_at(ind->data, ind->dtype, j); }

/* Checks the dtype and every value of indices (kernels cannot fail); values
 * not known yet (shape-only tracing) are checked when they are. */
static int check_indices(const em_call *c, const em_tensor *ind, int64_t limit, int axis, const em_tensor *src) {
    char b[SHAPE_BUF];
    if (!em_is_index_dtype(ind->dtype))
        return em__op_error(c, "indices must be " EM_INDEX_DTYPES ", not %s", em_dtype_name((em_dtype)ind->dtype));
    if (!ind->data) return 0;
    const em_tensor *dense = ind;
    em_tensor *copy = NULL;
    if (!em__is_contiguous(ind)) {
        copy = em__alloc((em_dtype)ind->dtype, ind->ndim, ind->shape);
        if (!copy) return -1;
        em__copy_strided(copy, ind);
        dense = copy;
    }
    int rc = 0;
    for (int64_t j = 0; j < dense->numel && rc == 0; j++) {
        int64_t v = index_at(dense, j);
        if (v < 0 || v >= limit)
            rc = em__op_error(c, "index %" PRId64 " (element %" PRId64 " of indices) is out of range [0, %" PRId64
                                 ") for axis %d of %s",
                              v, j, limit, axis, em__tshape(src, b, sizeof b));
    }
    if (copy) em__unref(copy);
    return rc;
}

/* attrs i[0] = axis as given. */
static int gather_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    const em_tensor *x = c->in[0], *ind = c->in[1];
    if (x->ndim == 0) return em__op_error(c, "params must have at least one dimension, not a scalar");
    int axis = em__axis(c, (int)c->a->i[0], x->ndim, "axis");
    if (axis < 0) return -1;
    int nd = x->ndim - 1 + ind->ndim;
    if (nd > EM_MAX_DIMS) return em__op_error(c, "result rank %d exceeds %d", nd, EM_MAX_DIMS);
    if (check_indices(c, ind, x->shape[axis], axis, x)) return -1;
    int n = 0;
    for (int d = 0; d < axis; d++) shape[n++] = x->shape[d];
    for (int d = 0; d < ind->ndim; d++) shape[n++] = ind->shape[d];
    for (int d = axis + 1; d < x->ndim; d++) shape[n++] = x->shape[d];
    *ndim = nd;
    *dtype = (em_dtype)x->dtype;
    return 0;
}

typedef struct {
    const char *src;
    char *dst;
    const em_tensor *ind;
    int64_t nidx, dim, inner_bytes;
} gather_ctx;

static void gather_rows(void *p, int64_t begin, int64_t end) {
    const gather_ctx *k = p;
    for (int64_t r = begin; r < end; r++) {
        int64_t o = r / k->nidx, j = r % k->nidx;
        memcpy(k->dst + r * k->inner_bytes, k->src + (o * k->dim + index_at(k->ind, j)) * k->inner_bytes,
               (size_t)k->inner_bytes);
    }
}

static void gather_cpu(const em_call *c, em_tensor *out) {
    const em_tensor *x = c->in[0];
    int axis = (int)(c->a->i[0] < 0 ? c->a->i[0] + x->ndim : c->a->i[0]);
    gather_ctx k = {x->data, out->data, c->in[1], c->in[1]->numel, x->shape[axis],
                    prod(x->shape, axis + 1, x->ndim) * (int64_t)esize(x)};
    em__parallel_for(prod(x->shape, 0, axis) * k.nidx, row_grain(k.inner_bytes), gather_rows, &k);
}

/* The rows of gout scatter-added into zeros, or straight into the gradient the tape has accumulated for
 * params so far (a tied embedding's other use), with no params-sized temporary. */
static int gather_grad(const em_call *c, em_tensor *out, em_tensor *gout, const bool *need, em_tensor **gin) {
    (void)out;
    (void)need;
    const em_tensor *x = c->in[0];
    int axis = (int)(c->a->i[0] < 0 ? c->a->i[0] + x->ndim : c->a->i[0]);
    em_tensor *in[2] = {gout, c->in[1]}, *acc = c->acc ? c->acc[0] : NULL;
    if (acc && acc->device == gout->device && c->in[1]->device == gout->device) {
        em_attrs into = {.ni = 3, .i = {axis, x->shape[axis], 1}};
        if (em__run_op_into(EM_OP_GATHER_GRAD, 2, in, &into, acc)) return -1;
        gin[0] = acc;
        return 0;
    }
    em_attrs a = {.ni = 2, .i = {axis, x->shape[axis]}};
    gin[0] = em__apply(EM_OP_GATHER_GRAD, 2, in, &a);
    return gin[0] ? 0 : -1;
}

em_tensor *em_gather(em_tensor *params, em_tensor *indices, int axis) {
    em_attrs a = {.ni = 1, .i = {axis}};
    return em__apply(EM_OP_GATHER, 2, (em_tensor *[]){params, indices}, &a);
}

/* gather_grad(updates, indices): zeros of the params' shape with each row of
 * updates added at its index. attrs i[0] = axis (>= 0), i[1] = the params'
 * size along axis, i[2] = 1 to add into the output's values instead of zeros
 * (em__run_op_into). */
static int gather_grad_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    const em_tensor *u = c->in[0], *ind = c->in[1];
    int axis = (int)c->a->i[0];
    char b1[SHAPE_BUF], b2[SHAPE_BUF];
    bool ok = axis >= 0 && axis + ind->ndim <= u->ndim && c->a->i[1] >= 0;
    for (int d = 0; ok && d < ind->ndim; d++) ok = u->shape[axis + d] == ind->shape[d];
    if (!ok)
        return em__op_error(c, "updates %s do not match indices %s at axis %d", em__tshape(u, b1, sizeof b1),
                            em__tshape(ind, b2, sizeof b2), axis);
    if (u->dtype == EM_BOOL) return em__op_error(c, "updates must be numeric, not bool");
    if (check_indices(c, ind, c->a->i[1], axis, u)) return -1;
    int n = 0;
    for (int d = 0; d < axis; d++) shape[n++] = u->shape[d];
    shape[n++] = c->a->i[1];
    for (int d = axis + ind->ndim; d < u->ndim; d++) shape[n++] = u->shape[d];
    *ndim = n;
    *dtype = (em_dtype)u->dtype;
    return 0;
}

#define SCATTER_BLOCK 512 /* columns per parallel item: rows of one index are added in order */

typedef struct {
    const em_tensor *u, *ind;
    em_tensor *out;
    int64_t nidx, dim, inner, blocks;
} scatter_ctx;

#define DEFINE_SCATTER(T)                                                                     \
    static void scatter_##T(const scatter_ctx *k, int64_t o, int64_t b0, int64_t b1) {       \
        const T *u = (const T *)k->u->data + o * k->nidx * k->inner;                          \
        T *out = (T *)k->out->data + o * k->dim * k->inner;                                   \
        for (int64_t j = 0; j < k->nidx; j++) {                                               \
            T *dst = out + index_at(k->ind, j) * k->inner;                                    \
            const T *src = u + j * k->inner;                                                  \
            for (int64_t b = b0; b < b1; b++) dst[b] = (T)(dst[b] + src[b]);                  \
        }                                                                                     \
    }
DEFINE_SCATTER(float)
DEFINE_SCATTER(double)
DEFINE_SCATTER(int32_t)
DEFINE_SCATTER(int64_t)
DEFINE_SCATTER(uint8_t)
DEFINE_SCATTER(uint16_t)

static void scatter_items(void *p, int64_t begin, int64_t end) {
    const scatter_ctx *k = p;
    for (int64_t it = begin; it < end; it++) {
        int64_t o = it / k->blocks, b0 = it % k->blocks * SCATTER_BLOCK;
        int64_t b1 = b0 + SCATTER_BLOCK < k->inner ? b0 + SCATTER_BLOCK : k->inner;
        switch (k->u->dtype) {
        case EM_F32: scatter_float(k, o, b0, b1); break;
        case EM_F64: scatter_double(k, o, b0, b1); break;
        case EM_I32: scatter_int32_t(k, o, b0, b1); break;
        case EM_I64: scatter_int64_t(k, o, b0, b1); break;
        case EM_I16: /* a wrapping sum has the same bits signed or not */
        case EM_U16: scatter_uint16_t(k, o, b0, b1); break;
        default: scatter_uint8_t(k, o, b0, b1); break; /* uint8, int8 */
        }
    }
}

static void gather_grad_cpu(const em_call *c, em_tensor *out) {
    int axis = (int)c->a->i[0];
    if (!c->a->i[2]) memset(out->data, 0, (size_t)out->numel * esize(out));
    scatter_ctx k = {c->in[0], c->in[1], out, c->in[1]->numel, c->a->i[1], prod(out->shape, axis + 1, out->ndim), 0};
    k.blocks = (k.inner + SCATTER_BLOCK - 1) / SCATTER_BLOCK;
    int64_t items = prod(out->shape, 0, axis) * k.blocks;
    int64_t work = k.nidx * (k.inner < SCATTER_BLOCK ? k.inner : SCATTER_BLOCK);
    em__parallel_for(items, work >= 16384 ? 1 : 16384 / (work ? work : 1), scatter_items, &k);
}

static int gather_grad_grad(const em_call *c, em_tensor *out, em_tensor *gout, const bool *need, em_tensor **gin) {
    (void)out;
    (void)need;
    gin[0] = em_gather(gout, c->in[1], (int)c->a->i[0]);
    return gin[0] ? 0 : -1;
}

/* ---- one_hot: attrs i[0] = depth, f[0] = on, f[1] = off, dtype ---- */

static int one_hot_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    const em_tensor *ind = c->in[0];
    if (!em_is_index_dtype(ind->dtype))
        return em__op_error(c, "indices must be " EM_INDEX_DTYPES ", not %s", em_dtype_name((em_dtype)ind->dtype));
    if (c->a->i[0] < 0) return em__op_error(c, "depth %" PRId64 " is negative", c->a->i[0]);
    if ((unsigned)c->a->dtype >= EM_DTYPE_COUNT) return em__op_error(c, "invalid dtype %d", c->a->dtype);
    if (ind->ndim + 1 > EM_MAX_DIMS) return em__op_error(c, "result rank %d exceeds %d", ind->ndim + 1, EM_MAX_DIMS);
    memcpy(shape, ind->shape, sizeof(int64_t) * ind->ndim);
    shape[ind->ndim] = c->a->i[0];
    *ndim = ind->ndim + 1;
    *dtype = (em_dtype)c->a->dtype;
    return 0;
}

/* Fills n elements of size es with the bytes of one element. */
static void fill_bytes(char *dst, int64_t n, const char *one, size_t es) {
    for (int64_t k = 0; k < n; k++) memcpy(dst + k * (int64_t)es, one, es);
}

static void one_hot_cpu(const em_call *c, em_tensor *out) {
    char on[8], off[8];
    size_t es = esize(out);
    int64_t depth = c->a->i[0];
    em__write(on, (em_dtype)out->dtype, c->a->f[0]);
    em__write(off, (em_dtype)out->dtype, c->a->f[1]);
    fill_bytes(out->data, out->numel, off, es);
    for (int64_t j = 0; j < c->in[0]->numel; j++) {
        int64_t v = index_at(c->in[0], j);
        if (v >= 0 && v < depth) memcpy((char *)out->data + (j * depth + v) * (int64_t)es, on, es);
    }
}

em_tensor *em_one_hot(em_tensor *indices, int64_t depth, double on, double off, em_dtype dtype) {
    em_attrs a = {.ni = 1, .i = {depth}, .f = {on, off}, .dtype = dtype};
    return em__apply(EM_OP_ONE_HOT, 1, &indices, &a);
}

/* ---- pad: attrs i[2k], i[2k+1] = before and after axis k; f[0] = value ---- */

static int pad_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    const em_tensor *x = c->in[0];
    char b1[SHAPE_BUF], b2[SHAPE_BUF];
    for (int k = 0; k < x->ndim; k++) {
        if (c->a->i[2 * k] < 0 || c->a->i[2 * k + 1] < 0)
            return em__op_error(c, "pads %s must be non-negative (input %s)",
                                shape_str(x, 2 * x->ndim, c->a->i, b1, sizeof b1), em__tshape(x, b2, sizeof b2));
        if (c->a->i[2 * k] > INT64_MAX - x->shape[k] - c->a->i[2 * k + 1])
            return em__op_error(c, "pads %s overflow axis %d of input %s",
                                shape_str(x, 2 * x->ndim, c->a->i, b1, sizeof b1),
                                k, em__tshape(x, b2, sizeof b2));
        shape[k] = x->shape[k] + c->a->i[2 * k] + c->a->i[2 * k + 1];
    }
    *ndim = x->ndim;
    *dtype = (em_dtype)x->dtype;
    return 0;
}

typedef struct {
    const em_tensor *x;
    em_tensor *out;
    const int64_t *pads;
    int64_t rows, row_bytes; /* input rows: all axes but the last */
} pad_ctx;

static void pad_rows(void *p, int64_t begin, int64_t end) {
    const pad_ctx *k = p;
    int nd = k->x->ndim;
    size_t es = esize(k->x);
    for (int64_t r = begin; r < end; r++) {
        int64_t idx = r, off = k->pads[2 * (nd - 1)];
        for (int d = nd - 2; d >= 0; d--) {
            off += (idx % k->x->shape[d] + k->pads[2 * d]) * k->out->strides[d];
            idx /= k->x->shape[d];
        }
        memcpy((char *)k->out->data + off * (int64_t)es, (const char *)k->x->data + r * k->row_bytes,
               (size_t)k->row_bytes);
    }
}

static void pad_cpu(const em_call *c, em_tensor *out) {
    const em_tensor *x = c->in[0];
    char value[8];
    em__write(value, (em_dtype)x->dtype, c->a->f[0]);
    fill_bytes(out->data, out->numel, value, esize(x));
    if (x->numel == 0) return;
    if (x->ndim == 0) {
        memcpy(out->data, x->data, esize(x));
        return;
    }
    pad_ctx k = {x, out, c->a->i, prod(x->shape, 0, x->ndim - 1), x->shape[x->ndim - 1] * (int64_t)esize(x)};
    em__parallel_for(k.rows, row_grain(k.row_bytes), pad_rows, &k);
}

static int pad_grad(const em_call *c, em_tensor *out, em_tensor *gout, const bool *need, em_tensor **gin) {
    (void)out;
    (void)need;
    int64_t begin[EM_MAX_DIMS];
    for (int k = 0; k < c->in[0]->ndim; k++) begin[k] = c->a->i[2 * k];
    gin[0] = em_slice(gout, begin, c->in[0]->shape);
    return gin[0] ? 0 : -1;
}

em_tensor *em_pad(em_tensor *x, const int64_t *pads, double value) {
    if (!x) return em__null_input("pad");
    if (x->ndim && !pads) {
        em__error("pad: pads must hold %d entries", 2 * x->ndim);
        return NULL;
    }
    em_attrs a = {.ni = 2 * x->ndim, .f = {value}};
    if (a.ni) memcpy(a.i, pads, sizeof(int64_t) * 2 * x->ndim); /* a scalar may come with no pads */
    return em__apply(EM_OP_PAD, 1, &x, &a);
}

/* ---- tile: attrs i[0..nd-1] = multiples ---- */

static int tile_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    const em_tensor *x = c->in[0];
    char b1[SHAPE_BUF], b2[SHAPE_BUF];
    for (int k = 0; k < x->ndim; k++) {
        if (c->a->i[k] < 0)
            return em__op_error(c, "multiples %s must be non-negative (input %s)",
                                shape_str(x, x->ndim, c->a->i, b1, sizeof b1), em__tshape(x, b2, sizeof b2));
        if (x->shape[k] && c->a->i[k] > INT64_MAX / x->shape[k])
            return em__op_error(c, "multiples %s overflow axis %d of input %s",
                                shape_str(x, x->ndim, c->a->i, b1, sizeof b1),
                                k, em__tshape(x, b2, sizeof b2));
        shape[k] = x->shape[k] * c->a->i[k];
    }
    *ndim = x->ndim;
    *dtype = (em_dtype)x->dtype;
    return 0;
}

typedef struct {
    const em_tensor *x;
    em_tensor *out;
    int64_t row_bytes; /* one input row (last axis) */
    int64_t reps;      /* copies of it in an output row */
} tile_ctx;

/* Output row r (all axes but the last) repeats input row (r's index mod the input shape). */
static void tile_rows(void *p, int64_t begin, int64_t end) {
    const tile_ctx *k = p;
    int nd = k->out->ndim;
    for (int64_t r = begin; r < end; r++) {
        int64_t idx = r, src = 0;
        for (int d = nd - 2; d >= 0; d--) {
            src += (idx % k->out->shape[d]) % k->x->shape[d] * k->x->strides[d];
            idx /= k->out->shape[d];
        }
        char *dst = (char *)k->out->data + r * k->row_bytes * k->reps;
        for (int64_t m = 0; m < k->reps; m++)
            memcpy(dst + m * k->row_bytes, (const char *)k->x->data + src * (int64_t)esize(k->x), (size_t)k->row_bytes);
    }
}

static void tile_cpu(const em_call *c, em_tensor *out) {
    const em_tensor *x = c->in[0];
    if (out->numel == 0) return;
    if (x->ndim == 0) {
        memcpy(out->data, x->data, esize(x));
        return;
    }
    tile_ctx k = {x, out, x->shape[x->ndim - 1] * (int64_t)esize(x), c->a->i[x->ndim - 1]};
    em__parallel_for(prod(out->shape, 0, out->ndim - 1), row_grain(k.row_bytes * k.reps), tile_rows, &k);
}

/* Axis by axis: [pre, m*d, post] -> [pre, m, d, post] summed over m. */
static int tile_grad(const em_call *c, em_tensor *out, em_tensor *gout, const bool *need, em_tensor **gin) {
    (void)out;
    (void)need;
    const em_tensor *x = c->in[0];
    em_tensor *g = gout;
    em_shape cur = em__shape_of(gout);
    for (int k = 0; k < x->ndim && g; k++) {
        if (c->a->i[k] == 1) continue;
        em_shape split = EM_SHAPE(prod(cur.dims, 0, k), c->a->i[k], x->shape[k], prod(cur.dims, k + 1, cur.ndim));
        g = em_sum(em_reshape(g, split), EM_AXES(1), false);
        cur.dims[k] = x->shape[k];
        g = em_reshape(g, cur);
    }
    gin[0] = g == gout ? em__ref(gout) : g;
    return gin[0] ? 0 : -1;
}

em_tensor *em_tile(em_tensor *x, const int64_t *multiples) {
    if (!x) return em__null_input("tile");
    if (x->ndim && !multiples) {
        em__error("tile: multiples must hold %d entries", x->ndim);
        return NULL;
    }
    em_attrs a = {.ni = x->ndim};
    if (a.ni) memcpy(a.i, multiples, sizeof(int64_t) * x->ndim); /* a scalar may come with no multiples */
    return em__apply(EM_OP_TILE, 1, &x, &a);
}

/* ---- composites ---- */

em_tensor *em_expand_dims(em_tensor *x, int axis) {
    if (!x) return em__null_input("expand_dims");
    int nd = x->ndim, a = axis < 0 ? axis + nd + 1 : axis;
    char b[SHAPE_BUF];
    if (a < 0 || a > nd || nd == EM_MAX_DIMS) {
        em__error("expand_dims: axis %d is out of range for input of shape %s (rank %d)", axis,
                  em__tshape(x, b, sizeof b), nd);
        return NULL;
    }
    em_shape s = {.ndim = nd + 1};
    for (int d = 0, k = 0; d <= nd; d++) s.dims[d] = d == a ? 1 : x->shape[k++];
    return em_reshape(x, s);
}

em_tensor *em_squeeze(em_tensor *x, int naxes, const int *axes) {
    if (!x) return em__null_input("squeeze");
    char b[SHAPE_BUF];
    bool drop[EM_MAX_DIMS] = {false};
    if (naxes < 0 || naxes > x->ndim || (naxes && !axes)) {
        em__error("squeeze: %d axes given for input of shape %s", naxes, em__tshape(x, b, sizeof b));
        return NULL;
    }
    for (int d = 0; d < x->ndim && naxes == 0; d++) drop[d] = x->shape[d] == 1;
    for (int k = 0; k < naxes; k++) {
        int a = axes[k] < 0 ? axes[k] + x->ndim : axes[k];
        if (a < 0 || a >= x->ndim) {
            em__error("squeeze: axis %d is out of range for input of shape %s (rank %d)", axes[k],
                      em__tshape(x, b, sizeof b), x->ndim);
            return NULL;
        }
        if (x->shape[a] != 1) {
            char size[24];
            em__error("squeeze: axis %d of input %s has size %s, not 1", axes[k], em__tshape(x, b, sizeof b),
                      em__size_str(x, x->shape[a], size, sizeof size));
            return NULL;
        }
        drop[a] = true;
    }
    em_shape s = {.ndim = 0};
    for (int d = 0; d < x->ndim; d++)
        if (!drop[d]) s.dims[s.ndim++] = x->shape[d];
    return em_reshape(x, s);
}

/* Slices x along axis into parts of the given sizes (which sum to its size). */
static int split_parts(em_tensor *x, int n, const int64_t *sizes, int axis, em_tensor **out) {
    int64_t begin[EM_MAX_DIMS] = {0}, size[EM_MAX_DIMS];
    memcpy(size, x->shape, sizeof(int64_t) * x->ndim);
    for (int k = 0; k < n; k++) {
        size[axis] = sizes[k];
        out[k] = em_slice(x, begin, size);
        if (!out[k]) {
            for (int j = 0; j <= k; j++) out[j] = NULL;
            return -1;
        }
        begin[axis] += sizes[k];
    }
    return 0;
}

/* Validates the shared arguments of split and split_sizes; the axis or -1. */
static int split_axis(const char *op, em_tensor *x, int n, int axis, em_tensor **out) {
    char b[SHAPE_BUF];
    if (!out) {
        em__error("%s: out is NULL", op);
        return -1;
    }
    for (int k = 0; k < n; k++) out[k] = NULL;
    if (!x) {
        em__null_input(op);
        return -1;
    }
    int a = axis < 0 ? axis + x->ndim : axis;
    if (a < 0 || a >= x->ndim) {
        em__error("%s: axis %d is out of range for input of shape %s (rank %d)", op, axis, em__tshape(x, b, sizeof b),
                  x->ndim);
        return -1;
    }
    if (n < 1) {
        em__error("%s: number of parts %d must be at least 1 (input %s)", op, n, em__tshape(x, b, sizeof b));
        return -1;
    }
    return a;
}

int em_split(em_tensor *x, int n, int axis, em_tensor **out) {
    int a = split_axis("split", x, n, axis, out);
    if (a < 0) return -1;
    int64_t r, offset;
    const bool symbolic = !x->data && em__symbolic_parts(x->shape[a], &r, &offset);
    /* a symbolic size splits into parts that are fractions of the batch (plus
     * a fraction of the offset): checked on the fed size when the graph runs */
    if (symbolic ? r % n || offset % n : x->shape[a] % n) {
        char b[SHAPE_BUF];
        if (symbolic && offset)
            em__error("split: axis %d of input %s has an unknown size (the unknown dimension %+" PRId64
                      ", known when the graph runs); a shape-only trace splits it into a number of equal parts "
                      "that divides both %d and %" PRId64 ", not %d (or give the placeholder an example value with "
                      "em_placeholder_set)",
                      axis, em__tshape(x, b, sizeof b), offset, EM_SYM_PARTS, offset < 0 ? -offset : offset, n);
        else if (symbolic)
            em__error("split: axis %d of input %s has an unknown size (known when the graph runs); a shape-only "
                      "trace splits it into a number of equal parts that divides %d, not %d (or give the "
                      "placeholder an example value with em_placeholder_set)",
                      axis, em__tshape(x, b, sizeof b), EM_SYM_PARTS, n);
        else
            em__error("split: axis %d of input %s (size %" PRId64 ") cannot be split into %d equal parts", axis,
                      em__tshape(x, b, sizeof b), x->shape[a], n);
        return -1;
    }
    int64_t *sizes = malloc(sizeof(int64_t) * (size_t)n);
    if (!sizes) {
        em__error("split: out of memory");
        return -1;
    }
    for (int k = 0; k < n; k++) sizes[k] = x->shape[a] / n;
    int rc = split_parts(x, n, sizes, a, out);
    free(sizes);
    return rc;
}

int em_split_sizes(em_tensor *x, int n, const int64_t *sizes, int axis, em_tensor **out) {
    int a = split_axis("split_sizes", x, n, axis, out);
    if (a < 0) return -1;
    char b[SHAPE_BUF];
    int64_t *s = sizes ? malloc(sizeof(int64_t) * (size_t)n) : NULL;
    if (!s) {
        em__error(sizes ? "split_sizes: out of memory" : "split_sizes: sizes is NULL");
        return -1;
    }
    int infer_at = -1;
    int64_t total = 0;
    bool ok = true;
    for (int k = 0; k < n; k++) {
        s[k] = sizes[k];
        if (s[k] == -1 && infer_at < 0) infer_at = k;
        else if (s[k] < 0 || s[k] > INT64_MAX - total) ok = false; /* the sum must not overflow */
        else total += s[k];
    }
    if (ok && infer_at >= 0 && total <= x->shape[a]) s[infer_at] = x->shape[a] - total;
    else if (infer_at >= 0 || total != x->shape[a]) ok = false;
    if (!ok) {
        char b2[SHAPE_BUF], size[24];
        em__error("split_sizes: sizes %s do not add up to size %s of axis %d of input %s",
                  shape_str(x, n < EM_MAX_DIMS ? n : EM_MAX_DIMS, sizes, b, sizeof b),
                  em__size_str(x, x->shape[a], size, sizeof size), axis, em__tshape(x, b2, sizeof b2));
        free(s);
        return -1;
    }
    int rc = split_parts(x, n, s, a, out);
    free(s);
    return rc;
}

/* stop_gradient is the identity view. */
#define stop_gradient_infer same_infer
#define stop_gradient_view same_view
#define EM_OP(ID, name, arity, dtypes, grad, kernel, flags, cost) \
    EM_OP_ROW(ID, name, arity, dtypes, grad, kernel, flags, cost, name##_infer, name##_cpu, name##_view, name##_grad)
#include "shape.def"
#undef EM_OP
