/* The variables and values in test/data/checkpoint_v1.ckpt and
 * test/data/checkpoint_v2/ (written by tools/gen_checkpoint_fixtures.c with
 * Ember at commit 1b8d21e, before bfloat16 and float16 joined the dtype
 * enum), which test_checkpoint loads with this Ember. Shared by both
 * programs so that the values are written down once. */
#ifndef EMBER_TEST_CHECKPOINT_FIXTURE_H
#define EMBER_TEST_CHECKPOINT_FIXTURE_H

#include <stdint.h>

/* Edge values of each old dtype: -0, a subnormal, the extremes. */
static const float FIXTURE_F32[] = {1.5f, -0.0f, 3.14159274f, 1e-40f, -3.40282347e38f, 0.1f};
static const double FIXTURE_F64[] = {-2.25, 1.0 / 3, 5e-324, 1.7976931348623157e308};
static const int32_t FIXTURE_I32[] = {-3, INT32_MAX, INT32_MIN, 0};
static const int64_t FIXTURE_I64[] = {INT64_MIN, INT64_C(1) << 40, -1};
static const uint8_t FIXTURE_U8[] = {0, 200, 255};
static const uint8_t FIXTURE_BOOL[] = {1, 0, 1, 1};

/* The checkpoint manager's file: prefix, step, its values and the random stream it saved
 * (em_set_seed(FIXTURE_SEED), then FIXTURE_DRAWN uniform float32 numbers drawn). */
#define FIXTURE_PREFIX "ckpt"
#define FIXTURE_STEP 7
#define FIXTURE_EPOCH 2.5
#define FIXTURE_DATA "shard-3"
#define FIXTURE_SEED 42
#define FIXTURE_DRAWN 5

#endif
