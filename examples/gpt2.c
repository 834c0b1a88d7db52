/* GPT-2 trained with Ember (the model: examples/gpt2_model.h), on llm.c's token shards, generating text
 * at the end with a cache of keys and values.
 *
 *   make gpt2      (tokenizes the fortunes corpus into data/gpt2/, trains a small GPT, generates)
 *   build/examples/gpt2 --data data/gpt2 --layers 6 --heads 6 --channels 384 --seq 128 --steps 300
 *   build/examples/gpt2 --init-from gpt2_124M.bin --steps 0     (llm.c's checkpoint; generates)
 *   tensorboard --logdir runs/gpt2
 *
 * --data DIR holds train.bin and val.bin (llm.c token shards) and tokenizer.bin (llm.c's tokenizer file); when
 * they are missing (or with --prepare) they are made from the fortunes corpus (examples/gpt2_data.h) with
 * GPT-2's tokenizer (data/gpt2/encoder.json and vocab.bpe): every 20th fortune goes to val.bin.
 * The training loss, the validation loss every --eval-every steps (beside a bigram model's on the same
 * tokens), the learning rate and the traced step's graph go to TensorBoard; the loss curves to
 * <logdir>/loss.png; checkpoints (a checkpoint manager: the variables, AdamW's slots, the step, the
 * loader's position) to <logdir>, from which --resume continues; the final model also as an llm.c
 * checkpoint, <logdir>/model.bin. */
#include <ember.h>
#include <ember/text.h>

#include "gpt2_data.h"
#include "gpt2_model.h"

#include <errno.h>
#include <sys/stat.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct options {
    const char *data, *logdir, *device, *init_from, *corpus, *autocast;
    int layers, heads, channels, batch, seq, steps, warmup, eval_every, eval_batches, threads, gen_tokens, top_k;
    int checkpoint_every;
    double lr, temperature;
    uint64_t seed;
    bool graph, resume, prepare;
} options;

static void usage(FILE *out) {
    fprintf(out,
            "usage: gpt2 [--data DIR] [--prepare] [--corpus DIR] [--logdir DIR] [--init-from FILE.bin] [--layers N] [--heads N]\n"
            "            [--channels N] [--batch B] [--seq T] [--steps N] [--lr X] [--warmup N]\n"
            "            [--eval-every N] [--eval-batches N] [--checkpoint-every N] [--resume] [--graph]\n"
            "            [--device D] [--threads N] [--seed S] [--gen-tokens N] [--temperature X]\n"
            "            [--top-k K] [--autocast bf16|f16]\n"
            "  --data DIR        train.bin, val.bin (llm.c token shards), tokenizer.bin (default runs/gpt2/data),\n"
            "                    made from the fortunes in --corpus DIR (default " GPT2_CORPUS_DIR ") when missing\n"
            "  --prepare         make them again\n"
            "  --init-from FILE  start from an llm.c checkpoint (its config replaces the size flags)\n"
            "  --layers --heads --channels   the model (default 6, 6, 384; GPT-2 small: 12 12 768)\n"
            "  --batch B --seq T the batch (default 8 x 128)\n"
            "  --steps N         training steps (default 300; 0: only generate)\n"
            "  --lr X --warmup N AdamW's peak rate (default 1e-3) after a linear warm-up, then cosine decay to 0.1 x\n"
            "  --graph           trace one step and replay it as a graph (default: eager)\n"
            "  --device D        /cpu:0 (default) or /gpu:0\n"
            "  --resume          continue from the newest checkpoint in the logdir\n"
            "  --autocast T      mixed precision: the forward pass and the loss under em_autocast_begin (bf16, or\n"
            "                    f16 with dynamic loss scaling, eager only); the variables stay float32\n"
            "  --gen-tokens N    tokens generated at the end (default 200), sampled at --temperature\n"
            "                    (default 0.8) from the --top-k (default 40) most likely\n");
}

static int parse(int argc, char **argv, options *o) {
    *o = (options){.data = "runs/gpt2/data", .corpus = GPT2_CORPUS_DIR, .logdir = "runs/gpt2", .device = "/cpu:0", .layers = 6, .heads = 6,
                   .channels = 384, .batch = 8, .seq = 128, .steps = 300, .warmup = 30, .eval_every = 50,
                   .eval_batches = 8, .gen_tokens = 200, .top_k = 40, .lr = 1e-3, .temperature = 0.8, .seed = 1337};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        }
        if (!strcmp(a, "--graph")) {
            o->graph = true;
            continue;
        }
        if (!strcmp(a, "--resume")) {
            o->resume = true;
            continue;
        }
        if (!strcmp(a, "--prepare")) {
            o->prepare = true;
            continue;
        }
        const struct { const char *name; const char **s; int *n; double *x; } opts[] = {
            {"--data", .s = &o->data}, {"--logdir", .s = &o->logdir}, {"--device", .s = &o->device},
            {"--init-from", .s = &o->init_from}, {"--corpus", .s = &o->corpus}, {"--autocast", .s = &o->autocast},
            {"--layers", .n = &o->layers}, {"--heads", .n = &o->heads}, {"--channels", .n = &o->channels},
            {"--batch", .n = &o->batch}, {"--seq", .n = &o->seq}, {"--steps", .n = &o->steps},
            {"--warmup", .n = &o->warmup}, {"--eval-every", .n = &o->eval_every},
            {"--eval-batches", .n = &o->eval_batches}, {"--threads", .n = &o->threads},
            {"--gen-tokens", .n = &o->gen_tokens}, {"--top-k", .n = &o->top_k},
            {"--checkpoint-every", .n = &o->checkpoint_every}, {"--lr", .x = &o->lr},
            {"--temperature", .x = &o->temperature},
        };
        size_t k = 0;
        while (k < sizeof opts / sizeof *opts && strcmp(a, opts[k].name)) k++;
        if (!strcmp(a, "--seed") && v) {
            o->seed = strtoull(v, NULL, 10);
            i++;
        } else if (k == sizeof opts / sizeof *opts) {
            fprintf(stderr, "gpt2: unknown option %s\n", a);
            usage(stderr);
            return -1;
        } else if (!v) {
            fprintf(stderr, "gpt2: %s needs a value\n", a);
            return -1;
        } else {
            if (opts[k].s) *opts[k].s = v;
            if (opts[k].n) *opts[k].n = atoi(v);
            if (opts[k].x) *opts[k].x = atof(v);
            i++;
        }
    }
    if (o->layers < 1 || o->heads < 1 || o->channels < 1 || o->channels % o->heads || o->batch < 1 || o->seq < 1 ||
        o->steps < 0 || o->eval_every < 1 || o->eval_batches < 1 || o->gen_tokens < 0 || o->top_k < 1 ||
        o->temperature <= 0 || o->warmup < 0) {
        fprintf(stderr, "gpt2: sizes must be positive (channels a multiple of heads), steps, warmup and gen-tokens "
                        "not negative, temperature positive\n");
        return -1;
    }
    if (o->autocast && strcmp(o->autocast, "bf16") && strcmp(o->autocast, "f16")) {
        fprintf(stderr, "gpt2: --autocast takes bf16 or f16, not %s\n", o->autocast);
        return -1;
    }
    if (o->autocast && !strcmp(o->autocast, "f16") && o->graph) {
        fprintf(stderr, "gpt2: --autocast f16 trains eagerly (the loss scaler reads its overflow check back at every "
                        "step)\n");
        return -1;
    }
    if (!o->checkpoint_every) o->checkpoint_every = o->eval_every;
    return 0;
}

static int fail(const char *what) {
    fprintf(stderr, "gpt2: %s: %s\n", what, em_last_error() ? em_last_error() : "failed");
    return 1;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- data: the fortunes corpus tokenized into llm.c's files ---- */

static int make_dirs(const char *dir) {
    char p[1024];
    snprintf(p, sizeof p, "%s", dir);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            if (mkdir(p, 0777) && errno != EEXIST) return -1;
            *s = '/';
        }
    return mkdir(p, 0777) && errno != EEXIST ? -1 : 0;
}

static int prepare_data(const options *o) {
    char err[512], path[1024];
    size_t len;
    double t0 = now();
    char *text = gpt2_corpus_text(o->corpus, &len, err, sizeof err);
    if (!text) {
        fprintf(stderr, "gpt2: %s\n", err);
        return -1;
    }
    em_tokenizer *tok = em_tokenizer_load_gpt2("data/gpt2/encoder.json", "data/gpt2/vocab.bpe");
    int64_t n = 0;
    int32_t *ids = tok ? gpt2_encode_documents(tok, text, len, &n) : NULL;
    free(text);
    if (!ids) return -1;
    double t1 = now();
    /* documents start at each end-of-text id; every 20th goes to validation */
    int32_t eot = em_tokenizer_eot(tok), *val = malloc(sizeof *val * (size_t)n), *train = malloc(sizeof *train * (size_t)n);
    int64_t nval = 0, ntrain = 0, doc = -1;
    for (int64_t i = 0; i < n; i++) {
        doc += ids[i] == eot;
        if (doc % 20 == 0) val[nval++] = ids[i];
        else train[ntrain++] = ids[i];
    }
    int rc = make_dirs(o->data);
    if (rc) fprintf(stderr, "gpt2: cannot make %s: %s\n", o->data, strerror(errno));
    em_scope_begin();
    snprintf(path, sizeof path, "%s/train.bin", o->data);
    rc = rc || em_llmc_save_tokens(path, em_tensor_from(EM_I32, EM_SHAPE(ntrain), train));
    snprintf(path, sizeof path, "%s/val.bin", o->data);
    rc = rc || em_llmc_save_tokens(path, em_tensor_from(EM_I32, EM_SHAPE(nval), val));
    snprintf(path, sizeof path, "%s/tokenizer.bin", o->data);
    rc = rc || em_tokenizer_save_llmc(tok, path);
    em_scope_end();
    if (!rc)
        printf("data: %s (%.2f MB, %lld fortunes) tokenized in %.1f s (%.2f MB/s): %lld training and %lld validation "
               "tokens in %s\n",
               o->corpus, (double)len / 1e6, (long long)doc + 1, t1 - t0, (double)len / 1e6 / (t1 - t0), (long long)ntrain,
               (long long)nval, o->data);
    free(ids);
    free(val);
    free(train);
    em_tokenizer_release(tok);
    return rc ? -1 : 0;
}

/* ---- the bigram baseline: add-alpha smoothed counts of (previous, next) pairs ---- */

typedef struct bigram {
    uint64_t *pairs;  /* sorted keys prev << 32 | next, one per pair seen */
    int64_t *counts;  /* of each pair */
    int64_t *totals;  /* [V]: pairs starting with each token */
    int64_t npairs, V;
} bigram;

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int bigram_fit(bigram *g, const int32_t *t, int64_t n, int64_t V) {
    *g = (bigram){.V = V};
    if (n < 2) return -1;
    uint64_t *keys = malloc(sizeof *keys * (size_t)n);
    g->totals = calloc((size_t)V, sizeof *g->totals);
    g->counts = malloc(sizeof *g->counts * (size_t)n);
    if (!keys || !g->totals || !g->counts) return -1;
    for (int64_t i = 0; i + 1 < n; i++) {
        keys[i] = (uint64_t)t[i] << 32 | (uint32_t)t[i + 1];
        g->totals[t[i]]++;
    }
    qsort(keys, (size_t)(n - 1), sizeof *keys, cmp_u64);
    for (int64_t i = 0; i + 1 < n; i++) {
        if (g->npairs && keys[g->npairs - 1] == keys[i]) {
            g->counts[g->npairs - 1]++;
        } else {
            keys[g->npairs] = keys[i];
            g->counts[g->npairs++] = 1;
        }
    }
    g->pairs = keys;
    return 0;
}

static int64_t bigram_count(const bigram *g, int32_t prev, int32_t next) {
    uint64_t key = (uint64_t)prev << 32 | (uint32_t)next;
    int64_t lo = 0, hi = g->npairs;
    while (lo < hi) {
        int64_t mid = (lo + hi) / 2;
        if (g->pairs[mid] < key) lo = mid + 1;
        else hi = mid;
    }
    return lo < g->npairs && g->pairs[lo] == key ? g->counts[lo] : 0;
}

/* The mean cross entropy of the next token over the given windows [n, T + 1], with the smoothing that does
 * best on them among a few (the baseline's best case). */
static double bigram_loss(const bigram *g, const int32_t *w, int64_t n, int64_t T1) {
    const double alphas[] = {1, 0.3, 0.1, 0.03, 0.01, 0.003};
    double best = INFINITY;
    for (size_t a = 0; a < sizeof alphas / sizeof *alphas; a++) {
        double sum = 0;
        for (int64_t r = 0; r < n; r++)
            for (int64_t k = 0; k + 1 < T1; k++) {
                int32_t prev = w[r * T1 + k], next = w[r * T1 + k + 1];
                sum -= log(((double)bigram_count(g, prev, next) + alphas[a]) /
                           ((double)g->totals[prev] + alphas[a] * (double)g->V));
            }
        double loss = sum / (double)(n * (T1 - 1));
        if (loss < best) best = loss;
    }
    return best;
}

static void bigram_free(bigram *g) {
    free(g->pairs);
    free(g->counts);
    free(g->totals);
}

/* ---- mixed precision (--autocast) ---- */

static em_dtype autocast = EM_F32; /* the forward pass's autocast dtype; EM_F32: none */

/* gpt2_loss with the forward pass and the loss under autocast. */
static em_tensor *loss_of(gpt2_model *m, em_tensor *batch) {
    if (autocast == EM_F32) return gpt2_loss(m, batch);
    if (em_autocast_begin(autocast)) return NULL;
    em_tensor *loss = gpt2_loss(m, batch);
    em_autocast_end();
    return loss;
}

/* gpt2_train_step under autocast; float16's gradients are those of the scaled loss, applied through the scaler
 * (a step it skips still returns the loss). The loss, or NAN with an error. */
static double autocast_train_step(gpt2_model *m, em_optimizer *opt, em_loss_scaler *scaler, em_tensor *batch) {
    em_scope_begin();
    em_tape *tape = em_tape_begin(false);
    em_tensor *loss = loss_of(m, batch);
    em_tensor *scaled = scaler && loss ? em_loss_scaler_scale(scaler, loss) : loss;
    em_tape_stop(tape);
    em_tensor **grads = malloc(sizeof *grads * (size_t)m->nvars);
    int rc = !grads || !scaled || em_compute_gradients(opt, tape, scaled, m->nvars, m->vars, grads) ? -1
             : scaler ? em_loss_scaler_step(scaler, opt, m->nvars, grads, m->vars)
                      : em_apply_gradients(opt, m->nvars, grads, m->vars);
    double value = rc < 0 ? NAN : em_item(loss);
    free(grads);
    em_tape_release(tape);
    em_scope_end();
    return value;
}

/* ---- the step as a graph (--graph, and TensorBoard's Graphs tab) ---- */

typedef struct traced_step {
    em_graph *graph;
    em_tensor *batch;       /* placeholder int32 [B, T + 1] */
    em_tensor *train, *loss; /* fetches */
} traced_step;

static int trace_step(gpt2_model *m, em_optimizer *opt, int B, int T, traced_step *t) {
    t->batch = em_keep(em_placeholder(EM_I32, EM_SHAPE(B, T + 1), "tokens"));
    if (!t->batch || em_trace_begin()) return -1;
    em_tape *tape = em_tape_begin(false);
    t->loss = loss_of(m, t->batch);
    em_tape_stop(tape);
    em_name_scope_begin("train");
    t->train = em_minimize_op(opt, tape, t->loss, m->nvars, m->vars);
    em_name_scope_end();
    em_tape_release(tape);
    t->graph = em_trace_end();
    return t->graph && t->train ? 0 : -1;
}

/* ---- evaluation and generation ---- */

/* The mean loss over the first n batches of the validation loader (the same ones every time). */
static double validation_loss(gpt2_model *m, em_token_loader *val, int n, const char *device) {
    double sum = 0;
    em_token_loader_seek(val, 0);
    for (int k = 0; k < n; k++) {
        em_scope_begin();
        em_device_begin(device);
        sum += em_item(loss_of(m, em_token_loader_next(val)));
        em_device_end();
        em_scope_end();
    }
    return sum / n;
}

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* A token drawn from softmax(logits / temperature) over the top_k largest logits. */
static int32_t sample(em_tensor *logits, int top_k, double temperature, uint64_t *rng) {
    em_tensor *l64 = em_cast(logits, EM_F64);
    const double *l = em_data(l64);
    int64_t V = em_numel(l64);
    if (!l) return -1;
    int k = top_k < V ? top_k : (int)V;
    int32_t *best = malloc(sizeof *best * (size_t)k);
    double *p = malloc(sizeof *p * (size_t)k);
    int nb = 0;
    for (int32_t i = 0; i < V; i++) { /* insertion into the k best, largest first */
        if (nb == k && l[i] <= l[best[k - 1]]) continue;
        int at = nb < k ? nb++ : k - 1;
        while (at > 0 && l[best[at - 1]] < l[i]) best[at] = best[at - 1], at--;
        best[at] = i;
    }
    double sum = 0;
    for (int j = 0; j < k; j++) sum += p[j] = exp((l[best[j]] - l[best[0]]) / temperature);
    double u = (double)(rng_next(rng) >> 11) * 0x1p-53 * sum;
    int j = 0;
    while (j + 1 < k && (u -= p[j]) > 0) j++;
    int32_t token = best[j];
    free(best);
    free(p);
    return token;
}

/* Generates n tokens after the prompt, feeding each new token alone through the cache. */
static int generate(gpt2_model *m, const em_tokenizer *tok, const options *o, const int32_t *prompt, int64_t np) {
    int64_t maxT = m->config.max_seq_len, budget = maxT - np;
    if (budget <= 0) {
        fprintf(stderr, "gpt2: the prompt (%lld tokens) fills the position table (%lld)\n", (long long)np,
                (long long)maxT);
        return -1;
    }
    int n = o->gen_tokens < budget ? o->gen_tokens : (int)budget;
    int32_t *out = malloc(sizeof *out * (size_t)(np + n));
    memcpy(out, prompt, sizeof *out * (size_t)np);
    gpt2_cache cache;
    if (gpt2_cache_init(&cache, m)) return -1;
    uint64_t rng = o->seed | 1;
    double t0 = now();
    em_device_begin(o->device);
    int64_t len = np;
    for (int k = 0; k < n; k++) {
        em_scope_begin();
        em_tensor *logits = k == 0 ? gpt2_next_logits(m, &cache, out, np) : gpt2_next_logits(m, &cache, out + len - 1, 1);
        int32_t next = logits ? sample(logits, o->top_k, o->temperature, &rng) : -1;
        em_scope_end();
        if (next < 0) return -1;
        out[len++] = next;
    }
    em_device_end();
    double dt = now() - t0;
    int64_t bytes = em_tokenizer_decode(tok, out, len, NULL, 0);
    char *text = bytes >= 0 ? malloc((size_t)bytes + 1) : NULL;
    if (!text || em_tokenizer_decode(tok, out, len, text, (size_t)bytes) != bytes) return -1;
    text[bytes] = '\0';
    printf("---- generated (%d tokens, %.1f tokens/s, KV cache; temperature %g, top-k %d) ----\n%s\n----\n", n,
           n / dt, o->temperature, o->top_k, text);
    free(text);
    free(out);
    gpt2_cache_free(&cache, m);
    return 0;
}

int main(int argc, char **argv) {
    options o;
    if (parse(argc, argv, &o)) return 2;
    gpt2_keep_freed_memory();
    if (o.autocast) autocast = !strcmp(o.autocast, "bf16") ? EM_BF16 : EM_F16;
    if (o.threads > 0) em_set_num_threads(o.threads);
    em_set_seed(o.seed);

    char path[1024];
    snprintf(path, sizeof path, "%s/train.bin", o.data);
    struct stat st;
    if ((o.prepare || stat(path, &st)) && prepare_data(&o)) return fail("preparing the data");
    snprintf(path, sizeof path, "%s/tokenizer.bin", o.data);
    em_tokenizer *tok = em_tokenizer_load_llmc(path);
    if (!tok) return fail("loading the tokenizer");
    int64_t vocab = em_tokenizer_vocab_size(tok);

    em_llmc_config config = {.max_seq_len = o.seq, .vocab_size = (int)vocab,
                             .padded_vocab_size = (int)((vocab + 127) / 128 * 128), .num_layers = o.layers,
                             .num_heads = o.heads, .channels = o.channels};
    if (o.init_from && em_llmc_read_config(o.init_from, &config)) return fail("reading --init-from");
    if (config.vocab_size != vocab) {
        fprintf(stderr, "gpt2: %s has a vocabulary of %d, the tokenizer %lld\n", o.init_from, config.vocab_size,
                (long long)vocab);
        return 1;
    }
    if (o.seq > config.max_seq_len) {
        fprintf(stderr, "gpt2: --seq %d is longer than the position table of %s (%d positions)\n", o.seq, o.init_from,
                config.max_seq_len);
        return 2;
    }
    gpt2_model m;
    if (em_device_begin(o.device)) return fail("placing the model");
    int made = gpt2_create(&m, &config, EM_F32);
    em_device_end();
    if (made) return fail("creating the model");
    if (o.init_from && gpt2_load(&m, o.init_from)) return fail("loading --init-from");
    int64_t nparams = 0;
    for (int k = 0; k < m.nvars; k++) nparams += em_numel(m.vars[k]);
    printf("GPT-2: %d layers, %d heads, %d channels, vocabulary %d (padded %d), %.2fM parameters; batch %d x %d, "
           "%d threads, %s%s\n",
           config.num_layers, config.num_heads, config.channels, config.vocab_size, config.padded_vocab_size,
           (double)nparams / 1e6, o.batch, o.seq, em_num_threads(), o.device, o.graph ? ", graph" : "");
    if (o.autocast) printf("autocast %s: matmuls and attention in %s, variables float32\n", o.autocast, o.autocast);

    int64_t eot = em_tokenizer_eot(tok);
    if (o.steps > 0) {
        char train_path[1024], val_path[1024];
        snprintf(train_path, sizeof train_path, "%s/train.bin", o.data);
        snprintf(val_path, sizeof val_path, "%s/val.bin", o.data);
        em_token_loader *train = em_token_loader_open(train_path, vocab, o.batch, o.seq, o.seed, 0, 1);
        em_token_loader *val = em_token_loader_open(val_path, vocab, o.batch, o.seq, 0, 0, 1);
        if (!train || !val) return fail("opening the token shards");
        if (em_token_loader_batches_per_epoch(val) < o.eval_batches) o.eval_batches = (int)em_token_loader_batches_per_epoch(val);

        /* the bigram baseline, fitted on the training tokens, scored on the validation batches */
        double bigram_val;
        {
            em_scope_begin();
            em_tensor *all = em_llmc_load_tokens(train_path, vocab);
            bigram g;
            if (!all || bigram_fit(&g, em_data(all), em_numel(all), vocab)) return fail("fitting the bigram model");
            int64_t T1 = o.seq + 1, nw = (int64_t)o.eval_batches * o.batch;
            int32_t *w = malloc(sizeof *w * (size_t)(nw * T1));
            for (int k = 0; k < o.eval_batches; k++)
                em_copy_out(em_token_loader_next(val), w + (int64_t)k * o.batch * T1, sizeof *w * (size_t)(o.batch * T1));
            bigram_val = bigram_loss(&g, w, nw, T1);
            free(w);
            bigram_free(&g);
            em_scope_end();
        }

        em_optimizer *opt = em_adamw(o.lr, 0.9, 0.95, 1e-8, 0.1);
        if (!opt || em_optimizer_set_decay_filter(opt, gpt2_decays, NULL) ||
            em_optimizer_set_schedule(opt, em_warmup_cosine_decay(o.lr, o.warmup, o.steps - o.warmup > 1 ? o.steps - o.warmup : 1, 0.1)))
            return fail("making the optimizer");
        /* float16's loss scaling, PyTorch's GradScaler defaults */
        em_loss_scaler *scaler = autocast == EM_F16 ? em_dynamic_loss_scaler(65536, 2, 0.5, 2000) : NULL;
        if (autocast == EM_F16 && !scaler) return fail("making the loss scaler");
        snprintf(path, sizeof path, "%s/train", o.logdir);
        em_summary_writer *train_log = em_summary_writer_open(path);
        snprintf(path, sizeof path, "%s/val", o.logdir);
        em_summary_writer *val_log = em_summary_writer_open(path);
        em_checkpoint_manager *ckpt = em_checkpoint_manager_open(o.logdir, "model", 3);
        if (!train_log || !val_log || !ckpt) return fail("opening the logs");

        /* the step as a graph: TensorBoard shows it, --graph replays it */
        traced_step traced = {0};
        em_scope_begin();
        em_device_begin(o.device);
        int rc = trace_step(&m, opt, o.batch, o.seq, &traced);
        em_device_end();
        if (rc || em_summary_graph(train_log, traced.graph)) return fail("tracing the step");
        em_scope_end();

        int64_t step0 = 0;
        if (o.resume) {
            int r = em_checkpoint_manager_restore_latest(ckpt);
            if (r < 0) return fail("resuming");
            if (r == 1) {
                double position = 0;
                step0 = em_checkpoint_manager_step(ckpt);
                em_checkpoint_manager_get_value(ckpt, "data position", &position);
                em_token_loader_seek(train, (int64_t)position);
                printf("resumed from %s at step %lld (batch %lld)\n", em_checkpoint_manager_latest(ckpt),
                       (long long)step0, (long long)position);
            }
        }
        int64_t todo = o.steps - step0 > 0 ? o.steps - step0 : 0;
        double *train_x = malloc(sizeof(double) * (size_t)(todo + 1)), *train_y = malloc(sizeof(double) * (size_t)(todo + 1));
        double *val_x = malloc(sizeof(double) * (size_t)(todo / o.eval_every + 2)), *val_y = malloc(sizeof(double) * (size_t)(todo / o.eval_every + 2));
        int nval = 0;
        double start = now(), last_print = 0, vloss = NAN, stall0 = em_token_loader_stall_seconds(train);
        for (int64_t step = step0 + 1; step <= o.steps; step++) {
            em_scope_begin();
            em_tensor *batch = em_token_loader_next(train);
            if (!batch) return fail("reading a batch");
            double lr = em_optimizer_learning_rate(opt), loss;
            if (o.graph) {
                em_tensor *out[2];
                if (em_graph_run(traced.graph, 1, (em_feed[]){{traced.batch, batch}}, 2,
                                 (em_tensor *[]){traced.train, traced.loss}, out))
                    return fail("training step (graph)");
                loss = em_item(out[1]);
            } else {
                em_device_begin(o.device);
                loss = autocast == EM_F32 ? gpt2_train_step(&m, opt, batch)
                                          : autocast_train_step(&m, opt, scaler, batch);
                em_device_end();
                if (isnan(loss) && em_last_error()) return fail("training step");
            }
            em_scope_end();
            int64_t s = step - step0 - 1;
            train_x[s] = (double)step;
            train_y[s] = loss;
            em_summary_scalar(train_log, "loss", step, loss);
            em_summary_scalar(train_log, "learning_rate", step, lr);
            if (step % o.eval_every == 0 || step == o.steps) {
                vloss = validation_loss(&m, val, o.eval_batches, o.device);
                em_summary_scalar(val_log, "loss", step, vloss);
                em_summary_scalar(val_log, "bigram_loss", step, bigram_val);
                val_x[nval] = (double)step;
                val_y[nval++] = vloss;
                printf("\rstep %5lld  val loss %.4f  (bigram %.4f)%40s\n", (long long)step, vloss, bigram_val, "");
            }
            if (step % o.checkpoint_every == 0 || step == o.steps) {
                if (em_checkpoint_manager_set_value(ckpt, "data position", (double)em_token_loader_position(train)) ||
                    em_checkpoint_manager_save(ckpt, step))
                    return fail("saving the checkpoint");
            }
            double t = now();
            if (t - last_print > 1 || step == o.steps) {
                double per = (t - start) / (double)(s + 1);
                printf("\rstep %5lld/%d  loss %.4f  lr %.2e  %.0f ms/step  %.0f tokens/s  ETA %.0fs   ", (long long)step,
                       o.steps, loss, lr, 1e3 * per, o.batch * o.seq / per, per * (double)(o.steps - step));
                fflush(stdout);
                last_print = t;
            }
        }
        double elapsed = now() - start, stall = em_token_loader_stall_seconds(train) - stall0;
        printf("\ntrained %lld steps in %.1f s (%.0f ms/step, %s); loader stall %.3f%% of the time\n", (long long)todo,
               elapsed, todo ? 1e3 * elapsed / (double)todo : 0.0, o.graph ? "graph" : "eager",
               elapsed > 0 ? 100 * stall / elapsed : 0.0);
        if (nval)
            printf("final validation loss %.4f, bigram model %.4f: %s\n", vloss, bigram_val,
                   vloss < bigram_val ? "the GPT is better" : "the GPT does NOT beat the bigram");
        if (scaler)
            printf("loss scale %g, %lld steps skipped (overflow)\n", em_loss_scaler_get_scale(scaler),
                   (long long)em_loss_scaler_skipped(scaler));
        snprintf(path, sizeof path, "%s/loss.png", o.logdir);
        if (todo &&
            em_plot_png(path, "GPT-2 loss", "step", "cross entropy", 3,
                        (em_series[]){{"train", train_x, train_y, (int)todo}, {"validation", val_x, val_y, nval},
                                      {"bigram (validation)", (double[]){train_x[0], train_x[todo - 1]},
                                       (double[]){bigram_val, bigram_val}, 2}},
                        900, 500))
            return fail("plotting");
        snprintf(path, sizeof path, "%s/model.bin", o.logdir);
        if (gpt2_save(&m, path)) return fail("writing the llm.c checkpoint");
        printf("TensorBoard logs in %s (tensorboard --logdir %s), plot %s/loss.png, llm.c checkpoint %s\n", o.logdir,
               o.logdir, o.logdir, path);
        free(train_x);
        free(train_y);
        free(val_x);
        free(val_y);
        em_graph_release(traced.graph);
        em_release(traced.batch);
        em_token_loader_close(train);
        em_token_loader_close(val);
        em_summary_writer_close(train_log);
        em_summary_writer_close(val_log);
        em_checkpoint_manager_close(ckpt);
        em_optimizer_release(opt);
        em_loss_scaler_release(scaler);
    }

    if (o.gen_tokens > 0) {
        int32_t prompt[1] = {(int32_t)eot}; /* start as after a document */
        int64_t np = 1;
        if (generate(&m, tok, &o, prompt, np)) return fail("generating");
    }
    em_tokenizer_release(tok);
    gpt2_free(&m);
    em_shutdown_process();
    return 0;
}
