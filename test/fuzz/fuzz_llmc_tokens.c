/* em_llmc_load_tokens and the token loader on arbitrary bytes: what loads must save and load back equal,
 * and the loader's batches are windows of it. */
#include "fuzz.h"

#include "ember/llmc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_begin();
    const char *path = fz_file("llmc_tokens", data, size);
    em_tensor *t = em_llmc_load_tokens(path, 50257);
    if (t) {
        fz_touch(t);
        static char again[160];
        snprintf(again, sizeof again, "%s.again", path);
        FZ_CHECK(em_llmc_save_tokens(again, t) == 0);
        em_tensor *u = em_llmc_load_tokens(again, 0);
        unlink(again);
        FZ_CHECK(u && em_numel(u) == em_numel(t));
        FZ_CHECK(memcmp(em_data(u), em_data(t), (size_t)em_numel(t) * 4) == 0);
        em_token_loader *l = em_token_loader_open(path, 50257, 1, 2, 7, 0, 1);
        if (l) {
            const int32_t *all = em_data(t);
            for (int k = 0; k < 3; k++) {
                em_tensor *b = em_token_loader_next(l);
                FZ_CHECK(b != NULL);
                const int32_t *w = em_data(b);
                bool found = false; /* a window of 3 of the shard's grid */
                for (int64_t s = 0; s + 3 <= em_numel(t) && !found; s += 3) found = !memcmp(all + s, w, 12);
                FZ_CHECK(found);
            }
            em_token_loader_close(l);
        } else {
            fz_failed_with_message();
        }
    } else {
        fz_failed_with_message();
    }
    fz_end();
    return 0;
}
