/* em_load_npy on arbitrary bytes; what loads must save and load back equal. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_begin();
    em_tensor *t = em_load_npy(fz_file("npy", data, size));
    if (t) {
        fz_touch(t);
        static char again[160];
        snprintf(again, sizeof again, "%s.again", fz_file("npy", data, size));
        FZ_CHECK(em_save_npy(again, t) == 0);
        em_tensor *u = em_load_npy(again);
        unlink(again);
        FZ_CHECK(u != NULL);
        FZ_CHECK(em_tensor_dtype(u) == em_tensor_dtype(t));
        FZ_CHECK(em_shape_equal(em_tensor_shape(u), em_tensor_shape(t)));
        size_t bytes = (size_t)em_numel(t) * em_dtype_size(em_tensor_dtype(t));
        FZ_CHECK(bytes == 0 || memcmp(em_data(u), em_data(t), bytes) == 0);
    } else {
        fz_failed_with_message();
    }
    fz_end();
    return 0;
}
