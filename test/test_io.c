/* Data files: the real MNIST IDX files, hand-made IDX files of every type
 * (raw and gzip), broken files, .npy round trips cross-checked with NumPy
 * (float16 included), and a saved graph of bfloat16 and float16 tensors. */
#include "common.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

static char tmp[256];

static void setup(void) { em_test_tmpdir("io", tmp, sizeof tmp); }

static void teardown(void) {
    em_test_tmpdir_remove(tmp);
    em_shutdown();
}

/* Asserts the call failed with an error naming both the operation and the file. */
#define expect_error(failed, op, path) expect_error_at((failed), (op), (path), __FILE__, __LINE__)
static void expect_error_at(int failed, const char *op, const char *path, const char *file, int line) {
    const char *e = em_last_error();
    ck_assert_msg(failed, "%s:%d: call succeeded, expected an error", file, line);
    ck_assert_msg(e != NULL, "%s:%d: no error message", file, line);
    ck_assert_msg(strstr(e, op) && strstr(e, path), "%s:%d: error \"%s\" does not name \"%s\" and \"%s\"", file, line, e,
                  op, path);
    em_clear_error();
}

static const char *tpath(const char *name) { return em_test_path(tmp, name); }

static void spill(const char *path, const void *d, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fwrite(d, 1, n, f), n);
    fclose(f);
}

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *d = malloc((size_t)size + 1);
    ck_assert_int_eq(fread(d, 1, (size_t)size, f), size);
    fclose(f);
    *n = (size_t)size;
    return d;
}

/* ---- MNIST ---- */

static void check_labels(const char *path, int64_t n, const int *first, uint8_t last, const int *counts) {
    em_tensor *l = em_load_idx(path);
    ck_assert_msg(l != NULL, "%s", em_last_error());
    ck_assert_int_eq(em_tensor_dtype(l), EM_U8);
    ck_assert(em_shape_equal(em_tensor_shape(l), EM_SHAPE(n)));
    const uint8_t *d = em_data(l);
    for (int i = 0; i < 5; i++) ck_assert_int_eq(d[i], first[i]);
    ck_assert_int_eq(d[n - 1], last);
    int c[10] = {0};
    for (int64_t i = 0; i < n; i++) {
        ck_assert_int_lt(d[i], 10);
        c[d[i]]++;
    }
    for (int k = 0; k < 10; k++) ck_assert_int_eq(c[k], counts[k]);
}

static void check_images(const char *path, int64_t n, int64_t sum0, int64_t sum_last, int64_t total, const uint8_t *row) {
    em_tensor *im = em_load_idx(path);
    ck_assert_msg(im != NULL, "%s", em_last_error());
    ck_assert_int_eq(em_tensor_dtype(im), EM_U8);
    ck_assert(em_shape_equal(em_tensor_shape(im), EM_SHAPE(n, 28, 28)));
    const uint8_t *d = em_data(im);
    int64_t s0 = 0, sl = 0, all = 0;
    for (int i = 0; i < 784; i++) s0 += d[i], sl += d[(n - 1) * 784 + i];
    for (int64_t i = 0; i < n * 784; i++) all += d[i];
    ck_assert_int_eq(s0, sum0);
    ck_assert_int_eq(sl, sum_last);
    ck_assert_int_eq(all, total);
    ck_assert_int_eq(memcmp(d + 14 * 28 + 10, row, 8), 0); /* image 0, row 14, columns 10..17 */
}

/* Values from NumPy reading the same files; counts from data/mnist/README.md. */
START_TEST(test_mnist_train) {
    check_labels("data/mnist/train-labels-idx1-ubyte.gz", 60000, (const int[]){5, 0, 4, 1, 9}, 8,
                 (const int[]){5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949});
    check_images("data/mnist/train-images-idx3-ubyte.gz", 60000, 27525, 20920, 1567298545,
                 (const uint8_t[]){0, 0, 0, 81, 240, 253, 253, 119});
}
END_TEST

START_TEST(test_mnist_test) {
    check_labels("data/mnist/t10k-labels-idx1-ubyte.gz", 10000, (const int[]){7, 2, 1, 0, 4}, 6,
                 (const int[]){980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009});
    check_images("data/mnist/t10k-images-idx3-ubyte.gz", 10000, 18454, 41833, 264923200,
                 (const uint8_t[]){0, 0, 0, 0, 0, 0, 59, 249});
}
END_TEST

/* ---- hand-made IDX files ---- */

/* Writes an IDX file: header for `type` and dims, then `data` (already
 * big-endian) and `extra` more bytes of zeros; gzip-compressed if gz. */
static void write_idx(const char *path, uint8_t type, int ndim, const uint32_t *dims, const void *data, size_t n,
                      size_t extra, bool gz) {
    uint8_t buf[4096] = {0, 0, type, (uint8_t)ndim};
    size_t k = 4;
    for (int d = 0; d < ndim; d++) {
        for (int b = 3; b >= 0; b--) buf[k++] = (uint8_t)(dims[d] >> (8 * b));
    }
    if (n) memcpy(buf + k, data, n);
    k += n + extra;
    if (!gz) {
        spill(path, buf, k);
        return;
    }
    gzFile f = gzopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(gzwrite(f, buf, (unsigned)k), (int)k);
    ck_assert_int_eq(gzclose(f), Z_OK);
}

START_TEST(test_idx_every_type_raw_and_gzip) {
    for (int gz = 0; gz < 2; gz++) {
        const char *p = tpath(gz ? "t.idx.gz" : "t.idx");
        /* int: 1, -2, 300000, -70000, 0, INT32_MAX */
        const uint8_t i32[24] = {0, 0, 0, 1, 0xff, 0xff, 0xff, 0xfe, 0, 0x04, 0x93, 0xe0,
                                 0xff, 0xfe, 0xee, 0x90, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff};
        write_idx(p, 0x0C, 2, (const uint32_t[]){2, 3}, i32, 24, 0, gz);
        ck_assert_tensor(em_load_idx(p), EM_I32, EM_SHAPE(2, 3), ((double[]){1, -2, 300000, -70000, 0, 2147483647}), 0);
        const uint8_t i16[8] = {0, 1, 0xff, 0xff, 0x7f, 0xff, 0x80, 0};
        write_idx(p, 0x0B, 1, (const uint32_t[]){4}, i16, 8, 0, gz);
        ck_assert_tensor(em_load_idx(p), EM_I16, EM_SHAPE(4), ((double[]){1, -1, 32767, -32768}), 0);
        const uint8_t i8[3] = {0x80, 0, 0x7f};
        write_idx(p, 0x09, 1, (const uint32_t[]){3}, i8, 3, 0, gz);
        ck_assert_tensor(em_load_idx(p), EM_I8, EM_SHAPE(3), ((double[]){-128, 0, 127}), 0);
        const uint8_t f32[8] = {0x3f, 0xc0, 0, 0, 0xbe, 0x80, 0, 0}; /* 1.5, -0.25 */
        write_idx(p, 0x0D, 2, (const uint32_t[]){2, 1}, f32, 8, 0, gz);
        ck_assert_tensor(em_load_idx(p), EM_F32, EM_SHAPE(2, 1), ((double[]){1.5, -0.25}), 0);
        const uint8_t f64[16] = {0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18, 0xc0, 0x09, 0, 0, 0, 0, 0, 0};
        write_idx(p, 0x0E, 1, (const uint32_t[]){2}, f64, 16, 0, gz);
        ck_assert_tensor(em_load_idx(p), EM_F64, EM_SHAPE(2), ((double[]){3.141592653589793, -3.125}), 0);
        const uint8_t u8[8] = {0, 1, 2, 3, 250, 251, 252, 255};
        write_idx(p, 0x08, 3, (const uint32_t[]){2, 2, 2}, u8, 8, 0, gz);
        ck_assert_tensor(em_load_idx(p), EM_U8, EM_SHAPE(2, 2, 2), ((double[]){0, 1, 2, 3, 250, 251, 252, 255}), 0);
        write_idx(p, 0x08, 2, (const uint32_t[]){0, 5}, NULL, 0, 0, gz);
        ck_assert_tensor(em_load_idx(p), EM_U8, EM_SHAPE(0, 5), NULL, 0);
    }
}
END_TEST

START_TEST(test_idx_bad_files_name_the_file) {
    const char *p = tpath("bad.idx");
    ck_assert_error(em_load_idx(NULL), "load_idx");
    expect_error(em_load_idx(p) == NULL, "load_idx: cannot open", p); /* missing */
    expect_error(em_load_idx(tmp) == NULL, "load_idx: cannot open", tmp);
    spill(p, "", 0);
    expect_error(em_load_idx(p) == NULL, "truncated", p);
    spill(p, "hello world\n", 12);
    expect_error(em_load_idx(p) == NULL, "not an IDX file: magic 68 65 6c 6c", p);
    spill(p, "\0\0\x07\x01\0\0\0\1x", 9);
    expect_error(em_load_idx(p) == NULL, "not an IDX file", p);
    spill(p, "\0\0\x08\x00", 4);
    expect_error(em_load_idx(p) == NULL, "0 dimensions", p);
    spill(p, "\0\0\x08\x03\0\0\0\2\0\0", 10);
    expect_error(em_load_idx(p) == NULL, "truncated: the header needs 16 bytes", p);
    write_idx(p, 0x0C, 2, (const uint32_t[]){2, 3}, "\0\0\0\1\0\0\0\2", 8, 0, false);
    expect_error(em_load_idx(p) == NULL, "truncated: header declares [2,3] int elements (24 bytes of data)", p);
    write_idx(p, 0x08, 1, (const uint32_t[]){3}, "abc", 3, 2, false);
    expect_error(em_load_idx(p) == NULL, "2 bytes after the [3] ubyte data", p);
    write_idx(p, 0x08, 1, (const uint32_t[]){3}, "abc", 3, 2, true);
    expect_error(em_load_idx(p) == NULL, "more data than the header's [3] ubyte elements", p);
    write_idx(p, 0x08, 1, (const uint32_t[]){30}, "abc", 3, 0, true);
    expect_error(em_load_idx(p) == NULL, "truncated: the data needs 30 bytes, the file holds 3", p);
    /* oversized: sizes that overflow, or far more than the gzip could hold */
    write_idx(p, 0x0E, 4, (const uint32_t[]){0xffffffffu, 0xffffffffu, 0xffffffffu, 2}, "", 0, 0, false);
    expect_error(em_load_idx(p) == NULL, "too large", p);
    write_idx(p, 0x08, 3, (const uint32_t[]){60000, 60000, 60000}, "abc", 3, 0, true);
    expect_error(em_load_idx(p) == NULL, "header declares [60000,60000,60000] ubyte elements, too large", p);

    /* a real gzip file cut short, and one with damaged deflate data */
    size_t n;
    uint8_t *d = slurp("data/mnist/t10k-labels-idx1-ubyte.gz", &n);
    spill(p, d, n / 2);
    expect_error(em_load_idx(p) == NULL, "truncated", p);
    spill(p, d, n - 4); /* only the gzip trailer's size field is missing */
    expect_error(em_load_idx(p) == NULL, "truncated: the gzip trailer is missing", p);
    d[n - 6] ^= 1; /* a wrong CRC in the trailer */
    spill(p, d, n);
    expect_error(em_load_idx(p) == NULL, "corrupt gzip data: incorrect data check", p);
    d[n - 6] ^= 1;
    for (size_t i = n / 3; i < n / 3 + 64; i++) d[i] ^= 0x5a;
    spill(p, d, n);
    expect_error(em_load_idx(p) == NULL, "corrupt gzip data", p);
    free(d);
}
END_TEST

/* ---- .npy ---- */

static int have_numpy(void) {
    static int have = -1;
    if (have < 0) {
        have = system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") == 0;
        if (!have) printf("test_io: SKIPPING the NumPy cross-checks: /usr/bin/python3 cannot import numpy\n");
    }
    return have;
}

typedef struct npy_case {
    em_dtype dtype;
    em_shape shape;
    double values[8];
    const char *np_dtype, *np_shape, *np_values; /* what NumPy must read */
} npy_case;

static const npy_case npy_cases[] = {
    {EM_F32, EM_SHAPE(2, 3), {1.5, -2, 0, 3, 255, 1e-3f}, "float32", "(2, 3)", "[1.5, -2, 0, 3, 255, 0.0010000000474974513]"},
    {EM_F64, EM_SHAPE(5), {1.5, -2, 0, 0.1, 1e300}, "float64", "(5,)", "[1.5, -2, 0, 0.1, 1e300]"},
    {EM_I32, EM_SHAPE(2, 2, 2), {1, -2, 0, 3, 255, 1, 7, -2147483648.0}, "int32", "(2, 2, 2)",
     "[1, -2, 0, 3, 255, 1, 7, -2147483648]"},
    {EM_I64, EM_SHAPE0, {-5}, "int64", "()", "[-5]"},
    {EM_U8, EM_SHAPE(1, 4), {1, 254, 0, 3}, "uint8", "(1, 4)", "[1, 254, 0, 3]"},
    {EM_U8, EM_SHAPE(0, 3), {0}, "uint8", "(0, 3)", "[]"},
    {EM_BOOL, EM_SHAPE(4), {1, 1, 0, 1}, "bool", "(4,)", "[True, True, False, True]"},
    {EM_I8, EM_SHAPE(2, 2), {-128, -1, 0, 127}, "int8", "(2, 2)", "[-128, -1, 0, 127]"},
    {EM_I16, EM_SHAPE(3), {-32768, 256, 32767}, "int16", "(3,)", "[-32768, 256, 32767]"},
    {EM_U16, EM_SHAPE(1, 3), {0, 50256, 65535}, "uint16", "(1, 3)", "[0, 50256, 65535]"},
};

/* A tensor of the case's dtype holding its values. */
static em_tensor *make(const npy_case *k) {
    uint8_t raw[64];
    for (int64_t i = 0; i < em_shape_numel(k->shape); i++) {
        double v = k->values[i];
        switch (k->dtype) {
        case EM_F32: ((float *)raw)[i] = (float)v; break;
        case EM_F64: ((double *)raw)[i] = v; break;
        case EM_I32: ((int32_t *)raw)[i] = (int32_t)v; break;
        case EM_I64: ((int64_t *)raw)[i] = (int64_t)v; break;
        case EM_I8: ((int8_t *)raw)[i] = (int8_t)v; break;
        case EM_I16: ((int16_t *)raw)[i] = (int16_t)v; break;
        case EM_U16: ((uint16_t *)raw)[i] = (uint16_t)v; break;
        default: raw[i] = (uint8_t)v; break;
        }
    }
    return em_tensor_from(k->dtype, k->shape, raw);
}

START_TEST(test_npy_roundtrip_every_dtype) {
    for (size_t c = 0; c < sizeof npy_cases / sizeof npy_cases[0]; c++) {
        const npy_case *k = &npy_cases[c];
        const char *p = tpath("a.npy");
        ck_assert_int_eq(em_save_npy(p, make(k)), 0);
        double expect[8];
        for (int i = 0; i < 8; i++) expect[i] = k->dtype == EM_F32 ? (float)k->values[i] : k->values[i];
        ck_assert_tensor(em_load_npy(p), k->dtype, k->shape, expect, 0);
        /* version 1.0, header padded to 64 bytes and ending in a newline */
        size_t size;
        uint8_t *d = slurp(p, &size);
        size_t hlen = d[8] | (size_t)d[9] << 8;
        ck_assert_int_eq(d[6], 1);
        ck_assert_int_eq(d[7], 0);
        ck_assert_uint_eq((10 + hlen) % 64, 0);
        ck_assert_int_eq(d[10 + hlen - 1], '\n');
        ck_assert_uint_eq(size, 10 + hlen + (size_t)em_shape_numel(k->shape) * em_dtype_size(k->dtype));
        free(d);
        if (!have_numpy()) continue;
        char cmd[1024];
        snprintf(cmd, sizeof cmd,
                 "/usr/bin/python3 -c 'import numpy as np, sys; a = np.load(sys.argv[1]); "
                 "assert (str(a.dtype), str(a.shape), a.ravel().tolist()) == (sys.argv[2], sys.argv[3], eval(sys.argv[4])), "
                 "(a.dtype, a.shape, a)' '%s' '%s' '%s' '%s'",
                 p, k->np_dtype, k->np_shape, k->np_values);
        ck_assert_msg(system(cmd) == 0, "NumPy disagrees on case %zu (%s %s)", c, k->np_dtype, k->np_shape);
    }
}
END_TEST

/* float16 edge values (see test_npy_files_written_by_numpy), and the same list for Python. */
static const uint16_t F16_BITS[8] = {0x3C00, 0x8000, 0x0001, 0x03FF, 0x0400, 0x7BFF, 0x7C00, 0x7E00};
#define F16_BITS_PY "[0x3C00, 0x8000, 0x0001, 0x03FF, 0x0400, 0x7BFF, 0x7C00, 0x7E00]"

/* float16 saves as '<f2' and loads back bit for bit; bfloat16, which NumPy lacks, is an error saying what to do. */
START_TEST(test_npy_float16_and_bfloat16) {
    const char *p = tpath("h.npy");
    ck_assert_int_eq(em_save_npy(p, em_tensor_from(EM_F16, EM_SHAPE(2, 4), F16_BITS)), 0);
    size_t size;
    uint8_t *d = slurp(p, &size);
    ck_assert_ptr_nonnull(strstr((const char *)d + 10, "'descr': '<f2'"));
    free(d);
    em_tensor *h = em_load_npy(p);
    ck_assert_int_eq(em_tensor_dtype(h), EM_F16);
    ck_assert_mem_eq(em_data(h), F16_BITS, sizeof F16_BITS);
    char msg[512];
    snprintf(msg, sizeof msg, "save_npy: %s: NumPy has no bfloat16 dtype (tensor of shape [3]); cast it to float32", p);
    ck_assert_error(em_save_npy(p, em_zeros(EM_BF16, EM_SHAPE(3))) ? NULL : "", msg);
}
END_TEST

START_TEST(test_npy_files_written_by_numpy) {
    if (!have_numpy()) return;
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && /usr/bin/python3 -c 'import numpy as np\n"
             "np.save(\"f32.npy\", np.array([[1.5, -2], [3, 4.25]], np.float32))\n"
             "np.save(\"f64.npy\", np.array([1e300, -1e-300, 0.1]))\n"
             "np.save(\"i32.npy\", np.array([-7, 2147483647], np.int32))\n"
             "np.save(\"i64.npy\", np.array([[-9007199254740993]], np.int64))\n"
             "np.save(\"u8.npy\", np.arange(250, 256, dtype=np.uint8).reshape(2, 3))\n"
             "np.save(\"bool.npy\", np.array([True, False, True]))\n"
             "np.save(\"scalar.npy\", np.float64(2.5))\n"
             "np.save(\"empty.npy\", np.zeros((0, 3), np.float32))\n"
             "with open(\"v2.npy\", \"wb\") as f: np.lib.format.write_array(f, np.array([1, 2], np.int32), version=(2, 0))\n"
             "np.save(\"fortran.npy\", np.asfortranarray(np.ones((2, 3))))\n"
             "np.save(\"big.npy\", np.ones(3, \">f4\"))\n"
             "np.save(\"c64.npy\", np.ones(3, np.complex64))\n"
             "np.save(\"i16.npy\", np.array([-32768, 1, 32767], np.int16))\n"
             "np.save(\"i8.npy\", np.array([[-128], [127]], np.int8))\n"
             "np.save(\"u16.npy\", np.array([50256, 65535], np.uint16))\n"
             "np.save(\"u32.npy\", np.ones(3, np.uint32))\n"
             "np.save(\"f16.npy\", np.array([[1, -0.0, 2**-24, 1023 * 2**-24], [2**-14, 65504, np.inf, np.nan]], np.float16))\n"
             "a = np.load(\"ember_f16.npy\")\n"
             "assert a.dtype == np.float16 and a.shape == (2, 4) and a.view(np.uint16).ravel().tolist() == %s, a\n"
             "'",
             tmp, F16_BITS_PY);
    /* float16 both ways, bit for bit: -0, the smallest and largest subnormals, the smallest normal, the largest
     * finite, Inf and NumPy's NaN */
    ck_assert_int_eq(em_save_npy(tpath("ember_f16.npy"), em_tensor_from(EM_F16, EM_SHAPE(2, 4), F16_BITS)), 0);
    ck_assert_int_eq(system(cmd), 0);
    em_tensor *f16 = em_load_npy(tpath("f16.npy"));
    ck_assert_ptr_nonnull(f16);
    ck_assert_int_eq(em_tensor_dtype(f16), EM_F16);
    ck_assert(em_shape_equal(em_tensor_shape(f16), EM_SHAPE(2, 4)));
    ck_assert_mem_eq(em_data(f16), F16_BITS, sizeof F16_BITS);
    ck_assert_tensor(em_load_npy(tpath("f32.npy")), EM_F32, EM_SHAPE(2, 2), ((double[]){1.5, -2, 3, 4.25}), 0);
    ck_assert_tensor(em_load_npy(tpath("f64.npy")), EM_F64, EM_SHAPE(3), ((double[]){1e300, -1e-300, 0.1}), 0);
    ck_assert_tensor(em_load_npy(tpath("i32.npy")), EM_I32, EM_SHAPE(2), ((double[]){-7, 2147483647}), 0);
    em_tensor *i64 = em_load_npy(tpath("i64.npy"));
    ck_assert_ptr_nonnull(i64);
    ck_assert(em_shape_equal(em_tensor_shape(i64), EM_SHAPE(1, 1)));
    ck_assert_int_eq(*(const int64_t *)em_data(i64), -9007199254740993LL); /* not a double: exact */
    ck_assert_tensor(em_load_npy(tpath("u8.npy")), EM_U8, EM_SHAPE(2, 3), ((double[]){250, 251, 252, 253, 254, 255}), 0);
    ck_assert_tensor(em_load_npy(tpath("bool.npy")), EM_BOOL, EM_SHAPE(3), ((double[]){1, 0, 1}), 0);
    ck_assert_tensor(em_load_npy(tpath("i8.npy")), EM_I8, EM_SHAPE(2, 1), ((double[]){-128, 127}), 0);
    ck_assert_tensor(em_load_npy(tpath("i16.npy")), EM_I16, EM_SHAPE(3), ((double[]){-32768, 1, 32767}), 0);
    ck_assert_tensor(em_load_npy(tpath("u16.npy")), EM_U16, EM_SHAPE(2), ((double[]){50256, 65535}), 0);
    ck_assert_tensor(em_load_npy(tpath("scalar.npy")), EM_F64, EM_SHAPE0, ((double[]){2.5}), 0);
    ck_assert_tensor(em_load_npy(tpath("empty.npy")), EM_F32, EM_SHAPE(0, 3), NULL, 0);
    ck_assert_tensor(em_load_npy(tpath("v2.npy")), EM_I32, EM_SHAPE(2), ((double[]){1, 2}), 0);
    const char *p = tpath("fortran.npy");
    expect_error(em_load_npy(p) == NULL, "Fortran-order arrays are not supported", p);
    p = tpath("big.npy");
    expect_error(em_load_npy(p) == NULL, "big-endian data ('>f4')", p);
    p = tpath("c64.npy");
    expect_error(em_load_npy(p) == NULL, "unsupported dtype '<c8'", p);
    p = tpath("u32.npy");
    expect_error(em_load_npy(p) == NULL, "unsupported dtype '<u4'", p);
}
END_TEST

/* A version 1.0 file with the given header text (unpadded) and data. */
static void write_npy(const char *path, const char *header, const void *data, size_t n) {
    uint8_t buf[512] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
    size_t h = strlen(header);
    buf[8] = (uint8_t)h;
    buf[9] = (uint8_t)(h >> 8);
    memcpy(buf + 10, header, h);
    memcpy(buf + 10 + h, data, n);
    spill(path, buf, 10 + h + n);
}

START_TEST(test_npy_bad_files_name_the_file) {
    const char *p = tpath("bad.npy");
    float f[4] = {1, 2, 3, 4};
    ck_assert_error(em_load_npy(NULL), "load_npy");
    expect_error(em_load_npy(p) == NULL, "load_npy: cannot open", p);
    spill(p, "PK\3\4 not numpy", 15);
    expect_error(em_load_npy(p) == NULL, "not a .npy file", p);
    spill(p, "\x93NUMPY\x09\0\0\0", 10);
    expect_error(em_load_npy(p) == NULL, "unsupported .npy version 9.0", p);
    write_npy(p, "{'descr': '<f4', 'fortran_order': False}\n", f, 16);
    expect_error(em_load_npy(p) == NULL, "malformed header ('descr', 'fortran_order' or 'shape' is missing", p);
    write_npy(p, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }\n", f, 16);
    expect_error(em_load_npy(p) == NULL, "malformed header (shape holds something other than sizes", p);
    write_npy(p, "{'descr': '<f4', 'fortran_order': maybe, 'shape': (4,), }\n", f, 16);
    expect_error(em_load_npy(p) == NULL, "fortran_order is not True or False", p);
    write_npy(p, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), 'extra': 1}\n", f, 16);
    expect_error(em_load_npy(p) == NULL, "unknown key", p);
    write_npy(p, "{'descr': '<f4 'fortran_order': False, 'shape': (4,), }\n", f, 16);
    expect_error(em_load_npy(p) == NULL, "malformed header", p);
    spill(p, "\x93NUMPY\x01\0\x40\0{'descr'", 17);
    expect_error(em_load_npy(p) == NULL, "truncated in the 64-byte header", p);
    /* sizes that disagree with the data */
    write_npy(p, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }\n", f, 8);
    expect_error(em_load_npy(p) == NULL, "truncated: [4] float32 needs 16 bytes of data, the file holds 8", p);
    write_npy(p, "{\"descr\": \"<f4\", \"shape\": (3,), \"fortran_order\": False}", f, 16);
    expect_error(em_load_npy(p) == NULL, "4 bytes after the [3] float32 data", p);
    /* keys in any order, double quotes, no trailing comma: fine */
    write_npy(p, "{\"descr\": \"<f4\", \"shape\": (4,), \"fortran_order\": False}", f, 16);
    ck_assert_tensor(em_load_npy(p), EM_F32, EM_SHAPE(4), ((double[]){1, 2, 3, 4}), 0);

    const char *q = tpath("no/such/dir/x.npy");
    expect_error(em_save_npy(q, em_zeros(EM_F32, EM_SHAPE(2))) != 0, "save_npy: cannot create", q);
    ck_assert_int_eq(em_save_npy(p, NULL), -1);
    ck_assert_ptr_nonnull(strstr(em_last_error(), "save_npy"));
    em_clear_error();
}
END_TEST

/* ---- saved graphs ---- */

static bool same_bits(em_tensor *a, em_tensor *b) {
    return a && b && em_tensor_dtype(a) == em_tensor_dtype(b) && em_shape_equal(em_tensor_shape(a), em_tensor_shape(b)) &&
           !memcmp(em_data(a), em_data(b), (size_t)em_numel(a) * em_dtype_size(em_tensor_dtype(a)));
}

/* A saved graph holds bfloat16 and float16 placeholders, variables, constants and casts (dtype numbers 6 and
 * 7 in the file), with variables kept or frozen, and computes the same bits after loading. */
START_TEST(test_saved_graph_with_narrow_dtypes) {
    static const uint16_t wbits[3] = {0x3FC0, 0xBF80, 0x0001}; /* bfloat16 1.5, -1, a subnormal */
    static const uint16_t cbits[3] = {0x3555, 0x7BFF, 0xFC00}; /* float16 0.333, 65504, -Inf */
    em_tensor *input = em_cast(em_test_uniform(EM_SHAPE(2, 3), -2, 2, 5), EM_BF16);
    for (int freeze = 0; freeze < 2; freeze++) {
        em_tensor *x = em_placeholder(EM_BF16, EM_SHAPE(-1, 3), "x");
        em_tensor *w = em_get_variable("narrow/w", EM_BF16, EM_SHAPE(3),
                                       EM_INIT_FROM(em_tensor_from(EM_BF16, EM_SHAPE(3), wbits)));
        em_trace_begin();
        em_tensor *c = em_tensor_from(EM_F16, EM_SHAPE(3), cbits);
        em_tensor *y = em_add(em_mul(x, w), em_cast(c, EM_BF16));
        em_tensor *z = em_cast(y, EM_F16);
        em_graph *g = em_trace_end();
        ck_assert_ptr_nonnull(g);
        const char *p = tpath("narrow.emg");
        ck_assert_msg(em_graph_save(g, p, 2, (em_tensor *[]){y, z}, (const char *[]){"y", "z"},
                                    freeze ? EM_SAVE_FREEZE : 0) == 0,
                      "%s", em_last_error());
        em_tensor *out[2], *want[2];
        ck_assert_int_eq(em_graph_run(g, 1, (em_feed[]){{x, input}}, 2, (em_tensor *[]){y, z}, out), 0);
        want[0] = em_copy(out[0]);
        want[1] = em_copy(out[1]);
        ck_assert_int_eq(em_tensor_dtype(want[1]), EM_F16);
        em_graph_release(g);
        em_release(x);
        em_variables_release();

        em_graph *h = em_graph_load(p);
        ck_assert_msg(h != NULL, "%s", em_last_error());
        em_tensor *fetch[2] = {em_graph_fetch(h, "y"), em_graph_fetch(h, "z")};
        ck_assert_int_eq(em_tensor_dtype(em_graph_placeholder(h, "x")), EM_BF16);
        ck_assert_int_eq(em_graph_run(h, 1, (em_feed[]){{em_graph_placeholder(h, "x"), input}}, 2, fetch, out), 0);
        ck_assert(same_bits(out[0], want[0]) && same_bits(out[1], want[1]));
        em_tensor *loaded_w = em_find_variable("narrow/w");
        if (freeze) {
            ck_assert_ptr_null(loaded_w);
            em_clear_error();
        } else {
            ck_assert(same_bits(loaded_w, em_tensor_from(EM_BF16, EM_SHAPE(3), wbits)));
        }
        em_graph_release(h);
        em_variables_release();
    }
}
END_TEST

/* A saved graph with a uint16 token-id placeholder, an int8 variable (quantized weights) widened by a cast
 * and an int16 constant (dtype numbers 10, 8 and 9 in the file) computes the same after loading. */
START_TEST(test_saved_graph_with_integer_dtypes) {
    static const int8_t q[6] = {-128, -1, 0, 1, 64, 127};
    static const int16_t offs[2] = {-32768, 300};
    static const uint16_t ids[3] = {2, 0, 2};
    em_tensor *feed = em_tensor_from(EM_U16, EM_SHAPE(3), ids);
    em_tensor *x = em_placeholder(EM_U16, EM_SHAPE(-1), "ids");
    em_tensor *w = em_get_variable("int/q", EM_I8, EM_SHAPE(3, 2), EM_INIT_FROM(em_tensor_from(EM_I8, EM_SHAPE(3, 2), q)));
    em_trace_begin();
    em_tensor *y = em_add(em_cast(em_gather(w, x, 0), EM_I16), em_tensor_from(EM_I16, EM_SHAPE(2), offs));
    em_graph *g = em_trace_end();
    ck_assert_ptr_nonnull(g);
    const char *p = tpath("int.emg");
    ck_assert_msg(em_graph_save(g, p, 1, &y, (const char *[]){"y"}, 0) == 0, "%s", em_last_error());
    em_tensor *out;
    ck_assert_int_eq(em_graph_run(g, 1, (em_feed[]){{x, feed}}, 1, &y, &out), 0);
    /* rows 2, 0, 2 of q plus the offsets: -32768 + 64 and 300 + 127; int16 -32768 - 128 wraps to 32640 */
    ck_assert_tensor(out, EM_I16, EM_SHAPE(3, 2), ((double[]){-32704, 427, 32640, 299, -32704, 427}), 0);
    em_tensor *want = em_copy(out);
    em_graph_release(g);
    em_release(x);
    em_variables_release();
    em_graph *h = em_graph_load(p);
    ck_assert_msg(h != NULL, "%s", em_last_error());
    ck_assert_int_eq(em_tensor_dtype(em_graph_placeholder(h, "ids")), EM_U16);
    ck_assert_int_eq(em_tensor_dtype(em_find_variable("int/q")), EM_I8);
    em_tensor *fetch = em_graph_fetch(h, "y");
    ck_assert_int_eq(em_graph_run(h, 1, (em_feed[]){{em_graph_placeholder(h, "ids"), feed}}, 1, &fetch, &out), 0);
    ck_assert(same_bits(out, want));
    em_graph_release(h);
    em_variables_release();
}
END_TEST

int main(void) {
    Suite *s = suite_create("io");
    TCase *tc = tcase_create("io");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_mnist_train);
    tcase_add_test(tc, test_mnist_test);
    tcase_add_test(tc, test_idx_every_type_raw_and_gzip);
    tcase_add_test(tc, test_idx_bad_files_name_the_file);
    tcase_add_test(tc, test_npy_roundtrip_every_dtype);
    tcase_add_test(tc, test_npy_files_written_by_numpy);
    tcase_add_test(tc, test_npy_float16_and_bfloat16);
    tcase_add_test(tc, test_saved_graph_with_narrow_dtypes);
    tcase_add_test(tc, test_saved_graph_with_integer_dtypes);
    tcase_add_test(tc, test_npy_bad_files_name_the_file);
    suite_add_tcase(s, tc);
    return em_test_run(s);
}
