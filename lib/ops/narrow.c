/* Runs of bfloat16 and float16 to and from float32 (narrow.h). */
#include "narrow.h"

#include "../internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#define NARROW_F16C 1
#define PREFETCH_BYTES (4 * EM_NARROW_TILE)
#endif

EM_HOT void em__narrow_widen_soft(em_dtype d, const uint16_t *restrict src, int64_t stride, float *restrict dst,
                                  int64_t n) {
    if (d == EM_BF16) {
        if (stride == 1) _Pragma("omp simd") for (int64_t i = 0; i < n; i++) dst[i] = em_bf16_to_f32(src[i]);
        else for (int64_t i = 0; i < n; i++) dst[i] = em_bf16_to_f32(src[i * stride]);
    } else {
        if (stride == 1) _Pragma("omp simd") for (int64_t i = 0; i < n; i++) dst[i] = em_f16_to_f32(src[i]);
        else for (int64_t i = 0; i < n; i++) dst[i] = em_f16_to_f32(src[i * stride]);
    }
}

EM_HOT void em__narrow_round_soft(em_dtype d, const float *restrict src, uint16_t *restrict dst, int64_t stride,
                                  int64_t n) {
    if (d == EM_BF16) {
        if (stride == 1) _Pragma("omp simd") for (int64_t i = 0; i < n; i++) dst[i] = em_bf16_from_f32(src[i]);
        else for (int64_t i = 0; i < n; i++) dst[i * stride] = em_bf16_from_f32(src[i]);
    } else {
        if (stride == 1) _Pragma("omp simd") for (int64_t i = 0; i < n; i++) dst[i] = em_f16_from_f32(src[i]);
        else for (int64_t i = 0; i < n; i++) dst[i * stride] = em_f16_from_f32(src[i]);
    }
}

#ifdef NARROW_F16C
__attribute__((target("avx,f16c"))) static void f16c_widen(const uint16_t *restrict src, float *restrict dst,
                                                           int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(src + i))));
    for (; i < n; i++) dst[i] = em_f16_to_f32(src[i]);
}

__attribute__((target("avx,f16c"))) static void f16c_round(const float *restrict src, uint16_t *restrict dst,
                                                           int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(void *)(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < n; i++) dst[i] = em_f16_from_f32(src[i]);
}

/* AVX-512, 16 elements an instruction: float16 by its conversions (as F16C's), bfloat16 by the software
 * rule's shift and round-to-nearest-even add spelled in vector instructions. */
__attribute__((target("avx512f"))) static void avx512_widen(em_dtype d, const uint16_t *restrict src,
                                                            float *restrict dst, int64_t n) {
    int64_t i = 0;
    /* a run is read a tile at a time between other loops, which the hardware prefetcher follows poorly from
     * memory: ask for the tile after next */
    if (d == EM_BF16)
        for (; i + 16 <= n; i += 16) {
            _mm_prefetch((const char *)(src + i) + PREFETCH_BYTES, _MM_HINT_T0);
            __m512i h = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(src + i)));
            _mm512_storeu_si512(dst + i, _mm512_slli_epi32(h, 16));
        }
    else
        for (; i + 16 <= n; i += 16) {
            _mm_prefetch((const char *)(src + i) + PREFETCH_BYTES, _MM_HINT_T0);
            _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(src + i))));
        }
    for (; i < n; i++) dst[i] = d == EM_BF16 ? em_bf16_to_f32(src[i]) : em_f16_to_f32(src[i]);
}

__attribute__((target("avx512f"))) static void avx512_round(em_dtype d, const float *restrict src,
                                                            uint16_t *restrict dst, int64_t n) {
    int64_t i = 0;
    if (d == EM_BF16) {
        const __m512i one = _mm512_set1_epi32(1), half = _mm512_set1_epi32(0x7fff);
        const __m512i magnitude = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
        const __m512i quiet = _mm512_set1_epi32(0x00400000);
        for (; i + 16 <= n; i += 16) {
            __m512i u = _mm512_loadu_si512(src + i);
            __m512i r = _mm512_add_epi32(_mm512_add_epi32(u, half), _mm512_and_si512(_mm512_srli_epi32(u, 16), one));
            __mmask16 nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(u, magnitude), inf);
            r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(u, quiet)); /* NaN: quieted, not rounded */
            _mm256_storeu_si256((__m256i *)(void *)(dst + i), _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16)));
        }
    } else {
        for (; i + 16 <= n; i += 16)
            _mm256_storeu_si256((__m256i *)(void *)(dst + i),
                                _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    for (; i < n; i++) dst[i] = d == EM_BF16 ? em_bf16_from_f32(src[i]) : em_f16_from_f32(src[i]);
}
#endif

/* 2: AVX-512F, 1: F16C (float16 only), 0: neither. */
static int vector_level(void) {
#ifdef NARROW_F16C
    static int level = -1; /* a benign race: every thread stores the same answer */
    int l = __atomic_load_n(&level, __ATOMIC_RELAXED);
    if (l < 0) {
        __builtin_cpu_init();
        unsigned a, b, c, d; /* F16C by cpuid: clang's __builtin_cpu_supports does not know "f16c" */
        bool f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
        l = __builtin_cpu_supports("avx512f") ? 2 : __builtin_cpu_supports("avx") && f16c;
        __atomic_store_n(&level, l, __ATOMIC_RELAXED);
    }
    return l;
#else
    return 0;
#endif
}

bool em__narrow_hardware(em_dtype d) { return vector_level() > (d == EM_BF16); }

void em__narrow_widen(em_dtype d, const uint16_t *src, int64_t stride, float *dst, int64_t n) {
#ifdef NARROW_F16C
    const int l = stride == 1 ? vector_level() : 0;
    if (l == 2) return avx512_widen(d, src, dst, n);
    if (l == 1 && d == EM_F16) return f16c_widen(src, dst, n);
#endif
    em__narrow_widen_soft(d, src, stride, dst, n);
}

void em__narrow_round(em_dtype d, const float *src, uint16_t *dst, int64_t stride, int64_t n) {
#ifdef NARROW_F16C
    const int l = stride == 1 ? vector_level() : 0;
    if (l == 2) return avx512_round(d, src, dst, n);
    if (l == 1 && d == EM_F16) return f16c_round(src, dst, n);
#endif
    em__narrow_round_soft(d, src, dst, stride, n);
}
