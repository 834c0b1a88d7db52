/* Ownership scopes and the per-thread state they live in. Every new tensor is
 * put in the innermost scope of its thread; ending the scope drops those
 * references, so a training loop body wrapped in a scope runs in constant
 * memory without freeing intermediates one by one. The thread's device (the
 * innermost device scope's, which device.c keeps) lives here too, with the
 * hooks the layers above set (lib/internal.h). */
#include "internal.h"

#include <stdlib.h>

static _Thread_local em_thread *current;

atomic_int em__ncpu = 1;
atomic_bool em__placing;
_Thread_local int em__scoped_device = -1;
_Thread_local int em__run_threads;

em_hooks em__hooks;

em_thread *em__thread(void) {
    if (current) return current;
    em_thread *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->scopes = calloc(8, sizeof *t->scopes);
    if (!t->scopes) {
        free(t);
        return NULL;
    }
    t->capscopes = 8;
    t->nscopes = 1; /* the root scope */
    t->seed = 0x5eed;
    current = t;
    return t;
}

static int scope_push(em_scope *s, em_tensor *x) {
    if (s->count == s->cap) {
        int64_t cap = s->cap ? s->cap * 2 : 64;
        em_tensor **items = realloc(s->items, (size_t)cap * sizeof *items);
        if (!items) return -1;
        s->items = items;
        s->cap = cap;
    }
    s->items[s->count++] = x;
    return 0;
}

em_tensor *em__own(em_tensor *x) {
    em_thread *t = em__thread();
    if (!x) return NULL;
    if (!t || scope_push(&t->scopes[t->nscopes - 1], x)) {
        em__unref(x);
        em__error("out of memory recording a tensor in its scope");
        return NULL;
    }
    return x;
}

void em_scope_begin(void) {
    em_thread *t = em__thread();
    if (!t) return;
    if (t->nscopes == t->capscopes) {
        em_scope *s = realloc(t->scopes, (size_t)t->capscopes * 2 * sizeof *s);
        if (!s) {
            em__error("scope_begin: out of memory");
            return;
        }
        memset(s + t->capscopes, 0, (size_t)t->capscopes * sizeof *s);
        t->scopes = s;
        t->capscopes *= 2;
    }
    t->scopes[t->nscopes++].count = 0;
}

static void scope_clear(em_scope *s, em_release_cause why) {
    uint8_t before = em__releasing(why);
    /* Release in reverse creation order: later tensors may view earlier ones. */
    for (int64_t i = s->count - 1; i >= 0; i--) em__unref(s->items[i]);
    s->count = 0;
    em__release_cause = before;
}

int em_scope_end(void) {
    em_thread *t = em__thread();
    if (!t) return -1;
    if (t->nscopes <= 1) {
        em__error("scope_end: no scope is open (em_scope_end without em_scope_begin)");
        return -1;
    }
    scope_clear(&t->scopes[--t->nscopes], EM_FREED_SCOPE);
    /* Keep a grown buffer for the next scope at this depth, but not a huge one. */
    em_scope *s = &t->scopes[t->nscopes];
    if (s->cap > 65536) {
        free(s->items);
        s->items = NULL;
        s->cap = 0;
    }
    return 0;
}

em_tensor *em__ref(em_tensor *t) {
    if (!t) return NULL;
    em__retain(t);
    return em__own(t);
}

em_tensor *em_keep(em_tensor *x) {
    if (!x || em__released(x, "keep", -1)) return NULL;
    em__retain(x);
    atomic_fetch_add_explicit(&x->kept, 1, memory_order_relaxed);
    return x;
}

em_tensor *em_escape(em_tensor *x) {
    em_thread *t = em__thread();
    if (!x || !t) return x;
    if (em__released(x, "escape", -1)) return NULL;
    if (t->nscopes < 2) return x; /* already in the root scope */
    em__retain(x);
    if (scope_push(&t->scopes[t->nscopes - 2], x)) {
        em__unref(x);
        em__error("escape: out of memory");
        return NULL;
    }
    return x;
}

int em_release(em_tensor *x) {
    if (!x) return 0;
    if (em__released(x, "release", -1)) return -1;
    char b[160];
    /* Only a reference em_keep gave may go: the others are a scope's or the
     * variable store's, which would free the tensor under them. */
    int kept = atomic_load_explicit(&x->kept, memory_order_relaxed);
    do {
        if (kept == 0) {
            if (x->flags & EM_T_VARIABLE)
                em__error("release: %s is a variable: the variable store owns it (em_variables_release frees "
                          "variables; em_release only undoes em_keep)",
                          x->var->name);
            else
                em__error("release: the %s tensor %s was not kept: its scope releases it (em_release only undoes "
                          "em_keep)",
                          em_dtype_name((em_dtype)x->dtype), em__tshape(x, b, sizeof b));
            return -1;
        }
    } while (!atomic_compare_exchange_weak_explicit(&x->kept, &kept, kept - 1, memory_order_relaxed,
                                                    memory_order_relaxed));
    uint8_t before = em__releasing(EM_FREED_RELEASE);
    em__unref(x);
    em__release_cause = before;
    return 0;
}

void em_shutdown(void) {
    em_thread *t = current;
    if (!t) return;
    uint8_t before = em__releasing(EM_FREED_SHUTDOWN);
    if (em__hooks.trace_shutdown) em__hooks.trace_shutdown(t);
    if (em__hooks.tapes_shutdown) em__hooks.tapes_shutdown(t);
    if (em__hooks.variables_shutdown) em__hooks.variables_shutdown(t);
    if (em__hooks.device_scopes_reset) em__hooks.device_scopes_reset();
    else em__scoped_device = -1;
    for (int i = t->nscopes - 1; i >= 0; i--) scope_clear(&t->scopes[i], EM_FREED_SHUTDOWN);
    for (int i = 0; i < t->capscopes; i++) free(t->scopes[i].items);
    free(t->scopes);
    free(t);
    current = NULL;
    em__release_cause = before;
    em__blocks_shutdown();
}
