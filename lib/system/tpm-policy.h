/* SPDX-License-Identifier: MIT */
/* Signed PCR policies (docs/tpm.md, "Signed policies"): a key sealed with
 * TPM2_PolicyAuthorize(vendor policy key, KOS_TPM_POLICY_REF) opens when the
 * TPM is shown a PolicyPCR digest that the vendor signed with its P-256
 * policy key, for the PCR values the TPM holds now. The vendor signs the PCR
 * values of its own boot chain (Secure Boot's PCR 7, the Boot Kernel's
 * security version in PCR 14, the marker in PCR 15); a db or dbx update or a
 * new Boot Kernel needs a new signature shipped in a release, never a re-seal.
 *
 * The API for a sealed secret (component keys, the DataFS key):
 *   kos_tpm_seal_authorized()    seal up to 128 bytes to the policy key;
 *   kos_tpm_unseal_authorized()  open it with a signed policy, in a salted
 *                                session with response encryption;
 *   kos_authorized_key_parse/format()  its bytes (a sealed-key file, or a
 *                                LUKS2 token's payload).
 * Everything the device trusts is the policy key's public half, which ships
 * in the signed System Kernel initrd (KOS_TPM_POLICY_KEY_PATH); the signed
 * policy and the sealed blob are not secret and not trusted: the TPM checks
 * the signature and the object's policy itself. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "kos-error.h"
#include "tpm.h"

/* The policyRef every KOS signature covers: a signature by the same vendor
 * key for another purpose (another product's TPM policy, a test) cannot be
 * replayed to open KOS keys; a later scheme takes another ref. */
#define KOS_TPM_POLICY_REF "kos-sealed-key/1"
/* The PCR the Boot Kernel extends with its security version (agreed with the
 * Boot Kernel's slots: the UKI's kos.bk_security_version=N), and the event. */
#define KOS_TPM_BK_VERSION_PCR 14
#define KOS_TPM_BK_VERSION_EVENT_PREFIX "kos-bk-security-version="
/* Where the System Kernel's initrd carries the vendor's policy public key
 * (PEM), and where a release puts the signed policy on the ImageFS. */
#define KOS_TPM_POLICY_KEY_PATH "/etc/kos/tpm-policy-key.pem"
#define KOS_TPM_POLICY_FILE "tpm-policy"

#define KOS_TPM_NAME_LEN (2 + KOS_SHA256_LEN) /* TPM2B_NAME of a SHA-256 object */
#define KOS_SIGNED_POLICY_MAGIC "KOSPOLI1"
#define KOS_SIGNED_POLICY_MAX_ENTRIES 8
#define KOS_SIGNED_POLICY_MAX 8192
#define KOS_AUTHORIZED_KEY_MAGIC "KOSSEAL2"
#define KOS_AUTHORIZED_KEY_MAX 2048

/* A NIST P-256 public key: the vendor's policy key, or a TPM storage key. */
struct kos_tpm_ecc_point {
        uint8_t x[32], y[32];
};

/* One signed PolicyPCR: the PCRs (SHA-256 bank) and values it approves, and
 * the ECDSA signature (r, s) over SHA-256(approvedPolicy || policyRef). */
struct kos_signed_policy_entry {
        uint32_t pcr_mask;
        uint8_t pcr_values[24][KOS_SHA256_LEN];
        uint8_t r[32], s[32];
};

/* The signed-policy file: 1 to 8 entries (e.g. the security versions of a
 * rollout, or two db states); unsealing uses the one that matches the PCRs. */
struct kos_signed_policy {
        unsigned n;
        struct kos_signed_policy_entry entries[KOS_SIGNED_POLICY_MAX_ENTRIES];
};

/* A secret sealed to PolicyAuthorize: the object's areas, the name of the
 * policy key it is bound to (to say so when another key is offered), and the
 * storage key's public point recorded when it was sealed, which the unseal's
 * session is salted to. */
struct kos_authorized_key {
        uint8_t policy_key_name[KOS_TPM_NAME_LEN];
        struct kos_tpm_ecc_point storage_key;
        uint8_t public_area[KOS_TPM_BLOB_MAX], private_area[KOS_TPM_BLOB_MAX];
        uint16_t public_len, private_len;
};

/* --- Pure functions ----------------------------------------------------- */

/* The public key from a PEM SubjectPublicKeyInfo (P-256 only): 0 or -EINVAL. */
_kos_must_check_ int kos_tpm_ecc_point_from_pem(const char *pem, size_t len, struct kos_tpm_ecc_point *ret);
/* The TPMT_PUBLIC KOS loads the policy key as (LoadExternal): ECC P-256,
 * SHA-256, sign, ECDSA-SHA256; the length, or -ENOBUFS. */
_kos_must_check_ int kos_tpm_policy_key_public(const struct kos_tpm_ecc_point *key, uint8_t *buf, size_t size);
/* Its TPM name: TPM_ALG_SHA256 || SHA-256(TPMT_PUBLIC). */
_kos_must_check_ int kos_tpm_policy_key_name(const struct kos_tpm_ecc_point *key,
                                             uint8_t ret_name[static KOS_TPM_NAME_LEN]);
/* The authPolicy of a sealed object: PolicyAuthorize(key, KOS_TPM_POLICY_REF)
 * from an empty policy (TPM 2.0 Part 3, 23.16). */
_kos_must_check_ int kos_tpm_authorize_policy_digest(const uint8_t name[static KOS_TPM_NAME_LEN],
                                                     uint8_t ret_digest[static KOS_SHA256_LEN]);
/* What the vendor signs for an entry: SHA-256(PolicyPCR digest || policyRef). */
_kos_must_check_ int kos_signed_policy_ahash(uint32_t mask, const uint8_t values[24][KOS_SHA256_LEN],
                                             uint8_t ret_ahash[static KOS_SHA256_LEN]);
/* The SHA-256 value of PCR 14 after the Boot Kernel extended it, from reset,
 * with "kos-bk-security-version=N". */
_kos_must_check_ int kos_tpm_bk_version_pcr(uint32_t security_version, uint8_t ret_value[static KOS_SHA256_LEN]);

/* The files: 0 or -EBADMSG (untrusted input; every rule checked). Format
 * returns the length or -ENOBUFS. */
_kos_must_check_ int kos_signed_policy_parse(const uint8_t *untrusted, size_t len, struct kos_signed_policy *ret);
_kos_must_check_ int kos_signed_policy_format(const struct kos_signed_policy *p, uint8_t *buf, size_t size);
_kos_must_check_ int kos_authorized_key_parse(const uint8_t *untrusted, size_t len, struct kos_authorized_key *ret);
_kos_must_check_ int kos_authorized_key_format(const struct kos_authorized_key *k, uint8_t *buf, size_t size);

/* Command builders (golden bytes in tests/unit/test-tpm-policy.c). */
_kos_must_check_ int kos_tpm_build_load_external(uint8_t *buf, size_t size, const struct kos_tpm_ecc_point *key);
_kos_must_check_ int kos_tpm_build_verify_signature(uint8_t *buf, size_t size, uint32_t key,
                                                    const uint8_t digest[static KOS_SHA256_LEN],
                                                    const uint8_t r[static 32], const uint8_t s[static 32]);
_kos_must_check_ int kos_tpm_build_policy_authorize(uint8_t *buf, size_t size, uint32_t session,
                                                    const uint8_t approved[static KOS_SHA256_LEN],
                                                    const uint8_t name[static KOS_TPM_NAME_LEN], const uint8_t *ticket,
                                                    size_t ticket_len);
_kos_must_check_ int kos_tpm_build_read_public(uint8_t *buf, size_t size, uint32_t handle);
/* ReadPublic's parameters for the KOS storage key: exactly its template
 * (tpm.c's CreatePrimary) with a 32-byte point. */
_kos_must_check_ int kos_tpm_parse_storage_key_public(const uint8_t *p, size_t len, struct kos_tpm_ecc_point *ret);

/* --- With a TPM --------------------------------------------------------- */

/* The public point of the KOS storage key (CreatePrimary, ReadPublic). */
_kos_must_check_ int kos_tpm_storage_key_point(struct kos_tpm *t, struct kos_tpm_ecc_point *ret, struct kos_error *ret_error);
/* Seals data (1 to 128 bytes) under the KOS storage key with
 * PolicyAuthorize(policy_key, KOS_TPM_POLICY_REF) as its only authorization,
 * and records the storage key's point. ret_error says what failed. */
_kos_must_check_ int kos_tpm_seal_authorized(struct kos_tpm *t, const uint8_t *data, size_t data_len,
                                             const struct kos_tpm_ecc_point *policy_key,
                                             struct kos_authorized_key *ret, struct kos_error *ret_error);
/* Unseals k: picks the entry of policy whose PCR values the TPM holds (none:
 * -EPERM, naming the first PCR that differs), then in one policy session
 * salted to k->storage_key: PolicyPCR, VerifySignature of the entry with
 * policy_key loaded from its public half (LoadExternal, owner hierarchy, so
 * the ticket is usable), PolicyAuthorize, and Unseal with the response
 * encrypted (AES-128-CFB) and its HMAC checked. 0 with the data
 * (explicit_bzero it), or a negative errno with the reason in ret_error. */
_kos_must_check_ int kos_tpm_unseal_authorized(struct kos_tpm *t, const struct kos_authorized_key *k,
                                               const struct kos_tpm_ecc_point *policy_key,
                                               const struct kos_signed_policy *policy,
                                               uint8_t ret_data[static KOS_TPM_SEAL_DATA_MAX], size_t *ret_len,
                                               struct kos_error *ret_error);

/* The migration of a key sealed the old way (PolicyPCR, KOSSEAL1) while its
 * old policy still opens it (docs/tpm.md, "Migrating PolicyPCR keys"): data
 * is the key just unsealed; it is sealed again to policy_key and the new
 * object is unsealed with policy before it is handed back, so a device whose
 * signed policy does not open the new object keeps its old file (-EPERM
 * with the reason in ret_error). */
_kos_must_check_ int kos_tpm_reseal_authorized(struct kos_tpm *t, const uint8_t *data, size_t data_len,
                                               const struct kos_tpm_ecc_point *policy_key,
                                               const struct kos_signed_policy *policy, struct kos_authorized_key *ret,
                                               struct kos_error *ret_error);
