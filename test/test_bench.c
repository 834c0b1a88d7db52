/* The benchmarking harness (em_bench_*) and the ember-bench tool. Timings are
 * never pass conditions: the tests check the statistics' order, the derived
 * rates' formulas, the stop rules' logic, config errors, and the tool's
 * parsing, FLOP counts, output formats and exit codes. */
#include "common.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* ---- the harness ---- */

typedef struct spin_ctx {
    int64_t iters; /* work per call */
    int64_t calls; /* calls seen */
} spin_ctx;

/* A fixed amount of work per call (the volatile keeps the loop). */
static void spin(void *ctx) {
    spin_ctx *s = ctx;
    volatile int64_t acc = 0;
    for (int64_t i = 0; i < s->iters; i++) acc += i;
    s->calls++;
}

static em_bench_config quick(void) {
    em_bench_config c = em_bench_defaults();
    c.min_time_s = 0.01;
    c.max_time_s = 0.1;
    c.warmup_s = 0.005;
    return c;
}

START_TEST(defaults_are_documented) {
    em_bench_config c = em_bench_defaults();
    ck_assert_double_eq(c.min_time_s, 0.1);
    ck_assert_double_eq(c.max_time_s, 1.0);
    ck_assert_int_eq(c.min_reps, 5);
    ck_assert_int_eq(c.max_reps, 10000);
    ck_assert_double_eq(c.target_rel_spread, 0.02);
    ck_assert_double_eq(c.warmup_s, 0.05);
    ck_assert_double_eq(c.min_sample_s, 50e-6);
    ck_assert(c.flops == 0 && c.bytes == 0 && c.peak_gflops == 0);
}
END_TEST

START_TEST(stats_are_ordered_and_rates_derived) {
    spin_ctx s = {.iters = 2000};
    em_bench_config c = quick();
    c.flops = 2000;
    c.bytes = 16000;
    c.peak_gflops = 10;
    em_bench_result r;
    ck_assert_int_eq(em_bench_run("spin", spin, &s, &c, &r), 0);
    ck_assert_str_eq(r.name, "spin");
    ck_assert_str_eq(r.device, "/cpu:0");
    ck_assert_int_eq(r.threads, em_num_threads());
    ck_assert_int_ge(r.samples, 1);
    ck_assert_int_ge(r.calls_per_sample, 1);
    ck_assert_int_eq(r.calls, (int64_t)r.samples * r.calls_per_sample);
    ck_assert_int_ge(r.warmup_calls, 1);
    ck_assert_int_eq(s.calls, r.warmup_calls + r.calls); /* every call is accounted for */
    ck_assert(r.min_s > 0);
    ck_assert(r.min_s <= r.p25_s && r.p25_s <= r.median_s && r.median_s <= r.p75_s && r.p75_s <= r.max_s);
    ck_assert(r.min_s <= r.mean_s && r.mean_s <= r.max_s);
    ck_assert_double_eq_tol(r.rel_spread, (r.p75_s - r.p25_s) / r.median_s, 1e-12);
    ck_assert(r.converged == (r.rel_spread <= c.target_rel_spread));
    ck_assert_double_eq_tol(r.gflops, 2000 / r.median_s / 1e9, 1e-9 * r.gflops);
    ck_assert_double_eq_tol(r.gbps, 16000 / r.median_s / 1e9, 1e-9 * r.gbps);
    ck_assert_double_eq_tol(r.pct_peak, 100 * r.gflops / 10, 1e-9 * r.pct_peak);
    ck_assert(r.flops == 2000 && r.bytes == 16000 && r.peak_gflops == 10);
    em_shutdown();
}
END_TEST

START_TEST(unknown_work_gives_no_rates) {
    spin_ctx s = {.iters = 100};
    em_bench_config c = quick();
    em_bench_result r;
    ck_assert_int_eq(em_bench_run(NULL, spin, &s, &c, &r), 0);
    ck_assert_str_eq(r.name, "");
    ck_assert(r.gflops == 0 && r.gbps == 0 && r.pct_peak == 0);
    char line[256];
    em_bench_format(&r, line, sizeof line);
    ck_assert_ptr_null(strstr(line, "GFLOP/s"));
    ck_assert_ptr_null(strstr(line, "GB/s"));
    ck_assert_ptr_nonnull(strstr(line, "median"));
    em_shutdown();
}
END_TEST

START_TEST(max_reps_caps_samples) {
    spin_ctx s = {.iters = 100};
    em_bench_config c = quick();
    c.max_time_s = 60;
    c.min_reps = c.max_reps = 7;
    c.target_rel_spread = 0; /* never satisfied early */
    em_bench_result r;
    ck_assert_int_eq(em_bench_run("capped", spin, &s, &c, &r), 0);
    ck_assert_int_eq(r.samples, 7);
    em_shutdown();
}
END_TEST

START_TEST(time_budget_ends_sampling) {
    spin_ctx s = {.iters = 20000};
    em_bench_config c = quick();
    c.min_time_s = 0;
    c.max_time_s = 0.05;
    c.min_reps = c.max_reps = 100000000; /* only the time budget can end it */
    em_bench_result r;
    ck_assert_int_eq(em_bench_run("budget", spin, &s, &c, &r), 0);
    /* Far below min_reps, so sampling stopped on the time budget. */
    ck_assert_int_lt(r.samples, c.max_reps);
    ck_assert(r.sample_time_s >= c.max_time_s);
    em_shutdown();
}
END_TEST

START_TEST(min_reps_and_min_time_are_honoured) {
    spin_ctx s = {.iters = 100};
    em_bench_config c = quick();
    c.min_time_s = 0;
    c.max_time_s = 60;
    c.min_reps = 30;
    c.target_rel_spread = 1e9; /* satisfied as soon as allowed */
    em_bench_result r;
    ck_assert_int_eq(em_bench_run("reps", spin, &s, &c, &r), 0);
    ck_assert_int_eq(r.samples, 30);
    ck_assert(r.converged);

    c.min_reps = 1;
    c.min_time_s = 0.03;
    ck_assert_int_eq(em_bench_run("time", spin, &s, &c, &r), 0);
    ck_assert(r.sample_time_s >= 0.03);
    em_shutdown();
}
END_TEST

static void add_op(void *ctx) {
    em_tensor **ab = ctx;
    em_scope_begin();
    em_add(ab[0], ab[1]);
    em_scope_end();
}

START_TEST(times_an_ember_op_without_leaking) {
    em_tensor *ab[2] = {em_keep(em_ones(EM_F32, EM_SHAPE(1000))), em_keep(em_ones(EM_F32, EM_SHAPE(1000)))};
    int64_t live = em_live_tensors();
    em_bench_config c = quick();
    c.flops = 1000;
    c.bytes = 3 * 1000 * 4;
    em_bench_result r;
    ck_assert_int_eq(em_bench_run("add", add_op, ab, &c, &r), 0);
    ck_assert_int_eq(em_live_tensors(), live);
    char line[256];
    int len = em_bench_format(&r, line, sizeof line);
    ck_assert_int_eq(len, (int)strlen(line));
    ck_assert_ptr_nonnull(strstr(line, "add: median"));
    ck_assert_ptr_nonnull(strstr(line, "GFLOP/s"));
    ck_assert_ptr_nonnull(strstr(line, "GB/s"));
    ck_assert_ptr_null(strstr(line, "of peak"));
    em_release(ab[0]);
    em_release(ab[1]);
    em_shutdown();
}
END_TEST

START_TEST(format_truncates_like_snprintf) {
    em_bench_result r = {.name = "x", .samples = 3, .calls_per_sample = 2, .median_s = 1e-3, .min_s = 1e-3,
                         .max_s = 2e-3, .flops = 1e6, .gflops = 1, .peak_gflops = 10, .pct_peak = 10};
    char full[256], small[10];
    int len = em_bench_format(&r, full, sizeof full);
    ck_assert_str_eq(full, "x: median 1.000 ms (min 1.000 ms, max 2.000 ms, 3 samples x 2 calls, spread 0.0%), "
                           "1.00 GFLOP/s, 10.0% of peak");
    ck_assert_int_eq(em_bench_format(&r, small, sizeof small), len);
    ck_assert_str_eq(small, "x: median");
}
END_TEST

#define ck_assert_fails(call, needle) em_test_assert_error((call) == -1, (needle), __FILE__, __LINE__)

START_TEST(config_errors_name_the_field) {
    spin_ctx s = {.iters = 10};
    em_bench_result r;
    em_bench_config c = quick();
    ck_assert_fails(em_bench_run("x", NULL, &s, &c, &r), "bench: the function to time is NULL");
    ck_assert_fails(em_bench_run("x", spin, &s, &c, NULL), "bench: the result pointer is NULL");
#define BAD(field, value, needle)                                  \
    do {                                                           \
        c = quick();                                               \
        c.field = value;                                           \
        ck_assert_fails(em_bench_run("x", spin, &s, &c, &r), needle); \
    } while (0)
    BAD(min_time_s, 0.5, "bench: config min_time_s (0.5) is larger than max_time_s (0.1)");
    BAD(max_time_s, -1, "bench: config max_time_s must be a finite number >= 0, got -1");
    BAD(warmup_s, -0.1, "warmup_s");
    BAD(target_rel_spread, NAN, "target_rel_spread");
    BAD(min_sample_s, 0, "min_sample_s must be > 0");
    BAD(flops, -5, "flops");
    BAD(bytes, INFINITY, "bytes");
    BAD(peak_gflops, -1, "peak_gflops");
    BAD(max_reps, 0, "max_reps >= 1, got min_reps 5, max_reps 0");
    BAD(min_reps, 20000, "min_reps <= max_reps");
#undef BAD
    ck_assert_int_eq(s.calls, 0); /* nothing ran */
    em_shutdown();
}
END_TEST

START_TEST(peak_estimate) {
    ck_assert(em_bench_cpu_peak_gflops(EM_F32, 1) > 0);
    ck_assert(em_bench_cpu_peak_gflops(EM_F64, 0) > 0);
    em_test_assert_error(em_bench_cpu_peak_gflops(EM_I32, 1) == -1, "bench: peak estimate needs float32 or float64",
                         __FILE__, __LINE__);
    em_shutdown();
}
END_TEST

/* ---- the ember-bench tool, run as a program ---- */

/* Runs `ember-bench args` with stderr joined to stdout (or dropped) into
 * out; returns the exit status. */
static int cli(const char *args, bool with_stderr, char *out, size_t size) {
    const char *build = getenv("EMBER_BUILD");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s/ember-bench %s %s", build && *build ? build : "build", args,
             with_stderr ? "2>&1" : "2>/dev/null");
    FILE *p = popen(cmd, "r");
    ck_assert_msg(p != NULL, "cannot run %s", cmd);
    size_t n = fread(out, 1, size - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) != 127, "%s did not run (build it: make ember-bench)", cmd);
    return WEXITSTATUS(st);
}

/* A minimal JSON reader for one flat object of strings, numbers, booleans, null. */
static const char *json_ws(const char *p) {
    while (*p == ' ' || *p == '\t') p++;
    return p;
}
static const char *json_string(const char *p) {
    if (*p++ != '"') return NULL;
    while (*p && *p != '"') p += *p == '\\' && p[1] ? 2 : 1;
    return *p == '"' ? p + 1 : NULL;
}
static const char *json_value(const char *p) {
    if (*p == '"') return json_string(p);
    for (const char *w = "true\0false\0null\0"; *w; w += strlen(w) + 1)
        if (!strncmp(p, w, strlen(w))) return p + strlen(w);
    if (*p != '-' && (*p < '0' || *p > '9')) return NULL;
    char *end;
    strtod(p, &end);
    return end > p ? end : NULL;
}
static bool json_object_ok(const char *line) {
    const char *p = json_ws(line);
    if (*p++ != '{') return false;
    for (bool first = true;; first = false) {
        p = json_ws(p);
        if (*p == '}') return first ? true : false;
        if (!first && *p++ != ',') return false;
        if (!(p = json_string(json_ws(p)))) return false;
        p = json_ws(p);
        if (*p++ != ':') return false;
        if (!(p = json_value(json_ws(p)))) return false;
        p = json_ws(p);
        if (*p == '}') return *json_ws(p + 1) == '\0';
    }
}

/* Splits out into lines (in place); returns their count. */
static int lines(char *out, char **line, int cap) {
    int n = 0;
    for (char *s = strtok(out, "\n"); s && n < cap; s = strtok(NULL, "\n")) line[n++] = s;
    return n;
}

static void assert_json_rows(char **line, int n) {
    static const char *const keys[] = {"op", "shape", "dtype", "threads", "pass", "device", "samples", "calls",
                                       "min_us", "median_us", "max_us", "mean_us", "flops", "bytes", "gflops",
                                       "gbps", "peak_gflops", "pct_peak"};
    for (int i = 0; i < n; i++) {
        ck_assert_msg(json_object_ok(line[i]), "not a JSON object: %s", line[i]);
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
            char key[32];
            snprintf(key, sizeof key, "\"%s\":", keys[k]);
            ck_assert_msg(strstr(line[i], key), "no %s in %s", key, line[i]);
        }
    }
}

START_TEST(json_validator_self_check) {
    ck_assert(json_object_ok("{\"a\":1,\"b\":\"x\",\"c\":null,\"d\":true,\"e\":-1.5e3}"));
    ck_assert(json_object_ok("{}"));
    ck_assert(!json_object_ok("{\"a\":1,}"));
    ck_assert(!json_object_ok("{\"a\" 1}"));
    ck_assert(!json_object_ok("{\"a\":nan}"));
    ck_assert(!json_object_ok("{\"a\":1} x"));
}
END_TEST

START_TEST(cli_matmul_json_rows) {
    char out[8192], *line[16];
    ck_assert_int_eq(cli("matmul 16,8x4x2 --time 0.02 --json --threads 1 --peak 100", false, out, sizeof out), 0);
    int n = lines(out, line, 16);
    ck_assert_int_eq(n, 2);
    assert_json_rows(line, n);
    ck_assert_ptr_nonnull(strstr(line[0], "\"op\":\"matmul\",\"shape\":\"16x16x16\",\"dtype\":\"f32\",\"threads\":1,"
                                          "\"pass\":\"forward\""));
    ck_assert_ptr_nonnull(strstr(line[0], "\"flops\":8192,\"bytes\":3072")); /* 2*16^3; 3*256*4 */
    ck_assert_ptr_nonnull(strstr(line[0], "\"peak_gflops\":100.0000"));
    /* [8,2] x [2,4]: 2*8*4*2 FLOPs; (16 + 8 + 32) * 4 bytes */
    ck_assert_ptr_nonnull(strstr(line[1], "\"shape\":\"8x4x2\""));
    ck_assert_ptr_nonnull(strstr(line[1], "\"flops\":128,\"bytes\":224"));
}
END_TEST

START_TEST(cli_backward_rows) {
    char out[8192], *line[16];
    ck_assert_int_eq(cli("add 8 --backward --time 0.02 --json --dtype f64 --peak 0", false, out, sizeof out), 0);
    int n = lines(out, line, 16);
    ck_assert_int_eq(n, 2);
    assert_json_rows(line, n);
    ck_assert_ptr_nonnull(strstr(line[0], "\"dtype\":\"f64\""));
    ck_assert_ptr_nonnull(strstr(line[0], "\"pass\":\"forward\""));
    ck_assert_ptr_nonnull(strstr(line[0], "\"flops\":8,\"bytes\":192")); /* 3 * 8 * 8 bytes */
    ck_assert_ptr_nonnull(strstr(line[0], "\"pct_peak\":null"));        /* --peak 0: unknown */
    ck_assert_ptr_nonnull(strstr(line[1], "\"pass\":\"forward+backward\""));
    ck_assert_ptr_nonnull(strstr(line[1], "\"gflops\":null"));

    ck_assert_int_eq(cli("matmul 4 --backward --time 0.02 --json --peak 0", false, out, sizeof out), 0);
    n = lines(out, line, 16);
    ck_assert_int_eq(n, 2);
    ck_assert_ptr_nonnull(strstr(line[1], "\"flops\":384,")); /* forward 128 plus two gradient products */
}
END_TEST

START_TEST(cli_conv_pool_reduce_counts) {
    char out[8192], *line[16];
    /* VALID 5x5 with a 3x3 filter: 3x3 outputs, 2*1*3*3 * 3*3*2*4 FLOPs. */
    ck_assert_int_eq(cli("conv2d 1x5x5x2,3x3x2x4 --padding valid --time 0.02 --json --peak 0", false, out, sizeof out), 0);
    ck_assert_int_eq(lines(out, line, 16), 1);
    assert_json_rows(line, 1);
    ck_assert_ptr_nonnull(strstr(line[0], "\"shape\":\"1x5x5x2,3x3x2x4\""));
    ck_assert_ptr_nonnull(strstr(line[0], "\"flops\":1296,"));
    /* Stride 2 gives 2x2 outputs; two conv sizes give two rows. */
    ck_assert_int_eq(cli("conv2d 1x5x5x2,3x3x2x4,1x6x6x1,1x1x1x1 --stride 2 --padding valid --time 0.02 --json --peak 0",
                         false, out, sizeof out), 0);
    ck_assert_int_eq(lines(out, line, 16), 2);
    ck_assert_ptr_nonnull(strstr(line[0], "\"flops\":576,"));
    ck_assert_ptr_nonnull(strstr(line[1], "\"flops\":18,")); /* 3x3 outputs, 1x1 filter */
    /* max_pool 2x2 windows tile a 4x4 input: 4 windows of 4 taps, 3 channels. */
    ck_assert_int_eq(cli("max_pool 2x4x4x3 --time 0.02 --json --peak 0", false, out, sizeof out), 0);
    ck_assert_int_eq(lines(out, line, 16), 1);
    ck_assert_ptr_nonnull(strstr(line[0], "\"flops\":96,\"bytes\":480")); /* (96 + 24) * 4 */
    /* sum over axis 1 of [4,6]: 24 adds, reads 24 and writes 4 floats. */
    ck_assert_int_eq(cli("sum 4x6 --axis 1 --time 0.02 --json --peak 0", false, out, sizeof out), 0);
    ck_assert_int_eq(lines(out, line, 16), 1);
    ck_assert_ptr_nonnull(strstr(line[0], "\"flops\":24,\"bytes\":112"));
}
END_TEST

START_TEST(cli_mlp_passes) {
    char out[8192], *line[16];
    ck_assert_int_eq(cli("mlp 10 --backward --time 0.02 --json --peak 0", false, out, sizeof out), 0);
    int n = lines(out, line, 16);
    ck_assert_int_eq(n, 3);
    assert_json_rows(line, n);
    ck_assert_ptr_nonnull(strstr(line[0], "\"shape\":\"10x784-500-10\""));
    ck_assert_ptr_nonnull(strstr(line[0], "\"pass\":\"forward\""));
    ck_assert_ptr_nonnull(strstr(line[0], "\"flops\":7940000,")); /* 2*10*(784*500 + 500*10) */
    ck_assert_ptr_nonnull(strstr(line[1], "\"pass\":\"forward+backward\""));
    ck_assert_ptr_nonnull(strstr(line[1], "\"flops\":15980000,")); /* + 2*10*(784*500 + 2*500*10) */
    ck_assert_ptr_nonnull(strstr(line[2], "\"pass\":\"step\""));
}
END_TEST

START_TEST(cli_table_and_png) {
    char out[8192];
    const char *png = "test_bench_plot.png";
    remove(png);
    char args[256];
    snprintf(args, sizeof args, "relu 16,64 --time 0.02 --threads 1 --png %s --peak 5", png);
    ck_assert_int_eq(cli(args, false, out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "peak 5.0 GFLOP/s (given)"));
    ck_assert_ptr_nonnull(strstr(out, "median(us)"));
    ck_assert_ptr_nonnull(strstr(out, "\nrelu         16 "));
    ck_assert_ptr_nonnull(strstr(out, "\nrelu         64 "));
    FILE *f = fopen(png, "rb");
    ck_assert_ptr_nonnull(f);
    unsigned char sig[8] = {0};
    ck_assert_int_eq((int)fread(sig, 1, 8, f), 8);
    fclose(f);
    ck_assert_mem_eq(sig, "\x89PNG\r\n\x1a\n", 8);
    remove(png);
    ck_assert_int_eq(cli("--help", false, out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "usage: ember-bench"));
    ck_assert_ptr_nonnull(strstr(out, " conv2d "));
}
END_TEST

/* Exit status and the start of the message for each bad command line. */
START_TEST(cli_errors) {
    static const struct {
        const char *args;
        int status;
        const char *needle;
    } cases[] = {
        {"", 2, "no op given; ops: add"},
        {"frobnicate 12", 2, "unknown op 'frobnicate'"},
        {"matmul", 2, "matmul needs at least one size"},
        {"matmul 12xa", 2, "malformed size '12xa'"},
        {"matmul 1,,2", 2, "malformed size ''"},
        {"relu 0", 2, "malformed size '0'"},
        {"matmul 12x3", 2, "matmul sizes are N (square) or MxNxK"},
        {"conv2d 1x8x8x3", 2, "conv2d sizes come in pairs"},
        {"max_pool 8x8", 2, "max_pool shapes have 4 dims"},
        {"mlp 10x10", 2, "mlp sizes are batch sizes"},
        {"matmul 8 --dtype f16", 2, "--dtype must be f32 or f64, got 'f16'"},
        {"matmul 8 --threads 0", 2, "--threads must be 1..4096"},
        {"matmul 8 --time 0", 2, "--time must be seconds"},
        {"matmul 8 --time", 2, "--time needs a value"},
        {"matmul 8 --peak x", 2, "--peak must be GFLOP/s"},
        {"matmul 8 --axis 1", 2, "--axis applies to reductions and softmax"},
        {"softmax 8 --axis all", 2, "softmax needs one axis"},
        {"relu 8 --stride 2", 2, "--stride and --padding apply to conv2d and pools"},
        {"relu 8 --padding full", 2, "--padding must be same or valid"},
        {"max_pool 1x4x4x1 --ksize 2x2x2", 2, "--ksize must be K or KHxKW"},
        {"matmul 8 --json=yes", 2, "--json takes no value"},
        {"matmul 8 --fast", 2, "unknown option '--fast'"},
        {"conv2d 1x8x8x3,3x3x4x8 --time 0.02 --peak 0", 1, "conv2d 1x8x8x3,3x3x4x8: conv2d:"},
        {"sum 4x4 --axis 5 --time 0.02 --peak 0", 1, "sum 4x4: sum:"},
        {"relu 4 --time 0.02 --peak 0 --png /nonexistent-dir/plot.png", 1, "--png /nonexistent-dir/plot.png:"},
    };
    char out[8192];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int st = cli(cases[i].args, true, out, sizeof out);
        ck_assert_msg(st == cases[i].status, "'%s' exited %d, not %d: %s", cases[i].args, st, cases[i].status, out);
        char want[160];
        snprintf(want, sizeof want, "ember-bench: %s", cases[i].needle);
        ck_assert_msg(strstr(out, want), "'%s' said: %s", cases[i].args, out);
        if (cases[i].status == 2) ck_assert_msg(strstr(out, "\nusage: ember-bench OP SIZES"), "no usage line: %s", out);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("bench");
    TCase *h = tcase_create("harness");
    tcase_set_timeout(h, 30);
    tcase_add_test(h, defaults_are_documented);
    tcase_add_test(h, stats_are_ordered_and_rates_derived);
    tcase_add_test(h, unknown_work_gives_no_rates);
    tcase_add_test(h, max_reps_caps_samples);
    tcase_add_test(h, time_budget_ends_sampling);
    tcase_add_test(h, min_reps_and_min_time_are_honoured);
    tcase_add_test(h, times_an_ember_op_without_leaking);
    tcase_add_test(h, format_truncates_like_snprintf);
    tcase_add_test(h, config_errors_name_the_field);
    tcase_add_test(h, peak_estimate);
    suite_add_tcase(s, h);
    TCase *c = tcase_create("cli");
    tcase_set_timeout(c, 60);
    tcase_add_test(c, json_validator_self_check);
    tcase_add_test(c, cli_matmul_json_rows);
    tcase_add_test(c, cli_backward_rows);
    tcase_add_test(c, cli_conv_pool_reduce_counts);
    tcase_add_test(c, cli_mlp_passes);
    tcase_add_test(c, cli_table_and_png);
    tcase_add_test(c, cli_errors);
    suite_add_tcase(s, c);
    return em_test_run(s);
}
