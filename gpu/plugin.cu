// The plug-in's face: its one exported symbol, em_gpu_plugin, the entry the
// library finds with dlsym when it loads libember_cuda.so (lib/gpu.h,
// lib/gpu_loader.c). The entry checks the library's ABI version and op
// count, keeps the library's table of functions (errors, dtype names and
// sizes, element writes: the plug-in calls nothing of the library's by
// symbol), and returns the plug-in's table: the runtime's functions and the
// GPU kernel of every op, indexed by op id, built here from the same
// lib/ops/ops.def lines as the library's op ids.
//
// Shutdown (em_shutdown_process, once no GPU memory is in use): the cuBLAS
// handles and NCCL communicators go first, while the streams they use
// exist; then the streams are synchronized and destroyed; then every cached
// block goes back to CUDA.
#include "common.cuh"

#include <stdarg.h>
#include <stdio.h>

const em_gpu_host *em_gpu_host_fns;

void em_gpu_report(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    em_gpu_host_fns->vreport(fmt, ap);
    va_end(ap);
}

namespace {

// Op id -> its GPU kernel (NULL for an op without one), from lib/ops/ops.def.
#define KERNEL_GPU(name) em_gpu_op_##name,
#define KERNEL_VIEW_OR_GPU(name) em_gpu_op_##name,
#define KERNEL_HOST(name) nullptr,
#define KERNEL_VIEW(name) nullptr,
#define EM_FAMILY(family)
#define EM_OP(ID, name, arity, dtypes, grad, kernel, ...) KERNEL_##kernel(name)
const em_gpu_kernel_fn kernels[] = {
#include "ops/ops.def"
};
#undef EM_OP
// Op id -> name: the library compares them with its own rows.
#define EM_OP(ID, name, ...) #name,
const char *const names[] = {
#include "ops/ops.def"
};
#undef EM_OP
#undef EM_FAMILY
static_assert(sizeof kernels / sizeof kernels[0] == EM_OP_BUILTIN_COUNT, "a kernel entry per op id");
static_assert(sizeof names / sizeof names[0] == EM_OP_BUILTIN_COUNT, "a name per op id");

#ifdef EMBER_NCCL
#define WITH_NCCL ", NCCL"
#else
#define WITH_NCCL ", no NCCL"
#endif
#ifndef EMBER_GPU_ARCH
#define EMBER_GPU_ARCH "?"
#endif

int backend_count(char *why, size_t size) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        cudaGetLastError();
        snprintf(why, size, "%s", cudaGetErrorString(e));
        return 0;
    }
    if (n == 0) snprintf(why, size, "CUDA reports no device");
    return n < EM_GPU_MAX ? n : EM_GPU_MAX;
}

void backend_shutdown(void) {
    em_gpu_blas_shutdown();
    em_gpu_collectives_shutdown();
    em_gpu_streams_shutdown();
    em_gpu_allocator_shutdown();
}

void *backend_stream(int ordinal) { return em_gpu_stream(ordinal); }

char description[96];

em_gpu_backend make_backend() {
    snprintf(description, sizeof description, "CUDA %d.%d runtime, %s%s", CUDART_VERSION / 1000,
             CUDART_VERSION % 1000 / 10, EMBER_GPU_ARCH, WITH_NCCL);
    em_gpu_backend b = {};
    b.abi_version = EM_GPU_ABI_VERSION;
    b.op_count = EM_OP_BUILTIN_COUNT;
    b.op_names = names;
    b.kernels = kernels;
    b.description = description;
    b.count = backend_count;
    b.configure = em_gpu_configure;
    b.alloc = em_gpu_alloc;
    b.free = em_gpu_free;
    b.memory = em_gpu_memory;
    b.copy = em_gpu_copy;
    b.copy_strided = em_gpu_copy_strided;
    b.fill = em_gpu_fill;
    b.sync = em_gpu_sync;
    b.capture_begin = em_gpu_capture_begin;
    b.capture_end = em_gpu_capture_end;
    b.graph_launch = em_gpu_graph_launch;
    b.graph_free = em_gpu_graph_free;
    b.update = em_gpu_update;
    b.all_reduce = em_gpu_all_reduce;
    b.shutdown = backend_shutdown;
    b.stream = backend_stream;
    return b;
}

const em_gpu_backend backend = make_backend();

} // namespace

extern "C" __attribute__((visibility("default"))) const em_gpu_backend *em_gpu_plugin(const em_gpu_host *host,
                                                                                         char *why, size_t size) {
    if (!host || host->abi_version != EM_GPU_ABI_VERSION) {
        snprintf(why, size, "the library has plug-in ABI version %d, but the plug-in was built for version %d",
                 host ? host->abi_version : -1, EM_GPU_ABI_VERSION);
        return nullptr;
    }
    if (host->op_count != EM_OP_BUILTIN_COUNT) {
        snprintf(why, size, "the library has %d ops, but the plug-in was built for %d", host->op_count,
                 EM_OP_BUILTIN_COUNT);
        return nullptr;
    }
    em_gpu_host_fns = host;
    return &backend;
}

// The entry has the type the library calls it with.
[[maybe_unused]] static em_gpu_plugin_fn *const entry_type_check = em_gpu_plugin;
