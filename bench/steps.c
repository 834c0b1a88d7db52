/* Training steps and dispatch, eager and as traced graphs, beside PyTorch
 * doing the same work with the same threads in the same run
 * (bench/torch_steps.py, eager and torch.jit.trace).
 *
 *   build/bench/steps [threads]      (default 1)
 *
 * Rows: a 1-element add without and with a recording tape; the MNIST MLP
 * step (784-500-10, ReLU, dropout 0.1, batch 100, Adam 1e-3); the lecture's
 * logistic regression step (3 examples x 5 features, sigmoid cross-entropy,
 * SGD 0.003), where dispatch dominates. Each: best of 5 rounds, per call.
 * Then one whole MNIST epoch of the MLP (600 steps of 100), timed once each
 * eagerly, as a graph and in PyTorch. */
#include <ember.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef void (*run_fn)(void *ctx, int reps);

/* Best of 5 rounds of `reps` calls after a warm-up, in microseconds per call. */
static double best_us(run_fn fn, void *ctx, int reps) {
    fn(ctx, reps / 10 + 1);
    double best = 1e30;
    for (int r = 0; r < 5; r++) {
        double t = now();
        fn(ctx, reps);
        double us = (now() - t) / reps * 1e6;
        if (us < best) best = us;
    }
    return best;
}

static void fail(const char *what) {
    fprintf(stderr, "steps: %s: %s\n", what, em_last_error() ? em_last_error() : "failed");
    exit(1);
}

/* ---- dispatch ---- */

typedef struct {
    em_tensor *a, *b;
    bool taped;
} adds;

/* A scope (and a tape) per 100 adds, as a loop body would have. */
static void run_adds(void *ctx, int reps) {
    adds *c = ctx;
    for (int done = 0; done < reps; done += 100) {
        em_scope_begin();
        em_tape *tape = c->taped ? em_tape_begin(false) : NULL;
        for (int i = 0; i < 100; i++) em_add(c->a, c->b);
        em_tape_release(tape);
        em_scope_end();
    }
}

/* ---- a model: its step eagerly, or traced once and replayed ---- */

typedef struct model model;
struct model {
    em_tensor *x, *y;          /* the batch */
    em_tensor *vars[4];
    int nvars;
    em_optimizer *opt;
    em_tensor *(*loss)(model *m, em_tensor *x, em_tensor *y);
    em_graph *graph;
    em_tensor *px, *py, *train; /* placeholders and the train op */
};

static void eager_steps(void *ctx, int reps) {
    model *m = ctx;
    for (int s = 0; s < reps; s++) {
        em_scope_begin();
        em_tape *tape = em_tape_begin(false);
        em_tensor *loss = m->loss(m, m->x, m->y);
        em_tape_stop(tape);
        if (em_minimize(m->opt, tape, loss, m->nvars, m->vars)) fail("eager step");
        em_tape_release(tape);
        em_scope_end();
    }
}

static void graph_steps(void *ctx, int reps) {
    model *m = ctx;
    em_feed feeds[2] = {{m->px, m->x}, {m->py, m->y}};
    em_tensor *out;
    for (int s = 0; s < reps; s++)
        if (em_graph_run(m->graph, 2, feeds, 1, &m->train, &out)) fail("graph step");
}

/* Seconds for one MNIST epoch of steps (600 batches of 100), timed once. */
static double epoch_s(run_fn fn, void *ctx) {
    double t = now();
    fn(ctx, 600);
    return now() - t;
}

static void trace(model *m) {
    em_shape xs = em_tensor_shape(m->x), ys = em_tensor_shape(m->y);
    xs.dims[0] = ys.dims[0] = -1;
    m->px = em_keep(em_placeholder(em_tensor_dtype(m->x), xs, "x"));
    m->py = em_keep(em_placeholder(em_tensor_dtype(m->y), ys, "y"));
    if (em_trace_begin()) fail("trace");
    em_tape *tape = em_tape_begin(false);
    em_tensor *loss = m->loss(m, m->px, m->py);
    em_tape_stop(tape);
    m->train = em_keep(em_minimize_op(m->opt, tape, loss, m->nvars, m->vars));
    em_tape_release(tape);
    m->graph = em_trace_end();
    if (!m->graph || !m->train) fail("trace");
}

static em_tensor *mlp_loss(model *m, em_tensor *x, em_tensor *y) {
    em_tensor *h = em_dropout(em_relu(em_add(em_matmul(x, m->vars[0]), m->vars[1])), 0.9);
    em_tensor *logits = em_add(em_matmul(h, m->vars[2]), m->vars[3]);
    return em_mean(em_sparse_softmax_cross_entropy_with_logits(y, logits), EM_ALL_AXES, false);
}

static em_tensor *logreg_loss(model *m, em_tensor *x, em_tensor *y) {
    em_tensor *logits = em_add(em_matmul(x, m->vars[0]), m->vars[1]);
    return em_mean(em_sigmoid_cross_entropy_with_logits(y, logits), EM_ALL_AXES, false);
}

static model make_mlp(const char *scope) {
    model m = {.nvars = 4, .loss = mlp_loss, .opt = em_adam(1e-3, 0.9, 0.999, 1e-8)};
    em_variable_scope_begin(scope, EM_REUSE_FALSE);
    m.vars[0] = em_get_variable("w1", EM_F32, EM_SHAPE(784, 500), EM_INIT_TRUNC_NORMAL(0, 0.1));
    m.vars[1] = em_get_variable("b1", EM_F32, EM_SHAPE(500), EM_INIT_CONST(0.1));
    m.vars[2] = em_get_variable("w2", EM_F32, EM_SHAPE(500, 10), EM_INIT_TRUNC_NORMAL(0, 0.1));
    m.vars[3] = em_get_variable("b2", EM_F32, EM_SHAPE(10), EM_INIT_CONST(0.1));
    em_variable_scope_end();
    m.x = em_keep(em_random_uniform(EM_F32, EM_SHAPE(100, 784), 0, 1));
    int64_t labels[100];
    for (int i = 0; i < 100; i++) labels[i] = i % 10;
    m.y = em_keep(em_tensor_from(EM_I64, EM_SHAPE(100), labels));
    return m;
}

static model make_logreg(const char *scope) {
    model m = {.nvars = 2, .loss = logreg_loss, .opt = em_sgd(0.003)};
    em_variable_scope_begin(scope, EM_REUSE_FALSE);
    m.vars[0] = em_get_variable("W", EM_F32, EM_SHAPE(5, 1), EM_INIT_NORMAL(0, 1));
    m.vars[1] = em_get_variable("b", EM_F32, EM_SHAPE(1, 1), EM_INIT_NORMAL(0, 1));
    em_variable_scope_end();
    m.x = em_keep(em_random_normal(EM_F32, EM_SHAPE(3, 5), 0, 1));
    m.y = em_keep(em_tensor_from(EM_F32, EM_SHAPE(3, 1), (float[]){0, 0, 1}));
    return m;
}

static void model_release(model *m) {
    em_graph_release(m->graph);
    em_optimizer_release(m->opt);
    em_release(m->x);
    em_release(m->y);
    em_release(m->px);
    em_release(m->py);
    em_release(m->train);
}

/* Peak RSS (MiB) of a process that only trains the MLP eagerly, 200 steps:
 * measured in a child so that nothing else the benchmark holds counts. */
static double mlp_alone_rss(int threads) {
    int fd[2];
    if (pipe(fd)) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        em_set_num_threads(threads);
        model m = make_mlp("alone");
        eager_steps(&m, 200);
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        double mib = (double)ru.ru_maxrss / 1024.0;
        ssize_t w = write(fd[1], &mib, sizeof mib);
        _exit(w == sizeof mib ? 0 : 1);
    }
    double mib = -1;
    if (pid < 0 || read(fd[0], &mib, sizeof mib) != sizeof mib) mib = -1;
    close(fd[0]);
    close(fd[1]);
    if (pid > 0) waitpid(pid, NULL, 0);
    return mib;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    if (getenv("EMBER_BENCH_MLP_ONLY")) { /* bench/peers/run.py's row: the MLP step alone */
        em_set_num_threads(threads);
        em_set_seed(1);
        model e = make_mlp("mlp_eager"), g = make_mlp("mlp_graph");
        trace(&g);
        double eager = best_us(eager_steps, &e, 50), graph = best_us(graph_steps, &g, 50);
        printf("ember mlp eager_ms %.4f graph_ms %.4f\n", eager / 1e3, graph / 1e3);
        em_shutdown();
        return 0;
    }
    double alone = mlp_alone_rss(threads); /* before this process grows */
    em_set_num_threads(threads);
    em_set_seed(1);

    adds ad = {em_keep(em_ones(EM_F32, EM_SHAPE(1))), em_keep(em_ones(EM_F32, EM_SHAPE(1))), false};
    double add = best_us(run_adds, &ad, 100000);
    ad.taped = true;
    double add_tape = best_us(run_adds, &ad, 100000);
    em_release(ad.a);
    em_release(ad.b);

    model mlp_e = make_mlp("mlp_eager"), mlp_g = make_mlp("mlp_graph");
    model lr_e = make_logreg("lr_eager"), lr_g = make_logreg("lr_graph");
    trace(&mlp_g);
    trace(&lr_g);
    double mlp_eager = best_us(eager_steps, &mlp_e, 50), mlp_graph = best_us(graph_steps, &mlp_g, 50);
    double lr_eager = best_us(eager_steps, &lr_e, 2000), lr_graph = best_us(graph_steps, &lr_g, 2000);
    double epoch_eager = epoch_s(eager_steps, &mlp_e), epoch_graph = epoch_s(graph_steps, &mlp_g);
    em_graph_stats st = em_graph_get_stats(mlp_g.graph);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss = (double)ru.ru_maxrss / 1024.0;

    char cmd[256], line[1024] = "";
    snprintf(cmd, sizeof cmd,
             "OMP_NUM_THREADS=%d OPENBLAS_NUM_THREADS=%d MKL_NUM_THREADS=%d /usr/bin/python3 bench/torch_steps.py %d 2>/dev/null",
             threads, threads, threads, threads);
    FILE *p = popen(cmd, "r");
    if (p) {
        if (!fgets(line, sizeof line, p)) line[0] = '\0';
        pclose(p);
    }
    char version[64] = "";
    double t_add = 0, t_add_grad = 0, t_mlp = 0, t_mlp_jit = 0, t_lr = 0, t_lr_jit = 0, t_epoch = 0, t_rss = 0;
    bool torch = sscanf(line,
                        "torch %63s add_us %lf add_grad_us %lf mlp_us %lf mlp_jit_us %lf logreg_us %lf "
                        "logreg_jit_us %lf mlp_epoch_s %lf peak_rss_mib %lf",
                        version, &t_add, &t_add_grad, &t_mlp, &t_mlp_jit, &t_lr, &t_lr_jit, &t_epoch, &t_rss) == 9;

    printf("threads: %d   (MLP graph: %lld nodes, %lld fused, arena %.1f MiB vs %.1f MiB without reuse)\n", threads,
           (long long)st.nodes, (long long)st.fused, st.arena_bytes / 1048576.0, st.unplanned_bytes / 1048576.0);
    printf("%-40s %12s %12s %10s\n", "per call (us)", "ember", torch ? "pytorch" : "pytorch n/a", "ember/pt");
#define ROW(name, e, t)                                                                                               \
    do {                                                                                                               \
        if (torch && (t) > 0) printf("%-40s %12.3f %12.3f %9.3fx\n", name, e, t, (e) / (t));                          \
        else printf("%-40s %12.3f %12s %10s\n", name, e, "n/a", "n/a");                                              \
    } while (0)
    ROW("add, 1 element, no tape", add, t_add);
    ROW("add, 1 element, recording", add_tape, t_add_grad);
    ROW("MLP step: ember eager / torch eager", mlp_eager, t_mlp);
    ROW("MLP step: ember graph / torch eager", mlp_graph, t_mlp);
    ROW("MLP step: ember graph / torch jit.trace", mlp_graph, t_mlp_jit);
    ROW("logreg step: ember eager / torch eager", lr_eager, t_lr);
    ROW("logreg step: ember graph / torch eager", lr_graph, t_lr);
    ROW("logreg step: ember graph / torch jit.trace", lr_graph, t_lr_jit);
    ROW("MLP epoch (s): ember eager / torch eager", epoch_eager, t_epoch);
    ROW("MLP epoch (s): ember graph / torch eager", epoch_graph, t_epoch);
    printf("%-40s %12.2fx\n", "MLP step: ember eager / ember graph", mlp_eager / mlp_graph);
    printf("%-40s %12.2fx\n", "logreg step: ember eager / ember graph", lr_eager / lr_graph);
    ROW("peak RSS, MLP eager training alone (MiB)", alone, t_rss);
    printf("%-40s %12.1f\n", "peak RSS, this whole benchmark (MiB)", rss);
    if (torch) printf("pytorch %s via /usr/bin/python3, torch.set_num_threads(%d)\n", version, threads);
    else printf("pytorch: not available (%s)\n", line[0] ? line : "no output");
    model_release(&mlp_e);
    model_release(&mlp_g);
    model_release(&lr_e);
    model_release(&lr_g);
    em_shutdown();
    return 0;
}
