/* Ember's internals shared by lib/: the tensor object, the per-thread state,
 * errors, and the op table and dispatcher. Not installed. */
#ifndef EMBER_INTERNAL_H
#define EMBER_INTERNAL_H

#include "ember.h"
#include "gpu.h"
#include "op.h"

#include <stdatomic.h>
#include <string.h>

#define EM_ALIGN 64

enum em_tensor_flags {
    EM_T_VARIABLE = 1u << 0,    /* a variable: updated in place, never freed by scopes */
    EM_T_PLACEHOLDER = 1u << 1, /* has no data until fed */
};

struct em_variable_info; /* lib/variable.c */
struct em_placeholder;   /* lib/graph.c */

struct em_tensor {
    atomic_int refs;
    uint8_t dtype;
    uint8_t ndim;
    uint8_t flags;
    uint8_t device; /* 0: cpu */
    int64_t numel;
    int64_t shape[EM_MAX_DIMS];
    int64_t strides[EM_MAX_DIMS]; /* in elements */
    void *data;                   /* first element */
    em_tensor *base;              /* owner of the memory for views; NULL if owned */
    struct em_variable_info *var; /* name and slots, for variables */
    struct em_placeholder *ph;    /* declared shape and name, for placeholders */
    size_t block;                 /* bytes of the block holding the tensor (tensor.c) */
};

/* ---- tensors (tensor.c) ---- */
/* A new contiguous tensor, refs = 1, not in any scope, data uninitialised. */
em_tensor *em__alloc(em_dtype dtype, int ndim, const int64_t *shape);
/* A header sharing x's memory, with the given shape and strides (elements)
 * starting `offset` elements after x->data. refs = 1, not in any scope. */
em_tensor *em__view(em_tensor *x, int ndim, const int64_t *shape, const int64_t *strides, int64_t offset);
/* A header with no data (shape-only tracing); refs = 1, not in any scope. */
em_tensor *em__alloc_meta(em_dtype dtype, int ndim, const int64_t *shape);
/* A new contiguous tensor on device dev (GPU memory for a GPU): refs = 1,
 * not in any scope, data uninitialised. em__alloc gives host memory. */
em_tensor *em__alloc_on(int dev, em_dtype dtype, int ndim, const int64_t *shape);
/* A host copy of t (contiguous; t itself, retained, when it is on a CPU
 * device and contiguous): refs = 1, not in any scope. NULL with an error. */
em_tensor *em__to_host(em_tensor *t);
/* Moves a new host tensor to the current device scope's GPU, if a GPU scope
 * is open (t is released); else returns t. Then puts it in the scope. */
em_tensor *em__own_placed(em_tensor *t);
/* A contiguous header over `data`, which lives in owner's memory (retained). */
em_tensor *em__header(em_tensor *owner, em_dtype dtype, int ndim, const int64_t *shape, void *data);
/* Test hook: when set, every tensor allocation first asks fail(bytes, ctx)
 * and fails as out of memory when it returns true. NULL removes it. */
void em__set_alloc_fail_hook(bool (*fail)(size_t bytes, void *ctx), void *ctx);
/* Kernel scratch memory from the same block cache as tensors (no page faults
 * in steady state; the allocation-failure hook applies). NULL when out of memory. */
void *em__scratch(size_t bytes);
void em__scratch_free(void *p);
/* Frees the cached free blocks (em_shutdown). */
void em__blocks_shutdown(void);
void em__retain(em_tensor *t);
void em__unref(em_tensor *t);
bool em__is_contiguous(const em_tensor *t);
/* Copies src (any strides) into dst (contiguous, same shape and dtype), on
 * any devices. 0, or -1 with an error (GPU copies only). */
int em__copy_strided(em_tensor *dst, const em_tensor *src);
/* Puts t in the innermost scope (which takes over its reference). Returns t. */
em_tensor *em__own(em_tensor *t);
void em__contiguous_strides(int ndim, const int64_t *shape, int64_t *strides);
/* Sets every element of contiguous t (on any device) to v. */
void em__fill_raw(em_tensor *t, double v);
double em__read(const void *p, em_dtype dtype);          /* one element -> double */
void em__write(void *p, em_dtype dtype, double value);   /* double -> one element */
static inline em_shape em__shape_of(const em_tensor *t) {
    em_shape s = {.ndim = t->ndim};
    memcpy(s.dims, t->shape, sizeof(int64_t) * (size_t)t->ndim);
    return s;
}
static inline bool em__is_float(em_dtype d) { return d == EM_F32 || d == EM_F64; }

/* ---- errors (error.c) ---- */
/* Sets the thread's error unless one is already set (the first error wins). */
void em__error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Returns NULL after reporting "op: input is NULL" if no error is pending. */
void *em__null_input(const char *op);

/* Hot loops are compiled for AVX-512, AVX2 and plain x86-64, and the loader
 * picks the best the CPU has (GCC's function multi-versioning): one portable
 * library that still uses the wide vectors. Not under the sanitizers: their
 * runtimes are not ready when the loader runs the resolvers (ThreadSanitizer
 * crashes there). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__) && \
    !defined(__SANITIZE_THREAD__)
#define EM_HOT __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define EM_HOT
#endif

/* ---- devices (device.c) ---- */
/* Whether em__apply must place ops: several devices exist, or placement is logged. */
extern atomic_bool em__placing;
/* The innermost device scope's device on this thread, -1 when none is open. */
extern _Thread_local int em__scoped_device;
/* Threads for the kernels this thread runs now (the device's); 0: em_num_threads(). */
extern _Thread_local int em__run_threads;
static inline int em__threads(void) { return em__run_threads ? em__run_threads : em_num_threads(); }
/* Device indices: CPUs from 0, GPUs from EM_GPU_BASE (GPU ordinal = index - base). */
#define EM_GPU_BASE 32
static inline bool em__is_gpu(int dev) { return dev >= EM_GPU_BASE; }
/* t as the GPU backend sees it. */
static inline em_gpu_tensor em__gpu_tensor(const em_tensor *t) {
    em_gpu_tensor g = {.dtype = t->dtype, .ndim = t->ndim, .numel = t->numel, .data = t->data};
    memcpy(g.shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
    memcpy(g.strides, t->strides, sizeof(int64_t) * (size_t)t->ndim);
    return g;
}
/* Device dev's thread count, 0 for em_num_threads(). */
int em__device_threads(int dev);
void em__device_scopes_reset(void);

/* ---- per-thread state (scope.c) ---- */
typedef struct em_scope {
    em_tensor **items;
    int64_t count, cap;
} em_scope;

struct em_tape;
struct em_trace;

typedef struct em_thread {
    char error[1024];
    bool has_error;
    uint64_t errors; /* errors reported, kept or not: a kernel that failed (out of memory) shows here */
    em_scope *scopes; /* scopes[0] is the root */
    int nscopes, capscopes;
    struct em_tape **tapes; /* open tapes, innermost last */
    int ntapes, captapes;
    uint64_t seed;    /* random stream: seed and the next counter */
    uint64_t counter;
    struct em_varstore *vars; /* variable.c */
    struct em_graph *trace;   /* graph.c: the graph being traced, if any */
} em_thread;

em_thread *em__thread(void);

/* ---- threads (tensor.c) ---- */
/* Runs fn(ctx, begin, end) over [0, n) in fixed chunks of `grain`, on the
 * thread pool when n is large. The chunking never depends on the thread count,
 * so results are identical for any number of threads. */
typedef void (*em_range_fn)(void *ctx, int64_t begin, int64_t end);
void em__parallel_for(int64_t n, int64_t grain, em_range_fn fn, void *ctx);

/* ---- tracing (graph.c) ---- */
/* Adds a node for an op just run while tracing. 0, or -1 with an error. */
int em__trace_record(em_op op, int n, em_tensor *const *in, const em_attrs *a, em_tensor *out);
/* Whether a shape holds a dimension derived from an unknown (-1) dimension
 * of a shape-only trace. */
bool em__trace_symbolic(int ndim, const int64_t *shape);
/* Notes a value read back to the host while tracing. */
void em__trace_host_read(const em_tensor *t);
void em__trace_shutdown(em_thread *t);
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
} em_graph_node;
/* Calls fn for every node in a topological order; stops at fn's first
 * non-zero return and returns it. */
int em__graph_visit(const struct em_graph *g, int (*fn)(void *ctx, const em_graph_node *node), void *ctx);

/* Call before the first BLIS call: chooses BLIS's kernels (tensor.c). */
void em__blis_ready(void);

/* ---- random (ops/random.c) ---- */
/* Reserves `n` numbers of this thread's stream: returns the first counter. */
uint64_t em__rng_reserve(uint64_t n);

/* ---- matrix multiply (ops/matmul.c) ---- */
/* C = A B (accumulate: C += A B) for an m x k A and a k x n B, any dtype, each
 * matrix given by its row and column strides in elements. Float dtypes run
 * BLIS (single_thread: one thread, for calls inside em__parallel_for); other
 * dtypes and strides BLIS rejects (zero or negative) run a plain loop. */
void em__gemm(em_dtype dtype, int64_t m, int64_t n, int64_t k, const void *a, int64_t rsa, int64_t csa,
              const void *b, int64_t rsb, int64_t csb, bool accumulate, void *c, int64_t rsc, int64_t csc,
              bool single_thread);

#endif
