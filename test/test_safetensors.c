/* safetensors: round trips of every dtype, float16 and bfloat16 bit for bit
 * (BF16 and F16 in the file), files checked both ways with Hugging Face's own
 * library (test/st_check.py), broken files, and a GPT-2 state dict in Hugging
 * Face's names loaded into a model's variables. */
#include "common.h"

#include <stdlib.h>
#include <string.h>

static char tmp[256];

static void setup(void) { em_test_tmpdir("safetensors", tmp, sizeof tmp); }

static void teardown(void) {
    em_test_tmpdir_remove(tmp);
    em_shutdown();
}

static const char *tpath(const char *name) { return em_test_path(tmp, name); }

/* The tensors st_check.py's expected() builds, in its order. */
enum { NT = 13 };
static const char *const NAMES[NT] = {"f32",   "f64",    "i32", "i64",  "u8", "bool", "empty",
                                      "scalar", "f16", "bf16", "i8", "i16", "u16"};
static void expected(em_tensor **t) {
    t[0] = em_tensor_from(EM_F32, EM_SHAPE(2, 3), (const float[]){-1, -0.5f, 0, 0.5f, 1, 1.5f});
    t[1] = em_tensor_from(EM_F64, EM_SHAPE(3), (const double[]){0, 1.0 / 3, 2.0 / 3});
    t[2] = em_tensor_from(EM_I32, EM_SHAPE(2, 2), (const int32_t[]){-2, -1, 0, INT32_MAX});
    t[3] = em_tensor_from(EM_I64, EM_SHAPE(2), (const int64_t[]){-(INT64_C(1) << 40), INT64_C(1) << 62});
    t[4] = em_tensor_from(EM_U8, EM_SHAPE(4), (const uint8_t[]){0, 1, 128, 255});
    t[5] = em_tensor_from(EM_BOOL, EM_SHAPE(3), (const bool[]){true, false, true});
    t[6] = em_zeros(EM_F32, EM_SHAPE(0, 3));
    t[7] = em_scalar(EM_F64, 7.25);
    /* 1.5, -0, the smallest subnormal, the largest, Inf, NumPy's NaN */
    t[8] = em_tensor_from(EM_F16, EM_SHAPE(6), (const uint16_t[]){0x3E00, 0x8000, 0x0001, 0x7BFF, 0x7C00, 0x7E00});
    /* 1, -0, the smallest subnormal, the largest, -Inf, NaN */
    t[9] = em_tensor_from(EM_BF16, EM_SHAPE(2, 3), (const uint16_t[]){0x3F80, 0x8000, 0x0001, 0x7F7F, 0xFF80, 0x7FC0});
    t[10] = em_tensor_from(EM_I8, EM_SHAPE(4), (const int8_t[]){-128, -1, 0, 127});
    t[11] = em_tensor_from(EM_I16, EM_SHAPE(2, 2), (const int16_t[]){-32768, -1, 256, 32767});
    t[12] = em_tensor_from(EM_U16, EM_SHAPE(3), (const uint16_t[]){0, 50256, 65535});
}

static bool same(em_tensor *a, em_tensor *b) {
    size_t bytes = (size_t)em_numel(a) * em_dtype_size(em_tensor_dtype(a));
    return em_tensor_dtype(a) == em_tensor_dtype(b) && em_shape_equal(em_tensor_shape(a), em_tensor_shape(b)) &&
           (bytes == 0 || !memcmp(em_data(a), em_data(b), bytes));
}

/* What a load saw. */
typedef struct {
    int n, nmeta;
    char names[64][48];
    em_tensor *t[64];
    char meta[8][2][64];
} loaded;

static int on_tensor(void *ctx, const char *name, em_tensor *t) {
    loaded *l = ctx;
    ck_assert_int_lt(l->n, 64);
    snprintf(l->names[l->n], sizeof l->names[0], "%s", name);
    l->t[l->n++] = t;
    return 0;
}

static int on_meta(void *ctx, const char *key, const char *value) {
    loaded *l = ctx;
    snprintf(l->meta[l->nmeta][0], 64, "%s", key);
    snprintf(l->meta[l->nmeta++][1], 64, "%s", value);
    return 0;
}

static em_tensor *find(loaded *l, const char *name) {
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->names[i], name)) return l->t[i];
    ck_abort_msg("no tensor %s", name);
    return NULL;
}

START_TEST(test_roundtrip_every_dtype_empty_scalar_metadata) {
    em_tensor *t[NT];
    expected(t);
    const char *meta[] = {"format", "pt", "note", "tab\t quote\" \xc3\xa9"};
    ck_assert_int_eq(em_save_safetensors(tpath("a.safetensors"), NT, NAMES, t, 2, meta), 0);
    loaded l = {0};
    ck_assert_int_eq(em_load_safetensors(tpath("a.safetensors"), on_tensor, on_meta, &l), 0);
    ck_assert_int_eq(l.n, NT);
    for (int i = 0; i < NT; i++) ck_assert_msg(same(find(&l, NAMES[i]), t[i]), "%s differs", NAMES[i]);
    /* in the reference's order: widest dtype first (I64 before F64), then by name */
    ck_assert_str_eq(l.names[0], "i64");
    ck_assert_str_eq(l.names[1], "f64");
    ck_assert_int_eq(l.nmeta, 2);
    ck_assert_str_eq(l.meta[1][1], meta[3]);
}
END_TEST

/* ---- Hugging Face's view, through test/st_check.py ---- */

static bool have_safetensors(void) {
    static int have = -1;
    if (have < 0) {
        const char *probe = "python3 -c 'import safetensors, numpy' >/dev/null 2>&1";
        have = system(probe) == 0 ||
               (system("python3 -m pip install -q safetensors numpy >/dev/null 2>&1") == 0 && system(probe) == 0);
        if (!have)
            printf("test_safetensors: SKIPPING the safetensors cross-check: python3 cannot import safetensors "
                   "and numpy, and 'python3 -m pip install safetensors numpy' failed\n");
    }
    return have;
}

static void st_check(const char *ember_file, const char *out_file) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "python3 test/st_check.py '%s' '%s' >'%s/st.out' 2>&1", ember_file, out_file, tmp);
    int rc = system(cmd);
    if (rc != 0) {
        char out[4096] = "";
        snprintf(cmd, sizeof cmd, "%s/st.out", tmp);
        FILE *f = fopen(cmd, "r");
        if (f) out[fread(out, 1, sizeof out - 1, f)] = '\0', fclose(f);
        ck_abort_msg("st_check.py failed (%d): %s", rc, out);
    }
}

/* Both ways in one run of python (it takes a second to start). */
START_TEST(test_hugging_face_reads_ember_and_ember_reads_hugging_face) {
    if (!have_safetensors()) return;
    em_tensor *e[NT];
    expected(e);
    ck_assert_int_eq(em_save_safetensors(tpath("e.safetensors"), NT, NAMES, e, 1, (const char *[]){"format", "pt"}), 0);
    st_check(tpath("e.safetensors"), tpath("p.safetensors"));
    loaded l = {0};
    ck_assert_int_eq(em_load_safetensors(tpath("p.safetensors"), on_tensor, on_meta, &l), 0);
    ck_assert_int_eq(l.n, NT);
    for (int i = 0; i < NT; i++) ck_assert_msg(same(find(&l, NAMES[i]), e[i]), "%s differs", NAMES[i]);
    ck_assert_int_eq(l.nmeta, 2);
    for (int i = 0; i < 2; i++)
        ck_assert_str_eq(l.meta[i][1], !strcmp(l.meta[i][0], "step") ? "10" : "quote \" and \xc3\xa9");
}
END_TEST

/* ---- hand-made files ---- */

/* Writes an 8-byte length, the header, then `data`. */
static const char *hand_made(const char *name, const char *header, const void *data, size_t n) {
    const char *path = tpath(name);
    FILE *f = fopen(path, "wb");
    uint64_t len = strlen(header);
    fwrite(&len, 8, 1, f);
    fwrite(header, 1, len, f);
    if (n) fwrite(data, 1, n, f);
    fclose(f);
    return path;
}

/* BF16 and F16 load as bfloat16 and float16, bit for bit (a NaN's payload too), and save back as BF16 and
 * F16. A variable takes its own dtype, or a float32 variable takes BF16/F16 widened (exactly); nothing else. */
START_TEST(test_narrow_dtypes_bit_exact) {
    const uint16_t bf[] = {0x3F80, 0xC020, 0x4049, 0x7FC1}; /* 1, -2.5, 3.140625, NaN */
    const uint16_t hf[] = {0x3C00, 0x0001, 0xFC00, 0x7D01}; /* 1, 2^-24, -Inf, NaN */
    const char *p = hand_made("bf.safetensors", "{\"w\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[0,8]}}", bf, 8);
    const char *q = hand_made("hf.safetensors", "{\"w\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8]}}", hf, 8);
    loaded l = {0};
    ck_assert_int_eq(em_load_safetensors(p, on_tensor, NULL, &l), 0);
    ck_assert_int_eq(em_load_safetensors(q, on_tensor, NULL, &l), 0);
    ck_assert(same(l.t[0], em_tensor_from(EM_BF16, EM_SHAPE(4), bf)));
    ck_assert(same(l.t[1], em_tensor_from(EM_F16, EM_SHAPE(2, 2), hf)));
    ck_assert_int_eq(em_save_safetensors(tpath("both.safetensors"), 2, (const char *[]){"bf", "hf"}, l.t, 0, NULL), 0);
    char text[256] = "";
    FILE *f = fopen(tpath("both.safetensors"), "rb");
    ck_assert_uint_gt(fread(text, 1, sizeof text - 1, f), 8);
    fclose(f);
    uint64_t header;
    memcpy(&header, text, 8);
    while (header && text[8 + header - 1] == ' ') header--; /* padding */
    text[8 + header] = '\0';
    /* in the reference's order: BF16 before F16 */
    ck_assert_str_eq(text + 8, "{\"bf\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[0,8]},"
                               "\"hf\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[8,16]}}");
    loaded back = {0};
    ck_assert_int_eq(em_load_safetensors(tpath("both.safetensors"), on_tensor, NULL, &back), 0);
    ck_assert(same(find(&back, "bf"), l.t[0]) && same(find(&back, "hf"), l.t[1]));

    em_tensor *w = em_get_variable("w", EM_F32, EM_SHAPE(4), EM_INIT_CONST(0));
    ck_assert_int_eq(em_variables_load_safetensors(p, NULL), 0);
    ck_assert_tensor(w, EM_F32, EM_SHAPE(4), ((const double[]){1, -2.5, 3.140625, NAN}), 0);
    em_variables_release();
    w = em_get_variable("w", EM_BF16, EM_SHAPE(4), EM_INIT_CONST(0));
    ck_assert_int_eq(em_variables_load_safetensors(p, NULL), 0);
    ck_assert_mem_eq(em_data(w), bf, sizeof bf);
    ck_assert_error(em_variables_load_safetensors(q, NULL) ? NULL : "", "has shape [2,2], variable \"w\" has shape [4]");
    em_variables_release();
    em_get_variable("w", EM_F16, EM_SHAPE(4), EM_INIT_CONST(0));
    ck_assert_error(em_variables_load_safetensors(p, NULL) ? NULL : "",
                    "tensor \"w\" has dtype BF16, variable \"w\" is float16");
    em_variables_release();
    em_get_variable("w", EM_BF16, EM_SHAPE(4), EM_INIT_CONST(0));
    ck_assert_int_eq(em_save_safetensors(tpath("f32.safetensors"), 1, (const char *[]){"w"},
                                         (em_tensor *[]){em_zeros(EM_F32, EM_SHAPE(4))}, 0, NULL),
                     0);
    ck_assert_error(em_variables_load_safetensors(tpath("f32.safetensors"), NULL) ? NULL : "",
                    "tensor \"w\" has dtype F32, variable \"w\" is bfloat16");
}
END_TEST

START_TEST(test_bad_files_give_clear_errors) {
    static const struct {
        const char *header;
        size_t data;
        const char *needle;
    } bad[] = {
        {"{\"w\":{\"dtype\":\"U32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "dtype U32, which Ember cannot hold"},
        {"{\"w\":{\"dtype\":\"F31\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "\"F31\", which safetensors does not define"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "do not hold its shape"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "starts at byte 4"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, "but 8 follow the header"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 0, "lacks its data_offsets"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"w\":{}}", 4, "appears twice"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", 4, "bad header"},
        {"[]", 0, "must be a JSON object"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, "more than 8 dimensions"},
    };
    const char zeros[8] = {0};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *p = hand_made("bad.safetensors", bad[i].header, zeros, bad[i].data);
        loaded l = {0};
        ck_assert_error(em_load_safetensors(p, on_tensor, NULL, &l) ? NULL : "", bad[i].needle);
    }
    /* a file of no tensors ("{}", as safetensors writes an empty dict) loads, calling back for none (its closing
     * brace was read twice; fuzz_safetensors found the empty list sorted) */
    loaded none = {0};
    ck_assert_int_eq(em_load_safetensors(hand_made("none.safetensors", "{}", zeros, 0), on_tensor, NULL, &none), 0);
    ck_assert_int_eq(none.n, 0);
    /* a header length beyond the reference's limit, and beyond the file */
    const char *p = tpath("huge.safetensors");
    FILE *f = fopen(p, "wb");
    fwrite(&(uint64_t){100000001}, 8, 1, f);
    fclose(f);
    ck_assert_error(em_load_safetensors(p, on_tensor, NULL, NULL) ? NULL : "", "limit of 100000000");
    f = fopen(p, "wb");
    fwrite(&(uint64_t){64}, 8, 1, f);
    fclose(f);
    ck_assert_error(em_load_safetensors(p, on_tensor, NULL, NULL) ? NULL : "", "truncated");
    ck_assert_error(em_load_safetensors(tpath("missing"), on_tensor, NULL, NULL) ? NULL : "", "missing");
    em_tensor *t = em_scalar(EM_F32, 1);
    ck_assert_error(em_save_safetensors(tpath("x"), 2, (const char *[]){"a", "a"}, (em_tensor *[]){t, t}, 0, NULL)
                        ? NULL : "",
                    "two tensors are named \"a\"");
}
END_TEST

/* ---- a GPT-2 state dict in Hugging Face's names ---- */

/* The test's model keeps llm.c's layout: linear weights [out, in], used as
 * x @ W^T. Hugging Face's GPT-2 stores c_attn, c_proj and c_fc as Conv1D,
 * [in, out]: those load transposed. */
enum { L = 2, C = 8, V = 16, T = 4 };
static const struct {
    const char *hf, *ours;
    int rows, cols; /* the model's shape (cols 0: 1-D) */
    bool conv1d;
} GPT2[] = {
    {"wte.weight", "wte", V, C, false},
    {"wpe.weight", "wpe", T, C, false},
    {"ln_f.weight", "ln_f/scale", C, 0, false},
    {"ln_f.bias", "ln_f/offset", C, 0, false},
    {"ln_1.weight", "ln_1/scale", C, 0, false},
    {"ln_1.bias", "ln_1/offset", C, 0, false},
    {"attn.c_attn.weight", "attn/qkv/w", 3 * C, C, true},
    {"attn.c_attn.bias", "attn/qkv/b", 3 * C, 0, false},
    {"attn.c_proj.weight", "attn/proj/w", C, C, true},
    {"attn.c_proj.bias", "attn/proj/b", C, 0, false},
    {"ln_2.weight", "ln_2/scale", C, 0, false},
    {"ln_2.bias", "ln_2/offset", C, 0, false},
    {"mlp.c_fc.weight", "mlp/fc/w", 4 * C, C, true},
    {"mlp.c_fc.bias", "mlp/fc/b", 4 * C, 0, false},
    {"mlp.c_proj.weight", "mlp/proj/w", C, 4 * C, true},
    {"mlp.c_proj.bias", "mlp/proj/b", C, 0, false},
};
#define NGPT2 (int)(sizeof GPT2 / sizeof GPT2[0])
#define PER_LAYER 4 /* GPT2[PER_LAYER..] are per layer */

/* "transformer.h.1.attn.c_attn.weight" -> "gpt2/h1/attn/qkv/w", transposed;
 * the causal mask buffers (".attn.bias", ".attn.masked_bias") and the tied
 * lm_head are left out. */
static bool from_hf(const char *name, char *out, size_t size, bool *transpose) {
    const char *p = !strncmp(name, "transformer.", 12) ? name + 12 : name;
    int layer = -1, used = 0;
    if (sscanf(p, "h.%d.%n", &layer, &used) == 1 && used) p += used;
    for (int i = 0; i < NGPT2; i++)
        if (!strcmp(p, GPT2[i].hf) && (layer >= 0) == (i >= PER_LAYER)) {
            *transpose = GPT2[i].conv1d;
            if (layer >= 0) snprintf(out, size, "gpt2/h%d/%s", layer, GPT2[i].ours);
            else snprintf(out, size, "gpt2/%s", GPT2[i].ours);
            return true;
        }
    return false;
}

/* The way back, for saving the model in Hugging Face's names. */
static bool to_hf(const char *name, char *out, size_t size, bool *transpose) {
    const char *p = !strncmp(name, "gpt2/", 5) ? name + 5 : name;
    int layer = -1, used = 0;
    if (sscanf(p, "h%d/%n", &layer, &used) == 1 && used) p += used;
    for (int i = 0; i < NGPT2; i++)
        if (!strcmp(p, GPT2[i].ours)) {
            *transpose = GPT2[i].conv1d;
            if (layer >= 0) snprintf(out, size, "transformer.h.%d.%s", layer, GPT2[i].hf);
            else snprintf(out, size, "transformer.%s", GPT2[i].hf);
            return true;
        }
    return false;
}

static em_shape model_shape(int i) { return GPT2[i].cols ? EM_SHAPE(GPT2[i].rows, GPT2[i].cols) : EM_SHAPE(GPT2[i].rows); }

START_TEST(test_gpt2_state_dict_loads_into_the_model) {
    /* The state dict as transformers saves it: Conv1D weights [in, out], the mask buffers, a tied lm_head. */
    const char *names[64];
    em_tensor *values[64];
    char name_buf[64][80];
    int n = 0;
    for (int layer = -1; layer < L; layer++)
        for (int i = layer < 0 ? 0 : PER_LAYER; i < (layer < 0 ? PER_LAYER : NGPT2); i++) {
            em_shape s = model_shape(i);
            if (GPT2[i].conv1d) s = EM_SHAPE(GPT2[i].cols, GPT2[i].rows);
            if (layer < 0) snprintf(name_buf[n], 80, "transformer.%s", GPT2[i].hf);
            else snprintf(name_buf[n], 80, "transformer.h.%d.%s", layer, GPT2[i].hf);
            names[n] = name_buf[n];
            values[n++] = em_cast(em_test_uniform(s, -1, 1, (uint64_t)(100 * layer + i + 200)), EM_F32);
        }
    for (int layer = 0; layer < L; layer++) {
        snprintf(name_buf[n], 80, "transformer.h.%d.attn.bias", layer);
        names[n] = name_buf[n];
        values[n++] = em_ones(EM_F32, EM_SHAPE(1, 1, T, T));
    }
    names[n] = "lm_head.weight";
    values[n++] = values[0];
    ck_assert_int_eq(em_save_safetensors(tpath("gpt2.safetensors"), n, names, values, 1,
                                         (const char *[]){"format", "pt"}),
                     0);

    /* The model's variables, then the load. */
    em_variable_scope_begin("gpt2", EM_REUSE_FALSE);
    for (int layer = -1; layer < L; layer++) {
        char scope[16];
        snprintf(scope, sizeof scope, "h%d", layer);
        if (layer >= 0) em_variable_scope_begin(scope, EM_REUSE_FALSE);
        for (int i = layer < 0 ? 0 : PER_LAYER; i < (layer < 0 ? PER_LAYER : NGPT2); i++)
            ck_assert_ptr_nonnull(em_get_variable(GPT2[i].ours, EM_F32, model_shape(i), EM_INIT_CONST(0)));
        if (layer >= 0) em_variable_scope_end();
    }
    em_variable_scope_end();
    ck_assert_int_eq(em_variables_load_safetensors(tpath("gpt2.safetensors"), from_hf), 0);
    em_tensor *qkv = em_find_variable("gpt2/h1/attn/qkv/w");
    int k = -1;
    for (int i = 0; i < n; i++)
        if (!strcmp(names[i], "transformer.h.1.attn.c_attn.weight")) k = i;
    ck_assert_double_eq(em_test_max_rel_diff(qkv, em_transpose(values[k], 2, (const int[]){1, 0})), 0);
    ck_assert_double_eq(em_test_max_rel_diff(em_find_variable("gpt2/wte"), values[0]), 0);

    /* Saved back under Hugging Face's names: the same tensors as the file (less the buffers). */
    ck_assert_int_eq(em_variables_save_safetensors(tpath("back.safetensors"), to_hf), 0);
    loaded l = {0};
    ck_assert_int_eq(em_load_safetensors(tpath("back.safetensors"), on_tensor, NULL, &l), 0);
    ck_assert_int_eq(l.n, n - L - 1);
    for (int i = 0; i < l.n; i++) {
        int j = 0;
        while (strcmp(names[j], l.names[i])) j++;
        ck_assert_msg(same(l.t[i], values[j]), "%s differs", l.names[i]);
    }

    /* A wrong shape is refused before any variable changes. */
    em_tensor *wrong = em_zeros(EM_F32, EM_SHAPE(C, C));
    ck_assert_int_eq(em_save_safetensors(tpath("wrong.safetensors"), 2,
                                         (const char *[]){"transformer.wte.weight", "transformer.h.0.attn.c_attn.weight"},
                                         (em_tensor *[]){em_zeros(EM_F32, EM_SHAPE(V, C)), wrong}, 0, NULL),
                     0);
    ck_assert_error(em_variables_load_safetensors(tpath("wrong.safetensors"), from_hf) ? NULL : "",
                    "tensor \"transformer.h.0.attn.c_attn.weight\" has shape [8,8] (transposed on load), variable "
                    "\"gpt2/h0/attn/qkv/w\" has shape [24,8]");
    ck_assert_double_eq(em_test_max_rel_diff(em_find_variable("gpt2/wte"), values[0]), 0);
    ck_assert_error(em_variables_load_safetensors(tpath("gpt2.safetensors"), NULL) ? NULL : "",
                    "variable \"lm_head.weight\", which does not exist");
}
END_TEST

int main(void) {
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("safetensors");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_roundtrip_every_dtype_empty_scalar_metadata);
    tcase_add_test(tc, test_hugging_face_reads_ember_and_ember_reads_hugging_face);
    tcase_add_test(tc, test_narrow_dtypes_bit_exact);
    tcase_add_test(tc, test_bad_files_give_clear_errors);
    tcase_add_test(tc, test_gpt2_state_dict_loads_into_the_model);
    suite_add_tcase(s, tc);
    return em_test_run(s);
}
