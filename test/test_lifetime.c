/* Lifetimes misused and errors after errors (docs/bad_input.md, issue 21):
 * em_release of what was not kept, tapes held across em_shutdown, the debug
 * mode that recognises freed tensors, and which call owns the error message.
 * Run under SANITIZE=1, the first two show that nothing freed is touched. */
#include "common.h"

#include <string.h>

static void teardown(void) {
    em_set_debug(false);
    em_shutdown();
}

/* Asserts the pending error is exactly `text`, then clears it. */
#define ck_assert_error_is(text)                \
    do {                                        \
        ck_assert_ptr_nonnull(em_last_error()); \
        ck_assert_str_eq(em_last_error(), (text)); \
        em_clear_error();                       \
    } while (0)

START_TEST(test_release_not_kept) {
    int64_t base = em_live_tensors();
    em_scope_begin();
    em_tensor *t = em_ones(EM_F32, EM_SHAPE(2, 3));
    ck_assert_int_eq(em_release(t), -1);
    ck_assert_error_is(
        "release: the float32 tensor [2,3] was not kept: its scope releases it (em_release only undoes em_keep)");
    ck_assert_double_eq(em_item(em_sum(t, EM_ALL_AXES, false)), 6); /* still whole */
    /* kept twice: two releases, and a third is refused while the scope holds it */
    em_tensor *k = em_keep(em_keep(em_ones(EM_F32, EM_SHAPE(2))));
    ck_assert_int_eq(em_release(k), 0);
    ck_assert_int_eq(em_release(k), 0);
    ck_assert_int_eq(em_release(k), -1);
    em_clear_error();
    ck_assert_int_eq(em_scope_end(), 0); /* frees t and k once each */
    ck_assert_int_eq(em_live_tensors(), base);
    ck_assert_int_eq(em_release(NULL), 0);
}
END_TEST

START_TEST(test_release_variable) {
    em_tensor *w = em_get_variable("W", EM_F32, EM_SHAPE(3, 1), EM_INIT_CONST(1));
    ck_assert_int_eq(em_release(w), -1);
    ck_assert_error_is("release: W is a variable: the variable store owns it (em_variables_release frees variables; "
                       "em_release only undoes em_keep)");
    ck_assert_ptr_eq(em_find_variable("W"), w);
    ck_assert_double_eq(em_item(em_sum(w, EM_ALL_AXES, false)), 3);
    /* kept, it outlives em_variables_release as a plain tensor no lookup finds */
    ck_assert_ptr_eq(em_keep(w), w);
    em_variables_release();
    ck_assert_ptr_null(em_find_variable("W"));
    ck_assert_ptr_null(em_variable_name(w));
    ck_assert_double_eq(em_item(em_sum(w, EM_ALL_AXES, false)), 3);
    ck_assert_int_eq(em_release(w), 0);
    /* a new W is a new variable */
    em_tensor *w2 = em_get_variable("W", EM_F32, EM_SHAPE(2), EM_INIT_CONST(5));
    ck_assert_ptr_eq(em_find_variable("W"), w2);
}
END_TEST

START_TEST(test_tape_after_shutdown) {
    em_tape *tape = em_tape_begin(true);
    em_tensor *x = em_scalar(EM_F64, 2);
    em_mul(x, x); /* recorded: the tape holds x and x*x */
    em_shutdown();
    x = em_scalar(EM_F64, 3);
    em_tensor *g[1];
    ck_assert_int_eq(em_gradients(tape, em_mul(x, x), 1, &x, g), -1);
    ck_assert_error_is("gradients: the tape was closed by em_shutdown (its records went with the thread's tensors): "
                       "begin a new tape");
    em_tape_stop(tape);
    ck_assert_int_eq(em_tape_release(tape), 0);
    ck_assert_int_eq(em_tape_release(tape), -1);
    ck_assert_error_is("tape_release: not a tape of this thread (released already, or begun on another thread)");
    /* a tape left open at em_shutdown and never released is no leak either (LeakSanitizer) */
    em_tape_begin(false);
}
END_TEST

START_TEST(test_debug_mode) {
    em_set_debug(true);
    em_tensor *a = em_ones(EM_F32, EM_SHAPE(2, 2));
    em_scope_begin();
    em_tensor *t = em_matmul(a, a);
    ck_assert_int_eq(em_scope_end(), 0);
    ck_assert_ptr_null(em_add(t, t));
    ck_assert_error_is("add: input 0 was released when its scope ended (made by matmul)");
    ck_assert_ptr_null(em_relu(em_add(a, t))); /* and the chain keeps the cause */
    ck_assert_error_is("add: input 1 was released when its scope ended (made by matmul)");
    ck_assert_ptr_null(em_data(t));
    ck_assert_error_is("data: the tensor was released when its scope ended (made by matmul)");
    ck_assert_ptr_null(em_keep(t));
    ck_assert_error_is("keep: the tensor was released when its scope ended (made by matmul)");

    em_scope_begin();
    em_tensor *k = em_keep(em_relu(a));
    ck_assert_int_eq(em_scope_end(), 0);
    ck_assert_int_eq(em_release(k), 0);
    ck_assert_ptr_null(em_add(a, k));
    ck_assert_error_is("add: input 1 was released by em_release (made by relu)");
    ck_assert_int_eq(em_release(k), -1);
    ck_assert_error_is("release: the tensor was released by em_release (made by relu)");

    em_tensor *w = em_get_variable("w", EM_F32, EM_SHAPE(2), EM_INIT_CONST(1));
    em_variables_release();
    ck_assert(isnan(em_item(w)));
    ck_assert_error_is("item: the tensor was released by em_variables_release (it was a variable)");
    /* nothing alive is refused */
    ck_assert_double_eq(em_item(em_sum(em_matmul(a, a), EM_ALL_AXES, false)), 8);
    ck_assert_ptr_null(em_last_error());
}
END_TEST

START_TEST(test_error_owned_by_the_failing_call) {
    /* the reproducer: a handled failure does not hide a later one */
    em_add(em_ones(EM_F32, EM_SHAPE(2)), em_ones(EM_F32, EM_SHAPE(3)));
    ck_assert_ptr_null(em_load_npy("/nonexistent.npy"));
    ck_assert_error_is("load_npy: cannot open /nonexistent.npy: No such file or directory");
    /* within an expression the root cause wins: the calls after it got NULL */
    em_tensor *a = em_ones(EM_F32, EM_SHAPE(2, 3));
    ck_assert_ptr_null(em_relu(em_add(em_matmul(a, a), a)));
    ck_assert_error_is("matmul: inner dimensions differ: [2,3] x [2,3]");
    /* so it does for a NULL handle: the optimizer that failed to be made */
    em_tensor *w = em_get_variable("w", EM_F32, EM_SHAPE(3), EM_INIT_CONST(1));
    em_tape *tape = em_tape_begin(false);
    em_tensor *loss = em_sum(em_mul(w, w), EM_ALL_AXES, false);
    ck_assert_int_eq(em_minimize(em_sgd(-1), tape, loss, 1, &w), -1);
    ck_assert_error_is("sgd: learning rate must be in [0, inf), got -1");
    em_tape_release(tape);
    /* a failure on non-NULL inputs replaces an unread one */
    ck_assert_ptr_null(em_matmul(a, a));
    ck_assert_ptr_null(em_reshape(a, EM_SHAPE(4)));
    ck_assert_error_is("reshape: cannot reshape [2,3] (6 elements) into [4]");
}
END_TEST

int main(void) {
    Suite *s = suite_create("lifetime");
    TCase *tc = tcase_create("lifetime");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_release_not_kept);
    tcase_add_test(tc, test_release_variable);
    tcase_add_test(tc, test_tape_after_shutdown);
    tcase_add_test(tc, test_debug_mode);
    tcase_add_test(tc, test_error_owned_by_the_failing_call);
    suite_add_tcase(s, tc);
    return em_test_run(s);
}
