/* SPDX-License-Identifier: MIT */
/* Anti-rollback: the device's rollback floor. A manifest whose
 * security_version is below it never boots and is never installed; marking
 * a boot good raises it to that manifest's security_version; it never goes
 * down. See docs/format.md, "Anti-rollback".
 *
 * Where the floor lives is this file's business alone: the ImageFS
 * (boot-state/rollback-floor, a decimal number), which stops old releases
 * coming through the update channel but not someone who rewrites the disk,
 * and, when the device has a TPM (kos_tpm_open()), the TPM's NV counter
 * (tpm.h, docs/tpm.md), which survives a rewritten disk. The floor is the
 * higher of the two; raising raises both. Selection, bundle installs and
 * marking good never look at the stores themselves. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imagefs.h"
#include "keyring.h"
#include "util.h"

#define KOS_ROLLBACK_FLOOR_FILE "rollback-floor" /* in boot-state/ */
#define KOS_ROLLBACK_FLOOR_FILE_MAX 64

enum kos_floor_source {
        KOS_FLOOR_SOURCE_NONE,    /* nothing stored yet: the floor is 0 */
        KOS_FLOOR_SOURCE_STORED,  /* read from the store */
        KOS_FLOOR_SOURCE_DERIVED, /* the store was unusable: derived from `active`, see warning */
        KOS_FLOOR_SOURCE_CALLER,  /* given by the caller (kos_select_options.floor) */
        KOS_FLOOR_SOURCE_TPM,     /* the TPM's NV counter, at or above the ImageFS's floor */
};

const char *kos_floor_source_to_string(enum kos_floor_source s);

struct kos_rollback_floor {
        uint32_t value; /* a manifest with a lower security_version is refused */
        enum kos_floor_source source;
        char warning[256]; /* non-empty when the store was unusable: say it loudly */
        bool tpm_used;     /* a TPM was found and its counter read: value >= tpm_value */
        uint32_t tpm_value;
        char tpm[512];     /* what the TPM side did: "no TPM", the counter, or why it is unusable */
};

/* What the store holds: 0 with *ret_value; -ENOENT when nothing is stored
 * yet (floor 0); -EBADMSG when what is stored is unusable (not a regular
 * file, not a decimal number from 0 to 2^32-1), ret_error says what; another
 * negative errno when it cannot be read. Never blocks on a FIFO. */
_kos_must_check_ int kos_rollback_store_read(const struct kos_imagefs *img, uint32_t *ret_value,
                                             struct kos_error *ret_error);

/* The floor to enforce. With a usable store, what it holds (0 when nothing
 * is stored). When the store is unusable (junk, a FIFO, an I/O error: the
 * ImageFS is writable by whoever has the disk) the floor fails safe, derived
 * from the manifests of `active` that authenticate against ring: the higher
 * of the lowest security_version among them and the highest among those
 * marked good (docs/format.md, "Anti-rollback", says why), so the device
 * keeps booting what it booted while nothing below is installed;
 * ret->warning says so. With no such manifest, 0 (and the warning).
 * With a TPM, the higher of that and the TPM's counter.
 * Returns 0; -ENOTRECOVERABLE when there is a TPM but its counter cannot be
 * read or is not exactly the KOS counter (ret->tpm says why; ret->value is
 * then UINT32_MAX): no floor can be trusted, so nothing may boot or be
 * installed, never the ImageFS floor alone (docs/tpm.md, "Refusals"); or
 * -ENOMEM. */
_kos_must_check_ int kos_rollback_floor_read(const struct kos_imagefs *img, const struct kos_keyring *ring,
                                             struct kos_rollback_floor *ret);

/* kos_rollback_floor_read() with what the caller has read already: active
 * (NULL: read here only if the floor must be derived from it) and boot-state/
 * opened once (selection: lib/boot/select.c). */
struct kos_active_list;
struct kos_boot_state_dir;
_kos_must_check_ int kos_rollback_floor_read_in(const struct kos_imagefs *img, const struct kos_keyring *ring,
                                                const struct kos_active_list *active,
                                                const struct kos_boot_state_dir *dir, struct kos_rollback_floor *ret);

/* Raises the stored floor to value, durably (atomic replace of the file,
 * fsync of boot-state/), then the TPM's counter when there is a TPM. Equal:
 * nothing is written. The floor never goes down: -ERANGE when a store holds
 * a higher value. An unusable file is replaced: the caller has checked value
 * against kos_rollback_floor_read(). -ENOTRECOVERABLE when the TPM's counter
 * cannot be raised, with ret_error saying why. */
_kos_must_check_ int kos_rollback_floor_raise(const struct kos_imagefs *img, uint32_t value,
                                              struct kos_error *ret_error);

/* The Boot Kernel's first step: makes the TPM's floor counter exist and
 * migrates its first definition (kos_tpm_floor_provision()). 0 with
 * ret_message saying what was found or done; -ENODEV when there is no TPM;
 * another negative errno when there is a TPM whose floor cannot be used:
 * the Boot Kernel then boots nothing. ret_message says which. */
int kos_rollback_tpm_prepare(char *ret_message, size_t message_size);
