/* The per-op profile (include/ember/core.h, em_profile_*): while it is on,
 * em__kernel adds each kernel's wall time to its op's row, and the graph
 * executor adds each fused pointwise chain's to one row of its own. Off, a
 * kernel pays one relaxed load and a branch. Rows are atomic counters, so
 * threads running ops at once need no lock. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "op.h"

#define FUSED_ROW (EM_OP_BUILTIN_COUNT + EM_OP_REGISTERED_MAX)
#define NROWS (FUSED_ROW + 1)

atomic_bool em__profiling;
static _Atomic int64_t row_ns[NROWS], row_calls[NROWS];
/* A kernel running inside another's (a narrow op's float32 kernel, a cast
 * it needs) counts in the outer one's time only. */
static _Thread_local int depth;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void add(int row, int64_t ns) {
    atomic_fetch_add_explicit(&row_ns[row], ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&row_calls[row], 1, memory_order_relaxed);
}

int em__profile_kernel(const em_call *c, em_tensor *out, int (*kernel)(const em_call *, em_tensor *)) {
    if (depth) return kernel(c, out);
    depth++;
    int64_t start = now_ns();
    int rc = kernel(c, out);
    add(c->def->id, now_ns() - start);
    depth--;
    return rc;
}

int64_t em__profile_clock(void) { return atomic_load_explicit(&em__profiling, memory_order_relaxed) ? now_ns() : 0; }

void em__profile_fused(int64_t start) {
    if (start) add(FUSED_ROW, now_ns() - start);
}

void em_profile_start(void) { atomic_store(&em__profiling, true); }

void em_profile_stop(void) { atomic_store(&em__profiling, false); }

void em_profile_reset(void) {
    for (int r = 0; r < NROWS; r++) {
        atomic_store(&row_ns[r], 0);
        atomic_store(&row_calls[r], 0);
    }
}

static int slower_first(const void *a, const void *b) {
    const em_profile_row *x = a, *y = b;
    if (x->seconds != y->seconds) return x->seconds < y->seconds ? 1 : -1;
    return strcmp(x->op, y->op);
}

/* Every row with a call, slowest first; *n rows, in a block the caller frees (NULL and an error when out of memory). */
static em_profile_row *collect(int *n) {
    int ops = em__op_count();
    em_profile_row *rows = malloc(sizeof *rows * (size_t)(ops + 1));
    if (!rows) {
        em__error("em_profile: out of memory");
        return NULL;
    }
    *n = 0;
    for (int r = 0; r < NROWS; r++) {
        if (r >= ops && r != FUSED_ROW) continue;
        int64_t calls = atomic_load(&row_calls[r]);
        if (!calls) continue;
        rows[(*n)++] = (em_profile_row){r == FUSED_ROW ? "(fused pointwise chain)" : em__op_def((em_op)r)->name,
                                        calls, (double)atomic_load(&row_ns[r]) * 1e-9};
    }
    qsort(rows, (size_t)*n, sizeof *rows, slower_first);
    return rows;
}

int em_profile_rows(em_profile_row *rows, int max) {
    if (max < 0 || (max > 0 && !rows)) {
        em__error("em_profile_rows: rows must hold max (%d) rows", max);
        return -1;
    }
    int n;
    em_profile_row *all = collect(&n);
    if (!all) return -1;
    memcpy(rows, all, sizeof *rows * (size_t)(n < max ? n : max));
    free(all);
    return n;
}

int em_profile_print(FILE *f) {
    if (!f) {
        em__error("em_profile_print: the stream is NULL");
        return -1;
    }
    int n;
    em_profile_row *rows = collect(&n);
    if (!rows) return -1;
    double total = 0;
    for (int r = 0; r < n; r++) total += rows[r].seconds;
    int bad = fprintf(f, "%-32s %10s %12s %12s %7s\n", "op", "calls", "total ms", "us/call", "share") < 0;
    for (int r = 0; r < n && !bad; r++)
        bad = fprintf(f, "%-32s %10lld %12.3f %12.3f %6.1f%%\n", rows[r].op, (long long)rows[r].calls,
                      rows[r].seconds * 1e3, rows[r].seconds * 1e6 / (double)rows[r].calls,
                      total > 0 ? 100 * rows[r].seconds / total : 0.0) < 0;
    if (!bad) bad = fprintf(f, "%-32s %10s %12.3f\n", "(all kernels)", "", total * 1e3) < 0;
    free(rows);
    if (bad || fflush(f)) {
        em__error("em_profile_print: writing the table failed");
        return -1;
    }
    return 0;
}

static void print_at_exit(void) { em_profile_print(stderr); }

__attribute__((constructor)) static void profile_from_environment(void) {
    const char *env = getenv("EMBER_PROFILE");
    if (env && strcmp(env, "1") == 0) {
        em_profile_start();
        atexit(print_at_exit);
    }
}
