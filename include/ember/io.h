/* Data formats: IDX (MNIST; raw or gzip) and NumPy .npy. */
#ifndef EMBER_IO_H
#define EMBER_IO_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Reads an IDX file (gzip or raw, detected from the content). The dtype
 * follows the file: ubyte -> EM_U8; sbyte, short, int -> EM_I32; float ->
 * EM_F32; double -> EM_F64. NEW; NULL with an error naming the file on a bad
 * magic, a truncated or corrupt file, or sizes that disagree with the data. */
em_tensor *em_load_idx(const char *path);

/* .npy arrays: float32/64, int32/64, uint8, bool; little-endian, C order
 * (Fortran order is an error). Loading reads format versions 1.0 to 3.0 and
 * returns a NEW tensor; saving writes version 1.0. */
em_tensor *em_load_npy(const char *path);
int em_save_npy(const char *path, em_tensor *t);

#ifdef __cplusplus
}
#endif
#endif
