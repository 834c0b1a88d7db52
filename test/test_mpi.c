/* Multi-process training (include/ember/dist.h, lib/dist/mpi.c): each test
 * runs `mpirun -np 3` on loopback, either of this program's own child modes
 * (`test_mpi --child sync|ps`, which check values on every rank and print
 * "rank R: ... ok") or of examples/mnist_mpi, and asserts on the exit status
 * and the output. Checked:
 *   - sync: broadcast makes different variables identical (every rank's
 *     checksum), allreduce-mean of float32 and float64 is exact, 5 steps of
 *     Adam on 3 shards of a batch give the variables of one process on the
 *     whole batch (float64, 1e-12), and errors name the function and rank;
 *   - parameter servers: staleness 0 gives synchronous rounds (the values
 *     equal sequential SGD on both workers' gradients per round, and the
 *     server saw no lead), the split over 2 servers is balanced by bytes
 *     and both shards update, and misuse errors are clear;
 *   - mnist_mpi sync (identical checksums) and async (accuracy floor);
 *   - a worker killed by SIGKILL: the server and the other worker finish;
 *   - a server killed: both workers stop with an error naming the server
 *     rank and the timeout, well within the time, and the checkpoint the
 *     first worker saved restores;
 *   - a checkpoint manager shared by 2 ranks (em_dist_checkpoint_manager_open,
 *     `mpirun -np 2`): rank 0 writes while rank 1 waits for it, restores
 *     give every rank rank 0's variables, values and random stream, only
 *     the newest max_to_keep stay, and ranks saving different steps fail.
 * Without mpirun the suite prints why and passes. */
#include "common.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- child modes, run under mpirun ---- */

static int child_failed;

/* A failed check prints why (with the pending error) and fails the rank. */
#define EXPECT(cond, ...)                                                        \
    do {                                                                         \
        if (!(cond)) {                                                           \
            printf("rank %d: FAIL line %d: ", rank, __LINE__);                   \
            printf(__VA_ARGS__);                                                 \
            printf(" [%s]\n", em_last_error() ? em_last_error() : "no error"); \
            child_failed = 1;                                                    \
        }                                                                        \
    } while (0)

static bool err_has(const char *needle) {
    const char *e = em_last_error();
    return e && strstr(e, needle);
}

static bool all_equal(const uint64_t *s, int n) {
    for (int i = 1; i < n; i++)
        if (s[i] != s[0]) return false;
    return true;
}

static double max_diff(em_tensor *a, em_tensor *b) {
    em_scope_begin();
    double d = em_item(em_max(em_abs(em_sub(a, b)), EM_ALL_AXES, false));
    em_scope_end();
    return d;
}

/* The small float64 MLP of the sync test: mean cross-entropy of
 * tanh(x w + b) v on the rows [lo, hi) of x. */
static em_tensor *mlp_loss(em_tensor *const *p, em_tensor *x, em_tensor *y, int64_t lo, int64_t hi) {
    em_tensor *xs = em_slice(x, (int64_t[]){lo, 0}, (int64_t[]){hi - lo, 4});
    em_tensor *ys = em_slice(y, (int64_t[]){lo}, (int64_t[]){hi - lo});
    em_tensor *logits = em_matmul(em_tanh(em_add(em_matmul(xs, p[0]), p[1])), p[2]);
    return em_mean(em_sparse_softmax_cross_entropy_with_logits(ys, logits), EM_ALL_AXES, false);
}

static int child_sync(em_dist *d) {
    int rank = em_dist_rank(d), size = em_dist_size(d);
    uint64_t sums[16];
    EXPECT(size == 3 && em_dist_timeout(d) == 20, "size %d timeout %g", size, em_dist_timeout(d));

    /* Different starting values on every rank, identical after broadcast. */
    em_set_seed(100 + (uint64_t)rank);
    em_tensor *p[3] = {em_get_variable("w", EM_F64, EM_SHAPE(4, 5), EM_INIT_NORMAL(0, 0.5)),
                       em_get_variable("b", EM_F64, EM_SHAPE(5), EM_INIT_NORMAL(0, 0.5)),
                       em_get_variable("v", EM_F64, EM_SHAPE(5, 3), EM_INIT_NORMAL(0, 0.5))};
    EXPECT(em_dist_checksums(d, 3, p, sums) == 0 && !all_equal(sums, size), "checksums before broadcast");
    EXPECT(em_dist_broadcast(d, 3, p, 0) == 0, "broadcast");
    EXPECT(em_dist_checksums(d, 3, p, sums) == 0 && all_equal(sums, size), "checksums after broadcast");

    /* Means of float32 and float64 together: (1 + 2 + 3) / 3 and (0 + 10 + 20) / 3. */
    em_tensor *m[2] = {em_fill(EM_F32, EM_SHAPE(2), rank + 1), em_fill(EM_F64, EM_SHAPE(3), 10.0 * rank)};
    EXPECT(em_dist_allreduce_mean(d, 2, m) == 0, "allreduce");
    EXPECT(em_tensor_dtype(m[0]) == EM_F32 && em_numel(m[0]) == 2 && em_get(m[0], (int64_t[]){1}) == 2.0 &&
               em_get(m[1], (int64_t[]){2}) == 10.0,
           "means %g %g", em_get(m[0], (int64_t[]){1}), em_get(m[1], (int64_t[]){2}));

    /* Rank 0 keeps a copy trained by one process on the whole batch. */
    em_tensor *ref[3] = {0};
    em_optimizer *opt = em_adam(0.05, 0.9, 0.999, 1e-8), *ref_opt = NULL;
    if (rank == 0) {
        em_variable_scope_begin("ref", EM_REUSE_FALSE);
        for (int i = 0; i < 3; i++)
            ref[i] = em_get_variable(em_variable_name(p[i]), EM_F64, em_tensor_shape(p[i]), EM_INIT_FROM(p[i]));
        em_variable_scope_end();
        ref_opt = em_adam(0.05, 0.9, 0.999, 1e-8);
    }
    em_tensor *x = em_keep(em_test_uniform(EM_SHAPE(6, 4), -1, 1, 7));
    em_tensor *y = em_keep(em_tensor_from(EM_I64, EM_SHAPE(6), (int64_t[]){0, 1, 2, 0, 1, 2}));
    for (int step = 0; step < 5; step++) {
        em_scope_begin();
        em_tape *tape = em_tape_begin(false);
        em_tensor *loss = mlp_loss(p, x, y, 2 * rank, 2 * rank + 2);
        em_tape_stop(tape);
        em_tensor *g[3];
        EXPECT(em_compute_gradients(opt, tape, loss, 3, p, g) == 0, "gradients");
        em_tape_release(tape);
        EXPECT(em_dist_allreduce_mean(d, 3, g) == 0, "allreduce of gradients");
        EXPECT(em_apply_gradients(opt, 3, g, p) == 0, "apply");
        if (rank == 0) {
            tape = em_tape_begin(false);
            loss = mlp_loss(ref, x, y, 0, 6);
            em_tape_stop(tape);
            EXPECT(em_minimize(ref_opt, tape, loss, 3, ref) == 0, "reference step");
            em_tape_release(tape);
        }
        em_scope_end();
    }
    EXPECT(em_dist_checksums(d, 3, p, sums) == 0 && all_equal(sums, size), "checksums after training");
    if (rank == 0)
        for (int i = 0; i < 3; i++)
            EXPECT(max_diff(p[i], ref[i]) < 1e-12, "variable %d differs from one process by %g", i,
                   max_diff(p[i], ref[i]));

    /* Errors name the function and the rank. */
    char want[64];
    em_tensor *ints[1] = {em_zeros(EM_I64, EM_SHAPE(2))};
    em_clear_error();
    snprintf(want, sizeof want, "em_dist_allreduce_mean: rank %d: tensor 0 is int64", rank);
    EXPECT(em_dist_allreduce_mean(d, 1, ints) == -1 && err_has(want), "int64 allreduce");
    em_clear_error();
    EXPECT(em_dist_broadcast(d, 3, p, 7) == -1 && err_has("root 7 is not a rank of 3"), "bad root");
    em_clear_error();
    EXPECT(em_dist_broadcast(d, 1, m, 0) == -1 && err_has("tensor 0 is not a variable"),
           "not a variable");
    em_clear_error();
    EXPECT(em_dist_barrier(d) == 0, "barrier");
    em_release(x);
    em_release(y);
    em_optimizer_release(opt);
    em_optimizer_release(ref_opt);
    if (!child_failed) printf("rank %d: sync ok\n", rank);
    return child_failed;
}

/* Least squares of x w against x [1, 2, 3]; worker k's batch at round t is
 * fixed by (k, t), so any rank can recompute it. */
static em_tensor *lsq_grad(em_tensor *w, int k, int t) {
    em_tensor *x = em_test_uniform(EM_SHAPE(4, 3), -1, 1, 1000 * (uint64_t)k + (uint64_t)t + 1);
    em_tensor *target = em_matmul(x, em_tensor_from(EM_F64, EM_SHAPE(3, 1), (double[]){1, 2, 3}));
    em_tape *tape = em_tape_begin(false);
    em_tensor *r = em_sub(em_matmul(x, em_reshape(w, EM_SHAPE(3, 1))), target);
    em_tensor *loss = em_mean(em_square(r), EM_ALL_AXES, false);
    em_tape_stop(tape);
    em_tensor *g = NULL;
    em_gradients(tape, loss, 1, &w, &g);
    em_tape_release(tape);
    return g;
}

static int child_ps(em_dist *d) {
    int rank = em_dist_rank(d);
    const int rounds = 10;
    const double lr = 0.1;
    /* 1 server, 2 workers, staleness 0: synchronous rounds. */
    em_tensor *w = em_get_variable("lsq/w", EM_F64, EM_SHAPE(3), EM_INIT_CONST(0));
    em_optimizer *sgd = em_sgd(lr);
    em_ps *ps = em_ps_open(d, 1, &w, rank == 0 ? sgd : NULL, &(em_ps_options){.servers = 1, .staleness = 0});
    EXPECT(ps != NULL, "open");
    if (rank == 0) {
        em_clear_error();
        EXPECT(em_ps_pull(ps) == -1 && err_has("em_ps_pull: rank 0: this rank is a server"),
               "pull on a server");
        em_clear_error();
        EXPECT(em_ps_serve(ps, 0) == 0, "serve");
        em_ps_stats st = em_ps_get_stats(ps);
        EXPECT(st.updates == 2 * rounds && st.max_staleness == 0 && st.workers_done == 2 && st.workers_lost == 0,
               "server stats: %lld updates, lead %lld, done %d, lost %d", (long long)st.updates,
               (long long)st.max_staleness, st.workers_done, st.workers_lost);
    } else {
        int k = rank - 1;
        for (int t = 0; t < rounds; t++) {
            em_scope_begin();
            em_tensor *g = lsq_grad(w, k, t);
            EXPECT(em_ps_push_pull(ps, 1, &g) == 0, "push_pull");
            em_scope_end();
        }
        /* One process: per round, both gradients at the round's values. */
        em_scope_begin();
        em_tensor *ref = em_zeros(EM_F64, EM_SHAPE(3));
        for (int t = 0; t < rounds; t++) {
            em_tensor *g0 = lsq_grad(ref, 0, t), *g1 = lsq_grad(ref, 1, t);
            ref = em_sub(ref, em_mul_scalar(em_add(g0, g1), lr));
        }
        EXPECT(max_diff(w, ref) < 1e-12, "staleness 0 differs from synchronous rounds by %g", max_diff(w, ref));
        em_tensor *bad[2] = {em_zeros(EM_F64, EM_SHAPE(4)), em_zeros(EM_F64, EM_SHAPE(3))};
        em_clear_error();
        EXPECT(em_ps_push_pull(ps, 2, bad) == -1 && err_has("2 gradients for 1 variables"),
               "count");
        em_clear_error();
        EXPECT(em_ps_push_pull(ps, 1, bad) == -1 &&
                   err_has("gradient 0 is float64 [4] but variable lsq/w is float64 [3]"),
               "shape");
        em_clear_error();
        EXPECT(em_ps_serve(ps, 0) == -1 && err_has("this rank is a worker"), "serve on a worker");
        em_clear_error();
        em_scope_end();
    }
    em_ps_close(ps);

    /* 2 servers, 1 worker: the split by bytes and both shards updated. */
    double inits[4] = {1, 2, 3, 4};
    int64_t sizes[4] = {100, 30, 50, 20};
    em_tensor *v[4], *ones[4];
    for (int i = 0; i < 4; i++) {
        char name[32];
        snprintf(name, sizeof name, "split/v%d", i);
        v[i] = em_get_variable(name, EM_F64, EM_SHAPE(sizes[i]), EM_INIT_CONST(inits[i]));
        ones[i] = em_keep(em_ones(EM_F64, EM_SHAPE(sizes[i])));
    }
    ps = em_ps_open(d, 4, v, rank < 2 ? sgd : NULL, &(em_ps_options){.servers = 2, .staleness = -1});
    EXPECT(ps != NULL, "open with 2 servers");
    /* Biggest first to the lighter server: 100 -> 0; 50, 30, 20 -> 1. */
    EXPECT(em_ps_server_of(ps, 0) == 0 && em_ps_server_of(ps, 1) == 1 && em_ps_server_of(ps, 2) == 1 &&
               em_ps_server_of(ps, 3) == 1 && em_ps_server_of(ps, 4) == -1,
           "split %d %d %d %d", em_ps_server_of(ps, 0), em_ps_server_of(ps, 1), em_ps_server_of(ps, 2),
           em_ps_server_of(ps, 3));
    if (rank < 2) {
        EXPECT(em_ps_is_server(ps) && em_ps_serve(ps, 0) == 0, "serve shard");
        EXPECT(em_ps_get_stats(ps).updates == 3, "shard updates %lld", (long long)em_ps_get_stats(ps).updates);
    } else {
        EXPECT(!em_ps_is_server(ps) && em_ps_pull(ps) == 0, "pull shards");
        for (int s = 0; s < 3; s++) EXPECT(em_ps_push_pull(ps, 4, ones) == 0, "push shards");
        for (int i = 0; i < 4; i++)
            EXPECT(fabs(em_get(v[i], (int64_t[]){sizes[i] - 1}) - (inits[i] - 3 * lr)) < 1e-12, "v%d = %g", i,
                   em_get(v[i], (int64_t[]){sizes[i] - 1}));
        EXPECT(em_ps_get_stats(ps).updates == 3, "pushes made");
    }
    em_ps_close(ps);
    for (int i = 0; i < 4; i++) em_release(ones[i]);
    em_clear_error();
    EXPECT(em_ps_open(d, 4, v, sgd, &(em_ps_options){.servers = 3}) == NULL &&
               err_has("3 servers: need at least 1 and at most 2"),
           "too many servers");
    em_clear_error();
    em_optimizer_release(sgd);
    if (!child_failed) printf("rank %d: ps ok\n", rank);
    return child_failed;
}

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int count_files(const char *dir) {
    DIR *dd = opendir(dir);
    int files = 0;
    for (struct dirent *e; dd && (e = readdir(dd));) files += e->d_name[0] != '.';
    if (dd) closedir(dd);
    return files;
}

/* 2 ranks sharing a checkpoint manager in dir: rank 0 writes, rank 1 waits. */
static int child_ckpt(em_dist *d, const char *dir) {
    int rank = em_dist_rank(d);
    char path[512];
    em_set_seed(100 + (uint64_t)rank); /* different streams, until a restore */
    em_tensor *w = em_get_variable("w", EM_F64, EM_SHAPE(4), EM_INIT_CONST(rank + 1));
    em_checkpoint_manager *m = em_dist_checkpoint_manager_open(d, dir, "ck", 2);
    EXPECT(w && m, "open");
    EXPECT(em_checkpoint_manager_set_value(m, "rank", rank) == 0, "set_value");
    /* Rank 0 comes late: rank 1's save returns only once the file is there. */
    if (rank == 0) nanosleep(&(struct timespec){0, 300000000}, NULL);
    double t0 = seconds();
    EXPECT(em_checkpoint_manager_save(m, 10) == 0, "save 10");
    snprintf(path, sizeof path, "%s/ck-10", dir);
    if (rank == 1) {
        EXPECT(seconds() - t0 > 0.2, "rank 1 did not wait for rank 0 (%.3f s)", seconds() - t0);
        EXPECT(access(path, F_OK) == 0, "no %s after the save returned", path);
    }
    /* A restore gives every rank what rank 0 saved. */
    em_assign(w, em_scalar(EM_F64, -5));
    EXPECT(em_checkpoint_manager_set_value(m, "rank", 7) == 0, "set_value");
    EXPECT(em_checkpoint_manager_restore_latest(m) == 1, "restore");
    double v = -1;
    EXPECT(em_get(w, (int64_t[]){3}) == 1.0, "w = %g, not rank 0's 1", em_get(w, (int64_t[]){3}));
    EXPECT(em_checkpoint_manager_get_value(m, "rank", &v) == 1 && v == 0, "value 'rank' = %g, not 0", v);
    EXPECT(em_checkpoint_manager_step(m) == 10, "step %lld", (long long)em_checkpoint_manager_step(m));
    uint64_t sums[2];
    em_tensor *r = em_keep(em_random_uniform(EM_F64, EM_SHAPE(8), 0, 1)); /* rank 0's stream on both */
    EXPECT(em_dist_checksums(d, 1, &r, sums) == 0 && sums[0] == sums[1], "random streams differ after restore");
    em_release(r);
    /* Only the newest 2 stay (and the index). */
    EXPECT(em_checkpoint_manager_save(m, 20) == 0 && em_checkpoint_manager_save(m, 30) == 0, "saves 20, 30");
    snprintf(path, sizeof path, "%s/ck-10", dir);
    EXPECT(count_files(dir) == 3 && access(path, F_OK) != 0, "%d files in %s", count_files(dir), dir);
    EXPECT(em_dist_barrier(d) == 0, "barrier"); /* both counted before rank 0 writes again */
    /* Ranks that disagree on the step both fail. */
    em_clear_error();
    EXPECT(em_checkpoint_manager_save(m, 40 + rank) == -1 && err_has("the processes saved different steps"),
           "different steps");
    em_clear_error();
    em_checkpoint_manager_close(m);
    if (!child_failed) printf("rank %d: ckpt ok\n", rank);
    return child_failed;
}

static int child(const char *mode, const char *arg) {
    em_dist *d = em_dist_init(NULL, NULL, &(em_dist_options){.timeout = 20});
    if (!d) {
        printf("FAIL: em_dist_init: %s\n", em_last_error());
        return 1;
    }
    int rc = !strcmp(mode, "sync") ? child_sync(d) : !strcmp(mode, "ckpt") ? child_ckpt(d, arg) : child_ps(d);
    fflush(stdout);
    em_shutdown();
    if (em_dist_close(d)) rc = 1;
    return rc;
}

/* ---- the suite: runs mpirun ---- */

static char self[4096];
static bool root_user;

static const char *build_dir(void) {
    const char *b = getenv("EMBER_BUILD");
    return b && *b ? b : "build";
}

/* Under SANITIZE=1: no memory error in any rank, and no leak with a frame
 * in Ember's sources (paths are relative: " lib/...", Open MPI's are
 * "(/lib/..."). Open MPI's own leaks cannot be told apart by library
 * (MPI_Finalize unloads its plugins, whose frames then read "<unknown
 * module>"), so LeakSanitizer reports without failing a rank (exitcode=0 in
 * main) and this check picks out Ember's. */
static void check_sanitizers(const char *text) {
    ck_assert_msg(!strstr(text, "ERROR: AddressSanitizer") && !strstr(text, "runtime error:"),
                  "a rank reported a memory error:\n%.3000s", strstr(text, "ERROR") ? strstr(text, "ERROR") : text);
    for (const char *leak = strstr(text, "leak of "); leak;) {
        const char *next = strstr(leak + 1, "leak of ");
        size_t len = next ? (size_t)(next - leak) : strlen(leak);
        bool ours =
            memmem(leak, len, " lib/", 5) || memmem(leak, len, " examples/", 10) || memmem(leak, len, " test/", 6);
        ck_assert_msg(!ours, "a rank leaked memory from Ember's code:\n%.*s", (int)(len < 1500 ? len : 1500), leak);
        leak = next;
    }
}

/* Runs `mpirun -np <np> <program> <args>` (with --enable-recovery when a
 * rank is to die) on loopback; returns the exit status with the output
 * (stderr too) in out and the wall time in *seconds. */
static int mpirun_np(int np, bool recovery, const char *program, const char *args, char *out, size_t size,
                     double *seconds) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "timeout -k 5 90 mpirun %s --oversubscribe --bind-to none -np %d --mca btl self,tcp "
             "--mca btl_tcp_if_include lo --mca oob_tcp_if_include lo %s %s %s 2>&1",
             root_user ? "--allow-run-as-root" : "", np, recovery ? "--enable-recovery" : "", program, args);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    FILE *p = popen(cmd, "r");
    ck_assert_msg(p != NULL, "cannot run %s", cmd);
    /* Read to the end (a full pipe would stop mpirun), keeping what fits. */
    size_t n = 0;
    char chunk[4096];
    for (size_t got; (got = fread(chunk, 1, sizeof chunk, p)) > 0;) {
        size_t keep = got < size - 1 - n ? got : size - 1 - n;
        memcpy(out + n, chunk, keep);
        n += keep;
    }
    out[n] = '\0';
    int st = pclose(p);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (seconds) *seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    check_sanitizers(out);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int mpirun(bool recovery, const char *program, const char *args, char *out, size_t size, double *seconds) {
    return mpirun_np(3, recovery, program, args, out, size, seconds);
}

static char out[1 << 20];

/* The end of the output, for failure messages (Check's are short). */
static const char *tail(void) {
    size_t n = strlen(out);
    return n > 2000 ? out + n - 2000 : out;
}

#define ck_assert_output(needle) ck_assert_msg(strstr(out, needle) != NULL, "no \"%s\" in:\n%s", needle, tail())

START_TEST(sync_matches_one_process) {
    int rc = mpirun(false, self, "--child sync", out, sizeof out, NULL);
    ck_assert_msg(rc == 0, "exit status %d:\n%s", rc, tail());
    ck_assert_output("rank 0: sync ok");
    ck_assert_output("rank 1: sync ok");
    ck_assert_output("rank 2: sync ok");
}
END_TEST

START_TEST(parameter_servers_staleness_and_split) {
    int rc = mpirun(false, self, "--child ps", out, sizeof out, NULL);
    ck_assert_msg(rc == 0, "exit status %d:\n%s", rc, tail());
    ck_assert_output("rank 0: ps ok");
    ck_assert_output("rank 1: ps ok");
    ck_assert_output("rank 2: ps ok");
}
END_TEST

static char example[4200];

START_TEST(mnist_sync_identical_checksums) {
    int rc = mpirun(false, example, "--mode sync --steps 30 --quiet", out, sizeof out, NULL);
    ck_assert_msg(rc == 0, "exit status %d:\n%s", rc, tail());
    ck_assert_output("(identical on every rank)");
    ck_assert_output("rank 0: test accuracy");
}
END_TEST

/* Every "test accuracy X" in out is at least floor; returns how many. */
static int accuracies_above(double floor) {
    int n = 0;
    for (const char *p = out; (p = strstr(p, "test accuracy ")); p++, n++) {
        double a = atof(p + strlen("test accuracy "));
        ck_assert_msg(a >= floor, "accuracy %g below %g:\n%s", a, floor, tail());
    }
    return n;
}

START_TEST(mnist_async_trains) {
    int rc = mpirun(false, example, "--mode async --servers 1 --staleness 4 --steps 150 --quiet", out, sizeof out,
                    NULL);
    ck_assert_msg(rc == 0, "exit status %d:\n%s", rc, tail());
    ck_assert_output("rank 0: server: applied 300 updates");
    ck_assert_output("workers finished 2, lost 0");
    ck_assert_int_eq(accuracies_above(0.85), 2);
}
END_TEST

START_TEST(killed_worker_leaves_the_others_training) {
    double t;
    mpirun(true, example, "--mode async --steps 80 --die-rank 2 --die-at-step 20 --timeout 2 --quiet", out,
           sizeof out, &t);
    ck_assert_output("rank 2: dying at step 20");
    ck_assert_output("rank 1: worker: 80 steps");
    ck_assert_output("workers finished 1, lost 1");
    ck_assert_int_eq(accuracies_above(0.7), 1);
    ck_assert_msg(t < 40, "took %.1f s", t);
}
END_TEST

START_TEST(killed_server_stops_workers_and_checkpoint_restores) {
    char dir[64], args[512];
    em_test_tmpdir("mpi", dir, sizeof dir);
    snprintf(args, sizeof args,
             "--mode async --steps 200 --die-rank 0 --die-at-step 40 --timeout 2 --checkpoint-dir %s --keep 1 "
             "--checkpoint-every 5 --quiet",
             dir);
    double t;
    mpirun(true, example, args, out, sizeof out, &t);
    ck_assert_output("rank 0: dying at step 40");
    ck_assert_output("mnist_mpi: rank 1: pushing gradients: em_ps_push_pull: rank 1: server rank 0 did not "
                     "answer within 2 s (timeout; did it die?)");
    ck_assert_output("em_ps_push_pull: rank 2: server rank 0 did not answer within 2 s");
    ck_assert_msg(!strstr(out, "worker: 200 steps"), "a worker finished without its server:\n%s", tail());
    ck_assert_msg(t < 30, "took %.1f s", t);
    /* The last checkpoint is whole: the model restores from it, trained. */
    em_variable_scope_begin("layer1", EM_REUSE_FALSE);
    em_tensor *w1 = em_get_variable("weights", EM_F32, EM_SHAPE(784, 500), EM_INIT_CONST(0));
    em_tensor *b1 = em_get_variable("biases", EM_F32, EM_SHAPE(500), EM_INIT_CONST(0.1));
    em_variable_scope_end();
    em_variable_scope_begin("layer2", EM_REUSE_FALSE);
    em_get_variable("weights", EM_F32, EM_SHAPE(500, 10), EM_INIT_CONST(0));
    em_get_variable("biases", EM_F32, EM_SHAPE(10), EM_INIT_CONST(0.1));
    em_variable_scope_end();
    em_checkpoint_manager *m = em_checkpoint_manager_open(dir, "model", 1);
    ck_assert_msg(m && em_checkpoint_manager_restore_latest(m) == 1, "restore: %s", em_last_error());
    ck_assert_msg(em_checkpoint_manager_step(m) % 5 == 0 && em_checkpoint_manager_step(m) >= 5, "step %lld",
                  (long long)em_checkpoint_manager_step(m));
    em_checkpoint_manager_close(m);
    ck_assert_double_ne(em_get(w1, (int64_t[]){0, 0}), 0);
    ck_assert_double_ne(em_get(b1, (int64_t[]){0}), (double)0.1f);
    /* One checkpoint (--keep 1) and the index; no temporary file of an
     * interrupted save beside them. */
    ck_assert_int_eq(count_files(dir), 2);
    em_test_tmpdir_remove(dir);
    em_shutdown();
}
END_TEST

START_TEST(checkpoint_manager_on_two_ranks) {
    char dir[64], args[128];
    em_test_tmpdir("mpi_ckpt", dir, sizeof dir);
    snprintf(args, sizeof args, "--child ckpt %s/ckpts", dir);
    int rc = mpirun_np(2, false, self, args, out, sizeof out, NULL);
    ck_assert_msg(rc == 0, "exit status %d:\n%s", rc, tail());
    ck_assert_output("rank 0: ckpt ok");
    ck_assert_output("rank 1: ckpt ok");
    em_test_tmpdir_remove(dir);
}
END_TEST

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "--child")) return child(argv[2], argc > 3 ? argv[3] : NULL);
    if (system("command -v mpirun >/dev/null 2>&1") != 0) {
        printf("test_mpi: SKIPPED: mpirun is not on PATH (Debian: apt-get install openmpi-bin)\n");
        return 77;
    }
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        printf("test_mpi: cannot find this program's path\n");
        return 1;
    }
    self[n] = '\0';
    snprintf(example, sizeof example, "%s/examples/mnist_mpi", build_dir());
    root_user = geteuid() == 0;
    /* Ranks built with SANITIZE=1: see check_sanitizers. */
    setenv("LSAN_OPTIONS", "exitcode=0:suppressions=test/lsan_mpi.supp:print_suppressions=0", 0);
    Suite *s = suite_create("mpi");
    TCase *c = tcase_create("mpirun");
    tcase_set_timeout(c, 100);
    tcase_add_test(c, sync_matches_one_process);
    tcase_add_test(c, parameter_servers_staleness_and_split);
    tcase_add_test(c, mnist_sync_identical_checksums);
    tcase_add_test(c, mnist_async_trains);
    tcase_add_test(c, killed_worker_leaves_the_others_training);
    tcase_add_test(c, killed_server_stops_workers_and_checkpoint_restores);
    tcase_add_test(c, checkpoint_manager_on_two_ranks);
    suite_add_tcase(s, c);
    return em_test_run(s);
}
