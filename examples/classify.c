/* Serving a trained model without its code: loads a saved graph (the
 * model.emg that `make mnist` writes) and classifies digits with it. The
 * program knows the file's names only: placeholder "x", float32 [N, D] pixels
 * in [0, 1], and fetch "probabilities", [N, classes].
 *
 *   build/examples/classify runs/mnist/model.emg                 (MNIST's test set)
 *   build/examples/classify runs/mnist/model.emg --images data/mnist/t10k-images-idx3-ubyte.gz \
 *                                                --labels data/mnist/t10k-labels-idx1-ubyte.gz --show 20
 *   build/examples/classify runs/mnist/model.emg digit.png ...   (28x28 PNGs, white on black)
 *
 * Prints each shown image's digit with its probability (and the runner-up),
 * then the accuracy when labels are given. */
#include <ember.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what) {
    fprintf(stderr, "classify: %s: %s\n", what, em_last_error() ? em_last_error() : "failed");
    return 1;
}

static void usage(FILE *out) {
    fprintf(out, "usage: classify MODEL.emg [--images IDX --labels IDX] [--count N] [--show N] [--batch N] [IMAGE.png ...]\n"
                 "  With PNG files, classifies each; else the first --count (all) IDX images (default:\n"
                 "  MNIST's test set in data/mnist), printing the first --show (10) and the accuracy.\n");
}

/* Prints row i of probs: the digit, its probability and the runner-up's. Returns the digit. */
static int report(const char *name, em_tensor *probs, int64_t i, int64_t label) {
    int64_t classes = em_dim(probs, 1);
    const float *p = (const float *)em_data(probs) + i * classes;
    int best = 0, second = classes > 1 ? 1 : 0;
    for (int k = 0; k < classes; k++) {
        if (p[k] > p[best]) second = best, best = k;
        else if (k != best && (second == best || p[k] > p[second])) second = k;
    }
    printf("%-24s %d  (p %.4f; then %d, p %.4f)", name, best, p[best], second, p[second]);
    if (label >= 0) printf("  label %lld%s", (long long)label, label == best ? "" : "  WRONG");
    printf("\n");
    return best;
}

/* A PNG as one row of the model's input: grey (RGB averaged, alpha dropped), scaled to [0, 1]. */
static em_tensor *png_row(const char *path, int64_t width) {
    em_tensor *img = em_read_png(path);
    if (!img) return NULL;
    int64_t h = em_dim(img, 0), w = em_dim(img, 1), c = em_dim(img, 2);
    if (h * w != width) {
        fprintf(stderr, "classify: %s is %lldx%lld; the model takes %lld pixels\n", path, (long long)h, (long long)w,
                (long long)width);
        return NULL;
    }
    em_tensor *pixels = em_cast(img, EM_F32);
    em_tensor *grey = c >= 3 ? em_mean(em_slice(pixels, (int64_t[]){0, 0, 0}, (int64_t[]){h, w, 3}), EM_AXES(2), false)
                             : em_slice(pixels, (int64_t[]){0, 0, 0}, (int64_t[]){h, w, 1});
    return em_reshape(em_mul_scalar(grey, 1.0 / 255.0), EM_SHAPE(1, width));
}

int main(int argc, char **argv) {
    const char *model = NULL, *images_path = "data/mnist/t10k-images-idx3-ubyte.gz",
               *labels_path = "data/mnist/t10k-labels-idx1-ubyte.gz";
    int64_t show = 10, batch = 1000, count = -1;
    int first_png = argc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--images") || !strcmp(a, "--labels") || !strcmp(a, "--show") || !strcmp(a, "--batch") ||
            !strcmp(a, "--count")) {
            if (!v) {
                fprintf(stderr, "classify: %s needs a value\n", a);
                return 2;
            }
            if (!strcmp(a, "--images")) images_path = v;
            else if (!strcmp(a, "--labels")) labels_path = v;
            else if (!strcmp(a, "--show")) show = atoll(v);
            else if (!strcmp(a, "--count")) count = atoll(v);
            else if ((batch = atoll(v)) < 1) batch = 1;
            i++;
        } else if (a[0] == '-') {
            fprintf(stderr, "classify: unknown option %s\n", a);
            usage(stderr);
            return 2;
        } else if (!model) {
            model = a;
        } else if (first_png == argc) {
            first_png = i;
        }
    }
    if (!model) {
        usage(stderr);
        return 2;
    }

    /* The embedding: load, find the tensors by name, run. */
    em_graph *g = em_graph_load(model);
    if (!g) return fail("loading the model");
    em_tensor *x = em_graph_placeholder(g, "x"), *probabilities = em_graph_fetch(g, "probabilities");
    if (!x || !probabilities) return fail("finding x and probabilities");
    int64_t width = em_dim(x, 1);

    if (first_png < argc) { /* the PNG files named */
        for (int i = first_png; i < argc; i++) {
            if (argv[i][0] == '-') continue;
            em_scope_begin();
            em_tensor *row = png_row(argv[i], width), *out;
            if (!row || em_graph_run(g, 1, (em_feed[]){{x, row}}, 1, &probabilities, &out))
                return fail(argv[i]);
            report(argv[i], out, 0, -1);
            em_scope_end();
        }
        em_graph_release(g);
        em_shutdown();
        return 0;
    }

    em_tensor *images = em_keep(em_load_idx(images_path)), *labels = em_keep(em_load_idx(labels_path));
    if (!images || !labels) return fail("loading the images");
    int64_t n = em_dim(images, 0);
    if (!n || em_numel(images) != n * width || em_dim(labels, 0) != n) {
        fprintf(stderr, "classify: %s holds %lld images of %lld pixels and %s %lld labels; the model takes %lld pixels\n",
                images_path, (long long)n, (long long)(n ? em_numel(images) / n : 0), labels_path,
                (long long)em_dim(labels, 0), (long long)width);
        return 1;
    }
    if (count >= 0 && count < n) n = count;
    const uint8_t *label = em_data(labels);
    int64_t correct = 0;
    for (int64_t at = 0; at < n; at += batch) {
        int64_t m = n - at < batch ? n - at : batch;
        em_scope_begin();
        em_tensor *rows = em_reshape(em_slice(images, (int64_t[]){at, 0, 0}, (int64_t[]){m, em_dim(images, 1), em_dim(images, 2)}),
                                     EM_SHAPE(m, width));
        em_tensor *out;
        if (em_graph_run(g, 1, (em_feed[]){{x, em_mul_scalar(em_cast(rows, EM_F32), 1.0 / 255.0)}}, 1, &probabilities, &out))
            return fail("classifying");
        for (int64_t i = 0; i < m; i++) {
            char name[32];
            snprintf(name, sizeof name, "image %lld", (long long)(at + i));
            int digit;
            if (at + i < show) {
                digit = report(name, out, i, label[at + i]);
            } else { /* the argmax alone */
                const float *p = (const float *)em_data(out) + i * em_dim(out, 1);
                digit = 0;
                for (int k = 1; k < em_dim(out, 1); k++)
                    if (p[k] > p[digit]) digit = k;
            }
            correct += digit == label[at + i];
        }
        em_scope_end();
    }
    printf("accuracy: %.4f (%lld of %lld test images)\n", (double)correct / (double)n, (long long)correct, (long long)n);
    em_release(images);
    em_release(labels);
    em_graph_release(g);
    em_shutdown();
    return 0;
}
