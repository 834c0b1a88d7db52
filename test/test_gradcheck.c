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

/* A case as em_gradcheck's fn: the checked inputs come in, the skipped ones (labels, masks) are held. */
typedef struct held {
    const gc_case *c;
    em_tensor *in[4];
} held;
static em_tensor *case_fn(int n, em_tensor *const *checked, void *ctx) {
    held *h = ctx;
    em_tensor *in[4];
    for (int i = 0, k = 0; i < h->c->nin; i++) in[i] = h->c->skip_mask & (1u << i) ? h->in[i] : checked[k++];
    (void)n;
    return h->c->fn(in);
}

/* em_gradcheck, the public check, on every element of every checked input. */
static void check_case(const gc_case *c) {
    char where[200];
    snprintf(where, sizeof where, "%s (%s)", c->label, em__op_def(c->op)->name);
    em_scope_begin();
    held h = {c, {0}};
    em_tensor *xs[4];
    int nx = 0;
    for (int i = 0; i < c->nin; i++) {
        h.in[i] = c->make_input ? c->make_input(i) : NULL;
        if (!h.in[i]) h.in[i] = em_test_uniform(c->shapes[i], c->lo, c->hi, 1000u + (unsigned)i * 7u + (unsigned)c->op);
        ck_assert_msg(h.in[i] != NULL, "%s: input %d: %s", where, i, em_last_error());
        if (!(c->skip_mask & (1u << i))) xs[nx++] = h.in[i];
    }
    em_gradcheck_report r;
    int rc = em_gradcheck(case_fn, &h, nx, xs, NULL, &r);
    ck_assert_msg(rc >= 0, "%s: %s", where, em_last_error());
    ck_assert_msg(rc == 0, "%s: checked input %d, element %lld: analytic %.10g, numeric %.10g (relative error %.3g)",
                  where, r.input, (long long)r.element, r.analytic, r.numeric, r.worst);
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
