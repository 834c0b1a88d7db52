/* Products of bfloat16 and float16 matrices with float32 sums (lib/ops/gemm_narrow.c). Private to
 * lib/ops/: em__gemm (matmul.c) sends the narrow dtypes here. */
#ifndef EMBER_OPS_GEMM_NARROW_H
#define EMBER_OPS_GEMM_NARROW_H

#include <stdbool.h>
#include <stdint.h>

#include "ember/core.h"

/* C (+)= A B as em__gemm, for dtype EM_BF16 or EM_F16: every product summed in float32, C rounded once
 * to the dtype at the end (accumulate: the sum starts from C's value). Out of scratch memory, it reports
 * "matmul: out of memory ..." (matmul is its one caller: convolutions take the narrow dtypes in float32). */
void em__gemm_narrow(em_dtype dtype, int64_t m, int64_t n, int64_t k, const void *a, int64_t rsa, int64_t csa,
                     const void *b, int64_t rsb, int64_t csb, bool accumulate, void *c, int64_t rsc, int64_t csc,
                     bool single_thread);

/* The route em__gemm_narrow takes for dtype now: "avx512_bf16" (VDPBF16PS) or "float32" (widened
 * copies through the float32 GEMM). For tests and benchmarks. */
const char *em__gemm_narrow_route(em_dtype dtype);
/* Sends every narrow product through float32 (true), or back to the best route the CPU has (false):
 * for tests and benchmarks that compare the two. */
void em__gemm_narrow_force_float32(bool on);
/* Whether the CPU and the OS offer AMX's bfloat16 tiles (AMX-BF16). Not used yet: the benchmark
 * reports it, since on such CPUs a tile kernel would be the fast route. */
bool em__cpu_has_amx_bf16(void);

#endif
