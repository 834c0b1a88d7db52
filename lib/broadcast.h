/* Broadcast-stride iteration shared by the CPU kernels and the CUDA backend.
 *
 * A plan maps each element of a contiguous output to one element of every
 * input: an input's stride is 0 along the axes it is broadcast over (its size
 * is 1 there, or it has fewer axes), so broadcasts and strided views are read
 * in place, never copied. Coalescing drops size-1 axes and merges adjacent
 * axes that every operand walks with one constant stride, so a contiguous
 * same-shape call becomes a single flat row.
 *
 * The CPU walks rows: em_bcast_locate once per chunk, then em_bcast_advance
 * after each run of the innermost axis. A CUDA thread maps its own linear
 * index with em_bcast_offset. Header-only and free of libc calls so that the
 * same code compiles for the host and the device. */
#ifndef EMBER_BROADCAST_H
#define EMBER_BROADCAST_H

#include <stdint.h>

#include "ember/core.h"

#if defined(__CUDACC__)
#define EM_BCAST_FN static inline __host__ __device__
#else
#define EM_BCAST_FN static inline
#endif

#define EM_BCAST_MAX_IN 3

typedef struct em_bcast {
    int ndim; /* >= 1 after em_bcast_init */
    int nin;
    int64_t shape[EM_MAX_DIMS];
    int64_t strides[EM_BCAST_MAX_IN][EM_MAX_DIMS]; /* in elements; 0 where broadcast */
} em_bcast;

/* A plan for a contiguous output of shape[ndim] read from nin inputs; a
 * rank-0 output is planned as shape [1]. Every input is then given with
 * em_bcast_input. */
EM_BCAST_FN void em_bcast_init(em_bcast *p, int ndim, const int64_t *shape, int nin) {
    p->nin = nin;
    p->ndim = ndim > 0 ? ndim : 1;
    p->shape[0] = 1;
    for (int d = 0; d < ndim; d++) p->shape[d] = shape[d];
}

/* Input k of shape[ndim] and strides (elements), aligned to the output's
 * trailing axes as NumPy does. Its shape must broadcast to the output's. */
EM_BCAST_FN void em_bcast_input(em_bcast *p, int k, int ndim, const int64_t *shape, const int64_t *strides) {
    int lead = p->ndim - ndim;
    for (int d = 0; d < lead; d++) p->strides[k][d] = 0; /* axes it lacks broadcast */
    for (int d = 0; d < ndim; d++) p->strides[k][lead + d] = shape[d] == 1 ? 0 : strides[d];
}

/* Drops size-1 axes and merges axis d into d-1 where every input satisfies
 * stride[d-1] == stride[d] * shape[d] (the output, contiguous, always does). */
EM_BCAST_FN void em_bcast_coalesce(em_bcast *p) {
    int nd = 0;
    for (int d = 0; d < p->ndim; d++) {
        if (p->shape[d] == 1) continue;
        int merge = nd > 0;
        for (int k = 0; merge && k < p->nin; k++) merge = p->strides[k][nd - 1] == p->strides[k][d] * p->shape[d];
        if (merge) {
            p->shape[nd - 1] *= p->shape[d];
            for (int k = 0; k < p->nin; k++) p->strides[k][nd - 1] = p->strides[k][d];
        } else {
            p->shape[nd] = p->shape[d];
            for (int k = 0; k < p->nin; k++) p->strides[k][nd] = p->strides[k][d];
            nd++;
        }
    }
    if (nd == 0) {
        p->shape[0] = 1;
        for (int k = 0; k < p->nin; k++) p->strides[k][0] = 0;
        nd = 1;
    }
    p->ndim = nd;
}

/* Offset (elements) in input k of the output element at `linear`. */
EM_BCAST_FN int64_t em_bcast_offset(const em_bcast *p, int k, int64_t linear) {
    int64_t off = 0;
    for (int d = p->ndim - 1; d >= 0; d--) {
        off += (linear % p->shape[d]) * p->strides[k][d];
        linear /= p->shape[d];
    }
    return off;
}

/* The multi-index of output element `linear` and every input's offset. */
EM_BCAST_FN void em_bcast_locate(const em_bcast *p, int64_t linear, int64_t *idx, int64_t *off) {
    for (int k = 0; k < p->nin; k++) off[k] = 0;
    for (int d = p->ndim - 1; d >= 0; d--) {
        idx[d] = linear % p->shape[d];
        linear /= p->shape[d];
        for (int k = 0; k < p->nin; k++) off[k] += idx[d] * p->strides[k][d];
    }
}

/* Moves idx/off forward by n elements along the innermost axis, carrying
 * into outer axes when the row ends; n must not pass the end of the row. */
EM_BCAST_FN void em_bcast_advance(const em_bcast *p, int64_t n, int64_t *idx, int64_t *off) {
    int d = p->ndim - 1;
    idx[d] += n;
    for (int k = 0; k < p->nin; k++) off[k] += n * p->strides[k][d];
    while (d > 0 && idx[d] == p->shape[d]) {
        for (int k = 0; k < p->nin; k++) off[k] += p->strides[k][d - 1] - idx[d] * p->strides[k][d];
        idx[d] = 0;
        idx[--d]++;
    }
}

#endif
