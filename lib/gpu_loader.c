/* Loading the CUDA plug-in, libember_cuda.so (lib/gpu.h). Nothing here runs
 * until a GPU device is asked for or listed (device.c calls em__gpu_load):
 * a program that never does so maps no CUDA library and pays nothing.
 *
 * EMBER_CUDA_LIBRARY, when set, names the file (a path, or a bare name that
 * dlopen looks up), and it is loaded as it is. Otherwise libember_cuda.so is
 * looked for, in order:
 *   1. beside the code of this library: libember.so's directory, or the
 *      program's when it was linked with libember.a;
 *   2. EMBER_LIBDIR, where `make install` puts the libraries (PREFIX/lib at
 *      build time);
 *   3. where the dynamic loader would look for it (RTLD_DI_SERINFO):
 *      LD_LIBRARY_PATH, the RUNPATH of libember.so or of the program (the
 *      build tree's programs carry $ORIGIN/..), the system's directories;
 * and the first found is loaded only if the NVIDIA driver (libcuda.so.1) can
 * be: a machine without one has no GPU, and loading the plug-in's CUDA
 * runtime and cuBLAS there would cost about 200 MiB and 70 ms for nothing.
 * Then the entry function is looked up (the one dlsym), the two sides check
 * each other's ABI version, op count and op names, and the plug-in counts
 * the GPUs. Any failure unloads it, and what was looked for and where is kept
 * as the reason (em__gpu_unavailable) that asking for "/gpu:0" reports;
 * listing devices then shows the CPUs only, with no error. */
#include "internal.h"

#include <dlfcn.h>
#include <limits.h>
#include <link.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#ifndef EMBER_LIBDIR
#define EMBER_LIBDIR "/usr/local/lib"
#endif
/* The NVIDIA driver's library, which CUDA's runtime loads: without it there is no GPU. */
#define EM_GPU_DRIVER "libcuda.so.1"

const em_gpu_backend *em__gpu;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool tried;                 /* a load was attempted (reset by em__gpu_unload) */
static atomic_int ngpu;                   /* GPUs of the loaded plug-in */
static void *handle;                      /* the plug-in's dlopen handle */
static void *driver;                      /* the NVIDIA driver's, held while the plug-in is loaded */
static const em_gpu_kernel_fn *kernels;   /* the plug-in's kernels by op id */
static char why_not[2048];                /* why there is no GPU, once tried */
static bool cfg_growth = true;            /* em_set_gpu_memory's settings */
static double cfg_fraction = 1;

/* ---- what the plug-in may call ---- */

static void host_vreport(const char *fmt, va_list ap) {
    char msg[1000];
    vsnprintf(msg, sizeof msg, fmt, ap);
    em__error("%s", msg);
}

static const em_gpu_host host = {
    .abi_version = EM_GPU_ABI_VERSION,
    .op_count = EM_OP_BUILTIN_COUNT,
    .vreport = host_vreport,
    .write = em__write,
    .dtype_name = em_dtype_name,
    .dtype_size = em_dtype_size,
};

/* ---- finding the file ---- */

/* Appends to why_not. */
static void why(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void why(const char *fmt, ...) {
    size_t at = strlen(why_not);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why_not + at, sizeof why_not - at, fmt, ap);
    va_end(ap);
}

/* The object holding this code: libember.so, or the program linked with
 * libember.a (then *name is ""). */
static struct link_map *own_object(void) {
    Dl_info info;
    struct link_map *lm = NULL;
    return dladdr1((void *)(uintptr_t)&em__gpu_load, &info, (void **)&lm, RTLD_DL_LINKMAP) ? lm : NULL;
}

/* The directories to look in, in order, without repeats. */
typedef struct {
    char dir[24][PATH_MAX];
    const char *label[24]; /* why it is looked in, printed after it in the error */
    int n;
} search_list;

static void add_dir(search_list *l, const char *dir, size_t len, const char *label) {
    if (!len || l->n == 24 || len >= PATH_MAX) return;
    char d[PATH_MAX];
    memcpy(d, dir, len);
    d[len] = 0;
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->dir[i], d)) return;
    memcpy(l->dir[l->n], d, len + 1);
    l->label[l->n++] = label;
}

/* Beside libember.so (or the program), the install directory, then where
 * the dynamic loader would look for a dlopen from the same object
 * (LD_LIBRARY_PATH, its RUNPATH, the system's directories). */
static void search_dirs(search_list *l) {
    struct link_map *lm = own_object();
    char exe[PATH_MAX];
    const char *file = lm && lm->l_name[0] ? lm->l_name : NULL;
    ssize_t n;
    if (!file && (n = readlink("/proc/self/exe", exe, sizeof exe - 1)) > 0) {
        exe[n] = 0;
        file = exe;
    }
    const char *slash = file ? strrchr(file, '/') : NULL;
    if (slash)
        add_dir(l, file, slash == file ? 1 : (size_t)(slash - file),
                file == exe ? "beside the program, linked with libember.a" : "beside libember.so");
    add_dir(l, EMBER_LIBDIR, strlen(EMBER_LIBDIR), "the install directory");
    void *self = dlopen(lm && lm->l_name[0] ? lm->l_name : NULL, RTLD_LAZY | RTLD_NOLOAD);
    Dl_serinfo size;
    if (self && !dlinfo(self, RTLD_DI_SERINFOSIZE, &size)) {
        Dl_serinfo *si = malloc(size.dls_size);
        if (si && !dlinfo(self, RTLD_DI_SERINFOSIZE, si) && !dlinfo(self, RTLD_DI_SERINFO, si))
            for (unsigned i = 0; i < si->dls_cnt; i++) {
                const char *d = si->dls_serpath[i].dls_name;
                size_t len = strlen(d);
                while (len > 1 && d[len - 1] == '/') len--;
                add_dir(l, d, len, "the loader's search path");
            }
        free(si);
    }
    if (self) dlclose(self);
}

/* Sets path to the plug-in's file: EMBER_CUDA_LIBRARY's, or the first found
 * in search_dirs. False with why_not set when there is none. */
static bool find_plugin(char *path, size_t size, bool *named) {
    const char *env = getenv("EMBER_CUDA_LIBRARY");
    *named = env && *env;
    if (*named) return snprintf(path, size, "%s", env) < (int)size;
    search_list *l = calloc(1, sizeof *l);
    if (!l) {
        why("out of memory looking for the CUDA plug-in");
        return false;
    }
    search_dirs(l);
    bool found = false;
    for (int i = 0; i < l->n && !found; i++)
        found = snprintf(path, size, "%s/%s", l->dir[i], EM_GPU_PLUGIN_NAME) < (int)size && !access(path, F_OK);
    if (!found) {
        why("the CUDA plug-in %s was not found: looked in", EM_GPU_PLUGIN_NAME);
        for (int i = 0; i < l->n; i++) {
            why("%s %s", i ? "," : "", l->dir[i]);
            if (i + 1 == l->n || l->label[i + 1] != l->label[i]) why(" (%s)", l->label[i]); /* after its group */
        }
        why("; build it with make (it needs nvcc), or set EMBER_CUDA_LIBRARY to its path");
    }
    free(l);
    return found;
}

/* dlopens the plug-in into handle, setting path; false with why_not set. A
 * plug-in found by the search is loaded only where the NVIDIA driver is (its
 * CUDA runtime and cuBLAS take about 200 MiB and 70 ms to load, for nothing
 * on a machine without a GPU); one EMBER_CUDA_LIBRARY names is loaded as is. */
static bool open_plugin(char *path, size_t size) {
    bool named;
    if (!find_plugin(path, size, &named)) return false;
    if (!named && !(driver = dlopen(EM_GPU_DRIVER, RTLD_NOW | RTLD_LOCAL))) {
        why("the CUDA plug-in %s was not loaded: this machine has no NVIDIA driver (%s)", path, dlerror());
        return false;
    }
    if ((handle = dlopen(path, RTLD_NOW | RTLD_LOCAL))) return true;
    why("the CUDA plug-in %s%s cannot be loaded: %s", named ? "set by EMBER_CUDA_LIBRARY " : "", path, dlerror());
    return false;
}

/* Checks the plug-in's table against this library; false with why_not set. */
static bool check_table(const char *path, const em_gpu_backend *b) {
    if (b->abi_version != EM_GPU_ABI_VERSION) {
        why("the CUDA plug-in %s was built for plug-in ABI version %d, but this library has version %d: build "
            "them from the same tree",
            path, b->abi_version, EM_GPU_ABI_VERSION);
        return false;
    }
    if (b->op_count != EM_OP_BUILTIN_COUNT || !b->op_names || !b->kernels) {
        why("the CUDA plug-in %s was built for %d ops, but this library has %d: build them from the same tree", path,
            b->op_count, EM_OP_BUILTIN_COUNT);
        return false;
    }
    /* The op names, from the same .def lines as the dispatcher's rows (this
     * file is below the dispatcher: it does not ask it). */
    static const char *const names[EM_OP_BUILTIN_COUNT] = {
#define EM_FAMILY(family)
#define EM_OP(ID, name, ...) [EM_OP_##ID] = #name,
#include "ops/ops.def"
#undef EM_OP
#undef EM_FAMILY
    };
    for (int op = 0; op < EM_OP_BUILTIN_COUNT; op++) {
        const char *mine = names[op], *its = b->op_names[op];
        if (!its || strcmp(its, mine)) {
            why("the CUDA plug-in %s was built for another op list: op %d is '%s' there but '%s' here; build them "
                "from the same tree",
                path, op, its ? its : "(null)", mine);
            return false;
        }
    }
    return true;
}

/* Unloads the plug-in, then the driver. */
static void close_plugin(void) {
    if (handle) dlclose(handle);
    if (driver) dlclose(driver);
    handle = driver = NULL;
}

/* The load itself (under mu, once). */
static void load(void) {
    char path[PATH_MAX + 64], reason[512] = "";
    why_not[0] = 0;
    if (!open_plugin(path, sizeof path)) {
        close_plugin();
        return;
    }
    dlerror();
    em_gpu_plugin_fn *entry = (em_gpu_plugin_fn *)(uintptr_t)dlsym(handle, EM_GPU_PLUGIN_ENTRY);
    const em_gpu_backend *b = NULL;
    int n = 0;
    if (!entry)
        why("%s is not an Ember CUDA plug-in: it has no %s", path, EM_GPU_PLUGIN_ENTRY);
    else if (!(b = entry(&host, reason, sizeof reason)))
        why("the CUDA plug-in %s refused this library: %s", path, reason);
    else if (!check_table(path, b))
        b = NULL;
    else if ((n = b->count(reason, sizeof reason)) <= 0)
        why("the CUDA plug-in %s (%s) found no GPU: %s", path, b->description ? b->description : "",
            reason[0] ? reason : "CUDA reports none");
    if (!b || n <= 0) {
        close_plugin();
        return;
    }
    if (n > EM_MAX_DEVICES - EM_GPU_BASE) n = EM_MAX_DEVICES - EM_GPU_BASE;
    b->configure(cfg_growth, cfg_fraction);
    kernels = b->kernels;
    em__gpu = b;
    atomic_store(&ngpu, n);
}

int em__gpu_load(void) {
    if (!atomic_load_explicit(&tried, memory_order_acquire)) {
        pthread_mutex_lock(&mu);
        if (!atomic_load_explicit(&tried, memory_order_relaxed)) {
            load();
            atomic_store_explicit(&tried, true, memory_order_release);
        }
        pthread_mutex_unlock(&mu);
    }
    return atomic_load(&ngpu);
}

int em__gpu_loaded_count(void) { return atomic_load(&ngpu); }

const char *em__gpu_unavailable(void) {
    return atomic_load_explicit(&tried, memory_order_acquire) ? why_not : "";
}

em_gpu_kernel_fn em__gpu_kernel(em_op op) {
    return kernels && (unsigned)op < EM_OP_BUILTIN_COUNT ? kernels[op] : NULL;
}

void em__gpu_configure(bool allow_growth, double fraction) {
    pthread_mutex_lock(&mu);
    cfg_growth = allow_growth;
    cfg_fraction = fraction;
    if (em__gpu) em__gpu->configure(allow_growth, fraction);
    pthread_mutex_unlock(&mu);
}

int em__gpu_unload(void) {
    pthread_mutex_lock(&mu);
    int rc = 0;
    if (em__gpu) {
        for (int i = 0; i < atomic_load(&ngpu) && !rc; i++) {
            em_gpu_memory_stats m;
            if (em__gpu->memory(i, &m) == 0 && m.in_use) {
                em__error("shutdown_process: %zu bytes are still in use on /gpu:%d: release the tensors, variables "
                          "and graphs that live there (em_shutdown on each thread that made them) first",
                          m.in_use, i);
                rc = -1;
            }
        }
        if (!rc) {
            em__gpu->shutdown();
            em__gpu = NULL;
            kernels = NULL;
            atomic_store(&ngpu, 0);
            close_plugin();
        }
    }
    if (!rc) {
        why_not[0] = 0;
        atomic_store_explicit(&tried, false, memory_order_release);
    }
    pthread_mutex_unlock(&mu);
    return rc;
}
