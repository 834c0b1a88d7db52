/* GPT-2's byte-level BPE (OpenAI's encoder.py) and llm.c's tokenizer file.
 *
 * Tokens are held as their bytes. encoder.json names them in GPT-2's
 * byte-to-character map (bytes_to_unicode: printable Latin-1 bytes stand for
 * themselves, the other 68 for U+0100..U+0143), which loading undoes, so a
 * merge of vocab.bpe becomes a pair of ids -> (rank, merged id).
 *
 * Encoding: the pre-tokenizer regex
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * written out as a scanner (split_next), then each piece's bytes merged,
 * lowest rank first and leftmost among equals, until no pair has a rank
 * (what encoder.py's bpe() computes), with a cache of pieces seen before. */
#include "file.h"
#include "internal.h"
#include "unicode_classes.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>

#define LLMC_MAGIC 20240328
#define LLMC_HEADER_INTS 256
#define GPT2_EOT 50256
#define NO_RANK INT32_MAX

/* Pieces longer than this are merged every time, not cached. */
#define CACHE_MAX_PIECE 128
/* The cache starts over when it holds this many pieces (the fortunes corpus
 * has 46,697 different ones, 7.6 bytes each on average): at most 12 MiB of
 * slots, 32 MiB of pieces and 128 MiB of ids; about 16 MiB for English. */
#define CACHE_MAX_ENTRIES (1u << 18)

typedef struct merge_slot {
    uint64_t pair; /* left id << 32 | right id; 0 is free (the pair (0, 0) is stored as ~0) */
    int32_t rank, merged;
} merge_slot;

typedef struct cache_slot {
    uint64_t hash; /* 0 is free */
    uint32_t piece, piece_len; /* into cache_bytes */
    uint32_t ids, n_ids;       /* into cache_ids */
} cache_slot;

struct em_tokenizer {
    int32_t vocab, eot;
    uint32_t *offset; /* token i is bytes[offset[i] .. offset[i + 1]) */
    uint8_t *bytes;
    bool can_encode; /* loaded with its merges (encoder.json + vocab.bpe) */
    int32_t byte_token[256];
    uint8_t ascii_class[128]; /* the pre-tokenizer's class of each ASCII character */
    merge_slot *merges;
    size_t merge_mask;
    /* the piece cache: open addressing over growing arenas */
    cache_slot *cache;
    size_t cache_mask, cache_used;
    uint8_t *cache_bytes;
    size_t cache_bytes_len, cache_bytes_cap;
    int32_t *cache_ids;
    size_t cache_ids_len, cache_ids_cap;
    /* the merge loops' scratch (merge_short, merge_long) */
    int32_t *work;
    size_t work_cap;
};

/* ---- small helpers ---- */

static uint64_t hash_bytes(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h | 1; /* never 0: 0 marks a free slot */
}

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

/* Grows *p (elements of size elem) to hold need; false when out of memory. */
static bool reserve(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return false;
    *p = q;
    *cap = c;
    return true;
}

/* Decodes one UTF-8 character at p (strict: no overlong forms, surrogates
 * or values past U+10FFFF); its length, or 0 when p does not start one. */
static int utf8_decode(const uint8_t *p, size_t left, uint32_t *cp) {
    uint8_t b = p[0];
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    int n;
    uint32_t c, min;
    if ((b & 0xE0) == 0xC0) n = 2, c = b & 0x1F, min = 0x80;
    else if ((b & 0xF0) == 0xE0) n = 3, c = b & 0x0F, min = 0x800;
    else if ((b & 0xF8) == 0xF0) n = 4, c = b & 0x07, min = 0x10000;
    else return 0;
    if ((size_t)n > left) return 0;
    for (int i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        c = c << 6 | (p[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    *cp = c;
    return n;
}

/* ---- the pre-tokenizer's character classes ---- */

enum { CLASS_OTHER, CLASS_LETTER, CLASS_NUMBER, CLASS_SPACE };

static bool in_ranges(uint32_t cp, const uint32_t (*r)[2], size_t n) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < r[mid][0]) hi = mid;
        else if (cp > r[mid][1]) lo = mid + 1;
        else return true;
    }
    return false;
}

#define RANGES(r) r, sizeof r / sizeof r[0]

static int char_class(uint32_t cp) {
    if (in_ranges(cp, RANGES(unicode_letters))) return CLASS_LETTER;
    if (in_ranges(cp, RANGES(unicode_numbers))) return CLASS_NUMBER;
    if (in_ranges(cp, RANGES(unicode_spaces))) return CLASS_SPACE;
    return CLASS_OTHER;
}

/* ---- GPT-2's byte <-> character map (encoder.py's bytes_to_unicode) ---- */

static bool byte_stands_for_itself(int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE; }

/* The byte a character of encoder.json / vocab.bpe stands for; -1 if none. */
static int char_byte(uint32_t cp) {
    if (cp < 256) return byte_stands_for_itself((int)cp) ? (int)cp : -1;
    if (cp >= 256 + 68) return -1;
    int k = (int)cp - 256; /* the k-th byte that does not stand for itself */
    for (int b = 0; b < 256; b++)
        if (!byte_stands_for_itself(b) && k-- == 0) return b;
    return -1;
}

/* ---- the tokenizer's parts ---- */

static em_tokenizer *tokenizer_new(int32_t vocab, size_t bytes) {
    em_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->vocab = vocab;
    t->offset = malloc(((size_t)vocab + 1) * sizeof *t->offset);
    t->bytes = malloc(bytes ? bytes : 1);
    if (!t->offset || !t->bytes) {
        em_tokenizer_release(t);
        return NULL;
    }
    return t;
}

void em_tokenizer_release(em_tokenizer *t) {
    if (!t) return;
    free(t->offset);
    free(t->bytes);
    free(t->merges);
    free(t->cache);
    free(t->cache_bytes);
    free(t->cache_ids);
    free(t->work);
    free(t);
}

static merge_slot *merge_find(const em_tokenizer *t, int32_t a, int32_t b) {
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    if (!key) key = ~0ull;
    for (size_t i = mix64(key) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        merge_slot *s = &t->merges[i];
        if (s->pair == key || !s->pair) return s; /* a free slot: the caller may fill it */
    }
}

/* ---- loading encoder.json and vocab.bpe ---- */

#define LOAD_GPT2 "tokenizer_load_gpt2"

/* A bytes -> id table for the tokens of encoder.json, used while loading. */
typedef struct vocab_index {
    int32_t *slot; /* id + 1; 0 is free */
    size_t mask;
} vocab_index;

static int32_t vocab_lookup(const em_tokenizer *t, const vocab_index *v, const uint8_t *p, size_t n, int32_t *free_slot) {
    for (size_t i = hash_bytes(p, n) & v->mask;; i = (i + 1) & v->mask) {
        int32_t id = v->slot[i] - 1;
        if (id < 0) {
            if (free_slot) *free_slot = (int32_t)i;
            return -1;
        }
        size_t len = t->offset[id + 1] - t->offset[id];
        if (len == n && !memcmp(t->bytes + t->offset[id], p, n)) return id;
    }
}

/* Turns a run of characters of GPT-2's map (UTF-8) into the bytes they stand
 * for, in place (never longer); false on a character outside the map. */
static bool unmap_chars(uint8_t *s, size_t *len, uint32_t *bad) {
    size_t in = 0, out = 0;
    while (in < *len) {
        uint32_t cp;
        int k = utf8_decode(s + in, *len - in, &cp);
        int b = k ? char_byte(cp) : -1;
        if (b < 0) {
            *bad = k ? cp : 0xFFFD;
            return false;
        }
        s[out++] = (uint8_t)b;
        in += (size_t)k;
    }
    *len = out;
    return true;
}

typedef struct json {
    const uint8_t *p, *start, *end;
    const char *why;
} json;

static void json_ws(json *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static bool json_fail(json *j, const char *why) {
    if (!j->why) j->why = why;
    return false;
}

static int hex4(const uint8_t *p) {
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int c = p[i], d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v << 4 | d;
    }
    return v;
}

static size_t utf8_encode(uint32_t cp, uint8_t *out) {
    if (cp < 0x80) return out[0] = (uint8_t)cp, 1;
    if (cp < 0x800) return out[0] = (uint8_t)(0xC0 | cp >> 6), out[1] = (uint8_t)(0x80 | (cp & 0x3F)), 2;
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | cp >> 12), out[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | cp >> 18), out[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F)), out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* A JSON string, its escapes undone, as UTF-8 into out (never more bytes than
 * the string takes in the JSON: \uXXXX gives at most 3, a surrogate pair 4);
 * its length in *n. */
static bool json_string(json *j, uint8_t *out, size_t *n) {
    json_ws(j);
    if (j->p >= j->end || *j->p != '"') return json_fail(j, "expected a string");
    j->p++;
    size_t len = 0;
    for (;;) {
        if (j->p >= j->end) return json_fail(j, "unterminated string");
        uint8_t c = *j->p++;
        if (c == '"') break;
        if (c < 0x20) return json_fail(j, "control character in a string");
        if (c != '\\') {
            out[len++] = c;
            continue;
        }
        if (j->p >= j->end) return json_fail(j, "unterminated string");
        c = *j->p++;
        static const char escapes[] = "\"\\/bfnrt";
        static const uint8_t unescaped[] = {'"', '\\', '/', '\b', '\f', '\n', '\r', '\t'};
        const char *simple = c ? strchr(escapes, c) : NULL;
        if (simple) {
            out[len++] = unescaped[simple - escapes];
            continue;
        }
        if (c != 'u') return json_fail(j, "unknown escape in a string");
        int u = j->end - j->p >= 4 ? hex4(j->p) : -1;
        if (u < 0) return json_fail(j, "bad \\u escape");
        j->p += 4;
        uint32_t cp = (uint32_t)u;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            int lo = j->end - j->p >= 6 && j->p[0] == '\\' && j->p[1] == 'u' ? hex4(j->p + 2) : -1;
            if (lo < 0xDC00 || lo > 0xDFFF) return json_fail(j, "unpaired surrogate in a \\u escape");
            j->p += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return json_fail(j, "unpaired surrogate in a \\u escape");
        }
        len += utf8_encode(cp, out + len);
    }
    *n = len;
    return true;
}

static bool json_id(json *j, int64_t *v) {
    json_ws(j);
    if (j->p >= j->end || *j->p < '0' || *j->p > '9') return json_fail(j, "expected a non-negative integer id");
    int64_t x = 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        x = x * 10 + (*j->p++ - '0');
        if (x > INT32_MAX) return json_fail(j, "id too large");
    }
    if (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E')) return json_fail(j, "id is not an integer");
    *v = x;
    return true;
}

static bool json_punct(json *j, char c) {
    json_ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return true;
    }
    return false;
}

/* encoder.json into t's tokens (t->vocab, offset, bytes), sorted by id. */
static em_tokenizer *parse_encoder(const char *path, const uint8_t *text, size_t size) {
    json j = {text, text, text + size, NULL};
    /* pass 1: count the entries and check the syntax; pass 2 places them */
    size_t entries = 0, key_bytes = 0;
    uint8_t *key = malloc(size + 4); /* an unescaped string is never longer than its JSON */
    int64_t *ids = NULL;
    size_t *key_off = NULL;
    uint8_t *keys = NULL;
    em_tokenizer *t = NULL;
    if (!key) goto oom;
    if (!json_punct(&j, '{')) json_fail(&j, "expected '{'");
    while (!j.why && !json_punct(&j, '}')) {
        if (entries && !json_punct(&j, ',')) {
            json_fail(&j, "expected ',' or '}'");
            break;
        }
        size_t n;
        int64_t id;
        if (!json_string(&j, key, &n)) break;
        if (!json_punct(&j, ':')) {
            json_fail(&j, "expected ':'");
            break;
        }
        if (!json_id(&j, &id)) break;
        entries++;
        key_bytes += n;
    }
    if (!j.why) {
        json_ws(&j);
        if (j.p != j.end) json_fail(&j, "text after the object");
    }
    if (!j.why && entries == 0) json_fail(&j, "no tokens");
    if (j.why) {
        em__error(LOAD_GPT2 ": %s: not GPT-2's encoder.json: %s at byte %zu", path, j.why, (size_t)(j.p - j.start));
        free(key);
        return NULL;
    }
    if (entries > INT32_MAX || key_bytes > UINT32_MAX) {
        em__error(LOAD_GPT2 ": %s: %zu tokens of %zu bytes, more than int32 ids and offsets hold", path, entries, key_bytes);
        free(key);
        return NULL;
    }
    ids = malloc(entries * sizeof *ids);
    key_off = malloc((entries + 1) * sizeof *key_off);
    keys = malloc(key_bytes + 1);
    t = tokenizer_new((int32_t)entries, key_bytes);
    if (!ids || !key_off || !keys || !t) goto oom;
    j.p = text;
    json_punct(&j, '{');
    key_off[0] = 0;
    for (size_t e = 0; e < entries; e++) {
        if (e) json_punct(&j, ',');
        size_t n;
        json_string(&j, key, &n);
        json_punct(&j, ':');
        json_id(&j, &ids[e]);
        uint32_t bad;
        if (n == 0) {
            em__error(LOAD_GPT2 ": %s: token %" PRId64 " is the empty string", path, ids[e]);
            goto fail;
        }
        if (!unmap_chars(key, &n, &bad)) {
            em__error(LOAD_GPT2 ": %s: token %" PRId64 " has the character U+%04X, which GPT-2's byte map does not use", path,
                      ids[e], (unsigned)bad);
            goto fail;
        }
        if (ids[e] >= (int64_t)entries) {
            em__error(LOAD_GPT2 ": %s: id %" PRId64 " is outside 0..%zu (the ids must be 0 to the token count - 1)", path, ids[e],
                      entries - 1);
            goto fail;
        }
        memcpy(keys + key_off[e], key, n);
        key_off[e + 1] = key_off[e] + n;
    }
    /* by id: offsets from the lengths, then the bytes */
    for (size_t i = 0; i <= entries; i++) t->offset[i] = UINT32_MAX;
    for (size_t e = 0; e < entries; e++) {
        if (t->offset[ids[e]] != UINT32_MAX) {
            em__error(LOAD_GPT2 ": %s: id %" PRId64 " is given to two tokens", path, ids[e]);
            goto fail;
        }
        t->offset[ids[e]] = (uint32_t)(key_off[e + 1] - key_off[e]);
    }
    uint32_t at = 0;
    for (size_t i = 0; i < entries; i++) {
        uint32_t len = t->offset[i];
        t->offset[i] = at;
        at += len;
    }
    t->offset[entries] = at;
    for (size_t e = 0; e < entries; e++) memcpy(t->bytes + t->offset[ids[e]], keys + key_off[e], key_off[e + 1] - key_off[e]);
    free(key);
    free(ids);
    free(key_off);
    free(keys);
    return t;
oom:
    em__error(LOAD_GPT2 ": %s: out of memory", path);
fail:
    free(key);
    free(ids);
    free(key_off);
    free(keys);
    em_tokenizer_release(t);
    return NULL;
}

/* vocab.bpe: a version line, then one merge "left right" per line in rank
 * order, both sides in GPT-2's character map. */
static bool parse_merges(em_tokenizer *t, const char *path, uint8_t *text, size_t size) {
    vocab_index v = {NULL, pow2_at_least((size_t)t->vocab * 2) - 1};
    v.slot = calloc(v.mask + 1, sizeof *v.slot);
    size_t lines = 0;
    for (size_t i = 0; i < size; i++) lines += text[i] == '\n';
    t->merge_mask = pow2_at_least(lines * 2 + 2) - 1;
    t->merges = calloc(t->merge_mask + 1, sizeof *t->merges);
    if (!v.slot || !t->merges) {
        free(v.slot);
        em__error(LOAD_GPT2 ": %s: out of memory", path);
        return false;
    }
    for (int32_t id = 0; id < t->vocab; id++) {
        int32_t slot;
        const uint8_t *p = t->bytes + t->offset[id];
        size_t n = t->offset[id + 1] - t->offset[id];
        if (vocab_lookup(t, &v, p, n, &slot) >= 0) continue; /* two ids of the same bytes: the first wins */
        v.slot[slot] = id + 1;
    }
    bool ok = false;
    const char *why = NULL;
    size_t line = 1, at = 0;
    const size_t version_len = 9;
    if (size < version_len || memcmp(text, "#version:", version_len)) {
        em__error(LOAD_GPT2 ": %s: not GPT-2's vocab.bpe: the first line is not \"#version: ...\"", path);
        goto done;
    }
    while (at < size && text[at] != '\n') at++;
    int32_t rank = 0;
    while (at < size) {
        at++; /* the '\n' */
        line++;
        size_t end = at;
        while (end < size && text[end] != '\n') end++;
        size_t n = end - at;
        if (n && text[at + n - 1] == '\r') n--;
        if (n == 0) {
            at = end;
            continue;
        }
        uint8_t *s = text + at;
        uint8_t *space = memchr(s, ' ', n);
        if (!space || space == s || space == s + n - 1 || memchr(space + 1, ' ', (size_t)(s + n - space - 1))) {
            why = "is not two tokens separated by one space";
            goto bad_line;
        }
        size_t la = (size_t)(space - s), lb = n - la - 1;
        uint32_t bad;
        if (!unmap_chars(s, &la, &bad) || !unmap_chars(space + 1, &lb, &bad)) {
            why = "has a character that GPT-2's byte map does not use";
            goto bad_line;
        }
        int32_t a = vocab_lookup(t, &v, s, la, NULL), b = vocab_lookup(t, &v, space + 1, lb, NULL);
        memmove(s + la, space + 1, lb); /* the merged token's bytes */
        int32_t m = vocab_lookup(t, &v, s, la + lb, NULL);
        if (a < 0 || b < 0 || m < 0) {
            why = a < 0 || b < 0 ? "merges a token that encoder.json does not have" : "makes a token that encoder.json does not have";
            goto bad_line;
        }
        merge_slot *slot = merge_find(t, a, b);
        uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
        slot->pair = key ? key : ~0ull;
        slot->rank = rank++; /* a pair given twice keeps its last rank, as encoder.py's dict does */
        slot->merged = m;
        at = end;
    }
    ok = true;
    goto done;
bad_line:
    em__error(LOAD_GPT2 ": %s: line %zu %s", path, line, why);
done:
    free(v.slot);
    return ok;
}

static int32_t find_token(const em_tokenizer *t, const char *s) {
    size_t n = strlen(s);
    for (int32_t id = t->vocab - 1; id >= 0; id--)
        if (t->offset[id + 1] - t->offset[id] == n && !memcmp(t->bytes + t->offset[id], s, n)) return id;
    return -1;
}

em_tokenizer *em_tokenizer_load_gpt2(const char *encoder_json, const char *vocab_bpe) {
    if (!encoder_json || !vocab_bpe) {
        em__error(LOAD_GPT2 ": %s is NULL", encoder_json ? "vocab_bpe" : "encoder_json");
        return NULL;
    }
    size_t jsize, bsize;
    uint8_t *json_text = em__read_file(LOAD_GPT2, encoder_json, &jsize);
    if (!json_text) return NULL;
    em_tokenizer *t = parse_encoder(encoder_json, json_text, jsize);
    free(json_text);
    if (!t) return NULL;
    uint8_t *bpe_text = em__read_file(LOAD_GPT2, vocab_bpe, &bsize);
    bool ok = bpe_text && parse_merges(t, vocab_bpe, bpe_text, bsize);
    free(bpe_text);
    if (!ok) {
        em_tokenizer_release(t);
        return NULL;
    }
    for (int b = 0; b < 256; b++) t->byte_token[b] = -1;
    for (int32_t id = t->vocab - 1; id >= 0; id--)
        if (t->offset[id + 1] - t->offset[id] == 1) t->byte_token[t->bytes[t->offset[id]]] = id;
    for (int b = 0; b < 256; b++) {
        if (t->byte_token[b] < 0) {
            em__error(LOAD_GPT2 ": %s: no token for the byte 0x%02X (a byte-level BPE needs all 256)", encoder_json, b);
            em_tokenizer_release(t);
            return NULL;
        }
    }
    for (uint32_t c = 0; c < 128; c++) t->ascii_class[c] = (uint8_t)char_class(c);
    t->eot = find_token(t, "<|endoftext|>");
    if (t->eot < 0) {
        em__error(LOAD_GPT2 ": %s: no <|endoftext|> token", encoder_json);
        em_tokenizer_release(t);
        return NULL;
    }
    t->can_encode = true;
    return t;
}

/* ---- llm.c's tokenizer file ---- */

#define LOAD_LLMC "tokenizer_load_llmc"

static uint32_t le32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

em_tokenizer *em_tokenizer_load_llmc(const char *path) {
    size_t size;
    uint8_t *data = em__read_file(LOAD_LLMC, path, &size);
    if (!data) return NULL;
    em_tokenizer *t = NULL;
    const size_t header = LLMC_HEADER_INTS * 4;
    if (size < header) {
        em__error(LOAD_LLMC ": %s: %zu bytes, shorter than the %zu-byte header (not an llm.c tokenizer file?)", path, size,
                  header);
        goto done;
    }
    uint32_t magic = le32(data), version = le32(data + 4), vocab = le32(data + 8), eot = le32(data + 12);
    if (magic != LLMC_MAGIC) {
        em__error(LOAD_LLMC ": %s: magic %u, not llm.c's tokenizer file (%d)", path, magic, LLMC_MAGIC);
        goto done;
    }
    if (version != 1 && version != 2) {
        em__error(LOAD_LLMC ": %s: version %u (versions 1 and 2 are read)", path, version);
        goto done;
    }
    /* every token has at least one byte */
    if (vocab == 0 || vocab > size - header || vocab > INT32_MAX || size - header > UINT32_MAX) {
        em__error(LOAD_LLMC ": %s: vocabulary size %u does not fit the file's %zu bytes", path, vocab, size);
        goto done;
    }
    if (version == 1) {
        if (vocab != GPT2_EOT + 1) {
            em__error(LOAD_LLMC ": %s: version 1 with vocabulary size %u (version 1 is GPT-2's 50257)", path, vocab);
            goto done;
        }
        eot = GPT2_EOT;
    } else if (eot >= vocab) {
        em__error(LOAD_LLMC ": %s: end-of-text id %u is outside the vocabulary (size %u)", path, eot, vocab);
        goto done;
    }
    t = tokenizer_new((int32_t)vocab, size - header);
    if (!t) {
        em__error(LOAD_LLMC ": %s: out of memory", path);
        goto done;
    }
    t->eot = (int32_t)eot;
    size_t at = header;
    uint32_t out = 0;
    for (uint32_t i = 0; i < vocab; i++) {
        if (at >= size) {
            em__error(LOAD_LLMC ": %s: truncated: ends before token %u of %u", path, i, vocab);
            goto fail;
        }
        size_t n = data[at++];
        if (n == 0) {
            em__error(LOAD_LLMC ": %s: token %u has length 0", path, i);
            goto fail;
        }
        if (n > size - at) {
            em__error(LOAD_LLMC ": %s: truncated: token %u needs %zu bytes, %zu are left", path, i, n, size - at);
            goto fail;
        }
        t->offset[i] = out;
        memcpy(t->bytes + out, data + at, n);
        out += (uint32_t)n;
        at += n;
    }
    t->offset[vocab] = out;
    if (at != size) {
        em__error(LOAD_LLMC ": %s: %zu bytes after the last token (a corrupt file?)", path, size - at);
        goto fail;
    }
    goto done;
fail:
    em_tokenizer_release(t);
    t = NULL;
done:
    free(data);
    return t;
}

static int fill_llmc(em__file_out *out, void *ctx) {
    const em_tokenizer *t = ctx;
    uint8_t header[LLMC_HEADER_INTS * 4] = {0};
    const uint32_t fields[4] = {LLMC_MAGIC, 2, (uint32_t)t->vocab, (uint32_t)t->eot};
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 4; k++) header[i * 4 + k] = (uint8_t)(fields[i] >> (8 * k));
    em__file_put(out, header, sizeof header);
    for (int32_t i = 0; i < t->vocab; i++) {
        uint8_t n = (uint8_t)(t->offset[i + 1] - t->offset[i]);
        em__file_put(out, &n, 1);
        em__file_put(out, t->bytes + t->offset[i], n);
    }
    return 0;
}

int em_tokenizer_save_llmc(const em_tokenizer *t, const char *path) {
    if (!t) return em__null_input("tokenizer_save_llmc"), -1;
    if (!path) {
        em__error("tokenizer_save_llmc: path is NULL");
        return -1;
    }
    for (int32_t i = 0; i < t->vocab; i++) {
        uint32_t n = t->offset[i + 1] - t->offset[i];
        if (n == 0 || n > 255) {
            em__error("tokenizer_save_llmc: %s: token %d has %u bytes; the file holds 1 to 255 per token", path, i, n);
            return -1;
        }
    }
    return em__write_atomic("tokenizer_save_llmc", path, fill_llmc, (void *)t);
}

/* ---- encoding ---- */


/* The character at p: its class and length; a byte that does not start valid
 * UTF-8 is one character of class other. */
static inline int next_char(const em_tokenizer *t, const uint8_t *p, size_t left, int *len) {
    if (*p < 0x80) {
        *len = 1;
        return t->ascii_class[*p];
    }
    uint32_t cp;
    int n = utf8_decode(p, left, &cp);
    if (!n) {
        *len = 1;
        return CLASS_OTHER;
    }
    *len = n;
    return char_class(cp);
}

/* The length of the piece the regex matches at s[0] (left > 0). */
static size_t split_next(const em_tokenizer *t, const uint8_t *s, size_t left) {
    if (s[0] == '\'' && left >= 2) {
        uint8_t c = s[1];
        if (c == 's' || c == 't' || c == 'm' || c == 'd') return 2;
        if (left >= 3 && ((c == 'r' && s[2] == 'e') || (c == 'v' && s[2] == 'e') || (c == 'l' && s[2] == 'l'))) return 3;
    }
    int len;
    int cls = next_char(t, s, left, &len);
    size_t at = 0;
    if (s[0] == ' ' && left > 1) { /* " ?X+" takes the space when a run follows */
        int next_len;
        int next = next_char(t, s + 1, left - 1, &next_len);
        if (next != CLASS_SPACE) at = 1, cls = next, len = next_len;
    }
    if (cls != CLASS_SPACE) {
        at += (size_t)len;
        while (at < left) {
            int c = next_char(t, s + at, left - at, &len);
            if (c != cls) break;
            at += (size_t)len;
        }
        return at;
    }
    /* whitespace: "\s+(?!\S)" keeps the run's last character for the word
     * after it; "\s+" takes a lone one */
    size_t last = 0;
    at = 0;
    while (at < left) {
        int c = next_char(t, s + at, left - at, &len);
        if (c != CLASS_SPACE) break;
        last = at;
        at += (size_t)len;
    }
    return at == left || last == 0 ? at : last;
}

/* The merge loop on a short piece of n bytes: a scan for the lowest rank
 * after each merge (O(n^2), the fastest for words); the ids into
 * t->work[0 .. return). */
static int64_t merge_short(em_tokenizer *t, const uint8_t *s, size_t n) {
    if (!reserve((void **)&t->work, &t->work_cap, 3 * n, sizeof *t->work)) return -1;
    int32_t *ids = t->work, *rank = ids + n, *merged = rank + n;
    for (size_t i = 0; i < n; i++) ids[i] = t->byte_token[s[i]];
    for (size_t i = 0; i + 1 < n; i++) {
        const merge_slot *m = merge_find(t, ids[i], ids[i + 1]);
        rank[i] = m->pair ? m->rank : NO_RANK;
        merged[i] = m->merged;
    }
    while (n > 1) {
        size_t best = 0;
        for (size_t i = 1; i + 1 < n; i++)
            if (rank[i] < rank[best]) best = i;
        if (rank[best] == NO_RANK) break;
        ids[best] = merged[best];
        n--;
        memmove(ids + best + 1, ids + best + 2, (n - best - 1) * sizeof *ids);
        if (best + 1 < n) {
            memmove(rank + best + 1, rank + best + 2, (n - best - 2) * sizeof *rank);
            memmove(merged + best + 1, merged + best + 2, (n - best - 2) * sizeof *merged);
        }
        for (size_t i = best ? best - 1 : 0; i <= best && i + 1 < n; i++) {
            const merge_slot *m = merge_find(t, ids[i], ids[i + 1]);
            rank[i] = m->pair ? m->rank : NO_RANK;
            merged[i] = m->merged;
        }
    }
    return (int64_t)n;
}

/* A pair waiting in merge_long's heap: the rank it had when pushed and the
 * position of its left token (positions keep the bytes' order, so the
 * smallest is the leftmost). */
typedef struct pair_entry {
    int32_t rank, pos;
} pair_entry;

static bool pair_before(pair_entry a, pair_entry b) { return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos); }

static void heap_push(pair_entry *h, size_t *n, pair_entry e) {
    size_t i = (*n)++;
    for (; i && pair_before(e, h[(i - 1) / 2]); i = (i - 1) / 2) h[i] = h[(i - 1) / 2];
    h[i] = e;
}

static pair_entry heap_pop(pair_entry *h, size_t *n) {
    pair_entry top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && pair_before(h[c + 1], h[c])) c++;
        if (!pair_before(h[c], last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = last;
    return top;
}

/* The same merges for a long piece (a run of spaces or punctuation can be
 * megabytes): the tokens in a linked list, the pairs in a heap by (rank,
 * position), a popped pair skipped when a merge beside it has changed it;
 * O(n log n). */
static int64_t merge_long(em_tokenizer *t, const uint8_t *s, size_t n) {
    /* ids, next, prev and 3n heap entries (n - 1 pairs, then at most 2 per merge) */
    size_t words = 3 * n + 3 * n * sizeof(pair_entry) / sizeof(int32_t);
    if (n > INT32_MAX / 8 || !reserve((void **)&t->work, &t->work_cap, words, sizeof *t->work)) return -1;
    int32_t *ids = t->work, *next = ids + n, *prev = next + n;
    pair_entry *heap = (pair_entry *)(prev + n);
    size_t queued = 0;
    const int32_t end = (int32_t)n;
    for (size_t i = 0; i < n; i++) ids[i] = t->byte_token[s[i]], next[i] = (int32_t)i + 1, prev[i] = (int32_t)i - 1;
    for (size_t i = 0; i + 1 < n; i++) {
        const merge_slot *m = merge_find(t, ids[i], ids[i + 1]);
        if (m->pair) heap_push(heap, &queued, (pair_entry){m->rank, (int32_t)i});
    }
    while (queued) {
        pair_entry e = heap_pop(heap, &queued);
        int32_t p = e.pos, q = next[p];
        if (ids[p] < 0 || q == end) continue;
        const merge_slot *m = merge_find(t, ids[p], ids[q]);
        if (!m->pair || m->rank != e.rank) continue; /* a rank names one pair: this one changed */
        ids[p] = m->merged;
        ids[q] = -1;
        next[p] = next[q];
        if (next[p] != end) prev[next[p]] = p;
        /* the pairs the merge made: with the token before p, and with the one after */
        if (prev[p] >= 0) {
            const merge_slot *before = merge_find(t, ids[prev[p]], ids[p]);
            if (before->pair) heap_push(heap, &queued, (pair_entry){before->rank, prev[p]});
        }
        if (next[p] != end) {
            const merge_slot *after = merge_find(t, ids[p], ids[next[p]]);
            if (after->pair) heap_push(heap, &queued, (pair_entry){after->rank, p});
        }
    }
    size_t k = 0;
    for (int32_t i = 0; i != end; i = next[i]) ids[k++] = ids[i];
    return (int64_t)k;
}

/* Pieces up to this many bytes merge with merge_short. */
#define SHORT_PIECE 64

static void cache_clear(em_tokenizer *t) {
    if (t->cache) memset(t->cache, 0, (t->cache_mask + 1) * sizeof *t->cache);
    t->cache_used = t->cache_bytes_len = t->cache_ids_len = 0;
}

/* The cached ids of a piece; NULL when not cached. */
static const cache_slot *cache_get(const em_tokenizer *t, const uint8_t *s, size_t n, uint64_t h) {
    if (!t->cache) return NULL;
    for (size_t i = h & t->cache_mask;; i = (i + 1) & t->cache_mask) {
        const cache_slot *c = &t->cache[i];
        if (!c->hash) return NULL;
        if (c->hash == h && c->piece_len == n && !memcmp(t->cache_bytes + c->piece, s, n)) return c;
    }
}

/* Adds a piece and its ids (best effort: nothing on failure). */
static void cache_put(em_tokenizer *t, const uint8_t *s, size_t n, uint64_t h, const int32_t *ids, size_t n_ids) {
    if (t->cache_used >= CACHE_MAX_ENTRIES) cache_clear(t);
    if ((t->cache_used + 1) * 2 > t->cache_mask + 1) {
        size_t cap = pow2_at_least((t->cache_mask + 1) * 2);
        cache_slot *grown = calloc(cap, sizeof *grown);
        if (!grown) return;
        for (size_t i = 0; t->cache && i <= t->cache_mask; i++) {
            if (!t->cache[i].hash) continue;
            size_t k = t->cache[i].hash & (cap - 1);
            while (grown[k].hash) k = (k + 1) & (cap - 1);
            grown[k] = t->cache[i];
        }
        free(t->cache);
        t->cache = grown;
        t->cache_mask = cap - 1;
    }
    if (!reserve((void **)&t->cache_bytes, &t->cache_bytes_cap, t->cache_bytes_len + n, 1) ||
        !reserve((void **)&t->cache_ids, &t->cache_ids_cap, t->cache_ids_len + n_ids, sizeof *t->cache_ids))
        return;
    size_t k = h & t->cache_mask;
    while (t->cache[k].hash) k = (k + 1) & t->cache_mask;
    t->cache[k] = (cache_slot){h, (uint32_t)t->cache_bytes_len, (uint32_t)n, (uint32_t)t->cache_ids_len, (uint32_t)n_ids};
    memcpy(t->cache_bytes + t->cache_bytes_len, s, n);
    memcpy(t->cache_ids + t->cache_ids_len, ids, n_ids * sizeof *ids);
    t->cache_bytes_len += n;
    t->cache_ids_len += n_ids;
    t->cache_used++;
}

int64_t em_tokenizer_encode(em_tokenizer *t, const char *text, size_t len, int32_t *ids, int64_t cap) {
    if (!t) return em__null_input("tokenizer_encode"), -1;
    if (!t->can_encode) {
        em__error("tokenizer_encode: this tokenizer came from an llm.c tokenizer file, which has no merges: it decodes only "
                  "(load encoder.json and vocab.bpe with em_tokenizer_load_gpt2 to encode)");
        return -1;
    }
    if (!text && len) {
        em__error("tokenizer_encode: text is NULL and len is %zu", len);
        return -1;
    }
    if (cap < 0 || (cap > 0 && !ids)) {
        em__error("tokenizer_encode: ids is %s and cap is %" PRId64 " (a NULL/0 call sizes the buffer)", ids ? "given" : "NULL",
                  cap);
        return -1;
    }
    const uint8_t *s = (const uint8_t *)text;
    int64_t count = 0;
    for (size_t at = 0; at < len;) {
        size_t n = split_next(t, s + at, len - at);
        const uint8_t *piece = s + at;
        at += n;
        if (n == 1) {
            if (count < cap) ids[count] = t->byte_token[piece[0]];
            count++;
            continue;
        }
        uint64_t h = n <= CACHE_MAX_PIECE ? hash_bytes(piece, n) : 0;
        const cache_slot *c = h ? cache_get(t, piece, n, h) : NULL;
        const int32_t *got;
        int64_t k;
        if (c) {
            got = t->cache_ids + c->ids;
            k = c->n_ids;
        } else {
            k = n <= SHORT_PIECE ? merge_short(t, piece, n) : merge_long(t, piece, n);
            if (k < 0) {
                em__error("tokenizer_encode: out of memory for a piece of %zu bytes", n);
                return -1;
            }
            got = t->work;
            if (h) cache_put(t, piece, n, h, got, (size_t)k);
        }
        for (int64_t i = 0; i < k; i++)
            if (count + i < cap) ids[count + i] = got[i];
        count += k;
    }
    return count;
}

/* ---- decoding and the rest ---- */

int64_t em_tokenizer_decode(const em_tokenizer *t, const int32_t *ids, int64_t n, char *out, size_t cap) {
    if (!t) return em__null_input("tokenizer_decode"), -1;
    if (n < 0 || (n > 0 && !ids)) {
        em__error("tokenizer_decode: %s with n = %" PRId64, ids ? "ids given" : "ids is NULL", n);
        return -1;
    }
    if (cap > 0 && !out) {
        em__error("tokenizer_decode: out is NULL and cap is %zu (a NULL/0 call sizes the buffer)", cap);
        return -1;
    }
    size_t need = 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->vocab) {
            em__error("tokenizer_decode: ids[%" PRId64 "] = %d is outside the vocabulary (0..%d)", i, id, t->vocab - 1);
            return -1;
        }
        size_t len = t->offset[id + 1] - t->offset[id];
        if (need < cap) memcpy(out + need, t->bytes + t->offset[id], len < cap - need ? len : cap - need);
        need += len;
    }
    return (int64_t)need;
}

int32_t em_tokenizer_vocab_size(const em_tokenizer *t) {
    if (!t) return em__null_input("tokenizer_vocab_size"), -1;
    return t->vocab;
}

int32_t em_tokenizer_eot(const em_tokenizer *t) {
    if (!t) return em__null_input("tokenizer_eot"), -1;
    return t->eot;
}
