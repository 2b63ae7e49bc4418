/* SPDX-License-Identifier: MIT */
/* Ed25519 keys as PEM files (openssl genpkey / openssl pkey -pubout), their
 * ids, and the keyring: a directory of trusted public-key *.pem files. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "kos-error.h"
#include "util.h"

#define KOS_KEY_ID_LEN 8     /* first 8 bytes of sha256(raw public key) */
#define KOS_KEY_ID_HEX_LEN 16
#define KOS_ED25519_PUBLIC_LEN 32
#define KOS_ED25519_SIGNATURE_LEN 64
#define KOS_KEYRING_MAX_KEYS 64
#define KOS_KEY_FILE_MAX 16384
#define KOS_KEYRING_MAX_REVOCATION_KEYS 8
#define KOS_KEYRING_REVOCATION_SUBDIR "revocation"

struct kos_public_key {
        uint8_t id[KOS_KEY_ID_LEN];
        uint8_t raw[KOS_ED25519_PUBLIC_LEN];
        char file[256]; /* where it came from, for messages */
};

struct kos_keyring {
        size_t n_keys;
        struct kos_public_key keys[KOS_KEYRING_MAX_KEYS];
        /* <dir>/revocation/ (its *.pem): keys that sign revocation lists
         * (revocation.h) and nothing else; never trusted for a manifest. */
        size_t n_revocation_keys;
        struct kos_public_key revocation_keys[KOS_KEYRING_MAX_REVOCATION_KEYS];
};

_kos_must_check_ int kos_key_id_of(const uint8_t raw[static KOS_ED25519_PUBLIC_LEN], uint8_t ret_id[static KOS_KEY_ID_LEN]);

/* Loads every *.pem file of the directory; each must be an Ed25519 public key.
 * Any unreadable or foreign file is an error (-EBADMSG with a message in
 * ret_error), since a keyring is built deliberately and should be exact.
 * A subdirectory revocation/ (optional) holds the revocation keys, by the
 * same rules; a key may not be both. */
_kos_must_check_ int kos_keyring_load(const char *dir, struct kos_keyring *ret, struct kos_error *ret_error);

/* Adds one PEM public key from memory. */
_kos_must_check_ int kos_keyring_add_pem(struct kos_keyring *ring, const char *pem, size_t len, const char *file);

_kos_must_check_ const struct kos_public_key *kos_keyring_find(const struct kos_keyring *ring, const uint8_t id[static KOS_KEY_ID_LEN]);

/* Ed25519 verification of signature over the exact message bytes: 1 valid, 0 invalid. */
_kos_must_check_ int kos_ed25519_verify(const uint8_t raw_public[static KOS_ED25519_PUBLIC_LEN], const void *message, size_t len,
                       const uint8_t signature[static KOS_ED25519_SIGNATURE_LEN]);

/* Host-side only: key generation and signing with a PEM secret key. */
_kos_must_check_ int kos_key_generate(char **ret_secret_pem, char **ret_public_pem, uint8_t ret_id[static KOS_KEY_ID_LEN]);
_kos_must_check_ int kos_key_sign(const char *secret_pem, size_t secret_len, const void *message, size_t len,
                 uint8_t ret_signature[static KOS_ED25519_SIGNATURE_LEN], uint8_t ret_id[static KOS_KEY_ID_LEN]);
/* The raw public key of a PEM public key. */
_kos_must_check_ int kos_key_public_from_pem(const char *pem, size_t len, uint8_t ret_raw[static KOS_ED25519_PUBLIC_LEN]);
/* The SubjectPublicKeyInfo PEM of a raw public key (as openssl pkey -pubout writes it). */
_kos_must_check_ int kos_key_public_to_pem(const uint8_t raw[static KOS_ED25519_PUBLIC_LEN], char **ret_pem);
