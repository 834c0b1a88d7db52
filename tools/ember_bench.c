/* ember-bench: times Ember's ops on the CPU from the command line.
 *
 *   ember-bench matmul 1024x1024x1024 [--dtype f32|f64] [--threads N] [--backward]
 *               [--json] [--png out.png] [--peak GFLOPS] [--time S]
 *   ember-bench matmul 64,128,256,512 --png matmul.png
 *   ember-bench relu 16777216        ember-bench sum 1024x1024 --axis 1
 *   ember-bench conv2d 8x56x56x64,3x3x64x64 --stride 1 --padding same
 *   ember-bench max_pool 8x56x56x64 --ksize 2      ember-bench mlp --backward
 *   ember-bench --load ./libmyops.so myop 4096x4096 --compare gelu
 *
 * --load loads a library whose initializer registers ops (em_op_register):
 * the tool holds and exports all of libember, so the library registers with
 * the Ember it runs. A registered op takes its inputs' sizes in groups of its
 * arity and is rated by bytes (its FLOPs are unknown). --compare times a
 * built-in op on the same inputs after each row and prints the ratio of the
 * medians (JSON: a {"compare": ...} line).
 * Each size is timed with em_bench_run and printed as a table row (or a JSON
 * line). FLOP counts: matmul 2mnk; conv2d 2*N*OH*OW*KH*KW*C*O; pools one per
 * window tap; elementwise ops one per output element; reductions one per input
 * element; softmax five per element; mlp the FLOPs of its matmuls. The
 * backward pass of matmul, conv2d and mlp counts the two gradient products
 * (three times the forward in all); other backward passes report no rate.
 * Bytes are the inputs plus the output, each read or written once.
 * Exit status: 0, 1 when Ember rejects the op or a file cannot be written,
 * 2 for a malformed command line. */
#include <ember.h>

#include "op.h" /* the dtype sets of lib/ops/elementwise.def (built with -Ilib) */

#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USAGE                                                                                          \
    "usage: ember-bench OP SIZES [--dtype f32|f64] [--threads N] [--backward] [--json] [--png FILE]\n" \
    "                   [--peak GFLOPS] [--time S] [--axis A|all] [--stride S|SHxSW]\n"               \
    "                   [--padding same|valid] [--ksize K|KHxKW] [--device /cpu:0|/gpu:0]\n"        \
    "                   [--load LIB.so]... [--compare BUILTIN_OP]\n"

#define MAX_SIZES 64

typedef enum family { F_UNARY, F_BINARY, F_REDUCE, F_SOFTMAX, F_MATMUL, F_CONV, F_POOL, F_MLP, F_CUSTOM } family;

typedef struct op_info {
    const char *name;
    family fam;
    double flops_per_elem; /* elementwise, reductions, softmax */
    em_tensor *(*unary)(em_tensor *);
    em_tensor *(*binary)(em_tensor *, em_tensor *);
    em_tensor *(*reduce)(em_tensor *, int, const int *, bool);
    em_tensor *(*softmax)(em_tensor *, int);
    em_tensor *(*pool)(em_tensor *, const int *, const int *, em_padding);
    unsigned dtypes; /* elementwise: the dtypes it accepts (one without f32 or f64 is not offered) */
    bool no_grad;    /* elementwise: no gradient (--backward does not apply) */
    em_op_handle *custom; /* a registered op (--load): its inputs come in groups of `arity` sizes */
    int arity, nout;
} op_info;

static const op_info ops[] = {
/* The elementwise ops with a unary or binary public function, from their
 * lines in lib/ops/elementwise.def. */
#define EM_OP(ID, name, arity, dtypes, grad, kernel, flags, cost, out, api, fn) \
    BENCH_ROW_##api(arity, name, fn, EM_DT_##dtypes, BENCH_NO_GRAD_##grad)
#define BENCH_ROW_PLAIN(arity, name, fn, dts, nograd) BENCH_PLAIN_##arity(name, fn, dts, nograd)
#define BENCH_ROW_OWN(arity, name, fn, dts, nograd)
#define BENCH_ROW_INTERNAL(arity, name, fn, dts, nograd)
#define BENCH_PLAIN_1(name, fn, dts, nograd) {#name, F_UNARY, 1, .unary = fn, .dtypes = dts, .no_grad = nograd},
#define BENCH_PLAIN_2(name, fn, dts, nograd) {#name, F_BINARY, 1, .binary = fn, .dtypes = dts, .no_grad = nograd},
#define BENCH_PLAIN_3(name, fn, dts, nograd)
#define BENCH_NO_GRAD_GRAD false
#define BENCH_NO_GRAD_NONDIFF true
#define BENCH_NO_GRAD_CUT true
#include "ops/elementwise.def"
#undef EM_OP
#undef BENCH_ROW_PLAIN
#undef BENCH_ROW_OWN
#undef BENCH_ROW_INTERNAL
#undef BENCH_PLAIN_1
#undef BENCH_PLAIN_2
#undef BENCH_PLAIN_3
#undef BENCH_NO_GRAD_GRAD
#undef BENCH_NO_GRAD_NONDIFF
#undef BENCH_NO_GRAD_CUT
    {"sum", F_REDUCE, 1, .reduce = em_sum},
    {"mean", F_REDUCE, 1, .reduce = em_mean},
    {"max", F_REDUCE, 1, .reduce = em_max},
    {"min", F_REDUCE, 1, .reduce = em_min},
    {"prod", F_REDUCE, 1, .reduce = em_prod},
    {"log_sum_exp", F_REDUCE, 4, .reduce = em_log_sum_exp},
    {"softmax", F_SOFTMAX, 5, .softmax = em_softmax},
    {"log_softmax", F_SOFTMAX, 5, .softmax = em_log_softmax},
    {.name = "matmul", .fam = F_MATMUL},
    {.name = "conv2d", .fam = F_CONV},
    {"max_pool", F_POOL, 0, .pool = em_max_pool},
    {"avg_pool", F_POOL, 0, .pool = em_avg_pool},
    {.name = "mlp", .fam = F_MLP},
};
#define NOPS ((int)(sizeof ops / sizeof ops[0]))

/* Whether ember-bench offers the op: it times f32 and f64 only. */
static bool offered(const op_info *op) {
    return !op->dtypes || (op->dtypes & (EM_DT(EM_F32) | EM_DT(EM_F64)));
}

typedef struct opts {
    const op_info *op;
    const op_info *compare; /* --compare: a built-in op timed on the same inputs */
    em_shape sizes[MAX_SIZES];
    int nsizes;
    em_dtype dtype;
    int threads;
    bool backward, json;
    const char *png;
    double peak; /* < 0: measure */
    double time_s;
    bool axis_set, axis_all;
    int axis;
    int stride[2], ksize[2];
    bool stride_set, padding_set, ksize_set;
    em_padding padding;
    const char *device; /* "/cpu:0" unless --device */
} opts;

/* Prints the message and the usage line; the caller exits with status 2. */
static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("ember-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n" USAGE, stderr);
    return 2;
}

/* "ops: add sub ...", from the table. */
static const char *op_list(void) {
    static char buf[1024];
    size_t len = (size_t)snprintf(buf, sizeof buf, "ops:");
    for (int i = 0; i < NOPS && len < sizeof buf; i++)
        if (offered(&ops[i])) len += (size_t)snprintf(buf + len, sizeof buf - len, " %s", ops[i].name);
    return buf;
}

/* A positive int64 from the whole of [s, end); false if anything else. */
static bool parse_dim(const char *s, const char *end, int64_t *out) {
    if (s == end || *s < '0' || *s > '9') return false;
    int64_t v = 0;
    for (const char *p = s; p < end; p++) {
        if (*p < '0' || *p > '9' || v > (INT64_C(1) << 40)) return false;
        v = v * 10 + (*p - '0');
    }
    *out = v;
    return v > 0;
}

/* "1024x1024" (dims >= 1, 'x' between) from [s, end). */
static bool parse_shape(const char *s, const char *end, em_shape *out) {
    out->ndim = 0;
    for (;;) {
        const char *x = s;
        while (x < end && *x != 'x') x++;
        if (out->ndim == EM_MAX_DIMS || !parse_dim(s, x, &out->dims[out->ndim])) return false;
        out->ndim++;
        if (x == end) return true;
        s = x + 1;
    }
}

/* Appends the comma-separated shapes of arg to o->sizes. */
static int parse_sizes(opts *o, const char *arg) {
    const char *s = arg;
    for (;;) {
        const char *comma = strchr(s, ',');
        const char *end = comma ? comma : s + strlen(s);
        if (o->nsizes == MAX_SIZES) return usage_error("at most %d sizes in one call", MAX_SIZES);
        if (!parse_shape(s, end, &o->sizes[o->nsizes]))
            return usage_error("malformed size '%.*s' in '%s': expected positive dims joined by 'x', "
                               "e.g. 1024 or 1024x1024",
                               (int)(end - s), s, arg);
        o->nsizes++;
        if (!comma) return 0;
        s = comma + 1;
    }
}

/* "2" or "2x3" into two ints. */
static bool parse_pair(const char *arg, int *pair) {
    em_shape s;
    if (!parse_shape(arg, arg + strlen(arg), &s) || s.ndim > 2 || s.dims[0] > 65536 || s.dims[s.ndim - 1] > 65536)
        return false;
    pair[0] = (int)s.dims[0];
    pair[1] = (int)s.dims[s.ndim - 1];
    return true;
}

static bool parse_double(const char *arg, double *out) {
    char *end;
    errno = 0;
    *out = strtod(arg, &end);
    return *arg && !*end && !errno && isfinite(*out);
}

static bool parse_int(const char *arg, long lo, long hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(arg, &end, 10);
    if (!*arg || *end || errno || v < lo || v > hi) return false;
    *out = (int)v;
    return true;
}

/* Checks the sizes against the op family: shape ranks and conv pairs. */
static int check_sizes(const opts *o) {
    const char *name = o->op->name;
    if (o->nsizes == 0 && o->op->fam != F_MLP)
        return usage_error("%s needs at least one size, e.g. 'ember-bench %s %s'", name, name,
                           o->op->fam == F_MATMUL ? "512" : o->op->fam == F_CONV ? "8x32x32x16,3x3x16x32"
                                                        : o->op->fam == F_POOL ? "8x32x32x16"
                                                                               : "1048576");
    for (int i = 0; i < o->nsizes; i++) {
        int nd = o->sizes[i].ndim;
        if (o->op->fam == F_MATMUL && nd != 1 && nd != 3)
            return usage_error("matmul sizes are N (square) or MxNxK ([M,K] x [K,N]); got %d dims", nd);
        if ((o->op->fam == F_CONV || o->op->fam == F_POOL) && nd != 4)
            return usage_error("%s shapes have 4 dims (%s); got %d dims", name,
                               o->op->fam == F_CONV && i % 2 ? "filter KHxKWxCxO" : "input NxHxWxC", nd);
        if (o->op->fam == F_MLP && nd != 1) return usage_error("mlp sizes are batch sizes, e.g. 100; got %d dims", nd);
    }
    if (o->op->fam == F_CONV && o->nsizes % 2)
        return usage_error("conv2d sizes come in pairs: input NxHxWxC,filter KHxKWxCxO");
    if (o->op->fam == F_CUSTOM && o->nsizes % o->op->arity)
        return usage_error("%s takes %d inputs: give their sizes in groups of %d, e.g. 64x128,128", name,
                           o->op->arity, o->op->arity);
    return 0;
}

/* Rejects options that the op does not read. */
static int check_options(const opts *o) {
    family f = o->op->fam;
    if (o->axis_set && f != F_REDUCE && f != F_SOFTMAX)
        return usage_error("--axis applies to reductions and softmax, not %s", o->op->name);
    if (o->axis_set && o->axis_all && f == F_SOFTMAX) return usage_error("softmax needs one axis, not 'all'");
    if ((o->stride_set || o->padding_set) && f != F_CONV && f != F_POOL)
        return usage_error("--stride and --padding apply to conv2d and pools, not %s", o->op->name);
    if (o->ksize_set && f != F_POOL) return usage_error("--ksize applies to max_pool and avg_pool, not %s", o->op->name);
    if (o->backward && o->op->no_grad) return usage_error("%s has no gradient: --backward does not apply", o->op->name);
    if (o->compare && (o->compare->fam == F_MLP || o->compare->fam == F_MATMUL || o->compare->fam == F_CONV))
        return usage_error("--compare takes an elementwise op, a reduction, softmax or a pool, not %s",
                           o->compare->name);
    if (o->compare && o->compare->fam == F_BINARY && o->op->fam == F_CUSTOM && o->op->arity < 2)
        return usage_error("--compare %s needs two inputs; %s takes %d", o->compare->name, o->op->name, o->op->arity);
    return 0;
}

/* The built-in op named `name`, or NULL. */
static const op_info *builtin_op(const char *name) {
    for (int i = 0; i < NOPS; i++)
        if (offered(&ops[i]) && !strcmp(name, ops[i].name)) return &ops[i];
    return NULL;
}

/* Loads each --load library (RTLD_GLOBAL: it registers ops with this program's Ember, whose symbols the
 * program exports); exits with 1 when one cannot be loaded. */
static void load_libraries(int argc, char **argv) {
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--load")) continue;
        if (!dlopen(argv[i + 1], RTLD_NOW | RTLD_GLOBAL)) {
            fprintf(stderr, "ember-bench: --load %s: %s\n", argv[i + 1], dlerror());
            exit(1);
        }
        if (em_last_error()) { /* an initializer's registration failed */
            fprintf(stderr, "ember-bench: --load %s: %s\n", argv[i + 1], em_last_error());
            exit(1);
        }
        i++;
    }
}

static int parse_args(int argc, char **argv, opts *o) {
    static op_info custom;
    *o = (opts){.dtype = EM_F32, .peak = -1, .time_s = 1.0, .axis_all = true, .axis = -1,
                .stride = {1, 1}, .ksize = {2, 2}, .padding = EM_PAD_SAME, .device = "/cpu:0"};
    int first = 1; /* the op: after the leading --load LIB pairs */
    while (first + 1 < argc && !strcmp(argv[first], "--load")) first += 2;
    if (argc < first + 1 || argv[first][0] == '-') return usage_error("no op given; %s", op_list());
    o->op = builtin_op(argv[first]);
    em_op_handle *h = o->op ? NULL : em_op_find(argv[first]);
    if (h) {
        const em_custom_op *def = em_op_definition(h);
        custom = (op_info){.name = def->name, .fam = F_CUSTOM, .custom = h, .arity = def->arity < 1 ? 1 : def->arity,
                           .nout = def->nout, .no_grad = (def->flags & EM_CUSTOM_NO_GRADIENT) != 0};
        o->op = &custom;
    }
    if (!o->op) return usage_error("unknown op '%s'; %s (or an op registered by a --load library)", argv[first], op_list());
    for (int i = first + 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2)) {
            if (parse_sizes(o, a)) return 2;
            continue;
        }
        char key[32];
        const char *val = NULL, *eq = strchr(a, '=');
        snprintf(key, sizeof key, "%.*s", eq ? (int)(eq - a) : (int)strlen(a), a);
        bool flag = !strcmp(key, "--backward") || !strcmp(key, "--json");
        if (flag) {
            if (eq) return usage_error("%s takes no value", key);
            if (!strcmp(key, "--backward")) o->backward = true;
            else o->json = true;
            continue;
        }
        static const char *const valued[] = {"--dtype",  "--threads", "--png",    "--peak",   "--time", "--axis",
                                             "--stride", "--ksize",   "--padding", "--device", "--load", "--compare"};
        bool known = false;
        for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++) known = known || !strcmp(key, valued[k]);
        if (!known) return usage_error("unknown option '%s'", key);
        if (eq) val = eq + 1;
        else if (i + 1 < argc) val = argv[++i];
        else return usage_error("%s needs a value", key);
        if (!strcmp(key, "--dtype")) {
            if (!strcmp(val, "f32") || !strcmp(val, "float32")) o->dtype = EM_F32;
            else if (!strcmp(val, "f64") || !strcmp(val, "float64")) o->dtype = EM_F64;
            else return usage_error("--dtype must be f32 or f64, got '%s'", val);
        } else if (!strcmp(key, "--device")) {
            o->device = val;
        } else if (!strcmp(key, "--load")) {
            /* loaded before the op was looked up (load_libraries) */
        } else if (!strcmp(key, "--compare")) {
            if (!(o->compare = builtin_op(val))) return usage_error("--compare: unknown built-in op '%s'; %s", val, op_list());
        } else if (!strcmp(key, "--threads")) {
            if (!parse_int(val, 1, 4096, &o->threads)) return usage_error("--threads must be 1..4096, got '%s'", val);
        } else if (!strcmp(key, "--png")) {
            o->png = val;
        } else if (!strcmp(key, "--peak")) {
            if (!parse_double(val, &o->peak) || o->peak < 0)
                return usage_error("--peak must be GFLOP/s >= 0 (0: no %% of peak), got '%s'", val);
        } else if (!strcmp(key, "--time")) {
            if (!parse_double(val, &o->time_s) || o->time_s <= 0 || o->time_s > 3600)
                return usage_error("--time must be seconds in (0, 3600], got '%s'", val);
        } else if (!strcmp(key, "--axis")) {
            o->axis_set = true;
            o->axis_all = !strcmp(val, "all");
            if (!o->axis_all && !parse_int(val, -EM_MAX_DIMS, EM_MAX_DIMS - 1, &o->axis))
                return usage_error("--axis must be an integer in [-%d, %d] or 'all', got '%s'", EM_MAX_DIMS,
                                   EM_MAX_DIMS - 1, val);
        } else if (!strcmp(key, "--stride")) {
            o->stride_set = true;
            if (!parse_pair(val, o->stride)) return usage_error("--stride must be S or SHxSW, got '%s'", val);
        } else if (!strcmp(key, "--ksize")) {
            o->ksize_set = true;
            if (!parse_pair(val, o->ksize)) return usage_error("--ksize must be K or KHxKW, got '%s'", val);
        } else if (!strcmp(key, "--padding")) {
            o->padding_set = true;
            if (!strcmp(val, "same")) o->padding = EM_PAD_SAME;
            else if (!strcmp(val, "valid")) o->padding = EM_PAD_VALID;
            else return usage_error("--padding must be same or valid, got '%s'", val);
        }
    }
    if (o->op->fam == F_POOL) {
        if (!o->stride_set) memcpy(o->stride, o->ksize, sizeof o->stride); /* windows tile the input */
        if (!o->padding_set) o->padding = EM_PAD_VALID;
    }
    if (o->op->fam == F_SOFTMAX && !o->axis_set) o->axis_all = false; /* softmax default: the last axis */
    if (o->op->fam == F_MLP && o->nsizes == 0) o->sizes[o->nsizes++] = EM_SHAPE(100);
    int rc = check_sizes(o);
    return rc ? rc : check_options(o);
}

/* ---- one benchmark case: inputs, the timed passes, FLOPs ---- */

typedef enum pass_kind { PASS_FWD, PASS_BWD, PASS_STEP } pass_kind;
static const char *const pass_names[] = {"forward", "forward+backward", "step"};

typedef struct bench_case {
    const opts *o;
    em_tensor *in[4]; /* differentiable inputs (kept); mlp: its variables */
    int nin;
    em_tensor *x, *labels; /* mlp batch */
    em_optimizer *adam;
    char shape[128];
    double xsize;      /* the size axis of the plot */
    double fwd_flops;  /* matmul FLOPs of one forward pass */
} bench_case;

/* The MNIST MLP 784-500-10 (ReLU, dropout 0.9) loss, as bench/mlp.c. */
static em_tensor *mlp_loss(const bench_case *bc) {
    em_tensor *h = em_dropout(em_relu(em_add(em_matmul(bc->x, bc->in[0]), bc->in[1])), 0.9);
    em_tensor *logits = em_add(em_matmul(h, bc->in[2]), bc->in[3]);
    return em_mean(em_sparse_softmax_cross_entropy_with_logits(bc->labels, logits), EM_ALL_AXES, false);
}

static em_tensor *forward(const bench_case *bc) {
    const opts *o = bc->o;
    const op_info *op = o->op;
    switch (op->fam) {
    case F_UNARY: return op->unary(bc->in[0]);
    case F_BINARY: return op->binary(bc->in[0], bc->in[1]);
    case F_REDUCE: return o->axis_all ? op->reduce(bc->in[0], EM_ALL_AXES, false) : op->reduce(bc->in[0], 1, &o->axis, false);
    case F_SOFTMAX: return op->softmax(bc->in[0], o->axis);
    case F_MATMUL: return em_matmul(bc->in[0], bc->in[1]);
    case F_CONV: return em_conv2d(bc->in[0], bc->in[1], o->stride, o->padding, NULL);
    case F_POOL: return op->pool(bc->in[0], o->ksize, o->stride, o->padding);
    case F_MLP: return mlp_loss(bc);
    case F_CUSTOM: {
        em_tensor *outs[16] = {0};
        if (op->nout > 16 || em_op_call(op->custom, bc->nin, bc->in, NULL, op->nout, outs)) return NULL;
        return outs[0];
    }
    }
    return NULL;
}

/* One call of a pass in its own scope, so its tensors are freed each time. */
static int run_pass(bench_case *bc, pass_kind pass) {
    em_scope_begin();
    em_tape *tape = pass == PASS_FWD ? NULL : em_tape_begin(false);
    em_tensor *y = forward(bc);
    int rc = y ? 0 : -1;
    if (tape) {
        em_tape_stop(tape);
        em_tensor *grads[4];
        if (rc == 0)
            rc = pass == PASS_STEP ? em_minimize(bc->adam, tape, y, bc->nin, bc->in)
                                   : em_gradients(tape, y, bc->nin, bc->in, grads);
        em_tape_release(tape);
    }
    em_scope_end();
    return rc;
}

typedef struct timed_pass {
    bench_case *bc;
    pass_kind pass;
} timed_pass;

/* A GPU pass is timed to its end: its ops run asynchronously. */
static void timed_fn(void *ctx) {
    timed_pass *t = ctx;
    run_pass(t->bc, t->pass);
    em_device_sync(t->bc->o->device);
}

static em_tensor *input(em_dtype dtype, em_shape shape) {
    return em_keep(em_random_uniform(dtype, shape, 0.5, 1.5));
}

static void shape_text(em_shape s, char *buf, size_t size) {
    size_t len = 0;
    buf[0] = '\0';
    for (int d = 0; d < s.ndim && len < size; d++)
        len += (size_t)snprintf(buf + len, size - len, d ? "x%lld" : "%lld", (long long)s.dims[d]);
}

/* Creates the inputs of sizes[i] (conv: sizes[2i], sizes[2i+1]). */
static int setup(bench_case *bc, const opts *o, int i) {
    *bc = (bench_case){.o = o};
    const em_shape *s = &o->sizes[i];
    em_dtype dt = o->dtype;
    char a[64], b[64];
    shape_text(s[0], a, sizeof a);
    snprintf(bc->shape, sizeof bc->shape, "%s", a);
    bc->xsize = (double)em_shape_numel(s[0]);
    switch (o->op->fam) {
    case F_UNARY:
    case F_REDUCE:
    case F_SOFTMAX:
    case F_POOL:
        bc->in[bc->nin++] = input(dt, s[0]);
        break;
    case F_BINARY:
        bc->in[bc->nin++] = input(dt, s[0]);
        bc->in[bc->nin++] = input(dt, s[0]);
        break;
    case F_CUSTOM: {
        size_t len = 0;
        for (int k = 0; k < o->op->arity && k < 4; k++) {
            shape_text(s[k], a, sizeof a);
            len += (size_t)snprintf(bc->shape + len, sizeof bc->shape - len, k ? ",%s" : "%s", a);
            bc->in[bc->nin++] = input(dt, s[k]);
        }
        break;
    }
    case F_MATMUL: {
        int64_t m = s->dims[0], n = s->ndim == 3 ? s->dims[1] : m, k = s->ndim == 3 ? s->dims[2] : m;
        snprintf(bc->shape, sizeof bc->shape, "%lldx%lldx%lld", (long long)m, (long long)n, (long long)k);
        bc->xsize = cbrt((double)m * (double)n * (double)k);
        bc->in[bc->nin++] = input(dt, EM_SHAPE(m, k));
        bc->in[bc->nin++] = input(dt, EM_SHAPE(k, n));
        bc->fwd_flops = 2.0 * (double)m * (double)n * (double)k;
        break;
    }
    case F_CONV:
        shape_text(s[1], b, sizeof b);
        snprintf(bc->shape, sizeof bc->shape, "%s,%s", a, b);
        bc->in[bc->nin++] = input(dt, s[0]);
        bc->in[bc->nin++] = input(dt, s[1]);
        break;
    case F_MLP: {
        int64_t batch = s->dims[0];
        snprintf(bc->shape, sizeof bc->shape, "%lldx784-500-10", (long long)batch);
        bc->xsize = (double)batch;
        em_set_seed(0);
        char name[4][64];
        static const char *const vn[4] = {"w1", "b1", "w2", "b2"};
        for (int v = 0; v < 4; v++) snprintf(name[v], sizeof name[v], "ember_bench/mlp%lld/%s", (long long)batch, vn[v]);
        bc->in[0] = em_get_variable(name[0], dt, EM_SHAPE(784, 500), EM_INIT_TRUNC_NORMAL(0, 0.1));
        bc->in[1] = em_get_variable(name[1], dt, EM_SHAPE(500), EM_INIT_CONST(0.1));
        bc->in[2] = em_get_variable(name[2], dt, EM_SHAPE(500, 10), EM_INIT_TRUNC_NORMAL(0, 0.1));
        bc->in[3] = em_get_variable(name[3], dt, EM_SHAPE(10), EM_INIT_CONST(0.1));
        bc->nin = 4;
        bc->x = em_keep(em_random_uniform(dt, EM_SHAPE(batch, 784), 0, 1));
        bc->labels = em_keep(em_cast(em_random_uniform(EM_F64, EM_SHAPE(batch), 0, 10), EM_I64)); /* classes 0..9 */
        bc->adam = em_adam(1e-3, 0.9, 0.999, 1e-8);
        bc->fwd_flops = 2.0 * (double)batch * (784.0 * 500 + 500.0 * 10);
        break;
    }
    }
    for (int k = 0; k < bc->nin; k++)
        if (!bc->in[k]) return -1;
    return o->op->fam == F_MLP && (!bc->x || !bc->labels || !bc->adam) ? -1 : 0;
}

static void teardown(bench_case *bc) {
    if (bc->o->op->fam == F_MLP) {
        em_optimizer_release(bc->adam);
        em_release(bc->x);
        em_release(bc->labels);
        em_variables_release();
    } else {
        for (int k = 0; k < bc->nin; k++) em_release(bc->in[k]);
    }
}

/* FLOPs and bytes of one call of `pass`, from the forward output's shape. */
static void work(const bench_case *bc, pass_kind pass, em_tensor *y, double *flops, double *bytes) {
    const opts *o = bc->o;
    double esize = (double)em_dtype_size(o->dtype), in_elems = 0, out_elems = (double)em_numel(y);
    double out_esize = (double)em_dtype_size(em_tensor_dtype(y)); /* comparisons give bool */
    for (int k = 0; k < bc->nin; k++) in_elems += (double)em_numel(bc->in[k]);
    *bytes = 0;
    *flops = 0;
    switch (o->op->fam) {
    case F_UNARY:
    case F_BINARY: *flops = o->op->flops_per_elem * out_elems; break;
    case F_REDUCE:
    case F_SOFTMAX: *flops = o->op->flops_per_elem * in_elems; break;
    case F_MATMUL:
    case F_MLP: *flops = bc->fwd_flops; break;
    case F_CONV: {
        em_shape f = em_tensor_shape(bc->in[1]); /* [KH,KW,C,O]: 2*C*KH*KW FLOPs per output element */
        *flops = 2.0 * out_elems * (double)f.dims[0] * (double)f.dims[1] * (double)f.dims[2];
        break;
    }
    case F_POOL: *flops = out_elems * o->ksize[0] * o->ksize[1]; break;
    case F_CUSTOM: break; /* its FLOPs are unknown: rated by bytes */
    }
    if (pass == PASS_FWD) {
        if (o->op->fam != F_MLP) *bytes = in_elems * esize + out_elems * out_esize;
        return;
    }
    family f = o->op->fam;
    if (f == F_MATMUL || f == F_CONV) *flops *= 3;
    else if (f == F_MLP) /* no gradient for the batch: dW1 = x'dh, dh = dlogits W2', dW2 = h'dlogits */
        *flops = bc->fwd_flops + 2.0 * (double)em_dim(bc->x, 0) * (784.0 * 500 + 2 * 500.0 * 10);
    else *flops = 0;
}

/* ---- output ---- */

static void print_header(const opts *o, int threads, double peak) {
    if (o->json) return;
    printf("# ember-bench: %s, %d thread%s, peak %s", em_dtype_name(o->dtype), threads, threads == 1 ? "" : "s",
           peak > 0 ? "" : "unknown");
    if (peak > 0) printf("%.1f GFLOP/s (%s)", peak, o->peak > 0 ? "given" : "measured FMA loop");
    printf("\n%-12s %-26s %-5s %3s %-16s %11s %11s %11s %9s %8s %6s\n", "op", "shape", "dtype", "thr", "pass",
           "min(us)", "median(us)", "max(us)", "GFLOP/s", "GB/s", "%peak");
}

static void print_row(const opts *o, const bench_case *bc, pass_kind pass, const em_bench_result *r) {
    const char *dt = o->dtype == EM_F32 ? "f32" : "f64";
    if (o->json) {
        printf("{\"op\":\"%s\",\"shape\":\"%s\",\"dtype\":\"%s\",\"threads\":%d,\"pass\":\"%s\",\"device\":\"%s\","
               "\"samples\":%d,\"calls\":%lld,\"min_us\":%.4f,\"median_us\":%.4f,\"max_us\":%.4f,\"mean_us\":%.4f,"
               "\"p25_us\":%.4f,\"p75_us\":%.4f,\"rel_spread\":%.5f,\"converged\":%s,\"flops\":%.0f,\"bytes\":%.0f",
               o->op->name, bc->shape, dt, r->threads, pass_names[pass], r->device, r->samples, (long long)r->calls,
               r->min_s * 1e6, r->median_s * 1e6, r->max_s * 1e6, r->mean_s * 1e6, r->p25_s * 1e6, r->p75_s * 1e6,
               r->rel_spread, r->converged ? "true" : "false", r->flops, r->bytes);
#define JSON_RATE(key, known, v) known ? printf(",\"" key "\":%.4f", v) : printf(",\"" key "\":null")
        JSON_RATE("gflops", r->flops > 0, r->gflops);
        JSON_RATE("gbps", r->bytes > 0, r->gbps);
        JSON_RATE("peak_gflops", r->peak_gflops > 0, r->peak_gflops);
        JSON_RATE("pct_peak", r->flops > 0 && r->peak_gflops > 0, r->pct_peak);
#undef JSON_RATE
        printf("}\n");
    } else {
        static const char *const short_pass[] = {"fwd", "fwd+bwd", "step"};
        char g[16] = "-", b[16] = "-", p[16] = "-";
        if (r->flops > 0) snprintf(g, sizeof g, "%.2f", r->gflops);
        if (r->bytes > 0) snprintf(b, sizeof b, "%.2f", r->gbps);
        if (r->flops > 0 && r->peak_gflops > 0) snprintf(p, sizeof p, "%.1f", r->pct_peak);
        printf("%-12s %-26s %-5s %3d %-16s %11.2f %11.2f %11.2f %9s %8s %6s\n", o->op->name, bc->shape, dt,
               r->threads, short_pass[pass], r->min_s * 1e6, r->median_s * 1e6, r->max_s * 1e6, g, b, p);
    }
    fflush(stdout);
}

/* GFLOP/s against size, one line per pass whose FLOPs are known; sizes that
 * span more than two decades go on a log10 axis. */
static int write_png(const opts *o, int n, double *x, double gflops[][MAX_SIZES], const pass_kind *passes,
                     const bool *known, int npasses) {
    double lo = x[0], hi = x[0];
    for (int i = 1; i < n; i++) lo = fmin(lo, x[i]), hi = fmax(hi, x[i]);
    bool logx = hi > 100 * lo;
    for (int i = 0; logx && i < n; i++) x[i] = log10(x[i]);
    em_series series[3];
    int ns = 0;
    for (int p = 0; p < npasses; p++)
        if (known[p]) series[ns++] = (em_series){.label = pass_names[passes[p]], .x = x, .y = gflops[p], .n = n};
    char title[96], xlabel[64];
    snprintf(title, sizeof title, "ember-bench %s (%s, %d threads)", o->op->name, em_dtype_name(o->dtype),
             em_num_threads());
    snprintf(xlabel, sizeof xlabel, logx ? "log10(%s)" : "%s",
             o->op->fam == F_MATMUL ? "cube root of m*n*k" : o->op->fam == F_MLP ? "batch size" : "input elements");
    return em_plot_png(o->png, title, xlabel, "GFLOP/s", ns, series, 800, 500);
}

static int fail(const char *what, const char *shape) {
    fprintf(stderr, "ember-bench: %s %s: %s\n", what, shape, em_last_error() ? em_last_error() : "failed");
    return 1;
}

/* Times the --compare op on bc's inputs for the same pass and prints its row and the ratio of the medians. */
static int compare(const opts *oc, const bench_case *bc, pass_kind pass, em_bench_config *cfg,
                   const em_bench_result *mine) {
    bench_case cb = *bc;
    cb.o = oc;
    cb.nin = oc->op->fam == F_BINARY ? 2 : 1;
    em_scope_begin();
    em_tensor *y = forward(&cb);
    int rc = y ? 0 : fail(oc->op->name, bc->shape);
    timed_pass tp = {&cb, pass};
    em_bench_result r;
    if (!rc) work(&cb, pass, y, &cfg->flops, &cfg->bytes);
    if (!rc && (run_pass(&cb, pass) || em_bench_run(oc->op->name, timed_fn, &tp, cfg, &r)))
        rc = fail(oc->op->name, bc->shape);
    em_scope_end();
    if (rc) return rc;
    snprintf(r.device, sizeof r.device, "%s", em_device_current());
    print_row(oc, &cb, pass, &r);
    double ratio = r.median_s / mine->median_s; /* > 1: the first op is faster */
    if (oc->json)
        printf("{\"compare\":\"%s\",\"op\":\"%s\",\"shape\":\"%s\",\"pass\":\"%s\",\"ratio\":%.4f}\n",
               oc->op->name, mine->name, bc->shape, pass_names[pass], ratio);
    else
        printf("# %s / %s median time: %.3fx (%s is %s)\n", oc->op->name, mine->name, ratio, mine->name,
               ratio >= 1 ? "faster" : "slower");
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf(USAGE "%s\nSIZES: comma-separated shapes, dims joined by 'x': elementwise, reductions, softmax\n"
               "and pools take the input shape (pools NxHxWxC); matmul N or MxNxK; conv2d pairs\n"
               "NxHxWxC,KHxKWxCxO; mlp batch sizes (default 100).\n", op_list());
        return 0;
    }
    load_libraries(argc, argv);
    opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc;
    if (o.threads) em_set_num_threads(o.threads);
    if (em_device_begin(o.device)) return fail("--device", o.device);
    int threads = em_num_threads();
    bool gpu = strncmp(em_device_current(), "/gpu", 4) == 0;
    double peak = o.peak >= 0 ? o.peak : gpu ? 0 : em_bench_cpu_peak_gflops(o.dtype, threads);
    if (peak < 0) return fail("peak estimate", "");

    pass_kind passes[3];
    int npasses = 0;
    if (o.op->fam == F_MLP) {
        if (o.backward) passes[npasses++] = PASS_FWD, passes[npasses++] = PASS_BWD;
        passes[npasses++] = PASS_STEP;
    } else {
        passes[npasses++] = PASS_FWD;
        if (o.backward) passes[npasses++] = PASS_BWD;
    }
    em_bench_config cfg = em_bench_defaults();
    cfg.max_time_s = o.time_s;
    cfg.min_time_s = o.time_s / 4;
    cfg.warmup_s = fmin(cfg.warmup_s, o.time_s / 4);
    cfg.peak_gflops = peak;

    print_header(&o, threads, peak);
    int per_case = o.op->fam == F_CONV ? 2 : o.op->fam == F_CUSTOM ? o.op->arity : 1;
    int ncases = o.nsizes / per_case;
    opts oc = o; /* --compare: the built-in op on the same inputs */
    oc.op = o.compare;
    double xs[MAX_SIZES], gflops[3][MAX_SIZES];
    bool known[3] = {true, true, true}; /* FLOPs known for every size of the pass */
    for (int i = 0; i < ncases && rc == 0; i++) {
        bench_case bc;
        int setup_rc = setup(&bc, &o, per_case * i);
        if (setup_rc) rc = fail(o.op->name, bc.shape);
        em_scope_begin();
        em_tensor *y = setup_rc ? NULL : forward(&bc);
        if (!setup_rc && !y) rc = fail(o.op->name, bc.shape);
        xs[i] = bc.xsize;
        for (int p = 0; p < npasses && rc == 0; p++) {
            timed_pass tp = {&bc, passes[p]};
            em_bench_result r;
            work(&bc, passes[p], y, &cfg.flops, &cfg.bytes);
            if (run_pass(&bc, passes[p]) || em_bench_run(o.op->name, timed_fn, &tp, &cfg, &r)) {
                rc = fail(o.op->name, bc.shape);
                break;
            }
            snprintf(r.device, sizeof r.device, "%s", em_device_current());
            print_row(&o, &bc, passes[p], &r);
            gflops[p][i] = r.gflops;
            known[p] = known[p] && r.flops > 0;
            if (o.compare) rc = compare(&oc, &bc, passes[p], &cfg, &r);
        }
        em_scope_end();
        teardown(&bc);
    }
    if (rc == 0 && o.png && write_png(&o, ncases, xs, gflops, passes, known, npasses)) rc = fail("--png", o.png);
    em_shutdown();
    return rc;
}
