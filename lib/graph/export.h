/* The graph walk that exporters outside lib/graph/ use (summary.c's
 * TensorBoard GraphDef, io/onnx.c's ONNX model); defined in export.c. */
#ifndef EMBER_LIB_GRAPH_EXPORT_H
#define EMBER_LIB_GRAPH_EXPORT_H

#include "internal.h"

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

#endif
