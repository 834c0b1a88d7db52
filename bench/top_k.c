/* em_top_k's selection (an insertion buffer behind a vectorized 16-wide filter) beside a full stable sort
 * of the same rows (em_argsort), same threads, same run: float32 [64, 65536], k = 1, 8, 32.
 *
 *   build/bench/top_k [threads]
 *
 * Each figure is the best of 5 rounds. PyTorch's torch.topk on the same shape, for comparison:
 *   /usr/bin/python3 -c "import torch,time;x=torch.randn(64,65536);torch.topk(x,8);t=time.time();
 *     [torch.topk(x,8) for _ in range(20)];print((time.time()-t)/20*1e3,'ms')" */
#include <ember.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Best seconds of 5 rounds of one call (k 0: the full argsort). */
static double best_of(em_tensor *x, int64_t k) {
    double best = 1e30;
    for (int r = 0; r < 5; r++) {
        em_scope_begin();
        double t = now();
        em_tensor *v, *i;
        if (k ? em_top_k(x, k, true, &v, &i) : !em_argsort(x, -1, true)) {
            fprintf(stderr, "top_k: %s\n", em_last_error());
            exit(1);
        }
        t = now() - t;
        em_scope_end();
        if (t < best) best = t;
    }
    return best;
}

int main(int argc, char **argv) {
    if (argc > 1) em_set_num_threads(atoi(argv[1]));
    em_set_seed(1);
    em_tensor *x = em_random_normal(EM_F32, EM_SHAPE(64, 65536), 0, 1);
    double n = 64.0 * 65536.0;
    printf("float32 [64, 65536], %d threads\n", em_num_threads());
    for (int64_t k = 1; k <= 32; k *= 4 * (k > 1) + 8 * (k == 1)) {
        double t = best_of(x, k);
        printf("em_top_k k=%-3lld %8.3f ms  %6.2f ns/element\n", (long long)k, 1e3 * t, 1e9 * t / n);
    }
    double t = best_of(x, 0);
    printf("em_argsort      %8.3f ms  %6.2f ns/element (a full stable sort of each row)\n", 1e3 * t, 1e9 * t / n);
    em_shutdown();
    return 0;
}
