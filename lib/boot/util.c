/* SPDX-License-Identifier: MIT */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

bool kos_name_is_valid(const char *s) {
        size_t n = 0;

        for (const char *p = s; *p; p++, n++) {
                bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                          (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-';
                if (!ok || n >= KOS_NAME_MAX)
                        return false;
        }
        return n > 0 && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

void kos_hex_encode(const uint8_t *in, size_t len, char *out) {
        static const char digits[] = "0123456789abcdef";

        for (size_t i = 0; i < len; i++) {
                out[2 * i] = digits[in[i] >> 4];
                out[2 * i + 1] = digits[in[i] & 0xf];
        }
        out[2 * len] = '\0';
}

static int hex_value(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        return -1; /* uppercase is rejected on purpose: one spelling per digest */
}

int kos_hex_decode(const char *in, size_t in_len, uint8_t *out, size_t len) {
        if (in_len != 2 * len)
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                int hi = hex_value(in[2 * i]), lo = hex_value(in[2 * i + 1]);
                if (hi < 0 || lo < 0)
                        return -EINVAL;
                out[i] = (uint8_t)(hi << 4 | lo);
        }
        return 0;
}

int kos_open_regular_at(int dirfd, const char *path, int flags, struct stat *ret_st) {
        struct stat st;
        int r;

        /* Look before opening: opening a device node can have side effects,
         * and opening a FIFO for reading blocks until a writer comes. */
        if (fstatat(dirfd, path, &st, flags & O_NOFOLLOW ? AT_SYMLINK_NOFOLLOW : 0) < 0)
                return -errno;
        if (S_ISLNK(st.st_mode))
                return -ELOOP;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        /* O_NONBLOCK in case it was swapped for a FIFO since: then the open
         * returns at once and fstat() below sees what was opened. */
        int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | flags);
        if (fd < 0)
                return -errno;
        r = fstat(fd, &st) < 0 ? -errno : S_ISREG(st.st_mode) ? 0 : -EBADFD;
        if (r < 0) {
                close(fd);
                return r;
        }
        /* A regular file ignores O_NONBLOCK today; clear it anyway, so no
         * read can ever see EAGAIN. */
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
                r = -errno;
                close(fd);
                return r;
        }
        if (ret_st)
                *ret_st = st;
        return fd;
}

int kos_create_file_at(int dirfd, const char *name, mode_t mode) {
        /* Whatever is there (a leftover, a FIFO, a symlink) goes first: with
         * O_EXCL the open then creates a new regular file or fails, and never
         * opens, follows or blocks on something else. */
        if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
                return -errno;
        int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, mode);
        return fd < 0 ? -errno : fd;
}

int kos_read_file_at(int dirfd, const char *name, size_t cap, char **ret_data, size_t *ret_len) {
        struct stat st;
        _cleanup_close_ int fd = kos_open_regular_at(dirfd, name, O_NOFOLLOW, &st);
        if (fd < 0)
                return fd;
        if ((uint64_t)st.st_size > cap)
                return -EFBIG;

        /* Read up to cap+1 bytes whatever fstat said: a file that grows while
         * we read it must not slip past the cap. */
        _cleanup_free_ char *buf = malloc(cap + 2);
        if (!buf)
                return -ENOMEM;
        size_t len = 0;
        for (;;) {
                ssize_t n = read(fd, buf + len, cap + 1 - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                len += (size_t)n;
                if (len > cap)
                        return -EFBIG;
        }
        buf[len] = '\0';
        *ret_data = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

int kos_write_all(int fd, const void *data, size_t len) {
        const uint8_t *p = data;

        while (len > 0) {
                ssize_t n = write(fd, p, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

/* The directory that holds dirfd/path, opened so it can be fsynced, and the
 * last component of path in *ret_base. */
static int open_parent_at(int dirfd, const char *path, const char **ret_base) {
        const char *slash = strrchr(path, '/');
        int fd;

        if (!slash) {
                *ret_base = path;
                fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        } else {
                char parent[4096];
                size_t n = slash == path ? 1 : (size_t)(slash - path);
                if (n >= sizeof parent)
                        return -ENAMETOOLONG;
                memcpy(parent, path, n);
                parent[n] = '\0';
                *ret_base = slash + 1;
                fd = openat(dirfd, parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        }
        if (fd < 0)
                return -errno;
        return **ret_base ? fd : (close(fd), -EISDIR);
}

int kos_write_file_atomic_at(int dirfd, const char *path, const void *data, size_t len, mode_t mode) {
        const char *name;
        char tmp[320];
        int r;

        _cleanup_close_ int parent = open_parent_at(dirfd, path, &name);
        if (parent < 0)
                return parent;
        if ((size_t)snprintf(tmp, sizeof tmp, ".tmp-%s-%d", name, (int)getpid()) >= sizeof tmp)
                return -ENAMETOOLONG;

        _cleanup_close_ int fd = kos_create_file_at(parent, tmp, mode);
        if (fd < 0)
                return fd;
        r = kos_write_all(fd, data, len);
        kos_fault_point();
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        kos_fault_point();
        if (r == 0 && renameat(parent, tmp, parent, name) < 0)
                r = -errno;
        kos_fault_point();
        if (r < 0) {
                (void)unlinkat(parent, tmp, 0);
                return r;
        }
        /* The rename is durable only once the directory itself is synced. */
        if (fsync(parent) < 0)
                return -errno;
        return 0;
}

void kos_redact_pin_values(const char *text, char *out, size_t size) {
        static const char key[] = "pin-value=";
        size_t n = 0;

        if (size == 0)
                return;
        for (const char *p = text; *p && n + 1 < size;) {
                if (strncasecmp(p, key, strlen(key)) == 0) {
                        size_t w = (size_t)snprintf(out + n, size - n, "%.*s***", (int)strlen(key), p);
                        n = w < size - n ? n + w : size - 1;
                        p += strlen(key);
                        p += strcspn(p, ";&");
                } else
                        out[n++] = *p++;
        }
        out[n] = '\0';
}

uint64_t kos_now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#ifdef KOS_FAULT_POINTS
static const char *fault_variable = "KOS_FAULT_AT";
static long fault_remaining = -1, fault_at;

void kos_fault_points_count(const char *variable) {
        fault_variable = variable;
        fault_remaining = -1;
}

void kos_fault_point(void) {
        if (fault_remaining == -1) {
                const char *v = getenv(fault_variable);
                char *end;
                long n = v ? strtol(v, &end, 10) : 0;
                fault_at = fault_remaining = v && *end == '\0' && n > 0 ? n : 0;
        }
        if (fault_remaining > 0 && --fault_remaining == 0) {
                /* Said first (stderr is unbuffered): a VM test cuts the
                 * machine's power when its console shows this line. */
                fprintf(stderr, "KOS-FAULT %s=%ld: killed at this fault point\n", fault_variable, fault_at);
                raise(SIGKILL);
        }
}
#endif
