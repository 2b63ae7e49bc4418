/* SPDX-License-Identifier: MIT */
/* What failed and why: the one error type of KOS (README.md, "Errors").
 * Named kos-error.h: glibc has an <error.h>, which -Ilib/boot would hide.
 *
 * A function that can tell a person why it failed takes a
 * `struct kos_error *ret_error` as its last argument and fails with
 *     return kos_error_set(ret_error, -EBADMSG, "line %zu: ...", n);
 * which records the message and the code and returns the code.
 *
 * The rules:
 * - The code is a negative errno, as every return of lib/: kos_error_set()
 *   stores and returns -abs(r), so `r` may come from a function's return or
 *   from errno. 0 is not a failure and is stored as -EIO (a caller that
 *   failed never reads as success).
 * - The last kos_error_set() wins: the outer caller knows more of the
 *   context than the callee. To keep the callee's words and add where it
 *   happened, use kos_error_prefix() (which keeps the code too).
 * - The message is cut to KOS_ERROR_MSG_MAX - 1 bytes, always terminated.
 * - errno is neither read nor changed (a %m in a format prints errno as it
 *   was at the call; prefer strerror(-r), which says which code it means).
 * - ret_error may be NULL: the code is returned and nothing is recorded.
 * - No allocation, nothing printed: usable from the Boot Kernel's PID 1. */
#pragma once

#include <stdarg.h>

/* Room for every message of lib/ (the longest name a path plus a reason). */
#define KOS_ERROR_MSG_MAX 512

struct kos_error {
        int code;                   /* 0 (none yet) or the negative errno of the last failure */
        char msg[KOS_ERROR_MSG_MAX]; /* for people: what failed and where; "" when none */
};

#define KOS_ERROR_NULL ((struct kos_error){0})

/* Records r (as -abs(r)) and the formatted message in e; returns -abs(r). */
int kos_error_set(struct kos_error *e, int r, const char *format, ...) __attribute__((format(printf, 3, 4)));
int kos_error_setv(struct kos_error *e, int r, const char *format, va_list ap) __attribute__((format(printf, 3, 0)));

/* Puts the formatted text in front of e's message (e.g. "%s.sig: " before a
 * parser's reason) and returns e's code, as in
 *     return kos_error_prefix(ret_error, "%s: ", path);
 * With no error recorded yet the code returned is -EIO. */
int kos_error_prefix(struct kos_error *e, const char *format, ...) __attribute__((format(printf, 2, 3)));

/* Forgets any error: code 0, empty message. */
void kos_error_clear(struct kos_error *e);
