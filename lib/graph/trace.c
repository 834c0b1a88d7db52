/* Placeholders, the tracer and the graph's lifetime: em_placeholder, tracing
 * (em_trace_begin, trace_record, em_trace_end) and em_graph_release. The
 * dispatcher and the tensors reach the tracer through hooks (lib/op.h,
 * lib/internal.h), installed below.
 * graph.h describes how a traced graph works. */
#include "graph.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- placeholders ---- */

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
        ph->standin[i] = shape.dims[i] == -1 ? EM_SYM_SIZE : 0;
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

bool em__placeholder_fits(const struct em_placeholder *ph, const em_tensor *v) {
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
    if (value->dtype != p->dtype || !em__placeholder_fits(p->ph, value)) {
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

void em__graph_debug(const em_graph *g, const char *fmt, ...) {
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

int64_t em__graph_add_value(em_graph *g, vkind kind, em_tensor *t, int64_t node) {
    /* everything that can fail first: a failed add leaves the graph as it was */
    gval *v = grow(g->vals, &g->capv, g->nv + 1, sizeof *v);
    if (!v) return -1;
    g->vals = v;
    int64_t **list = kind == V_PLACEHOLDER ? &g->phs : kind == V_VARIABLE ? &g->vars : NULL;
    int *count = kind == V_PLACEHOLDER ? &g->nph : &g->nvars;
    if (list) {
        int64_t *p = realloc(*list, sizeof *p * (size_t)(*count + 1));
        if (!p) return -1;
        *list = p;
    }
    char *name = kind == V_VARIABLE ? strdup(em_variable_name(t)) : NULL;
    if ((kind == V_VARIABLE && !name) || em__ptrmap_put(&g->index, t, g->nv)) {
        free(name);
        return -1;
    }
    if (list) (*list)[(*count)++] = g->nv;
    em__retain(t);
    if (kind == V_VARIABLE) em__retain(t); /* bound: the variable it reads until bound anew by name */
    g->vals[g->nv] = (gval){kind, t, node, name, kind == V_VARIABLE ? t : NULL};
    return g->nv++;
}

static int64_t value_of(em_graph *g, em_tensor *t) {
    int64_t v = em__ptrmap_get(&g->index, t);
    if (v >= 0) return v;
    vkind kind = t->flags & EM_T_VARIABLE ? V_VARIABLE : t->flags & EM_T_PLACEHOLDER ? V_PLACEHOLDER : V_CONST;
    return em__graph_add_value(g, kind, t, -1);
}

int em__graph_grow_nodes(em_graph *g) {
    gnode *nodes = grow(g->nodes, &g->capn, g->nn + 1, sizeof *nodes);
    if (!nodes) return -1;
    g->nodes = nodes;
    return 0;
}

/* ---- tracing ---- */

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

static int trace_record(em_op op, int n, em_tensor *const *in, const em_attrs *a, em_tensor *out) {
    em_graph *g = em__thread()->trace;
    const em_op_def *d = em__op_def(op);
    if (em__graph_grow_nodes(g)) goto oom;
    gnode *node = &g->nodes[g->nn];
    *node = (gnode){.op = op, .n = n, .a = *a, .device = out->device, .runs_on = out->device};
    node->in = malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
    const char *scope = em__name_scope();
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
    if ((node->out = em__graph_add_value(g, V_NODE, out, g->nn)) < 0) goto oom_node;
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

static bool trace_symbolic(int ndim, const int64_t *shape) {
    for (int d = 0; d < ndim; d++)
        if (em__symbolic(shape[d])) return true;
    return false;
}

static void trace_host_read(const em_tensor *t) {
    em_thread *th = em__thread();
    if (!th || !th->trace) return;
    int64_t v = em__ptrmap_get(&th->trace->index, t);
    if (v >= 0 && th->trace->vals[v].kind == V_NODE) th->trace->stats.host_reads++;
}

em_graph *em_trace_end(void) {
    em_thread *th = em__thread();
    if (!th || !th->trace) {
        em__error("trace_end: no trace is open on this thread (em_trace_begin first)");
        return NULL;
    }
    em_graph *g = th->trace;
    th->trace = NULL;
    if (em__graph_optimize(g)) {
        em_graph_release(g);
        em__error("trace_end: out of memory");
        return NULL;
    }
    return g;
}

/* ---- lifetime ---- */

void em_graph_release(em_graph *g) {
    if (!g) return;
    while (g->plans) {
        plan *p = g->plans;
        g->plans = p->next;
        em__graph_plan_free(g, p);
    }
    for (int64_t i = 0; i < g->nn; i++) {
        free(g->nodes[i].in);
        free(g->nodes[i].name);
        if (g->nodes[i].traced_as) free(g->nodes[i].traced_as->in);
        free(g->nodes[i].traced_as);
    }
    for (int64_t v = 0; v < g->nv; v++) {
        em__unref(g->vals[v].traced);
        if (g->vals[v].bound) em__unref(g->vals[v].bound);
        free(g->vals[v].name);
    }
    em__ptrmap_free(&g->index);
    free(g->nodes);
    free(g->vals);
    free(g->alias);
    free(g->phs);
    free(g->vars);
    for (int k = 0; k < g->nfetch_names; k++) free(g->fetch_names[k]);
    free(g->fetch_names);
    free(g->fetch_values);
    if (g->on_release) g->on_release(g->on_release_ctx);
    free(g);
}

static void trace_shutdown(em_thread *t) {
    if (t->trace) em_graph_release(t->trace);
    t->trace = NULL;
}

em_graph_stats em_graph_get_stats(const em_graph *g) { return g ? g->stats : (em_graph_stats){0}; }

__attribute__((constructor)) static void install_hooks(void) {
    em__op_hooks.trace_record = trace_record;
    em__op_hooks.trace_symbolic = trace_symbolic;
    em__hooks.host_read = trace_host_read;
    em__hooks.trace_shutdown = trace_shutdown;
}
