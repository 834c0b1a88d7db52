/* Thread-local error state. A call that fails on its own arguments replaces
 * the message; a call given a NULL input keeps the pending one, so a chain of
 * NULL-propagating ops reports the root cause (include/ember/core.h). */
#include "internal.h"

#include <stdarg.h>

static void set_error(bool replace, const char *fmt, va_list ap) {
    em_thread *t = em__thread();
    if (!t) return;
    t->errors++;
    if (t->has_error && !replace) return;
    char msg[sizeof t->error]; /* the arguments may quote the pending message */
    vsnprintf(msg, sizeof msg, fmt, ap);
    memcpy(t->error, msg, sizeof msg);
    t->has_error = true;
}

void em__error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    set_error(true, fmt, ap);
    va_end(ap);
}

void em__error_null(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    set_error(false, fmt, ap);
    va_end(ap);
}

void *em__null_input(const char *op) {
    em__error_null("%s: an input is NULL (an earlier call failed or a tensor was not created)", op);
    return NULL;
}

uint64_t em__error_count(void) {
    em_thread *t = em__thread();
    return t ? t->errors : 0;
}

const char *em_last_error(void) {
    em_thread *t = em__thread();
    return t && t->has_error ? t->error : NULL;
}

void em_clear_error(void) {
    em_thread *t = em__thread();
    if (!t) return;
    t->has_error = false;
    t->error[0] = '\0';
}
