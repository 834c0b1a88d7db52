/* GPT-2's BPE tokenizer (include/ember/text.h): ids identical to the
 * reference encoder's (tools/gpt2_reference_ids.py) on a UTF-8 test text and
 * on the whole training corpus, decode(encode(x)) == x for any bytes, llm.c's
 * tokenizer file, and clear errors on bad files and ids. */
#include "common.h"
#include "sha256.h"
#include "../examples/gpt2_data.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#define ENCODER_JSON "data/gpt2/encoder.json"
#define VOCAB_BPE "data/gpt2/vocab.bpe"

static em_tokenizer *gpt2; /* loaded once, before the tests fork */
static char tmp[256];

static void load_once(void) {
    gpt2 = em_tokenizer_load_gpt2(ENCODER_JSON, VOCAB_BPE);
    ck_assert_msg(gpt2 != NULL, "%s (run the suites from the project root)", em_last_error());
}
static void unload(void) { em_tokenizer_release(gpt2); }
static void setup(void) { em_test_tmpdir("tokenizer", tmp, sizeof tmp); }
static void teardown(void) { em_test_tmpdir_remove(tmp); }

static char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    buf[n] = '\0';
    *size = (size_t)n;
    return buf;
}

static void write_file(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, size, f), size);
    fclose(f);
}

static char *tmp_path(const char *name) {
    static char path[2][512];
    static int k;
    k ^= 1;
    snprintf(path[k], sizeof path[k], "%s/%s", tmp, name);
    return path[k];
}

/* Encodes text with the NULL/0 sizing call first; malloc'd ids, count in *n. */
static int32_t *encode_all(em_tokenizer *t, const char *text, size_t len, int64_t *n) {
    *n = em_tokenizer_encode(t, text, len, NULL, 0);
    ck_assert_msg(*n >= 0, "%s", em_last_error());
    int32_t *ids = malloc((size_t)(*n ? *n : 1) * sizeof *ids);
    ck_assert_int_eq(em_tokenizer_encode(t, text, len, ids, *n), *n);
    return ids;
}

static void assert_decodes_to(const em_tokenizer *t, const int32_t *ids, int64_t n, const char *text, size_t len) {
    char *out = malloc(len + 1);
    int64_t got = em_tokenizer_decode(t, ids, n, out, len + 1);
    ck_assert_msg(got == (int64_t)len && !memcmp(out, text, len), "decode(encode(x)) != x (%" PRId64 " bytes for %zu)", got, len);
    free(out);
}

START_TEST(test_gpt2_sizes) {
    ck_assert_int_eq(em_tokenizer_vocab_size(gpt2), 50257);
    ck_assert_int_eq(em_tokenizer_eot(gpt2), 50256);
    char text[16];
    int32_t eot = 50256;
    ck_assert_int_eq(em_tokenizer_decode(gpt2, &eot, 1, text, sizeof text), 13);
    ck_assert(!memcmp(text, "<|endoftext|>", 13));
}
END_TEST

/* test/data/tokenizer_text.txt: accents, CJK, emoji, contractions, numbers,
 * whitespace runs and Unicode spaces, ids from tools/gpt2_reference_ids.py. */
START_TEST(test_text_ids_match_reference) {
    size_t len, ids_len;
    char *text = read_file("test/data/tokenizer_text.txt", &len);
    char *ref_text = read_file("test/data/tokenizer_text.ids", &ids_len);
    int64_t n_ref = 0;
    int32_t *ref = malloc(ids_len * sizeof *ref);
    for (char *p = ref_text, *end; (ref[n_ref] = (int32_t)strtol(p, &end, 10)), end != p; p = end) n_ref++;
    int64_t n;
    int32_t *ids = encode_all(gpt2, text, len, &n);
    for (int64_t i = 0; i < n && i < n_ref; i++)
        ck_assert_msg(ids[i] == ref[i], "id %" PRId64 ": %d, the reference has %d", i, ids[i], ref[i]);
    ck_assert_int_eq(n, n_ref);
    assert_decodes_to(gpt2, ids, n, text, len);
    /* a buffer too small gets the ids that fit and the count all need */
    int32_t first[5];
    ck_assert_int_eq(em_tokenizer_encode(gpt2, text, len, first, 5), n);
    ck_assert(!memcmp(first, ref, sizeof first));
    char head[7];
    ck_assert_int_eq(em_tokenizer_decode(gpt2, ids, n, head, sizeof head), (int64_t)len);
    ck_assert(!memcmp(head, text, sizeof head));
    free(ids);
    free(ref);
    free(ref_text);
    free(text);
}
END_TEST

/* The GPT-2 example's corpus (examples/gpt2_data.h) against the id count and
 * hash stored by tools/gpt2_reference_ids.py. */
START_TEST(test_corpus_ids_match_reference) {
    size_t ref_len;
    char *ref = read_file("test/data/tokenizer_corpus.ref", &ref_len);
    char corpus_sha[65], ids_sha[65];
    long long corpus_bytes, documents, n_ref;
    ck_assert_int_eq(sscanf(ref, "corpus_sha256 %64s corpus_bytes %lld documents %lld ids %lld ids_u16le_sha256 %64s", corpus_sha,
                            &corpus_bytes, &documents, &n_ref, ids_sha),
                     5);
    char err[512], hex[65];
    size_t len;
    char *text = gpt2_corpus_text(GPT2_CORPUS_DIR, &len, err, sizeof err);
    ck_assert_msg(text != NULL, "%s", err);
    sha256_hex(text, len, hex);
    ck_assert_msg(!strcmp(hex, corpus_sha) && (long long)len == corpus_bytes,
                  "the corpus in " GPT2_CORPUS_DIR " is not the text the reference ids came from (%zu bytes, SHA-256 %s; "
                  "the reference: %lld bytes, %s): the Debian fortunes package changed; rerun tools/gpt2_reference_ids.py",
                  len, hex, corpus_bytes, corpus_sha);
    int64_t n;
    int32_t *ids = gpt2_encode_documents(gpt2, text, len, &n);
    ck_assert_msg(ids != NULL, "%s", em_last_error());
    ck_assert_int_eq(n, n_ref);
    uint16_t *u16 = malloc((size_t)n * sizeof *u16);
    int64_t eots = 0;
    for (int64_t i = 0; i < n; i++) {
        uint8_t le[2] = {(uint8_t)ids[i], (uint8_t)(ids[i] >> 8)};
        memcpy(&u16[i], le, 2);
        eots += ids[i] == 50256;
    }
    ck_assert_int_eq(eots, documents);
    sha256_hex(u16, (size_t)n * sizeof *u16, hex);
    ck_assert_msg(!strcmp(hex, ids_sha), "the corpus ids' SHA-256 is %s, the reference's %s", hex, ids_sha);
    free(u16);
    free(ids);
    free(text);
    free(ref);
}
END_TEST

/* Any bytes survive encode and decode: random mixes of ASCII, valid UTF-8,
 * stray continuation bytes, truncated sequences, overlong forms, surrogates. */
START_TEST(test_any_bytes_roundtrip) {
    static const char *const parts[] = {"a", " ", "  ", "\n", "'s", "'", "7", "\xc3\xa9", "\xe6\x97\xa5", "\xf0\x9f\x8e\x89",
                                        "\x80", "\xbf", "\xc3", "\xe6\x97", "\xf0\x9f\x8e", "\xc0\xaf", "\xed\xa0\x80",
                                        "\xf4\x90\x80\x80", "\xff", "\xfe", "\x00", "\t", "\xe3\x80\x80", "!", "Hello"};
    uint64_t state = 0x2545F4914F6CDD1Dull;
    char text[512];
    for (int round = 0; round < 300; round++) {
        size_t len = 0;
        while (len < sizeof text - 8) {
            state ^= state << 13, state ^= state >> 7, state ^= state << 17;
            if (state % 40 == 0) break;
            const char *p = parts[(state >> 8) % (sizeof parts / sizeof parts[0])];
            size_t k = p[0] ? strlen(p) : 1; /* "\x00" is one NUL byte */
            memcpy(text + len, p, k);
            len += k;
        }
        int64_t n;
        int32_t *ids = encode_all(gpt2, text, len, &n);
        assert_decodes_to(gpt2, ids, n, text, len);
        free(ids);
    }
    /* megabyte-long pieces (a run of spaces, one of dashes) merge in O(n log n) */
    size_t big = 1 << 20;
    char *runs = malloc(2 * big + 1);
    memset(runs, ' ', big);
    runs[big] = 'x';
    memset(runs + big + 1, '-', big);
    int64_t n;
    int32_t *ids = encode_all(gpt2, runs, 2 * big + 1, &n);
    ck_assert_int_lt(n, (int64_t)big * 2); /* merged: fewer ids than bytes */
    assert_decodes_to(gpt2, ids, n, runs, 2 * big + 1);
    free(ids);
    free(runs);
    ids = encode_all(gpt2, "", 0, &n);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(em_tokenizer_decode(gpt2, ids, 0, NULL, 0), 0);
    free(ids);
}
END_TEST

static uint32_t le32_at(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

/* llm.c's tokenizer file: the header train_gpt2.py writes, tokens read back
 * equal, version 1 (no end-of-text field). */
START_TEST(test_llmc_file_roundtrip) {
    const char *path = tmp_path("gpt2_tokenizer.bin");
    ck_assert_int_eq(em_tokenizer_save_llmc(gpt2, path), 0);
    size_t size;
    uint8_t *bytes = (uint8_t *)read_file(path, &size);
    ck_assert_uint_eq(le32_at(bytes), 20240328);
    ck_assert_uint_eq(le32_at(bytes + 4), 2);
    ck_assert_uint_eq(le32_at(bytes + 8), 50257);
    ck_assert_uint_eq(le32_at(bytes + 12), 50256);
    for (int i = 4; i < 256; i++) ck_assert_uint_eq(le32_at(bytes + 4 * i), 0);
    ck_assert_uint_eq(bytes[1024], 1); /* token 0 is "!" */
    ck_assert_uint_eq(bytes[1025], '!');
    ck_assert_uint_eq(bytes[size - 14], 13); /* the last is <|endoftext|> */
    ck_assert(!memcmp(bytes + size - 13, "<|endoftext|>", 13));

    em_tokenizer *t = em_tokenizer_load_llmc(path);
    ck_assert_msg(t != NULL, "%s", em_last_error());
    ck_assert_int_eq(em_tokenizer_vocab_size(t), 50257);
    ck_assert_int_eq(em_tokenizer_eot(t), 50256);
    int32_t *all = malloc(50257 * sizeof *all);
    for (int32_t i = 0; i < 50257; i++) all[i] = i;
    int64_t need = em_tokenizer_decode(gpt2, all, 50257, NULL, 0);
    char *a = malloc((size_t)need), *b = malloc((size_t)need);
    ck_assert_int_eq(em_tokenizer_decode(gpt2, all, 50257, a, (size_t)need), need);
    ck_assert_int_eq(em_tokenizer_decode(t, all, 50257, b, (size_t)need), need);
    ck_assert(!memcmp(a, b, (size_t)need));
    ck_assert_int_eq(em_tokenizer_encode(t, "hi", 2, all, 1), -1);
    ck_assert_ptr_nonnull(strstr(em_last_error(), "decodes only"));
    em_tokenizer_release(t);

    /* version 1: GPT-2's, the end-of-text id implied */
    bytes[4] = 1;
    memset(bytes + 12, 0, 4);
    const char *v1 = tmp_path("v1.bin");
    write_file(v1, bytes, size);
    t = em_tokenizer_load_llmc(v1);
    ck_assert_msg(t != NULL, "%s", em_last_error());
    ck_assert_int_eq(em_tokenizer_eot(t), 50256);
    em_tokenizer_release(t);
    free(a);
    free(b);
    free(all);
    free(bytes);
}
END_TEST

static void expect_error(bool failed, const char *needle) {
    ck_assert_msg(failed, "the call succeeded; expected an error with \"%s\"", needle);
    const char *e = em_last_error();
    ck_assert_msg(e && strstr(e, needle), "error \"%s\" lacks \"%s\"", e ? e : "(none)", needle);
    em_clear_error();
}

START_TEST(test_bad_llmc_files) {
    const char *good = tmp_path("good.bin");
    ck_assert_int_eq(em_tokenizer_save_llmc(gpt2, good), 0);
    size_t size;
    uint8_t *bytes = (uint8_t *)read_file(good, &size);
    const char *bad = tmp_path("bad.bin");
    expect_error(em_tokenizer_load_llmc(tmp_path("missing.bin")) == NULL, "cannot open");
    write_file(bad, bytes, 1000);
    expect_error(em_tokenizer_load_llmc(bad) == NULL, "shorter than the 1024-byte header");
    write_file(bad, bytes, size - 5);
    expect_error(em_tokenizer_load_llmc(bad) == NULL, "truncated: token 50256 needs 13 bytes, 8 are left");
    write_file(bad, bytes, 1024 + 3000);
    expect_error(em_tokenizer_load_llmc(bad) == NULL, "vocabulary size 50257 does not fit the file's 4024 bytes");
    bytes[0] ^= 1;
    write_file(bad, bytes, size);
    expect_error(em_tokenizer_load_llmc(bad) == NULL, "not llm.c's tokenizer file");
    bytes[0] ^= 1;
    bytes[4] = 3;
    write_file(bad, bytes, size);
    expect_error(em_tokenizer_load_llmc(bad) == NULL, "version 3");
    bytes[4] = 2;
    bytes[12] = 0x51, bytes[13] = 0xC4; /* end-of-text id 50257 */
    write_file(bad, bytes, size);
    expect_error(em_tokenizer_load_llmc(bad) == NULL, "end-of-text id 50257 is outside the vocabulary");
    bytes[12] = 0x50;
    bytes[1024] = 0;
    write_file(bad, bytes, size);
    expect_error(em_tokenizer_load_llmc(bad) == NULL, "token 0 has length 0");
    free(bytes);
}
END_TEST

/* Writes encoder.json and vocab.bpe of a tiny vocabulary (the 256 bytes,
 * then `extra` entries appended to the JSON object) and loads them. */
static em_tokenizer *load_small(const char *extra, const char *merges) {
    size_t size;
    char *json = read_file(ENCODER_JSON, &size);
    /* GPT-2's file lists the 256 byte tokens first: keep those entries */
    char *cut = strstr(json, "\"\\u0120t\"");
    ck_assert_ptr_nonnull(cut);
    size_t keep = (size_t)(cut - json);
    char *small = malloc(keep + strlen(extra) + 2);
    memcpy(small, json, keep);
    strcpy(small + keep, extra);
    write_file(tmp_path("encoder.json"), small, strlen(small));
    write_file(tmp_path("vocab.bpe"), merges, strlen(merges));
    free(small);
    free(json);
    return em_tokenizer_load_gpt2(tmp_path("encoder.json"), tmp_path("vocab.bpe"));
}

START_TEST(test_bad_gpt2_files) {
    const char *json = tmp_path("bad.json");
    expect_error(em_tokenizer_load_gpt2(tmp_path("missing.json"), VOCAB_BPE) == NULL, "cannot open");
    write_file(json, "{\"a\": 1,}", 9);
    expect_error(em_tokenizer_load_gpt2(json, VOCAB_BPE) == NULL, "not GPT-2's encoder.json: expected a string at byte 8");
    write_file(json, "[1, 2]", 6);
    expect_error(em_tokenizer_load_gpt2(json, VOCAB_BPE) == NULL, "expected '{'");
    write_file(json, "{\"a\": 1.5}", 10);
    expect_error(em_tokenizer_load_gpt2(json, VOCAB_BPE) == NULL, "id is not an integer");
    write_file(json, "{\"a\": 0, \"b\": 0}", 16);
    expect_error(em_tokenizer_load_gpt2(json, VOCAB_BPE) == NULL, "id 0 is given to two tokens");
    write_file(json, "{\"a\": 0, \"b\": 5}", 16);
    expect_error(em_tokenizer_load_gpt2(json, VOCAB_BPE) == NULL, "id 5 is outside 0..1");
    write_file(json, "{\"\\u4e00\": 0}", 13);
    expect_error(em_tokenizer_load_gpt2(json, VOCAB_BPE) == NULL, "U+4E00, which GPT-2's byte map does not use");
    write_file(json, "{\"a\": 0} x", 10);
    expect_error(em_tokenizer_load_gpt2(json, VOCAB_BPE) == NULL, "text after the object");
    write_file(json, "{\"a\": 0, \"b", 11);
    expect_error(em_tokenizer_load_gpt2(json, VOCAB_BPE) == NULL, "unterminated string");

    /* a small vocabulary: the 256 bytes, "ab" and the end-of-text token */
    em_tokenizer *t = load_small("\"ab\": 256, \"<|endoftext|>\": 257}", "#version: 0.2\na b\n");
    ck_assert_msg(t != NULL, "%s", em_last_error());
    int32_t ids[4];
    ck_assert_int_eq(em_tokenizer_encode(t, "abab", 4, ids, 4), 2);
    ck_assert_int_eq(ids[0], 256);
    ck_assert_int_eq(ids[1], 256);
    em_tokenizer_release(t);
    expect_error(load_small("\"ab\": 256, \"<|endoftext|>\": 257}", "a b\n") == NULL, "the first line is not \"#version: ...\"");
    expect_error(load_small("\"ab\": 256, \"<|endoftext|>\": 257}", "#version: 0.2\na c\n") == NULL,
                 "line 2 makes a token that encoder.json does not have");
    expect_error(load_small("\"ab\": 256, \"<|endoftext|>\": 257}", "#version: 0.2\na b\nab \xe4\xb8\x80\n") == NULL,
                 "line 3 has a character that GPT-2's byte map does not use");
    expect_error(load_small("\"ab\": 256, \"<|endoftext|>\": 257}", "#version: 0.2\na  b\n") == NULL,
                 "line 2 is not two tokens separated by one space");
    expect_error(load_small("\"ab\": 256}", "#version: 0.2\n") == NULL, "no <|endoftext|> token");
}
END_TEST

START_TEST(test_bad_arguments) {
    int32_t ids[2] = {50256, 50257};
    char out[64];
    expect_error(em_tokenizer_decode(gpt2, ids, 2, out, sizeof out) == -1, "ids[1] = 50257 is outside the vocabulary (0..50256)");
    ids[1] = -3;
    expect_error(em_tokenizer_decode(gpt2, ids, 2, out, sizeof out) == -1, "ids[1] = -3 is outside the vocabulary");
    expect_error(em_tokenizer_decode(gpt2, ids, -1, out, sizeof out) == -1, "n = -1");
    expect_error(em_tokenizer_encode(gpt2, NULL, 3, ids, 2) == -1, "text is NULL and len is 3");
    expect_error(em_tokenizer_encode(gpt2, "abc", 3, NULL, 2) == -1, "ids is NULL and cap is 2");
    expect_error(em_tokenizer_encode(NULL, "abc", 3, ids, 2) == -1, "tokenizer_encode: an input is NULL");
    expect_error(em_tokenizer_load_gpt2(NULL, VOCAB_BPE) == NULL, "encoder_json is NULL");
    expect_error(em_tokenizer_save_llmc(gpt2, NULL) == -1, "path is NULL");
    em_tokenizer_release(NULL);
}
END_TEST

int main(void) {
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("tokenizer");
    tcase_add_unchecked_fixture(tc, load_once, unload);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_gpt2_sizes);
    tcase_add_test(tc, test_text_ids_match_reference);
    tcase_add_test(tc, test_corpus_ids_match_reference);
    tcase_add_test(tc, test_any_bytes_roundtrip);
    tcase_add_test(tc, test_llmc_file_roundtrip);
    tcase_add_test(tc, test_bad_llmc_files);
    tcase_add_test(tc, test_bad_gpt2_files);
    tcase_add_test(tc, test_bad_arguments);
    suite_add_tcase(s, tc);
    return em_test_run(s);
}
