/* Text: GPT-2's byte-level BPE tokenizer, and llm.c's tokenizer file.
 *
 * A tokenizer loaded from OpenAI's encoder.json and vocab.bpe encodes and
 * decodes, id for id as OpenAI's encoder.py (its pre-tokenizer regex, its
 * byte-to-character map, merges by rank). One loaded from llm.c's tokenizer
 * file (which holds each token's bytes, not the merges) only decodes.
 *
 * Encoding takes any bytes: valid UTF-8 is split as encoder.py splits the
 * decoded string; a byte that is not part of valid UTF-8 counts as one
 * punctuation character, so decode(encode(x)) == x for every x.
 * "<|endoftext|>" in the text is ordinary text, as in encoder.py: a caller
 * that separates documents puts em_tokenizer_eot between their ids.
 *
 * Encoding keeps a cache of the words it has seen inside the tokenizer, so
 * one tokenizer encodes on one thread at a time; decoding reads only. */
#ifndef EMBER_TEXT_H
#define EMBER_TEXT_H

#include "core.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct em_tokenizer em_tokenizer;

/* GPT-2's byte-level BPE from OpenAI's encoder.json and vocab.bpe: encode and
 * decode. NULL with an error naming the file, the line or byte offset and
 * what is wrong (bad JSON, an id twice or missing, a merge of unknown tokens). */
em_tokenizer *em_tokenizer_load_gpt2(const char *encoder_json, const char *vocab_bpe);

/* llm.c's tokenizer file (magic 20240328, versions 1 and 2): decode only
 * (em_tokenizer_encode is an error). Version 1 files have no end-of-text
 * field: theirs is GPT-2's 50256. */
em_tokenizer *em_tokenizer_load_llmc(const char *path);

/* Writes t as llm.c's train_gpt2.py writes it: a 256 x int32 header (magic
 * 20240328, version 2, vocab size, end-of-text id), then each token as one
 * length byte and its bytes. Written whole or not at all (ember/io.h). */
int em_tokenizer_save_llmc(const em_tokenizer *t, const char *path);

/* Encodes len bytes of UTF-8 (any bytes) into ids; writes at most cap ids,
 * returns the number the text needs (so a NULL/0 call sizes the buffer), -1
 * on error. */
int64_t em_tokenizer_encode(em_tokenizer *t, const char *text, size_t len, int32_t *ids, int64_t cap);

/* Decodes n ids into bytes; writes at most cap bytes, returns the number
 * needed, -1 on an id outside the vocabulary. */
int64_t em_tokenizer_decode(const em_tokenizer *t, const int32_t *ids, int64_t n, char *out, size_t cap);

int32_t em_tokenizer_vocab_size(const em_tokenizer *t); /* GPT-2: 50257 */
int32_t em_tokenizer_eot(const em_tokenizer *t);        /* <|endoftext|>: 50256 */
void em_tokenizer_release(em_tokenizer *t);             /* NULL is fine */

#ifdef __cplusplus
}
#endif
#endif
