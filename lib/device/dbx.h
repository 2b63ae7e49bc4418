/* SPDX-License-Identifier: MIT */
/* dbx updates, checked on the device before they are applied: a KEK-signed
 * append to the UEFI forbidden-signature database (an .auth file as
 * efitools' sign-efi-sig-list -a writes it: EFI_VARIABLE_AUTHENTICATION_2,
 * then EFI_SIGNATURE_LISTs) must not revoke a Boot Kernel UKI the device
 * needs to boot: not its Authenticode SHA-256 (EFI_CERT_SHA256_GUID) and not
 * a certificate of its signature (EFI_CERT_X509_GUID). The firmware would
 * refuse that UKI on the next boot ("Access Denied") and the device would
 * not come back. UEFI 2.10, 32.4 (signature database) and 8.2.2 (time-based
 * authenticated variables); PE/COFF 4.1 (Authenticode hash). See
 * docs/trust-chain.md ("dbx updates"). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hash.h"
#include "util.h"

#define KOS_DBX_UPDATE_MAX (1024 * 1024)   /* an .auth larger than this is refused */
#define KOS_UKI_MAX (512 * 1024 * 1024)    /* a PE image larger than this is refused */
#define KOS_UKI_MAX_CERTS 8

/* What the firmware matches a UKI by: its Authenticode hash and the DER
 * certificates of its signature(s). */
struct kos_uki_identity {
        uint8_t authenticode_sha256[KOS_SHA256_LEN];
        size_t n_certs;
        uint8_t *certs[KOS_UKI_MAX_CERTS]; /* DER, owned */
        size_t cert_lens[KOS_UKI_MAX_CERTS];
};

/* The Authenticode SHA-256 of a PE image, as EDK2's DxeImageVerificationLib
 * computes it (HashPeImage): the headers without CheckSum and the
 * certificate-table entry, the sections in file order, then what follows
 * them save the certificate table. -EBADMSG for a malformed image. */
_kos_must_check_ int kos_authenticode_sha256(const uint8_t *untrusted_pe, size_t len,
                                             uint8_t ret[static KOS_SHA256_LEN]);

/* The hash and the signing certificates (every certificate carried in each
 * PKCS#7 of the certificate table). -EBADMSG for a malformed image or
 * signature, -ENOKEY for an unsigned one. Release with kos_uki_identity_done(). */
_kos_must_check_ int kos_uki_identity_of(const uint8_t *untrusted_pe, size_t len, struct kos_uki_identity *ret);
void kos_uki_identity_done(struct kos_uki_identity *id);

enum kos_dbx_verdict {
        KOS_DBX_SAFE,               /* revokes nothing the device needs */
        KOS_DBX_REVOKES_UKI_HASH,   /* an EFI_CERT_SHA256 entry is a needed UKI's Authenticode hash */
        KOS_DBX_REVOKES_UKI_SIGNER, /* an EFI_CERT_X509 entry is a certificate of a needed UKI's signature */
        KOS_DBX_UNKNOWN_TYPE,       /* an entry type this check cannot compare (fail closed) */
        KOS_DBX_MALFORMED,          /* not an authentication header followed by signature lists */
        _KOS_DBX_VERDICT_MAX,
};

const char *kos_dbx_verdict_to_string(enum kos_dbx_verdict v);

/* The signature lists of an .auth file (EFI_VARIABLE_AUTHENTICATION_2:
 * 16-byte EFI_TIME, then a WIN_CERTIFICATE_UEFI_GUID of type
 * EFI_CERT_TYPE_PKCS7_GUID of its own dwLength). -EBADMSG otherwise. */
_kos_must_check_ int kos_dbx_auth_payload(const uint8_t *untrusted_auth, size_t len, const uint8_t **ret_lists,
                                          size_t *ret_len);

/* Checks every entry of the signature lists against every needed UKI;
 * detail says which entry and which UKI (index into needed). */
_kos_must_check_ enum kos_dbx_verdict kos_dbx_check_signature_lists(const uint8_t *untrusted_lists, size_t len,
                                                                    const struct kos_uki_identity *needed,
                                                                    size_t n_needed, char *detail, size_t detail_size);

/* The same for a whole .auth file: the device-side gate before it is
 * written to efivarfs. */
_kos_must_check_ enum kos_dbx_verdict kos_dbx_check_update(const uint8_t *untrusted_auth, size_t len,
                                                           const struct kos_uki_identity *needed, size_t n_needed,
                                                           char *detail, size_t detail_size);
