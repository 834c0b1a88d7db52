/* Checkpoints: roundtrip with optimizer slots, deferred restore of slots made
 * later, damaged files (truncated, flipped byte, bad magic or version),
 * missing variables and wrong shapes (each changing no variable), and a
 * failed save leaving the previous checkpoint whole. */
#include "common.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define ck_assert_fails(rc, needle) em_test_assert_error((rc) != 0, (needle), __FILE__, __LINE__)

static char dir[64], path[128];

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/ember_ckpt_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/model.ckpt", dir);
}

static void teardown(void) {
    em_shutdown();
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (remove(p)) rmdir(p);
    }
    if (d) closedir(d);
    rmdir(dir);
}

static long file_size(const char *p) {
    struct stat st;
    return stat(p, &st) ? -1 : (long)st.st_size;
}

static unsigned char *read_all(const char *p, long *n) {
    FILE *f = fopen(p, "rb");
    ck_assert_ptr_nonnull(f);
    *n = file_size(p);
    unsigned char *b = malloc((size_t)*n);
    ck_assert_int_eq(fread(b, 1, (size_t)*n, f), *n);
    fclose(f);
    return b;
}

static void write_all(const char *p, const unsigned char *b, long n) {
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fwrite(b, 1, (size_t)n, f), n);
    fclose(f);
}

/* A small model: two trainable float variables, an int counter, and Adam. */
typedef struct {
    em_tensor *w, *b, *count;
    em_optimizer *opt;
} model;

static model make_model(void) {
    model m;
    ck_assert_int_eq(em_variable_scope_begin("dense", EM_REUSE_FALSE), 0);
    m.w = em_get_variable("w", EM_F32, EM_SHAPE(2, 3), EM_INIT_CONST(0.5));
    m.b = em_get_variable("b", EM_F64, EM_SHAPE(3), EM_INIT_CONST(-1));
    ck_assert_int_eq(em_variable_scope_end(), 0);
    m.count = em_get_variable_untrainable("count", EM_I64, EM_SHAPE0, EM_INIT_CONST(7));
    m.opt = em_adam(0.1, 0.9, 0.999, 1e-8);
    ck_assert(m.w && m.b && m.count && m.opt);
    return m;
}

/* One Adam step with gradients that depend on the step number. */
static void train_step(model *m, int s) {
    em_scope_begin();
    em_tensor *g[2] = {em_fill(EM_F32, EM_SHAPE(2, 3), 0.3 * s - 0.5), em_fill(EM_F64, EM_SHAPE(3), 1.0 / (s + 1))};
    ck_assert_int_eq(em_apply_gradients(m->opt, 2, g, (em_tensor *[]){m->w, m->b}), 0);
    ck_assert_int_eq(em_assign_add(m->count, em_scalar(EM_I64, 1)), 0);
    em_scope_end();
}

/* Every global variable's bytes, concatenated: a snapshot to compare. */
static size_t snapshot(unsigned char *buf, size_t cap) {
    em_tensor *all[64];
    int n = em_global_variables(all, 64);
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        size_t bytes = (size_t)em_numel(all[i]) * em_dtype_size(em_tensor_dtype(all[i]));
        ck_assert(at + bytes <= cap);
        memcpy(buf + at, em_data(all[i]), bytes);
        at += bytes;
    }
    return at;
}

START_TEST(test_roundtrip_with_slots) {
    model m = make_model();
    for (int s = 0; s < 3; s++) train_step(&m, s);
    ck_assert_int_eq(em_global_variables(NULL, 0), 9); /* w, b, count, step, lr, 2 slots each for w and b */
    unsigned char saved[4096], now[4096];
    size_t n = snapshot(saved, sizeof saved);
    ck_assert_int_eq(em_checkpoint_save(path), 0);
    ck_assert_int_eq(access(path, F_OK), 0);
    for (int s = 3; s < 5; s++) train_step(&m, s);
    ck_assert_int_eq(em_optimizer_step(m.opt), 5);
    ck_assert_int_eq(em_checkpoint_restore(path), 0);
    ck_assert_int_eq(snapshot(now, sizeof now), n);
    ck_assert_mem_eq(now, saved, n);
    ck_assert_int_eq(em_optimizer_step(m.opt), 3);
    ck_assert_double_eq(em_item(m.count), 10);
    /* Saving again over the file works and leaves no temporary behind. */
    ck_assert_int_eq(em_checkpoint_save(path), 0);
    DIR *d = opendir(dir);
    int files = 0;
    for (struct dirent *e; (e = readdir(d));) files += e->d_name[0] != '.';
    closedir(d);
    ck_assert_int_eq(files, 1);
    em_optimizer_release(m.opt);
}
END_TEST

/* Resuming in a fresh state: slots that do not exist yet at restore time get
 * the file's values when the optimizer makes them, so training continues
 * exactly as it would have. */
START_TEST(test_resume_deferred_slots) {
    model m = make_model();
    for (int s = 0; s < 3; s++) train_step(&m, s);
    ck_assert_int_eq(em_checkpoint_save(path), 0);
    float w_saved[6];
    memcpy(w_saved, em_data(m.w), sizeof w_saved);
    for (int s = 3; s < 6; s++) train_step(&m, s);
    unsigned char expect[4096], got[4096];
    size_t n = snapshot(expect, sizeof expect);
    em_optimizer_release(m.opt);
    em_variables_release();

    model r = make_model();
    ck_assert_int_eq(em_global_variables(NULL, 0), 5);
    ck_assert_int_eq(em_checkpoint_restore(path), 0);
    ck_assert_int_eq(em_optimizer_step(r.opt), 3);
    for (int s = 3; s < 6; s++) train_step(&r, s);
    ck_assert_int_eq(snapshot(got, sizeof got), n);
    ck_assert_mem_eq(got, expect, n);
    em_optimizer_release(r.opt);

    /* A pending entry whose shape differs from the variable made later is an error. */
    em_variables_release();
    ck_assert_ptr_nonnull(em_get_variable("unrelated", EM_F32, EM_SHAPE0, EM_INIT_CONST(0)));
    ck_assert_int_eq(em_checkpoint_restore(path), -1); /* unrelated is not in the file */
    em_clear_error();
    em_variables_release();
    ck_assert_int_eq(em_checkpoint_restore(path), 0); /* nothing exists: everything waits */
    ck_assert_error(em_get_variable("dense/w", EM_F32, EM_SHAPE(3, 2), EM_INIT_CONST(0)),
                    "variable dense/w is float32 [3,2] here but float32 [2,3] in");
    em_tensor *w = em_get_variable("dense/w", EM_F32, EM_SHAPE(2, 3), EM_INIT_CONST(0));
    ck_assert_mem_eq(em_data(w), w_saved, sizeof w_saved); /* the file's value, not the initializer's */
}
END_TEST

/* Restores that fail change nothing. */
static void assert_unchanged(const unsigned char *before, size_t n) {
    unsigned char now[4096];
    ck_assert_int_eq(snapshot(now, sizeof now), n);
    ck_assert_mem_eq(now, before, n);
}

START_TEST(test_damaged_files) {
    model m = make_model();
    for (int s = 0; s < 2; s++) train_step(&m, s);
    ck_assert_int_eq(em_checkpoint_save(path), 0);
    train_step(&m, 2);
    unsigned char before[4096];
    size_t n = snapshot(before, sizeof before);
    long size;
    unsigned char *good = read_all(path, &size);
    char bad[160];
    snprintf(bad, sizeof bad, "%s/bad.ckpt", dir);

    /* Truncated anywhere: in the header, inside an entry, just before the checksum. */
    const long cuts[] = {0, 10, 20, size / 2, size - 5, size - 1};
    for (int i = 0; i < 6; i++) {
        write_all(bad, good, cuts[i]);
        ck_assert_int_eq(em_checkpoint_restore(bad), -1);
        const char *e = em_last_error();
        ck_assert_msg(strstr(e, "truncated") || strstr(e, "not an Ember checkpoint") || strstr(e, "checksum"),
                      "cut %ld: %s", cuts[i], e);
        em_clear_error();
        assert_unchanged(before, n);
    }
    write_all(bad, good, size / 2);
    ck_assert_fails(em_checkpoint_restore(bad), "is truncated or damaged: it ends inside entry");
    /* One flipped bit in the data. */
    unsigned char *copy = malloc((size_t)size);
    memcpy(copy, good, (size_t)size);
    copy[size - 10] ^= 0x10;
    write_all(bad, copy, size);
    ck_assert_fails(em_checkpoint_restore(bad), "is damaged: checksum mismatch");
    assert_unchanged(before, n);
    /* Bytes appended. */
    unsigned char *longer = malloc((size_t)size + 3);
    memcpy(longer, good, (size_t)size);
    memcpy(longer + size, "xyz", 3);
    write_all(bad, longer, size + 3);
    ck_assert_fails(em_checkpoint_restore(bad), "damaged");
    /* Not a checkpoint; another format version. */
    memcpy(copy, good, (size_t)size);
    copy[0] = 'X';
    write_all(bad, copy, size);
    ck_assert_fails(em_checkpoint_restore(bad), "is not an Ember checkpoint (bad magic number)");
    memcpy(copy, good, (size_t)size);
    copy[8] = 9;
    write_all(bad, copy, size);
    ck_assert_fails(em_checkpoint_restore(bad), "has format version 9; this Ember reads versions 1 to 2");
    ck_assert_fails(em_checkpoint_restore("/nonexistent/x.ckpt"), "cannot open /nonexistent/x.ckpt");
    assert_unchanged(before, n);
    /* The good file still restores. */
    ck_assert_int_eq(em_checkpoint_restore(path), 0);
    ck_assert_int_eq(em_optimizer_step(m.opt), 2);
    free(good);
    free(copy);
    free(longer);
    em_optimizer_release(m.opt);
}
END_TEST

START_TEST(test_missing_and_mismatched) {
    model m = make_model();
    train_step(&m, 0);
    ck_assert_int_eq(em_checkpoint_save(path), 0);
    train_step(&m, 1);
    em_tensor *extra = em_get_variable("extra", EM_F32, EM_SHAPE(2), EM_INIT_CONST(3));
    unsigned char before[4096];
    size_t n = snapshot(before, sizeof before);
    char msg[256];
    snprintf(msg, sizeof msg, "checkpoint_restore: variable extra is not in %s (it holds 9 variables)", path);
    ck_assert_fails(em_checkpoint_restore(path), msg);
    assert_unchanged(before, n);
    em_optimizer_release(m.opt);

    /* Same names, other shapes and dtypes: the error names the variable and both shapes. */
    em_variables_release();
    ck_assert_int_eq(em_variable_scope_begin("dense", EM_REUSE_FALSE), 0);
    em_get_variable("w", EM_F32, EM_SHAPE(3, 2), EM_INIT_CONST(1));
    ck_assert_int_eq(em_variable_scope_end(), 0);
    n = snapshot(before, sizeof before);
    snprintf(msg, sizeof msg, "checkpoint_restore: variable dense/w is float32 [3,2] here but float32 [2,3] in %s",
             path);
    ck_assert_fails(em_checkpoint_restore(path), msg);
    assert_unchanged(before, n);
    em_variables_release();
    em_get_variable("count", EM_I32, EM_SHAPE0, EM_INIT_CONST(1));
    ck_assert_fails(em_checkpoint_restore(path), "variable count is int32 [] here but int64 [] in");
    (void)extra;
}
END_TEST

START_TEST(test_failed_save_keeps_previous) {
    em_tensor *w = em_get_variable("w", EM_F32, EM_SHAPE(100000), EM_INIT_CONST(1));
    ck_assert_int_eq(em_checkpoint_save(path), 0);
    long size;
    unsigned char *first = read_all(path, &size);
    ck_assert_int_eq(em_assign(w, em_scalar(EM_F32, 2)), 0);

    /* The temporary file cannot be made (a directory holds its name). */
    char tmp[200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    ck_assert_int_eq(mkdir(tmp, 0700), 0);
    ck_assert_fails(em_checkpoint_save(path), "checkpoint_save: cannot create");
    rmdir(tmp);

    /* The disk fills up half way (the file size limit stands in for a full disk). */
    struct rlimit old, small;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    small = old;
    small.rlim_cur = 64 * 1024;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
    int rc = em_checkpoint_save(path);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);
    ck_assert_fails(rc, "is unchanged");
    ck_assert_int_eq(access(tmp, F_OK), -1); /* the partial temporary was removed */

    /* A directory that does not exist. */
    ck_assert_fails(em_checkpoint_save("/nonexistent/dir/x.ckpt"), "cannot create /nonexistent/dir/x.ckpt.tmp.");

    long size2;
    unsigned char *after = read_all(path, &size2);
    ck_assert_int_eq(size2, size);
    ck_assert_mem_eq(after, first, (size_t)size);
    ck_assert_int_eq(em_checkpoint_restore(path), 0);
    ck_assert_double_eq(em_get(w, (int64_t[]){99999}), 1);
    free(first);
    free(after);
}
END_TEST

START_TEST(test_every_dtype_and_empty) {
    em_tensor *v[6] = {
        em_get_variable("f32", EM_F32, EM_SHAPE(2), EM_INIT_CONST(1.5)),
        em_get_variable("f64", EM_F64, EM_SHAPE0, EM_INIT_CONST(-2.25)),
        em_get_variable("i32", EM_I32, EM_SHAPE(1, 2), EM_INIT_CONST(-3)),
        em_get_variable("i64", EM_I64, EM_SHAPE(0, 5), EM_INIT_CONST(4)),
        em_get_variable("u8", EM_U8, EM_SHAPE(3), EM_INIT_CONST(200)),
        em_get_variable("flag", EM_BOOL, EM_SHAPE(2, 1, 1), EM_INIT_CONST(1)),
    };
    ck_assert_int_eq(em_checkpoint_save(path), 0);
    for (int i = 0; i < 6; i++) ck_assert_int_eq(em_assign(v[i], em_zeros(em_tensor_dtype(v[i]), EM_SHAPE0)), 0);
    ck_assert_int_eq(em_checkpoint_restore(path), 0);
    ck_assert_tensor(v[0], EM_F32, EM_SHAPE(2), ((double[]){1.5, 1.5}), 0);
    ck_assert_tensor(v[1], EM_F64, EM_SHAPE0, ((double[]){-2.25}), 0);
    ck_assert_tensor(v[2], EM_I32, EM_SHAPE(1, 2), ((double[]){-3, -3}), 0);
    ck_assert_int_eq(em_numel(v[3]), 0);
    ck_assert_tensor(v[4], EM_U8, EM_SHAPE(3), ((double[]){200, 200, 200}), 0);
    ck_assert_tensor(v[5], EM_BOOL, EM_SHAPE(2, 1, 1), ((double[]){1, 1}), 0);
    /* No variables: an empty checkpoint, which restores into nothing. */
    em_variables_release();
    ck_assert_int_eq(em_checkpoint_save(path), 0);
    ck_assert_int_eq(em_checkpoint_restore(path), 0);
    ck_assert_fails(em_checkpoint_save(""), "checkpoint_save: the path is empty");
}
END_TEST

int main(void) {
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("checkpoint");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_roundtrip_with_slots);
    tcase_add_test(tc, test_resume_deferred_slots);
    tcase_add_test(tc, test_damaged_files);
    tcase_add_test(tc, test_missing_and_mismatched);
    tcase_add_test(tc, test_failed_save_keeps_previous);
    tcase_add_test(tc, test_every_dtype_and_empty);
    suite_add_tcase(s, tc);
    return em_test_run(s);
}
