/* Streaming stores for kernels that compute an output a chunk at a time
 * into a buffer in cache (lib/ops/norm.c), inline: a call per chunk, which
 * spills and reloads the loop's vector registers around it, is as costly as
 * the stores themselves there. A kernel asks em__stream_output first (which
 * also finds the stores' width) and calls em__stream_fence before its results
 * are read. */
#ifndef EMBER_STREAM_STORE_H
#define EMBER_STREAM_STORE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <immintrin.h>
#endif

/* The widest streaming store the CPU has, in bytes: a 64-byte one writes a
 * whole line at once, where four 16-byte ones must meet in a write-combining
 * buffer (layer norm's forward pass at [131072, 768] ran at 70% of a copy
 * loop's bandwidth with 16-byte stores, near 90% with 64-byte ones). Set by
 * em__stream_output (tensor.c). */
extern atomic_int em__stream_width;

#ifdef __SSE2__ /* every x86-64 CPU */
/* Whole vectors from an aligned d; each returns the bytes it stored. */
__attribute__((target("avx512f"))) static inline size_t em__stream_64(char *d, const char *s, size_t bytes) {
    size_t at = 0;
    for (; at + 64 <= bytes; at += 64) _mm512_stream_si512((void *)(d + at), _mm512_loadu_si512(s + at));
    return at;
}
__attribute__((target("avx"))) static inline size_t em__stream_32(char *d, const char *s, size_t bytes) {
    size_t at = 0;
    for (; at + 32 <= bytes; at += 32) _mm256_stream_si256((__m256i *)(d + at), _mm256_loadu_si256((const __m256i *)(s + at)));
    return at;
}
static inline size_t em__stream_16(char *d, const char *s, size_t bytes) {
    size_t at = 0;
    for (; at + 16 <= bytes; at += 16) _mm_stream_si128((__m128i *)(d + at), _mm_loadu_si128((const __m128i *)(s + at)));
    return at;
}
#endif

/* Copies bytes from src (a buffer in cache) to dst with streaming stores,
 * ordinary ones for the parts of dst before the first aligned vector and
 * after the last. */
static inline __attribute__((always_inline)) void em__stream_store(void *dst, const void *src, size_t bytes) {
    char *d = dst;
    const char *s = src;
#ifdef __SSE2__
    const size_t width = (size_t)atomic_load_explicit(&em__stream_width, memory_order_relaxed);
    size_t head = (width - (uintptr_t)d % width) % width;
    if (head > bytes) head = bytes;
    if (head) memcpy(d, s, head);
    size_t at = head + (width == 64   ? em__stream_64(d + head, s + head, bytes - head)
                        : width == 32 ? em__stream_32(d + head, s + head, bytes - head)
                                      : em__stream_16(d + head, s + head, bytes - head));
    if (at < bytes) memcpy(d + at, s + at, bytes - at);
#else
    memcpy(d, s, bytes);
#endif
}

#endif
