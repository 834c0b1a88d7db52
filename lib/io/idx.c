/* IDX files (the MNIST format): a big-endian header 00 00 <type> <ndim>, ndim
 * big-endian uint32 sizes, then the data, row-major and big-endian. zlib reads
 * gzip and raw files alike. */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <zlib.h>

#define OP "load_idx"

typedef struct idx_type {
    uint8_t code;
    int size; /* bytes per element in the file */
    em_dtype dtype;
    const char *name;
} idx_type;

/* Each file type loads as the dtype of its width and sign. */
static const idx_type types[] = {
    {0x08, 1, EM_U8, "ubyte"}, {0x09, 1, EM_I8, "sbyte"},   {0x0B, 2, EM_I16, "short"},
    {0x0C, 4, EM_I32, "int"},  {0x0D, 4, EM_F32, "float"}, {0x0E, 8, EM_F64, "double"},
};

/* Reads up to n bytes; returns the count, or -1 on a zlib error. */
static int64_t gz_read(gzFile f, void *dst, int64_t n) {
    int64_t got = 0;
    while (got < n) {
        unsigned chunk = n - got > (1 << 30) ? 1u << 30 : (unsigned)(n - got);
        int r = gzread(f, (char *)dst + got, chunk);
        if (r < 0) return -1;
        if (r == 0) break;
        got += r;
    }
    return got;
}

static uint64_t be(const uint8_t *p, int size) {
    uint64_t v = 0;
    for (int i = 0; i < size; i++) v = v << 8 | p[i];
    return v;
}

/* Converts n big-endian elements of the file type, read into dst, into
 * dtype (of the same width) in place. */
static void convert(void *dst, int64_t n, const idx_type *ty) {
    uint8_t *raw = dst;
    if (ty->size == 1) return;
    for (int64_t i = n - 1; i >= 0; i--) {
        uint64_t u = be(raw + i * ty->size, ty->size);
        switch (ty->code) {
        case 0x0B: ((int16_t *)dst)[i] = (int16_t)(uint16_t)u; break;
        case 0x0C: ((int32_t *)dst)[i] = (int32_t)(uint32_t)u; break;
        case 0x0D: {
            uint32_t b = (uint32_t)u;
            memcpy((float *)dst + i, &b, 4);
            break;
        }
        default: memcpy((double *)dst + i, &u, 8); break;
        }
    }
}

/* Reports zlib's message for corrupt data, else a truncation. */
static void short_read(gzFile f, const char *path, const char *what, int64_t want, int64_t got) {
    int code = Z_OK;
    const char *msg = gzerror(f, &code);
    size_t k = strlen(path); /* zlib prefixes its message with the path */
    if (!strncmp(msg, path, k) && !strncmp(msg + k, ": ", 2)) msg += k + 2;
    /* zlib decompresses ahead, so a corrupt stream cannot be pinned on `what` */
    if (code == Z_DATA_ERROR || code == Z_MEM_ERROR)
        em__error(OP ": %s: corrupt gzip data: %s", path, msg);
    else if (code == Z_ERRNO)
        em__error(OP ": %s: read error: %s", path, strerror(errno));
    else if (want > 0)
        em__error(OP ": %s: truncated: the %s needs %lld bytes, the file holds %lld", path, what, (long long)want,
                  (long long)(got > 0 ? got : 0));
    else
        em__error(OP ": %s: truncated: the %s is missing", path, what);
}

em_tensor *em_load_idx(const char *path) {
    if (!path) {
        em__error(OP ": path is NULL");
        return NULL;
    }
    struct stat st;
    int err = stat(path, &st) ? errno : S_ISDIR(st.st_mode) ? EISDIR : 0;
    if (err) {
        em__error(OP ": cannot open %s: %s", path, strerror(err));
        return NULL;
    }
    gzFile f = gzopen(path, "rb");
    if (!f) {
        em__error(OP ": cannot open %s: %s", path, errno ? strerror(errno) : "out of memory");
        return NULL;
    }
    gzbuffer(f, 1 << 17);
    em_tensor *t = NULL;
    uint8_t head[4 + 4 * EM_MAX_DIMS];
    int64_t got = gz_read(f, head, 4);
    if (got != 4) {
        short_read(f, path, "header", 4, got);
        goto done;
    }
    const idx_type *ty = NULL;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (types[i].code == head[2]) ty = &types[i];
    if (head[0] || head[1] || !ty) {
        em__error(OP ": %s: not an IDX file: magic %02x %02x %02x %02x, expected 00 00 then a type byte "
                     "(08 ubyte, 09 sbyte, 0B short, 0C int, 0D float, 0E double)",
                  path, head[0], head[1], head[2], head[3]);
        goto done;
    }
    int ndim = head[3];
    if (ndim < 1 || ndim > EM_MAX_DIMS) {
        em__error(OP ": %s: %d dimensions in the header; 1 .. %d are supported", path, ndim, EM_MAX_DIMS);
        goto done;
    }
    got = gz_read(f, head + 4, 4 * ndim);
    if (got != 4 * ndim) {
        short_read(f, path, "header", 4 + 4 * ndim, 4 + got);
        goto done;
    }
    int64_t dims[EM_MAX_DIMS], numel = 1;
    bool overflow = false;
    for (int d = 0; d < ndim; d++) {
        dims[d] = (int64_t)be(head + 4 + 4 * d, 4);
        if (dims[d] && numel > (INT64_MAX / 8) / dims[d]) overflow = true;
        else numel *= dims[d];
    }
    char sb[160];
    em_shape shape = {.ndim = ndim};
    memcpy(shape.dims, dims, sizeof(int64_t) * (size_t)ndim);
    em_shape_str(shape, sb, sizeof sb);
    int64_t bytes = numel * ty->size, head_bytes = 4 + 4 * ndim;
    /* Sizes checked against the file before allocating: a raw file must match
     * exactly, and deflate cannot expand data more than about 1032 times. */
    bool raw = gzdirect(f);
    int64_t room = raw ? (int64_t)st.st_size - head_bytes : (int64_t)st.st_size * 1032 + 4096;
    if (overflow || bytes > room) {
        if (overflow || !raw)
            em__error(OP ": %s: header declares %s %s elements, too large for a %lld-byte file (corrupt header?)", path,
                      sb, ty->name, (long long)st.st_size);
        else
            em__error(OP ": %s: truncated: header declares %s %s elements (%lld bytes of data), the file holds %lld",
                      path, sb, ty->name, (long long)bytes, (long long)room);
        goto done;
    }
    if (raw && bytes < room) {
        em__error(OP ": %s: %lld bytes after the %s %s data that the header declares", path, (long long)(room - bytes),
                  sb, ty->name);
        goto done;
    }
    t = em__alloc(ty->dtype, ndim, dims);
    if (!t) goto done;
    got = gz_read(f, t->data, bytes);
    if (got != bytes) {
        short_read(f, path, "data", bytes, got);
        goto fail;
    }
    uint8_t extra;
    int r = gzread(f, &extra, 1), code = Z_OK; /* also makes zlib check the gzip trailer */
    gzerror(f, &code);
    if (r > 0) {
        em__error(OP ": %s: more data than the header's %s %s elements", path, sb, ty->name);
        goto fail;
    }
    if (r < 0 || code != Z_OK) {
        short_read(f, path, "gzip trailer", 0, 0);
        goto fail;
    }
    convert(t->data, numel, ty);
    em__own(t);
    goto done;
fail:
    em__unref(t);
    t = NULL;
done:
    gzclose(f);
    return t;
}
