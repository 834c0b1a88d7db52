/* The device family's forward cases (run by test_ops.c on every device) and
 * gradient-check cases (test_gradcheck.c). */
#include "common.h"

const fw_case fw_cases_device[] = {
    {.fn = NULL},
};

/* The copy's gradient is copied back: to_device(x) * x differentiates through both paths. */
static em_tensor *to_device_(em_tensor *const *in) { return em_mul(em_to_device(in[0], "/cpu:0"), in[0]); }

const gc_case gc_cases_device[] = {
    {EM_OP_COPY_TO_DEVICE, "to_device(x) * x [2,3]", 1, {EM_SHAPE(2, 3)}, to_device_, -1, 1, 0, NULL},
    {.fn = NULL},
};
