/* Checkpoints: every variable of the thread in one file.
 *
 *   "EMBERCKP"  u32 version  u32 count
 *   count x { u32 name_len  name  u8 dtype  u8 ndim  i64 dims[ndim]  data }
 *   version 2 only: u32 nvalues, nvalues x { u8 kind  u32 key_len  key  value }
 *     (kind 0: f64; 1: u32 len + bytes; 2: u64; see lib/checkpoint.h)
 *   u32 crc32 (zlib's) of every byte before it
 *
 * Integers and data are little-endian. em_checkpoint_save writes version 1;
 * the checkpoint manager writes version 2, whose values hold the step, the
 * random stream and the program's own values. Both are read. A save is
 * written as every file Ember writes (lib/file.h): to a locked temporary,
 * synced, then renamed over path, so a failed or interrupted save never
 * damages the previous checkpoint. A restore reads and checks the whole file
 * before it changes any variable. */
#include "../checkpoint.h"
#include "../file.h"
#include "../variable.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "checkpoint.c writes tensor data as stored in memory: a little-endian host is required"
#endif

static const char MAGIC[8] = {'E', 'M', 'B', 'E', 'R', 'C', 'K', 'P'};
#define VERSION 2u /* the newest this Ember reads */
#define MAX_NAME (1u << 16)

/* ---- saving ---- */

/* The checkpoint's bytes, and the CRC of all of them. */
typedef struct {
    em__file_out *out;
    uLong crc;
} writer;

static void put(writer *w, const void *p, size_t n) {
    const unsigned char *b = p;
    while (n) {
        size_t k = n < (1u << 30) ? n : (1u << 30); /* crc32 takes a uInt length */
        w->crc = crc32(w->crc, b, (uInt)k);
        em__file_put(w->out, b, k);
        b += k;
        n -= k;
    }
}

static void put_u32(writer *w, uint32_t x) { put(w, &x, 4); }

typedef struct {
    const char *op;
    int n;
    const em__ckpt_value *values;
} ckpt_ctx;

static int fill_checkpoint(em__file_out *out, void *ctx_) {
    ckpt_ctx *c = ctx_;
    writer wr = {out, crc32(0, NULL, 0)}, *w = &wr;
    em_tensor *const *vars;
    int n = em__variables_list(&vars);
    put(w, MAGIC, sizeof MAGIC);
    put_u32(w, c->values ? 2u : 1u);
    put_u32(w, (uint32_t)n);
    for (int i = 0; i < n; i++) {
        const em_tensor *v = vars[i];
        uint32_t nlen = (uint32_t)strlen(v->var->name);
        uint8_t head[2] = {v->dtype, v->ndim};
        put_u32(w, nlen);
        put(w, v->var->name, nlen);
        put(w, head, 2);
        put(w, v->shape, sizeof(int64_t) * v->ndim);
        em_tensor *host = em__is_gpu(v->device) ? em__to_host((em_tensor *)v) : NULL;
        if (em__is_gpu(v->device) && !host) return -1;
        put(w, host ? host->data : v->data, (size_t)v->numel * em_dtype_size((em_dtype)v->dtype));
        if (host) em__unref(host);
    }
    if (c->values) {
        put_u32(w, (uint32_t)c->n);
        for (int i = 0; i < c->n; i++) {
            const em__ckpt_value *x = &c->values[i];
            uint8_t kind = (uint8_t)x->kind;
            put(w, &kind, 1);
            put_u32(w, (uint32_t)strlen(x->key));
            put(w, x->key, strlen(x->key));
            if (x->kind == EM__CKPT_F64) put(w, &x->f64, 8);
            else if (x->kind == EM__CKPT_U64) put(w, &x->u64, 8);
            else {
                put_u32(w, (uint32_t)strlen(x->str));
                put(w, x->str, strlen(x->str));
            }
        }
    }
    uint32_t crc = (uint32_t)w->crc;
    put(w, &crc, 4);
    return 0;
}

int em__checkpoint_write(const char *op, const char *path, int n, const em__ckpt_value *values) {
    return em__write_atomic(op, path, fill_checkpoint, &(ckpt_ctx){op, n, values});
}

int em_checkpoint_save(const char *path) { return em__checkpoint_write("checkpoint_save", path, 0, NULL); }

/* ---- reading ---- */

typedef struct {
    const char *name;
    uint32_t name_len;
    em_dtype dtype;
    int ndim;
    int64_t dims[EM_MAX_DIMS];
    const unsigned char *data;
    size_t bytes;
    bool used;
} entry;

struct em_ckpt_pending {
    char *path;
    unsigned char *buf;
    entry *e;
    uint32_t n;
};

void em__ckpt_pending_free(struct em_ckpt_pending *p) {
    if (!p) return;
    free(p->path);
    free(p->buf);
    free(p->e);
    free(p);
}

static uint32_t get_u32(const unsigned char *p) {
    uint32_t x;
    memcpy(&x, p, 4);
    return x;
}

/* Checks the values section of a version 2 file, buf[*at, end): moves *at
 * past it and sets *count. -1 with an error. */
static int parse_values(const char *op, const char *path, const unsigned char *buf, size_t end, size_t *at,
                        uint32_t *count) {
    if (end - *at < 4) {
        em__error("%s: %s is truncated or damaged: it ends before its values", op, path);
        return -1;
    }
    *count = get_u32(buf + *at);
    *at += 4;
    for (uint32_t i = 0; i < *count; i++) {
        bool ok = end - *at >= 5;
        uint8_t kind = ok ? buf[*at] : 0;
        uint32_t klen = ok ? get_u32(buf + *at + 1) : 0;
        ok = ok && kind <= EM__CKPT_U64 && klen > 0 && klen <= EM__CKPT_MAX_KEY && end - *at - 5 >= klen;
        if (ok) {
            *at += 5 + klen;
            if (kind != EM__CKPT_STRING) {
                ok = end - *at >= 8;
                *at += ok ? 8 : 0;
            } else {
                uint32_t slen = end - *at >= 4 ? get_u32(buf + *at) : UINT32_MAX;
                ok = slen <= EM__CKPT_MAX_STRING && end - *at - 4 >= slen;
                *at += ok ? 4 + (size_t)slen : 0;
            }
        }
        if (!ok) {
            em__error("%s: %s is truncated or damaged: it ends inside value %u of %u", op, path, i + 1, *count);
            return -1;
        }
    }
    return 0;
}

/* Parses and checks buf; fills *entries (count *n) and, for a version 2
 * file, the offset and count of its values (0 and 0 for version 1). -1 with
 * an error. */
static int parse(const char *op, const char *path, const unsigned char *buf, size_t size, entry **entries,
                 uint32_t *n, size_t *values_at, uint32_t *nvalues) {
    *entries = NULL;
    *values_at = 0;
    *nvalues = 0;
    if (size < sizeof MAGIC + 12 || memcmp(buf, MAGIC, sizeof MAGIC) != 0) {
        em__error("%s: %s is not an Ember checkpoint (%s)", op, path,
                  size < sizeof MAGIC ? "too short" : "bad magic number");
        return -1;
    }
    uint32_t version = get_u32(buf + 8), count = get_u32(buf + 12);
    if (version < 1 || version > VERSION) {
        em__error("%s: %s has format version %u; this Ember reads versions 1 to %u", op, path, version, VERSION);
        return -1;
    }
    size_t end = size - 4, at = 16;
    /* An entry takes at least 6 bytes: a corrupt count must not size calloc. */
    if (count > (end - at) / 6) {
        em__error("%s: %s is truncated or damaged: it declares %u entries, more than its %zu bytes can hold", op, path,
                  count, size);
        return -1;
    }
    entry *e = calloc(count ? count : 1, sizeof *e);
    if (!e) {
        em__error("%s: %s: out of memory for %u entries", op, path, count);
        return -1;
    }
    for (uint32_t i = 0; i < count; i++) {
        entry *x = &e[i];
        bool ok = end - at >= 4;
        if (ok) {
            x->name_len = get_u32(buf + at);
            ok = x->name_len < MAX_NAME && end - at - 4 >= (size_t)x->name_len + 2;
        }
        if (ok) {
            x->name = (const char *)buf + at + 4;
            at += 4 + x->name_len;
            x->dtype = (em_dtype)buf[at];
            x->ndim = buf[at + 1];
            at += 2;
            ok = (unsigned)x->dtype < EM_DTYPE_COUNT && x->ndim <= EM_MAX_DIMS && end - at >= 8 * (size_t)x->ndim;
        }
        if (ok) {
            memcpy(x->dims, buf + at, 8 * (size_t)x->ndim);
            at += 8 * (size_t)x->ndim;
            uint64_t bytes = em_dtype_size(x->dtype);
            for (int d = 0; ok && d < x->ndim; d++) {
                ok = x->dims[d] >= 0 && (x->dims[d] == 0 || bytes <= (uint64_t)(end - at) / (uint64_t)x->dims[d]);
                bytes *= (uint64_t)x->dims[d];
            }
            ok = ok && bytes <= end - at;
            x->bytes = (size_t)bytes;
            x->data = buf + at;
            at += x->bytes;
        }
        if (!ok) {
            em__error("%s: %s is truncated or damaged: it ends inside entry %u of %u%s%.*s%s", op, path, i + 1, count,
                      x->name ? " (" : "", x->name ? (int)x->name_len : 0, x->name ? x->name : "",
                      x->name ? ")" : "");
            free(e);
            return -1;
        }
    }
    if (version >= 2) {
        *values_at = at;
        if (parse_values(op, path, buf, end, &at, nvalues)) {
            free(e);
            return -1;
        }
    }
    if (at != end) {
        em__error("%s: %s is damaged: %zu unexpected bytes after the last of its %u %s", op, path, end - at,
                  version >= 2 ? *nvalues : count, version >= 2 ? "values" : "entries");
        free(e);
        return -1;
    }
    uint32_t stored = get_u32(buf + end), computed = 0;
    uLong crc = crc32(0, NULL, 0);
    for (size_t k = 0; k < end; k += 1u << 30)
        crc = crc32(crc, buf + k, (uInt)(end - k < (1u << 30) ? end - k : (1u << 30)));
    computed = (uint32_t)crc;
    if (stored != computed) {
        em__error("%s: %s is damaged: checksum mismatch (stored %08x, computed %08x)", op, path, stored, computed);
        free(e);
        return -1;
    }
    *entries = e;
    *n = count;
    return 0;
}

static bool named(const entry *x, const char *name) {
    return strlen(name) == x->name_len && memcmp(x->name, name, x->name_len) == 0;
}

/* Checks that x can fill v; -1 with an error naming both shapes. */
static int check_entry(const char *op, const char *path, const entry *x, const em_tensor *v) {
    char b1[160], b2[160];
    em_shape s = {.ndim = x->ndim};
    memcpy(s.dims, x->dims, sizeof(int64_t) * (size_t)x->ndim);
    if (x->dtype != v->dtype || !em_shape_equal(s, em__shape_of(v))) {
        em__error("%s: variable %s is %s %s here but %s %s in %s", op, v->var->name, em_dtype_name((em_dtype)v->dtype),
                  em__tshape(v, b1, sizeof b1), em_dtype_name(x->dtype), em_shape_str(s, b2, sizeof b2), path);
        return -1;
    }
    return 0;
}

int em__ckpt_take(struct em_ckpt_pending *p, em_tensor *v, const char *op) {
    for (uint32_t i = 0; i < p->n; i++) {
        entry *x = &p->e[i];
        if (x->used || !named(x, v->var->name)) continue;
        if (check_entry(op, p->path, x, v)) return -1;
        memcpy(v->data, x->data, x->bytes);
        x->used = true;
        return 0;
    }
    return 0;
}

void em__ckpt_values_free(em__ckpt_value *v, int n) {
    for (int i = 0; v && i < n; i++) {
        free(v[i].key);
        free(v[i].str);
    }
    free(v);
}

/* The values section at buf + at (checked by parse): a NEW array. -1 with an error. */
static int decode_values(const char *op, const unsigned char *buf, size_t at, uint32_t n, em__ckpt_value **out) {
    em__ckpt_value *v = calloc(n ? n : 1, sizeof *v);
    if (!v) {
        em__error("%s: out of memory for %u values", op, n);
        return -1;
    }
    at += 4;
    for (uint32_t i = 0; i < n; i++) {
        v[i].kind = buf[at];
        uint32_t klen = get_u32(buf + at + 1);
        v[i].key = strndup((const char *)buf + at + 5, klen);
        at += 5 + klen;
        if (v[i].kind == EM__CKPT_F64) memcpy(&v[i].f64, buf + at, 8), at += 8;
        else if (v[i].kind == EM__CKPT_U64) memcpy(&v[i].u64, buf + at, 8), at += 8;
        else {
            uint32_t slen = get_u32(buf + at);
            v[i].str = strndup((const char *)buf + at + 4, slen);
            at += 4 + (size_t)slen;
        }
        if (!v[i].key || (v[i].kind == EM__CKPT_STRING && !v[i].str)) {
            em__ckpt_values_free(v, (int)i + 1);
            em__error("%s: out of memory for %u values", op, n);
            return -1;
        }
    }
    *out = v;
    return 0;
}

int em__checkpoint_read(const char *op, const char *path, bool apply, em__ckpt_value **values, int *nvalues) {
    if (values) *values = NULL;
    if (nvalues) *nvalues = 0;
    if (!path || !*path) {
        em__error("%s: the path is empty", op);
        return -1;
    }
    struct em_ckpt_pending **pending = em__ckpt_pending();
    if (!pending) return -1;
    size_t size;
    unsigned char *buf = em__read_file(op, path, &size);
    if (!buf) return EM__CKPT_UNUSABLE;
    entry *e;
    uint32_t ne, nv_file = 0;
    size_t values_at;
    em_tensor *const *vars;
    int nv = em__variables_list(&vars);
    int *match = malloc(sizeof *match * (size_t)(nv ? nv : 1));
    struct em_ckpt_pending *p = calloc(1, sizeof *p);
    char *pcopy = strdup(path);
    em__ckpt_value *vals = NULL;
    int rc = -1;
    if (!match || !p || !pcopy) {
        em__error("%s: out of memory", op);
        goto fail_alloc;
    }
    if (parse(op, path, buf, size, &e, &ne, &values_at, &nv_file)) {
        rc = EM__CKPT_UNUSABLE;
        goto fail_alloc;
    }
    if (values && values_at && decode_values(op, buf, values_at, nv_file, &vals)) goto fail;
    if (!apply) {
        free(e);
        free(match);
        free(p);
        free(pcopy);
        free(buf);
        if (values) *values = vals, *nvalues = vals ? (int)nv_file : 0;
        return 0;
    }
    /* Files list variables in creation order, so searching on from the last
     * match is usually one step. */
    uint32_t hint = 0;
    for (int i = 0; i < nv; i++) {
        uint32_t k = 0;
        while (k < ne && !named(&e[(hint + k) % ne], vars[i]->var->name)) k++;
        if (k == ne) {
            em__error("%s: variable %s is not in %s (it holds %u variables)", op, vars[i]->var->name, path, ne);
            goto fail;
        }
        match[i] = (int)((hint + k) % ne);
        hint = (uint32_t)match[i] + 1;
        if (check_entry(op, path, &e[match[i]], vars[i])) goto fail;
    }
    for (int i = 0; i < nv; i++) {
        em_tensor *v = vars[i];
        if (em__is_gpu(v->device)) {
            if (em__gpu->copy(v->data, v->device - EM_GPU_BASE, e[match[i]].data, -1, e[match[i]].bytes)) goto fail;
        } else {
            memcpy(v->data, e[match[i]].data, e[match[i]].bytes);
        }
        e[match[i]].used = true;
    }
    free(match);
    /* The rest waits for variables made later (e.g. an optimizer's slots). */
    em__ckpt_pending_free(*pending);
    *p = (struct em_ckpt_pending){pcopy, buf, e, ne};
    *pending = p;
    if (values) *values = vals, *nvalues = vals ? (int)nv_file : 0;
    return 0;
fail:
    free(e);
fail_alloc:
    em__ckpt_values_free(vals, (int)nv_file);
    free(match);
    free(p);
    free(pcopy);
    free(buf);
    return rc;
}

int em_checkpoint_restore(const char *path) {
    return em__checkpoint_read("checkpoint_restore", path, true, NULL, NULL) ? -1 : 0;
}
