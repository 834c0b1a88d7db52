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

struct em_placeholder; /* lib/graph/graph.h */

/* A variable's name and optimizer slots (variable.c, optim.c; the name is
 * read at every layer: errors, graphs, checkpoints). */
struct em_variable_info {
    char *name; /* full name, "scope/sub/name" */
    bool trainable;
    struct em_slot_set *slots; /* BORROWED slot variables (they are in the store too); lib/variable.h */
    int nslots;
};

struct em_tensor {
    atomic_int refs;
    uint8_t dtype;
    uint8_t ndim;
    uint8_t flags;
    uint8_t device; /* 0: cpu */
    atomic_int kept;  /* references the user holds from em_keep, which em_release may drop */
    uint16_t made_by; /* 1 + the op that made it; 0: not made by an op */
    uint8_t released; /* debug mode: why it was freed (em_release_cause), 0 while alive */
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
/* Whether a kernel that reads and writes `bytes` in all should write its
 * output with streaming stores (em__stream_store, stream_store.h): when they pass the
 * last-level cache, the output would be evicted before it is read again
 * anyway, and streaming stores skip reading each output line first. */
bool em__stream_output(size_t bytes);
/* Tests: the bytes past which em__stream_output says yes (0: the cache's size). */
void em__set_stream_threshold(size_t bytes);
/* Orders a kernel's streaming stores before its results are read. */
void em__stream_fence(void);
/* Frees the cached free blocks (em_shutdown). */
void em__blocks_shutdown(void);
void em__retain(em_tensor *t);
void em__unref(em_tensor *t);

/* ---- debug mode (tensor.c): freed tensors kept, poisoned, and refused ---- */
/* Why the last reference of a tensor went: what the debug mode's message says. */
typedef enum em_release_cause {
    EM_FREED_OTHER = 1, /* a reference Ember held (a tape, a graph, a view) */
    EM_FREED_SCOPE,     /* its scope ended */
    EM_FREED_RELEASE,   /* em_release */
    EM_FREED_SHUTDOWN,  /* em_shutdown */
    EM_FREED_VARIABLES, /* em_variables_release (it was a variable) */
} em_release_cause;
/* The cause the calling thread is releasing for; the setter returns the one
 * before it, to be put back. */
extern _Thread_local uint8_t em__release_cause;
static inline uint8_t em__releasing(em_release_cause why) {
    uint8_t before = em__release_cause;
    em__release_cause = (uint8_t)why;
    return before;
}
/* Whether debug mode is on; hidden: read without the GOT on every op. */
extern atomic_bool em__debug __attribute__((visibility("hidden")));
/* The per-op profile is on (lib/profile.c, em_profile_start). */
extern atomic_bool em__profiling __attribute__((visibility("hidden")));
bool em__released_report(const em_tensor *t, const char *op, int input);
/* In debug mode, whether t was freed, with an error naming op, the input
 * (-1: "the tensor"), why it was freed and the op that made it. Always false
 * (and t not read) when debug mode is off. */
static inline bool em__released(const em_tensor *t, const char *op, int input) {
    return atomic_load_explicit(&em__debug, memory_order_relaxed) && em__released_report(t, op, input);
}
bool em__is_contiguous(const em_tensor *t);
/* "[3,5]" of a tensor into buf; a symbolic size (below) shows as "?". */
const char *em__tshape(const em_tensor *t, char *buf, size_t size);

/* ---- symbolic sizes (shape-only tracing) ----
 * A placeholder's unknown dimension (TF's None: the batch size) is traced
 * shape-only as the stand-in size EM_SYM_SIZE, a prime times a number
 * with many divisors. Shape rules stay plain integer arithmetic, and a size
 * derived from the batch by the shape rules a trace needs (split into equal
 * parts, reshape with -1, slicing, concatenation, broadcasting) is still
 * near a multiple of the prime: r/EM_SYM_PARTS of the batch plus an offset,
 * where r * prime is the nearest multiple (a slice from row 1 to the end:
 * the batch - 1; a concat with a fixed block of k rows: the batch + k). An
 * offset is recognized up to EM_SYM_OFFSET_MAX, on sizes from 1/16 of the
 * batch to 16 batches. The memory plan re-derives such sizes (and
 * attributes holding them) for the fed batch, re-running every shape rule
 * on real sizes, so a condition the trace could not know (an odd batch
 * split in two) is checked when the graph runs. Users never see the
 * stand-in: em_dim, em_numel and em_tensor_shape give -1, messages and
 * exported graphs "?". A fixed size is mistaken for a symbolic one only if
 * it is a multiple of the prime, or within EM_SYM_OFFSET_MAX of one and
 * above a million (1.3% of those). The stand-in (about 1.7e7; saved graphs
 * record it) is small enough that a [batch, batch, 500] tensor's element
 * count still fits. */
#define EM_SYM_PRIME 10007 /* divides no power of 2 or of 10: real sizes are rarely its multiples */
#define EM_SYM_PARTS 1680  /* 16 * 3 * 5 * 7: splits into 2 to 8, 10, 12, 14, 15, 16, 20, ... parts */
#define EM_SYM_SIZE ((int64_t)EM_SYM_PRIME * EM_SYM_PARTS)
#define EM_SYM_OFFSET_MAX 64
/* Whether size derives from the stand-in: then size = r * EM_SYM_PRIME + *offset. */
static inline bool em__symbolic_parts(int64_t size, int64_t *r, int64_t *offset) {
    if (size <= 0 || size > INT64_MAX - EM_SYM_OFFSET_MAX) return false; /* far above any stand-in */
    int64_t q = (size + EM_SYM_OFFSET_MAX) / EM_SYM_PRIME, k = size - q * EM_SYM_PRIME;
    if (q < 1 || k > EM_SYM_OFFSET_MAX) return false;
    if (k && (q < EM_SYM_PARTS / 16 || q > EM_SYM_PARTS * 16)) return false;
    *r = q;
    *offset = k;
    return true;
}
static inline bool em__symbolic(int64_t size) {
    int64_t r, offset;
    return em__symbolic_parts(size, &r, &offset);
}
/* Whether t's dimension size `size` is symbolic: t has no data (a
 * shape-only trace) and the size derives from the stand-in. */
static inline bool em__symbolic_in(const em_tensor *t, int64_t size) { return !t->data && em__symbolic(size); }
/* Whether t's element count is unknown: one of its sizes is symbolic. */
bool em__numel_symbolic(const em_tensor *t);
/* A size of t for a message: "?" when symbolic, else the number. */
const char *em__size_str(const em_tensor *t, int64_t size, char *buf, size_t bufsize);
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
static inline bool em__is_float(em_dtype d) { return d == EM_F32 || d == EM_F64 || d == EM_BF16 || d == EM_F16; }
/* bfloat16 or float16: stored in 16 bits, computed in float32 (lib/dtype_convert.h). */
static inline bool em__is_narrow(em_dtype d) { return d == EM_BF16 || d == EM_F16; }

/* ---- errors (error.c) ---- */
/* Sets the thread's error, replacing a pending one: a call that fails on its
 * own arguments owns the message (include/ember/core.h, em_last_error). */
void em__error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A call given a NULL tensor or handle (most likely the result of an earlier
 * failed call): sets the error only when none is pending, so the root cause
 * of an expression stays. */
void em__error_null(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Returns NULL after reporting "op: an input is NULL" if no error is pending. */
void *em__null_input(const char *op);
/* Errors reported on this thread so far, kept or not: a caller that sees the
 * count unchanged after a callee failed reports the failure itself. */
uint64_t em__error_count(void);

/* Hot loops are compiled for AVX-512 (x86-64-v4: F, BW, DQ, VL, whose 16-bit
 * packs and masked moves the bfloat16 and float16 loops need), AVX2 (x86-64-v3,
 * which brings FMA and F16C with it: every AVX2 CPU in use has them) and plain
 * x86-64, and the loader picks the best the CPU has (GCC's function
 * multi-versioning): one portable library that still uses the wide vectors. Not under the sanitizers: their
 * runtimes are not ready when the loader runs the resolvers (ThreadSanitizer
 * crashes there).
 * EM_HOT_MATH is EM_HOT for the loops of the elementwise formulas, which may
 * also fuse a * b + c into one FMA where the clone has it (-std=c11 forbids it
 * elsewhere): fast_math.h's polynomials are chains of those, and compute-bound
 * without (exp 17% slower). The plain x86-64 clone has no FMA and keeps separate
 * roundings, so its results may differ from the others' in the last bit. Not for
 * compensated sums, whose error terms a fused a * b + c would lose. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__) && \
    !defined(__SANITIZE_THREAD__)
#define EM_HOT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define EM_HOT_MATH \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"), optimize("fp-contract=fast")))
#else
#define EM_HOT
#define EM_HOT_MATH
#endif

/* ---- the thread's device (scope.c; device.c's scopes and placement set it) ---- */
/* The logical CPU devices, [0, em__ncpu) (em_set_cpu_devices). */
extern atomic_int em__ncpu;
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
/* Runs the code after it, to the end of the enclosing block, with dev as the
 * scoped device (what ops allocate lives there), and puts the caller's scope
 * back however the block is left (return, break, goto): the one way device
 * scopes are entered and left inside lib/. */
#define EM_ON_DEVICE(dev) \
    int em__on_device_saved __attribute__((cleanup(em__device_restore), unused)) = em__device_enter(dev)
static inline int em__device_enter(int dev) {
    int saved = em__scoped_device;
    em__scoped_device = dev;
    return saved;
}
static inline void em__device_restore(const int *saved) { em__scoped_device = *saved; }

/* ---- per-thread state (scope.c) ---- */
typedef struct em_scope {
    em_tensor **items;
    int64_t count, cap;
} em_scope;

struct em_tape;
struct em_trace;

#define EM_AUTOCAST_MAX_DEPTH 64
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
    struct em_graph *trace;   /* lib/graph/trace.c: the graph being traced, if any */
    uint8_t autocast[EM_AUTOCAST_MAX_DEPTH]; /* op.c: em_autocast_begin's dtypes, innermost last */
    int nautocast;
} em_thread;

em_thread *em__thread(void);

/* ---- threads (tensor.c) ---- */
/* Runs fn(ctx, begin, end) over [0, n) in fixed chunks of `grain`, on the
 * thread pool when n is large. The chunking never depends on the thread count,
 * so results are identical for any number of threads. */
typedef void (*em_range_fn)(void *ctx, int64_t begin, int64_t end);
void em__parallel_for(int64_t n, int64_t grain, em_range_fn fn, void *ctx);

/* ---- hooks: what the layers above do at layer 0's events ----
 * Each is set once, at load, by the file that defines it (a constructor),
 * and is NULL when that file is not linked in: layer 0 never calls up by
 * name. Checked by test/layers.sh. */
typedef struct em_hooks {
    /* em_shutdown, in this order, before the scopes are cleared */
    void (*trace_shutdown)(em_thread *t);     /* lib/graph/trace.c */
    void (*tapes_shutdown)(em_thread *t);     /* tape.c */
    void (*variables_shutdown)(em_thread *t); /* variable.c */
    void (*device_scopes_reset)(void);        /* device.c */
    /* a value read back to the host (em_data, em_item ...): the tracer notes it */
    void (*host_read)(const em_tensor *t); /* lib/graph/trace.c */
    /* the innermost name scope, "scope/sub" (variable.c) */
    const char *(*name_scope)(void);
    /* the name of op id `op`, for the debug mode's messages (op.c) */
    const char *(*op_name)(int op);
    /* A graph binds its variables by name when it runs (variable.c): this
     * thread's variable of that full name (NULL: none), and a count that
     * changes whenever any thread creates or releases a variable. */
    em_tensor *(*find_variable)(const char *name);
    uint64_t (*variables_generation)(void);
} em_hooks;
extern em_hooks em__hooks;
/* The innermost name scope ("" without one). */
static inline const char *em__name_scope(void) { return em__hooks.name_scope ? em__hooks.name_scope() : ""; }

/* ---- scopes (scope.c) ---- */
/* A NEW reference to t in the current scope (for gradient rules passing a
 * gradient through unchanged). */
em_tensor *em__ref(em_tensor *t);

#endif
