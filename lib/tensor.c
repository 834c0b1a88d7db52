/* The tensor object: dtypes, shapes, strides, storage, reference counts,
 * creation, access and printing; and the thread setting shared with BLIS. */
#include "internal.h"

#include <blis.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/sysinfo.h>
#include <unistd.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

static atomic_llong live_tensors;

static const struct {
    const char *name;
    size_t size;
} dtypes[EM_DTYPE_COUNT] = {
    [EM_F32] = {"float32", 4}, [EM_F64] = {"float64", 8}, [EM_I32] = {"int32", 4},
    [EM_I64] = {"int64", 8},   [EM_U8] = {"uint8", 1},    [EM_BOOL] = {"bool", 1},
    [EM_BF16] = {"bfloat16", 2}, [EM_F16] = {"float16", 2}, [EM_I8] = {"int8", 1},
    [EM_I16] = {"int16", 2},    [EM_U16] = {"uint16", 2},
};

const char *em_dtype_name(em_dtype d) { return (unsigned)d < EM_DTYPE_COUNT ? dtypes[d].name : "invalid"; }
size_t em_dtype_size(em_dtype d) { return (unsigned)d < EM_DTYPE_COUNT ? dtypes[d].size : 0; }

int64_t em_live_tensors(void) { return atomic_load(&live_tensors); }

/* ---- shapes ---- */

const char *em_shape_str(em_shape s, char *buf, size_t size) {
    size_t at = 0;
    if (size == 0) return buf;
    buf[0] = '\0';
    at += (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < s.ndim && at < size; i++)
        at += (size_t)snprintf(buf + at, size - at, i ? ",%" PRId64 : "%" PRId64, s.dims[i]);
    if (at < size) snprintf(buf + at, size - at, "]");
    return buf;
}

int64_t em_shape_numel(em_shape s) {
    char b[160];
    if (s.ndim < 0 || s.ndim > EM_MAX_DIMS) {
        em__error("shape_numel: rank %d is outside 0..%d", s.ndim, EM_MAX_DIMS);
        return -1;
    }
    int64_t n = 1;
    bool empty = false, overflow = false;
    for (int i = 0; i < s.ndim; i++) {
        int64_t d = s.dims[i];
        if (d < 0) {
            em__error("shape_numel: dimension %d of %s is negative (an unknown size has no element count)", i,
                      em_shape_str(s, b, sizeof b));
            return -1;
        }
        if (d == 0) empty = true;
        else if (n > INT64_MAX / d) overflow = true;
        else n *= d;
    }
    if (empty) return 0; /* whatever the other sizes */
    if (overflow) {
        em__error("shape_numel: the element count of %s overflows int64", em_shape_str(s, b, sizeof b));
        return -1;
    }
    return n;
}

bool em_shape_equal(em_shape a, em_shape b) {
    if (a.ndim != b.ndim) return false;
    for (int i = 0; i < a.ndim; i++)
        if (a.dims[i] != b.dims[i]) return false;
    return true;
}

void em__contiguous_strides(int ndim, const int64_t *shape, int64_t *strides) {
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        strides[i] = s;
        s *= shape[i] ? shape[i] : 1;
    }
}

/* Validates a shape for a tensor of dtype; sets an error naming `what`. */
static int check_shape(const char *what, em_dtype dtype, int ndim, const int64_t *shape, int64_t *numel) {
    if ((unsigned)dtype >= EM_DTYPE_COUNT) {
        em__error("%s: invalid dtype %d", what, (int)dtype);
        return -1;
    }
    if (ndim < 0 || ndim > EM_MAX_DIMS) {
        em__error("%s: rank %d is outside 0..%d", what, ndim, EM_MAX_DIMS);
        return -1;
    }
    int64_t n = 1, strided = 1;
    const int64_t limit = INT64_MAX / 64;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            em_shape s = {.ndim = ndim};
            memcpy(s.dims, shape, sizeof(int64_t) * (size_t)ndim);
            char b[160];
            em__error("%s: negative dimension %" PRId64 " in shape %s", what, shape[i], em_shape_str(s, b, sizeof b));
            return -1;
        }
        /* the strides (products of the non-zero dims) must not overflow either */
        if (shape[i] && strided > limit / shape[i]) {
            em__error("%s: shape too large: the element count overflows", what);
            return -1;
        }
        strided *= shape[i] ? shape[i] : 1;
        n *= shape[i];
    }
    *numel = n;
    return 0;
}

/* ---- allocation and reference counts ---- */

/* ---- memory blocks ----
 * Every tensor is one block: its header, then (for owners) its data. Freed
 * blocks are kept for reuse, small ones in per-thread lists by size class and
 * large ones in a process-wide cache, because a training loop frees and
 * allocates the same sizes every step, and fresh pages cost a fault each
 * (a 384 MiB output in fresh pages takes 8x as long as in reused ones).
 * The large cache holds up to LARGE_KEEP_BYTES, and beyond that only what
 * keeps the blocks in use plus the cached ones within the most the process
 * has held in use at once (its high-water mark): the cache never makes the
 * process larger than its own peak. Blocks beyond LARGE_KEEP_BYTES are not
 * kept while the machine is short of free memory, an allocation that fails
 * frees the cache and tries again, and em_host_memory_trim and em_shutdown
 * free it. */

#define HEADER_SIZE ((sizeof(em_tensor) + EM_ALIGN - 1) / EM_ALIGN * EM_ALIGN)
#define SMALL_CLASSES 6 /* 256 B .. 8 KiB */
#define SMALL_KEEP 256  /* blocks kept per class and thread */
#define LARGE_KEEP 64   /* blocks in the process-wide cache (a CNN step holds ~40 large ones) */
#define LARGE_KEEP_BYTES ((size_t)512 << 20) /* kept whatever the high-water mark */

typedef struct free_block {
    struct free_block *next;
} free_block;

static _Thread_local free_block *small_free[SMALL_CLASSES];
static _Thread_local int small_count[SMALL_CLASSES];

static pthread_mutex_t large_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    void *p;
    size_t size;
} large[LARGE_KEEP];
static size_t large_bytes;

static bool (*fail_hook)(size_t bytes, void *ctx);
static void *fail_ctx;

void em__set_alloc_fail_hook(bool (*fail)(size_t bytes, void *ctx), void *ctx) {
    fail_hook = fail;
    fail_ctx = ctx;
}

static int size_class(size_t size) {
    for (int c = 0; c < SMALL_CLASSES; c++)
        if (size <= (size_t)256 << c) return c;
    return -1;
}

static pthread_key_t cache_key;
static pthread_once_t cache_key_once = PTHREAD_ONCE_INIT;

/* Frees the calling thread's small blocks (thread exit and em_shutdown). */
static void free_thread_cache(void *unused) {
    (void)unused;
    for (int c = 0; c < SMALL_CLASSES; c++) {
        while (small_free[c]) {
            free_block *b = small_free[c];
            small_free[c] = b->next;
            free(b);
        }
        small_count[c] = 0;
    }
}

static void make_cache_key(void) { pthread_key_create(&cache_key, free_thread_cache); }

static void quarantine_trim(size_t keep);

static atomic_size_t stream_threshold; /* the last-level cache's size; 0 until asked */

void em__set_stream_threshold(size_t bytes) { atomic_store_explicit(&stream_threshold, bytes, memory_order_relaxed); }

atomic_int em__stream_width; /* 0 until em__stream_output is first asked */

bool em__stream_output(size_t bytes) {
    if (!atomic_load_explicit(&em__stream_width, memory_order_relaxed)) {
#ifdef __SSE2__
        int width = __builtin_cpu_supports("avx512f") ? 64 : __builtin_cpu_supports("avx") ? 32 : 16;
#else
        int width = 16; /* unused: em__stream_store copies with memcpy */
#endif
        atomic_store_explicit(&em__stream_width, width, memory_order_relaxed);
    }
    size_t c = atomic_load_explicit(&stream_threshold, memory_order_relaxed);
    if (!c) {
        long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE), l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
        c = l3 > 0 ? (size_t)l3 : l2 > 0 ? (size_t)l2 : (size_t)32 << 20;
        atomic_store_explicit(&stream_threshold, c, memory_order_relaxed);
    }
    return bytes > c;
}

void em__stream_fence(void) {
#ifdef __SSE2__
    _mm_sfence();
#endif
}

/* Bytes of the blocks handed out now, the most at once (em_host_memory_stats;
 * em_host_memory_reset_peak restarts it), and the high-water mark that bounds
 * the large cache (em_host_memory_trim restarts it). */
static atomic_size_t host_in_use, host_peak, host_high_water;

/* Frees the large cache; the bytes freed. */
static size_t large_cache_free(void) {
    void *drop[LARGE_KEEP];
    size_t freed;
    pthread_mutex_lock(&large_lock);
    for (int k = 0; k < LARGE_KEEP; k++) {
        drop[k] = large[k].p;
        large[k].p = NULL;
    }
    freed = large_bytes;
    large_bytes = 0;
    pthread_mutex_unlock(&large_lock);
    for (int k = 0; k < LARGE_KEEP; k++) free(drop[k]);
    return freed;
}

size_t em_host_memory_trim(void) {
    size_t freed = large_cache_free();
    atomic_store(&host_high_water, atomic_load(&host_in_use));
    return freed;
}

void em__blocks_shutdown(void) {
    quarantine_trim(0);
    free_thread_cache(NULL);
    em_host_memory_trim();
}

/* A block of at least `size` bytes, 64-byte aligned (from the caches when
 * they hold one); *cap gets its real size. */
static void *block_take(size_t size, size_t *cap) {
    if (fail_hook && fail_hook(size, fail_ctx)) return NULL;
    int c = size_class(size);
    if (c >= 0) {
        *cap = (size_t)256 << c;
        if (small_free[c]) {
            free_block *b = small_free[c];
            small_free[c] = b->next;
            small_count[c]--;
            return b;
        }
    } else {
        *cap = (size + 4095) & ~(size_t)4095;
        void *drop[LARGE_KEEP];
        int ndrop = 0;
        pthread_mutex_lock(&large_lock);
        for (int k = 0; k < LARGE_KEEP; k++)
            if (large[k].p && large[k].size == *cap) {
                void *p = large[k].p;
                large[k].p = NULL;
                large_bytes -= *cap;
                pthread_mutex_unlock(&large_lock);
                return p;
            }
        /* A new block: the cached ones beyond LARGE_KEEP_BYTES go first where
         * they and the blocks in use would pass the high-water mark. */
        size_t used = atomic_load(&host_in_use) + *cap, high = atomic_load(&host_high_water);
        size_t limit = high > used && high - used > LARGE_KEEP_BYTES ? high - used : LARGE_KEEP_BYTES;
        while (large_bytes > limit) {
            int biggest = 0;
            for (int k = 1; k < LARGE_KEEP; k++)
                if (large[k].p && (!large[biggest].p || large[k].size > large[biggest].size)) biggest = k;
            drop[ndrop++] = large[biggest].p;
            large_bytes -= large[biggest].size;
            large[biggest].p = NULL;
        }
        pthread_mutex_unlock(&large_lock);
        for (int k = 0; k < ndrop; k++) free(drop[k]);
    }
    void *p = NULL;
    if (!posix_memalign(&p, EM_ALIGN, *cap)) return p;
    /* short of memory: the cached blocks go back first */
    return large_cache_free() && !posix_memalign(&p, EM_ALIGN, *cap) ? p : NULL;
}

em_host_memory em_host_memory_stats(void) {
    return (em_host_memory){atomic_load(&host_in_use), atomic_load(&host_peak)};
}

void em_host_memory_reset_peak(void) { atomic_store(&host_peak, atomic_load(&host_in_use)); }

/* Blocks past the small classes are counted; the small ones (at most 8 KiB,
 * from per-thread caches) are not, which keeps process-wide atomics off the
 * path of every small op. */
#define COUNTED_BLOCK(cap) ((cap) > ((size_t)256 << (SMALL_CLASSES - 1)))

/* block_take, counted. */
static void *block_alloc(size_t size, size_t *cap) {
    void *p = block_take(size, cap);
    if (!p || !COUNTED_BLOCK(*cap)) return p;
    size_t now = atomic_fetch_add(&host_in_use, *cap) + *cap, peak = atomic_load(&host_peak);
    while (now > peak && !atomic_compare_exchange_weak(&host_peak, &peak, now)) {
    }
    size_t high = atomic_load(&host_high_water);
    while (now > high && !atomic_compare_exchange_weak(&host_high_water, &high, now)) {
    }
    return p;
}

/* Under AddressSanitizer blocks go straight back to malloc, so that a tensor
 * used after em_release is reported instead of reading a cached block. */
#if defined(__SANITIZE_ADDRESS__)
#define EM_NO_BLOCK_CACHE
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EM_NO_BLOCK_CACHE
#endif
#endif

/* Whether the machine has less than an eighth of its memory free. */
static bool memory_short(void) {
    struct sysinfo si;
    if (sysinfo(&si)) return true;
    return si.freeram + si.bufferram < si.totalram / 8;
}

/* The most the large cache may hold when a block of cap bytes is freed (and
 * no longer counted in use): LARGE_KEEP_BYTES, or up to the high-water mark;
 * a single block larger than a quarter of LARGE_KEEP_BYTES is kept only
 * within the high-water mark. */
static size_t large_budget(size_t cap) {
    size_t used = atomic_load(&host_in_use), high = atomic_load(&host_high_water);
    size_t room = high > used ? high - used : 0;
    size_t base = cap <= LARGE_KEEP_BYTES / 4 ? LARGE_KEEP_BYTES : 0;
    return room <= base || memory_short() ? base : room;
}

static void block_free(void *p, size_t cap) {
    if (COUNTED_BLOCK(cap)) atomic_fetch_sub(&host_in_use, cap);
#ifdef EM_NO_BLOCK_CACHE
    (void)cap;
    free(p);
    return;
#endif
    int c = size_class(cap);
    size_t budget;
    if (c >= 0 && (size_t)256 << c == cap) {
        if (small_count[c] < SMALL_KEEP) {
            pthread_once(&cache_key_once, make_cache_key);
            pthread_setspecific(cache_key, (void *)1); /* so thread exit frees the lists */
            free_block *b = p;
            b->next = small_free[c];
            small_free[c] = b;
            small_count[c]++;
            return;
        }
    } else if (cap <= (budget = large_budget(cap))) {
        /* Room is made by dropping the largest cached blocks: the sizes a
         * loop uses now come back; a huge block from earlier may not. */
        void *drop[LARGE_KEEP];
        int ndrop = 0, slot = -1;
        pthread_mutex_lock(&large_lock);
        for (;;) {
            int biggest = -1;
            slot = -1;
            for (int k = 0; k < LARGE_KEEP; k++) {
                if (!large[k].p) slot = slot < 0 ? k : slot;
                else if (biggest < 0 || large[k].size > large[biggest].size) biggest = k;
            }
            if (slot >= 0 && large_bytes + cap <= budget) break;
            drop[ndrop++] = large[biggest].p;
            large_bytes -= large[biggest].size;
            large[biggest].p = NULL;
        }
        large[slot].p = p;
        large[slot].size = cap;
        large_bytes += cap;
        pthread_mutex_unlock(&large_lock);
        for (int k = 0; k < ndrop; k++) free(drop[k]);
        return;
    }
    free(p);
}

void *em__scratch(size_t bytes) {
    size_t cap;
    /* The block's size rides in front of it, where em__scratch_free finds it. */
    char *p = block_alloc(bytes + EM_ALIGN, &cap);
    if (!p) return NULL;
    *(size_t *)p = cap;
    return p + EM_ALIGN;
}

void em__scratch_free(void *p) {
    if (!p) return;
    char *block = (char *)p - EM_ALIGN;
    block_free(block, *(size_t *)block);
}

/* A zeroed header at the start of a block of HEADER_SIZE + data_bytes. */
static em_tensor *new_header(size_t data_bytes, const char *what) {
    size_t cap;
    em_tensor *t = block_alloc(HEADER_SIZE + data_bytes, &cap);
    if (!t) {
        em__error("out of memory: allocating %s (%zu bytes)", what, HEADER_SIZE + data_bytes);
        return NULL;
    }
    memset(t, 0, sizeof *t);
    t->block = cap;
    atomic_init(&t->refs, 1);
    atomic_fetch_add(&live_tensors, 1);
    return t;
}

/* A tensor of dtype and shape: with room for its data after the header, or
 * (with_data false) a header alone. */
static em_tensor *new_tensor(em_dtype dtype, int ndim, const int64_t *shape, bool with_data) {
    int64_t numel;
    if (check_shape("tensor", dtype, ndim, shape, &numel)) return NULL;
    size_t bytes = with_data ? (size_t)numel * dtypes[dtype].size : 0;
    em_tensor *t = new_header(bytes, with_data ? "a tensor" : "a tensor header");
    if (!t) return NULL;
    t->dtype = (uint8_t)dtype;
    t->ndim = (uint8_t)ndim;
    t->numel = numel;
    t->device = (uint8_t)(em__scoped_device > 0 && !em__is_gpu(em__scoped_device) ? em__scoped_device : 0);
    memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
    em__contiguous_strides(ndim, shape, t->strides);
    if (with_data) t->data = (char *)t + HEADER_SIZE;
    return t;
}

em_tensor *em__alloc(em_dtype dtype, int ndim, const int64_t *shape) { return new_tensor(dtype, ndim, shape, true); }

em_tensor *em__alloc_on(int dev, em_dtype dtype, int ndim, const int64_t *shape) {
    em_tensor *t = new_tensor(dtype, ndim, shape, !em__is_gpu(dev));
    if (!t) return NULL;
    t->device = (uint8_t)dev;
    if (em__is_gpu(dev) && t->numel && !(t->data = em__gpu->alloc(dev - EM_GPU_BASE, (size_t)t->numel * dtypes[dtype].size))) {
        em__unref(t);
        return NULL;
    }
    return t;
}

em_tensor *em__to_host(em_tensor *t) {
    if (!em__is_gpu(t->device) && em__is_contiguous(t)) {
        em__retain(t);
        return t;
    }
    em_tensor *h = em__alloc((em_dtype)t->dtype, t->ndim, t->shape);
    if (h && em__copy_strided(h, t)) {
        em__unref(h);
        h = NULL;
    }
    return h;
}

em_tensor *em__own_placed(em_tensor *t) {
    if (t && em__is_gpu(em__scoped_device)) {
        em_tensor *g = em__alloc_on(em__scoped_device, (em_dtype)t->dtype, t->ndim, t->shape);
        if (g && em__copy_strided(g, t)) {
            em__unref(g);
            g = NULL;
        }
        em__unref(t);
        t = g;
    }
    return em__own(t);
}

em_tensor *em__alloc_meta(em_dtype dtype, int ndim, const int64_t *shape) {
    return new_tensor(dtype, ndim, shape, false);
}

em_tensor *em__header(em_tensor *owner, em_dtype dtype, int ndim, const int64_t *shape, void *data) {
    em_tensor *t = em__alloc_meta(dtype, ndim, shape);
    if (!t) return NULL;
    t->data = data;
    t->device = owner->device;
    em__retain(owner);
    t->base = owner;
    return t;
}

em_tensor *em__view(em_tensor *x, int ndim, const int64_t *shape, const int64_t *strides, int64_t offset) {
    int64_t numel; /* a view's shape (e.g. broadcast_to's target) is checked like any tensor's */
    if (check_shape("view", (em_dtype)x->dtype, ndim, shape, &numel)) return NULL;
    em_tensor *t = new_header(0, "a view");
    if (!t) return NULL;
    t->dtype = x->dtype;
    t->device = x->device;
    t->ndim = (uint8_t)ndim;
    t->numel = numel;
    memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
    memcpy(t->strides, strides, sizeof(int64_t) * (size_t)ndim);
    t->data = x->data ? (char *)x->data + offset * (int64_t)dtypes[x->dtype].size : NULL;
    /* Views of views point at the owner, so chains stay one link long. A
     * variable is its own owner: views of it see its in-place updates. */
    em_tensor *owner = x->base && !(x->flags & EM_T_VARIABLE) ? x->base : x;
    em__retain(owner);
    t->base = owner;
    return t;
}

/* ---- debug mode ----
 * A freed tensor's block is kept whole, its header readable and its data
 * poisoned (all bits set: NaN, or -1), in a process-wide quarantine of the
 * last QUARANTINE_BYTES freed, so that a tensor used after its scope ended
 * is still recognised (em__released) instead of read. Off, nothing of this
 * runs but one relaxed load per op. */

#define QUARANTINE_BYTES ((size_t)64 << 20)

atomic_bool em__debug;
_Thread_local uint8_t em__release_cause;

static pthread_mutex_t quarantine_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    em_tensor **ring; /* oldest at head */
    size_t head, n, cap, bytes;
} quarantine;

/* Frees the oldest quarantined blocks until `keep` bytes are left. */
static void quarantine_trim(size_t keep) {
    pthread_mutex_lock(&quarantine_lock);
    while (quarantine.n && quarantine.bytes > keep) {
        em_tensor *t = quarantine.ring[quarantine.head];
        quarantine.head = (quarantine.head + 1) % quarantine.cap;
        quarantine.n--;
        quarantine.bytes -= t->block;
        block_free(t, t->block);
    }
    if (!quarantine.n) {
        free(quarantine.ring);
        quarantine.ring = NULL;
        quarantine.head = quarantine.cap = 0;
    }
    pthread_mutex_unlock(&quarantine_lock);
}

static bool quarantine_grow(void) {
    size_t cap = quarantine.cap ? quarantine.cap * 2 : 1024;
    em_tensor **ring = malloc(cap * sizeof *ring);
    if (!ring) return false;
    for (size_t k = 0; k < quarantine.n; k++) ring[k] = quarantine.ring[(quarantine.head + k) % quarantine.cap];
    free(quarantine.ring);
    quarantine.ring = ring;
    quarantine.head = 0;
    quarantine.cap = cap;
    return true;
}

/* Keeps freed t's block, poisoned, for em__released; a block larger than
 * the whole quarantine (or one that finds no room) is freed at once. */
static __attribute__((noinline, cold)) void quarantine_put(em_tensor *t) {
    t->released = em__release_cause ? em__release_cause : EM_FREED_OTHER;
    t->ph = NULL;
    if (em__is_gpu(t->device)) t->data = NULL; /* its GPU memory went back */
    memset((char *)t + HEADER_SIZE, 0xff, t->block - HEADER_SIZE);
    pthread_mutex_lock(&quarantine_lock);
    bool kept = t->block <= QUARANTINE_BYTES && (quarantine.n < quarantine.cap || quarantine_grow());
    if (kept) {
        quarantine.ring[(quarantine.head + quarantine.n++) % quarantine.cap] = t;
        quarantine.bytes += t->block;
    }
    bool full = quarantine.bytes > QUARANTINE_BYTES;
    pthread_mutex_unlock(&quarantine_lock);
    if (!kept) block_free(t, t->block);
    else if (full) quarantine_trim(QUARANTINE_BYTES);
}

void em_set_debug(bool on) {
    atomic_store(&em__debug, on);
    if (!on) quarantine_trim(0);
}

__attribute__((constructor)) static void debug_from_environment(void) {
    const char *env = getenv("EMBER_DEBUG");
    if (env && strcmp(env, "1") == 0) atomic_store(&em__debug, true);
}

bool em__released_report(const em_tensor *t, const char *op, int input) {
    static const char *const how[] = {
        [EM_FREED_OTHER] = "when its last reference was dropped", [EM_FREED_SCOPE] = "when its scope ended",
        [EM_FREED_RELEASE] = "by em_release",                      [EM_FREED_SHUTDOWN] = "by em_shutdown",
        [EM_FREED_VARIABLES] = "by em_variables_release (it was a variable)",
    };
    if (!t->released) return false;
    char who[32] = "the tensor", by[80] = "";
    if (input >= 0) snprintf(who, sizeof who, "input %d", input);
    if (t->made_by && em__hooks.op_name) snprintf(by, sizeof by, " (made by %s)", em__hooks.op_name(t->made_by - 1));
    em__error("%s: %s was released %s%s", op, who, how[t->released], by);
    return true;
}

void em__retain(em_tensor *t) { atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed); }

void em__unref(em_tensor *t) {
    if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1) return;
    atomic_fetch_sub(&live_tensors, 1);
    if (t->base) em__unref(t->base);
    else if (em__is_gpu(t->device) && t->data) em__gpu->free(t->device - EM_GPU_BASE, t->data);
    free(t->ph);
    if (atomic_load_explicit(&em__debug, memory_order_relaxed)) quarantine_put(t);
    else block_free(t, t->block);
}

bool em__is_contiguous(const em_tensor *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->strides[i] != s) return false;
        s *= t->shape[i];
    }
    return true;
}

/* A copy that involves a GPU: gathered on the source's device when strided,
 * then one contiguous transfer. */
static int gpu_copy(em_tensor *dst, const em_tensor *src) {
    size_t bytes = (size_t)src->numel * dtypes[src->dtype].size;
    if (em__is_gpu(src->device) && src->device == dst->device) {
        em_gpu_tensor d = em__gpu_tensor(dst), s = em__gpu_tensor(src);
        return em__gpu->copy_strided(&d, &s, src->device - EM_GPU_BASE);
    }
    if (!em__is_contiguous(src)) {
        em_tensor *dense = em__alloc_on(src->device, (em_dtype)src->dtype, src->ndim, src->shape);
        int rc = !dense || em__copy_strided(dense, src) || em__copy_strided(dst, dense) ? -1 : 0;
        if (dense) em__unref(dense);
        return rc;
    }
    int to = em__is_gpu(dst->device) ? dst->device - EM_GPU_BASE : -1;
    int from = em__is_gpu(src->device) ? src->device - EM_GPU_BASE : -1;
    return em__gpu->copy(dst->data, to, src->data, from, bytes);
}

int em__copy_strided(em_tensor *dst, const em_tensor *src) {
    size_t es = dtypes[src->dtype].size;
    if (src->numel == 0) return 0;
    if (em__is_gpu(dst->device) || em__is_gpu(src->device)) return gpu_copy(dst, src);
    if (em__is_contiguous(src)) {
        memcpy(dst->data, src->data, (size_t)src->numel * es);
        return 0;
    }
    int nd = src->ndim;
    int64_t idx[EM_MAX_DIMS] = {0};
    int64_t inner = src->shape[nd - 1], istride = src->strides[nd - 1];
    char *out = dst->data;
    for (int64_t done = 0; done < src->numel; done += inner) {
        int64_t off = 0;
        for (int d = 0; d < nd - 1; d++) off += idx[d] * src->strides[d];
        const char *in = (const char *)src->data + off * (int64_t)es;
        switch (es) {
        case 8:
            for (int64_t k = 0; k < inner; k++) ((uint64_t *)out)[k] = ((const uint64_t *)in)[k * istride];
            break;
        case 4:
            for (int64_t k = 0; k < inner; k++) ((uint32_t *)out)[k] = ((const uint32_t *)in)[k * istride];
            break;
        case 2:
            for (int64_t k = 0; k < inner; k++) ((uint16_t *)out)[k] = ((const uint16_t *)in)[k * istride];
            break;
        default:
            for (int64_t k = 0; k < inner; k++) out[k] = in[k * istride];
        }
        out += inner * (int64_t)es;
        for (int d = nd - 2; d >= 0; d--) {
            if (++idx[d] < src->shape[d]) break;
            idx[d] = 0;
        }
    }
    return 0;
}

double em__read(const void *p, em_dtype d) {
    switch (d) {
    case EM_F32: return *(const float *)p;
    case EM_F64: return *(const double *)p;
    case EM_I32: return *(const int32_t *)p;
    case EM_I64: return (double)*(const int64_t *)p;
    case EM_U8: return *(const uint8_t *)p;
    case EM_BOOL: return *(const uint8_t *)p ? 1.0 : 0.0;
    case EM_BF16: return em_bf16_to_f32(*(const uint16_t *)p);
    case EM_F16: return em_f16_to_f32(*(const uint16_t *)p);
    case EM_I8: return *(const int8_t *)p;
    case EM_I16: return *(const int16_t *)p;
    case EM_U16: return *(const uint16_t *)p;
    default: return NAN;
    }
}

void em__write(void *p, em_dtype d, double v) {
    switch (d) {
    case EM_F32: *(float *)p = em_convert_f32(v); break;
    case EM_F64: *(double *)p = em_convert_f64(v); break;
    case EM_I32: *(int32_t *)p = em_convert_i32(v); break;
    case EM_I64: *(int64_t *)p = em_convert_i64(v); break;
    case EM_U8: *(uint8_t *)p = em_convert_u8(v); break;
    case EM_BOOL: *(uint8_t *)p = em_convert_b8(v); break;
    case EM_BF16: *(uint16_t *)p = em_convert_bf16(v); break;
    case EM_F16: *(uint16_t *)p = em_convert_f16(v); break;
    case EM_I8: *(int8_t *)p = em_convert_i8(v); break;
    case EM_I16: *(int16_t *)p = em_convert_i16(v); break;
    case EM_U16: *(uint16_t *)p = em_convert_u16(v); break;
    default: break;
    }
}

/* ---- creation ---- */

em_tensor *em_tensor_from(em_dtype dtype, em_shape shape, const void *data) {
    em_tensor *t = em__alloc(dtype, shape.ndim, shape.dims);
    if (!t) return NULL;
    if (!data && t->numel) {
        em__unref(t);
        em__error("tensor_from: data is NULL for shape with %" PRId64 " elements", em_shape_numel(shape));
        return NULL;
    }
    if (t->numel) memcpy(t->data, data, (size_t)t->numel * dtypes[dtype].size);
    return em__own_placed(t);
}

/* A fill's range of elements: zeros by memset, other values one typed store
 * per element in a loop `omp simd` vectorizes (at -O2, GCC's cost model left
 * it scalar: 4M float32 ones took 1.0 ms, 5x PyTorch's ones_like). */
typedef struct fill_job {
    void *data;
    size_t size;
    uint64_t bits; /* the value's bytes, in the low `size` */
} fill_job;

#define FILL_STORES(U)                                                                                  \
    do {                                                                                                \
        U *restrict d = j->data;                                                                        \
        const U w = (U)j->bits;                                                                         \
        _Pragma("omp simd") for (int64_t i = begin; i < end; i++) d[i] = w;                             \
    } while (0)
EM_HOT static void fill_range(void *ctx, int64_t begin, int64_t end) {
    const fill_job *j = ctx;
    if (!j->bits) {
        memset((char *)j->data + (size_t)begin * j->size, 0, (size_t)(end - begin) * j->size);
        return;
    }
    switch (j->size) {
    case 8: FILL_STORES(uint64_t); break;
    case 4: FILL_STORES(uint32_t); break;
    case 2: FILL_STORES(uint16_t); break;
    default: memset((char *)j->data + begin, (int)j->bits, (size_t)(end - begin));
    }
}
#undef FILL_STORES

void em__fill_raw(em_tensor *t, double v) {
    size_t es = dtypes[t->dtype].size;
    if (em__is_gpu(t->device)) {
        em_gpu_tensor g = em__gpu_tensor(t);
        em__gpu->fill(&g, v, t->device - EM_GPU_BASE);
        return;
    }
    union {
        uint8_t b;
        uint16_t h;
        uint32_t w;
        uint64_t d;
    } one = {.d = 0};
    em__write(&one, (em_dtype)t->dtype, v);
    fill_job j = {.data = t->data, .size = es,
                  .bits = es == 8 ? one.d : es == 4 ? one.w : es == 2 ? one.h : one.b};
    em__parallel_for(t->numel, (int64_t)((size_t)1 << 17) / (int64_t)es, fill_range, &j); /* 128 KiB chunks */
}

em_tensor *em_fill(em_dtype dtype, em_shape shape, double value) {
    em_tensor *t = em__alloc_on(em__scoped_device > 0 ? em__scoped_device : 0, dtype, shape.ndim, shape.dims);
    if (!t) return NULL;
    em__fill_raw(t, value);
    return em__own(t);
}

em_tensor *em_zeros(em_dtype dtype, em_shape shape) { return em_fill(dtype, shape, 0); }
em_tensor *em_ones(em_dtype dtype, em_shape shape) { return em_fill(dtype, shape, 1); }
em_tensor *em_scalar(em_dtype dtype, double value) { return em_fill(dtype, EM_SHAPE0, value); }

em_tensor *em_arange(em_dtype dtype, double start, double stop, double step) {
    if (step == 0 || !isfinite(start) || !isfinite(stop) || !isfinite(step)) {
        em__error("arange: step must be non-zero and bounds finite (start %g, stop %g, step %g)", start, stop, step);
        return NULL;
    }
    double count = ceil((stop - start) / step);
    if (count > (double)(INT64_MAX / 64)) { /* converting it would be undefined */
        em__error("arange: %g elements from %g to %g by %g are too many", count, start, stop, step);
        return NULL;
    }
    int64_t n = count > 0 ? (int64_t)count : 0;
    em_tensor *t = em__alloc(dtype, 1, &n);
    if (!t) return NULL;
    size_t es = dtypes[dtype].size;
    for (int64_t i = 0; i < n; i++) em__write((char *)t->data + i * (int64_t)es, dtype, start + (double)i * step);
    return em__own_placed(t);
}

em_tensor *em_copy(em_tensor *x) {
    if (!x) return em__null_input("copy");
    if (em__released(x, "copy", -1)) return NULL;
    if (!x->data) {
        em__error("copy: tensor has no data (a placeholder must be fed)");
        return NULL;
    }
    em_tensor *t = em__alloc_on(x->device, (em_dtype)x->dtype, x->ndim, x->shape);
    if (t && em__copy_strided(t, x)) {
        em__unref(t);
        t = NULL;
    }
    return em__own(t);
}

/* ---- access ---- */

em_dtype em_tensor_dtype(const em_tensor *t) { return t ? (em_dtype)t->dtype : EM_DTYPE_COUNT; }
em_shape em_tensor_shape(const em_tensor *t) {
    if (!t) return (em_shape){.ndim = -1};
    em_shape s = em__shape_of(t);
    for (int i = 0; i < s.ndim; i++)
        if (em__symbolic_in(t, s.dims[i])) s.dims[i] = -1;
    return s;
}
int em_ndim(const em_tensor *t) { return t ? t->ndim : -1; }
bool em__numel_symbolic(const em_tensor *t) {
    for (int d = 0; d < t->ndim; d++)
        if (em__symbolic_in(t, t->shape[d])) return true;
    return false;
}

int64_t em_numel(const em_tensor *t) { return !t || em__numel_symbolic(t) ? -1 : t->numel; }

int64_t em_dim(const em_tensor *t, int axis) {
    if (!t) return -1;
    int a = axis < 0 ? axis + t->ndim : axis;
    if (a < 0 || a >= t->ndim) {
        em__error("dim: axis %d is out of range for a tensor of rank %d", axis, t->ndim);
        return -1;
    }
    return em__symbolic_in(t, t->shape[a]) ? -1 : t->shape[a];
}

static int check_data(em_tensor *t, const char *what) {
    if (!t) {
        em__null_input(what);
        return -1;
    }
    if (em__released(t, what, -1)) return -1;
    if (em__hooks.host_read) em__hooks.host_read(t);
    if (!t->data && t->numel) {
        em__error("%s: tensor has no value: it is a placeholder that must be fed (em_graph_run feeds)", what);
        return -1;
    }
    return 0;
}

/* t, or for a GPU tensor a host copy in the current scope. NULL with an error. */
static em_tensor *readable(em_tensor *t) {
    if (!em__is_gpu(t->device)) return t;
    return em__own(em__to_host(t));
}

const void *em_data(em_tensor *t) {
    if (check_data(t, "data") || !(t = readable(t))) return NULL;
    if (!em__is_contiguous(t)) {
        /* Materialise the view; it now owns a private contiguous copy. */
        em_tensor *c = em__alloc((em_dtype)t->dtype, t->ndim, t->shape);
        if (!c) return NULL;
        em__copy_strided(c, t);
        if (t->base) em__unref(t->base);
        t->base = c;
        t->data = c->data;
        em__contiguous_strides(t->ndim, t->shape, t->strides);
    }
    return t->data;
}

int em_copy_out(em_tensor *t, void *dst, size_t bytes) {
    if (check_data(t, "copy_out")) return -1;
    size_t need = (size_t)t->numel * dtypes[t->dtype].size;
    if (bytes < need) {
        char b[160];
        em__error("copy_out: destination holds %zu bytes but the %s tensor %s needs %zu", bytes,
                  dtypes[t->dtype].name, em__tshape(t, b, sizeof b), need);
        return -1;
    }
    em_tensor view = *t; /* copy the header: writing into dst as if contiguous */
    view.data = dst;
    view.device = 0;
    em__contiguous_strides(t->ndim, t->shape, view.strides);
    return em__copy_strided(&view, t);
}

static int64_t offset_of(const em_tensor *t, const int64_t *index) {
    int64_t off = 0;
    for (int i = 0; i < t->ndim; i++) off += index[i] * t->strides[i];
    return off;
}

double em_get(em_tensor *t, const int64_t *index) {
    if (check_data(t, "get")) return NAN;
    for (int i = 0; i < t->ndim; i++)
        if (!index || index[i] < 0 || index[i] >= t->shape[i]) {
            char b[160];
            em__error("get: index out of range for shape %s (axis %d)", em__tshape(t, b, sizeof b), i);
            return NAN;
        }
    if (!(t = readable(t))) return NAN;
    return em__read((char *)t->data + offset_of(t, index) * (int64_t)dtypes[t->dtype].size, (em_dtype)t->dtype);
}

double em_item(em_tensor *t) {
    if (check_data(t, "item")) return NAN;
    if (t->numel != 1) {
        char b[160];
        em__error("item: tensor of shape %s has %" PRId64 " elements, not 1", em__tshape(t, b, sizeof b), t->numel);
        return NAN;
    }
    if (!(t = readable(t))) return NAN;
    return em__read(t->data, (em_dtype)t->dtype);
}

/* ---- printing ---- */

typedef struct {
    char *buf;
    size_t size, len;
} sbuf;

static void put(sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t room = s->len < s->size ? s->size - s->len : 0;
    int n = vsnprintf(room ? s->buf + s->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0) s->len += (size_t)n;
}

static void put_value(sbuf *s, em_tensor *t, const int64_t *index) {
    double v = em__read((char *)t->data + offset_of(t, index) * (int64_t)dtypes[t->dtype].size, (em_dtype)t->dtype);
    switch (t->dtype) {
    case EM_BOOL: put(s, "%s", v != 0 ? " True" : "False"); break;
    case EM_F32:
    case EM_F64:
    case EM_BF16:
    case EM_F16:
        if (v == floor(v) && fabs(v) < 1e16) put(s, "%.0f.", v);
        else put(s, "%.4g", v);
        break;
    default: put(s, "%.0f", v);
    }
}

#define EDGE 3 /* elements shown at each end of an elided axis */

static void put_axis(sbuf *s, em_tensor *t, int64_t *index, int axis, int indent, bool elide) {
    if (t->ndim == 0) {
        put_value(s, t, index);
        return;
    }
    put(s, "[");
    int64_t n = t->shape[axis];
    for (int64_t i = 0; i < n; i++) {
        if (elide && n > 2 * EDGE && i == EDGE) {
            put(s, axis == t->ndim - 1 ? "..., " : "...,\n%*s", axis == t->ndim - 1 ? 0 : indent + 1, "");
            i = n - EDGE - 1;
            continue;
        }
        index[axis] = i;
        if (axis == t->ndim - 1) put_value(s, t, index);
        else put_axis(s, t, index, axis + 1, indent + 1, elide);
        if (i < n - 1) {
            if (axis == t->ndim - 1) put(s, ", ");
            else put(s, ",%s%*s", t->ndim - axis > 2 ? "\n\n" : "\n", indent + 1, "");
        }
    }
    put(s, "]");
}

int em_format(em_tensor *t, char *buf, size_t size) {
    sbuf s = {buf, size, 0};
    if (size) buf[0] = '\0';
    if (!t) {
        put(&s, "NULL");
    } else if (!t->data && t->numel) {
        char b[160];
        put(&s, "placeholder(shape=%s, dtype=%s)", em__tshape(t, b, sizeof b), dtypes[t->dtype].name);
    } else if (em__is_gpu(t->device)) { /* the values, from a host copy */
        em_tensor *h = em__to_host(t);
        if (!h) return -1;
        int n = em_format(h, buf, size);
        em__unref(h);
        if (n < 0 || (size_t)n < 2) return n;
        /* "..., dtype=float32)" -> "..., dtype=float32, device='/gpu:0')" as PyTorch prints it */
        s.len = (size_t)n - 1;
        put(&s, ", device='/gpu:%d')", t->device - EM_GPU_BASE); /* em_tensor_device's name (device.c) */
    } else {
        int64_t index[EM_MAX_DIMS] = {0};
        put(&s, "tensor(");
        if (t->numel == 0) {
            char b[160];
            put(&s, "[], shape=%s", em__tshape(t, b, sizeof b));
        } else {
            put_axis(&s, t, index, 0, 7, t->numel > 1000);
        }
        put(&s, ", dtype=%s)", dtypes[t->dtype].name);
    }
    return (int)s.len;
}

int em_print(em_tensor *t, FILE *out) {
    int n = em_format(t, NULL, 0);
    char *buf = malloc((size_t)n + 1);
    if (!buf) {
        em__error("print: out of memory");
        return -1;
    }
    em_format(t, buf, (size_t)n + 1);
    int rc = fprintf(out ? out : stdout, "%s\n", buf) < 0 ? -1 : 0;
    free(buf);
    return rc;
}

/* ---- threads and BLIS ---- */

/* Debian's BLIS picks its kernels from the CPU model and misses AVX-512 on
 * some (virtual) CPUs, falling back to AVX2 kernels 1.3-1.7x slower. It reads
 * BLIS_ARCH_TYPE once, at its first call, so Ember names the AVX-512 (skx)
 * kernels before that call when the CPU has them, unless the user chose. */
static void select_blis_arch(void) {
    if (getenv("BLIS_ARCH_TYPE")) return;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")) {
        char id[16];
        snprintf(id, sizeof id, "%d", (int)BLIS_ARCH_SKX);
        setenv("BLIS_ARCH_TYPE", id, 0);
    }
}

/* Ember checks shapes and strides before it calls BLIS; BLIS's own checks
 * would only repeat them, at a cost per call that small products feel. */
static void init_blis(void) {
    select_blis_arch();
    bli_error_checking_level_set(BLIS_NO_ERROR_CHECKING);
}

void em__blis_ready(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, init_blis);
}

static atomic_int num_threads;

static int default_threads(void) {
    const char *env = getenv("EM_NUM_THREADS");
    if (env && atoi(env) > 0) return atoi(env);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

void em_set_num_threads(int n) {
    em__blis_ready();
    if (n < 1) n = default_threads();
    atomic_store(&num_threads, n);
    bli_thread_set_num_threads(n);
}

int em_num_threads(void) {
    int n = atomic_load(&num_threads);
    if (n == 0) {
        em_set_num_threads(0);
        n = atomic_load(&num_threads);
    }
    return n;
}

void em__parallel_for(int64_t n, int64_t grain, em_range_fn fn, void *ctx) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int64_t chunks = (n + grain - 1) / grain;
    int threads = em__threads();
    if (chunks == 1 || threads == 1) {
        for (int64_t c = 0; c < chunks; c++) fn(ctx, c * grain, c + 1 == chunks ? n : (c + 1) * grain);
        return;
    }
    if (threads > chunks) threads = (int)chunks;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t c = 0; c < chunks; c++) fn(ctx, c * grain, c + 1 == chunks ? n : (c + 1) * grain);
}

const char *em__tshape(const em_tensor *t, char *buf, size_t size) {
    if (size == 0) return buf;
    size_t at = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < t->ndim && at < size; i++) {
        char dim[24];
        em__size_str(t, t->shape[i], dim, sizeof dim);
        at += (size_t)snprintf(buf + at, size - at, "%s%s", i ? "," : "", dim);
    }
    if (at < size) snprintf(buf + at, size - at, "]");
    return buf;
}

const char *em__size_str(const em_tensor *t, int64_t size, char *buf, size_t bufsize) {
    if (em__symbolic_in(t, size)) snprintf(buf, bufsize, "?");
    else snprintf(buf, bufsize, "%" PRId64, size);
    return buf;
}

bool em_is_variable(const em_tensor *t) { return t && (t->flags & EM_T_VARIABLE); }

const char *em_variable_name(const em_tensor *t) { return em_is_variable(t) ? t->var->name : NULL; }
