/* Variables, variable scopes, name scopes, initializers, optimizers, checkpoints.
 *
 * A variable is a tensor with a name ("scope/sub/name") that lives until
 * em_variables_release / em_shutdown; ops read it like any tensor, optimizers
 * and em_assign* update it in place. Variables are registered per thread. */
#ifndef EMBER_TRAIN_H
#define EMBER_TRAIN_H

#include "core.h"
#include "autodiff.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- initializers ---- */
typedef enum em_init_kind {
    EM_INIT_CONSTANT,
    EM_INIT_ZEROS,
    EM_INIT_ONES,
    EM_INIT_RANDOM_NORMAL,    /* a = mean, b = stddev */
    EM_INIT_TRUNCATED_NORMAL, /* a = mean, b = stddev */
    EM_INIT_RANDOM_UNIFORM,   /* a = lo, b = hi */
    EM_INIT_GLOROT_UNIFORM,
    EM_INIT_GLOROT_NORMAL,    /* truncated normal, as TensorFlow's */
    EM_INIT_HE_NORMAL,        /* truncated normal, as TensorFlow's */
    EM_INIT_TENSOR            /* copy of `value` (shape must match, or shape.ndim < 0) */
} em_init_kind;

typedef struct em_initializer {
    em_init_kind kind;
    double a, b;
    uint64_t seed;   /* 0: draw from the thread's stream */
    em_tensor *value;
} em_initializer;

#define EM_INIT_CONST(v) ((em_initializer){.kind = EM_INIT_CONSTANT, .a = (v)})
#define EM_INIT_NORMAL(mean, std) ((em_initializer){.kind = EM_INIT_RANDOM_NORMAL, .a = (mean), .b = (std)})
#define EM_INIT_TRUNC_NORMAL(mean, std) ((em_initializer){.kind = EM_INIT_TRUNCATED_NORMAL, .a = (mean), .b = (std)})
#define EM_INIT_UNIFORM(lo, hi) ((em_initializer){.kind = EM_INIT_RANDOM_UNIFORM, .a = (lo), .b = (hi)})
#define EM_INIT_GLOROT ((em_initializer){.kind = EM_INIT_GLOROT_UNIFORM})
#define EM_INIT_FROM(t) ((em_initializer){.kind = EM_INIT_TENSOR, .value = (t)})

/* ---- variable scopes (per thread), TensorFlow's semantics ---- */
typedef enum em_reuse { EM_REUSE_INHERIT, EM_REUSE_FALSE, EM_REUSE_TRUE } em_reuse;
/* Opens "name" inside the current variable scope (and the name scope of the same name). */
int em_variable_scope_begin(const char *name, em_reuse reuse);
int em_variable_scope_end(void);
/* Turns reuse on for the rest of the innermost variable scope (the seed's "way 2"). */
void em_reuse_variables(void);
/* Name scopes prefix op names (for graphs and TensorBoard) but not variables. */
int em_name_scope_begin(const char *name);
int em_name_scope_end(void);
/* The current name scope path, "" at top level. BORROWED. */
const char *em_name_scope(void);

/* ---- variables ---- */
/* Creates "scope/name", or returns the existing one when the scope reuses.
 * BORROWED: the variable lives until em_variables_release. Errors like
 * TensorFlow's: "Variable conv1/weights already exists, disallowed. Did you mean
 * to set reuse=True in VarScope?" */
em_tensor *em_get_variable(const char *name, em_dtype dtype, em_shape shape, em_initializer init);
/* Like em_get_variable but excluded from the trainable collection. */
em_tensor *em_get_variable_untrainable(const char *name, em_dtype dtype, em_shape shape, em_initializer init);
bool em_is_variable(const em_tensor *t);
const char *em_variable_name(const em_tensor *t); /* BORROWED; NULL if not a variable */
/* The collections: fills up to `cap` BORROWED pointers, returns the count. */
int em_trainable_variables(em_tensor **out, int cap);
int em_global_variables(em_tensor **out, int cap);
/* Finds a variable by full name. BORROWED, NULL if none. */
em_tensor *em_find_variable(const char *full_name);
/* In-place updates; value broadcasts to the variable's shape. */
int em_assign(em_tensor *var, em_tensor *value);
int em_assign_add(em_tensor *var, em_tensor *value);
int em_assign_sub(em_tensor *var, em_tensor *value);
/* Frees every variable of this thread (and the optimizers' slots). */
void em_variables_release(void);

/* ---- optimizers ---- */
typedef struct em_optimizer em_optimizer;
typedef struct em_schedule em_schedule;

em_optimizer *em_sgd(double lr);
em_optimizer *em_momentum(double lr, double momentum, bool nesterov);
em_optimizer *em_adagrad(double lr, double initial_accumulator);
em_optimizer *em_adagrad_da(double lr, double initial_accumulator, double l1, double l2);
em_optimizer *em_rmsprop(double lr, double decay, double momentum, double epsilon, bool centered);
em_optimizer *em_adam(double lr, double beta1, double beta2, double epsilon);
em_optimizer *em_adamw(double lr, double beta1, double beta2, double epsilon, double weight_decay);
void em_optimizer_release(em_optimizer *opt);

/* Learning-rate schedules, evaluated at the optimizer's step count. */
em_schedule *em_exponential_decay(double lr, int64_t decay_steps, double decay_rate, bool staircase);
em_schedule *em_piecewise_constant(int n, const int64_t *boundaries, const double *values);
em_schedule *em_cosine_decay(double lr, int64_t decay_steps, double alpha);
/* The optimizer takes ownership of the schedule. */
void em_optimizer_set_schedule(em_optimizer *opt, em_schedule *schedule);
double em_optimizer_learning_rate(const em_optimizer *opt);
int64_t em_optimizer_step(const em_optimizer *opt);

/* grads[i] = d loss / d vars[i] from the tape (NEW tensors). */
int em_compute_gradients(em_optimizer *opt, em_tape *tape, em_tensor *loss, int n,
                         em_tensor *const *vars, em_tensor **grads);
/* Updates vars in place and advances the step count. A NULL grad skips its var. */
int em_apply_gradients(em_optimizer *opt, int n, em_tensor *const *grads, em_tensor *const *vars);
/* compute + apply. n = 0 and vars = NULL mean every trainable variable. */
int em_minimize(em_optimizer *opt, em_tape *tape, em_tensor *loss, int n, em_tensor *const *vars);

/* Gradient clipping (NEW tensors). */
em_tensor *em_clip_by_norm(em_tensor *g, double clip_norm);
/* Rescales all n tensors together so that their global norm is at most
 * clip_norm; writes the new tensors to out and the norm before clipping to *norm. */
int em_clip_by_global_norm(int n, em_tensor *const *grads, double clip_norm,
                           em_tensor **out, double *norm);

/* ---- checkpoints: every variable of this thread and the optimizers' slots ---- */
int em_checkpoint_save(const char *path);
/* Restores into the existing variables (create them first); checks names,
 * dtypes and shapes before changing anything. */
int em_checkpoint_restore(const char *path);

#ifdef __cplusplus
}
#endif
#endif
