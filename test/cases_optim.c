/* The optim family's forward cases (run by test_ops.c on every device) and
 * gradient-check cases (test_gradcheck.c). */
#include "common.h"

const fw_case fw_cases_optim[] = {
    {.fn = NULL},
};

const gc_case gc_cases_optim[] = {
    {.fn = NULL},
};
