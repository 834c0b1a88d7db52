/* GPT-2's BPE tokenizer (include/ember/text.h) on the GPT-2 example's corpus
 * (examples/gpt2_data.h: Debian's fortunes, about 2.6 MB).
 *
 *   build/bench/tokenizer [threads [reps]]   (default 1, 5)
 *
 * The tokenizer runs on the calling thread: `threads` is taken for the
 * command line `make bench` gives every benchmark and changes nothing.
 * Reports the load time of data/gpt2/, then MB/s of text (medians of reps
 * runs): encoding with a fresh tokenizer (its piece cache empty, what a
 * program's first pass over its corpus costs), encoding again (the cache
 * warm), both as the example does it (documents split at <|endoftext|>),
 * and decoding the ids back. Times are the thread's CPU time (one core). */
#include "../examples/gpt2_data.h"

#include <inttypes.h>
#include <time.h>

/* The calling thread's CPU time: on a shared machine, wall time would count
 * the other processes' turns on the core too. */
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, by_value);
    return v[n / 2];
}

static em_tokenizer *load(void) {
    em_tokenizer *t = em_tokenizer_load_gpt2("data/gpt2/encoder.json", "data/gpt2/vocab.bpe");
    if (!t) fprintf(stderr, "tokenizer: %s (run from the project root)\n", em_last_error());
    return t;
}

int main(int argc, char **argv) {
    int reps = argc > 2 ? atoi(argv[2]) : 5;
    if (reps < 1 || reps > 100) reps = 5;
    char err[512];
    size_t len;
    char *text = gpt2_corpus_text(GPT2_CORPUS_DIR, &len, err, sizeof err);
    if (!text) {
        fprintf(stderr, "tokenizer: %s\n", err);
        return 1;
    }
    double load_s[100], cold[100], warm[100], dec[100];
    int64_t n = 0;
    int32_t *ids = NULL;
    char *back = malloc(len);
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        em_tokenizer *t = load();
        if (!t) return 1;
        double t1 = now();
        free(ids);
        ids = gpt2_encode_documents(t, text, len, &n);
        double t2 = now();
        free(ids);
        ids = gpt2_encode_documents(t, text, len, &n);
        double t3 = now();
        if (!ids || em_tokenizer_decode(t, ids, n, back, len) != (int64_t)len || memcmp(back, text, len)) {
            fprintf(stderr, "tokenizer: the corpus did not round-trip: %s\n", em_last_error() ? em_last_error() : "");
            return 1;
        }
        double t4 = now();
        load_s[r] = t1 - t0, cold[r] = t2 - t1, warm[r] = t3 - t2, dec[r] = t4 - t3;
        em_tokenizer_release(t);
    }
    double mb = (double)len / 1e6;
    printf("tokenizer: corpus %.2f MB -> %" PRId64 " ids (%.2f bytes per token), medians of %d\n", mb, n, (double)len / (double)n,
           reps);
    printf("  load data/gpt2     %8.1f ms\n", 1e3 * median(load_s, reps));
    printf("  encode, cold cache %8.1f MB/s\n", mb / median(cold, reps));
    printf("  encode, warm cache %8.1f MB/s\n", mb / median(warm, reps));
    printf("  decode             %8.1f MB/s\n", mb / median(dec, reps));
    free(back);
    free(ids);
    free(text);
    return 0;
}
