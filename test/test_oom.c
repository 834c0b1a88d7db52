/* Out of memory: for a representative op of every family, a training step
 * with a tape and Adam, checkpoints and a graph run with a fresh plan, the
 * k-th tensor allocation fails for k = 1, 2, ... until the call succeeds.
 * Every failing call returns NULL / -1 with an "out of memory" error, every
 * live tensor and variable keeps its value, and nothing leaks (the live
 * tensor count comes back; SANITIZE=1 runs this under LeakSanitizer). */
#include "common.h"
#include "internal.h"

#include <stdlib.h>
#include <unistd.h>

typedef struct fail_at {
    int64_t count, k;
} fail_at;

static bool fail_kth(size_t bytes, void *ctx) {
    (void)bytes;
    fail_at *f = ctx;
    return ++f->count == f->k;
}

/* The values every attempt must leave alone, with copies to compare. */
#define MAX_WATCH 8
static em_tensor *watched[MAX_WATCH], *copies[MAX_WATCH];
static int nwatched;

static void watch(em_tensor *t) {
    ck_assert_int_lt(nwatched, MAX_WATCH);
    watched[nwatched] = t;
    copies[nwatched++] = em_keep(em_copy(t));
}

static void check_watched(int64_t k) {
    for (int i = 0; i < nwatched; i++) {
        size_t bytes = (size_t)em_numel(watched[i]) * em_dtype_size(em_tensor_dtype(watched[i]));
        ck_assert_msg(memcmp(em_data(watched[i]), em_data(copies[i]), bytes) == 0,
                      "tensor %d changed by a call that failed at allocation %lld", i, (long long)k);
    }
}

/* A call under test: 0 on success, -1 on failure. */
typedef int (*attempt_fn)(void *ctx);

/* Live tensors that are not variables: a failed first optimizer update may
 * keep the slot variables it made before failing (zeros, which the next
 * update uses as it would have). */
static int64_t live_non_variables(void) { return em_live_tensors() - em_global_variables(NULL, 0); }

/* Fails allocation k = 1, 2, ... until fn succeeds; returns how many
 * allocations the successful call made. */
static int64_t until_success(attempt_fn fn, void *ctx) {
    int64_t base = live_non_variables();
    for (int64_t k = 1;; k++) {
        fail_at f = {0, k};
        em_scope_begin();
        em__set_alloc_fail_hook(fail_kth, &f);
        int rc = fn(ctx);
        em__set_alloc_fail_hook(NULL, NULL);
        if (rc == 0) {
            ck_assert_msg(f.count < k, "call succeeded although allocation %lld failed", (long long)k);
            ck_assert_ptr_null(em_last_error());
            em_scope_end();
            return f.count;
        }
        ck_assert_msg(em_last_error() && strstr(em_last_error(), "out of memory"),
                      "allocation %lld failed, error: %s", (long long)k, em_last_error() ? em_last_error() : "(none)");
        em_clear_error();
        em_scope_end();
        ck_assert_msg(live_non_variables() == base, "allocation %lld failed: %lld tensors leaked", (long long)k,
                      (long long)(live_non_variables() - base));
        check_watched(k);
    }
}

static void setup(void) { nwatched = 0; }

static void teardown(void) {
    for (int i = 0; i < nwatched; i++) em_release(copies[i]);
    nwatched = 0;
    em_shutdown();
}

/* ---- one op per family ---- */

typedef struct op_case {
    em_tensor *in[3];
    em_tensor *(*fn)(em_tensor *const *in);
} op_case;

static int run_op(void *ctx) {
    op_case *c = ctx;
    return c->fn(c->in) ? 0 : -1;
}

static em_tensor *f_elementwise(em_tensor *const *in) { return em_sigmoid(em_add(in[0], in[1])); }
static em_tensor *f_reduce(em_tensor *const *in) { return em_log_sum_exp(in[0], EM_AXES(1), false); }
static em_tensor *f_matmul(em_tensor *const *in) { return em_matmul_t(in[0], in[1], false, true); }
static em_tensor *f_shape(em_tensor *const *in) {
    em_tensor *parts[3];
    if (em_split(em_transpose(in[0], EM_ALL_AXES), 3, 1, parts)) return NULL;
    return em_concat(3, parts, 0);
}
static em_tensor *f_gather(em_tensor *const *in) { return em_gather(in[0], in[2], 0); }
static em_tensor *f_conv(em_tensor *const *in) {
    em_tensor *x = em_reshape(in[0], EM_SHAPE(1, 3, 4, 1));
    em_tensor *w = em_reshape(em_slice(in[0], (int64_t[]){0, 0}, (int64_t[]){2, 2}), EM_SHAPE(2, 2, 1, 1));
    return em_max_pool(em_conv2d(x, w, NULL, EM_PAD_SAME, NULL), (int[]){2, 2}, (int[]){1, 1}, EM_PAD_VALID);
}
static em_tensor *f_loss(em_tensor *const *in) {
    return em_sparse_softmax_cross_entropy_with_logits(in[2], em_slice(in[0], (int64_t[]){0, 0}, (int64_t[]){2, -1}));
}
static em_tensor *f_random(em_tensor *const *in) {
    (void)in;
    return em_dropout(em_truncated_normal(EM_F32, EM_SHAPE(4, 5), 0, 1), 0.5);
}

static void op_family(em_tensor *(*fn)(em_tensor *const *)) {
    op_case c = {{em_test_uniform(EM_SHAPE(3, 4), -1, 1, 1), em_test_uniform(EM_SHAPE(4), -1, 1, 2),
                  em_tensor_from(EM_I64, EM_SHAPE(2), (int64_t[]){2, 0})},
                 fn};
    em_tensor *b = em_test_uniform(EM_SHAPE(5, 4), -1, 1, 3);
    if (fn == f_matmul) c.in[1] = b;
    for (int i = 0; i < 3; i++) watch(c.in[i]);
    ck_assert_int_gt(until_success(run_op, &c), 0);
}

START_TEST(test_oom_elementwise) { op_family(f_elementwise); }
END_TEST
START_TEST(test_oom_reduce) { op_family(f_reduce); }
END_TEST
START_TEST(test_oom_matmul) { op_family(f_matmul); }
END_TEST
START_TEST(test_oom_shape) { op_family(f_shape); }
END_TEST
START_TEST(test_oom_gather) { op_family(f_gather); }
END_TEST
START_TEST(test_oom_conv_pool) { op_family(f_conv); }
END_TEST
START_TEST(test_oom_loss) { op_family(f_loss); }
END_TEST
START_TEST(test_oom_random) { op_family(f_random); }
END_TEST

/* ---- a training step: tape, forward, gradients, Adam ---- */

typedef struct step_ctx {
    em_tensor *w, *b, *x, *y;
    em_optimizer *opt;
} step_ctx;

static int train_step(void *ctx) {
    step_ctx *s = ctx;
    em_tape *tape = em_tape_begin(false);
    em_tensor *pred = em_bias_add(em_matmul(s->x, s->w), s->b);
    em_tensor *loss = em_mean(em_square(em_sub(pred, s->y)), EM_ALL_AXES, false);
    int rc = loss ? em_minimize(s->opt, tape, loss, 0, NULL) : -1;
    em_tape_release(tape);
    return rc;
}

START_TEST(test_oom_training_step) {
    step_ctx s = {em_get_variable("w", EM_F64, EM_SHAPE(3, 2), EM_INIT_CONST(0.5)),
                  em_get_variable("b", EM_F64, EM_SHAPE(2), EM_INIT_CONST(0)),
                  em_keep(em_test_uniform(EM_SHAPE(4, 3), -1, 1, 4)),
                  em_keep(em_test_uniform(EM_SHAPE(4, 2), -1, 1, 5)),
                  em_adam(0.1, 0.9, 0.999, 1e-8)};
    ck_assert_ptr_nonnull(s.opt);
    for (int step = 0; step < 2; step++) { /* the first step makes Adam's slots, the second reuses them */
        nwatched = 0;
        watch(s.w);
        watch(s.b);
        watch(em_optimizer_step_tensor(s.opt));
        ck_assert_int_gt(until_success(train_step, &s), 0);
        ck_assert_int_eq(em_optimizer_step(s.opt), step + 1);
        for (int i = 0; i < 3; i++) em_release(copies[i]);
    }
    nwatched = 0;
    /* the successful steps are those of an undisturbed run */
    em_tensor *w2 = em_keep(em_copy(s.w));
    em_variables_release();
    em_optimizer_release(s.opt);
    s.w = em_get_variable("w", EM_F64, EM_SHAPE(3, 2), EM_INIT_CONST(0.5));
    s.b = em_get_variable("b", EM_F64, EM_SHAPE(2), EM_INIT_CONST(0));
    s.opt = em_adam(0.1, 0.9, 0.999, 1e-8);
    ck_assert_int_eq(train_step(&s), 0);
    ck_assert_int_eq(train_step(&s), 0);
    ck_assert_mem_eq(em_data(s.w), em_data(w2), 6 * sizeof(double));
    em_optimizer_release(s.opt);
    em_release(w2);
    em_release(s.x);
    em_release(s.y);
}
END_TEST

/* ---- checkpoints ---- */

static char ckpt_path[64];

static int save(void *ctx) {
    (void)ctx;
    return em_checkpoint_save(ckpt_path);
}

static int restore(void *ctx) {
    (void)ctx;
    return em_checkpoint_restore(ckpt_path);
}

START_TEST(test_oom_checkpoint) {
    snprintf(ckpt_path, sizeof ckpt_path, "/tmp/ember-oom-%ld.ckpt", (long)getpid());
    em_tensor *v = em_get_variable("v", EM_F32, EM_SHAPE(2, 2), EM_INIT_CONST(3));
    until_success(save, NULL);
    ck_assert_int_eq(em_assign(v, em_zeros(EM_F32, EM_SHAPE0)), 0);
    until_success(restore, NULL);
    ck_assert_double_eq(em_get(v, (int64_t[]){1, 1}), 3);
    unlink(ckpt_path);
}
END_TEST

/* ---- a graph run that makes a new plan ---- */

typedef struct graph_ctx {
    em_graph *g;
    em_tensor *x, *train, *loss;
    em_tensor *value;
} graph_ctx;

static int graph_run(void *ctx) {
    graph_ctx *c = ctx;
    em_tensor *out[2];
    return em_graph_run(c->g, 1, (em_feed[]){{c->x, c->value}}, 2, (em_tensor *[]){c->train, c->loss}, out);
}

/* Making a variable in a device scope: a failed allocation leaves the
 * scope as it was (the variable is made in host memory, with the scoped
 * device set to the CPU for that time). */
static int make_variable(void *ctx) {
    const char *device = ctx;
    em_tensor *v = em_get_variable("v", EM_F32, EM_SHAPE(3, 4), EM_INIT_GLOROT);
    ck_assert_str_eq(em_device_current(), device);
    return v ? 0 : -1;
}

START_TEST(test_oom_variable_device_scope) {
    ck_assert_int_eq(em_set_cpu_devices(2, 1), 0);
    ck_assert_int_eq(em_device_begin("/cpu:1"), 0);
    ck_assert_int_gt(until_success(make_variable, "/cpu:1"), 0);
    ck_assert_int_eq(em_device_end(), 0);
    em_variables_release();
    ck_assert_int_eq(em_set_cpu_devices(1, 0), 0);

    /* In a GPU scope the variable is made on the host first: an allocation
     * that fails there must put the GPU scope back (it once left the CPU
     * set, so that the next op meant for the GPU ran on the CPU). The scope
     * is set as em_device_begin("/gpu:0") sets it; no GPU is touched, since
     * the first allocation fails. */
    int saved = em__scoped_device;
    em__scoped_device = EM_GPU_BASE;
    fail_at f = {0, 1};
    em__set_alloc_fail_hook(fail_kth, &f);
    em_tensor *v = em_get_variable("w", EM_F32, EM_SHAPE(3, 4), EM_INIT_CONST(0));
    em__set_alloc_fail_hook(NULL, NULL);
    int after = em__scoped_device;
    em__scoped_device = saved;
    ck_assert_ptr_null(v);
    ck_assert_msg(em_last_error() && strstr(em_last_error(), "out of memory"), "error: %s",
                  em_last_error() ? em_last_error() : "(none)");
    em_clear_error();
    ck_assert_int_eq(after, EM_GPU_BASE);
    ck_assert_ptr_null(em_find_variable("w"));
}
END_TEST

START_TEST(test_oom_graph_fresh_plan) {
    graph_ctx c = {.x = em_placeholder(EM_F32, EM_SHAPE(-1, 3), "x")};
    em_tensor *w = em_get_variable("gw", EM_F32, EM_SHAPE(3, 1), EM_INIT_CONST(0.25));
    em_optimizer *sgd = em_sgd(0.1);
    ck_assert_int_eq(em_trace_begin(), 0);
    em_tape *tape = em_tape_begin(false);
    c.loss = em_mean(em_square(em_matmul(c.x, w)), EM_ALL_AXES, false);
    em_tape_stop(tape);
    c.train = em_minimize_op(sgd, tape, c.loss, 1, &w);
    em_tape_release(tape);
    c.g = em_trace_end();
    ck_assert_ptr_nonnull(c.g);
    watch(w);
    for (int rows = 2; rows <= 3; rows++) { /* each batch size needs its own plan */
        c.value = em_keep(em_cast(em_test_uniform(EM_SHAPE(rows, 3), -1, 1, 6), EM_F32));
        ck_assert_int_gt(until_success(graph_run, &c), 0);
        em_release(c.value);
        /* the successful run trained w: compare later attempts with that */
        em_release(copies[0]);
        copies[0] = em_keep(em_copy(w));
    }
    ck_assert_int_eq(em_graph_get_stats(c.g).plans, 2);
    em_graph_release(c.g);
    em_optimizer_release(sgd);
}
END_TEST

int main(void) {
    Suite *s = suite_create("oom");
    TCase *tc = tcase_create("oom");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_oom_elementwise);
    tcase_add_test(tc, test_oom_reduce);
    tcase_add_test(tc, test_oom_matmul);
    tcase_add_test(tc, test_oom_shape);
    tcase_add_test(tc, test_oom_gather);
    tcase_add_test(tc, test_oom_conv_pool);
    tcase_add_test(tc, test_oom_loss);
    tcase_add_test(tc, test_oom_random);
    tcase_add_test(tc, test_oom_training_step);
    tcase_add_test(tc, test_oom_checkpoint);
    tcase_add_test(tc, test_oom_graph_fresh_plan);
    tcase_add_test(tc, test_oom_variable_device_scope);
    suite_add_tcase(s, tc);
    return em_test_run(s);
}
