/* The dispatcher: one path for every op. It validates through the op's shape
 * rule, allocates the output, runs the kernel, and hands the call to the open
 * tapes and the tracer through the hooks they register (em__op_hooks,
 * lib/op.h): it calls nothing above its layer. It is the only place ops are
 * run from. */
#include "internal.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>

em_tensor em__not_a_view;
em_op_hooks em__op_hooks;

/* The built-in rows by id, then those registered at run time. */
static const em_op_def *const builtin[EM_OP_BUILTIN_COUNT] = {
#define EM_FAMILY(family)
#define EM_OP(ID, name, ...) [EM_OP_##ID] = &em_opdef_##name,
#include "ops/ops.def"
#undef EM_OP
#undef EM_FAMILY
};
/* Registered rows: appended under the lock, read without it (a slot is
 * written before the count that publishes it). */
static const em_op_def *registered[EM_OP_REGISTERED_MAX];
static _Atomic int nregistered;
static _Atomic bool retired[EM_OP_REGISTERED_MAX]; /* unregistered: kept for their id, not found by name */
static pthread_mutex_t register_lock = PTHREAD_MUTEX_INITIALIZER;

const em_op_def *em__op_def(em_op op) {
    if ((unsigned)op < EM_OP_BUILTIN_COUNT) return builtin[op];
    int k = (int)op - EM_OP_BUILTIN_COUNT;
    return k >= 0 && k < atomic_load_explicit(&nregistered, memory_order_acquire) ? registered[k] : NULL;
}

static const char *op_name(int op) { return em__op_def((em_op)op)->name; }

/* The debug mode's messages name the op that made a tensor (lib/internal.h). */
__attribute__((constructor)) static void install_hooks(void) { em__hooks.op_name = op_name; }

int em__op_count(void) { return EM_OP_BUILTIN_COUNT + atomic_load_explicit(&nregistered, memory_order_acquire); }

const em_op_def *em__op_by_name(const char *name) {
    if (!name) return NULL;
    int n = em__op_count();
    for (int op = 0; op < n; op++)
        if (strcmp(em__op_def((em_op)op)->name, name) == 0 &&
            (op < EM_OP_BUILTIN_COUNT || !atomic_load(&retired[op - EM_OP_BUILTIN_COUNT])))
            return em__op_def((em_op)op);
    return NULL;
}

void em__op_retire(em_op op) {
    int k = (int)op - EM_OP_BUILTIN_COUNT;
    if (k >= 0 && k < atomic_load(&nregistered)) atomic_store(&retired[k], true);
}

bool em__op_has_gpu_kernel(const em_op_def *d) { return d->gpu || em__gpu_kernel(d->id); }

int em__op_register(em_op_def *def) {
    if (!def || !def->name || !def->name[0] || !def->infer || !def->cpu) {
        em__error("op registration: the definition needs a name, a shape rule and a CPU kernel");
        return -1;
    }
    pthread_mutex_lock(&register_lock);
    int n = atomic_load_explicit(&nregistered, memory_order_relaxed), rc = 0;
    if (em__op_by_name(def->name)) {
        em__error("op registration: an op named \"%s\" already exists", def->name);
        rc = -1;
    } else if (n == EM_OP_REGISTERED_MAX) {
        em__error("op registration: \"%s\": at most %d ops can be registered", def->name, EM_OP_REGISTERED_MAX);
        rc = -1;
    } else {
        def->id = (em_op)(EM_OP_BUILTIN_COUNT + n);
        registered[n] = def;
        atomic_store_explicit(&nregistered, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&register_lock);
    return rc;
}

int em__op_error(const em_call *c, const char *fmt, ...) {
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    em__error("%s: %s", c->def->name, msg);
    return -1;
}

int em__axis(const em_call *c, int axis, int ndim, const char *argname) {
    int a = axis < 0 ? axis + ndim : axis;
    if (a < 0 || a >= ndim) {
        char b[160];
        em__op_error(c, "%s %d is out of range for input of shape %s (rank %d)", argname, axis,
                     em__tshape(c->in[0], b, sizeof b), ndim);
        return -1;
    }
    return a;
}

int em__broadcast_shapes(const em_call *c, int *ndim, int64_t *shape) {
    int nd = 0;
    for (int i = 0; i < c->n; i++)
        if (c->in[i]->ndim > nd) nd = c->in[i]->ndim;
    for (int d = 0; d < nd; d++) shape[d] = 1;
    for (int i = 0; i < c->n; i++) {
        const em_tensor *t = c->in[i];
        for (int d = 0; d < t->ndim; d++) {
            int64_t *o = &shape[nd - t->ndim + d];
            int64_t v = t->shape[d];
            if (v == *o || v == 1) continue;
            if (*o == 1) {
                *o = v;
                continue;
            }
            char msg[600];
            size_t at = 0;
            for (int k = 0; k < c->n && at < sizeof msg; k++) {
                char b[160];
                at += (size_t)snprintf(msg + at, sizeof msg - at, "%s%s", k ? " vs " : "", em__tshape(c->in[k], b, sizeof b));
            }
            return em__op_error(c, "shapes cannot be broadcast together: %s", msg);
        }
    }
    *ndim = nd;
    return 0;
}

/* Contiguous copies of the strided inputs for kernels that need them. */
static em_tensor *contiguous(em_tensor *t) {
    if (!t->data || em__is_contiguous(t)) return t;
    em_tensor *c = em__alloc_on(t->device, (em_dtype)t->dtype, t->ndim, t->shape);
    if (c && em__copy_strided(c, t)) {
        em__unref(c);
        c = NULL;
    }
    return c;
}

static int infer_on_host(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape);

/* c's GPU kernel into out, on out's GPU (c's inputs are there too): the
 * plug-in's entry for the op's id, found in the table it gave at load. */
static int run_gpu(const em_call *c, em_tensor *out) {
    const em_op_def *d = c->def;
    if (d->gpu) {
        uint64_t errors = em__thread()->errors;
        d->gpu(c, out);
        return em__thread()->errors == errors ? 0 : -1;
    }
    em_gpu_kernel_fn gpu = em__gpu_kernel(d->id);
    if (!gpu) {
        em__error("%s: no GPU kernel for this op%s", d->name,
                  (unsigned)d->id < EM_OP_BUILTIN_COUNT ? " in the CUDA plug-in" : " (it was registered without one)");
        return -1;
    }
    em_gpu_tensor small[4], *in = c->n <= 4 ? small : malloc(sizeof *in * (size_t)c->n);
    if (!in) {
        em__error("%s: out of memory", d->name);
        return -1;
    }
    for (int i = 0; i < c->n; i++) in[i] = em__gpu_tensor(c->in[i]);
    em_gpu_tensor o = em__gpu_tensor(out);
    em_gpu_call gc = {d->name, c->n, in, c->a, out->device - EM_GPU_BASE};
    int rc = gpu(&gc, &o);
    if (in != small) free(in);
    return rc;
}

/* ---- bfloat16 and float16 through float32 kernels (lib/op.h, em__narrow_call) ---- */

em_dtype em__narrow_call(const em_call *c) {
    const unsigned dts = c->def->dtypes;
    if (!(dts & EM_DT_F32)) return EM_DTYPE_COUNT;
    for (int i = 0; i < c->n; i++) {
        em_dtype d = (em_dtype)c->in[i]->dtype;
        if (em__is_narrow(d) && !(dts & EM_DT(d))) return d;
    }
    if (em__is_narrow((em_dtype)c->a->dtype) && !(dts & EM_DT(c->a->dtype))) return (em_dtype)c->a->dtype;
    return EM_DTYPE_COUNT;
}

/* The call as its float32 kernels see it: headers of the narrow inputs relabelled float32 (wide[i], for the
 * shape rule only) and the dtype attribute float32 where it names the narrow dtype. Mixing the narrow dtype
 * with float32 or the other narrow dtype is an error here, where the relabelling would hide it; other
 * dtypes meet the op's own rule. */
static int widen_call(const em_call *c, em_dtype narrow, em_tensor *wide, em_tensor **in, em_attrs *a,
                      em_call *wc) {
    int first = -1;
    for (int i = 0; i < c->n; i++) {
        em_dtype d = (em_dtype)c->in[i]->dtype;
        in[i] = c->in[i];
        if (d == narrow && first < 0) first = i;
        if (d == narrow) {
            wide[i] = *c->in[i];
            wide[i].dtype = EM_F32;
            in[i] = &wide[i];
        }
    }
    for (int i = 0; i < c->n && first >= 0; i++) {
        em_dtype d = (em_dtype)c->in[i]->dtype;
        if (d == EM_F32 || (em__is_narrow(d) && d != narrow)) {
            char b1[160], b2[160];
            return em__op_error(c, "dtypes differ: %s %s (input %d) vs %s %s (input %d) (convert one with em_cast)",
                                em_dtype_name(narrow), em__tshape(c->in[first], b1, sizeof b1), first,
                                em_dtype_name(d), em__tshape(c->in[i], b2, sizeof b2), i);
        }
    }
    *a = *c->a;
    if (a->dtype == (int)narrow) a->dtype = EM_F32;
    *wc = (em_call){c->def, c->n, in, a, c->acc};
    return 0;
}

int em__infer_rule(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    em_dtype narrow = em__narrow_call(c);
    if (narrow == EM_DTYPE_COUNT) return c->def->infer(c, dtype, ndim, shape);
    em_tensor wide_small[4], *in_small[4];
    em_tensor *wide = c->n <= 4 ? wide_small : malloc(sizeof *wide * (size_t)c->n);
    em_tensor **in = c->n <= 4 ? in_small : malloc(sizeof *in * (size_t)c->n);
    em_attrs a;
    em_call wc;
    int rc = -1;
    if (!wide || !in) em__op_error(c, "out of memory");
    else if (!widen_call(c, narrow, wide, in, &a, &wc) && !(rc = c->def->infer(&wc, dtype, ndim, shape)))
        if (*dtype == EM_F32) *dtype = narrow;
    if (wide != wide_small) free(wide);
    if (in != in_small) free(in);
    return rc;
}

/* out = cast(x) by the cast op's kernel, on out's device. */
static int cast_into(em_tensor *x, em_tensor *out) {
    em_attrs a = {.dtype = out->dtype};
    em_call cc = {&em_opdef_cast, 1, &x, &a, NULL};
    return em__kernel(&cc, out);
}

/* c's kernel on float32 copies of its narrow inputs (and output). */
static int kernel_widened(const em_call *c, em_dtype narrow, em_tensor *out) {
    em_tensor wide_small[4], *in_small[4], *copy_small[4];
    const int n = c->n;
    em_tensor *wide = n <= 4 ? wide_small : malloc(sizeof *wide * (size_t)n);
    em_tensor **in = n <= 4 ? in_small : malloc(sizeof *in * (size_t)n);
    em_tensor **copy = n <= 4 ? copy_small : calloc((size_t)n, sizeof *copy);
    em_tensor *wout = NULL;
    em_attrs a;
    em_call wc;
    int rc = -1;
    const uint64_t errors = em__thread()->errors;
    if (copy == copy_small) memset(copy_small, 0, sizeof copy_small);
    if (!wide || !in || !copy) {
        em__op_error(c, "out of memory");
        goto done;
    }
    if (widen_call(c, narrow, wide, in, &a, &wc)) goto done;
    for (int i = 0; i < n; i++) {
        if (in[i] != &wide[i]) continue;
        em_tensor *x = c->in[i];
        if (!(copy[i] = em__alloc_on(x->device, EM_F32, x->ndim, x->shape)) || cast_into(x, copy[i])) goto done;
        in[i] = copy[i];
    }
    wout = out->dtype == (uint8_t)narrow ? em__alloc_on(out->device, EM_F32, out->ndim, out->shape) : out;
    if (!wout || em__kernel(&wc, wout) || (wout != out && cast_into(wout, out))) goto done;
    rc = 0;
    if (c->def->flags & EM_OPF_INPLACE) /* the float32 copies were updated: round them back */
        for (int i = 0; i < n && !rc; i++)
            if (copy[i]) rc = cast_into(copy[i], c->in[i]);
done:
    if (wout && wout != out) em__unref(wout);
    for (int i = 0; copy && i < n; i++)
        if (copy[i]) em__unref(copy[i]);
    if (wide != wide_small) free(wide);
    if (in != in_small) free(in);
    if (copy != copy_small) free(copy);
    if (rc && em__thread()->errors == errors) em__op_error(c, "out of memory");
    return rc;
}

static int kernel(const em_call *c, em_tensor *out) {
    em_dtype narrow = em__narrow_call(c);
    if (narrow != EM_DTYPE_COUNT) return kernel_widened(c, narrow, out);
    em_thread *th = em__thread();
    uint64_t errors = th->errors;
    if (em__is_gpu(out->device) && !(c->def->flags & EM_OPF_ANY_DEVICE)) return run_gpu(c, out);
    c->def->cpu(c, out);
    return th->errors == errors ? 0 : -1;
}

int em__kernel(const em_call *c, em_tensor *out) {
    if (out->numel == 0) return 0; /* no element to compute (its other dims may still be huge) */
    if (atomic_load_explicit(&em__profiling, memory_order_relaxed)) return em__profile_kernel(c, out, kernel);
    return kernel(c, out);
}

int em__infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    if (c->def->flags & EM_OPF_CHECKS_VALUES)
        for (int i = 0; i < c->n; i++)
            if (em__is_gpu(c->in[i]->device)) return infer_on_host(c, dtype, ndim, shape);
    return em__infer_rule(c, dtype, ndim, shape);
}

int em__run_kernel(const em_call *c, em_tensor *out) {
    const em_op_def *d = c->def;
    if ((d->flags & EM_OPF_STRIDED) || out->numel == 0) return em__kernel(c, out);
    int n = c->n;
    em_tensor *small[4], **dense = n <= 4 ? small : malloc(sizeof(em_tensor *) * (size_t)n);
    int ok = dense != NULL;
    for (int i = 0; ok && i < n; i++) {
        dense[i] = contiguous(c->in[i]);
        if (!dense[i]) {
            for (int k = 0; k < i; k++)
                if (dense[k] != c->in[k]) em__unref(dense[k]);
            ok = 0;
        }
    }
    if (!ok) {
        if (dense != small) free(dense);
        em__error("%s: out of memory", d->name);
        return -1;
    }
    em_call dc = {d, n, dense, c->a, NULL};
    int rc = em__kernel(&dc, out); /* a kernel fails only out of scratch memory */
    for (int i = 0; i < n; i++)
        if (dense[i] != c->in[i]) em__unref(dense[i]);
    if (dense != small) free(dense);
    return rc;
}

static inline em_tensor *dispatch(em_op op, int n, em_tensor *const *in, const em_attrs *a) {
    if (atomic_load_explicit(&em__placing, memory_order_relaxed)) return em__op_hooks.apply_placed(op, n, in, a);
    return em__run_op(op, n, in, a);
}

static inline em_tensor *apply_checked(em_op op, int n, em_tensor *const *in, const em_attrs *a);

/* Debug mode: an input that was freed is an error saying so. Out of line,
 * so that with debug mode off the check costs one load and a branch. */
static __attribute__((noinline, cold)) em_tensor *apply_debug(em_op op, int n, em_tensor *const *in,
                                                              const em_attrs *a) {
    for (int i = 0; i < n; i++)
        if (em__released_report(in[i], em__op_def(op)->name, i)) return NULL;
    return apply_checked(op, n, in, a);
}

/* ---- autocast (include/ember/train.h) ---- */

int em_autocast_begin(em_dtype dtype) {
    if (!em__is_narrow(dtype)) {
        em__error("autocast_begin: dtype %s (%d): autocast runs in bfloat16 or float16 (EM_BF16, EM_F16)",
                  em_dtype_name(dtype), (int)dtype);
        return -1;
    }
    em_thread *th = em__thread();
    if (!th) {
        em__error("autocast_begin: out of memory");
        return -1;
    }
    if (th->nautocast == EM_AUTOCAST_MAX_DEPTH) {
        em__error("autocast_begin: autocast regions nest at most %d deep", EM_AUTOCAST_MAX_DEPTH);
        return -1;
    }
    th->autocast[th->nautocast++] = (uint8_t)dtype;
    return 0;
}

int em_autocast_end(void) {
    em_thread *th = em__thread();
    if (!th || !th->nautocast) {
        em__error("autocast_end: no autocast region is open on this thread (em_autocast_begin)");
        return -1;
    }
    th->nautocast--;
    return 0;
}

em_dtype em_autocast_dtype(void) {
    em_thread *th = em__thread();
    return th && th->nautocast ? (em_dtype)th->autocast[th->nautocast - 1] : EM_F32;
}

/* The dtype autocast gives input x of a call of op's row d inside an autocast region of dtype `narrow`
 * (x's own when it is left alone). mixed: the call's float inputs mix a narrow dtype with float32, or the two
 * narrow dtypes. An op of neither list given such a mix runs in the region's dtype, as a layer does under
 * Keras' mixed policy (a float32 bias added to a bfloat16 product): the activations the backward pass keeps
 * stay narrow, which is the memory a CPU gains. */
static em_dtype autocast_dtype(const em_op_def *d, const em_tensor *x, em_dtype narrow, bool mixed) {
    const em_dtype dt = (em_dtype)x->dtype;
    if (d->flags & EM_OPF_AUTOCAST_NARROW) return dt == EM_F32 || em__is_narrow(dt) ? narrow : dt;
    if (d->flags & EM_OPF_AUTOCAST_FLOAT32) return em__is_narrow(dt) ? EM_F32 : dt;
    return mixed && (dt == EM_F32 || em__is_narrow(dt)) ? narrow : dt;
}

/* The call with its inputs cast as autocast says, through em_cast: the tapes and the tracer record the casts
 * as ops of their own (the casts are new tensors of the current scope, as a composed op's temporaries are). */
static __attribute__((noinline)) em_tensor *apply_autocast(em_op op, int n, em_tensor *const *in,
                                                           const em_attrs *a, em_dtype narrow) {
    const em_op_def *d = em__op_def(op);
    if (d->flags & EM_OPF_INPLACE) return dispatch(op, n, in, a);
    bool wide = false, bf16 = false, f16 = false;
    for (int i = 0; i < n; i++) {
        wide |= in[i]->dtype == EM_F32;
        bf16 |= in[i]->dtype == EM_BF16;
        f16 |= in[i]->dtype == EM_F16;
    }
    const bool mixed = (bf16 || f16) && (wide || (bf16 && f16));
    bool casts = false;
    for (int i = 0; i < n && !casts; i++) casts = autocast_dtype(d, in[i], narrow, mixed) != in[i]->dtype;
    if (!casts) return dispatch(op, n, in, a);
    em_tensor *small[4], **cast = n <= 4 ? small : malloc(sizeof *cast * (size_t)n);
    if (!cast) {
        em__error("%s: out of memory", d->name);
        return NULL;
    }
    em_tensor *out = NULL;
    int i = 0;
    for (; i < n; i++) {
        em_dtype to = autocast_dtype(d, in[i], narrow, mixed);
        cast[i] = to == in[i]->dtype ? in[i] : em_cast(in[i], to);
        if (!cast[i]) break;
    }
    if (i == n) out = dispatch(op, n, cast, a);
    if (cast != small) free(cast);
    return out;
}

static inline em_tensor *apply_checked(em_op op, int n, em_tensor *const *in, const em_attrs *a) {
    em_thread *th = em__thread();
    if (th && th->nautocast) return apply_autocast(op, n, in, a, (em_dtype)th->autocast[th->nautocast - 1]);
    return dispatch(op, n, in, a);
}

em_tensor *em__apply(em_op op, int n, em_tensor *const *in, const em_attrs *a) {
    for (int i = 0; i < n; i++)
        if (!in[i]) return em__null_input(em__op_def(op)->name);
    if (atomic_load_explicit(&em__debug, memory_order_relaxed)) return apply_debug(op, n, in, a);
    return apply_checked(op, n, in, a);
}

/* The shape rule of an op that checks values (indices, labels), given host
 * copies of its GPU inputs. */
static int infer_on_host(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    em_tensor *small[4], **host = c->n <= 4 ? small : calloc((size_t)c->n, sizeof *host);
    int rc = host ? 0 : -1;
    if (!host) em__error("%s: out of memory", c->def->name);
    for (int i = 0; i < c->n && !rc; i++)
        if (!(host[i] = em__to_host(c->in[i]))) {
            while (i--) em__unref(host[i]);
            rc = -1;
        }
    if (!rc) {
        em_call hc = {c->def, c->n, host, c->a, NULL};
        rc = em__infer_rule(&hc, dtype, ndim, shape);
        for (int i = 0; i < c->n; i++) em__unref(host[i]);
    }
    if (host && host != small) free(host);
    return rc;
}

em_tensor *em__run_op(em_op op, int n, em_tensor *const *in, const em_attrs *a) {
    const em_op_def *d = em__op_def(op);
    em_thread *th = em__thread();
    bool meta = false; /* shape-only tracing: some input has no value yet */
    for (int i = 0; i < n; i++) {
        if (!in[i]->data && in[i]->numel) {
            if (!th || !th->trace) {
                em__error("%s: input %d is a placeholder with no value: it must be fed (run a traced graph with "
                          "em_graph_run and a feed, or give it an example with em_placeholder_set)",
                          d->name, i);
                return NULL;
            }
            meta = true;
        }
    }
    em_call c = {d, n, in, a, NULL};
    em_dtype dtype;
    int ndim = 0;
    int64_t shape[EM_MAX_DIMS];
    int dev = em__scoped_device > 0 ? em__scoped_device : 0;
    if (meta ? em__infer_rule(&c, &dtype, &ndim, shape) : em__infer(&c, &dtype, &ndim, shape)) return NULL;
    /* An op with no value inputs (random) whose shape derives from an unknown
     * dimension of a shape-only trace has no real size yet. */
    if (th && th->trace && !meta && em__op_hooks.trace_symbolic(ndim, shape)) meta = true;

    em_tensor *out = d->view ? d->view(&c, ndim, shape) : EM_NOT_A_VIEW;
    if (out != EM_NOT_A_VIEW) {
        /* a view (or NULL on error) */
    } else if (meta) {
        if ((out = em__alloc_meta(dtype, ndim, shape))) out->device = (uint8_t)dev;
    } else {
        out = em__alloc_on(dev, dtype, ndim, shape);
        if (out && em__run_kernel(&c, out)) {
            em__unref(out);
            out = NULL;
        }
    }
    if (!out) return NULL;
    out->made_by = (uint16_t)(op + 1);
    if ((em__op_hooks.tape_record && em__op_hooks.tape_record(op, n, in, a, out)) ||
        (th && th->trace && em__op_hooks.trace_record(op, n, in, a, out))) {
        em__unref(out);
        return NULL;
    }
    return em__own(out);
}

int em__run_op_into(em_op op, int n, em_tensor *const *in, const em_attrs *a, em_tensor *out) {
    const em_op_def *d = em__op_def(op);
    em_call c = {d, n, in, a, NULL};
    char b1[160], b2[160];
    for (int i = 0; i < n; i++) {
        if (!in[i]) return em__null_input(d->name), -1;
        if (!in[i]->data && in[i]->numel) return em__op_error(&c, "input %d is a placeholder with no value", i);
        if (in[i]->device != out->device)
            return em__op_error(&c, "input %d and the output it adds into are on different devices", i);
    }
    em_dtype dtype;
    int ndim = 0;
    int64_t shape[EM_MAX_DIMS];
    if (em__infer(&c, &dtype, &ndim, shape)) return -1;
    if (dtype != out->dtype || ndim != out->ndim || memcmp(shape, out->shape, sizeof(int64_t) * (size_t)ndim) != 0 ||
        !out->data || !em__is_contiguous(out)) {
        em_tensor want = {.dtype = (uint8_t)dtype, .ndim = (uint8_t)ndim};
        memcpy(want.shape, shape, sizeof(int64_t) * (size_t)ndim);
        return em__op_error(&c, "cannot write its %s %s output into %s %s%s", em_dtype_name(dtype),
                            em__tshape(&want, b1, sizeof b1), em_dtype_name((em_dtype)out->dtype),
                            em__tshape(out, b2, sizeof b2), out->data && !em__is_contiguous(out) ? " (strided)" : "");
    }
    return em__run_kernel(&c, out);
}

/* Sums g over the axes along which `shape` was broadcast to g's shape. */
em_tensor *em__sum_to_shape(em_tensor *g, int ndim, const int64_t *shape) {
    if (!g) return NULL;
    if (g->ndim == ndim && memcmp(g->shape, shape, sizeof(int64_t) * (size_t)ndim) == 0) {
        em__retain(g);
        return em__own(g);
    }
    int axes[EM_MAX_DIMS], naxes = 0, lead = g->ndim - ndim;
    for (int d = 0; d < g->ndim; d++)
        if (d < lead || (shape[d - lead] == 1 && g->shape[d] != 1)) axes[naxes++] = d;
    em_tensor *s = naxes ? em_sum(g, naxes, axes, false) : g;
    em_shape target = {.ndim = ndim};
    memcpy(target.dims, shape, sizeof(int64_t) * (size_t)ndim);
    return em_reshape(s, target);
}
