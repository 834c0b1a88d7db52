/* Your own op: a fused bias + GELU, gelu(x + b) for x [..., C] and b [C], in
 * plain C (and in CUDA when the GPU backend is built: custom_op_cuda.cu, a
 * small library this program loads from beside itself), registered with
 * em_op_register, checked with em_gradcheck, used as the hidden layer of the
 * MNIST MLP eagerly and as a traced graph, and timed against the built-in
 * composition em_gelu(em_add(x, b)).
 *
 *   build/examples/custom_op [--steps N] [--data DIR] [--bench-time S] [--device /gpu:0] [--threads N]
 *
 * The gradient rule is written with Ember's ops and a second registered op,
 * bias_gelu_grad (gy * gelu'(x + b), fused), so it runs wherever the forward
 * runs and is recorded by tapes and graphs like any rule. */
#include <ember.h>

#include "bias_gelu.h"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function" /* the checkpoint helpers this example does not use */
#include "mnist_data.h"
#pragma GCC diagnostic pop

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static em_op_handle *bias_gelu, *bias_gelu_grad;

/* ---- the definition: shape rule, CPU kernels, gradient rule ---- */

/* x [..., C] and b [C] of one float dtype (bias_gelu_grad: and gy of x's shape) give x's shape. */
static int bias_gelu_shape(const em_custom_call *c, em_dtype *dt, em_shape *sh) {
    const em_shape *x = &c->shapes[0], *b = &c->shapes[1];
    if (c->dtypes[0] != EM_F32 && c->dtypes[0] != EM_F64) {
        snprintf(c->error, c->error_size, "x must be float32 or float64, not %s", em_dtype_name(c->dtypes[0]));
        return -1;
    }
    bool ok = x->ndim >= 1 && b->ndim == 1 && b->dims[0] == x->dims[x->ndim - 1] && c->dtypes[1] == c->dtypes[0];
    if (c->n == 3) ok = ok && em_shape_equal(c->shapes[2], *x) && c->dtypes[2] == c->dtypes[0];
    if (!ok) {
        char xs[96], bs[96];
        snprintf(c->error, c->error_size, "x %s %s and b %s %s: b must be [C] for x [..., C], of x's dtype%s",
                 em_dtype_name(c->dtypes[0]), em_shape_str(*x, xs, sizeof xs), em_dtype_name(c->dtypes[1]),
                 em_shape_str(*b, bs, sizeof bs), c->n == 3 ? ", and gy like x" : "");
        return -1;
    }
    dt[0] = c->dtypes[0];
    sh[0] = *x;
    return 0;
}

/* out = gelu(x + b); with gy (bias_gelu_grad): out = gy gelu'(x + b). One loop per dtype and op. */
#define BIAS_GELU_LOOP(T, expr)                                                             \
    do {                                                                                    \
        const T *x = in[0], *b = in[1], *gy = c->n == 3 ? in[2] : NULL;                    \
        T *y = out[0];                                                                      \
        (void)gy;                                                                           \
        for (int64_t r = 0; r < rows; r++)                                                  \
            for (int64_t j = 0; j < cols; j++) {                                            \
                int64_t i = r * cols + j;                                                   \
                T z = x[i] + b[j];                                                          \
                y[i] = expr;                                                                \
            }                                                                               \
    } while (0)

static int bias_gelu_cpu(const em_custom_call *c, const void *const *in, void *const *out) {
    int64_t cols = c->shapes[1].dims[0], rows = cols ? em_shape_numel(c->shapes[0]) / cols : 0;
    if (c->dtypes[0] == EM_F32) BIAS_GELU_LOOP(float, bias_gelu_value_f(z));
    else BIAS_GELU_LOOP(double, bias_gelu_value(z));
    return 0;
}

static int bias_gelu_grad_cpu(const em_custom_call *c, const void *const *in, void *const *out) {
    int64_t cols = c->shapes[1].dims[0], rows = cols ? em_shape_numel(c->shapes[0]) / cols : 0;
    if (c->dtypes[0] == EM_F32) BIAS_GELU_LOOP(float, gy[i] * bias_gelu_slope_f(z));
    else BIAS_GELU_LOOP(double, gy[i] * bias_gelu_slope(z));
    return 0;
}

/* gz = gy gelu'(x + b) (the fused op); gx = gz, gb = gz summed over the rows. */
static int bias_gelu_gradient(const em_custom_call *c, em_tensor *const *in, em_tensor *const *out,
                              em_tensor *const *gout, em_tensor *const *saved, em_tensor **gin) {
    (void)c, (void)out, (void)saved;
    em_tensor *gz;
    if (em_op_call(bias_gelu_grad, 3, (em_tensor *[]){in[0], in[1], gout[0]}, NULL, 1, &gz)) return -1;
    gin[0] = gz;
    gin[1] = em_sum(em_reshape(gz, EM_SHAPE(-1, em_dim(in[1], 0))), EM_AXES(0), false);
    return gin[1] ? 0 : -1;
}

/* The CUDA kernels, from libcustom_op_cuda.so beside this program when the build made it. */
static void find_gpu_kernels(em_custom_gpu_fn *fwd, em_custom_gpu_fn *grad) {
    char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 32);
    if (n <= 0) return;
    path[n] = 0;
    char *slash = strrchr(path, '/');
    strcpy(slash ? slash + 1 : path, "libcustom_op_cuda.so");
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) return;
    *(void **)fwd = dlsym(lib, "bias_gelu_gpu");
    *(void **)grad = dlsym(lib, "bias_gelu_grad_gpu");
}

static int register_ops(void) {
    em_custom_gpu_fn fwd_gpu = NULL, grad_gpu = NULL;
    find_gpu_kernels(&fwd_gpu, &grad_gpu);
    bias_gelu_grad = em_op_register(&(em_custom_op){.name = "bias_gelu_grad", .arity = 3, .shape = bias_gelu_shape,
                                                    .cpu = bias_gelu_grad_cpu, .gpu = grad_gpu,
                                                    .flags = EM_CUSTOM_NO_GRADIENT});
    bias_gelu = em_op_register(&(em_custom_op){.name = "bias_gelu", .arity = 2, .shape = bias_gelu_shape,
                                               .cpu = bias_gelu_cpu, .gpu = fwd_gpu, .gradient = bias_gelu_gradient});
    if (bias_gelu) printf("registered bias_gelu (CPU kernel%s)\n", fwd_gpu ? "; CUDA kernel from libcustom_op_cuda.so" : "");
    return bias_gelu && bias_gelu_grad ? 0 : -1;
}

/* ---- using it ---- */

static em_tensor *gelu_of_sum(em_tensor *x, em_tensor *b) {
    em_tensor *y;
    return em_op_call(bias_gelu, 2, (em_tensor *[]){x, b}, NULL, 1, &y) ? NULL : y;
}
static em_tensor *builtin_gelu_of_sum(em_tensor *x, em_tensor *b) { return em_gelu(em_add(x, b)); }

static em_tensor *checked_fn(int n, em_tensor *const *in, void *ctx) {
    (void)n, (void)ctx;
    return gelu_of_sum(in[0], in[1]);
}

typedef struct {
    em_tensor *w1, *b1, *w2, *b2;
    em_tensor *(*hidden)(em_tensor *x, em_tensor *b); /* bias + GELU: ours or the built-in composition */
} model;

static em_tensor *logits_of(const model *m, em_tensor *x) {
    return em_add(em_matmul(m->hidden(em_matmul(x, m->w1), m->b1), m->w2), m->b2);
}
static em_tensor *loss_of(const model *m, em_tensor *x, em_tensor *labels) {
    return em_mean(em_sparse_softmax_cross_entropy_with_logits(labels, logits_of(m, x)), EM_ALL_AXES, false);
}

static double test_accuracy(const model *m, const dataset *test) {
    em_scope_begin();
    int64_t n = test->n < 10000 ? test->n : 10000;
    em_tensor *x = scaled(em_slice(test->images, (int64_t[]){0, 0}, (int64_t[]){n, 784}));
    em_tensor *y = em_slice(test->labels, (int64_t[]){0}, (int64_t[]){n});
    double acc = em_item(accuracy_of(logits_of(m, x), y));
    em_scope_end();
    return acc;
}

/* ---- timing: ours against the composition, forward and backward ---- */

typedef struct {
    em_tensor *x, *b;
    em_tensor *(*hidden)(em_tensor *, em_tensor *);
    bool backward;
} timed;

static void timed_call(void *ctx) {
    timed *t = ctx;
    em_scope_begin();
    em_tape *tape = t->backward ? em_tape_begin(false) : NULL;
    em_tensor *y = t->hidden(t->x, t->b), *g[2];
    if (tape) em_gradients(tape, y, 2, (em_tensor *[]){t->x, t->b}, g), em_tape_release(tape);
    em_device_sync(em_device_current());
    em_scope_end();
}

static int compare(em_shape shape, double seconds) {
    em_tensor *x = em_keep(em_random_uniform(EM_F32, shape, -3, 3));
    em_tensor *b = em_keep(em_random_uniform(EM_F32, EM_SHAPE(shape.dims[shape.ndim - 1]), -1, 1));
    em_bench_config cfg = em_bench_defaults();
    cfg.max_time_s = seconds;
    cfg.min_time_s = seconds / 4;
    cfg.warmup_s = seconds / 8;
    cfg.peak_gflops = 0;
    char s[64];
    em_shape_str(shape, s, sizeof s);
    for (int pass = 0; pass < 2; pass++) {
        timed ours = {x, b, gelu_of_sum, pass}, theirs = {x, b, builtin_gelu_of_sum, pass};
        em_bench_result r1, r2;
        if (em_bench_run("bias_gelu", timed_call, &ours, &cfg, &r1) ||
            em_bench_run("gelu(add)", timed_call, &theirs, &cfg, &r2))
            return -1;
        printf("  %-12s %-8s %12.1f %14.1f %8.2fx\n", s, pass ? "fwd+bwd" : "fwd", r1.median_s * 1e6,
               r2.median_s * 1e6, r2.median_s / r1.median_s);
    }
    em_release(x);
    em_release(b);
    return 0;
}

static int fail(const char *what) {
    fprintf(stderr, "custom_op: %s: %s\n", what, em_last_error() ? em_last_error() : "failed");
    return 1;
}

int main(int argc, char **argv) {
    const char *data = "data/mnist", *device = "/cpu:0";
    int steps = 300;
    double bench_time = 0.5;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--steps") && v) steps = atoi(argv[++i]);
        else if (!strcmp(a, "--data") && v) data = argv[++i];
        else if (!strcmp(a, "--bench-time") && v) bench_time = atof(argv[++i]);
        else if (!strcmp(a, "--device") && v) device = argv[++i];
        else if (!strcmp(a, "--threads") && v) em_set_num_threads(atoi(argv[++i]));
        else {
            fprintf(stderr, "usage: custom_op [--steps N] [--data DIR] [--bench-time S] [--device D] [--threads N]\n");
            return 2;
        }
    }
    if (steps < 1 || bench_time <= 0) return fail("--steps and --bench-time must be positive");
    if (register_ops()) return fail("registering bias_gelu");

    /* 1. Its gradient against central differences, in float64. */
    em_scope_begin();
    em_set_seed(1);
    em_tensor *cx = em_random_uniform(EM_F64, EM_SHAPE(6, 5), -3, 3), *cb = em_random_uniform(EM_F64, EM_SHAPE(5), -1, 1);
    em_gradcheck_report rep;
    int rc = em_gradcheck(checked_fn, NULL, 2, (em_tensor *[]){cx, cb}, NULL, &rep);
    if (rc < 0) return fail("gradcheck");
    printf("em_gradcheck: worst relative error %.2e (input %d, element %lld): %s\n", rep.worst, rep.input,
           (long long)rep.element, rc == 0 ? "passed" : "FAILED");
    double diff = em_item(em_max(em_abs(em_sub(gelu_of_sum(cx, cb), builtin_gelu_of_sum(cx, cb))), EM_ALL_AXES, false));
    printf("against em_gelu(em_add(x, b)): largest difference %.2e\n", diff);
    em_scope_end();
    if (rc) return 1;

    /* 2. The MNIST MLP 784-500-10 with bias_gelu as its hidden layer, eagerly, then as a graph. */
    dataset train, test;
    if (load_mnist(data, "train", EM_SHAPE(784), &train) || load_mnist(data, "t10k", EM_SHAPE(784), &test))
        return fail("loading MNIST");
    if (em_device_begin(device)) return fail(device);
    model m = {
        em_get_variable("w1", EM_F32, EM_SHAPE(784, 500), EM_INIT_TRUNC_NORMAL(0, 0.1)),
        em_get_variable("b1", EM_F32, EM_SHAPE(500), EM_INIT_CONST(0.1)),
        em_get_variable("w2", EM_F32, EM_SHAPE(500, 10), EM_INIT_TRUNC_NORMAL(0, 0.1)),
        em_get_variable("b2", EM_F32, EM_SHAPE(10), EM_INIT_CONST(0.1)),
        gelu_of_sum,
    };
    em_tensor *vars[4] = {m.w1, m.b1, m.w2, m.b2};
    em_optimizer *adam = em_adam(1e-3, 0.9, 0.999, 1e-8);
    data_order order = {.n = train.n};
    if (!m.w1 || !m.b1 || !m.w2 || !m.b2 || !adam || data_order_init(&order, train.n, 1)) return fail("the model");
    const int batch = 100;
    double t0 = now();
    for (int s = 0; s < steps; s++) {
        em_scope_begin();
        em_tensor *x, *y;
        batch_of(&train, data_order_batch(&order, s, batch), batch, &x, &y);
        em_tape *tape = em_tape_begin(false);
        em_tensor *loss = loss_of(&m, x, y);
        em_tape_stop(tape);
        rc = em_minimize(adam, tape, loss, 4, vars);
        em_tape_release(tape);
        em_scope_end();
        if (rc) return fail("an eager step");
    }
    double eager_ms = (now() - t0) * 1e3 / steps;
    printf("eager: %d steps, %.2f ms/step, test accuracy %.4f\n", steps, eager_ms, test_accuracy(&m, &test));

    em_tensor *px = em_keep(em_placeholder(EM_F32, EM_SHAPE(-1, 784), "x"));
    em_tensor *py = em_keep(em_placeholder(EM_I64, EM_SHAPE(-1), "labels"));
    if (em_trace_begin()) return fail("tracing");
    em_tape *tape = em_tape_begin(false);
    em_tensor *loss = loss_of(&m, px, py);
    em_tape_stop(tape);
    em_tensor *train_op = em_minimize_op(adam, tape, loss, 4, vars);
    em_tape_release(tape);
    em_graph *graph = em_trace_end();
    if (!graph || !train_op) return fail("tracing the step");
    t0 = now();
    for (int s = steps; s < 2 * steps; s++) {
        em_scope_begin();
        em_tensor *x, *y, *out[2];
        batch_of(&train, data_order_batch(&order, s, batch), batch, &x, &y);
        rc = em_graph_run(graph, 2, (em_feed[]){{px, x}, {py, y}}, 2, (em_tensor *[]){train_op, loss}, out);
        em_scope_end();
        if (rc) return fail("a graph step");
    }
    double graph_ms = (now() - t0) * 1e3 / steps;
    printf("graph: %d more steps, %.2f ms/step, test accuracy %.4f\n", steps, graph_ms, test_accuracy(&m, &test));
    em_graph_release(graph);
    em_release(px);
    em_release(py);

    /* 3. Timed against the built-in composition (median microseconds; > 1x: ours is faster). */
    printf("bias_gelu against em_gelu(em_add(x, b)), float32 on %s, %d threads:\n", device, em_num_threads());
    printf("  %-12s %-8s %12s %14s %9s\n", "shape", "pass", "ours (us)", "built-in (us)", "speedup");
    if (compare(EM_SHAPE(100, 500), bench_time) || compare(EM_SHAPE(1024, 1024), bench_time))
        return fail("timing");
    em_device_end();
    em_optimizer_release(adam);
    em_variables_release();
    data_order_free(&order);
    dataset_release(&train);
    dataset_release(&test);
    em_shutdown();
    return 0;
}
