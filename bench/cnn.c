/* The Deep MNIST CNN training step (examples/deep_mnist.c's network: two 5x5
 * SAME convolutions with bias and ReLU, 2x2 max pools, fc 3136 -> 1024 ReLU,
 * dropout 0.5, fc 1024 -> 10, softmax cross-entropy, Adam 1e-4), batch 100,
 * eagerly and as a traced graph (alternating, round by round, in one process),
 * beside PyTorch doing the same step with the same threads in the same run
 * (bench/torch_cnn.py).
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

/* One way of running the step: eagerly (a tape per step), or traced once into a graph and replayed; its
 * variables in their own scope, so that both live at once. */
typedef struct {
    bool graph;
    em_tensor *vars[8], *x, *y, *px, *py, *train;
    em_optimizer *adam;
    em_graph *g;
} stepper;

static void stepper_init(stepper *s, bool graph) {
    *s = (stepper){.graph = graph};
    em_set_seed(0);
    em_variable_scope_begin(graph ? "graph" : "eager", EM_REUSE_FALSE);
    cnn_variables(s->vars);
    em_variable_scope_end();
    s->x = em_keep(em_random_uniform(EM_F32, EM_SHAPE(100, 28, 28, 1), 0, 1));
    int64_t labels[100];
    for (int i = 0; i < 100; i++) labels[i] = i % 10;
    s->y = em_keep(em_tensor_from(EM_I64, EM_SHAPE(100), labels));
    s->adam = em_adam(1e-4, 0.9, 0.999, 1e-8);
    if (!graph) return;
    s->px = em_keep(em_placeholder(EM_F32, EM_SHAPE(-1, 28, 28, 1), "x"));
    s->py = em_keep(em_placeholder(EM_I64, EM_SHAPE(-1), "y"));
    if (em_trace_begin()) fail("trace");
    em_tape *tape = em_tape_begin(false);
    em_tensor *loss = cnn_loss(s->vars, s->px, s->py);
    em_tape_stop(tape);
    s->train = em_keep(em_minimize_op(s->adam, tape, loss, 8, s->vars));
    em_tape_release(tape);
    if (!(s->g = em_trace_end()) || !s->train) fail("trace");
}

/* Milliseconds per step over `steps` steps. */
static double stepper_round(stepper *s, int steps) {
    em_feed feeds[2] = {{s->px, s->x}, {s->py, s->y}};
    double t = now();
    for (int k = 0; k < steps; k++) {
        if (s->graph) {
            em_tensor *out;
            if (em_graph_run(s->g, 2, feeds, 1, &s->train, &out)) fail("graph step");
            continue;
        }
        em_scope_begin();
        em_tape *tape = em_tape_begin(false);
        em_tensor *loss = cnn_loss(s->vars, s->x, s->y);
        em_tape_stop(tape);
        if (em_minimize(s->adam, tape, loss, 8, s->vars)) fail("eager step");
        em_tape_release(tape);
        em_scope_end();
    }
    return (now() - t) / steps * 1e3;
}

static void stepper_free(stepper *s) {
    em_graph_release(s->g);
    em_release(s->px);
    em_release(s->py);
    em_release(s->train);
    em_optimizer_release(s->adam);
    em_release(s->x);
    em_release(s->y);
}

/* Best milliseconds per step, eager (*eager) and graph (*graph), over 5 rounds of `steps` each after a
 * warm-up round, the two alternating round by round so that both see the same machine. */
static void step_ms(int steps, double *eager, double *graph, em_graph_stats *stats) {
    stepper e, g;
    stepper_init(&e, false);
    stepper_init(&g, true);
    *eager = *graph = 1e9;
    for (int round = 0; round < 6; round++) {
        double te = stepper_round(&e, steps), tg = stepper_round(&g, steps);
        if (round > 0 && te < *eager) *eager = te;
        if (round > 0 && tg < *graph) *graph = tg;
    }
    *stats = em_graph_get_stats(g.g);
    stepper_free(&e);
    stepper_free(&g);
    em_variables_release();
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
        double e, gr;
        em_graph_stats st;
        step_ms(10, &e, &gr, &st);
        double t = getenv("EMBER_BENCH_NO_TORCH") ? 0 : torch_ms(list[i], version, sizeof version);
        if (t > 0) printf("%-8d %12.2f %12.2f %12.2f %7.3f / %.3f\n", list[i], e, gr, t, e / t, gr / t);
        else printf("%-8d %12.2f %12.2f %12s %14s\n", list[i], e, gr, "n/a", "-");
        printf("  graph: %lld nodes, %lld in fused chains, %lld run inside other kernels\n", (long long)st.nodes,
               (long long)st.fused, (long long)st.epilogues);
        fflush(stdout);
    }
    if (version[0]) printf("pytorch %s via /usr/bin/python3 (ratio = ember / pytorch)\n", version);
    else printf("pytorch: not available via /usr/bin/python3\n");
    em_shutdown();
    return 0;
}
