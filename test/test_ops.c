/* Every op's forward cases (test/cases_<family>.c) on every device present:
 * "/cpu:0", a second logical CPU device with the inputs placed there, and
 * "/gpu:0" when there is one, where every value is also compared with the
 * CPU's (exact for integer and bool outputs, to the case's tolerance for
 * float ones) and every gradient-check case's value and gradients too. An op
 * without a forward case for one of the dtypes its .def line accepts fails
 * here. The run prints how many cases ran on each device. */
#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void teardown(void) { em_shutdown(); }

static bool has_gpu(void) {
    if (em_device_begin("/gpu:0")) {
        em_clear_error();
        return false;
    }
    em_device_end();
    return true;
}

/* A tensor of the input's dtype from its double values, converted in the
 * test (not by the cast op under test). */
static em_tensor *make_input(const fw_input *in) {
    int64_t n = em_shape_numel(in->shape);
    size_t size = em_dtype_size(in->dtype);
    unsigned char *buf = calloc((size_t)(n ? n : 1), size);
    for (int64_t i = 0; i < n; i++) {
        double v = in->v[i];
        void *p = buf + (size_t)i * size;
        switch (in->dtype) {
        case EM_F32: *(float *)p = (float)v; break;
        case EM_F64: *(double *)p = v; break;
        case EM_I32: *(int32_t *)p = (int32_t)v; break;
        case EM_I64: *(int64_t *)p = (int64_t)v; break;
        case EM_U8: *(uint8_t *)p = (uint8_t)v; break;
        case EM_I8: *(int8_t *)p = (int8_t)v; break;
        case EM_I16: *(int16_t *)p = (int16_t)v; break;
        case EM_U16: *(uint16_t *)p = (uint16_t)v; break;
        case EM_BOOL: *(uint8_t *)p = v != 0; break;
        case EM_BF16: *(uint16_t *)p = em_test_bf16_bits(em_test_round_bf16(v)); break;
        case EM_F16: *(uint16_t *)p = em_test_f16_bits(em_test_round_f16(v)); break;
        default: ck_abort_msg("input dtype %d has no conversion in test_ops", in->dtype);
        }
    }
    em_tensor *t = em_tensor_from(in->dtype, in->shape, buf);
    free(buf);
    return t;
}

static bool is_float(em_dtype d) { return d == EM_F32 || d == EM_F64 || d == EM_BF16 || d == EM_F16; }

/* got (any device) against want[]: NaN matches NaN, infinities match exactly. */
static void check_values(const fw_case *c, const char *dev, em_tensor *got, const double *want) {
    char b1[160], b2[160];
    ck_assert_msg(got != NULL, "%s on %s: %s", c->label, dev, em_last_error());
    ck_assert_msg(em_tensor_dtype(got) == c->out_dtype, "%s on %s: dtype %s, expected %s", c->label, dev,
                  em_dtype_name(em_tensor_dtype(got)), em_dtype_name(c->out_dtype));
    ck_assert_msg(em_shape_equal(em_tensor_shape(got), c->out_shape), "%s on %s: shape %s, expected %s", c->label, dev,
                  em_shape_str(em_tensor_shape(got), b1, sizeof b1), em_shape_str(c->out_shape, b2, sizeof b2));
    em_tensor *host = em_cast(em_to_device(got, "/cpu:0"), EM_F64);
    ck_assert_msg(host != NULL, "%s on %s: reading the output: %s", c->label, dev, em_last_error());
    const double *v = em_data(host);
    double tol = is_float(c->out_dtype) ? c->tol : 0;
    for (int64_t i = 0; i < em_numel(host); i++) {
        double a = v[i], e = want[i];
        bool ok = isnan(e) ? isnan(a) : a == e || fabs(a - e) <= tol * fmax(1, fabs(e));
        ck_assert_msg(ok, "%s on %s: element %lld is %.17g, expected %.17g (tolerance %g)", c->label, dev,
                      (long long)i, a, e, tol);
    }
}

/* c's output on device dev, its inputs placed there first. */
static em_tensor *run_on(const fw_case *c, const char *dev) {
    em_tensor *in[4] = {0};
    for (int k = 0; k < c->nin; k++) {
        in[k] = em_to_device(make_input(&c->in[k]), dev);
        ck_assert_msg(in[k] != NULL, "%s: input %d on %s: %s", c->label, k, dev, em_last_error());
    }
    ck_assert_int_eq(em_device_begin(dev), 0);
    em_tensor *y = c->fn(in);
    em_device_end();
    return y;
}

static const char *const devices[] = {"/cpu:0", "/cpu:1", "/gpu:0"};
enum { NDEV = sizeof devices / sizeof devices[0] };

START_TEST(test_every_case_on_every_device) {
    ck_assert_int_eq(em_set_cpu_devices(2, 0), 0);
    bool gpu = has_gpu();
    int ran[NDEV] = {0};
    for (const em_test_family *f = em_test_families; f->name; f++)
        for (const fw_case *c = f->fw; c->fn; c++) {
            em_scope_begin();
            int64_t n = em_shape_numel(c->out_shape);
            double *want = malloc(sizeof(double) * (size_t)(n ? n : 1));
            if (c->expect) memcpy(want, c->expect, sizeof(double) * (size_t)n);
            else c->ref(c, want);
            em_tensor *on_cpu = NULL;
            for (int d = 0; d < NDEV; d++) {
                if (d == 2 && !gpu) continue;
                em_tensor *y = run_on(c, devices[d]);
                check_values(c, devices[d], y, want);
                if (d == 0) on_cpu = y;
                else {
                    /* value for value against the CPU (the same as against `want`, up to the tolerance) */
                    double diff = em_test_max_rel_diff(y, on_cpu);
                    ck_assert_msg(is_float(c->out_dtype) ? diff <= c->tol || diff == 0 : diff == 0 || isnan(diff),
                                  "%s: %s differs from /cpu:0 by %.3g", c->label, devices[d], diff);
                }
                ran[d]++;
            }
            free(want);
            em_scope_end();
        }
    for (int d = 0; d < NDEV; d++)
        if (d == 2 && !gpu) printf("test_ops: %s: not present, its %d cases skipped\n", devices[d], ran[0]);
        else printf("test_ops: %s: %d forward cases\n", devices[d], ran[d]);
    ck_assert_int_gt(ran[0], 0);
    em_set_cpu_devices(1, 0);
}
END_TEST

/* Every case names a known op and a dtype its .def line accepts; every
 * accepted dtype of every op has a case. */
START_TEST(test_every_op_has_a_case_per_dtype) {
    char missing[2048] = "";
    size_t at = 0;
    int nmissing = 0;
    for (const em_test_family *f = em_test_families; f->name; f++)
        for (const fw_case *c = f->fw; c->fn; c++) {
            const em_op_def *d = em__op_by_name(c->op);
            ck_assert_msg(d != NULL, "case \"%s\" names no op: \"%s\"", c->label, c->op);
            ck_assert_msg(d->dtypes >> c->dtype & 1u, "case \"%s\": %s does not accept %s", c->label, c->op,
                          em_dtype_name(c->dtype));
        }
    for (int op = 0; op < em__op_count(); op++) {
        const em_op_def *d = em__op_def((em_op)op);
        for (int dt = 0; dt < EM_DTYPE_COUNT; dt++) {
            if (!(d->dtypes >> dt & 1u)) continue;
            bool found = false;
            for (const em_test_family *f = em_test_families; f->name && !found; f++)
                for (const fw_case *c = f->fw; c->fn && !found; c++) found = (int)c->dtype == dt && !strcmp(c->op, d->name);
            if (!found && nmissing++ < 40 && at < sizeof missing)
                at += (size_t)snprintf(missing + at, sizeof missing - at, " %s/%s", d->name, em_dtype_name((em_dtype)dt));
        }
    }
    ck_assert_msg(nmissing == 0, "%d op/dtype pairs have no forward case:%s%s", nmissing, missing, nmissing > 40 ? " ..." : "");
}
END_TEST

/* fn's value and the gradients of sum(fn * w), on the current device scope. */
static int run_gradient_case(const gc_case *c, em_tensor *const *in, em_tensor **y, em_tensor **grads) {
    em_tensor *xs[4];
    int nx = 0;
    for (int i = 0; i < c->nin; i++)
        if (!(c->skip_mask & (1u << i))) xs[nx++] = in[i];
    em_tape *tape = em_tape_begin(false);
    *y = c->fn(in);
    em_tensor *w = em_test_uniform(em_tensor_shape(*y), 0.5, 1.5, 77);
    int rc = *y && w ? em_gradients(tape, em_sum(em_mul(*y, w), EM_ALL_AXES, false), nx, xs, grads) : -1;
    em_tape_release(tape);
    return rc;
}

/* The gradient-check cases' values and gradients on the GPU against the
 * CPU, in float64: agreeing to 1e-9 (sums may add in another order). */
START_TEST(test_gradient_cases_match_the_cpu_on_the_gpu) {
    if (!has_gpu()) {
        printf("test_ops: /gpu:0: not present, the gradient cases ran on the CPU only (test_gradcheck)\n");
        return;
    }
    int checked = 0;
    for (const em_test_family *f = em_test_families; f->name; f++)
        for (const gc_case *c = f->gc; c->fn; c++, checked++) {
            em_scope_begin();
            em_tensor *in[4] = {0}, *gin[4] = {0}, *y, *gy, *g[4], *gg[4];
            for (int i = 0; i < c->nin; i++) {
                in[i] = c->make_input ? c->make_input(i) : NULL;
                if (!in[i]) in[i] = em_test_uniform(c->shapes[i], c->lo, c->hi, 1000u + (unsigned)i * 7u + (unsigned)c->op);
                gin[i] = em_to_device(in[i], "/gpu:0");
            }
            ck_assert_msg(run_gradient_case(c, in, &y, g) == 0, "%s on the CPU: %s", c->label, em_last_error());
            ck_assert_int_eq(em_device_begin("/gpu:0"), 0);
            int rc = run_gradient_case(c, gin, &gy, gg);
            em_device_end();
            ck_assert_msg(rc == 0, "%s on the GPU: %s", c->label, em_last_error());
            ck_assert_int_eq(em_device_sync("/gpu:0"), 0);
            ck_assert_str_eq(em_tensor_device(gy), "/gpu:0");
            double d = em_test_max_rel_diff(gy, y);
            ck_assert_msg(d < 1e-9, "%s: GPU value differs from the CPU by %.3g", c->label, d);
            for (int i = 0, k = 0; i < c->nin; i++) {
                if (c->skip_mask & (1u << i)) continue;
                d = em_test_max_rel_diff(gg[k], g[k]);
                ck_assert_msg(d < 1e-9, "%s: GPU gradient %d differs from the CPU by %.3g", c->label, i, d);
                k++;
            }
            em_scope_end();
        }
    printf("test_ops: /gpu:0: %d gradient cases against the CPU\n", checked);
    ck_assert_int_gt(checked, 0);
}
END_TEST

/* ---- bfloat16 and float16 against float32 ----
 * Every float32 forward case runs again with its float32 inputs rounded to each narrow dtype (by the test's
 * own rounding), on every device: the output must be the float32 op's output on those same rounded inputs,
 * rounded once to the narrow dtype (integer and bool outputs: equal). The ops compute in float32, so this
 * holds exactly for an op run through float32 (the dispatcher's fallback); ops with native narrow kernels
 * may differ by the tolerance their row in narrow_tols states, in units of the narrow dtype's ulp at 1
 * (bfloat16 2^-7, float16 2^-10), relative above 1 and absolute below. */
static const struct {
    const char *op;
    double ulps; /* allowed |got - want| / max(1, |want|) in narrow ulps */
} narrow_tols[] = {
    {"matmul", 2},    /* another accumulation order (VDPBF16PS), subnormal products flushed */
    {"sum", 1},       /* blocked float32 sums in another order */
    {"log_sum_exp", 1}, {"softmax", 1}, {"log_softmax", 1}, {"softmax_grad", 1},
    {"attention", 2}, {"attention_grad", 2},
    /* Not compared: the norms' backward ops read the statistics their forward op saved, which a narrow input
     * rounds to its own dtype, and the gradient formulas cancel (30% off in layer_norm_tape). Autocast runs
     * the norms in float32, and PyTorch keeps them in float32 too; narrow norms outside autocast are a known
     * limit (README). */
    {"layer_norm_grad", -1}, {"rms_norm_grad", -1}, {"batch_norm_grad", -1},
    {"apply_updates", 2}, /* the variable and its slots are rounded after each step of a case's 2 */
    /* its float32 case's forward composes exp(30), past float16's range: cases_custom.c has its narrow cases */
    {"custom_gradient", -1},
    {NULL, 0},
};

static double narrow_tol(const char *op, em_dtype narrow) {
    double ulp = narrow == EM_BF16 ? 0x1p-7 : 0x1p-10, ulps = 0;
    for (int i = 0; narrow_tols[i].op; i++)
        if (!strcmp(narrow_tols[i].op, op)) ulps = narrow_tols[i].ulps;
    return ulps * ulp;
}

/* The test's rounding of a double to the narrow dtype. */
static double round_narrow(em_dtype narrow, double v) {
    return narrow == EM_BF16 ? em_test_round_bf16(v) : em_test_round_f16(v);
}

/* Case c with its float32 inputs held as `as` (EM_F32 or a narrow dtype), their values rounded to `narrow`. */
static em_tensor *run_narrowed(const fw_case *c, em_dtype narrow, em_dtype as, const char *dev) {
    em_tensor *in[4] = {0};
    for (int k = 0; k < c->nin; k++) {
        fw_input x = c->in[k];
        int64_t n = em_shape_numel(x.shape);
        double *v = NULL;
        if (x.dtype == EM_F32) {
            v = malloc(sizeof(double) * (size_t)(n ? n : 1));
            for (int64_t i = 0; i < n; i++) v[i] = round_narrow(narrow, (float)x.v[i]);
            x.v = v;
            x.dtype = as;
        }
        in[k] = em_to_device(make_input(&x), dev);
        free(v);
        ck_assert_msg(in[k] != NULL, "%s: input %d on %s: %s", c->label, k, dev, em_last_error());
    }
    ck_assert_int_eq(em_device_begin(dev), 0);
    em_tensor *y = c->fn(in);
    em_device_end();
    return y;
}

START_TEST(test_narrow_dtypes_match_float32) {
    ck_assert_int_eq(em_set_cpu_devices(2, 0), 0);
    bool gpu = has_gpu();
    int ran[NDEV] = {0}, nbad = 0;
    const em_dtype narrows[2] = {EM_BF16, EM_F16};
    for (const em_test_family *f = em_test_families; f->name; f++)
        for (const fw_case *c = f->fw; c->fn; c++) {
            bool any = false;
            for (int k = 0; k < c->nin; k++) any |= c->in[k].dtype == EM_F32;
            /* cast's output dtype is its attribute's: its narrow cases are written out in cases_elementwise.c */
            if (c->dtype != EM_F32 || !any || !strcmp(c->op, "cast") || narrow_tol(c->op, EM_BF16) < 0) continue;
            for (int d = 0; d < NDEV; d++) {
                if (d == 1 || (d == 2 && !gpu)) continue; /* /cpu:1 runs the same kernels as /cpu:0 */
                for (int nk = 0; nk < 2; nk++) {
                    em_dtype narrow = narrows[nk];
                    em_scope_begin();
                    em_tensor *ref = run_narrowed(c, narrow, EM_F32, devices[d]);
                    ck_assert_msg(ref != NULL, "%s on %s (float32): %s", c->label, devices[d], em_last_error());
                    em_tensor *got = run_narrowed(c, narrow, narrow, devices[d]);
                    ck_assert_msg(got != NULL, "%s in %s on %s: %s", c->label, em_dtype_name(narrow), devices[d],
                                  em_last_error());
                    em_dtype rt = em_tensor_dtype(ref), want_dt = rt == EM_F32 ? narrow : rt;
                    ck_assert_msg(em_tensor_dtype(got) == want_dt, "%s in %s: dtype %s, expected %s", c->label,
                                  em_dtype_name(narrow), em_dtype_name(em_tensor_dtype(got)), em_dtype_name(want_dt));
                    ck_assert(em_shape_equal(em_tensor_shape(got), em_tensor_shape(ref)));
                    const double *r = em_data(em_cast(em_to_device(ref, "/cpu:0"), EM_F64));
                    const double *g = em_data(em_cast(em_to_device(got, "/cpu:0"), EM_F64));
                    ck_assert(r && g);
                    double tol = rt == EM_F32 ? narrow_tol(c->op, narrow) : 0;
                    for (int64_t i = 0; i < em_numel(got); i++) {
                        double e = rt == EM_F32 ? round_narrow(narrow, r[i]) : r[i], a = g[i];
                        bool ok = isnan(e) ? isnan(a) : a == e || fabs(a - e) <= tol * fmax(1, fabs(e));
                        if (!ok && nbad++ < 12)
                            printf("test_ops: %s in %s on %s: element %lld is %.9g, float32 gives %.9g (rounded %.9g; "
                                   "tolerance %g)\n", c->label, em_dtype_name(narrow), devices[d], (long long)i, a,
                                   r[i], e, tol);
                        if (!ok) break;
                    }
                    ran[d]++;
                    em_scope_end();
                }
            }
        }
    printf("test_ops: bfloat16 and float16 against float32: %d cases on /cpu:0, %s\n", ran[0],
           gpu ? "and on /gpu:0" : "/gpu:0 not present");
    ck_assert_int_gt(ran[0], 0);
    ck_assert_msg(nbad == 0, "%d narrow cases differ from float32 beyond their tolerance (listed above)", nbad);
    em_set_cpu_devices(1, 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("ops");
    TCase *tc = tcase_create("ops");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_every_op_has_a_case_per_dtype);
    tcase_add_test(tc, test_every_case_on_every_device);
    tcase_add_test(tc, test_narrow_dtypes_match_float32);
    tcase_add_test(tc, test_gradient_cases_match_the_cpu_on_the_gpu);
    suite_add_tcase(s, tc);
    return em_test_run(s);
}
