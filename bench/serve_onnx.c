/* Serving a trained network: inference latency at batch 1 and throughput at
 * batch 100 of the MNIST MLP (examples/mnist.c: 784 -> 500 ReLU -> 10) and
 * the Deep MNIST CNN (bench/cnn.c's network), softmax probabilities out.
 * Ember eagerly and as a traced graph; then onnxruntime on the ONNX files
 * Ember exports, and PyTorch eager with the same weights where it is
 * installed, with the same threads (bench/serve_peers.py). Medians: the
 * machine is shared.
 *
 *   build/bench/serve_onnx [threads]      (default 1)
 *   EMBER_BENCH_NO_PEERS=1 build/bench/serve_onnx 1    (Ember only)
 */
#include <ember.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void fail(const char *what) {
    fprintf(stderr, "serve: %s: %s\n", what, em_last_error() ? em_last_error() : "failed");
    exit(1);
}

static em_tensor *dense(const char *scope, em_tensor *x, int64_t in, int64_t out) {
    em_variable_scope_begin(scope, EM_REUSE_AUTO);
    em_tensor *w = em_get_variable("weights", EM_F32, EM_SHAPE(in, out), EM_INIT_TRUNC_NORMAL(0, 0.1));
    em_tensor *b = em_get_variable("biases", EM_F32, EM_SHAPE(out), EM_INIT_CONST(0.1));
    em_variable_scope_end();
    return em_add(em_matmul(x, w), b);
}

static em_tensor *conv_relu_pool(const char *scope, em_tensor *x, int64_t in, int64_t out) {
    const int two[2] = {2, 2};
    em_variable_scope_begin(scope, EM_REUSE_AUTO);
    em_tensor *w = em_get_variable("weights", EM_F32, EM_SHAPE(5, 5, in, out), EM_INIT_TRUNC_NORMAL(0, 0.1));
    em_tensor *b = em_get_variable("biases", EM_F32, EM_SHAPE(out), EM_INIT_CONST(0.1));
    em_variable_scope_end();
    return em_max_pool(em_relu(em_add(em_conv2d(x, w, NULL, EM_PAD_SAME, NULL), b)), two, two, EM_PAD_SAME);
}

/* x [batch, 784] -> probabilities [batch, 10]. */
static em_tensor *mlp(em_tensor *x) {
    return em_softmax(dense("mlp/layer2", em_relu(dense("mlp/layer1", x, 784, 500)), 500, 10), -1);
}

static em_tensor *cnn(em_tensor *x) {
    em_tensor *h = em_reshape(x, EM_SHAPE(-1, 28, 28, 1));
    h = conv_relu_pool("cnn/conv2", conv_relu_pool("cnn/conv1", h, 1, 32), 32, 64);
    h = em_relu(dense("cnn/fc1", em_reshape(h, EM_SHAPE(-1, 7 * 7 * 64)), 7 * 7 * 64, 1024));
    return em_softmax(dense("cnn/fc2", h, 1024, 10), -1);
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median seconds of one forward pass over runs (after a few to warm up). */
static double median_s(em_tensor *(*net)(em_tensor *), em_graph *g, em_tensor *px, em_tensor *probs, em_tensor *x,
                       int runs) {
    double t[400];
    for (int r = -3; r < runs; r++) {
        double start = now();
        if (g) {
            em_tensor *out;
            if (em_graph_run(g, 1, (em_feed[]){{px, x}}, 1, &probs, &out)) fail("graph run");
        } else {
            em_scope_begin();
            if (!em_data(net(x))) fail("eager forward");
            em_scope_end();
        }
        if (r >= 0) t[r] = now() - start;
    }
    qsort(t, (size_t)runs, sizeof t[0], by_value);
    return t[runs / 2];
}

static void report(const char *model, const char *runtime, double b1_s, double b100_s) {
    printf("%-4s %-14s %14.1f %16.0f\n", model, runtime, b1_s * 1e6, 100 / b100_s);
    fflush(stdout);
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    em_set_num_threads(threads);
    em_set_seed(1);
    char dir[] = "/tmp/ember_serve_XXXXXX";
    if (!mkdtemp(dir)) fail("making a directory");
    printf("MNIST inference, %d thread%s: latency at batch 1 (median, us), throughput at batch 100 (median, "
           "images/s)\n",
           threads, threads == 1 ? "" : "s");
    printf("%-4s %-14s %14s %16s\n", "net", "runtime", "batch 1 (us)", "batch 100 (im/s)");
    struct {
        const char *name;
        em_tensor *(*net)(em_tensor *);
    } nets[2] = {{"mlp", mlp}, {"cnn", cnn}};
    for (int i = 0; i < 2; i++) {
        em_scope_begin();
        em_tensor *x1 = em_random_uniform(EM_F32, EM_SHAPE(1, 784), 0, 1);
        em_tensor *x100 = em_random_uniform(EM_F32, EM_SHAPE(100, 784), 0, 1);
        em_tensor *px = em_placeholder(EM_F32, EM_SHAPE(-1, 784), "x");
        if (em_trace_begin()) fail("trace");
        em_tensor *probs = nets[i].net(px);
        em_graph *g = em_trace_end();
        if (!g || !probs) fail("trace");
        int runs1 = i ? 100 : 400, runs100 = i ? 10 : 100;
        report(nets[i].name, "ember eager", median_s(nets[i].net, NULL, NULL, NULL, x1, runs1),
               median_s(nets[i].net, NULL, NULL, NULL, x100, runs100));
        report(nets[i].name, "ember graph", median_s(NULL, g, px, probs, x1, runs1),
               median_s(NULL, g, px, probs, x100, runs100));
        char path[64];
        snprintf(path, sizeof path, "%s/%s.onnx", dir, nets[i].name);
        if (em_graph_export_onnx(g, path, 1, &probs, (const char *[]){"probabilities"}, 17)) fail("export");
        em_graph_release(g);
        em_scope_end();
    }
    /* PyTorch reads the weights from .npy files: its python may lack onnx */
    em_tensor *vars[16];
    int nvars = em_global_variables(vars, 16);
    for (int i = 0; i < nvars; i++) {
        char path[160];
        int n = snprintf(path, sizeof path, "%s/", dir);
        for (const char *c = em_variable_name(vars[i]); *c && n < 150; c++) path[n++] = *c == '/' ? '_' : *c;
        snprintf(path + n, sizeof path - (size_t)n, ".npy");
        if (em_save_npy(path, vars[i])) fail("saving the weights");
    }
    if (!getenv("EMBER_BENCH_NO_PEERS")) {
        char cmd[512];
        snprintf(cmd, sizeof cmd,
                 "export OMP_NUM_THREADS=%d; python3 bench/serve_peers.py onnxruntime %d %s; "
                 "for py in python3 /usr/bin/python3; do if $py -c 'import torch' 2>/dev/null; then "
                 "exec $py bench/serve_peers.py pytorch %d %s; fi; done; echo '(PyTorch is not installed: no PyTorch rows)'",
                 threads, threads, dir, threads, dir);
        if (system(cmd)) printf("(bench/serve_peers.py failed)\n");
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) fprintf(stderr, "serve: could not remove %s\n", dir);
    em_variables_release();
    return 0;
}
