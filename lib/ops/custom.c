/* Ops the user brings: em_custom_gradient (the custom_gradient op of
 * custom.def) and the ops registered with em_op_register.
 *
 * A registered op is a row of the op table made at run time: its shape rule,
 * kernels and gradient rule are wrappers that call the user's callbacks, so
 * the dispatcher, the tapes, the tracer and the graph executor run it as any
 * other op. One with several outputs (or tensors saved for its gradient) runs
 * as one op whose output packs them all, flat, one after another; em_op_call
 * hands out views of the parts (em_slice, em_reshape), through which the
 * gradient flows back as for any view. A call's attributes live in em_attrs:
 * attribute k's number in i[2k] (its bits) and its string, interned by the
 * registry, in i[2k + 1].
 *
 * The registry (this file) owns every record it made, unregistered ones
 * included, so that a stale handle is an error rather than a dangling
 * pointer; it frees them all when the process ends (free_registry). */
#include "../gpu.h"
#include "../internal.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- em_custom_gradient ---- */

/* The output em_custom_gradient computed before it dispatched the op, which
 * the kernel copies instead of running forward a second time; NULL when the
 * kernel runs alone (a graph's replay). */
static _Thread_local em_tensor *forward_done;

static em_custom_forward_fn cg_forward(const em_attrs *a) { return (em_custom_forward_fn)(intptr_t)a->i[8]; }
static em_custom_backward_fn cg_backward(const em_attrs *a) { return (em_custom_backward_fn)(intptr_t)a->i[9]; }
static void *cg_ctx(const em_attrs *a) { return (void *)(intptr_t)a->i[10]; }

static int custom_gradient_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    *dtype = (em_dtype)c->a->dtype;
    *ndim = c->a->ni;
    memcpy(shape, c->a->i, sizeof(int64_t) * (size_t)c->a->ni);
    return 0;
}

/* Runs forward untaped in a scope of its own; y0 NEW in the caller's scope. untraced: as a graph's node
 * (while tracing, em_custom_gradient's own run is traced: its nodes lead nowhere, and a shape-only trace
 * needs them for the output's shape). */
static em_tensor *run_forward(int n, em_tensor *const *in, const em_attrs *a, bool untraced) {
    em_thread *th = em__thread();
    struct em_graph *trace = th->trace;
    if (untraced) th->trace = NULL;
    if (em__op_hooks.tapes_pause) em__op_hooks.tapes_pause(true);
    em_scope_begin();
    em_tensor *y = em_keep(cg_forward(a)(n, in, cg_ctx(a)));
    em_scope_end();
    if (em__op_hooks.tapes_pause) em__op_hooks.tapes_pause(false);
    th->trace = trace;
    return y ? em__own(y) : NULL;
}

static void custom_gradient_cpu(const em_call *c, em_tensor *out) {
    em_tensor *y = forward_done;
    em_scope_begin();
    if (!y && !(y = run_forward(c->n, c->in, c->a, true))) {
        if (!em_last_error()) em__op_error(c, "forward returned NULL");
    } else if (y->dtype != out->dtype || y->ndim != out->ndim ||
               memcmp(y->shape, out->shape, sizeof(int64_t) * (size_t)y->ndim) ||
               (em__is_gpu(y->device) != em__is_gpu(out->device))) {
        char b1[160], b2[160];
        em__op_error(c, "forward gave %s %s%s, where its first call gave %s %s%s", em_dtype_name((em_dtype)y->dtype),
                     em__tshape(y, b1, sizeof b1), em__is_gpu(y->device) ? " on a GPU" : "",
                     em_dtype_name((em_dtype)out->dtype), em__tshape(out, b2, sizeof b2),
                     em__is_gpu(out->device) ? " on a GPU" : "");
    } else {
        em__copy_strided(out, y);
    }
    em_scope_end();
}

/* After a user's gradient rule (`who`): zeros for a needed gradient it left NULL, and each given one
 * checked against its input's dtype and shape. 0, or -1 with an error. */
static int finish_gradients(const em_call *c, const char *who, const bool *need, em_tensor **gin) {
    for (int i = 0; i < c->n; i++) {
        if (!gin[i] && need[i] && !(gin[i] = em_fill_like(c->in[i], 0))) return -1;
        const em_tensor *g = gin[i], *x = c->in[i];
        if (!g || (g->dtype == x->dtype && g->ndim == x->ndim &&
                   !memcmp(g->shape, x->shape, sizeof(int64_t) * (size_t)x->ndim)))
            continue;
        char b1[160], b2[160];
        return em__op_error(c, "%s gave a %s %s gradient for input %d, which is %s %s", who,
                            em_dtype_name((em_dtype)g->dtype), em__tshape(g, b1, sizeof b1), i,
                            em_dtype_name((em_dtype)x->dtype), em__tshape(x, b2, sizeof b2));
    }
    return 0;
}

static int custom_gradient_grad(const em_call *c, em_tensor *out, em_tensor *gout, const bool *need,
                                em_tensor **gin) {
    if (cg_backward(c->a)(c->n, c->in, out, gout, gin, cg_ctx(c->a)))
        return em__op_error(c, "backward failed%s%s", em_last_error() ? ": " : "",
                            em_last_error() ? em_last_error() : "");
    return finish_gradients(c, "backward", need, gin);
}

#define EM_OP(ID, name, arity, dtypes, grad, kernel, flags, cost) \
    EM_OP_ROW(ID, name, arity, dtypes, grad, kernel, flags, cost, name##_infer, name##_cpu, NULL, name##_grad)
#include "custom.def"
#undef EM_OP

em_tensor *em_custom_gradient(int n, em_tensor *const *inputs, em_custom_forward_fn forward,
                              em_custom_backward_fn backward, void *ctx) {
    if (n < 1 || !inputs || !forward || !backward) {
        em__error("custom_gradient: needs n >= 1 inputs, a forward and a backward function (n = %d%s%s%s)", n,
                  inputs ? "" : ", inputs NULL", forward ? "" : ", forward NULL", backward ? "" : ", backward NULL");
        return NULL;
    }
    for (int i = 0; i < n; i++)
        if (!inputs[i]) return em__null_input("custom_gradient");
    em_attrs a = {.i = {[8] = (int64_t)(intptr_t)forward, [9] = (int64_t)(intptr_t)backward, [10] = (int64_t)(intptr_t)ctx}};
    em_tensor *y = run_forward(n, inputs, &a, false);
    if (!y) {
        if (!em_last_error()) em__error("custom_gradient: forward returned NULL");
        return NULL;
    }
    if (!em__is_float((em_dtype)y->dtype)) {
        em__error("custom_gradient: forward gave a %s output: it must be a float (float32, float64, bfloat16, float16)",
                  em_dtype_name((em_dtype)y->dtype));
        return NULL;
    }
    a.dtype = y->dtype;
    a.ni = y->ndim;
    memcpy(a.i, y->shape, sizeof(int64_t) * (size_t)y->ndim);
    forward_done = y->data || !y->numel ? y : NULL; /* a shape-only trace has no value to copy */
    em_tensor *out = em__apply(EM_OP_CUSTOM_GRADIENT, n, inputs, &a);
    forward_done = NULL;
    return out;
}

/* ---- the registry ---- */

typedef struct interned {
    struct interned *next;
    char s[];
} interned;

struct em_op_handle {
    em_op_def def;   /* first: the row the dispatcher reads (c->def points here) */
    em_custom_op user;
    int nparts;      /* outputs and saved tensors */
    bool packed;     /* one flat output holds the parts */
    _Atomic bool retired;
    interned *strings; /* attribute values seen, under the lock */
    em_op_handle *next;
    char names[];    /* the name and attribute names, copied */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static em_op_handle *records; /* every record made, unregistered ones too */

__attribute__((destructor)) static void free_registry(void) {
    pthread_mutex_lock(&lock);
    while (records) {
        em_op_handle *h = records;
        records = h->next;
        while (h->strings) {
            interned *s = h->strings;
            h->strings = s->next;
            free(s);
        }
        free(h);
    }
    pthread_mutex_unlock(&lock);
}

/* The interned copy of s for h's attributes (lives as long as h); NULL on out of memory. */
static const char *intern(em_op_handle *h, const char *s) {
    pthread_mutex_lock(&lock);
    interned *it = h->strings;
    while (it && strcmp(it->s, s)) it = it->next;
    if (!it && (it = malloc(sizeof *it + strlen(s) + 1))) {
        strcpy(it->s, s);
        it->next = h->strings;
        h->strings = it;
    }
    pthread_mutex_unlock(&lock);
    return it ? it->s : NULL;
}

#define HANDLE(c) ((em_op_handle *)(c)->def)

/* What a callback sees of a call, with room for up to 8 inputs and outputs before it allocates. */
typedef struct view {
    em_custom_call cc;
    em_op_attrs attrs;
    em_dtype dt_small[8], odt_small[8];
    em_shape sh_small[8], osh_small[8];
    em_dtype *dt, *odt;
    em_shape *sh, *osh;
    char error[512];
} view;

static void view_end(view *v) {
    if (v->dt != v->dt_small) free(v->dt);
    if (v->sh != v->sh_small) free(v->sh);
    if (v->odt != v->odt_small) free(v->odt);
    if (v->osh != v->osh_small) free(v->osh);
}

static int view_begin(const em_call *c, view *v) {
    em_op_handle *h = HANDLE(c);
    int n = c->n, m = h->nparts;
    v->dt = n <= 8 ? v->dt_small : malloc(sizeof *v->dt * (size_t)n);
    v->sh = n <= 8 ? v->sh_small : malloc(sizeof *v->sh * (size_t)n);
    v->odt = m <= 8 ? v->odt_small : calloc((size_t)m, sizeof *v->odt);
    v->osh = m <= 8 ? v->osh_small : calloc((size_t)m, sizeof *v->osh);
    if (!v->dt || !v->sh || !v->odt || !v->osh) {
        view_end(v);
        return em__op_error(c, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        v->dt[i] = (em_dtype)c->in[i]->dtype;
        v->sh[i] = (em_shape){.ndim = c->in[i]->ndim};
        memcpy(v->sh[i].dims, c->in[i]->shape, sizeof(int64_t) * (size_t)c->in[i]->ndim);
    }
    em__custom_attrs_decode(c->def, c->a, &v->attrs);
    v->error[0] = 0;
    v->cc = (em_custom_call){&h->user, n, v->dt, v->sh, m, v->odt, v->osh, &v->attrs, v->error, sizeof v->error};
    return 0;
}

/* The op's error after callback `what` returned rc. */
static int callback_failed(const em_call *c, const view *v, const char *what, int rc) {
    if (v->error[0]) return em__op_error(c, "%s", v->error);
    return em__op_error(c, "the %s failed (returned %d) without a message", what, rc);
}

static int unregistered(const em_call *c) {
    return em__op_error(c, "the op was unregistered (em_op_unregister): register it again to run it");
}

/* Runs the shape rule into v's output dtypes and shapes, checking them. */
static int shapes(const em_call *c, view *v) {
    em_op_handle *h = HANDLE(c);
    if (atomic_load(&h->retired)) return unregistered(c);
    int rc = h->user.shape(&v->cc, v->odt, v->osh);
    if (rc) return callback_failed(c, v, "shape rule", rc);
    for (int k = 0; k < h->nparts; k++) {
        bool ok = v->osh[k].ndim >= 0 && v->osh[k].ndim <= EM_MAX_DIMS && (unsigned)v->odt[k] < EM_DTYPE_COUNT;
        for (int d = 0; ok && d < v->osh[k].ndim; d++) ok = v->osh[k].dims[d] >= 0;
        if (!ok) return em__op_error(c, "the shape rule gave output %d an invalid dtype (%d) or shape (rank %d)", k,
                                     (int)v->odt[k], v->osh[k].ndim);
        if (h->packed && v->odt[k] != v->odt[0])
            return em__op_error(c, "the shape rule gave output %d %s and output 0 %s: the outputs and saved "
                                   "tensors of one op share a dtype",
                                k, em_dtype_name(v->odt[k]), em_dtype_name(v->odt[0]));
    }
    return 0;
}

static int custom_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    view v;
    if (view_begin(c, &v)) return -1;
    int rc = shapes(c, &v);
    if (!rc) {
        *dtype = v.odt[0];
        if (HANDLE(c)->packed) {
            int64_t total = 0;
            for (int k = 0; k < HANDLE(c)->nparts; k++) total += em_shape_numel(v.osh[k]);
            *ndim = 1;
            shape[0] = total;
        } else {
            *ndim = v.osh[0].ndim;
            memcpy(shape, v.osh[0].dims, sizeof(int64_t) * (size_t)v.osh[0].ndim);
        }
    }
    view_end(&v);
    return rc;
}

/* Runs the CPU kernel (gpu: the GPU kernel) of c into out. */
static void run_kernel(const em_call *c, em_tensor *out, bool gpu) {
    em_op_handle *h = HANDLE(c);
    view v;
    if (atomic_load(&h->retired)) {
        unregistered(c);
        return;
    }
    if (view_begin(c, &v)) return;
    const void *in_small[8], **in = c->n <= 8 ? in_small : malloc(sizeof *in * (size_t)c->n);
    void *out_small[8], **outs = h->nparts <= 8 ? out_small : malloc(sizeof *outs * (size_t)h->nparts);
    int rc = 0;
    if (!in || !outs) {
        rc = em__op_error(c, "out of memory");
    } else if (h->packed) {
        rc = shapes(c, &v);
        int64_t at = 0;
        for (int k = 0; !rc && k < h->nparts; k++) {
            outs[k] = (char *)out->data + at * (int64_t)em_dtype_size(v.odt[k]);
            at += em_shape_numel(v.osh[k]);
        }
    } else { /* the output as it is: a fused chain runs the kernel on blocks of it */
        v.odt[0] = (em_dtype)out->dtype;
        v.osh[0] = (em_shape){.ndim = out->ndim};
        memcpy(v.osh[0].dims, out->shape, sizeof(int64_t) * (size_t)out->ndim);
        outs[0] = out->data;
    }
    for (int i = 0; !rc && i < c->n; i++) in[i] = c->in[i]->data;
    if (!rc && gpu) {
        void *stream = em__gpu->stream(out->device - EM_GPU_BASE);
        if (stream && (rc = h->user.gpu(&v.cc, in, outs, stream))) callback_failed(c, &v, "GPU kernel", rc);
    } else if (!rc && (rc = h->user.cpu(&v.cc, in, outs))) {
        callback_failed(c, &v, "CPU kernel", rc);
    }
    if (in != in_small) free(in);
    if (outs != out_small) free(outs);
    view_end(&v);
}

static void custom_cpu(const em_call *c, em_tensor *out) { run_kernel(c, out, false); }
static void custom_gpu(const em_call *c, em_tensor *out) { run_kernel(c, out, true); }

/* The first `count` parts of a packed output (or of its gradient) as views of their shapes, NEW. */
static int unpack(em_tensor *packed, const view *v, int count, em_tensor **parts) {
    int64_t at = 0;
    for (int k = 0; k < count; k++) {
        int64_t size = em_shape_numel(v->osh[k]);
        parts[k] = em_reshape(em_slice(packed, &at, &size), v->osh[k]);
        if (!parts[k]) return -1;
        at += size;
    }
    return 0;
}

static int custom_grad(const em_call *c, em_tensor *out, em_tensor *gout, const bool *need, em_tensor **gin) {
    em_op_handle *h = HANDLE(c);
    view v;
    if (view_begin(c, &v)) return -1;
    int nout = h->user.nout, rc = shapes(c, &v);
    em_tensor *small[24], **t = h->nparts * 3 <= 24 ? small : malloc(sizeof *t * (size_t)h->nparts * 3);
    if (!rc && !t) rc = em__op_error(c, "out of memory");
    em_tensor **outs = t, **gouts = t ? t + h->nparts : NULL, **saved = t && h->user.nsaved ? outs + nout : NULL;
    if (!rc && h->packed) {
        rc = unpack(out, &v, h->nparts, outs) || unpack(gout, &v, nout, gouts) ? -1 : 0;
    } else if (!rc) {
        outs[0] = out;
        gouts[0] = gout;
    }
    if (!rc) {
        int r = h->user.gradient(&v.cc, c->in, outs, gouts, saved, gin);
        if (r) rc = callback_failed(c, &v, "gradient rule", r);
    }
    if (!rc) rc = finish_gradients(c, "the gradient rule", need, gin);
    if (t != small) free(t);
    view_end(&v);
    return rc;
}

/* "op_register: \"name\": why"; NULL. */
static em_op_handle *refuse(const em_custom_op *def, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static em_op_handle *refuse(const em_custom_op *def, const char *fmt, ...) {
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    em__error("op_register: \"%s\": %s", def && def->name ? def->name : "(no name)", msg);
    return NULL;
}

#define CUSTOM_MAX_PARTS 64

em_op_handle *em_op_register(const em_custom_op *def) {
    if (!def) return refuse(def, "the definition is NULL");
    if (!def->name || !def->name[0]) return refuse(def, "the definition needs a name");
    for (const char *p = def->name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
              *p == '.' || *p == '-' || *p == ':'))
            return refuse(def, "a name may hold letters, digits and _ . - : only");
    if (def->arity < -1) return refuse(def, "arity %d: give the number of inputs, or -1 for any", def->arity);
    int nout = def->nout ? def->nout : 1;
    if (nout < 1 || def->nsaved < 0 || nout + def->nsaved > CUSTOM_MAX_PARTS)
        return refuse(def, "nout %d and nsaved %d: at least 1 output and at most %d in all", def->nout, def->nsaved,
                      CUSTOM_MAX_PARTS);
    if (def->nattrs < 0 || def->nattrs > EM_OP_MAX_ATTRS)
        return refuse(def, "%d attributes: at most %d", def->nattrs, EM_OP_MAX_ATTRS);
    size_t bytes = strlen(def->name) + 1;
    for (int k = 0; k < def->nattrs; k++) {
        if (!def->attr_names[k] || !def->attr_names[k][0]) return refuse(def, "attribute %d has no name", k);
        for (int j = 0; j < k; j++)
            if (!strcmp(def->attr_names[j], def->attr_names[k]))
                return refuse(def, "attribute \"%s\" is declared twice", def->attr_names[k]);
        bytes += strlen(def->attr_names[k]) + 1;
    }
    if (def->flags & ~(unsigned)(EM_CUSTOM_ELEMENTWISE | EM_CUSTOM_NO_GRADIENT))
        return refuse(def, "unknown flags 0x%x", def->flags);
    if (!def->shape || !def->cpu) return refuse(def, "the definition needs a shape rule and a CPU kernel");
    if (!def->gradient && !(def->flags & EM_CUSTOM_NO_GRADIENT))
        return refuse(def, "no gradient rule: give one, or flag the op EM_CUSTOM_NO_GRADIENT");
    if (def->gradient && (def->flags & EM_CUSTOM_NO_GRADIENT))
        return refuse(def, "it has a gradient rule but is flagged EM_CUSTOM_NO_GRADIENT");

    em_op_handle *h = calloc(1, sizeof *h + bytes);
    if (!h) return refuse(def, "out of memory");
    h->user = *def;
    h->user.nout = nout;
    char *at = h->names;
    h->user.name = strcpy(at, def->name);
    at += strlen(at) + 1;
    for (int k = 0; k < def->nattrs; k++) {
        h->user.attr_names[k] = strcpy(at, def->attr_names[k]);
        at += strlen(at) + 1;
    }
    h->nparts = nout + def->nsaved;
    h->packed = h->nparts > 1;
    bool elementwise = (def->flags & EM_CUSTOM_ELEMENTWISE) && !h->packed;
    h->def = (em_op_def){
        .name = h->user.name,
        .arity = def->arity,
        .dtypes = EM_DT_ALL, /* the shape rule says which it takes */
        .flags = (def->gradient ? 0 : EM_OPF_NONDIFF) | (elementwise ? EM_OPF_FUSABLE : 0),
        .cost = EM_COST_POINTWISE,
        .infer = custom_infer,
        .cpu = custom_cpu,
        .grad = def->gradient ? custom_grad : NULL,
        .gpu = def->gpu ? custom_gpu : NULL,
    };
    if (em__op_register(&h->def)) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s", em_last_error());
        free(h);
        em_clear_error();
        em__error("%s", msg);
        return NULL;
    }
    pthread_mutex_lock(&lock);
    h->next = records;
    records = h;
    pthread_mutex_unlock(&lock);
    return h;
}

/* Whether h is a live record of this registry (a handle from em_op_register). */
static bool is_record(const em_op_handle *h) {
    pthread_mutex_lock(&lock);
    const em_op_handle *r = records;
    while (r && r != h) r = r->next;
    pthread_mutex_unlock(&lock);
    return r != NULL;
}

int em_op_unregister(em_op_handle *op) {
    if (!op || !is_record(op)) {
        em__error("op_unregister: %s", op ? "not a handle from em_op_register" : "the handle is NULL");
        return -1;
    }
    if (atomic_exchange(&op->retired, true)) {
        em__error("op_unregister: \"%s\" was unregistered already", op->user.name);
        return -1;
    }
    em__op_retire(op->def.id);
    return 0;
}

em_op_handle *em_op_find(const char *name) {
    const em_op_def *d = em__op_by_name(name);
    return em__op_is_custom(d) ? (em_op_handle *)d : NULL;
}

bool em__op_is_custom(const em_op_def *d) { return d && d->infer == custom_infer; }

void em__custom_attrs_decode(const em_op_def *d, const em_attrs *a, em_op_attrs *out) {
    const em_op_handle *h = (const em_op_handle *)d;
    out->n = h->user.nattrs;
    for (int k = 0; k < h->user.nattrs; k++) {
        double number;
        memcpy(&number, &a->i[2 * k], sizeof number);
        out->a[k] = (em_op_attr){h->user.attr_names[k], number, (const char *)(intptr_t)a->i[2 * k + 1]};
    }
}

int em__custom_attrs_encode(const em_op_def *d, const em_op_attrs *in, em_attrs *a) {
    em_op_handle *h = (em_op_handle *)d;
    const char *name = h->user.name;
    *a = (em_attrs){.ni = 2 * h->user.nattrs};
    for (int j = 0; in && j < in->n; j++) {
        int k = 0;
        while (k < h->user.nattrs && (!in->a[j].name || strcmp(in->a[j].name, h->user.attr_names[k]))) k++;
        if (in->n > EM_OP_MAX_ATTRS || k == h->user.nattrs) {
            char known[400] = "";
            for (int q = 0; q < h->user.nattrs; q++)
                snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", q ? ", " : "",
                         h->user.attr_names[q]);
            em__error("%s: it has no attribute \"%s\" (it declares %s)", name,
                      in->n > EM_OP_MAX_ATTRS ? "(too many)" : in->a[j].name ? in->a[j].name : "(NULL)",
                      h->user.nattrs ? known : "none");
            return -1;
        }
        memcpy(&a->i[2 * k], &in->a[j].number, sizeof(double));
        if (in->a[j].string) {
            const char *s = intern(h, in->a[j].string);
            if (!s) {
                em__error("%s: out of memory", name);
                return -1;
            }
            a->i[2 * k + 1] = (int64_t)(intptr_t)s;
        }
    }
    return 0;
}

const em_custom_op *em_op_definition(const em_op_handle *op) { return op ? &op->user : NULL; }

int em_op_call(em_op_handle *op, int n, em_tensor *const *inputs, const em_op_attrs *attrs, int nout,
               em_tensor **outputs) {
    for (int k = 0; outputs && k < nout; k++) outputs[k] = NULL;
    if (!op) {
        em__error("op_call: the op handle is NULL (em_op_register failed?)");
        return -1;
    }
    const char *name = op->user.name;
    if (atomic_load(&op->retired)) {
        em__error("%s: the op was unregistered (em_op_unregister): register it again to run it", name);
        return -1;
    }
    if (n < 0 || (n && !inputs) || (op->user.arity >= 0 ? n != op->user.arity : n < 1)) {
        em__error("%s: takes %s%d input%s, got %d", name, op->user.arity >= 0 ? "" : "at least ",
                  op->user.arity >= 0 ? op->user.arity : 1, op->user.arity == 1 ? "" : "s", n);
        return -1;
    }
    if (nout != op->user.nout || !outputs) {
        em__error("%s: gives %d output%s, asked for %d%s", name, op->user.nout, op->user.nout == 1 ? "" : "s", nout,
                  outputs ? "" : " into a NULL array");
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (!inputs[i]) return em__null_input(name), -1;
    em_attrs a;
    if (em__custom_attrs_encode(&op->def, attrs, &a)) return -1;
    em_tensor *y = em__apply(op->def.id, n, inputs, &a);
    if (!y) return -1;
    if (!op->packed) {
        outputs[0] = y;
        return 0;
    }
    /* The parts' shapes: the shape rule again (it reads the inputs' shapes only). */
    em_call c = {&op->def, n, inputs, &a, NULL};
    view v;
    if (view_begin(&c, &v)) return -1;
    int rc = shapes(&c, &v) || unpack(y, &v, nout, outputs) ? -1 : 0;
    view_end(&v);
    if (rc)
        for (int k = 0; k < nout; k++) outputs[k] = NULL;
    return rc;
}
