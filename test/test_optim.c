/* Optimizers: 20-step trajectories against the update rules recomputed here
 * in plain C doubles, slots, schedules, clipping, compute/apply and errors. */
#include "common.h"

#include <string.h>

#define ck_assert_fails(rc, needle) em_test_assert_error((rc) != 0, (needle), __FILE__, __LINE__)

static void teardown(void) { em_shutdown(); }

/* The problem: loss = sum(c * (w - t)^2) over a [2,2] float64 variable. */
static const double W0[4] = {0.5, -1.0, 2.0, 0.0};
static const double C[4] = {1.0, 0.5, 2.0, 3.0};
static const double T[4] = {1.0, 2.0, -1.0, 0.5};

static em_tensor *quadratic_loss(em_tensor *w) {
    em_tensor *c = em_tensor_from(EM_F64, EM_SHAPE(2, 2), C);
    em_tensor *t = em_tensor_from(EM_F64, EM_SHAPE(2, 2), T);
    return em_sum(em_mul(c, em_square(em_sub(w, t))), EM_ALL_AXES, false);
}

enum { SGD, MOMENTUM, ADAGRAD, ADAGRAD_DA, RMSPROP, ADAM, ADAMW };

typedef struct {
    int kind;
    const char *label, *slot_names[3];
    double lr, momentum, initial, l1, l2, decay, epsilon, beta1, beta2, weight_decay;
    bool nesterov, centered;
} config;

static const config configs[] = {
    {SGD, "sgd", {NULL}, .lr = 0.1},
    {MOMENTUM, "momentum", {"w/Momentum"}, .lr = 0.05, .momentum = 0.9},
    {MOMENTUM, "nesterov", {"w/Momentum"}, .lr = 0.05, .momentum = 0.9, .nesterov = true},
    {ADAGRAD, "adagrad", {"w/Adagrad"}, .lr = 0.3, .initial = 0.1},
    {ADAGRAD_DA, "adagrad_da l1", {"w/AdagradDA", "w/AdagradDA_1"}, .lr = 0.5, .initial = 0.1, .l1 = 0.01, .l2 = 0.1},
    {ADAGRAD_DA, "adagrad_da l2", {"w/AdagradDA", "w/AdagradDA_1"}, .lr = 0.5, .initial = 0.2, .l2 = 0.05},
    {RMSPROP, "rmsprop", {"w/RMSProp", "w/RMSProp_1"}, .lr = 0.01, .decay = 0.9, .epsilon = 1e-10},
    {RMSPROP, "rmsprop centered", {"w/RMSProp", "w/RMSProp_1", "w/RMSProp_2"}, .lr = 0.02, .decay = 0.8,
     .momentum = 0.5, .epsilon = 1e-6, .centered = true},
    {ADAM, "adam", {"w/Adam", "w/Adam_1"}, .lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .epsilon = 1e-8},
    {ADAMW, "adamw", {"w/AdamW", "w/AdamW_1"}, .lr = 0.1, .beta1 = 0.8, .beta2 = 0.99, .epsilon = 1e-3,
     .weight_decay = 0.05},
};

static em_optimizer *make(const config *c) {
    switch (c->kind) {
    case SGD: return em_sgd(c->lr);
    case MOMENTUM: return em_momentum(c->lr, c->momentum, c->nesterov);
    case ADAGRAD: return em_adagrad(c->lr, c->initial);
    case ADAGRAD_DA: return em_adagrad_da(c->lr, c->initial, c->l1, c->l2);
    case RMSPROP: return em_rmsprop(c->lr, c->decay, c->momentum, c->epsilon, c->centered);
    case ADAM: return em_adam(c->lr, c->beta1, c->beta2, c->epsilon);
    default: return em_adamw(c->lr, c->beta1, c->beta2, c->epsilon, c->weight_decay);
    }
}

/* One update of element i by the rule as written in TensorFlow's docs (and
 * the AdamW paper), in doubles. s[] are the element's slots; t is 1-based. */
static void reference_step(const config *c, int t, double g, double *w, double s[3]) {
    double lr = c->lr;
    switch (c->kind) {
    case SGD: *w = *w - lr * g; break;
    case MOMENTUM:
        s[0] = c->momentum * s[0] + g;
        *w = c->nesterov ? *w - lr * (g + c->momentum * s[0]) : *w - lr * s[0];
        break;
    case ADAGRAD:
        s[0] = s[0] + g * g;
        *w = *w - lr * g / sqrt(s[0]);
        break;
    case ADAGRAD_DA: {
        s[0] += g;
        s[1] += g * g;
        double shrunk = fabs(s[0]) - c->l1 * t;
        double num = c->l1 > 0 ? (shrunk > 0 ? copysign(shrunk, s[0]) : 0) : s[0];
        *w = -lr * num / (c->l2 * t * lr + sqrt(s[1]));
        break;
    }
    case RMSPROP: {
        s[0] = c->decay * s[0] + (1 - c->decay) * g * g;
        double denom = s[0];
        if (c->centered) {
            s[2] = c->decay * s[2] + (1 - c->decay) * g;
            denom -= s[2] * s[2];
        }
        s[1] = c->momentum * s[1] + lr * g / sqrt(denom + c->epsilon);
        *w -= s[1];
        break;
    }
    default: { /* Adam, AdamW: the paper's epsilon-hat form */
        double decayed = *w - lr * c->weight_decay * *w;
        s[0] = c->beta1 * s[0] + (1 - c->beta1) * g;
        s[1] = c->beta2 * s[1] + (1 - c->beta2) * g * g;
        double alpha = lr * sqrt(1 - pow(c->beta2, t)) / (1 - pow(c->beta1, t));
        *w = decayed - alpha * s[0] / (sqrt(s[1]) + c->epsilon);
        break;
    }
    }
}

static double slot_start(const config *c, int k) {
    if (c->kind == ADAGRAD && k == 0) return c->initial;
    if (c->kind == ADAGRAD_DA && k == 1) return c->initial;
    if (c->kind == RMSPROP && k == 0) return 1.0;
    return 0;
}

START_TEST(test_trajectory) {
    const config *c = &configs[_i];
    em_tensor *w = em_get_variable("w", EM_F64, EM_SHAPE(2, 2), EM_INIT_FROM(em_tensor_from(EM_F64, EM_SHAPE(2, 2), W0)));
    em_optimizer *opt = make(c);
    ck_assert_ptr_nonnull(opt);
    double rw[4], rs[4][3];
    for (int i = 0; i < 4; i++) {
        rw[i] = W0[i];
        for (int k = 0; k < 3; k++) rs[i][k] = slot_start(c, k);
    }
    for (int step = 1; step <= 20; step++) {
        em_scope_begin();
        em_tape *tape = em_tape_begin(false);
        em_tensor *loss = quadratic_loss(w);
        ck_assert_msg(em_minimize(opt, tape, loss, 1, &w) == 0, "%s: %s", c->label, em_last_error());
        em_tape_release(tape);
        em_scope_end();
        for (int i = 0; i < 4; i++) reference_step(c, step, 2 * C[i] * (rw[i] - T[i]), &rw[i], rs[i]);
        const double *got = em_data(w);
        for (int i = 0; i < 4; i++)
            ck_assert_msg(fabs(got[i] - rw[i]) <= 1e-6 * fmax(1, fabs(rw[i])), "%s step %d element %d: %.12g, expected %.12g",
                          c->label, step, i, got[i], rw[i]);
    }
    ck_assert_int_eq(em_optimizer_step(opt), 20);
    ck_assert_double_eq(em_optimizer_learning_rate(opt), c->lr);
    /* The slots are untrainable variables named after w, holding the state. */
    for (int k = 0; k < 3 && c->slot_names[k]; k++) {
        em_tensor *s = em_find_variable(c->slot_names[k]);
        ck_assert_msg(s != NULL, "%s: no slot %s", c->label, c->slot_names[k]);
        double expect[4] = {rs[0][k], rs[1][k], rs[2][k], rs[3][k]};
        ck_assert_tensor(s, EM_F64, EM_SHAPE(2, 2), expect, 1e-6);
    }
    ck_assert_int_eq(em_trainable_variables(NULL, 0), 1);
    int nslots = 0;
    while (nslots < 3 && c->slot_names[nslots]) nslots++;
    ck_assert_int_eq(em_global_variables(NULL, 0), 3 + nslots); /* w, step, learning rate, slots */
    em_optimizer_release(opt);
}
END_TEST

/* float32 variables run the float32 kernels: Adam with fixed gradients. */
START_TEST(test_float32_adam) {
    const config *c = &configs[8];
    em_tensor *w = em_get_variable("w32", EM_F32, EM_SHAPE(4), EM_INIT_CONST(1));
    em_optimizer *opt = make(c);
    em_tensor *g = em_tensor_from(EM_F32, EM_SHAPE(4), (float[]){0.5f, -2.0f, 0.0f, 1e-3f});
    double rw[4] = {1, 1, 1, 1}, rs[4][3] = {{0}}, gv[4] = {0.5, -2.0, 0.0, 1e-3};
    for (int step = 1; step <= 20; step++) {
        ck_assert_int_eq(em_apply_gradients(opt, 1, &g, &w), 0);
        for (int i = 0; i < 4; i++) reference_step(c, step, gv[i], &rw[i], rs[i]);
    }
    ck_assert_tensor(w, EM_F32, EM_SHAPE(4), rw, 1e-5);
    ck_assert_ptr_nonnull(em_find_variable("w32/Adam_1"));
    ck_assert_int_eq(em_tensor_dtype(em_find_variable("w32/Adam_1")), EM_F32);
    em_optimizer_release(opt);
}
END_TEST

/* A large variable goes through the thread pool in chunks: same result as the reference. */
START_TEST(test_large_momentum) {
    int64_t n = 100000;
    em_tensor *w = em_get_variable("big", EM_F64, EM_SHAPE(n), EM_INIT_CONST(0));
    em_tensor *g = em_arange(EM_F64, 0, (double)n, 1);
    em_optimizer *opt = em_momentum(0.01, 0.5, false);
    for (int s = 0; s < 3; s++) ck_assert_int_eq(em_apply_gradients(opt, 1, &g, &w), 0);
    /* accum: g, 1.5g, 1.75g; w = -0.01 * 4.25 g */
    const double *p = em_data(w);
    for (int64_t i = 0; i < n; i += 997) ck_assert_double_eq_tol(p[i], -0.0425 * (double)i, 1e-9 * (1 + (double)i));
    em_optimizer_release(opt);
}
END_TEST

START_TEST(test_adagrad_da_tensorflow) {
    /* tensorflow/python/training/adagrad_da_test.py, testAdagradDAWithL1_L2. */
    em_tensor *v0 = em_get_variable("v0", EM_F64, EM_SHAPE(2), EM_INIT_CONST(1));
    em_tensor *v1 = em_get_variable("v1", EM_F64, EM_SHAPE(2), EM_INIT_CONST(4));
    em_tensor *g[2] = {em_tensor_from(EM_F64, EM_SHAPE(2), (double[]){0.1, 0.2}),
                       em_tensor_from(EM_F64, EM_SHAPE(2), (double[]){0.01, 0.02})};
    em_optimizer *opt = em_adagrad_da(3.0, 0.1, 0.001, 2.0);
    ck_assert_int_eq(em_apply_gradients(opt, 2, g, (em_tensor *[]){v0, v1}), 0);
    ck_assert_tensor(v0, EM_F64, EM_SHAPE(2), ((double[]){-0.046907, -0.093659}), 1e-6);
    ck_assert_tensor(v1, EM_F64, EM_SHAPE(2), ((double[]){-0.004275, -0.009023}), 1e-6);
    em_optimizer_release(opt);
}
END_TEST

START_TEST(test_names_and_errors) {
    em_tensor *w = em_get_variable("w", EM_F64, EM_SHAPE(2), EM_INIT_CONST(0));
    em_tensor *g = em_ones(EM_F64, EM_SHAPE(2));
    em_optimizer *a = em_adam(0.1, 0.9, 0.999, 1e-8), *b = em_adam(0.1, 0.9, 0.999, 1e-8);
    ck_assert_str_eq(em_optimizer_name(a), "Adam");
    ck_assert_str_eq(em_optimizer_name(b), "Adam_1");
    ck_assert_ptr_eq(em_find_variable("Adam_1/step"), em_optimizer_step_tensor(b));
    ck_assert_ptr_eq(em_find_variable("Adam/learning_rate"), em_optimizer_learning_rate_tensor(a));
    ck_assert_int_eq(em_apply_gradients(a, 1, &g, &w), 0);
    ck_assert_int_eq(em_apply_gradients(b, 1, &g, &w), 0);
    ck_assert_int_eq(em_apply_gradients(a, 1, &g, &w), 0);
    /* Each optimizer keeps its own slots, TensorFlow's unique names. */
    const char *names[] = {"w", "Adam/step", "Adam/learning_rate", "Adam_1/step", "Adam_1/learning_rate",
                           "w/Adam", "w/Adam_1", "w/Adam_2", "w/Adam_3"};
    em_tensor *all[9];
    ck_assert_int_eq(em_global_variables(all, 9), 9);
    for (int i = 0; i < 9; i++) ck_assert_str_eq(em_variable_name(all[i]), names[i]);
    ck_assert_int_eq(em_optimizer_step(a), 2);
    ck_assert_int_eq(em_optimizer_step(b), 1);
    ck_assert_double_eq(em_item(em_optimizer_step_tensor(a)), 2);
    em_optimizer_release(a);
    em_optimizer_release(b);

    ck_assert_error(em_adam(0.1, 1.0, 0.999, 1e-8), "adam: beta1 must be in [0, 1), got 1");
    ck_assert_error(em_sgd(-1), "sgd: learning rate must be in [0, inf), got -1");
    ck_assert_error(em_rmsprop(0.1, 1.5, 0, 1e-10, false), "rmsprop: decay must be in [0, 1], got 1.5");
    ck_assert_error(em_momentum(0.1, NAN, false), "momentum: momentum must be");
    ck_assert_error(em_adagrad_da(0.1, 0.1, -1, 0), "adagrad_da: l1 must be");
}
END_TEST

START_TEST(test_apply_errors_change_nothing) {
    em_tensor *w1 = em_get_variable("w1", EM_F64, EM_SHAPE(2), EM_INIT_CONST(1));
    em_tensor *w2 = em_get_variable("w2", EM_F64, EM_SHAPE(3), EM_INIT_CONST(2));
    em_tensor *vars[2] = {w1, w2};
    em_optimizer *opt = em_adam(0.1, 0.9, 0.999, 1e-8);
    em_tensor *good = em_ones(EM_F64, EM_SHAPE(2));
    ck_assert_fails(em_apply_gradients(opt, 2, (em_tensor *[]){good, em_ones(EM_F64, EM_SHAPE(2))}, vars),
                    "apply_gradients: gradient 1 is float64 [2] but variable w2 is float64 [3]");
    ck_assert_fails(em_apply_gradients(opt, 2, (em_tensor *[]){good, em_ones(EM_F32, EM_SHAPE(3))}, vars),
                    "gradient 1 is float32 [3] but variable w2 is float64 [3]");
    ck_assert_fails(em_apply_gradients(opt, 2, (em_tensor *[]){good, good}, (em_tensor *[]){w1, good}),
                    "vars[1] (float64 [2]) is not a variable");
    ck_assert_fails(em_apply_gradients(opt, 2, (em_tensor *[]){NULL, NULL}, vars),
                    "no gradients provided for any variable");
    em_tensor *count = em_get_variable_untrainable("count", EM_I32, EM_SHAPE(2), EM_INIT_CONST(0));
    ck_assert_fails(em_apply_gradients(opt, 1, &good, &count), "variable count is int32");
    ck_assert_fails(em_apply_gradients(NULL, 1, &good, &w1), "the optimizer is NULL");
    /* Nothing moved, no slot was made, the step did not advance. */
    ck_assert_tensor(w1, EM_F64, EM_SHAPE(2), ((double[]){1, 1}), 0);
    ck_assert_tensor(w2, EM_F64, EM_SHAPE(3), ((double[]){2, 2, 2}), 0);
    ck_assert_ptr_null(em_find_variable("w1/Adam"));
    ck_assert_int_eq(em_optimizer_step(opt), 0);
    /* A NULL gradient skips its variable. */
    ck_assert_int_eq(em_apply_gradients(opt, 2, (em_tensor *[]){NULL, em_ones(EM_F64, EM_SHAPE(3))}, vars), 0);
    ck_assert_tensor(w1, EM_F64, EM_SHAPE(2), ((double[]){1, 1}), 0);
    ck_assert_tensor(w2, EM_F64, EM_SHAPE(3), ((double[]){1.9, 1.9, 1.9}), 1e-6);
    ck_assert_ptr_null(em_find_variable("w1/Adam"));
    ck_assert_int_eq(em_optimizer_step(opt), 1);
    em_optimizer_release(opt);
}
END_TEST

START_TEST(test_compute_process_apply) {
    /* The seed: grads_and_vars = compute_gradients; clip_by_value each; apply_gradients. */
    em_tensor *w = em_get_variable("w", EM_F64, EM_SHAPE(2, 2), EM_INIT_FROM(em_tensor_from(EM_F64, EM_SHAPE(2, 2), W0)));
    em_optimizer *opt = em_sgd(0.1);
    em_tape *tape = em_tape_begin(false);
    em_tensor *loss = quadratic_loss(w);
    em_tensor *g;
    ck_assert_int_eq(em_compute_gradients(opt, tape, loss, 1, &w, &g), 0);
    em_tape_release(tape);
    /* gradients 2c(w - t) = [-1, -3, 12, -3] */
    ck_assert_tensor(g, EM_F64, EM_SHAPE(2, 2), ((double[]){-1, -3, 12, -3}), 1e-12);
    em_tensor *capped = em_clip_by_value(g, -2, 2);
    ck_assert_int_eq(em_apply_gradients(opt, 1, &capped, &w), 0);
    ck_assert_tensor(w, EM_F64, EM_SHAPE(2, 2), ((double[]){0.6, -0.8, 1.8, 0.2}), 1e-12);
    ck_assert_fails(em_compute_gradients(opt, tape, loss, 0, NULL, NULL), "compute_gradients: needs n >= 1");
    em_optimizer_release(opt);
}
END_TEST

START_TEST(test_minimize_all_trainable) {
    em_tensor *a = em_get_variable("a", EM_F64, EM_SHAPE(2), EM_INIT_CONST(1));
    em_tensor *b = em_get_variable("b", EM_F64, EM_SHAPE0, EM_INIT_CONST(3));
    em_tensor *frozen = em_get_variable_untrainable("frozen", EM_F64, EM_SHAPE0, EM_INIT_CONST(5));
    em_optimizer *opt = em_sgd(0.25);
    int64_t live = em_live_tensors();
    for (int s = 0; s < 2; s++) {
        em_tape *tape = em_tape_begin(false);
        /* loss = sum(a^2) + b^2 * frozen */
        em_tensor *loss = em_add(em_sum(em_square(a), EM_ALL_AXES, false), em_mul(em_square(b), frozen));
        ck_assert_int_eq(em_minimize(opt, tape, loss, 0, NULL), 0);
        em_tape_release(tape);
    }
    /* a: 1 -> 0.5 -> 0.25; b: 3 -> 3 - 0.25 * 30 = -4.5 -> -4.5 + 0.25 * 45 = 6.75; frozen stays. */
    ck_assert_tensor(a, EM_F64, EM_SHAPE(2), ((double[]){0.25, 0.25}), 1e-12);
    ck_assert_tensor(b, EM_F64, EM_SHAPE0, ((double[]){6.75}), 1e-12);
    ck_assert_tensor(frozen, EM_F64, EM_SHAPE0, ((double[]){5}), 0);
    /* minimize frees its gradients: only the two losses' expressions remain in the root scope. */
    ck_assert_int_le(em_live_tensors() - live, 2 * 6);
    em_optimizer_release(opt);
    em_variables_release();
    em_tape *tape = em_tape_begin(false);
    em_optimizer *o2 = em_sgd(0.1);
    em_variables_release();
    ck_assert_fails(em_minimize(o2, tape, em_ones(EM_F64, EM_SHAPE0), 0, NULL), "there are no trainable variables");
    em_tape_release(tape);
    em_optimizer_release(o2);
}
END_TEST

START_TEST(test_schedules) {
    em_schedule *e = em_exponential_decay(0.1, 10, 0.5, false), *es = em_exponential_decay(0.1, 10, 0.5, true);
    ck_assert_double_eq_tol(em_schedule_value(e, 0), 0.1, 1e-15);
    ck_assert_double_eq_tol(em_schedule_value(e, 5), 0.07071067811865475, 1e-15);
    ck_assert_double_eq_tol(em_schedule_value(e, 15), 0.035355339059327376, 1e-15);
    ck_assert_double_eq_tol(em_schedule_value(es, 9), 0.1, 1e-15);
    ck_assert_double_eq_tol(em_schedule_value(es, 15), 0.05, 1e-15);
    ck_assert_double_eq_tol(em_schedule_value(es, 20), 0.025, 1e-15);
    em_schedule *p = em_piecewise_constant(2, (int64_t[]){10, 20}, (double[]){1.0, 0.5, 0.1});
    const int64_t at[] = {0, 10, 11, 20, 21, 1000};
    const double pv[] = {1.0, 1.0, 0.5, 0.5, 0.1, 0.1};
    for (int i = 0; i < 6; i++) ck_assert_double_eq(em_schedule_value(p, at[i]), pv[i]);
    em_schedule *c = em_cosine_decay(1.0, 100, 0.1);
    ck_assert_double_eq_tol(em_schedule_value(c, 0), 1.0, 1e-15);
    ck_assert_double_eq_tol(em_schedule_value(c, 25), 0.8681980515339464, 1e-15);
    ck_assert_double_eq_tol(em_schedule_value(c, 50), 0.55, 1e-15);
    ck_assert_double_eq_tol(em_schedule_value(c, 100), 0.1, 1e-15);
    ck_assert_double_eq_tol(em_schedule_value(c, 250), 0.1, 1e-15);
    /* warm-up from 0 over 10 steps, then the same cosine over the next 100 */
    em_schedule *wc = em_warmup_cosine_decay(1.0, 10, 100, 0.1);
    const int64_t wat[] = {0, 1, 5, 10, 35, 60, 110, 500};
    const double wv[] = {0, 0.1, 0.5, 1.0, 0.8681980515339464, 0.55, 0.1, 0.1};
    for (int i = 0; i < 8; i++) ck_assert_double_eq_tol(em_schedule_value(wc, wat[i]), wv[i], 1e-15);
    em_schedule *w0 = em_warmup_cosine_decay(1.0, 0, 100, 0.1);
    for (int64_t st = 0; st <= 120; st += 5) ck_assert_double_eq(em_schedule_value(w0, st), em_schedule_value(c, st));
    em_schedule_release(wc);
    em_schedule_release(w0);
    ck_assert_error(em_warmup_cosine_decay(0.1, -1, 10, 0), "warmup_cosine_decay: warmup_steps must be >= 0, got -1");
    ck_assert_error(em_warmup_cosine_decay(0.1, 5, 0, 0), "warmup_cosine_decay: decay_steps must be positive, got 0");
    em_schedule_release(e);
    em_schedule_release(es);
    em_schedule_release(p);
    em_schedule_release(c);
    ck_assert_error(em_exponential_decay(0.1, 0, 0.5, false), "exponential_decay: decay_steps must be positive, got 0");
    ck_assert_error(em_piecewise_constant(2, (int64_t[]){10, 10}, (double[]){1, 2, 3}),
                    "boundaries must increase, but boundaries[1] = 10 follows 10");
    ck_assert_error(em_cosine_decay(0.1, 10, 2), "cosine_decay: alpha must be in [0, 1], got 2");

    /* An optimizer reads its schedule at each update's step count and writes the rate to its variable. */
    em_tensor *w = em_get_variable("w", EM_F64, EM_SHAPE0, EM_INIT_CONST(0));
    em_tensor *g = em_ones(EM_F64, EM_SHAPE0);
    em_optimizer *opt = em_sgd(1.0);
    ck_assert_int_eq(em_optimizer_set_schedule(opt, em_exponential_decay(1.0, 2, 0.5, true)), 0);
    const double lrs[] = {1, 1, 0.5, 0.5, 0.25};
    double sum = 0;
    for (int s = 0; s < 5; s++) {
        ck_assert_double_eq(em_optimizer_learning_rate(opt), lrs[s]);
        ck_assert_int_eq(em_apply_gradients(opt, 1, &g, &w), 0);
        ck_assert_double_eq(em_item(em_optimizer_learning_rate_tensor(opt)), lrs[s]);
        sum += lrs[s];
    }
    ck_assert_double_eq_tol(em_item(w), -sum, 1e-15);
    ck_assert_double_eq(em_optimizer_learning_rate(opt), 0.25);
    /* A fixed rate replaces the schedule; the variable holds it. */
    ck_assert_int_eq(em_optimizer_set_learning_rate(opt, 0.125), 0);
    ck_assert_int_eq(em_apply_gradients(opt, 1, &g, &w), 0);
    ck_assert_double_eq_tol(em_item(w), -sum - 0.125, 1e-15);
    ck_assert_fails(em_optimizer_set_schedule(opt, NULL), "set_schedule: the schedule is NULL");
    em_optimizer_release(opt);
}
END_TEST

/* AdamW's decay filter: the kernel decays, the bias does not; eagerly and in a traced graph. */
static bool decays_unless_bias(const char *name, void *ctx) {
    ++*(int *)ctx;
    return strstr(name, "bias") == NULL;
}

START_TEST(test_adamw_decay_filter) {
    const config *c = &configs[sizeof configs / sizeof configs[0] - 1];
    config no_decay = *c;
    no_decay.weight_decay = 0;
    static const double B0[2] = {0.5, -2}, GW[4] = {0.3, -0.2, 1.5, -4}, GB[2] = {2, -0.5};
    for (int traced = 0; traced < 2; traced++) {
        em_variables_release();
        em_tensor *w = em_get_variable("dense/kernel", EM_F64, EM_SHAPE(2, 2),
                                       EM_INIT_FROM(em_tensor_from(EM_F64, EM_SHAPE(2, 2), W0)));
        em_tensor *b = em_get_variable("dense/bias", EM_F64, EM_SHAPE(2),
                                       EM_INIT_FROM(em_tensor_from(EM_F64, EM_SHAPE(2), B0)));
        em_tensor *vars[2] = {w, b};
        em_tensor *grads[2] = {em_tensor_from(EM_F64, EM_SHAPE(2, 2), GW), em_tensor_from(EM_F64, EM_SHAPE(2), GB)};
        em_optimizer *opt = make(c);
        int asked = 0;
        ck_assert_int_eq(em_optimizer_set_decay_filter(opt, decays_unless_bias, &asked), 0);
        const int steps = 2;
        if (traced) {
            em_trace_begin();
            em_tensor *train = em_apply_gradients_op(opt, 2, grads, vars);
            em_graph *g = em_trace_end();
            em_tensor *out;
            for (int t = 0; t < steps; t++) ck_assert_int_eq(em_graph_run(g, 0, NULL, 1, &train, &out), 0);
            em_graph_release(g);
        } else {
            for (int t = 0; t < steps; t++) ck_assert_int_eq(em_apply_gradients(opt, 2, grads, vars), 0);
        }
        /* tracing on values (no placeholders) runs the update once too */
        const int updates = steps + traced;
        ck_assert_int_eq(em_optimizer_step(opt), updates);
        ck_assert_int_eq(asked, 2 * updates);
        double ew[4], eb[2];
        for (int i = 0; i < 4; i++) {
            double s[3] = {0};
            ew[i] = W0[i];
            for (int t = 1; t <= updates; t++) reference_step(c, t, GW[i], &ew[i], s);
        }
        for (int i = 0; i < 2; i++) {
            double s[3] = {0};
            eb[i] = B0[i];
            for (int t = 1; t <= updates; t++) reference_step(&no_decay, t, GB[i], &eb[i], s);
        }
        ck_assert_tensor(w, EM_F64, EM_SHAPE(2, 2), ew, 1e-12);
        ck_assert_tensor(b, EM_F64, EM_SHAPE(2), eb, 1e-12);
        em_optimizer_release(opt);
    }
    em_optimizer *adam = em_adam(0.1, 0.9, 0.999, 1e-8);
    ck_assert_fails(em_optimizer_set_decay_filter(adam, decays_unless_bias, NULL),
                    "set_decay_filter: optimizer Adam has no weight decay (only AdamW decays)");
    em_optimizer_release(adam);
}
END_TEST

/* Three micro-batches' gradients accumulated in place equal the gradient of the whole batch's summed loss. */
static em_tensor *batch_loss(em_tensor *w, const double *x, const double *y, int rows) {
    em_tensor *xs = em_tensor_from(EM_F64, EM_SHAPE(rows, 3), x), *ys = em_tensor_from(EM_F64, EM_SHAPE(rows), y);
    em_tensor *pred = em_sum(em_mul(xs, w), 1, (int[]){1}, false);
    return em_sum(em_square(em_sub(pred, ys)), EM_ALL_AXES, false);
}

START_TEST(test_gradients_accumulate) {
    static const double X[18] = {1, 2, 0.5, -1, 0, 3, 2, 2, -2, 0.25, -1, 1, 4, 0, -0.5, 1, 1, 1};
    static const double Y[6] = {1, -2, 0.5, 3, 0, -1};
    em_tensor *w = em_get_variable("w", EM_F64, EM_SHAPE(3), EM_INIT_FROM(em_tensor_from(EM_F64, EM_SHAPE(3), T)));
    em_tensor *b = em_get_variable("b", EM_F64, EM_SHAPE0, EM_INIT_CONST(0.5));
    em_tensor *vars[2] = {w, b}, *acc[2] = {NULL, NULL}, *whole[2];
    em_tape *tape = em_tape_begin(false);
    em_tensor *full = em_add(batch_loss(w, X, Y, 6), em_mul(b, b));
    ck_assert_int_eq(em_gradients(tape, full, 2, vars, whole), 0);
    em_tape_release(tape);
    const void *held = NULL;
    for (int k = 0; k < 3; k++) {
        em_tensor *g[2];
        tape = em_tape_begin(false);
        /* b's term once, in the first micro-batch */
        em_tensor *loss = batch_loss(w, X + 6 * k, Y + 2 * k, 2);
        if (k == 0) loss = em_add(loss, em_mul(b, b));
        ck_assert_int_eq(em_gradients(tape, loss, 2, vars, k == 0 ? acc : g), 0);
        em_tape_release(tape);
        if (k == 0) {
            held = em_data(acc[0]);
            continue;
        }
        g[1] = NULL; /* b's gradient is 0 here: a NULL leaves its accumulator alone */
        ck_assert_int_eq(em_gradients_accumulate(2, acc, g), 0);
    }
    ck_assert_ptr_eq(em_data(acc[0]), held); /* in place */
    double expect[3];
    for (int i = 0; i < 3; i++) expect[i] = em_get(whole[0], (int64_t[]){i});
    ck_assert_tensor(acc[0], EM_F64, EM_SHAPE(3), expect, 1e-12);
    ck_assert_tensor(acc[1], EM_F64, EM_SHAPE0, ((double[]){1.0}), 1e-12);
    /* errors name the index, and no accumulator changes */
    em_tensor *bad[2] = {em_ones(EM_F64, EM_SHAPE(3)), em_ones(EM_F64, EM_SHAPE(2))};
    ck_assert_fails(em_gradients_accumulate(2, acc, bad),
                    "gradients_accumulate: grads[1] is float64 [2] but acc[1] is float64 []");
    ck_assert_tensor(acc[0], EM_F64, EM_SHAPE(3), expect, 1e-12);
    bad[1] = em_ones(EM_F32, EM_SHAPE0);
    ck_assert_fails(em_gradients_accumulate(2, acc, bad), "grads[1] is float32 [] but acc[1] is float64 []");
    em_tensor *strided = em_transpose(em_zeros(EM_F64, EM_SHAPE(2, 3)), 2, (int[]){1, 0});
    ck_assert_fails(em_gradients_accumulate(1, &strided, (em_tensor *[]){em_ones(EM_F64, EM_SHAPE(3, 2))}),
                    "gradients_accumulate: acc[0] (float64 [3,2]) is a strided view; it is added to in place");
    ck_assert_fails(em_gradients_accumulate(1, (em_tensor *[]){NULL}, bad), "acc[0] is NULL but grads[0] is not");
    ck_assert_fails(em_gradients_accumulate(0, acc, bad), "gradients_accumulate: needs n >= 1");
}
END_TEST

START_TEST(test_clipping) {
    em_tensor *g = em_tensor_from(EM_F64, EM_SHAPE(2), (double[]){3, 4});
    ck_assert_tensor(em_clip_by_norm(g, 2.5), EM_F64, EM_SHAPE(2), ((double[]){1.5, 2}), 1e-12);
    ck_assert_tensor(em_clip_by_norm(g, 10), EM_F64, EM_SHAPE(2), ((double[]){3, 4}), 1e-12);
    ck_assert_tensor(em_clip_by_norm(em_zeros(EM_F32, EM_SHAPE(2, 1)), 1), EM_F32, EM_SHAPE(2, 1), ((double[]){0, 0}), 0);
    em_tensor *m = em_tensor_from(EM_F32, EM_SHAPE(2, 2), (float[]){1, 2, 2, 4});
    ck_assert_tensor(em_clip_by_norm(m, 1), EM_F32, EM_SHAPE(2, 2), ((double[]){0.2, 0.4, 0.4, 0.8}), 1e-6);
    ck_assert_error(em_clip_by_norm(g, 0), "clip_by_norm: needs a float tensor and clip_norm > 0");

    /* Global norm of [3,4] and [12] (float32) is 13. */
    em_tensor *in[3] = {g, NULL, em_tensor_from(EM_F32, EM_SHAPE(1), (float[]){12})}, *out[3];
    double norm = 0;
    ck_assert_int_eq(em_clip_by_global_norm(3, in, 6.5, out, &norm), 0);
    ck_assert_double_eq_tol(norm, 13, 1e-12);
    ck_assert_tensor(out[0], EM_F64, EM_SHAPE(2), ((double[]){1.5, 2}), 1e-12);
    ck_assert_ptr_null(out[1]);
    ck_assert_tensor(out[2], EM_F32, EM_SHAPE(1), ((double[]){6}), 1e-6);
    ck_assert_int_eq(em_clip_by_global_norm(3, in, 20, out, NULL), 0);
    ck_assert_tensor(out[0], EM_F64, EM_SHAPE(2), ((double[]){3, 4}), 1e-12);
    em_tensor *zeros[1] = {em_zeros(EM_F64, EM_SHAPE(3))};
    ck_assert_int_eq(em_clip_by_global_norm(1, zeros, 1, out, &norm), 0);
    ck_assert_double_eq(norm, 0);
    ck_assert_tensor(out[0], EM_F64, EM_SHAPE(3), ((double[]){0, 0, 0}), 0);
    ck_assert_fails(em_clip_by_global_norm(1, (em_tensor *[]){em_ones(EM_I32, EM_SHAPE(1))}, 1, out, NULL),
                    "gradient 0 has dtype int32");
}
END_TEST

int main(void) {
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("optim");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_loop_test(tc, test_trajectory, 0, (int)(sizeof configs / sizeof configs[0]));
    tcase_add_test(tc, test_float32_adam);
    tcase_add_test(tc, test_large_momentum);
    tcase_add_test(tc, test_adagrad_da_tensorflow);
    tcase_add_test(tc, test_names_and_errors);
    tcase_add_test(tc, test_apply_errors_change_nothing);
    tcase_add_test(tc, test_compute_process_apply);
    tcase_add_test(tc, test_minimize_all_trainable);
    tcase_add_test(tc, test_schedules);
    tcase_add_test(tc, test_clipping);
    tcase_add_test(tc, test_adamw_decay_filter);
    tcase_add_test(tc, test_gradients_accumulate);
    suite_add_tcase(s, tc);
    return em_test_run(s);
}
