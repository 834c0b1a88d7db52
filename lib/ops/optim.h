/* What the optimizers (optim.c, layer 3) tell their update op, apply_updates
 * (ops/optim.c, layer 1): the rule and its constants. */
#ifndef EMBER_OPS_OPTIM_H
#define EMBER_OPS_OPTIM_H

#include "../internal.h"
#include "../optim_math.h"

typedef enum { OPT_SGD, OPT_MOMENTUM, OPT_ADAGRAD, OPT_ADAGRAD_DA, OPT_RMSPROP, OPT_ADAM, OPT_ADAMW } em_opt_kind;

/* An optimizer's update rule; apply_updates' attribute `seed` points at it
 * (the first member of struct em_optimizer). */
typedef struct em_update_rule {
    em_opt_kind kind;
    double momentum, beta1, beta2, epsilon, decay, l1, l2, weight_decay;
    bool nesterov, centered;
    int nslots;
    em_schedule *schedule; /* owned; NULL: the learning rate variable as it is */
    /* the schedule's rate at a step: em_schedule_value (optim.c), given here
     * so that the op does not call up into the optimizers */
    double (*schedule_value)(const em_schedule *s, int64_t step);
    /* AdamW: whether the variable of this full name decays (em_optimizer_set_decay_filter); NULL: every one */
    bool (*decays)(const char *name, void *ctx);
    void *decays_ctx;
} em_update_rule;

#endif
