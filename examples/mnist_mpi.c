/* The MNIST MLP of examples/mnist.c (784 -> 500 ReLU -> 10, softmax
 * cross-entropy, Adam 1e-3, batch 100; no dropout) trained by several
 * processes on MPI, both ways:
 *
 *   --mode sync     data parallel: each rank takes its share of every global
 *                   batch, the gradients are averaged with an allreduce, and
 *                   every rank applies the same update (identical variables;
 *                   rank 0 prints every rank's checksum).
 *   --mode async    parameter servers: ranks 0..K-1 (--servers K) hold the
 *                   variables and apply Adam; the other ranks are workers
 *                   that pull, compute gradients on their batches and push,
 *                   at most --staleness S pushes ahead of the slowest worker.
 *
 * Checkpoints (--checkpoint-dir DIR: "model-<step>" and "model.index", the
 * newest --keep kept) go through a checkpoint manager. In sync mode it is
 * shared by the ranks (em_dist_checkpoint_manager_open): rank 0 writes while
 * the others wait at a barrier, and --resume restores the newest on every
 * rank, continuing exactly as an uninterrupted run would. In async mode the
 * first worker saves the values it pulled; --resume starts every rank from
 * them (the servers' Adam state starts afresh: asynchronous training does
 * not repeat exactly anyway).
 *
 *   mpirun -np 2 build/examples/mnist_mpi --mode sync
 *   mpirun --enable-recovery -np 3 build/examples/mnist_mpi --mode async --servers 1 \
 *          --die-rank 2 --die-at-step 50 --timeout 3      (a worker dies; training goes on)
 *   mpirun -np 2 build/examples/mnist_mpi --checkpoint-dir runs/mpi --resume
 */
#include <ember.h>

#include "mnist_data.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    const char *data, *checkpoint_dir;
    bool async, quiet, resume;
    int servers, staleness, epochs, max_steps, batch, threads, die_rank, die_at, checkpoint_every, keep;
    double lr, timeout;
    uint64_t seed;
} options;

static void usage(FILE *out) {
    fprintf(out,
            "usage: mpirun [--enable-recovery] -np N mnist_mpi [--mode sync|async] [--servers K] [--staleness S]\n"
            "             [--data DIR] [--epochs N] [--steps N] [--batch N] [--lr X] [--seed S] [--threads N]\n"
            "             [--timeout SEC] [--checkpoint-dir DIR] [--keep N] [--checkpoint-every N] [--resume]\n"
            "             [--die-rank R --die-at-step N] [--quiet]\n"
            "  --mode         sync: allreduce of gradients (default); async: parameter servers\n"
            "  --servers K    async: ranks 0..K-1 are servers (default 1)\n"
            "  --staleness S  async: a worker is at most S pushes ahead of the slowest (default 4;\n"
            "                 0: synchronous rounds; -1: no bound)\n"
            "  --steps N      at most N steps per rank (0: whole epochs)\n"
            "  --timeout SEC  how long a rank waits for a peer before giving up (default 10)\n"
            "  --checkpoint-dir DIR  checkpoints model-<step> and model.index, saved every\n"
            "                 --checkpoint-every steps (default 100) and at the end: by rank 0 while the\n"
            "                 others wait (sync) or by the first worker (async)\n"
            "  --keep N       checkpoints kept, the newest (default 5; 0: all)\n"
            "  --resume       continue from the newest checkpoint in --checkpoint-dir (none: start\n"
            "                 fresh); --steps and --epochs count from the start of training\n"
            "  --die-rank R --die-at-step N  rank R kills itself (SIGKILL) at its step N\n"
            "                 (a server: after N updates); needs mpirun --enable-recovery\n"
            "  --threads N    threads per rank (default: cores / ranks)\n");
}

static int parse(int argc, char **argv, options *o) {
    *o = (options){.data = "data/mnist", .servers = 1, .staleness = 4, .epochs = 1, .batch = 100, .die_rank = -1,
                   .checkpoint_every = 100, .keep = 5, .lr = 1e-3, .seed = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name, action) EXAMPLE_OPTION("mnist_mpi", name, action)
        OPT("--mode", o->async = !strcmp(v, "async"); if (!o->async && strcmp(v, "sync")) {
            fprintf(stderr, "mnist_mpi: --mode is sync or async, not %s\n", v);
            return -1;
        })
        OPT("--servers", o->servers = atoi(v))
        OPT("--staleness", o->staleness = atoi(v))
        OPT("--data", o->data = v)
        OPT("--epochs", o->epochs = atoi(v))
        OPT("--steps", o->max_steps = atoi(v))
        OPT("--batch", o->batch = atoi(v))
        OPT("--lr", o->lr = atof(v))
        OPT("--seed", o->seed = strtoull(v, NULL, 10))
        OPT("--threads", o->threads = atoi(v))
        OPT("--timeout", o->timeout = atof(v))
        OPT("--checkpoint-dir", o->checkpoint_dir = v)
        OPT("--keep", o->keep = atoi(v))
        OPT("--checkpoint-every", o->checkpoint_every = atoi(v))
        OPT("--die-rank", o->die_rank = atoi(v))
        OPT("--die-at-step", o->die_at = atoi(v))
#undef OPT
        EXAMPLE_FLAG("--quiet", o->quiet)
        EXAMPLE_FLAG("--resume", o->resume)
        EXAMPLE_HELP_OR_UNKNOWN("mnist_mpi", usage)
    }
    if (o->epochs < 1 || o->batch < 1 || o->checkpoint_every < 1 || o->max_steps < 0 || o->keep < 0) {
        fprintf(stderr, "mnist_mpi: epochs, batch and checkpoint-every must be positive, steps and keep not negative\n");
        return -1;
    }
    if (o->resume && !o->checkpoint_dir) {
        fprintf(stderr, "mnist_mpi: --resume needs --checkpoint-dir\n");
        return -1;
    }
    return 0;
}

typedef struct {
    em_tensor *w1, *b1, *w2, *b2;
} model;

static em_tensor *forward(const model *m, em_tensor *x) {
    return em_add(em_matmul(em_relu(em_add(em_matmul(x, m->w1), m->b1)), m->w2), m->b2);
}

static double evaluate(const model *m, const dataset *test) {
    em_scope_begin();
    double acc = em_item(accuracy_of(forward(m, scaled(test->images)), test->labels));
    em_scope_end();
    return acc;
}

/* Everything a rank needs while it trains. */
typedef struct {
    options o;
    em_dist *d;
    int rank, size;
    dataset train, test;
    model m;
    em_tensor *vars[4];
    data_order data;
    em_checkpoint_manager *ckpt; /* sync: shared by the ranks; async: the first worker's */
    int64_t step0;               /* steps done before this run (--resume) */
} run;

static int report(const run *r, const char *what) {
    fprintf(stderr, "mnist_mpi: rank %d: %s: %s\n", r->rank, what, em_last_error() ? em_last_error() : "failed");
    return 1;
}

/* The rows of global batch g (0, 1, ... across epochs), reshuffled per epoch
 * from the same seed on every rank. */
static const int64_t *batch_rows(run *r, int64_t g) { return data_order_batch(&r->data, g, r->o.batch); }

static void maybe_die(const run *r, int64_t step) {
    if (r->rank == r->o.die_rank && r->o.die_at > 0 && step >= r->o.die_at) {
        printf("rank %d: dying at step %" PRId64 " (SIGKILL)\n", r->rank, step);
        fflush(stdout);
        raise(SIGKILL);
    }
}

/* Saves a checkpoint (sync: collective, rank 0 writes). */
static int save(const run *r, int64_t step) {
    if (!r->ckpt) return 0;
    if (data_order_save(&r->data, r->ckpt, r->o.batch) || em_checkpoint_manager_save(r->ckpt, step)) return -1;
    if (!r->o.quiet && (r->rank == 0 || r->o.async))
        printf("rank %d: step %" PRId64 ": saved %s/model-%" PRId64 "\n", r->rank, step, r->o.checkpoint_dir, step);
    return 0;
}

/* d(loss)/d(vars), loss = sum of the cross-entropies of the rows times
 * `scale` (NEW tensors). */
static int gradients(run *r, em_optimizer *opt, const int64_t *rows, int64_t n, double scale, em_tensor **grads,
                     double *loss) {
    em_tensor *x, *y;
    batch_of(&r->train, rows, n, &x, &y);
    em_tape *tape = em_tape_begin(false);
    em_tensor *l = em_mul_scalar(em_sum(em_sparse_softmax_cross_entropy_with_logits(y, forward(&r->m, x)), EM_ALL_AXES,
                                        false),
                                 scale);
    em_tape_stop(tape);
    int rc = opt ? em_compute_gradients(opt, tape, l, 4, r->vars, grads) : em_gradients(tape, l, 4, r->vars, grads);
    em_tape_release(tape);
    *loss = rc ? 0 : em_item(l);
    return rc;
}

static int64_t total_steps(const run *r, int64_t available) {
    return r->o.max_steps > 0 && r->o.max_steps < available ? r->o.max_steps : available;
}

/* The steps of --mode sync: 0, or 1 after reporting the error. */
static int sync_steps(run *r, em_optimizer *adam, int64_t total) {
    if (em_dist_broadcast(r->d, 4, r->vars, 0)) return report(r, "broadcasting the initial variables");
    /* This rank's rows of each global batch; the loss is scaled so that the
     * mean over ranks is the mean over the whole batch, for any split. */
    int64_t lo = (int64_t)r->rank * r->o.batch / r->size, hi = (int64_t)(r->rank + 1) * r->o.batch / r->size;
    double scale = (double)r->size / r->o.batch;
    for (int64_t s = r->step0 + 1; s <= total; s++) {
        maybe_die(r, s);
        em_scope_begin();
        em_tensor *grads[4];
        double loss;
        if (gradients(r, adam, batch_rows(r, s - 1) + lo, hi - lo, scale, grads, &loss))
            return report(r, "computing gradients");
        if (em_dist_allreduce_mean(r->d, 4, grads)) return report(r, "averaging gradients");
        if (em_apply_gradients(adam, 4, grads, r->vars)) return report(r, "applying gradients");
        em_scope_end();
        if (r->rank == 0 && !r->o.quiet && s % 100 == 0)
            printf("rank 0: step %" PRId64 "/%" PRId64 ": loss of my rows %.4f\n", s, total,
                   loss / scale / (double)(hi - lo));
        if ((s % r->o.checkpoint_every == 0 || s == total) && save(r, s)) return report(r, "saving the checkpoint");
    }
    return 0;
}

static int train_sync(run *r) {
    if (r->o.batch < r->size) {
        fprintf(stderr, "mnist_mpi: the batch (%d) needs at least one row per rank (%d)\n", r->o.batch, r->size);
        return 2;
    }
    em_optimizer *adam = em_adam(r->o.lr, 0.9, 0.999, 1e-8);
    if (!adam) return report(r, "creating the optimizer");
    int64_t total = total_steps(r, r->train.n / r->o.batch * r->o.epochs);
    double start = now();
    int rc = sync_steps(r, adam, total);
    double elapsed = now() - start;
    em_optimizer_release(adam);
    if (rc) return rc;
    uint64_t *sums = malloc(sizeof *sums * (size_t)r->size);
    if (!sums || em_dist_checksums(r->d, 4, r->vars, sums)) rc = report(r, "comparing the variables");
    bool same = true;
    for (int k = 1; k < r->size && !rc; k++) same = same && sums[k] == sums[0];
    if (r->rank == 0 && !rc) {
        int64_t ran = total > r->step0 ? total - r->step0 : 0;
        printf("rank 0: trained %" PRId64 " steps of %d rows on %d ranks in %.2f s (%.2f ms/step)\n", ran,
               r->o.batch, r->size, elapsed, ran ? 1e3 * elapsed / (double)ran : 0.0);
        printf("rank 0: wall time %.3f s\n", elapsed);
        printf("rank 0: checksums:");
        for (int k = 0; k < r->size; k++) printf(" %016" PRIx64, sums[k]);
        printf(" (%s)\n", same ? "identical on every rank" : "DIFFERENT");
        printf("rank 0: test accuracy %.4f\n", evaluate(&r->m, &r->test));
    }
    free(sums);
    return rc ? rc : same ? 0 : 1;
}

static int serve(run *r, em_ps *ps) {
    double start = now();
    int rc;
    /* One update at a time only where this rank is to die at an update count. */
    int64_t chunk = r->rank == r->o.die_rank ? 1 : 0;
    while ((rc = em_ps_serve(ps, chunk)) == 1) maybe_die(r, em_ps_get_stats(ps).updates);
    if (rc) return report(r, "serving");
    em_ps_stats st = em_ps_get_stats(ps);
    double elapsed = now() - start;
    printf("rank %d: server: applied %" PRId64 " updates in %.2f s; max staleness %" PRId64
           "; workers finished %d, lost %d\n",
           r->rank, st.updates, elapsed, st.max_staleness, st.workers_done, st.workers_lost);
    if (r->rank == 0) printf("rank 0: wall time %.3f s\n", elapsed);
    return 0;
}

static int work(run *r, em_ps *ps) {
    int servers = r->o.servers, w = r->rank - servers, nw = r->size - servers;
    int64_t global = r->train.n / r->o.batch * r->o.epochs;
    /* Worker w takes global batches w, w + nw, w + 2 nw, ... */
    int64_t total = total_steps(r, (global - w + nw - 1) / nw);
    double start = now(), loss = 0;
    for (int64_t s = r->step0 + 1; s <= total; s++) {
        maybe_die(r, s);
        em_scope_begin();
        em_tensor *grads[4];
        if (gradients(r, NULL, batch_rows(r, (s - 1) * nw + w), r->o.batch, 1.0 / r->o.batch, grads, &loss))
            return report(r, "computing gradients");
        if (em_ps_push_pull(ps, 4, grads)) return report(r, "pushing gradients");
        em_scope_end();
        if (w == 0 && !r->o.quiet && s % 100 == 0)
            printf("rank %d: step %" PRId64 "/%" PRId64 ": loss %.4f\n", r->rank, s, total, loss);
        if (w == 0 && (s % r->o.checkpoint_every == 0 || s == total) && save(r, s))
            return report(r, "saving the checkpoint");
    }
    printf("rank %d: worker: %" PRId64 " steps in %.2f s, last loss %.4f, test accuracy %.4f\n", r->rank,
           total > r->step0 ? total - r->step0 : 0,
           now() - start, loss, evaluate(&r->m, &r->test));
    return 0;
}

static int train_async(run *r) {
    bool server = r->rank < r->o.servers;
    em_optimizer *adam = server ? em_adam(r->o.lr, 0.9, 0.999, 1e-8) : NULL;
    if (server && !adam) return report(r, "creating the optimizer");
    em_ps *ps = em_ps_open(r->d, 4, r->vars, adam,
                           &(em_ps_options){.servers = r->o.servers, .staleness = r->o.staleness});
    if (!ps) return report(r, "starting the parameter servers");
    if (r->rank == 0 && !r->o.quiet) {
        printf("rank 0: %d server(s), %d worker(s), staleness %d; shards:", r->o.servers, r->size - r->o.servers,
               r->o.staleness);
        for (int i = 0; i < 4; i++) printf(" %s -> rank %d", em_variable_name(r->vars[i]), em_ps_server_of(ps, i));
        printf("\n");
    }
    int rc = server ? serve(r, ps) : work(r, ps);
    em_ps_close(ps);
    em_optimizer_release(adam);
    return rc;
}

/* Opens the checkpoint manager and, with --resume, restores the newest
 * checkpoint. Sync: every rank shares the manager (rank 0 writes). Async:
 * the first worker saves; with --resume every rank restores on its own,
 * before the servers' optimizers exist (the worker's checkpoints have no
 * Adam state). 0, or 1 after reporting the error. */
static int open_checkpoints(run *r) {
    if (!r->o.checkpoint_dir) return 0;
    bool saver = !r->o.async || r->rank == r->o.servers;
    if (!r->o.async)
        r->ckpt = em_dist_checkpoint_manager_open(r->d, r->o.checkpoint_dir, "model", r->o.keep);
    else if (saver || r->o.resume)
        r->ckpt = em_checkpoint_manager_open(r->o.checkpoint_dir, "model", r->o.keep);
    if ((saver || r->o.resume) && !r->ckpt) return report(r, "opening the checkpoints");
    if (r->o.resume) {
        char who[64];
        snprintf(who, sizeof who, "mnist_mpi: rank %d", r->rank);
        if ((r->step0 = resume_newest(r->ckpt, &r->data, r->o.batch, who, "rank 0: ", r->rank == 0)) < 0) return 1;
    }
    if (!saver) {
        em_checkpoint_manager_close(r->ckpt);
        r->ckpt = NULL;
    }
    return 0;
}

int main(int argc, char **argv) {
    run r = {0};
    /* mpirun hands MPI its settings in the environment: argv is ours alone. */
    if (parse(argc, argv, &r.o)) return 2;
    r.d = em_dist_init(&argc, &argv, &(em_dist_options){.timeout = r.o.timeout});
    if (!r.d) {
        fprintf(stderr, "mnist_mpi: %s\n", em_last_error());
        return 1;
    }
    r.rank = em_dist_rank(r.d);
    r.size = em_dist_size(r.d);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    em_set_num_threads(r.o.threads > 0 ? r.o.threads : cores > r.size ? (int)(cores / r.size) : 1);
    em_set_seed(r.o.seed);
    int rc = 0;
    if (load_mnist(r.o.data, "train", EM_SHAPE(784), &r.train) || load_mnist(r.o.data, "t10k", EM_SHAPE(784), &r.test))
        rc = report(&r, "loading MNIST");
    if (!rc && data_order_init(&r.data, r.train.n, r.o.seed)) rc = report(&r, "allocating");
    if (!rc) {
        em_variable_scope_begin("layer1", EM_REUSE_FALSE);
        r.m.w1 = em_get_variable("weights", EM_F32, EM_SHAPE(784, 500), EM_INIT_TRUNC_NORMAL(0, 0.1));
        r.m.b1 = em_get_variable("biases", EM_F32, EM_SHAPE(500), EM_INIT_CONST(0.1));
        em_variable_scope_end();
        em_variable_scope_begin("layer2", EM_REUSE_FALSE);
        r.m.w2 = em_get_variable("weights", EM_F32, EM_SHAPE(500, 10), EM_INIT_TRUNC_NORMAL(0, 0.1));
        r.m.b2 = em_get_variable("biases", EM_F32, EM_SHAPE(10), EM_INIT_CONST(0.1));
        em_variable_scope_end();
        memcpy(r.vars, (em_tensor *[]){r.m.w1, r.m.b1, r.m.w2, r.m.b2}, sizeof r.vars);
        if (!r.m.w1 || !r.m.b1 || !r.m.w2 || !r.m.b2) rc = report(&r, "creating variables");
    }
    if (!rc) rc = open_checkpoints(&r);
    if (!rc) {
        if (r.rank == 0)
            printf("rank 0: %s training on %d ranks, %d thread(s) each, timeout %g s\n", r.o.async ? "async" : "sync",
                   r.size, em_num_threads(), em_dist_timeout(r.d));
        rc = r.o.async ? train_async(&r) : train_sync(&r);
    }
    fflush(stdout);
    em_checkpoint_manager_close(r.ckpt);
    data_order_free(&r.data);
    dataset_release(&r.train);
    dataset_release(&r.test);
    em_shutdown();
    if (em_dist_close(r.d) && !rc) rc = report(&r, "closing");
    return rc;
}
