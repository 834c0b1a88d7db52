/* Your own ops (issue 26): a registered op eagerly, on tapes (nested ones
 * too), in a traced graph, on a "GPU" (the stub plug-in), with several
 * outputs and saved tensors, and its errors; em_custom_gradient;
 * em_gradcheck on built-in and registered ops; ember-bench --load. */
#include "common.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The ops a test registered, unregistered after it: without Check's fork (the sanitizer runs) the
 * tests share one registry. */
static em_op_handle *registered[24];
static int nregistered;

static void teardown(void) {
    while (nregistered) em_op_unregister(registered[--nregistered]); /* an unregistered one says so: ignored */
    em_clear_error();
    em_shutdown();
}

/* ---- the ops under test ---- */

static int same_shape(const em_custom_call *c, em_dtype *dt, em_shape *sh) {
    for (int i = 1; i < c->n; i++)
        if (!em_shape_equal(c->shapes[i], c->shapes[0]) || c->dtypes[i] != c->dtypes[0]) {
            snprintf(c->error, c->error_size, "input %d differs from input 0 in dtype or shape", i);
            return -1;
        }
    if (c->dtypes[0] != EM_F64) {
        snprintf(c->error, c->error_size, "float64 only, not %s", em_dtype_name(c->dtypes[0]));
        return -1;
    }
    for (int k = 0; k < c->nout; k++) dt[k] = EM_F64, sh[k] = c->shapes[0];
    return 0;
}

/* axpy: alpha x + y, alpha an attribute; "fail" (a number) makes the kernel fail. */
static int axpy_cpu(const em_custom_call *c, const void *const *in, void *const *out) {
    if (c->attrs->a[1].number) {
        snprintf(c->error, c->error_size, "the kernel was asked to fail (%s)",
                 c->attrs->a[2].string ? c->attrs->a[2].string : "no reason");
        return -1;
    }
    const double *x = in[0], *y = in[1];
    double *o = out[0], alpha = c->attrs->a[0].number;
    for (int64_t i = 0; i < em_shape_numel(c->out_shapes[0]); i++) o[i] = alpha * x[i] + y[i];
    return 0;
}
static int axpy_gradient(const em_custom_call *c, em_tensor *const *in, em_tensor *const *out,
                         em_tensor *const *gout, em_tensor *const *saved, em_tensor **gin) {
    (void)in, (void)out, (void)saved;
    gin[0] = em_mul_scalar(gout[0], c->attrs->a[0].number);
    gin[1] = em_mul_scalar(gout[0], 1);
    return 0;
}
static const em_custom_op axpy_def = {.name = "test_axpy", .arity = 2, .nattrs = 3,
                                      .attr_names = {"alpha", "fail", "why"}, .flags = EM_CUSTOM_ELEMENTWISE,
                                      .shape = same_shape, .cpu = axpy_cpu, .gradient = axpy_gradient};

/* cube: x^3, its gradient 3 x^2 g written with ops (so differentiable again); `wrong` gives 2 x^2 g. */
static int cube_cpu(const em_custom_call *c, const void *const *in, void *const *out) {
    const double *x = in[0];
    double *o = out[0];
    for (int64_t i = 0; i < em_shape_numel(c->shapes[0]); i++) o[i] = x[i] * x[i] * x[i];
    return 0;
}
static int cube_gradient(const em_custom_call *c, em_tensor *const *in, em_tensor *const *out,
                         em_tensor *const *gout, em_tensor *const *saved, em_tensor **gin) {
    (void)out, (void)saved;
    double k = c->op->user_data ? *(const double *)c->op->user_data : 3;
    gin[0] = em_mul(gout[0], em_mul_scalar(em_square(in[0]), k));
    return 0;
}

/* powers: outputs x^2 and x^3, saving 2x for the gradient. */
static int powers_cpu(const em_custom_call *c, const void *const *in, void *const *out) {
    const double *x = in[0];
    double *sq = out[0], *cu = out[1], *twice = out[2];
    for (int64_t i = 0; i < em_shape_numel(c->shapes[0]); i++)
        sq[i] = x[i] * x[i], cu[i] = x[i] * x[i] * x[i], twice[i] = 2 * x[i];
    return 0;
}
static int powers_gradient(const em_custom_call *c, em_tensor *const *in, em_tensor *const *out,
                           em_tensor *const *gout, em_tensor *const *saved, em_tensor **gin) {
    (void)c;
    gin[0] = em_add(em_mul(gout[0], saved[0]), em_mul(gout[1], em_mul_scalar(out[0], 3)));
    (void)in;
    return 0;
}

/* A "GPU" kernel for the stub plug-in, whose device memory is host memory. */
static int cube_gpu(const em_custom_call *c, const void *const *in, void *const *out, void *stream) {
    ck_assert_ptr_nonnull(stream);
    return cube_cpu(c, in, out);
}

static em_op_handle *reg(em_custom_op def) {
    em_op_handle *h = em_op_register(&def);
    ck_assert_msg(h != NULL, "%s", em_last_error());
    registered[nregistered++] = h;
    return h;
}

static em_tensor *call1(em_op_handle *h, int n, em_tensor *const *in, const em_op_attrs *attrs) {
    em_tensor *y = NULL;
    em_op_call(h, n, in, attrs, 1, &y);
    return y;
}

static em_tensor *vec(int n, const double *v) { return em_tensor_from(EM_F64, (em_shape){1, {n}}, v); }

/* ---- eager, tapes, graphs ---- */

START_TEST(test_registered_op_runs_eagerly_with_attributes) {
    em_op_handle *h = reg(axpy_def);
    ck_assert_ptr_eq(em_op_find("test_axpy"), h);
    ck_assert_str_eq(em_op_definition(h)->attr_names[0], "alpha");
    em_tensor *x = vec(3, V(1, 2, 3)), *y = vec(3, V(10, 20, 30));
    em_op_attrs alpha = {1, {{"alpha", 2.5, NULL}}};
    ck_assert_tensor(call1(h, 2, (em_tensor *[]){x, y}, &alpha), EM_F64, EM_SHAPE(3), V(12.5, 25, 37.5), 0);
    ck_assert_tensor(call1(h, 2, (em_tensor *[]){x, y}, NULL), EM_F64, EM_SHAPE(3), V(10, 20, 30), 0);
    /* its output is an ordinary tensor: it feeds built-in ops */
    ck_assert_tensor(em_sum(call1(h, 2, (em_tensor *[]){x, y}, &alpha), EM_ALL_AXES, false), EM_F64, EM_SHAPE0,
                     V(75), 0);
}
END_TEST

START_TEST(test_registered_op_on_tapes_and_nested_tapes) {
    em_op_handle *axpy = reg(axpy_def);
    em_op_handle *cube = reg((em_custom_op){.name = "test_cube", .arity = 1, .shape = same_shape, .cpu = cube_cpu,
                                            .gradient = cube_gradient});
    em_tensor *x = vec(2, V(1, -2)), *y = vec(2, V(3, 4));
    em_tape *t = em_tape_begin(false);
    em_tensor *z = call1(axpy, 2, (em_tensor *[]){x, y}, &(em_op_attrs){1, {{"alpha", -3, NULL}}});
    em_tensor *g[2];
    ck_assert_int_eq(em_gradients(t, em_mul(z, z), 2, (em_tensor *[]){x, y}, g), 0);
    em_tape_release(t);
    /* d(z^2)/dx = 2 z alpha, d/dy = 2 z; z = (0, 10) */
    ck_assert_tensor(g[0], EM_F64, EM_SHAPE(2), V(0, -60), 1e-12);
    ck_assert_tensor(g[1], EM_F64, EM_SHAPE(2), V(0, 20), 1e-12);

    /* second derivative of x^3 through the gradient rule, recorded by the outer tape: 6x */
    em_tape *outer = em_tape_begin(false), *inner = em_tape_begin(false);
    em_tensor *c = call1(cube, 1, &x, NULL), *dx, *d2x;
    ck_assert_int_eq(em_gradients(inner, c, 1, &x, &dx), 0);
    ck_assert_tensor(dx, EM_F64, EM_SHAPE(2), V(3, 12), 1e-12);
    ck_assert_int_eq(em_gradients(outer, dx, 1, &x, &d2x), 0);
    ck_assert_tensor(d2x, EM_F64, EM_SHAPE(2), V(6, -12), 1e-12);
    em_tape_release(inner);
    em_tape_release(outer);
}
END_TEST

START_TEST(test_several_outputs_and_saved_tensors) {
    em_op_handle *h = reg((em_custom_op){.name = "test_powers", .arity = 1, .nout = 2, .nsaved = 1,
                                         .shape = same_shape, .cpu = powers_cpu, .gradient = powers_gradient});
    em_tensor *x = vec(3, V(1, 2, -1)), *out[2];
    em_tape *t = em_tape_begin(false);
    ck_assert_int_eq(em_op_call(h, 1, &x, NULL, 2, out), 0);
    ck_assert_tensor(out[0], EM_F64, EM_SHAPE(3), V(1, 4, 1), 0);
    ck_assert_tensor(out[1], EM_F64, EM_SHAPE(3), V(1, 8, -1), 0);
    em_tensor *g;
    ck_assert_int_eq(em_gradients(t, em_add(out[0], out[1]), 1, &x, &g), 0); /* 2x + 3x^2 */
    em_tape_release(t);
    ck_assert_tensor(g, EM_F64, EM_SHAPE(3), V(5, 16, 1), 1e-12);
}
END_TEST

START_TEST(test_registered_op_in_a_traced_graph) {
    em_op_handle *h = reg(axpy_def);
    em_tensor *x = em_placeholder(EM_F64, EM_SHAPE(3), "x"), *y = vec(3, V(1, 1, 1));
    ck_assert_int_eq(em_trace_begin(), 0);
    em_tensor *z = em_relu(call1(h, 2, (em_tensor *[]){x, y}, &(em_op_attrs){1, {{"alpha", 2, NULL}}}));
    ck_assert_msg(z != NULL, "%s", em_last_error());
    em_graph *g = em_trace_end();
    ck_assert_ptr_nonnull(g);
    em_tensor *r;
    ck_assert_msg(em_graph_run(g, 1, (em_feed[]){{x, vec(3, V(1, -3, 2))}}, 1, &z, &r) == 0, "%s", em_last_error());
    ck_assert_tensor(r, EM_F64, EM_SHAPE(3), V(3, 0, 5), 0);
    /* an op unregistered since is an error when the graph runs, never a crash */
    ck_assert_int_eq(em_op_unregister(h), 0);
    ck_assert_error(em_graph_run(g, 1, (em_feed[]){{x, vec(3, V(1, 2, 3))}}, 1, &z, &r) ? NULL : r,
                    "test_axpy: the op was unregistered");
    em_graph_release(g);
}
END_TEST

/* Threads registering at once: every distinct name gets its op, and of one name raced for, exactly one. */
static void *register_two(void *arg) {
    em_custom_op d = axpy_def;
    char name[32];
    snprintf(name, sizeof name, "test_thread_%d", (int)(intptr_t)arg);
    d.name = name;
    em_op_handle **got = malloc(2 * sizeof *got);
    got[0] = em_op_register(&d);
    d.name = "test_race";
    got[1] = em_op_register(&d);
    em_shutdown();
    return got;
}

START_TEST(test_registration_is_thread_safe) {
    enum { N = 8 };
    pthread_t th[N];
    for (int i = 0; i < N; i++) ck_assert_int_eq(pthread_create(&th[i], NULL, register_two, (void *)(intptr_t)i), 0);
    int raced = 0;
    for (int i = 0; i < N; i++) {
        em_op_handle **got;
        pthread_join(th[i], (void **)&got);
        ck_assert_ptr_nonnull(got[0]);
        registered[nregistered++] = got[0];
        if (got[1]) raced++, registered[nregistered++] = got[1];
        free(got);
    }
    ck_assert_int_eq(raced, 1);
    ck_assert_ptr_nonnull(em_op_find("test_thread_7"));
}
END_TEST

/* ---- errors ---- */

START_TEST(test_bad_definitions_and_duplicates_are_refused) {
    em_custom_op d = axpy_def;
    d.name = NULL;
    ck_assert_error(em_op_register(&d), "needs a name");
    d = axpy_def, d.cpu = NULL;
    ck_assert_error(em_op_register(&d), "\"test_axpy\": the definition needs a shape rule and a CPU kernel");
    d = axpy_def, d.gradient = NULL;
    ck_assert_error(em_op_register(&d), "no gradient rule");
    d = axpy_def, d.attr_names[2] = "alpha";
    ck_assert_error(em_op_register(&d), "attribute \"alpha\" is declared twice");
    d = axpy_def, d.name = "has space";
    ck_assert_error(em_op_register(&d), "letters, digits");
    d = axpy_def, d.name = "add";
    ck_assert_error(em_op_register(&d), "an op named \"add\" already exists");
    em_op_handle *h = reg(axpy_def);
    ck_assert_error(em_op_register(&axpy_def), "an op named \"test_axpy\" already exists");
    /* unregistered, the name is free again; the old handle is an error, not a crash */
    ck_assert_int_eq(em_op_unregister(h), 0);
    ck_assert_ptr_null(em_op_find("test_axpy"));
    em_tensor *x = vec(1, V(1));
    ck_assert_error(call1(h, 2, (em_tensor *[]){x, x}, NULL), "test_axpy: the op was unregistered");
    ck_assert_error(em_op_unregister(h) ? NULL : x, "unregistered already");
    em_op_handle *again = reg(axpy_def);
    ck_assert_tensor(call1(again, 2, (em_tensor *[]){x, x}, &(em_op_attrs){1, {{"alpha", 1, NULL}}}), EM_F64,
                     EM_SHAPE(1), V(2), 0);
}
END_TEST

START_TEST(test_call_errors_name_the_op) {
    em_op_handle *h = reg(axpy_def);
    em_tensor *x = vec(2, V(1, 2)), *y3 = vec(3, V(1, 2, 3)), *out[2];
    ck_assert_error(call1(h, 1, &x, NULL), "test_axpy: takes 2 inputs, got 1");
    ck_assert_error(em_op_call(h, 2, (em_tensor *[]){x, x}, NULL, 2, out) ? NULL : x, "gives 1 output, asked for 2");
    ck_assert_error(call1(h, 2, (em_tensor *[]){x, y3}, NULL), "test_axpy: input 1 differs from input 0");
    ck_assert_error(call1(h, 2, (em_tensor *[]){x, x}, &(em_op_attrs){1, {{"beta", 1, NULL}}}),
                    "test_axpy: it has no attribute \"beta\" (it declares alpha, fail, why)");
    /* a failing kernel's message becomes the op's error */
    ck_assert_error(call1(h, 2, (em_tensor *[]){x, x}, &(em_op_attrs){2, {{"fail", 1, NULL}, {"why", 0, "a test"}}}),
                    "test_axpy: the kernel was asked to fail (a test)");
    /* NULL propagates, keeping the first error */
    em_tensor *bad = em_matmul(x, x);
    ck_assert_ptr_null(bad);
    ck_assert_error(call1(h, 2, (em_tensor *[]){bad, x}, NULL), "matmul");
    em_op_handle *f32only = reg((em_custom_op){.name = "test_cube_f32", .arity = 1, .shape = same_shape,
                                              .cpu = cube_cpu, .flags = EM_CUSTOM_NO_GRADIENT});
    ck_assert_error(call1(f32only, 1, (em_tensor *[]){em_cast(x, EM_F32)}, NULL), "test_cube_f32: float64 only");
    /* no gradient: a path through it is an error naming it */
    em_tape *t = em_tape_begin(false);
    em_tensor *g;
    ck_assert_error(em_gradients(t, call1(f32only, 1, &x, NULL), 1, &x, &g) ? NULL : x, "test_cube_f32");
    em_tape_release(t);
}
END_TEST

START_TEST(test_missing_gpu_kernel) {
    char path[512];
    const char *build = getenv("EMBER_BUILD");
    snprintf(path, sizeof path, "%s/test/libember_stub.so", build ? build : "build");
    setenv("EMBER_CUDA_LIBRARY", path, 1);
    setenv("EMBER_STUB_GPUS", "1", 1);
    em_op_handle *cpu_only = reg((em_custom_op){.name = "test_cube_cpu", .arity = 1, .shape = same_shape,
                                                .cpu = cube_cpu, .gradient = cube_gradient});
    em_op_handle *both = reg((em_custom_op){.name = "test_cube_gpu", .arity = 1, .shape = same_shape,
                                            .cpu = cube_cpu, .gpu = cube_gpu, .gradient = cube_gradient});
    em_tensor *x = vec(2, V(2, -1));
    ck_assert_msg(em_device_begin("/gpu:0") == 0, "%s", em_last_error());
    ck_assert_error(call1(cpu_only, 1, &x, NULL), "test_cube_cpu: no GPU kernel for this op on /gpu:0");
    em_tensor *y = call1(both, 1, &x, NULL);
    ck_assert_ptr_nonnull(y);
    ck_assert_str_eq(em_tensor_device(y), "/gpu:0");
    ck_assert_tensor(em_to_device(y, "/cpu:0"), EM_F64, EM_SHAPE(2), V(8, -1), 0);
    em_set_soft_placement(true); /* runs on the CPU instead, logged */
    em_tensor *z = call1(cpu_only, 1, &x, NULL);
    ck_assert_ptr_nonnull(z);
    ck_assert_str_eq(em_tensor_device(z), "/cpu:0");
    ck_assert_tensor(z, EM_F64, EM_SHAPE(2), V(8, -1), 0);
    em_set_soft_placement(false);
    em_device_end();
}
END_TEST

/* ---- em_custom_gradient ---- */

/* A straight-through estimator: the forward rounds (sign), the backward passes the gradient through. */
static em_tensor *ste_forward(int n, em_tensor *const *in, void *ctx) {
    (void)n, (void)ctx;
    return em_sign(in[0]);
}
static int ste_backward(int n, em_tensor *const *in, em_tensor *y, em_tensor *gy, em_tensor **gin, void *ctx) {
    (void)n, (void)in, (void)y;
    ++*(int *)ctx;
    gin[0] = em_mul_scalar(gy, 1);
    return 0;
}
/* softplus with the stable gradient sigmoid(x), written with ops: differentiable again. */
static em_tensor *softplus_forward(int n, em_tensor *const *in, void *ctx) {
    (void)n, (void)ctx;
    return em_log1p(em_exp(in[0]));
}
static int softplus_backward(int n, em_tensor *const *in, em_tensor *y, em_tensor *gy, em_tensor **gin, void *ctx) {
    (void)n, (void)y, (void)ctx;
    gin[0] = em_mul(gy, em_sigmoid(in[0]));
    return 0;
}
static int bad_backward(int n, em_tensor *const *in, em_tensor *y, em_tensor *gy, em_tensor **gin, void *ctx) {
    (void)n, (void)in, (void)y, (void)ctx;
    gin[0] = em_sum(gy, EM_ALL_AXES, false); /* the wrong shape */
    return 0;
}

START_TEST(test_custom_gradient) {
    int calls = 0;
    em_tensor *x = vec(3, V(0.3, -2, 0)), *g;
    em_tape *t = em_tape_begin(false);
    em_tensor *y = em_custom_gradient(1, &x, ste_forward, ste_backward, &calls);
    ck_assert_tensor(y, EM_F64, EM_SHAPE(3), V(1, -1, 0), 0);
    ck_assert_int_eq(em_gradients(t, em_mul_scalar(y, 5), 1, &x, &g), 0);
    em_tape_release(t);
    ck_assert_tensor(g, EM_F64, EM_SHAPE(3), V(5, 5, 5), 0);
    ck_assert_int_eq(calls, 1);

    /* traced, the graph replays forward on what is fed */
    em_tensor *p = em_placeholder(EM_F64, EM_SHAPE(3), "p");
    ck_assert_int_eq(em_trace_begin(), 0);
    em_tensor *q = em_custom_gradient(1, &p, ste_forward, ste_backward, &calls);
    ck_assert_msg(q != NULL, "%s", em_last_error());
    em_graph *gr = em_trace_end();
    em_tensor *r;
    ck_assert_msg(em_graph_run(gr, 1, (em_feed[]){{p, vec(3, V(-4, 4, 0.5))}}, 1, &q, &r) == 0, "%s", em_last_error());
    ck_assert_tensor(r, EM_F64, EM_SHAPE(3), V(-1, 1, 1), 0);
    em_graph_release(gr);

    /* on nested tapes: the second derivative of softplus, sigmoid'(x), and a finite gradient at x = 1000 */
    em_tensor *big = vec(3, V(0, 2, 1000)), *d1, *d2;
    em_tape *outer = em_tape_begin(false), *inner = em_tape_begin(false);
    em_tensor *sp = em_custom_gradient(1, &big, softplus_forward, softplus_backward, NULL);
    ck_assert_int_eq(em_gradients(inner, sp, 1, &big, &d1), 0);
    ck_assert_int_eq(em_gradients(outer, d1, 1, &big, &d2), 0);
    em_tape_release(inner);
    em_tape_release(outer);
    double s2 = 1 / (1 + exp(-2.0));
    ck_assert_tensor(d1, EM_F64, EM_SHAPE(3), V(0.5, s2, 1), 1e-12);
    ck_assert_tensor(d2, EM_F64, EM_SHAPE(3), V(0.25, s2 * (1 - s2), 0), 1e-12);

    t = em_tape_begin(false);
    y = em_custom_gradient(1, &x, ste_forward, bad_backward, NULL);
    ck_assert_error(em_gradients(t, y, 1, &x, &g) ? NULL : x, "custom_gradient: backward gave a float64 [] gradient "
                                                              "for input 0, which is float64 [3]");
    em_tape_release(t);
    ck_assert_error(em_custom_gradient(1, &x, NULL, ste_backward, NULL), "custom_gradient: needs");
}
END_TEST

/* A saved graph records a registered op by name, its attributes by name (strings included), and loads
 * where the op is registered again; elsewhere the error names the op and em_op_register. An
 * em_custom_gradient (function pointers of this process) is refused by the saver. */
START_TEST(test_registered_op_in_a_saved_graph) {
    char dir[128], path[192];
    em_test_tmpdir("custom_saved", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/axpy.emg", dir);
    em_op_handle *h = reg(axpy_def);
    em_tensor *x = em_placeholder(EM_F64, EM_SHAPE(3), "x"), *c = vec(3, V(1, 2, 3));
    ck_assert_int_eq(em_trace_begin(), 0);
    em_tensor *y = call1(h, 2, (em_tensor *[]){x, c}, &(em_op_attrs){2, {{"alpha", 2.5, NULL}, {"why", 0, "kept"}}});
    em_tensor *q = em_custom_gradient(1, &x, ste_forward, ste_backward, NULL);
    em_graph *g = em_trace_end();
    ck_assert_msg(g && y && q, "%s", em_last_error());
    ck_assert_msg(em_graph_save(g, path, 1, &y, (const char *[]){"y"}, 0) == 0, "%s", em_last_error());
    ck_assert_error(em_graph_save(g, path, 1, &q, (const char *[]){"q"}, 0) ? NULL : g,
                    "is an em_custom_gradient, whose forward and backward are function pointers");
    em_graph_release(g);

    ck_assert_int_eq(em_op_unregister(h), 0); /* as in a process that never registered it */
    ck_assert_error(em_graph_load(path), "is op 'test_axpy', which this process does not have: register it with "
                                         "em_op_register before loading");

    reg(axpy_def); /* registered again: a new registration, its strings interned anew */
    em_graph *loaded = em_graph_load(path);
    ck_assert_msg(loaded != NULL, "%s", em_last_error());
    em_tensor *out, *fx = em_graph_placeholder(loaded, "x"), *fy = em_graph_fetch(loaded, "y");
    ck_assert_msg(em_graph_run(loaded, 1, (em_feed[]){{fx, vec(3, V(2, -1, 0))}}, 1, &fy, &out) == 0, "%s",
                  em_last_error());
    ck_assert_tensor(out, EM_F64, EM_SHAPE(3), V(6, -0.5, 3), 0);
    em_graph_release(loaded);
    em_test_tmpdir_remove(dir);
}
END_TEST

/* ---- em_gradcheck ---- */

static em_tensor *tanh_of_product(int n, em_tensor *const *in, void *ctx) {
    (void)n, (void)ctx;
    return em_tanh(em_matmul(in[0], in[1]));
}
static em_tensor *through_op(int n, em_tensor *const *in, void *ctx) {
    return n == 2 ? call1(ctx, 2, in, &(em_op_attrs){1, {{"alpha", 0.7, NULL}}}) : call1(ctx, 1, in, NULL);
}

START_TEST(test_gradcheck_builtin_and_registered_ops) {
    em_gradcheck_report rep;
    em_tensor *a = em_test_uniform(EM_SHAPE(3, 4), -1, 1, 1), *b = em_test_uniform(EM_SHAPE(4, 2), -1, 1, 2);
    ck_assert_int_eq(em_gradcheck(tanh_of_product, NULL, 2, (em_tensor *[]){a, b}, NULL, &rep), 0);
    ck_assert(rep.passed && rep.worst < 1e-6 && rep.input >= 0);

    em_op_handle *axpy = reg(axpy_def);
    ck_assert_int_eq(em_gradcheck(through_op, axpy, 2, (em_tensor *[]){a, a}, NULL, &rep), 0);
    em_op_handle *cube = reg((em_custom_op){.name = "test_cube", .arity = 1, .shape = same_shape, .cpu = cube_cpu,
                                            .gradient = cube_gradient});
    em_gradcheck_options few = {.samples = 5};
    ck_assert_int_eq(em_gradcheck(through_op, cube, 1, &a, &few, &rep), 0);

    /* a deliberately wrong gradient (2 x^2 instead of 3 x^2) is reported, with where */
    static const double two = 2;
    em_op_handle *wrong = reg((em_custom_op){.name = "test_cube_wrong", .arity = 1, .shape = same_shape,
                                             .cpu = cube_cpu, .gradient = cube_gradient, .user_data = (void *)&two});
    em_tensor *x = vec(3, V(0.1, 2, -0.5));
    ck_assert_int_eq(em_gradcheck(through_op, wrong, 1, &x, NULL, &rep), 1);
    ck_assert(!rep.passed);
    ck_assert_int_eq(rep.input, 0);
    ck_assert_int_eq(rep.element, 1); /* x = 2: the largest x^2 */
    ck_assert_double_eq_tol(rep.numeric / rep.analytic, 1.5, 1e-6);

    ck_assert_error(em_gradcheck(through_op, cube, 1, (em_tensor *[]){em_cast(x, EM_F32)}, NULL, &rep) ? NULL : x,
                    "gradcheck: input 0 is float32");
}
END_TEST

/* ---- ember-bench --load ---- */

START_TEST(test_ember_bench_loads_and_compares) {
    const char *build = getenv("EMBER_BUILD");
    build = build ? build : "build";
    char mark[] = "/tmp/ember_custom_mark_XXXXXX";
    int fd = mkstemp(mark);
    ck_assert_int_ge(fd, 0);
    close(fd);
    unlink(mark);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "EMBER_TEST_MARK=%s %s/ember-bench --load %s/test/libtestops.so test_scale2 4096 --compare neg --json "
             "--time 0.02 --peak 0 2>&1",
             mark, build, build);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    char out[8192] = "";
    size_t len = fread(out, 1, sizeof out - 1, p);
    out[len] = 0;
    ck_assert_int_eq(pclose(p), 0);
    ck_assert_msg(strstr(out, "{\"op\":\"test_scale2\",\"shape\":\"4096\""), "%s", out);
    ck_assert_msg(strstr(out, "{\"op\":\"neg\",\"shape\":\"4096\""), "%s", out);
    ck_assert_msg(strstr(out, "{\"compare\":\"neg\",\"op\":\"test_scale2\""), "%s", out);
    ck_assert_msg(access(mark, F_OK) == 0, "the library's kernel did not run: %s", out);
    unlink(mark);
    /* without the library, the op is unknown */
    snprintf(cmd, sizeof cmd, "%s/ember-bench test_scale2 4096 >/dev/null 2>&1", build);
    ck_assert_int_ne(system(cmd), 0);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("custom_op");
    TCase *tc = tcase_create("custom_op");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_registered_op_runs_eagerly_with_attributes);
    tcase_add_test(tc, test_registered_op_on_tapes_and_nested_tapes);
    tcase_add_test(tc, test_several_outputs_and_saved_tensors);
    tcase_add_test(tc, test_registered_op_in_a_traced_graph);
    tcase_add_test(tc, test_registration_is_thread_safe);
    tcase_add_test(tc, test_bad_definitions_and_duplicates_are_refused);
    tcase_add_test(tc, test_call_errors_name_the_op);
    tcase_add_test(tc, test_missing_gpu_kernel);
    tcase_add_test(tc, test_custom_gradient);
    tcase_add_test(tc, test_registered_op_in_a_saved_graph);
    tcase_add_test(tc, test_gradcheck_builtin_and_registered_ops);
    tcase_add_test(tc, test_ember_bench_loads_and_compares);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return em_test_run(suite()); }
