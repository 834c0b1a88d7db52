/* em_graph_run: checks the call, finds or makes the memory plan, copies the
 * feeds in, and runs the plan with one of its executors:
 *   run_levels    a plan on one device: level by level, the units of a
 *                 parallel level at once (run_team), the others in order;
 *   run_devices   a plan on several devices: one thread per device, each
 *                 unit once the units it reads from elsewhere are done;
 *   run_captured  a plan wholly on one GPU: replayed as a CUDA graph.
 * A unit is one node (run_node) or a fused chain of pointwise nodes run
 * block by block (run_chain_range). */
#include "graph.h"

#include <inttypes.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>

/* ---- units ---- */

typedef struct {
    const em_graph *g;
    const plan *p;
    int64_t from, to; /* the chain's positions */
    _Atomic bool failed; /* a kernel reported an error (a registered op's): the first one's message */
    char error[1100];
} chain;

/* Runs a fused chain over elements [begin, end): every node on one block at a
 * time, intermediates in a stack buffer. */
static void run_chain_range(void *ctx, int64_t begin, int64_t end) {
    chain *ch = ctx;
    em_thread *th = em__thread();
    uint64_t errors = th ? th->errors : 0;
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
            em_call c = {em__op_def(n->op), n->n, args, &p->attrs[at], NULL};
            c.def->cpu(&c, o);
            if (th && th->errors != errors) {
                if (!atomic_exchange(&ch->failed, true)) snprintf(ch->error, sizeof ch->error, "%s", em_last_error());
                return;
            }
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
    em_call c = {def, n->n, in, a, NULL};
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
    chain ch = {g, p, at, p->fuse_next[at], false, ""};
    int64_t start = em__profile_clock();
    em__parallel_for(p->buf[g->nodes[p->order[at]].out]->numel, 16 * FUSE_BLOCK, run_chain_range, &ch);
    em__profile_fused(start);
    if (atomic_load(&ch.failed)) em__error("graph_run: %s", ch.error);
    return atomic_load(&ch.failed) ? -1 : 0;
}

/* ---- executor: one device, level by level ---- */

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

/* A plan on one device, on that device's threads: the levels in turn; a
 * parallel level runs its independent units at once, each with one thread,
 * the others run in order with every thread. */
static int run_levels(em_graph *g, plan *p) {
    int rc = 0, saved_threads = em__run_threads;
    /* Several devices exist (em__placing; em_device_count would load the CUDA plug-in). */
    if (atomic_load(&em__placing) && p->ndevs == 1) em__run_threads = em__device_threads(p->devs[0]);
    for (int64_t l = 1; l < p->nlevels && !rc; l++) {
        int64_t from = p->level_at[l], to = p->level_at[l + 1];
        if (p->level_parallel[l] && em__threads() > 1) {
            g->stats.parallel_levels++;
            rc = run_team(g, p, from, to, em__threads());
        } else {
            for (int64_t u = from; u < to && !rc; u++) rc = run_unit(g, p, p->units[u]);
        }
    }
    em__run_threads = saved_threads;
    return rc;
}

/* ---- executor: several devices ---- */

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
    g->stats.parallel_levels = p->nlevels;
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

/* ---- executor: a CUDA graph ---- */

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

/* Runs the plan with its executor. */
static int execute(em_graph *g, plan *p) {
    g->stats.parallel_levels = 0;
    if (p->ndevs > 1) return run_devices(g, p);
    if (p->cuda_state >= 0) return run_captured(g, p);
    return run_levels(g, p);
}

/* ---- checking a run ---- */

static int bad_call(const char *msg) {
    em__error("graph_run: %s", msg);
    return -1;
}

/* Resolves the fetches to value ids. */
static int check_fetches(const em_graph *g, int nfetches, em_tensor *const *fetches, int64_t *fetch) {
    for (int k = 0; k < nfetches; k++) {
        int64_t v = fetches[k] ? em__ptrmap_get(&g->index, fetches[k]) : -1;
        if (v < 0) {
            em__error("graph_run: fetch %d is %s", k, fetches[k] ? "not a tensor of this graph" : "NULL");
            return -1;
        }
        fetch[k] = resolve(g, v);
    }
    return 0;
}

/* Feed k: a placeholder of this graph, fed once, with a value that fits it;
 * its unknown dims, fed one size with the others' (*ndims becomes 1, dims[0]
 * that size). */
static int check_feed(const em_graph *g, int k, const em_feed *feeds, int64_t *dims, int *ndims) {
    char b1[160], b2[160];
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
    bool ok = val->dtype == ph->dtype && em__placeholder_fits(info, val);
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
        if (*ndims && val->shape[i] != dims[0]) {
            em__error("graph_run: the unknown dimensions of one run must be fed one size (the batch size), "
                      "but placeholder '%s' dimension %d is %" PRId64 " where another is %" PRId64,
                      info->name, i, val->shape[i], dims[0]);
            return -1;
        }
        dims[0] = val->shape[i];
        *ndims = 1;
    }
    return 0;
}

/* Whether placeholder value v is among the feeds. */
static bool is_fed(const em_graph *g, int64_t v, int nfeeds, const em_feed *feeds) {
    for (int f = 0; f < nfeeds; f++)
        if (em__ptrmap_get(&g->index, feeds[f].placeholder) == v) return true;
    return false;
}

/* A fetched placeholder needs its feed too. */
static int check_fetched_placeholders(const em_graph *g, int nfetches, const int64_t *fetch, int nfeeds,
                                      const em_feed *feeds) {
    for (int k = 0; k < nfetches; k++)
        if (g->vals[fetch[k]].kind == V_PLACEHOLDER && !is_fed(g, fetch[k], nfeeds, feeds)) {
            em__error("graph_run: placeholder '%s' must be fed: fetch %d is that placeholder",
                      g->vals[fetch[k]].traced->ph->name, k);
            return -1;
        }
    return 0;
}

/* Every placeholder the plan reads is fed: a cached plan may have been made
 * with more feeds. */
static int check_needs(const em_graph *g, const plan *p, int nfeeds, const em_feed *feeds) {
    for (int k = 0; k < p->nneeds; k++)
        if (!is_fed(g, p->needs[k], nfeeds, feeds)) {
            em__error("graph_run: placeholder '%s' must be fed: node '%s' needs it",
                      g->vals[p->needs[k]].traced->ph->name, g->nodes[p->needs_node[k]].name);
            return -1;
        }
    return 0;
}

/* ---- variables, bound by name ---- */

/* Binds every variable the graph reads to this thread's variable of the same
 * name, as eager code and saved graphs see them: one released and not made
 * again is an error naming it; one made again (same dtype and shape) is read,
 * with its values. Cached: nothing to do while no variable was created or
 * released since the last binding on this thread. A changed binding drops the
 * plans, whose headers point at the variables they were made with. */
static int bind_variables(em_graph *g) {
    if (!g->nvars || !em__hooks.variables_generation) return 0;
    uint64_t generation = em__hooks.variables_generation();
    const em_thread *th = em__thread();
    if (generation == g->bound_generation && th == g->bound_thread) return 0;
    bool changed = false;
    for (int k = 0; k < g->nvars; k++) {
        gval *gv = &g->vals[g->vars[k]];
        em_tensor *now = em__hooks.find_variable(gv->name), *was = gv->traced;
        char b1[160], b2[160];
        if (!now) {
            em__error("graph_run: variable '%s' was released and not created again; the graph reads it (create it "
                      "again, with em_get_variable or by restoring a checkpoint, before running the graph)",
                      gv->name);
            return -1;
        }
        if (now->dtype != was->dtype || now->ndim != was->ndim ||
            memcmp(now->shape, was->shape, sizeof(int64_t) * was->ndim)) {
            em__error("graph_run: variable '%s' is now %s %s, but the graph was traced with %s %s", gv->name,
                      em_dtype_name((em_dtype)now->dtype), em__tshape(now, b1, sizeof b1),
                      em_dtype_name((em_dtype)was->dtype), em__tshape(was, b2, sizeof b2));
            return -1;
        }
        if (now == gv->bound) continue;
        em__retain(now);
        em__unref(gv->bound);
        gv->bound = now;
        changed = true;
    }
    while (changed && g->plans) {
        plan *p = g->plans;
        g->plans = p->next;
        em__graph_plan_free(g, p);
    }
    if (changed) em__graph_debug(g, "variables bound anew by name: plans dropped");
    g->bound_generation = generation;
    g->bound_thread = th;
    return 0;
}

/* ---- running ---- */

int em_graph_run(em_graph *g, int nfeeds, const em_feed *feeds, int nfetches, em_tensor *const *fetches,
                 em_tensor **results) {
    if (!g) return bad_call("graph is NULL");
    if (nfetches < 1 || !fetches || !results || nfeeds < 0 || (nfeeds && !feeds))
        return bad_call("give at least one fetch, a results array, and nfeeds feeds");
    int64_t fetch[64], dims[64];
    int ndims = 0;
    if (nfetches > 64 || nfeeds > 64) return bad_call("at most 64 fetches and 64 feeds per run");
    if (check_fetches(g, nfetches, fetches, fetch) || bind_variables(g)) return -1;
    for (int k = 0; k < nfeeds; k++)
        if (check_feed(g, k, feeds, dims, &ndims)) return -1;
    if (check_fetched_placeholders(g, nfetches, fetch, nfeeds, feeds)) return -1;
    plan *p = em__graph_plan(g, nfetches, fetch, feeds, nfeeds, dims, ndims);
    if (!p || check_needs(g, p, nfeeds, feeds)) return -1;
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
    if (execute(g, p)) return -1;
    for (int k = 0; k < nfetches; k++) {
        gval *v = &g->vals[fetch[k]];
        results[k] = v->kind == V_CONST || v->kind == V_VARIABLE ? input_of(g, fetch[k]) : p->buf[fetch[k]];
    }
    return 0;
}
