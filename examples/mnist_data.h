/* What the MNIST examples share: loading the IDX files, batches, accuracy,
 * shuffling, checkpointed data positions and a clock. Header-only, so that each example stays one program
 * (inline: an example that does not checkpoint leaves those functions out). */
#ifndef EMBER_EXAMPLES_MNIST_DATA_H
#define EMBER_EXAMPLES_MNIST_DATA_H

#include <ember.h>

#include <stdio.h>
#include <stdlib.h>
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

/* The order of the training examples, shuffled anew at each epoch, and
 * where a run is in it: a resumed run rebuilds it from the checkpoint's
 * values, so that it sees the batches an uninterrupted run would have seen. */
typedef struct {
    int64_t *order, n;
    uint64_t seed, state; /* the shuffle's seed and its state now */
    int64_t shuffles;     /* done so far: the order of epoch e is the (e+1)-th */
} data_order;

static int data_order_init(data_order *d, int64_t n, uint64_t seed) {
    d->order = malloc(sizeof(int64_t) * (size_t)n);
    if (!d->order) return -1;
    for (int64_t i = 0; i < n; i++) d->order[i] = i;
    d->n = n;
    d->seed = seed;
    d->state = seed * 0x9E3779B97F4A7C15ULL + 1;
    d->shuffles = 0;
    return 0;
}

static void data_order_free(data_order *d) {
    free(d->order);
    d->order = NULL;
}

/* The rows of global batch g (0, 1, ... across epochs). */
static const int64_t *data_order_batch(data_order *d, int64_t g, int64_t batch) {
    int64_t per_epoch = d->n / batch;
    while (d->shuffles <= g / per_epoch) {
        shuffle(d->order, d->n, &d->state);
        d->shuffles++;
    }
    return d->order + (g % per_epoch) * batch;
}

/* The position, as values of the checkpoints the manager saves next. */
static inline int data_order_save(const data_order *d, em_checkpoint_manager *m, int64_t batch) {
    char seed[24], state[24];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)d->seed);
    snprintf(state, sizeof state, "%016llx", (unsigned long long)d->state);
    return em_checkpoint_manager_set_string(m, "data.seed", seed) ||
                   em_checkpoint_manager_set_string(m, "data.state", state) ||
                   em_checkpoint_manager_set_value(m, "data.shuffles", (double)d->shuffles) ||
                   em_checkpoint_manager_set_value(m, "data.batch", (double)batch)
               ? -1
               : 0;
}

/* The position of a restored checkpoint: the same shuffles replayed from its
 * seed. 0, or -1 with the reason in why. */
static int data_order_restore(data_order *d, const em_checkpoint_manager *m, int64_t batch, char *why,
                              size_t size) {
    const char *seed, *state;
    double shuffles, saved_batch;
    if (em_checkpoint_manager_get_string(m, "data.seed", &seed) != 1 ||
        em_checkpoint_manager_get_string(m, "data.state", &state) != 1 ||
        em_checkpoint_manager_get_value(m, "data.shuffles", &shuffles) != 1 ||
        em_checkpoint_manager_get_value(m, "data.batch", &saved_batch) != 1) {
        snprintf(why, size, "the checkpoint has no data position (data.seed, data.state, data.shuffles, data.batch)");
        return -1;
    }
    if ((int64_t)saved_batch != batch) {
        snprintf(why, size, "the checkpoint was trained with batches of %lld, not %lld", (long long)saved_batch,
                 (long long)batch);
        return -1;
    }
    data_order_free(d);
    if (data_order_init(d, d->n, strtoull(seed, NULL, 10))) {
        snprintf(why, size, "out of memory");
        return -1;
    }
    for (; d->shuffles < (int64_t)shuffles; d->shuffles++) shuffle(d->order, d->n, &d->state);
    char now_state[24];
    snprintf(now_state, sizeof now_state, "%016llx", (unsigned long long)d->state);
    if (strcmp(now_state, state)) {
        snprintf(why, size, "replaying %lld shuffles from seed %s gives state %s, not the saved %s", (long long)shuffles,
                 seed, now_state, state);
        return -1;
    }
    return 0;
}

/* --resume: restores ckpt's newest checkpoint (variables, random streams)
 * and data's position. The step it resumes at, 0 when there is none (start
 * fresh), or -1 after saying why on stderr, prefixed with `who`. Notes go
 * to stdout, prefixed with `lead`, when `talk` (one rank of several talks). */
static inline int64_t resume_newest(em_checkpoint_manager *ckpt, data_order *data, int64_t batch, const char *who,
                             const char *lead, bool talk) {
    int got = em_checkpoint_manager_restore_latest(ckpt);
    if (got < 0) {
        fprintf(stderr, "%s: resuming: %s\n", who, em_last_error());
        return -1;
    }
    const char *note = em_checkpoint_manager_last_fallback(ckpt);
    if (talk && note) printf("%snote: %s\n", lead, note);
    if (got == 0) {
        if (talk) printf("%sno checkpoint: starting fresh\n", lead);
        return 0;
    }
    char why[256];
    if (data_order_restore(data, ckpt, batch, why, sizeof why)) {
        fprintf(stderr, "%s: resuming: %s\n", who, why);
        return -1;
    }
    int64_t step = em_checkpoint_manager_step(ckpt);
    if (talk)
        printf("%sresumed from %s at step %lld (epoch %lld)\n", lead, em_checkpoint_manager_latest(ckpt),
               (long long)step, (long long)data->shuffles);
    return step;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#endif
