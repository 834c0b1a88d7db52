/* Runs of bfloat16 and float16 to and from float32 (narrow.h). */
#include "narrow.h"

#include "../internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define NARROW_F16C 1
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
#endif

bool em__narrow_f16_hardware(void) {
#ifdef NARROW_F16C
    static int has = -1; /* a benign race: every thread stores the same answer */
    int h = __atomic_load_n(&has, __ATOMIC_RELAXED);
    if (h < 0) {
        __builtin_cpu_init();
        h = __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c");
        __atomic_store_n(&has, h, __ATOMIC_RELAXED);
    }
    return h;
#else
    return false;
#endif
}

void em__narrow_widen(em_dtype d, const uint16_t *src, int64_t stride, float *dst, int64_t n) {
#ifdef NARROW_F16C
    if (d == EM_F16 && stride == 1 && em__narrow_f16_hardware()) {
        f16c_widen(src, dst, n);
        return;
    }
#endif
    em__narrow_widen_soft(d, src, stride, dst, n);
}

void em__narrow_round(em_dtype d, const float *src, uint16_t *dst, int64_t stride, int64_t n) {
#ifdef NARROW_F16C
    if (d == EM_F16 && stride == 1 && em__narrow_f16_hardware()) {
        f16c_round(src, dst, n);
        return;
    }
#endif
    em__narrow_round_soft(d, src, dst, stride, n);
}
