/* em_tokenizer_load_gpt2 on arbitrary bytes: the input is encoder.json, a NUL
 * byte, then vocab.bpe. What loads must encode any bytes (the vocab.bpe part
 * is the text) into ids that decode back to them, and survive llm.c's
 * tokenizer file. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_begin();
    const uint8_t *nul = memchr(data, 0, size);
    size_t json_len = nul ? (size_t)(nul - data) : size;
    const uint8_t *bpe = nul ? nul + 1 : data + size;
    size_t bpe_len = (size_t)(data + size - bpe);
    static char json_path[160];
    snprintf(json_path, sizeof json_path, "%s", fz_file("tokenizer-json", data, json_len));
    em_tokenizer *t = em_tokenizer_load_gpt2(json_path, fz_file("tokenizer-bpe", bpe, bpe_len));
    if (t) {
        int32_t vocab = em_tokenizer_vocab_size(t), eot = em_tokenizer_eot(t);
        FZ_CHECK(vocab >= 257 && eot >= 0 && eot < vocab);
        const char *text = (const char *)bpe;
        int64_t n = em_tokenizer_encode(t, text, bpe_len, NULL, 0);
        FZ_CHECK(n >= 0 && (size_t)n <= bpe_len);
        int32_t *ids = malloc((size_t)(n + 1) * sizeof *ids);
        FZ_CHECK(em_tokenizer_encode(t, text, bpe_len, ids, n) == n);
        for (int64_t i = 0; i < n; i++) FZ_CHECK(ids[i] >= 0 && ids[i] < vocab);
        char *back = malloc(bpe_len + 1);
        FZ_CHECK(em_tokenizer_decode(t, ids, n, back, bpe_len + 1) == (int64_t)bpe_len);
        FZ_CHECK(memcmp(back, text, bpe_len) == 0);
        const char *file = fz_file("tokenizer-llmc", data, 0);
        if (em_tokenizer_save_llmc(t, file) == 0) {
            em_tokenizer *u = em_tokenizer_load_llmc(file);
            FZ_CHECK(u != NULL);
            FZ_CHECK(em_tokenizer_vocab_size(u) == vocab && em_tokenizer_eot(u) == eot);
            FZ_CHECK(em_tokenizer_decode(u, ids, n, back, bpe_len + 1) == (int64_t)bpe_len);
            FZ_CHECK(memcmp(back, text, bpe_len) == 0);
            em_tokenizer_release(u);
        } else {
            fz_failed_with_message(); /* a token longer than the file's 255 bytes */
        }
        unlink(file);
        free(back);
        free(ids);
        em_tokenizer_release(t);
    } else {
        fz_failed_with_message();
    }
    fz_end();
    return 0;
}
