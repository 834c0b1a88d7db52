/* Multi-process training on MPI (include/ember/dist.h), built into
 * libember_mpi with mpicc so that libember never depends on MPI.
 *
 * Dead peers, as measured on Open MPI 4.1.4 (no ULFM), TCP on loopback:
 * - without `mpirun --enable-recovery` the death of one rank ends the job;
 * - with it the survivors go on, but MPI never tells them: their requests
 *   to the dead rank just never complete. So every wait here is MPI_Test
 *   polling against a deadline, and the deadline is how a death is found.
 *   Buffers of requests abandoned that way are kept until em_dist_close.
 * - MPI_Finalize then waits forever in some runs (its closing fence counts
 *   the dead rank when messages to it were in flight), while survivors that
 *   all leave without MPI_Finalize end the job cleanly. So each rank tracks
 *   whether it knows of a death (peer_lost) and em_dist_close skips
 *   MPI_Finalize when it does; the parameter-server protocol ends with a
 *   handshake (DONE, FIN) that tells every survivor what the servers know.
 *
 * Parameter-server protocol, on the communicator's tags:
 *   worker -> server  TAG_REQ: header {kind, lost} then, for a push, the
 *                     gradients of the server's shard (raw bytes, vars
 *                     order); kind DONE ends the worker's part, and its
 *                     `lost` says whether the worker saw a server die.
 *   server -> worker  TAG_VALUES: the shard's current values
 *                     TAG_FIN: once every worker is done or lost, an int64
 *                     saying whether the server knows of a death
 *                     TAG_ALIVE: empty, every timeout/4 while a worker waits
 *                     for a held-back pull or for FIN, so the worker's
 *                     deadline measures the server's silence, not its patience.
 * A server posts one receive per worker (messages from one source arrive in
 * order) and counts each worker's pushes; a pull is answered once the worker
 * is at most `staleness` pushes ahead of the slowest live worker. A push and
 * the pull after it travel as one request, so with staleness 0 every worker
 * of a round gets the values of the same completed round. */
#include "checkpoint.h"
#include "internal.h"

#include <limits.h>
#include <mpi.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct em_dist {
    MPI_Comm comm;
    int rank, size;
    double timeout;
    bool finalize; /* em_dist_init initialised MPI */
    bool broken;   /* a collective timed out: the communicator is unusable */
    bool peer_lost; /* this rank knows that some rank died: skip MPI_Finalize */
    void **orphans; /* buffers of abandoned requests, freed after MPI_Finalize */
    int norphans, caporphans;
};

enum { TAG_REQ = 1, TAG_VALUES = 2, TAG_ALIVE = 3, TAG_FIN = 4 };
enum { REQ_PULL = 1, REQ_PUSH = 2, REQ_DONE = 3 };

typedef struct {
    int64_t kind, lost;
} req_header;

/* ---- helpers ---- */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Between empty polls. MPI moves a large message only inside MPI calls, so
 * for its first 2 ms a wait keeps polling (yielding the core to any process
 * that wants it); after that it sleeps 100 us between polls, leaving the
 * cores to the ranks that compute. *since: when the wait began, 0 before. */
static void idle_wait(double *since) {
    double t = now();
    if (*since == 0) *since = t;
    if (t - *since < 2e-3) {
        sched_yield();
        return;
    }
    nanosleep(&(struct timespec){0, 100000}, NULL);
}

/* Sets the error "fn: rank r: message". Returns -1. */
__attribute__((format(printf, 3, 4))) static int fail(const em_dist *d, const char *fn, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    em__error("%s: rank %d: %s", fn, d ? d->rank : -1, msg);
    return -1;
}

static int mpi_failed(const em_dist *d, const char *fn, const char *call, int rc) {
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, s, &len) != MPI_SUCCESS) snprintf(s, sizeof s, "error code %d", rc);
    return fail(d, fn, "%s failed: %s", call, s);
}

/* Keeps p until em_dist_close, after which nothing calls MPI (an abandoned
 * request may still write it until then). */
static void orphan(em_dist *d, void *p) {
    if (!p) return;
    if (d->norphans == d->caporphans) {
        int cap = d->caporphans ? 2 * d->caporphans : 8;
        void **o = realloc(d->orphans, sizeof *o * (size_t)cap);
        if (!o) return; /* then p stays allocated for good: safer than freeing memory MPI may write */
        d->orphans = o;
        d->caporphans = cap;
    }
    d->orphans[d->norphans++] = p;
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

#define FNV_BASIS 0xcbf29ce484222325ULL

/* Hash of the dtypes and shapes of t[0..n). */
static uint64_t layout_hash(uint64_t h, int n, em_tensor *const *t) {
    h = fnv1a(h, &n, sizeof n);
    for (int i = 0; i < n; i++) {
        em_shape s = em_tensor_shape(t[i]);
        int dt = (int)em_tensor_dtype(t[i]);
        h = fnv1a(h, &dt, sizeof dt);
        h = fnv1a(h, &s.ndim, sizeof s.ndim);
        h = fnv1a(h, s.dims, sizeof s.dims[0] * (size_t)s.ndim);
    }
    return h;
}

static size_t nbytes(em_tensor *t) { return (size_t)em_numel(t) * em_dtype_size(em_tensor_dtype(t)); }

static int check_dist(const em_dist *d, const char *fn) {
    if (!d) {
        em__error_null("%s: the em_dist is NULL", fn);
        return -1;
    }
    if (d->broken) return fail(d, fn, "an earlier call timed out waiting for the other ranks; MPI cannot go on");
    return 0;
}

/* Every tensor non-NULL (a NULL keeps the error that made it). */
static int check_tensors(const em_dist *d, const char *fn, int n, em_tensor *const *t, const char *what) {
    if (n < 0 || (n > 0 && !t)) return fail(d, fn, "bad tensor list (n = %d)", n);
    for (int i = 0; i < n; i++)
        if (!t[i]) return fail(d, fn, "%s %d is NULL", what, i);
    return 0;
}

/* Polls a collective until done. On failure buf is kept for MPI (the
 * request may still write it) and, on timeout, the communicator is marked broken. */
static int coll_wait(em_dist *d, const char *fn, MPI_Request *r, void *buf) {
    double deadline = now() + d->timeout;
    double idle = 0;
    for (;;) {
        int done = 0, rc = MPI_Test(r, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) {
            orphan(d, buf);
            return mpi_failed(d, fn, "MPI_Test", rc);
        }
        if (done) return 0;
        if (now() > deadline) {
            d->broken = d->peer_lost = true;
            orphan(d, buf);
            return fail(d, fn, "the other ranks did not answer within %g s (timeout; did a rank die?)", d->timeout);
        }
        idle_wait(&idle);
    }
}

/* Whether every rank passed the same v. */
static int agree(em_dist *d, const char *fn, uint64_t v, bool *same) {
    uint64_t *mm = malloc(2 * sizeof *mm);
    if (!mm) return fail(d, fn, "out of memory");
    mm[0] = v;
    mm[1] = ~v; /* max(~v) = ~min(v) */
    MPI_Request r;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, mm, 2, MPI_UINT64_T, MPI_MAX, d->comm, &r);
    if (rc != MPI_SUCCESS) {
        free(mm);
        return mpi_failed(d, fn, "MPI_Iallreduce", rc);
    }
    if (coll_wait(d, fn, &r, mm)) return -1;
    *same = mm[0] == ~mm[1];
    free(mm);
    return 0;
}

/* Copies t[0..n) one after the other into buf. */
static int pack(const em_dist *d, const char *fn, int n, em_tensor *const *t, unsigned char *buf) {
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        size_t b = nbytes(t[i]);
        if (em_copy_out(t[i], buf + off, b)) return fail(d, fn, "reading tensor %d", i);
        off += b;
    }
    return 0;
}

/* Assigns the values in buf to the variables vars[idx[0..n)] (idx NULL: 0..n). */
static int unpack(const em_dist *d, const char *fn, int n, em_tensor *const *vars, const int *idx,
                  const unsigned char *buf) {
    size_t off = 0;
    int rc = 0;
    em_scope_begin();
    for (int k = 0; k < n && !rc; k++) {
        em_tensor *v = vars[idx ? idx[k] : k];
        if (em_assign(v, em_tensor_from(em_tensor_dtype(v), em_tensor_shape(v), buf + off)))
            rc = fail(d, fn, "updating variable %s", em_variable_name(v) ? em_variable_name(v) : "(not a variable)");
        off += nbytes(v);
    }
    em_scope_end();
    return rc;
}

/* ---- the communicator ---- */

em_dist *em_dist_init(int *argc, char ***argv, const em_dist_options *o) {
    int inited = 0, finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) {
        em__error("em_dist_init: MPI was already finalised; it cannot start again");
        return NULL;
    }
    MPI_Initialized(&inited);
    if (!inited) {
        int provided;
        /* Ember's kernels run OpenMP threads, but only this thread calls MPI. */
        if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
            em__error("em_dist_init: MPI_Init_thread failed");
            return NULL;
        }
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    }
    em_dist *d = calloc(1, sizeof *d);
    if (!d) {
        em__error("em_dist_init: out of memory");
        if (!inited) MPI_Finalize();
        return NULL;
    }
    d->finalize = !inited;
    d->timeout = o && o->timeout > 0 ? o->timeout : 10;
    d->comm = MPI_COMM_NULL;
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    int rc = MPI_Comm_dup(MPI_COMM_WORLD, &d->comm);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_set_errhandler(d->comm, MPI_ERRORS_RETURN);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(d->comm, &d->size);
    if (rc != MPI_SUCCESS) {
        mpi_failed(d, "em_dist_init", "MPI_Comm_dup", rc);
        em_dist_close(d);
        return NULL;
    }
    return d;
}

int em_dist_rank(const em_dist *d) { return d ? d->rank : -1; }
int em_dist_size(const em_dist *d) { return d ? d->size : -1; }
double em_dist_timeout(const em_dist *d) { return d ? d->timeout : 0; }

int em_dist_close(em_dist *d) {
    if (!d) return 0;
    int rc = MPI_SUCCESS;
    /* After a death MPI_Finalize may never return (see the top): leave MPI
     * as it is; nothing calls MPI after this, so nothing writes the orphans. */
    if (!d->peer_lost) {
        if (d->comm != MPI_COMM_NULL) MPI_Comm_free(&d->comm);
        if (d->finalize) rc = MPI_Finalize();
    }
    if (rc != MPI_SUCCESS) mpi_failed(d, "em_dist_close", "MPI_Finalize", rc);
    for (int i = 0; i < d->norphans; i++) free(d->orphans[i]);
    free(d->orphans);
    free(d);
    return rc == MPI_SUCCESS ? 0 : -1;
}

int em_dist_barrier(em_dist *d) {
    if (check_dist(d, "em_dist_barrier")) return -1;
    MPI_Request r;
    int rc = MPI_Ibarrier(d->comm, &r);
    if (rc != MPI_SUCCESS) return mpi_failed(d, "em_dist_barrier", "MPI_Ibarrier", rc);
    return coll_wait(d, "em_dist_barrier", &r, NULL);
}

int em_dist_broadcast(em_dist *d, int n, em_tensor *const *vars, int root) {
    const char *fn = "em_dist_broadcast";
    if (check_dist(d, fn) || check_tensors(d, fn, n, vars, "variable")) return -1;
    if (root < 0 || root >= d->size) return fail(d, fn, "root %d is not a rank of %d", root, d->size);
    size_t bytes = 0;
    for (int i = 0; i < n; i++) {
        if (!em_is_variable(vars[i])) return fail(d, fn, "tensor %d is not a variable", i);
        bytes += nbytes(vars[i]);
    }
    bool same;
    if (agree(d, fn, layout_hash(FNV_BASIS + (uint64_t)root, n, vars), &same)) return -1;
    if (!same) return fail(d, fn, "the ranks passed different roots, numbers, dtypes or shapes of variables");
    if (bytes > INT_MAX) return fail(d, fn, "%zu bytes: at most %d can go at once", bytes, INT_MAX);
    unsigned char *buf = malloc(bytes ? bytes : 1);
    if (!buf) return fail(d, fn, "out of memory for %zu bytes", bytes);
    int rc = d->rank == root ? pack(d, fn, n, vars, buf) : 0;
    MPI_Request r;
    int mrc = rc ? MPI_SUCCESS : MPI_Ibcast(buf, (int)bytes, MPI_BYTE, root, d->comm, &r);
    if (mrc != MPI_SUCCESS) rc = mpi_failed(d, fn, "MPI_Ibcast", mrc);
    else if (!rc && coll_wait(d, fn, &r, buf)) return -1;
    if (!rc && d->rank != root) rc = unpack(d, fn, n, vars, NULL, buf);
    free(buf);
    return rc;
}

/* Sums the count elements of buf (type dt) on rank 0, divides by the number
 * of ranks there and broadcasts the result. On failure buf belongs to d. */
static int mean_of(em_dist *d, const char *fn, em_dtype dt, void *buf, int64_t count) {
    MPI_Datatype mt = dt == EM_F32 ? MPI_FLOAT : MPI_DOUBLE;
    MPI_Request r;
    int rc = MPI_Ireduce(d->rank == 0 ? MPI_IN_PLACE : buf, buf, (int)count, mt, MPI_SUM, 0, d->comm, &r);
    if (rc != MPI_SUCCESS) {
        orphan(d, buf);
        return mpi_failed(d, fn, "MPI_Ireduce", rc);
    }
    if (coll_wait(d, fn, &r, buf)) return -1;
    if (d->rank == 0) {
        if (dt == EM_F32)
            for (int64_t i = 0; i < count; i++) ((float *)buf)[i] /= (float)d->size;
        else
            for (int64_t i = 0; i < count; i++) ((double *)buf)[i] /= (double)d->size;
    }
    rc = MPI_Ibcast(buf, (int)count, mt, 0, d->comm, &r);
    if (rc != MPI_SUCCESS) {
        orphan(d, buf);
        return mpi_failed(d, fn, "MPI_Ibcast", rc);
    }
    return coll_wait(d, fn, &r, buf);
}

int em_dist_allreduce_mean(em_dist *d, int n, em_tensor **t) {
    const char *fn = "em_dist_allreduce_mean";
    if (check_dist(d, fn) || check_tensors(d, fn, n, t, "tensor")) return -1;
    for (int i = 0; i < n; i++) {
        em_dtype dt = em_tensor_dtype(t[i]);
        if (dt != EM_F32 && dt != EM_F64)
            return fail(d, fn, "tensor %d is %s; only float32 and float64 are averaged", i, em_dtype_name(dt));
    }
    bool same;
    if (agree(d, fn, layout_hash(FNV_BASIS, n, t), &same)) return -1;
    if (!same) return fail(d, fn, "the ranks passed different numbers, dtypes or shapes of tensors");
    em_tensor **out = calloc((size_t)n + 1, sizeof *out);
    if (!out) return fail(d, fn, "out of memory");
    int rc = 0;
    /* One reduction per dtype over all of its tensors packed together. */
    for (em_dtype dt = EM_F32; dt <= EM_F64 && !rc; dt++) {
        int64_t count = 0;
        for (int i = 0; i < n; i++)
            if (em_tensor_dtype(t[i]) == dt) count += em_numel(t[i]);
        if (!count) continue;
        if (count > INT_MAX) {
            rc = fail(d, fn, "%lld %s elements: at most %d can go at once", (long long)count, em_dtype_name(dt),
                      INT_MAX);
            break;
        }
        size_t esize = em_dtype_size(dt);
        unsigned char *buf = malloc((size_t)count * esize);
        if (!buf) {
            rc = fail(d, fn, "out of memory for %lld %s elements", (long long)count, em_dtype_name(dt));
            break;
        }
        size_t off = 0;
        for (int i = 0; i < n && !rc; i++)
            if (em_tensor_dtype(t[i]) == dt) {
                if (em_copy_out(t[i], buf + off, nbytes(t[i]))) rc = fail(d, fn, "reading tensor %d", i);
                off += nbytes(t[i]);
            }
        /* Every rank reduces, even one whose copy failed: the others would wait. */
        if (mean_of(d, fn, dt, buf, count)) return free(out), -1;
        off = 0;
        for (int i = 0; i < n && !rc; i++)
            if (em_tensor_dtype(t[i]) == dt) {
                out[i] = em_tensor_from(dt, em_tensor_shape(t[i]), buf + off);
                if (!out[i]) rc = fail(d, fn, "out of memory for the mean of tensor %d", i);
                off += nbytes(t[i]);
            }
        free(buf);
    }
    if (!rc) memcpy(t, out, sizeof *t * (size_t)n);
    free(out);
    return rc;
}

int em_dist_checksums(em_dist *d, int n, em_tensor *const *t, uint64_t *sums) {
    const char *fn = "em_dist_checksums";
    if (check_dist(d, fn) || check_tensors(d, fn, n, t, "tensor")) return -1;
    if (!sums) return fail(d, fn, "sums is NULL");
    uint64_t h = layout_hash(FNV_BASIS, n, t);
    for (int i = 0; i < n; i++) {
        const void *p = em_data(t[i]);
        if (!p) return fail(d, fn, "reading tensor %d", i);
        h = fnv1a(h, p, nbytes(t[i]));
    }
    uint64_t *all = malloc(sizeof *all * (size_t)d->size);
    if (!all) return fail(d, fn, "out of memory");
    all[d->rank] = h;
    MPI_Request r;
    int rc = MPI_Iallgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, all, 1, MPI_UINT64_T, d->comm, &r);
    if (rc != MPI_SUCCESS) {
        free(all);
        return mpi_failed(d, fn, "MPI_Iallgather", rc);
    }
    if (coll_wait(d, fn, &r, all)) return -1;
    memcpy(sums, all, sizeof *all * (size_t)d->size);
    free(all);
    return 0;
}

/* ---- checkpoint managers: rank 0 writes, the others wait ---- */

/* The coordinator's collective (lib/checkpoint.h): the minimum of v over the ranks. */
static int ckpt_all_min(void *ctx, const char *op, int64_t *v, int n) {
    em_dist *d = ctx;
    if (check_dist(d, op)) return -1;
    int64_t *buf = malloc(sizeof *buf * (size_t)n);
    if (!buf) return fail(d, op, "out of memory");
    memcpy(buf, v, sizeof *buf * (size_t)n);
    MPI_Request r;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, buf, n, MPI_INT64_T, MPI_MIN, d->comm, &r);
    if (rc != MPI_SUCCESS) {
        free(buf);
        return mpi_failed(d, op, "MPI_Iallreduce", rc);
    }
    if (coll_wait(d, op, &r, buf)) return -1;
    memcpy(v, buf, sizeof *buf * (size_t)n);
    free(buf);
    return 0;
}

em_checkpoint_manager *em_dist_checkpoint_manager_open(em_dist *d, const char *dir, const char *prefix,
                                                       int max_to_keep) {
    const char *fn = "em_dist_checkpoint_manager_open";
    if (check_dist(d, fn)) return NULL;
    em_checkpoint_manager *m = em_checkpoint_manager_open(dir, prefix, max_to_keep);
    int64_t ok[1] = {m ? 0 : -1};
    if (ckpt_all_min(d, fn, ok, 1) || ok[0] < 0) {
        if (m) fail(d, fn, "another rank could not open the checkpoint manager of %s", dir);
        em_checkpoint_manager_close(m);
        return NULL;
    }
    em__checkpoint_manager_coordinate(m, &(em__ckpt_coordinator){.writes = d->rank == 0, .rank = d->rank,
                                                                  .all_min = ckpt_all_min, .ctx = d});
    return m;
}

/* ---- parameter servers ---- */

typedef struct shard {
    int nvars;
    int *vars; /* indices into ps->vars, ascending */
    size_t bytes;
} shard;

/* One end of a worker-server link: the server keeps one per worker, a worker
 * one per server. */
typedef struct link {
    unsigned char *in, *out; /* server: request in, values out; worker: values in, request out */
    MPI_Request recv, send;
    int64_t pushes; /* server: this worker's pushes applied */
    double heard, alive_sent, deadline;
    bool pending, done, lost;
} link;

struct em_ps {
    em_dist *d;
    int n;
    em_tensor **vars;
    em_optimizer *opt;
    int servers, staleness, nworkers;
    int *owner; /* owner[i]: the server rank holding vars[i] */
    shard *shards;
    link *links;       /* server: [nworkers], worker w = rank servers + w; worker: [servers] */
    int failed_server; /* worker: the server that timed out, or -1 */
    bool finished;     /* server: FIN sent */
    em_ps_stats stats;
};

static bool is_server(const em_ps *ps) { return ps->d->rank < ps->servers; }

/* Longest-processing-time split: the biggest variables first, each to the
 * server holding the fewest bytes so far (ties: the lower index, rank). */
static int split(em_ps *ps) {
    int *order = malloc(sizeof *order * (size_t)(ps->n ? ps->n : 1));
    if (!order) return -1;
    for (int i = 0; i < ps->n; i++) order[i] = i;
    for (int i = 1; i < ps->n; i++)
        for (int j = i; j > 0 && nbytes(ps->vars[order[j]]) > nbytes(ps->vars[order[j - 1]]); j--) {
            int tmp = order[j];
            order[j] = order[j - 1];
            order[j - 1] = tmp;
        }
    for (int k = 0; k < ps->n; k++) {
        int best = 0;
        for (int s = 1; s < ps->servers; s++)
            if (ps->shards[s].bytes < ps->shards[best].bytes) best = s;
        ps->owner[order[k]] = best;
        ps->shards[best].bytes += nbytes(ps->vars[order[k]]);
        ps->shards[best].nvars++;
    }
    free(order);
    for (int s = 0; s < ps->servers; s++) {
        shard *sh = &ps->shards[s];
        sh->vars = malloc(sizeof *sh->vars * (size_t)(sh->nvars ? sh->nvars : 1));
        if (!sh->vars) return -1;
        sh->nvars = 0;
    }
    for (int i = 0; i < ps->n; i++) {
        shard *sh = &ps->shards[ps->owner[i]];
        sh->vars[sh->nvars++] = i;
    }
    return 0;
}

static int nlinks(const em_ps *ps) { return is_server(ps) ? ps->nworkers : ps->servers; }

static void ps_free(em_ps *ps) {
    if (ps->links)
        for (int k = 0; k < nlinks(ps); k++) {
            free(ps->links[k].in);
            free(ps->links[k].out);
        }
    if (ps->shards)
        for (int s = 0; s < ps->servers; s++) free(ps->shards[s].vars);
    free(ps->shards);
    free(ps->owner);
    free(ps->vars);
    free(ps->links);
    free(ps);
}

static int post_recv(em_ps *ps, const char *fn, int w) {
    link *l = &ps->links[w];
    size_t bytes = sizeof(req_header) + ps->shards[ps->d->rank].bytes;
    int rc = MPI_Irecv(l->in, (int)bytes, MPI_BYTE, ps->servers + w, TAG_REQ, ps->d->comm, &l->recv);
    return rc == MPI_SUCCESS ? 0 : mpi_failed(ps->d, fn, "MPI_Irecv", rc);
}

em_ps *em_ps_open(em_dist *d, int n, em_tensor *const *vars, em_optimizer *opt, const em_ps_options *o) {
    const char *fn = "em_ps_open";
    if (check_dist(d, fn) || check_tensors(d, fn, n, vars, "variable")) return NULL;
    if (!o) return fail(d, fn, "the options are NULL"), NULL;
    if (o->servers < 1 || o->servers >= d->size)
        return fail(d, fn, "%d servers: need at least 1 and at most %d (size %d leaves no worker otherwise)",
                    o->servers, d->size - 1, d->size),
               NULL;
    for (int i = 0; i < n; i++)
        if (!em_is_variable(vars[i])) return fail(d, fn, "tensor %d is not a variable", i), NULL;
    if (d->rank < o->servers && !opt) return fail(d, fn, "a server needs an optimizer"), NULL;
    bool same;
    uint64_t h = layout_hash(FNV_BASIS, n, vars);
    h = fnv1a(h, &o->servers, sizeof o->servers);
    h = fnv1a(h, &o->staleness, sizeof o->staleness);
    if (agree(d, fn, h, &same)) return NULL;
    if (!same) return fail(d, fn, "the ranks passed different variables (number, dtypes, shapes) or options"), NULL;

    em_ps *ps = calloc(1, sizeof *ps);
    if (!ps) return fail(d, fn, "out of memory"), NULL;
    *ps = (em_ps){.d = d, .n = n, .opt = opt, .servers = o->servers, .staleness = o->staleness,
                  .nworkers = d->size - o->servers, .failed_server = -1};
    ps->vars = malloc(sizeof *ps->vars * (size_t)(n ? n : 1));
    ps->owner = calloc((size_t)(n ? n : 1), sizeof *ps->owner);
    ps->shards = calloc((size_t)ps->servers, sizeof *ps->shards);
    ps->links = calloc((size_t)nlinks(ps), sizeof *ps->links);
    if (!ps->vars || !ps->owner || !ps->shards || !ps->links) {
        ps_free(ps);
        return fail(d, fn, "out of memory"), NULL;
    }
    memcpy(ps->vars, vars, sizeof *vars * (size_t)n);
    if (split(ps)) {
        ps_free(ps);
        return fail(d, fn, "out of memory"), NULL;
    }
    for (int s = 0; s < ps->servers; s++)
        if (ps->shards[s].bytes + sizeof(req_header) > INT_MAX) {
            fail(d, fn, "server %d's shard has %zu bytes: at most %d can go at once", s, ps->shards[s].bytes,
                 INT_MAX);
            ps_free(ps);
            return NULL;
        }
    /* Every rank starts from the servers' values, so that no worker can
     * begin from values some push has already changed. */
    em_tensor **shard_vars = malloc(sizeof *shard_vars * (size_t)(n ? n : 1));
    if (!shard_vars) {
        ps_free(ps);
        return fail(d, fn, "out of memory"), NULL;
    }
    for (int s = 0; s < ps->servers; s++) {
        for (int k = 0; k < ps->shards[s].nvars; k++) shard_vars[k] = vars[ps->shards[s].vars[k]];
        if (em_dist_broadcast(d, ps->shards[s].nvars, shard_vars, s)) {
            free(shard_vars);
            ps_free(ps);
            return NULL;
        }
    }
    free(shard_vars);
    /* A server's silence clock for each worker starts here. */
    double t = now();
    for (int k = 0; k < nlinks(ps); k++) {
        size_t bytes = sizeof(req_header) + ps->shards[is_server(ps) ? d->rank : k].bytes;
        link *l = &ps->links[k];
        l->recv = l->send = MPI_REQUEST_NULL;
        l->heard = t;
        l->in = malloc(bytes);
        l->out = malloc(bytes);
        if (!l->in || !l->out) {
            ps_free(ps);
            return fail(d, fn, "out of memory"), NULL;
        }
    }
    if (is_server(ps))
        for (int w = 0; w < ps->nworkers; w++)
            if (post_recv(ps, fn, w)) {
                em_ps_close(ps);
                return NULL;
            }
    return ps;
}

bool em_ps_is_server(const em_ps *ps) { return ps && is_server(ps); }
int em_ps_server_of(const em_ps *ps, int i) { return ps && i >= 0 && i < ps->n ? ps->owner[i] : -1; }
em_ps_stats em_ps_get_stats(const em_ps *ps) { return ps ? ps->stats : (em_ps_stats){0}; }

/* ---- server ---- */

/* Waits for the earlier send to worker w to leave (it normally has: the
 * worker asks again only after receiving it). */
static int sent(em_ps *ps, const char *fn, link *l, int w) {
    double deadline = now() + ps->d->timeout;
    double idle = 0;
    while (l->send != MPI_REQUEST_NULL) {
        int done = 0, rc = MPI_Test(&l->send, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) return mpi_failed(ps->d, fn, "MPI_Test", rc);
        if (done) break;
        if (now() > deadline)
            return fail(ps->d, fn, "worker rank %d did not take its message within %g s", ps->servers + w,
                        ps->d->timeout);
        idle_wait(&idle);
    }
    return 0;
}

static int reply(em_ps *ps, const char *fn, int w) {
    link *l = &ps->links[w];
    const shard *sh = &ps->shards[ps->d->rank];
    if (sent(ps, fn, l, w)) return -1;
    size_t off = 0;
    for (int k = 0; k < sh->nvars; k++) {
        em_tensor *v = ps->vars[sh->vars[k]];
        if (em_copy_out(v, l->out + off, nbytes(v))) return fail(ps->d, fn, "reading variable %d", sh->vars[k]);
        off += nbytes(v);
    }
    int rc = MPI_Isend(l->out, (int)sh->bytes, MPI_BYTE, ps->servers + w, TAG_VALUES, ps->d->comm, &l->send);
    if (rc != MPI_SUCCESS) return mpi_failed(ps->d, fn, "MPI_Isend", rc);
    l->pending = false;
    l->heard = now(); /* the worker computes from here: its silence counts from now */
    return 0;
}

/* Applies worker w's gradients in l->in to this server's shard. */
static int apply(em_ps *ps, const char *fn, link *l, int w) {
    const shard *sh = &ps->shards[ps->d->rank];
    em_tensor **g = malloc(sizeof *g * 2 * (size_t)(sh->nvars ? sh->nvars : 1));
    if (!g) return fail(ps->d, fn, "out of memory");
    em_tensor **v = g + sh->nvars;
    int rc = 0;
    size_t off = sizeof(req_header);
    em_scope_begin();
    for (int k = 0; k < sh->nvars; k++) {
        v[k] = ps->vars[sh->vars[k]];
        g[k] = em_tensor_from(em_tensor_dtype(v[k]), em_tensor_shape(v[k]), l->in + off);
        off += nbytes(v[k]);
    }
    if (em_apply_gradients(ps->opt, sh->nvars, g, v))
        rc = fail(ps->d, fn, "applying worker rank %d's gradients", ps->servers + w);
    em_scope_end();
    free(g);
    return rc;
}

static int handle(em_ps *ps, const char *fn, int w, const MPI_Status *st) {
    link *l = &ps->links[w];
    int count = 0;
    MPI_Get_count(st, MPI_BYTE, &count);
    size_t shard_bytes = ps->shards[ps->d->rank].bytes;
    req_header h;
    if (count < (int)sizeof h) return fail(ps->d, fn, "worker rank %d sent %d bytes", ps->servers + w, count);
    memcpy(&h, l->in, sizeof h);
    l->heard = l->alive_sent = now();
    if (l->lost) { /* it was only slow */
        l->lost = false;
        ps->stats.workers_lost--;
    }
    if (h.kind == REQ_DONE) {
        l->done = true;
        l->pending = false;
        ps->stats.workers_done++;
        if (h.lost) ps->d->peer_lost = true;
        return 0;
    }
    if (h.kind == REQ_PUSH) {
        if ((size_t)count != sizeof h + shard_bytes)
            return fail(ps->d, fn, "worker rank %d pushed %d bytes, expected %zu", ps->servers + w, count,
                        sizeof h + shard_bytes);
        if (apply(ps, fn, l, w)) return -1;
        l->pushes++;
        ps->stats.updates++;
    } else if (h.kind != REQ_PULL)
        return fail(ps->d, fn, "worker rank %d sent an unknown request %lld", ps->servers + w, (long long)h.kind);
    l->pending = true;
    return post_recv(ps, fn, w);
}

/* An empty TAG_ALIVE to a worker waiting on us, every timeout/4. */
static int keep_alive(em_ps *ps, const char *fn, link *l, int w, double t) {
    if (t - l->alive_sent <= ps->d->timeout / 4) return 0;
    MPI_Request r;
    int rc = MPI_Isend(NULL, 0, MPI_BYTE, ps->servers + w, TAG_ALIVE, ps->d->comm, &r);
    if (rc == MPI_SUCCESS) rc = MPI_Request_free(&r);
    if (rc != MPI_SUCCESS) return mpi_failed(ps->d, fn, "MPI_Isend", rc);
    l->alive_sent = t;
    return 0;
}

/* Answers the held pulls the staleness bound now allows, keeps the waiting
 * workers waiting, and drops workers silent past the timeout. */
static int release(em_ps *ps, const char *fn) {
    int64_t slowest = INT64_MAX;
    for (int w = 0; w < ps->nworkers; w++) {
        const link *l = &ps->links[w];
        if (!l->done && !l->lost && l->pushes < slowest) slowest = l->pushes;
    }
    double t = now();
    for (int w = 0; w < ps->nworkers; w++) {
        link *l = &ps->links[w];
        int64_t lead = l->pushes - slowest;
        if (l->lost) continue;
        if (l->done) {
            if (keep_alive(ps, fn, l, w, t)) return -1;
        } else if (l->pending && (ps->staleness < 0 || lead <= ps->staleness)) {
            if (lead > ps->stats.max_staleness) ps->stats.max_staleness = lead;
            if (reply(ps, fn, w)) return -1;
        } else if (l->pending) {
            if (keep_alive(ps, fn, l, w, t)) return -1;
        } else if (t - l->heard > ps->d->timeout) {
            l->lost = true;
            ps->stats.workers_lost++;
            ps->d->peer_lost = true;
        }
    }
    return 0;
}

/* Every worker is done or lost: tells the done ones whether a rank died. */
static int finish(em_ps *ps, const char *fn) {
    for (int w = 0; w < ps->nworkers; w++) {
        link *l = &ps->links[w];
        if (!l->done) continue;
        if (sent(ps, fn, l, w)) return -1;
        int64_t lost = ps->d->peer_lost;
        memcpy(l->out, &lost, sizeof lost);
        int rc = MPI_Isend(l->out, (int)sizeof lost, MPI_BYTE, ps->servers + w, TAG_FIN, ps->d->comm, &l->send);
        if (rc != MPI_SUCCESS) return mpi_failed(ps->d, fn, "MPI_Isend", rc);
    }
    ps->finished = true;
    return 0;
}

int em_ps_serve(em_ps *ps, int64_t max_updates) {
    const char *fn = "em_ps_serve";
    if (!ps) return em__error_null("%s: the em_ps is NULL", fn), -1;
    if (check_dist(ps->d, fn)) return -1;
    if (!is_server(ps)) return fail(ps->d, fn, "this rank is a worker (servers are ranks 0..%d)", ps->servers - 1);
    int64_t start = ps->stats.updates;
    double idle = 0;
    while (!ps->finished) {
        if (ps->stats.workers_done + ps->stats.workers_lost == ps->nworkers) return finish(ps, fn);
        bool progress = false;
        for (int w = 0; w < ps->nworkers; w++) {
            link *l = &ps->links[w];
            if (l->done) continue;
            int flag = 0;
            MPI_Status st;
            int rc = MPI_Test(&l->recv, &flag, &st);
            if (rc != MPI_SUCCESS) return mpi_failed(ps->d, fn, "MPI_Test", rc);
            if (flag) {
                progress = true;
                if (handle(ps, fn, w, &st)) return -1;
                /* stop at exactly max_updates: the caller may act at that count */
                if (max_updates > 0 && ps->stats.updates - start >= max_updates) break;
            }
        }
        if (release(ps, fn)) return -1;
        if (max_updates > 0 && ps->stats.updates - start >= max_updates) return 1;
        if (progress) idle = 0;
        else idle_wait(&idle);
    }
    return 0;
}

/* ---- worker ---- */

/* Polls the request pair of every server in `asked`; a server's deadline
 * moves on with each of its TAG_ALIVE messages. A server that stays silent
 * past the timeout becomes ps->failed_server. */
static int wait_servers(em_ps *ps, const char *fn, const bool *asked) {
    double t = now();
    for (int s = 0; s < ps->servers; s++) ps->links[s].deadline = t + ps->d->timeout;
    double idle = 0;
    for (;;) {
        bool all = true, progress = false;
        t = now();
        for (int s = 0; s < ps->servers; s++) {
            link *l = &ps->links[s];
            if (!asked[s]) continue;
            MPI_Request r[2] = {l->send, l->recv};
            int done = 0, rc = MPI_Testall(2, r, &done, MPI_STATUSES_IGNORE);
            if (rc != MPI_SUCCESS) return mpi_failed(ps->d, fn, "MPI_Testall", rc);
            l->send = r[0];
            l->recv = r[1];
            if (done) continue;
            all = false;
            int alive = 0;
            rc = MPI_Iprobe(s, TAG_ALIVE, ps->d->comm, &alive, MPI_STATUS_IGNORE);
            if (rc == MPI_SUCCESS && alive)
                rc = MPI_Recv(NULL, 0, MPI_BYTE, s, TAG_ALIVE, ps->d->comm, MPI_STATUS_IGNORE);
            if (rc != MPI_SUCCESS) return mpi_failed(ps->d, fn, "MPI_Iprobe", rc);
            if (alive) {
                l->deadline = t + ps->d->timeout;
                progress = true;
            } else if (t > l->deadline) {
                ps->failed_server = s;
                ps->d->peer_lost = true;
                return fail(ps->d, fn, "server rank %d did not answer within %g s (timeout; did it die?)", s,
                            ps->d->timeout);
            }
        }
        if (all) return 0;
        if (progress) idle = 0;
        else idle_wait(&idle);
    }
}

/* Sends each server in asked its request (l->out holds the header and any
 * payload) and receives its answer (tag, up to `in` bytes) into l->in. */
static int exchange(em_ps *ps, const char *fn, int64_t kind, int tag, const bool *asked) {
    for (int s = 0; s < ps->servers; s++) {
        if (!asked[s]) continue;
        link *l = &ps->links[s];
        const shard *sh = &ps->shards[s];
        req_header h = {kind, ps->d->peer_lost};
        memcpy(l->out, &h, sizeof h);
        size_t out = sizeof h + (kind == REQ_PUSH ? sh->bytes : 0), in = tag == TAG_FIN ? sizeof(int64_t) : sh->bytes;
        int rc = MPI_Irecv(l->in, (int)in, MPI_BYTE, s, tag, ps->d->comm, &l->recv);
        if (rc == MPI_SUCCESS) rc = MPI_Isend(l->out, (int)out, MPI_BYTE, s, TAG_REQ, ps->d->comm, &l->send);
        if (rc != MPI_SUCCESS) return mpi_failed(ps->d, fn, "MPI_Isend", rc);
    }
    return wait_servers(ps, fn, asked);
}

/* Pull or push + pull from every server, into the variables. */
static int update(em_ps *ps, const char *fn, int64_t kind) {
    bool *all = malloc(sizeof *all * (size_t)ps->servers);
    if (!all) return fail(ps->d, fn, "out of memory");
    for (int s = 0; s < ps->servers; s++) all[s] = true;
    int rc = exchange(ps, fn, kind, TAG_VALUES, all);
    free(all);
    for (int s = 0; s < ps->servers && !rc; s++)
        rc = unpack(ps->d, fn, ps->shards[s].nvars, ps->vars, ps->shards[s].vars, ps->links[s].in);
    return rc;
}

static int check_worker(em_ps *ps, const char *fn) {
    if (!ps) return em__error_null("%s: the em_ps is NULL", fn), -1;
    if (check_dist(ps->d, fn)) return -1;
    if (is_server(ps)) return fail(ps->d, fn, "this rank is a server (workers are ranks %d..)", ps->servers);
    if (ps->failed_server >= 0)
        return fail(ps->d, fn, "server rank %d did not answer within %g s earlier (timeout; did it die?)",
                    ps->failed_server, ps->d->timeout);
    return 0;
}

int em_ps_pull(em_ps *ps) {
    const char *fn = "em_ps_pull";
    return check_worker(ps, fn) ? -1 : update(ps, fn, REQ_PULL);
}

int em_ps_push_pull(em_ps *ps, int n, em_tensor *const *grads) {
    const char *fn = "em_ps_push_pull";
    if (check_worker(ps, fn) || check_tensors(ps->d, fn, n, grads, "gradient")) return -1;
    if (n != ps->n) return fail(ps->d, fn, "%d gradients for %d variables", n, ps->n);
    for (int i = 0; i < n; i++) {
        em_tensor *g = grads[i], *v = ps->vars[i];
        if (em_tensor_dtype(g) != em_tensor_dtype(v) || !em_shape_equal(em_tensor_shape(g), em_tensor_shape(v))) {
            char a[128], b[128];
            return fail(ps->d, fn, "gradient %d is %s %s but variable %s is %s %s", i,
                        em_dtype_name(em_tensor_dtype(g)), em_shape_str(em_tensor_shape(g), a, sizeof a),
                        em_variable_name(v), em_dtype_name(em_tensor_dtype(v)),
                        em_shape_str(em_tensor_shape(v), b, sizeof b));
        }
    }
    for (int s = 0; s < ps->servers; s++) {
        size_t off = sizeof(req_header);
        const shard *sh = &ps->shards[s];
        for (int k = 0; k < sh->nvars; k++) {
            em_tensor *g = grads[sh->vars[k]];
            if (em_copy_out(g, ps->links[s].out + off, nbytes(g)))
                return fail(ps->d, fn, "reading gradient %d", sh->vars[k]);
            off += nbytes(g);
        }
    }
    ps->stats.updates++;
    return update(ps, fn, REQ_PUSH);
}

/* ---- closing ---- */

/* Frees the link's buffers once its requests are over: a receive is
 * cancelled; a send to a peer that is gone never completes, and then the
 * buffers wait in d's orphans until em_dist_close. */
static void drop_link(em_ps *ps, link *l) {
    if (l->recv != MPI_REQUEST_NULL) MPI_Cancel(&l->recv);
    double deadline = now() + (ps->d->timeout < 0.5 ? ps->d->timeout : 0.5);
    double idle = 0;
    for (;;) {
        MPI_Request r[2] = {l->send, l->recv};
        int done = 0;
        if (MPI_Testall(2, r, &done, MPI_STATUSES_IGNORE) != MPI_SUCCESS) done = 0;
        l->send = r[0];
        l->recv = r[1];
        if (done || now() > deadline) break;
        idle_wait(&idle);
    }
    if (l->send == MPI_REQUEST_NULL && l->recv == MPI_REQUEST_NULL) return;
    if (l->send != MPI_REQUEST_NULL) MPI_Request_free(&l->send);
    if (l->recv != MPI_REQUEST_NULL) MPI_Request_free(&l->recv);
    orphan(ps->d, l->in);
    orphan(ps->d, l->out);
    l->in = l->out = NULL;
}

void em_ps_close(em_ps *ps) {
    if (!ps) return;
    /* A worker: DONE to every live server, then FIN back, which says
     * whether a server saw a rank die (em_dist_close needs to know). */
    if (!is_server(ps) && !ps->d->broken) {
        bool *asked = malloc(sizeof *asked * (size_t)ps->servers);
        if (asked) {
            /* Not a server that failed, nor one whose answer is still due
             * after another failed: those will count this worker as lost. */
            for (int s = 0; s < ps->servers; s++)
                asked[s] = s != ps->failed_server && ps->links[s].send == MPI_REQUEST_NULL &&
                          ps->links[s].recv == MPI_REQUEST_NULL;
            if (exchange(ps, "em_ps_close", REQ_DONE, TAG_FIN, asked) == 0)
                for (int s = 0; s < ps->servers; s++) {
                    int64_t lost = 0;
                    if (asked[s]) memcpy(&lost, ps->links[s].in, sizeof lost);
                    if (lost) ps->d->peer_lost = true;
                }
            free(asked);
        }
        if (!asked || ps->failed_server >= 0) ps->d->peer_lost = true;
    }
    for (int k = 0; k < nlinks(ps); k++) drop_link(ps, &ps->links[k]);
    ps_free(ps);
}
