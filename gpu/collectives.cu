// Collectives: all-reduce of same-shape float tensors on several GPUs, in
// place (em_all_reduce_mean). With NCCL (built with it when nccl.h is found:
// -DEMBER_NCCL) one communicator set per list of devices, made on first use
// and kept until the plug-in's shutdown; without it, or when NCCL cannot
// serve the devices, the sum runs through copies to the first device, in a
// fixed order (the same sum every run), and goes back.
#include "common.cuh"

#ifdef EMBER_NCCL
#include <nccl.h>
#endif

#include <mutex>
#include <vector>

namespace {

template <class T> __global__ void add_kernel(T *x, const T *y, int64_t n) { EM_GPU_LOOP(i, n) x[i] = x[i] + y[i]; }

template <class T> __global__ void scale_kernel(T *x, T s, int64_t n) { EM_GPU_LOOP(i, n) x[i] = x[i] * s; }

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
        rc = em_gpu_copy(tmp, d0, ts[i]->data, ordinals[i], bytes);
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
        rc = em_gpu_copy(ts[i]->data, ordinals[i], sum, d0, bytes);
    return rc;
}

#ifdef EMBER_NCCL
// One ncclAllReduce per device in a group, on the devices' streams.
template <class T> int nccl_all_reduce(int n, em_gpu_tensor *const *ts, const int *ordinals, const ncclComm_t *comms) {
    cudaStream_t streams[EM_GPU_MAX];
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
        em_gpu_report("all_reduce: NCCL failed across %d GPUs: %s", n, ncclGetErrorString(r));
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (em_gpu_launched(ordinals[i], "all_reduce")) return -1;
    return 0;
}
#endif

template <class T> int all_reduce(int n, em_gpu_tensor *const *ts, const int *ordinals, double scale) {
#ifdef EMBER_NCCL
    ncclComm_t comms[EM_GPU_MAX];
    if (n > 1 && nccl_comms(n, ordinals, comms))
        return nccl_all_reduce<T>(n, ts, ordinals, comms) ? -1 : scale_all<T>(n, ts, ordinals, scale);
#endif
    return reduce_by_copies<T>(n, ts, ordinals, scale);
}

} // namespace

int em_gpu_all_reduce(int n, em_gpu_tensor *const *ts, const int *ordinals, double scale) {
    if (n < 1 || n > EM_GPU_MAX) {
        em_gpu_report("all_reduce: needs 1 to %d tensors, got %d", EM_GPU_MAX, n);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (em_gpu_bad_ordinal("all_reduce", ordinals[i])) return -1;
        if (ts[i]->dtype != ts[0]->dtype || ts[i]->numel != ts[0]->numel) {
            em_gpu_report("all_reduce: tensor %d (%s, %lld elements) differs from tensor 0 (%s, %lld elements)", i,
                           em_gpu_dtype_name(ts[i]->dtype), (long long)ts[i]->numel,
                           em_gpu_dtype_name(ts[0]->dtype), (long long)ts[0]->numel);
            return -1;
        }
    }
    if (ts[0]->numel == 0) return 0;
    if (ts[0]->dtype == EM_F32) return all_reduce<float>(n, ts, ordinals, scale);
    if (ts[0]->dtype == EM_F64) return all_reduce<double>(n, ts, ordinals, scale);
    em_gpu_report("all_reduce: dtype %s is not supported (float32 or float64)", em_gpu_dtype_name(ts[0]->dtype));
    return -1;
}

void em_gpu_collectives_shutdown(void) {
#ifdef EMBER_NCCL
    std::lock_guard<std::mutex> lock(nccl_mu);
    for (nccl_group &g : nccl_groups)
        for (ncclComm_t c : g.comms)
            ncclCommDestroy(c);
    nccl_groups.clear();
#endif
}
