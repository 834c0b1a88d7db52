/* The graph's private header: what the tracer, the optimizations, the memory
 * plans, the executor and the exporters share. Not installed; only
 * the files of lib/graph/ include it.
 *
 *   trace.c     placeholders; tracing (em_trace_begin, trace_record,
 *               em_trace_end); the graph's lifetime and stats
 *   optimize.c  constant folding, common-subexpression elimination, and
 *               ops fused into other kernels
 *   plan.c      memory plans, one function per pass, and the plan cache
 *   run.c       em_graph_run: checks the call, then one executor per kind of
 *               plan (levels on one device, several devices, CUDA graph)
 *   export.c    Graphviz (em_graph_write_dot), the node walk exporters
 *               use (em__graph_visit: TensorBoard's GraphDef), and the walk
 *               and builder of saved graphs (lib/io/graph_file.c); names
 *               (em_graph_placeholder, em_graph_fetch)
 *
 * Tracing: em__apply calls trace_record (lib/op.h's hook) for each op run while a trace is
 * open, so a graph is the list of ops a step ran, in order (which is a
 * topological order). Tensors that existed before the trace become graph
 * inputs: variables (read live at run time), placeholders (fed) and constants
 * (captured). Placeholders without an example value are traced shape-only:
 * every unknown (-1) dimension stands for one symbolic size (TF's None as the
 * batch size), traced as the stand-in EM_SYM_SIZE (lib/internal.h), so that
 * at run time every shape and attribute derived from it can be found and
 * re-derived for the fed size, and every shape rule re-checked on it.
 * Unknown dims of one run are fed one size.
 *
 * At em_trace_end: constant folding (nodes whose inputs are all constants
 * become constants), common-subexpression elimination (same op, inputs
 * and attributes), and ops fused into other kernels (conv2d -> bias add ->
 * relu runs as conv2d_bias_relu, a ReLU's gradient through a max pool as
 * max_pool_relu_grad; exports still show the ops as traced). Each run: only the nodes the fetches need run; a memory
 * plan (one arena, buffers reused by liveness, headers made once) is made per
 * distinct (fetches, fed unknown dimensions) and cached, so a repeated run
 * allocates nothing; chains of same-shape elementwise nodes run fused, block
 * by block, with their intermediates in a small per-chain scratch.
 *
 * The graph reads what it needs to know about an op from its row
 * (em__op_def(op)->flags and ->cost), never from the op's identity. */
#ifndef EMBER_GRAPH_GRAPH_H
#define EMBER_GRAPH_GRAPH_H

#include "device.h"
#include "export.h"
#include "ptrmap.h"

/* ---- placeholders (trace.c) ---- */

struct em_placeholder {
    em_shape declared;             /* -1 for unknown dimensions */
    int64_t standin[EM_MAX_DIMS];  /* shape-only stand-in sizes of unknown dims */
    bool has_example;
    char name[];
};

/* Whether v fits the declared shape (unknown dims match anything). */
bool em__placeholder_fits(const struct em_placeholder *ph, const em_tensor *v);

/* ---- the graph ---- */

typedef enum { V_CONST, V_VARIABLE, V_PLACEHOLDER, V_NODE } vkind;

typedef struct {
    vkind kind;
    em_tensor *traced; /* retained: the handle users fetch and feed by */
    int64_t node;      /* producer, for V_NODE */
    /* V_VARIABLE: its full name, and the variable of that name it reads now
     * (retained; bound by name when the graph runs, see bind_variables) */
    char *name;
    em_tensor *bound;
} gval;

typedef struct gnode {
    em_op op;
    int n;
    int64_t *in; /* value ids */
    int64_t out;
    em_attrs a;
    char *name;  /* "scope/op" */
    bool dead;   /* folded or merged away */
    bool absorbed; /* fused into its only reader's kernel (optimize.c): it runs only when fetched */
    /* A node optimize.c rewrote (a fused kernel, or a reader of a relu's output): the node as traced, which
     * exports and saved graphs show; NULL for a node that runs as traced. */
    struct gnode *traced_as;
    uint8_t device;  /* where it was placed: its output lives there */
    uint8_t runs_on; /* whose thread runs it: its device, but a copy of a value computed in the graph is
                        pushed by the device that computed it (which is then idle, while the receiver may
                        still be busy) */
} gnode;

/* The node as traced: what exports and saved graphs show of n. */
static inline const gnode *as_traced(const gnode *n) { return n->traced_as ? n->traced_as : n; }

#define FUSE_BLOCK 1024 /* elements per block of a fused chain: intermediates stay in L1 */
#define FUSE_MAX 8      /* nodes per fused chain */

/* One memory plan: the headers every needed value has for a given set of
 * fetches and fed unknown dimensions. plan.c makes it; run.c runs it. */
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
    int64_t *vars;   /* variable value ids */
    int nvars;
    /* the variables are bound for this thread's store as it was at this
     * generation (em__hooks.variables_generation) */
    const em_thread *bound_thread;
    uint64_t bound_generation;
    plan *plans;     /* most recently used first */
    em_graph_stats stats;
    bool debug;
    /* a loaded graph (export.c's builder): its fetches by name, and what to
     * release after its tensors */
    char **fetch_names;
    int64_t *fetch_values;
    int nfetch_names;
    void (*on_release)(void *ctx);
    void *on_release_ctx;
};

/* The value v was merged into (v itself when it was not). */
static inline int64_t resolve(const em_graph *g, int64_t v) {
    while (g->alias[v] != v) v = g->alias[v];
    return v;
}

/* "ember graph: ..." on stderr when em_graph_set_debug is on (trace.c). */
void em__graph_debug(const em_graph *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Adds a value (trace.c): its id, or -1 on out of memory (no error set). */
int64_t em__graph_add_value(em_graph *g, vkind kind, em_tensor *t, int64_t node);
/* Room for one more node at g->nodes[g->nn]: 0, or -1 on out of memory (no error set). */
int em__graph_grow_nodes(em_graph *g);

/* ---- optimizations (optimize.c) ---- */
/* At em_trace_end: sets up g->alias, folds constants, merges common
 * subexpressions, fuses ops into other kernels, counts the live nodes. 0, or -1 when out of memory (no
 * error set). */
int em__graph_optimize(em_graph *g);

/* What value v reads: its traced tensor, or for a variable the one bound by name. */
static inline em_tensor *input_of(const em_graph *g, int64_t v) {
    return g->vals[v].kind == V_VARIABLE ? g->vals[v].bound : g->vals[v].traced;
}

/* ---- memory plans (plan.c) ---- */
/* The plan for these fetches (resolved value ids) and fed unknown
 * dimensions: the cached one, moved to the front, or a new one (the least
 * recently used beyond the cache's size is dropped). NULL with an error. */
plan *em__graph_plan(em_graph *g, int nfetch, const int64_t *fetch, const em_feed *feeds, int nfeeds,
                     const int64_t *dims, int ndims);
void em__graph_plan_free(em_graph *g, plan *p);

#endif
