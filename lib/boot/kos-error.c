/* SPDX-License-Identifier: MIT */
#include "kos-error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int negative_code(int r) {
        if (r == 0)
                return -EIO;
        return r < 0 ? r : -r;
}

int kos_error_setv(struct kos_error *e, int r, const char *format, va_list ap) {
        int saved_errno = errno;

        r = negative_code(r);
        if (e) {
                e->code = r;
                vsnprintf(e->msg, sizeof e->msg, format, ap);
        }
        errno = saved_errno;
        return r;
}

int kos_error_set(struct kos_error *e, int r, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        r = kos_error_setv(e, r, format, ap);
        va_end(ap);
        return r;
}

int kos_error_prefix(struct kos_error *e, const char *format, ...) {
        char joined[KOS_ERROR_MSG_MAX];
        int saved_errno = errno, n;
        va_list ap;

        if (!e)
                return -EIO;
        e->code = negative_code(e->code);
        va_start(ap, format);
        n = vsnprintf(joined, sizeof joined, format, ap);
        va_end(ap);
        if (n < 0) /* an encoding error: keep the message without a prefix */
                joined[0] = '\0', n = 0;
        if ((size_t)n < sizeof joined - 1)
                snprintf(joined + n, sizeof joined - (size_t)n, "%s", e->msg);
        memcpy(e->msg, joined, sizeof e->msg);
        errno = saved_errno;
        return e->code;
}

void kos_error_clear(struct kos_error *e) {
        if (e)
                *e = KOS_ERROR_NULL;
}
