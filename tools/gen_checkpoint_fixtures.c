/* Writes the checkpoint fixtures that test_checkpoint loads: a checkpoint of
 * em_checkpoint_save (format 1) and one of the checkpoint manager (format 2,
 * with its index), holding a variable of every dtype Ember had before
 * bfloat16 and float16, with the values of test/data/checkpoint_fixture.h.
 *
 * The committed files were written by Ember at commit 1b8d21e (the last
 * before EM_BF16 and EM_F16), built in a separate worktree:
 *
 *   git worktree add /tmp/old 1b8d21e && make -C /tmp/old -j2 build/libember.a
 *   cc -std=c11 -D_GNU_SOURCE -fopenmp -I/tmp/old/include -Itest/data tools/gen_checkpoint_fixtures.c \
 *      /tmp/old/build/libember.a -lblis -lpng -lz -lm -lpthread -ldl -o /tmp/gen
 *   /tmp/gen test/data
 *
 * It is kept to say what the files hold; writing them again with a newer
 * Ember would defeat their purpose. */
#include <ember.h>

#include "checkpoint_fixture.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define N(a) (int64_t)(sizeof(a) / sizeof((a)[0]))

static int fail(const char *what) {
    fprintf(stderr, "gen_checkpoint_fixtures: %s: %s\n", what, em_last_error() ? em_last_error() : "failed");
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR (writes DIR/checkpoint_v1.ckpt and DIR/checkpoint_v2/)\n", argv[0]);
        return 2;
    }
    em_set_seed(FIXTURE_SEED);
    em_variable_scope_begin("net", EM_REUSE_FALSE);
    em_get_variable("f32", EM_F32, EM_SHAPE(2, 3), EM_INIT_FROM(em_tensor_from(EM_F32, EM_SHAPE(2, 3), FIXTURE_F32)));
    em_variable_scope_end();
    em_get_variable("f64", EM_F64, EM_SHAPE(N(FIXTURE_F64)),
                    EM_INIT_FROM(em_tensor_from(EM_F64, EM_SHAPE(N(FIXTURE_F64)), FIXTURE_F64)));
    em_get_variable("i32", EM_I32, EM_SHAPE(2, 2), EM_INIT_FROM(em_tensor_from(EM_I32, EM_SHAPE(2, 2), FIXTURE_I32)));
    em_get_variable("i64", EM_I64, EM_SHAPE(N(FIXTURE_I64)),
                    EM_INIT_FROM(em_tensor_from(EM_I64, EM_SHAPE(N(FIXTURE_I64)), FIXTURE_I64)));
    em_get_variable("u8", EM_U8, EM_SHAPE(N(FIXTURE_U8)),
                    EM_INIT_FROM(em_tensor_from(EM_U8, EM_SHAPE(N(FIXTURE_U8)), FIXTURE_U8)));
    em_get_variable("flag", EM_BOOL, EM_SHAPE(2, 1, 2),
                    EM_INIT_FROM(em_tensor_from(EM_BOOL, EM_SHAPE(2, 1, 2), FIXTURE_BOOL)));
    em_get_variable("empty", EM_F32, EM_SHAPE(0, 5), EM_INIT_CONST(0));
    em_get_variable("scalar", EM_F64, EM_SHAPE0, EM_INIT_CONST(-7.5));
    if (em_last_error()) return fail("variables");

    char path[4096];
    snprintf(path, sizeof path, "%s/checkpoint_v1.ckpt", argv[1]);
    if (em_checkpoint_save(path)) return fail(path);

    snprintf(path, sizeof path, "%s/checkpoint_v2", argv[1]);
    em_checkpoint_manager *mgr = em_checkpoint_manager_open(path, FIXTURE_PREFIX, 0);
    if (!mgr) return fail(path);
    em_random_uniform(EM_F32, EM_SHAPE(FIXTURE_DRAWN), 0, 1); /* the stream moves on */
    if (em_checkpoint_manager_set_value(mgr, "epoch", FIXTURE_EPOCH) ||
        em_checkpoint_manager_set_string(mgr, "data", FIXTURE_DATA) || em_checkpoint_manager_save(mgr, FIXTURE_STEP))
        return fail(path);
    em_checkpoint_manager_close(mgr);
    em_shutdown();
    return 0;
}
