/* Runs of bfloat16 and float16 to and from float32: the tile loops of the kernels that read and write the
 * narrow dtypes natively (elementwise ops, reductions, softmax, the optimizer update). They widen a tile of
 * the narrow data into float32 scratch on the stack, run the op's float32 code on it and round the result
 * back, so a pass reads and writes 2 bytes an element instead of the fallback's float32 copies (lib/op.c).
 *
 * The conversions are lib/dtype_convert.h's: widening exact, narrowing to nearest even with subnormals kept.
 * Where the CPU has AVX-512F, runs convert 16 elements an instruction: bfloat16 by the same shift and
 * rounding add in vector instructions, float16 by VCVTPH2PS and VCVTPS2PH (round to nearest even), also
 * used 8 wide where the CPU has F16C but not AVX-512. Elsewhere the software rule's loops (which the
 * compiler vectorizes for bfloat16). The instructions give the software rule's results for every input
 * (test_elementwise sweeps them) but one: widening a float16 signalling NaN quiets it (sets the top payload
 * bit), which no op's result can show, since float32 arithmetic quiets NaNs too. No path flushes
 * subnormals (VCVTNEPS2BF16, which does, is not used). */
#ifndef EMBER_OPS_NARROW_H
#define EMBER_OPS_NARROW_H

#include <stdbool.h>
#include <stdint.h>

#include "../dtype_convert.h"

/* An op row's dtype set (lib/op.h's EM_DT_<set>) split in two: EM_WIDE_<set>(X, ...) runs X over its members
 * that have formulas of their own (dtype_convert.h's lists), EM_NARROWS_<set>(X, ...) over its narrow members,
 * which run through the float32 formulas. */
#define EM_WIDE_BOOL EM_FOR_BOOL
#define EM_WIDE_FLOATS EM_FOR_FLOATS
#define EM_WIDE_NUMERIC EM_FOR_NUMERIC
#define EM_WIDE_ALL EM_FOR_ALL
#define EM_WIDE_FLOATS_NARROW EM_FOR_FLOATS
#define EM_WIDE_NUMERIC_NARROW EM_FOR_NUMERIC
#define EM_WIDE_EVERY EM_FOR_ALL
#define EM_NARROWS_BOOL(X, ...)
#define EM_NARROWS_FLOATS(X, ...)
#define EM_NARROWS_NUMERIC(X, ...)
#define EM_NARROWS_ALL(X, ...)
#define EM_NARROWS_FLOATS_NARROW EM_FOR_NARROW
#define EM_NARROWS_NUMERIC_NARROW EM_FOR_NARROW
#define EM_NARROWS_EVERY EM_FOR_NARROW

/* Elements per tile: 4 KiB of float32 per operand, in L1 beside the tile's narrow data. */
#define EM_NARROW_TILE 1024

#ifdef __CUDACC__
/* The GPU kernels' side (the CUDA plug-in): narrow_io<EM_BF16> and narrow_io<EM_F16> convert one element, by the
 * CPU's rules. */
template <int D> struct narrow_io;
/* An element of D as stored, its 16 bits: a type of its own for the kernels' templates. */
template <int D> struct narrow_elem {
    uint16_t bits;
};
template <> struct narrow_io<EM_BF16> {
    __device__ static float widen(uint16_t h) { return em_bf16_to_f32(h); }
    __device__ static uint16_t round(float f) { return em_bf16_from_f32(f); }
    __device__ static uint16_t round(double v) { return em_convert_bf16(v); }
};
template <> struct narrow_io<EM_F16> {
    __device__ static float widen(uint16_t h) { return em_f16_to_f32(h); }
    __device__ static uint16_t round(float f) { return em_f16_from_f32(f); }
    __device__ static uint16_t round(double v) { return em_convert_f16(v); }
};
#else
/* dst[i] = src[i * stride] widened, for i < n; d is EM_BF16 or EM_F16. */
void em__narrow_widen(em_dtype d, const uint16_t *src, int64_t stride, float *dst, int64_t n);
/* dst[i * stride] = src[i] rounded to d, for i < n. */
void em__narrow_round(em_dtype d, const float *src, uint16_t *dst, int64_t stride, int64_t n);
/* Whether runs of d use vector instructions on this CPU (AVX-512F for both dtypes, else F16C for float16),
 * which the tests compare with the software rule. */
bool em__narrow_hardware(em_dtype d);
/* The software rule on the same runs, for the tests' sweeps. */
void em__narrow_widen_soft(em_dtype d, const uint16_t *src, int64_t stride, float *dst, int64_t n);
void em__narrow_round_soft(em_dtype d, const float *src, uint16_t *dst, int64_t stride, int64_t n);
#endif

#endif
