/* The interface between Ember's C library and its CUDA backend, the plug-in
 * libember_cuda.so (gpu/): the only file both sides include.
 *
 * The library links no CUDA library. The plug-in is loaded with dlopen the
 * first time a GPU device is asked for or listed (lib/gpu_loader.c), and the
 * two sides talk only through the function tables below, passed both ways at
 * load: the library hands the plug-in an em_gpu_host (what the plug-in may
 * call back: errors, dtype names and sizes, element writes), and the plug-in's
 * entry function returns its em_gpu_backend (the runtime functions and one GPU
 * kernel per op id). Neither side looks up the other's symbols: the one dlsym
 * is of the entry function, so a program linked with libember.a works as one
 * linked with libember.so, without -rdynamic.
 *
 * Versions: EM_GPU_ABI_VERSION numbers the layout of these structures and the
 * meaning of their functions. Each side checks the other's number, the op
 * count and the op names (ids are positions in lib/ops/ops.def, so a plug-in
 * built from another op list would run the wrong kernels): a mismatch is an
 * error that names both, and the plug-in is not used. Bump the version when
 * anything here changes; abi_version stays the first member of both tables.
 *
 * The backend sees tensors as em_gpu_tensor (plain C, so CUDA's C++ compiler
 * reads it too): dtype, shape, strides in elements, and a device pointer.
 * Kernels run asynchronously on one stream per device; a failure inside a
 * kernel is reported at the next sync, naming the op that launched it. Index
 * arithmetic comes from the same header-only helpers the CPU kernels use
 * (broadcast.h, reduce_plan.h, conv_geometry.h, philox.h), so the logic the
 * CPU tests cover is the logic the GPU runs. */
#ifndef EMBER_GPU_H
#define EMBER_GPU_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "op.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever em_gpu_host, em_gpu_backend or the types they pass change. */
#define EM_GPU_ABI_VERSION 2
/* The plug-in's one exported symbol, an em_gpu_plugin_fn. */
#define EM_GPU_PLUGIN_ENTRY "em_gpu_plugin"
/* The plug-in's file name; EMBER_CUDA_LIBRARY overrides where it is looked for. */
#define EM_GPU_PLUGIN_NAME "libember_cuda.so"

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
 * after reporting an error through the host's report (out of device memory
 * for scratch, a launch failure). */

typedef struct em_gpu_memory_stats {
    size_t in_use;      /* bytes handed out now */
    size_t peak;        /* most bytes handed out at once */
    size_t reserved;    /* bytes taken from CUDA (cached included) */
    size_t device_free; /* cudaMemGetInfo's free */
    size_t device_total;
    int64_t cuda_mallocs; /* calls to cudaMalloc so far */
} em_gpu_memory_stats;

/* A captured CUDA graph (the plug-in's own type). */
typedef struct em_gpu_graph em_gpu_graph;

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

/* ---- what the library hands the plug-in (lib/gpu_loader.c fills it) ---- */
typedef struct em_gpu_host {
    int abi_version; /* EM_GPU_ABI_VERSION of the library; first, always */
    int op_count;    /* EM_OP_BUILTIN_COUNT of the library */
    /* Sets the calling thread's error (printf-style); the plug-in's only way to fail. */
    void (*vreport)(const char *fmt, va_list ap);
    /* Writes value as one element of dtype at p, converting as the CPU does. */
    void (*write)(void *p, em_dtype dtype, double value);
    const char *(*dtype_name)(em_dtype dtype);
    size_t (*dtype_size)(em_dtype dtype);
} em_gpu_host;

/* ---- what the plug-in returns ---- */
typedef struct em_gpu_backend {
    int abi_version; /* EM_GPU_ABI_VERSION the plug-in was built with; first, always */
    int op_count;    /* entries in op_names and kernels */
    const char *const *op_names;     /* op id -> name, as in the plug-in's lib/ops/ops.def */
    const em_gpu_kernel_fn *kernels; /* op id -> the op's GPU kernel; NULL for an op without one */
    const char *description;         /* what it was built with: "CUDA 13.0, sm_90, NCCL" */

    /* GPUs usable by this process; 0 when there is no driver or device, with
     * the reason in why. Never fails otherwise. */
    int (*count)(char *why, size_t size);

    /* Memory: a caching allocator per device (no cudaMalloc per op in steady
     * state). With allow_growth it takes memory from CUDA as needed;
     * otherwise it reserves `fraction` of the device's memory at first use
     * and serves every allocation from that. alloc returns NULL on out of
     * memory, after reporting how much was asked and how much is free. */
    void (*configure)(bool allow_growth, double fraction);
    void *(*alloc)(int ordinal, size_t bytes);
    void (*free)(int ordinal, void *p);
    int (*memory)(int ordinal, em_gpu_memory_stats *out);

    /* Copies `bytes` between host (device -1) and GPU memory, or between
     * GPUs. Ordered on the streams involved; a copy to the host waits for it.
     * 0 or -1. */
    int (*copy)(void *dst, int dst_device, const void *src, int src_device, size_t bytes);
    /* A strided tensor gathered into a contiguous one on the same GPU. */
    int (*copy_strided)(em_gpu_tensor *dst, const em_gpu_tensor *src, int ordinal);
    /* Fills contiguous t with v. */
    int (*fill)(em_gpu_tensor *t, double v, int ordinal);
    /* Waits for the device's stream; -1 with the first kernel error since
     * the last sync, naming the op that launched the failing kernel. */
    int (*sync)(int ordinal);

    /* CUDA graphs: em_graph_run captures one run of a plan whose nodes are
     * all on one GPU, and replays the capture on later runs. capture_end
     * returns NULL when capture failed (the run is then replayed eagerly). */
    int (*capture_begin)(int ordinal);
    em_gpu_graph *(*capture_end)(int ordinal);
    int (*graph_launch)(em_gpu_graph *g, int ordinal);
    void (*graph_free)(em_gpu_graph *g);

    /* var, grad and the slots: contiguous, same dtype and size, on `ordinal`. */
    int (*update)(const em_update_coeffs *u, em_gpu_tensor *var, const em_gpu_tensor *grad,
                  em_gpu_tensor *const *slots, int ordinal);
    /* Reduces (sums, then scales by `scale`) n same-shape float tensors
     * living on n different GPUs, in place, with NCCL when available, else
     * through copies. */
    int (*all_reduce)(int n, em_gpu_tensor *const *ts, const int *ordinals, double scale);

    /* Frees every cached block, cuBLAS handle, NCCL communicator and stream.
     * Called by em_shutdown_process only, when no GPU memory is in use. */
    void (*shutdown)(void);
    /* The device's stream (a cudaStream_t), on which registered ops' GPU kernels launch; NULL with an error. */
    void *(*stream)(int ordinal);
} em_gpu_backend;

/* The plug-in's entry: checks host's version and op count, keeps host, and
 * returns its table (static, valid until it is unloaded); NULL with the reason
 * in why when it cannot serve this library. */
typedef const em_gpu_backend *em_gpu_plugin_fn(const em_gpu_host *host, char *why, size_t why_size);

#ifdef __cplusplus
}
#endif

#ifndef __cplusplus
/* ---- the library's side (lib/gpu_loader.c) ---- */

/* The loaded plug-in's table, NULL until a GPU was asked for or listed and
 * the plug-in loaded. Every tensor on a GPU was made after it was set, so code
 * handling one calls through it directly. */
extern const em_gpu_backend *em__gpu;

/* Loads the plug-in if that was not tried yet (a GPU is being asked for or
 * listed) and returns how many GPUs it sees: 0 when it is absent, mismatched,
 * or finds no GPU, without an error (em__gpu_unavailable says why). */
int em__gpu_load(void);
/* GPUs of the loaded plug-in, without loading it (0 before a load). */
int em__gpu_loaded_count(void);
/* Why there is no GPU: the plug-in's path and dlopen's message, the version
 * mismatch, or CUDA's reason; "" when GPUs are there or no load was tried. */
const char *em__gpu_unavailable(void);
/* The GPU kernel the plug-in gives op, or NULL (no plug-in, or none for it). */
em_gpu_kernel_fn em__gpu_kernel(em_op op);
/* em_set_gpu_memory's settings, kept for a plug-in loaded later. */
void em__gpu_configure(bool allow_growth, double fraction);
/* em_shutdown_process's part: -1 with an error while GPU memory is in use;
 * else frees the plug-in's process-wide state (its shutdown), unloads it and
 * forgets the load, so that a later GPU request loads it again. */
int em__gpu_unload(void);
#endif

#endif
