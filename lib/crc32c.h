/* CRC-32C (Castagnoli), as TFRecord framing, checkpoints and saved graphs
 * need it. Header-only; SSE4.2's crc32 instruction 8 bytes at a time where
 * the CPU has it (a saved graph's weights are checked at the speed a disk
 * reads them), else four bits at a time through a 16-entry table. */
#ifndef EMBER_CRC32C_H
#define EMBER_CRC32C_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static inline uint32_t em__crc32c_sse42(uint32_t crc, const uint8_t *p, size_t n) {
    uint64_t c = (uint32_t)~crc;
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
    }
    uint32_t c32 = (uint32_t)c;
    for (; n; n--) c32 = __builtin_ia32_crc32qi(c32, *p++);
    return ~c32;
}
#endif

/* Continues a CRC: pass 0 to start; the result of one call feeds the next. */
static inline uint32_t em__crc32c(uint32_t crc, const void *data, size_t n) {
    static const uint32_t nib[16] = {
        0x00000000, 0x105ec76f, 0x20bd8ede, 0x30e349b1, 0x417b1dbc, 0x5125dad3, 0x61c69362, 0x7198540d,
        0x82f63b78, 0x92a8fc17, 0xa24bb5a6, 0xb21572c9, 0xc38d26c4, 0xd3d3e1ab, 0xe330a81a, 0xf36e6f75,
    };
    const uint8_t *p = data;
#if defined(__x86_64__)
    if (n >= 64 && __builtin_cpu_supports("sse4.2")) return em__crc32c_sse42(crc, p, n);
#endif
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
