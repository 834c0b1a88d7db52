/* CRC-32C (Castagnoli), as TFRecord framing and checkpoints need it.
 * Header-only; four bits at a time through a 16-entry table. */
#ifndef EMBER_CRC32C_H
#define EMBER_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continues a CRC: pass 0 to start; the result of one call feeds the next. */
static inline uint32_t em__crc32c(uint32_t crc, const void *data, size_t n) {
    static const uint32_t nib[16] = {
        0x00000000, 0x105ec76f, 0x20bd8ede, 0x30e349b1, 0x417b1dbc, 0x5125dad3, 0x61c69362, 0x7198540d,
        0x82f63b78, 0x92a8fc17, 0xa24bb5a6, 0xb21572c9, 0xc38d26c4, 0xd3d3e1ab, 0xe330a81a, 0xf36e6f75,
    };
    const uint8_t *p = data;
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        crc = (crc >> 4) ^ nib[crc & 15];
        crc = (crc >> 4) ^ nib[crc & 15];
    }
    return ~crc;
}

/* TFRecord's masked CRC: a CRC of data that itself holds CRCs stays robust. */
static inline uint32_t em__crc32c_masked(const void *data, size_t n) {
    uint32_t crc = em__crc32c(0, data, n);
    return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

#endif
