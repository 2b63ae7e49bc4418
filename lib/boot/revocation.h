/* SPDX-License-Identifier: MIT */
/* The manifest-key revocation list: ImageFS/revocation.json(.sig), signed by a
 * revocation key of the keyring (the *.pem of <keyring>/revocation/), never by a
 * manifest key. It narrows the keyring without a new UKI: a key it names
 * signs nothing that boots. Its freshness is the release's security_version:
 * once the keyring holds a revocation key, a manifest boots only with a list
 * whose security_version is at least its own, so a leaked key can sign
 * nothing above the last list issued before the leak, and the rollback floor
 * (TPM NV) refuses everything below. See docs/format.md ("Revocation list")
 * and docs/trust-chain.md. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imagefs.h"
#include "keyring.h"
#include "util.h"

#define KOS_REVOCATION_FORMAT 1
#define KOS_REVOCATION_FILE "revocation.json"
#define KOS_REVOCATION_SIG_FILE "revocation.json.sig"
#define KOS_REVOCATION_FILE_MAX 65536
#define KOS_REVOCATION_MAX_KEYS 256

struct kos_revocation_list {
        uint32_t security_version; /* the newest release this list vouches for */
        size_t n_revoked;
        uint8_t revoked[KOS_REVOCATION_MAX_KEYS][KOS_KEY_ID_LEN];
};

/* What selection knows about revocation, read once (select.c). */
struct kos_revocation_state {
        bool required;  /* the keyring holds revocation keys: every manifest needs a fresh list */
        int error;      /* 0: list holds a verified list; else a negative errno and why says why not */
        char why[256];
        struct kos_revocation_list list;
};

/* Strict parse of an authenticated list: {"format": 1, "security_version": N,
 * "revoked_keys": ["<16 hex>", ...]} and nothing else. -EBADMSG with ret_error. */
_kos_must_check_ int kos_revocation_list_parse(const char *json, size_t len, struct kos_revocation_list *ret,
                                               struct kos_error *ret_error);

/* Authenticate, then parse: a line of untrusted_sig by a revocation key of
 * ring must verify over the exact bytes of untrusted_json. -ENOKEY when ring
 * holds no revocation key, -EBADMSG (with ret_error) otherwise. */
_kos_must_check_ int kos_revocation_list_load_verified(const struct kos_keyring *ring, const char *untrusted_json,
                                                       size_t json_len, const char *untrusted_sig, size_t sig_len,
                                                       struct kos_revocation_list *ret,
                                                       struct kos_error *ret_error);

/* Reads ImageFS/revocation.json(.sig) with their caps and loads it as above
 * into ret (ret->required from ring; ret->error -ENOENT when absent). */
void kos_revocation_state_read(const struct kos_imagefs *img, const struct kos_keyring *ring,
                               struct kos_revocation_state *ret);

_kos_must_check_ bool kos_revocation_list_names(const struct kos_revocation_list *list,
                                                const uint8_t id[static KOS_KEY_ID_LEN]);

/* ret = ring without the manifest keys list names (revocation keys kept). */
void kos_keyring_narrow(const struct kos_keyring *ring, const struct kos_revocation_list *list,
                        struct kos_keyring *ret);

/* The list as its canonical JSON (keys sorted, one trailing newline). Host. */
_kos_must_check_ int kos_revocation_list_format(const struct kos_revocation_list *list, char **ret_json);
