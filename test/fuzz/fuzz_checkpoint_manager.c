/* The checkpoint manager on arbitrary files. A good checkpoint ck-3 is saved
 * first; then the input becomes the index (ck.index) and a newer checkpoint
 * (ck-5), and the manager restores the newest usable one, says what it
 * skipped, reads the values and saves again.
 *
 * Input: byte 0 holds flags (bit 0: fix up ck-5's CRC so that mutations
 * reach past the checksum; bit 1: no index at all), bytes 1-2 the index's
 * length (little-endian), then the index, then ck-5. A restore that fails
 * must say why and leave the variables as they were; one that succeeds must
 * name its checkpoint; the save after it must succeed and leave an index
 * that names it. */
#include "fuzz.h"

#include <dirent.h>
#include <sys/stat.h>
#include <zlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fzm_write(const char *dir, const char *name, const uint8_t *data, size_t size) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    FZ_CHECK(f != NULL);
    FZ_CHECK(fwrite(data, 1, size, f) == size);
    FZ_CHECK(fclose(f) == 0);
}

static void fzm_clear(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    char p[512];
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    fz_begin();
    unsigned flags = data[0];
    size_t ilen = (size_t)data[1] | (size_t)data[2] << 8;
    data += 3, size -= 3;
    if (ilen > size) ilen = size;
    char dir[128];
    snprintf(dir, sizeof dir, "%s/ember-fuzz-manager-%ld", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp",
             (long)getpid());
    mkdir(dir, 0700);
    fzm_clear(dir);

    em_tensor *a = em_get_variable("a", EM_F32, EM_SHAPE(2, 3), EM_INIT_CONST(1.5));
    FZ_CHECK(a != NULL);
    em_checkpoint_manager *m = em_checkpoint_manager_open(dir, "ck", 3);
    FZ_CHECK(m != NULL);
    FZ_CHECK(em_checkpoint_manager_set_value(m, "epoch", 2) == 0);
    FZ_CHECK(em_checkpoint_manager_save(m, 3) == 0);

    char index[256];
    snprintf(index, sizeof index, "%s/ck.index", dir);
    if (flags & 2) FZ_CHECK(unlink(index) == 0);
    else fzm_write(dir, "ck.index", data, ilen);
    uint8_t *ck = malloc(size - ilen + 1);
    FZ_CHECK(ck != NULL);
    memcpy(ck, data + ilen, size - ilen);
    if ((flags & 1) && size - ilen >= 4) {
        uint32_t crc = (uint32_t)crc32(crc32(0, NULL, 0), ck, (uInt)(size - ilen - 4));
        memcpy(ck + size - ilen - 4, &crc, 4);
    }
    fzm_write(dir, "ck-5", ck, size - ilen);
    free(ck);

    em_tensor *before = em_copy(a);
    FZ_CHECK(before != NULL);
    int rc = em_checkpoint_manager_restore_latest(m);
    FZ_CHECK(rc == -1 || rc == 1); /* ck-3 is always there */
    if (rc < 0) {
        fz_failed_with_message();
        FZ_CHECK(memcmp(em_data(a), em_data(before), 6 * sizeof(float)) == 0);
    } else {
        FZ_CHECK(em_last_error() == NULL);
        fz_touch(a);
        const char *why = em_checkpoint_manager_last_fallback(m);
        if (why) FZ_CHECK(why[0] != '\0');
        double v;
        const char *s;
        if (em_checkpoint_manager_get_value(m, "epoch", &v) < 0) fz_failed_with_message();
        int got = em_checkpoint_manager_get_string(m, "epoch", &s);
        if (got < 0) fz_failed_with_message();
        else if (got == 1) FZ_CHECK(strlen(s) <= (1u << 20));
        const char *latest = em_checkpoint_manager_latest(m);
        FZ_CHECK(latest != NULL && strstr(latest, dir) == latest);
    }
    /* Saving over whatever the index was gives a good index naming the new checkpoint. */
    FZ_CHECK(em_checkpoint_manager_save(m, 7) == 0);
    char want[256];
    snprintf(want, sizeof want, "%s/ck-7", dir);
    const char *latest = em_checkpoint_manager_latest(m);
    FZ_CHECK(latest != NULL && strcmp(latest, want) == 0);
    FZ_CHECK(em_checkpoint_manager_last_fallback(m) == NULL);
    em_checkpoint_manager_close(m);
    fzm_clear(dir);
    rmdir(dir);
    fz_end();
    return 0;
}
