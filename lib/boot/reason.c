/* SPDX-License-Identifier: MIT */
#include "reason.h"

static const char *const reason_names[_KOS_REASON_MAX] = {
        [KOS_REASON_NONE] = "none",
        [KOS_REASON_MANIFEST_MISSING] = "manifest-missing",
        [KOS_REASON_MANIFEST_TOO_LARGE] = "manifest-too-large",
        [KOS_REASON_SIGNATURE_MISSING] = "signature-missing",
        [KOS_REASON_SIGNATURE_MALFORMED] = "signature-malformed",
        [KOS_REASON_KEY_UNTRUSTED] = "key-untrusted",
        [KOS_REASON_SIGNATURE_INVALID] = "signature-invalid",
        [KOS_REASON_MANIFEST_MALFORMED] = "manifest-malformed",
        [KOS_REASON_NAME_MISMATCH] = "name-mismatch",
        [KOS_REASON_COMPONENT_MISSING] = "component-missing",
        [KOS_REASON_COMPONENT_NOT_REGULAR] = "component-not-regular",
        [KOS_REASON_COMPONENT_SIZE_MISMATCH] = "component-size-mismatch",
        [KOS_REASON_COMPONENT_HASH_MISMATCH] = "component-hash-mismatch",
        [KOS_REASON_IO_ERROR] = "io-error",
        [KOS_REASON_TRIES_EXHAUSTED] = "tries-exhausted",
        [KOS_REASON_ROLLBACK] = "rollback",
        [KOS_REASON_HASH_TREE_MISMATCH] = "hash-tree-mismatch",
        [KOS_REASON_VERITY_SUPERBLOCK_MISMATCH] = "verity-superblock-mismatch",
        [KOS_REASON_KEY_REVOKED] = "key-revoked",
        [KOS_REASON_REVOCATION_LIST_STALE] = "revocation-list-stale",
};

const char *kos_reason_to_string(enum kos_reason r) {
        return r < _KOS_REASON_MAX ? reason_names[r] : "unknown";
}
