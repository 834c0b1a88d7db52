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

/* tf.custom_gradient: forward(n, inputs, ctx), built from Ember's ops, runs untaped, and the tapes record one
 * step whose gradient is backward's: grad_inputs[i] (NEW, inputs[i]'s dtype and shape) from the inputs, the
 * output and its incoming gradient. Uses: numerically stable gradients, straight-through estimators. A traced
 * graph replays forward; an outer tape records backward's ops (higher-order gradients). The output, NEW, or
 * NULL with an error. */
typedef em_tensor *(*em_custom_forward_fn)(int n, em_tensor *const *inputs, void *ctx);
typedef int (*em_custom_backward_fn)(int n, em_tensor *const *inputs, em_tensor *output, em_tensor *grad_output,
                                     em_tensor **grad_inputs, void *ctx);
em_tensor *em_custom_gradient(int n, em_tensor *const *inputs, em_custom_forward_fn forward,
                              em_custom_backward_fn backward, void *ctx);

/* The float64 central-difference gradient check Ember's tests use (torch.autograd.gradcheck): fn maps n
 * float64 tensors to one; each sampled element of each input is moved by +-step and the numeric derivative
 * of sum(fn * w) (w a fixed random weighting) is compared with the tape's. */
typedef em_tensor *(*em_gradcheck_fn)(int n, em_tensor *const *inputs, void *ctx);
typedef struct em_gradcheck_options {
    double step;        /* 0: 1e-6 */
    double tolerance;   /* the largest relative error that passes; 0: 1e-6 */
    int64_t samples;    /* elements checked per input, spread evenly; 0: all */
} em_gradcheck_options;
typedef struct em_gradcheck_report {
    double worst;       /* the largest |analytic - numeric| / max(1, |numeric|) */
    int input;          /* where it was: the input, and the element (row-major) */
    int64_t element;
    double analytic, numeric;
    bool passed;        /* worst <= tolerance */
} em_gradcheck_report;
/* options may be NULL (the defaults). 0 when every checked element passes, 1 when one does not (report says
 * which), -1 with an error when fn fails or an input is not float64. */
int em_gradcheck(em_gradcheck_fn fn, void *ctx, int n, em_tensor *const *inputs, const em_gradcheck_options *options,
                 em_gradcheck_report *report);

#ifdef __cplusplus
}
#endif
#endif
