/* The GPT-2 example's training text, defined in one place (the example, the
 * tokenizer's test and tools/gpt2_reference_ids.py read it the same way).
 *
 * The corpus is Debian's `fortunes` package (`make deps` installs it; BSD
 * license, The Regents of the University of California; per-file notes in
 * /usr/share/doc/fortunes/copyright): the 40 fortune files it installs in
 * /usr/share/games/fortunes, in the order of gpt2_corpus_files (byte order of
 * their names), about 2.5 MB of English. fortunes-min's "fortunes" file and
 * the .dat indexes and .u8 links are not part of it.
 *
 * A fortune file holds fortunes separated by lines that are exactly "%". A
 * document is one fortune: its lines, each with its newline (empty ones
 * skipped). The training text is every document preceded by
 * "<|endoftext|>", as llm.c's data scripts put the end-of-text token before
 * each document; its ids are GPT-2's end-of-text id, then the document's
 * ids, for each document (gpt2_encode_documents). */
#ifndef EMBER_EXAMPLES_GPT2_DATA_H
#define EMBER_EXAMPLES_GPT2_DATA_H

#include <ember.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GPT2_CORPUS_DIR "/usr/share/games/fortunes"
#define GPT2_EOT_TEXT "<|endoftext|>"

static const char *const gpt2_corpus_files[] = {
    "art",        "ascii-art", "computers",     "cookie", "debian",    "definitions", "disclaimer", "drugs",
    "education",  "ethnic",    "food",          "goedel", "humorists", "kids",        "knghtbrd",   "law",
    "linux",      "linuxcookie", "love",        "magic",  "medicine",  "men-women",   "miscellaneous", "news",
    "paradoxum",  "people",    "perl",          "pets",   "platitudes", "politics",   "pratchett",  "science",
    "songs-poems", "sports",   "startrek",      "tao",    "translate-me", "wisdom",   "work",       "zippy",
};

/* The message of a failure, cut to errsize. */
static inline void gpt2_error(char *err, size_t errsize, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static inline void gpt2_error(char *err, size_t errsize, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsize, fmt, ap);
    va_end(ap);
}

/* Appends one document (GPT2_EOT_TEXT, then the fortune) to *text (length
 * *len, capacity *cap); 0 when out of memory. An empty fortune adds nothing. */
static inline int gpt2_append_document(const char *doc, size_t n, char **text, size_t *len, size_t *cap) {
    const size_t eot_len = strlen(GPT2_EOT_TEXT);
    if (n == 0) return 1;
    size_t need = *len + eot_len + n;
    if (need > *cap) {
        size_t c = *cap ? *cap : 1 << 20;
        while (c < need) c *= 2;
        char *grown = realloc(*text, c);
        if (!grown) return 0;
        *text = grown;
        *cap = c;
    }
    memcpy(*text + *len, GPT2_EOT_TEXT, eot_len);
    memcpy(*text + *len + eot_len, doc, n);
    *len = need;
    return 1;
}

/* Appends the fortunes of one fortune file's contents; 0 when out of memory. */
static inline int gpt2_append_fortunes(const char *data, size_t size, char **text, size_t *len, size_t *cap) {
    size_t doc = 0; /* where the current fortune starts */
    for (size_t at = 0; at < size;) {
        const char *nl = memchr(data + at, '\n', size - at);
        size_t next = nl ? (size_t)(nl - data) + 1 : size;
        if (data[at] == '%' && (next - at == 1 || (next - at == 2 && data[at + 1] == '\n'))) {
            if (!gpt2_append_document(data + doc, at - doc, text, len, cap)) return 0;
            doc = next;
        }
        at = next;
    }
    return gpt2_append_document(data + doc, size - doc, text, len, cap);
}

/* The training text (see above) read from dir (GPT2_CORPUS_DIR, or another
 * copy of the same files): malloc'd, its length in *len. NULL with a message
 * in err (naming the file, and `make deps` when it is missing). */
static inline char *gpt2_corpus_text(const char *dir, size_t *len, char *err, size_t errsize) {
    char *text = NULL;
    size_t cap = 0;
    *len = 0;
    for (size_t i = 0; i < sizeof gpt2_corpus_files / sizeof gpt2_corpus_files[0]; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, gpt2_corpus_files[i]);
        FILE *f = fopen(path, "rb");
        if (!f) {
            gpt2_error(err, errsize, "cannot open %s: %s (the corpus is Debian's fortunes package: `make deps` installs it)",
                     path, strerror(errno));
            free(text);
            return NULL;
        }
        size_t size = 0, fcap = 1 << 16;
        char *data = malloc(fcap);
        while (data) {
            size += fread(data + size, 1, fcap - size, f);
            if (size < fcap) break;
            char *grown = realloc(data, fcap * 2);
            if (!grown) free(data);
            data = grown;
            fcap *= 2;
        }
        int read_error = ferror(f);
        fclose(f);
        if (!data || read_error || !gpt2_append_fortunes(data, size, &text, len, &cap)) {
            gpt2_error(err, errsize, "%s: %s", path, read_error ? "read error" : "out of memory");
            free(data);
            free(text);
            return NULL;
        }
        free(data);
    }
    return text;
}

/* The ids of a training text: each GPT2_EOT_TEXT becomes the end-of-text id,
 * the text between is encoded. malloc'd, the count in *n; NULL when out of
 * memory or when the tokenizer fails (em_last_error says why). */
static inline int32_t *gpt2_encode_documents(em_tokenizer *t, const char *text, size_t len, int64_t *n) {
    const size_t eot_len = strlen(GPT2_EOT_TEXT);
    int64_t cap = (int64_t)(len / 3) + 1024, count = 0;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    for (size_t at = 0; ids;) {
        const char *hit = text + at;
        while ((hit = memchr(hit, '<', (size_t)(text + len - hit))) && (size_t)(text + len - hit) >= eot_len &&
               memcmp(hit, GPT2_EOT_TEXT, eot_len))
            hit++;
        if (hit && (size_t)(text + len - hit) < eot_len) hit = NULL;
        size_t end = hit ? (size_t)(hit - text) : len;
        /* encode into the room left; grow and encode again when it needs more */
        int64_t k = em_tokenizer_encode(t, text + at, end - at, ids + count, cap - count - 1);
        if (k < 0) break;
        if (k > cap - count - 1) {
            while (k > cap - count - 1) cap *= 2;
            int32_t *grown = realloc(ids, (size_t)cap * sizeof *ids);
            if (!grown) break;
            ids = grown;
            em_tokenizer_encode(t, text + at, end - at, ids + count, k);
        }
        count += k;
        if (!hit) {
            *n = count;
            return ids;
        }
        ids[count++] = em_tokenizer_eot(t);
        at = end + eot_len;
    }
    free(ids);
    return NULL;
}

#endif
