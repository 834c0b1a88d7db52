/* Thread-local error state: the first error since em_clear_error wins, so a
 * chain of NULL-propagating ops reports the root cause. */
#include "internal.h"

#include <stdarg.h>

void em__error(const char *fmt, ...) {
    em_thread *t = em__thread();
    if (!t) return;
    t->errors++;
    if (t->has_error) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->error, sizeof t->error, fmt, ap);
    va_end(ap);
    t->has_error = true;
}

void *em__null_input(const char *op) {
    em__error("%s: an input is NULL (an earlier call failed or a tensor was not created)", op);
    return NULL;
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
