/* Memory plans. A plan is made once per distinct (fetches, fed unknown
 * dimensions) and cached, so a repeated run allocates nothing: one arena
 * whose bytes are reused by liveness, every value's header made once, chains
 * of pointwise nodes fused, units grouped in levels that may run at once, and
 * what each unit waits for when the plan spans devices.
 *
 * plan_make runs one function per pass over one builder, which holds the
 * plan being made and every scratch array of the passes, and is freed in one
 * place (builder_end). A pass returns 0, or -1 with an error set. */
#include "graph.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#define PARALLEL_MIN 16384 /* output elements that make a unit worth a thread of its own */
#define MAX_PLANS 8        /* plans cached per graph */

typedef struct {
    int64_t value;
    int64_t offset, size, last; /* bytes; last position that reads it */
} slab;

typedef struct {
    em_graph *g;
    plan *p; /* the plan being made: handed out when every pass succeeds, else freed */
    /* the run it is made for */
    int nfetch;
    const int64_t *fetch;
    const em_feed *feeds;
    int nfeeds;
    const int64_t *dims;
    int ndims;
    /* per node */
    int64_t *pos_of;   /* position in order, -1 if not needed */
    int64_t *stack;    /* mark_needed's work list */
    /* per value */
    int64_t *owner;    /* the value whose buffer it uses (views) */
    int64_t *last;     /* the last position (then level) reading it; INT64_MAX: fetched */
    int64_t *readers;  /* number of reading positions */
    bool *fed;         /* a fed placeholder */
    bool *in_chain;    /* an intermediate of a fused chain: lives in per-block scratch */
    int64_t *offset;   /* its bytes' offset in the arena */
    slab *live;        /* buffers live at the level being placed */
    /* per position */
    int64_t *level;    /* the level of its unit */
    int64_t *head;     /* the position of its unit's head */
    int64_t *unit_of;  /* at a unit's head: the unit's index in units */
    /* per level */
    int64_t *fill;     /* the next free slot of units */
} builder;

static int oom(void) {
    em__error("graph_run: out of memory making the memory plan");
    return -1;
}

/* n (at least one) elements of `size` bytes. */
static void *alloc_n(int64_t n, size_t size) { return malloc((size_t)(n ? n : 1) * size); }
static void *alloc_zeroed(int64_t n, size_t size) { return calloc((size_t)(n ? n : 1), size); }

void em__graph_plan_free(em_graph *g, plan *p) {
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

/* The plan, and the per-value state every pass reads. */
static int plan_begin(builder *b) {
    em_graph *g = b->g;
    plan *p = b->p = calloc(1, sizeof *p);
    if (!p) return oom();
    p->nfetch = b->nfetch;
    p->ndims = b->ndims;
    p->fetch = alloc_n(b->nfetch, sizeof(int64_t));
    p->dims = alloc_n(b->ndims, sizeof(int64_t));
    p->buf = calloc((size_t)g->nv, sizeof(em_tensor *));
    b->pos_of = alloc_n(g->nn, sizeof(int64_t));
    b->owner = alloc_n(g->nv, sizeof(int64_t));
    b->last = alloc_n(g->nv, sizeof(int64_t));
    b->readers = alloc_zeroed(g->nv, sizeof(int64_t));
    b->fed = alloc_zeroed(g->nv, sizeof(bool));
    if (!p->fetch || !p->dims || !p->buf || !b->pos_of || !b->owner || !b->last || !b->readers || !b->fed)
        return oom();
    memcpy(p->fetch, b->fetch, sizeof(int64_t) * (size_t)b->nfetch);
    memcpy(p->dims, b->dims, sizeof(int64_t) * (size_t)b->ndims);
    for (int64_t i = 0; i < g->nn; i++) b->pos_of[i] = -1;
    for (int64_t v = 0; v < g->nv; v++) {
        b->owner[v] = v;
        b->last[v] = -1;
    }
    return 0;
}

/* ---- pass: the nodes the fetches need ---- */

static void mark_from(builder *b, int64_t v) {
    em_graph *g = b->g;
    int64_t top = 0, *stack = b->stack;
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

static int mark_needed(builder *b) {
    /* Each node is expanded once, so the stack never holds more than all inputs. */
    int64_t stack_cap = 1;
    for (int64_t i = 0; i < b->g->nn; i++) stack_cap += b->g->nodes[i].n;
    if (!(b->stack = malloc(sizeof(int64_t) * (size_t)stack_cap))) return oom();
    for (int k = 0; k < b->nfetch; k++) mark_from(b, b->fetch[k]);
    return 0;
}

/* ---- pass: run order (trace order), and where each node's arguments go ---- */

static int order_nodes(builder *b) {
    em_graph *g = b->g;
    plan *p = b->p;
    for (int64_t i = 0; i < g->nn; i++)
        if (b->pos_of[i] == 0) p->norder++;
    p->order = alloc_n(p->norder, sizeof(int64_t));
    p->attrs = alloc_n(p->norder, sizeof(em_attrs));
    p->fuse_next = alloc_zeroed(p->norder, sizeof(int64_t));
    p->viewed = alloc_zeroed(p->norder, sizeof(bool));
    p->in_at = malloc(sizeof(int64_t) * (size_t)(p->norder + 1));
    if (!p->order || !p->attrs || !p->fuse_next || !p->viewed || !p->in_at) return oom();
    for (int64_t i = 0, at = 0; i < g->nn; i++)
        if (b->pos_of[i] == 0) {
            p->in_at[at] = p->nargs;
            p->nargs += g->nodes[i].n;
            b->pos_of[i] = at;
            p->order[at++] = i;
        }
    p->in_at[p->norder] = p->nargs;
    p->args = alloc_zeroed(p->nargs, sizeof(em_tensor *));
    p->copy_from = alloc_zeroed(p->nargs, sizeof(em_tensor *));
    p->needs = alloc_n(g->nph, sizeof(int64_t));
    p->needs_node = alloc_n(g->nph, sizeof(int64_t));
    if (!p->args || !p->copy_from || !p->needs || !p->needs_node) return oom();
    return 0;
}

/* ---- pass: shapes (and strides of views) of every needed value, on headers without data ---- */

static int64_t gcd(int64_t a, int64_t b) { return b ? gcd(b, a % b) : a; }

/* In a plan for batch size `batch` (-1: none fed), an attribute derived from
 * the stand-in size (lib/internal.h) becomes the same fraction of the batch,
 * plus the same offset. -1 with an error naming the fed size when the batch
 * does not divide so (an odd batch split in two equal parts), or when the
 * size would be negative (the batch - 2, fed 1). */
static int substitute(const gnode *n, int64_t *v, int64_t batch) {
    int64_t r, offset;
    if (!em__symbolic_parts(*v, &r, &offset)) return 0;
    int64_t g = gcd(r, EM_SYM_PARTS), num = r / g, den = EM_SYM_PARTS / g;
    char size[80], times[24] = "", over[24] = "", plus[24] = ""; /* "?", "2*?", "?/2", "?/2-1" */
    if (num != 1) snprintf(times, sizeof times, "%" PRId64 "*", num);
    if (den != 1) snprintf(over, sizeof over, "/%" PRId64, den);
    if (offset) snprintf(plus, sizeof plus, "%+" PRId64, offset);
    snprintf(size, sizeof size, "%s?%s%s", times, over, plus);
    if (batch < 0) {
        em__error("graph_run: node '%s' has a size of %s, which derives from an unknown dimension, but no "
                  "placeholder with an unknown dimension was fed",
                  n->name, size);
        return -1;
    }
    if (r % EM_SYM_PRIME == 0) { /* a product of unknown sizes: not a fraction of the batch */
        em__error("graph_run: node '%s' has a size that is a product of unknown dimensions; trace it with an "
                  "example value (em_placeholder_set)",
                  n->name);
        return -1;
    }
    if (batch % den) {
        em__error("graph_run: node '%s' was traced with a size of %s: the unknown dimension must be a multiple of "
                  "%" PRId64 ", but it was fed %" PRId64,
                  n->name, size, den, batch);
        return -1;
    }
    if (batch / den * num + offset < 0) {
        em__error("graph_run: node '%s' was traced with a size of %s, which is %" PRId64
                  " for the fed unknown dimension %" PRId64 ": a size cannot be negative",
                  n->name, size, batch / den * num + offset, batch);
        return -1;
    }
    *v = batch / den * num + offset;
    return 0;
}

/* The attributes for the fed dims, the arguments, and the output's header
 * of the node at position at. */
static int infer_node(builder *b, int64_t at, int64_t batch) {
    em_graph *g = b->g;
    plan *p = b->p;
    gnode *n = &g->nodes[p->order[at]];
    const em_op_def *def = em__op_def(n->op);
    em_attrs *a = &p->attrs[at];
    *a = n->a;
    for (int k = 0; k < 2 * EM_MAX_DIMS; k++)
        if (substitute(n, &a->i[k], batch)) return -1;
    em_tensor **in = p->args + p->in_at[at];
    for (int k = 0; k < n->n; k++) {
        int64_t v = resolve(g, n->in[k]);
        gval *gv = &g->vals[v];
        if (gv->kind == V_PLACEHOLDER && !b->fed[v]) {
            em__error("graph_run: placeholder '%s' must be fed: node '%s' needs it", gv->traced->ph->name, n->name);
            return -1;
        }
        in[k] = gv->kind == V_CONST || gv->kind == V_VARIABLE ? input_of(g, v) : p->buf[v];
        if (gv->kind == V_PLACEHOLDER && !b->readers[v]) {
            p->needs[p->nneeds] = v;
            p->needs_node[p->nneeds++] = p->order[at];
        }
        b->readers[v]++;
    }
    em_call c = {def, n->n, in, a, NULL};
    em_dtype dtype;
    int ndim;
    int64_t shape[EM_MAX_DIMS];
    if (em__infer_rule(&c, &dtype, &ndim, shape)) {
        char msg[1100];
        snprintf(msg, sizeof msg, "%s", em_last_error());
        em_clear_error();
        em__error("graph_run: node '%s' cannot run with the fed shapes: %s", n->name, msg);
        return -1;
    }
    int64_t out = n->out;
    p->buf[out] = def->view ? def->view(&c, ndim, shape) : EM_NOT_A_VIEW;
    p->viewed[at] = p->buf[out] != EM_NOT_A_VIEW;
    if (p->viewed[at]) b->owner[out] = b->owner[resolve(g, n->in[0])];
    else p->buf[out] = em__alloc_meta(dtype, ndim, shape);
    return p->buf[out] ? 0 : -1;
}

static int infer_shapes(builder *b) {
    em_graph *g = b->g;
    plan *p = b->p;
    for (int k = 0; k < b->nfeeds; k++) {
        const em_tensor *value = b->feeds[k].value;
        int64_t v = em__ptrmap_get(&g->index, b->feeds[k].placeholder);
        b->fed[v] = true;
        p->buf[v] = em__alloc_meta((em_dtype)value->dtype, value->ndim, value->shape);
        if (!p->buf[v]) return -1;
    }
    int64_t batch = b->ndims ? b->dims[0] : -1;
    for (int64_t at = 0; at < p->norder; at++)
        if (infer_node(b, at, batch)) return -1;
    for (int k = 0; k < b->nfetch; k++) b->last[b->owner[b->fetch[k]]] = INT64_MAX;
    return 0;
}

/* ---- pass: fusion of pointwise chains ---- */

/* The end of the chain that can start at position at: consecutive pointwise
 * nodes over one shape, on one CPU device, each consuming the previous one's
 * output, which nothing else reads. */
static int64_t chain_end(const builder *b, int64_t at) {
    const em_graph *g = b->g;
    const plan *p = b->p;
    int64_t end = at;
    int64_t numel = p->buf[g->nodes[p->order[at]].out]->numel;
    while (end < p->norder && end - at < FUSE_MAX) {
        const gnode *n = &g->nodes[p->order[end]];
        const em_op_def *def = em__op_def(n->op);
        bool ok = (def->flags & EM_OPF_FUSABLE) && p->buf[n->out]->numel == numel && numel > 0 &&
                  !em__is_gpu(n->device) && /* chains run CPU kernels block by block */
                  em__narrow_call(&(em_call){def, n->n, p->args + p->in_at[end], &p->attrs[end], NULL}) ==
                      EM_DTYPE_COUNT && /* and as they are */
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
            if (b->readers[prev] != 1 || b->last[prev] == INT64_MAX) break;
        }
        end++;
    }
    return end;
}

static int fuse_chains(builder *b) {
    em_graph *g = b->g;
    plan *p = b->p;
    for (int64_t at = 0; at < p->norder;) {
        int64_t end = chain_end(b, at);
        if (end - at >= 2) {
            p->fuse_next[at] = end;
            g->stats.fused += end - at;
        }
        at = end > at ? end : at + 1;
    }
    /* Intermediates of a chain live in per-block scratch, not in the arena. */
    if (!(b->in_chain = alloc_zeroed(g->nv, sizeof(bool)))) return oom();
    for (int64_t at = 0; at < p->norder; at++)
        for (int64_t k = at; k + 1 < p->fuse_next[at]; k++) b->in_chain[g->nodes[p->order[k]].out] = true;
    return 0;
}

/* ---- pass: levels of units ---- */

/* A unit (a node, or a fused chain from its head) sits one level above the
 * units it reads from. An in-place update is a barrier: it comes after every
 * unit traced before it and before every unit traced after. Level 0 holds no
 * unit: it is where the fed placeholders are born. */
static int assign_levels(builder *b) {
    em_graph *g = b->g;
    plan *p = b->p;
    b->level = alloc_n(p->norder, sizeof(int64_t));
    b->head = alloc_n(p->norder, sizeof(int64_t));
    if (!b->level || !b->head) return oom();
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
                int64_t pos = b->pos_of[gv->node];
                if (pos >= at) continue; /* inside this chain */
                if (b->level[pos] + 1 > l) l = b->level[pos] + 1;
            }
        }
        if (inplace) l = barrier = top + 1;
        for (int64_t k = at; k < end; k++) {
            b->head[k] = at;
            b->level[k] = l;
        }
        if (l > top) top = l;
        at = end;
    }
    p->nlevels = top + 1;
    p->level_at = calloc((size_t)p->nlevels + 1, sizeof(int64_t));
    p->units = alloc_n(p->norder, sizeof(int64_t));
    b->fill = malloc(sizeof(int64_t) * (size_t)p->nlevels);
    if (!p->level_at || !p->units || !b->fill) return oom();
    for (int64_t at = 0; at < p->norder; at++)
        if (b->head[at] == at) p->level_at[b->level[at] + 1]++;
    for (int64_t l = 0; l < p->nlevels; l++) p->level_at[l + 1] += p->level_at[l];
    memcpy(b->fill, p->level_at, sizeof(int64_t) * (size_t)p->nlevels);
    for (int64_t at = 0; at < p->norder; at++)
        if (b->head[at] == at) p->units[b->fill[b->level[at]]++] = at;
    return 0;
}

/* ---- pass: which levels run their units at once ---- */

/* Work per output element of the unit at position at, roughly: products and
 * convolutions do a row of multiply-adds per element, the rest a few flops. */
static int64_t unit_cost(const em_graph *g, const plan *p, int64_t at) {
    const gnode *n = &g->nodes[p->order[at]];
    const em_op_def *d = em__op_def(n->op);
    if (!d->cost) return 1;
    em_call c = {d, n->n, p->args + p->in_at[at], &n->a, NULL};
    return d->cost(&c);
}

/* A level runs its units at once (each on one thread) when two or more do
 * real work, no one of them outweighs the rest (else it is better off with
 * every thread to itself), and none checks values (its error would be set on
 * another thread). Work is judged by output size. */
static int mark_parallel_levels(builder *b) {
    em_graph *g = b->g;
    plan *p = b->p;
    if (!(p->level_parallel = calloc((size_t)p->nlevels, sizeof(bool)))) return oom();
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
    return 0;
}

/* ---- pass: devices, and what each unit waits for on several ---- */

/* Units run in units[] order on their device, which is a topological order,
 * so a unit needs from each other device only the latest unit it reads from;
 * an in-place update also waits for every earlier unit, and every later unit
 * waits for it. */
static int unit_deps(builder *b) {
    const em_graph *g = b->g;
    plan *p = b->p;
    int64_t nunits = p->level_at[p->nlevels];
    b->unit_of = alloc_n(p->norder, sizeof(int64_t));
    p->dep_at = malloc(sizeof(int64_t) * (size_t)(nunits + 1));
    p->deps = malloc(sizeof(int64_t) * (size_t)(nunits ? nunits : 1) * (size_t)p->ndevs);
    p->done = alloc_n(nunits, sizeof(atomic_bool));
    if (!b->unit_of || !p->dep_at || !p->deps || !p->done) return oom();
    for (int64_t u = 0; u < nunits; u++) b->unit_of[p->units[u]] = u;
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
                int64_t from = b->unit_of[b->head[b->pos_of[gv->node]]];
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
    return 0;
}

/* The devices the units run on; on several, what each unit waits for. */
static int find_devices(builder *b) {
    const em_graph *g = b->g;
    plan *p = b->p;
    p->ndevs = 0;
    for (int64_t at = 0; at < p->norder; at++) {
        int dev = g->nodes[p->order[at]].runs_on, k = 0;
        while (k < p->ndevs && p->devs[k] != dev) k++;
        if (k == p->ndevs) p->devs[p->ndevs++] = dev;
    }
    return p->ndevs > 1 ? unit_deps(b) : 0;
}

/* ---- pass: liveness and the arena's layout ---- */

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

/* Liveness by level: a buffer is free for the levels after its last
 * reader's. Buffers born at one level are placed first-fit among those still
 * live; GPU buffers are not in the arena, nor are views or chain
 * intermediates. */
static int lay_out_arena(builder *b) {
    em_graph *g = b->g;
    plan *p = b->p;
    for (int64_t at = 0; at < p->norder; at++) {
        gnode *n = &g->nodes[p->order[at]];
        for (int k = 0; k < n->n; k++) {
            int64_t o = b->owner[resolve(g, n->in[k])];
            if (b->last[o] != INT64_MAX && b->last[o] < b->level[at]) b->last[o] = b->level[at];
        }
    }
    b->live = malloc(sizeof(slab) * (size_t)(g->nv + 1));
    b->offset = alloc_n(g->nv, sizeof(int64_t));
    if (!b->live || !b->offset) return oom();
    slab *live = b->live;
    int nlive = 0;
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
            } else if (!b->fed[v]) {
                continue;
            }
            /* GPU buffers: on the GPU */
            if (!p->buf[v] || (l && em__is_gpu(g->nodes[g->vals[v].node].device))) continue;
            int64_t size = (int64_t)em_dtype_size((em_dtype)p->buf[v]->dtype) * p->buf[v]->numel;
            size = (size + EM_ALIGN - 1) / EM_ALIGN * EM_ALIGN;
            b->offset[v] = place(live, nlive, size);
            /* Devices run out of step: a buffer of a multi-device plan is never reused. */
            live[nlive++] = (slab){v, b->offset[v], size, p->ndevs > 1 ? INT64_MAX : b->last[v] > l ? b->last[v] : l};
            if (b->offset[v] + size > p->arena_bytes) p->arena_bytes = b->offset[v] + size;
            p->unplanned_bytes += size;
        }
    }
    return 0;
}

/* ---- pass: the arena and the real headers ---- */

/* The real headers, in order (views after their bases), and planned
 * contiguous copies of strided inputs for kernels that need contiguous ones. */
static int make_headers(builder *b) {
    em_graph *g = b->g;
    plan *p = b->p;
    int64_t bytes = p->arena_bytes ? p->arena_bytes : 1;
    if (!(p->arena = em__alloc(EM_U8, 1, &bytes))) return -1;
    for (int64_t v = 0; v < g->nv; v++)
        if (b->fed[v]) {
            em_tensor *m = p->buf[v];
            p->buf[v] = em__header(p->arena, (em_dtype)m->dtype, m->ndim, m->shape,
                                   (char *)p->arena->data + b->offset[v]);
            em__unref(m);
            if (!p->buf[v]) return -1;
            p->buf[v]->device = g->vals[v].traced->device;
        }
    for (int64_t at = 0; at < p->norder; at++) {
        gnode *n = &g->nodes[p->order[at]];
        const em_op_def *def = em__op_def(n->op);
        em_tensor **in = p->args + p->in_at[at];
        for (int k = 0; k < n->n; k++) {
            int64_t v = resolve(g, n->in[k]);
            gval *gv = &g->vals[v];
            in[k] = gv->kind == V_CONST || gv->kind == V_VARIABLE ? input_of(g, v) : p->buf[v];
        }
        em_tensor *m = p->buf[n->out];
        if (p->viewed[at]) {
            em_call c = {def, n->n, in, &p->attrs[at], NULL};
            p->buf[n->out] = def->view(&c, m->ndim, m->shape);
        } else if (b->in_chain[n->out]) {
            continue; /* keeps its shape-only header: blocks get scratch */
        } else if (em__is_gpu(n->device)) { /* its own GPU buffer, made once */
            p->buf[n->out] = em__alloc_on(n->device, (em_dtype)m->dtype, m->ndim, m->shape);
        } else {
            p->buf[n->out] = em__header(p->arena, (em_dtype)m->dtype, m->ndim, m->shape,
                                        (char *)p->arena->data + b->offset[n->out]);
        }
        em__unref(m);
        if (!p->buf[n->out]) return -1;
        p->buf[n->out]->device = n->device;
        if (!p->viewed[at] && !(def->flags & EM_OPF_STRIDED))
            for (int k = 0; k < n->n; k++)
                if (in[k]->data && !em__is_contiguous(in[k])) {
                    em_tensor *copy = em__alloc_on(in[k]->device, (em_dtype)in[k]->dtype, in[k]->ndim, in[k]->shape);
                    if (!copy) return -1;
                    p->copy_from[p->in_at[at] + k] = in[k];
                    in[k] = copy;
                }
    }
    return 0;
}

/* ---- pass: the CUDA-graph capture decision ---- */

/* Whether p can run as a captured CUDA graph (see plan.cuda_state), and
 * which of its units are copies of host inputs, run before the replay. */
static int decide_capture(builder *b) {
    const em_graph *g = b->g;
    plan *p = b->p;
    int64_t nunits = p->level_at[p->nlevels];
    p->cuda_state = -1;
    if (p->ndevs != 1 || !em__is_gpu(p->devs[0]) || !(p->precopy = alloc_zeroed(nunits, sizeof(bool))))
        return 0;
    for (int64_t u = 0; u < nunits; u++) {
        const gnode *n = &g->nodes[p->order[p->units[u]]];
        unsigned flags = em__op_def(n->op)->flags;
        if ((flags & EM_OPF_COPIES) && g->vals[resolve(g, n->in[0])].kind != V_NODE) p->precopy[u] = true;
        else if (flags & (EM_OPF_RANDOM | EM_OPF_CHECKS_VALUES | EM_OPF_INPLACE | EM_OPF_ANY_DEVICE)) return 0;
    }
    p->cuda_state = 0;
    return 0;
}

/* ---- making a plan ---- */

/* The one place a builder is freed: its scratch, and the plan unless it is
 * handed out. */
static void builder_end(builder *b, bool keep_plan) {
    free(b->pos_of);
    free(b->stack);
    free(b->owner);
    free(b->last);
    free(b->readers);
    free(b->fed);
    free(b->in_chain);
    free(b->offset);
    free(b->live);
    free(b->level);
    free(b->head);
    free(b->unit_of);
    free(b->fill);
    if (!keep_plan && b->p) em__graph_plan_free(b->g, b->p);
    b->p = NULL;
}

static plan *plan_make(em_graph *g, int nfetch, const int64_t *fetch, const em_feed *feeds, int nfeeds,
                       const int64_t *dims, int ndims) {
    static int (*const passes[])(builder *) = {
        plan_begin,           /* the plan and the per-value state */
        mark_needed,          /* the nodes the fetches need */
        order_nodes,          /* their run order and argument slots */
        infer_shapes,         /* shape-only headers of every value, views' strides */
        fuse_chains,          /* chains of pointwise nodes run block by block */
        assign_levels,        /* units by level: a level's units may run at once */
        mark_parallel_levels, /* the levels worth running at once */
        find_devices,         /* the devices, and what units wait for across them */
        lay_out_arena,        /* liveness and offsets in the arena */
        make_headers,         /* the arena and the real headers */
        decide_capture,       /* whether it replays as a CUDA graph */
    };
    builder b = {.g = g, .nfetch = nfetch, .fetch = fetch, .feeds = feeds, .nfeeds = nfeeds, .dims = dims,
                 .ndims = ndims};
    for (size_t k = 0; k < sizeof passes / sizeof *passes; k++)
        if (passes[k](&b)) {
            builder_end(&b, false);
            return NULL;
        }
    plan *p = b.p;
    builder_end(&b, true);
    g->stats.plans++;
    return p;
}

/* The placement log (em_log_device_placement) gets each node of a new plan
 * once, as eager ops get a line per call: "graph: scope/op_N: /cpu:1", and a
 * copy with its devices and the shape it copies. Runs of the plan log nothing. */
static void log_placement(const em_graph *g, const plan *p) {
    if (!em__placement_logged()) return;
    for (int64_t at = 0; at < p->norder; at++) {
        const gnode *n = &g->nodes[p->order[at]];
        const em_tensor *in = n->n ? p->args[p->in_at[at]] : NULL;
        char b[160];
        if ((em__op_def(n->op)->flags & EM_OPF_COPIES) && in)
            em__log_placement("graph: %s: %s -> %s (%s %s)", n->name, em__device_label(in->device),
                              em__device_label(n->device), em_dtype_name((em_dtype)in->dtype),
                              em__tshape(in, b, sizeof b));
        else
            em__log_placement("graph: %s: %s", n->name, em__device_label(n->device));
    }
}

/* ---- the plan cache ---- */

static bool same_key(const plan *p, int nfetch, const int64_t *fetch, int ndims, const int64_t *dims) {
    return p->nfetch == nfetch && p->ndims == ndims && !memcmp(p->fetch, fetch, sizeof(int64_t) * (size_t)nfetch) &&
           !memcmp(p->dims, dims, sizeof(int64_t) * (size_t)ndims);
}

plan *em__graph_plan(em_graph *g, int nfetch, const int64_t *fetch, const em_feed *feeds, int nfeeds,
                     const int64_t *dims, int ndims) {
    plan *p = g->plans, *prev = NULL;
    int count = 0;
    for (; p && !same_key(p, nfetch, fetch, ndims, dims); prev = p, p = p->next) count++;
    if (p) {
        if (prev) { /* most recently used first */
            prev->next = p->next;
            p->next = g->plans;
            g->plans = p;
        }
        return p;
    }
    em__graph_debug(g, "%s memory plan for %d fetches and %d fed unknown dimensions",
                    g->plans ? "re-planning: new" : "first", nfetch, ndims);
    p = plan_make(g, nfetch, fetch, feeds, nfeeds, dims, ndims);
    if (!p) return NULL;
    log_placement(g, p);
    p->next = g->plans;
    g->plans = p;
    if (count + 1 > MAX_PLANS) { /* drop the least recently used */
        plan *q = g->plans;
        while (q->next && q->next->next) q = q->next;
        em__graph_plan_free(g, q->next);
        q->next = NULL;
    }
    em__graph_debug(g, "plan: %" PRId64 " nodes, arena %" PRId64 " bytes (%" PRId64 " without reuse)", p->norder,
                    p->arena_bytes, p->unplanned_bytes);
    return p;
}
