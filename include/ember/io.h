/* Data formats: IDX (MNIST; raw or gzip), NumPy .npy, safetensors, and ONNX export.
 *
 * Every file Ember writes (.npy, PNG images and plots, DOT graphs,
 * checkpoints) is written whole or not at all: to "<file>.tmp.<pid>" beside
 * it, synced, then renamed over it, so a failed write (a full disk) leaves
 * the previous file as it was and removes its temporary. A path that is a
 * symbolic link is written through: the file it names is replaced (created
 * if missing) and the link stays. A path that exists and is not a regular
 * file (a device, a FIFO, a directory, or a link to one) is an error and is
 * left alone. A replaced file keeps its permission bits. */
#ifndef EMBER_IO_H
#define EMBER_IO_H

#include "core.h"
#include "graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Reads an IDX file (gzip or raw, detected from the content). The dtype
 * follows the file: ubyte -> EM_U8; sbyte -> EM_I8; short -> EM_I16; int ->
 * EM_I32; float -> EM_F32; double -> EM_F64. NEW; NULL with an error naming the file on a bad
 * magic, a truncated or corrupt file, or sizes that disagree with the data. */
em_tensor *em_load_idx(const char *path);

/* .npy arrays: float32/64, float16, int8/16/32/64, uint8/16, bool; little-endian, C
 * order (Fortran order is an error). NumPy has no bfloat16: saving one is an
 * error (em_cast it to float32). Loading reads format versions 1.0 to 3.0 and
 * returns a NEW tensor; saving writes version 1.0. */
em_tensor *em_load_npy(const char *path);
int em_save_npy(const char *path, em_tensor *t);

/* ---- safetensors (Hugging Face's tensor files) ----
 * float32/64, int8/16/32/64, uint8/16, bool, float16 and bfloat16 map to F32,
 * F64, I8, I16, I32, I64, U8, U16, BOOL, F16 and BF16, bit for bit both ways;
 * the format's other dtypes (U32, U64, F8_*) are an error naming the tensor.
 * Headers over the format's limit of 100,000,000 bytes are refused. */

/* Writes n tensors (any device; names unique) and nmeta metadata strings,
 * metadata[2 i] the key and metadata[2 i + 1] the value, as the reference
 * writes them: ordered by dtype then name, each aligned to its element size. */
int em_save_safetensors(const char *path, int n, const char *const *names, em_tensor *const *tensors, int nmeta,
                        const char *const *metadata);
/* Called per metadata entry, then per tensor in file order with the tensor
 * (NEW, in the current scope); a non-zero return stops the load and is
 * returned. */
typedef int (*em_safetensors_meta_fn)(void *ctx, const char *key, const char *value);
typedef int (*em_safetensors_tensor_fn)(void *ctx, const char *name, em_tensor *t);
/* Checks the whole header first: 0, -1 with an error naming the file. on_meta may be NULL. */
int em_load_safetensors(const char *path, em_safetensors_tensor_fn on_tensor, em_safetensors_meta_fn on_meta,
                        void *ctx);

/* Variables by name. A rename callback maps a name (the variable's when
 * saving, the file's when loading) to the other side's: it writes the new
 * name into renamed (size bytes, EM_SAFETENSORS_NAME_MAX), may set
 * *transpose (false on entry) to store a 2-D tensor transposed, and returns
 * false to leave the tensor out. NULL keeps every name as it is. Hugging
 * Face's GPT-2 stores its Conv1D weights as [in, out] under names like
 * "transformer.h.0.attn.c_attn.weight": a rename gives them a model's own. */
#define EM_SAFETENSORS_NAME_MAX 256
typedef bool (*em_rename_fn)(const char *name, char *renamed, size_t size, bool *transpose);
/* Every variable of this thread, with the metadata {"format": "pt"} that
 * transformers expects. */
int em_variables_save_safetensors(const char *path, em_rename_fn rename);
/* Every tensor the rename keeps must load into an existing variable of the
 * same dtype, or F16/BF16 into a float32 variable (widened, exactly: float32
 * master weights from a half-precision file), and the same shape; all are
 * checked before any variable changes. Variables the file lacks keep their
 * values. */
int em_variables_load_safetensors(const char *path, em_rename_fn rename);

/* ---- ONNX ----
 * Writes the part of traced graph g that the fetches need as an ONNX model
 * (opset 17 to 21): the placeholders as its inputs (an unknown dimension as
 * the symbolic "batch"), the variables' current values and the constants as
 * initializers, and the fetches as outputs named fetch_names. Covers the
 * inference ops: elementwise math and comparisons, reductions, matmul,
 * shape ops, softmax, layer and RMS norm, conv2d and the pools (NHWC, as
 * Ember computes them), gelu/gelu_tanh. Trace with dropout's keep_prob 1:
 * random ops, gradients and optimizer updates have no mapping. An op
 * without one is an error naming it, and nothing is written. */
int em_graph_export_onnx(em_graph *g, const char *path, int nfetch, em_tensor *const *fetches,
                         const char *const *fetch_names, int opset);

#ifdef __cplusplus
}
#endif
#endif
