/* Devices, device scopes and placement (the lecture's "Use GPU" and
 * "Parallel and Distributed training").
 *
 * Devices are named as in TensorFlow: "/cpu:0", "/device:CPU:1", "/gpu:0",
 * "/device:GPU:1". A process has one CPU device, "/cpu:0", until
 * em_set_cpu_devices makes several logical ones, each with threads of its
 * own: independent parts of a traced graph placed on different devices then
 * run at the same time (data parallelism: one replica per device; model
 * parallelism: layers on different devices).
 *
 * Placement: a new tensor, and an op's output, go on the device of the
 * innermost device scope of the thread; outside any scope an op runs on its
 * inputs' device (creation functions on "/cpu:0"). Inside a scope, inputs that
 * live elsewhere are copied to the scope's device automatically (a
 * copy_to_device op: the tape differentiates it, the tracer records it, and
 * the placement log shows it). Outside a scope, inputs on two devices are an
 * error naming both, unless soft placement is on; then they are copied to the
 * first input's device and the copy is logged.
 *
 * Gradients are computed on the device of the op they differentiate; a
 * variable's gradient ends on the variable's device. Optimizers update each
 * variable where it lives. */
#ifndef EMBER_DEVICE_H
#define EMBER_DEVICE_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define EM_MAX_DEVICES 64

/* Makes `count` (at most 32) logical CPU devices "/cpu:0" .. "/cpu:<count-1>", each running
 * its kernels on `threads_each` threads (0: the cores shared out evenly, at
 * least one each). Devices can be added at any time; removing some needs no
 * tensor alive (em_live_tensors() == 0). 0, or -1 with an error. */
int em_set_cpu_devices(int count, int threads_each);
/* Number of devices, and the canonical name of device i ("/cpu:1"; the CPUs
 * come first, then "/gpu:0" ...); NULL with an error when i is out of range.
 * BORROWED.
 *
 * GPUs come from the CUDA plug-in, libember_cuda.so, which is loaded the
 * first time a GPU is listed (these two functions) or asked for by name
 * ("/gpu:0" in any function); a program that does neither never loads it.
 * It is looked for beside libember.so (or the program linked with
 * libember.a), in the install directory and on the dynamic loader's search
 * path, and loaded where the NVIDIA driver is; EMBER_CUDA_LIBRARY names the
 * file instead. Without it, a driver or a GPU, listing gives the CPU devices
 * with no error, and asking for a GPU is an error that says why (what was
 * looked for, and where). em_shutdown_process unloads it. */
int em_device_count(void);
const char *em_device_name(int i);

/* Opens a device scope on this thread (nestable): new tensors and ops go on
 * `name`'s device. An unknown or absent device is an error that lists the
 * devices there are, unless soft placement is on: then the scope uses
 * "/cpu:0" and the fallback is logged. */
int em_device_begin(const char *name);
/* Closes the innermost device scope; -1 if none is open. */
int em_device_end(void);
/* The innermost scope's device, "" when no scope is open. BORROWED. */
const char *em_device_current(void);

/* The device t lives on ("/cpu:0" ...). BORROWED; NULL for a NULL t. */
const char *em_tensor_device(const em_tensor *t);
/* A copy of x on `device`. NEW. Differentiable (the gradient is copied back)
 * and traced like any op. */
em_tensor *em_to_device(em_tensor *x, const char *device);

/* ---- GPU memory (the lecture's gpu_options) ----
 * Each GPU's memory comes from a caching allocator: no cudaMalloc per op once
 * training is in its steady state. allow_growth takes memory from the device
 * as needed; otherwise `fraction` of it is reserved at first use. Call before
 * the first GPU tensor (it does not load the CUDA plug-in: the settings are
 * kept for it). Out of memory is an error saying how much was asked and how
 * much is free. */
void em_set_gpu_memory(bool allow_growth, double fraction);
typedef struct em_device_memory {
    size_t in_use;       /* bytes held by tensors now */
    size_t peak;         /* the most held at once */
    size_t reserved;     /* bytes taken from the device, cached ones included */
    size_t device_free;  /* the device's free memory */
    size_t device_total;
    int64_t allocations; /* cudaMalloc calls so far */
} em_device_memory;
/* A GPU's memory statistics; -1 with an error for a CPU device (see
 * em_host_memory_stats). */
int em_device_memory_stats(const char *device, em_device_memory *out);
/* The host memory that tensors and kernel scratch hold now, and the most they
 * held at once since the start or the last em_host_memory_reset_peak: bytes
 * as the allocator hands its blocks out (blocks it keeps cached for reuse
 * are not counted, nor are blocks of 8 KiB and less, which per-thread caches
 * hand out on every small op). What an op or a step needs is the peak around
 * it minus what was in use before. */
typedef struct em_host_memory {
    size_t in_use;
    size_t peak;
} em_host_memory;
em_host_memory em_host_memory_stats(void);
/* Starts a new peak from what is in use now. */
void em_host_memory_reset_peak(void);
/* Frees the large blocks the allocator keeps for reuse and returns their
 * bytes. It keeps them (so that a loop's large outputs reuse pages instead
 * of faulting in fresh ones) up to 512 MiB, and beyond that only while the
 * blocks in use and the kept ones stay within the most the process has held
 * in use at once, so caching never grows the process past its own peak;
 * after a large phase (loading, a big evaluation) this gives that memory
 * back and starts the mark again from what is in use now. em_shutdown does
 * the same. */
size_t em_host_memory_trim(void);
/* Waits for every op queued on the device (GPU ops run asynchronously;
 * reading a value waits by itself). An error a GPU kernel met is reported
 * here, naming the op. 0 at once for a CPU device. */
int em_device_sync(const char *device);

/* The all-reduce of synchronous data parallelism: n float tensors of one
 * shape and dtype, typically one per device, each replaced in place by
 * their mean. Across GPUs it runs NCCL's all-reduce when the build has NCCL,
 * else device copies. Not recorded on tapes. 0, or -1 with an error (and
 * nothing changed). */
int em_all_reduce_mean(int n, em_tensor *const *ts);

/* The memory of t on its device (a CUDA device pointer for a GPU tensor),
 * for calling other libraries (cuBLAS, your own kernels) beside Ember.
 * BORROWED, valid while t lives; NULL with an error for a strided view
 * (em_copy it first) or a placeholder. */
void *em_device_pointer(em_tensor *t);

/* Process-wide settings, as TensorFlow's session config. */
void em_set_soft_placement(bool on);
/* Writes one line per op run eagerly ("layer1/matmul: /cpu:1") and per
 * automatic copy to `out`, and a graph's nodes once per memory plan it makes
 * (its first run, and each new fetch set or batch size), not per run
 * ("graph: layer1/matmul_0: /cpu:1"); NULL turns the log off. */
void em_log_device_placement(FILE *out);

#ifdef __cplusplus
}
#endif
#endif
