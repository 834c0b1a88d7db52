/* llm.c's model checkpoints and token shards (include/ember/llmc.h), and the
 * token loader that reads shards on a background thread. */
#include "dtype_convert.h"
#include "file.h"
#include "internal.h"

#include "ember/llmc.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "llm.c's files are read and written in host order");

enum { HEADER_INTS = 256, HEADER_BYTES = HEADER_INTS * 4 };
enum { MODEL_MAGIC = 20240326, MODEL_F32 = 3, MODEL_BF16 = 5, TOKENS_MAGIC = 20240520, TOKENS_VERSION = 1 };
/* Larger sizes than any GPT-2 has, small enough that no product overflows. */
enum { MAX_DIM = 1 << 20 };

static const char *const param_names[EM_LLMC_PARAM_COUNT] = {
    "wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
    "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb",
};

const char *em_llmc_param_name(int index) {
    return index >= 0 && index < EM_LLMC_PARAM_COUNT ? param_names[index] : NULL;
}

em_shape em_llmc_param_shape(const em_llmc_config *c, int index) {
    int64_t L = c->num_layers, C = c->channels;
    switch (index) {
    case EM_LLMC_WTE: return EM_SHAPE(c->padded_vocab_size, C);
    case EM_LLMC_WPE: return EM_SHAPE(c->max_seq_len, C);
    case EM_LLMC_QKVW: return EM_SHAPE(L, 3 * C, C);
    case EM_LLMC_QKVB: return EM_SHAPE(L, 3 * C);
    case EM_LLMC_ATTPROJW: return EM_SHAPE(L, C, C);
    case EM_LLMC_FCW: return EM_SHAPE(L, 4 * C, C);
    case EM_LLMC_FCB: return EM_SHAPE(L, 4 * C);
    case EM_LLMC_FCPROJW: return EM_SHAPE(L, C, 4 * C);
    case EM_LLMC_LNFW: case EM_LLMC_LNFB: return EM_SHAPE(C);
    default: return EM_SHAPE(L, C); /* ln1w ln1b attprojb ln2w ln2b fcprojb */
    }
}

static int64_t config_params(const em_llmc_config *c) {
    int64_t n = 0;
    for (int i = 0; i < EM_LLMC_PARAM_COUNT; i++) n += em_shape_numel(em_llmc_param_shape(c, i));
    return n;
}

static void config_str(const em_llmc_config *c, char *buf, size_t size) {
    snprintf(buf, size, "maxT %d, V %d, Vp %d, L %d, NH %d, C %d", c->max_seq_len, c->vocab_size,
             c->padded_vocab_size, c->num_layers, c->num_heads, c->channels);
}

/* Why config is not one a file may hold; NULL if it is fine. */
static const char *config_problem(const em_llmc_config *c) {
    const int v[] = {c->max_seq_len, c->vocab_size, c->padded_vocab_size, c->num_layers, c->num_heads, c->channels};
    for (size_t i = 0; i < sizeof v / sizeof *v; i++)
        if (v[i] <= 0 || v[i] > MAX_DIM) return "a size is not in [1, 2^20]";
    if (c->padded_vocab_size < c->vocab_size) return "the padded vocabulary is smaller than the vocabulary";
    if (c->channels % c->num_heads) return "channels are not a multiple of heads";
    if (c->num_layers > 1024) return "more than 1024 layers";
    return NULL;
}

static FILE *open_read(const char *op, const char *path, int64_t *size) {
    if (!path) {
        em__error("%s: path is NULL", op);
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        em__error("%s: cannot open %s: %s", op, path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) {
        em__error("%s: %s is not a regular file", op, path);
        fclose(f);
        return NULL;
    }
    *size = (int64_t)st.st_size;
    return f;
}

static int read_header(const char *op, const char *path, FILE *f, int64_t size, int32_t *h, int32_t magic,
                       const char *what) {
    if (size < HEADER_BYTES || fread(h, 4, HEADER_INTS, f) != HEADER_INTS) {
        em__error("%s: %s: truncated: %lld bytes, shorter than the 1024-byte header of %s", op, path,
                  (long long)size, what);
        return -1;
    }
    if (h[0] != magic) {
        em__error("%s: %s: magic %d is not %d: not %s", op, path, h[0], magic, what);
        return -1;
    }
    return 0;
}

/* ---- model checkpoints ---- */

static int model_header(const char *op, const char *path, FILE *f, int64_t size, em_llmc_config *c, int *version) {
    int32_t h[HEADER_INTS];
    if (read_header(op, path, f, size, h, MODEL_MAGIC, "an llm.c model checkpoint")) return -1;
    if (h[1] != MODEL_F32 && h[1] != MODEL_BF16) {
        em__error("%s: %s: checkpoint version %d is not supported (3: float32, 5: bfloat16)", op, path, h[1]);
        return -1;
    }
    *version = h[1];
    *c = (em_llmc_config){.max_seq_len = h[2], .vocab_size = h[3], .num_layers = h[4], .num_heads = h[5],
                          .channels = h[6], .padded_vocab_size = h[7]};
    const char *why = config_problem(c);
    if (why) {
        char cs[128];
        config_str(c, cs, sizeof cs);
        em__error("%s: %s: corrupt header (%s): %s", op, path, cs, why);
        return -1;
    }
    int64_t want = HEADER_BYTES + config_params(c) * (h[1] == MODEL_F32 ? 4 : 2);
    if (size != want) {
        char cs[128];
        config_str(c, cs, sizeof cs);
        em__error("%s: %s: %s: %lld bytes, the header (%s) needs %lld", op, path,
                  size < want ? "truncated" : "bytes after the parameters", (long long)size, cs, (long long)want);
        return -1;
    }
    return 0;
}

int em_llmc_read_config(const char *path, em_llmc_config *config) {
    const char *op = "llmc_read_config";
    if (!config) return em__error("%s: config is NULL", op), -1;
    int64_t size;
    FILE *f = open_read(op, path, &size);
    if (!f) return -1;
    int version, rc = model_header(op, path, f, size, config, &version);
    fclose(f);
    return rc;
}

int em_llmc_load_model(const char *path, const em_llmc_config *expect, em_llmc_config *config, em_tensor **params) {
    const char *op = "llmc_load_model";
    if (!params) return em__error("%s: params is NULL", op), -1;
    int64_t size;
    FILE *f = open_read(op, path, &size);
    if (!f) return -1;
    em_llmc_config c;
    int version;
    if (model_header(op, path, f, size, &c, &version)) goto fail;
    if (expect && memcmp(expect, &c, sizeof c)) {
        char want[128], got[128];
        config_str(expect, want, sizeof want);
        config_str(&c, got, sizeof got);
        em__error("%s: %s: the checkpoint's shapes (%s) do not match the model's (%s)", op, path, got, want);
        goto fail;
    }
    em_tensor *t[EM_LLMC_PARAM_COUNT] = {0};
    int i;
    for (i = 0; i < EM_LLMC_PARAM_COUNT; i++) {
        em_shape s = em_llmc_param_shape(&c, i);
        t[i] = em__alloc(EM_F32, s.ndim, s.dims);
        if (!t[i]) break;
        float *dst = t[i]->data;
        size_t n = (size_t)em_shape_numel(s);
        if (version == MODEL_F32) {
            if (fread(dst, 4, n, f) != n) break;
        } else { /* bfloat16: read into the top half of dst, widen from the start (float k overwrites halves
                  * 2k-n and 2k-n+1, both read already) */
            uint16_t *half = (uint16_t *)(dst + n) - n;
            if (fread(half, 2, n, f) != n) break;
            for (size_t k = 0; k < n; k++) dst[k] = em_bf16_to_f32(half[k]);
        }
    }
    if (i < EM_LLMC_PARAM_COUNT) {
        if (t[i]) em__error("%s: %s: read error in %s: %s", op, path, param_names[i], strerror(errno));
        for (int k = 0; k <= i; k++)
            if (t[k]) em__unref(t[k]);
        goto fail;
    }
    fclose(f);
    for (i = 0; i < EM_LLMC_PARAM_COUNT; i++) params[i] = em__own(t[i]);
    if (config) *config = c;
    return 0;
fail:
    fclose(f);
    return -1;
}

typedef struct model_parts {
    int32_t header[HEADER_INTS];
    em_tensor *const *params;
} model_parts;

static int fill_model(em__file_out *out, void *ctx) {
    model_parts *m = ctx;
    em__file_put(out, m->header, sizeof m->header);
    for (int i = 0; i < EM_LLMC_PARAM_COUNT; i++) {
        em_tensor *p = m->params[i];
        const void *data = em_data(p);
        if (!data) return -1;
        if (p->dtype == EM_F32) {
            em__file_put(out, data, (size_t)p->numel * 4);
            continue;
        }
        float buf[4096];
        for (int64_t k = 0; k < p->numel; k += 4096) {
            int64_t n = p->numel - k < 4096 ? p->numel - k : 4096;
            for (int64_t j = 0; j < n; j++) buf[j] = (float)((const double *)data)[k + j];
            em__file_put(out, buf, (size_t)n * 4);
        }
    }
    return 0;
}

int em_llmc_save_model(const char *path, const em_llmc_config *config, em_tensor *const *params) {
    const char *op = "llmc_save_model";
    if (!path || !config || !params) return em__error("%s: path, config or params is NULL", op), -1;
    const char *why = config_problem(config);
    if (why) {
        char cs[128];
        config_str(config, cs, sizeof cs);
        return em__error("%s: config (%s): %s", op, cs, why), -1;
    }
    for (int i = 0; i < EM_LLMC_PARAM_COUNT; i++) {
        if (!params[i]) return em__error("%s: parameter %d (%s) is NULL", op, i, param_names[i]), -1;
        em_shape want = em_llmc_param_shape(config, i), got = em_tensor_shape(params[i]);
        em_dtype dt = em_tensor_dtype(params[i]);
        if (!em_shape_equal(want, got) || (dt != EM_F32 && dt != EM_F64)) {
            char ws[96], gs[96];
            return em__error("%s: parameter %d (%s) is %s %s, the config needs float32 or float64 %s", op, i,
                             param_names[i], em_dtype_name(dt), em_shape_str(got, gs, sizeof gs),
                             em_shape_str(want, ws, sizeof ws)),
                   -1;
        }
    }
    model_parts m = {.header = {MODEL_MAGIC, MODEL_F32, config->max_seq_len, config->vocab_size, config->num_layers,
                                config->num_heads, config->channels, config->padded_vocab_size},
                     .params = params};
    return em__write_atomic(op, path, fill_model, &m);
}

/* ---- token shards ---- */

typedef struct shard {
    FILE *f;
    int64_t count; /* tokens */
} shard;

/* Opens a shard and checks it whole: header, length, every id < vocab_size. */
static int shard_open(const char *op, const char *path, int64_t vocab_size, shard *s) {
    int64_t size;
    s->f = open_read(op, path, &size);
    if (!s->f) return -1;
    int32_t h[HEADER_INTS];
    if (read_header(op, path, s->f, size, h, TOKENS_MAGIC, "an llm.c token shard")) goto fail;
    if (h[1] != TOKENS_VERSION) {
        em__error("%s: %s: token shard version %d is not supported (1: uint16 ids)", op, path, h[1]);
        goto fail;
    }
    s->count = h[2];
    if (h[2] < 0 || size != HEADER_BYTES + 2 * (int64_t)h[2]) {
        em__error("%s: %s: %s: the header says %d tokens (%lld bytes), the file holds %lld bytes", op, path,
                  h[2] < 0 || size < HEADER_BYTES + 2 * (int64_t)h[2] ? "truncated or corrupt" : "bytes after the tokens",
                  h[2], (long long)HEADER_BYTES + 2 * (long long)h[2], (long long)size);
        goto fail;
    }
    if (vocab_size > 0) {
        uint16_t buf[32768];
        for (int64_t at = 0; at < s->count;) {
            size_t n = (size_t)(s->count - at < 32768 ? s->count - at : 32768);
            if (fread(buf, 2, n, s->f) != n) {
                em__error("%s: %s: read error: %s", op, path, strerror(errno));
                goto fail;
            }
            for (size_t k = 0; k < n; k++)
                if (buf[k] >= vocab_size) {
                    em__error("%s: %s: token %u at position %lld is outside the vocabulary of %lld", op, path, buf[k],
                              (long long)(at + (int64_t)k), (long long)vocab_size);
                    goto fail;
                }
            at += (int64_t)n;
        }
    }
    return 0;
fail:
    fclose(s->f);
    return -1;
}

/* Reads n ids from token `at` into dst as int32. */
static int shard_read(const shard *s, int64_t at, int64_t n, int32_t *dst) {
    uint16_t *raw = (uint16_t *)(dst + n) - n; /* the top half of dst, widened from the start (as in load_model) */
    size_t bytes = (size_t)n * 2;
    if (pread(fileno(s->f), raw, bytes, HEADER_BYTES + at * 2) != (ssize_t)bytes) return -1;
    for (int64_t k = 0; k < n; k++) dst[k] = raw[k];
    return 0;
}

em_tensor *em_llmc_load_tokens(const char *path, int64_t vocab_size) {
    const char *op = "llmc_load_tokens";
    shard s;
    if (shard_open(op, path, vocab_size, &s)) return NULL;
    em_tensor *t = em__alloc(EM_I32, 1, (int64_t[]){s.count});
    if (t && shard_read(&s, 0, s.count, t->data)) {
        em__error("%s: %s: read error: %s", op, path, strerror(errno));
        em__unref(t);
        t = NULL;
    }
    fclose(s.f);
    return t ? em__own(t) : NULL;
}

typedef struct token_parts {
    int32_t header[HEADER_INTS];
    const void *ids;
    em_dtype dtype;
    int64_t count;
} token_parts;

static int fill_tokens(em__file_out *out, void *ctx) {
    token_parts *p = ctx;
    em__file_put(out, p->header, sizeof p->header);
    uint16_t buf[4096];
    for (int64_t k = 0; k < p->count; k += 4096) {
        int64_t n = p->count - k < 4096 ? p->count - k : 4096;
        for (int64_t j = 0; j < n; j++)
            buf[j] = (uint16_t)em_index_at(p->ids, p->dtype, k + j);
        em__file_put(out, buf, (size_t)n * 2);
    }
    return 0;
}

int em_llmc_save_tokens(const char *path, em_tensor *tokens) {
    const char *op = "llmc_save_tokens";
    if (!path) return em__error("%s: path is NULL", op), -1;
    if (!tokens) return em__null_input(op), -1;
    em_dtype dt = em_tensor_dtype(tokens);
    if (!em_is_index_dtype(dt) || em_ndim(tokens) != 1 || em_numel(tokens) > INT32_MAX) {
        char ss[96];
        return em__error("%s: tokens must be a 1-D " EM_INDEX_DTYPES " tensor of at most 2^31-1 ids, got %s %s", op,
                         em_dtype_name(dt), em_shape_str(em_tensor_shape(tokens), ss, sizeof ss)),
               -1;
    }
    const void *ids = em_data(tokens);
    if (!ids) return -1;
    int64_t n = em_numel(tokens);
    for (int64_t k = 0; k < n; k++) {
        int64_t v = em_index_at(ids, dt, k);
        if (v < 0 || v > 65535)
            return em__error("%s: token %lld at position %lld does not fit the shard's uint16 ids", op, (long long)v,
                             (long long)k),
                   -1;
    }
    token_parts p = {.header = {TOKENS_MAGIC, TOKENS_VERSION, (int32_t)n}, .ids = ids, .dtype = dt, .count = n};
    return em__write_atomic(op, path, fill_tokens, &p);
}

/* ---- token loader ---- */

struct em_token_loader {
    shard s;
    int batch, seq, rank, ranks;
    uint64_t seed;
    int64_t windows;        /* non-overlapping windows of seq + 1 tokens in the shard */
    int64_t per_epoch;      /* batches per epoch on this rank */
    int64_t *order;         /* the windows in the order of epoch order_epoch */
    int64_t order_epoch;
    int64_t position;       /* batches handed out */
    double stall;

    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int64_t want;           /* the batch the thread reads next; -1 when nothing is asked */
    int64_t ready;          /* the batch in buf; -1 when none */
    bool failed, stop;
    int32_t *buf;
};

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Fisher-Yates over the windows from (seed, epoch): the same on every rank. */
static void shuffle(em_token_loader *l, int64_t epoch) {
    uint64_t x = l->seed ^ (0xD1B54A32D192ED03ull * (uint64_t)(epoch + 1));
    for (int64_t i = 0; i < l->windows; i++) l->order[i] = i;
    for (int64_t i = l->windows - 1; i > 0; i--) {
        int64_t j = (int64_t)(splitmix64(&x) % (uint64_t)(i + 1));
        int64_t t = l->order[i];
        l->order[i] = l->order[j];
        l->order[j] = t;
    }
    l->order_epoch = epoch;
}

/* Reads batch `index` into dst (the loader thread only touches order). */
static int read_batch(em_token_loader *l, int64_t index, int32_t *dst) {
    int64_t epoch = index / l->per_epoch, first = index % l->per_epoch * l->batch;
    if (l->order_epoch != epoch) shuffle(l, epoch);
    int64_t w = l->seq + 1;
    for (int b = 0; b < l->batch; b++) {
        int64_t window = l->order[(first + b) * l->ranks + l->rank];
        if (shard_read(&l->s, window * w, w, dst + b * w)) return -1;
    }
    return 0;
}

static void *loader_main(void *arg) {
    em_token_loader *l = arg;
    pthread_mutex_lock(&l->lock);
    for (;;) {
        while (!l->stop && l->want < 0) pthread_cond_wait(&l->changed, &l->lock);
        if (l->stop) break;
        int64_t index = l->want;
        pthread_mutex_unlock(&l->lock);
        int rc = read_batch(l, index, l->buf);
        pthread_mutex_lock(&l->lock);
        if (l->want == index) { /* not re-aimed by a seek meanwhile */
            l->want = -1;
            l->ready = index;
            l->failed = rc != 0;
            pthread_cond_broadcast(&l->changed);
        }
    }
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

#define LOADER "token_loader"

em_token_loader *em_token_loader_open(const char *path, int64_t vocab_size, int batch, int seq, uint64_t seed,
                                      int rank, int ranks) {
    if (batch <= 0 || seq <= 0 || ranks <= 0 || rank < 0 || rank >= ranks) {
        em__error(LOADER "_open: batch %d and seq %d must be positive and rank %d in [0, ranks %d)", batch, seq, rank,
                  ranks);
        return NULL;
    }
    em_token_loader *l = calloc(1, sizeof *l);
    if (!l) return em__error(LOADER "_open: out of memory"), NULL;
    if (shard_open(LOADER "_open", path, vocab_size, &l->s)) {
        free(l);
        return NULL;
    }
    l->batch = batch, l->seq = seq, l->rank = rank, l->ranks = ranks, l->seed = seed;
    l->windows = l->s.count / (seq + 1);
    l->per_epoch = l->windows / ranks / batch;
    if (l->per_epoch == 0) {
        em__error(LOADER "_open: %s: %lld tokens make %lld windows of %d, fewer than a batch of %d on each of %d "
                         "ranks",
                  path, (long long)l->s.count, (long long)l->windows, seq + 1, batch, ranks);
        fclose(l->s.f);
        free(l);
        return NULL;
    }
    l->order = malloc((size_t)l->windows * sizeof *l->order);
    l->buf = malloc((size_t)batch * (size_t)(seq + 1) * sizeof *l->buf);
    l->order_epoch = -1;
    l->ready = -1;
    l->want = 0;
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->changed, NULL);
    if (!l->order || !l->buf || pthread_create(&l->thread, NULL, loader_main, l)) {
        em__error(LOADER "_open: out of memory or threads");
        pthread_mutex_destroy(&l->lock);
        pthread_cond_destroy(&l->changed);
        free(l->order);
        free(l->buf);
        fclose(l->s.f);
        free(l);
        return NULL;
    }
    return l;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

em_tensor *em_token_loader_next(em_token_loader *l) {
    if (!l) return em__error(LOADER "_next: loader is NULL"), NULL;
    em_tensor *t = em__alloc(EM_I32, 2, (int64_t[]){l->batch, l->seq + 1});
    if (!t) return NULL;
    double t0 = now();
    pthread_mutex_lock(&l->lock);
    int64_t index = l->position;
    if (l->ready != index && l->want != index) { /* nothing under way for it (after a failure) */
        l->want = index;
        pthread_cond_broadcast(&l->changed);
    }
    while (l->ready != index) pthread_cond_wait(&l->changed, &l->lock);
    bool failed = l->failed;
    if (!failed) memcpy(t->data, l->buf, (size_t)t->numel * sizeof(int32_t));
    l->ready = -1;
    if (!failed) {
        l->position++;
        l->want = l->position; /* read the next one while the caller trains */
        pthread_cond_broadcast(&l->changed);
    }
    pthread_mutex_unlock(&l->lock);
    l->stall += now() - t0;
    if (failed) {
        em__error(LOADER "_next: read error in batch %lld (was the shard truncated?)", (long long)index);
        em__unref(t);
        return NULL;
    }
    return em__own(t);
}

int64_t em_token_loader_position(const em_token_loader *l) { return l ? l->position : -1; }
int64_t em_token_loader_batches_per_epoch(const em_token_loader *l) { return l ? l->per_epoch : -1; }
double em_token_loader_stall_seconds(const em_token_loader *l) { return l ? l->stall : 0; }

int em_token_loader_seek(em_token_loader *l, int64_t position) {
    if (!l || position < 0) return em__error(LOADER "_seek: no loader, or position %lld < 0", (long long)position), -1;
    pthread_mutex_lock(&l->lock);
    l->position = position;
    if (l->ready != position) {
        l->ready = -1;
        l->want = position;
        pthread_cond_broadcast(&l->changed);
    }
    pthread_mutex_unlock(&l->lock);
    return 0;
}

void em_token_loader_close(em_token_loader *l) {
    if (!l) return;
    pthread_mutex_lock(&l->lock);
    l->stop = true;
    pthread_cond_broadcast(&l->changed);
    pthread_mutex_unlock(&l->lock);
    pthread_join(l->thread, NULL);
    pthread_mutex_destroy(&l->lock);
    pthread_cond_destroy(&l->changed);
    fclose(l->s.f);
    free(l->order);
    free(l->buf);
    free(l);
}
