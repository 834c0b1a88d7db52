/* Mixed precision: autocast (which ops run narrow, which in float32, the casts on tapes, in traced and saved
 * graphs), float32 master weights under an optimizer, and dynamic loss scaling for float16. */
#include "common.h"

#include <pthread.h>
#include <string.h>

#define ck_assert_fails(rc, needle) em_test_assert_error((rc) != 0, (needle), __FILE__, __LINE__)

static void teardown(void) { em_shutdown(); }

/* A fixed synthetic problem: 64 points in 32 dimensions, labelled by a random linear teacher's argmax. */
enum { BATCH = 64, IN = 32, HIDDEN = 48, CLASSES = 10 };

static void make_data(em_tensor **x, em_tensor **labels) {
    *x = em_keep(em_cast(em_test_uniform(EM_SHAPE(BATCH, IN), -1, 1, 11), EM_F32));
    em_tensor *teacher = em_cast(em_test_uniform(EM_SHAPE(IN, CLASSES), -1, 1, 12), EM_F32);
    *labels = em_keep(em_argmax(em_matmul(*x, teacher), 1));
}

typedef struct {
    em_tensor *w1, *b1, *w2, *b2;
} mlp;

static mlp make_mlp(void) {
    mlp m;
    m.w1 = em_get_variable("w1", EM_F32, EM_SHAPE(IN, HIDDEN), (em_initializer){EM_INIT_GLOROT_UNIFORM, .seed = 1});
    m.b1 = em_get_variable("b1", EM_F32, EM_SHAPE(HIDDEN), EM_INIT_CONST(0.1));
    m.w2 = em_get_variable("w2", EM_F32, EM_SHAPE(HIDDEN, CLASSES), (em_initializer){EM_INIT_GLOROT_UNIFORM, .seed = 2});
    m.b2 = em_get_variable("b2", EM_F32, EM_SHAPE(CLASSES), EM_INIT_CONST(0));
    ck_assert(m.w1 && m.b1 && m.w2 && m.b2);
    return m;
}

/* The MLP's loss; *h1 and *h2 get the two matmuls' outputs. */
static em_tensor *mlp_loss(const mlp *m, em_tensor *x, em_tensor *labels, em_tensor **h1, em_tensor **h2) {
    *h1 = em_matmul(x, m->w1);
    em_tensor *hidden = em_relu(em_add(*h1, m->b1));
    *h2 = em_matmul(hidden, m->w2);
    em_tensor *logits = em_add(*h2, m->b2);
    return em_mean(em_sparse_softmax_cross_entropy_with_logits(labels, logits), EM_ALL_AXES, false);
}

/* The check: the MLP trains for 20 steps under bfloat16 autocast; the matmuls run in bfloat16, the
 * variables, their gradients and Adam's slots stay float32, and the loss stays finite and falls. */
START_TEST(test_mlp_bf16) {
    em_tensor *x, *labels;
    make_data(&x, &labels);
    mlp m = make_mlp();
    em_tensor *vars[4] = {m.w1, m.b1, m.w2, m.b2};
    em_optimizer *adam = em_adam(0.01, 0.9, 0.999, 1e-8);
    double first = 0, last = 0;
    for (int step = 0; step < 20; step++) {
        em_scope_begin();
        em_tape *tape = em_tape_begin(false);
        ck_assert_int_eq(em_autocast_begin(EM_BF16), 0);
        em_tensor *h1, *h2, *loss = mlp_loss(&m, x, labels, &h1, &h2);
        ck_assert_int_eq(em_autocast_end(), 0);
        em_tape_stop(tape);
        ck_assert_msg(loss, "%s", em_last_error());
        ck_assert_int_eq(em_tensor_dtype(h1), EM_BF16);
        ck_assert_int_eq(em_tensor_dtype(h2), EM_BF16);
        ck_assert_int_eq(em_tensor_dtype(loss), EM_F32);
        em_tensor *grads[4];
        ck_assert_msg(em_compute_gradients(adam, tape, loss, 4, vars, grads) == 0, "%s", em_last_error());
        for (int i = 0; i < 4; i++) ck_assert_int_eq(em_tensor_dtype(grads[i]), EM_F32);
        ck_assert_int_eq(em_apply_gradients(adam, 4, grads, vars), 0);
        em_tape_release(tape);
        double l = em_item(loss);
        ck_assert_msg(isfinite(l), "step %d: loss %g", step, l);
        if (step == 0) first = l;
        last = l;
        em_scope_end();
    }
    ck_assert_msg(last < 0.7 * first, "loss %g -> %g", first, last);
    for (int i = 0; i < 4; i++) ck_assert_int_eq(em_tensor_dtype(vars[i]), EM_F32);
    ck_assert_int_eq(em_tensor_dtype(em_find_variable("w1/Adam")), EM_F32);
    ck_assert_int_eq(em_tensor_dtype(em_find_variable("w1/Adam_1")), EM_F32);
    em_optimizer_release(adam);
    em_release(x);
    em_release(labels);
}
END_TEST

/* Which ops run in which dtype, and the values they give. */
START_TEST(test_op_lists) {
    em_tensor *a = em_cast(em_test_uniform(EM_SHAPE(3, 5), -2, 2, 1), EM_F32);
    em_tensor *b = em_cast(em_test_uniform(EM_SHAPE(5, 4), -2, 2, 2), EM_F32);
    em_tensor *narrow = em_cast(a, EM_BF16);
    ck_assert_int_eq(em_autocast_begin(EM_BF16), 0);
    /* matmul: float32 in, bfloat16 out, the product of the rounded inputs */
    em_tensor *p = em_matmul(a, b);
    /* softmax, sums and losses given bfloat16: float32 out, computed from the widened input */
    em_tensor *s = em_softmax(narrow, -1);
    em_tensor *total = em_sum(narrow, EM_ALL_AXES, false);
    em_tensor *labels = em_tensor_from(EM_I64, EM_SHAPE(3), (int64_t[]){0, 4, 2});
    em_tensor *xent = em_sparse_softmax_cross_entropy_with_logits(labels, narrow);
    /* other ops: narrow stays narrow; mixed with float32, the region's dtype (Keras' mixed policy) */
    em_tensor *r = em_relu(narrow);
    em_tensor *mixed = em_add(narrow, a);
    /* integers are never cast */
    em_tensor *ints = em_matmul(em_ones(EM_I32, EM_SHAPE(2, 2)), em_ones(EM_I32, EM_SHAPE(2, 2)));
    em_tensor *f64 = em_matmul(em_ones(EM_F64, EM_SHAPE(2, 2)), em_ones(EM_F64, EM_SHAPE(2, 2)));
    ck_assert_int_eq(em_autocast_end(), 0);
    ck_assert_msg(p && s && total && xent && r && mixed && ints && f64, "%s", em_last_error());
    ck_assert_int_eq(em_tensor_dtype(p), EM_BF16);
    ck_assert_int_eq(em_tensor_dtype(s), EM_F32);
    ck_assert_int_eq(em_tensor_dtype(total), EM_F32);
    ck_assert_int_eq(em_tensor_dtype(xent), EM_F32);
    ck_assert_int_eq(em_tensor_dtype(r), EM_BF16);
    ck_assert_int_eq(em_tensor_dtype(mixed), EM_BF16);
    ck_assert_int_eq(em_tensor_dtype(ints), EM_I32);
    ck_assert_int_eq(em_tensor_dtype(f64), EM_F64);
    em_tensor *wide = em_cast(narrow, EM_F32);
    /* within one bfloat16 rounding of the float32 product: the sums' order may differ */
    ck_assert(em_test_max_rel_diff(p, em_matmul(wide, em_cast(em_cast(b, EM_BF16), EM_F32))) < 0x1p-8);
    ck_assert(em_test_max_rel_diff(s, em_softmax(wide, -1)) == 0);
    ck_assert(em_test_max_rel_diff(total, em_sum(wide, EM_ALL_AXES, false)) == 0);
    ck_assert(em_test_max_rel_diff(xent, em_sparse_softmax_cross_entropy_with_logits(labels, wide)) == 0);
    ck_assert(em_test_max_rel_diff(mixed, em_cast(em_add(narrow, em_cast(a, EM_BF16)), EM_F32)) == 0);
    /* outside autocast, the same mix is an error */
    ck_assert_error(em_add(narrow, a), "dtypes differ");
}
END_TEST

/* Another thread's ops: autocast is per thread. */
static void *other_thread(void *ctx) {
    em_tensor *a = em_ones(EM_F32, EM_SHAPE(2, 2));
    *(em_dtype *)ctx = em_tensor_dtype(em_matmul(a, a));
    em_shutdown();
    return NULL;
}

START_TEST(test_nesting_and_errors) {
    em_tensor *a = em_ones(EM_F32, EM_SHAPE(2, 2));
    ck_assert_int_eq(em_autocast_dtype(), EM_F32);
    ck_assert_int_eq(em_autocast_begin(EM_BF16), 0);
    ck_assert_int_eq(em_autocast_begin(EM_F16), 0);
    ck_assert_int_eq(em_autocast_dtype(), EM_F16);
    ck_assert_int_eq(em_tensor_dtype(em_matmul(a, a)), EM_F16);
    /* under float16 autocast a bfloat16 input of a narrow op is cast to float16 too */
    ck_assert_int_eq(em_tensor_dtype(em_matmul(em_cast(a, EM_BF16), a)), EM_F16);
    ck_assert_int_eq(em_autocast_end(), 0);
    ck_assert_int_eq(em_autocast_dtype(), EM_BF16);
    ck_assert_int_eq(em_tensor_dtype(em_matmul(a, a)), EM_BF16);
    em_dtype elsewhere = EM_DTYPE_COUNT;
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, other_thread, &elsewhere), 0);
    pthread_join(t, NULL);
    ck_assert_int_eq(elsewhere, EM_F32);
    ck_assert_int_eq(em_autocast_end(), 0);
    ck_assert_int_eq(em_autocast_dtype(), EM_F32);
    ck_assert_int_eq(em_tensor_dtype(em_matmul(a, a)), EM_F32);
    ck_assert_fails(em_autocast_end(), "no autocast region is open");
    ck_assert_fails(em_autocast_begin(EM_F32), "autocast_begin: dtype float32");
    ck_assert_fails(em_autocast_begin(EM_I32), "bfloat16 or float16");
    ck_assert_fails(em_autocast_begin((em_dtype)99), "dtype invalid (99)");
    for (int i = 0; i < 64; i++) ck_assert_int_eq(em_autocast_begin(EM_BF16), 0);
    ck_assert_fails(em_autocast_begin(EM_BF16), "at most 64 deep");
    for (int i = 0; i < 64; i++) ck_assert_int_eq(em_autocast_end(), 0);
    /* em_shutdown closes every region */
    ck_assert_int_eq(em_autocast_begin(EM_BF16), 0);
    em_shutdown();
    ck_assert_int_eq(em_autocast_dtype(), EM_F32);
}
END_TEST

/* The tape differentiates through the casts: float32 variables get float32 gradients, those of the
 * computation the rounded inputs went through, asked after the autocast region or inside it (the gradient
 * rules run outside autocast: under it, the batched matmul's rule would sum its bfloat16 gradient in
 * float32). */
START_TEST(test_gradients_through_casts) {
    em_tensor *x = em_cast(em_test_uniform(EM_SHAPE(2, 4, 3), -1, 1, 5), EM_F32);
    em_tensor *w = em_get_variable("w", EM_F32, EM_SHAPE(3, 2), EM_INIT_UNIFORM(-1, 1));
    /* d/dw sum((xw)^2) = 2 sum_b x_b^T (x_b w), with x, w and xw rounded to bfloat16 as the forward pass had them */
    em_tensor *xr = em_cast(em_cast(x, EM_BF16), EM_F32), *wr = em_cast(em_cast(w, EM_BF16), EM_F32);
    em_tensor *xw = em_cast(em_cast(em_matmul(xr, wr), EM_BF16), EM_F32);
    em_tensor *expect = em_mul_scalar(em_sum(em_matmul(em_transpose(xr, EM_AXES(0, 2, 1)), xw), EM_AXES(0), false), 2);
    for (int inside = 0; inside < 2; inside++) {
        em_tape *tape = em_tape_begin(false);
        ck_assert_int_eq(em_autocast_begin(EM_BF16), 0);
        em_tensor *y = em_sum(em_square(em_matmul(x, w)), EM_ALL_AXES, false);
        if (!inside) ck_assert_int_eq(em_autocast_end(), 0);
        em_tensor *g;
        ck_assert_msg(em_gradients(tape, y, 1, &w, &g) == 0, "%s", em_last_error());
        if (inside) {
            ck_assert_int_eq(em_autocast_dtype(), EM_BF16); /* still open */
            ck_assert_int_eq(em_autocast_end(), 0);
        }
        em_tape_release(tape);
        ck_assert_int_eq(em_tensor_dtype(y), EM_F32);
        ck_assert_int_eq(em_tensor_dtype(g), EM_F32);
        ck_assert_msg(em_test_max_rel_diff(g, expect) < 2e-2, "%g", em_test_max_rel_diff(g, expect));
    }
}
END_TEST

/* A step traced under autocast holds the casts: run with new inputs it gives what autocast gives eagerly,
 * also after a save and a load, and autocast need not be open when it runs. */
START_TEST(test_traced_and_saved) {
    em_tensor *w = em_get_variable("w", EM_F32, EM_SHAPE(5, 3), EM_INIT_UNIFORM(-1, 1));
    em_tensor *x = em_keep(em_placeholder(EM_F32, EM_SHAPE(-1, 5), "x"));
    ck_assert_int_eq(em_trace_begin(), 0);
    ck_assert_int_eq(em_autocast_begin(EM_BF16), 0);
    em_tensor *h = em_matmul(x, w);
    em_tensor *out = em_softmax(em_add(h, em_ones(EM_F32, EM_SHAPE(3))), -1);
    ck_assert_int_eq(em_autocast_end(), 0);
    em_graph *g = em_trace_end();
    ck_assert_msg(g && out, "%s", em_last_error());
    ck_assert_int_eq(em_tensor_dtype(h), EM_BF16);

    em_tensor *feed = em_cast(em_test_uniform(EM_SHAPE(7, 5), -3, 3, 9), EM_F32);
    ck_assert_int_eq(em_autocast_begin(EM_BF16), 0);
    em_tensor *eager = em_softmax(em_add(em_matmul(feed, w), em_ones(EM_F32, EM_SHAPE(3))), -1);
    ck_assert_int_eq(em_autocast_end(), 0);
    em_tensor *plain = em_softmax(em_add(em_matmul(feed, w), em_ones(EM_F32, EM_SHAPE(3))), -1);
    ck_assert(em_test_max_rel_diff(eager, plain) > 0); /* the rounding shows */

    em_tensor *res[2];
    ck_assert_msg(em_graph_run(g, 1, (em_feed[]){{x, feed}}, 2, (em_tensor *[]){out, h}, res) == 0, "%s",
                  em_last_error());
    ck_assert_int_eq(em_tensor_dtype(res[1]), EM_BF16);
    ck_assert(em_test_max_rel_diff(res[0], eager) == 0);

    char dir[128];
    em_test_tmpdir("autocast", dir, sizeof dir);
    const char *path = em_test_path(dir, "step.emg");
    ck_assert_msg(em_graph_save(g, path, 1, &out, (const char *[]){"out"}, EM_SAVE_FREEZE) == 0, "%s",
                  em_last_error());
    em_graph *loaded = em_graph_load(path);
    ck_assert_msg(loaded, "%s", em_last_error());
    em_tensor *lx = em_graph_placeholder(loaded, "x"), *lout = em_graph_fetch(loaded, "out"), *r;
    ck_assert_msg(em_graph_run(loaded, 1, (em_feed[]){{lx, feed}}, 1, &lout, &r) == 0, "%s", em_last_error());
    ck_assert(em_test_max_rel_diff(r, eager) == 0);
    em_graph_release(loaded);
    em_test_tmpdir_remove(dir);
    em_graph_release(g);
    em_release(x);
}
END_TEST

/* A float32 -> bfloat16 -> float32 round trip in a graph is not an identity: the graph keeps the rounding. */
START_TEST(test_cast_pair_kept) {
    em_tensor *x = em_keep(em_placeholder(EM_F32, EM_SHAPE(2), "x"));
    ck_assert_int_eq(em_trace_begin(), 0);
    em_tensor *y = em_mul_scalar(em_cast(em_cast(x, EM_BF16), EM_F32), 1);
    em_graph *g = em_trace_end();
    ck_assert(g && y);
    const float v[2] = {1.0f + 0x1p-10f, 3.0f};
    em_tensor *r;
    ck_assert_int_eq(em_graph_run(g, 1, (em_feed[]){{x, em_tensor_from(EM_F32, EM_SHAPE(2), v)}}, 1, &y, &r), 0);
    ck_assert_tensor(r, EM_F32, EM_SHAPE(2), ((double[]){1.0, 3.0}), 0);
    em_graph_release(g);
    em_release(x);
}
END_TEST

/* Float16 with dynamic loss scaling: from scale 2^17 the float16 matmul's incoming gradient overflows, so
 * the first steps are skipped (nothing changes, the scale halves) until 2^15; clean steps then apply the
 * unscaled gradients and grow the scale after growth_interval of them, and it overflows again. */
START_TEST(test_loss_scaler) {
    em_tensor *w = em_get_variable("w", EM_F32, EM_SHAPE(2, 1), EM_INIT_CONST(0.5));
    em_tensor *x = em_ones(EM_F32, EM_SHAPE(1, 2));
    em_optimizer *sgd = em_sgd(0.125);
    em_loss_scaler *scaler = em_dynamic_loss_scaler(131072, 2, 0.5, 2);
    ck_assert(scaler);
    const int expect_rc[6] = {1, 1, 0, 0, 1, 0};
    const double expect_scale[6] = {65536, 32768, 32768, 65536, 32768, 32768};
    double expect_w = 0.5;
    for (int step = 0; step < 6; step++) {
        em_scope_begin();
        em_tape *tape = em_tape_begin(false);
        ck_assert_int_eq(em_autocast_begin(EM_F16), 0);
        em_tensor *y = em_matmul(x, w);
        em_tensor *loss = em_sum(y, EM_ALL_AXES, false);
        ck_assert_int_eq(em_autocast_end(), 0);
        ck_assert_int_eq(em_tensor_dtype(y), EM_F16);
        em_tensor *scaled = em_loss_scaler_scale(scaler, loss);
        em_tape_stop(tape);
        em_tensor *g;
        ck_assert_int_eq(em_compute_gradients(sgd, tape, scaled, 1, &w, &g), 0);
        em_tape_release(tape);
        int rc = em_loss_scaler_step(scaler, sgd, 1, &g, &w);
        ck_assert_msg(rc == expect_rc[step], "step %d: %d (%s)", step, rc, em_last_error());
        if (rc == 0) expect_w -= 0.125; /* d loss / d w = x^T = 1 */
        ck_assert_tensor(w, EM_F32, EM_SHAPE(2, 1), ((double[]){expect_w, expect_w}), 0);
        ck_assert_double_eq(em_loss_scaler_get_scale(scaler), expect_scale[step]);
        em_scope_end();
    }
    ck_assert_int_eq(em_loss_scaler_skipped(scaler), 3);
    ck_assert_int_eq(em_optimizer_step(sgd), 3);
    /* a NaN gradient is skipped too */
    em_tensor *nan = em_tensor_from(EM_F32, EM_SHAPE(2, 1), (float[]){NAN, 0});
    ck_assert_int_eq(em_loss_scaler_step(scaler, sgd, 1, &nan, &w), 1);
    ck_assert_tensor(w, EM_F32, EM_SHAPE(2, 1), ((double[]){expect_w, expect_w}), 0);
    ck_assert_double_eq(em_loss_scaler_get_scale(scaler), 16384);

    /* errors */
    ck_assert_error(em_dynamic_loss_scaler(0, 2, 0.5, 10), "init_scale > 0");
    ck_assert_error(em_dynamic_loss_scaler(INFINITY, 2, 0.5, 10), "init_scale > 0");
    ck_assert_error(em_dynamic_loss_scaler(1024, 1, 0.5, 10), "growth_factor > 1");
    ck_assert_error(em_dynamic_loss_scaler(1024, 2, 1, 10), "backoff_factor in (0, 1)");
    ck_assert_error(em_dynamic_loss_scaler(1024, 2, 0.5, 0), "growth_interval >= 1");
    ck_assert_error(em_loss_scaler_scale(NULL, x), "the scaler is NULL");
    ck_assert_error(em_loss_scaler_scale(scaler, em_ones(EM_I32, EM_SHAPE0)), "must be a float tensor");
    ck_assert_fails(em_loss_scaler_step(scaler, NULL, 1, &nan, &w), "the optimizer is NULL");
    ck_assert_fails(em_loss_scaler_step(scaler, sgd, 0, &nan, &w), "n >= 1");
    ck_assert_fails(em_loss_scaler_step(scaler, sgd, 1, (em_tensor *[]){em_ones(EM_F32, EM_SHAPE(3))}, &w),
                    "gradient 0 is float32 [3]");
    ck_assert_fails(em_loss_scaler_step(scaler, sgd, 1, (em_tensor *[]){NULL}, &w), "every grad is NULL");
    ck_assert_double_eq(em_loss_scaler_get_scale(scaler), 16384);
    em_loss_scaler_release(scaler);
    em_optimizer_release(sgd);
}
END_TEST

int main(void) {
    Suite *s = suite_create("autocast");
    TCase *tc = tcase_create("autocast");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_mlp_bf16);
    tcase_add_test(tc, test_op_lists);
    tcase_add_test(tc, test_nesting_and_errors);
    tcase_add_test(tc, test_gradients_through_casts);
    tcase_add_test(tc, test_traced_and_saved);
    tcase_add_test(tc, test_cast_pair_kept);
    tcase_add_test(tc, test_loss_scaler);
    suite_add_tcase(s, tc);
    return em_test_run(s);
}
