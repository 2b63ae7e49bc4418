/* SPDX-License-Identifier: MIT */
/* Keys sealed to the verified chain (docs/tpm.md, "Sealed keys"): a secret of
 * up to 128 bytes held by a TPM sealed-data object whose only authorization
 * is PolicyPCR over a set of SHA-256 PCRs that must include
 * KOS_TPM_SEAL_PCR, with the values they hold between the Boot Kernel's
 * marker and the System Kernel's leave event.
 *
 * The sealed-key file (one per key id, ImageFS sealed-keys/<id>; the format
 * in docs/tpm.md) keeps the object's public and private areas, which only
 * this TPM can load, and the PCR values the policy was computed from, which
 * only serve to say which PCR differs when the TPM refuses. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "kos-error.h"
#include "tpm.h"

#define KOS_SEALED_KEY_MAGIC "KOSSEAL1"
#define KOS_SEALED_KEY_MAX 2048
/* The ImageFS directory of sealed-key files, named by key id. */
#define KOS_SEALED_KEY_DIR "sealed-keys"

struct kos_sealed_key {
        uint32_t pcr_mask; /* PCRs 0-23 of the SHA-256 bank */
        uint8_t pcr_values[24][KOS_SHA256_LEN];
        uint8_t public_area[KOS_TPM_BLOB_MAX], private_area[KOS_TPM_BLOB_MAX];
        uint16_t public_len, private_len;
};

/* The SHA-256 value of KOS_TPM_SEAL_PCR after the marker, from reset:
 * SHA-256(0^32 || SHA-256(KOS_TPM_MARKER_EVENT)). */
_kos_must_check_ int kos_tpm_seal_pcr_expected(uint8_t ret_value[static KOS_SHA256_LEN]);
/* The policyDigest of PolicyPCR(mask, values) from an empty policy:
 * SHA-256(0^32 || TPM_CC_PolicyPCR || TPML_PCR_SELECTION || SHA-256(values
 * of the PCRs in mask, lowest first)) (TPM 2.0 Part 3, 23.7). */
_kos_must_check_ int kos_tpm_policy_pcr_digest(uint32_t mask, const uint8_t values[24][KOS_SHA256_LEN],
                                               uint8_t ret_digest[static KOS_SHA256_LEN]);

/* The file format: 0 or -EBADMSG (a rule broken; untrusted input). */
_kos_must_check_ int kos_sealed_key_parse(const uint8_t *untrusted, size_t len, struct kos_sealed_key *ret);
/* Writes the file's bytes into buf: the length, or -ENOBUFS. */
_kos_must_check_ int kos_sealed_key_format(const struct kos_sealed_key *k, uint8_t *buf, size_t size);

/* Seals data (1 to 128 bytes) under this TPM's KOS storage primary key with
 * PolicyPCR(mask, values). mask must include KOS_TPM_SEAL_PCR: otherwise
 * the key would open after the leave event, for anyone (-EINVAL). The TPM
 * need not be in that PCR state. ret_error says what failed. */
_kos_must_check_ int kos_tpm_seal(struct kos_tpm *t, const uint8_t *data, size_t data_len, uint32_t mask,
                                  const uint8_t values[24][KOS_SHA256_LEN], struct kos_sealed_key *ret, struct kos_error *ret_error);
/* Unseals: 0 with the data (explicit_bzero it), or a negative errno with a
 * reason in ret_error naming the part of the policy that failed, e.g. "PCR 15
 * does not match the sealed policy (TPM_RC_POLICY_FAIL): it holds 1a2b...,
 * the policy needs 3c4d...". */
_kos_must_check_ int kos_tpm_unseal(struct kos_tpm *t, const struct kos_sealed_key *k,
                                    uint8_t ret_data[static KOS_TPM_SEAL_DATA_MAX], size_t *ret_len, struct kos_error *ret_error);
/* Load of a sealed object under the KOS storage key primary: 0, or a
 * negative errno with the reason in ret_error (a refusal: sealed by another
 * TPM, changed, or the TPM was cleared). */
_kos_must_check_ int kos_tpm_load_sealed_object(struct kos_tpm *t, uint32_t primary, const uint8_t *public_area,
                                                uint16_t public_len, const uint8_t *private_area,
                                                uint16_t private_len, uint32_t *ret_item, struct kos_error *ret_error);
/* What failed in a TPM command of the System Kernel's: "<what>: the TPM
 * refused (<response code>)" for a refusal (-EPROTO), else "<what>: <errno
 * text>"; returns r. */
int kos_tpm_say_error(struct kos_tpm *t, const char *what, int r, struct kos_error *ret_error);
/* The leave event: extends KOS_TPM_SEAL_PCR with KOS_TPM_LEAVE_EVENT, after
 * which nothing can unseal a KOS key until the next platform reset. */
_kos_must_check_ int kos_tpm_seal_leave(struct kos_tpm *t);

/* "7,15" into a mask (PCRs 0-23, each once): 0 or -EINVAL. */
_kos_must_check_ int kos_tpm_parse_pcr_list(const char *s, uint32_t *ret_mask);
