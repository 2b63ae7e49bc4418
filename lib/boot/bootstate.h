/* SPDX-License-Identifier: MIT */
/* Boot counting that survives kexec, kept on the ImageFS in boot-state/:
 *   boot-state/<manifest id>.tries-<N>   on trial, N boots left (0 to 99)
 *   boot-state/<manifest id>.good        marked good by Node Manager
 *   neither                              not on trial (treated as good)
 *   boot-state/<manifest id>.unconfirmed a boot of a manifest with "verify":
 *                                        "hash-tree" components that was not
 *                                        confirmed yet (independent of the above)
 * Every change is one rename (or one atomic create) and an fsync of the
 * directory, so a power cut leaves the old or the new state. See
 * docs/format.md, "Boot counting". */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "hash.h"
#include "imagefs.h"
#include "layout.h"
#include "util.h"

#define KOS_TRIES_MAX 99

enum kos_boot_state_kind {
        KOS_BOOT_STATE_NONE,
        KOS_BOOT_STATE_TRIES,
        KOS_BOOT_STATE_GOOD,
};

struct kos_boot_state {
        enum kos_boot_state_kind kind;
        unsigned tries_left; /* with KOS_BOOT_STATE_TRIES */
};

/* boot-state/ opened once for reading, so that a walk over many manifests
 * (selection) looks at one directory: fd is -1 when it could not be opened,
 * error then says why (-ENOENT: there is none, which reads as no state). */
struct kos_boot_state_dir {
        int fd;
        int error;
};

void kos_boot_state_dir_open(const struct kos_imagefs *img, struct kos_boot_state_dir *ret);
void kos_boot_state_dir_close(struct kos_boot_state_dir *d);

/* kos_boot_state_read() and kos_boot_state_is_unconfirmed() in an open
 * boot-state/. */
_kos_must_check_ int kos_boot_state_read_in(const struct kos_boot_state_dir *d, const uint8_t id[static KOS_SHA256_LEN],
                                            struct kos_boot_state *ret);
_kos_must_check_ int kos_boot_state_is_unconfirmed_in(const struct kos_boot_state_dir *d,
                                                      const uint8_t id[static KOS_SHA256_LEN], bool *ret);

/* Reads the state of a manifest id; a missing boot-state/ is NONE. */
_kos_must_check_ int kos_boot_state_read(const struct kos_imagefs *img, const uint8_t id[static KOS_SHA256_LEN], struct kos_boot_state *ret);
/* Puts a manifest on trial with tries boots (replacing any state). */
_kos_must_check_ int kos_boot_state_set_tries(const struct kos_imagefs *img, const uint8_t id[static KOS_SHA256_LEN], unsigned tries);
/* One boot used: tries-N becomes tries-(N-1), durably, before the caller boots it. */
_kos_must_check_ int kos_boot_state_consume_try(const struct kos_imagefs *img, const uint8_t id[static KOS_SHA256_LEN], unsigned *ret_left);
/* tries-N becomes good; good stays good; NONE becomes good. The boot state
 * alone: it does not raise the rollback floor. Marking a boot good is
 * kos_mark_good() (lib/device/mark-good.h), which calls this and raises the floor. */
_kos_must_check_ int kos_boot_state_mark_good(const struct kos_imagefs *img, const uint8_t id[static KOS_SHA256_LEN]);

/* The unconfirmed marker (docs/format.md, "Boot counting"): the Boot Kernel
 * sets it before it boots a manifest whose components are checked by their
 * hash tree alone; Node Manager clears it once the boot is confirmed
 * (marked good, then every hash-tree block read: lib/device/scrub.h). Found
 * at selection, it means the last such boot never got that far (a dm-verity
 * restart on a corrupt block, a crash): selection then checks those
 * components with full sha256. It is unsigned state: an entry of any type
 * under that name counts as present (costing only a full check) and is
 * never opened or followed. */
_kos_must_check_ int kos_boot_state_is_unconfirmed(const struct kos_imagefs *img, const uint8_t id[static KOS_SHA256_LEN],
                                                   bool *ret);
/* Creates the marker as an empty file (atomically, then fsync of
 * boot-state/) unless an entry of that name exists already. */
_kos_must_check_ int kos_boot_state_set_unconfirmed(const struct kos_imagefs *img, const uint8_t id[static KOS_SHA256_LEN]);
/* Removes the marker, whatever its type (an empty directory too), durably;
 * none is not an error. -ENOTEMPTY for a directory with entries, which is
 * left alone (every boot then checks in full: denial of service only). */
_kos_must_check_ int kos_boot_state_confirm(const struct kos_imagefs *img, const uint8_t id[static KOS_SHA256_LEN]);
