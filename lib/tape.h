/* Internal interface of the gradient tape (tape.c, layer 2), for the layers
 * above it. The dispatcher records through a hook (lib/op.h). */
#ifndef EMBER_TAPE_H
#define EMBER_TAPE_H

#include "internal.h"

/* Pauses (true) and resumes recording on this thread's tapes, nestably:
 * for work done with ops that is not differentiated (GPU assignments). */
void em__tapes_pause(bool pause);

#endif
