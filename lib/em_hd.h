/* EM_HD marks a function compiled for both the host and a CUDA device: the
 * formulas and index math that lib/ and gpu/ share. */
#ifndef EMBER_EM_HD_H
#define EMBER_EM_HD_H

#ifdef __CUDACC__
#define EM_HD __host__ __device__
#else
#define EM_HD
#endif

/* Silences unused-typedef and unused-variable warnings in stamped code. */
#define EM_UNUSED __attribute__((unused))

#endif
