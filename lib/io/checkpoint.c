/* Checkpoints: every variable of the thread in one file.
 *
 *   "EMBERCKP"  u32 version  u32 count
 *   count x { u32 name_len  name  u8 dtype  u8 ndim  i64 dims[ndim]  data }
 *   u32 crc32 (zlib's) of every byte before it
 *
 * Integers and data are little-endian. A save goes to "<path>.tmp.<pid>",
 * is synced, then renamed over path (and the directory synced), so a failed
 * or interrupted save never damages the previous checkpoint. A restore reads
 * and checks the whole file before it changes any variable. */
#include "../variable.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "checkpoint.c writes tensor data as stored in memory: a little-endian host is required"
#endif

static const char MAGIC[8] = {'E', 'M', 'B', 'E', 'R', 'C', 'K', 'P'};
#define VERSION 1u
#define MAX_NAME (1u << 16)

/* ---- saving ---- */

typedef struct {
    FILE *f;
    uLong crc;
    int err; /* errno of the first failed write */
} writer;

static void put(writer *w, const void *p, size_t n) {
    const unsigned char *b = p;
    while (!w->err && n) {
        size_t k = n < (1u << 30) ? n : (1u << 30); /* crc32 takes a uInt length */
        w->crc = crc32(w->crc, b, (uInt)k);
        if (fwrite(b, 1, k, w->f) != k) w->err = errno ? errno : EIO;
        b += k;
        n -= k;
    }
}

static void put_u32(writer *w, uint32_t x) { put(w, &x, 4); }

static int sync_dir(const char *path) {
    char *copy = strdup(path);
    if (!copy) return ENOMEM;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (fd < 0) return errno;
    int rc = fsync(fd) ? errno : 0;
    close(fd);
    return rc == EINVAL ? 0 : rc; /* some file systems cannot sync a directory */
}

int em_checkpoint_save(const char *path) {
    const char *op = "checkpoint_save";
    if (!path || !*path) {
        em__error("%s: the path is empty", op);
        return -1;
    }
    em_tensor *const *vars;
    int n = em__variables_list(&vars);
    size_t len = strlen(path) + 32;
    char *tmp = malloc(len);
    if (!tmp) {
        em__error("%s: out of memory", op);
        return -1;
    }
    snprintf(tmp, len, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    writer w = {fd >= 0 ? fdopen(fd, "wb") : NULL, crc32(0, NULL, 0), 0};
    if (!w.f) {
        em__error("%s: cannot create %s: %s", op, tmp, strerror(errno));
        if (fd >= 0) close(fd), unlink(tmp);
        free(tmp);
        return -1;
    }
    put(&w, MAGIC, sizeof MAGIC);
    put_u32(&w, VERSION);
    put_u32(&w, (uint32_t)n);
    for (int i = 0; i < n; i++) {
        const em_tensor *v = vars[i];
        uint32_t nlen = (uint32_t)strlen(v->var->name);
        uint8_t head[2] = {v->dtype, v->ndim};
        put_u32(&w, nlen);
        put(&w, v->var->name, nlen);
        put(&w, head, 2);
        put(&w, v->shape, sizeof(int64_t) * v->ndim);
        em_tensor *host = em__is_gpu(v->device) ? em__to_host((em_tensor *)v) : NULL;
        if (em__is_gpu(v->device) && !host) {
            fclose(w.f);
            unlink(tmp);
            free(tmp);
            return -1;
        }
        put(&w, host ? host->data : v->data, (size_t)v->numel * em_dtype_size((em_dtype)v->dtype));
        if (host) em__unref(host);
    }
    uint32_t crc = (uint32_t)w.crc;
    put(&w, &crc, 4);
    if (!w.err && fflush(w.f)) w.err = errno;
    if (!w.err && fsync(fileno(w.f))) w.err = errno;
    if (fclose(w.f) && !w.err) w.err = errno;
    if (!w.err && rename(tmp, path)) {
        em__error("%s: cannot rename %s to %s: %s", op, tmp, path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    if (w.err) {
        em__error("%s: writing %s failed: %s (%s is unchanged)", op, tmp, strerror(w.err), path);
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    int err = sync_dir(path);
    if (err) {
        em__error("%s: %s was written but its directory could not be synced: %s", op, path, strerror(err));
        return -1;
    }
    return 0;
}

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

/* Reads the whole file. NULL with an error. */
static unsigned char *slurp(const char *op, const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        em__error("%s: cannot open %s: %s", op, path, strerror(errno));
        return NULL;
    }
    struct stat st;
    unsigned char *buf = NULL;
    if (fstat(fileno(f), &st) == 0 && (buf = malloc(st.st_size ? (size_t)st.st_size : 1)) &&
        fread(buf, 1, (size_t)st.st_size, f) == (size_t)st.st_size) {
        fclose(f);
        *size = (size_t)st.st_size;
        return buf;
    }
    em__error("%s: cannot read %s: %s", op, path, buf ? strerror(errno ? errno : EIO) : "out of memory");
    free(buf);
    fclose(f);
    return NULL;
}

/* Parses and checks buf; fills *entries (count *n). -1 with an error. */
static int parse(const char *op, const char *path, const unsigned char *buf, size_t size, entry **entries,
                 uint32_t *n) {
    *entries = NULL;
    if (size < sizeof MAGIC + 12 || memcmp(buf, MAGIC, sizeof MAGIC) != 0) {
        em__error("%s: %s is not an Ember checkpoint (%s)", op, path,
                  size < sizeof MAGIC ? "too short" : "bad magic number");
        return -1;
    }
    uint32_t version = get_u32(buf + 8), count = get_u32(buf + 12);
    if (version != VERSION) {
        em__error("%s: %s has format version %u; this Ember reads version %u", op, path, version, VERSION);
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
    if (at != end) {
        em__error("%s: %s is damaged: %zu unexpected bytes after the last of its %u entries", op, path, end - at,
                  count);
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

int em_checkpoint_restore(const char *path) {
    const char *op = "checkpoint_restore";
    if (!path || !*path) {
        em__error("%s: the path is empty", op);
        return -1;
    }
    struct em_ckpt_pending **pending = em__ckpt_pending();
    if (!pending) return -1;
    size_t size;
    unsigned char *buf = slurp(op, path, &size);
    if (!buf) return -1;
    entry *e;
    uint32_t ne;
    em_tensor *const *vars;
    int nv = em__variables_list(&vars);
    int *match = malloc(sizeof *match * (size_t)(nv ? nv : 1));
    struct em_ckpt_pending *p = calloc(1, sizeof *p);
    char *pcopy = strdup(path);
    if (!match || !p || !pcopy) {
        em__error("%s: out of memory", op);
        goto fail_alloc;
    }
    if (parse(op, path, buf, size, &e, &ne)) goto fail_alloc;
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
    return 0;
fail:
    free(e);
fail_alloc:
    free(match);
    free(p);
    free(pcopy);
    free(buf);
    return -1;
}
