/* Serving saved graphs: the MNIST MLP (examples/mnist.c, 784 -> 500 -> 10)
 * and the Deep MNIST CNN (examples/deep_mnist.c, without dropout), each
 * traced, saved frozen (em_graph_save, EM_SAVE_INFERENCE | EM_SAVE_FREEZE)
 * and loaded again as a program that never defined it would: the latency of
 * one image, the throughput of batches of 100, the load time, and the peak
 * RSS of a process that only loads and runs the file (against the weights'
 * size).
 *
 *   build/bench/serve [threads]          the tables (default: 1 thread)
 *   build/bench/serve --write DIR        leaves DIR/{mlp,cnn}.emg, and the inputs
 *                                        DIR/{mlp,cnn}_x{1,100}.npy, for other runtimes
 *   build/bench/serve --large MB [DIR]   load time of a frozen model of MB megabytes
 *                                        against the disk's read speed, cold and warm
 *
 * Each table is whitespace-separated columns under a '#'-free header line,
 * so that a script can read it and add rows for other engines (onnxruntime,
 * PyTorch) run on the files --write leaves. */
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

/* Traces model on x [-1, width] and saves it frozen as path ("x" -> "probabilities"). */
static void save_model(em_tensor *(*model)(em_tensor *), int64_t width, const char *path) {
    em_set_seed(1);
    em_scope_begin();
    em_tensor *x = em_placeholder(EM_F32, EM_SHAPE(-1, width), "x");
    if (!x || em_trace_begin()) fail("trace");
    em_tensor *p = model(x);
    em_graph *g = em_trace_end();
    if (!g || em_graph_save(g, path, 1, &p, (const char *[]){"probabilities"}, EM_SAVE_INFERENCE | EM_SAVE_FREEZE))
        fail("save");
    em_graph_release(g);
    em_scope_end();
    em_variables_release();
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median seconds of one run of the loaded graph on a batch, over about 0.5 s of runs after a warm-up. */
static double run_seconds(em_graph *g, int64_t batch, int64_t width) {
    em_tensor *x = em_graph_placeholder(g, "x"), *p = em_graph_fetch(g, "probabilities"), *out;
    em_set_seed(2);
    em_tensor *in = em_keep(em_random_uniform(EM_F32, EM_SHAPE(batch, width), 0, 1));
    em_feed feed = {x, in};
    for (int k = 0; k < 3; k++)
        if (em_graph_run(g, 1, &feed, 1, &p, &out)) fail("run");
    enum { MAX_RUNS = 2000 };
    static double t[MAX_RUNS];
    int n = 0;
    double start = now();
    while (n < MAX_RUNS && (n < 5 || now() - start < 0.5)) {
        double t0 = now();
        if (em_graph_run(g, 1, &feed, 1, &p, &out)) fail("run");
        t[n++] = now() - t0;
    }
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    em_release(in);
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

/* The child of rss_of: load, run once, print the peak RSS in KiB before the load and at the end. */
static int rss_child(const char *path, int64_t batch) {
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
    return 0;
}

/* Peak RSS (MiB) of a new process that loads path and runs one batch; *start: its RSS before loading. */
static double rss_of(const char *self, const char *path, int64_t batch, double *start) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s --rss %s %lld", self, path, (long long)batch);
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

static void tables(const char *self, int threads) {
    char dir[] = "/tmp/ember_serve_XXXXXX";
    if (!mkdtemp(dir)) fail("mkdtemp");
    struct {
        const char *name;
        em_tensor *(*model)(em_tensor *);
    } models[2] = {{"mlp", mlp}, {"cnn", cnn}};
    char path[2][256];
    for (int m = 0; m < 2; m++) {
        snprintf(path[m], sizeof path[m], "%s/%s.emg", dir, models[m].name);
        save_model(models[m].model, 784, path[m]);
    }
    printf("Ember's loaded graphs, CPU float32, %d thread(s) (%s)\n", threads, cpu_name());
    printf("model engine threads batch ms_per_run images_per_s\n");
    for (int m = 0; m < 2; m++) {
        em_graph *g = em_graph_load(path[m]);
        if (!g) fail("load");
        for (int64_t batch = 1; batch <= 100; batch *= 100) {
            double s = run_seconds(g, batch, 784);
            printf("%s ember %d %lld %.4f %.0f\n", models[m].name, threads, (long long)batch, s * 1e3,
                   (double)batch / s);
        }
        em_graph_release(g);
    }
    printf("\nmodel file_mib load_ms rss_start_mib peak_rss_mib rss_beyond_weights_mib\n");
    for (int m = 0; m < 2; m++) {
        double start, peak = rss_of(self, path[m], 100, &start), mib = file_mib(path[m]);
        printf("%s %.2f %.3f %.1f %.1f %.1f\n", models[m].name, mib, load_ms(path[m]), start, peak, peak - mib);
        unlink(path[m]);
    }
    rmdir(dir);
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
            double s = run_seconds(h, 1, 4096);
            printf("run_batch1 %.4f -\n", s);
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
    if (argc == 4 && !strcmp(argv[1], "--rss")) return rss_child(argv[2], atoll(argv[3]));
    if (argc >= 3 && !strcmp(argv[1], "--large")) {
        large(argv[0], atof(argv[2]), argc > 3 ? argv[3] : "/var/tmp");
        em_shutdown();
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "--write")) {
        char path[1024];
        struct {
            const char *name;
            em_tensor *(*model)(em_tensor *);
        } models[2] = {{"mlp", mlp}, {"cnn", cnn}};
        for (int m = 0; m < 2; m++) {
            snprintf(path, sizeof path, "%s/%s.emg", argv[2], models[m].name);
            save_model(models[m].model, 784, path);
            for (int64_t batch = 1; batch <= 100; batch *= 100) {
                em_set_seed(2);
                snprintf(path, sizeof path, "%s/%s_x%lld.npy", argv[2], models[m].name, (long long)batch);
                if (em_save_npy(path, em_random_uniform(EM_F32, EM_SHAPE(batch, 784), 0, 1))) fail("write");
            }
        }
        em_shutdown();
        return 0;
    }
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    if (threads > 0) em_set_num_threads(threads);
    tables(argv[0], em_num_threads());
    em_shutdown();
    return 0;
}
