/* The op table's completeness, and a float64 central-difference gradient
 * check of every differentiable op through the cases each family lists in
 * test/cases_<family>.c. A differentiable op without a case fails here. */
#include "common.h"

#include <stdio.h>
#include <string.h>

static void teardown(void) { em_shutdown(); }

START_TEST(test_every_row_is_complete) {
    for (int op = 0; op < em__op_count(); op++) {
        const em_op_def *d = em__op_def((em_op)op);
        ck_assert_msg(d && d->name, "op %d has no table row", op);
        ck_assert_msg(d->infer, "%s has no shape rule", d->name);
        ck_assert_msg(d->cpu || d->view, "%s has neither a CPU kernel nor a view", d->name);
        ck_assert_msg(d->grad || (d->flags & (EM_OPF_NONDIFF | EM_OPF_CUT)),
                      "%s has no gradient rule and is not marked non-differentiable", d->name);
        ck_assert_msg(!(d->grad && (d->flags & EM_OPF_NONDIFF)), "%s has a gradient but is marked NONDIFF", d->name);
        ck_assert_msg(d->id == (em_op)op, "%s's row says id %d, its id is %d", d->name, (int)d->id, op);
        ck_assert_msg(em__op_by_name(d->name) == d, "two ops are named %s", d->name);
    }
}
END_TEST

/* An op registered at run time gets the next id, is found by id and by
 * name, and runs through the dispatcher like a built-in one; a second op of
 * the same name, or one without a kernel, is refused. */
static int twice_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    em_shape s = em_tensor_shape(c->in[0]);
    *dtype = em_tensor_dtype(c->in[0]);
    *ndim = s.ndim;
    memcpy(shape, s.dims, sizeof(int64_t) * (size_t)s.ndim);
    return 0;
}
static void twice_cpu(const em_call *c, em_tensor *out) {
    const double *x = em_data(c->in[0]);
    double *y = (double *)em_data(out); /* the kernel's own output */
    for (int64_t i = 0; i < em_numel(out); i++) y[i] = 2 * x[i];
}
START_TEST(test_ops_can_be_registered_at_run_time) {
    static em_op_def twice = {.name = "test_twice", .arity = 1, .dtypes = EM_DT_F64, .flags = EM_OPF_NONDIFF,
                              .infer = twice_infer, .cpu = twice_cpu};
    int before = em__op_count();
    ck_assert_int_eq(em__op_register(&twice), 0);
    ck_assert_int_eq((int)twice.id, before);
    ck_assert_int_eq(em__op_count(), before + 1);
    ck_assert_ptr_eq(em__op_def(twice.id), &twice);
    ck_assert_ptr_eq(em__op_by_name("test_twice"), &twice);
    ck_assert_ptr_null(em__op_def((em_op)(before + 1)));
    em_tensor *y = em__apply(twice.id, 1, (em_tensor *[]){em_tensor_from(EM_F64, EM_SHAPE(3), (double[]){1, -2, 3})},
                             &(em_attrs){0});
    ck_assert_tensor(y, EM_F64, EM_SHAPE(3), ((double[]){2, -4, 6}), 0);
    static em_op_def again = {.name = "test_twice", .arity = 1, .infer = twice_infer, .cpu = twice_cpu};
    ck_assert_int_eq(em__op_register(&again), -1);
    ck_assert_ptr_nonnull(strstr(em_last_error(), "already exists"));
    static em_op_def no_kernel = {.name = "test_no_kernel", .arity = 1, .infer = twice_infer};
    ck_assert_int_eq(em__op_register(&no_kernel), -1);
    em_clear_error();
    ck_assert_int_eq(em__op_count(), before + 1);
}
END_TEST

START_TEST(test_every_differentiable_op_has_a_case) {
    for (int op = 0; op < em__op_count(); op++) {
        const em_op_def *d = em__op_def((em_op)op);
        if (!d->grad) continue;
        int cases = 0;
        for (const em_test_family *f = em_test_families; f->name; f++)
            for (const gc_case *c = f->gc; c->fn; c++) cases += c->op == (em_op)op;
        ck_assert_msg(cases > 0, "op %s has a gradient rule but no gradient-check case", d->name);
    }
}
END_TEST

/* sum(fn(in) * w): a fixed random weighting keeps symmetric errors visible. */
static double weighted_loss(const gc_case *c, em_tensor *const *in, em_tensor *w) {
    em_scope_begin();
    double v = em_item(em_sum(em_mul(c->fn(in), w), EM_ALL_AXES, false));
    em_scope_end();
    return v;
}

static void check_case(const gc_case *c) {
    const double eps = 1e-6;
    char where[200];
    snprintf(where, sizeof where, "%s (%s)", c->label, em__op_def(c->op)->name);
    em_scope_begin();
    em_tensor *in[4] = {0};
    for (int i = 0; i < c->nin; i++) {
        in[i] = c->make_input ? c->make_input(i) : NULL;
        if (!in[i]) in[i] = em_test_uniform(c->shapes[i], c->lo, c->hi, 1000u + (unsigned)i * 7u + (unsigned)c->op);
        ck_assert_msg(in[i] != NULL, "%s: input %d: %s", where, i, em_last_error());
    }
    em_tensor *y0 = c->fn(in);
    ck_assert_msg(y0 != NULL, "%s: forward failed: %s", where, em_last_error());
    ck_assert_msg(em_tensor_dtype(y0) == EM_F64, "%s: output is not float64", where);
    em_tensor *w = em_test_uniform(em_tensor_shape(y0), 0.5, 1.5, 77);

    em_tape *tape = em_tape_begin(false);
    em_tensor *loss = em_sum(em_mul(c->fn(in), w), EM_ALL_AXES, false);
    /* Differentiate with respect to the checked inputs only (labels may be ints). */
    em_tensor *xs[4], *grads[4] = {0}, *dx[4];
    int nx = 0;
    for (int i = 0; i < c->nin; i++)
        if (!(c->skip_mask & (1u << i))) xs[nx++] = in[i];
    int rc = em_gradients(tape, loss, nx, xs, dx);
    for (int i = 0, k = 0; i < c->nin; i++)
        if (!(c->skip_mask & (1u << i))) grads[i] = dx[k++];
    em_tape_release(tape);
    ck_assert_msg(rc == 0, "%s: gradients failed: %s", where, em_last_error());

    for (int i = 0; i < c->nin; i++) {
        if (c->skip_mask & (1u << i)) continue;
        /* The inputs are our own contiguous float64 tensors: perturb them in place. */
        double *x = (double *)em_data(in[i]);
        const double *g = em_data(grads[i]);
        double diff2 = 0, an2 = 0, num2 = 0;
        for (int64_t j = 0; j < em_numel(in[i]); j++) {
            double keep = x[j];
            x[j] = keep + eps;
            double up = weighted_loss(c, in, w);
            x[j] = keep - eps;
            double down = weighted_loss(c, in, w);
            x[j] = keep;
            double num = (up - down) / (2 * eps);
            diff2 += (g[j] - num) * (g[j] - num);
            an2 += g[j] * g[j];
            num2 += num * num;
        }
        double scale = sqrt(an2 > num2 ? an2 : num2);
        double rel = sqrt(diff2) / (scale > 1e-3 ? scale : 1e-3);
        ck_assert_msg(rel < 1e-6, "%s: input %d: relative error %.3g between the analytic and numerical gradient",
                      where, i, rel);
    }
    em_scope_end();
}

START_TEST(test_gradients_match_central_differences) {
    int checked = 0;
    for (const em_test_family *f = em_test_families; f->name; f++)
        for (const gc_case *c = f->gc; c->fn; c++) {
            check_case(c);
            checked++;
        }
    ck_assert_int_gt(checked, 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("gradcheck");
    TCase *tc = tcase_create("gradcheck");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_every_row_is_complete);
    tcase_add_test(tc, test_ops_can_be_registered_at_run_time);
    tcase_add_test(tc, test_every_differentiable_op_has_a_case);
    tcase_add_test(tc, test_gradients_match_central_differences);
    suite_add_tcase(s, tc);
    return em_test_run(s);
}
