/* safetensors, Hugging Face's tensor file (it has no C library of its own):
 *
 *   u64 N (little-endian)  N bytes of JSON  the tensors' bytes
 *
 * The JSON is one object: per tensor {"dtype": "F32", "shape": [2, 3],
 * "data_offsets": [begin, end]} (offsets into the bytes after the header),
 * and an optional "__metadata__" object of strings. Reading applies the
 * reference implementation's rules: a header of at most 100,000,000 bytes,
 * offsets that tile the data from 0 to its end without a gap or an overlap,
 * each tensor's bytes matching its dtype and shape. Writing does as the
 * reference writes: tensors ordered by dtype, widest first, then by name;
 * the header padded with spaces to a multiple of 8 bytes, so every tensor
 * starts aligned to its element size. */
#include "../file.h"
#include "../variable.h"

#include <errno.h>
#include <stdlib.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c reads and writes tensor data as stored in memory: a little-endian host is required"
#endif

#define MAX_HEADER 100000000u /* the reference's limit */
#define MAX_DEPTH 64          /* nesting of the JSON values skipped in a header */

/* The format's dtypes in the reference's order (the writer's sort key), and
 * the Ember dtype each loads as (-1: none). */
static const struct {
    const char *name;
    unsigned size;
    int ember;
} DTYPES[] = {
    {"BOOL", 1, EM_BOOL}, {"U8", 1, EM_U8},     {"I8", 1, EM_I8},   {"F8_E5M2", 1, -1}, {"F8_E4M3", 1, -1},
    {"I16", 2, EM_I16},   {"U16", 2, EM_U16},   {"F16", 2, EM_F16}, {"BF16", 2, EM_BF16}, {"I32", 4, EM_I32},
    {"U32", 4, -1},       {"F32", 4, EM_F32},   {"F64", 8, EM_F64}, {"I64", 8, EM_I64}, {"U64", 8, -1},
};
#define NDTYPES (int)(sizeof DTYPES / sizeof DTYPES[0])

/* The format's dtype of an Ember dtype. */
static int st_dtype(em_dtype d) {
    for (int i = 0; i < NDTYPES; i++)
        if (DTYPES[i].ember == (int)d) return i;
    return -1;
}

/* ---- the header's JSON ---- */

typedef struct {
    const char *start, *p, *end;
    const char *op, *path;
    bool failed;
} json;

static void json_fail(json *j, const char *what) {
    if (!j->failed)
        em__error("%s: %s: bad header: %s at byte %zu of the header", j->op, j->path, what, (size_t)(j->p - j->start));
    j->failed = true;
}

static void ws(json *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static bool eat(json *j, char c) {
    ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return true;
    }
    return false;
}

static int hex4(const char *p) {
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static size_t put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) return o[0] = (char)cp, 1;
    if (cp < 0x800) return o[0] = (char)(0xC0 | cp >> 6), o[1] = (char)(0x80 | (cp & 0x3F)), 2;
    if (cp < 0x10000)
        return o[0] = (char)(0xE0 | cp >> 12), o[1] = (char)(0x80 | (cp >> 6 & 0x3F)), o[2] = (char)(0x80 | (cp & 0x3F)), 3;
    o[0] = (char)(0xF0 | cp >> 18), o[1] = (char)(0x80 | (cp >> 12 & 0x3F)), o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A JSON string: malloc()ed, NUL-terminated (an escaped NUL is refused). */
static char *json_string(json *j) {
    if (!eat(j, '"')) {
        json_fail(j, "a string expected");
        return NULL;
    }
    const char *q = j->p;
    while (q < j->end && *q != '"') q += *q == '\\' && q + 1 < j->end ? 2 : 1;
    if (q >= j->end) {
        json_fail(j, "an unterminated string");
        return NULL;
    }
    char *s = malloc((size_t)(q - j->p) + 1), *o = s; /* escapes never grow */
    if (!s) {
        json_fail(j, "out of memory");
        return NULL;
    }
    while (j->p < q) {
        unsigned char c = (unsigned char)*j->p++;
        if (c < 0x20) goto bad;
        if (c != '\\') {
            *o++ = (char)c;
            continue;
        }
        char e = *j->p++;
        const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t", *at = e ? strchr(from, e) : NULL;
        if (at) {
            *o++ = to[at - from];
            continue;
        }
        if (e != 'u' || q - j->p < 4) goto bad;
        int cp = hex4(j->p);
        j->p += 4;
        if (cp >= 0xD800 && cp < 0xDC00) { /* a surrogate pair */
            int lo = q - j->p >= 6 && j->p[0] == '\\' && j->p[1] == 'u' ? hex4(j->p + 2) : -1;
            if (lo < 0xDC00 || lo > 0xDFFF) goto bad;
            j->p += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp <= 0 || (cp >= 0xDC00 && cp <= 0xDFFF)) {
            goto bad;
        }
        o += put_utf8(o, (unsigned)cp);
    }
    *o = '\0';
    j->p = q + 1;
    return s;
bad:
    free(s);
    json_fail(j, "a bad character or escape in a string");
    return NULL;
}

/* A non-negative integer below 2^63. */
static int64_t json_uint(json *j) {
    ws(j);
    int64_t v = 0;
    const char *start = j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        if (v > (INT64_MAX - 9) / 10) {
            json_fail(j, "an integer too large");
            return -1;
        }
        v = v * 10 + (*j->p++ - '0');
    }
    if (j->p == start || (j->p - start > 1 && *start == '0')) {
        json_fail(j, "a non-negative integer expected");
        return -1;
    }
    return v;
}

/* Skips any JSON value (fields of a tensor the format may add later). */
static void json_skip(json *j, int depth) {
    ws(j);
    if (depth > MAX_DEPTH) return json_fail(j, "values nested too deeply");
    if (j->p >= j->end) return json_fail(j, "a value expected");
    char c = *j->p;
    if (c == '"') {
        free(json_string(j));
    } else if (c == '{' || c == '[') {
        j->p++;
        char close = c == '{' ? '}' : ']';
        if (eat(j, close)) return;
        do {
            if (c == '{') {
                free(json_string(j));
                if (!j->failed && !eat(j, ':')) json_fail(j, "':' expected");
            }
            if (!j->failed) json_skip(j, depth + 1);
        } while (!j->failed && eat(j, ','));
        if (!j->failed && !eat(j, close)) json_fail(j, c == '{' ? "'}' expected" : "']' expected");
    } else {
        const char *start = j->p;
        while (j->p < j->end && (strchr("+-.eE", *j->p) || (*j->p >= '0' && *j->p <= '9') ||
                                 (*j->p >= 'a' && *j->p <= 'z')))
            j->p++;
        size_t len = (size_t)(j->p - start);
        bool number = len && (*start == '-' || (*start >= '0' && *start <= '9'));
        if (!number && !(len == 4 && !memcmp(start, "true", 4)) && !(len == 5 && !memcmp(start, "false", 5)) &&
            !(len == 4 && !memcmp(start, "null", 4)))
            json_fail(j, "a value expected");
    }
}

/* ---- reading ---- */

typedef struct {
    char *name;
    int dtype; /* index into DTYPES */
    int ndim;
    int64_t dims[EM_MAX_DIMS];
    int64_t begin, end;
} entry;

typedef struct {
    unsigned char *buf;
    const unsigned char *data; /* the tensors' bytes */
    size_t data_size;
    entry *e;
    int n, cap;
    char **meta; /* key, value, key, value ... */
    int nmeta, capmeta;
} st_file;

static void st_free(st_file *f) {
    for (int i = 0; i < f->n; i++) free(f->e[i].name);
    for (int i = 0; i < 2 * f->nmeta; i++) free(f->meta[i]);
    free(f->e);
    free(f->meta);
    free(f->buf);
}

static bool grow(void **items, int *cap, int n, size_t size) {
    if (n < *cap) return true;
    int c = *cap ? 2 * *cap : 16;
    void *p = realloc(*items, (size_t)c * size);
    if (!p) return false;
    *items = p;
    *cap = c;
    return true;
}

static void parse_metadata(json *j, st_file *f) {
    ws(j);
    if (j->end - j->p >= 4 && !memcmp(j->p, "null", 4)) {
        j->p += 4;
        return;
    }
    if (!eat(j, '{')) return json_fail(j, "__metadata__ must be an object of strings");
    if (eat(j, '}')) return;
    do {
        char *key = json_string(j), *value = NULL;
        if (!j->failed && !eat(j, ':')) json_fail(j, "':' expected");
        if (!j->failed) value = json_string(j);
        if (!j->failed && !grow((void **)&f->meta, &f->capmeta, 2 * f->nmeta + 1, sizeof(char *)))
            json_fail(j, "out of memory");
        if (j->failed) {
            free(key);
            free(value);
            return;
        }
        f->meta[2 * f->nmeta] = key;
        f->meta[2 * f->nmeta + 1] = value;
        f->nmeta++;
    } while (eat(j, ','));
    if (!eat(j, '}')) json_fail(j, "'}' expected after __metadata__");
}

static void parse_tensor(json *j, entry *e) {
    bool has_dtype = false, has_shape = false, has_offsets = false;
    if (!eat(j, '{')) return json_fail(j, "a tensor's entry must be an object");
    if (!eat(j, '}')) do {
            char *key = json_string(j);
            if (!j->failed && !eat(j, ':')) json_fail(j, "':' expected");
            if (j->failed) {
                free(key);
                return;
            }
            if (!strcmp(key, "dtype")) {
                char *d = json_string(j);
                e->dtype = -1;
                for (int i = 0; d && i < NDTYPES; i++)
                    if (!strcmp(d, DTYPES[i].name)) e->dtype = i;
                if (d && e->dtype < 0 && !j->failed) {
                    em__error("%s: %s: tensor \"%s\" has dtype \"%.40s\", which safetensors does not define", j->op,
                              j->path, e->name, d);
                    j->failed = true;
                }
                free(d);
                has_dtype = true;
            } else if (!strcmp(key, "shape")) {
                if (!eat(j, '[')) json_fail(j, "shape must be an array");
                e->ndim = 0;
                if (!j->failed && !eat(j, ']')) {
                    do {
                        int64_t d = json_uint(j);
                        if (!j->failed && e->ndim == EM_MAX_DIMS) {
                            em__error("%s: %s: tensor \"%s\" has more than %d dimensions, Ember's most", j->op,
                                      j->path, e->name, EM_MAX_DIMS);
                            j->failed = true;
                        }
                        if (!j->failed) e->dims[e->ndim++] = d;
                    } while (!j->failed && eat(j, ','));
                    if (!j->failed && !eat(j, ']')) json_fail(j, "']' expected after a shape");
                }
                has_shape = true;
            } else if (!strcmp(key, "data_offsets")) {
                if (!eat(j, '[')) json_fail(j, "data_offsets must be an array");
                if (!j->failed) e->begin = json_uint(j);
                if (!j->failed && !eat(j, ',')) json_fail(j, "data_offsets must have two integers");
                if (!j->failed) e->end = json_uint(j);
                if (!j->failed && !eat(j, ']')) json_fail(j, "data_offsets must have two integers");
                has_offsets = true;
            } else {
                json_skip(j, 1);
            }
            free(key);
        } while (!j->failed && eat(j, ','));
    if (!j->failed && !eat(j, '}')) json_fail(j, "'}' expected after a tensor's entry");
    if (!j->failed && !(has_dtype && has_shape && has_offsets)) {
        em__error("%s: %s: tensor \"%s\" lacks %s", j->op, j->path, e->name,
                  !has_dtype ? "its dtype" : !has_shape ? "its shape" : "its data_offsets");
        j->failed = true;
    }
}

static int by_begin(const void *a, const void *b) {
    const entry *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : x->end < y->end ? -1 : x->end > y->end;
}

/* Parses and checks f->buf (size bytes): the entries in data order. -1 with an error. */
static int st_parse(const char *op, const char *path, st_file *f, size_t size) {
    if (size < 8) {
        em__error("%s: %s is not a safetensors file: %zu bytes, fewer than the 8 of the header's length", op, path,
                  size);
        return -1;
    }
    uint64_t n;
    memcpy(&n, f->buf, 8);
    if (n > MAX_HEADER) {
        em__error("%s: %s: the header is %llu bytes, more than the format's limit of %u", op, path,
                  (unsigned long long)n, MAX_HEADER);
        return -1;
    }
    if (n > size - 8) {
        em__error("%s: %s is truncated: a %llu-byte header in %zu bytes", op, path, (unsigned long long)n, size);
        return -1;
    }
    json j = {(const char *)f->buf + 8, (const char *)f->buf + 8, (const char *)f->buf + 8 + n, op, path, false};
    if (!eat(&j, '{')) json_fail(&j, "the header must be a JSON object");
    bool empty = !j.failed && eat(&j, '}'); /* "{}": a file of no tensors */
    if (!j.failed && !empty) do {
            char *key = json_string(&j);
            if (!j.failed && !eat(&j, ':')) json_fail(&j, "':' expected");
            if (!j.failed && !strcmp(key, "__metadata__")) {
                parse_metadata(&j, f);
                free(key);
                continue;
            }
            for (int i = 0; !j.failed && i < f->n; i++)
                if (!strcmp(f->e[i].name, key)) {
                    em__error("%s: %s: tensor \"%s\" appears twice", op, path, key);
                    j.failed = true;
                }
            if (!j.failed && !grow((void **)&f->e, &f->cap, f->n, sizeof(entry))) json_fail(&j, "out of memory");
            if (j.failed) {
                free(key);
                break;
            }
            entry *e = &f->e[f->n++];
            *e = (entry){.name = key};
            parse_tensor(&j, e);
        } while (!j.failed && eat(&j, ','));
    if (!j.failed && !empty && !eat(&j, '}')) json_fail(&j, "'}' or ',' expected");
    ws(&j);
    if (!j.failed && j.p != j.end) json_fail(&j, "text after the header's object");
    if (j.failed) return -1;
    f->data = f->buf + 8 + n;
    f->data_size = size - 8 - n;
    if (f->n) qsort(f->e, (size_t)f->n, sizeof(entry), by_begin); /* no tensors: e is NULL */
    int64_t at = 0;
    for (int i = 0; i < f->n; i++) {
        entry *e = &f->e[i];
        int64_t numel = 1;
        bool overflow = false;
        for (int d = 0; d < e->ndim; d++) {
            if (e->dims[d] && numel > INT64_MAX / 8 / e->dims[d]) overflow = true;
            else numel *= e->dims[d];
        }
        if (overflow || e->end < e->begin || e->end - e->begin != numel * (int64_t)DTYPES[e->dtype].size) {
            em__error("%s: %s: tensor \"%s\" has data_offsets [%lld, %lld], which do not hold its shape's elements",
                      op, path, e->name, (long long)e->begin, (long long)e->end);
            return -1;
        }
        if (e->begin != at) {
            em__error("%s: %s: tensor \"%s\" starts at byte %lld of the data, not at %lld where the one before ends",
                      op, path, e->name, (long long)e->begin, (long long)at);
            return -1;
        }
        at = e->end;
    }
    if ((uint64_t)at != f->data_size) {
        em__error("%s: %s: the tensors hold %lld bytes, but %zu follow the header", op, path, (long long)at,
                  f->data_size);
        return -1;
    }
    return 0;
}

/* Entry e's tensor, NEW. NULL with an error. */
static em_tensor *st_tensor(const char *op, const char *path, const st_file *f, const entry *e) {
    int ember = DTYPES[e->dtype].ember;
    if (ember < 0) {
        em__error("%s: %s: tensor \"%s\" has dtype %s, which Ember cannot hold", op, path, e->name,
                  DTYPES[e->dtype].name);
        return NULL;
    }
    em_shape shape = {.ndim = e->ndim};
    memcpy(shape.dims, e->dims, sizeof(int64_t) * (size_t)e->ndim);
    const unsigned char *src = f->data + e->begin;
    for (int64_t i = 0; ember == EM_BOOL && i < e->end - e->begin; i++)
        if (src[i] > 1) {
            em__error("%s: %s: bool tensor \"%s\" holds byte %u at element %lld, neither 0 nor 1", op, path, e->name,
                      src[i], (long long)i);
            return NULL;
        }
    return em_tensor_from((em_dtype)ember, shape, src);
}

static int st_open(const char *op, const char *path, st_file *f) {
    *f = (st_file){0};
    size_t size;
    f->buf = em__read_file(op, path, &size);
    if (!f->buf || st_parse(op, path, f, size) == 0) return f->buf ? 0 : -1;
    st_free(f);
    return -1;
}

int em_load_safetensors(const char *path, em_safetensors_tensor_fn on_tensor, em_safetensors_meta_fn on_meta,
                        void *ctx) {
    const char *op = "load_safetensors";
    if (!path || !on_tensor) {
        em__error("%s: path and on_tensor must not be NULL", op);
        return -1;
    }
    st_file f;
    if (st_open(op, path, &f)) return -1;
    int rc = 0;
    for (int i = 0; on_meta && !rc && i < f.nmeta; i++) rc = on_meta(ctx, f.meta[2 * i], f.meta[2 * i + 1]);
    for (int i = 0; !rc && i < f.n; i++) {
        em_tensor *t = st_tensor(op, path, &f, &f.e[i]);
        rc = t ? on_tensor(ctx, f.e[i].name, t) : -1;
    }
    st_free(&f);
    return rc;
}

/* ---- writing ---- */

static void put_json_string(FILE *o, const char *s) {
    fputc('"', o);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(o, "\\%c", c);
        else if (c < 0x20) fprintf(o, "\\u%04x", c);
        else fputc(c, o);
    }
    fputc('"', o);
}

typedef struct {
    const char *name;
    em_tensor *host; /* contiguous, on the host */
    int dtype;       /* into DTYPES */
    int64_t begin, end;
} out_entry;

typedef struct {
    out_entry *e;
    int n;
    int nmeta;
    const char *const *meta;
} st_out;

static int by_dtype_then_name(const void *a, const void *b) {
    const out_entry *x = a, *y = b;
    if (x->dtype != y->dtype) return y->dtype - x->dtype;
    return strcmp(x->name, y->name);
}

/* The header's JSON into a memory stream; its length in *len. NULL when out of memory. */
static char *header_json(const st_out *s, size_t *len) {
    char *text = NULL;
    FILE *o = open_memstream(&text, len);
    if (!o) return NULL;
    fputc('{', o);
    if (s->nmeta) {
        fputs("\"__metadata__\":{", o);
        for (int i = 0; i < s->nmeta; i++) {
            if (i) fputc(',', o);
            put_json_string(o, s->meta[2 * i]);
            fputc(':', o);
            put_json_string(o, s->meta[2 * i + 1]);
        }
        fputc('}', o);
    }
    for (int i = 0; i < s->n; i++) {
        const out_entry *e = &s->e[i];
        if (i || s->nmeta) fputc(',', o);
        put_json_string(o, e->name);
        fprintf(o, ":{\"dtype\":\"%s\",\"shape\":[", DTYPES[e->dtype].name);
        for (int d = 0; d < e->host->ndim; d++) fprintf(o, "%s%lld", d ? "," : "", (long long)e->host->shape[d]);
        fprintf(o, "],\"data_offsets\":[%lld,%lld]}", (long long)e->begin, (long long)e->end);
    }
    fputc('}', o);
    if (fclose(o)) {
        free(text);
        return NULL;
    }
    while (*len % 8) { /* padded with spaces, as the reference pads */
        char *t = realloc(text, *len + 2);
        if (!t) {
            free(text);
            return NULL;
        }
        text = t;
        text[(*len)++] = ' ';
        text[*len] = '\0';
    }
    return text;
}

static int fill_safetensors(em__file_out *out, void *s_) {
    const st_out *s = s_;
    size_t len;
    char *header = header_json(s, &len);
    if (!header) {
        em__error("save_safetensors: out of memory for the header");
        return -1;
    }
    uint64_t n = len;
    em__file_put(out, &n, 8);
    em__file_put(out, header, len);
    free(header);
    for (int i = 0; i < s->n; i++)
        em__file_put(out, s->e[i].host->data, (size_t)(s->e[i].end - s->e[i].begin));
    return 0;
}

int em_save_safetensors(const char *path, int n, const char *const *names, em_tensor *const *tensors, int nmeta,
                        const char *const *metadata) {
    const char *op = "save_safetensors";
    if (!path || n < 0 || nmeta < 0 || (n && (!names || !tensors)) || (nmeta && !metadata)) {
        em__error("%s: path must not be NULL, nor names and tensors when n = %d > 0, nor metadata when nmeta = %d > 0",
                  op, n, nmeta);
        return -1;
    }
    for (int i = 0; i < 2 * nmeta; i++)
        if (!metadata[i]) {
            em__error("%s: metadata[%d] is NULL", op, i);
            return -1;
        }
    out_entry *e = calloc((size_t)(n ? n : 1), sizeof(out_entry));
    if (!e) {
        em__error("%s: out of memory for %d tensors", op, n);
        return -1;
    }
    int rc = -1, made = 0;
    for (; made < n; made++) {
        const char *name = names[made];
        em_tensor *t = tensors[made];
        if (!name || !t) {
            em__error("%s: %s %d is NULL", op, name ? "tensor" : "name", made);
            goto done;
        }
        if (!strcmp(name, "__metadata__")) {
            em__error("%s: a tensor cannot be named \"__metadata__\", the format's key for the metadata", op);
            goto done;
        }
        for (int k = 0; k < made; k++)
            if (!strcmp(e[k].name, name)) {
                em__error("%s: two tensors are named \"%s\"", op, name);
                goto done;
            }
        if (em_numel(t) < 0) {
            em__error("%s: tensor \"%s\" has a size unknown until a graph runs", op, name);
            goto done;
        }
        em_tensor *host = em__to_host(t);
        if (!host) goto done;
        e[made] = (out_entry){name, host, st_dtype(em_tensor_dtype(t)), 0, 0};
    }
    qsort(e, (size_t)n, sizeof(out_entry), by_dtype_then_name);
    int64_t at = 0;
    for (int i = 0; i < n; i++) {
        e[i].begin = at;
        at = e[i].end = at + e[i].host->numel * (int64_t)DTYPES[e[i].dtype].size;
    }
    rc = em__write_atomic(op, path, fill_safetensors, &(st_out){e, n, nmeta, metadata});
done:
    for (int i = 0; i < made; i++) em__unref(e[i].host);
    free(e);
    return rc;
}

/* ---- variables by name ---- */

/* The name a tensor is stored or loaded under; false: left out. */
static bool renamed(em_rename_fn rename, const char *name, char *out, size_t size, bool *transpose) {
    *transpose = false;
    if (!rename) {
        snprintf(out, size, "%s", name);
        return true;
    }
    out[0] = '\0';
    return rename(name, out, size, transpose);
}

/* t transposed when asked, NEW; a transposed tensor must be 2-D. */
static em_tensor *maybe_transposed(const char *op, em_tensor *t, bool transpose, const char *name) {
    if (!transpose) return t;
    if (em_ndim(t) != 2) {
        char s[96];
        em__error("%s: \"%s\" of shape %s cannot be transposed: only 2-D tensors are", op, name,
                  em_shape_str(em_tensor_shape(t), s, sizeof s));
        return NULL;
    }
    return em_transpose(t, 2, (const int[]){1, 0});
}

int em_variables_save_safetensors(const char *path, em_rename_fn rename) {
    const char *op = "variables_save_safetensors";
    em_tensor *const *vars;
    int n = em__variables_list(&vars);
    char(*names)[EM_SAFETENSORS_NAME_MAX] = malloc(EM_SAFETENSORS_NAME_MAX * (size_t)(n ? n : 1));
    const char **name_of = malloc(sizeof(char *) * (size_t)(n ? n : 1));
    em_tensor **values = malloc(sizeof(em_tensor *) * (size_t)(n ? n : 1));
    int rc = -1, kept = 0;
    em_scope_begin();
    if (!names || !name_of || !values) {
        em__error("%s: out of memory for %d variables", op, n);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        bool transpose;
        if (!renamed(rename, vars[i]->var->name, names[kept], EM_SAFETENSORS_NAME_MAX, &transpose)) continue;
        values[kept] = maybe_transposed(op, vars[i], transpose, vars[i]->var->name);
        if (!values[kept]) goto done;
        name_of[kept] = names[kept];
        kept++;
    }
    /* "format": "pt" is what Hugging Face's transformers asks of a checkpoint it loads */
    rc = em_save_safetensors(path, kept, name_of, values, 1, (const char *const[]){"format", "pt"});
done:
    em_scope_end();
    free(names);
    free(name_of);
    free(values);
    return rc;
}

int em_variables_load_safetensors(const char *path, em_rename_fn rename) {
    const char *op = "variables_load_safetensors";
    if (!path) {
        em__error("%s: path must not be NULL", op);
        return -1;
    }
    st_file f;
    if (st_open(op, path, &f)) return -1;
    em_tensor **var = calloc((size_t)(f.n ? f.n : 1), sizeof(em_tensor *));
    bool *transpose = calloc((size_t)(f.n ? f.n : 1), sizeof(bool));
    int rc = -1;
    em_scope_begin();
    if (!var || !transpose) {
        em__error("%s: out of memory for %d tensors", op, f.n);
        goto done;
    }
    /* Every check before any variable changes. */
    for (int i = 0; i < f.n; i++) {
        const entry *e = &f.e[i];
        char name[EM_SAFETENSORS_NAME_MAX];
        if (!renamed(rename, e->name, name, sizeof name, &transpose[i])) continue;
        var[i] = em_find_variable(name);
        if (!var[i]) {
            em_clear_error();
            em__error("%s: %s: tensor \"%s\" is to load into variable \"%s\", which does not exist", op, path,
                      e->name, name);
            goto done;
        }
        for (int k = 0; k < i; k++)
            if (var[k] == var[i]) {
                em__error("%s: %s: tensors \"%s\" and \"%s\" both load into variable \"%s\"", op, path, f.e[k].name,
                          e->name, name);
                goto done;
            }
        em_shape want = em_tensor_shape(var[i]), have = {.ndim = e->ndim};
        memcpy(have.dims, e->dims, sizeof(int64_t) * (size_t)e->ndim);
        char vs[96], hs[96];
        em_shape_str(have, hs, sizeof hs);
        if (transpose[i] && e->ndim != 2) {
            em__error("%s: %s: tensor \"%s\" of shape %s cannot be transposed: only 2-D tensors are", op, path,
                      e->name, hs);
            goto done;
        }
        if (transpose[i]) have = (em_shape){2, {e->dims[1], e->dims[0]}};
        if (!em_shape_equal(want, have)) {
            em__error("%s: %s: tensor \"%s\" has shape %s%s, variable \"%s\" has shape %s", op, path, e->name, hs,
                      transpose[i] ? " (transposed on load)" : "", name, em_shape_str(want, vs, sizeof vs));
            goto done;
        }
        em_dtype want_dtype = em_tensor_dtype(var[i]);
        bool widened = want_dtype == EM_F32 && em__is_narrow((em_dtype)DTYPES[e->dtype].ember);
        if (DTYPES[e->dtype].ember != (int)want_dtype && !widened) {
            em__error("%s: %s: tensor \"%s\" has dtype %s, variable \"%s\" is %s", op, path, e->name,
                      DTYPES[e->dtype].name, name, em_dtype_name(em_tensor_dtype(var[i])));
            goto done;
        }
    }
    for (int i = 0; i < f.n; i++) {
        if (!var[i]) continue;
        em_tensor *t = st_tensor(op, path, &f, &f.e[i]);
        if (t && em_tensor_dtype(t) != em_tensor_dtype(var[i])) t = em_cast(t, em_tensor_dtype(var[i])); /* exact */
        em_tensor *value = t ? maybe_transposed(op, t, transpose[i], f.e[i].name) : NULL;
        if (!value || em_assign(var[i], value)) goto done;
    }
    rc = 0;
done:
    em_scope_end();
    free(var);
    free(transpose);
    st_free(&f);
    return rc;
}
