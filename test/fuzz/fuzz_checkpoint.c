/* em_checkpoint_restore on arbitrary bytes, with a few variables made first.
 * The first input byte's low bit asks for the CRC at the end to be fixed up,
 * so that mutations reach past the checksum into the entries' checks. A
 * failed restore must leave every variable as it was. */
#include "fuzz.h"

#include <zlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!size) return 0;
    fz_begin();
    bool fix_crc = data[0] & 1;
    data++, size--;
    uint8_t *buf = malloc(size ? size : 1);
    FZ_CHECK(buf != NULL);
    memcpy(buf, data, size);
    if (fix_crc && size >= 4) {
        uint32_t crc = (uint32_t)crc32(crc32(0, NULL, 0), buf, (uInt)(size - 4));
        memcpy(buf + size - 4, &crc, 4);
    }
    em_tensor *vars[3] = {
        em_get_variable("a", EM_F32, EM_SHAPE(2, 3), EM_INIT_CONST(1.5)),
        em_get_variable("scope/b", EM_I64, EM_SHAPE(4), EM_INIT_CONST(7)),
        em_get_variable("s", EM_F64, EM_SHAPE0, EM_INIT_CONST(-2)),
    };
    em_tensor *before[3];
    for (int i = 0; i < 3; i++) FZ_CHECK(vars[i] && (before[i] = em_copy(vars[i])));
    int rc = em_checkpoint_restore(fz_file("ckpt", buf, size));
    free(buf);
    if (rc) {
        fz_failed_with_message();
        for (int i = 0; i < 3; i++) {
            size_t bytes = (size_t)em_numel(vars[i]) * em_dtype_size(em_tensor_dtype(vars[i]));
            FZ_CHECK(memcmp(em_data(vars[i]), em_data(before[i]), bytes) == 0);
        }
    } else {
        for (int i = 0; i < 3; i++) fz_touch(vars[i]);
        /* entries without a variable yet go to the variable made later */
        em_tensor *late = em_get_variable("late", EM_F32, EM_SHAPE(2), EM_INIT_CONST(0));
        if (late) fz_touch(late);
        else fz_failed_with_message();
    }
    fz_end();
    return 0;
}
