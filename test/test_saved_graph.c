/* Saved graphs (em_graph_save / em_graph_load): the MNIST MLP and CNN traced,
 * saved, and run by a separate process that has nothing but the file, with
 * bit-identical results; variables entering the loading process's store;
 * GPT-2's forward pass (examples/gpt2_model.h) the same way;
 * damaged, truncated and newer files refused with clear errors; the format's
 * fixture of every version still loading; a mapped file truncated under a
 * live graph.
 *
 * The separate process is this program run again (/proc/self/exe) with
 * "--run FILE INPUT.npy OUTPUT.npy PLACEHOLDER FETCH": a fresh process that
 * never built the model. */
#include "common.h"
#include "crc32c.h"
#include "../examples/gpt2_model.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[256];
static void setup(void) { em_test_tmpdir("saved_graph", dir, sizeof dir); }
static void teardown_dir(void) {
    em_test_tmpdir_remove(dir);
    em_shutdown();
}

static const char *in_dir(const char *name) {
    static char paths[4][512];
    static int next;
    char *p = paths[next++ % 4];
    snprintf(p, sizeof paths[0], "%s/%s", dir, name);
    return p;
}

/* ---- the models (examples/mnist.c and examples/deep_mnist.c, small) ---- */

/* The variable of that name: the one that exists (a loaded graph's), or a new one. */
static em_tensor *var(const char *name, em_shape shape, em_initializer init) {
    em_tensor *v = em_find_variable(name);
    return v ? v : em_get_variable(name, EM_F32, shape, init);
}

static em_tensor *mlp(em_tensor *x) {
    em_tensor *w1 = var("mlp/w1", EM_SHAPE(64, 32), EM_INIT_TRUNC_NORMAL(0, 0.1));
    em_tensor *b1 = var("mlp/b1", EM_SHAPE(32), EM_INIT_CONST(0.1));
    em_tensor *w2 = var("mlp/w2", EM_SHAPE(32, 10), EM_INIT_TRUNC_NORMAL(0, 0.1));
    em_tensor *b2 = var("mlp/b2", EM_SHAPE(10), EM_INIT_CONST(0.1));
    em_tensor *h = em_relu(em_add(em_matmul(x, w1), b1));
    return em_add(em_matmul(h, w2), b2);
}

static em_tensor *cnn(em_tensor *x) {
    const int two[2] = {2, 2};
    em_tensor *w = em_get_variable("cnn/conv/w", EM_F32, EM_SHAPE(3, 3, 1, 4), EM_INIT_TRUNC_NORMAL(0, 0.1));
    em_tensor *b = em_get_variable("cnn/conv/b", EM_F32, EM_SHAPE(4), EM_INIT_CONST(0.1));
    em_tensor *fw = em_get_variable("cnn/fc/w", EM_F32, EM_SHAPE(4 * 4 * 4, 10), EM_INIT_TRUNC_NORMAL(0, 0.1));
    em_tensor *fb = em_get_variable("cnn/fc/b", EM_F32, EM_SHAPE(10), EM_INIT_CONST(0.1));
    em_tensor *h = em_relu(em_bias_add(em_conv2d(x, w, NULL, EM_PAD_SAME, NULL), b));
    h = em_max_pool(h, two, two, EM_PAD_SAME);
    h = em_reshape(h, EM_SHAPE(em_dim(x, 0), 4 * 4 * 4));
    return em_softmax(em_bias_add(em_matmul(h, fw), fb), -1);
}

/* Traces model on a placeholder "x" of shape [-1, rest...] and saves "logits". */
static em_graph *trace_and_save(em_tensor *(*model)(em_tensor *), em_shape xshape, const char *path, unsigned flags,
                                em_tensor **x, em_tensor **logits) {
    *x = em_keep(em_placeholder(EM_F32, xshape, "x"));
    ck_assert_int_eq(em_trace_begin(), 0);
    *logits = model(*x);
    em_graph *g = em_trace_end();
    ck_assert_ptr_nonnull(g);
    ck_assert_msg(em_graph_save(g, path, 1, logits, (const char *[]){"logits"}, flags) == 0, "%s", em_last_error());
    return g;
}

static em_tensor *run1(em_graph *g, em_tensor *x, em_tensor *fetch, em_tensor *input) {
    em_tensor *out;
    ck_assert_msg(em_graph_run(g, 1, (em_feed[]){{x, input}}, 1, &fetch, &out) == 0, "%s", em_last_error());
    return em_copy(out);
}

static bool same_bits(em_tensor *a, em_tensor *b) {
    return em_tensor_dtype(a) == em_tensor_dtype(b) && em_shape_equal(em_tensor_shape(a), em_tensor_shape(b)) &&
           !memcmp(em_data(a), em_data(b), (size_t)em_numel(a) * em_dtype_size(em_tensor_dtype(a)));
}

/* Runs "--run" in a new process; returns its exit status (or 128 + signal), its stderr in err. */
static int run_child(const char *const *args, char *err, size_t errsize) {
    const char *errpath = in_dir("child.err");
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (!freopen(errpath, "w", stderr)) _exit(120);
        char *argv[8] = {"test_saved_graph"};
        for (int k = 0; args[k] && k < 6; k++) argv[k + 1] = (char *)args[k];
        execv("/proc/self/exe", argv);
        _exit(121);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    FILE *f = fopen(errpath, "r");
    size_t n = f ? fread(err, 1, errsize - 1, f) : 0;
    err[n] = '\0';
    if (f) fclose(f);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The model saved, loaded by another process, and the outputs compared bit for bit. */
static void check_in_child(em_tensor *(*model)(em_tensor *), em_shape xshape, em_shape batch, unsigned flags) {
    const char *path = in_dir("model.emg"), *input = in_dir("input.npy"), *output = in_dir("output.npy");
    em_tensor *x, *logits;
    em_graph *g = trace_and_save(model, xshape, path, flags, &x, &logits);
    em_tensor *images = em_cast(em_test_uniform(batch, 0, 1, 7), EM_F32);
    em_tensor *expect = run1(g, x, logits, images);
    ck_assert_int_eq(em_save_npy(input, images), 0);
    char err[4096];
    int rc = run_child((const char *[]){"--run", path, input, output, "x", "logits", NULL}, err, sizeof err);
    ck_assert_msg(rc == 0, "the loading process failed (%d): %s", rc, err);
    em_tensor *got = em_load_npy(output);
    ck_assert_ptr_nonnull(got);
    ck_assert_msg(same_bits(got, expect), "the loaded graph's output differs from the traced graph's");
    em_graph_release(g);
    em_release(x);
}

START_TEST(test_mlp_in_another_process) {
    check_in_child(mlp, EM_SHAPE(-1, 64), EM_SHAPE(5, 64), 0);
}
END_TEST

START_TEST(test_cnn_frozen_in_another_process) {
    check_in_child(cnn, EM_SHAPE(-1, 8, 8, 1), EM_SHAPE(3, 8, 8, 1), EM_SAVE_FREEZE | EM_SAVE_INFERENCE);
}
END_TEST

START_TEST(test_gpt_forward_in_another_process) {
    static const em_llmc_config tiny = {.max_seq_len = 16, .vocab_size = 50, .padded_vocab_size = 64,
                                        .num_layers = 2, .num_heads = 4, .channels = 32};
    const char *path = in_dir("gpt.emg"), *input = in_dir("tokens.npy"), *output = in_dir("logits.npy");
    gpt2_model m;
    ck_assert_int_eq(gpt2_create(&m, &tiny, EM_F32), 0);
    em_tensor *idx = em_keep(em_placeholder(EM_I64, EM_SHAPE(2, 8), "tokens"));
    ck_assert_int_eq(em_trace_begin(), 0);
    em_tensor *logits = gpt2_logits(&m, gpt2_hidden(&m, idx, 0, NULL));
    em_graph *g = em_trace_end();
    ck_assert_ptr_nonnull(g);
    ck_assert_msg(em_graph_save(g, path, 1, &logits, (const char *[]){"logits"}, 0) == 0, "%s", em_last_error());
    int64_t ids[16];
    for (int k = 0; k < 16; k++) ids[k] = (k * 7 + 3) % tiny.vocab_size;
    em_tensor *tokens = em_tensor_from(EM_I64, EM_SHAPE(2, 8), ids);
    em_tensor *expect = run1(g, idx, logits, tokens);
    ck_assert_int_eq(em_save_npy(input, tokens), 0);
    char err[4096];
    int rc = run_child((const char *[]){"--run", path, input, output, "tokens", "logits", NULL}, err, sizeof err);
    ck_assert_msg(rc == 0, "the loading process failed (%d): %s", rc, err);
    em_tensor *got = em_load_npy(output);
    ck_assert_ptr_nonnull(got);
    ck_assert_msg(same_bits(got, expect), "the loaded GPT's logits differ from the traced graph's");
    em_graph_release(g);
    em_release(idx);
    gpt2_free(&m);
}
END_TEST

START_TEST(test_batch_stays_symbolic) {
    const char *path = in_dir("mlp.emg");
    em_tensor *x, *logits;
    em_graph *g = trace_and_save(mlp, EM_SHAPE(-1, 64), path, EM_SAVE_FREEZE, &x, &logits);
    em_graph *h = em_graph_load(path);
    ck_assert_msg(h != NULL, "%s", em_last_error());
    em_tensor *hx = em_graph_placeholder(h, "x"), *hl = em_graph_fetch(h, "logits");
    ck_assert_ptr_nonnull(hx);
    ck_assert_ptr_nonnull(hl);
    ck_assert_int_eq(em_dim(hx, 0), -1); /* still unknown */
    for (int64_t n = 1; n <= 7; n += 6) {
        em_tensor *images = em_cast(em_test_uniform(EM_SHAPE(n, 64), 0, 1, 3), EM_F32);
        ck_assert(same_bits(run1(h, hx, hl, images), run1(g, x, logits, images)));
    }
    ck_assert_error(em_graph_fetch(h, "loss"), "no fetch named 'loss'");
    ck_assert_error(em_graph_placeholder(h, "y"), "no placeholder named 'y'");
    em_graph_release(h);
    em_graph_release(g);
    em_release(x);
}
END_TEST

/* em_graph_load_on places the loaded graph on another device: a second CPU device gives the same bits, a GPU
 * (when there is one) the same values to float32's rounding; an unknown device is an error that names it. */
START_TEST(test_load_on_another_device) {
    ck_assert_int_eq(em_set_cpu_devices(2, 0), 0);
    const char *path = in_dir("mlp_on.emg");
    em_tensor *x, *logits;
    em_graph *g = trace_and_save(mlp, EM_SHAPE(-1, 64), path, EM_SAVE_FREEZE, &x, &logits);
    em_tensor *images = em_cast(em_test_uniform(EM_SHAPE(5, 64), 0, 1, 11), EM_F32);
    em_tensor *expect = run1(g, x, logits, images);
    char why[256];
    const char *devices[2] = {"/cpu:1", em_test_gpu_present(why, sizeof why) ? "/gpu:0" : NULL};
    for (int d = 0; d < 2 && devices[d]; d++) {
        em_graph *h = em_graph_load_on(path, devices[d]);
        ck_assert_msg(h != NULL, "%s: %s", devices[d], em_last_error());
        em_tensor *hx = em_graph_placeholder(h, "x"), *hl = em_graph_fetch(h, "logits"), *out;
        ck_assert_int_eq(em_graph_run(h, 1, (em_feed[]){{hx, images}}, 1, &hl, &out), 0);
        ck_assert_str_eq(em_tensor_device(out), devices[d]);
        em_tensor *host = em_to_device(out, "/cpu:0");
        if (d == 0) ck_assert_msg(same_bits(host, expect), "the graph loaded on /cpu:1 computes other bits");
        else ck_assert_double_le(em_test_max_rel_diff(host, expect), 1e-5);
        em_graph_release(h);
    }
    ck_assert_error(em_graph_load_on(path, "/cpu:7"), "/cpu:7");
    em_graph_release(g);
    em_release(x);
    em_set_cpu_devices(1, 0);
}
END_TEST

START_TEST(test_variables_enter_the_store) {
    const char *path = in_dir("mlp.emg");
    em_tensor *x, *logits;
    em_graph *g = trace_and_save(mlp, EM_SHAPE(-1, 64), path, 0, &x, &logits);
    em_tensor *w1 = em_keep(em_copy(em_find_variable("mlp/w1")));
    em_graph_release(g);
    em_release(x);
    ck_assert_error(em_graph_load(path), "variable 'mlp/w1' already exists");
    em_graph *h = em_graph_load_with(path, NULL, EM_LOAD_REUSE_VARIABLES);
    ck_assert_msg(h != NULL, "%s", em_last_error());
    em_graph_release(h);

    em_variables_release();
    h = em_graph_load(path);
    ck_assert_msg(h != NULL, "%s", em_last_error());
    em_tensor *v = em_find_variable("mlp/w1");
    ck_assert_ptr_nonnull(v);
    ck_assert(same_bits(v, w1));
    em_tensor *all[8];
    ck_assert_int_eq(em_trainable_variables(all, 8), 4);
    em_graph_release(h);

    em_variables_release(); /* an inference graph's variables are not trained */
    g = trace_and_save(mlp, EM_SHAPE(-1, 64), path, EM_SAVE_INFERENCE, &x, &logits);
    em_graph_release(g);
    em_release(x);
    em_variables_release();
    h = em_graph_load(path);
    ck_assert_msg(h != NULL, "%s", em_last_error());
    ck_assert_ptr_nonnull(em_find_variable("mlp/b2"));
    ck_assert_int_eq(em_trainable_variables(all, 8), 0);
    em_graph_release(h);

    em_variables_release();
    var("mlp/w1", EM_SHAPE(64, 31), EM_INIT_CONST(0));
    ck_assert_error(em_graph_load_with(path, NULL, EM_LOAD_REUSE_VARIABLES), "exists as float32 [64,31]");
    ck_assert_ptr_null(em_find_variable("mlp/b1")); /* a refused load creates nothing */
    em_release(w1);
}
END_TEST

START_TEST(test_training_continues_after_loading) {
    /* The loss and its gradients are saved; an optimizer step is not (the
     * loading program makes its own over the loaded variables). */
    const char *path = in_dir("train.emg");
    em_tensor *x = em_keep(em_placeholder(EM_F32, EM_SHAPE(-1, 64), "x"));
    em_tensor *y = em_keep(em_placeholder(EM_I64, EM_SHAPE(-1), "labels"));
    ck_assert_int_eq(em_trace_begin(), 0);
    em_tape *tape = em_tape_begin(false);
    em_tensor *loss = em_mean(em_sparse_softmax_cross_entropy_with_logits(y, mlp(x)), EM_ALL_AXES, false);
    em_tape_stop(tape);
    em_optimizer *opt = em_sgd(0.5);
    em_tensor *train = em_minimize_op(opt, tape, loss, 0, NULL);
    em_tape_release(tape);
    em_graph *g = em_trace_end();
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(em_graph_save(g, path, 2, (em_tensor *[]){train, loss}, (const char *[]){"train", "loss"}, 0), -1);
    ck_assert_msg(strstr(em_last_error(), "an optimizer step"), "%s", em_last_error());
    ck_assert_int_eq(em_graph_save(g, path, 1, &loss, (const char *[]){"loss"}, 0), 0);
    em_graph_release(g);
    em_optimizer_release(opt);
    em_release(x);
    em_release(y);
    em_variables_release();

    em_graph *h = em_graph_load(path);
    ck_assert_msg(h != NULL, "%s", em_last_error());
    em_tensor *images = em_keep(em_cast(em_test_uniform(EM_SHAPE(4, 64), 0, 1, 5), EM_F32));
    em_tensor *labels = em_keep(em_cast(em_arange(EM_F64, 0, 4, 1), EM_I64));
    em_feed feeds[2] = {{em_graph_placeholder(h, "x"), images}, {em_graph_placeholder(h, "labels"), labels}};
    em_tensor *fetch = em_graph_fetch(h, "loss"), *out;
    em_tensor *vars[4];
    ck_assert_int_eq(em_trainable_variables(vars, 4), 4);
    opt = em_sgd(0.5);
    double first = 0, last = 0;
    for (int step = 0; step < 5; step++) {
        em_scope_begin();
        ck_assert_msg(em_graph_run(h, 2, feeds, 1, &fetch, &out) == 0, "%s", em_last_error());
        last = em_item(out);
        if (!step) first = last;
        /* the eager step on the same variables the graph reads */
        em_tape *t = em_tape_begin(false);
        em_tensor *l = em_mean(em_sparse_softmax_cross_entropy_with_logits(labels, mlp(images)), EM_ALL_AXES, false);
        em_tape_stop(t);
        ck_assert_msg(em_minimize(opt, t, l, 0, NULL) == 0, "%s", em_last_error());
        em_tape_release(t);
        em_scope_end();
    }
    ck_assert_msg(last < first, "loss %g after 5 steps, %g before", last, first);
    em_optimizer_release(opt);
    em_graph_release(h);
    em_release(images);
    em_release(labels);
}
END_TEST

/* ---- damaged files ---- */

static size_t read_all(const char *path, uint8_t **p) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    size_t n = (size_t)ftell(f);
    rewind(f);
    *p = malloc(n);
    ck_assert_uint_eq(fread(*p, 1, n, f), n);
    fclose(f);
    return n;
}

/* Writes bytes as a file, with its checksum made right when fix_crc (the
 * damage is then for the parser to find). */
static const char *write_variant(const uint8_t *p, size_t n, bool fix_crc) {
    uint8_t *q = malloc(n);
    memcpy(q, p, n);
    if (fix_crc && n >= 64) {
        uint32_t crc = em__crc32c(em__crc32c(0, q, 60), q + 64, n - 64);
        memcpy(q + 60, &crc, 4);
    }
    const char *path = in_dir("variant.emg");
    FILE *f = fopen(path, "wb");
    fwrite(q, 1, n, f);
    fclose(f);
    free(q);
    return path;
}

START_TEST(test_damaged_files_are_refused) {
    const char *path = in_dir("cnn.emg");
    em_tensor *x, *logits;
    em_graph *g = trace_and_save(cnn, EM_SHAPE(-1, 8, 8, 1), path, EM_SAVE_FREEZE, &x, &logits);
    em_graph_release(g);
    em_release(x);
    uint8_t *p;
    size_t n = read_all(path, &p);

    ck_assert_error(em_graph_load(write_variant(p, n / 2, false)), "truncated");
    ck_assert_error(em_graph_load(write_variant(p, 40, false)), "truncated: 40 bytes, shorter than the header");
    for (size_t at = 8; at < n; at += n / 13) { /* a flipped bit anywhere */
        p[at] ^= 0x10;
        ck_assert_error(em_graph_load(write_variant(p, n, false)), at < 24 ? "" : "checksum mismatch");
        p[at] ^= 0x10;
    }
    uint32_t v2 = 2;
    memcpy(p + 8, &v2, 4);
    ck_assert_error(em_graph_load(write_variant(p, n, true)), "format version 2 is newer than this Ember reads");
    v2 = 1;
    memcpy(p + 8, &v2, 4);
    uint8_t *conv = memmem(p, n, "\x06\0\0\0conv2d", 10); /* the op's name, length first */
    ck_assert_ptr_nonnull(conv);
    memcpy(conv + 4, "convXd", 6);
    ck_assert_error(em_graph_load(write_variant(p, n, true)), "op 'convXd', which this process does not have");
    memcpy(conv + 4, "conv2d", 6);
    memcpy(p, "NOTEMBER", 8);
    ck_assert_error(em_graph_load(write_variant(p, n, false)), "not an Ember saved graph");
    ck_assert_error(em_graph_load(in_dir("missing.emg")), "cannot open");
    free(p);
}
END_TEST

/* test/data/graph_v<N>.emg: a frozen MLP of format version N, written by
 * "--write-fixture" with weights from em_arange; every version keeps loading
 * and computing what it did (test/data/graph_v<N>_out.npy on its input). */
static em_tensor *fixture_model(em_tensor *x) {
    em_tensor *w = em_get_variable("fixture/w", EM_F32, EM_SHAPE(4, 3),
                                   EM_INIT_FROM(em_reshape(em_arange(EM_F32, -6, 6, 1), EM_SHAPE(4, 3))));
    em_tensor *b = em_get_variable("fixture/b", EM_F32, EM_SHAPE(3), EM_INIT_CONST(0.5));
    return em_softmax(em_tanh(em_add(em_matmul(x, w), b)), -1);
}

static em_tensor *fixture_input(void) { return em_reshape(em_arange(EM_F32, 0, 1, 0.125), EM_SHAPE(2, 4)); }

START_TEST(test_fixtures_of_every_version_load) {
    for (int version = 1; version <= 1; version++) {
        char path[64], out[64];
        snprintf(path, sizeof path, "test/data/graph_v%d.emg", version);
        snprintf(out, sizeof out, "test/data/graph_v%d_out.npy", version);
        em_graph *g = em_graph_load(path);
        ck_assert_msg(g != NULL, "%s: %s", path, em_last_error());
        em_tensor *got = run1(g, em_graph_placeholder(g, "x"), em_graph_fetch(g, "probabilities"), fixture_input());
        ck_assert(same_bits(got, em_load_npy(out)));
        em_graph_release(g);
    }
}
END_TEST

/* ---- mapped files ---- */

static em_tensor *wide(em_tensor *x) {
    em_tensor *w = em_get_variable("wide/w", EM_F32, EM_SHAPE(64, 8192), EM_INIT_TRUNC_NORMAL(0, 0.1));
    return em_matmul(x, w);
}

START_TEST(test_large_file_is_mapped) {
    const char *path = in_dir("wide.emg"), *input = in_dir("wide_in.npy");
    em_tensor *x, *out;
    em_graph *g = trace_and_save(wide, EM_SHAPE(-1, 64), path, EM_SAVE_FREEZE, &x, &out); /* 2 MiB of weights */
    em_tensor *images = em_cast(em_test_uniform(EM_SHAPE(2, 64), 0, 1, 9), EM_F32);
    em_graph *h = em_graph_load(path);
    ck_assert_msg(h != NULL, "%s", em_last_error());
    ck_assert(same_bits(run1(h, em_graph_placeholder(h, "x"), em_graph_fetch(h, "logits"), images),
                        run1(g, x, out, images)));
    em_graph_release(h);
    em_graph_release(g);
    em_release(x);

    /* Truncated under a live graph: the process dies of SIGBUS, and says why first. */
    ck_assert_int_eq(em_save_npy(input, images), 0);
    char err[4096];
    int rc = run_child((const char *[]){"--truncate-and-run", path, input, NULL}, err, sizeof err);
    ck_assert_msg(rc == 128 + SIGBUS, "exit %d: %s", rc, err);
    ck_assert_msg(strstr(err, "was truncated while em_graph_load had it mapped") && strstr(err, path), "%s", err);
}
END_TEST

/* ---- the other process ---- */

static int child_fail(const char *what) {
    fprintf(stderr, "%s: %s\n", what, em_last_error() ? em_last_error() : "failed");
    return 1;
}

static int child_run(char **argv) {
    em_graph *g = em_graph_load(argv[0]);
    if (!g) return child_fail("load");
    em_tensor *input = em_load_npy(argv[1]);
    em_tensor *x = em_graph_placeholder(g, argv[3]), *fetch = em_graph_fetch(g, argv[4]), *out;
    if (!input || !x || !fetch) return child_fail("find");
    if (em_graph_run(g, 1, (em_feed[]){{x, input}}, 1, &fetch, &out)) return child_fail("run");
    if (em_save_npy(argv[2], out)) return child_fail("save");
    em_graph_release(g);
    return 0;
}

static int child_truncate(char **argv) {
    em_graph *g = em_graph_load(argv[0]);
    if (!g) return child_fail("load");
    if (truncate(argv[0], 4096)) return child_fail("truncate");
    em_tensor *input = em_load_npy(argv[1]), *fetch = em_graph_fetch(g, "logits"), *out;
    em_graph_run(g, 1, (em_feed[]){{em_graph_placeholder(g, "x"), input}}, 1, &fetch, &out);
    return 2; /* not reached: the weights are gone */
}

static int write_fixture(const char *dirname) {
    char path[512], out[512];
    snprintf(path, sizeof path, "%s/graph_v1.emg", dirname);
    snprintf(out, sizeof out, "%s/graph_v1_out.npy", dirname);
    em_tensor *x = em_placeholder(EM_F32, EM_SHAPE(-1, 4), "x");
    em_trace_begin();
    em_tensor *p = fixture_model(x);
    em_graph *g = em_trace_end();
    if (!g || em_graph_save(g, path, 1, &p, (const char *[]){"probabilities"}, EM_SAVE_FREEZE)) return child_fail("save");
    em_tensor *result;
    if (em_graph_run(g, 1, (em_feed[]){{x, fixture_input()}}, 1, &p, &result) || em_save_npy(out, result))
        return child_fail("run");
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 7 && !strcmp(argv[1], "--run")) return child_run(argv + 2);
    if (argc == 4 && !strcmp(argv[1], "--truncate-and-run")) return child_truncate(argv + 2);
    if (argc == 3 && !strcmp(argv[1], "--write-fixture")) return write_fixture(argv[2]);
    Suite *s = suite_create("saved_graph");
    TCase *tc = tcase_create("saved_graph");
    tcase_add_checked_fixture(tc, setup, teardown_dir);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_mlp_in_another_process);
    tcase_add_test(tc, test_cnn_frozen_in_another_process);
    tcase_add_test(tc, test_gpt_forward_in_another_process);
    tcase_add_test(tc, test_batch_stays_symbolic);
    tcase_add_test(tc, test_load_on_another_device);
    tcase_add_test(tc, test_variables_enter_the_store);
    tcase_add_test(tc, test_training_continues_after_loading);
    tcase_add_test(tc, test_damaged_files_are_refused);
    tcase_add_test(tc, test_fixtures_of_every_version_load);
    tcase_add_test(tc, test_large_file_is_mapped);
    suite_add_tcase(s, tc);
    return em_test_run(s);
}
