/* SPDX-License-Identifier: MIT */
#include "beneath.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

int open_beneath(int dirfd, const char *path, int flags, mode_t mode) {
        struct open_how how = {
                .flags = (uint64_t)(flags | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK),
                .mode = (flags & O_CREAT) ? mode : 0,
                .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
        };
        int fd;

        do
                fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
        while (fd < 0 && errno == EINTR);
        return fd < 0 ? -errno : fd;
}

const char *file_kind(mode_t mode) {
        switch (mode & S_IFMT) {
        case S_IFREG: return "a regular file";
        case S_IFDIR: return "a directory";
        case S_IFLNK: return "a symbolic link";
        case S_IFIFO: return "a FIFO";
        case S_IFSOCK: return "a socket";
        case S_IFCHR: return "a character device";
        case S_IFBLK: return "a block device";
        }
        return "of an unknown type";
}

int open_regular_beneath(int dirfd, const char *path, int flags, mode_t mode, const char **ret_kind) {
        struct stat st;
        int fd = open_beneath(dirfd, path, flags, mode);

        if (fd == -ELOOP) {
                if (ret_kind)
                        *ret_kind = "a symbolic link";
                return -EPERM;
        }
        if (fd < 0)
                return fd;
        if (fstat(fd, &st) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        if (!S_ISREG(st.st_mode)) {
                if (ret_kind)
                        *ret_kind = file_kind(st.st_mode);
                close(fd);
                return -EPERM;
        }
        return fd;
}

static char *escape(const char *in, char *out, size_t size, bool name) {
        size_t o = 0;

        if (size == 0)
                return out;
        for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
                bool plain = *p > 0x20 && *p < 0x7f && !(name && *p == '\\');
                if (!name && *p == ' ')
                        plain = true;
                if (o + (plain ? 1 : 4) + 4 > size) { /* room for this, "..." and the NUL */
                        snprintf(out + o, size - o, "...");
                        return out;
                }
                if (plain)
                        out[o++] = (char)*p;
                else
                        o += (size_t)snprintf(out + o, size - o, "\\x%02x", *p);
        }
        out[o] = '\0';
        return out;
}

char *escape_name(const char *name, char *out, size_t size) { return escape(name, out, size, true); }
char *escape_text(const char *text, char *out, size_t size) { return escape(text, out, size, false); }
