/* llm.c's GPT-2 files (github.com/karpathy/llm.c at f1e2ace), read and
 * written, and a token loader for training on them.
 *
 * Model checkpoint: a 1024-byte header of 256 little-endian int32
 *   [0] 20240326 (magic)  [1] version: 3 = float32, 5 = bfloat16
 *   [2] max_seq_len  [3] vocab_size  [4] num_layers  [5] num_heads
 *   [6] channels  [7] padded_vocab_size  [8..255] 0
 * then the 16 parameter tensors back to back, in EM_LLMC_* order, each
 * stacked over the layers (PyTorch's nn.Linear layout, [out, in]):
 *   wte [Vp,C]  wpe [maxT,C]  ln1w [L,C]  ln1b [L,C]  qkvw [L,3C,C]
 *   qkvb [L,3C]  attprojw [L,C,C]  attprojb [L,C]  ln2w [L,C]  ln2b [L,C]
 *   fcw [L,4C,C]  fcb [L,4C]  fcprojw [L,C,4C]  fcprojb [L,C]  lnfw [C]  lnfb [C]
 * Token shard: a 1024-byte header [0] 20240520, [1] 1, [2] token count,
 * then the tokens as little-endian uint16.
 *
 * Reading checks the whole file (magic, version, sizes against the file's
 * length, every token id below the vocabulary) before returning anything;
 * writing is atomic like every file Ember writes (see ember/io.h). */
#ifndef EMBER_LLMC_H
#define EMBER_LLMC_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct em_llmc_config {
    int max_seq_len;       /* rows of the position table (T may not exceed it) */
    int vocab_size;        /* real tokens: 50257 for GPT-2 */
    int padded_vocab_size; /* rows of wte, vocab_size rounded up (50304) */
    int num_layers, num_heads, channels;
} em_llmc_config;

enum {
    EM_LLMC_WTE, EM_LLMC_WPE, EM_LLMC_LN1W, EM_LLMC_LN1B, EM_LLMC_QKVW, EM_LLMC_QKVB,
    EM_LLMC_ATTPROJW, EM_LLMC_ATTPROJB, EM_LLMC_LN2W, EM_LLMC_LN2B, EM_LLMC_FCW, EM_LLMC_FCB,
    EM_LLMC_FCPROJW, EM_LLMC_FCPROJB, EM_LLMC_LNFW, EM_LLMC_LNFB,
    EM_LLMC_PARAM_COUNT
};

/* "wte", "wpe", "ln1w", ...; NULL out of range. */
const char *em_llmc_param_name(int index);
/* The shape of parameter `index` in a file of config (see above). */
em_shape em_llmc_param_shape(const em_llmc_config *config, int index);

/* Reads the header of a model checkpoint into *config. 0, or -1 with an error. */
int em_llmc_read_config(const char *path, em_llmc_config *config);
/* Reads a model checkpoint (float32 or bfloat16) into params[0..16), NEW
 * float32 tensors of em_llmc_param_shape's shapes. With expect non-NULL, a
 * file of another config is an error naming both. On error no tensor is made. */
int em_llmc_load_model(const char *path, const em_llmc_config *expect, em_llmc_config *config,
                       em_tensor **params);
/* Writes a version 3 (float32) checkpoint; params[i] are float32 or float64
 * of em_llmc_param_shape(config, i). */
int em_llmc_save_model(const char *path, const em_llmc_config *config, em_tensor *const *params);

/* A token shard: NEW int32 [count]. Ids >= vocab_size are an error naming the
 * first one and its position (vocab_size <= 0 checks none). */
em_tensor *em_llmc_load_tokens(const char *path, int64_t vocab_size);
/* tokens: int32, int64, int16 or uint16, 1-D, every id in [0, 65535]. */
int em_llmc_save_tokens(const char *path, em_tensor *tokens);

/* ---- token loader ----
 * Batches of `batch` windows of seq + 1 consecutive tokens (inputs and
 * next-token targets) from a token shard. The shard is cut into windows that
 * do not overlap; each epoch visits them in a new random order drawn from
 * seed and the epoch, and rank r of `ranks` takes every ranks-th window of
 * that order from the r-th on, so ranks never share a window. The next batch
 * is read from the file on a background thread while the caller trains on
 * the current one. The position (batches handed out) is all a resumed run
 * needs: em_token_loader_seek(position) gives the batches that followed. */
typedef struct em_token_loader em_token_loader;

/* NULL with an error: a bad shard, ids outside the vocabulary, a shard too
 * small for one batch per rank, rank outside [0, ranks). */
em_token_loader *em_token_loader_open(const char *path, int64_t vocab_size, int batch, int seq, uint64_t seed,
                                      int rank, int ranks);
/* The next batch: NEW int32 [batch, seq + 1]. */
em_tensor *em_token_loader_next(em_token_loader *loader);
/* Batches handed out so far. */
int64_t em_token_loader_position(const em_token_loader *loader);
/* Makes the next batch the one at `position` (>= 0). */
int em_token_loader_seek(em_token_loader *loader, int64_t position);
/* Batches per epoch on this rank. */
int64_t em_token_loader_batches_per_epoch(const em_token_loader *loader);
/* Seconds em_token_loader_next spent waiting for the background read. */
double em_token_loader_stall_seconds(const em_token_loader *loader);
/* Stops the thread and frees the loader; NULL is fine. */
void em_token_loader_close(em_token_loader *loader);

#ifdef __cplusplus
}
#endif
#endif
