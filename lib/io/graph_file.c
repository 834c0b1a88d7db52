/* Saved graphs (em_graph_save, em_graph_load; docs/saved_graphs.md is the
 * format): the part of a graph some fetches need, in one file that a process
 * which never defined the model loads and runs.
 *
 * The file, little-endian:
 *   header (64 bytes): magic "EMBERGR\n", u32 version, u32 save flags,
 *     u64 file size, u64 size of the item table, u64 the symbolic size
 *     (EM_SYM_SIZE: attributes derived from an unknown batch dimension hold
 *     multiples of its prime), u32 its prime and u32 its parts (zeros in the
 *     first files: 1680 parts), zeros, and at byte 60 a u32 CRC-32C of every
 *     other byte of the file;
 *   the item table at byte 64: u32 count, then per item its kind, name,
 *     dtype, rank and shape (-1: unknown), and
 *       a constant or variable: the offset of its data (variables: and
 *         whether it is trainable);
 *       an op: its name from the op definitions (never an enum number), its
 *         inputs (earlier items), its attributes (every field of em_attrs);
 *     then u32 count and the fetches: name and item;
 *   the data: each tensor's bytes, row-major, at an offset that is a
 *     multiple of 64.
 *
 * Loading checks everything before it creates anything: the version (a newer
 * one is refused with a message saying so), the size, the checksum, every
 * count, offset and name, and the shape rule of every op on the saved shapes,
 * so that a damaged file is an error naming what is wrong, never a crash.
 *
 * A file of MAP_MIN_BYTES or more is mapped, not read: constants of
 * MAP_MIN_TENSOR bytes or more point into the mapping, which the graph keeps
 * until it is released; smaller ones and variables are copied. A mapped file
 * truncated while the graph lives makes the next read of a lost page raise
 * SIGBUS: the handler installed here says which file it was, then the
 * process dies of the signal (nothing can be read there any more). Ember's
 * own writers replace a file by renaming a new one over it, which leaves the
 * mapping on the old file, whole. */
#include "ember.h"
#include "crc32c.h"
#include "file.h"
#include "graph/export.h"
#include "internal.h"
#include "op.h"
#include "variable.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "saved graphs are read and written in host order");

#define GRAPH_MAGIC "EMBERGR\n"
#define GRAPH_VERSION 1
#define HEADER_BYTES 64
#define CRC_AT 60
#define DATA_ALIGN 64
#define MAP_MIN_BYTES ((size_t)1 << 20)
#define MAP_MIN_TENSOR ((size_t)1 << 16)
#define NAME_MAX_BYTES 4096
/* No size or integer attribute a traced graph holds comes near it (an unknown
 * batch's stand-in is below 2^25): beyond it, a file is damaged or crafted,
 * and refused before a shape rule multiplies such numbers. */
#define MAX_SIZE ((int64_t)1 << 40)

enum { KIND_CONST, KIND_VARIABLE, KIND_PLACEHOLDER, KIND_OP };

/* The CRC of a whole file image, its CRC field read as absent. */
static uint32_t file_crc(const uint8_t *p, size_t size) {
    uint32_t crc = em__crc32c(0, p, CRC_AT);
    return em__crc32c(crc, p + HEADER_BYTES, size - HEADER_BYTES);
}

/* ---- saving ---- */

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
    bool oom;
} buf;

static void put(buf *b, const void *p, size_t n) {
    if (b->oom) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n) cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void put_u8(buf *b, unsigned v) { put(b, &(uint8_t){(uint8_t)v}, 1); }
static void put_u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(buf *b, const char *s) {
    put_u32(b, (uint32_t)strlen(s));
    put(b, s, strlen(s));
}

typedef struct saver {
    unsigned flags;
    buf items;            /* the item table, less its count */
    buf fetches;          /* the fetch table */
    uint32_t nitems;
    em_tensor **data;     /* host copies of the tensors whose bytes follow the table, in order */
    uint64_t *data_at;    /* where each is in the item table's bytes (its offset, filled in once known) */
    int ndata;
} saver;

static int save_item(void *ctx, const em_graph_item *it) {
    saver *s = ctx;
    buf *b = &s->items;
    em_tensor *value = it->value;
    int kind = it->kind == EM_ITEM_CONST ? KIND_CONST
               : it->kind == EM_ITEM_VARIABLE ? KIND_VARIABLE
               : it->kind == EM_ITEM_PLACEHOLDER ? KIND_PLACEHOLDER
                                                 : KIND_OP;
    if (kind == KIND_VARIABLE) {
        value = em_find_variable(it->name);
        if (!value) {
            em__error("graph_save: the graph reads variable '%s', which this thread's variable store does not hold "
                      "(create it again, or restore its checkpoint, before saving)",
                      it->name);
            return -1;
        }
        if (s->flags & EM_SAVE_FREEZE) kind = KIND_CONST;
    }
    if (kind == KIND_OP && (em__op_def(it->op)->flags & EM_OPF_INPLACE)) {
        em__error("graph_save: the fetches need '%s', an in-place update (an optimizer step), which a saved graph "
                  "cannot hold: its rule is this process's optimizer. Save the forward values (the logits, the "
                  "loss) and let the loading program make its optimizer",
                  it->name);
        return -1;
    }
    put_u8(b, (unsigned)kind);
    put_str(b, it->name);
    put_u8(b, it->dtype);
    put_u8(b, (unsigned)it->ndim);
    for (int d = 0; d < it->ndim; d++) put_u64(b, (uint64_t)it->shape[d]);
    if (kind == KIND_CONST || kind == KIND_VARIABLE) {
        em_tensor *host = em__to_host(value);
        em_tensor **data = realloc(s->data, sizeof *data * (size_t)(s->ndata + 1));
        uint64_t *at = realloc(s->data_at, sizeof *at * (size_t)(s->ndata + 1));
        if (data) s->data = data;
        if (at) s->data_at = at;
        if (!host || !data || !at) { /* a failed em__to_host has said why */
            if (host) {
                em__unref(host);
                em__error("graph_save: out of memory");
            }
            return -1;
        }
        s->data[s->ndata] = host;
        s->data_at[s->ndata++] = b->n;
        put_u64(b, 0); /* its offset, once the table's size is known */
        if (kind == KIND_VARIABLE) put_u8(b, value->var->trainable && !(s->flags & EM_SAVE_INFERENCE));
    } else if (kind == KIND_OP) {
        const em_op_def *def = em__op_def(it->op);
        if (def->flags & EM_OPF_PROCESS_LOCAL) { /* em_custom_gradient: nothing another process can run */
            em__error("graph_save: node '%s' is an em_custom_gradient, whose forward and backward are function "
                      "pointers of this process: register the computation as an op (em_op_register) to save it",
                      it->name);
            return -1;
        }
        put_str(b, def->name);
        put_u32(b, (uint32_t)it->n);
        for (int k = 0; k < it->n; k++) put_u32(b, (uint32_t)it->inputs[k]);
        /* A registered op's attributes go by name (its strings live in this process's registry): the
         * em_attrs fields are written as zeros, then its declared attributes, each a name, a number and
         * a string (length 0 and a flag 0: none). The loader encodes them again for its own registration. */
        const bool custom = em__op_is_custom(def);
        const em_attrs *a = custom ? &(em_attrs){0} : it->a;
        for (int k = 0; k < 2 * EM_MAX_DIMS; k++) put_u64(b, (uint64_t)a->i[k]);
        put_u32(b, (uint32_t)a->ni);
        for (int k = 0; k < 4; k++) put(b, &a->f[k], 8);
        put_u32(b, (uint32_t)a->dtype);
        put_u64(b, a->seed);
        put_u64(b, a->counter);
        if (custom) {
            em_op_attrs named;
            em__custom_attrs_decode(def, it->a, &named);
            put_u32(b, (uint32_t)named.n);
            for (int k = 0; k < named.n; k++) {
                put_str(b, named.a[k].name);
                put(b, &named.a[k].number, 8);
                put_u8(b, named.a[k].string != NULL);
                put_str(b, named.a[k].string ? named.a[k].string : "");
            }
        }
    }
    s->nitems++;
    return 0;
}

static uint64_t align_up(uint64_t x) { return (x + DATA_ALIGN - 1) / DATA_ALIGN * DATA_ALIGN; }

/* The file (em__write_atomic's fill): the table in memory, the data streamed, the header last. */
static int write_graph(em__file_out *out, void *ctx) {
    saver *s = ctx;
    buf *fetch_table = &s->fetches;
    uint64_t table = 4 + s->items.n + fetch_table->n;
    uint64_t at = align_up(HEADER_BYTES + table);
    for (int k = 0; k < s->ndata; k++) {
        memcpy(s->items.p + s->data_at[k], &at, 8);
        at = align_up(at + (uint64_t)s->data[k]->numel * em_dtype_size((em_dtype)s->data[k]->dtype));
    }
    uint64_t size = at;
    uint8_t header[HEADER_BYTES] = GRAPH_MAGIC;
    uint32_t version = GRAPH_VERSION, flags = s->flags;
    uint64_t sym = EM_SYM_SIZE;
    uint32_t prime = EM_SYM_PRIME, parts = EM_SYM_PARTS;
    memcpy(header + 8, &version, 4);
    memcpy(header + 12, &flags, 4);
    memcpy(header + 16, &size, 8);
    memcpy(header + 24, &table, 8);
    memcpy(header + 32, &sym, 8);
    memcpy(header + 40, &prime, 4);
    memcpy(header + 44, &parts, 4);
    static const uint8_t zeros[DATA_ALIGN];
    uint32_t crc = em__crc32c(0, header, CRC_AT);
#define EMIT(p, n) (crc = em__crc32c(crc, (p), (n)), em__file_put(out, (p), (n)))
    em__file_put(out, header, HEADER_BYTES);
    EMIT(&s->nitems, 4);
    EMIT(s->items.p, s->items.n);
    EMIT(fetch_table->p, fetch_table->n);
    uint64_t pos = HEADER_BYTES + table;
    for (int k = 0; k < s->ndata; k++) {
        EMIT(zeros, align_up(pos) - pos);
        pos = align_up(pos);
        size_t bytes = (size_t)s->data[k]->numel * em_dtype_size((em_dtype)s->data[k]->dtype);
        EMIT(s->data[k]->data, bytes);
        pos += bytes;
    }
    EMIT(zeros, align_up(pos) - pos);
#undef EMIT
    memcpy(header + CRC_AT, &crc, 4);
    if (fseek(out->f, 0, SEEK_SET)) return em__error("graph_save: %s: %s", strerror(errno), "seek"), -1;
    em__file_put(out, header, HEADER_BYTES);
    return 0;
}

int em_graph_save(const em_graph *g, const char *path, int nfetch, em_tensor *const *fetches,
                  const char *const *fetch_names, unsigned flags) {
    if (!g || !path || nfetch < 1 || !fetches || !fetch_names) {
        em__error("graph_save: graph, path, fetches and fetch_names must not be NULL, and nfetch (%d) at least 1",
                  nfetch);
        return -1;
    }
    if (flags & ~(unsigned)(EM_SAVE_INFERENCE | EM_SAVE_FREEZE)) {
        em__error("graph_save: unknown flags 0x%x (EM_SAVE_INFERENCE, EM_SAVE_FREEZE)", flags);
        return -1;
    }
    for (int k = 0; k < nfetch; k++) {
        if (!fetch_names[k] || !*fetch_names[k] || strlen(fetch_names[k]) >= NAME_MAX_BYTES) {
            em__error("graph_save: fetch_names[%d] must be a name of 1 to %d bytes", k, NAME_MAX_BYTES - 1);
            return -1;
        }
        for (int j = 0; j < k; j++)
            if (!strcmp(fetch_names[j], fetch_names[k])) {
                em__error("graph_save: fetch_names[%d] and [%d] are both '%s'", j, k, fetch_names[k]);
                return -1;
            }
    }
    int64_t *items = malloc(sizeof(int64_t) * (size_t)nfetch);
    saver s = {.flags = flags};
    buf *fetch_table = &s.fetches;
    int rc = -1;
    if (!items) {
        em__error("graph_save: out of memory");
        goto done;
    }
    if (em__graph_walk_needed(g, "graph_save", nfetch, fetches, items, save_item, &s)) goto done;
    put_u32(fetch_table, (uint32_t)nfetch);
    for (int k = 0; k < nfetch; k++) {
        put_str(fetch_table, fetch_names[k]);
        put_u32(fetch_table, (uint32_t)items[k]);
    }
    if (s.items.oom || fetch_table->oom) {
        em__error("graph_save: out of memory");
        goto done;
    }
    rc = em__write_atomic("graph_save", path, write_graph, &s);
done:
    for (int k = 0; k < s.ndata; k++) em__unref(s.data[k]);
    free(s.data);
    free(s.data_at);
    free(s.items.p);
    free(fetch_table->p);
    free(items);
    return rc;
}

/* ---- mapped files ---- */

/* The files mapped now, for the SIGBUS handler: it reads this table without a
 * lock (a slot's fields are set before its start is published). */
#define MAX_MAPPED 64
static struct mapped {
    _Atomic(uintptr_t) start;
    size_t bytes;
    char path[256];
} mapped[MAX_MAPPED];
static struct sigaction previous_bus;
static pthread_once_t bus_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t mapped_lock = PTHREAD_MUTEX_INITIALIZER;

static void on_bus(int sig, siginfo_t *info, void *uc) {
    uintptr_t a = (uintptr_t)info->si_addr;
    for (int k = 0; k < MAX_MAPPED; k++) {
        uintptr_t s = atomic_load(&mapped[k].start);
        if (s && a >= s && a < s + mapped[k].bytes) {
            static const char head[] = "ember: SIGBUS reading saved graph ", tail[] =
                ": the file was truncated while em_graph_load had it mapped (replace such files by renaming a new "
                "one over them, never by writing in place)\n";
            ssize_t ignored = write(2, head, sizeof head - 1);
            ignored = write(2, mapped[k].path, strlen(mapped[k].path));
            ignored = write(2, tail, sizeof tail - 1);
            (void)ignored;
            signal(SIGBUS, SIG_DFL);
            raise(SIGBUS);
            return;
        }
    }
    /* not ours: what was installed before */
    if (previous_bus.sa_flags & SA_SIGINFO) {
        previous_bus.sa_sigaction(sig, info, uc);
    } else if (previous_bus.sa_handler != SIG_IGN && previous_bus.sa_handler != SIG_DFL) {
        previous_bus.sa_handler(sig);
    } else {
        signal(SIGBUS, SIG_DFL);
        raise(SIGBUS);
    }
}

static void install_bus_handler(void) {
    struct sigaction sa = {.sa_sigaction = on_bus, .sa_flags = SA_SIGINFO};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &previous_bus);
}

static void unmap(void *slot_) {
    struct mapped *slot = slot_;
    void *p = (void *)atomic_load(&slot->start);
    size_t bytes = slot->bytes;
    atomic_store(&slot->start, 0);
    munmap(p, bytes);
    pthread_mutex_lock(&mapped_lock);
    slot->bytes = 0;
    pthread_mutex_unlock(&mapped_lock);
}

/* ---- loading: the file image ---- */

typedef struct image {
    const uint8_t *p;
    size_t size;
    struct mapped *map; /* the slot of a mapped image; NULL: read into memory */
} image;

static void image_free(image *im) {
    if (im->map) unmap(im->map);
    else free((void *)im->p);
    im->p = NULL;
    im->map = NULL;
}

static int read_image(const char *path, image *im) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st)) {
        em__error("graph_load: cannot open %s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        em__error("graph_load: %s is not a regular file", path);
        close(fd);
        return -1;
    }
    size_t size = (size_t)st.st_size;
    im->size = size;
    im->map = NULL;
    if (size >= MAP_MIN_BYTES) {
        pthread_once(&bus_once, install_bus_handler);
        pthread_mutex_lock(&mapped_lock);
        for (int k = 0; k < MAX_MAPPED && !im->map; k++)
            if (!atomic_load(&mapped[k].start) && !mapped[k].bytes) im->map = &mapped[k], mapped[k].bytes = 1;
        pthread_mutex_unlock(&mapped_lock);
    }
    if (im->map) { /* a free slot: map the file */
        void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
        close(fd);
        if (p == MAP_FAILED) {
            em__error("graph_load: cannot map %s (%zu bytes): %s", path, size, strerror(errno));
            pthread_mutex_lock(&mapped_lock);
            im->map->bytes = 0;
            pthread_mutex_unlock(&mapped_lock);
            im->map = NULL;
            return -1;
        }
        snprintf(im->map->path, sizeof im->map->path, "%s", path);
        im->map->bytes = size;
        atomic_store(&im->map->start, (uintptr_t)p);
        im->p = p;
        return 0;
    }
    uint8_t *p = malloc(size ? size : 1);
    if (!p) {
        em__error("graph_load: out of memory reading %s (%zu bytes)", path, size);
        close(fd);
        return -1;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, p + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (got < size) {
        em__error("graph_load: %s: read %zu of %zu bytes", path, got, size);
        free(p);
        return -1;
    }
    im->p = p;
    return 0;
}

/* ---- loading: the item table ---- */

typedef struct reader {
    const uint8_t *p, *end;
    bool short_read;
} reader;

static bool get(reader *r, void *out, size_t n) {
    if ((size_t)(r->end - r->p) < n) {
        r->short_read = true;
        memset(out, 0, n);
        return false;
    }
    memcpy(out, r->p, n);
    r->p += n;
    return true;
}
static unsigned get_u8(reader *r) {
    uint8_t v;
    get(r, &v, 1);
    return v;
}
static uint32_t get_u32(reader *r) {
    uint32_t v;
    get(r, &v, 4);
    return v;
}
static uint64_t get_u64(reader *r) {
    uint64_t v;
    get(r, &v, 8);
    return v;
}
/* A NUL-terminated copy of a length-prefixed string; NULL when short or too long (r->short_read). */
static char *get_str(reader *r) {
    uint32_t n = get_u32(r);
    if (n >= NAME_MAX_BYTES || (size_t)(r->end - r->p) < n) {
        r->short_read = true;
        return NULL;
    }
    char *s = malloc(n + 1);
    if (!s) return NULL;
    memcpy(s, r->p, n);
    s[n] = '\0';
    r->p += n;
    return s;
}

typedef struct item {
    int kind;
    char *name;
    em_dtype dtype;
    int ndim;
    int64_t shape[EM_MAX_DIMS];
    uint64_t offset; /* consts, variables */
    bool trainable;
    const em_op_def *def;
    int n;
    uint32_t *in;
    em_attrs a;
    em_tensor *meta;  /* the dry run's tensor (placeholders: the loaded placeholder) */
    int64_t value;    /* its value id in the graph */
} item;

typedef struct loaded {
    const char *path;
    int64_t sym_prime, sym_parts; /* the stand-in the file was traced with (lib/internal.h) */
    item *items;
    uint32_t nitems;
    char **fetch_names;
    uint32_t *fetch_items;
    uint32_t nfetch;
} loaded;

static void loaded_free(loaded *l) {
    for (uint32_t k = 0; k < l->nitems; k++) {
        free(l->items[k].name);
        free(l->items[k].in);
        if (l->items[k].meta) em__unref(l->items[k].meta);
    }
    free(l->items);
    for (uint32_t k = 0; k < l->nfetch; k++) free(l->fetch_names[k]);
    free(l->fetch_names);
    free(l->fetch_items);
}

static int bad(const loaded *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(const loaded *l, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    em__error("graph_load: %s: %s", l->path, msg);
    return -1;
}

static int64_t numel_of(const item *it) {
    int64_t n = 1;
    for (int d = 0; d < it->ndim; d++) {
        if (it->shape[d] < 0 || (it->shape[d] && n > INT64_MAX / it->shape[d])) return -1;
        n *= it->shape[d];
    }
    return n;
}

/* An attribute derived from the file's stand-in, re-derived for this Ember's
 * (the scheme of lib/internal.h's em__symbolic_parts with the file's prime):
 * the same fraction of the batch, the same offset. 0, or -1 when it cannot be. */
static int resymbolize(const loaded *l, int64_t *v) {
    if (l->sym_prime == EM_SYM_PRIME && l->sym_parts == EM_SYM_PARTS) return 0;
    if (*v <= 0) return 0;
    int64_t q = (*v + EM_SYM_OFFSET_MAX) / l->sym_prime, k = *v - q * l->sym_prime;
    if (q < 1 || k > EM_SYM_OFFSET_MAX || (k && (q < l->sym_parts / 16 || q > l->sym_parts * 16))) return 0;
    if ((q * EM_SYM_PARTS) % l->sym_parts) return -1;
    *v = q * EM_SYM_PARTS / l->sym_parts * EM_SYM_PRIME + k;
    return 0;
}

/* A registered op's attributes, saved by name (save_item), encoded into it->a
 * for this process's registration of the op: an attribute it does not
 * declare is an error naming it. */
static int custom_attrs(const loaded *l, reader *r, item *it) {
    uint32_t n = get_u32(r);
    if (r->short_read || n > EM_OP_MAX_ATTRS)
        return bad(l, "node '%s' (%s) has %" PRIu32 " named attributes", it->name, it->def->name, n);
    em_op_attrs named = {.n = (int)n};
    char *strings[2 * EM_OP_MAX_ATTRS] = {0};
    int rc = 0;
    for (uint32_t k = 0; k < n && !rc; k++) {
        named.a[k].name = strings[2 * k] = get_str(r);
        get(r, &named.a[k].number, 8);
        bool has_string = get_u8(r) != 0;
        strings[2 * k + 1] = get_str(r);
        named.a[k].string = has_string ? strings[2 * k + 1] : NULL;
        if (r->short_read || !strings[2 * k] || !strings[2 * k + 1])
            rc = bad(l, r->short_read ? "item '%s' is cut short" : "out of memory", it->name);
    }
    if (!rc && em__custom_attrs_encode(it->def, &named, &it->a))
        rc = bad(l, "node '%s': %s", it->name, em_last_error());
    for (int k = 0; k < 2 * EM_OP_MAX_ATTRS; k++) free(strings[k]);
    return rc;
}

/* Parses and checks the table; every error names the item. */
static int parse(loaded *l, const image *im, uint64_t table) {
    reader r = {im->p + HEADER_BYTES, im->p + HEADER_BYTES + table, false};
    uint32_t count = get_u32(&r);
    if (count > table / 4) return bad(l, "the item count %" PRIu32 " does not fit its table", count);
    if (!(l->items = calloc(count ? count : 1, sizeof *l->items))) return bad(l, "out of memory");
    for (uint32_t k = 0; k < count; k++) {
        item *it = &l->items[k];
        l->nitems = k + 1;
        it->kind = (int)get_u8(&r);
        it->name = get_str(&r);
        it->dtype = (em_dtype)get_u8(&r);
        it->ndim = (int)get_u8(&r);
        if (r.short_read) return bad(l, "item %" PRIu32 " is cut short", k);
        if (!it->name) return bad(l, "out of memory");
        if (it->kind > KIND_OP) return bad(l, "item %" PRIu32 " ('%s') has unknown kind %d", k, it->name, it->kind);
        if ((unsigned)it->dtype >= EM_DTYPE_COUNT)
            return bad(l, "item %" PRIu32 " ('%s') has unknown dtype %d", k, it->name, (int)it->dtype);
        if (it->ndim > EM_MAX_DIMS)
            return bad(l, "item %" PRIu32 " ('%s') has rank %d, above %d", k, it->name, it->ndim, EM_MAX_DIMS);
        for (int d = 0; d < it->ndim; d++) {
            it->shape[d] = (int64_t)get_u64(&r);
            bool unknown_ok = it->kind == KIND_PLACEHOLDER || it->kind == KIND_OP;
            if (it->shape[d] < (unknown_ok ? -1 : 0) || it->shape[d] > MAX_SIZE)
                return bad(l, "item %" PRIu32 " ('%s') has size %" PRId64 " in dimension %d", k, it->name,
                           it->shape[d], d);
        }
        if (it->kind == KIND_CONST || it->kind == KIND_VARIABLE) {
            it->offset = get_u64(&r);
            if (it->kind == KIND_VARIABLE) it->trainable = get_u8(&r) != 0;
            int64_t n = numel_of(it);
            size_t esize = em_dtype_size(it->dtype);
            if (r.short_read) return bad(l, "item %" PRIu32 " is cut short", k);
            if (n < 0 || (uint64_t)n > (uint64_t)im->size / esize || it->offset % DATA_ALIGN ||
                it->offset < HEADER_BYTES + table || it->offset > im->size ||
                (uint64_t)n * esize > im->size - it->offset)
                return bad(l, "the data of '%s' (%" PRId64 " elements at byte %" PRIu64 ") lies outside the file",
                           it->name, n, it->offset);
        } else if (it->kind == KIND_OP) {
            char *op = get_str(&r);
            it->n = (int)get_u32(&r);
            if (r.short_read || !op) {
                free(op);
                return r.short_read ? bad(l, "item %" PRIu32 " is cut short", k) : bad(l, "out of memory");
            }
            it->def = em__op_by_name(op);
            if (!it->def) {
                bad(l, "node '%s' is op '%s', which this process does not have: register it with em_op_register "
                       "before loading, if it is your own op (or the file is from a newer Ember)",
                    it->name, op);
                free(op);
                return -1;
            }
            free(op);
            if (it->n < 0 || (uint32_t)it->n > k || (it->def->arity >= 0 ? it->n != it->def->arity : it->n < 1))
                return bad(l, "node '%s' (%s) has %d inputs", it->name, it->def->name, it->n);
            if (!(it->in = malloc(sizeof(uint32_t) * (size_t)(it->n ? it->n : 1)))) return bad(l, "out of memory");
            for (int j = 0; j < it->n; j++) {
                it->in[j] = get_u32(&r);
                if (!r.short_read && it->in[j] >= k)
                    return bad(l, "node '%s' input %d is item %" PRIu32 ", not an earlier one", it->name, j,
                               it->in[j]);
            }
            for (int j = 0; j < 2 * EM_MAX_DIMS; j++) it->a.i[j] = (int64_t)get_u64(&r);
            it->a.ni = (int)get_u32(&r);
            for (int j = 0; j < 4; j++) get(&r, &it->a.f[j], 8);
            it->a.dtype = (int)get_u32(&r);
            it->a.seed = get_u64(&r);
            it->a.counter = get_u64(&r);
            if (r.short_read) return bad(l, "item %" PRIu32 " is cut short", k);
            if (em__op_is_custom(it->def)) { /* its attributes by name; its em_attrs hold no sizes */
                if (custom_attrs(l, &r, it)) return -1;
                continue;
            }
            if (it->a.ni < 0 || it->a.ni > 2 * EM_MAX_DIMS)
                return bad(l, "node '%s' has %d integer attributes", it->name, it->a.ni);
            for (int j = 0; j < 2 * EM_MAX_DIMS; j++)
                if (it->a.i[j] > MAX_SIZE || it->a.i[j] < -MAX_SIZE || resymbolize(l, &it->a.i[j]))
                    return bad(l, "node '%s' has integer attribute %d = %" PRId64 ", beyond +-2^40 or not re-derivable "
                                  "for this Ember's unknown batch size", it->name, j, it->a.i[j]);
        }
    }
    uint32_t nfetch = get_u32(&r);
    if (r.short_read || nfetch > table / 8) return bad(l, "the fetch table is cut short");
    l->fetch_names = calloc(nfetch ? nfetch : 1, sizeof(char *));
    l->fetch_items = calloc(nfetch ? nfetch : 1, sizeof(uint32_t));
    if (!l->fetch_names || !l->fetch_items) return bad(l, "out of memory");
    l->nfetch = nfetch;
    for (uint32_t k = 0; k < l->nfetch; k++) {
        l->fetch_names[k] = get_str(&r);
        l->fetch_items[k] = get_u32(&r);
        if (r.short_read) return bad(l, "the fetch table is cut short");
        if (!l->fetch_names[k]) return bad(l, "out of memory");
        if (l->fetch_items[k] >= l->nitems)
            return bad(l, "fetch '%s' is item %" PRIu32 " of %" PRIu32, l->fetch_names[k], l->fetch_items[k],
                       l->nitems);
    }
    if (r.p != r.end) return bad(l, "%zu bytes follow the fetch table", (size_t)(r.end - r.p));
    return 0;
}

/* Runs every op's shape rule on tensors without data, as the file gives them,
 * and compares with the saved shapes: nothing is created yet when one fails.
 * Placeholders are made here (the graph keeps them). */
static int dry_run(loaded *l) {
    for (uint32_t k = 0; k < l->nitems; k++) {
        item *it = &l->items[k];
        char b1[160], b2[160];
        if (it->kind == KIND_PLACEHOLDER) {
            em_shape s = {.ndim = it->ndim};
            memcpy(s.dims, it->shape, sizeof(int64_t) * (size_t)it->ndim);
            if (!(it->meta = em_placeholder(it->dtype, s, it->name))) return -1;
            em__retain(it->meta); /* it was put in the load's scope */
            continue;
        }
        if (it->kind != KIND_OP) {
            if (!(it->meta = em__alloc_meta(it->dtype, it->ndim, it->shape))) return -1;
            continue;
        }
        em_tensor *small[8], **in = it->n <= 8 ? small : malloc(sizeof(em_tensor *) * (size_t)it->n);
        if (!in) return bad(l, "out of memory");
        for (int j = 0; j < it->n; j++) in[j] = l->items[it->in[j]].meta;
        em_call c = {it->def, it->n, in, &it->a, NULL};
        em_dtype dtype;
        int ndim = 0;
        int64_t shape[EM_MAX_DIMS];
        int rc = em__infer_rule(&c, &dtype, &ndim, shape);
        if (in != small) free(in);
        if (rc) return bad(l, "node '%s': %s", it->name, em_last_error());
        bool same = dtype == it->dtype && ndim == it->ndim;
        for (int d = 0; d < ndim && same; d++)
            same = em__symbolic(shape[d]) ? it->shape[d] == -1 : it->shape[d] == shape[d];
        if (!same) {
            em_shape saved = {.ndim = it->ndim}, now = {.ndim = ndim};
            memcpy(saved.dims, it->shape, sizeof(int64_t) * (size_t)it->ndim);
            for (int d = 0; d < ndim; d++) now.dims[d] = em__symbolic(shape[d]) ? -1 : shape[d];
            return bad(l, "node '%s' (%s) computes %s %s where the file says %s %s", it->name, it->def->name,
                       em_dtype_name(dtype), em_shape_str(now, b1, sizeof b1), em_dtype_name(it->dtype),
                       em_shape_str(saved, b2, sizeof b2));
        }
        if (!(it->meta = em__alloc_meta(dtype, ndim, shape))) return -1;
    }
    return 0;
}

/* The variables the file names: taken from the store (reuse) or refused,
 * before any is created. */
static int check_variables(loaded *l, unsigned flags) {
    for (uint32_t k = 0; k < l->nitems; k++) {
        const item *it = &l->items[k];
        if (it->kind != KIND_VARIABLE) continue;
        for (uint32_t j = 0; j < k; j++)
            if (l->items[j].kind == KIND_VARIABLE && !strcmp(l->items[j].name, it->name))
                return bad(l, "variable '%s' is saved twice", it->name);
        em_tensor *v = em_find_variable(it->name);
        if (!v) continue;
        char b1[160], b2[160];
        if (!(flags & EM_LOAD_REUSE_VARIABLES))
            return bad(l, "variable '%s' already exists in this thread's variable store (load with "
                          "EM_LOAD_REUSE_VARIABLES to bind to it, or em_variables_release first)",
                       it->name);
        if (v->dtype != it->dtype || v->ndim != it->ndim || memcmp(v->shape, it->shape, sizeof(int64_t) * (size_t)v->ndim))
            return bad(l, "variable '%s' exists as %s %s, but the file has it as %s %s", it->name,
                       em_dtype_name((em_dtype)v->dtype), em__tshape(v, b1, sizeof b1), em_dtype_name(it->dtype),
                       em__tshape(it->meta, b2, sizeof b2));
    }
    return 0;
}

/* Builds the graph from the checked items: constants (pointing into a mapped
 * image when large), variables, placeholders, then the ops. *kept: whether a
 * constant points into the image. */
static em_graph *build(loaded *l, const image *im, bool *kept) {
    em_graph *g = em__graph_new();
    if (!g) return NULL;
    *kept = false;
    for (uint32_t k = 0; k < l->nitems; k++) {
        item *it = &l->items[k];
        em_tensor *t = NULL;
        size_t bytes = it->kind == KIND_CONST || it->kind == KIND_VARIABLE
                           ? (size_t)numel_of(it) * em_dtype_size(it->dtype)
                           : 0;
        if (it->kind == KIND_CONST && im->map && bytes >= MAP_MIN_TENSOR && !em__is_gpu(em__scoped_device)) {
            if ((t = em__alloc_meta(it->dtype, it->ndim, it->shape))) {
                t->data = (void *)(im->p + it->offset);
                *kept = true;
            }
            t = em__own(t);
        } else if (it->kind == KIND_CONST || it->kind == KIND_VARIABLE) {
            if ((t = em__alloc(it->dtype, it->ndim, it->shape))) memcpy(t->data, im->p + it->offset, bytes);
            if (it->kind == KIND_CONST) {
                t = em__own_placed(t);
            } else {
                em_tensor *init = em__own(t);
                t = em_find_variable(it->name);
                if (!t && init) {
                    em_shape s = em_tensor_shape(init);
                    t = em__variable_new("graph_load", it->name, it->dtype, s, &EM_INIT_FROM(init), it->trainable);
                }
            }
        } else if (it->kind == KIND_PLACEHOLDER) {
            t = it->meta;
        }
        if (it->kind == KIND_OP) {
            int64_t small[8], *in = it->n <= 8 ? small : malloc(sizeof(int64_t) * (size_t)it->n);
            if (!in) {
                bad(l, "out of memory");
                goto fail;
            }
            for (int j = 0; j < it->n; j++) in[j] = l->items[it->in[j]].value;
            it->value = em__graph_add_op(g, it->def->id, it->n, in, &it->a);
            if (in != small) free(in);
        } else {
            it->value = t ? em__graph_add_input(g, t) : -1;
            if (it->value >= 0 && it->kind == KIND_PLACEHOLDER && em__is_gpu(em__scoped_device)) {
                /* fed in host memory: its readers read a copy on the device, as tracing in a device scope makes */
                em_attrs to = {.i = {em__scoped_device}, .ni = 1};
                int64_t fed = it->value;
                it->value = em__graph_add_op(g, EM_OP_COPY_TO_DEVICE, 1, &fed, &to);
            }
        }
        if (it->value < 0) goto fail;
    }
    for (uint32_t k = 0; k < l->nfetch; k++)
        if (em__graph_name_fetch(g, l->fetch_names[k], l->items[l->fetch_items[k]].value)) goto fail;
    if (em__graph_finish(g)) goto fail;
    return g;
fail:
    em_graph_release(g);
    *kept = false;
    return NULL;
}

em_graph *em_graph_load_with(const char *path, const char *device, unsigned flags) {
    if (!path) {
        em__error("graph_load: path must not be NULL");
        return NULL;
    }
    if (flags & ~(unsigned)EM_LOAD_REUSE_VARIABLES) {
        em__error("graph_load: unknown flags 0x%x (EM_LOAD_REUSE_VARIABLES)", flags);
        return NULL;
    }
    image im;
    if (read_image(path, &im)) return NULL;
    loaded l = {.path = path};
    em_graph *g = NULL;
    bool scoped = false, device_open = false, kept = false;
    uint32_t version = 0, crc = 0;
    uint64_t size = 0, table = 0, sym = 0;
    uint32_t prime = 0, parts = 0;
    if (im.size < HEADER_BYTES || memcmp(im.p, GRAPH_MAGIC, 8)) {
        bad(&l, im.size >= 8 && memcmp(im.p, GRAPH_MAGIC, 8) ? "not an Ember saved graph (bad magic)"
                                                              : "truncated: %zu bytes, shorter than the header",
            im.size);
        goto done;
    }
    memcpy(&version, im.p + 8, 4);
    memcpy(&size, im.p + 16, 8);
    memcpy(&table, im.p + 24, 8);
    memcpy(&sym, im.p + 32, 8);
    memcpy(&prime, im.p + 40, 4);
    memcpy(&parts, im.p + 44, 4);
    memcpy(&crc, im.p + CRC_AT, 4);
    if (version > GRAPH_VERSION) {
        bad(&l, "format version %" PRIu32 " is newer than this Ember reads (1 to %d): load it with a newer Ember",
            version, GRAPH_VERSION);
        goto done;
    }
    if (version < 1) {
        bad(&l, "format version 0 is not a version Ember wrote");
        goto done;
    }
    if (size != im.size) {
        bad(&l, size > im.size ? "truncated: %zu bytes of the %" PRIu64 " its header gives"
                               : "%zu bytes, but its header gives %" PRIu64,
            im.size, size);
        goto done;
    }
    if (file_crc(im.p, im.size) != crc) {
        bad(&l, "checksum mismatch: the file is damaged");
        goto done;
    }
    if (table > im.size - HEADER_BYTES) {
        bad(&l, "its item table (%" PRIu64 " bytes) is larger than the file", table);
        goto done;
    }
    if (!prime && !parts) { /* the first version 1 files: 1680 parts */
        parts = 1680;
        prime = (uint32_t)(sym / parts);
    }
    if (!prime || !parts || sym != (uint64_t)prime * parts) {
        bad(&l, "its unknown dimensions' stand-in %" PRIu64 " is not its prime %" PRIu32 " times its %" PRIu32 " parts",
            sym, prime, parts);
        goto done;
    }
    l.sym_prime = prime;
    l.sym_parts = parts;
    if (parse(&l, &im, table)) goto done;
    if (em_device_begin(device ? device : "/cpu:0")) goto done;
    device_open = true;
    em_scope_begin();
    scoped = true;
    if (dry_run(&l) || check_variables(&l, flags)) goto done;
    g = build(&l, &im, &kept);
done:
    if (scoped) em_scope_end();
    if (device_open) em_device_end();
    loaded_free(&l);
    if (g && kept) em__graph_on_release(g, unmap, im.map);
    else image_free(&im);
    return g;
}

em_graph *em_graph_load_on(const char *path, const char *device) { return em_graph_load_with(path, device, 0); }

em_graph *em_graph_load(const char *path) { return em_graph_load_with(path, NULL, 0); }
