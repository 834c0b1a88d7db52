/* Layer norm and RMS norm (lib/ops/norm.c) beyond the family's cases
 * (test/cases_norm.c): bad input, second derivatives through an outer tape
 * (batch norm's too, whose backward op shares their gradient rule), and
 * results that do not depend on the thread count. */
#include "common.h"
#include "internal.h" /* em__set_stream_threshold */

#include <stdint.h>
#include <string.h>

static void teardown(void) { em_shutdown(); }

/* The call fails with an error holding each of the strings. */
static void assert_fails(em_tensor *t, const char *a, const char *b) {
    ck_assert_ptr_null(t);
    const char *e = em_last_error();
    ck_assert_msg(strstr(e, a) && strstr(e, b), "error \"%s\" lacks \"%s\" or \"%s\"", e, a, b);
    em_clear_error();
}

START_TEST(test_norm_errors) {
    em_tensor *x = em_fill(EM_F64, EM_SHAPE(2, 3), 1), *g = em_fill(EM_F64, EM_SHAPE(3), 1);
    em_tensor *g4 = em_fill(EM_F64, EM_SHAPE(4), 1), *g32 = em_fill(EM_F32, EM_SHAPE(3), 1);
    assert_fails(em_layer_norm(x, g, g, 0, 1e-5), "layer_norm: axis 0", "only the last axis");
    assert_fails(em_rms_norm(x, g, -2, 1e-5), "rms_norm: axis -2", "only the last axis");
    assert_fails(em_layer_norm(x, g4, g, -1, 1e-5), "layer_norm: gamma [4]", "last dimension of x [2,3]");
    assert_fails(em_layer_norm(x, g, g4, -1, 1e-5), "layer_norm: beta [4]", "[3]");
    assert_fails(em_rms_norm(x, g4, 1, 1e-5), "rms_norm: gamma [4]", "[2,3]");
    assert_fails(em_layer_norm(x, g32, g, -1, 1e-5), "layer_norm: gamma has dtype float32", "x has float64");
    assert_fails(em_rms_norm(em_fill(EM_I32, EM_SHAPE(2, 3), 1), g, -1, 1e-5), "rms_norm: x has dtype int32",
                 "float32 or float64");
    assert_fails(em_layer_norm(em_scalar(EM_F64, 1), g, g, -1, 1e-5), "layer_norm: x must have at least 1", "scalar");
    assert_fails(em_layer_norm(x, g, g, -1, -1), "layer_norm: eps", "-1");
    assert_fails(em_layer_norm(x, NULL, g, -1, 1e-5), "layer_norm", "NULL");
}
END_TEST

/* L(x, gamma[, beta]) = sum(v * first-order gradients of sum(w * norm)), the
 * first-order gradients from an inner tape: with `outer`, its gradients too.
 * The norms: layer norm, RMS norm, and training-mode batch norm over the
 * rows (em_fused_batch_norm: x [rows, C], scale and offset [C]). */
typedef enum { LAYER, RMS, BATCH } norm_kind;
static const char *const kind_names[] = {"layer_norm", "rms_norm", "fused_batch_norm"};
typedef struct {
    norm_kind kind;
    em_tensor *in[3], *w, *v[3];
} second_order;
static double grad_dot(const second_order *s, em_tape *outer, em_tensor **outer_grads) {
    const int n = s->kind == RMS ? 2 : 3;
    em_tape *inner = em_tape_begin(false);
    em_tensor *y = s->kind == LAYER ? em_layer_norm(s->in[0], s->in[1], s->in[2], -1, 1e-3)
                   : s->kind == RMS ? em_rms_norm(s->in[0], s->in[1], -1, 1e-3)
                                    : em_fused_batch_norm(s->in[0], s->in[1], s->in[2], 1e-3, 0.9, true, "bn");
    em_tensor *g[3];
    ck_assert_int_eq(em_gradients(inner, em_sum(em_mul(y, s->w), EM_ALL_AXES, false), n, s->in, g), 0);
    em_tape_release(inner);
    em_tensor *L = em_scalar(EM_F64, 0);
    for (int i = 0; i < n; i++) L = em_add(L, em_sum(em_mul(g[i], s->v[i]), EM_ALL_AXES, false));
    if (outer) ck_assert_int_eq(em_gradients(outer, L, n, s->in, outer_grads), 0);
    return em_item(L);
}

/* The second-order gradients (the backward op's own gradient rule) against
 * central differences of the first-order ones. */
static void check_second_order(norm_kind kind) {
    const int n = kind == RMS ? 2 : 3;
    const em_shape shapes[3] = {EM_SHAPE(3, 6), EM_SHAPE(6), EM_SHAPE(6)};
    second_order s = {.kind = kind, .w = em_test_uniform(shapes[0], 0.5, 1.5, 5)};
    for (int i = 0; i < n; i++) {
        s.in[i] = em_test_uniform(shapes[i], -2, 2, 10 + (uint64_t)i);
        s.v[i] = em_test_uniform(shapes[i], -1, 1, 20 + (uint64_t)i);
    }
    em_tensor *gg[3];
    em_tape *outer = em_tape_begin(false);
    grad_dot(&s, outer, gg);
    em_tape_release(outer);
    const double eps = 1e-6;
    for (int i = 0; i < n; i++) {
        double *p = (double *)em_data(s.in[i]);
        const double *an = em_data(gg[i]);
        double diff2 = 0, scale2 = 0;
        for (int64_t j = 0; j < em_numel(s.in[i]); j++) {
            double keep = p[j];
            em_scope_begin();
            p[j] = keep + eps;
            double up = grad_dot(&s, NULL, NULL);
            p[j] = keep - eps;
            double down = grad_dot(&s, NULL, NULL);
            em_scope_end();
            p[j] = keep;
            double num = (up - down) / (2 * eps);
            diff2 += (an[j] - num) * (an[j] - num);
            scale2 += num * num;
        }
        double rel = sqrt(diff2 / (scale2 > 1e-6 ? scale2 : 1e-6));
        ck_assert_msg(rel < 1e-6, "%s input %d: second-order relative error %.3g", kind_names[kind], i, rel);
    }
    em_variables_release();
}
START_TEST(test_layer_norm_second_order) { check_second_order(LAYER); }
END_TEST
START_TEST(test_rms_norm_second_order) { check_second_order(RMS); }
END_TEST
/* batch_norm_grad's gradient rule: the fused batch norm (training) differentiates twice */
START_TEST(test_batch_norm_second_order) { check_second_order(BATCH); }
END_TEST

/* Rows split across threads, and dgamma summed by fixed blocks of rows: the
 * same bits on 1 and 2 threads. */
START_TEST(test_norm_thread_count_independent) {
    em_tensor *x = em_cast(em_test_uniform(EM_SHAPE(300, 96), -3, 3, 1), EM_F32);
    em_tensor *g = em_cast(em_test_uniform(EM_SHAPE(96), 0.5, 1.5, 2), EM_F32);
    em_tensor *b = em_cast(em_test_uniform(EM_SHAPE(96), -1, 1, 3), EM_F32);
    em_tensor *dy = em_cast(em_test_uniform(EM_SHAPE(300, 96), -1, 1, 4), EM_F32);
    em_tensor *out[2][4];
    for (int t = 0; t < 2; t++) {
        em_set_num_threads(t + 1);
        em_tape *tape = em_tape_begin(false);
        out[t][0] = em_layer_norm(x, g, b, -1, 1e-5);
        ck_assert_int_eq(em_gradients_with(tape, out[t][0], dy, 3, (em_tensor *[]){x, g, b}, out[t] + 1), 0);
        em_tape_release(tape);
    }
    for (int k = 0; k < 4; k++)
        ck_assert_msg(memcmp(em_data(out[0][k]), em_data(out[1][k]), sizeof(float) * (size_t)em_numel(out[0][k])) == 0,
                      "output %d differs between 1 and 2 threads", k);
}
END_TEST

/* Outputs past the last-level cache are written with streaming stores
 * through a stage (lib/ops/norm.c): the same bits as ordinary stores, for
 * rows longer than a stage chunk and not a multiple of a vector. */
START_TEST(test_norm_streamed_outputs_are_the_same) {
    for (int d = 0; d < 2; d++) {
        em_dtype dt = d ? EM_F64 : EM_F32;
        em_tensor *x = em_cast(em_test_uniform(EM_SHAPE(37, 1101), -3, 3, 1), dt);
        em_tensor *g = em_cast(em_test_uniform(EM_SHAPE(1101), 0.5, 1.5, 2), dt);
        em_tensor *b = em_cast(em_test_uniform(EM_SHAPE(1101), -1, 1, 3), dt);
        em_tensor *dy = em_cast(em_test_uniform(EM_SHAPE(37, 1101), -1, 1, 4), dt);
        em_tensor *out[2][6];
        for (int streamed = 0; streamed < 2; streamed++) {
            em__set_stream_threshold(streamed ? 1 : SIZE_MAX);
            em_tape *tape = em_tape_begin(true);
            em_tensor **o = out[streamed];
            o[0] = em_layer_norm(x, g, b, -1, 1e-5);
            o[1] = em_rms_norm(x, g, -1, 1e-5);
            ck_assert_int_eq(em_gradients_with(tape, o[0], dy, 3, (em_tensor *[]){x, g, b}, o + 2), 0);
            ck_assert_int_eq(em_gradients_with(tape, o[1], dy, 1, &x, o + 5), 0);
            em_tape_release(tape);
        }
        em__set_stream_threshold(0);
        for (int k = 0; k < 6; k++)
            ck_assert_msg(memcmp(em_data(out[0][k]), em_data(out[1][k]),
                                 em_dtype_size(dt) * (size_t)em_numel(out[0][k])) == 0,
                          "%s output %d differs when streamed", em_dtype_name(dt), k);
    }
}
END_TEST

/* A traced step with an unknown batch size (the buffers' sizes derive from
 * it): the graph gives eager code's values for two batch sizes. */
START_TEST(test_norm_in_a_graph) {
    em_tensor *xp = em_placeholder(EM_F64, EM_SHAPE(-1, 8), "x");
    em_tensor *g = em_test_uniform(EM_SHAPE(8), 0.5, 1.5, 1), *b = em_test_uniform(EM_SHAPE(8), -1, 1, 2);
    ck_assert_int_eq(em_trace_begin(), 0);
    em_tape *tape = em_tape_begin(false);
    em_tensor *y = em_add(em_layer_norm(xp, g, b, -1, 1e-5), em_rms_norm(xp, g, -1, 1e-5)), *grads[3];
    em_tensor *loss = em_sum(em_square(y), EM_ALL_AXES, false);
    ck_assert_int_eq(em_gradients(tape, loss, 3, (em_tensor *[]){xp, g, b}, grads), 0);
    em_tape_release(tape);
    em_graph *graph = em_trace_end();
    ck_assert_ptr_nonnull(graph);
    for (int64_t rows = 3; rows <= 5; rows += 2) {
        em_tensor *x = em_test_uniform(EM_SHAPE(rows, 8), -2, 2, 3), *out[4], *expect[4];
        em_tensor *fetch[4] = {loss, grads[0], grads[1], grads[2]};
        int rc = em_graph_run(graph, 1, (em_feed[]){{xp, x}}, 4, fetch, out);
        ck_assert_msg(rc == 0, "graph run with %d rows: %s", (int)rows, em_last_error());
        tape = em_tape_begin(false);
        y = em_add(em_layer_norm(x, g, b, -1, 1e-5), em_rms_norm(x, g, -1, 1e-5));
        expect[0] = em_sum(em_square(y), EM_ALL_AXES, false);
        ck_assert_int_eq(em_gradients(tape, expect[0], 3, (em_tensor *[]){x, g, b}, expect + 1), 0);
        em_tape_release(tape);
        for (int k = 0; k < 4; k++)
            ck_assert_tensor(out[k], EM_F64, em_tensor_shape(expect[k]), (const double *)em_data(expect[k]), 1e-12);
    }
    em_graph_release(graph);
}
END_TEST

int main(void) {
    Suite *s = suite_create("norm");
    TCase *tc = tcase_create("norm");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_norm_errors);
    tcase_add_test(tc, test_layer_norm_second_order);
    tcase_add_test(tc, test_rms_norm_second_order);
    tcase_add_test(tc, test_batch_norm_second_order);
    tcase_add_test(tc, test_norm_thread_count_independent);
    tcase_add_test(tc, test_norm_streamed_outputs_are_the_same);
    tcase_add_test(tc, test_norm_in_a_graph);
    suite_add_tcase(s, tc);
    return em_test_run(s);
}
