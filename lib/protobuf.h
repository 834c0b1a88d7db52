/* The protobuf wire format, encoded by hand into a growing buffer: the
 * TensorBoard event files (summary.c) and ONNX models (io/onnx.c) need a
 * few messages each, not a protobuf library. A failed allocation sets oom
 * and makes every later write a no-op, so a writer checks once at the end. */
#ifndef EMBER_PROTOBUF_H
#define EMBER_PROTOBUF_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { WIRE_VARINT = 0, WIRE_FIXED64 = 1, WIRE_BYTES = 2, WIRE_FIXED32 = 5 };

typedef struct pb {
    uint8_t *p;
    size_t n, cap;
    bool oom;
} pb;

static inline void pb_put(pb *b, const void *d, size_t n) {
    if (b->oom || !n) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static inline void pb_free(pb *b) {
    free(b->p);
    *b = (pb){0};
}

static inline void pb_varint(pb *b, uint64_t v) {
    uint8_t t[10];
    int n = 0;
    do {
        t[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    pb_put(b, t, (size_t)n);
}

static inline void put_le(pb *b, uint64_t v, int bytes) {
    uint8_t t[8];
    for (int i = 0; i < bytes; i++) t[i] = (uint8_t)(v >> (8 * i));
    pb_put(b, t, (size_t)bytes);
}

static inline void pb_key(pb *b, int field, int wire) { pb_varint(b, (uint64_t)field << 3 | (uint64_t)wire); }

static inline void pb_int(pb *b, int field, int64_t v) {
    pb_key(b, field, WIRE_VARINT);
    pb_varint(b, (uint64_t)v);
}

static inline void pb_double(pb *b, int field, double v) {
    uint64_t u;
    memcpy(&u, &v, 8);
    pb_key(b, field, WIRE_FIXED64);
    put_le(b, u, 8);
}

static inline void pb_float(pb *b, int field, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    pb_key(b, field, WIRE_FIXED32);
    put_le(b, u, 4);
}

static inline void pb_bytes(pb *b, int field, const void *d, size_t n) {
    pb_key(b, field, WIRE_BYTES);
    pb_varint(b, n);
    pb_put(b, d, n);
}

static inline void pb_str(pb *b, int field, const char *s) { pb_bytes(b, field, s, strlen(s)); }

/* Appends sub as an embedded message and frees it. */
static inline void pb_msg(pb *b, int field, pb *sub) {
    if (sub->oom) b->oom = true;
    pb_bytes(b, field, sub->p, sub->n);
    pb_free(sub);
}

static inline void pb_packed_doubles(pb *b, int field, const double *v, size_t n) {
    pb_key(b, field, WIRE_BYTES);
    pb_varint(b, n * 8);
    for (size_t i = 0; i < n; i++) {
        uint64_t u;
        memcpy(&u, &v[i], 8);
        put_le(b, u, 8);
    }
}

#endif
