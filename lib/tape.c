/* The gradient tape: recording and the backward pass.
 *
 * Every op run on a thread is appended to each of the thread's recording
 * tapes. em_gradients walks a tape backwards over the records that lie on a
 * path from the xs to y, calling each op's gradient rule. Rules are written
 * with public ops, so a tape that is open while another computes gradients
 * records that computation: nested tapes give higher-order derivatives. */
#include "tape.h"
#include "ptrmap.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>

typedef struct record {
    em_op op;
    int n;
    em_tensor *small[3]; /* the inputs when there are at most 3 */
    em_tensor **heap;    /* the inputs otherwise */
    em_tensor *out;
    em_attrs a;
} record;

/* Records move when the tape grows, so inputs are found, not pointed to. */
static em_tensor **inputs(record *r) { return r->n <= 3 ? r->small : r->heap; }

struct em_tape {
    record *recs;
    int64_t n, cap;
    bool persistent, recording, busy, used;
    bool closed; /* its thread called em_shutdown: no records, only the handle */
};

/* The thread's live tapes; recording ones get records. */
typedef struct {
    em_tape **items;
    int n, cap;
} tape_list;

static _Thread_local tape_list live;
static _Thread_local int paused;
/* Tapes closed by em_shutdown whose handles the user still holds, as graphs
 * and optimizers outlive it: em_tape_release frees them. */
static tape_list closed;
static pthread_mutex_t closed_lock = PTHREAD_MUTEX_INITIALIZER;

/* Removes tp from l; whether it was there. */
static bool list_remove(tape_list *l, em_tape *tp) {
    for (int k = 0; k < l->n; k++)
        if (l->items[k] == tp) {
            l->items[k] = l->items[--l->n];
            return true;
        }
    return false;
}

static int list_push(tape_list *l, em_tape *tp) {
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 8;
        em_tape **items = realloc(l->items, sizeof *items * (size_t)cap);
        if (!items) return -1;
        l->items = items;
        l->cap = cap;
    }
    l->items[l->n++] = tp;
    return 0;
}

void em__tapes_pause(bool pause) { paused += pause ? 1 : -1; }

static int tape_record(em_op op, int n, em_tensor *const *in, const em_attrs *a, em_tensor *out) {
    for (int k = 0; k < live.n && !paused; k++) {
        em_tape *tp = live.items[k];
        if (!tp->recording || tp->busy) continue;
        if (tp->n == tp->cap) {
            int64_t cap = tp->cap ? tp->cap * 2 : 256;
            record *r = realloc(tp->recs, (size_t)cap * sizeof *r);
            if (!r) goto oom;
            tp->recs = r;
            tp->cap = cap;
        }
        record *r = &tp->recs[tp->n];
        r->n = n;
        r->heap = n <= 3 ? NULL : malloc(sizeof(em_tensor *) * (size_t)n);
        if (n > 3 && !r->heap) goto oom;
        r->op = op;
        for (int i = 0; i < n; i++) {
            inputs(r)[i] = in[i];
            em__retain(in[i]);
        }
        r->out = out;
        em__retain(out);
        r->a = *a;
        tp->n++;
    }
    return 0;
oom:
    em__error("%s: out of memory recording on the gradient tape", em__op_def(op)->name);
    return -1;
}

static void tapes_shutdown(em_thread *t);

/* The dispatcher records through this; em_shutdown releases the thread's
 * tapes (lib/op.h, lib/internal.h). */
__attribute__((constructor)) static void install_hooks(void) {
    em__op_hooks.tape_record = tape_record;
    em__op_hooks.tapes_pause = em__tapes_pause;
    em__hooks.tapes_shutdown = tapes_shutdown;
}

static void clear_records(em_tape *tp) {
    for (int64_t i = 0; i < tp->n; i++) {
        record *r = &tp->recs[i];
        for (int k = 0; k < r->n; k++) em__unref(inputs(r)[k]);
        free(r->heap);
        em__unref(r->out);
    }
    free(tp->recs);
    tp->recs = NULL;
    tp->n = tp->cap = 0;
}

em_tape *em_tape_begin(bool persistent) {
    em_tape *tp = calloc(1, sizeof *tp);
    if (!tp || list_push(&live, tp)) {
        free(tp);
        em__error("tape_begin: out of memory");
        return NULL;
    }
    tp->persistent = persistent;
    tp->recording = true;
    return tp;
}

void em_tape_stop(em_tape *tp) {
    if (tp) tp->recording = false;
}

int em_tape_release(em_tape *tp) {
    if (!tp) return 0;
    if (!list_remove(&live, tp)) {
        pthread_mutex_lock(&closed_lock);
        bool was_closed = list_remove(&closed, tp);
        if (!closed.n) { /* the last one: nothing to hold */
            free(closed.items);
            closed = (tape_list){0};
        }
        pthread_mutex_unlock(&closed_lock);
        if (!was_closed) {
            em__error("tape_release: not a tape of this thread (released already, or begun on another thread)");
            return -1;
        }
    }
    clear_records(tp);
    free(tp);
    return 0;
}

/* The thread's tapes lose their records (the tensors they hold go with the
 * thread's) but stay valid handles: em_gradients on one fails, releasing
 * one frees it. One that finds no room in the list (out of memory) is left
 * allocated: a leak, not a dangling handle. */
static void tapes_shutdown(em_thread *t) {
    (void)t;
    pthread_mutex_lock(&closed_lock);
    while (live.n) {
        em_tape *tp = live.items[--live.n];
        clear_records(tp);
        tp->closed = true;
        tp->recording = false;
        (void)list_push(&closed, tp);
    }
    pthread_mutex_unlock(&closed_lock);
    free(live.items);
    live = (tape_list){0};
}

/* ---- the backward pass ----
 * Every tensor that depends on the xs gets a slot; the map finds it. */

typedef struct {
    em_tensor *grad; /* accumulated gradient, owned by the backward scope */
    bool blocked;    /* y depends on it through a value without gradient */
    bool alone;      /* no other slot, record or view holds grad: a rule may add into it (em_call's acc) */
} slot;

typedef struct {
    em_ptrmap index;
    slot *slots;
    int64_t n, cap;
    em_ptrmap held; /* every tensor a slot has held as its gradient */
} tmap;

static slot *tmap_get(tmap *m, const em_tensor *key) {
    int64_t i = em__ptrmap_get(&m->index, key);
    return i < 0 ? NULL : &m->slots[i];
}

static slot *tmap_put(tmap *m, const em_tensor *key) {
    slot *s = tmap_get(m, key);
    if (s) return s;
    if (m->n == m->cap) {
        int64_t cap = m->cap ? m->cap * 2 : 64;
        slot *bigger = realloc(m->slots, sizeof(slot) * (size_t)cap);
        if (!bigger) return NULL;
        m->slots = bigger;
        m->cap = cap;
    }
    if (em__ptrmap_put(&m->index, key, m->n)) return NULL;
    m->slots[m->n] = (slot){0};
    return &m->slots[m->n++];
}

static void tmap_free(tmap *m) {
    em__ptrmap_free(&m->index);
    em__ptrmap_free(&m->held);
    free(m->slots);
}

/* Gives slot s the gradient g; `alone` when no one else holds g. 0, or -1 when out of memory. */
static int set_grad(tmap *m, slot *s, em_tensor *g, bool alone) {
    s->grad = g;
    s->alone = alone;
    return em__ptrmap_put(&m->held, g, 1);
}

/* Whether gin[i], just given by the rule of rec, is held by no one else: not a view, no slot's gradient (the
 * rule's own incoming one included), not the record's input or output, and no other gin[j] nor a view of it.
 * Such a gradient may later be added to in place. */
static bool fresh_grad(const tmap *m, record *rec, em_tensor *const *gin, int i) {
    const em_tensor *g = gin[i];
    if (g->base || em__ptrmap_get(&m->held, g) >= 0 || g == rec->out) return false;
    for (int k = 0; k < rec->n; k++)
        if (inputs(rec)[k] == g || (k != i && gin[k] && (gin[k] == g || gin[k]->base == g))) return false;
    return true;
}

/* Whether a backward pass may add into its gradients in place: no other tape records it and no trace
 * follows it (both need each gradient as a value of its own). */
static bool may_accumulate_in_place(void) {
    if (paused == 0)
        for (int k = 0; k < live.n; k++)
            if (live.items[k]->recording && !live.items[k]->busy) return false;
    em_thread *th = em__thread();
    return !(th && th->trace);
}


static int backward(em_tape *tp, em_tensor *y, em_tensor *grad_y, int n, em_tensor *const *xs, em_tensor **grads) {
    char b1[160], b2[160];
    tmap m = {0};

    /* Which tensors depend on the xs: only records producing them matter. */
    for (int i = 0; i < n; i++)
        if (!tmap_put(&m, xs[i])) goto oom;
    for (int64_t r = 0; r < tp->n; r++) {
        record *rec = &tp->recs[r];
        if (em__op_def(rec->op)->flags & EM_OPF_CUT) continue;
        for (int i = 0; i < rec->n; i++)
            if (tmap_get(&m, inputs(rec)[i])) {
                if (!tmap_put(&m, rec->out)) goto oom;
                break;
            }
    }

    const bool in_place = may_accumulate_in_place();
    slot *sy = tmap_get(&m, y);
    if (sy) {
        em_tensor *g;
        {
            EM_ON_DEVICE(y->device);
            g = grad_y ? em__ref(grad_y) : em_fill_like(y, 1.0);
        }
        if (!g) goto fail;
        if (set_grad(&m, sy, g, false)) goto oom;
    }
    /* Paths that cross integer or bool values (argmax, comparisons, casts to
     * int) carry no gradient; they are followed as "blocked" so that an x that
     * y depends on only through them is reported instead of given zeros. */
    const char *blocker = NULL;
    for (int64_t r = tp->n - 1; r >= 0 && sy; r--) {
        record *rec = &tp->recs[r];
        slot *so = tmap_get(&m, rec->out);
        if (!so || (!so->grad && !so->blocked)) continue;
        const em_op_def *d = em__op_def(rec->op);
        if (d->flags & EM_OPF_CUT) continue;
        bool differentiable = so->grad && !(d->flags & EM_OPF_NONDIFF) && em__is_float((em_dtype)rec->out->dtype);
        bool need_small[4], *need = rec->n <= 4 ? need_small : malloc(sizeof(bool) * (size_t)rec->n);
        em_tensor *gin_small[4], **gin = rec->n <= 4 ? gin_small : calloc((size_t)rec->n, sizeof *gin);
        em_tensor *acc_small[4], **acc = rec->n <= 4 ? acc_small : calloc((size_t)rec->n, sizeof *acc);
        if (!need || !gin || !acc) {
            if (need != need_small) free(need);
            if (gin != gin_small) free(gin);
            if (acc != acc_small) free(acc);
            goto oom;
        }
        bool any = false;
        for (int i = 0; i < rec->n; i++) {
            em_tensor *x = inputs(rec)[i];
            slot *si = tmap_get(&m, x);
            bool is_float = em__is_float((em_dtype)x->dtype);
            need[i] = differentiable && si && is_float;
            any |= need[i];
            gin[i] = NULL;
            /* a gradient so far that only this slot holds, for an input the record takes once */
            acc[i] = in_place && need[i] && si->grad && si->alone ? si->grad : NULL;
            for (int k = 0; k < rec->n && acc[i]; k++)
                if (k != i && inputs(rec)[k] == x) acc[i] = NULL;
            if (si && !need[i]) {
                si->blocked = true;
                if (!blocker && is_float) blocker = d->name; /* where floats became ints */
            }
        }
        int rc = 0;
        if (any) { /* on the device the op ran on */
            em_call c = {d, rec->n, inputs(rec), &rec->a, acc};
            EM_ON_DEVICE(rec->out->device);
            rc = d->grad(&c, rec->out, so->grad, need, gin);
        }
        for (int i = 0; rc == 0 && i < rec->n; i++) {
            if (!need[i] || !gin[i]) continue;
            em_tensor *x = inputs(rec)[i];
            if (!em_shape_equal(em__shape_of(gin[i]), em__shape_of(x)) || gin[i]->dtype != x->dtype) {
                em__error("gradients: the gradient rule of '%s' gave %s %s for input %d of %s %s", d->name,
                          em_dtype_name((em_dtype)gin[i]->dtype), em__tshape(gin[i], b1, sizeof b1), i,
                          em_dtype_name((em_dtype)x->dtype), em__tshape(x, b2, sizeof b2));
                rc = -1;
                break;
            }
            slot *sx = tmap_get(&m, x);
            if (acc[i] && gin[i] == acc[i]) continue; /* the rule added into it in place */
            if (!sx->grad) {
                if (set_grad(&m, sx, gin[i], fresh_grad(&m, rec, gin, i))) rc = -2;
                continue;
            }
            em_tensor *sum;
            {
                EM_ON_DEVICE(x->device);
                sum = em_add(sx->grad, gin[i]);
            }
            if (!sum) rc = -1;
            else if (set_grad(&m, sx, sum, true)) rc = -2;
        }
        if (need != need_small) free(need);
        if (gin != gin_small) free(gin);
        if (acc != acc_small) free(acc);
        if (rc == -2) goto oom;
        if (rc) goto fail;
    }
    for (int i = 0; i < n; i++) {
        slot *s = tmap_get(&m, xs[i]);
        if (!s->grad && s->blocked) {
            em__error("gradients: y depends on xs[%d] only through '%s', whose output has no gradient "
                      "(integer or bool values, e.g. argmax or a comparison)",
                      i, blocker ? blocker : "an op without a gradient");
            goto fail;
        }
        grads[i] = s->grad ? s->grad : em_fill_like(xs[i], 0.0);
        if (!grads[i]) goto fail;
    }
    tmap_free(&m);
    return 0;
oom:
    em__error("gradients: out of memory");
fail:
    tmap_free(&m);
    return -1;
}

int em_gradients_with(em_tape *tp, em_tensor *y, em_tensor *grad_y, int n, em_tensor *const *xs, em_tensor **grads) {
    char b1[160], b2[160];
    for (int i = 0; i < n; i++) grads[i] = NULL;
    if (!tp) {
        em__error_null("gradients: tape is NULL");
        return -1;
    }
    if (!y) return em__null_input("gradients"), -1;
    if (em__released(y, "gradients", -1) || (grad_y && em__released(grad_y, "gradients", -1))) return -1;
    if (n < 0 || (n > 0 && (!xs || !grads))) {
        em__error("gradients: xs and grads must hold n = %d tensors", n);
        return -1;
    }
    if (tp->closed) {
        em__error("gradients: the tape was closed by em_shutdown (its records went with the thread's tensors): "
                  "begin a new tape");
        return -1;
    }
    if (tp->used) {
        em__error("gradients: this tape was not persistent and has already given gradients "
                  "(begin it with em_tape_begin(true) to ask more than once)");
        return -1;
    }
    if (tp->busy) {
        em__error("gradients: the tape is already computing gradients");
        return -1;
    }
    if (!em__is_float((em_dtype)y->dtype)) {
        em__error("gradients: y has dtype %s; only float32 and float64 outputs can be differentiated",
                  em_dtype_name((em_dtype)y->dtype));
        return -1;
    }
    if (grad_y && (!em_shape_equal(em__shape_of(grad_y), em__shape_of(y)) || grad_y->dtype != y->dtype)) {
        em__error("gradients: grad_y is %s %s but y is %s %s", em_dtype_name((em_dtype)grad_y->dtype),
                  em__tshape(grad_y, b1, sizeof b1), em_dtype_name((em_dtype)y->dtype), em__tshape(y, b2, sizeof b2));
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (!xs[i]) {
            em__error_null("gradients: xs[%d] is NULL", i);
            return -1;
        }
        if (!em__is_float((em_dtype)xs[i]->dtype)) {
            em__error("gradients: xs[%d] has dtype %s; gradients exist only for float32 and float64 tensors", i,
                      em_dtype_name((em_dtype)xs[i]->dtype));
            return -1;
        }
    }
    tp->busy = true; /* this tape does not record its own backward pass */
    /* The gradient rules run in the dtypes the forward pass chose, outside autocast (as PyTorch's backward). */
    em_thread *th = em__thread();
    const int autocast = th ? th->nautocast : 0;
    if (th) th->nautocast = 0;
    em_scope_begin();
    int rc = backward(tp, y, grad_y, n, xs, grads);
    if (th) th->nautocast = autocast;
    for (int i = 0; i < n; i++)
        if (rc == 0) em_escape(grads[i]);
    em_scope_end();
    if (rc)
        for (int i = 0; i < n; i++) grads[i] = NULL;
    tp->busy = false;
    if (!tp->persistent) {
        tp->used = true;
        tp->recording = false;
        clear_records(tp);
    }
    return rc;
}

int em_gradients(em_tape *tp, em_tensor *y, int n, em_tensor *const *xs, em_tensor **grads) {
    return em_gradients_with(tp, y, NULL, n, xs, grads);
}

em_tensor *em_stop_gradient(em_tensor *x) {
    return em__apply(EM_OP_STOP_GRADIENT, 1, &x, &(em_attrs){0});
}

/* ---- em_gradcheck ---- */

/* sum(fn(in) * w) in a scope of its own; NAN when fn fails. */
static double weighted_sum(em_gradcheck_fn fn, void *ctx, int n, em_tensor *const *in, em_tensor *w) {
    em_scope_begin();
    em_tensor *s = em_sum(em_mul(fn(n, in, ctx), w), EM_ALL_AXES, false);
    double v = s ? em_item(s) : NAN;
    em_scope_end();
    return v;
}

int em_gradcheck(em_gradcheck_fn fn, void *ctx, int n, em_tensor *const *inputs, const em_gradcheck_options *options,
                 em_gradcheck_report *report) {
    em_gradcheck_options o = options ? *options : (em_gradcheck_options){0};
    double step = o.step > 0 ? o.step : 1e-6, tol = o.tolerance > 0 ? o.tolerance : 1e-6;
    if (!fn || n < 1 || !inputs || !report) {
        em__error("gradcheck: needs fn, n >= 1 inputs and a report (n = %d)", n);
        return -1;
    }
    *report = (em_gradcheck_report){.input = -1, .element = -1, .passed = true};
    for (int i = 0; i < n; i++) {
        if (!inputs[i]) return em__null_input("gradcheck"), -1;
        if (inputs[i]->dtype != EM_F64) {
            em__error("gradcheck: input %d is %s: the check perturbs float64 inputs (cast it, or keep it inside fn)",
                      i, em_dtype_name((em_dtype)inputs[i]->dtype));
            return -1;
        }
    }
    em_scope_begin();
    int rc = 0;
    em_tensor *small[8], **in = n <= 8 ? small : malloc(sizeof *in * (size_t)n), *grads_small[8],
                         **grads = n <= 8 ? grads_small : malloc(sizeof *grads * (size_t)n);
    if (!in || !grads) rc = -1, em__error("gradcheck: out of memory");
    for (int i = 0; !rc && i < n; i++) /* host copies of our own, perturbed in place */
        if (!(in[i] = em_copy(em_to_device(inputs[i], "/cpu:0")))) rc = -1;
    em_tensor *y = rc ? NULL : fn(n, in, ctx);
    if (!rc && (!y || y->dtype != EM_F64)) {
        if (y) em__error("gradcheck: fn gave a %s output: it must be float64", em_dtype_name((em_dtype)y->dtype));
        else if (!em_last_error()) em__error("gradcheck: fn returned NULL");
        rc = -1;
    }
    em_tensor *w = NULL;
    if (!rc) { /* a fixed weighting in [0.5, 1.5), so that errors that cancel in a plain sum show */
        int64_t m = y->numel;
        double *v = malloc(sizeof *v * (size_t)(m ? m : 1));
        uint64_t s = 0x9E3779B97F4A7C15ULL;
        for (int64_t k = 0; v && k < m; k++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            v[k] = 0.5 + (double)(s >> 11) / 9007199254740992.0;
        }
        em_shape shape = {.ndim = y->ndim};
        memcpy(shape.dims, y->shape, sizeof(int64_t) * (size_t)y->ndim);
        w = v ? em_tensor_from(EM_F64, shape, v) : NULL;
        free(v);
        if (!w) rc = -1;
    }
    if (!rc) {
        em_tape *tape = em_tape_begin(false);
        em_tensor *loss = em_sum(em_mul(fn(n, in, ctx), w), EM_ALL_AXES, false);
        rc = tape && loss ? em_gradients(tape, loss, n, in, grads) : -1;
        em_tape_release(tape);
    }
    for (int i = 0; !rc && i < n; i++) {
        double *x = (double *)in[i]->data;
        const double *g = em_data(em_copy(em_to_device(grads[i], "/cpu:0")));
        int64_t m = in[i]->numel, count = o.samples > 0 && o.samples < m ? o.samples : m;
        for (int64_t s = 0; g && s < count && !rc; s++) {
            int64_t j = count == m ? s : s * m / count;
            double keep = x[j];
            x[j] = keep + step;
            double up = weighted_sum(fn, ctx, n, in, w);
            x[j] = keep - step;
            double down = weighted_sum(fn, ctx, n, in, w);
            x[j] = keep;
            if (isnan(up) || isnan(down)) {
                if (!em_last_error()) em__error("gradcheck: fn gave NaN at input %d element %lld", i, (long long)j);
                rc = -1;
                break;
            }
            double num = (up - down) / (2 * step), err = fabs(g[j] - num) / fmax(1, fabs(num));
            if (!(err <= report->worst) || report->input < 0)
                *report = (em_gradcheck_report){err, i, j, g[j], num, true};
        }
        if (!g) rc = -1;
    }
    report->passed = rc == 0 && report->worst <= tol;
    if (in && in != small) free(in);
    if (grads && grads != grads_small) free(grads);
    em_scope_end();
    return rc ? -1 : report->passed ? 0 : 1;
}
