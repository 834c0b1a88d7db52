/* Serving a trained network: the MNIST MLP (examples/mnist.c, 784 -> 500 ->
 * 10) and the Deep MNIST CNN (examples/deep_mnist.c, without dropout), each
 * traced once and written from that trace as a frozen saved graph
 * (em_graph_save, EM_SAVE_INFERENCE | EM_SAVE_FREEZE) and as ONNX
 * (em_graph_export_onnx). Ember's graph loaded from its file as a program
 * that never defined the model would, beside onnxruntime on the ONNX file
 * and PyTorch eager on the same weights (bench/serve_peers.py; each where its
 * Python has it), all on the same inputs and threads: the latency of one
 * image and the throughput of batches of 100 (medians of about 0.5 s of runs:
 * the machine may be shared), Ember's time over onnxruntime's; then the load
 * time, and the peak RSS of a process that only loads and runs the file
 * (against the weights' size).
 *
 *   build/bench/serve [threads]          the tables (default: 1 thread)
 *   build/bench/serve --write DIR        leaves DIR/{mlp,cnn}.{emg,onnx}, the weights
 *                                        DIR/{mlp,cnn}_<variable>.npy and the inputs DIR/x{1,100}.npy
 *   build/bench/serve --large MB [DIR]   load time of a frozen model of MB megabytes
 *                                        against the disk's read speed, cold and warm
 *
 * The peers' Python: $EMBER_BENCH_PYTHON, else bench/.venv/bin/python (make
 * bench-peers), else python3; EMBER_BENCH_NO_PEERS=1 leaves them out. Run
 * from the project root. Each table is whitespace-separated columns under a
 * '#'-free header line, for scripts. */
#include <ember.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void fail(const char *what) {
    fprintf(stderr, "serve: %s: %s\n", what, em_last_error() ? em_last_error() : "failed");
    exit(1);
}

/* ---- the models ---- */

static em_tensor *weights(const char *name, em_shape shape) {
    return em_get_variable(name, EM_F32, shape, EM_INIT_TRUNC_NORMAL(0, 0.1));
}

static em_tensor *mlp(em_tensor *x) {
    em_tensor *h = em_relu(em_bias_add(em_matmul(x, weights("w1", EM_SHAPE(784, 500))), weights("b1", EM_SHAPE(500))));
    return em_softmax(em_bias_add(em_matmul(h, weights("w2", EM_SHAPE(500, 10))), weights("b2", EM_SHAPE(10))), -1);
}

static em_tensor *conv_relu_pool(em_tensor *x, const char *w, const char *b, em_shape filter) {
    const int two[2] = {2, 2};
    em_tensor *h = em_conv2d(x, weights(w, filter), NULL, EM_PAD_SAME, NULL);
    h = em_relu(em_bias_add(h, weights(b, EM_SHAPE(filter.dims[3]))));
    return em_max_pool(h, two, two, EM_PAD_SAME);
}

static em_tensor *cnn(em_tensor *x) {
    em_tensor *h = conv_relu_pool(em_reshape(x, EM_SHAPE(em_dim(x, 0), 28, 28, 1)), "c1", "cb1", EM_SHAPE(5, 5, 1, 32));
    h = conv_relu_pool(h, "c2", "cb2", EM_SHAPE(5, 5, 32, 64));
    h = em_matmul(em_reshape(h, EM_SHAPE(em_dim(x, 0), 7 * 7 * 64)), weights("f1", EM_SHAPE(7 * 7 * 64, 1024)));
    h = em_relu(em_bias_add(h, weights("fb1", EM_SHAPE(1024))));
    return em_softmax(em_bias_add(em_matmul(h, weights("f2", EM_SHAPE(1024, 10))), weights("fb2", EM_SHAPE(10))), -1);
}

static const struct model {
    const char *name;
    em_tensor *(*forward)(em_tensor *);
} models[2] = {{"mlp", mlp}, {"cnn", cnn}};

/* Traces m on x [-1, 784] and writes, from that one trace, DIR/<name>.emg (frozen) and DIR/<name>.onnx
 * ("x" -> "probabilities"), and the weights as DIR/<name>_<variable>.npy for PyTorch. */
static void write_model(const struct model *m, const char *dir) {
    char path[1024];
    em_set_seed(1);
    em_scope_begin();
    em_tensor *x = em_placeholder(EM_F32, EM_SHAPE(-1, 784), "x");
    if (!x || em_trace_begin()) fail("trace");
    em_tensor *p = m->forward(x);
    em_graph *g = em_trace_end();
    const char *fetch[] = {"probabilities"};
    snprintf(path, sizeof path, "%s/%s.emg", dir, m->name);
    if (!g || em_graph_save(g, path, 1, &p, fetch, EM_SAVE_INFERENCE | EM_SAVE_FREEZE)) fail("save");
    snprintf(path, sizeof path, "%s/%s.onnx", dir, m->name);
    if (em_graph_export_onnx(g, path, 1, &p, fetch, 17)) fail("ONNX export");
    em_tensor *vars[16];
    int n = em_global_variables(vars, 16);
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s_%s.npy", dir, m->name, em_variable_name(vars[i]));
        if (em_save_npy(path, vars[i])) fail("saving the weights");
    }
    em_graph_release(g);
    em_scope_end();
    em_variables_release();
}

/* Both models and the inputs DIR/x1.npy and DIR/x100.npy (uniform in [0, 1), as pixels). */
static void write_files(const char *dir) {
    for (int m = 0; m < 2; m++) write_model(&models[m], dir);
    for (int64_t batch = 1; batch <= 100; batch *= 100) {
        char path[1024];
        snprintf(path, sizeof path, "%s/x%lld.npy", dir, (long long)batch);
        em_set_seed(2);
        em_scope_begin();
        if (em_save_npy(path, em_random_uniform(EM_F32, EM_SHAPE(batch, 784), 0, 1))) fail("write");
        em_scope_end();
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median seconds of one run of the loaded graph on in, over about 0.5 s of runs after a warm-up;
 * *result: the probabilities. */
static double run_seconds(em_graph *g, em_tensor *in, em_tensor **result) {
    em_tensor *x = em_graph_placeholder(g, "x"), *p = em_graph_fetch(g, "probabilities");
    em_feed feed = {x, in};
    for (int k = 0; k < 3; k++)
        if (em_graph_run(g, 1, &feed, 1, &p, result)) fail("run");
    enum { MAX_RUNS = 2000 };
    static double t[MAX_RUNS];
    int n = 0;
    double start = now();
    while (n < MAX_RUNS && (n < 5 || now() - start < 0.5)) {
        double t0 = now();
        if (em_graph_run(g, 1, &feed, 1, &p, result)) fail("run");
        t[n++] = now() - t0;
    }
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return t[n / 2];
}

static double file_mib(const char *path) {
    struct stat st;
    return stat(path, &st) ? 0 : (double)st.st_size / (1 << 20);
}

/* Best milliseconds of 5 loads (the file in the page cache). */
static double load_ms(const char *path) {
    double best = 1e9;
    for (int k = 0; k < 5; k++) {
        double t0 = now();
        em_graph *g = em_graph_load(path);
        double ms = (now() - t0) * 1e3;
        if (!g) fail("load");
        em_graph_release(g);
        if (ms < best) best = ms;
    }
    return best;
}

/* The child of rss_of: load, run once on threads, print the peak RSS in KiB before the load and at the end. */
static int rss_child(const char *path, int64_t batch, int threads) {
    em_set_num_threads(threads);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    long before = ru.ru_maxrss;
    em_graph *g = em_graph_load(path);
    if (!g) fail("load");
    em_tensor *x = em_graph_placeholder(g, "x"), *p = em_graph_fetch(g, "probabilities"), *out;
    em_tensor *in = em_zeros(EM_F32, EM_SHAPE(batch, em_dim(x, 1)));
    if (em_graph_run(g, 1, (em_feed[]){{x, in}}, 1, &p, &out)) fail("run");
    getrusage(RUSAGE_SELF, &ru);
    printf("%ld %ld\n", before, ru.ru_maxrss);
    em_graph_release(g);
    em_shutdown();
    return 0;
}

/* Peak RSS (MiB) of a new process that loads path and runs one batch on this process's threads; *start: its RSS
 * before loading. */
static double rss_of(const char *self, const char *path, int64_t batch, double *start) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s --rss %s %lld %d", self, path, (long long)batch, em_num_threads());
    FILE *f = popen(cmd, "r");
    long before = 0, peak = 0;
    if (!f || fscanf(f, "%ld %ld", &before, &peak) != 2) fail("the RSS child");
    pclose(f);
    *start = (double)before / 1024;
    return (double)peak / 1024;
}

/* The CPU's model name from /proc/cpuinfo. */
static const char *cpu_name(void) {
    static char name[128] = "unknown CPU";
    char line[256];
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (!strncmp(line, "model name", 10) && colon) {
            snprintf(name, sizeof name, "%s", colon + 2);
            name[strcspn(name, "\n")] = '\0';
            break;
        }
    }
    if (f) fclose(f);
    return name;
}

/* Runs bench/serve_peers.py on dir's files and echoes its rows; ort_ms[m][b]: onnxruntime's milliseconds
 * per run of model m at batch 1 (b = 0) or 100 (b = 1), 0 where it gave none. */
static void peers(int threads, const char *dir, double ort_ms[2][2]) {
    const char *py = getenv("EMBER_BENCH_PYTHON");
    if (!py) py = access("bench/.venv/bin/python", X_OK) ? "python3" : "bench/.venv/bin/python";
    char cmd[1024], line[512];
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=%d %s bench/serve_peers.py %d %s", threads, py, threads, dir);
    fflush(stdout);
    FILE *f = popen(cmd, "r");
    while (f && fgets(line, sizeof line, f)) {
        fputs(line, stdout);
        char model[16], engine[64];
        long long batch;
        double ms;
        if (sscanf(line, "%15s %63s %*d %lld %lf", model, engine, &batch, &ms) == 4 && !strcmp(engine, "onnxruntime"))
            ort_ms[!strcmp(model, "cnn")][batch == 100] = ms;
    }
    if (!f || pclose(f)) printf("(failed: %s)\n", cmd);
}

static void tables(const char *self, int threads) {
    char dir[] = "/tmp/ember_serve_XXXXXX", path[2][256];
    if (!mkdtemp(dir)) fail("mkdtemp");
    write_files(dir);
    printf("CPU float32, %d thread(s) (%s); ember: Ember's graph loaded from its file\n", threads, cpu_name());
    printf("model engine threads batch ms_per_run images_per_s\n");
    double ember_ms[2][2], ort_ms[2][2] = {{0}};
    for (int m = 0; m < 2; m++) {
        snprintf(path[m], sizeof path[m], "%s/%s.emg", dir, models[m].name);
        em_graph *g = em_graph_load(path[m]);
        if (!g) fail("load");
        for (int b = 0; b < 2; b++) {
            int64_t batch = b ? 100 : 1;
            char file[320];
            snprintf(file, sizeof file, "%s/x%lld.npy", dir, (long long)batch);
            em_scope_begin();
            em_tensor *in = em_load_npy(file), *out;
            if (!in) fail("the inputs");
            double s = run_seconds(g, in, &out);
            ember_ms[m][b] = s * 1e3;
            printf("%s ember %d %lld %.4f %.0f\n", models[m].name, threads, (long long)batch, s * 1e3, (double)batch / s);
            /* the peers check their outputs against these */
            snprintf(file, sizeof file, "%s/%s_probabilities%lld.npy", dir, models[m].name, (long long)batch);
            if (em_save_npy(file, out)) fail("write");
            em_scope_end();
        }
        em_graph_release(g);
    }
    if (!getenv("EMBER_BENCH_NO_PEERS")) {
        peers(threads, dir, ort_ms);
        printf("\nmodel batch ember_time_over_onnxruntime\n");
        for (int m = 0; m < 2; m++)
            for (int b = 0; b < 2; b++)
                if (ort_ms[m][b] > 0) printf("%s %d %.2f\n", models[m].name, b ? 100 : 1, ember_ms[m][b] / ort_ms[m][b]);
    }
    printf("\nmodel file_mib load_ms rss_start_mib peak_rss_mib rss_beyond_weights_mib\n");
    for (int m = 0; m < 2; m++) {
        double start, peak = rss_of(self, path[m], 100, &start), mib = file_mib(path[m]);
        printf("%s %.2f %.3f %.1f %.1f %.1f\n", models[m].name, mib, load_ms(path[m]), start, peak, peak - mib);
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) fprintf(stderr, "serve: could not remove %s\n", dir);
}

/* ---- the large model ---- */

/* Drops path's pages from the page cache (clean pages: the file was synced). */
static void evict(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) fail("open");
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
}

/* Seconds to read() the whole file. */
static double read_seconds(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) fail("open");
    size_t chunk = (size_t)8 << 20;
    char *buf = malloc(chunk);
    double t0 = now();
    while (read(fd, buf, chunk) > 0) {
    }
    double s = now() - t0;
    free(buf);
    close(fd);
    return s;
}

static int64_t large_layers;
static em_tensor *large_model(em_tensor *x) {
    for (int64_t k = 0; k < large_layers; k++) {
        char name[32];
        snprintf(name, sizeof name, "w%lld", (long long)k);
        x = em_matmul(x, em_get_variable(name, EM_F32, EM_SHAPE(4096, 4096), EM_INIT_CONST(1.0 / 4096)));
    }
    return em_softmax(x, -1);
}

static void large(const char *self, double mb, const char *where) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/ember_serve_large_XXXXXX", where);
    if (!mkdtemp(dir)) fail("mkdtemp");
    char path[600];
    snprintf(path, sizeof path, "%s/large.emg", dir);
    large_layers = (int64_t)(mb * 1e6 / (4096.0 * 4096 * 4) + 0.5);
    if (large_layers < 1) large_layers = 1;
    em_scope_begin();
    em_tensor *x = em_placeholder(EM_F32, EM_SHAPE(-1, 4096), "x");
    if (!x || em_trace_begin()) fail("trace");
    em_tensor *p = large_model(x);
    em_graph *g = em_trace_end();
    double t0 = now();
    if (!g || em_graph_save(g, path, 1, &p, (const char *[]){"probabilities"}, EM_SAVE_INFERENCE | EM_SAVE_FREEZE))
        fail("save");
    double save_s = now() - t0;
    em_graph_release(g);
    em_scope_end();
    em_variables_release();
    double mib = file_mib(path);
    printf("a frozen model of %lld layers 4096x4096 float32: %s, %.1f MiB (saved in %.2f s)\n", (long long)large_layers,
           path, mib, save_s);
    printf("case seconds mib_per_s\n");
    for (int cold = 1; cold >= 0; cold--) {
        if (cold) evict(path);
        double r = read_seconds(path);
        printf("%s_read %.3f %.0f\n", cold ? "cold" : "warm", r, mib / r);
        if (cold) evict(path);
        t0 = now();
        em_graph *h = em_graph_load(path);
        double l = now() - t0;
        if (!h) fail("load");
        printf("%s_load %.3f %.0f\n", cold ? "cold" : "warm", l, mib / l);
        if (!cold) {
            /* not zeros: a row times a matrix skips the rows that zeros select */
            em_tensor *in = em_keep(em_random_uniform(EM_F32, EM_SHAPE(1, 4096), 0, 1)), *out;
            printf("run_batch1 %.4f -\n", run_seconds(h, in, &out));
            em_release(in);
        }
        em_graph_release(h);
    }
    double start, peak = rss_of(self, path, 1, &start);
    printf("\nfile_mib rss_start_mib peak_rss_mib rss_beyond_weights_mib\n%.1f %.1f %.1f %.1f\n", mib, start, peak,
           peak - mib);
    unlink(path);
    rmdir(dir);
}

int main(int argc, char **argv) {
    if (argc == 5 && !strcmp(argv[1], "--rss")) return rss_child(argv[2], atoll(argv[3]), atoi(argv[4]));
    if (argc >= 3 && !strcmp(argv[1], "--large")) {
        large(argv[0], atof(argv[2]), argc > 3 ? argv[3] : "/var/tmp");
        em_shutdown();
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "--write")) {
        write_files(argv[2]);
        em_shutdown();
        return 0;
    }
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    if (threads > 0) em_set_num_threads(threads);
    tables(argv[0], em_num_threads());
    em_shutdown();
    return 0;
}
