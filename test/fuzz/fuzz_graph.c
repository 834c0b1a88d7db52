/* em_graph_run of a small traced training step with fuzzed feeds (any
 * placeholder or none, any dtype and shape, NULLs, tensors that are not
 * placeholders) and fetches (graph tensors, foreign tensors, NULL), several
 * runs per input so that plans are made and reused. A run gives results or
 * -1 with a message, never a crash. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A tensor of a fuzzed dtype and shape, values from the input. */
static em_tensor *graph_value(fz *f) {
    em_dtype dt = (em_dtype)(fz_u8(f) % EM_DTYPE_COUNT);
    em_shape s = {.ndim = (int)(fz_u8(f) % 4)};
    for (int d = 0; d < s.ndim; d++) s.dims[d] = fz_u8(f) % 6;
    em_tensor *t = em_zeros(dt, s);
    FZ_CHECK(t != NULL);
    em_tensor *v = em_add_scalar(t, (double)((int)fz_u8(f) % 16 - 8));
    return v ? v : t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz f = {data, size};
    fz_begin();
    em_tensor *x = em_placeholder(EM_F32, EM_SHAPE(-1, 3), "x");
    em_tensor *y = em_placeholder(EM_F32, EM_SHAPE(-1, 1), "y");
    em_tensor *z = em_placeholder(EM_F64, EM_SHAPE(2, -1), "z");
    em_tensor *w = em_get_variable("w", EM_F32, EM_SHAPE(3, 1), EM_INIT_CONST(0.1));
    em_optimizer *opt = em_sgd(0.01);
    FZ_CHECK(x && y && z && w && opt);
    FZ_CHECK(em_trace_begin() == 0);
    em_tape *tape = em_tape_begin(false);
    em_tensor *pred = em_matmul(x, w);
    em_tensor *loss = em_mean(em_square(em_sub(pred, y)), EM_ALL_AXES, false);
    em_tape_stop(tape);
    em_tensor *train = em_minimize_op(opt, tape, loss, 1, &w);
    em_tape_release(tape);
    em_tensor *zz = em_sum(em_exp(z), EM_AXES(1), false);
    em_graph *g = em_trace_end();
    FZ_CHECK(g && pred && loss && train && zz);
    em_tensor *foreign = em_ones(EM_F32, EM_SHAPE(1));
    em_tensor *const feedable[] = {x, y, z, NULL, w, foreign};
    em_tensor *const fetchable[] = {pred, loss, train, zz, foreign, NULL, x, w};

    int runs = 1 + (int)(fz_u8(&f) % 4);
    for (int r = 0; r < runs; r++) {
        em_scope_begin();
        em_feed feeds[5];
        int nfeeds = (int)(fz_u8(&f) % 6);
        for (int i = 0; i < nfeeds; i++) {
            feeds[i].placeholder = feedable[fz_u8(&f) % 6];
            feeds[i].value = fz_u8(&f) % 8 ? graph_value(&f) : NULL;
        }
        em_tensor *fetches[3], *results[3];
        int nfetches = (int)(fz_u8(&f) % 4);
        for (int i = 0; i < nfetches; i++) fetches[i] = fetchable[fz_u8(&f) % 8];
        if (em_graph_run(g, nfeeds, feeds, nfetches, fetches, results) == 0) {
            for (int i = 0; i < nfetches; i++) {
                FZ_CHECK(results[i] != NULL);
                fz_touch(results[i]);
            }
        } else {
            fz_failed_with_message();
        }
        em_scope_end();
    }
    em_graph_release(g);
    em_optimizer_release(opt);
    fz_end();
    return 0;
}
