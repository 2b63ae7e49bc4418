/* SPDX-License-Identifier: MIT */
/* Marking a boot good: the end of a manifest's trial and the one moment the
 * rollback floor rises. Node Manager and `kos mark-good` both call
 * kos_mark_good(), so every way of marking good raises the floor. See
 * docs/format.md, "Boot counting" and "Anti-rollback". */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "active.h"
#include "hash.h"
#include "imagefs.h"
#include "keyring.h"
#include "util.h"

struct kos_mark_good_result {
        char name[KOS_NAME_MAX + 4];
        uint32_t security_version; /* of the manifest marked good */
        uint32_t floor_before;     /* the floor enforced before */
        bool floor_raised;         /* the floor is now security_version, and was lower */
        size_t n_deactivated;      /* manifests taken out of active: below the new floor */
        char deactivated[KOS_ACTIVE_MAX][KOS_NAME_MAX + 4];
        size_t n_uninstalled; /* manifests uninstalled: below the floor, not in active (the first KOS_ACTIVE_MAX named) */
        char uninstalled[KOS_ACTIVE_MAX][KOS_NAME_MAX + 4];
        struct kos_error error; /* why, on -EBADMSG (and -EIO when the manifest cannot be read) */
};

/* Marks the installed manifest whose bytes hash to id good, in this order,
 * each step durable before the next, so a crash at any point is completed by
 * calling it again (Node Manager does on every boot):
 *   1. authenticates it against ring (checks 1 to 8 of selection) and
 *      checks it against the rollback floor: -EBADMSG with result->error
 *      ("rollback: ...") when it fails, nothing changed;
 *   2. its boot state becomes good (kos_boot_state_mark_good());
 *   3. the floor rises to its security_version (kos_rollback_floor_raise());
 *      a TPM whose counter cannot be read or raised: -EBADMSG with
 *      result->error saying why (docs/tpm.md, "Refusals");
 *   4. every manifest of active that authenticates and is below the new
 *      floor is taken out of active;
 *   5. every installed manifest that authenticates, is below the new floor
 *      and is not in active is uninstalled (its .json and .sig removed;
 *      the next install's gc removes its components): it can never boot
 *      here again. Best effort: the next call completes what a crash left.
 * Other negative errnos are I/O errors. */
_kos_must_check_ int kos_mark_good(const struct kos_imagefs *img, const struct kos_keyring *ring,
                                   const uint8_t id[static KOS_SHA256_LEN], struct kos_mark_good_result *result);
