/* A small ResNet on Fashion-MNIST (Debian's dataset-fashion-mnist package):
 *   x [N,28,28,1] -> conv 3x3x16 + batch norm + ReLU
 *   -> residual block 16 -> block 32 (stride 2) -> block 64 (stride 2)
 *   -> global average pooling -> fc 64 -> 10, softmax cross entropy, Adam.
 * A block is conv 3x3 + batch norm + ReLU, conv 3x3 + batch norm, plus the
 * input (through a 1x1 convolution + batch norm where the shape changes),
 * then ReLU. Batch norm is em_fused_batch_norm (momentum 0.9, PyTorch's 0.1;
 * eps 1e-3): batch statistics in training, the moving averages in evaluation.
 * bench/torch_fashion_resnet.py is the same recipe in PyTorch; bench/README
 * or README.md has both accuracies and step times.
 *
 *   build/examples/fashion_resnet                  (2 epochs)
 *   build/examples/fashion_resnet --epochs 1 --threads 2
 */
#include <ember.h>

#include "mnist_data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *data;
    int epochs, batch, threads, steps, test_images;
    double lr;
    uint64_t seed;
    bool quiet;
} options;

static void usage(FILE *out) {
    fprintf(out,
            "usage: fashion_resnet [--data DIR] [--epochs N] [--steps N] [--batch N] [--lr X] [--seed S]\n"
            "                      [--threads N] [--test-images N] [--quiet]\n"
            "  --data DIR       Fashion-MNIST IDX files (default /usr/share/datasets/fashion-mnist)\n"
            "  --epochs N       passes over the 60000 training images (default 2)\n"
            "  --steps N        stop after N steps (default: the epochs' steps)\n"
            "  --batch N        images per step (default 128)\n"
            "  --lr X           Adam learning rate (default 1e-3)\n"
            "  --threads N      worker threads (default: all cores)\n"
            "  --test-images N  the evaluation's test images, the first N (default: all)\n");
}

static int parse(int argc, char **argv, options *o) {
    *o = (options){"/usr/share/datasets/fashion-mnist", 2, 128, 0, 0, 0, 1e-3, 1, false};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name, action) EXAMPLE_OPTION("fashion_resnet", name, action)
        OPT("--data", o->data = v)
        OPT("--epochs", o->epochs = atoi(v))
        OPT("--steps", o->steps = atoi(v))
        OPT("--batch", o->batch = atoi(v))
        OPT("--lr", o->lr = atof(v))
        OPT("--seed", o->seed = strtoull(v, NULL, 10))
        OPT("--threads", o->threads = atoi(v))
        OPT("--test-images", o->test_images = atoi(v))
#undef OPT
        EXAMPLE_FLAG("--quiet", o->quiet)
        EXAMPLE_HELP_OR_UNKNOWN("fashion_resnet", usage)
    }
    if (o->epochs < 1 || o->batch < 1 || !(o->lr > 0) || o->steps < 0 || o->test_images < 0) {
        fprintf(stderr, "fashion_resnet: epochs, batch and lr must be positive, steps and test-images not negative\n");
        return -1;
    }
    return 0;
}

static int fail(const char *what) {
    fprintf(stderr, "fashion_resnet: %s: %s\n", what, em_last_error() ? em_last_error() : "failed");
    return 1;
}

/* A convolution without bias followed by batch norm: its filter, the norm's scale and offset under scope
 * `name`, the moving averages under "<name>/batch_norm". */
typedef struct {
    em_tensor *w, *gamma, *beta;
    char bn[64];
    int stride;
} conv_bn;

static conv_bn make_conv(const char *name, int k, int64_t cin, int64_t cout, int stride) {
    conv_bn l = {.stride = stride};
    snprintf(l.bn, sizeof l.bn, "%s/batch_norm", name);
    em_variable_scope_begin(name, EM_REUSE_FALSE);
    l.w = em_get_variable("weights", EM_F32, EM_SHAPE(k, k, cin, cout), EM_INIT_HE);
    l.gamma = em_get_variable("gamma", EM_F32, EM_SHAPE(cout), EM_INIT_CONST(1));
    l.beta = em_get_variable("beta", EM_F32, EM_SHAPE(cout), EM_INIT_CONST(0));
    em_variable_scope_end();
    return l;
}

static em_tensor *conv_norm(const conv_bn *l, em_tensor *x, bool training) {
    int strides[2] = {l->stride, l->stride};
    em_tensor *h = em_conv2d(x, l->w, strides, EM_PAD_SAME, NULL);
    return em_fused_batch_norm(h, l->gamma, l->beta, 1e-3, 0.9, training, l->bn);
}

typedef struct {
    conv_bn a, b, shortcut;
    bool project; /* the shortcut is a 1x1 convolution (the shape changes) */
} block;

static block make_block(const char *name, int64_t cin, int64_t cout, int stride) {
    char n[48];
    block b = {.project = stride != 1 || cin != cout};
    snprintf(n, sizeof n, "%s/conv_a", name);
    b.a = make_conv(n, 3, cin, cout, stride);
    snprintf(n, sizeof n, "%s/conv_b", name);
    b.b = make_conv(n, 3, cout, cout, 1);
    if (b.project) {
        snprintf(n, sizeof n, "%s/shortcut", name);
        b.shortcut = make_conv(n, 1, cin, cout, stride);
    }
    return b;
}

static em_tensor *residual(const block *b, em_tensor *x, bool training) {
    em_tensor *h = conv_norm(&b->b, em_relu(conv_norm(&b->a, x, training)), training);
    return em_relu(em_add(h, b->project ? conv_norm(&b->shortcut, x, training) : x));
}

typedef struct {
    conv_bn stem;
    block blocks[3];
    em_tensor *fc_w, *fc_b;
} model;

static em_tensor *forward(const model *m, em_tensor *x, bool training) {
    em_tensor *h = em_relu(conv_norm(&m->stem, x, training));
    for (int k = 0; k < 3; k++) h = residual(&m->blocks[k], h, training);
    h = em_mean(h, EM_AXES(1, 2), false); /* global average pooling: [N, 64] */
    return em_bias_add(em_matmul(h, m->fc_w), m->fc_b);
}

static double evaluate(const model *m, const dataset *test, int64_t count) {
    double correct = 0;
    const int64_t chunk = 500;
    for (int64_t at = 0; at < count; at += chunk) {
        int64_t n = count - at < chunk ? count - at : chunk;
        em_scope_begin();
        em_tensor *x = scaled(em_slice(test->images, (int64_t[]){at, 0, 0, 0}, (int64_t[]){n, 28, 28, 1}));
        em_tensor *y = em_slice(test->labels, (int64_t[]){at}, (int64_t[]){n});
        correct += em_item(accuracy_of(forward(m, x, false), y)) * (double)n;
        em_scope_end();
    }
    return correct / (double)count;
}

int main(int argc, char **argv) {
    options o;
    if (parse(argc, argv, &o)) return 2;
    if (o.threads > 0) em_set_num_threads(o.threads);
    em_set_seed(o.seed);
    dataset train, test;
    if (load_mnist(o.data, "train", EM_SHAPE(28, 28, 1), &train) || load_mnist(o.data, "t10k", EM_SHAPE(28, 28, 1), &test))
        return fail("loading Fashion-MNIST (Debian: apt-get install dataset-fashion-mnist)");
    if (o.batch > train.n) o.batch = (int)train.n;
    printf("Fashion-MNIST ResNet: %lld training and %lld test images from %s, %d threads\n", (long long)train.n,
           (long long)test.n, o.data, em_num_threads());

    model m = {.stem = make_conv("stem", 3, 1, 16, 1),
               .blocks = {make_block("block1", 16, 16, 1), make_block("block2", 16, 32, 2),
                          make_block("block3", 32, 64, 2)}};
    em_variable_scope_begin("fc", EM_REUSE_FALSE);
    m.fc_w = em_get_variable("weights", EM_F32, EM_SHAPE(64, 10), EM_INIT_GLOROT);
    m.fc_b = em_get_variable("biases", EM_F32, EM_SHAPE(10), EM_INIT_CONST(0));
    em_variable_scope_end();
    em_tensor *vars[64];
    int nvars = em_trainable_variables(vars, 64);
    for (int i = 0; i < nvars; i++)
        if (!vars[i]) return fail("creating variables");
    if (!m.fc_w || !m.fc_b) return fail("creating variables");
    em_optimizer *adam = em_adam(o.lr, 0.9, 0.999, 1e-8);
    if (!adam) return fail("creating the optimizer");

    int64_t per_epoch = train.n / o.batch, total = per_epoch * o.epochs;
    if (o.steps && o.steps < total) total = o.steps;
    data_order data;
    if (data_order_init(&data, train.n, o.seed)) return fail("allocating");
    const int64_t warmup = total > 10 ? 5 : 0; /* steps left out of the step time */
    double start = now(), timed_from = start, last_print = 0, loss = 0;
    for (int64_t step = 1; step <= total; step++) {
        if (step == warmup + 1) timed_from = now();
        em_scope_begin();
        em_tensor *x, *y;
        batch_of(&train, data_order_batch(&data, step - 1, o.batch), o.batch, &x, &y);
        em_tape *tape = em_tape_begin(false);
        em_tensor *logits = forward(&m, x, true);
        em_tensor *xent = em_mean(em_sparse_softmax_cross_entropy_with_logits(y, logits), EM_ALL_AXES, false);
        em_tape_stop(tape);
        if (em_minimize(adam, tape, xent, nvars, vars)) return fail("training step");
        em_tape_release(tape);
        loss = em_item(xent);
        em_scope_end();
        double t = now();
        if (!o.quiet && (t - last_print > 0.5 || step == total)) {
            double rate = (double)step / (t - start);
            printf("\rstep %5lld/%lld  epoch %d  loss %.4f  %.2f steps/s  ETA %.0fs   ", (long long)step,
                   (long long)total, (int)((step - 1) / per_epoch) + 1, loss, rate, (double)(total - step) / rate);
            fflush(stdout);
            last_print = t;
        }
    }
    double end = now();
    printf("\ntrained %lld steps (%.2f epochs) in %.1f s: %.1f ms/step (batch %d, after %lld warm-up steps)\n",
           (long long)total, (double)total / (double)per_epoch, end - start,
           1e3 * (end - timed_from) / (double)(total - warmup), o.batch, (long long)warmup);
    int64_t count = o.test_images > 0 && o.test_images < test.n ? o.test_images : test.n;
    printf("final test accuracy: %.4f (%s %lld test images), last training loss %.4f\n", evaluate(&m, &test, count),
           count == test.n ? "all" : "the first", (long long)count, loss);
    em_optimizer_release(adam);
    dataset_release(&train);
    dataset_release(&test);
    data_order_free(&data);
    em_shutdown();
    return 0;
}
