/* Fused attention beyond the small table cases (test/cases_attention.c):
 * sizes that span several blocks of query rows and keys, against the float64
 * reference loops; results independent of the thread count; the errors; and
 * the memory it needs at T = 1024, from the allocator's own counter. */
#include "common.h"

#include <stdlib.h>
#include <string.h>

/* test/cases_attention.c */
void attention_reference(int64_t B, int64_t H, int64_t tq, int64_t tk, int64_t d, const double *q, const double *k,
                         const double *v, const double *mask, const int64_t *mask4, bool causal, double scale,
                         const double *dout, double *o, double *dq, double *dk, double *dv);

static void teardown(void) { em_shutdown(); }

/* The float64 values of t (NEW in the scope; valid while it lasts). */
static const double *values(em_tensor *t) { return em_data(em_cast(t, EM_F64)); }

static void assert_close(em_tensor *got, const double *want, double tol, const char *what) {
    const double *g = values(got);
    ck_assert_ptr_nonnull(g);
    double worst = 0;
    for (int64_t i = 0; i < em_numel(got); i++) {
        double d = fabs(g[i] - want[i]) / fmax(1, fabs(want[i]));
        worst = d > worst ? d : worst;
    }
    ck_assert_msg(worst <= tol, "%s: off by %g (tolerance %g)", what, worst, tol);
}

typedef struct {
    int64_t B, H, tq, tk, d;
    bool causal, mask;
} attn_shape;

/* Forward and gradients (for a random incoming gradient) of one shape and
 * dtype against the reference; the mask is [Tq, Tk] with some -inf. */
static void check_against_reference(attn_shape s, em_dtype dt) {
    em_scope_begin();
    em_shape qs = EM_SHAPE(s.B, s.H, s.tq, s.d), ks = EM_SHAPE(s.B, s.H, s.tk, s.d);
    em_tensor *q = em_cast(em_test_uniform(qs, -1, 1, 1), dt), *k = em_cast(em_test_uniform(ks, -1, 1, 2), dt);
    em_tensor *v = em_cast(em_test_uniform(ks, -1, 1, 3), dt), *g = em_cast(em_test_uniform(qs, -1, 1, 4), dt);
    em_tensor *mask = NULL;
    if (s.mask) {
        em_tensor *u = em_test_uniform(EM_SHAPE(s.tq, s.tk), -1, 1, 5);
        /* about one key in five hidden */
        mask = em_cast(em_where(em_less(u, em_scalar(EM_F64, -0.6)), em_scalar(EM_F64, -INFINITY), u), dt);
    }
    em_tensor *in[3] = {q, k, v}, *grads[3];
    em_tape *tape = em_tape_begin(false);
    em_tensor *o = em_scaled_dot_product_attention(q, k, v, s.causal, 0, mask);
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(em_gradients_with(tape, o, g, 3, in, grads), 0);
    em_tape_release(tape);

    int64_t nq = em_numel(q), nk = em_numel(k), mask4[4] = {1, 1, s.tq, s.tk};
    double *want = malloc(sizeof(double) * (size_t)(2 * nq + 2 * nk));
    ck_assert_ptr_nonnull(want);
    attention_reference(s.B, s.H, s.tq, s.tk, s.d, values(q), values(k), values(v), mask ? values(mask) : NULL, mask4,
                        s.causal, 1 / sqrt((double)s.d), values(g), want, want + nq, want + 2 * nq, want + 2 * nq + nk);
    double tol = dt == EM_F32 ? 2e-5 : 1e-11;
    assert_close(o, want, tol, "output");
    assert_close(grads[0], want + nq, tol, "dq");
    assert_close(grads[1], want + 2 * nq, tol, "dk");
    assert_close(grads[2], want + 2 * nq + nk, tol, "dv");
    free(want);
    em_scope_end();
}

/* Query rows past one block (48) and one forward task (144), keys past one
 * block (96), rows of 16 and 32 (the vector kernels) and of 20 (the loops),
 * Tq < Tk and Tq = Tk. */
START_TEST(test_matches_the_reference_across_blocks) {
    const attn_shape shapes[] = {
        {1, 2, 70, 100, 32, true, false},  {1, 2, 70, 100, 32, false, true}, {2, 1, 97, 97, 16, true, true},
        {1, 2, 50, 120, 20, true, false},  {1, 1, 1, 60, 32, true, false}, /* decoding one token */
        {1, 1, 150, 200, 16, true, true},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        check_against_reference(shapes[i], EM_F32);
        check_against_reference(shapes[i], EM_F64);
    }
}
END_TEST

/* Each task computes in a fixed order: 1 and 2 threads give the same bits. */
START_TEST(test_thread_count_does_not_change_results) {
    em_scope_begin();
    em_tensor *q = em_cast(em_test_uniform(EM_SHAPE(1, 3, 100, 32), -1, 1, 1), EM_F32);
    em_tensor *k = em_cast(em_test_uniform(EM_SHAPE(1, 3, 100, 32), -1, 1, 2), EM_F32);
    em_tensor *v = em_cast(em_test_uniform(EM_SHAPE(1, 3, 100, 32), -1, 1, 3), EM_F32);
    em_tensor *out[2][4], *in[3] = {q, k, v};
    for (int t = 0; t < 2; t++) {
        em_set_num_threads(t + 1);
        em_tape *tape = em_tape_begin(false);
        out[t][0] = em_scaled_dot_product_attention(q, k, v, true, 0, NULL);
        ck_assert_int_eq(em_gradients(tape, out[t][0], 3, in, out[t] + 1), 0);
        em_tape_release(tape);
    }
    em_set_num_threads(0);
    for (int i = 0; i < 4; i++) ck_assert_double_eq(em_test_max_rel_diff(out[0][i], out[1][i]), 0);
    em_scope_end();
}
END_TEST

START_TEST(test_errors_name_the_argument_and_shapes) {
    em_scope_begin();
    em_tensor *q = em_zeros(EM_F32, EM_SHAPE(2, 3, 4, 8)), *k = em_zeros(EM_F32, EM_SHAPE(2, 3, 6, 8));
    em_tensor *v = em_zeros(EM_F32, EM_SHAPE(2, 3, 6, 8));
    ck_assert_error(em_scaled_dot_product_attention(em_zeros(EM_F32, EM_SHAPE(3, 4, 8)), k, v, false, 0, NULL),
                    "attention: q [3,4,8] must be 4-D [B, H, Tq, D]");
    ck_assert_error(em_scaled_dot_product_attention(q, em_zeros(EM_F32, EM_SHAPE(2, 3, 6, 7)), v, false, 0, NULL),
                    "attention: k [2,3,6,7] must match q [2,3,4,8] in B, H and D");
    ck_assert_error(em_scaled_dot_product_attention(q, em_zeros(EM_F32, EM_SHAPE(2, 2, 6, 8)), v, false, 0, NULL),
                    "in B, H and D");
    ck_assert_error(em_scaled_dot_product_attention(q, k, em_zeros(EM_F32, EM_SHAPE(2, 3, 5, 8)), false, 0, NULL),
                    "attention: v [2,3,5,8] must have k's shape [2,3,6,8]");
    ck_assert_error(em_scaled_dot_product_attention(q, em_zeros(EM_F64, EM_SHAPE(2, 3, 6, 8)), v, false, 0, NULL),
                    "attention: k has dtype float64 but q has float32");
    ck_assert_error(em_scaled_dot_product_attention(em_zeros(EM_I32, EM_SHAPE(2, 3, 4, 8)), k, v, false, 0, NULL),
                    "attention: q has dtype int32; float32 or float64 is required");
    ck_assert_error(em_scaled_dot_product_attention(q, k, v, false, 0, em_zeros(EM_F32, EM_SHAPE(4, 5))),
                    "attention: mask [4,5] does not broadcast to [B, H, Tq, Tk] = [2,3,4,6]");
    ck_assert_error(em_scaled_dot_product_attention(q, k, v, false, 0, em_zeros(EM_F32, EM_SHAPE(1, 2, 3, 4, 6))),
                    "does not broadcast");
    ck_assert_error(em_scaled_dot_product_attention(q, k, v, false, 0, em_zeros(EM_BOOL, EM_SHAPE(4, 6))),
                    "attention: mask has dtype bool but q has float32");
    ck_assert_error(em_scaled_dot_product_attention(q, k, v, false, -0.5, NULL),
                    "attention: scale is -0.5; it must be finite and >= 0 (0 means 1/sqrt(D))");
    ck_assert_error(em_scaled_dot_product_attention(q, k, v, false, NAN, NULL), "attention: scale is nan");
    ck_assert_error(em_scaled_dot_product_attention(NULL, k, v, false, 0, NULL), "attention");
    /* the mask gets no gradient */
    em_tensor *mask = em_zeros(EM_F32, EM_SHAPE(4, 6)), *gm = NULL;
    em_tape *tape = em_tape_begin(false);
    em_tensor *o = em_scaled_dot_product_attention(q, k, v, true, 0, mask);
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(em_gradients(tape, o, 1, &mask, &gm), -1);
    ck_assert_error(NULL, "attention: the mask has no gradient here");
    em_tape_release(tape);
    em_scope_end();
}
END_TEST

/* A row that sees no key (its mask all -inf) gives 0 and passes no gradient. */
START_TEST(test_a_row_that_sees_nothing_gives_zero) {
    em_scope_begin();
    em_tensor *q = em_test_uniform(EM_SHAPE(1, 1, 2, 4), -1, 1, 1), *k = em_test_uniform(EM_SHAPE(1, 1, 3, 4), -1, 1, 2);
    em_tensor *v = em_test_uniform(EM_SHAPE(1, 1, 3, 4), -1, 1, 3);
    em_tensor *mask = em_tensor_from(EM_F64, EM_SHAPE(2, 1), (double[]){0, -INFINITY}), *in[3] = {q, k, v}, *g[3];
    em_tape *tape = em_tape_begin(false);
    em_tensor *o = em_scaled_dot_product_attention(q, k, v, false, 0, mask);
    ck_assert_int_eq(em_gradients(tape, o, 3, in, g), 0);
    em_tape_release(tape);
    const double *ov = em_data(o), *dq = em_data(g[0]);
    for (int t = 0; t < 4; t++) {
        ck_assert_double_eq(ov[4 + t], 0);
        ck_assert_double_eq(dq[4 + t], 0);
        ck_assert(isfinite(ov[t]) && isfinite(dq[t]));
    }
    em_scope_end();
}
END_TEST

/* Traced with the batch unknown (the packed output's views are sized from
 * it), a step with the gradient replays at other batch sizes as it runs
 * eagerly: the squared norm of d(sum o^2)/dq. */
static em_tensor *squared_grad_norm(em_tensor *q) {
    em_tape *tape = em_tape_begin(false);
    em_tensor *o = em_scaled_dot_product_attention(q, q, q, true, 0, NULL), *g = NULL;
    int rc = em_gradients(tape, em_sum(em_mul(o, o), EM_ALL_AXES, false), 1, &q, &g);
    em_tape_release(tape);
    ck_assert_int_eq(rc, 0);
    return em_sum(em_mul(g, g), EM_ALL_AXES, false);
}
START_TEST(test_a_traced_step_replays_at_other_batch_sizes) {
    em_scope_begin();
    em_tensor *q = em_placeholder(EM_F64, EM_SHAPE(-1, 2, 8, 4), "q");
    ck_assert_int_eq(em_trace_begin(), 0);
    em_tensor *norm = squared_grad_norm(q);
    em_graph *g = em_trace_end();
    ck_assert_ptr_nonnull(g);
    for (int64_t b = 1; b <= 3; b += 2) {
        em_tensor *x = em_test_uniform(EM_SHAPE(b, 2, 8, 4), -1, 1, (uint64_t)b), *got = NULL;
        ck_assert_int_eq(em_graph_run(g, 1, (em_feed[]){{q, x}}, 1, &norm, &got), 0);
        ck_assert_double_eq_tol(em_item(got), em_item(squared_grad_norm(x)), 1e-12);
    }
    em_graph_release(g);
    em_scope_end();
}
END_TEST

/* Forward and backward at T = 1024 (B 1, H 2, D 32, float32, causal): all
 * the memory allocated on the way, outputs and gradients included, stays
 * below one [T, T] float32 matrix per head (8 MiB), the size of what the
 * composed attention holds per head for its scores alone. */
START_TEST(test_memory_stays_below_one_score_matrix_per_head) {
    const int64_t B = 1, H = 2, T = 1024, D = 32;
    em_scope_begin();
    em_shape s = EM_SHAPE(B, H, T, D);
    em_tensor *q = em_cast(em_test_uniform(s, -1, 1, 1), EM_F32), *k = em_cast(em_test_uniform(s, -1, 1, 2), EM_F32);
    em_tensor *v = em_cast(em_test_uniform(s, -1, 1, 3), EM_F32), *g = em_cast(em_test_uniform(s, -1, 1, 4), EM_F32);
    em_tensor *in[3] = {q, k, v}, *grads[3];
    size_t before = em_host_memory_stats().in_use;
    em_host_memory_reset_peak();
    em_scope_begin();
    em_tape *tape = em_tape_begin(false);
    em_tensor *o = em_scaled_dot_product_attention(q, k, v, true, 0, NULL);
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(em_gradients_with(tape, o, g, 3, in, grads), 0);
    em_tape_release(tape);
    size_t extra = em_host_memory_stats().peak - before;
    em_scope_end();
    ck_assert_uint_eq(em_host_memory_stats().in_use, before); /* all of it given back */
    size_t limit = (size_t)(H * T * T) * sizeof(float);
    ck_assert_msg(extra < limit, "attention at T = %lld took %zu bytes beyond its inputs; the limit is %zu",
                  (long long)T, extra, limit);
    em_scope_end();
}
END_TEST

int main(void) {
    Suite *s = suite_create("attention");
    TCase *tc = tcase_create("attention");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_matches_the_reference_across_blocks);
    tcase_add_test(tc, test_thread_count_does_not_change_results);
    tcase_add_test(tc, test_errors_name_the_argument_and_shapes);
    tcase_add_test(tc, test_a_row_that_sees_nothing_gives_zero);
    tcase_add_test(tc, test_a_traced_step_replays_at_other_batch_sizes);
    tcase_add_test(tc, test_memory_stays_below_one_score_matrix_per_head);
    suite_add_tcase(s, tc);
    return em_test_run(s);
}
