/* Replays each fuzz target's corpus (test/fuzz/corpus/<target>/: the inputs
 * that reached new code, and every crasher found and fixed) through the
 * target's LLVMFuzzerTestOneInput, built here with the project's compiler and
 * no libFuzzer. A target aborts on a broken invariant; the sanitizers of
 * `make test SANITIZE=1` check the rest. */
#include "common.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>

#define LLVMFuzzerTestOneInput fuzz_idx_one
#include "fuzz/fuzz_idx.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_npy_one
#include "fuzz/fuzz_npy.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_checkpoint_one
#include "fuzz/fuzz_checkpoint.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_checkpoint_manager_one
#include "fuzz/fuzz_checkpoint_manager.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_graph_one
#include "fuzz/fuzz_graph.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_saved_graph_one
#include "fuzz/fuzz_saved_graph.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_ops_one
#include "fuzz/fuzz_ops.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_tokenizer_gpt2_one
#include "fuzz/fuzz_tokenizer_gpt2.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_tokenizer_llmc_one
#include "fuzz/fuzz_tokenizer_llmc.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_llmc_model_one
#include "fuzz/fuzz_llmc_model.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_llmc_tokens_one
#include "fuzz/fuzz_llmc_tokens.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_safetensors_one
#include "fuzz/fuzz_safetensors.c"
#undef LLVMFuzzerTestOneInput

/* Runs every file of test/fuzz/corpus/<name>; returns how many. */
static int replay(const char *name, int (*one)(const uint8_t *, size_t)) {
    char dir[256];
    snprintf(dir, sizeof dir, "test/fuzz/corpus/%s", name);
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "no corpus at %s (run the suites from the project root)", dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        ck_assert_ptr_nonnull(f);
        uint8_t *buf = malloc(1 << 16);
        size_t size = fread(buf, 1, 1 << 16, f);
        fclose(f);
        one(buf, size);
        free(buf);
        n++;
    }
    closedir(d);
    return n;
}

#define REPLAY_TEST(name)                                   \
    START_TEST(test_replay_##name) {                        \
        ck_assert_int_gt(replay(#name, name##_one), 0);     \
        ck_assert_int_eq(em_live_tensors(), 0);             \
    }                                                       \
    END_TEST

REPLAY_TEST(fuzz_idx)
REPLAY_TEST(fuzz_npy)
REPLAY_TEST(fuzz_checkpoint)
REPLAY_TEST(fuzz_checkpoint_manager)
REPLAY_TEST(fuzz_graph)
REPLAY_TEST(fuzz_saved_graph)
REPLAY_TEST(fuzz_ops)
REPLAY_TEST(fuzz_tokenizer_gpt2)
REPLAY_TEST(fuzz_tokenizer_llmc)
REPLAY_TEST(fuzz_llmc_model)
REPLAY_TEST(fuzz_llmc_tokens)
REPLAY_TEST(fuzz_safetensors)

int main(void) {
    Suite *s = suite_create("fuzz_replay");
    TCase *tc = tcase_create("corpora");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_replay_fuzz_idx);
    tcase_add_test(tc, test_replay_fuzz_npy);
    tcase_add_test(tc, test_replay_fuzz_checkpoint);
    tcase_add_test(tc, test_replay_fuzz_checkpoint_manager);
    tcase_add_test(tc, test_replay_fuzz_graph);
    tcase_add_test(tc, test_replay_fuzz_saved_graph);
    tcase_add_test(tc, test_replay_fuzz_ops);
    tcase_add_test(tc, test_replay_fuzz_tokenizer_gpt2);
    tcase_add_test(tc, test_replay_fuzz_tokenizer_llmc);
    tcase_add_test(tc, test_replay_fuzz_llmc_model);
    tcase_add_test(tc, test_replay_fuzz_llmc_tokens);
    tcase_add_test(tc, test_replay_fuzz_safetensors);
    suite_add_tcase(s, tc);
    return em_test_run(s);
}
