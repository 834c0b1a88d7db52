/* The op table. An op is an enum value plus one row in its family's file
 * (lib/ops/<family>.c): name, arity, shape rule, CPU kernel, gradient rule.
 * Gradient rules are written with Ember's public ops, so they run on every
 * device, are recorded by outer tapes and are traced like any op.
 *
 * Adding an op: an enum value in its family's range below, and a row in the
 * family's table. The family's table is sized by this range and a static
 * assertion beside it checks that no trailing row is missing; test/test_ops.c
 * checks that every row is complete and test/test_gradcheck.c that every
 * differentiable op passes the float64 gradient check. */
#ifndef EMBER_OP_H
#define EMBER_OP_H

#include "ember.h"

typedef enum em_op {
    /* ops/elementwise.c */
    EM_OPS_ELEMENTWISE_BEGIN = 0,
    EM_OP_ADD = EM_OPS_ELEMENTWISE_BEGIN,
    EM_OP_SUB,
    EM_OP_MUL,
    EM_OP_DIV,
    EM_OP_POW,
    EM_OP_MAXIMUM,
    EM_OP_MINIMUM,
    EM_OP_NEG,
    EM_OP_ABS,
    EM_OP_SQUARE,
    EM_OP_SIGN,
    EM_OP_SQRT,
    EM_OP_RSQRT,
    EM_OP_EXP,
    EM_OP_LOG,
    EM_OP_LOG1P,
    EM_OP_ERF,
    EM_OP_RELU,
    EM_OP_RELU_GRAD, /* (x, g) -> x > 0 ? g : 0, relu's gradient in one pass */
    EM_OP_LEAKY_RELU,
    EM_OP_ELU,
    EM_OP_SIGMOID,
    EM_OP_SIGMOID_GRAD, /* (y, g) -> g * y * (1 - y), sigmoid's gradient from its output in one pass */
    EM_OP_TANH,
    EM_OP_TANH_GRAD, /* (y, g) -> g * (1 - y * y), tanh's gradient from its output in one pass */
    EM_OP_SOFTPLUS,
    EM_OP_GELU,
    EM_OP_CLIP,
    EM_OP_WHERE,
    EM_OP_CAST,
    EM_OP_EQUAL,
    EM_OP_NOT_EQUAL,
    EM_OP_LESS,
    EM_OP_LESS_EQUAL,
    EM_OP_GREATER,
    EM_OP_GREATER_EQUAL,
    EM_OP_LOGICAL_AND,
    EM_OP_LOGICAL_OR,
    EM_OP_LOGICAL_NOT,
    EM_OPS_ELEMENTWISE_END,

    /* ops/reduce.c */
    EM_OPS_REDUCE_BEGIN = EM_OPS_ELEMENTWISE_END,
    EM_OP_SUM = EM_OPS_REDUCE_BEGIN,
    EM_OP_MAX,
    EM_OP_MIN,
    EM_OP_PROD,
    EM_OP_LOG_SUM_EXP,
    EM_OP_ARGMAX,
    EM_OP_ARGMIN,
    EM_OPS_REDUCE_END,

    /* ops/matmul.c */
    EM_OPS_MATMUL_BEGIN = EM_OPS_REDUCE_END,
    EM_OP_MATMUL = EM_OPS_MATMUL_BEGIN,
    EM_OPS_MATMUL_END,

    /* ops/shape.c */
    EM_OPS_SHAPE_BEGIN = EM_OPS_MATMUL_END,
    EM_OP_RESHAPE = EM_OPS_SHAPE_BEGIN,
    EM_OP_TRANSPOSE,
    EM_OP_SLICE,
    EM_OP_BROADCAST_TO,
    EM_OP_STOP_GRADIENT,
    EM_OP_CONCAT,
    EM_OP_GATHER,
    EM_OP_GATHER_GRAD, /* scatter-add of rows: the gradient of gather */
    EM_OP_ONE_HOT,
    EM_OP_PAD,
    EM_OP_TILE,
    EM_OPS_SHAPE_END,

    /* ops/nn.c */
    EM_OPS_NN_BEGIN = EM_OPS_SHAPE_END,
    EM_OP_SOFTMAX = EM_OPS_NN_BEGIN,
    EM_OP_LOG_SOFTMAX,
    EM_OP_SOFTMAX_GRAD, /* (y, g) -> softmax's or log_softmax's gradient from its output, in one pass */
    EM_OP_SIGMOID_XENT,
    EM_OP_SOFTMAX_XENT,
    EM_OP_SPARSE_SOFTMAX_XENT,
    EM_OP_CONV2D,
    EM_OP_CONV2D_BACKPROP_INPUT,
    EM_OP_CONV2D_BACKPROP_FILTER,
    EM_OP_MAX_POOL,
    EM_OP_MAX_POOL_GRAD,
    EM_OP_AVG_POOL,
    EM_OP_AVG_POOL_GRAD,
    EM_OPS_NN_END,

    /* ops/random.c */
    EM_OPS_RANDOM_BEGIN = EM_OPS_NN_END,
    EM_OP_RANDOM_NORMAL = EM_OPS_RANDOM_BEGIN,
    EM_OP_RANDOM_UNIFORM,
    EM_OP_TRUNCATED_NORMAL,
    EM_OPS_RANDOM_END,

    /* ops/fill.c */
    EM_OPS_FILL_BEGIN = EM_OPS_RANDOM_END,
    EM_OP_FILL_LIKE = EM_OPS_FILL_BEGIN,
    EM_OP_COUNT_ELEMENTS,
    EM_OPS_FILL_END,

    /* optim.c */
    EM_OPS_OPTIM_BEGIN = EM_OPS_FILL_END,
    EM_OP_APPLY_UPDATES = EM_OPS_OPTIM_BEGIN,
    EM_OPS_OPTIM_END,

    /* device.c */
    EM_OPS_DEVICE_BEGIN = EM_OPS_OPTIM_END,
    EM_OP_COPY_TO_DEVICE = EM_OPS_DEVICE_BEGIN,
    EM_OPS_DEVICE_END,

    EM_OP_COUNT = EM_OPS_DEVICE_END
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
/* The GPU kernel of a family (gpu/<family>.cu, see lib/gpu.h): 0, or -1 with an error. */
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
    EM_OPF_NONDIFF = 1u << 1, /* no gradient: a path through it is an error */
    EM_OPF_CUT = 1u << 2,     /* stop_gradient: paths end here silently */
    EM_OPF_RANDOM = 1u << 3,  /* draws from the random stream */
    EM_OPF_INPLACE = 1u << 4, /* updates a variable input in place: never folded, merged or reordered */
    EM_OPF_CHECKS_VALUES = 1u << 5, /* the shape rule also checks input values (indices, labels): a graph
                                       re-runs it on the fed data before the kernel */
    EM_OPF_ANY_DEVICE = 1u << 6, /* the .cpu kernel handles inputs on any device itself (copies, updates) */
};

struct em_op_def {
    const char *name;
    int arity; /* number of tensor inputs, -1 for any number >= 1 */
    unsigned flags;
    em_infer_fn infer;
    em_kernel_fn cpu;  /* NULL for ops that are always views */
    em_gpu_kernel_fn gpu; /* the family's GPU entry (EM_GPU_KERNEL), NULL when built without the backend */
    em_view_fn view;   /* NULL for computing ops */
    em_grad_fn grad;   /* NULL only with EM_OPF_NONDIFF or EM_OPF_CUT */
};

/* Tables, one per family, each indexed by (op - family begin). */
extern const em_op_def em_ops_elementwise[EM_OPS_ELEMENTWISE_END - EM_OPS_ELEMENTWISE_BEGIN];
extern const em_op_def em_ops_reduce[EM_OPS_REDUCE_END - EM_OPS_REDUCE_BEGIN];
extern const em_op_def em_ops_matmul[EM_OPS_MATMUL_END - EM_OPS_MATMUL_BEGIN];
extern const em_op_def em_ops_shape[EM_OPS_SHAPE_END - EM_OPS_SHAPE_BEGIN];
extern const em_op_def em_ops_nn[EM_OPS_NN_END - EM_OPS_NN_BEGIN];
extern const em_op_def em_ops_random[EM_OPS_RANDOM_END - EM_OPS_RANDOM_BEGIN];
extern const em_op_def em_ops_fill[EM_OPS_FILL_END - EM_OPS_FILL_BEGIN];
extern const em_op_def em_ops_optim[EM_OPS_OPTIM_END - EM_OPS_OPTIM_BEGIN];
extern const em_op_def em_ops_device[EM_OPS_DEVICE_END - EM_OPS_DEVICE_BEGIN];

/* Placed after a family's table `const em_op_def em_ops_<family>[] = {[EM_OP_X -
 * BEGIN] = {...}, ...};` to state that the table and the enum range have the
 * same length (the sized extern declarations above enforce it too). */
#define EM_OP_TABLE_CHECK(family, BEGIN, END)                                   \
    _Static_assert(sizeof(em_ops_##family) / sizeof(em_op_def) == (END) - (BEGIN), \
                   #family " table and enum range differ in length")

const em_op_def *em__op_def(em_op op);

/* Runs op on inputs: places it on a device (device.c), validates,
 * allocates, computes, records on open tapes and traces, and returns a NEW
 * tensor in the current scope (NULL with an error). */
em_tensor *em__apply(em_op op, int n, em_tensor *const *in, const em_attrs *a);
/* em__apply once the op is placed: the inputs are non-NULL and on its device. */
em_tensor *em__run_op(em_op op, int n, em_tensor *const *in, const em_attrs *a);
/* em__apply when several devices exist or placement is logged (device.c). */
em_tensor *em__apply_placed(em_op op, int n, em_tensor *const *in, const em_attrs *a);

/* Runs c's CPU kernel into out, giving it contiguous copies of strided
 * inputs unless it reads strides itself. 0, or -1 on out of memory. */
int em__run_kernel(const em_call *c, em_tensor *out);

/* c's kernel for out's device (the GPU's, or .cpu), on the inputs as they
 * are. 0, or -1 with an error. */
int em__kernel(const em_call *c, em_tensor *out);
/* c's shape rule; an op that checks values reads host copies of GPU inputs. */
int em__infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape);

/* Sets the error "<op name>: <message>". Returns -1. */
int em__op_error(const em_call *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Shape helpers for shape rules. */
/* NumPy broadcast of n shapes; -1 and an error naming the op and the shapes. */
int em__broadcast_shapes(const em_call *c, int *ndim, int64_t *shape);
/* Normalises a possibly negative axis for rank ndim; -1 with an error. */
int em__axis(const em_call *c, int axis, int ndim, const char *argname);
/* "[3,5]" of a tensor into buf. */
const char *em__tshape(const em_tensor *t, char *buf, size_t size);

/* A scalar of x's dtype: how many elements of x a reduction over the axes in
 * the bitmask combines (ops/fill.c). NEW. */
em_tensor *em__count(em_tensor *x, int64_t axes_mask);

/* Gradient helpers: sums g down to `shape` (undoing broadcasting). NEW. */
em_tensor *em__sum_to_shape(em_tensor *g, int ndim, const int64_t *shape);

#endif
