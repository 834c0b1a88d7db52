/* Internal interface of checkpoint files (io/checkpoint.c), the checkpoint
 * manager (io/checkpoint_manager.c) and the MPI library's coordination of a
 * manager (dist/mpi.c, which sees only this header and internal.h). */
#ifndef EMBER_CHECKPOINT_H
#define EMBER_CHECKPOINT_H

#include "internal.h"

/* ---- values saved beside the variables (checkpoint format version 2) ---- */
enum { EM__CKPT_F64 = 0, EM__CKPT_STRING = 1, EM__CKPT_U64 = 2 };
typedef struct em__ckpt_value {
    char *key;        /* owned */
    int kind;         /* EM__CKPT_F64 (user), EM__CKPT_STRING (user), EM__CKPT_U64 (Ember's own) */
    double f64;
    uint64_t u64;
    char *str;        /* owned; EM__CKPT_STRING */
} em__ckpt_value;
#define EM__CKPT_MAX_KEY 1024u          /* bytes of a key, NUL excluded */
#define EM__CKPT_MAX_STRING (1u << 20)  /* bytes of a string value, NUL excluded */

void em__ckpt_values_free(em__ckpt_value *v, int n);

/* Writes every variable of this thread and values[0..n) to path, atomically
 * (see em_checkpoint_save); format version 1 when values is NULL, else 2.
 * Errors begin with `op`. 0, or -1 with an error. */
int em__checkpoint_write(const char *op, const char *path, int n, const em__ckpt_value *values);

/* What em__checkpoint_read returns for a file that is missing, unreadable or
 * damaged (as opposed to a good file that does not fit the variables: -1). */
#define EM__CKPT_UNUSABLE (-2)
/* Reads and checks path; with `apply`, restores the variables as
 * em_checkpoint_restore does. *values (may be NULL: not wanted) gets a NEW
 * array of the file's values (free with em__ckpt_values_free), *n their
 * count. 0; EM__CKPT_UNUSABLE or -1 with an error beginning with `op`. */
int em__checkpoint_read(const char *op, const char *path, bool apply, em__ckpt_value **values, int *n);

/* ---- coordinating a checkpoint manager over several processes ----
 * Installed by libember_mpi (em_dist_checkpoint_manager_open), so that
 * libember knows nothing of MPI. */
typedef struct em__ckpt_coordinator {
    bool writes; /* this process writes the files; the others wait */
    int rank;    /* for messages */
    /* Collective: replaces v[0..n) by their minimum over every process (it
     * is also a barrier). 0, or -1 with an error beginning with op. */
    int (*all_min)(void *ctx, const char *op, int64_t *v, int n);
    void *ctx;
} em__ckpt_coordinator;
struct em_checkpoint_manager;
void em__checkpoint_manager_coordinate(struct em_checkpoint_manager *mgr, const em__ckpt_coordinator *c);

#endif
