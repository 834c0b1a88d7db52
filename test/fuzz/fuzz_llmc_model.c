/* em_llmc_load_model on arbitrary bytes; what loads must save and load back equal (a bfloat16 file comes
 * back as float32 of the same values). */
#include "fuzz.h"

#include "ember/llmc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_begin();
    em_tensor *p[EM_LLMC_PARAM_COUNT], *q[EM_LLMC_PARAM_COUNT];
    em_llmc_config c, d;
    if (em_llmc_load_model(fz_file("llmc_model", data, size), NULL, &c, p) == 0) {
        static char again[160];
        snprintf(again, sizeof again, "%s.again", fz_file("llmc_model", data, size));
        for (int i = 0; i < EM_LLMC_PARAM_COUNT; i++) fz_touch(p[i]);
        FZ_CHECK(em_llmc_save_model(again, &c, p) == 0);
        FZ_CHECK(em_llmc_load_model(again, &c, &d, q) == 0);
        unlink(again);
        FZ_CHECK(memcmp(&c, &d, sizeof c) == 0);
        for (int i = 0; i < EM_LLMC_PARAM_COUNT; i++)
            FZ_CHECK(memcmp(em_data(p[i]), em_data(q[i]), (size_t)em_numel(p[i]) * 4) == 0);
    } else {
        fz_failed_with_message();
    }
    fz_end();
    return 0;
}
