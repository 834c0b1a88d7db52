/* Tensors, dtypes, shapes, ownership scopes, errors and threads. */
#ifndef EMBER_CORE_H
#define EMBER_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EMBER_VERSION_MAJOR 0
#define EMBER_VERSION_MINOR 1

typedef enum em_dtype {
    EM_F32,
    EM_F64,
    EM_I32,
    EM_I64,
    EM_U8,
    EM_BOOL,
    /* Append-only from here: checkpoints and saved graphs store the number. */
    EM_BF16, /* bfloat16: float32's range, 8 significant bits */
    EM_F16,  /* IEEE float16 (binary16) */
    EM_I8,   /* int8: quantized data */
    EM_I16,  /* int16 */
    EM_U16,  /* uint16: token ids of vocabularies up to 65536 */
    EM_DTYPE_COUNT
} em_dtype;

#define EM_MAX_DIMS 8

/* A shape by value. EM_SHAPE(10, 224, 224, 3) builds one, of 1 to EM_MAX_DIMS
 * sizes (more is a compile error naming EM_SHAPE); EM_SHAPE0 is a scalar. */
typedef struct em_shape {
    int ndim;
    int64_t dims[EM_MAX_DIMS];
} em_shape;

/* The number of arguments, 1 to 8. 9 to 64 arguments give `too_many`, a name
 * declared nowhere, so that the compiler's error says what is wrong (a plain
 * initializer would only warn of excess elements and take the ninth size
 * for the rank). */
#define EM__NARGS(too_many, ...)                                                                                  \
    EM__APPLY(EM__NARGS_, (__VA_ARGS__, EM__X8(too_many), EM__X8(too_many), EM__X8(too_many), EM__X8(too_many), \
                           EM__X8(too_many), EM__X8(too_many), EM__X8(too_many), 8, 7, 6, 5, 4, 3, 2, 1, 0))
#define EM__NARGS_(a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15, a16, \
                   a17, a18, a19, a20, a21, a22, a23, a24, a25, a26, a27, a28, a29, a30, a31, a32, \
                   a33, a34, a35, a36, a37, a38, a39, a40, a41, a42, a43, a44, a45, a46, a47, a48, \
                   a49, a50, a51, a52, a53, a54, a55, a56, a57, a58, a59, a60, a61, a62, a63, a64, n, ...) n
#define EM__X8(t) t, t, t, t, t, t, t, t
#define EM__APPLY(macro, args) macro args
#define EM_SHAPE(...) \
    ((em_shape){.ndim = EM__NARGS(EM_SHAPE_takes_at_most_8_dimensions, __VA_ARGS__), .dims = {__VA_ARGS__}})
#define EM_SHAPE0 ((em_shape){.ndim = 0})
/* A list of axes for reductions, transposes, squeeze: em_sum(x, EM_AXES(0, 1), false).
 * EM_ALL_AXES reduces over every axis. */
#define EM_AXES(...) EM__NARGS(EM_AXES_takes_at_most_8_axes, __VA_ARGS__), ((const int[]){__VA_ARGS__})
#define EM_ALL_AXES 0, NULL

typedef struct em_tensor em_tensor;

/* ---- dtypes ---- */
const char *em_dtype_name(em_dtype dtype); /* "float32", ...; "invalid" if out of range */
size_t em_dtype_size(em_dtype dtype);      /* bytes per element; 0 if out of range */

/* ---- creation (all NEW) ---- */
/* Copies numel(shape) elements of `dtype` from data. */
em_tensor *em_tensor_from(em_dtype dtype, em_shape shape, const void *data);
em_tensor *em_zeros(em_dtype dtype, em_shape shape);
em_tensor *em_ones(em_dtype dtype, em_shape shape);
em_tensor *em_fill(em_dtype dtype, em_shape shape, double value);
em_tensor *em_scalar(em_dtype dtype, double value);
/* [start, stop) by step, like numpy.arange. */
em_tensor *em_arange(em_dtype dtype, double start, double stop, double step);
/* A new tensor with the same dtype and shape as x, every element `value`. */
em_tensor *em_fill_like(em_tensor *x, double value);
/* A contiguous copy (also a way to detach from a variable's storage). */
em_tensor *em_copy(em_tensor *x);

/* ---- access ---- */
em_dtype em_tensor_dtype(const em_tensor *t);
/* In a shape-only trace, a size that derives from a placeholder's unknown
 * dimension (the batch) is not known until the graph runs: -1 here, "?" in
 * messages (em_dim, em_numel and em_tensor_shape alike). */
em_shape em_tensor_shape(const em_tensor *t);
int em_ndim(const em_tensor *t);
/* Size of dimension `axis` (negative counts from the end); -1 on a bad axis. */
int64_t em_dim(const em_tensor *t, int axis);
int64_t em_numel(const em_tensor *t);
/* BORROWED read-only pointer to the elements in row-major order. A strided
 * view is made contiguous first (its values do not change). NULL on error. */
const void *em_data(em_tensor *t);
/* Copies the elements, row-major, into dst which holds `bytes` bytes. */
int em_copy_out(em_tensor *t, void *dst, size_t bytes);
/* The value of a one-element tensor, converted to double. NAN and an error otherwise. */
double em_item(em_tensor *t);
/* Reads element at a multi-index (ndim entries) as double. */
double em_get(em_tensor *t, const int64_t *index);
/* NumPy-like text: "tensor([[1., 2.],\n        [3., 4.]], dtype=float32)";
 * large tensors are elided with "...". Writes at most size bytes (NUL included)
 * and returns the length the whole text needs, like snprintf. */
int em_format(em_tensor *t, char *buf, size_t size);
int em_print(em_tensor *t, FILE *out);
/* "[3,5]" into buf; returns buf. */
const char *em_shape_str(em_shape shape, char *buf, size_t size);
/* The product of the sizes (1 for a scalar); -1 with an error when it overflows
 * int64 (tensor creation refuses such shapes too), a size is negative (the
 * unknown size -1 of a placeholder) or the rank is outside 0..EM_MAX_DIMS. */
int64_t em_shape_numel(em_shape shape);
bool em_shape_equal(em_shape a, em_shape b);

/* ---- ownership ----
 * Every new tensor belongs to the innermost open scope of its thread (a root
 * scope is always open) and is released when that scope ends, unless kept. */
void em_scope_begin(void);
/* Ends the innermost scope; fails (returns -1) if only the root scope is open. */
int em_scope_end(void);
/* Keeps t alive past its scope: the caller now holds a reference and must
 * call em_release(t). Returns t. */
em_tensor *em_keep(em_tensor *t);
/* Moves t to the scope enclosing the innermost one (a function returning a
 * result from its own scope). Returns t. */
em_tensor *em_escape(em_tensor *t);
/* Drops one reference em_keep gave. 0 (also for NULL); -1 with an error, and
 * nothing freed, for a tensor not kept (its scope owns it) or a variable
 * (the variable store owns it: em_variables_release). */
int em_release(em_tensor *t);
/* Tensors alive in this process (for leak checks). */
int64_t em_live_tensors(void);
/* Debug mode (also EMBER_DEBUG=1 in the environment): a freed tensor is
 * poisoned and kept for a while (the last 64 MiB freed, oldest reused
 * first), and an op or accessor given one fails with an error naming the
 * input, how it was freed and the op that made it, e.g. "add: input 0 was
 * released when its scope ended (made by matmul)", instead of reading freed
 * memory. A tensor freed longer ago is not recognised. Turning it off frees
 * what it kept. */
void em_set_debug(bool on);

/* ---- per-op profile ----
 * While it is on, the wall time of every kernel is added to its op's row:
 * eager calls, gradient ops and graph replays alike; a graph's fused chain of
 * pointwise ops is one row, "(fused pointwise chain)". Only the time inside
 * kernels counts (not dispatch, allocation or the tape), and a kernel that
 * runs another (a bfloat16 op's float32 kernel and its casts) counts once.
 * Kernels running at once on several threads each add their own time, so the
 * sum can exceed the wall time. GPU kernels are asynchronous: their rows hold
 * the launch. Off (the default), it costs a kernel one load and a branch.
 * EMBER_PROFILE=1 in the environment turns it on at start and prints the
 * table to stderr at exit. */
typedef struct {
    const char *op; /* the op's name (static) */
    int64_t calls;
    double seconds; /* summed over the calls */
} em_profile_row;
void em_profile_start(void);
void em_profile_stop(void);
/* Zeroes every row. */
void em_profile_reset(void);
/* The rows with at least one call, slowest first, into rows[0, max); returns
 * how many there are (which may exceed max), or -1 with an error. */
int em_profile_rows(em_profile_row *rows, int max);
/* Prints the table (op, calls, total ms, us per call, share of the summed
 * kernel time) to f. 0, or -1 with an error. */
int em_profile_print(FILE *f);

/* ---- errors (thread-local) ----
 * A failing call sets the message, replacing any earlier one: the call that
 * failed on its own arguments owns it, even when an earlier failure was
 * handled without em_clear_error. The exception makes expressions checkable
 * once: a call that fails because it was given NULL (a tensor or handle an
 * earlier call failed to make) keeps the pending message, so the root cause
 * of a chain like em_relu(em_add(em_matmul(a, b), c)) is what is reported. */
/* The message of the latest failure (as above) since em_clear_error, or NULL. */
const char *em_last_error(void);
void em_clear_error(void);

/* ---- threads and seeds ---- */
/* Threads used by large kernels and BLIS. Default: EM_NUM_THREADS from the
 * environment, else all cores. */
void em_set_num_threads(int n);
int em_num_threads(void);
/* Seeds this thread's random stream: the same seed gives the same numbers on
 * any thread count. */
void em_set_seed(uint64_t seed);

/* Frees this thread's scopes, tapes, variables and caches. Process-wide state
 * (the CUDA plug-in and its caches) is em_shutdown_process's. */
void em_shutdown(void);
/* The owner of the process-wide state: em_shutdown for the calling thread,
 * then the CUDA plug-in's cached GPU memory, cuBLAS handles and workspace,
 * NCCL communicators and streams are freed and the plug-in is unloaded (a
 * later GPU request loads it again). Call it last, once every other thread
 * that used Ember has called em_shutdown or ended and no tensor, variable or
 * graph lives on a GPU any more. 0; -1 with an error, freeing nothing of the
 * GPU's, while GPU memory is still in use. Without a loaded plug-in it is
 * em_shutdown. Registered ops (em_op_register) are not freed here: their
 * registry owns them until the process ends, as their handles must stay
 * valid. */
int em_shutdown_process(void);

#ifdef __cplusplus
}
#endif
#endif
