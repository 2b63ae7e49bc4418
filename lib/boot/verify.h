/* SPDX-License-Identifier: MIT */
/* Authenticate, then parse: the one home of "read the manifest's exact bytes
 * and its signature file with their caps, verify a signature by a key of the
 * keyring over those bytes, then parse the same buffer strictly". Selection,
 * bundle installs, gc and the kos tool all load manifests through here.
 * Checks 1 to 7 of docs/format.md, "Selection"; check 8 (the name) is the
 * caller's, who alone knows which name it expects. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hash.h"
#include "keyring.h"
#include "manifest.h"
#include "reason.h"
#include "util.h"

struct kos_loaded_manifest {
        struct kos_manifest *manifest; /* parsed; NULL unless loading succeeded */
        bool authenticated;            /* a signature by a key of the keyring verified */
        bool has_id;                   /* the manifest's bytes were read */
        uint8_t id[KOS_SHA256_LEN];    /* sha256 of those exact bytes */
        uint8_t signer[KOS_KEY_ID_LEN]; /* the key that verified, when authenticated */
        enum kos_reason reason;        /* KOS_REASON_NONE on success */
        struct kos_error error;        /* for people: what failed and where; its code is what was returned */
        /* With the _at() functions: the bytes read (owned; freed by
         * kos_loaded_manifest_done()), so a caller installs exactly them.
         * They are authenticated only when authenticated is true. */
        char *json, *sig;
        size_t json_len, sig_len;
};

/* Verifies untrusted_sig (a signature file) against ring over the exact
 * bytes of untrusted_json, then parses untrusted_json strictly. label names
 * the manifest in messages. 0 with ret->manifest set; -EBADMSG with
 * ret->reason and ret->error; -ENOMEM. Release with kos_loaded_manifest_done(). */
_kos_must_check_ int kos_manifest_load_verified(const struct kos_keyring *ring, const char *untrusted_json, size_t json_len,
                               const char *untrusted_sig, size_t sig_len, const char *label,
                               struct kos_loaded_manifest *ret);

/* The same from files: dirfd/json_path and dirfd/sig_path, each read with
 * its cap (KOS_MANIFEST_MAX, KOS_SIGNATURE_FILE_MAX), never following a
 * symlink, never blocking on a FIFO. label_dir is put before the paths in
 * messages ("manifests/"). Returns as above; I/O errors are reason
 * KOS_REASON_IO_ERROR with their negative errno. */
_kos_must_check_ int kos_manifest_load_verified_at(const struct kos_keyring *ring, int dirfd, const char *json_path, const char *sig_path,
                                  const char *label_dir, struct kos_loaded_manifest *ret);

/* Host tools only, where no keyring was given (kos install without
 * --keyring, kos bundle create): reads both files like the function above and
 * checks the signature file is well formed, but parses the manifest WITHOUT
 * authenticating it (ret->authenticated is false). Never decide what boots
 * or what is deleted with it. */
_kos_must_check_ int kos_manifest_load_unverified_at(int dirfd, const char *json_path, const char *sig_path, const char *label_dir,
                                    struct kos_loaded_manifest *ret);

void kos_loaded_manifest_done(struct kos_loaded_manifest *m);
