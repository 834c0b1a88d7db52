/* Optimizers, learning-rate schedules and gradient clipping.
 *
 * Update rules: TensorFlow 1's tf.train kernels (training_ops.cc), per element,
 * with g the gradient, lr the learning rate and t the update's 1-based number.
 *
 *   GradientDescent  var -= lr * g
 *   Momentum         accum = momentum * accum + g
 *                    var -= lr * accum                       (nesterov: var -= lr * g + lr * momentum * accum)
 *   Adagrad          accum += g^2;  var -= lr * g / sqrt(accum)              (accum starts at initial_accumulator)
 *   AdagradDA        gsum += g;  g2sum += g^2                               (g2sum starts at initial_accumulator)
 *                    var = -lr * sign(gsum) * max(|gsum| - l1 * t, 0) / (l2 * t * lr + sqrt(g2sum))
 *   RMSProp          ms = decay * ms + (1 - decay) * g^2                      (ms starts at 1)
 *                    centered: mg = decay * mg + (1 - decay) * g;  d = ms - mg^2;  else d = ms
 *                    mom = momentum * mom + lr * g / sqrt(d + epsilon);  var -= mom
 *   Adam             m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g^2
 *                    var -= lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + epsilon)
 *   AdamW            var -= lr * weight_decay * var, then the Adam step; a decay filter
 *                    (em_optimizer_set_decay_filter) leaves the variables it refuses undecayed
 *
 * Where PyTorch's torch.optim defines them differently (same names, other numbers):
 *   - Adam/AdamW: PyTorch adds epsilon to sqrt(v / (1 - beta2^t)), TF to sqrt(v)
 *     (TF's is "epsilon hat" of the Adam paper): TF's epsilon = PyTorch's
 *     epsilon * sqrt(1 - beta2^t), so the two agree only when epsilon is tiny.
 *   - AdamW: tf.contrib.opt.AdamWOptimizer subtracts weight_decay * var, not
 *     scaled by lr; PyTorch (and Ember) subtract lr * weight_decay * var, so a
 *     schedule scales the decay too. TF's weight_decay = Ember's lr * weight_decay.
 *   - Momentum: both accumulate the raw gradient and multiply by lr at the
 *     update (unlike Sutskever et al.'s v = mu * v + lr * g), so a changing lr
 *     acts at once; PyTorch's dampening (default 0) has no TF counterpart, and
 *     PyTorch's Nesterov step is var -= lr * (g + momentum * accum), the same.
 *   - RMSProp: TF starts the mean square at 1 and puts epsilon inside the
 *     square root, with lr inside the momentum buffer; PyTorch starts it at 0,
 *     adds epsilon outside the root (default 1e-8, TF 1e-10) and applies lr
 *     after the buffer.
 *   - Adagrad: TF has no epsilon and starts the accumulator at 0.1 (its default
 *     initial_accumulator_value); PyTorch adds 1e-10 outside the root and starts at 0.
 *   - AdagradDA has no PyTorch counterpart; t is TF's global_step + 1.
 *
 * The step count and the learning rate are float64 scalar variables read at
 * each update (so a replayed graph sees current values). One apply is one op,
 * apply_updates (lib/ops/optim.c, given the rule in em_update_rule), whose kernel runs one fused pass over each variable's memory:
 * eager calls run it at once, a trace records it like any op, and a graph
 * replays it (reading the schedule, step and rate at run time). Scalar
 * coefficients (1 - beta, Adam's bias-corrected rate) are computed in double
 * before the float32 loops; TF rounds 1 - beta in float32 (1e-5 relative). */
#include "ops/optim.h"
#include "variable.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>


static const char *const kind_names[] = {
    [OPT_SGD] = "GradientDescent", [OPT_MOMENTUM] = "Momentum", [OPT_ADAGRAD] = "Adagrad",
    [OPT_ADAGRAD_DA] = "AdagradDA", [OPT_RMSPROP] = "RMSProp",   [OPT_ADAM] = "Adam",
    [OPT_ADAMW] = "AdamW",
};

struct em_schedule {
    enum { SCHED_EXPONENTIAL, SCHED_PIECEWISE, SCHED_COSINE } kind;
    double lr, rate, alpha;
    int64_t steps, warmup; /* warmup: the cosine's linear warm-up steps (0: none) */
    bool staircase;
    int n;
    int64_t *bounds;
    double *values;
};

struct em_optimizer {
    em_update_rule r; /* what apply_updates reads (lib/ops/optim.h); first: the op's attribute points here */
    uint64_t id;
    char name[64];
    double slot_init[3];
    em_tensor *step, *lr; /* float64 scalar variables; the optimizer holds a reference */
};

static atomic_uint_fast64_t next_id = 1; /* keys slots by optimizer, never reused */

/* ---- construction ---- */

static int check_range(const char *op, const char *what, double x, double lo, double hi, bool hi_open) {
    if (isfinite(x) && x >= lo && (hi_open ? x < hi : x <= hi)) return 0;
    em__error("%s: %s must be in [%g, %g%s, got %g", op, what, lo, hi, hi_open ? ")" : "]", x);
    return -1;
}

static em_optimizer *make(const char *op, em_opt_kind kind, double lr) {
    if (check_range(op, "learning rate", lr, 0, INFINITY, true)) return NULL;
    em_optimizer *o = calloc(1, sizeof *o);
    if (!o) {
        em__error("%s: out of memory", op);
        return NULL;
    }
    o->r.kind = kind;
    o->r.schedule_value = em_schedule_value;
    o->id = atomic_fetch_add(&next_id, 1);
    char step[96], rate[96];
    for (int k = 0;; k++) {
        if (k) snprintf(o->name, sizeof o->name, "%s_%d", kind_names[kind], k);
        else snprintf(o->name, sizeof o->name, "%s", kind_names[kind]);
        snprintf(step, sizeof step, "%s/step", o->name);
        snprintf(rate, sizeof rate, "%s/learning_rate", o->name);
        if (!em_find_variable(step) && !em_find_variable(rate)) break;
    }
    /* The step count and learning rate stay in host memory whatever the
     * device scope: the update reads them on the host. */
    {
        EM_ON_DEVICE(0);
        o->step = em__variable_new(op, step, EM_F64, EM_SHAPE0, &EM_INIT_CONST(0), false);
        if (o->step) em__retain(o->step);
        o->lr = o->step ? em__variable_new(op, rate, EM_F64, EM_SHAPE0, &EM_INIT_CONST(lr), false) : NULL;
    }
    if (!o->lr) {
        em_optimizer_release(o);
        return NULL;
    }
    em__retain(o->lr);
    return o;
}

em_optimizer *em_sgd(double lr) { return make("sgd", OPT_SGD, lr); }

em_optimizer *em_momentum(double lr, double momentum, bool nesterov) {
    if (check_range("momentum", "momentum", momentum, 0, INFINITY, true)) return NULL;
    em_optimizer *o = make("momentum", OPT_MOMENTUM, lr);
    if (!o) return NULL;
    o->r.momentum = momentum;
    o->r.nesterov = nesterov;
    o->r.nslots = 1;
    return o;
}

em_optimizer *em_adagrad(double lr, double initial_accumulator) {
    if (check_range("adagrad", "initial_accumulator", initial_accumulator, 0, INFINITY, true)) return NULL;
    em_optimizer *o = make("adagrad", OPT_ADAGRAD, lr);
    if (!o) return NULL;
    o->r.nslots = 1;
    o->slot_init[0] = initial_accumulator;
    return o;
}

em_optimizer *em_adagrad_da(double lr, double initial_accumulator, double l1, double l2) {
    const char *op = "adagrad_da";
    if (check_range(op, "initial_accumulator", initial_accumulator, 0, INFINITY, true) ||
        check_range(op, "l1", l1, 0, INFINITY, true) || check_range(op, "l2", l2, 0, INFINITY, true))
        return NULL;
    em_optimizer *o = make(op, OPT_ADAGRAD_DA, lr);
    if (!o) return NULL;
    o->r.l1 = l1;
    o->r.l2 = l2;
    o->r.nslots = 2;
    o->slot_init[1] = initial_accumulator;
    return o;
}

em_optimizer *em_rmsprop(double lr, double decay, double momentum, double epsilon, bool centered) {
    const char *op = "rmsprop";
    if (check_range(op, "decay", decay, 0, 1, false) || check_range(op, "momentum", momentum, 0, INFINITY, true) ||
        check_range(op, "epsilon", epsilon, 0, INFINITY, true))
        return NULL;
    em_optimizer *o = make(op, OPT_RMSPROP, lr);
    if (!o) return NULL;
    o->r.decay = decay;
    o->r.momentum = momentum;
    o->r.epsilon = epsilon;
    o->r.centered = centered;
    o->r.nslots = centered ? 3 : 2;
    o->slot_init[0] = 1; /* TF1 starts the mean square at 1 */
    return o;
}

static em_optimizer *adam(const char *op, em_opt_kind kind, double lr, double beta1, double beta2, double epsilon,
                          double weight_decay) {
    if (check_range(op, "beta1", beta1, 0, 1, true) || check_range(op, "beta2", beta2, 0, 1, true) ||
        check_range(op, "epsilon", epsilon, 0, INFINITY, true) ||
        check_range(op, "weight_decay", weight_decay, 0, INFINITY, true))
        return NULL;
    em_optimizer *o = make(op, kind, lr);
    if (!o) return NULL;
    o->r.beta1 = beta1;
    o->r.beta2 = beta2;
    o->r.epsilon = epsilon;
    o->r.weight_decay = weight_decay;
    o->r.nslots = 2;
    return o;
}

em_optimizer *em_adam(double lr, double beta1, double beta2, double epsilon) {
    return adam("adam", OPT_ADAM, lr, beta1, beta2, epsilon, 0);
}

em_optimizer *em_adamw(double lr, double beta1, double beta2, double epsilon, double weight_decay) {
    return adam("adamw", OPT_ADAMW, lr, beta1, beta2, epsilon, weight_decay);
}

void em_optimizer_release(em_optimizer *o) {
    if (!o) return;
    if (o->step) em__unref(o->step);
    if (o->lr) em__unref(o->lr);
    em_schedule_release(o->r.schedule);
    free(o);
}

const char *em_optimizer_name(const em_optimizer *o) { return o ? o->name : NULL; }

/* ---- schedules ---- */

static em_schedule *new_schedule(const char *op) {
    em_schedule *s = calloc(1, sizeof *s);
    if (!s) em__error("%s: out of memory", op);
    return s;
}

em_schedule *em_exponential_decay(double lr, int64_t decay_steps, double decay_rate, bool staircase) {
    const char *op = "exponential_decay";
    if (decay_steps < 1) {
        em__error("%s: decay_steps must be positive, got %" PRId64, op, decay_steps);
        return NULL;
    }
    if (check_range(op, "learning rate", lr, 0, INFINITY, true) ||
        check_range(op, "decay_rate", decay_rate, 0, INFINITY, true))
        return NULL;
    em_schedule *s = new_schedule(op);
    if (s) *s = (em_schedule){.kind = SCHED_EXPONENTIAL, .lr = lr, .rate = decay_rate, .steps = decay_steps,
                              .staircase = staircase};
    return s;
}

em_schedule *em_piecewise_constant(int n, const int64_t *boundaries, const double *values) {
    const char *op = "piecewise_constant";
    if (n < 0 || (n && !boundaries) || !values) {
        em__error("%s: needs n >= 0 boundaries and n + 1 values (n = %d%s%s)", op, n,
                  n && !boundaries ? ", boundaries NULL" : "", !values ? ", values NULL" : "");
        return NULL;
    }
    for (int i = 1; i < n; i++)
        if (boundaries[i] <= boundaries[i - 1]) {
            em__error("%s: boundaries must increase, but boundaries[%d] = %" PRId64 " follows %" PRId64, op, i,
                      boundaries[i], boundaries[i - 1]);
            return NULL;
        }
    em_schedule *s = new_schedule(op);
    if (!s) return NULL;
    s->kind = SCHED_PIECEWISE;
    s->n = n;
    s->bounds = malloc(sizeof *s->bounds * (size_t)(n ? n : 1));
    s->values = malloc(sizeof *s->values * (size_t)(n + 1));
    if (!s->bounds || !s->values) {
        em_schedule_release(s);
        em__error("%s: out of memory", op);
        return NULL;
    }
    if (n) memcpy(s->bounds, boundaries, sizeof *s->bounds * (size_t)n);
    memcpy(s->values, values, sizeof *s->values * (size_t)(n + 1));
    return s;
}

static em_schedule *cosine(const char *op, double lr, int64_t warmup_steps, int64_t decay_steps, double alpha) {
    if (warmup_steps < 0) {
        em__error("%s: warmup_steps must be >= 0, got %" PRId64, op, warmup_steps);
        return NULL;
    }
    if (decay_steps < 1) {
        em__error("%s: decay_steps must be positive, got %" PRId64, op, decay_steps);
        return NULL;
    }
    if (check_range(op, "learning rate", lr, 0, INFINITY, true) || check_range(op, "alpha", alpha, 0, 1, false))
        return NULL;
    em_schedule *s = new_schedule(op);
    if (s)
        *s = (em_schedule){.kind = SCHED_COSINE, .lr = lr, .alpha = alpha, .steps = decay_steps,
                           .warmup = warmup_steps};
    return s;
}

em_schedule *em_cosine_decay(double lr, int64_t decay_steps, double alpha) {
    return cosine("cosine_decay", lr, 0, decay_steps, alpha);
}

em_schedule *em_warmup_cosine_decay(double lr, int64_t warmup_steps, int64_t decay_steps, double alpha) {
    return cosine("warmup_cosine_decay", lr, warmup_steps, decay_steps, alpha);
}

double em_schedule_value(const em_schedule *s, int64_t step) {
    if (!s) {
        em__error_null("schedule_value: schedule is NULL");
        return NAN;
    }
    switch (s->kind) {
    case SCHED_EXPONENTIAL: {
        double p = (double)step / (double)s->steps;
        return s->lr * pow(s->rate, s->staircase ? floor(p) : p);
    }
    case SCHED_PIECEWISE: {
        int i = 0;
        while (i < s->n && step > s->bounds[i]) i++;
        return s->values[i];
    }
    case SCHED_COSINE: {
        if (step < s->warmup) return s->lr * (double)step / (double)s->warmup; /* 0 at step 0, as optax's */
        int64_t d = step - s->warmup;
        double p = (double)(d < s->steps ? d : s->steps) / (double)s->steps;
        return s->lr * ((1 - s->alpha) * 0.5 * (1 + cos(M_PI * p)) + s->alpha);
    }
    }
    return NAN;
}

void em_schedule_release(em_schedule *s) {
    if (!s) return;
    free(s->bounds);
    free(s->values);
    free(s);
}

int em_optimizer_set_schedule(em_optimizer *o, em_schedule *s) {
    if (!o || !s) {
        em_schedule_release(s);
        em__error_null("set_schedule: %s is NULL", o ? "the schedule" : "the optimizer");
        return -1;
    }
    em_schedule_release(o->r.schedule);
    o->r.schedule = s;
    return 0;
}

int em_optimizer_set_learning_rate(em_optimizer *o, double lr) {
    if (!o) {
        em__error_null("set_learning_rate: the optimizer is NULL");
        return -1;
    }
    if (check_range("set_learning_rate", "learning rate", lr, 0, INFINITY, true)) return -1;
    em_schedule_release(o->r.schedule);
    o->r.schedule = NULL;
    *(double *)o->lr->data = lr;
    return 0;
}

int em_optimizer_set_decay_filter(em_optimizer *o, bool (*decays)(const char *name, void *ctx), void *ctx) {
    if (!o) {
        em__error("set_decay_filter: the optimizer is NULL");
        return -1;
    }
    if (o->r.kind != OPT_ADAMW) {
        em__error("set_decay_filter: optimizer %s has no weight decay (only AdamW decays)", o->name);
        return -1;
    }
    o->r.decays = decays;
    o->r.decays_ctx = ctx;
    return 0;
}

static double step_of(const em_optimizer *o) { return *(const double *)o->step->data; }

double em_optimizer_learning_rate(const em_optimizer *o) {
    if (!o) return NAN;
    return o->r.schedule ? em_schedule_value(o->r.schedule, (int64_t)step_of(o)) : *(const double *)o->lr->data;
}

int64_t em_optimizer_step(const em_optimizer *o) { return o ? (int64_t)step_of(o) : -1; }
em_tensor *em_optimizer_learning_rate_tensor(const em_optimizer *o) { return o ? o->lr : NULL; }
em_tensor *em_optimizer_step_tensor(const em_optimizer *o) { return o ? o->step : NULL; }

/* ---- slots ---- */

/* v's slot variables for o, made on first use. NULL with an error. */
static em_tensor **slots_of(em_optimizer *o, em_tensor *v) {
    struct em_variable_info *vi = v->var;
    for (int k = 0; k < vi->nslots; k++)
        if (vi->slots[k].owner == o->id) return vi->slots[k].slot;
    em_slot_set set = {.owner = o->id};
    for (int j = 0; j < o->r.nslots; j++) {
        /* "<var>/Adam", then "<var>/Adam_1", ...: TensorFlow's unique names. */
        char name[1024];
        for (int k = 0;; k++) {
            int len = k ? snprintf(name, sizeof name, "%s/%s_%d", vi->name, kind_names[o->r.kind], k)
                        : snprintf(name, sizeof name, "%s/%s", vi->name, kind_names[o->r.kind]);
            if (len >= (int)sizeof name) {
                em__error("apply_gradients: variable name %s is too long for its slot names", vi->name);
                return NULL;
            }
            if (!em_find_variable(name)) break;
        }
        {
            EM_ON_DEVICE(v->device); /* a slot lives with its variable */
            set.slot[j] = em__variable_new("apply_gradients", name, (em_dtype)v->dtype, em__shape_of(v),
                                           &EM_INIT_CONST(o->slot_init[j]), false);
        }
        if (!set.slot[j]) return NULL;
    }
    em_slot_set *grown = realloc(vi->slots, sizeof *grown * (size_t)(vi->nslots + 1));
    if (!grown) {
        em__error("apply_gradients: out of memory");
        return NULL;
    }
    vi->slots = grown;
    grown[vi->nslots] = set;
    return grown[vi->nslots++].slot;
}

/* ---- compute and apply ---- */

int em_compute_gradients(em_optimizer *o, em_tape *tape, em_tensor *loss, int n, em_tensor *const *vars,
                         em_tensor **grads) {
    if (!o) {
        em__error_null("compute_gradients: the optimizer is NULL");
        return -1;
    }
    if (n < 1 || !vars || !grads) {
        em__error("compute_gradients: needs n >= 1 variables and room for their gradients (n = %d)", n);
        return -1;
    }
    return em_gradients(tape, loss, n, vars, grads);
}

static int check_pair(int i, em_tensor *g, em_tensor *v) {
    const char *op = "apply_gradients";
    char b1[160], b2[160];
    if (!v) {
        em__error_null("%s: vars[%d] is NULL", op, i);
        return -1;
    }
    if (!em_is_variable(v)) {
        em__error("%s: vars[%d] (%s %s) is not a variable", op, i, em_dtype_name((em_dtype)v->dtype),
                  em__tshape(v, b1, sizeof b1));
        return -1;
    }
    if (!em__is_float((em_dtype)v->dtype)) {
        em__error("%s: variable %s is %s; only float32 and float64 variables can be trained", op, v->var->name,
                  em_dtype_name((em_dtype)v->dtype));
        return -1;
    }
    if (!g) return 0;
    if (g->device != v->device && (em__is_gpu(g->device) || em__is_gpu(v->device))) {
        em__error("%s: gradient %d is on %s but variable %s is on %s (copy it with em_to_device)", op, i,
                  em_tensor_device(g), v->var->name, em_tensor_device(v));
        return -1;
    }
    if (g->dtype != v->dtype || !em_shape_equal(em__shape_of(g), em__shape_of(v))) {
        em__error("%s: gradient %d is %s %s but variable %s is %s %s", op, i, em_dtype_name((em_dtype)g->dtype),
                  em__tshape(g, b1, sizeof b1), v->var->name, em_dtype_name((em_dtype)v->dtype),
                  em__tshape(v, b2, sizeof b2));
        return -1;
    }
    return 0;
}

em_tensor *em_apply_gradients_op(em_optimizer *o, int n, em_tensor *const *grads, em_tensor *const *vars) {
    const char *op = "apply_gradients";
    if (!o) {
        em__error_null("%s: the optimizer is NULL", op);
        return NULL;
    }
    if (n < 1 || !grads || !vars) {
        em__error("%s: needs n >= 1 gradients and variables (n = %d)", op, n);
        return NULL;
    }
    int used = 0;
    for (int i = 0; i < n; i++) {
        if (check_pair(i, grads[i], vars[i])) return NULL;
        used += grads[i] != NULL;
    }
    if (!used) {
        em__error_null("%s: no gradients provided for any variable (every grad is NULL)", op);
        return NULL;
    }
    /* Everything that can fail happens before the update runs. */
    int per = 2 + o->r.nslots, nin = 2 + used * per;
    em_tensor *small[2 + 16 * 5], **in = nin <= (int)(sizeof small / sizeof small[0]) ? small
                                                                                       : malloc(sizeof *in * (size_t)nin);
    if (!in) {
        em__error("%s: out of memory", op);
        return NULL;
    }
    in[0] = o->step;
    in[1] = o->lr;
    int at = 2;
    for (int i = 0; i < n; i++) {
        if (!grads[i]) continue;
        em_tensor **slots = slots_of(o, vars[i]);
        if (!slots) {
            if (in != small) free(in);
            return NULL;
        }
        in[at++] = vars[i];
        in[at++] = grads[i];
        for (int k = 0; k < o->r.nslots; k++) in[at++] = slots[k];
    }
    em_tensor *step = em__apply(EM_OP_APPLY_UPDATES, nin, in,
                                &(em_attrs){.i = {used}, .ni = 1, .seed = (uint64_t)(uintptr_t)&o->r});
    if (in != small) free(in);
    return step;
}

int em_apply_gradients(em_optimizer *o, int n, em_tensor *const *grads, em_tensor *const *vars) {
    return em_apply_gradients_op(o, n, grads, vars) ? 0 : -1;
}

em_tensor *em_minimize_op(em_optimizer *o, em_tape *tape, em_tensor *loss, int n, em_tensor *const *vars) {
    const char *op = "minimize";
    em_tensor **all = NULL;
    if (n == 0 && !vars) {
        n = em_trainable_variables(NULL, 0);
        if (n == 0) {
            em__error("%s: there are no trainable variables", op);
            return NULL;
        }
        all = malloc(sizeof *all * (size_t)n);
        if (!all) {
            em__error("%s: out of memory", op);
            return NULL;
        }
        em_trainable_variables(all, n);
        vars = all;
    }
    em_tensor *small[16], **grads = n >= 1 && n <= 16 ? small : malloc(sizeof *grads * (size_t)(n > 0 ? n : 1));
    if (!grads) {
        free(all);
        em__error("%s: out of memory", op);
        return NULL;
    }
    em_scope_begin();
    em_tensor *step = NULL;
    if (em_compute_gradients(o, tape, loss, n, vars, grads) == 0)
        step = em_escape(em_apply_gradients_op(o, n, grads, vars));
    em_scope_end();
    if (grads != small) free(grads);
    free(all);
    return step;
}

int em_minimize(em_optimizer *o, em_tape *tape, em_tensor *loss, int n, em_tensor *const *vars) {
    return em_minimize_op(o, tape, loss, n, vars) ? 0 : -1;
}

/* ---- gradient accumulation ---- */

/* acc += g is the gradient-descent step with rate -1 (acc - (-1) g, exact): apply_updates runs it in place,
 * one fused pass on the device where acc lives, eagerly or in a traced graph. */
static const em_update_rule accumulate_rule = {.kind = OPT_SGD};

int em_gradients_accumulate(int n, em_tensor **acc, em_tensor **grads) {
    const char *op = "gradients_accumulate";
    char b1[160], b2[160];
    if (n < 1 || !acc || !grads) {
        em__error("%s: needs n >= 1 and arrays of n accumulators and n gradients (n = %d%s%s)", op, n,
                  acc ? "" : ", acc NULL", grads ? "" : ", grads NULL");
        return -1;
    }
    int used = 0;
    for (int i = 0; i < n; i++) {
        em_tensor *a = acc[i], *g = grads[i];
        if (!g) continue;
        used++;
        if (!a) {
            em__error("%s: acc[%d] is NULL but grads[%d] is not", op, i, i);
            return -1;
        }
        if (!em__is_float((em_dtype)a->dtype) || g->dtype != a->dtype ||
            !em_shape_equal(em__shape_of(g), em__shape_of(a))) {
            em__error("%s: grads[%d] is %s %s but acc[%d] is %s %s (both the same float dtype and shape)", op, i,
                      em_dtype_name((em_dtype)g->dtype), em__tshape(g, b1, sizeof b1), i,
                      em_dtype_name((em_dtype)a->dtype), em__tshape(a, b2, sizeof b2));
            return -1;
        }
        if (g->device != a->device) {
            em__error("%s: grads[%d] is on %s but acc[%d] is on %s (copy it with em_to_device)", op, i,
                      em_tensor_device(g), i, em_tensor_device(a));
            return -1;
        }
        if (!a->data || !em__is_contiguous(a)) {
            em__error("%s: acc[%d] (%s %s) is %s; it is added to in place", op, i, em_dtype_name((em_dtype)a->dtype),
                      em__tshape(a, b1, sizeof b1), a->data ? "a strided view" : "a placeholder with no value");
            return -1;
        }
    }
    if (!used) return 0;
    int nin = 2 + 2 * used;
    em_tensor *small[2 + 2 * 16], **in = nin <= (int)(sizeof small / sizeof small[0]) ? small
                                                                                        : malloc(sizeof *in * (size_t)nin);
    if (!in) {
        em__error("%s: out of memory", op);
        return -1;
    }
    em_scope_begin();
    {
        EM_ON_DEVICE(0); /* the step and the rate are read on the host */
        in[0] = em_scalar(EM_F64, 0);
        in[1] = em_scalar(EM_F64, -1);
    }
    for (int i = 0, at = 2; i < n; i++)
        if (grads[i]) {
            in[at++] = acc[i];
            in[at++] = grads[i];
        }
    em_tensor *done = em__apply(EM_OP_APPLY_UPDATES, nin, in,
                                &(em_attrs){.i = {used}, .ni = 1, .seed = (uint64_t)(uintptr_t)&accumulate_rule});
    em_scope_end();
    if (in != small) free(in);
    return done ? 0 : -1;
}

/* ---- clipping ---- */

em_tensor *em_clip_by_norm(em_tensor *g, double clip_norm) {
    if (!g) return em__null_input("clip_by_norm");
    if (!em__is_float((em_dtype)g->dtype) || !(clip_norm > 0)) {
        em__error("clip_by_norm: needs a float tensor and clip_norm > 0 (got %s, %g)",
                  em_dtype_name((em_dtype)g->dtype), clip_norm);
        return NULL;
    }
    em_dtype dt = (em_dtype)g->dtype;
    em_scope_begin();
    /* TF's form: the where() keeps the gradient of sqrt finite at a zero norm. */
    em_tensor *sq = em_sum(em_square(g), EM_ALL_AXES, true);
    em_tensor *pos = em_greater(sq, em_scalar(dt, 0));
    em_tensor *norm = em_where(pos, em_sqrt(em_where(pos, sq, em_ones(dt, EM_SHAPE0))), sq);
    em_tensor *out = em_div(em_mul_scalar(g, clip_norm), em_maximum(norm, em_scalar(dt, clip_norm)));
    em_escape(out);
    em_scope_end();
    return out;
}

int em_clip_by_global_norm(int n, em_tensor *const *grads, double clip_norm, em_tensor **out, double *norm) {
    const char *op = "clip_by_global_norm";
    if (n < 1 || !grads || !out || !(clip_norm > 0)) {
        em__error("%s: needs n >= 1 gradients, an output array and clip_norm > 0 (n = %d, clip_norm = %g)", op, n,
                  clip_norm);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        out[i] = NULL;
        if (grads[i] && !em__is_float((em_dtype)grads[i]->dtype)) {
            em__error("%s: gradient %d has dtype %s; only float tensors can be clipped", op, i,
                      em_dtype_name((em_dtype)grads[i]->dtype));
            return -1;
        }
    }
    em_scope_begin();
    /* The sum of squares in float64 whatever the gradients' dtypes. */
    em_tensor *total = em_zeros(EM_F64, EM_SHAPE0);
    for (int i = 0; i < n; i++)
        if (grads[i]) total = em_add(total, em_cast(em_sum(em_square(grads[i]), EM_ALL_AXES, false), EM_F64));
    em_tensor *gn = em_sqrt(total);
    /* clip * min(1 / norm, 1 / clip): 1 when the norm is 0, NaN when it is inf (as TF). */
    em_tensor *scale = em_mul_scalar(em_minimum(em_div(em_ones(EM_F64, EM_SHAPE0), gn),
                                                em_scalar(EM_F64, 1.0 / clip_norm)),
                                     clip_norm);
    int rc = scale ? 0 : -1;
    for (int i = 0; rc == 0 && i < n; i++) {
        if (!grads[i]) continue;
        out[i] = em_escape(em_mul(grads[i], em_cast(scale, (em_dtype)grads[i]->dtype)));
        if (!out[i]) rc = -1;
    }
    if (rc == 0 && norm) *norm = em_item(gn);
    em_scope_end();
    if (rc)
        for (int i = 0; i < n; i++) out[i] = NULL;
    return rc;
}

/* ---- dynamic loss scaling (include/ember/train.h) ---- */

struct em_loss_scaler {
    double scale, growth, backoff;
    int interval, clean; /* clean: steps applied since the scale last changed */
    int64_t skipped;
};

em_loss_scaler *em_dynamic_loss_scaler(double init_scale, double growth_factor, double backoff_factor,
                                       int growth_interval) {
    if (!(init_scale > 0) || !isfinite(init_scale) || !(growth_factor > 1) || !isfinite(growth_factor) ||
        !(backoff_factor > 0 && backoff_factor < 1) || growth_interval < 1) {
        em__error("dynamic_loss_scaler: needs a finite init_scale > 0, a finite growth_factor > 1, backoff_factor "
                  "in (0, 1) and growth_interval >= 1 (got %g, %g, %g, %d)",
                  init_scale, growth_factor, backoff_factor, growth_interval);
        return NULL;
    }
    em_loss_scaler *s = malloc(sizeof *s);
    if (!s) {
        em__error("dynamic_loss_scaler: out of memory");
        return NULL;
    }
    *s = (em_loss_scaler){init_scale, growth_factor, backoff_factor, growth_interval, 0, 0};
    return s;
}

void em_loss_scaler_release(em_loss_scaler *s) { free(s); }

double em_loss_scaler_get_scale(const em_loss_scaler *s) { return s ? s->scale : 0; }

int64_t em_loss_scaler_skipped(const em_loss_scaler *s) { return s ? s->skipped : 0; }

em_tensor *em_loss_scaler_scale(em_loss_scaler *s, em_tensor *loss) {
    if (!s) {
        em__error_null("loss_scaler_scale: the scaler is NULL");
        return NULL;
    }
    if (!loss) return em__null_input("loss_scaler_scale");
    if (!em__is_float((em_dtype)loss->dtype)) {
        em__error("loss_scaler_scale: the loss is %s; it must be a float tensor", em_dtype_name((em_dtype)loss->dtype));
        return NULL;
    }
    return em_mul_scalar(loss, s->scale);
}

int em_loss_scaler_step(em_loss_scaler *s, em_optimizer *opt, int n, em_tensor *const *grads,
                        em_tensor *const *vars) {
    const char *op = "loss_scaler_step";
    if (!s || !opt) {
        em__error_null("%s: the %s is NULL", op, s ? "optimizer" : "scaler");
        return -1;
    }
    if (n < 1 || !grads || !vars) {
        em__error("%s: needs n >= 1 gradients and variables (n = %d)", op, n);
        return -1;
    }
    int used = 0;
    for (int i = 0; i < n; i++) {
        if (check_pair(i, grads[i], vars[i])) return -1;
        used += grads[i] != NULL;
    }
    if (!used) {
        em__error_null("%s: no gradients provided for any variable (every grad is NULL)", op);
        return -1;
    }
    em_tensor **unscaled = malloc(sizeof *unscaled * (size_t)n);
    if (!unscaled) {
        em__error("%s: out of memory", op);
        return -1;
    }
    em_scope_begin();
    /* An Inf or a NaN anywhere makes its gradient's sum Inf or NaN (Inf - Inf is NaN); the sums are float32
     * even for narrow gradients, so that finite ones cannot overflow them. */
    em_tensor *total = em_zeros(EM_F64, EM_SHAPE0);
    for (int i = 0; i < n; i++) {
        unscaled[i] = grads[i] ? em_mul_scalar(grads[i], 1.0 / s->scale) : NULL;
        if (!unscaled[i]) continue;
        em_tensor *wide = em__is_narrow((em_dtype)unscaled[i]->dtype) ? em_cast(unscaled[i], EM_F32) : unscaled[i];
        total = em_add(total, em_cast(em_sum(wide, EM_ALL_AXES, false), EM_F64));
    }
    int rc = -1;
    const uint64_t errors = em__thread()->errors;
    if (total) {
        double check = em_item(total);
        if (em__thread()->errors != errors) {
            rc = -1;
        } else if (!isfinite(check)) {
            s->scale *= s->backoff;
            s->clean = 0;
            s->skipped++;
            rc = 1;
        } else if (!(rc = em_apply_gradients(opt, n, unscaled, vars)) && ++s->clean == s->interval) {
            s->scale *= s->growth;
            s->clean = 0;
        }
    }
    em_scope_end();
    free(unscaled);
    return rc;
}
