/* SPDX-License-Identifier: MIT */
#include "scrub.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define DM_UUID_MAX 4096 /* a sysfs attribute: st_size is a page */

const char *kos_scrub_result_to_string(enum kos_scrub_result r) {
        switch (r) {
        case KOS_SCRUB_DONE:
                return "done";
        case KOS_SCRUB_CANNOT_OPEN:
                return "cannot-open";
        case KOS_SCRUB_NOT_VERITY:
                return "not-verity";
        case KOS_SCRUB_READ_ERROR:
                return "read-error";
        case KOS_SCRUB_ENDED_EARLY:
                return "ended-early";
        }
        return "?";
}

bool kos_scrub_uuid_is_verity(const char *uuid) {
        return strncmp(uuid, "CRYPT-VERITY-", 13) == 0;
}

/* The device-mapper UUID of the block device rdev says dm-verity. */
static int check_dm_verity(dev_t rdev) {
        _cleanup_free_ char *uuid = NULL;
        char path[96];
        size_t len;

        snprintf(path, sizeof path, "/sys/dev/block/%u:%u/dm/uuid", major(rdev), minor(rdev));
        int r = kos_read_file_at(AT_FDCWD, path, DM_UUID_MAX, &uuid, &len);
        if (r == -ENOENT)
                return -ENOTBLK; /* not a device-mapper device at all */
        if (r < 0)
                return r;
        return kos_scrub_uuid_is_verity(uuid) ? 0 : -ENOTBLK;
}

int kos_scrub_open_device(const char *path, int *ret_fd, uint64_t *ret_size, enum kos_scrub_result *ret_result) {
        struct stat st;
        uint64_t size;

        *ret_result = KOS_SCRUB_CANNOT_OPEN;
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        *ret_result = KOS_SCRUB_NOT_VERITY;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISBLK(st.st_mode))
                return -ENOTBLK;
        int r = check_dm_verity(st.st_rdev);
        if (r < 0)
                return r;
        if (ioctl(fd, BLKGETSIZE64, &size) < 0)
                return -errno;
        /* Blocking reads from here; O_DIRECT where the device takes it
         * (dm devices do), else the reads go through the page cache and
         * kos_scrub_read() drops each chunk after it. */
        if (fcntl(fd, F_SETFL, O_DIRECT) < 0 && fcntl(fd, F_SETFL, 0) < 0)
                return -errno;
        *ret_result = KOS_SCRUB_DONE;
        *ret_size = size;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* One chunk at offset: the bytes read (short only at the end), or -errno.
 * EINTR is retried; nothing else is (a read error is the finding). */
static ssize_t read_chunk(int fd, void *buf, size_t len, uint64_t offset) {
        for (;;) {
                ssize_t n = pread(fd, buf, len, (off_t)offset);
                if (n >= 0)
                        return n;
                if (errno != EINTR)
                        return -errno;
        }
}

int kos_scrub_read(int fd, uint64_t size, const struct kos_scrub_ops *ops, struct kos_scrub_report *report) {
        _cleanup_free_ void *buf = NULL;
        uint64_t offset = 0;

        if (posix_memalign(&buf, KOS_SCRUB_ALIGN, KOS_SCRUB_CHUNK) != 0)
                return -ENOMEM;
        while (offset < size) {
                size_t want = size - offset < KOS_SCRUB_CHUNK ? (size_t)(size - offset) : KOS_SCRUB_CHUNK;
                ssize_t n = read_chunk(fd, buf, want, offset);
                if (n < 0) {
                        report->result = KOS_SCRUB_READ_ERROR;
                        return kos_error_set(&report->error, (int)n, "read error at byte %llu: %s",
                                             (unsigned long long)offset, strerror((int)-n));
                }
                if (n == 0) {
                        report->result = KOS_SCRUB_ENDED_EARLY;
                        return kos_error_set(&report->error, -ENODATA, "ended at byte %llu of %llu",
                                             (unsigned long long)offset, (unsigned long long)size);
                }
                /* Without O_DIRECT, what was read leaves the cache again. */
                (void)posix_fadvise(fd, (off_t)offset, n, POSIX_FADV_DONTNEED);
                offset += (uint64_t)n;
                report->bytes += (uint64_t)n;
                if (ops->progress)
                        ops->progress(report, ops->userdata);
        }
        return 0;
}

static void close_all(int *fds, size_t n) {
        for (size_t i = 0; i < n; i++)
                kos_closep(&fds[i]);
}

/* Opens every device; sets report->total. On failure, report says which. */
static int open_all(const struct kos_boot_info_hash_tree *devices, size_t n, const struct kos_scrub_ops *ops,
                    int *fds, uint64_t *sizes, struct kos_scrub_report *report) {
        for (size_t i = 0; i < n; i++) {
                int r = ops->open(devices[i].device, &fds[i], &sizes[i], &report->result);
                if (r < 0) {
                        kos_error_set(&report->error, r, "%s (%s): %s", devices[i].component, devices[i].device,
                                      r == -ENOTBLK ? "not a dm-verity block device" : strerror(-r));
                        close_all(fds, i);
                        return r;
                }
                if (__builtin_add_overflow(report->total, sizes[i], &report->total)) {
                        close_all(fds, i + 1);
                        report->result = KOS_SCRUB_NOT_VERITY;
                        return kos_error_set(&report->error, -EOVERFLOW, "sizes overflow");
                }
        }
        return 0;
}

int kos_scrub_run(const struct kos_boot_info_hash_tree *devices, size_t n, const struct kos_scrub_ops *ops,
                  struct kos_scrub_report *report) {
        int fds[KOS_MANIFEST_MAX_COMPONENTS];
        uint64_t sizes[KOS_MANIFEST_MAX_COMPONENTS];
        int r;

        *report = (struct kos_scrub_report){.result = KOS_SCRUB_DONE};
        if (n > KOS_MANIFEST_MAX_COMPONENTS)
                return -E2BIG;
        if ((r = open_all(devices, n, ops, fds, sizes, report)) < 0)
                return r;
        for (size_t i = 0; i < n && r >= 0; i++) {
                r = kos_scrub_read(fds[i], sizes[i], ops, report);
                if (r < 0) /* name the device in front of what kos_scrub_read() said */
                        kos_error_prefix(&report->error, "%s (%s): ", devices[i].component, devices[i].device);
                else
                        report->n_done++;
        }
        close_all(fds, n);
        return r;
}

bool kos_scrub_may_confirm(const struct kos_scrub_report *report, size_t n) {
        return report->result == KOS_SCRUB_DONE && report->n_done == n && report->bytes == report->total;
}
