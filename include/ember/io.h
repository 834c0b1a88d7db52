/* Data formats: IDX (MNIST; raw or gzip) and NumPy .npy.
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
