/* The random family's forward cases (run by test_ops.c on every device) and
 * gradient-check cases (test_gradcheck.c). */
#include "common.h"

#include <stdlib.h>
#include <string.h>

/* The draws depend on the seeded Philox stream, so a case checks what any
 * correct stream must satisfy rather than raw values. Each case seeds the
 * stream itself (em_set_seed inside fn: the same draws on every device),
 * draws N_DRAWS values on the device under test and returns six indicators,
 * 1 when the check holds (the expectation: all 1):
 *   0  every draw lies in the support ([lo, hi) for uniform, within two
 *      stddevs of the mean for truncated_normal, finite for normal);
 *   1  the sample mean is within 4 standard errors of the mean, sqrt(var / N);
 *   2  the sample variance is within 4 standard errors of the variance,
 *      sqrt((mu4 - var^2) / N), mu4 the fourth central moment;
 *   3  the fraction of draws in [flo, fhi) is within 4 standard errors of its
 *      probability p, sqrt(p (1 - p) / N);
 *   4  reseeding gives the same draws again;
 *   5  the next draw from the stream (not reseeded) is another one: fewer
 *      than 1% of its values equal the first's.
 * The moments (Python's math module, phi the standard normal density, Phi
 * its distribution):
 *   uniform(lo, hi): mean (lo + hi) / 2, var (hi - lo)^2 / 12, mu4 (hi - lo)^4 / 80;
 *   normal(m, s): var s^2, mu4 3 s^4, P(|x - m| < s) = erf(1 / sqrt(2)) = 0.6826894921370859;
 *   normal truncated at +-2 s: with Z = erf(2 / sqrt(2)) = 2 Phi(2) - 1,
 *     var = s^2 (1 - 4 phi(2) / Z) = 0.7737413035499232 s^2 (stddev 0.8796 s),
 *     mu4 = s^4 (3 - 28 phi(2) / Z) = 1.4161891248494625 s^4,
 *     P(|x - m| < s) = erf(1 / sqrt(2)) / Z = 0.7152327720109061. */
enum { N_DRAWS = 20000, N_CHECKS = 6 };
#define DRAW_SHAPE EM_SHAPE(100, 200)
#define SEED 20240611u

typedef em_tensor *(*draw_fn)(em_dtype dtype, em_shape shape, double p0, double p1);
typedef struct dist {
    double mean, var, mu4;
    double lo, hi; /* the support */
    bool hi_open;  /* [lo, hi) rather than [lo, hi] */
    double flo, fhi, p; /* P(flo <= x < fhi) = p */
} dist;

/* N_DRAWS values drawn from the thread's stream on the current device, as doubles. */
static double *draw_values(draw_fn f, em_dtype dt, double p0, double p1) {
    em_tensor *y = f(dt, DRAW_SHAPE, p0, p1);
    if (!y || em_numel(y) != N_DRAWS) return NULL;
    size_t size = em_dtype_size(dt);
    void *raw = malloc(N_DRAWS * size);
    double *v = malloc(N_DRAWS * sizeof *v);
    if (raw && v && em_copy_out(y, raw, N_DRAWS * size) == 0)
        for (int i = 0; i < N_DRAWS; i++) v[i] = dt == EM_F32 ? ((float *)raw)[i] : ((double *)raw)[i];
    else {
        free(v);
        v = NULL;
    }
    free(raw);
    return v;
}

static em_tensor *check_draws(draw_fn f, em_dtype dt, double p0, double p1, const dist *d) {
    em_set_seed(SEED);
    double *a = draw_values(f, dt, p0, p1), *next = draw_values(f, dt, p0, p1);
    em_set_seed(SEED);
    double *again = draw_values(f, dt, p0, p1);
    em_tensor *out = NULL;
    if (a && next && again) {
        bool in_support = true;
        double sum = 0, ss = 0, within = 0;
        int same = 0;
        for (int i = 0; i < N_DRAWS; i++) {
            double x = a[i];
            in_support = in_support && isfinite(x) && x >= d->lo && (d->hi_open ? x < d->hi : x <= d->hi);
            sum += x;
            within += x >= d->flo && x < d->fhi;
            same += next[i] == x;
        }
        double mean = sum / N_DRAWS, frac = within / N_DRAWS;
        for (int i = 0; i < N_DRAWS; i++) ss += (a[i] - mean) * (a[i] - mean);
        double var = ss / (N_DRAWS - 1);
        double ok[N_CHECKS] = {
            in_support,
            fabs(mean - d->mean) <= 4 * sqrt(d->var / N_DRAWS),
            fabs(var - d->var) <= 4 * sqrt((d->mu4 - d->var * d->var) / N_DRAWS),
            fabs(frac - d->p) <= 4 * sqrt(d->p * (1 - d->p) / N_DRAWS),
            memcmp(a, again, N_DRAWS * sizeof *a) == 0,
            same < N_DRAWS / 100,
        };
        float okf[N_CHECKS];
        for (int i = 0; i < N_CHECKS; i++) okf[i] = (float)ok[i];
        out = em_tensor_from(dt, EM_SHAPE(N_CHECKS), dt == EM_F32 ? (const void *)okf : (const void *)ok);
    }
    free(a);
    free(next);
    free(again);
    return out;
}

/* uniform on [2, 5): mean 3.5, var 9/12, mu4 81/80, P(x < 2.75) = 1/4 */
static const dist uniform_2_5 = {3.5, 0.75, 1.0125, 2, 5, true, 2, 2.75, 0.25};
/* normal(1, 2): var 4, mu4 48, P(|x - 1| < 2) */
static const dist normal_1_2 = {1, 4, 48, -INFINITY, INFINITY, true, -1, 3, 0.6826894921370859};
/* normal(-1, 0.5) truncated at +-1: var 0.25 * 0.77374..., mu4 0.0625 * 1.41618..., P(|x + 1| < 0.5) */
static const dist truncated_m1_half = {-1, 0.25 * 0.7737413035499232, 0.0625 * 1.4161891248494625, -2, 0, false,
                                       -1.5, -0.5, 0.7152327720109061};

#define CHECK_FN(name, draw, dt, p0, p1, d) \
    static em_tensor *name(em_tensor *const *in) { (void)in; return check_draws(draw, dt, p0, p1, &d); }
CHECK_FN(uniform_f32, em_random_uniform, EM_F32, 2, 5, uniform_2_5)
CHECK_FN(uniform_f64, em_random_uniform, EM_F64, 2, 5, uniform_2_5)
CHECK_FN(normal_f32, em_random_normal, EM_F32, 1, 2, normal_1_2)
CHECK_FN(normal_f64, em_random_normal, EM_F64, 1, 2, normal_1_2)
CHECK_FN(truncated_f32, em_truncated_normal, EM_F32, -1, 0.5, truncated_m1_half)
CHECK_FN(truncated_f64, em_truncated_normal, EM_F64, -1, 0.5, truncated_m1_half)

/* categorical over in[0] = logits [2,4]: row 0 is log(0.1, 0.2, 0.7) and -Inf,
 * row 1 puts everything on class 0. Indicators (1 when the check holds):
 * 0 row 0 never draws the -Inf class and row 1 always draws class 0;
 * 1-3 row 0's frequency of classes 0, 1, 2 is within 4 standard errors of
 * 0.1, 0.2, 0.7; 4 reseeding gives the same samples; 5 the next draw
 * differs (fewer than 90% of samples equal: row 0's chance agreement is 0.54). */
enum { N_SAMPLES = 10000 };
static const double cat_logits[] = {-2.302585092994046, -1.6094379124341003, -0.35667494393873245, -INFINITY,
                                    0, -INFINITY, -INFINITY, -INFINITY};
static int64_t *samples(em_tensor *logits) {
    em_tensor *y = em_categorical(logits, N_SAMPLES);
    int64_t *v = malloc(2 * N_SAMPLES * sizeof *v);
    if (!y || !v || em_copy_out(y, v, 2 * N_SAMPLES * sizeof *v) != 0) {
        free(v);
        return NULL;
    }
    return v;
}
static em_tensor *check_categorical(em_tensor *const *in) {
    em_set_seed(SEED);
    int64_t *a = samples(in[0]), *next = samples(in[0]);
    em_set_seed(SEED);
    int64_t *again = samples(in[0]);
    em_tensor *out = NULL;
    if (a && next && again) {
        double count[4] = {0};
        bool support = true;
        int same = 0;
        for (int i = 0; i < N_SAMPLES; i++) {
            count[a[i]]++;
            support = support && a[N_SAMPLES + i] == 0;
            same += next[i] == a[i];
        }
        const double p[3] = {0.1, 0.2, 0.7};
        double ok[N_CHECKS] = {support && count[3] == 0, 0, 0, 0, memcmp(a, again, 2 * N_SAMPLES * sizeof *a) == 0,
                               same < N_SAMPLES * 9 / 10};
        for (int k = 0; k < 3; k++)
            ok[1 + k] = fabs(count[k] / N_SAMPLES - p[k]) <= 4 * sqrt(p[k] * (1 - p[k]) / N_SAMPLES);
        out = em_tensor_from(EM_F64, EM_SHAPE(N_CHECKS), ok);
    }
    free(a);
    free(next);
    free(again);
    return out;
}

#define ALL_PASS V(1, 1, 1, 1, 1, 1)
#define CHECKS(op, dt, label, fn) {op, dt, label, fn, 0, {{0}}, dt, EM_SHAPE(N_CHECKS), ALL_PASS, NULL, 0}

const fw_case fw_cases_random[] = {
    CHECKS("random_uniform", EM_F32, "random_uniform(2, 5) float32: support, moments, seeding", uniform_f32),
    CHECKS("random_uniform", EM_F64, "random_uniform(2, 5) float64: support, moments, seeding", uniform_f64),
    CHECKS("random_normal", EM_F32, "random_normal(1, 2) float32: finite, moments, seeding", normal_f32),
    CHECKS("random_normal", EM_F64, "random_normal(1, 2) float64: finite, moments, seeding", normal_f64),
    CHECKS("truncated_normal", EM_F32, "truncated_normal(-1, 0.5) float32: within 2 stddevs, moments, seeding",
           truncated_f32),
    CHECKS("truncated_normal", EM_F64, "truncated_normal(-1, 0.5) float64: within 2 stddevs, moments, seeding",
           truncated_f64),
    {"categorical", EM_F32, "categorical float32: support, frequencies, seeding", check_categorical, 1,
     {{EM_F32, EM_SHAPE(2, 4), cat_logits}}, EM_F64, EM_SHAPE(N_CHECKS), ALL_PASS, NULL, 0},
    {"categorical", EM_F64, "categorical float64: support, frequencies, seeding", check_categorical, 1,
     {{EM_F64, EM_SHAPE(2, 4), cat_logits}}, EM_F64, EM_SHAPE(N_CHECKS), ALL_PASS, NULL, 0},
    {.fn = NULL},
};

const gc_case gc_cases_random[] = {
    {.fn = NULL},
};
