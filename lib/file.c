/* Files written for the user, whole or not at all (see file.h). */
#include "file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- temporary files ----
 *
 * A writer creates "<path>.tmp.<pid>" and holds an exclusive flock() on it
 * until it has been renamed over path. A writer killed on the way (SIGKILL,
 * a crash, a power cut) leaves the file unlocked, since the lock dies with
 * its open file; the next write to the same path removes it. Locks rather
 * than process ids tell the dead from the living: ids are reused, and a
 * process in another PID namespace sees other ids. flock() locks belong to
 * an open file, so they also conflict between two opens in one process. */

bool em__is_temp_of(const char *name, const char *base) {
    size_t b = strlen(base);
    if (strncmp(name, base, b) != 0 || strncmp(name + b, ".tmp.", 5) != 0) return false;
    const char *d = name + b + 5;
    if (!*d) return false;
    for (; *d; d++)
        if (*d < '0' || *d > '9') return false;
    return true;
}

int em__remove_stale_temps(const char *dir, bool (*match)(const char *name, void *ctx), void *ctx) {
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return 0;
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return 0;
    }
    int removed = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!match(e->d_name, ctx)) continue;
        int fd = openat(dfd, e->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) continue;
        struct stat held, named;
        /* Only a regular file that no writer holds, and that is still the
         * file of that name once locked (a writer may have renamed it, and
         * another taken the name, since readdir). */
        if (fstat(fd, &held) == 0 && S_ISREG(held.st_mode) && flock(fd, LOCK_EX | LOCK_NB) == 0 &&
            fstatat(dfd, e->d_name, &named, AT_SYMLINK_NOFOLLOW) == 0 && named.st_dev == held.st_dev &&
            named.st_ino == held.st_ino && unlinkat(dfd, e->d_name, 0) == 0)
            removed++;
        close(fd);
    }
    closedir(d);
    return removed;
}

static bool temp_of_base(const char *name, void *base) { return em__is_temp_of(name, base); }

/* dirname and basename of path, in one allocation: *dir and *base point into it. */
static char *split_path(const char *path, const char **dir, const char **base) {
    size_t n = strlen(path);
    char *c = malloc(2 * n + 4);
    if (!c) return NULL;
    const char *slash = strrchr(path, '/');
    char *b = c + n + 2;
    if (!slash) {
        strcpy(c, ".");
        strcpy(b, path);
    } else {
        size_t k = (size_t)(slash - path);
        memcpy(c, path, k ? k : 1);
        c[k ? k : 1] = '\0';
        strcpy(b, slash + 1);
    }
    *dir = c;
    *base = b;
    return c;
}

/* Removes the stale temporaries of path, then creates its own, locked
 * ("<path>.tmp.<pid>", returned in *tmp), with permission bits `mode`. The
 * file is created exclusively and checked, once locked, to be still the one
 * of that name: a concurrent cleaner may have taken it for stale between its
 * creation and the lock. fd, or -1 with an error. */
static int create_locked_temp(const char *op, const char *path, mode_t mode, char **tmp) {
    const char *dir, *base;
    char *parts = split_path(path, &dir, &base);
    size_t len = strlen(path) + 32;
    *tmp = malloc(len);
    if (!parts || !*tmp) {
        free(parts);
        free(*tmp);
        *tmp = NULL;
        em__error("%s: out of memory", op);
        return -1;
    }
    em__remove_stale_temps(dir, temp_of_base, (void *)base);
    free(parts);
    snprintf(*tmp, len, "%s.tmp.%ld", path, (long)getpid());
    int attempt;
    for (attempt = 0; attempt < 8; attempt++) {
        int fd = open(*tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0) {
            em__error("%s: cannot create %s: %s", op, *tmp, strerror(errno));
            break;
        }
        /* A cleaner may hold the lock for a moment: wait for it. Where the
         * file system has no flock(), cleaners cannot lock either, so they
         * never remove a live writer's file. */
        int locked = flock(fd, LOCK_EX);
        struct stat held, named;
        if (locked == 0 && (fstat(fd, &held) || stat(*tmp, &named) || held.st_dev != named.st_dev ||
                            held.st_ino != named.st_ino)) {
            close(fd); /* taken for stale and removed: make it again */
            continue;
        }
        /* The replaced file's permissions (a private file stays private);
         * a new file gets 0666 less the umask, as fopen gives. */
        if (mode != (mode_t)-1 && fchmod(fd, mode)) {
            em__error("%s: cannot set the permissions of %s: %s", op, *tmp, strerror(errno));
            close(fd);
            unlink(*tmp);
            break;
        }
        return fd;
    }
    if (attempt == 8) em__error("%s: cannot create %s: it kept being removed", op, *tmp);
    free(*tmp);
    *tmp = NULL;
    return -1;
}

static const char *file_kind(mode_t m) {
    return S_ISDIR(m) ? "a directory" : S_ISCHR(m) ? "a character device" : S_ISBLK(m) ? "a block device"
         : S_ISFIFO(m) ? "a FIFO" : S_ISSOCK(m) ? "a socket" : "not a regular file";
}

/* The file a write to path replaces: path, or the end of its chain of
 * symbolic links (which need not exist yet). NEW string; *mode gets the
 * permission bits of an existing target, (mode_t)-1 for a new one. NULL with
 * an error when the target exists and is not a regular file, or the links
 * loop. */
static char *write_target(const char *op, const char *path, mode_t *mode) {
    char *p = strdup(path);
    char link[PATH_MAX];
    *mode = (mode_t)-1;
    for (int hops = 0; p; hops++) {
        struct stat st;
        if (lstat(p, &st)) return p; /* a new file (or a path the temporary's creation will report) */
        if (S_ISREG(st.st_mode)) {
            *mode = st.st_mode & 0777;
            return p;
        }
        if (!S_ISLNK(st.st_mode)) {
            if (strcmp(p, path))
                em__error("%s: %s is a symbolic link to %s, which is %s: only a regular file is replaced", op, path, p,
                          file_kind(st.st_mode));
            else em__error("%s: %s is %s: only a regular file is replaced", op, path, file_kind(st.st_mode));
            break;
        }
        ssize_t n = hops < 40 ? readlink(p, link, sizeof link - 1) : -1;
        if (n < 0) {
            em__error("%s: cannot follow the symbolic link %s: %s", op, p, hops < 40 ? strerror(errno) : strerror(ELOOP));
            break;
        }
        link[n] = '\0';
        /* A relative link is relative to the directory holding it. */
        const char *slash = strrchr(p, '/');
        size_t keep = link[0] == '/' || !slash ? 0 : (size_t)(slash - p) + 1;
        char *next = malloc(keep + (size_t)n + 1);
        if (next) {
            memcpy(next, p, keep);
            memcpy(next + keep, link, (size_t)n + 1);
        }
        free(p);
        p = next;
    }
    if (!p && !em_last_error()) em__error("%s: out of memory", op);
    free(p);
    return NULL;
}

/* ---- writing ---- */

void em__file_put(em__file_out *out, const void *p, size_t n) {
    if (!out->err && n && fwrite(p, 1, n, out->f) != n) out->err = errno ? errno : EIO;
}

static int sync_dir(const char *path) {
    char *copy = strdup(path);
    if (!copy) return ENOMEM;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (fd < 0) return errno;
    int rc = fsync(fd) ? errno : 0;
    close(fd);
    return rc == EINVAL ? 0 : rc; /* some file systems cannot sync a directory */
}

int em__write_atomic(const char *op, const char *path, int (*fill)(em__file_out *out, void *ctx), void *ctx) {
    if (!path || !*path) {
        em__error("%s: the path is %s", op, path ? "empty" : "NULL");
        return -1;
    }
    mode_t mode;
    char *target = write_target(op, path, &mode);
    if (!target) return -1;
    char *tmp;
    int fd = create_locked_temp(op, target, mode, &tmp);
    if (fd < 0) {
        free(target);
        return -1;
    }
    int lock = dup(fd); /* keeps the lock past fclose, until after the rename */
    em__file_out out = {fdopen(fd, "wb"), 0};
    if (!out.f || lock < 0) {
        em__error("%s: cannot write %s: %s", op, tmp, strerror(errno));
        if (out.f) fclose(out.f);
        else close(fd);
        if (lock >= 0) close(lock);
        unlink(tmp);
        free(tmp);
        free(target);
        return -1;
    }
    errno = 0;
    int rc = fill(&out, ctx);
    if (!out.err && ferror(out.f)) out.err = errno ? errno : EIO; /* a fill that wrote with stdio */
    if (!out.err && fflush(out.f)) out.err = errno;
    if (!out.err && fsync(fileno(out.f))) out.err = errno;
    if (fclose(out.f) && !out.err) out.err = errno;
    if (!rc && !out.err && rename(tmp, target)) {
        em__error("%s: cannot rename %s to %s: %s", op, tmp, target, strerror(errno));
        rc = -1;
    } else if (!rc && out.err) {
        em__error("%s: writing %s failed: %s (%s is unchanged)", op, tmp, strerror(out.err), target);
        rc = -1;
    }
    if (rc) unlink(tmp);
    close(lock);
    free(tmp);
    int err = rc ? 0 : sync_dir(target);
    if (err) {
        em__error("%s: %s was written but its directory could not be synced: %s", op, target, strerror(err));
        rc = -1;
    }
    free(target);
    return rc;
}

typedef struct {
    const void *data;
    size_t size;
} bytes_ctx;

static int fill_bytes(em__file_out *out, void *ctx) {
    bytes_ctx *b = ctx;
    em__file_put(out, b->data, b->size);
    return 0;
}

int em__write_file_atomic(const char *op, const char *path, const void *data, size_t size) {
    return em__write_atomic(op, path, fill_bytes, &(bytes_ctx){data, size});
}

int em__make_dirs(const char *dir) {
    char *p = strdup(dir);
    if (!p) return ENOMEM;
    int err = 0;
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s) continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0777) && errno != EEXIST) err = errno;
        *s = c;
        if (!c || err) break;
    }
    struct stat st;
    if (!err && stat(dir, &st)) err = errno;
    else if (!err && !S_ISDIR(st.st_mode)) err = ENOTDIR;
    free(p);
    return err;
}

/* ---- reading ---- */

unsigned char *em__read_file(const char *op, const char *path, size_t *size) {
    if (!path) {
        em__error("%s: path is NULL", op);
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        em__error("%s: cannot open %s: %s", op, path, strerror(errno));
        return NULL;
    }
    struct stat st;
    unsigned char *buf = NULL;
    if (fstat(fileno(f), &st) == 0 && (buf = malloc(st.st_size ? (size_t)st.st_size : 1)) &&
        fread(buf, 1, (size_t)st.st_size, f) == (size_t)st.st_size) {
        fclose(f);
        *size = (size_t)st.st_size;
        return buf;
    }
    em__error("%s: cannot read %s: %s", op, path, buf ? strerror(errno ? errno : EIO) : "out of memory");
    free(buf);
    fclose(f);
    return NULL;
}
