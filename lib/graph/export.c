/* A graph as others see it, each node as traced (before fused products,
 * gnode.traced_as): em__graph_visit walks the live nodes and the
 * inputs they read (TensorBoard's GraphDef, lib/summary.c, is written from
 * it), and em_graph_write_dot writes Graphviz, clustered by name scope. */
#include "graph.h"
#include "../file.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    if (gv->kind == V_VARIABLE) return gv->name; /* the traced tensor may have been released since */
    if (gv->kind == V_PLACEHOLDER) return gv->traced->ph->name;
    snprintf(buf, size, "const_%" PRId64, v);
    return buf;
}

/* ---- the node walk ---- */

int em__graph_visit(const em_graph *g, int (*fn)(void *ctx, const em_graph_node *node), void *ctx) {
    /* Inputs first, in value order, then the live op nodes in trace order. */
    char names[8][64];
    for (int64_t v = 0; v < g->nv; v++) {
        const gval *gv = &g->vals[v];
        if (gv->kind == V_NODE || g->alias[v] != v) continue;
        bool used = false;
        for (int64_t i = 0; i < g->nn && !used; i++) {
            const gnode *n = as_traced(&g->nodes[i]);
            for (int k = 0; k < n->n && !used; k++) used = !n->dead && resolve(g, n->in[k]) == v;
        }
        if (!used) continue;
        const em_tensor *t = gv->traced;
        int64_t dims[EM_MAX_DIMS];
        for (int d = 0; d < t->ndim; d++)
            dims[d] = gv->kind == V_PLACEHOLDER ? t->ph->declared.dims[d] : t->shape[d];
        em_graph_node node = {value_label(g, v, names[0], sizeof names[0]),
                              gv->kind == V_PLACEHOLDER ? "Placeholder" : gv->kind == V_VARIABLE ? "Variable" : "Const",
                              0, NULL, (em_dtype)t->dtype, t->ndim, dims, em_tensor_device(t), NULL,
                              gv->kind == V_CONST ? gv->traced : NULL};
        int rc = fn(ctx, &node);
        if (rc) return rc;
    }
    for (int64_t i = 0; i < g->nn; i++) {
        const gnode *n = as_traced(&g->nodes[i]);
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
        for (int d = 0; d < out->ndim; d++) dims[d] = em__symbolic_in(out, out->shape[d]) ? -1 : out->shape[d];
        em_graph_node node = {n->name,   em__op_def(n->op)->name, n->n,  inputs, (em_dtype)out->dtype,
                              out->ndim, dims,    em__device_label(n->device), &n->a, NULL};
        int rc = fn(ctx, &node);
        if (inputs != small) free(inputs);
        if (buf != names) free(buf);
        if (rc) return rc;
    }
    return 0;
}

const char *em__graph_name_of(const em_graph *g, const em_tensor *t, char *buf, size_t size) {
    int64_t v = t ? em__ptrmap_get(&g->index, t) : -1;
    if (v < 0) return NULL;
    const char *name = value_label(g, resolve(g, v), buf, size);
    if (name != buf) snprintf(buf, size, "%s", name);
    return buf;
}

/* ---- Graphviz ---- */

/* The DOT text of graph g_ (em__write_atomic's fill). */
static int write_dot(em__file_out *out, void *g_) {
    const em_graph *g = g_;
    FILE *f = out->f;
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)(g->nn ? g->nn : 1));
    if (!idx) {
        em__error("graph_write_dot: out of memory for %lld nodes", (long long)g->nn);
        return -1;
    }
    fprintf(f, "digraph ember {\n  rankdir=TB;\n  node [shape=box, fontname=\"Helvetica\"];\n");
    /* Nodes grouped by name scope: one cluster per distinct scope path prefix,
     * nested by opening and closing clusters as the sorted paths change. */
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
        const gnode *n = as_traced(&g->nodes[idx[a]]);
        if (devices) { /* the device under the op, and a colour per device */
            char label[160];
            snprintf(label, sizeof label, "%s\n%s", em__op_def(n->op)->name, em__device_label(n->device));
            dot_name(f, label);
            fprintf(f, ", style=filled, fillcolor=\"/pastel19/%d\"", n->device % 9 + 1);
        } else {
            dot_name(f, em__op_def(n->op)->name);
        }
        fprintf(f, "];\n");
    }
    while (depth-- > 0) fprintf(f, "%*s}\n", 2 * depth + 2, "");
    for (int64_t a = 0; a < live; a++) {
        const gnode *n = as_traced(&g->nodes[idx[a]]);
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
    return 0;
}

int em_graph_write_dot(const em_graph *g, const char *path) {
    if (!g || !path) {
        em__error("graph_write_dot: graph and path must not be NULL");
        return -1;
    }
    return em__write_atomic("graph_write_dot", path, write_dot, (void *)g);
}

/* ---- saved graphs: the walk ---- */

int em__graph_walk_needed(const em_graph *g, const char *op, int nfetch, em_tensor *const *fetches,
                          int64_t *fetch_items, int (*fn)(void *ctx, const em_graph_item *item), void *ctx) {
    /* Marks the needed values from the fetches back (trace order is
     * topological), numbers them inputs first, then calls fn in that order. */
    bool *need = calloc((size_t)(g->nv ? g->nv : 1), sizeof *need);
    int64_t *item = malloc(sizeof(int64_t) * (size_t)(g->nv ? g->nv : 1));
    int64_t *ins = NULL;
    int rc = -1;
    if (!need || !item) {
        em__error("%s: out of memory", op);
        goto done;
    }
    for (int k = 0; k < nfetch; k++) {
        int64_t v = fetches[k] ? em__ptrmap_get(&g->index, fetches[k]) : -1;
        if (v < 0) {
            em__error("%s: fetch %d is not a value of this graph (fetch what was computed while tracing it)", op, k);
            goto done;
        }
        need[resolve(g, v)] = true;
    }
    for (int64_t i = g->nn - 1; i >= 0; i--) {
        const gnode *n = as_traced(&g->nodes[i]);
        if (n->dead || !need[n->out]) continue;
        for (int k = 0; k < n->n; k++) need[resolve(g, n->in[k])] = true;
    }
    int64_t count = 0;
    for (int64_t v = 0; v < g->nv; v++)
        if (need[v] && g->vals[v].kind != V_NODE) item[v] = count++;
    for (int64_t i = 0; i < g->nn; i++)
        if (!g->nodes[i].dead && need[g->nodes[i].out]) item[g->nodes[i].out] = count++;
    for (int k = 0; k < nfetch; k++) fetch_items[k] = item[resolve(g, em__ptrmap_get(&g->index, fetches[k]))];

    for (int64_t v = 0; v < g->nv; v++) {
        const gval *gv = &g->vals[v];
        if (!need[v] || gv->kind == V_NODE) continue;
        const em_tensor *t = gv->traced;
        int64_t dims[EM_MAX_DIMS];
        for (int d = 0; d < t->ndim; d++)
            dims[d] = gv->kind == V_PLACEHOLDER && !t->ph->has_example ? t->ph->declared.dims[d] : t->shape[d];
        em_graph_item it = {.kind = gv->kind == V_CONST ? EM_ITEM_CONST
                                    : gv->kind == V_VARIABLE ? EM_ITEM_VARIABLE
                                                             : EM_ITEM_PLACEHOLDER,
                            .name = gv->kind == V_VARIABLE ? gv->name : gv->kind == V_PLACEHOLDER ? t->ph->name : "",
                            .value = gv->kind == V_CONST ? gv->traced : NULL,
                            .dtype = (em_dtype)t->dtype,
                            .ndim = t->ndim,
                            .shape = dims};
        if ((rc = fn(ctx, &it))) goto done;
    }
    for (int64_t i = 0; i < g->nn; i++) {
        const gnode *n = as_traced(&g->nodes[i]);
        if (n->dead || !need[n->out]) continue;
        int64_t *p = realloc(ins, sizeof(int64_t) * (size_t)(n->n ? n->n : 1));
        if (!p) {
            em__error("%s: out of memory", op);
            rc = -1;
            goto done;
        }
        ins = p;
        for (int k = 0; k < n->n; k++) ins[k] = item[resolve(g, n->in[k])];
        const em_tensor *out = g->vals[n->out].traced;
        int64_t dims[EM_MAX_DIMS];
        for (int d = 0; d < out->ndim; d++) dims[d] = em__symbolic_in(out, out->shape[d]) ? -1 : out->shape[d];
        em_graph_item it = {.kind = EM_ITEM_OP, .name = n->name, .op = n->op, .n = n->n, .inputs = ins, .a = &n->a,
                            .dtype = (em_dtype)out->dtype, .ndim = out->ndim, .shape = dims};
        if ((rc = fn(ctx, &it))) goto done;
    }
    rc = 0;
done:
    free(need);
    free(item);
    free(ins);
    return rc;
}

/* ---- saved graphs: the builder ---- */

em_graph *em__graph_new(void) {
    em_graph *g = calloc(1, sizeof *g);
    if (!g) em__error("graph: out of memory");
    return g;
}

int64_t em__graph_add_input(em_graph *g, em_tensor *t) {
    vkind kind = t->flags & EM_T_VARIABLE ? V_VARIABLE : t->flags & EM_T_PLACEHOLDER ? V_PLACEHOLDER : V_CONST;
    int64_t v = em__graph_add_value(g, kind, t, -1);
    if (v < 0) em__error("graph: out of memory");
    return v;
}

int64_t em__graph_add_op(em_graph *g, em_op op, int n, const int64_t *inputs, const em_attrs *a) {
    const em_op_def *d = em__op_def(op);
    em_tensor *small[8], **in = n <= 8 ? small : malloc(sizeof(em_tensor *) * (size_t)n);
    int64_t *ids = malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
    char *name = malloc(strlen(d->name) + 24);
    em_tensor *out = NULL;
    if (!in || !ids || !name || em__graph_grow_nodes(g)) {
        em__error("%s: out of memory", d->name);
        goto fail;
    }
    bool meta = false; /* as em__run_op decides: the output is computed only when the graph runs */
    for (int k = 0; k < n; k++) {
        ids[k] = inputs[k];
        in[k] = g->vals[inputs[k]].traced;
        meta |= !in[k]->data && in[k]->numel;
    }
    em_call c = {d, n, in, a, NULL};
    em_dtype dtype;
    int ndim = 0;
    int64_t shape[EM_MAX_DIMS];
    if (meta ? em__infer_rule(&c, &dtype, &ndim, shape) : em__infer(&c, &dtype, &ndim, shape)) goto fail;
    int dev = em__scoped_device > 0 ? em__scoped_device : 0;
    if (!(out = em__alloc_meta(dtype, ndim, shape))) goto fail;
    out->device = (uint8_t)dev;
    out->made_by = (uint16_t)(op + 1);
    sprintf(name, "%s_%" PRId64, d->name, g->nn);
    gnode *node = &g->nodes[g->nn];
    *node = (gnode){.op = op, .n = n, .in = ids, .a = *a, .name = name, .device = (uint8_t)dev, .runs_on = (uint8_t)dev};
    if ((node->out = em__graph_add_value(g, V_NODE, out, g->nn)) < 0) {
        em__error("%s: out of memory", d->name);
        goto fail;
    }
    em__unref(out); /* the graph holds it */
    if (in != small) free(in);
    g->nn++;
    g->stats.traced++;
    return node->out;
fail:
    if (out) em__unref(out);
    if (in != small) free(in);
    free(ids);
    free(name);
    return -1;
}

em_tensor *em__graph_value(const em_graph *g, int64_t v) { return g->vals[v].traced; }

int em__graph_finish(em_graph *g) {
    if (em__graph_optimize(g)) {
        em__error("graph: out of memory");
        return -1;
    }
    return 0;
}

int em__graph_name_fetch(em_graph *g, const char *name, int64_t v) {
    char **names = realloc(g->fetch_names, sizeof(char *) * (size_t)(g->nfetch_names + 1));
    if (names) g->fetch_names = names;
    int64_t *values = realloc(g->fetch_values, sizeof(int64_t) * (size_t)(g->nfetch_names + 1));
    if (values) g->fetch_values = values;
    char *copy = names && values ? strdup(name) : NULL;
    if (!copy) {
        em__error("graph: out of memory");
        return -1;
    }
    g->fetch_names[g->nfetch_names] = copy;
    g->fetch_values[g->nfetch_names++] = v;
    return 0;
}

void em__graph_on_release(em_graph *g, void (*release)(void *ctx), void *ctx) {
    g->on_release = release;
    g->on_release_ctx = ctx;
}

/* ---- names ---- */

em_tensor *em_graph_placeholder(const em_graph *g, const char *name) {
    if (!g || !name) {
        em__error("graph_placeholder: graph and name must not be NULL");
        return NULL;
    }
    for (int k = 0; k < g->nph; k++)
        if (!strcmp(g->vals[g->phs[k]].traced->ph->name, name)) return g->vals[g->phs[k]].traced;
    em__error("graph_placeholder: the graph has no placeholder named '%s'", name);
    return NULL;
}

em_tensor *em_graph_fetch(const em_graph *g, const char *name) {
    if (!g || !name) {
        em__error("graph_fetch: graph and name must not be NULL");
        return NULL;
    }
    for (int k = 0; k < g->nfetch_names; k++)
        if (!strcmp(g->fetch_names[k], name)) return g->vals[g->fetch_values[k]].traced;
    em__error("graph_fetch: the graph has no fetch named '%s'%s", name,
              g->nfetch_names ? "" : " (only a loaded graph names its fetches: em_graph_save's fetch_names)");
    return NULL;
}
