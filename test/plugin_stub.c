/* A stub of the CUDA plug-in, in plain C and built without nvcc, so that the
 * plug-in's loading, tables, dispatch and shutdown are tested on every
 * machine (test/test_plugin.c). Its "GPUs" are host memory: EMBER_STUB_GPUS
 * of them (default 1; 0: it reports no device). It has kernels for add and
 * fill_like only (every other op is absent from its table, as an op would be
 * from a partial plug-in), no CUDA graphs, and an allocator that caches
 * freed blocks until its shutdown, which frees them. With EMBER_STUB_LOG set
 * it appends what happened to that file ("load", "shutdown ...").
 *
 * Built four ways (Makefile): the working stub, and three a library must
 * refuse: STUB_ABI_VERSION=0 (an old table layout), STUB_OP_COUNT_DELTA=1
 * (another op count) and STUB_WRONG_NAME (another op list). Those three do
 * not check the library themselves, as a plug-in from another tree might
 * not: the library's checks must catch them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broadcast.h"
#include "gpu.h"

#ifndef STUB_ABI_VERSION
#define STUB_ABI_VERSION EM_GPU_ABI_VERSION
#endif
#ifndef STUB_OP_COUNT_DELTA
#define STUB_OP_COUNT_DELTA 0
#endif
#define STUB_MAX 4
#define EXPORT __attribute__((visibility("default")))

static const em_gpu_host *host;

static void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void report(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    host->vreport(fmt, ap);
    va_end(ap);
}

static void log_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void log_line(const char *fmt, ...) {
    const char *path = getenv("EMBER_STUB_LOG");
    FILE *f = path && *path ? fopen(path, "a") : NULL;
    if (!f) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
    fclose(f);
}

/* ---- the allocator: a header before each block; freed blocks are cached ---- */

typedef struct block {
    struct block *next; /* in the cache */
    size_t bytes;
    int device;
    int live;
    _Alignas(16) char data[];
} block;

static struct {
    size_t in_use, peak, cached;
    int64_t mallocs;
    block *cache;
} devs[STUB_MAX];
static int ndevs;
static bool growth = true;
static double fraction = 1;

static block *block_of(void *p) { return (block *)((char *)p - offsetof(block, data)); }

static void *stub_alloc(int d, size_t bytes) {
    if (d < 0 || d >= ndevs) {
        report("stub: /gpu:%d does not exist", d);
        return NULL;
    }
    block **at = &devs[d].cache, *b = NULL;
    for (; *at; at = &(*at)->next)
        if ((*at)->bytes == bytes) {
            b = *at;
            *at = b->next;
            devs[d].cached -= bytes;
            break;
        }
    if (!b) {
        if (bytes > ((size_t)1 << 40) || !(b = malloc(sizeof *b + (bytes ? bytes : 1)))) {
            report("out of GPU memory on /gpu:%d: asked %zu bytes (stub)", d, bytes);
            return NULL;
        }
        b->bytes = bytes;
        b->device = d;
        devs[d].mallocs++;
    }
    b->live = 1;
    devs[d].in_use += bytes;
    if (devs[d].in_use > devs[d].peak) devs[d].peak = devs[d].in_use;
    return b->data;
}

static void stub_free(int d, void *p) {
    if (!p) return;
    block *b = block_of(p);
    if (!b->live || b->device != d) abort(); /* the library freed something twice, or on the wrong device */
    b->live = 0;
    devs[d].in_use -= b->bytes;
    devs[d].cached += b->bytes;
    b->next = devs[d].cache;
    devs[d].cache = b;
}

static int stub_memory(int d, em_gpu_memory_stats *out) {
    const size_t total = (size_t)1 << 30;
    out->in_use = devs[d].in_use;
    out->peak = devs[d].peak;
    /* Without growth: the fraction em_set_gpu_memory asked for, reserved. */
    out->reserved = growth ? devs[d].in_use + devs[d].cached : (size_t)(fraction * (double)total);
    out->device_total = total;
    out->device_free = total - out->reserved;
    out->cuda_mallocs = devs[d].mallocs;
    return 0;
}

static void stub_configure(bool allow_growth, double f) {
    growth = allow_growth;
    fraction = f;
}

/* ---- copies, fills ---- */

static int stub_copy(void *dst, int dd, const void *src, int sd, size_t bytes) {
    (void)dd;
    (void)sd;
    memcpy(dst, src, bytes);
    return 0;
}

static int stub_copy_strided(em_gpu_tensor *dst, const em_gpu_tensor *src, int d) {
    (void)d;
    size_t es = host->dtype_size((em_dtype)dst->dtype);
    em_bcast p;
    em_bcast_init(&p, dst->ndim, dst->shape, 1);
    em_bcast_input(&p, 0, src->ndim, src->shape, src->strides);
    for (int64_t i = 0; i < dst->numel; i++)
        memcpy((char *)dst->data + i * es, (const char *)src->data + em_bcast_offset(&p, 0, i) * (int64_t)es, es);
    return 0;
}

static int stub_fill(em_gpu_tensor *t, double v, int d) {
    (void)d;
    size_t es = host->dtype_size((em_dtype)t->dtype);
    for (int64_t i = 0; i < t->numel; i++) host->write((char *)t->data + i * es, (em_dtype)t->dtype, v);
    return 0;
}

static int stub_sync(int d) {
    (void)d;
    return 0;
}

static int stub_capture_begin(int d) {
    report("stub: /gpu:%d cannot capture CUDA graphs", d);
    return -1;
}
static em_gpu_graph *stub_capture_end(int d) {
    (void)d;
    return NULL;
}
static int stub_graph_launch(em_gpu_graph *g, int d) {
    (void)g;
    report("stub: /gpu:%d has no CUDA graphs", d);
    return -1;
}
static void stub_graph_free(em_gpu_graph *g) { (void)g; }

static int stub_update(const em_update_coeffs *u, em_gpu_tensor *var, const em_gpu_tensor *grad,
                       em_gpu_tensor *const *slots, int d) {
    (void)u, (void)var, (void)grad, (void)slots;
    report("apply_updates: the stub plug-in has no optimizer kernels (/gpu:%d)", d);
    return -1;
}

static int stub_all_reduce(int n, em_gpu_tensor *const *ts, const int *ordinals, double scale) {
    (void)n, (void)ts, (void)ordinals, (void)scale;
    report("all_reduce: the stub plug-in has no collectives");
    return -1;
}

static int stub_count(char *why, size_t size) {
    const char *env = getenv("EMBER_STUB_GPUS");
    ndevs = env && *env ? atoi(env) : 1;
    if (ndevs > STUB_MAX) ndevs = STUB_MAX;
    if (ndevs <= 0) {
        snprintf(why, size, "stub: EMBER_STUB_GPUS=%s", env);
        ndevs = 0;
    }
    return ndevs;
}

/* The stub's "GPU" memory is host memory and it has no streams: a token stands for one. */
static void *stub_stream(int d) {
    static int token[STUB_MAX];
    return &token[d];
}

static void stub_shutdown(void) {
    int freed = 0;
    size_t in_use = 0;
    for (int d = 0; d < STUB_MAX; d++) {
        in_use += devs[d].in_use;
        while (devs[d].cache) {
            block *b = devs[d].cache;
            devs[d].cache = b->next;
            free(b);
            freed++;
        }
        memset(&devs[d], 0, sizeof devs[d]);
    }
    log_line("shutdown in_use=%zu freed=%d", in_use, freed);
}

/* ---- kernels ---- */

/* add for float32 and float64, inputs of any strides and broadcasting. */
static int stub_add(const em_gpu_call *c, em_gpu_tensor *out) {
    em_bcast p;
    em_bcast_init(&p, out->ndim, out->shape, 2);
    for (int k = 0; k < 2; k++) em_bcast_input(&p, k, c->in[k].ndim, c->in[k].shape, c->in[k].strides);
    for (int64_t i = 0; i < out->numel; i++) {
        int64_t a = em_bcast_offset(&p, 0, i), b = em_bcast_offset(&p, 1, i);
        if (out->dtype == EM_F32)
            ((float *)out->data)[i] = ((const float *)c->in[0].data)[a] + ((const float *)c->in[1].data)[b];
        else if (out->dtype == EM_F64)
            ((double *)out->data)[i] = ((const double *)c->in[0].data)[a] + ((const double *)c->in[1].data)[b];
        else {
            report("%s: the stub plug-in has no kernel for %s", c->name, host->dtype_name((em_dtype)out->dtype));
            return -1;
        }
    }
    return 0;
}

static int stub_fill_like(const em_gpu_call *c, em_gpu_tensor *out) { return stub_fill(out, c->a->f[0], c->device); }

/* The tables, from lib/ops/ops.def as the real plug-in's (gpu/plugin.cu). */
static const em_gpu_kernel_fn kernels[EM_OP_BUILTIN_COUNT + STUB_OP_COUNT_DELTA] = {
    [EM_OP_ADD] = stub_add,
    [EM_OP_FILL_LIKE] = stub_fill_like,
};
static const char *names[EM_OP_BUILTIN_COUNT + STUB_OP_COUNT_DELTA] = {
#define EM_FAMILY(family)
#define EM_OP(ID, name, ...) [EM_OP_##ID] = #name,
#include "ops/ops.def"
#undef EM_OP
#undef EM_FAMILY
};

static const em_gpu_backend backend = {
    .abi_version = STUB_ABI_VERSION,
    .op_count = EM_OP_BUILTIN_COUNT + STUB_OP_COUNT_DELTA,
    .op_names = names,
    .kernels = kernels,
    .description = "stub plug-in",
    .count = stub_count,
    .configure = stub_configure,
    .alloc = stub_alloc,
    .free = stub_free,
    .memory = stub_memory,
    .copy = stub_copy,
    .copy_strided = stub_copy_strided,
    .fill = stub_fill,
    .sync = stub_sync,
    .capture_begin = stub_capture_begin,
    .capture_end = stub_capture_end,
    .graph_launch = stub_graph_launch,
    .graph_free = stub_graph_free,
    .update = stub_update,
    .all_reduce = stub_all_reduce,
    .shutdown = stub_shutdown,
    .stream = stub_stream,
};

EXPORT const em_gpu_backend *em_gpu_plugin(const em_gpu_host *h, char *why, size_t size) {
#if STUB_ABI_VERSION == EM_GPU_ABI_VERSION && STUB_OP_COUNT_DELTA == 0 && !defined(STUB_WRONG_NAME)
    if (h->abi_version != EM_GPU_ABI_VERSION || h->op_count != EM_OP_BUILTIN_COUNT) {
        snprintf(why, size, "the stub was built for ABI version %d and %d ops, the library has %d and %d",
                 EM_GPU_ABI_VERSION, EM_OP_BUILTIN_COUNT, h->abi_version, h->op_count);
        return NULL;
    }
#else
    (void)why, (void)size;
#endif
#ifdef STUB_WRONG_NAME
    names[EM_OP_ADD] = "plus";
#endif
    host = h;
    log_line("load");
    return &backend;
}
