/* em_fused_batch_norm: batch norm with moving averages kept as variables, as tf.layers.batch_normalization
 * keeps them. Training normalizes by the batch's statistics (the fused op of lib/ops/batch_norm.c) and moves
 * the averages toward them; inference normalizes by the averages. */
#include "internal.h"

#include <stdio.h>

em_tensor *em_fused_batch_norm(em_tensor *x, em_tensor *scale, em_tensor *offset, double eps, double momentum,
                               bool training, const char *name) {
    if (!x || !scale || !offset) return em__null_input("fused_batch_norm");
    if (!name || !*name) {
        em__error("fused_batch_norm: name must name the moving averages' variable scope, got %s", name ? "\"\"" : "NULL");
        return NULL;
    }
    if (!(momentum >= 0 && momentum <= 1)) {
        em__error("fused_batch_norm: momentum must be in [0, 1], got %g", momentum);
        return NULL;
    }
    if (x->ndim < 1 || !em__is_float((em_dtype)x->dtype)) {
        char b[160];
        em__error("fused_batch_norm: x %s %s must be float32 or float64 with a channel axis",
                  em_dtype_name((em_dtype)x->dtype), em__tshape(x, b, sizeof b));
        return NULL;
    }
    em_dtype dt = (em_dtype)x->dtype;
    int64_t C = x->shape[x->ndim - 1], rows = C ? x->numel / C : 0;
    if (em_variable_scope_begin(name, EM_REUSE_AUTO)) return NULL;
    em_tensor *moving_mean = em_get_variable_untrainable("moving_mean", dt, EM_SHAPE(C), EM_INIT_CONST(0));
    em_tensor *moving_var = em_get_variable_untrainable("moving_variance", dt, EM_SHAPE(C), EM_INIT_CONST(1));
    em_variable_scope_end();
    if (!moving_mean || !moving_var) return NULL;
    if (!training) return em_batch_normalization(x, moving_mean, moving_var, offset, scale, eps);
    em_tensor *y, *mean, *var;
    em_scope_begin();
    int rc = em__batch_norm_train(x, scale, offset, eps, &y, &mean, &var);
    if (rc == 0) {
        /* the moving variance takes the unbiased estimate, as TF's fused kernel and PyTorch give it */
        double bessel = rows > 1 ? (double)rows / (double)(rows - 1) : 1;
        em_tensor *new_mean = em_add(em_mul_scalar(moving_mean, momentum), em_mul_scalar(mean, 1 - momentum));
        em_tensor *new_var = em_add(em_mul_scalar(moving_var, momentum), em_mul_scalar(var, (1 - momentum) * bessel));
        rc = new_mean && new_var && !em_assign(moving_mean, new_mean) && !em_assign(moving_var, new_var) ? 0 : -1;
    }
    y = rc == 0 ? em_escape(y) : NULL;
    em_scope_end();
    return y;
}
