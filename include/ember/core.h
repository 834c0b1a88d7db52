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
    EM_DTYPE_COUNT
} em_dtype;

#define EM_MAX_DIMS 8

/* A shape by value. EM_SHAPE(10, 224, 224, 3) builds one; EM_SHAPE0 is a scalar. */
typedef struct em_shape {
    int ndim;
    int64_t dims[EM_MAX_DIMS];
} em_shape;

#define EM__NARGS(...) EM__NARGS_(__VA_ARGS__, 8, 7, 6, 5, 4, 3, 2, 1, 0)
#define EM__NARGS_(a1, a2, a3, a4, a5, a6, a7, a8, n, ...) n
#define EM_SHAPE(...) ((em_shape){.ndim = EM__NARGS(__VA_ARGS__), .dims = {__VA_ARGS__}})
#define EM_SHAPE0 ((em_shape){.ndim = 0})
/* A list of axes for reductions, transposes, squeeze: em_sum(x, EM_AXES(0, 1), false).
 * EM_ALL_AXES reduces over every axis. */
#define EM_AXES(...) EM__NARGS(__VA_ARGS__), ((const int[]){__VA_ARGS__})
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
void em_release(em_tensor *t);
/* Tensors alive in this process (for leak checks). */
int64_t em_live_tensors(void);

/* ---- errors (thread-local) ---- */
/* The message of the first error since the last em_clear_error, or NULL. */
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
 * em_shutdown. */
int em_shutdown_process(void);

#ifdef __cplusplus
}
#endif
#endif
