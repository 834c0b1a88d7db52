/* Multi-process training on MPI: synchronous data parallelism and
 * asynchronous parameter servers. These functions live in a separate library,
 * libember_mpi (link -lember_mpi -lember and MPI, e.g. with mpicc), so that
 * libember itself never depends on MPI.
 *
 * Synchronous data parallelism (every rank holds the whole model):
 *
 *   em_dist *d = em_dist_init(&argc, &argv, NULL);
 *   em_dist_broadcast(d, 4, vars, 0);               // identical start
 *   for (...) {                                     // each rank: its shard of the batch
 *       em_compute_gradients(opt, tape, loss, 4, vars, grads);
 *       em_dist_allreduce_mean(d, 4, grads);        // the same mean on every rank
 *       em_apply_gradients(opt, 4, grads, vars);    // so the variables stay identical
 *   }
 *   em_dist_close(d);
 *
 * Asynchronous parameter servers (Li et al., "Scaling Distributed Machine
 * Learning with the Parameter Server", OSDI 2014): ranks 0..servers-1 each
 * hold a shard of the variables (split by variable, balanced by bytes) and
 * apply every pushed gradient to it with their own optimizer; the other
 * ranks are workers that pull the current values, compute gradients and push
 * them without waiting for each other:
 *
 *   em_ps *ps = em_ps_open(d, 4, vars, opt, &(em_ps_options){.servers = 1, .staleness = 4});
 *   if (em_ps_is_server(ps)) em_ps_serve(ps, 0);
 *   else for (...) { ...grads...; em_ps_push_pull(ps, 4, grads); }
 *   em_ps_close(ps);
 *
 * Faults. Every wait has a deadline (em_dist_options.timeout): a call whose
 * peer does not answer in time fails with an error naming the peer and the
 * timeout instead of hanging. A worker that dies (silent for a timeout) is
 * dropped by the servers, and the other workers go on; a server that dies
 * makes each worker's next push or pull fail after the timeout. Open MPI 4.1
 * kills the whole job when one process dies unless mpirun is given
 * --enable-recovery; with it, the survivors' messages keep flowing (see
 * em_dist_close for the end, and README, "Several processes").
 *
 * Every function here is called from the thread that called em_dist_init,
 * and errors name the function and the rank, e.g. "em_ps_pull: rank 2:
 * server rank 0 did not answer within 10 s (timeout; did it die?)". */
#ifndef EMBER_DIST_H
#define EMBER_DIST_H

#include "core.h"
#include "train.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct em_dist em_dist;

typedef struct em_dist_options {
    double timeout; /* seconds any call waits for a peer before failing; <= 0: 10 */
} em_dist_options;

/* Initialises MPI (unless the program already did; then em_dist_close leaves
 * it initialised) on a private duplicate of MPI_COMM_WORLD whose errors are
 * returned, never fatal. o may be NULL. NULL with an error on failure. */
em_dist *em_dist_init(int *argc, char ***argv, const em_dist_options *o);
int em_dist_rank(const em_dist *d);
int em_dist_size(const em_dist *d);
double em_dist_timeout(const em_dist *d);
/* Frees d and finalises MPI if em_dist_init initialised it (which waits for
 * the other ranks to close too). When this rank knows that some rank died
 * (a call timed out, or a server said so), it leaves MPI unfinalised
 * instead: Open MPI 4.1's MPI_Finalize may then never return, while ranks
 * leaving without it end the job cleanly under --enable-recovery. 0, or -1
 * with an error. d may be NULL. */
int em_dist_close(em_dist *d);

/* Waits until every rank got here. 0, or -1 after the timeout. */
int em_dist_barrier(em_dist *d);
/* Copies the values of root's variables vars[0..n) into every other rank's
 * (same names, dtypes and shapes on every rank). 0, or -1 with an error. */
int em_dist_broadcast(em_dist *d, int n, em_tensor *const *vars, int root);
/* Replaces each tensors[i] (float32 or float64) with a NEW tensor holding the
 * mean of that tensor over all ranks. The sum is reduced on rank 0 and then
 * broadcast, so every rank gets the same bits. On error the array is unchanged. */
int em_dist_allreduce_mean(em_dist *d, int n, em_tensor **tensors);
/* sums[r] = rank r's 64-bit FNV-1a hash of the dtypes, shapes and bytes of
 * tensors[0..n); sums holds em_dist_size(d) entries. Equal sums on every rank
 * mean identical values (up to hash collisions). */
int em_dist_checksums(em_dist *d, int n, em_tensor *const *tensors, uint64_t *sums);

/* ---- checkpoints on several ranks ----
 * Collective: every rank opens a checkpoint manager (train.h) of the same
 * dir, prefix and max_to_keep; rank 0 writes the files. On it:
 *   - em_checkpoint_manager_save is collective: rank 0 writes the
 *     checkpoint (its variables, its random stream and its values: in
 *     synchronous data parallelism the ranks' variables are identical) and
 *     the index and deletes the old ones, while every other rank waits for
 *     it at a barrier; then every rank returns 0, or -1 if rank 0 failed
 *     (rank 0's error says why) or the ranks passed different steps;
 *   - em_checkpoint_manager_restore_latest is collective: every rank reads
 *     the newest checkpoint itself (dir must be shared by the ranks, as on
 *     one machine or a shared file system) and restores its own variables,
 *     random stream and values; the ranks then check that they all restored
 *     the same step (or all found none), and fail together otherwise;
 *   - the other manager functions are local.
 * The waits have the em_dist's deadline. Close the manager with
 * em_checkpoint_manager_close, before em_dist_close. NULL with an error
 * (on every rank when any rank failed to open it). */
em_checkpoint_manager *em_dist_checkpoint_manager_open(em_dist *d, const char *dir, const char *prefix,
                                                       int max_to_keep);

/* ---- parameter servers ---- */
typedef struct em_ps em_ps;

typedef struct em_ps_options {
    int servers;   /* ranks 0..servers-1 serve, the rest work; 1 <= servers < size */
    /* Bounded staleness S: a worker's pull waits until it is at most S pushes
     * ahead of the slowest live worker; 0 gives synchronous rounds; < 0: no bound. */
    int staleness;
} em_ps_options;

typedef struct em_ps_stats {
    int64_t updates;       /* server: pushes applied; worker: pushes made */
    int64_t max_staleness; /* server: the largest lead over the slowest live worker a pull was served at */
    int workers_done;      /* server: workers that closed */
    int workers_lost;      /* server: workers silent for longer than the timeout */
} em_ps_stats;

/* Collective: every rank passes the same variables (names, dtypes, shapes) in
 * the same order. A server's values of its shard are the starting values,
 * copied into every rank's variables before em_ps_open returns (so that all
 * workers start alike); the server updates them with opt (any Ember
 * optimizer; the slots live on the server). Workers may pass opt = NULL. A
 * server counts a worker as lost when it hears nothing from it for the
 * timeout, counted from em_ps_open or from the server's last answer to it.
 * NULL with an error. */
em_ps *em_ps_open(em_dist *d, int n, em_tensor *const *vars, em_optimizer *opt, const em_ps_options *o);
bool em_ps_is_server(const em_ps *ps);
/* The server rank holding vars[i]; -1 for an i out of range. */
int em_ps_server_of(const em_ps *ps, int i);
/* Server: answers pulls and applies pushes until every worker has closed or
 * been lost (returns 0), or until max_updates more pushes were applied
 * (returns 1; max_updates <= 0: no such limit). -1 with an error. */
int em_ps_serve(em_ps *ps, int64_t max_updates);
/* Worker: copies the servers' current values into the variables (as soon as
 * the staleness bound allows). */
int em_ps_pull(em_ps *ps);
/* Worker: pushes grads[0..n) (dtypes and shapes of the variables), then
 * pulls the values as soon as the staleness bound allows. */
int em_ps_push_pull(em_ps *ps, int n, em_tensor *const *grads);
em_ps_stats em_ps_get_stats(const em_ps *ps);
/* A worker tells the servers it is done and waits for them to finish (all
 * workers done or lost; each server's silence is bounded by the timeout),
 * learning whether any rank died (then em_dist_close skips MPI_Finalize,
 * which Open MPI 4.1 may never return from after a death). A server that
 * does not answer leaves its error (em_last_error) and counts as dead.
 * Frees ps; ps may be NULL. */
void em_ps_close(em_ps *ps);

#ifdef __cplusplus
}
#endif
#endif
