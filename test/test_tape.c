/* The gradient tape: tf.gradients semantics, persistence, nesting (higher
 * order), stop_gradient, errors for what has no gradient, and memory. */
#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void teardown(void) { em_shutdown(); }

static em_tensor *vec(int n, const double *v) { return em_tensor_from(EM_F64, EM_SHAPE(n), v); }

START_TEST(test_polynomial_gradient) {
    em_tensor *x = vec(3, (double[]){-1, 0.5, 2});
    em_tape *tape = em_tape_begin(false);
    /* y = x*x + 3x -> dy/dx = 2x + 3 */
    em_tensor *y = em_add(em_mul(x, x), em_mul_scalar(x, 3));
    em_tensor *g;
    ck_assert_int_eq(em_gradients(tape, y, 1, &x, &g), 0);
    em_tape_release(tape);
    ck_assert_tensor(g, EM_F64, EM_SHAPE(3), ((double[]){1, 4, 7}), 1e-12);
}
END_TEST

START_TEST(test_unconnected_gets_zeros_and_grad_y_scales) {
    em_tensor *x = vec(2, (double[]){1, 2});
    em_tensor *u = em_fill(EM_F32, EM_SHAPE(2, 2), 5);
    em_tape *tape = em_tape_begin(false);
    em_tensor *y = em_exp(x);
    em_tensor *g[2];
    ck_assert_int_eq(em_gradients_with(tape, y, vec(2, (double[]){2, -1}), 2, (em_tensor *[]){x, u}, g), 0);
    em_tape_release(tape);
    ck_assert_tensor(g[0], EM_F64, EM_SHAPE(2), ((double[]){2 * exp(1.0), -exp(2.0)}), 1e-12);
    ck_assert_tensor(g[1], EM_F32, EM_SHAPE(2, 2), ((double[]){0, 0, 0, 0}), 0);
}
END_TEST

START_TEST(test_stop_gradient_cuts) {
    em_tensor *x = vec(2, (double[]){3, 4});
    em_tape *tape = em_tape_begin(false);
    /* y = x * stop(x): only the first factor carries a gradient. */
    em_tensor *y = em_mul(x, em_stop_gradient(x));
    em_tensor *g;
    ck_assert_int_eq(em_gradients(tape, y, 1, &x, &g), 0);
    em_tape_release(tape);
    ck_assert_tensor(g, EM_F64, EM_SHAPE(2), ((double[]){3, 4}), 0);
}
END_TEST

START_TEST(test_persistent_and_used_tapes) {
    em_tensor *x = vec(1, (double[]){2});
    em_tape *tape = em_tape_begin(true);
    em_tensor *y = em_square(x), *z = em_mul(y, x);
    em_tensor *gy, *gz;
    ck_assert_int_eq(em_gradients(tape, y, 1, &x, &gy), 0);
    ck_assert_int_eq(em_gradients(tape, z, 1, &x, &gz), 0);
    em_tape_release(tape);
    ck_assert_double_eq_tol(em_item(gy), 4, 1e-12);
    ck_assert_double_eq_tol(em_item(gz), 12, 1e-12);

    tape = em_tape_begin(false);
    y = em_square(x);
    ck_assert_int_eq(em_gradients(tape, y, 1, &x, &gy), 0);
    ck_assert_int_eq(em_gradients(tape, y, 1, &x, &gy), -1);
    ck_assert_ptr_nonnull(strstr(em_last_error(), "not persistent"));
    em_clear_error();
    em_tape_release(tape);
}
END_TEST

START_TEST(test_second_derivative_of_cube) {
    em_tensor *x = vec(3, (double[]){-2, 0.5, 3});
    em_tape *outer = em_tape_begin(false);
    em_tape *inner = em_tape_begin(false);
    em_tensor *y = em_mul(em_mul(x, x), x);
    em_tensor *dy, *d2y;
    ck_assert_int_eq(em_gradients(inner, y, 1, &x, &dy), 0);
    em_tape_release(inner);
    ck_assert_tensor(dy, EM_F64, EM_SHAPE(3), ((double[]){12, 0.75, 27}), 1e-12);
    ck_assert_int_eq(em_gradients(outer, dy, 1, &x, &d2y), 0);
    em_tape_release(outer);
    ck_assert_tensor(d2y, EM_F64, EM_SHAPE(3), ((double[]){-12, 3, 18}), 1e-12);
}
END_TEST

START_TEST(test_hessian_vector_product) {
    /* f(x) = sum(x^3) + (sum x)^2, H = diag(6x) + 2 * ones, so Hv = 6 x v + 2 sum(v). */
    double xv[3] = {1, -0.5, 2}, vv[3] = {0.3, 1, -2};
    em_tensor *x = vec(3, xv), *v = vec(3, vv);
    em_tape *outer = em_tape_begin(false);
    em_tape *inner = em_tape_begin(false);
    em_tensor *f = em_add(em_sum(em_mul(em_square(x), x), EM_ALL_AXES, false),
                          em_square(em_sum(x, EM_ALL_AXES, false)));
    em_tensor *g, *hv;
    ck_assert_int_eq(em_gradients(inner, f, 1, &x, &g), 0);
    em_tape_release(inner);
    ck_assert_int_eq(em_gradients(outer, em_sum(em_mul(g, v), EM_ALL_AXES, false), 1, &x, &hv), 0);
    em_tape_release(outer);
    double sv = vv[0] + vv[1] + vv[2], expect[3];
    for (int i = 0; i < 3; i++) expect[i] = 6 * xv[i] * vv[i] + 2 * sv;
    ck_assert_tensor(hv, EM_F64, EM_SHAPE(3), expect, 1e-12);
}
END_TEST

START_TEST(test_no_gradient_through_ints_or_argmax) {
    em_tensor *x = vec(3, (double[]){1, 5, 2});
    em_tensor *g;
    em_tape *tape = em_tape_begin(true);
    em_tensor *idx = em_argmax(x, 0);
    ck_assert_int_eq(em_gradients(tape, idx, 1, &x, &g), -1);
    ck_assert_ptr_nonnull(strstr(em_last_error(), "int64"));
    em_clear_error();
    em_tensor *through = em_cast(em_argmax(x, 0), EM_F64);
    ck_assert_int_eq(em_gradients(tape, through, 1, &x, &g), -1);
    ck_assert_ptr_nonnull(strstr(em_last_error(), "argmax"));
    em_clear_error();
    em_tensor *ix = em_tensor_from(EM_I32, EM_SHAPE(1), (int32_t[]){1});
    ck_assert_int_eq(em_gradients(tape, em_exp(x), 1, &ix, &g), -1);
    ck_assert_ptr_nonnull(strstr(em_last_error(), "xs[0] has dtype int32"));
    em_clear_error();
    /* An unrelated integer computation on the same tape does not get in the way. */
    em_tensor *y = em_sum(em_exp(x), EM_ALL_AXES, false);
    ck_assert_int_eq(em_gradients(tape, y, 1, &x, &g), 0);
    ck_assert_tensor(g, EM_F64, EM_SHAPE(3), ((double[]){exp(1.0), exp(5.0), exp(2.0)}), 1e-12);
    em_tape_release(tape);
}
END_TEST

START_TEST(test_long_tapes) {
    /* thousands of records: the tape grows many times while recording */
    em_tensor *x = vec(2, (double[]){0.5, -1});
    em_tape *tape = em_tape_begin(false);
    em_tensor *y = x;
    for (int i = 0; i < 3000; i++) y = em_add(y, em_mul_scalar(x, 0.001));
    em_tensor *g;
    ck_assert_int_eq(em_gradients(tape, y, 1, &x, &g), 0);
    em_tape_release(tape);
    ck_assert_tensor(g, EM_F64, EM_SHAPE(2), ((double[]){4, 4}), 1e-12);
}
END_TEST

/* Weight tying: W [V, C] is the embedding (gather) and the output projection (matmul with W transposed);
 * loss = sum(R * (W[ids] W^T)). Its gradient, by loops: the projection's sum_t R[t,v] h[t,c], plus the
 * embedding's rows (R W)[t] added at ids[t] (repeated ids add up). */
enum { TV = 5, TC = 3, TT = 4 };
static const int64_t TIED_IDS[TT] = {2, 0, 2, 4};
static void tied_reference(const double *w, const double *r, double *dw) {
    double h[TT][TC], dh[TT][TC];
    for (int t = 0; t < TT; t++)
        for (int c = 0; c < TC; c++) {
            h[t][c] = w[TIED_IDS[t] * TC + c];
            dh[t][c] = 0;
            for (int v = 0; v < TV; v++) dh[t][c] += r[t * TV + v] * w[v * TC + c];
        }
    for (int v = 0; v < TV; v++)
        for (int c = 0; c < TC; c++) {
            dw[v * TC + c] = 0;
            for (int t = 0; t < TT; t++) dw[v * TC + c] += r[t * TV + v] * h[t][c];
        }
    for (int t = 0; t < TT; t++)
        for (int c = 0; c < TC; c++) dw[TIED_IDS[t] * TC + c] += dh[t][c];
}

START_TEST(test_tied_embedding_gradient) {
    double w[TV * TC], r[TT * TV], expect[TV * TC];
    for (int i = 0; i < TV * TC; i++) w[i] = sin(0.7 * i + 0.3);
    for (int i = 0; i < TT * TV; i++) r[i] = cos(1.3 * i);
    tied_reference(w, r, expect);
    em_tensor *W = em_tensor_from(EM_F64, EM_SHAPE(TV, TC), w), *R = em_tensor_from(EM_F64, EM_SHAPE(TT, TV), r);
    em_tensor *ids = em_tensor_from(EM_I64, EM_SHAPE(TT), TIED_IDS);
    em_tape *tape = em_tape_begin(false);
    em_tensor *logits = em_matmul_t(em_gather(W, ids, 0), W, false, true);
    em_tensor *loss = em_sum(em_mul(R, logits), EM_ALL_AXES, false), *g;
    ck_assert_int_eq(em_gradients(tape, loss, 1, &W, &g), 0);
    em_tape_release(tape);
    ck_assert_tensor(g, EM_F64, EM_SHAPE(TV, TC), expect, 1e-12);

    /* W's first gradient is another tensor's too (add passes its incoming gradient on): the gather's
     * gradient must not be added into that one, which the caller asked for as well. */
    tape = em_tape_begin(false);
    em_tensor *e = em_gather(W, ids, 0), *s = em_add(W, em_ones(EM_F64, EM_SHAPE(TV, TC)));
    loss = em_add(em_sum(em_mul(e, em_ones(EM_F64, EM_SHAPE(TT, TC))), EM_ALL_AXES, false),
                  em_sum(em_mul_scalar(s, 2), EM_ALL_AXES, false));
    em_tensor *gs[2];
    ck_assert_int_eq(em_gradients(tape, loss, 2, (em_tensor *[]){W, s}, gs), 0);
    em_tape_release(tape);
    double two[TV * TC], rows[TV * TC];
    for (int i = 0; i < TV * TC; i++) two[i] = 2, rows[i] = 2 + (i / TC == 0 || i / TC == 4 ? 1 : i / TC == 2 ? 2 : 0);
    ck_assert_tensor(gs[1], EM_F64, EM_SHAPE(TV, TC), two, 0);
    ck_assert_tensor(gs[0], EM_F64, EM_SHAPE(TV, TC), rows, 0);

    /* Through an outer tape (second order) the sum stays a recorded op: d/dW of sum(g * g). */
    em_tape *outer = em_tape_begin(false);
    tape = em_tape_begin(false);
    logits = em_matmul_t(em_gather(W, ids, 0), W, false, true);
    loss = em_sum(em_mul(R, logits), EM_ALL_AXES, false);
    ck_assert_int_eq(em_gradients(tape, loss, 1, &W, &g), 0);
    ck_assert_tensor(g, EM_F64, EM_SHAPE(TV, TC), expect, 1e-12);
    em_tensor *gg;
    ck_assert_int_eq(em_gradients(outer, em_sum(em_square(g), EM_ALL_AXES, false), 1, &W, &gg), 0);
    /* against central differences of sum(g(W)^2) */
    for (int i = 0; i < TV * TC; i += 4) {
        double wp[TV * TC], wm[TV * TC], gp[TV * TC], gm[TV * TC], fp = 0, fm = 0;
        memcpy(wp, w, sizeof w);
        memcpy(wm, w, sizeof w);
        wp[i] += 1e-6;
        wm[i] -= 1e-6;
        tied_reference(wp, r, gp);
        tied_reference(wm, r, gm);
        for (int k = 0; k < TV * TC; k++) fp += gp[k] * gp[k], fm += gm[k] * gm[k];
        ck_assert_double_eq_tol(em_get(gg, (int64_t[]){i / TC, i % TC}), (fp - fm) / 2e-6, 1e-6);
    }
    em_tape_release(tape);
    em_tape_release(outer);
}
END_TEST

/* The backward pass of a tied [V, C] = [8192, 1024] float32 embedding holds one [V, C] buffer for W's gradient
 * (32 MiB), not three (the projection's, the gather's and their sum): the process's peak resident memory
 * (VmHWM, reset before) grows by less than 1.5 of them. Skipped where /proc/self/clear_refs is not writable. */
static long status_kib(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, field, strlen(field))) v = strtol(line + strlen(field), NULL, 10);
    if (f) fclose(f);
    return v;
}

START_TEST(test_tied_embedding_backward_memory) {
    const int64_t V = 8192, C = 1024, T = 16;
    em_tensor *W = em_random_normal(EM_F32, EM_SHAPE(V, C), 0, 0.02);
    em_tensor *ids = em_cast(em_mul_scalar(em_random_uniform(EM_F64, EM_SHAPE(T), 0, 1), V - 1), EM_I64);
    em_tape *tape = em_tape_begin(false);
    em_tensor *logits = em_matmul_t(em_gather(W, ids, 0), W, false, true);
    em_tensor *loss = em_sum(em_square(logits), EM_ALL_AXES, false), *g;
    FILE *f = fopen("/proc/self/clear_refs", "w");
    bool can_reset = f && fputs("5", f) >= 0;
    if (f) can_reset = fclose(f) == 0 && can_reset;
    long before = status_kib("VmRSS:");
    ck_assert_int_eq(em_gradients(tape, loss, 1, &W, &g), 0);
    long peak = status_kib("VmHWM:");
    em_tape_release(tape);
    if (!can_reset || before < 0 || peak < 0) return;
    double buffers = (double)(peak - before) * 1024 / ((double)V * (double)C * 4);
    ck_assert_msg(buffers < 1.5, "the backward pass grew by %.2f [V, C] buffers", buffers);
}
END_TEST

START_TEST(test_tapes_free_everything) {
    em_tensor *x = em_keep(vec(2, (double[]){1, 2}));
    int64_t start = em_live_tensors();
    for (int i = 0; i < 1000; i++) {
        em_scope_begin();
        em_tape *tape = em_tape_begin(false);
        em_tensor *y = em_sum(em_tanh(em_mul(x, x)), EM_ALL_AXES, false), *g;
        ck_assert_int_eq(em_gradients(tape, y, 1, &x, &g), 0);
        em_tape_release(tape);
        em_scope_end();
    }
    ck_assert_int_eq(em_live_tensors(), start);
    em_release(x);
}
END_TEST

int main(void) {
    Suite *s = suite_create("tape");
    TCase *tc = tcase_create("tape");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_polynomial_gradient);
    tcase_add_test(tc, test_unconnected_gets_zeros_and_grad_y_scales);
    tcase_add_test(tc, test_stop_gradient_cuts);
    tcase_add_test(tc, test_persistent_and_used_tapes);
    tcase_add_test(tc, test_second_derivative_of_cube);
    tcase_add_test(tc, test_hessian_vector_product);
    tcase_add_test(tc, test_no_gradient_through_ints_or_argmax);
    tcase_add_test(tc, test_long_tapes);
    tcase_add_test(tc, test_tapes_free_everything);
    tcase_add_test(tc, test_tied_embedding_gradient);
    tcase_add_test(tc, test_tied_embedding_backward_memory);
    suite_add_tcase(s, tc);
    return em_test_run(s);
}
