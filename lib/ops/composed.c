/* TF 1 ops that Ember composes from its own ops: they run on every device,
 * are traced as the ops they use, and differentiate through them, so they
 * have no kernel or gradient rule of their own. em_where_indices, whose
 * output size depends on the values, runs eagerly on the host instead. */
#include "../internal.h"

#include <math.h>
#include <string.h>

static bool need_float(const char *op, const em_tensor *x) {
    char b[160];
    if (em__is_float((em_dtype)x->dtype)) return true;
    em__error("%s: x must be float32 or float64, got %s %s", op, em_dtype_name((em_dtype)x->dtype),
              em__tshape(x, b, sizeof b));
    return false;
}

/* ---- reductions ---- */

em_tensor *em_norm(em_tensor *x, double ord, int naxes, const int *axes, bool keepdims) {
    char b[160];
    if (!x) return em__null_input("norm");
    if (!need_float("norm", x)) return NULL;
    if (ord == 1) return em_sum(em_abs(x), naxes, axes, keepdims);
    if (ord == 2) return em_sqrt(em_sum(em_square(x), naxes, axes, keepdims));
    if (ord == INFINITY) return em_max(em_abs(x), naxes, axes, keepdims);
    em__error("norm: ord %g is not supported for input of shape %s (1, 2 or INFINITY)", ord,
              em__tshape(x, b, sizeof b));
    return NULL;
}

/* ---- creation and masks ---- */

em_tensor *em_eye(int64_t num_rows, int64_t num_columns, em_dtype dtype) {
    if (num_columns < 0) num_columns = num_rows;
    if (num_rows < 0) {
        em__error("eye: num_rows must be >= 0, got %lld", (long long)num_rows);
        return NULL;
    }
    em_tensor *rows = em_reshape(em_arange(EM_I64, 0, (double)num_rows, 1), EM_SHAPE(num_rows, 1));
    return em_cast(em_equal(rows, em_arange(EM_I64, 0, (double)num_columns, 1)), dtype);
}

em_tensor *em_linspace(double start, double stop, int64_t num, em_dtype dtype) {
    if (num < 1 || !em__is_float(dtype)) {
        em__error("linspace: num must be >= 1 and dtype float32 or float64, got num %lld, dtype %s", (long long)num,
                  em_dtype_name(dtype));
        return NULL;
    }
    double step = num > 1 ? (stop - start) / (double)(num - 1) : 0;
    return em_cast(em_add_scalar(em_mul_scalar(em_arange(EM_F64, 0, (double)num, 1), step), start), dtype);
}

em_tensor *em_band_part(em_tensor *x, int64_t num_lower, int64_t num_upper) {
    char b[160];
    if (!x) return em__null_input("band_part");
    if (x->ndim < 2) {
        em__error("band_part: x must have at least 2 dims, got %s", em__tshape(x, b, sizeof b));
        return NULL;
    }
    int64_t m = x->shape[x->ndim - 2], n = x->shape[x->ndim - 1];
    em_tensor *below = em_sub(em_reshape(em_arange(EM_I64, 0, (double)m, 1), EM_SHAPE(m, 1)),
                              em_arange(EM_I64, 0, (double)n, 1)); /* row - column */
    /* a negative bound keeps the whole triangle: row - column lies in (-n, m) */
    double lower = num_lower < 0 ? (double)m : (double)num_lower, upper = num_upper < 0 ? (double)n : (double)num_upper;
    em_tensor *keep = em_logical_and(em_less_equal(below, em_scalar(EM_I64, lower)),
                                     em_greater_equal(below, em_scalar(EM_I64, -upper)));
    return em_where(keep, x, em_scalar((em_dtype)x->dtype, 0));
}

/* ---- einsum ---- */

#define EINSUM_LETTERS 52

static int letter_id(char ch) {
    if (ch >= 'a' && ch <= 'z') return ch - 'a';
    if (ch >= 'A' && ch <= 'Z') return 26 + ch - 'A';
    return -1;
}

/* Where each letter sits in a term (-1: absent); false when a letter repeats. */
static bool term_positions(const char *t, int len, int *pos) {
    for (int k = 0; k < EINSUM_LETTERS; k++) pos[k] = -1;
    for (int i = 0; i < len; i++) {
        int id = letter_id(t[i]);
        if (pos[id] >= 0) return false;
        pos[id] = i;
    }
    return true;
}

/* x with its axes in the order of the letters `order` (positions from pos). */
static em_tensor *permute(em_tensor *x, const int *order, int n, const int *pos) {
    int perm[EM_MAX_DIMS];
    bool identity = true;
    for (int i = 0; i < n; i++) {
        perm[i] = pos[order[i]];
        identity = identity && perm[i] == i;
    }
    return identity || n < 2 ? x : em_transpose(x, n, perm);
}

typedef struct einsum_spec {
    const char *term[3]; /* the inputs' and the output's letters */
    int len[3], n;
} einsum_spec;

static em_tensor *einsum_error(const char *eq, const char *why) {
    em__error("einsum: equation \"%s\": %s", eq, why);
    return NULL;
}

/* Sums the letters of input k that appear in no other term, then
 * returns it; its positions are updated to the remaining axes. */
static em_tensor *sum_private(em_tensor *x, const einsum_spec *s, int k, int *pos, int *letters, int *nl) {
    int axes[EM_MAX_DIMS], naxes = 0;
    *nl = 0;
    for (int i = 0; i < s->len[k]; i++) {
        int id = letter_id(s->term[k][i]), used = 0;
        for (int t = 0; t < 3; t++)
            if (t != k && (t < s->n || t == 2) && s->term[t] && memchr(s->term[t], s->term[k][i], (size_t)s->len[t]))
                used = 1;
        if (used) letters[(*nl)++] = id;
        else axes[naxes++] = i;
    }
    if (naxes) x = em_sum(x, naxes, axes, false);
    for (int i = 0; i < *nl; i++) pos[letters[i]] = i;
    return x;
}

em_tensor *em_einsum(const char *equation, int n, em_tensor *const *inputs) {
    char b[160];
    if (!equation || n < 1 || n > 2 || !inputs) {
        em__error("einsum: equation \"%s\" with %d inputs: one or two inputs are supported",
                  equation ? equation : "(null)", n);
        return NULL;
    }
    for (int k = 0; k < n; k++)
        if (!inputs[k]) return em__null_input("einsum");
    const char *arrow = strstr(equation, "->");
    if (!arrow) return einsum_error(equation, "the output must be given explicitly (\"...->out\")");
    einsum_spec s = {.n = n};
    const char *comma = memchr(equation, ',', (size_t)(arrow - equation));
    if ((comma != NULL) != (n == 2)) return einsum_error(equation, "the number of input terms differs from n");
    s.term[0] = equation;
    s.len[0] = (int)((comma ? comma : arrow) - equation);
    if (comma) s.term[1] = comma + 1, s.len[1] = (int)(arrow - comma - 1);
    s.term[2] = arrow + 2;
    s.len[2] = (int)strlen(arrow + 2);
    int64_t size[EINSUM_LETTERS];
    for (int k = 0; k < EINSUM_LETTERS; k++) size[k] = -1;
    for (int t = 0; t < 3; t++) {
        if (!s.term[t]) continue;
        for (int i = 0; i < s.len[t]; i++)
            if (letter_id(s.term[t][i]) < 0)
                return einsum_error(equation, "terms may hold only the letters a-z and A-Z (no spaces or ...)");
        if (t == 2) continue;
        const em_tensor *x = inputs[t];
        if (s.len[t] != x->ndim) {
            em__error("einsum: equation \"%s\": input %d has shape %s but its term has %d letters", equation, t,
                      em__tshape(x, b, sizeof b), s.len[t]);
            return NULL;
        }
        for (int i = 0; i < s.len[t]; i++) {
            int id = letter_id(s.term[t][i]);
            if (size[id] >= 0 && size[id] != x->shape[i]) {
                em__error("einsum: equation \"%s\": letter '%c' has size %lld and %lld (input %d, shape %s)",
                          equation, s.term[t][i], (long long)size[id], (long long)x->shape[i], t,
                          em__tshape(x, b, sizeof b));
                return NULL;
            }
            size[id] = x->shape[i];
        }
    }
    int opos[EINSUM_LETTERS], pos0[EINSUM_LETTERS], pos1[EINSUM_LETTERS];
    if (!term_positions(s.term[2], s.len[2], opos)) return einsum_error(equation, "a letter repeats in the output");
    for (int i = 0; i < s.len[2]; i++)
        if (size[letter_id(s.term[2][i])] < 0) return einsum_error(equation, "an output letter is in no input");
    int out_order[EM_MAX_DIMS];
    for (int i = 0; i < s.len[2]; i++) out_order[i] = letter_id(s.term[2][i]);

    if (n == 1) {
        em_tensor *x = inputs[0];
        if (!term_positions(s.term[0], s.len[0], pos0)) {
            /* the diagonal forms ii->i and ii-> */
            if (s.len[0] != 2) return einsum_error(equation, "a repeated letter is supported only as ii->i or ii->");
            em_tensor *diag = em_sum(em_mul(x, em_eye(x->shape[0], x->shape[1], (em_dtype)x->dtype)), EM_AXES(1), false);
            if (s.len[2] == 0) return em_sum(diag, EM_ALL_AXES, false);
            if (s.len[2] == 1 && s.term[2][0] == s.term[0][0]) return diag;
            return einsum_error(equation, "a repeated letter is supported only as ii->i or ii->");
        }
        int letters[EM_MAX_DIMS], nl;
        x = sum_private(x, &s, 0, pos0, letters, &nl);
        return permute(x, out_order, s.len[2], pos0);
    }

    if (!term_positions(s.term[0], s.len[0], pos0) || !term_positions(s.term[1], s.len[1], pos1))
        return einsum_error(equation, "a letter repeats within an input (diagonals of two inputs are not supported)");
    int l0[EM_MAX_DIMS], l1[EM_MAX_DIMS], n0, n1;
    em_tensor *a = sum_private(inputs[0], &s, 0, pos0, l0, &n0);
    em_tensor *bt = sum_private(inputs[1], &s, 1, pos1, l1, &n1);
    /* batch: in both and the output; contracted: in both only; kept: one input and the output */
    int batch[EM_MAX_DIMS], con[EM_MAX_DIMS], keep0[EM_MAX_DIMS], keep1[EM_MAX_DIMS], nb = 0, nc = 0, nk0 = 0, nk1 = 0;
    int64_t B = 1, K = 1, M = 1, N = 1;
    for (int i = 0; i < n0; i++) {
        int id = l0[i];
        if (pos1[id] >= 0 && opos[id] >= 0) batch[nb++] = id, B *= size[id];
        else if (pos1[id] >= 0) con[nc++] = id, K *= size[id];
        else keep0[nk0++] = id, M *= size[id];
    }
    for (int i = 0; i < n1; i++)
        if (pos0[l1[i]] < 0) keep1[nk1++] = l1[i], N *= size[l1[i]];
    /* a: [batch, keep0, con] -> [B, M, K]; b: [batch, keep1, con] -> [B, N, K]; a b^T: [B, M, N] */
    int order[EM_MAX_DIMS];
    memcpy(order, batch, sizeof(int) * (size_t)nb);
    memcpy(order + nb, keep0, sizeof(int) * (size_t)nk0);
    memcpy(order + nb + nk0, con, sizeof(int) * (size_t)nc);
    a = em_reshape(permute(a, order, nb + nk0 + nc, pos0), EM_SHAPE(B, M, K));
    memcpy(order + nb, keep1, sizeof(int) * (size_t)nk1);
    memcpy(order + nb + nk1, con, sizeof(int) * (size_t)nc);
    bt = em_reshape(permute(bt, order, nb + nk1 + nc, pos1), EM_SHAPE(B, N, K));
    em_tensor *y = em_matmul_t(a, bt, false, true);
    /* [batch..., keep0..., keep1...], then the output's order */
    em_shape ys = {.ndim = nb + nk0 + nk1};
    int ypos[EINSUM_LETTERS], at = 0;
    for (int i = 0; i < nb; i++) ys.dims[at] = size[batch[i]], ypos[batch[i]] = at++;
    for (int i = 0; i < nk0; i++) ys.dims[at] = size[keep0[i]], ypos[keep0[i]] = at++;
    for (int i = 0; i < nk1; i++) ys.dims[at] = size[keep1[i]], ypos[keep1[i]] = at++;
    return permute(em_reshape(y, ys), out_order, s.len[2], ypos);
}

/* ---- data-dependent sizes ---- */

em_tensor *em_where_indices(em_tensor *cond) {
    char b[160];
    if (!cond) return em__null_input("where_indices");
    em_thread *th = em__thread();
    if (th && th->trace) {
        em__error("where_indices: its output's size depends on the values of cond %s, so it runs eagerly only, "
                  "not in a traced graph",
                  em__tshape(cond, b, sizeof b));
        return NULL;
    }
    em_tensor *flags = em_cast(cond, EM_BOOL), *host = flags ? em__to_host(flags) : NULL;
    if (!host) return NULL;
    const uint8_t *v = host->data;
    int64_t count = 0;
    for (int64_t i = 0; i < host->numel; i++) count += v[i] != 0;
    int64_t shape[2] = {count, host->ndim};
    em_tensor *out = em__alloc(EM_I64, 2, shape);
    if (out) {
        int64_t *o = out->data;
        for (int64_t i = 0; i < host->numel; i++) {
            if (!v[i]) continue;
            int64_t rest = i;
            for (int d = host->ndim - 1; d >= 0; d--) {
                o[d] = rest % host->shape[d];
                rest /= host->shape[d];
            }
            o += host->ndim;
        }
    }
    em__unref(host);
    return out ? em__own_placed(out) : NULL;
}
