/* Counter-based random numbers (Philox-4x32-10, Salmon et al., SC'11) shared
 * by the CPU kernels and the CUDA backend.
 *
 * A random op draws element i of its output from the block keyed by the seed
 * at counter (stream position + i), so each value depends only on (seed,
 * position): the same seed gives the same numbers on any thread count and on
 * any device. A truncated normal that must redraw uses the third counter word
 * as the attempt number, so redraws stay a pure function of the position too.
 * Header-only and free of libc calls except the float math functions, which
 * CUDA provides on the device. Every op's value is computed here (the
 * em_rng_<op>_* functions at the end), so the CPU kernels (lib/ops/random.c)
 * and the CUDA ones (gpu/random.cu) run the same formula. */
#ifndef EMBER_PHILOX_H
#define EMBER_PHILOX_H

#include <math.h>
#include <stdint.h>

#include "em_hd.h"

#define EM_PHILOX_FN EM_HD static inline

typedef struct em_philox4 {
    uint32_t v[4];
} em_philox4;

EM_PHILOX_FN uint32_t em_philox_mulhilo(uint32_t a, uint32_t b, uint32_t *lo) {
    uint64_t p = (uint64_t)a * b;
    *lo = (uint32_t)p;
    return (uint32_t)(p >> 32);
}

/* The Philox-4x32 bijection with 10 rounds of counter c under key k. */
EM_PHILOX_FN em_philox4 em_philox4x32_10(em_philox4 c, uint64_t key) {
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int r = 0; r < 10; r++) {
        uint32_t lo0, lo1;
        uint32_t hi0 = em_philox_mulhilo(0xD2511F53u, c.v[0], &lo0);
        uint32_t hi1 = em_philox_mulhilo(0xCD9E8D57u, c.v[2], &lo1);
        em_philox4 n = {{hi1 ^ c.v[1] ^ k0, lo1, hi0 ^ c.v[3] ^ k1, lo0}};
        c = n;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return c;
}

/* The block of stream position `pos` (attempt 0 for all but redraws). */
EM_PHILOX_FN em_philox4 em_philox_block(uint64_t seed, uint64_t pos, uint32_t attempt) {
    em_philox4 c = {{(uint32_t)pos, (uint32_t)(pos >> 32), attempt, 0}};
    return em_philox4x32_10(c, seed);
}

/* 24 or 53 random bits as a float in [0, 1), or (0, 1] for the _open forms
 * (Box-Muller takes a logarithm). */
EM_PHILOX_FN float em_philox_f32(uint32_t x) { return (float)(x >> 8) * 0x1p-24f; }
EM_PHILOX_FN float em_philox_f32_open(uint32_t x) { return (float)((x >> 8) + 1) * 0x1p-24f; }
EM_PHILOX_FN double em_philox_f64(uint32_t hi, uint32_t lo) {
    return (double)(((uint64_t)hi << 21) ^ (lo >> 11)) * 0x1p-53;
}
EM_PHILOX_FN double em_philox_f64_open(uint32_t hi, uint32_t lo) {
    return (double)((((uint64_t)hi << 21) ^ (lo >> 11)) + 1) * 0x1p-53;
}

/* ---- one value per stream position ---- */

/* float32 uniforms use all four words of a block: position p is word p % 4
 * of block p / 4, drawn in its own domain of the third counter word so that
 * these blocks never coincide with the one-block-per-position draws. */
#define EM_PHILOX_LANES 0x4C414E45u
EM_PHILOX_FN float em_rng_uniform_f32(uint64_t seed, uint64_t pos) {
    return em_philox_f32(em_philox_block(seed, pos >> 2, EM_PHILOX_LANES).v[pos & 3]);
}
EM_PHILOX_FN double em_rng_uniform_f64(uint64_t seed, uint64_t pos) {
    em_philox4 b = em_philox_block(seed, pos, 0);
    return em_philox_f64(b.v[0], b.v[1]);
}

/* Box-Muller, the cosine branch. */
EM_PHILOX_FN float em_rng_normal_f32(uint64_t seed, uint64_t pos, uint32_t attempt) {
    em_philox4 b = em_philox_block(seed, pos, attempt);
    float r = sqrtf(-2.0f * logf(em_philox_f32_open(b.v[0])));
    return r * cosf(6.28318530717958648f * em_philox_f32(b.v[1]));
}
EM_PHILOX_FN double em_rng_normal_f64(uint64_t seed, uint64_t pos, uint32_t attempt) {
    em_philox4 b = em_philox_block(seed, pos, attempt);
    double r = sqrt(-2.0 * log(em_philox_f64_open(b.v[0], b.v[1])));
    return r * cos(6.28318530717958648 * em_philox_f64(b.v[2], b.v[3]));
}

/* A standard normal redrawn (attempt 1, 2, ...) while beyond two standard
 * deviations, as TensorFlow's truncated_normal. */
EM_PHILOX_FN float em_rng_truncated_f32(uint64_t seed, uint64_t pos) {
    float z = em_rng_normal_f32(seed, pos, 0);
    for (uint32_t a = 1; fabsf(z) > 2.0f; a++) z = em_rng_normal_f32(seed, pos, a);
    return z;
}
EM_PHILOX_FN double em_rng_truncated_f64(uint64_t seed, uint64_t pos) {
    double z = em_rng_normal_f64(seed, pos, 0);
    for (uint32_t a = 1; fabs(z) > 2.0; a++) z = em_rng_normal_f64(seed, pos, a);
    return z;
}

/* ---- the ops' values ---- */

/* a + b * z with the product rounded before the sum (em_mul_rn), so that
 * uniform draws match bit for bit on the CPU and the GPU. */
EM_PHILOX_FN float em_rng_affine_f32(float a, float b, float z) { return a + em_mul_rn_f32(b, z); }
EM_PHILOX_FN double em_rng_affine_f64(double a, double b, double z) { return a + em_mul_rn_f64(b, z); }

/* Element `pos` of each op's output, from the op's f[0] and f[1] in the
 * output's type. float32 uniforms take lo and the width hi - lo (rounded from
 * double), and are drawn four to a Philox block (em_rng_uniform_f32): a
 * kernel that reads whole blocks turns each word into a value with
 * em_rng_random_uniform_lane_f32. */
EM_PHILOX_FN float em_rng_random_normal_f32(uint64_t seed, uint64_t pos, float mean, float stddev) {
    return em_rng_affine_f32(mean, stddev, em_rng_normal_f32(seed, pos, 0));
}
EM_PHILOX_FN double em_rng_random_normal_f64(uint64_t seed, uint64_t pos, double mean, double stddev) {
    return em_rng_affine_f64(mean, stddev, em_rng_normal_f64(seed, pos, 0));
}
EM_PHILOX_FN float em_rng_truncated_normal_f32(uint64_t seed, uint64_t pos, float mean, float stddev) {
    return em_rng_affine_f32(mean, stddev, em_rng_truncated_f32(seed, pos));
}
EM_PHILOX_FN double em_rng_truncated_normal_f64(uint64_t seed, uint64_t pos, double mean, double stddev) {
    return em_rng_affine_f64(mean, stddev, em_rng_truncated_f64(seed, pos));
}
EM_PHILOX_FN double em_rng_random_uniform_f64(uint64_t seed, uint64_t pos, double lo, double hi) {
    return em_rng_affine_f64(lo, hi - lo, em_rng_uniform_f64(seed, pos));
}
EM_PHILOX_FN float em_rng_random_uniform_lane_f32(float lo, float width, uint32_t word) {
    return em_rng_affine_f32(lo, width, em_philox_f32(word));
}
EM_PHILOX_FN float em_rng_random_uniform_f32(uint64_t seed, uint64_t pos, float lo, float width) {
    return em_rng_affine_f32(lo, width, em_rng_uniform_f32(seed, pos));
}

/* A class drawn from softmax(logits[0..n)) at stream position pos: the first
 * class whose running sum of exp(logit - max), in double, passes u times the
 * total for a uniform u. A class of logit -Inf is never drawn; a row with a
 * NaN or without a finite logit gives n - 1. */
#define EM_RNG_CATEGORICAL(sfx, T)                                                                                     \
    EM_PHILOX_FN int64_t em_rng_categorical_##sfx(uint64_t seed, uint64_t pos, const T *logits, int64_t n) {            \
        double m = -INFINITY, total = 0, run = 0;                                                                      \
        for (int64_t k = 0; k < n; k++)                                                                                \
            if ((double)logits[k] > m) m = (double)logits[k];                                                          \
        for (int64_t k = 0; k < n; k++) total += exp((double)logits[k] - m);                                           \
        double u = em_rng_uniform_f64(seed, pos) * total;                                                              \
        for (int64_t k = 0; k < n - 1; k++) {                                                                          \
            run += exp((double)logits[k] - m);                                                                         \
            if (u < run) return k;                                                                                     \
        }                                                                                                              \
        return n - 1;                                                                                                  \
    }
EM_RNG_CATEGORICAL(f32, float)
EM_RNG_CATEGORICAL(f64, double)

#endif
