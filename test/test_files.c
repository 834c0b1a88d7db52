/* Every file Ember writes for the user (lib/file.h): .npy arrays, PNG images
 * and plots, Graphviz graphs and checkpoints. A write that fails on a full
 * disk leaves the previous file whole and no temporary behind; a path that
 * exists and is not a regular file (a device, a FIFO, a directory) is
 * refused, never replaced; a symbolic link is written through, its target
 * replaced and the link kept (issue 21). The event file's appends are in
 * test/test_summary.c. */
#include "common.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static char tmp[256];

static void setup(void) { em_test_tmpdir("files", tmp, sizeof tmp); }

static void teardown(void) {
    em_test_tmpdir_remove(tmp);
    em_shutdown();
}

#define expect_fail(rc, needle) em_test_assert_error((rc) != 0, (needle), __FILE__, __LINE__)

static unsigned char *read_all(const char *p, long *n) {
    FILE *f = fopen(p, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", p);
    fseek(f, 0, SEEK_END);
    *n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *d = malloc((size_t)*n + 1);
    ck_assert_int_eq(fread(d, 1, (size_t)*n, f), *n);
    fclose(f);
    return d;
}

/* How many files in dir have ".tmp." in their name (a writer's temporaries). */
static int temporaries(const char *dir) {
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

/* ---- the writers, each writing version v of its file ---- */

static int save_npy(const char *path, int v) { return em_save_npy(path, em_fill(EM_F32, EM_SHAPE(100), v)); }

static int write_png(const char *path, int v) {
    uint8_t px[16 * 16];
    for (int i = 0; i < 16 * 16; i++) px[i] = (uint8_t)(i * 37 + v * 11);
    return em_write_png(path, em_tensor_from(EM_U8, EM_SHAPE(16, 16), px));
}

static int plot_png(const char *path, int v) {
    double y[3] = {1, 2 + v, 0};
    em_series s = {"loss", NULL, y, 3};
    return em_plot_png(path, "training", "step", "loss", 1, &s, 160, 120);
}

static int plot_image_grid(const char *path, int v) {
    em_tensor *t = em_reshape(em_arange(EM_F32, 0, 4 * 16, 1), EM_SHAPE(4, 16)); /* tiles are normalised: v flips them */
    return em_plot_image_grid(path, v > 1 ? em_neg(t) : t, 4, 4, 0);
}

static int graph_write_dot(const char *path, int v) {
    em_tensor *x = em_placeholder(EM_F32, EM_SHAPE(-1, 3), "x");
    ck_assert_int_eq(em_trace_begin(), 0);
    em_tensor *y = em_relu(x);
    if (v > 1) em_sigmoid(y);
    em_graph *g = em_trace_end();
    ck_assert_ptr_nonnull(g);
    int rc = em_graph_write_dot(g, path);
    em_graph_release(g);
    return rc;
}

static int checkpoint_save(const char *path, int v) {
    em_variables_release();
    em_get_variable("w", EM_F32, EM_SHAPE(100), EM_INIT_CONST(v));
    return em_checkpoint_save(path);
}

static const struct {
    const char *name, *file;
    int (*save)(const char *path, int v);
} writers[] = {
    {"save_npy", "x.npy", save_npy},
    {"write_png", "x.png", write_png},
    {"plot_png", "plot.png", plot_png},
    {"plot_image_grid", "grid.png", plot_image_grid},
    {"graph_write_dot", "g.dot", graph_write_dot},
    {"checkpoint_save", "model.ckpt", checkpoint_save},
};
#define NWRITERS (int)(sizeof writers / sizeof writers[0])

/* Runs writer w on path with the file size limited to `limit` bytes (the
 * limit stands in for a full disk: writes past it fail with EFBIG). */
static int save_limited(int w, const char *path, int v, rlim_t limit) {
    struct rlimit old, small;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    small = old;
    small.rlim_cur = limit;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
    int rc = writers[w].save(path, v);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);
    return rc;
}

START_TEST(test_failed_write_keeps_previous_file) {
    for (int w = 0; w < NWRITERS; w++) {
        char path[400], msg[900];
        snprintf(path, sizeof path, "%s/%s", tmp, writers[w].file);
        ck_assert_msg(writers[w].save(path, 1) == 0, "%s: %s", writers[w].name, em_last_error());
        long n1, n2;
        unsigned char *first = read_all(path, &n1);
        ck_assert_int_gt(n1, 64);
        /* The disk fills up after 64 bytes of the new version. */
        int rc = save_limited(w, path, 2, 64);
        snprintf(msg, sizeof msg, "%s: writing %s.tmp.%ld failed: File too large (%s is unchanged)", writers[w].name,
                 path, (long)getpid(), path);
        ck_assert_msg(rc == -1, "%s succeeded past the file size limit", writers[w].name);
        ck_assert_str_eq(em_last_error(), msg);
        em_clear_error();
        unsigned char *after = read_all(path, &n2);
        ck_assert_msg(n2 == n1 && !memcmp(first, after, (size_t)n1), "%s: the previous file changed", writers[w].name);
        ck_assert_msg(temporaries(tmp) == 0, "%s left its temporary", writers[w].name);
        free(after);
        /* With room again, the new version replaces the file. */
        ck_assert_int_eq(writers[w].save(path, 2), 0);
        after = read_all(path, &n2);
        ck_assert_msg(n2 != n1 || memcmp(first, after, (size_t)n1), "%s: version 2 was not written", writers[w].name);
        free(first);
        free(after);
    }
}
END_TEST

/* Asserts that writing over `what` at path (not a regular file) fails with
 * the message, for every writer, and leaves it and its directory as they were. */
static void refused(const char *path, const char *what) {
    struct stat before, after;
    ck_assert_int_eq(lstat(path, &before), 0);
    for (int w = 0; w < NWRITERS; w++) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s: %s is %s: only a regular file is replaced", writers[w].name, path, what);
        ck_assert_int_eq(writers[w].save(path, 1), -1);
        ck_assert_str_eq(em_last_error(), msg);
        em_clear_error();
    }
    ck_assert_int_eq(lstat(path, &after), 0);
    ck_assert_int_eq(after.st_mode, before.st_mode);
    ck_assert_int_eq(after.st_ino, before.st_ino);
    ck_assert_int_eq(after.st_rdev, before.st_rdev);
    ck_assert_int_eq(temporaries(tmp), 0);
}

START_TEST(test_non_regular_targets_are_refused) {
    char path[400];
    /* The case: a device node (mknod needs root). */
    snprintf(path, sizeof path, "%s/device", tmp);
    if (mknod(path, S_IFCHR | 0600, makedev(1, 7)) == 0) refused(path, "a character device");
    else printf("test_files: SKIPPING the device-node case: mknod: %s (it needs root)\n", strerror(errno));
    snprintf(path, sizeof path, "%s/fifo", tmp);
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    refused(path, "a FIFO");
    snprintf(path, sizeof path, "%s/dir", tmp);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    refused(path, "a directory");
}
END_TEST

START_TEST(test_symbolic_links_are_written_through) {
    char sub[300], target[400], link[400], fifo[400], loop_a[400], loop_b[400];
    snprintf(sub, sizeof sub, "%s/data", tmp);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    snprintf(target, sizeof target, "%s/x.npy", sub);
    snprintf(link, sizeof link, "%s/latest.npy", tmp);
    ck_assert_int_eq(symlink("data/x.npy", link), 0); /* relative: to the link's directory */

    /* Dangling: the target is created, the link stays. */
    ck_assert_int_eq(em_save_npy(link, em_fill(EM_F32, EM_SHAPE(3), 1)), 0);
    struct stat st;
    ck_assert_int_eq(lstat(link, &st), 0);
    ck_assert(S_ISLNK(st.st_mode));
    ck_assert_int_eq(lstat(target, &st), 0);
    ck_assert(S_ISREG(st.st_mode));

    /* Existing: the target is replaced, keeps its permissions, and the link stays. */
    ck_assert_int_eq(chmod(target, 0600), 0);
    ck_assert_int_eq(em_save_npy(link, em_fill(EM_F32, EM_SHAPE(3), 2)), 0);
    ck_assert_int_eq(lstat(link, &st), 0);
    ck_assert(S_ISLNK(st.st_mode));
    ck_assert_int_eq(stat(target, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    ck_assert_double_eq(em_item(em_sum(em_load_npy(target), EM_ALL_AXES, false)), 6);
    ck_assert_int_eq(temporaries(tmp) + temporaries(sub), 0);

    /* A link to something that is not a regular file is refused. */
    snprintf(fifo, sizeof fifo, "%s/fifo", sub);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    ck_assert_int_eq(unlink(link), 0);
    ck_assert_int_eq(symlink(fifo, link), 0);
    char msg[1200];
    snprintf(msg, sizeof msg, "save_npy: %s is a symbolic link to %s, which is a FIFO: only a regular file is replaced",
             link, fifo);
    ck_assert_int_eq(em_save_npy(link, em_fill(EM_F32, EM_SHAPE(3), 3)), -1);
    ck_assert_str_eq(em_last_error(), msg);
    em_clear_error();

    /* Links in a loop. */
    snprintf(loop_a, sizeof loop_a, "%s/a", tmp);
    snprintf(loop_b, sizeof loop_b, "%s/b", tmp);
    ck_assert_int_eq(symlink("b", loop_a), 0);
    ck_assert_int_eq(symlink("a", loop_b), 0);
    expect_fail(em_checkpoint_save(loop_a), "checkpoint_save: cannot follow the symbolic link");
    ck_assert_int_eq(temporaries(tmp) + temporaries(sub), 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("files");
    TCase *tc = tcase_create("files");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_failed_write_keeps_previous_file);
    tcase_add_test(tc, test_non_regular_targets_are_refused);
    tcase_add_test(tc, test_symbolic_links_are_written_through);
    suite_add_tcase(s, tc);
    return em_test_run(s);
}
