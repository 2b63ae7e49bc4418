/* SPDX-License-Identifier: MIT */
/* Small helpers shared by every KOS stage: cleanup attributes, bounded file
 * reads relative to a directory fd, atomic replacement, hex, names, clocks. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define KOS_NAME_MAX 64 /* manifest and component names: [A-Za-z0-9._-]{1,64} */

static inline void kos_freep(void *p) { free(*(void **)p); }
static inline void kos_closep(int *fd) {
        if (*fd >= 0)
                close(*fd);
}
#define _cleanup_free_ __attribute__((cleanup(kos_freep)))
#define _cleanup_close_ __attribute__((cleanup(kos_closep)))

/* Hand ownership of a pointer or fd to the caller: the cleanup sees NULL / -1. */
#define TAKE_PTR(p)                          \
        ({                                   \
                __typeof__(p) _tmp_ = (p);   \
                (p) = NULL;                  \
                _tmp_;                       \
        })
#define TAKE_FD(fd)                          \
        ({                                   \
                int _tmp_ = (fd);            \
                (fd) = -1;                   \
                _tmp_;                       \
        })

/* For functions whose result must be looked at (an error, or the answer
 * itself). GCC does not accept a (void) cast as looking: a call whose error
 * truly does not matter says why in an if with a comment. */
#define _kos_must_check_ __attribute__((warn_unused_result))

#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))

/* True when s matches [A-Za-z0-9._-]{1,64} and is neither "." nor "..", so
 * it is safe as a single path component. */
_kos_must_check_ bool kos_name_is_valid(const char *s);

/* Lowercase hex of len bytes into out (2*len+1 bytes, NUL-terminated). */
void kos_hex_encode(const uint8_t *in, size_t len, char *out);
/* Decodes exactly 2*len lowercase hex digits; anything else is -EINVAL. */
_kos_must_check_ int kos_hex_decode(const char *in, size_t in_len, uint8_t *out, size_t len);

/* Opens dirfd/path read-only if it is a regular file: a symlink is -ELOOP
 * (with O_NOFOLLOW in flags), anything else that is not a regular file
 * (FIFO, socket, device, directory) -EBADFD. Never blocks on a FIFO and never
 * opens a device node; O_CLOEXEC, O_NOCTTY are implied. Returns the fd, with
 * its fstat() in *ret_st (may be NULL). */
_kos_must_check_ int kos_open_regular_at(int dirfd, const char *path, int flags, struct stat *ret_st);

/* Creates dirfd/name as a new, empty regular file for writing, removing
 * whatever was there first (a temporary file's leftover, or a FIFO that
 * would otherwise block the open). Returns the fd or a negative errno. */
_kos_must_check_ int kos_create_file_at(int dirfd, const char *name, mode_t mode);

/* Reads a regular file relative to dirfd, never following a symlink, and
 * refuses anything larger than cap bytes with -EFBIG; anything not a regular
 * file is -EBADFD (a symlink -ELOOP), without blocking on a FIFO. The buffer gets a NUL
 * after the data (not counted in *ret_len) so text parsers may use it. */
_kos_must_check_ int kos_read_file_at(int dirfd, const char *name, size_t cap, char **ret_data, size_t *ret_len);

/* Writes len bytes to fd, retrying short writes and EINTR. */
_kos_must_check_ int kos_write_all(int fd, const void *data, size_t len);

/* Replaces dirfd/path atomically: temporary file beside it, fsync, rename,
 * fsync of the directory. After a crash the file holds the old or the new
 * bytes, never a mix. path may have directories; dirfd may be AT_FDCWD. */
_kos_must_check_ int kos_write_file_atomic_at(int dirfd, const char *path, const void *data, size_t len, mode_t mode);

/* text (a --key argument, which may be a mistyped PKCS#11 URI) as a
 * message may show it: the value of every pin-value attribute, its name in
 * any case, replaced by "***"; truncated to size - 1 bytes, never in the
 * middle of a PIN. Both kos builds use it, the device's without lib/host. */
void kos_redact_pin_values(const char *text, char *out, size_t size);

/* Monotonic clock in nanoseconds. */
uint64_t kos_now_ns(void);

/* Test hook for crash-safety tests, compiled only into test builds
 * (-DKOS_FAULT_POINTS: build/test/kos and the ASan build): when the
 * environment variable KOS_FAULT_AT is N, the N-th call in this process kills
 * it with SIGKILL (as a power cut would stop it, without cleanup). In every
 * program a vendor ships it is nothing at all: the kernel hands the words
 * X=Y of its command line to init as its environment, so a hook there would
 * let a command line kill PID 1. */
#ifdef KOS_FAULT_POINTS
void kos_fault_point(void);
/* From here on the count starts afresh and N comes from the environment
 * variable named (KOS_FAULT_AT again when given it): Node Manager counts
 * the Boot Kernel slot update's points alone with KOS_FAULT_SLOTS_AT, so
 * the points of whatever ran before in the process do not shift N. */
void kos_fault_points_count(const char *variable);
#else
static inline void kos_fault_point(void) {}
static inline void kos_fault_points_count(const char *variable) {}
#endif
