/* Shared by the fuzz targets (test/fuzz/fuzz_*.c): a reader over the fuzz
 * input, temp files on tmpfs, and the checks every target makes. The targets
 * build with clang's libFuzzer (`make fuzz`) and, through
 * test/test_fuzz_replay.c, with gcc to replay their corpora in `make test`. */
#ifndef EMBER_FUZZ_H
#define EMBER_FUZZ_H

#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* A failed invariant is a crash the fuzzer keeps. */
#define FZ_CHECK(cond)                                                                        \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                          \
        }                                                                                     \
    } while (0)

/* The fuzz input, read front to back; past its end every read gives 0. */
typedef struct fz {
    const uint8_t *p;
    size_t n;
} fz;

static inline unsigned fz_u8(fz *f) {
    if (!f->n) return 0;
    f->n--;
    return *f->p++;
}

/* A string ended by a NUL byte or by the input's end, into buf; false when
 * it has more than size - 1 characters (all of it is read all the same). */
static inline bool fz_str(fz *f, char *buf, size_t size) {
    size_t len = 0;
    bool fits = true;
    for (unsigned c; f->n && (c = fz_u8(f)) != 0;) {
        if (len + 1 < size) buf[len++] = (char)c;
        else fits = false;
    }
    buf[len] = '\0';
    return fits;
}

/* An integer in [lo, hi] (hi - lo < 65536). */
static inline int64_t fz_range(fz *f, int64_t lo, int64_t hi) {
    unsigned v = fz_u8(f) | fz_u8(f) << 8;
    return lo + (int64_t)(v % (uint64_t)(hi - lo + 1));
}

/* A size or index argument: usually small, sometimes extreme, to reach the
 * overflow checks. */
static inline int64_t fz_i64(fz *f) {
    static const int64_t extreme[] = {INT64_MAX, INT64_MIN, INT64_MAX / 2, -INT64_MAX / 2, (int64_t)1 << 32,
                                      INT32_MAX, INT32_MIN, 1 << 20};
    unsigned k = fz_u8(f);
    if (k >= 248) return extreme[k - 248];
    return (int64_t)(k % 16) - 6;
}

/* Large requests fail as out of memory (as they would on a small machine),
 * which also keeps the fuzzer inside its memory limit. */
static bool fz_fail_large(size_t bytes, void *ctx) {
    (void)ctx;
    return bytes > ((size_t)1 << 20);
}

static inline void fz_begin(void) { em__set_alloc_fail_hook(fz_fail_large, NULL); }

/* A call that failed must say why. */
static inline void fz_failed_with_message(void) {
    FZ_CHECK(em_last_error() != NULL);
    FZ_CHECK(em_last_error()[0] != '\0');
    em_clear_error();
}

/* Ends one input: frees the thread's state; nothing may stay alive. */
static inline void fz_end(void) {
    em_shutdown();
    em__set_alloc_fail_hook(NULL, NULL);
    FZ_CHECK(em_live_tensors() == 0);
}

/* Writes the input to a per-process file on tmpfs (the loaders take paths). */
static inline const char *fz_file(const char *tag, const uint8_t *data, size_t size) {
    static char path[128];
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(path, sizeof path, "%s/ember-fuzz-%s-%ld", dir, tag, (long)getpid());
    FILE *f = fopen(path, "wb");
    FZ_CHECK(f != NULL);
    FZ_CHECK(fwrite(data, 1, size, f) == size);
    FZ_CHECK(fclose(f) == 0);
    return path;
}

/* Reads a result's elements (every byte must be initialised and in bounds). */
static inline void fz_touch(em_tensor *t) {
    const uint8_t *p = em_data(t);
    if (!p) { /* a view made contiguous can run out of memory */
        fz_failed_with_message();
        return;
    }
    size_t bytes = (size_t)em_numel(t) * em_dtype_size(em_tensor_dtype(t));
    unsigned sum = 0;
    for (size_t i = 0; i < bytes; i++) sum += p[i];
    /* the branch makes MemorySanitizer and valgrind look at every byte */
    if (sum == 0xFFFFFFFFu) fprintf(stderr, " ");
}

#endif
