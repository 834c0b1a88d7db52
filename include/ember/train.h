/* Variables, variable scopes, name scopes, initializers, optimizers, checkpoints.
 *
 * A variable is a tensor with a name ("scope/sub/name") that lives until
 * em_variables_release / em_shutdown; it belongs to no ownership scope. Ops
 * read it like any tensor; optimizers and em_assign* update it in place. The
 * variables, the variable scopes and the name scopes are per thread. */
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
    /* TensorFlow's fans: a [in, out] matrix has fan_in = in, fan_out = out; a
     * conv filter HWIO [h, w, in, out] has fan_in = h*w*in, fan_out = h*w*out. */
    EM_INIT_GLOROT_UNIFORM,   /* uniform in +-sqrt(6 / (fan_in + fan_out)) */
    EM_INIT_GLOROT_NORMAL,    /* truncated normal, stddev sqrt(2 / (fan_in + fan_out)) / 0.8796 */
    EM_INIT_HE_NORMAL,        /* truncated normal, stddev sqrt(2 / fan_in) / 0.8796 */
    EM_INIT_TENSOR            /* copy of `value`: same dtype; same shape, or shape.ndim < 0 */
} em_init_kind;

/* Random kinds need a float dtype. With seed != 0 the values depend on the
 * seed alone (as after em_set_seed(seed)) and the thread's stream is left
 * where it was; with seed 0 they are drawn from the thread's stream. */
typedef struct em_initializer {
    em_init_kind kind;
    double a, b;
    uint64_t seed;
    em_tensor *value;
} em_initializer;

#define EM_INIT_CONST(v) ((em_initializer){.kind = EM_INIT_CONSTANT, .a = (v)})
#define EM_INIT_NORMAL(mean, std) ((em_initializer){.kind = EM_INIT_RANDOM_NORMAL, .a = (mean), .b = (std)})
#define EM_INIT_TRUNC_NORMAL(mean, std) ((em_initializer){.kind = EM_INIT_TRUNCATED_NORMAL, .a = (mean), .b = (std)})
#define EM_INIT_UNIFORM(lo, hi) ((em_initializer){.kind = EM_INIT_RANDOM_UNIFORM, .a = (lo), .b = (hi)})
#define EM_INIT_GLOROT ((em_initializer){.kind = EM_INIT_GLOROT_UNIFORM})
#define EM_INIT_GLOROT_N ((em_initializer){.kind = EM_INIT_GLOROT_NORMAL})
#define EM_INIT_HE ((em_initializer){.kind = EM_INIT_HE_NORMAL})
#define EM_INIT_FROM(t) ((em_initializer){.kind = EM_INIT_TENSOR, .value = (t)})

/* ---- variable scopes (per thread), TensorFlow 1's semantics ----
 * INHERIT and FALSE take the enclosing scope's reuse (as in TF1, a sub-scope
 * cannot turn reuse off); TRUE reuses existing variables and errors on missing
 * ones; AUTO (tf.AUTO_REUSE) returns existing ones and creates missing ones.
 * Sub-scopes inherit reuse. Opening a scope name twice gives the same prefix. */
typedef enum em_reuse { EM_REUSE_INHERIT, EM_REUSE_FALSE, EM_REUSE_TRUE, EM_REUSE_AUTO } em_reuse;
/* Opens "name" inside the current variable scope (and a name scope of the same name). */
int em_variable_scope_begin(const char *name, em_reuse reuse);
/* Closes the innermost variable scope; -1 if none is open or a name scope
 * opened inside it is still open. */
int em_variable_scope_end(void);
/* The current variable scope path, "" at top level. BORROWED. */
const char *em_variable_scope(void);
/* Turns reuse on for the rest of the innermost variable scope (the seed's
 * "way 2"; at top level, until em_variables_release). */
void em_reuse_variables(void);
/* Name scopes prefix op names (for graphs and TensorBoard) but not variables.
 * em_name_scope_end fails on a name scope opened by em_variable_scope_begin. */
int em_name_scope_begin(const char *name);
int em_name_scope_end(void);
/* The current name scope path, "" at top level. BORROWED. */
const char *em_name_scope(void);

/* ---- variables ---- */
/* Creates "scope/name", or returns the existing one when the scope reuses.
 * BORROWED: the variable lives until em_variables_release. Errors like
 * TensorFlow's: "Variable conv1/weights already exists, disallowed. Did you
 * mean to set reuse=EM_REUSE_TRUE or reuse=EM_REUSE_AUTO in VarScope?", "Variable
 * model/conv1/weights does not exist, or was not created with em_get_variable().
 * ...", "Trying to share variable w, but specified shape [3] and found shape
 * [4]." On reuse, shape.ndim < 0 accepts any shape and init is ignored. When
 * em_checkpoint_restore found the full name in its file but no such variable
 * existed yet, the new variable takes the file's value instead of init. */
em_tensor *em_get_variable(const char *name, em_dtype dtype, em_shape shape, em_initializer init);
/* Like em_get_variable but excluded from the trainable collection. */
em_tensor *em_get_variable_untrainable(const char *name, em_dtype dtype, em_shape shape, em_initializer init);
bool em_is_variable(const em_tensor *t);
const char *em_variable_name(const em_tensor *t); /* BORROWED; NULL if not a variable */
/* The collections, in creation order (global: every variable, optimizer
 * slots and step counts included): fills up to `cap` BORROWED pointers and
 * returns the whole count (out may be NULL with cap 0). */
int em_trainable_variables(em_tensor **out, int cap);
int em_global_variables(em_tensor **out, int cap);
/* Finds a variable by full name. BORROWED, NULL if none. */
em_tensor *em_find_variable(const char *full_name);
/* In-place updates; value broadcasts to the variable's shape and must have
 * its dtype; -1 on a tensor that is not a variable. Not recorded on tapes. */
int em_assign(em_tensor *var, em_tensor *value);
int em_assign_add(em_tensor *var, em_tensor *value);
int em_assign_sub(em_tensor *var, em_tensor *value);
/* Batch norm over every axis but the last (NHWC: per channel) with moving averages, as
 * tf.layers.batch_normalization: the untrainable variables "<scope>/<name>/moving_mean" (zeros) and
 * "<scope>/<name>/moving_variance" (ones), of x's dtype and shape [C], made on the first call and reused.
 * training: normalizes by the batch's mean and (biased) variance in one fused kernel, forward and backward,
 * then moves each average: a = momentum a + (1 - momentum) batch value (the variance's unbiased, as TF's
 * fused kernel and PyTorch take it); the update is not recorded on tapes. Otherwise normalizes by the
 * averages (em_batch_normalization). scale and offset [C] (TF's gamma and beta) are the caller's. */
em_tensor *em_fused_batch_norm(em_tensor *x, em_tensor *scale, em_tensor *offset, double eps, double momentum,
                               bool training, const char *name);
/* Frees every variable of this thread (and the optimizers' slots). */
void em_variables_release(void);

/* ---- optimizers ----
 * TensorFlow 1's update rules (lib/optim.c lists where PyTorch differs).
 * Each optimizer is named after its kind ("GradientDescent", "Momentum",
 * "Adagrad", "AdagradDA", "RMSProp", "Adam", "AdamW"; "Adam_1" for a second
 * one) and owns two float64 scalar variables, "<name>/step" (updates applied)
 * and "<name>/learning_rate", read at every update. Its per-variable state
 * lives in untrainable slot variables named like TensorFlow's: "<var>/Adam"
 * (m) and "<var>/Adam_1" (v); "<var>/Momentum"; "<var>/Adagrad";
 * "<var>/AdagradDA" (gradient sum), "_1" (squared sum); "<var>/RMSProp" (mean
 * square, starting at 1 as in TF1), "_1" (momentum), "_2" (mean, centered).
 * Slots are made at a variable's first update, so checkpoints hold them. */
typedef struct em_optimizer em_optimizer;
typedef struct em_schedule em_schedule;

em_optimizer *em_sgd(double lr);
em_optimizer *em_momentum(double lr, double momentum, bool nesterov);
em_optimizer *em_adagrad(double lr, double initial_accumulator);
em_optimizer *em_adagrad_da(double lr, double initial_accumulator, double l1, double l2);
em_optimizer *em_rmsprop(double lr, double decay, double momentum, double epsilon, bool centered);
em_optimizer *em_adam(double lr, double beta1, double beta2, double epsilon);
/* Adam with decoupled weight decay: var -= lr * weight_decay * var before the
 * Adam step (PyTorch's AdamW; tf.contrib's AdamWOptimizer takes lr * weight_decay). */
em_optimizer *em_adamw(double lr, double beta1, double beta2, double epsilon, double weight_decay);
/* Frees the optimizer; its variables (step, learning rate, slots) stay until
 * em_variables_release. */
void em_optimizer_release(em_optimizer *opt);
const char *em_optimizer_name(const em_optimizer *opt); /* BORROWED */

/* Learning-rate schedules, evaluated at the optimizer's step count before
 * each update (TF1's definitions). Invalid arguments give NULL. */
em_schedule *em_exponential_decay(double lr, int64_t decay_steps, double decay_rate, bool staircase);
/* n boundaries and n + 1 values: values[0] while step <= boundaries[0],
 * values[i] while boundaries[i-1] < step <= boundaries[i], values[n] after. */
em_schedule *em_piecewise_constant(int n, const int64_t *boundaries, const double *values);
em_schedule *em_cosine_decay(double lr, int64_t decay_steps, double alpha);
/* Linear warm-up from 0 at step 0 to lr at warmup_steps (optax's and Hugging Face's warm-up; the first
 * update, at step 0, uses rate 0), then em_cosine_decay's curve from lr to alpha * lr over the next
 * decay_steps steps, alpha * lr after. decay_steps counts the decay alone (optax's decay_steps is
 * warmup_steps + decay_steps); warmup_steps 0 is em_cosine_decay. */
em_schedule *em_warmup_cosine_decay(double lr, int64_t warmup_steps, int64_t decay_steps, double alpha);
double em_schedule_value(const em_schedule *schedule, int64_t step);
/* Frees a schedule that was not given to an optimizer. */
void em_schedule_release(em_schedule *schedule);
/* The optimizer takes ownership of the schedule (also on failure); each
 * update writes the scheduled rate into "<name>/learning_rate". */
int em_optimizer_set_schedule(em_optimizer *opt, em_schedule *schedule);
/* Sets "<name>/learning_rate" (and drops a schedule). */
int em_optimizer_set_learning_rate(em_optimizer *opt, double lr);
/* AdamW: decays(name, ctx) says whether the variable of that full name decays, asked at each update
 * (eager or in a graph's replay); it is typically true for matrices and false for biases and norm gains.
 * NULL decays every variable (the default). -1 with an error for an optimizer other than AdamW. */
int em_optimizer_set_decay_filter(em_optimizer *opt, bool (*decays)(const char *name, void *ctx), void *ctx);
/* The rate the next update will use. */
double em_optimizer_learning_rate(const em_optimizer *opt);
int64_t em_optimizer_step(const em_optimizer *opt);
/* The float64 scalar variables "<name>/learning_rate" and "<name>/step".
 * BORROWED, alive until em_optimizer_release. */
em_tensor *em_optimizer_learning_rate_tensor(const em_optimizer *opt);
em_tensor *em_optimizer_step_tensor(const em_optimizer *opt);

/* grads[i] = d loss / d vars[i] from the tape (NEW tensors). */
int em_compute_gradients(em_optimizer *opt, em_tape *tape, em_tensor *loss, int n,
                         em_tensor *const *vars, em_tensor **grads);
/* Updates vars in place (one fused pass per variable) and advances the step
 * count. A NULL grad skips its var. Every grad is checked (same dtype and
 * shape as its variable) before any variable changes. */
int em_apply_gradients(em_optimizer *opt, int n, em_tensor *const *grads, em_tensor *const *vars);
/* compute + apply, its temporaries freed. n = 0 and vars = NULL mean every
 * trainable variable. A variable the loss does not depend on gets a zero
 * gradient (em_gradients' rule), which still moves momentum-like slots. */
int em_minimize(em_optimizer *opt, em_tape *tape, em_tensor *loss, int n, em_tensor *const *vars);
/* The same two, returning the optimizer's new step count (a NEW float64
 * scalar): in a traced graph this is the train op, the fetch that runs the
 * update (like sess.run(train_op)). NULL with an error. */
em_tensor *em_apply_gradients_op(em_optimizer *opt, int n, em_tensor *const *grads, em_tensor *const *vars);
em_tensor *em_minimize_op(em_optimizer *opt, em_tape *tape, em_tensor *loss, int n, em_tensor *const *vars);

/* Gradient accumulation over micro-batches: acc[i] += grads[i] in place, on the device where they are (one
 * fused pass, no copy; denormal sums flush to zero, as optimizer updates do); a NULL grads[i] leaves acc[i]
 * as it is. acc[i] is a contiguous float tensor the caller holds (the first micro-batch's gradients, say);
 * grads[i] has its dtype, shape and device. Every pair is checked before any acc changes. 0, or -1 with an
 * error naming the index. */
int em_gradients_accumulate(int n, em_tensor **acc, em_tensor **grads);

/* Gradient clipping (NEW tensors), TensorFlow's definitions, built from ops.
 * g * clip_norm / max(l2norm(g), clip_norm). */
em_tensor *em_clip_by_norm(em_tensor *g, double clip_norm);
/* Rescales all n tensors together so that their global norm is at most
 * clip_norm: out[i] = grads[i] * clip_norm / max(global_norm, clip_norm).
 * NULL grads give NULL outs; *norm (if norm is not NULL) gets the norm before
 * clipping. */
int em_clip_by_global_norm(int n, em_tensor *const *grads, double clip_norm,
                           em_tensor **out, double *norm);

/* ---- mixed precision: autocast and dynamic loss scaling ----
 * As torch.autocast and Keras' mixed policy: inside em_autocast_begin(EM_BF16) ... em_autocast_end(), every op
 * called on this thread casts its inputs first, with em_cast (so tapes differentiate through the casts and
 * traced graphs hold them):
 *   - matmul, conv2d, depthwise_conv2d and attention cast their float32 inputs (and those of the other
 *     narrow dtype) to the autocast dtype: the compute-bound ops run, and keep their outputs, narrow;
 *   - softmax, log_softmax, the cross-entropy losses, layer_norm, rms_norm, batch_norm, sum, prod,
 *     log_sum_exp, cumsum and cumprod cast their bfloat16 and float16 inputs to float32, for the range and
 *     the precision;
 *   - any other op given float32 beside bfloat16 or float16 (a narrow matmul output plus a float32 bias)
 *     casts them to the autocast dtype, as a layer computes under Keras' mixed policy, so that the
 *     activations the backward pass keeps stay narrow (PyTorch would promote to float32 and keep twice the
 *     bytes); outside autocast that mix is an error.
 * Only float inputs are cast, never integer labels or indices, nor the inputs of in-place updates. The
 * variables stay float32 (master weights): their casts' gradients are cast back, so gradients and optimizer
 * updates are float32. Wrap the forward pass and the loss; gradients may be asked inside or after the region:
 * the gradient rules run outside autocast, in the dtypes the forward pass chose (as PyTorch's backward). A
 * traced graph replays the casts it recorded, autocast open or not when it runs. Nestable (the innermost
 * dtype applies), per thread; em_shutdown closes them all. */
/* dtype: EM_BF16 or EM_F16. 0, or -1 with an error (another dtype, nesting deeper than 64). */
int em_autocast_begin(em_dtype dtype);
/* Closes the innermost autocast region. 0, or -1 with an error when none is open. */
int em_autocast_end(void);
/* The dtype of the innermost open region; EM_F32 outside autocast. */
em_dtype em_autocast_dtype(void);

/* Dynamic loss scaling for float16 training (torch.cuda.amp.GradScaler, TF's DynamicLossScale): float16's
 * smallest normal is 6.1e-5, so small gradients vanish unless the loss is first multiplied by a large scale;
 * the gradients are divided by it again before the update. Too large a scale overflows them: then the step
 * is skipped and the scale shrinks, and after growth_interval clean steps in a row it grows again.
 *
 *   em_loss_scaler *scaler = em_dynamic_loss_scaler(65536, 2, 0.5, 2000);
 *   em_tape *tape = em_tape_begin(false);
 *   em_autocast_begin(EM_F16);
 *   em_tensor *loss = ...;
 *   em_autocast_end();
 *   em_tensor *scaled = em_loss_scaler_scale(scaler, loss);
 *   em_tape_stop(tape);
 *   em_compute_gradients(opt, tape, scaled, n, vars, grads);
 *   em_loss_scaler_step(scaler, opt, n, grads, vars);       // 1: skipped (overflow)
 *
 * The step reads the overflow check back to the host: it runs eagerly, not in a traced graph. */
typedef struct em_loss_scaler em_loss_scaler;
/* init_scale > 0 (PyTorch's default 65536), growth_factor > 1 (2), backoff_factor in (0, 1) (0.5),
 * growth_interval >= 1 (2000). NULL with an error for other values. */
em_loss_scaler *em_dynamic_loss_scaler(double init_scale, double growth_factor, double backoff_factor,
                                       int growth_interval);
void em_loss_scaler_release(em_loss_scaler *scaler);
/* loss * the current scale (NEW, loss's dtype): the tensor to differentiate. */
em_tensor *em_loss_scaler_scale(em_loss_scaler *scaler, em_tensor *loss);
/* grads are the gradients of the scaled loss for vars (em_apply_gradients' arguments; NULL grads skip their
 * variables). Divides them by the scale and checks them for Inf and NaN together (one pass over each, one
 * read back): with none, applies the optimizer to the unscaled gradients and returns 0, growing the scale by
 * growth_factor after growth_interval such steps in a row; otherwise changes no variable (nor the
 * optimizer's step count), multiplies the scale by backoff_factor and returns 1. -1 with an error
 * (em_apply_gradients' checks; nothing changes then). */
int em_loss_scaler_step(em_loss_scaler *scaler, em_optimizer *opt, int n, em_tensor *const *grads,
                        em_tensor *const *vars);
/* The current scale; the steps skipped so far. */
double em_loss_scaler_get_scale(const em_loss_scaler *scaler);
int64_t em_loss_scaler_skipped(const em_loss_scaler *scaler);

/* ---- checkpoints: every variable of this thread and the optimizers' slots ----
 * One file: magic, format version, count, then per variable its name, dtype,
 * shape and data (little-endian), then a CRC-32 of all that. Saving writes
 * "<path>.tmp.<pid>", syncs it and renames it over path, so a failed save
 * leaves the previous checkpoint whole (as for every file Ember writes;
 * symbolic links and paths that are not regular files: see ember/io.h). The
 * writer holds an exclusive flock() on its temporary file until the rename;
 * a save first removes the temporary files of earlier saves to the same path
 * that no writer holds (theirs were killed), and never touches one a live
 * writer holds, in this process or another. */
int em_checkpoint_save(const char *path);
/* Reads and checks the whole file (magic, version, length, checksum, and each
 * existing variable present with its dtype and shape) before changing any
 * variable; on error none changes. Entries with no variable yet (e.g. the
 * slots of an optimizer that has not run) are kept and given to the variable
 * of that name when it is created, until the next restore or
 * em_variables_release. */
int em_checkpoint_restore(const char *path);

/* ---- checkpoint manager: keep the last N, resume from the newest ----
 * Like TensorFlow's tf.train.CheckpointManager (and Saver's max_to_keep and
 * latest_checkpoint). A manager owns, in dir, the checkpoints
 * "<prefix>-<step>" and the index "<prefix>.index", a text file that names
 * the checkpoints kept, oldest first, newest last. Each checkpoint holds
 * what a resumed run needs to go on exactly as if never stopped: every
 * variable of this thread with the optimizers' slots and step counts, the
 * global step, this thread's random stream (em_set_seed's seed and how far
 * it has been drawn, so dropout continues rather than repeats) and the
 * program's own named values (a data position, an epoch, a shuffle state).
 *
 *   em_checkpoint_manager *ckpt = em_checkpoint_manager_open("runs/ckpt", "model", 5);
 *   ... make the variables and the optimizer ...
 *   int64_t step = 0;
 *   if (em_checkpoint_manager_restore_latest(ckpt) == 1) {   // 0: nothing yet, start fresh
 *       step = em_checkpoint_manager_step(ckpt);
 *       em_checkpoint_manager_get_value(ckpt, "epoch", &epoch);
 *   }
 *   for (step++; step <= total; step++) {
 *       ... one training step ...
 *       if (step % 100 == 0) {
 *           em_checkpoint_manager_set_value(ckpt, "epoch", epoch);
 *           if (em_checkpoint_manager_save(ckpt, step)) ...error...
 *       }
 *   }
 *   em_checkpoint_manager_close(ckpt);
 *
 * Files named "<prefix>-<digits>" in dir belong to the manager: one its
 * index does not list (left by a save killed between writing it and writing
 * the index) is removed by the next save. One process at a time may save
 * through a manager of a given dir and prefix (several MPI ranks: see
 * em_dist_checkpoint_manager_open in dist.h). A manager is used by one
 * thread, the one whose variables it saves. */
typedef struct em_checkpoint_manager em_checkpoint_manager;

/* Makes dir (and its parents) if missing. prefix names the files: not
 * empty, no '/', no whitespace or control characters, at most 200 bytes.
 * max_to_keep <= 0 keeps every checkpoint. NULL with an error. */
em_checkpoint_manager *em_checkpoint_manager_open(const char *dir, const char *prefix, int max_to_keep);
/* Saves "<dir>/<prefix>-<step>" (step >= 0) with every variable, the step,
 * the random stream and the values set on the manager, then the index (each
 * written atomically: temporary file, fsync, rename), then deletes the
 * checkpoints beyond max_to_keep (oldest first), files the index does not
 * list, and temporary files of killed saves. Saving a step already kept
 * replaces it (it becomes the newest). 0, or -1 with an error naming the
 * path; the checkpoints kept before stay whole. */
int em_checkpoint_manager_save(em_checkpoint_manager *mgr, int64_t step);
/* The path of the newest complete checkpoint ("<dir>/<prefix>-<step>",
 * BORROWED until the next call with mgr), checked by reading it whole (its
 * checksum); NULL when there is none (no error set). Entries of the index
 * that are missing or damaged are skipped (see _last_fallback); a missing or
 * damaged index falls back to the checkpoints found in dir, by step. */
const char *em_checkpoint_manager_latest(em_checkpoint_manager *mgr);
/* Restores the newest complete checkpoint, as em_checkpoint_restore does,
 * with its step, random stream and values (which replace the manager's).
 * Returns 1 when it restored, 0 when there was no checkpoint (nothing
 * changes), -1 with an error: the checkpoint does not fit the variables (a
 * variable missing from it, another dtype or shape), or every checkpoint the
 * index names is missing or damaged. Skipping a damaged or missing newest
 * checkpoint for an older one is not an error: _last_fallback says what was
 * skipped and why. */
int em_checkpoint_manager_restore_latest(em_checkpoint_manager *mgr);
/* What the last _latest or _restore_latest skipped and why ("<path>: <what
 * was wrong>; ...; using <path>"); NULL when it skipped nothing. BORROWED
 * until the next call with mgr. */
const char *em_checkpoint_manager_last_fallback(const em_checkpoint_manager *mgr);
/* The step of the checkpoint last saved or restored through mgr; -1 before. */
int64_t em_checkpoint_manager_step(const em_checkpoint_manager *mgr);
/* The program's named values, saved with every checkpoint and replaced by
 * the restored checkpoint's. A key (not empty, at most 1024 bytes) holds a
 * double or a string (at most 1 MiB); setting replaces either. The getters
 * return 1 and fill *value when the key holds a value of that kind, 0 when
 * the key is not set (*value unchanged), -1 with an error when it holds the
 * other kind or an argument is NULL. A string is BORROWED until the key is
 * set again, a restore, or _close. */
int em_checkpoint_manager_set_value(em_checkpoint_manager *mgr, const char *key, double value);
int em_checkpoint_manager_get_value(const em_checkpoint_manager *mgr, const char *key, double *value);
int em_checkpoint_manager_set_string(em_checkpoint_manager *mgr, const char *key, const char *value);
int em_checkpoint_manager_get_string(const em_checkpoint_manager *mgr, const char *key, const char **value);
/* Frees mgr (the files stay). mgr may be NULL. */
void em_checkpoint_manager_close(em_checkpoint_manager *mgr);

#ifdef __cplusplus
}
#endif
#endif
