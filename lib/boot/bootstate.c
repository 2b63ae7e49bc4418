/* SPDX-License-Identifier: MIT */
#include "bootstate.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

static int open_state_dir(const struct kos_imagefs *img, bool create) {
        if (create) {
                /* A new boot-state/ is made durable in its parent before
                 * anything written into it is trusted to survive. */
                if (mkdirat(img->root_fd, KOS_BOOT_STATE_DIR, 0755) == 0) {
                        if (fsync(img->root_fd) < 0)
                                return -errno;
                } else if (errno != EEXIST)
                        return -errno;
        }
        int fd = openat(img->root_fd, KOS_BOOT_STATE_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        return fd < 0 ? -errno : fd;
}

/* Finds "<hex>.tries-N" or "<hex>.good" in dirfd. ret_name gets the entry. */
static int find_state(int dirfd, const char *hex, struct kos_boot_state *ret, char ret_name[static 256]) {
        DIR *d = fdopendir(fcntl(dirfd, F_DUPFD_CLOEXEC, 3));
        size_t hex_len = strlen(hex);

        *ret = (struct kos_boot_state){KOS_BOOT_STATE_NONE, 0};
        if (!d)
                return -errno;
        rewinddir(d);
        for (struct dirent *de; (de = readdir(d));) {
                const char *n = de->d_name;
                if (strncmp(n, hex, hex_len) != 0 || n[hex_len] != '.')
                        continue;
                const char *suffix = n + hex_len + 1;
                if (strcmp(suffix, "good") == 0) {
                        *ret = (struct kos_boot_state){KOS_BOOT_STATE_GOOD, 0};
                        snprintf(ret_name, 256, "%s", n);
                        break; /* good wins over any leftover tries entry */
                }
                if (strncmp(suffix, "tries-", 6) == 0) {
                        char *end;
                        unsigned long left = strtoul(suffix + 6, &end, 10);
                        if (*end || end == suffix + 6 || left > KOS_TRIES_MAX)
                                continue; /* not ours: ignored, never trusted */
                        if (ret->kind != KOS_BOOT_STATE_TRIES || left < ret->tries_left) {
                                *ret = (struct kos_boot_state){KOS_BOOT_STATE_TRIES, (unsigned)left};
                                snprintf(ret_name, 256, "%s", n);
                        }
                }
        }
        closedir(d);
        return 0;
}

void kos_boot_state_dir_open(const struct kos_imagefs *img, struct kos_boot_state_dir *ret) {
        int fd = open_state_dir(img, false);

        *ret = (struct kos_boot_state_dir){.fd = fd < 0 ? -1 : fd, .error = fd < 0 ? fd : 0};
}

void kos_boot_state_dir_close(struct kos_boot_state_dir *d) {
        kos_closep(&d->fd);
}

int kos_boot_state_read_in(const struct kos_boot_state_dir *d, const uint8_t id[static KOS_SHA256_LEN],
                           struct kos_boot_state *ret) {
        char hex[KOS_SHA256_HEX_LEN + 1], name[256];

        *ret = (struct kos_boot_state){KOS_BOOT_STATE_NONE, 0};
        if (d->fd < 0)
                return d->error == -ENOENT ? 0 : d->error;
        kos_hex_encode(id, KOS_SHA256_LEN, hex);
        return find_state(d->fd, hex, ret, name);
}

int kos_boot_state_read(const struct kos_imagefs *img, const uint8_t id[static KOS_SHA256_LEN], struct kos_boot_state *ret) {
        struct kos_boot_state_dir d;

        kos_boot_state_dir_open(img, &d);
        int r = kos_boot_state_read_in(&d, id, ret);
        kos_boot_state_dir_close(&d);
        return r;
}

/* The state entry of one manifest, with boot-state/ open. */
struct state_entry {
        int dirfd;
        char hex[KOS_SHA256_HEX_LEN + 1];
        char name[256]; /* the entry found, if st.kind != NONE */
        struct kos_boot_state st;
};

static int state_open(const struct kos_imagefs *img, const uint8_t id[static KOS_SHA256_LEN], bool create,
                      struct state_entry *e) {
        int r;

        e->dirfd = open_state_dir(img, create);
        if (e->dirfd < 0)
                return e->dirfd;
        kos_hex_encode(id, KOS_SHA256_LEN, e->hex);
        if ((r = find_state(e->dirfd, e->hex, &e->st, e->name)) < 0)
                kos_closep(&e->dirfd);
        return r;
}

/* Makes "<hex>.<suffix>" the entry: one rename of the old entry when there is
 * one, so there is never a moment with no state or two states, else a new
 * empty file; durable either way. Closes e->dirfd. */
static int state_replace(struct state_entry *e, const char *suffix) {
        char name[96];
        int r = 0;

        snprintf(name, sizeof name, "%s.%s", e->hex, suffix);
        if (e->st.kind == KOS_BOOT_STATE_NONE)
                r = kos_write_file_atomic_at(e->dirfd, name, "", 0, 0644);
        else if (renameat(e->dirfd, e->name, e->dirfd, name) < 0 || fsync(e->dirfd) < 0)
                r = -errno;
        kos_closep(&e->dirfd);
        return r;
}

int kos_boot_state_set_tries(const struct kos_imagefs *img, const uint8_t id[static KOS_SHA256_LEN], unsigned tries) {
        struct state_entry e;
        char suffix[32];
        int r;

        if (tries > KOS_TRIES_MAX)
                return -ERANGE;
        if ((r = state_open(img, id, true, &e)) < 0)
                return r;
        snprintf(suffix, sizeof suffix, "tries-%u", tries);
        return state_replace(&e, suffix);
}

int kos_boot_state_consume_try(const struct kos_imagefs *img, const uint8_t id[static KOS_SHA256_LEN], unsigned *ret_left) {
        struct state_entry e;
        char suffix[32];
        int r;

        if ((r = state_open(img, id, false, &e)) < 0)
                return r;
        if (e.st.kind != KOS_BOOT_STATE_TRIES || e.st.tries_left == 0) {
                kos_closep(&e.dirfd);
                return -ESTALE;
        }
        snprintf(suffix, sizeof suffix, "tries-%u", e.st.tries_left - 1);
        if ((r = state_replace(&e, suffix)) < 0)
                return r;
        *ret_left = e.st.tries_left - 1;
        return 0;
}

int kos_boot_state_mark_good(const struct kos_imagefs *img, const uint8_t id[static KOS_SHA256_LEN]) {
        struct state_entry e;
        int r;

        if ((r = state_open(img, id, true, &e)) < 0)
                return r;
        if (e.st.kind == KOS_BOOT_STATE_GOOD) {
                kos_closep(&e.dirfd);
                return 0;
        }
        return state_replace(&e, "good");
}

static void unconfirmed_name(const uint8_t id[static KOS_SHA256_LEN], char ret[static KOS_SHA256_HEX_LEN + 16]) {
        kos_hex_encode(id, KOS_SHA256_LEN, ret);
        strcat(ret, ".unconfirmed");
}

/* Looked at with fstatat() only: a FIFO, symlink or device there is
 * present, never opened, never followed. */
static int unconfirmed_present(int dirfd, const char *name, bool *ret) {
        struct stat st;

        if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
                *ret = true;
                return 0;
        }
        if (errno != ENOENT)
                return -errno;
        *ret = false;
        return 0;
}

/* boot-state/ opened (not created) and the marker's name; -ENOENT when
 * there is no boot-state/, so no marker either. */
static int open_marker(const struct kos_imagefs *img, const uint8_t id[static KOS_SHA256_LEN], bool create,
                       char ret_name[static KOS_SHA256_HEX_LEN + 16]) {
        unconfirmed_name(id, ret_name);
        return open_state_dir(img, create);
}

int kos_boot_state_is_unconfirmed_in(const struct kos_boot_state_dir *d, const uint8_t id[static KOS_SHA256_LEN],
                                     bool *ret) {
        char name[KOS_SHA256_HEX_LEN + 16];

        *ret = false;
        if (d->fd < 0)
                return d->error == -ENOENT ? 0 : d->error;
        unconfirmed_name(id, name);
        return unconfirmed_present(d->fd, name, ret);
}

int kos_boot_state_is_unconfirmed(const struct kos_imagefs *img, const uint8_t id[static KOS_SHA256_LEN], bool *ret) {
        struct kos_boot_state_dir d;

        kos_boot_state_dir_open(img, &d);
        int r = kos_boot_state_is_unconfirmed_in(&d, id, ret);
        kos_boot_state_dir_close(&d);
        return r;
}

int kos_boot_state_set_unconfirmed(const struct kos_imagefs *img, const uint8_t id[static KOS_SHA256_LEN]) {
        char name[KOS_SHA256_HEX_LEN + 16];
        bool present;
        int r;

        _cleanup_close_ int dirfd = open_marker(img, id, true, name);
        if (dirfd < 0)
                return dirfd;
        if ((r = unconfirmed_present(dirfd, name, &present)) < 0)
                return r;
        /* Whatever is there already says "unconfirmed"; a directory could
         * not be renamed over anyway. */
        return present ? 0 : kos_write_file_atomic_at(dirfd, name, "", 0, 0644);
}

int kos_boot_state_confirm(const struct kos_imagefs *img, const uint8_t id[static KOS_SHA256_LEN]) {
        char name[KOS_SHA256_HEX_LEN + 16];

        _cleanup_close_ int dirfd = open_marker(img, id, false, name);
        if (dirfd == -ENOENT)
                return 0;
        if (dirfd < 0)
                return dirfd;
        /* unlink(2) removes a symlink itself, a FIFO or a device node without
         * opening it; a directory needs AT_REMOVEDIR (EISDIR on Linux). */
        if (unlinkat(dirfd, name, 0) < 0) {
                if (errno == ENOENT)
                        return 0;
                if (errno != EISDIR && errno != EPERM)
                        return -errno;
                if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0)
                        return errno == ENOENT ? 0 : -errno;
        }
        return fsync(dirfd) < 0 ? -errno : 0;
}
