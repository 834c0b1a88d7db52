/* The tracer, the frozen graph, its optimizations, memory plan and executor.
 *
 * Tracing: em__apply calls em__trace_record for each op run while a trace is
 * open, so a graph is the list of ops a step ran, in order (which is a
 * topological order). Tensors that existed before the trace become graph
 * inputs: variables (read live at run time), placeholders (fed) and constants
 * (captured). Placeholders without an example value are traced shape-only:
 * every unknown (-1) dimension stands for one symbolic size (TF's None as the
 * batch size), traced as a large prime, so that at run time every shape and
 * attribute derived from it can be found (as a multiple of that prime) and
 * re-derived for the fed size. Unknown dims of one run are fed one size.
 *
 * At em_trace_end: constant folding (nodes whose inputs are all constants
 * become constants) and common-subexpression elimination (same op, inputs
 * and attributes). Each run: only the nodes the fetches need run; a memory
 * plan (one arena, buffers reused by liveness, headers made once) is made per
 * distinct (fetches, fed unknown dimensions) and cached, so a repeated run
 * allocates nothing; chains of same-shape elementwise nodes run fused, block
 * by block, with their intermediates in a small per-chain scratch. */
#include "internal.h"
#include "ptrmap.h"

#include <inttypes.h>
#include <omp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>

/* ---- placeholders ---- */

struct em_placeholder {
    em_shape declared;             /* -1 for unknown dimensions */
    int64_t standin[EM_MAX_DIMS];  /* shape-only stand-in sizes of unknown dims */
    bool has_example;
    char name[];
};

/* The stand-in size of unknown dimensions in a shape-only trace: a prime no
 * real shape is likely to hold a multiple of. */
#define STANDIN 1000003

em_tensor *em_placeholder(em_dtype dtype, em_shape shape, const char *name) {
    if (shape.ndim < 0 || shape.ndim > EM_MAX_DIMS) {
        em__error("placeholder: rank %d is outside 0..%d", shape.ndim, EM_MAX_DIMS);
        return NULL;
    }
    if (!name) name = "placeholder";
    struct em_placeholder *ph = calloc(1, sizeof *ph + strlen(name) + 1);
    if (!ph) {
        em__error("placeholder: out of memory");
        return NULL;
    }
    ph->declared = shape;
    strcpy(ph->name, name);
    int64_t dims[EM_MAX_DIMS];
    for (int i = 0; i < shape.ndim; i++) {
        if (shape.dims[i] < -1) {
            char b[160];
            free(ph);
            em__error("placeholder '%s': dimension %d of %s must be >= 0, or -1 for unknown", name, i,
                      em_shape_str(shape, b, sizeof b));
            return NULL;
        }
        ph->standin[i] = shape.dims[i] == -1 ? STANDIN : 0;
        dims[i] = shape.dims[i] == -1 ? ph->standin[i] : shape.dims[i];
    }
    em_tensor *t = em__alloc_meta(dtype, shape.ndim, dims);
    if (!t) {
        free(ph);
        return NULL;
    }
    t->flags |= EM_T_PLACEHOLDER;
    t->ph = ph;
    return em__own(t);
}

/* Whether `s` fits the declared shape (unknown dims match anything). */
static bool fits(const struct em_placeholder *ph, const em_tensor *v) {
    if (v->ndim != ph->declared.ndim) return false;
    for (int i = 0; i < v->ndim; i++)
        if (ph->declared.dims[i] != -1 && ph->declared.dims[i] != v->shape[i]) return false;
    return true;
}

int em_placeholder_set(em_tensor *p, em_tensor *value) {
    char b1[160], b2[160];
    if (!p || !value) return em__null_input("placeholder_set"), -1;
    if (!(p->flags & EM_T_PLACEHOLDER)) {
        em__error("placeholder_set: the tensor is not a placeholder");
        return -1;
    }
    if (value->dtype != p->dtype || !fits(p->ph, value)) {
        em__error("placeholder_set: placeholder '%s' is %s %s but the example is %s %s", p->ph->name,
                  em_dtype_name((em_dtype)p->dtype), em_shape_str(p->ph->declared, b1, sizeof b1),
                  em_dtype_name((em_dtype)value->dtype), em__tshape(value, b2, sizeof b2));
        return -1;
    }
    em_tensor *copy = em__alloc((em_dtype)value->dtype, value->ndim, value->shape);
    if (!copy) return -1;
    em__copy_strided(copy, value);
    if (p->base) em__unref(p->base);
    p->base = copy;
    p->data = copy->data;
    p->numel = copy->numel;
    memcpy(p->shape, copy->shape, sizeof(int64_t) * (size_t)copy->ndim);
    memcpy(p->strides, copy->strides, sizeof(int64_t) * (size_t)copy->ndim);
    p->ph->has_example = true;
    return 0;
}

/* ---- the graph ---- */

typedef enum { V_CONST, V_VARIABLE, V_PLACEHOLDER, V_NODE } vkind;

typedef struct {
    vkind kind;
    em_tensor *traced; /* retained: the handle users fetch and feed by */
    int64_t node;      /* producer, for V_NODE */
} gval;

typedef struct {
    em_op op;
    int n;
    int64_t *in; /* value ids */
    int64_t out;
    em_attrs a;
    char *name;  /* "scope/op" */
    bool dead;   /* folded or merged away */
    uint8_t device;  /* where it was placed: its output lives there */
    uint8_t runs_on; /* whose thread runs it: its device, but a copy of a value computed in the graph is
                        pushed by the device that computed it (which is then idle, while the receiver may
                        still be busy) */
} gnode;

/* One memory plan: the headers every needed value has for a given set of
 * fetches and fed unknown dimensions. */
typedef struct plan {
    int64_t *fetch;  /* value ids */
    int nfetch;
    int64_t *dims;   /* fed sizes of each placeholder's unknown dims, in order */
    int ndims;
    int64_t *order;  /* needed nodes in run order */
    int64_t norder;
    em_attrs *attrs; /* per needed node: attributes for the fed dims */
    em_tensor **buf; /* per value: its header in this plan (NULL: unused) */
    int64_t *in_at;  /* per position: index of its first argument in args */
    em_tensor **args;      /* the headers each kernel reads */
    em_tensor **copy_from; /* args[j] is a planned contiguous copy of copy_from[j] */
    int64_t nargs;
    int64_t *needs;  /* placeholder values the run reads, with a node that reads each */
    int64_t *needs_node;
    int nneeds;
    int64_t *fuse_next;  /* per position in order: end of the fused chain starting here, or 0 */
    bool *viewed;        /* per position: a view made at plan time; nothing to run */
    /* Units (a node, or a fused chain) by level: a unit reads only values of
     * lower levels, so the units of one level may run at once. */
    int64_t *units;      /* unit head positions, by level, then trace order */
    int64_t *level_at;   /* level l holds units[level_at[l] .. level_at[l + 1]) */
    int64_t nlevels;
    bool *level_parallel;
    /* Units on several devices: each device's thread runs its units in order
     * and waits only for the units of other devices that it depends on. */
    int ndevs;           /* devices the units are on (1: levels run as above) */
    int devs[EM_MAX_DEVICES];
    int64_t *dep_at;     /* unit u (index into units) waits for deps[dep_at[u] .. dep_at[u + 1]) */
    int64_t *deps;
    atomic_bool *done;   /* per unit, this run */
    /* A plan wholly on one GPU is captured as a CUDA graph on its second run
     * (the first fills the allocator's caches) and replayed from then on. Its
     * copies of host inputs (feeds) run before the replay. Random nodes (new
     * stream positions each run), value checks and in-place updates (host
     * work) keep a plan kernel by kernel. */
    int cuda_state;      /* 0: not captured yet, 1: captured, -1: runs kernel by kernel */
    int64_t runs;
    em_gpu_graph *cuda;
    bool *precopy;       /* per unit: a copy of a host input, run before the replay */
    em_tensor *arena;
    int64_t arena_bytes, unplanned_bytes;
    struct plan *next;
} plan;

struct em_graph {
    gnode *nodes;
    int64_t nn, capn;
    gval *vals;
    int64_t nv, capv;
    int64_t *alias; /* per value: the value it was merged into (itself if none) */
    em_ptrmap index; /* traced tensor -> value id */
    int64_t *phs;    /* placeholder value ids */
    int nph;
    plan *plans;
    em_graph_stats stats;
    bool debug;
};

static void debug(const em_graph *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void debug(const em_graph *g, const char *fmt, ...) {
    if (!g->debug) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ember graph: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void em_graph_set_debug(em_graph *g, bool on) {
    if (g) g->debug = on;
}

static void *grow(void *p, int64_t *cap, int64_t need, size_t size) {
    if (need <= *cap) return p;
    int64_t c = *cap ? *cap * 2 : 64;
    while (c < need) c *= 2;
    void *q = realloc(p, (size_t)c * size);
    if (q) *cap = c;
    return q;
}

static int64_t add_value(em_graph *g, vkind kind, em_tensor *t, int64_t node) {
    gval *v = grow(g->vals, &g->capv, g->nv + 1, sizeof *v);
    if (!v) return -1;
    g->vals = v;
    if (em__ptrmap_put(&g->index, t, g->nv)) return -1;
    em__retain(t);
    g->vals[g->nv] = (gval){kind, t, node};
    if (kind == V_PLACEHOLDER) {
        int64_t *p = realloc(g->phs, sizeof *p * (size_t)(g->nph + 1));
        if (!p) return -1;
        g->phs = p;
        g->phs[g->nph++] = g->nv;
    }
    return g->nv++;
}

static int64_t value_of(em_graph *g, em_tensor *t) {
    int64_t v = em__ptrmap_get(&g->index, t);
    if (v >= 0) return v;
    vkind kind = t->flags & EM_T_VARIABLE ? V_VARIABLE : t->flags & EM_T_PLACEHOLDER ? V_PLACEHOLDER : V_CONST;
    return add_value(g, kind, t, -1);
}

int em_trace_begin(void) {
    em_thread *th = em__thread();
    if (!th) return -1;
    if (th->trace) {
        em__error("trace_begin: this thread is already tracing (em_trace_end first)");
        return -1;
    }
    th->trace = calloc(1, sizeof(em_graph));
    if (!th->trace) {
        em__error("trace_begin: out of memory");
        return -1;
    }
    return 0;
}

int em__trace_record(em_op op, int n, em_tensor *const *in, const em_attrs *a, em_tensor *out) {
    em_graph *g = em__thread()->trace;
    const em_op_def *d = em__op_def(op);
    gnode *nodes = grow(g->nodes, &g->capn, g->nn + 1, sizeof *nodes);
    if (!nodes) goto oom;
    g->nodes = nodes;
    gnode *node = &g->nodes[g->nn];
    *node = (gnode){.op = op, .n = n, .a = *a, .device = out->device, .runs_on = out->device};
    node->in = malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
    const char *scope = em_name_scope();
    node->name = malloc(strlen(scope) + strlen(d->name) + 24);
    if (!node->in || !node->name) {
        free(node->in);
        free(node->name);
        goto oom;
    }
    sprintf(node->name, "%s%s%s_%" PRId64, scope, *scope ? "/" : "", d->name, g->nn);
    for (int i = 0; i < n; i++)
        if ((node->in[i] = value_of(g, in[i])) < 0) goto oom_node;
    if ((d->flags & EM_OPF_COPIES) && g->vals[node->in[0]].kind == V_NODE) node->runs_on = in[0]->device;
    if ((node->out = add_value(g, V_NODE, out, g->nn)) < 0) goto oom_node;
    g->nn++;
    g->stats.traced++;
    return 0;
oom_node:
    free(node->in);
    free(node->name);
oom:
    em__error("%s: out of memory while tracing", d->name);
    return -1;
}

bool em__trace_symbolic(int ndim, const int64_t *shape) {
    for (int d = 0; d < ndim; d++)
        if (shape[d] && shape[d] % STANDIN == 0) return true;
    return false;
}

void em__trace_host_read(const em_tensor *t) {
    em_thread *th = em__thread();
    if (!th || !th->trace) return;
    int64_t v = em__ptrmap_get(&th->trace->index, t);
    if (v >= 0 && th->trace->vals[v].kind == V_NODE) th->trace->stats.host_reads++;
}

/* ---- optimizations at em_trace_end ---- */

static bool pure(const gnode *n) { return !(em__op_def(n->op)->flags & (EM_OPF_RANDOM | EM_OPF_INPLACE)); }

static int64_t resolve(const em_graph *g, int64_t v) {
    while (g->alias[v] != v) v = g->alias[v];
    return v;
}

static void fold_constants(em_graph *g) {
    for (int64_t i = 0; i < g->nn; i++) {
        gnode *n = &g->nodes[i];
        bool constant = pure(n) && g->vals[n->out].traced->data;
        for (int k = 0; k < n->n && constant; k++) constant = g->vals[resolve(g, n->in[k])].kind == V_CONST;
        if (!constant) continue;
        n->dead = true; /* its traced value was computed from constants: keep it */
        g->vals[n->out].kind = V_CONST;
        g->stats.folded++;
    }
}

static uint64_t node_hash(const em_graph *g, const gnode *n) {
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)n->op;
    for (int k = 0; k < n->n; k++) h = (h ^ (uint64_t)resolve(g, n->in[k])) * 1099511628211ULL;
    const unsigned char *a = (const unsigned char *)&n->a;
    for (size_t k = 0; k < sizeof n->a; k++) h = (h ^ a[k]) * 1099511628211ULL;
    return h;
}

static bool same_node(const em_graph *g, const gnode *x, const gnode *y) {
    if (x->op != y->op || x->n != y->n || memcmp(&x->a, &y->a, sizeof x->a)) return false;
    for (int k = 0; k < x->n; k++)
        if (resolve(g, x->in[k]) != resolve(g, y->in[k])) return false;
    return true;
}

static int eliminate_common(em_graph *g) {
    int64_t cap = 64;
    while (cap < 2 * g->nn) cap *= 2;
    int64_t *table = malloc(sizeof(int64_t) * (size_t)cap);
    if (!table) return -1;
    for (int64_t i = 0; i < cap; i++) table[i] = -1;
    for (int64_t i = 0; i < g->nn; i++) {
        gnode *n = &g->nodes[i];
        if (n->dead || !pure(n)) continue;
        int64_t s = (int64_t)(node_hash(g, n) & (uint64_t)(cap - 1));
        while (table[s] >= 0 && !same_node(g, &g->nodes[table[s]], n)) s = (s + 1) & (cap - 1);
        if (table[s] < 0) {
            table[s] = i;
            continue;
        }
        n->dead = true;
        g->alias[n->out] = g->nodes[table[s]].out;
        g->stats.cse_merged++;
    }
    free(table);
    return 0;
}

em_graph *em_trace_end(void) {
    em_thread *th = em__thread();
    if (!th || !th->trace) {
        em__error("trace_end: no trace is open on this thread (em_trace_begin first)");
        return NULL;
    }
    em_graph *g = th->trace;
    th->trace = NULL;
    g->alias = malloc(sizeof(int64_t) * (size_t)(g->nv ? g->nv : 1));
    if (!g->alias) {
        em_graph_release(g);
        em__error("trace_end: out of memory");
        return NULL;
    }
    for (int64_t v = 0; v < g->nv; v++) g->alias[v] = v;
    fold_constants(g);
    if (eliminate_common(g)) {
        em_graph_release(g);
        em__error("trace_end: out of memory");
        return NULL;
    }
    for (int64_t i = 0; i < g->nn; i++) g->stats.nodes += !g->nodes[i].dead;
    return g;
}

static void plan_free(em_graph *g, plan *p) {
    for (int64_t v = 0; p->buf && v < g->nv; v++)
        if (p->buf[v]) em__unref(p->buf[v]);
    for (int64_t j = 0; p->copy_from && j < p->nargs; j++)
        if (p->copy_from[j]) em__unref(p->args[j]);
    if (p->arena) em__unref(p->arena);
    free(p->buf);
    free(p->needs);
    free(p->needs_node);
    free(p->in_at);
    free(p->args);
    free(p->copy_from);
    free(p->fetch);
    free(p->dims);
    free(p->order);
    free(p->attrs);
    free(p->fuse_next);
    free(p->viewed);
    free(p->units);
    free(p->level_at);
    free(p->level_parallel);
    free(p->precopy);
    if (p->cuda) em__gpu->graph_free(p->cuda);
    free(p->dep_at);
    free(p->deps);
    free(p->done);
    free(p);
}

void em_graph_release(em_graph *g) {
    if (!g) return;
    while (g->plans) {
        plan *p = g->plans;
        g->plans = p->next;
        plan_free(g, p);
    }
    for (int64_t i = 0; i < g->nn; i++) {
        free(g->nodes[i].in);
        free(g->nodes[i].name);
    }
    for (int64_t v = 0; v < g->nv; v++) em__unref(g->vals[v].traced);
    em__ptrmap_free(&g->index);
    free(g->nodes);
    free(g->vals);
    free(g->alias);
    free(g->phs);
    free(g);
}

void em__trace_shutdown(em_thread *t) {
    if (t->trace) em_graph_release(t->trace);
    t->trace = NULL;
}

em_graph_stats em_graph_get_stats(const em_graph *g) { return g ? g->stats : (em_graph_stats){0}; }

/* ---- memory plans ---- */

/* In a plan for batch size `batch` (-1: none fed), a multiple of the stand-in
 * size becomes that multiple of the batch size. */
static int64_t substitute(int64_t v, int64_t batch) {
    return batch >= 0 && v != 0 && v % STANDIN == 0 ? v / STANDIN * batch : v;
}

#define FUSE_BLOCK 1024 /* elements per block of a fused chain: intermediates stay in L1 */
#define FUSE_MAX 8      /* nodes per fused chain */
#define PARALLEL_MIN 16384 /* output elements that make a unit worth a thread of its own */

typedef struct {
    int64_t value;
    int64_t offset, size, last; /* bytes; last position that reads it */
} slab;

/* First-fit placement of buffers in an arena, reusing a buffer's bytes once
 * its last reader has run. */
static int64_t place(slab *live, int nlive, int64_t size) {
    int64_t at = 0;
    for (;;) {
        bool moved = false;
        for (int k = 0; k < nlive; k++)
            if (at < live[k].offset + live[k].size && live[k].offset < at + size) {
                at = (live[k].offset + live[k].size + EM_ALIGN - 1) / EM_ALIGN * EM_ALIGN;
                moved = true;
            }
        if (!moved) return at;
    }
}

typedef struct {
    em_graph *g;
    plan *p;
    int64_t *pos_of;  /* node -> position in order, -1 if not needed */
    int64_t *owner;   /* value -> value whose buffer it uses (views) */
    int64_t *last;    /* value -> last position reading it (INT64_MAX: fetched) */
    int64_t *readers; /* value -> number of reading positions */
    bool *fed;        /* value -> fed placeholder */
} builder;

static void mark_needed(builder *b, int64_t v, int64_t *stack) {
    em_graph *g = b->g;
    int64_t top = 0;
    stack[top++] = resolve(g, v);
    while (top) {
        int64_t x = stack[--top];
        if (g->vals[x].kind != V_NODE) continue;
        int64_t ni = g->vals[x].node;
        if (b->pos_of[ni] >= 0) continue;
        b->pos_of[ni] = 0; /* marked; real positions are assigned in trace order */
        for (int k = 0; k < g->nodes[ni].n; k++) stack[top++] = resolve(g, g->nodes[ni].in[k]);
    }
}

/* Work per output element of the unit at position at, roughly: products and
 * convolutions do a row of multiply-adds per element, the rest a few flops. */
static int64_t unit_cost(const em_graph *g, const plan *p, int64_t at) {
    const gnode *n = &g->nodes[p->order[at]];
    const em_op_def *d = em__op_def(n->op);
    if (!d->cost) return 1;
    em_call c = {d, n->n, p->args + p->in_at[at], &n->a};
    return d->cost(&c);
}

/* For a plan on several devices: what each unit waits for. Units run in
 * units[] order on their device, which is a topological order, so a unit
 * needs from each other device only the latest unit it reads from; an
 * in-place update also waits for every earlier unit, and every later unit
 * waits for it. */
static int unit_deps(const em_graph *g, plan *p, const int64_t *head, const int64_t *pos_of) {
    int64_t nunits = p->level_at[p->nlevels], *unit_of = malloc(sizeof(int64_t) * (size_t)(p->norder ? p->norder : 1));
    p->dep_at = malloc(sizeof(int64_t) * (size_t)(nunits + 1));
    p->deps = malloc(sizeof(int64_t) * (size_t)(nunits ? nunits : 1) * (size_t)p->ndevs);
    p->done = malloc(sizeof(atomic_bool) * (size_t)(nunits ? nunits : 1));
    if (!unit_of || !p->dep_at || !p->deps || !p->done) {
        free(unit_of);
        return -1;
    }
    for (int64_t u = 0; u < nunits; u++) unit_of[p->units[u]] = u;
    int64_t ndeps = 0, barrier = -1;
    for (int64_t u = 0; u < nunits; u++) {
        int64_t at = p->units[u], end = p->fuse_next[at] ? p->fuse_next[at] : at + 1;
        int dev = g->nodes[p->order[at]].runs_on;
        int64_t need[EM_MAX_DEVICES]; /* per entry of devs: the latest unit needed there, -1 none */
        for (int k = 0; k < p->ndevs; k++) need[k] = -1;
        bool inplace = false;
        for (int64_t q = at; q < end; q++) {
            const gnode *n = &g->nodes[p->order[q]];
            inplace |= (em__op_def(n->op)->flags & EM_OPF_INPLACE) != 0;
            for (int i = 0; i < n->n; i++) {
                const gval *gv = &g->vals[resolve(g, n->in[i])];
                if (gv->kind != V_NODE) continue;
                int64_t from = unit_of[head[pos_of[gv->node]]];
                for (int k = 0; k < p->ndevs; k++)
                    if (p->devs[k] == g->nodes[p->order[p->units[from]]].runs_on && from > need[k]) need[k] = from;
            }
        }
        for (int64_t v = u - 1; inplace && v >= 0; v--) /* the latest earlier unit of each device */
            for (int k = 0; k < p->ndevs; k++)
                if (p->devs[k] == g->nodes[p->order[p->units[v]]].runs_on && v > need[k]) need[k] = v;
        for (int k = 0; k < p->ndevs; k++)
            if (barrier >= 0 && p->devs[k] == g->nodes[p->order[p->units[barrier]]].runs_on && barrier > need[k])
                need[k] = barrier;
        p->dep_at[u] = ndeps;
        for (int k = 0; k < p->ndevs; k++)
            if (need[k] >= 0 && p->devs[k] != dev) p->deps[ndeps++] = need[k];
        if (inplace) barrier = u;
    }
    p->dep_at[nunits] = ndeps;
    free(unit_of);
    return 0;
}

/* Whether p can run as a captured CUDA graph (see plan.cuda_state), and
 * which of its units are copies of host inputs, run before the replay. */
static void decide_capture(const em_graph *g, plan *p) {
    int64_t nunits = p->level_at[p->nlevels];
    p->cuda_state = -1;
    if (p->ndevs != 1 || !em__is_gpu(p->devs[0]) || !(p->precopy = calloc((size_t)(nunits ? nunits : 1), sizeof(bool))))
        return;
    for (int64_t u = 0; u < nunits; u++) {
        const gnode *n = &g->nodes[p->order[p->units[u]]];
        unsigned flags = em__op_def(n->op)->flags;
        if ((flags & EM_OPF_COPIES) && g->vals[resolve(g, n->in[0])].kind != V_NODE) p->precopy[u] = true;
        else if (flags & (EM_OPF_RANDOM | EM_OPF_CHECKS_VALUES | EM_OPF_INPLACE | EM_OPF_ANY_DEVICE)) return;
    }
    p->cuda_state = 0;
}

static plan *plan_make(em_graph *g, int nfetch, const int64_t *fetch, const em_feed *feeds, int nfeeds,
                       const int64_t *dims, int ndims) {
    plan *p = calloc(1, sizeof *p);
    builder b = {.g = g, .p = p};
    if (!p) goto oom;
    p->nfetch = nfetch;
    p->ndims = ndims;
    p->fetch = malloc(sizeof(int64_t) * (size_t)(nfetch ? nfetch : 1));
    p->dims = malloc(sizeof(int64_t) * (size_t)(ndims ? ndims : 1));
    p->buf = calloc((size_t)g->nv, sizeof(em_tensor *));
    b.pos_of = malloc(sizeof(int64_t) * (size_t)(g->nn ? g->nn : 1));
    b.owner = malloc(sizeof(int64_t) * (size_t)g->nv);
    b.last = malloc(sizeof(int64_t) * (size_t)g->nv);
    b.readers = calloc((size_t)g->nv, sizeof(int64_t));
    b.fed = calloc((size_t)g->nv, sizeof(bool));
    /* Each node is expanded once, so the stack never holds more than all inputs. */
    int64_t stack_cap = 1;
    for (int64_t i = 0; i < g->nn; i++) stack_cap += g->nodes[i].n;
    int64_t *stack = malloc(sizeof(int64_t) * (size_t)stack_cap);
    if (!p->fetch || !p->dims || !p->buf || !b.pos_of || !b.owner || !b.last || !b.readers || !b.fed || !stack) {
        free(stack);
        goto oom;
    }
    memcpy(p->fetch, fetch, sizeof(int64_t) * (size_t)nfetch);
    memcpy(p->dims, dims, sizeof(int64_t) * (size_t)ndims);
    for (int64_t i = 0; i < g->nn; i++) b.pos_of[i] = -1;
    for (int64_t v = 0; v < g->nv; v++) {
        b.owner[v] = v;
        b.last[v] = -1;
    }
    for (int k = 0; k < nfetch; k++) mark_needed(&b, fetch[k], stack);
    free(stack);

    /* Run order, substitutions for unknown dims, and the placeholders' headers. */
    for (int64_t i = 0; i < g->nn; i++)
        if (b.pos_of[i] == 0) p->norder++;
    p->order = malloc(sizeof(int64_t) * (size_t)(p->norder ? p->norder : 1));
    p->attrs = malloc(sizeof(em_attrs) * (size_t)(p->norder ? p->norder : 1));
    p->fuse_next = calloc((size_t)(p->norder ? p->norder : 1), sizeof(int64_t));
    p->viewed = calloc((size_t)(p->norder ? p->norder : 1), sizeof(bool));
    p->in_at = malloc(sizeof(int64_t) * (size_t)(p->norder + 1));
    if (!p->order || !p->attrs || !p->fuse_next || !p->viewed || !p->in_at) goto oom;
    for (int64_t i = 0, at = 0; i < g->nn; i++)
        if (b.pos_of[i] == 0) {
            p->in_at[at] = p->nargs;
            p->nargs += g->nodes[i].n;
            b.pos_of[i] = at;
            p->order[at++] = i;
        }
    p->in_at[p->norder] = p->nargs;
    p->args = calloc((size_t)(p->nargs ? p->nargs : 1), sizeof(em_tensor *));
    p->copy_from = calloc((size_t)(p->nargs ? p->nargs : 1), sizeof(em_tensor *));
    p->needs = malloc(sizeof(int64_t) * (size_t)(g->nph ? g->nph : 1));
    p->needs_node = malloc(sizeof(int64_t) * (size_t)(g->nph ? g->nph : 1));
    if (!p->args || !p->copy_from || !p->needs || !p->needs_node) goto oom;

    int64_t batch = ndims ? dims[0] : -1;
    for (int k = 0; k < nfeeds; k++) {
        int64_t v = em__ptrmap_get(&g->index, feeds[k].placeholder);
        b.fed[v] = true;
        p->buf[v] = em__alloc_meta((em_dtype)feeds[k].value->dtype, feeds[k].value->ndim, feeds[k].value->shape);
        if (!p->buf[v]) goto fail;
    }

    /* Pass 1: shapes (and strides of views) of every needed value, on headers without data. */
    for (int64_t at = 0; at < p->norder; at++) {
        gnode *n = &g->nodes[p->order[at]];
        const em_op_def *def = em__op_def(n->op);
        em_attrs *a = &p->attrs[at];
        *a = n->a;
        for (int k = 0; k < 2 * EM_MAX_DIMS; k++) a->i[k] = substitute(a->i[k], batch);
        em_tensor **in = p->args + p->in_at[at];
        for (int k = 0; k < n->n; k++) {
            int64_t v = resolve(g, n->in[k]);
            gval *gv = &g->vals[v];
            if (gv->kind == V_PLACEHOLDER && !b.fed[v]) {
                em__error("graph_run: placeholder '%s' must be fed: node '%s' needs it", gv->traced->ph->name,
                          n->name);
                goto fail;
            }
            in[k] = gv->kind == V_CONST || gv->kind == V_VARIABLE ? gv->traced : p->buf[v];
            if (gv->kind == V_PLACEHOLDER && !b.readers[v]) {
                p->needs[p->nneeds] = v;
                p->needs_node[p->nneeds++] = p->order[at];
            }
            b.readers[v]++;
        }
        em_call c = {def, n->n, in, a};
        em_dtype dtype;
        int ndim;
        int64_t shape[EM_MAX_DIMS];
        if (def->infer(&c, &dtype, &ndim, shape)) {
            char msg[1100];
            snprintf(msg, sizeof msg, "%s", em_last_error());
            em_clear_error();
            em__error("graph_run: node '%s' cannot run with the fed shapes: %s", n->name, msg);
            goto fail;
        }
        int64_t out = n->out;
        p->buf[out] = def->view ? def->view(&c, ndim, shape) : EM_NOT_A_VIEW;
        p->viewed[at] = p->buf[out] != EM_NOT_A_VIEW;
        if (p->viewed[at]) b.owner[out] = b.owner[resolve(g, n->in[0])];
        else p->buf[out] = em__alloc_meta(dtype, ndim, shape);
        if (!p->buf[out]) goto fail;
    }
    for (int k = 0; k < nfetch; k++) b.last[b.owner[fetch[k]]] = INT64_MAX;

    /* Fusion: chains of consecutive pointwise nodes over one shape, each
     * consuming the previous one's output, which nothing else reads. */
    for (int64_t at = 0; at < p->norder;) {
        int64_t end = at;
        int64_t numel = p->buf[g->nodes[p->order[at]].out]->numel;
        while (end < p->norder && end - at < FUSE_MAX) {
            gnode *n = &g->nodes[p->order[end]];
            const em_op_def *def = em__op_def(n->op);
            bool ok = (def->flags & EM_OPF_FUSABLE) && p->buf[n->out]->numel == numel && numel > 0 &&
                      !em__is_gpu(n->device) && /* chains run CPU kernels block by block */
                      n->device == g->nodes[p->order[at]].runs_on;
            bool chained = end == at;
            for (int k = 0; k < n->n && ok; k++) {
                em_tensor *t = p->args[p->in_at[end] + k];
                ok = t->numel == 1 || (t->numel == numel && em__is_contiguous(t));
                if (end > at && resolve(g, n->in[k]) == g->nodes[p->order[end - 1]].out) chained = true;
            }
            if (!ok || !chained) break;
            if (end > at) {
                int64_t prev = g->nodes[p->order[end - 1]].out;
                if (b.readers[prev] != 1 || b.last[prev] == INT64_MAX) break;
            }
            end++;
        }
        if (end - at >= 2) {
            p->fuse_next[at] = end;
            g->stats.fused += end - at;
        }
        at = end > at ? end : at + 1;
    }
    /* Intermediates of a chain live in per-block scratch, not in the arena. */
    bool *in_chain = calloc((size_t)g->nv, sizeof(bool));
    if (!in_chain) goto oom;
    for (int64_t at = 0; at < p->norder; at++)
        for (int64_t k = at; k + 1 < p->fuse_next[at]; k++) in_chain[g->nodes[p->order[k]].out] = true;

    /* Levels: a unit (a node, or a fused chain from its head) sits one level
     * above the units it reads from. An in-place update is a barrier: it comes
     * after every unit traced before it and before every unit traced after. */
    int64_t *level = malloc(sizeof(int64_t) * (size_t)(p->norder ? p->norder : 1));
    int64_t *head = malloc(sizeof(int64_t) * (size_t)(p->norder ? p->norder : 1));
    if (!level || !head) {
        free(level);
        free(head);
        free(in_chain);
        goto oom;
    }
    int64_t top = 0, barrier = 0;
    for (int64_t at = 0; at < p->norder;) {
        int64_t end = p->fuse_next[at] ? p->fuse_next[at] : at + 1, l = barrier + 1;
        bool inplace = false;
        for (int64_t k = at; k < end; k++) {
            gnode *n = &g->nodes[p->order[k]];
            inplace |= (em__op_def(n->op)->flags & EM_OPF_INPLACE) != 0;
            for (int i = 0; i < n->n; i++) {
                const gval *gv = &g->vals[resolve(g, n->in[i])];
                if (gv->kind != V_NODE) continue;
                int64_t pos = b.pos_of[gv->node];
                if (pos >= at) continue; /* inside this chain */
                if (level[pos] + 1 > l) l = level[pos] + 1;
            }
        }
        if (inplace) l = barrier = top + 1;
        for (int64_t k = at; k < end; k++) {
            head[k] = at;
            level[k] = l;
        }
        if (l > top) top = l;
        at = end;
    }
    p->nlevels = top + 1;
    p->level_at = calloc((size_t)p->nlevels + 1, sizeof(int64_t));
    p->units = malloc(sizeof(int64_t) * (size_t)(p->norder ? p->norder : 1));
    p->level_parallel = calloc((size_t)p->nlevels, sizeof(bool));
    if (!p->level_at || !p->units || !p->level_parallel) {
        free(level);
        free(head);
        free(in_chain);
        goto oom;
    }
    for (int64_t at = 0; at < p->norder; at++)
        if (head[at] == at) p->level_at[level[at] + 1]++;
    for (int64_t l = 0; l < p->nlevels; l++) p->level_at[l + 1] += p->level_at[l];
    {
        int64_t *fill = malloc(sizeof(int64_t) * (size_t)p->nlevels);
        if (!fill) {
            free(level);
            free(head);
            free(in_chain);
            goto oom;
        }
        memcpy(fill, p->level_at, sizeof(int64_t) * (size_t)p->nlevels);
        for (int64_t at = 0; at < p->norder; at++)
            if (head[at] == at) p->units[fill[level[at]]++] = at;
        free(fill);
    }
    /* A level runs its units at once (each on one thread) when two or more
     * do real work, no one of them outweighs the rest (else it is better off
     * with every thread to itself), and none checks values (its error would
     * be set on another thread). Work is judged by output size. */
    for (int64_t l = 0; l < p->nlevels; l++) {
        int busy = 0;
        int64_t total = 0, largest = 0;
        bool checks = false;
        for (int64_t u = p->level_at[l]; u < p->level_at[l + 1]; u++) {
            int64_t at = p->units[u];
            const em_op_def *def = em__op_def(g->nodes[p->order[at]].op);
            int64_t numel = p->buf[g->nodes[p->order[at]].out]->numel;
            checks |= (def->flags & EM_OPF_CHECKS_VALUES) != 0;
            if (p->viewed[at] || numel < PARALLEL_MIN) continue;
            int64_t work = numel * unit_cost(g, p, at);
            busy++;
            total += work;
            if (work > largest) largest = work;
        }
        p->level_parallel[l] = busy >= 2 && 2 * largest <= total && !checks;
    }
    p->ndevs = 0;
    for (int64_t at = 0; at < p->norder; at++) {
        int dev = g->nodes[p->order[at]].runs_on, k = 0;
        while (k < p->ndevs && p->devs[k] != dev) k++;
        if (k == p->ndevs) p->devs[p->ndevs++] = dev;
    }
    if (p->ndevs > 1 && unit_deps(g, p, head, b.pos_of)) {
        free(level);
        free(head);
        free(in_chain);
        goto oom;
    }

    /* Liveness by level: a buffer is free for the levels after its last reader's. */
    for (int64_t at = 0; at < p->norder; at++) {
        gnode *n = &g->nodes[p->order[at]];
        for (int k = 0; k < n->n; k++) {
            int64_t o = b.owner[resolve(g, n->in[k])];
            if (b.last[o] != INT64_MAX && b.last[o] < level[at]) b.last[o] = level[at];
        }
    }
    slab *live = malloc(sizeof(slab) * (size_t)(g->nv + 1));
    int64_t *offset = malloc(sizeof(int64_t) * (size_t)g->nv);
    int nlive = 0;
    if (!live || !offset) {
        free(live);
        free(offset);
        free(level);
        free(head);
        free(in_chain);
        goto oom;
    }
    p->arena_bytes = 0;
    for (int64_t l = 0; l < p->nlevels; l++) {
        for (int k = 0; k < nlive;)
            if (live[k].last < l) live[k] = live[--nlive];
            else k++;
        /* Born at level l: the fed placeholders at 0, the units' outputs above. */
        int64_t nborn = l ? p->level_at[l + 1] - p->level_at[l] : g->nv;
        for (int64_t i = 0; i < nborn; i++) {
            int64_t v = i;
            if (l) {
                int64_t at = p->units[p->level_at[l] + i];
                int64_t last = p->fuse_next[at] ? p->fuse_next[at] - 1 : at;
                if (p->viewed[last]) continue;
                v = g->nodes[p->order[last]].out;
            } else if (!b.fed[v]) {
                continue;
            }
            if (!p->buf[v] || (l && em__is_gpu(g->nodes[g->vals[v].node].device))) continue; /* GPU buffers: on the GPU */
            int64_t size = (int64_t)em_dtype_size((em_dtype)p->buf[v]->dtype) * p->buf[v]->numel;
            size = (size + EM_ALIGN - 1) / EM_ALIGN * EM_ALIGN;
            offset[v] = place(live, nlive, size);
            /* Devices run out of step: a buffer of a multi-device plan is never reused. */
            live[nlive++] = (slab){v, offset[v], size, p->ndevs > 1 ? INT64_MAX : b.last[v] > l ? b.last[v] : l};
            if (offset[v] + size > p->arena_bytes) p->arena_bytes = offset[v] + size;
            p->unplanned_bytes += size;
        }
    }
    free(live);
    free(level);
    free(head);

    /* Pass 3: the arena and the real headers, in order (views after their bases). */
    int64_t bytes = p->arena_bytes ? p->arena_bytes : 1;
    p->arena = em__alloc(EM_U8, 1, &bytes);
    if (!p->arena) {
        free(offset);
        free(in_chain);
        goto fail;
    }
    for (int64_t v = 0; v < g->nv; v++)
        if (b.fed[v]) {
            em_tensor *m = p->buf[v];
            p->buf[v] = em__header(p->arena, (em_dtype)m->dtype, m->ndim, m->shape, (char *)p->arena->data + offset[v]);
            em__unref(m);
            if (!p->buf[v]) goto fail_arena;
            p->buf[v]->device = g->vals[v].traced->device;
        }
    for (int64_t at = 0; at < p->norder; at++) {
        gnode *n = &g->nodes[p->order[at]];
        const em_op_def *def = em__op_def(n->op);
        em_tensor **in = p->args + p->in_at[at];
        for (int k = 0; k < n->n; k++) {
            int64_t v = resolve(g, n->in[k]);
            gval *gv = &g->vals[v];
            in[k] = gv->kind == V_CONST || gv->kind == V_VARIABLE ? gv->traced : p->buf[v];
        }
        em_tensor *m = p->buf[n->out];
        if (p->viewed[at]) {
            em_call c = {def, n->n, in, &p->attrs[at]};
            p->buf[n->out] = def->view(&c, m->ndim, m->shape);
        } else if (in_chain[n->out]) {
            continue; /* keeps its shape-only header: blocks get scratch */
        } else if (em__is_gpu(n->device)) { /* its own GPU buffer, made once */
            p->buf[n->out] = em__alloc_on(n->device, (em_dtype)m->dtype, m->ndim, m->shape);
        } else {
            p->buf[n->out] = em__header(p->arena, (em_dtype)m->dtype, m->ndim, m->shape,
                                        (char *)p->arena->data + offset[n->out]);
        }
        em__unref(m);
        if (!p->buf[n->out]) goto fail_arena;
        p->buf[n->out]->device = n->device;
        /* Strided inputs of kernels that need contiguous ones read a planned copy. */
        if (!p->viewed[at] && !(def->flags & EM_OPF_STRIDED))
            for (int k = 0; k < n->n; k++)
                if (in[k]->data && !em__is_contiguous(in[k])) {
                    em_tensor *copy = em__alloc_on(in[k]->device, (em_dtype)in[k]->dtype, in[k]->ndim, in[k]->shape);
                    if (!copy) goto fail_arena;
                    p->copy_from[p->in_at[at] + k] = in[k];
                    in[k] = copy;
                }
    }
    free(offset);
    free(in_chain);
    free(b.pos_of);
    free(b.owner);
    free(b.last);
    free(b.readers);
    free(b.fed);
    decide_capture(g, p);
    g->stats.plans++;
    return p;
fail_arena:
    free(offset);
    free(in_chain);
    goto fail;
oom:
    em__error("graph_run: out of memory making the memory plan");
fail:
    if (p) {
        free(b.pos_of);
        free(b.owner);
        free(b.last);
        free(b.readers);
        free(b.fed);
        plan_free(g, p);
    }
    return NULL;
}

/* ---- running ---- */

typedef struct {
    const em_graph *g;
    const plan *p;
    int64_t from, to; /* the chain's positions */
} chain;

/* Runs a fused chain over elements [begin, end): every node on one block at a
 * time, intermediates in a stack buffer. */
static void run_chain_range(void *ctx, int64_t begin, int64_t end) {
    const chain *ch = ctx;
    const em_graph *g = ch->g;
    const plan *p = ch->p;
    _Alignas(EM_ALIGN) unsigned char scratch[FUSE_MAX][FUSE_BLOCK * 8];
    for (int64_t b0 = begin; b0 < end; b0 += FUSE_BLOCK) {
        int64_t len = end - b0 < FUSE_BLOCK ? end - b0 : FUSE_BLOCK;
        em_tensor blocks[FUSE_MAX + 1][4], outs[FUSE_MAX];
        for (int64_t at = ch->from; at < ch->to; at++) {
            const gnode *n = &g->nodes[p->order[at]];
            int64_t slot = at - ch->from;
            em_tensor *const *in = p->args + p->in_at[at];
            em_tensor *args[4];
            for (int k = 0; k < n->n; k++) {
                int64_t v = resolve(g, n->in[k]);
                if (at > ch->from && v == g->nodes[p->order[at - 1]].out) {
                    args[k] = &outs[slot - 1];
                } else if (in[k]->numel == 1) {
                    em_tensor *t = &blocks[slot][k]; /* a [1] that broadcasts over the block */
                    *t = *in[k];
                    t->ndim = 1;
                    t->shape[0] = 1;
                    t->strides[0] = 1;
                    args[k] = t;
                } else {
                    em_tensor *t = &blocks[slot][k];
                    *t = *in[k];
                    t->ndim = 1;
                    t->shape[0] = len;
                    t->strides[0] = 1;
                    t->numel = len;
                    t->data = (char *)in[k]->data + b0 * (int64_t)em_dtype_size((em_dtype)in[k]->dtype);
                    args[k] = t;
                }
            }
            em_tensor *full = p->buf[n->out];
            em_tensor *o = &outs[slot];
            *o = *full;
            o->ndim = 1;
            o->shape[0] = len;
            o->strides[0] = 1;
            o->numel = len;
            o->data = at + 1 == ch->to ? (char *)full->data + b0 * (int64_t)em_dtype_size((em_dtype)full->dtype)
                                       : (void *)scratch[slot];
            em_call c = {em__op_def(n->op), n->n, args, &p->attrs[at]};
            c.def->cpu(&c, o);
        }
    }
}

static int run_node(em_graph *g, plan *p, int64_t at) {
    gnode *n = &g->nodes[p->order[at]];
    const em_op_def *def = em__op_def(n->op);
    if (p->viewed[at]) return 0; /* its header was made once, at plan time */
    em_attrs *a = &p->attrs[at];
    em_tensor *out = p->buf[n->out];
    em_tensor **in = p->args + p->in_at[at];
    for (int k = 0; k < n->n; k++)
        if (p->copy_from[p->in_at[at] + k]) em__copy_strided(in[k], p->copy_from[p->in_at[at] + k]);
    em_call c = {def, n->n, in, a};
    if (def->flags & EM_OPF_CHECKS_VALUES) { /* indices and labels are checked on the data fed */
        em_dtype dtype;
        int ndim;
        int64_t shape[EM_MAX_DIMS];
        if (em__infer(&c, &dtype, &ndim, shape)) {
            char msg[1100];
            snprintf(msg, sizeof msg, "%s", em_last_error());
            em_clear_error();
            em__error("graph_run: node '%s': %s", n->name, msg);
            return -1;
        }
    }
    return em__kernel(&c, out); /* fails only out of (scratch) memory */
}

/* Runs the unit at position at: a fused chain, or one node. */
static int run_unit(em_graph *g, plan *p, int64_t at) {
    if (!p->fuse_next[at]) return run_node(g, p, at);
    chain ch = {g, p, at, p->fuse_next[at]};
    em__parallel_for(p->buf[g->nodes[p->order[at]].out]->numel, 16 * FUSE_BLOCK, run_chain_range, &ch);
    return 0;
}

/* Runs units[from, to) at once, each with one thread, on `members`
 * threads. A failing unit's error is reported on the calling thread. */
static int run_team(em_graph *g, plan *p, int64_t from, int64_t to, int members) {
    char failure[1100] = "";
    atomic_bool failed = false;
#pragma omp parallel for schedule(dynamic, 1) num_threads(members)
    for (int64_t u = from; u < to; u++) {
        int saved = em__run_threads;
        em__run_threads = 1;
        if (run_unit(g, p, p->units[u]) && !atomic_exchange(&failed, true)) {
            snprintf(failure, sizeof failure, "%s", em_last_error());
            em_clear_error();
        }
        em__run_threads = saved;
    }
    if (!atomic_load(&failed)) return 0;
    em__error("%s", failure);
    return -1;
}

/* Unit completion across device threads: a waiter spins briefly, then
 * sleeps until a unit finishes (spinning longer, or yielding, would give its
 * core away to whatever else runs on the machine). */
typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t finished;
    atomic_bool failed;
    char failure[1100];
} unit_sync;

static void unit_done(unit_sync *s, atomic_bool *flag, bool ok) {
    if (!ok && !atomic_exchange(&s->failed, true)) {
        snprintf(s->failure, sizeof s->failure, "%s", em_last_error());
        em_clear_error();
    }
    atomic_store_explicit(flag, true, memory_order_release);
    pthread_mutex_lock(&s->lock);
    pthread_cond_broadcast(&s->finished);
    pthread_mutex_unlock(&s->lock);
}

static void unit_wait(unit_sync *s, atomic_bool *flag) {
    for (int spins = 0; spins < 4000; spins++)
        if (atomic_load_explicit(flag, memory_order_acquire) || atomic_load(&s->failed)) return;
    pthread_mutex_lock(&s->lock);
    while (!atomic_load_explicit(flag, memory_order_acquire) && !atomic_load(&s->failed))
        pthread_cond_wait(&s->finished, &s->lock);
    pthread_mutex_unlock(&s->lock);
}

/* A plan on several devices: one thread per device runs that device's units
 * in order, on the device's threads, each unit once the units of other
 * devices it reads from are done. With fewer threads than devices (a thread
 * limit), one thread runs every unit in order. */
static int run_devices(em_graph *g, plan *p) {
    int64_t nunits = p->level_at[p->nlevels];
    unit_sync sync = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, ""};
    bool nest = false;
    for (int k = 0; k < p->ndevs; k++) nest |= em__device_threads(p->devs[k]) > 1;
    if (nest && omp_get_max_active_levels() < 2) omp_set_max_active_levels(2);
    for (int64_t u = 0; u < nunits; u++) atomic_init(&p->done[u], false);
#pragma omp parallel num_threads(p->ndevs)
    {
        int saved = em__run_threads, me = omp_get_thread_num();
        bool alone = omp_get_num_threads() < p->ndevs;
        if (!alone || me == 0) {
            int dev = p->devs[me];
            em__run_threads = em__device_threads(dev);
            for (int64_t u = 0; u < nunits && !atomic_load(&sync.failed); u++) {
                int64_t at = p->units[u];
                if (!alone && g->nodes[p->order[at]].runs_on != dev) continue;
                for (int64_t d = p->dep_at[u]; !alone && d < p->dep_at[u + 1]; d++) unit_wait(&sync, &p->done[p->deps[d]]);
                if (atomic_load(&sync.failed)) break;
                if (alone) em__run_threads = em__device_threads(g->nodes[p->order[at]].runs_on);
                unit_done(&sync, &p->done[u], run_unit(g, p, at) == 0);
            }
        }
        em__run_threads = saved;
    }
    pthread_mutex_destroy(&sync.lock);
    pthread_cond_destroy(&sync.finished);
    if (!atomic_load(&sync.failed)) return 0;
    em__error("%s", sync.failure);
    return -1;
}

/* Units of a plan wholly on one GPU: the copies of host inputs (precopy)
 * or the others, kernel by kernel. */
static int run_units(em_graph *g, plan *p, bool precopy) {
    for (int64_t u = 0; u < p->level_at[p->nlevels]; u++)
        if (p->precopy[u] == precopy && run_unit(g, p, p->units[u])) return -1;
    return 0;
}

/* A plan wholly on one GPU: feeds copied in, then the rest replayed as one
 * CUDA graph, captured on the second run. A failed capture (an operation
 * CUDA cannot capture) leaves the plan running kernel by kernel. */
static int run_captured(em_graph *g, plan *p) {
    int ordinal = p->devs[0] - EM_GPU_BASE;
    if (run_units(g, p, true)) return -1;
    if (!p->cuda && p->runs++ >= 1) {
        if (em__gpu->capture_begin(ordinal) == 0) {
            int rc = run_units(g, p, false);
            p->cuda = em__gpu->capture_end(ordinal);
            if (rc && !p->cuda) return -1;
        }
        if (!p->cuda) {
            em_clear_error(); /* nothing ran: the run goes on kernel by kernel */
            p->cuda_state = -1;
            return run_units(g, p, false);
        }
        p->cuda_state = 1;
    }
    if (!p->cuda) return run_units(g, p, false);
    g->stats.cuda_graph_runs++;
    return em__gpu->graph_launch(p->cuda, ordinal);
}

static bool same_key(const plan *p, int nfetch, const int64_t *fetch, int ndims, const int64_t *dims) {
    return p->nfetch == nfetch && p->ndims == ndims && !memcmp(p->fetch, fetch, sizeof(int64_t) * (size_t)nfetch) &&
           !memcmp(p->dims, dims, sizeof(int64_t) * (size_t)ndims);
}

#define MAX_PLANS 8

int em_graph_run(em_graph *g, int nfeeds, const em_feed *feeds, int nfetches, em_tensor *const *fetches,
                 em_tensor **results) {
    char b1[160], b2[160];
    if (!g) {
        em__error("graph_run: graph is NULL");
        return -1;
    }
    if (nfetches < 1 || !fetches || !results || nfeeds < 0 || (nfeeds && !feeds)) {
        em__error("graph_run: give at least one fetch, a results array, and nfeeds feeds");
        return -1;
    }
    int64_t fetch[64], dims[64];
    int ndims = 0;
    if (nfetches > 64 || nfeeds > 64) {
        em__error("graph_run: at most 64 fetches and 64 feeds per run");
        return -1;
    }
    for (int k = 0; k < nfetches; k++) {
        int64_t v = fetches[k] ? em__ptrmap_get(&g->index, fetches[k]) : -1;
        if (v < 0) {
            em__error("graph_run: fetch %d is %s", k, fetches[k] ? "not a tensor of this graph" : "NULL");
            return -1;
        }
        fetch[k] = resolve(g, v);
    }
    for (int k = 0; k < nfeeds; k++) {
        em_tensor *ph = feeds[k].placeholder, *val = feeds[k].value;
        if (!ph || !(ph->flags & EM_T_PLACEHOLDER)) {
            em__error("graph_run: feed %d is not a placeholder", k);
            return -1;
        }
        if (!val || !val->data) {
            em__error("graph_run: the value fed to placeholder '%s' is %s", ph->ph->name,
                      val ? "a tensor without data" : "NULL");
            return -1;
        }
        if (em__ptrmap_get(&g->index, ph) < 0) {
            em__error("graph_run: placeholder '%s' is not used by this graph", ph->ph->name);
            return -1;
        }
        for (int j = 0; j < k; j++)
            if (feeds[j].placeholder == ph) { /* the plan holds one buffer per placeholder */
                em__error("graph_run: placeholder '%s' is fed twice (feeds %d and %d)", ph->ph->name, j, k);
                return -1;
            }
        const struct em_placeholder *info = ph->ph;
        bool ok = val->dtype == ph->dtype && fits(info, val);
        if (ok && info->has_example) ok = val->numel == ph->numel && !memcmp(val->shape, ph->shape, sizeof(int64_t) * val->ndim);
        if (!ok) {
            em__error("graph_run: placeholder '%s' is %s %s%s but was fed %s %s", info->name,
                      em_dtype_name((em_dtype)ph->dtype), em_shape_str(info->declared, b1, sizeof b1),
                      info->has_example ? " (traced with an example of that exact shape: trace it shape-only to "
                                          "feed other sizes)"
                                        : "",
                      em_dtype_name((em_dtype)val->dtype), em__tshape(val, b2, sizeof b2));
            return -1;
        }
        for (int i = 0; i < val->ndim; i++) {
            if (!info->standin[i] || info->has_example) continue;
            if (ndims && val->shape[i] != dims[0]) {
                em__error("graph_run: the unknown dimensions of one run must be fed one size (the batch size), "
                          "but placeholder '%s' dimension %d is %" PRId64 " where another is %" PRId64,
                          info->name, i, val->shape[i], dims[0]);
                return -1;
            }
            dims[0] = val->shape[i];
            ndims = 1;
        }
    }

    for (int k = 0; k < nfetches; k++) { /* a fetched placeholder needs its feed too */
        bool fed = g->vals[fetch[k]].kind != V_PLACEHOLDER;
        for (int f = 0; f < nfeeds && !fed; f++) fed = em__ptrmap_get(&g->index, feeds[f].placeholder) == fetch[k];
        if (!fed) {
            em__error("graph_run: placeholder '%s' must be fed: fetch %d is that placeholder",
                      g->vals[fetch[k]].traced->ph->name, k);
            return -1;
        }
    }
    plan *p = g->plans, *prev = NULL;
    int count = 0;
    for (; p && !same_key(p, nfetches, fetch, ndims, dims); prev = p, p = p->next) count++;
    if (p) {
        if (prev) { /* most recently used first */
            prev->next = p->next;
            p->next = g->plans;
            g->plans = p;
        }
    } else {
        debug(g, "%s memory plan for %d fetches and %d fed unknown dimensions", g->plans ? "re-planning: new" : "first",
              nfetches, ndims);
        p = plan_make(g, nfetches, fetch, feeds, nfeeds, dims, ndims);
        if (!p) return -1;
        p->next = g->plans;
        g->plans = p;
        if (count + 1 > MAX_PLANS) { /* drop the least recently used */
            plan *q = g->plans;
            while (q->next && q->next->next) q = q->next;
            plan_free(g, q->next);
            q->next = NULL;
        }
        debug(g, "plan: %" PRId64 " nodes, arena %" PRId64 " bytes (%" PRId64 " without reuse)", p->norder,
              p->arena_bytes, p->unplanned_bytes);
    }
    for (int k = 0; k < p->nneeds; k++) { /* a cached plan may have been made with more feeds */
        bool fed = false;
        for (int f = 0; f < nfeeds && !fed; f++) fed = em__ptrmap_get(&g->index, feeds[f].placeholder) == p->needs[k];
        if (!fed) {
            em__error("graph_run: placeholder '%s' must be fed: node '%s' needs it",
                      g->vals[p->needs[k]].traced->ph->name, g->nodes[p->needs_node[k]].name);
            return -1;
        }
    }
    g->stats.arena_bytes = p->arena_bytes;
    g->stats.unplanned_bytes = p->unplanned_bytes;
    g->stats.last_run_nodes = p->norder;

    for (int k = 0; k < nfeeds; k++) {
        int64_t v = em__ptrmap_get(&g->index, feeds[k].placeholder);
        if (p->buf[v]) em__copy_strided(p->buf[v], feeds[k].value);
    }
    /* Random nodes take their stream positions in trace order, as eager calls would. */
    em_thread *th = em__thread();
    for (int64_t at = 0; at < p->norder; at++)
        if (em__op_def(g->nodes[p->order[at]].op)->flags & EM_OPF_RANDOM) {
            p->attrs[at].seed = th->seed;
            p->attrs[at].counter = em__rng_reserve((uint64_t)p->buf[g->nodes[p->order[at]].out]->numel);
        }
    g->stats.parallel_levels = 0;
    int rc = 0;
    if (p->ndevs > 1) {
        g->stats.parallel_levels = p->nlevels;
        rc = run_devices(g, p);
    } else if (p->cuda_state >= 0) {
        rc = run_captured(g, p);
        if (rc || p->cuda_state >= 0) goto ran;
    }
    int saved_threads = em__run_threads;
    if (em_device_count() > 1 && p->ndevs == 1) em__run_threads = em__device_threads(p->devs[0]);
    for (int64_t l = 1; p->ndevs == 1 && l < p->nlevels && !rc; l++) {
        int64_t from = p->level_at[l], to = p->level_at[l + 1];
        if (p->level_parallel[l] && em__threads() > 1) {
            /* Independent units at once, each with one thread. */
            g->stats.parallel_levels++;
            rc = run_team(g, p, from, to, em__threads());
        } else {
            for (int64_t u = from; u < to && !rc; u++) rc = run_unit(g, p, p->units[u]);
        }
    }
    em__run_threads = saved_threads;
ran:
    if (rc) return -1;
    for (int k = 0; k < nfetches; k++) {
        gval *v = &g->vals[fetch[k]];
        results[k] = v->kind == V_CONST || v->kind == V_VARIABLE ? v->traced : p->buf[fetch[k]];
    }
    return 0;
}

/* ---- Graphviz ---- */

static void dot_name(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '\n') {
            fputs("\\n", f);
            continue;
        }
        if (*s == '"' || *s == '\\') fputc('\\', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static const char *value_label(const em_graph *g, int64_t v, char *buf, size_t size) {
    const gval *gv = &g->vals[v];
    if (gv->kind == V_NODE) return g->nodes[gv->node].name;
    if (gv->kind == V_VARIABLE) return em_variable_name(gv->traced);
    if (gv->kind == V_PLACEHOLDER) return gv->traced->ph->name;
    snprintf(buf, size, "const_%" PRId64, v);
    return buf;
}

int em__graph_visit(const em_graph *g, int (*fn)(void *ctx, const em_graph_node *node), void *ctx) {
    /* Inputs first, in value order, then the live op nodes in trace order. */
    char names[8][64];
    for (int64_t v = 0; v < g->nv; v++) {
        const gval *gv = &g->vals[v];
        if (gv->kind == V_NODE || g->alias[v] != v) continue;
        bool used = false;
        for (int64_t i = 0; i < g->nn && !used; i++)
            for (int k = 0; k < g->nodes[i].n && !used; k++)
                used = !g->nodes[i].dead && resolve(g, g->nodes[i].in[k]) == v;
        if (!used) continue;
        const em_tensor *t = gv->traced;
        int64_t dims[EM_MAX_DIMS];
        for (int d = 0; d < t->ndim; d++)
            dims[d] = gv->kind == V_PLACEHOLDER ? t->ph->declared.dims[d] : t->shape[d];
        em_graph_node node = {value_label(g, v, names[0], sizeof names[0]),
                              gv->kind == V_PLACEHOLDER ? "Placeholder" : gv->kind == V_VARIABLE ? "Variable" : "Const",
                              0, NULL, (em_dtype)t->dtype, t->ndim, dims, em_tensor_device(t)};
        int rc = fn(ctx, &node);
        if (rc) return rc;
    }
    for (int64_t i = 0; i < g->nn; i++) {
        const gnode *n = &g->nodes[i];
        if (n->dead) continue;
        const char *small[8], **inputs = n->n <= 8 ? small : malloc(sizeof(char *) * (size_t)n->n);
        char(*buf)[64] = n->n <= 8 ? names : malloc(64 * (size_t)n->n);
        if (!inputs || !buf) {
            if (inputs != small) free(inputs);
            if (buf != names) free(buf);
            em__error("graph: out of memory");
            return -1;
        }
        for (int k = 0; k < n->n; k++) inputs[k] = value_label(g, resolve(g, n->in[k]), buf[k], 64);
        const em_tensor *out = g->vals[n->out].traced;
        int64_t dims[EM_MAX_DIMS];
        for (int d = 0; d < out->ndim; d++) dims[d] = out->shape[d] % STANDIN == 0 && out->shape[d] ? -1 : out->shape[d];
        em_graph_node node = {n->name,   em__op_def(n->op)->name, n->n, inputs, (em_dtype)out->dtype,
                              out->ndim, dims,    em_device_name(n->device)};
        int rc = fn(ctx, &node);
        if (inputs != small) free(inputs);
        if (buf != names) free(buf);
        if (rc) return rc;
    }
    return 0;
}

int em_graph_write_dot(const em_graph *g, const char *path) {
    if (!g || !path) {
        em__error("graph_write_dot: graph and path must not be NULL");
        return -1;
    }
    FILE *f = fopen(path, "w");
    if (!f) {
        em__error("graph_write_dot: cannot open %s for writing", path);
        return -1;
    }
    fprintf(f, "digraph ember {\n  rankdir=TB;\n  node [shape=box, fontname=\"Helvetica\"];\n");
    /* Nodes grouped by name scope: one cluster per distinct scope path prefix,
     * nested by opening and closing clusters as the sorted paths change. */
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)(g->nn ? g->nn : 1));
    int64_t live = 0;
    for (int64_t i = 0; i < g->nn; i++)
        if (!g->nodes[i].dead) idx[live++] = i;
    for (int64_t a = 1; a < live; a++) /* insertion sort by name: scopes become contiguous */
        for (int64_t b = a; b > 0 && strcmp(g->nodes[idx[b - 1]].name, g->nodes[idx[b]].name) > 0; b--) {
            int64_t t = idx[b];
            idx[b] = idx[b - 1];
            idx[b - 1] = t;
        }
    char open_path[1024] = "";
    int depth = 0, cluster = 0;
    bool devices = false;
    for (int64_t a = 0; a < live; a++) devices |= g->nodes[idx[a]].device != 0;
    for (int64_t a = 0; a < live; a++) {
        const char *name = g->nodes[idx[a]].name;
        const char *slash = strrchr(name, '/');
        size_t scope_len = slash ? (size_t)(slash - name) : 0;
        /* close clusters not prefixing this node's scope */
        while (depth > 0) {
            size_t ol = strlen(open_path);
            if (ol <= scope_len && !strncmp(open_path, name, ol) && (ol == scope_len || name[ol] == '/')) break;
            fprintf(f, "%*s}\n", 2 * depth, "");
            char *cut = strrchr(open_path, '/');
            if (cut) *cut = '\0';
            else open_path[0] = '\0';
            depth--;
        }
        /* open clusters for the remaining components */
        while (strlen(open_path) < scope_len) {
            size_t ol = strlen(open_path);
            const char *start = name + ol + (ol ? 1 : 0);
            const char *stop = memchr(start, '/', scope_len - (size_t)(start - name));
            size_t clen = stop ? (size_t)(stop - start) : scope_len - (size_t)(start - name);
            if (ol + 1 + clen >= sizeof open_path) break;
            if (ol) strcat(open_path, "/");
            strncat(open_path, start, clen);
            depth++;
            fprintf(f, "%*ssubgraph cluster_%d {\n%*slabel=", 2 * depth, "", cluster++, 2 * depth + 2, "");
            char comp[256];
            snprintf(comp, sizeof comp, "%.*s", (int)clen, start);
            dot_name(f, comp);
            fprintf(f, ";\n");
        }
        fprintf(f, "%*s", 2 * depth + 2, "");
        dot_name(f, name);
        fprintf(f, " [label=");
        const gnode *n = &g->nodes[idx[a]];
        if (devices) { /* the device under the op, and a colour per device */
            char label[160];
            snprintf(label, sizeof label, "%s\n%s", em__op_def(n->op)->name, em_device_name(n->device));
            dot_name(f, label);
            fprintf(f, ", style=filled, fillcolor=\"/pastel19/%d\"", n->device % 9 + 1);
        } else {
            dot_name(f, em__op_def(n->op)->name);
        }
        fprintf(f, "];\n");
    }
    while (depth-- > 0) fprintf(f, "%*s}\n", 2 * depth + 2, "");
    for (int64_t a = 0; a < live; a++) {
        const gnode *n = &g->nodes[idx[a]];
        for (int k = 0; k < n->n; k++) {
            char buf[64];
            int64_t v = resolve(g, n->in[k]);
            fprintf(f, "  ");
            dot_name(f, value_label(g, v, buf, sizeof buf));
            fprintf(f, " -> ");
            dot_name(f, n->name);
            fprintf(f, ";\n");
        }
    }
    for (int64_t v = 0; v < g->nv; v++) {
        const gval *gv = &g->vals[v];
        if (gv->kind == V_VARIABLE || gv->kind == V_PLACEHOLDER) {
            char buf[64];
            fprintf(f, "  ");
            dot_name(f, value_label(g, v, buf, sizeof buf));
            fprintf(f, gv->kind == V_VARIABLE ? " [shape=ellipse];\n" : " [shape=invhouse];\n");
        }
    }
    fprintf(f, "}\n");
    free(idx);
    if (fclose(f)) {
        em__error("graph_write_dot: error writing %s", path);
        return -1;
    }
    return 0;
}
