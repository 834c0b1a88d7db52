/* Shared by the Check suites: tensor comparisons and the gradient-check table. */
#ifndef EMBER_TEST_COMMON_H
#define EMBER_TEST_COMMON_H

#include <check.h>
#include <math.h>

#include "ember.h"
#include "op.h"

/* Runs a suite; the exit status of a test program: 0 when every test passed. */
int em_test_run(Suite *s);

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

/* Each family's cases, in test/cases_<family>.c; a { .fn = NULL } row ends a list. */
extern const gc_case gc_cases_elementwise[];
extern const gc_case gc_cases_reduce[];
extern const gc_case gc_cases_matmul[];
extern const gc_case gc_cases_shape[];
extern const gc_case gc_cases_nn[];

#endif
