/* SPDX-License-Identifier: MIT */
/* Salted policy sessions with response encryption (docs/tpm.md, "Never in
 * clear on the bus"), written by hand over libcrypto like the rest of the
 * TPM code: the session is salted by ECDH to the KOS storage key (whose
 * public point the caller recorded when it sealed), and Unseal's response
 * comes back AES-128-CFB encrypted under a key only this process and the
 * TPM can derive, with an HMAC that this process checks. A sniffer on the
 * TPM bus sees the ephemeral public key, nonces and ciphertext.
 *
 * Constants and formulas: TPM 2.0 Library Part 1, 11.4.9.2 (KDFa), 11.4.10.3
 * (KDFe), 19.6 (session key, HMAC), 21 (parameter encryption), C.6.1 (ECC
 * salt). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "tpm-policy.h"

#define KOS_TPM_NONCE_LEN 32
#define KOS_TPM_SESSION_ENCRYPT 0x40 /* TPMA_SESSION_ENCRYPT: the response's first parameter is encrypted */

struct kos_tpm_session {
        uint32_t handle;
        uint8_t key[KOS_SHA256_LEN]; /* sessionKey */
        uint8_t nonce_tpm[KOS_TPM_NONCE_LEN];
};

/* KDFa with SHA-256: out_len bytes (a multiple of nothing; at most 64). */
_kos_must_check_ int kos_tpm_kdfa(const uint8_t *key, size_t key_len, const char *label, const uint8_t *u,
                                  size_t u_len, const uint8_t *v, size_t v_len, uint8_t *out, size_t out_len);
/* KDFe with SHA-256 for 256 bits: SHA-256(1 || z || label\0 || u || v). */
_kos_must_check_ int kos_tpm_kdfe(const uint8_t z[static 32], const char *label, const uint8_t u[static 32],
                                  const uint8_t v[static 32], uint8_t out[static KOS_SHA256_LEN]);
/* A fresh ephemeral P-256 key, ECDH with tpm_key: the salt the TPM will
 * derive too, and the ephemeral public point that goes in encryptedSalt.
 * -EINVAL when tpm_key is not a point on the curve. */
_kos_must_check_ int kos_tpm_ecdh_salt(const struct kos_tpm_ecc_point *tpm_key, struct kos_tpm_ecc_point *ret_ephemeral,
                                       uint8_t ret_salt[static KOS_SHA256_LEN]);

/* StartAuthSession: a policy session salted to tpm_key (the handle of the
 * loaded storage key), unbound, SHA-256, AES-128-CFB for parameters. */
_kos_must_check_ int kos_tpm_build_start_salted_session(uint8_t *buf, size_t size, uint32_t tpm_key,
                                                        const uint8_t nonce_caller[static KOS_TPM_NONCE_LEN],
                                                        const struct kos_tpm_ecc_point *ephemeral);
/* Unseal of item (its name) authorized by s, whose HMAC the command carries,
 * asking for the response to be encrypted; the session is not continued. */
_kos_must_check_ int kos_tpm_build_unseal_encrypted(uint8_t *buf, size_t size, uint32_t item,
                                                    const uint8_t item_name[static KOS_TPM_NAME_LEN],
                                                    const struct kos_tpm_session *s,
                                                    const uint8_t nonce_caller[static KOS_TPM_NONCE_LEN]);
/* A successful Unseal response in s: its HMAC checked (-EBADMSG when it is
 * not the TPM's: a changed response), outData decrypted into ret_data. */
_kos_must_check_ int kos_tpm_open_unseal_response(const uint8_t *resp, size_t len, const struct kos_tpm_session *s,
                                                  const uint8_t nonce_caller[static KOS_TPM_NONCE_LEN],
                                                  uint8_t ret_data[static KOS_TPM_SEAL_DATA_MAX], size_t *ret_len);

/* With a TPM: -EPROTO for a refusal (t->last_rc says which). */
_kos_must_check_ int kos_tpm_start_salted_policy_session(struct kos_tpm *t, uint32_t tpm_key,
                                                         const struct kos_tpm_ecc_point *point,
                                                         struct kos_tpm_session *ret);
_kos_must_check_ int kos_tpm_unseal_encrypted(struct kos_tpm *t, uint32_t item,
                                              const uint8_t item_name[static KOS_TPM_NAME_LEN],
                                              const struct kos_tpm_session *s,
                                              uint8_t ret_data[static KOS_TPM_SEAL_DATA_MAX], size_t *ret_len);
