/* A user's op library for ember-bench --load (test/test_custom_op.c): its
 * initializer registers test_scale2 (y = 2x) with the Ember of the program
 * that loads it. The kernel writes "ran" to the file EMBER_TEST_MARK names,
 * so the test sees that the op ember-bench timed is this one. */
#include <ember.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int scale2_shape(const em_custom_call *c, em_dtype *dt, em_shape *sh) {
    dt[0] = c->dtypes[0];
    sh[0] = c->shapes[0];
    return 0;
}

static int scale2_cpu(const em_custom_call *c, const void *const *in, void *const *out) {
    int64_t n = em_shape_numel(c->shapes[0]);
    if (c->dtypes[0] == EM_F32)
        for (int64_t i = 0; i < n; i++) ((float *)out[0])[i] = 2 * ((const float *)in[0])[i];
    else if (c->dtypes[0] == EM_F64)
        for (int64_t i = 0; i < n; i++) ((double *)out[0])[i] = 2 * ((const double *)in[0])[i];
    else {
        snprintf(c->error, c->error_size, "float32 and float64 only, not %s", em_dtype_name(c->dtypes[0]));
        return -1;
    }
    static int marked;
    const char *mark = getenv("EMBER_TEST_MARK");
    if (mark && !marked++) {
        FILE *f = fopen(mark, "w");
        if (f) fputs("ran\n", f), fclose(f);
    }
    return 0;
}

static int scale2_gradient(const em_custom_call *c, em_tensor *const *x, em_tensor *const *y, em_tensor *const *gy,
                           em_tensor *const *saved, em_tensor **gx) {
    (void)c, (void)x, (void)y, (void)saved;
    gx[0] = em_mul_scalar(gy[0], 2);
    return gx[0] ? 0 : -1;
}

__attribute__((constructor)) static void register_ops(void) {
    em_op_register(&(em_custom_op){.name = "test_scale2", .arity = 1, .flags = EM_CUSTOM_ELEMENTWISE,
                                   .shape = scale2_shape, .cpu = scale2_cpu, .gradient = scale2_gradient});
}
