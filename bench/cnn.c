/* The Deep MNIST CNN training step (examples/deep_mnist.c's network: two 5x5
 * SAME convolutions with bias and ReLU, 2x2 max pools, fc 3136 -> 1024 ReLU,
 * dropout 0.5, fc 1024 -> 10, softmax cross-entropy, Adam 1e-4), batch 100,
 * eagerly and as a traced graph, beside PyTorch doing the same step with the
 * same threads in the same run (bench/torch_cnn.py).
 *
 *   build/bench/cnn [threads...]      (default: 1 2)
 *   EMBER_BENCH_NO_TORCH=1 build/bench/cnn 1    (Ember only, e.g. under perf)
 */
#include <ember.h>

#include "deep_mnist_cnn.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void fail(const char *what) {
    fprintf(stderr, "cnn: %s: %s\n", what, em_last_error() ? em_last_error() : "failed");
    exit(1);
}

/* Best milliseconds per step over 5 rounds of `steps`, after a warm-up round:
 * eagerly (a tape per step), or traced once into a graph and replayed. */
static double step_ms(int steps, bool graph) {
    em_set_seed(0);
    em_tensor *vars[8];
    cnn_variables(vars);
    em_tensor *x = em_keep(em_random_uniform(EM_F32, EM_SHAPE(100, 28, 28, 1), 0, 1));
    int64_t labels[100];
    for (int i = 0; i < 100; i++) labels[i] = i % 10;
    em_tensor *y = em_keep(em_tensor_from(EM_I64, EM_SHAPE(100), labels));
    em_optimizer *adam = em_adam(1e-4, 0.9, 0.999, 1e-8);
    em_graph *g = NULL;
    em_tensor *px = NULL, *py = NULL, *train = NULL;
    if (graph) {
        px = em_keep(em_placeholder(EM_F32, EM_SHAPE(-1, 28, 28, 1), "x"));
        py = em_keep(em_placeholder(EM_I64, EM_SHAPE(-1), "y"));
        if (em_trace_begin()) fail("trace");
        em_tape *tape = em_tape_begin(false);
        em_tensor *loss = cnn_loss(vars, px, py);
        em_tape_stop(tape);
        train = em_keep(em_minimize_op(adam, tape, loss, 8, vars));
        em_tape_release(tape);
        if (!(g = em_trace_end()) || !train) fail("trace");
    }
    em_feed feeds[2] = {{px, x}, {py, y}};
    double best = 1e9;
    for (int round = 0; round < 6; round++) {
        double t = now();
        for (int s = 0; s < steps; s++) {
            if (graph) {
                em_tensor *out;
                if (em_graph_run(g, 2, feeds, 1, &train, &out)) fail("graph step");
                continue;
            }
            em_scope_begin();
            em_tape *tape = em_tape_begin(false);
            em_tensor *loss = cnn_loss(vars, x, y);
            em_tape_stop(tape);
            if (em_minimize(adam, tape, loss, 8, vars)) fail("eager step");
            em_tape_release(tape);
            em_scope_end();
        }
        double ms = (now() - t) / steps * 1e3;
        if (round > 0 && ms < best) best = ms;
    }
    em_graph_release(g);
    em_release(px);
    em_release(py);
    em_release(train);
    em_optimizer_release(adam);
    em_release(x);
    em_release(y);
    em_variables_release();
    return best;
}

/* PyTorch's step in ms from bench/torch_cnn.py, or 0 when unavailable. */
static double torch_ms(int threads, char *version, size_t size) {
    char cmd[256], line[256] = "";
    snprintf(cmd, sizeof cmd,
             "OMP_NUM_THREADS=%d OPENBLAS_NUM_THREADS=%d /usr/bin/python3 bench/torch_cnn.py %d 2>/dev/null", threads,
             threads, threads);
    FILE *p = popen(cmd, "r");
    if (p) {
        if (!fgets(line, sizeof line, p)) line[0] = '\0';
        pclose(p);
    }
    char v[64];
    double us;
    if (sscanf(line, "torch %63s step_us %lf", v, &us) != 2) return 0;
    snprintf(version, size, "%s", v);
    return us / 1e3;
}

int main(int argc, char **argv) {
    int list[8] = {1, 2}, n = 2;
    if (argc > 1) {
        n = 0;
        for (int i = 1; i < argc && n < 8; i++) list[n++] = atoi(argv[i]);
    }
    char version[64] = "";
    printf("Deep MNIST CNN training step, batch 100 (forward + backward + Adam)\n");
    printf("%-8s %12s %12s %12s %14s\n", "threads", "eager (ms)", "graph (ms)", "pytorch (ms)", "ratio e / g");
    for (int i = 0; i < n; i++) {
        em_set_num_threads(list[i]);
        double e = step_ms(10, false), gr = step_ms(10, true);
        double t = getenv("EMBER_BENCH_NO_TORCH") ? 0 : torch_ms(list[i], version, sizeof version);
        if (t > 0) printf("%-8d %12.2f %12.2f %12.2f %7.3f / %.3f\n", list[i], e, gr, t, e / t, gr / t);
        else printf("%-8d %12.2f %12.2f %12s %14s\n", list[i], e, gr, "n/a", "-");
        fflush(stdout);
    }
    if (version[0]) printf("pytorch %s via /usr/bin/python3 (ratio = ember / pytorch)\n", version);
    else printf("pytorch: not available via /usr/bin/python3\n");
    em_shutdown();
    return 0;
}
