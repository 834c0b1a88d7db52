/* em_cumsum on [1024, 4096] float32 (16 MiB) beside em_sum over the same
 * axis and em_add(x, x) (one read stream, one write: the memory baseline),
 * in the same run and thread count:
 *   axis 0: 4096 neighbouring lines walked together (the vectorized blocks);
 *   axis 1: one line per row (inner 1), each scanned alone.
 *
 *   build/bench/scan [threads]     (default: EM_NUM_THREADS, else all cores)
 *
 * Each figure is the best of 7 samples of >= 20 ms; GB/s counts the bytes an
 * op must move (cumsum and add: read and write n floats; sum: read them). */
#include <ember.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { ROWS = 1024, COLS = 4096 };

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef em_tensor *(*op_fn)(em_tensor *x, int axis);
static em_tensor *cumsum(em_tensor *x, int axis) { return em_cumsum(x, axis, false, false); }
static em_tensor *sum(em_tensor *x, int axis) { return em_sum(x, EM_AXES(axis), false); }
static em_tensor *add(em_tensor *x, int axis) { return (void)axis, em_add(x, x); }

/* Seconds per call: best of 7 samples, each >= 20 ms of calls. */
static double per_call(op_fn f, em_tensor *x, int axis) {
    double best = 1e30;
    for (int s = 0; s < 7; s++) {
        int calls = 0;
        double t0 = now(), t;
        do {
            em_scope_begin();
            if (!f(x, axis)) {
                fprintf(stderr, "scan: %s\n", em_last_error());
                exit(1);
            }
            em_scope_end();
            calls++;
        } while ((t = now() - t0) < 0.02);
        if (t / calls < best) best = t / calls;
    }
    return best;
}

int main(int argc, char **argv) {
    if (argc > 1) em_set_num_threads(atoi(argv[1]));
    em_set_seed(1);
    em_tensor *x = em_random_uniform(EM_F32, EM_SHAPE(ROWS, COLS), -1, 1);
    double bytes = (double)ROWS * COLS * sizeof(float);
    double t_add = per_call(add, x, 0);
    printf("scan [%d, %d] float32, %d threads\n", ROWS, COLS, em_num_threads());
    printf("  add (baseline)   %7.3f ms  %6.1f GB/s\n", t_add * 1e3, 2 * bytes / t_add * 1e-9);
    for (int axis = 0; axis < 2; axis++) {
        double tc = per_call(cumsum, x, axis), ts = per_call(sum, x, axis);
        printf("  cumsum axis %d    %7.3f ms  %6.1f GB/s  (%.0f%% of add's)\n", axis, tc * 1e3, 2 * bytes / tc * 1e-9,
               100 * t_add / tc);
        printf("  sum axis %d       %7.3f ms  %6.1f GB/s\n", axis, ts * 1e3, bytes / ts * 1e-9);
    }
    em_shutdown();
    return 0;
}
