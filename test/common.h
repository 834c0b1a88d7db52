/* Shared by the Check suites: tensor comparisons and the gradient-check table. */
#ifndef EMBER_TEST_COMMON_H
#define EMBER_TEST_COMMON_H

#include <check.h>
#include <math.h>

#include "ember.h"
#include "op.h"

/* Runs a suite; the exit status of a test program: 0 when every test passed. */
int em_test_run(Suite *s);

/* Whether "/gpu:0" opens, asked in a child process: CUDA does not survive a
 * fork, and Check forks a process per test, so the runner itself must never
 * load the GPU. When there is none, `why` (of size n) gets the reason. */
bool em_test_gpu_present(char *why, size_t n);

/* Asserts that t has dtype `dtype`, `shape`, and elements close to expect
 * (|a - e| <= tol * max(1, |e|)); NaNs must match NaNs. */
#define ck_assert_tensor(t, dtype, shape, expect, tol) \
    em_test_assert_tensor((t), (dtype), (shape), (expect), (tol), __FILE__, __LINE__)
void em_test_assert_tensor(em_tensor *t, em_dtype dtype, em_shape shape, const double *expect, double tol,
                           const char *file, int line);

/* The largest |a - b| / max(1, |b|) over the elements of two tensors on any
 * devices (INFINITY when their sizes differ or a value is NaN). */
double em_test_max_rel_diff(em_tensor *a, em_tensor *b);

/* Asserts the call failed (t == NULL) with an error containing `needle`, then clears it. */
#define ck_assert_error(t, needle) em_test_assert_error((t) == NULL, (needle), __FILE__, __LINE__)
void em_test_assert_error(int failed, const char *needle, const char *file, int line);

/* A fresh directory /tmp/ember_<name>_XXXXXX for a test's files, written
 * into dir (at least 64 bytes); em_test_tmpdir_remove deletes it and all it holds. */
void em_test_tmpdir(const char *name, char *dir, size_t size);
void em_test_tmpdir_remove(const char *dir);
/* dir/name in one of eight rotating buffers: valid until the eighth call after it. */
const char *em_test_path(const char *dir, const char *name);

/* A float64 tensor of the shape with uniform values in [lo, hi), deterministic for a seed. */
em_tensor *em_test_uniform(em_shape shape, double lo, double hi, uint64_t seed);

/* One gradient-check case: fn builds an output from inputs; inputs are
 * float64 uniform in [lo, hi) unless make_input builds them (e.g. int labels).
 * Only inputs whose bit is NOT set in skip_mask are differentiated. */
typedef struct gc_case {
    em_op op;          /* the table op this case covers */
    const char *label; /* e.g. "add broadcast [3,1]+[4]" */
    int nin;
    em_shape shapes[4];
    em_tensor *(*fn)(em_tensor *const *in);
    double lo, hi;
    unsigned skip_mask;
    em_tensor *(*make_input)(int i); /* NULL: uniform; may return NULL for the default */
} gc_case;

/* One forward case: the op named `op` (its .def name) on inputs of the
 * dtype `dtype`, one of the dtypes its .def line accepts. test/test_ops.c
 * runs every case on every device present and fails for an op that lacks a
 * case for one of its dtypes. Expected values come from an independent
 * source: literals (computed with NumPy, or by hand, with the script or
 * formula beside them), or `ref`, which computes them in float64 from the
 * input values. */
typedef struct fw_input {
    em_dtype dtype;
    em_shape shape;
    const double *v; /* row-major values, converted to dtype; may hold NAN and INFINITY */
} fw_input;
typedef struct fw_case {
    const char *op;  /* the op this case covers */
    em_dtype dtype;  /* the accepted dtype it covers */
    const char *label;
    em_tensor *(*fn)(em_tensor *const *in); /* builds the output from the inputs */
    int nin;
    fw_input in[4];
    em_dtype out_dtype;
    em_shape out_shape;
    const double *expect; /* the expected values, or NULL when ref computes them */
    void (*ref)(const struct fw_case *c, double *expect); /* from c->in[k].v, em_shape_numel(out_shape) values */
    double tol; /* float outputs: |got - expected| <= tol * max(1, |expected|); integer and bool outputs are exact */
} fw_case;
/* Reference helpers for the cases' ref functions. */
/* Element i of `in` as its dtype holds it (float32 rounded, integers truncated, bool 0/1). */
double fw_held(const fw_input *in, int64_t i);
#define fw_held_in(c, k, i) fw_held(&(c)->in[k], (i))
/* All of c's input k as float64 (em_shape s), or zeros of shape s for k < 0 (malloc'd). */
double *fw_load(const struct fw_case *c, int k, em_shape s);
/* TensorFlow's padding rule for one spatial axis: SAME gives ceil(in / s)
 * outputs and pads max((out - 1) s + ek - in, 0) in total, the smaller half
 * before; VALID gives (in - ek) / s + 1 and no padding; ek = (k - 1) d + 1. */
void fw_out_dim(int64_t in, int64_t k, int s, int d, em_padding pad, int64_t *out, int64_t *before);
/* Small integers for inputs whose float32 sums stay exact (and pooling has
 * ties): random.Random(1).randint(-4, 4) and random.Random(2).randint(-4, 4). */
extern const double fw_ints_a[64], fw_ints_b[64];

/* bfloat16 and float16 as the tests compute them, independently of the library's bit-level code: v rounded
 * in double arithmetic (frexp, ldexp, nearbyint) to nearest even, overflowing to Inf and keeping subnormals;
 * and a rounded value's 16 bits (NaN: the default quiet NaN). */
double em_test_round_bf16(double v);
double em_test_round_f16(double v);
uint16_t em_test_bf16_bits(double rounded);
uint16_t em_test_f16_bits(double rounded);
/* The value of 16 bits, by the formats' definitions. */
double em_test_bf16_value(uint16_t bits);
double em_test_f16_value(uint16_t bits);

/* Literal values for a case: V(1, 2, 3). */
#define V(...) ((const double[]){__VA_ARGS__})

/* Each family's cases, in test/cases_<family>.c: gc_cases_<family> and
 * fw_cases_<family>, each ended by a row whose fn is NULL. The family list
 * is lib/ops/ops.def's. */
#define EM_FAMILY(family) extern const gc_case gc_cases_##family[]; extern const fw_case fw_cases_##family[];
#define EM_OP(...)
#include "ops/ops.def"
#undef EM_OP
#undef EM_FAMILY
typedef struct em_test_family {
    const char *name;
    const gc_case *gc;
    const fw_case *fw;
} em_test_family;
extern const em_test_family em_test_families[]; /* ended by a NULL name */

#endif
