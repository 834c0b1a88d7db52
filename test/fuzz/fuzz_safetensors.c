/* em_load_safetensors on arbitrary bytes: every tensor it gives saves and
 * loads back equal, or the load fails with a message. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    int n;
    const char *names[16];
    em_tensor *t[16];
} fz_loaded;

static int fz_st_tensor(void *ctx, const char *name, em_tensor *t) {
    fz_loaded *l = ctx;
    fz_touch(t);
    if (l->n == 16) return 0;
    l->names[l->n] = strdup(name);
    l->t[l->n++] = t;
    return 0;
}

static int fz_st_meta(void *ctx, const char *key, const char *value) {
    (void)ctx;
    FZ_CHECK(key && value);
    return 0;
}

static int fz_st_same(void *ctx, const char *name, em_tensor *t) {
    fz_loaded *l = ctx;
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->names[i], name)) {
            size_t bytes = (size_t)em_numel(t) * em_dtype_size(em_tensor_dtype(t));
            FZ_CHECK(em_tensor_dtype(t) == em_tensor_dtype(l->t[i]));
            FZ_CHECK(em_shape_equal(em_tensor_shape(t), em_tensor_shape(l->t[i])));
            FZ_CHECK(bytes == 0 || memcmp(em_data(t), em_data(l->t[i]), bytes) == 0);
        }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_begin();
    fz_loaded l = {0};
    if (em_load_safetensors(fz_file("safetensors", data, size), fz_st_tensor, fz_st_meta, &l) == 0) {
        static char again[160];
        snprintf(again, sizeof again, "%s.again", fz_file("safetensors", data, size));
        FZ_CHECK(em_save_safetensors(again, l.n, l.names, l.t, 0, NULL) == 0);
        FZ_CHECK(em_load_safetensors(again, fz_st_same, NULL, &l) == 0);
        unlink(again);
    } else {
        fz_failed_with_message();
    }
    for (int i = 0; i < l.n; i++) free((char *)l.names[i]);
    fz_end();
    return 0;
}
