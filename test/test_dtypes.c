/* bfloat16 and float16 conversions, through em_cast's kernels (the vectorized CPU rows, and the GPU's when
 * there is one), against the test's own rounding in double arithmetic (test/common.c):
 * - widening is exact for all 65,536 bit patterns of each, NaNs staying NaN with their sign;
 * - narrowing from float32 rounds to nearest even on a sweep of every narrow value, the ties halfway to its
 *   neighbour and the float32 values either side of each tie, the subnormals, and a million random float32
 *   bit patterns (NaNs and infinities among them); Inf stays Inf, NaN stays NaN (quieted), subnormals stay;
 * - narrowing from float64 rounds once (no double rounding through float32);
 * - a fill (em_fill, the scalar path) agrees with the kernels. */
#include "common.h"

#include <stdlib.h>
#include <string.h>

static void teardown(void) { em_shutdown(); }

static const char *devices[2] = {"/cpu:0", "/gpu:0"};

static int ndevices(void) {
    static int n; /* asked once: the probe forks a process that loads the CUDA plug-in */
    char why[256];
    if (!n) n = em_test_gpu_present(why, sizeof why) ? 2 : 1;
    return n;
}

typedef struct narrow_format {
    em_dtype dtype;
    double (*round)(double);
    uint16_t (*bits)(double);
    double (*value)(uint16_t);
} narrow_format;

static const narrow_format formats[2] = {
    {EM_BF16, em_test_round_bf16, em_test_bf16_bits, em_test_bf16_value},
    {EM_F16, em_test_round_f16, em_test_f16_bits, em_test_f16_value},
};

/* x (host) cast to dtype on dev, brought back to the host. */
static em_tensor *cast_on(em_tensor *x, em_dtype dtype, const char *dev) {
    em_tensor *y = em_to_device(em_cast(em_to_device(x, dev), dtype), "/cpu:0");
    ck_assert_msg(y != NULL, "cast to %s on %s: %s", em_dtype_name(dtype), dev, em_last_error());
    return y;
}

START_TEST(test_widening_is_exact_for_every_pattern) {
    uint16_t *bits = malloc(65536 * sizeof *bits);
    for (uint32_t i = 0; i < 65536; i++) bits[i] = (uint16_t)i;
    for (int d = 0; d < ndevices(); d++)
        for (int k = 0; k < 2; k++) {
            const narrow_format *f = &formats[k];
            em_scope_begin();
            em_tensor *x = em_tensor_from(f->dtype, EM_SHAPE(65536), bits);
            const float *w32 = em_data(cast_on(x, EM_F32, devices[d]));
            const double *w64 = em_data(cast_on(x, EM_F64, devices[d]));
            for (uint32_t i = 0; i < 65536; i++) {
                double want = f->value((uint16_t)i);
                /* ck_abort_msg only on failure: each passing ck_assert costs a write to Check's pipe */
                if (isnan(want)) {
                    if (!(isnan(w32[i]) && isnan(w64[i]) && !signbit(w32[i]) == !(i >> 15)))
                        ck_abort_msg("%s 0x%04x on %s: a NaN must stay a NaN of its sign", em_dtype_name(f->dtype), i,
                                     devices[d]);
                    continue;
                }
                if (!(w32[i] == want && w64[i] == want && !signbit(w32[i]) == !signbit(want)))
                    ck_abort_msg("%s 0x%04x on %s: %.9g / %.17g, expected %.17g", em_dtype_name(f->dtype), i,
                                 devices[d], (double)w32[i], w64[i], want);
            }
            em_scope_end();
        }
    free(bits);
}
END_TEST

static float f32_of(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Appends v and its float32 neighbours. */
static int64_t with_neighbours(float *out, int64_t n, float v) {
    out[n++] = v;
    out[n++] = nextafterf(v, INFINITY);
    out[n++] = nextafterf(v, -INFINITY);
    return n;
}

/* Checks narrowed[i] (bits) against the test's rounding of src[i]. */
static void check_narrowed(const narrow_format *f, const char *dev, const char *from, const double *src,
                           const uint16_t *narrowed, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint16_t got = narrowed[i];
        if (isnan(src[i])) {
            if (!(isnan(f->value(got)) && !(got >> 15) == !signbit(src[i])))
                ck_abort_msg("%s from %s on %s: NaN gave 0x%04x", em_dtype_name(f->dtype), from, dev, got);
            continue;
        }
        uint16_t want = f->bits(f->round(src[i]));
        if (got != want)
            ck_abort_msg("%s from %s on %s: %.17g gave 0x%04x (%.9g), expected 0x%04x (%.9g)", em_dtype_name(f->dtype),
                         from, dev, src[i], got, f->value(got), want, f->value(want));
    }
}

START_TEST(test_narrowing_rounds_to_nearest_even) {
    enum { RANDOM = 1000000 };
    const int64_t cap = 65536 * 9 + 4 * 65536 + RANDOM;
    float *v = malloc(sizeof(float) * (size_t)cap);
    double *src = malloc(sizeof(double) * (size_t)cap);
    for (int d = 0; d < ndevices(); d++)
        for (int k = 0; k < 2; k++) {
            const narrow_format *f = &formats[k];
            int64_t n = 0;
            for (uint32_t i = 0; i < 65536; i++) {
                double a = f->value((uint16_t)i), b = f->value((uint16_t)(i + 1));
                if (isnan(a) || isinf(a)) continue;
                n = with_neighbours(v, n, (float)a);
                /* halfway to the next pattern (of larger magnitude, or Inf): a tie, exact in float32 */
                if ((i & 0x7fff) != 0x7fff && !isnan(b)) {
                    double mid = isinf(b) ? a + (a - f->value((uint16_t)(i - 1))) / 2 : (a + b) / 2;
                    n = with_neighbours(v, n, (float)mid);
                }
            }
            /* float32's subnormals and the bottom of its normals: float16's underflow and bfloat16's subnormals */
            for (uint32_t u = 0; u < 4 * 65536; u++) v[n++] = f32_of(u * 37u % 0x01000000u);
            uint64_t s = 0x9e3779b97f4a7c15ull + (uint64_t)k;
            for (int i = 0; i < RANDOM; i++) {
                s ^= s << 13, s ^= s >> 7, s ^= s << 17; /* xorshift64 */
                v[n++] = f32_of((uint32_t)(s >> 11));
            }
            v[n++] = INFINITY, v[n++] = -INFINITY, v[n++] = f32_of(0x7fa00001u) /* a signalling NaN */;
            v[n++] = f32_of(0xffc00000u), v[n++] = -0.0f;
            ck_assert_int_le(n, cap);
            for (int64_t i = 0; i < n; i++) src[i] = v[i];
            em_scope_begin();
            em_tensor *x = em_tensor_from(EM_F32, EM_SHAPE(n), v);
            em_tensor *y = cast_on(x, f->dtype, devices[d]);
            check_narrowed(f, devices[d], "float32", src, em_data(y), n);
            em_scope_end();
        }
    free(v);
    free(src);
}
END_TEST

START_TEST(test_narrowing_float64_rounds_once) {
    /* For each of a range of narrow values a: the tie halfway to the next value, and the doubles just
     * either side of it, which float32 cannot tell from the tie. */
    enum { N = 3 * 2 * 30000 };
    double *src = malloc(sizeof(double) * N);
    for (int d = 0; d < ndevices(); d++)
        for (int k = 0; k < 2; k++) {
            const narrow_format *f = &formats[k];
            int64_t n = 0;
            for (uint32_t i = 0x0400; i < 0x0400 + 30000; i++) {
                for (int sign = 0; sign < 2; sign++) {
                    uint16_t b = (uint16_t)(i | (sign ? 0x8000u : 0));
                    double a = f->value(b), next = f->value((uint16_t)(b + 1));
                    if (!isfinite(next) || !isfinite(a)) continue;
                    double mid = (a + next) / 2, eps = fabs(mid) * 0x1p-40;
                    src[n++] = mid, src[n++] = mid + eps, src[n++] = mid - eps;
                }
            }
            em_scope_begin();
            em_tensor *y = cast_on(em_tensor_from(EM_F64, EM_SHAPE(n), src), f->dtype, devices[d]);
            check_narrowed(f, devices[d], "float64", src, em_data(y), n);
            em_scope_end();
        }
    free(src);
}
END_TEST

START_TEST(test_fills_round_like_the_kernels) {
    const double values[] = {1.00390625, 1.0039062500000002, 65519.99, 65520, 3.39e38, 1e-40, -2.5e-8, 0.1, NAN};
    for (int k = 0; k < 2; k++) {
        const narrow_format *f = &formats[k];
        for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
            em_scope_begin();
            const uint16_t *got = em_data(em_fill(f->dtype, EM_SHAPE(3), values[i]));
            ck_assert_ptr_nonnull(got);
            check_narrowed(f, "/cpu:0", "a fill's float64", &values[i], got, 1);
            ck_assert_double_eq(em_item(em_scalar(f->dtype, 0.5)), 0.5);
            em_scope_end();
        }
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("dtypes");
    TCase *tc = tcase_create("dtypes");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_widening_is_exact_for_every_pattern);
    tcase_add_test(tc, test_narrowing_rounds_to_nearest_even);
    tcase_add_test(tc, test_narrowing_float64_rounds_once);
    tcase_add_test(tc, test_fills_round_like_the_kernels);
    suite_add_tcase(s, tc);
    return em_test_run(s);
}
