/* em_load_idx on arbitrary bytes (raw or gzip): a tensor whose size agrees
 * with its header, or NULL with a message. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_begin();
    em_tensor *t = em_load_idx(fz_file("idx", data, size));
    if (t) {
        FZ_CHECK(em_ndim(t) >= 1);
        fz_touch(t);
    } else {
        fz_failed_with_message();
    }
    fz_end();
    return 0;
}
