/* The GPU references for issue 6's benchmarks, beside Ember on the same card:
 * float32 matmul TFLOP/s of cuBLAS called directly against em_matmul on
 * "/gpu:0", and elementwise add GB/s against the card's memory bandwidth.
 * Built only with the GPU backend; without a GPU it says so and exits 0.
 *
 *   build/bench/cublas [N ...]      (default 1024 4096 8192) */
#include <ember.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Median-free and simple: the best of 5 rounds of `reps` calls, each round
 * ended by a synchronization. */
#define BEST_OF(reps, call, sync, out)                        \
    do {                                                      \
        { call; }                                             \
        sync;                                                 \
        out = 1e30;                                           \
        for (int round = 0; round < 5; round++) {             \
            double t0 = now();                                \
            for (int r = 0; r < (reps); r++) { call; }        \
            sync;                                             \
            double dt = (now() - t0) / (reps);                \
            if (dt < out) out = dt;                           \
        }                                                     \
    } while (0)

int main(int argc, char **argv) {
    if (em_device_begin("/gpu:0")) {
        printf("bench/cublas: skipped: %s\n", em_last_error());
        return 0;
    }
    int dev = 0, bus = 0, clock_khz = 0;
    cudaDeviceGetAttribute(&bus, cudaDevAttrGlobalMemoryBusWidth, dev);
    cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, dev);
    double peak_gbps = 2.0 * clock_khz * 1e3 * (bus / 8) / 1e9; /* DDR: two transfers a clock */
    struct cudaDeviceProp prop;
    cudaGetDeviceProperties(&prop, dev);
    printf("%s; memory bandwidth %.0f GB/s (from its bus width and clock)\n", prop.name, peak_gbps);

    cublasHandle_t handle;
    if (cublasCreate(&handle) != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "bench/cublas: cublasCreate failed\n");
        return 1;
    }
    int sizes[8] = {1024, 4096, 8192}, nsizes = 3;
    if (argc > 1) nsizes = 0;
    for (int i = 1; i < argc && nsizes < 8; i++) sizes[nsizes++] = atoi(argv[i]);
    printf("%-22s %12s %12s %8s\n", "matmul f32 (NxNxN)", "Ember TF/s", "cuBLAS TF/s", "ratio");
    for (int k = 0; k < nsizes; k++) {
        int n = sizes[k];
        em_scope_begin();
        em_tensor *a = em_random_uniform(EM_F32, EM_SHAPE(n, n), 0, 1), *b = em_random_uniform(EM_F32, EM_SHAPE(n, n), 0, 1);
        em_tensor *mine = a && b ? em_matmul(a, b) : NULL;
        if (!mine || em_device_sync("/gpu:0")) {
            fprintf(stderr, "bench/cublas: matmul %d on /gpu:0: %s\n", n, em_last_error());
            return 1;
        }
        float *c;
        cudaMalloc((void **)&c, sizeof(float) * (size_t)n * (size_t)n);
        const float one = 1, zero = 0;
        const float *da = em_device_pointer(a), *db = em_device_pointer(b);
        /* The two products agree, so both timings below time real work. */
        cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, db, n, da, n, &zero, c, n);
        cudaDeviceSynchronize();
        em_tensor *theirs = em_zeros(EM_F32, EM_SHAPE(n, n));
        cudaMemcpy(em_device_pointer(theirs), c, sizeof(float) * (size_t)n * (size_t)n, cudaMemcpyDeviceToDevice);
        double diff = em_item(em_max(em_abs(em_sub(mine, theirs)), EM_ALL_AXES, false));
        if (!(diff <= 1e-3 * n)) {
            fprintf(stderr, "bench/cublas: Ember's and cuBLAS's %d^3 products differ by %g: %s\n", n, diff,
                    em_last_error() ? em_last_error() : "");
            return 1;
        }
        int reps = n >= 4096 ? 10 : 50;
        double t_ember, t_cublas;
        BEST_OF(reps, em_scope_begin(); em_matmul(a, b); em_scope_end(), em_device_sync("/gpu:0"), t_ember);
        BEST_OF(reps, cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, db, n, da, n, &zero, c, n),
                cudaDeviceSynchronize(), t_cublas);
        double flops = 2.0 * n * (double)n * n;
        printf("%-22d %12.1f %12.1f %8.2f\n", n, flops / t_ember / 1e12, flops / t_cublas / 1e12, t_ember / t_cublas);
        cudaFree(c);
        em_scope_end();
    }
    int64_t numel = (int64_t)1 << 26;
    em_scope_begin();
    em_tensor *x = em_ones(EM_F32, EM_SHAPE(numel)), *y = em_ones(EM_F32, EM_SHAPE(numel));
    if (!x || !y || !em_add(x, y) || em_device_sync("/gpu:0")) {
        fprintf(stderr, "bench/cublas: add on /gpu:0: %s\n", em_last_error());
        return 1;
    }
    double t_add;
    BEST_OF(20, em_scope_begin(); em_add(x, y); em_scope_end(), em_device_sync("/gpu:0"), t_add);
    double gbps = 3.0 * 4 * (double)numel / t_add / 1e9;
    printf("add f32, 2^26 elements: %.0f GB/s, %.0f%% of the card's bandwidth\n", gbps, 100 * gbps / peak_gbps);
    em_scope_end();
    cublasDestroy(handle);
    em_device_end();
    em_shutdown();
    return 0;
}
