/* The optim family's forward cases (run by test_ops.c on every device) and
 * gradient-check cases (test_gradcheck.c). */
#include "common.h"

#include <stdio.h>

/* apply_updates runs every optimizer's step (em_apply_gradients). A case
 * makes a variable from in[0] on the device under test (the runner's device
 * scope), applies `steps` updates with the gradients in[1], in[2] and returns
 * a copy of the variable. The ref_* functions replay TensorFlow 1's update
 * rules (lib/optim.c's opening comment; tf.train's training_ops) in float64
 * from the case's input values. */

/* The optimizers' settings, shared by the cases and their refs. */
#define LR 0.1
#define MU 0.9
#define ACC0 0.1 /* Adagrad's initial accumulator */
#define L1 0.01
#define L2 0.1
#define RMS_LR 0.01
#define RMS_DECAY 0.9
#define RMS_MU 0.5
#define RMS_EPS 1e-10
#define ADAM_LR 0.01
#define BETA1 0.9
#define BETA2 0.999
#define ADAM_EPS 1e-8
#define WD 0.1

static em_tensor *train(em_tensor *const *in, em_optimizer *opt, int steps) {
    static int made; /* a fresh variable name per call */
    char name[48];
    snprintf(name, sizeof name, "fw_optim/w%d", made++);
    em_tensor *w = opt ? em_get_variable(name, em_tensor_dtype(in[0]), em_tensor_shape(in[0]), EM_INIT_FROM(in[0]))
                       : NULL;
    int rc = w ? 0 : -1;
    for (int t = 0; t < steps && rc == 0; t++) rc = em_apply_gradients(opt, 1, &in[1 + t], &w);
    em_tensor *y = rc == 0 ? em_copy(w) : NULL;
    if (opt) em_optimizer_release(opt);
    return y;
}
/* The previous case's variables and slots go first, then the optimizer is made. */
#define TRAIN_FN(name, make, steps) \
    static em_tensor *name(em_tensor *const *in) { em_variables_release(); return train(in, make, steps); }
TRAIN_FN(sgd_1, em_sgd(LR), 1)
TRAIN_FN(momentum_2, em_momentum(LR, MU, false), 2)
TRAIN_FN(nesterov_2, em_momentum(LR, MU, true), 2)
TRAIN_FN(adagrad_2, em_adagrad(LR, ACC0), 2)
TRAIN_FN(adagrad_da_2, em_adagrad_da(LR, ACC0, L1, L2), 2)
TRAIN_FN(rmsprop_2, em_rmsprop(RMS_LR, RMS_DECAY, RMS_MU, RMS_EPS, false), 2)
TRAIN_FN(rmsprop_centered_2, em_rmsprop(RMS_LR, RMS_DECAY, RMS_MU, RMS_EPS, true), 2)
TRAIN_FN(adam_2, em_adam(ADAM_LR, BETA1, BETA2, ADAM_EPS), 2)
TRAIN_FN(adamw_2, em_adamw(ADAM_LR, BETA1, BETA2, ADAM_EPS, WD), 2)

enum { NMAX = 6 };
#define REF_BEGIN                                                          \
    int64_t n = em_shape_numel(c->out_shape);                              \
    const double *w0 = c->in[0].v, *grads[2] = {c->in[1].v, c->in[2].v};   \
    double w[NMAX], s0[NMAX] = {0}, s1[NMAX] = {0}, s2[NMAX] = {0};       \
    (void)s0, (void)s1, (void)s2;                                          \
    for (int64_t i = 0; i < n; i++) w[i] = w0[i];
#define REF_END \
    for (int64_t i = 0; i < n; i++) e[i] = w[i];

/* var -= lr g */
static void ref_sgd_1(const fw_case *c, double *e) {
    REF_BEGIN
    for (int64_t i = 0; i < n; i++) w[i] -= LR * grads[0][i];
    REF_END
}
/* accum = mu accum + g; var -= lr accum (nesterov: var -= lr g + lr mu accum) */
static void momentum_ref(const fw_case *c, double *e, bool nesterov) {
    REF_BEGIN
    for (int t = 0; t < 2; t++)
        for (int64_t i = 0; i < n; i++) {
            double g = grads[t][i];
            s0[i] = MU * s0[i] + g;
            w[i] -= nesterov ? LR * g + LR * MU * s0[i] : LR * s0[i];
        }
    REF_END
}
static void ref_momentum_2(const fw_case *c, double *e) { momentum_ref(c, e, false); }
static void ref_nesterov_2(const fw_case *c, double *e) { momentum_ref(c, e, true); }
/* accum (from ACC0) += g^2; var -= lr g / sqrt(accum) */
static void ref_adagrad_2(const fw_case *c, double *e) {
    REF_BEGIN
    for (int64_t i = 0; i < n; i++) s0[i] = ACC0;
    for (int t = 0; t < 2; t++)
        for (int64_t i = 0; i < n; i++) {
            double g = grads[t][i];
            s0[i] += g * g;
            w[i] -= LR * g / sqrt(s0[i]);
        }
    REF_END
}
/* gsum += g; g2sum (from ACC0) += g^2; var = -lr sign(gsum) max(|gsum| - l1 t, 0) / (l2 t lr + sqrt(g2sum)) */
static void ref_adagrad_da_2(const fw_case *c, double *e) {
    REF_BEGIN
    for (int64_t i = 0; i < n; i++) s1[i] = ACC0;
    for (int t = 1; t <= 2; t++)
        for (int64_t i = 0; i < n; i++) {
            double g = grads[t - 1][i];
            s0[i] += g;
            s1[i] += g * g;
            double mag = fmax(fabs(s0[i]) - L1 * t, 0);
            w[i] = -LR * (s0[i] < 0 ? -mag : mag) / (L2 * t * LR + sqrt(s1[i]));
        }
    REF_END
}
/* ms (from 1) = decay ms + (1 - decay) g^2; centered: mg = decay mg + (1 - decay) g, d = ms - mg^2, else d = ms;
 * mom = mu mom + lr g / sqrt(d + eps); var -= mom */
static void rmsprop_ref(const fw_case *c, double *e, bool centered) {
    REF_BEGIN
    for (int64_t i = 0; i < n; i++) s0[i] = 1;
    for (int t = 0; t < 2; t++)
        for (int64_t i = 0; i < n; i++) {
            double g = grads[t][i];
            s0[i] = RMS_DECAY * s0[i] + (1 - RMS_DECAY) * g * g;
            s2[i] = RMS_DECAY * s2[i] + (1 - RMS_DECAY) * g;
            double d = centered ? s0[i] - s2[i] * s2[i] : s0[i];
            s1[i] = RMS_MU * s1[i] + RMS_LR * g / sqrt(d + RMS_EPS);
            w[i] -= s1[i];
        }
    REF_END
}
static void ref_rmsprop_2(const fw_case *c, double *e) { rmsprop_ref(c, e, false); }
static void ref_rmsprop_centered_2(const fw_case *c, double *e) { rmsprop_ref(c, e, true); }
/* AdamW first: var -= lr wd var; then m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
 * var -= lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps) */
static void adam_ref(const fw_case *c, double *e, double wd) {
    REF_BEGIN
    for (int t = 1; t <= 2; t++) {
        double lr_t = ADAM_LR * sqrt(1 - pow(BETA2, t)) / (1 - pow(BETA1, t));
        for (int64_t i = 0; i < n; i++) {
            double g = grads[t - 1][i];
            w[i] -= ADAM_LR * wd * w[i];
            s0[i] = BETA1 * s0[i] + (1 - BETA1) * g;
            s1[i] = BETA2 * s1[i] + (1 - BETA2) * g * g;
            w[i] -= lr_t * s0[i] / (sqrt(s1[i]) + ADAM_EPS);
        }
    }
    REF_END
}
static void ref_adam_2(const fw_case *c, double *e) { adam_ref(c, e, 0); }
static void ref_adamw_2(const fw_case *c, double *e) { adam_ref(c, e, WD); }

/* variable, first and second gradient ([2,3]: zeros included) */
#define W0 V(0.5, -1.25, 2, 0, 3.5, -0.75)
#define G1 V(0.25, -0.5, 1, 0, -2, 0.125)
#define G2 V(-0.25, 0.5, 0.75, 1, -1, 0)
/* bfloat16 and float16 variables keep slots of their dtype: the variable and the slots are rounded after each
 * step, two units in the last place (2^-6, 2^-9 relative) after two steps. */
#define TOL_OF(dt) ((dt) == EM_F32 ? 1e-6 : (dt) == EM_BF16 ? 1.6e-2 : (dt) == EM_F16 ? 2e-3 : 1e-12)
#define STEP(dt, label, fn, ref)                                                                              \
    {"apply_updates", dt, label " " #dt, fn, 3,                                                               \
     {{dt, EM_SHAPE(2, 3), W0}, {dt, EM_SHAPE(2, 3), G1}, {dt, EM_SHAPE(2, 3), G2}}, dt, EM_SHAPE(2, 3), NULL, ref, \
     TOL_OF(dt)}
#define BOTH(label, fn, ref)                                                                                  \
    STEP(EM_F32, label, fn, ref), STEP(EM_F64, label, fn, ref), STEP(EM_BF16, label, fn, ref),                \
        STEP(EM_F16, label, fn, ref)

const fw_case fw_cases_optim[] = {
    BOTH("apply_updates: GradientDescent, 1 step", sgd_1, ref_sgd_1),
    BOTH("apply_updates: Momentum, 2 steps", momentum_2, ref_momentum_2),
    BOTH("apply_updates: Momentum (Nesterov), 2 steps", nesterov_2, ref_nesterov_2),
    BOTH("apply_updates: Adagrad, 2 steps", adagrad_2, ref_adagrad_2),
    BOTH("apply_updates: AdagradDA, 2 steps", adagrad_da_2, ref_adagrad_da_2),
    BOTH("apply_updates: RMSProp, 2 steps", rmsprop_2, ref_rmsprop_2),
    BOTH("apply_updates: RMSProp (centered), 2 steps", rmsprop_centered_2, ref_rmsprop_centered_2),
    BOTH("apply_updates: Adam, 2 steps", adam_2, ref_adam_2),
    BOTH("apply_updates: AdamW, 2 steps", adamw_2, ref_adamw_2),
    {.fn = NULL},
};

const gc_case gc_cases_optim[] = {
    {.fn = NULL},
};
