/* The Deep MNIST CNN step's products one by one (bench/deep_mnist_cnn.h's shapes, batch 100), so that each
 * can be set beside TensorFlow's oneDNN and PyTorch on the same shape (bench/peers/cnn_ops.py;
 * bench/cnn_ops.sh runs both, alternating):
 *   conv1  [100,28,28,1] * [5,5,1,32], SAME: forward and filter gradient (the input is data);
 *   conv2  [100,14,14,32] * [5,5,32,64], SAME: forward, input gradient and filter gradient;
 *   fc1    [100,3136] x [3136,1024]: forward, dx = dy W^T, dW = x^T dy.
 * A convolution's backward ops are timed inside a real tape's backward pass by the per-op profile
 * (em_profile_rows), the products by em_bench_run. Prints "ember <product> <us>" lines: the fastest round or
 * sample, microseconds per call.
 *
 *   build/bench/cnn_ops [threads]      (default 1)
 */
#include <ember.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROUNDS 5

static void fail(const char *what) {
    fprintf(stderr, "cnn_ops: %s: %s\n", what, em_last_error() ? em_last_error() : "failed");
    exit(1);
}

static double row_us(const char *op) {
    em_profile_row rows[64];
    int n = em_profile_rows(rows, 64);
    for (int r = 0; r < n && r < 64; r++)
        if (strcmp(rows[r].op, op) == 0) return rows[r].seconds * 1e6 / (double)rows[r].calls;
    fail(op);
    return 0;
}

/* Forward and backward of one SAME convolution, `iters` times a round: best microseconds per call of the
 * forward op and of the gradient ops asked for. */
static void conv(const char *name, em_shape xs, em_shape ws, bool input_grad, int iters) {
    em_set_seed(1);
    em_tensor *x = em_keep(em_random_normal(EM_F32, xs, 0, 1)), *w = em_keep(em_random_normal(EM_F32, ws, 0, 0.1));
    double best[3] = {1e30, 1e30, 1e30};
    for (int round = 0; round <= ROUNDS; round++) {
        em_profile_reset();
        em_profile_start();
        for (int i = 0; i < iters; i++) {
            em_scope_begin();
            em_tape *tape = em_tape_begin(false);
            em_tensor *y = em_conv2d(x, w, NULL, EM_PAD_SAME, NULL), *grads[2];
            em_tape_stop(tape);
            em_tensor *dy = em_fill_like(y, 1);
            if (!y || em_gradients_with(tape, y, dy, input_grad ? 2 : 1,
                                        input_grad ? (em_tensor *[]){w, x} : (em_tensor *[]){w}, grads))
                fail(name);
            em_tape_release(tape);
            em_scope_end();
        }
        em_profile_stop();
        double us[3] = {row_us("conv2d"), row_us("conv2d_backprop_filter"),
                        input_grad ? row_us("conv2d_backprop_input") : 0};
        for (int k = 0; k < 3; k++)
            if (round > 0 && us[k] < best[k]) best[k] = us[k]; /* round 0 warms up */
    }
    printf("ember %s_fwd %.1f\nember %s_dfilter %.1f\n", name, best[0], name, best[1]);
    if (input_grad) printf("ember %s_dinput %.1f\n", name, best[2]);
    em_release(x);
    em_release(w);
}

typedef struct {
    em_tensor *a, *b;
    bool ta, tb;
    const char *name;
} product_call;
static void run_product(void *ctx) {
    const product_call *p = ctx;
    em_scope_begin();
    if (!em_matmul_t(p->a, p->b, p->ta, p->tb)) fail(p->name);
    em_scope_end();
}

/* One product em_matmul_t(a, b, ta, tb): the fastest sample of em_bench_run, microseconds per call. */
static void product(const char *name, em_shape as, em_shape bs, bool ta, bool tb) {
    product_call p = {em_keep(em_random_normal(EM_F32, as, 0, 1)), em_keep(em_random_normal(EM_F32, bs, 0, 1)), ta, tb,
                      name};
    em_bench_config cfg = em_bench_defaults();
    cfg.min_reps = ROUNDS;
    em_bench_result r;
    if (em_bench_run(name, run_product, &p, &cfg, &r)) fail(name);
    printf("ember %s %.1f\n", name, r.min_s * 1e6);
    em_release(p.a);
    em_release(p.b);
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    if (threads < 1) {
        fprintf(stderr, "usage: cnn_ops [threads]\n");
        return 2;
    }
    em_set_num_threads(threads);
    conv("conv1", EM_SHAPE(100, 28, 28, 1), EM_SHAPE(5, 5, 1, 32), false, 10);
    conv("conv2", EM_SHAPE(100, 14, 14, 32), EM_SHAPE(5, 5, 32, 64), true, 5);
    product("fc1_fwd", EM_SHAPE(100, 3136), EM_SHAPE(3136, 1024), false, false);
    product("fc1_dx", EM_SHAPE(100, 1024), EM_SHAPE(3136, 1024), false, true);
    product("fc1_dw", EM_SHAPE(100, 3136), EM_SHAPE(100, 1024), true, false);
    return 0;
}
