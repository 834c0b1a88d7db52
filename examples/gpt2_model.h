/* GPT-2 as llm.c defines it, written with Ember's ops: learned positions,
 * pre-LN blocks, GELU-tanh, the token embedding tied to the output
 * projection, a padded vocabulary. Shared by examples/gpt2.c, bench/gpt2.c
 * and test/test_gpt2.c.
 *
 * The variables are per layer ("gpt2/h3/qkvw"), the matrices in PyTorch's
 * nn.Linear layout [out, in] like llm.c's files; gpt2_load and gpt2_save
 * convert from and to llm.c's checkpoint (ember/llmc.h), whose tensors are
 * stacked over the layers. Its functions are static inline: each program uses some of them. */
#ifndef EMBER_EXAMPLES_GPT2_MODEL_H
#define EMBER_EXAMPLES_GPT2_MODEL_H

#include <ember.h>

#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct gpt2_model {
    em_llmc_config config;
    em_dtype dtype;
    /* p[i][l]: parameter i (EM_LLMC_*) of layer l; wte, wpe, lnfw and lnfb have one entry */
    em_tensor **p[EM_LLMC_PARAM_COUNT];
    em_tensor **vars; /* every parameter, for the optimizer */
    int nvars;
} gpt2_model;

/* Keys and values of the positions seen so far, per layer, for generation. */
typedef struct gpt2_cache {
    em_tensor **k, **v; /* [1, NH, len, D], kept */
    int64_t len;
} gpt2_cache;

/* A training step frees and makes again buffers of tens to hundreds of MB (the logits, wte's gradient).
 * glibc serves those with mmap and returns them to the kernel when freed, so every step faults in and
 * zeroes them anew: that was half of GPT-2 small's step (perf: clear_page_erms). Served from the heap and
 * never trimmed, they are reused: 4.2 s per step instead of 9 or more on one thread. */
static inline void gpt2_keep_freed_memory(void) {
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, -1); /* never */
}

static inline bool gpt2_per_layer(int i) { return i != EM_LLMC_WTE && i != EM_LLMC_WPE && i < EM_LLMC_LNFW; }

/* Makes the variables, initialised as llm.c's train_gpt2.py does (normal 0.02, the residual projections
 * 0.02 / sqrt(2 L), biases 0, norm gains 1; the padded rows of wte too, which no token reaches). */
static inline int gpt2_create(gpt2_model *m, const em_llmc_config *config, em_dtype dtype) {
    *m = (gpt2_model){.config = *config, .dtype = dtype};
    int L = config->num_layers;
    m->vars = calloc((size_t)(EM_LLMC_PARAM_COUNT * L), sizeof *m->vars);
    if (!m->vars) return -1;
    em_variable_scope_begin("gpt2", EM_REUSE_FALSE);
    for (int i = 0; i < EM_LLMC_PARAM_COUNT; i++) {
        int n = gpt2_per_layer(i) ? L : 1;
        em_shape s = em_llmc_param_shape(config, i);
        if (gpt2_per_layer(i)) { /* drop the layer axis */
            s.ndim--;
            memmove(s.dims, s.dims + 1, sizeof(int64_t) * (size_t)s.ndim);
        }
        const char *name = em_llmc_param_name(i);
        size_t len = strlen(name);
        double std = i == EM_LLMC_ATTPROJW || i == EM_LLMC_FCPROJW ? 0.02 / sqrt(2.0 * L) : 0.02;
        em_initializer init = s.ndim == 2 ? EM_INIT_NORMAL(0, std) : name[len - 1] == 'w' ? EM_INIT_CONST(1)
                                                                                        : EM_INIT_CONST(0);
        if (!(m->p[i] = calloc((size_t)n, sizeof(em_tensor *)))) return -1;
        for (int l = 0; l < n; l++) {
            char full[64];
            if (gpt2_per_layer(i)) snprintf(full, sizeof full, "h%d/%s", l, name);
            else snprintf(full, sizeof full, "%s", name);
            if (!(m->p[i][l] = em_get_variable(full, dtype, s, init))) return -1;
            m->vars[m->nvars++] = m->p[i][l];
        }
    }
    em_variable_scope_end();
    return 0;
}

static inline void gpt2_free(gpt2_model *m) {
    for (int i = 0; i < EM_LLMC_PARAM_COUNT; i++) free(m->p[i]);
    free(m->vars);
}

/* AdamW's weight decay: llm.c decays the matrices (wte, wpe and the layers' weights), not biases or norm gains. */
static inline bool gpt2_decays(const char *name, void *ctx) {
    (void)ctx;
    em_tensor *v = em_find_variable(name);
    return v && em_ndim(v) == 2;
}

/* Sets the variables from an llm.c checkpoint of the model's config. 0, or -1 with an error (nothing changed). */
static inline int gpt2_load(gpt2_model *m, const char *path) {
    em_tensor *t[EM_LLMC_PARAM_COUNT];
    em_scope_begin();
    int rc = em_llmc_load_model(path, &m->config, NULL, t);
    for (int i = 0; i < EM_LLMC_PARAM_COUNT && !rc; i++) {
        int n = gpt2_per_layer(i) ? m->config.num_layers : 1;
        for (int l = 0; l < n && !rc; l++) {
            em_tensor *v = m->p[i][l], *x = t[i];
            if (gpt2_per_layer(i)) {
                int64_t begin[3] = {l, 0, 0}, size[3] = {1, -1, -1};
                x = em_reshape(em_slice(x, begin, size), em_tensor_shape(v));
            }
            rc = em_assign(v, em_cast(x, m->dtype));
        }
    }
    em_scope_end();
    return rc;
}

/* Writes the variables as an llm.c checkpoint (version 3, float32). */
static inline int gpt2_save(gpt2_model *m, const char *path) {
    em_tensor *t[EM_LLMC_PARAM_COUNT], **layers = malloc(sizeof *layers * (size_t)m->config.num_layers);
    if (!layers) return -1;
    em_scope_begin();
    for (int i = 0; i < EM_LLMC_PARAM_COUNT; i++) {
        if (!gpt2_per_layer(i)) {
            t[i] = m->p[i][0];
            continue;
        }
        for (int l = 0; l < m->config.num_layers; l++) layers[l] = em_expand_dims(m->p[i][l], 0);
        t[i] = em_concat(m->config.num_layers, layers, 0);
    }
    int rc = em_llmc_save_model(path, &m->config, t);
    em_scope_end();
    free(layers);
    return rc;
}

static inline em_tensor *gpt2_linear(em_tensor *x, em_tensor *w, em_tensor *b) {
    return em_bias_add(em_matmul_t(x, w, false, true), b);
}

/* The final hidden states [B, T, C] (after ln_f) of tokens idx [B, T] at positions pos0 .. pos0 + T - 1.
 * With a cache, each layer's keys and values are appended to it and attention sees every cached position
 * (generation: the prefix is not recomputed); without, attention is causal over idx alone (training).
 * The batch may be unknown (a placeholder [-1, T]): the graph then runs on any batch size. */
static inline em_tensor *gpt2_hidden(gpt2_model *m, em_tensor *idx, int64_t pos0, gpt2_cache *cache) {
    const em_llmc_config *c = &m->config;
    int64_t B = em_dim(idx, 0), T = em_dim(idx, 1), C = c->channels, NH = c->num_heads, D = C / NH;
    em_tensor **p[EM_LLMC_PARAM_COUNT];
    memcpy(p, m->p, sizeof p);
    em_name_scope_begin("embedding");
    em_tensor *pos = em_slice(p[EM_LLMC_WPE][0], (int64_t[]){pos0, 0}, (int64_t[]){T, C});
    em_tensor *x = em_add(em_gather(p[EM_LLMC_WTE][0], idx, 0), pos);
    em_name_scope_end();
    for (int l = 0; l < c->num_layers; l++) {
        char scope[16];
        snprintf(scope, sizeof scope, "h%d", l);
        em_name_scope_begin(scope);
        em_tensor *h = em_layer_norm(x, p[EM_LLMC_LN1W][l], p[EM_LLMC_LN1B][l], -1, 1e-5);
        em_tensor *qkv = gpt2_linear(em_reshape(h, EM_SHAPE(-1, C)), p[EM_LLMC_QKVW][l], p[EM_LLMC_QKVB][l]);
        /* [B*T, 3C] -> [3, B, NH, T, D] */
        qkv = em_transpose(em_reshape(qkv, EM_SHAPE(B, T, 3, NH, D)), EM_AXES(2, 0, 3, 1, 4));
        em_tensor *parts[3];
        if (em_split(qkv, 3, 0, parts)) parts[0] = parts[1] = parts[2] = NULL;
        em_tensor *q = em_reshape(parts[0], EM_SHAPE(B, NH, T, D));
        em_tensor *k = em_reshape(parts[1], EM_SHAPE(B, NH, T, D));
        em_tensor *v = em_reshape(parts[2], EM_SHAPE(B, NH, T, D));
        if (cache) {
            if (cache->len) {
                k = em_concat(2, (em_tensor *[]){cache->k[l], k}, 2);
                v = em_concat(2, (em_tensor *[]){cache->v[l], v}, 2);
            }
            if (cache->k[l]) em_release(cache->k[l]);
            if (cache->v[l]) em_release(cache->v[l]);
            cache->k[l] = k ? em_keep(k) : NULL;
            cache->v[l] = v ? em_keep(v) : NULL;
        }
        em_tensor *y = em_scaled_dot_product_attention(q, k, v, true, 0, NULL);
        y = em_reshape(em_transpose(y, EM_AXES(0, 2, 1, 3)), EM_SHAPE(-1, C));
        y = gpt2_linear(y, p[EM_LLMC_ATTPROJW][l], p[EM_LLMC_ATTPROJB][l]);
        x = em_add(x, em_reshape(y, EM_SHAPE(B, T, C)));
        h = em_layer_norm(x, p[EM_LLMC_LN2W][l], p[EM_LLMC_LN2B][l], -1, 1e-5);
        h = em_gelu_tanh(gpt2_linear(em_reshape(h, EM_SHAPE(-1, C)), p[EM_LLMC_FCW][l], p[EM_LLMC_FCB][l]));
        h = gpt2_linear(h, p[EM_LLMC_FCPROJW][l], p[EM_LLMC_FCPROJB][l]);
        x = em_add(x, em_reshape(h, EM_SHAPE(B, T, C)));
        em_name_scope_end();
    }
    if (cache && x) cache->len += T;
    return em_layer_norm(x, p[EM_LLMC_LNFW][0], p[EM_LLMC_LNFB][0], -1, 1e-5);
}

/* Logits over the real vocabulary [N, V] of hidden states [..., C]: the tied output projection (x wte^T,
 * [N, Vp]) with the padded columns sliced off. */
static inline em_tensor *gpt2_logits(gpt2_model *m, em_tensor *hidden) {
    int64_t C = m->config.channels;
    em_tensor *logits = em_matmul_t(em_reshape(hidden, EM_SHAPE(-1, C)), m->p[EM_LLMC_WTE][0], false, true);
    if (m->config.vocab_size == m->config.padded_vocab_size) return logits;
    return em_slice(logits, (int64_t[]){0, 0}, (int64_t[]){-1, m->config.vocab_size});
}

/* The mean cross entropy of predicting targets [B, T] from inputs [B, T]. */
static inline em_tensor *gpt2_loss_of(gpt2_model *m, em_tensor *inputs, em_tensor *targets) {
    em_tensor *logits = gpt2_logits(m, gpt2_hidden(m, inputs, 0, NULL));
    em_name_scope_begin("loss");
    em_tensor *loss = em_mean(em_sparse_softmax_cross_entropy_ignore(em_reshape(targets, EM_SHAPE(-1)), logits, -1),
                              EM_ALL_AXES, false);
    em_name_scope_end();
    return loss;
}

/* The mean next-token cross entropy of a batch of windows [B, T + 1] (inputs, and targets one further). */
static inline em_tensor *gpt2_loss(gpt2_model *m, em_tensor *batch) {
    int64_t B = em_dim(batch, 0), T = em_dim(batch, 1) - 1;
    return gpt2_loss_of(m, em_slice(batch, (int64_t[]){0, 0}, (int64_t[]){B, T}),
                        em_slice(batch, (int64_t[]){0, 1}, (int64_t[]){B, T}));
}

/* One training step: forward, backward from the tape, the optimizer's update. The loss (before the update),
 * or NAN with an error. */
static inline double gpt2_train_step(gpt2_model *m, em_optimizer *opt, em_tensor *batch) {
    em_scope_begin();
    em_tape *tape = em_tape_begin(false);
    em_tensor *loss = gpt2_loss(m, batch);
    em_tape_stop(tape);
    double value = loss && !em_minimize(opt, tape, loss, m->nvars, m->vars) ? em_item(loss) : NAN;
    em_tape_release(tape);
    em_scope_end();
    return value;
}

static inline int gpt2_cache_init(gpt2_cache *cache, const gpt2_model *m) {
    *cache = (gpt2_cache){0};
    cache->k = calloc((size_t)m->config.num_layers, sizeof(em_tensor *));
    cache->v = calloc((size_t)m->config.num_layers, sizeof(em_tensor *));
    return cache->k && cache->v ? 0 : -1;
}

static inline void gpt2_cache_free(gpt2_cache *cache, const gpt2_model *m) {
    for (int l = 0; l < m->config.num_layers && cache->k; l++) {
        em_release(cache->k[l]);
        em_release(cache->v[l]);
    }
    free(cache->k);
    free(cache->v);
    *cache = (gpt2_cache){0};
}

/* Logits [1, V] of the next token after tokens[0..n) fed to the cache (which holds the earlier ones). */
static inline em_tensor *gpt2_next_logits(gpt2_model *m, gpt2_cache *cache, const int32_t *tokens, int64_t n) {
    em_tensor *idx = em_tensor_from(EM_I32, EM_SHAPE(1, n), tokens);
    em_tensor *h = gpt2_hidden(m, idx, cache->len, cache);
    if (!h) return NULL;
    int64_t C = m->config.channels;
    return gpt2_logits(m, em_slice(em_reshape(h, EM_SHAPE(n, C)), (int64_t[]){n - 1, 0}, (int64_t[]){1, C}));
}

#endif
