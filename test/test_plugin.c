/* The CUDA plug-in's loading (lib/gpu_loader.c), with the program linked
 * against libember.a (test_plugin, test_plugin_cuda) or libember.so (the
 * _shared builds, -DSHARED_LINK): the library and the plug-in must find each
 * other through their tables alone, both ways.
 *
 * test_plugin[_shared] use the stub plug-ins (test/plugin_stub.c), so they
 * run on every machine: nothing is loaded before a GPU is asked for or
 * listed; the stub's GPUs are listed, ops dispatch through its table (and an
 * op it lacks is an error, or runs on the CPU with soft placement);
 * em_set_gpu_memory reaches a plug-in loaded later; em_shutdown_process
 * refuses while GPU memory is in use, then frees the plug-in's state and
 * unloads it, and a later request loads it again. A missing plug-in (named
 * by EMBER_CUDA_LIBRARY, or found nowhere), one of another ABI version, op
 * count or op list, a library that is no plug-in, and a plug-in that finds
 * no GPU: each lists the CPU devices with no error, and asking for "/gpu:0"
 * is an error that says why, and where it looked.
 *
 * test_plugin_cuda[_shared] (-DREAL_PLUGIN) load the real plug-in from its
 * default place (build/libember_cuda.so) and run ops on /gpu:0; without a
 * GPU (or without the plug-in, GPU=0) they exit 77, after checking that a
 * plug-in that is there loaded and matched this library.
 *
 * Each case runs in a process of its own (the program runs itself), since
 * a process loads the plug-in once. */
#include <ember.h>

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef SHARED_LINK
#define LINKED "shared"
#else
#define LINKED "static"
#endif

static const char *current = "";
static int failures;

#define CHECK(cond, ...)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: [%s, %s] ", __FILE__, __LINE__, LINKED, current);      \
            fprintf(stderr, __VA_ARGS__);                                                 \
            fprintf(stderr, "\n");                                                        \
            failures++;                                                                   \
        }                                                                                 \
    } while (0)

static bool has(const char *s, const char *sub) { return s && sub && strstr(s, sub); }
static const char *err(void) { return em_last_error() ? em_last_error() : "(no error)"; }

static char exe_dir[PATH_MAX]; /* build/test: the stubs are beside the program */

#ifndef REAL_PLUGIN
static void stub_path(char *buf, size_t size, const char *name) {
    if (snprintf(buf, size, "%s/%s", exe_dir, name) >= (int)size) abort();
}

static bool loaded(const char *path) {
    void *h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (h) dlclose(h);
    return h != NULL;
}

static char *read_file(const char *path) {
    static char buf[4096];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    return buf;
}

static int count_of(const char *text, const char *word) {
    int n = 0;
    for (const char *p = text; (p = strstr(p, word)); p += strlen(word)) n++;
    return n;
}

/* The CPU devices are listed with no error, "/gpu:0" is an error containing
 * each of the fragments, soft placement falls back to /cpu:0, and CPU ops
 * still work. */
static void expect_no_gpu(const char *why1, const char *why2) {
    em_clear_error();
    CHECK(em_device_count() == 1, "device count %d", em_device_count());
    CHECK(!em_last_error(), "listing devices set an error: %s", err());
    CHECK(em_device_name(0) && !strcmp(em_device_name(0), "/cpu:0"), "device 0 is %s", em_device_name(0));
    CHECK(em_device_begin("/gpu:0") == -1, "/gpu:0 was opened");
    CHECK(has(err(), "no device '/gpu:0'") && has(err(), why1) && has(err(), why2),
          "the error does not say '%s' and '%s': %s", why1, why2, err());
    em_clear_error();
    em_scope_begin();
    em_tensor *x = em_tensor_from(EM_F32, EM_SHAPE(2), (float[]){1, 2});
    CHECK(!em_to_device(x, "/gpu:1") && has(err(), "no device '/gpu:1'"), "to_device /gpu:1: %s", err());
    em_clear_error();
    em_set_soft_placement(true);
    CHECK(em_device_begin("/gpu:0") == 0, "soft placement: %s", err());
    em_tensor *y = em_add(x, x);
    em_device_end();
    em_set_soft_placement(false);
    CHECK(y && !strcmp(em_tensor_device(y), "/cpu:0") && em_data(y) && ((const float *)em_data(y))[1] == 4,
          "soft placement did not run add on /cpu:0: %s", err());
    em_scope_end();
    em_shutdown();
}

/* ---- the cases (each in its own process) ---- */

/* A program that never asks for a GPU loads nothing. */
static void case_cpu_only(void) {
    char stub[PATH_MAX];
    stub_path(stub, sizeof stub, "libember_stub.so");
    const char *log = getenv("EMBER_STUB_LOG");
    em_set_gpu_memory(true, 1);
    CHECK(em_set_cpu_devices(2, 1) == 0, "%s", err());
    em_scope_begin();
    em_tensor *x = em_tensor_from(EM_F32, EM_SHAPE(2), (float[]){1, 2});
    CHECK(em_device_begin("/cpu:1") == 0, "%s", err());
    em_tensor *y = em_add(x, x);
    em_device_end();
    CHECK(y && !strcmp(em_tensor_device(y), "/cpu:1"), "add on /cpu:1: %s", err());
    CHECK(em_device_begin("/cpu:7") == -1 && has(err(), "/cpu:0, /cpu:1;"), "%s", err());
    em_clear_error();
    em_scope_end();
    CHECK(!loaded(stub), "the plug-in was loaded by a CPU-only program");
    CHECK(!*read_file(log), "the plug-in logged: %s", read_file(log));
    em_shutdown();
}

/* The working stub: 2 GPUs, dispatch, memory settings, shutdown, reload. */
static void case_stub(void) {
    char stub[PATH_MAX];
    stub_path(stub, sizeof stub, "libember_stub.so");
    const char *log = getenv("EMBER_STUB_LOG");
    em_set_gpu_memory(false, 0.5); /* before the plug-in is loaded: it must get it */
    CHECK(!loaded(stub), "loaded before a GPU was asked for");
    CHECK(em_device_count() == 3, "device count %d: %s", em_device_count(), err());
    CHECK(loaded(stub) && count_of(read_file(log), "load") == 1, "listing did not load the stub once: %s",
          read_file(log));
    CHECK(em_device_name(1) && !strcmp(em_device_name(1), "/gpu:0"), "device 1: %s", em_device_name(1));
    CHECK(em_device_name(2) && !strcmp(em_device_name(2), "/gpu:1"), "device 2: %s", em_device_name(2));
    CHECK(!em_device_name(3), "a device 3");
    em_clear_error();

    em_scope_begin();
    em_tensor *x = em_tensor_from(EM_F32, EM_SHAPE(2, 3), (float[]){1, 2, 3, 4, 5, 6});
    em_tensor *row = em_tensor_from(EM_F32, EM_SHAPE(3), (float[]){10, 20, 30});
    CHECK(em_device_begin("/gpu:0") == 0, "%s", err());
    em_tensor *s = em_add(x, row); /* inputs copied to /gpu:0, add from the stub's table */
    em_tensor *f = em_fill_like(x, 7);
    em_device_end();
    CHECK(s && !strcmp(em_tensor_device(s), "/gpu:0"), "add: %s", err());
    em_tensor *h = em_to_device(s, "/cpu:0");
    const float *v = h ? em_data(h) : NULL;
    CHECK(v && v[0] == 11 && v[2] == 33 && v[5] == 36, "add's values on the stub: %s", err());
    em_tensor *fh = em_to_device(f, "/cpu:0");
    CHECK(fh && ((const float *)em_data(fh))[4] == 7, "fill_like on the stub: %s", err());
    em_tensor *t = em_transpose(s, 0, NULL); /* a strided view on the GPU, gathered by copy_strided */
    em_tensor *th = em_to_device(t, "/cpu:0");
    CHECK(th && ((const float *)em_data(th))[1] == 14, "a strided GPU view copied back: %s", err());

    /* An op the plug-in's table lacks. */
    em_tensor *col = em_reshape(row, EM_SHAPE(3, 1));
    CHECK(em_device_begin("/gpu:1") == 0, "%s", err());
    CHECK(!em_matmul(x, col) && has(err(), "matmul: no GPU kernel"), "matmul: %s", err());
    em_clear_error();
    em_set_soft_placement(true);
    em_tensor *m = em_matmul(x, col);
    em_set_soft_placement(false);
    em_device_end();
    CHECK(m && !strcmp(em_tensor_device(m), "/cpu:0"), "matmul with soft placement: %s", err());

    em_device_memory mem;
    CHECK(em_device_memory_stats("/gpu:0", &mem) == 0 && mem.in_use > 0, "memory stats: %s", err());
    CHECK(mem.reserved == (size_t)1 << 29, "em_set_gpu_memory(false, 0.5) did not reach the plug-in: %zu reserved",
          mem.reserved);
    CHECK(em_device_sync("/gpu:0") == 0, "%s", err());

    /* The owner of the process-wide state refuses while GPU memory is in use. */
    em_tensor *kept = em_keep(s);
    em_scope_end();
    CHECK(em_shutdown_process() == -1 && has(err(), "still in use on /gpu:0"), "shutdown with a GPU tensor: %s",
          err());
    CHECK(loaded(stub), "unloaded while in use");
    em_clear_error();
    em_release(kept);
    CHECK(em_shutdown_process() == 0, "%s", err());
    CHECK(!loaded(stub), "em_shutdown_process did not unload the plug-in");
    CHECK(has(read_file(log), "shutdown in_use=0 freed="), "the plug-in's shutdown did not run: %s", read_file(log));
    CHECK(!has(read_file(log), "freed=0"), "the cached blocks were not freed: %s", read_file(log));

    /* A later request loads it again. */
    CHECK(em_device_count() == 3 && count_of(read_file(log), "load") == 2, "reload: %s", read_file(log));
    em_scope_begin();
    CHECK(em_device_begin("/gpu:1") == 0, "%s", err());
    em_tensor *z = em_add(em_ones(EM_F64, EM_SHAPE(4)), em_ones(EM_F64, EM_SHAPE(4)));
    em_device_end();
    CHECK(z && !strcmp(em_tensor_device(z), "/gpu:1") && em_item(em_sum(em_to_device(z, "/cpu:0"), EM_ALL_AXES, false)) == 8,
          "add after the reload: %s", err());
    em_scope_end();
    CHECK(em_shutdown_process() == 0 && !loaded(stub), "%s", err());
    CHECK(count_of(read_file(log), "shutdown") == 2, "%s", read_file(log));
    CHECK(em_shutdown_process() == 0, "a second call: %s", err()); /* nothing loaded: nothing to do */
}

static void case_missing(void) {
    expect_no_gpu("set by EMBER_CUDA_LIBRARY /nonexistent/libember_cuda.so cannot be loaded",
                  "/nonexistent/libember_cuda.so: cannot open shared object");
}

/* Not found anywhere: run from a copy in a directory of its own. */
static void case_not_found(void) {
    char where[PATH_MAX + 96];
#ifdef SHARED_LINK
    snprintf(where, sizeof where, "looked in %s/.. (beside libember.so)", exe_dir);
#else
    snprintf(where, sizeof where, "looked in %s (beside the program, linked with libember.a)", exe_dir);
#endif
    expect_no_gpu("the CUDA plug-in libember_cuda.so was not found", where);
}

static void case_no_gpu(void) {
    char stub[PATH_MAX];
    stub_path(stub, sizeof stub, "libember_stub.so");
    expect_no_gpu("found no GPU: stub: EMBER_STUB_GPUS=0", stub);
    CHECK(!loaded(stub), "a plug-in without a GPU stays loaded");
}

static void case_refused(const char *name, const char *why) {
    char stub[PATH_MAX];
    stub_path(stub, sizeof stub, name);
    expect_no_gpu(stub, why);
    CHECK(!loaded(stub), "a refused plug-in stays loaded");
}
static void case_abi(void) { case_refused("libember_stub_abi0.so", "built for plug-in ABI version 0, but this library has version"); }
static void case_opcount(void) { case_refused("libember_stub_opcount.so", "ops, but this library has"); }
static void case_opnames(void) { case_refused("libember_stub_opnames.so", "op 0 is 'plus' there but 'add' here"); }
static void case_not_plugin(void) { expect_no_gpu("libz.so.1 is not an Ember CUDA plug-in", "it has no em_gpu_plugin"); }

#else
/* The real plug-in, from where the build put it. */
static int case_real(void) {
    int n = em_device_count();
    if (em_device_begin("/gpu:0")) {
        char why[2048];
        snprintf(why, sizeof why, "%s", err());
        CHECK(n == 1, "%d devices but no /gpu:0", n);
        if (has(why, "no NVIDIA driver")) {
            /* Not loaded without a driver; named by EMBER_CUDA_LIBRARY it is
             * loaded all the same, and must match this library. */
            char path[PATH_MAX + 32];
            snprintf(path, sizeof path, "%s/../libember_cuda.so", exe_dir);
            CHECK(em_shutdown_process() == 0, "%s", err());
            setenv("EMBER_CUDA_LIBRARY", path, 1);
            CHECK(em_device_begin("/gpu:0") == -1 && has(err(), "found no GPU"),
                  "the plug-in, named, did not load and match this library: %s", err());
            printf("test_plugin_cuda (%s): the plug-in loaded and matched this library's ABI and ops: %s\n", LINKED,
                   err());
        }
        if (has(why, "found no GPU") || has(why, "was not found") || has(why, "no NVIDIA driver")) {
            printf("test_plugin_cuda (%s): SKIPPED: no GPU here: %s\n", LINKED, why);
            return failures ? 1 : 77;
        }
        CHECK(0, "the CUDA plug-in did not load: %s", why); /* there, but refused or broken */
        return 1;
    }
    em_device_end();
    em_scope_begin();
    em_tensor *a = em_random_normal(EM_F32, EM_SHAPE(64, 32), 0, 1);
    em_tensor *b = em_random_normal(EM_F32, EM_SHAPE(32, 16), 0, 1);
    em_tensor *want = em_add(em_matmul(a, b), em_ones(EM_F32, EM_SHAPE(16)));
    CHECK(em_device_begin("/gpu:0") == 0, "%s", err());
    em_tensor *got = em_add(em_matmul(a, b), em_ones(EM_F32, EM_SHAPE(16)));
    em_device_end();
    CHECK(got && !strcmp(em_tensor_device(got), "/gpu:0"), "%s", err());
    CHECK(em_device_sync("/gpu:0") == 0, "%s", err());
    em_tensor *diff = em_max(em_abs(em_sub(em_to_device(got, "/cpu:0"), want)), EM_ALL_AXES, false);
    CHECK(diff && em_item(diff) < 1e-4, "GPU and CPU differ by %g: %s", diff ? em_item(diff) : -1, err());
    em_device_memory mem;
    CHECK(em_device_memory_stats("/gpu:0", &mem) == 0 && mem.in_use > 0, "%s", err());
    em_scope_end();
    CHECK(em_shutdown_process() == 0, "%s", err());
    CHECK(em_device_count() == n, "after a reload: %d devices", em_device_count());
    em_scope_begin();
    CHECK(em_device_begin("/gpu:0") == 0, "%s", err());
    em_tensor *s = em_sum(em_ones(EM_F64, EM_SHAPE(1000)), EM_ALL_AXES, false);
    em_device_end();
    CHECK(s && em_item(s) == 1000, "sum after the reload: %s", err());
    em_scope_end();
    CHECK(em_shutdown_process() == 0, "%s", err());
    return failures ? 1 : 0;
}
#endif

#ifndef REAL_PLUGIN
/* ---- the runner ---- */

typedef struct {
    const char *name;
    void (*fn)(void);
    const char *library; /* EMBER_CUDA_LIBRARY: a stub's file, a path, or NULL (unset) */
    const char *gpus;    /* EMBER_STUB_GPUS */
    bool elsewhere;      /* run from a copy in a directory of its own */
} test_case;

static const test_case cases[] = {
    {"cpu_only", case_cpu_only, "libember_stub.so", "2", false},
    {"stub", case_stub, "libember_stub.so", "2", false},
    {"missing", case_missing, "/nonexistent/libember_cuda.so", NULL, false},
    {"not_found", case_not_found, NULL, NULL, true},
    {"no_gpu", case_no_gpu, "libember_stub.so", "0", false},
    {"abi", case_abi, "libember_stub_abi0.so", NULL, false},
    {"opcount", case_opcount, "libember_stub_opcount.so", NULL, false},
    {"opnames", case_opnames, "libember_stub_opnames.so", NULL, false},
    {"not_plugin", case_not_plugin, "libz.so.1", NULL, false},
};
#define NCASES (int)(sizeof cases / sizeof cases[0])

static int copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
    char buf[1 << 16];
    size_t n;
    int rc = in && out ? 0 : -1;
    while (!rc && (n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) rc = -1;
    if (in) fclose(in);
    if (out && fclose(out)) rc = -1;
    return rc ? rc : chmod(to, 0755);
}

/* Runs case k in a child process; its exit status. */
static int run_case(int k, const char *self, const char *tmp) {
    const test_case *c = &cases[k];
    char exe[PATH_MAX + 64], lib[PATH_MAX + 64], log[PATH_MAX + 64];
    snprintf(exe, sizeof exe, "%s", self);
    snprintf(log, sizeof log, "%s/%s.log", tmp, c->name);
    if (c->elsewhere) { /* tmp/test/<program>, and tmp/libember.so.0 for the shared link */
        char dir[PATH_MAX + 16];
        snprintf(dir, sizeof dir, "%s/test", tmp);
        snprintf(exe, sizeof exe, "%s/test/%s", tmp, strrchr(self, '/') + 1);
        if (mkdir(dir, 0755) || copy_file(self, exe)) return fprintf(stderr, "cannot copy %s\n", self), 1;
#ifdef SHARED_LINK
        char so[PATH_MAX + 64], to[PATH_MAX + 64];
        snprintf(so, sizeof so, "%s/../libember.so.0", exe_dir);
        snprintf(to, sizeof to, "%s/libember.so.0", tmp);
        if (copy_file(so, to)) return fprintf(stderr, "cannot copy %s\n", so), 1;
#endif
    }
    pid_t pid = fork();
    if (pid == 0) {
        unsetenv("EMBER_CUDA_LIBRARY");
        unsetenv("EMBER_STUB_GPUS");
        unsetenv("LD_LIBRARY_PATH");
        if (c->library) {
            if (strncmp(c->library, "libember_stub", 13) == 0) stub_path(lib, sizeof lib, c->library);
            else snprintf(lib, sizeof lib, "%s", c->library);
            setenv("EMBER_CUDA_LIBRARY", lib, 1);
        }
        if (c->gpus) setenv("EMBER_STUB_GPUS", c->gpus, 1);
        setenv("EMBER_STUB_LOG", log, 1);
        execl(exe, exe, c->name, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) < 0) return 1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
#endif

int main(int argc, char **argv) {
    char self[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) return 1;
    self[len] = 0;
    snprintf(exe_dir, sizeof exe_dir, "%.*s", (int)(strrchr(self, '/') - self), self);
#ifdef REAL_PLUGIN
    (void)argc, (void)argv;
    current = "real";
    return case_real();
#else
    if (argc > 1) { /* one case, in this process */
        for (int k = 0; k < NCASES; k++)
            if (!strcmp(argv[1], cases[k].name)) {
                current = cases[k].name;
                cases[k].fn();
                return failures ? 1 : 0;
            }
        fprintf(stderr, "no case %s\n", argv[1]);
        return 2;
    }
    char tmp[] = "/tmp/ember-plugin-XXXXXX";
    if (!mkdtemp(tmp)) return perror("mkdtemp"), 1;
    int failed = 0;
    for (int k = 0; k < NCASES; k++) {
        int rc = run_case(k, self, tmp);
        if (rc) {
            printf("test_plugin (%s): %s: FAILED (exit %d)\n", LINKED, cases[k].name, rc);
            failed++;
        }
    }
    char rm[sizeof tmp + 16];
    snprintf(rm, sizeof rm, "rm -rf %s", tmp);
    if (system(rm)) failed++;
    printf("test_plugin (%s): %d cases, %d failed\n", LINKED, NCASES, failed);
    return failed ? 1 : 0;
#endif
}
