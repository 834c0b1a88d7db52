/* The graph walk that exporters outside lib/graph/ use (summary.c's
 * TensorBoard GraphDef, io/onnx.c's ONNX model), and the walk and builder that
 * saved graphs (lib/io/graph_file.c) use; defined in export.c. */
#ifndef EMBER_LIB_GRAPH_EXPORT_H
#define EMBER_LIB_GRAPH_EXPORT_H

#include "internal.h"
#include "op.h"

/* One node of a graph as exporters see it: ops, and the placeholders,
 * variables and constants they read ("Placeholder", "Variable", "Const"). */
typedef struct em_graph_node {
    const char *name; /* "scope/op_N", or the placeholder's / variable's name */
    const char *op;
    int ninputs;
    const char *const *inputs; /* the names of the nodes it reads */
    em_dtype dtype;            /* of its output */
    int ndim;                  /* -1: unknown */
    const int64_t *shape;      /* -1 for unknown dims */
    const char *device;        /* "/cpu:1" ... */
    const em_attrs *attrs;     /* an op's attributes; NULL for the others */
    em_tensor *value;          /* a constant's value; NULL for the others */
} em_graph_node;
/* Calls fn for every node in a topological order; stops at fn's first
 * non-zero return and returns it. */
int em__graph_visit(const struct em_graph *g, int (*fn)(void *ctx, const em_graph_node *node), void *ctx);
/* The name of the node that gives tensor t in g (after merges) into buf, as
 * em__graph_visit names it; NULL when t is not a tensor of g. */
const char *em__graph_name_of(const struct em_graph *g, const em_tensor *t, char *buf, size_t size);

/* ---- saved graphs ---- */

typedef enum em_graph_item_kind { EM_ITEM_CONST, EM_ITEM_VARIABLE, EM_ITEM_PLACEHOLDER, EM_ITEM_OP } em_graph_item_kind;

/* One value a set of fetches needs, as a saved graph holds it. Items are
 * numbered in the order the walk gives them; an op's inputs are earlier items. */
typedef struct em_graph_item {
    em_graph_item_kind kind;
    const char *name;   /* variable and placeholder names; an op's "scope/op_N" */
    em_tensor *value;   /* EM_ITEM_CONST: the constant; NULL for the others (variables are read by name) */
    em_op op;           /* EM_ITEM_OP: the op, its inputs (item numbers) and attributes */
    int n;
    const int64_t *inputs;
    const em_attrs *a;
    em_dtype dtype;     /* of the value */
    int ndim;
    const int64_t *shape; /* -1 for a placeholder's unknown dims and the sizes derived from them */
} em_graph_item;

/* Calls fn for each value the fetches need (inputs first, then ops in trace
 * order), stopping at fn's first non-zero return, which it returns;
 * fetch_items[k] receives fetch k's item number. A placeholder traced with an
 * example gives the example's shape. -1 with an error naming `op` when a
 * fetch is not a value of g. */
int em__graph_walk_needed(const struct em_graph *g, const char *op, int nfetch, em_tensor *const *fetches,
                          int64_t *fetch_items, int (*fn)(void *ctx, const em_graph_item *item), void *ctx);

/* A graph built value by value (a loaded file): em__graph_new, then inputs
 * (constants, variables, placeholders: retained) and ops in a topological
 * order, then em__graph_finish (the optimizations of em_trace_end). Ids are
 * value ids; -1 with an error. An op's output has no data until the graph
 * runs; it is placed on the current device scope's device. */
struct em_graph *em__graph_new(void);
int64_t em__graph_add_input(struct em_graph *g, em_tensor *t);
int64_t em__graph_add_op(struct em_graph *g, em_op op, int n, const int64_t *inputs, const em_attrs *a);
/* The handle of value v (what em_graph_run fetches and feeds by). BORROWED. */
em_tensor *em__graph_value(const struct em_graph *g, int64_t v);
int em__graph_finish(struct em_graph *g);
/* Names value v for em_graph_fetch (a copy of name is kept). */
int em__graph_name_fetch(struct em_graph *g, const char *name, int64_t v);
/* Has em_graph_release call release(ctx) after dropping the graph's tensors
 * (a file mapping its constants point into). */
void em__graph_on_release(struct em_graph *g, void (*release)(void *ctx), void *ctx);

#endif
