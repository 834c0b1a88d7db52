/* The misuse catalogue, docs/bad_input.md: one test per row, each asserting
 * the exact error text a user gets. */
#include "common.h"
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void teardown(void) { em_shutdown(); }

/* Asserts the pending error is exactly `text`, then clears it. */
#define ck_assert_error_is(text)                                                      \
    do {                                                                              \
        ck_assert_ptr_nonnull(em_last_error());                                       \
        ck_assert_str_eq(em_last_error(), (text));                                    \
        em_clear_error();                                                             \
    } while (0)

START_TEST(test_shapes) {
    em_tensor *a = em_zeros(EM_F32, EM_SHAPE(2, 3));
    ck_assert_ptr_null(em_add(a, em_zeros(EM_F32, EM_SHAPE(4))));
    ck_assert_error_is("add: shapes cannot be broadcast together: [2,3] vs [4]");
    ck_assert_ptr_null(em_matmul(a, em_zeros(EM_F32, EM_SHAPE(4, 1))));
    ck_assert_error_is("matmul: inner dimensions differ: [2,3] x [4,1]");
    ck_assert_ptr_null(em_reshape(a, EM_SHAPE(4, 2)));
    ck_assert_error_is("reshape: cannot reshape [2,3] (6 elements) into [4,2]");
    ck_assert_ptr_null(em_sum(a, EM_AXES(2), false));
    ck_assert_error_is("sum: axis 2 is out of range for input of shape [2,3] (rank 2)");
}
END_TEST

START_TEST(test_bad_shapes) {
    ck_assert_ptr_null(em_zeros(EM_F32, EM_SHAPE(2, -3)));
    ck_assert_error_is("tensor: negative dimension -3 in shape [2,-3]");
    ck_assert_ptr_null(em_zeros(EM_F32, ((em_shape){.ndim = 9})));
    ck_assert_error_is("tensor: rank 9 is outside 0..8");
    ck_assert_ptr_null(em_zeros(EM_F32, EM_SHAPE(1LL << 40, 1LL << 40)));
    ck_assert_error_is("tensor: shape too large: the element count overflows");
    /* the count alone (issue 21): an overflow, even one that wraps to 0, is an error */
    ck_assert_int_eq(em_shape_numel(EM_SHAPE(1LL << 40, 1LL << 40)), -1);
    ck_assert_error_is("shape_numel: the element count of [1099511627776,1099511627776] overflows int64");
    ck_assert_int_eq(em_shape_numel(EM_SHAPE(1LL << 32, 1LL << 32)), -1);
    ck_assert_error_is("shape_numel: the element count of [4294967296,4294967296] overflows int64");
    ck_assert_int_eq(em_shape_numel(EM_SHAPE(-1, 4)), -1);
    ck_assert_error_is("shape_numel: dimension 0 of [-1,4] is negative (an unknown size has no element count)");
    ck_assert_int_eq(em_shape_numel(((em_shape){.ndim = 9})), -1);
    ck_assert_error_is("shape_numel: rank 9 is outside 0..8");
    ck_assert_int_eq(em_shape_numel(EM_SHAPE(1LL << 40, 0, 1LL << 40)), 0);
    ck_assert_int_eq(em_shape_numel(EM_SHAPE(INT64_MAX, 1)), INT64_MAX);
    ck_assert_int_eq(em_shape_numel(EM_SHAPE(1LL << 31, 1LL << 31, 2)), -1); /* 2^63 */
    em_clear_error();
    ck_assert_int_eq(em_shape_numel(EM_SHAPE0), 1);
    /* sizes near INT64_MAX are refused, not overflowed */
    em_tensor *x = em_zeros(EM_F32, EM_SHAPE(2));
    ck_assert_ptr_null(em_slice(x, (int64_t[]){1}, (int64_t[]){INT64_MAX}));
    ck_assert_ptr_nonnull(strstr(em_last_error(), "out of bounds"));
    em_clear_error();
    ck_assert_ptr_null(em_tile(x, (int64_t[]){INT64_MAX}));
    ck_assert_error_is("tile: multiples [9223372036854775807] overflow axis 0 of input [2]");
    ck_assert_ptr_null(em_pad(x, (int64_t[]){INT64_MAX, 1}, 0));
    ck_assert_error_is("pad: pads [9223372036854775807,1] overflow axis 0 of input [2]");
    ck_assert_ptr_null(em_arange(EM_F32, 0, 1e300, 1e-300));
    ck_assert_ptr_nonnull(strstr(em_last_error(), "are too many"));
    em_clear_error();
}
END_TEST

START_TEST(test_dtypes) {
    em_tensor *a = em_zeros(EM_F32, EM_SHAPE(2, 3));
    ck_assert_ptr_null(em_add(a, em_zeros(EM_F64, EM_SHAPE(2, 3))));
    ck_assert_error_is("add: dtypes differ: float32 [2,3] vs float64 [2,3] (convert one with em_cast)");
    ck_assert_ptr_null(em_sqrt(em_zeros(EM_I32, EM_SHAPE(2))));
    ck_assert_error_is("sqrt: dtype int32 (input of shape [2]) is not supported; expected float32, float64, bfloat16, float16");
    ck_assert_ptr_null(em_zeros((em_dtype)42, EM_SHAPE(2)));
    ck_assert_error_is("tensor: invalid dtype 42");
    /* out-of-range values saturate when they become integers (NaN becomes 0) */
    ck_assert_double_eq(em_item(em_scalar(EM_U8, -4)), 0);
    ck_assert_double_eq(em_item(em_scalar(EM_U8, 300)), 255);
    ck_assert_double_eq(em_item(em_scalar(EM_I32, NAN)), 0);
    ck_assert_double_eq(em_item(em_scalar(EM_I32, 1e300)), INT32_MAX);
}
END_TEST

START_TEST(test_devices) {
    ck_assert_int_eq(em_device_begin("/tpu:0"), -1);
    ck_assert_error_is("device_begin: '/tpu:0' is not a device name (write \"/cpu:0\", \"/gpu:0\" or \"/device:GPU:1\")");
    ck_assert_int_eq(em_device_begin(NULL), -1);
    ck_assert_error_is("device_begin: device name is NULL");
    ck_assert_int_eq(em_device_end(), -1);
    ck_assert_error_is("device_end: no device scope is open");
    ck_assert_int_eq(em_set_cpu_devices(2, 1), 0);
    /* The end of the message says why: no CUDA plug-in, no driver, no GPU
     * (each saying what was looked for and where), or CUDA seeing fewer GPUs. */
    ck_assert_int_eq(em_device_begin("/device:GPU:31"), -1);
    ck_assert_ptr_nonnull(strstr(em_last_error(),
                                 "device_begin: no device '/device:GPU:31' in this process (it has /cpu:0, /cpu:1"));
    ck_assert_ptr_nonnull(strstr(em_last_error(), "; turn on soft placement to fall back to /cpu:0"));
    ck_assert(strstr(em_last_error(), "): the CUDA plug-in ") || strstr(em_last_error(), ": CUDA sees "));
    em_clear_error();
    em_tensor *a = em_zeros(EM_F32, EM_SHAPE(2));
    ck_assert_int_eq(em_device_begin("/cpu:1"), 0);
    em_tensor *b = em_zeros(EM_F32, EM_SHAPE(2));
    ck_assert_int_eq(em_device_end(), 0);
    ck_assert_ptr_null(em_add(a, b));
    ck_assert_error_is("add: input 0 is on /cpu:0 but input 1 is on /cpu:1: copy one with em_to_device, place the op "
                       "with em_device_begin, or turn on soft placement");
    ck_assert_int_eq(em_set_cpu_devices(1, 0), -1);
    ck_assert_error_is("set_cpu_devices: cannot go from 2 devices to 1 while 2 tensors are alive (they may live on the "
                       "devices removed): release them (or call em_shutdown) first");
    em_shutdown();
    ck_assert_int_eq(em_set_cpu_devices(1, 0), 0);
}
END_TEST

START_TEST(test_null_inputs) {
    em_tensor *a = em_zeros(EM_F32, EM_SHAPE(2));
    ck_assert_ptr_null(em_relu(em_add(a, NULL)));
    ck_assert_error_is("add: an input is NULL (an earlier call failed or a tensor was not created)");
    /* the first error wins: a chain is checked once at the end */
    ck_assert_ptr_null(em_relu(em_matmul(a, a)));
    ck_assert_ptr_nonnull(strstr(em_last_error(), "matmul:"));
    em_clear_error();
    ck_assert_int_eq(em_save_npy("/tmp/x.npy", NULL), -1);
    ck_assert_error_is("save_npy: an input is NULL (an earlier call failed or a tensor was not created)");
}
END_TEST

START_TEST(test_released_tensor) {
    /* Use after em_release is undefined, as with free(). What helps: the live
     * count, and SANITIZE=1 builds, which free blocks at once so that
     * AddressSanitizer reports a use after release. */
    int64_t base = em_live_tensors();
    em_scope_begin();
    em_tensor *t = em_keep(em_zeros(EM_F32, EM_SHAPE(4)));
    ck_assert_int_eq(em_scope_end(), 0);
    ck_assert_int_eq(em_live_tensors(), base + 1); /* kept past its scope */
    em_release(t);
    ck_assert_int_eq(em_live_tensors(), base);
    /* a scope releases what it owns at its end */
    em_scope_begin();
    em_zeros(EM_F32, EM_SHAPE(4));
    ck_assert_int_eq(em_live_tensors(), base + 1);
    ck_assert_int_eq(em_scope_end(), 0);
    ck_assert_int_eq(em_live_tensors(), base);
    ck_assert_int_eq(em_scope_end(), -1);
    ck_assert_error_is("scope_end: no scope is open (em_scope_end without em_scope_begin)");
}
END_TEST

START_TEST(test_element_access) {
    em_tensor *a = em_zeros(EM_F32, EM_SHAPE(2, 3));
    ck_assert(isnan(em_item(a)));
    ck_assert_error_is("item: tensor of shape [2,3] has 6 elements, not 1");
    ck_assert(isnan(em_get(a, (int64_t[]){5, 0})));
    ck_assert_error_is("get: index out of range for shape [2,3] (axis 0)");
    em_tensor *tuples = em_tensor_from(EM_I64, EM_SHAPE(2, 2), (int64_t[]){1, 2, 2, 0});
    ck_assert_ptr_null(em_gather_nd(a, tuples));
    ck_assert_error_is("gather_nd: index tuple 1 (2,0) is out of range for [2,3]");
    em_tensor *values = a, *positions = a;
    ck_assert_int_eq(em_top_k(a, 4, true, &values, &positions), -1);
    ck_assert_ptr_null(values);
    ck_assert_error_is("top_k: k = 4 is outside [0, 3], the last dimension of x [2,3]");
    float small[2];
    ck_assert_int_eq(em_copy_out(a, small, sizeof small), -1);
    ck_assert_error_is("copy_out: destination holds 8 bytes but the float32 tensor [2,3] needs 24");
}
END_TEST

START_TEST(test_placeholders) {
    em_tensor *p = em_placeholder(EM_F32, EM_SHAPE(-1, 3), "x");
    ck_assert_ptr_null(em_add_scalar(p, 1));
    ck_assert_error_is("add: input 0 is a placeholder with no value: it must be fed (run a traced graph with "
                       "em_graph_run and a feed, or give it an example with em_placeholder_set)");
    ck_assert_int_eq(em_trace_begin(), 0);
    em_tensor *y = em_relu(p);
    em_graph *g = em_trace_end();
    em_tensor *out, *other = em_zeros(EM_F32, EM_SHAPE(1));
    ck_assert_int_eq(em_graph_run(g, 0, NULL, 1, &y, &out), -1);
    ck_assert_error_is("graph_run: placeholder 'x' must be fed: node 'relu_0' needs it");
    ck_assert_int_eq(em_graph_run(g, 0, NULL, 1, &p, &out), -1);
    ck_assert_error_is("graph_run: placeholder 'x' must be fed: fetch 0 is that placeholder");
    ck_assert_int_eq(em_graph_run(g, 1, (em_feed[]){{p, em_zeros(EM_F64, EM_SHAPE(2, 3))}}, 1, &y, &out), -1);
    ck_assert_error_is("graph_run: placeholder 'x' is float32 [-1,3] but was fed float64 [2,3]");
    em_tensor *v = em_zeros(EM_F32, EM_SHAPE(2, 3));
    ck_assert_int_eq(em_graph_run(g, 2, (em_feed[]){{p, v}, {p, v}}, 1, &y, &out), -1);
    ck_assert_error_is("graph_run: placeholder 'x' is fed twice (feeds 0 and 1)");
    ck_assert_int_eq(em_graph_run(g, 0, NULL, 1, &other, &out), -1);
    ck_assert_error_is("graph_run: fetch 0 is not a tensor of this graph");
    em_graph_release(g);
    ck_assert_ptr_null(em_trace_end());
    ck_assert_error_is("trace_end: no trace is open on this thread (em_trace_begin first)");
}
END_TEST

START_TEST(test_variable_scopes) {
    ck_assert_ptr_nonnull(em_get_variable("w", EM_F32, EM_SHAPE(3), EM_INIT_CONST(0)));
    ck_assert_ptr_null(em_get_variable("w", EM_F32, EM_SHAPE(3), EM_INIT_CONST(0)));
    ck_assert_error_is("get_variable: Variable w already exists, disallowed. Did you mean to set "
                       "reuse=EM_REUSE_TRUE or reuse=EM_REUSE_AUTO in VarScope?");
    ck_assert_int_eq(em_variable_scope_begin("m", EM_REUSE_TRUE), 0);
    ck_assert_ptr_null(em_get_variable("v", EM_F32, EM_SHAPE(3), EM_INIT_CONST(0)));
    ck_assert_error_is("get_variable: Variable m/v does not exist, or was not created with em_get_variable(). "
                       "Did you mean to set reuse=EM_REUSE_AUTO in VarScope?");
    ck_assert_int_eq(em_variable_scope_end(), 0);
    ck_assert_int_eq(em_variable_scope_end(), -1);
    ck_assert_error_is("variable_scope_end: no variable scope is open");
    ck_assert_int_eq(em_name_scope_begin("n"), 0);
    ck_assert_int_eq(em_variable_scope_begin("vs", EM_REUSE_INHERIT), 0);
    ck_assert_int_eq(em_name_scope_end(), -1);
    ck_assert_error_is("name_scope_end: the innermost name scope 'n/vs' belongs to variable scope 'vs': close it "
                       "with em_variable_scope_end");
    ck_assert_int_eq(em_variable_scope_end(), 0);
    ck_assert_int_eq(em_name_scope_end(), 0);
    ck_assert_int_eq(em_assign(em_zeros(EM_F32, EM_SHAPE(3)), em_zeros(EM_F32, EM_SHAPE(3))), -1);
    ck_assert_error_is("assign: the target (float32 [3]) is not a variable: only variables made by "
                       "em_get_variable change in place");
}
END_TEST

START_TEST(test_tapes_and_optimizers) {
    em_tape *t = em_tape_begin(false);
    ck_assert_int_eq(em_gradients(t, em_zeros(EM_I32, EM_SHAPE(1)), 0, NULL, NULL), -1);
    ck_assert_error_is("gradients: y has dtype int32; only float32 and float64 outputs can be differentiated");
    em_tape_release(t);
    t = em_tape_begin(false);
    em_tensor *x = em_ones(EM_F32, EM_SHAPE(2)), *g;
    em_tensor *l = em_sum(em_square(x), EM_ALL_AXES, false);
    ck_assert_int_eq(em_gradients(t, l, 1, &x, &g), 0);
    ck_assert_int_eq(em_gradients(t, l, 1, &x, &g), -1);
    ck_assert_error_is("gradients: this tape was not persistent and has already given gradients (begin it with "
                       "em_tape_begin(true) to ask more than once)");
    em_tape_release(t);
    ck_assert_ptr_null(em_sgd(-1));
    ck_assert_error_is("sgd: learning rate must be in [0, inf), got -1");
}
END_TEST

START_TEST(test_files) {
    ck_assert_ptr_null(em_load_npy("/nonexistent.npy"));
    ck_assert_error_is("load_npy: cannot open /nonexistent.npy: No such file or directory");
    ck_assert_ptr_null(em_load_idx("/tmp"));
    ck_assert_error_is("load_idx: cannot open /tmp: Is a directory");
    ck_assert_int_eq(em_save_npy("/nonexistent/x.npy", em_zeros(EM_F32, EM_SHAPE(1))), -1);
    char want[128]; /* the file is written through a temporary beside it (lib/file.h) */
    snprintf(want, sizeof want, "save_npy: cannot create /nonexistent/x.npy.tmp.%ld: No such file or directory",
             (long)getpid());
    ck_assert_error_is(want);
    ck_assert_int_eq(em_checkpoint_restore("/nonexistent.ckpt"), -1);
    ck_assert_error_is("checkpoint_restore: cannot open /nonexistent.ckpt: No such file or directory");
    /* a corrupt entry count is refused before anything is allocated */
    const char *path = "/tmp/ember-misuse.ckpt";
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fwrite("EMBERCKP\1\0\0\0\377\377\377\377\0\0\0\0", 1, 20, f);
    fclose(f);
    ck_assert_int_eq(em_checkpoint_restore(path), -1);
    ck_assert_error_is("checkpoint_restore: /tmp/ember-misuse.ckpt is truncated or damaged: it declares "
                       "4294967295 entries, more than its 20 bytes can hold");
    remove(path);
}
END_TEST

/* Asserts the pending error is exactly the formatted text, then clears it. */
#define ck_assert_error_fmt(...)                       \
    do {                                               \
        char want_[768];                               \
        snprintf(want_, sizeof want_, __VA_ARGS__);    \
        ck_assert_error_is(want_);                     \
    } while (0)

START_TEST(test_checkpoint_manager) {
    char dir[64], cmd[128];
    snprintf(dir, sizeof dir, "/tmp/ember-misuse-manager-%ld", (long)getpid());
    ck_assert_ptr_null(em_checkpoint_manager_open(NULL, "model", 5));
    ck_assert_error_is("em_checkpoint_manager_open: argument dir is NULL");
    ck_assert_ptr_null(em_checkpoint_manager_open(dir, "a/b", 5));
    ck_assert_error_fmt("em_checkpoint_manager_open: argument prefix 'a/b' has a '/'; it names files in %s, so no "
                        "'/', whitespace or control characters",
                        dir);
    ck_assert_ptr_null(em_checkpoint_manager_open("/proc/self/status", "model", 5));
    ck_assert_error_is("em_checkpoint_manager_open: argument dir: cannot make directory /proc/self/status: Not a "
                       "directory");
    em_checkpoint_manager *m = em_checkpoint_manager_open(dir, "model", 5);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(em_checkpoint_manager_save(NULL, 1), -1);
    ck_assert_error_is("em_checkpoint_manager_save: argument mgr is NULL");
    ck_assert_int_eq(em_checkpoint_manager_save(m, -1), -1);
    ck_assert_error_fmt("em_checkpoint_manager_save: argument step is -1; steps are 0 to 999999999999999999 "
                        "(checkpoints %s/model-<step>)",
                        dir);
    ck_assert_int_eq(em_checkpoint_manager_set_value(m, "", 1), -1);
    ck_assert_error_fmt("em_checkpoint_manager_set_value: argument key is empty (manager of %s/model)", dir);
    double d;
    ck_assert_int_eq(em_checkpoint_manager_get_value(m, "epoch", NULL), -1);
    ck_assert_error_fmt("em_checkpoint_manager_get_value: argument value is NULL for key 'epoch' (manager of "
                        "%s/model)",
                        dir);
    ck_assert_int_eq(em_checkpoint_manager_set_value(m, "epoch", 3), 0);
    const char *str;
    ck_assert_int_eq(em_checkpoint_manager_get_string(m, "epoch", &str), -1);
    ck_assert_error_fmt("em_checkpoint_manager_get_string: key 'epoch' holds a number, not a string (read it with "
                        "em_checkpoint_manager_get_value; manager of %s/model)",
                        dir);
    /* A checkpoint that does not fit the program's variables. */
    ck_assert_int_eq(em_checkpoint_manager_save(m, 1), 0);
    em_get_variable("w", EM_F32, EM_SHAPE(2), EM_INIT_CONST(0));
    ck_assert_int_eq(em_checkpoint_manager_restore_latest(m), -1);
    ck_assert_error_fmt("em_checkpoint_manager_restore_latest: variable w is not in %s/model-1 (it holds 0 "
                        "variables)",
                        dir);
    /* Its directory removed under it. */
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(em_checkpoint_manager_save(m, 2), -1);
    ck_assert_error_fmt("em_checkpoint_manager_save: cannot create %s/model-2.tmp.%ld: No such file or directory",
                        dir, (long)getpid());
    ck_assert_int_eq(em_checkpoint_manager_restore_latest(m), 0); /* nothing there: start fresh */
    ck_assert_int_eq(em_checkpoint_manager_get_value(m, "epoch", &d), 1);
    em_checkpoint_manager_close(m);
    em_checkpoint_manager_close(NULL);
}
END_TEST

static bool fail_all(size_t bytes, void *ctx) {
    (void)bytes;
    (void)ctx;
    return true;
}

START_TEST(test_out_of_memory) {
    /* test/test_oom.c fails each allocation in turn; here the message */
    em_tensor *a = em_ones(EM_F32, EM_SHAPE(2));
    em__set_alloc_fail_hook(fail_all, NULL);
    em_tensor *r = em_add(a, a);
    em__set_alloc_fail_hook(NULL, NULL);
    ck_assert_ptr_null(r);
    ck_assert_ptr_nonnull(strstr(em_last_error(), "out of memory: allocating a tensor"));
    em_clear_error();
    ck_assert_double_eq(em_get(a, (int64_t[]){1}), 1);
}
END_TEST

int main(void) {
    Suite *s = suite_create("misuse");
    TCase *tc = tcase_create("misuse");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_shapes);
    tcase_add_test(tc, test_bad_shapes);
    tcase_add_test(tc, test_dtypes);
    tcase_add_test(tc, test_devices);
    tcase_add_test(tc, test_null_inputs);
    tcase_add_test(tc, test_released_tensor);
    tcase_add_test(tc, test_element_access);
    tcase_add_test(tc, test_placeholders);
    tcase_add_test(tc, test_variable_scopes);
    tcase_add_test(tc, test_tapes_and_optimizers);
    tcase_add_test(tc, test_files);
    tcase_add_test(tc, test_checkpoint_manager);
    tcase_add_test(tc, test_out_of_memory);
    suite_add_tcase(s, tc);
    return em_test_run(s);
}
