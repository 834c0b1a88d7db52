/* em_graph_load on arbitrary bytes (lib/io/graph_file.c). The first input
 * byte's low bit asks for the header's size and checksum to be made right, so
 * that mutations reach past them into the item table's checks and the ops'
 * shape rules. Bit 1 makes a variable "w" first, so that loads meet a name
 * that exists (bit 2: and are given EM_LOAD_REUSE_VARIABLES). Every load gives
 * a graph or NULL with a message; a failed load creates no variable. */
#include "fuzz.h"
#include "crc32c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!size) return 0;
    fz_begin();
    unsigned mode = data[0];
    data++, size--;
    uint8_t *buf = malloc(size ? size : 1);
    FZ_CHECK(buf != NULL);
    memcpy(buf, data, size);
    if ((mode & 1) && size >= 64) { /* the header: u64 file size at byte 16, the CRC-32C at byte 60 */
        uint64_t n = size;
        memcpy(buf + 16, &n, 8);
        uint32_t crc = em__crc32c(em__crc32c(0, buf, 60), buf + 64, size - 64);
        memcpy(buf + 60, &crc, 4);
    }
    if (mode & 2) FZ_CHECK(em_get_variable("w", EM_F32, EM_SHAPE(4, 3), EM_INIT_CONST(1)) != NULL);
    em_tensor *vars[4];
    int before = em_trainable_variables(vars, 4);
    em_graph *g = em_graph_load_with(fz_file("emg", buf, size), NULL, mode & 4 ? EM_LOAD_REUSE_VARIABLES : 0);
    if (g) {
        em_graph_release(g);
    } else {
        fz_failed_with_message();
        FZ_CHECK(em_trainable_variables(vars, 4) == before);
    }
    free(buf);
    fz_end();
    return 0;
}
