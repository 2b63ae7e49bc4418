/* SPDX-License-Identifier: MIT */
/* Opening files in trees Node Manager does not trust: the DataFS (/data,
 * writable by anyone who has the disk) and update drives. Everything is
 * opened relative to a directory fd with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV) (Linux 5.6),
 * so no symlink, "..", or other mount leads out of the tree, and with
 * O_NONBLOCK, so opening a FIFO or a device does not wait; only regular files
 * are read or appended to. And names from such a tree are escaped before
 * they reach a log line. */
#pragma once

#include <stddef.h>
#include <sys/types.h>

/* openat2 beneath dirfd as above, plus O_CLOEXEC | O_NOFOLLOW | O_NOCTTY |
 * O_NONBLOCK. Returns the fd or a negative errno (-ELOOP for a symlink, on
 * the way or at the end). */
int open_beneath(int dirfd, const char *path, int flags, mode_t mode);

/* open_beneath, then refuses with -EPERM anything but a regular file;
 * *ret_kind (may be NULL) then says what it is ("a FIFO", "a symbolic
 * link", ...). Other errors are returned as they are. */
int open_regular_beneath(int dirfd, const char *path, int flags, mode_t mode, const char **ret_kind);

/* "a FIFO", "a directory", ...: for reasons in the log. */
const char *file_kind(mode_t mode);

/* Copies name into out (at most size bytes with the NUL, truncated with
 * "..." if longer) with every byte that could change how a log line reads
 * written as \xNN: control characters, space, backslash, and non-ASCII.
 * Returns out. */
char *escape_name(const char *name, char *out, size_t size);
/* The same for free text: only control characters, DEL and non-ASCII. */
char *escape_text(const char *text, char *out, size_t size);
