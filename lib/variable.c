/* Variables, variable scopes, name scopes and initializers.
 *
 * A variable is an ordinary tensor (contiguous, made by em__alloc) flagged
 * EM_T_VARIABLE, with a struct em_variable_info holding its full name. The
 * thread's store holds one reference to each variable, in creation order, and
 * a name index; no ownership scope does, so variables live until
 * em_variables_release or em_shutdown. */
#include "tape.h"
#include "variable.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>

typedef struct {
    char *path;
    em_reuse reuse; /* effective: EM_REUSE_FALSE (create), TRUE or AUTO */
} var_scope;

typedef struct {
    char *path;
    int varscope; /* 1 + index of the variable scope that opened it; 0: em_name_scope_begin */
} name_scope;

struct em_varstore {
    em_tensor **items; /* every variable, creation order */
    int n, cap;
    int *index; /* open addressing on names: items index + 1, 0 = empty */
    size_t icap; /* power of two */
    var_scope *vs;
    int nvs, capvs;
    name_scope *ns;
    int nns, capns;
    em_reuse root_reuse;
    struct em_ckpt_pending *pending;
};

static void variables_shutdown(em_thread *t);
static const char *innermost_name_scope(void);
static em_tensor *find_by_name(const char *name);

/* Changes whenever a variable is registered or released (any thread): a
 * graph re-binds its variables by name when it has changed. */
static _Atomic uint64_t generation;
static uint64_t variables_generation(void) { return atomic_load_explicit(&generation, memory_order_acquire); }

/* em_shutdown releases the thread's variables; the graph and the placement
 * log name ops by the name scope, and graphs find their variables by name
 * (lib/internal.h). */
__attribute__((constructor)) static void install_hooks(void) {
    em__hooks.variables_shutdown = variables_shutdown;
    em__hooks.name_scope = innermost_name_scope;
    em__hooks.find_variable = find_by_name;
    em__hooks.variables_generation = variables_generation;
}

static struct em_varstore *store(void) {
    em_thread *t = em__thread();
    if (!t) return NULL;
    if (!t->vars) {
        t->vars = calloc(1, sizeof *t->vars);
        if (!t->vars) em__error("variables: out of memory");
        else t->vars->root_reuse = EM_REUSE_FALSE;
    }
    return t->vars;
}

/* Grows *items (of *cap elements of size `size`) to hold n + 1. */
static int grow(void **items, int *cap, int n, size_t size) {
    if (n < *cap) return 0;
    int c = *cap ? *cap * 2 : 16;
    void *p = realloc(*items, (size_t)c * size);
    if (!p) return -1;
    *items = p;
    *cap = c;
    return 0;
}

/* ---- the name index ---- */

static size_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (size_t)(h ^ (h >> 29));
}

static int *index_slot(struct em_varstore *s, const char *name) {
    size_t i = hash_str(name) & (s->icap - 1);
    while (s->index[i] && strcmp(s->items[s->index[i] - 1]->var->name, name) != 0) i = (i + 1) & (s->icap - 1);
    return &s->index[i];
}

static em_tensor *lookup(struct em_varstore *s, const char *name) {
    if (!s->icap) return NULL;
    int k = *index_slot(s, name);
    return k ? s->items[k - 1] : NULL;
}

static int index_rebuild(struct em_varstore *s, size_t icap) {
    int *idx = calloc(icap, sizeof *idx);
    if (!idx) return -1;
    free(s->index);
    s->index = idx;
    s->icap = icap;
    for (int k = 0; k < s->n; k++) *index_slot(s, s->items[k]->var->name) = k + 1;
    return 0;
}

static int register_var(struct em_varstore *s, em_tensor *v) {
    if (grow((void **)&s->items, &s->cap, s->n, sizeof *s->items)) return -1;
    if (2 * (size_t)(s->n + 1) > s->icap && index_rebuild(s, s->icap ? s->icap * 2 : 64)) return -1;
    s->items[s->n++] = v;
    *index_slot(s, v->var->name) = s->n;
    atomic_fetch_add_explicit(&generation, 1, memory_order_release);
    return 0;
}

static void free_info(em_tensor *v) {
    atomic_fetch_add_explicit(&generation, 1, memory_order_release);
    free(v->var->slots);
    free(v->var);
    v->var = NULL;
    v->flags &= (uint8_t)~EM_T_VARIABLE;
}

/* ---- initializers ---- */

/* TensorFlow's _compute_fans: the receptive field multiplies both fans. */
static void fans(const em_tensor *v, double *fan_in, double *fan_out) {
    int nd = v->ndim;
    if (nd == 0) {
        *fan_in = *fan_out = 1;
    } else if (nd == 1) {
        *fan_in = *fan_out = (double)v->shape[0];
    } else {
        double field = 1;
        for (int d = 0; d < nd - 2; d++) field *= (double)v->shape[d];
        *fan_in = (double)v->shape[nd - 2] * field;
        *fan_out = (double)v->shape[nd - 1] * field;
    }
}

/* TensorFlow's truncated normal with stddev 1 has stddev 0.8796...; its
 * variance-scaling initializers divide by it to reach the wanted variance. */
#define TRUNC_STDDEV 0.87962566103423978

static int fill_value(em_tensor *v, double value) {
    size_t es = em_dtype_size((em_dtype)v->dtype);
    char one[8];
    em__write(one, (em_dtype)v->dtype, value);
    for (int64_t i = 0; i < v->numel; i++) memcpy((char *)v->data + i * (int64_t)es, one, es);
    return 0;
}

/* Draws the random kinds into v from the thread's stream, or from a stream of
 * their own when seeded (the thread's position is put back afterwards). */
static int fill_random(em_tensor *v, const em_initializer *init, const char *op) {
    em_dtype dt = (em_dtype)v->dtype;
    if (!em__is_float(dt)) {
        em__error("%s: Variable %s: a random initializer needs float32 or float64, not %s", op, v->var->name,
                  em_dtype_name(dt));
        return -1;
    }
    double fan_in, fan_out;
    fans(v, &fan_in, &fan_out);
    double avg = fmax(1.0, (fan_in + fan_out) / 2), in = fmax(1.0, fan_in);
    em_thread *t = em__thread();
    uint64_t seed = t->seed, counter = t->counter;
    if (init->seed) {
        t->seed = init->seed;
        t->counter = 0;
    }
    em_scope_begin();
    em_shape sh = em__shape_of(v);
    em_tensor *r = NULL;
    switch (init->kind) {
    case EM_INIT_RANDOM_NORMAL: r = em_random_normal(dt, sh, init->a, init->b); break;
    case EM_INIT_TRUNCATED_NORMAL: r = em_truncated_normal(dt, sh, init->a, init->b); break;
    case EM_INIT_RANDOM_UNIFORM: r = em_random_uniform(dt, sh, init->a, init->b); break;
    case EM_INIT_GLOROT_UNIFORM: r = em_random_uniform(dt, sh, -sqrt(3.0 / avg), sqrt(3.0 / avg)); break;
    case EM_INIT_GLOROT_NORMAL: r = em_truncated_normal(dt, sh, 0, sqrt(1.0 / avg) / TRUNC_STDDEV); break;
    default: r = em_truncated_normal(dt, sh, 0, sqrt(2.0 / in) / TRUNC_STDDEV); break; /* he normal */
    }
    const void *d = r ? em_data(r) : NULL;
    if (d && v->numel) memcpy(v->data, d, (size_t)v->numel * em_dtype_size(dt));
    em_scope_end();
    if (init->seed) {
        t->seed = seed;
        t->counter = counter;
    }
    return d ? 0 : -1;
}

static int fill_init(em_tensor *v, const em_initializer *init, const char *op) {
    char b1[160], b2[160];
    switch (init->kind) {
    case EM_INIT_CONSTANT: return fill_value(v, init->a);
    case EM_INIT_ZEROS: return fill_value(v, 0);
    case EM_INIT_ONES: return fill_value(v, 1);
    case EM_INIT_RANDOM_NORMAL:
    case EM_INIT_TRUNCATED_NORMAL:
    case EM_INIT_RANDOM_UNIFORM:
    case EM_INIT_GLOROT_UNIFORM:
    case EM_INIT_GLOROT_NORMAL:
    case EM_INIT_HE_NORMAL: return fill_random(v, init, op);
    case EM_INIT_TENSOR: {
        em_tensor *x = init->value;
        if (!x || (!x->data && x->numel)) {
            em__error("%s: Variable %s: the initial value is %s", op, v->var->name,
                      x ? "a placeholder with no value" : "NULL");
            return -1;
        }
        if (x->dtype != v->dtype || !em_shape_equal(em__shape_of(x), em__shape_of(v))) {
            em__error("%s: Variable %s is %s %s but its initial value is %s %s", op, v->var->name,
                      em_dtype_name((em_dtype)v->dtype), em__tshape(v, b1, sizeof b1), em_dtype_name((em_dtype)x->dtype),
                      em__tshape(x, b2, sizeof b2));
            return -1;
        }
        em__copy_strided(v, x);
        return 0;
    }
    }
    em__error("%s: Variable %s: unknown initializer kind %d", op, v->var->name, (int)init->kind);
    return -1;
}

/* ---- variables ---- */

/* Moves v's values to GPU device dev; v stays the same tensor. */
static int to_gpu(em_tensor *v, int dev) {
    void *host = v->data, *gpu = NULL;
    size_t bytes = (size_t)v->numel * em_dtype_size((em_dtype)v->dtype);
    if (bytes && (!(gpu = em__gpu->alloc(dev - EM_GPU_BASE, bytes)) ||
                  em__gpu->copy(gpu, dev - EM_GPU_BASE, host, -1, bytes))) {
        if (gpu) em__gpu->free(dev - EM_GPU_BASE, gpu);
        return -1;
    }
    v->data = gpu;
    v->device = (uint8_t)dev;
    return 0;
}

/* The variable in host memory, filled, not registered: NULL with an error. */
static em_tensor *variable_on_host(struct em_varstore *s, const char *op, const char *full, em_dtype dtype,
                                   em_shape shape, const em_initializer *init, bool trainable) {
    size_t len = strlen(full);
    em_tensor *v = em__alloc(dtype, shape.ndim, shape.dims);
    struct em_variable_info *info = calloc(1, sizeof *info + len + 1);
    if (!v || !info) {
        if (v) em__unref(v);
        free(info);
        em__error("%s: Variable %s: out of memory", op, full);
        return NULL;
    }
    info->name = memcpy((char *)(info + 1), full, len + 1);
    info->trainable = trainable;
    v->var = info;
    v->flags |= EM_T_VARIABLE;
    uint64_t errors = em__error_count(); /* a step that fails silently ran out of memory */
    if (fill_init(v, init, op) || (s->pending && em__ckpt_take(s->pending, v, op))) {
        if (em__error_count() == errors) em__error("%s: Variable %s: out of memory", op, full);
        free_info(v);
        em__unref(v);
        return NULL;
    }
    return v;
}

em_tensor *em__variable_new(const char *op, const char *full, em_dtype dtype, em_shape shape,
                            const em_initializer *init, bool trainable) {
    struct em_varstore *s = store();
    if (!s) return NULL;
    if ((unsigned)dtype >= EM_DTYPE_COUNT) {
        em__error("%s: Variable %s: invalid dtype %d", op, full, (int)dtype);
        return NULL;
    }
    if (shape.ndim < 0) {
        if (init->kind != EM_INIT_TENSOR || !init->value) {
            em__error("%s: Variable %s needs a shape (only an EM_INIT_FROM initializer gives one)", op, full);
            return NULL;
        }
        shape = em__shape_of(init->value);
    }
    char b[160];
    if (shape.ndim > EM_MAX_DIMS) {
        em__error("%s: Variable %s: rank %d is above %d", op, full, shape.ndim, EM_MAX_DIMS);
        return NULL;
    }
    for (int d = 0; d < shape.ndim; d++)
        if (shape.dims[d] < 0) {
            em__error("%s: Variable %s: negative dimension in shape %s", op, full, em_shape_str(shape, b, sizeof b));
            return NULL;
        }
    /* Made and initialised in host memory, then moved to a GPU scope's device. */
    int where = em__scoped_device;
    em_tensor *v;
    uint64_t errors = em__error_count(); /* a step that fails silently ran out of memory */
    {
        EM_ON_DEVICE(em__is_gpu(where) ? 0 : where);
        v = variable_on_host(s, op, full, dtype, shape, init, trainable);
    }
    if (v && ((em__is_gpu(where) && to_gpu(v, where)) || register_var(s, v))) {
        if (em__error_count() == errors) em__error("%s: Variable %s: out of memory", op, full);
        free_info(v);
        em__unref(v);
        return NULL;
    }
    return v;
}

static char *join(const char *prefix, const char *name) {
    size_t a = strlen(prefix), n = strlen(name);
    char *p = malloc(a + n + 2);
    if (!p) return NULL;
    if (a) {
        memcpy(p, prefix, a);
        p[a++] = '/';
    }
    memcpy(p + a, name, n + 1);
    return p;
}

static em_tensor *get_variable(const char *name, em_dtype dtype, em_shape shape, em_initializer init,
                               bool trainable) {
    const char *op = "get_variable";
    struct em_varstore *s = store();
    if (!s) return NULL;
    if (!name || !*name) {
        em__error("%s: the variable name is empty", op);
        return NULL;
    }
    const char *prefix = s->nvs ? s->vs[s->nvs - 1].path : "";
    em_reuse reuse = s->nvs ? s->vs[s->nvs - 1].reuse : s->root_reuse;
    char *full = join(prefix, name);
    if (!full) {
        em__error("%s: out of memory", op);
        return NULL;
    }
    em_tensor *v = lookup(s, full), *r = NULL;
    char b1[160], b2[160];
    if (v && reuse != EM_REUSE_FALSE) {
        if (v->dtype != dtype)
            em__error("%s: Trying to share variable %s, but specified dtype %s and found dtype %s.", op, full,
                      em_dtype_name(dtype), em_dtype_name((em_dtype)v->dtype));
        else if (shape.ndim >= 0 && !em_shape_equal(shape, em__shape_of(v)))
            em__error("%s: Trying to share variable %s, but specified shape %s and found shape %s.", op, full,
                      em_shape_str(shape, b1, sizeof b1), em__tshape(v, b2, sizeof b2));
        else r = v;
    } else if (v) {
        em__error("%s: Variable %s already exists, disallowed. Did you mean to set reuse=EM_REUSE_TRUE or "
                  "reuse=EM_REUSE_AUTO in VarScope?",
                  op, full);
    } else if (reuse == EM_REUSE_TRUE) {
        em__error("%s: Variable %s does not exist, or was not created with em_get_variable(). Did you mean to set "
                  "reuse=EM_REUSE_AUTO in VarScope?",
                  op, full);
    } else {
        r = em__variable_new(op, full, dtype, shape, &init, trainable);
    }
    free(full);
    return r;
}

em_tensor *em_get_variable(const char *name, em_dtype dtype, em_shape shape, em_initializer init) {
    return get_variable(name, dtype, shape, init, true);
}

em_tensor *em_get_variable_untrainable(const char *name, em_dtype dtype, em_shape shape, em_initializer init) {
    return get_variable(name, dtype, shape, init, false);
}

em_tensor *em_find_variable(const char *full_name) {
    struct em_varstore *s = store();
    return s && full_name ? lookup(s, full_name) : NULL;
}

/* This thread's variable named `name`, without making a store. */
static em_tensor *find_by_name(const char *name) {
    em_thread *t = em__thread();
    return t && t->vars ? lookup(t->vars, name) : NULL;
}

int em__variables_list(em_tensor *const **items) {
    struct em_varstore *s = store();
    *items = s ? s->items : NULL;
    return s ? s->n : 0;
}

static int collect(em_tensor **out, int cap, bool trainable_only) {
    struct em_varstore *s = store();
    int count = 0;
    for (int k = 0; s && k < s->n; k++) {
        if (trainable_only && !s->items[k]->var->trainable) continue;
        if (out && count < cap) out[count] = s->items[k];
        count++;
    }
    return count;
}

int em_trainable_variables(em_tensor **out, int cap) { return collect(out, cap, true); }
int em_global_variables(em_tensor **out, int cap) { return collect(out, cap, false); }

struct em_ckpt_pending **em__ckpt_pending(void) {
    struct em_varstore *s = store();
    return s ? &s->pending : NULL;
}

static void release_all(struct em_varstore *s) {
    /* Tensors still referenced elsewhere (a tape, a view) outlive their
     * registration as plain tensors. */
    for (int k = s->n - 1; k >= 0; k--) {
        em_tensor *v = s->items[k];
        free_info(v);
        em__unref(v);
    }
    s->n = 0;
    if (s->icap) memset(s->index, 0, s->icap * sizeof *s->index);
    em__ckpt_pending_free(s->pending);
    s->pending = NULL;
    s->root_reuse = EM_REUSE_FALSE;
}

void em_variables_release(void) {
    struct em_varstore *s = store();
    uint8_t before = em__releasing(EM_FREED_VARIABLES);
    if (s) release_all(s);
    em__release_cause = before;
}

static void variables_shutdown(em_thread *t) {
    struct em_varstore *s = t->vars;
    if (!s) return;
    release_all(s);
    for (int k = 0; k < s->nvs; k++) free(s->vs[k].path);
    for (int k = 0; k < s->nns; k++) free(s->ns[k].path);
    free(s->vs);
    free(s->ns);
    free(s->items);
    free(s->index);
    free(s);
    t->vars = NULL;
}

/* ---- in-place assignment ---- */

enum { ASSIGN, ASSIGN_ADD, ASSIGN_SUB };

/* dst (contiguous, shape) op= src read through broadcast strides bstr. */
#define ASSIGN_KERNEL(T, NAME)                                                                      \
    static void NAME(void *dst_, const void *src_, int nd, const int64_t *shape, const int64_t *bstr, \
                     int64_t n, int mode) {                                                          \
        T *dst = dst_;                                                                              \
        const T *src = src_;                                                                        \
        int64_t idx[EM_MAX_DIMS] = {0}, off = 0;                                                    \
        for (int64_t i = 0; i < n; i++) {                                                           \
            T x = src[off];                                                                         \
            dst[i] = mode == ASSIGN ? x : mode == ASSIGN_ADD ? (T)(dst[i] + x) : (T)(dst[i] - x);     \
            for (int d = nd - 1; d >= 0; d--) {                                                     \
                off += bstr[d];                                                                     \
                if (++idx[d] < shape[d]) break;                                                     \
                off -= bstr[d] * shape[d];                                                          \
                idx[d] = 0;                                                                         \
            }                                                                                       \
        }                                                                                           \
    }
ASSIGN_KERNEL(float, assign_f32)
ASSIGN_KERNEL(double, assign_f64)
ASSIGN_KERNEL(int32_t, assign_i32)
ASSIGN_KERNEL(int64_t, assign_i64)
ASSIGN_KERNEL(uint8_t, assign_u8)
ASSIGN_KERNEL(uint16_t, assign_u16)

typedef void (*assign_fn)(void *, const void *, int, const int64_t *, const int64_t *, int64_t, int);
static const assign_fn assign_kernels[EM_DTYPE_COUNT] = {
    [EM_F32] = assign_f32, [EM_F64] = assign_f64, [EM_I32] = assign_i32,
    [EM_I64] = assign_i64, [EM_U8] = assign_u8,   [EM_BOOL] = assign_u8,
    /* wrapping sums and differences have the same bits signed or not */
    [EM_I8] = assign_u8,   [EM_I16] = assign_u16, [EM_U16] = assign_u16,
};

static bool overlaps(const em_tensor *v, const em_tensor *x) {
    uintptr_t a = (uintptr_t)v->data, b = (uintptr_t)x->data;
    return x == v || x->base == v || (b >= a && b < a + (uintptr_t)v->numel * em_dtype_size((em_dtype)v->dtype));
}

/* A GPU variable's assignment: computed with ops on its device (the tapes
 * are paused: assignments are not differentiated), then copied in place. */
static int assign_with_ops(em_tensor *var, em_tensor *value, int mode) {
    EM_ON_DEVICE(var->device);
    em_scope_begin();
    em__tapes_pause(true);
    em_tensor *v = em_broadcast_to(em_to_device(value, em_tensor_device(var)), em__shape_of(var));
    if (mode == ASSIGN_ADD) v = em_add(var, v);
    else if (mode == ASSIGN_SUB) v = em_sub(var, v);
    em_tensor *dense = v ? em__alloc_on(var->device, (em_dtype)var->dtype, var->ndim, var->shape) : NULL;
    int rc = !dense || em__copy_strided(dense, v) || em__copy_strided(var, dense) ? -1 : 0;
    if (dense) em__unref(dense);
    em__tapes_pause(false);
    em_scope_end();
    return rc;
}

static int assign(const char *op, em_tensor *var, em_tensor *value, int mode) {
    char b1[160], b2[160];
    if (!var || !value) return em__null_input(op), -1;
    if (!em_is_variable(var)) {
        em__error("%s: the target (%s %s) is not a variable: only variables made by em_get_variable change in place",
                  op, em_dtype_name((em_dtype)var->dtype), em__tshape(var, b1, sizeof b1));
        return -1;
    }
    const char *name = var->var->name;
    if (value->dtype != var->dtype) {
        em__error("%s: value has dtype %s but variable %s is %s", op, em_dtype_name((em_dtype)value->dtype), name,
                  em_dtype_name((em_dtype)var->dtype));
        return -1;
    }
    if (mode != ASSIGN && var->dtype == EM_BOOL) {
        em__error("%s: variable %s is bool; only numeric variables can be added to", op, name);
        return -1;
    }
    if (!value->data && value->numel) {
        em__error("%s: value is a placeholder with no value", op);
        return -1;
    }
    int nd = var->ndim, lead = nd - value->ndim;
    int64_t bstr[EM_MAX_DIMS] = {0};
    bool ok = lead >= 0;
    for (int d = 0; ok && d < value->ndim; d++) {
        int64_t vd = value->shape[d], td = var->shape[lead + d];
        ok = vd == td || vd == 1;
        bstr[lead + d] = vd == 1 ? 0 : value->strides[d];
    }
    if (!ok) {
        em__error("%s: value of shape %s cannot be broadcast to variable %s of shape %s", op,
                  em__tshape(value, b1, sizeof b1), name, em__tshape(var, b2, sizeof b2));
        return -1;
    }
    if (!var->numel) return 0;
    if (em__is_gpu(var->device) || em__is_gpu(value->device) || em__is_narrow((em_dtype)var->dtype))
        return assign_with_ops(var, value, mode); /* narrow values add in float32, through the ops */
    em_tensor *src = value;
    if (overlaps(var, value)) { /* read the whole value before writing any of it */
        src = em__alloc((em_dtype)value->dtype, value->ndim, value->shape);
        if (!src) return -1;
        em__copy_strided(src, value);
        for (int d = 0; d < value->ndim; d++)
            bstr[lead + d] = value->shape[d] == 1 ? 0 : src->strides[d];
    }
    assign_kernels[var->dtype](var->data, src->data, nd, var->shape, bstr, var->numel, mode);
    if (src != value) em__unref(src);
    return 0;
}

int em_assign(em_tensor *var, em_tensor *value) { return assign("assign", var, value, ASSIGN); }
int em_assign_add(em_tensor *var, em_tensor *value) { return assign("assign_add", var, value, ASSIGN_ADD); }
int em_assign_sub(em_tensor *var, em_tensor *value) { return assign("assign_sub", var, value, ASSIGN_SUB); }

/* ---- variable scopes and name scopes ---- */

static int push_name_scope(struct em_varstore *s, const char *op, const char *name, int varscope) {
    if (!name || !*name) {
        em__error("%s: the scope name is empty", op);
        return -1;
    }
    char *path = join(s->nns ? s->ns[s->nns - 1].path : "", name);
    if (!path || grow((void **)&s->ns, &s->capns, s->nns, sizeof *s->ns)) {
        free(path);
        em__error("%s: out of memory", op);
        return -1;
    }
    s->ns[s->nns++] = (name_scope){path, varscope};
    return 0;
}

int em_name_scope_begin(const char *name) {
    struct em_varstore *s = store();
    return s ? push_name_scope(s, "name_scope_begin", name, 0) : -1;
}

int em_name_scope_end(void) {
    struct em_varstore *s = store();
    if (!s) return -1;
    if (!s->nns) {
        em__error("name_scope_end: no name scope is open");
        return -1;
    }
    name_scope *top = &s->ns[s->nns - 1];
    if (top->varscope) {
        em__error("name_scope_end: the innermost name scope '%s' belongs to variable scope '%s': close it with "
                  "em_variable_scope_end",
                  top->path, s->vs[top->varscope - 1].path);
        return -1;
    }
    free(top->path);
    s->nns--;
    return 0;
}

static const char *innermost_name_scope(void) {
    struct em_varstore *s = store();
    return s && s->nns ? s->ns[s->nns - 1].path : "";
}

const char *em_name_scope(void) { return innermost_name_scope(); }

int em_variable_scope_begin(const char *name, em_reuse reuse) {
    const char *op = "variable_scope_begin";
    struct em_varstore *s = store();
    if (!s) return -1;
    if ((unsigned)reuse > EM_REUSE_AUTO) {
        em__error("%s: invalid reuse value %d", op, (int)reuse);
        return -1;
    }
    if (push_name_scope(s, op, name, s->nvs + 1)) return -1;
    em_reuse parent = s->nvs ? s->vs[s->nvs - 1].reuse : s->root_reuse;
    char *path = join(s->nvs ? s->vs[s->nvs - 1].path : "", name);
    if (!path || grow((void **)&s->vs, &s->capvs, s->nvs, sizeof *s->vs)) {
        free(path);
        free(s->ns[--s->nns].path);
        em__error("%s: out of memory", op);
        return -1;
    }
    /* TF1: reuse = reuse or parent.reuse */
    s->vs[s->nvs++] = (var_scope){path, reuse == EM_REUSE_TRUE || reuse == EM_REUSE_AUTO ? reuse : parent};
    return 0;
}

int em_variable_scope_end(void) {
    struct em_varstore *s = store();
    if (!s) return -1;
    if (!s->nvs) {
        em__error("variable_scope_end: no variable scope is open");
        return -1;
    }
    name_scope *top = &s->ns[s->nns - 1];
    if (top->varscope != s->nvs) {
        em__error("variable_scope_end: name scope '%s', opened inside variable scope '%s', is still open", top->path,
                  s->vs[s->nvs - 1].path);
        return -1;
    }
    free(top->path);
    s->nns--;
    free(s->vs[--s->nvs].path);
    return 0;
}

const char *em_variable_scope(void) {
    struct em_varstore *s = store();
    return s && s->nvs ? s->vs[s->nvs - 1].path : "";
}

void em_reuse_variables(void) {
    struct em_varstore *s = store();
    if (!s) return;
    if (s->nvs) s->vs[s->nvs - 1].reuse = EM_REUSE_TRUE;
    else s->root_reuse = EM_REUSE_TRUE;
}
