/* NumPy .npy files: magic "\x93NUMPY", version, header length, a Python dict
 * literal {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } padded
 * to a multiple of 64 bytes, then the raw little-endian C-order data. */
#include "file.h"
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, ".npy data is read and written in host order");

static const char *const descrs[EM_DTYPE_COUNT] = {
    [EM_F32] = "<f4", [EM_F64] = "<f8", [EM_I32] = "<i4", [EM_I64] = "<i8", [EM_U8] = "|u1", [EM_BOOL] = "|b1",
    [EM_F16] = "<f2", /* bfloat16 has none: NumPy has no such dtype */
    [EM_I8] = "|i1",  [EM_I16] = "<i2", [EM_U16] = "<u2",
};

/* ---- a reader for the header's dict literal ---- */

typedef struct cursor {
    const char *p, *end;
    const char *why; /* first failure */
} cursor;

static void skip_ws(cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

static bool fail(cursor *c, const char *why) {
    if (!c->why) c->why = why;
    return false;
}

static bool punct(cursor *c, char ch) {
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

static bool quoted(cursor *c, char *out, size_t size) {
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return fail(c, "expected a quoted string");
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (n + 1 >= size) return fail(c, "string too long");
        out[n++] = *c->p++;
    }
    if (c->p >= c->end) return fail(c, "unterminated string");
    c->p++;
    out[n] = '\0';
    return true;
}

static bool boolean(cursor *c, bool *v) {
    skip_ws(c);
    size_t left = (size_t)(c->end - c->p);
    if (left >= 4 && !memcmp(c->p, "True", 4)) *v = true, c->p += 4;
    else if (left >= 5 && !memcmp(c->p, "False", 5)) *v = false, c->p += 5;
    else return fail(c, "fortran_order is not True or False");
    return true;
}

static bool shape_tuple(cursor *c, em_shape *s) {
    s->ndim = 0;
    if (!punct(c, '(')) return fail(c, "shape is not a tuple");
    while (!punct(c, ')')) {
        skip_ws(c);
        if (c->p >= c->end || *c->p < '0' || *c->p > '9') return fail(c, "shape holds something other than sizes");
        int64_t v = 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            if (v > (INT64_MAX - 9) / 10) return fail(c, "a size in shape is too large");
            v = v * 10 + (*c->p++ - '0');
        }
        if (c->p < c->end && *c->p == 'L') c->p++; /* Python 2 longs */
        if (s->ndim == EM_MAX_DIMS) return fail(c, "shape has more than 8 dimensions");
        s->dims[s->ndim++] = v;
        if (!punct(c, ',') && !(c->p < c->end && *c->p == ')')) return fail(c, "expected ',' or ')' in shape");
    }
    return true;
}

static bool parse_header(cursor *c, char *descr, size_t dsize, bool *fortran, em_shape *shape) {
    bool seen[3] = {false, false, false};
    if (!punct(c, '{')) return fail(c, "expected '{'");
    while (!punct(c, '}')) {
        char key[32];
        if (!quoted(c, key, sizeof key)) return false;
        if (!punct(c, ':')) return fail(c, "expected ':' after a key");
        int k = !strcmp(key, "descr") ? 0 : !strcmp(key, "fortran_order") ? 1 : !strcmp(key, "shape") ? 2 : -1;
        if (k < 0) return fail(c, "unknown key");
        bool ok = k == 0 ? quoted(c, descr, dsize) : k == 1 ? boolean(c, fortran) : shape_tuple(c, shape);
        if (!ok) return false;
        seen[k] = true;
        if (!punct(c, ',') && !(c->p < c->end && *c->p == '}')) return fail(c, "expected ',' or '}'");
    }
    if (!seen[0] || !seen[1] || !seen[2]) return fail(c, "'descr', 'fortran_order' or 'shape' is missing");
    return true;
}

/* ---- load and save ---- */

#define LOAD "load_npy"

static em_tensor *load(FILE *f, const char *path) {
    uint8_t pre[12];
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6)) {
        em__error(LOAD ": %s: not a .npy file (no \\x93NUMPY magic)", path);
        return NULL;
    }
    int major = pre[6], minor = pre[7];
    size_t hlen, pre_len = 10;
    if (major == 1) {
        hlen = pre[8] | (size_t)pre[9] << 8;
    } else if ((major == 2 || major == 3) && fread(pre + 10, 1, 2, f) == 2) {
        hlen = pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
        pre_len = 12;
    } else {
        em__error(LOAD ": %s: unsupported .npy version %d.%d (or truncated)", path, major, minor);
        return NULL;
    }
    if (hlen > (1 << 20)) {
        em__error(LOAD ": %s: header length %zu is implausible (corrupt file?)", path, hlen);
        return NULL;
    }
    char *text = malloc(hlen + 1);
    if (!text) {
        em__error(LOAD ": %s: out of memory", path);
        return NULL;
    }
    if (fread(text, 1, hlen, f) != hlen) {
        em__error(LOAD ": %s: truncated in the %zu-byte header", path, hlen);
        free(text);
        return NULL;
    }
    text[hlen] = '\0';
    char descr[32] = "";
    bool fortran = false;
    em_shape shape = {0};
    cursor c = {text, text + hlen, NULL};
    bool ok = parse_header(&c, descr, sizeof descr, &fortran, &shape);
    if (!ok) em__error(LOAD ": %s: malformed header (%s at byte %d): %.120s", path, c.why, (int)(c.p - text), text);
    free(text);
    if (!ok) return NULL;

    int dt = -1;
    for (int d = 0; d < EM_DTYPE_COUNT; d++)
        if (descrs[d] && (!strcmp(descr, descrs[d]) ||
                          (descrs[d][0] == '|' && !strcmp(descr + (descr[0] == '<'), descrs[d] + 1))))
            dt = d; /* single bytes may also come as '<u1' or 'u1' */
    if (dt < 0) {
        if (descr[0] == '>')
            em__error(LOAD ": %s: big-endian data ('%s') is not supported; use arr.astype(arr.dtype.newbyteorder('<'))",
                      path, descr);
        else
            em__error(LOAD ": %s: unsupported dtype '%s' (supported: <f4 <f8 <f2 <i4 <i8 |u1 |b1)", path, descr);
        return NULL;
    }
    if (fortran) {
        em__error(LOAD ": %s: Fortran-order arrays are not supported; save np.ascontiguousarray(arr)", path);
        return NULL;
    }
    char sb[160];
    em_shape_str(shape, sb, sizeof sb);
    int64_t numel = 1;
    size_t es = em_dtype_size((em_dtype)dt);
    for (int i = 0; i < shape.ndim; i++) {
        if (shape.dims[i] && numel > INT64_MAX / 16 / shape.dims[i]) {
            em__error(LOAD ": %s: shape %s is too large", path, sb);
            return NULL;
        }
        numel *= shape.dims[i];
    }
    struct stat st;
    int64_t have = fstat(fileno(f), &st) ? -1 : (int64_t)st.st_size - (int64_t)(pre_len + hlen);
    int64_t want = numel * (int64_t)es;
    if (have != want) {
        if (have < want)
            em__error(LOAD ": %s: truncated: %s %s needs %lld bytes of data, the file holds %lld", path, sb,
                      em_dtype_name((em_dtype)dt), (long long)want, (long long)(have > 0 ? have : 0));
        else
            em__error(LOAD ": %s: %lld bytes after the %s %s data", path, (long long)(have - want), sb,
                      em_dtype_name((em_dtype)dt));
        return NULL;
    }
    em_tensor *t = em__alloc((em_dtype)dt, shape.ndim, shape.dims);
    if (!t) return NULL;
    if (fread(t->data, 1, (size_t)want, f) != (size_t)want) {
        em__error(LOAD ": %s: read error: %s", path, strerror(errno));
        em__unref(t);
        return NULL;
    }
    if (dt == EM_BOOL) /* Ember's bools are 0 or 1 */
        for (int64_t i = 0; i < numel; i++) ((uint8_t *)t->data)[i] = ((uint8_t *)t->data)[i] != 0;
    return em__own(t);
}

em_tensor *em_load_npy(const char *path) {
    if (!path) {
        em__error(LOAD ": path is NULL");
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        em__error(LOAD ": cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    em_tensor *t = load(f, path);
    fclose(f);
    return t;
}

typedef struct {
    uint8_t pre[10]; /* magic, version, header length */
    const char *header;
    size_t header_len;
    const void *data;
    size_t bytes;
} npy_parts;

static int fill_npy(em__file_out *out, void *ctx) {
    npy_parts *p = ctx;
    em__file_put(out, p->pre, sizeof p->pre);
    em__file_put(out, p->header, p->header_len);
    em__file_put(out, p->data, p->bytes);
    return 0;
}

int em_save_npy(const char *path, em_tensor *t) {
    if (!path) {
        em__error("save_npy: path is NULL");
        return -1;
    }
    if (!t) return em__null_input("save_npy"), -1;
    if (!descrs[t->dtype]) {
        char b[160];
        em__error("save_npy: %s: NumPy has no %s dtype (tensor of shape %s); cast it to float32 with em_cast to save it",
                  path, em_dtype_name((em_dtype)t->dtype), em__tshape(t, b, sizeof b));
        return -1;
    }
    const void *data = em_data(t);
    if (!data) return -1;
    /* version 1.0; the header, newline included, ends on a 64-byte boundary */
    char h[512];
    int n = snprintf(h, sizeof h, "{'descr': '%s', 'fortran_order': False, 'shape': (", descrs[t->dtype]);
    for (int i = 0; i < t->ndim; i++)
        n += snprintf(h + n, sizeof h - (size_t)n, "%lld%s", (long long)t->shape[i], t->ndim == 1 || i + 1 < t->ndim ? ", " : "");
    if (t->ndim == 1) n -= 1; /* "(5,)" */
    n += snprintf(h + n, sizeof h - (size_t)n, "), }");
    int total = (10 + n + 1 + 63) / 64 * 64;
    memset(h + n, ' ', (size_t)(total - 10 - n - 1));
    h[total - 10 - 1] = '\n';
    int hlen = total - 10;
    npy_parts parts = {{0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (uint8_t)hlen, (uint8_t)(hlen >> 8)}, h, (size_t)hlen,
                       data, (size_t)t->numel * em_dtype_size((em_dtype)t->dtype)};
    return em__write_atomic("save_npy", path, fill_npy, &parts);
}
