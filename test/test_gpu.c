/* What only a GPU has: seeded random streams and every optimizer against the
 * CPU's, memory statistics and out-of-memory errors, errors across devices,
 * CUDA graph replay. (Every op's forward and gradient cases run on the GPU
 * in test_ops.c.) Without a GPU, or in a build without the backend, it says
 * why and exits 77: skipped, not passed. */
#include "common.h"

#include <stdio.h>
#include <string.h>

static void teardown(void) { em_shutdown(); }

/* Seeded random numbers are the CPU's, element for element. */
START_TEST(test_random_streams_match) {
    em_set_seed(42);
    em_tensor *cpu[3] = {em_random_normal(EM_F32, EM_SHAPE(1000), 0, 1),
                         em_random_uniform(EM_F32, EM_SHAPE(1000), -2, 3),
                         em_truncated_normal(EM_F64, EM_SHAPE(1000), 1, 2)};
    em_set_seed(42);
    ck_assert_int_eq(em_device_begin("/gpu:0"), 0);
    em_tensor *gpu[3] = {em_random_normal(EM_F32, EM_SHAPE(1000), 0, 1),
                         em_random_uniform(EM_F32, EM_SHAPE(1000), -2, 3),
                         em_truncated_normal(EM_F64, EM_SHAPE(1000), 1, 2)};
    em_device_end();
    for (int k = 0; k < 3; k++) ck_assert_msg(em_test_max_rel_diff(gpu[k], cpu[k]) < 1e-6, "stream %d differs", k);
}
END_TEST

/* Every optimizer's fused GPU update against the CPU's, five steps. */
START_TEST(test_optimizers_match) {
    for (int kind = 0; kind < 7; kind++) {
        em_variables_release();
        em_tensor *init = em_test_uniform(EM_SHAPE(64, 33), -1, 1, 5);
        em_tensor *grad = em_cast(em_test_uniform(EM_SHAPE(64, 33), -1, 1, 6), EM_F32);
        em_tensor *v[2];
        em_optimizer *opt[2];
        for (int d = 0; d < 2; d++) {
            if (d) em_device_begin("/gpu:0");
            char name[16];
            snprintf(name, sizeof name, "w%d", d);
            v[d] = em_get_variable(name, EM_F32, EM_SHAPE(64, 33), EM_INIT_FROM(em_cast(init, EM_F32)));
            opt[d] = kind == 0 ? em_sgd(0.1)
                     : kind == 1 ? em_momentum(0.1, 0.9, true)
                     : kind == 2 ? em_adagrad(0.1, 0.1)
                     : kind == 3 ? em_adagrad_da(0.1, 0.1, 0.01, 0.01)
                     : kind == 4 ? em_rmsprop(0.01, 0.9, 0.5, 1e-7, true)
                     : kind == 5 ? em_adam(0.01, 0.9, 0.999, 1e-8)
                                 : em_adamw(0.01, 0.9, 0.999, 1e-8, 0.01);
            if (d) em_device_end();
        }
        ck_assert_str_eq(em_tensor_device(v[1]), "/gpu:0");
        em_tensor *ggrad = em_to_device(grad, "/gpu:0");
        for (int s = 0; s < 5; s++) {
            ck_assert_int_eq(em_apply_gradients(opt[0], 1, &grad, &v[0]), 0);
            ck_assert_int_eq(em_apply_gradients(opt[1], 1, &ggrad, &v[1]), 0);
        }
        ck_assert_msg(em_test_max_rel_diff(v[1], v[0]) < 1e-5, "optimizer %d: GPU update differs", kind);
        em_optimizer_release(opt[0]);
        em_optimizer_release(opt[1]);
    }
}
END_TEST

START_TEST(test_memory_and_errors) {
    /* steady state: a loop allocates nothing new from CUDA */
    em_device_memory m0, m1;
    ck_assert_int_eq(em_device_begin("/gpu:0"), 0);
    for (int s = 0; s < 50; s++) {
        em_scope_begin();
        em_tensor *a = em_ones(EM_F32, EM_SHAPE(256, 256));
        em_sum(em_matmul(em_relu(a), a), EM_ALL_AXES, false);
        em_scope_end();
        if (s == 9) ck_assert_int_eq(em_device_memory_stats("/gpu:0", &m0), 0);
    }
    ck_assert_int_eq(em_device_memory_stats("/gpu:0", &m1), 0);
    ck_assert_int_eq(m1.allocations, m0.allocations);
    ck_assert_uint_ge(m1.peak, 256 * 256 * 4);
    /* out of memory: an error saying what was asked, not an abort */
    ck_assert_error(em_zeros(EM_F32, EM_SHAPE(1LL << 40)), "out of GPU memory");
    em_device_end();
    ck_assert_int_eq(em_device_memory_stats("/cpu:0", &m1), -1);
    em_clear_error();
    /* two devices without a scope: an error naming both */
    em_tensor *c = em_ones(EM_F32, EM_SHAPE(3));
    em_tensor *g = em_to_device(c, "/gpu:0");
    ck_assert_error(em_add(g, c), "add: input 0 is on /gpu:0 but input 1 is on /cpu:0");
    /* printing shows the device, as PyTorch does */
    char text[128];
    em_format(g, text, sizeof text);
    ck_assert_str_eq(text, "tensor([1., 1., 1.], dtype=float32, device='/gpu:0')");
}
END_TEST

/* The all-reduce across GPUs (NCCL when built with it) or a GPU and the CPU. */
START_TEST(test_all_reduce) {
    em_tensor *t[2] = {em_tensor_from(EM_F32, EM_SHAPE(3), (float[]){1, 2, 3}),
                       em_tensor_from(EM_F32, EM_SHAPE(3), (float[]){3, 6, 9})};
    t[0] = em_to_device(t[0], "/gpu:0");
    if (em_device_begin("/gpu:1") == 0) { /* two GPUs */
        em_device_end();
        t[1] = em_to_device(t[1], "/gpu:1");
    }
    em_clear_error();
    ck_assert_int_eq(em_all_reduce_mean(2, t), 0);
    for (int i = 0; i < 2; i++) ck_assert_tensor(t[i], EM_F32, EM_SHAPE(3), ((double[]){2, 4, 6}), 0);
}
END_TEST

/* A graph wholly on the GPU replays as one CUDA graph, with eager's results. */
START_TEST(test_graph_replays_as_cuda_graph) {
    em_tensor *x = em_placeholder(EM_F32, EM_SHAPE(-1, 64), "x");
    em_tensor *w = em_cast(em_test_uniform(EM_SHAPE(64, 32), -1, 1, 9), EM_F32);
    ck_assert_int_eq(em_trace_begin(), 0);
    ck_assert_int_eq(em_device_begin("/gpu:0"), 0);
    em_tensor *y = em_softmax(em_tanh(em_matmul(x, w)), -1);
    em_device_end();
    em_graph *g = em_trace_end();
    ck_assert_ptr_nonnull(g);
    em_tensor *xv = em_cast(em_test_uniform(EM_SHAPE(16, 64), -1, 1, 10), EM_F32), *r;
    for (int run = 0; run < 4; run++) ck_assert_int_eq(em_graph_run(g, 1, &(em_feed){x, xv}, 1, &y, &r), 0);
    ck_assert_int_gt(em_graph_get_stats(g).cuda_graph_runs, 0);
    em_tensor *want = em_softmax(em_tanh(em_matmul(xv, w)), -1);
    ck_assert(em_test_max_rel_diff(r, want) < 1e-5);
    em_graph_release(g);
}
END_TEST

int main(void) {
    char why[1024];
    if (!em_test_gpu_present(why, sizeof why)) {
        printf("test_gpu: SKIPPED: %s\n", why);
        return 77;
    }
    Suite *s = suite_create("gpu");
    TCase *tc = tcase_create("gpu");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_random_streams_match);
    tcase_add_test(tc, test_optimizers_match);
    tcase_add_test(tc, test_memory_and_errors);
    tcase_add_test(tc, test_all_reduce);
    tcase_add_test(tc, test_graph_replays_as_cuda_graph);
    suite_add_tcase(s, tc);
    return em_test_run(s);
}
