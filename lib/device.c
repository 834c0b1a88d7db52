/* Devices: the registry of logical CPU devices, device scopes, placement of
 * ops (with automatic copies and the placement log), and em_to_device (its
 * op, copy_to_device, the one op that moves a tensor between devices, is
 * lib/ops/device.c's). All CPU devices share the host's
 * memory; what sets them apart is their threads (a kernel placed on a device
 * uses that device's thread count) and that a graph runs the parts placed on
 * different devices at the same time (lib/graph/run.c). */
#include "device.h"
#include "tape.h"

#include <ctype.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdlib.h>

typedef struct {
    char name[24]; /* "/cpu:<int>" always fits */
    int threads;   /* 0: em_num_threads() */
} device;

/* CPUs at [0, ncpu), GPUs at [EM_GPU_BASE, EM_GPU_BASE + ngpu). */
static device devices[EM_MAX_DEVICES] = {{"/cpu:0", 0}};
static atomic_bool soft_placement;
static _Atomic(FILE *) placement_log;


/* The thread's device scopes, innermost last. */
#define MAX_SCOPES 64
static _Thread_local int scope_stack[MAX_SCOPES];
static _Thread_local int nscopes;

/* The dispatcher places ops through this when em__placing; em_shutdown
 * closes the thread's device scopes (lib/op.h, lib/internal.h). */
static em_tensor *apply_placed(em_op op, int n, em_tensor *const *in, const em_attrs *a);
static void device_scopes_reset(void);
__attribute__((constructor)) static void install_hooks(void) {
    em__op_hooks.apply_placed = apply_placed;
    em__hooks.device_scopes_reset = device_scopes_reset;
}

/* ---- GPUs: the CUDA plug-in (lib/gpu_loader.c), loaded when one is asked for or listed ---- */

static void name_gpus(void) {
    for (int i = 0; i < EM_MAX_DEVICES - EM_GPU_BASE; i++) {
        snprintf(devices[EM_GPU_BASE + i].name, sizeof devices[0].name, "/gpu:%d", i);
        devices[EM_GPU_BASE + i].threads = 1; /* the thread that launches its kernels */
    }
}

static void update_placing(void);

/* The GPUs, loading the plug-in on first use: 0 without it or a GPU. */
static int gpus(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, name_gpus);
    bool before = em__gpu_loaded_count() > 0;
    int n = em__gpu_load();
    if (n > 0 && !before) update_placing(); /* ops must now be placed */
    return n;
}

static void update_placing(void) {
    atomic_store(&em__placing,
                 atomic_load(&em__ncpu) + em__gpu_loaded_count() > 1 || atomic_load(&placement_log) != NULL);
}

int em__device_threads(int dev) { return devices[dev].threads; }

int em_set_cpu_devices(int count, int threads_each) {
    if (count < 1 || count > EM_GPU_BASE || threads_each < 0) {
        em__error("set_cpu_devices: count must be in 1..%d and threads_each >= 0 (0: share the cores), got %d and %d",
                  EM_GPU_BASE, count, threads_each);
        return -1;
    }
    if (count < atomic_load(&em__ncpu) && em_live_tensors() > 0) {
        em__error("set_cpu_devices: cannot go from %d devices to %d while %lld tensors are alive (they may live on "
                  "the devices removed): release them (or call em_shutdown) first",
                  atomic_load(&em__ncpu), count, (long long)em_live_tensors());
        return -1;
    }
    int each = threads_each ? threads_each : em_num_threads() / count;
    if (each < 1) each = 1;
    for (int i = 0; i < count; i++) {
        snprintf(devices[i].name, sizeof devices[i].name, "/cpu:%d", i);
        devices[i].threads = count == 1 && !threads_each ? 0 : each;
    }
    atomic_store(&em__ncpu, count);
    update_placing();
    return 0;
}

/* Listing devices loads the plug-in; without it (or a GPU) the CPUs are
 * listed, with no error. */
int em_device_count(void) { return atomic_load(&em__ncpu) + gpus(); }

/* Public index i (CPUs, then GPUs) to the internal one; -1 if out of range.
 * ngpu < 0: load the plug-in to know (an index past the CPUs lists GPUs). */
static int device_index(int i, int ngpu) {
    int n = atomic_load(&em__ncpu);
    if (i >= 0 && i < n) return i;
    if (i >= n && i < n + (ngpu < 0 ? gpus() : ngpu)) return EM_GPU_BASE + i - n;
    return -1;
}

const char *em_device_name(int i) {
    int d = device_index(i, -1);
    if (d < 0) {
        em__error("device_name: device %d does not exist (this process has %d)", i, em_device_count());
        return NULL;
    }
    return devices[d].name;
}

/* "cpu" or "gpu" and an index from "/cpu:1", "/device:CPU:1", "cpu:1",
 * "/job:localhost/replica:0/task:0/device:CPU:1"; -1 when malformed. */
static int parse_name(const char *name, char kind[4]) {
    const char *s = strstr(name, "device:");
    s = s ? s + 7 : name[0] == '/' ? name + 1 : name;
    if (strlen(s) < 5 || s[3] != ':') return -1;
    for (int i = 0; i < 3; i++) kind[i] = (char)tolower((unsigned char)s[i]);
    kind[3] = 0;
    if (strcmp(kind, "cpu") && strcmp(kind, "gpu")) return -1;
    char *end;
    long idx = strtol(s + 4, &end, 10);
    if (end == s + 4 || *end || idx < 0 || idx >= EM_MAX_DEVICES) return -1;
    return (int)idx;
}

/* The devices there are, without loading the plug-in (an error about a CPU
 * device does not load CUDA). */
static const char *device_list(char *buf, size_t size) {
    size_t at = 0;
    int ngpu = em__gpu_loaded_count(), n = atomic_load(&em__ncpu) + ngpu;
    buf[0] = 0;
    for (int i = 0; i < n && at < size; i++)
        at += (size_t)snprintf(buf + at, size - at, "%s%s", i ? ", " : "", devices[device_index(i, ngpu)].name);
    return buf;
}

bool em__placement_logged(void) { return atomic_load(&placement_log) != NULL; }

void em__log_placement(const char *fmt, ...) {
    FILE *out = atomic_load(&placement_log);
    if (!out) return;
    va_list ap;
    va_start(ap, fmt);
    flockfile(out);
    vfprintf(out, fmt, ap);
    fputc('\n', out);
    funlockfile(out);
    va_end(ap);
}

/* The device `name` names: its index, or -1 with an error. With soft
 * placement a device that is not there falls back to /cpu:0 (logged). */
static int find_device(const char *fn, const char *name) {
    char kind[4], list[EM_MAX_DEVICES * 12];
    if (!name) {
        em__error("%s: device name is NULL", fn);
        return -1;
    }
    int idx = parse_name(name, kind);
    if (idx < 0) {
        em__error("%s: '%s' is not a device name (write \"/cpu:0\", \"/gpu:0\" or \"/device:GPU:1\")", fn, name);
        return -1;
    }
    bool gpu = !strcmp(kind, "gpu");
    int ngpu = gpu ? gpus() : 0; /* asking for a GPU loads the plug-in */
    if (!gpu && idx < atomic_load(&em__ncpu)) return idx;
    if (gpu && idx < ngpu) return EM_GPU_BASE + idx;
    if (atomic_load(&soft_placement)) {
        em__log_placement("%s: %s is not available; using /cpu:0 (soft placement)", fn, name);
        return 0;
    }
    if (!gpu)
        em__error("%s: no device '%s' in this process (it has %s; em_set_cpu_devices makes more CPU devices); turn on "
                  "soft placement to fall back to /cpu:0",
                  fn, name, device_list(list, sizeof list));
    else if (ngpu)
        em__error("%s: no device '%s' in this process (it has %s: CUDA sees %d GPU%s); turn on soft placement to fall "
                  "back to /cpu:0",
                  fn, name, device_list(list, sizeof list), ngpu, ngpu == 1 ? "" : "s");
    else
        em__error("%s: no device '%s' in this process (it has %s): %s; turn on soft placement to fall back to /cpu:0",
                  fn, name, device_list(list, sizeof list), em__gpu_unavailable());
    return -1;
}

int em_device_begin(const char *name) {
    int dev = find_device("device_begin", name);
    if (dev < 0) return -1;
    if (nscopes == MAX_SCOPES) {
        em__error("device_begin: more than %d device scopes are open", MAX_SCOPES);
        return -1;
    }
    scope_stack[nscopes++] = dev;
    em__scoped_device = dev;
    return 0;
}

int em_device_end(void) {
    if (!nscopes) {
        em__error("device_end: no device scope is open");
        return -1;
    }
    nscopes--;
    em__scoped_device = nscopes ? scope_stack[nscopes - 1] : -1;
    return 0;
}

const char *em_device_current(void) { return nscopes ? devices[em__scoped_device].name : ""; }

static void device_scopes_reset(void) {
    nscopes = 0;
    em__scoped_device = -1;
}

const char *em__device_label(int dev) { return devices[dev].name; }
const char *em_tensor_device(const em_tensor *t) { return t ? em__device_label(t->device) : NULL; }

void *em_device_pointer(em_tensor *t) {
    if (!t) return em__null_input("device_pointer");
    if ((!t->data && t->numel) || !em__is_contiguous(t)) {
        em__error("device_pointer: the tensor is %s", t->data ? "a strided view: em_copy it first" : "a placeholder");
        return NULL;
    }
    return t->data;
}

void em_set_soft_placement(bool on) { atomic_store(&soft_placement, on); }

void em_log_device_placement(FILE *out) {
    atomic_store(&placement_log, out);
    update_placing();
}

/* ---- placement of one op ---- */

/* The op's device: its fixed target (copy_to_device), the scope's, or its
 * inputs'. Inputs elsewhere are replaced by copies in `moved` when a scope or
 * soft placement allows. -1 with an error naming both devices otherwise. */
static int place(const em_op_def *d, int n, em_tensor *const *in, const em_attrs *a, em_tensor **moved) {
    if (d->flags & EM_OPF_COPIES) return (int)a->i[0];
    /* An in-place update writes its variables where they live. */
    bool inplace = (d->flags & EM_OPF_INPLACE) != 0;
    int dev = em__scoped_device >= 0 && !inplace ? em__scoped_device : n ? in[0]->device : em__scoped_device;
    if (dev < 0) dev = 0;
    if (inplace) return dev;
    if (em__is_gpu(dev) && d->cpu && !em__op_has_gpu_kernel(d) && !(d->flags & EM_OPF_ANY_DEVICE)) {
        if (!atomic_load(&soft_placement)) {
            em__error("%s: no GPU kernel for this op on %s; turn on soft placement to run it on /cpu:0", d->name,
                      devices[dev].name);
            return -1;
        }
        em__log_placement("%s: no GPU kernel: runs on /cpu:0 (soft placement)", d->name);
        dev = 0;
    }
    for (int i = 0; i < n; i++) {
        if (in[i]->device == dev) continue;
        if (em__scoped_device < 0 && !atomic_load(&soft_placement)) {
            em__error("%s: input 0 is on %s but input %d is on %s: copy one with em_to_device, place the op with "
                      "em_device_begin, or turn on soft placement",
                      d->name, devices[dev].name, i, devices[in[i]->device].name);
            return -1;
        }
        em_attrs to = {.i = {dev}, .ni = 1};
        moved[i] = em__apply(EM_OP_COPY_TO_DEVICE, 1, &in[i], &to);
        if (!moved[i]) return -1;
    }
    return dev;
}

static em_tensor *apply_placed(em_op op, int n, em_tensor *const *in, const em_attrs *a) {
    const em_op_def *d = em__op_def(op);
    em_tensor *small[4] = {0}, **moved = n <= 4 ? small : calloc((size_t)n, sizeof *moved);
    if (!moved) {
        em__error("%s: out of memory", d->name);
        return NULL;
    }
    em_tensor *out = NULL;
    int dev = place(d, n, in, a, moved);
    if (dev >= 0) {
        em_tensor *local[4], **args = n <= 4 ? local : moved;
        for (int i = 0; i < n; i++) args[i] = moved[i] ? moved[i] : in[i];
        int saved_threads = em__run_threads;
        em__run_threads = devices[dev].threads;
        {
            EM_ON_DEVICE(dev); /* what the op allocates lives on its device */
            out = em__run_op(op, n, args, a);
        }
        em__run_threads = saved_threads;
        if (out) {
            out->device = (uint8_t)dev;
            if (d->flags & EM_OPF_COPIES) {
                char b[160];
                em__log_placement("%s: %s -> %s (%s %s)", d->name, devices[in[0]->device].name, devices[dev].name,
                         em_dtype_name((em_dtype)in[0]->dtype), em__tshape(in[0], b, sizeof b));
            } else {
                const char *scope = em__name_scope();
                em__log_placement("%s%s%s: %s", scope, *scope ? "/" : "", d->name, devices[dev].name);
            }
        }
    }
    if (moved != small) free(moved);
    return out;
}

/* ---- copy_to_device (the op: lib/ops/device.c) ---- */

em_tensor *em_to_device(em_tensor *x, const char *device) {
    if (!x) return em__null_input("to_device");
    int dev = find_device("to_device", device);
    if (dev < 0) return NULL;
    em_attrs to = {.i = {dev}, .ni = 1};
    return em__apply(EM_OP_COPY_TO_DEVICE, 1, &x, &to);
}

/* ---- GPU memory ---- */

/* Kept for the plug-in, which need not be loaded yet. */
void em_set_gpu_memory(bool allow_growth, double fraction) {
    em__gpu_configure(allow_growth, fraction > 0 && fraction <= 1 ? fraction : 1);
}

/* ---- the process-wide state's owner ---- */

int em_shutdown_process(void) {
    em_shutdown();
    if (em__gpu_unload()) return -1;
    update_placing();
    return 0;
}

int em_device_memory_stats(const char *device, em_device_memory *out) {
    int dev = find_device("device_memory_stats", device);
    if (dev < 0) return -1;
    if (!out || !em__is_gpu(dev)) {
        em__error("device_memory_stats: %s", out ? "CPU devices use the host's memory: there is nothing to report"
                                                : "out is NULL");
        return -1;
    }
    em_gpu_memory_stats m;
    if (em__gpu->memory(dev - EM_GPU_BASE, &m)) return -1;
    *out = (em_device_memory){m.in_use, m.peak, m.reserved, m.device_free, m.device_total, m.cuda_mallocs};
    return 0;
}

int em_device_sync(const char *device) {
    int dev = find_device("device_sync", device);
    if (dev < 0) return -1;
    return em__is_gpu(dev) ? em__gpu->sync(dev - EM_GPU_BASE) : 0;
}

/* ---- all-reduce ---- */

int em_all_reduce_mean(int n, em_tensor *const *ts) {
    char b1[160], b2[160];
    if (n < 1 || !ts) {
        em__error("all_reduce_mean: needs n >= 1 tensors (n = %d)", n);
        return -1;
    }
    bool all_gpu = em__gpu != NULL;
    for (int i = 0; i < n; i++) {
        if (!ts[i]) return em__null_input("all_reduce_mean"), -1;
        if (!em__is_float((em_dtype)ts[i]->dtype) || !ts[i]->data || !em__is_contiguous(ts[i])) {
            em__error("all_reduce_mean: tensor %d must be a contiguous float tensor with a value (it is %s %s)", i,
                      em_dtype_name((em_dtype)ts[i]->dtype), em__tshape(ts[i], b1, sizeof b1));
            return -1;
        }
        if (ts[i]->dtype != ts[0]->dtype || !em_shape_equal(em__shape_of(ts[i]), em__shape_of(ts[0]))) {
            em__error("all_reduce_mean: tensor %d is %s %s but tensor 0 is %s %s", i,
                      em_dtype_name((em_dtype)ts[i]->dtype), em__tshape(ts[i], b1, sizeof b1),
                      em_dtype_name((em_dtype)ts[0]->dtype), em__tshape(ts[0], b2, sizeof b2));
            return -1;
        }
        all_gpu &= em__is_gpu(ts[i]->device);
    }
    if (all_gpu && n > 1) {
        em_gpu_tensor g[EM_MAX_DEVICES], *gp[EM_MAX_DEVICES];
        int ordinals[EM_MAX_DEVICES];
        if (n <= EM_MAX_DEVICES) {
            for (int i = 0; i < n; i++) {
                g[i] = em__gpu_tensor(ts[i]);
                gp[i] = &g[i];
                ordinals[i] = ts[i]->device - EM_GPU_BASE;
            }
            return em__gpu->all_reduce(n, gp, ordinals, 1.0 / n);
        }
    }
    /* The sum in tensor 0's order on the host, then copied back to each. */
    EM_ON_DEVICE(0);
    em__tapes_pause(true);
    em_scope_begin();
    em_tensor *sum = em_to_device(ts[0], "/cpu:0");
    for (int i = 1; i < n; i++) sum = em_add(sum, em_to_device(ts[i], "/cpu:0"));
    em_tensor *mean = em_mul_scalar(sum, 1.0 / n);
    int rc = mean ? 0 : -1;
    for (int i = 0; i < n && !rc; i++) rc = em__copy_strided(ts[i], mean);
    em_scope_end();
    em__tapes_pause(false);
    return rc;
}
