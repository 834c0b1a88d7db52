/* Files written for the user, whole or not at all (file.c): checkpoints and
 * their index, .npy arrays, PNG images and plots, Graphviz graphs.
 *
 * A write goes to a locked temporary "<target>.tmp.<pid>" beside the file it
 * replaces, is synced, renamed over it and the directory synced, so a failed
 * or interrupted write (a full disk, a kill) leaves the previous file whole
 * and no temporary behind (a killed writer's is removed by the next write to
 * the same file). The target is the path, or, when the path is a symbolic
 * link, the file its links end at: that file is replaced and the links stay
 * (as a plain fopen would write through them). A target that exists and is
 * not a regular file (a device, a FIFO, a socket, a directory) is refused,
 * never replaced. A replaced file keeps its permission bits. */
#ifndef EMBER_FILE_H
#define EMBER_FILE_H

#include "internal.h"

#include <stdio.h>

typedef struct em__file_out {
    FILE *f;
    int err; /* errno of the first failed write; 0 */
} em__file_out;

/* Writes n bytes to out (nothing once a write has failed). */
void em__file_put(em__file_out *out, const void *p, size_t n);

/* Writes path as above: fill(out, ctx) writes the content with em__file_put
 * (or stdio on out->f; its errors are caught too) and returns 0, or -1 with
 * an error set. 0, or -1 with an error beginning with op. */
int em__write_atomic(const char *op, const char *path, int (*fill)(em__file_out *out, void *ctx), void *ctx);
/* em__write_atomic of size bytes. */
int em__write_file_atomic(const char *op, const char *path, const void *data, size_t size);

/* mkdir -p: dir and its missing parents (0777 less the umask). 0, or errno
 * (ENOTDIR when a part of it exists and is not a directory). */
int em__make_dirs(const char *dir);

/* Removes each regular file in dir whose name `match` accepts and whose
 * writer is gone: a writer holds an exclusive flock() on its temporary file
 * from creation until after the rename, so a file this process can lock is
 * an orphan (its writer was killed). Never touches a file a live writer (in
 * any process, this one included) holds. Best effort: returns how many it
 * removed. */
int em__remove_stale_temps(const char *dir, bool (*match)(const char *name, void *ctx), void *ctx);
/* Whether name is "<base>.tmp.<digits>". */
bool em__is_temp_of(const char *name, const char *base);

/* The whole file at path: malloc()ed, its size in *size. NULL with an error
 * beginning with op. */
unsigned char *em__read_file(const char *op, const char *path, size_t *size);

#endif
