/* The gradient tape.
 *
 *   em_tape *tape = em_tape_begin(false);
 *   em_tensor *loss = ...;                 // every op on this thread is recorded
 *   em_tensor *g[2];
 *   em_gradients(tape, loss, 2, (em_tensor *[]){w, b}, g);
 *   em_tape_release(tape);
 *
 * Tapes nest: a tape open while another computes gradients records the
 * gradient computation too, which gives higher-order derivatives. */
#ifndef EMBER_AUTODIFF_H
#define EMBER_AUTODIFF_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct em_tape em_tape;

/* Opens a tape on this thread (innermost). A non-persistent tape can give
 * gradients once; a persistent one any number of times. */
em_tape *em_tape_begin(bool persistent);
/* Stops recording (the records are kept for em_gradients). */
void em_tape_stop(em_tape *tape);
/* Frees the tape and its records; stops it first if needed. A tape outlives
 * em_shutdown as a handle without records (em_gradients on it fails):
 * releasing it then frees it. 0 (also for NULL); -1 with an error for a tape
 * that is not this thread's (released already, or begun on another thread). */
int em_tape_release(em_tape *tape);

/* grads[i] = d(sum of y)/d xs[i], NEW tensors, zeros for unconnected xs.
 * Like tf.gradients. Returns 0, or -1 with an error (e.g. y not float, a path
 * through a non-differentiable op such as argmax, a used-up tape). */
int em_gradients(em_tape *tape, em_tensor *y, int n, em_tensor *const *xs, em_tensor **grads);
/* The same with an initial gradient grad_y (shape of y) instead of ones. */
int em_gradients_with(em_tape *tape, em_tensor *y, em_tensor *grad_y, int n,
                      em_tensor *const *xs, em_tensor **grads);
/* The same values as x, through which no gradient flows. NEW. */
em_tensor *em_stop_gradient(em_tensor *x);

#ifdef __cplusplus
}
#endif
#endif
