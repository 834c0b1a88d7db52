/* The optimizations at em_trace_end: constant folding (nodes whose inputs
 * are all constants become constants) and common-subexpression elimination
 * (same op, inputs and attributes: later copies become aliases of the
 * first). Random ops and in-place updates are never folded or merged. */
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

int em__graph_optimize(em_graph *g) {
    g->alias = malloc(sizeof(int64_t) * (size_t)(g->nv ? g->nv : 1));
    if (!g->alias) return -1;
    for (int64_t v = 0; v < g->nv; v++) g->alias[v] = v;
    fold_constants(g);
    if (eliminate_common(g)) return -1;
    for (int64_t i = 0; i < g->nn; i++) g->stats.nodes += !g->nodes[i].dead;
    return 0;
}
