/* SPDX-License-Identifier: MIT */
/* The recovery drive: see datafs-recover-drive.h. */
#include "datafs-recover-drive.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "early.h"
#include "util.h"

#define RECOVERY_HEX_LEN (2 * KOS_DATAFS_RECOVERY_KEY_LEN)

int datafs_recovery_pass_parse(const char *untrusted, size_t len, char ret[static KOS_DATAFS_RECOVERY_PASS_MAX],
                               struct kos_error *ret_error) {
        if (len == RECOVERY_HEX_LEN + 1 && untrusted[RECOVERY_HEX_LEN] == '\n')
                len--;
        if (len != RECOVERY_HEX_LEN)
                return kos_error_set(ret_error, -EBADMSG, "%zu bytes, not %d hex digits (and one newline)", len,
                                     RECOVERY_HEX_LEN);
        for (size_t i = 0; i < len; i++) {
                char c = untrusted[i];
                if (c >= 'A' && c <= 'F')
                        c = (char)(c - 'A' + 'a');
                if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
                        explicit_bzero(ret, KOS_DATAFS_RECOVERY_PASS_MAX);
                        return kos_error_set(ret_error, -EBADMSG, "byte %zu is not a hex digit", i);
                }
                ret[i] = c;
        }
        ret[len] = '\0';
        return 0;
}

int datafs_recovery_pass_read(int dirfd, char ret[static KOS_DATAFS_RECOVERY_PASS_MAX], struct kos_error *ret_error) {
        char buf[DATAFS_RECOVERY_DRIVE_FILE_MAX + 1];
        struct stat st;
        ssize_t n;
        size_t len = 0;
        int r;

        _cleanup_close_ int fd = openat(dirfd, DATAFS_RECOVERY_DRIVE_FILE,
                                        O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (fd < 0)
                return kos_error_set(ret_error, -errno, "no file " DATAFS_RECOVERY_DRIVE_FILE " at its root (%m)");
        if (fstat(fd, &st) < 0)
                return kos_error_set(ret_error, -errno, "fstat: %m");
        if (!S_ISREG(st.st_mode))
                return kos_error_set(ret_error, -EBADMSG, DATAFS_RECOVERY_DRIVE_FILE " is not a regular file");
        /* One byte more than the cap: a longer file is seen as such. */
        while (len < sizeof buf && (n = read(fd, buf + len, sizeof buf - len)) != 0) {
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return kos_error_set(ret_error, -errno, "read: %m");
                len += (size_t)n;
        }
        if (len > DATAFS_RECOVERY_DRIVE_FILE_MAX)
                r = kos_error_set(ret_error, -EBADMSG, DATAFS_RECOVERY_DRIVE_FILE " is longer than %d bytes",
                                  DATAFS_RECOVERY_DRIVE_FILE_MAX);
        else if ((r = datafs_recovery_pass_parse(buf, len, ret, ret_error)) < 0)
                kos_error_prefix(ret_error, DATAFS_RECOVERY_DRIVE_FILE ": ");
        explicit_bzero(buf, sizeof buf);
        return r;
}

int datafs_recovery_drive_read(unsigned timeout_ms, char ret_device[static 64],
                               char ret[static KOS_DATAFS_RECOVERY_PASS_MAX], struct kos_error *ret_error) {
        struct early_device dev;
        int r = early_find_device("LABEL=" DATAFS_RECOVERY_DRIVE_LABEL, timeout_ms, &dev);

        if (r == -ETIMEDOUT || r == -ENOENT)
                return kos_error_set(ret_error, -ENOENT, "no device labelled " DATAFS_RECOVERY_DRIVE_LABEL);
        if (r == -ENOTUNIQ)
                return kos_error_set(ret_error, r, "more than one device labelled " DATAFS_RECOVERY_DRIVE_LABEL
                                                   " (listed above): none is used");
        if (r < 0)
                return kos_error_set(ret_error, r, "cannot list the block devices: %s", strerror(-r));
        snprintf(ret_device, 64, "%s", dev.path);
        /* ext4's "noload": a read-only mount that replays no journal, so
         * nothing is written to the drive either. */
        const char *options = strcmp(dev.type, "ext4") == 0 ? "noload" : NULL;
        if (strcmp(dev.type, "vfat") != 0 && strcmp(dev.type, "ext4") != 0)
                return kos_error_set(ret_error, -EMEDIUMTYPE, "%s holds %s, not vfat or ext4", dev.path,
                                     dev.type[0] ? dev.type : "no file system");
        if (mkdir(DATAFS_RECOVERY_DRIVE_MOUNT, 0700) < 0 && errno != EEXIST)
                return kos_error_set(ret_error, -errno, "mkdir " DATAFS_RECOVERY_DRIVE_MOUNT ": %m");
        if (mount(dev.path, DATAFS_RECOVERY_DRIVE_MOUNT, dev.type, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  options) < 0) {
                r = kos_error_set(ret_error, -errno, "cannot mount %s (%s) read-only: %m", dev.path, dev.type);
                (void)rmdir(DATAFS_RECOVERY_DRIVE_MOUNT);
                return r;
        }
        int dirfd = open(DATAFS_RECOVERY_DRIVE_MOUNT, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        r = dirfd < 0 ? kos_error_set(ret_error, -errno, "open " DATAFS_RECOVERY_DRIVE_MOUNT ": %m")
                      : datafs_recovery_pass_read(dirfd, ret, ret_error);
        if (dirfd >= 0)
                close(dirfd);
        if (umount2(DATAFS_RECOVERY_DRIVE_MOUNT, MNT_DETACH) < 0)
                early_log("DataFS: cannot unmount the recovery drive %s: %m", dev.path);
        (void)rmdir(DATAFS_RECOVERY_DRIVE_MOUNT);
        return r;
}

int datafs_recovery_keyslot(struct crypt_device *cd) {
        for (int token = 0; token < 32; token++) {
                const char *type = NULL;
                crypt_token_info info = crypt_token_status(cd, token, &type);
                if (info == CRYPT_TOKEN_INVALID || info == CRYPT_TOKEN_INACTIVE || !type ||
                    strcmp(type, KOS_DATAFS_RECOVERY_TOKEN) != 0)
                        continue;
                for (int keyslot = 0; keyslot < 32; keyslot++)
                        if (crypt_token_is_assigned(cd, token, keyslot) == 0)
                                return keyslot;
        }
        return -ENOENT;
}

int datafs_recovery_volume_key(struct crypt_device *cd, const char *pass, uint8_t *ret_key, size_t size,
                               int *ret_keyslot) {
        int keyslot = datafs_recovery_keyslot(cd);

        if (keyslot < 0)
                return keyslot;
        *ret_keyslot = keyslot;
        size_t len = size;
        int r = crypt_volume_key_get(cd, keyslot, (char *)ret_key, &len, pass, strlen(pass));
        if (r < 0) {
                explicit_bzero(ret_key, size);
                return r == -EPERM || r == -ENOENT ? -EPERM : r;
        }
        return (int)len;
}
