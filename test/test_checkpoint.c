/* Checkpoints: roundtrip with optimizer slots, deferred restore of slots made
 * later, damaged files (truncated, flipped byte, bad magic or version),
 * missing variables and wrong shapes (each changing no variable), and a
 * failed save leaving the previous checkpoint whole. Temporary files of
 * killed saves removed by the next save, those of live writers (another
 * process, or this one) never touched. The checkpoint manager: keeping the
 * newest N, the index, orphans, the step, the random stream and named
 * values, fallbacks past missing or damaged files and indexes; and a
 * training run killed with SIGKILL inside a step and inside a save, resumed
 * each time, ending with the variables of a run never stopped, bit for bit
 * (this program re-runs itself as the training process). bfloat16 and
 * float16 variables bit for bit; files of an Ember from before those dtypes
 * (test/data/checkpoint_v1.ckpt, test/data/checkpoint_v2/) still load. */
#include "common.h"
#include "data/checkpoint_fixture.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zlib.h>

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
    /* A version-2 file whose values section is cut (its checksum fixed). */
    memcpy(copy, good, (size_t)size);
    copy[8] = 2;
    uint32_t crc = (uint32_t)crc32(crc32(0, NULL, 0), copy, (uInt)(size - 4));
    memcpy(copy + size - 4, &crc, 4);
    write_all(bad, copy, size);
    ck_assert_fails(em_checkpoint_restore(bad), "ends before its values");
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
    em_tensor *v[9] = {
        em_get_variable("f32", EM_F32, EM_SHAPE(2), EM_INIT_CONST(1.5)),
        em_get_variable("f64", EM_F64, EM_SHAPE0, EM_INIT_CONST(-2.25)),
        em_get_variable("i32", EM_I32, EM_SHAPE(1, 2), EM_INIT_CONST(-3)),
        em_get_variable("i64", EM_I64, EM_SHAPE(0, 5), EM_INIT_CONST(4)),
        em_get_variable("u8", EM_U8, EM_SHAPE(3), EM_INIT_CONST(200)),
        em_get_variable("flag", EM_BOOL, EM_SHAPE(2, 1, 1), EM_INIT_CONST(1)),
        em_get_variable("i8", EM_I8, EM_SHAPE(2), EM_INIT_FROM(em_tensor_from(EM_I8, EM_SHAPE(2), (int8_t[]){-128, 127}))),
        em_get_variable("i16", EM_I16, EM_SHAPE(1, 3),
                        EM_INIT_FROM(em_tensor_from(EM_I16, EM_SHAPE(1, 3), (int16_t[]){-32768, -1, 32767}))),
        em_get_variable("u16", EM_U16, EM_SHAPE(2),
                        EM_INIT_FROM(em_tensor_from(EM_U16, EM_SHAPE(2), (uint16_t[]){50256, 65535}))),
    };
    ck_assert_int_eq(em_checkpoint_save(path), 0);
    for (int i = 0; i < 9; i++) ck_assert_int_eq(em_assign(v[i], em_zeros(em_tensor_dtype(v[i]), EM_SHAPE0)), 0);
    ck_assert_int_eq(em_checkpoint_restore(path), 0);
    ck_assert_tensor(v[0], EM_F32, EM_SHAPE(2), ((double[]){1.5, 1.5}), 0);
    ck_assert_tensor(v[1], EM_F64, EM_SHAPE0, ((double[]){-2.25}), 0);
    ck_assert_tensor(v[2], EM_I32, EM_SHAPE(1, 2), ((double[]){-3, -3}), 0);
    ck_assert_int_eq(em_numel(v[3]), 0);
    ck_assert_tensor(v[4], EM_U8, EM_SHAPE(3), ((double[]){200, 200, 200}), 0);
    ck_assert_tensor(v[5], EM_BOOL, EM_SHAPE(2, 1, 1), ((double[]){1, 1}), 0);
    ck_assert_tensor(v[6], EM_I8, EM_SHAPE(2), ((double[]){-128, 127}), 0);
    ck_assert_tensor(v[7], EM_I16, EM_SHAPE(1, 3), ((double[]){-32768, -1, 32767}), 0);
    ck_assert_tensor(v[8], EM_U16, EM_SHAPE(2), ((double[]){50256, 65535}), 0);
    /* through the manager too; assign_add wraps at the variable's width */
    char ck[128];
    snprintf(ck, sizeof ck, "%s/dtypes", dir);
    em_checkpoint_manager *mgr = em_checkpoint_manager_open(ck, "model", 2);
    ck_assert_ptr_nonnull(mgr);
    ck_assert_int_eq(em_checkpoint_manager_save(mgr, 1), 0);
    ck_assert_int_eq(em_assign_add(v[8], em_tensor_from(EM_U16, EM_SHAPE(2), (uint16_t[]){1, 1})), 0);
    ck_assert_int_eq(em_assign_add(v[6], em_scalar(EM_I8, 1)), 0);
    ck_assert_tensor(v[8], EM_U16, EM_SHAPE(2), ((double[]){50257, 0}), 0);
    ck_assert_tensor(v[6], EM_I8, EM_SHAPE(2), ((double[]){-127, -128}), 0);
    ck_assert_int_eq(em_checkpoint_manager_restore_latest(mgr), 1);
    ck_assert_tensor(v[8], EM_U16, EM_SHAPE(2), ((double[]){50256, 65535}), 0);
    ck_assert_tensor(v[6], EM_I8, EM_SHAPE(2), ((double[]){-128, 127}), 0);
    em_checkpoint_manager_close(mgr);
    /* No variables: an empty checkpoint, which restores into nothing. */
    em_variables_release();
    ck_assert_int_eq(em_checkpoint_save(path), 0);
    ck_assert_int_eq(em_checkpoint_restore(path), 0);
    ck_assert_fails(em_checkpoint_save(""), "checkpoint_save: the path is empty");
}
END_TEST

/* bfloat16 and float16 variables come back bit for bit: NaN, Inf, -0, subnormals, the largest finite. A
 * narrow checkpoint does not restore into a float32 variable of the same name, nor the other way: a dtype
 * mismatch is an error for every dtype, with nothing converted. */
START_TEST(test_narrow_dtypes_bit_exact) {
    static const uint16_t bf[] = {0x3F80, 0x8000, 0x7F80, 0xFF80, 0x7FC1, 0x0001, 0x807F, 0x7F7F};
    static const uint16_t hf[] = {0x3C00, 0x8000, 0x7C00, 0xFC00, 0x7E01, 0x0001, 0x83FF, 0x7BFF};
    em_tensor *b = em_get_variable("b", EM_BF16, EM_SHAPE(2, 4), EM_INIT_FROM(em_tensor_from(EM_BF16, EM_SHAPE(2, 4), bf)));
    em_tensor *h = em_get_variable("h", EM_F16, EM_SHAPE(8), EM_INIT_FROM(em_tensor_from(EM_F16, EM_SHAPE(8), hf)));
    ck_assert_mem_eq(em_data(b), bf, sizeof bf);
    ck_assert_int_eq(em_checkpoint_save(path), 0);
    ck_assert_int_eq(em_assign(b, em_zeros(EM_BF16, EM_SHAPE0)), 0);
    ck_assert_int_eq(em_assign(h, em_zeros(EM_F16, EM_SHAPE0)), 0);
    ck_assert_int_eq(em_checkpoint_restore(path), 0);
    ck_assert_mem_eq(em_data(b), bf, sizeof bf);
    ck_assert_mem_eq(em_data(h), hf, sizeof hf);

    em_variables_release();
    em_get_variable("b", EM_F32, EM_SHAPE(2, 4), EM_INIT_CONST(1));
    em_get_variable("h", EM_F16, EM_SHAPE(8), EM_INIT_CONST(1));
    ck_assert_fails(em_checkpoint_restore(path), "variable b is float32 [2,4] here but bfloat16 [2,4] in");
    em_variables_release();
    em_get_variable("b", EM_BF16, EM_SHAPE(2, 4), EM_INIT_CONST(1));
    em_get_variable("h", EM_BF16, EM_SHAPE(8), EM_INIT_CONST(1));
    ck_assert_fails(em_checkpoint_restore(path), "variable h is bfloat16 [8] here but float16 [8] in");
    em_variables_release();
    em_get_variable("b", EM_BF16, EM_SHAPE(2, 4), EM_INIT_CONST(1));
    em_get_variable("h", EM_F32, EM_SHAPE(8), EM_INIT_CONST(1));
    ck_assert_int_eq(em_checkpoint_save(path), 0);
    em_variables_release();
    em_get_variable("b", EM_BF16, EM_SHAPE(2, 4), EM_INIT_CONST(1));
    em_get_variable("h", EM_F16, EM_SHAPE(8), EM_INIT_CONST(1));
    ck_assert_fails(em_checkpoint_restore(path), "variable h is float16 [8] here but float32 [8] in");
}
END_TEST

/* ---- files of an older Ember (test/data/checkpoint_fixture.h says what they hold) ---- */

#define NELEMS(a) (int64_t)(sizeof(a) / sizeof((a)[0]))

/* The fixture's variables, zero; in another order than the file's. */
static em_tensor **fixture_variables(em_tensor **v) {
    v[0] = em_get_variable("scalar", EM_F64, EM_SHAPE0, EM_INIT_CONST(0));
    v[1] = em_get_variable("flag", EM_BOOL, EM_SHAPE(2, 1, 2), EM_INIT_CONST(0));
    v[2] = em_get_variable("u8", EM_U8, EM_SHAPE(NELEMS(FIXTURE_U8)), EM_INIT_CONST(0));
    v[3] = em_get_variable("i64", EM_I64, EM_SHAPE(NELEMS(FIXTURE_I64)), EM_INIT_CONST(0));
    v[4] = em_get_variable("i32", EM_I32, EM_SHAPE(2, 2), EM_INIT_CONST(0));
    v[5] = em_get_variable("f64", EM_F64, EM_SHAPE(NELEMS(FIXTURE_F64)), EM_INIT_CONST(0));
    v[6] = em_get_variable("net/f32", EM_F32, EM_SHAPE(2, 3), EM_INIT_CONST(0));
    v[7] = em_get_variable("empty", EM_F32, EM_SHAPE(0, 5), EM_INIT_CONST(0));
    for (int i = 0; i < 8; i++) ck_assert_ptr_nonnull(v[i]);
    return v;
}

static void assert_fixture_values(em_tensor **v) {
    ck_assert_double_eq(em_item(v[0]), -7.5);
    ck_assert_mem_eq(em_data(v[1]), FIXTURE_BOOL, sizeof FIXTURE_BOOL);
    ck_assert_mem_eq(em_data(v[2]), FIXTURE_U8, sizeof FIXTURE_U8);
    ck_assert_mem_eq(em_data(v[3]), FIXTURE_I64, sizeof FIXTURE_I64);
    ck_assert_mem_eq(em_data(v[4]), FIXTURE_I32, sizeof FIXTURE_I32);
    ck_assert_mem_eq(em_data(v[5]), FIXTURE_F64, sizeof FIXTURE_F64);
    ck_assert_mem_eq(em_data(v[6]), FIXTURE_F32, sizeof FIXTURE_F32);
    ck_assert_int_eq(em_numel(v[7]), 0);
}

static void copy_file(const char *from, const char *to) {
    long n;
    unsigned char *b = read_all(from, &n);
    write_all(to, b, n);
    free(b);
}

START_TEST(test_checkpoints_of_older_ember_load) {
    em_tensor *v[8];
    fixture_variables(v);
    ck_assert_int_eq(em_checkpoint_restore("test/data/checkpoint_v1.ckpt"), 0);
    assert_fixture_values(v);
    em_variables_release();

    /* The manager's: the variables, the step, the values and the random stream. */
    char from[128], to[256];
    for (int i = 0; i < 2; i++) {
        const char *name = i ? FIXTURE_PREFIX ".index" : FIXTURE_PREFIX "-7";
        snprintf(from, sizeof from, "test/data/checkpoint_v2/%s", name);
        snprintf(to, sizeof to, "%s/%s", dir, name);
        copy_file(from, to);
    }
    float expect[4];
    em_set_seed(FIXTURE_SEED);
    em_scope_begin();
    em_random_uniform(EM_F32, EM_SHAPE(FIXTURE_DRAWN), 0, 1);
    memcpy(expect, em_data(em_random_uniform(EM_F32, EM_SHAPE(4), 0, 1)), sizeof expect);
    em_scope_end();
    em_set_seed(999);
    fixture_variables(v);
    em_checkpoint_manager *mgr = em_checkpoint_manager_open(dir, FIXTURE_PREFIX, 0);
    ck_assert_ptr_nonnull(mgr);
    ck_assert_int_eq(em_checkpoint_manager_restore_latest(mgr), 1);
    assert_fixture_values(v);
    ck_assert_int_eq(em_checkpoint_manager_step(mgr), FIXTURE_STEP);
    double epoch;
    const char *data;
    ck_assert_int_eq(em_checkpoint_manager_get_value(mgr, "epoch", &epoch), 1);
    ck_assert_double_eq(epoch, FIXTURE_EPOCH);
    ck_assert_int_eq(em_checkpoint_manager_get_string(mgr, "data", &data), 1);
    ck_assert_str_eq(data, FIXTURE_DATA);
    em_scope_begin();
    ck_assert_mem_eq(em_data(em_random_uniform(EM_F32, EM_SHAPE(4), 0, 1)), expect, sizeof expect);
    em_scope_end();
    em_checkpoint_manager_close(mgr);
}
END_TEST

/* ---- temporary files of killed saves ---- */

static bool exists(const char *p) { return access(p, F_OK) == 0; }

/* A process that makes `file` and holds a lock on it, as a live writer
 * does, until killed. Returns its pid once the lock is held. */
static pid_t hold_lock_in_child(const char *file) {
    int ready[2];
    ck_assert_int_eq(pipe(ready), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fd = open(file, O_WRONLY | O_CREAT | O_EXCL, 0644);
        char c = fd >= 0 && flock(fd, LOCK_EX) == 0 ? 'y' : 'n';
        if (write(ready[1], &c, 1) != 1) _exit(1);
        for (;;) pause();
    }
    char c = 0;
    ck_assert_int_eq(read(ready[0], &c, 1), 1);
    ck_assert_int_eq(c, 'y');
    close(ready[0]);
    close(ready[1]);
    return pid;
}

static void touch(const char *p) {
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    fputs("partial", f);
    fclose(f);
}

START_TEST(test_stale_temporaries) {
    em_get_variable("w", EM_F32, EM_SHAPE(3), EM_INIT_CONST(1));
    char stale[200], other_pid[200], live[200], mine[200], not_digits[200], other_file[200], a_dir[200];
    snprintf(stale, sizeof stale, "%s.tmp.123456789", path); /* its writer was killed: no lock */
    snprintf(other_pid, sizeof other_pid, "%s.tmp.%ld", path, (long)getpid()); /* a dead writer with our pid */
    snprintf(live, sizeof live, "%s.tmp.987654321", path);
    snprintf(mine, sizeof mine, "%s.tmp.555", path);
    snprintf(not_digits, sizeof not_digits, "%s.tmp.x1", path);
    snprintf(other_file, sizeof other_file, "%s/other.ckpt.tmp.1", dir);
    snprintf(a_dir, sizeof a_dir, "%s.tmp.777", path);
    touch(stale);
    touch(other_pid);
    touch(not_digits);
    touch(other_file);
    ck_assert_int_eq(mkdir(a_dir, 0700), 0);
    /* A live writer in another process, and one in this process (another
     * open file of the same process: flock() locks still conflict). */
    pid_t writer = hold_lock_in_child(live);
    int fd = open(mine, O_WRONLY | O_CREAT, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(flock(fd, LOCK_EX), 0);

    ck_assert_int_eq(em_checkpoint_save(path), 0);
    ck_assert(!exists(stale) && !exists(other_pid));
    ck_assert(exists(live) && exists(mine));                               /* live writers: untouched */
    ck_assert(exists(not_digits) && exists(other_file) && exists(a_dir)); /* not temporaries of path */
    ck_assert_int_eq(em_checkpoint_restore(path), 0);

    /* The writers die (the other process by SIGKILL): the next save tidies up. */
    ck_assert_int_eq(kill(writer, SIGKILL), 0);
    ck_assert_int_eq(waitpid(writer, NULL, 0), writer);
    close(fd);
    ck_assert_int_eq(em_checkpoint_save(path), 0);
    ck_assert(!exists(live) && !exists(mine));
    ck_assert(exists(not_digits) && exists(other_file) && exists(a_dir));
    rmdir(a_dir);
}
END_TEST

/* ---- the checkpoint manager ---- */

static char *read_text(const char *p) {
    long n = file_size(p);
    ck_assert_int_ge(n, 0);
    char *b = calloc(1, (size_t)n + 1);
    FILE *f = fopen(p, "rb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fread(b, 1, (size_t)n, f), n);
    fclose(f);
    return b;
}

static int files_in(const char *d) {
    DIR *dd = opendir(d);
    int files = 0;
    for (struct dirent *e; dd && (e = readdir(dd));) files += e->d_name[0] != '.';
    if (dd) closedir(dd);
    return files;
}

START_TEST(test_manager_keeps_newest) {
    model m = make_model();
    char ck[128], p[256];
    snprintf(ck, sizeof ck, "%s/runs/ck", dir); /* made by open, parents too */
    em_checkpoint_manager *mgr = em_checkpoint_manager_open(ck, "model", 3);
    ck_assert_ptr_nonnull(mgr);
    ck_assert_int_eq(em_checkpoint_manager_step(mgr), -1);
    ck_assert_ptr_null(em_checkpoint_manager_latest(mgr)); /* nothing yet: no error */
    ck_assert_ptr_null(em_last_error());
    ck_assert_int_eq(em_checkpoint_manager_restore_latest(mgr), 0);
    for (int s = 1; s <= 5; s++) {
        train_step(&m, s);
        ck_assert_int_eq(em_checkpoint_manager_save(mgr, 10 * s), 0);
    }
    snprintf(p, sizeof p, "%s/model.index", ck);
    char *index = read_text(p);
    ck_assert_str_eq(index, "ember checkpoint index 1\nmodel-30\nmodel-40\nmodel-50\n");
    free(index);
    ck_assert_int_eq(files_in(ck), 4);
    snprintf(p, sizeof p, "%s/model-50", ck);
    ck_assert_str_eq(em_checkpoint_manager_latest(mgr), p);
    ck_assert_int_eq(em_checkpoint_manager_step(mgr), 50);
    ck_assert_ptr_null(em_checkpoint_manager_last_fallback(mgr));

    /* Saving a kept step again makes it the newest; a file named like the
     * manager's that the index does not list (a save killed before its
     * index) goes at the next save; files of other names stay. */
    snprintf(p, sizeof p, "%s/model-999", ck);
    touch(p);
    snprintf(p, sizeof p, "%s/model-007", ck);
    touch(p);
    ck_assert_int_eq(em_checkpoint_manager_save(mgr, 30), 0);
    snprintf(p, sizeof p, "%s/model.index", ck);
    index = read_text(p);
    ck_assert_str_eq(index, "ember checkpoint index 1\nmodel-40\nmodel-50\nmodel-30\n");
    free(index);
    snprintf(p, sizeof p, "%s/model-999", ck);
    ck_assert(!exists(p));
    ck_assert_int_eq(files_in(ck), 5); /* 3 checkpoints, the index, model-007 */

    /* max_to_keep <= 0 keeps all; another prefix in the same directory is
     * another manager's business. */
    em_checkpoint_manager *all = em_checkpoint_manager_open(ck, "all", 0);
    for (int s = 1; s <= 4; s++) ck_assert_int_eq(em_checkpoint_manager_save(all, s), 0);
    ck_assert_int_eq(files_in(ck), 10);
    snprintf(p, sizeof p, "%s/all.index", ck);
    index = read_text(p);
    ck_assert_str_eq(index, "ember checkpoint index 1\nall-1\nall-2\nall-3\nall-4\n");
    free(index);
    em_checkpoint_manager_close(all);
    em_checkpoint_manager_close(mgr);
    em_optimizer_release(m.opt);
}
END_TEST

/* A resumed program: a fresh state, restore, and training goes on exactly
 * as it did; the values, the step and the random stream come back. */
START_TEST(test_manager_restores_state) {
    em_set_seed(5);
    model m = make_model();
    em_checkpoint_manager *mgr = em_checkpoint_manager_open(dir, "ck", 2);
    ck_assert_ptr_nonnull(mgr);
    double d = -1;
    const char *str = NULL;
    ck_assert_int_eq(em_checkpoint_manager_get_value(mgr, "epoch", &d), 0); /* not set: untouched */
    ck_assert_double_eq(d, -1);
    ck_assert_int_eq(em_checkpoint_manager_set_value(mgr, "epoch", 2.5), 0);
    ck_assert_int_eq(em_checkpoint_manager_set_value(mgr, "epoch", 3), 0); /* replaces */
    ck_assert_int_eq(em_checkpoint_manager_set_string(mgr, "data", "shard-7"), 0);
    ck_assert_int_eq(em_checkpoint_manager_set_string(mgr, "empty", ""), 0);
    ck_assert_int_eq(em_checkpoint_manager_get_value(mgr, "epoch", &d), 1);
    ck_assert_double_eq(d, 3);
    ck_assert_int_eq(em_checkpoint_manager_get_string(mgr, "data", &str), 1);
    ck_assert_str_eq(str, "shard-7");
    for (int s = 0; s < 3; s++) train_step(&m, s);
    em_scope_begin();
    em_random_uniform(EM_F32, EM_SHAPE(5), 0, 1); /* the stream moves on */
    em_scope_end();
    ck_assert_int_eq(em_checkpoint_manager_save(mgr, 3), 0);
    float after_save[6];
    em_scope_begin();
    memcpy(after_save, em_data(em_random_uniform(EM_F32, EM_SHAPE(6), 0, 1)), sizeof after_save);
    em_scope_end();
    for (int s = 3; s < 6; s++) train_step(&m, s);
    unsigned char expect[4096], got[4096];
    size_t n = snapshot(expect, sizeof expect);
    em_checkpoint_manager_close(mgr);
    em_optimizer_release(m.opt);
    em_variables_release();

    em_set_seed(999); /* a resumed program seeds as it likes: the checkpoint's stream wins */
    model r = make_model();
    mgr = em_checkpoint_manager_open(dir, "ck", 2);
    ck_assert_int_eq(em_checkpoint_manager_set_value(mgr, "stale", 1), 0); /* replaced by the file's values */
    ck_assert_int_eq(em_checkpoint_manager_restore_latest(mgr), 1);
    ck_assert_int_eq(em_checkpoint_manager_step(mgr), 3);
    ck_assert_int_eq(em_optimizer_step(r.opt), 3);
    ck_assert_int_eq(em_checkpoint_manager_get_value(mgr, "stale", &d), 0);
    ck_assert_int_eq(em_checkpoint_manager_get_value(mgr, "epoch", &d), 1);
    ck_assert_double_eq(d, 3);
    ck_assert_int_eq(em_checkpoint_manager_get_string(mgr, "data", &str), 1);
    ck_assert_str_eq(str, "shard-7");
    ck_assert_int_eq(em_checkpoint_manager_get_string(mgr, "empty", &str), 1);
    ck_assert_str_eq(str, "");
    em_scope_begin();
    ck_assert_mem_eq(em_data(em_random_uniform(EM_F32, EM_SHAPE(6), 0, 1)), after_save, sizeof after_save);
    em_scope_end();
    for (int s = 3; s < 6; s++) train_step(&r, s);
    ck_assert_int_eq(snapshot(got, sizeof got), n);
    ck_assert_mem_eq(got, expect, n);

    /* A key holds one kind at a time. */
    ck_assert_fails(em_checkpoint_manager_get_string(mgr, "epoch", &str),
                    "em_checkpoint_manager_get_string: key 'epoch' holds a number, not a string");
    ck_assert_fails(em_checkpoint_manager_get_value(mgr, "data", &d),
                    "em_checkpoint_manager_get_value: key 'data' holds a string, not a number");
    ck_assert_int_eq(em_checkpoint_manager_set_value(mgr, "data", 1), 0);
    ck_assert_int_eq(em_checkpoint_manager_get_value(mgr, "data", &d), 1);

    /* A checkpoint that does not fit the variables is an error, not a fallback. */
    em_checkpoint_manager_close(mgr);
    em_optimizer_release(r.opt);
    em_variables_release();
    em_get_variable("unrelated", EM_F32, EM_SHAPE0, EM_INIT_CONST(0));
    mgr = em_checkpoint_manager_open(dir, "ck", 2);
    ck_assert_fails(em_checkpoint_manager_restore_latest(mgr), "variable unrelated is not in");
    ck_assert_ptr_null(em_checkpoint_manager_last_fallback(mgr));
    em_checkpoint_manager_close(mgr);
}
END_TEST

START_TEST(test_manager_falls_back) {
    model m = make_model();
    em_checkpoint_manager *mgr = em_checkpoint_manager_open(dir, "ck", 5);
    for (int s = 1; s <= 4; s++) {
        train_step(&m, s);
        ck_assert_int_eq(em_checkpoint_manager_save(mgr, s), 0);
    }
    char p[256], want[512];
    /* The newest is damaged (one flipped byte), the one before is gone. */
    snprintf(p, sizeof p, "%s/ck-4", dir);
    long size;
    unsigned char *b = read_all(p, &size);
    b[size / 2] ^= 1;
    write_all(p, b, size);
    free(b);
    snprintf(p, sizeof p, "%s/ck-3", dir);
    ck_assert_int_eq(unlink(p), 0);
    train_step(&m, 9);
    ck_assert_int_eq(em_checkpoint_restore("/nonexistent/x"), -1); /* an earlier error, kept: a fallback is none */
    char earlier[256];
    snprintf(earlier, sizeof earlier, "%s", em_last_error());
    ck_assert_int_eq(em_checkpoint_manager_restore_latest(mgr), 1);
    ck_assert_str_eq(em_last_error(), earlier);
    em_clear_error();
    ck_assert_int_eq(em_checkpoint_manager_step(mgr), 2);
    ck_assert_int_eq(em_optimizer_step(m.opt), 2);
    const char *why = em_checkpoint_manager_last_fallback(mgr);
    ck_assert_ptr_nonnull(why);
    snprintf(want, sizeof want, "%s/ck-4 is damaged: checksum mismatch", dir);
    ck_assert_msg(strstr(why, want), "%s", why);
    snprintf(want, sizeof want, "cannot open %s/ck-3: No such file or directory", dir);
    ck_assert_msg(strstr(why, want), "%s", why);
    snprintf(want, sizeof want, "; using %s/ck-2", dir);
    ck_assert_msg(strstr(why, want), "%s", why);
    snprintf(p, sizeof p, "%s/ck-2", dir);
    ck_assert_str_eq(em_checkpoint_manager_latest(mgr), p);

    /* A damaged index: the checkpoints found in the directory, by step. */
    snprintf(p, sizeof p, "%s/ck.index", dir);
    write_all(p, (const unsigned char *)"ember checkpoint index 1\nck-2\nck-", 33);
    ck_assert_int_eq(em_checkpoint_manager_restore_latest(mgr), 1);
    ck_assert_int_eq(em_checkpoint_manager_step(mgr), 2);
    why = em_checkpoint_manager_last_fallback(mgr);
    ck_assert_msg(strstr(why, "is damaged (its last line is cut short): using the 3 checkpoints found in"), "%s", why);
    write_all(p, (const unsigned char *)"ember checkpoint index 1\nother-5\n", 33);
    ck_assert_int_eq(em_checkpoint_manager_restore_latest(mgr), 1);
    ck_assert_msg(strstr(em_checkpoint_manager_last_fallback(mgr), "line 2 does not name a checkpoint ck-<step>"),
                  "%s", em_checkpoint_manager_last_fallback(mgr));
    /* A missing index: likewise, and the next save writes it anew. */
    ck_assert_int_eq(unlink(p), 0);
    ck_assert_int_eq(em_checkpoint_manager_restore_latest(mgr), 1);
    ck_assert_msg(strstr(em_checkpoint_manager_last_fallback(mgr), "ck.index is missing: using the 3 checkpoints"),
                  "%s", em_checkpoint_manager_last_fallback(mgr));
    ck_assert_int_eq(em_checkpoint_manager_save(mgr, 5), 0);
    char *index = read_text(p);
    ck_assert_str_eq(index, "ember checkpoint index 1\nck-1\nck-2\nck-4\nck-5\n");
    free(index);
    ck_assert_int_eq(em_checkpoint_manager_restore_latest(mgr), 1);
    ck_assert_ptr_null(em_checkpoint_manager_last_fallback(mgr));
    ck_assert_int_eq(em_checkpoint_manager_step(mgr), 5);

    /* Nothing usable: an error for a restore; no answer (and no error) for latest. */
    for (int s = 1; s <= 5; s++) {
        snprintf(p, sizeof p, "%s/ck-%d", dir, s);
        unlink(p);
    }
    snprintf(p, sizeof p, "%s/ck-4", dir);
    write_all(p, (const unsigned char *)"EMBERCKP", 8);
    snprintf(want, sizeof want, "em_checkpoint_manager_restore_latest: no usable checkpoint in %s: ", dir);
    ck_assert_fails(em_checkpoint_manager_restore_latest(mgr), want);
    ck_assert_ptr_null(em_checkpoint_manager_latest(mgr));
    ck_assert_ptr_null(em_last_error());
    ck_assert_ptr_nonnull(em_checkpoint_manager_last_fallback(mgr));
    em_checkpoint_manager_close(mgr);
    em_optimizer_release(m.opt);
}
END_TEST

/* ---- killed and resumed: bit for bit ----
 *
 * The training process (this program, run as `test_checkpoint --train DIR
 * TOTAL MODE K`): an MLP 24-48-4 with dropout (keep 0.7) and Adam on 256
 * synthetic examples, batches of 32 in an order reshuffled every epoch, a
 * checkpoint every 5 steps (keep 3) with the data position as values. It
 * resumes from DIR's newest checkpoint, trains to step TOTAL and saves its
 * final variables to DIR/final.ckpt. MODE "step" kills itself (SIGKILL)
 * inside step K, between computing and applying the gradients; "save"
 * inside the save of step K, half way through writing the temporary file
 * (a file size limit whose signal handler sends SIGKILL). */

#define N_EXAMPLES 256
#define BATCH 32

static void kill_self(int sig) {
    (void)sig;
    raise(SIGKILL);
}

static uint64_t xorshift(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* The order of epoch e: the (e+1)-th shuffle from the seed's state. */
static void order_of_epoch(int64_t epoch, int64_t *order) {
    uint64_t state = 88172645463325252ULL;
    for (int64_t i = 0; i < N_EXAMPLES; i++) order[i] = i;
    for (int64_t e = 0; e <= epoch; e++)
        for (int64_t i = N_EXAMPLES - 1; i > 0; i--) {
            int64_t j = (int64_t)(xorshift(&state) % (uint64_t)(i + 1)), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
}

static int train_child(const char *d, int64_t total, const char *mode, int64_t kill_at) {
    em_set_num_threads(1); /* tiny ops: a second thread only waits for a core on a busy machine */
    em_set_seed(11);
    /* The data: a fixed seed of its own, so it takes nothing from the stream. */
    em_initializer data_init = EM_INIT_NORMAL(0, 1), label_init = EM_INIT_UNIFORM(0, 4);
    data_init.seed = 3;
    label_init.seed = 4;
    em_tensor *x = em_get_variable_untrainable("data/x", EM_F32, EM_SHAPE(N_EXAMPLES, 24), data_init);
    em_tensor *u = em_get_variable_untrainable("data/u", EM_F32, EM_SHAPE(N_EXAMPLES), label_init);
    em_tensor *y = em_keep(em_cast(u, EM_I64));
    em_tensor *vars[4] = {em_get_variable("w1", EM_F32, EM_SHAPE(24, 48), EM_INIT_GLOROT),
                          em_get_variable("b1", EM_F32, EM_SHAPE(48), EM_INIT_CONST(0.1)),
                          em_get_variable("w2", EM_F32, EM_SHAPE(48, 4), EM_INIT_GLOROT),
                          em_get_variable("b2", EM_F32, EM_SHAPE(4), EM_INIT_CONST(0))};
    em_optimizer *opt = em_adam(0.01, 0.9, 0.999, 1e-8);
    em_checkpoint_manager *mgr = em_checkpoint_manager_open(d, "m", 3);
    if (!vars[0] || !y || !opt || !mgr) return 2;
    int got = em_checkpoint_manager_restore_latest(mgr);
    if (got < 0) return 3;
    int64_t step0 = got ? em_checkpoint_manager_step(mgr) : 0;
    double epoch_saved = -1;
    if (got && (em_checkpoint_manager_get_value(mgr, "epoch", &epoch_saved) != 1 ||
                (int64_t)epoch_saved != step0 / (N_EXAMPLES / BATCH)))
        return 4; /* the data position saved is the one the step implies */
    int64_t order[N_EXAMPLES], epoch = -1;
    for (int64_t step = step0 + 1; step <= total; step++) {
        int64_t g = step - 1, per_epoch = N_EXAMPLES / BATCH;
        if (g / per_epoch != epoch) order_of_epoch(epoch = g / per_epoch, order);
        em_scope_begin();
        em_tensor *rows = em_tensor_from(EM_I64, EM_SHAPE(BATCH), order + (g % per_epoch) * BATCH);
        em_tape *tape = em_tape_begin(false);
        em_tensor *h = em_dropout(em_relu(em_add(em_matmul(em_gather(x, rows, 0), vars[0]), vars[1])), 0.7);
        em_tensor *logits = em_add(em_matmul(h, vars[2]), vars[3]);
        em_tensor *loss = em_mean(em_sparse_softmax_cross_entropy_with_logits(em_gather(y, rows, 0), logits),
                                  EM_ALL_AXES, false);
        em_tape_stop(tape);
        em_tensor *grads[4];
        if (em_compute_gradients(opt, tape, loss, 4, vars, grads)) return 5;
        if (!strcmp(mode, "step") && step == kill_at) raise(SIGKILL);
        if (em_apply_gradients(opt, 4, grads, vars)) return 6;
        em_tape_release(tape);
        em_scope_end();
        if (step % 5 == 0) {
            if (!strcmp(mode, "save") && step == kill_at) {
                signal(SIGXFSZ, kill_self);
                setrlimit(RLIMIT_FSIZE, &(struct rlimit){12000, 12000});
            }
            if (em_checkpoint_manager_set_value(mgr, "epoch", (double)(step / per_epoch)) ||
                em_checkpoint_manager_save(mgr, step))
                return 7;
        }
    }
    char final[512];
    snprintf(final, sizeof final, "%s/final.ckpt", d);
    int rc = em_checkpoint_save(final) ? 8 : 0;
    em_checkpoint_manager_close(mgr);
    em_optimizer_release(opt);
    em_release(y);
    em_shutdown();
    return rc;
}

static char self[4096];

/* Runs this program's training process; its wait status. */
static int run_training(const char *d, int total, const char *mode, int kill_at, pid_t *child) {
    char t[16], k[16];
    snprintf(t, sizeof t, "%d", total);
    snprintf(k, sizeof k, "%d", kill_at);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        execl(self, self, "--train", d, t, mode, k, (char *)NULL);
        _exit(127);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    if (child) *child = pid;
    return status;
}

START_TEST(test_killed_and_resumed_bit_identical) {
    /* Where the two kills fall: from a fixed seed, so the test is the same
     * every time. The first inside a step (no checkpoint at it), the second
     * inside the save of a later step. */
    uint64_t seed = 24;
    const int total = 60;
    int k1 = 6 + (int)(xorshift(&seed) % 20);
    if (k1 % 5 == 0) k1++;
    int k2 = 5 * ((k1 + 5) / 5 + 1 + (int)(xorshift(&seed) % 4));
    ck_assert(k2 > k1 + 5 && k2 < total);
    char ref[128], run[128], p[256];
    snprintf(ref, sizeof ref, "%s/uninterrupted", dir);
    snprintf(run, sizeof run, "%s/killed", dir);

    int st = run_training(ref, total, "none", 0, NULL);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the uninterrupted run: status %d", st);
    st = run_training(run, total, "step", k1, NULL);
    ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "killed inside step %d: status %d", k1, st);
    pid_t pid;
    st = run_training(run, total, "save", k2, &pid);
    ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "killed inside the save of step %d: status %d", k2, st);
    /* It died half way through its temporary file, which it still locked. */
    snprintf(p, sizeof p, "%s/m-%d.tmp.%ld", run, k2, (long)pid);
    ck_assert_msg(file_size(p) > 0 && file_size(p) <= 12000, "%s: %ld bytes", p, file_size(p));
    st = run_training(run, total, "none", 0, NULL);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the resumed run: status %d", st);
    ck_assert(!exists(p)); /* removed by the next save */
    ck_assert_int_eq(files_in(run), 5); /* m-50, m-55, m-60, m.index, final.ckpt */

    long n1, n2;
    char f1[256], f2[256];
    snprintf(f1, sizeof f1, "%s/final.ckpt", ref);
    snprintf(f2, sizeof f2, "%s/final.ckpt", run);
    unsigned char *a = read_all(f1, &n1), *b = read_all(f2, &n2);
    ck_assert_int_eq(n1, n2);
    ck_assert_msg(memcmp(a, b, (size_t)n1) == 0, "the final variables differ from the uninterrupted run's");
    /* And the last checkpoints, values and random stream included. */
    free(a);
    free(b);
    snprintf(f1, sizeof f1, "%s/m-%d", ref, total);
    snprintf(f2, sizeof f2, "%s/m-%d", run, total);
    a = read_all(f1, &n1);
    b = read_all(f2, &n2);
    ck_assert_int_eq(n1, n2);
    ck_assert(memcmp(a, b, (size_t)n1) == 0);
    free(a);
    free(b);
    em_test_tmpdir_remove(ref);
    em_test_tmpdir_remove(run);
}
END_TEST

int main(int argc, char **argv) {
    if (argc == 6 && !strcmp(argv[1], "--train")) return train_child(argv[2], atoll(argv[3]), argv[4], atoll(argv[5]));
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) {
        printf("test_checkpoint: cannot find this program's path\n");
        return 1;
    }
    self[len] = '\0';
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("checkpoint");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_roundtrip_with_slots);
    tcase_add_test(tc, test_resume_deferred_slots);
    tcase_add_test(tc, test_damaged_files);
    tcase_add_test(tc, test_missing_and_mismatched);
    tcase_add_test(tc, test_failed_save_keeps_previous);
    tcase_add_test(tc, test_every_dtype_and_empty);
    tcase_add_test(tc, test_narrow_dtypes_bit_exact);
    tcase_add_test(tc, test_checkpoints_of_older_ember_load);
    tcase_add_test(tc, test_stale_temporaries);
    tcase_add_test(tc, test_manager_keeps_newest);
    tcase_add_test(tc, test_manager_restores_state);
    tcase_add_test(tc, test_manager_falls_back);
    tcase_add_test(tc, test_killed_and_resumed_bit_identical);
    suite_add_tcase(s, tc);
    return em_test_run(s);
}
