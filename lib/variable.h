/* Internal interface between variables (variable.c), optimizers (optim.c)
 * and checkpoints (io/checkpoint.c). */
#ifndef EMBER_VARIABLE_H
#define EMBER_VARIABLE_H

#include "internal.h"

/* One optimizer's slot variables for one variable. */
typedef struct em_slot_set {
    uint64_t owner; /* the optimizer's serial number */
    em_tensor *slot[3];
} em_slot_set;

/* Creates and registers a variable named `full` as is (no scope prefix),
 * contiguous, filled from init (or from a pending checkpoint entry of that
 * name). BORROWED. NULL with an error naming `op`. */
em_tensor *em__variable_new(const char *op, const char *full, em_dtype dtype, em_shape shape,
                            const em_initializer *init, bool trainable);
/* This thread's variables in creation order; returns the count. */
int em__variables_list(em_tensor *const **items);

/* Checkpoint entries restored before their variable existed (io/checkpoint.c). */
struct em_ckpt_pending;
/* This thread's pending entries (the pointer may be NULL), or NULL on out of memory. */
struct em_ckpt_pending **em__ckpt_pending(void);
/* Copies the pending entry named like v into v: 0 (also when there is none),
 * or -1 if its dtype or shape differ (error set, v unchanged). */
int em__ckpt_take(struct em_ckpt_pending *p, em_tensor *v, const char *op);
void em__ckpt_pending_free(struct em_ckpt_pending *p);

#endif
