/* The tracer: a step run between em_trace_begin() and em_trace_end() becomes
 * an em_graph, TF1's "build the graph, then run it" reached from eager code.
 *
 *   em_tensor *x = em_placeholder(EM_F32, EM_SHAPE(-1, 784), "x");  // [None, 784]
 *   em_trace_begin();
 *   em_tensor *loss = ...;              // forward, em_gradients, optimizer updates
 *   em_tensor *train = em_minimize_op(opt, tape, loss, 0, NULL);
 *   em_graph *g = em_trace_end();
 *   em_tensor *out[2];
 *   em_graph_run(g, 1, (em_feed[]){{x, batch}}, 2, (em_tensor *[]){train, loss}, out);
 *
 * Frozen at trace time: what C code decided. A C `if` taken while tracing is
 * baked into the graph; a value read back to the host while tracing (em_item,
 * em_data) is counted in em_graph_stats().host_reads, since the graph will not
 * read it again. Read at run time: feeds, variables (updated in place, shared
 * with eager code), the optimizer's learning rate and step count, the random
 * stream (each run draws new numbers). */
#ifndef EMBER_GRAPH_H
#define EMBER_GRAPH_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct em_graph em_graph;

/* A placeholder: a tensor with no value until fed. A dimension of -1 is
 * unknown (TF's None). NEW. Using it outside a graph is an error that says it
 * must be fed; em_placeholder_set gives it an example value to trace with. */
em_tensor *em_placeholder(em_dtype dtype, em_shape shape, const char *name);
/* Gives a placeholder an example value (copied; shape must fit the declared
 * one) so that tracing computes real values. */
int em_placeholder_set(em_tensor *placeholder, em_tensor *value);

/* Starts tracing this thread's ops (eager execution goes on where inputs have
 * values; ops on shape-only placeholders compute shapes only). */
int em_trace_begin(void);
/* Stops tracing and returns the graph (owned by the caller: em_graph_release). */
em_graph *em_trace_end(void);
void em_graph_release(em_graph *g);

typedef struct em_feed {
    em_tensor *placeholder;
    em_tensor *value;
} em_feed;

/* Runs the nodes that the fetches need. Feeds are copied into the graph's own
 * input buffers. results[i] are BORROWED tensors owned by the graph, valid
 * until its next run or release (copy with em_copy to keep one). Variables
 * are found by name on this thread when it runs: one made again after
 * em_variables_release (same dtype and shape) is read, new values and all.
 * Errors name a needed placeholder that is not fed, a feed of the wrong dtype
 * or shape, or a variable that no longer exists or changed shape. */
int em_graph_run(em_graph *g, int nfeeds, const em_feed *feeds, int nfetches, em_tensor *const *fetches,
                 em_tensor **results);

typedef struct em_graph_stats {
    int64_t nodes;          /* nodes after optimization */
    int64_t traced;         /* ops traced */
    int64_t folded;         /* constant-folded at em_trace_end */
    int64_t cse_merged;     /* removed as common subexpressions */
    int64_t fused;          /* elementwise nodes run inside fused chains */
    int64_t last_run_nodes; /* nodes the last run executed (dead nodes pruned) */
    int64_t parallel_levels;/* levels of independent nodes the last run ran at once */
    int64_t plans;          /* memory plans made (re-plans when unknown dims change) */
    int64_t arena_bytes;    /* the static memory plan's size */
    int64_t unplanned_bytes;/* what the same nodes would take without buffer reuse */
    int64_t host_reads;     /* values read back to the host while tracing */
    int64_t cuda_graph_runs;/* runs replayed as one captured CUDA graph (plans wholly on one GPU) */
} em_graph_stats;
em_graph_stats em_graph_get_stats(const em_graph *g);

/* Graphviz DOT, name scopes as clusters; written whole or not at all (ember/io.h). */
int em_graph_write_dot(const em_graph *g, const char *path);

/* Set to print re-plan decisions and other debug lines to stderr. */
void em_graph_set_debug(em_graph *g, bool on);

#ifdef __cplusplus
}
#endif
#endif
