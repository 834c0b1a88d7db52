/* What the nn families share (private to lib/ops/): softmax.c (softmax and
 * losses), conv.c (convolution) and pool.c (pooling) check their inputs with
 * these, and convolution and pooling read the same attribute layout. Defined
 * in nn.c. */
#ifndef EMBER_OPS_NN_H
#define EMBER_OPS_NN_H

#include "../conv_geometry.h"
#include "../internal.h"

/* Convolution and pooling attributes: i[0..1] strides {h, w}, i[2..3] the
 * dilations (conv) or the window (pools) {h, w}, i[4] the padding
 * (em_padding), i[5..8] the NHWC or HWIO shape a gradient op produces. */
enum { A_STRIDES = 0, A_WINDOW = 2, A_PAD = 4, A_SHAPE = 5, A_COUNT = 9 };

/* "[2,3,4,5]" of ndim dims into buf. */
const char *em__nn_shape_str(int ndim, const int64_t *dims, char *buf, size_t size);

/* The checks of the shape rules: 0, or -1 with an error naming the op and
 * the arguments (arg: the input's name in messages). */
/* in[i] is float32 or float64. */
int em__nn_need_float(const em_call *c, int i, const char *arg);
/* in[0] and in[1] are floats of one dtype. */
int em__nn_same_float(const em_call *c, const char *arg0, const char *arg1);
/* in[0] and in[1] have one shape. */
int em__nn_same_shape(const em_call *c, const char *arg0, const char *arg1);
/* in[i] is 4-D. */
int em__nn_need_rank4(const em_call *c, int i, const char *arg);
/* s = i[5..8], none negative; what: the shape's name in the message. */
int em__nn_attr_shape(const em_call *c, const char *what, int64_t *s);

/* Fills g from an input shape xs (NHWC), window (kh, kw), output channels
 * and the attributes; conv says whether i[2..3] are dilations (conv) or the
 * window (pools, dilation 1). Checks strides, dilations, window and padding. */
int em__nn_geom(const em_call *c, const int64_t *xs, int64_t kh, int64_t kw, int64_t o, bool conv, em_conv_geom *g);
/* The shape rules of the convolutions (conv.c), shared by conv2d and the
 * depthwise convolution (depthwise: filter [KH,KW,C,M], C M output channels;
 * else HWIO): the forward op (input, filter), the input gradient (filter,
 * out_backprop; the input shape in i[5..8]) and the filter gradient (input,
 * out_backprop; the filter shape in i[5..8]). */
int em__conv_infer(const em_call *c, bool depthwise, em_dtype *dtype, int *ndim, int64_t *shape);
int em__conv_backprop_input_infer(const em_call *c, bool depthwise, em_dtype *dtype, int *ndim, int64_t *shape);
int em__conv_backprop_filter_infer(const em_call *c, bool depthwise, em_dtype *dtype, int *ndim, int64_t *shape);

/* Runs op (a gradient op of the same family) on (a, b), b NULL for one input,
 * with c's attributes and, when shape_of is given, its shape in i[5..8]. */
em_tensor *em__nn_sibling(const em_call *c, em_op op, em_tensor *a, em_tensor *b, const em_tensor *shape_of);

/* The gradient rule of a normalization's fused backward op: layer norm's and RMS norm's (norm.c; groups: the
 * rows, axis -1) and batch norm's (batch_norm.c; x as [rows, C], groups: the channels, axis 0). The op maps
 * (x, its forward buffer, gamma [C], dy) to [dgamma | dbeta | dx] (centred: subtracting the group's mean;
 * without it, RMS norm's [dgamma | dx]); G is the gradient of that output. Sets gin[0] (x), gin[2] (gamma)
 * and gin[3] (dy) where need says, with public ops that recompute the statistics from x, so an outer tape
 * differentiates them again. 0, or -1 with an error. */
int em__norm_backward_grad(em_tensor *x, em_tensor *gamma, em_tensor *dy, em_tensor *G, int axis, bool centred,
                           double eps, const bool *need, em_tensor **gin);

#endif
