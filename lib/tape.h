/* Internal interface of the gradient tape (tape.c). */
#ifndef EMBER_TAPE_H
#define EMBER_TAPE_H

#include "internal.h"

/* Appends one record to every recording tape of this thread. 0, or -1 on
 * out of memory (error set). */
int em__tape_record(em_op op, int n, em_tensor *const *in, const em_attrs *a, em_tensor *out);

/* Pauses (true) and resumes recording on this thread's tapes, nestably:
 * for work done with ops that is not differentiated (GPU assignments). */
void em__tapes_pause(bool pause);

/* A NEW reference to t in the current scope (for gradient rules passing a
 * gradient through unchanged). */
em_tensor *em__ref(em_tensor *t);

#endif
