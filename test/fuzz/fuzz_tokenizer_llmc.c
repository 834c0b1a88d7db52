/* em_tokenizer_load_llmc on arbitrary bytes: a tokenizer whose tokens decode
 * to the file's bytes, which saves and loads back equal, or NULL with a
 * message. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_begin();
    em_tokenizer *t = em_tokenizer_load_llmc(fz_file("llmc-tokenizer", data, size));
    if (t) {
        int32_t vocab = em_tokenizer_vocab_size(t);
        FZ_CHECK(vocab > 0 && em_tokenizer_eot(t) >= 0 && em_tokenizer_eot(t) < vocab);
        int32_t *all = malloc((size_t)vocab * sizeof *all);
        for (int32_t i = 0; i < vocab; i++) all[i] = i;
        /* every token is one length byte and at least one byte of the file */
        int64_t bytes = em_tokenizer_decode(t, all, vocab, NULL, 0);
        FZ_CHECK(bytes >= vocab && (size_t)(bytes + vocab) == size - 1024);
        char *a = malloc((size_t)bytes), *b = malloc((size_t)bytes);
        FZ_CHECK(em_tokenizer_decode(t, all, vocab, a, (size_t)bytes) == bytes);
        FZ_CHECK(em_tokenizer_encode(t, "x", 1, all, 1) == -1);
        fz_failed_with_message();
        static char again[160];
        snprintf(again, sizeof again, "%s.again", fz_file("llmc-tokenizer", data, size));
        FZ_CHECK(em_tokenizer_save_llmc(t, again) == 0);
        em_tokenizer *u = em_tokenizer_load_llmc(again);
        unlink(again);
        FZ_CHECK(u != NULL && em_tokenizer_vocab_size(u) == vocab && em_tokenizer_eot(u) == em_tokenizer_eot(t));
        FZ_CHECK(em_tokenizer_decode(u, all, vocab, b, (size_t)bytes) == bytes);
        FZ_CHECK(memcmp(a, b, (size_t)bytes) == 0);
        em_tokenizer_release(u);
        free(a);
        free(b);
        free(all);
        em_tokenizer_release(t);
    } else {
        fz_failed_with_message();
    }
    fz_end();
    return 0;
}
