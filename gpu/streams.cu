// Streams, errors and copies: the per-device stream and its error
// bookkeeping, synchronization, copies (host, device, between GPUs), strided
// gathers and fills.
//
// Every op of a device runs on that device's one stream, so ops, copies and
// frees on a device are ordered without events. A launch records the op's
// name; a kernel that fails later is reported by the next synchronization
// (em_gpu_sync, or a copy to the host), naming the last op launched.
#include "broadcast.h"
#include "common.cuh"
#include "dtype_convert.h"

#include <string.h>

#include <atomic>
#include <mutex>

namespace {

struct stream_state {
    std::mutex mu;
    std::atomic<bool> has_stream{false};
    cudaStream_t stream = nullptr;
    std::atomic<const char *> last_op{nullptr};
    std::atomic<bool> capturing{false};
};

stream_state streams[EM_GPU_MAX];

// Errors a kernel meets while it runs: the context keeps them, and any later
// call returns them.
bool is_kernel_fault(cudaError_t e) {
    switch (e) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorAssert:
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorLaunchTimeout: return true;
    default: return false;
    }
}

// The error a synchronization met, naming the last op launched on the device.
int sync_error(int ordinal, cudaError_t e) {
    cudaGetLastError();
    const char *op = streams[ordinal].last_op.load(std::memory_order_relaxed);
    em_gpu_report("gpu: /gpu:%d: %s (reported at synchronization; the last op launched was '%s')", ordinal,
                  cudaGetErrorString(e), op ? op : "none");
    return -1;
}

template <class W> __global__ void fill_kernel(W *p, W v, int64_t n) { EM_GPU_LOOP(i, n) p[i] = v; }

// dst[i] = src[offset of element i]: a strided tensor gathered in row-major order.
template <class W> __global__ void gather_kernel(const __grid_constant__ em_bcast p, W *dst, const W *src, int64_t n) {
    EM_GPU_LOOP(i, n) dst[i] = src[em_bcast_offset(&p, 0, i)];
}

} // namespace

bool em_gpu_is_capture_error(cudaError_t e) {
    switch (e) {
    case cudaErrorStreamCaptureUnsupported:
    case cudaErrorStreamCaptureInvalidated:
    case cudaErrorStreamCaptureMerge:
    case cudaErrorStreamCaptureUnmatched:
    case cudaErrorStreamCaptureUnjoined:
    case cudaErrorStreamCaptureIsolation:
    case cudaErrorStreamCaptureImplicit:
    case cudaErrorStreamCaptureWrongThread: return true;
    default: return false;
    }
}

void em_gpu_set_capturing(int ordinal, bool on) {
    if (ordinal >= 0 && ordinal < EM_GPU_MAX) streams[ordinal].capturing.store(on);
}

bool em_gpu_bad_ordinal(const char *fn, int ordinal) {
    if (ordinal >= 0 && ordinal < EM_GPU_MAX) return false;
    em_gpu_report("%s: /gpu:%d is not a GPU this backend can use (at most %d)", fn, ordinal, EM_GPU_MAX);
    return true;
}

cudaStream_t em_gpu_stream(int ordinal) {
    if (em_gpu_bad_ordinal("gpu", ordinal)) return nullptr;
    cudaError_t e = cudaSetDevice(ordinal);
    if (e != cudaSuccess) {
        em_gpu_fail("gpu", "selecting the device", e);
        return nullptr;
    }
    stream_state &d = streams[ordinal];
    if (!d.has_stream.load(std::memory_order_acquire)) {
        std::lock_guard<std::mutex> lock(d.mu);
        if (!d.has_stream.load(std::memory_order_relaxed)) {
            // Non-blocking: work that other code queues on the legacy default
            // stream does not serialize with Ember's.
            e = cudaStreamCreateWithFlags(&d.stream, cudaStreamNonBlocking);
            if (e != cudaSuccess) {
                em_gpu_fail("gpu", "creating the device's stream", e);
                return nullptr;
            }
            d.has_stream.store(true, std::memory_order_release);
        }
    }
    return d.stream;
}

int em_gpu_launched(int ordinal, const char *op) {
    bool valid = ordinal >= 0 && ordinal < EM_GPU_MAX;
    const char *before = valid ? streams[ordinal].last_op.exchange(op, std::memory_order_relaxed) : nullptr;
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) return 0;
    // While a CUDA graph is captured nothing runs; a capture that broke makes
    // em_gpu_capture_end return NULL and the run is replayed eagerly.
    if (valid && streams[ordinal].capturing.load() && em_gpu_is_capture_error(e)) return 0;
    if (is_kernel_fault(e))
        em_gpu_report("gpu: /gpu:%d: %s (a kernel failed before '%s' was launched; the last op launched before it was "
                      "'%s')",
                      ordinal, cudaGetErrorString(e), op, before ? before : "none");
    else
        em_gpu_report("%s: kernel launch failed on /gpu:%d: %s", op, ordinal, cudaGetErrorString(e));
    return -1;
}

int em_gpu_fail(const char *op, const char *what, cudaError_t err) {
    cudaGetLastError(); // clears a non-sticky error so later calls do not see it again
    em_gpu_report("%s: %s: %s", op, what, cudaGetErrorString(err));
    return -1;
}

int em_gpu_sync(int ordinal) {
    if (em_gpu_bad_ordinal("device_sync", ordinal)) return -1;
    cudaStream_t s = em_gpu_stream(ordinal);
    if (!s) return -1;
    cudaError_t e = cudaStreamSynchronize(s);
    return e == cudaSuccess ? 0 : sync_error(ordinal, e);
}

int em_gpu_copy(void *dst, int dst_device, const void *src, int src_device, size_t bytes) {
    if (!bytes) return 0;
    if (dst_device < 0 && src_device < 0) {
        memcpy(dst, src, bytes);
        return 0;
    }
    if (dst_device >= EM_GPU_MAX || src_device >= EM_GPU_MAX) {
        em_gpu_report("copy: /gpu:%d is not a GPU this backend can use (at most %d)",
                      dst_device >= EM_GPU_MAX ? dst_device : src_device, EM_GPU_MAX);
        return -1;
    }
    cudaError_t e;
    if (src_device < 0) { // host to device: the host buffer may be reused once the call returns (pageable memory)
        cudaStream_t s = em_gpu_stream(dst_device);
        if (!s) return -1;
        e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s);
        if (e != cudaSuccess) return em_gpu_fail("copy", "host to GPU", e);
        return em_gpu_launched(dst_device, "copy");
    }
    if (dst_device < 0) { // device to host: waits, and reports any kernel error met on the way
        cudaStream_t s = em_gpu_stream(src_device);
        if (!s) return -1;
        // An error here may be one a kernel met earlier: reported as at a synchronization.
        e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s);
        if (e == cudaSuccess) e = cudaStreamSynchronize(s);
        return e == cudaSuccess ? 0 : sync_error(src_device, e);
    }
    if (dst_device == src_device) {
        cudaStream_t s = em_gpu_stream(dst_device);
        if (!s) return -1;
        e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, s);
        if (e != cudaSuccess) return em_gpu_fail("copy", "within a GPU", e);
        return em_gpu_launched(dst_device, "copy");
    }
    // Between GPUs, on the destination's stream once the source's stream has
    // produced the data; the source's stream then waits for the copy, so a
    // later reuse of the source block (or a write to it) cannot overtake it.
    cudaStream_t ss = em_gpu_stream(src_device), ds = em_gpu_stream(dst_device);
    cudaEvent_t produced = nullptr, copied = nullptr;
    if (!ss || !ds) return -1;
    cudaSetDevice(src_device);
    e = cudaEventCreateWithFlags(&produced, cudaEventDisableTiming);
    if (e == cudaSuccess) e = cudaEventRecord(produced, ss);
    if (e == cudaSuccess) e = cudaSetDevice(dst_device);
    if (e == cudaSuccess) e = cudaEventCreateWithFlags(&copied, cudaEventDisableTiming);
    if (e == cudaSuccess) e = cudaStreamWaitEvent(ds, produced, 0);
    if (e == cudaSuccess) e = cudaMemcpyPeerAsync(dst, dst_device, src, src_device, bytes, ds);
    if (e == cudaSuccess) e = cudaEventRecord(copied, ds);
    if (e == cudaSuccess) e = cudaStreamWaitEvent(ss, copied, 0);
    // Destroying an event still pending is allowed: its resources go once it completes.
    if (produced) cudaEventDestroy(produced);
    if (copied) cudaEventDestroy(copied);
    if (e != cudaSuccess) return em_gpu_fail("copy", "between GPUs", e);
    streams[src_device].last_op.store("copy", std::memory_order_relaxed);
    return em_gpu_launched(dst_device, "copy");
}

int em_gpu_copy_strided(em_gpu_tensor *dst, const em_gpu_tensor *src, int ordinal) {
    if (dst->numel == 0) return 0;
    size_t es = em_gpu_dtype_size(dst->dtype);
    em_bcast p;
    em_bcast_init(&p, dst->ndim, dst->shape, 1);
    em_bcast_input(&p, 0, src->ndim, src->shape, src->strides);
    em_bcast_coalesce(&p);
    cudaStream_t s = em_gpu_stream(ordinal);
    if (!s) return -1;
    if (p.ndim == 1 && p.strides[0][0] == 1) { // already contiguous
        cudaError_t e = cudaMemcpyAsync(dst->data, src->data, (size_t)dst->numel * es, cudaMemcpyDeviceToDevice, s);
        if (e != cudaSuccess) return em_gpu_fail("copy", "a contiguous copy within a GPU", e);
        return em_gpu_launched(ordinal, "copy");
    }
    unsigned blocks = em_gpu_blocks(dst->numel);
    int64_t n = dst->numel;
    switch (es) { // by element size: a copy moves bits
    case 1:
        gather_kernel<uint8_t>
            <<<blocks, EM_GPU_THREADS, 0, s>>>(p, (uint8_t *)dst->data, (const uint8_t *)src->data, n);
        break;
    case 2:
        gather_kernel<uint16_t>
            <<<blocks, EM_GPU_THREADS, 0, s>>>(p, (uint16_t *)dst->data, (const uint16_t *)src->data, n);
        break;
    case 4:
        gather_kernel<uint32_t>
            <<<blocks, EM_GPU_THREADS, 0, s>>>(p, (uint32_t *)dst->data, (const uint32_t *)src->data, n);
        break;
    case 8:
        gather_kernel<uint64_t>
            <<<blocks, EM_GPU_THREADS, 0, s>>>(p, (uint64_t *)dst->data, (const uint64_t *)src->data, n);
        break;
    default: em_gpu_report("copy: dtype %d has no GPU copy", dst->dtype); return -1;
    }
    return em_gpu_launched(ordinal, "copy");
}

int em_gpu_fill(em_gpu_tensor *t, double v, int ordinal) {
    if (t->numel == 0) return 0;
    // The element's bits, converted as the CPU's em__write converts.
    union {
        uint8_t b;
        uint16_t h;
        uint32_t w;
        uint64_t d;
        float f32;
        double f64;
        int8_t i8;
        int16_t i16;
        int32_t i32;
        int64_t i64;
    } one;
    one.d = 0;
    switch (t->dtype) {
    case EM_F32: one.f32 = em_convert_f32(v); break;
    case EM_F64: one.f64 = em_convert_f64(v); break;
    case EM_I32: one.i32 = em_convert_i32(v); break;
    case EM_I64: one.i64 = em_convert_i64(v); break;
    case EM_U8: one.b = em_convert_u8(v); break;
    case EM_BOOL: one.b = em_convert_b8(v); break;
    case EM_BF16: one.h = em_convert_bf16(v); break;
    case EM_F16: one.h = em_convert_f16(v); break;
    case EM_I8: one.i8 = em_convert_i8(v); break;
    case EM_I16: one.i16 = em_convert_i16(v); break;
    case EM_U16: one.h = em_convert_u16(v); break;
    default: em_gpu_report("fill: dtype %d has no GPU fill", t->dtype); return -1;
    }
    size_t es = em_gpu_dtype_size(t->dtype);
    cudaStream_t s = em_gpu_stream(ordinal);
    if (!s) return -1;
    if (es == 1 || one.d == 0) { // one byte repeated: a memset
        cudaError_t e = cudaMemsetAsync(t->data, one.b, (size_t)t->numel * es, s);
        if (e != cudaSuccess) return em_gpu_fail("fill", "setting GPU memory", e);
    } else if (es == 2) {
        fill_kernel<uint16_t><<<em_gpu_blocks(t->numel), EM_GPU_THREADS, 0, s>>>((uint16_t *)t->data, one.h, t->numel);
    } else if (es == 4) {
        fill_kernel<uint32_t><<<em_gpu_blocks(t->numel), EM_GPU_THREADS, 0, s>>>((uint32_t *)t->data, one.w, t->numel);
    } else {
        fill_kernel<uint64_t><<<em_gpu_blocks(t->numel), EM_GPU_THREADS, 0, s>>>((uint64_t *)t->data, one.d, t->numel);
    }
    return em_gpu_launched(ordinal, "fill");
}

void em_gpu_streams_shutdown(void) {
    for (int i = 0; i < EM_GPU_MAX; i++) {
        stream_state &d = streams[i];
        std::lock_guard<std::mutex> lock(d.mu);
        if (d.has_stream.load() && cudaSetDevice(i) == cudaSuccess) {
            cudaStreamSynchronize(d.stream);
            cudaStreamDestroy(d.stream);
        }
        d.stream = nullptr;
        d.has_stream.store(false);
        d.last_op.store(nullptr);
        d.capturing.store(false);
    }
    cudaGetLastError();
}
