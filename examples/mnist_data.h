/* What the MNIST examples share: loading the IDX files, batches, accuracy,
 * shuffling and a clock. Header-only, so that each example stays one program. */
#ifndef EMBER_EXAMPLES_MNIST_DATA_H
#define EMBER_EXAMPLES_MNIST_DATA_H

#include <ember.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

/* One "--name value" option, inside an example's loop over argv (where a is
 * the argument, v the next one or NULL, i the index): runs `action` with
 * the value, or says the value is missing. */
#define EXAMPLE_OPTION(program, name, action)                          \
    if (!strcmp(a, name)) {                                            \
        if (!v) {                                                      \
            fprintf(stderr, "%s: %s needs a value\n", program, name); \
            return -1;                                                 \
        }                                                              \
        action;                                                        \
        i++;                                                           \
        continue;                                                      \
    }

/* A "--name" flag that sets `field`, in the same loop. */
#define EXAMPLE_FLAG(name, field) \
    if (!strcmp(a, name)) {       \
        field = true;             \
        continue;                 \
    }

/* The end of that loop: --help (or -h) prints the usage and exits; anything
 * else is an unknown option, reported with the usage. */
#define EXAMPLE_HELP_OR_UNKNOWN(program, usage)                     \
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {                \
        usage(stdout);                                             \
        exit(0);                                                   \
    }                                                              \
    fprintf(stderr, "%s: unknown option %s\n", program, a);        \
    usage(stderr);                                                 \
    return -1;

typedef struct {
    em_tensor *images; /* uint8, [N, ...] as the example asked */
    em_tensor *labels; /* [N] int64 */
    int64_t n;
} dataset;

/* dir/prefix-images-idx3-ubyte.gz and -labels-idx1-ubyte.gz; each image
 * reshaped to `image` (e.g. EM_SHAPE(784) or EM_SHAPE(28, 28, 1)). */
static int load_mnist(const char *dir, const char *prefix, em_shape image, dataset *d) {
    char ipath[1024], lpath[1024];
    snprintf(ipath, sizeof ipath, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    snprintf(lpath, sizeof lpath, "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    em_tensor *img = em_load_idx(ipath), *lab = em_load_idx(lpath);
    if (!img || !lab) return -1;
    d->n = em_dim(img, 0);
    em_shape shape = {.ndim = image.ndim + 1, .dims = {d->n}};
    for (int i = 0; i < image.ndim; i++) shape.dims[i + 1] = image.dims[i];
    d->images = em_keep(em_reshape(img, shape));
    d->labels = em_keep(em_cast(lab, EM_I64));
    return d->images && d->labels ? 0 : -1;
}

static void dataset_release(dataset *d) {
    em_release(d->images);
    em_release(d->labels);
}

/* uint8 pixels to float32 in [0, 1]. */
static em_tensor *scaled(em_tensor *images) { return em_mul_scalar(em_cast(images, EM_F32), 1.0 / 255.0); }

/* The images and labels of the rows idx[0..n). */
static void batch_of(const dataset *d, const int64_t *idx, int64_t n, em_tensor **images, em_tensor **labels) {
    em_tensor *rows = em_tensor_from(EM_I64, EM_SHAPE(n), idx);
    *images = scaled(em_gather(d->images, rows, 0));
    *labels = em_gather(d->labels, rows, 0);
}

static em_tensor *accuracy_of(em_tensor *logits, em_tensor *labels) {
    return em_mean(em_cast(em_equal(em_argmax(logits, 1), labels), EM_F32), EM_ALL_AXES, false);
}

/* Fisher-Yates with xorshift64: the same order for the same seed. */
static void shuffle(int64_t *p, int64_t n, uint64_t *state) {
    for (int64_t i = n - 1; i > 0; i--) {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        int64_t j = (int64_t)(*state % (uint64_t)(i + 1));
        int64_t t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#endif
