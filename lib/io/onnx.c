/* ONNX export: the part of a traced graph that some fetches need, as an ONNX
 * model, encoded by hand (lib/protobuf.h) from the graph walk
 * (lib/graph/export.h). Field numbers follow onnx/onnx.proto.
 *
 * Placeholders become the graph's inputs, their unknown dimensions the
 * dim_param "batch"; variables (their values now) and constants become
 * initializers; each op becomes one ONNX node or a few. Ember's NHWC
 * convolutions and pools run in ONNX's NCHW between two transposes (ONNX
 * runtimes remove the pairs that meet). An op with no mapping is an error
 * naming it, and no file is written. */
#include "../file.h"
#include "../graph/export.h"
#include "../protobuf.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "onnx.c writes raw_data as stored in memory: a little-endian host is required"
#endif

#define OPSET_MIN 17
#define OPSET_MAX 21
#define BATCH "batch"

/* Field numbers of onnx.proto. */
enum { MODEL_IR_VERSION = 1, MODEL_PRODUCER_NAME = 2, MODEL_PRODUCER_VERSION = 3, MODEL_GRAPH = 7, MODEL_OPSET = 8 };
enum { OPSET_VERSION = 2 };
enum { GRAPH_NODE = 1, GRAPH_NAME = 2, GRAPH_INITIALIZER = 5, GRAPH_INPUT = 11, GRAPH_OUTPUT = 12 };
enum { NODE_INPUT = 1, NODE_OUTPUT = 2, NODE_NAME = 3, NODE_OP_TYPE = 4, NODE_ATTRIBUTE = 5 };
enum { ATTR_NAME = 1, ATTR_F = 2, ATTR_I = 3, ATTR_S = 4, ATTR_T = 5, ATTR_INTS = 8, ATTR_TYPE = 20 };
enum { ATTR_FLOAT = 1, ATTR_INT = 2, ATTR_STRING = 3, ATTR_TENSOR = 4, ATTR_INTS_TYPE = 7 };
enum { TENSOR_DIMS = 1, TENSOR_DATA_TYPE = 2, TENSOR_NAME = 8, TENSOR_RAW_DATA = 9 };
enum { VALUE_NAME = 1, VALUE_TYPE = 2, TYPE_TENSOR = 1, TENSOR_ELEM_TYPE = 1, TENSOR_SHAPE = 2 };
enum { SHAPE_DIM = 1, DIM_VALUE = 1, DIM_PARAM = 2 };

/* TensorProto.DataType of each Ember dtype. */
static int onnx_dtype(em_dtype d) {
    static const int map[EM_DTYPE_COUNT] = {[EM_F32] = 1, [EM_F64] = 11, [EM_I32] = 6,
                                            [EM_I64] = 7, [EM_U8] = 2,   [EM_BOOL] = 9,
                                            [EM_BF16] = 16, [EM_F16] = 10,
                                            [EM_I8] = 3,  [EM_I16] = 5,  [EM_U16] = 4};
    return map[d];
}

/* One node of the walk, kept. */
typedef struct {
    char *name, *op;
    int n;
    char **in;
    em_dtype dtype;
    int ndim;
    int64_t shape[EM_MAX_DIMS];
    em_attrs attrs;
    bool has_attrs;
    em_tensor *value;
    bool needed;
} rec;

typedef struct {
    const char *op; /* "export_onnx" */
    int opset;
    rec *r;
    int n, cap;
    pb graph; /* nodes, initializers, inputs, outputs */
    int helpers;
    bool failed;
} ox;

static rec *find(ox *x, const char *name) {
    for (int i = x->n - 1; i >= 0; i--)
        if (!strcmp(x->r[i].name, name)) return &x->r[i];
    return NULL;
}

static int keep_node(void *ctx, const em_graph_node *node) {
    ox *x = ctx;
    if (x->n == x->cap) {
        int cap = x->cap ? 2 * x->cap : 64;
        rec *r = realloc(x->r, sizeof(rec) * (size_t)cap);
        if (!r) goto oom;
        x->r = r;
        x->cap = cap;
    }
    rec *r = &x->r[x->n];
    *r = (rec){.name = strdup(node->name), .op = strdup(node->op), .n = node->ninputs, .dtype = node->dtype,
               .ndim = node->ndim, .value = node->value, .has_attrs = node->attrs != NULL};
    if (node->attrs) r->attrs = *node->attrs;
    memcpy(r->shape, node->shape, sizeof(int64_t) * (size_t)(node->ndim > 0 ? node->ndim : 0));
    r->in = calloc((size_t)(node->ninputs ? node->ninputs : 1), sizeof(char *));
    x->n++;
    if (!r->name || !r->op || !r->in) goto oom;
    for (int k = 0; k < node->ninputs; k++)
        if (!(r->in[k] = strdup(node->inputs[k]))) goto oom;
    return 0;
oom:
    em__error("%s: out of memory", x->op);
    return -1;
}

static void ox_free(ox *x) {
    for (int i = 0; i < x->n; i++) {
        for (int k = 0; k < x->r[i].n; k++) free(x->r[i].in[k]);
        free(x->r[i].in);
        free(x->r[i].name);
        free(x->r[i].op);
    }
    free(x->r);
    pb_free(&x->graph);
}

/* Marks r and everything it reads as needed. */
static void need(ox *x, rec *r) {
    if (r->needed) return;
    r->needed = true;
    for (int k = 0; k < r->n; k++) {
        rec *in = find(x, r->in[k]);
        if (in) need(x, in);
    }
}

/* ---- messages ---- */

static void attr_int(pb *node, const char *name, int64_t v) {
    pb a = {0};
    pb_str(&a, ATTR_NAME, name);
    pb_int(&a, ATTR_TYPE, ATTR_INT);
    pb_int(&a, ATTR_I, v);
    pb_msg(node, NODE_ATTRIBUTE, &a);
}

static void attr_ints(pb *node, const char *name, int n, const int64_t *v) {
    pb a = {0};
    pb_str(&a, ATTR_NAME, name);
    pb_int(&a, ATTR_TYPE, ATTR_INTS_TYPE);
    for (int i = 0; i < n; i++) pb_int(&a, ATTR_INTS, v[i]);
    pb_msg(node, NODE_ATTRIBUTE, &a);
}

static void attr_float(pb *node, const char *name, double v) {
    pb a = {0};
    pb_str(&a, ATTR_NAME, name);
    pb_int(&a, ATTR_TYPE, ATTR_FLOAT);
    pb_float(&a, ATTR_F, (float)v);
    pb_msg(node, NODE_ATTRIBUTE, &a);
}

static void attr_string(pb *node, const char *name, const char *v) {
    pb a = {0};
    pb_str(&a, ATTR_NAME, name);
    pb_int(&a, ATTR_TYPE, ATTR_STRING);
    pb_str(&a, ATTR_S, v);
    pb_msg(node, NODE_ATTRIBUTE, &a);
}

/* A node computing `out` from the NULL-ended inputs; the caller adds its
 * attributes to the returned message and ends it with node_end. */
static pb node_begin(const char *op_type, const char *out, const char *const *in) {
    pb n = {0};
    for (; *in; in++) pb_str(&n, NODE_INPUT, *in);
    pb_str(&n, NODE_OUTPUT, out);
    pb_str(&n, NODE_NAME, out);
    pb_str(&n, NODE_OP_TYPE, op_type);
    return n;
}

static void node_end(ox *x, pb *n) { pb_msg(&x->graph, GRAPH_NODE, n); }

/* A node with no attributes. */
static void node(ox *x, const char *op_type, const char *out, const char *const *in) {
    pb n = node_begin(op_type, out, in);
    node_end(x, &n);
}

#define IN(...) ((const char *const[]){__VA_ARGS__, NULL})

/* A fresh name for an intermediate of node r: "<r's name>/onnx_<k>". */
static const char *helper(ox *x, const rec *r, char *buf, size_t size) {
    snprintf(buf, size, "%s/onnx_%d", r->name, x->helpers++);
    return buf;
}

static void initializer(ox *x, const char *name, em_dtype dtype, int ndim, const int64_t *shape, const void *data,
                        size_t bytes) {
    pb t = {0};
    for (int d = 0; d < ndim; d++) pb_int(&t, TENSOR_DIMS, shape[d]);
    pb_int(&t, TENSOR_DATA_TYPE, onnx_dtype(dtype));
    pb_str(&t, TENSOR_NAME, name);
    pb_bytes(&t, TENSOR_RAW_DATA, data, bytes);
    pb_msg(&x->graph, GRAPH_INITIALIZER, &t);
}

/* An int64 vector initializer for r, named into buf. */
static const char *int64s(ox *x, const rec *r, int n, const int64_t *v, char *buf, size_t size) {
    helper(x, r, buf, size);
    initializer(x, buf, EM_I64, 1, (int64_t[]){n}, v, sizeof(int64_t) * (size_t)n);
    return buf;
}

/* v as one element of dtype into data (rounded as em_fill rounds); its size. */
static size_t scalar_bytes(em_dtype dtype, double v, unsigned char *data) {
    em__write(data, dtype, v);
    return em_dtype_size(dtype);
}

/* A scalar initializer of dtype for r, named into buf. */
static const char *scalar(ox *x, const rec *r, em_dtype dtype, double v, char *buf, size_t size) {
    unsigned char data[8];
    size_t bytes = scalar_bytes(dtype, v, data);
    helper(x, r, buf, size);
    initializer(x, buf, dtype, 0, NULL, data, bytes);
    return buf;
}

/* A one-element tensor attribute (ConstantOfShape's value). */
static void attr_scalar(pb *node, const char *name, em_dtype dtype, double v) {
    unsigned char data[8];
    size_t bytes = scalar_bytes(dtype, v, data);
    pb a = {0}, t = {0};
    pb_int(&t, TENSOR_DIMS, 1);
    pb_int(&t, TENSOR_DATA_TYPE, onnx_dtype(dtype));
    pb_bytes(&t, TENSOR_RAW_DATA, data, bytes);
    pb_str(&a, ATTR_NAME, name);
    pb_int(&a, ATTR_TYPE, ATTR_TENSOR);
    pb_msg(&a, ATTR_T, &t);
    pb_msg(node, NODE_ATTRIBUTE, &a);
}

static void value_info(pb *graph, int field, const char *name, em_dtype dtype, int ndim, const int64_t *shape) {
    pb v = {0}, type = {0}, tensor = {0}, dims = {0};
    pb_str(&v, VALUE_NAME, name);
    pb_int(&tensor, TENSOR_ELEM_TYPE, onnx_dtype(dtype));
    for (int d = 0; d < ndim; d++) {
        pb dim = {0};
        if (shape[d] < 0) pb_str(&dim, DIM_PARAM, BATCH);
        else pb_int(&dim, DIM_VALUE, shape[d]);
        pb_msg(&dims, SHAPE_DIM, &dim);
    }
    pb_msg(&tensor, TENSOR_SHAPE, &dims);
    pb_msg(&type, TYPE_TENSOR, &tensor);
    pb_msg(&v, VALUE_TYPE, &type);
    pb_msg(graph, field, &v);
}

/* ---- ops ---- */

static int fail_op(ox *x, const rec *r, const char *why) {
    em__error("%s: op %s (node %s) %s", x->op, r->op, r->name, why);
    return -1;
}

static int rank_of(ox *x, const char *name) {
    rec *r = find(x, name);
    return r ? r->ndim : -1;
}

/* The axes of a reduction's mask, as ONNX wants them. */
static int mask_axes(int64_t mask, int ndim, int64_t *axes) {
    int n = 0;
    for (int d = 0; d < ndim; d++)
        if (mask >> d & 1) axes[n++] = d;
    return n;
}

/* A reduction: axes as an input from opset 18 (ReduceSum: 13), an attribute before. */
static void reduce(ox *x, const rec *r, const char *op_type, const char *in, const char *out, int naxes,
                   const int64_t *axes, bool keepdims) {
    char ab[512];
    bool as_input = !strcmp(op_type, "ReduceSum") || x->opset >= 18;
    pb n = node_begin(op_type, out, as_input ? IN(in, int64s(x, r, naxes, axes, ab, sizeof ab)) : IN(in));
    if (!as_input) attr_ints(&n, "axes", naxes, axes);
    attr_int(&n, "keepdims", keepdims);
    node_end(x, &n);
}

/* NHWC -> NCHW and back around a 2-D convolution or pool. */
static const int64_t TO_NCHW[4] = {0, 3, 1, 2}, TO_NHWC[4] = {0, 2, 3, 1};

static void transpose(ox *x, const char *in, const char *out, int n, const int64_t *perm) {
    pb t = node_begin("Transpose", out, IN(in));
    attr_ints(&t, "perm", n, perm);
    node_end(x, &t);
}

static void spatial_attrs(pb *n, const em_attrs *a, bool conv) {
    attr_ints(n, "strides", 2, (int64_t[]){a->i[0], a->i[1]});
    if (conv) attr_ints(n, "dilations", 2, (int64_t[]){a->i[2], a->i[3]});
    else attr_ints(n, "kernel_shape", 2, (int64_t[]){a->i[2], a->i[3]});
    /* TensorFlow's SAME puts the odd padding after: SAME_UPPER */
    attr_string(n, "auto_pad", a->i[4] == EM_PAD_SAME ? "SAME_UPPER" : "VALID");
}

/* GELU's tanh form, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), from basic ops (Gelu is opset 20). */
static void gelu_tanh(ox *x, const rec *r, const char *in, const char *out) {
    char c[6][512], k[3][512];
    em_dtype dt = r->dtype;
    node(x, "Mul", helper(x, r, c[0], 512), IN(in, in));
    node(x, "Mul", helper(x, r, c[1], 512), IN(c[0], in));
    node(x, "Mul", helper(x, r, c[2], 512), IN(c[1], scalar(x, r, dt, 0.044715, k[0], 512)));
    node(x, "Add", helper(x, r, c[3], 512), IN(in, c[2]));
    node(x, "Mul", helper(x, r, c[4], 512), IN(c[3], scalar(x, r, dt, sqrt(2 / M_PI), k[1], 512)));
    node(x, "Tanh", helper(x, r, c[5], 512), IN(c[4]));
    node(x, "Add", helper(x, r, c[0], 512), IN(c[5], scalar(x, r, dt, 1, k[2], 512)));
    node(x, "Mul", helper(x, r, c[1], 512), IN(c[0], in));
    node(x, "Mul", out, IN(c[1], scalar(x, r, dt, 0.5, k[0], 512)));
}

/* Scaled dot-product attention written out: softmax(scale q k^T + mask) v.
 * Ember's node is a flat buffer of the result and the statistics its
 * gradient keeps, which a slice and a reshape take the result from: the
 * ONNX value is the flat result alone. */
static int attention(ox *x, const rec *r) {
    const rec *q = find(x, r->in[0]), *k = find(x, r->in[1]);
    if (!q || !k || q->ndim != 4 || k->ndim != 4) return fail_op(x, r, "needs 4-D q and k");
    int64_t tq = q->shape[2], tk = k->shape[2], d = q->shape[3];
    char b[5][512];
    em_dtype dt = r->dtype;
    double scale = r->attrs.f[0] ? r->attrs.f[0] : 1 / sqrt((double)d);
    transpose(x, r->in[1], helper(x, r, b[0], 512), 4, (const int64_t[]){0, 1, 3, 2});
    node(x, "MatMul", helper(x, r, b[1], 512), IN(r->in[0], b[0]));
    node(x, "Mul", helper(x, r, b[0], 512), IN(b[1], scalar(x, r, dt, scale, b[2], 512)));
    if (r->n == 4) {
        node(x, "Add", helper(x, r, b[1], 512), IN(b[0], r->in[3]));
        snprintf(b[0], 512, "%s", b[1]);
    }
    if (r->attrs.i[0]) { /* causal: query i sees keys j <= i + tk - tq */
        if (tq < 0 || tk < 0) return fail_op(x, r, "is causal over a length that depends on the batch size");
        size_t size = em_dtype_size(dt);
        unsigned char *mask = calloc((size_t)(tq * tk), size);
        if (!mask) {
            em__error("%s: out of memory", x->op);
            return -1;
        }
        for (int64_t i = 0; i < tq; i++)
            for (int64_t j = i + tk - tq + 1; j < tk; j++) scalar_bytes(dt, -1e30, mask + (size_t)(i * tk + j) * size);
        helper(x, r, b[3], 512);
        initializer(x, b[3], dt, 2, (const int64_t[]){tq, tk}, mask, (size_t)(tq * tk) * size);
        free(mask);
        node(x, "Add", helper(x, r, b[1], 512), IN(b[0], b[3]));
        snprintf(b[0], 512, "%s", b[1]);
    }
    pb n = node_begin("Softmax", helper(x, r, b[1], 512), IN(b[0]));
    attr_int(&n, "axis", -1);
    node_end(x, &n);
    node(x, "MatMul", helper(x, r, b[0], 512), IN(b[1], r->in[2]));
    node(x, "Reshape", r->name, IN(b[0], int64s(x, r, 1, (const int64_t[]){-1}, b[1], 512)));
    return 0;
}

/* Ops that are one ONNX node with the same inputs and no attributes. */
static const char *const SAME_OP[][2] = {
    {"add", "Add"},       {"sub", "Sub"},           {"mul", "Mul"},
    {"div", "Div"},       {"pow", "Pow"},           {"maximum", "Max"},
    {"minimum", "Min"},   {"neg", "Neg"},           {"abs", "Abs"},
    {"sign", "Sign"},     {"sqrt", "Sqrt"},         {"exp", "Exp"},
    {"log", "Log"},       {"erf", "Erf"},           {"relu", "Relu"},
    {"sigmoid", "Sigmoid"}, {"tanh", "Tanh"},       {"softplus", "Softplus"},
    {"where", "Where"},   {"equal", "Equal"},       {"less", "Less"},
    {"less_equal", "LessOrEqual"}, {"greater", "Greater"}, {"greater_equal", "GreaterOrEqual"},
    {"logical_and", "And"}, {"logical_or", "Or"},   {"logical_not", "Not"},
    {"stop_gradient", "Identity"}, {"concat", "Concat"}, {"gather", "Gather"},
};

static int emit(ox *x, rec *r) {
    const char *out = r->name, *in0 = r->n > 0 ? r->in[0] : NULL, *in1 = r->n > 1 ? r->in[1] : NULL;
    const em_attrs *a = &r->attrs;
    char b[4][512];
    /* ONNX's Gather takes int32 or int64 indices: int16 and uint16 token ids are cast to int64 first */
    const rec *ind = !strcmp(r->op, "gather") ? find(x, in1) : NULL;
    if (ind && ind->dtype != EM_I32 && ind->dtype != EM_I64) {
        pb n = node_begin("Cast", helper(x, r, b[0], 512), IN(in1));
        attr_int(&n, "to", onnx_dtype(EM_I64));
        node_end(x, &n);
        in1 = b[0];
        pb g = node_begin("Gather", out, IN(in0, in1));
        attr_int(&g, "axis", a->i[0]);
        node_end(x, &g);
        return 0;
    }
    for (size_t i = 0; i < sizeof SAME_OP / sizeof SAME_OP[0]; i++) {
        if (strcmp(r->op, SAME_OP[i][0])) continue;
        pb n = {0};
        for (int k = 0; k < r->n; k++) pb_str(&n, NODE_INPUT, r->in[k]);
        pb_str(&n, NODE_OUTPUT, out);
        pb_str(&n, NODE_NAME, out);
        pb_str(&n, NODE_OP_TYPE, SAME_OP[i][1]);
        if (!strcmp(r->op, "concat") || !strcmp(r->op, "gather")) attr_int(&n, "axis", a->i[0]);
        node_end(x, &n);
        return 0;
    }
    const char *op = r->op;
    em_dtype dt = r->dtype;
    if (!strcmp(op, "square")) {
        node(x, "Mul", out, IN(in0, in0));
    } else if (!strcmp(op, "rsqrt")) {
        node(x, "Sqrt", helper(x, r, b[0], 512), IN(in0));
        node(x, "Reciprocal", out, IN(b[0]));
    } else if (!strcmp(op, "log1p")) {
        node(x, "Add", helper(x, r, b[0], 512), IN(in0, scalar(x, r, dt, 1, b[1], 512)));
        node(x, "Log", out, IN(b[0]));
    } else if (!strcmp(op, "silu")) {
        node(x, "Sigmoid", helper(x, r, b[0], 512), IN(in0));
        node(x, "Mul", out, IN(in0, b[0]));
    } else if (!strcmp(op, "gelu")) { /* 0.5 x (1 + erf(x / sqrt 2)) */
        node(x, "Mul", helper(x, r, b[0], 512), IN(in0, scalar(x, r, dt, M_SQRT1_2, b[1], 512)));
        node(x, "Erf", helper(x, r, b[2], 512), IN(b[0]));
        node(x, "Add", helper(x, r, b[0], 512), IN(b[2], scalar(x, r, dt, 1, b[1], 512)));
        node(x, "Mul", helper(x, r, b[2], 512), IN(b[0], in0));
        node(x, "Mul", out, IN(b[2], scalar(x, r, dt, 0.5, b[1], 512)));
    } else if (!strcmp(op, "gelu_tanh")) {
        gelu_tanh(x, r, in0, out);
    } else if (!strcmp(op, "leaky_relu") || !strcmp(op, "elu")) {
        pb n = node_begin(op[0] == 'l' ? "LeakyRelu" : "Elu", out, IN(in0));
        attr_float(&n, "alpha", op[0] == 'l' ? a->f[0] : 1.0);
        node_end(x, &n);
    } else if (!strcmp(op, "clip")) {
        node(x, "Clip", out, IN(in0, scalar(x, r, dt, a->f[0], b[0], 512), scalar(x, r, dt, a->f[1], b[1], 512)));
    } else if (!strcmp(op, "not_equal")) {
        node(x, "Equal", helper(x, r, b[0], 512), IN(in0, in1));
        node(x, "Not", out, IN(b[0]));
    } else if (!strcmp(op, "cast")) {
        pb n = node_begin("Cast", out, IN(in0));
        attr_int(&n, "to", onnx_dtype((em_dtype)a->dtype));
        node_end(x, &n);
    } else if (!strcmp(op, "sum") || !strcmp(op, "max") || !strcmp(op, "min") || !strcmp(op, "prod") ||
               !strcmp(op, "log_sum_exp")) {
        static const char *const names[][2] = {{"sum", "ReduceSum"}, {"max", "ReduceMax"}, {"min", "ReduceMin"},
                                                {"prod", "ReduceProd"}, {"log_sum_exp", "ReduceLogSumExp"}};
        const char *t = NULL;
        for (int i = 0; i < 5; i++)
            if (!strcmp(op, names[i][0])) t = names[i][1];
        int64_t axes[EM_MAX_DIMS];
        int naxes = mask_axes(a->i[0], rank_of(x, in0), axes);
        reduce(x, r, t, in0, out, naxes, axes, a->i[1] != 0);
    } else if (!strcmp(op, "moments")) { /* [mean, variance] stacked on a new first axis, as the op packs them */
        int64_t axes[EM_MAX_DIMS];
        int naxes = mask_axes(a->i[0], rank_of(x, in0), axes);
        reduce(x, r, "ReduceMean", in0, helper(x, r, b[0], 512), naxes, axes, true);
        node(x, "Sub", helper(x, r, b[1], 512), IN(in0, b[0]));
        node(x, "Mul", helper(x, r, b[2], 512), IN(b[1], b[1]));
        reduce(x, r, "ReduceMean", b[2], helper(x, r, b[1], 512), naxes, axes, false); /* the variance */
        reduce(x, r, "ReduceMean", in0, helper(x, r, b[2], 512), naxes, axes, false);  /* the mean */
        int64s(x, r, 1, (const int64_t[]){0}, b[3], 512);
        node(x, "Unsqueeze", helper(x, r, b[0], 512), IN(b[2], b[3]));
        node(x, "Unsqueeze", helper(x, r, b[2], 512), IN(b[1], b[3]));
        pb n = node_begin("Concat", out, IN(b[0], b[2]));
        attr_int(&n, "axis", 0);
        node_end(x, &n);
    } else if (!strcmp(op, "argmax") || !strcmp(op, "argmin")) {
        int64_t axes[EM_MAX_DIMS];
        mask_axes(a->i[0], rank_of(x, in0), axes);
        pb n = node_begin(op[3] == 'm' && op[4] == 'a' ? "ArgMax" : "ArgMin", out, IN(in0));
        attr_int(&n, "axis", axes[0]);
        attr_int(&n, "keepdims", 0);
        node_end(x, &n);
    } else if (!strcmp(op, "matmul")) {
        const char *ab[2] = {in0, in1};
        for (int k = 0; k < 2; k++) {
            if (!a->i[k]) continue;
            int rank = rank_of(x, ab[k]);
            int64_t perm[EM_MAX_DIMS];
            for (int d = 0; d < rank; d++) perm[d] = d;
            perm[rank - 2] = rank - 1;
            perm[rank - 1] = rank - 2;
            transpose(x, ab[k], helper(x, r, b[k], 512), rank, perm);
            ab[k] = b[k];
        }
        node(x, "MatMul", out, IN(ab[0], ab[1]));
    } else if (!strcmp(op, "reshape")) {
        int64_t shape[EM_MAX_DIMS];
        int unknown = 0;
        for (int d = 0; d < r->ndim; d++) unknown += (shape[d] = r->shape[d]) < 0;
        if (unknown > 1) return fail_op(x, r, "has more than one dimension of unknown size");
        node(x, "Reshape", out, IN(in0, int64s(x, r, r->ndim, shape, b[0], 512)));
    } else if (!strcmp(op, "broadcast_to")) {
        const rec *from = find(x, in0);
        int64_t shape[EM_MAX_DIMS];
        for (int d = 0; d < r->ndim; d++) {
            int k = d - (r->ndim - (from ? from->ndim : 0)); /* the input's dimension, aligned at the end */
            if (r->shape[d] < 0 && (k < 0 || from->shape[k] >= 0))
                return fail_op(x, r, "broadcasts to a size that depends on the batch size");
            shape[d] = r->shape[d] < 0 ? 1 : r->shape[d]; /* Expand keeps the input's batch */
        }
        node(x, "Expand", out, IN(in0, int64s(x, r, r->ndim, shape, b[0], 512)));
    } else if (!strcmp(op, "transpose")) {
        int rank = r->ndim;
        int64_t perm[EM_MAX_DIMS];
        for (int d = 0; d < rank; d++) perm[d] = a->ni ? (a->i[d] < 0 ? a->i[d] + rank : a->i[d]) : rank - 1 - d;
        transpose(x, in0, out, rank, perm);
    } else if (!strcmp(op, "slice")) {
        int rank = r->ndim;
        int64_t starts[EM_MAX_DIMS], ends[EM_MAX_DIMS], axes[EM_MAX_DIMS];
        for (int d = 0; d < rank; d++) {
            if (em__symbolic(a->i[d])) return fail_op(x, r, "begins at an offset that depends on the batch size");
            starts[d] = a->i[d];
            ends[d] = r->shape[d] < 0 ? INT64_MAX : a->i[d] + r->shape[d];
            axes[d] = d;
        }
        node(x, "Slice", out,
             IN(in0, int64s(x, r, rank, starts, b[0], 512), int64s(x, r, rank, ends, b[1], 512),
                int64s(x, r, rank, axes, b[2], 512)));
    } else if (!strcmp(op, "pad")) {
        int rank = r->ndim;
        int64_t pads[2 * EM_MAX_DIMS];
        for (int d = 0; d < rank; d++) {
            pads[d] = a->i[2 * d];
            pads[rank + d] = a->i[2 * d + 1];
        }
        node(x, "Pad", out,
             IN(in0, int64s(x, r, 2 * rank, pads, b[0], 512), scalar(x, r, dt, a->f[0], b[1], 512)));
    } else if (!strcmp(op, "tile")) {
        int64_t reps[EM_MAX_DIMS];
        for (int d = 0; d < r->ndim; d++) reps[d] = a->i[d];
        node(x, "Tile", out, IN(in0, int64s(x, r, r->ndim, reps, b[0], 512)));
    } else if (!strcmp(op, "softmax") || !strcmp(op, "log_softmax")) {
        pb n = node_begin(op[0] == 's' ? "Softmax" : "LogSoftmax", out, IN(in0));
        attr_int(&n, "axis", a->i[0]);
        node_end(x, &n);
    } else if (!strcmp(op, "attention")) {
        if (attention(x, r)) return -1;
    } else if (!strcmp(op, "fill_like")) {
        node(x, "Shape", helper(x, r, b[0], 512), IN(in0));
        pb n = node_begin("ConstantOfShape", out, IN(b[0]));
        attr_scalar(&n, "value", dt, a->f[0]);
        node_end(x, &n);
    } else if (!strcmp(op, "count_elements")) { /* the product of the counted axes' sizes */
        int64_t axes[EM_MAX_DIMS];
        int naxes = mask_axes(a->i[0], rank_of(x, in0), axes);
        node(x, "Shape", helper(x, r, b[0], 512), IN(in0));
        node(x, "Gather", helper(x, r, b[1], 512), IN(b[0], int64s(x, r, naxes, axes, b[2], 512)));
        reduce(x, r, "ReduceProd", b[1], helper(x, r, b[0], 512), 1, (const int64_t[]){0}, false);
        pb n = node_begin("Cast", out, IN(b[0]));
        attr_int(&n, "to", onnx_dtype(dt));
        node_end(x, &n);
    } else if (!strcmp(op, "layer_norm") || !strcmp(op, "rms_norm")) {
        /* the row statistics the _y op reads: that op computes everything */
    } else if (!strcmp(op, "layer_norm_y")) {
        pb n = node_begin("LayerNormalization", out, IN(r->in[1], r->in[2], r->in[3]));
        attr_int(&n, "axis", -1);
        attr_float(&n, "epsilon", a->f[0]);
        node_end(x, &n);
    } else if (!strcmp(op, "rms_norm_y")) { /* x / sqrt(mean(x^2) + eps) * gamma */
        const char *xin = r->in[1];
        node(x, "Mul", helper(x, r, b[0], 512), IN(xin, xin));
        reduce(x, r, "ReduceMean", b[0], helper(x, r, b[1], 512), 1, (int64_t[]){r->ndim - 1}, true);
        node(x, "Add", helper(x, r, b[0], 512), IN(b[1], scalar(x, r, dt, a->f[0], b[2], 512)));
        node(x, "Sqrt", helper(x, r, b[1], 512), IN(b[0]));
        node(x, "Div", helper(x, r, b[0], 512), IN(xin, b[1]));
        node(x, "Mul", out, IN(b[0], r->in[2]));
    } else if (!strcmp(op, "conv2d") || !strcmp(op, "max_pool") || !strcmp(op, "avg_pool")) {
        bool conv = op[0] == 'c';
        transpose(x, in0, helper(x, r, b[0], 512), 4, TO_NCHW);
        if (conv) transpose(x, in1, helper(x, r, b[1], 512), 4, (const int64_t[]){3, 2, 0, 1}); /* HWIO -> OIHW */
        pb n = node_begin(conv ? "Conv" : op[0] == 'm' ? "MaxPool" : "AveragePool", helper(x, r, b[2], 512),
                          conv ? IN(b[0], b[1]) : IN(b[0]));
        spatial_attrs(&n, a, conv);
        node_end(x, &n);
        transpose(x, b[2], out, 4, TO_NHWC);
    } else {
        return fail_op(x, r, "has no ONNX mapping");
    }
    return 0;
}

/* ---- the model ---- */

typedef struct {
    ox *x;
    int nfetch;
    const char *const *fetch_names;
    char (*fetch_node)[512];
} export_ctx;

static int emit_graph(ox *x, const export_ctx *c) {
    for (int i = 0; i < x->n; i++) {
        rec *r = &x->r[i];
        if (!r->needed) continue;
        if (!strcmp(r->op, "Placeholder")) {
            value_info(&x->graph, GRAPH_INPUT, r->name, r->dtype, r->ndim, r->shape);
        } else if (!strcmp(r->op, "Variable") || !strcmp(r->op, "Const")) {
            em_tensor *t = r->value ? r->value : em_find_variable(r->name);
            if (!t) {
                em_clear_error();
                em__error("%s: variable %s, which the graph reads, no longer exists", x->op, r->name);
                return -1;
            }
            em_tensor *host = em__to_host(t);
            if (!host) return -1;
            initializer(x, r->name, (em_dtype)host->dtype, host->ndim, host->shape, host->data,
                        (size_t)host->numel * em_dtype_size((em_dtype)host->dtype));
            em__unref(host);
        } else if (emit(x, r)) {
            return -1;
        }
    }
    for (int f = 0; f < c->nfetch; f++) {
        rec *r = find(x, c->fetch_node[f]);
        if (strcmp(c->fetch_names[f], r->name)) node(x, "Identity", c->fetch_names[f], IN(r->name));
        value_info(&x->graph, GRAPH_OUTPUT, c->fetch_names[f], r->dtype, r->ndim, r->shape);
    }
    return 0;
}

static int fill_model(em__file_out *out, void *model_) {
    const pb *model = model_;
    em__file_put(out, model->p, model->n);
    return 0;
}

int em_graph_export_onnx(em_graph *g, const char *path, int nfetch, em_tensor *const *fetches,
                         const char *const *fetch_names, int opset) {
    const char *op = "graph_export_onnx";
    if (!g || !path || nfetch <= 0 || !fetches || !fetch_names) {
        em__error("%s: graph, path, fetches and fetch_names must be given, with nfetch > 0 (got %d)", op, nfetch);
        return -1;
    }
    if (opset < OPSET_MIN || opset > OPSET_MAX) {
        em__error("%s: opset %d is not one Ember writes (%d to %d)", op, opset, OPSET_MIN, OPSET_MAX);
        return -1;
    }
    ox x = {.op = op, .opset = opset};
    export_ctx c = {&x, nfetch, fetch_names, calloc((size_t)nfetch, 512)};
    int rc = -1;
    if (!c.fetch_node) {
        em__error("%s: out of memory", op);
        goto done;
    }
    if (em__graph_visit(g, keep_node, &x)) goto done;
    for (int f = 0; f < nfetch; f++) {
        if (!fetch_names[f] || !fetch_names[f][0]) {
            em__error("%s: fetch_names[%d] is NULL or empty", op, f);
            goto done;
        }
        for (int k = 0; k < f; k++)
            if (!strcmp(fetch_names[k], fetch_names[f])) {
                em__error("%s: two fetches are named \"%s\"", op, fetch_names[f]);
                goto done;
            }
        rec *r = em__graph_name_of(g, fetches[f], c.fetch_node[f], 512) ? find(&x, c.fetch_node[f]) : NULL;
        if (!r) {
            em__error("%s: fetch %d (\"%s\") is not a tensor of this graph", op, f, fetch_names[f]);
            goto done;
        }
        need(&x, r);
    }
    /* A fetch named like another value of the graph would give it two producers. */
    for (int f = 0; f < nfetch; f++) {
        rec *clash = find(&x, fetch_names[f]);
        if (clash && clash->needed && strcmp(c.fetch_node[f], fetch_names[f])) {
            em__error("%s: fetch name \"%s\" is the name of another node of the graph", op, fetch_names[f]);
            goto done;
        }
    }
    pb_str(&x.graph, GRAPH_NAME, "ember");
    if (emit_graph(&x, &c)) goto done;
    pb model = {0}, set = {0};
    static const int ir_version[OPSET_MAX - OPSET_MIN + 1] = {8, 8, 9, 9, 10}; /* onnx's version table */
    pb_int(&model, MODEL_IR_VERSION, ir_version[opset - OPSET_MIN]);
    pb_str(&model, MODEL_PRODUCER_NAME, "ember");
    char version[32];
    snprintf(version, sizeof version, "%d.%d", EMBER_VERSION_MAJOR, EMBER_VERSION_MINOR);
    pb_str(&model, MODEL_PRODUCER_VERSION, version);
    pb_msg(&model, MODEL_GRAPH, &x.graph);
    pb_int(&set, OPSET_VERSION, opset);
    pb_msg(&model, MODEL_OPSET, &set);
    if (model.oom) em__error("%s: out of memory", op);
    else rc = em__write_atomic(op, path, fill_model, &model);
    pb_free(&model);
done:
    free(c.fetch_node);
    ox_free(&x);
    return rc;
}
