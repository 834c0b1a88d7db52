/* The checkpoint manager (include/ember/train.h): "<prefix>-<step>" files
 * and the index "<prefix>.index" in one directory.
 *
 * The index is text: the line "ember checkpoint index 1", then one line per
 * checkpoint kept, "<prefix>-<step>", oldest first; every line ends in '\n'
 * (a missing last newline is damage). It is written like the checkpoints,
 * through a locked temporary file renamed over it, so it is always the old
 * index or the new one. A save writes, in this order, the checkpoint, the
 * index, then deletes what the index no longer names; a save killed between
 * two of these leaves a checkpoint the index does not name (removed by the
 * next save) or files already dropped from the index (likewise), never an
 * index naming a file that is not there.
 *
 * Each checkpoint is a format-2 checkpoint file (io/checkpoint.c) whose
 * values hold the step and the random stream (kind U64, Ember's own keys)
 * and the program's values (kinds F64 and STRING). */
#include "../checkpoint.h"
#include "../file.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define INDEX_HEADER "ember checkpoint index 1\n"
#define MAX_INDEX_BYTES (64u << 20)
#define MAX_PREFIX 200
#define MAX_STEP 999999999999999999LL /* 18 digits: every step's name parses back */
/* Ember's own values (kind U64, which the program's values never have). */
#define KEY_STEP "step"
#define KEY_SEED "random.seed"
#define KEY_COUNTER "random.counter"

struct em_checkpoint_manager {
    char *dir, *prefix, *index_path;
    int max_to_keep;
    int64_t step;              /* last saved or restored; -1 before */
    em__ckpt_value *values;    /* the program's */
    int nvalues, capvalues;
    char *latest;              /* _latest's answer */
    char *fallback;            /* what the last _latest / _restore_latest skipped; NULL: nothing */
    bool coordinated;
    em__ckpt_coordinator coord;
};

/* ---- small helpers ---- */

/* A malloc'd printf. NULL on out of memory. */
__attribute__((format(printf, 1, 2))) static char *str_printf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!s) return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* Appends "text" to *notes, "; "-separated (dropped on out of memory). */
static void note(char **notes, const char *text) {
    char *s = *notes ? str_printf("%s; %s", *notes, text) : strdup(text);
    if (!s) return;
    free(*notes);
    *notes = s;
}

/* Whether name is "<prefix>-<step>" with step written as %lld writes it. */
static bool checkpoint_name(const char *name, const char *prefix, int64_t *step) {
    size_t p = strlen(prefix);
    if (strncmp(name, prefix, p) != 0 || name[p] != '-') return false;
    const char *d = name + p + 1;
    if (!*d || (d[0] == '0' && d[1]) || strlen(d) > 18) return false;
    int64_t v = 0;
    for (; *d; d++) {
        if (*d < '0' || *d > '9') return false;
        v = v * 10 + (*d - '0');
    }
    *step = v;
    return true;
}

static char *checkpoint_path(const em_checkpoint_manager *m, int64_t step) {
    return str_printf("%s/%s-%" PRId64, m->dir, m->prefix, step);
}

/* The caller's error state, put aside while the manager reads files whose
 * damage is not an error of the call (a fallback). */
typedef struct {
    bool had;
    uint64_t errors;
    char msg[sizeof ((em_thread *)0)->error];
} err_state;

static void err_push(err_state *s) {
    em_thread *t = em__thread();
    s->had = false;
    s->errors = 0;
    if (!t) return;
    s->had = t->has_error;
    s->errors = t->errors;
    memcpy(s->msg, t->error, sizeof s->msg);
    em_clear_error();
}

/* The message of the error raised since err_push (or "unknown error"), then
 * forgets it. */
static void err_take(char *out, size_t size) {
    const char *e = em_last_error();
    snprintf(out, size, "%s", e ? e : "unknown error");
    em_clear_error();
}

/* Puts the caller's error state back. With `failed`, the error raised since
 * err_push is kept (the failing call owns the message); otherwise it is
 * forgotten, and so are the errors counted meanwhile. */
static void err_pop(err_state *s, bool failed) {
    em_thread *t = em__thread();
    if (!t) return;
    if (failed) return;
    if (!failed) t->errors = s->errors;
    t->has_error = s->had;
    memcpy(t->error, s->msg, sizeof s->msg);
}

/* ---- the list of checkpoints: from the index, or from the directory ---- */

typedef struct {
    int64_t *step;
    int n, cap;
} step_list;

static int list_push(step_list *l, int64_t step) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        int64_t *s = realloc(l->step, sizeof *s * (size_t)cap);
        if (!s) return -1;
        l->step = s;
        l->cap = cap;
    }
    l->step[l->n++] = step;
    return 0;
}

static bool list_has(const step_list *l, int64_t step) {
    for (int i = 0; i < l->n; i++)
        if (l->step[i] == step) return true;
    return false;
}

static int by_step(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The checkpoints named like the manager's in dir, by step. -1 on out of
 * memory (error set). */
static int scan_dir(const em_checkpoint_manager *m, const char *op, step_list *l) {
    DIR *d = opendir(m->dir);
    if (!d) return 0;
    int rc = 0;
    for (struct dirent *e; !rc && (e = readdir(d));) {
        int64_t step;
        if (checkpoint_name(e->d_name, m->prefix, &step) && list_push(l, step)) rc = -1;
    }
    closedir(d);
    if (rc) em__error("%s: out of memory listing %s", op, m->dir);
    else if (l->n > 1) qsort(l->step, (size_t)l->n, sizeof *l->step, by_step);
    return rc;
}

/* Parses the index text. 0, or -1 with *why set (static text or into buf). */
static int parse_index(const em_checkpoint_manager *m, char *text, size_t size, step_list *l, const char **why,
                       char *buf, size_t bufsize) {
    size_t h = strlen(INDEX_HEADER);
    if (size < h || memcmp(text, INDEX_HEADER, h) != 0) {
        *why = "its first line is not \"ember checkpoint index 1\"";
        return -1;
    }
    if (memchr(text, '\0', size)) {
        *why = "it holds a NUL byte";
        return -1;
    }
    if (text[size - 1] != '\n') {
        *why = "its last line is cut short";
        return -1;
    }
    int line = 2;
    for (char *s = text + h; s < text + size; line++) {
        char *nl = memchr(s, '\n', (size_t)(text + size - s));
        *nl = '\0';
        int64_t step;
        if (!checkpoint_name(s, m->prefix, &step)) {
            snprintf(buf, bufsize, "line %d does not name a checkpoint %s-<step>", line, m->prefix);
            *why = buf;
            return -1;
        }
        if (!list_has(l, step) && list_push(l, step)) {
            *why = "out of memory";
            return -1;
        }
        s = nl + 1;
    }
    return 0;
}

/* The checkpoints kept, oldest first: the index's, or (when the index is
 * missing or damaged, which *notes then says) those found in dir, by step.
 * 0, or -1 with an error (out of memory). */
static int load_list(const em_checkpoint_manager *m, const char *op, step_list *l, char **notes) {
    l->n = 0;
    FILE *f = fopen(m->index_path, "rb");
    char why_buf[160];
    const char *why = NULL;
    int open_err = f ? 0 : errno;
    if (f) {
        struct stat st;
        char *text = NULL;
        size_t size = 0;
        if (fstat(fileno(f), &st)) why = strerror(errno);
        else if (!S_ISREG(st.st_mode)) why = "it is not a regular file";
        else if ((uint64_t)st.st_size > MAX_INDEX_BYTES) why = "it is larger than 64 MiB";
        else if (!(text = malloc((size_t)st.st_size + 1))) why = "out of memory";
        else if ((size = fread(text, 1, (size_t)st.st_size, f)) != (size_t)st.st_size) why = "it cannot be read whole";
        fclose(f);
        if (!why && parse_index(m, text, size, l, &why, why_buf, sizeof why_buf) == 0) {
            free(text);
            return 0;
        }
        free(text);
        l->n = 0;
    }
    if (scan_dir(m, op, l)) return -1;
    if (f || (open_err != ENOENT && l->n)) {
        char *s = str_printf("index %s is damaged (%s): using the %d checkpoint%s found in %s", m->index_path,
                             f ? why : strerror(open_err), l->n, l->n == 1 ? "" : "s", m->dir);
        if (s) note(notes, s);
        free(s);
    } else if (l->n) {
        char *s = str_printf("index %s is missing: using the %d checkpoint%s found in %s", m->index_path, l->n,
                             l->n == 1 ? "" : "s", m->dir);
        if (s) note(notes, s);
        free(s);
    }
    return 0;
}

/* Where to look for the newest complete checkpoint, best first: the list's
 * entries newest first, then checkpoints found in dir that the list does
 * not name, highest step first. -1 with an error. */
static int candidates(const em_checkpoint_manager *m, const char *op, step_list *out, char **notes) {
    step_list l = {0}, found = {0};
    uint64_t errors = em__error_count();
    int rc = load_list(m, op, &l, notes);
    if (!rc) rc = scan_dir(m, op, &found);
    for (int i = l.n - 1; !rc && i >= 0; i--) rc = list_push(out, l.step[i]);
    for (int i = found.n - 1; !rc && i >= 0; i--)
        if (!list_has(&l, found.step[i])) rc = list_push(out, found.step[i]);
    if (rc && em__error_count() == errors) em__error("%s: out of memory", op); /* list_push says nothing */
    free(l.step);
    free(found.step);
    return rc;
}

/* ---- values ---- */

static em__ckpt_value *find_value(const em_checkpoint_manager *m, const char *key) {
    for (int i = 0; i < m->nvalues; i++)
        if (!strcmp(m->values[i].key, key)) return &m->values[i];
    return NULL;
}

static int check_key(const em_checkpoint_manager *m, const char *op, const char *key) {
    if (!m) {
        em__error_null("%s: argument mgr is NULL", op);
        return -1;
    }
    if (!key || !*key) {
        em__error("%s: argument key is %s (manager of %s/%s)", op, key ? "empty" : "NULL", m->dir, m->prefix);
        return -1;
    }
    if (strlen(key) > EM__CKPT_MAX_KEY) {
        em__error("%s: argument key is %zu bytes long; keys are at most %u (manager of %s/%s)", op, strlen(key),
                  EM__CKPT_MAX_KEY, m->dir, m->prefix);
        return -1;
    }
    return 0;
}

/* The slot for key (a new one, zeroed, with its key, when missing). NULL with an error. */
static em__ckpt_value *value_slot(em_checkpoint_manager *m, const char *op, const char *key) {
    em__ckpt_value *v = find_value(m, key);
    if (v) return v;
    if (m->nvalues == m->capvalues) {
        int cap = m->capvalues ? 2 * m->capvalues : 8;
        em__ckpt_value *p = realloc(m->values, sizeof *p * (size_t)cap);
        if (!p) {
            em__error("%s: out of memory for key '%s' (manager of %s/%s)", op, key, m->dir, m->prefix);
            return NULL;
        }
        m->values = p;
        m->capvalues = cap;
    }
    char *k = strdup(key);
    if (!k) {
        em__error("%s: out of memory for key '%s' (manager of %s/%s)", op, key, m->dir, m->prefix);
        return NULL;
    }
    v = &m->values[m->nvalues++];
    *v = (em__ckpt_value){.key = k, .kind = EM__CKPT_F64};
    return v;
}

int em_checkpoint_manager_set_value(em_checkpoint_manager *mgr, const char *key, double value) {
    const char *op = "em_checkpoint_manager_set_value";
    if (check_key(mgr, op, key)) return -1;
    em__ckpt_value *v = value_slot(mgr, op, key);
    if (!v) return -1;
    free(v->str);
    v->str = NULL;
    v->kind = EM__CKPT_F64;
    v->f64 = value;
    return 0;
}

int em_checkpoint_manager_set_string(em_checkpoint_manager *mgr, const char *key, const char *value) {
    const char *op = "em_checkpoint_manager_set_string";
    if (check_key(mgr, op, key)) return -1;
    if (!value) {
        em__error("%s: argument value is NULL for key '%s' (manager of %s/%s)", op, key, mgr->dir, mgr->prefix);
        return -1;
    }
    if (strlen(value) > EM__CKPT_MAX_STRING) {
        em__error("%s: argument value for key '%s' is %zu bytes long; strings are at most %u (manager of %s/%s)", op,
                  key, strlen(value), EM__CKPT_MAX_STRING, mgr->dir, mgr->prefix);
        return -1;
    }
    char *copy = strdup(value);
    em__ckpt_value *v = copy ? value_slot(mgr, op, key) : NULL;
    if (!v) {
        if (!copy) em__error("%s: out of memory for key '%s' (manager of %s/%s)", op, key, mgr->dir, mgr->prefix);
        free(copy);
        return -1;
    }
    free(v->str);
    v->str = copy;
    v->kind = EM__CKPT_STRING;
    return 0;
}

static int get_kind(const em_checkpoint_manager *m, const char *op, const char *key, const void *out, int kind,
                    const em__ckpt_value **found) {
    if (check_key(m, op, key)) return -1;
    if (!out) {
        em__error("%s: argument value is NULL for key '%s' (manager of %s/%s)", op, key, m->dir, m->prefix);
        return -1;
    }
    *found = find_value(m, key);
    if (!*found) return 0;
    if ((*found)->kind != kind) {
        em__error("%s: key '%s' holds a %s, not a %s (read it with em_checkpoint_manager_get_%s; manager of %s/%s)",
                  op, key, kind == EM__CKPT_F64 ? "string" : "number", kind == EM__CKPT_F64 ? "number" : "string",
                  kind == EM__CKPT_F64 ? "string" : "value", m->dir, m->prefix);
        return -1;
    }
    return 1;
}

int em_checkpoint_manager_get_value(const em_checkpoint_manager *mgr, const char *key, double *value) {
    const em__ckpt_value *v = NULL;
    int rc = get_kind(mgr, "em_checkpoint_manager_get_value", key, value, EM__CKPT_F64, &v);
    if (rc == 1) *value = v->f64;
    return rc;
}

int em_checkpoint_manager_get_string(const em_checkpoint_manager *mgr, const char *key, const char **value) {
    const em__ckpt_value *v = NULL;
    int rc = get_kind(mgr, "em_checkpoint_manager_get_string", key, value, EM__CKPT_STRING, &v);
    if (rc == 1) *value = v->str;
    return rc;
}

/* ---- open, close ---- */

em_checkpoint_manager *em_checkpoint_manager_open(const char *dir, const char *prefix, int max_to_keep) {
    const char *op = "em_checkpoint_manager_open";
    if (!dir || !*dir) {
        em__error("%s: argument dir is %s", op, dir ? "empty" : "NULL");
        return NULL;
    }
    if (!prefix || !*prefix) {
        em__error("%s: argument prefix is %s (for files in %s)", op, prefix ? "empty" : "NULL", dir);
        return NULL;
    }
    size_t plen = strlen(prefix);
    if (plen > MAX_PREFIX) {
        em__error("%s: argument prefix is %zu bytes long; at most %d (for files in %s)", op, plen, MAX_PREFIX, dir);
        return NULL;
    }
    for (const char *c = prefix; *c; c++)
        if (*c == '/' || (unsigned char)*c <= ' ' || *c == 0x7f) {
            em__error("%s: argument prefix '%s' has %s; it names files in %s, so no '/', whitespace or control "
                      "characters",
                      op, prefix, *c == '/' ? "a '/'" : "a space or control character", dir);
            return NULL;
        }
    if (!strcmp(prefix, ".") || !strcmp(prefix, "..")) {
        em__error("%s: argument prefix '%s' is not a file name (for files in %s)", op, prefix, dir);
        return NULL;
    }
    int err = em__make_dirs(dir);
    if (err) {
        em__error("%s: argument dir: cannot make directory %s: %s", op, dir, strerror(err));
        return NULL;
    }
    em_checkpoint_manager *m = calloc(1, sizeof *m);
    size_t dlen = strlen(dir);
    while (dlen > 1 && dir[dlen - 1] == '/') dlen--; /* "runs/" -> "runs" */
    if (m) {
        m->dir = strndup(dir, dlen);
        m->prefix = strdup(prefix);
        m->index_path = str_printf("%.*s/%s.index", (int)dlen, dir, prefix);
    }
    if (!m || !m->dir || !m->prefix || !m->index_path) {
        em_checkpoint_manager_close(m);
        em__error("%s: out of memory (for %s)", op, dir);
        return NULL;
    }
    m->max_to_keep = max_to_keep;
    m->step = -1;
    return m;
}

void em_checkpoint_manager_close(em_checkpoint_manager *mgr) {
    if (!mgr) return;
    for (int i = 0; i < mgr->nvalues; i++) {
        free(mgr->values[i].key);
        free(mgr->values[i].str);
    }
    free(mgr->values);
    free(mgr->dir);
    free(mgr->prefix);
    free(mgr->index_path);
    free(mgr->latest);
    free(mgr->fallback);
    free(mgr);
}

void em__checkpoint_manager_coordinate(em_checkpoint_manager *mgr, const em__ckpt_coordinator *c) {
    if (!mgr) return;
    mgr->coordinated = c != NULL;
    if (c) mgr->coord = *c;
}

int64_t em_checkpoint_manager_step(const em_checkpoint_manager *mgr) { return mgr ? mgr->step : -1; }

const char *em_checkpoint_manager_last_fallback(const em_checkpoint_manager *mgr) {
    return mgr ? mgr->fallback : NULL;
}

/* ---- save ---- */

/* The manager's temporaries: "<prefix>-<digits>.tmp.<digits>", "<prefix>.index.tmp.<digits>". */
static bool manager_temp(const char *name, void *ctx) {
    const em_checkpoint_manager *m = ctx;
    const char *t = strstr(name, ".tmp.");
    if (!t) return false;
    char base[MAX_PREFIX + 40];
    size_t n = (size_t)(t - name);
    if (n >= sizeof base) return false;
    memcpy(base, name, n);
    base[n] = '\0';
    int64_t step;
    size_t p = strlen(m->prefix);
    bool index = !strncmp(base, m->prefix, p) && !strcmp(base + p, ".index");
    return (index || checkpoint_name(base, m->prefix, &step)) && em__is_temp_of(name, base);
}

/* Writes the checkpoint, the index and deletes what the index dropped. */
static int save_files(em_checkpoint_manager *m, const char *op, int64_t step) {
    em__remove_stale_temps(m->dir, manager_temp, m);
    em_thread *t = em__thread();
    if (!t) return -1;
    int n = m->nvalues + 3;
    em__ckpt_value *all = malloc(sizeof *all * (size_t)n);
    step_list l = {0};
    char *notes = NULL, *path = checkpoint_path(m, step), *text = NULL;
    int rc = -1;
    if (!all || !path) {
        em__error("%s: out of memory (saving step %" PRId64 " in %s)", op, step, m->dir);
        goto done;
    }
    all[0] = (em__ckpt_value){.key = KEY_STEP, .kind = EM__CKPT_U64, .u64 = (uint64_t)step};
    all[1] = (em__ckpt_value){.key = KEY_SEED, .kind = EM__CKPT_U64, .u64 = t->seed};
    all[2] = (em__ckpt_value){.key = KEY_COUNTER, .kind = EM__CKPT_U64, .u64 = t->counter};
    if (m->nvalues) memcpy(all + 3, m->values, sizeof *all * (size_t)m->nvalues);
    if (load_list(m, op, &l, &notes) || em__checkpoint_write(op, path, n, all)) goto done;
    /* The new list: step moves to the end (entries whose file is gone are
     * dropped); the oldest go beyond max_to_keep. */
    int k = 0;
    for (int i = 0; i < l.n; i++) {
        char *p = l.step[i] != step ? checkpoint_path(m, l.step[i]) : NULL;
        if (p && access(p, F_OK) == 0) l.step[k++] = l.step[i];
        free(p);
    }
    l.n = k;
    if (list_push(&l, step)) {
        em__error("%s: out of memory (saving step %" PRId64 " in %s)", op, step, m->dir);
        goto done;
    }
    int first = m->max_to_keep > 0 && l.n > m->max_to_keep ? l.n - m->max_to_keep : 0;
    size_t len = strlen(INDEX_HEADER);
    for (int i = first; i < l.n; i++) len += strlen(m->prefix) + 22;
    text = malloc(len + 1);
    if (!text) {
        em__error("%s: out of memory (saving step %" PRId64 " in %s)", op, step, m->dir);
        goto done;
    }
    size_t at = (size_t)sprintf(text, "%s", INDEX_HEADER);
    for (int i = first; i < l.n; i++) at += (size_t)sprintf(text + at, "%s-%" PRId64 "\n", m->prefix, l.step[i]);
    if (em__write_file_atomic(op, m->index_path, text, at)) goto done;
    /* Everything of ours that the index does not name: dropped beyond
     * max_to_keep, or left by a save killed before its index. */
    step_list kept = {l.step + first, l.n - first, 0}, found = {0};
    if (scan_dir(m, op, &found) == 0) {
        for (int i = 0; i < found.n; i++) {
            if (list_has(&kept, found.step[i])) continue;
            char *p = checkpoint_path(m, found.step[i]);
            if (p) unlink(p);
            free(p);
        }
    } else {
        em_clear_error(); /* out of memory listing: the next save tidies up */
    }
    free(found.step);
    m->step = step;
    rc = 0;
done:
    free(all);
    free(l.step);
    free(notes);
    free(path);
    free(text);
    return rc;
}

int em_checkpoint_manager_save(em_checkpoint_manager *mgr, int64_t step) {
    const char *op = "em_checkpoint_manager_save";
    if (!mgr) {
        em__error_null("%s: argument mgr is NULL", op);
        return -1;
    }
    if (step < 0 || step > MAX_STEP) {
        em__error("%s: argument step is %" PRId64 "; steps are 0 to %lld (checkpoints %s/%s-<step>)", op, step,
                  MAX_STEP, mgr->dir, mgr->prefix);
        return -1;
    }
    if (!mgr->coordinated) return save_files(mgr, op, step);
    /* Several processes: the writer saves, every process waits for it at
     * the collective, which also checks that they all saved the same step. */
    int rc = mgr->coord.writes ? save_files(mgr, op, step) : 0;
    int64_t v[3] = {rc, step, -step};
    if (mgr->coord.all_min(mgr->coord.ctx, op, v, 3)) return -1;
    if (v[1] != -v[2]) {
        em__error("%s: rank %d: the processes saved different steps (%" PRId64 " to %" PRId64 "; this one %" PRId64
                  ") in %s",
                  op, mgr->coord.rank, v[1], -v[2], step, mgr->dir);
        return -1;
    }
    if (v[0] < 0) {
        if (!rc)
            em__error("%s: rank %d: the writing rank could not save %s/%s-%" PRId64 " (its error says why)", op,
                      mgr->coord.rank, mgr->dir, mgr->prefix, step);
        return -1;
    }
    mgr->step = step;
    return 0;
}

/* ---- latest, restore ---- */

/* Applies a restored checkpoint's values to the manager and the thread. */
static void take_values(em_checkpoint_manager *m, em__ckpt_value *v, int n, int64_t step_from_name) {
    em_thread *t = em__thread();
    for (int i = 0; i < m->nvalues; i++) {
        free(m->values[i].key);
        free(m->values[i].str);
    }
    m->nvalues = 0;
    m->step = step_from_name;
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (v[i].kind != EM__CKPT_U64) {
            v[k++] = v[i];
            continue;
        }
        if (!strcmp(v[i].key, KEY_STEP)) m->step = (int64_t)v[i].u64;
        else if (!strcmp(v[i].key, KEY_SEED) && t) t->seed = v[i].u64;
        else if (!strcmp(v[i].key, KEY_COUNTER) && t) t->counter = v[i].u64;
        free(v[i].key);
    }
    /* v now holds the program's values only: the manager takes the array. */
    free(m->values);
    m->values = v;
    m->nvalues = k;
    m->capvalues = n;
}

/* Finds (apply = false) or restores (apply = true) the newest usable
 * checkpoint: 1 (its step in *step, path in *path), 0 when there is none,
 * -1 with an error. Skipped files go to m->fallback. */
static int find_latest(em_checkpoint_manager *m, const char *op, bool apply, int64_t *step, char **path) {
    free(m->fallback);
    m->fallback = NULL;
    *path = NULL;
    step_list c = {0};
    char *notes = NULL;
    err_state saved;
    err_push(&saved);
    int rc = candidates(m, op, &c, &notes), skipped = 0;
    for (int i = 0; !rc && i < c.n; i++) {
        char *p = checkpoint_path(m, c.step[i]);
        if (!p) {
            em__error("%s: out of memory (in %s)", op, m->dir);
            rc = -1;
            break;
        }
        em__ckpt_value *vals = NULL;
        int nvals = 0;
        int r = em__checkpoint_read(op, p, apply, apply ? &vals : NULL, &nvals);
        if (r == EM__CKPT_UNUSABLE) {
            char why[1024];
            err_take(why, sizeof why);
            /* The message begins with "op: "; the note needs only the rest. */
            size_t skip = strlen(op) + 2;
            note(&notes, strlen(why) > skip && !strncmp(why, op, strlen(op)) ? why + skip : why);
            free(p);
            skipped++;
            continue;
        }
        if (r) {
            free(p);
            rc = -1;
            break;
        }
        if (apply) take_values(m, vals, nvals, c.step[i]);
        *step = apply ? m->step : c.step[i];
        *path = p;
        rc = 1;
        break;
    }
    /* Nothing usable: for a restore an error, for latest() an answer. */
    if (rc == 0 && skipped && apply) {
        em__error("%s: no usable checkpoint in %s: %s", op, m->dir, notes ? notes : "");
        rc = -1;
    }
    if (notes && rc == 1) {
        char *s = str_printf("%s; using %s", notes, *path);
        free(notes);
        notes = s;
    }
    if (notes && (rc >= 0 || skipped)) m->fallback = notes;
    else free(notes);
    err_pop(&saved, rc < 0);
    free(c.step);
    return rc;
}

const char *em_checkpoint_manager_latest(em_checkpoint_manager *mgr) {
    if (!mgr) {
        em__error_null("em_checkpoint_manager_latest: argument mgr is NULL");
        return NULL;
    }
    int64_t step;
    char *path;
    int rc = find_latest(mgr, "em_checkpoint_manager_latest", false, &step, &path);
    free(mgr->latest);
    mgr->latest = rc == 1 ? path : NULL;
    if (rc != 1) free(path);
    return mgr->latest;
}

int em_checkpoint_manager_restore_latest(em_checkpoint_manager *mgr) {
    const char *op = "em_checkpoint_manager_restore_latest";
    if (!mgr) {
        em__error_null("%s: argument mgr is NULL", op);
        return -1;
    }
    int64_t step = -1;
    char *path;
    int rc = find_latest(mgr, op, true, &step, &path);
    free(path);
    if (!mgr->coordinated) return rc;
    /* Several processes: each read the files; all must have found the same. */
    int64_t v[4] = {rc, -rc, step, -step};
    if (mgr->coord.all_min(mgr->coord.ctx, op, v, 4)) return -1;
    if (v[0] != -v[1] || v[2] != -v[3]) {
        if (rc >= 0)
            em__error("%s: rank %d: the processes found different checkpoints in %s (this one: %s; is the "
                      "directory shared by every rank?)",
                      op, mgr->coord.rank, mgr->dir, rc == 1 ? "restored one" : rc == 0 ? "none" : "an error");
        return -1;
    }
    return rc;
}
