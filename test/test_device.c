/* Devices: names, scopes, placement and its errors, automatic copies, the
 * placement log, and the lecture's data- and model-parallel examples on two
 * logical CPU devices, eager and as graphs. */
#include "common.h"

#include <stdlib.h>
#include <string.h>

static void two_devices(void) { ck_assert_int_eq(em_set_cpu_devices(2, 1), 0); }

static void one_device(void) {
    em_log_device_placement(NULL);
    em_set_soft_placement(false);
    em_shutdown();
    ck_assert_int_eq(em_set_cpu_devices(1, 0), 0);
}

START_TEST(test_names_and_scopes) {
    ck_assert_int_ge(em_device_count(), 2); /* and any GPUs after the CPUs */
    ck_assert_str_eq(em_device_name(1), "/cpu:1");
    ck_assert_ptr_null(em_device_name(em_device_count()));
    em_clear_error();
    ck_assert_str_eq(em_device_current(), "");
    /* the lecture's spellings all name the same device */
    const char *names[] = {"/cpu:1", "/device:CPU:1", "cpu:1", "/job:localhost/replica:0/task:0/device:CPU:1"};
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(em_device_begin(names[i]), 0);
        ck_assert_str_eq(em_device_current(), "/cpu:1");
        ck_assert_str_eq(em_tensor_device(em_zeros(EM_F32, EM_SHAPE(2))), "/cpu:1");
        ck_assert_int_eq(em_device_end(), 0);
    }
    ck_assert_str_eq(em_tensor_device(em_zeros(EM_F32, EM_SHAPE(2))), "/cpu:0");
    /* nested scopes: the innermost wins, and closing restores the outer */
    ck_assert_int_eq(em_device_begin("/cpu:1"), 0);
    ck_assert_int_eq(em_device_begin("/cpu:0"), 0);
    ck_assert_str_eq(em_device_current(), "/cpu:0");
    ck_assert_int_eq(em_device_end(), 0);
    ck_assert_str_eq(em_device_current(), "/cpu:1");
    ck_assert_int_eq(em_device_end(), 0);
    ck_assert_int_eq(em_device_end(), -1);
    ck_assert_str_eq(em_last_error(), "device_end: no device scope is open");
    em_clear_error();
    ck_assert_int_eq(em_device_begin("/tpu:0"), -1);
    ck_assert_ptr_nonnull(strstr(em_last_error(), "'/tpu:0' is not a device name"));
    em_clear_error();
    ck_assert_int_eq(em_device_begin("/cpu:7"), -1);
    ck_assert_ptr_nonnull(strstr(em_last_error(), "no device '/cpu:7' in this process (it has /cpu:0, /cpu:1"));
    em_clear_error();
    ck_assert_int_eq(em_set_cpu_devices(0, 1), -1);
    em_clear_error();
    em_tensor *kept = em_keep(em_zeros(EM_F32, EM_SHAPE(1)));
    ck_assert_int_eq(em_set_cpu_devices(1, 0), -1);
    ck_assert_ptr_nonnull(strstr(em_last_error(), "cannot go from 2 devices to 1 while"));
    em_clear_error();
    em_release(kept);
    one_device();
}
END_TEST

START_TEST(test_gpu_absent_and_soft_placement) {
    ck_assert_int_eq(em_device_begin("/device:GPU:31"), -1); /* absent even where there are GPUs */
    ck_assert_ptr_nonnull(strstr(em_last_error(), "no device '/device:GPU:31'"));
    ck_assert_ptr_nonnull(strstr(em_last_error(), "turn on soft placement"));
    em_clear_error();
    char *text = NULL;
    size_t len = 0;
    FILE *log = open_memstream(&text, &len);
    em_log_device_placement(log);
    em_set_soft_placement(true);
    ck_assert_int_eq(em_device_begin("/gpu:31"), 0);
    em_tensor *a = em_tensor_from(EM_F32, EM_SHAPE(2, 2), (float[]){1, 2, 3, 4});
    em_tensor *c = em_matmul(a, a);
    ck_assert_str_eq(em_tensor_device(c), "/cpu:0");
    ck_assert_int_eq(em_device_end(), 0);
    fflush(log);
    ck_assert_ptr_nonnull(strstr(text, "device_begin: /gpu:31 is not available; using /cpu:0 (soft placement)"));
    ck_assert_ptr_nonnull(strstr(text, "matmul: /cpu:0"));
    em_log_device_placement(NULL);
    fclose(log);
    free(text);
    ck_assert_tensor(c, EM_F32, EM_SHAPE(2, 2), ((double[]){7, 10, 15, 22}), 0);
    one_device();
}
END_TEST

START_TEST(test_placement_rules) {
    em_tensor *a = em_tensor_from(EM_F32, EM_SHAPE(3), (float[]){1, 2, 3});
    ck_assert_int_eq(em_device_begin("/cpu:1"), 0);
    em_tensor *b = em_tensor_from(EM_F32, EM_SHAPE(3), (float[]){10, 20, 30});
    ck_assert_int_eq(em_device_end(), 0);
    /* outside a scope an op runs where its inputs are */
    ck_assert_str_eq(em_tensor_device(em_neg(b)), "/cpu:1");
    /* two devices and no scope: an error naming both */
    ck_assert_error(em_add(a, b), "add: input 0 is on /cpu:0 but input 1 is on /cpu:1");
    /* explicit copy */
    em_tensor *b0 = em_to_device(b, "/cpu:0");
    ck_assert_str_eq(em_tensor_device(b0), "/cpu:0");
    ck_assert_tensor(em_add(a, b0), EM_F32, EM_SHAPE(3), ((double[]){11, 22, 33}), 0);
    ck_assert_error(em_to_device(b, "/cpu:9"), "to_device: no device '/cpu:9'");
    /* in a scope, inputs from elsewhere are copied to the scope's device */
    char *text = NULL;
    size_t len = 0;
    FILE *log = open_memstream(&text, &len);
    em_log_device_placement(log);
    ck_assert_int_eq(em_device_begin("/cpu:1"), 0);
    em_name_scope_begin("layer");
    em_tensor *s = em_add(a, b);
    em_name_scope_end();
    ck_assert_int_eq(em_device_end(), 0);
    ck_assert_str_eq(em_tensor_device(s), "/cpu:1");
    ck_assert_tensor(s, EM_F32, EM_SHAPE(3), ((double[]){11, 22, 33}), 0);
    /* soft placement: copied to the first input's device */
    em_set_soft_placement(true);
    em_tensor *t = em_add(b, a);
    ck_assert_str_eq(em_tensor_device(t), "/cpu:1");
    fflush(log);
    ck_assert_ptr_nonnull(strstr(text, "copy_to_device: /cpu:0 -> /cpu:1 (float32 [3])\nlayer/add: /cpu:1\n"));
    ck_assert_ptr_nonnull(strstr(text, "copy_to_device: /cpu:0 -> /cpu:1 (float32 [3])\nadd: /cpu:1\n"));
    em_log_device_placement(NULL);
    fclose(log);
    free(text);
    one_device();
}
END_TEST

/* The lecture's data-parallel example: split, add on each device, concat. */
START_TEST(test_lecture_split_concat) {
    em_set_seed(1);
    em_tensor *a = em_random_uniform(EM_F32, EM_SHAPE(1000, 100), 0, 1);
    em_tensor *b = em_random_uniform(EM_F32, EM_SHAPE(1000, 100), 0, 1);
    em_tensor *sa[2], *sb[2], *sc[2];
    ck_assert_int_eq(em_split(a, 2, 0, sa), 0);
    ck_assert_int_eq(em_split(b, 2, 0, sb), 0);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(em_device_begin(i ? "/cpu:1" : "/cpu:0"), 0);
        sc[i] = em_add(sa[i], sb[i]);
        ck_assert_int_eq(em_device_end(), 0);
        ck_assert_str_eq(em_tensor_device(sc[i]), i ? "/cpu:1" : "/cpu:0");
    }
    ck_assert_int_eq(em_device_begin("/cpu:0"), 0);
    em_tensor *c = em_concat(2, sc, 0);
    ck_assert_int_eq(em_device_end(), 0);
    ck_assert(em_test_max_rel_diff(c, em_add(a, b)) <= 0);
    one_device();
}
END_TEST

/* ---- a small MLP, for data and model parallelism ---- */

enum { N = 16, IN = 8, HID = 12, OUT = 3 };

static em_tensor *vars[4]; /* W1, b1, W2, b2 */

static void make_vars(const char *dev1, const char *dev2) {
    em_variables_release();
    if (dev1) em_device_begin(dev1);
    vars[0] = em_get_variable("W1", EM_F32, EM_SHAPE(IN, HID), (em_initializer){EM_INIT_RANDOM_NORMAL, 0, 0.5, 11, NULL});
    vars[1] = em_get_variable("b1", EM_F32, EM_SHAPE(HID), EM_INIT_CONST(0.1));
    if (dev1) em_device_end();
    if (dev2) em_device_begin(dev2);
    vars[2] = em_get_variable("W2", EM_F32, EM_SHAPE(HID, OUT), (em_initializer){EM_INIT_RANDOM_NORMAL, 0, 0.5, 12, NULL});
    vars[3] = em_get_variable("b2", EM_F32, EM_SHAPE(OUT), EM_INIT_CONST(-0.1));
    if (dev2) em_device_end();
}

/* Layer 1 on dev1, layer 2 and the loss on dev2 (NULL: no scope). */
static em_tensor *mlp_loss(em_tensor *x, em_tensor *labels, const char *dev1, const char *dev2) {
    if (dev1) em_device_begin(dev1);
    em_tensor *h = em_relu(em_add(em_matmul(x, vars[0]), vars[1]));
    if (dev1) em_device_end();
    if (dev2) em_device_begin(dev2);
    em_tensor *logits = em_add(em_matmul(h, vars[2]), vars[3]);
    em_tensor *loss = em_mean(em_sparse_softmax_cross_entropy_with_logits(labels, logits), EM_ALL_AXES, false);
    if (dev2) em_device_end();
    return loss;
}

static void batch(em_tensor **x, em_tensor **labels) {
    *x = em_test_uniform(EM_SHAPE(N, IN), -1, 1, 7);
    *x = em_cast(*x, EM_F32);
    int32_t l[N];
    for (int i = 0; i < N; i++) l[i] = (i * 7) % OUT;
    *labels = em_tensor_from(EM_I32, EM_SHAPE(N), l);
}

/* One SGD step as the lecture's towers: each replica takes half the batch on
 * its device, the replicas' gradients are averaged on /cpu:0, one update. */
static em_tensor *tower_step(em_optimizer *opt, em_tensor *x, em_tensor *labels) {
    em_tensor *xs[2], *ls[2], *grads[2][4], *avg[4];
    if (em_split(x, 2, 0, xs) || em_split(labels, 2, 0, ls)) return NULL;
    for (int r = 0; r < 2; r++) {
        const char *dev = r ? "/cpu:1" : "/cpu:0";
        em_tape *tape = em_tape_begin(false);
        em_tensor *loss = mlp_loss(xs[r], ls[r], dev, dev);
        if (em_gradients(tape, loss, 4, vars, grads[r])) return NULL;
        em_tape_release(tape);
    }
    em_device_begin("/cpu:0");
    for (int k = 0; k < 4; k++) avg[k] = em_mul(em_add(grads[0][k], grads[1][k]), em_scalar(EM_F32, 0.5));
    em_device_end();
    return em_apply_gradients_op(opt, 4, avg, vars);
}

static em_tensor *single_step(em_optimizer *opt, em_tensor *x, em_tensor *labels) {
    em_tape *tape = em_tape_begin(false);
    em_tensor *loss = mlp_loss(x, labels, NULL, NULL);
    em_tensor *step = em_minimize_op(opt, tape, loss, 4, vars);
    em_tape_release(tape);
    return step;
}

static void snapshot(em_tensor **out) {
    for (int k = 0; k < 4; k++) out[k] = em_copy(vars[k]);
}

START_TEST(test_data_parallel_matches_one_device) {
    em_tensor *x, *labels, *want[4], *got[4], *graph_got[4];
    batch(&x, &labels);
    make_vars(NULL, NULL);
    em_optimizer *opt = em_sgd(0.5);
    for (int s = 0; s < 3; s++) ck_assert_ptr_nonnull(single_step(opt, x, labels));
    snapshot(want);
    em_optimizer_release(opt);

    make_vars(NULL, NULL);
    opt = em_sgd(0.5);
    for (int s = 0; s < 3; s++) ck_assert_ptr_nonnull(tower_step(opt, x, labels));
    snapshot(got);
    for (int k = 0; k < 4; k++) {
        ck_assert_str_eq(em_tensor_device(vars[k]), "/cpu:0");
        ck_assert_msg(em_test_max_rel_diff(got[k], want[k]) <= 1e-5, "variable %d differs", k);
    }
    em_optimizer_release(opt);

    /* The same towers traced: the replicas' nodes run at once, one thread each. */
    make_vars(NULL, NULL);
    em_tensor *init[4];
    snapshot(init);
    opt = em_sgd(0.5);
    em_tensor *px = em_placeholder(EM_F32, EM_SHAPE(N, IN), "x");
    em_tensor *pl = em_placeholder(EM_I32, EM_SHAPE(N), "labels");
    ck_assert_int_eq(em_placeholder_set(px, x), 0);
    ck_assert_int_eq(em_placeholder_set(pl, labels), 0);
    ck_assert_int_eq(em_trace_begin(), 0);
    em_tensor *train = tower_step(opt, px, pl);
    em_graph *g = em_trace_end();
    ck_assert_ptr_nonnull(train);
    ck_assert_ptr_nonnull(g);
    for (int k = 0; k < 4; k++) ck_assert_int_eq(em_assign(vars[k], init[k]), 0); /* tracing ran one step */
    em_tensor *r[1];
    em_feed feeds[] = {{px, x}, {pl, labels}};
    for (int s = 0; s < 3; s++) ck_assert_int_eq(em_graph_run(g, 2, feeds, 1, &train, r), 0);
    ck_assert_int_gt(em_graph_get_stats(g).parallel_levels, 0);
    snapshot(graph_got);
    for (int k = 0; k < 4; k++)
        ck_assert_msg(em_test_max_rel_diff(graph_got[k], got[k]) <= 1e-6, "graph variable %d differs", k);
    em_graph_release(g);
    em_optimizer_release(opt);
    one_device();
}
END_TEST

/* The lecture's model-parallel example: layer 1 on /cpu:0, layer 2 on /cpu:1. */
START_TEST(test_model_parallel) {
    em_tensor *x, *labels, *want[4], *grads[4], *single[4];
    batch(&x, &labels);
    make_vars(NULL, NULL);
    em_tape *tape = em_tape_begin(false);
    ck_assert_int_eq(em_gradients(tape, mlp_loss(x, labels, NULL, NULL), 4, vars, single), 0);
    em_tape_release(tape);

    make_vars("/cpu:0", "/cpu:1");
    ck_assert_str_eq(em_tensor_device(vars[0]), "/cpu:0");
    ck_assert_str_eq(em_tensor_device(vars[3]), "/cpu:1");
    char *text = NULL;
    size_t len = 0;
    FILE *log = open_memstream(&text, &len);
    em_log_device_placement(log);
    tape = em_tape_begin(false);
    em_tensor *loss = mlp_loss(x, labels, "/cpu:0", "/cpu:1");
    ck_assert_str_eq(em_tensor_device(loss), "/cpu:1");
    ck_assert_int_eq(em_gradients(tape, loss, 4, vars, grads), 0);
    em_tape_release(tape);
    em_log_device_placement(NULL);
    fclose(log);
    /* the activations crossed to /cpu:1, and their gradient came back */
    ck_assert_ptr_nonnull(strstr(text, "copy_to_device: /cpu:0 -> /cpu:1 (float32 [16,12])"));
    ck_assert_ptr_nonnull(strstr(text, "copy_to_device: /cpu:1 -> /cpu:0 (float32 [16,12])"));
    free(text);
    for (int k = 0; k < 4; k++) {
        ck_assert_str_eq(em_tensor_device(grads[k]), em_tensor_device(vars[k]));
        ck_assert_msg(em_test_max_rel_diff(grads[k], single[k]) <= 1e-6, "gradient %d differs", k);
    }
    /* traced: the copies are graph nodes, and the graph shows each node's device */
    snapshot(want);
    em_optimizer *opt = em_sgd(0.5);
    em_tensor *px = em_placeholder(EM_F32, EM_SHAPE(-1, IN), "x");
    em_tensor *pl = em_placeholder(EM_I32, EM_SHAPE(-1), "labels");
    ck_assert_int_eq(em_trace_begin(), 0);
    tape = em_tape_begin(false);
    em_tensor *train = em_minimize_op(opt, tape, mlp_loss(px, pl, "/cpu:0", "/cpu:1"), 4, vars);
    em_tape_release(tape);
    em_graph *g = em_trace_end();
    ck_assert_ptr_nonnull(g);
    em_tensor *r[1];
    ck_assert_int_eq(em_graph_run(g, 2, (em_feed[]){{px, x}, {pl, labels}}, 1, &train, r), 0);
    for (int k = 0; k < 4; k++) {
        em_device_begin("/cpu:0"); /* want[k] is a copy on the variable's device */
        em_tensor *expect = em_sub(want[k], em_mul(single[k], em_scalar(EM_F32, 0.5)));
        em_device_end();
        ck_assert_msg(em_test_max_rel_diff(vars[k], expect) <= 1e-5, "updated variable %d differs", k);
    }
    char dir[128], path[160];
    em_test_tmpdir("device", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/g.dot", dir);
    ck_assert_int_eq(em_graph_write_dot(g, path), 0);
    FILE *f = fopen(path, "r");
    char dot[65536];
    size_t n = fread(dot, 1, sizeof dot - 1, f);
    dot[n] = 0;
    fclose(f);
    ck_assert_ptr_nonnull(strstr(dot, "copy_to_device\\n/cpu:1"));
    ck_assert_ptr_nonnull(strstr(dot, "matmul\\n/cpu:0"));
    em_test_tmpdir_remove(dir);
    em_graph_release(g);
    em_optimizer_release(opt);
    one_device();
}
END_TEST

/* Each replica's gradient replaced by the mean of all: the all-reduce. */
START_TEST(test_all_reduce_mean) {
    em_tensor *t[2];
    t[0] = em_tensor_from(EM_F32, EM_SHAPE(3), (float[]){1, 2, 3});
    em_device_begin("/cpu:1");
    t[1] = em_tensor_from(EM_F32, EM_SHAPE(3), (float[]){3, 6, 9});
    em_device_end();
    ck_assert_int_eq(em_all_reduce_mean(2, t), 0);
    for (int i = 0; i < 2; i++) ck_assert_tensor(t[i], EM_F32, EM_SHAPE(3), ((double[]){2, 4, 6}), 0);
    ck_assert_str_eq(em_tensor_device(t[1]), "/cpu:1");
    em_tensor *bad[2] = {t[0], em_zeros(EM_F32, EM_SHAPE(4))};
    ck_assert_int_eq(em_all_reduce_mean(2, bad), -1);
    ck_assert_ptr_nonnull(strstr(em_last_error(), "all_reduce_mean: tensor 1 is float32 [4] but tensor 0 is float32 [3]"));
    em_clear_error();
    ck_assert_tensor(t[0], EM_F32, EM_SHAPE(3), ((double[]){2, 4, 6}), 0);
    one_device();
}
END_TEST

/* A value check failing on one device's thread reaches the caller. */
START_TEST(test_device_errors_reach_the_caller) {
    em_tensor *table = em_test_uniform(EM_SHAPE(5, 4), 0, 1, 3);
    em_tensor *p[2] = {em_placeholder(EM_I32, EM_SHAPE(3), "i0"), em_placeholder(EM_I32, EM_SHAPE(3), "i1")};
    em_tensor *idx = em_tensor_from(EM_I32, EM_SHAPE(3), (int32_t[]){0, 1, 2});
    em_tensor *bad = em_tensor_from(EM_I32, EM_SHAPE(3), (int32_t[]){0, 9, 2});
    ck_assert_int_eq(em_placeholder_set(p[0], idx), 0);
    ck_assert_int_eq(em_placeholder_set(p[1], idx), 0);
    ck_assert_int_eq(em_trace_begin(), 0);
    em_tensor *out[2];
    for (int r = 0; r < 2; r++) {
        em_device_begin(r ? "/cpu:1" : "/cpu:0");
        out[r] = em_gather(table, p[r], 0);
        em_device_end();
    }
    em_graph *g = em_trace_end();
    em_tensor *res[2];
    ck_assert_int_eq(em_graph_run(g, 2, (em_feed[]){{p[0], idx}, {p[1], idx}}, 2, out, res), 0);
    ck_assert_str_eq(em_tensor_device(res[1]), "/cpu:1");
    ck_assert_int_eq(em_graph_run(g, 2, (em_feed[]){{p[0], idx}, {p[1], bad}}, 2, out, res), -1);
    ck_assert_ptr_nonnull(strstr(em_last_error(), "gather"));
    ck_assert_ptr_nonnull(strstr(em_last_error(), "9"));
    em_clear_error();
    em_graph_release(g);
    one_device();
}
END_TEST

/* Lines of text that start with prefix. */
static int count_lines(const char *text, const char *prefix) {
    int n = 0;
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        n += !strncmp(p, prefix, strlen(prefix));
    return n;
}

START_TEST(test_graph_plans_write_the_placement_log) {
    /* issue 21: the lecture's towers over a [None, 4] batch, as a graph: each new plan is logged once */
    em_tensor *x = em_placeholder(EM_F32, EM_SHAPE(-1, 4), "x");
    ck_assert_int_eq(em_trace_begin(), 0);
    em_tensor *half[2], *tower[2];
    ck_assert_int_eq(em_split(x, 2, 0, half), 0);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(em_device_begin(i ? "/cpu:1" : "/cpu:0"), 0);
        tower[i] = em_mul_scalar(half[i], 2);
        ck_assert_int_eq(em_device_end(), 0);
    }
    ck_assert_int_eq(em_device_begin("/cpu:0"), 0);
    em_tensor *y = em_concat(2, tower, 0);
    ck_assert_int_eq(em_device_end(), 0);
    em_graph *g = em_trace_end();
    ck_assert_ptr_nonnull(g);
    char *text = NULL;
    size_t len = 0;
    FILE *log = open_memstream(&text, &len);
    em_log_device_placement(log);
    em_tensor *out;
    for (int run = 0; run < 3; run++)
        ck_assert_msg(em_graph_run(g, 1, (em_feed[]){{x, em_ones(EM_F32, EM_SHAPE(4, 4))}}, 1, &y, &out) == 0, "%s",
                      em_last_error());
    ck_assert_tensor(out, EM_F32, EM_SHAPE(4, 4), ((double[]){2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2}), 0);
    fflush(log);
    int lines = count_lines(text, "graph: ");
    ck_assert_int_eq(lines, (int)em_graph_get_stats(g).last_run_nodes);
    ck_assert_msg(strstr(text, "graph: copy_to_device_3: /cpu:0 -> /cpu:1 (float32 [2,4])\ngraph: mul_4: /cpu:1\n"),
                  "%s", text);
    /* a batch of 6 makes a new plan: logged once more */
    ck_assert_int_eq(em_graph_run(g, 1, (em_feed[]){{x, em_ones(EM_F32, EM_SHAPE(6, 4))}}, 1, &y, &out), 0);
    ck_assert_int_eq(em_graph_run(g, 1, (em_feed[]){{x, em_ones(EM_F32, EM_SHAPE(6, 4))}}, 1, &y, &out), 0);
    fflush(log);
    ck_assert_int_eq(count_lines(text, "graph: "), 2 * lines);
    ck_assert_ptr_nonnull(strstr(text, "(float32 [3,4])\n"));
    em_log_device_placement(NULL);
    fclose(log);
    free(text);
    em_graph_release(g);
    one_device();
}
END_TEST

int main(void) {
    Suite *s = suite_create("device");
    TCase *tc = tcase_create("device");
    tcase_add_checked_fixture(tc, two_devices, NULL);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_names_and_scopes);
    tcase_add_test(tc, test_gpu_absent_and_soft_placement);
    tcase_add_test(tc, test_placement_rules);
    tcase_add_test(tc, test_lecture_split_concat);
    tcase_add_test(tc, test_data_parallel_matches_one_device);
    tcase_add_test(tc, test_model_parallel);
    tcase_add_test(tc, test_all_reduce_mean);
    tcase_add_test(tc, test_device_errors_reach_the_caller);
    tcase_add_test(tc, test_graph_plans_write_the_placement_log);
    suite_add_tcase(s, tc);
    return em_test_run(s);
}
