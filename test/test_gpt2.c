/* GPT-2 (examples/gpt2_model.h) against PyTorch, and llm.c's files (ember/llmc.h).
 *
 * test/data/gpt2_tiny*.bin and gpt2_tiny_losses.txt come from tools/gpt2_reference.py (PyTorch, float64): a
 * 2-layer, 4-head, 64-channel GPT-2 with T = 16, its weights as an llm.c checkpoint, one batch as an llm.c
 * token shard, and the losses of 10 AdamW steps. */
#include "common.h"

#include "../examples/gpt2_model.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MODEL_FILE "test/data/gpt2_tiny.bin"
#define TOKENS_FILE "test/data/gpt2_tiny_tokens.bin"
#define LOSSES_FILE "test/data/gpt2_tiny_losses.txt"

static const em_llmc_config tiny = {.max_seq_len = 32, .vocab_size = 50, .padded_vocab_size = 64,
                                    .num_layers = 2, .num_heads = 4, .channels = 64};
static char tmp[256];

static void setup(void) { em_test_tmpdir("gpt2", tmp, sizeof tmp); }

static void teardown(void) {
    em_test_tmpdir_remove(tmp);
    em_shutdown();
}

static const char *tpath(const char *name) { return em_test_path(tmp, name); }

static void *slurp(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    *size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    void *d = malloc(*size + 1);
    ck_assert_uint_eq(fread(d, 1, *size, f), *size);
    fclose(f);
    return d;
}

static void spill(const char *path, const void *d, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(d, 1, n, f), n);
    fclose(f);
}

/* The model of tools/gpt2_reference.py trained 10 steps; its losses against PyTorch's. */
static void train_like_reference(em_dtype dtype, double first_tol, double tol) {
    double want[10];
    FILE *f = fopen(LOSSES_FILE, "r");
    ck_assert_ptr_nonnull(f);
    char line[256];
    int n = 0;
    while (n < 10 && fgets(line, sizeof line, f))
        if (line[0] != '#') want[n++] = strtod(line, NULL);
    fclose(f);
    ck_assert_int_eq(n, 10);

    gpt2_model m;
    ck_assert_int_eq(gpt2_create(&m, &tiny, dtype), 0);
    ck_assert_msg(gpt2_load(&m, MODEL_FILE) == 0, "%s", em_last_error());
    em_tensor *batch = em_reshape(em_llmc_load_tokens(TOKENS_FILE, tiny.vocab_size), EM_SHAPE(4, 17));
    ck_assert_ptr_nonnull(batch);
    em_optimizer *opt = em_adamw(1e-3, 0.9, 0.999, 1e-8, 0.1);
    ck_assert_int_eq(em_optimizer_set_decay_filter(opt, gpt2_decays, NULL), 0);
    for (int s = 0; s < 10; s++) {
        double loss = gpt2_train_step(&m, opt, batch);
        ck_assert_msg(fabs(loss - want[s]) <= (s ? tol : first_tol), "%s step %d: loss %.17g, PyTorch %.17g",
                      em_dtype_name(dtype), s, loss, want[s]);
    }
    em_optimizer_release(opt);
    gpt2_free(&m);
}

START_TEST(test_float64_matches_pytorch) { train_like_reference(EM_F64, 1e-9, 1e-7); }
END_TEST

START_TEST(test_float32_matches_pytorch) { train_like_reference(EM_F32, 1e-4, 1e-4); }
END_TEST

/* Generation with the cache of keys and values gives the logits of running the whole prefix again. */
START_TEST(test_kv_cache_matches_full_forward) {
    gpt2_model m;
    ck_assert_int_eq(gpt2_create(&m, &tiny, EM_F64), 0);
    ck_assert_int_eq(gpt2_load(&m, MODEL_FILE), 0);
    const int32_t tokens[8] = {3, 14, 15, 9, 26, 5, 35, 8};
    gpt2_cache cache;
    ck_assert_int_eq(gpt2_cache_init(&cache, &m), 0);
    for (int n = 3; n <= 8; n++) {
        em_scope_begin();
        /* a prompt of 3, then one token at a time */
        em_tensor *cached = n == 3 ? gpt2_next_logits(&m, &cache, tokens, 3) : gpt2_next_logits(&m, &cache, tokens + n - 1, 1);
        em_tensor *idx = em_tensor_from(EM_I32, EM_SHAPE(1, n), tokens);
        em_tensor *all = gpt2_logits(&m, gpt2_hidden(&m, idx, 0, NULL));
        em_tensor *last = em_slice(all, (int64_t[]){n - 1, 0}, (int64_t[]){1, -1});
        ck_assert_int_eq(cache.len, n);
        ck_assert_msg(em_test_max_rel_diff(cached, last) < 1e-12, "after %d tokens: %g", n,
                      em_test_max_rel_diff(cached, last));
        em_scope_end();
    }
    gpt2_cache_free(&cache, &m);
    gpt2_free(&m);
}
END_TEST

static int32_t le32(const uint8_t *p) { return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24); }

/* The checkpoint's bytes as the README documents them: the header, then each parameter at the offset of
 * the sizes before it; read back, it is the same model, and llm.c's bfloat16 version reads into float32. */
START_TEST(test_checkpoint_bytes_and_offsets) {
    gpt2_model m;
    ck_assert_int_eq(gpt2_create(&m, &tiny, EM_F32), 0);
    em_set_seed(7);
    for (int k = 0; k < m.nvars; k++) /* every parameter distinct */
        ck_assert_int_eq(em_assign(m.vars[k], em_random_normal(EM_F32, em_tensor_shape(m.vars[k]), 0, 1)), 0);
    ck_assert_msg(gpt2_save(&m, tpath("m.bin")) == 0, "%s", em_last_error());
    size_t size;
    uint8_t *b = slurp(tpath("m.bin"), &size);
    const int32_t header[8] = {20240326, 3, 32, 50, 2, 4, 64, 64};
    for (int i = 0; i < 256; i++) ck_assert_int_eq(le32(b + 4 * i), i < 8 ? header[i] : 0);
    size_t offset = 1024;
    for (int i = 0; i < EM_LLMC_PARAM_COUNT; i++) {
        /* the first and the last element of each layer's slice */
        int layers = gpt2_per_layer(i) ? tiny.num_layers : 1;
        int64_t per = em_numel(m.p[i][0]);
        for (int l = 0; l < layers; l++) {
            const float *v = em_data(m.p[i][l]);
            float first, last;
            memcpy(&first, b + offset + 4 * (size_t)(l * per), 4);
            memcpy(&last, b + offset + 4 * (size_t)(l * per + per - 1), 4);
            ck_assert_msg(first == v[0] && last == v[per - 1], "%s layer %d at offset %zu", em_llmc_param_name(i), l,
                          offset);
        }
        ck_assert_int_eq(em_shape_numel(em_llmc_param_shape(&tiny, i)), layers * per);
        offset += 4 * (size_t)(layers * per);
    }
    ck_assert_uint_eq(offset, size);

    em_llmc_config got;
    ck_assert_int_eq(em_llmc_read_config(tpath("m.bin"), &got), 0);
    ck_assert_mem_eq(&got, &tiny, sizeof got);
    gpt2_model back;
    em_variable_scope_begin("back", EM_REUSE_FALSE);
    ck_assert_int_eq(gpt2_create(&back, &tiny, EM_F32), 0);
    em_variable_scope_end();
    ck_assert_int_eq(gpt2_load(&back, tpath("m.bin")), 0);
    for (int k = 0; k < m.nvars; k++) ck_assert(em_test_max_rel_diff(back.vars[k], m.vars[k]) == 0);

    /* version 5: the top 16 bits of each float (train_gpt2.py's bfloat16 rounds; truncation is a bfloat16 too) */
    size_t n = (size - 1024) / 4;
    uint8_t *h = malloc(1024 + 2 * n);
    memcpy(h, b, 1024);
    h[4] = 5;
    for (size_t k = 0; k < n; k++) memcpy(h + 1024 + 2 * k, b + 1024 + 4 * k + 2, 2);
    spill(tpath("bf16.bin"), h, 1024 + 2 * n);
    em_tensor *t[EM_LLMC_PARAM_COUNT];
    ck_assert_msg(em_llmc_load_model(tpath("bf16.bin"), &tiny, NULL, t) == 0, "%s", em_last_error());
    const float *wte = em_data(t[EM_LLMC_WTE]);
    for (int64_t k = 0; k < em_numel(t[EM_LLMC_WTE]); k++) {
        uint32_t want, bits;
        memcpy(&want, b + 1024 + 4 * k, 4);
        memcpy(&bits, wte + k, 4);
        ck_assert_uint_eq(bits, want & 0xFFFF0000u);
    }
    free(h);
    free(b);
    gpt2_free(&back);
    gpt2_free(&m);
}
END_TEST

START_TEST(test_token_shard_bytes) {
    int32_t ids[5] = {0, 1, 50256, 65535, 7};
    ck_assert_int_eq(em_llmc_save_tokens(tpath("t.bin"), em_tensor_from(EM_I32, EM_SHAPE(5), ids)), 0);
    size_t size;
    uint8_t *b = slurp(tpath("t.bin"), &size);
    ck_assert_uint_eq(size, 1024 + 10);
    ck_assert_int_eq(le32(b), 20240520);
    ck_assert_int_eq(le32(b + 4), 1);
    ck_assert_int_eq(le32(b + 8), 5);
    for (int i = 0; i < 5; i++) ck_assert_int_eq(b[1024 + 2 * i] | b[1025 + 2 * i] << 8, ids[i]);
    free(b);
    em_tensor *back = em_llmc_load_tokens(tpath("t.bin"), 0);
    ck_assert_tensor(back, EM_I32, EM_SHAPE(5), V(0, 1, 50256, 65535, 7), 0);
    ck_assert_int_eq(em_llmc_save_tokens(tpath("t.bin"), em_tensor_from(EM_I32, EM_SHAPE(1), (int32_t[]){65536})), -1);
    ck_assert_ptr_nonnull(strstr(em_last_error(), "token 65536 at position 0 does not fit"));
    ck_assert_tensor(em_llmc_load_tokens(tpath("t.bin"), 0), EM_I32, EM_SHAPE(5), V(0, 1, 50256, 65535, 7), 0);
    /* uint16 ids, the shard's own type, save as they are; int16 ones below 0 do not fit */
    const uint16_t u16[3] = {65535, 50256, 0};
    ck_assert_int_eq(em_llmc_save_tokens(tpath("u.bin"), em_tensor_from(EM_U16, EM_SHAPE(3), u16)), 0);
    ck_assert_tensor(em_llmc_load_tokens(tpath("u.bin"), 0), EM_I32, EM_SHAPE(3), V(65535, 50256, 0), 0);
    ck_assert_int_eq(em_llmc_save_tokens(tpath("u.bin"), em_tensor_from(EM_I16, EM_SHAPE(2), (int16_t[]){3, -1})), -1);
    ck_assert_ptr_nonnull(strstr(em_last_error(), "token -1 at position 1 does not fit"));
}
END_TEST

/* Variables unchanged: compares to a copy. */
static void assert_unchanged(gpt2_model *m, em_tensor *const *before) {
    for (int k = 0; k < m->nvars; k++) ck_assert(em_test_max_rel_diff(m->vars[k], before[k]) == 0);
}

/* The bad inputs: clear errors, and nothing changes. */
START_TEST(test_bad_inputs_change_nothing) {
    gpt2_model m;
    ck_assert_int_eq(gpt2_create(&m, &tiny, EM_F32), 0);
    ck_assert_int_eq(gpt2_load(&m, MODEL_FILE), 0);
    em_tensor *before[64];
    for (int k = 0; k < m.nvars; k++) before[k] = em_copy(m.vars[k]);

    /* a checkpoint of another shape */
    gpt2_model other;
    em_llmc_config wide = tiny;
    wide.channels = 32;
    em_variable_scope_begin("other", EM_REUSE_FALSE);
    ck_assert_int_eq(gpt2_create(&other, &wide, EM_F32), 0);
    em_variable_scope_end();
    ck_assert_int_eq(gpt2_save(&other, tpath("wide.bin")), 0);
    ck_assert_int_eq(gpt2_load(&m, tpath("wide.bin")), -1);
    ck_assert_ptr_nonnull(strstr(em_last_error(), "C 32) do not match the model's (maxT 32, V 50, Vp 64, L 2, NH 4, C 64)"));
    assert_unchanged(&m, before);

    /* truncated, corrupt magic, unknown version, bytes after the end */
    size_t size;
    uint8_t *b = slurp(MODEL_FILE, &size);
    struct { const char *name, *error; size_t len; int at; uint8_t byte; } bad[] = {
        {"short.bin", "truncated", size - 1, -1, 0},
        {"header.bin", "shorter than the 1024-byte header", 100, -1, 0},
        {"magic.bin", "magic", size, 0, 0x11},
        {"version.bin", "version 4 is not supported", size, 4, 4},
        {"layers.bin", "corrupt header", size, 19, 0x80}, /* num_layers negative */
    };
    uint8_t *c = malloc(size + 1);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        memcpy(c, b, size);
        if (bad[i].at >= 0) c[bad[i].at] = bad[i].byte;
        spill(tpath(bad[i].name), c, bad[i].len);
        ck_assert_int_eq(gpt2_load(&m, tpath(bad[i].name)), -1);
        ck_assert_msg(strstr(em_last_error(), bad[i].error) && strstr(em_last_error(), bad[i].name), "%s: %s",
                      bad[i].name, em_last_error());
        assert_unchanged(&m, before);
    }
    c[size] = 0;
    memcpy(c, b, size);
    spill(tpath("long.bin"), c, size + 1);
    ck_assert_int_eq(gpt2_load(&m, tpath("long.bin")), -1);
    ck_assert_ptr_nonnull(strstr(em_last_error(), "bytes after the parameters"));
    free(c);
    free(b);

    /* a token outside the vocabulary: in a shard, and fed to the model */
    int32_t ids[4] = {1, 2, 50, 3};
    ck_assert_int_eq(em_llmc_save_tokens(tpath("tok.bin"), em_tensor_from(EM_I32, EM_SHAPE(4), ids)), 0);
    ck_assert_error(em_llmc_load_tokens(tpath("tok.bin"), 50), "token 50 at position 2 is outside the vocabulary of 50");
    ck_assert_error(em_token_loader_open(tpath("tok.bin"), 50, 1, 2, 1, 0, 1), "outside the vocabulary");
    em_tensor *batch = em_reshape(em_llmc_load_tokens(TOKENS_FILE, 50), EM_SHAPE(4, 17));
    em_optimizer *opt = em_adamw(1e-3, 0.9, 0.999, 1e-8, 0.1);
    int32_t big[17] = {0};
    big[5] = 64; /* past the padded table too */
    ck_assert(isnan(gpt2_train_step(&m, opt, em_tensor_from(EM_I32, EM_SHAPE(1, 17), big))));
    ck_assert_ptr_nonnull(strstr(em_last_error(), "gather"));
    em_clear_error();
    assert_unchanged(&m, before);

    /* T larger than the position table (32) */
    em_tensor *longer = em_tile(batch, (int64_t[]){1, 2}); /* [4, 34]: T = 33 */
    ck_assert(isnan(gpt2_train_step(&m, opt, longer)));
    ck_assert_ptr_nonnull(em_last_error());
    em_clear_error();
    assert_unchanged(&m, before);
    ck_assert_int_eq(em_optimizer_step(opt), 0);

    /* truncated shard */
    uint8_t *t = slurp(TOKENS_FILE, &size);
    spill(tpath("cut.bin"), t, size - 2);
    ck_assert_error(em_llmc_load_tokens(tpath("cut.bin"), 50), "truncated or corrupt");
    t[0] ^= 1;
    spill(tpath("notokens.bin"), t, size);
    ck_assert_error(em_llmc_load_tokens(tpath("notokens.bin"), 50), "not an llm.c token shard");
    free(t);
    em_optimizer_release(opt);
    gpt2_free(&other);
    gpt2_free(&m);
}
END_TEST

/* The loader: reproducible from its seed and position, disjoint over ranks, every window whole. */
START_TEST(test_token_loader) {
    enum { N = 2000, B = 3, T = 9, RANKS = 2 };
    int32_t ids[N];
    for (int i = 0; i < N; i++) ids[i] = i; /* an id says where it is */
    ck_assert_int_eq(em_llmc_save_tokens(tpath("ids.bin"), em_tensor_from(EM_I32, EM_SHAPE(N), ids)), 0);
    em_token_loader *r0 = em_token_loader_open(tpath("ids.bin"), N, B, T, 42, 0, RANKS);
    em_token_loader *r1 = em_token_loader_open(tpath("ids.bin"), N, B, T, 42, 1, RANKS);
    ck_assert_ptr_nonnull(r0);
    ck_assert_ptr_nonnull(r1);
    int64_t per_epoch = em_token_loader_batches_per_epoch(r0);
    ck_assert_int_eq(per_epoch, N / (T + 1) / RANKS / B);
    static bool seen[N / (T + 1)];
    memset(seen, 0, sizeof seen);
    int32_t saved[B * (T + 1)];
    for (int64_t s = 0; s < per_epoch; s++)
        for (int r = 0; r < RANKS; r++) {
            em_scope_begin();
            em_tensor *batch = em_token_loader_next(r ? r1 : r0);
            ck_assert_ptr_nonnull(batch);
            const int32_t *v = em_data(batch);
            if (s == 5 && r == 0) memcpy(saved, v, sizeof saved);
            for (int b = 0; b < B; b++) {
                int32_t start = v[b * (T + 1)];
                ck_assert_int_eq(start % (T + 1), 0); /* a window of the grid */
                for (int k = 1; k <= T; k++) ck_assert_int_eq(v[b * (T + 1) + k], start + k);
                int w = (int)(start / (T + 1));
                ck_assert_msg(!seen[w], "window %d handed out twice", w);
                seen[w] = true;
            }
            em_scope_end();
        }
    ck_assert_int_eq(em_token_loader_position(r0), per_epoch);
    /* a resumed run: the same batch at the same position */
    ck_assert_int_eq(em_token_loader_seek(r1, 5), 0);
    em_token_loader *again = em_token_loader_open(tpath("ids.bin"), N, B, T, 42, 0, RANKS);
    ck_assert_int_eq(em_token_loader_seek(again, 5), 0);
    em_tensor *batch = em_token_loader_next(again);
    ck_assert_mem_eq(em_data(batch), saved, sizeof saved);
    ck_assert_int_eq(em_token_loader_position(again), 6);
    ck_assert_error(em_token_loader_open(tpath("ids.bin"), N, 100, 99, 1, 0, 1), "fewer than a batch");
    em_token_loader_close(r0);
    em_token_loader_close(r1);
    em_token_loader_close(again);
}
END_TEST

int main(void) {
    Suite *s = suite_create("gpt2");
    TCase *tc = tcase_create("gpt2");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_float64_matches_pytorch);
    tcase_add_test(tc, test_float32_matches_pytorch);
    tcase_add_test(tc, test_kv_cache_matches_full_forward);
    tcase_add_test(tc, test_checkpoint_bytes_and_offsets);
    tcase_add_test(tc, test_token_shard_bytes);
    tcase_add_test(tc, test_bad_inputs_change_nothing);
    tcase_add_test(tc, test_token_loader);
    suite_add_tcase(s, tc);
    return em_test_run(s);
}
