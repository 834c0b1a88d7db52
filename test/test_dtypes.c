/* bfloat16 and float16 conversions, through em_cast's kernels (the vectorized CPU rows, and the GPU's when
 * there is one), against the test's own rounding in double arithmetic (test/common.c):
 * - widening is exact for all 65,536 bit patterns of each, NaNs staying NaN with their sign;
 * - narrowing from float32 rounds to nearest even on a sweep of every narrow value, the ties halfway to its
 *   neighbour and the float32 values either side of each tie, the subnormals, and a million random float32
 *   bit patterns (NaNs and infinities among them); Inf stays Inf, NaN stays NaN (quieted), subnormals stay;
 * - narrowing from float64 rounds once (no double rounding through float32);
 * - a fill (em_fill, the scalar path) agrees with the kernels.
 * The integer dtypes int8, int16 and uint16 (the test's own rules: truncation toward zero and saturation
 * from floats, wrapping between integers, as NumPy's astype for in-range floats and integers):
 * - every int16 and uint16 bit pattern casts to every dtype and back as those rules say;
 * - a sweep of float32, float64, bfloat16 and float16 values casts to each of them truncating and saturating;
 * - uint16 token ids past int16's range index (gather, one_hot, sparse cross-entropy) as int32 ids do. */
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

/* ---- int8, int16, uint16 ---- */

typedef struct int_format {
    em_dtype dtype;
    double lo, hi;
} int_format;
static const int_format ints[3] = {{EM_I8, -128, 127}, {EM_I16, -32768, 32767}, {EM_U16, 0, 65535}};

/* v (an integer) wrapped into the format's range. */
static double wrap_into(const int_format *f, double v) {
    double m = f->hi - f->lo + 1, r = fmod(v - f->lo, m);
    return (r < 0 ? r + m : r) + f->lo;
}
/* A float to the format: truncated toward zero and saturated, NaN 0. */
static double saturate_into(const int_format *f, double v) {
    return isnan(v) ? 0 : v <= f->lo ? f->lo : v >= f->hi ? f->hi : trunc(v);
}

START_TEST(test_integer_dtypes_are_named_sized_and_printed) {
    ck_assert_str_eq(em_dtype_name(EM_I8), "int8");
    ck_assert_str_eq(em_dtype_name(EM_I16), "int16");
    ck_assert_str_eq(em_dtype_name(EM_U16), "uint16");
    ck_assert_int_eq(em_dtype_size(EM_I8), 1);
    ck_assert_int_eq(em_dtype_size(EM_I16), 2);
    ck_assert_int_eq(em_dtype_size(EM_U16), 2);
    ck_assert_int_eq(EM_I8, 8); /* stored in checkpoints and saved graphs: the numbers are fixed */
    ck_assert_int_eq(EM_U16, 10);
    char buf[128];
    em_format(em_tensor_from(EM_U16, EM_SHAPE(3), (uint16_t[]){0, 50256, 65535}), buf, sizeof buf);
    ck_assert_str_eq(buf, "tensor([0, 50256, 65535], dtype=uint16)");
    em_format(em_tensor_from(EM_I8, EM_SHAPE(2), (int8_t[]){-128, 127}), buf, sizeof buf);
    ck_assert_str_eq(buf, "tensor([-128, 127], dtype=int8)");
    ck_assert_double_eq(em_item(em_scalar(EM_I16, -40000)), -32768);
    ck_assert_double_eq(em_item(em_arange(EM_U16, 65534, 65535, 1)), 65534);
}
END_TEST

/* Every int16 and uint16 value to every dtype: integers wrap, floats hold it (bfloat16 and float16 rounded
 * to nearest even), bool is x != 0; and every int16/uint16/int8 target from those 65,536 values. */
START_TEST(test_integer_casts_of_every_16_bit_value) {
    enum { N = 65536 };
    int16_t *s = malloc(sizeof(int16_t) * N);
    uint16_t *u = malloc(sizeof(uint16_t) * N);
    for (int i = 0; i < N; i++) s[i] = (int16_t)(i - 32768), u[i] = (uint16_t)i;
    for (int d = 0; d < ndevices(); d++)
        for (int src = 0; src < 2; src++) {
            em_scope_begin();
            ck_assert_int_eq(em_device_begin(devices[d]), 0);
            em_tensor *x = em_to_device(src ? em_tensor_from(EM_U16, EM_SHAPE(N), u) : em_tensor_from(EM_I16, EM_SHAPE(N), s),
                                        devices[d]);
            for (int to = 0; to < EM_DTYPE_COUNT; to++) {
                em_tensor *y = em_cast(em_to_device(em_cast(x, (em_dtype)to), "/cpu:0"), EM_F64);
                ck_assert_msg(y != NULL, "%s: %s", devices[d], em_last_error());
                const double *v = em_data(y);
                for (int i = 0; i < N; i++) {
                    double x0 = src ? u[i] : s[i], want = x0;
                    if (to == EM_BOOL) want = x0 != 0;
                    else if (to == EM_BF16) want = em_test_round_bf16(x0);
                    else if (to == EM_F16) want = em_test_round_f16(x0);
                    else if (to == EM_U8) want = fmod(x0 + 65536, 256);
                    for (int k = 0; k < 3; k++)
                        if (to == (int)ints[k].dtype) want = wrap_into(&ints[k], x0);
                    if (v[i] != want) /* one check per element would dominate the run */
                        ck_abort_msg("%s: cast %s %.0f to %s is %.17g, expected %.17g", devices[d],
                                     src ? "uint16" : "int16", x0, em_dtype_name((em_dtype)to), v[i], want);
                }
            }
            em_device_end();
            em_scope_end();
        }
    free(s);
    free(u);
}
END_TEST

/* Floats, and bfloat16 and float16 widened exactly, to int8, int16 and uint16: toward zero, saturating. */
START_TEST(test_float_to_integer_casts_truncate_and_saturate) {
    const double sweep[] = {0.0, -0.0, 0.5, -0.5, 0.99, -0.99, 1.5, -1.5, 126.9, 127, 127.5, 128, -128.5, -129, 255.5,
                            256, 300.7, -300.7, 32767.5, 32768, -32768.9, -32769, 40000, 65535.5, 65536, 70000,
                            -70000, 1e10, -1e10, INFINITY, -INFINITY, NAN, 1e-30, -1e-30, 50256};
    enum { N = sizeof sweep / sizeof sweep[0] };
    const em_dtype froms[4] = {EM_F32, EM_F64, EM_BF16, EM_F16};
    for (int d = 0; d < ndevices(); d++)
        for (int f = 0; f < 4; f++)
            for (int k = 0; k < 3; k++) {
                em_scope_begin();
                em_tensor *x = em_cast(em_tensor_from(EM_F64, EM_SHAPE(N), sweep), froms[f]);
                const double *held = em_data(em_cast(x, EM_F64)); /* the values x holds, rounded to its dtype */
                ck_assert_int_eq(em_device_begin(devices[d]), 0);
                em_tensor *y = em_cast(em_to_device(x, devices[d]), ints[k].dtype);
                em_device_end();
                const double *v = em_data(em_cast(em_to_device(y, "/cpu:0"), EM_F64));
                ck_assert_msg(v != NULL, "%s: %s", devices[d], em_last_error());
                for (int i = 0; i < N; i++)
                    ck_assert_msg(v[i] == saturate_into(&ints[k], held[i]), "%s: cast %s %.17g to %s is %.17g, expected %.17g",
                                  devices[d], em_dtype_name(froms[f]), held[i], em_dtype_name(ints[k].dtype), v[i],
                                  saturate_into(&ints[k], held[i]));
                em_scope_end();
            }
}
END_TEST

/* GPT-2's token ids (vocabulary 50,257: past int16, inside uint16) stored as uint16 index as int32 ids do. */
START_TEST(test_uint16_token_ids_index_like_int32) {
    const int64_t vocab = 50257, dim = 3;
    const uint16_t ids16[5] = {50256, 40000, 0, 32768, 40000};
    const int32_t ids32[5] = {50256, 40000, 0, 32768, 40000};
    for (int d = 0; d < ndevices(); d++) {
        em_scope_begin();
        ck_assert_int_eq(em_device_begin(devices[d]), 0);
        em_tensor *table = em_reshape(em_arange(EM_F32, 0, (double)(vocab * dim), 1), EM_SHAPE(vocab, dim));
        em_tensor *u = em_to_device(em_tensor_from(EM_U16, EM_SHAPE(5), ids16), devices[d]);
        em_tensor *i = em_to_device(em_tensor_from(EM_I32, EM_SHAPE(5), ids32), devices[d]);
        em_tensor *rows = em_to_device(em_gather(table, u, 0), "/cpu:0");
        ck_assert_msg(rows != NULL, "%s: %s", devices[d], em_last_error());
        const float *r = em_data(rows);
        for (int k = 0; k < 5; k++)
            for (int j = 0; j < dim; j++) ck_assert_float_eq(r[k * dim + j], (float)(ids16[k] * dim + j));
        /* the same losses and gradients as int32 labels */
        em_tensor *logits = em_mul_scalar(em_gather(table, i, 0), 1e-5);
        em_tensor *wide = em_pad(logits, (int64_t[]){0, 0, 0, vocab - dim}, 0);
        ck_assert_double_eq(em_test_max_rel_diff(em_sparse_softmax_cross_entropy_with_logits(u, wide),
                                                 em_sparse_softmax_cross_entropy_with_logits(i, wide)), 0);
        ck_assert_double_eq(em_test_max_rel_diff(em_one_hot(u, vocab, 1, 0, EM_F32), em_one_hot(i, vocab, 1, 0, EM_F32)), 0);
        em_tape *tape = em_tape_begin(false);
        em_tensor *g16 = NULL, *g32 = NULL;
        em_tensor *y16 = em_sum(em_gather(table, u, 0), EM_ALL_AXES, false);
        ck_assert_int_eq(em_gradients(tape, y16, 1, &table, &g16), 0);
        em_tape_release(tape);
        tape = em_tape_begin(false);
        em_tensor *y32 = em_sum(em_gather(table, i, 0), EM_ALL_AXES, false);
        ck_assert_int_eq(em_gradients(tape, y32, 1, &table, &g32), 0);
        em_tape_release(tape);
        ck_assert_double_eq(em_test_max_rel_diff(g16, g32), 0);
        ck_assert_double_eq(em_item(em_to_device(em_sum(g16, EM_ALL_AXES, false), "/cpu:0")), 5 * dim);
        em_device_end();
        em_scope_end();
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
    tcase_add_test(tc, test_integer_dtypes_are_named_sized_and_printed);
    tcase_add_test(tc, test_integer_casts_of_every_16_bit_value);
    tcase_add_test(tc, test_float_to_integer_casts_truncate_and_saturate);
    tcase_add_test(tc, test_uint16_token_ids_index_like_int32);
    suite_add_tcase(s, tc);
    return em_test_run(s);
}
