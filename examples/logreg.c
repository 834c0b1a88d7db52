/* Logistic regression, the seed's first graph, trained eagerly with a tape:
 *
 *   W = tf.Variable(tf.random_normal(shape=[5, 1]), name='W')
 *   b = tf.Variable(tf.random_normal(shape=[1, 1]), name='b')
 *   with tf.name_scope('Wx_plus_b'):
 *       pred_logits = tf.matmul(input, W) + b
 *   loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(logits=pred_logits, labels=target))
 *   train_op = tf.train.GradientDescentOptimizer(learning_rate).minimize(loss)
 *
 * The data: 500 points with 5 normal features, labelled by a hidden linear
 * rule. Prints the loss falling every 50 steps and the final accuracy. */
#include <ember.h>

#include <stdio.h>

#define N 500
#define STEPS 400

static int fail(const char *what) {
    fprintf(stderr, "logreg: %s: %s\n", what, em_last_error() ? em_last_error() : "unknown error");
    return 1;
}

int main(void) {
    em_set_seed(2024);
    /* Inputs and targets (kept: they outlive every step's scope). */
    em_tensor *input = em_random_normal(EM_F32, EM_SHAPE(N, 5), 0, 1);
    em_tensor *true_w = em_tensor_from(EM_F32, EM_SHAPE(5, 1), (float[]){1.5f, -2.0f, 0.5f, 0.0f, 1.0f});
    em_tensor *noise = em_random_normal(EM_F32, EM_SHAPE(N, 1), 0, 0.5);
    em_tensor *target = em_cast(em_greater(em_add(em_matmul(input, true_w), noise), em_scalar(EM_F32, 0.3)), EM_F32);
    if (!target) return fail("making the data");

    em_tensor *W = em_get_variable("W", EM_F32, EM_SHAPE(5, 1), EM_INIT_NORMAL(0, 1));
    em_tensor *b = em_get_variable("b", EM_F32, EM_SHAPE(1, 1), EM_INIT_NORMAL(0, 1));
    em_optimizer *opt = em_sgd(0.5);
    if (!W || !b || !opt) return fail("making the variables");

    double first = 0, loss_value = 0;
    for (int step = 0; step <= STEPS; step++) {
        em_scope_begin(); /* everything a step makes is freed at its end */
        em_tape *tape = em_tape_begin(false);
        em_name_scope_begin("Wx_plus_b");
        em_tensor *pred_logits = em_add(em_matmul(input, W), b);
        em_name_scope_end();
        em_tensor *loss = em_mean(em_sigmoid_cross_entropy_with_logits(target, pred_logits), EM_ALL_AXES, false);
        loss_value = em_item(loss);
        if (step == 0) first = loss_value;
        if (step % 50 == 0) printf("step %3d  loss %.4f\n", step, loss_value);
        if (step < STEPS && em_minimize(opt, tape, loss, 0, NULL)) return fail("training");
        em_tape_release(tape);
        em_scope_end();
    }

    em_tensor *predicted = em_cast(em_greater(em_add(em_matmul(input, W), b), em_scalar(EM_F32, 0)), EM_F32);
    double accuracy = em_item(em_mean(em_cast(em_equal(predicted, target), EM_F32), EM_ALL_AXES, false));
    if (em_last_error()) return fail("evaluating");
    printf("loss %.4f -> %.4f, training accuracy %.3f\n", first, loss_value, accuracy);
    printf("W = ");
    em_print(W, stdout);
    printf("b = ");
    em_print(b, stdout);
    em_optimizer_release(opt);
    em_shutdown();
    return loss_value < first ? 0 : 1;
}
