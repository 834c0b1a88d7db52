// The caching allocator: per device, blocks are rounded to a size class
// (512 B steps up to 1 MiB, powers of two above) and a freed block goes to
// its class's free list, from which the next request of that class is
// served: a training loop in its steady state never calls cudaMalloc.
// Reusing a block freed while a kernel still reads it is safe because the
// reuse is queued on the same stream. With allow_growth, new blocks come from
// cudaMalloc; otherwise `fraction` of the device's memory is taken once, at
// first use, and blocks are cut from it (best fit, freed ranges merged). When
// a request cannot be met, the free lists are given back (to CUDA or to the
// reserved range) and the request is tried once more before it fails as out
// of memory.
#include "common.cuh"

#include <atomic>
#include <iterator>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#define SMALL_CLASS_LIMIT ((size_t)1 << 20)
#define SMALL_CLASS_STEP 512
#define LIBRARY_HEADROOM ((size_t)256 << 20)

namespace {

struct pool {
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

pool pools[EM_GPU_MAX];

std::atomic<bool> config_growth{true};
std::atomic<double> config_fraction{1.0};

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

// ---- callers hold d.mu ----

// Chooses the mode at first use; without growth, reserves the range. 0 or -1 after a report.
int pool_ready(pool &d, int ordinal) {
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
            em_gpu_report("out of GPU memory on /gpu:%d: cannot reserve %zu bytes (%.0f%% of %zu), %zu free on the "
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
void *pool_take(pool &d, size_t c, cudaError_t *err) {
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
void pool_give(pool &d, void *p, size_t c) {
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

void pool_flush(pool &d) {
    for (auto &kv : d.cache)
        for (void *p : kv.second)
            pool_give(d, p, kv.first);
    d.cache.clear();
}

// Frees everything the pool holds and forgets the mode.
void pool_release(pool &d) {
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

} // namespace

void em_gpu_configure(bool allow_growth, double fraction) {
    config_growth.store(allow_growth);
    config_fraction.store(fraction > 0 && fraction <= 1 ? fraction : 1.0);
}

void *em_gpu_alloc(int ordinal, size_t bytes) {
    if (em_gpu_bad_ordinal("gpu_alloc", ordinal)) return nullptr;
    pool &d = pools[ordinal];
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
            em_gpu_report("gpu_alloc: /gpu:%d: %s%s", ordinal, cudaGetErrorString(why),
                          em_gpu_is_capture_error(why)
                              ? " (new device memory cannot be taken while a CUDA graph is captured)"
                              : "");
            return nullptr;
        }
        size_t free_b = 0, total = 0;
        if (cudaMemGetInfo(&free_b, &total) != cudaSuccess) cudaGetLastError();
        if (growth)
            em_gpu_report("out of GPU memory on /gpu:%d: asked %zu bytes, %zu in use, %zu free on the device", ordinal,
                          bytes, in_use, free_b);
        else
            em_gpu_report("out of GPU memory on /gpu:%d: asked %zu bytes, %zu in use, %zu free on the device (%zu of "
                          "the %zu reserved are free; em_set_gpu_memory(true, 1) takes memory as needed)",
                          ordinal, bytes, in_use, free_b, arena_free, reserved);
        return nullptr;
    }
    d.live[p] = c;
    d.in_use += c;
    if (d.in_use > d.peak) d.peak = d.in_use;
    return p;
}

// A pointer the allocator does not hold (after a shutdown freed everything) is ignored.
void em_gpu_free(int ordinal, void *p) {
    if (!p || ordinal < 0 || ordinal >= EM_GPU_MAX) return;
    pool &d = pools[ordinal];
    std::lock_guard<std::mutex> lock(d.mu);
    auto it = d.live.find(p);
    if (it == d.live.end()) return;
    size_t c = it->second;
    d.live.erase(it);
    d.in_use -= c;
    d.cache[c].push_back(p);
}

int em_gpu_memory(int ordinal, em_gpu_memory_stats *out) {
    if (em_gpu_bad_ordinal("device_memory_stats", ordinal)) return -1;
    cudaError_t e = cudaSetDevice(ordinal);
    size_t free_b = 0, total = 0;
    if (e == cudaSuccess) e = cudaMemGetInfo(&free_b, &total);
    if (e != cudaSuccess) return em_gpu_fail("device_memory_stats", "reading the device's memory", e);
    pool &d = pools[ordinal];
    std::lock_guard<std::mutex> lock(d.mu);
    out->in_use = d.in_use;
    out->peak = d.peak;
    out->reserved = d.reserved;
    out->device_free = free_b;
    out->device_total = total;
    out->cuda_mallocs = d.mallocs;
    return 0;
}

void em_gpu_allocator_shutdown(void) {
    for (int i = 0; i < EM_GPU_MAX; i++) {
        pool &d = pools[i];
        std::lock_guard<std::mutex> lock(d.mu);
        if (!d.ready || cudaSetDevice(i) != cudaSuccess) continue;
        pool_release(d);
    }
    cudaGetLastError();
}
