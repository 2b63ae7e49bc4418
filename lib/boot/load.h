/* SPDX-License-Identifier: MIT */
/* An installed manifest, loaded as selection loads it: read beneath the
 * ImageFS, its signature checked over the exact bytes, then parsed strictly,
 * by name or by the id (sha256) of its bytes; and the verdict on it, with a
 * reason. Selection (select.h) and everything that acts on installed
 * manifests (the rollback floor, gc, marking good, bundle installs, the
 * System Kernel, Node Manager) use these. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "active.h"
#include "imagefs.h"
#include "keyring.h"
#include "manifest.h"
#include "reason.h"

enum kos_verdict {
        KOS_VERDICT_VALID,
        KOS_VERDICT_REJECTED,
        KOS_VERDICT_SKIPPED, /* after the selected one: not examined */
};

const char *kos_verdict_to_string(enum kos_verdict v);

struct kos_candidate {
        char name[KOS_NAME_MAX + 4];
        bool has_id;
        uint8_t id[KOS_SHA256_LEN]; /* sha256 of the manifest file's bytes */
        enum kos_verdict verdict;
        enum kos_reason reason;
        char detail[320];
        uint8_t signer[KOS_KEY_ID_LEN]; /* valid only when verdict is VALID */
        uint64_t elapsed_ns;
        uint64_t hashed_bytes;
        bool on_trial;        /* valid, boot counting: tries_left after this boot */
        unsigned tries_left;
        /* How each component was checked, once selection got to them:
         * checks[i] for components[i], n_checks of them (else 0). */
        size_t n_checks;
        enum kos_verify checks[KOS_MANIFEST_MAX_COMPONENTS];
        /* Set when components marked "verify": "hash-tree" were checked
         * with full sha256 instead, saying why (the last boot was not
         * confirmed: boot-state/<id>.unconfirmed). */
        char full_check_why[128];
};

/* (Here, not in imagefs.h: it reads `active`, which names ImageFS files.) */
/* Finds the installed manifest whose exact bytes hash to id: the names of
 * `active` first, in order, then every manifests/<name>.json. 0 with its name
 * in ret_name, or -ENOENT. Nothing is authenticated: load it with
 * kos_load_manifest() and compare the id that returns before trusting it. */
_kos_must_check_ int kos_imagefs_find_manifest_by_id(const struct kos_imagefs *img, const uint8_t id[static KOS_SHA256_LEN],
                                    char ret_name[static KOS_NAME_MAX + 1]);

/* Rejects c with reason and a printf-style detail; returns false. */
bool kos_candidate_reject(struct kos_candidate *c, enum kos_reason reason, const char *format, ...)
        __attribute__((format(printf, 3, 4)));

/* Checks 1 to 8 of selection (present, size cap, signature, strict parse,
 * name) without touching components: true with *ret_manifest set, or false
 * with c saying why. c->id is set once the bytes were read. */
_kos_must_check_ bool kos_load_manifest(const struct kos_imagefs *img, const struct kos_keyring *ring, const char *name,
                       struct kos_candidate *c, struct kos_manifest **ret_manifest);

/* kos_load_manifest() for the installed manifest whose bytes hash to id
 * (kos_imagefs_find_manifest_by_id(): active first, then every installed
 * one): true with *ret_manifest set, or false with c saying why
 * (manifest-missing when no installed manifest has that id). */
_kos_must_check_ bool kos_load_manifest_by_id(const struct kos_imagefs *img, const struct kos_keyring *ring,
                             const uint8_t id[static KOS_SHA256_LEN], struct kos_candidate *c,
                             struct kos_manifest **ret_manifest);

/* The rollback check of selection (right after checks 1 to 8): false with
 * c rejected (rollback) when m's security_version is below floor. */
_kos_must_check_ bool kos_check_rollback(const struct kos_manifest *m, uint32_t floor, struct kos_candidate *c);
