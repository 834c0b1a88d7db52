/* MNIST, the lecture's closing example (TensorFlow's mnist_with_summaries):
 * 784 -> 500 ReLU -> dropout -> 10, softmax cross-entropy, Adam 1e-3, batch
 * 100, with TensorBoard summaries, PNG plots and checkpoints to resume from.
 *
 *   build/examples/mnist --logdir runs/mnist            (5 epochs)
 *   tensorboard --logdir runs/mnist
 *
 * Checkpoints (a checkpoint manager: the last --keep of them, "model-<step>"
 * and "model.index" in --checkpoint-dir) hold everything a resumed run needs
 * to go on exactly as if it had never stopped: the variables and Adam's
 * slots, the step, the random stream (dropout) and the data position (the
 * epoch and the shuffle). Killed at any moment, the same command with
 * --resume continues from the newest one and ends with the variables an
 * uninterrupted run ends with, bit for bit:
 *
 *   until build/examples/mnist --resume; do echo "killed; resuming"; done
 */
#include <ember.h>

#include "mnist_data.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

typedef struct {
    const char *data, *logdir, *device, *checkpoint_dir, *autocast;
    int epochs, max_steps, batch, eval_every, threads, devices, keep, checkpoint_every;
    double keep_prob, lr;
    uint64_t seed;
    bool resume, quiet, graph;
} options;

static void usage(FILE *out) {
    fprintf(out,
            "usage: mnist [--data DIR] [--logdir DIR] [--epochs N] [--steps N] [--batch N]\n"
            "             [--eval-every N] [--keep-prob P] [--lr X] [--seed S] [--threads N]\n"
            "             [--device D] [--devices N] [--checkpoint-dir DIR] [--keep N]\n"
            "             [--checkpoint-every N] [--resume] [--quiet] [--graph] [--autocast bf16|f16]\n"
            "  --data DIR     MNIST-format IDX files (default data/mnist; Fashion-MNIST works too)\n"
            "  --logdir DIR   TensorBoard logs and PNG plots (default runs/mnist)\n"
            "  --steps N      stop at step N even if epochs remain (0: no limit)\n"
            "  --checkpoint-dir DIR  checkpoints model-<step> and model.index (default: the logdir)\n"
            "  --keep N       checkpoints kept, the newest (default 5; 0: all)\n"
            "  --checkpoint-every N  steps between checkpoints (default: --eval-every), and one at the end\n"
            "  --resume       continue from the newest checkpoint (none: start fresh); without it a run\n"
            "                 starts fresh. The epochs and --steps count from the start of training\n"
            "  --graph        trace one step and replay it as a graph (default: eager)\n"
            "  --device D     where the model trains: /cpu:0 (default) or /gpu:0 (the lecture's names)\n"
            "  --devices N    data parallelism over N logical CPU devices, the cores shared out:\n"
            "                 each takes batch/N examples, their gradients are averaged\n"
            "  --autocast T   mixed precision: the forward pass under em_autocast_begin (bf16 or f16; f16\n"
            "                 scales the loss dynamically and trains eagerly on one device); variables stay float32\n");
}

static int parse(int argc, char **argv, options *o) {
    *o = (options){"data/mnist", "runs/mnist", "/cpu:0", NULL, NULL, 5, 0, 100, 200, 0, 1, 5, 0, 0.9, 1e-3, 1,
                   false, false, false};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name, action) EXAMPLE_OPTION("mnist", name, action)
        OPT("--data", o->data = v)
        OPT("--logdir", o->logdir = v)
        OPT("--epochs", o->epochs = atoi(v))
        OPT("--steps", o->max_steps = atoi(v))
        OPT("--batch", o->batch = atoi(v))
        OPT("--eval-every", o->eval_every = atoi(v))
        OPT("--keep-prob", o->keep_prob = atof(v))
        OPT("--lr", o->lr = atof(v))
        OPT("--seed", o->seed = strtoull(v, NULL, 10))
        OPT("--threads", o->threads = atoi(v))
        OPT("--devices", o->devices = atoi(v))
        OPT("--device", o->device = v)
        OPT("--checkpoint-dir", o->checkpoint_dir = v)
        OPT("--keep", o->keep = atoi(v))
        OPT("--checkpoint-every", o->checkpoint_every = atoi(v))
        OPT("--autocast", o->autocast = v)
#undef OPT
        EXAMPLE_FLAG("--resume", o->resume)
        EXAMPLE_FLAG("--quiet", o->quiet)
        EXAMPLE_FLAG("--graph", o->graph)
        EXAMPLE_HELP_OR_UNKNOWN("mnist", usage)
    }
    if (o->epochs < 1 || o->batch < 1 || o->eval_every < 1 || o->keep_prob <= 0 || o->keep_prob > 1 ||
        o->checkpoint_every < 0 || o->keep < 0 || o->max_steps < 0) {
        fprintf(stderr, "mnist: epochs, batch and eval-every must be positive, steps, keep and checkpoint-every "
                        "not negative, and keep-prob in (0, 1]\n");
        return -1;
    }
    if (o->autocast && strcmp(o->autocast, "bf16") && strcmp(o->autocast, "f16")) {
        fprintf(stderr, "mnist: --autocast takes bf16 or f16, not %s\n", o->autocast);
        return -1;
    }
    if (o->autocast && !strcmp(o->autocast, "f16") && (o->graph || o->devices > 1)) {
        fprintf(stderr, "mnist: --autocast f16 trains eagerly on one device (the loss scaler reads its overflow "
                        "check back at every step)\n");
        return -1;
    }
    if (!o->checkpoint_dir) o->checkpoint_dir = o->logdir;
    if (!o->checkpoint_every) o->checkpoint_every = o->eval_every;
    if (o->devices < 1 || o->devices > 32 || o->batch % o->devices) {
        fprintf(stderr, "mnist: --devices must be in 1..32 and divide the batch (%d)\n", o->batch);
        return -1;
    }
    if (o->devices > 1 && strcmp(o->device, "/cpu:0")) {
        fprintf(stderr, "mnist: --devices spreads the model over CPU devices: it does not go with --device %s\n",
                o->device);
        return -1;
    }
    return 0;
}

static int fail(const char *what) {
    fprintf(stderr, "mnist: %s: %s\n", what, em_last_error() ? em_last_error() : "failed");
    return 1;
}

/* The network of mnist_with_summaries; `train` turns dropout on. */
typedef struct {
    em_tensor *w1, *b1, *w2, *b2;
    em_tensor *pre_activations, *activations; /* of the last call, for histograms */
    em_dtype autocast; /* --autocast: the forward pass's autocast dtype; EM_F32: none */
} model;

static em_tensor *forward(model *m, em_tensor *x, double keep_prob) {
    if (m->autocast != EM_F32) em_autocast_begin(m->autocast);
    em_name_scope_begin("layer1");
    em_name_scope_begin("Wx_plus_b");
    m->pre_activations = em_add(em_matmul(x, m->w1), m->b1);
    em_name_scope_end();
    m->activations = em_relu(m->pre_activations);
    em_name_scope_end();
    em_name_scope_begin("dropout");
    em_tensor *dropped = em_dropout(m->activations, keep_prob);
    em_name_scope_end();
    em_name_scope_begin("layer2");
    em_tensor *logits = em_add(em_matmul(dropped, m->w2), m->b2);
    em_name_scope_end();
    if (m->autocast != EM_F32) em_autocast_end();
    return logits;
}


static double evaluate(model *m, const dataset *test, const char *device) {
    double correct = 0;
    const int64_t chunk = 1000;
    for (int64_t at = 0; at < test->n; at += chunk) {
        int64_t n = test->n - at < chunk ? test->n - at : chunk;
        em_scope_begin();
        em_tensor *x = em_mul_scalar(em_cast(em_slice(test->images, (int64_t[]){at, 0}, (int64_t[]){n, 784}), EM_F32),
                                     1.0 / 255.0);
        em_tensor *y = em_slice(test->labels, (int64_t[]){at}, (int64_t[]){n});
        em_device_begin(device);
        correct += em_item(accuracy_of(forward(m, x, 1.0), y)) * (double)n;
        em_device_end();
        em_scope_end();
    }
    return correct / (double)test->n;
}

/* Data parallelism, as the lecture's towers: each of `ndev` devices takes
 * its share of the batch and computes the gradients of its loss; the
 * gradients are averaged on /cpu:0 and one update is applied. (Each tower
 * differentiates its loss / ndev, so the average is a plain sum.) Returns
 * the train op; *loss and *accuracy get the towers' means. */
static em_tensor *tower_step(model *m, em_optimizer *opt, em_tensor *const *vars, int ndev, double keep_prob,
                             em_tensor *x, em_tensor *labels, em_tensor **loss, em_tensor **accuracy) {
    em_tensor *xs[EM_MAX_DEVICES], *ls[EM_MAX_DEVICES], *grads[4] = {0};
    *loss = *accuracy = NULL;
    if (em_split(x, ndev, 0, xs) || em_split(labels, ndev, 0, ls)) return NULL;
    for (int r = 0; r < ndev; r++) {
        char name[32], tower[32];
        snprintf(name, sizeof name, "/cpu:%d", r);
        snprintf(tower, sizeof tower, "tower_%d", r);
        em_tensor *g[4];
        if (em_device_begin(name)) return NULL;
        em_name_scope_begin(tower);
        em_tape *tape = em_tape_begin(false);
        em_tensor *logits = forward(m, xs[r], keep_prob);
        em_tensor *l = em_mean(em_sparse_softmax_cross_entropy_with_logits(ls[r], logits), EM_ALL_AXES, false);
        em_tensor *share = em_mul_scalar(l, 1.0 / ndev);
        em_tape_stop(tape);
        int rc = em_gradients(tape, share, 4, vars, g);
        em_tape_release(tape);
        em_tensor *a = accuracy_of(logits, ls[r]);
        em_name_scope_end();
        em_device_end();
        if (rc) return NULL;
        em_device_begin("/cpu:0"); /* where the variables live */
        for (int k = 0; k < 4; k++) grads[k] = grads[k] ? em_add(grads[k], g[k]) : g[k];
        *loss = *loss ? em_add(*loss, l) : l;
        *accuracy = *accuracy ? em_add(*accuracy, a) : a;
        em_device_end();
    }
    *loss = em_mul_scalar(*loss, 1.0 / ndev);
    *accuracy = em_mul_scalar(*accuracy, 1.0 / ndev);
    return em_apply_gradients_op(opt, 4, grads, vars);
}

/* One training step traced as a graph (TF1's graph of mnist_with_summaries):
 * the forward pass on placeholders x [-1,784] and labels [-1], the loss and
 * the optimizer's update (*train, the fetch that runs it). Traced on a copy
 * of the model so that m's last activations stay those of the eager step. */
typedef struct {
    em_graph *graph;
    em_tensor *x, *labels;                  /* placeholders: [-1,784] float32, [-1] int64 */
    em_tensor *train, *loss, *accuracy;     /* fetches */
    em_tensor *pre_activations, *activations;
} traced_step;

/* Traces one training step into a graph: the forward pass on placeholders,
 * the loss, the accuracy and the optimizer's update (train, the fetch that
 * runs it). Traced on a copy of the model so that m's last activations stay
 * those of the eager step. 0, or -1 with an error. */
static int trace_step(const model *m, em_optimizer *opt, em_tensor *const *vars, double keep_prob, int ndev,
                      int batch, traced_step *t) {
    model traced = *m;
    /* Towers split the batch: its size is then part of the graph. */
    t->x = em_keep(em_placeholder(EM_F32, EM_SHAPE(ndev > 1 ? batch : -1, 784), "x"));
    t->labels = em_keep(em_placeholder(EM_I64, EM_SHAPE(ndev > 1 ? batch : -1), "labels"));
    if (!t->x || !t->labels || em_trace_begin()) return -1;
    if (ndev > 1) {
        t->train = tower_step(&traced, opt, vars, ndev, keep_prob, t->x, t->labels, &t->loss, &t->accuracy);
        t->pre_activations = traced.pre_activations;
        t->activations = traced.activations;
        t->graph = em_trace_end();
        return t->graph && t->train ? 0 : -1;
    }
    em_tape *tape = em_tape_begin(false);
    em_tensor *logits = forward(&traced, t->x, keep_prob);
    em_name_scope_begin("cross_entropy");
    t->loss = em_mean(em_sparse_softmax_cross_entropy_with_logits(t->labels, logits), EM_ALL_AXES, false);
    em_name_scope_end();
    em_tape_stop(tape);
    em_name_scope_begin("accuracy");
    t->accuracy = accuracy_of(logits, t->labels);
    em_name_scope_end();
    em_name_scope_begin("train");
    t->train = em_minimize_op(opt, tape, t->loss, 4, vars);
    em_name_scope_end();
    em_tape_release(tape);
    t->pre_activations = traced.pre_activations;
    t->activations = traced.activations;
    t->graph = em_trace_end();
    return t->graph && t->train && t->accuracy ? 0 : -1;
}

static void traced_step_release(traced_step *t) {
    em_graph_release(t->graph);
    em_release(t->x);
    em_release(t->labels);
}

/* The trained network for inference, written as the two files a program
 * serving it loads: model.emg (em_graph_load; examples/classify.c) and
 * model.onnx (onnxruntime and the others). Logits and probabilities of a
 * batch of any size, no dropout, the weights frozen in. A model trained on a
 * GPU is traced on CPU copies of its weights: the files serve on the CPU. */
static int write_inference_files(const model *m, const char *logdir) {
    char path[1024];
    em_scope_begin();
    model traced = *m;
    traced.autocast = EM_F32; /* served in float32 (ONNX included) */
    if (strcmp(em_tensor_device(m->w1), "/cpu:0")) {
        traced.w1 = em_to_device(m->w1, "/cpu:0");
        traced.b1 = em_to_device(m->b1, "/cpu:0");
        traced.w2 = em_to_device(m->w2, "/cpu:0");
        traced.b2 = em_to_device(m->b2, "/cpu:0");
    }
    em_tensor *x = em_placeholder(EM_F32, EM_SHAPE(-1, 784), "x");
    int rc = x && traced.w1 && traced.b1 && traced.w2 && traced.b2 && !em_trace_begin() ? 0 : -1;
    em_tensor *logits = rc ? NULL : forward(&traced, x, 1.0);
    em_tensor *fetches[2] = {logits, em_softmax(logits, -1)};
    em_graph *g = rc ? NULL : em_trace_end();
    const char *names[2] = {"logits", "probabilities"};
    snprintf(path, sizeof path, "%s/model.emg", logdir);
    rc = g ? em_graph_save(g, path, 2, fetches, names, EM_SAVE_INFERENCE | EM_SAVE_FREEZE) : -1;
    if (!rc) printf("inference graph: %s (build/examples/classify %s)\n", path, path);
    snprintf(path, sizeof path, "%s/model.onnx", logdir);
    if (!rc) rc = em_graph_export_onnx(g, path, 2, fetches, names, 17);
    if (!rc) printf("ONNX model: %s\n", path);
    em_graph_release(g);
    em_scope_end();
    return rc;
}

/* The traced step for TensorBoard's Graphs tab. */
static int write_graph_summary(em_summary_writer *w, const traced_step *t) { return em_summary_graph(w, t->graph); }

/* Weight summaries as mnist_with_summaries's variable_summaries(). */
static void variable_summaries(em_summary_writer *w, const char *name, em_tensor *v, int64_t step) {
    char tag[256];
    em_scope_begin();
    em_tensor *mean = em_mean(v, EM_ALL_AXES, false);
    double mu = em_item(mean);
    double sd = sqrt(em_item(em_mean(em_square(em_sub(v, mean)), EM_ALL_AXES, false)));
    snprintf(tag, sizeof tag, "%s/summaries/mean", name);
    em_summary_scalar(w, tag, step, mu);
    snprintf(tag, sizeof tag, "%s/summaries/stddev", name);
    em_summary_scalar(w, tag, step, sd);
    snprintf(tag, sizeof tag, "%s/summaries/max", name);
    em_summary_scalar(w, tag, step, em_item(em_max(v, EM_ALL_AXES, false)));
    snprintf(tag, sizeof tag, "%s/summaries/min", name);
    em_summary_scalar(w, tag, step, em_item(em_min(v, EM_ALL_AXES, false)));
    snprintf(tag, sizeof tag, "%s/summaries/histogram", name);
    em_summary_histogram(w, tag, step, v);
    em_scope_end();
}

int main(int argc, char **argv) {
    options o;
    if (parse(argc, argv, &o)) return 2;
    if (o.threads > 0) em_set_num_threads(o.threads);
    if (o.devices > 1 && em_set_cpu_devices(o.devices, 0)) return fail("making the devices");
    em_set_seed(o.seed);

    dataset train, test;
    if (load_mnist(o.data, "train", EM_SHAPE(784), &train) || load_mnist(o.data, "t10k", EM_SHAPE(784), &test)) return fail("loading MNIST");
    printf("MNIST: %lld training and %lld test images from %s, %d threads, %d device%s\n", (long long)train.n,
           (long long)test.n, o.data, em_num_threads(), o.devices, o.devices > 1 ? "s" : "");
    if (o.autocast) printf("autocast %s: matmuls in %s, variables float32\n", o.autocast, o.autocast);

    model m = {.autocast = !o.autocast ? EM_F32 : !strcmp(o.autocast, "bf16") ? EM_BF16 : EM_F16};
    if (em_device_begin(o.device)) return fail("placing the model");
    em_variable_scope_begin("layer1", EM_REUSE_FALSE);
    m.w1 = em_get_variable("weights", EM_F32, EM_SHAPE(784, 500), EM_INIT_TRUNC_NORMAL(0, 0.1));
    m.b1 = em_get_variable("biases", EM_F32, EM_SHAPE(500), EM_INIT_CONST(0.1));
    em_variable_scope_end();
    em_variable_scope_begin("layer2", EM_REUSE_FALSE);
    m.w2 = em_get_variable("weights", EM_F32, EM_SHAPE(500, 10), EM_INIT_TRUNC_NORMAL(0, 0.1));
    m.b2 = em_get_variable("biases", EM_F32, EM_SHAPE(10), EM_INIT_CONST(0.1));
    em_variable_scope_end();
    em_device_end();
    if (!m.w1 || !m.b1 || !m.w2 || !m.b2) return fail("creating variables");
    em_tensor *vars[4] = {m.w1, m.b1, m.w2, m.b2};
    em_optimizer *adam = em_adam(o.lr, 0.9, 0.999, 1e-8);
    if (!adam) return fail("creating the optimizer");
    /* float16's loss scaling, PyTorch's GradScaler defaults */
    em_loss_scaler *scaler = m.autocast == EM_F16 ? em_dynamic_loss_scaler(65536, 2, 0.5, 2000) : NULL;
    if (m.autocast == EM_F16 && !scaler) return fail("creating the loss scaler");

    em_summary_writer *train_log, *test_log;
    {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/train", o.logdir);
        train_log = em_summary_writer_open(dir);
        snprintf(dir, sizeof dir, "%s/test", o.logdir);
        test_log = em_summary_writer_open(dir);
        if (!train_log || !test_log) return fail("opening the summary writers");
    }
    em_checkpoint_manager *ckpt = em_checkpoint_manager_open(o.checkpoint_dir, "model", o.keep);
    if (!ckpt) return fail("opening the checkpoints");

    int64_t steps_per_epoch = train.n / o.batch;
    int64_t total = steps_per_epoch * o.epochs;
    if (o.max_steps > 0 && o.max_steps < total) total = o.max_steps;
    data_order data = {.n = train.n};
    if (data_order_init(&data, train.n, o.seed)) return fail("allocating");

    /* The step as a graph: TensorBoard shows it, and --graph replays it. The
     * trace is shape-only, so it runs no update; it draws its dropout masks
     * at run time from the same random stream as eager steps would. */
    em_scope_begin();
    traced_step traced = {0};
    em_device_begin(o.device);
    int traced_rc = trace_step(&m, adam, vars, o.keep_prob, o.devices, o.batch, &traced);
    em_device_end();
    if (traced_rc || write_graph_summary(train_log, &traced)) return fail("tracing the training step");
    em_scope_end();

    /* Resuming comes last, so that the checkpoint's random stream replaces
     * whatever the set-up drew from it. */
    int64_t step0 = 0;
    double best_acc = 0;
    if (o.resume) {
        if ((step0 = resume_newest(ckpt, &data, o.batch, "mnist", "", true)) < 0) return 1;
        if (step0) em_checkpoint_manager_get_value(ckpt, "best_accuracy", &best_acc);
    }
    int64_t todo = total > step0 ? total - step0 : 0;
    /* The curves grow as the run goes (a long run may be killed long before its end). */
    int64_t cap = 1024, acc_cap = 64;
    double *loss_curve = malloc(sizeof(double) * (size_t)cap);
    double *acc_x = malloc(sizeof(double) * (size_t)acc_cap);
    double *acc_y = malloc(sizeof(double) * (size_t)acc_cap);
    if (!loss_curve || !acc_x || !acc_y) return fail("allocating");

    int nacc = 0;
    double test_acc = 0, start = now(), last_print = 0;
    if (!todo) printf("already trained %lld of %lld steps\n", (long long)step0, (long long)total);
    for (int64_t step = step0 + 1; step <= total; step++) {
        int64_t s = step - step0 - 1; /* steps run by this process */
        em_scope_begin();
        em_tensor *x, *y;
        batch_of(&train, data_order_batch(&data, step - 1, o.batch), o.batch, &x, &y);
        double loss, accuracy;
        em_tensor *pre_activations, *activations;
        if (o.graph) {
            em_tensor *out[5];
            if (em_graph_run(traced.graph, 2, (em_feed[]){{traced.x, x}, {traced.labels, y}}, 5,
                             (em_tensor *[]){traced.train, traced.loss, traced.accuracy, traced.pre_activations,
                                             traced.activations},
                             out))
                return fail("training step (graph)");
            loss = em_item(out[1]);
            accuracy = em_item(out[2]);
            pre_activations = out[3];
            activations = out[4];
        } else if (o.devices > 1) {
            em_tensor *l, *a;
            if (!tower_step(&m, adam, vars, o.devices, o.keep_prob, x, y, &l, &a)) return fail("training step");
            loss = em_item(l);
            accuracy = em_item(a);
            pre_activations = m.pre_activations;
            activations = m.activations;
        } else {
            em_device_begin(o.device);
            em_tape *tape = em_tape_begin(false);
            em_tensor *logits = forward(&m, x, o.keep_prob);
            em_tensor *cross_entropy = em_mean(em_sparse_softmax_cross_entropy_with_logits(y, logits), EM_ALL_AXES, false);
            em_tensor *scaled = scaler ? em_loss_scaler_scale(scaler, cross_entropy) : NULL;
            em_tape_stop(tape);
            em_tensor *grads[4];
            if (scaler ? em_compute_gradients(adam, tape, scaled, 4, vars, grads) ||
                             em_loss_scaler_step(scaler, adam, 4, grads, vars) < 0
                       : em_minimize(adam, tape, cross_entropy, 4, vars))
                return fail("training step");
            em_tape_release(tape);
            loss = em_item(cross_entropy);
            accuracy = step % 10 == 0 ? em_item(accuracy_of(logits, y)) : 0;
            em_device_end();
            pre_activations = m.pre_activations;
            activations = m.activations;
        }
        if (s == cap && !(loss_curve = realloc(loss_curve, sizeof(double) * (size_t)(cap *= 2))))
            return fail("allocating");
        loss_curve[s] = loss;
        if (step % 10 == 0) {
            em_summary_scalar(train_log, "cross_entropy", step, loss);
            em_summary_scalar(train_log, "accuracy", step, accuracy);
        }
        if (step % 100 == 0) {
            variable_summaries(train_log, "layer1/weights", m.w1, step);
            variable_summaries(train_log, "layer1/biases", m.b1, step);
            em_summary_histogram(train_log, "layer1/Wx_plus_b/pre_activations", step, pre_activations);
            em_summary_histogram(train_log, "layer1/activations", step, activations);
        }
        if (s == 0)
            em_summary_image(train_log, "input_reshape/input", step, em_reshape(x, EM_SHAPE(o.batch, 28, 28, 1)), 10);
        em_scope_end();

        if (step % o.eval_every == 0 || step == total) {
            test_acc = evaluate(&m, &test, o.device);
            if (test_acc > best_acc) best_acc = test_acc;
            em_summary_scalar(test_log, "accuracy", step, test_acc);
            if (nacc == acc_cap && (!(acc_x = realloc(acc_x, sizeof(double) * (size_t)(acc_cap * 2))) ||
                                    !(acc_y = realloc(acc_y, sizeof(double) * (size_t)(acc_cap *= 2)))))
                return fail("allocating");
            acc_x[nacc] = (double)step;
            acc_y[nacc++] = test_acc;
        }
        if (step % o.checkpoint_every == 0 || step == total) {
            if (data_order_save(&data, ckpt, o.batch) ||
                em_checkpoint_manager_set_value(ckpt, "best_accuracy", best_acc) ||
                em_checkpoint_manager_save(ckpt, step))
                return fail("saving the checkpoint");
        }
        double t = now();
        if (!o.quiet && (t - last_print > 0.5 || step == total)) {
            double rate = (double)(s + 1) / (t - start);
            printf("\rstep %6lld/%lld  epoch %d  loss %.4f  test accuracy %.4f  %.0f steps/s  ETA %.0fs   ",
                   (long long)step, (long long)total, (int)((step - 1) / steps_per_epoch) + 1, loss, test_acc, rate,
                   (double)(total - step) / rate);
            fflush(stdout);
            last_print = t;
        }
    }
    if (!todo) test_acc = evaluate(&m, &test, o.device);
    int64_t ran = todo;
    double elapsed = now() - start;
    printf("\ntrained %lld steps (%s, %d device%s%s%s) in %.1f s (%.2f ms/step)\n", (long long)ran,
           o.graph ? "graph" : "eager", o.devices, o.devices > 1 ? "s" : "", strcmp(o.device, "/cpu:0") ? ": " : "",
           strcmp(o.device, "/cpu:0") ? o.device : "", elapsed, ran ? 1e3 * elapsed / (double)ran : 0.0);
    printf("best test accuracy: %.4f\nfinal test accuracy: %.4f\n", best_acc, test_acc);
    if (scaler)
        printf("loss scale %g, %lld steps skipped (overflow)\n", em_loss_scaler_get_scale(scaler),
               (long long)em_loss_scaler_skipped(scaler));

    char path[1024];
    snprintf(path, sizeof path, "%s/loss.png", o.logdir);
    if (ran > 0) /* the curves of this process's steps */
        em_plot_png(path, "MNIST training loss", "step", "cross entropy", 1,
                    &(em_series){"train", NULL, loss_curve, (int)ran}, 900, 500);
    snprintf(path, sizeof path, "%s/accuracy.png", o.logdir);
    if (nacc > 0)
        em_plot_png(path, "MNIST test accuracy", "step", "accuracy", 1, &(em_series){"test", acc_x, acc_y, nacc},
                    900, 500);
    snprintf(path, sizeof path, "%s/layer1_weights.png", o.logdir);
    em_scope_begin();
    em_plot_image_grid(path, em_transpose(m.w1, EM_ALL_AXES), 28, 28, 25);
    em_scope_end();
    if (em_last_error()) return fail("writing the plots");
    printf("TensorBoard logs in %s (tensorboard --logdir %s); plots: %s/{loss,accuracy,layer1_weights}.png\n",
           o.logdir, o.logdir, o.logdir);
    if (write_inference_files(&m, o.logdir)) return fail("writing model.emg and model.onnx");

    traced_step_release(&traced);
    em_summary_writer_close(train_log);
    em_summary_writer_close(test_log);
    em_checkpoint_manager_close(ckpt);
    em_optimizer_release(adam);
    em_loss_scaler_release(scaler);
    dataset_release(&train);
    dataset_release(&test);
    data_order_free(&data);
    free(loss_curve);
    free(acc_x);
    free(acc_y);
    em_shutdown();
    return 0;
}
