/* ONNX export checked by the ONNX tools (test/onnx_check.py): the checker
 * accepts every file, and onnxruntime, run on the same inputs, gives Ember's
 * outputs. The MNIST MLP and CNN, the GPT block's forward ops, GPT-2's whole
 * forward pass, the other mapped ops, and the errors. */
#include "common.h"

#include "../examples/gpt2_model.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmp[256];

static void setup(void) {
    em_test_tmpdir("onnx", tmp, sizeof tmp);
    em_set_seed(7);
}

static void teardown(void) {
    em_test_tmpdir_remove(tmp);
    em_shutdown();
}

static bool have_onnx(void) {
    static int have = -1;
    if (have < 0) {
        const char *probe = "python3 -c 'import onnx, onnxruntime, numpy' >/dev/null 2>&1";
        have = system(probe) == 0 ||
               (system("python3 -m pip install -q onnx onnxruntime numpy >/dev/null 2>&1") == 0 && system(probe) == 0);
        if (!have)
            printf("test_onnx: SKIPPING the ONNX cross-checks: python3 cannot import onnx, onnxruntime and numpy, "
                   "and 'python3 -m pip install onnx onnxruntime numpy' failed\n");
    }
    return have;
}

/* Exports g's fetches into <tmp>/<name>/model.onnx and saves the feeds and
 * Ember's results there as in_<feed>.npy and out_<fetch>.npy, for one run of
 * onnx_check.py over every case (python and onnxruntime take seconds to start). */
static void export_case(const char *name, em_graph *g, int nfeeds, const em_feed *feeds, const char *const *feed_names,
                        int nfetch, em_tensor *const *fetches, const char *const *fetch_names, int opset) {
    char dir[320], path[400];
    snprintf(dir, sizeof dir, "%s/%s", tmp, name);
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    ck_assert_msg(em_graph_export_onnx(g, path, nfetch, fetches, fetch_names, opset) == 0, "%s: export: %s", name,
                  em_last_error());
    em_tensor *results[16];
    ck_assert_msg(em_graph_run(g, nfeeds, feeds, nfetch, fetches, results) == 0, "%s: run: %s", name, em_last_error());
    for (int i = 0; i < nfeeds + nfetch; i++) {
        const char *file = i < nfeeds ? feed_names[i] : fetch_names[i - nfeeds];
        int n = snprintf(path, sizeof path, "%s/%s_", dir, i < nfeeds ? "in" : "out");
        for (const char *p = file; *p && n + 5 < (int)sizeof path; p++) path[n++] = *p == '/' ? '_' : *p;
        snprintf(path + n, sizeof path - (size_t)n, ".npy");
        ck_assert_int_eq(em_save_npy(path, i < nfeeds ? feeds[i].value : results[i - nfeeds]), 0);
    }
}

/* onnx_check.py's output for the cases (static), or NULL without the packages. */
static const char *check_cases(int n, const char *const *names) {
    if (!have_onnx()) return NULL;
    char cmd[2048], path[320];
    int len = snprintf(cmd, sizeof cmd, "python3 test/onnx_check.py");
    for (int i = 0; i < n; i++) len += snprintf(cmd + len, sizeof cmd - (size_t)len, " '%s/%s'", tmp, names[i]);
    snprintf(cmd + len, sizeof cmd - (size_t)len, " >'%s/check.out' 2>&1", tmp);
    int rc = system(cmd);
    static char out[8192];
    snprintf(path, sizeof path, "%s/check.out", tmp);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    out[fread(out, 1, sizeof out - 1, f)] = '\0';
    fclose(f);
    ck_assert_msg(rc == 0 && strstr(out, "ok\n"), "onnx_check.py failed (%d): %s", rc, out);
    return out;
}

/* Glorot's scale, as a model starts training: float32 sums of 784 products
 * then agree to about 1e-7 of their terms, within the check's 1e-6. */
static em_tensor *weights(const char *name, em_shape shape) {
    return em_get_variable(name, EM_F32, shape, shape.ndim > 1 ? EM_INIT_GLOROT : EM_INIT_UNIFORM(-0.1, 0.1));
}

static em_tensor *dense(const char *scope, em_tensor *x, int64_t in, int64_t out) {
    em_variable_scope_begin(scope, EM_REUSE_INHERIT);
    em_tensor *y = em_add(em_matmul(x, weights("weights", EM_SHAPE(in, out))),
                          weights("biases", EM_SHAPE(out)));
    em_variable_scope_end();
    return y;
}

static em_tensor *images(int64_t batch) { return em_cast(em_test_uniform(EM_SHAPE(batch, 784), 0, 1, 11), EM_F32); }

static void mnist_mlp(void) {
    em_tensor *x = em_placeholder(EM_F32, EM_SHAPE(-1, 784), "x");
    ck_assert_int_eq(em_trace_begin(), 0);
    em_tensor *hidden = em_relu(dense("layer1", x, 784, 32));
    em_tensor *logits = dense("layer2", em_dropout(hidden, 1.0), 32, 10);
    em_tensor *probs = em_softmax(logits, -1);
    em_graph *g = em_trace_end();
    ck_assert_ptr_nonnull(g);
    export_case("mlp", g, 1, (em_feed[]){{x, images(5)}}, (const char *[]){"x"}, 2, (em_tensor *[]){logits, probs},
                (const char *[]){"logits", "probabilities"}, 17);
    em_graph_release(g);
}

static void mnist_cnn(void) {
    em_tensor *x = em_placeholder(EM_F32, EM_SHAPE(-1, 784), "x");
    ck_assert_int_eq(em_trace_begin(), 0);
    em_tensor *h = em_reshape(x, EM_SHAPE(-1, 28, 28, 1));
    const int64_t channels[3] = {1, 4, 8};
    for (int l = 0; l < 2; l++) {
        char scope[16];
        snprintf(scope, sizeof scope, "conv%d", l + 1);
        em_variable_scope_begin(scope, EM_REUSE_INHERIT);
        em_tensor *conv = em_conv2d(h, weights("weights", EM_SHAPE(5, 5, channels[l], channels[l + 1])), NULL,
                                    EM_PAD_SAME, NULL);
        h = em_relu(em_add(conv, weights("biases", EM_SHAPE(channels[l + 1]))));
        h = em_max_pool(h, (const int[]){2, 2}, (const int[]){2, 2}, EM_PAD_SAME);
        em_variable_scope_end();
    }
    /* the other spatial attributes: strides, VALID, dilations, and the average pool (pads not counted) */
    em_tensor *pooled = em_avg_pool(h, (const int[]){3, 3}, (const int[]){2, 2}, EM_PAD_SAME);
    em_tensor *strided = em_conv2d(pooled, weights("conv3/weights", EM_SHAPE(2, 2, 8, 3)), (const int[]){2, 1},
                                   EM_PAD_VALID, (const int[]){1, 2});
    h = em_reshape(h, EM_SHAPE(-1, 7 * 7 * 8));
    em_tensor *logits = dense("fc2", em_relu(dense("fc1", h, 7 * 7 * 8, 16)), 16, 10);
    em_tensor *predictions = em_argmax(logits, 1);
    em_graph *g = em_trace_end();
    ck_assert_ptr_nonnull(g);
    export_case("cnn", g, 1, (em_feed[]){{x, images(3)}}, (const char *[]){"x"}, 3,
                (em_tensor *[]){logits, predictions, strided}, (const char *[]){"logits", "predictions", "strided"}, 18);
    em_graph_release(g);
}

/* A GPT-2 block's forward ops: layer norm, the attention's matmuls and
 * causal softmax written out, gelu_tanh, residuals. */
static void gpt_block(void) {
    enum { T = 6, C = 8 };
    em_tensor *x = em_placeholder(EM_F32, EM_SHAPE(-1, T, C), "tokens");
    ck_assert_int_eq(em_trace_begin(), 0);
    em_tensor *ln = em_layer_norm(x, weights("ln/g", EM_SHAPE(C)), weights("ln/b", EM_SHAPE(C)), -1, 1e-5);
    em_tensor *q = em_matmul(ln, weights("q", EM_SHAPE(C, C)));
    em_tensor *k = em_matmul(ln, weights("k", EM_SHAPE(C, C)));
    /* the scores written out, with a mask */
    em_tensor *scores = em_mul_scalar(em_matmul_t(q, k, false, true), 1 / sqrt(C));
    float mask[T * T];
    for (int i = 0; i < T * T; i++) mask[i] = i % T > i / T ? -1e9f : 0;
    em_tensor *att = em_softmax(em_add(scores, em_tensor_from(EM_F32, EM_SHAPE(T, T), mask)), -1);
    /* and fused, in heads: [B, T, C] -> [B, H, T, C / H] */
    const int heads[] = {0, 2, 1, 3};
    em_tensor *qh = em_transpose(em_reshape(q, EM_SHAPE(-1, T, 2, C / 2)), 4, heads);
    em_tensor *kh = em_transpose(em_reshape(k, EM_SHAPE(-1, T, 2, C / 2)), 4, heads);
    em_tensor *fused = em_scaled_dot_product_attention(qh, kh, qh, true, 0, NULL);
    em_tensor *y = em_add(em_add(x, em_matmul(att, ln)), em_reshape(em_transpose(fused, 4, heads), EM_SHAPE(-1, T, C)));
    em_tensor *mlp = em_gelu_tanh(em_matmul(em_rms_norm(y, weights("rms/g", EM_SHAPE(C)), -1, 1e-6),
                                            weights("fc", EM_SHAPE(C, 2 * C))));
    em_tensor *out = em_add(y, em_slice(mlp, (const int64_t[]){0, 0, 0}, (const int64_t[]){-1, T, C}));
    em_tensor *gelu = em_gelu(out); /* onnxruntime has Erf for float32 only */
    em_graph *g = em_trace_end();
    ck_assert_ptr_nonnull(g);
    em_tensor *value = em_cast(em_test_uniform(EM_SHAPE(2, T, C), -2, 2, 5), EM_F32);
    export_case("gpt_block", g, 1, (em_feed[]){{x, value}}, (const char *[]){"tokens"}, 2, (em_tensor *[]){out, gelu},
                (const char *[]){"out", "gelu"}, 17);
    em_graph_release(g);
}

/* The other mapped ops, float64 and integer dtypes included (onnxruntime
 * implements many ops for float32 only). */
static void other_ops(void) {
    em_tensor *a = em_placeholder(EM_F32, EM_SHAPE(-1, 4), "a");
    em_tensor *n = em_placeholder(EM_I32, EM_SHAPE(-1, 4), "n");
    ck_assert_int_eq(em_trace_begin(), 0);
    em_tensor *pos = em_add_scalar(em_abs(a), 0.5), *mean, *var;
    ck_assert_int_eq(em_moments(a, EM_AXES(0), true, &mean, &var), 0);
    em_tensor *f[] = {
        em_sum(em_mul(em_sqrt(pos), em_rsqrt(pos)), EM_AXES(1), true),
        em_max(em_sub(em_exp(a), em_log(pos)), EM_AXES(0), false),
        em_log1p(em_square(em_div(a, pos))),
        em_where(em_greater(a, em_neg(a)), em_silu(a), em_tanh(a)),
        em_clip_by_value(em_leaky_relu(em_elu(a), 0.2), -0.5, 0.75),
        em_transpose(em_concat(2, (em_tensor *[]){em_tanh(a), em_sigmoid(a)}, 1), 2, (const int[]){1, 0}),
        em_log_softmax(em_pow(pos, em_sign(a)), -1),
        em_cast(em_logical_and(em_not_equal(n, em_fill_like(n, 1)), em_less_equal(n, em_fill_like(n, 3))), EM_F64),
        em_cast(em_maximum(em_minimum(n, em_fill_like(n, 2)), em_neg(n)), EM_F64),
        em_pad(em_tile(em_softplus(a), (const int64_t[]){1, 2}), (const int64_t[]){0, 0, 1, 2}, -1),
        em_log_sum_exp(em_reshape(a, EM_SHAPE(-1, 2, 2)), EM_AXES(2), false),
        em_gather(a, em_tensor_from(EM_I64, EM_SHAPE(3), (const int64_t[]){3, 0, 2}), 1),
        em_mean(a, EM_AXES(0), false),
        em_add(mean, em_mul_scalar(var, 2)),
        em_broadcast_to(em_reshape(em_min(a, EM_AXES(0), false), EM_SHAPE(4, 1)), EM_SHAPE(2, 4, 3)),
        em_softmax(em_matmul(em_exp(em_cast(a, EM_F64)), em_fill(EM_F64, EM_SHAPE(4, 2), 0.25)), 0),
    };
    enum { NF = sizeof f / sizeof f[0] };
    em_graph *g = em_trace_end();
    ck_assert_ptr_nonnull(g);
    const char *names[NF];
    char buf[NF][16];
    for (int i = 0; i < NF; i++) {
        ck_assert_msg(f[i] != NULL, "op %d: %s", i, em_last_error());
        snprintf(buf[i], sizeof buf[i], "f%d", i);
        names[i] = buf[i];
    }
    em_tensor *av = em_cast(em_test_uniform(EM_SHAPE(3, 4), -2, 2, 9), EM_F32);
    em_tensor *nv = em_cast(em_mul_scalar(em_test_uniform(EM_SHAPE(3, 4), -1, 5, 3), 1), EM_I32);
    export_case("other_ops", g, 2, (em_feed[]){{a, av}, {n, nv}}, (const char *[]){"a", "n"}, NF, f, names, 21);
    em_graph_release(g);
}

/* GPT-2's whole forward pass (examples/gpt2_model.h, tiny): token and
 * position embeddings, the blocks with fused attention, the final layer
 * norm and the output projection tied to the token embedding, its padded
 * columns sliced off; any batch of 8 tokens. */
static void gpt_forward(void) {
    static const em_llmc_config tiny = {.max_seq_len = 16, .vocab_size = 50, .padded_vocab_size = 64,
                                        .num_layers = 2, .num_heads = 4, .channels = 32};
    gpt2_model m;
    ck_assert_int_eq(gpt2_create(&m, &tiny, EM_F32), 0);
    em_tensor *idx = em_placeholder(EM_I64, EM_SHAPE(-1, 8), "tokens");
    ck_assert_int_eq(em_trace_begin(), 0);
    em_tensor *logits = gpt2_logits(&m, gpt2_hidden(&m, idx, 0, NULL));
    em_graph *g = em_trace_end();
    ck_assert_msg(g != NULL && logits != NULL, "%s", em_last_error());
    int64_t ids[3 * 8];
    for (int k = 0; k < 3 * 8; k++) ids[k] = (k * 7 + 3) % tiny.vocab_size;
    export_case("gpt_forward", g, 1, (em_feed[]){{idx, em_tensor_from(EM_I64, EM_SHAPE(3, 8), ids)}},
                (const char *[]){"tokens"}, 1, &logits, (const char *[]){"logits"}, 17);
    em_graph_release(g);
    gpt2_free(&m);
}

/* float16 and bfloat16: a float16 input, a bfloat16 variable and a float16 constant (initializers of data types
 * 16 and 10, in raw_data), and casts between them and float32. onnxruntime's CPU kernels take float16 arithmetic
 * but not bfloat16's, so bfloat16 values reach arithmetic through casts; all values are exact in both types. */
static void narrow(void) {
    em_tensor *h = em_placeholder(EM_F16, EM_SHAPE(-1, 4), "h");
    em_tensor *b = em_get_variable("narrow/b", EM_BF16, EM_SHAPE(4), /* 1.5 -2 0.25 3 */
                                   EM_INIT_FROM(em_tensor_from(EM_BF16, EM_SHAPE(4),
                                                               (const uint16_t[]){0x3FC0, 0xC000, 0x3E80, 0x4040})));
    ck_assert_int_eq(em_trace_begin(), 0);
    em_tensor *c = em_tensor_from(EM_F16, EM_SHAPE(4), (const uint16_t[]){0x3800, 0x3C00, 0xC200, 0x0400}); /* .5 1 -3 2^-14 */
    em_tensor *f[] = {
        em_add(em_mul(h, em_cast(b, EM_F16)), c),
        em_mul(em_cast(h, EM_F32), em_cast(b, EM_F32)),
        em_cast(em_cast(em_mul_scalar(h, 0.5), EM_BF16), EM_F32),
    };
    em_graph *g = em_trace_end();
    ck_assert_ptr_nonnull(g);
    em_tensor *hv = em_cast(em_round(em_test_uniform(EM_SHAPE(3, 4), -50, 50, 4)), EM_F16);
    export_case("narrow", g, 1, (em_feed[]){{h, hv}}, (const char *[]){"h"}, 3, f,
                (const char *[]){"f16", "f32", "via_bf16"}, 17);
    em_graph_release(g);
}

/* int8, int16 and uint16 (data types 3, 5 and 4): uint16 token ids gather rows of an int8 variable (quantized
 * weights; ONNX's Gather takes int64 indices, so the ids are cast first), an int16 input, casts to float32. */
static void integers(void) {
    em_tensor *ids = em_placeholder(EM_U16, EM_SHAPE(-1), "ids");
    em_tensor *s = em_placeholder(EM_I16, EM_SHAPE(-1, 2), "s");
    em_tensor *q = em_get_variable("int/q", EM_I8, EM_SHAPE(4, 2),
                                   EM_INIT_FROM(em_tensor_from(EM_I8, EM_SHAPE(4, 2),
                                                               (const int8_t[]){-128, -1, 0, 1, 64, 127, 5, -5})));
    ck_assert_int_eq(em_trace_begin(), 0);
    em_tensor *f[] = {
        em_mul(em_cast(em_gather(q, ids, 0), EM_F32), em_cast(s, EM_F32)),
        em_gather(s, em_tensor_from(EM_U16, EM_SHAPE(2), (const uint16_t[]){1, 0}), 1),
        em_cast(ids, EM_F32),
    };
    em_graph *g = em_trace_end();
    ck_assert_ptr_nonnull(g);
    em_tensor *idv = em_tensor_from(EM_U16, EM_SHAPE(3), (const uint16_t[]){3, 0, 2});
    em_tensor *sv = em_tensor_from(EM_I16, EM_SHAPE(3, 2), (const int16_t[]){-32768, 1, 300, -2, 7, 32767});
    export_case("integers", g, 2, (em_feed[]){{ids, idv}, {s, sv}}, (const char *[]){"ids", "s"}, 3, f,
                (const char *[]){"f32", "i16", "ids_f32"}, 17);
    em_graph_release(g);
}

START_TEST(test_onnxruntime_gives_embers_results) {
    mnist_mlp();
    mnist_cnn();
    gpt_block();
    other_ops();
    narrow();
    gpt_forward();
    integers();
    const char *out = check_cases(7, (const char *[]){"mlp", "cnn", "gpt_block", "other_ops", "narrow", "gpt_forward",
                                                      "integers"});
    /* the batch stays symbolic */
    ck_assert_msg(!out || (strstr(out, "input x batch,784\n") && strstr(out, "input tokens batch,8\n")), "%s", out);
    /* the constants: float16 and bfloat16 initializers of 4 elements */
    ck_assert_msg(!out || (strstr(out, " 16 raw_data 8\n") && strstr(out, " 10 raw_data 8\n")), "%s", out);
}
END_TEST

START_TEST(test_errors_name_the_op_and_write_nothing) {
    em_tensor *x = em_placeholder(EM_F32, EM_SHAPE(-1, 4), "x");
    ck_assert_int_eq(em_trace_begin(), 0);
    em_tensor *dropped = em_dropout(x, 0.5);
    em_tensor *y = em_relu(x);
    em_graph *g = em_trace_end();
    char path[320];
    snprintf(path, sizeof path, "%s/bad.onnx", tmp);
    ck_assert_error(em_graph_export_onnx(g, path, 1, &dropped, (const char *[]){"y"}, 17) ? NULL : "",
                    "op random_uniform");
    ck_assert_msg(access(path, F_OK) != 0, "a file was written");
    ck_assert_error(em_graph_export_onnx(g, path, 1, &y, (const char *[]){"y"}, 16) ? NULL : "", "opset 16");
    em_tensor *other = em_scalar(EM_F32, 1);
    ck_assert_error(em_graph_export_onnx(g, path, 1, &other, (const char *[]){"y"}, 17) ? NULL : "",
                    "fetch 0 (\"y\") is not a tensor of this graph");
    ck_assert_error(em_graph_export_onnx(g, path, 2, (em_tensor *[]){y, y}, (const char *[]){"y", "y"}, 17) ? NULL : "",
                    "two fetches are named \"y\"");
    em_graph_release(g);
}
END_TEST

int main(void) {
    Suite *s = suite_create("onnx");
    TCase *tc = tcase_create("onnx");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_onnxruntime_gives_embers_results);
    tcase_add_test(tc, test_errors_name_the_op_and_write_nothing);
    suite_add_tcase(s, tc);
    return em_test_run(s);
}
