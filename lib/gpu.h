/* The interface between Ember's C library and its CUDA backend (gpu/).
 *
 * The backend is built when nvcc is found (make GPU=0 turns it off); the
 * library then calls these functions for tensors on "/gpu:N". Without the
 * backend, lib/device.c registers no GPU and none of these is called.
 *
 * The backend sees tensors as em_gpu_tensor (plain C, so CUDA's C++ compiler
 * reads it too): dtype, shape, strides in elements, and a device pointer.
 * Kernels run asynchronously on one stream per device; a failure inside a
 * kernel is reported at the next em__gpu_sync, naming the op that launched
 * it. Index arithmetic comes from the same header-only helpers the CPU
 * kernels use (broadcast.h, reduce_plan.h, conv_geometry.h, philox.h), so
 * the logic the CPU tests cover is the logic the GPU runs. */
#ifndef EMBER_GPU_H
#define EMBER_GPU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "op.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct em_gpu_tensor {
    int dtype; /* em_dtype */
    int ndim;
    int64_t numel;
    int64_t shape[EM_MAX_DIMS];
    int64_t strides[EM_MAX_DIMS]; /* in elements; any (broadcast views have 0) */
    void *data;                   /* device memory of the tensor's device */
} em_gpu_tensor;

/* One op call: the same attributes the CPU kernel gets (lib/ops/<family>.c
 * documents each op's use of them). */
typedef struct em_gpu_call {
    const char *name; /* the op's name, for error messages (an entry serves one op: nothing dispatches on it) */
    int n;
    const em_gpu_tensor *in;
    const em_attrs *a;
    int device; /* GPU ordinal */
} em_gpu_call;

/* An em_gpu_kernel_fn (lib/op.h) runs one op into out (contiguous,
 * allocated on the same device), on the device's stream. It returns 0, or -1
 * after reporting an error through em__gpu_report (out of device memory for
 * scratch, a launch failure). */

/* ---- the backend's functions (the gpu/ .cu files, extern "C") ---- */

/* GPUs usable by this process; 0 when there is no driver or device. Never fails. */
int em__gpu_count(void);
/* "NVIDIA H100 80GB HBM3 (sm_90, 79.1 GiB)" into buf. */
void em__gpu_describe(int ordinal, char *buf, size_t size);

/* Memory: a caching allocator per device (no cudaMalloc per op in steady
 * state). With allow_growth it takes memory from CUDA as needed; otherwise it
 * reserves `fraction` of the device's memory at first use and serves every
 * allocation from that. NULL on out of memory, after reporting how much was
 * asked and how much is free. */
void em__gpu_configure(bool allow_growth, double fraction);
void *em__gpu_alloc(int ordinal, size_t bytes);
void em__gpu_free(int ordinal, void *p);
typedef struct em_gpu_memory_stats {
    size_t in_use;      /* bytes handed out now */
    size_t peak;        /* most bytes handed out at once */
    size_t reserved;    /* bytes taken from CUDA (cached included) */
    size_t device_free; /* cudaMemGetInfo's free */
    size_t device_total;
    int64_t cuda_mallocs; /* calls to cudaMalloc so far */
} em_gpu_memory_stats;
int em__gpu_memory(int ordinal, em_gpu_memory_stats *out);

/* Copies `bytes` between host (device -1) and GPU memory, or between GPUs.
 * Ordered on the streams involved; a copy to the host waits for it. 0 or -1. */
int em__gpu_copy(void *dst, int dst_device, const void *src, int src_device, size_t bytes);
/* A strided tensor gathered into a contiguous one on the same GPU. */
int em__gpu_copy_strided(em_gpu_tensor *dst, const em_gpu_tensor *src, int ordinal);
/* Fills contiguous t with v. */
int em__gpu_fill(em_gpu_tensor *t, double v, int ordinal);
/* Waits for the device's stream; -1 with the first kernel error since the
 * last sync, naming the op that launched the failing kernel. */
int em__gpu_sync(int ordinal);

/* CUDA graphs: em_graph_run captures one run of a plan whose nodes are all
 * on one GPU, and replays the capture on later runs. */
typedef struct em_gpu_graph em_gpu_graph;
int em__gpu_capture_begin(int ordinal);
em_gpu_graph *em__gpu_capture_end(int ordinal); /* NULL when capture failed (the run is then replayed eagerly) */
int em__gpu_graph_launch(em_gpu_graph *g, int ordinal);
void em__gpu_graph_free(em_gpu_graph *g);

/* One optimizer step's update of a float variable in place, the same rule
 * as the CPU's: both call lib/optim_math.h's functions (TensorFlow 1's update
 * rules). The host computes the step's scalars. */
typedef enum {
    EM_UPDATE_SGD,
    EM_UPDATE_MOMENTUM,   /* slot 0: accumulator */
    EM_UPDATE_ADAGRAD,    /* slot 0: accumulator */
    EM_UPDATE_ADAGRAD_DA, /* slots: gradient sum, squared sum */
    EM_UPDATE_RMSPROP,    /* slots: mean square, momentum, mean (centered) */
    EM_UPDATE_ADAM,       /* slots: m, v (AdamW: keep < 1) */
} em_update_kind;
typedef struct em_update_coeffs {
    em_update_kind kind;
    double lr, momentum, rho1, epsilon, beta1c, beta2c, l1t, l2tlr, keep; /* rho1, beta*c: 1 - decay, 1 - beta* */
    bool nesterov, centered;
} em_update_coeffs;
/* var, grad and the slots: contiguous, same dtype and size, on `ordinal`. */
int em__gpu_update(const em_update_coeffs *u, em_gpu_tensor *var, const em_gpu_tensor *grad, em_gpu_tensor *const *slots,
                   int ordinal);

/* Reduces (sums, then scales by `scale`) n same-shape float tensors living on
 * n different GPUs, in place, with NCCL when available, else through copies. */
int em__gpu_all_reduce(int n, em_gpu_tensor *const *ts, const int *ordinals, double scale);

/* Frees every cached block, handle and stream (em_shutdown of the last user). */
void em__gpu_shutdown(void);

/* Each GPU row's entry, em__gpu_<name> (the kernel column GPU or
 * VIEW_OR_GPU of its .def line), defined in gpu/<family>.cu. */
#define EM_GPU_ENTRY_GPU(name) int em__gpu_##name(const em_gpu_call *c, em_gpu_tensor *out);
#define EM_GPU_ENTRY_VIEW_OR_GPU(name) EM_GPU_ENTRY_GPU(name)
#define EM_GPU_ENTRY_HOST(name)
#define EM_GPU_ENTRY_VIEW(name)
#define EM_FAMILY(family)
#define EM_OP(ID, name, arity, dtypes, grad, kernel, ...) EM_GPU_ENTRY_##kernel(name)
#include "ops/ops.def"
#undef EM_OP
#undef EM_FAMILY

/* ---- provided by the C library, for the backend ---- */
/* Sets the thread's error (printf-style); the backend's only way to fail. */
void em__gpu_report(const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 1, 2)))
#endif
    ;

#ifdef __cplusplus
}
#endif

/* The backend as the C library calls it: lib/device.c points em__gpu at the
 * functions above when built with the backend, and at nothing otherwise (no
 * GPU device is then registered, so no caller reaches it). */
typedef struct em_gpu_backend {
    int (*count)(void);
    void (*describe)(int ordinal, char *buf, size_t size);
    void (*configure)(bool allow_growth, double fraction);
    void *(*alloc)(int ordinal, size_t bytes);
    void (*free)(int ordinal, void *p);
    int (*memory)(int ordinal, em_gpu_memory_stats *out);
    int (*copy)(void *dst, int dst_device, const void *src, int src_device, size_t bytes);
    int (*copy_strided)(em_gpu_tensor *dst, const em_gpu_tensor *src, int ordinal);
    int (*fill)(em_gpu_tensor *t, double v, int ordinal);
    int (*sync)(int ordinal);
    int (*capture_begin)(int ordinal);
    em_gpu_graph *(*capture_end)(int ordinal);
    int (*graph_launch)(em_gpu_graph *g, int ordinal);
    void (*graph_free)(em_gpu_graph *g);
    int (*update)(const em_update_coeffs *u, em_gpu_tensor *var, const em_gpu_tensor *grad,
                  em_gpu_tensor *const *slots, int ordinal);
    int (*all_reduce)(int n, em_gpu_tensor *const *ts, const int *ordinals, double scale);
    void (*shutdown)(void);
} em_gpu_backend;
extern const em_gpu_backend *const em__gpu;

#endif
