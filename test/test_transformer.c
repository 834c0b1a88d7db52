/* A whole pre-norm transformer block (GPT-2's layout: layer norm, causal
 * self-attention, residual, layer norm, GELU-tanh MLP, residual) built from
 * the fused transformer ops, checked in float64 against central differences:
 * 5 sampled elements of every parameter and one random direction per
 * parameter. The ops' own checks are in test/cases_norm.c,
 * test/cases_attention.c and test/cases_elementwise.c; this one catches what
 * only their composition shows (views between them, broadcast gradients,
 * the tape summing a residual's two paths). */
#include "common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { B = 2, T = 8, C = 16, H = 2, D = C / H };

enum { LN1_G, LN1_B, W_QKV, B_QKV, W_PROJ, B_PROJ, LN2_G, LN2_B, W_FC, B_FC, W_OUT, B_OUT, NPARAM };
static const char *const param_names[NPARAM] = {"ln1.gamma", "ln1.beta", "attn.w_qkv", "attn.b_qkv",
                                                 "attn.w_proj", "attn.b_proj", "ln2.gamma", "ln2.beta",
                                                 "mlp.w_fc", "mlp.b_fc", "mlp.w_out", "mlp.b_out"};

static em_shape param_shape(int p) {
    switch (p) {
    case W_QKV: return EM_SHAPE(C, 3 * C);
    case B_QKV: return EM_SHAPE(3 * C);
    case W_PROJ: return EM_SHAPE(C, C);
    case W_FC: return EM_SHAPE(C, 4 * C);
    case B_FC: return EM_SHAPE(4 * C);
    case W_OUT: return EM_SHAPE(4 * C, C);
    default: return EM_SHAPE(C);
    }
}

/* [B, T, C] -> [B, H, T, D] */
static em_tensor *heads(em_tensor *x) {
    return em_transpose(em_reshape(x, EM_SHAPE(B, T, H, D)), EM_AXES(0, 2, 1, 3));
}

static em_tensor *block(em_tensor *x, em_tensor *const *p) {
    em_tensor *h = em_layer_norm(x, p[LN1_G], p[LN1_B], -1, 1e-5);
    em_tensor *qkv = em_bias_add(em_matmul(h, p[W_QKV]), p[B_QKV]);
    em_tensor *parts[3];
    if (em_split(qkv, 3, -1, parts) != 0) return NULL;
    em_tensor *att = em_scaled_dot_product_attention(heads(parts[0]), heads(parts[1]), heads(parts[2]), true, 0, NULL);
    em_tensor *merged = em_reshape(em_transpose(att, EM_AXES(0, 2, 1, 3)), EM_SHAPE(B, T, C));
    em_tensor *x1 = em_add(x, em_bias_add(em_matmul(merged, p[W_PROJ]), p[B_PROJ]));
    em_tensor *h2 = em_layer_norm(x1, p[LN2_G], p[LN2_B], -1, 1e-5);
    em_tensor *m = em_gelu_tanh(em_bias_add(em_matmul(h2, p[W_FC]), p[B_FC]));
    return em_add(x1, em_bias_add(em_matmul(m, p[W_OUT]), p[B_OUT]));
}

/* sum(block(x) * w) */
static double loss_value(em_tensor *x, em_tensor *const *p, em_tensor *w) {
    em_scope_begin();
    em_tensor *y = block(x, p);
    ck_assert_msg(y != NULL, "block: %s", em_last_error());
    double v = em_item(em_sum(em_mul(y, w), EM_ALL_AXES, false));
    em_scope_end();
    return v;
}

START_TEST(test_block_gradients_match_central_differences) {
    const double eps = 1e-6;
    em_tensor *x = em_test_uniform(EM_SHAPE(B, T, C), -1, 1, 11);
    em_tensor *w = em_test_uniform(EM_SHAPE(B, T, C), 0.5, 1.5, 12);
    em_tensor *p[NPARAM];
    for (int i = 0; i < NPARAM; i++) {
        bool gain = i == LN1_G || i == LN2_G;
        p[i] = em_test_uniform(param_shape(i), gain ? 0.5 : -0.5, gain ? 1.5 : 0.5, 100u + (unsigned)i);
    }
    em_tape *tape = em_tape_begin(false);
    em_tensor *loss = em_sum(em_mul(block(x, p), w), EM_ALL_AXES, false);
    ck_assert_msg(loss != NULL, "block: %s", em_last_error());
    em_tensor *g[NPARAM + 1];
    em_tensor *wrt[NPARAM + 1];
    for (int i = 0; i < NPARAM; i++) wrt[i] = p[i];
    wrt[NPARAM] = x;
    ck_assert_msg(em_gradients(tape, loss, NPARAM + 1, wrt, g) == 0, "gradients: %s", em_last_error());
    em_tape_release(tape);

    uint64_t state = 2024;
    for (int i = 0; i <= NPARAM; i++) {
        const char *name = i < NPARAM ? param_names[i] : "x";
        double *v = (double *)em_data(wrt[i]);
        const double *gv = em_data(g[i]);
        int64_t n = em_numel(wrt[i]);
        /* 5 sampled elements */
        for (int s = 0; s < 5; s++) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            int64_t j = (int64_t)((state >> 33) % (uint64_t)n);
            double keep = v[j];
            v[j] = keep + eps;
            double up = loss_value(x, p, w);
            v[j] = keep - eps;
            double down = loss_value(x, p, w);
            v[j] = keep;
            double num = (up - down) / (2 * eps);
            ck_assert_msg(fabs(gv[j] - num) <= 1e-6 * fmax(1, fabs(num)),
                          "%s[%lld]: analytic %.12g, central difference %.12g", name, (long long)j, gv[j], num);
        }
        /* one random direction u: the directional derivative g.u */
        em_tensor *u = em_test_uniform(em_tensor_shape(wrt[i]), -1, 1, 500u + (unsigned)i);
        const double *uv = em_data(u);
        double analytic = 0;
        for (int64_t j = 0; j < n; j++) analytic += gv[j] * uv[j];
        double *keep = malloc(sizeof(double) * (size_t)n);
        for (int64_t j = 0; j < n; j++) keep[j] = v[j];
        for (int64_t j = 0; j < n; j++) v[j] = keep[j] + eps * uv[j];
        double up = loss_value(x, p, w);
        for (int64_t j = 0; j < n; j++) v[j] = keep[j] - eps * uv[j];
        double down = loss_value(x, p, w);
        for (int64_t j = 0; j < n; j++) v[j] = keep[j];
        free(keep);
        double num = (up - down) / (2 * eps);
        ck_assert_msg(fabs(analytic - num) <= 1e-6 * fmax(1, fabs(num)),
                      "%s along a random direction: analytic %.12g, central difference %.12g", name, analytic, num);
    }
}
END_TEST

static void teardown(void) { em_shutdown(); }

int main(void) {
    Suite *s = suite_create("transformer");
    TCase *tc = tcase_create("block");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_block_gradients_match_central_differences);
    suite_add_tcase(s, tc);
    return em_test_run(s);
}
