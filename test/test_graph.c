/* The tracer and frozen graphs: placeholders and feeds, running only what the
 * fetches need, the optimizations, the memory plan, and the traps of
 * freezing a step. */
#include "common.h"
#include "internal.h" /* EM_SYM_SIZE: the stand-in no user may see */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void teardown(void) { em_shutdown(); }

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
/* Counts heap allocations while `counting` is set (the sanitizers replace
 * malloc themselves, so the count is taken in plain builds only). */
#define COUNTS_ALLOCATIONS 1
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern int __posix_memalign(void **, size_t, size_t);
static _Atomic long allocations;
static _Atomic int counting;
void *malloc(size_t n) {
    if (counting) allocations++;
    return __libc_malloc(n);
}
void *calloc(size_t n, size_t m) {
    if (counting) allocations++;
    return __libc_calloc(n, m);
}
void *realloc(void *p, size_t n) {
    if (counting) allocations++;
    return __libc_realloc(p, n);
}
#endif

static em_tensor *f32(em_shape s, const float *v) { return em_tensor_from(EM_F32, s, v); }

START_TEST(test_placeholder_must_be_fed) {
    /* the lecture: t = p + 1; t.eval() is wrong, t.eval(feed_dict={p: 2.0}) is right */
    em_tensor *p = em_placeholder(EM_F32, EM_SHAPE0, "p");
    ck_assert_error(em_add_scalar(p, 1.0), "must be fed");
    ck_assert(isnan(em_item(p)));
    ck_assert_ptr_nonnull(strstr(em_last_error(), "placeholder"));
    em_clear_error();

    ck_assert_int_eq(em_trace_begin(), 0);
    em_tensor *t = em_add_scalar(p, 1.0);
    em_graph *g = em_trace_end();
    ck_assert_ptr_nonnull(g);
    em_tensor *out;
    ck_assert_int_eq(em_graph_run(g, 1, (em_feed[]){{p, em_scalar(EM_F32, 2)}}, 1, &t, &out), 0);
    ck_assert_double_eq(em_item(out), 3);
    ck_assert_int_eq(em_graph_run(g, 0, NULL, 1, &t, &out), -1);
    ck_assert_ptr_nonnull(strstr(em_last_error(), "placeholder 'p' must be fed"));
    em_clear_error();
    em_graph_release(g);
}
END_TEST

START_TEST(test_feed_errors_name_the_placeholder) {
    em_tensor *x = em_placeholder(EM_F32, EM_SHAPE(-1, 3), "input");
    em_trace_begin();
    em_tensor *y = em_sum(x, EM_AXES(1), false);
    em_graph *g = em_trace_end();
    em_tensor *out;
    ck_assert_int_eq(em_graph_run(g, 1, (em_feed[]){{x, em_zeros(EM_F64, EM_SHAPE(2, 3))}}, 1, &y, &out), -1);
    ck_assert_ptr_nonnull(strstr(em_last_error(), "placeholder 'input' is float32 [-1,3] but was fed float64 [2,3]"));
    em_clear_error();
    ck_assert_int_eq(em_graph_run(g, 1, (em_feed[]){{x, em_zeros(EM_F32, EM_SHAPE(2, 4))}}, 1, &y, &out), -1);
    ck_assert_ptr_nonnull(strstr(em_last_error(), "[2,4]"));
    em_clear_error();
    ck_assert_int_eq(em_graph_run(g, 0, NULL, 1, (em_tensor *[]){em_ones(EM_F32, EM_SHAPE(1))}, &out), -1);
    ck_assert_ptr_nonnull(strstr(em_last_error(), "not a tensor of this graph"));
    em_clear_error();
    em_graph_release(g);
}
END_TEST

START_TEST(test_unknown_dims_replan) {
    /* shape=[None, 3], traced with no data at all, run with batches of 2 and 5 */
    em_tensor *x = em_placeholder(EM_F32, EM_SHAPE(-1, 3), "x");
    em_tensor *w = em_tensor_from(EM_F32, EM_SHAPE(3, 1), (float[]){1, 10, 100});
    em_trace_begin();
    em_tensor *y = em_matmul(em_relu(x), w);
    em_graph *g = em_trace_end();
    em_tensor *out;
    float a[6] = {1, 2, 3, -1, -2, 4};
    ck_assert_int_eq(em_graph_run(g, 1, (em_feed[]){{x, f32(EM_SHAPE(2, 3), a)}}, 1, &y, &out), 0);
    ck_assert_tensor(out, EM_F32, EM_SHAPE(2, 1), ((double[]){321, 400}), 0);
    float b[15] = {0};
    b[14] = 1;
    ck_assert_int_eq(em_graph_run(g, 1, (em_feed[]){{x, f32(EM_SHAPE(5, 3), b)}}, 1, &y, &out), 0);
    ck_assert_tensor(out, EM_F32, EM_SHAPE(5, 1), ((double[]){0, 0, 0, 0, 100}), 0);
    ck_assert_int_eq(em_graph_get_stats(g).plans, 2);
    /* the first shape again reuses its plan */
    ck_assert_int_eq(em_graph_run(g, 1, (em_feed[]){{x, f32(EM_SHAPE(2, 3), a)}}, 1, &y, &out), 0);
    ck_assert_int_eq(em_graph_get_stats(g).plans, 2);
    em_graph_release(g);
}
END_TEST

START_TEST(test_traced_with_an_example) {
    em_tensor *x = em_placeholder(EM_F32, EM_SHAPE(-1, 2), "x");
    ck_assert_int_eq(em_placeholder_set(x, f32(EM_SHAPE(1, 2), (float[]){3, 4})), 0);
    em_trace_begin();
    em_tensor *y = em_mul(x, x);
    ck_assert_double_eq(em_get(y, (int64_t[]){0, 1}), 16); /* real values while tracing */
    em_graph *g = em_trace_end();
    ck_assert_int_eq(em_graph_get_stats(g).host_reads, 1);
    em_tensor *out;
    ck_assert_int_eq(em_graph_run(g, 1, (em_feed[]){{x, f32(EM_SHAPE(1, 2), (float[]){5, 6})}}, 1, &y, &out), 0);
    ck_assert_tensor(out, EM_F32, EM_SHAPE(1, 2), ((double[]){25, 36}), 0);
    ck_assert_int_eq(em_graph_run(g, 1, (em_feed[]){{x, em_ones(EM_F32, EM_SHAPE(3, 2))}}, 1, &y, &out), -1);
    ck_assert_ptr_nonnull(strstr(em_last_error(), "shape-only"));
    em_clear_error();
    ck_assert_int_eq(em_placeholder_set(x, em_ones(EM_F32, EM_SHAPE(2, 3))), -1);
    ck_assert_ptr_nonnull(strstr(em_last_error(), "placeholder_set"));
    em_clear_error();
    em_graph_release(g);
}
END_TEST

START_TEST(test_feeds_are_copied_into_stable_buffers) {
    em_tensor *x = em_placeholder(EM_F32, EM_SHAPE(3), "x");
    em_trace_begin();
    em_tensor *y = em_add_scalar(x, 1);
    em_graph *g = em_trace_end();
    float v[3] = {1, 2, 3};
    em_tensor *feed = em_tensor_from(EM_F32, EM_SHAPE(3), v), *first, *second;
    ck_assert_int_eq(em_graph_run(g, 1, (em_feed[]){{x, feed}}, 1, &y, &first), 0);
    const void *where = em_data(first);
    ck_assert_tensor(first, EM_F32, EM_SHAPE(3), ((double[]){2, 3, 4}), 0);
    /* another feed tensor, same buffers: results live at the same address */
    ck_assert_int_eq(em_graph_run(g, 1, (em_feed[]){{x, em_fill(EM_F32, EM_SHAPE(3), 9)}}, 1, &y, &second), 0);
    ck_assert_ptr_eq(second, first);
    ck_assert_ptr_eq(em_data(second), where);
    ck_assert_tensor(second, EM_F32, EM_SHAPE(3), ((double[]){10, 10, 10}), 0);
    /* the graph copied the feed: the caller's tensor is untouched and independent */
    ck_assert_tensor(feed, EM_F32, EM_SHAPE(3), ((double[]){1, 2, 3}), 0);
    em_graph_release(g);
}
END_TEST

START_TEST(test_only_needed_nodes_run) {
    em_tensor *x = em_placeholder(EM_F32, EM_SHAPE(4), "x");
    em_tensor *unused = em_placeholder(EM_F32, EM_SHAPE(4), "unused");
    em_trace_begin();
    em_tensor *a = em_exp(x);
    em_tensor *b = em_log(em_add(unused, x)); /* a branch the fetch does not need */
    em_graph *g = em_trace_end();
    ck_assert_ptr_nonnull(b);
    em_tensor *out;
    /* "unused" need not be fed: nothing fetched depends on it */
    ck_assert_int_eq(em_graph_run(g, 1, (em_feed[]){{x, em_zeros(EM_F32, EM_SHAPE(4))}}, 1, &a, &out), 0);
    ck_assert_tensor(out, EM_F32, EM_SHAPE(4), ((double[]){1, 1, 1, 1}), 0);
    ck_assert_int_eq(em_graph_get_stats(g).last_run_nodes, 1);
    em_graph_release(g);
}
END_TEST

START_TEST(test_reshape_of_a_strided_value_is_computed_each_run) {
    em_tensor *x = em_placeholder(EM_F32, EM_SHAPE(2, 3), "x");
    em_trace_begin();
    em_tensor *y = em_reshape(em_transpose(x, EM_ALL_AXES), EM_SHAPE(6)); /* a copy, not a view */
    em_graph *g = em_trace_end();
    em_tensor *out;
    ck_assert_int_eq(em_graph_run(g, 1, (em_feed[]){{x, f32(EM_SHAPE(2, 3), (float[]){1, 2, 3, 4, 5, 6})}}, 1, &y, &out), 0);
    ck_assert_tensor(out, EM_F32, EM_SHAPE(6), ((double[]){1, 4, 2, 5, 3, 6}), 0);
    ck_assert_int_eq(em_graph_run(g, 1, (em_feed[]){{x, f32(EM_SHAPE(2, 3), (float[]){7, 8, 9, 0, 1, 2})}}, 1, &y, &out), 0);
    ck_assert_tensor(out, EM_F32, EM_SHAPE(6), ((double[]){7, 0, 8, 1, 9, 2}), 0);
    em_graph_release(g);
}
END_TEST

START_TEST(test_cse_and_constant_folding) {
    em_tensor *x = em_placeholder(EM_F64, EM_SHAPE(3), "x");
    em_tensor *c = em_tensor_from(EM_F64, EM_SHAPE(3), (double[]){1, 2, 3});
    em_trace_begin();
    em_tensor *k = em_exp(em_mul(c, c)); /* constants only: folded */
    em_tensor *y = em_add(em_mul(x, k), em_mul(x, k)); /* x*k twice: merged */
    em_graph *g = em_trace_end();
    em_graph_stats s = em_graph_get_stats(g);
    ck_assert_int_eq(s.folded, 2);
    ck_assert_int_eq(s.cse_merged, 1);
    ck_assert_int_eq(s.nodes, 2);
    em_tensor *out;
    ck_assert_int_eq(em_graph_run(g, 1, (em_feed[]){{x, em_ones(EM_F64, EM_SHAPE(3))}}, 1, &y, &out), 0);
    ck_assert_tensor(out, EM_F64, EM_SHAPE(3), ((double[]){2 * exp(1.0), 2 * exp(4.0), 2 * exp(9.0)}), 1e-15);
    em_graph_release(g);
}
END_TEST

START_TEST(test_fusion_and_memory_plan) {
    em_tensor *x = em_placeholder(EM_F32, EM_SHAPE(-1), "x");
    em_trace_begin();
    em_tensor *y = x;
    for (int i = 0; i < 6; i++) y = em_tanh(em_mul_scalar(y, 0.5)); /* a chain of 12 elementwise nodes */
    em_tensor *z = em_sum(y, EM_ALL_AXES, false);
    em_graph *g = em_trace_end();
    em_tensor *out;
    int64_t n = 100000;
    em_tensor *ones = em_ones(EM_F32, EM_SHAPE(n));
    ck_assert_int_eq(em_graph_run(g, 1, (em_feed[]){{x, ones}}, 1, &z, &out), 0);
    em_graph_stats s = em_graph_get_stats(g);
    ck_assert_int_ge(s.fused, 8);
    ck_assert_int_lt(s.arena_bytes, s.unplanned_bytes);
    /* the same as eager, to the last bit */
    em_tensor *e = ones;
    for (int i = 0; i < 6; i++) e = em_tanh(em_mul_scalar(e, 0.5));
    ck_assert_float_eq(em_item(em_sum(e, EM_ALL_AXES, false)), em_item(out));
    em_graph_release(g);
}
END_TEST

static const em_profile_row *profile_row(const em_profile_row *rows, int n, const char *op) {
    for (int r = 0; r < n; r++)
        if (strcmp(rows[r].op, op) == 0) return &rows[r];
    return NULL;
}

/* The per-op profile counts every kernel call, eager and replayed, a fused chain as one row, and nothing
 * while it is off. */
START_TEST(test_profile_counts_kernels) {
    em_tensor *x = em_placeholder(EM_F32, EM_SHAPE(-1), "x");
    em_trace_begin();
    em_tensor *y = em_sum(em_tanh(em_mul_scalar(x, 0.5)), EM_ALL_AXES, false);
    em_graph *g = em_trace_end();
    em_tensor *big = em_ones(EM_F32, EM_SHAPE(100000)), *out;
    em_profile_reset();
    em_profile_start();
    for (int i = 0; i < 3; i++) em_tanh(big);
    em_conv2d(em_ones(EM_BF16, EM_SHAPE(1, 4, 4, 1)), em_ones(EM_BF16, EM_SHAPE(3, 3, 1, 1)), NULL, EM_PAD_SAME, NULL);
    ck_assert_int_eq(em_graph_run(g, 1, (em_feed[]){{x, big}}, 1, &y, &out), 0);
    em_profile_stop();
    em_tanh(big); /* not counted */
    em_profile_row rows[64];
    int n = em_profile_rows(rows, 64);
    ck_assert_int_ge(n, 3);
    ck_assert_int_le(n, 64);
    const em_profile_row *tanh_row = profile_row(rows, n, "tanh"), *sum = profile_row(rows, n, "sum"),
                         *fused = profile_row(rows, n, "(fused pointwise chain)");
    ck_assert_ptr_nonnull(tanh_row);
    ck_assert_int_eq(tanh_row->calls, 3); /* the replay's tanh ran in the fused chain */
    ck_assert(tanh_row->seconds > 0);
    ck_assert_ptr_nonnull(sum);
    ck_assert_int_eq(sum->calls, 1);
    ck_assert_ptr_nonnull(fused);
    ck_assert_int_eq(fused->calls, 1);
    ck_assert_ptr_null(profile_row(rows, n, "cast")); /* the bfloat16 convolution runs on float32 copies, counted in its row */
    for (int r = 1; r < n; r++) ck_assert(rows[r - 1].seconds >= rows[r].seconds);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ck_assert_int_eq(em_profile_print(f), 0);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(text, "tanh"));
    ck_assert_ptr_nonnull(strstr(text, "(all kernels)"));
    free(text);
    em_profile_reset();
    ck_assert_int_eq(em_profile_rows(rows, 64), 0);
    ck_assert_int_eq(em_profile_rows(NULL, 1), -1);
    ck_assert_ptr_nonnull(strstr(em_last_error(), "em_profile_rows"));
    ck_assert_int_eq(em_profile_print(NULL), -1);
    em_graph_release(g);
}
END_TEST

START_TEST(test_independent_nodes_run_at_once) {
    /* two branches that do not depend on each other: one level runs both */
    em_tensor *x = em_placeholder(EM_F32, EM_SHAPE(256, 256), "x");
    em_tensor *w = em_tensor_from(EM_F32, EM_SHAPE(256, 256), em_data(em_random_uniform(EM_F32, EM_SHAPE(256, 256), -1, 1)));
    em_trace_begin();
    em_tensor *a = em_matmul(x, w), *b = em_matmul_t(x, w, false, true);
    em_tensor *y = em_sum(em_mul(em_tanh(a), em_sigmoid(b)), EM_ALL_AXES, false);
    em_graph *g = em_trace_end();
    em_tensor *feed = em_random_uniform(EM_F32, EM_SHAPE(256, 256), -1, 1), *out;
    float result[2];
    for (int threads = 1; threads <= 2; threads++) {
        em_set_num_threads(threads);
        ck_assert_int_eq(em_graph_run(g, 1, (em_feed[]){{x, feed}}, 1, &y, &out), 0);
        result[threads - 1] = (float)em_item(out);
        ck_assert_int_eq(em_graph_get_stats(g).parallel_levels > 0, threads == 2);
    }
    ck_assert_float_eq(result[0], result[1]); /* identical for any thread count */
    em_set_num_threads(0);
    em_graph_release(g);
}
END_TEST

START_TEST(test_variables_are_shared_with_eager_code) {
    em_tensor *v = em_get_variable("shared/v", EM_F32, EM_SHAPE(2), EM_INIT_CONST(1));
    em_tensor *x = em_placeholder(EM_F32, EM_SHAPE(2), "x");
    em_trace_begin();
    em_tensor *y = em_mul(x, v);
    em_graph *g = em_trace_end();
    em_tensor *out, *two = em_fill(EM_F32, EM_SHAPE(2), 2);
    ck_assert_int_eq(em_graph_run(g, 1, (em_feed[]){{x, two}}, 1, &y, &out), 0);
    ck_assert_tensor(out, EM_F32, EM_SHAPE(2), ((double[]){2, 2}), 0);
    ck_assert_int_eq(em_assign(v, em_fill(EM_F32, EM_SHAPE(2), 5)), 0); /* eager update */
    ck_assert_int_eq(em_graph_run(g, 1, (em_feed[]){{x, two}}, 1, &y, &out), 0);
    ck_assert_tensor(out, EM_F32, EM_SHAPE(2), ((double[]){10, 10}), 0);
    em_graph_release(g);
}
END_TEST

START_TEST(test_random_nodes_draw_anew_each_run) {
    em_set_seed(7);
    em_tensor *x = em_placeholder(EM_F32, EM_SHAPE(1000), "x");
    em_trace_begin();
    em_tensor *y = em_dropout(x, 0.5);
    em_graph *g = em_trace_end();
    em_tensor *ones = em_ones(EM_F32, EM_SHAPE(1000)), *out;
    ck_assert_int_eq(em_graph_run(g, 1, (em_feed[]){{x, ones}}, 1, &y, &out), 0);
    em_tensor *first = em_copy(out);
    /* a shape-only trace draws nothing for a batch it does not know yet */
    em_tensor *batch = em_placeholder(EM_F32, EM_SHAPE(-1, 4096), "batch");
    em_trace_begin();
    em_tensor *dropped = em_dropout(batch, 0.5);
    ck_assert_ptr_null(em_data(dropped));
    em_clear_error();
    em_graph_release(em_trace_end());
    ck_assert_int_eq(em_graph_run(g, 1, (em_feed[]){{x, ones}}, 1, &y, &out), 0);
    ck_assert_int_ne(memcmp(em_data(first), em_data(out), 4000), 0);
    em_graph_release(g);
}
END_TEST

/* g's Graphviz export, through a temporary file, into text (NUL-terminated, cut to size). */
static void read_dot(em_graph *g, char *text, size_t size) {
    char path[] = "/tmp/ember_graph_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(em_graph_write_dot(g, path), 0);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    size_t got = fread(text, 1, size - 1, f);
    text[got] = '\0';
    fclose(f);
    remove(path);
}

START_TEST(test_dot_export_groups_name_scopes) {
    em_tensor *x = em_placeholder(EM_F32, EM_SHAPE(-1, 5), "input");
    em_tensor *w = em_get_variable("W", EM_F32, EM_SHAPE(5, 1), EM_INIT_NORMAL(0, 1));
    em_trace_begin();
    em_name_scope_begin("Wx_plus_b");
    em_tensor *y = em_matmul(x, w);
    em_name_scope_end();
    em_graph *g = em_trace_end();
    ck_assert_ptr_nonnull(y);
    char text[4096];
    read_dot(g, text, sizeof text);
    ck_assert_ptr_nonnull(strstr(text, "subgraph cluster_0"));
    ck_assert_ptr_nonnull(strstr(text, "label=\"Wx_plus_b\""));
    ck_assert_ptr_nonnull(strstr(text, "\"W\" -> \"Wx_plus_b/matmul_0\""));
    ck_assert_ptr_nonnull(strstr(text, "\"input\" [shape=invhouse]"));
    em_graph_release(g);
}
END_TEST

/* A small classifier: 4 -> 8 ReLU -> dropout -> 3, Adam. */
typedef struct {
    em_tensor *w1, *b1, *w2, *b2;
} net;

static net make_net(const char *scope) {
    em_variable_scope_begin(scope, EM_REUSE_FALSE);
    net n = {
        em_get_variable("w1", EM_F32, EM_SHAPE(4, 8), (em_initializer){.kind = EM_INIT_GLOROT_UNIFORM, .seed = 3}),
        em_get_variable("b1", EM_F32, EM_SHAPE(8), EM_INIT_CONST(0.1)),
        em_get_variable("w2", EM_F32, EM_SHAPE(8, 3), (em_initializer){.kind = EM_INIT_GLOROT_UNIFORM, .seed = 4}),
        em_get_variable("b2", EM_F32, EM_SHAPE(3), EM_INIT_CONST(0)),
    };
    em_variable_scope_end();
    return n;
}

static em_tensor *train_step(net *n, em_optimizer *opt, em_tensor *x, em_tensor *y, em_tensor **loss) {
    em_tape *tape = em_tape_begin(false);
    em_tensor *h = em_dropout(em_relu(em_add(em_matmul(x, n->w1), n->b1)), 0.8);
    em_tensor *logits = em_add(em_matmul(h, n->w2), n->b2);
    *loss = em_mean(em_sparse_softmax_cross_entropy_with_logits(y, logits), EM_ALL_AXES, false);
    em_tape_stop(tape);
    em_tensor *train = em_minimize_op(opt, tape, *loss, 4, (em_tensor *[]){n->w1, n->b1, n->w2, n->b2});
    em_tape_release(tape);
    return train;
}

static void batch(int step, em_tensor **x, em_tensor **y) {
    int64_t rows = 6 + step % 3; /* the batch size changes: unknown dims re-plan */
    float xs[8 * 4];
    int64_t ys[8];
    for (int64_t r = 0; r < rows; r++) {
        for (int k = 0; k < 4; k++) xs[r * 4 + k] = (float)sin(0.7 * (double)(step * 8 + r) + k);
        ys[r] = (step + r) % 3;
    }
    *x = em_tensor_from(EM_F32, EM_SHAPE(rows, 4), xs);
    *y = em_tensor_from(EM_I64, EM_SHAPE(rows), ys);
}

START_TEST(test_50_steps_graph_equals_eager_bit_for_bit) {
    em_set_num_threads(1);
    net eager = make_net("eager"), graph = make_net("graph");
    em_optimizer *eopt = em_adam(0.01, 0.9, 0.999, 1e-8), *gopt = em_adam(0.01, 0.9, 0.999, 1e-8);
    float eager_loss[50], graph_loss[50];

    em_set_seed(11);
    for (int s = 0; s < 50; s++) {
        em_scope_begin();
        em_tensor *x, *y, *loss;
        batch(s, &x, &y);
        ck_assert_ptr_nonnull(train_step(&eager, eopt, x, y, &loss));
        eager_loss[s] = (float)em_item(loss);
        em_scope_end();
    }

    em_tensor *x = em_placeholder(EM_F32, EM_SHAPE(-1, 4), "x"), *y = em_placeholder(EM_I64, EM_SHAPE(-1), "y");
    em_tensor *loss;
    ck_assert_int_eq(em_trace_begin(), 0);
    em_tensor *train = train_step(&graph, gopt, x, y, &loss);
    em_graph *g = em_trace_end();
    ck_assert_msg(train != NULL, "%s", em_last_error());
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(em_optimizer_step(gopt), 0); /* shape-only tracing ran no update */
    em_set_seed(11);
    for (int s = 0; s < 50; s++) {
        em_scope_begin();
        em_tensor *xb, *yb, *out[2];
        batch(s, &xb, &yb);
        ck_assert_int_eq(em_graph_run(g, 2, (em_feed[]){{x, xb}, {y, yb}}, 2, (em_tensor *[]){train, loss}, out), 0);
        graph_loss[s] = (float)em_item(out[1]);
        em_scope_end();
    }
    ck_assert_int_eq(em_graph_get_stats(g).plans, 3);
    ck_assert_int_eq(em_optimizer_step(gopt), 50);
    for (int s = 0; s < 50; s++)
        ck_assert_msg(eager_loss[s] == graph_loss[s], "step %d: eager loss %.9g, graph loss %.9g", s, eager_loss[s],
                      graph_loss[s]);
    em_tensor *ev[4] = {eager.w1, eager.b1, eager.w2, eager.b2}, *gv[4] = {graph.w1, graph.b1, graph.w2, graph.b2};
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(memcmp(em_data(ev[i]), em_data(gv[i]), (size_t)em_numel(ev[i]) * 4), 0);
#ifdef COUNTS_ALLOCATIONS
    /* After its plan is made, a run allocates nothing: not the graph, not a kernel. */
    em_tensor *xb, *yb, *out[2];
    batch(0, &xb, &yb);
    em_feed feeds[2] = {{x, xb}, {y, yb}};
    em_tensor *fetch[2] = {train, loss};
    ck_assert_int_eq(em_graph_run(g, 2, feeds, 2, fetch, out), 0);
    counting = 1;
    void *volatile probe = malloc(16); /* the counter sees this one */
    free(probe);
    for (int r = 0; r < 20; r++) em_graph_run(g, 2, feeds, 2, fetch, out);
    counting = 0;
    ck_assert_int_eq(allocations, 1);
#endif
    float first = 0, last = 0; /* it learns: the mean loss of the last 10 steps is below that of the first 10 */
    for (int s = 0; s < 10; s++) {
        first += graph_loss[s];
        last += graph_loss[40 + s];
    }
    ck_assert_float_lt(last, first);
    em_graph_release(g);
    em_optimizer_release(eopt);
    em_optimizer_release(gopt);
    em_set_num_threads(0);
}
END_TEST

/* A small CNN: conv 3x3 (1 -> 16 channels, the direct kernel's shapes) + bias -> ReLU -> 2x2 max pool ->
 * conv 3x3 stride 2 (16 -> 3, im2col) + bias -> ReLU, Adam on the mean square. With `tap`, the loss also
 * reads the first convolution's output, which then must not fuse (its pool's gradient still takes the ReLU's). */
typedef struct {
    em_tensor *w1, *b1, *w2, *b2;
} cnn;

static cnn make_cnn(const char *scope, em_dtype dt) {
    em_variable_scope_begin(scope, EM_REUSE_FALSE);
    cnn n = {
        em_get_variable("w1", dt, EM_SHAPE(3, 3, 1, 16), (em_initializer){.kind = EM_INIT_GLOROT_UNIFORM, .seed = 5}),
        em_get_variable("b1", dt, EM_SHAPE(16), EM_INIT_CONST(-0.05)),
        em_get_variable("w2", dt, EM_SHAPE(3, 3, 16, 3), (em_initializer){.kind = EM_INIT_GLOROT_UNIFORM, .seed = 6}),
        em_get_variable("b2", dt, EM_SHAPE(3), EM_INIT_CONST(0.1)),
    };
    em_variable_scope_end();
    return n;
}

static em_tensor *cnn_step(cnn *n, em_optimizer *opt, em_tensor *x, bool tap, em_tensor **conv1, em_tensor **loss) {
    em_tape *tape = em_tape_begin(false);
    *conv1 = em_conv2d(x, n->w1, NULL, EM_PAD_SAME, NULL);
    em_tensor *h = em_relu(em_bias_add(*conv1, n->b1));
    h = em_max_pool(h, (const int[]){2, 2}, (const int[]){2, 2}, EM_PAD_SAME);
    h = em_relu(em_bias_add(em_conv2d(h, n->w2, (const int[]){2, 2}, EM_PAD_SAME, NULL), n->b2));
    *loss = em_mean(em_square(h), EM_ALL_AXES, false);
    if (tap) *loss = em_add(*loss, em_mean(*conv1, EM_ALL_AXES, false));
    em_tape_stop(tape);
    em_tensor *train = em_minimize_op(opt, tape, *loss, 4, (em_tensor *[]){n->w1, n->b1, n->w2, n->b2});
    em_tape_release(tape);
    return train;
}

static bool same_bits(em_tensor *a, em_tensor *b) {
    return em_numel(a) == em_numel(b) &&
           !memcmp(em_data(a), em_data(b), (size_t)em_numel(a) * em_dtype_size(em_tensor_dtype(a)));
}

/* conv2d -> bias add -> relu runs as one conv2d_bias_relu node, and the pool's gradient takes relu_grad:
 * training steps are eager's to the bit, in float32 and float64; a convolution read elsewhere is left
 * alone, and can still be fetched; exports show the ops as traced. */
START_TEST(test_conv_bias_relu_fuse_bit_for_bit) {
    em_set_num_threads(1);
    for (int variant = 0; variant < 3; variant++) {
        em_dtype dt = variant == 2 ? EM_F64 : EM_F32;
        bool tap = variant == 1;
        char scope[32];
        double xs[2 * 6 * 6];
        for (int i = 0; i < 2 * 6 * 6; i++) xs[i] = sin(0.9 * i);
        em_tensor *xv = em_cast(em_tensor_from(EM_F64, EM_SHAPE(2, 6, 6, 1), xs), dt);
        snprintf(scope, sizeof scope, "eager%d", variant);
        cnn eager = make_cnn(scope, dt);
        snprintf(scope, sizeof scope, "graph%d", variant);
        cnn graph = make_cnn(scope, dt);
        em_optimizer *eopt = em_adam(0.01, 0.9, 0.999, 1e-8), *gopt = em_adam(0.01, 0.9, 0.999, 1e-8);
        double eager_loss[3];
        for (int s = 0; s < 3; s++) {
            em_tensor *c1, *loss;
            ck_assert_ptr_nonnull(cnn_step(&eager, eopt, xv, tap, &c1, &loss));
            eager_loss[s] = em_item(loss);
        }
        em_tensor *x = em_placeholder(dt, EM_SHAPE(2, 6, 6, 1), "x"), *c1, *loss;
        ck_assert_int_eq(em_trace_begin(), 0);
        em_tensor *train = cnn_step(&graph, gopt, x, tap, &c1, &loss);
        em_graph *g = em_trace_end();
        ck_assert_ptr_nonnull(g);
        /* each convolution's bias and ReLU (2 + 2), the first pool's gradient its ReLU's (1) */
        ck_assert_int_eq(em_graph_get_stats(g).epilogues, tap ? 3 : 5);
        for (int s = 0; s < 3; s++) {
            em_tensor *out[2];
            ck_assert_int_eq(em_graph_run(g, 1, (em_feed[]){{x, xv}}, 2, (em_tensor *[]){train, loss}, out), 0);
            ck_assert_msg(em_item(out[1]) == eager_loss[s], "variant %d step %d: graph %.17g, eager %.17g", variant, s,
                          em_item(out[1]), eager_loss[s]);
        }
        ck_assert(same_bits(eager.w1, graph.w1) && same_bits(eager.b1, graph.b1));
        ck_assert(same_bits(eager.w2, graph.w2) && same_bits(eager.b2, graph.b2));
        /* the absorbed convolution runs when it is fetched */
        em_tensor *got;
        ck_assert_int_eq(em_graph_run(g, 1, (em_feed[]){{x, xv}}, 1, &c1, &got), 0);
        ck_assert(same_bits(got, em_conv2d(xv, graph.w1, NULL, EM_PAD_SAME, NULL)));
        if (variant == 0) { /* a saved graph holds the traced ops, and fuses again when loaded */
            char path[] = "/tmp/ember_graph_XXXXXX";
            int fd = mkstemp(path);
            ck_assert_int_ge(fd, 0);
            close(fd);
            ck_assert_int_eq(em_graph_save(g, path, 1, &loss, (const char *const[]){"loss"}, 0), 0);
            FILE *f = fopen(path, "rb");
            static char bytes[1 << 16];
            size_t len = fread(bytes, 1, sizeof bytes, f);
            fclose(f);
            ck_assert_ptr_null(memmem(bytes, len, "conv2d_bias_relu", 16));
            ck_assert_ptr_nonnull(memmem(bytes, len, "relu", 4));
            em_graph *loaded = em_graph_load_with(path, NULL, EM_LOAD_REUSE_VARIABLES);
            remove(path);
            ck_assert_msg(loaded != NULL, "%s", em_last_error());
            ck_assert_int_eq(em_graph_get_stats(loaded).epilogues, 4);
            em_tensor *mine, *theirs, *lx = em_graph_placeholder(loaded, "x"), *lloss = em_graph_fetch(loaded, "loss");
            ck_assert_int_eq(em_graph_run(g, 1, (em_feed[]){{x, xv}}, 1, &loss, &mine), 0);
            ck_assert_int_eq(em_graph_run(loaded, 1, (em_feed[]){{lx, xv}}, 1, &lloss, &theirs), 0);
            ck_assert(same_bits(mine, theirs));
            em_graph_release(loaded);
        }
        if (variant == 0) { /* the dot export shows the traced ops */
            static char text[1 << 16];
            read_dot(g, text, sizeof text);
            ck_assert_ptr_null(strstr(text, "conv2d_bias_relu"));
            ck_assert_ptr_null(strstr(text, "max_pool_relu_grad"));
            ck_assert_ptr_nonnull(strstr(text, "label=\"relu\""));
            ck_assert_ptr_nonnull(strstr(text, "label=\"max_pool_grad\""));
        }
        em_graph_release(g);
        em_optimizer_release(eopt);
        em_optimizer_release(gopt);
    }
    em_set_num_threads(0);
}
END_TEST

/* relu_grad(x, g) reads relu(x)'s output in a graph (the same mask), but not across an in-place update of x:
 * traced after one, it reads the updated x, as eager code does. */
START_TEST(test_relu_grad_after_an_update_reads_the_update) {
    em_tensor *v = em_get_variable("updated/v", EM_F32, EM_SHAPE(4), EM_INIT_CONST(0));
    ck_assert_int_eq(em_assign(v, f32(EM_SHAPE(4), (const float[]){-1, 2, -3, 4})), 0);
    em_optimizer *sgd = em_sgd(1); /* on sum(v^2): v -= 2 v flips v's signs */
    ck_assert_int_eq(em_trace_begin(), 0);
    em_tape *forward = em_tape_begin(false);
    em_tensor *y = em_relu(v), *dv;
    em_tape_stop(forward);
    em_tape *square = em_tape_begin(false);
    em_tensor *loss = em_sum(em_square(v), EM_ALL_AXES, false);
    em_tape_stop(square);
    em_tensor *train = em_minimize_op(sgd, square, loss, 1, &v);
    ck_assert_int_eq(em_gradients(forward, y, 1, &v, &dv), 0); /* relu_grad(v, 1) after the update */
    em_tape_release(forward);
    em_tape_release(square);
    em_graph *g = em_trace_end();
    ck_assert_ptr_nonnull(g);
    em_tensor *out[2];
    ck_assert_int_eq(em_graph_run(g, 0, NULL, 2, (em_tensor *[]){train, dv}, out), 0);
    const float *now = em_data(v); /* the mask of v now, not of v when the relu ran */
    double mask[4];
    for (int i = 0; i < 4; i++) mask[i] = now[i] > 0;
    ck_assert_tensor(out[1], EM_F32, EM_SHAPE(4), mask, 0);
    em_graph_release(g);
    em_optimizer_release(sgd);
}
END_TEST

START_TEST(test_learning_rate_and_step_are_read_at_run_time) {
    em_tensor *w = em_get_variable("lr/w", EM_F64, EM_SHAPE(1), EM_INIT_CONST(1));
    em_optimizer *sgd = em_sgd(0.5);
    em_tensor *x = em_placeholder(EM_F64, EM_SHAPE(1), "x");
    em_trace_begin();
    em_tape *tape = em_tape_begin(false);
    em_tensor *loss = em_sum(em_mul(w, x), EM_ALL_AXES, false); /* d loss / dw = x */
    em_tape_stop(tape);
    em_tensor *train = em_minimize_op(sgd, tape, loss, 1, &w);
    em_tape_release(tape);
    em_graph *g = em_trace_end();
    em_tensor *one = em_ones(EM_F64, EM_SHAPE(1)), *out;
    ck_assert_int_eq(em_graph_run(g, 1, (em_feed[]){{x, one}}, 1, &train, &out), 0);
    ck_assert_double_eq(em_item(w), 0.5);
    ck_assert_double_eq(em_item(out), 1);
    ck_assert_int_eq(em_optimizer_set_learning_rate(sgd, 0.25), 0); /* not baked in at trace time */
    ck_assert_int_eq(em_graph_run(g, 1, (em_feed[]){{x, one}}, 1, &train, &out), 0);
    ck_assert_double_eq(em_item(w), 0.25);
    ck_assert_double_eq(em_item(out), 2);
    ck_assert_int_eq(em_optimizer_step(sgd), 2);
    /* fetching only the loss does not train */
    ck_assert_int_eq(em_graph_run(g, 1, (em_feed[]){{x, one}}, 1, &loss, &out), 0);
    ck_assert_double_eq(em_item(w), 0.25);
    em_graph_release(g);
    em_optimizer_release(sgd);
}
END_TEST

/* Whether the message holds no stand-in size: every number in it is small. */
static bool no_standin(const char *msg) {
    for (const char *c = msg; *c; c++)
        if (strtoll(c, NULL, 10) >= EM_SYM_PRIME) return false;
    return true;
}

/* Whether the bytes hold v as a protobuf varint. */
static bool holds_varint(const uint8_t *d, size_t n, uint64_t v) {
    uint8_t enc[10];
    size_t len = 0;
    do {
        enc[len] = (uint8_t)(v & 0x7f) | (v >= 0x80 ? 0x80 : 0);
        len++;
        v >>= 7;
    } while (v);
    for (size_t at = 0; at + len <= n; at++)
        if (!memcmp(d + at, enc, len)) return true;
    return false;
}

START_TEST(test_unknown_batch_is_symbolic) {
    /* issue 21: the lecture's tower example splits a [None, 4] batch */
    em_tensor *p = em_placeholder(EM_F32, EM_SHAPE(-1, 4), "p");
    ck_assert_int_eq(em_trace_begin(), 0);
    em_tensor *parts[2];
    ck_assert_msg(em_split(p, 2, 0, parts) == 0, "%s", em_last_error());
    ck_assert_int_eq(em_dim(p, 0), -1);
    ck_assert_int_eq(em_dim(parts[0], 0), -1);
    ck_assert_int_eq(em_dim(parts[0], 1), 4);
    ck_assert_int_eq(em_numel(parts[1]), -1);
    ck_assert_int_eq(em_tensor_shape(parts[1]).dims[0], -1);
    em_tensor *r = em_reshape(p, EM_SHAPE(2, -1, 4));
    ck_assert_msg(r != NULL, "%s", em_last_error());
    ck_assert_int_eq(em_dim(r, 0), 2);
    ck_assert_int_eq(em_dim(r, 1), -1);
    em_tensor *tail = em_slice(parts[1], (int64_t[]){0, 1}, (int64_t[]){-1, -1});
    ck_assert_int_eq(em_dim(tail, 0), -1);
    ck_assert_int_eq(em_dim(tail, 1), 3);
    em_tensor *swapped = em_concat(2, (em_tensor *[]){parts[1], parts[0]}, 0);
    ck_assert_int_eq(em_dim(swapped, 0), -1);
    em_tensor *halves = em_sum(r, EM_AXES(1), false); /* [2,4]: the batch's halves summed */
    /* a shape-only trace cannot split an unknown size into 11: said without the stand-in */
    em_tensor *eleven[11];
    ck_assert_int_eq(em_split(p, 11, 0, eleven), -1);
    ck_assert_msg(strstr(em_last_error(), "input [?,4] has an unknown size") && no_standin(em_last_error()), "%s",
                  em_last_error());
    em_clear_error();
    ck_assert_ptr_null(em_add(parts[0], em_ones(EM_F32, EM_SHAPE(3, 4))));
    ck_assert_msg(strstr(em_last_error(), "[?,4]") && no_standin(em_last_error()), "%s", em_last_error());
    em_clear_error();
    em_graph *g = em_trace_end();
    ck_assert_ptr_nonnull(g);

    float v[16];
    for (int k = 0; k < 16; k++) v[k] = (float)k;
    em_tensor *out[3];
    ck_assert_int_eq(em_graph_run(g, 1, (em_feed[]){{p, f32(EM_SHAPE(4, 4), v)}}, 3,
                                  (em_tensor *[]){swapped, tail, halves}, out), 0);
    ck_assert_tensor(out[0], EM_F32, EM_SHAPE(4, 4),
                     ((double[]){8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7}), 0);
    ck_assert_tensor(out[1], EM_F32, EM_SHAPE(2, 3), ((double[]){9, 10, 11, 13, 14, 15}), 0);
    ck_assert_tensor(out[2], EM_F32, EM_SHAPE(2, 4), ((double[]){4, 6, 8, 10, 20, 22, 24, 26}), 0);
    /* an odd batch cannot be split in two: checked when the graph runs, on the fed size */
    ck_assert_int_eq(em_graph_run(g, 1, (em_feed[]){{p, em_ones(EM_F32, EM_SHAPE(3, 4))}}, 1, &swapped, out), -1);
    ck_assert_msg(strstr(em_last_error(), "was traced with a size of ?/2: the unknown dimension must be a multiple of "
                                          "2, but it was fed 3") &&
                      no_standin(em_last_error()),
                  "%s", em_last_error());
    em_clear_error();
    ck_assert_int_eq(em_graph_run(g, 1, (em_feed[]){{p, em_ones(EM_F32, EM_SHAPE(6, 4))}}, 1, &swapped, out), 0);
    ck_assert_int_eq(em_dim(out[0], 0), 6);

    /* TensorBoard's graph shows the unknown sizes as -1, never the stand-in */
    char dir[128];
    em_test_tmpdir("graphsym", dir, sizeof dir);
    em_summary_writer *w = em_summary_writer_open(dir);
    ck_assert_int_eq(em_summary_graph(w, g), 0);
    char saved[400];
    snprintf(saved, sizeof saved, "%s", em_summary_writer_path(w));
    ck_assert_int_eq(em_summary_writer_close(w), 0);
    FILE *f = fopen(saved, "rb");
    uint8_t bytes[8192];
    size_t n = fread(bytes, 1, sizeof bytes, f);
    fclose(f);
    em_test_tmpdir_remove(dir);
    ck_assert(holds_varint(bytes, n, (uint64_t)-1));
    for (int k = 1; k <= 4; k++) ck_assert(!holds_varint(bytes, n, (uint64_t)(EM_SYM_SIZE * k / 2)));
    em_graph_release(g);
}
END_TEST

START_TEST(test_batch_plus_or_minus_a_fixed_size_is_symbolic) {
    /* issue 21: the batch - 1 (a slice from row 1 to the end) and the batch
     * + 3 (a concat with a fixed block) stay unknown too */
    em_tensor *p = em_placeholder(EM_F32, EM_SHAPE(-1, 4), "p");
    ck_assert_int_eq(em_trace_begin(), 0);
    em_tensor *tail = em_slice(p, (int64_t[]){1, 0}, (int64_t[]){-1, -1});
    em_tensor *block = em_reshape(em_arange(EM_F32, 100, 112, 1), EM_SHAPE(3, 4));
    em_tensor *grown = em_concat(2, (em_tensor *[]){p, block}, 0);
    ck_assert_int_eq(em_dim(tail, 0), -1);
    ck_assert_int_eq(em_dim(grown, 0), -1);
    ck_assert_int_eq(em_dim(grown, 1), 4);
    ck_assert_int_eq(em_numel(tail), -1);
    ck_assert_int_eq(em_tensor_shape(grown).dims[0], -1);
    em_tensor *flat = em_reshape(tail, EM_SHAPE(-1)); /* 4 (batch - 1) */
    ck_assert_int_eq(em_dim(flat, 0), -1);
    em_tensor *parts[2], *tails[2];
    /* sizes held in attributes: grown's rows from 2 on (the batch + 1), tail's but the last 2 (the batch - 3) */
    ck_assert_int_eq(em_split_sizes(grown, 2, (int64_t[]){2, -1}, 0, parts), 0);
    ck_assert_int_eq(em_dim(parts[1], 0), -1);
    ck_assert_int_eq(em_split_sizes(tail, 2, (int64_t[]){-1, 2}, 0, tails), 0);
    ck_assert_int_eq(em_dim(tails[0], 0), -1);
    ck_assert_int_eq(em_dim(tails[1], 0), 2);
    ck_assert_ptr_null(em_add(tail, em_ones(EM_F32, EM_SHAPE(3, 4))));
    ck_assert_msg(strstr(em_last_error(), "[?,4] vs [3,4]") && no_standin(em_last_error()), "%s", em_last_error());
    em_clear_error();
    em_tensor *halves[2]; /* the batch - 1 in two: the trace cannot know that it is even */
    ck_assert_int_eq(em_split(tail, 2, 0, halves), -1);
    ck_assert_msg(strstr(em_last_error(), "input [?,4] has an unknown size (the unknown dimension -1") &&
                      no_standin(em_last_error()),
                  "%s", em_last_error());
    em_clear_error();
    em_graph *g = em_trace_end();
    ck_assert_ptr_nonnull(g);

    float v[16];
    for (int k = 0; k < 16; k++) v[k] = (float)k;
    em_tensor *out[4];
    ck_assert_int_eq(em_graph_run(g, 1, (em_feed[]){{p, f32(EM_SHAPE(4, 4), v)}}, 4,
                                  (em_tensor *[]){tail, flat, parts[1], tails[0]}, out),
                     0);
    ck_assert_tensor(out[0], EM_F32, EM_SHAPE(3, 4), ((double[]){4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}), 0);
    ck_assert_int_eq(em_dim(out[1], 0), 12);
    ck_assert_tensor(out[2], EM_F32, EM_SHAPE(5, 4),
                     ((double[]){8, 9, 10, 11, 12, 13, 14, 15, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110,
                                 111}),
                     0);
    ck_assert_tensor(out[3], EM_F32, EM_SHAPE(1, 4), ((double[]){4, 5, 6, 7}), 0);
    /* fed 2, the batch - 3 would be -1 rows: checked, with the fed size */
    ck_assert_int_eq(em_graph_run(g, 1, (em_feed[]){{p, em_ones(EM_F32, EM_SHAPE(2, 4))}}, 1, &tails[0], out), -1);
    ck_assert_msg(strstr(em_last_error(), "was traced with a size of ?-3, which is -1 for the fed unknown dimension "
                                          "2: a size cannot be negative") &&
                      no_standin(em_last_error()),
                  "%s", em_last_error());
    em_clear_error();

    /* TensorBoard's graph: -1, never the stand-in plus or minus */
    char dir[128];
    em_test_tmpdir("graphoff", dir, sizeof dir);
    em_summary_writer *w = em_summary_writer_open(dir);
    ck_assert_int_eq(em_summary_graph(w, g), 0);
    char saved[400];
    snprintf(saved, sizeof saved, "%s", em_summary_writer_path(w));
    ck_assert_int_eq(em_summary_writer_close(w), 0);
    FILE *f = fopen(saved, "rb");
    uint8_t bytes[8192];
    size_t n = fread(bytes, 1, sizeof bytes, f);
    fclose(f);
    em_test_tmpdir_remove(dir);
    for (int k = -3; k <= 3; k++) ck_assert(!holds_varint(bytes, n, (uint64_t)(EM_SYM_SIZE + k)));
    ck_assert(!holds_varint(bytes, n, (uint64_t)(4 * (EM_SYM_SIZE - 1))));
    em_graph_release(g);
}
END_TEST

START_TEST(test_variables_are_bound_by_name_when_the_graph_runs) {
    /* issue 21: a graph kept training a released variable */
    em_tensor *W = em_get_variable("W", EM_F32, EM_SHAPE(3, 1), EM_INIT_CONST(1));
    em_tensor *x = em_placeholder(EM_F32, EM_SHAPE(-1, 3), "x");
    em_trace_begin();
    em_tensor *y = em_sum(em_matmul(x, W), EM_ALL_AXES, false);
    em_graph *g = em_trace_end();
    em_feed feed = {x, em_ones(EM_F32, EM_SHAPE(1, 3))};
    em_tensor *out;
    ck_assert_int_eq(em_graph_run(g, 1, &feed, 1, &y, &out), 0);
    ck_assert_double_eq(em_item(out), 3);
    /* released and not made again: an error naming it */
    em_variables_release();
    ck_assert_int_eq(em_graph_run(g, 1, &feed, 1, &y, &out), -1);
    ck_assert_msg(strstr(em_last_error(), "graph_run: variable 'W' was released and not created again"), "%s",
                  em_last_error());
    em_clear_error();
    /* made again under the same name, dtype and shape: read, new values and all */
    em_get_variable("W", EM_F32, EM_SHAPE(3, 1), EM_INIT_CONST(100));
    ck_assert_int_eq(em_graph_run(g, 1, &feed, 1, &y, &out), 0);
    ck_assert_double_eq(em_item(out), 300);
    /* a checkpoint restored between runs: its values */
    char dir[128], path[160];
    em_test_tmpdir("graphsym", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/ckpt", dir);
    ck_assert_int_eq(em_checkpoint_save(path), 0);
    em_variables_release();
    em_get_variable("W", EM_F32, EM_SHAPE(3, 1), EM_INIT_CONST(7));
    ck_assert_int_eq(em_graph_run(g, 1, &feed, 1, &y, &out), 0);
    ck_assert_double_eq(em_item(out), 21);
    ck_assert_int_eq(em_checkpoint_restore(path), 0);
    ck_assert_int_eq(em_graph_run(g, 1, &feed, 1, &y, &out), 0);
    ck_assert_double_eq(em_item(out), 300);
    em_variables_release(); /* restored before the variable exists: given to it when it is made */
    ck_assert_int_eq(em_checkpoint_restore(path), 0);
    em_get_variable("W", EM_F32, EM_SHAPE(3, 1), EM_INIT_CONST(0));
    ck_assert_int_eq(em_graph_run(g, 1, &feed, 1, &y, &out), 0);
    ck_assert_double_eq(em_item(out), 300);
    em_test_tmpdir_remove(dir);
    /* made again with another shape: named, with both shapes */
    em_variables_release();
    em_get_variable("W", EM_F32, EM_SHAPE(1, 3), EM_INIT_CONST(1));
    ck_assert_int_eq(em_graph_run(g, 1, &feed, 1, &y, &out), -1);
    ck_assert_msg(strstr(em_last_error(), "variable 'W' is now float32 [1,3], but the graph was traced with float32 "
                                          "[3,1]"),
                  "%s", em_last_error());
    em_clear_error();
    em_graph_release(g);
}
END_TEST

int main(void) {
    Suite *s = suite_create("graph");
    TCase *tc = tcase_create("graph");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_placeholder_must_be_fed);
    tcase_add_test(tc, test_feed_errors_name_the_placeholder);
    tcase_add_test(tc, test_unknown_dims_replan);
    tcase_add_test(tc, test_traced_with_an_example);
    tcase_add_test(tc, test_feeds_are_copied_into_stable_buffers);
    tcase_add_test(tc, test_only_needed_nodes_run);
    tcase_add_test(tc, test_profile_counts_kernels);
    tcase_add_test(tc, test_reshape_of_a_strided_value_is_computed_each_run);
    tcase_add_test(tc, test_cse_and_constant_folding);
    tcase_add_test(tc, test_fusion_and_memory_plan);
    tcase_add_test(tc, test_independent_nodes_run_at_once);
    tcase_add_test(tc, test_variables_are_shared_with_eager_code);
    tcase_add_test(tc, test_random_nodes_draw_anew_each_run);
    tcase_add_test(tc, test_dot_export_groups_name_scopes);
    tcase_add_test(tc, test_50_steps_graph_equals_eager_bit_for_bit);
    tcase_add_test(tc, test_conv_bias_relu_fuse_bit_for_bit);
    tcase_add_test(tc, test_relu_grad_after_an_update_reads_the_update);
    tcase_add_test(tc, test_learning_rate_and_step_are_read_at_run_time);
    tcase_add_test(tc, test_unknown_batch_is_symbolic);
    tcase_add_test(tc, test_batch_plus_or_minus_a_fixed_size_is_symbolic);
    tcase_add_test(tc, test_variables_are_bound_by_name_when_the_graph_runs);
    suite_add_tcase(s, tc);
    return em_test_run(s);
}
