// The CUDA backend's runtime: devices, the per-device stream and its error
// bookkeeping, the caching allocator, copies and fills, CUDA graph capture,
// all-reduce across GPUs and the optimizers' fused update kernels (lib/gpu.h,
// gpu/common.cuh).
//
// Streams and errors: every op of a device runs on that device's one stream,
// so ops, copies and frees on a device are ordered without events. A launch
// records the op's name; a kernel that fails later is reported by the next
// synchronization (em__gpu_sync, or a copy to the host), naming the last op
// launched.
//
// Allocator: per device, blocks are rounded to a size class (512 B steps up
// to 1 MiB, powers of two above) and a freed block goes to its class's free
// list, from which the next request of that class is served: a training loop
// in its steady state never calls cudaMalloc. Reusing a block freed while a
// kernel still reads it is safe because the reuse is queued on the same
// stream. With allow_growth, new blocks come from cudaMalloc; otherwise
// `fraction` of the device's memory is taken once, at first use, and blocks
// are cut from it (best fit, freed ranges merged). When a request cannot be
// met, the free lists are given back (to CUDA or to the reserved range) and
// the request is tried once more before it fails as out of memory.
#include "broadcast.h"
#include "common.cuh"
#include "dtype_convert.h"
#include "optim_math.h"

#ifdef EMBER_NCCL
#include <nccl.h>
#endif
#include <stdio.h>
#include <string.h>

#include <atomic>
#include <iterator>
#include <map>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#define GPU_MAX 32
#define SMALL_CLASS_LIMIT ((size_t)1 << 20)
#define SMALL_CLASS_STEP 512
#define LIBRARY_HEADROOM ((size_t)256 << 20)

namespace {

struct device_state {
    // The stream, made on first use.
    std::mutex stream_mu;
    std::atomic<bool> has_stream{false};
    cudaStream_t stream = nullptr;
    std::atomic<const char *> last_op{nullptr};
    std::atomic<bool> capturing{false};

    // The allocator.
    std::mutex mu;
    bool ready = false; // mode chosen (and, without growth, the range reserved)
    bool growth = true;
    char *arena = nullptr;                                 // the reserved range (without growth)
    std::map<size_t, size_t> holes;                        // free ranges of the arena: offset -> bytes
    std::unordered_map<size_t, std::vector<void *>> cache; // size class -> free blocks
    std::unordered_map<void *, size_t> live;               // block handed out -> its size class
    size_t in_use = 0, peak = 0, reserved = 0;
    int64_t mallocs = 0;
};

device_state devs[GPU_MAX];

std::atomic<bool> config_growth{true};
std::atomic<double> config_fraction{1.0};

std::mutex hooks_mu;
std::vector<void (*)(void)> hooks;

bool is_capture_error(cudaError_t e) {
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

// Reports an ordinal outside [0, GPU_MAX) (the library passes only valid ones).
bool bad_ordinal(const char *fn, int ordinal) {
    if (ordinal >= 0 && ordinal < GPU_MAX) return false;
    em__gpu_report("%s: /gpu:%d is not a GPU this backend can use (at most %d)", fn, ordinal, GPU_MAX);
    return true;
}

size_t size_class(size_t bytes) {
    if (bytes <= SMALL_CLASS_LIMIT) {
        size_t c = (bytes + SMALL_CLASS_STEP - 1) / SMALL_CLASS_STEP * SMALL_CLASS_STEP;
        return c ? c : SMALL_CLASS_STEP;
    }
    if (bytes > ((size_t)-1 >> 1) + 1) return 0; // no power of two holds it
    size_t c = SMALL_CLASS_LIMIT;
    while (c < bytes)
        c <<= 1;
    return c;
}

// ---- the allocator (callers hold d.mu) ----

// Chooses the mode at first use; without growth, reserves the range. 0 or -1 after a report.
int pool_ready(device_state &d, int ordinal) {
    if (d.ready) return 0;
    d.growth = config_growth.load();
    if (!d.growth) {
        size_t free_b = 0, total = 0;
        cudaError_t e = cudaMemGetInfo(&free_b, &total);
        if (e != cudaSuccess) return em_gpu_fail("gpu", "reading the device's memory size", e);
        // At most what is free, less room for what the CUDA libraries take
        // outside this allocator (cuBLAS workspaces, NCCL buffers).
        double fraction = config_fraction.load();
        size_t want = (size_t)(fraction * (double)total);
        size_t cap = free_b > LIBRARY_HEADROOM ? free_b - LIBRARY_HEADROOM : 0;
        if (want > cap) want = cap;
        want = want / SMALL_CLASS_LIMIT * SMALL_CLASS_LIMIT;
        void *p = nullptr;
        e = want ? cudaMalloc(&p, want) : cudaErrorMemoryAllocation;
        if (e != cudaSuccess) {
            cudaGetLastError();
            em__gpu_report("out of GPU memory on /gpu:%d: cannot reserve %zu bytes (%.0f%% of %zu), %zu free on the "
                           "device (em_set_gpu_memory(true, 1) takes memory as needed instead)",
                           ordinal, want, fraction * 100, total, free_b);
            return -1;
        }
        d.mallocs++;
        d.arena = (char *)p;
        d.reserved = want;
        d.holes.clear();
        d.holes[0] = want;
    }
    d.ready = true;
    return 0;
}

// A new block of class c from CUDA or the reserved range; NULL when there is
// none (*err says why: cudaErrorMemoryAllocation, or the CUDA error met).
void *pool_take(device_state &d, size_t c, cudaError_t *err) {
    *err = cudaErrorMemoryAllocation;
    if (d.growth) {
        void *p = nullptr;
        cudaError_t e = cudaMalloc(&p, c);
        if (e != cudaSuccess) {
            cudaGetLastError();
            *err = e;
            return nullptr;
        }
        d.mallocs++;
        d.reserved += c;
        return p;
    }
    auto best = d.holes.end();
    for (auto h = d.holes.begin(); h != d.holes.end(); ++h)
        if (h->second >= c && (best == d.holes.end() || h->second < best->second)) best = h;
    if (best == d.holes.end()) return nullptr;
    size_t off = best->first, len = best->second;
    d.holes.erase(best);
    if (len > c) d.holes[off + c] = len - c;
    return d.arena + off;
}

// Returns block p of class c to CUDA or to the reserved range, merging neighbours.
void pool_give(device_state &d, void *p, size_t c) {
    if (d.growth) {
        cudaFree(p); // waits for the device: no kernel still reads p
        d.reserved -= c;
        return;
    }
    size_t off = (size_t)((char *)p - d.arena), len = c;
    auto next = d.holes.lower_bound(off);
    if (next != d.holes.end() && off + len == next->first) {
        len += next->second;
        next = d.holes.erase(next);
    }
    if (next != d.holes.begin()) {
        auto prev = std::prev(next);
        if (prev->first + prev->second == off) {
            prev->second += len;
            return;
        }
    }
    d.holes[off] = len;
}

void pool_flush(device_state &d) {
    for (auto &kv : d.cache)
        for (void *p : kv.second)
            pool_give(d, p, kv.first);
    d.cache.clear();
}

// Frees everything the pool holds and forgets the mode (em__gpu_shutdown).
void pool_release(device_state &d) {
    pool_flush(d);
    if (d.growth)
        for (auto &kv : d.live)
            cudaFree(kv.first);
    else if (d.arena)
        cudaFree(d.arena);
    d.live.clear();
    d.holes.clear();
    d.arena = nullptr;
    d.in_use = d.peak = d.reserved = 0;
    d.mallocs = 0;
    d.ready = false;
}

// ---- kernels ----

template <class W> __global__ void fill_kernel(W *p, W v, int64_t n) { EM_GPU_LOOP(i, n) p[i] = v; }

// dst[i] = src[offset of element i]: a strided tensor gathered in row-major order.
template <class W> __global__ void gather_kernel(const __grid_constant__ em_bcast p, W *dst, const W *src, int64_t n) {
    EM_GPU_LOOP(i, n) dst[i] = src[em_bcast_offset(&p, 0, i)];
}

template <class T> __global__ void add_kernel(T *x, const T *y, int64_t n) { EM_GPU_LOOP(i, n) x[i] = x[i] + y[i]; }

template <class T> __global__ void scale_kernel(T *x, T s, int64_t n) { EM_GPU_LOOP(i, n) x[i] = x[i] * s; }

// The optimizers' update kernels: one thread per element (grid stride), each
// applying lib/optim_math.h's rule, the one lib/optim.c's CPU loops apply.
template <class T> struct update_args {
    T *w, *s0, *s1, *s2;
    const T *g;
    typename em_optim_scalars_of<T>::type k; // the step's scalars in T, as the CPU kernels convert them
    bool centered;
    int64_t n;
};

template <class T> __global__ void sgd_kernel(const update_args<T> u) {
    EM_GPU_LOOP(i, u.n) em_optim_sgd(&u.w[i], u.g[i], u.k);
}

template <class T> __global__ void momentum_kernel(const update_args<T> u) {
    EM_GPU_LOOP(i, u.n) em_optim_momentum(&u.w[i], &u.s0[i], u.g[i], u.k);
}

template <class T> __global__ void adagrad_kernel(const update_args<T> u) {
    EM_GPU_LOOP(i, u.n) em_optim_adagrad(&u.w[i], &u.s0[i], u.g[i], u.k);
}

template <class T> __global__ void adagrad_da_kernel(const update_args<T> u) {
    EM_GPU_LOOP(i, u.n) em_optim_adagrad_da(&u.w[i], &u.s0[i], &u.s1[i], u.g[i], u.k);
}

template <class T> __global__ void rmsprop_kernel(const update_args<T> u) {
    EM_GPU_LOOP(i, u.n) {
        T *mg = u.centered ? &u.s2[i] : nullptr; // the mean gradient: centered only
        em_optim_rmsprop(&u.w[i], &u.s0[i], &u.s1[i], mg, u.g[i], u.k, u.centered);
    }
}

template <class T> __global__ void adam_kernel(const update_args<T> u) {
    EM_GPU_LOOP(i, u.n) em_optim_adam(&u.w[i], &u.s0[i], &u.s1[i], u.g[i], u.k);
}

template <class T>
int run_update(const em_update_coeffs *c, em_gpu_tensor *var, const em_gpu_tensor *grad, em_gpu_tensor *const *slots,
               int ordinal) {
    update_args<T> u = {};
    u.w = (T *)var->data;
    u.g = (const T *)grad->data;
    T *s[3] = {nullptr, nullptr, nullptr};
    int nslots = c->kind == EM_UPDATE_SGD                                        ? 0
                 : c->kind == EM_UPDATE_MOMENTUM || c->kind == EM_UPDATE_ADAGRAD ? 1
                 : c->kind == EM_UPDATE_RMSPROP && c->centered                   ? 3
                                                                                 : 2;
    for (int k = 0; k < nslots; k++)
        s[k] = (T *)slots[k]->data;
    u.s0 = s[0];
    u.s1 = s[1];
    u.s2 = s[2];
    em_optim_scalars(c, &u.k);
    u.centered = c->centered;
    u.n = var->numel;
    cudaStream_t st = em_gpu_stream(ordinal);
    if (!st) return -1;
    unsigned blocks = em_gpu_blocks(u.n);
    switch (c->kind) {
    case EM_UPDATE_SGD: sgd_kernel<T><<<blocks, EM_GPU_THREADS, 0, st>>>(u); break;
    case EM_UPDATE_MOMENTUM: momentum_kernel<T><<<blocks, EM_GPU_THREADS, 0, st>>>(u); break;
    case EM_UPDATE_ADAGRAD: adagrad_kernel<T><<<blocks, EM_GPU_THREADS, 0, st>>>(u); break;
    case EM_UPDATE_ADAGRAD_DA: adagrad_da_kernel<T><<<blocks, EM_GPU_THREADS, 0, st>>>(u); break;
    case EM_UPDATE_RMSPROP: rmsprop_kernel<T><<<blocks, EM_GPU_THREADS, 0, st>>>(u); break;
    case EM_UPDATE_ADAM: adam_kernel<T><<<blocks, EM_GPU_THREADS, 0, st>>>(u); break;
    default: em__gpu_report("apply_updates: update rule %d has no GPU kernel", (int)c->kind); return -1;
    }
    return em_gpu_launched(ordinal, "apply_updates");
}

#ifdef EMBER_NCCL
// ---- NCCL communicators, one set per list of devices (built with NCCL only) ----

struct nccl_group {
    std::vector<int> devices;
    std::vector<ncclComm_t> comms; // empty when NCCL could not initialise for these devices
};
std::mutex nccl_mu;
std::vector<nccl_group> nccl_groups;

// The communicators of the n devices into comms; false when NCCL cannot be used for them.
bool nccl_comms(int n, const int *ordinals, ncclComm_t *comms) {
    std::vector<int> key(ordinals, ordinals + n);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++)
            if (key[i] == key[j]) return false; // NCCL needs distinct devices
    std::lock_guard<std::mutex> lock(nccl_mu);
    for (const nccl_group &g : nccl_groups)
        if (g.devices == key) {
            for (size_t i = 0; i < g.comms.size(); i++)
                comms[i] = g.comms[i];
            return !g.comms.empty();
        }
    nccl_group g;
    g.devices = key;
    g.comms.resize((size_t)n);
    if (ncclCommInitAll(g.comms.data(), n, ordinals) != ncclSuccess) g.comms.clear();
    cudaGetLastError();
    for (size_t i = 0; i < g.comms.size(); i++)
        comms[i] = g.comms[i];
    nccl_groups.push_back(g);
    return !g.comms.empty();
}

#endif

template <class T> int scale_all(int n, em_gpu_tensor *const *ts, const int *ordinals, double scale) {
    if (scale == 1) return 0;
    for (int i = 0; i < n; i++) {
        int64_t count = ts[i]->numel;
        cudaStream_t s = em_gpu_stream(ordinals[i]);
        if (!s) return -1;
        scale_kernel<T><<<em_gpu_blocks(count), EM_GPU_THREADS, 0, s>>>((T *)ts[i]->data, (T)scale, count);
        if (em_gpu_launched(ordinals[i], "all_reduce")) return -1;
    }
    return 0;
}

// Without NCCL: each tensor is copied to the first device and added there in
// order (a fixed order: the same sum every run), then the result goes back.
template <class T> int reduce_by_copies(int n, em_gpu_tensor *const *ts, const int *ordinals, double scale) {
    int d0 = ordinals[0];
    int64_t count = ts[0]->numel;
    size_t bytes = (size_t)count * sizeof(T);
    T *sum = (T *)ts[0]->data, *tmp = (T *)em_gpu_scratch(d0, bytes);
    if (!tmp) return -1;
    int rc = 0;
    for (int i = 1; i < n && !rc; i++) {
        rc = em__gpu_copy(tmp, d0, ts[i]->data, ordinals[i], bytes);
        cudaStream_t s = rc ? nullptr : em_gpu_stream(d0);
        if (s) {
            add_kernel<T><<<em_gpu_blocks(count), EM_GPU_THREADS, 0, s>>>(sum, tmp, count);
            rc = em_gpu_launched(d0, "all_reduce");
        } else {
            rc = -1;
        }
    }
    em_gpu_scratch_free(d0, tmp);
    if (!rc) rc = scale_all<T>(1, ts, ordinals, scale);
    for (int i = 1; i < n && !rc; i++)
        rc = em__gpu_copy(ts[i]->data, ordinals[i], sum, d0, bytes);
    return rc;
}

#ifdef EMBER_NCCL
// One ncclAllReduce per device in a group, on the devices' streams.
template <class T> int nccl_all_reduce(int n, em_gpu_tensor *const *ts, const int *ordinals, const ncclComm_t *comms) {
    cudaStream_t streams[GPU_MAX];
    for (int i = 0; i < n; i++)
        if (!(streams[i] = em_gpu_stream(ordinals[i]))) return -1;
    ncclDataType_t type = sizeof(T) == 4 ? ncclFloat32 : ncclFloat64;
    ncclResult_t r = ncclGroupStart();
    for (int i = 0; i < n && r == ncclSuccess; i++)
        r = ncclAllReduce(ts[i]->data, ts[i]->data, (size_t)ts[i]->numel, type, ncclSum, comms[i], streams[i]);
    ncclResult_t end = ncclGroupEnd();
    if (r == ncclSuccess) r = end;
    if (r != ncclSuccess) {
        cudaGetLastError();
        em__gpu_report("all_reduce: NCCL failed across %d GPUs: %s", n, ncclGetErrorString(r));
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (em_gpu_launched(ordinals[i], "all_reduce")) return -1;
    return 0;
}
#endif

template <class T> int all_reduce(int n, em_gpu_tensor *const *ts, const int *ordinals, double scale) {
#ifdef EMBER_NCCL
    ncclComm_t comms[GPU_MAX];
    if (n > 1 && nccl_comms(n, ordinals, comms))
        return nccl_all_reduce<T>(n, ts, ordinals, comms) ? -1 : scale_all<T>(n, ts, ordinals, scale);
#endif
    return reduce_by_copies<T>(n, ts, ordinals, scale);
}

} // namespace

struct em_gpu_graph {
    cudaGraphExec_t exec;
};

// ---- gpu/common.cuh ----

cudaStream_t em_gpu_stream(int ordinal) {
    if (bad_ordinal("gpu", ordinal)) return nullptr;
    cudaError_t e = cudaSetDevice(ordinal);
    if (e != cudaSuccess) {
        em_gpu_fail("gpu", "selecting the device", e);
        return nullptr;
    }
    device_state &d = devs[ordinal];
    if (!d.has_stream.load(std::memory_order_acquire)) {
        std::lock_guard<std::mutex> lock(d.stream_mu);
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
    bool valid = ordinal >= 0 && ordinal < GPU_MAX;
    const char *before = valid ? devs[ordinal].last_op.exchange(op, std::memory_order_relaxed) : nullptr;
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) return 0;
    // While a CUDA graph is captured nothing runs; a capture that broke makes
    // em__gpu_capture_end return NULL and the run is replayed eagerly.
    if (valid && devs[ordinal].capturing.load() && is_capture_error(e)) return 0;
    if (is_kernel_fault(e))
        em__gpu_report("gpu: /gpu:%d: %s (a kernel failed before '%s' was launched; the last op launched before it was "
                       "'%s')",
                       ordinal, cudaGetErrorString(e), op, before ? before : "none");
    else
        em__gpu_report("%s: kernel launch failed on /gpu:%d: %s", op, ordinal, cudaGetErrorString(e));
    return -1;
}

int em_gpu_fail(const char *op, const char *what, cudaError_t err) {
    cudaGetLastError(); // clears a non-sticky error so later calls do not see it again
    em__gpu_report("%s: %s: %s", op, what, cudaGetErrorString(err));
    return -1;
}

void *em_gpu_scratch(int ordinal, size_t bytes) { return em__gpu_alloc(ordinal, bytes); }

void em_gpu_scratch_free(int ordinal, void *p) { em__gpu_free(ordinal, p); }

void em_gpu_on_shutdown(void (*fn)(void)) {
    std::lock_guard<std::mutex> lock(hooks_mu);
    for (void (*h)(void) : hooks)
        if (h == fn) return;
    hooks.push_back(fn);
}

// ---- lib/gpu.h ----

extern "C" {

int em__gpu_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n < GPU_MAX ? n : GPU_MAX;
}

void em__gpu_describe(int ordinal, char *buf, size_t size) {
    cudaDeviceProp p;
    cudaError_t e = cudaGetDeviceProperties(&p, ordinal);
    if (e != cudaSuccess) {
        cudaGetLastError();
        snprintf(buf, size, "/gpu:%d (unavailable: %s)", ordinal, cudaGetErrorString(e));
        return;
    }
    snprintf(buf, size, "%s (sm_%d%d, %.1f GiB)", p.name, p.major, p.minor, (double)p.totalGlobalMem / (1 << 30));
}

void em__gpu_configure(bool allow_growth, double fraction) {
    config_growth.store(allow_growth);
    config_fraction.store(fraction > 0 && fraction <= 1 ? fraction : 1.0);
}

void *em__gpu_alloc(int ordinal, size_t bytes) {
    if (bad_ordinal("gpu_alloc", ordinal)) return nullptr;
    device_state &d = devs[ordinal];
    size_t c = size_class(bytes);
    cudaError_t e = cudaSetDevice(ordinal);
    if (e != cudaSuccess) {
        em_gpu_fail("gpu_alloc", "selecting the device", e);
        return nullptr;
    }
    std::unique_lock<std::mutex> lock(d.mu);
    if (pool_ready(d, ordinal)) return nullptr;
    void *p = nullptr;
    cudaError_t why = cudaErrorMemoryAllocation;
    if (c) {
        auto hit = d.cache.find(c);
        if (hit != d.cache.end() && !hit->second.empty()) {
            p = hit->second.back();
            hit->second.pop_back();
        } else if (!(p = pool_take(d, c, &why)) && why == cudaErrorMemoryAllocation) {
            pool_flush(d);
            p = pool_take(d, c, &why);
        }
    }
    if (!p) {
        size_t in_use = d.in_use, reserved = d.reserved, arena_free = 0;
        for (auto &h : d.holes)
            arena_free += h.second;
        bool growth = d.growth;
        lock.unlock();
        if (why != cudaErrorMemoryAllocation) {
            em__gpu_report("gpu_alloc: /gpu:%d: %s%s", ordinal, cudaGetErrorString(why),
                           is_capture_error(why) ? " (new device memory cannot be taken while a CUDA graph is captured)"
                                                 : "");
            return nullptr;
        }
        size_t free_b = 0, total = 0;
        if (cudaMemGetInfo(&free_b, &total) != cudaSuccess) cudaGetLastError();
        if (growth)
            em__gpu_report("out of GPU memory on /gpu:%d: asked %zu bytes, %zu in use, %zu free on the device", ordinal,
                           bytes, in_use, free_b);
        else
            em__gpu_report("out of GPU memory on /gpu:%d: asked %zu bytes, %zu in use, %zu free on the device (%zu of "
                           "the %zu reserved are free; em_set_gpu_memory(true, 1) takes memory as needed)",
                           ordinal, bytes, in_use, free_b, arena_free, reserved);
        return nullptr;
    }
    d.live[p] = c;
    d.in_use += c;
    if (d.in_use > d.peak) d.peak = d.in_use;
    return p;
}

// A pointer the allocator does not hold (after em__gpu_shutdown freed everything) is ignored.
void em__gpu_free(int ordinal, void *p) {
    if (!p || ordinal < 0 || ordinal >= GPU_MAX) return;
    device_state &d = devs[ordinal];
    std::lock_guard<std::mutex> lock(d.mu);
    auto it = d.live.find(p);
    if (it == d.live.end()) return;
    size_t c = it->second;
    d.live.erase(it);
    d.in_use -= c;
    d.cache[c].push_back(p);
}

int em__gpu_memory(int ordinal, em_gpu_memory_stats *out) {
    if (bad_ordinal("device_memory_stats", ordinal)) return -1;
    cudaError_t e = cudaSetDevice(ordinal);
    size_t free_b = 0, total = 0;
    if (e == cudaSuccess) e = cudaMemGetInfo(&free_b, &total);
    if (e != cudaSuccess) return em_gpu_fail("device_memory_stats", "reading the device's memory", e);
    device_state &d = devs[ordinal];
    std::lock_guard<std::mutex> lock(d.mu);
    out->in_use = d.in_use;
    out->peak = d.peak;
    out->reserved = d.reserved;
    out->device_free = free_b;
    out->device_total = total;
    out->cuda_mallocs = d.mallocs;
    return 0;
}

// The error a synchronization met, naming the last op launched on the device.
static int sync_error(int ordinal, cudaError_t e) {
    cudaGetLastError();
    const char *op = devs[ordinal].last_op.load(std::memory_order_relaxed);
    em__gpu_report("gpu: /gpu:%d: %s (reported at synchronization; the last op launched was '%s')", ordinal,
                   cudaGetErrorString(e), op ? op : "none");
    return -1;
}

int em__gpu_copy(void *dst, int dst_device, const void *src, int src_device, size_t bytes) {
    if (!bytes) return 0;
    if (dst_device < 0 && src_device < 0) {
        memcpy(dst, src, bytes);
        return 0;
    }
    if (dst_device >= GPU_MAX || src_device >= GPU_MAX) {
        em__gpu_report("copy: /gpu:%d is not a GPU this backend can use (at most %d)",
                       dst_device >= GPU_MAX ? dst_device : src_device, GPU_MAX);
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
    devs[src_device].last_op.store("copy", std::memory_order_relaxed);
    return em_gpu_launched(dst_device, "copy");
}

int em__gpu_copy_strided(em_gpu_tensor *dst, const em_gpu_tensor *src, int ordinal) {
    if (dst->numel == 0) return 0;
    size_t es = em_dtype_size((em_dtype)dst->dtype);
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
    case 4:
        gather_kernel<uint32_t>
            <<<blocks, EM_GPU_THREADS, 0, s>>>(p, (uint32_t *)dst->data, (const uint32_t *)src->data, n);
        break;
    case 8:
        gather_kernel<uint64_t>
            <<<blocks, EM_GPU_THREADS, 0, s>>>(p, (uint64_t *)dst->data, (const uint64_t *)src->data, n);
        break;
    default: em__gpu_report("copy: dtype %d has no GPU copy", dst->dtype); return -1;
    }
    return em_gpu_launched(ordinal, "copy");
}

int em__gpu_fill(em_gpu_tensor *t, double v, int ordinal) {
    if (t->numel == 0) return 0;
    // The element's bits, converted as em__write converts.
    union {
        uint8_t b;
        uint32_t w;
        uint64_t d;
        float f32;
        double f64;
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
    default: em__gpu_report("fill: dtype %d has no GPU fill", t->dtype); return -1;
    }
    size_t es = em_dtype_size((em_dtype)t->dtype);
    cudaStream_t s = em_gpu_stream(ordinal);
    if (!s) return -1;
    if (es == 1 || one.d == 0) { // one byte repeated: a memset
        cudaError_t e = cudaMemsetAsync(t->data, one.b, (size_t)t->numel * es, s);
        if (e != cudaSuccess) return em_gpu_fail("fill", "setting GPU memory", e);
    } else if (es == 4) {
        fill_kernel<uint32_t><<<em_gpu_blocks(t->numel), EM_GPU_THREADS, 0, s>>>((uint32_t *)t->data, one.w, t->numel);
    } else {
        fill_kernel<uint64_t><<<em_gpu_blocks(t->numel), EM_GPU_THREADS, 0, s>>>((uint64_t *)t->data, one.d, t->numel);
    }
    return em_gpu_launched(ordinal, "fill");
}

int em__gpu_sync(int ordinal) {
    if (bad_ordinal("device_sync", ordinal)) return -1;
    cudaStream_t s = em_gpu_stream(ordinal);
    if (!s) return -1;
    cudaError_t e = cudaStreamSynchronize(s);
    return e == cudaSuccess ? 0 : sync_error(ordinal, e);
}

int em__gpu_capture_begin(int ordinal) {
    if (bad_ordinal("capture", ordinal)) return -1;
    cudaStream_t s = em_gpu_stream(ordinal);
    if (!s) return -1;
    // Global mode: a call elsewhere in the process that would break the
    // capture (a cudaMalloc, a synchronization) fails instead of corrupting it.
    cudaError_t e = cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal);
    if (e != cudaSuccess) return em_gpu_fail("capture", "starting a CUDA graph capture", e);
    devs[ordinal].capturing.store(true);
    return 0;
}

em_gpu_graph *em__gpu_capture_end(int ordinal) {
    if (ordinal < 0 || ordinal >= GPU_MAX) return nullptr;
    cudaStream_t s = em_gpu_stream(ordinal);
    if (!s) return nullptr;
    cudaGraph_t graph = nullptr;
    cudaError_t e = cudaStreamEndCapture(s, &graph);
    devs[ordinal].capturing.store(false);
    cudaGraphExec_t exec = nullptr;
    if (e == cudaSuccess && graph) e = cudaGraphInstantiate(&exec, graph, 0);
    if (graph) cudaGraphDestroy(graph); // the executable graph keeps what it needs
    em_gpu_graph *g = nullptr;
    if (e == cudaSuccess && exec && !(g = new (std::nothrow) em_gpu_graph{exec})) cudaGraphExecDestroy(exec);
    cudaGetLastError(); // a failed capture leaves no error behind: the run is replayed eagerly
    return g;
}

int em__gpu_graph_launch(em_gpu_graph *g, int ordinal) {
    if (bad_ordinal("graph_run", ordinal)) return -1;
    cudaStream_t s = em_gpu_stream(ordinal);
    if (!s) return -1;
    cudaError_t e = cudaGraphLaunch(g->exec, s);
    if (e != cudaSuccess) return em_gpu_fail("graph_run", "launching the captured CUDA graph", e);
    return em_gpu_launched(ordinal, "cuda_graph");
}

void em__gpu_graph_free(em_gpu_graph *g) {
    if (!g) return;
    cudaGraphExecDestroy(g->exec);
    delete g;
}

int em__gpu_update(const em_update_coeffs *u, em_gpu_tensor *var, const em_gpu_tensor *grad,
                   em_gpu_tensor *const *slots, int ordinal) {
    if (var->numel == 0) return 0;
    if (var->dtype == EM_F32) return run_update<float>(u, var, grad, slots, ordinal);
    if (var->dtype == EM_F64) return run_update<double>(u, var, grad, slots, ordinal);
    em__gpu_report("apply_updates: dtype %s cannot be trained (float32 or float64)",
                   em_dtype_name((em_dtype)var->dtype));
    return -1;
}

int em__gpu_all_reduce(int n, em_gpu_tensor *const *ts, const int *ordinals, double scale) {
    if (n < 1 || n > GPU_MAX) {
        em__gpu_report("all_reduce: needs 1 to %d tensors, got %d", GPU_MAX, n);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (bad_ordinal("all_reduce", ordinals[i])) return -1;
        if (ts[i]->dtype != ts[0]->dtype || ts[i]->numel != ts[0]->numel) {
            em__gpu_report("all_reduce: tensor %d (%s, %lld elements) differs from tensor 0 (%s, %lld elements)", i,
                           em_dtype_name((em_dtype)ts[i]->dtype), (long long)ts[i]->numel,
                           em_dtype_name((em_dtype)ts[0]->dtype), (long long)ts[0]->numel);
            return -1;
        }
    }
    if (ts[0]->numel == 0) return 0;
    if (ts[0]->dtype == EM_F32) return all_reduce<float>(n, ts, ordinals, scale);
    if (ts[0]->dtype == EM_F64) return all_reduce<double>(n, ts, ordinals, scale);
    em__gpu_report("all_reduce: dtype %s is not supported (float32 or float64)", em_dtype_name((em_dtype)ts[0]->dtype));
    return -1;
}

void em__gpu_shutdown(void) {
    std::vector<void (*)(void)> run;
    {
        std::lock_guard<std::mutex> lock(hooks_mu);
        run = hooks;
    }
    for (void (*h)(void) : run)
        h();
    em__gpu_nn_shutdown();
#ifdef EMBER_NCCL
    {
        std::lock_guard<std::mutex> lock(nccl_mu);
        for (nccl_group &g : nccl_groups)
            for (ncclComm_t c : g.comms)
                ncclCommDestroy(c);
        nccl_groups.clear();
    }
#endif
    for (int i = 0; i < GPU_MAX; i++) {
        device_state &d = devs[i];
        bool used;
        {
            std::lock_guard<std::mutex> lock(d.mu);
            used = d.ready || d.has_stream.load();
        }
        if (!used || cudaSetDevice(i) != cudaSuccess) continue;
        {
            std::lock_guard<std::mutex> lock(d.stream_mu);
            if (d.has_stream.load()) {
                cudaStreamSynchronize(d.stream);
                cudaStreamDestroy(d.stream);
                d.stream = nullptr;
                d.has_stream.store(false);
            }
        }
        {
            std::lock_guard<std::mutex> lock(d.mu);
            pool_release(d);
        }
        d.last_op.store(nullptr);
        d.capturing.store(false);
    }
    cudaGetLastError();
}

} // extern "C"
