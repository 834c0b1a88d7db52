/* Eager ops. Every function returns a NEW tensor (or NULL with an error set).
 * Binary and ternary elementwise ops broadcast like NumPy and require equal
 * dtypes (no silent promotion: cast explicitly with em_cast). Axis arguments
 * may be negative (counted from the end). */
#ifndef EMBER_OPS_H
#define EMBER_OPS_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- elementwise arithmetic (all numeric dtypes) ---- */
em_tensor *em_add(em_tensor *a, em_tensor *b);
em_tensor *em_sub(em_tensor *a, em_tensor *b);
em_tensor *em_mul(em_tensor *a, em_tensor *b);
em_tensor *em_div(em_tensor *a, em_tensor *b); /* integer division truncates; /0 is an error-free 0 */
em_tensor *em_pow(em_tensor *a, em_tensor *b); /* float dtypes */
em_tensor *em_maximum(em_tensor *a, em_tensor *b);
em_tensor *em_minimum(em_tensor *a, em_tensor *b);
/* TF's floormod: a - floor(a / b) b, with the sign of b. Integer a mod 0 is 0
 * (TF raises an error); a float remainder of zero keeps a's sign (as TF). */
em_tensor *em_floormod(em_tensor *a, em_tensor *b);
/* x op scalar, the scalar taking x's dtype. */
em_tensor *em_add_scalar(em_tensor *x, double s);
em_tensor *em_mul_scalar(em_tensor *x, double s);

em_tensor *em_neg(em_tensor *x);
em_tensor *em_abs(em_tensor *x);
em_tensor *em_square(em_tensor *x);
em_tensor *em_sign(em_tensor *x);
/* float dtypes only: */
em_tensor *em_sqrt(em_tensor *x);
em_tensor *em_rsqrt(em_tensor *x);
em_tensor *em_exp(em_tensor *x);
em_tensor *em_log(em_tensor *x);
em_tensor *em_log1p(em_tensor *x);
em_tensor *em_erf(em_tensor *x);
em_tensor *em_sin(em_tensor *x);
em_tensor *em_cos(em_tensor *x);
em_tensor *em_tan(em_tensor *x);
/* floor, ceil and round have no gradient (TF's None): a path through them
 * ends there, as through em_stop_gradient. round takes halves to even. */
em_tensor *em_floor(em_tensor *x);
em_tensor *em_ceil(em_tensor *x);
em_tensor *em_round(em_tensor *x);
em_tensor *em_reciprocal(em_tensor *x); /* 1 / x */
/* min(max(x, lo), hi); lo <= hi. */
em_tensor *em_clip_by_value(em_tensor *x, double lo, double hi);
/* cond (bool) ? a : b, all three broadcast together. */
em_tensor *em_where(em_tensor *cond, em_tensor *a, em_tensor *b);
/* Between every pair of dtypes, the same on every device. A float (bfloat16 and
 * float16 too) to an integer truncates toward zero and saturates at the
 * integer's range, NaN to 0 (300.7 is uint8 255, -3.9 is int8 -3, -1 is
 * uint16 0); an integer to a narrower one wraps modulo 2^bits (int32 70000 is
 * int16 4464, -1 is uint16 65535), as C and NumPy do; anything to bool is
 * x != 0. To a float rounds to nearest even. */
em_tensor *em_cast(em_tensor *x, em_dtype dtype);

/* ---- comparisons and logic: bool results ---- */
em_tensor *em_equal(em_tensor *a, em_tensor *b);
em_tensor *em_not_equal(em_tensor *a, em_tensor *b);
em_tensor *em_less(em_tensor *a, em_tensor *b);
em_tensor *em_less_equal(em_tensor *a, em_tensor *b);
em_tensor *em_greater(em_tensor *a, em_tensor *b);
em_tensor *em_greater_equal(em_tensor *a, em_tensor *b);
em_tensor *em_logical_and(em_tensor *a, em_tensor *b); /* bool inputs */
em_tensor *em_logical_or(em_tensor *a, em_tensor *b);
em_tensor *em_logical_not(em_tensor *x);

/* ---- activations (float dtypes) ---- */
em_tensor *em_relu(em_tensor *x);
em_tensor *em_leaky_relu(em_tensor *x, double alpha);
em_tensor *em_elu(em_tensor *x);
em_tensor *em_sigmoid(em_tensor *x);
em_tensor *em_tanh(em_tensor *x);
em_tensor *em_softplus(em_tensor *x);
/* clip(0.2 x + 0.5, 0, 1): TF 1's fixed slope (PyTorch's is 1/6). */
em_tensor *em_hard_sigmoid(em_tensor *x);
em_tensor *em_log_sigmoid(em_tensor *x); /* log(sigmoid(x)) = -softplus(-x), stable for large |x| */
em_tensor *em_gelu(em_tensor *x); /* exact (erf) form */
em_tensor *em_silu(em_tensor *x); /* x sigmoid(x), also called swish */
/* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): GPT-2's tanh approximation of GELU */
em_tensor *em_gelu_tanh(em_tensor *x);

/* ---- reductions: axes as EM_AXES(...) or EM_ALL_AXES ---- */
em_tensor *em_sum(em_tensor *x, int naxes, const int *axes, bool keepdims);
em_tensor *em_mean(em_tensor *x, int naxes, const int *axes, bool keepdims);
em_tensor *em_max(em_tensor *x, int naxes, const int *axes, bool keepdims);
em_tensor *em_min(em_tensor *x, int naxes, const int *axes, bool keepdims);
em_tensor *em_prod(em_tensor *x, int naxes, const int *axes, bool keepdims);
em_tensor *em_log_sum_exp(em_tensor *x, int naxes, const int *axes, bool keepdims);
/* bool inputs: any / all of the reduced elements (an empty reduction is false / true). */
em_tensor *em_reduce_any(em_tensor *x, int naxes, const int *axes, bool keepdims);
em_tensor *em_reduce_all(em_tensor *x, int naxes, const int *axes, bool keepdims);
/* ---- scans along one axis (numeric dtypes) ----
 * TF's cumsum and cumprod: exclusive leaves each element out of its own
 * result (the first is 0, or 1), reverse scans from the end. Float scans
 * accumulate in double. cumprod's gradient is TF's, cumsum(out g) / x, which is
 * not finite at an element that is zero (as TF's). */
em_tensor *em_cumsum(em_tensor *x, int axis, bool exclusive, bool reverse);
em_tensor *em_cumprod(em_tensor *x, int axis, bool exclusive, bool reverse);

/* mean and variance over the axes (float dtypes), as TF's tf.nn.moments, in
 * one op that reads x once: shifted sums in double (lib/ops/moments_math.h),
 * not the cancelling E[x^2] - E[x]^2, so the variance keeps its precision
 * for data with a large mean and is never negative. Over no elements both
 * are NaN, as em_mean's. The two results are views of one buffer; the
 * gradient of either flows back to x. Returns 0, or -1 with both NULL. */
int em_moments(em_tensor *x, int naxes, const int *axes, bool keepdims, em_tensor **mean, em_tensor **variance);
/* The vector norm of the elements over the axes (float dtypes): ord 1, 2 or
 * INFINITY. TF's tf.norm takes two axes as a matrix norm; this does not. The
 * gradient of ord 2 at an all-zero x is NaN, as TF's. */
em_tensor *em_norm(em_tensor *x, double ord, int naxes, const int *axes, bool keepdims);
/* Index (int64) of the first largest / smallest element along axis. */
em_tensor *em_argmax(em_tensor *x, int axis);
em_tensor *em_argmin(em_tensor *x, int axis);

/* ---- matrix multiply (BLIS) ----
 * [..., m, k] x [..., k, n] -> [..., m, n]; leading dims broadcast. A 1-D
 * operand is not promoted: both must have at least 2 dims. */
em_tensor *em_matmul(em_tensor *a, em_tensor *b);
em_tensor *em_matmul_t(em_tensor *a, em_tensor *b, bool transpose_a, bool transpose_b);

/* ---- shape ---- */
/* One dimension may be -1 (inferred). Contiguous input: a view, no copy. */
em_tensor *em_reshape(em_tensor *x, em_shape shape);
/* perm as EM_AXES(...); EM_ALL_AXES reverses the axes. */
em_tensor *em_transpose(em_tensor *x, int nperm, const int *perm);
em_tensor *em_expand_dims(em_tensor *x, int axis);
/* Removes the listed size-1 axes, or every size-1 axis with EM_ALL_AXES. */
em_tensor *em_squeeze(em_tensor *x, int naxes, const int *axes);
em_tensor *em_broadcast_to(em_tensor *x, em_shape shape);
em_tensor *em_concat(int n, em_tensor *const *xs, int axis);
/* Splits into n equal parts along axis into out[0..n-1]. Returns 0 or -1. */
int em_split(em_tensor *x, int n, int axis, em_tensor **out);
/* Splits into parts of the given sizes (one may be -1). */
int em_split_sizes(em_tensor *x, int n, const int64_t *sizes, int axis, em_tensor **out);
/* begin and size have ndim entries; a size of -1 means "to the end". */
em_tensor *em_slice(em_tensor *x, const int64_t *begin, const int64_t *size);
/* Rows of params along axis picked by integer indices (int32, int64, int16
 * or uint16: token ids index as they are stored):
 * out shape = params.shape[:axis] + indices.shape + params.shape[axis+1:]. */
em_tensor *em_gather(em_tensor *params, em_tensor *indices, int axis);
/* indices (int32, int64, int16, uint16) -> indices.shape + [depth] of dtype, on/off values. */
em_tensor *em_one_hot(em_tensor *indices, int64_t depth, double on, double off, em_dtype dtype);
/* pads has 2*ndim entries: before and after, per axis. */
em_tensor *em_pad(em_tensor *x, const int64_t *pads, double value);
/* multiples has ndim entries. */
em_tensor *em_tile(em_tensor *x, const int64_t *multiples);

/* ---- creation and masks ----
 * em_eye: [num_rows, num_columns] (num_columns < 0: square), ones on the
 * diagonal; TF's batch_shape is left to em_broadcast_to. em_linspace: num
 * values start + i (stop - start) / (num - 1) computed in float64, as TF's
 * (the last is that sum, which NumPy instead sets to stop); float dtypes.
 * em_band_part: TF's matrix_band_part over the last two axes, keeping
 * elements with row - column <= num_lower and column - row <= num_upper (a
 * negative bound keeps that whole triangle): (x, -1, 0) is tril, (x, 0, -1) triu. */
em_tensor *em_eye(int64_t num_rows, int64_t num_columns, em_dtype dtype);
em_tensor *em_linspace(double start, double stop, int64_t num, em_dtype dtype);
em_tensor *em_band_part(em_tensor *x, int64_t num_lower, int64_t num_upper);
/* Indices (int64 [count, rank]) of the nonzero elements in row-major order:
 * TF 1's one-argument tf.where. Its size depends on the values, so it runs
 * eagerly only; in a traced graph it is an error. */
em_tensor *em_where_indices(em_tensor *cond);

/* ---- einsum ----
 * One or two inputs with an explicit output ("bij,bjk->bik", "bhqd,bhkd->bhqk",
 * "ij->ji", "ii->i", "ij->"): letters in both inputs and the output are batch
 * axes, in both inputs only are contracted, in one input only and not the
 * output are summed first; one batched matmul does the rest. Sizes must match
 * (no broadcasting of size 1). Other forms (ellipses, three inputs, a letter
 * repeated in a two-input term) are an error naming the equation. Composed of
 * Ember's ops, so it has their gradients. */
em_tensor *em_einsum(const char *equation, int n, em_tensor *const *inputs);
/* ---- indexing (TensorFlow 1's; indices int32, int64, int16 or uint16; out-of-range indices are an error
 * naming the tuple, where TF's GPU kernels give zeros or drop them) ---- */
/* Slices of params at index tuples: indices [..., M] -> indices.shape[:-1] + params.shape[M:]. */
em_tensor *em_gather_nd(em_tensor *params, em_tensor *indices);
/* Zeros of `shape` with each slice of updates (indices.shape[:-1] + shape[M:]) added at its tuple; repeated
 * tuples add up, in order (deterministic on every device). Numeric dtypes. */
em_tensor *em_scatter_nd(em_tensor *indices, em_tensor *updates, em_shape shape);
/* tensor + em_scatter_nd(indices, updates, tensor's shape). */
em_tensor *em_tensor_scatter_add(em_tensor *tensor, em_tensor *indices, em_tensor *updates);
/* Sums of data's slices by segment: segment_ids (a prefix of data's shape) in [0, num_segments) ->
 * [num_segments] + data.shape[segment_ids.ndim:]; empty segments are 0. A negative id is an error (TF drops it). */
em_tensor *em_unsorted_segment_sum(em_tensor *data, em_tensor *segment_ids, int64_t num_segments);
/* The k largest elements of each row of the last axis into *values (x's dtype) and their positions into
 * *indices (int64; TF gives int32), largest first; equal values keep their order and NaN ranks above every
 * number (as torch.topk). `sorted` is accepted for TF's signature: the k are always in order. Numeric
 * dtypes. Returns 0, or -1 with both NULL. */
int em_top_k(em_tensor *x, int64_t k, bool sorted, em_tensor **values, em_tensor **indices);
/* x sorted along axis, stably (equal values keep their order); NaN last ascending, first descending (NumPy's
 * and PyTorch's placement). em_argsort gives the int64 positions (TF: int32) that sort x. */
em_tensor *em_sort(em_tensor *x, int axis, bool descending);
em_tensor *em_argsort(em_tensor *x, int axis, bool descending);

/* ---- neural network (float dtypes) ---- */
em_tensor *em_softmax(em_tensor *logits, int axis);
em_tensor *em_log_softmax(em_tensor *logits, int axis);
/* x [..., C] + bias [C]. */
em_tensor *em_bias_add(em_tensor *x, em_tensor *bias);
/* Keeps each element with probability keep_prob and scales it by 1/keep_prob;
 * the identity (x itself, new reference) when keep_prob == 1. */
em_tensor *em_dropout(em_tensor *x, double keep_prob);
/* Elementwise: max(x,0) - x*z + log(1+exp(-|x|)). */
em_tensor *em_sigmoid_cross_entropy_with_logits(em_tensor *labels, em_tensor *logits);
/* Over the last axis: labels are dense probabilities [..., C]; result [...]. */
em_tensor *em_softmax_cross_entropy_with_logits(em_tensor *labels, em_tensor *logits);
/* labels int32, int64, int16 or uint16 [...] in [0, C); logits [..., C]; result [...]. */
em_tensor *em_sparse_softmax_cross_entropy_with_logits(em_tensor *labels, em_tensor *logits);
/* The same, with loss 0 and gradient 0 at positions whose label is ignore_index (padding; PyTorch's default
 * is -100); other labels outside [0, C) are still an error. The mean over the positions that count is
 * sum(loss) / count(labels != ignore_index). A vocabulary padded past its C real classes (GPT-2's 50,257
 * in 50,304 columns) is sliced, not masked: pass em_slice(logits, {0, 0}, {-1, C}), whose gradient into the
 * padded columns is 0. */
em_tensor *em_sparse_softmax_cross_entropy_ignore(em_tensor *labels, em_tensor *logits, int64_t ignore_index);
/* Layer norm over the last axis (axis -1 or ndim - 1; other axes are an
 * error): (x - mean) / sqrt(var + eps) * gamma + beta, gamma and beta [C].
 * Fused: one pass forward, keeping each row's mean and 1/std for the fused
 * backward pass (dx, dgamma and dbeta at once). */
em_tensor *em_layer_norm(em_tensor *x, em_tensor *gamma, em_tensor *beta, int axis, double eps);
/* RMS norm over the last axis: x / sqrt(mean(x^2) + eps) * gamma, fused the
 * same way. */
em_tensor *em_rms_norm(em_tensor *x, em_tensor *gamma, int axis, double eps);

typedef enum em_padding { EM_PAD_VALID, EM_PAD_SAME } em_padding;
/* input NHWC [N,H,W,C], filter HWIO [KH,KW,C,O]; strides and dilations are
 * {h, w} (NULL means {1, 1}). */
em_tensor *em_conv2d(em_tensor *input, em_tensor *filter, const int *strides,
                     em_padding padding, const int *dilations);
/* TensorFlow 1's conv1d: value [N,W,C], filters [K,C,O] -> [N,W',O]; conv2d over a height of 1. dilation 0
 * means 1. */
em_tensor *em_conv1d(em_tensor *value, em_tensor *filters, int stride, em_padding padding, int dilation);
/* The transpose of conv2d (its gradient in the input; TF's conv2d_transpose): value [N,H,W,Cin], filter
 * [KH,KW,Cout,Cin] (conv2d's HWIO with O = Cin) -> output_shape [N,H',W',Cout], which conv2d with these strides
 * and padding would map back to value's shape. strides NULL means {1, 1}. */
em_tensor *em_conv2d_transpose(em_tensor *value, em_tensor *filter, em_shape output_shape, const int *strides,
                               em_padding padding);
/* TF's depthwise_conv2d: input [N,H,W,C], filter [KH,KW,C,M] -> [N,H',W',C M], output channel c M + m from input
 * channel c alone; strides, padding and dilations as em_conv2d's. */
em_tensor *em_depthwise_conv2d(em_tensor *input, em_tensor *filter, const int *strides, em_padding padding,
                               const int *dilations);
/* TF's separable_conv2d: the depthwise convolution, then a 1x1 conv2d by pointwise_filter [1,1,C M,O]. */
em_tensor *em_separable_conv2d(em_tensor *input, em_tensor *depthwise_filter, em_tensor *pointwise_filter,
                               const int *strides, em_padding padding, const int *dilations);
/* Batch norm (TF's batch_normalization) from a given mean and variance, which broadcast against x like
 * offset and scale (either may be NULL): (x - mean) / sqrt(variance + variance_epsilon) * scale + offset.
 * em_fused_batch_norm (train.h) computes the statistics itself. */
em_tensor *em_batch_normalization(em_tensor *x, em_tensor *mean, em_tensor *variance, em_tensor *offset,
                                  em_tensor *scale, double variance_epsilon);
/* x / sqrt(max(sum(x^2 over axes), epsilon)) (TF's l2_normalize; axes as EM_AXES(...) or EM_ALL_AXES). */
em_tensor *em_l2_normalize(em_tensor *x, int naxes, const int *axes, double epsilon);
/* em_softmax_cross_entropy_with_logits of labels smoothed toward the uniform distribution, as
 * tf.losses.softmax_cross_entropy's label_smoothing: labels (1 - s) + s / C. Per example, no reduction. */
em_tensor *em_softmax_cross_entropy_smoothed(em_tensor *labels, em_tensor *logits, double label_smoothing);
/* TF's weighted_cross_entropy_with_logits: sigmoid cross entropy with the positive term weighted by
 * pos_weight, (1 - z) x + (1 + (pos_weight - 1) z) (log(1 + exp(-|x|)) + max(-x, 0)); elementwise. */
em_tensor *em_weighted_cross_entropy_with_logits(em_tensor *labels, em_tensor *logits, double pos_weight);
/* NHWC pooling; ksize and strides are {h, w}. */
em_tensor *em_max_pool(em_tensor *input, const int *ksize, const int *strides, em_padding padding);
em_tensor *em_avg_pool(em_tensor *input, const int *ksize, const int *strides, em_padding padding);
/* Scaled dot-product attention, softmax(scale q k^T + mask) v, fused: q [B,H,Tq,D],
 * k and v [B,H,Tk,D] -> [B,H,Tq,D]. causal lets query i see keys j <= i + Tk - Tq
 * (aligned at the end, as when decoding with a cache of keys and values); mask
 * is NULL or an additive mask of q's dtype that broadcasts to [B,H,Tq,Tk],
 * added before the causal cut (it gets no gradient); scale 0 means 1/sqrt(D).
 * Never builds the [Tq,Tk] scores, forward or backward: memory O(B H T). A row
 * that sees no key gives 0. */
em_tensor *em_scaled_dot_product_attention(em_tensor *q, em_tensor *k, em_tensor *v, bool causal, double scale,
                                           em_tensor *mask);

/* ---- random (this thread's stream, see em_set_seed) ---- */
em_tensor *em_random_normal(em_dtype dtype, em_shape shape, double mean, double stddev);
em_tensor *em_random_uniform(em_dtype dtype, em_shape shape, double lo, double hi);
/* Normal, redrawn beyond two standard deviations (TensorFlow's definition). */
em_tensor *em_truncated_normal(em_dtype dtype, em_shape shape, double mean, double stddev);
/* TF's categorical: int64 [batch, num_samples] class indices drawn from
 * softmax of each row of logits [batch, classes] (float dtypes), the same on
 * every device for a seed. A class of logit -Inf is never drawn. No gradient. */
em_tensor *em_categorical(em_tensor *logits, int64_t num_samples);
/* x with its rows (axis 0) in a seeded random order, through em_gather (so it
 * has gather's gradient, where TF's has none). The permutation is drawn on
 * the host when called; in a traced graph it is an error (a replay would
 * repeat one permutation). */
em_tensor *em_random_shuffle(em_tensor *x);

/* ---- your own ops: registered at run time (README "Your own ops") ----
 * A registered op runs like a built-in one: eager dispatch, placement, NULL
 * propagation, tapes (its gradient rule), traced graphs (replayed with its
 * kernel) and ember-bench. The registry is process-wide and thread-safe; it
 * owns what it copies from a definition and frees it when the process ends. */

/* The most attributes one op declares. */
#define EM_OP_MAX_ATTRS 8
/* A registered op: what em_op_register returns and em_op_call runs. Stays
 * valid after em_op_unregister, where using it is an error. */
typedef struct em_op_handle em_op_handle;
/* One named attribute of a call: a number, or a string when string is non-NULL. */
typedef struct em_op_attr {
    const char *name;
    double number;
    const char *string;
} em_op_attr;
/* A call's attributes, in any order; an attribute the call leaves out is 0 (number) and NULL (string). */
typedef struct em_op_attrs {
    int n;
    em_op_attr a[EM_OP_MAX_ATTRS];
} em_op_attrs;
/* What a registered op's callbacks are told about the call. */
typedef struct em_custom_call {
    const struct em_custom_op *op; /* the definition as registered (its user_data, its name) */
    int n;                         /* inputs, with their dtypes and shapes */
    const em_dtype *dtypes;
    const em_shape *shapes;
    int nout;                     /* the outputs, then the tensors saved for the gradient (op->nsaved) */
    const em_dtype *out_dtypes;   /* kernels and gradient rules: the outputs' dtypes and shapes */
    const em_shape *out_shapes;
    const em_op_attrs *attrs;     /* every declared attribute, in declaration order */
    char *error;                  /* a failing callback may write why here (printf into error_size bytes) */
    size_t error_size;
} em_custom_call;
/* The shape rule: each output's dtype and shape from the inputs'. 0, or non-zero to refuse the call. */
typedef int (*em_custom_shape_fn)(const em_custom_call *c, em_dtype *out_dtypes, em_shape *out_shapes);
/* The CPU kernel: contiguous row-major inputs in[i] and outputs out[k] (c->nout of them, saved ones
 * included). 0, or non-zero when it fails. */
typedef int (*em_custom_cpu_fn)(const em_custom_call *c, const void *const *in, void *const *out);
/* The GPU kernel: the same, with device pointers, launched on `stream` (a cudaStream_t). */
typedef int (*em_custom_gpu_fn)(const em_custom_call *c, const void *const *in, void *const *out, void *stream);
/* The gradient rule, written with Ember's ops: grad_inputs[i] (NEW, of inputs[i]'s dtype and shape) from the
 * inputs, the outputs, their incoming gradients (never NULL) and the saved tensors. An input whose
 * gradient no one needs may be left NULL. 0, or non-zero when it fails. */
typedef int (*em_custom_grad_fn)(const em_custom_call *c, em_tensor *const *inputs, em_tensor *const *outputs,
                                 em_tensor *const *grad_outputs, em_tensor *const *saved, em_tensor **grad_inputs);
/* Flags of a definition. */
enum {
    EM_CUSTOM_ELEMENTWISE = 1u << 0, /* output element i reads element i of each input (of the output's shape, or
                                        one element): a graph may fuse it with its neighbours, block by block */
    EM_CUSTOM_NO_GRADIENT = 1u << 1, /* no gradient rule: a gradient path through it is an error */
};
/* A definition; em_op_register copies what it needs (the strings too). */
typedef struct em_custom_op {
    const char *name;   /* unique among all ops; a saved graph records the op by it */
    int arity;          /* tensor inputs; -1 for any number >= 1 */
    int nout;           /* outputs em_op_call returns (0 means 1) */
    int nsaved;         /* further outputs the kernels write, kept for the gradient rule only */
    int nattrs;         /* declared attributes: their names, unique */
    const char *attr_names[EM_OP_MAX_ATTRS];
    unsigned flags;     /* EM_CUSTOM_* */
    em_custom_shape_fn shape;    /* required */
    em_custom_cpu_fn cpu;        /* required */
    em_custom_gpu_fn gpu;        /* optional: without it the op runs on the CPU only (soft placement moves it) */
    em_custom_grad_fn gradient;  /* required unless EM_CUSTOM_NO_GRADIENT */
    void *user_data;             /* for the callbacks (c->op->user_data) */
} em_custom_op;

/* Registers def; the op lives until em_op_unregister or the end of the process. The handle, or NULL with an
 * error for a bad definition or a name in use. */
em_op_handle *em_op_register(const em_custom_op *def);
/* Ends a registered op: calls of it, and its records on tapes and in graphs, are then errors. The name is
 * free again. 0; -1 with an error for NULL or a handle unregistered already. */
int em_op_unregister(em_op_handle *op);
/* The registered op named `name` (borrowed), or NULL without an error. */
em_op_handle *em_op_find(const char *name);
/* op's definition as registered (borrowed, its strings copied), or NULL for a NULL handle. */
const em_custom_op *em_op_definition(const em_op_handle *op);
/* Runs op on n inputs with attrs (NULL: all 0) into outputs[0..nout-1], NEW tensors; nout must be the
 * definition's. 0, or -1 with an error naming the op (outputs are then NULL). A NULL input propagates. */
int em_op_call(em_op_handle *op, int n, em_tensor *const *inputs, const em_op_attrs *attrs, int nout,
               em_tensor **outputs);

#ifdef __cplusplus
}
#endif
#endif
