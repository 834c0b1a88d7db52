/* An open-addressing map from pointers to int64 values, for the tape's
 * backward pass and the tracer. Keys are never removed. */
#ifndef EMBER_PTRMAP_H
#define EMBER_PTRMAP_H

#include <stdint.h>
#include <stdlib.h>

typedef struct em_ptrmap {
    const void **keys;
    int64_t *values;
    size_t cap, count; /* cap is 0 or a power of two */
} em_ptrmap;

static inline size_t em__ptr_hash(const void *p) {
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x;
}

static inline size_t em__ptrmap_slot(const em_ptrmap *m, const void *key) {
    size_t i = em__ptr_hash(key) & (m->cap - 1);
    while (m->keys[i] && m->keys[i] != key) i = (i + 1) & (m->cap - 1);
    return i;
}

/* The value of key, or -1 when absent. */
static inline int64_t em__ptrmap_get(const em_ptrmap *m, const void *key) {
    if (!m->cap) return -1;
    size_t i = em__ptrmap_slot(m, key);
    return m->keys[i] ? m->values[i] : -1;
}

/* Sets key to value; 0, or -1 when out of memory. */
static inline int em__ptrmap_put(em_ptrmap *m, const void *key, int64_t value) {
    if (2 * (m->count + 1) > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        em_ptrmap bigger = {calloc(cap, sizeof(void *)), malloc(cap * sizeof(int64_t)), cap, 0};
        if (!bigger.keys || !bigger.values) {
            free(bigger.keys);
            free(bigger.values);
            return -1;
        }
        for (size_t i = 0; i < m->cap; i++)
            if (m->keys[i]) {
                size_t j = em__ptrmap_slot(&bigger, m->keys[i]);
                bigger.keys[j] = m->keys[i];
                bigger.values[j] = m->values[i];
                bigger.count++;
            }
        free(m->keys);
        free(m->values);
        *m = bigger;
    }
    size_t i = em__ptrmap_slot(m, key);
    if (!m->keys[i]) m->count++;
    m->keys[i] = key;
    m->values[i] = value;
    return 0;
}

static inline void em__ptrmap_free(em_ptrmap *m) {
    free(m->keys);
    free(m->values);
    *m = (em_ptrmap){0};
}

#endif
