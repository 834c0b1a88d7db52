#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

void em_test_assert_tensor(em_tensor *t, em_dtype dtype, em_shape shape, const double *expect, double tol,
                           const char *file, int line) {
    char b1[160], b2[160];
    if (!t) ck_abort_msg("%s:%d: tensor is NULL: %s", file, line, em_last_error() ? em_last_error() : "(no error)");
    ck_assert_msg(em_tensor_dtype(t) == dtype, "%s:%d: dtype %s, expected %s", file, line,
                  em_dtype_name(em_tensor_dtype(t)), em_dtype_name(dtype));
    ck_assert_msg(em_shape_equal(em_tensor_shape(t), shape), "%s:%d: shape %s, expected %s", file, line,
                  em_shape_str(em_tensor_shape(t), b1, sizeof b1), em_shape_str(shape, b2, sizeof b2));
    int64_t n = em_numel(t);
    int64_t index[EM_MAX_DIMS] = {0};
    for (int64_t i = 0; i < n; i++) {
        int64_t r = i;
        for (int d = shape.ndim - 1; d >= 0; d--) {
            index[d] = r % shape.dims[d];
            r /= shape.dims[d];
        }
        double a = em_get(t, index), e = expect[i];
        if (isnan(e)) {
            ck_assert_msg(isnan(a), "%s:%d: element %lld is %g, expected nan", file, line, (long long)i, a);
            continue;
        }
        double scale = fabs(e) > 1 ? fabs(e) : 1;
        ck_assert_msg(fabs(a - e) <= tol * scale || a == e, "%s:%d: element %lld is %.10g, expected %.10g", file, line,
                      (long long)i, a, e);
    }
}

void em_test_assert_error(int failed, const char *needle, const char *file, int line) {
    const char *e = em_last_error();
    ck_assert_msg(failed, "%s:%d: call succeeded, expected an error containing \"%s\"", file, line, needle);
    ck_assert_msg(e != NULL, "%s:%d: call failed without an error message", file, line);
    ck_assert_msg(strstr(e, needle) != NULL, "%s:%d: error \"%s\" does not contain \"%s\"", file, line, e, needle);
    em_clear_error();
}

em_tensor *em_test_uniform(em_shape shape, double lo, double hi, uint64_t seed) {
    int64_t n = em_shape_numel(shape);
    double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
    uint64_t s = seed * 0x9E3779B97F4A7C15ULL + 1;
    for (int64_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        v[i] = lo + (hi - lo) * (double)(s >> 11) / 9007199254740992.0;
    }
    em_tensor *t = em_tensor_from(EM_F64, shape, v);
    free(v);
    return t;
}

void em_test_tmpdir(const char *name, char *dir, size_t size) {
    snprintf(dir, size, "/tmp/ember_%s_XXXXXX", name);
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

const char *em_test_path(const char *dir, const char *name) {
    static char p[8][320];
    static int k;
    k = (k + 1) % 8;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

void em_test_tmpdir_remove(const char *dir) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

int em_test_run(Suite *s) {
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

bool em_test_gpu_present(char *why, size_t n) {
    int fds[2];
    snprintf(why, n, "could not ask a child process");
    if (pipe(fds)) return false;
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        int present = em_device_begin("/gpu:0") == 0;
        const char *msg = present ? "" : em_last_error();
        if (msg && write(fds[1], msg, strlen(msg)) < 0) _exit(2);
        _exit(present ? 0 : 1);
    }
    close(fds[1]);
    ssize_t got = pid > 0 ? read(fds[0], why, n - 1) : -1;
    close(fds[0]);
    if (got >= 0) why[got] = 0;
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid) return false;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

double em_test_max_rel_diff(em_tensor *a, em_tensor *b) {
    if (em_numel(a) != em_numel(b)) return INFINITY;
    em_scope_begin();
    const double *x = em_data(em_cast(em_to_device(a, "/cpu:0"), EM_F64));
    const double *y = em_data(em_cast(em_to_device(b, "/cpu:0"), EM_F64));
    double worst = x && y ? 0 : INFINITY;
    for (int64_t i = 0; x && y && i < em_numel(a); i++) {
        if (x[i] == y[i] || (isnan(x[i]) && isnan(y[i]))) continue; /* equal infinities, NaN for NaN */
        double d = fabs(x[i] - y[i]) / fmax(1, fabs(y[i]));
        if (!(d <= worst)) worst = d; /* NaN (a NaN against a number, opposite infinities) counts as worst */
    }
    em_scope_end();
    return worst;
}

const em_test_family em_test_families[] = {
#define EM_FAMILY(family) {#family, gc_cases_##family, fw_cases_##family},
#define EM_OP(...)
#include "ops/ops.def"
#undef EM_OP
#undef EM_FAMILY
    {NULL, NULL, NULL},
};

/* v to p significant bits, exponents down to emin (subnormals below), largest finite maxv. */
static double round_to_format(double v, int p, int emin, double maxv) {
    if (isnan(v) || isinf(v) || v == 0) return v;
    int e;
    frexp(fabs(v), &e); /* |v| = m 2^e, m in [0.5, 1) */
    int exp = e - 1 < emin ? emin : e - 1;
    double ulp = ldexp(1, exp - (p - 1));
    double r = nearbyint(fabs(v) / ulp) * ulp; /* the division by a power of two is exact */
    return copysign(r > maxv ? INFINITY : r, v);
}
double em_test_round_bf16(double v) { return round_to_format(v, 8, -126, ldexp(255, 120)); }
double em_test_round_f16(double v) { return round_to_format(v, 11, -14, 65504); }

/* A rounded value's fields: sign, biased exponent (0 subnormal) and stored significand bits. */
static uint16_t format_bits(double r, int p, int emin, int ebits) {
    const uint16_t sign = signbit(r) ? (uint16_t)(1u << 15) : 0, emax_field = (uint16_t)((1u << ebits) - 1);
    if (isnan(r)) return (uint16_t)((emax_field << (p - 1)) | (1u << (p - 2)));
    if (isinf(r)) return (uint16_t)(sign | (emax_field << (p - 1)));
    if (r == 0) return sign;
    int e;
    double m = frexp(fabs(r), &e); /* [0.5, 1) */
    int exp = e - 1;
    if (exp < emin) return (uint16_t)(sign | (uint16_t)ldexp(fabs(r), -(emin - (p - 1)))); /* subnormal */
    uint16_t field = (uint16_t)(exp - emin + 1), frac = (uint16_t)(ldexp(m, p) - ldexp(1, p - 1));
    return (uint16_t)(sign | (field << (p - 1)) | frac);
}
uint16_t em_test_bf16_bits(double rounded) { return format_bits(rounded, 8, -126, 8); }
uint16_t em_test_f16_bits(double rounded) { return format_bits(rounded, 11, -14, 5); }

static double format_value(uint16_t bits, int p, int emin, int ebits) {
    const int field = (bits >> (p - 1)) & ((1 << ebits) - 1), frac = bits & ((1 << (p - 1)) - 1);
    const double s = bits >> 15 ? -1 : 1;
    if (field == (1 << ebits) - 1) return frac ? NAN : s * INFINITY;
    if (field == 0) return s * ldexp(frac, emin - (p - 1));
    return s * ldexp(1 + ldexp(frac, -(p - 1)), field - 1 + emin);
}
double em_test_bf16_value(uint16_t bits) { return format_value(bits, 8, -126, 8); }
double em_test_f16_value(uint16_t bits) { return format_value(bits, 11, -14, 5); }

double fw_held(const fw_input *in, int64_t i) {
    double v = in->v[i];
    switch (in->dtype) {
    case EM_BF16: return em_test_round_bf16(v);
    case EM_F16: return em_test_round_f16(v);
    case EM_F32: return (float)v;
    case EM_I32: return (int32_t)v;
    case EM_I64: return (double)(int64_t)v;
    case EM_U8: return (uint8_t)v;
    case EM_I8: return (int8_t)v;
    case EM_I16: return (int16_t)v;
    case EM_U16: return (uint16_t)v;
    case EM_BOOL: return v != 0;
    default: return v;
    }
}

double *fw_load(const fw_case *c, int k, em_shape s) {
    int64_t n = em_shape_numel(s);
    double *v = calloc((size_t)(n ? n : 1), sizeof(double));
    ck_assert_ptr_nonnull(v);
    for (int64_t i = 0; k >= 0 && i < n; i++) v[i] = fw_held_in(c, k, i);
    return v;
}

void fw_out_dim(int64_t in, int64_t k, int s, int d, em_padding pad, int64_t *out, int64_t *before) {
    int64_t ek = (k - 1) * d + 1;
    if (pad == EM_PAD_SAME) {
        *out = (in + s - 1) / s;
        int64_t total = (*out - 1) * s + ek - in;
        *before = total > 0 ? total / 2 : 0;
    } else {
        *out = (in - ek) / s + 1;
        *before = 0;
    }
}

const double fw_ints_a[64] = {-2, -3, 0,  -3, 3,  3, 3, 2,  -1, -3, 3, -4, 2,  2,  -4, 3,  0, -1, -3, 1, -4, -4,
                              -4, 4,  -4, 2,  -1, 2, -4, 4, -1, 3,  3, 4,  -1, 1,  -1, -1, 3, 0,  -4, 2, 4,  -3,
                              -2, 0,  -3, 1,  4,  2, 4,  -1, 0, 0,  3, 4,  2,  -4, 3,  -1, 2, 2,  -2, 1};
const double fw_ints_b[64] = {-4, -3, -3, 1,  -2, 0,  0,  -1, -4, -2, 2,  2,  4, 1, 4, 3,  4,  0, -4, -4, 1, 3,
                              1,  2,  2,  4,  -2, 4,  -2, -1, -1, -4, -2, 1,  -2, -2, 4, 4, 1, 4,  4,  -2, 3, 2,
                              4,  1,  1,  1,  3,  -2, 2,  3,  4,  -1, 3,  0,  3,  4, 4, 1, 3,  3,  1,  4};
