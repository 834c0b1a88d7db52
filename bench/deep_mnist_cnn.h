/* The Deep MNIST CNN of examples/deep_mnist.c (two 5x5 SAME convolutions with bias, ReLU and 2x2 max pool,
 * fc 3136 -> 1024, dropout 0.5, fc 10), as the benchmarks that time or weigh its step build it:
 * bench/cnn.c and bench/autocast.c. */
#ifndef EMBER_BENCH_DEEP_MNIST_CNN_H
#define EMBER_BENCH_DEEP_MNIST_CNN_H

#include <ember.h>

/* The variables of one layer, weights and biases, in scope `scope`: vars[0], vars[1]. */
static inline void cnn_layer(const char *scope, em_shape w, int64_t out, em_tensor **vars) {
    em_variable_scope_begin(scope, EM_REUSE_FALSE);
    vars[0] = em_get_variable("weights", EM_F32, w, EM_INIT_TRUNC_NORMAL(0, 0.1));
    vars[1] = em_get_variable("biases", EM_F32, EM_SHAPE(out), EM_INIT_CONST(0.1));
    em_variable_scope_end();
}

/* The four layers' eight variables. */
static inline void cnn_variables(em_tensor **vars) {
    cnn_layer("conv1", EM_SHAPE(5, 5, 1, 32), 32, vars);
    cnn_layer("conv2", EM_SHAPE(5, 5, 32, 64), 64, vars + 2);
    cnn_layer("fc1", EM_SHAPE(7 * 7 * 64, 1024), 1024, vars + 4);
    cnn_layer("fc2", EM_SHAPE(1024, 10), 10, vars + 6);
}

static inline em_tensor *cnn_conv_relu_pool(em_tensor *x, em_tensor **vars) {
    const int two[2] = {2, 2};
    em_tensor *h = em_relu(em_bias_add(em_conv2d(x, vars[0], NULL, EM_PAD_SAME, NULL), vars[1]));
    return em_max_pool(h, two, two, EM_PAD_SAME);
}

/* The mean cross entropy of a batch x [N, 28, 28, 1], labels y [N]. */
static inline em_tensor *cnn_loss(em_tensor **vars, em_tensor *x, em_tensor *y) {
    em_tensor *h = cnn_conv_relu_pool(cnn_conv_relu_pool(x, vars), vars + 2);
    h = em_matmul(em_reshape(h, EM_SHAPE(-1, 7 * 7 * 64)), vars[4]);
    h = em_dropout(em_relu(em_bias_add(h, vars[5])), 0.5);
    em_tensor *logits = em_bias_add(em_matmul(h, vars[6]), vars[7]);
    return em_mean(em_sparse_softmax_cross_entropy_with_logits(y, logits), EM_ALL_AXES, false);
}

#endif
