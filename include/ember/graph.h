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
    int64_t nodes;          /* nodes after optimization (those fused into another not counted) */
    int64_t traced;         /* ops traced */
    int64_t folded;         /* constant-folded at em_trace_end */
    int64_t cse_merged;     /* removed as common subexpressions */
    int64_t fused;          /* elementwise nodes run inside fused chains */
    int64_t epilogues;      /* ops run inside another's kernel at em_trace_end: a convolution's bias add and
                               ReLU, the ReLU gradient of a max pool's gradient */
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

/* ---- saved graphs ----
 * A program that never defined the model runs it from one file:
 *
 *   em_graph *g = em_graph_load("model.emg");
 *   em_tensor *x = em_graph_placeholder(g, "x"), *logits = em_graph_fetch(g, "logits"), *out;
 *   em_graph_run(g, 1, (em_feed[]){{x, images}}, 1, &logits, &out);
 *
 * The file holds the ops the fetches need, by op name, with their attributes,
 * dtypes and shapes (an unknown batch dimension stays unknown), the
 * placeholders by name, the fetches under their names and the values of the
 * variables and constants read. It is versioned and checksummed: a damaged
 * file, a newer format or an op this build lacks is an error, never a crash.
 * docs/saved_graphs.md describes the format. */
enum em_save_flags {
    EM_SAVE_INFERENCE = 1u << 0, /* for serving: its variables load untrainable (no optimizer or gradient
                                      touches them; TF1's inference graphs) */
    EM_SAVE_FREEZE = 1u << 1,    /* variables become constants (TF1's freeze_graph): loads need no variable store */
};
/* Writes the part of g that fetches[0..nfetch) need to path (whole or not at
 * all), fetch k under fetch_names[k]. Variables are read by name on this
 * thread. Gradients are ops like any (a saved loss's gradient runs after
 * loading); an optimizer step is refused (its rule is this process's
 * optimizer): the loading program makes its own over the loaded variables. */
int em_graph_save(const em_graph *g, const char *path, int nfetch, em_tensor *const *fetches,
                  const char *const *fetch_names, unsigned flags);

enum em_load_flags {
    /* A saved variable whose name exists in this thread's variable store binds
     * to the existing one (same dtype and shape; its value is kept) instead of
     * being an error. */
    EM_LOAD_REUSE_VARIABLES = 1u << 0,
};
/* Loads a saved graph onto "/cpu:0" (owned by the caller: em_graph_release).
 * Its variables enter this thread's variable store under their saved names
 * (em_find_variable, optimizers and checkpoints see them); a name already
 * there is an error. NULL with an error. */
em_graph *em_graph_load(const char *path);
/* em_graph_load onto device ("/gpu:0" ...): its ops, constants and variables live there. */
em_graph *em_graph_load_on(const char *path, const char *device);
/* em_graph_load_on with em_load_flags; device NULL is "/cpu:0". */
em_graph *em_graph_load_with(const char *path, const char *device, unsigned flags);
/* The placeholder of g named name, to feed; the value saved as fetch `name`,
 * to fetch (BORROWED, owned by g). NULL with an error naming what g has not. */
em_tensor *em_graph_placeholder(const em_graph *g, const char *name);
em_tensor *em_graph_fetch(const em_graph *g, const char *name);

/* Set to print re-plan decisions and other debug lines to stderr. */
void em_graph_set_debug(em_graph *g, bool on);

#ifdef __cplusplus
}
#endif
#endif
