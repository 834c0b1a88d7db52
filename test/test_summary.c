/* TensorBoard event files, checked two ways: the TFRecord framing with a
 * bitwise CRC-32C written here, and the contents read back by TensorBoard's
 * own loader (test/tb_read.py). Also PNG files, plots and image grids, read
 * back with libpng. */
#include "common.h"
#include "crc32c.h"

#include <float.h>
#include <png.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char tmp[256];

static void setup(void) { em_test_tmpdir("summary", tmp, sizeof tmp); }

static void teardown(void) {
    em_test_tmpdir_remove(tmp);
    em_shutdown();
}

#define expect_fail(rc, needle) em_test_assert_error((rc) != 0, (needle), __FILE__, __LINE__)

/* ---- an independent TFRecord reader ---- */

static uint32_t crc_bitwise(const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1)));
    }
    return ~c;
}

static uint32_t mask(uint32_t c) { return ((c >> 15) | (c << 17)) + 0xa282ead8u; }

static uint64_t le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
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
    d[size] = 0;
    *n = (size_t)size;
    return d;
}

static void spill(const char *path, const void *d, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fwrite(d, 1, n, f), n);
    fclose(f);
}

/* Checks both CRCs of every complete record; returns how many there are, the
 * start of the last one, and the bytes of a trailing partial record. */
static int scan_records(const uint8_t *d, size_t n, size_t *last, size_t *tail) {
    size_t pos = 0;
    int count = 0;
    while (pos + 12 <= n) {
        uint64_t len = le(d + pos, 8);
        ck_assert_msg(mask(crc_bitwise(d + pos, 8)) == le(d + pos + 8, 4), "record %d: length CRC", count);
        if (pos + 16 + len > n) break;
        ck_assert_msg(mask(crc_bitwise(d + pos + 12, len)) == le(d + pos + 12 + len, 4), "record %d: data CRC", count);
        *last = pos;
        pos += 16 + len;
        count++;
    }
    *tail = n - pos;
    return count;
}

/* ---- TensorBoard's view, through test/tb_read.py ---- */

static int have_tensorboard(void) {
    static int have = -1;
    if (have < 0) {
        const char *probe = "python3 -c 'import tensorboard' >/dev/null 2>&1";
        have = system(probe) == 0 ||
               (system("python3 -m pip install -q tensorboard >/dev/null 2>&1") == 0 && system(probe) == 0);
        if (!have)
            printf("test_summary: SKIPPING the TensorBoard cross-check: python3 cannot import tensorboard "
                   "and 'python3 -m pip install tensorboard' failed\n");
    }
    return have;
}

/* tb_read.py's output for the event file (images dumped into dump), or NULL
 * when TensorBoard is not available. */
static char *tb_read(const char *event_file, const char *dump) {
    if (!have_tensorboard()) return NULL;
    char cmd[1200], out[300], err[300];
    snprintf(out, sizeof out, "%s/tb.out", tmp);
    snprintf(err, sizeof err, "%s/tb.err", tmp);
    snprintf(cmd, sizeof cmd, "python3 test/tb_read.py '%s' '%s' >'%s' 2>'%s'", event_file, dump ? dump : tmp, out, err);
    int rc = system(cmd);
    size_t n;
    if (rc != 0) {
        char *e = (char *)slurp(err, &n);
        ck_abort_msg("tb_read.py failed (%d): %s", rc, e);
    }
    return (char *)slurp(out, &n);
}

/* The line starting with prefix (NULL if none). */
static const char *find_line(const char *out, const char *prefix) {
    size_t k = strlen(prefix);
    for (const char *p = out; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (!strncmp(p, prefix, k)) return p;
    return NULL;
}

static int count_lines(const char *out, const char *prefix) {
    int c = 0;
    size_t k = strlen(prefix);
    for (const char *p = out; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) c += !strncmp(p, prefix, k);
    return c;
}

/* The i-th number after prefix on its line. */
static double field(const char *out, const char *prefix, int i) {
    const char *p = find_line(out, prefix);
    ck_assert_msg(p != NULL, "no line \"%s\" in:\n%s", prefix, out);
    p += strlen(prefix);
    double v = NAN;
    for (int k = 0; k <= i; k++) {
        char *end;
        v = strtod(p, &end);
        ck_assert_msg(end != p, "line \"%s\" has no field %d", prefix, i);
        p = end;
    }
    return v;
}

static uint8_t *read_png(const char *path, png_uint_32 format, int *w, int *h) {
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    ck_assert_msg(png_image_begin_read_from_file(&im, path), "%s: %s", path, im.message);
    im.format = format;
    uint8_t *px = malloc(PNG_IMAGE_SIZE(im));
    ck_assert_msg(png_image_finish_read(&im, NULL, px, 0, NULL), "%s: %s", path, im.message);
    *w = (int)im.width;
    *h = (int)im.height;
    return px;
}

/* ---- tests ---- */

START_TEST(test_crc32c_matches_bitwise) {
    ck_assert_uint_eq(em__crc32c(0, "123456789", 9), 0xe3069283u); /* the standard check value */
    uint8_t buf[1000];
    for (int i = 0; i < 1000; i++) buf[i] = (uint8_t)(i * 131 + 7);
    for (size_t n = 0; n <= 1000; n += 37) {
        ck_assert_uint_eq(em__crc32c(0, buf, n), crc_bitwise(buf, n));
        ck_assert_uint_eq(em__crc32c_masked(buf, n), mask(crc_bitwise(buf, n)));
    }
    /* continuing a CRC equals one pass */
    ck_assert_uint_eq(em__crc32c(em__crc32c(0, buf, 300), buf + 300, 700), crc_bitwise(buf, 1000));
}
END_TEST

static double expected_limit(double v) {
    /* TF's default buckets: limits 1e-12 * 1.1^k mirrored, 0 in the middle;
     * a value falls in the bucket of the first limit above it */
    double below = 0;
    for (double l = 1e-12; l < 1e20; l *= 1.1) {
        if (v >= 0 && l > v) return l;
        if (v < 0 && l >= -v) return -below;
        below = l;
    }
    return v >= 0 ? DBL_MAX : -below;
}

START_TEST(test_event_file_read_by_tensorboard) {
    char logdir[300], dump[300];
    snprintf(logdir, sizeof logdir, "%s/logs/run 1/train", tmp); /* parents are created */
    snprintf(dump, sizeof dump, "%s/png", tmp);
    ck_assert_int_eq(mkdir(dump, 0777), 0);
    em_summary_writer *w = em_summary_writer_open(logdir);
    ck_assert_ptr_nonnull(w);
    const char *path = em_summary_writer_path(w);
    ck_assert_ptr_nonnull(strstr(path, "/logs/run 1/train/events.out.tfevents."));
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    ck_assert_ptr_nonnull(strstr(path, host));

    for (int i = 0; i < 5; i++) ck_assert_int_eq(em_summary_scalar(w, "loss", i * 10, 1.0 / (i + 1)), 0);
    double hv[9] = {-2.5, -1, 0, 0, 0.5, 1e-13, 3, 3, 100};
    ck_assert_int_eq(em_summary_histogram(w, "weights", 20, em_tensor_from(EM_F64, EM_SHAPE(9), hv)), 0);
    /* bfloat16 and float16 values are read as the numbers they hold */
    em_tensor *hv_bf16 = em_cast(em_tensor_from(EM_F64, EM_SHAPE(9), hv), EM_BF16);
    ck_assert_int_eq(em_summary_histogram(w, "weights_bf16", 20, hv_bf16), 0);
    uint8_t gray[20], rgba[16], one[2 * 3 * 3 * 3];
    float rgb[18], batch[3 * 4 * 4];
    for (int i = 0; i < 20; i++) gray[i] = (uint8_t)(i * 13);
    for (int i = 0; i < 16; i++) rgba[i] = (uint8_t)(255 - i * 16);
    for (int i = 0; i < 54; i++) one[i] = (uint8_t)(i * 4);
    for (int i = 0; i < 18; i++) rgb[i] = (float)i / 17;
    for (int i = 0; i < 48; i++) batch[i] = (float)(i % 16) / 15 + (i >= 32 ? 0.5f : 0); /* the third saturates */
    ck_assert_int_eq(em_summary_image(w, "gray", 30, em_tensor_from(EM_U8, EM_SHAPE(4, 5), gray), 1), 0);
    ck_assert_int_eq(em_summary_image(w, "rgb", 30, em_tensor_from(EM_F32, EM_SHAPE(3, 2, 3), rgb), 1), 0);
    em_tensor *rgb_f16 = em_cast(em_tensor_from(EM_F32, EM_SHAPE(3, 2, 3), rgb), EM_F16);
    ck_assert_int_eq(em_summary_image(w, "rgb_f16", 30, rgb_f16, 1), 0);
    ck_assert_int_eq(em_summary_image(w, "rgba", 30, em_tensor_from(EM_U8, EM_SHAPE(2, 2, 4), rgba), 1), 0);
    ck_assert_int_eq(em_summary_image(w, "batch", 40, em_tensor_from(EM_F32, EM_SHAPE(3, 4, 4, 1), batch), 2), 0);
    ck_assert_int_eq(em_summary_image(w, "one", 40, em_tensor_from(EM_U8, EM_SHAPE(2, 3, 3, 3), one), 1), 0);
    ck_assert_int_eq(em_summary_text(w, "notes", 50, "hello *world*\nline 2"), 0);
    char saved[400];
    snprintf(saved, sizeof saved, "%s", path);
    ck_assert_int_eq(em_summary_writer_close(w), 0);

    /* (a) framing: 1 version event + 5 scalars + 2 histograms + 6 images + 1 text */
    size_t n, last, tail;
    uint8_t *d = slurp(saved, &n);
    ck_assert_int_eq(scan_records(d, n, &last, &tail), 15);
    ck_assert_uint_eq(tail, 0);
    ck_assert_ptr_nonnull(memmem(d, 64, "brain.Event:2", 13));
    free(d);

    /* (b) TensorBoard's reading */
    char *out = tb_read(saved, dump);
    if (!out) return;
    ck_assert_ptr_nonnull(find_line(out, "events 15\n"));
    ck_assert_ptr_nonnull(find_line(out, "version brain.Event:2\n"));
    ck_assert_int_eq(count_lines(out, "scalar loss "), 5);
    for (int i = 0; i < 5; i++) {
        char pre[64];
        snprintf(pre, sizeof pre, "scalar loss %d ", i * 10);
        ck_assert_double_eq(field(out, pre, 0), (double)(float)(1.0 / (i + 1)));
    }
    double sum = 0, sum2 = 0;
    for (int i = 0; i < 9; i++) sum += hv[i], sum2 += hv[i] * hv[i];
    ck_assert_double_eq(field(out, "histo weights 20 ", 0), -2.5);
    ck_assert_double_eq(field(out, "histo weights 20 ", 1), 100);
    ck_assert_double_eq(field(out, "histo weights 20 ", 2), 9);
    ck_assert_double_eq_tol(field(out, "histo weights 20 ", 3), sum, 1e-12);
    ck_assert_double_eq_tol(field(out, "histo weights 20 ", 4), sum2, 1e-9);
    ck_assert_double_eq(field(out, "histo weights 20 ", 5), 13); /* 6 full buckets, 7 runs of empty ones */
    /* non-empty buckets, each with the limit TF's layout gives its values */
    const double vals[6] = {-2.5, -1, 0, 0.5, 3, 100}, counts[6] = {1, 1, 3, 1, 2, 1};
    ck_assert_int_eq(count_lines(out, "bucket weights 20 "), 6);
    const char *p = find_line(out, "bucket weights 20 ");
    for (int i = 0; i < 6; i++) {
        double lim, cnt;
        ck_assert_int_eq(sscanf(p, "bucket weights 20 %lf %lf", &lim, &cnt), 2);
        double e = expected_limit(vals[i]);
        ck_assert_msg(fabs(lim - e) <= 1e-12 * fabs(e), "bucket %d: limit %.17g, expected %.17g", i, lim, e);
        ck_assert_double_eq(cnt, counts[i]);
        p = strchr(p, '\n') + 1;
    }
    double bsum = 0, bsum2 = 0;
    for (int i = 0; i < 9; i++) {
        double v = em_test_round_bf16(hv[i]);
        bsum += v, bsum2 += v * v;
    }
    ck_assert_double_eq(field(out, "histo weights_bf16 20 ", 0), -2.5);
    ck_assert_double_eq(field(out, "histo weights_bf16 20 ", 1), 100);
    ck_assert_double_eq(field(out, "histo weights_bf16 20 ", 2), 9);
    ck_assert_double_eq_tol(field(out, "histo weights_bf16 20 ", 3), bsum, 1e-12);
    ck_assert_double_eq_tol(field(out, "histo weights_bf16 20 ", 4), bsum2, 1e-9);
    ck_assert_int_eq(count_lines(out, "bucket weights_bf16 20 "), 6);
    /* images: size in the proto and in the PNG, TF 1's batch tags, pixels */
    ck_assert_ptr_nonnull(find_line(out, "image gray 30 5 4 5 4 0\n"));
    ck_assert_ptr_nonnull(find_line(out, "image rgb 30 2 3 2 3 2\n"));
    ck_assert_ptr_nonnull(find_line(out, "image rgba 30 2 2 2 2 6\n"));
    ck_assert_ptr_nonnull(find_line(out, "image batch/image/0 40 4 4 4 4 0\n"));
    ck_assert_ptr_nonnull(find_line(out, "image batch/image/1 40 4 4 4 4 0\n"));
    ck_assert_ptr_null(find_line(out, "image batch/image/2 "));
    ck_assert_ptr_nonnull(find_line(out, "image one/image 40 3 3 3 3 2\n"));
    ck_assert_ptr_nonnull(find_line(out, "image rgb_f16 30 2 3 2 3 2\n"));
    ck_assert_int_eq(count_lines(out, "image "), 7);
    char f[400];
    int wd, ht;
    snprintf(f, sizeof f, "%s/gray.30.png", dump);
    uint8_t *px = read_png(f, PNG_FORMAT_GRAY, &wd, &ht);
    ck_assert_int_eq(memcmp(px, gray, 20), 0);
    free(px);
    snprintf(f, sizeof f, "%s/rgb.30.png", dump);
    px = read_png(f, PNG_FORMAT_RGB, &wd, &ht);
    for (int i = 0; i < 18; i++) ck_assert_int_eq(px[i], lrintf(rgb[i] * 255));
    free(px);
    snprintf(f, sizeof f, "%s/rgb_f16.30.png", dump);
    px = read_png(f, PNG_FORMAT_RGB, &wd, &ht);
    for (int i = 0; i < 18; i++) ck_assert_int_eq(px[i], lrint(em_test_round_f16(rgb[i]) * 255));
    free(px);
    snprintf(f, sizeof f, "%s/rgba.30.png", dump);
    px = read_png(f, PNG_FORMAT_RGBA, &wd, &ht);
    ck_assert_int_eq(memcmp(px, rgba, 16), 0);
    free(px);
    snprintf(f, sizeof f, "%s/batch_image_1.40.png", dump);
    px = read_png(f, PNG_FORMAT_GRAY, &wd, &ht);
    for (int i = 0; i < 16; i++) ck_assert_int_eq(px[i], lrintf(batch[16 + i] * 255));
    free(px);
    ck_assert_ptr_nonnull(find_line(out, "text notes 50 \"hello *world*\\nline 2\"\n"));
    free(out);
}
END_TEST

START_TEST(test_cut_file_reads_to_last_complete_record) {
    em_summary_writer *w = em_summary_writer_open(tmp);
    ck_assert_ptr_nonnull(w);
    for (int i = 0; i < 10; i++) ck_assert_int_eq(em_summary_scalar(w, "x", i, i * 0.5), 0);
    char path[400];
    snprintf(path, sizeof path, "%s", em_summary_writer_path(w));
    ck_assert_int_eq(em_summary_writer_close(w), 0);
    size_t n, last, tail;
    uint8_t *d = slurp(path, &n);
    ck_assert_int_eq(scan_records(d, n, &last, &tail), 11);
    /* cut inside the last record's data CRC, then inside its length */
    size_t cuts[2] = {n - 3, last + 5};
    for (int c = 0; c < 2; c++) {
        char cut[400];
        snprintf(cut, sizeof cut, "%s/cut%d.tfevents", tmp, c);
        spill(cut, d, cuts[c]);
        size_t l2, t2;
        ck_assert_int_eq(scan_records(d, cuts[c], &l2, &t2), 10);
        ck_assert_uint_eq(t2, cuts[c] - last);
        char *out = tb_read(cut, NULL);
        if (!out) continue;
        ck_assert_ptr_nonnull(find_line(out, "events 10\n"));
        ck_assert_int_eq(count_lines(out, "scalar x "), 9);
        ck_assert_double_eq(field(out, "scalar x 8 ", 0), 4);
        ck_assert_ptr_null(find_line(out, "scalar x 9 "));
        free(out);
    }
    free(d);
}
END_TEST

static long file_size(const char *path) {
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    return (long)st.st_size;
}

START_TEST(test_writes_are_buffered_until_flush) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    em_summary_writer *w = em_summary_writer_open(tmp);
    ck_assert_ptr_nonnull(w);
    const char *path = em_summary_writer_path(w);
    long start = file_size(path);
    ck_assert_int_gt(start, 0); /* the version event is on disk at once */
    ck_assert_int_eq(em_summary_scalar(w, "a", 1, 1), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if ((double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9 < 1) /* well inside the 2 s flush period */
        ck_assert_int_eq(file_size(path), start);
    ck_assert_int_eq(em_summary_writer_flush(w), 0);
    long flushed = file_size(path);
    ck_assert_int_gt(flushed, start);
    /* a second writer in the same directory and second gets its own file */
    em_summary_writer *w2 = em_summary_writer_open(tmp);
    ck_assert_ptr_nonnull(w2);
    ck_assert_str_ne(em_summary_writer_path(w2), path);
    ck_assert_int_eq(em_summary_scalar(w, "a", 2, 2), 0);
    char saved[400];
    snprintf(saved, sizeof saved, "%s", path);
    ck_assert_int_eq(em_summary_writer_close(w), 0);
    ck_assert_int_eq(file_size(saved), flushed + (flushed - start));
    ck_assert_int_eq(em_summary_writer_close(w2), 0);
    ck_assert_int_eq(em_summary_writer_close(NULL), 0);
}
END_TEST

/* An event file is appended to as training runs, never replaced (a new
 * file per writer), so the atomic rename of the other writers does not
 * apply: a failed flush (a full disk; the file size limit stands in for
 * one) keeps what did not reach the file, and the next flush writes it, so
 * the file never holds a torn record followed by more (issue 21). */
START_TEST(test_failed_flush_is_retried_whole) {
    em_summary_writer *w = em_summary_writer_open(tmp);
    ck_assert_ptr_nonnull(w);
    char path[400];
    snprintf(path, sizeof path, "%s", em_summary_writer_path(w));
    ck_assert_int_eq(em_summary_scalar(w, "loss", 1, 0.5), 0);
    ck_assert_int_eq(em_summary_writer_flush(w), 0);
    long size = file_size(path);
    char text[2000];
    memset(text, 'x', sizeof text - 1);
    text[sizeof text - 1] = 0;
    ck_assert_int_eq(em_summary_text(w, "notes", 2, text), 0);
    struct rlimit old, small;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    small = old;
    small.rlim_cur = (rlim_t)size + 100; /* the text event's first 100 bytes fit */
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
    int rc = em_summary_writer_flush(w);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);
    char msg[600];
    snprintf(msg, sizeof msg, "summary: cannot write %s: File too large", path);
    ck_assert_int_eq(rc, -1);
    ck_assert_str_eq(em_last_error(), msg);
    em_clear_error();
    ck_assert_int_eq(file_size(path), size + 100);
    ck_assert_int_eq(em_summary_scalar(w, "loss", 3, 0.25), 0);
    ck_assert_int_eq(em_summary_writer_close(w), 0);
    size_t n, last, tail;
    uint8_t *d = slurp(path, &n);
    ck_assert_int_eq(scan_records(d, n, &last, &tail), 4); /* version, loss, notes, loss */
    ck_assert_int_eq(tail, 0);
    free(d);
}
END_TEST

START_TEST(test_summary_errors) {
    char file[300], under[320];
    snprintf(file, sizeof file, "%s/plain", tmp);
    spill(file, "x", 1);
    snprintf(under, sizeof under, "%s/logs", file);
    ck_assert_error(em_summary_writer_open(under), "summary_writer_open: cannot create directory");
    ck_assert_error(em_summary_writer_open(NULL), "summary_writer_open");
    em_summary_writer *w = em_summary_writer_open(tmp);
    ck_assert_ptr_nonnull(w);
    expect_fail(em_summary_scalar(NULL, "a", 0, 1), "summary_scalar: writer is NULL");
    expect_fail(em_summary_scalar(w, "", 0, 1), "summary_scalar: tag is empty");
    expect_fail(em_summary_image(w, "im", 0, em_zeros(EM_U8, EM_SHAPE(2, 3, 5)), 1),
                "summary_image: image must be [H,W], [H,W,C] or [N,H,W,C] with C = 1, 3 or 4, got [2,3,5]");
    expect_fail(em_summary_image(w, "im", 0, em_zeros(EM_U8, EM_SHAPE(0, 3)), 1), "height and width");
    expect_fail(em_summary_image(w, "im", 0, em_zeros(EM_I32, EM_SHAPE(2, 3)), 1), "uint8 or float");
    expect_fail(em_summary_image(w, "im", 0, em_zeros(EM_U8, EM_SHAPE(1, 2, 3, 1)), 0), "max_images");
    expect_fail(em_summary_image(w, "im", 0, NULL, 1), "summary_image");
    double bad[3] = {1, NAN, 2};
    expect_fail(em_summary_histogram(w, "h", 0, em_tensor_from(EM_F64, EM_SHAPE(3), bad)),
                "summary_histogram: 'h' holds a non-finite value");
    expect_fail(em_summary_text(w, "t", 0, NULL), "summary_text");
    expect_fail(em_summary_writer_flush(NULL), "summary_writer_flush");
    ck_assert_int_eq(em_summary_writer_close(w), 0);
}
END_TEST

/* mnist_with_summaries's first layer, traced under name scopes, as
 * TensorBoard's Graphs tab reads it. */
START_TEST(test_graph_read_by_tensorboard) {
    em_tensor *x = em_placeholder(EM_F32, EM_SHAPE(-1, 784), "x");
    em_tensor *labels = em_placeholder(EM_I64, EM_SHAPE(-1), "labels");
    em_variable_scope_begin("layer1", EM_REUSE_FALSE);
    em_tensor *wt = em_get_variable("weights", EM_F32, EM_SHAPE(784, 10), EM_INIT_CONST(0.01));
    em_tensor *b = em_get_variable("biases", EM_F32, EM_SHAPE(10), EM_INIT_CONST(0.1));
    em_variable_scope_end();
    ck_assert_int_eq(em_trace_begin(), 0);
    em_name_scope_begin("layer1");
    em_name_scope_begin("Wx_plus_b");
    em_tensor *pre = em_add(em_matmul(x, wt), b);
    em_name_scope_end();
    em_tensor *act = em_relu(pre);
    em_name_scope_end();
    em_tensor *loss = em_mean(em_sparse_softmax_cross_entropy_with_logits(labels, act), EM_ALL_AXES, false);
    em_tensor *half = em_cast(em_cast(act, EM_BF16), EM_F16);
    em_graph *g = em_trace_end();
    ck_assert_msg(loss != NULL && half != NULL && g != NULL, "%s", em_last_error());

    em_summary_writer *w = em_summary_writer_open(tmp);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(em_summary_graph(w, g), 0);
    char saved[400];
    snprintf(saved, sizeof saved, "%s", em_summary_writer_path(w));
    expect_fail(em_summary_graph(NULL, g), "summary_graph: writer is NULL");
    expect_fail(em_summary_graph(w, NULL), "summary_graph: graph is NULL");
    ck_assert_int_eq(em_summary_writer_close(w), 0);
    em_graph_release(g);

    size_t n, last, tail;
    uint8_t *d = slurp(saved, &n);
    ck_assert_int_eq(scan_records(d, n, &last, &tail), 2);
    ck_assert_uint_eq(tail, 0);
    free(d);

    /* every node with its op, inputs, DataType (float 1, int64 9, bfloat16 14, half 19) and shapes */
    static const char *const nodes[] = {
        "node x Placeholder in=- dtype=1 shapes=[-1,784]\n",
        "node labels Placeholder in=- dtype=9 shapes=[-1]\n",
        "node layer1/weights Variable in=- dtype=1 shapes=[784,10]\n",
        "node layer1/biases Variable in=- dtype=1 shapes=[10]\n",
        "node layer1/Wx_plus_b/matmul_0 matmul in=x,layer1/weights T=1 shapes=[-1,10]\n",
        "node layer1/Wx_plus_b/add_1 add in=layer1/Wx_plus_b/matmul_0,layer1/biases T=1 shapes=[-1,10]\n",
        "node layer1/relu_2 relu in=layer1/Wx_plus_b/add_1 T=1 shapes=[-1,10]\n",
        "node sparse_softmax_xent_3 sparse_softmax_xent in=labels,layer1/relu_2 T=1 shapes=[-1]\n",
        "node count_elements_4 count_elements in=sparse_softmax_xent_3 T=1 shapes=[]\n",
        "node sum_5 sum in=sparse_softmax_xent_3 T=1 shapes=[]\n",
        "node div_6 div in=sum_5,count_elements_4 T=1 shapes=[]\n",
        "node cast_7 cast in=layer1/relu_2 T=14 shapes=[-1,10]\n",
        "node cast_8 cast in=cast_7 T=19 shapes=[-1,10]\n",
    };
    char *out = tb_read(saved, NULL);
    if (!out) return;
    ck_assert_ptr_nonnull(find_line(out, "events 3\n")); /* the loader adds the graph as a run summary too */
    ck_assert_ptr_nonnull(find_line(out, "graph 13\n"));
    ck_assert_int_eq(count_lines(out, "node "), 13);
    for (int i = 0; i < 13; i++) ck_assert_msg(find_line(out, nodes[i]) != NULL, "no %s in:\n%s", nodes[i], out);
    free(out);
}
END_TEST

START_TEST(test_write_png) {
    char path[300];
    snprintf(path, sizeof path, "%s/a.png", tmp);
    uint8_t g[6] = {0, 50, 100, 150, 200, 255};
    ck_assert_int_eq(em_write_png(path, em_tensor_from(EM_U8, EM_SHAPE(2, 3), g)), 0);
    int w, h;
    uint8_t *px = read_png(path, PNG_FORMAT_GRAY, &w, &h);
    ck_assert_int_eq(w, 3);
    ck_assert_int_eq(h, 2);
    ck_assert_int_eq(memcmp(px, g, 6), 0);
    free(px);
    double c[12] = {0, 0.5, 1, 2, -1, NAN, 0.25, 0.75, 1, 0, 0, 0}; /* [1,2,... clamped; NaN -> 0 */
    ck_assert_int_eq(em_write_png(path, em_tensor_from(EM_F64, EM_SHAPE(1, 3, 4), c)), 0);
    px = read_png(path, PNG_FORMAT_RGBA, &w, &h);
    const uint8_t e[12] = {0, 128, 255, 255, 0, 0, 64, 191, 255, 0, 0, 0};
    ck_assert_int_eq(memcmp(px, e, 12), 0);
    free(px);
    expect_fail(em_write_png(path, em_zeros(EM_U8, EM_SHAPE(1, 2, 3, 3))), "write_png: image must be [H,W] or [H,W,C]");
    char bad[320];
    snprintf(bad, sizeof bad, "%s/no/such/dir/a.png", tmp);
    expect_fail(em_write_png(bad, em_zeros(EM_U8, EM_SHAPE(2, 2))), bad);
}
END_TEST

static int count_color(const uint8_t *px, int n, uint8_t r, uint8_t g, uint8_t b) {
    int c = 0;
    for (int i = 0; i < n; i++) c += px[3 * i] == r && px[3 * i + 1] == g && px[3 * i + 2] == b;
    return c;
}

START_TEST(test_plot_png) {
    char path[300];
    snprintf(path, sizeof path, "%s/plot.png", tmp);
    double x[50], y1[50], y2[50];
    for (int i = 0; i < 50; i++) x[i] = i * 0.1, y1[i] = sin(x[i]), y2[i] = i == 20 ? NAN : cos(x[i]);
    em_series s[2] = {{"sin", x, y1, 50}, {"cos (with a gap)", x, y2, 50}};
    ck_assert_int_eq(em_plot_png(path, "waves", "t", "value", 2, s, 640, 480), 0);
    int w, h;
    uint8_t *px = read_png(path, PNG_FORMAT_RGB, &w, &h);
    ck_assert_int_eq(w, 640);
    ck_assert_int_eq(h, 480);
    ck_assert_int_eq(count_color(px, w * h, 255, 255, 255) > w * h / 2, 1); /* white background */
    ck_assert_int_gt(count_color(px, w * h, 31, 119, 180), 300);           /* first series' color */
    ck_assert_int_gt(count_color(px, w * h, 255, 127, 14), 300);           /* second series' color */
    ck_assert_int_gt(count_color(px, w * h, 30, 30, 30), 200);             /* text */
    free(px);
    /* degenerate inputs still plot: one point, a flat line, no data */
    double one = 3;
    ck_assert_int_eq(em_plot_png(path, NULL, NULL, NULL, 1, &(em_series){NULL, NULL, &one, 1}, 300, 200), 0);
    ck_assert_int_eq(em_plot_png(path, "empty", NULL, NULL, 0, NULL, 300, 200), 0);
    px = read_png(path, PNG_FORMAT_RGB, &w, &h);
    ck_assert_int_eq(w * 1000 + h, 300200);
    free(px);
    expect_fail(em_plot_png(path, "t", "x", "y", 2, s, 100, 100), "plot_png: size must be");
    expect_fail(em_plot_png(path, "t", "x", "y", 1, &(em_series){"bad", NULL, NULL, 3}, 640, 480), "plot_png: series 0 (bad)");
}
END_TEST

START_TEST(test_plot_image_grid) {
    char path[300];
    snprintf(path, sizeof path, "%s/grid.png", tmp);
    float t[5 * 6];
    for (int i = 0; i < 30; i++) t[i] = (float)(i % 6) * (i / 6 + 1) - 3; /* each tile spans its own range */
    ck_assert_int_eq(em_plot_image_grid(path, em_tensor_from(EM_F32, EM_SHAPE(5, 6), t), 2, 3, 2), 0);
    int w, h;
    uint8_t *px = read_png(path, PNG_FORMAT_GRAY, &w, &h);
    ck_assert_int_eq(w, 2 * 4 + 1); /* 2 columns of 3 pixels, 1-pixel gaps */
    ck_assert_int_eq(h, 3 * 3 + 1); /* 3 rows of 2 pixels */
    for (int tile = 0; tile < 5; tile++) {
        int ox = (tile % 2) * 4 + 1, oy = (tile / 2) * 3 + 1;
        ck_assert_int_eq(px[oy * w + ox], 0);           /* the tile's minimum */
        ck_assert_int_eq(px[(oy + 1) * w + ox + 2], 255); /* its maximum */
        ck_assert_int_eq(px[oy * w + ox + 1], 51);       /* 1/5 of the way */
    }
    ck_assert_int_eq(px[7 * w + 5], 255); /* no sixth tile: background */
    free(px);
    ck_assert_int_eq(em_plot_image_grid(path, em_zeros(EM_F64, EM_SHAPE(3, 2, 2)), 2, 2, 0), 0);
    expect_fail(em_plot_image_grid(path, em_zeros(EM_F32, EM_SHAPE(4, 7)), 2, 3, 2),
                "plot_image_grid: tiles must be [N,6] or [N,2,3] with N >= 1, got [4,7]");
}
END_TEST

int main(void) {
    Suite *s = suite_create("summary");
    TCase *tc = tcase_create("summary");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120); /* the first run may pip-install tensorboard */
    tcase_add_test(tc, test_crc32c_matches_bitwise);
    tcase_add_test(tc, test_event_file_read_by_tensorboard);
    tcase_add_test(tc, test_cut_file_reads_to_last_complete_record);
    tcase_add_test(tc, test_writes_are_buffered_until_flush);
    tcase_add_test(tc, test_failed_flush_is_retried_whole);
    tcase_add_test(tc, test_summary_errors);
    tcase_add_test(tc, test_graph_read_by_tensorboard);
    tcase_add_test(tc, test_write_png);
    tcase_add_test(tc, test_plot_png);
    tcase_add_test(tc, test_plot_image_grid);
    suite_add_tcase(s, tc);
    return em_test_run(s);
}
