/* The op definitions. Every op is one line in its family's file
 * lib/ops/<family>.def, and lib/ops/ops.def lists the families in id order.
 * The preprocessor derives everything else from those lines: the op ids
 * below, each family's table rows (em_opdef_<name>, built by the family's .c
 * file from its own functions), the CUDA plug-in's table of GPU kernels by op
 * id (gpu/plugin.cu, from the same lines; the dispatcher finds an op's GPU
 * kernel there once the plug-in is loaded, lib/gpu.h), and the lists that
 * test/test_ops.c, the fuzzer and ember-bench walk. No generated file is
 * checked in.
 *
 * A line:  EM_OP(ID, name, arity, dtypes, grad, kernel, flags, cost, ...)
 *   ID      the id's suffix: EM_OP_<ID>
 *   name    the op's name (errors, graphs, saved files): stable, never reused
 *   arity   tensor inputs; -1 for any number >= 1
 *   dtypes  the dtype set its kernels accept (EM_DT_<dtypes> below)
 *   grad    GRAD: a gradient rule; NONDIFF: a path through it is an error;
 *           CUT: paths end here silently (stop_gradient)
 *   kernel  GPU: a CPU and a GPU kernel (em_gpu_op_<name> in the plug-in,
 *           gpu/<family>.cu); HOST: one kernel
 *           handling inputs on any device; VIEW: always a view of its input;
 *           VIEW_OR_GPU: a view where strides allow, else the kernels
 *   flags   traits the executor reads: EM_OPF_* below
 *   cost    the graph's work estimate per output element: EM_COST_POINTWISE,
 *           or the family's function of the call
 *   ...     the family's own columns (lib/ops/elementwise.def documents its)
 *
 * The recipe: a new unary elementwise op with a gradient is 5 edits,
 *   1. its line in lib/ops/elementwise.def;
 *   2. its formula in lib/ops/elementwise_math.h (EM_HD: the CPU and CUDA
 *      kernels both call it); a C library function it needs gets its
 *      type-generic em_math_<fn> in lib/fast_math.h, in both lists there (C's
 *      _Generic and CUDA's overloads), as em_math_sin did;
 *   3. its gradient rule in lib/ops/elementwise.c, with Ember's public ops;
 *   4. its declaration in include/ember/ops.h;
 *   5. its rows in test/cases_elementwise.c: a forward case per dtype it
 *      accepts (test/test_ops.c runs them on every device and fails for a
 *      missing one) and a float64 gradient case (test/test_gradcheck.c
 *      fails for a differentiable op without one).
 * A fused *_grad op is an op of its own, with its own 5. Other families have
 * the same five parts; their kernels live in lib/ops/<family>.c and
 * gpu/<family>.cu.
 *
 * Gradient rules are written with Ember's public ops, so they run on every
 * device, are recorded by outer tapes and are traced like any op. Op ids past
 * the built-in ones are handed out at run time (em__op_register). */
#ifndef EMBER_OP_H
#define EMBER_OP_H

#include "dtype_convert.h"
#include "ember.h"


/* Dtype sets: EM_DT_<set> is the bitmask; dtype_convert.h's EM_FOR_<set>(X,
 * ...) calls X for each member. */
#define EM_DT(d) (1u << (d))
#define EM_DT_F32 EM_DT(EM_F32)
#define EM_DT_F64 EM_DT(EM_F64)
#define EM_DT_BOOL EM_DT(EM_BOOL)
#define EM_DT_FLOATS (EM_DT(EM_F32) | EM_DT(EM_F64))
/* Index arguments' dtypes (dtype_convert.h's EM_FOR_INDEX, em_index_at). */
#define EM_DT_INDEX (EM_DT(EM_I32) | EM_DT(EM_I64) | EM_DT(EM_I16) | EM_DT(EM_U16))
/* The integer dtypes an op's kernels compute in where they take int32. */
#define EM_DT_INTEGERS (EM_DT_INDEX | EM_DT(EM_U8) | EM_DT(EM_I8))
#define EM_DT_NUMERIC (EM_DT_FLOATS | EM_DT_INTEGERS)
#define EM_DT_ALL (EM_DT_NUMERIC | EM_DT(EM_BOOL))
#define EM_DT_NARROW (EM_DT(EM_BF16) | EM_DT(EM_F16))
#define EM_DT_EVERY (EM_DT_ALL | EM_DT_NARROW)
/* The sets of an op whose kernels also read and write bfloat16 and float16 themselves. */
#define EM_DT_FLOATS_NARROW (EM_DT_FLOATS | EM_DT_NARROW)
#define EM_DT_NUMERIC_NARROW (EM_DT_NUMERIC | EM_DT_NARROW)

typedef enum em_op {
#define EM_FAMILY(family)
#define EM_OP(ID, ...) EM_OP_##ID,
#include "ops/ops.def"
#undef EM_OP
#undef EM_FAMILY
    EM_OP_BUILTIN_COUNT /* registered ops take the ids from here on */
} em_op;

/* Attributes of one op call. Each op's row says which fields it uses. */
typedef struct em_attrs {
    int64_t i[2 * EM_MAX_DIMS]; /* axes, perm, shape, begin/size, pads, strides ... */
    int ni;
    double f[4];  /* scalars: alpha, clip bounds, mean/stddev ... */
    int dtype;    /* a target dtype (cast, one_hot, random) */
    uint64_t seed, counter; /* random ops: the stream position they draw from */
} em_attrs;

typedef struct em_op_def em_op_def;

/* One call of an op: what the shape rule, kernel and gradient rule see. */
typedef struct em_call {
    const em_op_def *def;
    int n;                  /* number of inputs */
    em_tensor *const *in;
    const em_attrs *a;
    /* Gradient rules only, and only from the tape: NULL, or per input NULL or the gradient accumulated so far
     * for it, which no one else holds. A rule may add its gradient into acc[i] in place (em__run_op_into) and
     * give acc[i] itself as gin[i]: a tensor used twice (a tied embedding) then gets one buffer, not a
     * temporary and a sum. lib/tape.c offers it only when nothing records or traces the backward pass. */
    em_tensor *const *acc;
} em_call;

/* The output's dtype and shape, or -1 after em__op_error. */
typedef int (*em_infer_fn)(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape);
/* Computes out (allocated, contiguous) from the inputs. Shape rules catch every
 * user error first; a kernel fails only when its scratch memory runs out, by
 * reporting it with em__error (the dispatcher then drops the output). */
typedef void (*em_kernel_fn)(const em_call *c, em_tensor *out);
/* For view ops: a header sharing in[0]'s memory (refs = 1), or EM_NOT_A_VIEW
 * when this input cannot be viewed that way (then .cpu computes the output). */
typedef em_tensor *(*em_view_fn)(const em_call *c, int ndim, const int64_t *shape);
/* An op's GPU kernel (gpu/<family>.cu, in the CUDA plug-in; lib/gpu.h): 0, or
 * -1 with an error. Rows do not name it: the plug-in's table, indexed by op
 * id, gives it when the plug-in loads (em__gpu_kernel). */
struct em_gpu_call;
struct em_gpu_tensor;
typedef int (*em_gpu_kernel_fn)(const struct em_gpu_call *c, struct em_gpu_tensor *out);
extern em_tensor em__not_a_view;
#define EM_NOT_A_VIEW (&em__not_a_view)
/* gin[i] = gradient for in[i] (NEW tensors of in[i]'s shape and dtype) given
 * gout, the gradient of out. Only inputs with need[i] must be given one; the
 * others may be left NULL (gin[] arrives all NULL). Returns 0, or -1 with an
 * error. */
typedef int (*em_grad_fn)(const em_call *c, em_tensor *out, em_tensor *gout, const bool *need,
                          em_tensor **gin);

enum em_op_flags {
    EM_OPF_STRIDED = 1u << 0, /* the kernel reads inputs of any strides */
    EM_OPF_NONDIFF = 1u << 1, /* no gradient: a path through it is an error (grad column NONDIFF) */
    EM_OPF_CUT = 1u << 2,     /* stop_gradient: paths end here silently (grad column CUT) */
    EM_OPF_RANDOM = 1u << 3,  /* draws from the random stream */
    EM_OPF_INPLACE = 1u << 4, /* updates a variable input in place: never folded, merged or reordered */
    EM_OPF_CHECKS_VALUES = 1u << 5, /* the shape rule also checks input values (indices, labels): a graph
                                       re-runs it on the fed data before the kernel */
    EM_OPF_ANY_DEVICE = 1u << 6, /* the .cpu kernel handles inputs on any device itself (kernel column HOST) */
    EM_OPF_FUSABLE = 1u << 7,    /* pointwise over one output shape: a graph may run a chain of such ops
                                    block by block through their CPU kernels */
    EM_OPF_COPIES = 1u << 8,     /* copies its input to the device in attribute i[0]: it runs on the target,
                                    and a graph copies host inputs before a captured replay */
    EM_OPF_PROCESS_LOCAL = 1u << 9, /* its attributes hold this process's pointers (callbacks): a saved graph
                                       cannot hold it */
    EM_OPF_AUTOCAST_NARROW = 1u << 10,  /* inside em_autocast_begin(dtype), its float32 inputs are cast to dtype
                                           first: the compute-bound ops (matmul, convolution, attention) */
    EM_OPF_AUTOCAST_FLOAT32 = 1u << 11, /* inside autocast, its bfloat16 and float16 inputs are cast to float32
                                           first: softmax, losses, norms and sums, which need the range and
                                           the precision (and the views of their buffers, which read x too) */
};
/* An elementwise op's flags. */
#define EM_OPF_POINTWISE (EM_OPF_STRIDED | EM_OPF_FUSABLE)

/* The work per output element of a call, for the graph's parallel
 * chunking; EM_COST_POINTWISE (NULL) is a few flops. */
typedef int64_t (*em_cost_fn)(const em_call *c);
#define EM_COST_POINTWISE NULL

struct em_op_def {
    em_op id;
    const char *name;
    int arity;        /* number of tensor inputs, -1 for any number >= 1 */
    unsigned dtypes;  /* EM_DT(dtype) bits of the dtypes its kernels accept */
    unsigned flags;
    em_cost_fn cost;
    em_infer_fn infer;
    em_kernel_fn cpu;     /* NULL for ops that are always views */
    em_view_fn view;      /* NULL for computing ops */
    em_grad_fn grad;      /* NULL only with EM_OPF_NONDIFF or EM_OPF_CUT */
    /* A registered op's GPU kernel, run on the host with contiguous inputs and out on a GPU; NULL for the
     * built-in ops, whose GPU kernels the plug-in gives. */
    em_kernel_fn gpu;
};

/* Every op's row, em_opdef_<name>, defined by its family's .c file. */
#define EM_FAMILY(family)
#define EM_OP(ID, name, ...) extern const em_op_def em_opdef_##name;
#include "ops/ops.def"
#undef EM_OP
#undef EM_FAMILY

/* A family's .c file turns each of its .def lines into its row with this,
 * naming its own functions; the grad and kernel columns pick which of them
 * the row uses (a NONDIFF row's grad_fn, or a VIEW row's cpu_fn, need not
 * exist). */
#define EM_OP_ROW(ID, nm, ar, dt, grad_col, kernel, fl, cost_fn, infer_fn, cpu_fn, view_fn, grad_fn)                 \
    const em_op_def em_opdef_##nm = {.id = EM_OP_##ID,                                                                  \
                                     .name = #nm,                                                                       \
                                     .arity = ar,                                                                       \
                                     .dtypes = EM_DT_##dt,                                                              \
                                     .flags = (fl) | EM_ROW_GRADF_##grad_col | EM_ROW_KERNELF_##kernel,                 \
                                     .cost = cost_fn,                                                                   \
                                     .infer = infer_fn,                                                                 \
                                     .cpu = EM_ROW_CPU_##kernel(cpu_fn),                                                \
                                     .view = EM_ROW_VIEW_##kernel(view_fn),                                             \
                                     .grad = EM_ROW_GRAD_##grad_col(grad_fn)};
#define EM_ROW_GRADF_GRAD 0
#define EM_ROW_GRADF_NONDIFF EM_OPF_NONDIFF
#define EM_ROW_GRADF_CUT EM_OPF_CUT
#define EM_ROW_GRAD_GRAD(fn) fn
#define EM_ROW_GRAD_NONDIFF(fn) NULL
#define EM_ROW_GRAD_CUT(fn) NULL
#define EM_ROW_KERNELF_GPU 0
#define EM_ROW_KERNELF_VIEW_OR_GPU 0
#define EM_ROW_KERNELF_VIEW 0
#define EM_ROW_KERNELF_HOST EM_OPF_ANY_DEVICE
#define EM_ROW_CPU_GPU(fn) fn
#define EM_ROW_CPU_VIEW_OR_GPU(fn) fn
#define EM_ROW_CPU_HOST(fn) fn
#define EM_ROW_CPU_VIEW(fn) NULL
#define EM_ROW_VIEW_GPU(fn) NULL
#define EM_ROW_VIEW_HOST(fn) NULL
#define EM_ROW_VIEW_VIEW(fn) fn
#define EM_ROW_VIEW_VIEW_OR_GPU(fn) fn
/* The GPU kernel is not in the row: the CUDA plug-in gives one per op id
 * when it loads (gpu/plugin.cu builds its table from these .def lines: an
 * entry for each line whose kernel column is GPU or VIEW_OR_GPU). */

/* Ops em_op_register may add beyond the built-in ones. */
#define EM_OP_REGISTERED_MAX 4096
/* The row of op id `op`, built in or registered; NULL for an unknown id. */
const em_op_def *em__op_def(em_op op);
/* The row named `name`, or NULL. */
const em_op_def *em__op_by_name(const char *name);
/* One past the largest op id in use: the built-in ops and those registered so far. */
int em__op_count(void);
/* Gives `def` (kept by the caller for the life of the process) the next op
 * id, setting def->id; -1 with an error when its name is taken or it lacks a
 * shape rule or a CPU kernel. */
int em__op_register(em_op_def *def);
/* Frees a registered op's name for another: em__op_by_name no longer finds
 * it; its id and row stay (tapes and graphs may still name it). */
void em__op_retire(em_op op);
/* Ops registered with em_op_register (lib/ops/custom.c). A call's attributes
 * sit in em_attrs by position (attribute k: its number's bits in i[2k], its
 * string, interned by the registry, in i[2k + 1]); a saved graph stores them
 * by name, as em_op_attrs. */
bool em__op_is_custom(const em_op_def *d);
/* d's attributes in a as em_op_attrs, every declared one in order (strings borrowed from the registry). */
void em__custom_attrs_decode(const em_op_def *d, const em_attrs *a, em_op_attrs *out);
/* em_op_attrs (NULL: all 0) into a, by name; -1 with an error for a name d does not declare. */
int em__custom_attrs_encode(const em_op_def *d, const em_op_attrs *in, em_attrs *a);
/* Whether d has a GPU kernel: its own (registered ops) or the plug-in's. */
bool em__op_has_gpu_kernel(const em_op_def *d);

/* What the layers above the dispatcher do with the ops it runs. Each is set
 * once, at load, by the file that defines it (a constructor), and is NULL
 * when that file is not linked in: the dispatcher never calls the tape, the
 * tracer or placement by name (test/layers.sh checks it). */
typedef struct em_op_hooks {
    /* em__apply when em__placing: places the op, then em__run_op (device.c) */
    em_tensor *(*apply_placed)(em_op op, int n, em_tensor *const *in, const em_attrs *a);
    /* appends the call to the thread's recording tapes: 0, or -1 with an error (tape.c) */
    int (*tape_record)(em_op op, int n, em_tensor *const *in, const em_attrs *a, em_tensor *out);
    /* adds a node for an op just run while tracing: 0, or -1 with an error (lib/graph/trace.c) */
    int (*trace_record)(em_op op, int n, em_tensor *const *in, const em_attrs *a, em_tensor *out);
    /* whether a shape holds a dimension derived from an unknown (-1) dimension
     * of a shape-only trace (lib/graph/trace.c) */
    bool (*trace_symbolic)(int ndim, const int64_t *shape);
    /* pauses (true) and resumes this thread's tapes, nestably (tape.c) */
    void (*tapes_pause)(bool pause);
} em_op_hooks;
extern em_op_hooks em__op_hooks;

/* Runs op on inputs: places it on a device (device.c), validates,
 * allocates, computes, records on open tapes and traces, and returns a NEW
 * tensor in the current scope (NULL with an error). */
em_tensor *em__apply(em_op op, int n, em_tensor *const *in, const em_attrs *a);
/* em__apply once the op is placed: the inputs are non-NULL and on its device. */
em_tensor *em__run_op(em_op op, int n, em_tensor *const *in, const em_attrs *a);

/* Runs op's shape rule and kernel into `out`, an existing contiguous tensor of the output's dtype and shape
 * on the inputs' device, instead of a new one; nothing is recorded on tapes or traces. For gradient rules
 * adding into em_call's acc. 0, or -1 with an error. */
int em__run_op_into(em_op op, int n, em_tensor *const *in, const em_attrs *a, em_tensor *out);

/* Runs c's CPU kernel into out, giving it contiguous copies of strided
 * inputs unless it reads strides itself. 0, or -1 on out of memory. */
int em__run_kernel(const em_call *c, em_tensor *out);

/* c's kernel for out's device (the GPU's, or .cpu), on the inputs as they
 * are. 0, or -1 with an error. */
int em__kernel(const em_call *c, em_tensor *out);
/* The per-op profile (lib/profile.c). em__kernel times a kernel through
 * em__profile_kernel while em__profiling (lib/internal.h) is set; the graph
 * executor times a fused chain from em__profile_clock() (0 while the profile
 * is off) to em__profile_fused. */
int em__profile_kernel(const em_call *c, em_tensor *out, int (*kernel)(const em_call *, em_tensor *));
int64_t em__profile_clock(void);
void em__profile_fused(int64_t start);
/* c's shape rule; an op that checks values reads host copies of GPU inputs. */
int em__infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape);
/* c's shape rule on the inputs as they are (no host copies: shape-only traces, graph plans). */
int em__infer_rule(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape);

/* bfloat16 and float16 where an op's kernels take float32 only (its dtypes lack EM_DT_NARROW): the shape
 * rule sees float32 in their place, and the kernel runs on float32 copies of the narrow inputs, its output
 * rounded back to the narrow dtype (and, for an op updating inputs in place, those inputs too). So every op
 * accepts them where it accepts float32, computing in float32; an op whose kernels read and write them
 * natively, for speed, lists them in its dtypes. The narrow dtype of the call (an input's or the dtype
 * attribute's), or EM_DTYPE_COUNT when the call runs as it is. */
em_dtype em__narrow_call(const em_call *c);

/* Sets the error "<op name>: <message>". Returns -1. */
int em__op_error(const em_call *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Shape helpers for shape rules. */
/* NumPy broadcast of n shapes; -1 and an error naming the op and the shapes. */
int em__broadcast_shapes(const em_call *c, int *ndim, int64_t *shape);
/* Normalises a possibly negative axis for rank ndim; -1 with an error. */
int em__axis(const em_call *c, int axis, int ndim, const char *argname);

/* The bitmask of a reduction's `axes` of x (all axes when naxes is 0; negative ones count from the end), or -1
 * with an error naming op for an axis out of range or repeated (ops/reduce.c). */
int64_t em__axes_mask(const char *op, const em_tensor *x, int naxes, const int *axes);
/* A scalar of x's dtype: how many elements of x a reduction over the axes in
 * the bitmask combines (ops/fill.c). NEW. */
em_tensor *em__count(em_tensor *x, int64_t axes_mask);

/* Batch norm in training mode (ops/batch_norm.c): y, and views of the batch's per-channel mean and biased
 * variance (their gradients cut; for the moving averages). 0, or -1 with an error and all three NULL. NEW. */
int em__batch_norm_train(em_tensor *x, em_tensor *scale, em_tensor *offset, double eps, em_tensor **y,
                         em_tensor **mean, em_tensor **variance);

/* Gradient helpers: sums g down to `shape` (undoing broadcasting). NEW. */
em_tensor *em__sum_to_shape(em_tensor *g, int ndim, const int64_t *shape);

/* ---- random (ops/random.c) ---- */
/* Reserves `n` numbers of this thread's stream: returns the first counter. */
uint64_t em__rng_reserve(uint64_t n);

/* ---- matrix multiply (ops/matmul.c) ---- */
/* C = A B (accumulate: C += A B) for an m x k A and a k x n B, any dtype, each
 * matrix given by its row and column strides in elements. bfloat16 and float16
 * sum in float32 (ops/gemm_narrow.c); float32 and float64 run
 * BLIS (single_thread: one thread, for calls inside em__parallel_for); other
 * dtypes and strides BLIS rejects (zero or negative) run a plain loop. */
void em__gemm(em_dtype dtype, int64_t m, int64_t n, int64_t k, const void *a, int64_t rsa, int64_t csa,
              const void *b, int64_t rsb, int64_t csb, bool accumulate, void *c, int64_t rsc, int64_t csc,
              bool single_thread);
/* Call before the first BLIS call: chooses BLIS's kernels (tensor.c). */
void em__blis_ready(void);

#endif
