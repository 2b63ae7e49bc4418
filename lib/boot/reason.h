/* SPDX-License-Identifier: MIT */
/* Why a manifest was rejected: one code per check of selection, in the order
 * docs/format.md ("Selection") lists them. */
#pragma once

/* Stable, machine-readable codes: docs/format.md lists them; scripts match on
 * the strings, so a code is never renamed. */
enum kos_reason {
        KOS_REASON_NONE,
        KOS_REASON_MANIFEST_MISSING,
        KOS_REASON_MANIFEST_TOO_LARGE,
        KOS_REASON_SIGNATURE_MISSING,
        KOS_REASON_SIGNATURE_MALFORMED,
        KOS_REASON_KEY_UNTRUSTED,
        KOS_REASON_SIGNATURE_INVALID,
        KOS_REASON_MANIFEST_MALFORMED,
        KOS_REASON_NAME_MISMATCH,
        KOS_REASON_COMPONENT_MISSING,
        KOS_REASON_COMPONENT_NOT_REGULAR,
        KOS_REASON_COMPONENT_SIZE_MISMATCH,
        KOS_REASON_COMPONENT_HASH_MISMATCH,
        KOS_REASON_IO_ERROR,
        KOS_REASON_TRIES_EXHAUSTED,
        KOS_REASON_ROLLBACK, /* security_version below the device's rollback floor */
        KOS_REASON_HASH_TREE_MISMATCH, /* "verify": "hash-tree": superblock or tree does not lead to root_hash */
        KOS_REASON_VERITY_SUPERBLOCK_MISMATCH, /* "verity": the superblock is not one the System Kernel maps */
        KOS_REASON_KEY_REVOKED, /* signed only by keys the revocation list names */
        KOS_REASON_REVOCATION_LIST_STALE, /* revocation keys in the keyring, no valid list at least as new as the manifest */
        _KOS_REASON_MAX,
};

const char *kos_reason_to_string(enum kos_reason r);
