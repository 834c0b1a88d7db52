/* Variables: scopes and sharing (the seed's conv_relu, way 1 and way 2),
 * initializers, in-place assignment, collections and name scopes. */
#include "common.h"

#include <string.h>

/* An int-returning call failed with an error containing needle. */
#define ck_assert_fails(rc, needle) em_test_assert_error((rc) != 0, (needle), __FILE__, __LINE__)

static void teardown(void) { em_shutdown(); }

/* The seed's conv_relu, its variables only: the convolution is not what is tested here. */
static int conv_relu_vars(em_tensor **w, em_tensor **b) {
    *w = em_get_variable("weights", EM_F32, EM_SHAPE(5, 5, 32, 32), EM_INIT_NORMAL(0, 1));
    *b = em_get_variable("biases", EM_F32, EM_SHAPE(32), EM_INIT_CONST(0));
    return *w && *b ? 0 : -1;
}

/* my_image_filter: conv1 and conv2 scopes; v gets the four variables. */
static int image_filter_vars(em_tensor **v) {
    int rc = em_variable_scope_begin("conv1", EM_REUSE_INHERIT);
    rc |= conv_relu_vars(&v[0], &v[1]);
    rc |= em_variable_scope_end();
    rc |= em_variable_scope_begin("conv2", EM_REUSE_INHERIT);
    rc |= conv_relu_vars(&v[2], &v[3]);
    rc |= em_variable_scope_end();
    return rc;
}

static const char *const filter_names[4] = {"model/conv1/weights", "model/conv1/biases", "model/conv2/weights",
                                            "model/conv2/biases"};

START_TEST(test_scoped_names) {
    ck_assert_str_eq(em_variable_scope(), "");
    ck_assert_int_eq(em_variable_scope_begin("model", EM_REUSE_FALSE), 0);
    ck_assert_int_eq(em_variable_scope_begin("conv1", EM_REUSE_FALSE), 0);
    ck_assert_str_eq(em_variable_scope(), "model/conv1");
    ck_assert_str_eq(em_name_scope(), "model/conv1");
    /* A name scope prefixes op names, not variables. */
    ck_assert_int_eq(em_name_scope_begin("ops"), 0);
    ck_assert_str_eq(em_name_scope(), "model/conv1/ops");
    em_tensor *w = em_get_variable("weights", EM_F32, EM_SHAPE(2, 2), EM_INIT_CONST(1));
    ck_assert_ptr_nonnull(w);
    ck_assert_str_eq(em_variable_name(w), "model/conv1/weights");
    /* The variable scope cannot close over an open name scope, nor the name scope over the variable scope's. */
    ck_assert_fails(em_variable_scope_end(), "name scope 'model/conv1/ops', opened inside variable scope");
    ck_assert_int_eq(em_name_scope_end(), 0);
    ck_assert_fails(em_name_scope_end(), "belongs to variable scope 'model/conv1'");
    ck_assert_int_eq(em_variable_scope_end(), 0);
    ck_assert_int_eq(em_variable_scope_end(), 0);
    ck_assert_fails(em_variable_scope_end(), "no variable scope is open");
    ck_assert_fails(em_name_scope_end(), "no name scope is open");
    ck_assert_str_eq(em_name_scope(), "");
    ck_assert_ptr_eq(em_find_variable("model/conv1/weights"), w);
    ck_assert_ptr_null(em_find_variable("conv1/weights"));
    /* A variable scope nested in a plain name scope: the name scope nests, the variable name does not. */
    ck_assert_int_eq(em_name_scope_begin("outer"), 0);
    ck_assert_int_eq(em_variable_scope_begin("vs", EM_REUSE_FALSE), 0);
    ck_assert_str_eq(em_name_scope(), "outer/vs");
    ck_assert_str_eq(em_variable_name(em_get_variable("x", EM_F64, EM_SHAPE0, EM_INIT_CONST(0))), "vs/x");
    ck_assert_int_eq(em_variable_scope_end(), 0);
    ck_assert_int_eq(em_name_scope_end(), 0);
    ck_assert_fails(em_variable_scope_begin("", EM_REUSE_FALSE), "scope name is empty");
    ck_assert_error(em_get_variable("", EM_F32, EM_SHAPE0, EM_INIT_CONST(0)), "variable name is empty");
}
END_TEST

START_TEST(test_sharing_way1) {
    em_tensor *a[4], *b[4];
    ck_assert_int_eq(em_variable_scope_begin("model", EM_REUSE_INHERIT), 0);
    ck_assert_int_eq(image_filter_vars(a), 0);
    ck_assert_int_eq(em_variable_scope_end(), 0);
    ck_assert_int_eq(em_variable_scope_begin("model", EM_REUSE_TRUE), 0);
    ck_assert_int_eq(image_filter_vars(b), 0);
    ck_assert_int_eq(em_variable_scope_end(), 0);
    for (int i = 0; i < 4; i++) {
        ck_assert_str_eq(em_variable_name(a[i]), filter_names[i]);
        ck_assert_ptr_eq(a[i], b[i]);
    }
    em_tensor *all[8];
    ck_assert_int_eq(em_global_variables(all, 8), 4);
    ck_assert_int_eq(em_trainable_variables(all, 8), 4);
    for (int i = 0; i < 4; i++) ck_assert_ptr_eq(all[i], a[i]);
}
END_TEST

START_TEST(test_sharing_way2) {
    em_tensor *a[4], *b[4];
    ck_assert_int_eq(em_variable_scope_begin("model", EM_REUSE_INHERIT), 0);
    ck_assert_int_eq(image_filter_vars(a), 0);
    em_reuse_variables();
    ck_assert_int_eq(image_filter_vars(b), 0);
    ck_assert_int_eq(em_variable_scope_end(), 0);
    for (int i = 0; i < 4; i++) {
        ck_assert_str_eq(em_variable_name(a[i]), filter_names[i]);
        ck_assert_ptr_eq(a[i], b[i]);
    }
    ck_assert_int_eq(em_global_variables(NULL, 0), 4);
    /* Reuse ended with the scope: opening "model" again creates, so the names clash. */
    ck_assert_int_eq(em_variable_scope_begin("model", EM_REUSE_INHERIT), 0);
    ck_assert_int_eq(image_filter_vars(b), -1); /* each of the four fails; the last one's message stays */
    ck_assert_str_eq(em_last_error(), "get_variable: Variable model/conv2/biases already exists, disallowed. Did "
                                      "you mean to set reuse=EM_REUSE_TRUE or reuse=EM_REUSE_AUTO in VarScope?");
    em_clear_error();
}
END_TEST

START_TEST(test_conv_relu_without_scopes) {
    em_tensor *w, *b;
    ck_assert_int_eq(conv_relu_vars(&w, &b), 0);
    ck_assert_str_eq(em_variable_name(w), "weights");
    ck_assert_int_eq(conv_relu_vars(&w, &b), -1);
    ck_assert_str_eq(em_last_error(), "get_variable: Variable biases already exists, disallowed. Did you mean to "
                                      "set reuse=EM_REUSE_TRUE or reuse=EM_REUSE_AUTO in VarScope?");
    em_clear_error();
    ck_assert_int_eq(em_global_variables(NULL, 0), 2);
}
END_TEST

START_TEST(test_reuse_rules) {
    em_tensor *v[4];
    /* Reusing a variable that was never made. */
    ck_assert_int_eq(em_variable_scope_begin("model", EM_REUSE_TRUE), 0);
    ck_assert_int_eq(image_filter_vars(v), -1);
    ck_assert_str_eq(em_last_error(), "get_variable: Variable model/conv2/biases does not exist, or was not "
                                      "created with em_get_variable(). Did you mean to set reuse=EM_REUSE_AUTO in "
                                      "VarScope?");
    em_clear_error();
    /* image_filter_vars left its scopes balanced even though it failed. */
    ck_assert_str_eq(em_variable_scope(), "model");
    ck_assert_int_eq(em_variable_scope_end(), 0);
    ck_assert_int_eq(em_global_variables(NULL, 0), 0);

    /* Sub-scopes inherit reuse; as in TF1 a sub-scope cannot turn it off. */
    em_tensor *x = em_get_variable("a/b/x", EM_F32, EM_SHAPE(3), EM_INIT_CONST(2));
    ck_assert_int_eq(em_variable_scope_begin("a", EM_REUSE_TRUE), 0);
    ck_assert_int_eq(em_variable_scope_begin("b", EM_REUSE_FALSE), 0);
    ck_assert_ptr_eq(em_get_variable("x", EM_F32, EM_SHAPE(3), EM_INIT_CONST(0)), x);
    ck_assert_ptr_eq(em_get_variable("x", EM_F32, (em_shape){.ndim = -1}, EM_INIT_CONST(0)), x);
    /* Shape and dtype must match on reuse. */
    ck_assert_error(em_get_variable("x", EM_F32, EM_SHAPE(2), EM_INIT_CONST(0)),
                    "Trying to share variable a/b/x, but specified shape [2] and found shape [3].");
    ck_assert_error(em_get_variable("x", EM_F64, EM_SHAPE(3), EM_INIT_CONST(0)),
                    "Trying to share variable a/b/x, but specified dtype float64 and found dtype float32.");
    ck_assert_int_eq(em_variable_scope_end(), 0);
    ck_assert_int_eq(em_variable_scope_end(), 0);
    /* The reused variable kept its value: initializers do not run again. */
    ck_assert_tensor(x, EM_F32, EM_SHAPE(3), ((double[]){2, 2, 2}), 0);

    /* AUTO creates what is missing and returns what exists. */
    ck_assert_int_eq(em_variable_scope_begin("auto", EM_REUSE_AUTO), 0);
    em_tensor *y = em_get_variable("y", EM_F64, EM_SHAPE(2), EM_INIT_CONST(1));
    ck_assert_ptr_nonnull(y);
    ck_assert_ptr_eq(em_get_variable("y", EM_F64, EM_SHAPE(2), EM_INIT_CONST(5)), y);
    ck_assert_tensor(y, EM_F64, EM_SHAPE(2), ((double[]){1, 1}), 0);
    ck_assert_int_eq(em_variable_scope_end(), 0);

    /* em_reuse_variables at top level lasts until the variables are released. */
    em_reuse_variables();
    ck_assert_ptr_eq(em_get_variable("auto/y", EM_F64, EM_SHAPE(2), EM_INIT_CONST(0)), y);
    ck_assert_error(em_get_variable("new", EM_F64, EM_SHAPE(2), EM_INIT_CONST(0)), "Variable new does not exist");
    em_variables_release();
    ck_assert_ptr_nonnull(em_get_variable("new", EM_F64, EM_SHAPE(2), EM_INIT_CONST(0)));
    ck_assert_fails(em_variable_scope_begin("bad", (em_reuse)7), "invalid reuse value 7");
}
END_TEST

START_TEST(test_initializers_fixed) {
    em_tensor *c = em_get_variable("c", EM_F32, EM_SHAPE(2, 2), EM_INIT_CONST(0.5));
    ck_assert_tensor(c, EM_F32, EM_SHAPE(2, 2), ((double[]){0.5, 0.5, 0.5, 0.5}), 0);
    em_tensor *z = em_get_variable("z", EM_I32, EM_SHAPE(3), (em_initializer){.kind = EM_INIT_ZEROS});
    ck_assert_tensor(z, EM_I32, EM_SHAPE(3), ((double[]){0, 0, 0}), 0);
    em_tensor *o = em_get_variable("o", EM_F64, EM_SHAPE0, (em_initializer){.kind = EM_INIT_ONES});
    ck_assert_tensor(o, EM_F64, EM_SHAPE0, ((double[]){1}), 0);
    em_tensor *e = em_get_variable("empty", EM_F32, EM_SHAPE(0, 4), EM_INIT_CONST(3));
    ck_assert_int_eq(em_numel(e), 0);
    /* The seed's tf.get_variable("matrix", initializer=tf.constant([[1, 2], [3, 4]])). */
    em_tensor *val = em_tensor_from(EM_I32, EM_SHAPE(2, 2), (int32_t[]){1, 2, 3, 4});
    em_tensor *m = em_get_variable("matrix", EM_I32, (em_shape){.ndim = -1}, EM_INIT_FROM(val));
    ck_assert_tensor(m, EM_I32, EM_SHAPE(2, 2), ((double[]){1, 2, 3, 4}), 0);
    /* The variable holds a copy. */
    ck_assert_ptr_ne(em_data(m), em_data(val));
    ck_assert_error(em_get_variable("m2", EM_F32, EM_SHAPE(2, 2), EM_INIT_FROM(val)),
                    "Variable m2 is float32 [2,2] but its initial value is int32 [2,2]");
    ck_assert_error(em_get_variable("m3", EM_I32, EM_SHAPE(4), EM_INIT_FROM(val)),
                    "Variable m3 is int32 [4] but its initial value is int32 [2,2]");
    ck_assert_error(em_get_variable("m4", EM_I32, EM_SHAPE(4), EM_INIT_FROM(NULL)), "initial value is NULL");
    ck_assert_error(em_get_variable("noshape", EM_F32, (em_shape){.ndim = -1}, EM_INIT_CONST(1)), "needs a shape");
    ck_assert_error(em_get_variable("neg", EM_F32, EM_SHAPE(2, -1), EM_INIT_CONST(1)),
                    "negative dimension in shape [2,-1]");
    ck_assert_error(em_get_variable("r", EM_I32, EM_SHAPE(2), EM_INIT_NORMAL(0, 1)),
                    "a random initializer needs float32 or float64, not int32");
    /* Failed creations register nothing. */
    ck_assert_int_eq(em_global_variables(NULL, 0), 5);
}
END_TEST

static void moments(em_tensor *t, double *mean, double *sd, double *lo, double *hi) {
    int64_t n = em_numel(t);
    const float *p = em_data(t);
    double s = 0, s2 = 0;
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        s += p[i];
        s2 += (double)p[i] * p[i];
        if (p[i] < *lo) *lo = p[i];
        if (p[i] > *hi) *hi = p[i];
    }
    *mean = s / (double)n;
    *sd = sqrt(s2 / (double)n - *mean * *mean);
}

START_TEST(test_initializers_random) {
    double mean, sd, lo, hi;
    em_tensor *n = em_get_variable("n", EM_F32, EM_SHAPE(200, 200), EM_INIT_NORMAL(1, 2));
    moments(n, &mean, &sd, &lo, &hi);
    ck_assert_double_eq_tol(mean, 1, 0.05);
    ck_assert_double_eq_tol(sd, 2, 0.05);

    em_tensor *u = em_get_variable("u", EM_F32, EM_SHAPE(200, 200), EM_INIT_UNIFORM(-3, 1));
    moments(u, &mean, &sd, &lo, &hi);
    ck_assert(lo >= -3 && hi < 1 && lo < -2.99 && hi > 0.99);
    ck_assert_double_eq_tol(mean, -1, 0.03);

    em_tensor *t = em_get_variable("t", EM_F32, EM_SHAPE(200, 200), EM_INIT_TRUNC_NORMAL(0, 0.5));
    moments(t, &mean, &sd, &lo, &hi);
    ck_assert(lo >= -1.0 && hi <= 1.0);
    ck_assert_double_eq_tol(sd, 0.5 * 0.8796, 0.01);

    /* Glorot uniform on MNIST's first layer: limit sqrt(6 / (784 + 500)), variance limit^2 / 3. */
    double limit = sqrt(6.0 / 1284);
    em_tensor *g = em_get_variable("g", EM_F32, EM_SHAPE(784, 500), EM_INIT_GLOROT);
    moments(g, &mean, &sd, &lo, &hi);
    ck_assert(lo >= -limit && hi <= limit && hi > 0.999 * limit && lo < -0.999 * limit);
    ck_assert_double_eq_tol(sd, limit / sqrt(3), 0.002);

    /* A conv filter HWIO [5,5,32,64]: fan_in = 25*32 = 800, fan_out = 25*64 = 1600. */
    em_tensor *gc = em_get_variable("gc", EM_F32, EM_SHAPE(5, 5, 32, 64), EM_INIT_GLOROT);
    moments(gc, &mean, &sd, &lo, &hi);
    ck_assert(hi <= 0.05 && hi > 0.0499 && lo >= -0.05);
    /* He normal: stddev sqrt(2 / fan_in) = 0.05 after truncation; glorot normal sqrt(2 / 2400). */
    em_tensor *he = em_get_variable("he", EM_F32, EM_SHAPE(5, 5, 32, 64), EM_INIT_HE);
    moments(he, &mean, &sd, &lo, &hi);
    ck_assert_double_eq_tol(sd, 0.05, 0.001);
    ck_assert(hi <= 2 * 0.05 / 0.8796 + 1e-6);
    em_tensor *gn = em_get_variable("gn", EM_F64, EM_SHAPE(5, 5, 32, 64), EM_INIT_GLOROT_N);
    em_tensor *gn32 = em_cast(gn, EM_F32);
    moments(gn32, &mean, &sd, &lo, &hi);
    ck_assert_double_eq_tol(sd, sqrt(2.0 / 2400), 0.0006);
    ck_assert_double_eq_tol(mean, 0, 0.0005);
}
END_TEST

START_TEST(test_initializers_seeded) {
    em_initializer init = EM_INIT_GLOROT;
    init.seed = 42;
    em_set_seed(7);
    em_tensor *expect_next = em_random_normal(EM_F32, EM_SHAPE(4), 0, 1);
    em_set_seed(7);
    em_tensor *a = em_get_variable("a", EM_F32, EM_SHAPE(10, 20), init);
    em_tensor *b = em_get_variable("b", EM_F32, EM_SHAPE(10, 20), init);
    /* Seeded draws leave the thread's stream where it was. */
    em_tensor *next = em_random_normal(EM_F32, EM_SHAPE(4), 0, 1);
    ck_assert_mem_eq(em_data(next), em_data(expect_next), 4 * sizeof(float));
    ck_assert_mem_eq(em_data(a), em_data(b), 200 * sizeof(float));
    init.seed = 43;
    em_tensor *c = em_get_variable("c", EM_F32, EM_SHAPE(10, 20), init);
    ck_assert(memcmp(em_data(a), em_data(c), 200 * sizeof(float)) != 0);
    /* The same values in a fresh thread state, and the same as em_set_seed(42) then drawing. */
    const float first = ((const float *)em_data(a))[0];
    em_shutdown();
    init.seed = 42;
    em_tensor *d = em_get_variable("a", EM_F32, EM_SHAPE(10, 20), init);
    ck_assert_float_eq(((const float *)em_data(d))[0], first);
    em_set_seed(42);
    double limit = sqrt(6.0 / 30);
    em_tensor *r = em_random_uniform(EM_F32, EM_SHAPE(10, 20), -limit, limit);
    ck_assert_mem_eq(em_data(r), em_data(d), 200 * sizeof(float));
    /* Unseeded draws follow the thread's stream. */
    em_set_seed(9);
    em_tensor *e1 = em_get_variable("e1", EM_F64, EM_SHAPE(5), EM_INIT_NORMAL(0, 1));
    em_set_seed(9);
    em_tensor *e2 = em_get_variable("e2", EM_F64, EM_SHAPE(5), EM_INIT_NORMAL(0, 1));
    ck_assert_mem_eq(em_data(e1), em_data(e2), 5 * sizeof(double));
}
END_TEST

START_TEST(test_assign) {
    em_tensor *v = em_get_variable("v", EM_F64, EM_SHAPE(2, 3), EM_INIT_CONST(1));
    ck_assert_int_eq(em_assign(v, em_tensor_from(EM_F64, EM_SHAPE(2, 3), (double[]){1, 2, 3, 4, 5, 6})), 0);
    ck_assert_tensor(v, EM_F64, EM_SHAPE(2, 3), ((double[]){1, 2, 3, 4, 5, 6}), 0);
    /* The value broadcasts: a row, a column, a scalar. */
    ck_assert_int_eq(em_assign_add(v, em_tensor_from(EM_F64, EM_SHAPE(3), (double[]){10, 20, 30})), 0);
    ck_assert_tensor(v, EM_F64, EM_SHAPE(2, 3), ((double[]){11, 22, 33, 14, 25, 36}), 0);
    ck_assert_int_eq(em_assign_sub(v, em_tensor_from(EM_F64, EM_SHAPE(2, 1), (double[]){1, 4})), 0);
    ck_assert_tensor(v, EM_F64, EM_SHAPE(2, 3), ((double[]){10, 21, 32, 10, 21, 32}), 0);
    ck_assert_int_eq(em_assign(v, em_scalar(EM_F64, -1)), 0);
    ck_assert_tensor(v, EM_F64, EM_SHAPE(2, 3), ((double[]){-1, -1, -1, -1, -1, -1}), 0);
    /* In place: a tensor read from the variable before sees the update (same storage). */
    const void *before = em_data(v);
    ck_assert_int_eq(em_assign_add(v, v), 0);
    ck_assert_ptr_eq(em_data(v), before);
    ck_assert_tensor(v, EM_F64, EM_SHAPE(2, 3), ((double[]){-2, -2, -2, -2, -2, -2}), 0);
    /* Integers. */
    em_tensor *k = em_get_variable("k", EM_I32, EM_SHAPE(3), EM_INIT_CONST(5));
    ck_assert_int_eq(em_assign_add(k, em_tensor_from(EM_I32, EM_SHAPE(3), (int32_t[]){1, 2, 3})), 0);
    ck_assert_tensor(k, EM_I32, EM_SHAPE(3), ((double[]){6, 7, 8}), 0);
    /* Errors leave the variable unchanged. */
    ck_assert_fails(em_assign(v, em_ones(EM_F32, EM_SHAPE(2, 3))), "assign: value has dtype float32 but variable v is float64");
    ck_assert_fails(em_assign_add(v, em_ones(EM_F64, EM_SHAPE(3, 2))),
                    "assign_add: value of shape [3,2] cannot be broadcast to variable v of shape [2,3]");
    ck_assert_fails(em_assign_sub(v, em_ones(EM_F64, EM_SHAPE(1, 2, 3))), "cannot be broadcast");
    ck_assert_fails(em_assign(em_ones(EM_F64, EM_SHAPE(2)), em_ones(EM_F64, EM_SHAPE(2))),
                    "assign: the target (float64 [2]) is not a variable");
    ck_assert_fails(em_assign(v, NULL), "assign: an input is NULL");
    em_tensor *flag = em_get_variable("flag", EM_BOOL, EM_SHAPE(2), EM_INIT_CONST(0));
    ck_assert_fails(em_assign_add(flag, em_ones(EM_BOOL, EM_SHAPE(2))), "variable flag is bool");
    ck_assert_int_eq(em_assign(flag, em_ones(EM_BOOL, EM_SHAPE0)), 0);
    ck_assert_tensor(flag, EM_BOOL, EM_SHAPE(2), ((double[]){1, 1}), 0);
    ck_assert_tensor(v, EM_F64, EM_SHAPE(2, 3), ((double[]){-2, -2, -2, -2, -2, -2}), 0);
}
END_TEST

START_TEST(test_collections_and_release) {
    int64_t live = em_live_tensors();
    em_tensor *w = em_get_variable("w", EM_F32, EM_SHAPE(2), EM_INIT_CONST(0));
    em_tensor *count = em_get_variable_untrainable("count", EM_I64, EM_SHAPE0, EM_INIT_CONST(0));
    em_tensor *b = em_get_variable("b", EM_F32, EM_SHAPE(2), EM_INIT_CONST(0));
    em_tensor *out[3] = {NULL, NULL, NULL};
    ck_assert_int_eq(em_trainable_variables(out, 3), 2);
    ck_assert_ptr_eq(out[0], w);
    ck_assert_ptr_eq(out[1], b);
    ck_assert_int_eq(em_global_variables(out, 2), 3); /* the whole count, two filled */
    ck_assert_ptr_eq(out[0], w);
    ck_assert_ptr_eq(out[1], count);
    ck_assert(em_is_variable(count));
    ck_assert(!em_is_variable(em_ones(EM_F32, EM_SHAPE0)));
    ck_assert_ptr_null(em_variable_name(em_ones(EM_F32, EM_SHAPE0)));
    ck_assert_ptr_eq(em_find_variable("count"), count);
    /* Variables outlive the ownership scopes they were made in. */
    em_scope_begin();
    em_tensor *inner = em_get_variable("inner", EM_F32, EM_SHAPE(3), EM_INIT_CONST(4));
    em_scope_end();
    ck_assert_tensor(inner, EM_F32, EM_SHAPE(3), ((double[]){4, 4, 4}), 0);
    /* A view made before the release keeps the memory alive as a plain tensor. */
    em_tensor *kept = em_keep(em_reshape(inner, EM_SHAPE(3, 1)));
    em_variables_release();
    ck_assert_int_eq(em_global_variables(NULL, 0), 0);
    ck_assert_ptr_null(em_find_variable("w"));
    ck_assert_tensor(kept, EM_F32, EM_SHAPE(3, 1), ((double[]){4, 4, 4}), 0);
    em_release(kept);
    /* Names are free again; many variables grow the name index. */
    char name[32];
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof name, "v%d", i);
        ck_assert_ptr_nonnull(em_get_variable(name, EM_F32, EM_SHAPE(1), EM_INIT_CONST(i)));
    }
    for (int i = 0; i < 300; i += 37) {
        snprintf(name, sizeof name, "v%d", i);
        ck_assert_double_eq(em_item(em_find_variable(name)), i);
    }
    em_variables_release();
    em_shutdown();
    ck_assert_int_eq(em_live_tensors(), live);
}
END_TEST

int main(void) {
    Suite *s = suite_create("variable");
    TCase *tc = tcase_create("variable");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_scoped_names);
    tcase_add_test(tc, test_sharing_way1);
    tcase_add_test(tc, test_sharing_way2);
    tcase_add_test(tc, test_conv_relu_without_scopes);
    tcase_add_test(tc, test_reuse_rules);
    tcase_add_test(tc, test_initializers_fixed);
    tcase_add_test(tc, test_initializers_random);
    tcase_add_test(tc, test_initializers_seeded);
    tcase_add_test(tc, test_assign);
    tcase_add_test(tc, test_collections_and_release);
    suite_add_tcase(s, tc);
    return em_test_run(s);
}
