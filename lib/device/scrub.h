/* SPDX-License-Identifier: MIT */
/* The scrub that confirms a boot (docs/format.md, "Boot counting"): every
 * byte of every "verify": "hash-tree" component is read through its
 * dm-verity mapping, which checks each block against the tree. A corrupt
 * block restarts the device there and then (restart_on_corruption), while
 * the unconfirmed marker is still on the ImageFS; only a scrub that read
 * every device to its end without an error lets Node Manager remove the
 * marker. The core here opens and reads; Node Manager runs it in a child
 * process at idle priority (node/scrub-child.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "boot-info.h"
#include "util.h"

/* Read size, and the alignment O_DIRECT needs (a dm-verity block). */
#define KOS_SCRUB_CHUNK (1024 * 1024)
#define KOS_SCRUB_ALIGN 4096

/* How a scrub ended; a result enum, since the reason matters to whoever
 * reads the journal. Only KOS_SCRUB_DONE lets the marker go. */
enum kos_scrub_result {
        KOS_SCRUB_DONE,            /* every device read to its end */
        KOS_SCRUB_CANNOT_OPEN,     /* missing, a symlink (O_NOFOLLOW), no permission */
        KOS_SCRUB_NOT_VERITY,      /* not a block device, or not a dm-verity mapping */
        KOS_SCRUB_READ_ERROR,      /* a read failed (EIO: dm-verity without restart, a dead disk) */
        KOS_SCRUB_ENDED_EARLY,     /* end of file before the device's size */
};

const char *kos_scrub_result_to_string(enum kos_scrub_result r);

/* Where a scrub stands; error names the device and the errno. */
struct kos_scrub_report {
        enum kos_scrub_result result;
        size_t n_done;        /* devices read to their end */
        uint64_t bytes;       /* read so far, all devices */
        uint64_t total;       /* the sum of the devices' sizes, once all are open */
        struct kos_error error; /* component (device): what */
};

/* The porting layer: the real one opens block devices (kos_scrub_open_device);
 * unit tests open regular files instead, and say so. */
struct kos_scrub_ops {
        /* 0 and an fd and its size in bytes, or a negative errno with result
         * set to why (CANNOT_OPEN or NOT_VERITY). */
        int (*open)(const char *path, int *ret_fd, uint64_t *ret_size, enum kos_scrub_result *ret_result);
        /* Called after every chunk; may be NULL. */
        void (*progress)(const struct kos_scrub_report *report, void *userdata);
        void *userdata;
};

/* Opens path for the scrub: O_RDONLY|O_CLOEXEC|O_NOFOLLOW|O_NOCTTY|O_NONBLOCK
 * (a symlink or a FIFO planted there is never followed nor waited on), then
 * it must be a block device whose device-mapper UUID
 * (/sys/dev/block/M:m/dm/uuid) says dm-verity: reading the plain loop
 * device under it would check nothing. O_DIRECT, so every read reaches
 * dm-verity (none is answered from a page cached before the block went bad)
 * and the scrub does not fill memory. */
_kos_must_check_ int kos_scrub_open_device(const char *path, int *ret_fd, uint64_t *ret_size,
                                           enum kos_scrub_result *ret_result);

/* A device-mapper UUID that libcryptsetup gives a dm-verity mapping:
 * "CRYPT-VERITY-...". */
_kos_must_check_ bool kos_scrub_uuid_is_verity(const char *uuid);

/* Reads fd sequentially from offset 0 to size, KOS_SCRUB_CHUNK at a time,
 * into an aligned buffer; report->bytes grows as it goes. 0 when exactly
 * size bytes were read; -EIO-like errnos for a failed read (report->result
 * READ_ERROR), -ENODATA when the data ended first (ENDED_EARLY). */
_kos_must_check_ int kos_scrub_read(int fd, uint64_t size, const struct kos_scrub_ops *ops,
                                    struct kos_scrub_report *report);

/* The whole scrub: opens every device of devices first (so total is known
 * and a missing one fails before anything is read), then reads each to its
 * end, in order, stopping at the first failure. 0 only with
 * report->result == KOS_SCRUB_DONE and n_done == n: the one case in which
 * the marker may be removed (kos_scrub_may_confirm()). */
_kos_must_check_ int kos_scrub_run(const struct kos_boot_info_hash_tree *devices, size_t n,
                                   const struct kos_scrub_ops *ops, struct kos_scrub_report *report);

/* The decision, kept apart so it has one place: every one of n devices was
 * read to its end, and the byte count adds up. */
_kos_must_check_ bool kos_scrub_may_confirm(const struct kos_scrub_report *report, size_t n);
