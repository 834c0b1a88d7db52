/* The optimizations at em_trace_end: constant folding (nodes whose inputs
 * are all constants become constants), common-subexpression elimination
 * (same op, inputs and attributes: later copies become aliases of the
 * first), and ops fused into other kernels (below). Random ops and in-place updates are
 * never folded or merged. */
#include "graph.h"

#include <stdlib.h>

static bool pure(const gnode *n) { return !(em__op_def(n->op)->flags & (EM_OPF_RANDOM | EM_OPF_INPLACE)); }

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

/* ---- ops fused into other kernels ----
 * First, relu_grad(x, g) reads relu's output y = relu(x) in x's place where
 * the graph computes it: y > 0 exactly where x > 0 (elsewhere y is 0, -0 or
 * NaN), so the gradient is the same to the bit, and the pre-activation x
 * need not outlive the forward pass. Then:
 * - conv2d -> add of a per-channel bias -> relu, on a CPU in float32 or
 *   float64, where only the add reads the convolution and only the relu the
 *   sum, becomes one conv2d_bias_relu node in relu's place, which adds the
 *   bias and takes the ReLU while each output tile is still in registers
 *   (oneDNN's post-ops): the pre-activations never go to memory.
 * - relu_grad(y, max_pool_grad(y, dy)), the gradient through the max pool of
 *   a ReLU's output y, becomes max_pool_relu_grad(y, dy), which applies the
 *   ReLU's mask as it stores each routed gradient.
 * The nodes taken in stay, absorbed: they run only for a fetch of their own
 * values. Exports show each node as traced (gnode.traced_as). */

/* The node that computes value v, or -1. */
static int64_t producer(const em_graph *g, int64_t v) {
    v = resolve(g, v);
    return g->vals[v].kind == V_NODE && !g->nodes[g->vals[v].node].dead ? g->vals[v].node : -1;
}

static bool is_op(const em_graph *g, int64_t node, em_op op) { return node >= 0 && g->nodes[node].op == op; }

static bool is_float(const em_tensor *t) { return t->dtype == EM_F32 || t->dtype == EM_F64; }

/* Keeps n as traced in n->traced_as before it is first rewritten: 0, or -1 when out of memory. */
static int keep_traced(gnode *n) {
    if (n->traced_as) return 0;
    gnode *t = malloc(sizeof *t);
    int64_t *in = malloc(sizeof(int64_t) * (size_t)n->n);
    if (!t || !in) {
        free(t);
        free(in);
        return -1;
    }
    memcpy(in, n->in, sizeof(int64_t) * (size_t)n->n);
    *t = *n;
    t->in = in;
    n->traced_as = t;
    return 0;
}

/* Whether an in-place update lies between nodes from and to: a fused node at to must not read past it. */
static bool update_between(const em_graph *g, int64_t from, int64_t to) {
    for (int64_t i = from + 1; i < to; i++)
        if (!g->nodes[i].dead && (em__op_def(g->nodes[i].op)->flags & EM_OPF_INPLACE)) return true;
    return false;
}

/* Each relu_grad(x, g) after a relu(x) on its device, with no in-place update between, reads the relu's
 * output. */
static int read_relu_outputs(em_graph *g) {
    int64_t *relu_of = malloc(sizeof(int64_t) * (size_t)(g->nv ? g->nv : 1)); /* per value: its relu since the latest update */
    if (!relu_of) return -1;
    for (int64_t v = 0; v < g->nv; v++) relu_of[v] = -1;
    int64_t update = -1; /* the latest in-place update so far: x may be a variable it changed since the relu */
    int rc = 0;
    for (int64_t i = 0; i < g->nn && !rc; i++) {
        gnode *n = &g->nodes[i];
        if (!n->dead && (em__op_def(n->op)->flags & EM_OPF_INPLACE)) update = i;
        if (n->dead || (n->op != EM_OP_RELU && n->op != EM_OP_RELU_GRAD)) continue;
        int64_t x = resolve(g, n->in[0]), r = relu_of[x];
        if (n->op == EM_OP_RELU) {
            if (r <= update) relu_of[x] = i; /* none yet (-1), or one from before an update */
        } else if (r > update && g->nodes[r].device == n->device && !(rc = keep_traced(n))) {
            n->in[0] = g->nodes[r].out;
        }
    }
    free(relu_of);
    return rc;
}

/* Whether relu node r reads add(conv2d(x, w), bias) that fuse as conv2d_bias_relu; sets *conv and *bias. */
static bool conv_bias_relu_of(const em_graph *g, const int64_t *readers, int64_t r, int64_t *conv, int64_t *bias) {
    const gnode *relu = &g->nodes[r];
    int64_t sum = resolve(g, relu->in[0]), add = producer(g, sum);
    if (!is_op(g, add, EM_OP_ADD) || readers[sum] != 1) return false;
    const gnode *a = &g->nodes[add];
    int k = is_op(g, producer(g, a->in[0]), EM_OP_CONV2D) ? 0 : 1;
    *conv = producer(g, a->in[k]);
    *bias = resolve(g, a->in[1 - k]);
    if (!is_op(g, *conv, EM_OP_CONV2D)) return false;
    const gnode *c = &g->nodes[*conv];
    const em_tensor *y = g->vals[c->out].traced, *b = g->vals[*bias].traced;
    return is_float(y) && b->dtype == y->dtype && b->ndim == 1 && b->shape[0] == y->shape[3] &&
           g->vals[relu->out].traced->dtype == y->dtype && !em__is_gpu(c->device) && a->device == c->device &&
           relu->device == c->device && readers[c->out] == 1 &&
           !update_between(g, *conv, r); /* the fused node reads x, w and the bias at relu's place */
}

/* Whether relu_grad node r reads max_pool_grad(its own x, dy) that fuse as max_pool_relu_grad; sets *pool. */
static bool max_pool_relu_grad_of(const em_graph *g, const int64_t *readers, int64_t r, int64_t *pool) {
    const gnode *n = &g->nodes[r];
    *pool = producer(g, n->in[1]);
    if (!is_op(g, *pool, EM_OP_MAX_POOL_GRAD)) return false;
    const gnode *p = &g->nodes[*pool];
    const em_tensor *dx = g->vals[p->out].traced;
    return resolve(g, p->in[0]) == resolve(g, n->in[0]) && readers[p->out] == 1 && is_float(dx) &&
           g->vals[n->out].traced->dtype == dx->dtype && !em__is_gpu(p->device) && n->device == p->device &&
           !update_between(g, *pool, r);
}

static int fuse_into_kernels(em_graph *g) {
    if (read_relu_outputs(g)) return -1;
    int64_t *readers = calloc((size_t)(g->nv ? g->nv : 1), sizeof(int64_t)), *in = NULL;
    if (!readers) return -1;
    for (int64_t i = 0; i < g->nn; i++)
        for (int k = 0; k < g->nodes[i].n && !g->nodes[i].dead; k++) readers[resolve(g, g->nodes[i].in[k])]++;
    int rc = -1;
    for (int64_t r = 0; r < g->nn; r++) {
        gnode *n = &g->nodes[r];
        int64_t conv, bias;
        if (n->dead || n->op != EM_OP_RELU || !conv_bias_relu_of(g, readers, r, &conv, &bias)) continue;
        if (!(in = malloc(3 * sizeof(int64_t))) || keep_traced(n)) goto done;
        const gnode *c = &g->nodes[conv];
        g->nodes[producer(g, n->in[0])].absorbed = g->nodes[conv].absorbed = true;
        in[0] = resolve(g, c->in[0]);
        in[1] = resolve(g, c->in[1]);
        in[2] = bias;
        free(n->in);
        n->in = in;
        in = NULL;
        n->n = 3;
        n->op = EM_OP_CONV2D_BIAS_RELU;
        n->a = c->a;
        g->stats.epilogues += 2;
    }
    for (int64_t r = 0; r < g->nn; r++) {
        gnode *n = &g->nodes[r];
        int64_t pool;
        if (n->dead || n->op != EM_OP_RELU_GRAD || !max_pool_relu_grad_of(g, readers, r, &pool)) continue;
        if (keep_traced(n)) goto done;
        g->nodes[pool].absorbed = true;
        n->op = EM_OP_MAX_POOL_RELU_GRAD;
        n->in[1] = resolve(g, g->nodes[pool].in[1]);
        n->a = g->nodes[pool].a;
        g->stats.epilogues++;
    }
    rc = 0;
done:
    free(in);
    free(readers);
    return rc;
}

int em__graph_optimize(em_graph *g) {
    g->alias = malloc(sizeof(int64_t) * (size_t)(g->nv ? g->nv : 1));
    if (!g->alias) return -1;
    for (int64_t v = 0; v < g->nv; v++) g->alias[v] = v;
    fold_constants(g);
    if (eliminate_common(g) || fuse_into_kernels(g)) return -1;
    for (int64_t i = 0; i < g->nn; i++) g->stats.nodes += !g->nodes[i].dead && !g->nodes[i].absorbed;
    return 0;
}
