/* Threads: everything a model needs (variables, tapes, optimizers, scopes,
 * errors, the random stream) is per thread, so two threads training two
 * independent models at once get bit for bit what one thread gets running
 * them one after the other. `make test TSAN=1` runs this under
 * ThreadSanitizer. */
#include "common.h"

#include <pthread.h>
#include <stdlib.h>

#define STEPS 30

typedef struct model_run {
    uint64_t seed;
    double w[4 * 3 + 3]; /* final weights and biases */
    double loss;
    int rc;
    char error[128];
} model_run;

/* A small softmax classifier on the seed's data, trained with Adam. */
static void train(model_run *r) {
    em_set_seed(r->seed);
    em_tensor *w = em_get_variable("dense/w", EM_F64, EM_SHAPE(4, 3), EM_INIT_GLOROT);
    em_tensor *b = em_get_variable("dense/b", EM_F64, EM_SHAPE(3), EM_INIT_CONST(0));
    em_optimizer *opt = em_adam(0.05, 0.9, 0.999, 1e-8);
    em_tensor *x = em_keep(em_random_normal(EM_F64, EM_SHAPE(16, 4), 0, 1));
    em_tensor *labels = em_keep(em_argmax(em_random_uniform(EM_F64, EM_SHAPE(16, 3), 0, 1), 1));
    r->rc = w && b && opt && x && labels ? 0 : -1;
    for (int step = 0; step < STEPS && r->rc == 0; step++) {
        em_scope_begin();
        em_tape *tape = em_tape_begin(false);
        em_tensor *logits = em_bias_add(em_matmul(x, w), b);
        em_tensor *loss = em_mean(em_sparse_softmax_cross_entropy_with_logits(labels, logits), EM_ALL_AXES, false);
        r->rc = em_minimize(opt, tape, loss, 0, NULL);
        r->loss = em_item(loss);
        em_tape_release(tape);
        em_scope_end();
    }
    if (r->rc == 0) {
        r->rc = em_copy_out(w, r->w, 12 * sizeof(double));
        if (r->rc == 0) r->rc = em_copy_out(b, r->w + 12, 3 * sizeof(double));
    }
    if (r->rc) snprintf(r->error, sizeof r->error, "%s", em_last_error() ? em_last_error() : "?");
    em_optimizer_release(opt);
    em_release(x);
    em_release(labels);
    em_shutdown();
}

static void *train_thread(void *arg) {
    train(arg);
    return NULL;
}

START_TEST(test_two_threads_train_like_one) {
    model_run seq[2] = {{.seed = 11}, {.seed = 12}}, par[2] = {{.seed = 11}, {.seed = 12}};
    train(&seq[0]);
    train(&seq[1]);
    pthread_t t[2];
    for (int i = 0; i < 2; i++) ck_assert_int_eq(pthread_create(&t[i], NULL, train_thread, &par[i]), 0);
    for (int i = 0; i < 2; i++) ck_assert_int_eq(pthread_join(t[i], NULL), 0);
    for (int i = 0; i < 2; i++) {
        ck_assert_msg(seq[i].rc == 0 && par[i].rc == 0, "training failed: %s %s", seq[i].error, par[i].error);
        ck_assert_mem_eq(seq[i].w, par[i].w, sizeof seq[i].w);
        ck_assert_double_eq(seq[i].loss, par[i].loss);
        ck_assert_double_lt(seq[i].loss, 1.0); /* it learned something */
    }
    /* different seeds, different models: the threads did not share state */
    ck_assert(memcmp(par[0].w, par[1].w, sizeof par[0].w) != 0);
}
END_TEST

/* An error on one thread is not seen by another. */
static void *fail_thread(void *arg) {
    (void)arg;
    em_tensor *r = em_matmul(em_zeros(EM_F32, EM_SHAPE(2, 3)), em_zeros(EM_F32, EM_SHAPE(4, 1)));
    bool ok = r == NULL && em_last_error() != NULL;
    em_shutdown();
    return ok ? (void *)1 : NULL;
}

START_TEST(test_errors_are_per_thread) {
    pthread_t t;
    void *ok = NULL;
    ck_assert_int_eq(pthread_create(&t, NULL, fail_thread, NULL), 0);
    ck_assert_int_eq(pthread_join(t, &ok), 0);
    ck_assert_ptr_nonnull(ok);
    ck_assert_ptr_null(em_last_error());
    em_shutdown();
}
END_TEST

int main(void) {
    Suite *s = suite_create("threads");
    TCase *tc = tcase_create("threads");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_two_threads_train_like_one);
    tcase_add_test(tc, test_errors_are_per_thread);
    suite_add_tcase(s, tc);
    return em_test_run(s);
}
